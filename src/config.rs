//! Configuration from `[workspace.metadata.spec-exec]` (or `[package.metadata.spec-exec]` of a
//! single-package root), with defaults. Keys are kebab-case; an unknown key is an error that
//! names it, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use crate::agents::AgentSpec;
use crate::agents::is_preset;
use crate::error::{Diagnostic, Error, Location, Result};

pub const DEFAULT_FEATURES_DIR: &str = "documentation/features";
pub const DEFAULT_MAX_AGENTS: usize = 6;
pub const DEFAULT_BRANCH_PREFIX: &str = "spec";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long an agent's process group has between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// The environment variable that sets the kill grace, over `kill-grace` in the configuration.
pub const KILL_GRACE_ENV: &str = "SPEC_EXEC_KILL_GRACE";
/// How long a `git fetch` or `git push` of spec-exec's may take before it is stopped.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The environment variable that sets the git timeout, over `git-timeout` in the configuration.
pub const GIT_TIMEOUT_ENV: &str = "SPEC_EXEC_GIT_TIMEOUT";
/// The environment variable that sets how many worktree slots may be made at once (by
/// default, the machine's cores).
pub const SLOT_MAKERS_ENV: &str = "SPEC_EXEC_SLOT_MAKERS";
/// How many times a review gate runs its review before it gives up.
pub const DEFAULT_MAX_REVIEW_ROUNDS: u32 = 3;
/// How many times an agent runs for one step of a task before the task fails.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 2;
/// What verifies a task's work in a Cargo workspace when `verify` is not configured.
/// How long a run waits for agents' limits to reset, in all.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(6 * 3600);
pub const DEFAULT_VERIFY: &str = "cargo check --workspace --all-targets";
/// The feature's integration branch: `{prefix}` is the branch prefix, `{feature}` the feature.
pub const DEFAULT_INTEGRATION_BRANCH: &str = "{prefix}/{feature}/integration";

const KEYS: &[&str] = &[
    "features-dir",
    "max-agents",
    "agent",
    "timeout",
    "branch-prefix",
    "max-review-rounds",
    "agents",
    "kill-grace",
    "git-timeout",
    "verify",
    "max-attempts",
    "overlap",
    "integration-branch",
    "allow",
    "yolo",
    "max-cost",
    "on-rate-limit",
    "max-wait",
    "shared-target",
    "ci",
];

/// The keys of the `[….ci]` table.
const CI_KEYS: &[&str] = &["install", "runs-on"];

/// What `cargo spec-exec ci` writes into a CI configuration (`[….ci]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiConfig {
    /// The shell commands that install spec-exec in a job, instead of
    /// `cargo install --locked cargo-spec-exec`.
    pub install: Option<String>,
    /// The runner label of every job (`runs-on`).
    pub runs_on: Option<String>,
}

/// The keys of an `[….agents.<name>]` table.
const AGENT_KEYS: &[&str] = &["command", "allow", "format"];

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Relative to the workspace root.
    pub features_dir: PathBuf,
    pub max_agents: Option<usize>,
    pub agent: Option<AgentSpec>,
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when an agent is stopped.
    pub kill_grace: Option<Duration>,
    /// `git-timeout`: the most a fetch or push of spec-exec's may take.
    pub git_timeout: Option<Duration>,
    pub branch_prefix: String,
    pub max_review_rounds: Option<u32>,
    /// `[….agents.<name>]`: the command that runs the tasks naming that agent
    /// (`_Agent: name_` or the track's `> Primary Agent: name`).
    pub agents: BTreeMap<String, AgentSpec>,
    /// `verify`: the command lines that check a task's work, each split into words; `None`
    /// when not configured (the default applies), empty when configured off.
    pub verify: Option<Vec<VerifyCommand>>,
    pub max_attempts: Option<u32>,
    /// What the plan does about tasks that may run together but declare the same file.
    pub overlap: crate::plan::Overlap,
    /// The integration branch's template (see [`Config::integration_branch`]).
    pub integration_branch: String,
    /// What the presets may do beyond their defaults, in each CLI's own words
    /// (`Bash(npm test:*)` for claude, `run_shell_command(npm test)` for gemini).
    pub allow: Vec<String>,
    /// The same for the agent of one name (`[….agents.<name>] allow`).
    pub agent_allow: BTreeMap<String, Vec<String>>,
    /// The structured output a command of the user's writes (`[….agents.<name>] format`).
    pub agent_format: BTreeMap<String, crate::agents::Format>,
    /// Each preset in its CLI's full-bypass mode: for sandboxes only.
    pub yolo: bool,
    /// The slots share one target directory (each with a build directory of its own).
    pub shared_target: bool,
    /// No new task starts once the agents' reported spend reaches it (US dollars).
    pub max_cost: Option<f64>,
    pub on_rate_limit: Option<OnRateLimit>,
    pub max_wait: Option<Duration>,
    /// `[….ci]`: what `cargo spec-exec ci` writes.
    pub ci: CiConfig,
}

