//! The commands: each loads what it needs, decides with the pure core, and reports through the
//! [`Shell`]. Errors a user can cause come back as [`Error`]s; the caller prints them.

mod ask;
mod check;
pub mod clean;
pub mod deps;
pub mod land;
pub mod pr;
pub mod sync;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::agents;
use crate::cli::RunOptions;
use crate::config::{self, DEFAULT_MAX_AGENTS};
use crate::error::{Diagnostic, Error, Result, exit};
use crate::exec;
use crate::fsutil;
use crate::output::{Shell, Verbosity};
use crate::plan::{self, render};
use crate::source::display_path;
use crate::spec::{self, Feature, TaskList, approval};
use crate::workspace::Workspace;

pub use check::{check, summary_of_error as check_summary_of_error};

/// Loads a feature's list with the workspace's checks on it: what would make a run fail after
/// it started (branch names git cannot create, worktree paths too long) is an error too.
fn load_checked(ws: &Workspace, feature: &Feature) -> Result<TaskList> {
    let mut list = spec::load(feature, &ws.root)?;
    let branches =
        exec::state::run_diagnostics(&list, &ws.config.branch_prefix, &feature.name, &ws.root);
    list.diagnostics.extend(branches);
    let integration = exec::state::integration_clashes(
        &list,
        &ws.config.branch_prefix,
        &feature.name,
        &ws.config.integration_branch(&feature.name),
    );
    list.diagnostics.extend(integration);
    Ok(list)
}

/// Loads a feature's list, printing its warnings; its errors become the `Err`.
pub(crate) fn load_valid(shell: &Shell, ws: &Workspace, feature: &Feature) -> Result<TaskList> {
    let list = load_checked(ws, feature)?;
    shell.diagnostics(list.diagnostics.iter().filter(|d| !d.is_error()));
    if list.has_errors() {
        return Err(Error::Diagnostics(list.errors().cloned().collect()));
    }
    Ok(list)
}

pub fn run(shell: &Shell, ws: &Workspace, name: &str, opts: &RunOptions) -> Result<i32> {
    // Every argument is checked before anything else happens.
    let max_agents = opts
        .max_agents
        .map(usize::from)
        .or(ws.config.max_agents)
        .unwrap_or(DEFAULT_MAX_AGENTS);
    let timeout = timeout(ws, opts.timeout.as_deref())?;
    let kill_grace = kill_grace(ws)?;
    let slot_makers = slot_makers()?;
    let (verify, verify_default) = verify_commands(ws, &opts.verify)?;
    let max_wait = max_wait(ws, opts.max_wait.as_deref())?;
    if opts.push && opts.remote.is_none() {
        return Err(Error::user_with_help(
            "--push needs --remote: the remote to push the task branches to",
            "add `--remote origin` (or another remote's name)",
        ));
    }
    check_agent_flag(opts.agent.as_deref())?;
    let all = all_features(ws)?;
    let junit = junit_path(ws, &all, opts.junit.as_deref())?;
    let feature = spec::pick(&all, &ws.root, &ws.features_dir(), name)?;
    // Shown as its directory's name (`001` finds `001-user-auth`), unless only a path tells it
    // from another feature of that name.
    let name = if name.contains('/') {
        name
    } else {
        feature.name.as_str()
    };
    let mut list = load_valid(shell, ws, &feature)?;
    let approval = approval::state(&list);
    let plan = plan::build(
        &list,
        &plan::Options {
            tracks: opts.tracks.clone(),
            max_agents,
            skip_optional: opts.skip_optional,
            overlap: opts.overlap.unwrap_or(ws.config.overlap),
        },
    )?;
    // The orders `--overlap serialize` added are the list's dependencies from now on: the
    // JSON plan shows them, and each such task builds on the branch of the one it waits for.
    plan.add_orderings(&mut list);
    let selected = if opts.tasks.is_empty() {
        None
    } else {
        Some(exec::task_mode::select(&list, &opts.tasks)?)
    };
    if !(opts.dry_run && shell.is_json()) {
        shell.diagnostics(plan.warnings.iter());
    }
    if !opts.dry_run
        && let Some(note) = plan.orderings_note(&list)
    {
        shell.status("Note", note);
    }
    let lineup = agents::Lineup::new(
        opts.agent.as_deref(),
        ws.config.agent.as_ref(),
        &ws.config.agents,
    );
    if opts.dry_run {
        // `--task`: the plan of the selected tasks (what their branches hold is not read).
        let plan = match &selected {
            Some(selected) => plan.only(&selected.iter().copied().collect()),
            None => plan,
        };
        return dry_run(shell, ws, opts, (&list, name, &plan, &approval, &lineup));
    }
    refuse_twins(ws, &all, &feature)?;
    require_approval(&list, name, &approval)?;
    let fetched = match &opts.remote {
        Some(remote) => Some(fetch(shell, ws, remote, &feature, &list)?),
        None => None,
    };
    if shell.is_json() {
        shell.json(&render::json(&list, name, &plan, &approval, &lineup));
    }
    let task_mode = selected.map(|selected| exec::task_mode::TaskMode {
        selected,
        fetched: fetched.clone(),
    });
    if let (Some(path), Some(given)) = (&junit, &opts.junit) {
        prepare_junit(path, given)?;
    }
    if plan.pending() == 0 && task_mode.is_none() {
        return all_done(shell, ws, opts, &feature, name, list, junit.as_deref());
    }
    // The agents of the tasks that may run: with `--task`, only the selected ones'.
    let (agent, agents) = match &task_mode {
        Some(mode) => {
            let selected = plan.only(&mode.selected.iter().copied().collect());
            run_agents(shell, ws, opts, &list, &selected, &verify)?
        }
        None => run_agents(shell, ws, opts, &list, &plan, &verify)?,
    };
    exec::execute(
        shell,
        &ws.root,
        &ws.target_dir,
        &feature,
        &list,
        &plan,
        exec::Settings {
            max_agents,
            continue_on_error: opts.continue_on_error,
            timeout,
            base: opts.base.clone(),
            branch_prefix: ws.config.branch_prefix.clone(),
            agent,
            agents,
            max_review_rounds: opts
                .max_review_rounds
                .or(ws.config.max_review_rounds)
                .unwrap_or(config::DEFAULT_MAX_REVIEW_ROUNDS),
            kill_grace,
            slot_makers,
            verify,
            verify_default,
            max_attempts: opts
                .verify
                .max_attempts
                .or(ws.config.max_attempts)
                .unwrap_or(config::DEFAULT_MAX_ATTEMPTS),
            resolve: !opts.no_resolve,
            integration_branch: ws.config.integration_branch(&feature.name),
            max_cost: opts.max_cost.or(ws.config.max_cost),
            on_rate_limit: opts
                .on_rate_limit
                .or(ws.config.on_rate_limit)
                .unwrap_or_default(),
            max_wait,
            shared_target: ws.config.shared_target,
            junit,
            push: fetched.filter(|_| opts.push),
            task_mode,
        },
    )
}

