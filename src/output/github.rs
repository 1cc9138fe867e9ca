//! GitHub Actions: diagnostics as workflow commands (`::error file=…,line=…::message`), which
//! GitHub shows as annotations on the files of a pull request, and the step summary
//! (`$GITHUB_STEP_SUMMARY`), a markdown file GitHub shows on the run's page.

use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Severity};

/// Set to `true` by GitHub Actions in every step.
pub const ACTIONS_ENV: &str = "GITHUB_ACTIONS";
/// The file a step appends its summary to.
pub const SUMMARY_ENV: &str = "GITHUB_STEP_SUMMARY";

/// Whether this process runs in a GitHub Actions step.
pub fn in_actions() -> bool {
    std::env::var(ACTIONS_ENV).is_ok_and(|v| v == "true")
}

/// A command's message: `%`, CR and LF escaped, as GitHub's runner unescapes them.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A command's property value: as [`escape_data`], and `:` and `,`, which end a value.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// How paths are named in the commands: relative to the repository's root, which is not the
/// workspace's root when the workspace is a directory of the repository.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    /// What relative paths are relative to: the workspace root.
    pub root: Option<PathBuf>,
    /// The repository's working tree.
    pub workdir: Option<PathBuf>,
}

impl Paths {
    /// `path` (relative to the workspace root, or absolute) relative to the repository's root,
    /// where its links lead when that is inside the repository; as it is when it is outside
    /// the repository or no workspace was read.
    pub fn in_repository(&self, path: &Path) -> PathBuf {
        let absolute = match &self.root {
            Some(root) if path.is_relative() => root.join(path),
            _ => path.to_path_buf(),
        };
        if let Some(workdir) = &self.workdir {
            // A link (a features directory, a tasks.md) that leads to a file of the
            // repository: GitHub annotates the file it tracks, not the link.
            if let Ok(real) = absolute.canonicalize()
                && let Ok(rel) = real.strip_prefix(workdir)
            {
                return rel.to_path_buf();
            }
            if let Ok(rel) = absolute.strip_prefix(workdir) {
                return rel.to_path_buf();
            }
        }
        path.to_path_buf()
    }
}

/// The kind of workflow command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// Where a command points: a file, and a line and column when known (0: none).
#[derive(Debug, Clone, Default)]
pub struct Place {
    pub file: Option<PathBuf>,
    pub line: usize,
    pub column: usize,
}

/// `::error file=F,line=L,col=C,title=T::message`, escaped; without the properties it has no
/// value for.
pub fn command(level: Level, place: &Place, title: &str, message: &str) -> String {
    let mut props = Vec::new();
    if let Some(file) = &place.file {
        props.push(format!(
            "file={}",
            escape_property(&file.display().to_string())
        ));
        if place.line > 0 {
            props.push(format!("line={}", place.line));
            if place.column > 0 {
                props.push(format!("col={}", place.column));
            }
        }
    }
    if !title.is_empty() {
        props.push(format!("title={}", escape_property(title)));
    }
    let props = if props.is_empty() {
        String::new()
    } else {
        format!(" {}", props.join(","))
    };
    format!("::{}{props}::{}", level.word(), escape_data(message))
}

/// A diagnostic as a workflow command: the message as its title, and the message with its
/// label, notes and help as its text.
pub fn diagnostic(d: &Diagnostic, paths: &Paths) -> String {
    let level = match d.severity {
        Severity::Error => Level::Error,
        Severity::Warning => Level::Warning,
    };
    let place = d
        .location
        .as_ref()
        .map(|loc| Place {
            file: Some(paths.in_repository(&loc.path)),
            line: loc.line,
            column: loc.column,
        })
        .unwrap_or_default();
    let mut text = d.message.clone();
    if let Some(label) = &d.label {
        text.push_str(&format!(" ({label})"));
    }
    for note in &d.notes {
        text.push_str(&format!("\nnote: {note}"));
    }
    if let Some(help) = &d.help {
        text.push_str(&format!("\nhelp: {help}"));
    }
    command(level, &place, &d.message, &text)
}

/// Appends `markdown` to the step summary file, when `$GITHUB_STEP_SUMMARY` names one (GitHub
/// gives each step a file of its own, and earlier writes of the step stay). Returns the file;
/// the file and why when it could not be written.
pub fn append_summary(markdown: &str) -> Result<Option<PathBuf>, (PathBuf, std::io::Error)> {
    use std::io::Write as _;
    let Some(path) = std::env::var_os(SUMMARY_ENV).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(markdown.as_bytes())?;
            file.flush()
        });
    match written {
        Ok(()) => Ok(Some(path)),
        Err(e) => Err((path, e)),
    }
}

/// A token for `::stop-commands::` that `text` does not hold: the commands stay off until the
/// line `::<token>::`, which only this process prints.
pub fn stop_token(text: &str) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        let token = format!("spec-exec-{:016x}", h.finish());
        if !text.contains(&token) {
            return token;
        }
    }
}

/// A table cell: `|` would end it, and a line break would end the table.
pub fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Location;

    #[test]
    fn data_and_properties_are_escaped_as_the_runner_reads_them() {
        assert_eq!(escape_data("50% a\r\nb: c, d"), "50%25 a%0D%0Ab: c, d");
        assert_eq!(escape_property("50% a\nb: c, d"), "50%25 a%0Ab%3A c%2C d");
        assert_eq!(escape_property("%3A"), "%253A");
    }

    #[test]
    fn a_diagnostic_names_its_file_from_the_repository_root() {
        let d = Diagnostic::error("task 1.2 depends on 9, which does not exist")
            .at(Location {
                path: PathBuf::from("documentation/features/a,b/tasks.md"),
                line: 7,
                column: 5,
                line_text: String::new(),
                width: 1,
            })
            .note("one: two")
            .help("fix it");
        let paths = Paths {
            root: Some(PathBuf::from("/r/ws")),
            workdir: Some(PathBuf::from("/r")),
        };
        assert_eq!(
            diagnostic(&d, &paths),
            "::error file=ws/documentation/features/a%2Cb/tasks.md,line=7,col=5,\
             title=task 1.2 depends on 9%2C which does not exist::\
             task 1.2 depends on 9, which does not exist%0Anote: one: two%0Ahelp: fix it"
        );
    }

    #[test]
    fn without_a_place_there_are_no_file_and_line() {
        let d = Diagnostic::warning("w");
        assert_eq!(diagnostic(&d, &Paths::default()), "::warning title=w::w");
        let whole_file = Diagnostic::error("e").in_file(Path::new("tasks.md"));
        assert_eq!(
            diagnostic(&whole_file, &Paths::default()),
            "::error file=tasks.md,title=e::e"
        );
        assert_eq!(
            command(Level::Notice, &Place::default(), "", "n"),
            "::notice::n"
        );
    }

    #[test]
    fn paths_outside_the_repository_stay_as_they_are() {
        let paths = Paths {
            root: Some(PathBuf::from("/r")),
            workdir: Some(PathBuf::from("/r")),
        };
        assert_eq!(
            paths.in_repository(Path::new("/elsewhere/x.md")),
            PathBuf::from("/elsewhere/x.md")
        );
        assert_eq!(
            paths.in_repository(Path::new("/r/a/x.md")),
            PathBuf::from("a/x.md")
        );
    }

    #[test]
    fn cells_keep_the_table_whole() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
