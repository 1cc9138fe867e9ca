//! `cargo spec-exec clean [FEATURE]`: removes the run state of finished work from
//! `<git-common-dir>/spec-exec/<feature>/` (see [`crate::exec::state`]) and says how many bytes
//! that frees.
//!
//! What goes: the worktrees of finished tasks (the task's branch holds its commit, the worktree
//! has it checked out and nothing uncommitted), git's records of the feature's worktrees whose
//! directory is gone, and all but the newest `--keep` run directories. With `--leftovers`, also
//! the kept worktrees (failed tasks', ones with uncommitted changes, ones git has no record of)
//! and the moved-aside copies in `leftovers/`. Branches are never deleted, the user's working
//! tree, index and HEAD are never touched, and no link is followed: a link is removed as a link.
//!
//! A feature whose run lock another process holds (a run going on) is skipped whole; for the
//! others the lock is held while they are cleaned, so that no run starts meanwhile.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::cli::CleanCommand;
use crate::error::{Diagnostic, Error, Result, exit};
use crate::exec::slots;
use crate::exec::state::{state_dir, worktree_prefix};
use crate::fsutil::human_size;
use crate::git::{self, Git};
use crate::output::Shell;
use crate::source::display_path;
use crate::spec;
use crate::workspace::Workspace;

/// What a removed thing was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A finished task's worktree.
    Finished,
    /// A worktree kept for inspection (`--leftovers`).
    Kept,
    /// git's record of a worktree whose directory is gone.
    Record,
    /// A link where a worktree was.
    Link,
    /// A worktree directory git has no record of.
    Unrecorded,
    /// A run directory.
    Run,
    /// A moved-aside copy in leftovers/ (`--leftovers`).
    Leftover,
    /// A free worktree slot, kept for the next run.
    Slot,
    /// A slot's build directory (or the shared target, or the integration's).
    Build,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Finished => "finished-worktree",
            Kind::Kept => "kept-worktree",
            Kind::Record => "stale-record",
            Kind::Link => "link",
            Kind::Unrecorded => "unrecorded-worktree",
            Kind::Run => "run",
            Kind::Leftover => "leftover",
            Kind::Slot => "slot",
            Kind::Build => "build-dir",
        }
    }
}

/// How a thing is removed.
#[derive(Debug, Clone)]
enum How {
    /// A registered worktree: its directory and git's record ([`Git::remove_worktree`]).
    Worktree { name: String },
    /// git's record only ([`Git::forget_worktree`]).
    Record { name: String },
    /// A link where a registered worktree was: the link, then git's record.
    Link { name: String },
    /// A path of the state directory: a link or file as itself, a directory with what it
    /// holds (never following links).
    Path,
}

/// One thing to remove.
#[derive(Debug, Clone)]
struct Item {
    kind: Kind,
    path: PathBuf,
    /// What it is, for the status line.
    what: String,
    bytes: u64,
    how: How,
}

/// One thing left in place, and why.
#[derive(Debug, Clone)]
struct Keep {
    path: PathBuf,
    why: String,
}

/// What cleaning a feature's run state will do.
#[derive(Debug, Default)]
struct Survey {
    remove: Vec<Item>,
    keep: Vec<Keep>,
    /// Things left alone that are not the feature's to clean, for a status line.
    skipped: Vec<String>,
}

/// The totals of the whole command.
#[derive(Debug, Default)]
struct Totals {
    items: usize,
    bytes: u64,
    failed: usize,
    /// Features cleaned.
    features: usize,
    /// Features skipped: a run of them is going on.
    running: usize,
}

pub fn clean(shell: &Shell, ws: &Workspace, cmd: &CleanCommand) -> Result<i32> {
    let git = Git::open(&ws.root)?;
    let common = git.common_dir();
    let features = match &cmd.feature {
        Some(name) => match feature_to_clean(ws, &common, name)? {
            Some(feature) => vec![feature],
            None => Vec::new(),
        },
        None => features_with_state(&common),
    };
    let mut totals = Totals::default();
    for feature in &features {
        clean_feature(shell, ws, &git, feature, cmd, &mut totals);
    }
    finish(shell, ws, &common, cmd, &totals);
    Ok(if totals.failed > 0 {
        exit::TASKS_FAILED
    } else {
        exit::OK
    })
}

