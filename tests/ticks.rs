//! Ticks of tasks.md during a run, with the built binary and the built-in `shell` agent: each
//! tick is one byte written in place, so what the user writes to tasks.md meanwhile is kept; a
//! tick that cannot be written makes the run exit 1 with the reason; a tasks.md swapped for a
//! link out of the workspace is not written; temporary copies left by a killed spec-exec are
//! removed.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

mod support;

use support::{FEATURE, Run, Scratch, is_ticked, shell_task, text};

/// A pid that no process has: one that has just ended.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn spec_dir(s: &Scratch) -> PathBuf {
    s.tasks_path().parent().unwrap().to_path_buf()
}

fn stray_copies(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".spec-exec-"))
        .collect()
}

/// Thirty quick tasks run while another writer appends a line to tasks.md every few
/// milliseconds: every appended line is still there, in order, and every task is ticked.
#[test]
fn lines_appended_to_tasks_md_during_a_run_are_kept_and_every_task_is_ticked() {
    const TASKS: usize = 30;
    let tasks: String = (1..=TASKS)
        .map(|n| {
            shell_task(
                &n.to_string(),
                &format!("Task {n}"),
                "",
                &format!("echo {n} > f{n}.txt"),
            )
        })
        .collect();
    let s = Scratch::new(&format!("# Implementation Tasks\n\n{tasks}"));
    let path = s.tasks_path();
    let before = s.tasks_md();

    let mut child = s
        .shell_run_command(&["--max-agents", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = None;
    let mut events: Vec<Value> = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        // The run has read tasks.md and checked its approval: from here on, the user writes.
        if event["type"] == "run-started" && writer.is_none() {
            let (stop, path) = (Arc::clone(&stop), path.clone());
            writer = Some(std::thread::spawn(move || {
                let mut appended = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let line = format!("<!-- note {} -->\n", appended.len());
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .unwrap();
                    f.write_all(line.as_bytes()).unwrap();
                    drop(f);
                    appended.push(line);
                    std::thread::sleep(std::time::Duration::from_millis(3));
                }
                appended
            }));
        }
        events.push(event);
    }
    let status = child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    let appended = writer.expect("a run-started event").join().unwrap();
    let stderr = err_reader.join().unwrap();
    let context = format!("{status:?}\n--- events\n{events:#?}\n--- stderr\n{stderr}");

    // The tasks finished while lines were being appended.
    let finished = events
        .iter()
        .filter(|e| e["type"] == "task-finished")
        .count();
    assert_eq!(finished, TASKS, "{context}");
    let after = s.tasks_md();
    let lost = appended
        .iter()
        .filter(|l| !after.contains(l.as_str()))
        .count();
    let unticked = (1..=TASKS)
        .filter(|n| !is_ticked(&after, &n.to_string()))
        .count();
    let tick_errors = events
        .iter()
        .filter(|e| e["type"] == "task-finished" && !e["tick_error"].is_null())
        .count();
    assert_eq!(
        (lost, unticked, tick_errors, status.code()),
        (0, 0, 0, Some(0)),
        "(appended lines lost of {}, tasks not ticked, tick errors, exit code)\n{context}",
        appended.len()
    );
    // The file is what it was, every task ticked, then every appended line, in order.
    let mut ticked = before.clone();
    for n in 1..=TASKS {
        ticked = ticked.replace(&format!("- [ ] {n}. "), &format!("- [x] {n}. "));
    }
    assert!(appended.len() > 10, "{} lines appended", appended.len());
    assert_eq!(after, format!("{ticked}{}", appended.concat()));
    assert_eq!(stray_copies(&spec_dir(&s)), Vec::<String>::new());
}

/// A task whose line in tasks.md was changed during the run (here by its own agent) is done
/// but cannot be ticked: the run exits 1, and says why.
#[test]
fn a_tick_that_cannot_be_written_makes_the_run_exit_1() {
    let s = Scratch::new(&format!(
        "# Implementation Tasks\n\n{}{}",
        shell_task(
            "1",
            "Rename me",
            "",
            "sed -i 's/Rename me/Renamed/' \"$HELPER_USER_TASKS\" && echo 1 > one.txt"
        ),
        shell_task("2", "Other", "", "echo 2 > two.txt"),
    ));
    let run = s.shell_run(&[]);
    run.assert_code(1);
    assert_eq!(run.status("1"), "done", "{}", run.context());
    let reason = run.finished("1")["tick_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("task 1 changed") && reason.contains("it was not ticked"),
        "{}",
        run.context()
    );
    assert_eq!(run.run_finished()["exit_code"], 1);
    let after = s.tasks_md();
    assert!(after.contains("- [ ] 1. **Renamed**"), "{after}");
    assert!(is_ticked(&after, "2"), "{after}");
}

