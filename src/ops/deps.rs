//! `cargo spec-exec deps <FEATURE>`: asks the agent which pending tasks depend on which, checks
//! the answer, and writes it into tasks.md as the dialect's own annotations, for the user to
//! review and approve like any other edit. Nothing is written unless the whole answer holds.

use std::path::Path;

use serde::Serialize;

use super::ask::{self, Question};
use crate::agents;
use crate::cli::DepsCommand;
use crate::config;
use crate::error::{Error, Result, exit};
use crate::fsutil;
use crate::git::Git;
use crate::output::Shell;
use crate::spec::edit::LineEdit;
use crate::spec::inferred::{self, Answer, Inferred, PromptInput, Summary};
use crate::spec::{self, TaskList};
use crate::workspace::Workspace;

/// The `deps` line of `--message-format json`.
#[derive(Debug, Serialize)]
struct DepsLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    feature: &'a str,
    tasks_file: String,
    answer: &'a Answer,
    edits: &'a [LineEdit],
    summary: &'a Summary,
    written: bool,
}

pub fn deps(shell: &Shell, ws: &Workspace, cmd: &DepsCommand) -> Result<i32> {
    let timeout = match &cmd.timeout {
        Some(t) => config::parse_duration(t).map_err(|why| {
            Error::user_with_help(format!("invalid --timeout: {why}"), "e.g. --timeout 10m")
        })?,
        None => ws.config.timeout.unwrap_or(config::DEFAULT_TIMEOUT),
    };
    let grace = super::kill_grace(ws)?;
    let feature = spec::find_anywhere(&ws.root, &ws.features_dir(), &cmd.feature)?;
    let list = super::load_valid(shell, ws, &feature)?;
    let (agent, _) = agents::resolve(cmd.agent.as_deref(), ws.config.agent.as_ref(), &ws.root)?;
    let shown = list.source.display_path.clone();
    if inferred::pending(&list).is_empty() {
        shell.status(
            "Finished",
            format!("{}: no pending task, nothing to ask", feature.name),
        );
        return Ok(exit::OK);
    }

    // Asked in parts when the list is long: each part names the other tasks by id and title.
    let requirements = feature.dir.join("requirements.md");
    let design = feature.dir.join("design.md");
    let input = PromptInput {
        feature: &feature.name,
        tasks: &shown,
        requirements: requirements.exists().then_some(requirements.as_path()),
        design: design.exists().then_some(design.as_path()),
    };
    let parts = inferred::parts(&list, inferred::PART_SIZE);
    let git = Git::open(&ws.root)?;
    let dir = crate::exec::state::state_dir(&git.common_dir(), &feature.name)
        .join("deps")
        .join(stamp());
    let watched = git.workdir().and_then(|w| {
        feature
            .tasks_path()
            .strip_prefix(w)
            .ok()
            .map(Path::to_path_buf)
    });
    let mut answers = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        let prompt = if parts.len() == 1 {
            inferred::prompt(&list, &input, None)
        } else {
            inferred::prompt(&list, &input, Some((k + 1, parts.len(), part)))
        };
        let part_dir = if parts.len() == 1 {
            dir.clone()
        } else {
            dir.join(format!("part-{}", k + 1))
        };
        shell.status(
            "Asking",
            format!(
                "`{}` which of {} pending tasks depend on which{}",
                agent.name(),
                part.tasks.len(),
                if parts.len() > 1 {
                    format!(" (part {} of {})", k + 1, parts.len())
                } else {
                    String::new()
                }
            ),
        );
        let answer = ask::ask(&Question {
            agent: &agent,
            root: &ws.root,
            dir: &part_dir,
            prompt: &prompt,
            step: "deps",
            feature: &feature.name,
            timeout,
            grace,
            watched: watched.as_deref(),
        })?;
        let parsed = inferred::parse_answer(&answer.output).map_err(|d| {
            Error::Diagnostics(vec![
                d.note(format!(
                    "the agent's output: {}",
                    answer.output_file.display()
                ))
                .note(format!("its log: {}", answer.log.display())),
            ])
        })?;
        answers.push(parsed);
    }
    let answer = inferred::merge(answers);
    let done = inferred::infer(
        &list,
        &answer,
        &inferred::Options {
            replace: cmd.replace,
        },
    )
    .map_err(Error::Diagnostics)?;
    shell.diagnostics(done.warnings.iter());
    let summary = done.summary(&list)?;
    let outcome = Outcome {
        answer: &answer,
        done: &done,
        summary: &summary,
    };
    report(shell, cmd, &feature, &list, &outcome)
}

