//! `cargo spec-exec pr <FEATURE>`: pushes the feature's integration branch and opens a pull
//! request for it with GitHub's `gh`, the feature report as its body; `--stacked` opens one
//! pull request per task instead, each on top of what the task was built on.
//!
//! Pushes go through the git CLI (the user's git credentials and SSH keys work), never forced;
//! `gh` is run with an argv, never through a shell. Without `gh` the commands are printed for
//! the user to run. Nothing local is changed but the feature's state directory (the report,
//! the bodies).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use git2::{BranchType, Oid, Repository, Sort};
use serde::Serialize;

use crate::cli::PrCommand;
use crate::error::{Diagnostic, Error, Result, exit};
use crate::git::{self, BASE_TRAILER, FEATURE_TRAILER, TASK_TRAILER};
use crate::output::Shell;
use crate::report::feature::{self, FeatureReport};
use crate::spec;
use crate::workspace::Workspace;

/// A task done on the integration branch: its commits there (a review has one per round),
/// oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Done {
    id: String,
    commits: Vec<Oid>,
}

impl Done {
    /// Its first commit: what it started from is that commit's first parent.
    fn first(&self) -> Oid {
        self.commits[0]
    }

    /// Its last commit: all of its work.
    fn last(&self) -> Oid {
        self.commits[self.commits.len() - 1]
    }
}

/// One push: `git push <remote> <source>:refs/heads/<branch>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Push {
    /// A branch name, or a commit id when no local branch holds the commit.
    source: String,
    branch: String,
    commit: Oid,
    /// What it is, for the status line.
    what: String,
}

/// One pull request: a push (or two, when its base is pushed for it) and `gh pr create`.
#[derive(Debug, Clone)]
struct Request {
    pushes: Vec<Push>,
    base: String,
    head: String,
    title: String,
    body: String,
    body_file: PathBuf,
}

impl Request {
    fn gh_args(&self) -> Vec<String> {
        vec![
            "pr".to_owned(),
            "create".to_owned(),
            "--base".to_owned(),
            self.base.clone(),
            "--head".to_owned(),
            self.head.clone(),
            "--title".to_owned(),
            self.title.clone(),
            "--body-file".to_owned(),
            self.body_file.display().to_string(),
        ]
    }

    /// `gh pr create …`, as the user would type it.
    fn gh_command(&self) -> Vec<String> {
        std::iter::once("gh".to_owned())
            .chain(self.gh_args())
            .collect()
    }

    /// Every command of the pull request: its pushes, then `gh`.
    fn commands(&self, remote: &str) -> Vec<Vec<String>> {
        self.pushes
            .iter()
            .map(|p| push_args(remote, p))
            .chain(std::iter::once(self.gh_command()))
            .collect()
    }
}

/// The `pull-request` line of `--message-format json`.
#[derive(Debug, Serialize)]
struct RequestLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    feature: &'a str,
    remote: &'a str,
    base: &'a str,
    head: &'a str,
    title: &'a str,
    body_file: &'a Path,
    /// `git push …` for each branch it needs, then `gh pr create …`.
    commands: Vec<Vec<String>>,
    /// Whether the pushes were made (not with `--dry-run`).
    pushed: bool,
    /// What `gh` printed (the pull request's address); `null` when it was not run.
    url: Option<String>,
}

fn push_args(remote: &str, p: &Push) -> Vec<String> {
    vec![
        "git".to_owned(),
        "push".to_owned(),
        remote.to_owned(),
        format!("{}:refs/heads/{}", p.source, p.branch),
    ]
}

fn quoted(words: &[String]) -> String {
    shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
}

fn short(oid: Oid) -> String {
    oid.to_string()[..10].to_owned()
}

fn plural(n: usize, word: &str) -> String {
    crate::output::count(n, word)
}

/// Where the pull request goes: the branches and the remote, each checked.
#[derive(Debug)]
struct Target {
    integration: String,
    integration_tip: Oid,
    base: String,
    base_tip: Oid,
    remote: String,
}

