//! A chain of Rust tasks that each change one crate of a workspace and build it: how much of
//! the first task's build the later ones pay again.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{self, FEATURE, Task, git};

/// Crates `a` → `b` → `c` → `d`, each depending on the next by path.
const CRATES: [&str; 4] = ["a", "b", "c", "d"];
const TASKS: usize = 6;
/// Structs per crate: about 20 lines each, so that a cold build of the four takes seconds.
const STRUCTS: usize = 40;
/// The work of a task: append a function to the crate its title ends with, then build. As a
/// shell script with no single quote, so that `sh -c '…'` carries it whole.
const SCRIPT: &str = r#"c=${SPEC_EXEC_TASK_TITLE##* }; printf "\npub fn added_%s() -> u64 {\n    %s\n}\n" "$SPEC_EXEC_TASK_ID" "$SPEC_EXEC_TASK_ID" >> "crates/$c/src/lib.rs" && cargo build -q"#;
/// Only path dependencies: every build works offline.
const OFFLINE: (&str, &str) = ("CARGO_NET_OFFLINE", "true");

/// A few hundred lines of code that takes the compiler a while: derived traits and methods.
fn lib_rs(below: Option<&str>) -> String {
    let mut s = String::new();
    for i in 0..STRUCTS {
        writeln!(
            s,
            "#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]\n\
             pub struct S{i} {{\n    pub a: u64,\n    pub b: String,\n    pub c: Vec<u32>,\n    \
             pub d: Option<(u8, i64)>,\n    pub e: std::collections::BTreeMap<String, u16>,\n}}\n\n\
             impl S{i} {{\n    pub fn score(&self) -> u64 {{\n        \
             let mut x = self.a.wrapping_mul({m});\n        \
             for v in &self.c {{\n            x = x.rotate_left(3) ^ u64::from(*v);\n        }}\n        \
             if let Some((p, q)) = self.d {{\n            x = x.wrapping_add(u64::from(p)).wrapping_sub(q as u64);\n        }}\n        \
             x + self.b.len() as u64 + self.e.values().map(|v| u64::from(*v)).sum::<u64>()\n    }}\n}}\n",
            m = i * 7 + 3
        )
        .unwrap();
    }
    let below = below.map_or("0".to_owned(), |b| format!("bench_{b}::total()"));
    writeln!(
        s,
        "pub fn total() -> u64 {{\n    let mut t = {below};\n{}    t\n}}",
        (0..STRUCTS)
            .map(|i| format!("    t += S{i}::default().score();\n"))
            .collect::<String>()
    )
    .unwrap();
    s
}

fn workspace() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write(
        &dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"crates/*\"]\nresolver = \"2\"\n",
    );
    common::write(&dir.join(".gitignore"), "/target\n");
    for (k, krate) in CRATES.iter().enumerate() {
        let below = CRATES.get(k + 1).copied();
        let dep = below.map_or(String::new(), |b| {
            format!("bench_{b} = {{ path = \"../{b}\" }}\n")
        });
        common::write(
            &dir.join(format!("crates/{krate}/Cargo.toml")),
            &format!(
                "[package]\nname = \"bench_{krate}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 publish = false\n\n[dependencies]\n{dep}"
            ),
        );
        common::write(
            &dir.join(format!("crates/{krate}/src/lib.rs")),
            &lib_rs(below),
        );
    }
    let tasks: Vec<Task> = (1..=TASKS)
        .map(|i| Task {
            title: format!("Add a function to crate {}", CRATES[(i - 1) % CRATES.len()]),
            deps: if i == 1 { Vec::new() } else { vec![i - 1] },
        })
        .collect();
    common::write(
        &dir.join(format!("documentation/features/{FEATURE}/tasks.md")),
        &common::tasks_md(&tasks),
    );
    let status = common::command("cargo")
        .args(["generate-lockfile", "-q"])
        .env(OFFLINE.0, OFFLINE.1)
        .current_dir(dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo generate-lockfile failed");
    common::init_git(dir);
    tmp
}

