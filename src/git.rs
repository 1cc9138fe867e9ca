//! git2 operations: task branches, their bases (a merge of the dependencies' branches when a
//! task has several), linked worktrees, and the commit of a task's changes.
//!
//! Nothing here touches the user's working tree, index or HEAD: branches are created at
//! commits, worktrees are separate directories, and commits are made inside them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use git2::{BranchType, Oid, Repository, Signature, WorktreePruneOptions};

use crate::error::{Error, Result};

/// The trailer that marks a task's commit; a branch whose tip has it is finished.
pub const TASK_TRAILER: &str = "Spec-Exec-Task";
pub const FEATURE_TRAILER: &str = "Spec-Exec-Feature";
/// On the merge commits spec-exec makes to start a task from several dependencies.
pub const BASE_TRAILER: &str = "Spec-Exec-Base-Of";
/// One per verify command that passed on the commit's tree.
pub const VERIFIED_TRAILER: &str = "Spec-Exec-Verified";
/// On the commits of a feature's integration branch.
pub const INTEGRATION_TRAILER: &str = "Spec-Exec-Integration";
/// On a merge whose conflicts an agent resolved: the paths that conflicted.
pub const RESOLVED_TRAILER: &str = "Spec-Exec-Resolved";

fn git_err(what: &str, e: git2::Error) -> Error {
    Error::user(format!("git: could not {what}: {}", e.message()))
}

/// A task id made safe as one ref component, deterministically: characters git refuses become
/// `-`, and no component starts with `.` or ends with `.lock`.
pub fn ref_safe(id: &str) -> String {
    let mut out: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("..") {
        out = out.replace("..", ".");
    }
    let trimmed = out.trim_start_matches(['.', '-']).trim_end_matches('.');
    let mut out = if trimmed.is_empty() {
        "task".to_owned()
    } else {
        trimmed.to_owned()
    };
    if out.ends_with(".lock") {
        out.push('_');
    }
    out
}

/// `<prefix>/<feature>/<task-id>`.
pub fn branch_name(prefix: &str, feature: &str, id: &str) -> String {
    format!("{prefix}/{feature}/{}", ref_safe(id))
}

/// A finished task's commit, read from a branch tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCommit {
    pub oid: Oid,
    pub task: String,
}

/// A task's committed changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub oid: Oid,
    pub files_changed: usize,
    /// A `.gitattributes` is among them: files the commit did not change may be checked out
    /// otherwise at it than at its parent.
    pub attributes_changed: bool,
}

/// Several dependency branches that do not merge cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub paths: Vec<String>,
    /// The merge of the tips before the one that conflicts.
    pub at: Oid,
    /// The tip that conflicts with `at`, and those after it, still to merge.
    pub rest: Vec<(String, Oid)>,
}

/// How merging a tip into a worktree went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// Its work was there already, or the worktree's branch moved forward to it.
    Contained,
    /// Merged without conflicts, and committed.
    Committed(Oid),
    /// The merge is in progress in the worktree.
    Conflicted(Conflicted),
}

/// A merge left in progress, for the agent to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicted {
    /// The conflicted paths, for people.
    pub paths: Vec<String>,
    /// The branch's commit before the merge.
    pub ours: Oid,
    /// The conflicted paths as git has them, and those that are text conflicts (markers in
    /// the file).
    pub entries: Vec<Vec<u8>>,
    pub textual: Vec<Vec<u8>>,
}

pub struct Git {
    repo: Repository,
}

/// Past this many tips, [`Git::merge_tips`] finds each merge's base from what it merged so far.
const MANY_TIPS: usize = 8;

impl std::fmt::Debug for Git {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Git")
            .field("path", &self.repo.path())
            .finish()
    }
}

impl Git {
    pub fn open(root: &Path) -> Result<Git> {
        // Every tree and commit spec-exec writes is made of objects it has just written or
        // read: libgit2's check that each exists (a file opened per entry of every tree it
        // writes, O(files in the repository) per commit) buys nothing.
        static LENIENT: std::sync::Once = std::sync::Once::new();
        LENIENT.call_once(|| git2::opts::strict_object_creation(false));
        let repo = Repository::discover(root).map_err(|_| {
            Error::user_with_help(
                format!("`{}` is not in a git repository", root.display()),
                "spec-exec commits each task on its own branch: run `git init` and commit your work first",
            )
        })?;
        if repo.is_bare() {
            return Err(Error::user(
                "spec-exec needs a repository with a working tree, not a bare one",
            ));
        }
        Ok(Git { repo })
    }

    /// The commit a revision names (`HEAD` by default).
    pub fn resolve(&self, rev: &str) -> Result<Oid> {
        let object = self.repo.revparse_single(rev).map_err(|e| {
            if rev == "HEAD" && self.repo.head().is_err() {
                Error::user_with_help(
                    "the repository has no commits yet",
                    "commit your work first: tasks start from HEAD (or pass --base REV)",
                )
            } else {
                Error::user_with_help(
                    format!(
                        "--base `{rev}` is not a revision of this repository: {}",
                        e.message()
                    ),
                    "pass a branch, tag or commit",
                )
            }
        })?;
        let commit = object
            .peel_to_commit()
            .map_err(|e| git_err(&format!("read `{rev}` as a commit"), e))?;
        Ok(commit.id())
    }

    pub fn branch_tip(&self, name: &str) -> Option<Oid> {
        self.repo
            .find_branch(name, BranchType::Local)
            .ok()
            .and_then(|b| b.get().target())
    }

    /// The task commit at the tip of `branch`, if the branch is finished.
    pub fn task_commit(&self, branch: &str) -> Option<TaskCommit> {
        let tip = self.branch_tip(branch)?;
        let commit = self.repo.find_commit(tip).ok()?;
        let task = trailer(commit.message()?, TASK_TRAILER)?.to_owned();
        Some(TaskCommit { oid: tip, task })
    }

    /// Whether the file at `path` (relative to the repository) in commit `at` holds `bytes`.
    pub fn same_at(&self, at: Oid, path: &Path, bytes: &[u8]) -> bool {
        let tree = self.repo.find_commit(at).and_then(|c| c.tree());
        tree.ok()
            .and_then(|t| blob_at(&self.repo, &t, path))
            .is_some_and(|b| b == bytes)
    }

    /// Whether resetting branch `name` loses nothing but what spec-exec made: its tip is in
    /// `known` (the base, the other task branches) or behind one of them, or is one of
    /// spec-exec's merge commits of such commits. A commit someone added (in the worktree kept
    /// for inspection, say) makes it false. A checked-out branch is never reset.
    /// Worktrees whose names start with `ours` are spec-exec's own, left by an earlier run.
    pub fn only_spec_exec_work(&self, name: &str, known: &[Oid], ours: &str) -> bool {
        let Some(tip) = self.branch_tip(name) else {
            return true;
        };
        !self.checked_out(name, Some(ours)) && self.covered(tip, known, 8)
    }

    fn covered(&self, commit: Oid, known: &[Oid], depth: usize) -> bool {
        if known
            .iter()
            .any(|&k| k == commit || self.repo.graph_descendant_of(k, commit).unwrap_or(false))
        {
            return true;
        }
        let Ok(c) = self.repo.find_commit(commit) else {
            return false;
        };
        let ours = c.parent_count() >= 2
            && c.message()
                .is_some_and(|m| m.lines().any(|l| l.starts_with(BASE_TRAILER)));
        ours && depth > 0 && c.parent_ids().all(|p| self.covered(p, known, depth - 1))
    }

    /// Whether branch `name` is checked out in any working tree.
    pub fn is_checked_out(&self, name: &str) -> bool {
        self.checked_out(name, None)
    }

    /// Whether branch `name` is the HEAD of the main working tree or of a linked one (one
    /// whose name does not start with `ours`, when given). Read from the HEAD files as git
    /// does (`<common>/HEAD`, `<common>/worktrees/<name>/HEAD`), without opening each
    /// worktree; a record whose worktree directory is gone does not count.
    fn checked_out(&self, name: &str, ours: Option<&str>) -> bool {
        let full = format!("ref: refs/heads/{name}");
        let names =
            |head: &Path| std::fs::read_to_string(head).is_ok_and(|text| text.trim_end() == full);
        let common = self.repo.commondir();
        if names(&common.join("HEAD")) {
            return true;
        }
        let Ok(entries) = std::fs::read_dir(common.join("worktrees")) else {
            return false;
        };
        entries.flatten().any(|entry| {
            let wt = entry.file_name();
            let wt = wt.to_string_lossy();
            if ours.is_some_and(|ours| wt.starts_with(ours)) {
                return false;
            }
            let admin = entry.path();
            let alive = std::fs::read_to_string(admin.join("gitdir"))
                .is_ok_and(|g| Path::new(g.trim_end()).exists());
            alive && names(&admin.join("HEAD"))
        })
    }

    /// Creates (or, with `force`, moves) a branch to `at`.
    pub fn set_branch(&self, name: &str, at: Oid, force: bool) -> Result<()> {
        let commit = self
            .repo
            .find_commit(at)
            .map_err(|e| git_err("find the base commit", e))?;
        self.repo
            .branch(name, &commit, force)
            .map_err(|e| self.ref_err(&format!("create branch `{name}`"), name, e))?;
        Ok(())
    }

    /// Moves branch `name` to `to`, only if it is still at `from` (`None`: only if it does not
    /// exist yet), as one compare-and-swap of the ref: someone moving it meanwhile is an
    /// error, never overwritten.
    pub fn move_branch(&self, name: &str, from: Option<Oid>, to: Oid) -> Result<()> {
        let full = format!("refs/heads/{name}");
        let message = "spec-exec: integration";
        let done = match from {
            Some(from) => self.repo.reference_matching(&full, to, true, from, message),
            None => self.repo.reference(&full, to, false, message),
        };
        done.map(|_| ())
            .map_err(|e| self.ref_err(&format!("move branch `{name}`"), name, e))
    }

    /// Whether `tip` is a merge of `parts` and nothing else: it holds every one of them, and
    /// every commit it adds to them is a merge (a resolution of their conflicts, by spec-exec
    /// or by hand).
    pub fn merge_of(&self, tip: Oid, parts: &[Oid]) -> bool {
        parts.iter().all(|&p| self.contains(tip, p)) && self.merges_only_over(tip, parts)
    }