/// The feature `name` names, by its name or its spec's path, when it has run state; `None`
/// (with nothing to clean) when it is a feature without any. A name that is neither is an
/// error, as is one that could lead out of the state directory.
fn feature_to_clean(ws: &Workspace, common: &Path, name: &str) -> Result<Option<String>> {
    let is_state =
        |n: &str| std::fs::symlink_metadata(state_dir(common, n)).is_ok_and(|m| m.is_dir());
    if !name.contains('/') {
        spec::validate_name(name)?;
        if is_state(name) {
            return Ok(Some(name.to_owned()));
        }
    }
    // A feature of the workspace (by a spec-kit number, or by its path), with or without run
    // state.
    let all = super::all_features(ws).unwrap_or_default();
    let found = spec::pick(&all, &ws.root, &ws.features_dir(), name);
    match found {
        Ok(feature) => Ok(is_state(&feature.name).then_some(feature.name)),
        // A path, or a name that fits several features: their own error says which.
        Err(e) if name.contains('/') || all.iter().any(|f| fits(&f.name, name)) => Err(e),
        Err(_) => {
            let with_state = features_with_state(common);
            let shown = display_path(&common.join("spec-exec"), &ws.root);
            Err(Error::user_with_help(
                format!(
                    "no feature `{name}`: it has no spec and no run state in `{}`",
                    shown.display()
                ),
                if with_state.is_empty() {
                    "no feature has run state: there is nothing to clean".to_owned()
                } else {
                    format!(
                        "features with run state: {} (`cargo spec-exec clean` cleans them all)",
                        with_state.join(", ")
                    )
                },
            ))
        }
    }
}

/// Whether `name` names the feature `feature` as `spec::pick` reads it: its name, or for a
/// numbered spec-kit directory (`001-user-auth`) the number or the rest.
fn fits(feature: &str, name: &str) -> bool {
    feature == name
        || feature.split_once('-').is_some_and(|(num, rest)| {
            !num.is_empty()
                && num.bytes().all(|b| b.is_ascii_digit())
                && (num == name || rest == name)
        })
}

/// The features with a state directory: real directories under `<common>/spec-exec/` whose
/// names are feature names.
fn features_with_state(common: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(common.join("spec-exec")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| spec::validate_name(n).is_ok())
        .collect();
    out.sort();
    out
}

/// Cleans one feature's run state, unless a run of it is going on.
fn clean_feature(
    shell: &Shell,
    ws: &Workspace,
    git: &Git,
    feature: &str,
    cmd: &CleanCommand,
    totals: &mut Totals,
) {
    let dir = state_dir(&git.common_dir(), feature);
    let shown = |p: &Path| display_path(p, &ws.root).display().to_string();
    let _lock = match hold_lock(&dir.join("run.lock"), cmd.dry_run) {
        Ok(lock) => lock,
        Err(Held::Running(pid)) => {
            totals.running += 1;
            let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            if shell.is_json() {
                shell.json(&serde_json::json!({
                    "type": "clean-skipped",
                    "feature": feature,
                    "reason": "running",
                    "lock": dir.join("run.lock"),
                }));
            } else {
                shell.status(
                    "Skipped",
                    format!(
                        "{feature}: a run of it is in progress{pid}, holding `{}`; nothing of it was touched",
                        shown(&dir.join("run.lock"))
                    ),
                );
            }
            return;
        }
        Err(Held::Error(e)) => {
            totals.failed += 1;
            shell.diagnostic(
                &Diagnostic::error(format!("could not clean `{feature}`: {e}"))
                    .help("check the permissions of the repository's git directory"),
            );
            return;
        }
    };
    totals.features += 1;
    let survey = survey(git, ws, feature, &dir, cmd);
    for text in &survey.skipped {
        if !shell.is_json() {
            shell.status("Skipped", text);
        }
    }
    for item in &survey.remove {
        let result = if cmd.dry_run {
            Ok(())
        } else {
            remove(git, item)
        };
        match result {
            Ok(()) => {
                totals.items += 1;
                totals.bytes += item.bytes;
                report_item(shell, ws, feature, item, cmd.dry_run);
            }
            Err(e) => {
                totals.failed += 1;
                shell.diagnostic(
                    &Diagnostic::error(format!(
                        "could not remove {} ({}): {e}",
                        shown(&item.path),
                        item.what
                    ))
                    .help("check its permissions, or remove it by hand; the rest was cleaned"),
                );
            }
        }
    }
    for keep in &survey.keep {
        if shell.is_json() {
            shell.json(&serde_json::json!({
                "type": "clean-kept",
                "feature": feature,
                "path": keep.path,
                "reason": keep.why,
            }));
        } else {
            shell.status("Kept", format!("{} ({})", shown(&keep.path), keep.why));
        }
    }
}

