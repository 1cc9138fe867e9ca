//! Everything the tool prints goes through [`Shell`]: cargo-style status lines and diagnostics on
//! stderr, results (plans, tables, JSON lines) on stdout. Colour is decided once, here.

use std::fmt::Display as Show;
use std::io::IsTerminal as _;

// Writes that fail (a closed pipe: `cargo spec-exec list | head -1`) are dropped, not panics:
// the reader has gone, and a run goes on to finish its work and write its report.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub mod github;

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
    /// How the workflow commands of `--message-format github` name files: set once the
    /// workspace is known.
    github_paths: std::sync::OnceLock<github::Paths>,
}

/// `--message-format`, else `github` in a GitHub Actions step (`GITHUB_ACTIONS=true`), else
/// `human`. An explicit `--message-format human` keeps the workflow commands off.
pub fn message_format(flag: Option<MessageFormat>) -> MessageFormat {
    match flag {
        Some(format) => format,
        None if github::in_actions() => MessageFormat::Github,
        None => MessageFormat::Human,
    }
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
            format != MessageFormat::Json && decide(std::io::stdout().is_terminal()),
        );
        Shell {
            verbosity,
            format,
            github_paths: std::sync::OnceLock::new(),
        }
    }

    pub fn is_json(&self) -> bool {
        self.format == MessageFormat::Json
    }

    /// Whether diagnostics are also printed as GitHub Actions workflow commands.
    pub fn is_github(&self) -> bool {
        self.format == MessageFormat::Github
    }

    /// The workspace's root: the workflow commands name files from the root of the repository
    /// holding it.
    pub fn set_workspace_root(&self, root: &std::path::Path) {
        if !self.is_github() {
            return;
        }
        let canonical = |p: &std::path::Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let _ = self.github_paths.set(github::Paths {
            root: Some(canonical(root)),
            workdir: crate::git::workdir_of(root).map(|w| canonical(&w)),
        });
    }

    fn github_paths(&self) -> github::Paths {
        self.github_paths.get().cloned().unwrap_or_default()
    }

    /// A note that is no diagnostic (advice about a feature's plan): a status line, and with
    /// `--message-format github` a `::notice` on `file` too.
    pub fn note(&self, message: impl Show, file: Option<&std::path::Path>) {
        let message = message.to_string();
        if self.is_github() {
            let place = github::Place {
                file: file.map(|f| self.github_paths().in_repository(f)),
                line: 0,
                column: 0,
            };
            outln!(
                "{}",
                github::command(github::Level::Notice, &place, "", &message)
            );
        }
        self.status("Note", message);
    }

    /// `    Approved user-auth …` on stderr, unless quiet.
    pub fn status(&self, verb: &str, message: impl Show) {
        if self.verbosity > Verbosity::Quiet {
            errln!("{:>12} {message}", style(verb).green().bold().for_stderr());
        }
    }

    /// A status line that reports a failure, in red; shown even with -q, as cargo shows its
    /// errors.
    pub fn error_status(&self, verb: &str, message: impl Show) {
        errln!("{:>12} {message}", style(verb).red().bold().for_stderr());
    }

    /// A line of the result on stdout.
    pub fn out(&self, text: impl Show) {
        outln!("{text}");
    }

    /// Lines of the result that echo a file's text (a diff of tasks.md). With
    /// `--message-format github` they are printed between `::stop-commands::` and its end: the
    /// runner trims a line's leading spaces, so a line of the file reading `::warning::…` (or
    /// `::stop-commands::…`) would otherwise be taken for a workflow command.
    pub fn out_verbatim(&self, text: impl Show) {
        let text = text.to_string();
        if !self.is_github() {
            outln!("{text}");
            return;
        }
        let token = github::stop_token(&text);
        outln!("::stop-commands::{token}");
        outln!("{text}");
        outln!("::{token}::");
    }

    /// One JSON line on stdout.
    pub fn json(&self, value: &impl Serialize) {
        match serde_json::to_string(value) {
            Ok(line) => outln!("{line}"),
            Err(e) => panic!("serialising an output message failed: {e}"),
        }
    }

    /// With `--message-format github`, an `::error` titled `title` at `location` (the human
    /// output says it already, in its own words): a task that failed, an integration that was
    /// not built.
    pub fn annotate(&self, location: Option<&crate::error::Location>, title: &str, message: &str) {
        if !self.is_github() {
            return;
        }
        let place = location
            .map(|loc| github::Place {
                file: Some(self.github_paths().in_repository(&loc.path)),
                line: loc.line,
                column: 0,
            })
            .unwrap_or_default();
        outln!(
            "{}",
            github::command(github::Level::Error, &place, title, message)
        );
    }

    /// A diagnostic on stderr (warnings are hidden by `-q`); in JSON mode also as a
    /// `diagnostic` line on stdout, with `--message-format github` also as a workflow command
    /// on stdout (even with `-q`: it is for GitHub, not for the log's reader).
    pub fn diagnostic(&self, d: &Diagnostic) {
        if self.is_github() {
            outln!("{}", github::diagnostic(d, &self.github_paths()));
        }
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
        err!("{}", render(d));
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

/// The human display of a run's events: cargo-style lines on stderr, plus a live progress
/// block redrawn at the bottom of the terminal when stderr is one (and not in CI).
#[derive(Debug)]
pub struct Display<'a> {
    shell: &'a Shell,
    live: bool,
    total: usize,
    /// Done, reused or not needed.
    completed: usize,
    failed: usize,
    /// Skipped or interrupted.
    skipped: usize,
    active: Vec<(String, String, Option<String>, std::time::Instant)>,
    started: std::time::Instant,
    drawn: usize,
    term: console::Term,
    /// Paths are shown relative to it (events carry them absolute).
    root: std::path::PathBuf,
    feature: String,
    /// What each running task's agent is doing now, by task id.
    doing: std::collections::HashMap<String, String>,
    /// When the agent's limit the run waits for resets (Unix seconds), for the countdown.
    limit_resets: Option<u64>,
    /// The feature's integration branch, shown with the next steps after the run's end.
    integration: Option<crate::report::IntegrationReport>,
    /// Each task's line in tasks.md, by id: where its failure is annotated.
    places: std::collections::HashMap<String, crate::error::Location>,
}

