//! Asking an agent a question in the workspace (for `deps`): the prompt on standard input and in
//! `SPEC_EXEC_PROMPT_FILE`, the agent run in the workspace root in a process group of its own,
//! its standard output kept apart as the answer and its standard error in a log. No worktree,
//! no branch, no commit: a change the agent makes to the working tree is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agents::Agent;
use crate::error::{Error, Result};
use crate::exec::process::{self, Outcome, Stop};

/// A question for an agent.
#[derive(Debug)]
pub struct Question<'a> {
    pub agent: &'a Agent,
    /// The workspace root: the agent's working directory.
    pub root: &'a Path,
    /// Where the prompt, the answer and the log are kept.
    pub dir: &'a Path,
    pub prompt: &'a str,
    /// `SPEC_EXEC_STEP`.
    pub step: &'a str,
    pub feature: &'a str,
    pub timeout: Duration,
    pub grace: Duration,
    /// A file the user may be editing meanwhile (tasks.md), relative to the repository's
    /// working tree: when it alone changed, the error does not blame the agent.
    pub watched: Option<&'a Path>,
}

/// What the agent answered.
#[derive(Debug)]
pub struct Answer {
    /// Its standard output.
    pub output: String,
    pub output_file: PathBuf,
    /// Its standard error.
    pub log: PathBuf,
}

/// Runs the agent on `q` and returns its standard output. An agent that fails, times out, is
/// interrupted or changes the working tree is an error that names its log.
pub fn ask(q: &Question<'_>) -> Result<Answer> {
    let Agent::Command { argv, env: own, .. } = q.agent else {
        return Err(Error::user_with_help(
            "the shell agent has no model to ask: it only runs a task's code blocks",
            "name an agent that answers questions: `--agent claude` (or codex, gemini, aider, or a command)",
        ));
    };
    std::fs::create_dir_all(q.dir).map_err(|e| Error::io("create", q.dir, e))?;
    let prompt_file = q.dir.join("prompt.md");
    let output_file = q.dir.join("answer.txt");
    let log = q.dir.join("agent.log");
    std::fs::write(&prompt_file, q.prompt).map_err(|e| Error::io("write", &prompt_file, e))?;
    let argv: Vec<String> = argv
        .iter()
        .map(|a| {
            a.replace(
                crate::agents::PROMPT_FILE,
                &prompt_file.display().to_string(),
            )
        })
        .collect();
    let env: Vec<(String, String)> = [
        ("SPEC_EXEC_FEATURE", q.feature.to_owned()),
        ("SPEC_EXEC_STEP", q.step.to_owned()),
        ("SPEC_EXEC_PROMPT_FILE", prompt_file.display().to_string()),
        ("SPEC_EXEC_WORKTREE", q.root.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(own.iter().cloned())
    .collect();

    let before = tree_state(q.root)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::user(format!("could not start the async runtime: {e}")))?;
    let outcome = runtime.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(Stop::None);
        let spawn = process::Spawn {
            argv: &argv,
            cwd: q.root,
            stdin: &prompt_file,
            log: &log,
            stdout: Some(&output_file),
            env: &env,
            timeout: q.timeout,
            grace: q.grace,
            registry: None,
            tap: None,
        };
        let run = process::run(&spawn, stop_rx);
        tokio::pin!(run);
        tokio::select! {
            outcome = &mut run => outcome,
            _ = tokio::signal::ctrl_c() => {
                let _ = stop_tx.send(Stop::Terminate);
                run.await
            }
        }
    });
    let after = tree_state(q.root)?;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(p, s)| before.get(*p) != Some(s))
        .map(|(p, _)| p)
        .chain(before.keys().filter(|p| !after.contains_key(*p)))
        .collect();
    let log_hint = format!("its log: {}", log.display());
    match outcome {
        Outcome::Exited(0) => {}
        Outcome::Interrupted => {
            return Err(Error::Interrupted {
                message: "interrupted while the agent was answering; nothing was written"
                    .to_owned(),
                help: log_hint,
            });
        }
        Outcome::TimedOut => {
            return Err(Error::user_with_help(
                format!(
                    "the agent did not answer within {}; nothing was written",
                    humantime::format_duration(q.timeout)
                ),
                format!("give it longer with --timeout; {log_hint}"),
            ));
        }
        other => {
            return Err(Error::user_with_help(
                format!(
                    "the agent failed ({}); nothing was written",
                    other.describe()
                ),
                log_hint,
            ));
        }
    }
    if let ([only], Some(watched)) = (changed.as_slice(), q.watched)
        && Path::new(only.as_str()) == watched
    {
        return Err(Error::user_with_help(
            format!(
                "`{only}` changed while the agent was answering (an edit of yours, or the agent's); nothing was written"
            ),
            format!("run the command again once the file is as you want it; {log_hint}"),
        ));
    }
    if !changed.is_empty() {
        return Err(Error::user_with_help(
            format!(
                "the agent changed the working tree ({}); it was asked only to answer, so nothing was written",
                changed
                    .iter()
                    .take(5)
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "review and undo its changes (`git status`), and tell the agent not to edit files; {log_hint}"
            ),
        ));
    }
    let bytes = std::fs::read(&output_file).map_err(|e| Error::io("read", &output_file, e))?;
    Ok(Answer {
        output: String::from_utf8_lossy(&bytes).into_owned(),
        output_file,
        log,
    })
}

/// The working tree's changed and untracked files (ignored ones aside), each with its status
/// and, for a file, its content's id: what an agent that only answers leaves as it was.
fn tree_state(root: &Path) -> Result<BTreeMap<String, (u32, Option<git2::Oid>)>> {
    let repo = git2::Repository::discover(root).map_err(|e| {
        Error::user(format!(
            "git: could not open the repository: {}",
            e.message()
        ))
    })?;
    let workdir = repo.workdir().map(Path::to_path_buf).unwrap_or_default();
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let statuses = repo
        .statuses(Some(&mut opts))
        .map_err(|e| Error::user(format!("git: could not read the status: {}", e.message())))?;
    Ok(statuses
        .iter()
        .filter_map(|s| {
            let path = s.path()?.to_owned();
            let content = std::fs::read(workdir.join(&path))
                .ok()
                .and_then(|b| git2::Oid::hash_object(git2::ObjectType::Blob, &b).ok());
            Some((path, (s.status().bits(), content)))
        })
        .collect())
}
