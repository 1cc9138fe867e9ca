//! One job as a pipeline of steps: prepare (branch, base, worktree) → agent → verdict →
//! commit → clean up. Each step either lets the job go on or ends it with a status and a
//! reason; a new step (verification, conflict resolution) is one more entry in [`PIPELINE`]
//! and one more function. Blocking work (git, files) runs on the blocking pool, never on the
//! async loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

mod attempt;
pub mod integrate;
mod merge;

use super::process::Stop;
use super::review;
use super::scheduler::{Base, Finished, Role, Start};
use super::slots::{Release, Slot, Slots};
use super::state::worktree_prefix;
use crate::agents::{self, Agent};
use crate::config::VerifyCommand;
use crate::error::Result;
use crate::git::{self, Git};
use crate::report::{Status, TaskReport};
use crate::spec::TaskList;

/// A handle on the repository, given back to the run's [`Ctx`] when dropped.
#[derive(Debug)]
pub struct Handle<'a> {
    git: Option<(Git, git::ConfigStamp)>,
    pool: &'a std::sync::Mutex<Vec<(Git, git::ConfigStamp)>>,
}

impl std::ops::Deref for Handle<'_> {
    type Target = Git;
    fn deref(&self) -> &Git {
        match &self.git {
            Some((git, _)) => git,
            None => unreachable!("a handle holds its Git until dropped"),
        }
    }
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        if let Some(git) = self.git.take() {
            self.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(git);
        }
    }
}

/// What every job of the run shares.
#[derive(Debug)]
pub struct Ctx {
    /// When the run started.
    pub started: Instant,
    pub feature: String,
    /// The feature's run state (`<git-common-dir>/spec-exec/<feature>`).
    pub state_dir: PathBuf,
    pub root: PathBuf,
    /// The repository's working tree (the workspace root or above it).
    pub workdir: PathBuf,
    /// The feature directory relative to the repository's working tree.
    pub spec_rel: PathBuf,
    pub spec_abs: PathBuf,
    /// Where the run's worktrees (the integration's) are made.
    pub worktrees: PathBuf,
    /// The worktrees the tasks run in, reused from task to task.
    pub slots: Slots,
    /// The agents' process groups, for stopping them after a crash.
    pub registry: PathBuf,
    pub run_dir: PathBuf,
    pub run_id: String,
    pub base: git2::Oid,
    /// Tips of the feature's task and round branches when the run started: a round branch
    /// left at one of them by an earlier run holds nothing but spec-exec's work.
    pub known: Vec<git2::Oid>,
    pub timeout: Duration,
    pub grace: Duration,
    /// What verifies a task's work, run in the worktree's copy of the workspace root.
    pub verify: Vec<VerifyCommand>,
    /// `verify` is the default (`cargo check`): it applies only where the worktree has the
    /// workspace's Cargo.toml.
    pub verify_default: bool,
    /// How many times an agent runs for one step before the task fails.
    pub max_attempts: u32,
    /// Conflicts between a task's dependencies' branches go to the agent.
    pub resolve: bool,
    /// The workspace root relative to the repository's working tree.
    pub root_rel: PathBuf,
    /// How long the run waits for agents' limits to reset, in all.
    pub max_wait: Duration,
    /// Where what the agents are doing goes, as they do it (to the driver).
    pub progress: Option<tokio::sync::mpsc::UnboundedSender<crate::report::Event>>,
    /// Handles on the repository that operations gave back, for the next ones.
    pub handles: std::sync::Mutex<Vec<(Git, git::ConfigStamp)>>,
    /// The branches this run committed a task on, with the commit.
    pub committed: std::sync::Mutex<std::collections::HashMap<String, git2::Oid>>,
}

