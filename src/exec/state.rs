//! A feature's run state in one repository: `<git-common-dir>/spec-exec/<feature>/`, with the
//! run lock, the task worktrees, the runs' logs and reports, the leftovers of earlier attempts
//! and the registry of running agents. Under git's own directory it is never shared with
//! another repository (a shared `CARGO_TARGET_DIR` used to mix them) and git ignores it.
//!
//! [`RunState::open`] takes the run lock and cleans what a killed run left: its agents, its ref
//! locks, git's half-made worktree records. [`RunState::clean_worktrees`] clears the worktrees
//! of earlier attempts, moving any with changed files to the leftovers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Diagnostic, Error, Result};
use crate::git::{self, Git};
use crate::source::display_path;

/// Something the startup cleanup did, for a status line: (verb, what).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub verb: &'static str,
    pub text: String,
}

impl Note {
    pub fn new(verb: &'static str, text: String) -> Note {
        Note { verb, text }
    }
}

/// The run state of a feature, with its run lock held for as long as this lives.
#[derive(Debug)]
pub struct RunState {
    dir: PathBuf,
    /// Where earlier versions made the feature's worktrees.
    old_worktrees: PathBuf,
    /// The OS lock on `run.lock`: the kernel releases it when the process ends, however it
    /// ends, so there is no stale lock to take over. The file itself is never removed (a run
    /// could lock a removed file while another creates and locks a new one).
    _lock: File,
}

/// Where run state lives for `feature` of the repository whose common git directory is
/// `common_dir`.
pub fn state_dir(common_dir: &Path, feature: &str) -> PathBuf {
    common_dir.join("spec-exec").join(feature)
}

