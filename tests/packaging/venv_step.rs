//! The Dockerfile's venv step, its shell run as written with `sh` (dash in the image) on a copy of
//! `frameworks/` holding folders of the user's own made by the real `agentdispatch-worker init`:
//! which folders it keeps, which it installs, which it takes out (issue 23 #2). Its absolute
//! paths are moved under a temp dir; `python` and `scripts/setup-frameworks.sh` are fakes that
//! make no venv and reach no network, the second writing down what it was asked to install.

use super::dockerfile::*;
use super::*;

/// The runtime stage's `RUN` that calls `scripts/setup-frameworks.sh`.
fn venv_step(instructions: &[Instruction]) -> String {
    last_stage(instructions)
        .into_iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("scripts/setup-frameworks.sh"))
        .expect("the venv step")
        .args
        .clone()
}

/// Copies a shipped framework folder's files as `COPY frameworks/` does (no `.venv`).
fn copy_files(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name();
        let kind = entry.file_type().unwrap();
        if name == ".venv" || name == "__pycache__" {
            continue;
        }
        if kind.is_dir() {
            copy_files(&entry.path(), &to.join(&name));
        } else if kind.is_file() {
            fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// The build context's `frameworks/` under `root`, with `mine` (strands) and `other` (langgraph)
/// written by `init`.
fn context(root: &Path) {
    let frameworks = root.join("frameworks");
    copy_files(&repo_root().join("frameworks"), &frameworks);
    fs::remove_dir_all(frameworks.join("tests")).ok();
    for (name, framework) in [("mine", "strands"), ("other", "langgraph")] {
        let out = common::worker_command()
            .args(["init", name, "--framework", framework, "--dir"])
            .arg(&frameworks)
            .output()
            .unwrap();
        assert!(out.status.success(), "init {name}: {out:?}");
    }
    let scripts = root.join("scripts");
    fs::create_dir_all(&scripts).unwrap();
    write_executable(
        &scripts.join("setup-frameworks.sh"),
        "#!/bin/sh\necho \"$@\" >\"$STEP_ROOT/installed\"\n",
    );
    let bin = root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    // `python -m venv DIR`: a DIR/bin/pip that does nothing.
    write_executable(
        &bin.join("python"),
        "#!/bin/sh\nmkdir -p \"$3/bin\" && printf '#!/bin/sh\\n' >\"$3/bin/pip\" && chmod +x \"$3/bin/pip\"\n",
    );
}

/// Runs the step in `root` with the Dockerfile's ARG defaults and `args` over them.
fn run_step(root: &Path, args: &[(&str, &str)]) -> std::process::Output {
    let instructions = dockerfile();
    let r = root.to_str().unwrap();
    let step = venv_step(&instructions)
        .replace("/tmp/", &format!("{r}/tmp/"))
        .replace("/root/.cache", &format!("{r}/root-cache"));
    let defaults = assignments(
        last_stage(&instructions)
            .into_iter()
            .filter(|i| i.keyword == "ARG"),
    );
    let path = format!("{}:{}", root.join("bin").display(), "/usr/bin:/bin");
    Command::new("sh")
        .arg("-c")
        .arg(step)
        .current_dir(root)
        .env_clear()
        .env("PATH", path)
        .env("STEP_ROOT", root)
        .envs(defaults.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(args.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn the_venv_step_keeps_and_installs_your_own_folders_and_leaves_out_what_it_is_told() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    context(root);
    let out = run_step(root, &[("LEAVE_OUT", "other")]);
    assert!(out.status.success(), "{out:?}");
    let fw = root.join("frameworks");
    // Installed: the shipped frameworks named in FRAMEWORKS, then each folder of your own.
    let installed = fs::read_to_string(root.join("installed")).unwrap();
    assert_eq!(
        installed.split_whitespace().collect::<Vec<_>>(),
        [
            "langchain",
            "langgraph",
            "openai-agents",
            "pydantic-ai",
            "strands",
            "mine"
        ]
    );
    // Your own folder, whole; the one named in LEAVE_OUT, gone.
    for file in [
        "framework.json",
        "runner.py",
        "my_agent.py",
        "test_my_agent.py",
        "requirements.in",
        "requirements.txt",
    ] {
        assert!(fw.join("mine").join(file).is_file(), "mine/{file}");
    }
    assert!(!fw.join("other").exists(), "LEAVE_OUT=other kept it");
    // crewai (not in FRAMEWORKS): its code stays for folders that run its runner, but no
    // manifest (the worker does not list it) and no requirements (no venv).
    let crewai = fw.join("crewai");
    assert!(crewai.join("runner.py").is_file());
    for file in ["framework.json", "requirements.txt", "requirements.in"] {
        assert!(!crewai.join(file).exists(), "crewai/{file} kept");
    }
    assert!(fw.join("_shared/agentdispatch").is_dir());
    assert!(!root.join("scripts").exists(), "the step removes scripts/");
    // What the worker in the image lists: your own folder, not crewai.
    let listed = common::worker_command()
        .arg("frameworks")
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", &fw)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("mine") && !listed.contains("crewai"),
        "{listed}"
    );
}

#[test]
fn a_leave_out_that_is_not_a_folder_name_fails_the_build_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    context(root);
    for bad in ["../scripts", "_shared", "."] {
        let out = run_step(root, &[("LEAVE_OUT", bad)]);
        assert!(!out.status.success(), "LEAVE_OUT={bad} passed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "LEAVE_OUT: '{bad}' is not a framework folder's name"
            )),
            "{stderr}"
        );
        assert!(root.join("scripts").is_dir() && root.join("frameworks/_shared").is_dir());
    }
}

/// The frameworks README's `uv pip compile` line names `scripts/setup-frameworks.sh --uv`, since
/// a newcomer has no `uv` on PATH (the set-up installs its own into a tools venv): the option
/// prints a uv that runs.
#[test]
fn setup_frameworks_names_the_uv_it_uses() {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/setup-frameworks.sh"))
        .arg("--uv")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uv = String::from_utf8(out.stdout).unwrap();
    let version = Command::new(uv.trim()).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("uv "),
        "{uv}: {version:?}"
    );
    let readme = fs::read_to_string(repo_root().join("frameworks/README.md")).unwrap();
    assert!(readme.contains("\"$(scripts/setup-frameworks.sh --uv)\" pip compile"));
}
