//! Which agent runs a task: the presets, the configured and `--agent` commands, the agents per
//! task name, their persona files, and the lineup `--dry-run` shows.
//!
//! A leaf module: it decides from plain values (the configuration's [`AgentSpec`]s and the
//! `--agent` line) and imports nothing from `config`, `plan` or `exec`, which import it. How an
//! agent's process is started, timed and stopped is `exec::process`.
//!
//! An agent is an argv, never a shell line (unless the user's argv names a shell). Its program is
//! looked for once, when the run is checked, against the caller's directory and `PATH`, and run by
//! that absolute path: `--agent ./my-agent` means the caller's `./my-agent`, not one in the
//! task's worktree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An agent as configured: a preset name, or an argv list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSpec {
    Preset(String),
    Argv(Vec<String>),
}

/// Placeholder for the prompt file's path in a preset's argv.
pub const PROMPT_FILE: &str = "{prompt_file}";

/// Placeholder for the directory cargo builds in (the worktree's `CARGO_TARGET_DIR`, outside
/// the worktree), for a sandbox that has to be told it may write there.
pub const TARGET_DIR: &str = "{target_dir}";

/// The built-in presets: each CLI's documented non-interactive mode, prompt on stdin (or, for
/// aider, in a file) and file edits allowed. The one place these argvs are written.
pub const PRESETS: &[(&str, &[&str])] = &[
    (
        "claude",
        &["claude", "-p", "--permission-mode", "acceptEdits"],
    ),
    (
        "codex",
        &["codex", "exec", "--sandbox", "workspace-write", "-"],
    ),
    (
        "gemini",
        &[
            "gemini",
            "--skip-trust",
            "--approval-mode",
            "auto_edit",
            "-p",
            GEMINI_PROMPT,
        ],
    ),
    (
        "aider",
        &[
            "aider",
            "--yes-always",
            "--no-auto-commits",
            "--message-file",
            PROMPT_FILE,
        ],
    ),
];

/// An agent CLI's structured output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `claude -p --output-format stream-json --verbose`.
    ClaudeStream,
    /// `codex exec --json`.
    CodexJson,
    /// `gemini --output-format stream-json`.
    GeminiStream,
}

impl Format {
    /// The configuration's name of a format.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "claude-stream" => Some(Format::ClaudeStream),
            "codex-json" => Some(Format::CodexJson),
            "gemini-stream" => Some(Format::GeminiStream),
            _ => None,
        }
    }

    pub const NAMES: &'static str = "claude-stream, codex-json, gemini-stream";
}

/// What a preset may do, beyond editing files in its worktree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// More, in the CLI's own words (`allow` in the configuration).
    pub allow: Vec<String>,
    /// The verify command lines, which the agent may run itself.
    pub verify: Vec<String>,
    /// The CLI's full-bypass mode (`--yolo`): for sandboxes only.
    pub yolo: bool,
    /// Where cargo keeps its registry and builds its tools (`CARGO_HOME`), which a sandboxed
    /// agent must be able to write to download crates.
    pub cargo_home: Option<PathBuf>,
}

/// The shell commands every preset may run: the build, the tests, and git commands that only
/// read.
const ALLOWED_COMMANDS: &[&str] = &["cargo", "git status", "git diff", "git log", "git show"];

