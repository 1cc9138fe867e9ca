//! Worktree slots: a run keeps at most `--max-agents` worktrees and moves each from task to
//! task by writing only the files that differ. Nothing of a task may be left in its slot for
//! the next; the free slot closest to the next task's base is taken; a failed task's slot is
//! kept and another takes its place; each slot builds in a directory of its own, which stays
//! warm from task to task.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::path::PathBuf;

use support::{Project, Run, Scratch, shell_task, tasks_md};

/// A task of the shell agent whose ```sh block is `lines`, one command a line.
fn script_task(id: &str, deps: &str, lines: &[&str]) -> String {
    let deps = if deps.is_empty() { "None" } else { deps };
    let body: String = lines.iter().map(|l| format!("  {l}\n")).collect();
    format!("- [ ] {id}. **Task {id}**\n  - _Dependencies: {deps}_\n  ```sh\n{body}  ```\n\n")
}

/// Commits what the test wrote in the scratch package as the base, and approves the list.
fn commit_base(s: &Scratch) {
    s.git(&["add", "-A"]);
    s.git(&["commit", "-qm", "Files for the tasks"]);
    s.approve();
}

/// Runs the list one agent at a time (with `extra` flags besides): it succeeds, task 2 in the
/// slot task 1 left.
fn run_in_one_slot(s: &Scratch, extra: &[&str]) -> Run {
    let mut args = vec!["--max-agents", "1", "--no-verify"];
    args.extend_from_slice(extra);
    let run = s.shell_run(&args);
    run.assert_code(0);
    assert_eq!(worktree_of(&run, "1"), worktree_of(&run, "2"));
    run
}

fn worktree_of(run: &support::Run, id: &str) -> PathBuf {
    let started = run
        .of_type("task-started")
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("task {id} did not start\n{}", run.context()));
    PathBuf::from(started["worktree"].as_str().unwrap())
}

/// Task 1 leaves every kind of trace in its slot: committed new, changed, deleted, re-moded and
/// retyped files, a new link, a file in a new directory, an emptied directory, a changed
/// submodule, and, not committed, an ignored file, an ignored directory and an empty
/// directory. Task 2 runs next in the same slot (one agent) from the base and finds exactly the
/// base's tree: git reports nothing, no empty directory is left but the submodule's, and the
/// file neither task changed is the same file (the slot was moved, not made again).
#[test]
fn nothing_of_a_task_is_left_in_its_slot_for_the_next() {
    nothing_left_for_the_next(true);
}

/// The same without a submodule, where the move reads the worktree by its index alone (one
/// walk) instead of by git's status.
#[test]
fn nothing_of_a_task_is_left_in_a_slot_without_submodules() {
    nothing_left_for_the_next(false);
}

fn nothing_left_for_the_next(with_submodule: bool) {
    let mut trace = vec![
        "stat -c %i . keep README.md > \"$HELPER_CTL/inode\"",
        "echo new > new.txt",
        "echo changed >> Cargo.toml",
        "rm keep/deleted.txt",
        "chmod +x mode.sh",
        "rm retyped.txt && ln -s README.md retyped.txt",
        "ln -s /etc/hostname link",
        "mkdir -p newdir/deeper && echo x > newdir/deeper/x.txt",
        "rm emptied/only.txt",
        "git update-index --cacheinfo 160000,$(git rev-parse HEAD),sub",
        "echo ignored > debug.log",
        "echo forced > forced.log && git add -f forced.log",
        "mkdir -p out/deep && echo built > out/deep/artifact",
        "mkdir -p empty/inner",
    ];
    if !with_submodule {
        trace.retain(|line| !line.contains("160000"));
    }
    let check = [
        "test -z \"$(git status --porcelain --ignored --untracked-files=all)\"",
        "test -z \"$(find . -path ./.git -prune -o -type d -empty -print | grep -vx ./sub)\"",
        "test ! -e new.txt",
        "test ! -e link",
        "test ! -e newdir",
        "test ! -e empty",
        "test ! -e debug.log",
        "test ! -e out",
        "test ! -e forced.log",
        "test -f keep/deleted.txt",
        "test -f emptied/only.txt",
        "test ! -L retyped.txt",
        "test ! -x mode.sh",
        "test -z \"$(grep changed Cargo.toml)\"",
        "test \"$(stat -c %i . keep README.md)\" = \"$(cat \"$HELPER_CTL/inode\")\"",
        "echo clean > clean.txt",
    ];
    let s = Scratch::unapproved(
        &tasks_md(&[script_task("1", "", &trace), script_task("2", "", &check)]),
        Project::Package,
    );
    let repo = s.repo();
    support::write(&repo.join("keep/deleted.txt"), "gone soon\n");
    support::write(&repo.join("keep/other.txt"), "stays\n");
    support::write(&repo.join("mode.sh"), "echo\n");
    support::write(&repo.join("retyped.txt"), "a file\n");
    support::write(&repo.join("emptied/only.txt"), "alone\n");
    support::write(&repo.join(".gitignore"), "/target\n*.log\n/out\n");
    if with_submodule {
        add_submodule(&s);
    }
    commit_base(&s);

    run_in_one_slot(&s, &["--continue-on-error"]);
    assert!(s.files(&support::Scratch::branch("1")).contains("new.txt"));
    assert_eq!(
        s.files(&support::Scratch::branch("2")),
        s.files("main")
            .into_iter()
            .chain(["clean.txt".to_owned()])
            .collect()
    );
}

