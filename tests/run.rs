//! Integration tests of running a plan: the built binary, in temporary git repositories holding a
//! small Cargo workspace, with `fixtures/agents/helper.sh` as the agent (or the built-in `shell`
//! agent). Each test writes a tasks.md, commits it, approves it, commits the approval and runs.
//!
//! The helper reads what to do from a `- helper: …` detail of its task (or from a control file in
//! a directory outside the repository, `HELPER_CTL`, which a test can change between runs) and
//! records its start and end times and pids in `HELPER_LOG`; see the script for the directives.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::{
    FEATURE, Project, Run, Scratch, alive, helper_agent, is_ticked, sigint, task, tasks_md, text,
    tick, wait_until, write,
};

// ---------------------------------------------------------------------------------------------

/// 1 → (2, 3) → 4: the join task starts from a merge of both parents' branches.
#[test]
fn diamond_commits_each_task_on_its_branch_and_merges_for_the_join() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "Lay the foundation", "", "write=one.txt"),
        task("2", "Left wall", "Task 1", "write=left/two.txt"),
        task("3", "Right wall", "Task 1", "write=right/three.txt"),
        task("4", "Roof", "Tasks 2, 3", "write=four.txt"),
    ]));
    let head_before = s.git(&["rev-parse", "HEAD"]);
    let tasks_before = s.tasks_md();
    let status_before = s.git(&["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(status_before, "");

    let run = s.run(&[]);
    run.assert_code(0);
    for id in ["1", "2", "3", "4"] {
        assert_eq!(run.status(id), "done", "{}", run.context());
    }
    assert_eq!(run.run_finished()["exit_code"], 0);
    assert_eq!(run.run_finished()["totals"]["done"], 4);
    // The JSON stream (nothing else on stdout): the plan, the run, the tasks, the end.
    assert!(
        run.stdout.lines().all(|l| l.starts_with('{')),
        "{}",
        run.stdout
    );
    let kinds: Vec<&str> = run
        .events
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"plan"), "{kinds:?}");
    assert_eq!(kinds.get(1), Some(&"run-started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run-finished"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "task-started").count(), 4);
    for e in run.of_type("task-started") {
        let id = e["id"].as_str().unwrap();
        assert_eq!(e["branch"], Scratch::branch(id).as_str());
        // Paths in JSON are absolute; tasks run in the feature's worktree slots.
        let worktree = PathBuf::from(e["worktree"].as_str().unwrap());
        assert_eq!(
            worktree.parent(),
            Some(s.state_dir().join("slots").as_path())
        );
        let log = PathBuf::from(e["log"].as_str().unwrap());
        assert!(log.is_absolute(), "{log:?}");
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .contains(&format!("task {id} exits with 0"))
        );
    }

    // Every task's branch holds its commit, with the message and trailers.
    for (id, title) in [
        ("1", "Lay the foundation"),
        ("2", "Left wall"),
        ("3", "Right wall"),
        ("4", "Roof"),
    ] {
        let branch = Scratch::branch(id);
        let tip = s.tip(id);
        assert_eq!(run.finished(id)["branch"], branch.as_str());
        assert_eq!(run.finished(id)["commit"], tip.as_str());
        let message = s.git(&["log", "-1", "--format=%B", &branch]);
        let mut lines = message.lines();
        assert_eq!(
            lines.next(),
            Some(format!("{FEATURE}: {id} {title}").as_str())
        );
        let trailers = s.git(&[
            "log",
            "-1",
            "--format=%(trailers:key=Spec-Exec-Feature,key=Spec-Exec-Task)",
            &branch,
        ]);
        assert_eq!(
            trailers.trim_end(),
            format!("Spec-Exec-Feature: {FEATURE}\nSpec-Exec-Task: {id}"),
            "{message}"
        );
        // The commit is by the repository's identity.
        assert_eq!(
            s.git(&["log", "-1", "--format=%an <%ae>", &branch]).trim(),
            "Spec Tester <tester@localhost>"
        );
    }

    // The join has both parents' work; the parents' commits are its ancestors.
    let four = s.files(&Scratch::branch("4"));
    for f in ["one.txt", "left/two.txt", "right/three.txt", "four.txt"] {
        assert!(
            four.contains(f),
            "{f} missing from spec/{FEATURE}/4: {four:?}"
        );
    }
    assert_eq!(s.show(&Scratch::branch("4"), "left/two.txt"), "2\n");
    for parent in ["1", "2", "3"] {
        assert!(s.is_ancestor(&s.tip(parent), &s.tip("4")), "{parent}");
    }
    // The walls do not see each other; each sees the foundation.
    assert!(!s.files(&Scratch::branch("2")).contains("right/three.txt"));
    assert!(!s.files(&Scratch::branch("3")).contains("left/two.txt"));
    assert!(s.is_ancestor(&s.tip("1"), &s.tip("2")));
    assert!(s.is_ancestor(&s.tip("1"), &s.tip("3")));
    // The task commit on 2 has the commit of 1 as its only parent, and 1 starts from HEAD.
    assert_eq!(
        s.git(&["rev-parse", &format!("{}^", Scratch::branch("2"))]),
        format!("{}\n", s.tip("1"))
    );
    assert_eq!(
        s.git(&["rev-parse", &format!("{}^", Scratch::branch("1"))]),
        head_before
    );

    // The order: 2 and 3 after 1, 4 after 2 and 3 (the helper's own clock).
    let rec = s.records();
    assert!(rec.start["2"] >= rec.end["1"] && rec.start["3"] >= rec.end["1"]);
    assert!(rec.start["4"] >= rec.end["2"] && rec.start["4"] >= rec.end["3"]);

    // The user's HEAD, branch, index and working tree: unchanged but for the ticks.
    assert_eq!(s.git(&["rev-parse", "HEAD"]), head_before);
    assert_eq!(s.git(&["symbolic-ref", "HEAD"]).trim(), "refs/heads/main");
    assert_eq!(s.git(&["diff", "--cached", "--name-only"]), "");
    assert_eq!(
        s.git(&["status", "--porcelain", "--untracked-files=all"]),
        format!(" M documentation/features/{FEATURE}/tasks.md\n")
    );
    let mut expected = tasks_before;
    for id in ["1", "2", "3", "4"] {
        expected = tick(&expected, id);
    }
    assert_eq!(s.tasks_md(), expected);
    assert!(!s.repo().join("one.txt").exists());
    // Only spec-exec's branches were added (the tasks' and the feature's integration
    // branch); the slots stay for the next run, with no branch checked out.
    assert_eq!(
        s.branches(),
        ["1", "2", "3", "4", "integration"]
            .map(Scratch::branch)
            .to_vec()
    );
    let slots = s.linked_worktrees();
    assert!(!slots.is_empty() && slots.len() <= 6, "{slots:?}");
    assert!(slots.iter().all(|(_, branch)| !branch), "{slots:?}");
    let worktrees = s.state_dir().join("worktrees");
    let left: Vec<_> = std::fs::read_dir(&worktrees)
        .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// Eight independent tasks, at most three agents at once.
