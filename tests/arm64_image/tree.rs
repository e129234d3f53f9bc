//! The runtime stage laid out as a directory tree from the arm64 parts: the base's CPython and
//! shell, the user, the frameworks with their arm64 virtualenvs, the worker at the ENTRYPOINT.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::dockerfile::Image;
use super::{part, repo_root};

/// `cp -al` (hardlinks, so a tree of the cache costs nothing), or a copy across filesystems.
/// Files linked this way are never written: they are replaced.
pub(super) fn copy_tree(from: &Path, to: &Path) {
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
pub(super) fn write_new(path: &Path, text: &str) {
    let _ = fs::remove_file(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

pub(super) fn in_root(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

/// Lays out the runtime stage under `root`.
pub(super) fn lay_out(image: &Image, root: &Path) {
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
pub(super) fn copy_sources(from: &Path, to: &Path) {
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
