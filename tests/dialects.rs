//! The task-list dialects other than specflow: planned from the bundled fixtures by the built
//! binary, in temp git repositories, and run end to end with a small agent.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

mod support;

use serde_json::Value;
use support::{fixture, plan_line, plan_task, spec_exec_in, text};

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Repo {
    /// A workspace holding one feature, `demo`, with the dialect's fixture as its task list.
    fn new(dialect: &str) -> Repo {
        let tasks =
            fs::read_to_string(fixture(&format!("dialects/{dialect}/tasks.md"))).expect("fixture");
        Repo::with_tasks(&tasks)
    }

    /// A workspace holding one feature, `demo`, with `tasks` as its task list.
    fn with_tasks(tasks: &str) -> Repo {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("repo");
        let spec = root.join("documentation/features/demo");
        fs::create_dir_all(&spec).expect("spec dir");
        fs::write(root.join("Cargo.toml"), "[workspace]\n").expect("manifest");
        fs::write(root.join(".gitignore"), "/target\n").expect("gitignore");
        fs::write(spec.join("tasks.md"), tasks).expect("tasks.md");
        let repo = Repo { _tmp: tmp, root };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Dialect Tester"]);
        repo.git(&["config", "user.email", "dialects@localhost"]);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-qm", "The spec"]);
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.root)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    fn spec_exec(&self, args: &[&str]) -> Output {
        spec_exec_in(&self.root, args)
            .env_remove("CI")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("cargo-spec-exec runs")
    }

    /// The `plan` line of a JSON dry run.
    fn plan(&self, extra: &[&str]) -> Value {
        let mut args = vec!["demo", "--dry-run", "--message-format", "json"];
        args.extend_from_slice(extra);
        plan_line(&self.spec_exec(&args))
    }

    fn tasks_md(&self) -> String {
        fs::read_to_string(self.root.join("documentation/features/demo/tasks.md"))
            .expect("tasks.md")
    }

    fn approve(&self) {
        let out = self.spec_exec(&["approve", "demo"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        self.git(&["commit", "-qam", "Approve"]);
    }
}

fn group(plan: &Value, id: &str) -> Option<u64> {
    plan_task(plan, id)["group"].as_u64()
}

/// The ids task `id` waits for, in the plan's order.
fn waits_for(plan: &Value, id: &str) -> Vec<String> {
    plan_task(plan, id)["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .map(|d| d["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The plan's groups, as lists of ids.
fn groups(plan: &Value) -> Vec<Vec<String>> {
    plan["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            g["tasks"]
                .as_array()
                .expect("tasks")
                .iter()
                .map(|t| t.as_str().expect("an id").to_owned())
                .collect()
        })
        .collect()
}

/// An agent that writes `<id>.done` in its worktree: a change to commit.
const AGENT: &str = "bash -c 'echo \"$SPEC_EXEC_TASK_TITLE\" > \"$SPEC_EXEC_TASK_ID.done\"'";

/// An agent that commits the prompt it was given, as `<id>.prompt.md`.
const PROMPT_KEEPER: &str =
    "bash -c 'cp \"$SPEC_EXEC_PROMPT_FILE\" \"$SPEC_EXEC_TASK_ID.prompt.md\"'";

#[test]
fn spec_kit_phases_run_in_order_and_p_tasks_together() {
    let repo = Repo::new("spec-kit");
    let plan = repo.plan(&[]);
    assert_eq!(plan["dialect"], "spec-kit");
    let expected = [
        ("T001", 1),
        ("T002", 2),
        ("T003", 2),
        ("T004", 3),
        ("T005", 4),
        ("T006", 4),
        // User stories run side by side after the foundation, as the file says they may.
        ("T007", 5),
        ("T010", 5),
        ("T008", 6),
        ("T011", 6),
        ("T009", 7),
        ("T012", 7),
        // Polish waits for both stories.
        ("T013", 8),
        ("T014", 9),
    ];
    for (id, g) in expected {
        assert_eq!(group(&plan, id), Some(g), "group of {id}");
    }
    let t009 = plan_task(&plan, "T009");
    assert_eq!(t009["track"], "US1");
    assert_eq!(t009["files"], serde_json::json!(["crates/sync/src/cli.rs"]));
    assert_eq!(
        t009["title"],
        "Wire push into the CLI in crates/sync/src/cli.rs"
    );
    assert!(
        t009["dependencies"]
            .as_array()
            .expect("deps")
            .iter()
            .any(|d| d["id"] == "T008" && d["source"] == "task"),
        "{t009}"
    );
    assert_eq!(plan_task(&plan, "T002")["parallel"], true);

    // Both stories wire into cli.rs and may run together: check warns, and passes.
    let check = repo.spec_exec(&["check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let err = text(&check.stderr);
    assert!(
        err.contains("tasks T009 and T012 both modify crates/sync/src/cli.rs and may run together; add a dependency"),
        "{err}"
    );
    assert!(err.contains("tasks.md:42:7"), "{err}");
    assert!(err.contains("spec-kit task list"), "{err}");
}

#[test]
fn kiro_optional_tasks_are_planned_or_left_out() {
    let repo = Repo::new("kiro");
    let plan = repo.plan(&[]);
    assert_eq!(plan["dialect"], "kiro");
    assert_eq!(plan_task(&plan, "2.2")["optional"], true);
    assert_eq!(plan_task(&plan, "3.3")["optional"], true);
    // Document order, sub-tasks in order within their parent; 1 is done.
    let order = ["2.1", "2.2", "2.3", "3.1", "3.2", "3.3", "4"];
    for (k, id) in order.iter().enumerate() {
        assert_eq!(group(&plan, id), Some(k as u64 + 1), "group of {id}");
    }
    let skipping = repo.plan(&["--skip-optional"]);
    assert_eq!(group(&skipping, "2.2"), None);
    assert_eq!(group(&skipping, "2.3"), Some(2));
    assert_eq!(group(&skipping, "4"), Some(5));

    let human = repo.spec_exec(&["demo", "--dry-run", "--skip-optional"]);
    let out = text(&human.stdout);
    assert!(
        out.contains("Left out (--skip-optional): tasks 2.2, 3.3"),
        "{out}"
    );
    assert!(out.contains("Format: Kiro task list"), "{out}");

    // Run without the optional tasks: they stay open, the rest is ticked.
    repo.approve();
    let before = repo.tasks_md();
    let run = repo.spec_exec(&["demo", "--agent", AGENT, "--skip-optional"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let after = repo.tasks_md();
    for id in ["2.1", "2.3", "3.1", "3.2", "4"] {
        assert!(
            repo.git(&["branch", "--list", &format!("spec/demo/{id}")])
                .contains(id)
        );
    }
    assert!(after.contains("- [ ]* 2.2 "), "{after}");
    assert!(after.contains("- [ ]* 3.3 "), "{after}");
    assert!(after.contains("- [x] 2.3 "), "{after}");
    // Containers are ticked once their required sub-tasks are.
    assert!(
        after.contains("- [x] 2. Implement the delivery queue"),
        "{after}"
    );
    assert!(after.contains("- [x] 3. Add the email channel"), "{after}");
    // `[-]` (in progress) becomes `[x]` when the task is done.
    assert!(before.contains("- [-] 3.2 "), "{before}");
    assert!(after.contains("- [x] 3.2 "), "{after}");
}

#[test]
fn spec_workflow_files_prompts_and_in_progress_tasks() {
    let repo = Repo::new("spec-workflow");
    let plan = repo.plan(&[]);
    assert_eq!(plan["dialect"], "spec-workflow");
    let two = plan_task(&plan, "2");
    assert_eq!(two["state"], "in-progress");
    assert_eq!(two["group"], 1, "an in-progress task is planned as pending");
    assert_eq!(two["files"], serde_json::json!(["src/export/csv.rs"]));
    let prompt = two["prompt"].as_str().expect("a prompt");
    assert!(
        prompt.starts_with("Role: Rust developer | Task: Implement the CSV exporter"),
        "{prompt}"
    );
    assert!(
        prompt.ends_with("Success: the exporter passes the round-trip tests"),
        "{prompt}"
    );
    assert_eq!(
        plan_task(&plan, "4")["files"],
        serde_json::json!(["src/export/mod.rs", "src/main.rs"])
    );
    assert_eq!(group(&plan, "3"), Some(2));
    assert_eq!(group(&plan, "1"), None, "done");

    repo.approve();
    let run = repo.spec_exec(&["demo", "--agent", PROMPT_KEEPER]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let after = repo.tasks_md();
    assert!(after.contains("- [x] 2. Write the CSV exporter"), "{after}");
    assert!(!after.contains("- [ ]"), "{after}");
    // The `_Prompt:_` is the agent's instructions; the declared files are named.
    let prompt = repo.git(&["show", "spec/demo/3:3.prompt.md"]);
    assert!(prompt.contains("## Instructions\n\n- Role: Rust developer\n- Task: Implement the JSON exporter in src/export/json.rs\n- Restrictions: use serde_json\n"), "{prompt}");
    assert!(
        prompt.contains("## Files\n\nThis task creates or modifies:\n- `src/export/json.rs`"),
        "{prompt}"
    );
}

#[test]
fn spec_kit_context_files_are_in_the_prompt() {
    let repo = Repo::new("spec-kit");
    let spec = repo.root.join("documentation/features/demo");
    fs::write(
        spec.join("spec.md"),
        "# Feature Specification\n\n- **FR-001**: System MUST sync bookmarks\n",
    )
    .expect("spec.md");
    fs::write(spec.join("plan.md"), "# Implementation Plan\n").expect("plan.md");
    fs::create_dir_all(spec.join("contracts")).expect("contracts");
    fs::write(spec.join("contracts/push.md"), "# Push\n").expect("contract");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "The rest of the spec"]);
    repo.approve();
    let run = repo.spec_exec(&["demo", "--agent", PROMPT_KEEPER, "--track", "US1"]);
    // T007-T009 wait for the foundation, outside the track: nothing runs, and it says why.
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    let run = repo.spec_exec(&["demo", "--agent", PROMPT_KEEPER]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let prompt = repo.git(&["show", "spec/demo/T008:T008.prompt.md"]);
    for line in [
        "- Feature specification: `documentation/features/demo/spec.md`",
        "- Implementation plan: `documentation/features/demo/plan.md`",
        "- Contracts: `documentation/features/demo/contracts/`",
        "- `crates/sync/src/push.rs`",
    ] {
        assert!(prompt.contains(line), "{line}\n{prompt}");
    }
    assert!(!prompt.contains("design.md"), "{prompt}");
}

#[test]
fn cc_sdd_order_parallel_marks_and_depends_make_the_dag() {
    let repo = Repo::new("cc-sdd");
    let plan = repo.plan(&[]);
    assert_eq!(plan["dialect"], "cc-sdd");
    assert_eq!(plan["sequential"], false);
    // `(P)` siblings run together after what came before their run; the sibling after the
    // run waits for all of it; a major task's sub-tasks start after the major before it.
    assert_eq!(
        groups(&plan),
        [
            vec!["1.1", "1.2"],
            vec!["1.3"],
            vec!["2.1", "2.2"],
            vec!["2.3"],
            vec!["3", "4"],
            vec!["5"],
        ]
    );
    assert_eq!(waits_for(&plan, "1.1"), Vec::<String>::new());
    assert_eq!(waits_for(&plan, "1.3"), ["1.1", "1.2"]);
    // `_Depends:_` first, then the order.
    assert_eq!(waits_for(&plan, "2.2"), ["1.1", "1.3"]);
    assert_eq!(waits_for(&plan, "2.3"), ["2.1", "2.2"]);
    assert_eq!(waits_for(&plan, "5"), ["3", "4"]);
    let human = repo.spec_exec(&["demo", "--dry-run"]);
    assert!(
        text(&human.stdout).contains("Format: cc-sdd task list"),
        "{}",
        text(&human.stdout)
    );
}

#[test]
fn cc_sdd_done_tasks_hold_nothing_up() {
    let repo = Repo::with_tasks(
        "# Implementation Plan\n\n- [ ] 1. (P) A\n- [x] 2. (P) B\n- [x] 3. C\n- [ ] 4. (P) D\n- [ ] 5. (P) E\n",
    );
    let plan = repo.plan(&[]);
    assert_eq!(plan["dialect"], "cc-sdd");
    assert_eq!(groups(&plan), [vec!["1"], vec!["4", "5"]]);
    assert_eq!(waits_for(&plan, "4"), ["1"]);
}

#[test]
fn cc_sdd_parallel_tasks_with_the_same_boundary_are_warned_about() {
    let repo = Repo::with_tasks(
        "# Implementation Plan\n\n- [ ] 1. (P) Add editing\n  - _Boundary: CommentList, CommentForm_\n\
         - [ ] 2. (P) Add deleting\n  - _Boundary: CommentList_\n- [ ] 3. (P) Add a badge\n  - _Boundary: Badge_\n",
    );
    let plan = repo.plan(&[]);
    let warnings: Vec<&str> = plan["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["message"].as_str())
        .collect();
    assert_eq!(
        warnings,
        ["tasks 1 and 2 both modify CommentList and may run together; add a dependency"]
    );
}

#[test]
fn spec_kit_dependencies_section_facts_make_the_dag() {
    let repo = Repo::with_tasks(
        "# Tasks: Demo\n\n## Phase 1: Setup\n- [ ] T001 Create the project\n\n\
         ## Phase 2: Foundational\n- [ ] T002 Add the database layer\n- [ ] T003 Add the config\n\n\
         ## Phase 3: User Story 1 - Sign in (Priority: P1)\n- [ ] T004 [US1] Sign-in form\n- [ ] T005 [US1] Sign-in route\n\n\
         ## Phase 4: User Story 2 - Sign out (Priority: P2)\n- [ ] T006 [US2] Sign-out route\n\n\
         ## Phase 5: User Story 3 - Profile (Priority: P3)\n- [ ] T007 [US3] Profile page\n\n\
         ## Phase 6: Docs\n- [ ] T008 Write the user guide\n\n\
         ## Phase 7: Polish\n- [ ] T009 Final pass\n\n\
         ## Dependencies & Execution Order\n\n### Phase Dependencies\n\n\
         - Phase 2 depends on Phase 1\n- Phase 6 depends on Phase 2\n\
         - Polish (Phase 7): Depends on all user stories and Docs\n\n\
         ### User Story Dependencies\n\n\
         - User Story 1 (P1): Can start after Foundational – no dependencies on other stories\n\
         - User Story 2 (P2): Depends on User Story 1\n\
         - User Story 3 (P3): Independent of US1 and US2\n\n\
         ### Within Each User Story\n\n- T007 depends on T005 (the profile links to sign-in)\n",
    );
    let plan = repo.plan(&[]);
    assert_eq!(plan["dialect"], "spec-kit");
    assert_eq!(
        groups(&plan),
        [
            vec!["T001"],
            vec!["T002"],
            vec!["T003"],
            vec!["T004", "T008"],
            vec!["T005"],
            vec!["T006", "T007"],
            vec!["T009"],
        ]
    );
    // Story 2 after story 1; story 3 beside them, after what `T007 depends on T005` names.
    assert_eq!(waits_for(&plan, "T006"), ["T005"]);
    let mut t7 = waits_for(&plan, "T007");
    t7.sort();
    assert_eq!(t7, ["T003", "T005"]);
    // `Phase 6 depends on Phase 2`, not on the stories before it.
    assert_eq!(waits_for(&plan, "T008"), ["T003"]);
    let mut t9 = waits_for(&plan, "T009");
    t9.sort();
    assert_eq!(t9, ["T006", "T007", "T008"]);
}

/// A Kiro list with its waves written as `graph` under `## Task Dependency Graph`.
fn kiro_with_waves(graph: &str) -> String {
    format!(
        "# Implementation Plan: Demo\n\n## Overview\n\nTwo pieces, then the glue.\n\n## Tasks\n\n\
         - [ ] 1. Storage\n  - [ ] 1.1 Write the store\n  - [ ]* 1.2 Property tests for the store\n\
         - [ ] 2. Transport\n  - [ ] 2.1 Write the client\n\
         - [ ] 3. Checkpoint - Ensure all tests pass\n\
         - [ ] 4. Glue\n  - [ ] 4.1 Wire the store and the client\n\n\
         ## Notes\n\n- Tasks marked with `*` are optional\n\n\
         ## Task Dependency Graph\n\n```json\n{graph}\n```\n"
    )
}

#[test]
fn kiro_waves_make_the_dag() {
    for graph in [
        r#"{"waves": [{"id": 0, "tasks": ["1.1", "2.1"]}, {"id": 1, "tasks": ["4.1"]}]}"#,
        r#"{"waves": [["1.1", "2.1"], ["4"]]}"#,
        r#"{"waves": [{"id": 0, "tasks": ["1.1"], "depends_on": []}, {"id": 1, "tasks": ["2.1"], "depends_on": []},
            {"id": 2, "tasks": ["4.1"], "depends_on": [0, 1]}]}"#,
    ] {
        let repo = Repo::with_tasks(&kiro_with_waves(graph));
        let plan = repo.plan(&[]);
        assert_eq!(plan["dialect"], "kiro", "{graph}");
        assert_eq!(plan["warnings"], serde_json::json!([]), "{graph}");
        // Waves run one after the other; the optional 1.2 and the checkpoint, which no wave
        // names, wait for every task written before them.
        assert_eq!(
            groups(&plan),
            [vec!["1.1", "2.1"], vec!["1.2", "4.1"], vec!["3"]],
            "{graph}"
        );
        let mut three = waits_for(&plan, "3");
        three.sort();
        assert_eq!(three, ["1.1", "1.2", "2.1"], "{graph}");
    }
    // Integer ids naming parents: all their sub-tasks.
    let repo = Repo::with_tasks(&kiro_with_waves(
        r#"{"waves": [{"wave": 1, "tasks": [1, 2], "description": "pieces"}, {"wave": 2, "tasks": [4]}]}"#,
    ));
    assert_eq!(
        groups(&repo.plan(&[])),
        [vec!["1.1", "1.2", "2.1"], vec!["3", "4.1"]]
    );
}

#[test]
fn kiro_waves_that_cannot_be_read_are_reported_and_the_order_kept() {
    let repo = Repo::with_tasks(&kiro_with_waves(
        r#"{"waves": [{"id": 0, "tasks": ["1.1", "9.9"]}, {"id": 1, "tasks": ["2.1", "4.1"]}]}"#,
    ));
    let plan = repo.plan(&[]);
    let messages: Vec<&str> = plan["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        ["wave 0 of the task dependency graph names task `9.9`, which is not in the list"]
    );
    let repo = Repo::with_tasks(&kiro_with_waves(r#"{"waves": [1.1, "#));
    let plan = repo.plan(&[]);
    let warning = plan["warnings"][0]["message"].as_str().expect("a warning");
    assert!(
        warning.starts_with("the task dependency graph is not read: "),
        "{warning}"
    );
    assert_eq!(plan["sequential"], true);
    assert_eq!(groups(&plan).len(), 5);
}

#[test]
fn parallel_tasks_naming_the_same_file_in_their_text_are_warned_about() {
    let repo = Repo::with_tasks(
        "# Implementation Plan\n\n- [ ] 1. (P) Add the parser\n  - Export it from `src/lib.rs`\n\
         - [ ] 2. (P) Add the printer in src/print.rs\n  - Register it in src/lib.rs too\n\
         - [ ] 3. (P) Write the guide in `docs/guide.md`\n  - Mention `console.log` and README.md\n\
         - [ ] 4. Release\n  - Bump the version in `Cargo.toml` and in src/lib.rs\n",
    );
    let expected = "tasks 1 and 2 both modify src/lib.rs and may run together; add a dependency";
    let plan = repo.plan(&[]);
    let messages: Vec<&str> = plan["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["message"].as_str())
        .collect();
    // 4 waits for 1-3, so it may name the same file.
    assert_eq!(messages, [expected]);
    for args in [&["check", "demo"][..], &["demo", "--dry-run"][..]] {
        let out = repo.spec_exec(args);
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("warning: {expected}")),
            "{args:?}: {err}"
        );
        assert!(err.contains("tasks.md:5:7"), "{args:?}: {err:?}");
    }
}

#[test]
fn a_plan_that_is_one_long_chain_notes_the_deps_command() {
    let note = "the 4 pending tasks run one after another (one chain), one agent at a time; \
                `cargo spec-exec deps demo` asks the agent which of them depend on which, \
                and writes its answer into tasks.md for you to review";
    let repo = Repo::with_tasks(
        "# Implementation Plan\n\n- [x] 1. A\n- [ ] 2. B\n- [ ] 3. C\n- [ ] 4. D\n- [ ] 5. E\n",
    );
    let plan = repo.plan(&[]);
    assert_eq!(plan["notes"], serde_json::json!([note]));
    assert_eq!(plan["warnings"], serde_json::json!([]));
    let dry = repo.spec_exec(&["demo", "--dry-run"]);
    assert!(
        text(&dry.stdout).contains(&format!("\nNote: {note}.\n")),
        "{}",
        text(&dry.stdout)
    );
    let check = repo.spec_exec(&["check", "demo"]);
    assert_eq!(check.status.code(), Some(0));
    let err = text(&check.stderr);
    assert!(err.contains(&format!("Note {note}")), "{err}");
    assert!(err.contains("no errors, 0 warnings"), "{err}");
    let json = repo.spec_exec(&["check", "demo", "--message-format", "json"]);
    let line: Value =
        serde_json::from_str(text(&json.stdout).lines().next().expect("a line")).expect("JSON");
    assert_eq!(line["notes"], serde_json::json!([note]));

    // Three tasks in a row, or tasks that run side by side, are no chain worth a note.
    for tasks in [
        "# Implementation Plan\n\n- [ ] 1. A\n- [ ] 2. B\n- [ ] 3. C\n",
        "# Implementation Plan\n\n- [ ] 1. (P) A\n- [ ] 2. (P) B\n- [ ] 3. C\n- [ ] 4. D\n- [ ] 5. E\n",
    ] {
        let repo = Repo::with_tasks(tasks);
        assert_eq!(repo.plan(&[])["notes"], Value::Null, "{tasks}");
        let err = text(&repo.spec_exec(&["check", "demo"]).stderr);
        assert!(!err.contains("spec-exec deps"), "{err}");
    }
}