#[test]
fn max_agents_bounds_the_agents_running_at_once() {
    let tasks: Vec<String> = (1..=8)
        .map(|i| {
            task(
                &i.to_string(),
                &format!("Independent {i}"),
                "",
                &format!("sleep=0.5 write=f{i}.txt"),
            )
        })
        .collect();
    let s = Scratch::new(&tasks_md(&tasks));
    let run = s.run(&["--max-agents", "3"]);
    run.assert_code(0);
    let rec = s.records();
    assert_eq!(rec.starts, 8);
    assert_eq!(rec.end.len(), 8);
    let overlap = rec.max_overlap();
    assert!(overlap <= 3, "{overlap} agents ran at once: {rec:?}");
    assert!(overlap >= 2, "agents never overlapped: {rec:?}");
    assert_eq!(
        run.of_type("run-started").next().unwrap()["max_agents"],
        3,
        "{}",
        run.context()
    );
}

/// The failure list shared by the failure tests, with at most two agents: 1 fails at once; 3 runs
/// while it fails and finishes after; 2 depends on 1; 4 and 5 are independent and wait for a
/// free agent (1 starts first, longest chain; then 3 by order).
fn failure_list() -> String {
    tasks_md(&[
        task("1", "Breaks", "", "write=partial.txt touch=failed-1 exit=3"),
        task("2", "Needs the broken one", "Task 1", "write=two.txt"),
        task(
            "3",
            "Slow sibling",
            "",
            "waitfor=failed-1 sleep=1 write=three.txt",
        ),
        task("4", "Independent four", "", "write=four.txt"),
        task("5", "Independent five", "", "write=five.txt"),
    ])
}

#[test]
fn a_failure_stops_new_work_and_skips_dependents() {
    let s = Scratch::new(&failure_list());
    let before = s.tasks_md();
    let run = s.run(&["--max-agents", "2", "--max-attempts", "1"]);
    run.assert_code(1);
    assert_eq!(
        run.started(),
        BTreeSet::from(["1".to_owned(), "3".to_owned()]),
        "{}",
        run.context()
    );
    // The failure.
    let failed = run.finished("1");
    assert_eq!(failed["status"], "failed");
    assert!(run.reason("1").contains("exit 3"), "{}", run.context());
    let log = s.repo().join(failed["log"].as_str().unwrap());
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("task 1 exits with 3"), "{log_text}");
    let worktree = s.repo().join(failed["worktree"].as_str().unwrap());
    assert!(worktree.join("partial.txt").is_file(), "{worktree:?}");
    // The running sibling finished and was committed.
    assert_eq!(run.status("3"), "done");
    assert!(s.files(&Scratch::branch("3")).contains("three.txt"));
    // The dependent and the unstarted independent tasks were skipped.
    assert_eq!(run.status("2"), "skipped");
    assert!(
        run.reason("2").contains("depends on task 1"),
        "{}",
        run.context()
    );
    for id in ["4", "5"] {
        assert_eq!(run.status(id), "skipped");
        assert!(run.reason(id).contains("not started"), "{}", run.context());
        assert!(!s.git_ok(&["rev-parse", "--verify", "-q", &Scratch::branch(id)]));
    }
    assert_eq!(s.records().starts, 2);
    let totals = &run.run_finished()["totals"];
    assert_eq!(
        (&totals["done"], &totals["failed"], &totals["skipped"]),
        (&Value::from(1), &Value::from(1), &Value::from(3))
    );
    // Only the finished task is ticked.
    assert_eq!(s.tasks_md(), tick(&before, "3"));
}

#[test]
fn continue_on_error_finishes_independent_work() {
    let s = Scratch::new(&failure_list());
    let before = s.tasks_md();
    let run = s.run(&["--max-agents", "2", "--continue-on-error"]);
    run.assert_code(1);
    let statuses = run.statuses();
    let expected: BTreeMap<String, String> = [
        ("1", "failed"),
        ("2", "skipped"),
        ("3", "done"),
        ("4", "done"),
        ("5", "done"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(statuses, expected, "{}", run.context());
    assert!(run.reason("2").contains("depends on task 1"));
    assert!(!run.started().contains("2"));
    assert!(!s.git_ok(&["rev-parse", "--verify", "-q", &Scratch::branch("2")]));
    let mut ticked = before;
    for id in ["3", "4", "5"] {
        ticked = tick(&ticked, id);
    }
    assert_eq!(s.tasks_md(), ticked);
    let worktree = s
        .repo()
        .join(run.finished("1")["worktree"].as_str().unwrap());
    assert!(worktree.is_dir());
}

/// The helper's records of task `id`, their kinds in order (`start`, `pid`, `child`, `term`,
/// `end`).
fn record_kinds(s: &Scratch, id: &str) -> Vec<String> {
    std::fs::read_to_string(s.agent_log())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let kind = words.next()?;
            (words.next() == Some(id)).then(|| kind.to_owned())
        })
        .collect()
}

/// An agent that lives on after SIGTERM, with a child that ignores it, is killed after the
/// grace: in order, the agent started its child, got SIGTERM and went on, then was killed.
#[test]
fn timeout_kills_the_agent_and_its_children() {
    let s = Scratch::new(&tasks_md(&[task(
        "1",
        "Never ends",
        "",
        "ignore-term child note-term hang",
    )]));
    let mut cmd = s.run_command(&["--timeout", "1s"]);
    cmd.env("SPEC_EXEC_KILL_GRACE", "2s");
    let run = Run::of(cmd);
    run.assert_code(1);
    assert_eq!(run.status("1"), "failed");
    assert!(run.reason("1").contains("timed out"), "{}", run.context());
    // SIGTERM first (noted, survived), then SIGKILL: the agent never logged its end.
    assert_eq!(
        record_kinds(&s, "1"),
        ["start", "pid", "child", "term"],
        "{}",
        run.context()
    );
    let rec = s.records();
    let agent = rec.pid["1"];
    let child = rec.child["1"];
    let deadline = Instant::now() + Duration::from_secs(5);
    while (alive(agent) || alive(child)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(agent), "agent {agent} survived the timeout");
    assert!(!alive(child), "its child {child} survived the timeout");
    assert!(!is_ticked(&s.tasks_md(), "1"));
}

/// An agent told not to commit that commits anyway: its commits are folded into the task's
/// one commit on top of its base, with everything it left uncommitted, and without the tick
/// it committed in tasks.md.
#[test]
fn an_agent_that_commits_its_work_itself_still_gets_one_commit_on_its_base() {
    let commit = "git -c user.name=a -c user.email=a@a commit -qm mine";
    let s = Scratch::new(&tasks_md(&[
        support::shell_task(
            "1",
            "Commits part",
            "",
            &format!(
                "sed -i 's/- \\[ \\] 1\\./- [x] 1./' documentation/features/demo/tasks.md && echo one > one.txt && git add -A && {commit} && echo two > two.txt"
            ),
        ),
        support::shell_task(
            "2",
            "Commits all",
            "1",
            &format!("echo three > three.txt && git add -A && {commit} && {commit} --allow-empty"),
        ),
    ]));
    let run = s.shell_run(&["--no-verify"]);
    run.assert_code(0);
    for (id, parent, files) in [
        ("1", "main".to_owned(), &["one.txt", "two.txt"][..]),
        ("2", Scratch::branch("1"), &["three.txt"][..]),
    ] {
        let branch = Scratch::branch(id);
        assert_eq!(
            s.git(&["rev-list", "--count", &format!("{parent}..{branch}")])
                .trim(),
            "1"
        );
        assert_eq!(
            s.git(&["rev-parse", &format!("{branch}~1")]),
            s.git(&["rev-parse", &parent])
        );
        let message = s.git(&["log", "-1", "--format=%B", &branch]);
        assert!(
            message.contains(&format!("Spec-Exec-Task: {id}")),
            "{message}"
        );
        let added: Vec<String> = s
            .git(&["diff", "--name-only", &parent, &branch])
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(added, files, "{id}");
    }
}

