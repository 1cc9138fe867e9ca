//! Errors in two tiers: the expected ones a user can cause (each with an exit code and a hint),
//! and bugs, which panic.
//!
//! Problems found in a user's file are [`Diagnostic`]s: they carry the path, line, column, the
//! offending words and a fix, so the human renderer can point at the text and the JSON renderer
//! can hand the same facts to CI.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Exit codes: a documented, stable contract.
pub mod exit {
    /// Every selected task is done (or, for `check`, every spec is clean).
    pub const OK: i32 = 0;
    /// Some task failed or was skipped, a done task could not be ticked, or anything else
    /// failed once the first agent had started.
    pub const TASKS_FAILED: i32 = 1;
    /// The spec, the configuration or the arguments are wrong; nothing ran.
    pub const INVALID: i32 = 2;
    /// Interrupted (Ctrl-C).
    pub const INTERRUPTED: i32 = 130;
    /// The run stopped on an agent's usage or rate limit (`--on-rate-limit stop`, or waiting
    /// longer than `--max-wait`): what is left resumes with a later run.
    pub const RATE_LIMITED: i32 = 3;
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Error,
    Warning,
}

/// Where in a file a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file, as shown to the user (relative to the workspace root when inside it).
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// The text of that line (without its line ending), for the excerpt.
    #[serde(skip)]
    pub line_text: String,
    /// How many characters to underline, at least 1.
    #[serde(skip)]
    pub width: usize,
}

/// One problem in a user's file or configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// A short label under the underlined words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Further context, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Severity::Error, message)
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, message)
    }

    fn new(severity: Severity, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            message: message.into(),
            location: None,
            label: None,
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn at_opt(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// Points at a whole file, with no line.
    pub fn in_file(self, path: &Path) -> Self {
        self.at(Location {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            line_text: String::new(),
            width: 0,
        })
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `path:line:column`, or just the path when there is no line.
    pub fn position(&self) -> Option<String> {
        self.location.as_ref().map(|loc| {
            if loc.line == 0 {
                loc.path.display().to_string()
            } else {
                format!("{}:{}:{}", loc.path.display(), loc.line, loc.column)
            }
        })
    }
}

impl fmt::Display for Diagnostic {
    /// A plain, single-line rendering (for logs and test assertions).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pos) = self.position() {
            write!(f, "{pos}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The errors a user can cause. Every variant but [`Error::Interrupted`] (130) exits with
/// [`exit::INVALID`]: nothing ran.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Problems in a spec or configuration file; all of them are listed.
    #[error("{}", summary(.0))]
    Diagnostics(Vec<Diagnostic>),
    /// A wrong argument or state that is not tied to a place in a file.
    #[error("{message}")]
    User {
        message: String,
        help: Option<String>,
    },
    /// Interrupted (Ctrl-C) before anything was written.
    #[error("{message}")]
    Interrupted { message: String, help: String },
    /// A file that could not be read or written.
    #[error("could not {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn summary(diagnostics: &[Diagnostic]) -> String {
    match diagnostics.iter().find(|d| d.is_error()) {
        Some(first) => first.to_string(),
        None => "invalid input".to_owned(),
    }
}

impl Error {
    pub fn user(message: impl Into<String>) -> Self {
        Error::User {
            message: message.into(),
            help: None,
        }
    }

    pub fn user_with_help(message: impl Into<String>, help: impl Into<String>) -> Self {
        Error::User {
            message: message.into(),
            help: Some(help.into()),
        }
    }

    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted { .. } => exit::INTERRUPTED,
            _ => exit::INVALID,
        }
    }

    /// The error as diagnostics, for uniform rendering.
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        match self {
            Error::Diagnostics(diagnostics) => diagnostics,
            Error::User { message, help } => {
                let mut d = Diagnostic::error(message);
                d.help = help;
                vec![d]
            }
            Error::Interrupted { message, help } => vec![Diagnostic::error(message).help(help)],
            Error::Io {
                action,
                path,
                source,
            } => {
                let hint = match source.kind() {
                    std::io::ErrorKind::NotFound => "check the path, or create the file",
                    std::io::ErrorKind::PermissionDenied => "check the file's permissions",
                    _ => "check that the file is accessible",
                };
                vec![
                    Diagnostic::error(format!("could not {action} this file: {source}"))
                        .in_file(&path)
                        .help(hint),
                ]
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
