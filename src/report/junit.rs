//! `--junit PATH`: the run as JUnit XML, for CI systems that show test results. A sink of the
//! run's events like the report files: one test case per task of the run (the feature as its
//! class), written when the run finishes, whether it succeeded, failed or was interrupted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event as Xml};

use super::sink::Sink;
use super::{Event, Status, TaskReport};

/// How many of a failed task's last log lines its failure holds.
const LOG_LINES: usize = 50;
/// How much of the end of a log is read for them.
const LOG_BYTES: u64 = 64 * 1024;

/// Writes the JUnit report to `path` when the run finishes, atomically (a temporary file
/// renamed over it).
#[derive(Debug)]
pub struct JunitFile {
    path: PathBuf,
    /// Paths in the failures' text are shown relative to it.
    root: PathBuf,
    /// The order of the test cases: the tasks' place in tasks.md.
    order: HashMap<String, usize>,
    feature: String,
    timestamp: Option<String>,
    tasks: Vec<TaskReport>,
    failed: Option<String>,
}

impl JunitFile {
    pub fn new(path: &Path, root: &Path, order: HashMap<String, usize>) -> JunitFile {
        JunitFile {
            path: path.to_path_buf(),
            root: root.to_path_buf(),
            order,
            feature: String::new(),
            timestamp: None,
            tasks: Vec::new(),
            failed: None,
        }
    }

    fn write(&mut self, duration_secs: f64) -> Result<(), String> {
        self.tasks
            .sort_by_key(|r| self.order.get(&r.id).copied().unwrap_or(usize::MAX));
        write_file(
            &self.path,
            &self.feature,
            self.timestamp.as_deref(),
            duration_secs,
            &self.tasks,
            &self.root,
        )
    }
}

/// The time a suite starts, as JUnit gives it: no zone (this one is UTC).
pub fn timestamp() -> String {
    crate::fsutil::utc_now().trim_end_matches('Z').to_owned()
}

/// Writes the JUnit XML of `tasks` to `path` (its directories made when missing), atomically.
pub fn write_file(
    path: &Path,
    feature: &str,
    timestamp: Option<&str>,
    duration_secs: f64,
    tasks: &[TaskReport],
    root: &Path,
) -> Result<(), String> {
    let xml = document(feature, timestamp, duration_secs, tasks, root)
        .map_err(|e| format!("could not write the JUnit report: {e}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("could not create `{}`: {e}", dir.display()))?;
    }
    super::write_atomic(path, &xml)
}

/// Why the `--junit` report is missing, as the run's end says it.
pub fn not_written(why: &str) -> String {
    format!("the JUnit report (--junit) was not written: {why}")
}

impl Sink for JunitFile {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { feature, .. } => {
                self.feature.clone_from(feature);
                self.timestamp = Some(timestamp());
            }
            Event::TaskFinished(r) => self.tasks.push((**r).clone()),
            Event::RunFinished { duration_secs, .. } => {
                if let Err(e) = self.write(*duration_secs) {
                    self.failed = Some(not_written(&e));
                }
            }
            _ => {}
        }
    }

    fn failure(&self) -> Option<String> {
        self.failed.clone()
    }
}

/// How a task shows in JUnit: passed, failed (interrupted, or done but not ticked, too: the
/// run fails on them), or skipped (with why).
enum Outcome {
    Passed,
    Failed {
        message: String,
        text: String,
        /// The failure's `type`.
        kind: &'static str,
    },
    Skipped(String),
}

fn outcome(r: &TaskReport, root: &Path) -> Outcome {
    let reason = r.reason.clone().unwrap_or_default();
    match r.status {
        // Its work is done, but tasks.md does not say so: the run fails on it.
        Status::Done | Status::Reused if r.tick_error.is_some() => {
            let message = r.tick_error.clone().unwrap_or_default();
            Outcome::Failed {
                text: message.clone(),
                message,
                kind: "not ticked",
            }
        }
        Status::Done | Status::Reused => Outcome::Passed,
        Status::NotNeeded => Outcome::Skipped(format!("not needed: {reason}")),
        Status::Skipped => Outcome::Skipped(reason),
        // The run exits 130 on it: a failure, not a test left out.
        Status::Interrupted => {
            let message = if reason.is_empty() {
                "interrupted".to_owned()
            } else if reason.starts_with("interrupted") {
                reason
            } else {
                format!("interrupted: {reason}")
            };
            Outcome::Failed {
                text: message.clone(),
                message,
                kind: "interrupted",
            }
        }
        Status::Failed => {
            let mut text = reason.clone();
            // The verify commands' output when they failed it, else the agent's.
            let verify_failed = r.verify.last().is_some_and(|v| !v.passed);
            let log = match (&r.verify_log, verify_failed) {
                (Some(v), true) => Some(v),
                _ => r.log.as_ref(),
            };
            if let Some(log) = log {
                let shown = log.strip_prefix(root).unwrap_or(log).display();
                match tail(log, LOG_LINES) {
                    Some(lines) if !lines.trim().is_empty() => {
                        text.push_str(&format!("\n\nThe last lines of {shown}:\n{lines}"));
                    }
                    _ => text.push_str(&format!("\n\nlog: {shown}")),
                }
            } else if let Some(t) = &r.output_tail {
                text.push_str(&format!("\n\n{t}"));
            }
            Outcome::Failed {
                message: reason,
                text,
                kind: "failed",
            }
        }
    }
}