#[test]
fn an_agent_that_changes_nothing_fails() {
    let s = Scratch::new(&tasks_md(&[task("1", "Idle", "", "nothing")]));
    let before = s.tasks_md();
    let run = s.run(&[]);
    run.assert_code(1);
    assert_eq!(run.status("1"), "failed");
    assert!(
        run.reason("1").contains("changed nothing"),
        "{}",
        run.context()
    );
    assert_eq!(run.finished("1")["commit"], Value::Null);
    assert_eq!(s.tasks_md(), before);
    // The branch was made but holds no task commit.
    assert_eq!(s.tip("1"), s.git(&["rev-parse", "HEAD"]).trim());
}

/// Events of a run read while it runs.
struct Live {
    child: std::process::Child,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Live {
    fn start(s: &Scratch, extra: &[&str]) -> Live {
        Live::start_with(s.run_command(extra))
    }

    /// A run with a kill grace of an hour: a run that ends, ends without waiting for it.
    fn start_without_grace(s: &Scratch, extra: &[&str]) -> Live {
        let mut cmd = s.run_command(extra);
        cmd.env("SPEC_EXEC_KILL_GRACE", "1h");
        Live::start_with(cmd)
    }

    fn start_with(mut cmd: Command) -> Live {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        Live {
            child,
            events: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 60 s) for an event that satisfies `pred`.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) {
        if self.seen.iter().any(&pred) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    let hit = pred(&v);
                    self.seen.push(v);
                    if hit {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no {what} within 60 s; events: {:?}", self.seen);
                }
            }
        }
    }

    fn finish(mut self) -> (Option<i32>, Vec<Value>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the run did not end; events: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(v) = self.events.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(v);
        }
        (status.code(), self.seen)
    }
}

/// Ctrl-C: exit 130, the interrupted task neither committed nor ticked; the next run resumes.
#[test]
fn ctrl_c_interrupts_and_the_next_run_resumes() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "Quick", "", "write=one.txt"),
        task("2", "Slow", "", "write=two-partial.txt hang"),
        task("3", "After both", "Tasks 1, 2", "write=three.txt"),
    ]));
    let before = s.tasks_md();
    let mut live = Live::start_without_grace(&s, &["--max-agents", "2"]);
    let is_finished =
        |id: &'static str| move |e: &Value| e["type"] == "task-finished" && e["id"] == id;
    live.wait_for("task 1 finished", is_finished("1"));
    live.wait_for("task 2 started", |e| {
        e["type"] == "task-started" && e["id"] == "2"
    });
    // The agent of 2 itself has started.
    wait_until("the agent of 2 never started", || {
        s.records().pid.contains_key("2")
    });
    let agent2 = s.records().pid["2"];
    sigint(live.child.id());
    // SIGTERM ends the helper at once, and the run ends then, not after the grace (an hour).
    let (code, events) = live.finish();
    assert_eq!(code, Some(130), "{events:?}");
    assert!(!alive(agent2));
    let status = |id: &str| {
        events
            .iter()
            .find(|e| e["type"] == "task-finished" && e["id"] == id)
            .map(|e| e["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("1").as_deref(), Some("done"));
    assert_eq!(status("2").as_deref(), Some("interrupted"), "{events:?}");
    assert_eq!(status("3").as_deref(), Some("skipped"));
    let md = s.tasks_md();
    assert_eq!(md, tick(&before, "1"));
    // 2 was not committed: its branch, if any, holds no task commit.
    let head = s.git(&["rev-parse", "HEAD"]).trim().to_owned();
    if s.git_ok(&["rev-parse", "--verify", "-q", &Scratch::branch("2")]) {
        assert_eq!(s.tip("2"), head);
    }
    assert!(!s.git_ok(&["rev-parse", "--verify", "-q", &Scratch::branch("3")]));
    let one = s.tip("1");

    // Again, with 2 quick now.
    s.control("2", "write=two.txt");
    let run = s.run(&[]);
    run.assert_code(0);
    assert!(
        !run.started().contains("1"),
        "1 was done: {}",
        run.context()
    );
    assert_eq!(run.status("2"), "done");
    assert_eq!(run.status("3"), "done");
    assert_eq!(s.tip("1"), one, "the finished branch was reused as it was");
    assert!(s.is_ancestor(&one, &s.tip("3")));
    let three = s.files(&Scratch::branch("3"));
    for f in ["one.txt", "two.txt", "three.txt"] {
        assert!(three.contains(f), "{f}: {three:?}");
    }
    // The interrupted attempt's leftovers are gone.
    assert!(!three.contains("two-partial.txt"), "{three:?}");
    let mut all = before;
    for id in ["1", "2", "3"] {
        all = tick(&all, id);
    }
    assert_eq!(s.tasks_md(), all);
}

/// Ticks from many tasks finishing at about the same time: none lost, nothing else changed.
#[test]
fn concurrent_completions_tick_every_box_and_nothing_else() {
    let mut tasks = vec![
        "---\ntitle: Many small things\n---\n# Implementation Tasks\r\n\r\nNotes: \u{1F680} the list \
         keeps its bytes; `- [ ] 99. not a task` in code.\r\n\r\n"
            .to_owned(),
    ];
    for i in 1..=16 {
        tasks.push(format!(
            "- [ ] {i}. **Small thing {i}** ✓\r\n  - helper: write=small/{i}.txt\r\n  - [ ] Checklist item that is not a task\r\n  - _Dependencies: None_\r\n\r\n"
        ));
    }
    // In progress elsewhere (planned as pending, its `-` is ticked too), and done already with an
    // upper-case `X`, whose style the ticks follow.
    tasks.push(
        "- [-] 17. **Stale claim**\r\n  - helper: write=small/17.txt\r\n  - _Dependencies: None_\r\n\r\n"
            .to_owned(),
    );
    tasks.push("- [X] 18. **Done before**\r\n  - _Dependencies: None_\r\n\r\n".to_owned());
    tasks.push("```markdown\n- [ ] 99. **In a code block**\n```\n".to_owned());
    let s = Scratch::new(&tasks.concat());
    let before = std::fs::read(s.tasks_path()).unwrap();
    let run = s.run(&["--max-agents", "6"]);
    run.assert_code(0);
    assert_eq!(run.run_finished()["totals"]["done"], 17);
    let after = std::fs::read(s.tasks_path()).unwrap();
    assert_eq!(after.len(), before.len());
    let mut expected = String::from_utf8(before.clone()).unwrap();
    for i in 1..=16 {
        expected = tick(&expected, &i.to_string());
    }
    let expected = expected
        .replace("- [-] 17. ", "- [x] 17. ")
        .replace("- [x] ", "- [X] ")
        .into_bytes();
    let differing: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert_eq!(differing.len(), 17, "{}", text(&after));
    assert!(
        differing
            .iter()
            .all(|&i| matches!(before[i], b' ' | b'-') && after[i] == b'X'),
        "{:?}",
        differing
            .iter()
            .map(|&i| (i, before[i] as char, after[i] as char))
            .collect::<Vec<_>>()
    );
    assert_eq!(text(&after), text(&expected));
    assert_eq!(after, expected);
}

/// The built-in shell agent runs `cargo test` inside the worktree: the worktree is a project of
/// its own, outside the user's workspace, and builds.
fn cargo_test_in_worktree(project: Project) {
    let tasks = "# Implementation Tasks\n\n- [ ] 1. **Test the crate**\n  - _Dependencies: None_\n  ```sh\n  cargo test --offline --quiet\n  echo tested > tested.txt\n  ```\n";
    let s = Scratch::unapproved(tasks, project);
    s.approve();
    let run = s.shell_run(&[]);
    let log = run
        .of_type("task-finished")
        .find_map(|e| e["log"].as_str())
        .map(|l| std::fs::read_to_string(s.repo().join(l)).unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(run.code, Some(0), "{}\n--- agent log\n{log}", run.context());
    assert!(
        log.contains("1 passed"),
        "the crate's test did not run:\n{log}"
    );
    assert_eq!(run.status("1"), "done");
    let files = s.files(&Scratch::branch("1"));
    assert!(files.contains("tested.txt"), "{files:?}");
    // The build output stayed out of the commit (the project ignores /target).
    assert!(!files.iter().any(|f| f.starts_with("target/")), "{files:?}");
    // And out of the user's checkout: no Cargo.lock or build there.
    assert_eq!(
        s.git(&["status", "--porcelain", "--untracked-files=all"]),
        format!(" M documentation/features/{FEATURE}/tasks.md\n")
    );
}

#[test]
fn shell_agent_runs_cargo_test_in_a_workspace_worktree() {
    cargo_test_in_worktree(Project::Workspace);
}

#[test]
fn shell_agent_runs_cargo_test_in_a_single_package_worktree() {
    cargo_test_in_worktree(Project::Package);
}

/// What a refused run leaves: nothing ran, no branch, no agent started.
fn assert_nothing_ran(s: &Scratch, run: &Run, foreign: &[String]) {
    run.assert_code(2);
    assert_eq!(run.of_type("task-started").count(), 0, "{}", run.context());
    assert!(!s.agent_log().exists(), "an agent ran");
    assert_eq!(s.branches(), foreign);
    assert!(s.run_dirs().is_empty(), "{:?}", s.run_dirs());
}

#[test]
fn an_unapproved_list_is_refused() {
    let s = Scratch::unapproved(
        &tasks_md(&[task("1", "One", "", "write=one.txt")]),
        Project::Workspace,
    );
    let before = s.tasks_md();
    let run = s.run(&[]);
    assert_nothing_ran(&s, &run, &[]);
    assert!(
        run.stderr.contains("not been approved"),
        "{}",
        run.context()
    );
    assert!(
        run.stderr
            .contains(&format!("cargo spec-exec approve {FEATURE}"))
    );
    assert_eq!(s.tasks_md(), before);
}

#[test]
fn a_foreign_task_branch_is_refused() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "One", "", "write=one.txt"),
        task("2", "Two", "", "write=two.txt"),
    ]));
    // The user's own work, on the branch task 1 would use.
    let branch = Scratch::branch("1");
    let mine = s.git(&[
        "commit-tree",
        "HEAD^{tree}",
        "-p",
        "HEAD",
        "-m",
        "my own work",
    ]);
    s.git(&["branch", &branch, mine.trim()]);
    let tip = s.tip("1");
    let run = s.run(&[]);
    assert_nothing_ran(&s, &run, std::slice::from_ref(&branch));
    assert!(
        run.stderr.contains(&format!("`{branch}`")),
        "{}",
        run.context()
    );
    assert!(
        run.stderr
            .contains(&format!("git branch -m {branch} {branch}-mine")),
        "{}",
        run.context()
    );
    assert_eq!(s.tip("1"), tip, "the foreign branch was touched");
}

