//! `cargo spec-exec ci`: a feature's plan as the jobs of a CI system.
//!
//! [`Workflow`] is the model, independent of any CI system: one job per pending task (a review
//! gate unrolled into its rounds and the reworks between them), what each job needs, the
//! condition it runs on, what it installs and the commands it runs, and a last job that builds
//! the integration branch and opens the pull request. [`github`] writes it as a GitHub Actions
//! workflow; another system's writer reads the same model.
//!
//! Every job runs one task with `cargo spec-exec <feature> --task <id> --remote origin --push`
//! in a fresh clone: the task's dependencies' branches come from the remote, and its own branch
//! goes back there. A review job reports its verdict as a job output (`verdict`:
//! `approved` or `changes`), which the conditions of the jobs after it read.

pub mod github;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::cli::CiGithubCommand;
use crate::config::{self, DEFAULT_MAX_AGENTS};
use crate::error::{Error, Result, exit};
use crate::exec::review;
use crate::exec::task_mode::output_key;
use crate::output::Shell;
use crate::plan::{self, Plan};
use crate::source::display_path;
use crate::spec::{self, TaskList, approval};
use crate::workspace::Workspace;

/// The runner label when neither `--runs-on` nor `ci.runs-on` names one.
pub const DEFAULT_RUNS_ON: &str = "ubuntu-latest";
/// The name of the last job.
pub const INTEGRATE_JOB: &str = "integrate";
/// The most review rounds a gate is unrolled into (`--max-review-rounds` allows no more).
pub const MAX_UNROLLED_ROUNDS: u32 = 20;
/// Time a job spends on everything but its task: checking out, installing the tool and the
/// agent.
const SETUP_MINUTES: u64 = 20;

/// A feature's plan as CI jobs.
#[derive(Debug, Clone, Serialize)]
pub struct Workflow {
    pub feature: String,
    /// The jobs, each after every job it needs; the last is the integration job.
    pub jobs: Vec<Job>,
    /// `--max-agents`: the most task jobs that may run at once.
    pub max_agents: usize,
    /// The most task jobs the plan's dependencies alone would let run at once.
    pub width: usize,
    /// How many orders between jobs were added to keep to `max_agents` (see [`Job::after`]).
    pub slot_orders: usize,
    pub runs_on: String,
    /// Each job's time limit.
    pub timeout_minutes: u64,
    pub install: Install,
    /// Pending tasks that get no job, with why.
    pub not_run: Vec<NotRun>,
}

/// A pending task that gets no job.
#[derive(Debug, Clone, Serialize)]
pub struct NotRun {
    pub task: String,
    pub reason: String,
}

/// How a job installs spec-exec.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Install {
    /// `cargo install --locked cargo-spec-exec --version <version>`.
    Cargo { version: String },
    /// The shell commands of `ci.install` in the configuration.
    Configured { run: String },
}

impl Install {
    /// The shell commands of the install step.
    pub fn script(&self) -> String {
        match self {
            Install::Cargo { version } => {
                format!("cargo install --locked cargo-spec-exec --version {version}")
            }
            Install::Configured { run } => run.clone(),
        }
    }
}

/// What a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    Task,
    /// A round of a review gate.
    Review,
    /// A run of a rework, after a review round that asked for changes.
    Rework,
    /// The last job: the integration branch and the pull request.
    Integrate,
}

/// One job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Unique (case-insensitively), `[A-Za-z_][A-Za-z0-9_-]*`.
    pub id: String,
    /// What it shows as.
    pub name: String,
    pub kind: JobKind,
    /// The task it runs (none for the integration job).
    pub task: Option<String>,
    /// A review's round, or the review round a rework's run answers.
    pub round: Option<u32>,
    /// The review whose request for changes a rework's run answers.
    pub review: Option<String>,
    /// The jobs whose outcome it depends on (its condition reads them).
    pub needs: Vec<String>,
    /// Jobs it only comes after: their outcome does not matter. To keep to `--max-agents`, and
    /// so that two runs of one rework (in the gates of two reviews) never run at once.
    pub after: Vec<String>,
    /// When it runs, once the jobs it needs have ended; `None`: it needs none.
    pub when: Option<Cond>,
    /// It gives a `verdict` output (a review round).
    pub verdict_output: bool,
    /// The agent it sets up.
    pub agent: AgentSetup,
    /// The commands of its run step, each a list of words.
    pub commands: Vec<Vec<String>>,
}

/// When a job runs, from the jobs it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Cond {
    /// The job ended successfully.
    Succeeded {
        job: String,
    },
    /// The review round of the job succeeded and ended with this verdict.
    Verdict {
        job: String,
        verdict: Verdict,
    },
    Any {
        of: Vec<Cond>,
    },
    All {
        of: Vec<Cond>,
    },
}

/// A review round's verdict as a job output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Approved,
    Changes,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::Changes => "changes",
        }
    }
}

impl Cond {
    /// A job's condition: none when it needs no job, else all of `of` (`true` when none).
    fn when(needs: &[String], mut of: Vec<Cond>) -> Option<Cond> {
        if needs.is_empty() {
            return None;
        }
        Some(match of.len() {
            1 => of.remove(0),
            _ => Cond::All { of },
        })
    }

    /// Any of `of`; the one itself when there is one.
    fn any(mut of: Vec<Cond>) -> Cond {
        match of.len() {
            1 => of.remove(0),
            _ => Cond::Any { of },
        }
    }
}

