//! Tasks that may run together but declare the same file: `--overlap warn` (the default) warns,
//! `--overlap serialize` orders them, as a dependency source of its own. And the feature's
//! integration branch, which a task's branch must not collide with.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use cargo_spec_exec::plan::{self, Overlap, Plan};
use cargo_spec_exec::spec::{self, TaskList, model::DepSource};
use proptest::prelude::*;
use support::{FEATURE, Project, Scratch, plan_task, shell_task, tasks_md, text};

fn parse(text: &str) -> TaskList {
    let list = spec::parse_bytes("tasks.md", text.as_bytes().to_vec());
    assert!(!list.has_errors(), "{:?}", list.diagnostics);
    list
}

fn build(list: &TaskList, overlap: Overlap) -> Plan {
    plan::build(
        list,
        &plan::Options {
            max_agents: 6,
            overlap,
            ..plan::Options::default()
        },
    )
    .expect("plan builds")
}

/// A specflow task naming `file` in its title, waiting for `deps` (`None` when empty).
fn task(id: &str, file: &str, deps: &str) -> String {
    let deps = if deps.is_empty() { "None" } else { deps };
    format!("- [ ] {id}. **Task {id} edits docs/{file}**\n  - _Dependencies: {deps}_\n\n")
}

fn list_of(tasks: &[String]) -> TaskList {
    parse(&format!("# Implementation Tasks\n\n{}", tasks.concat()))
}

fn ids(list: &TaskList, tasks: &[usize]) -> Vec<String> {
    tasks.iter().map(|&t| list.tasks[t].id.clone()).collect()
}

fn levels(list: &TaskList, plan: &Plan) -> Vec<Vec<String>> {
    plan.levels.iter().map(|l| ids(list, l)).collect()
}

/// (later, earlier) of each ordering, by id.
fn orderings(list: &TaskList, plan: &Plan) -> Vec<(String, String)> {
    plan.orderings
        .iter()
        .map(|o| {
            (
                list.tasks[o.task].id.clone(),
                list.tasks[o.after].id.clone(),
            )
        })
        .collect()
}

fn messages(plan: &Plan) -> Vec<String> {
    plan.warnings.iter().map(|d| d.message.clone()).collect()
}

#[test]
fn warn_is_the_default_and_leaves_the_plan_alone() {
    let list = list_of(&[task("1", "notes.txt", ""), task("2", "notes.txt", "")]);
    let plan = build(&list, Overlap::default());
    assert_eq!(levels(&list, &plan), [["1", "2"]]);
    assert_eq!(
        messages(&plan),
        ["tasks 1 and 2 both modify docs/notes.txt and may run together; add a dependency"]
    );
    assert!(plan.orderings.is_empty());
}

#[test]
fn serialize_puts_the_later_task_after_the_earlier() {
    let mut list = list_of(&[
        task("1", "notes.txt", ""),
        task("2", "notes.txt", ""),
        task("3", "other.txt", ""),
    ]);
    let plan = build(&list, Overlap::Serialize);
    assert_eq!(levels(&list, &plan), [vec!["1", "3"], vec!["2"]]);
    assert_eq!(ids(&list, &plan.critical_path), ["1", "2"]);
    assert_eq!(ids(&list, &plan.node(1).expect("2 runs").deps), ["1"]);
    assert!(plan.warnings.is_empty(), "{:?}", messages(&plan));
    assert_eq!(plan.orderings[0].files, ["docs/notes.txt"]);
    assert_eq!(
        plan.orderings_note(&list).as_deref(),
        Some(
            "1 ordering added for tasks that declare the same files (overlap: serialize): 2 after 1 (docs/notes.txt)"
        )
    );
    // The list gets them as dependencies of their own source, which the run and the JSON read.
    assert!(list.tasks[1].deps.is_empty());
    plan.add_orderings(&mut list);
    let edges: Vec<(usize, DepSource)> = list.tasks[1]
        .deps
        .iter()
        .map(|e| (e.on, e.source))
        .collect();
    assert_eq!(edges, [(0, DepSource::Overlap)]);
    // Built again from the list as it is now, the plan is the same and has nothing to add.
    let again = build(&list, Overlap::Serialize);
    assert_eq!(levels(&list, &again), levels(&list, &plan));
    assert!(again.orderings.is_empty() && again.warnings.is_empty());
}