/// What an agent's usage or rate limit does to the run (`--on-rate-limit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnRateLimit {
    /// No new task starts; the run waits until the limit resets, then runs the task again.
    #[default]
    Wait,
    /// No new task starts; the run ends once the running tasks finish (exit 3).
    Stop,
}

/// A verify command: the line as written and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyCommand {
    pub line: String,
    pub argv: Vec<String>,
}

impl VerifyCommand {
    /// Splits `line` into words as a POSIX shell would, without running a shell: quotes
    /// group, `$`, `|`, `;` and the like are plain characters.
    pub fn parse(line: &str) -> std::result::Result<VerifyCommand, String> {
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!(
                "`{}` is not one line (it has a newline or a control character)",
                line.escape_debug()
            ));
        }
        match shlex::split(line) {
            None => Err(format!(
                "`{line}` has an unclosed quote or a trailing backslash"
            )),
            Some(argv) if argv.first().is_some_and(String::is_empty) => {
                Err(format!("`{line}` names no program"))
            }
            Some(argv) if argv.is_empty() => Err("a verify command cannot be empty".to_owned()),
            Some(argv) => Ok(VerifyCommand {
                line: line.trim().to_owned(),
                argv,
            }),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            features_dir: PathBuf::from(DEFAULT_FEATURES_DIR),
            max_agents: None,
            agent: None,
            timeout: None,
            kill_grace: None,
            git_timeout: None,
            branch_prefix: DEFAULT_BRANCH_PREFIX.to_owned(),
            max_review_rounds: None,
            agents: BTreeMap::new(),
            verify: None,
            max_attempts: None,
            allow: Vec::new(),
            agent_allow: BTreeMap::new(),
            agent_format: BTreeMap::new(),
            yolo: false,
            shared_target: false,
            max_cost: None,
            on_rate_limit: None,
            max_wait: None,
            overlap: crate::plan::Overlap::default(),
            integration_branch: DEFAULT_INTEGRATION_BRANCH.to_owned(),
            ci: CiConfig::default(),
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
        self.locate_path(key.as_slice())
    }

    /// Where the key at `path` below the table is defined: `command = …` under
    /// `[workspace.metadata.spec-exec.agents.reviewer]`, `agents.reviewer.command = …` under
    /// `[workspace.metadata.spec-exec]`, and so on, at the key's name. When it is not there, the
    /// nearest key above it that is (a key holding an inline table is as far as it goes), or the
    /// table's header, else the manifest.
    fn locate_path(&self, path: &[&str]) -> Location {
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
        let Ok(doc) = toml_edit::Document::parse(text) else {
            return fallback;
        };
        let target: Vec<&str> = self.table.split('.').chain(path.iter().copied()).collect();
        let base = target.len() - path.len();
        let mut table = doc.as_table();
        let mut best = None;
        for (depth, name) in target.iter().enumerate() {
            let Some((key, item)) = table.get_key_value(name) else {
                break;
            };
            let header = item.as_table().and_then(toml_edit::Table::span);
            // Below the table, the key's name; the table itself, its header.
            let span = if depth + 1 > base {
                key.span().or(header)
            } else {
                header.or_else(|| key.span())
            };
            if depth + 1 >= base && span.is_some() {
                best = span;
            }
            match item {
                toml_edit::Item::Table(t) => table = t,
                _ => break,
            }
        }
        best.map_or(fallback, |span| loc_at(self.manifest, text, span))
    }
}