/// A preset's argv with the permissions `p` gives it (and the environment it needs); other
/// agents are left as they are: their argv is the user's.
pub fn with_permissions(agent: Agent, p: &Permissions) -> Agent {
    let Agent::Command {
        name,
        mut argv,
        mut env,
        preset: true,
        ..
    } = agent
    else {
        return agent;
    };
    let mut format = None;
    let program = argv[0].clone();
    let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    argv = match name.as_str() {
        "claude" => {
            format = Some(Format::ClaudeStream);
            let mut a = words(&[
                "claude",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
            ]);
            if p.yolo {
                a.push("--dangerously-skip-permissions".to_owned());
                return finish(name, program, a, env, format);
            }
            a.extend(words(&[
                "--permission-mode",
                "acceptEdits",
                "--allowedTools",
            ]));
            a.extend(ALLOWED_COMMANDS.iter().map(|c| format!("Bash({c} *)")));
            a.extend(
                p.verify
                    .iter()
                    .filter(|v| !v.starts_with("cargo "))
                    .map(|v| format!("Bash({v})")),
            );
            a.extend(p.allow.iter().cloned());
            a
        }
        "codex" => {
            format = Some(Format::CodexJson);
            let mut a = words(&["codex", "exec", "--json"]);
            if p.yolo {
                a.extend(words(&["--dangerously-bypass-approvals-and-sandbox", "-"]));
                return finish(name, program, a, env, format);
            }
            a.extend(words(&[
                "--sandbox",
                "workspace-write",
                "-c",
                "sandbox_workspace_write.network_access=true",
            ]));
            for dir in p
                .cargo_home
                .iter()
                .map(|d| d.display().to_string())
                .chain(p.allow.iter().cloned())
            {
                a.extend(["--add-dir".to_owned(), dir]);
            }
            a.extend(["--add-dir".to_owned(), TARGET_DIR.to_owned()]);
            a.push("-".to_owned());
            a
        }
        "gemini" => {
            env.push(("GEMINI_CLI_TRUST_WORKSPACE".to_owned(), "true".to_owned()));
            let mode = if p.yolo { "yolo" } else { "auto_edit" };
            format = Some(Format::GeminiStream);
            let mut a = words(&[
                "gemini",
                "--skip-trust",
                "--output-format",
                "stream-json",
                "--approval-mode",
                mode,
            ]);
            if !p.yolo {
                let tools: Vec<String> = ALLOWED_COMMANDS
                    .iter()
                    .map(|c| (*c).to_owned())
                    .chain(
                        p.verify
                            .iter()
                            .filter(|v| !v.starts_with("cargo "))
                            .cloned(),
                    )
                    .map(|c| format!("run_shell_command({c})"))
                    .chain(p.allow.iter().cloned())
                    .collect();
                a.push("--allowed-tools".to_owned());
                a.push(tools.join(","));
            }
            a.extend(words(&["-p", GEMINI_PROMPT]));
            a
        }
        "aider" => {
            let mut a = words(&["aider", "--yes-always", "--no-auto-commits"]);
            a.extend(p.allow.iter().cloned());
            a.extend(["--message-file".to_owned(), PROMPT_FILE.to_owned()]);
            a
        }
        _ => argv,
    };
    finish(name, program, argv, env, format)
}

/// A preset with its argv (run by `program`, the path its CLI was found at), environment and
/// output format.
fn finish(
    name: String,
    program: String,
    mut argv: Vec<String>,
    env: Vec<(String, String)>,
    format: Option<Format>,
) -> Agent {
    argv[0] = program;
    Agent::Command {
        name,
        argv,
        env,
        preset: true,
        format,
    }
}

/// Makes a preset's `argv` resume its CLI's `session`, where the CLI can:
/// `claude -p --resume <id> …`, `codex exec … resume <id> -`. Whether it did.
pub fn resume_session(preset: &str, argv: &mut Vec<String>, session: &str) -> bool {
    let words = |w: &str| [w.to_owned(), session.to_owned()];
    match preset {
        "claude" if argv.len() >= 2 => {
            argv.splice(2..2, words("--resume"));
            true
        }
        "codex" if argv.last().is_some_and(|a| a == "-") => {
            let at = argv.len() - 1;
            argv.splice(at..at, words("resume"));
            true
        }
        _ => false,
    }
}

/// `agent` reading its standard output as `format` (a command of the user's that opted in).
pub fn with_format(agent: Agent, format: Format) -> Agent {
    match agent {
        Agent::Command {
            name,
            argv,
            env,
            preset,
            ..
        } => Agent::Command {
            name,
            argv,
            env,
            preset,
            format: Some(format),
        },
        Agent::Shell => Agent::Shell,
    }
}

