//! The feature's integration branch: every done task's branch merged onto the base, in
//! dependency order, through the same conflict resolution and verification as a task's base.
//!
//! The branch is built on a work branch of its own (`<integration>.next`, in a worktree of the
//! run's), and moved only when the result passed: forward from where spec-exec left it, by a
//! compare-and-swap of the ref, so that work someone else put on it is never overwritten. The
//! user's branches, index and working tree are not touched.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use git2::Oid;
use tokio::sync::watch;

use super::attempt::{self, Kind, Who};
use super::merge;
use super::{Ctx, End, Progress, blocking, keep_tasks_md_out};
use crate::agents::Agent;
use crate::exec::process::Stop;
use crate::exec::prompt::{self, Resolving};
use crate::exec::state::worktree_name;
use crate::git;
use crate::report::{Status, TaskReport};

/// The name of the integration's worktree, log and prompts.
const NAME: &str = "integration";

/// A done task's branch to merge.
#[derive(Debug, Clone)]
pub struct Tip {
    pub branch: String,
    /// `task 2 “Title”`.
    pub label: String,
    pub oid: Oid,
}

/// What to integrate.
#[derive(Debug, Clone)]
pub struct Integration {
    pub branch: String,
    /// Where a new integration branch starts.
    pub onto: Oid,
    /// How people name `onto` (`main`).
    pub onto_name: String,
    /// Merge `onto` into an existing branch that lacks it (a run's base that moved on, or
    /// `land --onto`); otherwise an existing branch keeps the base it was built on.
    pub merge_onto: bool,
    /// In dependency order.
    pub tips: Vec<Tip>,
    /// Resolves conflicts and fixes what fails verify.
    pub agent: Agent,
}

/// How it went.
#[derive(Debug, Clone)]
pub enum Landed {
    /// The branch was made or moved to `commit`.
    Built {
        commit: Oid,
        previous: Option<Oid>,
        /// The branches merged (those the branch did not hold yet).
        merged: Vec<String>,
        resolved: Vec<String>,
        verified: Vec<String>,
        log: Option<PathBuf>,
    },
    /// The branch held every task's work already.
    Unchanged { commit: Oid },
    /// Nothing is done yet: there is nothing to integrate.
    Nothing,
    Failed {
        reason: String,
        /// Kept for inspection (the merge in progress, say).
        worktree: Option<PathBuf>,
        log: Option<PathBuf>,
        /// Stopped by Ctrl-C (or SIGTERM, SIGHUP).
        interrupted: bool,
    },
}

fn failed(reason: impl Into<String>) -> Landed {
    Landed::Failed {
        reason: reason.into(),
        worktree: None,
        log: None,
        interrupted: false,
    }
}

/// The file where spec-exec writes down the commit it left the integration branch at: a tip
/// elsewhere was moved by someone else.
fn record_of(ctx: &Ctx) -> PathBuf {
    ctx.state_dir.join("integration.tip")
}

/// The file where spec-exec writes down the base the integration branch was built on (its
/// commit and name), for a later `land` without `--onto`.
pub fn base_record_of(ctx: &Ctx) -> PathBuf {
    ctx.state_dir.join("integration.base")
}

/// The base recorded in `state_dir` for the integration branch: its commit and name.
pub fn recorded_base(state_dir: &std::path::Path) -> Option<(Oid, String)> {
    let text = std::fs::read_to_string(state_dir.join("integration.base")).ok()?;
    let (oid, name) = text.trim().split_once(' ')?;
    Some((Oid::from_str(oid).ok()?, name.to_owned()))
}

/// The integration's work branch.
fn work_branch(it: &Integration) -> String {
    format!("{}.next", it.branch)
}

/// The message of an integration commit.
fn message(ctx: &Ctx, merged: &[&str], resolved: &[String], verified: &[String]) -> String {
    let mut m = format!(
        "{}: integration\n\nMerge of {}\n\n{}: {}\n{}: {}\n",
        ctx.feature,
        merged.join(", "),
        git::FEATURE_TRAILER,
        ctx.feature,
        git::INTEGRATION_TRAILER,
        ctx.feature,
    );
    m.push_str(&git::outcome_trailers(resolved, verified));
    m
}