/// What a job installs to run its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentSetup {
    /// The preset it runs, or the agent's program.
    pub agent: String,
    /// How the agent's CLI is installed, if spec-exec knows.
    pub tool: Tool,
    /// The secrets its run step gets, as environment variables of the same name.
    pub secrets: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "package", rename_all = "kebab-case")]
pub enum Tool {
    /// `npm install -g <package>`, after setting up node.
    Npm(&'static str),
    /// `pip install <package>`, after setting up Python.
    Pip(&'static str),
    /// Nothing: the built-in shell agent, or a command of the user's (installed by their
    /// `ci.install` step, or already on the runner).
    None,
}

impl AgentSetup {
    /// The setup of an agent as a run would resolve it: a preset by name (also as the first
    /// word of a command line), else a command of the user's.
    pub fn of(agent: &config::AgentSpec) -> AgentSetup {
        let program = match agent {
            config::AgentSpec::Preset(name) => name.clone(),
            config::AgentSpec::Argv(argv) => argv.first().cloned().unwrap_or_default(),
        };
        let name = Path::new(&program)
            .file_name()
            .map_or(program.clone(), |n| n.to_string_lossy().into_owned());
        let (tool, secrets): (Tool, Vec<&'static str>) = match name.as_str() {
            "claude" => (
                Tool::Npm("@anthropic-ai/claude-code"),
                vec!["ANTHROPIC_API_KEY"],
            ),
            "codex" => (Tool::Npm("@openai/codex"), vec!["OPENAI_API_KEY"]),
            "gemini" => (Tool::Npm("@google/gemini-cli"), vec!["GEMINI_API_KEY"]),
            // aider picks its model by the key it finds.
            "aider" => (
                Tool::Pip("aider-chat"),
                vec!["ANTHROPIC_API_KEY", "OPENAI_API_KEY"],
            ),
            _ => (Tool::None, Vec::new()),
        };
        let agent = if tool == Tool::None { program } else { name };
        AgentSetup {
            agent,
            tool,
            secrets,
        }
    }
}

/// What the workflow is built with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_agents: usize,
    pub max_review_rounds: u32,
    /// `--agent`, passed on to every job.
    pub agent_flag: Option<String>,
    /// `--timeout` as given, passed on to every job.
    pub timeout_flag: Option<String>,
    /// `--max-review-rounds` as given, passed on to the jobs of review gates: their rounds are
    /// the rounds unrolled.
    pub max_review_rounds_flag: Option<u32>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub runs_on: String,
    pub install: Install,
}

/// `cargo spec-exec ci github <FEATURE>`.
pub fn github_command(shell: &Shell, ws: &Workspace, cmd: &CiGithubCommand) -> Result<i32> {
    let settings = Settings::new(ws, cmd)?;
    let all = crate::ops::all_features(ws)?;
    let feature = spec::pick(&all, &ws.root, &ws.features_dir(), &cmd.feature)?;
    let list = crate::ops::load_valid(shell, ws, &feature)?;
    let plan = runnable_plan(shell, ws, &list, &feature.name, &settings)?;
    let workflow = build(&list, &plan, &feature.name, &ws.config, &settings)?;
    let text = github::render(&workflow);
    let to_stdout = cmd.output.as_deref() == Some(Path::new("-"));
    let path = output_path(ws, cmd.output.as_deref(), &feature.name)?;
    if let Some(path) = &path {
        write_generated(path, &text, cmd.force, &ws.root)?;
    }
    if shell.is_json() {
        shell.json(&serde_json::json!({
            "type": "ci",
            "format_version": crate::plan::render::FORMAT_VERSION,
            "system": "github",
            "path": path.as_ref().map(|p| p.display().to_string()),
            "workflow": &workflow,
            "text": if to_stdout { Some(&text) } else { None },
        }));
    } else if to_stdout {
        shell.out(text.trim_end());
    }
    if let Some(path) = &path {
        wrote(shell, ws, path, &workflow, plan.nodes.len());
    }
    Ok(exit::OK)
}

impl Settings {
    /// The settings of `ci github`: each flag, else the configuration, else the default; a
    /// flag a run would refuse is refused here.
    fn new(ws: &Workspace, cmd: &CiGithubCommand) -> Result<Settings> {
        let timeout = crate::ops::timeout(ws, cmd.timeout.as_deref())?;
        crate::ops::check_agent_flag(cmd.agent.as_deref())?;
        let runs_on = runs_on(ws, cmd.runs_on.as_deref())?;
        let settings = Settings {
            max_agents: cmd
                .max_agents
                .map(usize::from)
                .or(ws.config.max_agents)
                .unwrap_or(DEFAULT_MAX_AGENTS),
            max_review_rounds: cmd
                .max_review_rounds
                .or(ws.config.max_review_rounds)
                .unwrap_or(config::DEFAULT_MAX_REVIEW_ROUNDS),
            agent_flag: cmd.agent.clone(),
            timeout_flag: cmd.timeout.clone(),
            max_review_rounds_flag: cmd.max_review_rounds,
            timeout,
            max_attempts: ws
                .config
                .max_attempts
                .unwrap_or(config::DEFAULT_MAX_ATTEMPTS),
            runs_on,
            install: match &ws.config.ci.install {
                Some(run) => Install::Configured { run: run.clone() },
                None => Install::Cargo {
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                },
            },
        };
        if settings.max_review_rounds > MAX_UNROLLED_ROUNDS {
            return Err(Error::user_with_help(
                format!(
                    "`max-review-rounds` in the configuration is {}: a workflow unrolls each review gate into that many jobs, and twice as many less one with its rework",
                    settings.max_review_rounds
                ),
                format!("pass --max-review-rounds with at most {MAX_UNROLLED_ROUNDS}"),
            ));
        }
        Ok(settings)
    }
}

/// The jobs' runner label: `--runs-on` (`flag`), else `ci.runs-on` in the configuration, else
/// [`DEFAULT_RUNS_ON`].
fn runs_on(ws: &Workspace, flag: Option<&str>) -> Result<String> {
    match flag {
        Some(label) if !config::valid_runner_label(label) => Err(Error::user_with_help(
            format!("invalid --runs-on `{}`", label.escape_debug()),
            "give a runner label, e.g. --runs-on ubuntu-24.04",
        )),
        Some(label) => Ok(label.to_owned()),
        None => Ok(ws
            .config
            .ci
            .runs_on
            .clone()
            .unwrap_or_else(|| DEFAULT_RUNS_ON.to_owned())),
    }
}

/// The plan of `list`, with the checks a run makes before it starts: the jobs run the tasks
/// for real, so a list that a run would refuse is refused here. A run also finds an agent on
/// PATH; a fresh runner has none, so the jobs must name theirs.
fn runnable_plan(
    shell: &Shell,
    ws: &Workspace,
    list: &TaskList,
    feature: &str,
    settings: &Settings,
) -> Result<Plan> {
    let approval = approval::state(list);
    let plan = plan::build(
        list,
        &plan::Options {
            tracks: Vec::new(),
            max_agents: settings.max_agents,
            skip_optional: false,
            overlap: ws.config.overlap,
        },
    )?;
    shell.diagnostics(plan.warnings.iter());
    crate::ops::require_approval(list, feature, &approval)?;
    let needs_default = plan.nodes.iter().any(|n| {
        list.agent_of(n.task)
            .is_none_or(|name| !ws.config.agents.contains_key(name))
    });
    if needs_default && settings.agent_flag.is_none() && ws.config.agent.is_none() {
        return Err(Error::user_with_help(
            format!(
                "the jobs of `{feature}` need to know their agent: no --agent is given and no `agent` is configured"
            ),
            "pass --agent with a preset (claude, codex, gemini, aider, shell) or a command line, or set `agent` in [workspace.metadata.spec-exec]",
        ));
    }
    Ok(plan)
}

/// Where the workflow goes: `None` for `--output -` (stdout); `--output` from the current
/// directory; else `.github/workflows/spec-<feature>.yml` in the repository.
fn output_path(ws: &Workspace, output: Option<&Path>, feature: &str) -> Result<Option<PathBuf>> {
    Ok(match output {
        Some(p) if p == Path::new("-") => None,
        Some(p) if p.is_absolute() => Some(p.to_path_buf()),
        Some(p) => Some(
            std::env::current_dir()
                .map_err(|e| Error::io("read the current directory", Path::new("."), e))?
                .join(p),
        ),
        None => Some(
            repository_root(&ws.root)
                .join(".github/workflows")
                .join(format!("spec-{feature}.yml")),
        ),
    })
}

/// The status line of a workflow written to `path`, and a note per task that gets no job.
fn wrote(shell: &Shell, ws: &Workspace, path: &Path, workflow: &Workflow, pending: usize) {
    let orders = if workflow.slot_orders > 0 {
        format!(
            ", {} added to keep to --max-agents {}",
            crate::output::count(workflow.slot_orders, "order"),
            workflow.max_agents
        )
    } else {
        String::new()
    };
    shell.status(
        "Wrote",
        format!(
            "`{}`: {} for {pending} pending {} of {} ({} at once at most{orders})",
            display_path(path, &ws.root).display(),
            crate::output::count(workflow.jobs.len(), "job"),
            if pending == 1 { "task" } else { "tasks" },
            workflow.feature,
            workflow.max_agents.min(workflow.width.max(1)),
        ),
    );
    for n in &workflow.not_run {
        shell.status("Note", format!("task {} gets no job: {}", n.task, n.reason));
    }
}

/// The working tree's root of the repository that holds `root`, else `root`.
fn repository_root(root: &Path) -> PathBuf {
    git2::Repository::discover(root)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_path_buf))
        .unwrap_or_else(|| root.to_path_buf())
}

