//! Running the plan: up to `max_agents` tasks at once, each on its own branch in its own
//! worktree, started in critical-path order as their dependencies finish.
//!
//! Everything that can be checked is checked before the first agent starts (the repository, the
//! base, every branch name and any branch left by an earlier run). Repository-level git work is
//! serialised behind one lock; agents run in parallel. Ctrl-C stops scheduling and asks every
//! agent group to terminate; a second Ctrl-C kills them; a third exits at once.

pub mod agent;
pub mod prompt;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::{Error, Result, exit};
use crate::git::{self, Git};
use crate::output::{Display, Shell};
use crate::plan::{Blocked, Plan};
use crate::report::{Event, Report, Status, TaskReport, Totals};
use crate::source::display_path;
use crate::spec::{Feature, TaskList, edit};
use agent::{Agent, Outcome, Stop};

/// How long a terminated agent group gets before it is killed.
pub const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Settings {
    pub max_agents: usize,
    pub continue_on_error: bool,
    pub timeout: Duration,
    pub base: Option<String>,
    pub branch_prefix: String,
    pub agent: Agent,
}

/// What every task of the run shares.
struct Shared {
    git: Mutex<Git>,
    feature: String,
    root: PathBuf,
    /// The repository's working tree (the workspace root or above it).
    workdir: PathBuf,
    /// The feature directory relative to the repository's working tree.
    spec_rel: PathBuf,
    spec_abs: PathBuf,
    state_dir: PathBuf,
    run_dir: PathBuf,
    run_id: String,
    base: git2::Oid,
    settings: Settings,
}

/// One task handed to a worker.
#[derive(Debug, Clone)]
struct Job {
    index: usize,
    id: String,
    title: String,
    track: Option<String>,
    branch: String,
    /// Branches of the dependencies (done before or during this run).
    dep_branches: Vec<String>,
    prompt: String,
    code_blocks: Vec<String>,
}

/// git's name for a task's worktree. The feature's length makes it unambiguous: `demo` task
/// `x-1` and `demo-x` task `1` must never share a name.
fn worktree_name(feature: &str, id: &str) -> String {
    format!("{}{}", worktree_prefix(feature), git::ref_safe(id))
}

fn worktree_prefix(feature: &str) -> String {
    format!("spec-exec-{}-{feature}-", feature.len())
}

fn lock(git: &Mutex<Git>) -> std::sync::MutexGuard<'_, Git> {
    git.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the plan. Returns the exit code.