/// Where the integration starts, what it merges, and the in-memory merge of it all.
struct Start {
    previous: Option<Oid>,
    /// Tips not yet on the branch, the base first when it is merged too.
    todo: Vec<(String, Oid)>,
    merged: Result<Oid, git::Conflict>,
    /// The work branch of an earlier integration that failed, finished by hand since: it
    /// holds everything to merge, and is verified and taken as it is.
    finished_by_hand: Option<Oid>,
}

fn start(ctx: &Ctx, it: &Integration) -> crate::error::Result<Result<Option<Start>, String>> {
    let git = ctx.git()?;
    let previous = git.branch_tip(&it.branch);
    let work = work_branch(it);
    // Refusals first: nothing is changed before them.
    for (name, what) in [(&it.branch, "it"), (&work, "its work branch")] {
        if git.is_checked_out(name) && !(name == &work && own_worktree_has(ctx, &work)) {
            return Ok(Err(format!(
                "`{name}` ({what}) is checked out in a working tree: moving it would leave that tree behind its branch. Commit what you did there, switch it to another branch, then run `cargo spec-exec land {}` from your working tree",
                ctx.feature
            )));
        }
    }
    // It moves only forward from where spec-exec left it: someone else's commits on it stop
    // the integration. A tip that the base or your HEAD holds is no one's own work. Where no
    // record says where spec-exec left it (a fresh clone), its tip must be one of this
    // feature's commits.
    if let Some(tip) = previous {
        let recorded = recorded_tips(ctx);
        let head = git.resolve("HEAD").ok();
        let ours = if recorded.is_empty() {
            git.message(tip)
                .is_some_and(|m| git::trailer(&m, git::FEATURE_TRAILER) == Some(&ctx.feature))
        } else {
            recorded.contains(&tip)
        } || git.contains(it.onto, tip)
            || head.is_some_and(|h| git.contains(h, tip));
        if !ours {
            return Ok(Err(format!(
                "`{}` was moved since spec-exec left it{} (it is at {}); it was not moved again. Keep that work on another branch and delete `{}`, or set `integration-branch` in the configuration",
                it.branch,
                recorded
                    .last()
                    .map(|r| format!(" at {}", &r.to_string()[..10]))
                    .unwrap_or_default(),
                &tip.to_string()[..10],
                it.branch
            )));
        }
    }
    let mut from = previous.unwrap_or(it.onto);
    // What an earlier integration left on its work branch: commits of yours there (a conflict
    // you resolved, a fix) are built on, never reset; spec-exec's own are made again.
    let mut by_hand = false;
    if let Some(next) = git.branch_tip(&work) {
        let mut known = vec![from, it.onto];
        known.extend(it.tips.iter().map(|t| t.oid));
        let yours = !known.iter().any(|&k| git.contains(k, next))
            && !git.only_commits_with(next, &known, git::INTEGRATION_TRAILER);
        if yours {
            if !git.contains(next, previous.unwrap_or(it.onto)) && previous.is_some() {
                return Ok(Err(format!(
                    "`{work}` (left by an earlier integration) holds commits of yours, but not `{}` as it is now; it was kept. Merge `{}` into it yourself, or take what you need from it and delete it, then run `cargo spec-exec land {}` again",
                    it.branch, it.branch, ctx.feature
                )));
            }
            from = next;
            by_hand = true;
        }
    }
    let mut todo = Vec::new();
    if it.merge_onto && !git.contains(from, it.onto) {
        todo.push((it.onto_name.clone(), it.onto));
    }
    // A tip that a later task built on is merged with it: only the heads are merged, so
    // that conflicts a task's base resolved are not met again.
    let oids: Vec<Oid> = it.tips.iter().map(|t| t.oid).collect();
    let (added, held_by_another) = git.tips_over(from, &oids)?;
    let mut seen = HashSet::new();
    for t in &it.tips {
        if added.contains(&t.oid) && !held_by_another.contains(&t.oid) && seen.insert(t.oid) {
            todo.push((t.branch.clone(), t.oid));
        }
    }
    if todo.is_empty() && !by_hand {
        return Ok(Ok(None));
    }
    if todo.is_empty() {
        // Your work on the work branch holds everything: it is verified and taken.
        return Ok(Ok(Some(Start {
            previous,
            todo,
            merged: Ok(from),
            finished_by_hand: Some(from),
        })));
    }
    let mut tips = vec![(work.clone(), from)];
    tips.extend(todo.iter().cloned());
    let names: Vec<&str> = todo.iter().map(|(b, _)| b.as_str()).collect();
    let merged = git.merge_tips(&tips, &message(ctx, &names, &[], &[]))?;
    Ok(Ok(Some(Start {
        previous,
        todo,
        merged,
        finished_by_hand: None,
    })))
}

