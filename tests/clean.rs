//! `cargo spec-exec clean`: what it removes of a feature's run state (finished tasks' worktrees,
//! stale worktree records, old run directories; with `--leftovers` the kept worktrees and the
//! moved-aside copies) and what it never touches (branches, the user's tree, index and HEAD, a
//! feature whose run is going on). Real runs of the built binary in scratch git repositories.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::Value;

mod support;

use support::{FEATURE, Scratch, shell_task, task, tasks_md, text, wait_until, write};

/// The bytes of the files (and links, as links) at and under `path`: what removing it frees.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| size_of(&e.unwrap().path()))
        .sum()
}

/// Every file of the user's working tree (`.git` aside) with its content.
fn user_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path == root.join(".git") {
                continue;
            }
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// What `clean` must never change: the user's files, index, HEAD and every branch.
#[derive(Debug, PartialEq, Eq)]
struct UserState {
    tree: BTreeMap<PathBuf, Vec<u8>>,
    index: Vec<u8>,
    head: Vec<u8>,
    refs: String,
}

fn user_state(s: &Scratch) -> UserState {
    UserState {
        tree: user_tree(&s.repo()),
        index: std::fs::read(s.repo().join(".git/index")).unwrap(),
        head: std::fs::read(s.repo().join(".git/HEAD")).unwrap(),
        refs: s.git(&["for-each-ref", "--format=%(refname) %(objectname)"]),
    }
}