pub fn execute(
    shell: &Shell,
    root: &Path,
    target_dir: &Path,
    feature: &Feature,
    list: &TaskList,
    plan: &Plan,
    settings: Settings,
) -> Result<i32> {
    let started = Instant::now();
    let git = Git::open(root)?;
    let workdir = git.workdir().unwrap_or_else(|| root.to_path_buf());
    let base = git.resolve(settings.base.as_deref().unwrap_or("HEAD"))?;
    let spec_rel = feature
        .dir
        .strip_prefix(&workdir)
        .map(Path::to_path_buf)
        .map_err(|_| {
            Error::user(format!(
                "the feature directory `{}` is not inside the git repository at `{}`",
                feature.dir.display(),
                workdir.display()
            ))
        })?;

    // Agents work from the base commit: spec files that are not committed there as they are
    // here do not reach them.
    let stale = spec_files_not_in_base(&git, base, &feature.dir, &spec_rel);
    if !stale.is_empty() {
        shell.diagnostic(
            &crate::error::Diagnostic::warning(format!(
                "agents start from {}, where {} {} not as in your working tree",
                settings.base.as_deref().unwrap_or("HEAD"),
                stale.join(", "),
                if stale.len() == 1 { "is" } else { "are" },
            ))
            .help("commit the spec (requirements.md, design.md) before running, so that agents read it"),
        );
    }

    // Branch names: one per task, never two tasks on one branch.
    let branch_of =
        |i: usize| git::branch_name(&settings.branch_prefix, &feature.name, &list.tasks[i].id);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for i in list.leaves() {
        let b = branch_of(i);
        if let Some(&other) = seen.get(&b) {
            return Err(Error::user_with_help(
                format!(
                    "tasks {} and {} would share the branch `{b}`",
                    list.tasks[other].id, list.tasks[i].id
                ),
                "give them ids that differ in letters, digits, `.`, `-` or `_`",
            ));
        }
        seen.insert(b, i);
    }

    let state_dir = target_dir.join("spec-exec").join(&feature.name);
    prepare_state_dir(target_dir, &state_dir)?;
    let _lock = RunLock::acquire(&state_dir, &feature.name)?;

    // Branches left by earlier runs: finished ones are reused, unfinished ones are reset when
    // that loses nothing; anything else stops the run before it starts.
    let mut reused: HashMap<usize, git::TaskCommit> = HashMap::new();
    let mut problems = Vec::new();
    let tips: Vec<(String, git2::Oid)> = list
        .leaves()
        .filter_map(|i| git.branch_tip(&branch_of(i)).map(|t| (branch_of(i), t)))
        .collect();
    for node in &plan.nodes {
        let id = &list.tasks[node.task].id;
        let branch = branch_of(node.task);
        if git.branch_tip(&branch).is_none() {
            continue;
        }
        match git.task_commit(&branch) {
            Some(tc) if &tc.task == id => {
                reused.insert(node.task, tc);
            }
            // An unfinished task's branch is moved when it starts: only if that loses nothing
            // but what spec-exec made (its base, a merge of its dependencies). Whether
            // spec-exec made the branch does not matter: someone may have committed on it
            // since, in the worktree kept for inspection.
            _ => {
                let mut others = vec![base];
                others.extend(tips.iter().filter(|(b, _)| *b != branch).map(|&(_, t)| t));
                if !git.only_spec_exec_work(&branch, &others, &worktree_prefix(&feature.name)) {
                    problems.push(branch);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::user_with_help(
            format!(
                "{} {} already {}, with commits spec-exec did not make",
                if problems.len() == 1 {
                    "branch"
                } else {
                    "branches"
                },
                problems
                    .iter()
                    .map(|b| format!("`{b}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if problems.len() == 1 {
                    "exists"
                } else {
                    "exist"
                },
            ),
            format!(
                "spec-exec never overwrites a branch it did not make: delete (`git branch -D {}`) or rename {}, or pass another branch-prefix",
                problems[0],
                if problems.len() == 1 { "it" } else { "them" }
            ),
        ));
    }
    // Worktrees of this feature left by earlier runs (failed or interrupted tasks).
    // Files changed in one (by a failed agent, or by someone inspecting it) are moved aside,
    // never deleted.
    let run_id = run_id();
    let prefix = worktree_prefix(&feature.name);
    for name in git.worktrees_with_prefix(&prefix) {
        let id_part = &name[prefix.len()..];
        let path = state_dir.join("worktrees").join(id_part);
        if path.exists() && git::has_changes(&path) {
            let kept = state_dir
                .join("leftovers")
                .join(format!("{id_part}-{run_id}"));
            if let Some(parent) = kept.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
            }
            std::fs::rename(&path, &kept).map_err(|e| Error::io("move", &path, e))?;
            shell.status(
                "Kept",
                format!(
                    "the changed files of an earlier attempt of {id_part} in {}",
                    display_path(&kept, root).display()
                ),
            );
        }
        git.remove_worktree(&name, &path)?;
    }

    let run_dir = state_dir.join("runs").join(&run_id);
    for sub in ["logs", "prompts"] {
        let d = run_dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
    }

    let shared = Arc::new(Shared {
        git: Mutex::new(git),
        feature: feature.name.clone(),
        root: root.to_path_buf(),
        workdir: workdir.clone(),
        spec_rel,
        spec_abs: feature.dir.clone(),
        state_dir,
        run_dir: run_dir.clone(),
        run_id: run_id.clone(),
        base,
        settings: settings.clone(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::user(format!("could not start the async runtime: {e}")))?;
    let mut display = Display::new(shell, plan.nodes.len(), root);
    display.event(&Event::run_started(
        &feature.name,
        &run_id,
        settings.agent.name(),
        settings.max_agents,
        plan.nodes.len(),
        &run_dir,
    ));
    let mut reports = runtime.block_on(schedule(&shared, list, plan, &reused, &mut display));

    // Tasks the plan could not run.
    for (t, why) in &plan.blocked {
        let reason = match why {
            Blocked::NotRunnable => "marked not runnable (`[~]`)".to_owned(),
            Blocked::WaitsForBlocked { on } => {
                format!("waits for task {}, which cannot run", list.tasks[*on].id)
            }
            Blocked::OutsideTracks { waits_for } => format!(
                "waits for unfinished work outside the selected tracks: {}",
                waits_for
                    .iter()
                    .map(|&w| list.tasks[w].id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let r = skipped(list, *t, reason);
        display.event(&Event::TaskFinished(r.clone()));
        reports.push(r);
    }
    reports.sort_by_key(|r| list.find(&r.id).unwrap_or(usize::MAX));
    let totals = Totals::of(&reports);
    let code = if totals.interrupted > 0 {
        exit::INTERRUPTED
    } else if totals.failed > 0 || totals.skipped > 0 {
        exit::TASKS_FAILED
    } else {
        exit::OK
    };
    let duration = started.elapsed().as_secs_f64();
    let report = Report {
        format_version: crate::plan::render::FORMAT_VERSION,
        feature: &feature.name,
        run_id: &run_id,
        agent: settings.agent.name(),
        duration_secs: duration,
        exit_code: code,
        totals: totals.clone(),
        tasks: &reports,
        root,
    };
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    for (name, text) in [("report.json", json), ("report.md", report.markdown())] {
        let p = run_dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io("write", &p, e))?;
    }
    display.event(&Event::RunFinished {
        totals,
        duration_secs: duration,
        exit_code: code,
        report: Some(run_dir.join("report.md")),
    });
    display.finish(&reports);
    Ok(code)
}

fn run_id() -> String {
    let now = crate::fsutil::utc_now();
    let compact: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("{compact}-{}", std::process::id())
}

/// One run per feature at a time: two would share worktrees, branches and ticks. The lock is a
/// file holding the run's pid, removed when the run ends; one left by a process that is gone
/// (a crash, a reboot) is taken over.
#[derive(Debug)]
struct RunLock(PathBuf);

impl RunLock {
    fn acquire(state_dir: &Path, feature: &str) -> Result<RunLock> {
        let path = state_dir.join("run.lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    use std::io::Write as _;
                    let _ = writeln!(file, "{}", std::process::id());
                    return Ok(RunLock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<i32>().ok())
                        .and_then(rustix::process::Pid::from_raw);
                    let alive = holder.is_some_and(|pid| {
                        !matches!(
                            rustix::process::test_kill_process(pid),
                            Err(rustix::io::Errno::SRCH)
                        )
                    });
                    if let (true, Some(pid)) = (alive, holder) {
                        return Err(Error::user_with_help(
                            format!(
                                "another run of `{feature}` is in progress (pid {})",
                                pid.as_raw_nonzero()
                            ),
                            format!(
                                "wait for it to finish, or stop it with Ctrl-C; if no run is going on, delete `{}`",
                                path.display()
                            ),
                        ));
                    }
                    // Left by a run that is gone.
                    std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                }
                Err(e) => return Err(Error::io("create", &path, e)),
            }
        }
        Err(Error::user(format!(
            "could not take the run lock `{}`",
            path.display()
        )))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Creates the state directory, and makes git ignore everything spec-exec keeps there.
fn prepare_state_dir(target_dir: &Path, state_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(state_dir).map_err(|e| Error::io("create", state_dir, e))?;
    let ignore = target_dir.join("spec-exec").join(".gitignore");
    if !ignore.exists() {
        std::fs::write(
            &ignore,
            "# Written by cargo spec-exec: worktrees, logs and reports.\n*\n",
        )
        .map_err(|e| Error::io("write", &ignore, e))?;
    }
    Ok(())
}

fn skipped(list: &TaskList, t: usize, reason: String) -> TaskReport {
    let task = &list.tasks[t];
    TaskReport {
        id: task.id.clone(),
        title: task.title.clone(),
        track: list.track_of(t).map(str::to_owned),
        status: Status::Skipped,
        branch: None,
        commit: None,
        files_changed: None,
        duration_secs: 0.0,
        log: None,
        worktree: None,
        reason: Some(reason),
        tick_error: None,
    }
}

/// Longest chain of plan tasks from each task to the end: the start order.
fn remaining_chain(plan: &Plan) -> HashMap<usize, usize> {
    let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
    for n in &plan.nodes {
        for &d in &n.deps {
            dependents.entry(d).or_default().push(n.task);
        }
    }
    let mut by_level: Vec<&crate::plan::Node> = plan.nodes.iter().collect();
    by_level.sort_by_key(|n| std::cmp::Reverse(n.level));
    let mut chain = HashMap::new();
    for n in by_level {
        let c = 1 + dependents.get(&n.task).map_or(0, |ds| {
            ds.iter()
                .map(|d| chain.get(d).copied().unwrap_or(0))
                .max()
                .unwrap_or(0)
        });
        chain.insert(n.task, c);
    }
    chain
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Finished(Status),
}

async fn schedule(
    shared: &Arc<Shared>,
    list: &TaskList,
    plan: &Plan,
    reused: &HashMap<usize, git::TaskCommit>,
    display: &mut Display<'_>,
) -> Vec<TaskReport> {
    let chain = remaining_chain(plan);
    let tasks_path = shared.spec_abs.join("tasks.md");
    let tasks_display = list.source.display_path.clone();
    let mut state: HashMap<usize, State> = plan
        .nodes
        .iter()
        .map(|n| (n.task, State::Waiting))
        .collect();
    let mut reports: Vec<TaskReport> = Vec::new();
    let (stop_tx, stop_rx) = watch::channel(Stop::None);
    let mut workers: JoinSet<TaskReport> = JoinSet::new();
    let mut stopping: Option<String> = None;
    let mut interrupted = false;
    let mut ctrl_c = 0;
    // Made once, before any agent starts, so that no signal falls between two listeners.
    // SIGTERM (CI cancelling a job) and SIGHUP (the terminal closing) stop the run as Ctrl-C
    // does: the agents are in process groups of their own and would otherwise live on.
    let mut signals = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ]
    .map(|kind| signal(kind).ok());
    let mut ticker = tokio::time::interval(Duration::from_secs(1));

    // Finishing a task (done, reused, not needed) ticks it.
    let tick = |r: &mut TaskReport| {
        if r.status.is_success()
            && let Err(e) = edit::tick(&tasks_path, &tasks_display, &r.id, &r.title)
        {
            r.tick_error = Some(e.to_string());
        }
    };

    loop {
        // Settle every task whose dependencies are all finished but that cannot run.
        let mut changed = true;
        while changed {
            changed = false;
            for n in &plan.nodes {
                if state[&n.task] != State::Waiting {
                    continue;
                }
                let finished: Vec<Status> = n
                    .deps
                    .iter()
                    .filter_map(|d| match state[d] {
                        State::Finished(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                if let Some(pos) = n
                    .deps
                    .iter()
                    .position(|d| matches!(state[d], State::Finished(s) if !s.is_success()))
                {
                    let on = &list.tasks[n.deps[pos]].id;
                    let r = skipped(
                        list,
                        n.task,
                        format!("depends on task {on}, which did not finish"),
                    );
                    display.event(&Event::TaskFinished(r.clone()));
                    reports.push(r);
                    state.insert(n.task, State::Finished(Status::Skipped));
                    changed = true;
                    continue;
                }
                if finished.len() < n.deps.len() {
                    continue;
                }
                let task = &list.tasks[n.task];
                if let Some(tc) = reused.get(&n.task) {
                    let mut r = TaskReport {
                        status: Status::Reused,
                        branch: Some(git::branch_name(
                            &shared.settings.branch_prefix,
                            &shared.feature,
                            &task.id,
                        )),
                        commit: Some(tc.oid.to_string()),
                        reason: Some("finished by an earlier run".to_owned()),
                        ..skipped(list, n.task, String::new())
                    };
                    tick(&mut r);
                    display.event(&Event::TaskFinished(r.clone()));
                    reports.push(r);
                    state.insert(n.task, State::Finished(Status::Reused));
                    changed = true;
                    continue;
                }
                // A conditional task runs only if a review it waits on asked for changes;
                // a review that finished successfully approved.
                let conditional: Vec<usize> = task.condition().collect();
                if !conditional.is_empty()
                    && conditional.iter().all(|c| {
                        matches!(state.get(c), Some(State::Finished(s)) if s.is_success())
                            || list.tasks[*c].state == crate::spec::model::TaskState::Done
                    })
                {
                    let on: Vec<&str> = conditional
                        .iter()
                        .map(|&c| list.tasks[c].id.as_str())
                        .collect();
                    let mut r = TaskReport {
                        status: Status::NotNeeded,
                        reason: Some(format!("{} approved", on.join(" and "))),
                        ..skipped(list, n.task, String::new())
                    };
                    tick(&mut r);
                    display.event(&Event::TaskFinished(r.clone()));
                    reports.push(r);
                    state.insert(n.task, State::Finished(Status::NotNeeded));
                    changed = true;
                }
            }
        }

        // Start what is ready, longest remaining chain first.
        if stopping.is_none() {
            let running = state.values().filter(|s| **s == State::Running).count();
            let mut ready: Vec<usize> = plan
                .nodes
                .iter()
                .filter(|n| state[&n.task] == State::Waiting)
                .filter(|n| {
                    n.deps
                        .iter()
                        .all(|d| matches!(state[d], State::Finished(s) if s.is_success()))
                })
                .map(|n| n.task)
                .collect();
            ready.sort_by_key(|t| (std::cmp::Reverse(chain.get(t).copied().unwrap_or(0)), *t));
            for t in ready
                .into_iter()
                .take(shared.settings.max_agents.saturating_sub(running))
            {
                let job = make_job(shared, list, t);
                display.event(&Event::TaskStarted {
                    id: job.id.clone(),
                    title: job.title.clone(),
                    track: job.track.clone(),
                    branch: job.branch.clone(),
                    worktree: worktree_path(shared, &job.id),
                    log: log_path(shared, &job.id),
                });
                state.insert(t, State::Running);
                let shared = Arc::clone(shared);
                let stop = stop_rx.clone();
                workers.spawn(async move { run_job(shared, job, stop).await });
            }
        }

        if workers.is_empty() {
            break;
        }
        tokio::select! {
            joined = workers.join_next() => {
                let Some(joined) = joined else { continue };
                let mut r = match joined {
                    Ok(r) => r,
                    Err(e) => panic!("a task worker panicked: {e}"),
                };
                let index = list.find(&r.id).unwrap_or_else(|| panic!("unknown task {}", r.id));
                tick(&mut r);
                if r.status == Status::Failed && !shared.settings.continue_on_error && stopping.is_none() {
                    stopping = Some(r.id.clone());
                }
                state.insert(index, State::Finished(r.status));
                display.event(&Event::TaskFinished(r.clone()));
                reports.push(r);
            }
            () = next_signal(&mut signals) => {
                ctrl_c += 1;
                interrupted = true;
                match ctrl_c {
                    1 => {
                        stopping.get_or_insert_with(String::new);
                        display.notice("Interrupted: stopping the agents (Ctrl-C again to kill them)");
                        let _ = stop_tx.send(Stop::Terminate);
                    }
                    2 => {
                        display.notice("Killing the agents (Ctrl-C again to exit at once)");
                        let _ = stop_tx.send(Stop::Kill);
                    }
                    _ => std::process::exit(exit::INTERRUPTED),
                }
            }
            _ = ticker.tick() => display.redraw(),
        }
    }

    // What never started.
    for n in &plan.nodes {
        if state[&n.task] == State::Waiting {
            let reason = match (&stopping, interrupted) {
                (_, true) => "not started: the run was interrupted".to_owned(),
                (Some(failed), false) if !failed.is_empty() => {
                    format!(
                        "not started: the run stopped after task {failed} failed (see --continue-on-error)"
                    )
                }
                _ => "not started".to_owned(),
            };
            let r = skipped(list, n.task, reason);
            display.event(&Event::TaskFinished(r.clone()));
            reports.push(r);
        }
    }
    reports
}

/// The feature's files (tasks.md aside: its ticks and approval are the run's business) whose
/// content at `base` differs from the working tree's, or that `base` lacks.
fn spec_files_not_in_base(git: &Git, base: git2::Oid, dir: &Path, rel: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut stale: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.file_name() != "tasks.md")
        .filter(|e| {
            std::fs::read(e.path())
                .is_ok_and(|bytes| !git.same_at(base, &rel.join(e.file_name()), &bytes))
        })
        .map(|e| rel.join(e.file_name()).display().to_string())
        .collect();
    stale.sort();
    stale
}

/// The next SIGINT, SIGTERM or SIGHUP.
async fn next_signal(signals: &mut [Option<Signal>; 3]) {
    async fn recv(s: &mut Option<Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let [int, term, hup] = signals;
    tokio::select! {
        () = recv(int) => {}
        () = recv(term) => {}
        () = recv(hup) => {}
    }
}

fn worktree_path(shared: &Shared, id: &str) -> PathBuf {
    shared.state_dir.join("worktrees").join(git::ref_safe(id))
}

fn log_path(shared: &Shared, id: &str) -> PathBuf {
    shared
        .run_dir
        .join("logs")
        .join(format!("{}.log", git::ref_safe(id)))
}

fn make_job(shared: &Shared, list: &TaskList, t: usize) -> Job {
    let task = &list.tasks[t];
    let branch = git::branch_name(&shared.settings.branch_prefix, &shared.feature, &task.id);
    let mut dep_branches: Vec<String> = task
        .deps
        .iter()
        .map(|e| {
            git::branch_name(
                &shared.settings.branch_prefix,
                &shared.feature,
                &list.tasks[e.on].id,
            )
        })
        .collect();
    dep_branches.dedup();
    let prompt = prompt::build(
        list,
        t,
        &prompt::PromptContext {
            feature: &shared.feature,
            spec_dir: &shared.spec_rel,
            spec_dir_abs: &shared.spec_abs,
            roots: [&shared.root, &shared.workdir],
            branch: &branch,
        },
    );
    let code_blocks = task
        .code_blocks
        .iter()
        .filter(|b| matches!(b.lang.as_deref(), Some("sh" | "bash" | "shell")))
        .map(|b| b.code.clone())
        .collect();
    Job {
        index: t,
        id: task.id.clone(),
        title: task.title.clone(),
        track: list.track_of(t).map(str::to_owned),
        branch,
        dep_branches,
        prompt,
        code_blocks,
    }
}

/// Branch, base and worktree for a job, under the git lock.
fn prepare(shared: &Shared, job: &Job, worktree: &Path) -> Result<std::result::Result<(), String>> {
    let git = lock(&shared.git);
    let mut tips: Vec<(String, git2::Oid)> = Vec::new();
    let mut needs_base = job.dep_branches.is_empty();
    for b in &job.dep_branches {
        match git.branch_tip(b) {
            Some(tip) => tips.push((b.clone(), tip)),
            // Done before spec-exec, or not needed: its work is in the base.
            None => needs_base = true,
        }
    }
    if needs_base {
        tips.insert(0, ("base".to_owned(), shared.base));
    }
    let base = if tips.len() == 1 {
        tips[0].1
    } else {
        let message = format!(
            "{}: base of {}\n\nMerge of {}\n\n{}: {}\n{}: {}\n",
            shared.feature,
            job.id,
            tips.iter()
                .map(|(b, _)| b.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            git::FEATURE_TRAILER,
            shared.feature,
            git::BASE_TRAILER,
            job.id,
        );
        match git.merge_tips(&tips, &message)? {
            Ok(oid) => oid,
            Err(conflict) => {
                return Ok(Err(format!(
                    "the branches of its dependencies conflict in {}",
                    conflict.paths.join(", ")
                )));
            }
        }
    };
    git.set_branch(&job.branch, base, true)?;
    git.add_worktree(
        &worktree_name(&shared.feature, &job.id),
        worktree,
        &job.branch,
    )?;
    Ok(Ok(()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => panic!("a git operation panicked: {e}"),
    }
}

async fn run_job(shared: Arc<Shared>, job: Job, stop: watch::Receiver<Stop>) -> TaskReport {
    let started = Instant::now();
    let worktree = worktree_path(&shared, &job.id);
    let log = log_path(&shared, &job.id);
    let mut report = TaskReport {
        id: job.id.clone(),
        title: job.title.clone(),
        track: job.track.clone(),
        status: Status::Failed,
        branch: Some(job.branch.clone()),
        commit: None,
        files_changed: None,
        duration_secs: 0.0,
        log: Some(log.clone()),
        worktree: Some(worktree.clone()),
        reason: None,
        tick_error: None,
    };
    let finish = |mut r: TaskReport, status: Status, reason: Option<String>| {
        r.status = status;
        r.reason = reason;
        r.duration_secs = started.elapsed().as_secs_f64();
        r
    };

    let prepared = {
        let shared = Arc::clone(&shared);
        let job = job.clone();
        let worktree = worktree.clone();
        blocking(move || prepare(&shared, &job, &worktree)).await
    };
    let failed = match prepared {
        Ok(Ok(())) => None,
        Ok(Err(conflict)) => Some(conflict),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failed {
        // No agent ran: there is no log, and no worktree unless one was made.
        report.log = None;
        report.worktree = worktree.exists().then(|| worktree.clone());
        return finish(report, Status::Failed, Some(why));
    }

    let prompt_file = shared
        .run_dir
        .join("prompts")
        .join(format!("{}.md", git::ref_safe(&job.id)));
    if let Err(e) = std::fs::write(&prompt_file, &job.prompt) {
        return finish(
            report,
            Status::Failed,
            Some(format!("could not write the prompt: {e}")),
        );
    }
    let env: Vec<(String, String)> = [
        ("SPEC_EXEC_FEATURE", shared.feature.clone()),
        ("SPEC_EXEC_TASK_ID", job.id.clone()),
        ("SPEC_EXEC_TASK_TITLE", job.title.clone()),
        ("SPEC_EXEC_PROMPT_FILE", prompt_file.display().to_string()),
        (
            "SPEC_EXEC_SPEC_DIR",
            worktree.join(&shared.spec_rel).display().to_string(),
        ),
        ("SPEC_EXEC_WORKTREE", worktree.display().to_string()),
        ("SPEC_EXEC_BRANCH", job.branch.clone()),
        ("SPEC_EXEC_RUN_ID", shared.run_id.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    let argvs: Vec<Vec<String>> = match &shared.settings.agent {
        Agent::Shell => {
            if job.code_blocks.is_empty() {
                return finish(
                    report,
                    Status::Failed,
                    Some("the shell agent found no ```sh or ```bash block in this task".to_owned()),
                );
            }
            job.code_blocks
                .iter()
                .map(|code| {
                    vec![
                        "bash".into(),
                        "-euo".into(),
                        "pipefail".into(),
                        "-c".into(),
                        code.clone(),
                    ]
                })
                .collect()
        }
        Agent::Command { argv, .. } => vec![
            argv.iter()
                .map(|a| a.replace(agent::PROMPT_FILE, &prompt_file.display().to_string()))
                .collect(),
        ],
    };
    // The timeout is the task's: the shell agent's blocks share it.
    let deadline = Instant::now() + shared.settings.timeout;
    let mut outcome = Outcome::Exited(0);
    for argv in &argvs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            outcome = Outcome::TimedOut;
            break;
        }
        outcome = agent::run(
            &agent::Spawn {
                argv,
                cwd: &worktree,
                stdin: &prompt_file,
                log: &log,
                env: &env,
                timeout: left,
                grace: GRACE,
            },
            stop.clone(),
        )
        .await;
        if !outcome.success() {
            break;
        }
    }
    match outcome {
        Outcome::Exited(0) => {}
        Outcome::Interrupted => {
            return finish(report, Status::Interrupted, Some("interrupted".to_owned()));
        }
        Outcome::TimedOut => {
            let t = shared.settings.timeout;
            return finish(
                report,
                Status::Failed,
                Some(format!("timed out after {}s", t.as_secs())),
            );
        }
        other => return finish(report, Status::Failed, Some(other.describe())),
    }

    let committed = {
        let shared = Arc::clone(&shared);
        let worktree = worktree.clone();
        let message = git::commit_message(&shared.feature, &job.id, &job.title);
        blocking(move || {
            let git = lock(&shared.git);
            let sig = git.signature();
            git::commit_worktree(&worktree, &message, &sig)
        })
        .await
    };
    match committed {
        Err(e) => finish(report, Status::Failed, Some(e.to_string())),
        Ok(None) => finish(
            report,
            Status::Failed,
            Some("the agent reported success but changed nothing".to_owned()),
        ),
        Ok(Some(c)) => {
            report.commit = Some(c.oid.to_string());
            report.files_changed = Some(c.files_changed);
            let removed = {
                let shared = Arc::clone(&shared);
                let name = worktree_name(&shared.feature, &job.id);
                let worktree = worktree.clone();
                blocking(move || lock(&shared.git).remove_worktree(&name, &worktree)).await
            };
            report.worktree = None;
            if let Err(e) = removed {
                report.worktree = Some(worktree);
                report.reason = Some(format!("committed, but the worktree was not removed: {e}"));
            }
            let _ = job.index;
            let reason = report.reason.take();
            finish(report, Status::Done, reason)
        }
    }
}
