//! The command line, as cargo calls it (`cargo-spec-exec spec-exec <FEATURE> …`) and as a
//! direct call (`cargo-spec-exec <FEATURE> …`).
//!
//! `cargo spec-exec <FEATURE>` is short for `cargo spec-exec run <FEATURE>`: [`normalize_args`]
//! puts the `run` in before clap parses, so [`Cli`] itself has only commands and the options of
//! every command (which clap accepts before or after the command word).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
    // Human output, and every diagnostic also as a GitHub Actions workflow command on stdout.
    Github,
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
    override_usage = "cargo spec-exec [OPTIONS] <FEATURE> [RUN OPTIONS]\n       \
        cargo spec-exec [OPTIONS] <COMMAND>",
    after_help = "A bare <FEATURE> is short for `run <FEATURE>` and takes the run options: \
        --dry-run, --max-agents, --track, --skip-optional, --continue-on-error, --agent, --timeout, \
        --max-review-rounds, --base, --verify, --no-verify, --max-attempts, --no-resolve, --overlap, --max-cost, --on-rate-limit, --max-wait, --yolo, --junit, --task, --remote and --push \
        (`cargo spec-exec run --help` explains them). Options may come before or after the \
        feature or command.\n\n\
        Exit status: 0 all selected tasks done, 1 a task failed or was skipped, \
        3 stopped on an agent's usage limit (resumable), \
        2 invalid spec, configuration or arguments (nothing ran), 130 interrupted.",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// The command; [`normalize_args`] makes a bare feature name a `run`.
    #[command(subcommand)]
    pub command: Option<Command>,

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
    Check(CheckCommand),
    /// Approve a feature's task list, as it is now, for running
    Approve {
        /// The feature to approve
        #[arg(value_name = "FEATURE")]
        feature: String,
    },
    /// Ask the agent which pending tasks depend on which, and write the answer into tasks.md
    /// for review (the list then needs approving again)
    Deps(DepsCommand),
    /// Remove the run state of finished work: finished tasks' worktrees and all but the newest
    /// run directories (every feature with run state when none is named)
    Clean(CleanCommand),
    /// Build the feature's integration branch from its done tasks' branches (a run that
    /// leaves every task done builds it itself)
    Land(LandCommand),
    /// Push the feature's integration branch and open a pull request for it with `gh`
    Pr(PrCommand),
    /// Write a CI configuration that runs a feature's pending tasks as CI jobs
    Ci(CiCommand),
    /// Fetch the feature's task branches from a remote and tick in tasks.md every task they
    /// hold finished (what runs with `--task` did elsewhere)
    Sync(SyncCommand),
}

#[derive(Debug, Args)]
pub struct SyncCommand {
    /// The feature whose task list to bring up to date
    #[arg(value_name = "FEATURE")]
    pub feature: String,

    /// The remote to fetch the task branches from
    #[arg(long, value_name = "NAME", default_value = "origin")]
    pub remote: String,

    /// Commit tasks.md on the checked-out branch when it ticked a task (as a CI job does, so
    /// that the integration branch built on it, and its pull request, carry the ticks)
    #[arg(long)]
    pub commit: bool,
}

#[derive(Debug, Args)]
pub struct CiCommand {
    /// The CI system to write for
    #[command(subcommand)]
    pub system: CiSystem,
}

#[derive(Debug, Subcommand)]
pub enum CiSystem {
    /// A GitHub Actions workflow: one job per pending task, `needs:` from the plan, review
    /// gates unrolled, and a last job that builds the integration branch and opens the pull
    /// request
    Github(CiGithubCommand),
}

#[derive(Debug, Args)]
pub struct CiGithubCommand {
    /// The feature whose pending tasks become jobs
    #[arg(value_name = "FEATURE")]
    pub feature: String,

    /// Where to write the workflow, `-` for standard output
    /// [default: .github/workflows/spec-<FEATURE>.yml at the repository's root]
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Overwrite a file that this command did not generate
    #[arg(long)]
    pub force: bool,