/// A submodule at `sub`, whose directory a checkout leaves empty.
fn add_submodule(s: &Scratch) {
    let sub = s.repo().parent().unwrap().join("sub-origin");
    support::write(&sub.join("lib.txt"), "sub\n");
    support::git_in(&sub, &["init", "-q", "-b", "main"]);
    support::git_in(&sub, &["add", "-A"]);
    support::git_in(
        &sub,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@l",
            "commit",
            "-qm",
            "sub",
        ],
    );
    s.git(&[
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        sub.to_str().unwrap(),
        "sub",
    ]);
}

/// What git's status does not show of a worktree leaves no trace in the next task either: an
/// ignored file inside an ignored directory that holds tracked files, a name that is not
/// UTF-8, a file git refuses to track (`.GIT`), FIFOs, and files hidden with `assume-unchanged`
/// or `skip-worktree`.
#[test]
fn what_status_does_not_show_does_not_reach_the_next_task() {
    let trace = [
        "echo work > work.txt",
        "echo new > vendor/new.txt",
        "echo gen > \"$(printf 'out\\377.gen')\"",
        "mkdir -p e && echo x > e/.GIT",
        "git update-index --assume-unchanged au.txt && echo CHANGED > au.txt",
        "git update-index --skip-worktree sw.txt && echo CHANGED > sw.txt",
        "git update-index --assume-unchanged au2.txt && git update-index --skip-worktree sw2.txt",
        "mkfifo pipe && mkfifo vendor/pipe",
    ];
    let check = [
        "test ! -e vendor/new.txt",
        "test ! -e e",
        "test ! -e pipe",
        "test ! -e vendor/pipe",
        "test -z \"$(ls | grep gen)\"",
        "test \"$(cat au.txt)\" = au",
        "test \"$(cat sw.txt)\" = sw",
        "test -z \"$(git ls-files -v | grep '^[hS]')\"",
        "test -z \"$(git status --porcelain --ignored --untracked-files=all)\"",
        "echo clean > clean.txt",
        "echo mine > au2.txt && echo mine > sw2.txt",
    ];
    let s = Scratch::unapproved(
        &tasks_md(&[script_task("1", "", &trace), script_task("2", "", &check)]),
        Project::Package,
    );
    let repo = s.repo();
    support::write(&repo.join("vendor/keep.txt"), "tracked\n");
    support::write(&repo.join("au.txt"), "au\n");
    support::write(&repo.join("sw.txt"), "sw\n");
    support::write(&repo.join("au2.txt"), "au2\n");
    support::write(&repo.join("sw2.txt"), "sw2\n");
    s.git(&["add", "-A"]);
    support::write(&repo.join(".gitignore"), "/target\nvendor/\n*.gen\n");
    commit_base(&s);

    run_in_one_slot(&s, &[]);
    // The next task's edits of files the last one hid from git are committed.
    let two = support::Scratch::branch("2");
    let changed = s.git(&["diff", "--name-only", "main", &two]);
    assert_eq!(
        changed.lines().collect::<Vec<_>>(),
        ["au2.txt", "clean.txt", "sw2.txt"]
    );
}

