//! The run's event stream and its final report. Exec emits [`Event`]s; every output is a
//! [`sink::Sink`] of them: JSON lines, the human display in [`crate::output`], the report files.

pub mod feature;
pub mod junit;
pub mod sink;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::render::FORMAT_VERSION;

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Ran, committed and ticked.
    Done,
    /// Finished by an earlier run: its branch was reused.
    Reused,
    /// A conditional task whose condition did not hold (the reviews passed): ticked, not run.
    NotNeeded,
    Failed,
    /// Not run: it depends on a failed or blocked task, or the run stopped before it.
    Skipped,
    /// Stopped by Ctrl-C: neither committed nor ticked.
    Interrupted,
}

impl Status {
    pub fn is_success(self) -> bool {
        matches!(self, Status::Done | Status::Reused | Status::NotNeeded)
    }

    pub fn word(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Reused => "reused",
            Status::NotNeeded => "not needed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Interrupted => "interrupted",
        }
    }
}

/// A review's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Approved,
    RequiresChanges,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::RequiresChanges => "requires changes",
        }
    }

    /// As in JSON and in the commit trailer.
    pub fn word_kebab(self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::RequiresChanges => "requires-changes",
        }
    }
}

/// One run of a review gate's loop: a review round (with its verdict) or a run of its rework.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Round {
    /// The review, or the rework that ran between two of its rounds.
    pub task: String,
    /// The review's round; for a rework, its own run number (1 for its first run).
    pub round: u32,
    pub branch: String,
    pub commit: Option<String>,
    /// A review round's verdict (`null` for a rework run).
    pub verdict: Option<Verdict>,
    /// Recorded by an earlier run and reused.
    pub reused: bool,
}

/// One run of a verify command on a task's work.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyRun {
    /// The command line, as configured.
    pub command: String,
    /// The attempt whose work it checked (1, 2, …).
    pub attempt: u32,
    /// The step it checked: `task`, `resolve` or `review`.
    pub step: String,
    pub passed: bool,
    /// How it ended when it did not pass (`exit 101`, `timed out`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub duration_secs: f64,
}

/// The feature's integration branch, and what to do next.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationReport {
    pub branch: String,
    /// `built`, `unchanged` (it held every task's work already), `failed` or `interrupted`.
    pub status: &'static str,
    pub commit: Option<String>,
    /// The base it is compared with, as the user names it (`main`).
    pub base: String,
    /// Whether the base is a local branch (a pull request can go into it).
    pub base_is_branch: bool,
    /// The task branches merged into it by this run.
    pub merged: Vec<String>,
    /// Paths whose conflicts an agent resolved.
    pub resolved: Vec<String>,
    /// The verify commands it passed.
    pub verified: Vec<String>,
    /// Against the base.
    pub files_changed: Option<usize>,
    pub insertions: Option<usize>,
    pub deletions: Option<usize>,
    pub reason: Option<String>,
    /// Kept for inspection when it failed.
    pub worktree: Option<PathBuf>,
    pub log: Option<PathBuf>,
    /// tasks.md, when it has changes (ticks, an approval) that are not committed.
    pub uncommitted: Option<PathBuf>,
    /// Whether `gh` is on PATH (`cargo spec-exec pr` opens the pull request with it).
    pub gh: bool,
    /// Done tasks without a branch: their work is taken to be in the base.
    pub without_branch: Vec<String>,
}

/// One task's line of the report (read back from `report.json` for the feature report).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskReport {
    pub id: String,
    pub title: String,
    pub track: Option<String>,
    pub status: Status,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub files_changed: Option<usize>,
    #[serde(default)]
    pub duration_secs: f64,
    pub log: Option<PathBuf>,
    /// Kept for inspection when the task did not finish.
    pub worktree: Option<PathBuf>,
    pub reason: Option<String>,
    /// Set when the task was done but tasks.md could not be ticked.
    pub tick_error: Option<String>,
    /// A review's final verdict (`null` for other tasks, and for a review that gave none).
    pub verdict: Option<Verdict>,
    /// A review's loop, round by round, with the rework runs between rounds; a rework's own
    /// runs. Empty for other tasks.
    #[serde(default)]
    pub rounds: Vec<Round>,
    /// The agent that ran it (`claude`, `shell`, a command's program); `null` when none ran.
    pub agent: Option<String>,
    /// The last line the agent printed, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_output: Option<String>,
    /// The last lines (at most 20) of what failed last: the verify command's output, or the
    /// agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    /// How many times the agent ran for the task's own step (0 when it never ran).
    #[serde(default)]
    pub attempts: u32,
    /// Every verify command run on the task's work, in order, across attempts.
    #[serde(default)]
    pub verify: Vec<VerifyRun>,
    /// The verify commands' output.
    #[serde(default)]
    pub verify_log: Option<PathBuf>,
    /// The paths whose conflicts between its dependencies' branches an agent resolved.
    #[serde(default)]
    pub resolved: Vec<String>,
    /// Tokens, cost, turns and the session, as its agent reported them (summed over its
    /// attempts); `null` when the agent reports none.
    #[serde(default)]
    pub usage: Option<Usage>,
}

