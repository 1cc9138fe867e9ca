//! One task at a time (`--task ID`): a run of only the selected tasks, whose dependencies were
//! done before (ticked, or finished on their branches, perhaps fetched from a remote), as one
//! job of a CI workflow runs it. Nothing else starts and nothing waits; tasks.md is not ticked
//! and the integration branch is not built (the branches carry the state); a review gate goes
//! one step (a round, or a rework's run) per run. With `--push`, each task's branches go to the
//! remote after its commit, with a lease.
//!
//! For a workflow's job outputs, the run appends `status-<key>=…` (and a review's
//! `verdict=…`, `verdict-<key>=…`) to the file `GITHUB_OUTPUT` names; [`output_key`] makes the
//! key of a task id.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::remote::{self, Fetched, PushError};
use super::review;
use super::scheduler::{Earlier, report_of};
use crate::error::{Error, Result};
use crate::git;
use crate::plan::{Blocked, Plan};
use crate::report::{Status, TaskReport, Verdict};
use crate::spec::TaskList;
use crate::spec::model::TaskState;

/// What `--task`, `--remote` and `--push` ask of a run.
#[derive(Debug, Clone, Default)]
pub struct TaskMode {
    /// The selected leaf tasks (a container's pending sub-tasks), in document order.
    pub selected: Vec<usize>,
    /// What was fetched from `--remote` before planning.
    pub fetched: Option<Fetched>,
}

/// The key of task `id` in a workflow's job outputs: the id with every character outside
/// `[A-Za-z0-9_-]` replaced by `_` (`5.1` is `5_1`, `CR-A` stays `CR-A`). A run with `--task`
/// writes `status-<key>` and, for a review, `verdict-<key>`.
pub fn output_key(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The leaf tasks `ids` name, in document order: a container's leaves that are not done
/// (all of them when every one is). An unknown id is an error naming the known ones.
pub fn select(list: &TaskList, ids: &[String]) -> Result<Vec<usize>> {
    let mut selected = BTreeSet::new();
    let mut unknown = Vec::new();
    for id in ids {
        let Some(i) = list.find(id.trim()) else {
            unknown.push(format!("`{id}`"));
            continue;
        };
        let leaves = list.leaves_of(i);
        let pending: Vec<usize> = leaves
            .iter()
            .copied()
            .filter(|&l| list.tasks[l].state != TaskState::Done)
            .collect();
        selected.extend(if pending.is_empty() { leaves } else { pending });
    }
    if !unknown.is_empty() {
        let known: Vec<&str> = list
            .tasks
            .iter()
            .filter(|t| !t.is_implied())
            .map(|t| t.id.as_str())
            .collect();
        return Err(Error::user_with_help(
            format!(
                "--task {}: no such task in {}",
                unknown.join(", "),
                list.source.display_path.display()
            ),
            format!("name a task of the list: {}", known.join(", ")),
        ));
    }
    Ok(selected.into_iter().collect())
}

/// The selection checked against what is done: the tasks to run, and the reports of those
/// that need no run (done before, or a rework that is not needed).
#[derive(Debug, Default)]
pub struct Checked {
    pub run: BTreeSet<usize>,
    pub settled: Vec<TaskReport>,
}

/// How branches are named, and where they were fetched from, for [`check`]'s messages.
#[derive(Debug)]
pub struct Names<'a> {
    pub prefix: &'a str,
    pub feature: &'a str,
    pub remote: Option<&'a str>,
    /// With `--push`: what the fetch saw on the remote, which the dependencies' branches must
    /// be at (a job in another clone builds on the remote's branches, not on these).
    pub pushed: Option<&'a Fetched>,
    /// `--max-review-rounds`: a review whose recorded rounds reached it runs no more.
    pub max_review_rounds: u32,
}

/// Where a local branch stands against the remote's, as the fetch saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    Same,
    /// The remote has no such branch.
    Absent,
    /// The local branch holds the remote's and more.
    Ahead,
    /// Anything else: diverged, or behind (a branch the fetch could not move).
    Other,
}