/// The status or JSON line of a removed (or, with `--dry-run`, removable) thing.
fn report_item(shell: &Shell, ws: &Workspace, feature: &str, item: &Item, dry_run: bool) {
    if shell.is_json() {
        shell.json(&serde_json::json!({
            "type": "clean-removed",
            "feature": feature,
            "kind": item.kind.name(),
            "path": item.path,
            "bytes": item.bytes,
            "dry_run": dry_run,
        }));
        return;
    }
    let verb = match (item.kind, dry_run) {
        (Kind::Record, false) => "Pruned",
        (Kind::Record, true) => "Would prune",
        (_, false) => "Removed",
        (_, true) => "Would remove",
    };
    shell.status(
        verb,
        format!(
            "{} ({}, {})",
            display_path(&item.path, &ws.root).display(),
            human_size(item.bytes),
            item.what
        ),
    );
}

/// The summary line: how much was freed (or, with `--dry-run`, would be).
fn finish(shell: &Shell, ws: &Workspace, common: &Path, cmd: &CleanCommand, totals: &Totals) {
    if shell.is_json() {
        shell.json(&serde_json::json!({
            "type": "clean-finished",
            "features": totals.features,
            "running": totals.running,
            "removed": totals.items,
            "bytes": totals.bytes,
            "failed": totals.failed,
            "dry_run": cmd.dry_run,
        }));
        return;
    }
    let items = crate::output::count(totals.items, "item");
    let freed = format!("{} ({} bytes)", human_size(totals.bytes), totals.bytes);
    if totals.items == 0 && totals.failed == 0 {
        if totals.features == 0 && totals.running > 0 {
            // The `Skipped` line said why.
            return;
        }
        let place = match &cmd.feature {
            Some(name) => format!("`{name}`"),
            None => format!(
                "`{}`",
                display_path(&common.join("spec-exec"), &ws.root).display()
            ),
        };
        shell.status("Finished", format!("nothing to remove in {place}"));
    } else if cmd.dry_run {
        shell.status(
            "Would free",
            format!("{freed} in {items}; nothing was removed (--dry-run)"),
        );
    } else {
        shell.status("Removed", format!("{items}, freed {freed}"));
    }
}

/// Why a feature's run lock was not taken.
enum Held {
    /// Another process holds it: a run is going on (the pid it wrote, when there is one).
    Running(Option<String>),
    Error(Error),
}

/// Takes the OS lock on `path` without waiting, as a run does, and holds it while the feature
/// is cleaned so that no run starts meanwhile. With `dry_run` nothing is written: a missing
/// lock file is not made (no run holds it), and the pid is not written into it.
fn hold_lock(path: &Path, dry_run: bool) -> std::result::Result<Option<File>, Held> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if !dry_run {
        options.create(true).truncate(false).write(true);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if dry_run && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Held::Error(Error::io("open", path, e))),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty());
            return Err(Held::Running(pid));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Held::Error(Error::io("lock", path, e)));
        }
    }
    if !dry_run {
        // For the message of a run that finds the lock held.
        use std::io::{Seek as _, Write as _};
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
    }
    Ok(Some(file))
}