/// The location of the bytes `span` of `text` (cut at the end of its first line); of a quoted
/// key, the name inside the quotes.
fn loc_at(path: &Path, text: &str, mut span: std::ops::Range<usize>) -> Location {
    if let Some(inner) = text.get(span.clone())
        && inner.len() >= 2
        && ((inner.starts_with('"') && inner.ends_with('"'))
            || (inner.starts_with('\'') && inner.ends_with('\'')))
    {
        span = span.start + 1..span.end - 1;
    }
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let end = span.end.clamp(start, line_end);
    Location {
        path: path.to_path_buf(),
        line: text[..start].matches('\n').count() + 1,
        column: text[line_start..start].chars().count() + 1,
        line_text: text[line_start..line_end].trim_end_matches('\r').to_owned(),
        width: text[start..end]
            .trim_end_matches('\r')
            .chars()
            .count()
            .max(1),
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
            // What the agents may do and how their work is checked and paid for.
            if let Some(read) = agent_work_key(key, value, &mut config) {
                if let Err((what, help)) = read {
                    problems.push(bad(&what).help(help));
                }
                continue;
            }
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
                    Some(AgentSpec::Preset(name)) if !is_preset(&name) => {
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
                "agents" => match value.as_object() {
                    Some(agents) => {
                        for (name, value) in agents {
                            match agent_entry(name, value, src) {
                                Ok((spec, allow, format)) => {
                                    config.agents.insert(name.clone(), spec);
                                    if !allow.is_empty() {
                                        config.agent_allow.insert(name.clone(), allow);
                                    }
                                    if let Some(format) = format {
                                        config.agent_format.insert(name.clone(), format);
                                    }
                                }
                                Err(mut d) => problems.append(&mut d),
                            }
                        }
                    }
                    None => problems.push(bad("expected a table of agent names").help(format!(
                        "e.g. [{}.agents.reviewer] with command = \"codex\"",
                        src.table
                    ))),
                },
                "timeout" => match value.as_str().map(parse_duration) {
                    Some(Ok(d)) => config.timeout = Some(d),
                    Some(Err(why)) => problems.push(bad(&why).help("e.g. timeout = \"30m\"")),
                    None => problems.push(bad("expected a duration string").help("e.g. timeout = \"30m\"")),
                },
                "git-timeout" => match value.as_str().map(parse_duration) {
                    Some(Ok(d)) => config.git_timeout = Some(d),
                    Some(Err(why)) => problems.push(bad(&why).help("e.g. git-timeout = \"10m\"")),
                    None => problems.push(bad("expected a duration string").help("e.g. git-timeout = \"10m\"")),
                },
                "kill-grace" => match value.as_str().map(parse_span) {
                    Some(Ok(d)) => config.kill_grace = Some(d),
                    Some(Err(why)) => problems.push(bad(&why).help("e.g. kill-grace = \"5s\"")),
                    None => problems.push(bad("expected a duration string").help("e.g. kill-grace = \"5s\"")),
                },
                "branch-prefix" => match value.as_str() {
                    Some(s) => match validate_branch_prefix(s) {
                        Ok(()) => config.branch_prefix = s.to_owned(),
                        Err(why) => problems.push(bad(&why).help("e.g. branch-prefix = \"spec\"")),
                    },
                    None => problems.push(bad("expected a string").help("e.g. branch-prefix = \"spec\"")),
                },
                "overlap" => match value.as_str().and_then(crate::plan::Overlap::from_name) {
                    Some(mode) => config.overlap = mode,
                    None => problems.push(
                        bad(&format!(
                            "expected one of {}",
                            crate::plan::Overlap::NAMES.map(|n| format!("\"{n}\"")).join(", ")
                        ))
                        .help("e.g. overlap = \"serialize\" (the later of two tasks that declare the same file waits for the earlier)"),
                    ),
                },
                "ci" => match value.as_object() {
                    Some(ci) => {
                        for (sub, value) in ci {
                            let loc = src.locate_path(&["ci", sub]);
                            let bad = |what: &str| {
                                Diagnostic::error(format!(
                                    "invalid `{sub}` in [{}.ci]: {what}",
                                    src.table
                                ))
                                .at(loc.clone())
                            };
                            match (sub.as_str(), value.as_str()) {
                                ("install", Some(s)) if !s.trim().is_empty() => {
                                    config.ci.install = Some(s.to_owned());
                                }
                                ("install", _) => problems.push(bad("expected the shell commands that install cargo-spec-exec").help(
                                    "e.g. install = \"cargo install --locked --git https://example.com/cargo-spec-exec\"",
                                )),
                                ("runs-on", Some(s)) if valid_runner_label(s) => {
                                    config.ci.runs_on = Some(s.to_owned());
                                }
                                ("runs-on", _) => problems.push(bad("expected a runner label: one line, not empty").help(
                                    "e.g. runs-on = \"ubuntu-24.04\"",
                                )),
                                _ => problems.push(
                                    Diagnostic::error(format!("unknown key `{sub}` in [{}.ci]", src.table))
                                        .at(loc)
                                        .label("not a spec-exec setting")
                                        .help(format!("the keys are: {}", CI_KEYS.join(", "))),
                                ),
                            }
                        }
                    }
                    None => problems.push(bad("expected a table").help(format!(
                        "e.g. [{}.ci] with install = \"cargo install --locked cargo-spec-exec\"",
                        src.table
                    ))),
                },
                "integration-branch" => match value.as_str() {
                    Some(s) => config.integration_branch = s.to_owned(),
                    None => problems.push(bad("expected a string").help(INTEGRATION_HELP)),
                },
                _ => problems.push(
                    Diagnostic::error(format!("unknown key `{key}` in [{}]", src.table))
                        .at(loc)
                        .label("not a spec-exec setting")
                        .help(format!("the keys are: {}", KEYS.join(", "))),
                ),
            }
        }
        // Checked with the prefix it is used with, whichever key came first.
        if table
            .get("integration-branch")
            .is_some_and(Value::is_string)
            && !problems
                .iter()
                .any(|d| d.message.contains("`branch-prefix`"))
            && let Err(why) =
                validate_integration_branch(&config.integration_branch, &config.branch_prefix)
        {
            problems.push(
                Diagnostic::error(format!(
                    "invalid `integration-branch` in [{}]: {why}",
                    src.table
                ))
                .at(src.locate(Some("integration-branch")))
                .help(INTEGRATION_HELP),
            );
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(Error::Diagnostics(problems))
        }
    }
}