impl Against {
    pub fn of(git: &git::Git, fetched: &Fetched, branch: &str, local: git2::Oid) -> Against {
        match fetched.expected(branch) {
            None => Against::Absent,
            Some(r) if r == local => Against::Same,
            Some(r) if git.contains(local, r) => Against::Ahead,
            Some(_) => Against::Other,
        }
    }
}

/// The local branches of task `t` that record its work: its own and its recorded rounds',
/// with their tips.
pub fn task_branches(
    git: &git::Git,
    list: &TaskList,
    earlier: &Earlier,
    names: &Names<'_>,
    t: usize,
) -> Vec<(String, git2::Oid)> {
    let own = git::branch_name(names.prefix, names.feature, &list.tasks[t].id);
    let mut out: Vec<(String, git2::Oid)> = Vec::new();
    let rounds = earlier.history.get(&t).into_iter().flatten();
    for b in rounds.map(|r| r.branch.clone()).chain(std::iter::once(own)) {
        if let Some(tip) = git.branch_tip(&b)
            && !out.iter().any(|(o, _)| *o == b)
        {
            out.push((b, tip));
        }
    }
    out
}

/// Checks the selected tasks before any agent starts: which are done already, and that every
/// dependency of the rest is done (ticked, or finished on its branch). A dependency that is
/// not is an error (exit 2) naming it, its branch and what to do.
pub fn check(
    git: &git::Git,
    list: &TaskList,
    plan: &Plan,
    earlier: &Earlier,
    mode: &TaskMode,
    names: &Names<'_>,
) -> Result<Checked> {
    let checker = Checker {
        git,
        list,
        plan,
        earlier,
        names,
        reviews: review::reviews(list),
        selected: mode.selected.iter().copied().collect(),
    };
    let mut out = Checked::default();
    let mut gaps = Gaps::default();
    for &t in &mode.selected {
        match checker.step(t, &mut gaps)? {
            Step::Run => {
                out.run.insert(t);
            }
            Step::Settled(report) => out.settled.push(report),
            Step::Waits => {}
        }
    }
    gaps.refuse_missing(names)?;
    gaps.refuse_unshared(names)?;
    Ok(out)
}

/// What [`check`] decides for one selected task.
#[allow(clippy::large_enum_variant, reason = "one at a time, consumed at once")]
enum Step {
    /// It runs (when no dependency of the selection is missing).
    Run,
    /// It needs no run: its report.
    Settled(TaskReport),
    /// It cannot run yet: what it waits for is among the missing.
    Waits,
}

/// Where a rework stands, by its reviews' recorded rounds.
#[allow(clippy::large_enum_variant, reason = "one at a time, consumed at once")]
enum Rework {
    /// A review's round awaits it: it answers that round (when its other dependencies are
    /// done too).
    Answers,
    /// It needs no run: its report.
    Settled(TaskReport),
    /// Its review has no recorded round yet: the line naming what is missing.
    NoRound(String),
}

/// What keeps the selected tasks from running, gathered over all of them so that one error
/// names it all.
#[derive(Debug, Default)]
struct Gaps {
    /// The dependencies that are not done.
    missing: Vec<String>,
    /// With `--push`, the dependencies' branches that are not as the remote has them.
    unshared: Vec<String>,
    /// The tasks of those branches, for the command that pushes them.
    unshared_tasks: Vec<String>,
}

impl Gaps {
    /// A dependency not done is an error naming each, and how to get them done.
    fn refuse_missing(&self, names: &Names<'_>) -> Result<()> {
        if self.missing.is_empty() {
            return Ok(());
        }
        let remote = names.remote.unwrap_or("origin");
        Err(Error::user_with_help(
            format!(
                "the dependencies of the selected tasks are not done:\n  {}",
                self.missing.join("\n  ")
            ),
            format!(
                "run those tasks first (`cargo spec-exec {0} --task ID`, with `--remote {remote} --push` to share their branches), or fetch their branches with `--remote {remote}`; nothing was started",
                names.feature
            ),
        ))
    }

