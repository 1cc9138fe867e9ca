//! A feature's task branches on a remote: fetched into local branches before a run (`--remote`)
//! or a `sync`, and pushed with a lease after a task's commit (`--push`).
//!
//! Both go through the git CLI, never through a shell: credentials set up for it (a credential
//! helper, or the `http.extraheader` that GitHub Actions' checkout leaves) are honoured only
//! there. In CI, a token in [`GIT_TOKEN_VAR`] is given to these git commands alone, by a
//! credential helper on their command line that reads it from their environment: it is never
//! written to `.git/config`, where an agent's worktree would find it, and agents do not get the
//! variable (see [`super::process::withheld_env`]). A fetch lands in a namespace of spec-exec's own,
//! `refs/spec-exec/remote/<remote>/<feature>/…`; the local branches are then moved with git2,
//! only forward, and never one that is checked out anywhere.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use git2::{Oid, Repository};

use crate::error::{Error, Result};
use crate::git;
use crate::spec::TaskList;

/// What a fetch found and did.
#[derive(Debug, Default, Clone)]
pub struct Fetched {
    pub remote: String,
    /// The remote's task and round branches as the fetch saw them (local names): what a push
    /// expects to find there. A branch not named here did not exist.
    pub tips: BTreeMap<String, Oid>,
    /// Local branches made or moved to the remote's tip.
    pub updated: Vec<String>,
    /// Local branches left as they are, with why (ahead of the remote, diverged, checked out).
    pub warnings: Vec<String>,
    /// The most each fetch or push may take (`git-timeout`).
    pub timeout: Duration,
}

impl Fetched {
    /// The lease of a push of `branch`: the commit the remote had, or none.
    pub fn expected(&self, branch: &str) -> Option<Oid> {
        self.tips.get(branch).copied()
    }
}

/// The environment variable that gives spec-exec's own fetches and pushes a token for an HTTPS
/// remote (a CI job's `${{ github.token }}`): it is sent as the password of the user
/// `x-access-token`, as GitHub expects, and only when the remote asks for credentials.
pub const GIT_TOKEN_VAR: &str = "SPEC_EXEC_GIT_TOKEN";

/// The token in [`GIT_TOKEN_VAR`], when it holds one.
pub fn git_token() -> Option<String> {
    std::env::var(GIT_TOKEN_VAR).ok().filter(|t| !t.is_empty())
}

/// `-c` options that make a git command answer a remote's request for credentials with
/// [`GIT_TOKEN_VAR`]'s token (and with nothing else configured), when it is set. The token is
/// not in them: the helper reads it from the environment git passes on, so it shows neither in
/// the command line nor in any file.
pub fn credential_args() -> Vec<String> {
    if git_token().is_none() {
        return Vec::new();
    }
    vec![
        "-c".to_owned(),
        "credential.helper=".to_owned(),
        "-c".to_owned(),
        format!(
            "credential.helper=!f() {{ test \"$1\" = get || exit 0; echo username=x-access-token; echo \"password=${GIT_TOKEN_VAR}\"; }}; f"
        ),
    ]
}

/// Below this many bytes a second for [`LOW_SPEED_TIME`], an HTTP transfer is given up
/// (`GIT_HTTP_LOW_SPEED_LIMIT`), unless the environment says otherwise.
const LOW_SPEED_LIMIT: &str = "1000";
const LOW_SPEED_TIME: Duration = Duration::from_secs(60);