    /// Run at most N task jobs at once: the workflow orders jobs that could otherwise run
    /// together beyond N [default: 6, or `max-agents` in the configuration]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_agents: Option<u16>,

    /// The agent the jobs run: a preset (claude, codex, gemini, aider, shell) or a command
    /// line; passed on to every job [default: `agent` in the configuration]
    #[arg(long, value_name = "CMD")]
    pub agent: Option<String>,

    /// End a task's agent after this long (passed on to every job); the jobs'
    /// `timeout-minutes` leave room for every attempt [default: 30m, or `timeout` in the
    /// configuration]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Unroll each review gate to at most N review rounds [default: 3, or
    /// `max-review-rounds` in the configuration]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_review_rounds: Option<u32>,

    /// The runner label of every job [default: `ci.runs-on` in the configuration, else
    /// ubuntu-latest]
    #[arg(long, value_name = "LABEL")]
    pub runs_on: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckCommand {
    /// Features to check (default: all)
    #[arg(value_name = "FEATURE")]
    pub features: Vec<String>,

    /// Also fail a feature whose task list was never approved, or was edited since its
    /// approval
    #[arg(long)]
    pub approved: bool,

    /// Check only the features with a spec file that differs between REV and the working tree
    /// (committed, staged, unstaged or untracked changes)
    #[arg(long, value_name = "REV")]
    pub changed_since: Option<String>,
}

#[derive(Debug, Args)]
pub struct CleanCommand {
    /// The feature whose run state to clean [default: every feature with run state]
    #[arg(value_name = "FEATURE")]
    pub feature: Option<String>,

    /// Keep the newest N run directories (logs, prompts, reports) of each feature
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub keep: usize,

    /// Also remove the kept worktrees (failed tasks', and ones with uncommitted changes) and
    /// the moved-aside copies in leftovers/
    #[arg(long)]
    pub leftovers: bool,

    /// Say what would be removed and how much it would free; remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// How work is verified: the run's options, and `land`'s.
#[derive(Debug, Clone, Default, Args)]
pub struct VerifyOptions {
    /// Verify the work with this command line before it is committed (repeatable; replaces
    /// `verify` in the configuration) [default: `verify` in the configuration, else a
    /// `cargo check` of every target of the workspace]
    #[arg(long = "verify", value_name = "CMD", conflicts_with = "no_verify")]
    pub verify: Vec<String>,

    /// Commit the work without verifying it
    #[arg(long)]
    pub no_verify: bool,

    /// Run the agent at most N times for a step whose verification fails or whose agent exits
    /// non-zero [default: 2, or `max-attempts` in the configuration]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Args)]
pub struct LandCommand {
    /// The feature whose done tasks to bring together
    #[arg(value_name = "FEATURE")]
    pub feature: String,

    /// The revision a new integration branch starts from [default: HEAD]; an existing one
    /// merges it when it lacks it
    #[arg(long, value_name = "REV")]
    pub onto: Option<String>,

    /// The agent that resolves conflicts and fixes what fails verification: a preset or a
    /// command line [default: `agent` in the configuration, else one found on PATH]
    #[arg(long, value_name = "CMD")]
    pub agent: Option<String>,

    #[command(flatten)]
    pub verify: VerifyOptions,

    /// End an agent or a verify command that runs longer than this [default: 30m]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct PrCommand {
    /// The feature whose work to propose
    #[arg(value_name = "FEATURE")]
    pub feature: String,

    /// The branch the pull request goes into [default: the branch HEAD is on]
    #[arg(long, value_name = "BRANCH")]
    pub base: Option<String>,

    /// The remote to push to [default: the base branch's upstream remote, else origin]
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,

    /// One pull request per task, each into the branch of what the task was built on
    #[arg(long)]
    pub stacked: bool,

    /// Print what would be pushed and run; push, write and open nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DepsCommand {
    /// The feature whose task list to complete with dependencies
    #[arg(value_name = "FEATURE")]
    pub feature: String,

