//! An agent's program is looked for once, from the caller's directory (and `PATH`), and run by
//! that path in the task's worktree: `--agent ./my-agent` is the caller's `./my-agent`, which
//! the worktree does not have. The built binary, in a temporary git repository.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

mod support;

use support::{FEATURE, Run, Scratch, task, tasks_md, write};

/// An executable script in a directory outside the repository, which writes `from-caller.txt`
/// (with its arguments) in the directory it is run in.
fn caller_with_agent(s: &Scratch) -> PathBuf {
    let caller = s.repo().parent().unwrap().join("caller");
    let script = caller.join("my-agent.sh");
    write(
        &script,
        "#!/bin/sh\necho \"$SPEC_EXEC_TASK_ID $*\" > from-caller.txt\n",
    );
    let mut perm = std::fs::metadata(&script).unwrap().permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(&script, perm).unwrap();
    caller
}

fn run_from(s: &Scratch, dir: &Path, agent: &str) -> Run {
    let manifest = s.repo().join("Cargo.toml");
    let mut cmd = s.spec_exec(&[
        "run",
        FEATURE,
        "--agent",
        agent,
        "--message-format",
        "json",
        "--manifest-path",
        manifest.to_str().unwrap(),
    ]);
    cmd.current_dir(dir);
    Run::of(cmd)
}

#[test]
fn a_relative_agent_program_is_the_callers_not_the_worktrees() {
    let s = Scratch::new(&tasks_md(&[task("1", "Write it", "", "nothing")]));
    let caller = caller_with_agent(&s);
    let run = run_from(&s, &caller, "./my-agent.sh --flag 'two words'");
    run.assert_code(0);
    assert_eq!(run.status("1"), "done", "{}", run.context());
    assert_eq!(
        s.show(&Scratch::branch("1"), "from-caller.txt"),
        "1 --flag two words\n"
    );
    // The report names the agent as it was given.
    assert_eq!(
        run.finished("1")["agent"],
        "./my-agent.sh",
        "{}",
        run.context()
    );
}

#[test]
fn a_relative_agent_program_missing_from_the_callers_directory_is_refused_before_the_run() {
    let s = Scratch::new(&tasks_md(&[task("1", "Write it", "", "nothing")]));
    let caller = caller_with_agent(&s);
    // It is in the caller's directory, not in the repository's: from the repository, it is not
    // there, and nothing starts.
    let run = run_from(&s, &s.repo(), "./my-agent.sh");
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("agent program `./my-agent.sh` was not found")
            && run.stderr.contains(&s.repo().display().to_string()),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty());
    assert!(caller.join("my-agent.sh").is_file());
}

/// In the configuration, a program's path is from the workspace root, where the configuration
/// is, wherever spec-exec is run from.
#[test]
fn a_relative_program_in_the_configuration_is_from_the_workspace_root() {
    let s = Scratch::new(&tasks_md(&[task("1", "Write it", "", "nothing")]));
    let script = s.repo().join("tools/agent.sh");
    write(
        &script,
        "#!/bin/sh\necho \"$SPEC_EXEC_TASK_ID $*\" > from-config.txt\n",
    );
    let mut perm = std::fs::metadata(&script).unwrap().permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(&script, perm).unwrap();
    let manifest = s.repo().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    write(
        &manifest,
        &format!(
            "{text}\n[workspace.metadata.spec-exec]\nagent = [\"./tools/agent.sh\", \"--from-config\"]\n"
        ),
    );
    s.git(&["add", "-A"]);
    s.git(&["commit", "-qm", "An agent of the project's own"]);
    let mut cmd = s.spec_exec(&["run", FEATURE, "--message-format", "json"]);
    cmd.current_dir(s.repo().join("crates/tiny"));
    let run = Run::of(cmd);
    run.assert_code(0);
    assert_eq!(run.status("1"), "done", "{}", run.context());
    assert_eq!(
        s.show(&Scratch::branch("1"), "from-config.txt"),
        "1 --from-config\n"
    );
}
