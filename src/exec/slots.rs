//! A feature's worktrees, as slots reused from task to task and from run to run.
//!
//! A run keeps at most `--max-agents` linked worktrees busy at once: `slots/<n>` in the
//! feature's run state, git's name for each `spec-exec-<len>-<feature>-@<n>` (no task id makes
//! a name with `@`). A job takes a free slot, the one whose tree is closest to where the task
//! starts (usually the slot that ran its dependency), and moves it there by writing only the
//! files that differ ([`Git::move_worktree`]); a new slot is made only when none is free. When
//! the task is committed its slot's HEAD is detached and the slot is free again; a failed or
//! interrupted task keeps its slot, for inspection, and another takes its place.
//!
//! Each slot has its own build directory, `builds/<n>` (`CARGO_TARGET_DIR` of the agent and of
//! the verify commands), outside the worktree so that nothing of it is ever staged, and kept
//! across tasks and runs: the slot's path never changes, so cargo's fingerprints stay valid and
//! the next task's build is incremental. With `shared-target`, the slots share one target
//! directory (`target/`), each with its own `build.build-dir` (`builds/<n>`) where cargo has it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::state::{Note, RunState, worktree_prefix};
pub use super::state::{is_slot_name, slot_name};
use crate::error::{Error, Result};
use crate::git::{self, Git};

/// A slot a job holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub n: u32,
    /// The worktree.
    pub path: PathBuf,
    /// git's name for it.
    pub name: String,
}

/// How a job gives its slot back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Free for the next task, its tree at that commit.
    Free(Option<git2::Oid>),
    /// Free, as it was: the job did not get as far as moving it.
    Unused,
    /// Kept for the job (a failed task's, for inspection; one cut short by a limit, to go on
    /// in): no other job takes it in this run.
    Kept,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Use {
    /// Free, its tree at that commit (none known: a slot that has to be made again).
    Free(Option<git2::Oid>),
    /// Held by a job (its run name); where its tree was before (none: the job makes it, and
    /// `making` says whether it still is).
    Busy {
        job: String,
        before: Option<git2::Oid>,
        making: bool,
    },
    Kept(String),
}

/// The feature's slots.
#[derive(Debug)]
pub struct Slots {
    dir: PathBuf,
    builds: PathBuf,
    /// `shared-target`: the one target directory the slots share.
    shared: Option<PathBuf>,
    /// Whether cargo has `build.build-dir` (1.91 and later).
    build_dir: bool,
    prefix: String,
    /// Numbers whose git record is someone's own (moved elsewhere, or locked): never used.
    taken: Vec<u32>,
    inner: Mutex<Vec<(u32, Use)>>,
    /// How many slots may be made at once: a job that would make one more waits for a slot
    /// to be freed or made instead.
    makers: usize,
    /// Told when a slot is made: there is room for one more to be made.
    changed: tokio::sync::Notify,
    /// The free slots' repositories, as their last task left them opened, for the next task
    /// that takes each (what they read is not read again; every use checks the worktree).
    opened: Mutex<Vec<(u32, git::Kept)>>,
}

/// Where a feature's slots are: `slots/` in its run state.
pub fn slots_dir(state: &Path) -> PathBuf {
    state.join("slots")
}

/// Where the slots' build directories are: `builds/` in its run state.
pub fn builds_dir(state: &Path) -> PathBuf {
    state.join("builds")
}

/// The shared target directory of `shared-target`: `target/` in its run state.
pub fn shared_target_dir(state: &Path) -> PathBuf {
    state.join("target")
}

impl Slots {
    /// No slot yet (a run that makes them as it goes, or `land`, which uses none), of which
    /// at most `makers` are made at once.
    pub fn new(state: &Path, feature: &str, shared_target: bool, makers: usize) -> Slots {
        Slots {
            dir: slots_dir(state),
            builds: builds_dir(state),
            shared: shared_target.then(|| shared_target_dir(state)),
            build_dir: shared_target && cargo_has_build_dir(),
            prefix: worktree_prefix(feature),
            taken: Vec::new(),
            inner: Mutex::new(Vec::new()),
            makers,
            changed: tokio::sync::Notify::new(),
            opened: Mutex::new(Vec::new()),
        }
    }