    /// Print the changes to tasks.md and the new plan; write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Replace the dependencies tasks already declare (by default they are kept)
    #[arg(long)]
    pub replace: bool,

    /// The agent to ask: a preset (claude, codex, gemini, aider) or a command line
    #[arg(long, value_name = "CMD")]
    pub agent: Option<String>,

    /// Stop an agent that has not answered after this long, e.g. 10m [default: 30m, or
    /// `timeout` in the configuration]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunCommand {
    /// The feature to run: a directory under the features directory
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

    /// Leave out optional tasks (Kiro's `- [ ]* 2.3`); what waits for them does not wait
    #[arg(long)]
    pub skip_optional: bool,

    /// The agent: a preset (claude, codex, gemini, aider, shell) or a command line
    #[arg(long, value_name = "CMD")]
    pub agent: Option<String>,

    /// End an agent that runs longer than this, e.g. 30m, 1h30m [default: 30m]
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,

    /// Run a review at most N times: after N rounds that ask for changes, its gate fails
    /// [default: 3, or `max-review-rounds` in the configuration]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_review_rounds: Option<u32>,

    /// The revision tasks without dependencies start from [default: HEAD]
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,

    #[command(flatten)]
    pub verify: VerifyOptions,

    /// Fail a task whose dependencies' branches conflict, instead of having the agent resolve
    /// the conflicts first
    #[arg(long)]
    pub no_resolve: bool,

    /// Start no new task once the agents' reported spend reaches USD (as claude reports it)
    /// [default: `max-cost` in the configuration, else no limit]
    #[arg(long, value_name = "USD", value_parser = parse_cost)]
    pub max_cost: Option<f64>,

    /// When an agent hits its usage or rate limit: wait until it resets and go on, or stop
    /// once the running tasks finish (exit 3) [default: wait, or `on-rate-limit` in the
    /// configuration]
    #[arg(long, value_enum, value_name = "WHAT")]
    pub on_rate_limit: Option<crate::exec::scheduler::OnRateLimit>,

    /// Wait at most this long, in all, for limits to reset; then stop as with
    /// `--on-rate-limit stop` [default: 6h, or `max-wait` in the configuration]
    #[arg(long, value_name = "DURATION")]
    pub max_wait: Option<String>,

    /// Run each preset agent in its CLI's full-bypass mode (no permission asked for anything):
    /// only in a sandbox, a container or a VM you can throw away [default: `yolo` in the
    /// configuration]
    #[arg(long)]
    pub yolo: bool,
    /// Tasks that may run together but declare the same file: warn, or serialize them (the
    /// later task in the document waits for the earlier one and builds on its branch)
    /// [default: warn, or `overlap` in the configuration]
    #[arg(long, value_enum, value_name = "MODE")]
    pub overlap: Option<crate::plan::Overlap>,

    /// Write a JUnit XML report of the run to PATH when it ends (one test case per task), for
    /// CI systems that show test results
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,

    /// Run only this task (repeatable; a task with sub-tasks means its pending sub-tasks),
    /// whose dependencies are done: ticked, or finished on their branches. Nothing else starts,
    /// tasks.md is not ticked, and a review gate goes one step (a round, or its rework's run)
    #[arg(long = "task", value_name = "ID")]
    pub tasks: Vec<String>,

    /// Before planning, fetch the feature's task branches from this remote into local branches
    /// (missing ones made, ones behind moved forward)
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,

    /// After each task's commit, push its branches to the remote of --remote NAME, only if the
    /// remote's are still as fetched (else the task fails)
    #[arg(long)]
    pub push: bool,
}

/// A spend in US dollars: a positive number.
pub fn parse_cost(s: &str) -> Result<f64, String> {
    match s.trim().trim_start_matches('$').parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "`{s}` is not a positive amount of US dollars (e.g. 5 or 0.50)"
        )),
    }
}

