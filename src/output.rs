//! Everything the tool prints goes through [`Shell`]: cargo-style status lines and diagnostics on
//! stderr, results (plans, tables, JSON lines) on stdout. Colour is decided once, here.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the output module"
)]

use std::fmt::Display;
use std::io::IsTerminal as _;

use console::style;
use serde::Serialize;

use crate::cli::{ColorChoice, MessageFormat};
use crate::error::{Diagnostic, Error, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

#[derive(Debug, Clone)]
pub struct Shell {
    pub verbosity: Verbosity,
    pub format: MessageFormat,
}

/// Decides colour from `--color`, then `CARGO_TERM_COLOR`, then `NO_COLOR` and the terminal.
pub fn color_choice(flag: Option<ColorChoice>) -> Result<ColorChoice, Error> {
    if let Some(choice) = flag {
        return Ok(choice);
    }
    match std::env::var("CARGO_TERM_COLOR") {
        Ok(v) if !v.is_empty() => match v.as_str() {
            "auto" => Ok(ColorChoice::Auto),
            "always" => Ok(ColorChoice::Always),
            "never" => Ok(ColorChoice::Never),
            other => Err(Error::user_with_help(
                format!("invalid CARGO_TERM_COLOR `{other}`"),
                "set it to auto, always or never",
            )),
        },
        _ => Ok(ColorChoice::Auto),
    }
}

impl Shell {
    pub fn new(color: ColorChoice, format: MessageFormat, verbosity: Verbosity) -> Shell {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let decide = |tty: bool| match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color && !dumb,
        };
        console::set_colors_enabled_stderr(decide(std::io::stderr().is_terminal()));
        console::set_colors_enabled(
            format == MessageFormat::Human && decide(std::io::stdout().is_terminal()),
        );
        Shell { verbosity, format }
    }

    pub fn is_json(&self) -> bool {
        self.format == MessageFormat::Json
    }

    /// `    Approved user-auth …` on stderr, unless quiet.
    pub fn status(&self, verb: &str, message: impl Display) {
        if self.verbosity > Verbosity::Quiet {
            eprintln!("{:>12} {message}", style(verb).green().bold().for_stderr());
        }
    }

    /// A line of the result on stdout.
    pub fn out(&self, text: impl Display) {
        println!("{text}");
    }

    /// One JSON line on stdout.
    pub fn json(&self, value: &impl Serialize) {
        match serde_json::to_string(value) {
            Ok(line) => println!("{line}"),
            Err(e) => panic!("serialising an output message failed: {e}"),
        }
    }

    /// A diagnostic on stderr (warnings are hidden by `-q`); in JSON mode also as a
    /// `diagnostic` line on stdout.
    pub fn diagnostic(&self, d: &Diagnostic) {
        if self.is_json() {
            #[derive(Serialize)]
            struct Line<'a> {
                #[serde(rename = "type")]
                kind: &'static str,
                #[serde(flatten)]
                diagnostic: &'a Diagnostic,
            }
            self.json(&Line {
                kind: "diagnostic",
                diagnostic: d,
            });
        }
        if d.severity == Severity::Warning && self.verbosity == Verbosity::Quiet {
            return;
        }
        eprint!("{}", render(d));
    }

    pub fn diagnostics<'a>(&self, ds: impl IntoIterator<Item = &'a Diagnostic>) {
        for d in ds {
            self.diagnostic(d);
        }
    }
}

/// Renders a diagnostic the way rustc and cargo-deny do: the message, the place, the line with
/// the words underlined, then notes and help.
pub fn render(d: &Diagnostic) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let head = match d.severity {
        Severity::Error => style("error").red().bold().for_stderr(),
        Severity::Warning => style("warning").yellow().bold().for_stderr(),
    };
    let _ = writeln!(
        out,
        "{head}{} {}",
        style(":").bold().for_stderr(),
        style(&d.message).bold().for_stderr()
    );
    let arrow = |s: &str| style(s.to_owned()).blue().bold().for_stderr();
    if let Some(loc) = &d.location {
        let gutter = if loc.line > 0 {
            loc.line.to_string().len()
        } else {
            1
        };
        let pad = " ".repeat(gutter);
        let _ = writeln!(
            out,
            "{pad}{} {}",
            arrow("-->"),
            d.position().unwrap_or_default()
        );
        if loc.line > 0 {
            let text: String = loc
                .line_text
                .chars()
                .map(|c| if c == '\t' { ' ' } else { c })
                .collect();
            let _ = writeln!(out, "{pad} {}", arrow("|"));
            let _ = writeln!(
                out,
                "{} {} {}",
                arrow(&loc.line.to_string()),
                arrow("|"),
                text
            );
            let marker = "^".repeat(loc.width.max(1));
            let under = format!(
                "{}{}",
                " ".repeat(loc.column.saturating_sub(1)),
                match d.severity {
                    Severity::Error => style(marker).red().bold().for_stderr(),
                    Severity::Warning => style(marker).yellow().bold().for_stderr(),
                }
            );
            let label = d
                .label
                .as_deref()
                .map(|l| format!(" {l}"))
                .unwrap_or_default();
            let _ = writeln!(out, "{pad} {} {under}{label}", arrow("|"));
        }
        for note in &d.notes {
            let _ = writeln!(out, "{pad} {} note: {note}", arrow("="));
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "{pad} {} help: {help}", arrow("="));
        }
    } else {
        for note in &d.notes {
            let _ = writeln!(out, "  {} note: {note}", arrow("="));
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "  {} help: {help}", arrow("="));
        }
    }
    out.push('\n');
    out
}
