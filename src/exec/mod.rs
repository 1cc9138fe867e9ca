//! Running the plan: up to `max_agents` tasks at once, each on its own branch in its own
//! worktree, started in critical-path order as their dependencies finish.
//!
//! Everything that can be checked is checked before the first agent starts (the repository, the
//! base, every branch name and any branch left by an earlier run). Repository-level git work is
//! serialised behind one lock; agents run in parallel. Ctrl-C stops scheduling and asks every
//! agent group to terminate; a second Ctrl-C kills them; a third exits at once.

mod driver;
mod gate;
pub mod job;
mod land;
use job::integrate as land_tip;
pub use land::land;
pub mod process;
pub mod prompt;
pub mod remote;
pub mod review;
pub mod scheduler;
pub mod slots;
pub mod state;
pub mod stream;
pub mod task_mode;
pub use task_mode::output_key;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::agents::Agent;
use crate::error::{Error, Result, exit};
use crate::git::{self, Git};
use crate::output::{Display, JsonLines, Shell};
use crate::plan::{Blocked, Plan};
use crate::report::junit::JunitFile;
use crate::report::sink::{ReportFiles, Sink as _, Sinks};
use crate::report::{Event, Status, TaskReport, Totals, Verdict};
use crate::source::display_path;
use crate::spec::{Feature, TaskList, edit};
use driver::{MakeJob, Tick};
use job::{Ctx, Job};
use scheduler::{Earlier, Naming, Scheduler, Start};
use state::worktree_prefix;

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
    /// How long a terminated agent group gets before it is killed.
    pub kill_grace: Duration,
    /// What verifies each task's work before it is committed (none: not verified).
    pub verify: Vec<crate::config::VerifyCommand>,
    /// `verify` is the default, which applies only where the tree has a Cargo workspace.
    pub verify_default: bool,
    /// How many times an agent runs for one step before the task fails.
    pub max_attempts: u32,
    /// Conflicts between dependencies' branches go to the agent (else the task fails).
    pub resolve: bool,
    /// The feature's integration branch.
    pub integration_branch: String,
    /// No new task starts once the agents' reported spend reaches it (US dollars).
    pub max_cost: Option<f64>,
    /// What an agent's usage or rate limit does to the run.
    pub on_rate_limit: scheduler::OnRateLimit,
    /// How long the run waits for limits to reset, in all, before it stops on one.
    pub max_wait: Duration,
    /// The slots share one target directory (`shared-target`).
    pub shared_target: bool,
    /// How many worktree slots may be made at once.
    pub slot_makers: usize,
    /// Where to write the run's JUnit report (`--junit`), absolute.
    pub junit: Option<PathBuf>,
    /// `--push`: each task's branches go to the remote after its commit, with a lease on what
    /// the fetch saw there.
    pub push: Option<remote::Fetched>,
    /// `--task`: only these tasks, one step of a review gate, no ticks, no integration.
    pub task_mode: Option<task_mode::TaskMode>,
}