impl TaskReport {
    /// A task's line with only its id, title, track and status: no branch, commit, log or
    /// reason yet.
    pub fn new(id: String, title: String, track: Option<String>, status: Status) -> TaskReport {
        TaskReport {
            id,
            title,
            track,
            status,
            branch: None,
            commit: None,
            files_changed: None,
            duration_secs: 0.0,
            log: None,
            worktree: None,
            reason: None,
            tick_error: None,
            verdict: None,
            rounds: Vec::new(),
            agent: None,
            last_output: None,
            output_tail: None,
            attempts: 0,
            verify: Vec::new(),
            verify_log: None,
            usage: None,
            resolved: Vec::new(),
        }
    }
}

/// Tokens, cost, turns and the session, as an agent reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the CLI's cache.
    pub cached_tokens: u64,
    /// In US dollars, when the agent reports it.
    pub cost_usd: Option<f64>,
    pub turns: Option<u32>,
    pub session_id: Option<String>,
}

impl Usage {
    /// `other` added to this one (a run's sum); the session is this one's.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
        self.cost_usd = match (self.cost_usd, other.cost_usd) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        self.turns = match (self.turns, other.turns) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// What the feature's worktree slots and their build directories take on disk when a run ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUse {
    /// How many slots there are (free and kept).
    pub slots: usize,
    /// Bytes of the slots' worktrees.
    pub worktrees_bytes: u64,
    /// Bytes of their build directories (and of the shared target directory).
    pub builds_bytes: u64,
}

/// The line that says it, for people: `3 worktree slots, 1.2 MiB; build directories, 312.0 MiB`.
pub fn disk_text(d: &DiskUse) -> String {
    format!(
        "{} worktree slot{}, {}; their build directories, {}",
        d.slots,
        if d.slots == 1 { "" } else { "s" },
        crate::fsutil::human_size(d.worktrees_bytes),
        crate::fsutil::human_size(d.builds_bytes)
    )
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub done: usize,
    pub reused: usize,
    pub not_needed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub interrupted: usize,
}

impl Totals {
    pub fn of(tasks: &[TaskReport]) -> Totals {
        let mut t = Totals::default();
        for r in tasks {
            match r.status {
                Status::Done => t.done += 1,
                Status::Reused => t.reused += 1,
                Status::NotNeeded => t.not_needed += 1,
                Status::Failed => t.failed += 1,
                Status::Skipped => t.skipped += 1,
                Status::Interrupted => t.interrupted += 1,
            }
        }
        t
    }
}

/// The events of a run, in order. JSON lines carry them with a `type` field.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    RunStarted {
        format_version: u32,
        feature: String,
        run_id: String,
        agent: String,
        max_agents: usize,
        tasks: usize,
        run_dir: PathBuf,
    },
    TaskStarted {
        id: String,
        title: String,
        track: Option<String>,
        branch: String,
        worktree: PathBuf,
        log: PathBuf,
        /// A review's round, or a rework's run number; `null` for other tasks.
        round: Option<u32>,
    },
    /// A review round ended with a verdict (every round, the last one too).
    ReviewVerdict {
        id: String,
        round: u32,
        branch: String,
        commit: Option<String>,
        verdict: Verdict,
        log: PathBuf,
    },
    /// A rework ran for a review that asked for changes; the review runs again on top of it.
    ReworkFinished {
        id: String,
        review: String,
        round: u32,
        branch: String,
        commit: Option<String>,
        files_changed: Option<usize>,
        duration_secs: f64,
        log: PathBuf,
    },
    /// A task's agent hit its usage or rate limit: the task is not failed; the run waits until
    /// it resets (`resets_at`, Unix seconds, when the agent said) and runs it again, or stops.
    RateLimited {
        task: String,
        agent: String,
        resets_at: Option<u64>,
    },
    /// The agents' reported spend reached `--max-cost`: no new task starts.
    BudgetReached {
        spent_usd: f64,
        max_cost_usd: f64,
    },
    /// What a running task's agent is doing now (at most one a second per task).
    AgentProgress {
        task: String,
        /// `message`, `tool` or `result`.
        kind: &'static str,
        text: String,
    },
    TaskFinished(Box<TaskReport>),
    /// The feature's integration branch was built, found up to date, or could not be built.
    Integrated(Box<IntegrationReport>),
    RunFinished {
        totals: Totals,
        duration_secs: f64,
        exit_code: i32,
        /// The feature's integration branch and its commit, when the run built it (or found
        /// it holding every task's work).
        integration_branch: Option<String>,
        integration_commit: Option<String>,
        /// The tokens, cost and turns the agents reported, summed; `null` when none did.
        usage: Option<Usage>,
        /// What the feature's worktree slots and build directories take on disk; `null` when
        /// the run made none.
        disk: Option<DiskUse>,
        /// `None` when nothing ran (every selected task was done already), or when the report
        /// could not be written.
        report: Option<PathBuf>,
        /// Why the report could not be written.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Event {
    pub fn run_started(
        feature: &str,
        run_id: &str,
        agent: &str,
        max_agents: usize,
        tasks: usize,
        run_dir: &Path,
    ) -> Event {
        Event::RunStarted {
            format_version: FORMAT_VERSION,
            feature: feature.to_owned(),
            run_id: run_id.to_owned(),
            agent: agent.to_owned(),
            max_agents,
            tasks,
            run_dir: run_dir.to_path_buf(),
        }
    }
}

