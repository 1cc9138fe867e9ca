//! The feature's integration branch: built when a run leaves every task done, on demand with
//! `land`, moved only forward, never over someone else's commits. Real git, real cargo, the
//! helper agent.

mod support;

use support::{Scratch, helper_agent, task, tasks_md, text};

const INTEGRATION: &str = "spec/demo/integration";

fn three_tasks() -> Scratch {
    Scratch::new(&tasks_md(&[
        task("1", "One", "", "write=one.txt"),
        task("2", "Two", "", "write=two.txt"),
        task("3", "Three", "Task 1", "write=three.txt"),
    ]))
}

/// The user's side of the repository: HEAD, its branch, the index and the status.
fn user_side(s: &Scratch) -> (String, String, String) {
    (
        s.git(&["rev-parse", "HEAD"]),
        s.git(&["symbolic-ref", "HEAD"]),
        s.git(&["ls-files", "--stage"]),
    )
}

#[test]
fn a_run_that_finishes_the_feature_builds_its_integration_branch_verified() {
    let s = three_tasks();
    let before = user_side(&s);
    let run = s.run(&[]);
    run.assert_code(0);
    let integrated = run
        .of_type("integrated")
        .next()
        .unwrap_or_else(|| panic!("no integrated event\n{}", run.context()));
    assert_eq!(integrated["status"], "built", "{integrated}");
    assert_eq!(integrated["branch"], INTEGRATION);
    assert_eq!(integrated["base"], "main");
    assert_eq!(
        integrated["verified"],
        serde_json::json!(["cargo check --workspace --all-targets"])
    );
    assert_eq!(integrated["files_changed"], 3);
    // Comes before run-finished, which names the branch and its commit.
    let finished = run.of_type("run-finished").next().unwrap();
    assert_eq!(finished["integration_branch"], INTEGRATION);
    let commit = s.git(&["rev-parse", INTEGRATION]).trim().to_owned();
    assert_eq!(finished["integration_commit"], commit.as_str());
    let types: Vec<&str> = run
        .events
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(&types[types.len() - 2..], ["integrated", "run-finished"]);
    // The run's reports say so too.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.run_dir().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["integration"]["branch"], INTEGRATION);
    let md = std::fs::read_to_string(s.run_dir().join("report.md")).unwrap();
    assert!(
        md.contains("## Integration\n\n`spec/demo/integration` at `"),
        "{md}"
    );

    // Every task's change, on top of main, with the verification recorded.
    let files = s.files(INTEGRATION);
    for f in ["one.txt", "two.txt", "three.txt"] {
        assert!(files.contains(f), "{f} missing: {files:?}");
    }
    assert!(s.is_ancestor("main", INTEGRATION));
    for id in ["1", "2", "3"] {
        assert!(s.is_ancestor(&Scratch::branch(id), INTEGRATION));
    }
    let message = s.git(&["log", "-1", "--format=%B", INTEGRATION]);
    assert!(
        message.contains("Spec-Exec-Integration: demo")
            && message.contains("Spec-Exec-Verified: cargo check --workspace --all-targets"),
        "{message}"
    );
    // The user's HEAD, branch and index are as they were; the work branch and worktree went.
    assert_eq!(user_side(&s), before);
    assert!(!s.git_ok(&["rev-parse", "--verify", "-q", "spec/demo/integration.next"]));
    // The integration's worktree went; the slots the tasks ran in stay, with no branch.
    let slots = s.state_dir().join("slots");
    assert!(
        s.linked_worktrees()
            .iter()
            .all(|(p, branch)| p.parent() == Some(slots.as_path()) && !branch),
        "{:?}",
        s.linked_worktrees()
    );

    // Nothing new: `land` finds it up to date and leaves it.
    let out = s.spec_exec(&["land", "demo"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("holds every done task's work already"));
    assert_eq!(s.git(&["rev-parse", INTEGRATION]).trim(), commit);
}

#[test]
fn the_end_of_a_run_says_what_to_do_next() {
    let s = three_tasks();
    let agent = helper_agent();
    let out = s
        .spec_exec(&["demo", "--agent", &agent, "--color", "never"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let finished = err.find("Finished").expect("a Finished line");
    let next = err[finished..].to_owned();
    for needle in [
        "Integrated spec/demo/integration at ",
        "2 branches merged",
        "spec/demo/integration against main: 3 files, 3 insertions(+), 0 deletions(-)",
        "git log --oneline main..spec/demo/integration",
        "git diff main...spec/demo/integration",
        "commit the ticks in tasks.md: git add documentation/features/demo/tasks.md && git commit -m 'demo: tick the done tasks' documentation/features/demo/tasks.md",
        "cargo spec-exec pr demo",
    ] {
        assert!(next.contains(needle), "{needle} not in\n{err}");
    }
    // The commands it prints run as printed.
    for line in next.lines().filter(|l| l.trim_start().starts_with("Next")) {
        let Some((_, command)) = line.split_once(": ") else {
            continue;
        };
        if command.starts_with("git ") {
            for command in command.split("; ") {
                let out = std::process::Command::new("sh")
                    .args(["-c", command])
                    .current_dir(s.repo())
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{command}: {}", text(&out.stderr));
            }
        }
    }
    assert_eq!(
        s.git(&["status", "--porcelain"]),
        "",
        "the ticks were committed"
    );
}

#[test]
fn land_builds_a_partly_done_feature_from_the_tasks_whose_dependencies_are_done() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "One", "", "write=one.txt"),
        task("2", "Broken", "", "exit=1"),
        task("3", "After two", "Task 2", "write=three.txt"),
    ]));
    let run = s.run(&["--continue-on-error", "--max-attempts", "1"]);
    run.assert_code(1);
    assert!(
        run.of_type("integrated").next().is_none(),
        "not every task is done"
    );
    assert!(!s.git_ok(&["rev-parse", "--verify", "-q", INTEGRATION]));

    let land = s.run_args(&["land", "demo", "--message-format", "json"]);
    land.assert_code(0);
    let integrated = land.of_type("integrated").next().unwrap();
    assert_eq!(integrated["merged"], serde_json::json!(["spec/demo/1"]));
    let files = s.files(INTEGRATION);
    assert!(files.contains("one.txt") && !files.contains("three.txt"));

    // Task 2 done later (by hand, here): the next land moves the branch forward.
    let old = s.git(&["rev-parse", INTEGRATION]).trim().to_owned();
    s.control("2", "write=two.txt");
    s.control("3", "write=three.txt");
    let run = s.run(&[]);
    run.assert_code(0);
    let integrated = run.of_type("integrated").next().unwrap();
    assert_eq!(integrated["status"], "built", "{}", run.context());
    assert!(s.is_ancestor(&old, INTEGRATION), "it only moves forward");
    let files = s.files(INTEGRATION);
    for f in ["one.txt", "two.txt", "three.txt"] {
        assert!(files.contains(f), "{f} missing: {files:?}");
    }
}

