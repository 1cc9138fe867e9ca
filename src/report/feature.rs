//! The feature report: one picture of a feature run over several runs (a first run, the
//! resumes after it). `<state-dir>/report.json` and `report.md` hold every task that any run of
//! the feature reported, each with its latest line and the runs that reported it, built from
//! the runs' own `runs/<run-id>/report.json`.
//!
//! [`aggregate`] and the markdown are pure; [`refresh`] reads the runs' reports, aggregates
//! them and writes the two files (each atomically). A run report that cannot be read is left
//! out with a note in both files: it never fails the run that writes the feature report.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Status, TaskReport, Totals};
use crate::plan::render::FORMAT_VERSION;

/// A run's `report.json`, read back.
#[derive(Debug, Clone, Deserialize)]
pub struct RunReport {
    pub feature: String,
    pub run_id: String,
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub exit_code: i32,
    pub tasks: Vec<TaskReport>,
}

/// A run whose report could not be read, left out of the feature report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The report's path, relative to the feature's state directory (`runs/<id>/report.json`).
    pub path: PathBuf,
    pub error: String,
}

/// One task of the feature report: its latest line, and the runs that reported it.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureTask {
    #[serde(flatten)]
    pub task: TaskReport,
    /// The run whose line this is.
    pub run: String,
    /// Every run that reported the task, latest first.
    pub runs: Vec<String>,
}

/// `<state-dir>/report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureReport {
    pub format_version: u32,
    pub feature: String,
    /// Every run read, latest first.
    pub runs: Vec<String>,
    /// Of the tasks' latest states.
    pub totals: Totals,
    /// In the order of tasks.md (tasks it no longer has last, in the order runs reported them).
    pub tasks: Vec<FeatureTask>,
    /// Run reports left out because they could not be read.
    pub unreadable: Vec<Unreadable>,
}

/// A task of a feature report, read back.
#[derive(Debug, Clone, Deserialize)]
struct EarlierTask {
    #[serde(flatten)]
    task: TaskReport,
    run: String,
    runs: Vec<String>,
}

/// The feature report as the last refresh wrote it.
#[derive(Debug, Clone, Deserialize)]
struct Earlier {
    tasks: Vec<EarlierTask>,
}

/// The runs the last feature report names that `runs` does not have (their directories were
/// removed since), each with the lines of the tasks it reported: a task's line for the run it
/// came from, and for its other runs the same line (only the latest run's counts).
fn earlier_runs(state_dir: &Path, feature: &str, runs: &[RunReport]) -> Vec<RunReport> {
    let Some(earlier) = std::fs::read_to_string(state_dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Earlier>(&t).ok())
    else {
        return Vec::new();
    };
    let mut gone: std::collections::BTreeMap<String, Vec<TaskReport>> = Default::default();
    for t in earlier.tasks {
        for run in t.runs.iter().chain([&t.run]) {
            if runs.iter().any(|r| &r.run_id == run) {
                continue;
            }
            let lines = gone.entry(run.clone()).or_default();
            if !lines.iter().any(|l| l.id == t.task.id) {
                lines.push(t.task.clone());
            }
        }
    }
    gone.into_iter()
        .map(|(run_id, tasks)| RunReport {
            feature: feature.to_owned(),
            run_id,
            agent: String::new(),
            exit_code: 0,
            tasks,
        })
        .collect()
}

/// Where the feature report is written in the feature's state directory.
pub fn markdown_path(state_dir: &Path) -> PathBuf {
    state_dir.join("report.md")
}

/// The feature report of `runs` (in any order). Run ids are times (`20261125T055725481Z-…`), so
/// the latest run is the greatest id. A task's line is the latest run's, except that a task
/// `reused` by a later run keeps the line of the run that did it (`done`, with the same commit),
/// whose agent, files and log tell more; every run that reported it is listed all the same.
pub fn aggregate(
    feature: &str,
    runs: &[RunReport],
    order: &HashMap<String, usize>,
    unreadable: Vec<Unreadable>,
) -> FeatureReport {
    let mut latest_first: Vec<&RunReport> = runs.iter().collect();
    latest_first.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    latest_first.dedup_by(|a, b| a.run_id == b.run_id);
    let mut tasks: Vec<FeatureTask> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for run in &latest_first {
        for line in &run.tasks {
            let Some(&i) = index.get(&line.id) else {
                index.insert(line.id.clone(), tasks.len());
                tasks.push(FeatureTask {
                    task: line.clone(),
                    run: run.run_id.clone(),
                    runs: vec![run.run_id.clone()],
                });
                continue;
            };
            let entry = &mut tasks[i];
            if !entry.runs.contains(&run.run_id) {
                entry.runs.push(run.run_id.clone());
            }
            if entry.task.status == Status::Reused
                && line.status == Status::Done
                && line.commit.is_some()
                && line.commit == entry.task.commit
            {
                entry.task = line.clone();
                entry.run = run.run_id.clone();
            }
        }
    }
    // Stable: tasks tasks.md no longer lists keep the order they were met in.
    tasks.sort_by_key(|t| order.get(&t.task.id).copied().unwrap_or(usize::MAX));
    let lines: Vec<TaskReport> = tasks.iter().map(|t| t.task.clone()).collect();
    FeatureReport {
        format_version: FORMAT_VERSION,
        feature: feature.to_owned(),
        runs: latest_first.iter().map(|r| r.run_id.clone()).collect(),
        totals: Totals::of(&lines),
        tasks,
        unreadable,
    }
}