/// gemini's prompt argument: the task itself comes on standard input, which gemini appends.
const GEMINI_PROMPT: &str = "Carry out the task described above.";

/// The agent of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    /// The built-in `shell` agent: runs the task's fenced sh/bash blocks with `bash -xeuo pipefail`.
    Shell,
    /// An external command.
    Command {
        name: String,
        argv: Vec<String>,
        /// Set in its environment (a preset's, such as trusting the worktree).
        env: Vec<(String, String)>,
        /// It is a preset: its permissions are spec-exec's to set ([`with_permissions`]).
        preset: bool,
        /// Its standard output is this structured stream.
        format: Option<Format>,
    },
}

impl Agent {
    pub fn name(&self) -> &str {
        match self {
            Agent::Shell => "shell",
            Agent::Command { name, .. } => name,
        }
    }
}

/// Whether `name` is a preset (or `shell`).
pub fn is_preset(name: &str) -> bool {
    preset(name).is_some()
}

fn preset(name: &str) -> Option<Agent> {
    if name == "shell" {
        return Some(Agent::Shell);
    }
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, argv)| Agent::Command {
            name: (*n).to_owned(),
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            env: Vec::new(),
            preset: true,
            format: None,
        })
}

/// Splits a command line into words the way a POSIX shell splits them (quotes, backslashes and
/// `#` comments), without expanding or running anything.
pub fn split_words(line: &str) -> std::result::Result<Vec<String>, String> {
    shlex::split(line)
        .ok_or_else(|| "a quote is not closed, or the line ends with a backslash".to_owned())
}

/// Finds a program the way a shell in the caller's directory would: a name on `PATH`, a path
/// with a `/` from the current directory. The path found is absolute (when the current
/// directory can be read), so it names the same program from any other directory.
pub fn which(program: &str) -> Option<PathBuf> {
    which::which(program).ok()
}

/// Finds a program: a name on `PATH`, a path with a `/` from `dir`. The path found is
/// absolute when `dir` is.
pub fn which_from(program: &str, dir: &Path) -> Option<PathBuf> {
    if program.contains('/') {
        which::which_in(program, std::env::var_os("PATH"), dir).ok()
    } else {
        which(program)
    }
}

/// The caller's directory, where `--agent ./program` is looked for.
fn caller_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// Replaces the program of `argv` by the path it is found at from `dir`; when it is not
/// found, says where it was looked for.
fn locate_program(argv: &mut [String], dir: &Path) -> std::result::Result<(), String> {
    let Some(program) = which_from(&argv[0], dir) else {
        return Err(if argv[0].contains('/') {
            format!(
                "agent program `{}` was not found (or is not executable) from `{}`",
                argv[0],
                dir.display()
            )
        } else {
            format!("agent program `{}` was not found on PATH", argv[0])
        });
    };
    if let Ok(program) = program.into_os_string().into_string() {
        argv[0] = program;
    }
    Ok(())
}

/// How the agent was chosen, for the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chosen {
    Flag,
    Config,
    Found,
}

/// The help for an unknown preset in the configuration.
const PRESET_HELP: &str = "use one of claude, codex, gemini, aider, shell, or a list of arguments: [\"my-agent\", \"--flag\"]";

/// `--agent`'s value as an agent, without looking for its program.
fn from_flag(line: &str) -> Result<Agent> {
    let words = split_words(line).map_err(|why| {
        Error::user_with_help(
            format!("--agent `{line}`: {why}"),
            "quote it as a shell would",
        )
    })?;
    let first = words
        .first()
        .ok_or_else(|| Error::user("--agent is empty"))?;
    Ok(match (words.len(), preset(first)) {
        (1, Some(p)) => p,
        _ => Agent::Command {
            name: first.clone(),
            argv: words,
            env: Vec::new(),
            preset: false,
            format: None,
        },
    })
}