/// Accepted before or after the command word; listed after a command's own options.
#[derive(Debug, Clone, Args)]
#[command(next_display_order = 100)]
pub struct GlobalOptions {
    /// Path to the workspace's Cargo.toml
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,

    /// Output format: human text, JSON lines on stdout, or human text with GitHub Actions
    /// workflow commands on stdout [default: github when GITHUB_ACTIONS=true, else human]
    #[arg(long, global = true, value_enum, value_name = "FMT")]
    pub message_format: Option<MessageFormat>,

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

/// Prepares the arguments (program name first) for [`Cli`]:
///
/// - drops the `spec-exec` word cargo inserts when it runs `cargo-spec-exec` as `cargo spec-exec`;
/// - puts the command word first. The command word is the first argument that is neither an
///   option nor an option's value. When it names a command it is moved to the front, so the
///   options before it are that command's (`--manifest-path M list` is `list --manifest-path M`);
///   otherwise it is a feature and `run` is put in front (`--dry-run user-auth` is
///   `run --dry-run user-auth`), as it is for the word after `--` (`-- list` runs a feature named
///   `list`). With no word, `run` is put in front only when an option is not one of every
///   command, so that clap reports the missing feature rather than an unknown option.
pub fn normalize_args(mut args: Vec<OsString>) -> Vec<OsString> {
    if args.get(1).is_some_and(|a| a == "spec-exec") {
        args.remove(1);
    }
    let mut cli = Cli::command();
    cli.build();
    let command_names: Vec<&str> = cli
        .get_subcommands()
        .flat_map(|c| std::iter::once(c.get_name()).chain(c.get_all_aliases()))
        .collect();
    // Options taking a value, of any command and its own commands (a run option can come
    // before the feature, `--output` before `ci github`).
    let commands = std::iter::once(&cli)
        .chain(cli.get_subcommands())
        .chain(cli.get_subcommands().flat_map(|c| c.get_subcommands()));
    let options: Vec<&clap::Arg> = commands
        .flat_map(|c| c.get_arguments())
        .filter(|a| !a.is_positional())
        .collect();
    let takes_value = |name: Name| {
        options
            .iter()
            .any(|a| a.get_action().takes_values() && name.is_of(a))
    };
    let of_root = |name: Name| cli.get_arguments().any(|a| name.is_of(a));

    let mut word = None;
    let mut only_of_a_command = false;
    let mut i = 1;
    while i < args.len() {
        let arg = args[i].as_encoded_bytes();
        if arg == b"--" {
            word = Some(Word::AfterDashes(i));
            break;
        } else if let Some(long) = arg.strip_prefix(b"--") {
            let (name, value) = match long.iter().position(|&b| b == b'=') {
                Some(eq) => (&long[..eq], true),
                None => (long, false),
            };
            let name = Name::Long(std::str::from_utf8(name).unwrap_or("\u{fffd}"));
            only_of_a_command |= !of_root(name);
            if !value && takes_value(name) {
                i += 1;
            }
        } else if let Some(shorts) = arg.strip_prefix(b"-").filter(|s| !s.is_empty()) {
            let shorts = String::from_utf8_lossy(shorts);
            let mut chars = shorts.chars().peekable();
            while let Some(c) = chars.next() {
                only_of_a_command |= !of_root(Name::Short(c));
                if takes_value(Name::Short(c)) {
                    if chars.peek().is_none() {
                        i += 1;
                    }
                    break;
                }
            }
        } else {
            word = Some(Word::At(i));
            break;
        }
        i += 1;
    }
    match word {
        Some(Word::At(i)) if args[i].to_str().is_some_and(|w| command_names.contains(&w)) => {
            // A command of commands (`ci github`) moves with its own command word, so that
            // the options before them are the inner command's.
            let inner = cli
                .find_subcommand(&args[i])
                .filter(|c| c.has_subcommands())
                .zip(args.get(i + 1))
                .is_some_and(|(c, next)| c.find_subcommand(next).is_some());
            let command = args.remove(i);
            args.insert(1, command);
            if inner {
                let word = args.remove(i + 1);
                args.insert(2, word);
            }
        }
        Some(Word::AfterDashes(i)) => {
            // `-- list --dry-run`: the word after `--` is the feature, and options may follow
            // it; `--` stays only before a feature that looks like an option.
            if args
                .get(i + 1)
                .is_some_and(|a| !a.as_encoded_bytes().starts_with(b"-"))
            {
                args.remove(i);
            }
            args.insert(1, "run".into());
        }
        Some(_) => args.insert(1, "run".into()),
        None if only_of_a_command => args.insert(1, "run".into()),
        None => {}
    }
    args
}

/// Where the command word is in the arguments.
enum Word {
    At(usize),
    /// `--` at this index.
    AfterDashes(usize),
}

/// An option's name as written: `--name` or `-n`.
#[derive(Clone, Copy)]
enum Name<'a> {
    Long(&'a str),
    Short(char),
}

impl Name<'_> {
    fn is_of(self, arg: &clap::Arg) -> bool {
        match self {
            Name::Long(name) => {
                arg.get_long() == Some(name)
                    || arg
                        .get_all_aliases()
                        .is_some_and(|aliases| aliases.contains(&name))
            }
            Name::Short(c) => {
                arg.get_short() == Some(c)
                    || arg
                        .get_all_short_aliases()
                        .is_some_and(|aliases| aliases.contains(&c))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(args: &[&str]) -> Vec<String> {
        let args = std::iter::once("cargo-spec-exec")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        normalize_args(args)
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().expect("utf-8"))
            .collect()
    }

    #[test]
    fn the_command_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_bare_feature_becomes_run_wherever_the_options_are() {
        for (args, expected) in [
            (&["feat"][..], &["run", "feat"][..]),
            (&["spec-exec", "feat"], &["run", "feat"]),
            (&["feat", "--dry-run"], &["run", "feat", "--dry-run"]),
            (&["--dry-run", "feat"], &["run", "--dry-run", "feat"]),
            (
                &["--agent", "list", "feat"],
                &["run", "--agent", "list", "feat"],
            ),
            (&["--agent=list", "feat"], &["run", "--agent=list", "feat"]),
            (&["-vq", "feat"], &["run", "-vq", "feat"]),
            (&["--", "list"], &["run", "list"]),
            (&["--", "list", "--dry-run"], &["run", "list", "--dry-run"]),
            (&["--", "-odd"], &["run", "--", "-odd"]),
            (&["--dry-run"], &["run", "--dry-run"]),
            (&["--bogus"], &["run", "--bogus"]),
        ] {
            assert_eq!(normalized(args), expected, "{args:?}");
        }
    }

    #[test]
    fn a_command_word_comes_first_with_the_options_before_it() {
        for (args, expected) in [
            (&["list"][..], &["list"][..]),
            (&["spec-exec", "list"], &["list"]),
            (
                &["--manifest-path", "M", "list"],
                &["list", "--manifest-path", "M"],
            ),
            (
                &["spec-exec", "-q", "--color", "never", "check", "a"],
                &["check", "-q", "--color", "never", "a"],
            ),
            (&["--dry-run", "run", "list"], &["run", "--dry-run", "list"]),
            (
                &["--manifest-path=run", "approve", "x"],
                &["approve", "--manifest-path=run", "x"],
            ),
            (
                &["--output", "-", "ci", "github", "f"],
                &["ci", "github", "--output", "-", "f"],
            ),
            (
                &["-q", "ci", "github", "f", "-o", "x"],
                &["ci", "github", "-q", "f", "-o", "x"],
            ),
        ] {
            assert_eq!(normalized(args), expected, "{args:?}");
        }
    }

    #[test]
    fn options_of_every_command_alone_stay_as_they_are() {
        for args in [
            &[][..],
            &["-q"],
            &["--manifest-path", "list"],
            &["--help"],
            &["-V"],
        ] {
            assert_eq!(normalized(args), args, "{args:?}");
        }
    }
}
