//! Running the plan: up to `max_agents` tasks at once, each on its own branch in its own
//! worktree, started in critical-path order as their dependencies finish.
//!
//! Everything that can be checked is checked before the first agent starts (the repository, the
//! base, every branch name and any branch left by an earlier run). Agents and their git work
//! run in parallel; only adding and removing worktrees is serialised (see [`git::Git`]). The
//! feature's run state and its lock are [`state`]'s. Ctrl-C stops scheduling and asks every
//! agent group to terminate; a second Ctrl-C kills them; a third exits at once.

pub mod agent;
pub mod prompt;
pub mod review;
pub mod state;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::{Error, Result, exit};
use crate::git::{self, Git};
use crate::output::{Display, Shell};
use crate::plan::{Blocked, Plan};
use crate::report::{Event, Report, Round, Status, TaskReport, Totals, Verdict};
use crate::spec::{Feature, TaskList, edit};
use agent::{Agent, Outcome, Stop};
use state::{worktree_name, worktree_prefix};

/// How long a terminated agent group gets before it is killed.
pub const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Settings {
    pub max_agents: usize,
    pub continue_on_error: bool,
    pub timeout: Duration,
    pub base: Option<String>,
    pub branch_prefix: String,
    /// The default agent: it runs every task whose agent name has no command of its own.
    pub agent: Agent,
    /// The commands of agent names (`_Agent: name_`, `> Primary Agent: name`) configured in
    /// `[….agents.<name>]`, already checked.
    pub agents: BTreeMap<String, Agent>,
    /// How many rounds a review gate runs in one run before it fails.
    pub max_review_rounds: u32,
}

impl Settings {
    /// The agent that runs a task naming `name`: that name's own command, else the default.
    pub fn agent_for(&self, name: Option<&str>) -> &Agent {
        name.and_then(|n| self.agents.get(n)).unwrap_or(&self.agent)
    }
}

/// What every task of the run shares.
struct Shared {
    feature: String,
    root: PathBuf,
    /// The repository's working tree (the workspace root or above it).
    workdir: PathBuf,
    /// The feature directory relative to the repository's working tree.
    spec_rel: PathBuf,
    spec_abs: PathBuf,
    state_dir: PathBuf,
    /// The agents' process groups, for [`stop_orphaned_agents`].
    registry: PathBuf,
    run_dir: PathBuf,
    run_id: String,
    base: git2::Oid,
    settings: Settings,
    /// Tips of the feature's task and round branches when the run started: a round branch
    /// left at one of them by an earlier run holds nothing but spec-exec's work.
    known: Vec<git2::Oid>,
    /// Which tasks are reviews, by task index.
    reviews: Vec<bool>,
}

/// What a job is to its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Task,
    /// A round of a review: its verdict decides the gate.
    Review {
        round: u32,
    },
    /// A run of a rework for `review`, which asked for changes.
    Rework {
        review: usize,
        run: u32,
    },
}

impl Role {
    fn round(self) -> Option<u32> {
        match self {
            Role::Task => None,
            Role::Review { round } => Some(round),
            Role::Rework { run, .. } => Some(run),
        }
    }
}

/// One task (or one round of a review gate) handed to a worker.
#[derive(Debug, Clone)]
struct Job {
    index: usize,
    id: String,
    title: String,
    track: Option<String>,
    role: Role,
    /// The name of its worktree, log and prompt: the id, with `.round-N` after the first round.
    run_name: String,
    branch: String,
    /// Branches of the dependencies (done before or during this run).
    dep_branches: Vec<String>,
    /// Start from this branch's tip instead (a rework on its review, a review on its rework).
    base_branch: Option<String>,
    /// A review's verdict file, relative to the worktree.
    verdict_file: Option<String>,
    prompt: String,
    code_blocks: Vec<String>,
    /// What runs it: its agent name's command, else the default agent.
    agent: Agent,
}

/// What a worker hands back.
#[derive(Debug)]
struct JobResult {
    report: TaskReport,
    job: Job,
    /// A review's verdict and findings.
    verdict: Option<review::Read>,
}

impl Shared {
    /// A handle on the repository for one operation: jobs do not queue behind each other's
    /// checkouts and commits. A job's git work touches its own branch, worktree and index, and
    /// objects, which git writes safely side by side; what changes the set of worktrees is
    /// serialised inside [`Git`].
    fn git(&self) -> Result<Git> {
        Git::open(&self.workdir)
    }
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

