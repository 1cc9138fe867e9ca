//! Task lists a user can write that once crashed the parser or kept it busy for minutes: each
//! is answered by `check` and `--dry-run` with a positioned error and exit 2, never a panic.

use std::path::PathBuf;
use std::process::Output;

mod support;

use support::{FEATURE, git_in, plan_line, plan_task, spec_exec_in, text, write};

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Repo {
    fn with_tasks(tasks: &[u8]) -> Repo {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("repo");
        write(&root.join("Cargo.toml"), "[workspace]\n");
        let path = root
            .join("documentation/features")
            .join(FEATURE)
            .join("tasks.md");
        write(&path, "");
        std::fs::write(&path, tasks).expect("tasks.md");
        git_in(&root, &["init", "-q", "-b", "main"]);
        Repo { _tmp: tmp, root }
    }

    fn run(&self, args: &[&str]) -> Output {
        spec_exec_in(&self.root, args).output().expect("runs")
    }
}

/// `check` and `--dry-run` both exit 2 and name `position` (`line:col` in tasks.md) with
/// `message`; neither panics. Returns the output of `check`.
fn refused(tasks: &[u8], position: &str, message: &str) -> String {
    let repo = Repo::with_tasks(tasks);
    let mut first = None;
    for args in [vec!["check", FEATURE], vec![FEATURE, "--dry-run"]] {
        let out = repo.run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let at = format!("documentation/features/{FEATURE}/tasks.md:{position}");
        assert!(stderr.contains(&at), "{args:?}: no `{at}` in:\n{stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: no `{message}` in:\n{stderr}"
        );
        first.get_or_insert(stderr);
    }
    first.unwrap_or_default()
}

#[test]
fn a_panic_inside_the_markdown_parser_is_a_positioned_error() {
    let stderr = refused(
        b"- [ ] 1. Build it\n\n1. ```sh\n*",
        "4:1",
        "could not parse this file",
    );
    assert!(
        stderr.contains("help: change the markdown here"),
        "{stderr}"
    );
}

#[test]
fn a_dependency_phrase_on_a_setext_headings_second_line_is_found_there() {
    // An emoji on the first line once put the phrase's offset inside a character (a panic);
    // without it the error pointed at the first line.
    for first in ["Done ✅ see below", "Done see below"] {
        let tasks =
            format!("# Tasks\n\n{first}\nSetup (Dependencies: Track Z)\n---\n\n- [ ] 1. Do it\n");
        refused(tasks.as_bytes(), "4:28", "dependency on unknown track `Z`");
    }
}

#[test]
fn lists_nested_too_deep_are_refused_at_the_level_too_deep() {
    let mut tasks = "- [ ] 1. Top\n".to_owned();
    for depth in 1..40 {
        tasks.push_str(&"  ".repeat(depth));
        tasks.push_str("- deeper\n");
    }
    refused(tasks.as_bytes(), "33:65", "nested more than 32 deep");
    let one_line = "- [ ] 1. Top\n".to_owned() + &"- ".repeat(500) + "x\n";
    refused(one_line.as_bytes(), "2:65", "nested more than 32 deep");
}

/// What looks like a code fence but is none to markdown (indented 4 columns, or left open
/// in a list item that ends) does not hide what follows from the limits.
#[test]
fn a_fence_markdown_does_not_open_hides_nothing_from_the_limits() {
    let nest = |lead: &str| {
        let mut tasks = lead.to_owned();
        for depth in 0..40 {
            tasks.push_str(&"  ".repeat(depth));
            tasks.push_str(&format!("- [ ] {depth}. t\n"));
        }
        tasks
    };
    refused(
        nest("    ```\n\n").as_bytes(),
        "35:65",
        "nested more than 32 deep",
    );
    refused(
        nest("- [ ] 100. first\n  ```\n\nends the item\n\n").as_bytes(),
        "38:65",
        "nested more than 32 deep",
    );
}

#[test]
fn a_line_longer_than_64_kib_is_refused_outside_code_blocks() {
    let long = "word ".repeat(14_000);
    let tasks = format!("- [ ] 1. Do it\n\n{long}\n");
    refused(tasks.as_bytes(), "3:1", "a line of 70001 bytes");
    // In a code block it is code, and fine.
    let repo = Repo::with_tasks(format!("- [ ] 1. Do it\n\n```\n{long}\n```\n").as_bytes());
    let out = repo.run(&["check", FEATURE]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn more_than_50_000_tasks_are_refused_at_the_one_too_many() {
    let tasks: String = (1..=50_001).map(|i| format!("- [ ] {i}. T\n")).collect();
    refused(tasks.as_bytes(), "50001:1", "more than 50000 tasks");
}

#[test]
fn a_paragraph_of_thousands_of_emphasis_markers_is_refused() {
    let tasks = format!("- [ ] 1. Do it\n\n{}\n", "*_".repeat(16_000));
    refused(tasks.as_bytes(), "3:1", "emphasis or link markers");
}

#[test]
fn lone_carriage_returns_end_lines_and_each_task_has_its_own_box() {
    // Old Mac line endings: each task's checkbox is on its own line, not the file's first.
    let repo = Repo::with_tasks(b"- [ ] 1. One\r- [x] 2. Two\r  - _Dependencies: Task 9_\r");
    let out = repo.run(&[FEATURE, "--dry-run", "--message-format", "json"]);
    let plan = plan_line(&out);
    assert_eq!(plan_task(&plan, "1")["state"], "pending");
    assert_eq!(plan_task(&plan, "2")["state"], "done");
    assert_eq!(plan_task(&plan, "2")["line"], 2);
    let check = repo.run(&["check", FEATURE]);
    let stderr = text(&check.stderr);
    assert!(
        stderr.contains(&format!("documentation/features/{FEATURE}/tasks.md:3:25")),
        "{stderr}"
    );
}