impl Ctx {
    /// A handle on the repository for one operation: jobs do not queue behind each other's
    /// checkouts and commits. A job's git work touches its own branch, worktree and index, and
    /// objects, which git writes safely side by side; what changes the set of worktrees is
    /// serialised inside [`Git`]. The handle goes back to the run when dropped, and the next
    /// operation takes it rather than open the repository again (reading its configuration
    /// and, once more, the trees it had read), unless a configuration file changed since it
    /// was opened; refs, the index and objects are read from disk each time, so a handle sees
    /// what others changed meanwhile.
    pub fn git(&self) -> Result<Handle<'_>> {
        let kept = self.handles.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let git = match kept {
            Some((git, stamp)) => {
                let now = git.config_stamp();
                if now == stamp {
                    (git, stamp)
                } else {
                    (Git::open(&self.workdir)?, now)
                }
            }
            None => {
                let git = Git::open(&self.workdir)?;
                let stamp = git.config_stamp();
                (git, stamp)
            }
        };
        Ok(Handle {
            git: Some(git),
            pool: &self.handles,
        })
    }

    pub fn worktree(&self, run_name: &str) -> PathBuf {
        self.worktrees.join(run_name)
    }

    pub fn log(&self, run_name: &str) -> PathBuf {
        self.run_dir.join("logs").join(format!("{run_name}.log"))
    }

    fn prompt_file(&self, run_name: &str) -> PathBuf {
        self.run_dir.join("prompts").join(format!("{run_name}.md"))
    }

    /// Where the verify commands run in `worktree`: its copy of the workspace root.
    fn verify_dir(&self, worktree: &Path) -> PathBuf {
        let dir = worktree.join(&self.root_rel);
        if dir.is_dir() {
            dir
        } else {
            worktree.to_path_buf()
        }
    }

    /// The verify commands for `worktree`: none for the default where its tree has no
    /// Cargo package to check.
    pub(crate) fn verify_commands(&self, worktree: &Path) -> Vec<VerifyCommand> {
        if self.verify_default && !has_packages(&self.verify_dir(worktree).join("Cargo.toml")) {
            return Vec::new();
        }
        self.verify.clone()
    }
}

/// Whether the manifest at `path` is a package or a workspace with members: a virtual
/// manifest without members has nothing for `cargo check` to check (it fails on it).
fn has_packages(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        // Let cargo say what is wrong with it.
        return true;
    };
    doc.get("package").is_some()
        || doc
            .get("workspace")
            .and_then(|w| w.get("members"))
            .and_then(|m| m.as_array())
            .is_some_and(|m| !m.is_empty())
}

/// One job, ready to run: what the scheduler decided, with the prompt and agent it runs with.
#[derive(Debug, Clone)]
pub struct Job {
    pub start: Start,
    pub id: String,
    pub title: String,
    pub track: Option<String>,
    /// The name of its worktree, log and prompt: the id, with `.round-N` after the first run.
    pub run_name: String,
    /// A review's verdict file, relative to the worktree.
    pub verdict_file: Option<String>,
    pub prompt: String,
    /// The shell agent's commands: the task's ```sh and ```bash blocks.
    pub code_blocks: Vec<String>,
    pub agent: Agent,
    /// Its dependencies' branches, each with the task it holds (`task 2 “Title”`), for a
    /// prompt that resolves their conflicts.
    pub sides: Vec<(String, String)>,
    /// The worktree it runs in, given when it starts (see [`super::slots`]).
    pub slot: Option<Slot>,
}

impl Job {
    /// The job of `start`, with `prompt` (the task's prompt for its branch) and `agent`.
    pub fn new(list: &TaskList, start: Start, mut prompt: String, agent: Agent) -> Job {
        let t = start.task;
        let task = &list.tasks[t];
        let verdict_file = matches!(start.role, Role::Review { .. }).then(|| {
            let file = review::verdict_file(list, t);
            prompt.push_str(&review::review_prompt(
                &file,
                start.run,
                start.reworked_by.as_deref(),
            ));
            file
        });
        if let Some(f) = &start.findings {
            prompt.push_str(&review::rework_prompt(
                &list.tasks[f.review].id,
                f.round,
                &f.source,
                &f.text,
            ));
        }
        let sides = match &start.base {
            Base::Deps(branches) => branches
                .iter()
                .map(|b| (b.clone(), side_label(list, b)))
                .collect(),
            Base::Branch(_) => Vec::new(),
        };
        Job {
            sides,
            id: task.id.clone(),
            title: task.title.clone(),
            track: list.track_of(t).map(str::to_owned),
            run_name: review::round_name(&task.id, start.run),
            verdict_file,
            prompt,
            code_blocks: task
                .code_blocks
                .iter()
                .filter(|b| matches!(b.lang.as_deref(), Some("sh" | "bash" | "shell")))
                .map(|b| b.code.clone())
                .collect(),
            agent,
            start,
            slot: None,
        }
    }
}