#[test]
fn an_integration_branch_someone_else_moved_is_left_alone() {
    let s = three_tasks();
    s.run(&[]).assert_code(0);
    // Someone commits on it by hand.
    s.git(&["checkout", "-q", INTEGRATION]);
    std::fs::write(s.repo().join("mine.txt"), "mine\n").unwrap();
    s.git(&["add", "mine.txt"]);
    s.git(&["commit", "-qm", "My own work"]);
    s.git(&["checkout", "-q", "main"]);
    let mine = s.git(&["rev-parse", INTEGRATION]).trim().to_owned();

    let land = s.run_args(&["land", "demo", "--message-format", "json", "--onto", "HEAD"]);
    // Said before anything else: it is left as it is.
    land.assert_code(1);
    assert_eq!(s.git(&["rev-parse", INTEGRATION]).trim(), mine);

    // With new work to merge, it is not moved, and says why.
    s.git(&["branch", "-f", "spec/demo/3", "spec/demo/3"]);
    std::fs::write(s.repo().join("later.txt"), "later\n").unwrap();
    s.git(&["add", "later.txt"]);
    s.git(&["commit", "-qm", "Later work on main"]);
    let land = s.run_args(&["land", "demo", "--onto", "main", "--message-format", "json"]);
    land.assert_code(1);
    let integrated = land.of_type("integrated").next().unwrap();
    assert_eq!(integrated["status"], "failed");
    let reason = integrated["reason"].as_str().unwrap();
    assert!(
        reason.contains("was moved since spec-exec left it"),
        "{reason}"
    );
    assert_eq!(s.git(&["rev-parse", INTEGRATION]).trim(), mine);
}