/// A task branch with no commit of its own (already in the base) holds nothing to lose.
#[test]
fn a_task_branch_without_work_of_its_own_is_taken_over() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let branch = Scratch::branch("1");
    s.git(&["branch", &branch, "HEAD~1"]);
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("1"), "done", "{}", run.context());
    assert!(s.files(&branch).contains("one.txt"));
}

/// ...unless it is checked out: then it is the user's work in progress.
#[test]
fn a_checked_out_task_branch_is_refused() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let branch = Scratch::branch("1");
    s.git(&["checkout", "-q", "-b", &branch]);
    let tip = s.tip("1");
    let run = s.run(&[]);
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!("`{branch}`")),
        "{}",
        run.context()
    );
    assert_eq!(s.tip("1"), tip);
}

/// Two runs of one feature at once would share branches and worktrees: the second is refused
/// while the first goes on, and the lock goes with the first.
#[test]
fn a_second_run_of_the_same_feature_is_refused() {
    let s = Scratch::new(&tasks_md(&[task("1", "Slow", "", "write=one.txt hang")]));
    let mut live = Live::start(&s, &[]);
    live.wait_for("task 1 started", |e| {
        e["type"] == "task-started" && e["id"] == "1"
    });
    let second = s.run(&[]);
    second.assert_code(2);
    assert!(
        second.stderr.contains("another run of"),
        "{}",
        second.context()
    );
    sigint(live.child.id());
    let (code, _) = live.finish();
    assert_eq!(code, Some(130));
    assert!(s.run_lock_free(), "the run lock is still held");
}

#[test]
fn a_missing_agent_program_is_refused() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let run = s.run_args(&[
        "run",
        FEATURE,
        "--agent",
        "spec-exec-no-such-agent-program --flag",
        "--message-format",
        "json",
    ]);
    assert_nothing_ran(&s, &run, &[]);
    assert!(
        run.stderr.contains("spec-exec-no-such-agent-program"),
        "{}",
        run.context()
    );
    assert!(run.stderr.contains("not found"), "{}", run.context());
}

/// After a failure, the fixed agent finishes the list: ticked tasks are done, finished branches
/// are reused, the failed task's worktree is reset.
#[test]
fn resume_after_a_failure() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "Base", "", "write=one.txt"),
        task("2", "Flaky", "Task 1", "write=two.txt"),
        task("3", "After flaky", "Task 2", "write=three.txt"),
        task("4", "Independent", "", "write=four.txt"),
    ]));
    let before = s.tasks_md();
    s.control("2", "write=partial.txt exit=1");
    let first = s.run(&["--continue-on-error"]);
    first.assert_code(1);
    assert_eq!(first.status("1"), "done");
    assert_eq!(first.status("4"), "done");
    assert_eq!(first.status("2"), "failed");
    assert_eq!(first.status("3"), "skipped");
    let failed_worktree = s
        .repo()
        .join(first.finished("2")["worktree"].as_str().unwrap());
    assert!(failed_worktree.join("partial.txt").is_file());
    let (one, four) = (s.tip("1"), s.tip("4"));

    // Fixed; and 4's tick is lost meanwhile (a tick does not void the approval), so its branch
    // is the only sign it is finished.
    s.control("2", "write=two.txt");
    write(&s.tasks_path(), &tick(&before, "1"));
    let second = s.run(&[]);
    second.assert_code(0);
    assert!(!second.started().contains("1"));
    assert!(!second.started().contains("4"), "{}", second.context());
    assert_eq!(second.status("4"), "reused");
    assert_eq!(second.finished("4")["commit"], four.as_str());
    assert_eq!(second.status("2"), "done");
    assert_eq!(second.status("3"), "done");
    assert_eq!(s.tip("1"), one);
    assert_eq!(s.tip("4"), four);
    let three = s.files(&Scratch::branch("3"));
    for f in ["one.txt", "two.txt", "three.txt"] {
        assert!(three.contains(f), "{f}: {three:?}");
    }
    assert!(
        !three.contains("partial.txt"),
        "the failed attempt leaked: {three:?}"
    );
    assert!(!s.files(&Scratch::branch("2")).contains("partial.txt"));
    assert!(s.is_ancestor(&one, &s.tip("2")));
    // No worktree is left with a branch checked out, and the failed attempt's files were
    // moved aside, out of the slot.
    assert!(s.linked_worktrees().iter().all(|(_, branch)| !branch));
    assert!(!failed_worktree.join("partial.txt").exists());
    let mut all = before;
    for id in ["1", "2", "3", "4"] {
        all = tick(&all, id);
    }
    assert_eq!(s.tasks_md(), all);

    // A third run has nothing to do.
    let third = s.run(&[]);
    third.assert_code(0);
    assert_eq!(third.of_type("task-started").count(), 0);
}

