//! The scheduler: pure and synchronous. It decides which job starts next, what a finished job
//! settles and unblocks, how review gates go round, and what an interrupt leaves; it runs no
//! process, touches no file and reads no clock. The driver asks it ([`Scheduler::next_actions`],
//! [`Scheduler::finished`], [`Scheduler::interrupt`], [`Scheduler::finish`]) and carries out
//! the [`Action`]s it answers with.
//!
//! A task is waiting, running or finished. It is settled (finished, with a report) when it is
//! done, reused from an earlier run, not needed (a rework whose reviews passed), failed, or
//! skipped because something it depends on did not finish. Ready tasks start longest remaining
//! chain first; rounds of review gates that are already going start before new tasks.

use std::collections::{HashMap, VecDeque};

use super::gate::{self, Gate};
use super::review;
use crate::plan::Plan;
use crate::report::{Event, Round, Status, TaskReport, Verdict};
use crate::spec::TaskList;
use crate::spec::model::TaskState;

/// How the run's branches are named.
#[derive(Debug, Clone)]
pub struct Naming {
    pub prefix: String,
    pub feature: String,
}

impl Naming {
    /// The branch of run `run` of task `id` (a review's round, a rework's run; 1 otherwise).
    pub fn branch(&self, id: &str, run: u32) -> String {
        review::round_branch(&self.prefix, &self.feature, id, run)
    }
}

/// What the scheduler is told about the run.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_agents: usize,
    pub continue_on_error: bool,
    /// How many rounds a review gate runs in one run before it fails.
    pub max_review_rounds: u32,
    pub naming: Naming,
    /// In US dollars: once the agents' reported spend reaches it, no new task starts.
    pub max_cost: Option<f64>,
    /// What an agent's usage or rate limit does to the run.
    pub on_rate_limit: OnRateLimit,
    /// One step of a review gate per run (`--task`): a review's round that asks for changes
    /// ends the review's run (its rework runs in another), a rework's run ends the rework's
    /// (the review's next round runs in another), and a rework runs for the review whose last
    /// recorded round asked for changes that no rework answered yet. Rounds recorded by earlier
    /// runs count toward `max_review_rounds`.
    pub one_step: bool,
}

pub use crate::config::OnRateLimit;

/// What earlier runs left, read from git before the run starts.
#[derive(Debug, Default, Clone)]
pub struct Earlier {
    /// Tasks finished by an earlier run: the commit their branch is reused at.
    pub reused: HashMap<usize, String>,
    /// The rounds recorded on round branches (reviews' rounds, reworks' runs).
    pub history: HashMap<usize, Vec<review::Recorded>>,
    /// For a review recorded without approval: the branch its next round starts from (its last
    /// round, or a rework's later run on top of it).
    pub resume_base: HashMap<usize, String>,
    /// For a review whose last recorded round asked for changes: the findings of that round
    /// (its review file at that commit), for the rework that runs first.
    pub findings: HashMap<usize, String>,
}

impl Earlier {
    /// Review `r`'s last recorded round, when it asked for changes and no rework ran on top of
    /// it since: what its rework answers next.
    pub fn awaits_rework(&self, r: usize) -> Option<&review::Recorded> {
        let last = self.history.get(&r)?.last()?;
        (last.verdict == Some(Verdict::RequiresChanges)
            && self.resume_base.get(&r) == Some(&last.branch))
        .then_some(last)
    }
}

/// What a job is to its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Task,
    /// A round of a review: its verdict decides the gate.
    Review {
        round: u32,
    },
    /// A run of a rework for `review`, which asked for changes.
    Rework {
        review: usize,
        run: u32,
    },
}

impl Role {
    pub fn round(self) -> Option<u32> {
        match self {
            Role::Task => None,
            Role::Review { round } => Some(round),
            Role::Rework { run, .. } => Some(run),
        }
    }
}

/// What a job starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// Its dependencies' branches (merged when several; the run's base when none, or when one
    /// of them has no branch because it was done before spec-exec).
    Deps(Vec<String>),
    /// This branch's tip (a rework on its review's round, a review's round on its rework).
    Branch(String),
}

/// What a rework answers: review `review`'s round `round`, whose findings are `text`, read from
/// `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    pub review: usize,
    pub round: u32,
    pub source: String,
    pub text: String,
}

/// A job to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub task: usize,
    pub role: Role,
    /// 1, but for a review's later rounds and a rework's later runs.
    pub run: u32,
    pub branch: String,
    pub base: Base,
    /// The rework a review's round comes after (its prompt says so).
    pub reworked_by: Option<String>,
    /// The findings a rework answers (its prompt quotes them).
    pub findings: Option<Findings>,
    /// Run again after its agent's limit reset: the agent's session to resume, in the
    /// worktree it left.
    pub resume: Option<String>,
}

/// A job's end, as the job reports it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub start: Start,
    pub report: TaskReport,
    /// A review's verdict and findings.
    pub verdict: Option<review::Read>,
    /// The agent hit its usage or rate limit: when it resets (Unix seconds), when it said.
    pub rate_limited: Option<Option<u64>>,
}

/// What the driver is to do.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few actions at a time, each consumed at once"
)]
pub enum Action {
    /// Start a job.
    Start(Start),
    /// A task ended: tick it when it succeeded, then report it.
    Settle(TaskReport),
    /// Report a step of a task that goes on (a review's verdict, a rework's run).
    Emit(Event),
}

/// What a Ctrl-C (or SIGTERM, SIGHUP) asks of the agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// The first: stop scheduling, ask every agent group to terminate.
    Terminate,
    /// The second: kill them.
    Kill,
    /// The third: exit at once.
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Finished(Status),
}

/// The scheduler of one run.
#[derive(Debug)]
pub struct Scheduler<'a> {
    list: &'a TaskList,
    plan: &'a Plan,
    opts: Options,
    earlier: Earlier,
    /// Longest chain of plan tasks from each task to the end: the start order.
    chain: HashMap<usize, usize>,
    reviews: Vec<bool>,
    state: HashMap<usize, State>,
    running: usize,
    /// The last [`Scheduler::next_actions_within`] left ready jobs for want of room.
    starved: bool,
    /// Set when the run stops starting new tasks: the failed task's id, or empty when
    /// interrupted.
    stopping: Option<String>,
    /// The agents' reported spend so far, in US dollars.
    spent: f64,
    /// Set when `spent` reached `max_cost`: no new task starts.
    over_budget: bool,
    /// An agent hit its limit, and the run waits: nothing starts until [`Scheduler::resume`].
    /// When it resets (Unix seconds), when the agent said.
    paused: Option<Option<u64>>,
    /// The run stopped on a limit: why, for the tasks it did not start.
    limit_stop: Option<String>,
    interrupts: u32,
    gates: HashMap<usize, Gate>,
    /// The branch each task's dependents start from (a review's or rework's last run's).
    final_branch: HashMap<usize, String>,
    /// A rework's runs in this run, its last run's report, its run count, and how many of its
    /// runs are going on.
    rework_runs: HashMap<usize, Vec<Round>>,
    rework_last: HashMap<usize, TaskReport>,
    rework_count: HashMap<usize, u32>,
    busy: HashMap<usize, usize>,
    /// Rounds of gates that are going on, waiting for an agent.
    queue: VecDeque<Start>,
    /// The plan's nodes that may be settled or started (by their place in the plan): those
    /// whose dependencies have all finished, or one of which failed. Kept as tasks finish, so
    /// that no step of the run looks at every task of the list.
    frontier: std::collections::BTreeSet<usize>,
    /// For each node of the plan, how many of its dependencies have not finished.
    unfinished: Vec<usize>,
    /// The place in the plan of each task of it, and the places of the nodes that wait for it.
    place: HashMap<usize, usize>,
    dependents: Vec<Vec<usize>>,
}

