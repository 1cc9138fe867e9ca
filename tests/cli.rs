//! Integration tests of the parser, plan and CLI layer: the built binary, run in temporary git
//! repositories that hold a Cargo workspace, on the task lists under `fixtures/specs/` (every
//! supported shape) and `fixtures/errors/` (one error each). No agent runs here; running is
//! tested in `tests/run.rs`.
//!
//! Snapshots live in `tests/snapshots/`; after an intended change of output run
//! `INSTA_UPDATE=always cargo test --test cli` and review the `.snap` diffs.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Helpers: fixtures, scratch repositories, running the binary.
// ---------------------------------------------------------------------------------------------

/// Every fixture under `fixtures/specs/`: each is a valid task list.
const SPECS: &[&str] = &[
    "crlf-unicode-fences",
    "done-and-estimates",
    "non-utf8",
    "parallel-groups",
    "plain-list",
    "subtasks",
    "tabs",
    "tracks",
];

/// Every fixture under `fixtures/errors/`: each has exactly one error.
const ERRORS: &[&str] = &[
    "dependency-cycle",
    "duplicate-id",
    "long-id",
    "no-tasks",
    "unknown-dependency",
    "unknown-track",
];

const USER: &str = "Test User";
const EMAIL: &str = "test@example.com";

/// `fixtures/<kind>/<name>/tasks.md`, e.g. `fixture("specs/tracks")`.
fn fixture_path(fixture: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(fixture)
        .join("tasks.md")
}

fn fixture(fixture: &str) -> Vec<u8> {
    let path = fixture_path(fixture);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs git in `dir` with a fixed identity and no user or system configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", USER)
        .env("GIT_AUTHOR_EMAIL", EMAIL)
        .env("GIT_COMMITTER_NAME", USER)
        .env("GIT_COMMITTER_EMAIL", EMAIL)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How the scratch repository's Cargo project is laid out.
#[derive(Clone, Copy)]
enum Layout {
    /// A virtual root manifest (`[workspace]`) with one member crate, `crates/app`.
    Workspace,
    /// A single package at the root.
    Package,
}

/// A temporary git repository holding a Cargo project and some features.
struct Repo {
    dir: TempDir,
}

impl Repo {
    /// A workspace with these `(feature, fixture)` pairs, committed.
    fn new(features: &[(&str, &str)]) -> Repo {
        Repo::with(Layout::Workspace, "", features)
    }

    /// A workspace with every fixture of `fixtures/specs/` as a feature of the same name.
    fn all_specs() -> Repo {
        let fixtures: Vec<String> = SPECS.iter().map(|n| format!("specs/{n}")).collect();
        let pairs: Vec<(&str, &str)> = SPECS
            .iter()
            .zip(&fixtures)
            .map(|(n, f)| (*n, f.as_str()))
            .collect();
        Repo::new(&pairs)
    }

    /// A repository of the given layout; `config` is the body of the `spec-exec` metadata table
    /// (`[workspace.metadata.spec-exec]`, or `[package.metadata.spec-exec]` for a package).
    fn with(layout: Layout, config: &str, features: &[(&str, &str)]) -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("spec-exec-cli-")
            .tempdir()
            .expect("temp dir");
        let repo = Repo { dir };
        let table = match layout {
            Layout::Workspace => "workspace",
            Layout::Package => "package",
        };
        let config = if config.is_empty() {
            String::new()
        } else {
            format!("\n[{table}.metadata.spec-exec]\n{config}\n")
        };
        match layout {
            Layout::Workspace => {
                repo.write(
                    "Cargo.toml",
                    format!("[workspace]\nmembers = [\"crates/app\"]\nresolver = \"2\"\n{config}"),
                );
                repo.write(
                    "crates/app/Cargo.toml",
                    "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
                );
                repo.write("crates/app/src/lib.rs", "//! The app.\n");
            }
            Layout::Package => {
                repo.write(
                    "Cargo.toml",
                    format!(
                        "[package]\nname = \"solo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{config}"
                    ),
                );
                repo.write("src/lib.rs", "//! The crate.\n");
            }
        }
        repo.write(".gitignore", "/target\nCargo.lock\n");
        for (name, fx) in features {
            repo.add_feature(name, fx);
        }
        git(repo.root(), &["init", "-q"]);
        // `approve` reads the approver from the repository's configuration.
        git(repo.root(), &["config", "user.name", USER]);
        git(repo.root(), &["config", "user.email", EMAIL]);
        repo.commit("initial");
        repo
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn add_feature(&self, name: &str, fx: &str) {
        self.write(
            &format!("documentation/features/{name}/tasks.md"),
            fixture(fx),
        );
    }

    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
        std::fs::write(&path, bytes).expect("write a file");
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.root().join(rel)).expect("read a file")
    }

    fn tasks(&self, feature: &str) -> String {
        format!("documentation/features/{feature}/tasks.md")
    }

    fn commit(&self, message: &str) {
        git(self.root(), &["add", "-A"]);
        git(
            self.root(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
    }

    /// The binary, in the repository, with a clean environment for stable output.
    fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("cargo-spec-exec").expect("the built binary");
        cmd.current_dir(self.root())
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .env_remove("CARGO_TERM_COLOR")
            .env_remove("CI")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        cmd
    }

    /// Runs the binary with `args` and `--color never`.
    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.cmd();
        cmd.args(args).args(["--color", "never"]);
        Run::of(self, &mut cmd)
    }

    /// Replaces this repository's path (as given and canonical) with `[ROOT]`.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let canonical = self.root().canonicalize().expect("canonical root");
        for p in [canonical.as_path(), self.root()] {
            out = out.replace(&p.display().to_string(), "[ROOT]");
        }
        out
    }
}

/// What one run printed, with the repository's path redacted.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(repo: &Repo, cmd: &mut Command) -> Run {
        let out = cmd.output().expect("run cargo-spec-exec");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: repo.redact(&String::from_utf8_lossy(&out.stdout)),
            stderr: repo.redact(&String::from_utf8_lossy(&out.stderr)),
        };
        assert!(
            !run.stdout.contains('\x1b') && !run.stderr.contains('\x1b'),
            "colour escapes despite --color never / NO_COLOR: {run:?}"
        );
        assert!(
            !run.stderr.contains("panicked"),
            "the tool panicked: {run:?}"
        );
        run
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    #[track_caller]
    fn invalid(self) -> Run {
        assert_eq!(self.code, 2, "expected exit code 2: {self:#?}");
        self
    }

    /// The JSON lines of stdout.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The one `plan` message of a JSON dry run.
    fn plan(&self) -> Value {
        let plans: Vec<Value> = self
            .json_lines()
            .into_iter()
            .filter(|v| v["type"] == "plan")
            .collect();
        assert_eq!(plans.len(), 1, "one plan line expected: {self:#?}");
        plans.into_iter().next().expect("a plan")
    }
}

/// The JSON dry run of one feature.
fn plan_json(repo: &Repo, feature: &str) -> Value {
    repo.run(&[feature, "--dry-run", "--message-format", "json"])
        .ok()
        .plan()
}

/// The task with this id in a plan message.
fn task<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in the plan"))
}

fn ids(plan: &Value) -> Vec<String> {
    plan["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// `(id, source)` of each dependency of a task.
fn deps(plan: &Value, id: &str) -> Vec<(String, String)> {
    task(plan, id)["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .map(|d| {
            (
                d["id"].as_str().expect("dep id").to_owned(),
                d["source"].as_str().expect("dep source").to_owned(),
            )
        })
        .collect()
}

fn dep_ids(plan: &Value, id: &str) -> Vec<String> {
    let mut v: Vec<String> = deps(plan, id).into_iter().map(|(d, _)| d).collect();
    v.sort();
    v
}

/// The plan's groups as lists of ids.
fn groups(plan: &Value) -> Vec<Vec<String>> {
    plan["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            g["tasks"]
                .as_array()
                .expect("group tasks")
                .iter()
                .map(|t| t.as_str().expect("id").to_owned())
                .collect()
        })
        .collect()
}

/// Splits `bytes` into its leading front matter block (`---` … `---` and its line ending) and
/// the rest.
fn split_front_matter(bytes: &[u8]) -> (String, &[u8]) {
    let eol: &[u8] = if bytes.starts_with(b"---\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let open = [b"---".as_slice(), eol].concat();
    assert!(bytes.starts_with(&open), "no front matter at the start");
    let close = [eol, b"---", eol].concat();
    let at = bytes
        .windows(close.len())
        .position(|w| w == close.as_slice())
        .expect("a closing ---");
    let end = at + close.len();
    (
        String::from_utf8_lossy(&bytes[..end]).into_owned(),
        &bytes[end..],
    )
}

/// Asserts that a spec error is reported as the README promises: exit 2, nothing on stdout
/// (no plan), the message, `path:line:col`, the line with the words at fault underlined, and a
/// hint.
#[track_caller]
fn assert_spec_error(run: &Run, message: &str, position: &str, words: &str, label: &str) {
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        !run.stdout.contains("Execution Plan"),
        "a plan was printed: {run:#?}"
    );
    let err = &run.stderr;
    assert!(err.contains(&format!("error: {message}")), "{err}");
    assert!(err.contains(&format!("--> {position}")), "{err}");
    assert!(
        err.contains(words),
        "the words at fault are not shown: {err}"
    );
    assert!(err.contains(&format!("^ {label}")), "{err}");
    assert!(err.contains("= help: "), "no hint: {err}");
}