impl RunState {
    /// Takes the run lock of `feature` in the repository of `git`, then cleans what a run of it
    /// that was killed left: agents still running, ref locks under the feature's branches
    /// (`refs/heads/<prefix>/<feature>/*.lock`) older than this run, and git's half-made
    /// records of the feature's worktrees. `old_state` is where earlier versions kept the
    /// feature's run state (`<target>/spec-exec/<feature>`): its agents are stopped too, and
    /// its worktrees are cleaned by [`RunState::clean_worktrees`]; the rest is left there.
    pub fn open(
        git: &Git,
        feature: &str,
        branch_prefix: &str,
        old_state: &Path,
        root: &Path,
    ) -> Result<(RunState, Vec<Note>)> {
        let dir = state_dir(&git.common_dir(), feature);
        let fresh = !dir.exists();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let lock = take_lock(&dir.join("run.lock"), feature)?;
        let started = SystemTime::now();
        let state = RunState {
            dir,
            old_worktrees: old_state.join("worktrees"),
            _lock: lock,
        };
        let mut notes = Vec::new();

        // A run that died without stopping its agents (`kill -9`, a crash) left them running
        // in their worktrees: stop them before those worktrees are cleaned or reused.
        let mut orphans = stop_orphaned_agents(&state.registry());
        if old_state.exists() && !old_run_alive(old_state) {
            orphans += stop_orphaned_agents(&old_state.join("agents"));
        }
        if orphans > 0 {
            notes.push(Note::new(
                "Stopped",
                format!(
                    "{orphans} agent{} left running by an earlier run that ended without stopping {}",
                    if orphans == 1 { "" } else { "s" },
                    if orphans == 1 { "it" } else { "them" }
                ),
            ));
        }

        // Ref locks of the feature's branches: while this run holds the run lock no other
        // run writes them, so one older than this run is a killed run's.
        let refs = git
            .common_dir()
            .join("refs/heads")
            .join(branch_prefix)
            .join(feature);
        for lock in stale_locks(&refs, started) {
            std::fs::remove_file(&lock).map_err(|e| Error::io("remove", &lock, e))?;
            notes.push(Note::new(
                "Removed",
                format!(
                    "the ref lock `{}`, left by an earlier run that was killed",
                    lock.display()
                ),
            ));
        }

        if fresh && old_state.exists() {
            notes.push(Note::new(
                "Moved",
                format!(
                    "run state to {}; what earlier versions kept in {} (logs, reports, leftovers) stays there: delete it when you no longer need it",
                    display_path(&state.dir, root).display(),
                    display_path(old_state, root).display(),
                ),
            ));
        }
        Ok((state, notes))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The task worktrees: `worktrees/<task-id>`.
    pub fn worktrees(&self) -> PathBuf {
        self.dir.join("worktrees")
    }

    /// The runs' logs, prompts and reports: `runs/<run-id>/`.
    pub fn runs(&self) -> PathBuf {
        self.dir.join("runs")
    }

    /// Worktrees of earlier attempts with changed files: `leftovers/<task-id>-<run-id>/`.
    pub fn leftovers(&self) -> PathBuf {
        self.dir.join("leftovers")
    }

    /// The process groups of the running agents.
    pub fn registry(&self) -> PathBuf {
        self.dir.join("agents")
    }

    /// Clears the feature's worktrees left by earlier runs (failed or interrupted tasks, and
    /// half-made or half-removed ones): git's records whose names start with `prefix`, and
    /// directories under [`RunState::worktrees`] git has no record of. Files changed in one
    /// (by a failed agent, or by someone inspecting it) are moved to the leftovers, never
    /// deleted.
    pub fn clean_worktrees(
        &self,
        git: &Git,
        prefix: &str,
        run_id: &str,
        root: &Path,
    ) -> Result<Vec<Note>> {
        let mut notes = Vec::new();
        let mut recorded = Vec::new();
        for (name, path) in git.worktrees_of(prefix) {
            // The slots have their own cleaning (`Slots::open`).
            if is_slot_name(prefix, &name) {
                continue;
            }
            let id_part = &name[prefix.len()..];
            let expected = self.worktrees().join(id_part);
            // The path git's record names, when it is one of this feature's worktree
            // directories (here, or where an earlier version kept them). A record cut short by
            // a kill (no path, or not an absolute one) is this feature's and leads nowhere
            // else. A record of a worktree elsewhere that exists is someone's own: left alone.
            let path = match path {
                Some(p) if p.is_absolute() && self.is_worktree_dir(&p, id_part) => p,
                Some(p)
                    if p.is_absolute()
                        && std::fs::symlink_metadata(&p).is_ok()
                        && !git.is_repository(&p) =>
                {
                    notes.push(Note::new(
                        "Skipped",
                        format!(
                            "the worktree `{name}` at {}: it is not one of spec-exec's (rename it with `git worktree move` if a task of {id_part} needs the name)",
                            p.display()
                        ),
                    ));
                    continue;
                }
                _ => expected,
            };
            recorded.push(path.clone());
            // A link where the worktree was (an agent's doing): only the link goes, and
            // nothing is read or moved through it.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                git.forget_worktree(&name)?;
                continue;
            }
            // No index: the checkout never finished (a run killed while it made the worktree),
            // so no agent ran there and it holds nothing but the base's files.
            let checked_out = git
                .common_dir()
                .join("worktrees")
                .join(&name)
                .join("index")
                .exists();
            if checked_out && path.exists() && git::has_changes(&path) {
                notes.push(self.keep(&path, id_part, run_id, root)?);
                git.forget_worktree(&name)?;
            } else {
                git.remove_worktree(&name, &path)?;
            }
        }
        // Directories whose git record is gone (a run killed while removing one).
        let Ok(entries) = std::fs::read_dir(self.worktrees()) else {
            return Ok(notes);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // Not followed: a link is removed as a link.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if recorded.contains(&path) {
                continue;
            }
            if kind.is_symlink() {
                std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                continue;
            }
            if !kind.is_dir() {
                continue;
            }
            let id_part = entry.file_name().to_string_lossy().into_owned();
            let only_git = std::fs::read_dir(&path)
                .map(|d| d.flatten().all(|e| e.file_name() == ".git"))
                .unwrap_or(false);
            if only_git {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io("remove", &path, e))?;
            } else {
                // Without git's record, what changed in it cannot be told: keep it all.
                notes.push(self.keep(&path, &id_part, run_id, root)?);
            }
        }
        Ok(notes)
    }

    /// Whether `path` is the directory `id_part` right under the feature's worktrees directory,
    /// or under the one earlier versions used (no `..` or `.` in it).
    fn is_worktree_dir(&self, path: &Path, id_part: &str) -> bool {
        use std::path::Component;
        let real = |p: &Path| p.canonicalize().ok();
        path.is_absolute()
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
            && path.file_name().is_some_and(|n| n == id_part)
            && path.parent().and_then(real).is_some_and(|parent| {
                Some(&parent) == real(&self.worktrees()).as_ref()
                    || Some(&parent) == real(&self.old_worktrees).as_ref()
            })
    }

    /// Moves a slot that holds changes (a failed task's, say) to the leftovers, as
    /// `<label>-<run-id>`, as [`RunState::clean_worktrees`] does with a kept worktree.
    pub fn keep_slot(&self, path: &Path, label: &str, run_id: &str, root: &Path) -> Result<Note> {
        self.keep(path, &git::ref_safe(label), run_id, root)
    }

    /// Moves a worktree's files to the leftovers (or, when they cannot be moved there, leaves
    /// them where they are), without its `.git` file: that points at git's record of the
    /// worktree, which a later run reuses.
    fn keep(&self, path: &Path, id_part: &str, run_id: &str, root: &Path) -> Result<Note> {
        // Unique: two of one task in one run (its slot, and a worktree of an earlier version).
        let mut kept = self.leftovers().join(format!("{id_part}-{run_id}"));
        let mut n = 1;
        while std::fs::symlink_metadata(&kept).is_ok() {
            n += 1;
            kept = self.leftovers().join(format!("{id_part}-{run_id}-{n}"));
        }
        let parent = self.leftovers();
        std::fs::create_dir_all(&parent).map_err(|e| Error::io("create", &parent, e))?;
        let at = match std::fs::rename(path, &kept) {
            Ok(()) => kept,
            // Another file system (run state of an earlier version under a target directory
            // elsewhere): the files stay where they are.
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => path.to_path_buf(),
            Err(e) => return Err(Error::io("move", path, e)),
        };
        // Only a real directory's own `.git` file, never one reached through a link.
        let real_dir = std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir());
        let git_file = std::fs::symlink_metadata(at.join(".git")).is_ok_and(|m| m.is_file());
        if real_dir && git_file {
            let _ = std::fs::remove_file(at.join(".git"));
        }
        Ok(Note::new(
            "Kept",
            format!(
                "the changed files of an earlier attempt of {id_part} in {}",
                display_path(&at, root).display()
            ),
        ))
    }
}