/// The final report, as written to `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report<'a> {
    pub format_version: u32,
    pub feature: &'a str,
    pub run_id: &'a str,
    pub agent: &'a str,
    pub duration_secs: f64,
    pub exit_code: i32,
    pub totals: Totals,
    pub tasks: &'a [TaskReport],
    /// The tokens, cost and turns the agents reported, summed.
    pub usage: Option<Usage>,
    /// The feature's integration branch, when the run built it or tried to.
    pub integration: Option<&'a IntegrationReport>,
    /// What the worktree slots and their build directories take on disk.
    pub disk: Option<DiskUse>,
    /// Paths in the markdown are shown relative to it (the JSON has them absolute).
    #[serde(skip)]
    pub root: &'a Path,
}

fn secs(d: f64) -> String {
    if d < 60.0 {
        format!("{d:.1}s")
    } else {
        format!("{}m{:02}s", (d / 60.0) as u64, (d % 60.0) as u64)
    }
}

impl Report<'_> {
    fn rel<'p>(&self, path: &'p Path) -> &'p Path {
        path.strip_prefix(self.root).unwrap_or(path)
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let t = &self.totals;
        let _ = writeln!(
            out,
            "# spec-exec run {} of `{}`\n",
            self.run_id, self.feature
        );
        let _ = writeln!(
            out,
            "{} `{}`, {} in all, exit code {}: {} done, {} reused, {} not needed, {} failed, {} skipped, {} interrupted.\n",
            if self.agent.contains(", ") {
                "Agents"
            } else {
                "Agent"
            },
            self.agent,
            secs(self.duration_secs),
            self.exit_code,
            t.done,
            t.reused,
            t.not_needed,
            t.failed,
            t.skipped,
            t.interrupted
        );
        let _ = writeln!(
            out,
            "| task | status | agent | branch | commit | files | time | log / note |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |");
        for r in self.tasks {
            let mut note: Vec<String> = r.reason.iter().cloned().collect();
            if r.attempts > 1 {
                note.push(format!("{} attempts", r.attempts));
            }
            if let Some(u) = &r.usage {
                note.push(usage_text(u));
            }
            if !r.resolved.is_empty() {
                note.push(format!(
                    "conflicts of its base resolved by the agent: {}",
                    r.resolved.join(", ")
                ));
            }
            if let Some(log) = &r.log {
                note.push(format!("log `{}`", self.rel(log).display()));
            }
            if let Some(w) = &r.worktree {
                note.push(format!("worktree kept at `{}`", self.rel(w).display()));
            }
            if let Some(e) = &r.tick_error {
                note.push(format!("not ticked: {e}"));
            }
            let note = note.join("; ");
            let _ = writeln!(
                out,
                "| {} {} | {} | {} | {} | {} | {} | {} | {} |",
                r.id,
                r.title.replace('|', "\\|"),
                r.status.word(),
                r.agent
                    .as_deref()
                    .map(|a| format!("`{a}`"))
                    .unwrap_or_default(),
                r.branch
                    .as_deref()
                    .map(|b| format!("`{b}`"))
                    .unwrap_or_default(),
                r.commit
                    .as_deref()
                    .map(|c| format!("`{}`", &c[..c.len().min(10)]))
                    .unwrap_or_default(),
                r.files_changed.map(|f| f.to_string()).unwrap_or_default(),
                secs(r.duration_secs),
                note.replace('|', "\\|"),
            );
        }
        let gates: Vec<&TaskReport> = self
            .tasks
            .iter()
            .filter(|r| r.rounds.iter().any(|x| x.verdict.is_some()))
            .collect();
        if !gates.is_empty() {
            let _ = writeln!(out, "\n## Review rounds\n");
            let _ = writeln!(out, "| review | round | task | branch | commit | verdict |");
            let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
            for r in gates {
                for x in &r.rounds {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | `{}` | {} | {}{} |",
                        r.id,
                        x.round,
                        x.task,
                        x.branch,
                        x.commit
                            .as_deref()
                            .map(|c| format!("`{}`", &c[..c.len().min(10)]))
                            .unwrap_or_default(),
                        x.verdict.map_or("rework", Verdict::word),
                        if x.reused { " (earlier run)" } else { "" },
                    );
                }
            }
        }
        if let Some(i) = self.integration {
            let _ = writeln!(out, "\n## Integration\n");
            let commit = i
                .commit
                .as_deref()
                .map(|c| format!(" at `{}`", &c[..c.len().min(10)]))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "`{}`{commit}: {} (base `{}`).",
                i.branch, i.status, i.base
            );
            if !i.merged.is_empty() {
                let _ = writeln!(out, "\n- merged: {}", i.merged.join(", "));
            }
            if !i.resolved.is_empty() {
                let _ = writeln!(out, "- conflicts resolved: {}", i.resolved.join(", "));
            }
            if !i.verified.is_empty() {
                let _ = writeln!(out, "- verified: {}", i.verified.join(", "));
            }
            if let Some(reason) = &i.reason {
                let _ = writeln!(out, "- {}", reason.replace('\n', " "));
            }
        }
        if let Some(d) = &self.disk {
            let _ = writeln!(
                out,
                "\n{} on disk (`cargo spec-exec clean {}` frees them).",
                disk_text(d),
                self.feature
            );
        }
        out
    }
}