    /// The commits `tip` adds to `known` (reachable from it and from none of them); `None`
    /// when the history cannot be walked.
    fn added(&self, tip: Oid, known: &[Oid]) -> Option<Vec<git2::Commit<'_>>> {
        let mut walk = self.repo.revwalk().ok()?;
        walk.push(tip).ok()?;
        for &k in known {
            walk.hide(k).ok()?;
        }
        walk.map(|oid| oid.and_then(|o| self.repo.find_commit(o)).ok())
            .collect()
    }

    /// Whether every commit `tip` adds to `known` is a merge, and there is at least one.
    pub fn merges_only_over(&self, tip: Oid, known: &[Oid]) -> bool {
        self.added(tip, known)
            .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c.parent_count() >= 2))
    }

    /// Whether every commit `tip` adds to `known` carries the trailer `key` (they are all
    /// spec-exec's own, of one kind).
    pub fn only_commits_with(&self, tip: Oid, known: &[Oid], key: &str) -> bool {
        self.added(tip, known).is_some_and(|cs| {
            cs.iter()
                .all(|c| c.message().is_some_and(|m| trailer(m, key).is_some()))
        })
    }

    /// Whether `at` holds `commit` (is it or descends from it).
    pub fn contains(&self, at: Oid, commit: Oid) -> bool {
        at == commit || self.repo.graph_descendant_of(at, commit).unwrap_or(false)
    }

    /// What `tips` add to `at`: the commits they hold that `at` does not (a tip is among them
    /// unless `at` holds it, see [`Git::contains`]), and those of them that the parents of
    /// these tips hold (a tip is among those when another tip holds it). Two walks of that
    /// history, however many tips there are.
    pub fn tips_over(&self, at: Oid, tips: &[Oid]) -> Result<(HashSet<Oid>, HashSet<Oid>)> {
        let walk = |from: &[Oid]| -> Result<HashSet<Oid>> {
            let err = |e| git_err("walk the history of the tasks' branches", e);
            let mut walk = self.repo.revwalk().map_err(err)?;
            for &oid in from {
                walk.push(oid).map_err(err)?;
            }
            walk.hide(at).map_err(err)?;
            walk.collect::<std::result::Result<_, _>>().map_err(err)
        };
        let added = walk(tips)?;
        let mut parents = Vec::new();
        for &t in tips.iter().filter(|t| added.contains(t)) {
            let commit = self
                .repo
                .find_commit(t)
                .map_err(|e| git_err("find a task's commit", e))?;
            parents.extend(commit.parent_ids());
        }
        // A tip that `at` does not hold is not behind `at` either: what holds it does so
        // through commits `at` does not hold, all in the walk.
        let behind = walk(&parents)?;
        Ok((added, behind))
    }

    /// The message of commit `oid`.
    pub fn message(&self, oid: Oid) -> Option<String> {
        self.repo
            .find_commit(oid)
            .ok()
            .and_then(|c| c.message().map(str::to_owned))
    }

    /// Files changed, lines inserted and deleted by `to` since it left `from` (against their
    /// merge base, as `git diff from...to` counts).
    pub fn diff_stat(&self, from: Oid, to: Oid) -> Option<(usize, usize, usize)> {
        let from = self.repo.merge_base(from, to).unwrap_or(from);
        let tree = |oid| self.repo.find_commit(oid).and_then(|c| c.tree()).ok();
        let diff = self
            .repo
            .diff_tree_to_tree(tree(from).as_ref(), tree(to).as_ref(), None)
            .ok()?;
        let stats = diff.stats().ok()?;
        Some((stats.files_changed(), stats.insertions(), stats.deletions()))
    }

    /// The branch HEAD is on, else HEAD's short commit id.
    pub fn head_name(&self) -> String {
        match self.repo.head() {
            Ok(h) if h.is_branch() => h.shorthand().unwrap_or("HEAD").to_owned(),
            Ok(h) => h
                .target()
                .map(|o| o.to_string()[..10].to_owned())
                .unwrap_or_else(|| "HEAD".to_owned()),
            Err(_) => "HEAD".to_owned(),
        }
    }

    /// A failure to write branch `name`; when git found the ref locked, the lock file's path
    /// and what to do. (A lock left by a killed run of this feature is removed at the start of
    /// the next run; one here is newer: some git process is writing the branch now.)
    fn ref_err(&self, what: &str, name: &str, e: git2::Error) -> Error {
        if e.code() != git2::ErrorCode::Locked {
            return git_err(what, e);
        }
        let lock = self
            .repo
            .commondir()
            .join("refs/heads")
            .join(format!("{name}.lock"));
        // One line: a task's failure reason shows the message only.
        Error::user(format!(
            "git: could not {what}: `{}` locks it (another git process is writing the branch); if no git process is running, delete the lock file and run again",
            lock.display(),
        ))
    }

    /// git's directory shared by all working trees of the repository (`.git` of the main one).
    pub fn common_dir(&self) -> PathBuf {
        self.repo.commondir().to_path_buf()
    }

    /// The state of the configuration files this repository reads, as they are now.
    pub fn config_stamp(&self) -> ConfigStamp {
        ConfigStamp::of(self.repo.path(), self.repo.commondir())
    }

    pub fn delete_branch(&self, name: &str) -> Result<()> {
        // libgit2 checks that no worktree has it checked out: see `registration_lock`.
        let _lock = self.registration_lock()?;
        if let Ok(mut b) = self.repo.find_branch(name, BranchType::Local) {
            b.delete()
                .map_err(|e| self.ref_err(&format!("delete branch `{name}`"), name, e))?;
        }
        Ok(())
    }

    /// The commit identity: the repository's configured one, else a fixed spec-exec identity.
    pub fn signature(&self) -> Signature<'static> {
        match self.repo.signature() {
            Ok(sig) => sig.to_owned(),
            Err(_) => Signature::now("cargo spec-exec", "spec-exec@localhost")
                .unwrap_or_else(|e| panic!("a fixed signature is valid: {e}")),
        }
    }

    /// Merges the tips of several branches into one commit (a chain of two-parent merges, not
    /// on any branch) to start a task from. A conflict names the conflicting paths.
    pub fn merge_tips(
        &self,
        tips: &[(String, Oid)],
        message: &str,
    ) -> Result<std::result::Result<Oid, Conflict>> {
        self.merge_tips_with(tips, message, tips.len() > MANY_TIPS)
    }

    /// [`Git::merge_tips`], finding each merge's base from what the merges so far hold
    /// (`known`) when `known` is set, rather than by a walk of the history each time: a walk
    /// from the chain of merges goes through every merge made before, which makes merging
    /// thousands of tips (a feature's integration) quadratic.
    fn merge_tips_with(
        &self,
        tips: &[(String, Oid)],
        message: &str,
        known: bool,
    ) -> Result<std::result::Result<Oid, Conflict>> {
        let sig = self.signature();
        let first = tips[0].1;
        // Commits the merges so far hold that `first` does not.
        let mut held: HashSet<Oid> = HashSet::new();
        let mut acc = self
            .repo
            .find_commit(tips[0].1)
            .map_err(|e| git_err("find a dependency's commit", e))?;
        for (k, (_, tip)) in tips.iter().enumerate().skip(1) {
            let other = self
                .repo
                .find_commit(*tip)
                .map_err(|e| git_err("find a dependency's commit", e))?;
            // One walk for all three answers: their common ancestor is `other` when `acc` is
            // ahead of it, `acc` when `other` is ahead of that, and else, when it is the only
            // one, the base of their merge (as `merge_commits` would find it again).
            let bases = if acc.id() == other.id() {
                Vec::new()
            } else if known {
                let (new, bases) = self.bases_from_held(first, &held, acc.id(), other.id())?;
                held.extend(new);
                bases
            } else {
                self.repo
                    .merge_bases(acc.id(), other.id())
                    .map(|b| b.iter().copied().collect())
                    .unwrap_or_default()
            };
            let merged = match bases[..] {
                [base] if base == other.id() => continue,
                [base] if base == acc.id() => {
                    acc = other;
                    continue;
                }
                [base] => match self.merge_apart(base, &acc, &other) {
                    Some(tree) => {
                        acc = self.commit_merge(&sig, message, tree, &acc, &other)?;
                        held.insert(acc.id());
                        continue;
                    }
                    None => self.merge_over(base, &acc, &other),
                },
                // Several bases (a criss-cross): over their own merge, as git's recursive
                // merge does, when they merge cleanly.
                [_, _, ..] if known => match self.merge_tips_with(
                    &bases
                        .iter()
                        .map(|&b| (String::new(), b))
                        .collect::<Vec<_>>(),
                    "virtual merge base",
                    false,
                )? {
                    Ok(virtual_base) => self.merge_over(virtual_base, &acc, &other),
                    Err(_) => self.repo.merge_commits(&acc, &other, None),
                },
                _ => self.repo.merge_commits(&acc, &other, None),
            };
            let mut index = merged.map_err(|e| git_err("merge the dependencies' branches", e))?;
            if index.has_conflicts() {
                return Ok(Err(Conflict {
                    paths: conflicted_paths(&index)?,
                    at: acc.id(),
                    rest: tips[k..].to_vec(),
                }));
            }
            let tree_id = index
                .write_tree_to(&self.repo)
                .map_err(|e| git_err("write the merged tree", e))?;
            acc = self.commit_merge(&sig, message, tree_id, &acc, &other)?;
            held.insert(acc.id());
        }
        Ok(Ok(acc.id()))
    }

    /// Commits `tree` as the merge of `ours` and `theirs`, on no branch.
    fn commit_merge<'r>(
        &'r self,
        sig: &Signature<'_>,
        message: &str,
        tree: Oid,
        ours: &git2::Commit<'_>,
        theirs: &git2::Commit<'_>,
    ) -> Result<git2::Commit<'r>> {
        let tree = self
            .repo
            .find_tree(tree)
            .map_err(|e| git_err("read the merged tree", e))?;
        let oid = self
            .repo
            .commit(None, sig, sig, message, &tree, &[ours, theirs])
            .map_err(|e| git_err("commit the merge of the dependencies", e))?;
        self.repo
            .find_commit(oid)
            .map_err(|e| git_err("read the merge", e))
    }

    /// The merged tree of `ours` and `theirs` over `base` when they changed paths apart from
    /// each other (no path changed on both sides, nor a path on one side inside a path changed
    /// on the other): `ours`' tree with `theirs`' changes written in, which costs what the
    /// changes do, where a whole merge reads every path of the three trees. `None` when the
    /// changes meet (or cannot be read): the whole merge decides.
    fn merge_apart(
        &self,
        base: Oid,
        ours: &git2::Commit<'_>,
        theirs: &git2::Commit<'_>,
    ) -> Option<Oid> {
        let base = self.repo.find_commit(base).ok()?.tree().ok()?;
        let (ours_tree, theirs_tree) = (ours.tree().ok()?, theirs.tree().ok()?);
        let changes = |to: &git2::Tree<'_>| {
            let mut opts = git2::DiffOptions::new();
            opts.include_typechange(true);
            self.repo
                .diff_tree_to_tree(Some(&base), Some(to), Some(&mut opts))
                .ok()
        };
        let (ours_diff, theirs_diff) = (changes(&ours_tree)?, changes(&theirs_tree)?);
        let paths = |d: &git2::Diff<'_>| -> Option<Vec<Vec<u8>>> {
            let mut out = Vec::new();
            for delta in d.deltas() {
                for file in [delta.old_file(), delta.new_file()] {
                    out.push(file.path_bytes()?.to_vec());
                }
            }
            Some(out)
        };
        let ours_paths: HashSet<Vec<u8>> = paths(&ours_diff)?.into_iter().collect();
        // Every directory an `ours` path is in.
        let ours_dirs: HashSet<&[u8]> = ours_paths.iter().flat_map(|p| dirs_of(p)).collect();
        // A file that became a directory (or the reverse) on `theirs`: the whole merge.
        let theirs_paths: HashSet<Vec<u8>> = paths(&theirs_diff)?.into_iter().collect();
        if theirs_paths
            .iter()
            .any(|p| dirs_of(p).any(|d| theirs_paths.contains(d)))
        {
            return None;
        }
        let mut update = git2::build::TreeUpdateBuilder::new();
        for delta in theirs_diff.deltas() {
            let path = delta.new_file().path_bytes()?;
            let meets = ours_paths.contains(path)
                || ours_dirs.contains(path)
                || dirs_of(path).any(|d| ours_paths.contains(d));
            if meets || delta.old_file().path_bytes()? != path {
                return None;
            }
            let path = std::str::from_utf8(path).ok()?;
            match delta.status() {
                git2::Delta::Deleted => {
                    update.remove(path);
                }
                git2::Delta::Added | git2::Delta::Modified | git2::Delta::Typechange => {
                    let file = delta.new_file();
                    let mode = file.mode();
                    if !matches!(
                        mode,
                        git2::FileMode::Blob
                            | git2::FileMode::BlobExecutable
                            | git2::FileMode::Link
                            | git2::FileMode::Commit
                    ) {
                        return None;
                    }
                    update.upsert(path, file.id(), mode);
                }
                _ => return None,
            }
        }
        update.create_updated(&self.repo, &ours_tree).ok()
    }

    /// The merge bases of `acc` and `tip`, where `acc` holds `first`, the commits in `held`
    /// and nothing else, and the commits of `tip` that `acc` does not hold (to add to `held`).
    /// One walk of `tip`'s history above `first`: the bases are the commits of `acc` that
    /// those commits' parents reach first, less those behind another of them.
    fn bases_from_held(
        &self,
        first: Oid,
        held: &HashSet<Oid>,
        acc: Oid,
        tip: Oid,
    ) -> Result<(Vec<Oid>, Vec<Oid>)> {
        let err = |e| git_err("walk the history of the tasks' branches", e);
        let mut walk = self.repo.revwalk().map_err(err)?;
        walk.push(tip).map_err(err)?;
        walk.hide(first).map_err(err)?;
        let above: HashSet<Oid> = walk.collect::<std::result::Result<_, _>>().map_err(err)?;
        let new: Vec<Oid> = above
            .iter()
            .filter(|c| !held.contains(c))
            .copied()
            .collect();
        if new.is_empty() {
            // `acc` holds `tip`.
            return Ok((new, vec![tip]));
        }
        let mut hits: Vec<Oid> = Vec::new();
        for &c in &new {
            let commit = self
                .repo
                .find_commit(c)
                .map_err(|e| git_err("find a task's commit", e))?;
            for p in commit.parent_ids() {
                if !new.contains(&p) && !hits.contains(&p) {
                    hits.push(p);
                }
            }
        }
        if hits.contains(&acc) {
            // `tip` holds `acc`.
            return Ok((new, vec![acc]));
        }
        let bases: Vec<Oid> = hits
            .iter()
            .copied()
            .filter(|&h| {
                !hits
                    .iter()
                    .any(|&o| o != h && self.repo.graph_descendant_of(o, h).unwrap_or(false))
            })
            .collect();
        Ok((new, bases))
    }

    /// The merge of `ours` and `theirs` over their one merge base `base`: what `merge_commits`
    /// makes, without walking the history again for the base.
    fn merge_over(
        &self,
        base: Oid,
        ours: &git2::Commit<'_>,
        theirs: &git2::Commit<'_>,
    ) -> std::result::Result<git2::Index, git2::Error> {
        let base = self.repo.find_commit(base)?.tree()?;
        self.repo
            .merge_trees(&base, &ours.tree()?, &theirs.tree()?, None)
    }

    /// Adds a linked worktree named `name` at `path`, with `branch` checked out. What an
    /// earlier attempt left under that name (git's record, a half-made record, the directory)
    /// goes first.
    ///
    /// Only the registration (git's record, the worktree's `.git` file and `HEAD`, as `git
    /// worktree add` writes them) is made under the registration lock (`registration_lock`), after checking, as
    /// git does, that no working tree has the branch checked out; the files are checked out
    /// after it, so that jobs starting together do not wait for each other's checkouts.
    pub fn add_worktree(&self, name: &str, path: &Path, branch: &str) -> Result<()> {
        let full = format!("refs/heads/{branch}");
        {
            let _lock = self.registration_lock()?;
            self.remove_worktree_locked(name, path)?;
            self.repo
                .find_reference(&full)
                .map_err(|e| git_err(&format!("find branch `{branch}`"), e))?;
            if self.checked_out(branch, None) {
                return Err(Error::user(format!(
                    "git: could not add a worktree at `{}`: the branch `{branch}` is checked out in another working tree",
                    path.display()
                )));
            }
            self.register_worktree(name, path, &full)
                .map_err(|(at, e)| Error::io("write", &at, e))?;
        }
        let err =
            |e: git2::Error| git_err(&format!("check out `{branch}` in `{}`", path.display()), e);
        let worktree = Repository::open(path).map_err(err)?;
        let mut opts = git2::build::CheckoutBuilder::new();
        opts.force().recreate_missing(true);
        // Each file's attributes are looked up before it is written (libgit2 resolves the
        // file's directory with realpath(3) for each), to find its filters; where no
        // attribute can apply, there is nothing to find.
        let tree = worktree
            .head()
            .and_then(|h| h.peel_to_tree())
            .map_err(err)?;
        opts.disable_filters(no_filters_apply(&worktree, &tree));
        worktree.checkout_head(Some(&mut opts)).map_err(err)?;
        Ok(())
    }

    /// Moves the linked worktree `name` at `path`, one spec-exec made and left with a detached
    /// HEAD, to `branch`. One walk against its index ([`sweep`], after clearing the index's
    /// marks that hide files) removes what the index does not hold; when nothing else differs
    /// from the worktree's HEAD, only the paths that differ between its tree and the branch's
    /// are written (O(changes)); otherwise git's status looks too, the whole tree is checked
    /// out and checked again, and emptied directories go. Its HEAD becomes the branch. How
    /// many files were written or removed, and its repository (`kept`, when still the one
    /// checked, else opened anew). An error leaves the worktree for the caller to make again.
    pub fn move_worktree(
        &self,
        name: &str,
        path: &Path,
        branch: &str,
        kept: Option<Kept>,
    ) -> Result<(usize, Kept)> {
        // What the last task set for its worktree alone (`git config --worktree`, a sparse
        // checkout) does not reach the next.
        let admin = self.repo.commondir().join("worktrees").join(name);
        let real_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
        if real_dir(&admin) {
            remove_entry(&admin.join("config.worktree"))?;
            if real_dir(&admin.join("info")) {
                remove_entry(&admin.join("info").join("sparse-checkout"))?;
            }
        }
        let wt = check_linked_reusing(self.repo.commondir(), name, path, kept)?;
        let written = self.move_in(&wt.repo(), path, branch)?;
        Ok((written, wt))
    }

    /// [`Git::move_worktree`] of the worktree `wt` at `path`, checked already.
    fn move_in(&self, wt: &Repository, path: &Path, branch: &str) -> Result<usize> {
        let full = format!("refs/heads/{branch}");
        let err = |e: git2::Error| {
            git_err(
                &format!("move the worktree `{}` to `{branch}`", path.display()),
                e,
            )
        };
        let tip = self
            .repo
            .find_reference(&full)
            .and_then(|r| r.peel_to_commit())
            .map_err(err)?;
        let commit = wt.find_commit(tip.id()).map_err(err)?;
        // A merge, cherry-pick or revert the last task left in progress would make the next
        // task's commit a merge of something else.
        wt.cleanup_state().map_err(err)?;
        // Files the last task hid from git (`assume-unchanged`, `skip-worktree`) are compared,
        // and written, like any other.
        unhide_all(wt).map_err(err)?;
        // Untracked and ignored entries go first, as themselves: nothing is ever written
        // through a link the last task left where the next tree has a directory. Whether the
        // rest is the worktree's HEAD is told by the index alone when it can be, else by git's
        // status as well.
        let (swept, tells) = sweep(wt, path)?;
        let (mut removed, clean) = if tells {
            (swept, true)
        } else {
            let (more, clean) = remove_untracked(wt, path)?;
            (swept + more, clean)
        };
        let old = wt.head().and_then(|h| h.peel_to_tree()).map_err(err)?;
        let new = commit.tree().map_err(err)?;
        let diff = wt
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .map_err(err)?;
        // Attributes that change (an end of line, `ident`) change how files the trees share
        // are checked out, and only the paths that differ would be written: the slot is made
        // again instead, as a new worktree would be.
        if changes_attributes(&diff) {
            return Err(Error::user(format!(
                "the worktree `{}` is not moved to `{branch}`: a `.gitattributes` differs",
                path.display()
            )));
        }
        // A link its last commit holds where the next tree has a directory, whose files the
        // checkout would write through it, goes first, as a link.
        let mut paths: Vec<Vec<u8>> = Vec::new();
        for delta in diff.deltas() {
            let file = delta.old_file();
            if file.mode() == git2::FileMode::Link
                && let Some(rel) = file.path()
                && new
                    .get_path(rel)
                    .is_ok_and(|e| e.kind() == Some(git2::ObjectType::Tree))
                && std::fs::symlink_metadata(path.join(rel)).is_ok_and(|m| m.is_symlink())
            {
                remove_entry(&path.join(rel))?;
                removed += 1;
            }
            for side in [delta.old_file(), delta.new_file()] {
                if let Some(raw) = side.path_bytes()
                    && paths.last().is_none_or(|last| last.as_slice() != raw)
                {
                    paths.push(raw.to_vec());
                }
            }
        }
        let written = std::sync::atomic::AtomicUsize::new(removed);
        if !clean || !paths.is_empty() {
            let mut opts = git2::build::CheckoutBuilder::new();
            opts.force()
                .remove_untracked(true)
                .remove_ignored(true)
                .notify_on(git2::CheckoutNotificationType::UPDATED)
                .notify(|_, _, _, _, _| {
                    written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    true
                });
            // The worktree is its HEAD's tree: only the paths of the trees' difference are
            // looked at. Else (a change the last task left), the whole tree is.
            if clean {
                opts.disable_pathspec_match(true);
                for raw in paths {
                    opts.path(raw);
                }
            }
            wt.checkout_tree(commit.as_object(), Some(&mut opts))
                .map_err(err)?;
        }
        self.switch_head(wt, path, branch, commit.id())?;
        let cleared = if tells {
            // The walk left no empty directory, and the checkout removes those it empties.
            0
        } else if clean {
            remove_empty_dirs(path, path, &mut Gitlinks::new(wt, path))?
        } else {
            clear_untracked(wt, path, branch)?
        };
        Ok(written.into_inner() + cleared)
    }

    /// Makes `branch` the HEAD of the worktree `wt` at `path`, whose files are already its
    /// tip's `at`: not while another working tree has it checked out.
    fn switch_head(&self, wt: &Repository, path: &Path, branch: &str, at: Oid) -> Result<()> {
        let full = format!("refs/heads/{branch}");
        let err = |e: git2::Error| {
            git_err(
                &format!("move the worktree `{}` to `{branch}`", path.display()),
                e,
            )
        };
        let _lock = self.registration_lock()?;
        // Its own HEAD may still name the branch (a job that goes on after its limit).
        if head_ref(wt).as_deref() == Some(full.as_str()) {
            wt.set_head_detached(at).map_err(err)?;
        }
        if self.checked_out(branch, None) {
            return Err(Error::user(format!(
                "git: could not move the worktree at `{}` to `{branch}`: the branch is checked out in another working tree",
                path.display()
            )));
        }
        wt.set_head(&full).map_err(err)
    }

    /// Detaches the HEAD of the linked worktree at `path` at the commit it is on, so that its
    /// branch is checked out nowhere; that commit.
    pub fn detach_worktree(&self, path: &Path) -> Result<Oid> {
        let wt = Repository::open(path)
            .map_err(|e| git_err(&format!("detach the worktree `{}`", path.display()), e))?;
        self.detach_in(&wt)
    }

    /// [`Git::detach_worktree`], of the worktree `wt` opened already.
    pub fn detach_in(&self, wt: &Repository) -> Result<Oid> {
        let path = wt.workdir().unwrap_or_else(|| wt.path());
        let err = |e: git2::Error| git_err(&format!("detach the worktree `{}`", path.display()), e);
        let at = head_oid(wt)?;
        let _lock = self.registration_lock()?;
        wt.set_head_detached(at).map_err(err)?;
        Ok(at)
    }

    /// How many paths differ between the trees of commits `a` and `b` (`usize::MAX` when one
    /// cannot be read).
    pub fn tree_distance(&self, a: Oid, b: Oid) -> usize {
        self.commits_diff(a, b)
            .map_or(usize::MAX, |d| d.deltas().len())
    }

    /// The difference between the trees of commits `a` and `b`, when both can be read.
    fn commits_diff(&self, a: Oid, b: Oid) -> Option<git2::Diff<'_>> {
        let tree = |c: Oid| self.repo.find_commit(c).and_then(|c| c.tree()).ok();
        self.repo
            .diff_tree_to_tree(Some(&tree(a)?), Some(&tree(b)?), None)
            .ok()
    }

    /// Writes git's record of a linked worktree and the worktree's `.git` file, as `git
    /// worktree add` does: `<common>/worktrees/<name>/{gitdir,commondir,HEAD}`.
    fn register_worktree(
        &self,
        name: &str,
        path: &Path,
        head: &str,
    ) -> std::result::Result<(), (PathBuf, std::io::Error)> {
        let common = self.repo.commondir().to_path_buf();
        let admin = common.join("worktrees").join(name);
        // Each file whole or absent (written beside it, then renamed): a record cut short by a
        // kill must never name another directory (an empty `gitdir` names `.`).
        let write = |at: PathBuf, text: String| {
            let tmp = at.with_extension("spec-exec-tmp");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, &at))
                .map_err(|e| (at, e))
        };
        let mkdir = |at: &Path| std::fs::create_dir_all(at).map_err(|e| (at.to_path_buf(), e));
        mkdir(&admin)?;
        mkdir(path)?;
        let path = path.canonicalize().map_err(|e| (path.to_path_buf(), e))?;
        let common = common.canonicalize().map_err(|e| (common.clone(), e))?;
        let admin = common.join("worktrees").join(name);
        write(admin.join("commondir"), "../..\n".to_owned())?;
        write(admin.join("HEAD"), format!("ref: {head}\n"))?;
        write(path.join(".git"), format!("gitdir: {}\n", admin.display()))?;
        // Last: git takes the record for a worktree once it points at its `.git` file.
        write(
            admin.join("gitdir"),
            format!("{}\n", path.join(".git").display()),
        )?;
        Ok(())
    }

    /// Removes a worktree (its directory and git's record of it), if there is one.
    pub fn remove_worktree(&self, name: &str, path: &Path) -> Result<()> {
        let _lock = self.registration_lock()?;
        self.remove_worktree_locked(name, path)
    }

    fn remove_worktree_locked(&self, name: &str, path: &Path) -> Result<()> {
        // git's record only: libgit2 would remove the directory its record names, and a
        // record cut short by a kill names `.` (the current directory). The directory is
        // removed below, once it is known to be a worktree's.
        if let Ok(wt) = self.repo.find_worktree(name) {
            // A worktree of that name elsewhere, that exists, is someone's own: never removed.
            let at = wt.path();
            let real = |p: &Path| p.canonicalize().ok();
            if at.is_absolute() && at.exists() && real(at) != real(path) && !self.is_repository(at)
            {
                return Err(Error::user_with_help(
                    format!(
                        "a worktree named `{name}` at `{}` is in the way, and it is not spec-exec's",
                        at.display()
                    ),
                    format!(
                        "rename it (`git worktree move {} <new path>` keeps its files; the name is the folder's)",
                        at.display()
                    ),
                ));
            }
            let mut opts = WorktreePruneOptions::new();
            opts.valid(true).locked(true);
            wt.prune(Some(&mut opts))
                .map_err(|e| git_err(&format!("remove the worktree `{name}`"), e))?;
        }
        // A record git does not take for one (a run killed while git was making it: an empty
        // folder, or one without `HEAD`): git refuses to make the worktree again while it is
        // there. It holds nothing but git's bookkeeping.
        let admin = self.repo.commondir().join("worktrees").join(name);
        if admin.is_dir() {
            std::fs::remove_dir_all(&admin).map_err(|e| Error::io("remove", &admin, e))?;
        }
        match std::fs::symlink_metadata(path) {
            // A link where the worktree was: only the link goes.
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
            }
            Ok(_) => {
                self.ensure_removable(path)?;
                std::fs::remove_dir_all(path).map_err(|e| Error::io("remove", path, e))?;
            }
            Err(_) => {}
        }
        Ok(())
    }

    /// Whether `path` is the repository's own working tree or git directory, or holds one of
    /// them: no linked worktree of anyone's is there, so a record naming it is a damaged one.
    pub fn is_repository(&self, path: &Path) -> bool {
        let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let target = real(path);
        let held = |p: &Path| real(p).starts_with(&target);
        self.repo.workdir().is_some_and(held) || held(self.repo.commondir())
    }

    /// A worktree's directory is removed only when it is an absolute path that holds neither
    /// the repository's working tree nor its git directory: whatever a damaged record says,
    /// the user's files are never removed with it.
    fn ensure_removable(&self, path: &Path) -> Result<()> {
        let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let target = real(path);
        let holds = |p: &Path| real(p).starts_with(&target);
        let mine = self.repo.workdir().is_some_and(holds) || holds(self.repo.commondir());
        if !path.is_absolute() || target.parent().is_none() || mine {
            return Err(Error::user_with_help(
                format!(
                    "refusing to remove `{}` as a worktree: it holds the repository",
                    path.display()
                ),
                "a worktree record of spec-exec's is damaged: remove it with `git worktree prune`, then run again",
            ));
        }
        Ok(())
    }

    /// Drops git's record of worktree `name` (a half-made one too), leaving its directory.
    pub fn forget_worktree(&self, name: &str) -> Result<()> {
        let _lock = self.registration_lock()?;
        if let Ok(wt) = self.repo.find_worktree(name) {
            let mut opts = WorktreePruneOptions::new();
            opts.valid(true).locked(true);
            wt.prune(Some(&mut opts)).map_err(|e| {
                git_err(&format!("remove git's record of the worktree `{name}`"), e)
            })?;
        }
        let admin = self.repo.commondir().join("worktrees").join(name);
        if admin.is_dir() {
            std::fs::remove_dir_all(&admin).map_err(|e| Error::io("remove", &admin, e))?;
        }
        Ok(())
    }

    /// Serialises what reads or changes the set of linked worktrees (adding, removing, deleting
    /// a branch), between the jobs of a run and between runs of different features: libgit2
    /// lists the worktrees and then opens each, and takes one removed in between for one that
    /// has the branch checked out ("reference … is already checked out"). An OS lock on
    /// `<git-common-dir>/spec-exec/worktrees.lock`, released when the returned file is dropped
    /// (or the process dies).
    fn registration_lock(&self) -> Result<std::fs::File> {
        let dir = self.repo.commondir().join("spec-exec");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let path = dir.join("worktrees.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        file.lock().map_err(|e| Error::io("lock", &path, e))?;
        Ok(file)
    }

    /// The linked worktrees whose names start with `prefix`, with the directory git recorded
    /// for each; also the records git does not list (half-made ones), with no directory.
    pub fn worktrees_of(&self, prefix: &str) -> Vec<(String, Option<PathBuf>)> {
        let mut out: Vec<(String, Option<PathBuf>)> = self
            .worktrees_with_prefix(prefix)
            .into_iter()
            .map(|name| {
                let path = self
                    .repo
                    .find_worktree(&name)
                    .ok()
                    .map(|w| w.path().to_path_buf());
                (name, path)
            })
            .collect();
        let admin = self.repo.commondir().join("worktrees");
        if let Ok(entries) = std::fs::read_dir(&admin) {
            for entry in entries.flatten() {
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.starts_with(prefix) && !out.iter().any(|(n, _)| *n == name) {
                    out.push((name, None));
                }
            }
        }
        out.sort();
        out
    }

    /// Names of the linked worktrees whose names start with `prefix`.
    pub fn worktrees_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.repo
            .worktrees()
            .map(|names| {
                names
                    .iter()
                    .flatten()
                    .filter(|n| n.starts_with(prefix))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether git tracks the file at `rel` (relative to the working tree): it is in the index.
    pub fn is_tracked(&self, rel: &Path) -> bool {
        self.repo
            .index()
            .is_ok_and(|index| index.get_path(rel, 0).is_some())
    }

    pub fn workdir(&self) -> Option<PathBuf> {
        self.repo.workdir().map(Path::to_path_buf)
    }

    /// The paths (relative to the working tree) that differ between `rev` and the working
    /// tree: changed in the commits since, staged, unstaged, or new and untracked (ignored
    /// files not). A renamed file counts at both its names. Only under `pathspecs` (files or
    /// directories relative to the working tree, taken literally) when any are given: the
    /// untracked files elsewhere are not walked.
    pub fn changed_since(&self, rev: &str, pathspecs: &[PathBuf]) -> Result<Vec<PathBuf>> {
        let tree = self
            .repo
            .revparse_single(rev)
            .and_then(|o| o.peel_to_tree())
            .map_err(|e| {
                Error::user_with_help(
                    format!(
                        "--changed-since `{rev}` is not a revision of this repository: {}",
                        e.message()
                    ),
                    "pass a branch, tag or commit; in a shallow clone (a CI checkout) fetch it first, e.g. `git fetch origin main` or a checkout with its whole history",
                )
            })?;
        let mut opts = git2::DiffOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            // Literal paths, not patterns: a directory's name may hold `*` or `[`.
            .disable_pathspec_match(true);
        for p in pathspecs {
            opts.pathspec(p);
        }
        let diff = self
            .repo
            .diff_tree_to_workdir_with_index(Some(&tree), Some(&mut opts))
            .map_err(|e| git_err(&format!("compare `{rev}` with the working tree"), e))?;
        let paths: std::collections::BTreeSet<PathBuf> = diff
            .deltas()
            .flat_map(|d| [d.old_file().path(), d.new_file().path()])
            .flatten()
            .map(Path::to_path_buf)
            .collect();
        Ok(paths.into_iter().collect())
    }
}

/// The working tree of the repository holding `path`, if it is in one that has one.
pub fn workdir_of(path: &Path) -> Option<PathBuf> {
    Repository::discover(path)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_path_buf))
}

