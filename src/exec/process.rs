//! Running one agent process: its own process group, the prompt file on standard input, both
//! output streams in the task's log, a timeout, and a stop that reaches its children.
//!
//! The whole group is stopped, never only the agent: SIGTERM, then SIGKILL after the grace
//! period. A [`GroupGuard`] kills the group when [`run`]'s future is dropped before the agent was
//! reaped (a panic in the scheduler, an aborted task, any early return), so no child of an agent
//! outlives the run that started it.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::watch;

/// How an agent process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    /// Killed by a signal (reported as 128+N).
    Signaled(i32),
    TimedOut,
    Interrupted,
    /// It could not be started.
    SpawnFailed(String),
}

impl Outcome {
    pub fn success(&self) -> bool {
        *self == Outcome::Exited(0)
    }

    pub fn describe(&self) -> String {
        match self {
            Outcome::Exited(code) => format!("exit {code}"),
            Outcome::Signaled(sig) => format!("killed by signal {sig} (exit {})", 128 + sig),
            Outcome::TimedOut => "timed out".to_owned(),
            Outcome::Interrupted => "interrupted".to_owned(),
            Outcome::SpawnFailed(why) => format!("could not start: {why}"),
        }
    }
}

/// Variables of a CI runner that let a step change the job (its outputs, environment, path,
/// summary, state) or act as the workflow (the runtime's and the OIDC token's), which no agent
/// gets: an agent's run must not decide a review's verdict by writing the job's outputs.
pub const WITHHELD_ENV: &[&str] = &[
    "GITHUB_OUTPUT",
    "GITHUB_ENV",
    "GITHUB_PATH",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_STATE",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_RUNTIME_URL",
    "ACTIONS_RESULTS_URL",
    "ACTIONS_CACHE_URL",
];

/// The variables of spec-exec's environment that the processes it starts for tasks (agents,
/// verify commands) do not get: [`WITHHELD_ENV`], `ACTIONS_ID_TOKEN_REQUEST_*`, the git token
/// of [`super::remote::GIT_TOKEN_VAR`], and any other variable that holds that token (a
/// `GH_TOKEN` set from the same secret).
pub fn withheld_env() -> Vec<std::ffi::OsString> {
    let token = super::remote::git_token();
    let mut out: Vec<std::ffi::OsString> = WITHHELD_ENV.iter().map(Into::into).collect();
    out.push(super::remote::GIT_TOKEN_VAR.into());
    for (name, value) in std::env::vars_os() {
        let by_name = name
            .to_str()
            .is_some_and(|n| n.starts_with("ACTIONS_ID_TOKEN_REQUEST_"));
        let by_value = token.as_deref().is_some_and(|t| value == *t);
        if by_name || by_value {
            out.push(name);
        }
    }
    out
}

/// What the run asks of running agents: nothing, stop politely, or stop now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    None,
    Terminate,
    Kill,
}

/// One process to run for a task.
pub struct Spawn<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub stdin: &'a Path,
    pub log: &'a Path,
    /// Standard output apart from the log, when the caller reads it (an answer): the log then
    /// has standard error only.
    pub stdout: Option<&'a Path>,
    pub env: &'a [(String, String)],
    pub timeout: Duration,
    pub grace: Duration,
    /// Where the agent's process group is written down, with the run's id (`<pgid> <run id>`),
    /// for a later run to stop it if this one dies without doing so.
    pub registry: Option<(&'a Path, &'a str)>,
    /// Given each line of standard output as it arrives (which still goes to the log): an
    /// agent's structured stream.
    pub tap: Option<Tap>,
}

impl std::fmt::Debug for Spawn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawn")
            .field("argv", &self.argv)
            .field("cwd", &self.cwd)
            .field("log", &self.log)
            .field("tap", &self.tap.is_some())
            .finish_non_exhaustive()
    }
}

/// Of a line of an agent's structured output, the bytes kept for parsing.
const MAX_LINE: usize = 1 << 20;

/// What reads an agent's standard output, line by line.
pub type Tap = std::sync::Arc<std::sync::Mutex<dyn FnMut(&str) + Send>>;

