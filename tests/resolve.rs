//! Conflicts between a task's dependencies' branches, resolved by the agent before the task
//! runs: real git merges, real cargo check, the helper agent.

mod support;

use support::{Scratch, task, tasks_md};

const LIB: &str = "crates/tiny/src/lib.rs";

/// Tasks 1 and 2 run side by side and both add a function at the end of lib.rs; task 3 needs
/// both. `join` is task 3's helper directives (in a control file: the resolve step's prompt
/// does not quote the task's details).
fn conflicting(join: &str) -> Scratch {
    let s = Scratch::new(&tasks_md(&[
        task(
            "1",
            "Add one",
            "",
            &format!("line={LIB}:pub~fn~one()~->~u32~{{~1~}}"),
        ),
        task(
            "2",
            "Add two",
            "",
            &format!("line={LIB}:pub~fn~two()~->~u32~{{~2~}}"),
        ),
        task("3", "Use both", "Tasks 1, 2", "nothing"),
    ]));
    s.control("3", join);
    s
}

fn steps(s: &Scratch, id: &str) -> Vec<String> {
    std::fs::read_to_string(s.ctl().join(format!("steps-{id}")))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

const RESOLVES: &str = "step=resolve unmark=crates/tiny/src/lib.rs step=task line=crates/tiny/src/lib.rs:pub~fn~three()~->~u32~{~one()~+~two()~}";

#[test]
fn the_agent_resolves_the_conflict_of_its_dependencies_and_then_does_the_task() {
    let s = conflicting(RESOLVES);
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("3"), "done", "{}", run.context());
    assert_eq!(steps(&s, "3"), ["resolve 1", "task 1"]);
    assert_eq!(run.finished("3")["resolved"], serde_json::json!([LIB]));

    // The task's base is the merge of both branches, resolved and verified.
    let base = format!("{}^", Scratch::branch("3"));
    let parents = s.git(&["log", "-1", "--format=%P", &base]);
    let mut parents: Vec<&str> = parents.split_whitespace().collect();
    parents.sort_unstable();
    let (one, two) = (s.tip("1"), s.tip("2"));
    let mut tips = vec![one.as_str(), two.as_str()];
    tips.sort_unstable();
    assert_eq!(parents, tips);
    let message = s.git(&["log", "-1", "--format=%B", &base]);
    assert!(
        message.contains(&format!("Spec-Exec-Resolved: {LIB}")),
        "{message}"
    );
    assert!(
        message.contains("Spec-Exec-Verified: cargo check --workspace --all-targets"),
        "{message}"
    );
    // Both sides' work, the task's own, and no marker.
    let lib = s.show(&Scratch::branch("3"), LIB);
    for f in ["fn one()", "fn two()", "fn three()"] {
        assert!(lib.contains(f), "{lib}");
    }
    assert!(
        !lib.contains("<<<<<<<") && !lib.contains(">>>>>>>"),
        "{lib}"
    );
    // The task's commit is verified too.
    let message = s.git(&["log", "-1", "--format=%B", &Scratch::branch("3")]);
    assert!(message.contains("Spec-Exec-Verified"), "{message}");

    // The resolve prompt named both sides and the file.
    let prompt = std::fs::read_to_string(s.run_dir().join("prompts/3.resolve.md")).unwrap();
    for needle in [
        "Add one",
        "Add two",
        LIB,
        "do not drop either",
        "Do not start task 3",
    ] {
        assert!(prompt.contains(needle), "{needle} in {prompt}");
    }
    // No merge is left in progress anywhere, and the user's tree is untouched.
    assert_eq!(
        s.git(&["status", "--porcelain"]).lines().count(),
        1,
        "tasks.md ticked only"
    );
}

