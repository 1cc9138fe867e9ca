//! The README's first command, without `cargo run`: the bundled example, copied into a scratch
//! git repository, approved and run end to end by the built binary with the `shell` agent.

use std::fs;
use std::path::Path;
use std::process::Command;

mod support;

use support::{example_repo, spec_exec_as_example as spec_exec, text};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Example",
            "-c",
            "user.email=example@localhost",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn the_bundled_example_runs_end_to_end_with_the_shell_agent() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let repo = scratch.path();
    example_repo(repo);

    let dry = spec_exec(repo, &["spec-exec", "user-auth", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let plan = text(&dry.stdout);
    assert!(plan.starts_with("Execution Plan for user-auth:"), "{plan}");

    // Unapproved: refused before anything runs.
    let refused = spec_exec(repo, &["spec-exec", "user-auth", "--agent", "shell"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("cargo spec-exec approve user-auth"));
    assert!(git(repo, &["branch", "--list", "spec/*"]).is_empty());

    let approve = spec_exec(repo, &["spec-exec", "approve", "user-auth"]);
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    git(repo, &["commit", "-qam", "Approve"]);
    let head = git(repo, &["rev-parse", "HEAD"]);

    let run = spec_exec(
        repo,
        &[
            "spec-exec",
            "user-auth",
            "--agent",
            "shell",
            "--message-format",
            "json",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));

    let events: Vec<serde_json::Value> = text(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        events.first().map(|e| e["type"].clone()),
        Some("plan".into())
    );
    let finished = events.last().expect("events");
    assert_eq!(finished["type"], "run-finished", "{finished}");

    // The final review ran `cargo test` inside its worktree.
    let review = events
        .iter()
        .find(|e| e["type"] == "task-finished" && e["id"] == "CR-FINAL")
        .expect("CR-FINAL finished");
    assert_eq!(review["status"], "done", "{review}");
    assert_eq!(review["agent"], "shell", "{review}");
    let log = fs::read_to_string(review["log"].as_str().expect("a log path")).expect("the log");
    assert!(log.contains("test result: ok"), "{log}");
    let rework = events
        .iter()
        .find(|e| e["type"] == "task-finished" && e["id"] == "RW-FINAL")
        .expect("RW-FINAL reported");
    assert_eq!(rework["status"], "not-needed", "{rework}");

    let tasks = fs::read_to_string(repo.join("documentation/features/user-auth/tasks.md"))
        .expect("tasks.md");
    assert!(!tasks.contains("- [ ]"), "every task ticked:\n{tasks}");

    // One branch per task that ran; the final review's branch holds all of the work, and its
    // verdict file; the user's HEAD and working tree are as they were, apart from the ticks.
    let branches = git(
        repo,
        &[
            "branch",
            "--list",
            "spec/user-auth/*",
            "--format=%(refname:short)",
        ],
    );
    for id in ["1", "2", "CR-A", "3", "4", "5.1", "5.2", "CR-FINAL"] {
        assert!(
            branches
                .lines()
                .any(|b| b == format!("spec/user-auth/{id}")),
            "no branch for {id}: {branches}"
        );
    }
    let files = git(
        repo,
        &["ls-tree", "-r", "--name-only", "spec/user-auth/CR-FINAL"],
    );
    for f in [
        "src/auth.rs",
        "src/password.rs",
        "src/session.rs",
        "src/expiry.rs",
        "code_review/CR-FINAL.md",
    ] {
        assert!(
            files.lines().any(|l| l == f),
            "{f} missing from CR-FINAL:\n{files}"
        );
    }
    // Every task done (the rework not needed): the feature's integration branch holds it all.
    assert_eq!(
        finished["integration_branch"], "spec/user-auth/integration",
        "{finished}"
    );
    let integrated = git(
        repo,
        &["ls-tree", "-r", "--name-only", "spec/user-auth/integration"],
    );
    for f in ["src/auth.rs", "src/session.rs", "src/expiry.rs"] {
        assert!(integrated.lines().any(|l| l == f), "{f}:\n{integrated}");
    }
    // `land` finds it up to date; the rework that was not needed is no task without a branch.
    let land = spec_exec(
        repo,
        &["spec-exec", "land", "user-auth", "--message-format", "json"],
    );
    assert_eq!(land.status.code(), Some(0), "{}", text(&land.stderr));
    let event: serde_json::Value = serde_json::from_str(
        text(&land.stdout)
            .lines()
            .find(|l| l.contains("\"integrated\""))
            .expect("an integrated line"),
    )
    .unwrap();
    assert_eq!(event["status"], "unchanged", "{event}");
    assert_eq!(event["without_branch"], serde_json::json!([]), "{event}");
    assert_eq!(git(repo, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git(repo, &["status", "--porcelain"]),
        " M documentation/features/user-auth/tasks.md\n"
    );
    assert!(!repo.join("src/auth.rs").exists());
}

/// The README's `deps` example: the example's feature without dependencies, answered by its
/// script, goes from one chain to three groups, and a dry run writes nothing.
#[test]
fn the_example_without_dependencies_gets_them_from_deps() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let repo = scratch.path();
    example_repo(repo);
    let tasks = repo.join("documentation/features/notifications/tasks.md");
    let before = fs::read(&tasks).expect("tasks.md");
    let out = spec_exec(
        repo,
        &[
            "deps",
            "notifications",
            "--agent",
            "bash deps-agent.sh",
            "--dry-run",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Group 3: Tasks 4-5"), "{stdout}");
    assert!(
        stdout.contains("critical path 3 tasks, at most 2 agents"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("critical path 6 of 6 tasks, widest group 1 → critical path 3 of 6 tasks, widest group 2"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fs::read(&tasks).expect("tasks.md"), before);
}
