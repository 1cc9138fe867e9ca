//! Run state and recovery: where a feature's run state lives (per repository, under git's own
//! directory), the run lock, what a killed run leaves (ref locks, half-made and half-removed
//! worktrees) and the checks that refuse, before anything runs, what would fail after starting.
//! The built binary in scratch git repositories, with `fixtures/agents/helper.sh` or the `shell`
//! agent.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{FEATURE, Project, Run, Scratch, task, tasks_md, text, write};

/// The state of the feature's task `id` in a `task-finished` event.
fn worktree_of(run: &Run, id: &str) -> PathBuf {
    PathBuf::from(run.finished(id)["worktree"].as_str().unwrap())
}

/// Waits (at most 60 s) for `child` to end; its output.
fn wait(child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = child.id();
    let out = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !out.is_finished() {
        if Instant::now() > deadline {
            let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            panic!("the run did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    out.join().unwrap()
}

/// A scratch repository whose feature directory is renamed to `name`. Not approved: a run
/// checks the list before its approval.
fn feature_named(tasks: &str, name: &str) -> Scratch {
    let s = Scratch::unapproved(tasks, Project::Workspace);
    s.git(&[
        "mv",
        &format!("documentation/features/{FEATURE}"),
        &format!("documentation/features/{name}"),
    ]);
    s.git(&["commit", "-q", "-m", "Rename the feature"]);
    s
}

/// `check`, a dry run and a run of `name` all refuse with exit 2 and a message containing each
/// of `expect`, and no agent starts.
fn refused_everywhere(s: &Scratch, name: &str, expect: &[&str]) {
    let agent = support::helper_agent();
    for args in [
        vec!["check", name],
        vec!["run", name, "--dry-run"],
        vec!["run", name, "--agent", agent.as_str()],
    ] {
        let out = s.spec_exec(&args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for e in expect {
            assert!(err.contains(e), "{args:?}: no `{e}` in\n{err}");
        }
    }
    assert_eq!(s.records().starts, 0, "an agent started");
    assert!(s.branches().is_empty(), "{:?}", s.branches());
}

// Item: a ref lock left by a killed run. -----------------------------------------------------

/// A kill while git wrote a task's branch leaves `<branch>.lock`: the next run, holding the run
/// lock, removes it (it is older than the run) and says so, and the task runs.
#[test]
fn a_ref_lock_left_by_a_killed_run_is_removed() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let lock = s
        .repo()
        .join(".git/refs/heads/spec")
        .join(FEATURE)
        .join("1.lock");
    write(&lock, "");
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("1"), "done");
    assert!(!lock.exists());
    assert!(
        run.stderr.contains("Removed") && run.stderr.contains("1.lock"),
        "{}",
        run.context()
    );
}

/// A ref lock that appears while the run goes on is someone else's: the task fails with the
/// lock's path and what to do; the next run finds it older than itself and removes it.
#[test]
fn a_ref_lock_taken_during_the_run_names_its_path() {
    let tasks = "# Implementation Tasks\n\n\
        - [ ] 1. **Lock the next branch**\n  - _Dependencies: None_\n\n  ```sh\n  echo 1 > one.txt\n  touch \"$(git rev-parse --git-common-dir)/refs/heads/spec/demo/2.lock\"\n  ```\n\n\
        - [ ] 2. **Two**\n  - _Dependencies: Task 1_\n\n  ```sh\n  echo 2 > two.txt\n  ```\n";
    let s = Scratch::new(tasks);
    let args = [
        "run",
        FEATURE,
        "--agent",
        "shell",
        "--message-format",
        "json",
    ];
    let first = s.run_args(&args);
    first.assert_code(1);
    assert_eq!(first.status("1"), "done");
    let reason = first.reason("2");
    assert!(
        reason.contains("refs/heads/spec/demo/2.lock") && reason.contains("delete the lock file"),
        "{}",
        first.context()
    );
    let second = s.run_args(&args);
    second.assert_code(0);
    assert_eq!(second.status("2"), "done");
    assert!(second.stderr.contains("2.lock"), "{}", second.context());
}

// Item: half-made and half-removed worktrees. ------------------------------------------------

/// A kill while git made a worktree leaves its record half-made (an empty folder, or one with
/// only `gitdir`): git then refuses to make it again ("directory exists") until it is gone.
#[test]
fn half_made_worktree_records_do_not_block_their_tasks() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "One", "", "write=one.txt"),
        task("2", "Two", "", "write=two.txt"),
    ]));
    let admin = s.repo().join(".git/worktrees");
    std::fs::create_dir_all(admin.join("spec-exec-4-demo-1")).unwrap();
    write(
        &admin.join("spec-exec-4-demo-2/gitdir"),
        &format!("{}\n", s.state_dir().join("worktrees/2/.git").display()),
    );
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("1"), "done");
    assert_eq!(run.status("2"), "done");
    assert!(!admin.join("spec-exec-4-demo-1").exists());
    assert!(!admin.join("spec-exec-4-demo-2").exists());
}