impl<'a> Scheduler<'a> {
    pub fn new(list: &'a TaskList, plan: &'a Plan, opts: Options, earlier: Earlier) -> Self {
        let reviews = review::reviews(list);
        let mut gates = HashMap::new();
        let mut final_branch = HashMap::new();
        let mut rework_count = HashMap::new();
        for (&t, recorded) in &earlier.history {
            let Some(last) = recorded.last() else {
                continue;
            };
            final_branch.insert(t, last.branch.clone());
            if reviews[t] {
                gates.insert(t, Gate::resumed(&list.tasks[t].id, recorded));
            } else {
                rework_count.insert(t, last.round);
            }
        }
        let place: HashMap<usize, usize> = plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.task, i))
            .collect();
        let mut dependents = vec![Vec::new(); plan.nodes.len()];
        for (i, n) in plan.nodes.iter().enumerate() {
            for d in &n.deps {
                if let Some(&at) = place.get(d) {
                    dependents[at].push(i);
                }
            }
        }
        let unfinished: Vec<usize> = plan.nodes.iter().map(|n| n.deps.len()).collect();
        let frontier = (0..plan.nodes.len())
            .filter(|&i| unfinished[i] == 0)
            .collect();
        Scheduler {
            frontier,
            unfinished,
            place,
            dependents,
            chain: remaining_chain(plan),
            state: plan
                .nodes
                .iter()
                .map(|n| (n.task, State::Waiting))
                .collect(),
            list,
            plan,
            opts,
            earlier,
            reviews,
            running: 0,
            starved: false,
            stopping: None,
            spent: 0.0,
            over_budget: false,
            paused: None,
            limit_stop: None,
            interrupts: 0,
            gates,
            final_branch,
            rework_runs: HashMap::new(),
            rework_last: HashMap::new(),
            rework_count,
            busy: HashMap::new(),
            queue: VecDeque::new(),
        }
    }

    /// Jobs going on.
    pub fn running(&self) -> usize {
        self.running
    }

    pub fn interrupted(&self) -> bool {
        self.interrupts > 0
    }

    /// Settles what can be settled, then starts what is ready while agents are free.
    pub fn next_actions(&mut self) -> Vec<Action> {
        self.next_actions_within(usize::MAX)
    }

    /// [`Scheduler::next_actions`], starting at most `room` jobs however many agents are
    /// free: the worktrees there are room for now. What is left ready for want of room is
    /// said by [`Scheduler::starved`].
    pub fn next_actions_within(&mut self, room: usize) -> Vec<Action> {
        let mut actions = Vec::new();
        self.settle(&mut actions);
        let agents = self.opts.max_agents.saturating_sub(self.running);
        let mut free = agents.min(room);
        self.starved = false;
        while !self.interrupted() && self.paused.is_none() && !self.over_budget && free > 0 {
            let Some(start) = self.queue.pop_front() else {
                break;
            };
            self.start(start, &mut actions);
            free -= 1;
        }
        let limited = room < agents;
        if self.stopping.is_some()
            || self.over_budget
            || self.paused.is_some()
            || self.limit_stop.is_some()
        {
            self.starved = limited && free == 0 && !self.queue.is_empty() && !self.interrupted();
            return actions;
        }
        let mut ready: Vec<usize> = self
            .frontier
            .iter()
            .map(|&i| &self.plan.nodes[i])
            .filter(|n| self.state[&n.task] == State::Waiting)
            .filter(|n| n.deps.iter().all(|d| self.succeeded(*d)))
            .map(|n| n.task)
            .collect();
        ready.sort_by_key(|t| {
            (
                std::cmp::Reverse(self.chain.get(t).copied().unwrap_or(0)),
                *t,
            )
        });
        self.starved = limited && (ready.len() > free || free == 0 && !self.queue.is_empty());
        for t in ready.into_iter().take(free) {
            let start = self.first_job(t);
            self.state.insert(t, State::Running);
            self.start(start, &mut actions);
        }
        actions
    }

    /// Whether the last [`Scheduler::next_actions_within`] left jobs that were ready for want
    /// of room: the driver asks again when there is more.
    pub fn starved(&self) -> bool {
        self.starved
    }

    /// A job ended: settle its task, or take its gate a step further.
    pub fn finished(&mut self, done: Finished) -> Vec<Action> {
        self.running = self.running.saturating_sub(1);
        let mut actions = Vec::new();
        if let Some(cost) = done.report.usage.as_ref().and_then(|u| u.cost_usd) {
            self.spent += cost;
        }
        if let Some(resets_at) = done.rate_limited {
            self.rate_limited(done, resets_at, &mut actions);
            return actions;
        }
        if let Some(max) = self.opts.max_cost
            && self.spent >= max
            && !self.over_budget
        {
            self.over_budget = true;
            actions.push(Action::Emit(Event::BudgetReached {
                spent_usd: self.spent,
                max_cost_usd: max,
            }));
        }
        match done.start.role {
            Role::Task => self.conclude(done.report, &mut actions),
            Role::Review { round } => self.review_finished(done, round, &mut actions),
            Role::Rework { review, run } => {
                self.rework_finished(done, review, run, &mut actions);
            }
        }
        actions
    }

    /// Round `round` of a review ended: its gate passes, ends, or asks for the rework.
    fn review_finished(&mut self, done: Finished, round: u32, actions: &mut Vec<Action>) {
        let Finished {
            start,
            mut report,
            verdict,
            ..
        } = done;
        let index = start.task;
        let rework = if self.opts.one_step {
            self.rework_of(index)
        } else {
            self.waiting_rework(index)
        };
        let one_step = self.opts.one_step;
        let gate = self.gates.entry(index).or_default();
        gate.spend(&report);
        if one_step {
            // Every round counts: each ran in a run of its own.
            gate.this_run = gate.round;
        }
        let Some(read) = verdict.filter(|_| report.status == Status::Done) else {
            report.rounds = gate.rounds.clone();
            report.duration_secs = gate.duration;
            report.usage.clone_from(&gate.usage);
            self.conclude(report, actions);
            return;
        };
        let step = gate.verdict(
            round,
            &start.branch,
            &report,
            read.verdict,
            gate::Limits {
                interrupted: self.interrupts > 0,
                max_rounds: self.opts.max_review_rounds,
                rework: rework.is_some(),
            },
        );
        self.final_branch.insert(index, start.branch.clone());
        actions.push(Action::Emit(Event::ReviewVerdict {
            id: self.list.tasks[index].id.clone(),
            round,
            branch: start.branch.clone(),
            commit: report.commit.clone(),
            verdict: read.verdict,
            log: report.log.clone().unwrap_or_default(),
        }));
        report.verdict = Some(read.verdict);
        report.rounds = gate.rounds.clone();
        report.duration_secs = gate.duration;
        report.usage.clone_from(&gate.usage);
        match (step, rework) {
            (gate::Step::Passed, _) => self.conclude(report, actions),
            (gate::Step::Rework, Some(w)) if self.opts.one_step => {
                // This run's step is done: the rework runs next, in a run of its own.
                report.reason = Some(format!(
                    "requires changes: its rework {} runs next, then round {}",
                    self.list.tasks[w].id,
                    round + 1
                ));
                self.conclude(report, actions);
            }
            (gate::Step::Ends(status, why), _) => {
                report.status = status;
                report.reason = Some(why);
                self.conclude(report, actions);
            }
            (gate::Step::Rework, Some(w)) => {
                let run = self.next_rework_run(w);
                let findings = Findings {
                    review: index,
                    round,
                    source: read.source,
                    text: read.findings,
                };
                let job = self.rework_job(w, run, start.branch.clone(), findings);
                self.queue.push_back(job);
            }
            (gate::Step::Rework, None) => {
                unreachable!("a gate asks for a rework only when one can run")
            }
        }
    }

    /// Run `run` of a rework for review `r` ended: the review goes again, or its gate ends.
    fn rework_finished(&mut self, done: Finished, r: usize, run: u32, actions: &mut Vec<Action>) {
        if self.opts.one_step {
            self.rework_step_finished(done, r, run, actions);
            return;
        }
        let Finished {
            start, mut report, ..
        } = done;
        let index = start.task;
        if let Some(b) = self.busy.get_mut(&index) {
            *b = b.saturating_sub(1);
        }
        // It may be settled now.
        if let Some(&at) = self.place.get(&index) {
            self.frontier.insert(at);
        }
        let id = self.list.tasks[index].id.clone();
        let entry = self.rework_round(run, &start, &report);
        let gate = self.gates.entry(r).or_default();
        // The rework's usage is its own task's; the gate counts its time.
        gate.duration += report.duration_secs;
        if report.status == Status::Done {
            gate.rounds.push(entry.clone());
            self.rework_runs.entry(index).or_default().push(entry);
            self.final_branch.insert(index, start.branch.clone());
            actions.push(self.rework_event(r, run, &start, &report));
            if let Some(before) = self.rework_last.get(&index) {
                report.duration_secs += before.duration_secs;
                if let Some(u) = &before.usage {
                    report.usage.get_or_insert_with(Default::default).add(u);
                }
            }
            self.rework_last.insert(index, report);
            if self.interrupts > 0 {
                let rr = self.gate_report(
                    r,
                    Status::Interrupted,
                    "interrupted between review rounds".to_owned(),
                );
                self.conclude(rr, actions);
            } else {
                let gate = self.gates.entry(r).or_default();
                gate.round += 1;
                gate.this_run += 1;
                let round = gate.round;
                let next = self.review_round(r, round, start.branch.clone(), Some(id));
                self.queue.push_back(next);
            }
        } else {
            let status = report.status;
            let mut runs = self.rework_runs.remove(&index).unwrap_or_default();
            runs.push(entry);
            report.rounds = runs;
            self.rework_last.remove(&index);
            let rr = self.gate_report(r, status, format!("its rework {id} {}", status.word()));
            self.conclude(report, actions);
            self.conclude(rr, actions);
        }
    }

    /// The event of run `run` of a rework (`start`) for review `r`, which ended done with
    /// `report`.
    fn rework_event(&self, r: usize, run: u32, start: &Start, report: &TaskReport) -> Action {
        Action::Emit(Event::ReworkFinished {
            id: self.list.tasks[start.task].id.clone(),
            review: self.list.tasks[r].id.clone(),
            round: run,
            branch: start.branch.clone(),
            commit: report.commit.clone(),
            files_changed: report.files_changed,
            duration_secs: report.duration_secs,
            log: report.log.clone().unwrap_or_default(),
        })
    }

    /// With `one_step`, run `run` of a rework for review `r` ended: so does the rework's step
    /// (the review's next round is another run's).
    fn rework_step_finished(
        &mut self,
        done: Finished,
        r: usize,
        run: u32,
        actions: &mut Vec<Action>,
    ) {
        let Finished {
            start, mut report, ..
        } = done;
        if report.status == Status::Done {
            actions.push(self.rework_event(r, run, &start, &report));
            report.reason = Some(format!(
                "answered round {} of {}; its next round runs next",
                start.findings.as_ref().map_or(run, |f| f.round),
                self.list.tasks[r].id
            ));
        }
        report.rounds = vec![self.rework_round(run, &start, &report)];
        self.conclude(report, actions);
    }

    /// Run `run` of a rework (`start`, which ended with `report`), as a round of its gate.
    fn rework_round(&self, run: u32, start: &Start, report: &TaskReport) -> Round {
        Round {
            task: self.list.tasks[start.task].id.clone(),
            round: run,
            branch: start.branch.clone(),
            commit: report.commit.clone(),
            verdict: None,
            reused: false,
        }
    }

    /// A Ctrl-C (SIGTERM, SIGHUP): no new job starts; what the agents are to do.
    pub fn interrupt(&mut self) -> Interrupt {
        self.interrupts += 1;
        self.stopping.get_or_insert_with(String::new);
        match self.interrupts {
            1 => Interrupt::Terminate,
            2 => Interrupt::Kill,
            _ => Interrupt::Exit,
        }
    }

    /// Once no job is going on: settles the gates whose next round never started and the
    /// tasks that never started.
    pub fn finish(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(start) = self.queue.pop_front() {
            let r = match start.role {
                Role::Rework { review, .. } => review,
                _ => start.task,
            };
            if self.state.get(&r) == Some(&State::Running) {
                let rr = self.gate_report(
                    r,
                    Status::Interrupted,
                    "interrupted between review rounds".to_owned(),
                );
                self.conclude(rr, &mut actions);
            }
        }
        for n in &self.plan.nodes {
            if self.state[&n.task] != State::Waiting {
                continue;
            }
            let reason = match &self.stopping {
                _ if self.interrupts > 0 => "not started: the run was interrupted".to_owned(),
                None if self.limit_stop.is_some() => self.limit_stop.clone().unwrap_or_default(),
                None if self.over_budget => format!(
                    "not started: the agents' reported spend, ${:.4}, reached --max-cost ${:.4}",
                    self.spent,
                    self.opts.max_cost.unwrap_or_default()
                ),
                Some(failed) if !failed.is_empty() => format!(
                    "not started: the run stopped after task {failed} failed (see --continue-on-error)"
                ),
                _ => "not started".to_owned(),
            };
            actions.push(Action::Settle(report_of(
                self.list,
                n.task,
                Status::Skipped,
                reason,
            )));
        }
        actions
    }

    /// A job's agent hit its usage or rate limit: its task is not done, and not failed.
    fn rate_limited(&mut self, done: Finished, resets_at: Option<u64>, actions: &mut Vec<Action>) {
        actions.push(Action::Emit(Event::RateLimited {
            task: done.report.id.clone(),
            agent: done.report.agent.clone().unwrap_or_default(),
            resets_at,
        }));
        match self.opts.on_rate_limit {
            OnRateLimit::Wait => {
                // It runs again first, once the limit resets, resuming its agent's session.
                let mut start = done.start;
                start.resume = done.report.usage.and_then(|u| u.session_id);
                self.queue.push_front(start);
                self.paused = Some(resets_at);
            }
            OnRateLimit::Stop => {
                self.stop_on_limit(done.start, Some(done.report), resets_at, actions)
            }
        }
    }

    /// The run ends on a limit: `start`'s task is not done, and nothing new starts.
    fn stop_on_limit(
        &mut self,
        start: Start,
        ran: Option<TaskReport>,
        resets_at: Option<u64>,
        actions: &mut Vec<Action>,
    ) {
        let when = resets_at.map_or_else(
            || "when it resets".to_owned(),
            |t| format!("after it resets at {}", crate::report::unix_time_text(t)),
        );
        let why = format!("its agent hit its usage or rate limit; run again {when} to go on");
        self.limit_stop = Some(format!(
            "not started: an agent hit its usage or rate limit; run again {when}"
        ));
        // The job's own report (its log, worktree, agent, usage) when it was the task's own run.
        let report = match ran {
            Some(mut r) if start.role == Role::Task => {
                r.status = Status::Skipped;
                r.reason = Some(format!("not done: {why}"));
                r
            }
            _ => report_of(
                self.list,
                start.task,
                Status::Skipped,
                format!("not done: {why}"),
            ),
        };
        self.conclude(report, actions);
    }

    /// Whether the run waits for an agent's limit to reset, and until when it said.
    pub fn paused(&self) -> Option<Option<u64>> {
        self.paused
    }

    /// The limit reset: the task that hit it runs again, and the rest goes on.
    pub fn resume(&mut self) {
        self.paused = None;
    }

    /// Waiting for the limit would take longer than allowed: the run stops on it instead.
    pub fn give_up(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        let resets_at = self.paused.take().flatten();
        if let Some(start) = self.queue.pop_front() {
            self.stop_on_limit(start, None, resets_at, &mut actions);
        }
        actions
    }

    /// Whether the run stopped on a limit (it exits 3).
    pub fn stopped_on_limit(&self) -> bool {
        self.limit_stop.is_some()
    }

    fn start(&mut self, start: Start, actions: &mut Vec<Action>) {
        self.running += 1;
        actions.push(Action::Start(start));
    }

    fn succeeded(&self, t: usize) -> bool {
        matches!(self.state[&t], State::Finished(s) if s.is_success())
    }

    /// A task's end: what depends on it can go on; a failure stops the run unless
    /// `--continue-on-error`.
    fn conclude(&mut self, r: TaskReport, actions: &mut Vec<Action>) {
        let index = self
            .list
            .find(&r.id)
            .unwrap_or_else(|| panic!("unknown task {}", r.id));
        if r.status == Status::Failed && !self.opts.continue_on_error && self.stopping.is_none() {
            self.stopping = Some(r.id.clone());
        }
        let before = self.state.insert(index, State::Finished(r.status));
        if let Some(&at) = self.place.get(&index) {
            self.frontier.remove(&at);
            if !matches!(before, Some(State::Finished(_))) {
                let failed = !r.status.is_success();
                for &d in &self.dependents[at] {
                    self.unfinished[d] = self.unfinished[d].saturating_sub(1);
                    if self.unfinished[d] == 0 || failed {
                        self.frontier.insert(d);
                    }
                }
            }
        }
        actions.push(Action::Settle(r));
    }

    /// Settles every waiting task whose dependencies are all finished but that cannot run:
    /// a rework that ran, a task after a failure, a task finished by an earlier run, a rework
    /// that is not needed.
    fn settle(&mut self, actions: &mut Vec<Action>) {
        let mut changed = true;
        while changed {
            changed = false;
            let candidates: Vec<usize> = self.frontier.iter().copied().collect();
            for n in candidates.into_iter().map(|i| &self.plan.nodes[i]) {
                if self.state[&n.task] != State::Waiting
                    || self.busy.get(&n.task).is_some_and(|&b| b > 0)
                {
                    continue;
                }
                let finished = n
                    .deps
                    .iter()
                    .filter(|d| matches!(self.state[d], State::Finished(_)))
                    .count();
                let failed_dep = n
                    .deps
                    .iter()
                    .find(|d| matches!(self.state[d], State::Finished(s) if !s.is_success()))
                    .map(|&d| self.list.tasks[d].id.clone());
                let all_finished = finished == n.deps.len();
                if let Some(r) = self.settled(n.task, failed_dep, all_finished) {
                    self.conclude(r, actions);
                    changed = true;
                }
            }
        }
    }

    /// How a waiting task is settled without running, if it is.
    fn settled(
        &self,
        t: usize,
        failed_dep: Option<String>,
        all_finished: bool,
    ) -> Option<TaskReport> {
        // A rework that ran: done when every review it serves passed.
        if let Some(last) = self.rework_last.get(&t) {
            let mut r = TaskReport {
                rounds: self.rework_runs.get(&t).cloned().unwrap_or_default(),
                ..last.clone()
            };
            if let Some(on) = failed_dep {
                r.status = Status::Failed;
                r.reason = Some(format!(
                    "it ran, but task {on} did not pass, so the rework is not done"
                ));
            } else if all_finished {
                r.status = Status::Done;
                r.reason = None;
            } else {
                return None;
            }
            return Some(r);
        }
        if let Some(on) = failed_dep {
            return Some(report_of(
                self.list,
                t,
                Status::Skipped,
                format!("depends on task {on}, which did not finish"),
            ));
        }
        if !all_finished {
            return None;
        }
        let task = &self.list.tasks[t];
        if let Some(commit) = self.earlier.reused.get(&t) {
            return Some(TaskReport {
                branch: Some(
                    self.final_branch
                        .get(&t)
                        .cloned()
                        .unwrap_or_else(|| self.opts.naming.branch(&task.id, 1)),
                ),
                commit: Some(commit.clone()),
                verdict: self.reviews[t].then_some(Verdict::Approved),
                rounds: self
                    .gates
                    .get(&t)
                    .map(|g| g.rounds.clone())
                    .unwrap_or_default(),
                ..report_of(
                    self.list,
                    t,
                    Status::Reused,
                    "finished by an earlier run".to_owned(),
                )
            });
        }
        // A conditional task runs only if a review it waits on asked for changes; a review
        // that finished successfully approved.
        let conditional: Vec<usize> = task.condition().collect();
        let approved = |c: &usize| {
            matches!(self.state.get(c), Some(State::Finished(s)) if s.is_success())
                || self.list.tasks[*c].state == TaskState::Done
                || self.earlier.reused.contains_key(c)
        };
        if self.opts.one_step
            && !conditional.is_empty()
            && !conditional
                .iter()
                .any(|&c| self.earlier.awaits_rework(c).is_some())
            && !conditional.iter().all(approved)
        {
            // No review it serves has a round for it to answer: the review runs first.
            let on: Vec<&str> = conditional
                .iter()
                .filter(|c| !approved(c))
                .map(|&c| self.list.tasks[c].id.as_str())
                .collect();
            return Some(report_of(
                self.list,
                t,
                Status::Skipped,
                format!(
                    "no recorded round of {} asks for changes that it has not answered",
                    on.join(" or ")
                ),
            ));
        }
        if !conditional.is_empty() && conditional.iter().all(approved) {
            let on: Vec<&str> = conditional
                .iter()
                .map(|&c| self.list.tasks[c].id.as_str())
                .collect();
            return Some(report_of(
                self.list,
                t,
                Status::NotNeeded,
                format!("{} approved", on.join(" and ")),
            ));
        }
        None
    }

    /// The first job of a ready task. A review recorded by an earlier run without approval
    /// runs again on top of its last round; when that round asked for changes and no rework
    /// came after it, the rework runs first, with that round's findings.
    fn first_job(&mut self, t: usize) -> Start {
        if self.opts.one_step
            && let Some(start) = self.rework_step(t)
        {
            return start;
        }
        if !self.reviews[t] {
            return self.job(t, 1, None);
        }
        let resumed = self.gates.get(&t).is_some_and(|g| g.round > 0);
        if !resumed {
            let gate = self.gates.entry(t).or_default();
            gate.round = 1;
            gate.this_run += 1;
            return self.job(t, 1, None);
        }
        let base = self
            .earlier
            .resume_base
            .get(&t)
            .cloned()
            .or_else(|| self.final_branch.get(&t).cloned())
            .unwrap_or_else(|| self.opts.naming.branch(&self.list.tasks[t].id, 1));
        let last = self.earlier.history.get(&t).and_then(|h| h.last()).cloned();
        if let (Some(last), Some(w)) = (last, self.waiting_rework(t))
            && last.verdict == Some(Verdict::RequiresChanges)
            && base == last.branch
        {
            let run = self.next_rework_run(w);
            let findings = self.recorded_findings(t, last.round);
            return self.rework_job(w, run, last.branch.clone(), findings);
        }
        // The rework whose run it starts from, when one ran on top of the last round.
        let reworked_by = self
            .earlier
            .history
            .iter()
            .filter(|&(&w, _)| w != t)
            .find(|(_, runs)| runs.iter().any(|x| x.branch == base))
            .map(|(&w, _)| self.list.tasks[w].id.clone());
        let gate = self.gates.entry(t).or_default();
        gate.round += 1;
        gate.this_run += 1;
        let round = gate.round;
        self.review_round(t, round, base, reworked_by)
    }

    /// With `one_step`, the run of conditional task `w` that answers the last recorded round
    /// of a review it serves, when that round asked for changes no rework answered yet.
    fn rework_step(&mut self, w: usize) -> Option<Start> {
        let (r, last) = self.list.tasks[w]
            .condition()
            .find_map(|r| self.earlier.awaits_rework(r).map(|l| (r, l.clone())))?;
        let run = self.next_rework_run(w);
        let findings = self.recorded_findings(r, last.round);
        Some(self.rework_job(w, run, last.branch, findings))
    }

    /// The findings of review `r`'s recorded round `round`, as an earlier run left them.
    fn recorded_findings(&self, r: usize, round: u32) -> Findings {
        let text = self.earlier.findings.get(&r).cloned().unwrap_or_else(|| {
            "(the findings were in the review's output in an earlier run)".to_owned()
        });
        Findings {
            review: r,
            round,
            source: review::verdict_file(self.list, r),
            text,
        }
    }

    /// The rework of review `review`: a task of the list whose condition names it.
    fn rework_of(&self, review: usize) -> Option<usize> {
        self.list
            .leaves()
            .find(|&w| self.list.tasks[w].condition().any(|c| c == review))
    }

    /// Run `run` of task `t`, from its dependencies' branches.
    fn job(&self, t: usize, run: u32, reworked_by: Option<String>) -> Start {
        let task = &self.list.tasks[t];
        let mut deps: Vec<String> = task
            .deps
            .iter()
            .map(|e| {
                self.final_branch
                    .get(&e.on)
                    .cloned()
                    .unwrap_or_else(|| self.opts.naming.branch(&self.list.tasks[e.on].id, 1))
            })
            .collect();
        deps.dedup();
        Start {
            task: t,
            role: if self.reviews[t] {
                Role::Review { round: run }
            } else {
                Role::Task
            },
            run,
            branch: self.opts.naming.branch(&task.id, run),
            base: Base::Deps(deps),
            reworked_by,
            findings: None,
            resume: None,
        }
    }

    /// Round `round` (after the first) of review `r`, on top of `base`.
    fn review_round(
        &self,
        r: usize,
        round: u32,
        base: String,
        reworked_by: Option<String>,
    ) -> Start {
        Start {
            base: Base::Branch(base),
            ..self.job(r, round, reworked_by)
        }
    }

    /// Run `run` of rework `w`, on top of `base`, answering `findings`.
    fn rework_job(&self, w: usize, run: u32, base: String, findings: Findings) -> Start {
        Start {
            role: Role::Rework {
                review: findings.review,
                run,
            },
            base: Base::Branch(base),
            findings: Some(findings),
            ..self.job(w, run, None)
        }
    }

    /// The number of rework `w`'s next run, counted as running.
    fn next_rework_run(&mut self, w: usize) -> u32 {
        let run = self.rework_count.entry(w).or_insert(0);
        *run += 1;
        *self.busy.entry(w).or_default() += 1;
        *run
    }

    /// The rework that review `review` would start: a task of the plan not yet started whose
    /// condition names the review.
    fn waiting_rework(&self, review: usize) -> Option<usize> {
        self.plan.nodes.iter().map(|n| n.task).find(|&w| {
            self.state[&w] == State::Waiting && self.list.tasks[w].condition().any(|c| c == review)
        })
    }

    /// A review gate's report when it ends between rounds.
    fn gate_report(&mut self, r: usize, status: Status, reason: String) -> TaskReport {
        let gate = self.gates.entry(r).or_default();
        let last_review = gate.rounds.iter().rev().find(|x| x.verdict.is_some());
        TaskReport {
            branch: self.final_branch.get(&r).cloned(),
            commit: last_review.and_then(|x| x.commit.clone()),
            duration_secs: gate.duration,
            usage: gate.usage.clone(),
            verdict: last_review.and_then(|x| x.verdict),
            rounds: gate.rounds.clone(),
            ..report_of(self.list, r, status, reason)
        }
    }
}