/// Whether `path` is a directory itself (not a link to one).
fn real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Whether `path` is a link.
fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Decides what of the feature's run state goes and what stays, removing nothing.
fn survey(git: &Git, ws: &Workspace, feature: &str, dir: &Path, cmd: &CleanCommand) -> Survey {
    let mut survey = Survey::default();
    let shown = |p: &Path| display_path(p, &ws.root).display().to_string();
    // A subdirectory that is a link leads out of the state directory: never entered.
    let sub = |name: &str, survey: &mut Survey| {
        let path = dir.join(name);
        if is_link(&path) {
            survey.skipped.push(format!(
                "{}: it is a link, not a directory of the run state; nothing was followed through it",
                shown(&path)
            ));
            return None;
        }
        real_dir(&path).then_some(path)
    };
    if let Some(worktrees) = sub("worktrees", &mut survey) {
        survey_worktrees(git, ws, feature, &worktrees, cmd, &mut survey);
    } else {
        // Records of the feature's worktrees may outlive the directory.
        survey_records_only(git, &ws.root, feature, &mut survey);
    }
    if let Some(dir) = sub("slots", &mut survey) {
        survey_slots(git, feature, &dir, cmd, &mut survey);
    }
    // Build directories are caches: they all go.
    let builds = sub("builds", &mut survey)
        .map(|d| entries(&d))
        .unwrap_or_default();
    for path in builds.into_iter().chain(sub("target", &mut survey)) {
        let name = file_name(&path);
        survey.remove.push(Item {
            kind: Kind::Build,
            bytes: crate::fsutil::dir_size(&path),
            what: match name.as_str() {
                "target" => "the target directory the slots share".to_owned(),
                "integration" => "the build directory of the integration".to_owned(),
                n if n.parse::<u32>().is_ok() => format!("the build directory of slot {n}"),
                _ => "a directory among the build directories".to_owned(),
            },
            path,
            how: How::Path,
        });
    }
    // Runs, and the integrations `land` made: the newest `--keep` of each.
    for (name, what) in [
        ("runs", "its logs, prompts and reports"),
        (
            "integration",
            "the logs and prompts of an integration by `land`",
        ),
    ] {
        let Some(runs) = sub(name, &mut survey) else {
            continue;
        };
        let mut entries = entries(&runs);
        entries.sort_by_key(|p| (started(p), p.clone()));
        let old = entries.len().saturating_sub(cmd.keep);
        for path in entries.into_iter().take(old) {
            let id = file_name(&path);
            survey.remove.push(Item {
                kind: Kind::Run,
                bytes: crate::fsutil::dir_size(&path),
                what: format!("run {id}: {what}"),
                path,
                how: How::Path,
            });
        }
    }
    if let Some(leftovers) = sub("leftovers", &mut survey) {
        let entries = entries(&leftovers);
        if cmd.leftovers {
            for path in entries {
                survey.remove.push(Item {
                    kind: Kind::Leftover,
                    bytes: crate::fsutil::dir_size(&path),
                    what: "changed files of an earlier attempt, moved aside".to_owned(),
                    path,
                    how: How::Path,
                });
            }
        } else if !entries.is_empty() {
            let n = entries.len();
            survey.keep.push(Keep {
                path: leftovers,
                why: format!(
                    "{}, {n} moved-aside {} of earlier attempts' changed files; --leftovers removes {}",
                    human_size(entries.iter().map(|p| crate::fsutil::dir_size(p)).sum()),
                    if n == 1 { "copy" } else { "copies" },
                    if n == 1 { "it" } else { "them" }
                ),
            });
        }
    }
    survey
}