/// How long a run waits for agents' limits to reset, in all: `--max-wait` (`flag`), else
/// `max-wait` in the configuration, else the default.
fn max_wait(ws: &Workspace, flag: Option<&str>) -> Result<std::time::Duration> {
    match flag {
        Some(t) => config::parse_duration(t).map_err(|why| {
            Error::user_with_help(format!("invalid --max-wait: {why}"), "e.g. --max-wait 2h")
        }),
        None => Ok(ws.config.max_wait.unwrap_or(config::DEFAULT_MAX_WAIT)),
    }
}

/// `--dry-run`: the plan, as text or JSON; a bad `--base` is an error now, not when the run
/// is tried for real.
fn dry_run(
    shell: &Shell,
    ws: &Workspace,
    opts: &RunOptions,
    (list, name, plan, approval, lineup): (
        &TaskList,
        &str,
        &plan::Plan,
        &approval::Approval,
        &agents::Lineup,
    ),
) -> Result<i32> {
    if let Some(rev) = &opts.base {
        crate::git::Git::open(&ws.root)?.resolve(rev)?;
    }
    if shell.is_json() {
        shell.json(&render::json(list, name, plan, approval, lineup));
    } else {
        shell.out(
            render::human(
                list,
                name,
                plan,
                approval,
                lineup,
                shell.verbosity == Verbosity::Verbose,
            )
            .trim_end(),
        );
    }
    Ok(exit::OK)
}

/// Branches, worktrees and run state are named after the feature: two features of one name
/// (in two spec tools' places) would take each other's work for their own.
fn refuse_twins(ws: &Workspace, all: &[spec::Feature], feature: &spec::Feature) -> Result<()> {
    let twins: Vec<String> = all
        .iter()
        .filter(|f| f.name == feature.name && f.dir != feature.dir)
        .map(|f| format!("`{}`", display_path(&f.dir, &ws.root).display()))
        .collect();
    if twins.is_empty() {
        return Ok(());
    }
    Err(Error::user_with_help(
        format!(
            "`{}` is also the name of {}: their branches (`{}/{}/…`) and run state would be shared",
            display_path(&feature.dir, &ws.root).display(),
            twins.join(", "),
            ws.config.branch_prefix,
            feature.name
        ),
        "rename one of the directories so that every feature has its own name (--dry-run works as it is)",
    ))
}

/// A task's time limit: `--timeout` (`flag`), else `timeout` in the configuration, else the
/// default.
pub(crate) fn timeout(ws: &Workspace, flag: Option<&str>) -> Result<std::time::Duration> {
    match flag {
        Some(t) => config::parse_duration(t).map_err(|why| {
            Error::user_with_help(format!("invalid --timeout: {why}"), "e.g. --timeout 30m")
        }),
        None => Ok(ws.config.timeout.unwrap_or(config::DEFAULT_TIMEOUT)),
    }
}