/// A task's report with only its id, title, track, status and reason.
pub fn report_of(list: &TaskList, t: usize, status: Status, reason: String) -> TaskReport {
    let task = &list.tasks[t];
    TaskReport {
        reason: (!reason.is_empty()).then_some(reason),
        ..TaskReport::new(
            task.id.clone(),
            task.title.clone(),
            list.track_of(t).map(str::to_owned),
            status,
        )
    }
}

/// Longest chain of plan tasks from each task to the end: the start order.
fn remaining_chain(plan: &Plan) -> HashMap<usize, usize> {
    let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
    for n in &plan.nodes {
        for &d in &n.deps {
            dependents.entry(d).or_default().push(n.task);
        }
    }
    let mut by_level: Vec<&crate::plan::Node> = plan.nodes.iter().collect();
    by_level.sort_by_key(|n| std::cmp::Reverse(n.level));
    let mut chain = HashMap::new();
    for n in by_level {
        let c = 1 + dependents.get(&n.task).map_or(0, |ds| {
            ds.iter()
                .map(|d| chain.get(d).copied().unwrap_or(0))
                .max()
                .unwrap_or(0)
        });
        chain.insert(n.task, c);
    }
    chain
}

#[cfg(test)]
mod tests {
    //! The scheduler alone: no process, no git. Each test feeds it jobs' ends and reads the
    //! order of what it decides.