/// What the agent's answer comes to.
struct Outcome<'a> {
    answer: &'a Answer,
    done: &'a Inferred,
    summary: &'a Summary,
}

/// Prints what the answer changes, and writes it unless `--dry-run`.
fn report(
    shell: &Shell,
    cmd: &DepsCommand,
    feature: &spec::Feature,
    list: &TaskList,
    outcome: &Outcome<'_>,
) -> Result<i32> {
    let Outcome {
        answer,
        done,
        summary,
    } = *outcome;
    let name = feature.name.as_str();
    let shown = list.source.display_path.display().to_string();
    let write = !cmd.dry_run && !done.edits.is_empty();
    if write {
        fsutil::replace_file(&feature.tasks_path(), &list.source.bytes, &done.bytes)?;
    }
    if shell.is_json() {
        shell.json(&DepsLine {
            kind: "deps",
            feature: name,
            tasks_file: shown.clone(),
            answer,
            edits: &done.edits,
            summary,
            written: write,
        });
    } else if cmd.dry_run {
        shell.out_verbatim(done.diff(list).trim_end());
        // Why, where the agent said.
        let reasons: Vec<String> = done
            .planned
            .iter()
            .filter_map(|p| {
                let on = if p.depends_on.is_empty() {
                    "nothing".to_owned()
                } else {
                    p.depends_on.join(", ")
                };
                p.reason
                    .as_ref()
                    .map(|r| format!("  {} after {on}: {}", p.id, inferred::printable(r)))
            })
            .collect();
        if !reasons.is_empty() {
            shell.out("\nThe agent's reasons:");
            shell.out(reasons.join("\n"));
        }
        // The plan the list would have.
        let plan = crate::plan::build(
            &done.after,
            &crate::plan::Options {
                max_agents: config::DEFAULT_MAX_AGENTS,
                ..crate::plan::Options::default()
            },
        )?;
        let lineup = agents::Lineup::new(None, None, &Default::default());
        shell.out("");
        shell.out(
            crate::plan::render::human(
                &done.after,
                name,
                &plan,
                &crate::spec::approval::state(&done.after),
                &lineup,
                false,
            )
            .trim_end(),
        );
    }
    let shape = |s: &inferred::Shape| {
        format!(
            "critical path {} of {} tasks, widest group {}",
            s.critical_path, s.tasks, s.widest
        )
    };
    let change = format!("{} → {}", shape(&summary.before), shape(&summary.after));
    if done.edits.is_empty() {
        shell.status(
            "Finished",
            format!("{name}: the answer adds nothing to {shown} ({change})"),
        );
    } else if cmd.dry_run {
        shell.status(
            "Would write",
            format!(
                "{} dependency line{} into {shown}: {change}; nothing was written (--dry-run)",
                done.edits.len(),
                if done.edits.len() == 1 { "" } else { "s" }
            ),
        );
    } else {
        shell.status(
            "Wrote",
            format!(
                "{} dependency line{} into {shown}: {change}",
                done.edits.len(),
                if done.edits.len() == 1 { "" } else { "s" }
            ),
        );
        shell.diagnostic(
            &crate::error::Diagnostic::warning(format!(
                "the task list of `{name}` changed, so its approval is stale"
            ))
            .in_file(&list.source.display_path)
            .help(format!(
                "review the dependencies (`git diff -- {shown}`, `cargo spec-exec {name} --dry-run`), then run `cargo spec-exec approve {name}`"
            )),
        );
    }
    Ok(exit::OK)
}

/// A directory name for this call's prompt, answer and log: its start, to the millisecond, and
/// the pid.
fn stamp() -> String {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let compact: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("{compact}-{}", std::process::id())
}