/// Checks that `path` is still the linked worktree spec-exec made there for `branch`, before
/// anything is staged or committed in it: a real directory (not a link), whose git directory is
/// git's record `<common>/worktrees/<name>`, with `branch` checked out. An agent that put a
/// link to another tree there, pointed its `.git` elsewhere or switched branches would
/// otherwise have spec-exec commit in the wrong repository or on the wrong branch.
pub fn check_worktree(common: &Path, name: &str, path: &Path, branch: &str) -> Result<Repository> {
    check_worktree_reusing(common, name, path, branch, None).map(Kept::into_repo)
}

/// [`check_worktree`], reusing `kept` as [`check_linked_reusing`] does.
pub fn check_worktree_reusing(
    common: &Path,
    name: &str,
    path: &Path,
    branch: &str,
    kept: Option<Kept>,
) -> Result<Kept> {
    let kept = check_linked_reusing(common, name, path, kept)?;
    let head = head_ref(&kept.repo());
    if head.as_deref() != Some(format!("refs/heads/{branch}").as_str()) {
        return Err(Error::user(format!(
            "the task's worktree is no longer the one spec-exec made (it has {} checked out instead of `{branch}`); nothing was committed",
            head.map_or_else(|| "a detached HEAD".to_owned(), |h| format!("`{h}`"))
        )));
    }
    Ok(kept)
}

