//! Consumers of a run's event stream. JSON lines, plain lines, the live display and the report
//! files are all sinks of the same events; exec only emits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Event, Report, TaskReport};
use crate::plan::render::FORMAT_VERSION;

/// Something that consumes the run's events.
pub trait Sink {
    fn event(&mut self, event: &Event);
    /// A line that is no event (Ctrl-C notices).
    fn notice(&mut self, _verb: &str, _message: &str) {}
    /// The clock ticked: a live display redraws.
    fn redraw(&mut self) {}
    /// What this sink could not do (a report file it could not write), once it is told the
    /// run finished.
    fn failure(&self) -> Option<String> {
        None
    }
    /// Whether this sink writes the run's report (`report.md`): when it fails, `run-finished`
    /// names no report.
    fn writes_report(&self) -> bool {
        false
    }
}

/// What to do about a report file that could not be written.
pub const WRITE_HELP: &str =
    "free some space or fix the permissions; the tasks' branches and ticks are kept";

/// Hands every event to each of its sinks, in order. The sinks that can fail see the end of
/// the run first: when one failed, the others are told (the run then exits 1, with the reason
/// in `run-finished`).
#[derive(Default)]
pub struct Sinks<'a> {
    /// Sinks that write files, told first.
    writers: Vec<Box<dyn Sink + 'a>>,
    /// Sinks that show the run.
    outputs: Vec<Box<dyn Sink + 'a>>,
}

impl std::fmt::Debug for Sinks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sinks")
            .field("writers", &self.writers.len())
            .field("outputs", &self.outputs.len())
            .finish()
    }
}

impl<'a> Sinks<'a> {
    pub fn writer(mut self, sink: impl Sink + 'a) -> Self {
        self.writers.push(Box::new(sink));
        self
    }

    pub fn output(mut self, sink: impl Sink + 'a) -> Self {
        self.outputs.push(Box::new(sink));
        self
    }

    fn all(&mut self) -> impl Iterator<Item = &mut Box<dyn Sink + 'a>> {
        self.writers.iter_mut().chain(self.outputs.iter_mut())
    }

    /// The exit code the run ends with: `event`'s, or 1 when a writer failed.
    pub fn finish(&mut self, mut event: Event) -> i32 {
        for w in &mut self.writers {
            w.event(&event);
        }
        let failures: Vec<String> = self.writers.iter().filter_map(|w| w.failure()).collect();
        let report_failed = self
            .writers
            .iter()
            .any(|w| w.writes_report() && w.failure().is_some());
        if let Event::RunFinished {
            exit_code,
            report,
            error,
            ..
        } = &mut event
            && !failures.is_empty()
        {
            if report_failed {
                *report = None;
            }
            *error = Some(failures.join("; "));
            if *exit_code == 0 {
                *exit_code = crate::error::exit::TASKS_FAILED;
            }
        }
        for o in &mut self.outputs {
            o.event(&event);
        }
        match event {
            Event::RunFinished { exit_code, .. } => exit_code,
            _ => 0,
        }
    }
}

impl Sink for Sinks<'_> {
    fn event(&mut self, event: &Event) {
        for s in self.all() {
            s.event(event);
        }
    }

    fn notice(&mut self, verb: &str, message: &str) {
        for s in self.all() {
            s.notice(verb, message);
        }
    }

    fn redraw(&mut self) {
        for s in self.all() {
            s.redraw();
        }
    }
}

/// Writes `report.json` and `report.md` into the run's directory when the run finishes, each
/// atomically (a temporary file renamed over it): a report is whole or absent, never cut. Then
/// the feature report over every run (see [`super::feature`]) in the feature's state directory.
#[derive(Debug)]
pub struct ReportFiles {
    pub feature: String,
    pub run_id: String,
    pub agent: String,
    pub run_dir: PathBuf,
    /// Paths in the markdown are shown relative to it.
    pub root: PathBuf,
    /// The order of tasks in the report: their place in tasks.md.
    pub order: HashMap<String, usize>,
    started: Option<std::time::Instant>,
    tasks: Vec<TaskReport>,
    integration: Option<super::IntegrationReport>,
    disk: Option<super::DiskUse>,
    failed: Option<String>,
}

impl ReportFiles {
    pub fn new(
        feature: &str,
        run_id: &str,
        agent: &str,
        run_dir: &Path,
        root: &Path,
        order: HashMap<String, usize>,
    ) -> ReportFiles {
        ReportFiles {
            feature: feature.to_owned(),
            run_id: run_id.to_owned(),
            agent: agent.to_owned(),
            run_dir: run_dir.to_path_buf(),
            root: root.to_path_buf(),
            order,
            started: None,
            tasks: Vec::new(),
            integration: None,
            disk: None,
            failed: None,
        }
    }

    /// Where the human report is written.
    pub fn markdown_path(run_dir: &Path) -> PathBuf {
        run_dir.join("report.md")
    }

    fn write(&mut self, duration_secs: f64, exit_code: i32) -> Result<(), String> {
        self.tasks
            .sort_by_key(|r| self.order.get(&r.id).copied().unwrap_or(usize::MAX));
        let report = Report {
            format_version: FORMAT_VERSION,
            feature: &self.feature,
            run_id: &self.run_id,
            agent: &self.agent,
            duration_secs,
            exit_code,
            totals: super::Totals::of(&self.tasks),
            tasks: &self.tasks,
            usage: super::total_usage(&self.tasks),
            integration: self.integration.as_ref(),
            disk: self.disk.clone(),
            root: &self.root,
        };
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| format!("could not serialise the report: {e}"))?;
        let markdown = report.markdown();
        for (name, text) in [("report.json", json), ("report.md", markdown)] {
            super::write_atomic(&self.run_dir.join(name), text.as_bytes())?;
        }
        // The feature's report, over every run of it: `<state-dir>/runs/<run-id>` is this run's.
        if let Some(state_dir) = self.run_dir.parent().and_then(Path::parent) {
            let current = super::feature::RunReport {
                feature: self.feature.clone(),
                run_id: self.run_id.clone(),
                agent: self.agent.clone(),
                exit_code,
                tasks: self.tasks.clone(),
            };
            super::feature::refresh(state_dir, &self.feature, Some(current), &self.order)?;
        }
        Ok(())
    }
}

impl Sink for ReportFiles {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { .. } => self.started = Some(std::time::Instant::now()),
            Event::TaskFinished(r) => self.tasks.push((**r).clone()),
            Event::Integrated(r) => self.integration = Some((**r).clone()),
            Event::RunFinished {
                duration_secs,
                exit_code,
                disk,
                ..
            } => {
                self.disk = disk.clone();
                if let Err(e) = self.write(*duration_secs, *exit_code) {
                    self.failed = Some(format!("the run's report was not written: {e}"));
                }
            }
            _ => {}
        }
    }

    fn failure(&self) -> Option<String> {
        self.failed.clone()
    }

    fn writes_report(&self) -> bool {
        true
    }
}
