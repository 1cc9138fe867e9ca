//! The feature spec: where it lives, its name rules, and its task list.

pub mod approval;
pub mod blocks;
pub mod deps;
pub mod dialect;
pub mod edit;
pub mod inferred;
mod limits;
pub mod model;
mod parse;
mod resolve;

use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Error, Result};
use crate::source::{self, Source};
pub use model::TaskList;
pub use parse::options as markdown_options;

/// A feature's spec directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    pub name: String,
    pub dir: PathBuf,
}

/// Where spec tools keep their specs, besides `features-dir`, under the workspace root (`*` is
/// any one directory): specflow's modules, Kiro, spec-kit, spec-workflow. A directory there is
/// a feature only if it holds a tasks.md.
const OTHER_PLACES: [&str; 4] = [
    "documentation/modules/*/features",
    ".kiro/specs",
    "specs",
    ".spec-workflow/specs",
];

/// The directories `pattern` (relative to `root`, `*` for any one directory) names.
fn expand(root: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    for part in pattern.split('/') {
        let mut next = Vec::new();
        for d in dirs {
            if part == "*" {
                if let Ok(entries) = std::fs::read_dir(&d) {
                    let mut found: Vec<PathBuf> = entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect();
                    found.sort();
                    next.extend(found);
                }
            } else {
                let p = d.join(part);
                if p.is_dir() {
                    next.push(p);
                }
            }
        }
        dirs = next;
    }
    dirs
}