impl Config {
    /// The feature's integration branch: the `integration-branch` template with `{prefix}`
    /// and `{feature}` filled in (`spec/user-auth/integration` by default).
    pub fn integration_branch(&self, feature: &str) -> String {
        expand_integration_branch(&self.integration_branch, &self.branch_prefix, feature)
    }
}

/// A runner label: one line of printable characters, not empty.
pub fn valid_runner_label(label: &str) -> bool {
    !label.trim().is_empty() && !label.chars().any(char::is_control)
}

const INTEGRATION_HELP: &str = "e.g. integration-branch = \"{prefix}/{feature}/integration\" ({prefix} is the branch prefix, {feature} the feature's name)";

fn expand_integration_branch(template: &str, prefix: &str, feature: &str) -> String {
    template
        .replace("{prefix}", prefix)
        .replace("{feature}", feature)
}

/// Checks an `integration-branch` template: `{prefix}` and `{feature}` are its only
/// placeholders, it names the feature, and it makes a branch name git takes that is not where
/// the feature's task branches (`<prefix>/<feature>/<task-id>`) go.
pub fn validate_integration_branch(
    template: &str,
    prefix: &str,
) -> std::result::Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        let tail = &rest[open..];
        match ["{prefix}", "{feature}"]
            .iter()
            .find(|p| tail.starts_with(*p))
        {
            Some(p) => rest = &tail[p.len()..],
            None => {
                let bad = tail
                    .find('}')
                    .filter(|_| tail.starts_with('{'))
                    .map_or(&tail[..1], |end| &tail[..=end]);
                return Err(format!(
                    "`{bad}` is not a placeholder (the placeholders are {{prefix}} and {{feature}})"
                ));
            }
        }
    }
    if !template.contains("{feature}") {
        return Err(format!(
            "`{template}` does not name the feature: every feature needs a branch of its own"
        ));
    }
    let sample = "user-auth";
    let branch = expand_integration_branch(template, prefix, sample);
    if branch.is_empty()
        || branch.starts_with('/')
        || branch.starts_with('-')
        || branch.starts_with("refs/")
        || branch.ends_with('/')
        || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
        // The work branch it is built on.
        || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}.next"))
    {
        return Err(format!(
            "`{template}` makes `{branch}` for a feature `{sample}`, which is not a valid git branch name"
        ));
    }
    let tasks = format!("{prefix}/{sample}");
    if tasks == branch || tasks.starts_with(&format!("{branch}/")) {
        return Err(format!(
            "`{template}` makes `{branch}` for a feature `{sample}`, where its task branches (`{tasks}/<task-id>`) go: git cannot hold a branch and branches below it"
        ));
    }
    Ok(())
}

/// The help for a bad agent command.
const AGENT_HELP: &str = "use one of claude, codex, gemini, aider, shell, or a list of arguments: [\"my-agent\", \"--flag\"]";

/// Checks the name of an `[….agents.<name>]` table: a name as tasks write it in
/// `_Agent: name_`, which is also the persona file's name (`.claude/agents/<name>.md`).
pub fn validate_agent_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("an agent name cannot be empty".to_owned());
    }
    if name.starts_with('.') {
        return Err(format!("`{name}` starts with a dot"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "`{name}` has {}, which an agent name cannot have",
            match c {
                ' ' => "a space".to_owned(),
                c if c.is_whitespace() || c.is_control() => format!("the character {c:?}"),
                c => format!("`{c}`"),
            }
        ));
    }
    Ok(())
}