// ---------------------------------------------------------------------------------------------
// The fixtures themselves.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_fixture_says_what_it_shows_in_a_leading_comment() {
    for name in SPECS {
        let bytes = fixture(&format!("specs/{name}"));
        assert!(bytes.starts_with(b"<!-- "), "specs/{name} has no comment");
    }
    for name in ERRORS {
        let bytes = fixture(&format!("errors/{name}"));
        assert!(bytes.starts_with(b"<!-- Error: "), "errors/{name}");
    }
}

#[test]
fn fixture_bytes_are_what_the_tests_rely_on() {
    // Guards against an editor or git normalising the fixtures.
    let crlf = fixture("specs/crlf-unicode-fences");
    let lf_only = crlf
        .windows(2)
        .enumerate()
        .filter(|&(i, w)| w[1] == b'\n' && w[0] != b'\r' && i > 0)
        .count();
    assert!(crlf.ends_with(b"\r\n") && lf_only == 0, "not all CRLF");
    assert!(std::str::from_utf8(&crlf).is_ok());
    assert!(std::str::from_utf8(&fixture("specs/non-utf8")).is_err());
    let tabs = String::from_utf8(fixture("specs/tabs")).expect("utf-8");
    assert!(tabs.contains("\n\t- _Dependencies: None_\n"));
    assert!(tabs.contains("\n\t\t- One file per key\n"));
    assert!(!tabs.contains('\r'));
}

#[test]
fn every_spec_fixture_checks_clean_and_every_error_fixture_fails() {
    let repo = Repo::all_specs();
    let run = repo.run(&["check"]).ok();
    assert!(
        run.stderr.contains("8 features checked: no errors"),
        "{run:#?}"
    );
    for name in ERRORS {
        let repo = Repo::new(&[(name, &format!("errors/{name}"))]);
        let run = repo.run(&["check", name]).invalid();
        assert!(
            run.stdout
                .contains("error: 1 of 1 feature failed the check (1 error, 0 warnings)"),
            "{name}: {run:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Invocation: help, both forms, `run <feature>`, --manifest-path, layouts, configuration.
// ---------------------------------------------------------------------------------------------

#[test]
fn help() {
    let repo = Repo::new(&[]);
    let help = repo.run(&["--help"]).ok().stdout;
    insta::assert_snapshot!("help", help);
    // As cargo calls it.
    assert_eq!(repo.run(&["spec-exec", "--help"]).ok().stdout, help);
    let run_help = repo.run(&["run", "--help"]).ok().stdout;
    insta::assert_snapshot!("run_help", run_help);
    assert_eq!(
        repo.run(&["spec-exec", "run", "--help"]).ok().stdout,
        run_help
    );
    // `<FEATURE> --help` is the help of `run`.
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    assert_eq!(repo.run(&["tracks", "--help"]).ok().stdout, run_help);
    // The main help names every run option (`run --help` explains them).
    for option in run_help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && !w.contains('`'))
    {
        assert!(help.contains(option), "{option} is not in --help");
    }
}

#[test]
fn cargo_style_and_direct_invocations_print_the_same_plan() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    let cargo = repo.run(&["spec-exec", "tracks", "--dry-run"]).ok();
    let direct = repo.run(&["tracks", "--dry-run"]).ok();
    let run = repo.run(&["run", "tracks", "--dry-run"]).ok();
    let cargo_run = repo.run(&["spec-exec", "run", "tracks", "--dry-run"]).ok();
    assert!(direct.stdout.starts_with("Execution Plan for tracks:\n"));
    assert_eq!(cargo.stdout, direct.stdout);
    assert_eq!(run.stdout, direct.stdout);
    assert_eq!(cargo_run.stdout, direct.stdout);
}

#[test]
fn a_feature_named_like_a_command_is_reachable_with_run() {
    let repo = Repo::new(&[("list", "specs/plain-list"), ("check", "specs/tracks")]);
    let run = repo.run(&["run", "list", "--dry-run"]).ok();
    assert!(
        run.stdout.starts_with("Execution Plan for list:\n"),
        "{run:#?}"
    );
    let run = repo.run(&["spec-exec", "run", "check", "--dry-run"]).ok();
    assert!(
        run.stdout.starts_with("Execution Plan for check:\n"),
        "{run:#?}"
    );
    // The bare word is still the command.
    let run = repo.run(&["list"]).ok();
    assert!(run.stdout.starts_with("FEATURE"), "{run:#?}");
    let run = repo.run(&["spec-exec", "check"]).ok();
    assert!(run.stderr.contains("2 features checked"), "{run:#?}");
    // ... and a command does not take run options.
    let run = repo.run(&["list", "--dry-run"]).invalid();
    assert!(run.stderr.contains("--dry-run"), "{run:#?}");
}

#[test]
fn no_feature_named_is_an_error_with_a_hint() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    for args in [vec![], vec!["spec-exec"]] {
        let run = repo.run(&args).invalid();
        // As cargo answers a missing argument, with the features there are to name.
        assert!(
            run.stderr.starts_with(
                "error: no feature named; the features under `documentation/features` are:\n  tracks  0/"
            ),
            "{run:#?}"
        );
        assert!(
            run.stderr.contains(
                " done, not approved\n\nUsage: cargo spec-exec [OPTIONS] <FEATURE> [RUN OPTIONS]\n"
            ),
            "{run:#?}"
        );
        assert!(
            run.stderr
                .ends_with("For more information, try '--help'.\n"),
            "{run:#?}"
        );
    }
}

#[test]
fn invalid_run_arguments_are_rejected_before_anything_else() {
    // The list is not approved either: the arguments are checked first, and nothing runs.
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    let run = repo.run(&["tracks", "--timeout", "soon"]).invalid();
    assert!(
        run.stderr
            .contains("error: invalid --timeout: `soon` is not a duration"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("= help: e.g. --timeout 30m"),
        "{run:#?}"
    );
    let run = repo.run(&["tracks", "--agent", " "]).invalid();
    assert!(run.stderr.contains("error: --agent is empty"), "{run:#?}");
    let run = repo.run(&["tracks", "--message-format", "xml"]).invalid();
    assert!(run.stderr.contains("xml"), "{run:#?}");
    assert!(!repo.root().join(".git/spec-exec").exists());
}

#[test]
fn manifest_path_from_outside_the_repository() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    let inside = repo.run(&["tracks", "--dry-run"]).ok();
    let elsewhere = TempDir::new().expect("temp dir");
    let manifest = repo.root().join("Cargo.toml");
    let manifest = manifest.to_str().expect("utf-8 path");
    for args in [
        vec!["tracks", "--dry-run", "--manifest-path", manifest],
        vec!["--manifest-path", manifest, "tracks", "--dry-run"],
        vec![
            "spec-exec",
            "tracks",
            "--manifest-path",
            manifest,
            "--dry-run",
        ],
    ] {
        let mut cmd = repo.cmd();
        cmd.current_dir(elsewhere.path())
            .args(&args)
            .args(["--color", "never"]);
        let run = Run::of(&repo, &mut cmd);
        assert_eq!(run.code, 0, "{args:?}: {run:#?}");
        assert_eq!(run.stdout, inside.stdout, "{args:?}");
    }
    // From a member crate's directory the workspace root is found too.
    let mut cmd = repo.cmd();
    cmd.current_dir(repo.root().join("crates/app")).args([
        "tracks",
        "--dry-run",
        "--color",
        "never",
    ]);
    let run = Run::of(&repo, &mut cmd).ok();
    assert_eq!(run.stdout, inside.stdout);

    let mut cmd = repo.cmd();
    cmd.current_dir(elsewhere.path()).args([
        "list",
        "--manifest-path",
        manifest,
        "--color",
        "never",
    ]);
    let run = Run::of(&repo, &mut cmd).ok();
    assert!(run.stdout.contains("tracks"), "{run:#?}");
}

#[test]
fn options_of_every_command_work_before_the_command() {
    let repo = Repo::new(&[("tracks", "specs/tracks"), ("list", "specs/plain-list")]);
    let elsewhere = TempDir::new().expect("temp dir");
    let manifest = repo.root().join("Cargo.toml");
    let manifest = manifest.to_str().expect("utf-8 path");
    // Runs from outside the repository, so only --manifest-path finds it.
    let run = |args: &[&str]| {
        let mut cmd = repo.cmd();
        cmd.current_dir(elsewhere.path()).args(args);
        Run::of(&repo, &mut cmd)
    };
    let listed = |run: Run| {
        let run = run.ok();
        assert!(run.stdout.starts_with("FEATURE"), "{run:#?}");
        assert!(run.stdout.contains("\ntracks "), "{run:#?}");
    };
    listed(run(&[
        "--manifest-path",
        manifest,
        "list",
        "--color",
        "never",
    ]));
    listed(run(&[
        "--color",
        "never",
        "--manifest-path",
        manifest,
        "list",
    ]));
    listed(run(&[&format!("--manifest-path={manifest}"), "list"]));
    // As cargo calls it.
    listed(run(&["spec-exec", "--manifest-path", manifest, "list"]));
    listed(run(&[
        "spec-exec",
        "-v",
        "--manifest-path",
        manifest,
        "list",
    ]));

    let lines = run(&[
        "--message-format",
        "json",
        "--manifest-path",
        manifest,
        "list",
    ])
    .ok()
    .json_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines.iter().all(|l| l["type"] == "feature"), "{lines:#?}");

    for args in [
        vec!["-q", "--manifest-path", manifest, "check"],
        vec!["spec-exec", "-q", "--manifest-path", manifest, "check"],
        vec!["--manifest-path", manifest, "-q", "check", "tracks"],
    ] {
        let run = run(&args);
        assert_eq!(run.code, 0, "{args:?}: {run:#?}");
        assert_eq!(run.stderr, "", "{args:?}: quiet");
    }

    let plan = |feature: &str| format!("Execution Plan for {feature}:\n");
    for args in [
        vec!["--manifest-path", manifest, "run", "tracks", "--dry-run"],
        vec![
            "spec-exec",
            "--manifest-path",
            manifest,
            "run",
            "tracks",
            "--dry-run",
        ],
        vec!["--manifest-path", manifest, "--dry-run", "run", "tracks"],
        vec![
            "--color",
            "never",
            "--manifest-path",
            manifest,
            "tracks",
            "--dry-run",
        ],
    ] {
        let run = run(&args);
        assert_eq!(run.code, 0, "{args:?}: {run:#?}");
        assert!(
            run.stdout.starts_with(&plan("tracks")),
            "{args:?}: {run:#?}"
        );
    }
    // A feature named like a command, with options before `run`.
    let run_list = run(&["--manifest-path", manifest, "--dry-run", "run", "list"]).ok();
    assert!(run_list.stdout.starts_with(&plan("list")), "{run_list:#?}");
}