/// Writes a generated file: its directory is made when missing; a file that is there is
/// replaced only when this command generated it (its first line says so), or with `force`.
fn write_generated(path: &Path, text: &str, force: bool, root: &Path) -> Result<()> {
    let shown = display_path(path, root);
    match std::fs::read(path) {
        Ok(old) => {
            if !force && !github::is_generated(&old) {
                return Err(Error::user_with_help(
                    format!(
                        "`{}` exists and was not generated by `cargo spec-exec ci` (its first line is not `{}…`)",
                        shown.display(),
                        github::HEADER_MARK
                    ),
                    "move it aside, choose another file with --output, or replace it with --force",
                ));
            }
            if old == text.as_bytes() {
                return Ok(());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read", path, e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create the directory", dir, e))?;
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("write", path, e.error))?;
    Ok(())
}

/// A job id for `raw`: its [`output_key`] (every character outside `[A-Za-z0-9_-]` as `_`), with
/// `task-` before one that does not start with a letter or `_`.
pub fn job_id_base(raw: &str) -> String {
    let id = output_key(raw);
    if id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        id
    } else {
        format!("task-{id}")
    }
}

/// Hands out unique job ids (GitHub compares them without case).
#[derive(Default)]
struct Ids {
    taken: HashSet<String>,
}