    /// With `--push`, a dependency's branch that is not as the remote has it is an error
    /// naming each, and how to push them first.
    fn refuse_unshared(&self, names: &Names<'_>) -> Result<()> {
        if self.unshared.is_empty() {
            return Ok(());
        }
        let remote = names.remote.unwrap_or("origin");
        Err(Error::user_with_help(
            format!(
                "with --push, the dependencies of the selected tasks must be on {remote} as they are here:\n  {}",
                self.unshared.join("\n  ")
            ),
            format!(
                "push them first (`cargo spec-exec {0} --task {1} --remote {remote} --push` pushes a task done here), or delete the local branches to take {remote}'s (`git branch -D <branch>`); nothing was started",
                names.feature,
                self.unshared_tasks.join(" --task ")
            ),
        ))
    }
}

/// What [`check`] looks at to decide for each selected task.
struct Checker<'a> {
    git: &'a git::Git,
    list: &'a TaskList,
    plan: &'a Plan,
    earlier: &'a Earlier,
    names: &'a Names<'a>,
    /// Which tasks are reviews.
    reviews: Vec<bool>,
    selected: BTreeSet<usize>,
}

impl Checker<'_> {
    /// The decision for selected task `t`, step by step; what keeps it from running goes to
    /// `gaps`.
    fn step(&self, t: usize, gaps: &mut Gaps) -> Result<Step> {
        if self.list.tasks[t].state == TaskState::Done {
            let why = "already done: ticked in tasks.md".to_owned();
            return Ok(Step::Settled(self.done(t, why)));
        }
        let condition: Vec<usize> = self.list.tasks[t].condition().collect();
        if condition.is_empty() {
            if self.earlier.reused.contains_key(&t) {
                let why = format!(
                    "already done: its branch `{}` holds its commit",
                    last_branch(self.earlier, t).unwrap_or_else(|| self.branch(t))
                );
                return Ok(Step::Settled(self.done(t, why)));
            }
        } else {
            // A rework: the step it takes depends on its reviews' recorded rounds, whether or
            // not it ran before.
            self.refuse_with_its_review(t, &condition)?;
            match self.rework(t, &condition) {
                Rework::Answers => {}
                Rework::Settled(report) => return Ok(Step::Settled(report)),
                Rework::NoRound(line) => {
                    gaps.missing.push(line);
                    return Ok(Step::Waits);
                }
            }
        }
        self.refuse_blocked(t)?;
        let Some(node) = self.plan.node(t) else {
            // Left out of this run's plan (`--track`, `--skip-optional`): nothing to run.
            return Ok(Step::Settled(report_of(
                self.list,
                t,
                Status::Skipped,
                "not in this run's plan (left out by --track or --skip-optional)".to_owned(),
            )));
        };
        if let Some(report) = self
            .review_at_limit(t)
            .or_else(|| self.review_awaits_rework(t))
        {
            return Ok(Step::Settled(report));
        }
        self.dependencies(t, &node.deps, &condition, gaps)?;
        Ok(Step::Run)
    }

    /// The branch task `t` runs on.
    fn branch(&self, t: usize) -> String {
        git::branch_name(
            self.names.prefix,
            self.names.feature,
            &self.list.tasks[t].id,
        )
    }

    /// Review `c` approved: ticked, or finished on its branch.
    fn approved(&self, c: usize) -> bool {
        self.list.tasks[c].state == TaskState::Done || self.earlier.reused.contains_key(&c)
    }

    /// Dependency `d` is done: finished on its branch, or a rework its reviews made unneeded.
    fn satisfied(&self, d: usize) -> bool {
        self.earlier.reused.contains_key(&d) || {
            let cond: Vec<usize> = self.list.tasks[d].condition().collect();
            !cond.is_empty() && cond.iter().all(|&c| self.approved(c))
        }
    }

    /// The report of task `t`, done before: `why`.
    fn done(&self, t: usize, why: String) -> TaskReport {
        TaskReport {
            branch: self.earlier.reused.contains_key(&t).then(|| self.branch(t)),
            commit: self.earlier.reused.get(&t).cloned(),
            verdict: self.reviews[t].then_some(Verdict::Approved),
            ..report_of(self.list, t, Status::Reused, why)
        }
    }

    /// Rework `t` selected with one of its reviews `condition` is an error: a review gate goes
    /// one step per run.
    fn refuse_with_its_review(&self, t: usize, condition: &[usize]) -> Result<()> {
        let Some(&r) = condition.iter().find(|c| self.selected.contains(c)) else {
            return Ok(());
        };
        let (id, on) = (&self.list.tasks[t].id, &self.list.tasks[r].id);
        Err(Error::user_with_help(
            format!(
                "--task {on} and --task {id}: rework {id} answers a round of review {on}, and a review gate goes one step per run"
            ),
            format!(
                "run `--task {on}` on its own; when its round asks for changes, run `--task {id}` in another run (then `--task {on}` again for its next round)"
            ),
        ))
    }

    /// Where rework `t`, which answers the reviews `condition`, stands.
    fn rework(&self, t: usize, condition: &[usize]) -> Rework {
        let (list, earlier) = (self.list, self.earlier);
        if condition
            .iter()
            .any(|&c| earlier.awaits_rework(c).is_some())
        {
            // It answers that round (below: its other dependencies must be done too).
            return Rework::Answers;
        }
        if condition.iter().all(|&c| self.approved(c)) {
            return Rework::Settled(self.rework_after_approval(t, condition));
        }
        if let Some(r) = condition
            .iter()
            .copied()
            .find(|c| earlier.history.contains_key(c))
        {
            // It answered the last round already: the review's next round comes next.
            return Rework::Settled(TaskReport {
                branch: last_branch(earlier, t),
                ..report_of(
                    list,
                    t,
                    Status::Reused,
                    format!(
                        "already done: it answered {0}'s last round; {0}'s next round runs next",
                        list.tasks[r].id
                    ),
                )
            });
        }
        let r = condition[0];
        Rework::NoRound(format!(
            "rework {} answers review {}, which has no recorded round yet (its branch `{}`); run `--task {}` first",
            list.tasks[t].id,
            list.tasks[r].id,
            self.branch(r),
            list.tasks[r].id
        ))
    }

    /// The report of rework `t` once its reviews `condition` approved: a rework that ran (and
    /// whose review then approved) is done; one that never had to is not needed.
    fn rework_after_approval(&self, t: usize, condition: &[usize]) -> TaskReport {
        let on: Vec<&str> = condition
            .iter()
            .map(|&c| self.list.tasks[c].id.as_str())
            .collect();
        let ran = last_branch(self.earlier, t);
        let (status, why) = match &ran {
            Some(b) => (
                Status::Reused,
                format!(
                    "already done: it ran (its last run is on `{b}`), and then {} approved",
                    on.join(" and ")
                ),
            ),
            None => (Status::NotNeeded, format!("{} approved", on.join(" and "))),
        };
        TaskReport {
            branch: ran,
            ..report_of(self.list, t, status, why)
        }
    }

    /// A task the plan blocks is an error naming why.
    fn refuse_blocked(&self, t: usize) -> Result<()> {
        let Some((_, why)) = self.plan.blocked.iter().find(|(b, _)| *b == t) else {
            return Ok(());
        };
        let why = match why {
            Blocked::NotRunnable => "it is marked not runnable (`[~]`)".to_owned(),
            Blocked::WaitsForBlocked { on } => {
                format!(
                    "it waits for task {}, which cannot run",
                    self.list.tasks[*on].id
                )
            }
            Blocked::OutsideTracks { .. } => {
                "it waits for work outside the selected tracks".to_owned()
            }
        };
        Err(Error::user_with_help(
            format!("task {} cannot run: {why}", self.list.tasks[t].id),
            "select another task, or change tasks.md",
        ))
    }

    /// The report of review `t` when its gate failed at its limit (the round was pushed as its
    /// record): another run would only repeat it.
    fn review_at_limit(&self, t: usize) -> Option<TaskReport> {
        let max = self.names.max_review_rounds;
        if !self.reviews[t] {
            return None;
        }
        let last = self.earlier.awaits_rework(t)?;
        if last.round < max {
            return None;
        }
        Some(TaskReport {
            branch: Some(last.branch.clone()),
            commit: Some(last.oid.to_string()),
            ..report_of(
                self.list,
                t,
                Status::Failed,
                format!(
                    "still requires changes after {} review round{} (the limit, --max-review-rounds {}): its last round is `{}`; raise the limit to go on",
                    last.round,
                    if last.round == 1 { "" } else { "s" },
                    max,
                    last.branch
                ),
            )
        })
    }

    /// The report of review `t` when its last round requires changes its rework has not
    /// answered yet: the round stands, its verdict is the step this run reports, and the
    /// rework runs next (a workflow run again from its first job goes on from here).
    fn review_awaits_rework(&self, t: usize) -> Option<TaskReport> {
        let list = self.list;
        if !self.reviews[t] {
            return None;
        }
        let last = self.earlier.awaits_rework(t)?;
        let w = list
            .leaves()
            .find(|&w| list.tasks[w].condition().any(|c| c == t))?;
        Some(TaskReport {
            branch: Some(last.branch.clone()),
            commit: Some(last.oid.to_string()),
            verdict: Some(Verdict::RequiresChanges),
            ..report_of(
                list,
                t,
                Status::Reused,
                format!(
                    "its round {} (`{}`) requires changes that its rework {} has not answered yet: `--task {}` runs next, then its round {}",
                    last.round,
                    last.branch,
                    list.tasks[w].id,
                    list.tasks[w].id,
                    last.round + 1
                ),
            )
        })
    }

    /// Task `t`'s dependencies `deps` (a rework's reviews `condition` among them): each done,
    /// else missing; with `--push`, their branches as the remote has them, else unshared.
    fn dependencies(
        &self,
        t: usize,
        deps: &[usize],
        condition: &[usize],
        gaps: &mut Gaps,
    ) -> Result<()> {
        for &d in deps {
            if self.selected.contains(&d) {
                self.refuse_with_gated(t, d)?;
            } else if self.satisfied(d) || condition.contains(&d) {
                self.unshared(t, d, gaps);
            } else {
                gaps.missing.push(self.missing(t, d));
            }
        }
        Ok(())
    }

    /// Task `t` selected with its dependency `d` is an error when `d`'s review gate (a
    /// review's, a rework's) goes one step per run.
    fn refuse_with_gated(&self, t: usize, d: usize) -> Result<()> {
        if !self.reviews[d] && self.list.tasks[d].condition().next().is_none() {
            return Ok(());
        }
        let (id, on) = (&self.list.tasks[t].id, &self.list.tasks[d].id);
        Err(Error::user_with_help(
            format!(
                "--task {id} and --task {on}: {id} waits for {on}, whose review gate goes one step per run"
            ),
            format!("run {on} on its own, then {id} in another run"),
        ))
    }

    /// With `--push`, the branches of task `t`'s dependency `d` (done, not ticked) that are
    /// not as the remote has them: a job elsewhere would not build on the same work.
    fn unshared(&self, t: usize, d: usize, gaps: &mut Gaps) {
        let Some(fetched) = self.names.pushed else {
            return;
        };
        if self.list.tasks[d].state == TaskState::Done {
            return;
        }
        let (id, on) = (&self.list.tasks[t].id, &self.list.tasks[d].id);
        let remote = &fetched.remote;
        for (b, tip) in task_branches(self.git, self.list, self.earlier, self.names, d) {
            let how = match Against::of(self.git, fetched, &b, tip) {
                Against::Same => continue,
                Against::Absent => format!("is not on {remote}"),
                Against::Ahead => format!("is ahead of {remote}'s"),
                Against::Other => format!("and {remote}'s have diverged"),
            };
            let line = format!(
                "task {id} needs task {on}, whose branch `{b}` {how}: a job elsewhere would not build on the same work"
            );
            if !gaps.unshared.contains(&line) {
                gaps.unshared.push(line);
            }
            if !gaps.unshared_tasks.contains(on) {
                gaps.unshared_tasks.push(on.clone());
            }
        }
    }

    /// The line naming task `t`'s dependency `d` as not done.
    fn missing(&self, t: usize, d: usize) -> String {
        let fetched = self
            .names
            .remote
            .map(|r| format!(" (after fetching from {r})"))
            .unwrap_or_default();
        format!(
            "task {} needs task {}, which is not done: not ticked in tasks.md, and its branch `{}` {}{fetched}",
            self.list.tasks[t].id,
            self.list.tasks[d].id,
            self.branch(d),
            if self.reviews[d] {
                "holds no approved round of it"
            } else {
                "does not hold its commit"
            }
        )
    }
}