/// report.md and report.json, and the human lines on a non-terminal.
#[test]
fn reports_and_human_output() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "Works", "", "write=one.txt"),
        task("2", "Breaks", "", "exit=4"),
        task("3", "After the break", "Task 2", "write=three.txt"),
    ]));
    let agent = helper_agent();
    let run = s.run_args(&[
        "run",
        FEATURE,
        "--agent",
        &agent,
        "--continue-on-error",
        "--max-attempts",
        "1",
        "--color",
        "never",
    ]);
    run.assert_code(1);
    assert_eq!(run.stdout, "", "human output goes to stderr");
    let lines: Vec<&str> = run.stderr.lines().collect();
    // `{verb:>12} {message}`, as cargo prints its status lines.
    let has = |verb: &str, rest: &str| {
        lines.iter().any(|l| {
            l.get(..12).map(str::trim_start) == Some(verb)
                && l.get(12..)
                    .is_some_and(|m| m.starts_with(&format!(" {rest}")))
        })
    };
    assert!(
        has("Running", &format!("{FEATURE}: 3 tasks")),
        "{}",
        run.stderr
    );
    assert!(
        has("Started", &format!("1 Works (spec/{FEATURE}/1)")),
        "{}",
        run.stderr
    );
    assert!(
        has("Committed", &format!("1 on spec/{FEATURE}/1 (1 file)")),
        "{}",
        run.stderr
    );
    assert!(
        has(
            "Failed",
            "2 (exit 4, last output: helper: task 2 exits with 4, log: .git/spec-exec/"
        ),
        "{}",
        run.stderr
    );
    assert!(has("Skipped", "3 (depends on task 2"), "{}", run.stderr);
    assert!(has("Finished", ""), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "colour on a non-terminal");

    let dirs = s.run_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = &dirs[0];
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["feature"], FEATURE);
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["totals"]["done"], 1);
    assert_eq!(report["totals"]["failed"], 1);
    assert_eq!(report["totals"]["skipped"], 1);
    let tasks = report["tasks"].as_array().unwrap();
    let ids: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    let one = &tasks[0];
    assert_eq!(one["status"], "done");
    assert_eq!(one["branch"], Scratch::branch("1").as_str());
    assert_eq!(one["commit"], s.tip("1").as_str());
    assert_eq!(one["files_changed"], 1);
    assert_eq!(tasks[1]["status"], "failed");
    // report.json has absolute paths, report.md and the lines relative ones.
    let log = PathBuf::from(tasks[1]["log"].as_str().unwrap());
    assert!(log.starts_with(dir.join("logs")), "{log:?}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("exits with 4")
    );
    assert!(tasks[1]["worktree"].as_str().is_some());
    assert_eq!(tasks[2]["status"], "skipped");
    assert!(dir.join("prompts/1.md").is_file());

    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let row = |id: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| {id} ")))
            .unwrap_or_else(|| panic!("no row for {id}:\n{md}"))
            .to_owned()
    };
    let r1 = row("1");
    assert!(r1.contains("| done |"), "{r1}");
    assert!(r1.contains(&format!("`{}`", Scratch::branch("1"))), "{r1}");
    assert!(r1.contains(&s.tip("1")[..10]), "{r1}");
    let r2 = row("2");
    assert!(r2.contains("| failed |") && r2.contains("exit 4"), "{r2}");
    assert!(r2.contains("`.git/spec-exec/"), "{r2}");
    assert!(!md.contains(&s.repo().display().to_string()), "{md}");
    assert!(row("3").contains("| skipped |"));
    // The finished line names the report.
    let rel = dir.strip_prefix(s.repo()).unwrap().join("report.md");
    assert!(
        run.stderr.contains(&rel.display().to_string()),
        "{}",
        run.stderr
    );
}

/// Another feature whose name starts with this one's: its kept worktree is not this feature's
/// leftover, and must survive a run of this feature.
#[test]
fn a_run_leaves_other_features_worktrees_alone() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let other = "demo-x";
    write(
        &s.repo()
            .join("documentation/features")
            .join(other)
            .join("tasks.md"),
        &tasks_md(&[task("1", "Other one", "", "write=partial.txt exit=1")]),
    );
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "Another feature"]);
    let out = s.spec_exec(&["approve", other]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    s.git(&["commit", "-q", "-am", "Approve it"]);

    let agent = helper_agent();
    let failed = s.run_args(&["run", other, "--agent", &agent, "--message-format", "json"]);
    failed.assert_code(1);
    let kept = s
        .repo()
        .join(failed.finished("1")["worktree"].as_str().unwrap());
    assert!(kept.join("partial.txt").is_file(), "{kept:?}");

    let run = s.run(&[]);
    run.assert_code(0);
    assert!(
        kept.join("partial.txt").is_file(),
        "running `{FEATURE}` removed the kept worktree of `{other}` at {kept:?}"
    );
    assert!(
        s.git(&["worktree", "list", "--porcelain"])
            .contains(&kept.display().to_string()),
        "git no longer knows the worktree of `{other}`"
    );
}

/// Edits of tasks.md made while the run goes on are kept; a task whose title changed is done but
/// not ticked, and the report says so.
#[test]
fn edits_made_during_the_run_are_kept_and_a_retitled_task_is_not_ticked() {
    let s = Scratch::new(&tasks_md(&[
        task(
            "1",
            "Alpha",
            "",
            r"sed-user=$a~Note~added~during~the~run. sed-user=s/^-~\[~\]~3\.~\*\*Gamma\*\*/-~[~]~3.~**Gamma~renamed**/ touch=edited write=one.txt",
        ),
        task("2", "Beta", "", "waitfor=edited write=two.txt"),
        task("3", "Gamma", "", "waitfor=edited write=three.txt"),
    ]));
    let before = s.tasks_md();
    let run = s.run(&["--max-agents", "3"]);
    // The run says the tick was not written: it did not fully succeed.
    run.assert_code(1);
    for id in ["1", "2", "3"] {
        assert_eq!(run.status(id), "done", "{}", run.context());
    }
    let tick_error = run.finished("3")["tick_error"].as_str().unwrap_or_default();
    assert!(!tick_error.is_empty(), "{}", run.context());
    let expected = format!(
        "{}Note added during the run.\n",
        tick(&tick(&before, "1"), "2").replace("- [ ] 3. **Gamma**", "- [ ] 3. **Gamma renamed**")
    );
    assert_eq!(s.tasks_md(), expected);
}