pub fn pr(shell: &Shell, ws: &Workspace, cmd: &PrCommand) -> Result<i32> {
    let feature = spec::find_anywhere(&ws.root, &ws.features_dir(), &cmd.feature)?;
    let name = feature.name.clone();
    let prefix = &ws.config.branch_prefix;
    // For its errors (no repository, a bare one).
    let common = git::Git::open(&ws.root)?.common_dir();
    let repo = Repository::discover(&ws.root).map_err(|e| {
        Error::user(format!(
            "git: could not open the repository: {}",
            e.message()
        ))
    })?;
    let workdir = repo
        .workdir()
        .map_or_else(|| ws.root.clone(), Path::to_path_buf);
    let t = target(&repo, cmd, &ws.config.integration_branch(&name), &name)?;
    let done = tasks_done(&repo, t.integration_tip, t.base_tip, &name).map_err(|e| {
        Error::user(format!(
            "git: could not read `{}`: {}",
            t.integration,
            e.message()
        ))
    })?;
    if done.is_empty() {
        return Err(Error::user_with_help(
            format!(
                "`{}` holds no task of `{name}` that `{}` lacks: there is nothing to open a pull request for",
                t.integration, t.base
            ),
            format!(
                "run the feature's tasks and `cargo spec-exec land {name}` first, or pass the branch the pull request goes into with --base"
            ),
        ));
    }

    // The feature report, as of every run so far (in tasks.md's order when it can be read).
    let state = crate::exec::state::state_dir(&common, &name);
    let order: HashMap<String, usize> = spec::load(&feature, &ws.root)
        .map(|list| {
            list.tasks
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.clone(), i))
                .collect()
        })
        .unwrap_or_default();
    let report = if cmd.dry_run {
        let (runs, unreadable) = feature::read_runs(&state, None);
        feature::aggregate(&name, &runs, &order, unreadable)
    } else {
        feature::refresh(&state, &name, None, &order).map_err(Error::user)?
    };

    let requests = if cmd.stacked {
        stacked(&repo, prefix, &name, &t.base, &done, &report, &state)
    } else {
        vec![Request {
            pushes: vec![Push {
                source: t.integration.clone(),
                branch: t.integration.clone(),
                commit: t.integration_tip,
                what: format!("integration branch with {}", plural(done.len(), "task")),
            }],
            base: t.base.clone(),
            head: t.integration.clone(),
            title: format!("{name}: {}", plural(done.len(), "task")),
            body: report.markdown(),
            body_file: feature::markdown_path(&state),
        }]
    };
    if cmd.dry_run {
        dry_run(shell, &name, &t.remote, &requests);
        Ok(exit::OK)
    } else {
        let timeout = super::git_timeout(ws)?;
        open(
            shell, &name, &workdir, &t.remote, &requests, &state, timeout,
        )
    }
}

/// The integration branch, the base and the remote, or what is wrong with them (exit 2).
fn target(repo: &Repository, cmd: &PrCommand, integration: &str, name: &str) -> Result<Target> {
    let integration = integration.to_owned();
    let Some(integration_tip) = branch_tip(repo, &integration) else {
        return Err(Error::user_with_help(
            format!("`{name}` has no integration branch: `{integration}` does not exist"),
            format!(
                "build it with `cargo spec-exec land {name}` (it merges the feature's task branches), then run `cargo spec-exec pr {name}` again"
            ),
        ));
    };
    let base = match &cmd.base {
        Some(b) if b.trim().is_empty() => {
            return Err(Error::user_with_help(
                "--base is empty",
                "name the branch the pull request goes into, e.g. --base main",
            ));
        }
        Some(b) => b.clone(),
        None => head_branch(repo)?,
    };
    if base == integration {
        return Err(Error::user_with_help(
            format!("the base branch is the integration branch `{integration}` itself"),
            "pass the branch the pull request goes into with --base BRANCH",
        ));
    }
    let remote = cmd
        .remote
        .clone()
        .or_else(|| upstream_remote(repo, &base))
        .unwrap_or_else(|| "origin".to_owned());
    if repo.find_remote(&remote).is_err() {
        let known: Vec<String> = repo
            .remotes()
            .map(|r| r.iter().flatten().map(|n| format!("`{n}`")).collect())
            .unwrap_or_default();
        let how = if cmd.remote.is_some() {
            "--remote names it"
        } else {
            "it is the default: the base branch has no upstream remote"
        };
        return Err(Error::user_with_help(
            format!("there is no remote `{remote}` in this repository ({how})"),
            if known.is_empty() {
                format!(
                    "add it with `git remote add {remote} <url>`, then run `cargo spec-exec pr {name}` again"
                )
            } else {
                format!(
                    "pass one of {} with --remote, or add it with `git remote add {remote} <url>`",
                    known.join(", ")
                )
            },
        ));
    }
    let Some(base_tip) = branch_tip(repo, &base).or_else(|| {
        repo.refname_to_id(&format!("refs/remotes/{remote}/{base}"))
            .ok()
    }) else {
        return Err(Error::user_with_help(
            format!(
                "the base branch `{base}` is neither a branch of this repository nor `{remote}/{base}`"
            ),
            "pass the branch the pull request goes into with --base BRANCH (`git fetch` first when only the remote has it)",
        ));
    };
    Ok(Target {
        integration,
        integration_tip,
        base,
        base_tip,
        remote,
    })
}

