//! The image filesystem for linux/arm64 (issue 14), without Docker: the runtime stage of the
//! `Dockerfile` laid out in a directory from arm64 parts — the cross-compiled worker at the
//! ENTRYPOINT path, Debian's arm64 CPython (unpacked without maintainer scripts, at the base
//! image's `/usr/local/bin/python3`), the default `FRAMEWORKS` with virtualenvs holding the arm64
//! wheels uv installed for `aarch64-unknown-linux-gnu` — then run as the image runs: chrooted
//! into that tree, as the Dockerfile's `USER`, in its `WORKDIR`, with its `ENV` alone, the worker
//! PID 1 of a fresh PID namespace. Every arm64 program in it (the worker, `sh`, `sleep`, Python)
//! runs under `qemu-aarch64`, registered with binfmt_misc in a user namespace of the test's own
//! (Linux 6.7+), so nothing of the host's configuration changes.
//!
//! `scripts/test-arm64.sh` builds the parts, caches them and runs this with `--ignored`; the
//! variables below name them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal::SIGKILL, Signal::SIGTERM};
use nix::unistd::Pid;
use serde_json::{json, Value};

mod common;

/// The example agents' answer to "hello world".
const ANSWER: &str = "Shouted: HELLO WORLD";

/// PATH and LANG of the base image (`python:3.12-slim-bookworm`), which the Dockerfile inherits.
const BASE_ENV: [(&str, &str); 2] = [
    (
        "PATH",
        "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("LANG", "C.UTF-8"),
];

/// binfmt_misc's entry for aarch64 ELF executables (the magic and mask of qemu's
/// `qemu-binfmt-conf.sh`); `F`: qemu is opened now, so it runs inside the chroot too.
const BINFMT_AARCH64: &str = r":qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:";

/// Run by PID 1 of the new namespaces (host `sh`): waits for the test to map the user
/// namespace's ids, registers qemu, mounts /proc and /dev in the tree, then becomes the image's
/// process: chroot as USER, cd WORKDIR (the tree's arm64 `sh`), exec ENTRYPOINT + CMD.
const ENTER: &str = r#"read -r _mapped
exec </dev/null
root=$1 registration=$2 user=$3 workdir=$4
shift 4
mount -t proc proc /proc
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
printf '%s' "$registration" >/proc/sys/fs/binfmt_misc/register
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
exec chroot --userspec="$user" "$root" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"
"#;

/// A part built by scripts/test-arm64.sh.
fn part(var: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set: run scripts/test-arm64.sh"));
    assert!(path.exists(), "{var}={} does not exist", path.display());
    path
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Dockerfile's runtime (last) stage, as (keyword, arguments) with continuations joined.
fn runtime_stage() -> Vec<(String, String)> {
    let text = fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(char::is_whitespace).unwrap();
                instructions.push((keyword.to_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    let from = instructions.iter().rposition(|(k, _)| k == "FROM").unwrap();
    instructions.split_off(from)
}

/// `NAME=value` words of an instruction, quotes removed (the Dockerfile's values have no spaces
/// except inside quotes).
fn assignments(args: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in args.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// What the image is made of, read from the Dockerfile.
struct Image {
    env: Vec<(String, String)>,
    user: String,
    workdir: String,
    entrypoint: Vec<String>,
    frameworks: Vec<String>,
}

fn image() -> Image {
    let stage = runtime_stage();
    let last = |keyword: &str| {
        stage
            .iter()
            .rev()
            .find(|(k, _)| k == keyword)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no {keyword} in the runtime stage"))
    };
    let env = stage
        .iter()
        .filter(|(k, _)| k == "ENV")
        .flat_map(|(_, a)| assignments(a))
        .collect();
    let frameworks = stage
        .iter()
        .filter(|(k, _)| k == "ARG")
        .flat_map(|(_, a)| assignments(a))
        .find(|(k, _)| k == "FRAMEWORKS")
        .expect("ARG FRAMEWORKS=… in the runtime stage")
        .1;
    let mut entrypoint: Vec<String> = serde_json::from_str(&last("ENTRYPOINT")).unwrap();
    let cmd: Vec<String> = serde_json::from_str(&last("CMD")).unwrap();
    entrypoint.extend(cmd);
    Image {
        env,
        user: last("USER"),
        workdir: last("WORKDIR"),
        entrypoint,
        frameworks: frameworks.split_whitespace().map(str::to_owned).collect(),
    }
}

/// `cp -al` (hardlinks, so a tree of the cache costs nothing), or a copy across filesystems.
/// Files linked this way are never written: they are replaced.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let run = |flags: &str| {
        Command::new("cp")
            .arg(flags)
            .arg(format!("{}/.", from.display()))
            .arg(to)
            .status()
            .unwrap()
            .success()
    };
    assert!(
        run("-al") || run("-a"),
        "copy {} to {}",
        from.display(),
        to.display()
    );
}

/// Writes a file of the tree afresh (never through a hardlink into the cache).
fn write_new(path: &Path, text: &str) {
    let _ = fs::remove_file(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn in_root(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

/// Lays out the runtime stage under `root`.
fn lay_out(image: &Image, root: &Path) {
    let var = |name: &str| {
        image
            .env
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no ENV {name}"))
            .1
            .clone()
    };
    // The base: Debian's arm64 packages, with the names python:3.12-slim gives CPython (bookworm
    // has no 3.12: its 3.11 stands in, so warm parents run here without immortal objects).
    copy_tree(&part("AGENTDISPATCH_ARM64_ROOT"), root);
    fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    for name in ["python3.11", "python3", "python"] {
        let _ = fs::remove_file(root.join("usr/local/bin").join(name));
        symlink("/usr/bin/python3.11", root.join("usr/local/bin").join(name)).unwrap();
    }
    // dash's /bin/sh link is made by its maintainer script, which the extraction did not run.
    if fs::symlink_metadata(root.join("bin/sh")).is_err() {
        symlink("dash", root.join("bin/sh")).unwrap();
    }
    for dir in ["proc", "dev", "tmp"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    // groupadd/useradd agentdispatch.
    write_new(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         agentdispatch:x:1000:1000::/home/agentdispatch:/usr/sbin/nologin\n",
    );
    write_new(
        &root.join("etc/group"),
        "root:x:0:\nagentdispatch:x:1000:\n",
    );

    // COPY frameworks/, then the Python frameworks not named in FRAMEWORKS removed, and each
    // named one given its venv: uv's arm64 install as its site-packages.
    let frameworks = in_root(root, &var("AGENTDISPATCH_FRAMEWORKS_DIR"));
    copy_sources(&repo_root().join("frameworks"), &frameworks);
    let _ = fs::remove_dir_all(frameworks.join("tests")); // .dockerignore
    let site = part("AGENTDISPATCH_ARM64_SITE_PACKAGES");
    for entry in fs::read_dir(&frameworks).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().join("requirements.txt").exists() {
            continue;
        }
        if !image.frameworks.contains(&name) {
            fs::remove_dir_all(entry.path()).unwrap();
            continue;
        }
        let venv = entry.path().join(".venv");
        copy_tree(
            &site.join(&name),
            &venv.join("lib/python3.11/site-packages"),
        );
        fs::create_dir_all(venv.join("bin")).unwrap();
        symlink("/usr/local/bin/python3", venv.join("bin/python")).unwrap();
        symlink("python", venv.join("bin/python3")).unwrap();
        write_new(
            &venv.join("pyvenv.cfg"),
            "home = /usr/local/bin\ninclude-system-site-packages = false\nversion = 3.11\n",
        );
    }
    for name in &image.frameworks {
        assert!(frameworks.join(name).is_dir(), "FRAMEWORKS names {name}");
    }

    // The home and artifact directories of uid 1000 (the Dockerfile's `install -d`).
    for dir in [
        var("HOME"),
        "/var/lib/agentdispatch".into(),
        var("AGENTDISPATCH_ARTIFACT_DIR"),
    ] {
        let dir = in_root(root, &dir);
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(1000), Some(1000)).unwrap();
    }
    let binary = in_root(root, &image.entrypoint[0]);
    let _ = fs::remove_file(&binary);
    fs::copy(part("AGENTDISPATCH_ARM64_WORKER"), &binary).unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Copies a source folder as `COPY` does with this repository's .dockerignore (no `.venv`,
/// no `__pycache__`).
fn copy_sources(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        if name == ".venv" || name == "__pycache__" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_sources(&entry.path(), &to.join(&name));
        } else {
            fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// A process started in the image: PID 1 of new user, mount and PID namespaces.
struct InImage {
    unshare: Child,
    log: PathBuf,
}

/// Starts `argv` in the image at `root`, with the image's ENV (plus `extra`) alone.
fn start_in_image(image: &Image, root: &Path, argv: &[String], extra: &[(&str, &str)]) -> InImage {
    let log = root.join(format!("run-{}.log", argv.last().unwrap()));
    let registration = format!(
        "{BINFMT_AARCH64}{}:F",
        part("AGENTDISPATCH_ARM64_QEMU").display()
    );
    let mut unshare = Command::new("unshare")
        .args(["--user", "--mount", "--pid", "--fork", "--kill-child"])
        .args(["--", "/bin/sh", "-euc", ENTER, "sh"])
        .arg(root)
        .args([&registration, &image.user, &image.workdir])
        .args(argv)
        .env_clear()
        .envs(BASE_ENV)
        .envs(image.env.iter().map(|(k, v)| (k, v)))
        .env("AGENTDISPATCH_ARM64_IMAGE_TEST", root)
        .envs(extra.iter().copied())
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .expect("unshare (util-linux)");
    // The user namespace maps every id to itself, so uid 1000 inside is uid 1000 here.
    let pid = unshare.id();
    let ours = fs::read_link("/proc/self/ns/user").unwrap();
    let started = Instant::now();
    while fs::read_link(format!("/proc/{pid}/ns/user")).ok().as_ref() == Some(&ours) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no user namespace"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for map in ["uid_map", "gid_map"] {
        fs::write(format!("/proc/{pid}/{map}"), "0 0 4294967295\n").unwrap();
    }
    let mut stdin = unshare.stdin.take().unwrap();
    stdin.write_all(b"mapped\n").unwrap();
    InImage { unshare, log }
}

impl InImage {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The host pid of PID 1 of the namespace.
    fn pid1(&self) -> i32 {
        let id = self.unshare.id();
        let children = fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap();
        children.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Waits for the exit (within `within`); the exit code and how long it took.
    async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.unshare.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                started.elapsed() < within,
                "no exit within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for InImage {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.unshare.id() as i32), SIGKILL);
        let _ = self.unshare.wait();
    }
}

/// A `Name:` line of /proc/<pid>/status, split into words.
fn proc_status(pid: i32, name: &str) -> Vec<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default();
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

/// Live processes that inherited this test's marker, with their command lines.
fn marked_processes(root: &Path) -> Vec<String> {
    let marker = format!("AGENTDISPATCH_ARM64_IMAGE_TEST={}", root.display());
    common::marked_processes(marker.as_bytes())
        .into_iter()
        .map(|pid| {
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            )
        })
        .collect()
}

async fn post(url: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{url}/invocations"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
#[ignore = "needs the arm64 parts and qemu that scripts/test-arm64.sh builds"]
async fn arm64_image_runs_the_worker_as_pid_1_with_the_default_frameworks_under_qemu() {
    let image = image();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    lay_out(&image, &root);
    println!(
        "arm64 image tree at {}: FRAMEWORKS={:?}, USER {}, WORKDIR {}, ENTRYPOINT+CMD {:?}",
        root.display(),
        image.frameworks,
        image.user,
        image.workdir,
        image.entrypoint
    );

    // The build's `RUN ["/usr/local/bin/agentdispatch-worker", "frameworks"]`, as uid 1000.
    let mut argv = image.entrypoint.clone();
    argv.truncate(1);
    argv.push("frameworks".into());
    let mut listing = start_in_image(&image, &root, &argv, &[]);
    let code = listing.exit_code(Duration::from_secs(120)).await;
    let listed = listing.log();
    assert_eq!(code, Some(0), "`frameworks` in the image:\n{listed}");
    for name in &image.frameworks {
        assert!(
            listed.contains(name.as_str()),
            "{name} not listed:\n{listed}"
        );
    }
    println!("`agentdispatch-worker frameworks` (arm64, uid 1000):\n{listed}");
    drop(listing);

    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let port_text = port.to_string();
    // Run-time settings, as `docker run -e` gives them: a port of this test's, loopback only,
    // and `sleep` allowed so that a task is still running at SIGTERM.
    let run_env = [
        ("PORT", port_text.as_str()),
        ("AGENTDISPATCH_HOST", "127.0.0.1"),
        ("AGENTDISPATCH_COMMAND_ALLOWLIST", "sleep"),
    ];
    let mut w = start_in_image(&image, &root, &image.entrypoint, &run_env);
    let started = Instant::now();
    let first = loop {
        if let Ok(r) = reqwest::get(format!("{url}/ping")).await {
            if let Ok(v) = r.json::<Value>().await {
                break v;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no /ping:\n{}",
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("first /ping: {first}");
    assert!(
        first["status"] == "Healthy" || first["status"] == "HealthyBusy",
        "{first}"
    );
    let worker = w.pid1();
    let nspid = proc_status(worker, "NSpid:");
    assert_eq!(
        nspid.last().map(String::as_str),
        Some("1"),
        "PID 1: {nspid:?}"
    );
    assert_eq!(proc_status(worker, "Uid:")[0], "1000", "USER 1000");
    let exe = fs::read_link(format!("/proc/{worker}/exe")).unwrap();
    let cmdline = fs::read(format!("/proc/{worker}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        exe.ends_with("qemu-aarch64") && cmdline.contains(&image.entrypoint[0]),
        "the arm64 worker under qemu: {} {cmdline}",
        exe.display()
    );
    println!("PID 1 (host pid {worker}, NSpid {nspid:?}, uid 1000): {cmdline}");

    let echo = post(&url, json!({"input": {"instruction": "hi"}})).await;
    assert_eq!(echo["output"], "Accepted instruction: hi", "{echo}");
    println!("echo: {}", echo["output"]);

    // The LangGraph example agent, streamed: events as they happen, then the result.
    let response = reqwest::Client::new()
        .post(format!("{url}/invocations"))
        .header("accept", "text/event-stream")
        .json(&json!({"framework": "langgraph", "input": {"instruction": "hello world"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let messages = common::read_sse(response, usize::MAX).await;
    let (last, events) = messages.split_last().expect("SSE messages");
    assert_eq!(last.data["output"], ANSWER, "{:#}\n{}", last.data, w.log());
    assert_eq!(last.data["status"], "succeeded");
    let tool_call = events
        .iter()
        .find(|m| m.data["type"] == "task.progress" && m.data["payload"]["step"] == "tool_call");
    let tool_call = tool_call.expect("a tool_call progress event");
    assert_eq!(tool_call.data["payload"]["tool"], "shout");
    assert!(
        tool_call.at < last.at,
        "the steps streamed before the result"
    );
    println!(
        "langgraph over SSE: {} events, then {:?}",
        events.len(),
        last.data["output"]
    );

    // Every other framework of the default set answers its example agent.
    for name in image.frameworks.iter().filter(|n| *n != "langgraph") {
        let payload = json!({"framework": name, "input": {"instruction": "hello world"}});
        let answer = post(&url, payload).await;
        assert_eq!(answer["output"], ANSWER, "{name}: {answer:#}\n{}", w.log());
        println!("{name}: {}", answer["output"]);
    }

    // A task still running at SIGTERM: an arm64 `sleep` of the image.
    let running = post(
        &url,
        json!({"taskType": "command.run", "async": true, "input": {"command": "sleep 60"}}),
    )
    .await;
    assert_eq!(running["status"], "running", "{running}");
    let id = running["taskId"].as_str().unwrap().to_owned();
    let sleeping = common::eventually(Duration::from_secs(30), || {
        !common::task_processes(&id).is_empty()
    });
    assert!(sleeping.await, "the sleep task started:\n{}", w.log());

    // `docker stop`: SIGTERM to PID 1; AgentCore allows about 15 s.
    let stopping = Instant::now();
    kill(Pid::from_raw(worker), SIGTERM).unwrap();
    let code = w.exit_code(Duration::from_secs(15)).await;
    let took = stopping.elapsed();
    assert_eq!(code, Some(0), "exit code after SIGTERM:\n{}", w.log());
    let result = in_root(
        &root,
        &image
            .env
            .iter()
            .find(|(n, _)| n == "AGENTDISPATCH_ARTIFACT_DIR")
            .unwrap()
            .1,
    )
    .join(&id)
    .join("result.json");
    let result: Value = serde_json::from_str(&fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(result["status"], "cancelled", "{result}");
    let left = marked_processes(&root);
    assert!(left.is_empty(), "processes left: {left:#?}");
    println!(
        "SIGTERM: exit 0 after {:.1} s, the running task cancelled, no process left",
        took.as_secs_f64()
    );
}