/// The branch of task `t`'s last recorded run (a review's round, a rework's run).
fn last_branch(earlier: &Earlier, t: usize) -> Option<String> {
    earlier
        .history
        .get(&t)
        .and_then(|h| h.last())
        .map(|r| r.branch.clone())
}

/// The branches a finished task made in this run, in order: its rounds' (a review's, a
/// rework's), then its own.
fn made_branches(report: &TaskReport) -> Vec<String> {
    let mut out: Vec<String> = report
        .rounds
        .iter()
        .filter(|r| !r.reused && r.task == report.id)
        .map(|r| r.branch.clone())
        .collect();
    if let Some(b) = &report.branch
        && !out.contains(b)
    {
        out.push(b.clone());
    }
    out
}

/// After a task's commit, pushes its branches to the remote with a lease: each only if the
/// remote's branch is still what the fetch saw. A push that fails fails the task; the commit
/// stays on the local branch.
#[derive(Debug)]
pub struct Pusher {
    pub workdir: PathBuf,
    pub fetched: Fetched,
}

impl Pusher {
    /// With `--push`, a selected task that needs no run (done before, in this clone) is still
    /// shared: each of its branches the remote lacks, or that is ahead of the remote's, is
    /// pushed with the lease, so that a run whose push failed (or was killed) pushes on the
    /// next try. A branch that diverged from the remote's fails the task: neither is lost.
    pub fn share(
        &self,
        git: &git::Git,
        list: &TaskList,
        earlier: &Earlier,
        names: &Names<'_>,
        report: &mut TaskReport,
    ) {
        let Some(t) = list.find(&report.id) else {
            return;
        };
        if list.tasks[t].state == TaskState::Done || !report.status.is_success() {
            return;
        }
        let remote = &self.fetched.remote;
        let mut pushed = Vec::new();
        for (branch, oid) in task_branches(git, list, earlier, names, t) {
            let short = &oid.to_string()[..10];
            let failed = match Against::of(git, &self.fetched, &branch, oid) {
                Against::Same => continue,
                Against::Other => format!(
                    "`{branch}` and {remote}'s have diverged, so it was not pushed (the local branch stays at {short}): delete it to take {remote}'s (`git branch -D {branch}`), or rename it to keep it"
                ),
                Against::Absent | Against::Ahead => match self.push_one(&branch, oid) {
                    None => {
                        pushed.push(format!("`{branch}`"));
                        continue;
                    }
                    Some(why) => why,
                },
            };
            report.status = Status::Failed;
            report.reason = Some(failed);
            return;
        }
        if !pushed.is_empty() {
            let reason = report.reason.take().unwrap_or_default();
            report.reason = Some(format!(
                "{reason}; pushed {} to {remote}, which did not have {}",
                pushed.join(", "),
                if pushed.len() == 1 { "it" } else { "them" }
            ));
        }
    }