#[test]
fn three_tasks_on_one_file_make_one_chain_without_redundant_orders() {
    let list = list_of(&[
        task("1", "notes.txt", ""),
        task("2", "notes.txt", ""),
        task("3", "notes.txt", ""),
    ]);
    let plan = build(&list, Overlap::Serialize);
    assert_eq!(levels(&list, &plan), [["1"], ["2"], ["3"]]);
    // 3 after 2 first (the nearest before it); 3 then waits for 1 through 2.
    assert_eq!(
        orderings(&list, &plan),
        [("2".into(), "1".into()), ("3".into(), "2".into())]
    );
}

#[test]
fn tasks_already_in_order_get_no_ordering() {
    // 3 waits for 1 through 2: no warning and nothing to add.
    let list = list_of(&[
        task("1", "notes.txt", ""),
        task("2", "other.txt", "Task 1"),
        task("3", "notes.txt", "Task 2"),
    ]);
    for mode in [Overlap::Warn, Overlap::Serialize] {
        let plan = build(&list, mode);
        assert!(plan.warnings.is_empty() && plan.orderings.is_empty());
        assert_eq!(levels(&list, &plan), [["1"], ["2"], ["3"]]);
    }
}

/// Document order 1, 2, 3, 4; 1 waits for 4 and 3 for 2; 1 and 2 share a file, 3 and 4 another.
/// 2 after 1 is added first; 4 after 3 would close a cycle (3 → 2 → 1 → 4 → 3), and is not
/// needed: 3 then waits for 4 through 2 and 1, so the two can no longer run together, and no
/// warning is left for them either.
#[test]
fn an_ordering_that_would_close_a_cycle_is_not_added() {
    let list = list_of(&[
        task("1", "a.txt", "Task 4"),
        task("2", "a.txt", ""),
        task("3", "b.txt", "Task 2"),
        task("4", "b.txt", ""),
    ]);
    let warned = build(&list, Overlap::Warn);
    assert_eq!(
        messages(&warned),
        [
            "tasks 1 and 2 both modify docs/a.txt and may run together; add a dependency",
            "tasks 3 and 4 both modify docs/b.txt and may run together; add a dependency",
        ]
    );
    let plan = build(&list, Overlap::Serialize);
    assert_eq!(orderings(&list, &plan), [("2".into(), "1".into())]);
    assert!(plan.warnings.is_empty(), "{:?}", messages(&plan));
    assert_eq!(levels(&list, &plan), [["4"], ["1"], ["2"], ["3"]]);
    assert_eq!(ids(&list, &plan.critical_path), ["4", "1", "2", "3"]);
    // A chain the user asked for: no note proposing `deps` to find independent tasks.
    assert_eq!(plan.chain_note("demo"), None);
}

#[test]
fn only_tasks_of_the_plan_are_ordered() {
    // 1 is done and 3 is left out with --track: neither is ordered against.
    let text = "# Implementation Tasks\n\n### Track A: One\n\n\
                - [x] 1. **Task 1 edits docs/notes.txt**\n  - _Dependencies: None_\n\n\
                - [ ] 2. **Task 2 edits docs/notes.txt**\n  - _Dependencies: None_\n\n\
                ### Track B: Two\n\n\
                - [ ] 3. **Task 3 edits docs/notes.txt**\n  - _Dependencies: None_\n\n";
    let list = parse(text);
    let plan = plan::build(
        &list,
        &plan::Options {
            tracks: vec!["A".into()],
            max_agents: 6,
            overlap: Overlap::Serialize,
            ..plan::Options::default()
        },
    )
    .unwrap();
    assert!(plan.orderings.is_empty());
    assert_eq!(levels(&list, &plan), [["2"]]);
}