/// A conditional rework after a review that passed is not needed: reported and ticked, not run.
#[test]
fn a_conditional_task_is_not_needed_when_its_review_passes() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "Build", "", "write=one.txt"),
        task("CR-A", "Review", "Task 1", "write=review.md say=APPROVED"),
        task("RW-A", "Rework", "CR-A (failed)", "write=rework.txt"),
        task("2", "After the review", "CR-A", "write=two.txt"),
    ]));
    let before = s.tasks_md();
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(run.status("RW-A"), "not-needed", "{}", run.context());
    assert!(!run.started().contains("RW-A"));
    assert!(!s.git_ok(&["rev-parse", "--verify", "-q", &Scratch::branch("RW-A")]));
    assert_eq!(run.status("2"), "done");
    let mut all = before;
    for id in ["1", "CR-A", "RW-A", "2"] {
        all = tick(&all, id);
    }
    assert_eq!(s.tasks_md(), all);
}

/// A conditional rework runs only when its review asks for changes; a review that fails did not.
#[test]
fn a_failed_review_skips_its_rework() {
    // A review whose agent fails gave no verdict: it failed, and the rework that runs only
    // when a review asks for changes is skipped with what else depends on it.
    let s = Scratch::new(&tasks_md(&[
        task("1", "Build", "", "write=one.txt"),
        task("CR-A", "Review", "Task 1", "write=review.md exit=1"),
        task("RW-A", "Rework", "CR-A (failed)", "write=rework.txt"),
    ]));
    let run = s.run(&["--continue-on-error"]);
    run.assert_code(1);
    assert_eq!(run.status("CR-A"), "failed", "{}", run.context());
    assert!(!run.started().contains("RW-A"), "{}", run.context());
    assert_eq!(run.status("RW-A"), "skipped", "{}", run.context());
}

/// Sub-tasks run; their container is ticked with the last of them and satisfies dependents.
#[test]
fn a_container_is_ticked_with_its_last_sub_task() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "Before", "", "write=one.txt"),
        "- [ ] 2. **Container**\n  - _Dependencies: Task 1_\n\n".to_owned(),
        // New, modified, deleted and ignored files.
        task(
            "2.1",
            "First part",
            "",
            "write=two-1.txt write=README.md write=target/ignored.txt",
        ),
        task(
            "2.2",
            "Second part",
            "",
            "write=two-2.txt rm=crates/tiny/src/lib.rs",
        ),
        task("3", "After the container", "Task 2", "write=three.txt"),
    ]));
    let before = s.tasks_md();
    // Deleting the crate's lib.rs does not pass `cargo check`: not what this test is about.
    let run = s.run(&["--no-verify"]);
    run.assert_code(0);
    assert!(!run.started().contains("2"), "a container is never run");
    assert_eq!(run.finished("2.1")["files_changed"], 2);
    assert_eq!(run.finished("2.2")["files_changed"], 2);
    let three = s.files(&Scratch::branch("3"));
    for f in [
        "one.txt",
        "two-1.txt",
        "two-2.txt",
        "three.txt",
        "README.md",
    ] {
        assert!(three.contains(f), "{f}: {three:?}");
    }
    assert!(!three.contains("crates/tiny/src/lib.rs"), "{three:?}");
    assert!(!three.contains("target/ignored.txt"), "{three:?}");
    assert_eq!(s.show(&Scratch::branch("3"), "README.md"), "2.1\n");
    let mut all = before;
    for id in ["1", "2", "2.1", "2.2", "3"] {
        all = tick(&all, id);
    }
    assert_eq!(s.tasks_md(), all);
}

/// `--base`: tasks without dependencies start from it; the user's HEAD stays where it is.
#[test]
fn base_names_where_independent_tasks_start() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "One", "", "write=one.txt"),
        task("2", "Two", "Task 1", "write=two.txt"),
    ]));
    let head = s.git(&["rev-parse", "HEAD"]);
    s.git(&["checkout", "-q", "-b", "elsewhere"]);
    write(&s.repo().join("extra.txt"), "extra\n");
    s.git(&["add", "extra.txt"]);
    s.git(&["commit", "-q", "-m", "Elsewhere"]);
    let elsewhere = s.git(&["rev-parse", "HEAD"]);
    s.git(&["checkout", "-q", "main"]);
    let run = s.run(&["--base", "elsewhere"]);
    run.assert_code(0);
    assert_eq!(
        s.git(&["rev-parse", &format!("{}^", Scratch::branch("1"))]),
        elsewhere
    );
    assert!(s.files(&Scratch::branch("2")).contains("extra.txt"));
    assert_eq!(s.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(s.git(&["symbolic-ref", "HEAD"]).trim(), "refs/heads/main");
}

/// Two dependencies that changed the same file differently: the join fails and names the path.
#[test]
fn conflicting_dependencies_fail_the_join_and_name_the_paths() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "Left", "", "write=same.txt write=left.txt"),
        task("2", "Right", "", "write=same.txt write=right.txt"),
        task("3", "Join", "Tasks 1, 2", "write=three.txt"),
    ]));
    let run = s.run(&["--no-resolve"]);
    run.assert_code(1);
    assert_eq!(run.status("1"), "done");
    assert_eq!(run.status("2"), "done");
    assert_eq!(run.status("3"), "failed");
    let reason = run.reason("3");
    assert!(
        reason.contains("conflict") && reason.contains("same.txt"),
        "{reason}"
    );
    assert!(!reason.contains("left.txt"), "{reason}");
    assert!(!s.records().start.contains_key("3"), "the agent of 3 ran");
    assert!(!is_ticked(&s.tasks_md(), "3"));
    // It failed before its branch was made: it names none, and none was made. The report's
    // rows name the agent that ran each task; none ran 3.
    assert!(run.finished("3")["branch"].is_null(), "{}", run.context());
    assert!(run.finished("3")["agent"].is_null(), "{}", run.context());
    assert!(!s.git_ok(&["rev-parse", "--verify", "-q", &Scratch::branch("3")]));
    let report = std::fs::read_to_string(s.run_dir().join("report.md")).unwrap();
    let row = |id: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("| {id} ")))
            .unwrap()
            .to_owned()
    };
    assert!(
        row("3").starts_with("| 3 Join | failed |  |  |"),
        "{report}"
    );
    assert!(
        row("1").starts_with("| 1 Left | done | `bash` | `spec/"),
        "{report}"
    );
}

/// A second Ctrl-C kills the agents at once, without waiting for the grace period.
#[test]
fn a_second_ctrl_c_kills_at_once() {
    let s = Scratch::new(&tasks_md(&[task(
        "1",
        "Stubborn",
        "",
        "ignore-term child note-term hang",
    )]));
    let mut live = Live::start_without_grace(&s, &[]);
    live.wait_for("task 1 started", |e| {
        e["type"] == "task-started" && e["id"] == "1"
    });
    wait_until("the agent never started", || {
        s.records().child.contains_key("1")
    });
    sigint(live.child.id());
    // The first Ctrl-C's SIGTERM reached the agent, which lives on; the second kills it, and
    // the run ends then, not after the grace (an hour).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !record_kinds(&s, "1").contains(&"term".to_owned()) {
        assert!(Instant::now() < deadline, "the agent never got SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    sigint(live.child.id());
    let (code, events) = live.finish();
    assert_eq!(code, Some(130), "{events:?}");
    assert_eq!(record_kinds(&s, "1"), ["start", "pid", "child", "term"]);
    let rec = s.records();
    assert!(!alive(rec.pid["1"]) && !alive(rec.child["1"]));
    let status = events
        .iter()
        .find(|e| e["type"] == "task-finished" && e["id"] == "1")
        .map(|e| e["status"].clone());
    assert_eq!(status, Some(Value::from("interrupted")));
}

/// Editing the list after approval voids it: refused, nothing runs.
#[test]
fn a_stale_approval_is_refused() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    let edited = s.tasks_md().replace("**One**", "**One, edited**");
    write(&s.tasks_path(), &edited);
    let run = s.run(&[]);
    assert_nothing_ran(&s, &run, &[]);
    assert!(
        run.stderr.contains("changed since it was approved"),
        "{}",
        run.context()
    );
    assert_eq!(s.tasks_md(), edited);
}