#[test]
fn a_failed_resolution_names_the_paths_and_branches_and_a_resumed_run_tries_again() {
    // The agent leaves the markers where they are.
    let s = conflicting("step=task write=three.txt");
    let run = s.run(&[]);
    run.assert_code(1);
    assert_eq!(steps(&s, "3"), ["resolve 1", "resolve 2"]);
    let reason = run.reason("3");
    for needle in [
        "conflict in crates/tiny/src/lib.rs",
        "the agent did not resolve them: unresolved conflicts in crates/tiny/src/lib.rs:",
        "after 2 attempts",
        "merge `spec/demo/1` and `spec/demo/2` yourself on branch `spec/demo/3`",
    ] {
        assert!(reason.contains(needle), "{needle} in {reason}");
    }
    assert!(!support::is_ticked(&s.tasks_md(), "3"));
    // The worktree is kept with the merge in progress, for a person to finish.
    let worktree = std::path::PathBuf::from(run.finished("3")["worktree"].as_str().unwrap());
    assert!(worktree.join(".git").exists());
    assert!(
        std::fs::read_to_string(worktree.join(LIB))
            .unwrap()
            .contains("<<<<<<<")
    );

    // The next run tries the resolution again (and this time the agent does it).
    s.control("3", RESOLVES);
    let again = s.run(&[]);
    again.assert_code(0);
    assert_eq!(again.status("3"), "done", "{}", again.context());
    assert_eq!(
        steps(&s, "3"),
        ["resolve 1", "resolve 2", "resolve 1", "task 1"]
    );
    assert!(s.show(&Scratch::branch("3"), LIB).contains("fn three()"));
}