/// The entries of `dir`, sorted (links and files too: not followed).
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// When run `path` started: from its run id (`20261125T055725481Z-<pid>`, as
/// `exec::run_id` makes it), else its modification time.
fn started(path: &Path) -> SystemTime {
    let name = file_name(path);
    let stamp = name.split('-').next().unwrap_or_default();
    let b = stamp.as_bytes();
    let from_id = (b.len() == 19
        && b[8] == b'T'
        && b[18] == b'Z'
        && b[..8].iter().chain(&b[9..18]).all(u8::is_ascii_digit))
    .then(|| {
        format!(
            "{}-{}-{}T{}:{}:{}.{}Z",
            &stamp[..4],
            &stamp[4..6],
            &stamp[6..8],
            &stamp[9..11],
            &stamp[11..13],
            &stamp[13..15],
            &stamp[15..18]
        )
    })
    .and_then(|text| humantime::parse_rfc3339(&text).ok());
    from_id
        .or_else(|| {
            std::fs::symlink_metadata(path)
                .and_then(|m| m.modified())
                .ok()
        })
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// git's records of the feature's worktrees, when its worktrees directory is gone: those
/// whose directory is gone too are pruned.
fn survey_records_only(git: &Git, root: &Path, feature: &str, survey: &mut Survey) {
    let admin = git.common_dir().join("worktrees");
    for (name, path) in git.worktrees_of(&worktree_prefix(feature)) {
        if path
            .as_deref()
            .is_none_or(|p| std::fs::symlink_metadata(p).is_err())
        {
            survey.remove.push(record(&admin, root, name, path));
        }
    }
}

/// A stale record to prune.
fn record(admin: &Path, root: &Path, name: String, path: Option<PathBuf>) -> Item {
    let what = match &path {
        Some(p) => format!(
            "git's record of the worktree `{name}`, whose directory {} is gone",
            display_path(p, root).display()
        ),
        None => format!("git's half-made record of the worktree `{name}`"),
    };
    Item {
        kind: Kind::Record,
        bytes: crate::fsutil::dir_size(&admin.join(&name)),
        path: admin.join(&name),
        what,
        how: How::Record { name },
    }
}

/// The feature's worktrees: git's records of them, and the directories under `worktrees`.
fn survey_worktrees(
    git: &Git,
    ws: &Workspace,
    feature: &str,
    worktrees: &Path,
    cmd: &CleanCommand,
    survey: &mut Survey,
) {
    let common = git.common_dir();
    let admin = common.join("worktrees");
    let prefix = worktree_prefix(feature);
    let real = |p: &Path| p.canonicalize().ok();
    let real_worktrees = real(worktrees);
    // The directories under `worktrees` that a record of this feature names.
    let mut recorded: Vec<String> = Vec::new();
    for (name, path) in git.worktrees_of(&prefix) {
        if slots::is_slot_name(&prefix, &name) {
            continue;
        }
        let id_part = name[prefix.len()..].to_owned();
        let Some(path) = path else {
            survey.remove.push(record(&admin, &ws.root, name, None));
            continue;
        };
        // One of the feature's worktree directories: `worktrees/<id>`, nothing else.
        let ours = path.is_absolute()
            && path.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::RootDir | std::path::Component::Normal(_)
                )
            })
            && path.file_name().is_some_and(|n| *n == *id_part)
            && path
                .parent()
                .and_then(real)
                .is_some_and(|p| Some(p) == real_worktrees);
        let exists = std::fs::symlink_metadata(&path).is_ok();
        if !exists {
            survey
                .remove
                .push(record(&admin, &ws.root, name, Some(path)));
            continue;
        }
        if !ours {
            survey.skipped.push(format!(
                "the worktree `{name}` at {}: it is not in {}, where spec-exec makes the worktrees of `{feature}`, so it is left alone",
                path.display(),
                display_path(worktrees, &ws.root).display()
            ));
            continue;
        }
        recorded.push(id_part.clone());
        if is_link(&path) {
            survey.remove.push(Item {
                kind: Kind::Link,
                bytes: crate::fsutil::dir_size(&path) + crate::fsutil::dir_size(&admin.join(&name)),
                what: "a link where a task's worktree was (only the link goes)".to_owned(),
                path,
                how: How::Link { name },
            });
            continue;
        }
        let branch = format!("{}/{feature}/{id_part}", ws.config.branch_prefix);
        let bytes = crate::fsutil::dir_size(&path) + crate::fsutil::dir_size(&admin.join(&name));
        match unfinished(git, &common, &name, &path, &branch, &id_part) {
            None => survey.remove.push(Item {
                kind: Kind::Finished,
                bytes,
                what: format!("the worktree of finished task {id_part}, committed on `{branch}`"),
                path,
                how: How::Worktree { name },
            }),
            Some(why) if cmd.leftovers => survey.remove.push(Item {
                kind: Kind::Kept,
                bytes,
                what: format!("the kept worktree of task {id_part}: {why}"),
                path,
                how: How::Worktree { name },
            }),
            Some(why) => survey.keep.push(Keep {
                path,
                why: format!(
                    "{}, the worktree of task {id_part}: {why}; --leftovers removes it",
                    human_size(bytes)
                ),
            }),
        }
    }
    // Directories (and anything else) under `worktrees` that no record names.
    for path in entries(worktrees) {
        if recorded.contains(&file_name(&path)) {
            continue;
        }
        let bytes = crate::fsutil::dir_size(&path);
        if is_link(&path) {
            survey.remove.push(Item {
                kind: Kind::Link,
                bytes,
                what: "a link where a task's worktree was (only the link goes)".to_owned(),
                path,
                how: How::Path,
            });
            continue;
        }
        // Nothing in it but a `.git` file: a worktree whose checkout never began, or whose
        // removal was cut short.
        let empty = real_dir(&path)
            && std::fs::read_dir(&path)
                .map(|rd| rd.flatten().all(|e| e.file_name() == ".git"))
                .unwrap_or(false);
        if empty || cmd.leftovers {
            survey.remove.push(Item {
                kind: Kind::Unrecorded,
                bytes,
                what: if empty {
                    "a worktree directory git has no record of, with no files in it".to_owned()
                } else {
                    "a worktree directory git has no record of".to_owned()
                },
                path,
                how: How::Path,
            });
        } else {
            survey.keep.push(Keep {
                path,
                why: format!(
                    "{}, a worktree directory git has no record of: what changed in it cannot be told; --leftovers removes it",
                    human_size(bytes)
                ),
            });
        }
    }
}