/// The branch of a task that failed was made by spec-exec; deleting the run state (it used to
/// be under the target directory, which `cargo clean` deletes) must not turn it into a foreign
/// branch that blocks resuming.
#[test]
fn resume_after_cargo_clean() {
    let s = Scratch::new(&tasks_md(&[task("1", "Flaky", "", "write=one.txt")]));
    s.control("1", "exit=1");
    let first = s.run(&[]);
    first.assert_code(1);
    assert!(s.git_ok(&["rev-parse", "--verify", "-q", &Scratch::branch("1")]));
    std::fs::remove_dir_all(s.state_dir()).unwrap();
    s.control("1", "write=one.txt");
    let second = s.run(&[]);
    second.assert_code(0);
    assert_eq!(second.status("1"), "done");
}

/// What an agent gets: its worktree as working directory, the prompt on standard input (the same
/// as the prompt file), its own process group and the SPEC_EXEC_* variables.
#[test]
fn an_agent_gets_its_worktree_prompt_and_variables() {
    let s = Scratch::new(&tasks_md(&[task(
        "CR-A",
        "Review the work",
        "",
        "dumpenv write=review.md say=APPROVED",
    )]));
    let run = s.run(&[]);
    run.assert_code(0);
    let env: BTreeMap<String, String> = std::fs::read_to_string(s.ctl().join("env-CR-A"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let worktree = PathBuf::from(
        run.of_type("task-started")
            .find(|e| e["id"] == "CR-A")
            .unwrap()["worktree"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        worktree.parent(),
        Some(s.state_dir().join("slots").as_path())
    );
    let run_id = run.of_type("run-started").next().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let expect =
        |k: &str, v: &str| assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}: {env:?}");
    expect("PWD", &worktree.display().to_string());
    expect("SPEC_EXEC_WORKTREE", &worktree.display().to_string());
    expect("SPEC_EXEC_FEATURE", FEATURE);
    expect("SPEC_EXEC_TASK_ID", "CR-A");
    expect("SPEC_EXEC_TASK_TITLE", "Review the work");
    expect("SPEC_EXEC_BRANCH", &Scratch::branch("CR-A"));
    expect("SPEC_EXEC_RUN_ID", &run_id);
    expect(
        "SPEC_EXEC_SPEC_DIR",
        &worktree
            .join("documentation/features")
            .join(FEATURE)
            .display()
            .to_string(),
    );
    expect("PGID", &env["PID"]);
    let prompt_file = PathBuf::from(&env["SPEC_EXEC_PROMPT_FILE"]);
    assert!(
        prompt_file.starts_with(s.state_dir().join("runs").join(&run_id)),
        "{prompt_file:?}"
    );
    let prompt = std::fs::read_to_string(&prompt_file).unwrap();
    assert_eq!(
        std::fs::read_to_string(s.ctl().join("stdin-CR-A")).unwrap(),
        prompt
    );
    assert!(prompt.contains("Review the work"), "{prompt}");
    assert!(prompt.contains(&Scratch::branch("CR-A")), "{prompt}");
}

/// Someone committed on a failed task's branch, in the worktree kept for inspection: the next
/// run must not move the branch and lose that commit.
#[test]
fn a_commit_made_on_a_failed_tasks_branch_is_never_lost() {
    let s = Scratch::new(&tasks_md(&[task("1", "Flaky", "", "write=one.txt")]));
    s.control("1", "write=partial.txt exit=1");
    let first = s.run(&[]);
    first.assert_code(1);
    let worktree = PathBuf::from(first.finished("1")["worktree"].as_str().unwrap());
    write(&worktree.join("fix.txt"), "by hand\n");
    let git_in_worktree = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=Fixer", "-c", "user.email=fixer@localhost"])
            .args(args)
            .current_dir(&worktree)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    git_in_worktree(&["add", "fix.txt"]);
    git_in_worktree(&["commit", "-q", "-m", "my manual fix"]);
    let mine = s.tip("1");

    s.control("1", "write=one.txt");
    let second = s.run(&[]);
    second.assert_code(2);
    assert!(
        second.stderr.contains("commits spec-exec did not make"),
        "{}",
        second.context()
    );
    assert_eq!(s.tip("1"), mine, "the branch was moved");
    assert!(second.started().is_empty());
}

/// A failed task's worktree holds the files its agent changed (and any made while inspecting
/// it): the next run moves them aside rather than deleting them.
#[test]
fn changed_files_of_a_failed_attempt_are_kept_aside() {
    let s = Scratch::new(&tasks_md(&[task("1", "Flaky", "", "write=one.txt")]));
    s.control("1", "write=partial.txt exit=1");
    s.run(&[]).assert_code(1);
    s.control("1", "write=one.txt");
    let second = s.run(&[]);
    second.assert_code(0);
    assert!(second.stderr.contains("Kept"), "{}", second.context());
    let leftovers = s.state_dir().join("leftovers");
    let kept: Vec<PathBuf> = std::fs::read_dir(&leftovers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        !kept[0].join(".git").exists(),
        "the kept copy is not a worktree"
    );
    assert_eq!(
        std::fs::read_to_string(kept[0].join("partial.txt")).unwrap(),
        "1\n"
    );
}

/// SIGTERM (a CI job cancelled) and SIGHUP (the terminal closed) stop the run as Ctrl-C does:
/// the agents, in process groups of their own, are stopped too, and the lock goes.
#[test]
fn sigterm_and_sighup_stop_the_agents() {
    for signal in [rustix::process::Signal::TERM, rustix::process::Signal::HUP] {
        let s = Scratch::new(&tasks_md(&[task("1", "Slow", "", "write=one.txt hang")]));
        let mut live = Live::start(&s, &[]);
        live.wait_for("task 1 started", |e| {
            e["type"] == "task-started" && e["id"] == "1"
        });
        wait_until("the agent never started", || {
            s.records().pid.contains_key("1")
        });
        let agent = s.records().pid["1"];
        let pid = rustix::process::Pid::from_raw(live.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let (code, events) = live.finish();
        assert_eq!(code, Some(130), "{signal:?}: {events:?}");
        assert!(!alive(agent), "{signal:?}: the agent lives on");
        assert!(s.run_lock_free(), "the run lock is still held");
    }
}

/// The timeout is the task's: the shell agent's code blocks share it.
#[test]
fn the_shell_agents_blocks_share_the_timeout() {
    let block = "  ```sh\n  sleep 1.5\n  echo x >> out.txt\n  ```\n";
    let s = Scratch::new(&format!(
        "# Tasks\n\n- [ ] 1. **Two slow blocks**\n  - _Dependencies: None_\n{block}{block}"
    ));
    let run = s.run_args(&[
        "run",
        FEATURE,
        "--agent",
        "shell",
        "--timeout",
        "2s",
        "--message-format",
        "json",
    ]);
    run.assert_code(1);
    assert_eq!(run.status("1"), "failed", "{}", run.context());
    assert!(
        run.finished("1")["reason"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{}",
        run.context()
    );
}

/// With nothing left to do, JSON still ends with `run-finished`.
#[test]
fn nothing_to_do_still_finishes_in_json() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "write=one.txt")]));
    s.run(&[]).assert_code(0);
    let again = s.run(&[]);
    again.assert_code(0);
    let last = again.events.last().unwrap();
    assert_eq!(last["type"], "run-finished", "{}", again.context());
    assert_eq!(last["report"], Value::Null);
}