/// A file a task left in a directory its committed `.gitignore` ignores, beside tracked files
/// (which git's status, with that `.gitignore`, reports as nothing), does not reach the next
/// task, whose base does not ignore it, nor its commit; a top-level `.GIT` or `.Git` (names
/// git refuses, and does not report) goes too.
#[test]
fn an_ignored_file_beside_tracked_ones_does_not_reach_the_next_task() {
    let one = [
        "echo 'gen/' >> .gitignore",
        "echo secret > gen/junk.txt",
        "mkdir .GIT && echo x > .GIT/x && echo y > .Git",
    ];
    let two = [
        "test ! -e gen/junk.txt",
        "test ! -e .GIT",
        "test ! -e .Git",
        "test -z \"$(git status --porcelain --ignored --untracked-files=all)\"",
        "echo two > two.txt",
    ];
    let s = Scratch::unapproved(
        &tasks_md(&[script_task("1", "", &one), script_task("2", "", &two)]),
        Project::Package,
    );
    support::write(&s.repo().join("gen/keep.txt"), "tracked\n");
    commit_base(&s);
    run_in_one_slot(&s, &[]);
    let two = s.git(&["diff", "--name-only", "main", &Scratch::branch("2")]);
    assert_eq!(two.lines().collect::<Vec<_>>(), ["two.txt"]);
}

/// A configuration change made during a run reaches the commits of the tasks that follow in
/// a reused slot as it would in a new one: with `core.filemode` turned on by task 2's agent,
/// its `chmod +x` is committed, whatever the slot ran before.
#[test]
fn a_configuration_change_reaches_the_next_commit_in_a_reused_slot() {
    let s = Scratch::unapproved(
        &tasks_md(&[
            script_task("1", "", &["echo 1 > one.txt"]),
            script_task(
                "2",
                "1",
                &[
                    "git config core.filemode true",
                    "chmod +x a.sh",
                    "echo 2 > two.txt",
                ],
            ),
        ]),
        Project::Package,
    );
    support::write(&s.repo().join("a.sh"), "echo\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-qm", "Files for the tasks"]);
    s.git(&["config", "core.filemode", "false"]);
    s.approve();
    run_in_one_slot(&s, &[]);
    let tree = s.git(&["ls-tree", &Scratch::branch("2"), "a.sh"]);
    assert!(tree.starts_with("100755"), "{tree}");
}

/// What a task set for its worktree alone, in git's record of it (`config.worktree`, as `git
/// config --worktree` writes it, and a sparse checkout's patterns), does not reach the next.
#[test]
fn a_worktrees_own_configuration_does_not_reach_the_next_task() {
    let one = [
        "printf '[core]\\n\\tworktree = /nowhere\\n' > \"$(git rev-parse --git-dir)/config.worktree\"",
        "mkdir -p \"$(git rev-parse --git-dir)/info\" && echo src > \"$(git rev-parse --git-dir)/info/sparse-checkout\"",
        "echo 1 > one.txt",
    ];
    let two = [
        "test ! -e \"$(git rev-parse --git-dir)/config.worktree\"",
        "test ! -e \"$(git rev-parse --git-dir)/info/sparse-checkout\"",
        "echo 2 > two.txt",
    ];
    let s = Scratch::new(&tasks_md(&[
        script_task("1", "", &one),
        script_task("2", "1", &two),
    ]));
    run_in_one_slot(&s, &[]);
}

/// A dependency's branch deleted while the run goes on (by another task's agent here) fails
/// the task that needs it, saying how to put it back, rather than start it from the base
/// without that work.
#[test]
fn a_dependency_branch_deleted_during_the_run_fails_its_dependent() {
    let s = Scratch::new(&tasks_md(&[
        script_task("1", "", &["echo 1 > one.txt"]),
        script_task(
            "2",
            "",
            &[
                "git -C \"$(git rev-parse --path-format=absolute --git-common-dir)/..\" branch -D spec/demo/1",
                "echo 2 > two.txt",
            ],
        ),
        script_task("3", "1", &["test -e one.txt", "echo 3 > three.txt"]),
    ]));
    let run = s.shell_run(&["--max-agents", "1", "--no-verify", "--continue-on-error"]);
    run.assert_code(1);
    assert_eq!(run.status("3"), "failed", "{}", run.context());
    let reason = run.reason("3");
    assert!(
        reason.contains("`spec/demo/1` of a dependency done in this run is gone")
            && reason.contains("git branch spec/demo/1 "),
        "{}",
        run.context()
    );
}

/// A process a task left behind that changes its slot after the task was committed (a
/// tracked file changed, a new one) leaves no trace in the next task that takes the slot: the
/// move finds the change and checks out the whole tree. Task 1's process waits for task 2 to
/// say task 1 is committed, writes, and says so; task 3, after both, takes task 1's slot (the
/// closest to its base).
#[test]
fn what_a_process_left_behind_writes_after_the_commit_does_not_reach_the_next_task() {
    left_behind_writes("echo late >> README.md; echo late > late.txt");
}