/// Why the integration would be refused (checked out, moved by someone else, work of yours on
/// its work branch that it cannot build on), before anything is changed for it.
pub fn refusal(ctx: &Ctx, it: &Integration) -> Option<String> {
    match start(ctx, it) {
        Ok(Err(why)) => Some(why),
        _ => None,
    }
}

/// Whether the integration's own worktree (the one spec-exec made) has `branch` checked out.
fn own_worktree_has(ctx: &Ctx, branch: &str) -> bool {
    git::check_worktree(
        &ctx.git().map(|g| g.common_dir()).unwrap_or_default(),
        &worktree_name(&ctx.feature, NAME),
        &ctx.worktree(NAME),
        branch,
    )
    .is_ok()
}

/// The commits spec-exec wrote down as left at the integration branch (the last one, and
/// the one it was about to move it to, when a run died in between).
fn recorded_tips(ctx: &Ctx) -> Vec<Oid> {
    std::fs::read_to_string(record_of(ctx))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Oid::from_str(l.trim()).ok())
        .collect()
}

/// Builds or moves the integration branch.
pub async fn integrate(ctx: Arc<Ctx>, it: Integration, stop: watch::Receiver<Stop>) -> Landed {
    let start = {
        let (ctx, it) = (Arc::clone(&ctx), it.clone());
        blocking(move || start(&ctx, &it)).await
    };
    let start = match start {
        Err(e) => return failed(e.to_string()),
        Ok(Err(why)) => return failed(why),
        Ok(Ok(None)) => {
            let tip = {
                let ctx = Arc::clone(&ctx);
                let branch = it.branch.clone();
                blocking(move || ctx.git().ok().and_then(|g| g.branch_tip(&branch))).await
            };
            return match tip {
                Some(commit) => Landed::Unchanged { commit },
                None => Landed::Nothing,
            };
        }
        Ok(Ok(Some(start))) => start,
    };
    // Without verify commands and without conflicts, the merge is the result: no worktree.
    let verifies = !ctx.verify.is_empty();
    if let (Ok(commit), false, None) = (&start.merged, verifies, start.finished_by_hand) {
        return finish(&ctx, &it, &start, *commit, Vec::new(), Vec::new(), None).await;
    }
    in_worktree(ctx, it, start, stop).await
}

/// Moves the branch to `commit`, if it is still where the integration started.
async fn finish(
    ctx: &Arc<Ctx>,
    it: &Integration,
    start: &Start,
    commit: Oid,
    resolved: Vec<String>,
    verified: Vec<String>,
    log: Option<PathBuf>,
) -> Landed {
    // Written down before the move (with where it was), so that a run that dies in between
    // does not take its own commit for someone else's; and after it, alone.
    let mut before: Vec<String> = start.previous.iter().map(|o| o.to_string()).collect();
    before.push(commit.to_string());
    if let Err(e) = std::fs::write(record_of(ctx), before.join("\n") + "\n") {
        return failed(format!(
            "could not write `{}`: {e}; the branch was not moved",
            record_of(ctx).display()
        ));
    }
    let moved = {
        let (ctx, branch, previous) = (Arc::clone(ctx), it.branch.clone(), start.previous);
        blocking(move || ctx.git()?.move_branch(&branch, previous, commit)).await
    };
    match moved {
        Ok(()) => {
            // Where spec-exec left it; and a work branch an earlier integration left, now
            // held by the branch, goes.
            let _ = std::fs::write(record_of(ctx), format!("{commit}\n"));
            let _ = std::fs::write(
                base_record_of(ctx),
                format!("{} {}\n", it.onto, it.onto_name),
            );
            let (ctx2, work) = (Arc::clone(ctx), work_branch(it));
            let _ = blocking(move || -> crate::error::Result<()> {
                let git = ctx2.git()?;
                if let Some(next) = git.branch_tip(&work)
                    && git.contains(commit, next)
                {
                    git.remove_worktree(&worktree_name(&ctx2.feature, NAME), &ctx2.worktree(NAME))?;
                    git.delete_branch(&work)?;
                }
                Ok(())
            })
            .await;
            Landed::Built {
                commit,
                previous: start.previous,
                merged: start.todo.iter().map(|(b, _)| b.clone()).collect(),
                resolved,
                verified,
                log,
            }
        }
        Err(e) => failed(format!(
            "{e} (it moved while the integration was built; run `cargo spec-exec land {}` again)",
            ctx.feature
        )),
    }
}

