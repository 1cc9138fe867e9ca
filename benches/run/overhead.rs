//! Per-task cost of spec-exec against the same work done with the git CLI.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{self, FEATURE, git};

/// Writes one file, so that the task has something to commit.
const AGENT: &str = r#"sh -c 'echo done > "task-$SPEC_EXEC_TASK_ID.txt"'"#;

pub fn main(args: &[usize]) {
    let tasks = args.first().copied().unwrap_or(100);
    println!(
        "== overhead: {tasks} independent tasks, the agent writes one file, no verification; \
         ratio = spec-exec's wall time / the git CLI's"
    );
    for (files, target) in [(50, 0.5), (5000, 0.1)] {
        for agents in [1, 6] {
            let [cold, warm] = spec_exec(files, tasks, agents);
            let cli = git_cli(files, tasks, agents);
            let per = |d: Duration| d.as_secs_f64() * 1000.0 / tasks as f64;
            for (label, ours) in [("new slots ", cold), ("slots kept", warm)] {
                println!(
                    "{files:>5} files, {agents} agent{s}, {label}: spec-exec {:>6.1} ms/task ({}: \
                     tasks {}, then integration {}), git CLI {:>6.1} ms/task ({}), ratio {}",
                    per(ours.0),
                    common::secs(ours.0),
                    common::secs(ours.1),
                    common::secs(ours.0.saturating_sub(ours.1)),
                    per(cli),
                    common::secs(cli),
                    common::against(ours.0.as_secs_f64() / cli.as_secs_f64(), target),
                    s = if agents == 1 { " " } else { "s" },
                );
            }
        }
    }
}

/// The run's wall time, and when its last task finished: on a fresh repository (the run makes
/// its slots), then again in the slots that run left.
fn spec_exec(files: usize, tasks: usize, agents: usize) -> [(Duration, Duration); 2] {
    let repo = common::package_repo(files, &common::independent(tasks));
    common::approve(repo.path());
    let approved = common::task_list(repo.path());
    let cold = common::run_feature(repo.path(), AGENT, agents, tasks);
    common::run_again(repo.path(), &approved);
    let warm = common::run_feature(repo.path(), AGENT, agents, tasks);
    [cold, warm].map(|run| (run.wall, run.last_task_finished()))
}

/// The same work with the git CLI, `agents` tasks at a time. Like spec-exec, it adds and
/// removes worktrees one at a time (concurrent `git worktree add` can corrupt
/// `.git/worktrees`); the agents, `git add` and `git commit` run in parallel.
fn git_cli(files: usize, tasks: usize, agents: usize) -> Duration {
    let repo = common::package_repo(files, &common::independent(tasks));
    let dir = repo.path();
    let lock = Mutex::new(());
    let next = AtomicUsize::new(1);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..agents {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i > tasks {
                        break;
                    }
                    cli_task(dir, i, &lock);
                }
            });
        }
    });
    start.elapsed()
}

fn cli_task(dir: &Path, i: usize, lock: &Mutex<()>) {
    let wt = {
        let _g = lock.lock().unwrap();
        common::cli_worktree(dir, i, "HEAD")
    };
    let wt_s = wt.to_str().unwrap();
    let status = common::command("sh")
        .args(["-c", &format!("echo done > task-{i}.txt")])
        .current_dir(&wt)
        .status()
        .unwrap();
    assert!(status.success());
    git(&wt, &["add", "-A"]);
    git(&wt, &["commit", "-qm", &format!("{FEATURE}: {i}")]);
    let _g = lock.lock().unwrap();
    git(dir, &["worktree", "remove", wt_s]);
}
