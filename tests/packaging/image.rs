//! The runtime filesystem the `Dockerfile` produces, laid out in a temp dir and run with the
//! worker as PID 1 of a fresh PID namespace, as the image's user (no Docker engine here).

use super::dockerfile::*;
use super::*;

/// The tiny framework laid out beside the real ones: writes a file into its task folder, leaves
/// a background `sleep` behind (an orphan re-parented to PID 1), and with the word `slow` in
/// its envelope keeps running until it is stopped.
pub(crate) const STRAGGLER: &str = r#"envelope=$(cat)
echo "written by uid $(id -u)" >"$AGENTDISPATCH_TASK_DIR/note.txt"
sleep 30 </dev/null >/dev/null 2>&1 &
case "$envelope" in *slow*) sleep 30 ;; esac
echo '{"type":"task.result","output":"straggler left behind"}'"#;

/// `path` of the image, inside `root`.
pub(crate) fn in_root(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

/// The runtime stage's environment, its absolute paths moved under `root`.
pub(crate) fn image_env(instructions: &[Instruction], root: &Path) -> Vec<(String, String)> {
    let envs = last_stage(instructions)
        .into_iter()
        .filter(|i| i.keyword == "ENV");
    let reroot = |value: String| match value.starts_with('/') {
        true => in_root(root, &value).to_string_lossy().into_owned(),
        false => value,
    };
    assignments(envs)
        .into_iter()
        .map(|(name, value)| (name, reroot(value)))
        .collect()
}

/// Copies a framework folder like the Dockerfile's `COPY frameworks/`; its host `.venv`, when
/// there is one, is linked rather than copied (the image builds its own).
pub(crate) fn copy_framework(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".venv" {
            symlink(entry.path(), to.join(name)).unwrap();
        } else if entry.file_type().unwrap().is_dir() {
            if name != "__pycache__" {
                copy_framework(&entry.path(), &to.join(name));
            }
        } else {
            fs::copy(entry.path(), to.join(name)).unwrap();
        }
    }
}

/// Lays out the image under `root`: the binary at the ENTRYPOINT path, the frameworks directory
/// with `_shared`, the tiny `straggler` and, when its host venv has been set up, the real
/// `langgraph` (returns whether it is there), and the home and artifact dirs of uid 1000.
pub(crate) fn lay_out_image(instructions: &[Instruction], root: &Path) -> bool {
    let env = image_env(instructions, root);
    let var = |name: &str| env.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let frameworks = PathBuf::from(var("AGENTDISPATCH_FRAMEWORKS_DIR"));
    let source = repo_root().join("frameworks");
    copy_framework(&source.join("_shared"), &frameworks.join("_shared"));
    let langgraph = source.join("langgraph/.venv/bin/python").exists();
    if langgraph {
        copy_framework(&source.join("langgraph"), &frameworks.join("langgraph"));
    }
    let manifest = json!({
        "name": "straggler", "command": ["sh", "-c", STRAGGLER], "timeoutSeconds": 60
    });
    fs::create_dir_all(frameworks.join("straggler")).unwrap();
    fs::write(
        frameworks.join("straggler/framework.json"),
        manifest.to_string(),
    )
    .unwrap();
    for dir in [var("HOME"), var("AGENTDISPATCH_ARTIFACT_DIR")] {
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(1000), Some(1000)).unwrap();
    }
    let entrypoint = entrypoint(instructions);
    let binary = in_root(root, &entrypoint[0]);
    fs::create_dir_all(binary.parent().unwrap()).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_agentdispatch-worker"), binary).unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    langgraph
}

/// ENTRYPOINT followed by CMD, as the container starts them.
pub(crate) fn entrypoint(instructions: &[Instruction]) -> Vec<String> {
    let last = last_stage(instructions);
    let json = |k| {
        args_of(&last, k)
            .last()
            .map(|a| serde_json::from_str(a).unwrap())
    };
    let mut argv: Vec<String> = json("ENTRYPOINT").unwrap();
    argv.extend(json("CMD").unwrap_or_default());
    argv
}

/// The worker started as PID 1 of a new PID namespace; killed with its namespace when dropped.
pub(crate) struct Pid1 {
    pub(crate) unshare: std::process::Child,
    /// The worker's pid as this test sees it (outside the namespace).
    pub(crate) worker: i32,
    pub(crate) url: String,
    pub(crate) log: PathBuf,
}