/// A commit's short id, as the tables show it.
fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// Text on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text for a table cell: one line, no `|` that would end the cell.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

/// `done`, `done (approved)`, `failed (requires changes)`.
fn status_word(t: &TaskReport) -> String {
    match t.verdict {
        Some(v) => format!("{} ({})", t.status.word(), v.word()),
        None => t.status.word().to_owned(),
    }
}

fn runs_cell(runs: &[String]) -> String {
    runs.iter()
        .map(|r| format!("`{r}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `2 done, 1 failed` (only the counts that are not zero), or `none`.
pub fn totals_sentence(t: &Totals) -> String {
    let parts: Vec<String> = [
        (t.done, "done"),
        (t.reused, "reused"),
        (t.not_needed, "not needed"),
        (t.failed, "failed"),
        (t.skipped, "skipped"),
        (t.interrupted, "interrupted"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, w)| format!("{n} {w}"))
    .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl FeatureReport {
    /// The report as markdown, fit for a pull request's body: the feature, a table of its
    /// tasks, the totals, why the tasks that are not done are not, and the runs left out.
    /// No local paths (logs, worktrees): they mean nothing on the forge.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Feature `{}`\n", self.feature);
        let _ = writeln!(
            out,
            "{}: {}, over {}{}.\n",
            plural(self.tasks.len(), "task"),
            totals_sentence(&self.totals),
            plural(self.runs.len(), "run"),
            self.runs
                .first()
                .map(|r| format!(" (latest `{r}`)"))
                .unwrap_or_default(),
        );
        let _ = writeln!(out, "| task | title | status | branch | commit | runs |");
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
        for t in &self.tasks {
            let r = &t.task;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&r.id),
                cell(&r.title),
                status_word(r),
                r.branch
                    .as_deref()
                    .map(|b| format!("`{}`", cell(b)))
                    .unwrap_or_default(),
                r.commit.as_deref().map(short).unwrap_or_default(),
                runs_cell(&t.runs),
            );
        }
        let open: Vec<&FeatureTask> = self
            .tasks
            .iter()
            .filter(|t| !t.task.status.is_success())
            .collect();
        if !open.is_empty() {
            let _ = writeln!(out, "\n## Not done\n");
            for t in open {
                let _ = writeln!(
                    out,
                    "- **{}** {} in run `{}`{}",
                    one_line(&t.task.id),
                    t.task.status.word(),
                    t.run,
                    t.task
                        .reason
                        .as_deref()
                        .map(|why| format!(": {}", one_line(why)))
                        .unwrap_or_default(),
                );
            }
        }
        let reviews: Vec<&FeatureTask> = self
            .tasks
            .iter()
            .filter(|t| t.task.rounds.iter().any(|x| x.verdict.is_some()))
            .collect();
        if !reviews.is_empty() {
            let _ = writeln!(out, "\n## Reviews\n");
            for t in reviews {
                let _ = writeln!(out, "- {}", review_line(&t.task));
            }
        }
        if !self.unreadable.is_empty() {
            let _ = writeln!(out, "\n## Runs left out\n");
            for u in &self.unreadable {
                let _ = writeln!(
                    out,
                    "- `{}` could not be read ({}); its tasks are not in this report",
                    u.path.display(),
                    one_line(&u.error)
                );
            }
        }
        out
    }

    /// The part of the report about task `id` (a pull request of its own): its title, state,
    /// branch, commit and runs, why it is not done, its review rounds. `None` when no run
    /// reported it.
    pub fn task_markdown(&self, id: &str) -> Option<String> {
        let t = self.tasks.iter().find(|t| t.task.id == id)?;
        let r = &t.task;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Feature `{}`, task {}: {}\n",
            self.feature,
            one_line(&r.id),
            one_line(&r.title)
        );
        let _ = writeln!(out, "| status | branch | commit | runs |");
        let _ = writeln!(out, "| --- | --- | --- | --- |");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            status_word(r),
            r.branch
                .as_deref()
                .map(|b| format!("`{}`", cell(b)))
                .unwrap_or_default(),
            r.commit.as_deref().map(short).unwrap_or_default(),
            runs_cell(&t.runs),
        );
        if let Some(why) = &r.reason {
            let _ = writeln!(out, "\n{}", one_line(why));
        }
        if r.rounds.iter().any(|x| x.verdict.is_some()) {
            let _ = writeln!(out, "\n{}", review_line(r));
        }
        Some(out)
    }
}