impl Settings {
    /// The agent that runs a task naming `name`: that name's own command, else the default.
    pub fn agent_for(&self, name: Option<&str>) -> &Agent {
        name.and_then(|n| self.agents.get(n)).unwrap_or(&self.agent)
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
    not_in_own_worktree(&git, root)?;
    let workdir = git.workdir().unwrap_or_else(|| root.to_path_buf());
    let base = git.resolve(settings.base.as_deref().unwrap_or("HEAD"))?;
    let spec_rel = spec_dir_in(feature, &workdir)?;
    warn_spec_not_in_base(shell, &git, base, feature, &spec_rel, &settings);

    let state = open_state(shell, &git, &feature.name, &settings, target_dir, root)?;
    let registry = state.registry();

    let (mut earlier, known) = read_earlier(&git, list, plan, &settings, &feature.name, base)?;
    // `--task`: the selected tasks whose dependencies are done, and only those.
    let selection;
    let mut settled = Vec::new();
    let plan = match &settings.task_mode {
        None => plan,
        Some(mode) => {
            let checked = select_tasks(
                &git,
                list,
                plan,
                &mut earlier,
                mode,
                &settings,
                &feature.name,
                &workdir,
            )?;
            settled = checked.settled;
            if checked.run.is_empty() {
                return Ok(task_mode_settled(shell, list, &feature.name, &settled));
            }
            selection = plan.only(&checked.run);
            &selection
        }
    };
    let run_id = run_id();
    let slots = open_slots(shell, &git, &state, &feature.name, &settings, &run_id, root)?;
    let run_dir = make_run_dir(&state, &run_id)?;
    remove_stale_tasks_copies(shell, feature, root);
    let prompts = prompt::Loaded::load(
        list,
        &feature.name,
        &spec_rel,
        &feature.dir,
        [root, &workdir],
    );
    let (progress, progress_rx) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        registry: registry.clone(),
        known,
        slots,
        progress: Some(progress),
        ..context(&Where {
            started,
            feature,
            root,
            workdir: &workdir,
            spec_rel,
            state: &state,
            run_dir: run_dir.clone(),
            run_id: run_id.clone(),
            base,
            settings: &settings,
        })
    });
    Ok(runtime()?.block_on(run_jobs(
        shell,
        &ctx,
        list,
        plan,
        &settings,
        Given {
            earlier,
            progress: progress_rx,
            settled,
        },
        &prompts,
    )))
}

/// The feature directory, relative to the repository's working tree.
fn spec_dir_in(feature: &Feature, workdir: &Path) -> Result<PathBuf> {
    feature
        .dir
        .strip_prefix(workdir)
        .map(Path::to_path_buf)
        .map_err(|_| {
            Error::user(format!(
                "the feature directory `{}` is not inside the git repository at `{}`",
                feature.dir.display(),
                workdir.display()
            ))
        })
}

/// Agents work from the base commit: spec files that are not committed there as they are
/// here do not reach them. Warns of those.
fn warn_spec_not_in_base(
    shell: &Shell,
    git: &Git,
    base: git2::Oid,
    feature: &Feature,
    spec_rel: &Path,
    settings: &Settings,
) {
    let stale = spec_files_not_in_base(git, base, &feature.dir, spec_rel);
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
}

/// `--task`: the selected tasks whose dependencies are done (to run), and the reports of those
/// that need no run (shared with `--push`). A rework that ran before is no longer reused.
#[allow(clippy::too_many_arguments)]
fn select_tasks(
    git: &Git,
    list: &TaskList,
    plan: &Plan,
    earlier: &mut Earlier,
    mode: &task_mode::TaskMode,
    settings: &Settings,
    feature: &str,
    workdir: &Path,
) -> Result<task_mode::Checked> {
    let names = task_mode::Names {
        prefix: &settings.branch_prefix,
        feature,
        remote: mode.fetched.as_ref().map(|f| f.remote.as_str()),
        pushed: settings.push.as_ref(),
        max_review_rounds: settings.max_review_rounds,
    };
    let mut checked = task_mode::check(git, list, plan, earlier, mode, &names)?;
    if let Some(fetched) = &settings.push {
        let pusher = task_mode::Pusher {
            workdir: workdir.to_path_buf(),
            fetched: fetched.clone(),
        };
        for r in &mut checked.settled {
            pusher.share(git, list, earlier, &names, r);
        }
    }
    for t in &checked.run {
        // A rework that ran before runs again, for the round it answers now.
        earlier.reused.remove(t);
    }
    Ok(checked)
}

/// Cleans the worktrees of this feature left by earlier runs (failed or interrupted tasks),
/// then opens the run's slots, saying what it did.
fn open_slots(
    shell: &Shell,
    git: &Git,
    state: &state::RunState,
    feature: &str,
    settings: &Settings,
    run_id: &str,
    root: &Path,
) -> Result<slots::Slots> {
    for note in state.clean_worktrees(git, &worktree_prefix(feature), run_id, root)? {
        shell.status(note.verb, &note.text);
    }
    let (slots, notes) = slots::Slots::new(
        state.dir(),
        feature,
        settings.shared_target,
        settings.slot_makers,
    )
    .open(
        git,
        state,
        &format!("{}/{}/", settings.branch_prefix, feature),
        run_id,
        root,
    )?;
    for note in &notes {
        shell.status(note.verb, &note.text);
    }
    Ok(slots)
}

