//! Integration tests of specflow's review gates (review → rework → review again): the built
//! binary, in temporary git repositories, with `fixtures/agents/helper.sh` as the agent. Its
//! `review=PATH:N` directive writes a review that asks for changes until its Nth run, `say=…`
//! prints a verdict, `append=PATH` makes a change on every run.

#![allow(clippy::unwrap_used, reason = "tests")]

use serde_json::Value;

mod support;

use support::{Scratch, task, tasks_md, write};

/// The gate of track A: CR-A, PR-A after CR-A approves, RW-A when either asks for changes, and
/// task 2 after PR-A approves.
fn gate(cr: &str, pr: &str) -> String {
    tasks_md(&[
        task("1", "Build", "", "write=one.txt"),
        task("CR-A", "Code review", "Task 1", cr),
        task("PR-A", "Product review", "CR-A (approved)", pr),
        task(
            "RW-A",
            "Rework",
            "CR-A and/or PR-A (failed)",
            "append=fix.txt",
        ),
        task("2", "After the gate", "PR-A (approved)", "write=two.txt"),
    ])
}

/// The first review asks for changes, the rework runs once with the findings, the second round
/// approves; what waits for the gate runs after it, on top of the last round.
#[test]
fn a_review_that_requires_changes_loops_until_it_approves() {
    let s = Scratch::package(&gate(
        "review=code_review/CR-A.md:2",
        "say=Status:~APPROVED",
    ));
    let run = s.run(&[]);
    run.assert_code(0);
    for (id, status) in [
        ("1", "done"),
        ("CR-A", "done"),
        ("PR-A", "done"),
        ("RW-A", "done"),
        ("2", "done"),
    ] {
        assert_eq!(run.status(id), status, "{id}\n{}", run.context());
    }
    assert_eq!(
        run.verdicts("CR-A"),
        [
            (1, "requires-changes".to_owned()),
            (2, "approved".to_owned())
        ]
    );
    assert_eq!(run.verdicts("PR-A"), [(1, "approved".to_owned())]);
    assert_eq!(s.starts("CR-A"), 2);
    assert_eq!(s.starts("RW-A"), 1, "the rework ran once");
    assert_eq!(s.starts("PR-A"), 1);

    // The branches of every round: the rework on the first round, the second round on the
    // rework, and what follows on the second round.
    let branches = s.branches();
    for id in ["1", "CR-A", "RW-A", "CR-A.round-2", "PR-A", "2"] {
        assert!(
            branches.contains(&Scratch::branch(id)),
            "{id}: {branches:?}"
        );
    }
    for id in ["RW-A.round-2", "CR-A.round-3", "PR-A.round-2"] {
        assert!(
            !branches.contains(&Scratch::branch(id)),
            "{id}: {branches:?}"
        );
    }
    assert!(s.is_ancestor(&Scratch::branch("CR-A"), &Scratch::branch("RW-A")));
    assert!(s.is_ancestor(&Scratch::branch("RW-A"), &Scratch::branch("CR-A.round-2")));
    assert!(s.is_ancestor(&Scratch::branch("CR-A.round-2"), &Scratch::branch("PR-A")));
    assert!(s.is_ancestor(&Scratch::branch("PR-A"), &Scratch::branch("2")));
    // Each round's review file is committed on its round's branch, with the verdict recorded.
    let first = s.git(&[
        "show",
        &format!("{}:code_review/CR-A.md", Scratch::branch("CR-A")),
    ]);
    assert!(first.contains("REQUIRES CHANGES"), "{first}");
    let second = s.git(&[
        "show",
        &format!("{}:code_review/CR-A.md", Scratch::branch("CR-A.round-2")),
    ]);
    assert!(second.contains("APPROVED"), "{second}");
    let message = s.git(&["log", "-1", "--format=%B", &Scratch::branch("CR-A.round-2")]);
    assert!(
        message.contains("Spec-Exec-Verdict: approved") && message.contains("Spec-Exec-Round: 2"),
        "{message}"
    );
    let message = s.git(&["log", "-1", "--format=%B", &Scratch::branch("CR-A")]);
    assert!(
        message.contains("Spec-Exec-Verdict: requires-changes"),
        "{message}"
    );

    // The rework's prompt held the review's findings.
    let prompt = std::fs::read_to_string(s.run_dir().join("prompts/RW-A.md")).unwrap();
    assert!(prompt.contains("fix-CR-A-round-1"), "{prompt}");
    assert!(prompt.contains("code_review/CR-A.md"), "{prompt}");
    let prompt = std::fs::read_to_string(s.run_dir().join("prompts/CR-A.round-2.md")).unwrap();
    assert!(prompt.contains("review round 2"), "{prompt}");

    // Task 2 started only after the gate's last round and PR-A's approval.
    let approved = run.position(|e| {
        e["type"] == "review-verdict" && e["id"] == "PR-A" && e["verdict"] == "approved"
    });
    let two = run.position(|e| e["type"] == "task-started" && e["id"] == "2");
    assert!(approved < two);
    let rework = run.position(|e| e["type"] == "rework-finished" && e["id"] == "RW-A");
    let second_round =
        run.position(|e| e["type"] == "task-started" && e["id"] == "CR-A" && e["round"] == 2);
    assert!(rework < second_round);

    // The review's report: its final branch and verdict, and every round.
    let cr = run.finished("CR-A");
    assert_eq!(cr["branch"], Scratch::branch("CR-A.round-2"));
    assert_eq!(cr["verdict"], "approved");
    let rounds: Vec<(String, u64, String, Value)> = cr["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["task"].as_str().unwrap().to_owned(),
                r["round"].as_u64().unwrap(),
                r["branch"].as_str().unwrap().to_owned(),
                r["verdict"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rounds,
        [
            (
                "CR-A".to_owned(),
                1,
                Scratch::branch("CR-A"),
                Value::from("requires-changes")
            ),
            ("RW-A".to_owned(), 1, Scratch::branch("RW-A"), Value::Null),
            (
                "CR-A".to_owned(),
                2,
                Scratch::branch("CR-A.round-2"),
                Value::from("approved")
            ),
        ]
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(s.run_dir().join("report.json")).unwrap())
            .unwrap();
    let in_report = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "CR-A")
        .unwrap();
    assert_eq!(in_report["rounds"], cr["rounds"]);
    let md = std::fs::read_to_string(s.run_dir().join("report.md")).unwrap();
    assert!(md.contains("## Review rounds"), "{md}");
    assert!(
        md.contains(&format!(
            "| CR-A | 2 | CR-A | `{}` |",
            Scratch::branch("CR-A.round-2")
        )),
        "{md}"
    );
    assert!(md.contains("requires changes"), "{md}");

    // Everything is ticked.
    assert!(!s.tasks_md().contains("- [ ]"), "{}", s.tasks_md());
}

