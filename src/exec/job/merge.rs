//! Merging a branch's tip into a job's worktree, the agent resolving what conflicts: the step
//! a task's base and the feature's integration share.

use std::path::PathBuf;
use std::sync::Arc;

use git2::Oid;
use tokio::sync::watch;

use super::attempt::{self, Kind, Who};
use super::{Ctx, End, Progress, blocking, keep_tasks_md_out};
use crate::exec::process::Stop;
use crate::git::{self, Merged};

/// One tip to merge, and how to word the merge for git and the agent.
pub struct Merge<'a> {
    pub branch: &'a str,
    pub tip: Oid,
    /// How conflict markers name the worktree's side.
    pub ours: String,
    /// The merge commit's message, given the paths resolved and the verify commands passed.
    pub message: &'a (dyn Fn(&[String], &[String]) -> String + Sync),
    /// The resolve prompt, given the conflicted paths.
    pub prompt: &'a (dyn Fn(&[String]) -> String + Sync),
    pub prompt_file: PathBuf,
}

/// How a merge ended.
#[derive(Debug)]
pub enum Joined {
    /// Without conflicts (committed, or already held).
    Clean,
    /// The agent resolved `paths`; the result passed `verified`.
    Resolved {
        paths: Vec<String>,
        verified: Vec<String>,
    },
}

/// Why a merge failed: how, and the paths that conflicted (none when it failed before).
#[derive(Debug)]
pub struct Failed {
    pub end: End,
    pub paths: Vec<String>,
}

/// Merges `m.tip` into the worktree. A conflict goes to the agent (`SPEC_EXEC_STEP=resolve`),
/// attempt after attempt, until no conflict is left and the result passes verify; then it is
/// committed as spec-exec's merge of both sides, in the worktree spec-exec made only.
pub async fn merge(
    ctx: &Arc<Ctx>,
    who: Who<'_>,
    p: &mut Progress,
    stop: &watch::Receiver<Stop>,
    m: Merge<'_>,
) -> Result<Joined, Failed> {
    let failed = |end: End, paths: &[String]| Failed {
        end,
        paths: paths.to_vec(),
    };
    let merged = {
        let (worktree, ctx2) = (p.worktree.clone(), Arc::clone(ctx));
        let (ours, branch, tip) = (m.ours.clone(), m.branch.to_owned(), m.tip);
        let message = (m.message)(&[], &[]);
        blocking(move || {
            let sig = ctx2.git()?.signature();
            git::merge_into_worktree(&worktree, tip, (&ours, &branch), &message, &sig)
        })
        .await
        .map_err(|e| failed(End::failed(e.to_string()), &[]))?
    };
    let Merged::Conflicted(conflicted) = merged else {
        return Ok(Joined::Clean);
    };
    let paths = conflicted.paths.clone();
    let step = attempt::Step {
        kind: Kind::Resolve,
        prompt: (m.prompt)(&paths),
        prompt_file: m.prompt_file,
        conflicts: Some((conflicted.entries.clone(), conflicted.textual.clone())),
        verify_always: true,
        check_first: false,
    };
    let passed = attempt::run(ctx, who, p, stop, step)
        .await
        .map_err(|end| failed(end, &paths))?;
    let message = (m.message)(&paths, &passed.verified);
    let (worktree, ctx2) = (p.worktree.clone(), Arc::clone(ctx));
    let tasks_md = ctx.spec_rel.join("tasks.md");
    let (kept, log) = (p.log.with_extension("resolve.tasks.md"), p.log.clone());
    let (name, branch) = (p.worktree_name.clone(), who.branch.to_owned());
    let (ours, tip) = (conflicted.ours, m.tip);
    blocking(move || {
        let git = ctx2.git()?;
        git::check_worktree(&git.common_dir(), &name, &worktree, &branch)?;
        let given = git::blob_at_commit(&worktree, ours, &tasks_md);
        keep_tasks_md_out(
            &worktree,
            &tasks_md,
            (given.as_deref(), Some(ours)),
            &kept,
            &log,
        )?;
        git::finish_merge(&worktree, ours, tip, &message, &git.signature())
    })
    .await
    .map_err(|e| {
        failed(
            End::failed(format!("the resolution could not be committed: {e}")),
            &paths,
        )
    })?;
    Ok(Joined::Resolved {
        paths,
        verified: passed.verified,
    })
}
