//! Where specs live: `features-dir`, specflow modules, Kiro, spec-kit and spec-workflow
//! directories, found by name (spec-kit's also by number or by the rest of the name), with an
//! ambiguous name refused and settled by a path.

use std::fs;
use std::path::PathBuf;
use std::process::Output;

mod support;

use support::{fixture, spec_exec_in, text};

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("repo");
        let place = |dir: &str, from: &str| {
            let d = root.join(dir);
            fs::create_dir_all(&d).expect("dir");
            fs::copy(fixture(from).join("tasks.md"), d.join("tasks.md")).expect("copy");
        };
        place("documentation/features/auth", "specs/plain-list");
        place(".kiro/specs/auth", "dialects/kiro");
        place(".kiro/specs/notify", "dialects/kiro");
        place("specs/001-user-sync", "dialects/spec-kit");
        place(".spec-workflow/specs/export", "dialects/spec-workflow");
        place(
            "documentation/modules/core/features/billing",
            "specs/tracks",
        );
        // Not a spec: no tasks.md.
        fs::create_dir_all(root.join("specs/fixtures")).expect("dir");
        fs::write(root.join("Cargo.toml"), "[workspace]\n").expect("manifest");
        Repo { _tmp: tmp, root }
    }

    fn run(&self, args: &[&str]) -> Output {
        spec_exec_in(&self.root, args).output().expect("runs")
    }
}

#[test]
fn list_shows_every_place_with_its_format() {
    let repo = Repo::new();
    let out = repo.run(&["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["FEATURE", "DONE", "APPROVAL", "FORMAT", "PATH", "STATUS"]
    );
    let row = |path: &str| {
        rows.iter()
            .find(|r| r.contains(&path))
            .unwrap_or_else(|| panic!("{path} not listed:\n{stdout}"))
            .clone()
    };
    assert_eq!(row("specs/001-user-sync")[0], "001-user-sync");
    assert!(row("specs/001-user-sync").contains(&"spec-kit"));
    assert!(row(".kiro/specs/auth").contains(&"Kiro"));
    assert!(row("documentation/features/auth").contains(&"Kiro"));
    assert!(row(".spec-workflow/specs/export").contains(&"spec-workflow"));
    assert!(row("documentation/modules/core/features/billing").contains(&"specflow"));
    assert!(!stdout.contains("specs/fixtures"), "{stdout}");
    assert_eq!(rows.len(), 7, "{stdout}");

    let check = repo.run(&["check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stderr).contains("6 features checked"),
        "{}",
        text(&check.stderr)
    );
}

#[test]
fn spec_kit_features_are_found_by_number_or_name() {
    let repo = Repo::new();
    for name in ["001-user-sync", "001", "user-sync"] {
        let out = repo.run(&[name, "--dry-run"]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with("Execution Plan for 001-user-sync:"),
            "{name}: {}",
            text(&out.stdout)
        );
    }
    let billing = repo.run(&["billing", "--dry-run"]);
    assert!(billing.status.success(), "{}", text(&billing.stderr));
    assert!(text(&billing.stdout).contains("Format: specflow task list"));
}

#[test]
fn an_ambiguous_name_lists_the_candidates_and_a_path_settles_it() {
    let repo = Repo::new();
    let out = repo.run(&["auth", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("`auth` names 2 features: `.kiro/specs/auth`, `documentation/features/auth`"),
        "{err}"
    );
    assert!(err.contains("cargo spec-exec .kiro/specs/auth"), "{err}");
    assert!(out.stdout.is_empty());

    let kiro = repo.run(&[".kiro/specs/auth", "--dry-run"]);
    assert!(kiro.status.success(), "{}", text(&kiro.stderr));
    assert!(text(&kiro.stdout).contains("Format: Kiro task list"));
    let ours = repo.run(&["documentation/features/auth", "--dry-run"]);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    assert!(
        text(&ours.stdout).starts_with("Execution Plan for documentation/features/auth:"),
        "{}",
        text(&ours.stdout)
    );

    // A path that is not a feature's directory is not a way out of the places.
    let other = repo.run(&["../repo/.kiro/specs/auth", "--dry-run"]);
    assert_eq!(other.status.code(), Some(2));
}

#[test]
fn a_shared_name_cannot_run_and_an_unknown_one_lists_every_feature() {
    let repo = Repo::new();
    let run = repo.run(&[".kiro/specs/auth", "--agent", "shell"]);
    assert_eq!(run.status.code(), Some(2));
    let err = text(&run.stderr);
    assert!(
        err.contains("`.kiro/specs/auth` is also the name of `documentation/features/auth`"),
        "{err}"
    );
    assert!(!repo.root.join(".git/spec-exec").exists());

    let missing = repo.run(&["nosuch", "--dry-run"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = text(&missing.stderr);
    assert!(
        err.contains("features that exist: 001-user-sync, auth, billing, export, notify"),
        "{err}"
    );
}