/// The same when what it leaves is staged, its files as the index has them: the index differs
/// from the slot's commit, not the files from the index.
#[test]
fn what_a_process_left_behind_stages_after_the_commit_does_not_reach_the_next_task() {
    left_behind_writes("echo late >> README.md; git add README.md; echo late > late.txt");
}

fn left_behind_writes(late: &str) {
    let away = format!(
        "setsid sh -c 'touch \"$HELPER_CTL/away\"; until [ -e \"$HELPER_CTL/go\" ]; do sleep 0.02; done; {late}; touch \"$HELPER_CTL/written\"' </dev/null >/dev/null 2>&1 &"
    );
    let one = [
        "echo a > a.txt && echo b > b.txt && echo c > c.txt",
        away.as_str(),
        // Out of the agent's process group before the agent ends.
        "until [ -e \"$HELPER_CTL/away\" ]; do sleep 0.02; done",
    ];
    let two = [
        "until git log -1 --format=%s refs/heads/spec/demo/1 | grep -q 'Task 1'; do sleep 0.02; done",
        "touch \"$HELPER_CTL/go\"",
        "until [ -e \"$HELPER_CTL/written\" ]; do sleep 0.02; done",
        "echo d > d.txt",
    ];
    let three = [
        "test -z \"$(git status --porcelain --ignored --untracked-files=all)\"",
        "test ! -e late.txt",
        "test -z \"$(grep late README.md)\"",
        "echo e > e.txt",
    ];
    let s = Scratch::new(&tasks_md(&[
        script_task("1", "", &one),
        script_task("2", "", &two),
        script_task("3", "1, 2", &three),
    ]));
    let run = s.shell_run(&["--max-agents", "2", "--no-verify"]);
    run.assert_code(0);
    assert_eq!(worktree_of(&run, "1"), worktree_of(&run, "3"));
    assert!(s.ctl().join("written").exists());
    let three = s.git(&[
        "diff",
        "--name-only",
        &Scratch::branch("2"),
        &Scratch::branch("3"),
    ]);
    assert_eq!(
        three.lines().collect::<Vec<_>>(),
        ["a.txt", "b.txt", "c.txt", "e.txt"]
    );
}