#[test]
fn run_options_may_come_before_the_feature() {
    let repo = Repo::new(&[("tracks", "specs/tracks"), ("check", "specs/plain-list")]);
    let expected = repo.run(&["tracks", "--dry-run"]).ok().stdout;
    for args in [
        vec!["--dry-run", "tracks"],
        vec!["spec-exec", "--dry-run", "tracks"],
        vec!["--dry-run", "--max-agents", "6", "tracks"],
        // An option's value is not taken for the feature or a command.
        vec!["--agent", "check", "--dry-run", "tracks"],
        vec!["--agent=list", "tracks", "--dry-run"],
        vec!["-q", "--dry-run", "run", "tracks"],
    ] {
        let run = repo.run(&args);
        assert_eq!(run.code, 0, "{args:?}: {run:#?}");
        assert_eq!(run.stdout, expected, "{args:?}");
    }
    let verbose = repo.run(&["tracks", "--dry-run", "-v"]).ok().stdout;
    assert_eq!(
        repo.run(&["-v", "--dry-run", "tracks"]).ok().stdout,
        verbose
    );
    // The word after `--` is a feature, even one named like a command (and all after `--` is
    // positional, so `--color` comes first here).
    let mut cmd = repo.cmd();
    cmd.args(["--color", "never", "--dry-run", "--", "check"]);
    let run = Run::of(&repo, &mut cmd).ok();
    assert!(
        run.stdout.starts_with("Execution Plan for check:\n"),
        "{run:#?}"
    );
    // A command does not take run options, wherever they are.
    let run = repo.run(&["--dry-run", "check"]).invalid();
    assert!(
        run.stderr.contains("unexpected argument '--dry-run'"),
        "{run:#?}"
    );
    // Run options without a feature: the feature is missing.
    let run = repo.run(&["--dry-run"]).invalid();
    assert!(run.stderr.contains("<FEATURE>"), "{run:#?}");
    // Only options of every command, no feature: the hint of `no feature named`.
    let run = repo.run(&["-q"]).invalid();
    assert!(run.stderr.contains("error: no feature named"), "{run:#?}");
}

#[test]
fn a_missing_manifest_or_no_workspace_is_an_error() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    let run = repo
        .run(&[
            "tracks",
            "--dry-run",
            "--manifest-path",
            "nowhere/Cargo.toml",
        ])
        .invalid();
    assert!(
        run.stderr
            .contains("error: manifest `nowhere/Cargo.toml` does not exist"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("= help: "), "{run:#?}");

    let elsewhere = TempDir::new().expect("temp dir");
    let mut cmd = repo.cmd();
    cmd.current_dir(elsewhere.path())
        .args(["tracks", "--dry-run", "--color", "never"]);
    let run = Run::of(&repo, &mut cmd).invalid();
    assert!(
        run.stderr.contains("could not read the Cargo workspace"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("--manifest-path"), "{run:#?}");
}

#[test]
fn a_single_package_root_works_and_reads_its_package_metadata() {
    let repo = Repo::with(
        Layout::Package,
        "max-agents = 2",
        &[("parallel-groups", "specs/parallel-groups")],
    );
    let run = repo.run(&["parallel-groups", "--dry-run"]).ok();
    assert!(
        run.stdout
            .contains("Total: 8 tasks pending (0 done), critical path 3 tasks, at most 2 agents"),
        "{run:#?}"
    );
    let run = repo.run(&["list"]).ok();
    assert!(run.stdout.contains("parallel-groups"), "{run:#?}");
}

#[test]
fn workspace_configuration_and_command_line_overrides() {
    let repo = Repo::with(
        Layout::Workspace,
        "max-agents = 3\nfeatures-dir = \"specs\"",
        &[],
    );
    repo.write("specs/search/tasks.md", fixture("specs/parallel-groups"));
    repo.commit("specs elsewhere");
    let run = repo.run(&["search", "--dry-run"]).ok();
    assert!(run.stdout.contains("at most 3 agents"), "{run:#?}");
    let run = repo.run(&["search", "--dry-run", "--max-agents", "1"]).ok();
    assert!(run.stdout.contains("at most 1 agent\n"), "{run:#?}");
    let plan = repo
        .run(&[
            "search",
            "--dry-run",
            "--max-agents",
            "1",
            "--message-format",
            "json",
        ])
        .ok()
        .plan();
    assert_eq!(plan["max_agents"], 1);
    assert_eq!(plan["tasks_file"], "specs/search/tasks.md");
    // The default features directory is not read when another is configured.
    let run = repo.run(&["list"]).ok();
    assert!(run.stdout.contains("search"), "{run:#?}");
    let run = repo
        .run(&["search", "--dry-run", "--max-agents", "0"])
        .invalid();
    assert!(run.stderr.contains("--max-agents"), "{run:#?}");
}

// ---------------------------------------------------------------------------------------------
// The shapes of tasks.md: human dry runs (snapshots) and the parsed model (JSON).
// ---------------------------------------------------------------------------------------------

#[test]
fn plain_list_runs_in_document_order_and_says_so() {
    let repo = Repo::new(&[("plain-list", "specs/plain-list")]);
    let run = repo.run(&["plain-list", "--dry-run"]).ok();
    assert!(run.stderr.is_empty(), "{run:#?}");
    insta::assert_snapshot!("dry_run_plain_list", run.stdout);
    assert!(run.stdout.contains(
        "No dependencies are declared, so tasks run one after another in document order."
    ));

    let plan = plan_json(&repo, "plain-list");
    assert_eq!(plan["sequential"], true);
    assert_eq!(
        groups(&plan),
        vec![vec!["1"], vec!["2"], vec!["3"], vec!["4"]]
    );
    assert!(deps(&plan, "1").is_empty());
    for (id, prev) in [("2", "1"), ("3", "2"), ("4", "3")] {
        assert_eq!(
            deps(&plan, id),
            vec![(prev.to_owned(), "document-order".to_owned())]
        );
    }
    assert_eq!(task(&plan, "1")["requirements"], "1.1");
    assert_eq!(
        plan["summary"]["critical_path"],
        serde_json::json!(["1", "2", "3", "4"])
    );
}

#[test]
fn subtasks_nested_and_flat_inherit_their_containers_dependencies() {
    let repo = Repo::new(&[("subtasks", "specs/subtasks")]);
    let run = repo.run(&["subtasks", "--dry-run"]).ok();
    insta::assert_snapshot!("dry_run_subtasks", run.stdout);

    let plan = plan_json(&repo, "subtasks");
    assert_eq!(plan["sequential"], false);
    insta::assert_snapshot!(
        "dry_run_json_subtasks",
        serde_json::to_string_pretty(&plan).expect("pretty JSON")
    );
    // Nested (2.1, 2.2 under 2) and flat (3.1-3.3 after 3) sub-tasks.
    for (container, subs) in [("2", vec!["2.1", "2.2"]), ("3", vec!["3.1", "3.2", "3.3"])] {
        let c = task(&plan, container);
        assert_eq!(c["kind"], "container");
        assert_eq!(c["group"], Value::Null, "a container never runs");
        assert_eq!(c["subtasks"], serde_json::json!(subs));
        for s in subs {
            assert_eq!(task(&plan, s)["parent"], container);
            assert_eq!(task(&plan, s)["kind"], "task");
        }
    }
    // Inherited from the container.
    assert_eq!(
        deps(&plan, "2.1"),
        vec![("1".to_owned(), "parent".to_owned())]
    );
    assert_eq!(
        deps(&plan, "2.2"),
        vec![("1".to_owned(), "parent".to_owned())]
    );
    assert!(deps(&plan, "3.1").is_empty() && deps(&plan, "3.3").is_empty());
    assert_eq!(dep_ids(&plan, "3.2"), vec!["3.1"]);
    // A dependency on a container means all its sub-tasks.
    assert_eq!(dep_ids(&plan, "4"), vec!["2.1", "2.2", "3.1", "3.2", "3.3"]);
    assert_eq!(
        groups(&plan),
        vec![
            vec!["1", "3.1", "3.3"],
            vec!["2.1", "2.2", "3.2"],
            vec!["4"]
        ]
    );
    // The detail of 2.2 (nested two levels deep) is kept.
    assert!(
        task(&plan, "2.2")["details"]
            .to_string()
            .contains("Escapes")
    );
}

#[test]
fn tracks_with_review_tasks() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    let run = repo.run(&["tracks", "--dry-run"]).ok();
    insta::assert_snapshot!("dry_run_tracks", run.stdout);
    let verbose = repo.run(&["tracks", "--dry-run", "-v"]).ok();
    insta::assert_snapshot!("dry_run_tracks_verbose", verbose.stdout);

    let plan = plan_json(&repo, "tracks");
    insta::assert_snapshot!(
        "dry_run_json_tracks",
        serde_json::to_string_pretty(&plan).expect("pretty JSON")
    );
    for (id, track) in [
        ("1", "A"),
        ("2", "A"),
        ("CR-A", "A"),
        ("PR-A", "A"),
        ("RW-A", "A"),
        ("3", "B"),
        ("4", "B"),
        ("CR-B", "B"),
        ("RW-B", "B"),
        ("5", "C"),
    ] {
        assert_eq!(task(&plan, id)["track"], track, "track of {id}");
    }
    // `> Primary Agent:` is the track's default; `_Agent:_` wins.
    assert_eq!(task(&plan, "1")["agent"], "rust-developer");
    assert_eq!(task(&plan, "5")["agent"], "data-engineer");
    assert_eq!(task(&plan, "CR-A")["agent"], "rust-reviewer");
    assert_eq!(task(&plan, "PR-A")["agent"], "product-reviewer");
    // Qualifiers and conditions.
    let pr_a = &task(&plan, "PR-A")["dependencies"][0];
    assert_eq!(pr_a["id"], "CR-A");
    assert_eq!(pr_a["requires"], "approved");
    assert_eq!(
        task(&plan, "RW-A")["condition"],
        serde_json::json!(["CR-A", "PR-A"])
    );
    assert_eq!(
        task(&plan, "RW-A")["trigger"],
        "Only if CR-A or PR-A requires changes"
    );
    // The heading's dependencies apply to every task of track B, besides their own.
    for id in ["3", "4", "CR-B", "RW-B"] {
        assert!(
            deps(&plan, id).contains(&("PR-A".to_owned(), "heading".to_owned())),
            "{id}: {:?}",
            deps(&plan, id)
        );
    }
    assert_eq!(dep_ids(&plan, "CR-B"), vec!["3", "4", "PR-A"]);
    assert_eq!(
        plan["summary"]["critical_path"],
        serde_json::json!(["1", "2", "CR-A", "PR-A", "3", "4", "CR-B", "RW-B"])
    );
}

