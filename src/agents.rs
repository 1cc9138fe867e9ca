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
            "--approval-mode",
            "auto_edit",
            "-p",
            "Carry out the task described above.",
        ],
    ),
    (
        "aider",
        &[
            "aider",
            "--yes",
            "--no-auto-commits",
            "--message-file",
            PROMPT_FILE,
        ],
    ),
];

/// The agent of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    /// The built-in `shell` agent: runs the task's fenced sh/bash blocks with `bash -xeuo pipefail`.
    Shell,
    /// An external command.
    Command { name: String, argv: Vec<String> },
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
}