/// `--agent`, when given, names something.
pub(crate) fn check_agent_flag(agent: Option<&str>) -> Result<()> {
    match agent {
        Some(agent) if agent.trim().is_empty() => Err(Error::user_with_help(
            "--agent is empty",
            "name a preset or a command",
        )),
        _ => Ok(()),
    }
}

/// `--junit`'s path: a file to write, not a directory, and none of the repository's own (a
/// tracked file, a feature's spec), which the report would replace. A link is followed: the
/// report is written where it leads.
fn junit_path(ws: &Workspace, all: &[Feature], path: Option<&Path>) -> Result<Option<PathBuf>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let example = "give the path of the file to write, e.g. --junit target/spec-exec.xml";
    let absolute = std::path::absolute(path).map_err(|e| {
        Error::user_with_help(
            format!("invalid --junit `{}`: {e}", path.display()),
            example,
        )
    })?;
    if path.as_os_str().is_empty() || absolute.is_dir() {
        return Err(Error::user_with_help(
            format!("--junit `{}` is a directory", path.display()),
            example,
        ));
    }
    let is_link = absolute
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink());
    let real = if is_link {
        absolute.canonicalize().map_err(|e| {
            Error::user_with_help(
                format!(
                    "--junit `{}` is a link that leads to no file ({e})",
                    path.display()
                ),
                "give the path of the file itself, or fix the link",
            )
        })?
    } else {
        real_path(&absolute)
    };
    let refuse = |what: String| {
        Err(Error::user_with_help(
            format!(
                "--junit `{}` is {what}: the report would replace it",
                path.display()
            ),
            "write the report outside the sources, e.g. --junit target/spec-exec.xml",
        ))
    };
    for f in all {
        let dir = real_path(&f.dir);
        if real.starts_with(&dir) {
            return refuse(format!(
                "in the directory of feature `{}` (`{}`)",
                f.name,
                display_path(&f.dir, &ws.root).display()
            ));
        }
        if real == real_path(&f.tasks_path()) {
            return refuse(format!("the task list of feature `{}`", f.name));
        }
    }
    if let Ok(git) = crate::git::Git::open(&ws.root)
        && let Some(workdir) = git.workdir()
        && let Ok(rel) = real.strip_prefix(real_path(&workdir))
        && git.is_tracked(rel)
    {
        return refuse(format!("`{}`, a file git tracks", rel.display()));
    }
    Ok(Some(real))
}

/// `path` with its links resolved, as far as it exists (the rest as it is named).
fn real_path(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => real_path(parent).join(name),
        _ => path.to_path_buf(),
    }
}

/// Readies `--junit`'s file before the first agent starts: its directory made and found
/// writable (a report that cannot be written is refused now, not after every agent ran), and
/// a report an earlier run left there removed, so that a run that ends without writing one
/// (killed) does not leave an old one to be read as its own.
fn prepare_junit(path: &Path, given: &Path) -> Result<()> {
    let fail = |what: String| {
        Error::user_with_help(
            format!("--junit `{}`: {what}", given.display()),
            "give a path whose directory can be made and written, e.g. --junit target/spec-exec.xml",
        )
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| {
        fail(format!(
            "could not create its directory `{}`: {e}",
            dir.display()
        ))
    })?;
    tempfile::Builder::new()
        .prefix(".report-")
        .tempfile_in(dir)
        .map_err(|e| {
            fail(format!(
                "could not write in its directory `{}`: {e}",
                dir.display()
            ))
        })?;
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(format!(
            "could not remove the report already there: {e}"
        ))),
    }
}

/// Fetches the feature's task branches from `remote` (see [`exec::remote::fetch`]), saying
/// what it did.
pub(crate) fn fetch(
    shell: &Shell,
    ws: &Workspace,
    remote: &str,
    feature: &Feature,
    list: &TaskList,
) -> Result<exec::remote::Fetched> {
    let git = crate::git::Git::open(&ws.root)?;
    let workdir = git.workdir().unwrap_or_else(|| ws.root.clone());
    let fetched = exec::remote::fetch(
        &workdir,
        remote,
        &ws.config.branch_prefix,
        &feature.name,
        list,
        git_timeout(ws)?,
    )?;
    if !fetched.updated.is_empty() {
        let n = fetched.updated.len();
        let names = crate::output::first_of(&fetched.updated, 6);
        shell.status(
            "Fetched",
            format!(
                "{n} task {} from {remote}: {names}",
                if n == 1 { "branch" } else { "branches" }
            ),
        );
    }
    for w in &fetched.warnings {
        shell.diagnostic(&Diagnostic::warning(w.clone()));
    }
    Ok(fetched)
}

/// A run refuses a task list that is not approved as it is.
pub(crate) fn require_approval(
    list: &TaskList,
    name: &str,
    approval: &approval::Approval,
) -> Result<()> {
    let path = list.source.display_path.display().to_string();
    match approval_error(&path, name, approval) {
        Some(d) => Err(Error::Diagnostics(vec![d])),
        None => Ok(()),
    }
}