/// Takes the OS lock on `path` without waiting, writing the pid into it for the message of
/// another run that finds it held.
fn take_lock(path: &Path, feature: &str) -> Result<File> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            return Err(Error::user_with_help(
                format!(
                    "another run of `{feature}` in this repository is in progress{holder}: it holds the lock on `{}`",
                    path.display()
                ),
                "wait for it to finish, or stop it with Ctrl-C; the lock is released when that run ends (even when it is killed), so there is nothing to delete",
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
    }
    use std::io::{Seek as _, Write as _};
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

/// Whether a run of an earlier version holds the run lock at the old place (a pid file).
fn old_run_alive(old_state: &Path) -> bool {
    std::fs::read_to_string(old_state.join("run.lock"))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|pid| {
            !matches!(
                rustix::process::test_kill_process(pid),
                Err(rustix::io::Errno::SRCH)
            )
        })
}

/// `*.lock` files directly in `dir` last changed before `started`.
fn stale_locks(dir: &Path, started: SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lock"))
        .filter(|e| {
            e.metadata()
                .ok()
                .filter(std::fs::Metadata::is_file)
                .and_then(|m| m.modified().ok())
                .is_some_and(|m| m < started)
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Kills the agents a run that died left running: the process groups written down in
/// `registry` as it started them, where a process of the group still carries that run's
/// `SPEC_EXEC_RUN_ID` (so a reused group number is never taken for one). The number of groups
/// stopped; the registry is then emptied. Only where `/proc` tells (Linux).
pub fn stop_orphaned_agents(registry: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(registry) else {
        return 0;
    };
    let _ = std::fs::remove_file(registry);
    let recorded: Vec<(i32, String)> = text
        .lines()
        .filter_map(|l| {
            let (pgid, run) = l.split_once(' ')?;
            Some((pgid.parse().ok()?, run.to_owned()))
        })
        .filter(|(_, run)| !run.is_empty())
        .collect();
    if recorded.is_empty() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut alive = std::collections::BTreeSet::new();
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        // The process group is the fifth field of /proc/<pid>/stat, after `pid (comm) state
        // ppid` (comm may hold spaces and parentheses: it ends at the last `)`).
        let Some(group) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let rest = &stat[stat.rfind(')')? + 1..];
                rest.split_whitespace().nth(2)?.parse::<i32>().ok()
            })
            .filter(|&g| g > 0)
        else {
            continue;
        };
        let Some((_, run)) = recorded.iter().find(|(g, _)| *g == group) else {
            continue;
        };
        let want = format!("SPEC_EXEC_RUN_ID={run}");
        let ours = std::fs::read(entry.path().join("environ"))
            .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == want.as_bytes()));
        if ours {
            alive.insert(group);
        }
    }
    for &g in &alive {
        if let Some(pid) = rustix::process::Pid::from_raw(g) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
    alive.len()
}

