//! spec-exec's own CPU time per task, and its peak memory, as the task list grows.

use crate::common::{self, Task};

/// Writes one file (a task that changes nothing fails).
const AGENT: &str = r#"sh -c 'echo > "t-$SPEC_EXEC_TASK_ID"'"#;
const AGENTS: usize = 6;
const FILES: usize = 50;

/// Mostly independent tasks; every tenth waits for the two before it (its base is their
/// merge) and every tenth plus five for the one before it.
fn tasks(n: usize) -> Vec<Task> {
    (1..=n)
        .map(|i| Task {
            title: format!("Write file {i}"),
            deps: match i % 10 {
                0 => vec![i - 2, i - 1],
                5 => vec![i - 1],
                _ => Vec::new(),
            },
        })
        .collect()
}

pub fn main(args: &[usize]) {
    let mut sizes = if args.is_empty() {
        vec![100, 1000, 10_000]
    } else {
        args.to_vec()
    };
    sizes.sort_unstable();
    sizes.dedup();
    println!(
        "== scale: no-op tasks (the agent writes one file), {AGENTS} agents, {FILES}-file \
         repository, no verification, a fifth of the tasks waiting for others; \
         ratio = CPU per task / CPU per task at {} tasks",
        sizes[0]
    );
    println!("   own: spec-exec's process; all: with what it ran (git, the agents)");
    let mut first: Option<(f64, f64)> = None;
    for n in sizes {
        let repo = common::package_repo(FILES, &tasks(n));
        let run = common::run_feature(repo.path(), AGENT, AGENTS, n);
        let (Some(own), Some(all)) = (run.cpu_own, run.cpu_all) else {
            println!(
                "{n:>6} tasks: wall {}; CPU times need /proc",
                common::secs(run.wall)
            );
            continue;
        };
        let own = own.as_secs_f64() * 1000.0 / n as f64;
        let all = all.as_secs_f64() * 1000.0 / n as f64;
        let (own0, all0) = *first.get_or_insert((own, all));
        let tasks_part = run.cpu_own_at_last_task().map_or("?".to_owned(), |d| {
            format!("{:.2}", d.as_secs_f64() * 1000.0 / n as f64)
        });
        println!(
            "{n:>6} tasks: CPU own {own:>6.2} ms/task ({tasks_part} until the last task \
             finished), ratio {}; all {all:>6.2} ms/task, ratio {all_ratio:.2}×; peak RSS {}; \
             wall {} (tasks {}, then integration {})",
            common::against(own / own0, 1.5),
            run.peak_rss_kib
                .map_or("?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            common::secs(run.wall),
            common::secs(run.last_task_finished()),
            common::secs(run.wall.saturating_sub(run.last_task_finished())),
            all_ratio = all / all0,
        );
    }
}