/// Why a task list is not approved as it is (`None` when it is), pointing at `path`.
fn approval_error(path: &str, name: &str, approval: &approval::Approval) -> Option<Diagnostic> {
    match approval {
        approval::Approval::Approved { .. } => None,
        approval::Approval::Unapproved { .. } => Some(
            Diagnostic::error(format!("the task list of `{name}` has not been approved"))
                .in_file(Path::new(path))
                .help(format!(
                    "review it (`cargo spec-exec {name} --dry-run` shows the plan), then run `cargo spec-exec approve {name}`"
                )),
        ),
        approval::Approval::Stale { record, .. } => {
            let by = record
                .by
                .as_deref()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default();
            Some(
                Diagnostic::error(format!(
                    "the task list of `{name}` changed since it was approved{by}"
                ))
                .in_file(Path::new(path))
                .note("ticking checkboxes keeps an approval; editing the tasks voids it")
                .help(format!(
                    "review the changes, then run `cargo spec-exec approve {name}`"
                )),
            )
        }
    }
}

/// A run that finds every selected task done: it builds the feature's integration branch
/// when that does not hold them all (it failed to build, or was never built), else it has
/// nothing to do.
fn all_done(
    shell: &Shell,
    ws: &Workspace,
    opts: &RunOptions,
    feature: &Feature,
    name: &str,
    list: TaskList,
    junit: Option<&Path>,
) -> Result<i32> {
    // Every task done, but the feature's integration branch does not hold them all (it
    // failed to build, or was never built): that is what is left to do.
    let integration = ws.config.integration_branch(&feature.name);
    let (code, report) = if crate::exec::integration_pending(
        &ws.root,
        &list,
        &ws.config.branch_prefix,
        &feature.name,
        &integration,
    ) {
        shell.status(
            "Finished",
            format!(
                "{name}: every selected task is done; its integration branch is not up to date"
            ),
        );
        let cmd = crate::cli::LandCommand {
            feature: feature.name.clone(),
            onto: opts.base.clone(),
            agent: opts.agent.clone(),
            verify: opts.verify.clone(),
            timeout: opts.timeout.clone(),
        };
        land::integrate(shell, ws, feature, list, &cmd)?
    } else {
        shell.status(
            "Finished",
            format!("{name}: nothing to do, every selected task is done"),
        );
        let missing =
            crate::git::Git::open(&ws.root).is_ok_and(|git| git.branch_tip(&integration).is_none());
        if missing {
            shell.status(
                "Next",
                format!(
                    "`cargo spec-exec land {name}` builds its integration branch, {integration}, from what is done"
                ),
            );
        }
        (exit::OK, None)
    };
    // No task ran: the JUnit report a CI step looks for holds none. Its directory was found
    // writable before; a write that fails now fails the run (exit 1), which did its work.
    let mut code = code;
    let mut error = None;
    if let Some(path) = junit
        && let Err(e) = crate::report::junit::write_file(
            path,
            &feature.name,
            Some(&crate::report::junit::timestamp()),
            0.0,
            &[],
            &ws.root,
        )
    {
        let e = crate::report::junit::not_written(&e);
        if !shell.is_json() {
            shell.diagnostic(&Diagnostic::error(e.clone()).help(crate::report::sink::WRITE_HELP));
        }
        error = Some(e);
        if code == exit::OK {
            code = exit::TASKS_FAILED;
        }
    }
    if shell.is_json() {
        let built = report.filter(|r| r.commit.is_some() && r.status != "failed");
        shell.json(&crate::report::Event::RunFinished {
            totals: crate::report::Totals::default(),
            duration_secs: 0.0,
            exit_code: code,
            integration_branch: built.as_ref().map(|r| r.branch.clone()),
            integration_commit: built.and_then(|r| r.commit),
            usage: None,
            disk: None,
            report: None,
            error,
        });
    }
    Ok(code)
}