#[test]
fn parallel_groups_of_the_execution_strategy() {
    let repo = Repo::new(&[("parallel-groups", "specs/parallel-groups")]);
    let run = repo.run(&["parallel-groups", "--dry-run"]).ok();
    insta::assert_snapshot!("dry_run_parallel_groups", run.stdout);
    assert!(
        run.stdout
            .contains("- Group 2: Tasks 4-6 (depends on Group 1)")
    );

    let plan = plan_json(&repo, "parallel-groups");
    assert_eq!(plan["sequential"], false);
    assert_eq!(
        groups(&plan),
        vec![vec!["1", "2", "3", "7"], vec!["4", "5", "6"], vec!["CR1"]]
    );
    for id in ["4", "5", "6"] {
        assert_eq!(
            deps(&plan, id),
            ["1", "2", "3"]
                .iter()
                .map(|d| ((*d).to_owned(), "group".to_owned()))
                .collect::<Vec<_>>(),
            "{id}"
        );
    }
    assert_eq!(dep_ids(&plan, "CR1"), vec!["4", "5", "6"]);
    // `Immediate Start` waits for nothing, even after other groups.
    assert!(deps(&plan, "7").is_empty());
    assert_eq!(task(&plan, "CR1")["track"], Value::Null);
    assert_eq!(task(&plan, "CR1")["section"], "Checkpoint Review 1");
}

