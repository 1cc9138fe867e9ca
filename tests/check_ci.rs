//! `check` in CI: GitHub workflow commands and step summary, `--approved`, `--changed-since`;
//! and `--junit` on a run. Real repositories and the built binary.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::borrow::BorrowMut;
use std::path::Path;
use std::process::{Command, Output};

use support::{FEATURE, Project, Scratch, shell_task, tasks_md, text, write};

/// A task list whose third task depends on a task no task defines.
const MALFORMED: &str = "# Tasks\n\n- [ ] 1. One\n  - _Dependencies: None_\n\n- [ ] 2. Two\n  - _Dependencies: Task 1, Task 7_\n";

/// The line and column (1-based) of the first `needle` in `text`.
fn line_col(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).expect("needle");
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn stdout(out: &Output) -> String {
    text(&out.stdout)
}

fn context(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The output of `cmd`, which must have exited with `code`.
#[track_caller]
fn exits(mut cmd: impl BorrowMut<Command>, code: i32) -> Output {
    let out = cmd.borrow_mut().output().unwrap();
    assert_eq!(out.status.code(), Some(code), "{}", context(&out));
    out
}

/// Asserts that the standard error of `out` contains `needle`.
#[track_caller]
fn assert_stderr(out: &Output, needle: &str) {
    assert!(text(&out.stderr).contains(needle), "{}", context(out));
}

/// The workflow command lines of an output.
fn commands(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|l| l.starts_with("::"))
        .map(str::to_owned)
        .collect()
}

/// Asserts that a workflow command line of `out` starts with `prefix`.
#[track_caller]
fn assert_command(out: &Output, prefix: &str) {
    assert!(
        commands(out).iter().any(|c| c.starts_with(prefix)),
        "{}",
        context(out)
    );
}

#[test]
fn github_format_points_at_the_error_from_the_repository_root() {
    // The workspace is a directory of the repository: GitHub names files from the root.
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    let ws = repo.join("crates-root");
    support::write_project(&ws, Project::Package);
    let tasks = ws
        .join("documentation/features")
        .join(FEATURE)
        .join("tasks.md");
    write(&tasks, MALFORMED);
    support::git_in(repo, &["init", "-q", "-b", "main"]);
    let out = exits(
        support::spec_exec_in(&ws, &["check", "--message-format", "github"]),
        2,
    );
    let (line, col) = line_col(MALFORMED, "Task 7");
    let (line, col) = (line, col + "Task ".len());
    let expected = format!(
        "::error file=crates-root/documentation/features/{FEATURE}/tasks.md,line={line},col={col},title=dependency on unknown task `7`::"
    );
    let all = commands(&out);
    assert!(
        all.iter().any(|c| c.starts_with(&expected)),
        "{expected}\n{}",
        context(&out)
    );
    // The human rendering is there too, on stderr, with the path as the user names it.
    assert_stderr(
        &out,
        &format!("documentation/features/{FEATURE}/tasks.md:{line}:{col}"),
    );
    // The message's lines are escaped into one line.
    let error = all.iter().find(|c| c.starts_with(&expected)).unwrap();
    assert!(error.contains("%0Ahelp: "), "{error}");
}