/// The run's directory, with its `logs` and `prompts`.
fn make_run_dir(state: &state::RunState, run_id: &str) -> Result<PathBuf> {
    let run_dir = state.runs().join(run_id);
    for sub in ["logs", "prompts"] {
        let d = run_dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
    }
    Ok(run_dir)
}

/// Removes the copies of tasks.md that a killed run of an earlier version left beside it.
fn remove_stale_tasks_copies(shell: &Shell, feature: &Feature, root: &Path) {
    for removed in crate::fsutil::remove_stale_temps(&feature.dir.join("tasks.md")) {
        shell.status(
            "Removed",
            format!(
                "{}, left by a run that was killed while writing tasks.md",
                display_path(&removed, root).display()
            ),
        );
    }
}

/// The runtime the agents' jobs run on.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::user(format!("could not start the async runtime: {e}")))
}

/// A `--task` run whose selected tasks need no run: each said so, and the job outputs written.
fn task_mode_settled(shell: &Shell, list: &TaskList, feature: &str, settled: &[TaskReport]) -> i32 {
    for r in settled {
        let word = match r.status {
            Status::Failed | Status::Interrupted => "Failed",
            Status::NotNeeded => "Not needed",
            Status::Skipped => "Skipped",
            // A review's round that asked for changes, which its rework answers next.
            _ if r.verdict == Some(Verdict::RequiresChanges) => "Reviewed",
            _ => "Done",
        };
        let text = format!(
            "{feature}: task {}: {}",
            r.id,
            r.reason.as_deref().unwrap_or_default()
        );
        if r.status.is_success() {
            shell.status(word, text);
        } else {
            shell.error_status(word, text);
        }
        if shell.is_json() {
            shell.json(&Event::TaskFinished(Box::new(r.clone())));
        }
    }
    let totals = Totals::of(settled);
    let mut code = if totals.failed > 0 || totals.skipped > 0 {
        exit::TASKS_FAILED
    } else {
        exit::OK
    };
    // A job whose outputs are lost must fail: the jobs after it would read none.
    if let Some(e) = task_mode::write_outputs(list, settled) {
        shell.error_status("Error", e);
        if code == exit::OK {
            code = exit::TASKS_FAILED;
        }
    }
    if shell.is_json() {
        shell.json(&Event::RunFinished {
            totals,
            duration_secs: 0.0,
            exit_code: code,
            integration_branch: None,
            integration_commit: None,
            usage: None,
            disk: None,
            report: None,
            error: None,
        });
    }
    code
}

/// Takes the feature's run lock and cleans what a killed run left (see
/// [`state::RunState::open`]), saying what it did.
fn open_state(
    shell: &Shell,
    git: &Git,
    feature: &str,
    settings: &Settings,
    target_dir: &Path,
    root: &Path,
) -> Result<state::RunState> {
    let (state, notes) = state::RunState::open(
        git,
        feature,
        &settings.branch_prefix,
        &target_dir.join("spec-exec").join(feature),
        root,
    )?;
    for note in &notes {
        shell.status(note.verb, &note.text);
    }
    Ok(state)
}

/// spec-exec works from the user's working tree, never from one of the worktrees it made
/// (where the workspace would be a copy, and HEAD a branch of its own).
fn not_in_own_worktree(git: &Git, root: &Path) -> Result<()> {
    let own = git.common_dir().join("spec-exec");
    let inside = |p: &Path| {
        p.canonicalize()
            .is_ok_and(|p| own.canonicalize().is_ok_and(|o| p.starts_with(o)))
    };
    if inside(root) {
        return Err(Error::user_with_help(
            format!(
                "`{}` is a worktree spec-exec made, not your working tree",
                root.display()
            ),
            "commit what you did there, then run cargo spec-exec from your own working tree",
        ));
    }
    Ok(())
}