#[test]
fn done_tasks_states_and_estimates() {
    let repo = Repo::new(&[("done-and-estimates", "specs/done-and-estimates")]);
    let run = repo.run(&["done-and-estimates", "--dry-run"]).ok();
    insta::assert_snapshot!("dry_run_done_and_estimates", run.stdout);
    // `[-]` and `[~]` are warned about, with their place.
    assert!(
        run.stderr
            .contains("warning: task 7 is marked in progress (`[-]`)")
    );
    assert!(
        run.stderr
            .contains("--> documentation/features/done-and-estimates/tasks.md:27:3")
    );
    assert!(
        run.stderr
            .contains("warning: task 8 is marked not runnable (`[~]`)")
    );
    assert!(
        run.stderr
            .contains("--> documentation/features/done-and-estimates/tasks.md:30:3")
    );
    // -q hides warnings.
    let quiet = repo.run(&["done-and-estimates", "--dry-run", "-q"]).ok();
    assert!(quiet.stderr.is_empty(), "{quiet:#?}");
    assert_eq!(quiet.stdout, run.stdout);

    let plan = plan_json(&repo, "done-and-estimates");
    for (id, state) in [
        ("1", "done"),
        ("2", "pending"),
        ("3", "done"),
        ("6", "done"),
        ("9", "pending"),
    ] {
        assert_eq!(task(&plan, id)["state"], state, "state of {id}");
    }
    for id in ["1", "3", "6"] {
        assert_eq!(
            task(&plan, id)["group"],
            Value::Null,
            "done {id} is in no group"
        );
    }
    assert_eq!(task(&plan, "8")["blocked"], "not-runnable");
    assert_eq!(task(&plan, "9")["blocked"], "waits-for-blocked");
    assert_eq!(task(&plan, "2")["estimate"], "2h");
    assert_eq!(task(&plan, "4")["estimate"], "30m");
    // `(3h)` is read as the estimate, not kept in the title.
    assert_eq!(task(&plan, "5")["estimate"], "3h");
    assert_eq!(task(&plan, "5")["title"], "Rate limiting");
    assert_eq!(plan["summary"]["done"], 3);
    assert_eq!(plan["summary"]["pending"], 6);
    assert_eq!(plan["summary"]["runnable"], 4);
    assert_eq!(plan["summary"]["blocked"], 2);
    let warnings = plan["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(warnings[0]["location"]["line"], 27);
}

#[test]
fn crlf_unicode_titles_and_fenced_code_blocks() {
    let repo = Repo::new(&[("crlf-unicode-fences", "specs/crlf-unicode-fences")]);
    let run = repo.run(&["crlf-unicode-fences", "--dry-run", "-v"]).ok();
    assert!(run.stderr.is_empty(), "{run:#?}");
    for line in [
        "Ready to Execute (Group 1):\n- Task 1 (1 task)\n    1 Zeichensätze prüfen — ünïcödé 日本語\n",
        "- Group 2: Tasks 2.1-2.2 (depends on Group 1)\n    2.1 Règles pour le français\n    2.2 Regeln für Deutsch\n",
        "- Group 3: Task 4 (depends on Group 2)\n    4 中文 release notes\n",
        "Total: 4 tasks pending (1 done), critical path 3 tasks, at most 2 agents\n",
    ] {
        assert!(
            run.stdout.contains(line),
            "missing {line:?} in\n{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains('\r'), "a CR in the output");

    let plan = plan_json(&repo, "crlf-unicode-fences");
    // Nothing in a fenced code block or an HTML comment is a task.
    assert_eq!(ids(&plan), vec!["1", "2", "2.1", "2.2", "3", "4"]);
    assert_eq!(task(&plan, "2")["title"], "Плюрализация (plural rules)");
    assert_eq!(
        task(&plan, "3")["title"],
        "Emoji in prose stays: 🎉 launch notes"
    );
    assert_eq!(task(&plan, "3")["state"], "done");
    assert_eq!(task(&plan, "4")["line"], 26);
    assert_eq!(dep_ids(&plan, "4"), vec!["2.1", "3"]);
    let blocks = task(&plan, "1")["code_blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0]["lang"], "sh");
    assert!(
        blocks[0]["code"]
            .as_str()
            .expect("code")
            .contains("- [ ] 99. Not a task")
    );
    let toml = &task(&plan, "2.2")["code_blocks"][0];
    assert_eq!(toml["lang"], "toml");
    for t in plan["tasks"].as_array().expect("tasks") {
        for d in t["details"].as_array().expect("details") {
            assert!(!d.as_str().expect("detail").contains('\r'), "{d}");
        }
        assert!(!t["title"].as_str().expect("title").contains('\r'));
    }
}

#[test]

fn crlf_code_blocks_have_no_carriage_returns() {
    let repo = Repo::new(&[("crlf-unicode-fences", "specs/crlf-unicode-fences")]);
    let plan = plan_json(&repo, "crlf-unicode-fences");
    assert_eq!(
        task(&plan, "1")["code_blocks"][0]["code"],
        "cargo run --example check-locales\n- [ ] 99. Not a task (inside a fenced code block)"
    );
    assert_eq!(
        task(&plan, "2.2")["code_blocks"][0]["code"],
        "[plural]\none = \"{ $n } Datei\""
    );
}

#[test]
fn tabs_indent_details_and_subtasks() {
    let repo = Repo::new(&[("tabs", "specs/tabs")]);
    let plan = plan_json(&repo, "tabs");
    assert_eq!(ids(&plan), vec!["1", "2", "2.1", "2.2", "3"]);
    assert_eq!(task(&plan, "2")["kind"], "container");
    assert_eq!(task(&plan, "2.1")["parent"], "2");
    assert_eq!(task(&plan, "2.2")["parent"], "2");
    assert_eq!(task(&plan, "2.2")["code_blocks"][0]["lang"], "sh");
    assert_eq!(task(&plan, "2.2")["code_blocks"][0]["code"], "ls cache/");
}

#[test]

fn tabs_indented_metadata_is_read() {
    let repo = Repo::new(&[("tabs", "specs/tabs")]);
    let plan = plan_json(&repo, "tabs");
    assert_eq!(plan["sequential"], false);
    assert_eq!(
        task(&plan, "1")["details"],
        serde_json::json!(["Keep it behind a trait"])
    );
    assert!(deps(&plan, "1").is_empty());
    assert_eq!(
        deps(&plan, "2.1"),
        vec![("1".to_owned(), "parent".to_owned())]
    );
    assert_eq!(dep_ids(&plan, "3"), vec!["2.1", "2.2"]);
    assert_eq!(
        groups(&plan),
        vec![vec!["1"], vec!["2.1", "2.2"], vec!["3"]]
    );
}

#[test]
fn non_utf8_bytes_are_read_leniently() {
    let repo = Repo::new(&[("non-utf8", "specs/non-utf8")]);
    let run = repo.run(&["non-utf8", "--dry-run"]).ok();
    assert!(run.stderr.is_empty(), "{run:#?}");
    assert!(
        run.stdout
            .contains("- Group 2: Task 2 (depends on Group 1)")
    );
    let plan = plan_json(&repo, "non-utf8");
    assert_eq!(task(&plan, "1")["title"], "Caf\u{FFFD} menu parser");
    assert_eq!(
        task(&plan, "2")["title"],
        "Price list \u{FFFD}\u{FFFD} import"
    );
    assert_eq!(dep_ids(&plan, "2"), vec!["1"]);
    repo.run(&["check", "non-utf8"]).ok();
    // Reading never rewrites the file.
    assert_eq!(
        repo.read(&repo.tasks("non-utf8")),
        fixture("specs/non-utf8")
    );
}

// ---------------------------------------------------------------------------------------------
// The JSON model.
// ---------------------------------------------------------------------------------------------

#[test]
fn json_dry_run_every_task_carries_the_model_fields() {
    let repo = Repo::all_specs();
    for name in SPECS {
        let run = repo
            .run(&[name, "--dry-run", "--message-format", "json"])
            .ok();
        // Only JSON on stdout: the plan, and warnings as diagnostic lines.
        assert!(
            run.json_lines()
                .iter()
                .all(|l| l["type"] == "plan" || l["type"] == "diagnostic"),
            "{name}"
        );
        let plan = run.plan();
        assert_eq!(plan["format_version"], 1);
        assert_eq!(plan["feature"], *name);
        assert_eq!(
            plan["tasks_file"],
            format!("documentation/features/{name}/tasks.md")
        );
        assert_eq!(plan["approval"]["state"], "unapproved");
        let text = String::from_utf8_lossy(&fixture(&format!("specs/{name}"))).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let tasks = plan["tasks"].as_array().expect("tasks");
        assert!(!tasks.is_empty(), "{name}");
        let group_count = plan["groups"].as_array().expect("groups").len() as u64;
        for t in tasks {
            let id = t["id"].as_str().expect("id is a string");
            let title = t["title"].as_str().expect("title is a string");
            assert!(!title.is_empty(), "{name} {id}");
            assert!(
                t["track"].is_string() || t["track"].is_null(),
                "{name} {id}"
            );
            match &t["group"] {
                Value::Null => {}
                g => {
                    let g = g.as_u64().expect("group is a number");
                    assert!(g >= 1 && g <= group_count, "{name} {id}");
                }
            }
            for d in t["dependencies"].as_array().expect("dependencies") {
                assert!(d["id"].is_string(), "{name} {id}");
                assert!(d["requires"].is_string(), "{name} {id}");
                assert!(d["source"].is_string(), "{name} {id}");
            }
            assert!(t["state"].is_string(), "{name} {id}");
            assert!(t["kind"] == "task" || t["kind"] == "container");
            // The source line is the task's line in the file.
            let line = t["line"].as_u64().expect("line is a number") as usize;
            assert!(line >= 1, "{name} {id}");
            let written = lines[line - 1];
            assert!(
                written.contains(&format!("] {id}")),
                "{name}: line {line} of task {id} is {written:?}"
            );
        }
        // Every pending, runnable task is in exactly one group, and the groups agree.
        for (k, g) in plan["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .enumerate()
        {
            assert_eq!(g["group"], k + 1);
            for id in g["tasks"].as_array().expect("group tasks") {
                let id = id.as_str().expect("id");
                assert_eq!(task(&plan, id)["group"], k + 1, "{name} {id}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors: one fixture per spec error, and the errors of names, directories and configuration.
// ---------------------------------------------------------------------------------------------

#[test]
fn error_unknown_dependency() {
    let repo = Repo::new(&[("unknown-dependency", "errors/unknown-dependency")]);
    for args in [
        vec!["unknown-dependency", "--dry-run"],
        vec!["check", "unknown-dependency"],
        vec!["approve", "unknown-dependency"],
    ] {
        let run = repo.run(&args);
        assert_spec_error(
            &run,
            "dependency on unknown task `7`",
            "documentation/features/unknown-dependency/tasks.md:11:33",
            "11 |   - _Dependencies: Task 2, Task 7_",
            "no task has this id",
        );
        assert!(
            run.stderr.contains(
                "help: use an id defined in this file (1, 2, 3), or remove the reference"
            ),
            "{run:#?}"
        );
    }
    // `approve` did not approve it.
    assert_eq!(
        repo.read(&repo.tasks("unknown-dependency")),
        fixture("errors/unknown-dependency")
    );
}

#[test]
fn error_dependency_cycle_prints_every_step() {
    let repo = Repo::new(&[("dependency-cycle", "errors/dependency-cycle")]);
    let run = repo.run(&["dependency-cycle", "--dry-run"]);
    assert_spec_error(
        &run,
        "dependency cycle: 1 → 3 → 2 → 1",
        "documentation/features/dependency-cycle/tasks.md:5:25",
        "5 |   - _Dependencies: Task 3_",
        "this dependency closes the cycle",
    );
    for note in [
        "= note: 1 waits for 3 (line 5)",
        "= note: 3 waits for 2 (line 11)",
        "= note: 2 waits for 1 (line 8)",
    ] {
        assert!(run.stderr.contains(note), "{note}: {run:#?}");
    }
}

#[test]
fn error_duplicate_id() {
    let repo = Repo::new(&[("duplicate-id", "errors/duplicate-id")]);
    let run = repo.run(&["duplicate-id", "--dry-run"]);
    assert_spec_error(
        &run,
        "duplicate task id `2`, which a dependency names: which task is meant is unclear",
        "documentation/features/duplicate-id/tasks.md:10:7",
        "10 | - [ ] 2. Seed the tables",
        "defined again here",
    );
    assert!(
        run.stderr.contains("`2` is first defined at line 7"),
        "{run:#?}"
    );
}

/// Duplicates no dependency names are not errors: the same task listed again is one task (done
/// if any copy is), another task under a used id is `<id>@<n>`, its n-th use.
#[test]
fn duplicate_ids_nothing_names_are_settled_with_warnings() {
    let repo = Repo::new(&[("duplicates", "specs/duplicates")]);
    let run = repo.run(&["duplicates", "--dry-run", "--message-format", "json"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let plan: serde_json::Value = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .find(|v| v["type"] == "plan")
        .expect("a plan");
    let tasks: Vec<(String, String, String)> = plan["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["id"].as_str().expect("id").to_owned(),
                t["title"].as_str().expect("title").to_owned(),
                t["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect();
    let expect =
        |id: &str, title: &str, state: &str| (id.to_owned(), title.to_owned(), state.to_owned());
    assert_eq!(
        tasks,
        vec![
            expect("1", "Parse the input", "done"),
            expect("2", "Validate the input", "done"),
            expect("3", "Write the output", "pending"),
            expect("3@2", "Compress the output", "pending"),
        ]
    );
    let warnings: Vec<&str> = plan["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["message"].as_str())
        .collect();
    assert!(
        warnings.contains(&"task 1 is listed twice (lines 6 and 12)"),
        "{warnings:?}"
    );
    assert!(
        warnings
            .contains(&"task id `3` is used again (first at line 8); this task is read as `3@2`"),
        "{warnings:?}"
    );
}

#[test]
fn error_an_id_too_long_for_a_branch() {
    let repo = Repo::new(&[("long-id", "errors/long-id")]);
    let run = repo.run(&["long-id", "--dry-run"]);
    assert_spec_error(
        &run,
        "task id `777777777777777777777777…` makes a branch name git cannot create",
        "documentation/features/long-id/tasks.md:4:7",
        "4 | - [ ] 777",
        "too long for a branch name",
    );
}

#[test]
fn error_unknown_track_in_a_heading() {
    let repo = Repo::new(&[("unknown-track", "errors/unknown-track")]);
    let run = repo.run(&["unknown-track", "--dry-run"]);
    assert_spec_error(
        &run,
        "dependency on unknown track `Z`",
        "documentation/features/unknown-track/tasks.md:7:40",
        "7 | ### Track B: Sync (Dependencies: Track Z)",
        "no task is in this track",
    );
    assert!(
        run.stderr
            .contains("help: tracks with tasks in this file: A, B"),
        "{run:#?}"
    );
}

#[test]
fn error_no_tasks_and_empty_file() {
    let repo = Repo::new(&[("no-tasks", "errors/no-tasks")]);
    let run = repo.run(&["no-tasks", "--dry-run"]).invalid();
    assert!(
        run.stderr.contains("error: tasks.md has no tasks"),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains("--> documentation/features/no-tasks/tasks.md\n"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("= help: a task is a checkbox item"),
        "{run:#?}"
    );

    repo.write("documentation/features/empty/tasks.md", "\n  \n");
    let run = repo.run(&["empty", "--dry-run"]).invalid();
    assert!(run.stderr.contains("error: tasks.md is empty"), "{run:#?}");
    assert!(
        run.stderr
            .contains("--> documentation/features/empty/tasks.md\n"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("= help: "), "{run:#?}");
}

#[test]
fn errors_are_json_diagnostics_in_json_mode() {
    let repo = Repo::new(&[("duplicate-id", "errors/duplicate-id")]);
    let run = repo
        .run(&["duplicate-id", "--dry-run", "--message-format", "json"])
        .invalid();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 1, "{run:#?}");
    let d = &lines[0];
    assert_eq!(d["type"], "diagnostic");
    assert_eq!(d["severity"], "error");
    assert_eq!(
        d["message"],
        "duplicate task id `2`, which a dependency names: which task is meant is unclear"
    );
    assert_eq!(
        d["location"],
        serde_json::json!({
            "path": "documentation/features/duplicate-id/tasks.md",
            "line": 10,
            "column": 7
        })
    );
    assert!(d["help"].is_string());
}

#[test]
fn error_missing_feature_lists_the_features_that_exist() {
    let repo = Repo::new(&[
        ("tracks", "specs/tracks"),
        ("plain-list", "specs/plain-list"),
    ]);
    for args in [
        vec!["user-auth", "--dry-run"],
        vec!["run", "user-auth"],
        vec!["approve", "user-auth"],
        vec!["check", "user-auth"],
    ] {
        let run = repo.run(&args).invalid();
        assert!(
            run.stderr.contains(
                "error: no feature `user-auth`: `documentation/features/user-auth` does not exist"
            ),
            "{args:?}: {run:#?}"
        );
        assert!(
            run.stderr
                .contains("= help: features that exist: plain-list, tracks"),
            "{args:?}: {run:#?}"
        );
    }
    // With no features at all, the hint says how to make one.
    let empty = Repo::new(&[]);
    let run = empty.run(&["user-auth", "--dry-run"]).invalid();
    assert!(
        run.stderr
            .contains("= help: create `documentation/features/user-auth/tasks.md`"),
        "{run:#?}"
    );
    let run = empty.run(&["list"]).ok();
    assert!(
        run.stderr
            .contains("no features under `documentation/features`"),
        "{run:#?}"
    );
}

#[test]
fn error_missing_tasks_md() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    repo.write("documentation/features/draft/requirements.md", "# Draft\n");
    repo.commit("a feature without tasks");
    let run = repo.run(&["draft", "--dry-run"]).invalid();
    assert!(
        run.stderr
            .contains("error: feature `draft` has no tasks.md"),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains("--> documentation/features/draft/tasks.md\n"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("= help: write the task list"),
        "{run:#?}"
    );
    // `check` of every feature reports it too, and `list` shows it with no counts.
    let run = repo.run(&["check"]).invalid();
    assert!(
        run.stderr.contains("feature `draft` has no tasks.md"),
        "{run:#?}"
    );
    let run = repo.run(&["list"]).ok();
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("draft") && l.contains("1 error (cargo spec-exec check draft)")),
        "{run:#?}"
    );
}

#[test]
fn error_invalid_feature_names() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    for (name, why) in [
        ("../x", "contains a path separator"),
        ("a b", "contains a space"),
        ("x..y", "contains `..`"),
        ("x.lock", "ends with `.` or `.lock`"),
    ] {
        for args in [
            vec!["run", name, "--dry-run"],
            vec!["approve", name],
            vec!["check", name],
        ] {
            let run = repo.run(&args).invalid();
            assert!(
                run.stderr
                    .contains(&format!("error: invalid feature name `{name}`: it {why}")),
                "{args:?}: {run:#?}"
            );
            assert!(
                run.stderr.contains("= help: name a directory"),
                "{args:?}: {run:#?}"
            );
        }
    }
    // The direct form too (a name that is not an option).
    let run = repo.run(&["../x", "--dry-run"]).invalid();
    assert!(
        run.stderr.contains("invalid feature name `../x`"),
        "{run:#?}"
    );
}

/// Links `link` (relative to the repository) to `target`.
#[cfg(unix)]
fn symlink(repo: &Repo, target: &Path, link: &str) {
    let link = repo.root().join(link);
    std::fs::create_dir_all(link.parent().expect("a parent")).expect("create dirs");
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

#[cfg(unix)]
#[track_caller]
fn assert_outside(run: &Run, feature: &str, link: &str, target: &Path) {
    assert!(
        run.stderr.contains(&format!(
            "error: feature `{feature}` is outside the workspace: `{link}` leads to `{}`",
            target.display()
        )),
        "{run:#?}"
    );
    assert!(run.stderr.contains(&format!("--> {link}\n")), "{run:#?}");
    assert!(
        run.stderr
            .contains("= note: a feature's files must be inside the workspace"),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains(&format!("= help: replace the symbolic link `{link}`")),
        "{run:#?}"
    );
}

#[cfg(unix)]
#[test]
fn a_feature_linked_out_of_the_repository_is_refused() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    let outside = TempDir::new().expect("temp dir");
    let target = outside.path().canonicalize().expect("canonical");
    std::fs::write(target.join("tasks.md"), fixture("specs/plain-list")).expect("write");
    symlink(&repo, &target, "documentation/features/evil");
    let link = "documentation/features/evil";

    for args in [
        vec!["evil", "--dry-run"],
        vec!["run", "evil", "--dry-run"],
        vec!["evil", "--dry-run", "--message-format", "json"],
        vec!["run", "evil", "--agent", "shell"],
        vec!["approve", "evil"],
        vec!["check", "evil"],
    ] {
        let run = repo.run(&args).invalid();
        if args.contains(&"json") {
            let d = &run.json_lines()[0];
            assert_eq!(d["type"], "diagnostic", "{run:#?}");
            assert_eq!(d["location"]["path"], link, "{run:#?}");
        } else {
            assert_outside(&run, "evil", link, &target);
        }
        // Not read: nothing of the outside list is shown.
        assert!(!run.stdout.contains("Execution Plan"), "{args:?}: {run:#?}");
    }
    // Nothing was written outside, nothing ran.
    assert_eq!(
        std::fs::read(target.join("tasks.md")).expect("read"),
        fixture("specs/plain-list")
    );
    assert_eq!(std::fs::read_dir(&target).expect("list").count(), 1);
    assert!(!repo.root().join(".git/spec-exec").exists());

    // `list` shows it as an error without reading it; `check` fails on it.
    let run = repo.run(&["list"]).ok();
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("evil "))
        .unwrap_or_else(|| panic!("no evil row: {run:#?}"));
    assert!(
        row.contains(" -  ") && row.contains("1 error (cargo spec-exec check evil)"),
        "{row}"
    );
    let lines = repo
        .run(&["list", "--message-format", "json"])
        .ok()
        .json_lines();
    let evil = lines.iter().find(|l| l["name"] == "evil").expect("evil");
    assert_eq!(evil["errors"], 1);
    assert_eq!(evil["total"], 0);
    let run = repo.run(&["check"]).invalid();
    assert_outside(&run, "evil", link, &target);
    assert!(run.stderr.contains("Checked tracks"), "{run:#?}");
}

#[cfg(unix)]
#[test]
fn a_tasks_md_or_features_dir_linked_out_of_the_repository_is_refused() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    let outside = TempDir::new().expect("temp dir");
    let target = outside.path().canonicalize().expect("canonical");
    std::fs::write(target.join("tasks.md"), fixture("specs/plain-list")).expect("write");
    symlink(
        &repo,
        &target.join("tasks.md"),
        "documentation/features/evil/tasks.md",
    );
    let link = "documentation/features/evil/tasks.md";
    for args in [vec!["evil", "--dry-run"], vec!["approve", "evil"]] {
        let run = repo.run(&args).invalid();
        assert_outside(&run, "evil", link, &target.join("tasks.md"));
    }
    let run = repo.run(&["check"]).invalid();
    assert_outside(&run, "evil", link, &target.join("tasks.md"));
    assert_eq!(
        std::fs::read(target.join("tasks.md")).expect("read"),
        fixture("specs/plain-list")
    );

    // A features directory that is itself a link out: the link is named, every feature refused.
    let repo = Repo::with(Layout::Workspace, "features-dir = \"specs\"", &[]);
    std::fs::create_dir(target.join("feat")).expect("mkdir");
    std::fs::write(target.join("feat/tasks.md"), fixture("specs/tracks")).expect("write");
    symlink(&repo, &target, "specs");
    let run = repo.run(&["feat", "--dry-run"]).invalid();
    assert_outside(&run, "feat", "specs", &target);
    let run = repo.run(&["list"]).ok();
    assert!(
        run.stdout.contains("1 error (cargo spec-exec check feat)"),
        "{run:#?}"
    );
}

#[cfg(unix)]
#[test]
fn a_feature_linked_inside_the_repository_is_fine() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    repo.write("elsewhere/plain/tasks.md", fixture("specs/plain-list"));
    symlink(
        &repo,
        &repo.root().join("documentation/features/tracks"),
        "documentation/features/alias",
    );
    // A relative link too.
    symlink(
        &repo,
        Path::new("../../elsewhere/plain"),
        "documentation/features/plain",
    );
    let tracks = repo.run(&["tracks", "--dry-run"]).ok();
    let alias = repo.run(&["alias", "--dry-run"]).ok();
    assert_eq!(
        alias.stdout.replace("alias", "tracks"),
        tracks.stdout,
        "{alias:#?}"
    );
    let plain = repo.run(&["plain", "--dry-run"]).ok();
    assert!(
        plain.stdout.starts_with("Execution Plan for plain:\n"),
        "{plain:#?}"
    );
    let run = repo.run(&["list"]).ok();
    assert!(!run.stdout.contains("error"), "{run:#?}");
    repo.run(&["check"]).ok();
}

#[test]
fn error_unknown_configuration_key() {
    for layout in [Layout::Workspace, Layout::Package] {
        let repo = Repo::with(
            layout,
            "max-agents = 2\nmax-agent = 3",
            &[("tracks", "specs/tracks")],
        );
        let table = match layout {
            Layout::Workspace => "workspace",
            Layout::Package => "package",
        };
        let manifest = String::from_utf8(repo.read("Cargo.toml")).expect("utf-8");
        let line = manifest
            .lines()
            .position(|l| l.starts_with("max-agent ="))
            .expect("the key")
            + 1;
        for args in [vec!["tracks", "--dry-run"], vec!["list"], vec!["check"]] {
            let run = repo.run(&args).invalid();
            let err = &run.stderr;
            assert!(
                err.contains(&format!(
                    "error: unknown key `max-agent` in [{table}.metadata.spec-exec]"
                )),
                "{args:?}: {err}"
            );
            assert!(err.contains(&format!("--> Cargo.toml:{line}:1")), "{err}");
            assert!(err.contains(&format!("{line} | max-agent = 3")), "{err}");
            assert!(err.contains("^^^^^^^^^ not a spec-exec setting"), "{err}");
            assert!(
                err.contains(
                    "= help: the keys are: features-dir, max-agents, agent, timeout, branch-prefix"
                ),
                "{err}"
            );
        }
    }
}

#[test]
fn error_unknown_track_option() {
    let repo = Repo::new(&[
        ("tracks", "specs/tracks"),
        ("plain-list", "specs/plain-list"),
    ]);
    let run = repo.run(&["tracks", "--dry-run", "--track", "Z"]).invalid();
    assert!(
        run.stderr.contains("error: no track `Z` in this task list"),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains("= help: tracks in this task list: A, B, C"),
        "{run:#?}"
    );
    let run = repo
        .run(&["plain-list", "--dry-run", "--track", "A"])
        .invalid();
    assert!(
        run.stderr.contains("has no `### Track X: …` headings"),
        "{run:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// --track.
// ---------------------------------------------------------------------------------------------

#[test]
fn track_selection_shows_that_track_and_what_blocks_it() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    let run = repo.run(&["tracks", "--dry-run", "--track", "A"]).ok();
    insta::assert_snapshot!("dry_run_tracks_track_a", run.stdout);
    assert!(run.stdout.contains("(tracks: A)"));
    assert!(
        run.stdout.contains(
            "- Task 2 waits for unfinished work outside the selected tracks: 5 (Track C)"
        )
    );
    for other in ["Track C:", "Task 3", "Task 4", "CR-B", "RW-B", "Task 5 "] {
        assert!(!run.stdout.contains(other), "{other} shown: {}", run.stdout);
    }
    // `a` and `Track A` name the same track.
    for name in ["a", "Track A"] {
        let same = repo.run(&["tracks", "--dry-run", "--track", name]).ok();
        assert_eq!(same.stdout, run.stdout, "--track {name:?}");
    }
    let plan = repo
        .run(&[
            "tracks",
            "--dry-run",
            "--track",
            "A",
            "--message-format",
            "json",
        ])
        .ok()
        .plan();
    assert_eq!(plan["tracks"], serde_json::json!(["A"]));
    assert_eq!(task(&plan, "1")["group"], 1);
    assert_eq!(task(&plan, "2")["blocked"], "outside-tracks");
    for id in ["CR-A", "PR-A", "RW-A"] {
        assert_eq!(task(&plan, id)["blocked"], "waits-for-blocked", "{id}");
    }
    assert_eq!(plan["summary"]["pending"], 5);
    assert_eq!(plan["summary"]["runnable"], 1);

    // Track B waits on track A as a whole; two tracks together run.
    let run = repo.run(&["tracks", "--dry-run", "--track", "B"]).ok();
    assert_eq!(
        run.stdout
            .matches("waits for unfinished work outside the selected tracks: PR-A (Track A)")
            .count(),
        4,
        "{}",
        run.stdout
    );
    let run = repo
        .run(&["tracks", "--dry-run", "--track", "A", "--track", "C"])
        .ok();
    assert!(run.stdout.contains("(tracks: A, C)"), "{}", run.stdout);
    assert!(!run.stdout.contains("Cannot Run"), "{}", run.stdout);
    assert!(
        run.stdout.contains("Total: 6 tasks pending (0 done)"),
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// Approval.
// ---------------------------------------------------------------------------------------------

#[test]
fn run_refuses_an_unapproved_list_and_dry_run_list_check_do_not_need_approval() {
    let repo = Repo::new(&[("plain-list", "specs/plain-list")]);
    for args in [
        vec!["plain-list"],
        vec!["run", "plain-list", "--agent", "shell"],
    ] {
        let run = repo.run(&args).invalid();
        assert!(
            run.stderr
                .contains("error: the task list of `plain-list` has not been approved"),
            "{run:#?}"
        );
        assert!(
            run.stderr
                .contains("--> documentation/features/plain-list/tasks.md"),
            "{run:#?}"
        );
        assert!(
            run.stderr.contains("`cargo spec-exec approve plain-list`"),
            "{run:#?}"
        );
    }
    // Nothing ran: no run directory, no branch, the file untouched.
    assert!(!repo.root().join(".git/spec-exec").exists());
    assert_eq!(git(repo.root(), &["branch", "--list", "spec/*"]), "");
    assert_eq!(
        repo.read(&repo.tasks("plain-list")),
        fixture("specs/plain-list")
    );

    let run = repo.run(&["plain-list", "--dry-run"]).ok();
    assert!(run.stdout.contains(
        "Approval: not approved; review the tasks, then run `cargo spec-exec approve plain-list`"
    ));
    let run = repo.run(&["list"]).ok();
    assert!(run.stdout.contains("not approved"), "{run:#?}");
    let run = repo.run(&["check"]).ok();
    assert!(
        run.stderr
            .contains("plain-list (Kiro task list, 0/4 tasks done, not approved)"),
        "{run:#?}"
    );
}

#[test]
fn approve_adds_front_matter_and_changes_nothing_else() {
    let repo = Repo::new(&[
        ("plain-list", "specs/plain-list"),
        ("crlf-unicode-fences", "specs/crlf-unicode-fences"),
        ("non-utf8", "specs/non-utf8"),
    ]);
    for (name, eol) in [
        ("plain-list", "\n"),
        ("crlf-unicode-fences", "\r\n"),
        ("non-utf8", "\n"),
    ] {
        let before = repo.read(&repo.tasks(name));
        let run = repo.run(&["approve", name]).ok();
        assert!(
            run.stderr.contains(&format!("Approved {name}: ")),
            "{run:#?}"
        );
        let after = repo.read(&repo.tasks(name));
        let (front, rest) = split_front_matter(&after);
        assert_eq!(rest, before.as_slice(), "{name}: the body changed");
        let lines: Vec<&str> = front.split(eol).collect();
        assert_eq!(lines.len(), 6, "{name}: {front:?}");
        assert_eq!(lines[0], "---");
        let digest = lines[1]
            .strip_prefix("spec-exec-approved: ")
            .expect("the digest line");
        assert!(
            digest.len() == 40 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{digest}"
        );
        assert_eq!(lines[2], format!("spec-exec-approved-by: {USER} <{EMAIL}>"));
        assert!(
            lines[3].starts_with("spec-exec-approved-at: \""),
            "{front:?}"
        );
        assert_eq!(lines[4], "---");
        assert_eq!(lines[5], "");
        // The digest printed is the one recorded.
        assert!(
            run.stderr.contains(&format!("digest {}", &digest[..12])),
            "{run:#?}"
        );

        // Approving again changes nothing.
        let again = repo.run(&["approve", name]).ok();
        assert!(
            again.stderr.contains(&format!("Approved {name} already")),
            "{again:#?}"
        );
        assert_eq!(repo.read(&repo.tasks(name)), after);

        let run = repo.run(&[name, "--dry-run"]).ok();
        assert!(
            run.stdout
                .contains(&format!("Approval: approved by {USER} <{EMAIL}> at ")),
            "{run:#?}"
        );
        let plan = plan_json(&repo, name);
        assert_eq!(plan["approval"]["state"], "approved");
        assert_eq!(plan["approval"]["record"]["digest"], digest);
    }
    let run = repo.run(&["list"]).ok();
    assert_eq!(run.stdout.matches(" approved ").count(), 3, "{run:#?}");
}

#[test]
fn approve_keeps_existing_front_matter() {
    let repo = Repo::new(&[]);
    let body = fixture("specs/plain-list");
    let mut file = b"---\ntitle: Settings\nowner: team-config\n---\n".to_vec();
    file.extend_from_slice(&body);
    repo.write(&repo.tasks("settings"), &file);
    repo.commit("front matter");
    repo.run(&["approve", "settings"]).ok();
    let after = String::from_utf8(repo.read(&repo.tasks("settings"))).expect("utf-8");
    assert!(
        after.starts_with("---\ntitle: Settings\nowner: team-config\nspec-exec-approved: "),
        "{after}"
    );
    let (_, rest) = split_front_matter(after.as_bytes());
    assert_eq!(rest, body.as_slice());
    let run = repo.run(&["list"]).ok();
    assert!(run.stdout.contains(" approved "), "{run:#?}");
}

#[test]
fn ticking_a_box_keeps_the_approval_and_editing_a_title_voids_it() {
    let repo = Repo::new(&[
        ("plain-list", "specs/plain-list"),
        ("crlf-unicode-fences", "specs/crlf-unicode-fences"),
    ]);
    for name in ["plain-list", "crlf-unicode-fences"] {
        repo.run(&["approve", name]).ok();
        let path = repo.tasks(name);
        let approved = String::from_utf8(repo.read(&path)).expect("utf-8");

        // Tick task 1 (and untick nothing else): still approved.
        let ticked = approved.replacen("- [ ] 1. ", "- [x] 1. ", 1);
        assert_ne!(ticked, approved);
        repo.write(&path, &ticked);
        let run = repo.run(&["list"]).ok();
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .expect("the feature's line")
            .to_owned();
        assert!(line.contains(" approved "), "{line}");
        let run = repo.run(&["check", name]).ok();
        assert!(run.stderr.contains(", approved)"), "{run:#?}");
        let run = repo.run(&[name, "--dry-run"]).ok();
        assert!(run.stdout.contains("Approval: approved by "), "{run:#?}");
        assert!(
            !run.stdout
                .contains("Ready to Execute (Group 1):\n- Task 1 ")
        );

        // Edit a title: stale, and `run` asks for a new approval.
        let title = if name == "plain-list" {
            "Validate the configuration"
        } else {
            "Плюрализация"
        };
        let edited = ticked.replacen(title, "Renamed task", 1);
        assert_ne!(edited, ticked);
        repo.write(&path, &edited);
        let run = repo.run(&["list"]).ok();
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .expect("the feature's line")
            .to_owned();
        assert!(line.contains(" stale "), "{line}");
        let run = repo.run(&["check", name]).ok();
        assert!(run.stderr.contains(", stale)"), "{run:#?}");
        let run = repo.run(&[name, "--dry-run"]).ok();
        assert!(
            run.stdout.contains(&format!(
                "Approval: stale (the tasks changed since they were approved); review them, then run `cargo spec-exec approve {name}`"
            )),
            "{run:#?}"
        );
        let run = repo.run(&[name]).invalid();
        assert!(
            run.stderr.contains(&format!(
                "error: the task list of `{name}` changed since it was approved by {USER} <{EMAIL}>"
            )),
            "{run:#?}"
        );
        assert!(
            run.stderr
                .contains(&format!("`cargo spec-exec approve {name}`")),
            "{run:#?}"
        );
        assert!(!repo.root().join(".git/spec-exec").exists());

        // Approving again replaces the record, keeps the body.
        repo.run(&["approve", name]).ok();
        let reapproved = repo.read(&path);
        let (front, rest) = split_front_matter(&reapproved);
        let (_, edited_body) = split_front_matter(edited.as_bytes());
        assert_eq!(rest, edited_body);
        assert_eq!(front.matches("spec-exec-approved:").count(), 1, "{front}");
        let run = repo.run(&["check", name]).ok();
        assert!(run.stderr.contains(", approved)"), "{run:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// check and list.
// ---------------------------------------------------------------------------------------------

#[test]
fn check_all_features_clean() {
    let repo = Repo::new(&[
        ("plain-list", "specs/plain-list"),
        ("tracks", "specs/tracks"),
        ("done-and-estimates", "specs/done-and-estimates"),
    ]);
    let run = repo.run(&["check"]).ok();
    assert!(run.stdout.is_empty(), "{run:#?}");
    insta::assert_snapshot!("check_clean", run.stderr);
}

#[test]
fn check_all_features_lists_every_problem() {
    let mut features: Vec<(String, String)> = ERRORS
        .iter()
        .map(|n| ((*n).to_owned(), format!("errors/{n}")))
        .collect();
    features.push(("tracks".to_owned(), "specs/tracks".to_owned()));
    let pairs: Vec<(&str, &str)> = features
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let repo = Repo::new(&pairs);
    let run = repo.run(&["check"]).invalid();
    for message in [
        "error: dependency cycle: 1 → 3 → 2 → 1",
        "error: duplicate task id `2`",
        "error: tasks.md has no tasks",
        "error: dependency on unknown task `7`",
        "error: dependency on unknown track `Z`",
        "makes a branch name git cannot create",
    ] {
        assert_eq!(
            run.stderr.matches(message).count(),
            1,
            "{message}: {run:#?}"
        );
    }
    assert!(
        run.stderr
            .contains("Checked tracks (specflow task list, 0/10 tasks done, not approved)")
    );
    assert_eq!(
        run.stdout,
        "error: 6 of 7 features failed the check (6 errors, 4 warnings)\n"
    );
    insta::assert_snapshot!("check_broken", run.stderr);

    // Named features: only those.
    let run = repo.run(&["check", "tracks"]).ok();
    assert!(
        run.stderr.contains("1 feature checked: no errors"),
        "{run:#?}"
    );
    let run = repo
        .run(&["check", "tracks", "duplicate-id", "no-tasks"])
        .invalid();
    assert_eq!(
        run.stdout,
        "error: 2 of 3 features failed the check (2 errors, 4 warnings)\n"
    );
    assert!(!run.stderr.contains("dependency cycle"), "{run:#?}");
    let run = repo.run(&["check", "tracks", "nope"]).invalid();
    assert!(run.stderr.contains("no feature `nope`"), "{run:#?}");

    // JSON: one line per feature.
    let run = repo.run(&["check", "--message-format", "json"]).invalid();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 7, "{run:#?}");
    for line in &lines {
        assert_eq!(line["type"], "check");
        let ok = line["feature"] == "tracks";
        assert_eq!(line["ok"], ok, "{line}");
        let diagnostics = line["diagnostics"].as_array().expect("diagnostics");
        // tracks names agents that have neither a command nor a persona file: warnings.
        let (errors, warnings): (Vec<&Value>, Vec<&Value>) =
            diagnostics.iter().partition(|d| d["severity"] == "error");
        assert_eq!(errors.len(), usize::from(!ok), "{line}");
        assert_eq!(warnings.len(), if ok { 4 } else { 0 }, "{line}");
        for d in warnings {
            assert!(
                d["message"]
                    .as_str()
                    .expect("message")
                    .starts_with("agent `"),
                "{d}"
            );
        }
        for d in errors {
            assert_eq!(d["severity"], "error");
            assert!(d["help"].is_string(), "{d}");
            assert!(
                d["location"]["path"]
                    .as_str()
                    .expect("path")
                    .starts_with("documentation/features/")
            );
        }
    }
    let unknown = lines
        .iter()
        .find(|l| l["feature"] == "unknown-dependency")
        .expect("unknown-dependency");
    assert_eq!(unknown["diagnostics"][0]["location"]["line"], 11);
    assert_eq!(unknown["diagnostics"][0]["location"]["column"], 33);
}

#[test]
fn list_features() {
    let repo = Repo::new(&[
        ("plain-list", "specs/plain-list"),
        ("tracks", "specs/tracks"),
        ("done-and-estimates", "specs/done-and-estimates"),
        ("subtasks", "specs/subtasks"),
        ("duplicate-id", "errors/duplicate-id"),
    ]);
    repo.write(
        &repo.tasks("all-done"),
        "# Done\n\n- [x] 1. First\n- [x] 2. Second\n",
    );
    repo.run(&["approve", "tracks"]).ok();
    let run = repo.run(&["list"]).ok();
    insta::assert_snapshot!("list", run.stdout);

    let run = repo.run(&["list", "--message-format", "json"]).ok();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 6);
    let by_name = |n: &str| {
        lines
            .iter()
            .find(|l| l["name"] == n)
            .unwrap_or_else(|| panic!("no {n}"))
            .clone()
    };
    let tracks = by_name("tracks");
    assert_eq!(tracks["type"], "feature");
    assert_eq!(
        tracks["tasks_file"],
        "documentation/features/tracks/tasks.md"
    );
    assert_eq!(tracks["approval"], "approved");
    assert_eq!(tracks["done"], 0);
    assert_eq!(tracks["total"], 10);
    let done = by_name("done-and-estimates");
    assert_eq!(done["done"], 3);
    assert_eq!(done["total"], 9);
    assert_eq!(done["warnings"], 2);
    assert_eq!(by_name("duplicate-id")["errors"], 1);
    assert_eq!(by_name("all-done")["done"], 2);
}

// ---------------------------------------------------------------------------------------------
// Output plumbing.
// ---------------------------------------------------------------------------------------------

#[test]

fn a_closed_stdout_does_not_panic() {
    let repo = Repo::new(&[("tracks", "specs/tracks")]);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cargo-spec-exec"));
    cmd.current_dir(repo.root())
        .args(["tracks", "--dry-run", "-v", "--color", "never"])
        .env_remove("CARGO_TARGET_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    // Close the reading end before the tool prints (it first runs `cargo metadata`).
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}