impl Ids {
    fn take(&mut self, raw: &str) -> String {
        let base = job_id_base(raw);
        let mut id = base.clone();
        let mut n = 2;
        while !self.taken.insert(id.to_ascii_lowercase()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }
}

/// The jobs of one pending task: a plain task's one job, a review gate's rounds and reworks.
struct Unit {
    /// Its jobs, in order (a gate: round 1, rework, round 2, …).
    jobs: Vec<usize>,
    /// What a job after it checks: the job succeeded, or one of the gate's rounds approved.
    done: Cond,
}

/// Builds the workflow of `plan`.
pub fn build(
    list: &TaskList,
    plan: &Plan,
    feature: &str,
    config: &config::Config,
    settings: &Settings,
) -> Result<Workflow> {
    let mut jobs = Jobs::new(list, plan, feature, config, settings);
    let not_run = jobs.not_run();
    // Job ids in the plan's order: groups, then the document's order.
    let mut order: Vec<&plan::Node> = plan.nodes.iter().collect();
    order.sort_by_key(|n| (n.level, n.task));
    for n in &order {
        if jobs.is_review[n.task] {
            jobs.unroll_gate(n.task);
        } else if !jobs.is_rework(n.task) {
            jobs.plain_task(n.task);
        }
        // A rework's jobs are in the gates of the reviews it answers.
    }
    jobs.wire(&order);
    let all_done = jobs.all_done(&order);
    let mut laid = in_dependency_order(std::mem::take(&mut jobs.all), feature)?;
    let (width, slot_orders) = keep_to_max_agents(&mut laid, settings.max_agents);
    let integrate = jobs.integrate_job(&laid, all_done);
    laid.push(integrate);
    Ok(Workflow {
        feature: feature.to_owned(),
        jobs: laid,
        max_agents: settings.max_agents,
        width,
        slot_orders,
        runs_on: settings.runs_on.clone(),
        timeout_minutes: timeout_minutes(settings),
        install: settings.install.clone(),
        not_run,
    })
}

/// Each review's rework: as a run picks it, the first task of the plan whose condition names
/// the review.
fn reworks(list: &TaskList, plan: &Plan, is_review: &[bool]) -> BTreeMap<usize, usize> {
    let mut rework_of = BTreeMap::new();
    for n in &plan.nodes {
        if is_review[n.task]
            && let Some(w) = plan
                .nodes
                .iter()
                .map(|m| m.task)
                .find(|&w| list.tasks[w].condition().any(|c| c == n.task))
        {
            rework_of.insert(n.task, w);
        }
    }
    rework_of
}

/// Each job's time limit: every attempt runs the agent, then the verify commands, each bounded
/// by the timeout.
fn timeout_minutes(settings: &Settings) -> u64 {
    let minutes = settings.timeout.as_secs().div_ceil(60).max(1);
    2 * minutes * u64::from(settings.max_attempts.max(1)) + SETUP_MINUTES
}

/// The options every job passes on to its run: `--agent` and `--timeout` as given.
fn run_options(settings: &Settings) -> Vec<String> {
    let mut words = Vec::new();
    if let Some(a) = &settings.agent_flag {
        words.extend(["--agent".to_owned(), a.clone()]);
    }
    if let Some(t) = &settings.timeout_flag {
        words.extend(["--timeout".to_owned(), t.clone()]);
    }
    words
}

/// Why a plan's blocked task gets no job.
fn blocked_reason(list: &TaskList, why: &plan::Blocked) -> String {
    match why {
        plan::Blocked::NotRunnable => "its box says `[~]` (not runnable)".to_owned(),
        plan::Blocked::WaitsForBlocked { on } => {
            format!("it waits for task {}, which cannot run", list.tasks[*on].id)
        }
        plan::Blocked::OutsideTracks { .. } => "it waits for tasks not selected".to_owned(),
    }
}

/// The jobs in an order where each comes after every job it needs; an error when a rework
/// waits for a task that waits for the review it answers.
fn in_dependency_order(jobs: Vec<Job>, feature: &str) -> Result<Vec<Job>> {
    let order = topological(&jobs).map_err(|stuck| {
        let mut reworks: Vec<&str> = stuck
            .iter()
            .filter(|&&j| jobs[j].kind == JobKind::Rework)
            .filter_map(|&j| jobs[j].task.as_deref())
            .collect();
        reworks.dedup();
        Error::user_with_help(
            format!(
                "the review gates of `{feature}` cannot be laid out as jobs: rework {} waits for a task that waits for the review it answers",
                reworks.join(", ")
            ),
            "make the rework depend only on its review (and on what the review itself waits for)",
        )
    })?;
    let mut slots: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
    Ok(order.iter().filter_map(|&i| slots[i].take()).collect())
}

/// Orders the jobs (in dependency order) so that at most `max_agents` of them can run at once,
/// when more could. Returns how many could run at once without the orders, and how many orders
/// were added.
fn keep_to_max_agents(jobs: &mut [Job], max_agents: usize) -> (usize, usize) {
    let width = width(jobs);
    let slot_orders = if width > max_agents {
        keep_to(jobs, max_agents)
    } else {
        0
    };
    (width, slot_orders)
}

/// The jobs of a workflow as they are made, with what they are made from.
struct Jobs<'a> {
    list: &'a TaskList,
    plan: &'a Plan,
    feature: &'a str,
    config: &'a config::Config,
    settings: &'a Settings,
    is_review: Vec<bool>,
    /// Each review's rework (see [`reworks`]).
    rework_of: BTreeMap<usize, usize>,
    /// `<feature>`, or `run <feature>` for a feature named like a command.
    feature_words: Vec<String>,
    /// See [`run_options`].
    run_options: Vec<String>,
    /// `--max-review-rounds` for the jobs of a gate: they run with the limit its rounds were
    /// unrolled to.
    rounds_flag: Vec<String>,
    ids: Ids,
    /// The jobs made so far (the integration job is made last, apart).
    all: Vec<Job>,
    /// Each task's jobs (a rework has none of its own).
    units: HashMap<usize, Unit>,
    /// For a rework that answers several reviews, its jobs in the gates laid out so far.
    earlier_gates: HashMap<usize, Vec<usize>>,
}