    /// The slots an earlier run left, made ready for this run: a slot with changes (a failed
    /// or interrupted task's work, or someone's edits) is moved to the leftovers, as a kept
    /// worktree always was, and made again when needed; a clean one has its HEAD detached and
    /// is free. git's records of slots whose directory is gone are pruned.
    pub fn open(
        mut self,
        git: &Git,
        state: &RunState,
        branches: &str,
        run_id: &str,
        root: &Path,
    ) -> Result<(Slots, Vec<Note>)> {
        let mut notes = Vec::new();
        let mut found: Vec<(u32, Use)> = Vec::new();
        let common = git.common_dir();
        let admin = |name: &str| common.join("worktrees").join(name);
        for (name, at) in git.worktrees_of(&self.prefix) {
            if !is_slot_name(&self.prefix, &name) {
                continue;
            }
            let n: u32 = name[self.prefix.len() + 1..].parse().unwrap_or(0);
            let path = self.path(n);
            let real = |p: &Path| p.canonicalize().ok();
            // Moved elsewhere (`git worktree move`), or locked (`git worktree lock`): someone's
            // own now. Left alone, and its number is not used.
            let elsewhere = at
                .as_deref()
                .is_some_and(|at| at.is_absolute() && at.exists() && real(at) != real(&path));
            let locked = admin(&name).join("locked").exists();
            if elsewhere || locked {
                self.taken.push(n);
                notes.push(Note::new(
                    "Skipped",
                    format!(
                        "the worktree `{name}` at {}: it is {}, so it is left alone (slot {n} is not used)",
                        at.as_deref().unwrap_or(&path).display(),
                        if locked { "locked" } else { "no longer where spec-exec made it" }
                    ),
                ));
                continue;
            }
            if std::fs::symlink_metadata(&path).is_err() {
                git.forget_worktree(&name)?;
            }
        }
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(_) => return Ok((self, notes)),
        };
        let mut numbered: Vec<u32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
            .filter(|&n| n > 0)
            .collect();
        numbered.sort_unstable();
        for n in numbered {
            let (path, name) = (self.path(n), slot_name(&self.prefix, n));
            let taken = self.taken.contains(&n);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
                if !taken {
                    git.forget_worktree(&name)?;
                }
                continue;
            }
            if taken {
                // The directory is not the worktree git's record names: kept whole.
                notes.push(state.keep_slot(&path, &format!("slot-{n}"), run_id, root)?);
                continue;
            }
            let linked = git::check_linked(&common, &name, &path).is_ok();
            let moving = self.marker(&common, n);
            let moved_when_killed = std::fs::symlink_metadata(&moving).is_ok_and(|m| m.len() > 0);
            // Killed while it moved (its files half of one tree and half of another), or while
            // it was made (no index: its checkout never finished): nobody's work. It is made
            // again when needed.
            if linked && (moved_when_killed || !admin(&name).join("index").exists()) {
                git.remove_worktree(&name, &path)?;
                continue;
            }
            if !linked || git::has_changes(&path) {
                let label = held_by(&path, branches).unwrap_or_else(|| format!("slot-{n}"));
                notes.push(state.keep_slot(&path, &label, run_id, root)?);
                git.forget_worktree(&name)?;
                continue;
            }
            match git.detach_worktree(&path) {
                Ok(at) => found.push((n, Use::Free(Some(at)))),
                Err(_) => {
                    git.remove_worktree(&name, &path)?;
                }
            }
        }
        *self.inner.get_mut().unwrap_or_else(|e| e.into_inner()) = found;
        Ok((self, notes))
    }

    fn path(&self, n: u32) -> PathBuf {
        self.dir.join(n.to_string())
    }

    /// Says, while slot `n` moves from one tree to another, that it does: a file in git's
    /// record of the worktree (which goes with the record), written in place and emptied when
    /// the move is done rather than made and removed each time.
    fn marker(&self, common: &Path, n: u32) -> PathBuf {
        common
            .join("worktrees")
            .join(slot_name(&self.prefix, n))
            .join("spec-exec-moving")
    }

    fn slot(&self, n: u32) -> Slot {
        Slot {
            n,
            path: self.path(n),
            name: slot_name(&self.prefix, n),
        }
    }

    /// The build directory of slot `n`.
    pub fn build_dir(&self, n: u32) -> PathBuf {
        self.builds.join(n.to_string())
    }

    /// What the agent and the verify commands of slot `n` run with: `CARGO_TARGET_DIR` (and
    /// `CARGO_BUILD_BUILD_DIR` with a shared target).
    pub fn env(&self, n: u32) -> Vec<(String, String)> {
        let own = self.build_dir(n).display().to_string();
        match &self.shared {
            None => vec![("CARGO_TARGET_DIR".to_owned(), own)],
            Some(shared) => {
                let mut env = vec![("CARGO_TARGET_DIR".to_owned(), shared.display().to_string())];
                if self.build_dir {
                    env.push(("CARGO_BUILD_BUILD_DIR".to_owned(), own));
                }
                env
            }
        }
    }

    /// Where a job's cargo writes: its slot's build directory, or the shared target.
    pub fn target_of(&self, n: u32) -> PathBuf {
        self.shared.clone().unwrap_or_else(|| self.build_dir(n))
    }

    /// A slot for the job `run_name`: the one it kept, when it runs again after its limit
    /// reset; else the free slot whose tree is the smallest `distance` from where the
    /// task starts (the lowest number among equals); else a new one.
    pub fn acquire(&self, run_name: &str, distance: impl Fn(git2::Oid) -> usize) -> Slot {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // A job that runs again in this run (after its limit reset) takes the slot it kept,
        // where its branch is checked out.
        if let Some(entry) = inner
            .iter_mut()
            .find(|(_, u)| *u == Use::Kept(run_name.to_owned()))
        {
            entry.1 = Use::Busy {
                job: run_name.to_owned(),
                before: None,
                making: false,
            };
            return self.slot(entry.0);
        }
        // The distance is worth reading only between two free slots or more.
        let free = inner
            .iter()
            .filter(|(_, u)| matches!(u, Use::Free(_)))
            .count();
        let best = inner
            .iter()
            .enumerate()
            .filter_map(|(i, (_, u))| match u {
                Use::Free(_) if free == 1 => Some((0, i)),
                Use::Free(Some(at)) => Some((distance(*at), i)),
                Use::Free(None) => Some((usize::MAX, i)),
                _ => None,
            })
            .min();
        let i = match best {
            Some((_, i)) => i,
            None => {
                let mut n = 1;
                while inner.iter().any(|(m, _)| *m == n) || self.taken.contains(&n) {
                    n += 1;
                }
                inner.push((n, Use::Free(None)));
                inner.len() - 1
            }
        };
        let before = match inner[i].1 {
            Use::Free(at) => at,
            _ => None,
        };
        inner[i].1 = Use::Busy {
            job: run_name.to_owned(),
            before,
            making: before.is_none(),
        };
        self.slot(inner[i].0)
    }

    /// How many jobs can start now without more slots being made at once than may be: the
    /// free slots, and as many new ones as may be made besides those being made. Making a slot
    /// writes the whole tree: on a machine with fewer cores than agents, the tasks of short
    /// agents are done sooner in the slots already made, as they are freed.
    pub fn room(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let free = inner
            .iter()
            .filter(|(_, u)| matches!(u, Use::Free(Some(_))))
            .count();
        let making = inner
            .iter()
            .filter(|(_, u)| matches!(u, Use::Busy { making: true, .. }))
            .count();
        free + self.makers.saturating_sub(making)
    }

    /// Resolves once a slot was made since the last call (or now): there is
    /// [`Slots::room`] for one more to be made. (A slot freed is followed by its job's end,
    /// which the driver hears of anyway.)
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Slot `n` is there (made, moved, or its making failed): when it was being made, one
    /// more may be made, and the driver is told.
    fn made(&self, n: u32) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let was_making = match inner.iter_mut().find(|(m, _)| *m == n) {
            Some((_, Use::Busy { making, .. })) => std::mem::replace(making, false),
            _ => false,
        };
        drop(inner);
        if was_making {
            self.changed.notify_one();
        }
    }

    /// Gives slot `n` back.
    pub fn release(&self, n: u32, how: Release) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = inner.iter_mut().find(|(m, _)| *m == n) {
            entry.1 = match (how, &entry.1) {
                (Release::Free(at), _) => Use::Free(at),
                (Release::Unused, Use::Busy { before, .. }) => Use::Free(*before),
                (Release::Kept, Use::Busy { job, .. }) => Use::Kept(job.clone()),
                (_, other) => other.clone(),
            };
        }
        // No one is told: the job that frees a slot ends next, and what its end starts,
        // after its end is reported, may take the slot.
    }

    /// The repository slot `n` was left with, if any.
    fn take_opened(&self, n: u32) -> Option<git::Kept> {
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        let i = opened.iter().position(|(m, _)| *m == n)?;
        Some(opened.swap_remove(i).1)
    }

    /// Moves `slot` to `branch` (which is at the task's base), or makes it there when it does
    /// not exist yet or cannot be moved. Its repository when it was moved (none when made).
    pub fn enter(&self, git: &Git, slot: &Slot, branch: &str) -> Result<Option<git::Kept>> {
        let entered = self.move_or_make(git, slot, branch);
        self.made(slot.n);
        entered
    }

    fn move_or_make(&self, git: &Git, slot: &Slot, branch: &str) -> Result<Option<git::Kept>> {
        let kept = self.take_opened(slot.n);
        let moving = self.marker(&git.common_dir(), slot.n);
        let mut not_moved = None;
        if moving.parent().is_some_and(Path::is_dir) {
            mark(&moving, b"moving\n")?;
            match git.move_worktree(&slot.name, &slot.path, branch, kept) {
                Ok((_, kept)) => {
                    mark(&moving, b"")?;
                    return Ok(Some(kept));
                }
                Err(e) => not_moved = Some(e),
            }
        }
        if let Some(parent) = slot.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        match (git.add_worktree(&slot.name, &slot.path, branch), not_moved) {
            (Ok(()), _) => Ok(None),
            (Err(e), None) => Err(e),
            // Why the move failed says what is in the way (a file that cannot be removed).
            (Err(e), Some(first)) => Err(Error::user(format!(
                "{first}; making the slot again failed too: {e}; remove what is in the way by hand (an immutable file: `chattr -i`), then run again"
            ))),
        }
    }

    /// Frees slot `slot` after its task was committed: its HEAD is detached, so that the
    /// task's branch is checked out nowhere. `opened`, its repository as the commit checked
    /// it, goes to the next task that takes the slot. With `remake` (the task changed a
    /// `.gitattributes` since its files were checked out, so the files it did not change may
    /// not be what a checkout of its commit writes), the slot is removed, to be made again.
    pub fn leave(
        &self,
        git: &Git,
        slot: &Slot,
        opened: Option<git::Kept>,
        remake: bool,
    ) -> Result<()> {
        let detached = match &opened {
            Some(kept) => git.detach_in(&kept.repo()),
            None => git.detach_worktree(&slot.path),
        };
        match detached {
            Ok(_) if remake => {
                drop(opened);
                let removed = git.remove_worktree(&slot.name, &slot.path);
                self.release(slot.n, Release::Free(None));
                removed
            }
            Ok(at) => {
                if let Some(o) = opened {
                    let mut kept = self.opened.lock().unwrap_or_else(|e| e.into_inner());
                    kept.retain(|(m, _)| *m != slot.n);
                    kept.push((slot.n, o));
                }
                self.release(slot.n, Release::Free(Some(at)));
                Ok(())
            }
            Err(e) => {
                self.release(slot.n, Release::Free(None));
                Err(e)
            }
        }
    }

    /// Removes free slots beyond the first `keep` (the highest numbers first), with their
    /// build directories: a run leaves at most `--max-agents` slots besides the kept ones.
    pub fn trim(&self, git: &Git, keep: usize) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.sort_by_key(|(n, _)| *n);
        let free: Vec<u32> = inner
            .iter()
            .filter(|(_, u)| matches!(u, Use::Free(_)))
            .map(|(n, _)| *n)
            .collect();
        for &n in free.iter().skip(keep) {
            let slot = self.slot(n);
            drop(self.take_opened(n));
            if git.remove_worktree(&slot.name, &slot.path).is_ok() {
                let _ = std::fs::remove_dir_all(self.build_dir(n));
                inner.retain(|(m, _)| *m != n);
            }
        }
    }

    /// What the slots' worktrees and their build directories (and the shared target) take on
    /// disk; `None` when there is no slot.
    pub fn disk(&self) -> Option<crate::report::DiskUse> {
        let slots = self.inner.lock().unwrap_or_else(|e| e.into_inner()).len();
        (slots > 0).then(|| crate::report::DiskUse {
            slots,
            worktrees_bytes: crate::fsutil::dir_size(&self.dir),
            builds_bytes: crate::fsutil::dir_size(&self.builds)
                + self.shared.as_deref().map_or(0, crate::fsutil::dir_size),
        })
    }
}

