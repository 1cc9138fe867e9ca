//! `cargo spec-exec sync <FEATURE>`: brings tasks.md up to date with what runs elsewhere (CI
//! jobs with `--task … --push`) finished. It fetches the feature's task branches from the
//! remote, then ticks every task they hold finished, as a run that did the work would have
//! ticked it: in place, one byte per box, with the run's own ticker. With `--commit`, it then
//! commits tasks.md on the checked-out branch (the last job of a workflow does, so that its pull
//! request carries the ticks).

use serde::Serialize;

use super::{all_features, fetch, load_valid};
use crate::cli::SyncCommand;
use crate::error::Diagnostic;
use crate::error::{Error, Result, exit};
use crate::exec;
use crate::git::{self, Git};
use crate::output::Shell;
use crate::spec::model::TaskState;
use crate::spec::{self, edit};
use crate::workspace::Workspace;

/// A task `sync` ticked, as a JSON line.
#[derive(Debug, Serialize)]
struct TickedLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    feature: &'a str,
    id: &'a str,
    title: &'a str,
}

/// The end of a `sync`, as a JSON line.
#[derive(Debug, Serialize)]
struct SyncLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    feature: &'a str,
    remote: &'a str,
    /// Local branches made or moved to the remote's tips.
    fetched: &'a [String],
    /// The ids ticked (containers completed included).
    ticked: &'a [String],
    /// With `--commit`: the commit that holds the ticks (none when nothing was ticked).
    commit: Option<&'a str>,
}

pub fn sync(shell: &Shell, ws: &Workspace, cmd: &SyncCommand) -> Result<i32> {
    let all = all_features(ws)?;
    let feature = spec::pick(&all, &ws.root, &ws.features_dir(), &cmd.feature)?;
    let list = load_valid(shell, ws, &feature)?;
    let fetched = fetch(shell, ws, &cmd.remote, &feature, &list)?;
    let git = Git::open(&ws.root)?;
    let finished = exec::finished_tasks(&git, &list, &ws.config.branch_prefix, &feature.name);
    // A task's branch whose tip is not its commit (someone committed on top of it, or it holds
    // an unfinished run) says nothing about the task: it is named, not counted.
    for t in list.leaves() {
        let task = &list.tasks[t];
        if task.state == TaskState::Done || finished.contains(&t) {
            continue;
        }
        let branch = git::branch_name(&ws.config.branch_prefix, &feature.name, &task.id);
        if git.branch_tip(&branch).is_none()
            || git
                .task_commit(&branch)
                .is_some_and(|tc| tc.task == task.id)
        {
            continue;
        }
        shell.diagnostic(
            &Diagnostic::warning(format!(
                "task {}: its branch `{branch}` does not end in its spec-exec commit (commits on top of it, or an unfinished run): not counted, so it stays unticked",
                task.id
            ))
            .help(format!(
                "see what is on it (`git log {branch}`); when the task is done, move the branch back to its commit, or tick the task by hand"
            )),
        );
    }
    let ticker = edit::Ticker::new(
        &ws.root,
        &feature.dir.join("tasks.md"),
        &list.source.display_path,
        false,
    );
    let mut ticked: Vec<String> = Vec::new();
    for t in finished {
        let task = &list.tasks[t];
        let done = ticker.tick(&task.id, &task.title)?;
        for id in done.ids {
            let title = list.find(&id).map_or("", |i| list.tasks[i].title.as_str());
            shell.status("Ticked", format!("{} {title}", id));
            if shell.is_json() {
                shell.json(&TickedLine {
                    kind: "ticked",
                    feature: &feature.name,
                    id: &id,
                    title,
                });
            }
            ticked.push(id);
        }
    }
    let path = list.source.display_path.display();
    let committed = if cmd.commit && !ticked.is_empty() {
        Some(commit_ticks(
            ws,
            &feature.dir.join("tasks.md"),
            &feature.name,
            &cmd.remote,
            &ticked,
        )?)
    } else {
        None
    };
    if let Some(oid) = &committed {
        shell.status(
            "Committed",
            format!("{path} at {}", &oid[..oid.len().min(10)]),
        );
    }
    if ticked.is_empty() {
        shell.status(
            "Finished",
            format!(
                "{}: nothing to tick; {path} already has every task finished on the local branches (fetched from {} first)",
                feature.name, cmd.remote
            ),
        );
    } else {
        shell.status(
            "Finished",
            format!(
                "{}: ticked {} {} in {path}, finished on the local branches (fetched from {} first)",
                feature.name,
                ticked.len(),
                if ticked.len() == 1 { "task" } else { "tasks" },
                cmd.remote
            ),
        );
    }
    if shell.is_json() {
        shell.json(&SyncLine {
            kind: "sync",
            feature: &feature.name,
            remote: &cmd.remote,
            fetched: &fetched.updated,
            ticked: &ticked,
            commit: committed.as_deref(),
        });
    }
    Ok(exit::OK)
}

/// Commits `tasks` (tasks.md, ticked) alone on the checked-out branch with the git CLI (the
/// user's identity and hooks); the new commit.
fn commit_ticks(
    ws: &Workspace,
    tasks: &std::path::Path,
    feature: &str,
    remote: &str,
    ticked: &[String],
) -> Result<String> {
    let git = Git::open(&ws.root)?;
    let workdir = git.workdir().unwrap_or_else(|| ws.root.clone());
    let message = format!(
        "{feature}: tick the tasks finished on {remote}'s branches\n\nTicked: {}\n",
        ticked.join(", ")
    );
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(&workdir)
            .stdin(std::process::Stdio::null())
            .output()
    };
    let path = tasks.to_string_lossy();
    let out = run(&["commit", "--quiet", "--only", "-m", &message, "--", &path]);
    let fail = |why: String| {
        Error::user_with_help(
            format!(
                "could not commit `{}` with its ticks: {why}",
                tasks.display()
            ),
            "check that the working tree is on a branch and that git knows who you are (`git config user.name`, `user.email`); the ticks stay in the file",
        )
    };
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Err(fail(String::from_utf8_lossy(&o.stderr).trim().to_owned())),
        Err(e) => return Err(fail(format!("could not run git: {e}"))),
    }
    let head = run(&["rev-parse", "HEAD"]).map_err(|e| fail(e.to_string()))?;
    Ok(String::from_utf8_lossy(&head.stdout).trim().to_owned())
}