/// git's name for a task's worktree. The feature's length makes it unambiguous: `demo` task
/// `x-1` and `demo-x` task `1` must never share a name.
pub fn worktree_name(feature: &str, id: &str) -> String {
    format!("{}{}", worktree_prefix(feature), git::ref_safe(id))
}

pub fn worktree_prefix(feature: &str) -> String {
    format!("spec-exec-{}-{feature}-", feature.len())
}

/// git's name of slot `n` of a feature whose worktree names start with `prefix`.
pub fn slot_name(prefix: &str, n: u32) -> String {
    format!("{prefix}@{n}")
}

/// Whether git's worktree name `name` (with the feature's `prefix`) is a slot's.
pub fn is_slot_name(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('@'))
        .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// The longest file name the system takes (`NAME_MAX`) and the longest path (`PATH_MAX`).
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;
/// Room left in names for a review's later rounds (`.round-1000`).
const ROUND_ROOM: usize = ".round-1000".len();

/// Everything about a feature's branches and worktrees that would make a run fail after it
/// started, found from the list and the repository before anything runs: a task id git cannot
/// make a branch of, two ids that make one branch, a branch in the way of the task branches
/// (`spec`, `spec/<feature>`, `spec/<feature>/<id>/x`), and a worktree name or path too long for
/// the file system. Errors are at the task where they are about one. `check`, `--dry-run` and
/// the run itself all use this. The repository checks are skipped outside one.
pub fn run_diagnostics(
    list: &crate::spec::TaskList,
    prefix: &str,
    feature: &str,
    root: &Path,
) -> Vec<Diagnostic> {
    let repo = git2::Repository::discover(root).ok();
    let mut out: Vec<Diagnostic> = repo
        .as_ref()
        .and_then(|repo| branch_in_the_way(repo, prefix, feature))
        .into_iter()
        .collect();
    let name_room = NAME_MAX - ROUND_ROOM;
    if worktree_prefix(feature).len() + 1 > name_room {
        out.push(
            Diagnostic::error(format!(
                "the feature name `{}…` is too long: its worktrees' names would be over {NAME_MAX} bytes, the longest file name the system takes",
                feature.chars().take(24).collect::<String>()
            ))
            .help(format!(
                "rename the feature's directory (at most {} bytes)",
                name_room - worktree_prefix("").len() - 4
            )),
        );
        return out;
    }
    let room = Room {
        worktrees: repo
            .as_ref()
            .map(|r| state_dir(r.commondir(), feature).join("worktrees")),
        // The longest path in the repository's index: what a worktree holds, roughly.
        longest_file: repo
            .as_ref()
            .and_then(|r| r.index().ok())
            .map(|index| index.iter().map(|e| e.path.len()).max().unwrap_or(0))
            .unwrap_or(0),
        repo,
        feature,
    };
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for i in list.leaves() {
        let task = &list.tasks[i];
        let at = list.location(list.id_offset(i), task.id.chars().count().min(40));
        let branch = git::branch_name(prefix, feature, &task.id);
        if git::ref_safe(&task.id).len() > 200
            || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
        {
            out.push(
                Diagnostic::error(format!(
                    "task id `{}` makes a branch name git cannot create",
                    short_id(&task.id)
                ))
                .at(at)
                .label("too long for a branch name")
                .help("shorten the id (at most 200 characters)"),
            );
            continue;
        }
        if let Some(&other) = seen.get(&branch) {
            // The same id twice is an error of the list already.
            if list.tasks[other].id != task.id {
                out.push(
                    Diagnostic::error(format!(
                        "tasks {} and {} would share the branch `{branch}`",
                        list.tasks[other].id, task.id
                    ))
                    .at(at)
                    .label(format!("the same branch as task {}", list.tasks[other].id))
                    .help("give them ids that differ in letters, digits, `.`, `-` or `_`"),
                );
            }
            continue;
        }
        seen.insert(branch.clone(), i);
        out.extend(room.problem(&task.id, &branch).map(|d| d.at(at)));
    }
    out
}

