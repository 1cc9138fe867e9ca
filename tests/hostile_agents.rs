//! Agents that turn on the tool: a worktree swapped for a link to the user's tree, a `.git`
//! pointed elsewhere, a branch switched. spec-exec commits nothing then, and its clean-up never
//! reaches the user's files through what the agent left.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::path::Path;

use support::{Scratch, shell_task, tasks_md};

/// Shell lines that set `repo` to the user's working tree, from inside a task's worktree.
const USER_REPO: &str =
    r#"repo=$(dirname "$(git rev-parse --path-format=absolute --git-common-dir)")"#;

fn user_edits(s: &Scratch) {
    std::fs::write(s.repo().join("README.md"), "the user's edit\n").unwrap();
    std::fs::write(s.repo().join("notes.txt"), "untracked\n").unwrap();
}

fn assert_user_tree_intact(s: &Scratch, head: &str) {
    assert_eq!(
        s.git(&["rev-parse", "HEAD"]),
        head,
        "the user's branch moved"
    );
    assert_eq!(
        std::fs::read_to_string(s.repo().join("README.md")).unwrap(),
        "the user's edit\n"
    );
    let status = s.git(&["status", "--porcelain"]);
    assert!(status.contains(" M README.md"), "{status}");
    assert!(status.contains("?? notes.txt"), "{status}");
}

#[test]
fn a_worktree_swapped_for_a_link_to_the_users_tree_is_not_committed() {
    let s = Scratch::new(&tasks_md(&[
        shell_task("1", "One", "", "echo 1 > one.txt"),
        shell_task(
            "2",
            "Swap",
            "Task 1",
            &format!(
                "echo 2 > two.txt; {USER_REPO}; w=$(pwd); cd .. && mv \"$w\" \"$w.real\" && ln -s \"$repo\" \"$w\""
            ),
        ),
    ]));
    user_edits(&s);
    let head = s.git(&["rev-parse", "HEAD"]);
    let run = s.shell_run(&[]);
    assert_two_refused(&run);
    assert_user_tree_intact(&s, &head);
    // Task 1's tick is kept; 2 is not ticked.
    assert!(support::is_ticked(&s.tasks_md(), "1"));
    assert!(!support::is_ticked(&s.tasks_md(), "2"));

    // The next run clears the link without reaching through it.
    let again = s.shell_run(&[]);
    assert_user_tree_intact(&s, &head);
    assert!(s.repo().join(".git/HEAD").exists());
    let _ = again;
}