/// A record cut short by a kill while git's files were written: `gitdir` empty (libgit2 then
/// takes the worktree for `.`, the directory the run is started from), or naming a directory
/// that is no worktree of spec-exec's. The record goes; the user's files stay, every one.
#[test]
fn a_damaged_worktree_record_never_removes_the_users_files() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "One", "", "write=one.txt"),
        task("2", "Two", "", "write=two.txt"),
    ]));
    let admin = s.repo().join(".git/worktrees");
    for (id, gitdir) in [
        ("1", String::new()),
        ("2", format!("{}\n", s.repo().join(".git").display())),
    ] {
        let record = admin.join(format!("spec-exec-4-demo-{id}"));
        write(&record.join("commondir"), "../..\n");
        write(
            &record.join("HEAD"),
            &format!("ref: refs/heads/spec/demo/{id}\n"),
        );
        write(&record.join("gitdir"), &gitdir);
    }
    let files_before = s.git(&["ls-files"]);
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("1"), "done", "{}", run.context());
    assert_eq!(run.status("2"), "done", "{}", run.context());
    // Every tracked file is still there, and the repository with it.
    assert_eq!(s.git(&["ls-files"]), files_before);
    for f in files_before.lines() {
        assert!(s.repo().join(f).exists(), "{f} is gone");
    }
    assert!(
        s.git(&["status", "--porcelain", "--untracked-files=no"])
            .lines()
            .all(|l| l.ends_with("tasks.md"))
    );
    assert!(!admin.join("spec-exec-4-demo-1").exists());
    assert!(!admin.join("spec-exec-4-demo-2").exists());
}

/// A worktree directory whose git record is gone (a kill while it was removed): its files are
/// moved to the leftovers, never deleted, and one holding nothing but its `.git` file goes.
#[test]
fn a_worktree_directory_without_its_git_record_is_moved_aside() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let orphan = s.state_dir().join("worktrees/9");
    write(&orphan.join("notes.txt"), "mine\n");
    write(&orphan.join(".git"), "gitdir: /nowhere/worktrees/x\n");
    let empty = s.state_dir().join("worktrees/8");
    write(&empty.join(".git"), "gitdir: /nowhere/worktrees/y\n");
    let run = s.run(&[]);
    run.assert_code(0);
    assert!(run.stderr.contains("Kept"), "{}", run.context());
    assert!(!orphan.exists() && !empty.exists());
    let kept: Vec<PathBuf> = std::fs::read_dir(s.state_dir().join("leftovers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read_to_string(kept[0].join("notes.txt")).unwrap(),
        "mine\n"
    );
    assert!(!kept[0].join(".git").exists());
}

// Item: the run lock. ------------------------------------------------------------------------