/// The last `n` lines of the file at `path`, without terminal escapes.
fn tail(path: &Path, n: usize) -> Option<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(LOG_BYTES)))
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let text = console::strip_ansi_codes(&text);
    let lines: Vec<&str> = text.lines().collect();
    Some(lines[lines.len().saturating_sub(n)..].join("\n"))
}

/// `s` without the characters XML 1.0 does not allow (control characters but tab, line feed
/// and carriage return; U+FFFE and U+FFFF): agents' logs hold them, and one would make the
/// whole file unreadable.
pub fn xml_chars(s: &str) -> String {
    s.chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect()
}

/// Seconds, as JUnit gives them.
fn secs(s: f64) -> String {
    format!("{:.3}", if s.is_finite() { s.max(0.0) } else { 0.0 })
}

/// The JUnit XML of a run of `feature`: one suite, one test case per task.
pub fn document(
    feature: &str,
    timestamp: Option<&str>,
    duration_secs: f64,
    tasks: &[TaskReport],
    root: &Path,
) -> std::io::Result<Vec<u8>> {
    let outcomes: Vec<Outcome> = tasks.iter().map(|r| outcome(r, root)).collect();
    let failures = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed { .. }))
        .count();
    let skipped = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Skipped(_)))
        .count();
    let (tests, failures, skipped) = (
        tasks.len().to_string(),
        failures.to_string(),
        skipped.to_string(),
    );
    let time = secs(duration_secs);
    let feature = xml_chars(feature);
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Xml::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let counts = [
        ("tests", tests.as_str()),
        ("failures", failures.as_str()),
        ("errors", "0"),
        ("skipped", skipped.as_str()),
        ("time", time.as_str()),
    ];
    w.create_element("testsuites")
        .with_attribute(("name", "cargo spec-exec"))
        .with_attributes(counts)
        .write_inner_content(|w| {
            let mut suite = w
                .create_element("testsuite")
                .with_attribute(("name", feature.as_str()))
                .with_attributes(counts);
            if let Some(t) = timestamp {
                suite = suite.with_attribute(("timestamp", t));
            }
            suite.write_inner_content(|w| {
                for (r, o) in tasks.iter().zip(&outcomes) {
                    test_case(w, &feature, r, o)?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
    let mut xml = w.into_inner();
    xml.push(b'\n');
    Ok(xml)
}

fn test_case(
    w: &mut Writer<Vec<u8>>,
    feature: &str,
    r: &TaskReport,
    o: &Outcome,
) -> std::io::Result<()> {
    let name = xml_chars(&format!("{} {}", r.id, r.title));
    let time = secs(r.duration_secs);
    let case = w
        .create_element("testcase")
        .with_attribute(("classname", feature))
        .with_attribute(("name", name.as_str()))
        .with_attribute(("time", time.as_str()));
    match o {
        Outcome::Passed => {
            case.write_empty()?;
        }
        Outcome::Skipped(message) => {
            case.write_inner_content(|w| {
                w.create_element("skipped")
                    .with_attribute(("message", xml_chars(message).as_str()))
                    .write_empty()?;
                Ok(())
            })?;
        }
        Outcome::Failed {
            message,
            text,
            kind,
        } => {
            case.write_inner_content(|w| {
                w.create_element("failure")
                    .with_attribute(("message", xml_chars(message).as_str()))
                    .with_attribute(("type", *kind))
                    .write_text_content(BytesText::new(&xml_chars(text)))?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, status: Status, reason: Option<&str>) -> TaskReport {
        let mut r = TaskReport::new(id.to_owned(), format!("Task <{id}> & co"), None, status);
        r.reason = reason.map(str::to_owned);
        r.duration_secs = 1.5;
        r
    }

    #[test]
    fn forbidden_characters_are_left_out() {
        assert_eq!(
            xml_chars("a\u{0}b\u{1b}c\td\ne\rf\u{FFFE}\u{FFFF}g\u{10000}"),
            "abc\td\ne\rfg\u{10000}"
        );
    }

    #[test]
    fn one_case_per_task_with_totals_and_escaped_text() {
        let tasks = [
            task("1", Status::Done, None),
            task(
                "2",
                Status::Failed,
                Some("agent exited with 1: \"bad\" <x> \u{7}"),
            ),
            task("3", Status::Skipped, Some("depends on 2, which failed")),
        ];
        let xml = document(
            "feat&<>",
            Some("2026-01-01T00:00:00"),
            3.25,
            &tasks,
            Path::new("/"),
        )
        .unwrap();
        let xml = String::from_utf8(xml).unwrap();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert!(xml.contains(
            r#"<testsuite name="feat&amp;&lt;&gt;" tests="3" failures="1" errors="0" skipped="1" time="3.250" timestamp="2026-01-01T00:00:00">"#
        ), "{xml}");
        assert!(
            xml.contains(r#"name="2 Task &lt;2&gt; &amp; co" time="1.500""#),
            "{xml}"
        );
        assert!(xml.contains(
            r#"<failure message="agent exited with 1: &quot;bad&quot; &lt;x&gt; " type="failed">"#
        ), "{xml}");
        assert!(
            xml.contains(r#"<skipped message="depends on 2, which failed"/>"#),
            "{xml}"
        );
        // Well-formed: a parser reads it to the end.
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut cases = 0;
        loop {
            match reader.read_event().unwrap() {
                Xml::Eof => break,
                Xml::Start(e) | Xml::Empty(e) if e.name().as_ref() == "testcase" => cases += 1,
                _ => {}
            }
        }
        assert_eq!(cases, 3);
    }
}