/// The slot a job runs in: the one it kept when it goes on after its limit reset, else the
/// free slot whose tree is closest to a commit the task starts from (its dependencies' tips,
/// the branch it starts from, or the base), else a new one.
pub fn take_slot(ctx: &Ctx, job: &Job) -> Slot {
    let Ok(git) = ctx.git() else {
        return ctx.slots.acquire(&job.run_name, |_| 0);
    };
    let mut near: Vec<git2::Oid> = match &job.start.base {
        Base::Branch(from) => git.branch_tip(from).into_iter().collect(),
        Base::Deps(deps) => deps.iter().filter_map(|b| git.branch_tip(b)).collect(),
    };
    if near.is_empty() {
        near.push(ctx.base);
    }
    ctx.slots.acquire(&job.run_name, |at| {
        near.iter()
            .map(|&n| if n == at { 0 } else { git.tree_distance(at, n) })
            .min()
            .unwrap_or(usize::MAX)
    })
}

/// What a task branch holds, for a person or an agent: `task 2 “Title”`, or the branch when
/// no task of the list has it.
pub(crate) fn side_label(list: &TaskList, branch: &str) -> String {
    let last = branch.rsplit('/').next().unwrap_or(branch);
    let (name, round) = match last.rsplit_once(".round-") {
        Some((name, n)) if n.parse::<u32>().is_ok() => (name, Some(n)),
        _ => (last, None),
    };
    // Most ids are their branch's name already: found without making each task's.
    let task = list
        .tasks
        .iter()
        .find(|t| t.id == name)
        .or_else(|| list.tasks.iter().find(|t| git::ref_safe(&t.id) == name));
    match task {
        Some(t) => format!(
            "task {} “{}”{}",
            t.id,
            t.title,
            round.map(|n| format!(" (round {n})")).unwrap_or_default()
        ),
        None => format!("`{branch}`"),
    }
}

/// The steps of a job, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The branch at its base (dependencies merged), checked out in the job's slot.
    Prepare,
    /// Dependencies' branches that conflicted are merged in the worktree, the agent resolving
    /// the conflicts; the result is the task's base.
    Resolve,
    /// The agent runs in the worktree, attempt after attempt until its work passes verify.
    Agent,
    /// A review's verdict is read.
    Verdict,
    /// The worktree's changes are committed on the branch.
    Commit,
    /// The slot is free for the next task.
    Cleanup,
}

const PIPELINE: &[Step] = &[
    Step::Prepare,
    Step::Resolve,
    Step::Agent,
    Step::Verdict,
    Step::Commit,
    Step::Cleanup,
];

/// Why a job ended before its last step.
#[derive(Debug)]
struct End {
    status: Status,
    reason: String,
    /// The agent hit its usage or rate limit: when it resets (Unix seconds), when it said.
    rate_limited: Option<Option<u64>>,
}

impl End {
    fn failed(reason: impl Into<String>) -> End {
        End {
            status: Status::Failed,
            reason: reason.into(),
            rate_limited: None,
        }
    }
}