/// A time in Unix seconds, for people (RFC 3339, UTC); a time no calendar can show, as its
/// number.
pub fn unix_time_text(t: u64) -> String {
    std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(t))
        .filter(|_| t < 253_402_300_800) // 10000-01-01
        .map_or_else(
            || format!("{t} (Unix seconds)"),
            |when| humantime::format_rfc3339_seconds(when).to_string(),
        )
}

/// Tokens and cost, for people: `1200 tokens in (800 cached), 300 out, $0.0123, 4 turns`.
pub fn usage_text(u: &Usage) -> String {
    let mut t = format!("{} tokens in", u.input_tokens + u.cached_tokens);
    if u.cached_tokens > 0 {
        t.push_str(&format!(" ({} cached)", u.cached_tokens));
    }
    t.push_str(&format!(", {} out", u.output_tokens));
    if let Some(c) = u.cost_usd {
        t.push_str(&format!(", ${c:.4}"));
    }
    if let Some(n) = u.turns {
        t.push_str(&format!(", {n} turns"));
    }
    t
}

/// The usage of `tasks`, summed; `None` when none reported any.
pub fn total_usage(tasks: &[TaskReport]) -> Option<Usage> {
    let mut total: Option<Usage> = None;
    for u in tasks.iter().filter_map(|r| r.usage.as_ref()) {
        total.get_or_insert_with(Default::default).add(u);
    }
    if let Some(t) = &mut total {
        t.session_id = None;
    }
    total
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced, then
/// renamed over it. A link is written through (the file it leads to is replaced, the link
/// kept); the file keeps the mode of the one it replaces, and a new one gets the mode any new
/// file gets (0666 less the umask), not the temporary file's 0600.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let fail = |e: std::io::Error| format!("could not write `{}`: {e}", path.display());
    let is_link = path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink());
    let target = if is_link {
        path.canonicalize().map_err(fail)?
    } else {
        path.to_path_buf()
    };
    let dir = target.parent().unwrap_or(Path::new("."));
    let existing = std::fs::metadata(&target).ok().map(|m| m.permissions());
    let mut tmp = tempfile::Builder::new()
        .prefix(".report-")
        // Given to open(2), which takes the umask off.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(fail)?;
    if let Some(mode) = existing {
        tmp.as_file().set_permissions(mode).map_err(fail)?;
    }
    std::io::Write::write_all(&mut tmp, bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(&target).map_err(|e| fail(e.error))?;
    Ok(())
}