/// Checks that `path` is still the linked worktree `name` spec-exec made: a real directory
/// (not a link) whose `.git` file leads to git's record `<common>/worktrees/<name>`, which
/// names it back. The worktree's repository, opened.
pub fn check_linked(common: &Path, name: &str, path: &Path) -> Result<Repository> {
    check_linked_reusing(common, name, path, None).map(Kept::into_repo)
}

/// A worktree's repository kept open from one step to the next, with the state of the
/// configuration files it read when it was opened: libgit2 keeps some of their values
/// (`core.filemode`, `core.autocrlf`…) for as long as a repository is open. Behind a lock,
/// so that the job holding it can be shared across its steps' awaits.
pub struct Kept {
    repo: std::sync::Mutex<Repository>,
    config: ConfigStamp,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").finish_non_exhaustive()
    }
}

impl Kept {
    fn new(repo: Repository, config: ConfigStamp) -> Kept {
        Kept {
            repo: std::sync::Mutex::new(repo),
            config,
        }
    }

    pub fn repo(&self) -> std::sync::MutexGuard<'_, Repository> {
        self.repo.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn into_repo(self) -> Repository {
        self.repo.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// The modified time, size and inode of each configuration file a repository reads (its
/// own, its worktree's, the user's and the system's), present or not: a repository opened
/// earlier is used again only while they are unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigStamp(Vec<FileStamp>);

/// A file's modified time, size and inode, when it is there.
type FileStamp = Option<(std::time::SystemTime, u64, u64)>;

fn file_stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| {
        (
            m.modified().unwrap_or(std::time::UNIX_EPOCH),
            m.len(),
            m.ino(),
        )
    })
}

impl ConfigStamp {
    /// Of the repository whose git directory is `git_dir` and common directory `common`.
    pub fn of(git_dir: &Path, common: &Path) -> ConfigStamp {
        let mine = [common.join("config"), git_dir.join("config.worktree")];
        let files: Vec<&PathBuf> = mine.iter().chain(user_config_files()).collect();
        let mut stamps: Vec<FileStamp> = files.iter().map(|p| file_stamp(p)).collect();
        // A file they include (`[include]`, `[includeIf]`) is read as theirs.
        let included: Vec<PathBuf> = files
            .iter()
            .zip(&stamps)
            .filter(|(_, at)| at.is_some())
            .flat_map(|(file, at)| included_by(file, *at))
            .collect();
        stamps.extend(included.iter().map(|p| file_stamp(p)));
        ConfigStamp(stamps)
    }
}

/// The files the configuration file `file` includes (`include.path`, `includeIf.<cond>.path`,
/// whatever the condition: a file read only sometimes is stamped always), `~/` and relative
/// paths resolved as git does. Read again only when `file` changed (`at`, its stamp).
fn included_by(file: &Path, at: FileStamp) -> Vec<PathBuf> {
    static SEEN: std::sync::Mutex<Vec<(PathBuf, FileStamp, Vec<PathBuf>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, paths)) = seen.iter().find(|(f, s, _)| f == file && *s == at) {
        return paths.clone();
    }
    let mut paths = Vec::new();
    if let Ok(config) = git2::Config::open(file)
        && let Ok(mut entries) = config.entries(Some(r"^include(if\..*)?\.path$"))
    {
        let dir = file.parent().unwrap_or(Path::new("/"));
        while let Some(Ok(entry)) = entries.next() {
            let Some(value) = entry.value() else { continue };
            let path = match (value.strip_prefix("~/"), &user_dirs().home) {
                (Some(rest), Some(home)) => home.join(rest),
                _ => dir.join(value),
            };
            paths.push(path);
        }
    }
    seen.retain(|(f, _, _)| f != file);
    seen.push((file.to_path_buf(), at, paths.clone()));
    paths
}

/// Where git looks for the user's own files: the home directory, and git's directory in the
/// user's configuration directory (`$XDG_CONFIG_HOME/git`, else `~/.config/git`).
struct UserDirs {
    home: Option<PathBuf>,
    xdg_git: Option<PathBuf>,
}

fn user_dirs() -> &'static UserDirs {
    static DIRS: std::sync::OnceLock<UserDirs> = std::sync::OnceLock::new();
    DIRS.get_or_init(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let xdg_git = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")))
            .map(|x| x.join("git"));
        UserDirs { home, xdg_git }
    })
}

/// The configuration files besides a repository's own that git reads: the user's
/// (`~/.gitconfig`, `$XDG_CONFIG_HOME/git/config`) and the system's.
fn user_config_files() -> &'static [PathBuf] {
    static FILES: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let dirs = user_dirs();
        let mut files: Vec<PathBuf> = dirs.home.iter().map(|h| h.join(".gitconfig")).collect();
        files.extend(dirs.xdg_git.iter().map(|x| x.join("config")));
        files.push(PathBuf::from("/etc/gitconfig"));
        files
    })
}

/// [`check_linked`], reusing `kept`, the worktree's repository as opened for an earlier step,
/// when its `.git` still leads to the same record and no configuration file changed since:
/// what that repository read before (the configuration, the trees) is not read again. The
/// index and refs are read from disk anew by whatever uses them.
pub fn check_linked_reusing(
    common: &Path,
    name: &str,
    path: &Path,
    kept: Option<Kept>,
) -> Result<Kept> {
    let wrong = |what: String| {
        Err(Error::user(format!(
            "the task's worktree is no longer the one spec-exec made ({what}); nothing was committed"
        )))
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return wrong(format!("`{}` is a link now", path.display())),
        Err(e) => return wrong(format!("`{}`: {e}", path.display())),
    }
    match std::fs::symlink_metadata(path.join(".git")) {
        Ok(meta) if meta.is_file() => {}
        _ => return wrong("its `.git` is not the file git wrote".to_owned()),
    }
    let admin = common.join("worktrees").join(name);
    // What git writes in the record (the worktree's HEAD, index and HEAD's log) is written
    // through nothing: a link or a file with other names there could lead to the user's own.
    for file in ["HEAD", "index", "logs/HEAD"] {
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(meta) = std::fs::symlink_metadata(admin.join(file))
            && (!meta.is_file() || meta.nlink() > 1)
        {
            return wrong(format!(
                "its git record's `{file}` is a link, or not a file of its own"
            ));
        }
    }
    let record = DirId::of(&admin);
    // The record leads back to this repository (`commondir`), not to another one.
    let common_of_record = std::fs::read_to_string(admin.join("commondir"))
        .ok()
        .and_then(|c| DirId::of(&admin.join(c.trim_end_matches(['\n', '\r']))));
    if record.is_some() && common_of_record != DirId::of(common) {
        return wrong("its git record leads to another repository".to_owned());
    }
    let config = ConfigStamp::of(&admin, common);
    let leads_to = gitdir_of(path).and_then(|d| DirId::of(&d));
    // A repository kept from an earlier step was opened through this same record, and
    // checked then.
    let kept = kept.filter(|k| leads_to.is_some() && leads_to == record && k.config == config);
    let kept = match kept {
        Some(kept) => kept,
        None => match Repository::open(path) {
            Ok(repo) => Kept::new(repo, config),
            Err(_) => return wrong("git cannot open it".to_owned()),
        },
    };
    {
        let repo = kept.repo();
        if record.is_none() || DirId::of(repo.path()) != record {
            return wrong(format!("its `.git` leads to `{}`", repo.path().display()));
        }
        if repo.workdir().and_then(DirId::of) != DirId::of(path) {
            return wrong("its git record names another directory".to_owned());
        }
    }
    Ok(kept)
}

/// Which directory a path leads to (links followed): its device and inode, so that two paths
/// are compared with one look at each instead of resolving each part of both.
#[derive(Debug, PartialEq, Eq)]
struct DirId(u64, u64);

impl DirId {
    fn of(path: &Path) -> Option<DirId> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).ok()?;
        meta.is_dir().then(|| DirId(meta.dev(), meta.ino()))
    }
}

/// Where the `.git` file of the worktree at `path` leads (`gitdir: …`, relative to `path`
/// when not absolute).
fn gitdir_of(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read(path.join(".git")).ok()?;
    let text = std::str::from_utf8(&text).ok()?;
    let dir = Path::new(text.strip_prefix("gitdir:")?.trim());
    Some(if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        path.join(dir)
    })
}

/// The branch the worktree at `path` has checked out (`refs/heads/…`), if its HEAD names one.
pub fn checked_out_ref(path: &Path) -> Option<String> {
    head_ref(&Repository::open(path).ok()?)
}

fn head_ref(repo: &Repository) -> Option<String> {
    repo.find_reference("HEAD")
        .ok()?
        .symbolic_target()
        .map(str::to_owned)
}

/// What git reports of the worktree `repo` at `path`, untracked and ignored directories
/// whole (not what is in them), submodules too unless `without_submodules`.
fn statuses_of<'r>(
    repo: &'r Repository,
    path: &Path,
    without_submodules: bool,
) -> Result<git2::Statuses<'r>> {
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .include_ignored(true)
        .recurse_untracked_dirs(false)
        .recurse_ignored_dirs(true)
        .exclude_submodules(without_submodules);
    repo.statuses(Some(&mut opts))
        .map_err(|e| git_err(&format!("clear the worktree `{}`", path.display()), e))
}

/// Removes what git reports as untracked or ignored in the worktree `repo` at `path` (a
/// directory whole, a link as a link); how many entries went, and whether that was all git
/// reported (nothing else differs from its HEAD: no changed, deleted or staged file, no
/// submodule that differs, no conflict).
fn remove_untracked(repo: &Repository, path: &Path) -> Result<(usize, bool)> {
    let statuses = statuses_of(repo, path, false)?;
    let only = git2::Status::WT_NEW | git2::Status::IGNORED;
    let mut clean = true;
    let mut gone: Vec<PathBuf> = Vec::new();
    for e in statuses.iter() {
        if !(e.status() - only).is_empty() {
            clean = false;
        } else {
            gone.push(path.join(status_path(e.path_bytes())));
        }
    }
    for at in &gone {
        remove_entry(at)?;
    }
    Ok((gone.len(), clean))
}

/// The first pass of a move: one walk of the directories of the worktree `repo` at `path`,
/// against its index alone, through directory handles (a directory swapped for a link while
/// the walk goes is never followed). Whatever the index does not hold goes, ignored or not (a
/// directory whole, a link as a link; FIFOs and `.GIT`-like names with the rest), and so does
/// a file with other names (a hard link), which a checkout would write through. How many
/// entries went, and whether nothing else differs: the index is the worktree's HEAD and every
/// file of the index is there as the index has it (by its stat data, or by its content where
/// that cannot tell, as git decides). When something differs or cannot be told this way (a
/// submodule, a conflict, a content filter), git's status looks next, as before. Needs no
/// ignore rules and finds emptied directories in the same walk.
fn sweep(repo: &Repository, path: &Path) -> Result<(usize, bool)> {
    const STAGE: u16 = 0x3000;
    const ASSUME_VALID: u16 = 0x8000;
    const INTENT_OR_SKIP: u16 = 0x2000 | 0x4000;
    let err = |e: git2::Error| git_err("read the worktree's index", e);
    let mut index = repo.index().map_err(err)?;
    let file = repo.path().join("index");
    let written = std::fs::symlink_metadata(&file).ok();
    // Gone (removed after the last commit): what the repository kept of it goes too.
    index.read(written.is_none()).map_err(err)?;
    let mut clean = written.is_some();
    let written = written.map_or((0, 0), |m| {
        use std::os::unix::fs::MetadataExt as _;
        (m.mtime(), m.mtime_nsec())
    });
    // A change staged since the commit (by a process the last task left behind) differs too.
    let head = repo.head().and_then(|h| h.peel_to_tree()).map_err(err)?;
    let staged = repo
        .diff_tree_to_index(Some(&head), Some(&index), None)
        .map_err(err)?;
    clean &= staged.deltas().len() == 0;
    let entries: Vec<git2::IndexEntry> = index.iter().collect();
    let mut walk = Walk {
        files: std::collections::HashMap::with_capacity(entries.len()),
        dirs: HashSet::new(),
        gitlinks: HashSet::new(),
        written,
        clean,
        seen: 0,
        removed: 0,
    };
    for e in &entries {
        if e.flags & (STAGE | ASSUME_VALID) != 0 || e.flags_extended & INTENT_OR_SKIP != 0 {
            walk.clean = false;
        }
        if e.mode == 0o160000 {
            // A submodule's directory is its own repository's: not walked, nor removed.
            walk.gitlinks.insert(e.path.as_slice());
            walk.clean = false;
        } else {
            walk.files.insert(e.path.as_slice(), e);
        }
        let mut above = e.path.as_slice();
        while let Some(slash) = above.iter().rposition(|&b| b == b'/') {
            above = &above[..slash];
            if !walk.dirs.insert(above) {
                break;
            }
        }
    }
    let top = rustix::fs::openat(
        rustix::fs::CWD,
        path,
        dir_flags(),
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("read", path, e.into()))?;
    walk.dir(top, &mut Vec::new(), path)?;
    // A file of the index that is not there differs too.
    let clean = walk.clean && walk.seen == walk.files.len();
    Ok((walk.removed, clean))
}

/// How directories are opened by the walk: never through a link.
fn dir_flags() -> rustix::fs::OFlags {
    use rustix::fs::OFlags;
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The state of [`sweep`]'s walk: the index's files, directories and submodules by path.
struct Walk<'i> {
    files: std::collections::HashMap<&'i [u8], &'i git2::IndexEntry>,
    dirs: HashSet<&'i [u8]>,
    gitlinks: HashSet<&'i [u8]>,
    /// When the index was written (racily clean entries are read again).
    written: (i64, i64),
    clean: bool,
    seen: usize,
    removed: usize,
}