/// Whether every task of the feature is done, and its integration branch does not hold all
/// of their work (it is missing, or behind a task's branch).
pub fn integration_pending(
    root: &Path,
    list: &TaskList,
    prefix: &str,
    feature: &str,
    branch: &str,
) -> bool {
    let Ok(git) = Git::open(root) else {
        return false;
    };
    let selection = land::select(&git, list, prefix, feature, &[]);
    if !selection.all_done || selection.tips.is_empty() {
        return false;
    }
    // Work the base holds already (merged since) needs no integration.
    let head = git.resolve("HEAD").ok();
    let outside_base: Vec<&land_tip::Tip> = selection
        .tips
        .iter()
        .filter(|t| !head.is_some_and(|h| git.contains(h, t.oid)))
        .collect();
    match git.branch_tip(branch) {
        None => !outside_base.is_empty(),
        Some(tip) => outside_base.iter().any(|t| !git.contains(tip, t.oid)),
    }
}

/// Where a run (or an integration) works, for [`context`].
struct Where<'a> {
    started: Instant,
    feature: &'a Feature,
    root: &'a Path,
    workdir: &'a Path,
    spec_rel: PathBuf,
    state: &'a state::RunState,
    run_dir: PathBuf,
    run_id: String,
    base: git2::Oid,
    settings: &'a Settings,
}

/// What every job of a run shares, from where it works and its settings.
fn context(w: &Where<'_>) -> Ctx {
    let s = w.settings;
    Ctx {
        started: w.started,
        feature: w.feature.name.clone(),
        state_dir: w.state.dir().to_path_buf(),
        root: w.root.to_path_buf(),
        workdir: w.workdir.to_path_buf(),
        spec_rel: w.spec_rel.clone(),
        spec_abs: w.feature.dir.clone(),
        worktrees: w.state.worktrees(),
        slots: slots::Slots::new(
            w.state.dir(),
            &w.feature.name,
            s.shared_target,
            s.slot_makers,
        ),
        registry: w.state.registry(),
        run_dir: w.run_dir.clone(),
        run_id: w.run_id.clone(),
        base: w.base,
        known: Vec::new(),
        timeout: s.timeout,
        grace: s.kill_grace,
        verify: s.verify.clone(),
        verify_default: s.verify_default,
        max_attempts: s.max_attempts,
        resolve: s.resolve,
        root_rel: w
            .root
            .strip_prefix(w.workdir)
            .unwrap_or(Path::new(""))
            .to_path_buf(),
        progress: None,
        handles: std::sync::Mutex::new(Vec::new()),
        committed: std::sync::Mutex::new(std::collections::HashMap::new()),
        max_wait: s.max_wait,
    }
}

/// Makes the jobs the scheduler starts: their prompt, for the branch they run on, and agent.
struct Maker<'a> {
    list: &'a TaskList,
    settings: &'a Settings,
    /// What every prompt is made from, read once.
    prompts: &'a prompt::Loaded,
    /// The verify commands the prompts name: none when the default does not apply here.
    verify: Vec<crate::config::VerifyCommand>,
}

impl MakeJob for Maker<'_> {
    fn make(&self, start: Start) -> Job {
        let mut prompt = prompt::build(self.prompts, self.list, start.task, &start.branch);
        if !self.verify.is_empty() {
            prompt.push_str(&prompt::verification(&self.verify));
        }
        let agent = self
            .settings
            .agent_for(self.list.agent_of(start.task))
            .clone();
        Job::new(self.list, start, prompt, agent)
    }
}

/// What follows a task's success: its tick (not with `--task`), and its push (`--push`).
struct Ticker {
    tick: Option<edit::Ticker>,
    push: Option<task_mode::Pusher>,
}

impl Ticker {
    /// Ticks tasks.md unless `--task`; pushes with `--push`.
    fn new(ctx: &Ctx, list: &TaskList, plan: &Plan, settings: &Settings) -> Self {
        Ticker {
            tick: settings.task_mode.is_none().then(|| {
                edit::Ticker::new(
                    &ctx.root,
                    &ctx.spec_abs.join("tasks.md"),
                    &list.source.display_path,
                    !plan.left_out.is_empty(),
                )
            }),
            push: settings.push.clone().map(|fetched| task_mode::Pusher {
                workdir: ctx.workdir.clone(),
                fetched,
            }),
        }
    }
}