#[test]
fn github_actions_turns_the_commands_on_unless_json_or_human_is_asked_for() {
    let s = Scratch::unapproved(MALFORMED, Project::Workspace);
    let expected = format!("::error file=documentation/features/{FEATURE}/tasks.md,line=");
    let auto = exits(s.spec_exec(&["check"]).env("GITHUB_ACTIONS", "true"), 2);
    assert_command(&auto, &expected);
    // Every command's diagnostics, not only check's: a run refusing the list.
    let run = exits(
        s.spec_exec(&["run", FEATURE, "--agent", "shell"])
            .env("GITHUB_ACTIONS", "true"),
        2,
    );
    assert_command(&run, &expected);
    // Not outside GitHub Actions.
    let plain = s.spec_exec(&["check"]).output().unwrap();
    assert!(commands(&plain).is_empty(), "{}", context(&plain));
    // Not with JSON: every stdout line stays a JSON object.
    let json = exits(
        s.spec_exec(&["check", "--message-format", "json"])
            .env("GITHUB_ACTIONS", "true"),
        2,
    );
    assert!(
        stdout(&json).lines().all(|l| l.starts_with('{')),
        "{}",
        context(&json)
    );
    // An explicit human format keeps them off.
    let human = s
        .spec_exec(&["check", "--message-format", "human"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert!(commands(&human).is_empty(), "{}", context(&human));
}

#[test]
fn warnings_and_diagnostics_without_a_place_become_commands_too() {
    // An agent name with no command and no persona file: a warning at the line naming it.
    let s = Scratch::unapproved(
        "# Tasks\n\n- [ ] 1. One\n  - _Agent: nobody-here_\n  - _Dependencies: None_\n",
        Project::Workspace,
    );
    let out = exits(s.spec_exec(&["check", "--message-format", "github"]), 0);
    assert_command(
        &out,
        &format!("::warning file=documentation/features/{FEATURE}/tasks.md,line=4,"),
    );
    // A feature that does not exist: an error with no file.
    let out = exits(
        s.spec_exec(&["check", "no-such-feature", "--message-format", "github"]),
        2,
    );
    let all = commands(&out);
    assert!(
        all.iter()
            .any(|c| c.starts_with("::error title=") && c.contains("no-such-feature")),
        "{}",
        context(&out)
    );
}

#[test]
fn the_step_summary_gets_a_table_appended() {
    let s = Scratch::new(MALFORMED.replace(", Task 7", "").as_str());
    let summary = s.repo().join("../summary.md");
    write(&summary, "earlier step output\n");
    for _ in 0..2 {
        exits(
            s.spec_exec(&["check"])
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_STEP_SUMMARY", &summary),
            0,
        );
    }
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("earlier step output\n"), "{md}");
    assert_eq!(
        md.matches("| Feature | Tasks | Pending | Approval | Errors | Warnings |")
            .count(),
        2,
        "{md}"
    );
    assert_eq!(
        md.matches(&format!("| {FEATURE} | 2 | 2 | approved | 0 | 0 |"))
            .count(),
        2,
        "{md}"
    );
    // Not with JSON.
    exits(
        s.spec_exec(&["check", "--message-format", "json"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &summary),
        0,
    );
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), md);
}

#[test]
fn approved_fails_an_unapproved_or_stale_list_and_passes_an_approved_one() {
    let tasks = "# Tasks\n\n- [ ] 1. One\n  - _Dependencies: None_\n";
    let s = Scratch::unapproved(tasks, Project::Workspace);
    let path = format!("documentation/features/{FEATURE}/tasks.md");
    // Without --approved an unapproved list passes the check.
    exits(s.spec_exec(&["check"]), 0);

    let out = exits(s.spec_exec(&["check", "--approved"]), 2);
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "the task list of `{FEATURE}` has not been approved"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("--> {path}")), "{err}");
    assert!(
        err.contains(&format!("cargo spec-exec approve {FEATURE}")),
        "{err}"
    );

    s.approve();
    exits(s.spec_exec(&["check", "--approved"]), 0);
    // Ticking keeps the approval.
    write(&s.tasks_path(), &support::tick(&s.tasks_md(), "1"));
    exits(s.spec_exec(&["check", "--approved"]), 0);

    // Editing a task voids it.
    write(
        &s.tasks_path(),
        &s.tasks_md().replace("1. One", "1. One, edited"),
    );
    let out = exits(
        s.spec_exec(&["check", "--approved", "--message-format", "github"]),
        2,
    );
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "the task list of `{FEATURE}` changed since it was approved"
        )),
        "{err}"
    );
    assert_command(&out, &format!("::error file={path},title="));
}