/// The agents of a run: the default one and those of agent names with a command of their own,
/// each program looked for now (before any agent starts), with what the presets may do.
fn run_agents(
    shell: &Shell,
    ws: &Workspace,
    opts: &RunOptions,
    list: &TaskList,
    plan: &crate::plan::Plan,
    verify: &[config::VerifyCommand],
) -> Result<(
    agents::Agent,
    std::collections::BTreeMap<String, agents::Agent>,
)> {
    // The agent names of the tasks to run, and the commands configured for them: every
    // program is looked for now, before any agent starts.
    let names: Vec<Option<&str>> = plan.nodes.iter().map(|n| list.agent_of(n.task)).collect();
    let agents = agents::resolve_named(
        names.iter().flatten().copied(),
        opts.agent.is_some(),
        &ws.config.agents,
        &ws.root,
    )?;
    // Whether some task runs with the default agent.
    let needs_default = names
        .iter()
        .any(|n| n.is_none_or(|n| !agents.contains_key(n)));
    let (agent, chosen) =
        match agents::resolve(opts.agent.as_deref(), ws.config.agent.as_ref(), &ws.root) {
            Ok(found) => found,
            // None was asked for or found, and none is needed: every task has its own.
            Err(_) if !needs_default && opts.agent.is_none() && ws.config.agent.is_none() => {
                let first = agents.values().next().cloned();
                (
                    first.unwrap_or(agents::Agent::Shell),
                    agents::Chosen::Config,
                )
            }
            Err(e) => return Err(e),
        };
    if chosen == agents::Chosen::Found && needs_default {
        shell.status(
            "Agent",
            format!(
                "`{}` (found on PATH; pass --agent to choose another)",
                agent.name()
            ),
        );
    }
    for (name, a) in &agents {
        shell.status(
            "Agent",
            format!(
                "`{}` for the tasks of agent `{name}` (its command in the configuration)",
                a.name()
            ),
        );
    }
    let set_aside: Vec<&str> = ws
        .config
        .agents
        .keys()
        .map(String::as_str)
        .filter(|n| opts.agent.is_some() && names.contains(&Some(n)))
        .collect();
    if !set_aside.is_empty() {
        shell.status(
            "Agent",
            format!(
                "`{}` (--agent) for every task: the configured commands of {} are not used",
                agent.name(),
                set_aside
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    // What the presets may do: build and test, read git, run the verify commands, and what
    // the configuration allows.
    let permissions = |name: &str| agents::Permissions {
        allow: ws
            .config
            .allow
            .iter()
            .chain(ws.config.agent_allow.get(name).into_iter().flatten())
            .cloned()
            .collect(),
        verify: verify.iter().map(|v| v.line.clone()).collect(),
        yolo: opts.yolo || ws.config.yolo,
        cargo_home: cargo_home(),
    };
    let agent = agents::with_permissions(agent.clone(), &permissions(agent.name()));
    let agents = agents
        .into_iter()
        .map(|(name, a)| {
            let mut a = agents::with_permissions(a, &permissions(&name));
            if let Some(&format) = ws.config.agent_format.get(&name) {
                a = agents::with_format(a, format);
            }
            (name, a)
        })
        .collect();
    Ok((agent, agents))
}

/// The verify commands of a run: none with --no-verify, else --verify's, else the
/// configuration's, else the default. Whether they are the default.
/// Where cargo keeps its registry: `CARGO_HOME`, else `~/.cargo`.
pub(crate) fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// A verify command's program must exist: otherwise every attempt would fail the same way,
/// and the agent would be asked to fix what it cannot.
fn verify_program(c: &config::VerifyCommand, from: &str) -> Result<()> {
    let program = &c.argv[0];
    if program.contains('/') || which::which(program).is_ok() {
        return Ok(());
    }
    Err(Error::user_with_help(
        format!(
            "the verify command `{}` ({from}) runs `{program}`, which is not on PATH",
            c.line
        ),
        "install it, or give another command; `--no-verify` commits without verifying",
    ))
}

pub(crate) fn verify_commands(
    ws: &Workspace,
    opts: &crate::cli::VerifyOptions,
) -> Result<(Vec<config::VerifyCommand>, bool)> {
    if opts.no_verify {
        return Ok((Vec::new(), false));
    }
    if !opts.verify.is_empty() {
        let commands = opts
            .verify
            .iter()
            .map(|line| {
                config::VerifyCommand::parse(line).map_err(|why| {
                    Error::user_with_help(
                        format!("invalid --verify: {why}"),
                        "give one command line, e.g. --verify 'cargo test --workspace'; write `sh -c '…'` for a shell",
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for c in &commands {
            verify_program(c, "--verify")?;
        }
        return Ok((commands, false));
    }
    match &ws.config.verify {
        Some(commands) => {
            for c in commands {
                verify_program(c, "`verify` in the configuration")?;
            }
            Ok((commands.clone(), false))
        }
        None => Ok((
            vec![
                config::VerifyCommand::parse(config::DEFAULT_VERIFY)
                    .unwrap_or_else(|why| panic!("the default verify command is valid: {why}")),
            ],
            true,
        )),
    }
}

/// Between SIGTERM and SIGKILL: `SPEC_EXEC_KILL_GRACE`, else `kill-grace` in the
/// configuration, else 5 s.
pub(crate) fn kill_grace(ws: &Workspace) -> Result<std::time::Duration> {
    let set = from_env(
        config::KILL_GRACE_ENV,
        config::parse_span,
        "a duration such as 5s or 200ms",
        &format!(
            "to use `kill-grace` in the configuration ({} by default)",
            humantime::format_duration(config::DEFAULT_KILL_GRACE)
        ),
    )?;
    Ok(set
        .or(ws.config.kill_grace)
        .unwrap_or(config::DEFAULT_KILL_GRACE))
}

/// The most a fetch or push of spec-exec's may take: `SPEC_EXEC_GIT_TIMEOUT`, else
/// `git-timeout` in the configuration, else 10 minutes.
pub(crate) fn git_timeout(ws: &Workspace) -> Result<std::time::Duration> {
    let set = from_env(
        config::GIT_TIMEOUT_ENV,
        config::parse_duration,
        "a duration such as 10m or 90s",
        &format!(
            "to use `git-timeout` in the configuration ({} by default)",
            humantime::format_duration(config::DEFAULT_GIT_TIMEOUT)
        ),
    )?;
    Ok(set
        .or(ws.config.git_timeout)
        .unwrap_or(config::DEFAULT_GIT_TIMEOUT))
}

/// How many worktree slots may be made at once: `SPEC_EXEC_SLOT_MAKERS`, else the machine's
/// cores.
pub(crate) fn slot_makers() -> Result<usize> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let set = from_env(
        config::SLOT_MAKERS_ENV,
        |v| match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("`{v}` is not a whole number from 1")),
        },
        "how many worktree slots may be made at once, such as 2",
        &format!("for the machine's cores ({cores})"),
    )?;
    Ok(set.unwrap_or(cores))
}

/// The value of the environment variable `var`, read by `parse`; `None` when it is unset or
/// blank. A value `parse` refuses, or one that is not UTF-8, is an error that says to set it
/// to `example` or unset it (`unset`: what then applies).
fn from_env<T>(
    var: &str,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
    example: &str,
    unset: &str,
) -> Result<Option<T>> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => parse(&value).map(Some).map_err(|why| {
            Error::user_with_help(
                format!("invalid {var}: {why}"),
                format!("set it to {example}, or unset it {unset}"),
            )
        }),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::user_with_help(
            format!("invalid {var}: it is not UTF-8"),
            format!("set it to {example}"),
        )),
    }
}

#[derive(Debug, Serialize)]
struct FeatureLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    tasks_file: String,
    dialect: Option<crate::spec::model::Dialect>,
    done: usize,
    total: usize,
    approval: &'static str,
    errors: usize,
    warnings: usize,
}

struct Summary {
    feature: Feature,
    tasks_file: String,
    progress: Option<(usize, usize)>,
    approval: &'static str,
    /// `None` when the list could not be read.
    approval_state: Option<approval::Approval>,
    dialect: Option<crate::spec::model::Dialect>,
    diagnostics: Vec<Diagnostic>,
    /// Advice that is not a warning (a plan that is one long chain).
    notes: Vec<String>,
}

impl Summary {
    fn dialect_name(&self) -> &'static str {
        self.dialect.map_or("-", |d| d.name())
    }
}

