//! `cargo spec-exec deps`: a scripted agent answers which tasks depend on which; the answer
//! goes into tasks.md as the dialect's annotations, and a bad answer leaves the file as it was.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::{FEATURE, Scratch, plan_line, sigint, text, wait_until, write};

/// A Kiro list of six tasks that declares no dependencies.
const KIRO: &str = "# Implementation Plan\n\n\
- [ ] 1. Define the types\n  - The core types\n  - _Requirements: 1.1_\n\n\
- [ ] 2. Write the outbox\n  - _Requirements: 1.2_\n\n\
- [ ] 3. Render templates\n  - _Requirements: 2.1_\n\n\
- [ ] 4. Send email\n  - _Requirements: 2.2_\n\n\
- [ ] 5. Send webhooks\n  - _Requirements: 2.3_\n\n\
- [ ] 6. Document the settings\n  - _Requirements: 3.1_\n";

const GOOD: &str = r#"{"tasks": [
  {"id": "1", "depends_on": []},
  {"id": "2", "depends_on": ["1"], "reason": "queues the types"},
  {"id": "3", "depends_on": ["1"]},
  {"id": "4", "depends_on": ["2", "3"]},
  {"id": "5", "depends_on": ["2", "3"]},
  {"id": "6", "depends_on": []}
]}"#;

/// An agent that prints `output` (after reading its prompt) and exits with `code`; `extra` is
/// shell run first, in the workspace.
fn agent(s: &Scratch, output: &str, code: i32, extra: &str) -> String {
    let answer = s.ctl().join("answer.txt");
    write(&answer, output);
    let script = s.ctl().join("agent.sh");
    write(
        &script,
        &format!(
            "set -eu\ncat > \"{ctl}/prompt-seen.md\"\necho \"step=$SPEC_EXEC_STEP\" > \"{ctl}/env-seen\"\n{extra}\ncat \"{answer}\"\nexit {code}\n",
            ctl = s.ctl().display(),
            answer = answer.display(),
        ),
    );
    format!("bash {}", script.display())
}