    /// Pushes `branch` at `oid` with the lease of what the fetch saw; the failure's reason.
    fn push_one(&self, branch: &str, oid: git2::Oid) -> Option<String> {
        let remote = &self.fetched.remote;
        let short = &oid.to_string()[..10];
        match remote::push(
            &self.workdir,
            remote,
            branch,
            oid,
            self.fetched.expected(branch),
            self.fetched.timeout,
        ) {
            Ok(()) => None,
            Err(PushError::Moved(why)) => Some(format!(
                "someone else pushed `{branch}` to {remote} meanwhile, so it was not pushed (the commit stays on the local branch `{branch}`, at {short}): {why}"
            )),
            Err(PushError::Failed(why)) => Some(format!(
                "could not push `{branch}` to {remote} (the commit stays on the local branch `{branch}`, at {short}): {why}"
            )),
        }
    }

    pub fn push(&self, report: &mut TaskReport) {
        let Ok(git) = git::Git::open(&self.workdir) else {
            return;
        };
        if report.status == Status::Interrupted {
            return;
        }
        if report.status != Status::Done {
            // A review that failed at its limit of rounds: its rounds are its record (and
            // what tells the next run that the gate is spent), pushed all the same.
            let rounds: Vec<String> = report
                .rounds
                .iter()
                .filter(|r| !r.reused && r.task == report.id && r.verdict.is_some())
                .map(|r| r.branch.clone())
                .collect();
            let mut pushed = Vec::new();
            for branch in rounds {
                let Some(oid) = git.branch_tip(&branch) else {
                    continue;
                };
                if let Some(failed) = self.push_one(&branch, oid) {
                    let reason = report.reason.take().unwrap_or_default();
                    report.reason = Some(format!("{reason}; {failed}"));
                    return;
                }
                pushed.push(format!("`{branch}`"));
            }
            if !pushed.is_empty() {
                let reason = report.reason.take().unwrap_or_default();
                report.reason = Some(format!(
                    "{reason}; its rounds {} were pushed to {} as the gate's record",
                    pushed.join(", "),
                    self.fetched.remote
                ));
            }
            return;
        }
        for branch in made_branches(report) {
            let Some(oid) = git.branch_tip(&branch) else {
                continue;
            };
            if let Some(failed) = self.push_one(&branch, oid) {
                report.status = Status::Failed;
                report.reason = Some(failed);
                return;
            }
        }
    }
}

