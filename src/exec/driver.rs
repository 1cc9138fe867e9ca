//! The async loop, and only that: it asks the [`Scheduler`] what to do, starts jobs on a
//! `JoinSet`, and funnels their ends, signals and the display's timer back into it. Ticks run
//! on the blocking pool; every outcome goes to the sinks as an event.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::job::{self, Ctx, Job};
use super::process::Stop;
use super::scheduler::{Action, Finished, Interrupt, Scheduler, Start};
use crate::error::exit;
use crate::report::sink::Sink;
use crate::report::{Event, TaskReport};

/// Turns a job the scheduler decided on into one that can run: its prompt and agent.
pub trait MakeJob {
    fn make(&self, start: Start) -> Job;
}

/// What follows a task's end: on success its tick in tasks.md (the report then carries the
/// error, if the tick could not be written), or its push; a review that failed still has its
/// recorded rounds pushed.
pub trait Tick: Send + Sync + 'static {
    fn tick(&self, report: &mut TaskReport);
}

/// Runs the scheduler's decisions until nothing is left; the settled tasks' reports.
pub async fn drive(
    ctx: &Arc<Ctx>,
    mut scheduler: Scheduler<'_>,
    make: &dyn MakeJob,
    ticker: Arc<dyn Tick>,
    sink: &mut dyn Sink,
    mut progress: tokio::sync::mpsc::UnboundedReceiver<Event>,
) -> (Vec<TaskReport>, bool) {
    let (stop_tx, stop_rx) = watch::channel(Stop::None);
    let mut workers: JoinSet<Finished> = JoinSet::new();
    let mut reports = Vec::new();
    // Made once, before any agent starts, so that no signal falls between two listeners.
    // SIGTERM (CI cancelling a job) and SIGHUP (the terminal closing) stop the run as Ctrl-C
    // does: the agents are in process groups of their own and would otherwise live on.
    let mut signals = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ]
    .map(|kind| signal(kind).ok());
    let mut redraw = tokio::time::interval(Duration::from_secs(1));

    // Waiting for agents' limits to reset: until when, how long so far, the next backoff.
    let mut limits = Limits::default();
    let mut actions = next(ctx, &mut scheduler, &workers);
    loop {
        // Every job the actions start is under way before any tick is written: a tick is
        // not on the way of the next agent. The events still go out in the actions' order.
        let mut started = std::collections::VecDeque::new();
        for action in &actions {
            if let Action::Start(start) = action {
                started
                    .push_back(start_job(ctx, make, start.clone(), &stop_rx, &mut workers).await);
            }
        }
        for action in actions.drain(..) {
            match action {
                Action::Start(_) => {
                    if let Some(event) = started.pop_front() {
                        sink.event(&event);
                    }
                }
                Action::Settle(report) => {
                    let report = settle(&ticker, report).await;
                    sink.event(&Event::TaskFinished(Box::new(report.clone())));
                    reports.push(report);
                }
                Action::Emit(event) => sink.event(&event),
            }
        }
        if let Some(give_up) = limits.plan(&mut scheduler, sink, ctx.max_wait) {
            actions = give_up;
            continue;
        }
        if workers.is_empty() && limits.wake.is_none() {
            // Nothing runs, and nothing more could start.
            let more = next(ctx, &mut scheduler, &workers);
            if more.is_empty() {
                break;
            }
            actions = more;
            continue;
        }
        tokio::select! {
            Some(event) = progress.recv() => sink.event(&event),
            () = tokio::time::sleep_until(limits.wake.unwrap_or_else(tokio::time::Instant::now)), if limits.wake.is_some() => {
                limits.woke();
                scheduler.resume();
                actions = next(ctx, &mut scheduler, &workers);
            }
            joined = workers.join_next(), if !workers.is_empty() => {
                let Some(joined) = joined else { continue };
                actions = scheduler.finished(ended(joined));
                actions.extend(next(ctx, &mut scheduler, &workers));
            }
            () = next_signal(&mut signals) => {
                // A wait for a limit ends here: nothing more starts.
                limits.wake = None;
                match scheduler.interrupt() {
                    Interrupt::Terminate => {
                        sink.notice("Interrupted", "stopping the agents (Ctrl-C again to kill them)");
                        let _ = stop_tx.send(Stop::Terminate);
                    }
                    Interrupt::Kill => {
                        sink.notice("Interrupted", "killing the agents (Ctrl-C again to exit at once)");
                        let _ = stop_tx.send(Stop::Kill);
                    }
                    Interrupt::Exit => std::process::exit(exit::INTERRUPTED),
                }
            }
            _ = redraw.tick() => sink.redraw(),
            // A slot was made: there is room for another to be made. Jobs that ended
            // meanwhile are settled first, so that a slot one of them freed is taken after
            // its end is reported.
            () = ctx.slots.changed(), if scheduler.starved() => {
                while let Some(joined) = workers.try_join_next() {
                    actions.extend(scheduler.finished(ended(joined)));
                }
                actions.extend(next(ctx, &mut scheduler, &workers));
            }
        }
    }
    for action in scheduler.finish() {
        if let Action::Settle(report) = action {
            let report = settle(&ticker, report).await;
            sink.event(&Event::TaskFinished(Box::new(report.clone())));
            reports.push(report);
        }
    }
    (reports, scheduler.stopped_on_limit())
}