impl<'a> Jobs<'a> {
    fn new(
        list: &'a TaskList,
        plan: &'a Plan,
        feature: &'a str,
        config: &'a config::Config,
        settings: &'a Settings,
    ) -> Self {
        let is_review = review::reviews(list);
        let rework_of = reworks(list, plan, &is_review);
        let feature_words = if is_command_word(feature) {
            vec!["run".to_owned(), feature.to_owned()]
        } else {
            vec![feature.to_owned()]
        };
        let rounds_flag = settings
            .max_review_rounds_flag
            .map(|n| vec!["--max-review-rounds".to_owned(), n.to_string()])
            .unwrap_or_default();
        // The integration job's id is taken before any task's.
        let mut ids = Ids::default();
        ids.taken.insert(INTEGRATE_JOB.to_owned());
        Jobs {
            list,
            plan,
            feature,
            config,
            settings,
            is_review,
            rework_of,
            feature_words,
            run_options: run_options(settings),
            rounds_flag,
            ids,
            all: Vec::new(),
            units: HashMap::new(),
            earlier_gates: HashMap::new(),
        }
    }

    fn is_rework(&self, t: usize) -> bool {
        self.list.tasks[t].condition().next().is_some()
    }

    /// The reviews whose gates run rework `w`.
    fn serves(&self, w: usize) -> Vec<usize> {
        self.rework_of
            .iter()
            .filter(|&(_, &x)| x == w)
            .map(|(&r, _)| r)
            .collect()
    }

    /// Pending tasks that get no job, with why: a rework no gate runs, and a task the plan
    /// blocks.
    fn not_run(&self) -> Vec<NotRun> {
        let list = self.list;
        let mut not_run = Vec::new();
        for n in &self.plan.nodes {
            if self.is_rework(n.task) && self.serves(n.task).is_empty() {
                let pending: Vec<&str> = list.tasks[n.task]
                    .condition()
                    .filter(|&r| self.plan.node(r).is_some())
                    .map(|r| list.tasks[r].id.as_str())
                    .collect();
                let reason = if pending.is_empty() {
                    "every review it answers is done, so it is not needed".to_owned()
                } else {
                    format!(
                        "an earlier rework answers {} (a run would not run this one either)",
                        pending.join(", ")
                    )
                };
                not_run.push(NotRun {
                    task: list.tasks[n.task].id.clone(),
                    reason,
                });
            }
        }
        for (t, why) in &self.plan.blocked {
            not_run.push(NotRun {
                task: list.tasks[*t].id.clone(),
                reason: blocked_reason(list, why),
            });
        }
        not_run
    }

    /// The agent the job of task `t` (none: the integration job) sets up.
    fn agent_of(&self, t: Option<usize>) -> AgentSetup {
        let spec = match &self.settings.agent_flag {
            Some(line) => Some(match crate::agents::split_words(line) {
                Ok(words) if words.len() == 1 => config::AgentSpec::Preset(words[0].clone()),
                Ok(words) => config::AgentSpec::Argv(words),
                Err(_) => config::AgentSpec::Argv(vec![line.clone()]),
            }),
            None => t
                .and_then(|t| self.list.agent_of(t))
                .and_then(|name| self.config.agents.get(name))
                .or(self.config.agent.as_ref())
                .cloned(),
        };
        spec.as_ref().map_or(
            AgentSetup {
                agent: "none configured".to_owned(),
                tool: Tool::None,
                secrets: Vec::new(),
            },
            AgentSetup::of,
        )
    }

    /// `cargo spec-exec <feature> --task <id> --remote origin --push` and the run options.
    fn task_command(&self, id: &str) -> Vec<String> {
        let mut words = vec!["cargo".to_owned(), "spec-exec".to_owned()];
        words.extend(self.feature_words.iter().cloned());
        // Ids start with a letter or a digit, never with `-`.
        words.extend(["--task".to_owned(), id.to_owned()]);
        words.extend(["--remote", "origin", "--push"].map(str::to_owned));
        words.extend(self.run_options.iter().cloned());
        words
    }

    /// `Task <id>: <title>`, the title cut at 80 characters.
    fn title(&self, t: usize) -> String {
        let task = &self.list.tasks[t];
        let mut title: String = task.title.chars().take(80).collect();
        if title.len() < task.title.len() {
            title.push('…');
        }
        if title.is_empty() {
            format!("Task {}", task.id)
        } else {
            format!("Task {}: {title}", task.id)
        }
    }

    /// A job that runs task `t`, waiting for nothing yet.
    fn job(&mut self, raw_id: &str, name: String, kind: JobKind, t: usize) -> Job {
        Job {
            id: self.ids.take(raw_id),
            name,
            kind,
            task: Some(self.list.tasks[t].id.clone()),
            round: None,
            review: None,
            needs: Vec::new(),
            after: Vec::new(),
            when: None,
            verdict_output: false,
            agent: self.agent_of(Some(t)),
            commands: vec![self.task_command(&self.list.tasks[t].id)],
        }
    }