#[test]
fn a_resolution_that_does_not_build_goes_back_to_the_agent() {
    // Attempt 1 drops the markers but leaves a line that does not compile; attempt 2 fixes it.
    let s = conflicting(
        "step=resolve attempt=1 unmark=crates/tiny/src/lib.rs line=crates/tiny/src/lib.rs:oops attempt=2 unline=crates/tiny/src/lib.rs:oops attempt=* step=task write=three.txt",
    );
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(steps(&s, "3"), ["resolve 1", "resolve 2", "task 1"]);
    let verify = run.finished("3")["verify"].as_array().unwrap().clone();
    let resolve_runs: Vec<bool> = verify
        .iter()
        .filter(|v| v["step"] == "resolve")
        .map(|v| v["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(resolve_runs, [false, true]);
    let prompt = std::fs::read_to_string(s.run_dir().join("prompts/3.resolve.md")).unwrap();
    assert!(prompt.contains("## Attempt 2 of 2"), "{prompt}");
}

/// An agent made of the scripts `script-<id>-<step>.sh` in the control directory (run with
/// bash in the worktree; a missing script does nothing), for conflicts the helper cannot make.
fn scripted(s: &Scratch, scripts: &[(&str, &str)]) -> String {
    for (name, body) in scripts {
        support::write(&s.ctl().join(format!("script-{name}.sh")), body);
    }
    let agent = s.ctl().join("agent.sh");
    support::write(
        &agent,
        "f=\"$HELPER_CTL/script-$SPEC_EXEC_TASK_ID-$SPEC_EXEC_STEP.sh\"\necho \"$SPEC_EXEC_STEP $SPEC_EXEC_ATTEMPT\" >> \"$HELPER_CTL/steps-$SPEC_EXEC_TASK_ID\"\n[ -f \"$f\" ] && exec bash -e \"$f\"\nexit 0\n",
    );
    format!("bash {}", agent.display())
}

fn run_with(s: &Scratch, agent: &str, extra: &[&str]) -> support::Run {
    let mut args = vec!["run", "demo", "--agent", agent, "--message-format", "json"];
    args.extend_from_slice(extra);
    s.run_args(&args)
}

fn join_list() -> String {
    tasks_md(&[
        task("1", "Left", "", "nothing"),
        task("2", "Right", "", "nothing"),
        task("3", "Join", "Tasks 1, 2", "nothing"),
    ])
}

#[test]
fn a_binary_conflict_is_resolved_only_when_the_agent_stages_its_choice() {
    let s = Scratch::new(&join_list());
    let agent = scripted(
        &s,
        &[
            ("1-task", "printf 'A\\0one' > bin.dat"),
            ("2-task", "printf 'B\\0two' > bin.dat"),
            // Does nothing: git wrote no markers, the file is `ours`.
            ("3-resolve", "true"),
            ("3-task", "echo three > three.txt"),
        ],
    );
    let run = run_with(&s, &agent, &["--max-attempts", "1"]);
    run.assert_code(1);
    let reason = run.reason("3");
    assert!(
        reason.contains("bin.dat (not resolved: choose its content, then `git add` it"),
        "{reason}"
    );
    // Choosing the other side and staging it resolves it.
    support::write(
        &s.ctl().join("script-3-resolve.sh"),
        "git checkout --theirs bin.dat && git add bin.dat",
    );
    let run = run_with(&s, &agent, &[]);
    run.assert_code(0);
    assert_eq!(run.status("3"), "done", "{}", run.context());
    let bytes = s.git_output(&["show", &format!("{}:bin.dat", Scratch::branch("3"))]);
    assert_eq!(bytes.stdout, b"B\0two");
}

#[test]
fn a_merge_the_agent_commits_itself_becomes_spec_execs_merge_and_an_abandoned_one_fails() {
    let s = Scratch::new(&join_list());
    let agent = scripted(
        &s,
        &[
            ("1-task", "echo one > same.txt"),
            ("2-task", "echo two > same.txt"),
            // Resolves, then commits, as git's own hint says to.
            (
                "3-resolve",
                "printf 'one\\ntwo\\n' > same.txt && git add same.txt && git commit -qm 'agent merge'",
            ),
            ("3-task", "echo three > three.txt"),
        ],
    );
    let run = run_with(&s, &agent, &[]);
    run.assert_code(0);
    let base = format!("{}^", Scratch::branch("3"));
    let message = s.git(&["log", "-1", "--format=%B", &base]);
    assert!(message.contains("Spec-Exec-Base-Of: 3"), "{message}");
    assert!(
        message.contains("Spec-Exec-Resolved: same.txt"),
        "{message}"
    );
    let parents = s.git(&["log", "-1", "--format=%P", &base]);
    assert_eq!(parents.split_whitespace().count(), 2, "{parents}");
    assert_eq!(s.show(&Scratch::branch("3"), "same.txt"), "one\ntwo\n");

    // An agent that abandons the merge (`git merge --abort`) leaves nothing resolved.
    let s = Scratch::new(&join_list());
    let agent = scripted(
        &s,
        &[
            ("1-task", "echo one > same.txt"),
            ("2-task", "echo two > same.txt"),
            ("3-resolve", "git merge --abort"),
        ],
    );
    let run = run_with(&s, &agent, &["--max-attempts", "1"]);
    run.assert_code(1);
    let reason = run.reason("3");
    assert!(reason.contains("the merge was abandoned"), "{reason}");
    assert!(!support::is_ticked(&s.tasks_md(), "3"));
}

#[test]
fn a_resolution_committed_by_one_run_is_the_base_of_the_next() {
    // The resolution works; the task itself fails once.
    let s = conflicting(&format!("{RESOLVES} attempt=1 exit=1"));
    let run = s.run(&["--max-attempts", "1"]);
    run.assert_code(1);
    assert_eq!(steps(&s, "3"), ["resolve 1", "task 1"]);
    let base = s.git(&["rev-parse", &Scratch::branch("3")]);

    // The next run builds on it: no second resolution.
    s.control("3", RESOLVES);
    let again = s.run(&[]);
    again.assert_code(0);
    assert_eq!(steps(&s, "3"), ["resolve 1", "task 1", "task 1"]);
    assert_eq!(
        s.git(&["rev-parse", &format!("{}^", Scratch::branch("3"))]),
        base
    );
}

#[test]
fn a_merge_made_by_hand_after_no_resolve_is_the_base_of_the_next_run() {
    let s = Scratch::new(&join_list());
    let agent = scripted(
        &s,
        &[
            ("1-task", "echo one > same.txt"),
            ("2-task", "echo two > same.txt"),
            ("3-task", "echo three > three.txt"),
        ],
    );
    let run = run_with(&s, &agent, &["--no-resolve"]);
    run.assert_code(1);
    let reason = run.reason("3");
    assert!(
        reason.contains("git worktree add -b spec/demo/3 ../merge-3 spec/demo/1")
            && reason.contains("`git merge spec/demo/2`")
            && reason.contains("git worktree remove ../merge-3"),
        "{reason}"
    );
    // The user follows the hint, word for word; their own tree stays as it is.
    s.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "spec/demo/3",
        "../merge-3",
        "spec/demo/1",
    ]);
    let merge = s.repo().join("../merge-3");
    assert!(
        !support::git_output_in(&merge, &["merge", "-q", "spec/demo/2"])
            .status
            .success()
    );
    std::fs::write(merge.join("same.txt"), "one and two\n").unwrap();
    support::git_in(&merge, &["commit", "-qam", "Merge by hand"]);
    let mine = support::git_in(&merge, &["rev-parse", "HEAD"]);
    s.git(&["worktree", "remove", "../merge-3"]);

    let run = run_with(&s, &agent, &["--no-resolve"]);
    run.assert_code(0);
    assert_eq!(run.status("3"), "done", "{}", run.context());
    assert_eq!(
        s.git(&["rev-parse", &format!("{}^", Scratch::branch("3"))]),
        mine
    );
    assert_eq!(s.show(&Scratch::branch("3"), "same.txt"), "one and two\n");
}