/// Tasks whose branch (`<prefix>/<feature>/<task-id>`) git could not hold beside the feature's
/// integration branch `integration`: the same name, or one a directory of the other
/// (`a/b` and `a/b/c`). An error each, at the task's id.
pub fn integration_clashes(
    list: &crate::spec::TaskList,
    prefix: &str,
    feature: &str,
    integration: &str,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for i in list.leaves() {
        let task = &list.tasks[i];
        let branch = git::branch_name(prefix, feature, &task.id);
        let how = if branch == integration {
            "is"
        } else if integration
            .strip_prefix(&format!("{branch}.round-"))
            .is_some_and(|n| {
                let digits = n.split('/').next().unwrap_or_default();
                !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
            })
        {
            "has a review round branch that is"
        } else if integration.starts_with(&format!("{branch}/")) {
            "is a directory of"
        } else if branch.starts_with(&format!("{integration}/")) {
            "is below"
        } else {
            continue;
        };
        out.push(
            Diagnostic::error(format!(
                "task {}'s branch `{branch}` {how} the feature's integration branch `{integration}`: git cannot hold both",
                short_id(&task.id)
            ))
            .at(list.location(list.id_offset(i), task.id.chars().count().clamp(1, 40)))
            .label("this id makes the branch")
            .help("rename the task id, or set another `integration-branch` in [workspace.metadata.spec-exec] (e.g. \"{prefix}/{feature}-integration\")"),
        );
    }
    out
}

/// A branch where a directory of branches must be (`spec`, `spec/<feature>`): git cannot make
/// branches below it.
fn branch_in_the_way(repo: &git2::Repository, prefix: &str, feature: &str) -> Option<Diagnostic> {
    let mut path = String::new();
    for part in prefix.split('/').chain([feature]) {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(part);
        if repo.find_reference(&format!("refs/heads/{path}")).is_ok() {
            return Some(
                Diagnostic::error(format!(
                    "the branch `{path}` is in the way of this feature's task branches (`{prefix}/{feature}/<task-id>`): git cannot make branches below a branch"
                ))
                .help(format!(
                    "rename it (`git branch -m {path} {path}-old`), or set another `branch-prefix` in [workspace.metadata.spec-exec]"
                )),
            );
        }
    }
    None
}

/// An id shown in a message: its first 24 characters.
fn short_id(id: &str) -> String {
    let s: String = id.chars().take(24).collect();
    if s.len() < id.len() {
        format!("{s}…")
    } else {
        s
    }
}

/// What a task's worktree and branch must fit in.
struct Room<'a> {
    repo: Option<git2::Repository>,
    /// Where the feature's worktrees are made.
    worktrees: Option<PathBuf>,
    longest_file: usize,
    feature: &'a str,
}

impl Room<'_> {
    /// Why task `id`'s worktree or branch `branch` could not be made, if it could not (the
    /// caller places it at the task).
    fn problem(&self, id: &str, branch: &str) -> Option<Diagnostic> {
        let name_room = NAME_MAX - ROUND_ROOM;
        let name = worktree_name(self.feature, id);
        if name.len() > name_room {
            return Some(
                Diagnostic::error(format!(
                    "task id `{}` makes a worktree name of {} bytes (`spec-exec-<n>-<feature>-<id>`), over the {NAME_MAX} the system takes in a file name",
                    short_id(id),
                    name.len() + ROUND_ROOM
                ))
                .label("too long for a worktree name")
                .help(format!(
                    "shorten the id, or the feature's name: together at most {} bytes",
                    name_room - worktree_prefix("").len() - 2
                )),
            );
        }
        if let Some(dir) = &self.worktrees {
            let len = dir.as_os_str().len()
                + 1
                + git::ref_safe(id).len()
                + ROUND_ROOM
                + 1
                + self.longest_file;
            if len >= PATH_MAX {
                return Some(
                    Diagnostic::error(format!(
                        "task id `{}` makes paths in its worktree of up to {len} bytes, over the {PATH_MAX} the system takes",
                        short_id(id)
                    ))
                    .label("too long for a worktree path")
                    .help(format!(
                        "shorten the id or the feature's name, or move the repository to a shorter path (worktrees are made in `{}`)",
                        dir.display()
                    )),
                );
            }
        }
        let repo = self.repo.as_ref()?;
        let mut below = repo
            .references_glob(&format!("refs/heads/{branch}/*"))
            .ok()?;
        let Some(Ok(r)) = below.next() else {
            return None;
        };
        let other = r.shorthand().unwrap_or("?").to_owned();
        Some(
            Diagnostic::error(format!(
                "the branch `{other}` is in the way of task {id}'s branch `{branch}`: git cannot make a branch where branches are below it"
            ))
            .label("its branch cannot be created")
            .help(format!("rename that branch (`git branch -m {other} <new-name>`)")),
        )
    }
}