#[test]
fn changed_since_checks_only_the_features_that_changed() {
    // `demo` is broken: checking it fails. `other` is fine.
    let s = Scratch::unapproved(MALFORMED, Project::Workspace);
    let other = s.repo().join("documentation/features/other");
    write(
        &other.join("tasks.md"),
        "# Tasks\n\n- [ ] 1. One\n  - _Dependencies: None_\n",
    );
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "Another feature"]);
    s.git(&["tag", "base"]);

    // Nothing changed: nothing is checked.
    let out = exits(s.spec_exec(&["check", "--changed-since", "base"]), 0);
    assert_stderr(&out, "no feature changed since `base`: nothing to check");

    // A committed change to `other`'s spec: only it is checked.
    write(&other.join("design.md"), "# Design\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "Design other"]);
    let out = exits(
        s.spec_exec(&[
            "check",
            "--changed-since",
            "base",
            "--message-format",
            "json",
        ]),
        0,
    );
    let checked: Vec<String> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "check")
        .map(|v| v["feature"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(checked, ["other"], "{}", context(&out));
    assert!(
        text(&out.stderr).contains(&format!(
            "1 feature changed since `base`: other; unchanged, not checked: {FEATURE}"
        )),
        "{}",
        context(&out)
    );

    // An untracked new file in `demo`: both are checked, and `demo` fails.
    write(&s.tasks_path().with_file_name("notes.md"), "new\n");
    let out = exits(s.spec_exec(&["check", "--changed-since", "base"]), 2);
    assert_stderr(&out, "2 features changed since `base`");
    std::fs::remove_file(s.tasks_path().with_file_name("notes.md")).unwrap();

    // An unstaged change, and a staged one, since HEAD.
    for stage in [false, true] {
        write(&other.join("design.md"), &format!("# Design {stage}\n"));
        if stage {
            s.git(&["add", "-A"]);
        }
        let out = exits(s.spec_exec(&["check", "--changed-since", "HEAD"]), 0);
        assert!(
            text(&out.stderr).contains(&format!(
                "1 feature changed since `HEAD`: other; unchanged, not checked: {FEATURE}"
            )),
            "{}",
            context(&out)
        );
    }

    // A revision the repository does not have.
    let out = exits(s.spec_exec(&["check", "--changed-since", "no-such-rev"]), 2);
    assert_stderr(&out, "--changed-since `no-such-rev` is not a revision");
}

/// The attribute `name` of the first element named `element` in `xml`.
fn attribute(xml: &str, element: &str, name: &str) -> String {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => panic!("no <{element}> in\n{xml}"),
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.name().as_ref() == element =>
            {
                let a = e
                    .try_get_attribute(name)
                    .unwrap()
                    .unwrap_or_else(|| panic!("no {name} on <{element}>"));
                return a
                    .normalized_value(quick_xml::XmlVersion::Explicit1_0)
                    .unwrap()
                    .into_owned();
            }
            _ => {}
        }
    }
}

/// Every event of `xml` read, to its end: it is well-formed.
fn read_to_end(xml: &str) -> usize {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut cases = 0;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => return cases,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.name().as_ref() == "testcase" =>
            {
                cases += 1;
            }
            _ => {}
        }
    }
}

