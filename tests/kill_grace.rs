//! The kill grace (SIGTERM, then SIGKILL after it) is settable: `kill-grace` in the
//! configuration, over it `SPEC_EXEC_KILL_GRACE`. A bad value is an error before anything runs,
//! at its place. That a run uses it is tested in tests/run.rs (a timeout and Ctrl-C runs with a
//! grace of an hour that end without waiting for it).

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use support::{Run, Scratch, task, tasks_md, write};

fn scratch() -> Scratch {
    Scratch::new(&tasks_md(&[task("1", "Write it", "", "write=one.txt")]))
}

/// Appends `config` as the `[workspace.metadata.spec-exec]` table of the scratch workspace.
fn configure(s: &Scratch, config: &str) {
    let manifest = s.repo().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    write(
        &manifest,
        &format!("{text}\n[workspace.metadata.spec-exec]\n{config}\n"),
    );
    s.git(&["commit", "-qam", "Configure spec-exec"]);
}

#[test]
fn a_bad_kill_grace_in_the_environment_stops_the_run_before_it_starts() {
    let s = scratch();
    let mut cmd = s.run_command(&[]);
    cmd.env("SPEC_EXEC_KILL_GRACE", "soon");
    let run = Run::of(cmd);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("invalid SPEC_EXEC_KILL_GRACE: `soon` is not a duration"),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty(), "{}", run.context());
    assert!(!s.repo().join("one.txt").exists());
}

#[test]
fn kill_grace_in_the_configuration_is_read_and_a_bad_one_located() {
    let s = scratch();
    configure(&s, "kill-grace = \"200ms\"");
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("1"), "done", "{}", run.context());

    let s = scratch();
    configure(&s, "max-agents = 2\nkill-grace = 5");
    let run = s.run(&[]);
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "error: invalid `kill-grace` in [workspace.metadata.spec-exec]: expected a duration string\n --> Cargo.toml:7:1\n"
        ),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty());
}
