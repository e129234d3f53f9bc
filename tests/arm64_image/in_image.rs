//! Running a process as the image runs it: PID 1 of new user, mount and PID namespaces, qemu
//! registered with binfmt_misc there, chrooted into the tree as USER in WORKDIR with ENV alone;
//! and what the test reads of it from the host (`/proc` status lines, processes left).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal::SIGKILL};
use nix::unistd::Pid;

use super::common;
use super::dockerfile::Image;
use super::part;

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

/// A process started in the image: PID 1 of new user, mount and PID namespaces.
pub(super) struct InImage {
    unshare: Child,
    log: PathBuf,
}

/// Starts `argv` in the image at `root`, with the image's ENV (plus `extra`) alone.
pub(super) fn start_in_image(
    image: &Image,
    root: &Path,
    argv: &[String],
    extra: &[(&str, &str)],
) -> InImage {
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
    pub(super) fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The host pid of PID 1 of the namespace.
    pub(super) fn pid1(&self) -> i32 {
        let id = self.unshare.id();
        let children = fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap();
        children.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Waits for the exit (within `within`); the exit code and how long it took.
    pub(super) async fn exit_code(&mut self, within: Duration) -> Option<i32> {
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
pub(super) fn proc_status(pid: i32, name: &str) -> Vec<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default();
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

/// Live processes that inherited this test's marker, with their command lines.
pub(super) fn marked_processes(root: &Path) -> Vec<String> {
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
