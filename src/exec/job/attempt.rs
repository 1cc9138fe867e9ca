//! A step of a job that an agent does (the task itself, resolving its base's conflicts, a
//! review), attempt after attempt: the agent runs, its work is checked (no conflict markers
//! left, the verify commands pass), and what failed goes back to the agent in the next
//! attempt's prompt, until the work passes or the attempts run out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use super::{Ctx, End, Progress, argvs, blocking, last_line, last_printable};
use crate::agents::Agent;
use crate::exec::process::{self, Outcome, Stop};
use crate::report::{Status, VerifyRun};

/// How many lines of a failed command's output the next attempt's prompt quotes.
const TAIL_LINES: usize = 200;
/// At most this much of that output, from its end: a few lines can be very long.
const TAIL_BYTES: u64 = 64 * 1024;

/// What the agent is asked to do in a step: `SPEC_EXEC_STEP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Task,
    Resolve,
    Review,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Task => "task",
            Kind::Resolve => "resolve",
            Kind::Review => "review",
        }
    }
}

/// Who does a step: a task's job, or the feature's integration.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub branch: &'a str,
    pub agent: &'a Agent,
    /// The shell agent's commands.
    pub code_blocks: &'a [String],
    /// The agent's session to resume (after its limit reset).
    pub resume: Option<&'a str>,
}

impl<'a> Who<'a> {
    pub fn of(job: &'a super::Job) -> Who<'a> {
        Who {
            id: &job.id,
            title: &job.title,
            branch: &job.start.branch,
            agent: &job.agent,
            code_blocks: &job.code_blocks,
            resume: job.start.resume.as_deref(),
        }
    }
}

/// One step for the agent.
#[derive(Debug)]
pub struct Step {
    pub kind: Kind,
    /// The step's prompt; a later attempt's adds what failed.
    pub prompt: String,
    /// Where the prompt is written.
    pub prompt_file: PathBuf,
    /// The merge's conflicts the agent is to resolve.
    pub conflicts: Option<Conflicts>,
    /// Verify the work even when the worktree has no uncommitted changes (a resolved merge).
    pub verify_always: bool,
    /// Check the worktree before the agent runs: the agent runs only when the check fails,
    /// with the failure in its prompt.
    pub check_first: bool,
}

/// A merge's conflicts, as git has their paths: all of them, and the text ones (with
/// markers in their files).
pub type Conflicts = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// What passed: the verify commands that passed on the final attempt's work.
#[derive(Debug, Default)]
pub struct Passed {
    pub verified: Vec<String>,
}

/// Why an attempt did not pass, as the next attempt's prompt tells the agent.
#[derive(Debug)]
enum Failure {
    Agent {
        outcome: String,
        tail: String,
    },
    Markers {
        at: Vec<String>,
    },
    Verify {
        line: String,
        outcome: String,
        tail: String,
    },
}

impl Failure {
    /// The reason a task fails with when this was the last attempt.
    fn reason(&self) -> String {
        match self {
            Failure::Agent { outcome, .. } => outcome.clone(),
            Failure::Markers { at } => format!("unresolved conflicts in {}", at.join(", ")),
            Failure::Verify { line, outcome, .. } => {
                format!("verify failed: `{line}` ended with {outcome}")
            }
        }
    }

    fn tail(&self) -> Option<&str> {
        match self {
            Failure::Agent { tail, .. } | Failure::Verify { tail, .. } => Some(tail),
            Failure::Markers { .. } => None,
        }
    }