/// What the steps hand on to each other.
#[derive(Debug)]
struct Progress {
    report: TaskReport,
    worktree: PathBuf,
    /// Its name in git's records of worktrees.
    worktree_name: String,
    log: PathBuf,
    /// tasks.md as the worktree got it: the agent is not to change it.
    tasks_md_as_given: Option<Vec<u8>>,
    agent_started: Option<SystemTime>,
    verdict: Option<review::Read>,
    /// Where the verify commands' output goes.
    verify_log: PathBuf,
    /// Dependency tips still to merge into the worktree, from the first that conflicted.
    pending: Vec<(String, git2::Oid)>,
    /// The verify commands the work passed, for the commit's trailers.
    verified: Vec<String>,
    /// The agent's final message, when its stream has one.
    final_text: Option<String>,
    /// The agent's stream said it hit its usage or rate limit (and when it resets).
    rate_limited: Option<Option<u64>>,
    /// The verify commands, as decided on the job's base (an agent does not turn the default
    /// off by changing Cargo.toml).
    verify_commands: Option<Vec<VerifyCommand>>,
    /// What the agent and the verify commands run with besides spec-exec's own variables:
    /// where cargo builds (`CARGO_TARGET_DIR`).
    build_env: Vec<(String, String)>,
    /// The job's slot holds its branch (it was moved or made there).
    entered: bool,
    /// The slot of a task's job (the integration has a worktree of its own).
    slot: Option<Slot>,
    /// The commit its branch was set to: what it commits must build on it.
    base: Option<git2::Oid>,
    /// Its commit changed a `.gitattributes` since `base`: its slot is made again.
    remake: bool,
    /// The slot's repository as the last step opened it, for the next.
    opened: Option<git::Kept>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Runs `job` to its end; never fails: how it ended is in the report.
pub async fn run(ctx: Arc<Ctx>, mut job: Job, stop: watch::Receiver<Stop>) -> Finished {
    let started = Instant::now();
    let slot = job
        .slot
        .clone()
        .unwrap_or_else(|| ctx.slots.acquire(&job.run_name, |_| 0));
    let mut p = Progress {
        report: TaskReport::new(
            job.id.clone(),
            job.title.clone(),
            job.track.clone(),
            Status::Done,
        ),
        worktree: slot.path.clone(),
        worktree_name: slot.name.clone(),
        log: ctx.log(&job.run_name),
        tasks_md_as_given: None,
        agent_started: None,
        verdict: None,
        verify_log: ctx.log(&format!("{}.verify", job.run_name)),
        pending: Vec::new(),
        verified: Vec::new(),
        final_text: None,
        rate_limited: None,
        verify_commands: None,
        build_env: ctx.slots.env(slot.n),
        entered: false,
        slot: Some(slot.clone()),
        base: None,
        remake: false,
        opened: None,
    };
    let mut rate_limited = None;
    // Run again after its agent's limit reset: in the worktree it left, when that is still
    // the one spec-exec made, with nothing half-merged in it; else from the start.
    let resumed = job.start.resume.is_some() && resumable(&ctx, &job, &mut p).await;
    if !resumed {
        job.start.resume = None;
    }
    for &step in PIPELINE {
        let outcome = match step {
            Step::Prepare | Step::Resolve if resumed => Ok(()),
            Step::Prepare => prepare(&ctx, &job, &mut p).await,
            Step::Resolve => resolve(&ctx, &job, &mut p, &stop).await,
            Step::Agent => run_agent(&ctx, &job, &mut p, &stop).await,
            Step::Verdict => read_verdict(&job, &mut p).await,
            Step::Commit => commit(&ctx, &job, &mut p).await,
            Step::Cleanup => cleanup(&ctx, &job, &mut p).await,
        };
        if let Err(end) = outcome {
            p.report.status = end.status;
            p.report.reason = Some(end.reason);
            rate_limited = end.rate_limited;
            // A worktree kept for inspection, when the task got that far.
            p.report.worktree = (p.entered && p.worktree.exists()).then(|| p.worktree.clone());
            break;
        }
    }
    match p.report.status {
        Status::Done => {}
        _ if p.entered => ctx.slots.release(slot.n, Release::Kept),
        _ => ctx.slots.release(slot.n, Release::Unused),
    }
    p.report.duration_secs = started.elapsed().as_secs_f64();
    if p.report.status == Status::Done {
        p.report.verdict = p.verdict.as_ref().map(|r| r.verdict);
    }
    Finished {
        start: job.start,
        report: p.report,
        verdict: p.verdict,
        rate_limited,
    }
}

async fn prepare(ctx: &Arc<Ctx>, job: &Job, p: &mut Progress) -> Result<(), End> {
    let (made, result, verify) = {
        let ctx = Arc::clone(ctx);
        let job = job.clone();
        let slot = p.slot.clone();
        blocking(move || match slot {
            Some(slot) => {
                let (made, result) = prepare_worktree(&ctx, &job, &slot);
                // Decided on the job's base, before its agent can change Cargo.toml.
                let verify = result.is_ok().then(|| ctx.verify_commands(&slot.path));
                (made, result, verify)
            }
            None => (false, Err(End::failed("no worktree for the task")), None),
        })
        .await
    };
    if made {
        p.report.branch = Some(job.start.branch.clone());
    }
    let (pending, base, opened) = result?;
    (p.pending, p.base, p.opened) = (pending, Some(base), opened);
    p.entered = true;
    p.verify_commands = verify;
    Ok(())
}

/// Whether the worktree a job's agent left when its limit cut it short can be worked on again:
/// still the one spec-exec made, on the job's branch, with no merge in progress. If so, what
/// the steps before the agent's would have set is set.
async fn resumable(ctx: &Arc<Ctx>, job: &Job, p: &mut Progress) -> bool {
    let (ctx2, worktree, name, branch) = (
        Arc::clone(ctx),
        p.worktree.clone(),
        p.worktree_name.clone(),
        job.start.branch.clone(),
    );
    let tasks_md = ctx.spec_rel.join("tasks.md");
    let checked = blocking(move || {
        let common = ctx2.git().ok()?.common_dir();
        git::check_worktree(&common, &name, &worktree, &branch).ok()?;
        let repo = git2::Repository::open(&worktree).ok()?;
        (repo.state() == git2::RepositoryState::Clean).then(|| {
            (
                git::blob_at_head(&worktree, &tasks_md),
                ctx2.verify_commands(&worktree),
            )
        })
    })
    .await;
    let Some((given, verify)) = checked else {
        return false;
    };
    p.report.branch = Some(job.start.branch.clone());
    p.tasks_md_as_given = given;
    p.verify_commands = Some(verify);
    p.entered = true;
    true
}

/// What preparing a job leaves: the dependency tips still to merge in its worktree, and the
/// commit its branch was set to.
type Prepared = (Vec<(String, git2::Oid)>, git2::Oid, Option<git::Kept>);

/// Branch, base and worktree for a job. Whether the branch was set, and how it went: the
/// dependency tips still to merge in the worktree when some conflicted.
fn prepare_worktree(ctx: &Ctx, job: &Job, slot: &Slot) -> (bool, Result<Prepared, End>) {
    let git = match ctx.git() {
        Ok(git) => git,
        Err(e) => return (false, Err(End::failed(e.to_string()))),
    };
    let (base, pending) = match job_base(ctx, &git, job) {
        Ok(Ok(base)) => (base, Vec::new()),
        Ok(Err(Based::Failed(why))) => return (false, Err(End::failed(why))),
        Ok(Err(Based::Conflict(c))) if ctx.resolve => (c.at, c.rest),
        Ok(Err(Based::Conflict(c))) => {
            return (
                false,
                Err(End::failed(format!(
                    "{}; {}",
                    conflict_text(&c.paths),
                    manual_merge_hint(job)
                ))),
            );
        }
        Err(e) => return (false, Err(End::failed(e.to_string()))),
    };
    // The branch is moved only if that loses nothing but spec-exec's work: commits made on it
    // since the run started (by hand, meanwhile) stop the task instead.
    let mut known = ctx.known.clone();
    known.extend([base, ctx.base]);
    if !git.only_spec_exec_work(&job.start.branch, &known, &worktree_prefix(&ctx.feature)) {
        return (
            false,
            Err(End::failed(format!(
                "branch `{}` has commits spec-exec did not make, or is checked out elsewhere; it was not moved (keep that work on another branch, then run again)",
                job.start.branch
            ))),
        );
    }
    if let Err(e) = git.set_branch(&job.start.branch, base, true) {
        return (false, Err(End::failed(e.to_string())));
    }
    let added = ctx
        .slots
        .enter(&git, slot, &job.start.branch)
        .map_err(|e| End::failed(e.to_string()));
    (true, added.map(|opened| (pending, base, opened)))
}

fn conflict_text(paths: &[String]) -> String {
    format!(
        "the branches of its dependencies conflict in {}",
        some_paths(paths)
    )
}

/// The first ten paths of a list and how many more: a reason stays one readable line however
/// many files conflict (`git status` in the worktree lists them all).
pub(crate) fn some_paths(paths: &[String]) -> String {
    crate::output::first_of(paths, 10)
}

/// How a person brings a task's dependencies together by hand.
fn merge_hint(job: &Job) -> String {
    let branches: Vec<String> = job.sides.iter().map(|(b, _)| format!("`{b}`")).collect();
    format!(
        "run again to have the agent try again, or merge {} yourself on branch `{}` (in the worktree kept for it, resolve the conflicts and `git commit`) and run again: the task then builds on your merge",
        branches.join(" and "),
        job.start.branch
    )
}

/// The same, when the agent does not resolve conflicts (`--no-resolve`).
fn manual_merge_hint(job: &Job) -> String {
    let mut sides = job.sides.iter().map(|(b, _)| b.as_str());
    let first = sides.next().unwrap_or_default();
    let rest: Vec<&str> = sides.collect();
    let dir = format!("../merge-{}", git::ref_safe(&job.id));
    format!(
        "merge them yourself in a worktree of your own and run again, the task then builds on your merge: `git worktree add -b {} {dir} {first}`, then in {dir} `git merge {}`, resolve and commit, then `git worktree remove {dir}`; or run without --no-resolve to have the agent resolve them",
        job.start.branch,
        rest.join(" ")
    )
}

/// Why a job has no base.
enum Based {
    Failed(String),
    Conflict(git::Conflict),
}

/// The commit a job starts from: the branch it is told to start from (a review round, a
/// rework), else its dependencies' tips (merged when several), else the base.
fn job_base(ctx: &Ctx, git: &Git, job: &Job) -> Result<std::result::Result<git2::Oid, Based>> {
    let deps = match &job.start.base {
        Base::Branch(from) => {
            let Some(base) = git.branch_tip(from) else {
                return Ok(Err(Based::Failed(format!(
                    "the branch `{from}` it starts from is gone"
                ))));
            };
            // A round branch left by an earlier run is moved only if that loses nothing.
            let mut known = ctx.known.clone();
            known.push(base);
            if !git.only_spec_exec_work(&job.start.branch, &known, &worktree_prefix(&ctx.feature)) {
                return Ok(Err(Based::Failed(format!(
                    "branch `{}` already exists, with commits spec-exec did not make (delete or rename it)",
                    job.start.branch
                ))));
            }
            return Ok(Ok(base));
        }
        Base::Deps(deps) => deps,
    };
    let mut tips: Vec<(String, git2::Oid)> = Vec::new();
    let mut needs_base = deps.is_empty();
    for b in deps {
        match git.branch_tip(b) {
            Some(tip) => tips.push((b.clone(), tip)),
            None => {
                let done_here = ctx
                    .committed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(b)
                    .copied();
                if let Some(at) = done_here {
                    return Ok(Err(Based::Failed(format!(
                        "the branch `{b}` of a dependency done in this run is gone (deleted or renamed meanwhile); put it back with `git branch {b} {at}` and run again"
                    ))));
                }
                // Done before spec-exec, or not needed: its work is in the base.
                needs_base = true;
            }
        }
    }
    if needs_base {
        tips.insert(0, ("base".to_owned(), ctx.base));
    }
    if tips.len() == 1 {
        return Ok(Ok(tips[0].1));
    }
    // The branch holds their merge already (resolved by an earlier run, or by hand after one
    // failed): the task builds on it rather than on a new merge.
    if let Some(tip) = git.branch_tip(&job.start.branch) {
        let parts: Vec<git2::Oid> = tips.iter().map(|&(_, t)| t).collect();
        if git.task_commit(&job.start.branch).is_none() && git.merge_of(tip, &parts) {
            return Ok(Ok(tip));
        }
    }
    let names: Vec<&str> = tips.iter().map(|(b, _)| b.as_str()).collect();
    let message = base_message(ctx, job, &names, &[], &[]);
    Ok(git.merge_tips(&tips, &message)?.map_err(Based::Conflict))
}

/// The message of the merge commit a task starts from, with the paths whose conflicts an
/// agent resolved and the verify commands that passed on it.
fn base_message(
    ctx: &Ctx,
    job: &Job,
    merged: &[&str],
    resolved: &[String],
    verified: &[String],
) -> String {
    let mut m = format!(
        "{}: base of {}\n\nMerge of {}\n\n{}: {}\n{}: {}\n",
        ctx.feature,
        job.id,
        merged.join(", "),
        git::FEATURE_TRAILER,
        ctx.feature,
        git::BASE_TRAILER,
        job.id,
    );
    m.push_str(&git::outcome_trailers(resolved, verified));
    m
}

/// The argvs that run a job: the agent's command, or the shell agent's blocks in turn.
fn argvs(
    agent: &Agent,
    code_blocks: &[String],
    prompt_file: &Path,
    target_dir: Option<&str>,
) -> Result<Vec<Vec<String>>, End> {
    match agent {
        Agent::Shell if code_blocks.is_empty() => Err(End::failed(
            "the shell agent found no ```sh or ```bash block in this task",
        )),
        // `-x`: the log shows each command, so a failure says which one.
        Agent::Shell => Ok(code_blocks
            .iter()
            .map(|code| {
                ["bash", "-xeuo", "pipefail", "-c", code]
                    .map(str::to_owned)
                    .to_vec()
            })
            .collect()),
        Agent::Command { argv, .. } => Ok(vec![
            argv.iter()
                .map(|a| {
                    a.replace(agents::PROMPT_FILE, &prompt_file.display().to_string())
                        .replace(agents::TARGET_DIR, target_dir.unwrap_or("target"))
                })
                .collect(),
        ]),
    }
}

/// Merges the dependency tips that conflicted into the worktree, one by one: a clean merge is
/// committed at once, a conflicting one goes to the agent (`SPEC_EXEC_STEP=resolve`) and is
/// committed, with the resolved paths and the verify commands it passed in its trailers, once
/// no conflict marker is left and it passes verify.
async fn resolve(
    ctx: &Arc<Ctx>,
    job: &Job,
    p: &mut Progress,
    stop: &watch::Receiver<Stop>,
) -> Result<(), End> {
    let merged = !p.pending.is_empty();
    while let Some((branch, tip)) = p.pending.first().cloned() {
        // Its dependencies' branches, the one merged now last.
        let mut names: Vec<&str> = job
            .sides
            .iter()
            .map(|(b, _)| b.as_str())
            .filter(|b| *b != branch)
            .collect();
        names.push(&branch);
        let message =
            |paths: &[String], verified: &[String]| base_message(ctx, job, &names, paths, verified);
        let prompt = |paths: &[String]| {
            crate::exec::prompt::resolve(
                &ctx.feature,
                crate::exec::prompt::Resolving::Base {
                    id: &job.id,
                    title: &job.title,
                },
                &job.sides,
                &branch,
                paths,
            )
        };
        let joined = merge::merge(
            ctx,
            attempt::Who::of(job),
            p,
            stop,
            merge::Merge {
                branch: &branch,
                tip,
                ours: format!("base of {}", job.id),
                message: &message,
                prompt: &prompt,
                prompt_file: ctx.prompt_file(&format!("{}.resolve", job.run_name)),
            },
        )
        .await
        .map_err(|mut f| {
            if f.end.status == Status::Failed && !f.paths.is_empty() {
                f.end.reason = format!(
                    "{}; {}; {}",
                    conflict_text(&f.paths),
                    f.end.reason,
                    merge_hint(job)
                );
            }
            f.end
        })?;
        if let merge::Joined::Resolved { paths, .. } = joined {
            p.report.resolved.extend(paths);
        }
        p.pending.remove(0);
    }
    if merged {
        // The base is complete now: the merge of the dependencies just committed.
        let worktree = p.worktree.clone();
        p.base = Some(
            blocking(move || git::head_of(&worktree))
                .await
                .map_err(|e| End::failed(e.to_string()))?,
        );
    }
    // tasks.md as the task's agent gets it, now that its base is complete.
    let tasks_md = p.worktree.join(ctx.spec_rel.join("tasks.md"));
    p.tasks_md_as_given = blocking(move || std::fs::read(tasks_md).ok()).await;
    Ok(())
}

/// The agent does the task (or the review), attempt after attempt until its work passes.
async fn run_agent(
    ctx: &Arc<Ctx>,
    job: &Job,
    p: &mut Progress,
    stop: &watch::Receiver<Stop>,
) -> Result<(), End> {
    let step = attempt::Step {
        kind: if job.verdict_file.is_some() {
            attempt::Kind::Review
        } else {
            attempt::Kind::Task
        },
        prompt: job.prompt.clone(),
        prompt_file: ctx.prompt_file(&job.run_name),
        conflicts: None,
        verify_always: false,
        check_first: false,
    };
    let passed = attempt::run(ctx, attempt::Who::of(job), p, stop, step).await?;
    p.verified = passed.verified;
    Ok(())
}

/// The last line of an agent's output that says something (at most 200 characters).
fn last_line(log: &Path) -> Option<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(log).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    last_printable(&String::from_utf8_lossy(&bytes))
}