/// Writes the marker `at` with `text`, never through what the last task could have put there
/// in its worktree's record (a link, a FIFO, a file with other names): in place only when it
/// is a file of its own, else removed and made anew.
fn mark(at: &Path, text: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt as _;
    // Usually the mark spec-exec wrote last time: rewritten in place, once what was opened is
    // known to be that file alone.
    if let Ok(before) = std::fs::symlink_metadata(at)
        && before.is_file()
        && before.nlink() == 1
    {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        if let Ok(fd) = rustix::fs::open(at, flags, Mode::empty()) {
            let mut file = std::fs::File::from(fd);
            if file.metadata().is_ok_and(|now| {
                now.is_file()
                    && now.nlink() == 1
                    && (now.dev(), now.ino()) == (before.dev(), before.ino())
            }) {
                return file
                    .set_len(0)
                    .and_then(|()| file.write_all(text))
                    .map_err(|e| Error::io("write", at, e));
            }
        }
    }
    git::remove_entry(at)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(at)
        .and_then(|mut f| f.write_all(text))
        .map_err(|e| Error::io("write", at, e))
}

/// The task a slot's HEAD names (`refs/heads/<branches><id>`, `branches` being
/// `<prefix>/<feature>/`), for the name of its leftovers.
fn held_by(path: &Path, branches: &str) -> Option<String> {
    git::checked_out_ref(path)?
        .strip_prefix("refs/heads/")?
        .strip_prefix(branches)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// Whether the cargo on PATH has `build.build-dir` (stable from 1.91).
fn cargo_has_build_dir() -> bool {
    let Ok(out) = std::process::Command::new("cargo")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1).unwrap_or("");
    let mut parts = version
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 91)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_are_not_task_names() {
        let prefix = worktree_prefix("demo");
        assert!(is_slot_name(&prefix, &slot_name(&prefix, 3)));
        assert!(!is_slot_name(
            &prefix,
            &super::super::state::worktree_name("demo", "3")
        ));
        assert!(!is_slot_name(&prefix, &format!("{prefix}@x")));
        // No task id makes a name with `@`.
        assert!(!crate::git::ref_safe("@1").contains('@'));
    }

    /// With one slot made at a time, there is room for one job while none is being made, and
    /// for none while one is, but for the free slots; making a slot tells the driver, and a
    /// freed slot is taken rather than a new one made.
    #[tokio::test]
    async fn no_more_slots_are_made_at_once_than_may_be() {
        let state = tempfile::tempdir().unwrap();
        let slots = Slots::new(state.path(), "demo", false, 1);
        let told = || async {
            tokio::time::timeout(std::time::Duration::ZERO, slots.changed())
                .await
                .is_ok()
        };
        assert_eq!(slots.room(), 1);
        assert_eq!(slots.acquire("a", |_| 0).n, 1);
        assert_eq!(slots.room(), 0, "slot 1 is being made");
        slots.made(1);
        assert!(told().await);
        assert!(!told().await, "told once");
        assert_eq!(slots.room(), 1);
        assert_eq!(slots.acquire("b", |_| 0).n, 2);
        assert_eq!(slots.room(), 0, "slot 2 is being made");
        let at = git2::Oid::from_bytes(&[7; 20]).unwrap();
        slots.release(1, Release::Free(Some(at)));
        assert!(!told().await, "the job's end tells");
        assert_eq!(slots.room(), 1, "slot 1 is free");
        assert_eq!(slots.acquire("c", |_| 0).n, 1);
        slots.made(2);
        assert_eq!(slots.room(), 1);
        // A job that made nothing gives its slot back as it was: one to make again.
        assert_eq!(slots.acquire("d", |_| 0).n, 3);
        slots.release(3, Release::Unused);
        assert_eq!(slots.room(), 1);
        assert_eq!(slots.acquire("e", |_| 0).n, 3);
        assert_eq!(slots.room(), 0, "slot 3 is made again");
    }
}