    /// The section of the next attempt's prompt.
    fn prompt(&self, attempt: u32, max: u32) -> String {
        let mut p = format!("\n\n## Attempt {attempt} of {max}\n\n");
        match self {
            Failure::Agent { outcome, tail } => {
                p.push_str(&format!(
                    "The previous attempt ended with {outcome}. The worktree holds what it did. The last lines of its output:\n\n{}\n\nFind out what went wrong, then finish the work.\n",
                    fenced(tail)
                ));
            }
            Failure::Markers { at } => {
                p.push_str(&format!(
                    "The previous attempt left conflicts unresolved: {}. Resolve every conflict: no marker (`<<<<<<<`, `=======`, `|||||||`, `>>>>>>>`) may be left, and a conflict without markers (a binary file, a link, a deleted file) is resolved by choosing its content and staging it with `git add` (or `git rm`).\n",
                    at.join(", ")
                ));
            }
            Failure::Verify {
                line,
                outcome,
                tail,
            } => {
                p.push_str(&format!(
                    "The work was checked with `{line}`, which ended with {outcome}. The last lines of its output:\n\n{}\n\nFix what it reports, keep the rest of the work, and make sure `{line}` passes.\n",
                    fenced(tail)
                ));
            }
        }
        p
    }
}

/// `text` in a fence longer than any run of backticks in it.
fn fenced(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}text\n{}\n{fence}", text.trim_end())
}

/// The end of `path` from byte `from`: its last [`TAIL_LINES`] lines.
fn tail_from(path: &Path, from: u64) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(TAIL_BYTES));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

fn len_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn append(path: &Path, text: &str) {
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
}

/// How many attempts a step gets: the shell agent's blocks would only do the same again.
fn attempts_for(ctx: &Ctx, agent: &Agent) -> u32 {
    match agent {
        Agent::Shell => 1,
        Agent::Command { .. } => ctx.max_attempts.max(1),
    }
}