/// `--dry-run`: what would be pushed, and the commands.
fn dry_run(shell: &Shell, name: &str, remote: &str, requests: &[Request]) {
    for r in requests {
        if shell.is_json() {
            shell.json(&line(name, remote, r, false, None));
            continue;
        }
        for p in &r.pushes {
            shell.status("Would push", pushed(p, remote));
        }
        for c in r.commands(remote) {
            shell.out(quoted(&c));
        }
    }
    shell.status(
        "Finished",
        "--dry-run: nothing was pushed or opened, and no body file written",
    );
}

/// `` `spec/f/2` (task 2, at 0123456789) to `origin` ``.
fn pushed(p: &Push, remote: &str) -> String {
    format!(
        "`{}` ({}, at {}) to `{remote}`",
        p.branch,
        p.what,
        short(p.commit)
    )
}

/// Pushes each request's branches and opens it with `gh`, or, without `gh`, prints the
/// commands that open them. A failed push or `gh` stops there (exit 1).
fn open(
    shell: &Shell,
    name: &str,
    workdir: &Path,
    remote: &str,
    requests: &[Request],
    state: &Path,
    timeout: std::time::Duration,
) -> Result<i32> {
    let gh = which::which("gh").ok();
    let mut printed = Vec::new();
    for r in requests {
        for p in &r.pushes {
            if let Err(why) = push(workdir, remote, p, timeout) {
                shell.diagnostic(
                    &Diagnostic::error(format!(
                        "could not push `{}` to `{remote}`: {why}",
                        p.branch
                    ))
                    .help("nothing was forced; fix what git says (fetch and rebuild the branch, or check your access), then run the command again"),
                );
                return Ok(exit::TASKS_FAILED);
            }
            shell.status("Pushed", pushed(p, remote));
        }
        if r.body_file != feature::markdown_path(state) {
            write_body(&r.body_file, &r.body)?;
        }
        let Some(gh) = &gh else {
            if shell.is_json() {
                shell.json(&line(name, remote, r, true, None));
            } else {
                printed.push(quoted(&r.gh_command()));
            }
            continue;
        };
        match run_gh(gh, workdir, &r.gh_args()) {
            Ok(url) => {
                shell.status(
                    "Opened",
                    format!("a pull request of `{}` into `{}`", r.head, r.base),
                );
                if shell.is_json() {
                    shell.json(&line(name, remote, r, true, Some(url)));
                } else if !url.is_empty() {
                    shell.out(url);
                }
            }
            Err(why) => {
                shell.diagnostic(
                    &Diagnostic::error(format!(
                        "`gh pr create` failed for `{}` into `{}`: {why}",
                        r.head, r.base
                    ))
                    .help("the branches are pushed: fix what gh says (`gh auth login`, say), then run the command again"),
                );
                return Ok(exit::TASKS_FAILED);
            }
        }
    }
    if !printed.is_empty() {
        let one = printed.len() == 1;
        shell.status(
            "Next",
            format!(
                "`gh` (GitHub's command line) is not on PATH: open the pull request{} with {}",
                if one { "" } else { "s" },
                if one {
                    "this command"
                } else {
                    "these commands"
                },
            ),
        );
        for c in printed {
            shell.out(c);
        }
    }
    Ok(exit::OK)
}