/// The run lock is an OS lock, not a pid: a lock file naming a live process that is no run
/// (a pid reused after a crash or a reboot) blocks nothing.
#[test]
fn a_run_lock_file_naming_a_live_process_blocks_nothing() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let pid = format!("{}\n", std::process::id());
    write(&s.state_dir().join("run.lock"), &pid);
    write(
        &s.repo()
            .join("target/spec-exec")
            .join(FEATURE)
            .join("run.lock"),
        &pid,
    );
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("1"), "done");
    assert!(s.run_lock_free());
}

/// Two runs of one feature started together, over a lock file left by a run that died:
/// exactly one runs; the other is refused with the lock's path, and no agent runs twice.
#[test]
fn of_two_runs_started_together_exactly_one_runs() {
    for _ in 0..3 {
        let s = Scratch::new(&tasks_md(&[task(
            "1",
            "One",
            "",
            "waitfor=go write=one.txt",
        )]));
        write(&s.state_dir().join("run.lock"), "999999999\n");
        let spawn = || {
            s.run_command(&[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (mut a, mut b) = (spawn(), spawn());
        let deadline = Instant::now() + Duration::from_secs(60);
        let refused_first = loop {
            if a.try_wait().unwrap().is_some() {
                break true;
            }
            if b.try_wait().unwrap().is_some() {
                break false;
            }
            assert!(Instant::now() < deadline, "neither run was refused");
            std::thread::sleep(Duration::from_millis(10));
        };
        let (refused, running) = if refused_first { (a, b) } else { (b, a) };
        let refused = wait(refused);
        let err = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{err}");
        assert!(
            err.contains("another run of `demo`") && err.contains("run.lock"),
            "{err}"
        );
        write(&s.ctl().join("go"), "");
        let ran = wait(running);
        assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
        assert_eq!(s.starts("1"), 1);
    }
}

// Item: run state per repository. ------------------------------------------------------------

/// Two repositories with a feature of the same name and one shared target directory: a run in
/// one neither blocks nor touches the other's kept worktree.
#[test]
fn repositories_sharing_a_target_directory_keep_their_run_state_apart() {
    let shared = tempfile::tempdir().unwrap();
    let a = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let b = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let run = |s: &Scratch| {
        let mut cmd = s.run_command(&[]);
        cmd.env("CARGO_TARGET_DIR", shared.path());
        Run::of(cmd)
    };
    a.control("1", "write=partial.txt exit=1");
    let failed = run(&a);
    failed.assert_code(1);
    let kept = worktree_of(&failed, "1");
    assert!(kept.starts_with(a.repo().join(".git")), "{kept:?}");
    assert!(kept.join("partial.txt").exists());

    let other = run(&b);
    other.assert_code(0);
    assert_eq!(other.status("1"), "done");
    assert_eq!(
        std::fs::read_to_string(kept.join("partial.txt")).unwrap(),
        "1\n",
        "the other repository's run touched this one's worktree"
    );
    assert!(!shared.path().join("spec-exec").exists());
}

/// Run state at the old place (`target/spec-exec/<feature>`): a worktree of this repository
/// there is cleaned like any other (its changed files moved to the leftovers), and the rest
/// (logs, earlier leftovers) is left where it is, with a line saying so.
#[test]
fn run_state_at_the_old_place_is_cleaned_or_left_alone() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let old = s.repo().join("target/spec-exec").join(FEATURE);
    write(&old.join("leftovers/1-earlier/keep.txt"), "earlier\n");
    // A worktree an earlier version made: named as spec-exec names it, with a change in it.
    let made = old.join("worktrees/spec-exec-4-demo-1");
    s.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        &Scratch::branch("1"),
        made.to_str().unwrap(),
    ]);
    let wt = old.join("worktrees/1");
    s.git(&[
        "worktree",
        "move",
        made.to_str().unwrap(),
        wt.to_str().unwrap(),
    ]);
    write(&wt.join("changed.txt"), "work\n");

    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("1"), "done");
    assert!(!wt.exists());
    assert_eq!(
        std::fs::read_to_string(old.join("leftovers/1-earlier/keep.txt")).unwrap(),
        "earlier\n"
    );
    let kept: Vec<PathBuf> = std::fs::read_dir(s.state_dir().join("leftovers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read_to_string(kept[0].join("changed.txt")).unwrap(),
        "work\n"
    );
    assert!(
        run.stderr.contains("Moved") && run.stderr.contains("target/spec-exec/demo"),
        "{}",
        run.context()
    );
}