/// A review that never approves fails after the limit; what waits for it is skipped.
#[test]
fn a_review_that_never_approves_fails_after_the_limit() {
    let s = Scratch::package(&gate("review=code_review/CR-A.md:0", "say=APPROVED"));
    let run = s.run(&["--max-review-rounds", "2"]);
    run.assert_code(1);
    assert_eq!(run.status("CR-A"), "failed", "{}", run.context());
    assert!(
        run.reason("CR-A")
            .contains("still requires changes after 2 review rounds"),
        "{}",
        run.reason("CR-A")
    );
    assert_eq!(
        run.verdicts("CR-A"),
        [
            (1, "requires-changes".to_owned()),
            (2, "requires-changes".to_owned())
        ]
    );
    assert_eq!(s.starts("CR-A"), 2);
    assert_eq!(s.starts("RW-A"), 1);
    assert_eq!(run.status("PR-A"), "skipped");
    assert_eq!(run.status("2"), "skipped");
    // The rework ran, but its gate failed: not done, not ticked.
    assert_eq!(run.status("RW-A"), "failed");
    assert_eq!(s.starts("PR-A"), 0);
    let md = s.tasks_md();
    for id in ["CR-A", "RW-A", "PR-A", "2"] {
        assert!(md.contains(&format!("- [ ] {id}. ")), "{id}: {md}");
    }
    assert!(md.contains("- [x] 1. "));
    assert_eq!(run.finished("CR-A")["rounds"].as_array().unwrap().len(), 3);
}

/// The limit also comes from the configuration.
#[test]
fn max_review_rounds_comes_from_the_configuration() {
    let s = Scratch::package(&gate("review=code_review/CR-A.md:0", "say=APPROVED"));
    let manifest = s.repo().join("Cargo.toml");
    let mut toml = std::fs::read_to_string(&manifest).unwrap();
    toml.push_str("\n[package.metadata.spec-exec]\nmax-review-rounds = 1\n");
    write(&manifest, &toml);
    s.git(&["commit", "-q", "-am", "One round"]);
    let run = s.run(&[]);
    run.assert_code(1);
    assert!(
        run.reason("CR-A")
            .contains("still requires changes after 1 review round "),
        "{}",
        run.reason("CR-A")
    );
    assert_eq!(s.starts("RW-A"), 0);
    assert_eq!(run.status("RW-A"), "skipped");
}

/// Approved in the first round: the rework is not needed, and ticked.
#[test]
fn a_review_approved_at_once_needs_no_rework() {
    let s = Scratch::package(&gate(
        "review=code_review/CR-A.md:1",
        "review=product_review/PR-A.md:1",
    ));
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("RW-A"), "not-needed", "{}", run.context());
    assert_eq!(s.starts("RW-A"), 0);
    assert!(!s.branches().contains(&Scratch::branch("RW-A")));
    assert!(!s.branches().contains(&Scratch::branch("CR-A.round-2")));
    assert_eq!(run.finished("CR-A")["verdict"], "approved");
    assert_eq!(run.finished("CR-A")["branch"], Scratch::branch("CR-A"));
    assert_eq!(run.status("2"), "done");
    assert!(!s.tasks_md().contains("- [ ]"), "{}", s.tasks_md());
    // The product review's file is committed on its branch.
    let pr = s.git(&[
        "show",
        &format!("{}:product_review/PR-A.md", Scratch::branch("PR-A")),
    ]);
    assert!(pr.contains("APPROVED"), "{pr}");
}