fn line<'a>(
    feature: &'a str,
    remote: &'a str,
    r: &'a Request,
    pushed: bool,
    url: Option<String>,
) -> RequestLine<'a> {
    RequestLine {
        kind: "pull-request",
        feature,
        remote,
        base: &r.base,
        head: &r.head,
        title: &r.title,
        body_file: &r.body_file,
        commands: r.commands(remote),
        pushed,
        url,
    }
}

fn branch_tip(repo: &Repository, name: &str) -> Option<Oid> {
    repo.find_branch(name, BranchType::Local)
        .ok()
        .and_then(|b| b.get().target())
}

/// The branch HEAD is on: the default base.
fn head_branch(repo: &Repository) -> Result<String> {
    let head = repo.find_reference("HEAD").ok();
    let target = head
        .as_ref()
        .and_then(|h| h.symbolic_target())
        .and_then(|t| t.strip_prefix("refs/heads/"));
    target.map(str::to_owned).ok_or_else(|| {
        Error::user_with_help(
            "HEAD is detached: there is no branch for the pull request to go into",
            "pass the branch it goes into with --base BRANCH (e.g. --base main), or check that branch out",
        )
    })
}

/// `git config branch.<base>.remote`, unless it is `.` (the repository itself).
fn upstream_remote(repo: &Repository, base: &str) -> Option<String> {
    let config = repo.config().ok()?;
    let remote = config.get_string(&format!("branch.{base}.remote")).ok()?;
    (remote != "." && !remote.is_empty()).then_some(remote)
}

/// The tasks of `feature` whose commits (spec-exec's, by their trailers) are reachable from
/// `tip` and not from `base`, in dependency order: a task comes after every task its first
/// commit stands on.
fn tasks_done(
    repo: &Repository,
    tip: Oid,
    base: Oid,
    feature: &str,
) -> std::result::Result<Vec<Done>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    walk.push(tip)?;
    walk.hide(base)?;
    let mut done: Vec<Done> = Vec::new();
    for oid in walk {
        let oid = oid?;
        let commit = repo.find_commit(oid)?;
        let Some(message) = commit.message() else {
            continue;
        };
        if git::trailer(message, FEATURE_TRAILER) != Some(feature) {
            continue;
        }
        let Some(id) = git::trailer(message, TASK_TRAILER) else {
            continue;
        };
        match done.iter_mut().find(|d| d.id == id) {
            Some(d) => d.commits.push(oid),
            None => done.push(Done {
                id: id.to_owned(),
                commits: vec![oid],
            }),
        }
    }
    Ok(done)
}