/// The linked worktrees git knows of (paths), the main one left out.
fn linked_worktrees(s: &Scratch) -> Vec<PathBuf> {
    s.git(&["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .map(PathBuf::from)
        .filter(|p| p.canonicalize().ok() != s.repo().canonicalize().ok())
        .collect()
}

/// The names of git's worktree records.
fn records(s: &Scratch) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.repo().join(".git/worktrees"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Makes task `id`'s worktree as a run does (same name, place and branch, by the same code):
/// what a run leaves when the removal after the commit could not happen.
fn task_worktree(s: &Scratch, id: &str) -> PathBuf {
    let git = cargo_spec_exec::git::Git::open(&s.repo()).unwrap();
    let path = s.state_dir().join("worktrees").join(id);
    let name = cargo_spec_exec::exec::state::worktree_name(FEATURE, id);
    git.add_worktree(&name, &path, &Scratch::branch(id))
        .unwrap();
    path
}

fn clean(s: &Scratch, args: &[&str]) -> Output {
    let mut all = vec!["clean"];
    all.extend_from_slice(args);
    s.spec_exec(&all).output().unwrap()
}

/// The JSON lines of an output.
fn json_lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The feature's run state after real runs with the shell agent, and worktrees left as
/// earlier versions left them (one per task):
/// - tasks 1, 3 and 4 done (committed on their branches), task 2 failed each run (its last
///   slot kept, with its file; the earlier ones moved to leftovers/);
/// - the free slots the done tasks ran in, and every slot's build directory;
/// - four run directories;
/// - a finished task worktree of task 1 (clean, on its branch), one of task 3 with a file added
///   since (uncommitted), and git's record of one of task 4 whose directory is gone.
struct Setup {
    s: Scratch,
    finished: PathBuf,
    changed: PathBuf,
    failed: PathBuf,
    free: Vec<PathBuf>,
}

/// The slots under the state directory (their numbers' directories).
fn slot_dirs(s: &Scratch) -> Vec<PathBuf> {
    names_in(&s.state_dir().join("slots"))
        .into_iter()
        .filter(|n| n.parse::<u32>().is_ok())
        .map(|n| s.state_dir().join("slots").join(n))
        .collect()
}

fn setup() -> Setup {
    let s = Scratch::new(&tasks_md(&[
        shell_task("1", "One", "", "echo one > one.txt"),
        shell_task("2", "Two", "", "echo two > two.txt && exit 1"),
        shell_task("3", "Three", "", "echo three > three.txt"),
        shell_task("4", "Four", "", "echo four > four.txt"),
    ]));
    let mut failed = PathBuf::new();
    for _ in 0..4 {
        let run = s.shell_run(&["--continue-on-error"]);
        run.assert_code(1);
        assert_eq!(run.status("2"), "failed");
        failed = PathBuf::from(run.finished("2")["worktree"].as_str().unwrap());
    }
    assert_eq!(s.run_dirs().len(), 4);
    assert_eq!(names_in(&s.state_dir().join("leftovers")).len(), 3);
    assert!(failed.join("two.txt").is_file());
    // Each run moved the failed task's slot aside and took the free one: make a free slot
    // as a run leaves one (detached, clean), with a build directory.
    let git = cargo_spec_exec::git::Git::open(&s.repo()).unwrap();
    let slot = s.state_dir().join("slots/7");
    git.add_worktree("spec-exec-4-demo-@7", &slot, &Scratch::branch("1"))
        .unwrap();
    git.detach_worktree(&slot).unwrap();
    write(&s.state_dir().join("builds/7/debug/.fingerprint"), "");
    let free: Vec<PathBuf> = slot_dirs(&s).into_iter().filter(|p| *p != failed).collect();
    assert_eq!(free, std::slice::from_ref(&slot));

    let finished = task_worktree(&s, "1");
    let changed = task_worktree(&s, "3");
    write(&changed.join("notes.txt"), "someone's notes\n");
    let gone = task_worktree(&s, "4");
    std::fs::remove_dir_all(&gone).unwrap();
    Setup {
        s,
        finished,
        changed,
        failed,
        free,
    }
}

/// git's name of the slot at `path`.
fn slot_record(path: &Path) -> String {
    format!(
        "spec-exec-4-demo-@{}",
        path.file_name().unwrap().to_string_lossy()
    )
}

/// `clean` removes the finished worktree, the free slots and every build directory, prunes the
/// stale record and removes the oldest run directory (three kept), and nothing else: the kept
/// worktree and slot and the leftovers stay, every branch stays, and the user's tree, index and
/// HEAD are as they were. It says what it freed, in bytes. `--leftovers` then removes the kept
/// worktrees and the moved-aside copies.
#[test]
fn clean_frees_the_finished_worktrees_and_nothing_else() {
    let Setup {
        s,
        finished,
        changed,
        failed,
        free,
    } = setup();
    let before = user_state(&s);
    let branches = s.branches();
    let runs = s.run_dirs();
    let leftovers = names_in(&s.state_dir().join("leftovers"));
    let git_dir = s.repo().join(".git/worktrees");
    let builds = s.state_dir().join("builds");
    let build_dirs = names_in(&builds).len();
    assert!(build_dirs >= 2, "a build directory per slot");
    let expected = size_of(&finished)
        + size_of(&git_dir.join("spec-exec-4-demo-1"))
        + size_of(&git_dir.join("spec-exec-4-demo-4"))
        + size_of(&runs[0])
        + free
            .iter()
            .map(|p| size_of(p) + size_of(&git_dir.join(slot_record(p))))
            .sum::<u64>()
        + size_of(&builds);

    let out = clean(&s, &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");

    assert!(!finished.exists(), "{err}");
    assert!(free.iter().all(|p| !p.exists()), "{err}");
    assert!(names_in(&builds).is_empty(), "{err}");
    assert!(changed.join("notes.txt").is_file(), "{err}");
    assert!(failed.join("two.txt").is_file(), "{err}");
    let mut linked = linked_worktrees(&s);
    linked.sort();
    let mut kept = vec![
        failed.canonicalize().unwrap(),
        changed.canonicalize().unwrap(),
    ];
    kept.sort();
    assert_eq!(linked, kept);
    let mut expected_records = vec![slot_record(&failed), "spec-exec-4-demo-3".to_owned()];
    expected_records.sort();
    assert_eq!(records(&s), expected_records, "{err}");
    assert_eq!(s.run_dirs(), runs[1..].to_vec(), "{err}");
    assert_eq!(names_in(&s.state_dir().join("leftovers")), leftovers);
    assert_eq!(s.branches(), branches);
    assert_eq!(user_state(&s), before);

    assert!(
        err.contains("Removed .git/spec-exec/demo/worktrees/1 (")
            && err.contains(", the worktree of finished task 1, committed on `spec/demo/1`)"),
        "{err}"
    );
    let oldest = runs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        err.contains(&format!("Removed .git/spec-exec/demo/runs/{oldest} (")),
        "{err}"
    );
    assert!(
        err.contains("Pruned .git/worktrees/spec-exec-4-demo-4 ("),
        "{err}"
    );
    let failed_shown = format!(
        ".git/spec-exec/demo/slots/{}",
        failed.file_name().unwrap().to_string_lossy()
    );
    assert!(err.contains(&format!("Kept {failed_shown} (")), "{err}");
    assert!(
        err.contains("it holds `spec/demo/2`, a task that did not finish"),
        "{err}"
    );
    assert!(
        err.contains(", worktree slot ") && err.contains(", free)"),
        "{err}"
    );
    assert!(err.contains("the build directory of slot "), "{err}");
    assert!(
        err.contains("Kept .git/spec-exec/demo/worktrees/3 ("),
        "{err}"
    );
    assert!(err.contains("it has uncommitted changes"), "{err}");
    assert!(
        err.contains("3 moved-aside copies") && err.contains("--leftovers removes them"),
        "{err}"
    );
    let items = 3 + free.len() + build_dirs;
    let freed: u64 = err
        .split(&format!("Removed {items} items, freed "))
        .nth(1)
        .and_then(|rest| rest.split_once('(')?.1.split_once(" bytes)"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no total of {items} items:\n{err}"));
    // Exact but for a few bytes of the free slot's index, which git may refresh as it looks.
    assert!(
        freed.abs_diff(expected) < 64,
        "expected {expected} bytes freed:\n{err}"
    );

    // Again: nothing finished is left.
    let out = clean(&s, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("nothing to remove"),
        "{}",
        text(&out.stderr)
    );

    // --leftovers: the kept worktrees and the moved-aside copies go too; branches stay.
    let expected = size_of(&changed)
        + size_of(&failed)
        + size_of(&git_dir.join(slot_record(&failed)))
        + size_of(&git_dir.join("spec-exec-4-demo-3"))
        + size_of(&s.state_dir().join("leftovers"));
    let out = clean(&s, &["--leftovers", "--message-format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    let kinds: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "clean-removed")
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "kept-worktree",
            "kept-worktree",
            "leftover",
            "leftover",
            "leftover"
        ]
    );
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "clean-finished");
    assert_eq!(summary["bytes"], expected);
    assert_eq!(summary["failed"], 0);
    assert!(!changed.exists() && !failed.exists());
    assert!(linked_worktrees(&s).is_empty());
    assert!(records(&s).is_empty());
    assert!(names_in(&s.state_dir().join("leftovers")).is_empty());
    assert_eq!(s.run_dirs(), runs[1..].to_vec());
    assert_eq!(s.branches(), branches);
    assert_eq!(user_state(&s), before);

    // The branches still serve: the next run reuses the done tasks.
    let run = s.shell_run(&["--continue-on-error"]);
    assert_eq!(run.status("2"), "failed");
}

/// `--dry-run` says what would go and how many bytes that is, and removes nothing; the real
/// clean then frees exactly that.
#[test]
fn a_dry_run_removes_nothing_and_counts_what_would_go() {
    let Setup { s, finished, .. } = setup();
    // Every file under .git (the run state, git's worktree records) and the user's state.
    let state = |s: &Scratch| (user_tree(&s.repo().join(".git")), user_state(s));
    let before = state(&s);
    let out = clean(&s, &["--dry-run", "--keep", "1"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Would remove .git/spec-exec/demo/worktrees/1 (")
            && err.contains(", the worktree of finished task 1, committed on `spec/demo/1`)"),
        "{err}"
    );
    assert!(
        err.contains("Would prune .git/worktrees/spec-exec-4-demo-4"),
        "{err}"
    );
    assert!(err.contains("nothing was removed (--dry-run)"), "{err}");
    assert!(finished.is_dir());
    assert_eq!(state(&s), before, "the dry run changed something");

    let dry = clean(
        &s,
        &["--dry-run", "--keep", "1", "--message-format", "json"],
    );
    let dry = json_lines(&dry);
    assert!(
        dry.iter()
            .filter(|l| l["type"] == "clean-removed")
            .all(|l| l["dry_run"] == true)
    );
    let would: Vec<&str> = dry
        .iter()
        .filter(|l| l["type"] == "clean-removed")
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    let builds = would.iter().filter(|k| **k == "build-dir").count();
    assert!(builds >= 2, "{would:?}");
    let mut expected = vec!["finished-worktree", "stale-record", "slot"];
    expected.extend(std::iter::repeat_n("build-dir", builds));
    expected.extend(["run", "run", "run"]);
    assert_eq!(would, expected);
    assert_eq!(state(&s), before);

    let real = json_lines(&clean(&s, &["--keep", "1", "--message-format", "json"]));
    assert_eq!(real.last().unwrap()["bytes"], dry.last().unwrap()["bytes"]);
    assert_eq!(s.run_dirs().len(), 1);
    assert!(!finished.exists());
}

/// A feature whose run is going on (it holds the run lock) is skipped whole, even with
/// `--leftovers --keep 0`: a finished worktree, the moved-aside copy, the runs and the running
/// task's worktree all stay, and the run finishes. Once it has ended, the same clean removes
/// what is left.
#[test]
fn a_running_feature_is_not_touched() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "One", "", "write=one.txt"),
        task("2", "Two", "", "write=two.txt exit=1"),
    ]));
    s.run(&["--continue-on-error"]).assert_code(1);
    s.control("2", "touch=started waitfor=go write=two.txt");
    let running = s
        .run_command(&[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("task 2 never started", || s.ctl().join("started").exists());
    let finished = task_worktree(&s, "1");
    let runs = s.run_dirs();
    assert_eq!(runs.len(), 2);
    let leftovers = names_in(&s.state_dir().join("leftovers"));
    assert_eq!(leftovers.len(), 1);
    let worktree = s.state_dir().join("slots/1");
    assert!(worktree.is_dir());

    let out = clean(&s, &["--leftovers", "--keep", "0"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Skipped demo: a run of it is in progress")
            && err.contains(".git/spec-exec/demo/run.lock"),
        "{err}"
    );
    assert!(!err.contains("Removed .git"), "{err}");
    assert!(finished.is_dir());
    assert!(worktree.is_dir());
    assert_eq!(s.run_dirs(), runs);
    assert_eq!(names_in(&s.state_dir().join("leftovers")), leftovers);
    let json = json_lines(&clean(&s, &["demo", "--message-format", "json"]));
    assert_eq!(json[0]["type"], "clean-skipped");
    assert_eq!(json[0]["reason"], "running");
    assert!(finished.is_dir());

    write(&s.ctl().join("go"), "");
    let ran = running.wait_with_output().unwrap();
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
    assert!(s.run_lock_free());

    let out = clean(&s, &["--leftovers", "--keep", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!finished.exists());
    assert!(s.run_dirs().is_empty());
    assert!(names_in(&s.state_dir().join("leftovers")).is_empty());
    assert_eq!(
        s.branches(),
        [
            Scratch::branch("1"),
            Scratch::branch("2"),
            Scratch::branch("integration")
        ]
    );
}

/// A name that is not a feature's, or that could lead out of the state directory, is an error
/// (exit 2) that says what to do, and nothing is made or removed.
#[test]
fn a_bad_or_unknown_feature_name_is_an_error() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    s.run(&[]).assert_code(0);
    let finished = task_worktree(&s, "1");
    let before = user_state(&s);
    for (name, expect) in [
        ("nope", "no feature `nope`"),
        ("..", "invalid feature name `..`"),
        ("../demo", "invalid feature name `../demo`"),
        ("demo/../demo", "invalid feature name `demo/../demo`"),
        (".git", "invalid feature name `.git`"),
        ("-", "invalid feature name"),
    ] {
        let out = clean(&s, &["--", name]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(expect), "{name}: {err}");
        assert!(err.contains("help:"), "{name}: {err}");
    }
    let out = clean(&s, &["nope"]);
    assert!(
        text(&out.stderr).contains("features with run state: demo"),
        "{}",
        text(&out.stderr)
    );
    assert!(finished.is_dir());
    assert_eq!(user_state(&s), before);

    // A feature named by its spec's path.
    let out = clean(&s, &["documentation/features/demo", "--dry-run"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Would remove .git/spec-exec/demo/worktrees/1"),
        "{err}"
    );

    // A feature with a spec and no run state: nothing to do.
    let t = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let out = clean(&t, &[FEATURE]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("nothing to remove in `demo`"));
    assert!(!t.repo().join(".git/spec-exec").exists());
}

#[test]
fn the_integrations_of_land_are_kept_to_the_newest_too() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    s.run(&[]).assert_code(0);
    for _ in 0..3 {
        let out = s.spec_exec(&["land", FEATURE]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let dirs = |s: &Scratch| names_in(&s.state_dir().join("integration")).len();
    assert_eq!(dirs(&s), 3);
    let out = clean(&s, &["--keep", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(dirs(&s), 1);
    assert!(s.git_ok(&["rev-parse", "--verify", "-q", "spec/demo/integration"]));
}