/// The last line of `text` that says something, without terminal escapes or control
/// characters (output shown to a person must not drive their terminal), at most 200
/// characters.
fn last_printable(text: &str) -> Option<String> {
    let text = console::strip_ansi_codes(text);
    let line = text
        .lines()
        .map(|l| {
            l.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
        })
        .map(|l| l.trim().to_owned())
        .rfind(|l| !l.is_empty())?;
    Some(console::truncate_str(&line, 200, "…").into_owned())
}

/// A review's verdict: its file, else its output. No verdict, no review.
async fn read_verdict(job: &Job, p: &mut Progress) -> Result<(), End> {
    let Some(file) = job.verdict_file.clone() else {
        return Ok(());
    };
    let (worktree, log) = (p.worktree.clone(), p.log.clone());
    let started = p.agent_started.unwrap_or_else(SystemTime::now);
    let read = {
        let (file, final_text) = (file.clone(), p.final_text.clone());
        blocking(move || {
            review::read_verdict(&worktree, &file, &log, started, final_text.as_deref())
        })
        .await
    };
    match read {
        Some(read) => {
            p.verdict = Some(read);
            Ok(())
        }
        None => Err(End::failed(format!(
            "no verdict found in `{file}` or the agent's output (a review ends with APPROVED or REQUIRES CHANGES)"
        ))),
    }
}