#[test]
fn a_git_pointed_at_the_users_repository_or_a_switched_branch_is_not_committed() {
    let s = Scratch::new(&tasks_md(&[
        shell_task(
            "1",
            "Repoint",
            "",
            &format!("echo 1 > one.txt; {USER_REPO}; rm .git && ln -s \"$repo/.git\" .git"),
        ),
        shell_task(
            "2",
            "Switch",
            "",
            "git checkout -q -b elsewhere && echo 2 > two.txt",
        ),
    ]));
    user_edits(&s);
    s.git(&["add", "notes.txt"]);
    let head = s.git(&["rev-parse", "HEAD"]);
    let index = std::fs::read(s.repo().join(".git/index")).unwrap();
    let run = s.shell_run(&["--continue-on-error"]);
    run.assert_code(1);
    for id in ["1", "2"] {
        assert_eq!(run.status(id), "failed", "{}", run.context());
        assert!(
            run.reason(id).contains("no longer the one spec-exec made"),
            "{}",
            run.context()
        );
    }
    assert_eq!(s.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(
        std::fs::read(s.repo().join(".git/index")).unwrap(),
        index,
        "the user's index was rewritten"
    );
    let elsewhere = s.git(&["rev-parse", "elsewhere"]);
    assert_eq!(
        elsewhere, head,
        "a commit was made on the switched-to branch"
    );
}

/// Task 1 does its work; task 2, `title`, runs `script` after it, in the slot task 1 left.
fn fine_then(title: &str, script: &str) -> Scratch {
    Scratch::new(&tasks_md(&[
        shell_task("1", "Fine", "", "echo 1 > one.txt"),
        shell_task("2", title, "1", script),
    ]))
}

/// Runs [`fine_then`]'s tasks one at a time, with `env` besides.
fn run_one_at_a_time(s: &Scratch, env: &[(&str, &Path)]) -> support::Run {
    let mut command = s.shell_run_command(&["--max-agents", "1", "--no-verify"]);
    command.envs(env.iter().copied());
    support::Run::of(command)
}

/// Task 1 was committed; task 2 was refused before its commit as not in the worktree
/// spec-exec made.
fn assert_two_refused(run: &support::Run) {
    run.assert_code(1);
    assert_eq!(run.status("1"), "done", "{}", run.context());
    assert_eq!(run.status("2"), "failed", "{}", run.context());
    assert!(
        run.reason("2").contains("no longer the one spec-exec made"),
        "{}",
        run.context()
    );
}

/// Task 1 was committed; task 2, in the slot task 1 left, was refused before its commit as
/// not in the worktree spec-exec made.
fn assert_refused_in_a_reused_slot(run: &support::Run) {
    assert_two_refused(run);
    let started = |id: &str| {
        run.of_type("task-started")
            .find(|e| e["id"] == id)
            .map(|e| e["worktree"].clone())
    };
    assert_eq!(
        started("1"),
        started("2"),
        "task 2 did not reuse task 1's slot"
    );
}

/// A `.git` file rewritten to lead to the user's repository, in a slot that ran a task before
/// (whose repository spec-exec keeps open from task to task), is found before the commit.
#[test]
fn a_git_file_rewritten_in_a_reused_slot_is_not_committed() {
    let s = fine_then(
        "Rewrite",
        &format!("echo 2 > two.txt; {USER_REPO}; printf 'gitdir: %s\\n' \"$repo/.git\" > .git"),
    );
    user_edits(&s);
    s.git(&["add", "notes.txt"]);
    let head = s.git(&["rev-parse", "HEAD"]);
    let index = std::fs::read(s.repo().join(".git/index")).unwrap();
    let run = run_one_at_a_time(&s, &[]);
    assert_refused_in_a_reused_slot(&run);
    assert_eq!(s.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(
        std::fs::read(s.repo().join(".git/index")).unwrap(),
        index,
        "the user's index was rewritten"
    );
}

/// An agent that points its worktree's record at another repository (`commondir`), in a
/// slot that ran a task before, has its task fail before anything is committed there, and no
/// later task runs against that repository.
#[test]
fn a_worktree_record_pointed_at_another_repository_is_not_committed() {
    let s = fine_then(
        "Repoint the record",
        "echo 2 > two.txt; echo \"$OTHER/.git\" > \"$(git rev-parse --git-dir)/commondir\"",
    );
    let other = s.repo().parent().unwrap().join("other");
    std::fs::create_dir_all(&other).unwrap();
    support::git_in(&other, &["init", "-q"]);
    let head = s.git(&["rev-parse", "HEAD"]);
    let run = run_one_at_a_time(&s, &[("OTHER", &other)]);
    assert_refused_in_a_reused_slot(&run);
    assert_eq!(s.git(&["rev-parse", "HEAD"]), head);
    assert!(
        support::git_in(&other, &["for-each-ref"]).trim().is_empty(),
        "the other repository got refs"
    );
}

/// A worktree of the user's whose name happens to start like spec-exec's is left alone, with
/// what is staged in it.
#[test]
fn a_users_worktree_named_like_spec_execs_is_left_alone() {
    let s = Scratch::new(&tasks_md(&[shell_task("1", "One", "", "echo 1 > one.txt")]));
    let mine = s.repo().parent().unwrap().join("spec-exec-4-demo-mine");
    s.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "mine",
        mine.to_str().unwrap(),
    ]);
    std::fs::write(mine.join("staged.txt"), "mine\n").unwrap();
    support::git_in(&mine, &["add", "staged.txt"]);
    let run = s.shell_run(&[]);
    run.assert_code(0);
    let status = support::git_in(&mine, &["status", "--porcelain"]);
    assert!(status.contains("A  staged.txt"), "{status}");
    assert!(
        s.git(&["worktree", "list"])
            .contains("spec-exec-4-demo-mine")
    );
}