/// The feature's worktree slots (`slots/<n>`): a free one (clean, its HEAD detached) goes; one
/// that holds a task's branch or changes (a failed task's, kept for inspection) stays unless
/// `--leftovers`; a directory git has no record of is kept the same way.
fn survey_slots(git: &Git, feature: &str, dir: &Path, cmd: &CleanCommand, survey: &mut Survey) {
    let common = git.common_dir();
    let admin = common.join("worktrees");
    let prefix = worktree_prefix(feature);
    for path in entries(dir) {
        let file = file_name(&path);
        let Ok(n) = file.parse::<u32>() else {
            continue;
        };
        let name = slots::slot_name(&prefix, n);
        let size = || crate::fsutil::dir_size(&path) + crate::fsutil::dir_size(&admin.join(&name));
        if is_link(&path) {
            survey.remove.push(Item {
                kind: Kind::Link,
                bytes: size(),
                what: "a link where a worktree slot was (only the link goes)".to_owned(),
                path,
                how: How::Link { name },
            });
            continue;
        }
        if admin.join(&name).join("locked").exists() {
            survey.keep.push(Keep {
                path,
                why: format!(
                    "worktree slot {n}: it is locked (`git worktree lock`); `git worktree unlock` it for clean to remove it"
                ),
            });
            continue;
        }
        let linked = git::check_linked(&common, &name, &path).map(|_| ());
        let why = match &linked {
            Err(e) => Some(e.to_string()),
            Ok(()) => {
                let held = git::checked_out_ref(&path)
                    .map(|b| b.trim_start_matches("refs/heads/").to_owned());
                match (held, git::has_changes(&path)) {
                    (Some(b), changed) => Some(format!(
                        "it holds `{b}`, a task that did not finish, kept for inspection{}",
                        if changed {
                            ", with uncommitted changes"
                        } else {
                            ""
                        }
                    )),
                    (None, true) => Some("it has uncommitted changes".to_owned()),
                    (None, false) => None,
                }
            }
        };
        // Measured once git has looked at it (a look may refresh its index).
        let bytes = size();
        // Removed with git's record only when the record is this directory's (a record that
        // names another place is someone's own worktree now).
        let how = if linked.is_ok() {
            How::Worktree { name }
        } else {
            How::Path
        };
        match why {
            None => survey.remove.push(Item {
                kind: Kind::Slot,
                bytes,
                what: format!("worktree slot {n}, free"),
                path,
                how,
            }),
            Some(why) if cmd.leftovers => survey.remove.push(Item {
                kind: Kind::Kept,
                bytes,
                what: format!("the kept worktree slot {n}: {why}"),
                path,
                how,
            }),
            Some(why) => survey.keep.push(Keep {
                path,
                why: format!(
                    "{}, worktree slot {n}: {why}; --leftovers removes it",
                    human_size(bytes)
                ),
            }),
        }
    }
}