/// A task that fails keeps its slot, for inspection, with what its agent left; the next task
/// takes another slot. The next run moves the kept slot's files to the leftovers and reuses
/// its place.
#[test]
fn a_failed_tasks_slot_is_kept_and_another_takes_its_place() {
    let s = Scratch::package(&tasks_md(&[
        shell_task("1", "Fails", "", "echo half > partial.txt && exit 3"),
        shell_task("2", "Works", "", "echo done > two.txt"),
    ]));
    let run = s.shell_run(&["--max-agents", "1", "--no-verify", "--continue-on-error"]);
    run.assert_code(1);
    let (one, two) = (worktree_of(&run, "1"), worktree_of(&run, "2"));
    assert_ne!(one, two, "task 2 took the failed task's slot");
    assert_eq!(
        run.finished("1")["worktree"],
        one.display().to_string().as_str()
    );
    assert!(one.join("partial.txt").is_file());

    // The next run: the kept slot's changes go to the leftovers; task 1 runs again (in the
    // first free slot), and the run ends with at most one slot besides none kept.
    s.git(&["checkout", "-q", "main"]);
    let again = s.shell_run(&["--max-agents", "1", "--no-verify"]);
    assert_eq!(again.status("1"), "failed");
    let leftovers: Vec<_> = std::fs::read_dir(s.state_dir().join("leftovers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert!(leftovers[0].join("partial.txt").is_file());
    assert!(
        !leftovers[0].join(".git").exists(),
        "a leftover copy must not point at git's record"
    );
}

/// Three tasks, two agents: 1 writes many files, 2 one; 3 depends on 1. When 3 starts, the
/// slot that ran 1 holds 3's base exactly, and it is taken over the other, wherever the
/// other's number.
#[test]
fn the_free_slot_closest_to_the_base_is_taken() {
    let many = "for i in $(seq 1 40); do echo $i > many-$i.txt; done";
    let s = Scratch::package(&tasks_md(&[
        shell_task("1", "Many", "", &format!("sleep 0.3 && {many}")),
        shell_task("2", "One", "", "echo two > two.txt"),
        shell_task("3", "After many", "1", "echo three > three.txt"),
    ]));
    let run = s.shell_run(&["--max-agents", "2", "--no-verify"]);
    run.assert_code(0);
    assert_eq!(worktree_of(&run, "3"), worktree_of(&run, "1"));
    assert_ne!(worktree_of(&run, "2"), worktree_of(&run, "1"));
    // The slots stay for the next run, detached: no task branch is checked out anywhere.
    let list = s.git(&["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 3, "{list}");
    assert_eq!(list.matches("detached").count(), 2, "{list}");
}

/// Each slot builds in a directory of its own outside the worktree (`CARGO_TARGET_DIR`, for the
/// agent and the verify commands): the second task of a chain finds the first one's build
/// fresh, and the verify commands build in the same place.
#[test]
fn a_slots_build_stays_warm_from_task_to_task() {
    let s = Scratch::package(&tasks_md(&[
        shell_task(
            "1",
            "Build",
            "",
            "cargo build -q && echo \"$CARGO_TARGET_DIR\" > target-dir.txt",
        ),
        shell_task(
            "2",
            "Build again",
            "1",
            "cargo build -v 2>&1 | tee build.txt && echo two > two.txt",
        ),
    ]));
    let run = s.shell_run(&["--max-agents", "1", "--verify", "cargo check -v"]);
    run.assert_code(0);
    let build = s.show(&support::Scratch::branch("2"), "build.txt");
    assert!(
        build.contains("Fresh tiny"),
        "task 2 rebuilt what task 1 built:\n{build}"
    );
    let target = s.show(&support::Scratch::branch("1"), "target-dir.txt");
    let target = PathBuf::from(target.trim());
    assert!(
        target.starts_with(s.state_dir().join("builds")),
        "{target:?}"
    );
    assert!(target.join("debug").is_dir());
    // Nothing of the build is in the worktree, so nothing of it can be committed.
    assert!(
        !s.files(&support::Scratch::branch("1"))
            .iter()
            .any(|f| f.starts_with("target/"))
    );
    let verify_log = s.run_dir().join("logs/2.verify.log");
    let verify_log = std::fs::read_to_string(&verify_log).unwrap();
    assert!(
        verify_log.contains("Fresh tiny") || verify_log.contains("Checking tiny"),
        "{verify_log}"
    );
}

/// A run killed while a slot moved leaves the slot half of one tree and half of another, and a
/// marker: the next run makes that slot again instead of keeping its files as someone's work.
/// The run's last event says what the slots and their build directories take on disk, and
/// `clean` frees them.
#[test]
fn a_slot_cut_short_while_it_moved_is_made_again_and_the_disk_it_takes_is_reported() {
    let s = Scratch::new(&tasks_md(&[
        support::task("1", "One", "", "write=one.txt"),
        support::task("2", "Two", "", "write=two.txt"),
    ]));
    s.control("2", "exit=1");
    let first = s.run(&["--continue-on-error"]);
    first.assert_code(1);
    let free = worktree_of(&first, "1");
    let finished = first.run_finished();
    let disk = &finished["disk"];
    assert_eq!(disk["slots"], 2, "{finished}");
    assert!(disk["builds_bytes"].as_u64().unwrap() > 0, "{finished}");
    assert!(disk["worktrees_bytes"].as_u64().unwrap() > 0, "{finished}");

    // As a kill in the middle of a move leaves it: the marker in git's record of it says it
    // was moving.
    let n = free.file_name().unwrap().to_string_lossy().into_owned();
    let marker = s.repo().join(format!(
        ".git/worktrees/spec-exec-4-demo-@{n}/spec-exec-moving"
    ));
    assert!(
        std::fs::read(&marker).unwrap_or_default().is_empty(),
        "a finished move empties it"
    );
    support::write(&marker, "moving\n");
    support::write(&free.join("half-written.txt"), "half\n");

    s.control("2", "write=two.txt");
    let second = s.run(&[]);
    second.assert_code(0);
    let leftovers = s.state_dir().join("leftovers");
    let kept: Vec<_> = std::fs::read_dir(&leftovers)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        kept.iter().all(|p| !p.join("half-written.txt").exists()),
        "{kept:?}"
    );
    assert!(std::fs::read(&marker).map_or(true, |m| m.is_empty()));
    assert!(!s.files(&Scratch::branch("2")).contains("half-written.txt"));

    let out = s
        .spec_exec(&["clean", "--message-format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let kinds: Vec<String> = support::text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["type"] == "clean-removed")
        .map(|l| l["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.iter().any(|k| k == "slot"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "build-dir"), "{kinds:?}");
    assert!(
        !s.state_dir()
            .join("builds")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
    assert!(s.linked_worktrees().is_empty());
}

/// `shared-target = true`: the slots share one target directory, each with a build directory
/// of its own for cargo's intermediate artifacts; a build in it works.
#[test]
fn shared_target_gives_the_slots_one_target_directory() {
    let s = Scratch::unapproved(
        &tasks_md(&[shell_task(
            "1",
            "Build",
            "",
            "cargo build -q && env | grep ^CARGO_ | sort > env.txt",
        )]),
        Project::Package,
    );
    let manifest = s.repo().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    support::write(
        &manifest,
        &format!("{text}\n[workspace.metadata.spec-exec]\nshared-target = true\n"),
    );
    s.git(&["commit", "-qam", "Share the target"]);
    s.approve();
    let run = s.shell_run(&["--no-verify"]);
    run.assert_code(0);
    let env = s.show(&support::Scratch::branch("1"), "env.txt");
    let shared = s.state_dir().join("target");
    assert!(
        env.contains(&format!("CARGO_TARGET_DIR={}\n", shared.display())),
        "{env}"
    );
    let build_dir = s.state_dir().join("builds/1");
    assert!(
        env.contains(&format!("CARGO_BUILD_BUILD_DIR={}\n", build_dir.display())),
        "{env}"
    );
    assert!(shared.join("debug").is_dir());
    assert!(build_dir.is_dir());
}

/// A scratch package whose feature is `tasks` (shell tasks), with `data/d0/f0.txt` committed.
fn with_data(tasks: &[String]) -> Scratch {
    let s = Scratch::unapproved(&tasks_md(tasks), Project::Package);
    support::write(&s.repo().join("data/d0/f0.txt"), "data 0\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-qm", "Data"]);
    s.approve();
    s
}

/// A task replaces a directory by an ignored link to a directory outside the repository; the
/// next task in the slot needs the directory back. The move removes the link as a link and
/// writes nothing through it.
#[test]
fn moving_a_slot_never_writes_through_a_link_the_last_task_left() {
    let outside = tempfile::tempdir().unwrap();
    support::write(&outside.path().join("d0/f0.txt"), "PRECIOUS\n");
    let link = format!(
        "git rm -rq data && printf '/data\\n' >> .gitignore && ln -s {} data",
        outside.path().display()
    );
    let s = with_data(&[
        script_task("1", "", &[link.as_str()]),
        script_task(
            "2",
            "",
            &[
                "test -f data/d0/f0.txt",
                "test ! -L data",
                "echo 2 > two.txt",
            ],
        ),
    ]);
    let run = s.shell_run(&["--max-agents", "1", "--no-verify"]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("d0/f0.txt")).unwrap(),
        "PRECIOUS\n"
    );
    assert_eq!(
        std::fs::read_dir(outside.path().join("d0"))
            .unwrap()
            .count(),
        1,
        "files were written outside the repository"
    );
}

/// Nor through a link the last task committed where the next task's tree has a directory:
/// here a link to a directory of your own tree, where you have uncommitted work.
#[test]
fn moving_a_slot_never_writes_through_a_link_the_last_task_committed() {
    let s = Scratch::unapproved(
        &tasks_md(&[
            script_task(
                "1",
                "",
                &["rm -r d && ln -s \"$SPEC_EXEC_ROOT_FOR_TEST/src\" d"],
            ),
            script_task(
                "2",
                "",
                &["test -f d/lib.rs", "test ! -L d", "echo 2 > two.txt"],
            ),
        ]),
        Project::Package,
    );
    support::write(&s.repo().join("d/lib.rs"), "base d/lib.rs\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-qm", "d"]);
    s.approve();
    let mine = s.repo().join("src/lib.rs");
    support::write(&mine, "// my uncommitted work\n");
    let run = Run::of({
        let mut cmd = s.shell_run_command(&["--max-agents", "1", "--no-verify"]);
        cmd.env("SPEC_EXEC_ROOT_FOR_TEST", s.repo());
        cmd
    });
    run.assert_code(0);
    assert_eq!(worktree_of(&run, "1"), worktree_of(&run, "2"));
    let entry = s.git(&["ls-tree", &support::Scratch::branch("1"), "d"]);
    assert!(entry.starts_with("120000"), "{entry}");
    assert_eq!(
        std::fs::read_to_string(&mine).unwrap(),
        "// my uncommitted work\n"
    );
}

/// A merge the last task left in progress in its slot does not reach the next task: its
/// commit has one parent, and the agent sees no merge going on.
#[test]
fn a_merge_left_in_progress_does_not_reach_the_next_task() {
    let s = with_data(&[
        script_task(
            "1",
            "",
            &["git merge -q --no-commit --no-ff side", "echo 1 > one.txt"],
        ),
        script_task(
            "2",
            "",
            &[
                "test ! -e \"$(git rev-parse --git-dir)/MERGE_HEAD\"",
                "echo 2 > two.txt",
            ],
        ),
    ]);
    s.git(&["checkout", "-qb", "side"]);
    support::write(&s.repo().join("side.txt"), "side\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-qm", "side"]);
    s.git(&["checkout", "-q", "main"]);
    let run = s.shell_run(&["--max-agents", "1", "--no-verify"]);
    run.assert_code(0);
    let parents = s.git(&["rev-list", "--parents", "-n", "1", &Scratch::branch("2")]);
    assert_eq!(parents.split_whitespace().count(), 2, "{parents}");
}

/// A task that deletes the package's manifest is not verified against the repository's own
/// manifest above the worktree (the worktree is inside `.git`): the verification fails, and
/// nothing is written into the user's tree.
#[test]
fn verify_never_reaches_the_users_manifest_above_the_worktree() {
    let s = with_data(&[script_task(
        "1",
        "",
        &[
            "git rm -q Cargo.toml src/lib.rs",
            "echo 'pub fn broken(' > leftover.rs",
        ],
    )]);
    let run = s.shell_run(&["--max-attempts", "1"]);
    run.assert_code(1);
    assert!(
        run.reason("1").contains("the worktree has no `Cargo.toml`"),
        "{}",
        run.context()
    );
    assert!(!s.repo().join("Cargo.lock").exists());
    assert!(!s.repo().join("target").exists());
}

/// An agent that resets its branch to an older commit does not get its work committed
/// without the task's base.
#[test]
fn an_agent_that_moves_its_branch_back_is_not_committed() {
    let s = with_data(&[script_task(
        "1",
        "",
        &["git reset -q --hard HEAD~1", "echo 1 > one.txt"],
    )]);
    let run = s.shell_run(&["--no-verify"]);
    run.assert_code(1);
    assert!(
        run.reason("1")
            .contains("off the commit the task started from"),
        "{}",
        run.context()
    );
    let tip = s.git(&["log", "-1", "--format=%B", &Scratch::branch("1")]);
    assert!(!tip.contains("Spec-Exec-Task"), "{tip}");
}

/// A slot someone moved away (`git worktree move`) or locked is theirs: a run leaves it and
/// its record alone and uses another number; `clean` keeps a locked one.
#[test]
fn a_slot_moved_away_or_locked_is_left_alone() {
    let s = with_data(&[
        script_task("1", "", &["echo 1 > one.txt"]),
        script_task("2", "1", &["echo 2 > two.txt"]),
        script_task("3", "2", &["echo 3 > three.txt"]),
    ]);
    let mine = s.repo().parent().unwrap().join("mine");
    let run = s.shell_run(&["--no-verify", "--max-agents", "1"]);
    run.assert_code(0);
    let slot = worktree_of(&run, "1");
    s.git(&[
        "worktree",
        "move",
        slot.to_str().unwrap(),
        mine.to_str().unwrap(),
    ]);
    support::git_in(&mine, &["switch", "-qc", "mywork"]);
    support::write(&mine.join("wip.txt"), "wip\n");
    support::git_in(&mine, &["add", "wip.txt"]);

    // New work for the feature: its tasks again, from scratch.
    for id in ["1", "2", "3"] {
        s.git(&["branch", "-D", &Scratch::branch(id)]);
    }
    s.git(&["branch", "-D", &Scratch::branch("integration")]);
    s.git(&["checkout", "-q", "--", "."]);
    let again = s.shell_run(&["--no-verify", "--max-agents", "1"]);
    again.assert_code(0);
    assert_ne!(worktree_of(&again, "1"), slot, "{}", again.context());
    let status = support::git_in(&mine, &["status", "--porcelain", "--branch"]);
    assert!(status.contains("## mywork"), "{status}");
    assert!(status.contains("A  wip.txt"), "{status}");

    // A locked slot: kept by clean.
    let locked = worktree_of(&again, "1");
    s.git(&["worktree", "lock", locked.to_str().unwrap()]);
    let out = s.spec_exec(&["clean"]).output().unwrap();
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    assert!(locked.is_dir(), "{}", support::text(&out.stderr));
    assert!(
        support::text(&out.stderr).contains("it is locked"),
        "{}",
        support::text(&out.stderr)
    );
}

/// One slot made at a time (`SPEC_EXEC_SLOT_MAKERS=1`), three agents, three tasks whose agents
/// each wait until all three run: a job that waits while a slot is made gets its own slot once
/// that one is made, so all three run at once, each in a slot of its own.
#[test]
fn jobs_waiting_while_a_slot_is_made_still_run_side_by_side() {
    let met = tempfile::tempdir().unwrap();
    let met = met.path().display();
    let lines = [
        format!("touch '{met}'/$SPEC_EXEC_TASK_ID"),
        format!(
            "for i in $(seq 1 300); do [ $(ls '{met}' | wc -l) -ge 3 ] && echo met > met.txt && exit 0; sleep 0.05; done"
        ),
        "exit 9".to_owned(),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let tasks: Vec<String> = ["1", "2", "3"]
        .iter()
        .map(|id| script_task(id, "", &lines))
        .collect();
    let s = Scratch::package(&tasks_md(&tasks));
    let mut cmd = s.shell_run_command(&["--max-agents", "3", "--no-verify"]);
    cmd.env("SPEC_EXEC_SLOT_MAKERS", "1");
    let run = Run::of(cmd);
    run.assert_code(0);
    let slots: std::collections::BTreeSet<PathBuf> = ["1", "2", "3"]
        .iter()
        .map(|id| worktree_of(&run, id))
        .collect();
    assert_eq!(slots.len(), 3, "{}", run.context());
}

/// Task 1 removes the `.gitattributes` that checks text files out with CRLF; task 2, next in
/// the same slot, appends a line to one of them; task 3 runs from the base, where the
/// attributes hold, and task 4 after task 1 again. Each task finds what a new worktree would
/// hold (LF after task 1, CRLF at the base), so each commit is its one line.
#[test]
fn attributes_a_task_changes_apply_to_every_file_of_the_next_task() {
    let s = Scratch::unapproved(
        &tasks_md(&[
            script_task("1", "", &["git rm -q .gitattributes"]),
            script_task("2", "Task 1", &["printf 'x\\n' >> sub/f1.txt"]),
            script_task(
                "3",
                "",
                &["cp sub/f3.txt \"$HELPER_CTL/f3\"", "echo three > three.txt"],
            ),
            script_task("4", "Task 1", &["printf 'x\\n' >> sub/f2.txt"]),
        ]),
        Project::Package,
    );
    support::write(&s.repo().join(".gitattributes"), "*.txt text eol=crlf\n");
    for i in 1..=3 {
        support::write(&s.repo().join(format!("sub/f{i}.txt")), "a\nb\n");
    }
    commit_base(&s);
    let run = run_in_one_slot(&s, &[]);
    for (task, file) in [("2", "sub/f1.txt"), ("4", "sub/f2.txt")] {
        let changed = s.git(&[
            "diff",
            "--numstat",
            &Scratch::branch("1"),
            &Scratch::branch(task),
        ]);
        assert_eq!(changed.trim(), format!("1\t0\t{file}"), "{}", run.context());
    }
    assert_eq!(std::fs::read(s.ctl().join("f3")).unwrap(), b"a\r\nb\r\n");
    let slot = worktree_of(&run, "4");
    assert_eq!(std::fs::read(slot.join("sub/f3.txt")).unwrap(), b"a\nb\n");
}

/// `SPEC_EXEC_SLOT_MAKERS` that is not a whole number from 1 stops the run before anything
/// starts, saying what to set.
#[test]
fn a_bad_number_of_slot_makers_stops_the_run_before_it_starts() {
    let s = Scratch::package(&tasks_md(&[shell_task(
        "1",
        "One",
        "",
        "echo one > one.txt",
    )]));
    for bad in ["0", "two", "-1"] {
        let mut cmd = s.shell_run_command(&["--no-verify"]);
        cmd.env("SPEC_EXEC_SLOT_MAKERS", bad);
        let run = Run::of(cmd);
        run.assert_code(2);
        assert!(
            run.stderr.contains(&format!(
                "invalid SPEC_EXEC_SLOT_MAKERS: `{bad}` is not a whole number from 1"
            )) && run.stderr.contains("unset it for the machine's cores"),
            "{}",
            run.context()
        );
        assert!(run.started().is_empty(), "{}", run.context());
    }
    assert!(s.linked_worktrees().is_empty());
}
