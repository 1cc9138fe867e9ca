//! An agent's process group is stopped whatever happens to the code that started it: a panic
//! while the agent runs, or the future that watches it dropped, kills the whole group, children
//! included. Real processes (`sh` with a `sleep` child), no mocks.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cargo_spec_exec::exec::process::{Outcome, Spawn, Stop, run};
use tokio::sync::watch;

mod support;

use support::alive;

/// A scratch directory with the files a spawn needs, and an agent (`sh`) that starts a child
/// (`sleep 300`), writes both pids to `pids`, and waits.
struct Agent {
    dir: tempfile::TempDir,
    argv: Vec<String>,
}

impl Agent {
    fn new() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prompt.md"), "do it\n").unwrap();
        let argv = [
            "sh",
            "-c",
            "sleep 300 & echo \"$$ $!\" > pids.tmp && mv pids.tmp pids; wait",
        ]
        .map(str::to_owned)
        .to_vec();
        Agent { dir, argv }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The agent's and its child's pids, once written.
    fn pids(&self) -> Option<(i32, i32)> {
        let text = std::fs::read_to_string(self.path("pids")).ok()?;
        let (a, b) = text.trim().split_once(' ')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }

    /// Runs the agent on a runtime of its own; `body` gets the future of [`run`] and decides what
    /// happens to it.
    fn with_run<T>(
        &self,
        body: impl AsyncFnOnce(std::pin::Pin<&mut (dyn Future<Output = Outcome> + '_)>) -> T,
    ) -> T {
        let (prompt, log) = (self.path("prompt.md"), self.path("agent.log"));
        let spawn = Spawn {
            argv: &self.argv,
            cwd: self.dir.path(),
            stdin: &prompt,
            log: &log,
            stdout: None,
            env: &[],
            timeout: Duration::from_secs(600),
            grace: Duration::from_secs(600),
            registry: None,
            tap: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (_stop, stop_rx) = watch::channel(Stop::None);
            let fut = run(&spawn, stop_rx);
            let mut fut = std::pin::pin!(fut);
            body(fut.as_mut()).await
        })
    }
}

/// Polls `fut` until the agent has written its pids (the agent and its child both run).
async fn until_started(
    agent: &Agent,
    mut fut: std::pin::Pin<&mut (dyn Future<Output = Outcome> + '_)>,
) -> (i32, i32) {
    loop {
        if let Some(pids) = agent.pids() {
            return pids;
        }
        tokio::select! {
            outcome = fut.as_mut() => panic!("the agent ended early: {outcome:?}"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// Waits (a bounded wait, not a measurement) until none of `pids` is alive.
fn all_gone(pids: &[i32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|&p| alive(p)) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The scheduler panics while an agent runs: unwinding drops the watch on it, and its whole
/// group goes, the child too (killing only the agent left the child running).
#[test]
fn a_panic_while_an_agent_runs_kills_its_group() {
    let agent = Agent::new();
    let pids = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        agent.with_run(async |fut| {
            let pids = until_started(&agent, fut).await;
            std::fs::write(agent.path("started"), format!("{} {}", pids.0, pids.1)).unwrap();
            panic!("the scheduler fails while the agent runs");
        })
    }));
    assert!(pids.is_err(), "the panic was not raised");
    let (leader, child) = agent.pids().unwrap();
    assert!(
        all_gone(&[leader, child]),
        "left running after the panic: agent {leader} ({}), child {child} ({})",
        alive(leader),
        alive(child)
    );
}

/// An early return (the future dropped without a stop request) kills the group too.
#[test]
fn dropping_the_watch_kills_the_group() {
    let agent = Agent::new();
    let (leader, child) = agent.with_run(async |fut| until_started(&agent, fut).await);
    assert!(
        all_gone(&[leader, child]),
        "left running after the drop: agent {leader} ({}), child {child} ({})",
        alive(leader),
        alive(child)
    );
}

/// An agent that ends by itself is reaped and reported; its group's leftovers go with it.
#[test]
fn an_agent_that_ends_is_reported_and_its_leftovers_stopped() {
    let mut agent = Agent::new();
    agent.argv[2] = "sleep 300 & echo \"$$ $!\" > pids.tmp && mv pids.tmp pids; exit 3".to_owned();
    let outcome = agent.with_run(async |fut| fut.await);
    assert_eq!(outcome, Outcome::Exited(3));
    let (leader, child) = agent.pids().unwrap();
    assert!(all_gone(&[leader, child]));
}
