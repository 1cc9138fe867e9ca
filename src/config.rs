//! Configuration from `[workspace.metadata.spec-exec]` (or `[package.metadata.spec-exec]` of a
//! single-package root), with defaults. Keys are kebab-case; an unknown key is an error that
//! names it, so a typo never silently falls back to a default.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::error::{Diagnostic, Error, Location, Result};

pub const DEFAULT_FEATURES_DIR: &str = "documentation/features";
pub const DEFAULT_MAX_AGENTS: usize = 6;
pub const DEFAULT_BRANCH_PREFIX: &str = "spec";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How many times a review gate runs its review before it gives up.
pub const DEFAULT_MAX_REVIEW_ROUNDS: u32 = 3;

const KEYS: &[&str] = &[
    "features-dir",
    "max-agents",
    "agent",
    "timeout",
    "branch-prefix",
    "max-review-rounds",
];

/// An agent as configured: a preset name, or an argv list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSpec {
    Preset(String),
    Argv(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Relative to the workspace root.
    pub features_dir: PathBuf,
    pub max_agents: Option<usize>,
    pub agent: Option<AgentSpec>,
    pub timeout: Option<Duration>,
    pub branch_prefix: String,
    pub max_review_rounds: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            features_dir: PathBuf::from(DEFAULT_FEATURES_DIR),
            max_agents: None,
            agent: None,
            timeout: None,
            branch_prefix: DEFAULT_BRANCH_PREFIX.to_owned(),
            max_review_rounds: None,
        }
    }
}

/// Where the configuration table was read from, to point errors at it.
#[derive(Debug, Clone)]
pub struct TableSource<'a> {
    /// The manifest as shown to the user.
    pub manifest: &'a Path,
    /// The manifest's text, when it could be read.
    pub text: Option<&'a str>,
    /// `workspace.metadata.spec-exec` or `package.metadata.spec-exec`.
    pub table: &'a str,
}

impl TableSource<'_> {
    /// The line of `key = …` inside the table (or of the table header when `key` is `None`).
    fn locate(&self, key: Option<&str>) -> Location {
        let fallback = Location {
            path: self.manifest.to_path_buf(),
            line: 0,
            column: 0,
            line_text: String::new(),
            width: 0,
        };
        let Some(text) = self.text else {
            return fallback;
        };
        let header = format!("[{}]", self.table);
        let quoted = format!("[{}]", self.table.replace("spec-exec", "\"spec-exec\""));
        let mut in_table = false;
        let mut header_loc = None;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
            if t.starts_with('[') {
                in_table = compact == header || compact == quoted;
                if in_table {
                    header_loc = Some(loc_in(self.manifest, i + 1, line, t));
                }
                continue;
            }
            if let (true, Some(key)) = (in_table, key) {
                let k = t.trim_start_matches('"');
                if k.starts_with(key)
                    && k[key.len()..]
                        .trim_start_matches('"')
                        .trim_start()
                        .starts_with('=')
                {
                    return loc_in(self.manifest, i + 1, line, key);
                }
            }
        }
        header_loc.unwrap_or(fallback)
    }
}

fn loc_in(path: &Path, line: usize, text: &str, word: &str) -> Location {
    let byte = text.find(word).unwrap_or(0);
    Location {
        path: path.to_path_buf(),
        line,
        column: text[..byte].chars().count() + 1,
        line_text: text.to_owned(),
        width: word.chars().count().max(1),
    }
}