impl Tick for Ticker {
    fn tick(&self, r: &mut TaskReport) {
        if let Some(p) = &self.push {
            p.push(r);
        }
        if let Some(t) = &self.tick
            && r.status.is_success()
        {
            r.tick_error = t.tick(&r.id, &r.title).err().map(|e| e.to_string());
        }
    }
}

/// What a run's jobs start from: what earlier runs left, and where the agents' progress
/// comes in.
struct Given {
    earlier: Earlier,
    progress: tokio::sync::mpsc::UnboundedReceiver<Event>,
    /// `--task`: the reports of selected tasks that need no run.
    settled: Vec<TaskReport>,
}

/// Runs the jobs to the end, every event to the sinks. From here on agents run: whatever
/// happens, the run ends with `run-finished` and an exit code that says work was done (never 2).
async fn run_jobs(
    shell: &Shell,
    ctx: &Arc<Ctx>,
    list: &TaskList,
    plan: &Plan,
    settings: &Settings,
    given: Given,
    prompts: &prompt::Loaded,
) -> i32 {
    let Given {
        earlier,
        progress,
        settled,
    } = given;
    let agents = agent_names(list, plan, settings);
    let mut sinks = run_sinks(shell, ctx, list, plan, settings, &agents);
    sinks.event(&Event::run_started(
        &ctx.feature,
        &ctx.run_id,
        &agents,
        settings.max_agents,
        plan.nodes.len(),
        &ctx.run_dir,
    ));
    let scheduler = run_scheduler(ctx, list, plan, settings, earlier);
    let maker = Maker {
        list,
        settings,
        prompts,
        verify: ctx.verify_commands(&ctx.workdir),
    };
    let ticker = Arc::new(Ticker::new(ctx, list, plan, settings));
    for r in &settled {
        sinks.event(&Event::TaskFinished(Box::new(r.clone())));
    }
    let (mut reports, on_limit) =
        driver::drive(ctx, scheduler, &maker, ticker, &mut sinks, progress).await;
    after_agents(ctx, settings);

    // Tasks the plan could not run.
    for r in blocked_reports(list, plan) {
        sinks.event(&Event::TaskFinished(Box::new(r.clone())));
        reports.push(r);
    }
    reports.extend(settled);
    let outputs_lost = !write_job_outputs(list, settings, &reports, &mut sinks);
    let totals = Totals::of(&reports);
    let mut code = exit_code(&totals, &reports, on_limit, outputs_lost);
    // Every task of the feature done: its integration branch (not for `--task`: the branches
    // carry the state, and `land` builds it).
    let integration = if code == exit::OK && settings.task_mode.is_none() {
        integrate_at_end(ctx, list, settings, &reports).await
    } else {
        None
    };
    if let Some(r) = &integration {
        sinks.event(&Event::Integrated(Box::new(r.clone())));
        code = after_integration(code, r);
    }
    let built = integration.filter(|r| r.commit.is_some());
    sinks.finish(Event::RunFinished {
        totals,
        duration_secs: ctx.started.elapsed().as_secs_f64(),
        exit_code: code,
        integration_branch: built.as_ref().map(|r| r.branch.clone()),
        integration_commit: built.and_then(|r| r.commit),
        usage: crate::report::total_usage(&reports),
        disk: ctx.slots.disk(),
        report: Some(ReportFiles::markdown_path(&ctx.run_dir)),
        error: None,
    })
}

/// The agents that run the plan's tasks, by name (the default one only when some task has no
/// command of its own).
fn agent_names(list: &TaskList, plan: &Plan, settings: &Settings) -> String {
    let mut agents: Vec<&str> = plan
        .nodes
        .iter()
        .map(|n| settings.agent_for(list.agent_of(n.task)).name())
        .collect();
    agents.sort_unstable();
    agents.dedup();
    agents.join(", ")
}