/// Every feature of the workspace, sorted by name then place: the directories under
/// `features_dir`, and those with a tasks.md where other spec tools keep specs
/// (`documentation/modules/*/features/`, `.kiro/specs/`, `specs/`, `.spec-workflow/specs/`).
pub fn all_features(root: &Path, features_dir: &Path) -> Result<Vec<Feature>> {
    let mut out = features(features_dir)?;
    for pattern in OTHER_PLACES {
        for dir in expand(root, pattern) {
            if dir == features_dir {
                continue;
            }
            for f in features(&dir)? {
                if f.tasks_path().is_file() && !out.iter().any(|o| o.dir == f.dir) {
                    out.push(f);
                }
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.dir.cmp(&b.dir)));
    Ok(out)
}

/// Whether `name` names feature `f`: its directory name, or for spec-kit's numbered
/// directories (`001-user-auth`) the number or the rest.
fn names(f: &Feature, name: &str) -> bool {
    if f.name == name {
        return true;
    }
    match f.name.split_once('-') {
        Some((num, rest)) if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => {
            name == num || name == rest
        }
        _ => false,
    }
}

/// Finds a feature by name in every place specs are kept ([`all_features`]); a name that fits
/// several is an error listing them, which a path relative to the workspace root
/// (`.kiro/specs/auth`) settles.
pub fn find_anywhere(root: &Path, features_dir: &Path, name: &str) -> Result<Feature> {
    pick(&all_features(root, features_dir)?, root, features_dir, name)
}

/// [`find_anywhere`] among features already listed by [`all_features`].
pub fn pick(all: &[Feature], root: &Path, features_dir: &Path, name: &str) -> Result<Feature> {
    let rel = |f: &Feature| source::display_path(&f.dir, root).display().to_string();
    if name.contains('/') {
        let wanted = name.trim_end_matches('/');
        if let Some(f) = all.iter().find(|f| rel(f) == wanted) {
            validate_name(&f.name).map_err(|e| in_dir(e, f, root))?;
            ensure_inside(f, root)?;
            return Ok(f.clone());
        }
    }
    let matching: Vec<&Feature> = all.iter().filter(|f| names(f, name)).collect();
    match matching.as_slice() {
        [] if all.iter().any(|f| !f.dir.starts_with(features_dir)) => {
            validate_name(name)?;
            let mut names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
            names.dedup();
            Err(Error::user_with_help(
                format!("no feature `{name}` in any of the places specs are kept"),
                format!(
                    "features that exist: {} (`cargo spec-exec list` shows where)",
                    names.join(", ")
                ),
            ))
        }
        [] => find(root, features_dir, name),
        [one] => {
            validate_name(&one.name).map_err(|e| in_dir(e, one, root))?;
            ensure_inside(one, root)?;
            Ok((*one).clone())
        }
        many => Err(Error::user_with_help(
            format!(
                "`{name}` names {} features: {}",
                many.len(),
                many.iter()
                    .map(|f| format!("`{}`", rel(f)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "name one by its directory, e.g. `cargo spec-exec {}`",
                rel(many[0])
            ),
        )),
    }
}

impl Feature {
    pub fn tasks_path(&self) -> PathBuf {
        self.dir.join("tasks.md")
    }
}

/// An error about a feature that exists, pointing at its directory.
fn in_dir(e: Error, feature: &Feature, root: &Path) -> Error {
    Error::Diagnostics(
        e.into_diagnostics()
            .into_iter()
            .map(|d| d.in_file(&source::display_path(&feature.dir, root)))
            .collect(),
    )
}

/// Checks that a feature name is one directory name that is also safe in a branch name.
pub fn validate_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator; a feature is one directory name")
    } else if name == "." || name.contains("..") {
        Some("contains `..`")
    } else if name.starts_with(['.', '-']) {
        Some("starts with `.` or `-`")
    } else if name.ends_with('.') || name.ends_with(".lock") {
        Some("ends with `.` or `.lock`, which git refuses in branch names")
    } else if name.contains("@{") {
        Some("contains `@{`, which git refuses in branch names")
    } else if name
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[".contains(c))
    {
        Some(
            "contains a space, a control character or one of ~ ^ : ? * [, which git refuses in branch names",
        )
    } else if !git2::Reference::is_valid_name(&format!("refs/heads/spec/{name}/1")) {
        Some("is not valid in a git branch name")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(Error::user_with_help(
            // Escaped: the name may hold a line break or a terminal's control characters.
            format!("invalid feature name `{}`: it {why}", name.escape_debug()),
            "name a directory under the features directory, e.g. `user-auth`",
        )),
    }
}

/// Every feature directory under `features_dir`, sorted by name. A directory reached through a
/// symbolic link is listed as it is named; [`load`] refuses it when it leads out of the workspace,
/// so that `list` and `check` show it as an error rather than hiding it.
pub fn features(features_dir: &Path) -> Result<Vec<Feature>> {
    let entries = match std::fs::read_dir(features_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read the directory", features_dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read the directory", features_dir, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        out.push(Feature {
            name: name.to_owned(),
            dir: path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Finds a feature by name: its directory must exist under `features_dir` and, with its
/// tasks.md, be inside the workspace once symbolic links are followed.
pub fn find(root: &Path, features_dir: &Path, name: &str) -> Result<Feature> {
    validate_name(name)?;
    let dir = features_dir.join(name);
    if dir.is_dir() {
        let feature = Feature {
            name: name.to_owned(),
            dir,
        };
        ensure_inside(&feature, root)?;
        return Ok(feature);
    }
    let shown = source::display_path(features_dir, root);
    let existing = features(features_dir)?;
    let help = if existing.is_empty() {
        format!(
            "create `{}/{name}/tasks.md`, or set `features-dir` in [workspace.metadata.spec-exec]",
            shown.display()
        )
    } else {
        let names: Vec<&str> = existing.iter().map(|f| f.name.as_str()).collect();
        format!("features that exist: {}", names.join(", "))
    };
    Err(Error::user_with_help(
        format!(
            "no feature `{name}`: `{}` does not exist",
            shown.join(name).display()
        ),
        help,
    ))
}

/// Reads and parses a feature's tasks.md. Problems in the file are in the list's diagnostics;
/// only an unreadable file, or one that a symbolic link puts outside the workspace, is an `Err`.
pub fn load(feature: &Feature, root: &Path) -> Result<TaskList> {
    ensure_inside(feature, root)?;
    let path = feature.tasks_path();
    let display = source::display_path(&path, root);
    let bytes = std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Diagnostics(vec![
                Diagnostic::error(format!("feature `{}` has no tasks.md", feature.name))
                    .in_file(&display)
                    .help("write the task list (or generate it with your spec tool) first"),
            ])
        } else {
            Error::io("read", &display, e)
        }
    })?;
    Ok(parse_bytes(display, bytes))
}

/// Refuses a feature whose directory or tasks.md leads, through a symbolic link, out of the
/// workspace `root`: a feature's files are read, and ticked by a run, only inside it. A link that
/// stays inside the workspace is fine; a tasks.md that does not exist is left to the reader.
fn ensure_inside(feature: &Feature, root: &Path) -> Result<()> {
    for path in [feature.dir.clone(), feature.tasks_path()] {
        let Some((link, target)) = leads_outside(&path, root)? else {
            continue;
        };
        let link = source::display_path(&link, root);
        return Err(Error::Diagnostics(vec![
            Diagnostic::error(format!(
                "feature `{}` is outside the workspace: `{}` leads to `{}`",
                feature.name,
                link.display(),
                target.display()
            ))
            .in_file(&link)
            .note(format!(
                "a feature's files must be inside the workspace (`{}`): a run reads them and ticks its tasks in tasks.md",
                root.display()
            ))
            .help(format!(
                "replace the symbolic link `{}` with a copy of what it leads to, or with a link to a place inside the workspace",
                link.display()
            )),
        ]));
    }
    Ok(())
}

/// Whether `path` leads, through a symbolic link, out of `root`: the link at fault (the first
/// step of the path, from the root, that leads out) and where it leads. A path that does not
/// exist leads nowhere.
pub(crate) fn leads_outside(path: &Path, root: &Path) -> Result<Option<(PathBuf, PathBuf)>> {
    let real_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let real = match path.canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("resolve", &source::display_path(path, root), e)),
    };
    if real.starts_with(&real_root) {
        return Ok(None);
    }
    let mut steps: Vec<&Path> = path
        .ancestors()
        .take_while(|a| a.starts_with(root) && *a != root)
        .collect();
    steps.reverse();
    Ok(Some(
        steps
            .into_iter()
            .find_map(|step| {
                let real = step.canonicalize().ok()?;
                (!real.starts_with(&real_root)).then(|| (step.to_path_buf(), real))
            })
            .unwrap_or((path.to_path_buf(), real)),
    ))
}

/// Parses task-list bytes read from `display_path`.
pub fn parse_bytes(display_path: impl Into<PathBuf>, bytes: Vec<u8>) -> TaskList {
    let mut list = parse::parse(Source::new(display_path, bytes));
    if list.tasks.is_empty() && !list.has_errors() {
        let d = if list.source.text.trim().is_empty() {
            Diagnostic::error("tasks.md is empty")
                .help("generate the task list with your spec tool, then approve it")
        } else {
            Diagnostic::error("tasks.md has no tasks")
                .help("a task is a checkbox item that starts with an id: `- [ ] 1. Title`")
        };
        list.diagnostics.push(d.in_file(&list.source.display_path));
    }
    list
}