fn elapsed(since: std::time::Instant) -> String {
    let s = since.elapsed().as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// A status line: verb, message, and whether it reports a failure.
type Line = (&'static str, String, bool);

/// A name as a shell takes it: a branch name may hold characters a shell reads.
fn quoted(s: &str) -> String {
    shlex::try_quote(s)
        .map(|c| c.into_owned())
        .unwrap_or_else(|_| s.to_owned())
}

/// A commit's short id.
fn short_id(c: Option<&str>) -> String {
    c.map(|c| c[..c.len().min(10)].to_owned())
        .unwrap_or_default()
}

/// The integration branch and what to do next, as status lines.
pub fn integration_lines(r: &crate::report::IntegrationReport, feature: &str) -> Vec<Line> {
    let mut out = Vec::new();
    if !r.without_branch.is_empty() {
        let one = r.without_branch.len() == 1;
        out.push((
            "Note",
            format!(
                "{} done without a branch of {}: taken to be in {} already",
                r.without_branch.join(", "),
                if one { "its work" } else { "their work" },
                r.base
            ),
            false,
        ));
    }
    match r.status {
        "failed" | "interrupted" => out.extend(failure_lines(r, feature)),
        _ => {
            out.extend(built_lines(r));
            out.extend(next_steps(r, feature));
        }
    }
    out
}

/// With `--message-format github`, an `::error` for an integration branch that was not built.
pub fn annotate_integration(shell: &Shell, r: &crate::report::IntegrationReport) {
    if r.status == "failed" {
        shell.annotate(
            None,
            &format!("{} was not built", r.branch),
            r.reason.as_deref().unwrap_or("unknown reason"),
        );
    }
}

/// Why it was not built, and what to do when it can be tried again.
fn failure_lines(r: &crate::report::IntegrationReport, feature: &str) -> Vec<Line> {
    let interrupted = r.status == "interrupted";
    let mut m = format!(
        "{} was not built: {}",
        r.branch,
        r.reason.as_deref().unwrap_or("unknown reason")
    );
    if let Some(log) = &r.log {
        m.push_str(&format!("; log: {}", from_here(log)));
    }
    if let Some(w) = &r.worktree {
        m.push_str(&format!("; worktree kept: {}", from_here(w)));
    }
    let mut out = vec![(if interrupted { "Interrupted" } else { "Failed" }, m, true)];
    // A refusal says itself what to do; a build that failed is tried again.
    if r.worktree.is_some() || interrupted {
        out.push((
            "Next",
            if interrupted {
                format!("`cargo spec-exec land {feature}` finishes it")
            } else {
                format!(
                    "fix it, then run `cargo spec-exec land {feature}` (with the --agent and --verify of the run, if it had any)"
                )
            },
            false,
        ));
    }
    out
}

/// What was built, and the change against the base.
fn built_lines(r: &crate::report::IntegrationReport) -> Vec<Line> {
    let mut out = Vec::new();
    let short = |c: &Option<String>| short_id(c.as_deref());
    match r.status {
        "unchanged" => out.push((
            "Integrated",
            format!(
                "{} at {}: it holds every done task's work already",
                r.branch,
                short(&r.commit)
            ),
            false,
        )),
        _ => {
            let mut m = format!(
                "{} at {}: {} merged",
                r.branch,
                short(&r.commit),
                match r.merged.len() {
                    1 => "1 branch".to_owned(),
                    n => format!("{n} branches"),
                }
            );
            if !r.resolved.is_empty() {
                m.push_str(&format!(
                    ", conflicts in {} resolved by the agent",
                    r.resolved.join(", ")
                ));
            }
            if !r.verified.is_empty() {
                m.push_str(&format!(
                    ", verified with {}",
                    r.verified
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            out.push(("Integrated", m, false));
        }
    }
    if let (Some(f), Some(i), Some(d)) = (r.files_changed, r.insertions, r.deletions) {
        out.push((
            "Changes",
            format!(
                "{} against {}: {}, {}(+), {}(-)",
                r.branch,
                r.base,
                count(f, "file"),
                count(i, "insertion"),
                count(d, "deletion")
            ),
            false,
        ));
    }
    out
}

/// The next steps: review it, commit the ticks, open the pull request.
fn next_steps(r: &crate::report::IntegrationReport, feature: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let q = quoted;
    let (branch, base) = (q(&r.branch), q(&r.base));
    out.push((
        "Next",
        format!("review it: git log --oneline {base}..{branch}; git diff {base}...{branch}"),
        false,
    ));
    if let Some(tasks) = &r.uncommitted {
        out.push((
            "Next",
            {
                let path = q(&from_here(tasks));
                format!(
                    "commit the ticks in tasks.md: git add {path} && git commit -m {} {path}",
                    q(&format!("{feature}: tick the done tasks"))
                )
            },
            false,
        ));
    }
    out.push((
        "Next",
        {
            // Into the branch it was built on (a commit id is no branch to open it into).
            let pr = if r.base_is_branch {
                format!("cargo spec-exec pr {feature} --base {base}")
            } else {
                format!("cargo spec-exec pr {feature} --base BRANCH")
            };
            if r.gh {
                format!("open a pull request: {pr}")
            } else {
                format!("open a pull request: {pr} (gh is not on PATH: it prints the commands)")
            }
        },
        false,
    ));
    out
}

/// `path` as a command run here names it: relative to the current directory when it is below
/// it or near it, else whole.
fn from_here(path: &std::path::Path) -> String {
    let Ok(here) = std::env::current_dir() else {
        return path.display().to_string();
    };
    let (path_c, here_c): (Vec<_>, Vec<_>) =
        (path.components().collect(), here.components().collect());
    let common = path_c
        .iter()
        .zip(&here_c)
        .take_while(|(a, b)| a == b)
        .count();
    if common == 0 {
        return path.display().to_string();
    }
    let mut rel = std::path::PathBuf::new();
    for _ in common..here_c.len() {
        rel.push("..");
    }
    for c in &path_c[common..] {
        rel.push(c);
    }
    rel.display().to_string()
}

/// The first `shown` of `items`, joined, and how many more there are (`a, b and 3 more`): a
/// line stays readable however long the list.
pub fn first_of(items: &[String], shown: usize) -> String {
    match items.len().checked_sub(shown) {
        Some(more) if more > 0 => format!("{} and {more} more", items[..shown].join(", ")),
        _ => items.join(", "),
    }
}

/// `1 task`, `2 tasks`.
pub fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl<'a> Display<'a> {
    pub fn new(shell: &'a Shell, total: usize, root: &std::path::Path) -> Display<'a> {
        let term = console::Term::stderr();
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        Display {
            shell,
            live: term.is_term() && !ci && shell.verbosity > Verbosity::Quiet,
            total,
            completed: 0,
            skipped: 0,
            failed: 0,
            active: Vec::new(),
            started: std::time::Instant::now(),
            drawn: 0,
            term,
            root: root.to_path_buf(),
            feature: String::new(),
            doing: std::collections::HashMap::new(),
            limit_resets: None,
            integration: None,
            places: std::collections::HashMap::new(),
        }
    }

    /// Where each task of `list` is: its failures and tick errors point there.
    pub fn with_tasks(mut self, list: &crate::spec::model::TaskList) -> Self {
        self.places = list
            .tasks
            .iter()
            .filter(|t| t.line > 0)
            .map(|t| {
                let text = list.source.line_text(t.line).to_owned();
                let width = text
                    .trim_end()
                    .chars()
                    .count()
                    .saturating_sub(t.column.saturating_sub(1));
                let loc = crate::error::Location {
                    path: list.source.display_path.clone(),
                    line: t.line,
                    column: t.column,
                    line_text: text,
                    width,
                };
                (t.id.clone(), loc)
            })
            .collect();
        self
    }

    fn clear(&mut self) {
        if self.drawn > 0 {
            let _ = self.term.clear_last_lines(self.drawn);
            self.drawn = 0;
        }
    }

    /// Redraws the live block (no-op in other modes).
    fn draw(&mut self) {
        if !self.live {
            return;
        }
        self.clear();
        let mut lines = vec![format!(
            "{} {}/{} tasks complete",
            style("Progress:").cyan().bold().for_stderr(),
            self.completed,
            self.total
        )];
        let width = self.term.size().1 as usize;
        for (id, title, track, since) in &self.active {
            let track = track
                .as_deref()
                .map(|t| format!("[{t}] "))
                .unwrap_or_default();
            let time = elapsed(*since);
            let line = match self.doing.get(id) {
                Some(doing) => format!("  {track}{id} {title}: {doing}"),
                None => format!("  {track}{id} {title}"),
            };
            // Room for the time; the whole line stays within the terminal's width.
            let room = width.saturating_sub(time.len() + 3).max(8);
            let line = console::truncate_str(&line, room, "…");
            lines.push(format!("{line}  {}", style(time).dim().for_stderr()));
        }
        let skipped = if self.skipped > 0 {
            format!("  Skipped: {}", self.skipped)
        } else {
            String::new()
        };
        if let Some(t) = self.limit_resets {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if t > now {
                let left = t - now;
                lines.push(format!(
                    "{} the agent's limit resets in {}:{:02}:{:02}",
                    style("Waiting:").yellow().bold().for_stderr(),
                    left / 3600,
                    left / 60 % 60,
                    left % 60
                ));
            }
        }
        lines.push(format!(
            "Completed: {}  Failed: {}{skipped}  Elapsed: {}",
            self.completed,
            self.failed,
            elapsed(self.started)
        ));
        // A line wider than the terminal would wrap, and the next redraw would clear too few
        // rows: every line is cut to the width.
        for l in &lines {
            let _ = self.term.write_line(&console::truncate_str(
                l,
                width.saturating_sub(1).max(8),
                "…",
            ));
        }
        self.drawn = lines.len();
    }

    fn line(&mut self, verb: &str, message: String, bad: bool) {
        self.clear();
        if bad {
            // Shown even with -q, as cargo shows its errors.
            errln!("{:>12} {message}", style(verb).red().bold().for_stderr());
        } else {
            self.shell.status(verb, message);
        }
        self.draw();
    }

    fn show(&mut self, event: &crate::report::Event) {
        use crate::report::Event;
        match event {
            Event::RunStarted {
                feature,
                run_id,
                agent,
                max_agents,
                tasks,
                ..
            } => {
                self.feature.clone_from(feature);
                self.line(
                    "Running",
                    format!(
                        "{feature}: {}, up to {max_agents} at once, agent `{agent}` (run {run_id})",
                        count(*tasks, "task")
                    ),
                    false,
                );
            }
            Event::TaskStarted {
                id,
                title,
                track,
                branch,
                ..
            } => {
                self.active.push((
                    id.clone(),
                    title.clone(),
                    track.clone(),
                    std::time::Instant::now(),
                ));
                self.line("Started", format!("{id} {title} ({branch})"), false);
            }
            Event::ReviewVerdict {
                id,
                round,
                branch,
                verdict,
                ..
            } => {
                self.end_run(id);
                self.line(
                    "Reviewed",
                    format!("{id} round {round}: {} ({branch})", verdict.word()),
                    false,
                );
            }
            Event::ReworkFinished {
                id,
                review,
                branch,
                files_changed,
                ..
            } => {
                self.end_run(id);
                self.line(
                    "Reworked",
                    format!(
                        "{id} for {review} on {branch} ({}); {review} runs again",
                        count(files_changed.unwrap_or(0), "file")
                    ),
                    false,
                );
            }
            Event::TaskFinished(r) => self.task_finished(r),
            Event::Integrated(r) => self.integration = Some((**r).clone()),
            Event::RateLimited {
                task,
                agent,
                resets_at,
            } => {
                self.limit_resets = *resets_at;
                let when = resets_at.map_or_else(
                    || "its reset time not given".to_owned(),
                    |t| format!("resets at {}", crate::report::unix_time_text(t)),
                );
                self.line(
                    "Limited",
                    format!("{task}: agent `{agent}` hit its usage or rate limit ({when}); no new task starts meanwhile"),
                    false,
                );
            }
            Event::BudgetReached {
                spent_usd,
                max_cost_usd,
            } => self.line(
                "Stopping",
                format!(
                    "no new task starts: the agents' reported spend, ${spent_usd:.4}, reached --max-cost ${max_cost_usd:.4}; running tasks finish"
                ),
                false,
            ),
            // Shown on the task's line of the live block; plain output has no room for it.
            Event::AgentProgress { task, text, .. } => {
                self.doing.insert(task.clone(), text.clone());
            }
            Event::RunFinished {
                totals,
                duration_secs,
                exit_code,
                report,
                error,
                usage,
                disk,
                ..
            } => {
                self.run_finished(
                    totals,
                    *duration_secs,
                    *exit_code,
                    report.as_deref(),
                    error.as_deref(),
                );
                if let Some(u) = usage {
                    self.line("Usage", crate::report::usage_text(u), false);
                }
                if let Some(d) = disk {
                    self.line(
                        "Disk",
                        format!(
                            "{} (`cargo spec-exec clean {}` frees them)",
                            crate::report::disk_text(d),
                            self.feature
                        ),
                        false,
                    );
                }
                if let Some(r) = self.integration.take() {
                    for (verb, message, bad) in integration_lines(&r, &self.feature) {
                        self.line(verb, message, bad);
                    }
                    annotate_integration(self.shell, &r);
                }
            }
        }
    }

    /// A task ended: its line, and the counts of the live block.
    fn task_finished(&mut self, r: &crate::report::TaskReport) {
        use crate::report::Status;
        self.active.retain(|(id, ..)| *id != r.id);
        self.doing.remove(&r.id);
        match r.status {
            s if s.is_success() => self.completed += 1,
            Status::Failed => self.failed += 1,
            _ => self.skipped += 1,
        }
        // A task that failed its verification: the commands' output says why.
        let verify_failed = r.verify.last().is_some_and(|v| !v.passed);
        let log = match (&r.verify_log, verify_failed) {
            (Some(v), true) => Some(format!("verify log: {}", self.rel(v).display())),
            _ => r
                .log
                .as_ref()
                .map(|l| format!("log: {}", self.rel(l).display())),
        };
        match r.status {
            // A review's step with `--task` that asked for changes: its rework comes next.
            Status::Done if r.verdict == Some(crate::report::Verdict::RequiresChanges) => {
                self.line(
                    "Reviewed",
                    format!(
                        "{} on {}: {}",
                        r.id,
                        r.branch.as_deref().unwrap_or(""),
                        r.reason.as_deref().unwrap_or("requires changes")
                    ),
                    false,
                );
            }
            Status::Done if r.verdict.is_some() => {
                let rounds = r.rounds.iter().filter(|x| x.verdict.is_some()).count();
                self.line(
                    "Approved",
                    format!(
                        "{} on {} (after {rounds} review {})",
                        r.id,
                        r.branch.as_deref().unwrap_or(""),
                        if rounds == 1 { "round" } else { "rounds" }
                    ),
                    false,
                );
            }
            Status::Done => {
                let mut how = vec![count(r.files_changed.unwrap_or(0), "file")];
                if r.attempts > 1 {
                    how.push(format!("after {} attempts", r.attempts));
                }
                if !r.resolved.is_empty() {
                    how.push(format!(
                        "its base's conflicts in {} resolved by the agent",
                        r.resolved.join(", ")
                    ));
                }
                self.line(
                    "Committed",
                    format!(
                        "{} on {} ({})",
                        r.id,
                        r.branch.as_deref().unwrap_or(""),
                        how.join("; ")
                    ),
                    false,
                );
            }
            Status::Reused => self.line(
                "Reused",
                format!(
                    "{} ({}, finished by an earlier run)",
                    r.id,
                    r.branch.as_deref().unwrap_or("")
                ),
                false,
            ),
            Status::NotNeeded => self.line(
                "Skipped",
                format!(
                    "{} (not needed: {})",
                    r.id,
                    r.reason.as_deref().unwrap_or("")
                ),
                false,
            ),
            Status::Failed => {
                let mut parts: Vec<String> = r.reason.iter().cloned().collect();
                if let Some(last) = &r.last_output {
                    parts.push(format!("last output: {last}"));
                }
                parts.extend(log);
                if let Some(w) = &r.worktree {
                    parts.push(format!("worktree: {}", self.rel(w).display()));
                }
                self.line("Failed", format!("{} ({})", r.id, parts.join(", ")), true);
                self.shell.annotate(
                    self.places.get(&r.id),
                    &format!("task {} failed", r.id),
                    r.reason.as_deref().unwrap_or("failed"),
                );
            }
            Status::Skipped => self.line(
                "Skipped",
                format!("{} ({})", r.id, r.reason.as_deref().unwrap_or("")),
                true,
            ),
            Status::Interrupted => {
                // A review's earlier rounds were committed; only the one running was not.
                let mut parts = vec![if r.rounds.is_empty() {
                    "not committed".to_owned()
                } else {
                    "its last round not committed".to_owned()
                }];
                parts.extend(log);
                self.line(
                    "Interrupted",
                    format!("{} ({})", r.id, parts.join(", ")),
                    true,
                );
            }
        }
        if let Some(e) = &r.tick_error {
            self.clear();
            // The reason names the task and says it was not ticked.
            let message = if e.contains("not ticked") {
                e.clone()
            } else {
                format!("task {} was not ticked: {e}", r.id)
            };
            self.shell.diagnostic(
                &Diagnostic::error(message)
                    .at_opt(self.places.get(&r.id).cloned())
                    .help("its work is committed on its branch: tick it by hand once the list is as it should be"),
            );
            self.draw();
        }
    }

    /// The run ended: why its report is missing, if it is, then the totals.
    fn run_finished(
        &mut self,
        totals: &crate::report::Totals,
        duration_secs: f64,
        exit_code: i32,
        report: Option<&std::path::Path>,
        error: Option<&str>,
    ) {
        self.clear();
        self.drawn = 0;
        if let Some(e) = error {
            // Each file that could not be written says which it is.
            self.shell
                .diagnostic(&Diagnostic::error(e).help(crate::report::sink::WRITE_HELP));
        }
        let mut parts = vec![format!("{} done", totals.done)];
        for (n, word) in [
            (totals.reused, "reused"),
            (totals.not_needed, "not needed"),
            (totals.failed, "failed"),
            (totals.skipped, "skipped"),
            (totals.interrupted, "interrupted"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        let verb = "Finished";
        let mut msg = format!("in {:.1}s: {}", duration_secs, parts.join(", "));
        if let Some(report) = report {
            msg.push_str(&format!("; report: {}", self.rel(report).display()));
        }
        if exit_code == 0 {
            self.shell.status(verb, msg);
        } else {
            errln!("{:>12} {msg}", style(verb).red().bold().for_stderr());
        }
    }

    /// One run of a task (a review round, a rework run) ended; the task goes on.
    fn end_run(&mut self, id: &str) {
        if let Some(i) = self.active.iter().position(|(a, ..)| a == id) {
            self.active.remove(i);
        }
    }

    fn rel<'p>(&self, path: &'p std::path::Path) -> &'p std::path::Path {
        path.strip_prefix(&self.root).unwrap_or(path)
    }
}

impl crate::report::sink::Sink for Display<'_> {
    fn event(&mut self, event: &crate::report::Event) {
        self.show(event);
    }

    fn notice(&mut self, verb: &str, message: &str) {
        self.line(verb, message.to_owned(), verb == "Interrupted");
    }

    fn redraw(&mut self) {
        self.draw();
    }
}

/// JSON lines on stdout, one per event; notices on stderr.
#[derive(Debug)]
pub struct JsonLines<'a>(pub &'a Shell);

impl crate::report::sink::Sink for JsonLines<'_> {
    fn event(&mut self, event: &crate::report::Event) {
        self.0.json(event);
    }

    fn notice(&mut self, verb: &str, message: &str) {
        errln!("{verb}: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::first_of;

    #[test]
    fn a_long_list_is_cut_to_its_first_items() {
        let paths: Vec<String> = (1..=12).map(|i| format!("f{i}.rs")).collect();
        assert_eq!(first_of(&paths[..2], 10), "f1.rs, f2.rs");
        assert_eq!(
            first_of(&paths[..10], 10),
            "f1.rs, f2.rs, f3.rs, f4.rs, f5.rs, f6.rs, f7.rs, f8.rs, f9.rs, f10.rs"
        );
        assert_eq!(
            first_of(&paths, 10),
            "f1.rs, f2.rs, f3.rs, f4.rs, f5.rs, f6.rs, f7.rs, f8.rs, f9.rs, f10.rs and 2 more"
        );
    }
}
