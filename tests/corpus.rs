//! Real task lists: every markdown task list in the folder named by `SPEC_EXEC_CORPUS` parses
//! without error into a non-empty plan. Ignored by default, so that the suite needs nothing
//! outside the repository and a run shows it was skipped:
//! `SPEC_EXEC_CORPUS=path/to/task-lists cargo test --test corpus -- --ignored --nocapture`.

use cargo_spec_exec::plan;
use cargo_spec_exec::spec;

/// Lists that still fail, each with why: kept exact, so that one that starts to pass (or a new
/// failure) fails the test and this list is brought up to date.
const KNOWN_GAPS: &[(&str, &str)] = &[];

#[test]
#[ignore = "needs a folder of real task lists: set SPEC_EXEC_CORPUS and pass --ignored"]
fn every_task_list_of_the_corpus_parses_and_plans() {
    let Some(dir) = std::env::var_os("SPEC_EXEC_CORPUS") else {
        panic!(
            "SPEC_EXEC_CORPUS is not set: set it to a folder of task lists, e.g. \
             `SPEC_EXEC_CORPUS=path/to/task-lists cargo test --test corpus -- --ignored`"
        );
    };
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("SPEC_EXEC_CORPUS names a readable folder")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in &paths {
        let bytes = std::fs::read(path).expect("readable");
        // JSON task stores (Task Master) kept beside the task lists are not task lists.
        let text = String::from_utf8_lossy(&bytes);
        let body = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("<!--"))
            .find(|l| !l.trim().is_empty());
        if body.is_some_and(|l| l.trim_start().starts_with('{')) {
            eprintln!("{}: JSON, not a task list: skipped", path.display());
            continue;
        }
        checked += 1;
        let list = spec::parse_bytes(path.clone(), bytes);
        let errors: Vec<String> = list.errors().map(ToString::to_string).collect();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let gap = KNOWN_GAPS.iter().find(|(n, _)| *n == name);
        match (errors.is_empty(), gap) {
            (true, None) => {}
            (false, Some((_, why))) if errors.iter().all(|e| e.contains(why)) => {
                eprintln!("{}: known gap: {why}", path.display());
                continue;
            }
            (true, Some((_, why))) => {
                failures.push(format!(
                    "{}: parses now; remove it from KNOWN_GAPS ({why})",
                    path.display()
                ));
                continue;
            }
            (false, _) => {
                failures.push(format!("{}: {}", path.display(), errors.join("; ")));
                continue;
            }
        }
        match plan::build(
            &list,
            &plan::Options {
                max_agents: 6,
                ..Default::default()
            },
        ) {
            Ok(p) if p.nodes.len() + p.done + p.blocked.len() > 0 => eprintln!(
                "{}: {} list, {} tasks, {} pending in {} groups",
                path.display(),
                list.dialect.name(),
                list.leaves().count(),
                p.nodes.len(),
                p.levels.len()
            ),
            Ok(_) => failures.push(format!("{}: an empty plan", path.display())),
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(checked > 0, "no task lists in {}", dir.to_string_lossy());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