/// A configured agent (`agent`, or an agent name's `command`), without looking for its program.
fn from_spec(spec: &AgentSpec, whose: &str) -> Result<Agent> {
    Ok(match spec {
        AgentSpec::Preset(name) => preset(name).ok_or_else(|| {
            Error::user_with_help(
                format!("unknown agent preset `{name}` in the configuration{whose}"),
                PRESET_HELP,
            )
        })?,
        AgentSpec::Argv(argv) => Agent::Command {
            name: argv[0].clone(),
            argv: argv.clone(),
            env: Vec::new(),
            preset: false,
            format: None,
        },
    })
}

/// Picks the agent: `--agent`, else config `agent`, else the first of claude, codex, gemini,
/// aider found on `PATH`. Its program is looked for now and named by the path found: a path
/// in `--agent` from the caller's directory, one in the configuration from `root` (the
/// workspace root, where the configuration is).
pub fn resolve(
    flag: Option<&str>,
    config: Option<&AgentSpec>,
    root: &Path,
) -> Result<(Agent, Chosen)> {
    let agent = if let Some(line) = flag {
        (from_flag(line)?, Chosen::Flag)
    } else if let Some(spec) = config {
        (from_spec(spec, "")?, Chosen::Config)
    } else {
        let found = PRESETS
            .iter()
            .find(|(name, _)| which(name).is_some())
            .and_then(|(name, _)| preset(name));
        match found {
            Some(agent) => (agent, Chosen::Found),
            None => {
                return Err(Error::user_with_help(
                    "no coding agent found: none of claude, codex, gemini or aider is on PATH",
                    "install one, pass --agent CMD (or --agent shell for the tasks' sh blocks), or set `agent` in [workspace.metadata.spec-exec]",
                ));
            }
        }
    };
    let (mut agent, chosen) = agent;
    if let Agent::Command { argv, .. } = &mut agent {
        let dir = match chosen {
            Chosen::Flag => caller_dir(),
            _ => root.to_path_buf(),
        };
        locate_program(argv, &dir).map_err(|why| {
            Error::user_with_help(why, "install it, put it on PATH, or pass another --agent")
        })?;
    }
    Ok((agent, chosen))
}

/// The commands of the agent names in `names` that have one in the configuration
/// (`[….agents.<name>] command`), each program looked for on `PATH` (a path, from `root`, the
/// workspace root) and named by the path found. With `--agent` given, none: `--agent` runs
/// every task.
pub fn resolve_named<'a>(
    names: impl IntoIterator<Item = &'a str>,
    flag_given: bool,
    config: &BTreeMap<String, AgentSpec>,
    root: &Path,
) -> Result<BTreeMap<String, Agent>> {
    let mut agents = BTreeMap::new();
    if flag_given {
        return Ok(agents);
    }
    for name in names {
        let Some(spec) = config.get(name) else {
            continue;
        };
        if agents.contains_key(name) {
            continue;
        }
        let mut agent = from_spec(spec, &format!(" for agent `{name}`"))?;
        if let Agent::Command { argv, .. } = &mut agent {
            locate_program(argv, root).map_err(|why| {
                Error::user_with_help(
                    format!(
                        "{why} (the command of agent `{name}`, which tasks name with `_Agent: {name}_`)"
                    ),
                    format!(
                        "install it, put it on PATH, or change `command` under `agents.{name}` in the configuration"
                    ),
                )
            })?;
        }
        agents.insert(name.to_owned(), agent);
    }
    Ok(agents)
}

/// The agents of a run as far as they are known without looking at `PATH`, for `--dry-run`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineup {
    /// The default agent's name and how it was chosen; `None` when it will be the first
    /// preset found on `PATH`.
    pub default: Option<(String, Chosen)>,
    /// Agent names with a command of their own that applies, and that command's name.
    pub named: BTreeMap<String, String>,
    /// Agent names whose configured command `--agent` sets aside.
    pub set_aside: Vec<String>,
}

