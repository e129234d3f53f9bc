//! Where the cgroup v2 hierarchy is: the worker's own cgroup (the `0::` line of
//! `/proc/self/cgroup`) mapped to a directory through the cgroup2 mounts of
//! `/proc/self/mountinfo`, and whether it can be written.

use std::fs;
use std::path::PathBuf;

use crate::procfs;

/// The worker's own cgroup v2 directory and its path as `/proc/self/cgroup` names it; `Err`
/// says why it cannot be had or written.
pub(super) fn own_cgroup_dir() -> Result<(PathBuf, String), String> {
    let cgroup = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let Some(own) = procfs::unified_cgroup(&cgroup) else {
        return Err(
            "the worker is in no cgroup v2 hierarchy (no 0:: line in /proc/self/cgroup)".into(),
        );
    };
    if own.ends_with(" (deleted)") {
        return Err(format!("the worker's cgroup {own} was removed"));
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mounts = cgroup2_mounts(&mountinfo);
    if mounts.is_empty() {
        return Err("no cgroup2 file system is mounted".into());
    }
    let mut seen = Vec::new();
    for m in &mounts {
        let Some(dir) = m.dir_of(&own) else {
            seen.push(format!("{} (shows {})", m.point.display(), m.root));
            continue;
        };
        if m.read_only {
            return Err(format!(
                "the cgroup2 mount {} is read-only",
                m.point.display()
            ));
        }
        return Ok((dir, own));
    }
    Err(format!(
        "the worker's cgroup {own} is not under any cgroup2 mount: {}",
        seen.join(", ")
    ))
}

/// A cgroup2 mount from `/proc/self/mountinfo`.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    /// The hierarchy's directory shown at the mount point (`/` unless a subtree is mounted).
    root: String,
    /// Where it is mounted.
    point: PathBuf,
    read_only: bool,
}

impl Mount {
    /// The directory of the cgroup `path` (as `/proc/self/cgroup` names it) under this mount.
    fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let root = self.root.trim_end_matches('/');
        let rest = path.strip_prefix(root)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let rest = rest.trim_start_matches('/');
        Some(if rest.is_empty() {
            self.point.clone()
        } else {
            self.point.join(rest)
        })
    }
}

/// Every cgroup2 mount of a mountinfo text, in order.
fn cgroup2_mounts(mountinfo: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // id parent major:minor root point options [optional…] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split(' ').next() != Some("cgroup2") {
            continue;
        }
        let f: Vec<&str> = left.split(' ').collect();
        if f.len() < 6 {
            continue;
        }
        out.push(Mount {
            root: unescape(f[3]),
            point: PathBuf::from(unescape(f[4])),
            read_only: f[5].split(',').any(|o| o == "ro"),
        });
    }
    out
}

/// Mountinfo's octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], oct) {
            out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cgroup2_mounts_and_maps_the_worker_s_cgroup_under_them() {
        let info = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 22 0:40 /docker/abc /sys/fs/cgroup\\040x ro,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
";
        let m = cgroup2_mounts(info);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert!(!m[0].read_only);
        assert_eq!(m[1].root, "/docker/abc");
        assert_eq!(m[1].point, PathBuf::from("/sys/fs/cgroup x"));
        assert!(m[1].read_only);
        for (mount, path, dir) in [
            (0, "/", Some("/sys/fs/cgroup/unified")),
            (0, "/a/b", Some("/sys/fs/cgroup/unified/a/b")),
            (1, "/docker/abc", Some("/sys/fs/cgroup x")),
            (1, "/docker/abc/t", Some("/sys/fs/cgroup x/t")),
            (1, "/docker/abcd", None),
            (1, "/other", None),
        ] {
            assert_eq!(m[mount].dir_of(path), dir.map(PathBuf::from), "{path}");
        }
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("tab\\011"), "tab\t");
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("end\\"), "end\\");
    }
}