/// The integration in a worktree: conflicts resolved by the agent, the result verified (and
/// fixed by the agent when it fails), then the branch moved.
async fn in_worktree(
    ctx: Arc<Ctx>,
    it: Integration,
    start: Start,
    stop: watch::Receiver<Stop>,
) -> Landed {
    let work = work_branch(&it);
    let worktree = ctx.worktree(NAME);
    let (at, pending) = match (&start.merged, start.finished_by_hand) {
        (_, Some(next)) => (next, Vec::new()),
        (Ok(commit), None) => (*commit, Vec::new()),
        (Err(c), None) => (c.at, c.rest.clone()),
    };
    let made = {
        let (ctx, work, worktree) = (Arc::clone(&ctx), work.clone(), worktree.clone());
        blocking(move || {
            let git = ctx.git()?;
            git.set_branch(&work, at, true)?;
            git.add_worktree(&worktree_name(&ctx.feature, NAME), &worktree, &work)
        })
        .await
    };
    if let Err(e) = made {
        return failed(format!("could not make the integration's worktree: {e}"));
    }
    let mut p = Progress {
        report: TaskReport::new(NAME.to_owned(), NAME.to_owned(), None, Status::Done),
        worktree: worktree.clone(),
        worktree_name: worktree_name(&ctx.feature, NAME),
        log: ctx.log(NAME),
        tasks_md_as_given: None,
        agent_started: None::<SystemTime>,
        verdict: None,
        verify_log: ctx.log(&format!("{NAME}.verify")),
        pending,
        verified: Vec::new(),
        final_text: None,
        rate_limited: None,
        verify_commands: Some(ctx.verify_commands(&worktree)),
        // Its worktree's path does not change from run to run: its builds stay warm.
        build_env: vec![(
            "CARGO_TARGET_DIR".to_owned(),
            super::super::slots::builds_dir(&ctx.state_dir)
                .join(NAME)
                .display()
                .to_string(),
        )],
        entered: true,
        slot: None,
        base: None,
        remake: false,
        opened: None,
    };
    let title = format!("Integrate {}", ctx.feature);
    let who = Who {
        id: NAME,
        title: &title,
        branch: &work,
        agent: &it.agent,
        code_blocks: &[],
        resume: None,
    };
    let sides: Vec<(String, String)> = it
        .tips
        .iter()
        .map(|t| (t.branch.clone(), t.label.clone()))
        .collect();
    let outcome = build(&ctx, &it, &sides, who, &mut p, &stop).await;
    let log = p.report.log.clone().or(p.report.verify_log.clone());
    let (commit, resolved, verified) = match outcome {
        Ok(done) => done,
        Err(end) => {
            return Landed::Failed {
                interrupted: end.status == Status::Interrupted,
                reason: format!("{} (on branch `{work}`)", end.reason),
                worktree: Some(worktree),
                log,
            };
        }
    };
    let landed = finish(&ctx, &it, &start, commit, resolved, verified, log).await;
    if matches!(landed, Landed::Built { .. }) {
        let (ctx, work) = (Arc::clone(&ctx), work.clone());
        let _ = blocking(move || {
            let git = ctx.git()?;
            git.remove_worktree(&worktree_name(&ctx.feature, NAME), &worktree)?;
            git.delete_branch(&work)
        })
        .await;
    }
    landed
}