/// A review that gives no verdict failed; its rework and dependents are skipped.
#[test]
fn a_review_without_a_verdict_fails() {
    let s = Scratch::package(&gate("write=code_review/CR-A.md", "say=APPROVED"));
    let run = s.run(&[]);
    run.assert_code(1);
    assert_eq!(run.status("CR-A"), "failed");
    assert_eq!(
        run.reason("CR-A"),
        "no verdict found in `code_review/CR-A.md` or the agent's output (a review ends with APPROVED or REQUIRES CHANGES)"
    );
    assert_eq!(run.status("RW-A"), "skipped");
    assert_eq!(run.status("2"), "skipped");
    assert_eq!(s.starts("RW-A"), 0);
    // Nothing was committed; the worktree is kept.
    assert!(run.finished("CR-A")["commit"].is_null());
    assert!(run.finished("CR-A")["worktree"].is_string());
}

/// A verdict in the output only: the review changed nothing, so each round is recorded on an
/// empty commit that carries its verdict; the output's end is the rework's findings.
#[test]
fn a_verdict_in_the_output_only() {
    let s = Scratch::package(&tasks_md(&[
        task("1", "Build", "", "write=one.txt"),
        task("CR-B", "Review", "Task 1", "review=-:2"),
        task("RW-B", "Rework", "CR-B (failed)", "append=fix.txt"),
    ]));
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(
        run.verdicts("CR-B"),
        [
            (1, "requires-changes".to_owned()),
            (2, "approved".to_owned())
        ]
    );
    assert_eq!(run.status("CR-B"), "done");
    assert_eq!(run.status("RW-B"), "done");
    for id in ["CR-B", "CR-B.round-2"] {
        let b = Scratch::branch(id);
        let changed = s.git(&["diff", "--name-only", &format!("{b}^"), &b]);
        assert_eq!(changed, "", "{id} changed files");
        let message = s.git(&["log", "-1", "--format=%B", &b]);
        assert!(message.contains("Spec-Exec-Verdict: "), "{message}");
    }
    let prompt = std::fs::read_to_string(s.run_dir().join("prompts/RW-B.md")).unwrap();
    assert!(prompt.contains("fix-CR-B-round-1"), "{prompt}");
    assert!(
        prompt.contains("the end of the review's output"),
        "{prompt}"
    );
    assert!(!s.tasks_md().contains("- [ ]"), "{}", s.tasks_md());
}

/// A review gate without a rework: asking for changes fails it at once.
#[test]
fn a_gate_without_a_rework_fails_when_changes_are_required() {
    let s = Scratch::package(&tasks_md(&[
        task("1", "Build", "", "write=one.txt"),
        task("CR-A", "Review", "Task 1", "say=Status:~REQUIRES~CHANGES"),
        task("2", "After the review", "CR-A", "write=two.txt"),
    ]));
    let run = s.run(&[]);
    run.assert_code(1);
    assert_eq!(run.status("CR-A"), "failed");
    assert!(
        run.reason("CR-A").contains("no rework task"),
        "{}",
        run.reason("CR-A")
    );
    assert_eq!(run.status("2"), "skipped");
    assert_eq!(s.starts("CR-A"), 1);
}

/// Running again after a gate failed: the review is not reused (it did not approve). Its last
/// round asked for changes and no rework followed it, so the rework runs first, with that
/// round's findings, and the review after it; the loop goes on.
#[test]
fn a_failed_gate_resumes_on_top_of_its_last_round() {
    let s = Scratch::package(&gate("review=code_review/CR-A.md:3", "say=APPROVED"));
    let first = s.run(&["--max-review-rounds", "1"]);
    first.assert_code(1);
    assert_eq!(first.status("CR-A"), "failed");
    let second = s.run(&[]);
    second.assert_code(0);
    // The rework on the first run's round 1, round 2 asks again, a second rework, round 3
    // approves.
    assert_eq!(
        second.verdicts("CR-A"),
        [
            (2, "requires-changes".to_owned()),
            (3, "approved".to_owned())
        ]
    );
    assert_eq!(s.starts("RW-A"), 2);
    assert!(s.is_ancestor(&Scratch::branch("CR-A"), &Scratch::branch("RW-A")));
    assert!(s.is_ancestor(&Scratch::branch("RW-A"), &Scratch::branch("CR-A.round-2")));
    assert!(s.is_ancestor(
        &Scratch::branch("CR-A.round-2"),
        &Scratch::branch("RW-A.round-2")
    ));
    assert!(s.is_ancestor(
        &Scratch::branch("RW-A.round-2"),
        &Scratch::branch("CR-A.round-3")
    ));
    let prompt = std::fs::read_to_string(s.run_dir().join("prompts/RW-A.md")).unwrap();
    assert!(
        prompt.contains("Review CR-A (round 1) requires changes"),
        "{prompt}"
    );
    let rounds = second.finished("CR-A")["rounds"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rounds.len(), 5, "{rounds:?}");
    assert_eq!(rounds[0]["reused"], true);
    // A third run reuses the approved gate.
    let third = s.run(&[]);
    third.assert_code(0);
}