fn signal_group(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Kills a process group when dropped, unless [`GroupGuard::reaped`] said its leader was waited
/// for (after which the group's id may be another's).
#[derive(Debug)]
struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    fn new(pgid: u32) -> GroupGuard {
        GroupGuard { pgid: Some(pgid) }
    }

    /// The leader was reaped and its group stopped: there is nothing left to kill.
    fn reaped(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

fn outcome_of(status: ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => Outcome::Exited(code),
        (None, Some(sig)) => Outcome::Signaled(sig),
        (None, None) => Outcome::Exited(1),
    }
}

/// Runs one process to its end, a timeout, or a stop request. The whole process group gets
/// SIGTERM, then SIGKILL after the grace period, so that children die with the agent.
pub async fn run(spawn: &Spawn<'_>, mut stop: watch::Receiver<Stop>) -> Outcome {
    let open = || -> std::io::Result<(std::fs::File, std::fs::File, std::fs::File)> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spawn.log)?;
        let out = match spawn.stdout {
            Some(path) => std::fs::File::create(path)?,
            None => log.try_clone()?,
        };
        let stdin = std::fs::File::open(spawn.stdin)?;
        Ok((out, log, stdin))
    };
    let (out, err, stdin) = match open() {
        Ok(files) => files,
        Err(e) => return Outcome::SpawnFailed(e.to_string()),
    };
    // With a tap, standard output comes through a pipe, each line to the log and the tap.
    let piped = match &spawn.tap {
        Some(_) => match out.try_clone() {
            Ok(log) => Some(log),
            Err(e) => return Outcome::SpawnFailed(e.to_string()),
        },
        None => None,
    };
    let mut cmd = Command::new(&spawn.argv[0]);
    for name in withheld_env() {
        cmd.env_remove(name);
    }
    cmd.envs(spawn.env.iter().map(|(k, v)| (k, v)));
    cmd.args(&spawn.argv[1..])
        .current_dir(spawn.cwd)
        .stdin(Stdio::from(stdin))
        .stdout(if piped.is_some() {
            Stdio::piped()
        } else {
            Stdio::from(out)
        })
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::SpawnFailed(format!("{}: {e}", spawn.argv[0])),
    };
    let Some(pid) = child.id() else {
        return Outcome::SpawnFailed("the process ended before it could be watched".to_owned());
    };
    let reader = match (piped, child.stdout.take(), spawn.tap.clone()) {
        (Some(mut log), Some(stdout), Some(tap)) => Some(tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt as _;
            // Bytes, not text: output that is not UTF-8 still goes to the log as it came, and
            // the reading never stops early (which would leave the agent writing to no one).
            // Everything goes to the log as it comes; of a line, only its first MAX_LINE bytes
            // are kept for the tap, so one endless line does not fill the memory.
            let mut reader = tokio::io::BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                let chunk = match reader.fill_buf().await {
                    Ok([]) | Err(_) => break,
                    Ok(chunk) => chunk,
                };
                let (part, ends) = match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => (&chunk[..=i], true),
                    None => (chunk, false),
                };
                let _ = std::io::Write::write_all(&mut log, part);
                let room = MAX_LINE.saturating_sub(line.len());
                line.extend_from_slice(&part[..part.len().min(room)]);
                let used = part.len();
                reader.consume(used);
                if ends {
                    let text = String::from_utf8_lossy(&line);
                    if let Ok(mut tap) = tap.lock() {
                        tap(text.trim_end_matches(['\n', '\r']));
                    }
                    line.clear();
                }
            }
            if !line.is_empty() {
                let text = String::from_utf8_lossy(&line);
                if let Ok(mut tap) = tap.lock() {
                    tap(&text);
                }
            }
        })),
        _ => None,
    };
    let outcome = watch(spawn, &mut child, pid, &mut stop).await;
    // The rest of the stream, once the group is gone (its pipe then closes).
    if let Some(reader) = reader {
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    }
    outcome
}

/// Waits for the agent `child` (leader of group `pid`) to end, time out or be stopped.
async fn watch(
    spawn: &Spawn<'_>,
    child: &mut tokio::process::Child,
    pid: u32,
    stop: &mut watch::Receiver<Stop>,
) -> Outcome {
    // Declared after `child`, so dropped before it: the group is killed while its leader is
    // still unreaped (a zombie at worst), so its id still names this group.
    let mut guard = GroupGuard::new(pid);
    if let Some((registry, run_id)) = spawn.registry {
        let line = format!("{pid} {run_id}\n");
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(registry)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    }
    if *stop.borrow() != Stop::None {
        signal_group(pid, rustix::process::Signal::KILL);
        let _ = child.wait().await;
        guard.reaped();
        return Outcome::Interrupted;
    }
    let deadline = tokio::time::sleep(spawn.timeout);
    tokio::pin!(deadline);
    let why = tokio::select! {
        status = child.wait() => {
            // The agent is gone; leftovers of its group go with it.
            signal_group(pid, rustix::process::Signal::KILL);
            guard.reaped();
            return match status {
                Ok(s) => outcome_of(s),
                Err(e) => Outcome::SpawnFailed(e.to_string()),
            };
        }
        () = &mut deadline => Outcome::TimedOut,
        _ = stop.wait_for(|s| *s != Stop::None) => Outcome::Interrupted,
    };
    // Stop politely, then not.
    let now = *stop.borrow() == Stop::Kill;
    if !now {
        signal_group(pid, rustix::process::Signal::TERM);
        tokio::select! {
            _ = child.wait() => {}
            () = tokio::time::sleep(spawn.grace) => {}
            _ = stop.wait_for(|s| *s == Stop::Kill) => {}
        }
    }
    signal_group(pid, rustix::process::Signal::KILL);
    let _ = child.wait().await;
    guard.reaped();
    why
}