/// Why the worktree `name` at `path` is not a finished task's: `None` when it is (its checkout
/// finished, it still has the task's branch checked out, the branch holds the task's commit,
/// and nothing in it is uncommitted: removing it loses nothing).
fn unfinished(
    git: &Git,
    common: &Path,
    name: &str,
    path: &Path,
    branch: &str,
    id_part: &str,
) -> Option<String> {
    if !common.join("worktrees").join(name).join("index").exists() {
        return Some("its checkout never finished".to_owned());
    }
    if let Err(e) = git::check_worktree(common, name, path, branch) {
        return Some(e.to_string());
    }
    let done = git
        .task_commit(branch)
        .is_some_and(|tc| is_run_of(&git::ref_safe(&tc.task), id_part));
    if !done {
        return Some(format!(
            "its task is not done (`{branch}` holds no commit of it), kept for inspection"
        ));
    }
    if git::has_changes(path) {
        return Some("it has uncommitted changes".to_owned());
    }
    None
}

/// Whether the worktree name part `id_part` is a run of the task whose ref-safe id is `task`:
/// `task` itself or a later round, `task.round-N`.
fn is_run_of(task: &str, id_part: &str) -> bool {
    id_part == task
        || id_part
            .strip_prefix(task)
            .and_then(|rest| rest.strip_prefix(".round-"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes one thing.
fn remove(git: &Git, item: &Item) -> Result<()> {
    match &item.how {
        How::Worktree { name } => git.remove_worktree(name, &item.path),
        How::Record { name } => git.forget_worktree(name),
        How::Link { name } => {
            remove_path(&item.path)?;
            git.forget_worktree(name)
        }
        How::Path => remove_path(&item.path),
    }
}

/// Removes `path`: a link or a file as itself, a directory with everything in it (links in it
/// are removed as links, never followed).
fn remove_path(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let removed = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    removed.map_err(|e| Error::io("remove", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_size(12_897_485), "12.3 MiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn rounds_are_runs_of_their_task() {
        assert!(is_run_of("CR-A", "CR-A"));
        assert!(is_run_of("CR-A", "CR-A.round-2"));
        assert!(!is_run_of("CR-A", "CR-A.round-"));
        assert!(!is_run_of("CR-A", "CR-AB"));
        assert!(!is_run_of("1", "2"));
        assert!(!is_run_of("1", "1.1"));
    }

    #[test]
    fn runs_sort_by_the_time_in_their_id() {
        let a = started(Path::new("/x/20261125T055725481Z-20522"));
        let b = started(Path::new("/x/20261125T055725482Z-1"));
        assert!(a < b);
        assert_eq!(
            a,
            humantime::parse_rfc3339("2026-11-25T05:57:25.481Z").unwrap_or(SystemTime::UNIX_EPOCH)
        );
    }
}