impl Lineup {
    /// The lineup of `--agent` (when given) and the configuration. A value that a run would
    /// refuse is shown as written; the run says what is wrong with it.
    pub fn new(
        flag: Option<&str>,
        config: Option<&AgentSpec>,
        named: &BTreeMap<String, AgentSpec>,
    ) -> Lineup {
        let spec_name = |spec: &AgentSpec| match spec {
            AgentSpec::Preset(p) => p.clone(),
            AgentSpec::Argv(argv) => argv[0].clone(),
        };
        let default = match (flag, config) {
            (Some(line), _) => {
                let name = from_flag(line)
                    .map_or_else(|_| line.trim().to_owned(), |a| a.name().to_owned());
                Some((name, Chosen::Flag))
            }
            (None, Some(spec)) => Some((spec_name(spec), Chosen::Config)),
            (None, None) => None,
        };
        let configured = named.iter().map(|(n, spec)| (n.clone(), spec_name(spec)));
        if flag.is_some() {
            Lineup {
                default,
                named: BTreeMap::new(),
                set_aside: named.keys().cloned().collect(),
            }
        } else {
            Lineup {
                default,
                named: configured.collect(),
                set_aside: Vec::new(),
            }
        }
    }

    /// The name of the agent that runs a task naming `agent` (or none): its own command, else
    /// the default when known.
    pub fn command_of(&self, agent: Option<&str>) -> Option<&str> {
        agent
            .and_then(|a| self.named.get(a))
            .map(String::as_str)
            .or(self.default.as_ref().map(|(n, _)| n.as_str()))
    }

    /// One line on the default agent and the agent names with commands of their own.
    pub fn describe(&self) -> String {
        let mut s = match &self.default {
            Some((name, Chosen::Flag)) => format!("`{name}` (--agent), for every task"),
            Some((name, _)) => format!("`{name}` (the configuration)"),
            None => "the first of claude, codex, gemini, aider found on PATH".to_owned(),
        };
        if !self.named.is_empty() {
            let named: Vec<String> = self
                .named
                .iter()
                .map(|(n, c)| format!("{n} runs `{c}`"))
                .collect();
            s.push_str(&format!("; {}", named.join(", ")));
        }
        if !self.set_aside.is_empty() {
            s.push_str(&format!(
                "; the configured commands of {} are not used",
                self.set_aside.join(", ")
            ));
        }
        s
    }
}

/// Where personas are kept, under the workspace root or the repository's working tree.
pub const PERSONA_DIRS: [&str; 2] = [".claude/agents", ".kiro/agents"];