async fn commit(ctx: &Arc<Ctx>, job: &Job, p: &mut Progress) -> Result<(), End> {
    let message = review::commit_message(
        &ctx.feature,
        &job.id,
        &job.title,
        job.start.role.round().unwrap_or(1),
        p.verdict.as_ref().map(|r| r.verdict),
    );
    let message = message + &git::outcome_trailers(&[], &p.verified);
    let is_review = p.verdict.is_some();
    let tasks_md = ctx.spec_rel.join("tasks.md");
    let kept = p.log.with_extension("tasks.md");
    let (ctx2, worktree, log, given) = (
        Arc::clone(ctx),
        p.worktree.clone(),
        p.log.clone(),
        p.tasks_md_as_given.clone(),
    );
    let (name, branch, base) = (p.worktree_name.clone(), job.start.branch.clone(), p.base);
    let opened = p.opened.take();
    let committed = blocking(move || {
        let git = ctx2.git()?;
        let wt =
            git::check_worktree_reusing(&git.common_dir(), &name, &worktree, &branch, opened)?;
        // An agent that reset its branch to an older commit would have the task's work
        // committed without its base.
        if let Some(base) = base {
            let head = git::head_oid(&wt.repo())?;
            if !git.contains(head, base) {
                return Err(crate::error::Error::user(format!(
                    "the agent moved `{branch}` off the commit the task started from ({}, now {}); nothing was committed",
                    &base.to_string()[..12],
                    &head.to_string()[..12]
                )));
            }
        }
        keep_tasks_md_out(&worktree, &tasks_md, (given.as_deref(), base), &kept, &log)?;
        let sig = git.signature();
        let committed = git::commit_in(&wt.repo(), &message, &sig, is_review, base)?;
        Ok((committed, wt))
    })
    .await;
    match committed {
        Err(e) => Err(End::failed(e.to_string())),
        Ok((None, _)) => Err(End::failed(
            "the agent reported success but changed nothing",
        )),
        Ok((Some(c), wt)) => {
            ctx.committed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(job.start.branch.clone(), c.oid);
            p.opened = Some(wt);
            p.report.commit = Some(c.oid.to_string());
            p.report.files_changed = Some(c.files_changed);
            // The commit is on `base` when there is one: its changes are the task's since
            // the slot's files were checked out there.
            p.remake = p.base.is_some() && c.attributes_changed;
            Ok(())
        }
    }
}