/// One `[….agents.<name>]` table.
fn agent_entry(
    name: &str,
    value: &Value,
    src: &TableSource<'_>,
) -> std::result::Result<(AgentSpec, Vec<String>, Option<crate::agents::Format>), Vec<Diagnostic>> {
    let table = format!("{}.agents.{}", src.table, toml_key(name));
    let example = format!("e.g. [{table}] with command = \"codex\"");
    if let Err(why) = validate_agent_name(name) {
        return Err(vec![
            Diagnostic::error(format!("invalid agent name in [{}.agents]: {why}", src.table))
                .at(src.locate_path(&["agents", name]))
                .help("name it as the tasks do in `_Agent: name_`: letters, digits, `-`, `_` and `.`, e.g. code-reviewer"),
        ]);
    }
    let Some(entries) = value.as_object() else {
        return Err(vec![
            Diagnostic::error(format!(
                "invalid `agents.{}` in [{}]: expected a table",
                toml_key(name),
                src.table
            ))
            .at(src.locate_path(&["agents", name]))
            .help(example),
        ]);
    };
    let mut problems = Vec::new();
    let mut command = None;
    let mut allow = Vec::new();
    let mut format = None;
    for (key, value) in entries {
        let loc = src.locate_path(&["agents", name, key]);
        if key == "format" {
            match value.as_str().and_then(crate::agents::Format::parse) {
                Some(f) => format = Some(f),
                None => problems.push(
                    Diagnostic::error(format!(
                        "invalid `format` in [{table}]: expected one of {}",
                        crate::agents::Format::NAMES
                    ))
                    .at(loc)
                    .help("e.g. format = \"claude-stream\" for a command that prints claude's stream-json"),
                ),
            }
            continue;
        }
        if key == "allow" {
            match string_list(value) {
                Some(list) => allow = list,
                None => problems.push(
                    Diagnostic::error(format!(
                        "invalid `allow` in [{table}]: expected a list of strings"
                    ))
                    .at(loc)
                    .help("e.g. allow = [\"Bash(npm test:*)\"] (in the agent CLI's own words)"),
                ),
            }
            continue;
        }
        if key != "command" {
            problems.push(
                Diagnostic::error(format!("unknown key `{key}` in [{table}]"))
                    .at(loc)
                    .label("not an agent setting")
                    .help(format!("the keys are: {}", AGENT_KEYS.join(", "))),
            );
            continue;
        }
        let bad = |what: &str| {
            Diagnostic::error(format!("invalid `command` in [{table}]: {what}")).at(loc.clone())
        };
        match agent_spec(value) {
            Some(AgentSpec::Preset(p)) if !is_preset(&p) => {
                problems.push(bad(&format!("`{p}` is not an agent preset")).help(AGENT_HELP));
            }
            Some(spec) => command = Some(spec),
            None => problems.push(
                bad("expected a preset name or a list of arguments")
                    .help("e.g. command = \"codex\" or command = [\"my-agent\", \"--flag\"]"),
            ),
        }
    }
    // A table named after a preset configures it (`[….agents.claude] allow = […]`).
    if command.is_none() && is_preset(name) {
        command = Some(AgentSpec::Preset(name.to_owned()));
    }
    if problems.is_empty() && command.is_none() {
        problems.push(
            Diagnostic::error(format!("[{table}] has no `command`"))
                .at(src.locate_path(&["agents", name]))
                .help("give the command that runs this agent's tasks, e.g. command = \"codex\"")
                .note("leave the table out and the tasks naming this agent run with the default agent and its persona file"),
        );
    }
    match command {
        Some(spec) if problems.is_empty() => Ok((spec, allow, format)),
        _ => Err(problems),
    }
}

/// A TOML key as it would be written: bare when it can be, quoted otherwise.
/// Reads one of the keys of what agents may do and how their work is checked and paid for
/// into `config`: `None` when `key` is not one of them, else what is wrong and how to write it.
fn agent_work_key(
    key: &str,
    value: &Value,
    config: &mut Config,
) -> Option<std::result::Result<(), (String, &'static str)>> {
    let bad = |what: &str, help: &'static str| Some(Err((what.to_owned(), help)));
    match key {
        "allow" => match string_list(value) {
            Some(list) => config.allow = list,
            None => {
                return bad(
                    "expected a list of strings",
                    "e.g. allow = [\"Bash(npm test:*)\"] (in the agent CLI's own words; see the README's presets table)",
                );
            }
        },
        "on-rate-limit" => match value.as_str() {
            Some("wait") => config.on_rate_limit = Some(OnRateLimit::Wait),
            Some("stop") => config.on_rate_limit = Some(OnRateLimit::Stop),
            _ => {
                return bad(
                    "expected \"wait\" or \"stop\"",
                    "e.g. on-rate-limit = \"stop\"",
                );
            }
        },
        "max-wait" => match value.as_str().map(parse_duration) {
            Some(Ok(d)) => config.max_wait = Some(d),
            Some(Err(why)) => return bad(&why, "e.g. max-wait = \"2h\""),
            None => return bad("expected a duration string", "e.g. max-wait = \"2h\""),
        },
        "max-cost" => match value.as_f64() {
            Some(v) if v.is_finite() && v > 0.0 => config.max_cost = Some(v),
            _ => {
                return bad(
                    "expected a positive number of US dollars",
                    "e.g. max-cost = 5.0",
                );
            }
        },
        "yolo" => match value.as_bool() {
            Some(b) => config.yolo = b,
            None => return bad("expected true or false", "e.g. yolo = true"),
        },
        "shared-target" => match value.as_bool() {
            Some(b) => config.shared_target = b,
            None => return bad("expected true or false", "e.g. shared-target = true"),
        },
        "max-attempts" => match value.as_u64() {
            Some(n) if (1..=100).contains(&n) => config.max_attempts = Some(n as u32),
            _ => {
                return bad(
                    "expected a whole number from 1 to 100",
                    "e.g. max-attempts = 2",
                );
            }
        },
        "verify" => match verify_list(value) {
            Ok(list) => config.verify = Some(list),
            Err(why) => {
                return bad(
                    &why,
                    "give a list of command lines, e.g. verify = [\"cargo check --workspace --all-targets\", \"cargo test --workspace\"], or verify = [] for none",
                );
            }
        },
        _ => return None,
    }
    Some(Ok(()))
}