/// Where persona files are looked for: the workspace root, and the repository's working tree
/// when it is another directory.
fn persona_roots(ws: &Workspace) -> Vec<PathBuf> {
    let mut roots = vec![ws.root.clone()];
    if let Some(workdir) = git2::Repository::discover(&ws.root)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_path_buf))
        && !roots.contains(&workdir)
    {
        roots.push(workdir);
    }
    roots
}

/// A warning for each agent name the tasks use that has neither a command in the
/// configuration nor a persona file, at the line that first names it.
fn unknown_agents(list: &TaskList, config: &config::Config, roots: &[&Path]) -> Vec<Diagnostic> {
    let mut seen: Vec<&str> = Vec::new();
    let mut warnings = Vec::new();
    for t in 0..list.tasks.len() {
        let Some(name) = list.agent_of(t) else {
            continue;
        };
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        if config.agents.contains_key(name) || agents::persona_file(roots, name).is_some() {
            continue;
        }
        let loc = agent_location(list, t, name);
        let mut d = Diagnostic::warning(format!(
            "agent `{name}` has neither a command in the configuration nor a persona file"
        ))
        .at_opt(loc)
        .label("named here")
        .note(format!(
            "its tasks run with the default agent, told to work as `{name}` with no persona text"
        ));
        d = if config::validate_agent_name(name).is_ok() {
            d.help(format!(
                "add .claude/agents/{name}.md (or .kiro/agents/{name}.md) describing it, or give it a command under [workspace.metadata.spec-exec.agents.{name}]"
            ))
        } else {
            d.help("name an agent with letters, digits, `-`, `_` and `.`, as its persona file .claude/agents/<name>.md is named")
        };
        warnings.push(d);
    }
    warnings
}