/// A random plan: `deps[i]` are all `< i` in a hidden order, written shuffled; each task names
/// one or two of a few files.
fn random_list(n: usize, seed: u64) -> TaskList {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    let mut out = String::from("# Implementation Tasks\n\n");
    for &t in &order {
        let deps: Vec<String> = (0..t)
            .filter(|_| next() % 4 == 0)
            .map(|d| (d + 1).to_string())
            .collect();
        let files: Vec<String> = (0..1 + next() % 2)
            .map(|_| format!("docs/f{}.txt", next() % 4))
            .collect();
        let deps = if deps.is_empty() {
            "None".to_owned()
        } else {
            deps.join(", ")
        };
        out.push_str(&format!(
            "- [ ] {}. **Edit {}**\n  - _Dependencies: {deps}_\n\n",
            t + 1,
            files.join(" and ")
        ));
    }
    parse(&out)
}

/// Whether plan task `a` waits for `b`, directly or not.
fn waits_for(plan: &Plan, a: usize, b: usize) -> bool {
    let mut stack = vec![a];
    let mut seen = std::collections::HashSet::new();
    while let Some(x) = stack.pop() {
        for &d in &plan.node(x).expect("a node").deps {
            if d == b {
                return true;
            }
            if seen.insert(d) {
                stack.push(d);
            }
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Serialized, no two tasks sharing a file may run together, the levels are a valid
    /// layering (so there is no cycle), every order goes from a later task to an earlier one
    /// that it could run beside before, and nothing is left to warn about; warned, each such
    /// pair has its warning.
    #[test]
    fn serialized_plans_leave_no_overlap(n in 2usize..14, seed in any::<u64>()) {
        let list = random_list(n, seed);
        let warned = build(&list, Overlap::Warn);
        let plan = build(&list, Overlap::Serialize);
        prop_assert!(plan.warnings.is_empty());
        prop_assert_eq!(plan.nodes.len(), warned.nodes.len());
        for node in &plan.nodes {
            for &d in &node.deps {
                prop_assert!(plan.node(d).expect("a node").level < node.level);
            }
        }
        for o in &plan.orderings {
            prop_assert!(o.after < o.task, "later after earlier in the document");
            prop_assert!(!waits_for(&warned, o.task, o.after) && !waits_for(&warned, o.after, o.task));
        }
        let mut pairs = 0;
        for a in &plan.nodes {
            for b in &plan.nodes {
                if a.task >= b.task {
                    continue;
                }
                let (ta, tb) = (list.tasks[a.task].touches(), list.tasks[b.task].touches());
                if ta.iter().any(|f| tb.contains(f)) {
                    prop_assert!(waits_for(&plan, a.task, b.task) || waits_for(&plan, b.task, a.task));
                    if !waits_for(&warned, a.task, b.task) && !waits_for(&warned, b.task, a.task) {
                        pairs += 1;
                    }
                }
            }
        }
        prop_assert_eq!(warned.warnings.len(), pairs);
        prop_assert!(plan.orderings.len() <= pairs);
    }
}

/// Two tasks without dependencies that both append to `docs/notes.txt`.
fn appending_tasks() -> String {
    tasks_md(&[
        shell_task(
            "1",
            "Append to docs/notes.txt",
            "",
            "mkdir -p docs && echo one >> docs/notes.txt",
        ),
        shell_task(
            "2",
            "Append to docs/notes.txt",
            "",
            "mkdir -p docs && echo two >> docs/notes.txt",
        ),
    ])
}

#[test]
fn a_serialized_run_builds_the_later_task_on_the_earlier() {
    let s = Scratch::package(&appending_tasks());
    let run = s.shell_run(&["--overlap", "serialize"]);
    run.assert_code(0);
    assert!(
        !run.stderr.contains("may run together"),
        "{}",
        run.context()
    );
    assert!(
        run.stderr.contains("2 after 1 (docs/notes.txt)"),
        "{}",
        run.context()
    );
    let (one, two) = (Scratch::branch("1"), Scratch::branch("2"));
    assert!(s.is_ancestor(&one, &two), "{}", run.context());
    assert_eq!(s.show(&two, "docs/notes.txt"), "one\ntwo\n");
    // The plan line says where the dependency came from.
    let plan = run.of_type("plan").next().expect("a plan line");
    assert_eq!(
        plan_task(plan, "2")["dependencies"],
        serde_json::json!([{"id": "1", "requires": "done", "source": "overlap"}])
    );
}

#[test]
fn a_run_by_default_warns_and_runs_them_side_by_side() {
    let s = Scratch::package(&appending_tasks());
    let run = s.shell_run(&[]);
    // Both tasks are done, but their branches conflict: the shell agent cannot resolve the
    // conflict to build the feature's integration branch, and the run says so.
    run.assert_code(1);
    for id in ["1", "2"] {
        assert_eq!(run.status(id), "done", "{}", run.context());
    }
    let integrated = run.of_type("integrated").next().unwrap();
    assert_eq!(integrated["status"], "failed");
    assert!(
        integrated["reason"]
            .as_str()
            .unwrap()
            .contains("conflicts in docs/notes.txt"),
        "{integrated}"
    );
    let warnings: Vec<&serde_json::Value> = run
        .of_type("diagnostic")
        .filter(|d| {
            d["message"]
                == "tasks 1 and 2 both modify docs/notes.txt and may run together; add a dependency"
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.context());
    let (one, two) = (Scratch::branch("1"), Scratch::branch("2"));
    assert!(!s.is_ancestor(&one, &two), "{}", run.context());
    assert_eq!(s.show(&two, "docs/notes.txt"), "two\n");
}

/// Appends `[workspace.metadata.spec-exec]` with `keys` to the scratch repository's manifest.
fn configure(s: &Scratch, keys: &str) {
    let manifest = s.repo().join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!("\n[package.metadata.spec-exec]\n{keys}\n"));
    std::fs::write(&manifest, text).unwrap();
}

#[test]
fn dry_run_and_check_show_the_orderings() {
    let s = Scratch::package(&appending_tasks());
    let dry = s
        .spec_exec(&[FEATURE, "--dry-run", "--overlap", "serialize"])
        .output()
        .unwrap();
    let out = text(&dry.stdout);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        out.contains("Ordered for Shared Files (overlap: serialize; dependency source `overlap`):\n- Task 2 after 1: both modify docs/notes.txt\n"),
        "{out}"
    );
    assert!(
        out.contains("- Group 2: Task 2 (depends on Group 1)"),
        "{out}"
    );
    assert!(!text(&dry.stderr).contains("may run together"));

    // The configuration's `overlap`, for check and --dry-run; the flag wins over it.
    configure(&s, "overlap = \"serialize\"");
    let check = s.spec_exec(&["check", FEATURE]).output().unwrap();
    let err = text(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{err}");
    assert!(!err.contains("may run together"), "{err}");
    assert!(err.contains("2 after 1 (docs/notes.txt)"), "{err}");
    let json = s
        .spec_exec(&[FEATURE, "--dry-run", "--message-format", "json"])
        .output()
        .unwrap();
    let plan = support::plan_line(&json);
    assert_eq!(
        plan_task(&plan, "2")["dependencies"][0]["source"],
        "overlap"
    );
    assert_eq!(plan_task(&plan, "2")["group"], 2);
    let warned = s
        .spec_exec(&[FEATURE, "--dry-run", "--overlap", "warn"])
        .output()
        .unwrap();
    assert!(text(&warned.stderr).contains("may run together"));
    assert!(
        text(&warned.stdout).contains("- Tasks 1-2 (2 tasks)"),
        "{}",
        text(&warned.stdout)
    );
}

#[test]
fn a_bad_overlap_is_an_error() {
    let s = Scratch::package(&appending_tasks());
    configure(&s, "overlap = \"sometimes\"");
    let check = s.spec_exec(&["check", FEATURE]).output().unwrap();
    let err = text(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{err}");
    assert!(
        err.contains("invalid `overlap` in [package.metadata.spec-exec]: expected one of \"warn\", \"serialize\""),
        "{err}"
    );
    assert!(err.contains("Cargo.toml:"), "{err}");
    let flag = s
        .spec_exec(&[FEATURE, "--dry-run", "--overlap", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(flag.status.code(), Some(2));
}

fn integration_tasks() -> String {
    tasks_md(&[
        shell_task("1", "First", "", "true"),
        shell_task("CR-A", "Review the first", "1", "true"),
    ])
}

/// Ids are numbers, upper-case letter ids and spec-kit's `T001`, so no id meets the default
/// template's last part (`integration`); a template ending in an id does.
#[test]
fn a_task_whose_branch_is_the_integration_branch_is_an_error() {
    let s = Scratch::unapproved(&integration_tasks(), Project::Package);
    configure(&s, "integration-branch = \"{prefix}/{feature}/CR-A\"");
    let check = s.spec_exec(&["check", FEATURE]).output().unwrap();
    let err = text(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "error: task CR-A's branch `spec/{FEATURE}/CR-A` is the feature's integration branch `spec/{FEATURE}/CR-A`: git cannot hold both"
        )),
        "{err}"
    );
    assert!(err.contains("tasks.md:9:7"), "{err}");
    assert!(
        err.contains("rename the task id, or set another `integration-branch`"),
        "{err}"
    );
    // A run and a dry run refuse it, before anything runs (or the approval is looked at).
    let run = s.shell_run(&[]);
    run.assert_code(2);
    assert!(
        run.stdout.contains("is the feature's integration branch"),
        "{}",
        run.context()
    );
    assert!(s.branches().is_empty(), "{:?}", s.branches());
    let dry = s.spec_exec(&[FEATURE, "--dry-run"]).output().unwrap();
    assert_eq!(dry.status.code(), Some(2));
    assert!(text(&dry.stderr).contains("tasks.md:9:7"));
}

#[test]
fn the_default_and_other_templates_pass() {
    let s = Scratch::unapproved(&integration_tasks(), Project::Package);
    let check = s.spec_exec(&["check", FEATURE]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    configure(
        &s,
        "integration-branch = \"{prefix}/{feature}-integration\"",
    );
    let check = s.spec_exec(&["check", FEATURE]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
}

#[test]
fn a_task_branch_that_is_a_directory_of_the_integration_branch_is_an_error() {
    let s = Scratch::unapproved(&integration_tasks(), Project::Package);
    // `spec/demo/1` would be a directory of `spec/demo/1/all`.
    configure(&s, "integration-branch = \"{prefix}/{feature}/1/all\"");
    let check = s.spec_exec(&["check", FEATURE]).output().unwrap();
    let err = text(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "task 1's branch `spec/{FEATURE}/1` is a directory of the feature's integration branch `spec/{FEATURE}/1/all`"
        )),
        "{err}"
    );
    assert!(err.contains("tasks.md:3:7"), "{err}");
    assert!(!err.contains("task CR-A's"), "{err}");
}

#[test]
fn a_bad_integration_branch_is_a_located_error() {
    for (template, why) in [
        ("{prefix}/{feature}/{id}", "`{id}` is not a placeholder"),
        ("{prefix}/integration", "does not name the feature"),
        ("{prefix}/{feature}..x", "not a valid git branch name"),
        ("{prefix}/{feature}", "where its task branches"),
    ] {
        let s = Scratch::unapproved(&integration_tasks(), Project::Package);
        configure(&s, &format!("integration-branch = \"{template}\""));
        let check = s.spec_exec(&["check", FEATURE]).output().unwrap();
        let err = text(&check.stderr);
        assert_eq!(check.status.code(), Some(2), "{template}: {err}");
        assert!(
            err.contains("invalid `integration-branch` in [package.metadata.spec-exec]"),
            "{template}: {err}"
        );
        assert!(err.contains(why), "{template}: {err}");
        assert!(err.contains("Cargo.toml:"), "{template}: {err}");
    }
}