/// Runs `step` to success or to its last failed attempt.
pub async fn run(
    ctx: &Arc<Ctx>,
    who: Who<'_>,
    p: &mut Progress,
    stop: &watch::Receiver<Stop>,
    step: Step,
) -> Result<Passed, End> {
    let mut failure: Option<Failure> = None;
    if step.check_first {
        failure = check(ctx, who, p, stop, &step, 0).await?;
        if failure.is_none() {
            return Ok(passed(p, &step, 0));
        }
    }
    if step.kind == Kind::Resolve && matches!(who.agent, Agent::Shell) {
        return Err(End::failed(match &failure {
            Some(f) => format!(
                "{}; the shell agent cannot fix it (it only runs a task's code blocks)",
                f.reason()
            ),
            None => "the shell agent cannot resolve conflicts (it only runs a task's code blocks)"
                .to_owned(),
        }));
    }
    let target = p
        .build_env
        .iter()
        .find(|(k, _)| k == "CARGO_TARGET_DIR")
        .map(|(_, v)| v.as_str());
    let mut argvs = argvs(who.agent, who.code_blocks, &step.prompt_file, target)?;
    // claude and codex resume the session their limit cut short, in the worktree it left.
    if let (
        Some(session),
        Agent::Command {
            name, preset: true, ..
        },
    ) = (who.resume, who.agent)
        && step.kind != Kind::Resolve
        && let Some(argv) = argvs.first_mut()
    {
        crate::agents::resume_session(name, argv, session);
    }
    let max = attempts_for(ctx, who.agent);
    p.report.log = Some(p.log.clone());
    p.report.agent = Some(who.agent.name().to_owned());
    for attempt in 1..=max {
        let mut prompt = step.prompt.clone();
        if let Some(f) = &failure {
            prompt.push_str(&f.prompt(attempt, max));
            append(
                &p.log,
                &format!("\n── spec-exec: attempt {attempt} of {max} ──\n"),
            );
        }
        {
            let file = step.prompt_file.clone();
            blocking(move || std::fs::write(file, prompt))
                .await
                .map_err(|e| End::failed(format!("could not write the prompt: {e}")))?;
        }
        if step.kind != Kind::Resolve {
            p.report.attempts = attempt;
        }
        let from = len_of(&p.log);
        let outcome = run_agent(ctx, who, p, stop, &step, &argvs, attempt).await;
        // A usage or rate limit is not the work failing: the run waits it out (or stops) and
        // runs the step again. Its stream says so, or its output when it failed (aider's also
        // when it exited 0: it does on a rate limit).
        let read_output = match &outcome {
            Outcome::Exited(0) => who.agent.name() == "aider",
            Outcome::Interrupted | Outcome::TimedOut => false,
            _ => true,
        };
        // A stream's limit counts only when the agent did not finish: a CLI that waited out a
        // limit (or retried past one) and then did the work has done it.
        let mut limited = p.rate_limited.take().filter(|_| read_output);
        if limited.is_none() && read_output {
            let log = p.log.clone();
            let tail = blocking(move || tail_from(&log, from)).await;
            if crate::exec::stream::says_rate_limited(&tail) {
                limited = Some(None);
            }
        }
        if let Some(resets_at) = limited {
            return Err(End {
                status: Status::Failed,
                reason: "the agent hit its usage or rate limit".to_owned(),
                rate_limited: Some(resets_at),
            });
        }
        failure = match outcome {
            Outcome::Exited(0) => check(ctx, who, p, stop, &step, attempt).await?,
            Outcome::Interrupted => return Err(interrupted()),
            // Another attempt would most likely run out of time too.
            Outcome::TimedOut => {
                let log = p.log.clone();
                p.report.last_output = blocking(move || last_line(&log)).await;
                return Err(End::failed(format!(
                    "timed out after {}",
                    humantime::format_duration(ctx.timeout)
                )));
            }
            other => Some(Failure::Agent {
                outcome: other.describe(),
                tail: {
                    let log = p.log.clone();
                    blocking(move || tail_from(&log, from)).await
                },
            }),
        };
        let Some(f) = &failure else {
            return Ok(passed(p, &step, attempt));
        };
        if attempt == max {
            p.report.last_output = f.tail().and_then(last_printable);
            p.report.output_tail = f.tail().map(|t| {
                let text = console::strip_ansi_codes(t);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(20)..]
                    .iter()
                    .map(|l| {
                        l.chars()
                            .filter(|c| !c.is_control() || *c == '\t')
                            .collect::<String>()
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            let mut reason = f.reason();
            if step.kind == Kind::Resolve {
                reason = format!("the agent did not resolve them: {reason}");
            }
            if max > 1 {
                reason.push_str(&format!(" (after {max} attempts)"));
            }
            return Err(End::failed(reason));
        }
    }
    unreachable!("the last attempt returns")
}

/// The verify commands that passed on `attempt`'s work.
fn passed(p: &Progress, step: &Step, attempt: u32) -> Passed {
    Passed {
        verified: p
            .report
            .verify
            .iter()
            .filter(|v| v.attempt == attempt && v.step == step.kind.word() && v.passed)
            .map(|v| v.command.clone())
            .collect(),
    }
}

fn interrupted() -> End {
    End {
        status: Status::Interrupted,
        reason: "interrupted".to_owned(),
        rate_limited: None,
    }
}

/// The environment of the agent and of the verify commands.
fn env(ctx: &Ctx, who: Who<'_>, p: &Progress, step: &Step, attempt: u32) -> Vec<(String, String)> {
    [
        ("SPEC_EXEC_FEATURE", ctx.feature.clone()),
        ("SPEC_EXEC_TASK_ID", who.id.to_owned()),
        ("SPEC_EXEC_TASK_TITLE", who.title.to_owned()),
        (
            "SPEC_EXEC_PROMPT_FILE",
            step.prompt_file.display().to_string(),
        ),
        (
            "SPEC_EXEC_SPEC_DIR",
            p.worktree.join(&ctx.spec_rel).display().to_string(),
        ),
        ("SPEC_EXEC_WORKTREE", p.worktree.display().to_string()),
        ("SPEC_EXEC_BRANCH", who.branch.to_owned()),
        ("SPEC_EXEC_RUN_ID", ctx.run_id.clone()),
        ("SPEC_EXEC_STEP", step.kind.word().to_owned()),
        ("SPEC_EXEC_ATTEMPT", attempt.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(p.build_env.iter().cloned())
    .collect()
}

/// The agent's run of one attempt: its argvs in turn (the shell agent's blocks), sharing the
/// task's timeout.
async fn run_agent(
    ctx: &Arc<Ctx>,
    who: Who<'_>,
    p: &mut Progress,
    stop: &watch::Receiver<Stop>,
    step: &Step,
    argvs: &[Vec<String>],
    attempt: u32,
) -> Outcome {
    let mut env = env(ctx, who, p, step, attempt);
    if let Agent::Command { env: own, .. } = who.agent {
        env.extend(own.iter().cloned());
    }
    // A structured stream is read as it comes: progress, transcript, usage, final message.
    let tap = match who.agent {
        Agent::Command {
            format: Some(format),
            ..
        } => Some(Arc::new(std::sync::Mutex::new(
            crate::exec::stream::Tap::new(
                *format,
                &p.log.with_extension("transcript.md"),
                ctx.progress.clone(),
                who.id,
            ),
        ))),
        _ => None,
    };
    let process_tap = tap.clone().map(|t| {
        let f: process::Tap = Arc::new(std::sync::Mutex::new(move |line: &str| {
            if let Ok(mut t) = t.lock() {
                t.line(line);
            }
        }));
        f
    });
    let deadline = Instant::now() + ctx.timeout;
    p.agent_started = Some(SystemTime::now());
    let mut outcome = Outcome::Exited(0);
    for argv in argvs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::TimedOut;
        }
        outcome = process::run(
            &process::Spawn {
                argv,
                cwd: &p.worktree,
                stdin: &step.prompt_file,
                log: &p.log,
                stdout: None,
                env: &env,
                timeout: left,
                grace: ctx.grace,
                registry: Some((&ctx.registry, &ctx.run_id)),
                tap: process_tap.clone(),
            },
            stop.clone(),
        )
        .await;
        if !outcome.success() {
            break;
        }
    }
    if let Some(read) = tap.and_then(|t| t.lock().ok().map(|t| t.stream.clone())) {
        if !read.usage.is_empty() {
            p.report
                .usage
                .get_or_insert_with(Default::default)
                .add(&read.usage);
            if let Some(u) = &mut p.report.usage {
                u.session_id = read.usage.session_id.clone().or(u.session_id.take());
            }
        }
        p.final_text = read.final_text;
        p.rate_limited = read.rate_limited;
    }
    outcome
}

/// Checks an attempt's work: conflict markers, then the verify commands in order (the first
/// that fails ends the check).
async fn check(
    ctx: &Arc<Ctx>,
    who: Who<'_>,
    p: &mut Progress,
    stop: &watch::Receiver<Stop>,
    step: &Step,
    attempt: u32,
) -> Result<Option<Failure>, End> {
    if let Some((all, textual)) = step.conflicts.clone() {
        let worktree = p.worktree.clone();
        let at = blocking(move || crate::git::unresolved(&worktree, &all, &textual)).await;
        if !at.is_empty() {
            return Ok(Some(Failure::Markers { at }));
        }
    }
    let commands = p
        .verify_commands
        .clone()
        .unwrap_or_else(|| ctx.verify_commands(&p.worktree));
    if commands.is_empty() {
        return Ok(None);
    }
    if !step.verify_always {
        let worktree = p.worktree.clone();
        if !blocking(move || crate::git::has_changes(&worktree)).await {
            return Ok(None);
        }
    }
    // The commands check the work; they do not change it: what they write, change or delete
    // (an untracked Cargo.lock, a formatted file) is put back as the agent left it.
    let staged = in_own_worktree(ctx, who, p, crate::git::stage_all).await?;
    let failure = verify(ctx, p, stop, step, attempt, commands).await;
    in_own_worktree(ctx, who, p, move |w| crate::git::restore_staged(w, &staged)).await?;
    failure
}

/// Runs `f` on the job's worktree, if it still is the one spec-exec made (an agent may have
/// swapped it for a link to the user's tree, or pointed its `.git` elsewhere).
async fn in_own_worktree<T: Send + 'static>(
    ctx: &Arc<Ctx>,
    who: Who<'_>,
    p: &Progress,
    f: impl FnOnce(&Path) -> crate::error::Result<T> + Send + 'static,
) -> Result<T, End> {
    let (worktree, name, branch) = (
        p.worktree.clone(),
        p.worktree_name.clone(),
        who.branch.to_owned(),
    );
    let ctx = Arc::clone(ctx);
    blocking(move || {
        crate::git::check_worktree(&ctx.git()?.common_dir(), &name, &worktree, &branch)?;
        f(&worktree)
    })
    .await
    .map_err(|e| End::failed(e.to_string()))
}

/// Runs the verify commands in order; the first that fails ends the check.
async fn verify(
    ctx: &Arc<Ctx>,
    p: &mut Progress,
    stop: &watch::Receiver<Stop>,
    step: &Step,
    attempt: u32,
    commands: Vec<crate::config::VerifyCommand>,
) -> Result<Option<Failure>, End> {
    let log = p.verify_log.clone();
    p.report.verify_log = Some(log.clone());
    let cwd = ctx.verify_dir(&p.worktree);
    let stdin = PathBuf::from("/dev/null");
    for command in commands {
        append(
            &log,
            &format!(
                "── spec-exec: {} (step {}, attempt {attempt}) ──\n",
                command.line,
                step.kind.word()
            ),
        );
        let from = len_of(&log);
        let started = Instant::now();
        // The worktree lies inside the repository's git directory: without a manifest of its
        // own, cargo would walk up to the repository's and check the user's tree instead.
        let cargo = Path::new(&command.argv[0])
            .file_name()
            .is_some_and(|n| n == "cargo");
        let outcome = if cargo && !cwd.join("Cargo.toml").is_file() {
            let why = format!(
                "the worktree has no `{}`: cargo would find the manifest above it, outside the worktree",
                ctx.root_rel.join("Cargo.toml").display()
            );
            append(&log, &format!("spec-exec: {why}\n"));
            Outcome::SpawnFailed(why)
        } else {
            process::run(
                &process::Spawn {
                    argv: &command.argv,
                    cwd: &cwd,
                    stdin: &stdin,
                    log: &log,
                    stdout: None,
                    env: &[
                        ("SPEC_EXEC_FEATURE".to_owned(), ctx.feature.clone()),
                        // How a later run finds the commands of a run that died.
                        ("SPEC_EXEC_RUN_ID".to_owned(), ctx.run_id.clone()),
                        ("SPEC_EXEC_STEP".to_owned(), "verify".to_owned()),
                        ("SPEC_EXEC_ATTEMPT".to_owned(), attempt.to_string()),
                    ]
                    .into_iter()
                    .chain(p.build_env.iter().cloned())
                    .collect::<Vec<_>>(),
                    timeout: ctx.timeout,
                    grace: ctx.grace,
                    registry: Some((&ctx.registry, &ctx.run_id)),
                    tap: None,
                },
                stop.clone(),
            )
            .await
        };
        if outcome == Outcome::Interrupted {
            return Err(interrupted());
        }
        let passed = outcome.success();
        let failure = (!passed).then(|| match &outcome {
            Outcome::TimedOut => format!(
                "a timeout after {}",
                humantime::format_duration(ctx.timeout)
            ),
            Outcome::SpawnFailed(why) => format!("an error: it could not start ({why})"),
            other => other.describe(),
        });
        p.report.verify.push(VerifyRun {
            command: command.line.clone(),
            attempt,
            step: step.kind.word().to_owned(),
            passed,
            failure: failure.clone(),
            duration_secs: started.elapsed().as_secs_f64(),
        });
        if let Some(outcome) = failure {
            let log = log.clone();
            return Ok(Some(Failure::Verify {
                line: command.line,
                outcome,
                tail: blocking(move || tail_from(&log, from)).await,
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_is_longer_than_the_backticks_inside() {
        assert_eq!(fenced("a"), "```text\na\n```");
        assert_eq!(fenced("x ```` y"), "`````text\nx ```` y\n`````");
    }

    #[test]
    fn the_tail_is_the_last_lines_after_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let head = "before\n";
        let body: String = (1..=300).map(|n| format!("line {n}\n")).collect();
        std::fs::write(&log, format!("{head}{body}")).unwrap();
        let tail = tail_from(&log, head.len() as u64);
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "line 101");
        assert_eq!(lines.last(), Some(&"line 300"));
        std::fs::write(&log, format!("{head}only\n")).unwrap();
        assert_eq!(tail_from(&log, head.len() as u64), "only");
    }
}