/// Where a run's events go: its report files, the JUnit report (`--junit`), and the terminal
/// (or JSON lines).
fn run_sinks<'a>(
    shell: &'a Shell,
    ctx: &Ctx,
    list: &'a TaskList,
    plan: &Plan,
    settings: &Settings,
    agents: &str,
) -> Sinks<'a> {
    let order: HashMap<String, usize> = list
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.clone(), i))
        .collect();
    let files = ReportFiles::new(
        &ctx.feature,
        &ctx.run_id,
        agents,
        &ctx.run_dir,
        &ctx.root,
        order.clone(),
    );
    let mut sinks = Sinks::default().writer(files);
    if let Some(path) = &settings.junit {
        sinks = sinks.writer(JunitFile::new(path, &ctx.root, order));
    }
    if shell.is_json() {
        sinks.output(JsonLines(shell))
    } else {
        sinks.output(Display::new(shell, plan.nodes.len(), &ctx.root).with_tasks(list))
    }
}

/// The scheduler of a run's plan, from what earlier runs left.
fn run_scheduler<'a>(
    ctx: &Ctx,
    list: &'a TaskList,
    plan: &'a Plan,
    settings: &Settings,
    earlier: Earlier,
) -> Scheduler<'a> {
    Scheduler::new(
        list,
        plan,
        scheduler::Options {
            max_agents: settings.max_agents,
            continue_on_error: settings.continue_on_error,
            max_review_rounds: settings.max_review_rounds,
            max_cost: settings.max_cost,
            on_rate_limit: settings.on_rate_limit,
            one_step: settings.task_mode.is_some(),
            naming: Naming {
                prefix: settings.branch_prefix.clone(),
                feature: ctx.feature.clone(),
            },
        },
        earlier,
    )
}

/// Once every agent has ended: none is left for a later run to stop, and the slots a run
/// leaves for the next are as many as agents run at once, besides those kept.
fn after_agents(ctx: &Ctx, settings: &Settings) {
    let _ = std::fs::remove_file(&ctx.registry);
    if let Ok(git) = ctx.git() {
        ctx.slots.trim(&git, settings.max_agents);
    }
}

/// `--task`: writes the job outputs, saying so when they are lost. Whether the outputs are
/// kept (always without `--task`).
fn write_job_outputs(
    list: &TaskList,
    settings: &Settings,
    reports: &[TaskReport],
    sinks: &mut Sinks<'_>,
) -> bool {
    if settings.task_mode.is_some()
        && let Some(e) = task_mode::write_outputs(list, reports)
    {
        sinks.notice("Error", &e);
        return false;
    }
    true
}

/// The run's exit code from what its tasks did, before any integration. A job whose outputs
/// are lost fails: the jobs after it would read none.
fn exit_code(totals: &Totals, reports: &[TaskReport], on_limit: bool, outputs_lost: bool) -> i32 {
    if totals.interrupted > 0 {
        exit::INTERRUPTED
    } else if on_limit {
        exit::RATE_LIMITED
    } else if totals.failed > 0
        || totals.skipped > 0
        || outputs_lost
        || reports.iter().any(|r| r.tick_error.is_some())
    {
        exit::TASKS_FAILED
    } else {
        exit::OK
    }
}

/// The exit code once the integration at the end settled: its failure or interruption is the
/// run's.
fn after_integration(code: i32, r: &crate::report::IntegrationReport) -> i32 {
    match r.status {
        "failed" => exit::TASKS_FAILED,
        "interrupted" => exit::INTERRUPTED,
        _ => code,
    }
}

/// The feature's integration branch at the end of a run, when it left every task of the
/// feature done (`reports`: what the run settled).
async fn integrate_at_end(
    ctx: &Arc<Ctx>,
    list: &TaskList,
    settings: &Settings,
    reports: &[TaskReport],
) -> Option<crate::report::IntegrationReport> {
    let git = ctx.git().ok()?;
    let settled: Vec<&str> = reports
        .iter()
        .filter(|r| r.status.is_success())
        .map(|r| r.id.as_str())
        .collect();
    let selection = land::select(&git, list, &settings.branch_prefix, &ctx.feature, &settled);
    if !selection.all_done {
        return None;
    }
    let base = settings.base.clone().unwrap_or_else(|| git.head_name());
    land::stoppable(|stop| {
        land::build(
            ctx,
            &settings.integration_branch,
            &base,
            selection,
            settings.agent.clone(),
            true,
            stop,
        )
    })
    .await
}