#[test]
fn conflicts_between_tasks_are_resolved_by_the_agent_in_the_integration() {
    const LIB: &str = "crates/tiny/src/lib.rs";
    let s = Scratch::new(&tasks_md(&[
        task("1", "Add one", "", &format!("line={LIB}:pub~fn~one()~{{}}")),
        task("2", "Add two", "", &format!("line={LIB}:pub~fn~two()~{{}}")),
    ]));
    s.control("integration", &format!("step=resolve unmark={LIB}"));
    let run = s.run(&[]);
    run.assert_code(0);
    let integrated = run.of_type("integrated").next().unwrap();
    assert_eq!(integrated["status"], "built", "{}", run.context());
    assert_eq!(integrated["resolved"], serde_json::json!([LIB]));
    let lib = s.show(INTEGRATION, LIB);
    assert!(
        lib.contains("fn one()") && lib.contains("fn two()"),
        "{lib}"
    );
    assert!(!lib.contains("<<<<<<<"), "{lib}");
    let message = s.git(&["log", "-1", "--format=%B", INTEGRATION]);
    assert!(
        message.contains(&format!("Spec-Exec-Resolved: {LIB}")),
        "{message}"
    );
}

#[test]
fn a_result_that_fails_verify_together_is_fixed_by_the_agent() {
    // Each task passes alone; together they do not.
    let s = three_tasks();
    s.control("integration", "rm=two.txt");
    let verify = "sh -c 'test ! -e one.txt || test ! -e two.txt'";
    let run = s.run(&["--verify", verify]);
    run.assert_code(0);
    let integrated = run.of_type("integrated").next().unwrap();
    assert_eq!(integrated["status"], "built", "{}", run.context());
    assert_eq!(integrated["verified"], serde_json::json!([verify]));
    let files = s.files(INTEGRATION);
    assert!(files.contains("one.txt") && !files.contains("two.txt"));
    let subject = s.git(&["log", "-1", "--format=%s", INTEGRATION]);
    assert_eq!(subject.trim(), "demo: integration fix");

    // Without an agent that can fix it, the run fails and says so; the branch is not made.
    let s = three_tasks();
    let run = s.run(&["--verify", verify, "--max-attempts", "1"]);
    run.assert_code(1);
    let integrated = run.of_type("integrated").next().unwrap();
    assert_eq!(integrated["status"], "failed");
    assert!(
        integrated["reason"]
            .as_str()
            .unwrap()
            .contains("verify failed"),
        "{integrated}"
    );
    assert!(!s.git_ok(&["rev-parse", "--verify", "-q", INTEGRATION]));
}

/// `land demo` with `args`, which must fail (exit 1): the reason its `integrated` line gives.
fn land_refused(s: &Scratch, args: &[&str]) -> String {
    let mut all = vec!["land", "demo", "--message-format", "json"];
    all.extend_from_slice(args);
    let land = s.run_args(&all);
    land.assert_code(1);
    land.of_type("integrated")
        .next()
        .expect("an integrated line")["reason"]
        .as_str()
        .expect("a reason")
        .to_owned()
}

/// Two tasks side by side that write the same file: their integration conflicts.
fn clashing() -> Scratch {
    Scratch::new(&tasks_md(&[
        task("1", "One", "", "write=same.txt"),
        task("2", "Two", "", "write=same.txt"),
    ]))
}

