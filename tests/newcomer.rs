//! A new user's first steps: `fixtures/example/try.sh` with the tool installed (the built binary
//! on `PATH`, run as `cargo spec-exec`), its scratch repository removed unless kept; and
//! `cargo spec-exec` with no feature, which answers with the usage and the features found.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use support::{BIN, fixture, text};

/// A `PATH` whose first directory holds `cargo-spec-exec` (a link to the built binary), and an
/// empty `TMPDIR`, both under `tmp`.
struct Installed {
    tmp: tempfile::TempDir,
}

impl Installed {
    fn new() -> Installed {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
        std::fs::create_dir_all(tmp.path().join("tmp")).unwrap();
        std::os::unix::fs::symlink(BIN, tmp.path().join("bin/cargo-spec-exec")).unwrap();
        Installed { tmp }
    }

    fn bin(&self) -> PathBuf {
        self.tmp.path().join("bin")
    }

    fn tmpdir(&self) -> PathBuf {
        self.tmp.path().join("tmp")
    }

    fn try_sh(&self, args: &[&str]) -> Output {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.bin()];
        dirs.extend(std::env::split_paths(&path));
        Command::new("bash")
            .arg(fixture("example/try.sh"))
            .args(args)
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("TMPDIR", self.tmpdir())
            .env_remove("SPEC_EXEC_EXAMPLE_KEEP")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .current_dir(self.tmp.path())
            .output()
            .unwrap()
    }

    /// What is left in `TMPDIR`.
    fn left(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.tmpdir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }
}

fn context(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn branches(repo: &Path) -> String {
    let out = Command::new("git")
        .args([
            "branch",
            "--list",
            "spec/user-auth/*",
            "--format=%(refname:short)",
        ])
        .current_dir(repo)
        .output()
        .unwrap();
    text(&out.stdout)
}

#[test]
fn try_sh_uses_the_installed_tool_and_removes_its_scratch_repository_unless_kept() {
    let installed = Installed::new();
    let out = installed.try_sh(&[]);
    assert!(out.status.success(), "{}", context(&out));
    let stdout = text(&out.stdout);
    // The installed tool, run as `cargo spec-exec`: nothing was built.
    let first = stdout.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "Using the installed {} (cargo spec-exec)",
            installed.bin().join("cargo-spec-exec").display()
        ),
        "{}",
        context(&out)
    );
    assert!(
        stdout.contains("Execution Plan for user-auth:"),
        "{}",
        context(&out)
    );
    assert!(
        stdout.contains("user-auth: CR-FINAL"),
        "the run's commits are shown: {}",
        context(&out)
    );
    assert_eq!(installed.left(), Vec::<PathBuf>::new(), "{}", context(&out));

    // --keep keeps it, with the run's branches.
    let out = installed.try_sh(&["--keep"]);
    assert!(out.status.success(), "{}", context(&out));
    let left = installed.left();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        text(&out.stdout).contains(&format!(
            "The scratch repository is kept: {}",
            left[0].display()
        )),
        "{}",
        context(&out)
    );
    assert!(
        branches(&left[0])
            .lines()
            .any(|b| b == "spec/user-auth/CR-FINAL"),
        "{}",
        branches(&left[0])
    );
}

#[test]
fn try_sh_refuses_an_unknown_argument_before_it_makes_anything() {
    let installed = Installed::new();
    let out = installed.try_sh(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2), "{}", context(&out));
    assert!(text(&out.stderr).contains("--keep"), "{}", context(&out));
    assert_eq!(installed.left(), Vec::<PathBuf>::new());
}

/// Outside any workspace: the usage, and why no features can be shown.
#[test]
fn no_feature_outside_a_workspace_says_so_with_the_usage() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::spec_exec_in(dir.path(), &["spec-exec"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", context(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .starts_with("error: no feature named; there is no workspace here to find features in"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\nUsage: cargo spec-exec [OPTIONS] <FEATURE> [RUN OPTIONS]\n"),
        "{stderr}"
    );
}

/// A workspace with no features: the usage, and where features would be.
#[test]
fn no_feature_in_a_workspace_without_features_says_where_they_would_be() {
    let dir = tempfile::tempdir().unwrap();
    support::write_project(dir.path(), support::Project::Package);
    let out = support::spec_exec_in(dir.path(), &["spec-exec"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", context(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: no feature named; there are no features under `documentation/features`"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("\nUsage: cargo spec-exec"), "{stderr}");
}