/// Where task `t` names its agent `name`: its `_Agent: name_` line, else its track heading's
/// `> Primary Agent: name` line, else the task or heading line.
fn agent_location(list: &TaskList, t: usize, name: &str) -> Option<crate::error::Location> {
    use crate::spec::dialect;
    let task = &list.tasks[t];
    let src = &list.source;
    let lines = src.text.lines().count();
    let at = |line: usize| -> Option<crate::error::Location> {
        let text = src.line_text(line);
        let (byte, width) = match text.find(name) {
            Some(b) => (b, name.chars().count()),
            None => {
                let trimmed = text.trim();
                (
                    text.len() - text.trim_start().len(),
                    trimmed.chars().count(),
                )
            }
        };
        Some(crate::error::Location {
            path: src.display_path.clone(),
            line,
            column: text[..byte].chars().count() + 1,
            line_text: text.to_owned(),
            width: width.max(1),
        })
    };
    if task.agent.as_deref() == Some(name) && task.line > 0 {
        // The task's own lines run to the next line that starts a task.
        let next = list
            .tasks
            .iter()
            .map(|o| o.line)
            .filter(|&l| l > task.line)
            .min()
            .unwrap_or(lines + 1);
        for line in task.line + 1..next.min(lines + 1) {
            let text = src.line_text(line).trim_start();
            let text = text
                .strip_prefix(['-', '*', '+'])
                .map_or(text, str::trim_start);
            if let Some(meta) = dialect::metadata(text)
                && dialect::canonical_key(meta.key) == dialect::Key::Agent
            {
                return at(line);
            }
        }
        return at(task.line);
    }
    let section = &list.sections[task.section?];
    if section.line == 0 {
        return None;
    }
    for line in section.line + 1..=lines {
        let text = src.line_text(line).trim_start();
        if text.starts_with('#') {
            break;
        }
        if dialect::primary_agent(text.trim_start_matches('>')).is_some() {
            return at(line);
        }
    }
    at(section.line)
}

fn summarize(ws: &Workspace, roots: &[PathBuf], feature: Feature) -> Summary {
    let tasks_file = display_path(&feature.tasks_path(), &ws.root)
        .display()
        .to_string();
    let loaded = spec::validate_name(&feature.name).and_then(|()| load_checked(ws, &feature));
    match loaded {
        Ok(mut list) => {
            let mut notes = Vec::new();
            // The plan's own checks: tasks that may run together but declare the same file.
            if !list.has_errors()
                && let Ok(plan) = crate::plan::build(
                    &list,
                    &crate::plan::Options {
                        tracks: Vec::new(),
                        max_agents: ws.config.max_agents.unwrap_or(DEFAULT_MAX_AGENTS),
                        skip_optional: false,
                        overlap: ws.config.overlap,
                    },
                )
            {
                notes.extend(plan.chain_note(&feature.name));
                notes.extend(plan.orderings_note(&list));
                list.diagnostics.extend(plan.warnings);
            }
            if !list.has_errors() {
                let roots: Vec<&Path> = roots.iter().map(PathBuf::as_path).collect();
                let unknown = unknown_agents(&list, &ws.config, &roots);
                list.diagnostics.extend(unknown);
            }
            let state = approval::state(&list);
            Summary {
                tasks_file,
                progress: Some(list.progress()),
                approval: state.label(),
                approval_state: Some(state),
                dialect: Some(list.dialect),
                diagnostics: list.diagnostics,
                notes,
                feature,
            }
        }
        Err(e) => Summary {
            tasks_file,
            progress: None,
            approval: "-",
            approval_state: None,
            dialect: None,
            // An error that names no place (an invalid directory name) is the directory's.
            diagnostics: e
                .into_diagnostics()
                .into_iter()
                .map(|d| {
                    if d.location.is_none() {
                        d.in_file(&display_path(&feature.dir, &ws.root))
                    } else {
                        d
                    }
                })
                .collect(),
            notes: Vec::new(),
            feature,
        },
    }
}

pub(crate) fn all_features(ws: &Workspace) -> Result<Vec<Feature>> {
    spec::all_features(&ws.root, &ws.features_dir())
}

