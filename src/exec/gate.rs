//! A review gate as a state machine: a review round gives a verdict; an approval passes the
//! gate; a request for changes runs the rework, then the review again, until the review
//! approves, the round limit is reached, no rework can run, or the run is interrupted. Pure:
//! the scheduler feeds it verdicts and asks it what comes next.

use super::review;
use crate::report::{Round, Status, TaskReport, Verdict};

/// A review gate's loop so far.
#[derive(Debug, Default, Clone)]
pub struct Gate {
    /// The last round's number (rounds recorded by earlier runs count).
    pub round: u32,
    /// Rounds run in this run (the limit counts these).
    pub this_run: u32,
    /// Review rounds and the rework runs between them, earlier runs' first.
    pub rounds: Vec<Round>,
    /// Time spent in this run's rounds and reworks.
    pub duration: f64,
    /// The tokens and cost its review rounds reported, summed.
    pub usage: Option<crate::exec::stream::Usage>,
}

impl Gate {
    /// Counts one more review round's time and usage.
    pub fn spend(&mut self, r: &crate::report::TaskReport) {
        self.duration += r.duration_secs;
        if let Some(u) = &r.usage {
            self.usage.get_or_insert_with(Default::default).add(u);
        }
    }
}

/// What bounds the loop when a round asks for changes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub interrupted: bool,
    pub max_rounds: u32,
    /// Whether a rework task can run for it.
    pub rework: bool,
}

/// What comes after a round's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Approved: the gate is done.
    Passed,
    /// Changes were asked for: the rework runs, then the review again.
    Rework,
    /// The gate ends here, with this status and reason.
    Ends(Status, String),
}

impl Gate {
    /// A gate whose rounds an earlier run recorded.
    pub fn resumed(id: &str, recorded: &[review::Recorded]) -> Gate {
        Gate {
            round: recorded.last().map_or(0, |r| r.round),
            rounds: recorded
                .iter()
                .map(|r| Round {
                    task: id.to_owned(),
                    round: r.round,
                    branch: r.branch.clone(),
                    commit: Some(r.oid.to_string()),
                    verdict: r.verdict,
                    reused: true,
                })
                .collect(),
            ..Gate::default()
        }
    }

    /// Round `round` of the review ended on `branch`, committed as `report`, with `verdict`.
    pub fn verdict(
        &mut self,
        round: u32,
        branch: &str,
        report: &TaskReport,
        verdict: Verdict,
        limits: Limits,
    ) -> Step {
        self.rounds.push(Round {
            task: report.id.clone(),
            round,
            branch: branch.to_owned(),
            commit: report.commit.clone(),
            verdict: Some(verdict),
            reused: false,
        });
        if verdict == Verdict::Approved {
            return Step::Passed;
        }
        if limits.interrupted {
            return Step::Ends(
                Status::Interrupted,
                "interrupted: it requires changes, and its rework did not start".to_owned(),
            );
        }
        if self.this_run >= limits.max_rounds {
            return Step::Ends(
                Status::Failed,
                format!(
                    "still requires changes after {} review round{} (the limit, --max-review-rounds {})",
                    self.this_run,
                    if self.this_run == 1 { "" } else { "s" },
                    limits.max_rounds
                ),
            );
        }
        if !limits.rework {
            return Step::Ends(
                Status::Failed,
                format!(
                    "requires changes, and no rework task can run for it (a task with `_Dependencies: {} (failed)_` in this run)",
                    report.id
                ),
            );
        }
        Step::Rework
    }
}