    /// Adds `job` as the next job, and gives its index.
    fn push(&mut self, job: Job) -> usize {
        self.all.push(job);
        self.all.len() - 1
    }

    /// The one job of a task that is neither a review nor a rework.
    fn plain_task(&mut self, t: usize) {
        let job = self.job(&self.list.tasks[t].id, self.title(t), JobKind::Task, t);
        let done = Cond::Succeeded {
            job: job.id.clone(),
        };
        let j = self.push(job);
        self.units.insert(
            t,
            Unit {
                jobs: vec![j],
                done,
            },
        );
    }

    /// The jobs of review `t`'s gate: round 1, then for each further round the rework's run
    /// that answers the round before, and the round. A review with no rework has one round.
    fn unroll_gate(&mut self, t: usize) {
        let rework = self.rework_of.get(&t).copied();
        let several = rework.is_some_and(|w| self.serves(w).len() > 1);
        let last_round = if rework.is_some() {
            self.settings.max_review_rounds.max(1)
        } else {
            1
        };
        let mut gate = Vec::new();
        for round in 1..=last_round {
            if round > 1
                && let Some(w) = rework
            {
                gate.push(self.rework_run(t, w, round - 1, several));
            }
            gate.push(self.review_round(t, round));
        }
        if several && let Some(w) = rework {
            self.after_earlier_gates(w, &gate);
        }
        let done = Cond::any(
            gate.iter()
                .filter(|&&j| self.all[j].kind == JobKind::Review)
                .map(|&j| Cond::Verdict {
                    job: self.all[j].id.clone(),
                    verdict: Verdict::Approved,
                })
                .collect(),
        );
        self.units.insert(t, Unit { jobs: gate, done });
    }

    /// The run of rework `w` that answers review `t`'s round `round`; `several`: the rework
    /// answers other reviews too, and its job ids name the review.
    fn rework_run(&mut self, t: usize, w: usize, round: u32, several: bool) -> usize {
        let id = &self.list.tasks[t].id;
        let wid = &self.list.tasks[w].id;
        let raw = match (several, round) {
            (false, 1) => wid.clone(),
            (false, k) => format!("{wid}-round-{k}"),
            (true, 1) => format!("{wid}-{id}"),
            (true, k) => format!("{wid}-{id}-round-{k}"),
        };
        let name = format!("Task {wid}: rework for {id} round {round} (if it asks for changes)");
        let review = id.clone();
        let mut job = self.job(&raw, name, JobKind::Rework, w);
        job.round = Some(round);
        job.review = Some(review);
        if let Some(words) = job.commands.first_mut() {
            words.extend(self.rounds_flag.iter().cloned());
        }
        self.push(job)
    }

    /// Round `round` of review `t`.
    fn review_round(&mut self, t: usize, round: u32) -> usize {
        let id = &self.list.tasks[t].id;
        let (raw, name) = if round == 1 {
            (id.clone(), format!("{} (round 1)", self.title(t)))
        } else {
            (
                format!("{id}-round-{round}"),
                format!("Task {id}: review round {round} (after the rework)"),
            )
        };
        let mut job = self.job(&raw, name, JobKind::Review, t);
        job.round = Some(round);
        job.verdict_output = true;
        if let Some(words) = job.commands.first_mut() {
            words.extend(self.rounds_flag.iter().cloned());
        }
        self.push(job)
    }

    /// Two runs of one rework must not run at once (the second would find the first's branch
    /// moved): rework `w`'s jobs in `gate` come after its jobs in the earlier gates, for their
    /// order only.
    fn after_earlier_gates(&mut self, w: usize, gate: &[usize]) {
        let earlier = self.earlier_gates.entry(w).or_default();
        for &j in gate {
            if self.all[j].kind == JobKind::Rework {
                self.all[j].after = earlier.iter().map(|&e| self.all[e].id.clone()).collect();
            }
        }
        earlier.extend(gate.iter().copied());
    }

    /// What waiting for task `d` means: its unit's jobs, or for a rework, the gates of the
    /// reviews it answers (it is done when they all approved).
    fn wait_for(&self, d: usize, needs: &mut Vec<String>, conds: &mut Vec<Cond>) {
        let targets: Vec<usize> = if self.is_rework(d) {
            self.serves(d)
        } else {
            vec![d]
        };
        for u in targets {
            if let Some(unit) = self.units.get(&u) {
                for &j in &unit.jobs {
                    if !needs.contains(&self.all[j].id) {
                        needs.push(self.all[j].id.clone());
                    }
                }
                if !conds.contains(&unit.done) {
                    conds.push(unit.done.clone());
                }
            }
        }
    }

    /// Sets what every job needs and when it runs.
    fn wire(&mut self, order: &[&plan::Node]) {
        let wiring: Vec<_> = order.iter().flat_map(|n| self.waits_of(n)).collect();
        for (j, needs, conds) in wiring {
            self.all[j].when = Cond::when(&needs, conds);
            self.all[j].needs = needs;
        }
    }