/// A failed merge of the dependencies' branches ran no agent: no log or worktree is reported.
#[test]
fn a_conflict_reports_no_log_that_does_not_exist() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "Left", "", "write=same.txt"),
        task("2", "Right", "", "write=same.txt"),
        task("3", "Join", "Tasks 1, 2", "write=three.txt"),
    ]));
    let run = s.run(&["--no-resolve"]);
    run.assert_code(1);
    let join = run.finished("3");
    assert_eq!(join["status"], "failed");
    assert!(
        join["reason"].as_str().unwrap().contains("same.txt"),
        "{join}"
    );
    assert_eq!(join["log"], Value::Null, "{join}");
}

/// An agent that ticks its own task in the worktree's tasks.md (some spec tools' prompts tell
/// it to): the tick is not committed, so joins of such branches do not conflict.
#[test]
fn an_agent_ticking_tasks_md_itself_does_not_break_joins() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "Left", "", ""),
        task("2", "Right", "", ""),
        task("3", "Join", "Tasks 1, 2", ""),
    ]));
    let base_md = s.tasks_md();
    let agent = "bash -c 'sed -i \"s/^- \\[ \\] $SPEC_EXEC_TASK_ID\\./- [x] $SPEC_EXEC_TASK_ID./\" \"$SPEC_EXEC_SPEC_DIR/tasks.md\" && echo done > \"$SPEC_EXEC_TASK_ID.txt\"'";
    let run = s.run_args(&["run", FEATURE, "--agent", agent, "--message-format", "json"]);
    run.assert_code(0);
    assert_eq!(run.status("3"), "done", "{}", run.context());
    let rel = format!("documentation/features/{FEATURE}/tasks.md");
    for id in ["1", "2", "3"] {
        let files = s.files(&Scratch::branch(id));
        assert!(files.contains(&format!("{id}.txt")), "{id}: {files:?}");
        let committed = s.git(&["show", &format!("{}:{rel}", Scratch::branch(id))]);
        assert!(
            !committed.contains("- [x]"),
            "{id} committed a tick:\n{committed}"
        );
    }
    let mut ticked = base_md;
    for id in ["1", "2", "3"] {
        ticked = tick(&ticked, id);
    }
    assert_eq!(s.tasks_md(), ticked);
    // What the agent wrote is kept beside its log, and the log says so.
    let logs = s.run_dir().join("logs");
    let kept = std::fs::read_to_string(logs.join("1.tasks.md")).unwrap();
    assert!(kept.contains("- [x] 1."), "{kept}");
    let log = std::fs::read_to_string(logs.join("1.log")).unwrap();
    assert!(log.contains("this agent changed tasks.md"), "{log}");
}

/// A run killed outright (`kill -9`) cannot stop its agents; the next run of the feature does,
/// before it cleans or reuses their worktrees.
#[test]
fn agents_orphaned_by_a_killed_run_are_stopped_by_the_next() {
    let s = Scratch::new(&tasks_md(&[task(
        "1",
        "Slow",
        "",
        "write=partial.txt hang",
    )]));
    let mut live = Live::start(&s, &[]);
    live.wait_for("task 1 started", |e| {
        e["type"] == "task-started" && e["id"] == "1"
    });
    wait_until("the agent never started", || {
        s.records().pid.contains_key("1")
    });
    let agent = s.records().pid["1"];
    let pid = rustix::process::Pid::from_raw(live.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let _ = live.child.wait();
    assert!(
        alive(agent),
        "the agent should outlive a killed run; what it logged:\n{}",
        std::fs::read_to_string(s.agent_log()).unwrap_or_default()
    );

    s.control("1", "write=one.txt");
    let second = s.run(&[]);
    second.assert_code(0);
    assert!(
        second.stderr.contains("left running by an earlier run"),
        "{}",
        second.context()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(agent) {
        assert!(Instant::now() < deadline, "the orphaned agent still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A verify command of a run killed outright is stopped by the next run, as agents are.
#[test]
fn verify_commands_orphaned_by_a_killed_run_are_stopped_by_the_next() {
    let s = Scratch::new(&tasks_md(&[task("1", "Write", "", "write=one.txt")]));
    let pid_file = s.ctl().join("verify.pid");
    let verify = format!("sh -c 'echo $$ > {}; exec sleep 300'", pid_file.display());
    let mut live = Live::start(&s, &["--verify", &verify]);
    wait_until("the verify command never started", || pid_file.exists());
    let verify_pid: i32 = loop {
        if let Ok(pid) = std::fs::read_to_string(&pid_file)
            .unwrap_or_default()
            .trim()
            .parse()
        {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let pid = rustix::process::Pid::from_raw(live.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let _ = live.child.wait();
    assert!(
        alive(verify_pid),
        "the verify command should outlive a killed run"
    );

    let second = s.run(&["--verify", "true"]);
    second.assert_code(0);
    assert!(
        second.stderr.contains("left running by an earlier run"),
        "{}",
        second.context()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(verify_pid) {
        assert!(
            Instant::now() < deadline,
            "the orphaned verify command still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A daemon an agent started in a group of its own (`setsid`), as a signed commit starts
/// gpg-agent, is not an orphaned agent: the next run leaves it alone.
#[test]
fn a_daemon_an_agent_started_outlives_the_next_run() {
    let s = Scratch::new(&tasks_md(&[
        task("1", "Starts a daemon", "", ""),
        task("2", "Later", "Task 1", "write=two.txt"),
    ]));
    let agent = "bash -c 'if [ \"$SPEC_EXEC_TASK_ID\" = 1 ]; then setsid -f bash -c \"echo \\$\\$ > $HELPER_CTL/daemon.pid; exec sleep 300\" >/dev/null 2>&1 </dev/null; sleep 0.2; fi; echo x > \"$SPEC_EXEC_TASK_ID.txt\"'";
    let first = s.run_args(&["run", FEATURE, "--agent", agent, "--message-format", "json"]);
    first.assert_code(0);
    let daemon: i32 = std::fs::read_to_string(s.ctl().join("daemon.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(daemon));
    s.git(&["checkout", "-q", "--", "."]);
    let md = s.tasks_md().replace("- [x] 2.", "- [ ] 2.");
    write(&s.tasks_path(), &md);
    s.git(&["branch", "-D", &Scratch::branch("2")]);
    let second = s.run_args(&["run", FEATURE, "--agent", agent, "--message-format", "json"]);
    second.assert_code(0);
    assert!(
        !second.stderr.contains("left running"),
        "{}",
        second.context()
    );
    assert!(alive(daemon), "the daemon was killed");
    if let Some(pid) = rustix::process::Pid::from_raw(daemon) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}