// Item: two features at once. ----------------------------------------------------------------

/// Two features of one repository run at once, several times: no task fails.
#[test]
fn two_features_run_at_once_in_one_repository() {
    let ids: Vec<String> = (1..=6).map(|i| i.to_string()).collect();
    let list = |prefix: &str| {
        tasks_md(
            &ids.iter()
                .map(|i| task(i, "Write", "", &format!("write={prefix}-{i}.txt")))
                .collect::<Vec<_>>(),
        )
    };
    for _ in 0..3 {
        let s = Scratch::new(&list("a"));
        write(
            &s.repo().join("documentation/features/other/tasks.md"),
            &list("b"),
        );
        s.git(&["add", "-A"]);
        s.git(&["commit", "-q", "-m", "Another feature"]);
        let out = s.spec_exec(&["approve", "other"]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        s.git(&["commit", "-q", "-am", "Approve it"]);
        let agent = support::helper_agent();
        let start = |feature: &str| {
            s.spec_exec(&["run", feature, "--agent", &agent, "--max-agents", "3"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (start(FEATURE), start("other"));
        for out in [wait(a), wait(b)] {
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        }
        // Six task branches and an integration branch each.
        assert_eq!(s.branches().len(), 14, "{:?}", s.branches());
    }
}

/// What runs do to the repository's worktrees at once, from three handles: adding and
/// removing worktrees of different names never fails. (libgit2 lists the worktrees, then
/// opens each; one removed in between made it report the branch "already checked out".)
#[test]
fn worktrees_added_and_removed_from_three_handles_at_once() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "nothing")]));
    let repo = s.repo();
    const ROUNDS: usize = 150;
    const KEEP: usize = 4;
    for side in ["a", "b", "c"] {
        for k in 0..KEEP {
            s.git(&["branch", &format!("spec/{side}/{k}")]);
        }
    }
    let state = s.repo().join(".git/spec-exec");
    // Each side keeps a few worktrees at a time, adding one and removing its oldest.
    let work = |side: &'static str, repo: PathBuf, state: PathBuf| {
        std::thread::spawn(move || {
            let git = cargo_spec_exec::git::Git::open(&repo).unwrap();
            let at = |n: usize| {
                (
                    format!("spec-exec-1-{side}-{n}"),
                    state.join(side).join(n.to_string()),
                )
            };
            for n in 0..ROUNDS {
                let branch = format!("spec/{side}/{}", n % KEEP);
                let (name, path) = at(n);
                git.add_worktree(&name, &path, &branch)
                    .unwrap_or_else(|e| panic!("{side} {n}: {e}"));
                if n + 1 >= KEEP {
                    let (name, path) = at(n + 1 - KEEP);
                    git.remove_worktree(&name, &path)
                        .unwrap_or_else(|e| panic!("{side} {n}: {e}"));
                }
            }
            for n in ROUNDS + 1 - KEEP..ROUNDS {
                let (name, path) = at(n);
                git.remove_worktree(&name, &path).unwrap();
            }
        })
    };
    let sides: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|side| work(side, repo.clone(), state.clone()))
        .collect();
    let failed = sides
        .into_iter()
        .map(|t| t.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(failed, 0, "a worktree operation failed");
    let left = std::fs::read_dir(repo.join(".git/worktrees")).map_or(0, Iterator::count);
    assert_eq!(left, 0);
}

// Item: what `check` passes must run. --------------------------------------------------------