/// One pull request per task, in dependency order. A task's pull request goes into what its
/// first commit stands on (that commit's first parent): the base branch when that is already
/// there, the branch of the task whose work it is, else (a merge of several dependencies, a
/// review's earlier round) that commit, pushed as `<prefix>/<feature>/<id>.base`.
fn stacked(
    repo: &Repository,
    prefix: &str,
    feature: &str,
    base: &str,
    done: &[Done],
    report: &FeatureReport,
    state: &Path,
) -> Vec<Request> {
    let ours: Vec<Oid> = done
        .iter()
        .flat_map(|d| d.commits.iter().copied())
        .collect();
    // The feature's local branches, by tip.
    let mut branches: HashMap<Oid, Vec<String>> = HashMap::new();
    let under = format!("{prefix}/{feature}/");
    if let Ok(all) = repo.branches(Some(BranchType::Local)) {
        for (b, _) in all.flatten() {
            if let (Ok(Some(n)), Some(tip)) = (b.name(), b.get().target())
                && n.starts_with(&under)
            {
                branches.entry(tip).or_default().push(n.to_owned());
            }
        }
    }
    // The branch a task's pull request comes from, by the task's last commit.
    let mut heads: HashMap<Oid, String> = HashMap::new();
    let mut requests = Vec::new();
    for d in done {
        let own = git::branch_name(prefix, feature, &d.id);
        let at_last = branches.get(&d.last()).cloned().unwrap_or_default();
        let head = if at_last.contains(&own) {
            own.clone()
        } else {
            at_last
                .iter()
                .find(|b| b.starts_with(&format!("{own}.round-")))
                .cloned()
                .unwrap_or(own)
        };
        let source = if branch_tip(repo, &head) == Some(d.last()) {
            head.clone()
        } else {
            d.last().to_string()
        };
        let mut pushes = Vec::new();
        let parent = repo
            .find_commit(d.first())
            .ok()
            .and_then(|c| c.parent_id(0).ok());
        let pr_base = match parent {
            Some(p) if ours.contains(&p) || is_base_merge(repo, p, feature) => {
                if let Some(h) = heads.get(&p) {
                    h.clone()
                } else {
                    let b = format!("{}.base", git::branch_name(prefix, feature, &d.id));
                    pushes.push(Push {
                        source: p.to_string(),
                        branch: b.clone(),
                        commit: p,
                        what: format!("what task {} started from", d.id),
                    });
                    b
                }
            }
            _ => base.to_owned(),
        };
        pushes.push(Push {
            source,
            branch: head.clone(),
            commit: d.last(),
            what: format!("task {}", d.id),
        });
        heads.insert(d.last(), head.clone());
        let title = report
            .tasks
            .iter()
            .find(|t| t.task.id == d.id)
            .map(|t| t.task.title.clone())
            .or_else(|| commit_title(repo, d.last(), feature, &d.id))
            .unwrap_or_default();
        let body = report
            .task_markdown(&d.id)
            .unwrap_or_else(|| format!("# Feature `{feature}`, task {}: {title}\n", d.id));
        requests.push(Request {
            pushes,
            base: pr_base,
            head,
            title: format!("{feature} {}: {title}", d.id).trim_end().to_owned(),
            body,
            body_file: state
                .join("pr")
                .join(format!("{}.md", git::ref_safe(&d.id))),
        });
    }
    requests
}

/// Whether `oid` is one of the merges spec-exec makes to start a task from several
/// dependencies (they are not reachable from the base branch, and belong to no task).
fn is_base_merge(repo: &Repository, oid: Oid, feature: &str) -> bool {
    repo.find_commit(oid).is_ok_and(|c| {
        c.parent_count() >= 2
            && c.message().is_some_and(|m| {
                git::trailer(m, BASE_TRAILER).is_some()
                    && git::trailer(m, FEATURE_TRAILER) == Some(feature)
            })
    })
}

/// The title in a task commit's subject, `<feature>: <id> <title>`.
fn commit_title(repo: &Repository, oid: Oid, feature: &str, id: &str) -> Option<String> {
    let commit = repo.find_commit(oid).ok()?;
    let summary = commit.summary()?;
    summary
        .strip_prefix(&format!("{feature}: {id} "))
        .map(str::to_owned)
}

/// Writes a pull request's body file (atomically, as the reports are).
fn write_body(path: &Path, body: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io("write", path, e))
}

/// `git push <remote> <source>:refs/heads/<branch>`, never forced, in the working tree, with
/// the terminal for credential prompts, stopped after `timeout`. The error is git's own words.
fn push(
    workdir: &Path,
    remote: &str,
    p: &Push,
    timeout: std::time::Duration,
) -> std::result::Result<(), String> {
    let args = push_args(remote, p);
    let out = crate::exec::remote::run_git(workdir, &args[1..], timeout, true)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failure(&out))
    }
}

/// Runs `gh` with `args`; its standard output (the pull request's address) on success.
fn run_gh(gh: &Path, workdir: &Path, args: &[String]) -> std::result::Result<String, String> {
    let out = Command::new(gh)
        .args(args)
        .current_dir(workdir)
        .stdin(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run `{}`: {e}", gh.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(failure(&out))
    }
}

/// `exit N: <stderr>` of a program that failed.
fn failure(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out
        .status
        .code()
        .map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"));
    let text = stderr.trim();
    if text.is_empty() {
        code
    } else {
        format!("{code}: {text}")
    }
}
