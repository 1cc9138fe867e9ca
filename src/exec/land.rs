//! One branch for the whole feature: which tasks' branches go into it, building it (at the end
//! of a run that leaves every task done, or on demand with `cargo spec-exec land`), and what
//! the user does next.

use std::path::Path;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::job::integrate::{self, Integration, Landed, Tip};
use super::job::{Ctx, side_label};
use super::process::Stop;
use super::review;
use crate::error::exit;
use crate::git::{self, Git};
use crate::report::IntegrationReport;
use crate::spec::TaskList;
use crate::spec::model::TaskState;

/// The tasks that go into the integration: done ones whose dependencies are done, in
/// dependency order (the document's where dependencies allow).
#[derive(Debug, Default)]
pub struct Selection {
    pub tips: Vec<Tip>,
    /// Whether every task of the feature is done.
    pub all_done: bool,
    /// Done tasks left out because a dependency is not done.
    pub waiting: Vec<String>,
    /// Done tasks without a branch of their work (done before spec-exec, or their branch was
    /// deleted): their work is taken to be in the base.
    pub without_branch: Vec<String>,
}

/// The commit that holds a task's finished work: its last approved review round, its last
/// rework run, or its branch's task commit.
fn finished_tip(git: &Git, prefix: &str, feature: &str, list: &TaskList, t: usize) -> Option<Tip> {
    let id = &list.tasks[t].id;
    let label = side_label(list, &git::branch_name(prefix, feature, id));
    let rounds = git2::Repository::open(git.workdir()?)
        .map(|repo| review::recorded_rounds(&repo, prefix, feature, id))
        .unwrap_or_default();
    if let Some(last) = rounds.last() {
        let review = last.verdict.is_some();
        return (!review || last.verdict == Some(crate::report::Verdict::Approved)).then(|| Tip {
            branch: last.branch.clone(),
            label,
            oid: last.oid,
        });
    }
    let branch = git::branch_name(prefix, feature, id);
    git.task_commit(&branch)
        .filter(|tc| &tc.task == id)
        .map(|tc| Tip {
            branch,
            label,
            oid: tc.oid,
        })
}

/// Which tasks' branches the integration merges, read from the list and the branches;
/// `settled` are tasks a run just settled as done, reused or not needed (the list in hand was
/// read before their ticks).
pub fn select(
    git: &Git,
    list: &TaskList,
    prefix: &str,
    feature: &str,
    settled: &[&str],
) -> Selection {
    let leaves: Vec<usize> = list.leaves().collect();
    let n = list.tasks.len();
    let mut tip: Vec<Option<Tip>> = vec![None; n];
    let mut done = vec![false; n];
    for &t in &leaves {
        tip[t] = finished_tip(git, prefix, feature, list, t);
        done[t] = tip[t].is_some()
            || list.tasks[t].state == TaskState::Done
            || settled.contains(&list.tasks[t].id.as_str())
            // Optional tasks left out (or not yet done) hold nothing back.
            || list.tasks[t].optional;
    }
    // Dependency order: a task after everything it depends on, otherwise the document's.
    let mut order = Vec::with_capacity(leaves.len());
    let mut placed = vec![false; n];
    while order.len() < leaves.len() {
        let before = order.len();
        for &t in &leaves {
            if !placed[t]
                && list.tasks[t]
                    .deps
                    .iter()
                    .all(|e| placed[e.on] || list.tasks[e.on].is_container())
            {
                placed[t] = true;
                order.push(t);
            }
        }
        if order.len() == before {
            // A cycle (check reports it): the rest in document order.
            order.extend(leaves.iter().filter(|&&t| !placed[t]));
            break;
        }
    }
    let mut included = vec![false; n];
    let mut selection = Selection {
        all_done: leaves.iter().all(|&t| done[t]),
        ..Selection::default()
    };
    for t in order {
        if !done[t] {
            continue;
        }
        if list.tasks[t].deps.iter().all(|e| included[e.on]) {
            included[t] = true;
            match tip[t].take() {
                Some(tip) => selection.tips.push(tip),
                None if list.tasks[t].state == TaskState::Done => {
                    selection.without_branch.push(list.tasks[t].id.clone());
                }
                None => {}
            }
        } else {
            selection.waiting.push(list.tasks[t].id.clone());
        }
    }
    selection
}