/// `**CR-A**: requires changes (round 1), rework RW-A, approved (round 2)`.
fn review_line(r: &TaskReport) -> String {
    let steps: Vec<String> = r
        .rounds
        .iter()
        .map(|x| match x.verdict {
            Some(v) => format!("{} (round {})", v.word(), x.round),
            None => format!("rework {}", one_line(&x.task)),
        })
        .collect();
    format!("**{}**: {}", one_line(&r.id), steps.join(", "))
}

/// Reads every `runs/*/report.json` under `state_dir` but run `except`'s (whose report the
/// caller has in hand). A run directory without a report (a run killed before its end) or with
/// one that does not parse is listed as unreadable.
pub fn read_runs(state_dir: &Path, except: Option<&str>) -> (Vec<RunReport>, Vec<Unreadable>) {
    let runs_dir = state_dir.join("runs");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&runs_dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect(),
        Err(_) => Vec::new(),
    };
    dirs.sort();
    let mut reports = Vec::new();
    let mut unreadable = Vec::new();
    for dir in dirs {
        if except.is_some_and(|id| dir.file_name().is_some_and(|n| n == id)) {
            continue;
        }
        let path = dir.join("report.json");
        let shown = path.strip_prefix(state_dir).unwrap_or(&path).to_path_buf();
        let parsed = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<RunReport>(&bytes).map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err("there is none: the run ended before writing it".to_owned())
            }
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(report) => reports.push(report),
            Err(error) => unreadable.push(Unreadable { path: shown, error }),
        }
    }
    (reports, unreadable)
}