    // Branch names were checked with the list (`state::run_diagnostics`): one per task.
    let branch_of =
        |i: usize| git::branch_name(&settings.branch_prefix, &feature.name, &list.tasks[i].id);

    let (state, notes) = state::RunState::open(
        &git,
        &feature.name,
        &settings.branch_prefix,
        &target_dir.join("spec-exec").join(&feature.name),
        root,
    )?;
    for note in &notes {
        shell.status(note.verb, &note.text);
    }
    let state_dir = state.dir().to_path_buf();
    let registry = state.registry();

    // Branches left by earlier runs: finished ones are reused, unfinished ones are reset when
    // that loses nothing; anything else stops the run before it starts.
    // A review's rounds (and a rework's runs) are on round branches too: a review is reused
    // only when its last recorded round approved; otherwise it runs again on top of it.
    let reviews = review::reviews(list);
    let mut reused: HashMap<usize, git::TaskCommit> = HashMap::new();
    let mut history: HashMap<usize, Vec<review::Recorded>> = HashMap::new();
    let mut problems = Vec::new();
    let mut tips: Vec<(String, git2::Oid)> = list
        .leaves()
        .filter_map(|i| git.branch_tip(&branch_of(i)).map(|t| (branch_of(i), t)))
        .collect();
    if let Ok(repo) = git2::Repository::open(git.workdir().unwrap_or_else(|| root.to_path_buf())) {
        for node in &plan.nodes {
            let id = &list.tasks[node.task].id;
            let recorded =
                review::recorded_rounds(&repo, &settings.branch_prefix, &feature.name, id);
            tips.extend(recorded.iter().skip(1).map(|r| (r.branch.clone(), r.oid)));
            if !recorded.is_empty() {
                history.insert(node.task, recorded);
            }
        }
    }
    for node in &plan.nodes {
        let id = &list.tasks[node.task].id;
        let branch = branch_of(node.task);
        if git.branch_tip(&branch).is_none() {
            continue;
        }
        match git.task_commit(&branch) {
            Some(tc) if &tc.task == id && reviews[node.task] => {
                let last = history.get(&node.task).and_then(|h| h.last());
                if let Some(last) = last.filter(|l| l.verdict == Some(Verdict::Approved)) {
                    reused.insert(
                        node.task,
                        git::TaskCommit {
                            oid: last.oid,
                            task: tc.task,
                        },
                    );
                }
            }
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
                "{} {} already {}, with commits spec-exec did not make or checked out in a working tree",
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
                "spec-exec never moves such a branch. If its commits finish the task (a fix made in the worktree kept for inspection, say), tick the task `[x]` in tasks.md: the run then builds on that branch. Otherwise keep the work elsewhere (`git branch -m {0} {0}-mine`, after `git worktree remove` of any worktree that has it checked out), or set another `branch-prefix` in [workspace.metadata.spec-exec]",
                problems[0],
            ),
        ));
    }
    // Worktrees of this feature left by earlier runs (failed or interrupted tasks).
    let run_id = run_id();
    for note in state.clean_worktrees(&git, &worktree_prefix(&feature.name), &run_id, root)? {
        shell.status(note.verb, &note.text);
    }

    let run_dir = state.runs().join(&run_id);
    for sub in ["logs", "prompts"] {
        let d = run_dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
    }

    let shared = Arc::new(Shared {
        feature: feature.name.clone(),
        root: root.to_path_buf(),
        workdir: workdir.clone(),
        spec_rel,
        spec_abs: feature.dir.clone(),
        state_dir,
        registry: registry.clone(),
        run_dir: run_dir.clone(),
        run_id: run_id.clone(),
        base,
        settings: settings.clone(),
        known: tips.iter().map(|&(_, t)| t).collect(),
        reviews,
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
    let mut reports = runtime.block_on(schedule(
        &shared,
        list,
        plan,
        &Earlier { reused, history },
        &mut display,
    ));
    // Every agent has ended: none is left for a later run to stop.
    let _ = std::fs::remove_file(&registry);

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

fn skipped(list: &TaskList, t: usize, reason: String) -> TaskReport {
    let task = &list.tasks[t];
    TaskReport {
        reason: Some(reason),
        ..TaskReport::new(
            task.id.clone(),
            task.title.clone(),
            list.track_of(t).map(str::to_owned),
            Status::Skipped,
        )
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

/// What earlier runs left: finished tasks' commits, and the rounds recorded on round branches.
#[derive(Debug, Default)]
struct Earlier {
    reused: HashMap<usize, git::TaskCommit>,
    history: HashMap<usize, Vec<review::Recorded>>,
}

/// A review gate's loop so far.
#[derive(Debug, Default)]
struct Gate {
    /// The last round's number (rounds recorded by earlier runs count).
    round: u32,
    /// Rounds run in this run (the limit counts these).
    this_run: u32,
    rounds: Vec<Round>,
    duration: f64,
}

async fn schedule(
    shared: &Arc<Shared>,
    list: &TaskList,
    plan: &Plan,
    earlier: &Earlier,
    display: &mut Display<'_>,
) -> Vec<TaskReport> {
    let chain = remaining_chain(plan);
    let tasks_path = shared.spec_abs.join("tasks.md");
    let tasks_display = list.source.display_path.clone();
    let reused = &earlier.reused;
    let mut state: HashMap<usize, State> = plan
        .nodes
        .iter()
        .map(|n| (n.task, State::Waiting))
        .collect();
    let mut reports: Vec<TaskReport> = Vec::new();
    let (stop_tx, stop_rx) = watch::channel(Stop::None);
    let mut workers: JoinSet<JobResult> = JoinSet::new();
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

    // Review gates: each review's loop, the branch its dependents start from (its last
    // round's), the runs of each rework, and the rounds waiting for an agent.
    let mut gates: HashMap<usize, Gate> = HashMap::new();
    let mut final_branch: HashMap<usize, String> = HashMap::new();
    let mut rework_runs: HashMap<usize, Vec<Round>> = HashMap::new();
    let mut rework_last: HashMap<usize, TaskReport> = HashMap::new();
    let mut rework_count: HashMap<usize, u32> = HashMap::new();
    let mut busy: HashMap<usize, usize> = HashMap::new();
    let mut queue: VecDeque<Job> = VecDeque::new();
    for (&t, recorded) in &earlier.history {
        let Some(last) = recorded.last() else {
            continue;
        };
        if shared.reviews[t] {
            final_branch.insert(t, last.branch.clone());
            gates.insert(
                t,
                Gate {
                    round: last.round,
                    rounds: recorded
                        .iter()
                        .map(|r| Round {
                            task: list.tasks[t].id.clone(),
                            round: r.round,
                            branch: r.branch.clone(),
                            commit: Some(r.oid.to_string()),
                            verdict: r.verdict,
                            reused: true,
                        })
                        .collect(),
                    ..Gate::default()
                },
            );
        } else {
            rework_count.insert(t, last.round);
            final_branch.insert(t, last.branch.clone());
        }
    }

    // Finishing a task (done, reused, not needed) ticks it.
    let tick = |r: &mut TaskReport| {
        if r.status.is_success()
            && let Err(e) = edit::tick(
                &tasks_path,
                &tasks_display,
                &r.id,
                &r.title,
                !plan.left_out.is_empty(),
            )
        {
            r.tick_error = Some(e.to_string());
        }
    };
    // A task's end: ticked when it succeeded, reported, and what depends on it can go on.
    macro_rules! conclude {
        ($report:expr) => {{
            let mut r: TaskReport = $report;
            let index = list
                .find(&r.id)
                .unwrap_or_else(|| panic!("unknown task {}", r.id));
            tick(&mut r);
            if r.status == Status::Failed
                && !shared.settings.continue_on_error
                && stopping.is_none()
            {
                stopping = Some(r.id.clone());
            }
            state.insert(index, State::Finished(r.status));
            display.event(&Event::TaskFinished(r.clone()));
            reports.push(r);
        }};
    }

    loop {
        // Settle every task whose dependencies are all finished but that cannot run.
        let mut changed = true;
        while changed {
            changed = false;
            for n in &plan.nodes {
                if state[&n.task] != State::Waiting || busy.get(&n.task).is_some_and(|&b| b > 0) {
                    continue;
                }
                let task = &list.tasks[n.task];
                let finished: Vec<Status> = n
                    .deps
                    .iter()
                    .filter_map(|d| match state[d] {
                        State::Finished(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                let failed_dep = n
                    .deps
                    .iter()
                    .position(|d| matches!(state[d], State::Finished(s) if !s.is_success()));
                // A rework that ran: done when every review it serves passed.
                if let Some(last) = rework_last.get(&n.task) {
                    let runs = rework_runs.get(&n.task).cloned().unwrap_or_default();
                    let mut r = TaskReport {
                        rounds: runs,
                        ..last.clone()
                    };
                    if let Some(pos) = failed_dep {
                        let on = &list.tasks[n.deps[pos]].id;
                        r.status = Status::Failed;
                        r.reason = Some(format!(
                            "it ran, but task {on} did not pass, so the rework is not done"
                        ));
                    } else if finished.len() == n.deps.len() {
                        r.status = Status::Done;
                        r.reason = None;
                    } else {
                        continue;
                    }
                    tick(&mut r);
                    display.event(&Event::TaskFinished(r.clone()));
                    reports.push(r.clone());
                    state.insert(n.task, State::Finished(r.status));
                    changed = true;
                    continue;
                }
                if let Some(pos) = failed_dep {
                    let on = &list.tasks[n.deps[pos]].id;
                    conclude!(skipped(
                        list,
                        n.task,
                        format!("depends on task {on}, which did not finish"),
                    ));
                    changed = true;
                    continue;
                }
                if finished.len() < n.deps.len() {
                    continue;
                }
                if let Some(tc) = reused.get(&n.task) {
                    let gate = gates.get(&n.task);
                    let r = TaskReport {
                        status: Status::Reused,
                        branch: Some(final_branch.get(&n.task).cloned().unwrap_or_else(|| {
                            git::branch_name(
                                &shared.settings.branch_prefix,
                                &shared.feature,
                                &task.id,
                            )
                        })),
                        commit: Some(tc.oid.to_string()),
                        reason: Some("finished by an earlier run".to_owned()),
                        verdict: shared.reviews[n.task].then_some(Verdict::Approved),
                        rounds: gate.map(|g| g.rounds.clone()).unwrap_or_default(),
                        ..skipped(list, n.task, String::new())
                    };
                    conclude!(r);
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
                    conclude!(TaskReport {
                        status: Status::NotNeeded,
                        reason: Some(format!("{} approved", on.join(" and "))),
                        ..skipped(list, n.task, String::new())
                    });
                    changed = true;
                }
            }
        }

        // Start the rounds of running gates first, then what is ready, longest remaining
        // chain first.
        let mut free = shared.settings.max_agents.saturating_sub(workers.len());
        let start = |job: Job, workers: &mut JoinSet<JobResult>, display: &mut Display<'_>| {
            display.event(&Event::TaskStarted {
                id: job.id.clone(),
                title: job.title.clone(),
                track: job.track.clone(),
                branch: job.branch.clone(),
                worktree: worktree_path(shared, &job.run_name),
                log: log_path(shared, &job.run_name),
                round: job.role.round(),
            });
            let shared = Arc::clone(shared);
            let stop = stop_rx.clone();
            workers.spawn(async move { run_job(shared, job, stop).await });
        };
        while !interrupted && free > 0 {
            let Some(job) = queue.pop_front() else { break };
            start(job, &mut workers, display);
            free -= 1;
        }
        if stopping.is_none() {
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
            for t in ready.into_iter().take(free) {
                let mut job = make_job(shared, list, t, 1, None, &final_branch);
                if shared.reviews[t] {
                    // A review recorded by an earlier run without approval runs again, on top
                    // of its last round (and of a rework made after it).
                    let gate = gates.entry(t).or_default();
                    if gate.round > 0 {
                        let base = resume_base(shared, list, t, &earlier.history);
                        let last = earlier.history.get(&t).and_then(|h| h.last());
                        // Its last round asked for changes and no rework came after it: the
                        // rework runs first, with that round's findings, then the review.
                        let rework = waiting_rework(plan, list, &state, t);
                        if let (Some(last), Some(w)) = (last, rework)
                            && last.verdict == Some(Verdict::RequiresChanges)
                            && base == last.branch
                        {
                            let file = review::verdict_file(list, t);
                            let findings = git2::Repository::open(&shared.workdir)
                                .ok()
                                .and_then(|repo| {
                                    let tree = repo.find_commit(last.oid).ok()?.tree().ok()?;
                                    let blob = git::blob_at(&repo, &tree, Path::new(&file))?;
                                    Some(String::from_utf8_lossy(&blob).into_owned())
                                })
                                .unwrap_or_else(|| {
                                    "(the findings were in the review's output in an earlier run)"
                                        .to_owned()
                                });
                            let run = next_rework_run(&mut rework_count, &mut busy, w);
                            let findings = Findings {
                                review: t,
                                round: last.round,
                                source: &file,
                                text: &findings,
                            };
                            let rw = rework_job(
                                shared,
                                list,
                                w,
                                run,
                                last.branch.clone(),
                                &findings,
                                &final_branch,
                            );
                            state.insert(t, State::Running);
                            start(rw, &mut workers, display);
                            continue;
                        }
                        gate.round += 1;
                        job = review_round(shared, list, t, gate.round, base, None, &final_branch);
                    } else {
                        gate.round = 1;
                    }
                    gate.this_run += 1;
                }
                state.insert(t, State::Running);
                start(job, &mut workers, display);
            }
        }

        if workers.is_empty() {
            break;
        }
        tokio::select! {
            joined = workers.join_next() => {
                let Some(joined) = joined else { continue };
                let JobResult { mut report, job, verdict } = match joined {
                    Ok(r) => r,
                    Err(e) => panic!("a task worker panicked: {e}"),
                };
                let index = job.index;
                match job.role {
                    Role::Task => conclude!(report),
                    Role::Review { round } => {
                        let gate = gates.entry(index).or_default();
                        gate.duration += report.duration_secs;
                        let Some(review::Read { verdict, findings, source }) = verdict.filter(|_| report.status == Status::Done) else {
                            report.rounds = gate.rounds.clone();
                            report.duration_secs = gate.duration;
                            conclude!(report);
                            continue;
                        };
                        gate.rounds.push(Round {
                            task: job.id.clone(),
                            round,
                            branch: job.branch.clone(),
                            commit: report.commit.clone(),
                            verdict: Some(verdict),
                            reused: false,
                        });
                        final_branch.insert(index, job.branch.clone());
                        display.event(&Event::ReviewVerdict {
                            id: job.id.clone(),
                            round,
                            branch: job.branch.clone(),
                            commit: report.commit.clone(),
                            verdict,
                            log: log_path(shared, &job.run_name),
                        });
                        report.verdict = Some(verdict);
                        report.rounds = gate.rounds.clone();
                        report.duration_secs = gate.duration;
                        if verdict == Verdict::Approved {
                            conclude!(report);
                            continue;
                        }
                        let max = shared.settings.max_review_rounds;
                        let rework = waiting_rework(plan, list, &state, index);
                        let why = if interrupted {
                            report.status = Status::Interrupted;
                            Some("interrupted: it requires changes, and its rework did not start".to_owned())
                        } else if gate.this_run >= max {
                            Some(format!(
                                "still requires changes after {} review round{} (the limit, --max-review-rounds {max})",
                                gate.this_run,
                                if gate.this_run == 1 { "" } else { "s" }
                            ))
                        } else if rework.is_none() {
                            Some(format!(
                                "requires changes, and no rework task can run for it (a task with `_Dependencies: {} (failed)_` in this run)",
                                job.id
                            ))
                        } else {
                            None
                        };
                        if let Some(why) = why {
                            if report.status != Status::Interrupted {
                                report.status = Status::Failed;
                            }
                            report.reason = Some(why);
                            conclude!(report);
                            continue;
                        }
                        let w = rework.unwrap_or(index);
                        let run = next_rework_run(&mut rework_count, &mut busy, w);
                        let findings = Findings { review: index, round, source: &source, text: &findings };
                        queue.push_back(rework_job(shared, list, w, run, job.branch.clone(), &findings, &final_branch));
                    }
                    Role::Rework { review: r, run } => {
                        if let Some(b) = busy.get_mut(&index) {
                            *b = b.saturating_sub(1);
                        }
                        let gate = gates.entry(r).or_default();
                        gate.duration += report.duration_secs;
                        let entry = Round {
                            task: job.id.clone(),
                            round: run,
                            branch: job.branch.clone(),
                            commit: report.commit.clone(),
                            verdict: None,
                            reused: false,
                        };
                        if report.status == Status::Done {
                            gate.rounds.push(entry.clone());
                            rework_runs.entry(index).or_default().push(entry);
                            final_branch.insert(index, job.branch.clone());
                            display.event(&Event::ReworkFinished {
                                id: job.id.clone(),
                                review: list.tasks[r].id.clone(),
                                round: run,
                                branch: job.branch.clone(),
                                commit: report.commit.clone(),
                                files_changed: report.files_changed,
                                duration_secs: report.duration_secs,
                                log: log_path(shared, &job.run_name),
                            });
                            if let Some(before) = rework_last.get(&index) {
                                report.duration_secs += before.duration_secs;
                            }
                            rework_last.insert(index, report);
                            if interrupted {
                                let mut rr = gate_report(list, r, gate, &final_branch);
                                rr.status = Status::Interrupted;
                                rr.reason = Some("interrupted between review rounds".to_owned());
                                conclude!(rr);
                            } else {
                                gate.round += 1;
                                gate.this_run += 1;
                                let next = review_round(
                                    shared, list, r, gate.round, job.branch.clone(), Some(&job.id), &final_branch,
                                );
                                queue.push_back(next);
                            }
                        } else {
                            let status = report.status;
                            let mut runs = rework_runs.remove(&index).unwrap_or_default();
                            runs.push(entry);
                            report.rounds = runs;
                            rework_last.remove(&index);
                            let mut rr = gate_report(list, r, gate, &final_branch);
                            rr.status = status;
                            rr.reason = Some(format!("its rework {} {}", job.id, status.word()));
                            conclude!(report);
                            conclude!(rr);
                        }
                    }
                }
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

    // Rounds of gates that never started (the run was interrupted): the gate did not finish.
    while let Some(job) = queue.pop_front() {
        let r = match job.role {
            Role::Rework { review, .. } => review,
            _ => job.index,
        };
        if state.get(&r) == Some(&State::Running) {
            let gate = gates.entry(r).or_default();
            let mut rr = gate_report(list, r, gate, &final_branch);
            rr.status = Status::Interrupted;
            rr.reason = Some("interrupted between review rounds".to_owned());
            conclude!(rr);
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

/// A review gate's report when it ends between rounds.
fn gate_report(
    list: &TaskList,
    r: usize,
    gate: &Gate,
    final_branch: &HashMap<usize, String>,
) -> TaskReport {
    let last_review = gate.rounds.iter().rev().find(|x| x.verdict.is_some());
    TaskReport {
        status: Status::Failed,
        branch: final_branch.get(&r).cloned(),
        commit: last_review.and_then(|x| x.commit.clone()),
        duration_secs: gate.duration,
        verdict: last_review.and_then(|x| x.verdict),
        rounds: gate.rounds.clone(),
        ..skipped(list, r, String::new())
    }
}

/// Where a review recorded by an earlier run without approval starts again: its last round,
/// or a rework's later run made on top of it.
fn resume_base(
    shared: &Shared,
    list: &TaskList,
    r: usize,
    history: &HashMap<usize, Vec<review::Recorded>>,
) -> String {
    let last = history
        .get(&r)
        .and_then(|h| h.last())
        .unwrap_or_else(|| panic!("a resumed review has a recorded round"));
    let Ok(repo) = git2::Repository::open(&shared.workdir) else {
        return last.branch.clone();
    };
    let reworks = list
        .leaves()
        .filter(|&w| list.tasks[w].condition().any(|c| c == r));
    let mut best = (last.oid, last.branch.clone());
    for w in reworks {
        for run in history.get(&w).into_iter().flatten() {
            if repo.graph_descendant_of(run.oid, best.0).unwrap_or(false) {
                best = (run.oid, run.branch.clone());
            }
        }
    }
    best.1
}

/// The rework that review `review` would start: a task of the plan not yet started whose
/// condition names the review.
fn waiting_rework(
    plan: &Plan,
    list: &TaskList,
    state: &HashMap<usize, State>,
    review: usize,
) -> Option<usize> {
    plan.nodes
        .iter()
        .map(|n| n.task)
        .find(|&w| state[&w] == State::Waiting && list.tasks[w].condition().any(|c| c == review))
}

/// What a rework answers: review `review`'s round `round`, whose findings are `text`, read
/// from `source`.
struct Findings<'a> {
    review: usize,
    round: u32,
    source: &'a str,
    text: &'a str,
}

/// The number of rework `w`'s next run, counted as running.
fn next_rework_run(
    rework_count: &mut HashMap<usize, u32>,
    busy: &mut HashMap<usize, usize>,
    w: usize,
) -> u32 {
    let run = rework_count.entry(w).or_insert(0);
    *run += 1;
    *busy.entry(w).or_default() += 1;
    *run
}

/// Run `run` of rework `w`, on top of `base`, with the findings it answers in its prompt.
fn rework_job(
    shared: &Shared,
    list: &TaskList,
    w: usize,
    run: u32,
    base: String,
    findings: &Findings<'_>,
    final_branch: &HashMap<usize, String>,
) -> Job {
    let mut rw = make_job(shared, list, w, run, None, final_branch);
    rw.role = Role::Rework {
        review: findings.review,
        run,
    };
    rw.base_branch = Some(base);
    rw.prompt.push_str(&review::rework_prompt(
        &list.tasks[findings.review].id,
        findings.round,
        findings.source,
        findings.text,
    ));
    rw
}

/// Round `round` (after the first) of review `r`, on top of `base`.
fn review_round(
    shared: &Shared,
    list: &TaskList,
    r: usize,
    round: u32,
    base: String,
    reworked_by: Option<&str>,
    final_branch: &HashMap<usize, String>,
) -> Job {
    let mut job = make_job(shared, list, r, round, reworked_by, final_branch);
    job.base_branch = Some(base);
    job
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

fn make_prompt(shared: &Shared, list: &TaskList, t: usize, branch: &str) -> String {
    prompt::build(
        list,
        t,
        &prompt::PromptContext {
            feature: &shared.feature,
            spec_dir: &shared.spec_rel,
            spec_dir_abs: &shared.spec_abs,
            roots: [&shared.root, &shared.workdir],
            branch,
        },
    )
}

/// A task's job, run `run` of it (1 but for a review's later rounds and a rework's later
/// runs, which are on `.round-N` branches): from its dependencies' branches (a review gate's
/// last round's branch when it has several). The prompt is made once, for the branch it runs
/// on; `reworked_by` is the rework a review's round comes after.
fn make_job(
    shared: &Shared,
    list: &TaskList,
    t: usize,
    run: u32,
    reworked_by: Option<&str>,
    final_branch: &HashMap<usize, String>,
) -> Job {
    let task = &list.tasks[t];
    let branch = review::round_branch(
        &shared.settings.branch_prefix,
        &shared.feature,
        &task.id,
        run,
    );
    let mut dep_branches: Vec<String> = task
        .deps
        .iter()
        .map(|e| {
            final_branch.get(&e.on).cloned().unwrap_or_else(|| {
                git::branch_name(
                    &shared.settings.branch_prefix,
                    &shared.feature,
                    &list.tasks[e.on].id,
                )
            })
        })
        .collect();
    dep_branches.dedup();
    let mut prompt = make_prompt(shared, list, t, &branch);
    let (role, verdict_file) = if shared.reviews[t] {
        let file = review::verdict_file(list, t);
        prompt.push_str(&review::review_prompt(&file, run, reworked_by));
        (Role::Review { round: run }, Some(file))
    } else {
        (Role::Task, None)
    };
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
        role,
        run_name: review::round_name(&task.id, run),
        branch,
        dep_branches,
        base_branch: None,
        verdict_file,
        prompt,
        code_blocks,
        agent: shared.settings.agent_for(list.agent_of(t)).clone(),
    }
}

/// Branch, base and worktree for a job, under the git lock.
fn prepare(shared: &Shared, job: &Job, worktree: &Path) -> Result<std::result::Result<(), String>> {
    let git = shared.git()?;
    let base = match job_base(shared, &git, job)? {
        Ok(base) => base,
        Err(why) => return Ok(Err(why)),
    };
    git.set_branch(&job.branch, base, true)?;
    git.add_worktree(
        &worktree_name(&shared.feature, &job.run_name),
        worktree,
        &job.branch,
    )?;
    Ok(Ok(()))
}

/// The commit a job starts from: the branch it is told to start from (a review round, a
/// rework), else its dependencies' tips (merged when several), else the base.
fn job_base(
    shared: &Shared,
    git: &Git,
    job: &Job,
) -> Result<std::result::Result<git2::Oid, String>> {
    if let Some(from) = &job.base_branch {
        let Some(base) = git.branch_tip(from) else {
            return Ok(Err(format!("the branch `{from}` it starts from is gone")));
        };
        // A round branch left by an earlier run is moved only if that loses nothing.
        let mut known = shared.known.clone();
        known.push(base);
        if !git.only_spec_exec_work(&job.branch, &known, &worktree_prefix(&shared.feature)) {
            return Ok(Err(format!(
                "branch `{}` already exists, with commits spec-exec did not make (delete or rename it)",
                job.branch
            )));
        }
        return Ok(Ok(base));
    }
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
    if tips.len() == 1 {
        return Ok(Ok(tips[0].1));
    }
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
    Ok(git.merge_tips(&tips, &message)?.map_err(|conflict| {
        format!(
            "the branches of its dependencies conflict in {}",
            conflict.paths.join(", ")
        )
    }))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => panic!("a git operation panicked: {e}"),
    }
}

async fn run_job(shared: Arc<Shared>, job: Job, stop: watch::Receiver<Stop>) -> JobResult {
    let (report, verdict) = run_job_inner(&shared, &job, stop).await;
    JobResult {
        report,
        job,
        verdict,
    }
}

async fn run_job_inner(
    shared: &Arc<Shared>,
    job: &Job,
    stop: watch::Receiver<Stop>,
) -> (TaskReport, Option<review::Read>) {
    let started = Instant::now();
    let worktree = worktree_path(shared, &job.run_name);
    let log = log_path(shared, &job.run_name);
    let mut report = TaskReport {
        branch: Some(job.branch.clone()),
        log: Some(log.clone()),
        worktree: Some(worktree.clone()),
        agent: Some(job.agent.name().to_owned()),
        ..TaskReport::new(
            job.id.clone(),
            job.title.clone(),
            job.track.clone(),
            Status::Failed,
        )
    };
    let finish = |mut r: TaskReport, status: Status, reason: Option<String>| {
        r.status = status;
        r.reason = reason;
        r.duration_secs = started.elapsed().as_secs_f64();
        (r, None)
    };

    let prepared = {
        let shared = Arc::clone(shared);
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

    // tasks.md as the worktree got it: the agent is not to change it (see the commit below).
    let tasks_md_as_given = std::fs::read(worktree.join(shared.spec_rel.join("tasks.md"))).ok();
    let prompt_file = shared
        .run_dir
        .join("prompts")
        .join(format!("{}.md", job.run_name));
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

    let argvs: Vec<Vec<String>> = match &job.agent {
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
                    // `-x`: the log shows each command, so a failure says which one.
                    vec![
                        "bash".into(),
                        "-xeuo".into(),
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
    let agent_started = std::time::SystemTime::now();
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
                registry: Some((&shared.registry, &shared.run_id)),
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

    // A review's verdict: its file, else its output. No verdict, no review.
    let read = match &job.verdict_file {
        Some(file) => match review::read_verdict(&worktree, file, &log, agent_started) {
            Some(read) => Some(read),
            None => {
                return finish(
                    report,
                    Status::Failed,
                    Some(format!(
                        "no verdict found in `{file}` or the agent's output (a review ends with APPROVED or REQUIRES CHANGES)"
                    )),
                );
            }
        },
        None => None,
    };
    let committed = {
        let shared = Arc::clone(shared);
        let worktree = worktree.clone();
        let round = job.role.round().unwrap_or(1);
        let message = review::commit_message(
            &shared.feature,
            &job.id,
            &job.title,
            round,
            read.as_ref().map(|r| r.verdict),
        );
        let is_review = read.is_some();
        let tasks_md = shared.spec_rel.join("tasks.md");
        let kept = log.with_extension("tasks.md");
        let log = log.clone();
        blocking(move || {
            let sig = shared.git()?.signature();
            // tasks.md is spec-exec's to tick, in the user's tree: an agent that ticked it
            // in the worktree anyway (some spec tools' prompts say to) would make every join
            // of two such branches conflict. What it wrote there is kept beside its log.
            let before = std::fs::read(worktree.join(&tasks_md)).ok();
            if before != tasks_md_as_given {
                git::restore_from_head(&worktree, &tasks_md)?;
            }
            if let Some(before) = before
                && std::fs::read(worktree.join(&tasks_md)).ok().as_ref() != Some(&before)
            {
                let _ = std::fs::write(&kept, &before);
                let note = format!(
                    "\nspec-exec: this agent changed tasks.md; the change is not committed (spec-exec ticks tasks.md itself). Its version is kept in {}\n",
                    kept.display()
                );
                let _ = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, note.as_bytes()));
            }
            review::commit(&worktree, &message, &sig, is_review)
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
                let shared = Arc::clone(shared);
                let name = worktree_name(&shared.feature, &job.run_name);
                let worktree = worktree.clone();
                blocking(move || shared.git()?.remove_worktree(&name, &worktree)).await
            };
            report.worktree = None;
            if let Err(e) = removed {
                report.worktree = Some(worktree);
                report.reason = Some(format!("committed, but the worktree was not removed: {e}"));
            }
            let reason = report.reason.take();
            report.verdict = read.as_ref().map(|r| r.verdict);
            let (report, _) = finish(report, Status::Done, reason);
            (report, read)
        }
    }
}