#[test]
fn junit_has_a_case_per_task_with_the_failure_and_its_log() {
    let s = Scratch::package(&tasks_md(&[
        shell_task("1", "Write one", "", "echo one > one.txt"),
        shell_task(
            "2",
            "Break <it> & go",
            "",
            r"echo junit-marker-line; printf 'red\033[31m\001bell\n'; exit 3",
        ),
        shell_task("3", "After two", "2", "echo three > three.txt"),
    ]));
    let run = s.shell_run(&[
        "--no-verify",
        "--continue-on-error",
        "--junit",
        "target/ci/junit.xml",
    ]);
    run.assert_code(1);
    let xml = std::fs::read_to_string(s.repo().join("target/ci/junit.xml")).unwrap();
    assert_eq!(read_to_end(&xml), 3, "{xml}");
    assert_eq!(attribute(&xml, "testsuite", "name"), FEATURE);
    assert_eq!(attribute(&xml, "testsuite", "tests"), "3", "{xml}");
    assert_eq!(attribute(&xml, "testsuite", "failures"), "1", "{xml}");
    assert_eq!(attribute(&xml, "testsuite", "skipped"), "1", "{xml}");
    assert_eq!(attribute(&xml, "testcase", "classname"), FEATURE);
    assert_eq!(attribute(&xml, "testcase", "name"), "1 Write one");
    assert!(
        xml.contains(r#"<testcase classname="demo" name="2 Break &lt;it&gt; &amp; go""#),
        "{xml}"
    );
    let reason = run.reason("2");
    assert_eq!(attribute(&xml, "failure", "message"), reason, "{xml}");
    // The log's tail, without the control characters XML forbids.
    assert!(xml.contains("junit-marker-line"), "{xml}");
    assert!(xml.contains("redbell"), "{xml}");
    assert!(
        !xml.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')),
        "{xml:?}"
    );
    assert_eq!(
        attribute(&xml, "skipped", "message"),
        run.reason("3"),
        "{xml}"
    );
    // Nothing half-written beside it.
    let names: Vec<String> = std::fs::read_dir(s.repo().join("target/ci"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["junit.xml"]);
}

#[test]
fn junit_to_a_directory_is_refused_before_anything_runs() {
    let s = Scratch::package(&tasks_md(&[shell_task("1", "One", "", "echo 1 > one.txt")]));
    let run = s.shell_run(&["--no-verify", "--junit", "src"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("--junit `src` is a directory"),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty(), "{}", run.context());
    assert!(!Path::new(&s.repo().join("one.txt")).exists());
}

#[test]
fn junit_is_written_when_the_run_is_interrupted() {
    let s = Scratch::package(&tasks_md(&[shell_task(
        "1",
        "Slow",
        "",
        r#"touch "$HELPER_CTL/started"; sleep 60"#,
    )]));
    let child = s
        .shell_run_command(&["--no-verify", "--junit", "junit.xml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    support::wait_until("the task never started", || {
        s.ctl().join("started").exists()
    });
    support::sigint(child.id());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", context(&out));
    let xml = std::fs::read_to_string(s.repo().join("junit.xml")).unwrap();
    assert_eq!(read_to_end(&xml), 1, "{xml}");
    // The run failed on it (exit 130): a failure, said once.
    assert_eq!(attribute(&xml, "testsuite", "failures"), "1", "{xml}");
    assert_eq!(attribute(&xml, "testsuite", "skipped"), "0", "{xml}");
    assert_eq!(
        attribute(&xml, "failure", "message"),
        "interrupted",
        "{xml}"
    );
}

/// The `::error` lines of an output whose title is `title`.
fn errors_titled<'a>(out: &'a [String], title: &str) -> Vec<&'a String> {
    out.iter()
        .filter(|c| c.starts_with("::error ") && c.contains(&format!("title={title}::")))
        .collect()
}

#[test]
fn junit_never_replaces_a_file_of_the_repository() {
    let s = Scratch::package(&tasks_md(&[shell_task("1", "One", "", "echo 1 > one.txt")]));
    let before = s.tasks_md();
    let tasks = format!("documentation/features/{FEATURE}/tasks.md");
    let design = format!("documentation/features/{FEATURE}/report.xml");
    let dir =
        format!("in the directory of feature `{FEATURE}` (`documentation/features/{FEATURE}`)");
    for (path, why) in [
        (tasks.as_str(), dir.as_str()),
        (design.as_str(), dir.as_str()),
        ("README.md", "`README.md`, a file git tracks"),
    ] {
        let run = s.shell_run(&["--no-verify", "--junit", path]);
        run.assert_code(2);
        assert!(
            run.stderr.contains(&format!(
                "--junit `{path}` is {why}: the report would replace it"
            )),
            "{}",
            run.context()
        );
        assert!(run.started().is_empty(), "{}", run.context());
    }
    assert_eq!(s.tasks_md(), before);
    assert_eq!(
        std::fs::read_to_string(s.repo().join("README.md")).unwrap(),
        "scratch\n"
    );
    // A link to a tracked file is refused too.
    std::os::unix::fs::symlink("README.md", s.repo().join("junit.xml")).unwrap();
    let run = s.shell_run(&["--no-verify", "--junit", "junit.xml"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("a file git tracks"),
        "{}",
        run.context()
    );
}

#[test]
fn an_unwritable_junit_path_is_refused_before_any_agent() {
    let s = Scratch::package(&tasks_md(&[shell_task("1", "One", "", "echo 1 > one.txt")]));
    for path in ["Cargo.toml/j.xml", "README.md/sub/j.xml"] {
        let run = s.shell_run(&["--no-verify", "--junit", path]);
        run.assert_code(2);
        assert!(
            run.stderr
                .contains(&format!("--junit `{path}`: could not create its directory")),
            "{}",
            run.context()
        );
        assert!(run.started().is_empty(), "{}", run.context());
    }
    assert!(!s.repo().join("one.txt").exists());
}

#[test]
fn a_junit_report_lost_at_the_end_keeps_the_run_report_and_names_junit() {
    // The task puts a file where the report's directory was: only the JUnit file is lost.
    let s = Scratch::package(&tasks_md(&[shell_task(
        "1",
        "One",
        "",
        r#"rm -rf "$HELPER_CTL/out" && touch "$HELPER_CTL/out" && echo 1 > one.txt"#,
    )]));
    let junit = s.ctl().join("out/junit.xml");
    let run = s.shell_run(&["--no-verify", "--junit", junit.to_str().unwrap()]);
    run.assert_code(1);
    assert_eq!(run.status("1"), "done", "{}", run.context());
    let finished = run.run_finished();
    assert!(finished["report"].is_string(), "{}", run.context());
    let error = finished["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("the JUnit report (--junit) was not written: "),
        "{}",
        run.context()
    );
}

#[test]
fn junit_follows_the_umask_and_writes_through_a_link() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = Scratch::package(&tasks_md(&[shell_task("1", "One", "", "echo 1 > one.txt")]));
    // The mode any new file gets here.
    let probe = s.ctl().join("probe");
    std::fs::write(&probe, "").unwrap();
    let usual = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    let out = s.ctl().join("reports");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("real.xml"), "old").unwrap();
    std::os::unix::fs::symlink("real.xml", out.join("junit.xml")).unwrap();
    let run = s.shell_run(&[
        "--no-verify",
        "--junit",
        out.join("junit.xml").to_str().unwrap(),
    ]);
    run.assert_code(0);
    let link = std::fs::symlink_metadata(out.join("junit.xml")).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced");
    let xml = std::fs::read_to_string(out.join("real.xml")).unwrap();
    assert_eq!(read_to_end(&xml), 1, "{xml}");
    // The usual mode, not a temporary file's 0600.
    let mode = std::fs::metadata(out.join("real.xml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, usual);
}

/// A run in a GitHub Actions step, with human output (and so its workflow commands).
fn github_run(s: &Scratch, extra: &[&str]) -> Output {
    let mut args = vec!["run", FEATURE, "--agent", "shell", "--no-verify"];
    args.extend_from_slice(extra);
    s.spec_exec(&args)
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap()
}

#[test]
fn a_failed_task_is_annotated_once_at_its_line() {
    let md = tasks_md(&[
        shell_task("1", "One", "", "echo 1 > one.txt"),
        shell_task("2", "Two", "", "echo broken; exit 3"),
    ]);
    let s = Scratch::package(&md);
    // Its line in tasks.md as it is, approval and all.
    let (line, _) = line_col(&s.tasks_md(), "- [ ] 2.");
    let out = github_run(&s, &["--continue-on-error"]);
    assert_eq!(out.status.code(), Some(1), "{}", context(&out));
    let all = commands(&out);
    let failed = errors_titled(&all, "task 2 failed");
    assert_eq!(failed.len(), 1, "{}", context(&out));
    assert!(
        failed[0].starts_with(&format!(
            "::error file=documentation/features/{FEATURE}/tasks.md,line={line},title=task 2 failed::"
        )),
        "{}",
        context(&out)
    );
    assert!(failed[0].contains("exit"), "{}", context(&out));
    assert!(errors_titled(&all, "task 1 failed").is_empty());
}

#[test]
fn a_task_that_was_not_ticked_fails_in_junit_and_is_annotated_at_its_line() {
    let md = tasks_md(&[shell_task(
        "1",
        "Retitle",
        "",
        r#"t="$HELPER_USER_TASKS"; sed 's/Retitle[*][*]/Retitled**/' "$t" > "$t.new" && cat "$t.new" > "$t" && rm "$t.new" && echo 1 > one.txt"#,
    )]);
    let s = Scratch::package(&md);
    let (line, _) = line_col(&s.tasks_md(), "- [ ] 1.");
    let out = github_run(&s, &["--junit", "junit.xml"]);
    assert_eq!(out.status.code(), Some(1), "{}", context(&out));
    let all = commands(&out);
    let ticks: Vec<&String> = all
        .iter()
        .filter(|c| c.starts_with("::error ") && c.contains("not ticked"))
        .collect();
    assert_eq!(ticks.len(), 1, "{}", context(&out));
    assert!(
        ticks[0].starts_with(&format!(
            "::error file=documentation/features/{FEATURE}/tasks.md,line={line},"
        )),
        "{}",
        context(&out)
    );
    // Said once.
    let message = ticks[0].split_once("title=").unwrap().1;
    let title = message.split_once("::").unwrap().0;
    assert_eq!(title.matches("not ticked").count(), 1, "{title}");
    let xml = std::fs::read_to_string(s.repo().join("junit.xml")).unwrap();
    assert_eq!(attribute(&xml, "testsuite", "failures"), "1", "{xml}");
    assert!(
        attribute(&xml, "failure", "message").contains("not ticked"),
        "{xml}"
    );
}

#[test]
fn a_failed_integration_is_annotated() {
    // The integration's verification fails: every task is done, the branch is not built.
    let s = Scratch::package(&tasks_md(&[shell_task("1", "One", "", "echo 1 > one.txt")]));
    let out = github_run(&s, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", context(&out));
    s.git(&["branch", "-D", &format!("spec/{FEATURE}/integration")]);
    let out = exits(
        s.spec_exec(&["land", FEATURE, "--verify", "sh -c 'exit 4'"])
            .env("GITHUB_ACTIONS", "true"),
        1,
    );
    let all = commands(&out);
    assert_eq!(
        errors_titled(&all, &format!("spec/{FEATURE}/integration was not built")).len(),
        1,
        "{}",
        context(&out)
    );
}

#[test]
fn with_nothing_to_do_an_unwritable_junit_is_refused_before_the_integration() {
    let s = Scratch::package(&tasks_md(&[shell_task("1", "One", "", "echo 1 > one.txt")]));
    s.shell_run(&["--no-verify"]).assert_code(0);
    let integration = format!("spec/{FEATURE}/integration");
    s.git(&["branch", "-D", &integration]);
    let run = s.shell_run(&["--no-verify", "--junit", "Cargo.toml/j.xml"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("--junit `Cargo.toml/j.xml`: could not create its directory"),
        "{}",
        run.context()
    );
    assert!(
        !s.git_ok(&["rev-parse", "--verify", "-q", &integration]),
        "{}",
        run.context()
    );
}

/// The features a `check --message-format json` checked.
fn checked(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "check")
        .map(|v| v["feature"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn changed_since_sees_the_manifest_the_personas_and_a_linked_task_list() {
    let s = Scratch::unapproved(
        "# Tasks\n\n- [ ] 1. One\n  - _Dependencies: None_\n",
        Project::Workspace,
    );
    // `other`'s tasks.md is a link to a file elsewhere in the repository.
    let other = s.repo().join("documentation/features/other");
    write(&s.repo().join("plans/other-tasks.md"), MALFORMED);
    std::fs::create_dir_all(&other).unwrap();
    std::os::unix::fs::symlink("../../../plans/other-tasks.md", other.join("tasks.md")).unwrap();
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "Another feature"]);
    let json = |rev: &str| {
        s.spec_exec(&["check", "--changed-since", rev, "--message-format", "json"])
            .output()
            .unwrap()
    };
    assert!(checked(&json("HEAD")).is_empty());

    // The file the link leads to changed.
    write(
        &s.repo().join("plans/other-tasks.md"),
        &format!("{MALFORMED}\n"),
    );
    let out = json("HEAD");
    assert_eq!(checked(&out), ["other"], "{}", context(&out));
    // Its annotations name the file git tracks.
    let out = s
        .spec_exec(&[
            "check",
            "--changed-since",
            "HEAD",
            "--message-format",
            "github",
        ])
        .output()
        .unwrap();
    assert_command(&out, "::error file=plans/other-tasks.md,line=");
    s.git(&["checkout", "-q", "--", "plans"]);

    // The manifest (its configuration is every feature's) and a persona file.
    write(
        &s.repo().join("Cargo.toml"),
        "[workspace]\nmembers = [\"crates/tiny\"]\nresolver = \"2\"\n\n[workspace.metadata.spec-exec]\nmax-agents = 2\n",
    );
    let out = json("HEAD");
    assert_eq!(checked(&out), [FEATURE, "other"], "{}", context(&out));
    s.git(&["checkout", "-q", "--", "Cargo.toml"]);
    write(&s.repo().join(".claude/agents/writer.md"), "You write.\n");
    let out = json("HEAD");
    assert_eq!(checked(&out), [FEATURE, "other"], "{}", context(&out));
}

#[test]
fn changed_since_says_what_it_left_out_in_json_and_why_it_cannot_compare() {
    let s = Scratch::unapproved(
        "# Tasks\n\n- [ ] 1. One\n  - _Dependencies: None_\n",
        Project::Workspace,
    );
    let out = exits(
        s.spec_exec(&[
            "check",
            "--changed-since",
            "HEAD",
            "--message-format",
            "json",
        ]),
        0,
    );
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [serde_json::json!({"type": "check-unchanged", "since": "HEAD", "features": [FEATURE]})],
        "{}",
        context(&out)
    );

    // An empty branch name, as `origin/${{ github.base_ref }}` on a push.
    let out = exits(s.spec_exec(&["check", "--changed-since", "origin/"]), 2);
    assert_stderr(&out, "--changed-since `origin/` names no branch");

    // No repository.
    let tmp = tempfile::tempdir().unwrap();
    support::write_project(tmp.path(), Project::Package);
    write(
        &tmp.path().join("documentation/features/demo/tasks.md"),
        "# Tasks\n\n- [ ] 1. One\n",
    );
    let out = exits(
        support::spec_exec_in(tmp.path(), &["check", "--changed-since", "HEAD"])
            .env("GIT_CEILING_DIRECTORIES", tmp.path().parent().unwrap()),
        2,
    );
    assert_stderr(&out, "--changed-since needs a git repository");
}

#[test]
fn a_configuration_error_is_annotated_at_the_workspace_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    let ws = repo.join("ws");
    write(
        &ws.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.spec-exec]\nmax-agents = \"many\"\n",
    );
    write(&ws.join("src/lib.rs"), "");
    write(&repo.join("README.md"), "the repository\n");
    support::git_in(repo, &["init", "-q", "-b", "main"]);
    let out = exits(
        support::spec_exec_in(&ws, &["check", "--message-format", "github"]),
        2,
    );
    assert_command(&out, "::error file=ws/Cargo.toml,");
}

#[test]
fn the_step_summary_says_why_a_check_could_not_be_made_and_what_failed_to_write_it() {
    let s = Scratch::new("# Tasks\n\n- [ ] 1. One\n  - _Dependencies: None_\n");
    let summary = s.ctl().join("summary.md");
    exits(
        s.spec_exec(&["check", "no-such-feature"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &summary),
        2,
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("The check could not be made: no feature `no-such-feature`"),
        "{md}"
    );

    let out = exits(
        s.spec_exec(&["check"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", "/dev/full"),
        0,
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("could not write the step summary to `/dev/full` (GITHUB_STEP_SUMMARY)"),
        "{err}"
    );
    assert!(!err.contains("this file"), "{err}");
    assert!(!err.contains("outside a step"), "{err}");
}

#[test]
fn a_feature_named_twice_is_checked_once() {
    let s = Scratch::new("# Tasks\n\n- [ ] 1. One\n  - _Dependencies: None_\n");
    let path = format!("documentation/features/{FEATURE}");
    let out = exits(
        s.spec_exec(&["check", FEATURE, FEATURE, &path, "--message-format", "json"]),
        0,
    );
    assert_eq!(checked(&out), [FEATURE], "{}", context(&out));
}

#[test]
fn an_invalid_feature_name_is_escaped_and_points_at_its_directory() {
    let s = Scratch::new("# Tasks\n\n- [ ] 1. One\n  - _Dependencies: None_\n");
    let out = exits(
        s.spec_exec(&["check", "x\ny", "--message-format", "github"]),
        2,
    );
    assert_eq!(commands(&out).len(), 1, "{}", context(&out));
    assert_stderr(&out, "invalid feature name `x\\ny`");
    // A directory of that name: its errors name it.
    write(
        &s.repo().join("documentation/features/c:d/tasks.md"),
        "# Tasks\n\n- [ ] 1. One\n",
    );
    let out = exits(s.spec_exec(&["check", "--message-format", "github"]), 2);
    assert!(
        commands(&out).iter().any(|c| c
            .starts_with("::error file=documentation/features/c%3Ad,title=invalid feature name")),
        "{}",
        context(&out)
    );
}

#[test]
fn a_deps_dry_run_echoes_tasks_md_with_the_workflow_commands_stopped() {
    // A line of the task list that reads as a workflow command once its indent is trimmed.
    let s =
        Scratch::new("# Tasks\n\n- [ ] 1. One\n::warning::from the task list\n\n- [ ] 2. Two\n");
    let answer = s.ctl().join("answer.json");
    write(
        &answer,
        r#"{"tasks": [{"id": "1", "depends_on": []}, {"id": "2", "depends_on": ["1"]}]}"#,
    );
    let agent = format!("sh -c 'cat > /dev/null; cat \"{}\"'", answer.display());
    let out = exits(
        s.spec_exec(&["deps", FEATURE, "--agent", &agent, "--dry-run"])
            .env("GITHUB_ACTIONS", "true"),
        0,
    );
    let stdout = stdout(&out);
    assert!(stdout.contains("::warning::from the task list"), "{stdout}");
    // Between `::stop-commands::TOKEN` and `::TOKEN::`, where the runner runs none.
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("::stop-commands::"))
        .unwrap_or_else(|| panic!("no ::stop-commands::\n{stdout}"));
    let token = &lines[start]["::stop-commands::".len()..];
    let end = lines
        .iter()
        .position(|l| *l == format!("::{token}::"))
        .unwrap_or_else(|| panic!("not resumed\n{stdout}"));
    let echoed = lines
        .iter()
        .position(|l| l.trim_start().starts_with("::warning::from"))
        .unwrap();
    assert!(start < echoed && echoed < end, "{stdout}");
}