/// A task that made a tracked file of its slot a hard link to the user's own file (its content
/// now the user's uncommitted edit): moving the slot back to the base for the next task never
/// writes through that link, and the user's edit stays.
#[test]
fn a_hard_link_to_the_users_file_changed_in_a_slot_is_never_written_through() {
    let s = Scratch::new(&tasks_md(&[
        shell_task(
            "1",
            "Links",
            "",
            &format!("{USER_REPO}; ln -f \"$repo/README.md\" README.md && echo 1 > one.txt"),
        ),
        shell_task("2", "Next", "", "echo 2 > two.txt"),
    ]));
    user_edits(&s);
    let head = s.git(&["rev-parse", "HEAD"]);
    let run = run_one_at_a_time(&s, &[]);
    run.assert_code(0);
    assert_user_tree_intact(&s, &head);
}

/// A hard link a task left with the same content as the base (so nothing of it is committed,
/// and no checkout has to write it): the next task in the slot does not start with it, so its
/// edits stay in the slot, and the file the link led to is untouched.
#[test]
fn a_hard_link_left_unchanged_in_a_slot_does_not_reach_the_next_task() {
    let s = Scratch::new(&tasks_md(&[
        shell_task(
            "1",
            "Links",
            "",
            "cp README.md \"$HELPER_CTL/outside\" && ln -f \"$HELPER_CTL/outside\" README.md && echo 1 > one.txt",
        ),
        shell_task(
            "2",
            "Edits",
            "",
            "test \"$(stat -c %h README.md)\" = 1 && echo edited >> README.md",
        ),
    ]));
    let base = std::fs::read_to_string(s.repo().join("README.md")).unwrap();
    let run = run_one_at_a_time(&s, &[]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(s.ctl().join("outside")).unwrap(),
        base
    );
    assert!(s.files(&Scratch::branch("2")).contains("README.md"));
}

/// Shell lines that set `record` to git's record of the task's worktree.
const RECORD: &str = r#"record=$(git rev-parse --absolute-git-dir)"#;

/// A task that leaves a link where spec-exec marks a slot it moves (in the worktree's record):
/// the next move writes its mark anew, never through the link to a file outside.
#[test]
fn a_link_left_at_the_slots_move_mark_is_never_written_through() {
    let s = Scratch::new(&tasks_md(&[
        shell_task(
            "1",
            "Links",
            "",
            &format!(
                "{RECORD}; echo precious > \"$HELPER_CTL/outside\" && ln -sf \"$HELPER_CTL/outside\" \"$record/spec-exec-moving\" && echo 1 > one.txt"
            ),
        ),
        shell_task("2", "Next", "", "echo 2 > two.txt"),
    ]));
    let run = run_one_at_a_time(&s, &[]);
    run.assert_code(0);
    assert_eq!(
        std::fs::read_to_string(s.ctl().join("outside")).unwrap(),
        "precious\n"
    );
}

/// A task that links its worktree's index to the user's: nothing is committed, and the user's
/// index is not written.
#[test]
fn an_index_linked_to_the_users_is_not_written() {
    let s = Scratch::new(&tasks_md(&[shell_task(
        "1",
        "Links",
        "",
        &format!(
            "{USER_REPO}; {RECORD}; ln -sf \"$repo/.git/index\" \"$record/index\" && echo 1 > one.txt"
        ),
    )]));
    let index = std::fs::read(s.repo().join(".git/index")).unwrap();
    let head = s.git(&["rev-parse", "HEAD"]);
    let run = s.shell_run(&["--no-verify"]);
    run.assert_code(1);
    assert!(
        run.reason("1").contains("no longer the one spec-exec made"),
        "{}",
        run.context()
    );
    assert_eq!(std::fs::read(s.repo().join(".git/index")).unwrap(), index);
    assert_eq!(s.git(&["rev-parse", "HEAD"]), head);
}

/// A task that puts a FIFO where a tracked file was: its commit is refused with what to do,
/// instead of waiting for a writer that never comes.
#[test]
fn a_fifo_in_a_tracked_files_place_fails_its_task_instead_of_hanging() {
    let s = Scratch::new(&tasks_md(&[shell_task(
        "1",
        "Pipes",
        "",
        "rm README.md && mkfifo README.md",
    )]));
    let run = s.shell_run(&["--no-verify"]);
    run.assert_code(1);
    assert!(
        run.reason("1").contains("`README.md` is a FIFO"),
        "{}",
        run.context()
    );
}