impl Walk<'_> {
    /// Walks the directory `fd`, `rel` in the worktree at `top`.
    fn dir(&mut self, fd: rustix::fd::OwnedFd, rel: &mut Vec<u8>, top: &Path) -> Result<()> {
        use std::os::unix::ffi::OsStrExt as _;
        let at = |rel: &[u8]| top.join(std::ffi::OsStr::from_bytes(rel));
        let io = |rel: &[u8], e: rustix::io::Errno| Error::io("read", &at(rel), e.into());
        let mut listing = rustix::fs::Dir::new(fd).map_err(|e| io(rel, e))?;
        let len = rel.len();
        while let Some(entry) = listing.read() {
            let entry = entry.map_err(|e| io(rel, e))?;
            let name = entry.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." || (len == 0 && bytes == b".git") {
                continue;
            }
            rel.truncate(len);
            if len > 0 {
                rel.push(b'/');
            }
            rel.extend_from_slice(bytes);
            let dir = listing.fd().map_err(|e| io(rel, e))?;
            if let Some(e) = self.files.get(rel.as_slice()).copied() {
                let seen = Seen::at(dir, name).map_err(|e| io(rel, e))?;
                let file = seen.kind == rustix::fs::FileType::RegularFile;
                if (file && seen.nlink > 1) || !(file || seen.kind == rustix::fs::FileType::Symlink)
                {
                    // Another name of it may be anywhere, the user's own files included; a
                    // FIFO or a device would have the checkout wait on it or write to it.
                    remove_at(dir, name, seen.kind)
                        .map_err(|e| Error::io("remove", &at(rel), e.into()))?;
                    self.removed += 1;
                    self.clean = false;
                    continue;
                }
                if self.clean && !seen.is(e, self.written, dir, name) {
                    self.clean = false;
                }
                self.seen += 1;
            } else if self.gitlinks.contains(rel.as_slice()) {
                continue;
            } else if self.dirs.contains(rel.as_slice()) {
                // A directory of the index: a link or a file there instead differs.
                match rustix::fs::openat(dir, name, dir_flags(), rustix::fs::Mode::empty()) {
                    Ok(sub) => self.dir(sub, rel, top)?,
                    Err(_) => self.clean = false,
                }
            } else {
                remove_at(dir, name, entry.file_type())
                    .map_err(|e| Error::io("remove", &at(rel), e.into()))?;
                self.removed += 1;
            }
        }
        rel.truncate(len);
        Ok(())
    }
}

/// What a look at one file of a worktree saw (not following a link).
struct Seen {
    kind: rustix::fs::FileType,
    exec: bool,
    nlink: u64,
    size: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Seen {
    // The widths of the stat fields differ between platforms.
    #[allow(clippy::unnecessary_cast)]
    fn at(dir: rustix::fd::BorrowedFd<'_>, name: &std::ffi::CStr) -> rustix::io::Result<Seen> {
        let st = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(Seen {
            kind: rustix::fs::FileType::from_raw_mode(st.st_mode as _),
            exec: st.st_mode as u32 & 0o100 != 0,
            nlink: st.st_nlink as u64,
            size: st.st_size as u64,
            ino: st.st_ino as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        })
    }

    /// Whether this is what the index entry `e` holds: the same kind and executable bit, and
    /// the same stat data unless that was recorded no earlier than the index was `written`
    /// (git's "racily clean" entries), else the same content (read from `name` in `dir`). A
    /// size that differs from the one recorded (not 0, which git writes for entries it must
    /// read again) differs without reading the file.
    fn is(
        &self,
        e: &git2::IndexEntry,
        written: (i64, i64),
        dir: rustix::fd::BorrowedFd<'_>,
        name: &std::ffi::CStr,
    ) -> bool {
        use rustix::fs::FileType;
        let same_kind = match e.mode {
            0o100644 => self.kind == FileType::RegularFile && !self.exec,
            0o100755 => self.kind == FileType::RegularFile && self.exec,
            0o120000 => self.kind == FileType::Symlink,
            _ => false,
        };
        // The index keeps the low 32 bits of the size and of the inode number, as git does.
        let size = u64::from(e.file_size) == self.size & 0xffff_ffff;
        if !same_kind || (e.file_size != 0 && !size) {
            return false;
        }
        let mtime = (
            i64::from(e.mtime.seconds()),
            i64::from(e.mtime.nanoseconds()),
        );
        let ctime = (
            i64::from(e.ctime.seconds()),
            i64::from(e.ctime.nanoseconds()),
        );
        let same_stat = size
            && u64::from(e.ino) == self.ino & 0xffff_ffff
            && mtime == self.mtime
            && ctime == self.ctime;
        if same_stat && mtime < written {
            return true;
        }
        content_at(dir, name, self.kind == FileType::Symlink) == Some(e.id)
    }
}

/// The blob id of the file (or of the link's target) `name` in `dir`, read without following
/// a link.
fn content_at(dir: rustix::fd::BorrowedFd<'_>, name: &std::ffi::CStr, link: bool) -> Option<Oid> {
    use rustix::fs::{Mode, OFlags};
    if link {
        let to = rustix::fs::readlinkat(dir, name, Vec::new()).ok()?;
        return Oid::hash_object(git2::ObjectType::Blob, to.as_bytes()).ok();
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).ok()?;
    // What was opened is what was looked at: a FIFO swapped in meanwhile is not read.
    if rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd).ok()?.st_mode as _)
        != rustix::fs::FileType::RegularFile
    {
        return None;
    }
    // Read as a stream through the descriptor's own name (the file opened, whatever its path
    // leads to now); where the system has no `/dev/fd`, the caller asks git's status instead.
    let through = format!("/dev/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    Oid::hash_file(git2::ObjectType::Blob, through).ok()
}

/// Removes `name` in `dir` (of `kind`, as its directory listed it), a directory with
/// everything in it, through directory handles: links are removed, never followed.
fn remove_at(
    dir: rustix::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
    kind: rustix::fs::FileType,
) -> rustix::io::Result<()> {
    use rustix::fs::{AtFlags, FileType, Mode};
    if kind != FileType::Directory && kind != FileType::Unknown {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty());
    }
    match rustix::fs::openat(dir, name, dir_flags(), Mode::empty()) {
        Ok(fd) => {
            let mut listing = rustix::fs::Dir::new(fd)?;
            while let Some(entry) = listing.read() {
                let entry = entry?;
                let child = entry.file_name();
                if child.to_bytes() != b"." && child.to_bytes() != b".." {
                    remove_at(listing.fd()?, child, entry.file_type())?;
                }
            }
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
        }
        // Not a directory (a link, or a file where the listing could not tell).
        Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())
        }
        Err(e) => Err(e),
    }
}

/// Clears the `assume-unchanged` and `skip-worktree` marks of every entry of the index of
/// `repo`, with the stat data of those entries, so that their files are read again.
fn unhide_all(repo: &Repository) -> std::result::Result<(), git2::Error> {
    const ASSUME_VALID: u16 = 0x8000;
    const SKIP_WORKTREE: u16 = 0x4000;
    let mut index = repo.index()?;
    index.read(false)?;
    let hidden: Vec<git2::IndexEntry> = index
        .iter()
        .filter(|e| e.flags & ASSUME_VALID != 0 || e.flags_extended & SKIP_WORKTREE != 0)
        .collect();
    if hidden.is_empty() {
        return Ok(());
    }
    for mut entry in hidden {
        entry.flags &= !ASSUME_VALID;
        entry.flags_extended &= !SKIP_WORKTREE;
        entry.mtime = git2::IndexTime::new(0, 0);
        entry.file_size = 0;
        index.add(&entry)?;
    }
    index.write()
}

/// Removes what is left in the worktree `repo` at `path` after a checkout of `branch` that
/// removed untracked and ignored files: whatever git still reports as untracked or ignored,
/// and directories left empty (except those of submodules, which a checkout leaves empty).
/// Links are removed as links, never followed. Anything else git reports (a file, a staged
/// change or a submodule that still differs) is an error. How many entries went.
fn clear_untracked(repo: &Repository, path: &Path, branch: &str) -> Result<usize> {
    let mut removed = 0;
    let statuses = statuses_of(repo, path, false)?;
    let mut gone: Vec<PathBuf> = Vec::new();
    for e in statuses.iter() {
        let at = e.path().unwrap_or("?").trim_end_matches('/');
        if !(e.status() - (git2::Status::WT_NEW | git2::Status::IGNORED)).is_empty() {
            return Err(Error::user(format!(
                "git: the worktree at `{}` still differs from `{branch}` after the checkout (`{at}`)",
                path.display()
            )));
        }
        gone.push(path.join(at));
    }
    for at in gone {
        remove_entry(&at)?;
        removed += 1;
    }
    removed += remove_empty_dirs(path, path, &mut Gitlinks::new(repo, path))?;
    Ok(removed)
}

/// Removes `at`, a file, a link or a directory with everything in it (links in it not followed).
pub(crate) fn remove_entry(at: &Path) -> Result<()> {
    match std::fs::symlink_metadata(at) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(at).map_err(|e| Error::io("remove", at, e)),
        Ok(_) => std::fs::remove_file(at).map_err(|e| Error::io("remove", at, e)),
        Err(_) => Ok(()),
    }
}

/// The submodules of a worktree (the gitlinks of its index), read the first time they are
/// asked for: a checkout leaves a submodule's directory empty, and it stays.
struct Gitlinks<'a> {
    repo: &'a Repository,
    worktree: &'a Path,
    read: Option<std::collections::BTreeSet<PathBuf>>,
}

impl<'a> Gitlinks<'a> {
    /// Of the worktree `repo` at `worktree`.
    fn new(repo: &'a Repository, worktree: &'a Path) -> Self {
        Gitlinks {
            repo,
            worktree,
            read: None,
        }
    }

    fn contains(&mut self, at: &Path) -> Result<bool> {
        if self.read.is_none() {
            let mut index = self
                .repo
                .index()
                .map_err(|e| git_err("read the worktree's index", e))?;
            index
                .read(false)
                .map_err(|e| git_err("read the worktree's index", e))?;
            self.read = Some(
                index
                    .iter()
                    .filter(|e| e.mode == 0o160000)
                    .map(|e| {
                        self.worktree
                            .join(String::from_utf8_lossy(&e.path).as_ref())
                    })
                    .collect(),
            );
        }
        Ok(self.read.as_ref().is_some_and(|r| r.contains(at)))
    }
}

/// Removes the empty directories under `dir` (not `dir` itself, its `.git`, or a submodule's),
/// deepest first, and the FIFOs, sockets and devices in it; how many went.
fn remove_empty_dirs(top: &Path, dir: &Path, keep: &mut Gitlinks<'_>) -> Result<usize> {
    Ok(clear_dir(top, dir, keep)?.0)
}

/// [`remove_empty_dirs`] of `dir`, reading each directory once: how many entries went, and
/// whether `dir` is empty now.
fn clear_dir(top: &Path, dir: &Path, keep: &mut Gitlinks<'_>) -> Result<(usize, bool)> {
    let (mut removed, mut left) = (0, 0);
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))?;
    for entry in entries {
        let Ok(entry) = entry else {
            left += 1;
            continue;
        };
        let at = entry.path();
        let kind = entry.file_type();
        let name = entry.file_name();
        if name != ".git"
            && name
                .to_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(".git"))
        {
            // `.GIT`, `.Git`…: git refuses to track such a name, and does not report it.
            remove_entry(&at)?;
            removed += 1;
            continue;
        }
        if kind
            .as_ref()
            .is_ok_and(|t| !(t.is_dir() || t.is_file() || t.is_symlink()))
        {
            // A FIFO, a socket or a device: git neither tracks nor reports it.
            std::fs::remove_file(&at).map_err(|e| Error::io("remove", &at, e))?;
            removed += 1;
            continue;
        }
        if !kind.is_ok_and(|t| t.is_dir()) || (dir == top && name == ".git") {
            left += 1;
            continue;
        }
        let (within, empty) = clear_dir(top, &at, keep)?;
        removed += within;
        if empty && !keep.contains(&at)? {
            std::fs::remove_dir(&at).map_err(|e| Error::io("remove", &at, e))?;
            removed += 1;
        } else {
            left += 1;
        }
    }
    Ok((removed, left == 0))
}

/// Puts the file `rel` of the worktree at `worktree` back as commit `at` has it (its HEAD when
/// `None`); nothing when that commit has no such file.
pub fn restore_from(worktree: &Path, rel: &Path, at: Option<Oid>) -> Result<()> {
    let err = |e: git2::Error| git_err("restore tasks.md in the task's worktree", e);
    let repo = Repository::open(worktree).map_err(err)?;
    let commit = match at {
        Some(at) => repo.find_commit(at),
        None => repo.head().and_then(|h| h.peel_to_commit()),
    }
    .map_err(err)?;
    if commit.tree().map_err(err)?.get_path(rel).is_err() {
        return Ok(());
    }
    let mut opts = git2::build::CheckoutBuilder::new();
    opts.force().path(rel).disable_pathspec_match(true);
    repo.checkout_tree(commit.as_object(), Some(&mut opts))
        .map_err(err)
}

/// The content of the file at `path` in `tree`, when there is one.
pub fn blob_at(repo: &Repository, tree: &git2::Tree<'_>, path: &Path) -> Option<Vec<u8>> {
    let entry = tree.get_path(path).ok()?;
    let object = entry.to_object(repo).ok()?;
    object.as_blob().map(|b| b.content().to_vec())
}

/// The value of trailer `key` (`Spec-Exec-Task: 2.1`) in a commit message.
pub fn trailer<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Whether the working tree at `path` has changes of any kind (untracked files included,
/// ignored ones not). Unreadable counts as changed: the caller keeps rather than deletes.
pub fn has_changes(path: &Path) -> bool {
    let Ok(repo) = Repository::open(path) else {
        return true;
    };
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).include_ignored(false);
    repo.statuses(Some(&mut opts))
        .map_or(true, |s| !s.is_empty())
}

/// A worktree as [`stage_all`] left it: its HEAD, and the tree its index held.
#[derive(Debug, Clone, Copy)]
pub struct Staged {
    head: Oid,
    tree: Oid,
}

/// Stages everything in the worktree at `worktree` (`.gitignore` respected), so that
/// [`restore_staged`] can put it back as it is now.
pub fn stage_all(worktree: &Path) -> Result<Staged> {
    let repo = Repository::open(worktree).map_err(|e| git_err("open the task's worktree", e))?;
    let (mut index, _) = staged_index(&repo, "the worktree's files")?;
    index
        .write()
        .map_err(|e| git_err("write the worktree's index", e))?;
    let tree = index
        .write_tree()
        .map_err(|e| git_err("write the worktree's tree", e))?;
    Ok(Staged {
        head: head_oid(&repo)?,
        tree,
    })
}