/// Runs `git` with `args` in `workdir`, in a process group of its own (its helpers, such as
/// `git-remote-https` or ssh, with it), with no prompt for credentials unless `interactive`
/// (the terminal is then git's standard input; no one answers in CI), and stops the group when it runs longer than `timeout` (a stalled connection otherwise holds
/// a CI job until its own limit). Its output, or why it could not run or finish.
pub fn run_git(
    workdir: &Path,
    args: &[String],
    timeout: Duration,
    interactive: bool,
) -> std::result::Result<Output, String> {
    let mut cmd = Command::new("git");
    if !interactive {
        cmd.env("GIT_TERMINAL_PROMPT", "0");
    }
    cmd.args(credential_args())
        .args(args)
        .current_dir(workdir)
        .stdin(if interactive {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (name, value) in [
        ("GIT_HTTP_LOW_SPEED_LIMIT", LOW_SPEED_LIMIT.to_owned()),
        (
            "GIT_HTTP_LOW_SPEED_TIME",
            LOW_SPEED_TIME.min(timeout).as_secs().max(1).to_string(),
        ),
    ] {
        if std::env::var_os(name).is_none() {
            cmd.env(name, value);
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("could not run git: {e}"))?;
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                let verb = args
                    .iter()
                    .find(|a| !a.starts_with('-'))
                    .map_or("git", String::as_str);
                return Err(format!(
                    "`git {verb}` did not finish within {} and was stopped (a stalled connection?); check the network and the remote, or allow more time with `git-timeout` in the configuration or {}",
                    humantime::format_duration(timeout),
                    crate::config::GIT_TIMEOUT_ENV
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("could not wait for git: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// `git` with `args` in `workdir` (see [`run_git`]): its error is git's own words.
fn git_cli(workdir: &Path, args: &[String], timeout: Duration) -> std::result::Result<(), String> {
    let out = run_git(workdir, args, timeout, false)?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = stderr.trim();
    Err(if text.is_empty() {
        format!("git exited with {}", out.status)
    } else {
        text.to_owned()
    })
}

/// Whether `name` (a local branch) is the branch of a task of `list`, or of one of its rounds.
fn is_task_branch(list: &TaskList, prefix: &str, feature: &str, name: &str) -> bool {
    list.leaves().any(|i| {
        let branch = git::branch_name(prefix, feature, &list.tasks[i].id);
        name == branch
            || name
                .strip_prefix(&branch)
                .and_then(|rest| rest.strip_prefix(".round-"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Fetches the feature's task branches (and their rounds' branches) from `remote`, then makes
/// each local branch that is missing, and moves each that is behind, to the remote's tip.
pub fn fetch(
    workdir: &Path,
    remote: &str,
    prefix: &str,
    feature: &str,
    list: &TaskList,
    timeout: Duration,
) -> Result<Fetched> {
    let space = format!("refs/spec-exec/remote/{remote}/{feature}");
    let refspec = format!("+refs/heads/{prefix}/{feature}/*:{space}/*");
    let repo = Repository::open(workdir).map_err(|e| {
        Error::user(format!(
            "git: could not open the repository: {}",
            e.message()
        ))
    })?;
    // A configured remote's name, and nothing else (no path, no URL, no option): what is
    // fetched from and pushed to is what `git remote -v` shows.
    let known: Vec<String> = repo
        .remotes()
        .map(|r| r.iter().flatten().map(str::to_owned).collect())
        .unwrap_or_default();
    if !known.iter().any(|k| k == remote) || !git2::Reference::is_valid_name(&format!("{space}/x"))
    {
        let quoted =
            shlex::try_quote(remote).map_or_else(|_| remote.to_owned(), |q| q.into_owned());
        return Err(Error::user_with_help(
            format!(
                "`{remote}` is not a remote of this repository (--remote names one by its name)"
            ),
            if known.is_empty() {
                format!(
                    "this repository has no remote: add one with `git remote add {quoted} <url>`, then name it"
                )
            } else {
                format!(
                    "name one of {} (`git remote -v` lists them with their addresses), or add one with `git remote add <name> <url>`",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ));
    }
    clean_stale_locks(&repo, &space);
    let args: Vec<String> = [
        "fetch",
        "--quiet",
        "--prune",
        "--no-tags",
        "--",
        remote,
        &refspec,
    ]
    .map(str::to_owned)
    .to_vec();
    git_cli(workdir, &args, timeout).map_err(|why| {
        Error::user_with_help(
            format!("could not fetch the task branches of `{feature}` from `{remote}`: {why}"),
            format!(
                "check that you can read `{remote}` (`git remote -v` shows its address; try `git fetch {remote}`)"
            ),
        )
    })?;
    let git = git::Git::open(workdir)?;
    let mut fetched = Fetched {
        remote: remote.to_owned(),
        timeout,
        ..Fetched::default()
    };
    let refs = repo
        .references_glob(&format!("{space}/*"))
        .map_err(|e| Error::user(format!("git: could not read `{space}`: {}", e.message())))?;
    for r in refs.flatten() {
        let (Some(name), Some(oid)) = (r.name(), r.target()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(&format!("{space}/")) else {
            continue;
        };
        let branch = format!("{prefix}/{feature}/{rest}");
        if !is_task_branch(list, prefix, feature, &branch) {
            continue;
        }
        fetched.tips.insert(branch, oid);
    }
    let message = format!("spec-exec: fetched from {remote}");
    for (branch, &theirs) in &fetched.tips {
        let full = format!("refs/heads/{branch}");
        let ours = git.branch_tip(branch);
        let update = match ours {
            None => true,
            Some(o) if o == theirs => false,
            Some(o) if repo.graph_descendant_of(theirs, o).unwrap_or(false) => true,
            Some(o) if repo.graph_descendant_of(o, theirs).unwrap_or(false) => {
                fetched.warnings.push(format!(
                    "`{branch}` is ahead of {remote}'s: kept as it is (push it, or delete it to take {remote}'s)"
                ));
                false
            }
            Some(_) => {
                fetched.warnings.push(format!(
                    "`{branch}` and {remote}'s have diverged: kept as it is (delete it to take {remote}'s, or rename it to keep it)"
                ));
                false
            }
        };
        if !update {
            continue;
        }
        if ours.is_some() && git.is_checked_out(branch) {
            fetched.warnings.push(format!(
                "`{branch}` is behind {remote}'s but checked out in a working tree: kept as it is"
            ));
            continue;
        }
        let done = match ours {
            Some(o) => repo.reference_matching(&full, theirs, true, o, &message),
            None => repo.reference(&full, theirs, false, &message),
        };
        match done {
            Ok(_) => fetched.updated.push(branch.clone()),
            Err(e) => fetched.warnings.push(format!(
                "`{branch}` could not be set to {remote}'s tip: {}",
                e.message()
            )),
        }
    }
    Ok(fetched)
}

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushError {
    /// The remote's branch is no longer what the fetch saw: someone else pushed it.
    Moved(String),
    /// Anything else, in git's words.
    Failed(String),
}

/// Pushes local branch `branch` (at `oid`) to `remote`, only if the remote's is still at
/// `expected` (`None`: only if it does not exist there).
pub fn push(
    workdir: &Path,
    remote: &str,
    branch: &str,
    oid: Oid,
    expected: Option<Oid>,
    timeout: Duration,
) -> std::result::Result<(), PushError> {
    let lease = format!(
        "--force-with-lease=refs/heads/{branch}:{}",
        expected.map(|o| o.to_string()).unwrap_or_default()
    );
    let args = vec![
        "push".to_owned(),
        "--quiet".to_owned(),
        "--porcelain".to_owned(),
        lease,
        "--".to_owned(),
        remote.to_owned(),
        format!("{oid}:refs/heads/{branch}"),
    ];
    let out = run_git(workdir, &args, timeout, false).map_err(PushError::Failed)?;
    if out.status.success() {
        return Ok(());
    }
    Err(classify(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    ))
}

/// Why `git push --porcelain` failed, from its output. The remote's branch moved when the lease
/// failed (`[rejected] (stale info)`), when a branch came into being meanwhile (`(fetch
/// first)`, `(non-fast-forward)` with an empty lease), or when another push updated it at the
/// same moment (`cannot lock ref`, `reference already exists`). The reason is the porcelain
/// line of the branch when there is one, with what the remote said, rather than git's closing
/// `failed to push some refs`.
fn classify(stdout: &str, stderr: &str) -> PushError {
    const MOVED: &[&str] = &[
        "[rejected]",
        "stale info",
        "fetch first",
        "non-fast-forward",
        "cannot lock ref",
        "reference already exists",
    ];
    let moved = stdout
        .lines()
        .chain(stderr.lines())
        .any(|l| MOVED.iter().any(|m| l.contains(m)));
    // The porcelain line of the ref: `!<TAB><from>:<to><TAB><summary> (<reason>)`.
    let porcelain: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with('!'))
        .map(|l| l.split('\t').skip(2).collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("error: failed to push some refs"))
        .collect();
    let why = porcelain
        .iter()
        .map(String::as_str)
        .chain(said)
        .collect::<Vec<_>>()
        .join("; ");
    let why = if why.is_empty() {
        [stderr.trim(), stdout.trim()]
            .into_iter()
            .find(|t| !t.is_empty())
            .unwrap_or("git push failed")
            .to_owned()
    } else {
        why
    };
    if moved {
        PushError::Moved(why)
    } else {
        PushError::Failed(why)
    }
}

/// Removes the lock files a killed fetch left in `space` (`refs/spec-exec/remote/<remote>/
/// <feature>`, spec-exec's own namespace), which make every later fetch fail: only those older
/// than this process, so that a fetch running now keeps its own.
fn clean_stale_locks(repo: &Repository, space: &str) {
    let Some(started) = process_start() else {
        return;
    };
    let dir = repo.commondir().join(space);
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "lock")
                && meta.modified().is_ok_and(|m| m < started)
            {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// When this process started (the modification time of its `/proc` entry), where known.
fn process_start() -> Option<std::time::SystemTime> {
    std::fs::metadata(format!("/proc/{}", std::process::id()))
        .and_then(|m| m.modified())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_that_lost_a_race_are_told_from_other_failures() {
        let stale = classify(
            "To /r.git\n!\t0123:refs/heads/spec/f/1\t[rejected] (stale info)\nDone\n",
            "error: failed to push some refs to '/r.git'\n",
        );
        assert_eq!(
            stale,
            PushError::Moved("[rejected] (stale info)".to_owned())
        );
        let locked = classify(
            "To /r.git\n!\t0123:refs/heads/spec/f/1\t[remote rejected] (failed to update ref)\nDone\n",
            "remote: error: cannot lock ref 'refs/heads/spec/f/1': reference already exists\nerror: failed to push some refs to '/r.git'\n",
        );
        assert!(
            matches!(&locked, PushError::Moved(w) if w.contains("cannot lock ref") && w.contains("[remote rejected]")),
            "{locked:?}"
        );
        let denied = classify(
            "",
            "fatal: '/nowhere.git' does not appear to be a git repository\nfatal: Could not read from remote repository.\n",
        );
        assert!(
            matches!(&denied, PushError::Failed(w) if w.contains("does not appear")),
            "{denied:?}"
        );
    }
}
