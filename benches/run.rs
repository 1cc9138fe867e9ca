//! Benchmarks of whole runs, each against a baseline measured in the same run, reported as
//! ratios (and the raw figures):
//!
//! ```sh
//! cargo bench --bench run                      # all four, default sizes
//! cargo bench --bench run -- overhead [TASKS]  # default 100 tasks
//! cargo bench --bench run -- scale [SIZE…]     # default 100 1000 10000 tasks
//! cargo bench --bench run -- makespan [N [SEED]]  # default 60 tasks, seed 42
//! cargo bench --bench run -- rust
//! ```
//!
//! Small sizes run in a few minutes: `overhead 10`, `scale 100 300`, `makespan 20`, `rust`.
//! At the default sizes `overhead` takes about half an hour on two cores, and `scale` at 10,000
//! tasks hours (a run's integration at its end grows faster than its tasks). Every run
//! happens in a new temporary repository, with `--no-verify` (the baselines verify nothing) and
//! `--message-format json`. Children run without `CARGO_TARGET_DIR` or
//! `CARGO_BUILD_BUILD_DIR` from the environment.
//!
//! - **overhead**: per-task cost against the git CLI doing the same (`git worktree add`, the
//!   agent, `git add -A`, `git commit`, `git worktree remove`; worktrees added and removed one
//!   at a time, the rest in parallel), for TASKS independent tasks whose agent writes one file,
//!   on a 50-file and a 5,000-file repository, at 1 and 6 agents. The ratio is the wall time
//!   of spec-exec's run (its integration branch included; the line shows the split) over the
//!   git CLI's. Targets: ≤ 0.5× at 50 files, ≤ 0.1× at 5,000 files.
//! - **scale**: spec-exec's CPU time per task (user + system, its own process: read from
//!   `/proc/<pid>/stat` once it has exited; and with everything it ran, the growth of this
//!   process's children's times, as `getrusage(RUSAGE_CHILDREN)` counts them) and its peak
//!   resident memory (`VmHWM`, sampled), for lists of SIZE no-op tasks (the agent writes one
//!   file; a fifth wait for one or two others), 6 agents, a 50-file repository. The ratio is a
//!   size's CPU per task over the smallest size's. Target: ≤ 1.5×. The line also shows the
//!   CPU time spent by the time the last task finished (read as its event arrived), the rest
//!   being the run's end (the integration branch, the reports). Linux only (`/proc`).
//! - **makespan**: a random DAG of N tasks (seeded xorshift; each waits for up to three of the
//!   twelve before it) that each sleep 0.25–0.75 s and write one file, run at 2, 3 and 6 agents.
//!   The ratio is the makespan, the span from the first task's start to the last one's end as
//!   the events arrive, over the lower bound max(critical path, total work / agents); the run's
//!   own duration (`run-finished`'s `duration_secs`: planning and the integration too) is shown
//!   beside it. Each agent count runs twice in one repository: first with no worktree slot
//!   yet (the run makes them as it goes), then the same list again from scratch in the slots
//!   the first run left, as every later run of a repository finds them. Target: ≤ 1.05×. The
//!   line also shows what a task took beyond its sleep (its `task-finished` duration less the
//!   sleep, on average), the per-task cost that no schedule hides.
//! - **rust**: a workspace of four crates (a → b → c → d by path dependencies) and a chain of
//!   six tasks, each appending a function to one crate (a, b, c, d, a, b) and running
//!   `cargo build` as its agent (`--no-verify`: only the agent builds). Each task's duration
//!   (`task-finished`'s `duration_secs`) over task 1's. Target: ≤ 0.3× for tasks 2–6. Baseline:
//!   the same chain with the git CLI, a fresh worktree and target directory per task, each
//!   task's time over its first's.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark reports on the terminal"
)]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

#[path = "run/common.rs"]
mod common;
#[path = "run/makespan.rs"]
mod makespan;
#[path = "run/overhead.rs"]
mod overhead;
#[path = "run/rust.rs"]
mod rust;
#[path = "run/scale.rs"]
mod scale;

/// A benchmark, given the numbers after its name.
type Bench = fn(&[usize]);

const BENCHMARKS: [(&str, Bench); 4] = [
    ("overhead", overhead::main),
    ("scale", scale::main),
    ("makespan", makespan::main),
    ("rust", rust::main),
];

fn main() {
    // `cargo bench` passes `--bench`; options are not ours.
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let name = words.first().filter(|w| w.parse::<usize>().is_err());
    let numbers: Vec<usize> = words
        .iter()
        .skip(usize::from(name.is_some()))
        .map(|w| {
            w.parse().unwrap_or_else(|_| {
                usage(&format!("`{w}` is not a number"));
            })
        })
        .collect();
    match name {
        None if numbers.is_empty() => {
            for (_, bench) in BENCHMARKS {
                bench(&[]);
            }
        }
        None => usage("numbers need a benchmark's name before them"),
        Some(name) => match BENCHMARKS.iter().find(|(n, _)| n == name) {
            Some((_, bench)) => bench(&numbers),
            None => usage(&format!("no benchmark is named `{name}`")),
        },
    }
}

fn usage(what: &str) -> ! {
    eprintln!(
        "error: {what}\nusage: cargo bench --bench run -- [overhead [TASKS] | scale [SIZE…] | \
         makespan [N [SEED]] | rust]"
    );
    std::process::exit(2)
}