/// tasks.md is spec-exec's to tick, in the user's tree: an agent that ticked it in the
/// worktree anyway (some spec tools' prompts say to) would make every join of two such
/// branches conflict. What it wrote there is kept beside its log, and the log says so.
fn keep_tasks_md_out(
    worktree: &Path,
    tasks_md: &Path,
    (given, from): (Option<&[u8]>, Option<git2::Oid>),
    kept: &Path,
    log: &Path,
) -> Result<()> {
    let before = std::fs::read(worktree.join(tasks_md)).ok();
    if before.as_deref() != given {
        // From where the task started: HEAD holds what an agent committed itself.
        git::restore_from(worktree, tasks_md, from)?;
    }
    if let Some(before) = before
        && std::fs::read(worktree.join(tasks_md)).ok().as_ref() != Some(&before)
    {
        let _ = std::fs::write(kept, &before);
        let note = format!(
            "\nspec-exec: this agent changed tasks.md; the change is not committed (spec-exec ticks tasks.md itself). Its version is kept in {}\n",
            kept.display()
        );
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .open(log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, note.as_bytes()));
    }
    Ok(())
}

/// The work is committed: its slot is free for the next task, its HEAD detached so that the
/// branch is checked out nowhere. A slot that cannot be freed is reported (and made again by
/// the next task that takes it), and the task stays done.
async fn cleanup(ctx: &Arc<Ctx>, _job: &Job, p: &mut Progress) -> Result<(), End> {
    let left = {
        let ctx = Arc::clone(ctx);
        let (slot, opened, remake) = (p.slot.clone(), p.opened.take(), p.remake);
        blocking(move || match slot {
            Some(slot) => ctx.slots.leave(&*ctx.git()?, &slot, opened, remake),
            None => Ok(()),
        })
        .await
    };
    if let Err(e) = left {
        p.report.reason = Some(format!("committed, but its worktree was not freed: {e}"));
    }
    Ok(())
}
