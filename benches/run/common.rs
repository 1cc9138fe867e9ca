//! What the benchmarks share: scratch repositories, the git CLI, and runs of spec-exec measured
//! from outside (wall time, the JSON events as they arrive, CPU time and peak memory).

use std::io::{BufRead, BufReader, Read, Seek};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_cargo-spec-exec");
pub const FEATURE: &str = "bench";

/// Variables that would point a child's cargo at a target directory other than its own.
const CARGO_DIRS: [&str; 3] = [
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
];

/// `program` with none of [`CARGO_DIRS`], no system git configuration and no inherited
/// repository variables. Every child of the benchmarks starts here.
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for var in CARGO_DIRS {
        cmd.env_remove(var);
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("NO_COLOR", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    cmd
}

/// `git args` in `dir`; panics on failure, returns stdout.
/// The git CLI baselines' worktree of task `i`: `target/wt/<i>` on a new branch `cli/<i>` at
/// `base`.
pub fn cli_worktree(dir: &Path, i: usize, base: &str) -> std::path::PathBuf {
    let wt = dir.join(format!("target/wt/{i}"));
    git(
        dir,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            &format!("cli/{i}"),
            wt.to_str().unwrap(),
            base,
        ],
    );
    wt
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = command("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn write(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

/// A task of a generated list: its title and the (1-based) ids of the tasks it waits for.
#[derive(Debug, Clone)]
pub struct Task {
    pub title: String,
    pub deps: Vec<usize>,
}

/// The specflow task list of `tasks`, ids 1, 2, … with a `_Dependencies:_` line each.
pub fn tasks_md(tasks: &[Task]) -> String {
    let mut md = String::from("# Tasks\n\n");
    for (i, t) in tasks.iter().enumerate() {
        let deps = if t.deps.is_empty() {
            "None".to_owned()
        } else {
            t.deps
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        md.push_str(&format!(
            "- [ ] {}. {}\n  - _Dependencies: {deps}_\n",
            i + 1,
            t.title
        ));
    }
    md
}

/// `n` independent tasks.
pub fn independent(n: usize) -> Vec<Task> {
    (1..=n)
        .map(|i| Task {
            title: format!("Write file {i}"),
            deps: Vec::new(),
        })
        .collect()
}

/// Commits everything in `dir` as the first commit of a new repository, whose identity is set
/// in its own configuration (spec-exec and the git CLI baselines commit as it).
pub fn init_git(dir: &Path) {
    git(dir, &["init", "-q"]);
    git(dir, &["config", "user.name", "bench"]);
    git(dir, &["config", "user.email", "bench@localhost"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "init"]);
}

/// A repository of one Cargo package holding `files` tracked files in all (the package, the
/// task list of `tasks`, and data files spread over 50 directories).
pub fn package_repo(files: usize, tasks: &[Task]) -> TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("Cargo.toml"),
        "[package]\nname = \"bench\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    write(&dir.join("src/lib.rs"), "");
    write(&dir.join(".gitignore"), "/target\n");
    write(
        &dir.join(format!("documentation/features/{FEATURE}/tasks.md")),
        &tasks_md(tasks),
    );
    for i in 0..files.saturating_sub(4) {
        write(
            &dir.join(format!("data/{:02}/f{i}.txt", i % 50)),
            &format!("file {i}\n"),
        );
    }
    init_git(dir);
    tmp
}

/// `cargo spec-exec approve` in `dir`.
pub fn approve(dir: &Path) {
    let out = command(BIN)
        .args(["approve", FEATURE, "-q"])
        .current_dir(dir)
        .output()
        .expect("spec-exec runs");
    assert!(
        out.status.success(),
        "approve failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A run of spec-exec, seen from outside.
#[derive(Debug)]
pub struct Run {
    pub wall: Duration,
    /// Each JSON event with the time it arrived, from the start of the process.
    pub events: Vec<(Duration, Value)>,
    /// spec-exec's own CPU time so far when each event arrived (as [`Run::events`]).
    pub cpu_at_events: Vec<Option<Duration>>,
    /// spec-exec's own user + system time (all its threads), read when it had exited.
    pub cpu_own: Option<Duration>,
    /// The same with everything it ran and waited for (git, the agents, their children): the
    /// growth of this process's children's times across the run, as `RUSAGE_CHILDREN` counts.
    pub cpu_all: Option<Duration>,
    /// The highest resident set size spec-exec reached, sampled every 10 ms.
    pub peak_rss_kib: Option<u64>,
}

impl Run {
    pub fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a (Duration, Value)> {
        self.events.iter().filter(move |(_, v)| v["type"] == ty)
    }

    /// The `run-finished` event.
    pub fn finished(&self) -> &Value {
        &self
            .of_type("run-finished")
            .next()
            .expect("a run-finished event")
            .1
    }

    /// When the last task finished, from the start of the process.
    pub fn last_task_finished(&self) -> Duration {
        self.of_type("task-finished")
            .map(|(t, _)| *t)
            .max()
            .unwrap_or_default()
    }

    /// spec-exec's own CPU time when the last task had finished: the rest went to the end of
    /// the run (the integration branch, the reports).
    pub fn cpu_own_at_last_task(&self) -> Option<Duration> {
        let i = self
            .events
            .iter()
            .rposition(|(_, v)| v["type"] == "task-finished")?;
        self.cpu_at_events[i]
    }

    /// From the first task's start to the last one's end, as the events arrived.
    pub fn tasks_span(&self) -> Duration {
        let first = self
            .of_type("task-started")
            .map(|(t, _)| *t)
            .min()
            .unwrap_or_default();
        self.last_task_finished().saturating_sub(first)
    }

    /// Panics unless `n` tasks are done.
    pub fn assert_done(&self, n: usize) {
        let done = self.finished()["totals"]["done"].as_u64();
        assert_eq!(
            done,
            Some(n as u64),
            "expected {n} done tasks: {}",
            self.finished()
        );
    }
}

/// `cargo spec-exec ARGS --message-format json` in `dir`, with `envs` set; panics unless it
/// exits 0.
/// Approves the feature in the repository at `dir` and runs it with `agent`, `agents` at a
/// time, without verification; the run, once every one of its `tasks` is done.
pub fn run_feature(dir: &Path, agent: &str, agents: usize, tasks: usize) -> Run {
    approve(dir);
    let run = run(
        dir,
        &[
            FEATURE,
            "--agent",
            agent,
            "--max-agents",
            &agents.to_string(),
            "--no-verify",
        ],
        &[],
    );
    run.assert_done(tasks);
    run
}

/// Makes the feature in the repository at `dir` pending again after a run, in the slots that
/// run left (as every later run of a repository finds them): its branches deleted and its task
/// list back to `approved`, the bytes it had before the run ticked it.
pub fn run_again(dir: &Path, approved: &[u8]) {
    for branch in git(
        dir,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/spec",
        ],
    )
    .lines()
    {
        git(dir, &["branch", "-qD", branch]);
    }
    let list = dir.join(format!("documentation/features/{FEATURE}/tasks.md"));
    std::fs::write(list, approved).unwrap();
}

/// The feature's task list in the repository at `dir`, as it is now.
pub fn task_list(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(format!("documentation/features/{FEATURE}/tasks.md"))).unwrap()
}

pub fn run(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut stderr = tempfile::tempfile().unwrap();
    let children_before = children_ticks();
    let start = Instant::now();
    let mut child = command(BIN)
        .args(args)
        .args(["--message-format", "json"])
        .envs(envs.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .expect("spec-exec runs");
    let pid = child.id();
    let peak = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let mut events = Vec::new();
    let mut cpu_at_events = Vec::new();
    let mut cpu_own = None;
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = vm_hwm_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let stdout = BufReader::new(child.stdout.take().unwrap());
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                events.push((start.elapsed(), v));
                cpu_at_events.push(own_cpu(pid));
            }
        }
        // Wait for it to exit but leave it unreaped, so its /proc entry still holds its times.
        cpu_own = exited_cpu(pid);
        stop.store(true, Ordering::Relaxed);
    });
    let status = child.wait().unwrap();
    let wall = start.elapsed();
    let cpu_all = children_ticks()
        .zip(children_before)
        .map(|(after, before)| ticks(after.saturating_sub(before)));
    if !status.success() {
        let mut text = String::new();
        stderr.rewind().unwrap();
        stderr.read_to_string(&mut text).unwrap();
        let last: Vec<_> = events.iter().rev().take(3).map(|(_, v)| v).collect();
        panic!("spec-exec {args:?} failed ({status}): {text}\nlast events: {last:?}");
    }
    let peak = peak.into_inner();
    Run {
        wall,
        events,
        cpu_at_events,
        cpu_own,
        cpu_all,
        peak_rss_kib: (peak > 0).then_some(peak),
    }
}

