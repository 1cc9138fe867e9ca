//! The command line, as cargo calls it (`cargo-spec-exec spec-exec <FEATURE> …`) and as a
//! direct call (`cargo-spec-exec <FEATURE> …`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Parser)]
#[command(
    name = "cargo-spec-exec",
    bin_name = "cargo spec-exec",
    version,
    about = "Run a feature spec's task list with parallel coding agents",
    long_about = "Run a feature spec's task list with parallel coding agents.\n\n\
        Reads documentation/features/<FEATURE>/tasks.md, plans its pending tasks by their \
        dependencies, and runs them with coding agents, each in its own git worktree and branch.",
    after_help = "Exit status: 0 all selected tasks done, 1 a task failed or was skipped, \
        2 invalid spec, configuration or arguments (nothing ran), 130 interrupted.",
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The feature to run: a directory under the features directory
    #[arg(value_name = "FEATURE")]
    pub feature: Option<String>,

    #[command(flatten)]
    pub run: RunOptions,

    #[command(flatten)]
    pub global: GlobalOptions,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a feature's pending tasks (the default action; use it for a feature named like a command)
    Run(RunCommand),
    /// List every feature with its progress and approval state
    List,
    /// Validate specs and plans (for CI): every feature when none is named
    Check {
        /// Features to check (default: all)
        #[arg(value_name = "FEATURE")]
        features: Vec<String>,
    },
    /// Approve a feature's task list, as it is now, for running
    Approve {
        /// The feature to approve
        #[arg(value_name = "FEATURE")]
        feature: String,
    },
}

#[derive(Debug, Args)]
pub struct RunCommand {
    /// The feature to run
    #[arg(value_name = "FEATURE")]
    pub feature: String,

    #[command(flatten)]
    pub options: RunOptions,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunOptions {
    /// Run at most N agents at once [default: 6, or `max-agents` in the configuration]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_agents: Option<u16>,

    /// Print the execution plan and stop
    #[arg(long)]
    pub dry_run: bool,

    /// After a task fails, keep running the tasks that do not depend on it
    #[arg(long)]
    pub continue_on_error: bool,

    /// Run only the tasks of this track (repeatable), e.g. `--track A`
    #[arg(long = "track", value_name = "TRACK")]
    pub tracks: Vec<String>,

    /// The agent: a preset (claude, codex, gemini, aider, shell) or a command line
    #[arg(long, value_name = "CMD")]
    pub agent: Option<String>,

    /// End an agent that runs longer than this, e.g. 30m, 1h30m [default: 30m]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// The revision tasks without dependencies start from [default: HEAD]
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// Path to the workspace's Cargo.toml
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,

    /// Output format: human text, or JSON lines on stdout
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FMT",
        default_value = "human"
    )]
    pub message_format: MessageFormat,

    /// Colour: auto, always or never (also CARGO_TERM_COLOR; NO_COLOR turns auto off)
    #[arg(long, global = true, value_enum, value_name = "WHEN")]
    pub color: Option<ColorChoice>,

    /// Say more (the tasks of each group in --dry-run)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Say less: no status lines or warnings
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// Drops the `spec-exec` word cargo inserts when it runs `cargo-spec-exec` as `cargo spec-exec`.
pub fn normalize_args(mut args: Vec<OsString>) -> Vec<OsString> {
    if args.get(1).is_some_and(|a| a == "spec-exec") {
        args.remove(1);
    }
    args
}