#[test]
fn an_integration_finished_by_hand_in_its_kept_worktree_is_taken_as_it_is() {
    let s = clashing();
    // No agent can resolve it (the shell agent cannot): the integration fails, its worktree
    // kept with the merge in progress.
    let run = s.run(&["--max-attempts", "1"]);
    run.assert_code(1);
    let integrated = run.of_type("integrated").next().unwrap();
    assert_eq!(integrated["status"], "failed", "{integrated}");
    let worktree = std::path::PathBuf::from(integrated["worktree"].as_str().unwrap());
    // The user resolves it there, commits, and leaves a file of their own.
    std::fs::write(worktree.join("same.txt"), "1 and 2\n").unwrap();
    support::git_in(&worktree, &["commit", "-qam", "Resolved by hand"]);
    std::fs::write(worktree.join("notes.txt"), "mine\n").unwrap();
    let by_hand = support::git_in(&worktree, &["rev-parse", "HEAD"]);

    let land = s.run_args(&[
        "land",
        "demo",
        "--agent",
        "shell",
        "--message-format",
        "json",
    ]);
    land.assert_code(0);
    let integrated = land.of_type("integrated").next().unwrap();
    assert_eq!(integrated["status"], "built", "{}", land.context());
    // Their merge is the integration, verified; the file they left is kept aside.
    assert_eq!(s.git(&["rev-parse", INTEGRATION]), by_hand);
    assert_eq!(s.show(INTEGRATION, "same.txt"), "1 and 2\n");
    let leftovers = s.state_dir().join("leftovers");
    let kept: Vec<_> = walk(&leftovers)
        .into_iter()
        .filter(|p| p.ends_with("notes.txt"))
        .collect();
    assert_eq!(kept.len(), 1, "notes.txt not kept under {leftovers:?}");
    assert!(!s.git_ok(&["rev-parse", "--verify", "-q", "spec/demo/integration.next"]));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn land_keeps_the_base_it_was_built_on_unless_told_otherwise() {
    let s = three_tasks();
    s.run(&[]).assert_code(0);
    let built = s.git(&["rev-parse", INTEGRATION]);
    // The user works on a branch of their own, and a task is redone meanwhile.
    s.git(&["checkout", "-q", "-b", "wip"]);
    std::fs::write(s.repo().join("wip.txt"), "wip\n").unwrap();
    s.git(&["add", "wip.txt"]);
    s.git(&["commit", "-qm", "wip"]);
    let land = s.run_args(&["land", "demo", "--message-format", "json"]);
    land.assert_code(0);
    assert_eq!(
        land.of_type("integrated").next().unwrap()["status"],
        "unchanged"
    );
    assert_eq!(s.git(&["rev-parse", INTEGRATION]), built);
    assert!(!s.files(INTEGRATION).contains("wip.txt"));

    // --onto merges it in, named.
    let land = s.run_args(&["land", "demo", "--onto", "wip", "--message-format", "json"]);
    land.assert_code(0);
    let integrated = land.of_type("integrated").next().unwrap();
    assert_eq!(
        integrated["merged"],
        serde_json::json!(["wip"]),
        "{integrated}"
    );
    assert!(s.files(INTEGRATION).contains("wip.txt"));
}

#[test]
fn a_run_after_a_failed_integration_tries_it_again() {
    let s = three_tasks();
    let verify = "sh -c 'test ! -e one.txt || test ! -e two.txt'";
    let run = s.run(&["--verify", verify, "--max-attempts", "1"]);
    run.assert_code(1);
    // Every task is done; the integration is what is left, and still fails.
    let again = s.run(&["--verify", verify, "--max-attempts", "1"]);
    again.assert_code(1);
    assert_eq!(
        again.of_type("integrated").next().unwrap()["status"],
        "failed"
    );
    let finished = again.of_type("run-finished").next().unwrap();
    assert_eq!(finished["exit_code"], 1);
    // With a check that passes, the next run builds it.
    let last = s.run(&[]);
    last.assert_code(0);
    let finished = last.of_type("run-finished").next().unwrap();
    assert_eq!(
        finished["integration_branch"],
        INTEGRATION,
        "{}",
        last.context()
    );
}

#[test]
fn an_integration_branch_checked_out_is_not_moved() {
    let s = three_tasks();
    s.run(&[]).assert_code(0);
    let built = s.git(&["rev-parse", INTEGRATION]);
    s.git(&["checkout", "-q", INTEGRATION]);
    s.git(&["checkout", "-q", "-b", "newer", "main"]);
    std::fs::write(s.repo().join("later.txt"), "later\n").unwrap();
    s.git(&["add", "later.txt"]);
    s.git(&["commit", "-qm", "later"]);
    s.git(&["checkout", "-q", INTEGRATION]);
    let status = s.git(&["status", "--porcelain"]);
    let reason = land_refused(&s, &["--onto", "newer"]);
    assert!(
        reason.contains("is checked out in a working tree"),
        "{reason}"
    );
    assert_eq!(s.git(&["rev-parse", INTEGRATION]), built);
    assert_eq!(s.git(&["status", "--porcelain"]), status);
}

#[test]
fn a_run_leaving_optional_tasks_out_integrates_the_rest() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "One", "", "write=one.txt"),
        "- [ ]* 2. **Optional**\n  - helper: write=two.txt\n  - _Dependencies: None_\n\n"
            .to_owned(),
        task("3", "Three", "Task 2", "write=three.txt"),
    ]));
    let run = s.run(&["--skip-optional"]);
    run.assert_code(0);
    let integrated = run.of_type("integrated").next().unwrap();
    assert_eq!(integrated["status"], "built", "{}", run.context());
    let files = s.files(INTEGRATION);
    assert!(
        files.contains("one.txt") && files.contains("three.txt"),
        "{files:?}"
    );
}