/// What `cargo spec-exec` without a feature says after "no feature named": the features of the
/// workspace, one a line with its progress and approval, or why there are none to show.
pub fn features_found(manifest: Option<&Path>) -> String {
    let ws = match Workspace::load(manifest) {
        Ok(ws) => ws,
        Err(e) => return format!("there is no workspace here to find features in ({e})"),
    };
    let dir = display_path(&ws.features_dir(), &ws.root);
    let features = match all_features(&ws) {
        Ok(features) => features,
        Err(e) => {
            return format!(
                "the features under `{}` cannot be listed ({e})",
                dir.display()
            );
        }
    };
    if features.is_empty() {
        return format!(
            "there are no features under `{}` (a feature is a directory there with a tasks.md)",
            dir.display()
        );
    }
    let roots = persona_roots(&ws);
    let summaries: Vec<Summary> = features
        .into_par_iter()
        .map(|f| summarize(&ws, &roots, f))
        .collect();
    let width = summaries
        .iter()
        .map(|s| s.feature.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut text = format!("the features under `{}` are:", dir.display());
    for s in &summaries {
        let progress = s.progress.map_or_else(
            || "cannot be read".to_owned(),
            |(d, t)| format!("{d}/{t} done"),
        );
        text.push_str(&format!(
            "\n  {:<width$}  {progress}, {}",
            s.feature.name, s.approval
        ));
    }
    text
}

pub fn list(shell: &Shell, ws: &Workspace) -> Result<i32> {
    let features = all_features(ws)?;
    if features.is_empty() {
        let dir = display_path(&ws.features_dir(), &ws.root);
        shell.status("Found", format!("no features under `{}`", dir.display()));
        return Ok(exit::OK);
    }
    let roots = persona_roots(ws);
    let summaries: Vec<Summary> = features
        .into_par_iter()
        .map(|f| summarize(ws, &roots, f))
        .collect();
    if shell.is_json() {
        for s in &summaries {
            let (done, total) = s.progress.unwrap_or((0, 0));
            shell.json(&FeatureLine {
                kind: "feature",
                name: &s.feature.name,
                tasks_file: s.tasks_file.clone(),
                dialect: s.dialect,
                done,
                total,
                approval: s.approval,
                errors: s.diagnostics.iter().filter(|d| d.is_error()).count(),
                warnings: s.diagnostics.iter().filter(|d| !d.is_error()).count(),
            });
        }
        return Ok(exit::OK);
    }
    let width = summaries
        .iter()
        .map(|s| s.feature.name.chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    let place = |s: &Summary| display_path(&s.feature.dir, &ws.root).display().to_string();
    let place_width = summaries
        .iter()
        .map(|s| place(s).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    shell.out(format!(
        "{:<width$}  {:>9}  {:<12}  {:<13}  {:<place_width$}  {}",
        "FEATURE", "DONE", "APPROVAL", "FORMAT", "PATH", "STATUS"
    ));
    for s in &summaries {
        let done = s
            .progress
            .map_or_else(|| "-".to_owned(), |(d, t)| format!("{d}/{t}"));
        let errors = s.diagnostics.iter().filter(|d| d.is_error()).count();
        let status = match (errors, s.progress) {
            (0, Some((d, t))) if d == t => "complete".to_owned(),
            (0, _) => "ok".to_owned(),
            (n, _) => format!(
                "{n} {} (cargo spec-exec check {})",
                if n == 1 { "error" } else { "errors" },
                s.feature.name
            ),
        };
        shell.out(format!(
            "{:<width$}  {done:>9}  {:<12}  {:<13}  {:<place_width$}  {status}",
            s.feature.name,
            s.approval,
            s.dialect_name(),
            place(s)
        ));
    }
    Ok(exit::OK)
}

pub fn approve(shell: &Shell, ws: &Workspace, name: &str) -> Result<i32> {
    let feature = spec::find_anywhere(&ws.root, &ws.features_dir(), name)?;
    let list = load_valid(shell, ws, &feature)?;
    let path = feature.tasks_path();
    let shown = list.source.display_path.display().to_string();
    let (done, total) = list.progress();
    match approval::state(&list) {
        approval::Approval::Approved { record } => {
            approved_json(shell, name, &shown, &record.digest, false);
            shell.status(
                "Approved",
                format!(
                    "{name} already: {total} tasks, digest {} ({shown} is unchanged)",
                    &record.digest[..12.min(record.digest.len())]
                ),
            );
            return Ok(exit::OK);
        }
        approval::Approval::Stale { .. } | approval::Approval::Unapproved { .. } => {}
    }
    let by = approver(&ws.root);
    let new = approval::approved_bytes(&list, &by, &fsutil::utc_now());
    // Check what will be written before writing it.
    let reparsed = spec::parse_bytes(list.source.display_path.clone(), new.clone());
    assert!(
        approval::state(&reparsed).is_approved(),
        "an approval written by approve must read back as approved"
    );
    for stale in fsutil::remove_stale_temps(&path) {
        shell.status(
            "Removed",
            format!(
                "`{}`, a copy of {shown} left by a spec-exec that was stopped while writing it",
                crate::source::display_path(&stale, &ws.root).display()
            ),
        );
    }
    fsutil::replace_file(&path, &list.source.bytes, &new)?;
    let digest = approval::digest(&reparsed);
    approved_json(shell, name, &shown, &digest, true);
    shell.status(
        "Approved",
        format!(
            "{name}: {} ({done} done), digest {} recorded in {shown}",
            crate::output::count(total, "task"),
            &digest[..12]
        ),
    );
    Ok(exit::OK)
}

/// With `--message-format json`, one `approved` line: what was approved, and whether the file
/// was written.
fn approved_json(shell: &Shell, feature: &str, path: &str, digest: &str, written: bool) {
    if shell.is_json() {
        shell.json(&serde_json::json!({
            "type": "approved",
            "format_version": crate::plan::render::FORMAT_VERSION,
            "feature": feature,
            "path": path,
            "digest": digest,
            "written": written,
        }));
    }
}

/// `Name <email>` from git's configuration, else the login name.
fn approver(root: &Path) -> String {
    let config = git2::Repository::discover(root)
        .and_then(|r| r.config())
        .or_else(|_| git2::Config::open_default());
    if let Ok(config) = config {
        let name = config.get_string("user.name").ok();
        let email = config.get_string("user.email").ok();
        match (name, email) {
            (Some(n), Some(e)) => return format!("{n} <{e}>"),
            (Some(n), None) => return n,
            (None, Some(e)) => return format!("<{e}>"),
            (None, None) => {}
        }
    }
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default()
}
