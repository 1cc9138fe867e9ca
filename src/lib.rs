//! `cargo spec-exec`: plan and run a feature spec's task list with parallel coding agents.
//!
//! Data flows one way: [`workspace`] → [`spec`] → [`plan`] → (execution) → report. The spec
//! and plan layers are pure (they read the spec files and decide); printing happens only in
//! [`output`], and the commands in [`ops`] tie the pieces together.
//!
//! Unix only (Linux, macOS, the BSDs): agents run in process groups of their own and are stopped
//! with signals. On any other target the crate stops at the one error below; everything else is
//! left out, so that no other error hides it.

#[cfg(not(unix))]
compile_error!(
    "cargo-spec-exec runs on Unix only (Linux, macOS, the BSDs): it runs each agent in a process group of its own and stops it with Unix signals. Build it on a Unix system (on Windows, under WSL)."
);

#[cfg(unix)]
pub mod agents;
#[cfg(unix)]
pub mod ci;
#[cfg(unix)]
pub mod cli;
#[cfg(unix)]
pub mod config;
#[cfg(unix)]
pub mod error;
#[cfg(unix)]
pub mod exec;
#[cfg(unix)]
pub mod fsutil;
#[cfg(unix)]
pub mod git;
#[cfg(unix)]
pub mod ops;
#[cfg(unix)]
pub mod output;
#[cfg(unix)]
pub mod plan;
#[cfg(unix)]
pub mod report;
#[cfg(unix)]
pub mod source;
#[cfg(unix)]
pub mod spec;
#[cfg(unix)]
pub mod workspace;

#[cfg(unix)]
pub use entry::main_with_args;

/// The entry point: arguments in, exit code out.
#[cfg(unix)]
mod entry {
    use super::{cli, ops, output};
    use std::ffi::OsString;

    use clap::Parser as _;

    use crate::cli::{Cli, Command};
    use crate::error::{Error, exit};
    use crate::output::{Shell, Verbosity};
    use crate::workspace::Workspace;

    /// Runs the tool with `args` (including the program name) and returns the exit code.
    pub fn main_with_args(args: Vec<OsString>) -> i32 {
        let cli = match Cli::try_parse_from(cli::normalize_args(args)) {
            Ok(cli) => cli,
            Err(e) => {
                let _ = e.print();
                return match e.kind() {
                    clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayVersion => exit::OK,
                    _ => exit::INVALID,
                };
            }
        };
        let verbosity = if cli.global.quiet {
            Verbosity::Quiet
        } else if cli.global.verbose > 0 {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        let format = output::message_format(cli.global.message_format);
        let color = match output::color_choice(cli.global.color) {
            Ok(c) => c,
            Err(e) => {
                let shell = Shell::new(cli::ColorChoice::Never, format, verbosity);
                return report(&shell, e);
            }
        };
        let shell = Shell::new(color, format, verbosity);
        match dispatch(&shell, cli) {
            Ok(code) => code,
            Err(e) => report(&shell, e),
        }
    }

    fn report(shell: &Shell, e: Error) -> i32 {
        let code = e.exit_code();
        shell.diagnostics(&e.into_diagnostics());
        code
    }

    fn dispatch(shell: &Shell, cli: Cli) -> Result<i32, Error> {
        let manifest = cli.global.manifest_path.as_deref();
        // The workspace; the shell names files from its repository's root for GitHub.
        let load = || -> Result<Workspace, Error> {
            Workspace::load_with(manifest, |root| shell.set_workspace_root(root))
        };
        match cli.command {
            Some(Command::Run(run)) => ops::run(shell, &load()?, &run.feature, &run.options),
            Some(Command::List) => ops::list(shell, &load()?),
            Some(Command::Check(check)) => {
                let checked = load().and_then(|ws| ops::check(shell, &ws, &check));
                // The step summary says why there is no table.
                if let Err(e) = &checked {
                    ops::check_summary_of_error(shell, e);
                }
                checked
            }
            Some(Command::Approve { feature }) => ops::approve(shell, &load()?, &feature),
            Some(Command::Deps(deps)) => ops::deps::deps(shell, &load()?, &deps),
            Some(Command::Clean(clean)) => ops::clean::clean(shell, &load()?, &clean),
            Some(Command::Land(land)) => ops::land::land(shell, &load()?, &land),
            Some(Command::Pr(pr)) => ops::pr::pr(shell, &load()?, &pr),
            Some(Command::Ci(ci)) => match ci.system {
                cli::CiSystem::Github(cmd) => crate::ci::github_command(shell, &load()?, &cmd),
            },
            Some(Command::Sync(sync)) => ops::sync::sync(shell, &load()?, &sync),
            None => {
                // As cargo answers a command missing its argument: the error, the usage, a pointer
                // to --help; and, since the argument is a feature, the features there are. Exit 2,
                // as for any other invalid arguments (nothing ran).
                let found = ops::features_found(manifest);
                let _ = <Cli as clap::CommandFactory>::command()
                    .error(
                        clap::error::ErrorKind::MissingRequiredArgument,
                        format!("no feature named; {found}"),
                    )
                    .print();
                Ok(exit::INVALID)
            }
        }
    }
}
