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
    let reviews = review::reviews(list);
    let branch = |t: usize| git::branch_name(names.prefix, names.feature, &list.tasks[t].id);
    let selected: BTreeSet<usize> = mode.selected.iter().copied().collect();
    let approved =
        |c: usize| list.tasks[c].state == TaskState::Done || earlier.reused.contains_key(&c);
    // A dependency is done: finished on its branch, or a rework its reviews made unneeded.
    let satisfied = |d: usize| {
        earlier.reused.contains_key(&d) || {
            let cond: Vec<usize> = list.tasks[d].condition().collect();
            !cond.is_empty() && cond.iter().all(|&c| approved(c))
        }
    };
    let mut out = Checked::default();
    let mut missing: Vec<String> = Vec::new();
    // With `--push`, the dependencies' branches that are not as the remote has them.
    let mut unshared: Vec<String> = Vec::new();
    let mut unshared_tasks: Vec<&str> = Vec::new();
    for &t in &mode.selected {
        let id = &list.tasks[t].id;
        let done = |why: String| TaskReport {
            branch: earlier.reused.contains_key(&t).then(|| branch(t)),
            commit: earlier.reused.get(&t).cloned(),
            verdict: reviews[t].then_some(Verdict::Approved),
            ..report_of(list, t, Status::Reused, why)
        };
        if list.tasks[t].state == TaskState::Done {
            out.settled
                .push(done("already done: ticked in tasks.md".to_owned()));
            continue;
        }
        // A rework: the step it takes depends on its reviews' recorded rounds, whether or not
        // it ran before.
        let condition: Vec<usize> = list.tasks[t].condition().collect();
        if let Some(&r) = condition.iter().find(|c| selected.contains(c)) {
            let on = &list.tasks[r].id;
            return Err(Error::user_with_help(
                format!(
                    "--task {on} and --task {id}: rework {id} answers a round of review {on}, and a review gate goes one step per run"
                ),
                format!(
                    "run `--task {on}` on its own; when its round asks for changes, run `--task {id}` in another run (then `--task {on}` again for its next round)"
                ),
            ));
        }
        if !condition.is_empty() {
            if condition
                .iter()
                .any(|&c| earlier.awaits_rework(c).is_some())
            {
                // It answers that round (below: its other dependencies must be done too).
            } else if condition.iter().all(|&c| approved(c)) {
                let on: Vec<&str> = condition
                    .iter()
                    .map(|&c| list.tasks[c].id.as_str())
                    .collect();
                // A rework that ran (and whose review then approved) is done; one that never
                // had to is not needed.
                let ran = last_branch(earlier, t);
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
                out.settled.push(TaskReport {
                    branch: ran,
                    ..report_of(list, t, status, why)
                });
                continue;
            } else if let Some(r) = condition
                .iter()
                .copied()
                .find(|c| earlier.history.contains_key(c))
            {
                // It answered the last round already: the review's next round comes next.
                out.settled.push(TaskReport {
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
                continue;
            } else {
                let r = condition[0];
                missing.push(format!(
                    "rework {id} answers review {}, which has no recorded round yet (its branch `{}`); run `--task {}` first",
                    list.tasks[r].id,
                    branch(r),
                    list.tasks[r].id
                ));
                continue;
            }
        } else if earlier.reused.contains_key(&t) {
            out.settled.push(done(format!(
                "already done: its branch `{}` holds its commit",
                last_branch(earlier, t).unwrap_or_else(|| branch(t))
            )));
            continue;
        }
        if let Some((_, why)) = plan.blocked.iter().find(|(b, _)| *b == t) {
            let why = match why {
                Blocked::NotRunnable => "it is marked not runnable (`[~]`)".to_owned(),
                Blocked::WaitsForBlocked { on } => {
                    format!("it waits for task {}, which cannot run", list.tasks[*on].id)
                }
                Blocked::OutsideTracks { .. } => {
                    "it waits for work outside the selected tracks".to_owned()
                }
            };
            return Err(Error::user_with_help(
                format!("task {id} cannot run: {why}"),
                "select another task, or change tasks.md",
            ));
        }
        let Some(node) = plan.node(t) else {
            // Left out of this run's plan (`--track`, `--skip-optional`): nothing to run.
            out.settled.push(report_of(
                list,
                t,
                Status::Skipped,
                "not in this run's plan (left out by --track or --skip-optional)".to_owned(),
            ));
            continue;
        };
        if reviews[t]
            && let Some(last) = earlier.awaits_rework(t)
            && last.round >= names.max_review_rounds
        {
            // The gate failed at its limit (the round was pushed as its record): another run
            // would only repeat it.
            out.settled.push(TaskReport {
                branch: Some(last.branch.clone()),
                commit: Some(last.oid.to_string()),
                ..report_of(
                    list,
                    t,
                    Status::Failed,
                    format!(
                        "still requires changes after {} review round{} (the limit, --max-review-rounds {}): its last round is `{}`; raise the limit to go on",
                        last.round,
                        if last.round == 1 { "" } else { "s" },
                        names.max_review_rounds,
                        last.branch
                    ),
                )
            });
            continue;
        }
        if reviews[t]
            && let Some(last) = earlier.awaits_rework(t)
            && let Some(w) = list
                .leaves()
                .find(|&w| list.tasks[w].condition().any(|c| c == t))
        {
            // The round stands: its verdict is the step this run reports, and the rework runs
            // next (a workflow run again from its first job goes on from here).
            out.settled.push(TaskReport {
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
            });
            continue;
        }
        for &d in &node.deps {
            let on = &list.tasks[d].id;
            if selected.contains(&d) {
                if reviews[d] || list.tasks[d].condition().next().is_some() {
                    return Err(Error::user_with_help(
                        format!(
                            "--task {id} and --task {on}: {id} waits for {on}, whose review gate goes one step per run"
                        ),
                        format!("run {on} on its own, then {id} in another run"),
                    ));
                }
                continue;
            }
            if satisfied(d) || condition.contains(&d) {
                if let Some(fetched) = names.pushed
                    && list.tasks[d].state != TaskState::Done
                {
                    let remote = &fetched.remote;
                    for (b, tip) in task_branches(git, list, earlier, names, d) {
                        let how = match Against::of(git, fetched, &b, tip) {
                            Against::Same => continue,
                            Against::Absent => format!("is not on {remote}"),
                            Against::Ahead => format!("is ahead of {remote}'s"),
                            Against::Other => format!("and {remote}'s have diverged"),
                        };
                        let line = format!(
                            "task {id} needs task {on}, whose branch `{b}` {how}: a job elsewhere would not build on the same work"
                        );
                        if !unshared.contains(&line) {
                            unshared.push(line);
                        }
                        if !unshared_tasks.contains(&on.as_str()) {
                            unshared_tasks.push(on);
                        }
                    }
                }
                continue;
            }
            let fetched = names
                .remote
                .map(|r| format!(" (after fetching from {r})"))
                .unwrap_or_default();
            missing.push(format!(
                "task {id} needs task {on}, which is not done: not ticked in tasks.md, and its branch `{}` {}{fetched}",
                branch(d),
                if reviews[d] {
                    "holds no approved round of it"
                } else {
                    "does not hold its commit"
                }
            ));
        }
        out.run.insert(t);
    }
    if !missing.is_empty() {
        let remote = names.remote.unwrap_or("origin");
        return Err(Error::user_with_help(
            format!(
                "the dependencies of the selected tasks are not done:\n  {}",
                missing.join("\n  ")
            ),
            format!(
                "run those tasks first (`cargo spec-exec {0} --task ID`, with `--remote {remote} --push` to share their branches), or fetch their branches with `--remote {remote}`; nothing was started",
                names.feature
            ),
        ));
    }
    if !unshared.is_empty() {
        let remote = names.remote.unwrap_or("origin");
        return Err(Error::user_with_help(
            format!(
                "with --push, the dependencies of the selected tasks must be on {remote} as they are here:\n  {}",
                unshared.join("\n  ")
            ),
            format!(
                "push them first (`cargo spec-exec {0} --task {1} --remote {remote} --push` pushes a task done here), or delete the local branches to take {remote}'s (`git branch -D <branch>`); nothing was started",
                names.feature,
                unshared_tasks.join(" --task ")
            ),
        ));
    }
    Ok(out)
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