/// The index of `repo` with everything in its worktree staged (new, modified and deleted files;
/// `.gitignore` respected), not yet written, and the ignored entries left out of it (a
/// directory whole); `what` names it in an error. One pass of git's status over the worktree
/// finds both: only what differs from the index is read and staged.
fn staged_index(repo: &Repository, what: &str) -> Result<(git2::Index, Vec<PathBuf>)> {
    use std::os::unix::ffi::OsStrExt as _;
    let err = |e: git2::Error| git_err(&format!("stage {what}"), e);
    let mut opts = git2::StatusOptions::new();
    opts.show(git2::StatusShow::Workdir)
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(true)
        .recurse_ignored_dirs(false)
        .exclude_submodules(false)
        .renames_index_to_workdir(false);
    let statuses = repo.statuses(Some(&mut opts)).map_err(err)?;
    let mut index = repo
        .index()
        .map_err(|e| git_err("read the worktree's index", e))?;
    // As it is on disk now (this repository may have read it before someone changed it).
    index
        .read(false)
        .map_err(|e| git_err("read the worktree's index", e))?;
    let workdir = repo.workdir().unwrap_or(Path::new("."));
    let mut ignored = Vec::new();
    for entry in statuses.iter() {
        let status = entry.status();
        let raw = entry.path_bytes();
        let rel = Path::new(std::ffi::OsStr::from_bytes(raw));
        if status.contains(git2::Status::IGNORED) {
            ignored.push(status_path(raw));
            continue;
        }
        if raw.ends_with(b"/") {
            // An untracked directory git does not go into: a repository of its own.
            return Err(Error::user(format!(
                "git: could not stage {what}: `{}` is a git repository of its own (it holds a `.git`), and spec-exec commits files, not repositories inside the worktree; remove its `.git`, or add it as a submodule",
                rel.display().to_string().trim_end_matches('/')
            )));
        }
        // A path under a link (a directory the task replaced by one) is not in the worktree:
        // what it leads to is somewhere else.
        let meta = match under_link(workdir, rel) {
            true => None,
            false => std::fs::symlink_metadata(workdir.join(rel)).ok(),
        };
        match meta {
            Some(meta) if !(meta.is_file() || meta.is_dir() || meta.is_symlink()) => {
                // Reading a FIFO would wait for a writer; git stores no such file.
                return Err(Error::user(format!(
                    "git: could not stage {what}: `{}` is a FIFO, a socket or a device, which git cannot store; remove it, or write a file there",
                    rel.display()
                )));
            }
            Some(meta)
                if !meta.is_dir() || index.get_path(rel, 0).is_some_and(|e| e.mode == 0o160000) =>
            {
                index.add_path(rel).map_err(err)?;
            }
            // Gone, or a directory now (what is in it comes as entries of its own).
            _ => {
                index.remove_path(rel).map_err(err)?;
                if index.has_conflicts() {
                    index
                        .conflict_remove(rel)
                        .or_else(ignore_not_found)
                        .map_err(err)?;
                }
            }
        }
    }
    Ok((index, ignored))
}

/// A path as git's status gives it (bytes, a directory with a `/` after it), as a path.
fn status_path(raw: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt as _;
    PathBuf::from(std::ffi::OsStr::from_bytes(
        raw.strip_suffix(b"/").unwrap_or(raw),
    ))
}

/// Whether a directory on the way to `rel` in `workdir` is a link (or no directory at all).
fn under_link(workdir: &Path, rel: &Path) -> bool {
    rel.ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .any(|a| !std::fs::symlink_metadata(workdir.join(a)).is_ok_and(|m| m.is_dir()))
}

fn ignore_not_found(e: git2::Error) -> std::result::Result<(), git2::Error> {
    if e.code() == git2::ErrorCode::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// The commit `HEAD` of the worktree `repo` is at.
pub fn head_oid(repo: &Repository) -> Result<Oid> {
    repo.head()
        .ok()
        .and_then(|h| h.target())
        .ok_or_else(|| Error::user("git: the worktree's HEAD is unreadable"))
}

/// Puts the worktree at `worktree` back as [`stage_all`] left it (`staged`): a commit made
/// since is undone (the branch goes back; its files stay as they are in the worktree), the
/// index holds what it held, what differs from it (a file changed, deleted or retyped since)
/// is written again from it, and files added since (not ignored ones) are removed. Passes of
/// git's status find them, again after a `.gitignore` was put back (which may show files it
/// hid).
pub fn restore_staged(worktree: &Path, staged: &Staged) -> Result<()> {
    let err = |e: git2::Error| git_err("restore the worktree's files", e);
    let repo = Repository::open(worktree).map_err(|e| git_err("open the task's worktree", e))?;
    if head_oid(&repo)? != staged.head {
        let mut branch = repo.head().and_then(|h| h.resolve()).map_err(err)?;
        branch
            .set_target(staged.head, "spec-exec: undo a verify command's commit")
            .map_err(err)?;
    }
    let mut index = repo.index().map_err(err)?;
    index.read(false).map_err(err)?;
    if index.write_tree().ok() != Some(staged.tree) {
        let tree = repo.find_tree(staged.tree).map_err(err)?;
        index.read_tree(&tree).map_err(err)?;
        index.write().map_err(err)?;
    }
    for _ in 0..3 {
        let mut opts = git2::StatusOptions::new();
        opts.show(git2::StatusShow::Workdir)
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .exclude_submodules(true)
            .renames_index_to_workdir(false);
        let statuses = repo.statuses(Some(&mut opts)).map_err(err)?;
        let mut changed: Vec<(PathBuf, bool)> = Vec::new();
        for entry in statuses.iter() {
            let raw = entry.path_bytes();
            let rel = status_path(raw);
            changed.push((rel, entry.status().contains(git2::Status::WT_NEW)));
        }
        drop(statuses);
        if changed.is_empty() {
            return Ok(());
        }
        for (rel, new) in &changed {
            if *new {
                // Not under a link: what that leads to is not the worktree's.
                if !under_link(worktree, rel) {
                    remove_entry(&worktree.join(rel))?;
                    remove_empty_parents(worktree, rel);
                }
            } else {
                write_from_index(&repo, &index, worktree, rel)?;
            }
        }
    }
    Ok(())
}

/// Removes the directories above `rel` in `worktree` that are empty now.
fn remove_empty_parents(worktree: &Path, rel: &Path) {
    let mut dir = rel.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        if std::fs::remove_dir(worktree.join(d)).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Writes the file `rel` of the worktree at `worktree` as the index has it (removes it when
/// the index has none): whatever is there now goes first, and so does a file or a link where
/// a directory above it should be.
fn write_from_index(
    repo: &Repository,
    index: &git2::Index,
    worktree: &Path,
    rel: &Path,
) -> Result<()> {
    let at = worktree.join(rel);
    let mut above = PathBuf::new();
    for part in rel.parent().into_iter().flat_map(Path::components) {
        above.push(part);
        let dir = worktree.join(&above);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => remove_entry(&dir)?,
            Err(_) => {}
        }
    }
    remove_entry(&at)?;
    let Some(entry) = index.get_path(rel, 0) else {
        return Ok(());
    };
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    }
    if entry.mode == 0o160000 {
        return std::fs::create_dir_all(&at).map_err(|e| Error::io("create", &at, e));
    }
    let blob = repo
        .find_blob(entry.id)
        .map_err(|e| git_err("read a file of the worktree's index", e))?;
    if entry.mode == 0o120000 {
        use std::os::unix::ffi::OsStrExt as _;
        let target = std::ffi::OsStr::from_bytes(blob.content());
        return std::os::unix::fs::symlink(target, &at).map_err(|e| Error::io("write", &at, e));
    }
    std::fs::write(&at, blob.content()).map_err(|e| Error::io("write", &at, e))?;
    if entry.mode == 0o100755 {
        use std::os::unix::fs::PermissionsExt as _;
        let mut perms = std::fs::metadata(&at)
            .map_err(|e| Error::io("read", &at, e))?
            .permissions();
        perms.set_mode(perms.mode() | ((perms.mode() & 0o444) >> 2));
        std::fs::set_permissions(&at, perms).map_err(|e| Error::io("write", &at, e))?;
    }
    Ok(())
}

/// Stages everything in a worktree (new, modified and deleted files; `.gitignore` respected) and
/// commits it on the worktree's branch, as one commit on top of `base` when given (commits the
/// agent made itself on top of `base` are folded into it), else of HEAD. When nothing changed:
/// an empty commit with `allow_empty` (a review's verdict), else `None`.
pub fn commit_worktree(
    worktree: &Path,
    message: &str,
    sig: &Signature<'_>,
    allow_empty: bool,
    base: Option<Oid>,
) -> Result<Option<Committed>> {
    let repo = Repository::open(worktree).map_err(|e| git_err("open the task's worktree", e))?;
    commit_in(&repo, message, sig, allow_empty, base)
}

/// [`commit_worktree`] in the worktree `repo`, opened.
pub fn commit_in(
    repo: &Repository,
    message: &str,
    sig: &Signature<'_>,
    allow_empty: bool,
    base: Option<Oid>,
) -> Result<Option<Committed>> {
    let (mut index, _) = staged_index(repo, "the task's changes")?;
    index
        .write()
        .map_err(|e| git_err("write the worktree's index", e))?;
    let tree_id = index
        .write_tree()
        .map_err(|e| git_err("write the task's tree", e))?;
    let head = repo
        .head()
        .map_err(|e| git_err("read the worktree's HEAD", e))?;
    let parent = match base {
        Some(base) => repo.find_commit(base),
        None => head.peel_to_commit(),
    }
    .map_err(|e| git_err("read the task's base", e))?;
    if parent.tree_id() == tree_id && !allow_empty {
        return Ok(None);
    }
    let tree = repo
        .find_tree(tree_id)
        .map_err(|e| git_err("read the task's tree", e))?;
    let (files_changed, attributes_changed) = if parent.tree_id() == tree_id {
        (0, false)
    } else {
        let diff = repo
            .diff_tree_to_tree(
                Some(
                    &parent
                        .tree()
                        .map_err(|e| git_err("read the base tree", e))?,
                ),
                Some(&tree),
                None,
            )
            .map_err(|e| git_err("compare the task's changes", e))?;
        (diff.deltas().len(), changes_attributes(&diff))
    };
    let oid = repo
        .commit(None, sig, sig, message, &tree, &[&parent])
        .map_err(|e| git_err("commit the task's changes", e))?;
    let mut branch = head
        .resolve()
        .map_err(|e| git_err("read the worktree's branch", e))?;
    branch
        .set_target(oid, "spec-exec: commit")
        .map_err(|e| git_err("move the task's branch", e))?;
    Ok(Some(Committed {
        oid,
        files_changed,
        attributes_changed,
    }))
}

/// The paths of an index's conflicts, sorted.
fn conflicted_paths(index: &git2::Index) -> Result<Vec<String>> {
    let mut paths: Vec<String> = index
        .conflicts()
        .map_err(|e| git_err("read merge conflicts", e))?
        .filter_map(|c| c.ok())
        .filter_map(|c| c.our.or(c.their).or(c.ancestor))
        .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Merges commit `tip` into the branch checked out in `worktree`, as `git merge` would: a
/// fast-forward when the branch is behind it, a merge commit (`message`) when it merges
/// cleanly, and otherwise a merge left in progress, conflict markers in the files (labelled
/// `ours` and `theirs`) and `MERGE_HEAD` set, for [`finish_merge`] to finish.
pub fn merge_into_worktree(
    worktree: &Path,
    tip: Oid,
    labels: (&str, &str),
    message: &str,
    sig: &Signature<'_>,
) -> Result<Merged> {
    let repo = Repository::open(worktree).map_err(|e| git_err("open the task's worktree", e))?;
    let their = repo
        .find_annotated_commit(tip)
        .map_err(|e| git_err("find a dependency's commit", e))?;
    let (analysis, _) = repo
        .merge_analysis(&[&their])
        .map_err(|e| git_err("compare the branches to merge", e))?;
    if analysis.is_up_to_date() {
        return Ok(Merged::Contained);
    }
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.our_label(labels.0).their_label(labels.1);
    if analysis.is_fast_forward() {
        let commit = repo
            .find_commit(tip)
            .map_err(|e| git_err("find a dependency's commit", e))?;
        repo.checkout_tree(commit.as_object(), Some(&mut checkout))
            .map_err(|e| git_err("check out a dependency's tree", e))?;
        repo.head()
            .and_then(|mut h| h.set_target(tip, "spec-exec: fast-forward to a dependency"))
            .map_err(|e| git_err("move the task's branch", e))?;
        return Ok(Merged::Contained);
    }
    repo.merge(&[&their], None, Some(&mut checkout))
        .map_err(|e| git_err("merge a dependency's branch", e))?;
    let index = repo
        .index()
        .map_err(|e| git_err("read the worktree's index", e))?;
    let ours = head_oid(&repo)?;
    if index.has_conflicts() {
        let (entries, textual) = conflicts_of(worktree);
        return Ok(Merged::Conflicted(Conflicted {
            paths: conflicted_paths(&index)?,
            ours,
            entries,
            textual,
        }));
    }
    finish_merge(worktree, ours, tip, message, sig).map(Merged::Committed)
}

/// Ends the merge of `tip` into `ours` in `worktree`: whatever the worktree holds now
/// (staged, resolved conflicts included) is committed with `ours` and `tip` as parents, and
/// the worktree's branch moved to it. Whether the merge is still in progress or the agent
/// committed it itself, the merge commit is spec-exec's own, with its trailers. A merge that
/// was abandoned (`git merge --abort`, a reset) is refused: the result must still hold both
/// sides.
pub fn finish_merge(
    worktree: &Path,
    ours: Oid,
    tip: Oid,
    message: &str,
    sig: &Signature<'_>,
) -> Result<Oid> {
    let mut repo =
        Repository::open(worktree).map_err(|e| git_err("open the task's worktree", e))?;
    let head = head_oid(&repo)?;
    if repo.state() == git2::RepositoryState::Merge {
        let mut merging = Vec::new();
        repo.mergehead_foreach(|oid| {
            merging.push(*oid);
            true
        })
        .map_err(|e| git_err("read MERGE_HEAD", e))?;
        if head != ours || merging != [tip] {
            return Err(Error::user(
                "the merge in progress is no longer the one spec-exec started (HEAD or MERGE_HEAD changed)",
            ));
        }
    } else {
        let holds = |c: Oid| head == c || repo.graph_descendant_of(head, c).unwrap_or(false);
        if !(holds(ours) && holds(tip)) {
            return Err(Error::user(
                "the merge was abandoned (no merge is in progress, and the branch does not hold both sides)",
            ));
        }
    }
    let (mut index, _) = staged_index(&repo, "the resolved files")?;
    if index.has_conflicts() {
        return Err(Error::user(format!(
            "conflicts remain in {}",
            conflicted_paths(&index)?.join(", ")
        )));
    }
    index
        .write()
        .map_err(|e| git_err("write the worktree's index", e))?;
    let tree = index
        .write_tree()
        .and_then(|t| repo.find_tree(t))
        .map_err(|e| git_err("write the merged tree", e))?;
    let parents = [ours, tip]
        .map(|oid| repo.find_commit(oid))
        .into_iter()
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| git_err("find the merged commits", e))?;
    let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
    let oid = repo
        .commit(None, sig, sig, message, &tree, &parents)
        .map_err(|e| git_err("commit the merge", e))?;
    repo.head()
        .and_then(|mut h| h.set_target(oid, "spec-exec: merge"))
        .map_err(|e| git_err("move the task's branch", e))?;
    repo.cleanup_state()
        .map_err(|e| git_err("end the merge", e))?;
    Ok(oid)
}

/// The paths of `index`'s conflicts, as bytes, sorted.
fn conflict_entries(index: &git2::Index) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = index
        .conflicts()
        .map(|cs| {
            cs.filter_map(|c| c.ok())
                .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                .map(|e| e.path)
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all.dedup();
    all
}

/// The conflicted paths of the merge in progress in `worktree`, as bytes, and those whose
/// file has conflict markers (text conflicts).
pub fn conflicts_of(worktree: &Path) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(index) = Repository::open(worktree).and_then(|r| r.index()) else {
        return Default::default();
    };
    let all = conflict_entries(&index);
    let textual = all
        .iter()
        .filter(|raw| !markers_in(&worktree.join(std::ffi::OsStr::from_bytes(raw)), "").is_empty())
        .cloned()
        .collect();
    (all, textual)
}

/// Conflicts the agent left unresolved in `worktree`: any conflicted file that still has
/// markers (`path:line`), and paths the index still records as conflicted other than text
/// conflicts (`textual`) whose file is there without a marker: a binary, link or submodule
/// conflict, or a deleted file, is resolved only by staging it (`git add`, `git rm`).
pub fn unresolved(worktree: &Path, conflicted: &[Vec<u8>], textual: &[Vec<u8>]) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt as _;
    let file = |raw: &[u8]| worktree.join(std::ffi::OsStr::from_bytes(raw));
    let shown = |raw: &[u8]| String::from_utf8_lossy(raw).into_owned();
    let mut out = Vec::new();
    for raw in conflicted {
        out.extend(markers_in(&file(raw), &shown(raw)));
    }
    let Ok(index) = Repository::open(worktree).and_then(|r| r.index()) else {
        out.push("the worktree's index cannot be read".to_owned());
        return out;
    };
    for raw in conflict_entries(&index) {
        let text_done = textual.contains(&raw)
            && std::fs::symlink_metadata(file(&raw)).is_ok_and(|m| m.is_file());
        if !text_done {
            out.push(format!(
                "{} (not resolved: choose its content, then `git add` it, or `git rm` it)",
                shown(&raw)
            ));
        }
    }
    out
}

