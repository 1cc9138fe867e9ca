//! `cargo spec-exec land <FEATURE>`: the feature's integration branch, on demand, for a partly
//! done feature too.

use crate::agents;
use crate::cli::LandCommand;
use crate::config;
use crate::error::{Error, Result};
use crate::exec;
use crate::output::Shell;
use crate::spec;
use crate::workspace::Workspace;

pub fn land(shell: &Shell, ws: &Workspace, cmd: &LandCommand) -> Result<i32> {
    let all = super::all_features(ws)?;
    let feature = spec::pick(&all, &ws.root, &ws.features_dir(), &cmd.feature)?;
    let list = super::load_valid(shell, ws, &feature)?;
    integrate(shell, ws, &feature, list, cmd).map(|(code, _)| code)
}

/// Builds the integration branch of `feature` (its task list `list`) as `cmd` says: for
/// `land`, and for a run that finds every task done already.
pub fn integrate(
    shell: &Shell,
    ws: &Workspace,
    feature: &spec::Feature,
    mut list: spec::TaskList,
    cmd: &LandCommand,
) -> Result<(i32, Option<crate::report::IntegrationReport>)> {
    // Every argument is checked before anything else happens.
    let timeout = match &cmd.timeout {
        Some(t) => config::parse_duration(t).map_err(|why| {
            Error::user_with_help(format!("invalid --timeout: {why}"), "e.g. --timeout 30m")
        })?,
        None => ws.config.timeout.unwrap_or(config::DEFAULT_TIMEOUT),
    };
    let kill_grace = super::kill_grace(ws)?;
    let (verify, verify_default) = super::verify_commands(ws, &cmd.verify)?;
    // The orders `overlap = "serialize"` adds are dependencies too.
    let plan = crate::plan::build(
        &list,
        &crate::plan::Options {
            overlap: ws.config.overlap,
            ..crate::plan::Options::default()
        },
    )?;
    plan.add_orderings(&mut list);
    if let Some(rev) = &cmd.onto
        && crate::git::Git::open(&ws.root)?.resolve(rev).is_err()
    {
        return Err(Error::user_with_help(
            format!("--onto `{rev}` is not a revision of this repository"),
            "give a branch, a tag or a commit, e.g. --onto main",
        ));
    }
    // Conflicts and failed checks go to the agent; without one, they end the integration.
    let agent = match agents::resolve(cmd.agent.as_deref(), ws.config.agent.as_ref(), &ws.root) {
        Ok((agent, _)) => agent,
        Err(e) if cmd.agent.is_some() => return Err(e),
        Err(_) => agents::Agent::Shell,
    };
    let allow = ws
        .config
        .allow
        .iter()
        .chain(
            ws.config
                .agent_allow
                .get(agent.name())
                .into_iter()
                .flatten(),
        )
        .cloned()
        .collect();
    let agent = agents::with_permissions(
        agent,
        &agents::Permissions {
            allow,
            verify: verify.iter().map(|v| v.line.clone()).collect(),
            yolo: ws.config.yolo,
            cargo_home: super::cargo_home(),
        },
    );
    exec::land(
        shell,
        &ws.root,
        &ws.target_dir,
        feature,
        &list,
        exec::Settings {
            max_agents: 1,
            continue_on_error: false,
            timeout,
            base: cmd.onto.clone(),
            branch_prefix: ws.config.branch_prefix.clone(),
            agent,
            agents: Default::default(),
            max_review_rounds: 1,
            kill_grace,
            // Landing merges in a worktree of its own and makes no slot.
            slot_makers: 1,
            verify,
            verify_default,
            max_attempts: cmd
                .verify
                .max_attempts
                .or(ws.config.max_attempts)
                .unwrap_or(config::DEFAULT_MAX_ATTEMPTS),
            resolve: true,
            integration_branch: ws.config.integration_branch(&feature.name),
            max_cost: None,
            on_rate_limit: Default::default(),
            max_wait: config::DEFAULT_MAX_WAIT,
            shared_target: ws.config.shared_target,
            junit: None,
            push: None,
            task_mode: None,
        },
    )
}