impl Pid1 {
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first `/ping` answer, waited for.
    pub(crate) async fn first_ping(&self) -> Value {
        let started = Instant::now();
        loop {
            if let Some(answer) = ping(&self.url).await {
                return answer;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no /ping:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM to the worker, as `docker stop` sends it; its exit code, within 15 s.
    pub(crate) async fn stop(&mut self) -> Option<i32> {
        let stopping = Instant::now();
        kill(Pid::from_raw(self.worker), SIGTERM).unwrap();
        loop {
            if let Some(status) = self.unshare.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                stopping.elapsed() < Duration::from_secs(15),
                "no exit:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Pid1 {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.worker), SIGKILL);
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// `wrapper` then `argv`, run the way the image runs its processes: as the Dockerfile's `USER`,
/// in its `WORKDIR`, with its `ENV` alone (plus PATH, and a marker that children inherit).
/// The host's venv interpreter may live in a root-only home (pyenv under /root), so the
/// process gets CAP_DAC_READ_SEARCH: it can read anything, but still writes only where the
/// user may, which is what the artifact directory must allow.
pub(crate) fn image_process(
    instructions: &[Instruction],
    root: &Path,
    wrapper: &[&str],
    argv: &[String],
) -> Command {
    let last = last_stage(instructions);
    let user = *args_of(&last, "USER").last().expect("a USER");
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let mut full: Vec<String> = wrapper.iter().map(|w| w.to_string()).collect();
    full.extend([
        "setpriv".into(),
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
    ]);
    full.extend(["--clear-groups", "--inh-caps=+dac_read_search"].map(String::from));
    full.extend(["--ambient-caps=+dac_read_search", "--"].map(String::from));
    full.extend(argv.iter().cloned());
    let workdir = args_of(&last, "WORKDIR").last().map(|w| in_root(root, w));
    let mut command = Command::new(&full[0]);
    command
        .args(&full[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(image_env(instructions, root))
        .env("AGENTDISPATCH_PACKAGING_TEST", root)
        .current_dir(workdir.unwrap_or_else(|| root.to_owned()));
    command
}

/// The image's ENTRYPOINT and CMD with the binary's path inside `root`.
pub(crate) fn image_argv(instructions: &[Instruction], root: &Path) -> Vec<String> {
    let mut argv = entrypoint(instructions);
    argv[0] = in_root(root, &argv[0]).to_string_lossy().into_owned();
    argv
}

/// Starts the image's entrypoint as PID 1 of a new PID namespace, on `PORT=0`: its URL names
/// the port its `listening` log line says it bound.
pub(crate) async fn start_pid1(instructions: &[Instruction], root: &Path) -> Pid1 {
    let log = root.join("worker.log");
    let argv = image_argv(instructions, root);
    let wrapper = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
    let unshare = image_process(instructions, root, &wrapper, &argv)
        .env("PORT", "0")
        .env("AGENTDISPATCH_HOST", "127.0.0.1")
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .expect("unshare");
    let worker = worker_pid(unshare.id() as i32);
    let port = || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find_map(common::listening::listening_port)
    };
    assert!(
        common::eventually(Duration::from_secs(20), || port().is_some()).await,
        "no \"listening\" line:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    let url = format!("http://127.0.0.1:{}", port().unwrap());
    Pid1 {
        unshare,
        worker,
        url,
        log,
    }
}

/// The child of `unshare --fork`: the worker, once setpriv has exec'd it.
pub(crate) fn worker_pid(unshare: i32) -> i32 {
    for _ in 0..200 {
        let children = fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"));
        if let Some(pid) = children.unwrap_or_default().split_whitespace().next() {
            let pid: i32 = pid.parse().unwrap();
            let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if exe.ends_with("agentdispatch-worker") {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("unshare did not start the worker");
}

/// A `Name:` line of /proc/<pid>/status, split into words.
pub(crate) fn proc_status(pid: i32, name: &str) -> Vec<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default();
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

/// Pids of processes (other than zombies) that inherited the marker of this test's worker.
pub(crate) fn marked_processes(root: &Path) -> Vec<i32> {
    let marker = format!("AGENTDISPATCH_PACKAGING_TEST={}", root.display());
    let pids = fs::read_dir("/proc").unwrap().flatten();
    let pids = pids.filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()));
    let marked = |pid: &i32| {
        let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let found = env.split(|b| *b == 0).any(|e| e == marker.as_bytes());
        found && common::state(*pid) != Some('Z')
    };
    pids.filter(marked).collect()
}

pub(crate) async fn post(url: &str, body: Value) -> Value {
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{url}/invocations"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

pub(crate) async fn ping(url: &str) -> Option<Value> {
    let response = reqwest::get(format!("{url}/ping")).await.ok()?;
    response.json().await.ok()
}

/// Whether this test process runs as root (needed for a PID namespace and for setpriv).
pub(crate) fn is_root() -> bool {
    proc_status(std::process::id() as i32, "Uid:")[1] == "0"
}

#[tokio::test]
async fn image_layout_runs_the_worker_as_pid_1_and_it_stops_cleanly_on_sigterm() {
    if !is_root() || which("unshare").is_none() || which("setpriv").is_none() {
        panic!("this test needs root, unshare and setpriv (util-linux) for a PID namespace");
    }
    let instructions = dockerfile();
    let root = tempfile::tempdir().unwrap();
    let langgraph = lay_out_image(&instructions, root.path());
    let mut argv = image_argv(&instructions, root.path());
    argv.truncate(1);
    argv.push("frameworks".into());
    let listed = image_process(&instructions, root.path(), &[], &argv)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("straggler"),
        "the build's `frameworks` step:\n{listed}"
    );

    let mut w = start_pid1(&instructions, root.path()).await;
    let first = w.first_ping().await;
    assert_eq!(first["status"], "Healthy");
    assert!(first["time_of_last_update"].is_u64(), "{first}");
    let nspid = proc_status(w.worker, "NSpid:");
    assert_eq!(
        nspid.last().map(String::as_str),
        Some("1"),
        "PID 1 in its namespace"
    );
    assert_eq!(
        proc_status(w.worker, "Uid:")[0],
        "1000",
        "the worker runs as USER 1000"
    );

    let echo = post(&w.url, json!({"input": {"instruction": "hi"}})).await;
    assert_eq!(echo["output"], "Accepted instruction: hi", "{echo}");
    if langgraph {
        let payload = json!({"framework": "langgraph", "input": {"instruction": "hello world"}});
        let answer = post(&w.url, payload).await;
        assert_eq!(
            answer["output"],
            "Shouted: HELLO WORLD",
            "{answer}\n{}",
            w.log()
        );
    } else {
        panic!("no frameworks/langgraph/.venv: run scripts/setup-frameworks.sh langgraph");
    }

    let answer = post(&w.url, json!({"framework": "straggler", "input": {}})).await;
    assert_eq!(answer["ok"], true, "{answer}\n{}", w.log());
    let result_json = PathBuf::from(answer["artifacts"][0]["uri"].as_str().unwrap());
    let note = fs::read_to_string(result_json.with_file_name("note.txt")).unwrap();
    assert_eq!(
        note.trim(),
        "written by uid 1000",
        "the task folder is writable"
    );
    let task_id = answer["taskId"].as_str().unwrap().to_owned();
    let reaped = common::eventually(Duration::from_secs(5), || {
        common::task_processes(&task_id).is_empty() && common::zombie_children(w.worker).is_empty()
    });
    assert!(reaped.await, "the straggler is killed and PID 1 reaps it");

    let payload =
        json!({"framework": "straggler", "async": true, "input": {"instruction": "slow"}});
    let running = post(&w.url, payload).await;
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(ping(&w.url).await.unwrap()["status"], "HealthyBusy");

    assert_eq!(
        w.stop().await,
        Some(0),
        "exit code after SIGTERM:\n{}",
        w.log()
    );
    let slow_task_dir = result_json
        .parent()
        .unwrap()
        .with_file_name(running["taskId"].as_str().unwrap());
    let result = fs::read_to_string(slow_task_dir.join("result.json")).unwrap();
    let result: Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["status"], "cancelled", "{result}");
    assert!(!Path::new(&format!("/proc/{}", w.worker)).exists());
    assert_eq!(
        marked_processes(root.path()),
        Vec::<i32>::new(),
        "no process is left"
    );
}