/// What earlier runs left, read from git before anything starts: finished tasks' commits (to
/// reuse), recorded review rounds and where an unfinished gate goes on, and the tips of the
/// feature's branches. A branch left unfinished with work spec-exec did not make stops the run.
fn read_earlier(
    git: &Git,
    list: &TaskList,
    plan: &Plan,
    settings: &Settings,
    feature: &str,
    base: git2::Oid,
) -> Result<(Earlier, Vec<git2::Oid>)> {
    let workdir = git.workdir().unwrap_or_default();
    // Branch names were checked with the list (`state::run_diagnostics`): one per task.
    let branch_of =
        |i: usize| git::branch_name(&settings.branch_prefix, feature, &list.tasks[i].id);

    // Branches left by earlier runs: finished ones are reused, unfinished ones are reset when
    // that loses nothing; anything else stops the run before it starts.
    // A review's rounds (and a rework's runs) are on round branches too: a review is reused
    // only when its last recorded round approved; otherwise it runs again on top of it.
    let reviews = review::reviews(list);
    let (reused, history) = finished_on_branches(git, list, plan, &settings.branch_prefix, feature);
    let mut problems = Vec::new();
    let mut tips: Vec<(String, git2::Oid)> = list
        .leaves()
        .filter_map(|i| git.branch_tip(&branch_of(i)).map(|t| (branch_of(i), t)))
        .collect();
    tips.extend(
        history
            .values()
            .flat_map(|h| h.iter().skip(1).map(|r| (r.branch.clone(), r.oid))),
    );
    // With `--task`, only the branches of the selected tasks and of their dependencies matter:
    // another task's branch (someone's commit on it) is not this run's to move or read.
    let concerned = |t: usize| {
        settings.task_mode.as_ref().is_none_or(|mode| {
            mode.selected.contains(&t)
                || mode
                    .selected
                    .iter()
                    .any(|&s| plan.node(s).is_some_and(|n| n.deps.contains(&t)))
        })
    };
    for node in plan.nodes.iter().filter(|n| concerned(n.task)) {
        let id = &list.tasks[node.task].id;
        let branch = branch_of(node.task);
        if git.branch_tip(&branch).is_none() {
            continue;
        }
        match git.task_commit(&branch) {
            // Finished (reused), or a review's round recorded without approval.
            Some(tc) if &tc.task == id => {}
            // An unfinished task's branch is moved when it starts: only if that loses nothing
            // but what spec-exec made (its base, a merge of its dependencies). Whether
            // spec-exec made the branch does not matter: someone may have committed on it
            // since, in the worktree kept for inspection.
            _ => {
                let mut others = vec![base];
                others.extend(tips.iter().filter(|(b, _)| *b != branch).map(|&(_, t)| t));
                // A merge of other branches made by hand (after a resolution failed) is the
                // task's base: kept, not reset.
                let merge_by_hand = git
                    .branch_tip(&branch)
                    .is_some_and(|tip| git.merges_only_over(tip, &others));
                if !merge_by_hand
                    && !git.only_spec_exec_work(&branch, &others, &worktree_prefix(feature))
                {
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
    let known = tips.iter().map(|&(_, t)| t).collect();
    Ok((
        earlier_runs(&workdir, list, &reviews, reused, history),
        known,
    ))
}

/// The plan's tasks finished on their branches (a review only when its last recorded round
/// approved), with the commit each is reused at, and the rounds recorded on round branches.
fn finished_on_branches(
    git: &Git,
    list: &TaskList,
    plan: &Plan,
    prefix: &str,
    feature: &str,
) -> (
    HashMap<usize, git::TaskCommit>,
    HashMap<usize, Vec<review::Recorded>>,
) {
    let reviews = review::reviews(list);
    let mut reused: HashMap<usize, git::TaskCommit> = HashMap::new();
    let mut history: HashMap<usize, Vec<review::Recorded>> = HashMap::new();
    if let Ok(repo) = git2::Repository::open(git.workdir().unwrap_or_default()) {
        for node in &plan.nodes {
            let id = &list.tasks[node.task].id;
            let recorded = review::recorded_rounds(&repo, prefix, feature, id);
            if !recorded.is_empty() {
                history.insert(node.task, recorded);
            }
        }
    }
    for node in &plan.nodes {
        let id = &list.tasks[node.task].id;
        let branch = git::branch_name(prefix, feature, id);
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
            _ => {}
        }
    }
    (reused, history)
}

/// The tasks of `list` that its branches hold finished, as a run would tick them, in document
/// order: a task whose branch holds its commit, a review whose last recorded round approved, a
/// rework once every review it serves approved (whether it ran or was not needed). `sync`
/// ticks them.
pub fn finished_tasks(git: &Git, list: &TaskList, prefix: &str, feature: &str) -> Vec<usize> {
    let plan = crate::plan::build(
        list,
        &crate::plan::Options {
            max_agents: 1,
            ..crate::plan::Options::default()
        },
    );
    let Ok(plan) = plan else {
        return Vec::new();
    };
    let (reused, _) = finished_on_branches(git, list, &plan, prefix, feature);
    let approved = |c: usize| {
        list.tasks[c].state == crate::spec::model::TaskState::Done || reused.contains_key(&c)
    };
    let mut out: Vec<usize> = plan
        .nodes
        .iter()
        .map(|n| n.task)
        .filter(|&t| {
            let condition: Vec<usize> = list.tasks[t].condition().collect();
            if condition.is_empty() {
                reused.contains_key(&t)
            } else {
                condition.iter().all(|&c| approved(c))
            }
        })
        .collect();
    out.sort_unstable();
    out
}

/// The reports of the tasks the plan could not run: skipped, with why.
fn blocked_reports(list: &TaskList, plan: &Plan) -> Vec<TaskReport> {
    plan.blocked
        .iter()
        .map(|(t, why)| {
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
            scheduler::report_of(list, *t, Status::Skipped, reason)
        })
        .collect()
}

/// What earlier runs left, for the scheduler: finished tasks' commits, recorded rounds, and
/// where an unfinished review gate goes on (read from git now, so the scheduler reads none).
fn earlier_runs(
    workdir: &Path,
    list: &TaskList,
    reviews: &[bool],
    reused: HashMap<usize, git::TaskCommit>,
    history: HashMap<usize, Vec<review::Recorded>>,
) -> Earlier {
    let mut earlier = Earlier {
        reused: reused
            .into_iter()
            .map(|(t, c)| (t, c.oid.to_string()))
            .collect(),
        ..Earlier::default()
    };
    let repo = git2::Repository::open(workdir).ok();
    for (&r, recorded) in &history {
        let Some(last) = recorded.last().filter(|_| reviews[r]) else {
            continue;
        };
        // Its last round, or a rework's later run made on top of it.
        let mut best = (last.oid, last.branch.clone());
        if let Some(repo) = &repo {
            let reworks = list
                .leaves()
                .filter(|&w| list.tasks[w].condition().any(|c| c == r));
            for w in reworks {
                for run in history.get(&w).into_iter().flatten() {
                    if repo.graph_descendant_of(run.oid, best.0).unwrap_or(false) {
                        best = (run.oid, run.branch.clone());
                    }
                }
            }
            let file = review::verdict_file(list, r);
            let findings = repo
                .find_commit(last.oid)
                .ok()
                .and_then(|c| c.tree().ok())
                .and_then(|tree| git::blob_at(repo, &tree, Path::new(&file)));
            if let Some(f) = findings {
                earlier
                    .findings
                    .insert(r, String::from_utf8_lossy(&f).into_owned());
            }
        }
        earlier.resume_base.insert(r, best.1);
    }
    earlier.history = history;
    earlier
}

/// The run's id: its start, to the millisecond (so that runs sort in the order they started),
/// and its pid.
fn run_id() -> String {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let compact: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("{compact}-{}", std::process::id())
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