    /// What each job of task `n` waits for: the first, the task's dependencies; in a gate, a
    /// rework's run the round before it, and a later round the rework's run before it.
    fn waits_of(&self, n: &plan::Node) -> Vec<(usize, Vec<String>, Vec<Cond>)> {
        let Some(unit) = self.units.get(&n.task) else {
            return Vec::new();
        };
        let mut needs = Vec::new();
        let mut conds = Vec::new();
        for &d in &n.deps {
            self.wait_for(d, &mut needs, &mut conds);
        }
        let mut waits = Vec::new();
        let mut before: Option<usize> = None;
        for &j in &unit.jobs {
            let (needs, conds) = match (self.all[j].kind, before) {
                (JobKind::Rework, _) => {
                    let review = before.map(|b| self.all[b].id.clone()).unwrap_or_default();
                    self.rework_waits(self.rework_of[&n.task], review)
                }
                (_, Some(b)) => {
                    let rework = self.all[b].id.clone();
                    (vec![rework.clone()], vec![Cond::Succeeded { job: rework }])
                }
                (_, None) => (needs.clone(), conds.clone()),
            };
            waits.push((j, needs, conds));
            before = Some(j);
        }
        waits
    }

    /// What every task of the plan done means: the conditions of waiting for them all.
    fn all_done(&self, order: &[&plan::Node]) -> Vec<Cond> {
        let mut conds = Vec::new();
        for n in order {
            self.wait_for(n.task, &mut Vec::new(), &mut conds);
        }
        conds
    }

    /// What a run of rework `w` waits for: the review round before it asking for changes, and
    /// the rework's dependencies other than the reviews it answers.
    fn rework_waits(&self, w: usize, review_job: String) -> (Vec<String>, Vec<Cond>) {
        let mut needs = vec![review_job.clone()];
        let mut conds = vec![Cond::Verdict {
            job: review_job,
            verdict: Verdict::Changes,
        }];
        let reviews: Vec<usize> = self.list.tasks[w].condition().collect();
        if let Some(node) = self.plan.node(w) {
            for &d in node.deps.iter().filter(|d| !reviews.contains(d)) {
                self.wait_for(d, &mut needs, &mut conds);
            }
        }
        (needs, conds)
    }

    /// The last job: after every job of `jobs`, when every task is done (`conds`). It reads the
    /// review rounds' verdicts, which only the jobs it needs directly show.
    fn integrate_job(&self, jobs: &[Job], conds: Vec<Cond>) -> Job {
        let feature = self.feature;
        let words = |verb: &str, extra: &[String]| {
            let mut words = ["cargo", "spec-exec", verb, feature]
                .map(str::to_owned)
                .to_vec();
            words.extend(extra.iter().cloned());
            words
        };
        let needs: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        Job {
            id: INTEGRATE_JOB.to_owned(),
            name: format!("Integrate {feature} and open its pull request"),
            kind: JobKind::Integrate,
            task: None,
            round: None,
            review: None,
            when: Cond::when(&needs, conds),
            needs,
            after: Vec::new(),
            verdict_output: false,
            agent: self.agent_of(None),
            commands: vec![
                words(
                    "sync",
                    &["--remote", "origin", "--commit"].map(str::to_owned),
                ),
                words("land", &self.run_options),
                words("pr", &["--remote", "origin"].map(str::to_owned)),
            ],
        }
    }
}

/// Whether `word` is one of the commands (`cargo spec-exec list` is not a run of `list`).
fn is_command_word(word: &str) -> bool {
    let cli = <crate::cli::Cli as clap::CommandFactory>::command();
    cli.get_subcommands()
        .any(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word))
}