    use super::*;
    use crate::plan;

    fn list(md: &str) -> TaskList {
        let list = crate::spec::parse_bytes("tasks.md", md.as_bytes().to_vec());
        assert!(!list.has_errors(), "{:?}", list.diagnostics);
        list
    }

    fn plan_of(list: &TaskList, max_agents: usize) -> Plan {
        plan::build(
            list,
            &plan::Options {
                max_agents,
                ..plan::Options::default()
            },
        )
        .unwrap()
    }

    fn task(id: &str, deps: &str) -> String {
        let deps = if deps.is_empty() { "None" } else { deps };
        format!("- [ ] {id}. **Task {id}**\n  - _Dependencies: {deps}_\n\n")
    }

    /// Tasks 1 and 3, and the gate of track A: CR-A, PR-A after CR-A approves, RW-A when
    /// either asks for changes, 2 after PR-A approves.
    fn gated() -> String {
        format!(
            "# Tasks\n\n{}{}{}{}{}{}",
            task("1", ""),
            task("CR-A", "Task 1"),
            task("PR-A", "CR-A (approved)"),
            task("RW-A", "CR-A and/or PR-A (failed)"),
            task("2", "PR-A (approved)"),
            task("3", ""),
        )
    }

    fn options(max_agents: usize, continue_on_error: bool, max_review_rounds: u32) -> Options {
        Options {
            max_agents,
            continue_on_error,
            max_review_rounds,
            naming: Naming {
                prefix: "spec".into(),
                feature: "f".into(),
            },
            max_cost: None,
            on_rate_limit: OnRateLimit::Wait,
            one_step: false,
        }
    }

