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
use std::time::Instant;

use super::{Settings, Where, context, not_in_own_worktree, run_id, state};
use crate::error::{Error, Result, exit};
use crate::exec::state::worktree_prefix;
use crate::git::{self, Git};
use crate::output::Shell;
use crate::report::Event;
use crate::report::IntegrationReport;
use crate::spec::Feature;
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
                // A rework that was not needed did no work to look for.
                None if list.tasks[t].state == TaskState::Done
                    && list.tasks[t].condition().next().is_none() =>
                {
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
pub fn refused_report(ctx: &Ctx, branch: &str, base: &str, why: String) -> IntegrationReport {
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

/// Builds (or moves forward) the feature's integration branch from its done tasks whose
/// dependencies are done. A new branch starts from `settings.base` (default HEAD); an
/// existing one merges `settings.base` when given, and otherwise keeps the base it was built
/// on. Returns the exit code (0 built or up to date, 1 it could not be built, 130
/// interrupted) and what happened; nothing to integrate is an error.
pub fn land(
    shell: &Shell,
    root: &Path,
    target_dir: &Path,
    feature: &Feature,
    list: &TaskList,
    settings: Settings,
) -> Result<(i32, Option<IntegrationReport>)> {
    let started = Instant::now();
    let git = Git::open(root)?;
    not_in_own_worktree(&git, root)?;
    let workdir = git.workdir().unwrap_or_else(|| root.to_path_buf());
    let state_dir = state::state_dir(&git.common_dir(), &feature.name);
    let (base, base_name, merge_onto) = base_of(&git, &settings, &state_dir)?;
    let spec_rel = feature
        .dir
        .strip_prefix(&workdir)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // The run lock: no run of the feature moves its branches meanwhile.
    let state = super::open_state(shell, &git, &feature.name, &settings, target_dir, root)?;
    let selection = select(&git, list, &settings.branch_prefix, &feature.name, &[]);
    if selection.tips.is_empty() {
        return Err(Error::user_with_help(
            format!(
                "no task of `{}` has work on a branch of its own: there is nothing to integrate",
                feature.name
            ),
            format!("run the feature first: cargo spec-exec {}", feature.name),
        ));
    }
    if !selection.waiting.is_empty() {
        let one = selection.waiting.len() == 1;
        shell.status(
            "Waiting",
            format!(
                "{} {} done but left out: {} dependencies are not",
                selection.waiting.join(", "),
                if one { "is" } else { "are" },
                if one { "its" } else { "their" },
            ),
        );
    }
    let run_id = run_id();
    let run_dir = state.dir().join("integration").join(&run_id);
    let ctx = Arc::new(context(&Where {
        started,
        feature,
        root,
        workdir: &workdir,
        spec_rel,
        state: &state,
        run_dir,
        run_id,
        base,
        settings: &settings,
    }));
    // Refused before anything is changed for it; then an integration's worktree left by an
    // earlier one is set aside when it has changes, as a run does.
    let refused = refusal(
        &ctx,
        &settings.integration_branch,
        &base_name,
        &selection,
        merge_onto,
    );
    if refused.is_none() {
        for note in
            state.clean_worktrees(&git, &worktree_prefix(&feature.name), &ctx.run_id, root)?
        {
            shell.status(note.verb, &note.text);
        }
        for sub in ["logs", "prompts"] {
            let d = ctx.run_dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
        }
    }
    shell.status(
        "Integrating",
        format!(
            "{}: its done tasks into {}",
            feature.name, settings.integration_branch
        ),
    );
    let report = if let Some(why) = refused {
        Some(refused_report(
            &ctx,
            &settings.integration_branch,
            &base_name,
            why,
        ))
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::user(format!("could not start the async runtime: {e}")))?;
        runtime.block_on(stoppable(|stop| {
            build(
                &ctx,
                &settings.integration_branch,
                &base_name,
                selection,
                settings.agent.clone(),
                merge_onto,
                stop,
            )
        }))
    };
    let _ = std::fs::remove_file(&ctx.registry);
    let Some(report) = report else {
        return Err(Error::user_with_help(
            format!(
                "every done task's work of `{}` is in {base_name} already: there is nothing to integrate",
                feature.name
            ),
            "the integration branch holds what the base does not; here that is nothing",
        ));
    };
    show(shell, &report, &feature.name);
    let code = match report.status {
        "failed" => exit::TASKS_FAILED,
        "interrupted" => exit::INTERRUPTED,
        _ => exit::OK,
    };
    Ok((code, Some(report)))
}

/// Where the integration starts, how people name it, and whether an existing branch merges
/// it: `--onto` when given (merged); else the base the branch was built on, written down when it
/// was (kept); else HEAD, for a new branch.
fn base_of(git: &Git, settings: &Settings, state_dir: &Path) -> Result<(git2::Oid, String, bool)> {
    let exists = git.branch_tip(&settings.integration_branch).is_some();
    let recorded = integrate::recorded_base(state_dir).filter(|_| exists);
    Ok(match (&settings.base, recorded) {
        (Some(rev), _) => (git.resolve(rev)?, rev.clone(), true),
        (None, Some((oid, name))) => (oid, name, false),
        (None, None) => (git.resolve("HEAD")?, git.head_name(), false),
    })
}

/// The integration's report: a JSON line, or status lines and the next steps.
fn show(shell: &Shell, report: &IntegrationReport, feature: &str) {
    if shell.is_json() {
        shell.json(&Event::Integrated(Box::new(report.clone())));
        return;
    }
    for (verb, message, bad) in crate::output::integration_lines(report, feature) {
        if bad {
            shell.error_status(verb, &message);
        } else {
            shell.status(verb, message);
        }
    }
    crate::output::annotate_integration(shell, report);
}