/// Rewrites the message of the commit at the `HEAD` of `worktree` (same tree, same parents).
pub fn amend_head_message(worktree: &Path, message: &str) -> Result<Oid> {
    let repo = Repository::open(worktree).map_err(|e| git_err("open the worktree", e))?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|e| git_err("read the worktree's HEAD", e))?;
    head.amend(Some("HEAD"), None, None, None, Some(message), None)
        .map_err(|e| git_err("record the verification", e))
}

/// The commit at the `HEAD` of `worktree`.
pub fn head_of(worktree: &Path) -> Result<Oid> {
    Repository::open(worktree)
        .and_then(|r| r.head().and_then(|h| h.peel_to_commit()).map(|c| c.id()))
        .map_err(|e| git_err("read the worktree's HEAD", e))
}

/// The bytes of `rel` at commit `at`, read through the worktree at `worktree`.
pub fn blob_at_commit(worktree: &Path, at: Oid, rel: &Path) -> Option<Vec<u8>> {
    let repo = Repository::open(worktree).ok()?;
    let tree = repo.find_commit(at).ok()?.tree().ok()?;
    blob_at(&repo, &tree, rel)
}

/// The bytes of `rel` at the `HEAD` of the worktree at `worktree`.
pub fn blob_at_head(worktree: &Path, rel: &Path) -> Option<Vec<u8>> {
    let repo = Repository::open(worktree).ok()?;
    let tree = repo.head().ok()?.peel_to_tree().ok()?;
    blob_at(&repo, &tree, rel)
}

/// The conflict markers in the file at `file` (shown as `shown`): `shown:line` of each marker
/// line, at most three. A `=======` or `|||||||` line counts only after a `<<<<<<<` one, as
/// markdown uses `=======` for headings.
fn markers_in(file: &Path, shown: &str) -> Vec<String> {
    let Ok(bytes) = std::fs::read(file) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut open = false;
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let marker = |m: &[u8]| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest[0] == b' ')
        };
        let hit = if marker(b"<<<<<<<") {
            open = true;
            true
        } else {
            marker(b">>>>>>>") || (open && (line == b"=======" || marker(b"|||||||")))
        };
        if hit {
            found.push(format!("{shown}:{}", n + 1));
            if found.len() == 3 {
                break;
            }
        }
    }
    found
}

/// The trailers of a merge an agent resolved and of work that passed verification: the
/// resolved paths (when any), then a line per verify command.
pub fn outcome_trailers(resolved: &[String], verified: &[String]) -> String {
    let mut t = String::new();
    if !resolved.is_empty() {
        t.push_str(&format!("{RESOLVED_TRAILER}: {}\n", resolved.join(", ")));
    }
    for v in verified {
        t.push_str(&format!("{VERIFIED_TRAILER}: {v}\n"));
    }
    t
}

/// `<feature>: <id> <title>` with trailers naming the feature and the task.
pub fn commit_message(feature: &str, id: &str, title: &str) -> String {
    format!("{feature}: {id} {title}\n\n{FEATURE_TRAILER}: {feature}\n{TASK_TRAILER}: {id}\n")
}

/// Whether checking out `tree` in `repo` writes every file as its blob: no end-of-line
/// conversion (`core.autocrlf` is not `true`) and no attribute anywhere, that could ask for
/// one or for `ident` or a filter driver: no `.gitattributes` in the tree, no
/// `info/attributes`, no `core.attributesFile`, no attributes file in git's user or system
/// configuration directories. Anything unsure says no.
fn no_filters_apply(repo: &Repository, tree: &git2::Tree<'_>) -> bool {
    let Ok(config) = repo.config() else {
        return false;
    };
    let autocrlf_off = match config.get_string("core.autocrlf") {
        Err(e) => e.code() == git2::ErrorCode::NotFound,
        Ok(v) => v.eq_ignore_ascii_case("input") || config.get_bool("core.autocrlf") == Ok(false),
    };
    if !autocrlf_off || config.get_entry("core.attributesFile").is_ok() {
        return false;
    }
    let mut files = vec![
        repo.commondir().join("info/attributes"),
        repo.path().join("info/attributes"),
        PathBuf::from("/etc/gitattributes"),
    ];
    files.extend(user_dirs().xdg_git.iter().map(|x| x.join("attributes")));
    if let Ok(system) = git2::Config::find_system() {
        files.extend(system.parent().map(|d| d.join("gitattributes")));
    }
    if files.iter().any(|f| std::fs::symlink_metadata(f).is_ok()) {
        return false;
    }
    let mut found = false;
    let walked = tree.walk(git2::TreeWalkMode::PreOrder, |_, entry| {
        if entry.name_bytes() == b".gitattributes" {
            found = true;
            git2::TreeWalkResult::Abort
        } else {
            git2::TreeWalkResult::Ok
        }
    });
    walked.is_ok() && !found
}

/// Whether `diff` adds, changes or removes a `.gitattributes`: files it does not change may
/// be checked out differently on either side.
fn changes_attributes(diff: &git2::Diff<'_>) -> bool {
    let attributes = |f: git2::DiffFile<'_>| {
        f.path_bytes()
            .is_some_and(|p| p.rsplit(|&b| b == b'/').next() == Some(b".gitattributes"))
    };
    diff.deltas()
        .any(|d| attributes(d.old_file()) || attributes(d.new_file()))
}