/// A list of non-empty strings.
fn string_list(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| {
            v.as_str()
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        })
        .collect()
}

/// `verify = ["cmd …", …]`: each line split into words.
fn verify_list(value: &Value) -> std::result::Result<Vec<VerifyCommand>, String> {
    let Some(items) = value.as_array() else {
        return Err("expected a list of command lines".to_owned());
    };
    items
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| "every entry must be a string".to_owned())
                .and_then(VerifyCommand::parse)
        })
        .collect()
}

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        key.to_owned()
    } else {
        format!("{key:?}")
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

/// Parses a duration as humantime reads it (`30m`, `90s`, `1h30m`, `1h 30min`, `500ms`), or a
/// bare number of seconds; zero is allowed.
pub fn parse_span(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    match s.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(s)
            .map_err(|why| format!("`{s}` is not a duration: {why} (use e.g. 90s, 30m, 1h30m)")),
    }
}

/// A timeout: a duration ([`parse_span`]) longer than zero.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    match parse_span(s)? {
        d if d.is_zero() => Err("it must be longer than zero".to_owned()),
        d => Ok(d),
    }
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
        // humantime's other spellings, and zero where zero makes sense.
        assert_eq!(parse_duration("1h 30min"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2mins 5secs"), Ok(Duration::from_secs(125)));
        assert_eq!(parse_span("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_span("0"), Ok(Duration::ZERO));
        assert!(parse_span("").is_err());
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
    fn the_ci_table_is_read_and_checked_at_its_keys() {
        let value =
            serde_json::json!({"ci": {"install": "make install-tool", "runs-on": "self-hosted"}});
        let c = Config::from_value(Some(&value), &src("")).unwrap();
        assert_eq!(c.ci.install.as_deref(), Some("make install-tool"));
        assert_eq!(c.ci.runs_on.as_deref(), Some("self-hosted"));
        let text = "[workspace]\n\n[workspace.metadata.spec-exec.ci]\ninstall = \"\"\nruns-on = \"a\\nb\"\nimage = 1\n";
        let value = serde_json::json!({"ci": {"install": "", "runs-on": "a\nb", "image": 1}});
        let Err(Error::Diagnostics(d)) = Config::from_value(Some(&value), &src(text)) else {
            panic!("expected errors");
        };
        let shown: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "Cargo.toml:6:1: unknown key `image` in [workspace.metadata.spec-exec.ci]",
                "Cargo.toml:4:1: invalid `install` in [workspace.metadata.spec-exec.ci]: expected the shell commands that install cargo-spec-exec",
                "Cargo.toml:5:1: invalid `runs-on` in [workspace.metadata.spec-exec.ci]: expected a runner label: one line, not empty",
            ]
        );
        let value = serde_json::json!({"ci": "cargo install"});
        assert!(Config::from_value(Some(&value), &src("")).is_err());
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
        let ok = serde_json::json!({"agent": ["my-agent", "--fast"], "timeout": "10m", "kill-grace": "250ms", "branch-prefix": "team/spec", "max-review-rounds": 2});
        let c = Config::from_value(Some(&ok), &src("")).unwrap();
        assert_eq!(
            c.agent,
            Some(AgentSpec::Argv(vec!["my-agent".into(), "--fast".into()]))
        );
        assert_eq!(c.branch_prefix, "team/spec");
        assert_eq!(c.max_review_rounds, Some(2));
        assert_eq!(c.kill_grace, Some(Duration::from_millis(250)));
    }

    #[test]
    fn verify_commands_are_split_into_words() {
        let value = serde_json::json!({
            "verify": ["cargo check --workspace", "sh -c 'cargo test | tee out'"],
            "max-attempts": 3
        });
        let c = Config::from_value(Some(&value), &src("")).unwrap();
        let verify = c.verify.unwrap();
        assert_eq!(verify[0].argv, ["cargo", "check", "--workspace"]);
        assert_eq!(verify[1].argv, ["sh", "-c", "cargo test | tee out"]);
        assert_eq!(c.max_attempts, Some(3));
        let off = serde_json::json!({"verify": []});
        assert_eq!(
            Config::from_value(Some(&off), &src("")).unwrap().verify,
            Some(vec![])
        );
        for bad in [
            serde_json::json!({"verify": "cargo check"}),
            serde_json::json!({"verify": ["cargo 'check"]}),
            serde_json::json!({"verify": ["  "]}),
            serde_json::json!({"verify": [["cargo", "check"]]}),
            serde_json::json!({"max-attempts": 0}),
        ] {
            assert!(
                Config::from_value(Some(&bad), &src("")).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn what_the_presets_may_do_is_configured() {
        let value = serde_json::json!({
            "allow": ["Bash(npm test *)"],
            "yolo": true,
            "agents": {"claude": {"allow": ["Bash(make *)"]}, "reviewer": {"command": "codex", "allow": ["/opt"]}}
        });
        let c = Config::from_value(Some(&value), &src("")).unwrap();
        assert_eq!(c.allow, ["Bash(npm test *)"]);
        assert!(c.yolo);
        assert_eq!(c.agents["claude"], AgentSpec::Preset("claude".into()));
        assert_eq!(c.agent_allow["claude"], ["Bash(make *)"]);
        assert_eq!(c.agent_allow["reviewer"], ["/opt"]);
        for bad in [
            serde_json::json!({"allow": "Bash(x)"}),
            serde_json::json!({"allow": [""]}),
            serde_json::json!({"yolo": "yes"}),
            serde_json::json!({"agents": {"writer": {"allow": ["x"]}}}),
            serde_json::json!({"agents": {"claude": {"allow": [1]}}}),
        ] {
            assert!(
                Config::from_value(Some(&bad), &src("")).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn a_bad_kill_grace_is_located() {
        let text = "[workspace.metadata.spec-exec]\nkill-grace = \"soon\"\n";
        let value = serde_json::json!({"kill-grace": "soon"});
        let e = errors(text, &value);
        assert!(
            e[0].starts_with("Cargo.toml:2:1: invalid `kill-grace` in [workspace.metadata.spec-exec]: `soon` is not a duration"),
            "{e:?}"
        );
        let zero = serde_json::json!({"kill-grace": "0s"});
        let c = Config::from_value(Some(&zero), &src(text)).unwrap();
        assert_eq!(c.kill_grace, Some(Duration::ZERO));
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

    #[test]
    fn agent_commands_by_name() {
        let value = serde_json::json!({
            "agent": "shell",
            "agents": {
                "reviewer": {"command": ["my-reviewer", "--model", "big"]},
                "writer": {"command": "codex"},
            }
        });
        let c = Config::from_value(Some(&value), &src("")).unwrap();
        assert_eq!(
            c.agents.get("reviewer"),
            Some(&AgentSpec::Argv(vec![
                "my-reviewer".into(),
                "--model".into(),
                "big".into()
            ]))
        );
        assert_eq!(
            c.agents.get("writer"),
            Some(&AgentSpec::Preset("codex".into()))
        );
    }

    fn errors(text: &str, value: &Value) -> Vec<String> {
        match Config::from_value(Some(value), &src(text)) {
            Err(Error::Diagnostics(d)) => d.iter().map(ToString::to_string).collect(),
            other => panic!("expected errors, got {other:?}"),
        }
    }

    #[test]
    fn agent_table_errors_are_located() {
        let text = "[workspace]\n\n[workspace.metadata.spec-exec]\nmax-agents = 2\n\n\
                    [workspace.metadata.spec-exec.agents.reviewer]\ncommand = \"codex\"\nmodel = \"o3\"\n";
        let value = serde_json::json!({"max-agents": 2, "agents": {"reviewer": {"command": "codex", "model": "o3"}}});
        assert_eq!(
            errors(text, &value),
            [
                "Cargo.toml:8:1: unknown key `model` in [workspace.metadata.spec-exec.agents.reviewer]"
            ]
        );

        // Quoted keys, dotted keys and inline tables.
        let text = "[workspace.\"metadata\".spec-exec.agents]\nreviewer.command = \"nope\"\n";
        let value = serde_json::json!({"agents": {"reviewer": {"command": "nope"}}});
        assert_eq!(
            errors(text, &value),
            [
                "Cargo.toml:2:10: invalid `command` in [workspace.metadata.spec-exec.agents.reviewer]: `nope` is not an agent preset"
            ]
        );
        let text =
            "[workspace.metadata.spec-exec]\nagents = { \"a b\" = { command = \"codex\" } }\n";
        let value = serde_json::json!({"agents": {"a b": {"command": "codex"}}});
        assert_eq!(
            errors(text, &value),
            [
                "Cargo.toml:2:1: invalid agent name in [workspace.metadata.spec-exec.agents]: `a b` has a space, which an agent name cannot have"
            ]
        );

        // Not a table; a table without `command`; a command that is not one.
        let value = serde_json::json!({"agents": ["reviewer"]});
        assert_eq!(errors("", &value).len(), 1);
        let value = serde_json::json!({"agents": {"reviewer": "codex", "writer": {}, "tester": {"command": [1]}}});
        let e = errors("", &value);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e.iter().any(
                |e| e.contains("[workspace.metadata.spec-exec.agents.writer] has no `command`")
            )
        );
        assert!(e.iter().any(|e| e.contains(
            "invalid `agents.reviewer` in [workspace.metadata.spec-exec]: expected a table"
        )));
        assert!(e.iter().any(|e| {
            e.contains("invalid `command` in [workspace.metadata.spec-exec.agents.tester]")
        }));
    }

    #[test]
    fn text_inside_strings_and_comments_is_not_a_key() {
        // A multi-line string and a comment that read like keys: the error is at the real key.
        let text = "[workspace.metadata.spec-exec]\n\
                    # timeout = \"10m\"\n\
                    agent = [\"sh\", \"-c\", \"\"\"\n\
                    timeout = 1\n\
                    \"\"\"]\n\
                    \ttimeout = \"forever\"\n";
        let value =
            serde_json::json!({"agent": ["sh", "-c", "timeout = 1\n"], "timeout": "forever"});
        let e = errors(text, &value);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("Cargo.toml:6:2: invalid `timeout` in [workspace.metadata.spec-exec]"),
            "{e:?}"
        );
    }

    #[test]
    fn agent_names() {
        for ok in ["reviewer", "rust-developer", "qa_2", "v1.2", "dévelopeur"] {
            assert_eq!(validate_agent_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "a\\b", "tab\there"] {
            assert!(validate_agent_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overlap_is_read_and_checked() {
        assert_eq!(Config::default().overlap, crate::plan::Overlap::Warn);
        let value = serde_json::json!({"overlap": "serialize"});
        let c = Config::from_value(Some(&value), &src("")).unwrap();
        assert_eq!(c.overlap, crate::plan::Overlap::Serialize);
        let text = "[workspace.metadata.spec-exec]\nmax-agents = 2\noverlap = \"always\"\n";
        let value = serde_json::json!({"max-agents": 2, "overlap": "always"});
        assert_eq!(
            errors(text, &value),
            [
                "Cargo.toml:3:1: invalid `overlap` in [workspace.metadata.spec-exec]: expected one of \"warn\", \"serialize\""
            ]
        );
        assert_eq!(errors("", &serde_json::json!({"overlap": true})).len(), 1);
    }

    #[test]
    fn the_integration_branch_fills_in_its_template() {
        let c = Config::default();
        assert_eq!(
            c.integration_branch("user-auth"),
            "spec/user-auth/integration"
        );
        let value = serde_json::json!({
            "branch-prefix": "team/spec",
            "integration-branch": "{prefix}/{feature}-integration",
        });
        let c = Config::from_value(Some(&value), &src("")).unwrap();
        assert_eq!(
            c.integration_branch("user-auth"),
            "team/spec/user-auth-integration"
        );
        // Checked with the configured prefix, whichever key comes first.
        let value = serde_json::json!({"integration-branch": "{prefix}/{feature}", "branch-prefix": "team/spec"});
        let e = errors("", &value);
        assert!(e[0].contains("makes `team/spec/user-auth`"), "{e:?}");
    }

    #[test]
    fn integration_branch_templates() {
        for ok in [
            "{prefix}/{feature}/integration",
            "{prefix}/{feature}-integration",
            "integration/{feature}",
            "{feature}",
        ] {
            assert_eq!(validate_integration_branch(ok, "spec"), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("{prefix}/{feature}/{task}", "`{task}` is not a placeholder"),
            ("{prefix}/{feature}/{", "`{` is not a placeholder"),
            ("{prefix}/{feature}}", "`}` is not a placeholder"),
            ("{prefix}/integration", "does not name the feature"),
            ("{prefix}/{feature}/", "not a valid git branch name"),
            ("{prefix}/{feature} x", "not a valid git branch name"),
            ("{prefix}/{feature}.lock", "not a valid git branch name"),
            ("{prefix}/{feature}", "where its task branches"),
        ] {
            let e = validate_integration_branch(bad, "spec").expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bad_integration_branch_is_located() {
        let text = "[workspace]\n\n[workspace.metadata.spec-exec]\nintegration-branch = \"{prefix}/{feature}/{id}\"\n";
        let value = serde_json::json!({"integration-branch": "{prefix}/{feature}/{id}"});
        let e = errors(text, &value);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("Cargo.toml:4:1: invalid `integration-branch` in [workspace.metadata.spec-exec]: `{id}` is not a placeholder"),
            "{e:?}"
        );
        assert_eq!(
            errors("", &serde_json::json!({"integration-branch": 3})).len(),
            1
        );
    }

    #[test]
    fn keys_are_located_in_nested_tables() {
        let text = "[workspace]\nmembers = []\n\n[workspace.metadata.spec-exec]\nagent = \"x\"\n\n\
                    [workspace.metadata.spec-exec.agents.a]\ncommand = [\n  \"x = 1\",\n]\n\
                    [workspace.metadata.spec-exec.agents.b]\n";
        let s = src(text);
        assert_eq!(s.locate(None).line, 4);
        assert_eq!(s.locate(Some("agent")).line, 5);
        assert_eq!(s.locate(Some("timeout")).line, 4, "the table's header");
        assert_eq!(s.locate_path(&["agents", "a", "command"]).line, 8);
        let b = s.locate_path(&["agents", "b", "command"]);
        assert_eq!((b.line, b.column), (11, 38), "b's header, at its name");
    }
}