    /// Drives a scheduler by hand: what it started and settled, in order.
    struct Sim<'a> {
        s: Scheduler<'a>,
        list: &'a TaskList,
        running: Vec<Start>,
        log: Vec<String>,
    }

    impl<'a> Sim<'a> {
        fn new(list: &'a TaskList, plan: &'a Plan, opts: Options) -> Sim<'a> {
            Sim::after(list, plan, opts, Earlier::default())
        }

        /// A scheduler of what `earlier` runs left.
        fn after(list: &'a TaskList, plan: &'a Plan, opts: Options, earlier: Earlier) -> Sim<'a> {
            let mut sim = Sim {
                s: Scheduler::new(list, plan, opts, earlier),
                list,
                running: Vec::new(),
                log: Vec::new(),
            };
            let actions = sim.s.next_actions();
            sim.apply(actions);
            sim
        }

        fn apply(&mut self, actions: Vec<Action>) {
            for a in actions {
                match a {
                    Action::Start(st) => {
                        self.log.push(format!("start {}", st.branch));
                        self.running.push(st);
                    }
                    Action::Settle(r) => self.log.push(format!(
                        "{} {}{}",
                        r.status.word(),
                        r.id,
                        r.reason.map(|x| format!(": {x}")).unwrap_or_default()
                    )),
                    Action::Emit(Event::ReviewVerdict { id, verdict, .. }) => {
                        self.log.push(format!("verdict {id} {}", verdict.word()));
                    }
                    Action::Emit(_) => {}
                }
            }
        }

        /// The running job whose branch is `branch`.
        fn take(&mut self, branch: &str) -> Start {
            let i = self
                .running
                .iter()
                .position(|s| s.branch == format!("spec/f/{branch}"))
                .unwrap_or_else(|| panic!("{branch} is not running: {:?}", self.log));
            self.running.remove(i)
        }

        fn end(&mut self, branch: &str, status: Status, verdict: Option<Verdict>) {
            let start = self.take(branch);
            let t = start.task;
            let report = TaskReport {
                commit: Some(format!("c-{branch}")),
                ..report_of(self.list, t, status, String::new())
            };
            let verdict = verdict.map(|verdict| review::Read {
                verdict,
                findings: format!("findings of {branch}"),
                source: "the review file".into(),
            });
            let mut actions = self.s.finished(Finished {
                start,
                report,
                verdict,
                rate_limited: None,
            });
            actions.extend(self.s.next_actions());
            self.apply(actions);
        }

        fn done(&mut self, branch: &str) {
            self.end(branch, Status::Done, None);
        }

        fn review(&mut self, branch: &str, v: Verdict) {
            self.end(branch, Status::Done, Some(v));
        }

        fn finish(mut self) -> Vec<String> {
            assert!(self.running.is_empty(), "still running: {:?}", self.running);
            let actions = self.s.finish();
            self.apply(actions);
            self.log
        }
    }

    #[test]
    fn starts_the_longest_chain_first_within_the_agent_limit() {
        let l = list(&format!(
            "# Tasks\n\n{}{}{}",
            task("1", ""),
            task("2", ""),
            task("3", "Task 2")
        ));
        let p = plan_of(&l, 1);
        let mut sim = Sim::new(&l, &p, options(1, false, 3));
        assert_eq!(sim.log, ["start spec/f/2"]);
        sim.done("2");
        sim.done("1");
        sim.done("3");
        assert_eq!(
            sim.finish(),
            [
                "start spec/f/2",
                "done 2",
                "start spec/f/1",
                "done 1",
                "start spec/f/3",
                "done 3"
            ]
        );
    }

    #[test]
    fn a_failure_stops_new_starts_unless_continue_on_error() {
        let md = format!(
            "# Tasks\n\n{}{}{}",
            task("1", ""),
            task("2", "Task 1"),
            task("3", "")
        );
        let l = list(&md);
        let p = plan_of(&l, 1);
        let mut sim = Sim::new(&l, &p, options(1, false, 3));
        sim.end("1", Status::Failed, None);
        let log = sim.finish();
        assert_eq!(log[1], "failed 1");
        assert_eq!(log[2], "skipped 2: depends on task 1, which did not finish");
        assert_eq!(
            log[3],
            "skipped 3: not started: the run stopped after task 1 failed (see --continue-on-error)"
        );

        let mut sim = Sim::new(&l, &p, options(1, true, 3));
        sim.end("1", Status::Failed, None);
        sim.done("3");
        let log = sim.finish();
        assert_eq!(
            log,
            [
                "start spec/f/1",
                "failed 1",
                "skipped 2: depends on task 1, which did not finish",
                "start spec/f/3",
                "done 3"
            ]
        );
    }

    /// With room for fewer jobs than agents (the worktrees being made), the rest wait, ready:
    /// the scheduler says it left some, they start when there is room, and a failure meanwhile
    /// leaves them not started, as tasks that never started.
    #[test]
    fn jobs_wait_for_room_and_a_failure_meanwhile_leaves_them_not_started() {
        let md = format!(
            "# Tasks\n\n{}{}{}{}",
            task("1", ""),
            task("2", ""),
            task("3", ""),
            task("4", "")
        );
        let l = list(&md);
        let p = plan_of(&l, 4);
        let starts = |actions: &[Action]| -> Vec<Start> {
            actions
                .iter()
                .filter_map(|a| match a {
                    Action::Start(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        };
        let ids = |starts: Vec<Start>| -> Vec<String> {
            starts.iter().map(|s| l.tasks[s.task].id.clone()).collect()
        };
        let mut s = Scheduler::new(&l, &p, options(4, false, 3), Earlier::default());
        assert_eq!(ids(starts(&s.next_actions_within(1))), ["1"]);
        assert!(s.starved());
        // Each call gives what the agents and its own room allow.
        assert_eq!(ids(starts(&s.next_actions_within(2))), ["2", "3"]);
        assert!(s.starved());
        assert_eq!(ids(starts(&s.next_actions_within(5))), ["4"]);
        assert!(!s.starved());

        // Room for one: task 1 runs, and fails before there is room for more.
        let mut s = Scheduler::new(&l, &p, options(4, false, 3), Earlier::default());
        let start = starts(&s.next_actions_within(1)).remove(0);
        let report = report_of(&l, start.task, Status::Failed, "exit 1".into());
        let mut actions = s.finished(Finished {
            start,
            report,
            verdict: None,
            rate_limited: None,
        });
        actions.extend(s.next_actions_within(4));
        assert!(starts(&actions).is_empty());
        assert!(!s.starved());
        actions.extend(s.finish());
        let settled: Vec<(String, Status, String)> = actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Settle(r) => Some((r.id, r.status, r.reason.unwrap_or_default())),
                _ => None,
            })
            .collect();
        assert_eq!(settled.len(), 4, "{settled:?}");
        assert_eq!(settled[0].1, Status::Failed);
        for (id, status, reason) in &settled[1..] {
            assert_eq!(*status, Status::Skipped, "{id}");
            assert!(
                reason.contains("the run stopped after task 1 failed"),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_gate_loops_review_rework_review_until_approved() {
        let l = list(&gated());
        let p = plan_of(&l, 1);
        let mut sim = Sim::new(&l, &p, options(1, false, 3));
        sim.done("1");
        sim.review("CR-A", Verdict::RequiresChanges);
        let rework = sim.running[0].clone();
        assert_eq!(rework.base, Base::Branch("spec/f/CR-A".into()));
        assert_eq!(
            rework.role,
            Role::Rework {
                review: l.find("CR-A").unwrap(),
                run: 1
            }
        );
        assert_eq!(
            rework.findings.as_ref().map(|f| f.text.as_str()),
            Some("findings of CR-A")
        );
        sim.done("RW-A");
        let round2 = sim.running[0].clone();
        assert_eq!(round2.branch, "spec/f/CR-A.round-2");
        assert_eq!(round2.base, Base::Branch("spec/f/RW-A".into()));
        assert_eq!(round2.reworked_by.as_deref(), Some("RW-A"));
        sim.review("CR-A.round-2", Verdict::Approved);
        // PR-A starts from the gate's last round.
        assert_eq!(
            sim.running[0].base,
            Base::Deps(vec!["spec/f/CR-A.round-2".into()])
        );
        sim.review("PR-A", Verdict::Approved);
        sim.done("2");
        sim.done("3");
        let log = sim.finish();
        let want = [
            "start spec/f/1",
            "done 1",
            "start spec/f/CR-A",
            "verdict CR-A requires changes",
            "start spec/f/RW-A",
            "start spec/f/CR-A.round-2",
            "verdict CR-A approved",
            "done CR-A",
            "start spec/f/PR-A",
            "verdict PR-A approved",
            "done PR-A",
            "done RW-A",
            "start spec/f/2",
            "done 2",
            "start spec/f/3",
            "done 3",
        ];
        assert_eq!(log, want);
    }

    #[test]
    fn one_rework_serves_two_reviews_with_a_run_for_each() {
        let l = list(&gated());
        let p = plan_of(&l, 2);
        let mut sim = Sim::new(&l, &p, options(2, false, 3));
        sim.done("1");
        sim.done("3");
        sim.review("CR-A", Verdict::RequiresChanges);
        sim.done("RW-A");
        sim.review("CR-A.round-2", Verdict::Approved);
        sim.review("PR-A", Verdict::RequiresChanges);
        // The rework's second run, for PR-A, on PR-A's round.
        let second = sim.running[0].clone();
        assert_eq!(second.branch, "spec/f/RW-A.round-2");
        assert_eq!(second.base, Base::Branch("spec/f/PR-A".into()));
        assert_eq!(
            second.role,
            Role::Rework {
                review: l.find("PR-A").unwrap(),
                run: 2
            }
        );
        sim.done("RW-A.round-2");
        assert_eq!(sim.running[0].branch, "spec/f/PR-A.round-2");
        sim.review("PR-A.round-2", Verdict::Approved);
        // 2 starts from PR-A's last round.
        assert_eq!(
            sim.running[0].base,
            Base::Deps(vec!["spec/f/PR-A.round-2".into()])
        );
        sim.done("2");
        let log = sim.finish();
        let rw = log.iter().position(|x| x == "done RW-A").unwrap();
        let pr = log.iter().position(|x| x == "done PR-A").unwrap();
        assert!(
            pr < rw,
            "the rework is done once every review it serves passed: {log:?}"
        );
        assert_eq!(log.iter().filter(|x| x.starts_with("done RW-A")).count(), 1);
    }

    #[test]
    fn an_interrupt_between_review_rounds_ends_the_gate_interrupted() {
        let l = list(&gated());
        let p = plan_of(&l, 1);
        let mut sim = Sim::new(&l, &p, options(1, false, 3));
        sim.done("1");
        sim.review("CR-A", Verdict::RequiresChanges);
        assert_eq!(sim.s.interrupt(), Interrupt::Terminate);
        // The rework finished anyway: its work is kept, the next round does not start.
        sim.done("RW-A");
        assert!(sim.running.is_empty());
        assert_eq!(sim.s.interrupt(), Interrupt::Kill);
        assert_eq!(sim.s.interrupt(), Interrupt::Exit);
        let log = sim.finish();
        assert!(
            log.contains(&"interrupted CR-A: interrupted between review rounds".to_owned()),
            "{log:?}"
        );
        assert!(
            log.contains(&"skipped 3: not started: the run was interrupted".to_owned()),
            "{log:?}"
        );
        assert!(!log.iter().any(|x| x.contains("CR-A.round-2")), "{log:?}");
    }

    #[test]
    fn an_interrupt_during_a_review_that_asks_for_changes_starts_no_rework() {
        let l = list(&gated());
        let p = plan_of(&l, 1);
        let mut sim = Sim::new(&l, &p, options(1, false, 3));
        sim.done("1");
        sim.s.interrupt();
        sim.review("CR-A", Verdict::RequiresChanges);
        let log = sim.finish();
        assert!(
            log.contains(
                &"interrupted CR-A: interrupted: it requires changes, and its rework did not start"
                    .to_owned()
            ),
            "{log:?}"
        );
        assert!(!log.iter().any(|x| x.starts_with("start spec/f/RW-A")));
    }

    #[test]
    fn a_gate_that_runs_out_of_rounds_fails_and_continue_on_error_goes_on() {
        let l = list(&gated());
        let p = plan_of(&l, 1);
        let mut sim = Sim::new(&l, &p, options(1, true, 1));
        sim.done("1");
        sim.review("CR-A", Verdict::RequiresChanges);
        sim.done("3");
        let log = sim.finish();
        assert_eq!(
            log,
            [
                "start spec/f/1",
                "done 1",
                "start spec/f/CR-A",
                "verdict CR-A requires changes",
                "failed CR-A: still requires changes after 1 review round (the limit, --max-review-rounds 1)",
                "skipped PR-A: depends on task CR-A, which did not finish",
                "skipped RW-A: depends on task CR-A, which did not finish",
                "skipped 2: depends on task PR-A, which did not finish",
                "start spec/f/3",
                "done 3",
            ]
        );
    }

    #[test]
    fn a_rework_is_not_needed_when_its_reviews_approve() {
        let l = list(&gated());
        let p = plan_of(&l, 1);
        let mut sim = Sim::new(&l, &p, options(1, false, 3));
        sim.done("1");
        sim.review("CR-A", Verdict::Approved);
        sim.review("PR-A", Verdict::Approved);
        sim.done("2");
        sim.done("3");
        let log = sim.finish();
        assert!(
            log.contains(&"not needed RW-A: CR-A and PR-A approved".to_owned()),
            "{log:?}"
        );
    }

    /// Task 1, review CR-A of it, and its rework RW-A.
    fn small_gate() -> TaskList {
        list(&format!(
            "# Tasks\n\n{}{}{}",
            task("1", ""),
            task("CR-A", "Task 1"),
            task("RW-A", "CR-A (failed)"),
        ))
    }

    /// The plan of `--task ids`.
    fn only(l: &TaskList, ids: &[&str]) -> Plan {
        let keep = ids.iter().map(|id| l.find(id).unwrap()).collect();
        plan_of(l, 1).only(&keep)
    }

    fn one_step() -> Options {
        Options {
            one_step: true,
            ..options(1, false, 3)
        }
    }

    fn recorded(id: &str, round: u32, verdict: Option<Verdict>) -> review::Recorded {
        review::Recorded {
            round,
            branch: review::round_branch("spec", "f", id, round),
            oid: git2::Oid::zero(),
            verdict,
        }
    }

    #[test]
    fn one_step_a_review_that_asks_for_changes_ends_its_run_without_the_rework() {
        let l = small_gate();
        let p = only(&l, &["CR-A"]);
        let mut sim = Sim::new(&l, &p, one_step());
        sim.review("CR-A", Verdict::RequiresChanges);
        assert!(sim.running.is_empty(), "{:?}", sim.running);
        assert_eq!(
            sim.finish(),
            [
                "start spec/f/CR-A",
                "verdict CR-A requires changes",
                "done CR-A: requires changes: its rework RW-A runs next, then round 2",
            ]
        );
    }

    #[test]
    fn one_step_a_rework_answers_the_last_round_and_the_next_round_is_another_run() {
        let l = small_gate();
        let (cr, rw) = (l.find("CR-A").unwrap(), l.find("RW-A").unwrap());
        let mut earlier = Earlier::default();
        earlier.history.insert(
            cr,
            vec![recorded("CR-A", 1, Some(Verdict::RequiresChanges))],
        );
        earlier.resume_base.insert(cr, "spec/f/CR-A".into());
        earlier.findings.insert(cr, "fix it".into());

        // The rework, on the round it answers, with its findings; then nothing more.
        let p = only(&l, &["RW-A"]);
        let mut sim = Sim::after(&l, &p, one_step(), earlier.clone());
        let rework = sim.running[0].clone();
        assert_eq!(rework.role, Role::Rework { review: cr, run: 1 });
        assert_eq!(rework.base, Base::Branch("spec/f/CR-A".into()));
        assert_eq!(rework.findings.map(|f| f.text), Some("fix it".to_owned()));
        sim.done("RW-A");
        let log = sim.finish();
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(log[1].starts_with("done RW-A"), "{log:?}");

        // The review's next round, on the rework's run.
        earlier.history.insert(rw, vec![recorded("RW-A", 1, None)]);
        earlier.resume_base.insert(cr, "spec/f/RW-A".into());
        let p = only(&l, &["CR-A"]);
        let mut sim = Sim::after(&l, &p, one_step(), earlier.clone());
        let round = sim.running[0].clone();
        assert_eq!(round.branch, "spec/f/CR-A.round-2");
        assert_eq!(round.base, Base::Branch("spec/f/RW-A".into()));
        assert_eq!(round.reworked_by.as_deref(), Some("RW-A"));
        sim.review("CR-A.round-2", Verdict::Approved);
        assert_eq!(sim.finish().last().unwrap(), "done CR-A");

        // Approved: the rework is not needed.
        earlier.reused.insert(cr, "c".into());
        let p = only(&l, &["RW-A"]);
        let sim = Sim::after(&l, &p, one_step(), earlier);
        assert_eq!(sim.finish(), ["not needed RW-A: CR-A approved"]);
    }

    #[test]
    fn one_step_counts_every_recorded_round_toward_the_limit() {
        let l = small_gate();
        let (cr, rw) = (l.find("CR-A").unwrap(), l.find("RW-A").unwrap());
        let mut earlier = Earlier::default();
        earlier.history.insert(
            cr,
            vec![recorded("CR-A", 1, Some(Verdict::RequiresChanges))],
        );
        earlier.history.insert(rw, vec![recorded("RW-A", 1, None)]);
        earlier.resume_base.insert(cr, "spec/f/RW-A".into());
        let p = only(&l, &["CR-A"]);
        let opts = Options {
            max_review_rounds: 2,
            ..one_step()
        };
        let mut sim = Sim::after(&l, &p, opts, earlier);
        sim.review("CR-A.round-2", Verdict::RequiresChanges);
        let log = sim.finish();
        assert_eq!(
            log.last().unwrap(),
            "failed CR-A: still requires changes after 2 review rounds (the limit, --max-review-rounds 2)"
        );
    }
}
