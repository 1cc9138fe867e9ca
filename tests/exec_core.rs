//! The exec core's contracts seen from outside: a run that cannot write its report still ends
//! with `run-finished` and exit 1 (work was done), and the human lines count and say what
//! happened.

mod support;

use support::{FEATURE, Scratch, helper_agent, shell_task, sigint, task, tasks_md, wait_until};

#[test]
fn a_report_that_cannot_be_written_exits_1_with_run_finished() {
    // The task leaves a directory where report.json is to go: the report cannot be written.
    let s = Scratch::package(&tasks_md(&[shell_task(
        "1",
        "Task 1",
        "",
        r#"mkdir -p "$(dirname "$(dirname "$SPEC_EXEC_PROMPT_FILE")")/report.json/x" && echo one > one.txt"#,
    )]));
    let run = s.shell_run(&[]);
    run.assert_code(1);
    assert_eq!(run.status("1"), "done", "{}", run.context());
    let finished = run.run_finished();
    assert_eq!(finished["exit_code"], 1, "{}", run.context());
    assert!(finished["report"].is_null(), "{}", run.context());
    let error = finished["error"].as_str().unwrap_or_default();
    assert!(error.contains("report.json"), "{}", run.context());
    // The task's work is kept: committed and ticked.
    assert!(s.git_ok(&["rev-parse", "--verify", "-q", &Scratch::branch("1")]));
    assert!(support::is_ticked(&s.tasks_md(), "1"));
    // Nothing half-written is left beside it.
    let run_dir = std::fs::read_dir(s.run_dir()).unwrap();
    let names: Vec<String> = run_dir
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".report-")),
        "{names:?}"
    );
}

#[test]
fn human_lines_count_in_the_singular_and_say_what_failed() {
    let s = Scratch::package(&tasks_md(&[task(
        "1",
        "Breaks",
        "",
        "say=compile~error~here exit=3",
    )]));
    let agent = helper_agent();
    let run = s.run_args(&["run", FEATURE, "--agent", &agent, "--color", "never"]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains(&format!("Running {FEATURE}: 1 task, up to")),
        "{}",
        run.stderr
    );
    let failed = run
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with("Failed 1 "))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(
        failed.contains("last output: helper: task 1 exits with 3"),
        "{failed}"
    );
}

#[test]
fn ctrl_c_in_human_output_says_interrupted_once() {
    let s = Scratch::package(&tasks_md(&[task("1", "Slow", "", "touch=started hang")]));
    let agent = helper_agent();
    let child = s
        .spec_exec(&["run", FEATURE, "--agent", &agent, "--color", "never"])
        .env("SPEC_EXEC_KILL_GRACE", "1h")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the agent never started", || {
        s.ctl().join("started").exists()
    });
    sigint(child.id());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let notice = stderr
        .lines()
        .find(|l| l.contains("stopping the agents"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(
        notice.trim_start(),
        "Interrupted stopping the agents (Ctrl-C again to kill them)"
    );
    assert!(!stderr.contains("Stopping Interrupted"), "{stderr}");
    assert!(stderr.contains("Interrupted 1 (not committed"), "{stderr}");
}
