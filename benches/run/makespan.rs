//! How close the scheduler gets to the shortest possible run of a random DAG of timed tasks.

use crate::common::{self, Rng, Task};

/// Sleeps for the seconds its task's title names (`sleep 0.431`), then writes one file.
const AGENT: &str =
    r#"sh -c 'sleep "${SPEC_EXEC_TASK_TITLE#sleep }" && echo done > "out-$SPEC_EXEC_TASK_ID.txt"'"#;
const SEED: u64 = 42;

/// `n` tasks of 250 to 750 ms; each waits for up to three of the twelve before it.
fn dag(n: usize, seed: u64) -> (Vec<Task>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let mut tasks = Vec::with_capacity(n);
    let mut secs = Vec::with_capacity(n);
    for i in 1..=n {
        let ms = rng.range(250, 750);
        let lo = i.saturating_sub(12).max(1);
        let mut deps = Vec::new();
        if i > 1 {
            for _ in 0..rng.range(0, 3) {
                let d = rng.range(lo as u64, (i - 1) as u64) as usize;
                if !deps.contains(&d) {
                    deps.push(d);
                }
            }
        }
        deps.sort_unstable();
        tasks.push(Task {
            title: format!("sleep {}.{ms:03}", ms / 1000),
            deps,
        });
        secs.push(ms as f64 / 1000.0);
    }
    (tasks, secs)
}

/// The longest chain of the tasks' durations.
fn critical_path(tasks: &[Task], secs: &[f64]) -> f64 {
    let mut finish = vec![0.0_f64; tasks.len()];
    for (i, t) in tasks.iter().enumerate() {
        let start = t.deps.iter().map(|&d| finish[d - 1]).fold(0.0, f64::max);
        finish[i] = start + secs[i];
    }
    finish.into_iter().fold(0.0, f64::max)
}

/// The makespan of a list schedule (a ready task with the longest chain after it starts
/// first, the lower number among equals) with no cost per task: what the plan allows with
/// `agents` at once, which the lower bound need not be. The scheduler does not know how long
/// a task takes, so its chains count tasks (`weights` all 1); with the tasks' durations as
/// `weights`, the schedule it would follow if it knew them.
fn list_schedule(tasks: &[Task], secs: &[f64], weights: &[f64], agents: usize) -> f64 {
    let n = tasks.len();
    // The longest chain from each task to the end, itself included.
    let mut chain = weights.to_vec();
    for i in (0..n).rev() {
        for (j, t) in tasks.iter().enumerate().skip(i + 1) {
            if t.deps.contains(&(i + 1)) {
                chain[i] = chain[i].max(weights[i] + chain[j]);
            }
        }
    }
    let mut finish: Vec<Option<f64>> = vec![None; n];
    let mut started = vec![false; n];
    let mut running: Vec<(f64, usize)> = Vec::new();
    let mut now = 0.0_f64;
    while finish.iter().any(Option::is_none) {
        let mut ready: Vec<usize> = (0..n)
            .filter(|&i| !started[i] && tasks[i].deps.iter().all(|&d| finish[d - 1].is_some()))
            .collect();
        ready.sort_by(|&a, &b| chain[b].total_cmp(&chain[a]).then(a.cmp(&b)));
        for i in ready.into_iter().take(agents.saturating_sub(running.len())) {
            started[i] = true;
            running.push((now + secs[i], i));
        }
        running.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (end, i) = running.remove(0);
        now = end;
        finish[i] = Some(end);
    }
    now
}

pub fn main(args: &[usize]) {
    let n = args.first().copied().unwrap_or(60).max(1);
    let seed = args.get(1).map_or(SEED, |&s| s as u64);
    let (tasks, secs) = dag(n, seed);
    let cp = critical_path(&tasks, &secs);
    let work: f64 = secs.iter().sum();
    let edges: usize = tasks.iter().map(|t| t.deps.len()).sum();
    println!(
        "== makespan: random DAG of {n} tasks (seed {seed}, {edges} dependencies), each \
         sleeping 0.25-0.75 s and writing one file, no verification; critical path {cp:.2} s, \
         work {work:.2} s; ratio = makespan / max(critical path, work / agents)"
    );
    println!(
        "   run: the run's own duration (run-finished: planning, tasks, integration); \
         tasks: the first task's start to the last one's end"
    );
    for agents in [2, 3, 6] {
        let bound = cp.max(work / agents as f64);
        let planned = list_schedule(&tasks, &secs, &vec![1.0; n], agents);
        let knowing = list_schedule(&tasks, &secs, &secs, agents);
        println!(
            "{agents} agents: the scheduler's order with no cost per task takes {planned:.2} s, \
             {:.3}× the bound (knowing the tasks' durations it would take {knowing:.2} s, {:.3}×)",
            planned / bound,
            knowing / bound,
        );
        let repo = common::package_repo(50, &tasks);
        common::approve(repo.path());
        let approved = common::task_list(repo.path());
        // A fresh repository: the run makes its worktree slots as it goes. Then the same
        // list again, from scratch but in the slots the first run left (as every later run
        // of a repository finds them).
        let cold = common::run_feature(repo.path(), AGENT, agents, n);
        common::run_again(repo.path(), &approved);
        let warm = common::run_feature(repo.path(), AGENT, agents, n);
        for (label, run) in [("new slots", &cold), ("slots kept", &warm)] {
            let own = run.finished()["duration_secs"].as_f64().unwrap_or(f64::NAN);
            let span = run.tasks_span().as_secs_f64();
            // What the tasks took beyond their sleep: preparing, committing, cleaning up.
            let busy: f64 = run
                .of_type("task-finished")
                .filter_map(|(_, v)| v["duration_secs"].as_f64())
                .sum();
            println!(
                "{agents} agents, {label:10}: bound {bound:.2} s; tasks {span:.2} s, ratio {}; \
                 run {own:.2} s, ratio {:.2}×; process wall {}; {:.0} ms per task beyond its sleep",
                common::against(span / bound, 1.05),
                own / bound,
                common::secs(run.wall),
                (busy - work) * 1000.0 / n as f64,
            );
        }
    }
}