/// Runs `f` with a stop signal that SIGINT, SIGTERM and SIGHUP raise (terminate, then kill;
/// a third exits at once), as during a run.
pub async fn stoppable<F: std::future::Future>(
    f: impl FnOnce(watch::Receiver<Stop>) -> F,
) -> F::Output {
    let (tx, rx) = watch::channel(Stop::None);
    let mut signals = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ]
    .map(|kind| signal(kind).ok());
    let work = f(rx);
    tokio::pin!(work);
    let mut stops = 0;
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = super::driver::next_signal(&mut signals) => {
                stops += 1;
                match stops {
                    1 => { let _ = tx.send(Stop::Terminate); }
                    2 => { let _ = tx.send(Stop::Kill); }
                    _ => std::process::exit(exit::INTERRUPTED),
                }
            }
        }
    }
}

/// Why building the integration of `selection` would be refused, before anything is changed.
pub fn refusal(
    ctx: &Ctx,
    branch: &str,
    base: &str,
    selection: &Selection,
    merge_onto: bool,
) -> Option<String> {
    integrate::refusal(
        ctx,
        &Integration {
            branch: branch.to_owned(),
            onto: ctx.base,
            onto_name: base.to_owned(),
            merge_onto,
            tips: selection.tips.clone(),
            agent: crate::agents::Agent::Shell,
        },
    )
}

/// Builds the integration of `selection` onto `onto` (named `base` for people), and reports it.
pub async fn build(
    ctx: &Arc<Ctx>,
    branch: &str,
    base: &str,
    selection: Selection,
    agent: crate::agents::Agent,
    merge_onto: bool,
    stop: watch::Receiver<Stop>,
) -> Option<IntegrationReport> {
    let without_branch = selection.without_branch.clone();
    let it = Integration {
        branch: branch.to_owned(),
        onto: ctx.base,
        onto_name: base.to_owned(),
        merge_onto,
        tips: selection.tips,
        agent,
    };
    let landed = integrate::integrate(Arc::clone(ctx), it, stop).await;
    let git = ctx.git().ok()?;
    let mut report = IntegrationReport {
        branch: branch.to_owned(),
        status: "built",
        commit: None,
        base: base.to_owned(),
        merged: Vec::new(),
        resolved: Vec::new(),
        verified: Vec::new(),
        files_changed: None,
        insertions: None,
        deletions: None,
        reason: None,
        worktree: None,
        log: None,
        uncommitted: None,
        gh: which::which("gh").is_ok(),
        without_branch,
        base_is_branch: git_base_is_branch(ctx, base),
    };
    let commit = match landed {
        Landed::Nothing => return None,
        Landed::Unchanged { commit } => {
            report.status = "unchanged";
            commit
        }
        Landed::Built {
            commit,
            merged,
            resolved,
            verified,
            log,
            ..
        } => {
            report.merged = merged;
            report.resolved = resolved;
            report.verified = verified;
            report.log = log;
            commit
        }
        Landed::Failed {
            reason,
            worktree,
            log,
            interrupted,
        } => {
            report.status = if interrupted { "interrupted" } else { "failed" };
            report.reason = Some(reason);
            report.worktree = worktree;
            report.log = log;
            return Some(report);
        }
    };
    report.commit = Some(commit.to_string());
    if let Some((files, ins, del)) = git.diff_stat(ctx.base, commit) {
        report.files_changed = Some(files);
        report.insertions = Some(ins);
        report.deletions = Some(del);
    }
    let tasks_md = ctx.spec_abs.join("tasks.md");
    report.uncommitted = uncommitted(&ctx.workdir, &tasks_md).then_some(tasks_md);
    Some(report)
}

/// The report of an integration refused before it started.
pub fn refused(ctx: &Ctx, branch: &str, base: &str, why: String) -> IntegrationReport {
    let git = ctx.git().ok();
    IntegrationReport {
        branch: branch.to_owned(),
        status: "failed",
        commit: None,
        base: base.to_owned(),
        base_is_branch: git.is_some_and(|g| g.branch_tip(base).is_some()),
        merged: Vec::new(),
        resolved: Vec::new(),
        verified: Vec::new(),
        files_changed: None,
        insertions: None,
        deletions: None,
        reason: Some(why),
        worktree: None,
        log: None,
        uncommitted: None,
        gh: false,
        without_branch: Vec::new(),
    }
}

fn git_base_is_branch(ctx: &Ctx, base: &str) -> bool {
    ctx.git().is_ok_and(|g| g.branch_tip(base).is_some())
}

/// Whether `path` differs from what the working tree's HEAD has.
fn uncommitted(workdir: &Path, path: &Path) -> bool {
    let Ok(repo) = git2::Repository::open(workdir) else {
        return false;
    };
    let Ok(rel) = path.strip_prefix(workdir) else {
        return false;
    };
    repo.status_file(rel)
        .is_ok_and(|s| !s.is_empty() && !s.contains(git2::Status::IGNORED))
}