pub fn main(_args: &[usize]) {
    println!(
        "== rust: a workspace of 4 crates (a → b → c → d), a chain of {TASKS} tasks each \
         appending a function to one crate (a, b, c, d, a, b) and running `cargo build`; \
         spec-exec with --no-verify (only the agent builds); ratio = a task's time / task 1's"
    );
    let repo = workspace();
    common::approve(repo.path());
    let agent = format!("sh -c '{SCRIPT}'");
    let run = common::run(
        repo.path(),
        &[
            FEATURE,
            "--agent",
            &agent,
            "--max-agents",
            "1",
            "--no-verify",
        ],
        &[OFFLINE],
    );
    run.assert_done(TASKS);
    let ours: Vec<f64> = (1..=TASKS)
        .map(|i| {
            run.of_type("task-finished")
                .find(|(_, v)| v["id"] == i.to_string().as_str())
                .and_then(|(_, v)| v["duration_secs"].as_f64())
                .expect("a task-finished event per task")
        })
        .collect();
    let cli: Vec<f64> = git_cli().iter().map(Duration::as_secs_f64).collect();
    let alone: Vec<f64> = cargo_alone().iter().map(Duration::as_secs_f64).collect();
    println!(
        "task  crate  spec-exec  ratio (target ≤ 0.30× from task 2)  git CLI  ratio   cargo alone  ratio"
    );
    for i in 0..TASKS {
        let ratio = ours[i] / ours[0];
        let verdict = match i {
            0 => "",
            _ if ratio <= 0.3 => "met",
            _ => "missed",
        };
        println!(
            "{:>4}  {:>5}  {:>7.2} s  {ratio:>5.2}× {verdict:<27}  {:>5.2} s  {:.2}×   {:>7.2} s  {:.2}×",
            i + 1,
            CRATES[i % CRATES.len()],
            ours[i],
            cli[i],
            cli[i] / cli[0],
            alone[i],
            alone[i] / alone[0],
        );
    }
    println!(
        "(cargo alone: the same changes and builds one after another in one checkout with one \
         target directory, nothing else: the part of each ratio that is cargo's own rebuild)"
    );
}

/// The floor: the chain's changes and builds in the repository itself, one target directory
/// kept warm throughout, no worktree and no commit timed. Each task's time.
fn cargo_alone() -> Vec<Duration> {
    let repo = workspace();
    let dir = repo.path();
    (1..=TASKS)
        .map(|i| {
            let start = Instant::now();
            change_and_build(dir, i, &dir.join("target"));
            let took = start.elapsed();
            git(dir, &["add", "-A"]);
            git(dir, &["commit", "-qm", &format!("{FEATURE}: {i}")]);
            took
        })
        .collect()
}

/// Task `i`'s change and build in `dir`, building into `target`.
fn change_and_build(dir: &Path, i: usize, target: &Path) {
    let status = common::command("sh")
        .args(["-c", SCRIPT])
        .env("SPEC_EXEC_TASK_ID", i.to_string())
        .env(
            "SPEC_EXEC_TASK_TITLE",
            format!("Add a function to crate {}", CRATES[(i - 1) % CRATES.len()]),
        )
        .env("CARGO_TARGET_DIR", target)
        .env(OFFLINE.0, OFFLINE.1)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the change or the build of task {i} failed"
    );
}

/// The same chain with the git CLI: per task a fresh worktree on the previous task's branch,
/// the same change, `cargo build` into the worktree's own new target directory, a commit, and
/// the worktree removed. Each task's time.
fn git_cli() -> Vec<Duration> {
    let repo = workspace();
    let dir = repo.path();
    (1..=TASKS)
        .map(|i| {
            let start = Instant::now();
            cli_task(dir, i);
            start.elapsed()
        })
        .collect()
}

fn cli_task(dir: &Path, i: usize) {
    let base = if i == 1 {
        "HEAD".to_owned()
    } else {
        format!("cli/{}", i - 1)
    };
    let wt = common::cli_worktree(dir, i, &base);
    let wt_s = wt.to_str().unwrap();
    change_and_build(&wt, i, &wt.join("target"));
    git(&wt, &["add", "-A"]);
    git(&wt, &["commit", "-qm", &format!("{FEATURE}: {i}")]);
    git(dir, &["worktree", "remove", wt_s]);
}