/// Resolves what conflicts, verifies the result (the agent fixing what fails), and records
/// the verification on the last commit. The commit, the resolved paths, the verify commands
/// that passed.
async fn build(
    ctx: &Arc<Ctx>,
    it: &Integration,
    sides: &[(String, String)],
    who: Who<'_>,
    p: &mut Progress,
    stop: &watch::Receiver<Stop>,
) -> Result<(Oid, Vec<String>, Vec<String>), End> {
    let mut resolved = Vec::new();
    let mut verified: Vec<String> = Vec::new();
    while let Some((branch, tip)) = p.pending.first().cloned() {
        let message =
            |paths: &[String], verified: &[String]| message(ctx, &[&branch], paths, verified);
        let prompt = |paths: &[String]| {
            prompt::resolve(
                &ctx.feature,
                Resolving::Integration { branch: &it.branch },
                sides,
                &branch,
                paths,
            )
        };
        let joined = merge::merge(
            ctx,
            who,
            p,
            stop,
            merge::Merge {
                branch: &branch,
                tip,
                ours: it.branch.clone(),
                message: &message,
                prompt: &prompt,
                prompt_file: ctx.prompt_file(&format!("{NAME}.resolve")),
            },
        )
        .await
        .map_err(|mut f| {
            if !f.paths.is_empty() {
                f.end.reason = format!(
                    "merging `{branch}` conflicts in {}; {}",
                    super::some_paths(&f.paths),
                    f.end.reason
                );
            }
            f.end
        })?;
        verified.clear();
        if let merge::Joined::Resolved {
            paths,
            verified: passed,
        } = joined
        {
            resolved.extend(paths);
            verified = passed;
        }
        p.pending.remove(0);
    }
    if verified.is_empty() {
        let step = attempt::Step {
            kind: Kind::Resolve,
            prompt: prompt::integration_fix(&ctx.feature, &it.branch, sides),
            prompt_file: ctx.prompt_file(&format!("{NAME}.fix")),
            conflicts: None,
            verify_always: true,
            check_first: true,
        };
        verified = attempt::run(ctx, who, p, stop, step).await?.verified;
        // What the agent changed to make it pass is a commit of its own.
        let (worktree, ctx2) = (p.worktree.clone(), Arc::clone(ctx));
        let fix = format!(
            "{}: integration fix\n\nWhat the merged tasks needed to pass together.\n\n{}: {}\n{}: {}\n{}",
            ctx.feature,
            git::FEATURE_TRAILER,
            ctx.feature,
            git::INTEGRATION_TRAILER,
            ctx.feature,
            git::outcome_trailers(&[], &verified)
        );
        let tasks_md = ctx.spec_rel.join("tasks.md");
        let (kept, log) = (p.log.with_extension("tasks.md"), p.log.clone());
        let verified_now = verified.clone();
        let tips: Vec<Oid> = it.tips.iter().map(|t| t.oid).collect();
        let (name, work) = (worktree_name(&ctx.feature, NAME), who.branch.to_owned());
        blocking(move || -> crate::error::Result<()> {
            git::check_worktree(&ctx2.git()?.common_dir(), &name, &worktree, &work)?;
            let given = git::blob_at_head(&worktree, &tasks_md);
            keep_tasks_md_out(&worktree, &tasks_md, (given.as_deref(), None), &kept, &log)?;
            let sig = ctx2.git()?.signature();
            if git::commit_worktree(&worktree, &fix, &sig, false, None)?.is_some() {
                return Ok(());
            }
            // Nothing to fix: the verification goes on the integration's own last commit (a
            // task's commit, when the branch only moved forward to one, has its own).
            let head = git::head_of(&worktree)?;
            let message = ctx2.git()?.message(head).unwrap_or_default();
            if !verified_now.is_empty()
                && !tips.contains(&head)
                && git::trailer(&message, git::INTEGRATION_TRAILER).is_some()
                && git::trailer(&message, git::VERIFIED_TRAILER).is_none()
            {
                let message = message + &git::outcome_trailers(&[], &verified_now);
                git::amend_head_message(&worktree, &message)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| End::failed(e.to_string()))?;
    }
    let worktree = p.worktree.clone();
    let head = blocking(move || git::head_of(&worktree))
        .await
        .map_err(|e| End::failed(e.to_string()))?;
    Ok((head, resolved, verified))
}