impl Config {
    /// Reads the `spec-exec` table (a JSON value as cargo metadata reports it).
    pub fn from_value(value: Option<&Value>, src: &TableSource<'_>) -> Result<Config> {
        let mut config = Config::default();
        let Some(value) = value else {
            return Ok(config);
        };
        let Some(table) = value.as_object() else {
            return Err(Error::Diagnostics(vec![
                Diagnostic::error(format!("`{}` must be a table", src.table))
                    .at(src.locate(None))
                    .help("write it as a `[...]` table of keys"),
            ]));
        };
        let mut problems = Vec::new();
        for (key, value) in table {
            let loc = src.locate(Some(key));
            let bad = |what: &str| {
                Diagnostic::error(format!("invalid `{key}` in [{}]: {what}", src.table))
                    .at(loc.clone())
            };
            match key.as_str() {
                "features-dir" => match value.as_str() {
                    Some(s) => match relative_dir(s) {
                        Ok(p) => config.features_dir = p,
                        Err(why) => problems.push(bad(why).help(
                            "give a directory relative to the workspace root, e.g. \"documentation/features\"",
                        )),
                    },
                    None => problems.push(bad("expected a string").help(
                        "e.g. features-dir = \"documentation/features\"",
                    )),
                },
                "max-agents" => match value.as_u64() {
                    Some(n) if n >= 1 => config.max_agents = Some(n as usize),
                    _ => problems.push(bad("expected a whole number of at least 1").help("e.g. max-agents = 4")),
                },
                "max-review-rounds" => match value.as_u64() {
                    Some(n) if (1..=u64::from(u32::MAX)).contains(&n) => {
                        config.max_review_rounds = Some(n as u32);
                    }
                    _ => problems.push(
                        bad("expected a whole number of at least 1")
                            .help("e.g. max-review-rounds = 3"),
                    ),
                },
                "agent" => match agent_spec(value) {
                    Some(AgentSpec::Preset(name)) if !crate::exec::agent::is_preset(&name) => {
                        problems.push(
                            bad(&format!("`{name}` is not an agent preset"))
                                .help("use one of claude, codex, gemini, aider, shell, or a list of arguments: agent = [\"my-agent\", \"--flag\"]"),
                        );
                    }
                    Some(spec) => config.agent = Some(spec),
                    None => problems.push(bad("expected a preset name or a list of arguments").help(
                        "e.g. agent = \"claude\" or agent = [\"my-agent\", \"--flag\"]",
                    )),
                },
                "timeout" => match value.as_str().map(parse_duration) {
                    Some(Ok(d)) => config.timeout = Some(d),
                    Some(Err(why)) => problems.push(bad(&why).help("e.g. timeout = \"30m\"")),
                    None => problems.push(bad("expected a duration string").help("e.g. timeout = \"30m\"")),
                },
                "branch-prefix" => match value.as_str() {
                    Some(s) => match validate_branch_prefix(s) {
                        Ok(()) => config.branch_prefix = s.to_owned(),
                        Err(why) => problems.push(bad(&why).help("e.g. branch-prefix = \"spec\"")),
                    },
                    None => problems.push(bad("expected a string").help("e.g. branch-prefix = \"spec\"")),
                },
                _ => problems.push(
                    Diagnostic::error(format!("unknown key `{key}` in [{}]", src.table))
                        .at(loc)
                        .label("not a spec-exec setting")
                        .help(format!("the keys are: {}", KEYS.join(", "))),
                ),
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(Error::Diagnostics(problems))
        }
    }
}

fn agent_spec(value: &Value) -> Option<AgentSpec> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(AgentSpec::Preset(s.trim().to_owned())),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(AgentSpec::Argv),
        _ => None,
    }
}

fn relative_dir(s: &str) -> std::result::Result<PathBuf, &'static str> {
    let p = Path::new(s);
    if s.trim().is_empty() {
        return Err("it is empty");
    }
    if p.is_absolute() {
        return Err("it must be relative to the workspace root");
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err("it must stay inside the workspace (no `..`)");
    }
    Ok(p.to_path_buf())
}

/// Checks a branch prefix: one or more ref-safe path components.
pub fn validate_branch_prefix(prefix: &str) -> std::result::Result<(), String> {
    if prefix.is_empty() || prefix.starts_with('/') || prefix.ends_with('/') {
        return Err("it must be non-empty with no leading or trailing `/`".to_owned());
    }
    if !git2::Reference::is_valid_name(&format!("refs/heads/{prefix}/feature/1")) {
        return Err(format!("`{prefix}` is not valid in a git branch name"));
    }
    Ok(())
}