/// Rebuilds the feature report of the feature whose state directory is `state_dir` from its
/// runs' reports (`current`, the run that is writing its own, stands for its report on disk)
/// and writes `report.json` and `report.md` there, each atomically.
pub fn refresh(
    state_dir: &Path,
    feature: &str,
    current: Option<RunReport>,
    order: &HashMap<String, usize>,
) -> Result<FeatureReport, String> {
    let except = current.as_ref().map(|c| c.run_id.clone());
    let (mut runs, unreadable) = read_runs(state_dir, except.as_deref());
    runs.extend(current);
    // Runs whose directory is gone (`clean` removed it) live on in the last feature report.
    runs.extend(earlier_runs(state_dir, feature, &runs));
    let report = aggregate(feature, &runs, order, unreadable);
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| format!("could not serialise the feature report: {e}"))?;
    super::write_atomic(&state_dir.join("report.json"), json.as_bytes())?;
    super::write_atomic(&markdown_path(state_dir), report.markdown().as_bytes())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Round, Verdict};

    fn line(id: &str, status: Status, commit: Option<&str>) -> TaskReport {
        let mut t = TaskReport::new(id.to_owned(), format!("Task {id}"), None, status);
        t.branch = Some(format!("spec/f/{id}"));
        t.commit = commit.map(str::to_owned);
        t
    }

    fn run(id: &str, tasks: Vec<TaskReport>) -> RunReport {
        RunReport {
            feature: "f".to_owned(),
            run_id: id.to_owned(),
            agent: "shell".to_owned(),
            exit_code: 0,
            tasks,
        }
    }

    /// A run's `report.json`, as a run writes it.
    fn report_json(run_id: &str, tasks: &[TaskReport]) -> String {
        serde_json::to_string(&crate::report::Report {
            format_version: FORMAT_VERSION,
            feature: "f",
            run_id,
            agent: "shell",
            duration_secs: 1.0,
            exit_code: 0,
            totals: Totals::of(tasks),
            tasks,
            usage: None,
            integration: None,
            disk: None,
            root: Path::new("/"),
        })
        .unwrap()
    }

    fn order(ids: &[&str]) -> HashMap<String, usize> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| ((*id).to_owned(), i))
            .collect()
    }

    fn ids(r: &FeatureReport) -> Vec<(&str, Status, Vec<&str>)> {
        r.tasks
            .iter()
            .map(|t| {
                (
                    t.task.id.as_str(),
                    t.task.status,
                    t.runs.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_resumed_feature_has_each_task_once_with_its_latest_state_and_its_runs() {
        let mut failed = line("2", Status::Failed, None);
        failed.reason = Some("exit 1".to_owned());
        let first = run(
            "20260101T000000000Z-1",
            vec![line("1", Status::Done, Some("aaaa")), failed],
        );
        let second = run(
            "20260102T000000000Z-2",
            vec![line("2", Status::Done, Some("bbbb"))],
        );
        // Given in any order.
        let r = aggregate("f", &[second, first], &order(&["1", "2"]), Vec::new());
        assert_eq!(
            ids(&r),
            vec![
                ("1", Status::Done, vec!["20260101T000000000Z-1"]),
                (
                    "2",
                    Status::Done,
                    vec!["20260102T000000000Z-2", "20260101T000000000Z-1"]
                ),
            ]
        );
        assert_eq!(r.runs, ["20260102T000000000Z-2", "20260101T000000000Z-1"]);
        assert_eq!(r.totals.done, 2);
        assert_eq!(r.totals.failed, 0);
        assert_eq!(r.tasks[1].task.commit.as_deref(), Some("bbbb"));
        assert_eq!(r.tasks[1].run, "20260102T000000000Z-2");
        assert!(r.tasks[1].task.reason.is_none());
    }

    #[test]
    fn a_reused_task_keeps_the_line_of_the_run_that_did_it() {
        let mut done = line("1", Status::Done, Some("aaaa"));
        done.agent = Some("shell".to_owned());
        done.files_changed = Some(3);
        let r = aggregate(
            "f",
            &[
                run("r1", vec![done]),
                run("r2", vec![line("1", Status::Reused, Some("aaaa"))]),
            ],
            &order(&["1"]),
            Vec::new(),
        );
        assert_eq!(ids(&r), vec![("1", Status::Done, vec!["r2", "r1"])]);
        assert_eq!(r.tasks[0].run, "r1");
        assert_eq!(r.tasks[0].task.files_changed, Some(3));
        // Reused on top of another commit: the latest line stands.
        let r = aggregate(
            "f",
            &[
                run("r1", vec![line("1", Status::Done, Some("aaaa"))]),
                run("r2", vec![line("1", Status::Reused, Some("cccc"))]),
            ],
            &order(&["1"]),
            Vec::new(),
        );
        assert_eq!(r.tasks[0].task.status, Status::Reused);
        assert_eq!(r.tasks[0].run, "r2");
    }

    #[test]
    fn a_later_failure_is_the_latest_state() {
        let r = aggregate(
            "f",
            &[
                run("r1", vec![line("1", Status::Done, Some("aaaa"))]),
                run("r2", vec![line("1", Status::Failed, None)]),
            ],
            &order(&["1"]),
            Vec::new(),
        );
        assert_eq!(ids(&r), vec![("1", Status::Failed, vec!["r2", "r1"])]);
        assert_eq!(r.totals.failed, 1);
    }

    #[test]
    fn tasks_follow_tasks_md_and_unknown_ones_come_last() {
        let r = aggregate(
            "f",
            &[run(
                "r1",
                vec![
                    line("gone", Status::Done, Some("a")),
                    line("2", Status::Done, Some("b")),
                    line("1", Status::Done, Some("c")),
                ],
            )],
            &order(&["1", "2"]),
            Vec::new(),
        );
        let got: Vec<&str> = r.tasks.iter().map(|t| t.task.id.as_str()).collect();
        assert_eq!(got, ["1", "2", "gone"]);
    }

    #[test]
    fn the_markdown_is_a_pull_request_body() {
        let mut review = line("CR-A", Status::Done, Some("0123456789abcdef"));
        review.verdict = Some(Verdict::Approved);
        review.rounds = vec![
            Round {
                task: "CR-A".to_owned(),
                round: 1,
                branch: "spec/f/CR-A".to_owned(),
                commit: None,
                verdict: Some(Verdict::RequiresChanges),
                reused: false,
            },
            Round {
                task: "RW-A".to_owned(),
                round: 1,
                branch: "spec/f/RW-A".to_owned(),
                commit: None,
                verdict: None,
                reused: false,
            },
            Round {
                task: "CR-A".to_owned(),
                round: 2,
                branch: "spec/f/CR-A.round-2".to_owned(),
                commit: None,
                verdict: Some(Verdict::Approved),
                reused: false,
            },
        ];
        let mut failed = line("2", Status::Failed, None);
        failed.title = "Pipes | and\nnewlines".to_owned();
        failed.reason = Some("exit 1".to_owned());
        failed.log = Some(PathBuf::from("/somewhere/logs/2.log"));
        let r = aggregate(
            "f",
            &[run("r1", vec![review, failed])],
            &order(&["CR-A", "2"]),
            vec![Unreadable {
                path: PathBuf::from("runs/r0/report.json"),
                error: "expected value at line 1 column 1".to_owned(),
            }],
        );
        let md = r.markdown();
        insta::assert_snapshot!(md, @r"
        # Feature `f`

        2 tasks: 1 done, 1 failed, over 1 run (latest `r1`).

        | task | title | status | branch | commit | runs |
        | --- | --- | --- | --- | --- | --- |
        | CR-A | Task CR-A | done (approved) | `spec/f/CR-A` | 0123456789 | `r1` |
        | 2 | Pipes \| and newlines | failed | `spec/f/2` |  | `r1` |

        ## Not done

        - **2** failed in run `r1`: exit 1

        ## Reviews

        - **CR-A**: requires changes (round 1), rework RW-A, approved (round 2)

        ## Runs left out

        - `runs/r0/report.json` could not be read (expected value at line 1 column 1); its tasks are not in this report
        ");
        assert!(!md.contains("/somewhere"), "no local paths: {md}");
        let part = r.task_markdown("CR-A").unwrap();
        assert!(
            part.starts_with("# Feature `f`, task CR-A: Task CR-A\n"),
            "{part}"
        );
        assert!(part.contains("| done (approved) | `spec/f/CR-A` | 0123456789 | `r1` |"));
        assert!(r.task_markdown("nope").is_none());
    }

    #[test]
    fn run_reports_are_read_back_and_the_unreadable_ones_noted() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let written = report_json("r1", &[line("1", Status::Done, Some("aaaa"))]);
        for (id, text) in [("r1", written), ("r2", "{ cut sh".to_owned())] {
            std::fs::create_dir_all(state.join("runs").join(id)).unwrap();
            std::fs::write(state.join("runs").join(id).join("report.json"), text).unwrap();
        }
        std::fs::create_dir_all(state.join("runs/r3/logs")).unwrap();
        std::fs::create_dir_all(state.join("runs/r4")).unwrap();
        let current = run("r4", vec![line("2", Status::Done, Some("bbbb"))]);
        let report = refresh(state, "f", Some(current), &order(&["1", "2"])).unwrap();
        assert_eq!(
            ids(&report),
            vec![
                ("1", Status::Done, vec!["r1"]),
                ("2", Status::Done, vec!["r4"])
            ]
        );
        let left_out: Vec<&Path> = report.unreadable.iter().map(|u| u.path.as_path()).collect();
        assert_eq!(
            left_out,
            [
                Path::new("runs/r2/report.json"),
                Path::new("runs/r3/report.json")
            ]
        );
        let md = std::fs::read_to_string(state.join("report.md")).unwrap();
        assert!(
            md.contains("`runs/r2/report.json` could not be read"),
            "{md}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.join("report.json")).unwrap()).unwrap();
        assert_eq!(json["tasks"][1]["runs"], serde_json::json!(["r4"]));
        assert_eq!(json["tasks"][1]["status"], "done");
        assert_eq!(json["unreadable"][0]["path"], "runs/r2/report.json");
    }

    #[test]
    fn runs_whose_directories_were_removed_live_on_in_the_feature_report() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let written = report_json("r1", &[line("1", Status::Done, Some("aaaa"))]);
        std::fs::create_dir_all(state.join("runs/r1")).unwrap();
        std::fs::write(state.join("runs/r1/report.json"), written).unwrap();
        let current = run("r2", vec![line("2", Status::Done, Some("bbbb"))]);
        refresh(state, "f", Some(current), &order(&["1", "2"])).unwrap();
        // `clean` removes r1's directory; the next refresh keeps what it reported.
        std::fs::remove_dir_all(state.join("runs/r1")).unwrap();
        let current = run("r3", vec![line("2", Status::Reused, Some("bbbb"))]);
        let report = refresh(state, "f", Some(current), &order(&["1", "2"])).unwrap();
        assert_eq!(
            ids(&report),
            vec![
                ("1", Status::Done, vec!["r1"]),
                ("2", Status::Done, vec!["r3", "r2"])
            ]
        );
    }
}
