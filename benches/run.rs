//! spec-exec's own cost per task (worktree, base, commit, cleanup, tick), against doing the same
//! with the git CLI: `git worktree add` + the agent + `git add -A` + `git commit` + `git worktree
//! remove`, with the same number of tasks at once.
//!
//! `cargo bench --bench run [-- TASKS AGENTS]` (default 100 tasks, 6 agents), on a small
//! repository and on one with 5,000 files. The agent only writes one file. Figures are
//! reported as ratios to the git CLI baseline measured in the same run.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const AGENT: &str = r#"sh -c 'echo done > "task-$SPEC_EXEC_TASK_ID.txt"'"#;

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} failed");
}

/// A Cargo package with `extra` more files in a git repository, and a feature of `tasks`
/// independent tasks.
fn make_repo(dir: &Path, tasks: usize, extra: usize) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"bench\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
    std::fs::write(dir.join(".gitignore"), "/target\n").unwrap();
    for i in 0..extra {
        let d = dir.join(format!("data/{:02}", i % 50));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}.txt")), format!("file {i}\n")).unwrap();
    }
    let spec = dir.join("documentation/features/bench");
    std::fs::create_dir_all(&spec).unwrap();
    let mut md = String::from("# Tasks\n\n");
    for i in 1..=tasks {
        md.push_str(&format!(
            "- [ ] {i}. Write file {i}\n  - _Dependencies: None_\n"
        ));
    }
    std::fs::write(spec.join("tasks.md"), md).unwrap();
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "init"]);
}

fn spec_exec(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-spec-exec"))
        .args(args)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("spec-exec runs");
    assert!(
        out.status.success(),
        "spec-exec {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_spec_exec(dir: &Path, agents: usize) -> Duration {
    spec_exec(dir, &["approve", "bench", "-q"]);
    let start = Instant::now();
    spec_exec(
        dir,
        &[
            "bench",
            "-q",
            "--agent",
            AGENT,
            "--max-agents",
            &agents.to_string(),
        ],
    );
    start.elapsed()
}

/// The same work with the git CLI, `agents` tasks at a time. Like spec-exec, it serialises the
/// repository-level commands (concurrent `git worktree add` corrupts `.git/worktrees`); the
/// agents run in parallel.
fn run_git_cli(dir: &Path, tasks: usize, agents: usize) -> Duration {
    let lock = std::sync::Mutex::new(());
    let start = Instant::now();
    let ids: Vec<usize> = (1..=tasks).collect();
    for chunk in ids.chunks(agents) {
        std::thread::scope(|s| {
            for &i in chunk {
                let lock = &lock;
                s.spawn(move || {
                    let wt = dir.join(format!("target/wt/{i}"));
                    let wt_s = wt.to_str().unwrap().to_owned();
                    {
                        let _g = lock.lock().unwrap();
                        git(
                            dir,
                            &[
                                "worktree",
                                "add",
                                "-q",
                                "-b",
                                &format!("cli/{i}"),
                                &wt_s,
                                "HEAD",
                            ],
                        );
                    }
                    let status = Command::new("sh")
                        .args(["-c", &format!("echo done > task-{i}.txt")])
                        .current_dir(&wt)
                        .status()
                        .unwrap();
                    assert!(status.success());
                    let _g = lock.lock().unwrap();
                    git(&wt, &["add", "-A"]);
                    git(&wt, &["commit", "-qm", &format!("bench: {i}")]);
                    git(dir, &["worktree", "remove", &wt_s]);
                });
            }
        });
    }
    start.elapsed()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let tasks = args.first().copied().unwrap_or(100);
    let agents = args.get(1).copied().unwrap_or(6);
    println!("{tasks} tasks, {agents} at once; the agent writes one file");
    for (label, extra) in [("small repository", 0), ("5,000-file repository", 5000)] {
        let a = tempfile::tempdir().unwrap();
        make_repo(a.path(), tasks, extra);
        let ours = run_spec_exec(a.path(), agents);
        let b = tempfile::tempdir().unwrap();
        make_repo(b.path(), tasks, extra);
        let cli = run_git_cli(b.path(), tasks, agents);
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / tasks as f64;
        println!(
            "{label:>22}: spec-exec {:>7.1} ms/task ({:.2} s), git CLI {:>7.1} ms/task ({:.2} s), ratio {:.2}",
            per(ours),
            ours.as_secs_f64(),
            per(cli),
            cli.as_secs_f64(),
            ours.as_secs_f64() / cli.as_secs_f64()
        );
    }
}