/// Parses `30m`, `90s`, `1h30m`, `500ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let invalid = || format!("`{s}` is not a duration (use e.g. 90s, 30m, 1h30m)");
    if s.is_empty() {
        return Err(invalid());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return if secs == 0 {
            Err("a timeout must be longer than zero".to_owned())
        } else {
            Ok(Duration::from_secs(secs))
        };
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" | "sec" | "secs" => Duration::from_secs(n),
            "m" | "min" | "mins" => Duration::from_secs(n * 60),
            "h" | "hr" | "hrs" => Duration::from_secs(n * 3600),
            _ => return Err(invalid()),
        };
    }
    if total.is_zero() {
        return Err("a timeout must be longer than zero".to_owned());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("m5").is_err());
    }

    fn src(text: &str) -> TableSource<'_> {
        TableSource {
            manifest: Path::new("Cargo.toml"),
            text: Some(text),
            table: "workspace.metadata.spec-exec",
        }
    }

    #[test]
    fn unknown_keys_are_located() {
        let text = "[workspace]\n\n[workspace.metadata.spec-exec]\nmax-agents = 2\nmax-agent = 3\n";
        let value = serde_json::json!({"max-agents": 2, "max-agent": 3});
        let Err(Error::Diagnostics(d)) = Config::from_value(Some(&value), &src(text)) else {
            panic!("expected an error");
        };
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].to_string(),
            "Cargo.toml:5:1: unknown key `max-agent` in [workspace.metadata.spec-exec]"
        );
    }

    #[test]
    fn values_are_checked() {
        let value = serde_json::json!({
            "features-dir": "../elsewhere", "max-agents": 0, "agent": [],
            "timeout": "forever", "branch-prefix": "bad..prefix", "max-review-rounds": 0
        });
        let Err(Error::Diagnostics(d)) = Config::from_value(Some(&value), &src("")) else {
            panic!("expected errors");
        };
        assert_eq!(d.len(), 6);
        let ok = serde_json::json!({"agent": ["my-agent", "--fast"], "timeout": "10m", "branch-prefix": "team/spec", "max-review-rounds": 2});
        let c = Config::from_value(Some(&ok), &src("")).unwrap();
        assert_eq!(
            c.agent,
            Some(AgentSpec::Argv(vec!["my-agent".into(), "--fast".into()]))
        );
        assert_eq!(c.branch_prefix, "team/spec");
        assert_eq!(c.max_review_rounds, Some(2));
    }

    #[test]
    fn a_bad_max_review_rounds_is_located() {
        let text = "[workspace]\n\n[workspace.metadata.spec-exec]\nmax-review-rounds = \"many\"\n";
        let value = serde_json::json!({"max-review-rounds": "many"});
        let Err(Error::Diagnostics(d)) = Config::from_value(Some(&value), &src(text)) else {
            panic!("expected an error");
        };
        assert_eq!(
            d[0].to_string(),
            "Cargo.toml:4:1: invalid `max-review-rounds` in [workspace.metadata.spec-exec]: expected a whole number of at least 1"
        );
    }

    #[test]
    fn an_unknown_preset_is_located() {
        let text = "[workspace]\n\n[workspace.metadata.spec-exec]\nagent = \"nope\"\n";
        let value = serde_json::json!({"agent": "nope"});
        let Err(Error::Diagnostics(d)) = Config::from_value(Some(&value), &src(text)) else {
            panic!("expected an error");
        };
        assert_eq!(
            d[0].to_string(),
            "Cargo.toml:4:1: invalid `agent` in [workspace.metadata.spec-exec]: `nope` is not an agent preset"
        );
        let ok = serde_json::json!({"agent": "shell"});
        assert!(Config::from_value(Some(&ok), &src(text)).is_ok());
    }
}