/// The jobs in an order where each comes after every job it needs (their order otherwise);
/// when they wait for each other in a circle, the jobs that could not be placed.
fn topological(jobs: &[Job]) -> std::result::Result<Vec<usize>, Vec<usize>> {
    let index = job_index(jobs);
    let mut waiting: Vec<usize> = jobs.iter().map(|j| j.needs.len() + j.after.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (i, j) in jobs.iter().enumerate() {
        for p in waits_directly(j, &index) {
            dependents[p].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..jobs.len()).filter(|&i| waiting[i] == 0).collect();
    let mut out = Vec::with_capacity(jobs.len());
    while let Some(i) = ready.pop_first() {
        out.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if out.len() == jobs.len() {
        Ok(out)
    } else {
        Err((0..jobs.len()).filter(|&i| waiting[i] > 0).collect())
    }
}

/// What each job waits for, directly or not: one bit set per job, the jobs in topological
/// order (everything a job needs comes before it).
fn ancestors(jobs: &[Job]) -> Vec<Vec<u64>> {
    let words = jobs.len().div_ceil(64);
    let index = job_index(jobs);
    let mut anc: Vec<Vec<u64>> = Vec::with_capacity(jobs.len());
    for j in jobs {
        let mut set = vec![0u64; words];
        for p in waits_directly(j, &index) {
            add(&mut set, p, &anc[p]);
        }
        anc.push(set);
    }
    anc
}

/// Each job's index by its id.
fn job_index(jobs: &[Job]) -> HashMap<&str, usize> {
    jobs.iter()
        .enumerate()
        .map(|(i, j)| (j.id.as_str(), i))
        .collect()
}

/// The jobs `job` needs or comes after, by index.
fn waits_directly<'a>(
    job: &'a Job,
    index: &'a HashMap<&str, usize>,
) -> impl Iterator<Item = usize> + 'a {
    job.needs
        .iter()
        .chain(&job.after)
        .filter_map(|n| index.get(n.as_str()).copied())
}

fn has(set: &[u64], i: usize) -> bool {
    set[i / 64] & (1 << (i % 64)) != 0
}

/// Adds job `p` and the jobs it waits for (`of_p`) to `set`.
fn add(set: &mut [u64], p: usize, of_p: &[u64]) {
    set[p / 64] |= 1 << (p % 64);
    for (w, a) in set.iter_mut().zip(of_p) {
        *w |= a;
    }
}

/// The most jobs that can run at once: the largest set of jobs none of which waits for
/// another (by Dilworth's theorem, the jobs less a maximum matching of "runs before").
fn width(jobs: &[Job]) -> usize {
    let anc = ancestors(jobs);
    let n = jobs.len();
    // before[a]: the jobs that wait for a.
    let mut before: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (b, set) in anc.iter().enumerate() {
        for (a, list) in before.iter_mut().enumerate() {
            if has(set, a) {
                list.push(b);
            }
        }
    }
    let mut matched: Vec<Option<usize>> = vec![None; n];
    fn augment(
        a: usize,
        before: &[Vec<usize>],
        seen: &mut [bool],
        matched: &mut [Option<usize>],
    ) -> bool {
        for &b in &before[a] {
            if seen[b] {
                continue;
            }
            seen[b] = true;
            if matched[b].is_none_or(|other| augment(other, before, seen, matched)) {
                matched[b] = Some(a);
                return true;
            }
        }
        false
    }
    let mut matching = 0;
    for a in 0..n {
        let mut seen = vec![false; n];
        if augment(a, &before, &mut seen, &mut matched) {
            matching += 1;
        }
    }
    n - matching
}

/// Orders the jobs (in topological order) so that at most `slots` of them can run at once:
/// each job goes to the slot that frees first (counting every job as one unit of time), after
/// the slot's last job. Returns how many orders were added ([`Job::after`]); a slot's last job
/// that the job already waits for needs none.
fn keep_to(jobs: &mut [Job], slots: usize) -> usize {
    let index = job_index(jobs);
    let words = jobs.len().div_ceil(64);
    let mut anc: Vec<Vec<u64>> = Vec::with_capacity(jobs.len());
    let mut finish = vec![0usize; jobs.len()];
    // Each slot: when it frees, and its last job.
    let mut lanes: Vec<(usize, Option<usize>)> = vec![(0, None); slots.max(1)];
    // The orders to add: a job, and the job it comes after.
    let mut orders: Vec<(usize, usize)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let mut set = vec![0u64; words];
        let mut ready = 0;
        for p in waits_directly(job, &index) {
            add(&mut set, p, &anc[p]);
            ready = ready.max(finish[p]);
        }
        // The slot free soonest; among equals, one whose last job this job waits for anyway.
        let lane = (0..lanes.len())
            .min_by_key(|&l| {
                let (free, last) = lanes[l];
                let ordered = last.is_none_or(|p| has(&set, p));
                (free.max(ready), !ordered, l)
            })
            .unwrap_or(0);
        let (free, last) = lanes[lane];
        if let Some(p) = last
            && !has(&set, p)
        {
            orders.push((i, p));
            add(&mut set, p, &anc[p]);
        }
        finish[i] = free.max(ready) + 1;
        lanes[lane] = (finish[i], Some(i));
        anc.push(set);
    }
    for &(i, p) in &orders {
        let id = jobs[p].id.clone();
        jobs[i].after.push(id);
    }
    orders.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_identifiers() {
        assert_eq!(job_id_base("CR-A"), "CR-A");
        assert_eq!(job_id_base("2.1"), "task-2_1");
        assert_eq!(job_id_base("3@2"), "task-3_2");
        assert_eq!(job_id_base("T001"), "T001");
        assert_eq!(job_id_base("-x"), "task--x");
        let mut ids = Ids::default();
        assert_eq!(ids.take("3.2"), "task-3_2");
        assert_eq!(ids.take("3@2"), "task-3_2-2");
        assert_eq!(ids.take("cr-a"), "cr-a");
        assert_eq!(ids.take("CR-A"), "CR-A-2");
    }

    fn job(id: &str, needs: &[&str]) -> Job {
        Job {
            id: id.to_owned(),
            name: id.to_owned(),
            kind: JobKind::Task,
            task: Some(id.to_owned()),
            round: None,
            review: None,
            needs: needs.iter().map(|s| (*s).to_owned()).collect(),
            after: Vec::new(),
            when: None,
            verdict_output: false,
            agent: AgentSetup {
                agent: "shell".to_owned(),
                tool: Tool::None,
                secrets: Vec::new(),
            },
            commands: Vec::new(),
        }
    }

    #[test]
    fn width_is_the_largest_set_of_jobs_that_can_run_together() {
        // a → b → c, and d, e alone: {c, d, e} or {a, d, e}.
        let jobs = [
            job("a", &[]),
            job("b", &["a"]),
            job("c", &["b"]),
            job("d", &[]),
            job("e", &[]),
        ];
        assert_eq!(width(&jobs), 3);
        // A diamond: b and c together.
        let jobs = [
            job("a", &[]),
            job("b", &["a"]),
            job("c", &["a"]),
            job("d", &["b", "c"]),
        ];
        assert_eq!(width(&jobs), 2);
    }

    #[test]
    fn slots_keep_the_jobs_that_can_run_together_to_their_number() {
        let mut jobs: Vec<Job> = (0..7).map(|i| job(&format!("j{i}"), &[])).collect();
        jobs.push(job("last", &["j0"]));
        for slots in 1..=7 {
            let mut laid = jobs.clone();
            keep_to(&mut laid, slots);
            let laid: Vec<Job> = laid
                .into_iter()
                .map(|mut j| {
                    j.needs.append(&mut j.after);
                    j
                })
                .collect();
            assert_eq!(width(&laid), slots.min(7), "{slots} slots");
        }
    }
}