/// The directories `path` is in, innermost first: `a/b` and `a` for `a/b/c`.
fn dirs_of(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut end = path.len();
    std::iter::from_fn(move || {
        end = path[..end].iter().rposition(|&b| b == b'/')?;
        Some(&path[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repeatable stream of numbers below the `n` each call asks for (xorshift from `seed`).
    fn below(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        }
    }

    /// A slot's repository kept open from its last task holds that task's index in memory:
    /// when the index file is gone by the next move (a process the task left removed it), the
    /// move writes it again, even where no path of the tree has to change.
    #[test]
    fn a_move_writes_again_an_index_removed_since_the_last_task() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main");
        let repo = Repository::init(&main).unwrap();
        std::fs::write(main.join("a.txt"), "a\n").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("a.txt")).unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        let base = repo
            .commit(Some("HEAD"), &sig, &sig, "base", &tree, &[])
            .unwrap();
        drop(tree);
        let git = Git { repo };
        git.set_branch("one", base, false).unwrap();
        git.set_branch("two", base, false).unwrap();
        let slot = dir.path().join("slot");
        git.add_worktree("slot", &slot, "one").unwrap();
        let kept = check_linked_reusing(&git.common_dir(), "slot", &slot, None).unwrap();
        git.detach_in(&kept.repo()).unwrap();
        assert_eq!(kept.repo().index().unwrap().len(), 1);
        let file = git.common_dir().join("worktrees/slot/index");
        std::fs::remove_file(&file).unwrap();

        git.move_worktree("slot", &slot, "two", Some(kept)).unwrap();
        assert!(file.is_file(), "the index was not written again");
        let wt = Repository::open(&slot).unwrap();
        assert_eq!(wt.statuses(None).unwrap().len(), 0);
    }

    /// A slot is made without looking up each file's attributes only where none can apply:
    /// `eol` in `.gitattributes`, `ident` in `info/attributes` and `core.autocrlf` still
    /// convert the files written, and a repository with none of them gets its blobs as they are.
    #[test]
    fn a_slot_is_made_with_the_filters_its_attributes_ask_for() {
        let make = |setup: &dyn Fn(&Path, &Repository)| -> (bool, Vec<u8>) {
            let dir = tempfile::tempdir().unwrap();
            let main = dir.path().join("main");
            let repo = Repository::init(&main).unwrap();
            std::fs::write(main.join("a.txt"), "$Id$\none\n").unwrap();
            setup(&main, &repo);
            let mut index = repo.index().unwrap();
            index
                .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
                .unwrap();
            let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
            let sig = Signature::now("t", "t@example.com").unwrap();
            let base = repo
                .commit(Some("HEAD"), &sig, &sig, "base", &tree, &[])
                .unwrap();
            let none = no_filters_apply(&repo, &repo.find_commit(base).unwrap().tree().unwrap());
            drop(tree);
            let git = Git { repo };
            git.set_branch("one", base, false).unwrap();
            let slot = dir.path().join("slot");
            git.add_worktree("slot", &slot, "one").unwrap();
            (none, std::fs::read(slot.join("a.txt")).unwrap())
        };
        let eol = make(&|main, _| {
            std::fs::write(main.join(".gitattributes"), "*.txt text eol=crlf\n").unwrap();
        });
        assert_eq!(eol, (false, b"$Id$\r\none\r\n".to_vec()));
        let autocrlf = make(&|_, repo| {
            repo.config()
                .unwrap()
                .set_bool("core.autocrlf", true)
                .unwrap();
        });
        assert_eq!(autocrlf, (false, b"$Id$\r\none\r\n".to_vec()));
        let (none, ident) = make(&|main, _| {
            std::fs::write(main.join(".git/info/attributes"), "*.txt ident\n").unwrap();
        });
        assert!(!none);
        assert!(
            ident.starts_with(b"$Id: "),
            "{}",
            String::from_utf8_lossy(&ident)
        );
        let (none, plain) = make(&|_, _| {});
        assert_eq!(plain, b"$Id$\none\n");
        // Unless this machine's own git configuration has attributes.
        let user = user_dirs().xdg_git.as_ref().map(|x| x.join("attributes"));
        if !user.is_some_and(|f| f.exists()) && !Path::new("/etc/gitattributes").exists() {
            assert!(none);
        }
    }

    /// A change to a file the repository's configuration includes changes its stamp, as a
    /// change to the configuration itself does: the repositories kept open are opened again.
    #[test]
    fn a_change_to_an_included_configuration_file_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let git_dir = dir.path();
        std::fs::write(
            git_dir.join("config"),
            "[core]\n\tbare = false\n[include]\n\tpath = extra.cfg\n[includeIf \"gitdir:/nowhere/\"]\n\tpath = other.cfg\n",
        )
        .unwrap();
        std::fs::write(git_dir.join("extra.cfg"), "[user]\n\tname = A\n").unwrap();
        let before = ConfigStamp::of(git_dir, git_dir);
        assert_eq!(before, ConfigStamp::of(git_dir, git_dir));
        std::fs::write(git_dir.join("extra.cfg"), "[user]\n\tname = Someone else\n").unwrap();
        let after = ConfigStamp::of(git_dir, git_dir);
        assert_ne!(before, after);
        // A file included only under a condition counts too, once it is there.
        std::fs::write(
            git_dir.join("other.cfg"),
            "[user]\n\temail = b@example.com\n",
        )
        .unwrap();
        assert_ne!(after, ConfigStamp::of(git_dir, git_dir));
    }

    /// The walk of a move reads a file's or a link's blob id through its directory's handle.
    #[test]
    fn content_is_read_through_the_directory_handle() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "content\n").unwrap();
        std::os::unix::fs::symlink("file", dir.path().join("link")).unwrap();
        let fd = rustix::fs::openat(
            rustix::fs::CWD,
            dir.path(),
            dir_flags(),
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let blob = |bytes: &[u8]| Oid::hash_object(git2::ObjectType::Blob, bytes).ok();
        let at = |name: &str, link| {
            content_at(
                std::os::fd::AsFd::as_fd(&fd),
                &std::ffi::CString::new(name).unwrap(),
                link,
            )
        };
        assert_eq!(at("file", false), blob(b"content\n"));
        assert_eq!(at("link", true), blob(b"file"));
        // A link is never followed to its target's content.
        assert_eq!(at("link", false), None);
    }

    #[test]
    fn ids_become_safe_ref_components() {
        assert_eq!(ref_safe("2.1"), "2.1");
        assert_eq!(ref_safe("CR-A"), "CR-A");
        assert_eq!(ref_safe("../../evil"), "evil");
        assert_eq!(ref_safe("a b:c~d^e"), "a-b-c-d-e");
        assert_eq!(ref_safe("x.lock"), "x.lock_");
        assert_eq!(ref_safe(".."), "task");
        for id in ["2.1", "CR-FINAL", "T001", "../x", "a@{b", "x.lock", "日本"] {
            let name = branch_name("spec", "user-auth", id);
            assert!(
                git2::Reference::is_valid_name(&format!("refs/heads/{name}")),
                "{name}"
            );
            assert_eq!(name.matches('/').count(), 2, "{name}");
        }
    }

    /// Two sides that change paths apart from each other are merged by writing one side's
    /// changes into the other's tree: the same tree as the whole merge, over random changes
    /// (files added, changed, removed, made executable or links, turned into directories and
    /// back, directories emptied); changes that meet are left to the whole merge.
    #[test]
    fn changes_apart_merge_as_the_whole_merge_does() {
        use std::collections::BTreeMap;
        let mut next = below(0x2545_f491_4f6c_dd1d);
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        type Files = BTreeMap<String, (String, git2::FileMode)>;
        let commit = |files: &Files, parents: &[&git2::Commit<'_>]| -> Oid {
            let mut index = git2::Index::new().unwrap();
            for (path, (text, mode)) in files {
                let id = repo.blob(text.as_bytes()).unwrap();
                let entry = git2::IndexEntry {
                    ctime: git2::IndexTime::new(0, 0),
                    mtime: git2::IndexTime::new(0, 0),
                    dev: 0,
                    ino: 0,
                    mode: u32::try_from(i32::from(*mode)).unwrap(),
                    uid: 0,
                    gid: 0,
                    file_size: 0,
                    id,
                    flags: 0,
                    flags_extended: 0,
                    path: path.as_bytes().to_vec(),
                };
                index.add(&entry).unwrap();
            }
            let tree = repo.find_tree(index.write_tree_to(&repo).unwrap()).unwrap();
            repo.commit(None, &sig, &sig, "c", &tree, parents).unwrap()
        };
        let git = Git {
            repo: Repository::open(dir.path()).unwrap(),
        };
        let (mut apart, mut met) = (0, 0);
        for trial in 0..150 {
            let mut base = Files::new();
            for i in 0..12 {
                let path = match next(3) {
                    0 => format!("f{i}"),
                    1 => format!("d{}/f{i}", next(3)),
                    _ => format!("d{}/e{}/f{i}", next(3), next(2)),
                };
                base.insert(path, (format!("{i}\n"), git2::FileMode::Blob));
            }
            let change = |files: &Files, next: &mut dyn FnMut(usize) -> usize, side: &str| {
                let mut files = files.clone();
                for k in 0..1 + next(3) {
                    let paths: Vec<String> = files.keys().cloned().collect();
                    let some = paths[next(paths.len())].clone();
                    match next(8) {
                        0 => {
                            files.insert(
                                format!("d{}/n{side}{k}", next(4)),
                                (format!("{side}\n"), git2::FileMode::Blob),
                            );
                        }
                        1 => {
                            files.insert(some, (format!("{side}{k}\n"), git2::FileMode::Blob));
                        }
                        2 => {
                            files.remove(&some);
                        }
                        3 => {
                            files.get_mut(&some).unwrap().1 = git2::FileMode::BlobExecutable;
                        }
                        4 => {
                            files.insert(some, ("target".to_owned(), git2::FileMode::Link));
                        }
                        5 => {
                            // A file becomes a directory.
                            let text = files.remove(&some).unwrap();
                            files.insert(format!("{some}/inner"), text);
                        }
                        6 => {
                            // A directory becomes a file.
                            let d = format!("d{}", next(3));
                            files.retain(|p, _| !p.starts_with(&format!("{d}/")));
                            files.insert(d, (side.to_owned(), git2::FileMode::Blob));
                        }
                        _ => {
                            // A directory emptied.
                            let d = format!("d{}/", next(3));
                            files.retain(|p, _| !p.starts_with(&d));
                        }
                    }
                }
                files
            };
            let b = commit(&base, &[]);
            let b_commit = git.repo.find_commit(b).unwrap();
            let ours = change(&base, &mut next, "o");
            let theirs = change(&base, &mut next, "t");
            let o = git.repo.find_commit(commit(&ours, &[&b_commit])).unwrap();
            let t = git.repo.find_commit(commit(&theirs, &[&b_commit])).unwrap();
            let Some(fast) = git.merge_apart(b, &o, &t) else {
                met += 1;
                continue;
            };
            apart += 1;
            let mut whole = git.merge_over(b, &o, &t).unwrap();
            assert!(
                !whole.has_conflicts(),
                "trial {trial}: apart, yet in conflict"
            );
            assert_eq!(
                fast,
                whole.write_tree_to(&git.repo).unwrap(),
                "trial {trial}: base {base:?}\nours {ours:?}\ntheirs {theirs:?}"
            );
        }
        assert!(apart > 30 && met > 30, "{apart} apart, {met} met");
    }

    /// What the tips add to a commit, and which of them another holds, told by two walks:
    /// the same as asking of each tip and each pair.
    #[test]
    fn merging_many_tips_from_what_is_held_merges_as_walking_for_each_base() {
        // Random histories of task commits (each adds a file, some change an ancestor's file,
        // some are merges of two earlier commits), merged from their heads both ways: the
        // same tree, or a conflict both ways.
        let mut next = below(0x9e37_79b9_7f4a_7c15);
        for trial in 0..12 {
            let dir = tempfile::tempdir().unwrap();
            let repo = Repository::init(dir.path()).unwrap();
            let sig = Signature::now("t", "t@example.com").unwrap();
            let write = |tree: Option<&git2::Tree<'_>>, path: &str, text: &str| -> Oid {
                let blob = repo.blob(text.as_bytes()).unwrap();
                let mut b = repo.treebuilder(tree).unwrap();
                b.insert(path, blob, 0o100644).unwrap();
                b.write().unwrap()
            };
            let root_tree = write(None, "base.txt", "base\n");
            let root = {
                let tree = repo.find_tree(root_tree).unwrap();
                repo.commit(None, &sig, &sig, "root", &tree, &[]).unwrap()
            };
            let mut commits = vec![root];
            let mut parent_of = std::collections::HashSet::new();
            for i in 1..40 {
                let a = commits[next(commits.len())];
                let a_commit = repo.find_commit(a).unwrap();
                let mut tree = a_commit.tree().unwrap();
                let mut parents = vec![a_commit];
                if i > 3 && next(3) == 0 {
                    let b = commits[next(commits.len())];
                    if b != a
                        && !repo.graph_descendant_of(a, b).unwrap()
                        && !repo.graph_descendant_of(b, a).unwrap()
                    {
                        let b_commit = repo.find_commit(b).unwrap();
                        let mut index = repo.merge_commits(&parents[0], &b_commit, None).unwrap();
                        if index.has_conflicts() {
                            continue;
                        }
                        tree = repo.find_tree(index.write_tree_to(&repo).unwrap()).unwrap();
                        parents.push(b_commit);
                    }
                }
                let mut id = write(Some(&tree), &format!("f{i}.txt"), &format!("{i}\n"));
                if trial % 2 == 1 && next(4) == 0 && i > 1 {
                    // Change an earlier commit's file (a later merge may conflict).
                    let t = repo.find_tree(id).unwrap();
                    let j = 1 + next(i - 1);
                    if t.get_name(&format!("f{j}.txt")).is_some() {
                        id = write(Some(&t), &format!("f{j}.txt"), &format!("{j} by {i}\n"));
                    }
                }
                let tree = repo.find_tree(id).unwrap();
                let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
                let c = repo
                    .commit(None, &sig, &sig, &format!("c{i}"), &tree, &refs)
                    .unwrap();
                for p in &parents {
                    parent_of.insert(p.id());
                }
                commits.push(c);
            }
            let heads: Vec<Oid> = commits
                .iter()
                .copied()
                .filter(|c| !parent_of.contains(c))
                .collect();
            let git = Git { repo };
            let mut tips = vec![("base".to_owned(), root)];
            tips.extend(heads.iter().map(|&h| (h.to_string(), h)));
            let tree_of = |r: std::result::Result<Oid, Conflict>| {
                r.map(|oid| git.repo.find_commit(oid).unwrap().tree_id())
                    .map_err(|c| c.paths)
            };
            let walked = tree_of(git.merge_tips_with(&tips, "m", false).unwrap());
            let held = tree_of(git.merge_tips_with(&tips, "m", true).unwrap());
            assert_eq!(held, walked, "trial {trial}, {} heads", heads.len());
        }
    }

    #[test]
    fn tips_over_a_commit_as_each_pair_tells() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let [root, at, a, b, c, m, d, old] = {
            let sig = Signature::now("t", "t@example.com").unwrap();
            let id = repo.treebuilder(None).unwrap().write().unwrap();
            let tree = repo.find_tree(id).unwrap();
            let commit = |msg: &str, parents: &[Oid]| -> Oid {
                let parents: Vec<git2::Commit<'_>> = parents
                    .iter()
                    .map(|&p| repo.find_commit(p).unwrap())
                    .collect();
                let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
                repo.commit(None, &sig, &sig, msg, &tree, &refs).unwrap()
            };
            let root = commit("root", &[]);
            let at = commit("at", &[root]);
            let a = commit("a", &[at]);
            let b = commit("b", &[a]);
            let c = commit("c", &[at]);
            let m = commit("m", &[b, c]);
            let d = commit("d", &[at]);
            let old = commit("old", &[root]);
            [root, at, a, b, c, m, d, old]
        };
        let git = Git { repo };
        let tips = [a, b, c, m, d, d, at, root, old];
        let (added, behind) = git.tips_over(at, &tips).unwrap();
        let is_added: Vec<bool> = tips.iter().map(|t| added.contains(t)).collect();
        let is_held: Vec<bool> = tips
            .iter()
            .map(|t| added.contains(t) && behind.contains(t))
            .collect();
        let pairwise_added: Vec<bool> = tips.iter().map(|&t| !git.contains(at, t)).collect();
        let pairwise_held: Vec<bool> = tips
            .iter()
            .map(|&t| !git.contains(at, t) && tips.iter().any(|&u| u != t && git.contains(u, t)))
            .collect();
        assert_eq!(is_added, pairwise_added);
        assert_eq!(is_held, pairwise_held);
        assert_eq!(
            is_held,
            [true, true, true, false, false, false, false, false, false]
        );
        assert_eq!(
            is_added,
            [true, true, true, true, true, true, false, false, true]
        );
    }

    #[test]
    fn one_status_pass_stages_what_adding_and_updating_everything_stages() {
        use std::os::unix::fs::{PermissionsExt as _, symlink};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        let write = |rel: &str, text: &str| {
            let at = root.join(rel);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(at, text).unwrap();
        };
        write(".gitignore", "*.log\nbuild/\n");
        for rel in [
            "a.txt",
            "b.txt",
            "c.txt",
            "mode.sh",
            "d/one.txt",
            "d/two.txt",
            "e/x.txt",
            "f",
            "kept.log",
            "keep/deep/k.txt",
            "conflict.txt",
        ] {
            write(rel, &format!("{rel}\n"));
        }
        symlink("a.txt", root.join("link")).unwrap();
        symlink("b.txt", root.join("to-file")).unwrap();
        {
            let mut index = repo.index().unwrap();
            index
                .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
                .unwrap();
            // Tracked although ignored.
            index.add_path(Path::new("kept.log")).unwrap();
            index.write().unwrap();
            let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
            let sig = Signature::now("t", "t@example.com").unwrap();
            repo.commit(Some("HEAD"), &sig, &sig, "base", &tree, &[])
                .unwrap();
        }
        // Every kind of change a task makes.
        write("a.txt", "changed\n");
        std::fs::remove_file(root.join("b.txt")).unwrap();
        std::fs::set_permissions(root.join("mode.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::remove_dir_all(root.join("d")).unwrap();
        write("d", "a file where a directory was\n");
        std::fs::remove_file(root.join("f")).unwrap();
        write("f/inside.txt", "a directory where a file was\n");
        std::fs::remove_file(root.join("link")).unwrap();
        symlink("c.txt", root.join("link")).unwrap();
        std::fs::remove_file(root.join("to-file")).unwrap();
        write("to-file", "a file where a link was\n");
        std::fs::remove_file(root.join("c.txt")).unwrap();
        symlink("a.txt", root.join("c.txt")).unwrap();
        write("new/deep/n.txt", "new\n");
        write("top.txt", "new\n");
        // A directory replaced by a link to one holding a file of the same name.
        std::fs::remove_dir_all(root.join("e")).unwrap();
        write("other/x.txt", "not e's\n");
        symlink("other", root.join("e")).unwrap();
        write("kept.log", "tracked and ignored, changed\n");
        write("other.log", "ignored\n");
        write("build/out.o", "ignored\n");
        std::fs::create_dir_all(root.join("empty/dir")).unwrap();
        std::fs::remove_dir_all(root.join("keep/deep")).unwrap();
        {
            // A conflict the task resolved: all three stages in the index.
            let mut index = repo.index().unwrap();
            index.remove_path(Path::new("conflict.txt")).unwrap();
            for (n, text) in [(1u16, "o\n"), (2, "a\n"), (3, "b\n")] {
                let time = git2::IndexTime::new(0, 0);
                index
                    .add(&git2::IndexEntry {
                        ctime: time,
                        mtime: time,
                        dev: 0,
                        ino: 0,
                        mode: 0o100644,
                        uid: 0,
                        gid: 0,
                        file_size: 0,
                        id: repo.blob(text.as_bytes()).unwrap(),
                        flags: n << 12 | "conflict.txt".len() as u16,
                        flags_extended: 0,
                        path: b"conflict.txt".to_vec(),
                    })
                    .unwrap();
            }
            assert!(index.has_conflicts());
            index.write().unwrap();
            write("conflict.txt", "resolved\n");
        }

        let oracle = {
            let repo = Repository::open(root).unwrap();
            let mut index = repo.index().unwrap();
            index
                .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
                .unwrap();
            index.update_all(["*"], None).unwrap();
            assert!(!index.has_conflicts());
            index.write_tree_to(&repo).unwrap()
        };
        let repo = Repository::open(root).unwrap();
        let (mut index, mut ignored) = staged_index(&repo, "the test's changes").unwrap();
        assert!(!index.has_conflicts());
        assert_eq!(index.write_tree_to(&repo).unwrap(), oracle);
        ignored.sort();
        assert_eq!(
            ignored,
            [PathBuf::from("build"), PathBuf::from("other.log")],
            "the ignored entries, a directory whole"
        );

        // A repository of its own inside the worktree is refused, and says what it is.
        Repository::init(root.join("nested")).unwrap();
        std::fs::write(root.join("nested/x.txt"), "x\n").unwrap();
        let repo = Repository::open(root).unwrap();
        let Err(err) = staged_index(&repo, "the test's changes") else {
            panic!("a nested repository was staged");
        };
        let err = err.to_string();
        assert!(
            err.contains("`nested` is a git repository of its own"),
            "{err}"
        );
    }
}