/// The dependencies of every task in a dry run's plan.
fn dag(s: &Scratch) -> BTreeMap<String, Vec<String>> {
    let out = s
        .spec_exec(&[FEATURE, "--dry-run", "--message-format", "json"])
        .output()
        .unwrap();
    plan_line(&out)["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let deps = t["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().or(d["id"].as_str()).unwrap().to_owned())
                .collect();
            (t["id"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

fn deps(s: &Scratch, agent: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["deps", FEATURE, "--agent", agent];
    args.extend_from_slice(extra);
    s.spec_exec(&args).output().unwrap()
}

#[test]
fn a_kiro_list_without_dependencies_gets_exactly_the_answered_dag() {
    let s = Scratch::new(KIRO);
    let before = s.tasks_md();
    let agent = agent(&s, &format!("Thinking…\n```json\n{GOOD}\n```\n"), 0, "");

    // A dry run shows the change and writes nothing.
    let dry = deps(&s, &agent, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("+  - _Dependencies: 2, 3_"),
        "{}",
        text(&dry.stdout)
    );
    assert!(
        text(&dry.stdout).contains("critical path 3 tasks"),
        "{}",
        text(&dry.stdout)
    );
    assert_eq!(s.tasks_md(), before);

    let out = deps(&s, &agent, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("critical path 6 of 6 tasks, widest group 1 → critical path 3 of 6 tasks, widest group 2"), "{err}");
    assert!(err.contains("approval is stale"), "{err}");
    assert!(
        err.contains(&format!("cargo spec-exec approve {FEATURE}")),
        "{err}"
    );
    // The agent was told what it is doing, and got the tasks in its prompt.
    assert_eq!(
        std::fs::read_to_string(s.ctl().join("env-seen")).unwrap(),
        "step=deps\n"
    );
    let prompt = std::fs::read_to_string(s.ctl().join("prompt-seen.md")).unwrap();
    assert!(
        prompt.contains("Send webhooks") && prompt.contains("depends_on"),
        "{prompt}"
    );

    let want: BTreeMap<String, Vec<String>> = [
        ("1", vec![]),
        ("2", vec!["1"]),
        ("3", vec!["1"]),
        ("4", vec!["2", "3"]),
        ("5", vec!["2", "3"]),
        ("6", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(dag(&s), want);
    // Only lines were added: removing them gives the file back.
    let added: String = s
        .tasks_md()
        .lines()
        .filter(|l| !l.contains("_Dependencies:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(added, before);
}

#[test]
fn every_bad_answer_leaves_tasks_md_byte_identical() {
    let s = Scratch::new(KIRO);
    let before = std::fs::read(s.tasks_path()).unwrap();
    let cases: Vec<(&str, String, i32, &str, &str)> = vec![
        (
            "not the format",
            "I think they are all independent.".into(),
            0,
            "",
            "| I think they are all independent.",
        ),
        (
            "escape sequences",
            "\u{1b}]0;title\u{7}\u{1b}[2J not json".into(),
            0,
            "",
            "| \u{fffd}]0;title\u{fffd}\u{fffd}[2J not json",
        ),
        (
            "unknown id",
            r#"{"tasks": [{"id": "9", "depends_on": []}]}"#.into(),
            0,
            "",
            "9",
        ),
        (
            "unknown dependency",
            r#"{"tasks": [{"id": "2", "depends_on": ["7"]}]}"#.into(),
            0,
            "",
            "7",
        ),
        (
            "itself",
            r#"{"tasks": [{"id": "2", "depends_on": ["2"]}]}"#.into(),
            0,
            "",
            "itself",
        ),
        (
            "cycle",
            r#"{"tasks": [{"id": "2", "depends_on": ["3"]}, {"id": "3", "depends_on": ["2"]}]}"#
                .into(),
            0,
            "",
            "→",
        ),
        ("agent fails", GOOD.into(), 3, "", "exit 3"),
        (
            "agent edits",
            GOOD.into(),
            0,
            "echo x > stray.txt",
            "changed the working tree",
        ),
    ];
    for (what, output, code, extra, says) in cases {
        let agent = agent(&s, &output, code, extra);
        let out = deps(&s, &agent, &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(says), "{what}: expected {says:?} in\n{err}");
        assert_eq!(std::fs::read(s.tasks_path()).unwrap(), before, "{what}");
        let _ = std::fs::remove_file(s.repo().join("stray.txt"));
    }
}

#[test]
fn the_shell_agent_is_refused_and_json_reports_the_edits() {
    let s = Scratch::new(KIRO);
    let out = deps(&s, "shell", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no model to ask"),
        "{}",
        text(&out.stderr)
    );

    let agent = agent(&s, GOOD, 0, "");
    let out = deps(&s, &agent, &["--dry-run", "--message-format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line: Value = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["type"] == "deps")
        .unwrap();
    assert_eq!(line["written"], false);
    assert_eq!(line["edits"].as_array().unwrap().len(), 6);
    assert_eq!(line["summary"]["before"]["critical_path"], 6);
    assert_eq!(line["summary"]["after"]["critical_path"], 3);
    assert_eq!(line["answer"]["tasks"][1]["reason"], "queues the types");
}

#[test]
fn tasks_md_edited_while_the_agent_answers_is_not_written() {
    let s = Scratch::new(KIRO);
    let path = s.tasks_path();
    let edit = format!("echo '- [ ] 7. Added meanwhile' >> '{}'", path.display());
    let agent = agent(&s, GOOD, 0, &edit);
    let before = s.tasks_md();
    let out = deps(&s, &agent, &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("changed while the agent was answering"),
        "{err}"
    );
    // The edit is kept, and nothing of the answer was written.
    assert_eq!(s.tasks_md(), format!("{before}- [ ] 7. Added meanwhile\n"));
}

#[test]
fn a_hung_agent_is_stopped_at_the_timeout_and_nothing_is_written() {
    let s = Scratch::new(KIRO);
    let before = std::fs::read(s.tasks_path()).unwrap();
    let agent = agent(&s, GOOD, 0, "sleep 300");
    let out = deps(&s, &agent, &["--timeout", "1s"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("did not answer within 1s"), "{err}");
    assert_eq!(std::fs::read(s.tasks_path()).unwrap(), before);
}

#[test]
fn a_long_list_is_asked_in_parts() {
    let mut md = String::from("# Implementation Plan\n\n");
    for major in 1..=4 {
        md.push_str(&format!("- [ ] {major}. Part {major}\n"));
        for minor in 1..=40 {
            md.push_str(&format!(
                "- [ ] {major}.{minor} Step {minor} of part {major}\n"
            ));
        }
        md.push('\n');
    }
    let s = Scratch::new(&md);
    let agent = agent(&s, r#"{"tasks": []}"#, 0, "");
    let out = deps(&s, &agent, &["--dry-run"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("(part 1 of 2)") && err.contains("(part 2 of 2)"),
        "{err}"
    );
    assert!(!err.contains("part 3"), "{err}");
    // Nothing answered: every task keeps its place, and says so.
    assert!(err.contains("warning"), "{err}");
}

#[test]
fn ctrl_c_while_the_agent_answers_exits_130_and_writes_nothing() {
    let s = Scratch::new(KIRO);
    let before = std::fs::read(s.tasks_path()).unwrap();
    let started = s.ctl().join("started");
    let agent = agent(
        &s,
        GOOD,
        0,
        &format!("touch '{}'; sleep 300", started.display()),
    );
    let child = s
        .spec_exec(&["deps", FEATURE, "--agent", &agent])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the agent never started", || started.exists());
    sigint(child.id());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted while the agent was answering"),
        "{err}"
    );
    assert_eq!(std::fs::read(s.tasks_path()).unwrap(), before);
}