/// A joined job's end; a panic in the job's task goes on here.
fn ended(joined: Result<Finished, tokio::task::JoinError>) -> Finished {
    match joined {
        Ok(f) => f,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// What the scheduler starts next, within the room the slots have ([`Slots::room`]): at
/// least one job when none runs.
///
/// [`Slots::room`]: super::slots::Slots::room
fn next(ctx: &Ctx, scheduler: &mut Scheduler<'_>, workers: &JoinSet<Finished>) -> Vec<Action> {
    let room = ctx.slots.room();
    scheduler.next_actions_within(if workers.is_empty() {
        room.max(1)
    } else {
        room
    })
}

/// Starts the job the scheduler decided on, in the slot it takes (found off the async loop);
/// the event that says so, for the caller to send.
async fn start_job(
    ctx: &Arc<Ctx>,
    make: &dyn MakeJob,
    start: Start,
    stop: &watch::Receiver<Stop>,
    workers: &mut JoinSet<Finished>,
) -> Event {
    let mut job = make.make(start);
    let slot = {
        let (ctx, job) = (Arc::clone(ctx), job.clone());
        match tokio::task::spawn_blocking(move || job::take_slot(&ctx, &job)).await {
            Ok(slot) => slot,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    };
    let worktree = slot.path.clone();
    job.slot = Some(slot);
    let event = Event::TaskStarted {
        id: job.id.clone(),
        title: job.title.clone(),
        track: job.track.clone(),
        branch: job.start.branch.clone(),
        worktree,
        log: ctx.log(&job.run_name),
        round: job.start.role.round(),
    };
    workers.spawn(guarded(Arc::clone(ctx), job, stop.clone()));
    event
}

/// Waiting for agents' limits to reset: until when, for which limit, how long in all so far,
/// and the next backoff.
#[derive(Debug)]
struct Limits {
    wake: Option<tokio::time::Instant>,
    waiting_for: Option<Option<u64>>,
    waited: Duration,
    backoff: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            wake: None,
            waiting_for: None,
            waited: Duration::ZERO,
            backoff: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// An agent hit its limit: nothing starts until it resets, or the run gives up when the
    /// wait would pass `max_wait` (the actions that stop it). A later limit than the one
    /// waited for puts the wake-up later.
    fn plan(
        &mut self,
        scheduler: &mut Scheduler<'_>,
        sink: &mut dyn Sink,
        max_wait: Duration,
    ) -> Option<Vec<Action>> {
        let resets_at = scheduler.paused()?;
        if self.waiting_for == Some(resets_at) {
            return None;
        }
        self.waiting_for = Some(resets_at);
        let wait = limit_wait(resets_at, &mut self.backoff);
        let until = tokio::time::Instant::now() + wait;
        if self.wake.is_some_and(|w| until <= w) {
            return None;
        }
        let extra = self
            .wake
            .map_or(wait, |w| until.saturating_duration_since(w));
        if self.waited + extra > max_wait {
            sink.notice(
                "Stopping",
                &format!(
                    "waiting for the limit would take the run past --max-wait ({})",
                    humantime::format_duration(max_wait)
                ),
            );
            self.woke();
            let mut actions = scheduler.give_up();
            actions.extend(scheduler.next_actions());
            return Some(actions);
        }
        self.waited += extra;
        sink.notice(
            "Waiting",
            &format!(
                "{} for the limit to reset; then the task runs again",
                humantime::format_duration(Duration::from_secs(wait.as_secs()))
            ),
        );
        self.wake = Some(until);
        None
    }

    /// The wait is over.
    fn woke(&mut self) {
        self.wake = None;
        self.waiting_for = None;
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long to wait for a limit that resets at `resets_at` (Unix seconds; a little after it),
/// or, when the agent did not say, the next of a backoff from a minute doubling to 30 minutes.
fn limit_wait(resets_at: Option<u64>, backoff: &mut Duration) -> Duration {
    match resets_at {
        // A reset time that has passed (or a clock apart) is no time to wait for.
        Some(t) if t > now_secs() => Duration::from_secs(t - now_secs()) + Duration::from_secs(2),
        _ => {
            let wait = *backoff;
            *backoff = (*backoff * 2).min(Duration::from_secs(30 * 60));
            wait
        }
    }
}

/// Runs a job in a task of its own, so that a bug that panics in it fails that task instead
/// of ending the run without its report.
async fn guarded(ctx: Arc<Ctx>, job: Job, stop: watch::Receiver<Stop>) -> Finished {
    let start = job.start.clone();
    let (id, title, track) = (job.id.clone(), job.title.clone(), job.track.clone());
    match tokio::spawn(job::run(ctx, job, stop)).await {
        Ok(finished) => finished,
        Err(e) => {
            let why = e
                .try_into_panic()
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                })
                .unwrap_or_else(|| "it was cancelled".to_owned());
            Finished {
                start,
                report: TaskReport {
                    reason: Some(format!("internal error in spec-exec: {why}")),
                    ..TaskReport::new(id, title, track, crate::report::Status::Failed)
                },
                verdict: None,
                rate_limited: None,
            }
        }
    }
}

/// A settled task is ticked when it succeeded, or has review rounds of this run to push (off
/// the async loop).
async fn settle(ticker: &Arc<dyn Tick>, mut report: TaskReport) -> TaskReport {
    if !report.status.is_success() && !report.rounds.iter().any(|r| !r.reused) {
        return report;
    }
    let ticker = Arc::clone(ticker);
    match tokio::task::spawn_blocking(move || {
        ticker.tick(&mut report);
        report
    })
    .await
    {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The next SIGINT, SIGTERM or SIGHUP.
pub(super) async fn next_signal(signals: &mut [Option<Signal>; 3]) {
    async fn recv(s: &mut Option<Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let [int, term, hup] = signals;
    tokio::select! {
        () = recv(int) => {}
        () = recv(term) => {}
        () = recv(hup) => {}
    }
}