/// Appends the job outputs of the selected tasks' reports to the file `GITHUB_OUTPUT` names,
/// when it names one: `status-<key>=done|failed|skipped|not-needed`, and for a review with a
/// verdict `verdict=approved|changes` and `verdict-<key>=…`.
pub fn write_outputs(list: &TaskList, reports: &[TaskReport]) -> Option<String> {
    let path = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty())?;
    let reviews = review::reviews(list);
    let mut lines = String::new();
    for r in reports {
        let key = output_key(&r.id);
        let status = match r.status {
            Status::Done | Status::Reused => "done",
            Status::NotNeeded => "not-needed",
            Status::Skipped => "skipped",
            Status::Failed | Status::Interrupted => "failed",
        };
        lines.push_str(&format!("status-{key}={status}\n"));
        let is_review = list.find(&r.id).is_some_and(|t| reviews[t]);
        if let Some(v) = r.verdict.filter(|_| is_review && r.status.is_success()) {
            let v = match v {
                Verdict::Approved => "approved",
                Verdict::RequiresChanges => "changes",
            };
            lines.push_str(&format!("verdict={v}\nverdict-{key}={v}\n"));
        }
    }
    let path = Path::new(&path);
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(lines.as_bytes()));
    written.err().map(|e| {
        format!(
            "could not write the job outputs to `{}` (named by GITHUB_OUTPUT): {e}; the run fails, since the jobs after it would read no status or verdict",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keys_keep_only_letters_digits_underscores_and_dashes() {
        assert_eq!(output_key("CR-A"), "CR-A");
        assert_eq!(output_key("5.1"), "5_1");
        assert_eq!(output_key("T001"), "T001");
        assert_eq!(output_key("3@2"), "3_2");
        assert_eq!(output_key("a b/ü"), "a_b__");
    }

    #[test]
    fn a_container_selects_its_pending_sub_tasks_and_an_unknown_id_names_the_known() {
        let list = crate::spec::parse_bytes(
            "tasks.md",
            b"# Tasks\n\n- [ ] 1. One\n- [ ] 2. Two\n  - [x] 2.1 A\n  - [ ] 2.2 B\n".to_vec(),
        );
        let id = |i: usize| list.tasks[i].id.clone();
        let two = select(&list, &["2".to_owned()]).unwrap();
        assert_eq!(two.iter().map(|&i| id(i)).collect::<Vec<_>>(), ["2.2"]);
        let err = select(&list, &["9".to_owned()]).unwrap_err().to_string();
        assert!(err.contains("`9`") && err.contains("tasks.md"), "{err}");
        let help = match select(&list, &["9".to_owned()]).unwrap_err() {
            Error::User { help, .. } => help.unwrap_or_default(),
            e => panic!("{e}"),
        };
        assert!(help.contains("1, 2, 2.1, 2.2"), "{help}");
    }
}
