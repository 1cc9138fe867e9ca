//! The feature report (`.git/spec-exec/<feature>/report.{md,json}`): one picture of a feature
//! over the runs that resumed it, rewritten by every run.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::Value;
use support::{Scratch, shell_task, tasks_md};

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_resumed_feature_has_one_report_with_every_task_and_its_runs() {
    let s = Scratch::new(&tasks_md(&[
        shell_task("1", "Write one", "", "echo one > one.txt"),
        shell_task(
            "2",
            "Write two",
            "1",
            "test -n \"${TWO_FIXED:-}\"; echo two > two.txt",
        ),
    ]));
    let first = s.shell_run(&[]);
    first.assert_code(1);
    assert_eq!(first.status("2"), "failed");
    let first_dir = s.run_dir();
    let first_id = first_dir.file_name().unwrap().to_str().unwrap().to_owned();
    let first_json = std::fs::read(first_dir.join("report.json")).unwrap();
    let first_md = std::fs::read(first_dir.join("report.md")).unwrap();

    // After the first run: task 2 failed there.
    let report = read_json(&s.state_dir().join("report.json"));
    assert_eq!(report["feature"], "demo");
    assert_eq!(report["tasks"][1]["status"], "failed", "{report:#}");

    // A report that cannot be read is noted, and fails nothing.
    support::write(&s.state_dir().join("runs/0-broken/report.json"), "{ cut sh");

    let mut second = s.shell_run_command(&[]);
    second.env("TWO_FIXED", "1");
    let second = support::Run::of(second);
    second.assert_code(0);
    assert_eq!(second.status("2"), "done");
    let second_id = s
        .run_dirs()
        .into_iter()
        .map(|d| d.file_name().unwrap().to_str().unwrap().to_owned())
        .find(|id| *id != first_id && id != "0-broken")
        .unwrap();

    let report = read_json(&s.state_dir().join("report.json"));
    let tasks: Vec<(String, String, Vec<String>)> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["status"].as_str().unwrap().to_owned(),
                t["runs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        tasks,
        vec![
            ("1".to_owned(), "done".to_owned(), vec![first_id.clone()]),
            (
                "2".to_owned(),
                "done".to_owned(),
                vec![second_id.clone(), first_id.clone()]
            ),
        ],
        "{report:#}"
    );
    assert_eq!(report["totals"]["done"], 2);
    assert_eq!(report["runs"], serde_json::json!([second_id, first_id]));
    assert_eq!(
        report["tasks"][1]["commit"].as_str(),
        Some(s.tip("2").as_str())
    );
    assert_eq!(report["tasks"][1]["branch"], "spec/demo/2");
    assert_eq!(
        report["unreadable"][0]["path"], "runs/0-broken/report.json",
        "{report:#}"
    );

    let md = std::fs::read_to_string(s.state_dir().join("report.md")).unwrap();
    assert!(md.starts_with("# Feature `demo`\n"), "{md}");
    assert!(md.contains("2 tasks: 2 done, over 2 runs"), "{md}");
    let tip2 = s.tip("2");
    assert!(
        md.contains(&format!(
            "| 2 | Write two | done | `spec/demo/2` | {} | `{second_id}`, `{first_id}` |",
            &tip2[..10]
        )),
        "{md}"
    );
    assert!(
        md.contains("`runs/0-broken/report.json` could not be read"),
        "{md}"
    );

    // The first run's own report is as it was.
    assert_eq!(
        std::fs::read(first_dir.join("report.json")).unwrap(),
        first_json
    );
    assert_eq!(
        std::fs::read(first_dir.join("report.md")).unwrap(),
        first_md
    );
}