/// The persona file of agent `name`: `.claude/agents/<name>.md` or `.kiro/agents/<name>.md`
/// under the first of `roots` that has one.
pub fn persona_file(roots: &[&Path], name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return None;
    }
    roots
        .iter()
        .flat_map(|r| PERSONA_DIRS.map(|d| r.join(d).join(format!("{name}.md"))))
        .find(|f| f.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(split_words("a b  c").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            split_words(r#"my-agent --msg "two words" 'it''s' x\ y"#).unwrap(),
            ["my-agent", "--msg", "two words", "its", "x y"]
        );
        assert_eq!(split_words(r#""a\"b" $HOME"#).unwrap(), ["a\"b", "$HOME"]);
        assert!(split_words("'open").is_err());
        assert_eq!(split_words("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn presets_and_commands() {
        let (a, c) = resolve(Some("shell"), None, Path::new("/")).unwrap();
        assert_eq!((a, c), (Agent::Shell, Chosen::Flag));
        let (a, _) = resolve(Some("sh -c 'exit 0'"), None, Path::new("/")).unwrap();
        assert_eq!(a.name(), "sh");
        let Agent::Command { argv, .. } = &a else {
            panic!("{a:?}")
        };
        // Run by the path found now, wherever it runs.
        assert!(Path::new(&argv[0]).is_absolute(), "{argv:?}");
        assert_eq!(argv[1..], ["-c", "exit 0"]);
        assert!(resolve(Some("definitely-not-a-program-xyz"), None, Path::new("/")).is_err());
        let (a, _) = resolve(
            None,
            Some(&AgentSpec::Preset("shell".into())),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(a, Agent::Shell);
        assert!(
            resolve(
                None,
                Some(&AgentSpec::Preset("nope".into())),
                Path::new("/")
            )
            .is_err()
        );
    }

    #[test]
    fn named_agents_unless_the_flag_is_given() {
        let config: BTreeMap<String, AgentSpec> = [
            (
                "reviewer".to_owned(),
                AgentSpec::Argv(vec!["sh".into(), "-c".into(), "true".into()]),
            ),
            ("runner".to_owned(), AgentSpec::Preset("shell".into())),
            (
                "absent".to_owned(),
                AgentSpec::Argv(vec!["not-installed-xyz".into()]),
            ),
        ]
        .into();
        let got = resolve_named(
            ["reviewer", "runner", "writer", "reviewer"],
            false,
            &config,
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got["reviewer"].name(), "sh");
        assert_eq!(got["runner"], Agent::Shell);
        assert!(
            resolve_named(["reviewer"], true, &config, Path::new("/"))
                .unwrap()
                .is_empty()
        );
        let err = resolve_named(["absent"], false, &config, Path::new("/")).unwrap_err();
        assert!(
            err.to_string()
                .contains("`not-installed-xyz` was not found"),
            "{err}"
        );
        assert_eq!(err.exit_code(), crate::error::exit::INVALID);
        // With --agent, a missing program of a named agent does not matter.
        assert!(resolve_named(["absent"], true, &config, Path::new("/")).is_ok());
    }

    #[test]
    fn lineups() {
        let named: BTreeMap<String, AgentSpec> =
            [("reviewer".to_owned(), AgentSpec::Preset("codex".into()))].into();
        let l = Lineup::new(None, Some(&AgentSpec::Preset("claude".into())), &named);
        assert_eq!(l.command_of(Some("reviewer")), Some("codex"));
        assert_eq!(l.command_of(Some("writer")), Some("claude"));
        assert_eq!(l.command_of(None), Some("claude"));
        assert_eq!(
            l.describe(),
            "`claude` (the configuration); reviewer runs `codex`"
        );
        let l = Lineup::new(Some("my-agent --fast"), None, &named);
        assert_eq!(l.command_of(Some("reviewer")), Some("my-agent"));
        assert_eq!(
            l.describe(),
            "`my-agent` (--agent), for every task; the configured commands of reviewer are not used"
        );
        let l = Lineup::new(None, None, &BTreeMap::new());
        assert_eq!(l.command_of(Some("reviewer")), None);
    }

    #[test]
    fn persona_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("ws"), tmp.path().to_path_buf());
        std::fs::create_dir_all(b.join(".kiro/agents")).unwrap();
        std::fs::write(b.join(".kiro/agents/writer.md"), "w").unwrap();
        assert_eq!(
            persona_file(&[&a, &b], "writer"),
            Some(b.join(".kiro/agents/writer.md"))
        );
        assert_eq!(persona_file(&[&a], "writer"), None);
        assert_eq!(persona_file(&[&a, &b], "../agents/writer"), None);
    }

    fn preset_argv(name: &str, p: &Permissions) -> (Vec<String>, Vec<(String, String)>) {
        match with_permissions(preset(name).unwrap(), p) {
            Agent::Command { argv, env, .. } => (argv, env),
            Agent::Shell => unreachable!(),
        }
    }

    #[test]
    fn presets_may_build_test_read_git_and_run_the_verify_commands() {
        let p = Permissions {
            allow: vec!["Bash(npm test *)".into()],
            verify: vec![
                "cargo check --workspace --all-targets".into(),
                "sh -c 'make lint'".into(),
            ],
            yolo: false,
            cargo_home: Some(PathBuf::from("/home/u/.cargo")),
        };
        assert_eq!(
            preset_argv("claude", &p).0,
            [
                "claude",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "acceptEdits",
                "--allowedTools",
                "Bash(cargo *)",
                "Bash(git status *)",
                "Bash(git diff *)",
                "Bash(git log *)",
                "Bash(git show *)",
                "Bash(sh -c 'make lint')",
                "Bash(npm test *)"
            ]
        );
        let codex = Permissions {
            allow: vec!["/opt/cache".into()],
            ..p.clone()
        };
        assert_eq!(
            preset_argv("codex", &codex).0,
            [
                "codex",
                "exec",
                "--json",
                "--sandbox",
                "workspace-write",
                "-c",
                "sandbox_workspace_write.network_access=true",
                "--add-dir",
                "/home/u/.cargo",
                "--add-dir",
                "/opt/cache",
                "--add-dir",
                TARGET_DIR,
                "-"
            ]
        );
        let gemini = Permissions {
            allow: vec!["run_shell_command(npm test)".into()],
            ..p.clone()
        };
        let (argv, env) = preset_argv("gemini", &gemini);
        assert_eq!(
            argv,
            [
                "gemini",
                "--skip-trust",
                "--output-format",
                "stream-json",
                "--approval-mode",
                "auto_edit",
                "--allowed-tools",
                "run_shell_command(cargo),run_shell_command(git status),run_shell_command(git diff),run_shell_command(git log),run_shell_command(git show),run_shell_command(sh -c 'make lint'),run_shell_command(npm test)",
                "-p",
                GEMINI_PROMPT
            ]
        );
        assert_eq!(
            env,
            [("GEMINI_CLI_TRUST_WORKSPACE".to_owned(), "true".to_owned())]
        );
        let aider = Permissions {
            allow: vec![],
            ..p.clone()
        };
        assert_eq!(
            preset_argv("aider", &aider).0,
            [
                "aider",
                "--yes-always",
                "--no-auto-commits",
                "--message-file",
                PROMPT_FILE
            ]
        );
    }

    #[test]
    fn claude_and_codex_resume_their_sessions() {
        let p = Permissions::default();
        let mut claude = preset_argv("claude", &p).0;
        assert!(resume_session("claude", &mut claude, "s-1"));
        assert_eq!(&claude[..4], ["claude", "-p", "--resume", "s-1"]);
        let mut codex = preset_argv("codex", &p).0;
        assert!(resume_session("codex", &mut codex, "th-1"));
        assert_eq!(&codex[codex.len() - 3..], ["resume", "th-1", "-"]);
        assert_eq!(&codex[..3], ["codex", "exec", "--json"]);
        let mut gemini = preset_argv("gemini", &p).0;
        assert!(!resume_session("gemini", &mut gemini, "g"));
    }

    #[test]
    fn yolo_is_each_clis_full_bypass_and_other_agents_are_left_alone() {
        let p = Permissions {
            yolo: true,
            ..Permissions::default()
        };
        let stream = ["--output-format", "stream-json"];
        assert_eq!(
            preset_argv("claude", &p).0,
            [
                &["claude", "-p"][..],
                &stream,
                &["--verbose", "--dangerously-skip-permissions"]
            ]
            .concat()
        );
        assert_eq!(
            preset_argv("codex", &p).0,
            [
                "codex",
                "exec",
                "--json",
                "--dangerously-bypass-approvals-and-sandbox",
                "-"
            ]
        );
        assert_eq!(
            preset_argv("gemini", &p).0,
            [
                &["gemini", "--skip-trust"][..],
                &stream,
                &["--approval-mode", "yolo", "-p", GEMINI_PROMPT]
            ]
            .concat()
        );
        let mine = from_flag("claude --model opus").unwrap();
        assert_eq!(with_permissions(mine.clone(), &p), mine);
        assert_eq!(with_permissions(Agent::Shell, &p), Agent::Shell);
    }
}