#[test]
fn ctrl_c_during_the_integration_exits_130() {
    let s = three_tasks();
    s.run(&["--no-verify"]).assert_code(0);
    s.git(&["branch", "-D", INTEGRATION]);
    let marker = s.ctl().join("verifying");
    let verify = format!("sh -c 'touch {}; exec sleep 30'", marker.display());
    let child = s
        .spec_exec(&["land", "demo", "--verify", &verify])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    support::wait_until("the verify command never started", || marker.exists());
    support::sigint(child.id());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(!s.git_ok(&["rev-parse", "--verify", "-q", INTEGRATION]));
}

#[test]
fn a_merge_resolved_by_hand_on_the_work_branch_is_built_on_after_the_base_moved() {
    // Tasks 1 and 2 clash; 3 does not. The integration fails on the clash.
    let s = Scratch::new(&tasks_md(&[
        task("1", "One", "", "write=same.txt"),
        task("2", "Two", "", "write=same.txt"),
        task("3", "Three", "", "write=three.txt"),
    ]));
    let run = s.run(&["--max-attempts", "1"]);
    run.assert_code(1);
    let integrated = run.of_type("integrated").next().unwrap();
    let worktree = std::path::PathBuf::from(integrated["worktree"].as_str().unwrap());
    // The user resolves that one merge there and commits it; then commits the ticks on main.
    std::fs::write(worktree.join("same.txt"), "1 and 2\n").unwrap();
    support::git_in(&worktree, &["commit", "-qam", "Resolved by hand"]);
    let by_hand = support::git_in(&worktree, &["rev-parse", "HEAD"]);
    s.git(&["commit", "-qam", "Tick the tasks"]);

    let land = s.run_args(&[
        "land",
        "demo",
        "--agent",
        "shell",
        "--message-format",
        "json",
    ]);
    land.assert_code(0);
    assert_eq!(
        land.of_type("integrated").next().unwrap()["status"],
        "built",
        "{}",
        land.context()
    );
    assert!(
        s.is_ancestor(by_hand.trim(), INTEGRATION),
        "the resolution by hand was dropped"
    );
    let files = s.files(INTEGRATION);
    assert!(files.contains("three.txt"), "{files:?}");
    assert_eq!(s.show(INTEGRATION, "same.txt"), "1 and 2\n");
}

#[test]
fn a_work_branch_checked_out_by_the_user_is_neither_moved_nor_built_on() {
    let s = clashing();
    s.run(&["--max-attempts", "1"]).assert_code(1);
    // The user takes the work branch into a worktree of their own, and works there.
    s.git(&[
        "worktree",
        "remove",
        "--force",
        ".git/spec-exec/demo/worktrees/integration",
    ]);
    let mine = s.repo().parent().unwrap().join("mine");
    s.git(&[
        "worktree",
        "add",
        "-q",
        mine.to_str().unwrap(),
        "spec/demo/integration.next",
    ]);
    let before = s.git(&["rev-parse", "spec/demo/integration.next"]);
    let reason = land_refused(&s, &["--agent", "shell"]);
    assert!(
        reason.contains("is checked out in a working tree"),
        "{reason}"
    );
    assert_eq!(s.git(&["rev-parse", "spec/demo/integration.next"]), before);
    assert!(mine.join("same.txt").exists());
}

#[test]
fn a_feature_whose_work_is_merged_into_the_base_has_nothing_left_to_do() {
    let s = three_tasks();
    s.run(&[]).assert_code(0);
    s.git(&["commit", "-qam", "Tick the tasks"]);
    s.git(&["merge", "-q", "--no-edit", INTEGRATION]);
    s.git(&["branch", "-D", INTEGRATION]);
    let again = s.run(&[]);
    again.assert_code(0);
    assert!(
        again.of_type("integrated").next().is_none(),
        "{}",
        again.context()
    );
}

#[test]
fn land_from_inside_a_worktree_spec_exec_made_is_refused() {
    let s = clashing();
    let run = s.run(&["--max-attempts", "1"]);
    run.assert_code(1);
    let worktree = std::path::PathBuf::from(
        run.of_type("integrated").next().unwrap()["worktree"]
            .as_str()
            .unwrap(),
    );
    let out = support::spec_exec_in(&worktree, &["land", "demo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is a worktree spec-exec made"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        worktree.join("same.txt").exists(),
        "the worktree was touched"
    );
}