/// An agent replaces the user's tasks.md by a link to a file outside the repository: the tick
/// is refused, the outside file is untouched, and the run exits 1 with the reason.
#[test]
fn a_tasks_md_swapped_for_a_link_out_of_the_repository_is_not_ticked() {
    let s = Scratch::new(&format!(
        "# Implementation Tasks\n\n{}",
        shell_task(
            "1",
            "Swap the task list",
            "",
            "ln -sf \"$OUTSIDE_TASKS\" \"$HELPER_USER_TASKS\" && echo 1 > one.txt"
        ),
    ));
    let outside = s.ctl().join("outside-tasks.md");
    // A copy of the task list: a tick through the link would find the task there.
    let copy = s.tasks_md();
    std::fs::write(&outside, &copy).unwrap();
    let mut cmd = s.shell_run_command(&[]);
    cmd.env("OUTSIDE_TASKS", &outside);
    let run = Run::of(cmd);
    assert!(
        std::fs::symlink_metadata(s.tasks_path())
            .unwrap()
            .file_type()
            .is_symlink(),
        "the agent did not swap tasks.md: {}",
        run.context()
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), copy);
    assert_eq!(stray_copies(s.ctl().as_path()), Vec::<String>::new());
    run.assert_code(1);
    assert_eq!(run.status("1"), "done", "{}", run.context());
    let reason = run.finished("1")["tick_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("leads outside the workspace") && reason.contains("outside-tasks.md"),
        "{}",
        run.context()
    );
}

/// A temporary copy of tasks.md left by a spec-exec killed while writing it is removed at the
/// next tick, and at the next approve (which says so).
#[test]
fn copies_of_tasks_md_left_by_a_killed_run_are_removed() {
    let s = Scratch::new(&format!(
        "# Implementation Tasks\n\n{}",
        shell_task("1", "One", "", "echo 1 > one.txt"),
    ));
    let dir = spec_dir(&s);
    let stale = dir.join(format!(".tasks.md.spec-exec-{}.tmp", dead_pid()));
    std::fs::write(&stale, s.tasks_md()).unwrap();
    let run = s.shell_run(&[]);
    run.assert_code(0);
    assert!(is_ticked(&s.tasks_md(), "1"));
    assert_eq!(
        stray_copies(&dir),
        Vec::<String>::new(),
        "{}",
        run.context()
    );

    // approve replaces the whole file (atomically): it too removes what a killed one left.
    std::fs::write(s.tasks_path(), format!("{}- [ ] 2. Two\n", s.tasks_md())).unwrap();
    let stale = dir.join(format!(".tasks.md.spec-exec-{}.tmp", dead_pid()));
    std::fs::write(&stale, "x").unwrap();
    let out = s.spec_exec(&["approve", FEATURE]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "Removed `documentation/features/{FEATURE}/{}`",
            stale.file_name().unwrap().to_string_lossy()
        )),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(stray_copies(&dir), Vec::<String>::new());
}

/// A tick waits for the lock a whole-file replace holds (as `approve` and `deps` take it), and
/// then ticks the file that replaced the one it opened: neither write is lost.
#[test]
fn a_tick_waits_for_a_replace_in_progress_and_ticks_the_new_file() {
    let s = Scratch::new(&format!(
        "# Implementation Tasks\n\n{}",
        shell_task("1", "One", "", "echo 1 > one.txt")
    ));
    let path = s.tasks_path();
    let before = s.tasks_md();
    let held = std::fs::File::open(&path).unwrap();
    held.lock().unwrap();
    let child = s
        .shell_run_command(&[])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The agent's work is committed; the tick is what waits.
    support::wait_until("task 1 never committed", || {
        s.git_ok(&["rev-parse", "--verify", "-q", "spec/demo/1"])
            && s.git(&["log", "-1", "--format=%s", "spec/demo/1"]).trim() == "demo: 1 One"
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    // A writer that replaces the file whole, from what it read before, while it holds the lock.
    let new = format!("{before}\nA note written meanwhile.\n");
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, &new).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let md = s.tasks_md();
    assert!(md.contains("A note written meanwhile."), "{md}");
    assert!(is_ticked(&md, "1"), "{md}");
}