/// A 60-character feature name and a 190-character task id make a worktree name over 255
/// bytes: refused at the task, by check, a dry run and a run alike.
#[test]
fn a_worktree_name_too_long_is_refused_at_the_task() {
    let id = "1".repeat(190);
    let name = "f".repeat(60);
    let s = feature_named(&tasks_md(&[task(&id, "Long", "", "write=one.txt")]), &name);
    refused_everywhere(
        &s,
        &name,
        &["too long for a worktree name", "tasks.md:3:7", "255"],
    );
}

/// A 250-character feature name: every worktree name would be too long.
#[test]
fn a_feature_name_too_long_for_worktrees_is_refused() {
    let name = "f".repeat(250);
    let s = feature_named(&tasks_md(&[task("1", "One", "", "write=one.txt")]), &name);
    refused_everywhere(&s, &name, &["is too long", "255"]);
}

/// A branch `spec` (or `spec/<feature>`) leaves git no room for `spec/<feature>/<id>`.
#[test]
fn a_branch_in_the_way_of_the_task_branches_is_refused() {
    for branch in ["spec", "spec/demo"] {
        let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
        s.git(&["branch", branch]);
        let out = s.spec_exec(&["check", FEATURE]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let agent = support::helper_agent();
        for args in [
            vec!["run", FEATURE, "--dry-run"],
            vec!["run", FEATURE, "--agent", agent.as_str()],
        ] {
            let out = s.spec_exec(&args).output().unwrap();
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains(&format!("the branch `{branch}` is in the way"))
                    && err.contains(&format!("git branch -m {branch} {branch}-old")),
                "{err}"
            );
        }
        assert_eq!(s.records().starts, 0);
    }
}

/// Two ids that make one branch name (`CR-A` used twice is read as `CR-A@2`, whose branch is
/// `CR-A-2`, like task `CR-A-2`'s): refused at the second, before anything runs.
#[test]
fn two_ids_of_one_branch_are_refused_at_the_task() {
    let s = Scratch::unapproved(
        &tasks_md(&[
            task("CR-A", "One", "", "write=one.txt"),
            task("CR-A", "Two", "", "write=two.txt"),
            task("CR-A-2", "Three", "", "write=three.txt"),
        ]),
        Project::Workspace,
    );
    refused_everywhere(
        &s,
        FEATURE,
        &[
            "tasks CR-A@2 and CR-A-2 would share the branch `spec/demo/CR-A-2`",
            "tasks.md:11:7",
        ],
    );
}

/// A branch below a task's branch name (`spec/demo/1/x`) leaves git no room for it either.
#[test]
fn a_branch_below_a_task_branch_is_refused_at_the_task() {
    let s = Scratch::unapproved(
        &tasks_md(&[task("1", "One", "", "write=one.txt")]),
        Project::Workspace,
    );
    s.git(&["branch", "spec/demo/1/x"]);
    let out = s.spec_exec(&["check", FEATURE]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the branch `spec/demo/1/x` is in the way of task 1's branch")
            && err.contains("tasks.md:3:7"),
        "{err}"
    );
}

/// A worktree whose checkout never finished (no index: the run was killed while making it)
/// holds no agent's work: the next run removes it without keeping a copy, and the task runs.
#[test]
fn a_worktree_whose_checkout_never_finished_is_not_kept() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let made = s.state_dir().join("worktrees/spec-exec-4-demo-1");
    s.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        &Scratch::branch("1"),
        made.to_str().unwrap(),
    ]);
    let wt = s.state_dir().join("worktrees/1");
    s.git(&[
        "worktree",
        "move",
        made.to_str().unwrap(),
        wt.to_str().unwrap(),
    ]);
    std::fs::remove_file(s.repo().join(".git/worktrees/spec-exec-4-demo-1/index")).unwrap();
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("1"), "done");
    assert!(!run.stderr.contains("Kept"), "{}", run.context());
    assert!(!s.state_dir().join("leftovers").exists());
}