fn ticks(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// Fields of `/proc/<pid>/stat` after the command name: index 11 is utime, 12 stime, 13 cutime,
/// 14 cstime (fields 14 to 17 of proc(5)), in clock ticks.
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// This process's children's user + system ticks (what `getrusage(RUSAGE_CHILDREN)` reports):
/// every descendant that exited and was waited for.
fn children_ticks() -> Option<u64> {
    let f = stat_fields("self")?;
    Some(f.get(13)? + f.get(14)?)
}

/// Waits for `pid` to exit without reaping it, then reads its own user + system time.
fn exited_cpu(pid: u32) -> Option<Duration> {
    use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};
    let pid_ = Pid::from_raw(i32::try_from(pid).ok()?)?;
    waitid(
        WaitId::Pid(pid_),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
    )
    .ok()?;
    own_cpu(pid)
}

/// The user + system time of process `pid`, all its threads.
fn own_cpu(pid: u32) -> Option<Duration> {
    let f = stat_fields(&pid.to_string())?;
    Some(ticks(f.get(11)? + f.get(12)?))
}

/// `VmHWM` of `/proc/<pid>/status`: the peak resident set size so far.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// `ratio` against `target`, as `1.23× (target ≤ 0.50×: met)`.
pub fn against(ratio: f64, target: f64) -> String {
    let word = if ratio <= target { "met" } else { "missed" };
    format!("{ratio:.2}× (target ≤ {target:.2}×: {word})")
}

/// splitmix64-seeded xorshift64*: the same numbers on every machine for a seed.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}
