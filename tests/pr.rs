//! `cargo spec-exec pr`: pushes to a real (local, bare) remote with the git CLI and calls `gh`
//! (a script on PATH that records its arguments) with exactly the arguments the README gives.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use support::{Run, Scratch, git_in, shell_task, tasks_md};

/// A scratch repository with a bare remote, a fake `gh` and the feature run with the shell
/// agent.
struct Setup {
    s: Scratch,
    dir: tempfile::TempDir,
}

const GH: &str = r#"#!/bin/sh
# Records each call's arguments, one a line, then a line `--end--`.
for a in "$@"; do printf '%s\n' "$a" >> "$GH_ARGS"; done
echo --end-- >> "$GH_ARGS"
if [ -n "${GH_FAIL:-}" ]; then
  echo "HTTP 401: Bad credentials (https://api.github.com/graphql)" >&2
  exit 1
fi
echo "https://github.example/acme/app/pull/7"
"#;

impl Setup {
    fn new(tasks: &[String]) -> Setup {
        let s = Scratch::new(&tasks_md(tasks));
        let dir = tempfile::Builder::new()
            .prefix("spec-exec-pr-")
            .tempdir()
            .unwrap();
        let setup = Setup { s, dir };
        git_in(
            setup.dir.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        setup
            .s
            .git(&["remote", "add", "origin", setup.remote().to_str().unwrap()]);
        std::fs::create_dir_all(setup.fake_bin()).unwrap();
        let gh = setup.fake_bin().join("gh");
        std::fs::write(&gh, GH).unwrap();
        std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run = setup.s.shell_run(&[]);
        run.assert_code(0);
        setup
    }

    fn remote(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    fn fake_bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn gh_log(&self) -> PathBuf {
        self.dir.path().join("gh-args")
    }

    /// Each call of the fake `gh`: its arguments.
    fn gh_calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.gh_log()).unwrap_or_default();
        let mut calls = Vec::new();
        let mut call = Vec::new();
        for line in text.lines() {
            if line == "--end--" {
                calls.push(std::mem::take(&mut call));
            } else {
                call.push(line.to_owned());
            }
        }
        calls
    }

    /// The remote's branch `name`, if it has it.
    fn remote_tip(&self, name: &str) -> Option<String> {
        let out = support::git_output_in(
            &self.remote(),
            &["rev-parse", "--verify", "-q", &format!("refs/heads/{name}")],
        );
        out.status
            .success()
            .then(|| support::text(&out.stdout).trim().to_owned())
    }

    fn remote_branches(&self) -> Vec<String> {
        git_in(&self.remote(), &["for-each-ref", "--format=%(refname)"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `cargo spec-exec pr …` with the fake `gh` first on PATH.
    fn pr(&self, args: &[&str]) -> Run {
        let path = format!(
            "{}:{}",
            self.fake_bin().display(),
            std::env::var("PATH").unwrap()
        );
        self.pr_with_path(args, &path)
    }

    fn pr_with_path(&self, args: &[&str], path: &str) -> Run {
        let mut all = vec!["pr"];
        all.extend_from_slice(args);
        let mut cmd = self.s.spec_exec(&all);
        cmd.env("PATH", path).env("GH_ARGS", self.gh_log());
        Run::of(cmd)
    }

    /// The integration branch at task `tip`'s branch (the run built it; this puts it where
    /// the test wants it).
    fn integrate(&self, tip: &str) {
        self.s.git(&[
            "branch",
            "-f",
            "spec/demo/integration",
            &Scratch::branch(tip),
        ]);
    }
}

fn two_tasks() -> Vec<String> {
    vec![
        shell_task("1", "Write one", "", "echo one > one.txt"),
        shell_task("2", "Write two", "1", "echo two > two.txt"),
    ]
}

#[test]
fn pr_pushes_the_integration_branch_and_opens_a_pull_request_with_gh() {
    let t = Setup::new(&two_tasks());
    t.integrate("2");
    let run = t.pr(&["demo"]);
    run.assert_code(0);
    assert_eq!(
        t.remote_tip("spec/demo/integration").as_deref(),
        Some(t.s.tip("2").as_str()),
        "{}",
        run.context()
    );
    let calls = t.gh_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let body = t.s.state_dir().join("report.md");
    assert_eq!(
        calls[0],
        [
            "pr",
            "create",
            "--base",
            "main",
            "--head",
            "spec/demo/integration",
            "--title",
            "demo: 2 tasks",
            "--body-file",
            body.to_str().unwrap(),
        ],
    );
    let md = std::fs::read_to_string(&body).unwrap();
    assert!(md.contains("| 1 | Write one | done |"), "{md}");
    assert!(md.contains("| 2 | Write two | done |"), "{md}");
    // gh's answer, the pull request's address, is passed on.
    assert!(
        run.stdout
            .contains("https://github.example/acme/app/pull/7"),
        "{}",
        run.context()
    );
    assert!(run.stderr.contains("Pushed"), "{}", run.context());
    // Nothing else went to the remote, and the user's HEAD is where it was.
    assert_eq!(t.remote_branches(), ["refs/heads/spec/demo/integration"]);
    assert_eq!(t.s.git(&["symbolic-ref", "HEAD"]).trim(), "refs/heads/main");

    // Again: the remote has it already; nothing is forced.
    let again = t.pr(&["demo"]);
    again.assert_code(0);
    assert_eq!(t.gh_calls().len(), 2);
}

#[test]
fn without_gh_the_commands_are_printed_after_the_push() {
    let t = Setup::new(&two_tasks());
    t.integrate("2");
    // A PATH with git and cargo, and nothing else of the original PATH that holds a `gh`.
    let bin = t.dir.path().join("no-gh");
    std::fs::create_dir_all(&bin).unwrap();
    let original = std::env::var("PATH").unwrap();
    for program in ["git", "cargo"] {
        let found = std::env::split_paths(&original)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .unwrap();
        std::os::unix::fs::symlink(found, bin.join(program)).unwrap();
    }
    let rest: Vec<PathBuf> = std::env::split_paths(&original)
        .filter(|d| !d.join("gh").exists())
        .collect();
    let path = std::env::join_paths(std::iter::once(bin).chain(rest))
        .unwrap()
        .into_string()
        .unwrap();
    let run = t.pr_with_path(&["demo"], &path);
    run.assert_code(0);
    assert!(t.gh_calls().is_empty());
    assert_eq!(
        t.remote_tip("spec/demo/integration").as_deref(),
        Some(t.s.tip("2").as_str())
    );
    let body = t.s.state_dir().join("report.md");
    let expected = format!(
        "gh pr create --base main --head spec/demo/integration --title 'demo: 2 tasks' --body-file {}",
        shlex::try_quote(body.to_str().unwrap()).unwrap()
    );
    assert!(
        run.stdout.lines().any(|l| l == expected),
        "{expected}\n{}",
        run.context()
    );
    assert!(run.stderr.contains("not on PATH"), "{}", run.context());
    // The printed command works as printed: split as a shell would, it is gh's argv.
    let words = shlex::split(&expected).unwrap();
    assert_eq!(words[words.len() - 1], body.to_str().unwrap());
    assert!(body.is_file());
}

#[test]
fn stacked_opens_one_pull_request_per_task_on_what_it_was_built_on() {
    let t = Setup::new(&[
        shell_task("1", "Write one", "", "echo one > one.txt"),
        shell_task("2", "Write two", "", "echo two > two.txt"),
        shell_task("3", "Join them", "1, 2", "cat one.txt two.txt > three.txt"),
    ]);
    t.integrate("3");
    let run = t.pr(&["demo", "--stacked"]);
    run.assert_code(0);
    let calls = t.gh_calls();
    assert_eq!(calls.len(), 3, "{calls:?}\n{}", run.context());
    let pr_dir = t.s.state_dir().join("pr");
    let expected = |id: &str, base: &str, title: &str| -> Vec<String> {
        [
            "pr",
            "create",
            "--base",
            base,
            "--head",
            &format!("spec/demo/{id}"),
            "--title",
            &format!("demo {id}: {title}"),
            "--body-file",
            pr_dir.join(format!("{id}.md")).to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    // 1 and 2 in either order (neither depends on the other), 3 after both.
    let mut first_two = calls[..2].to_vec();
    first_two.sort();
    assert_eq!(
        first_two,
        [
            expected("1", "main", "Write one"),
            expected("2", "main", "Write two")
        ]
    );
    assert_eq!(
        calls[2],
        expected("3", "spec/demo/3.base", "Join them"),
        "{}",
        run.context()
    );
    // Every branch is on the remote; 3's base is the merge of 1 and 2 it started from.
    for id in ["1", "2", "3"] {
        assert_eq!(
            t.remote_tip(&format!("spec/demo/{id}")).as_deref(),
            Some(t.s.tip(id).as_str())
        );
    }
    let merge = t.remote_tip("spec/demo/3.base").unwrap();
    assert_eq!(merge, t.s.git(&["rev-parse", "spec/demo/3^1"]).trim());
    let parents = t.s.git(&["rev-list", "--parents", "-n", "1", &merge]);
    let parents: Vec<&str> = parents.split_whitespace().skip(1).collect();
    assert_eq!(parents, [t.s.tip("1"), t.s.tip("2")]);
    // No integration branch was pushed, and each body is its task's part of the report.
    assert!(t.remote_tip("spec/demo/integration").is_none());
    let body = std::fs::read_to_string(pr_dir.join("3.md")).unwrap();
    assert!(
        body.starts_with("# Feature `demo`, task 3: Join them\n"),
        "{body}"
    );
    assert!(body.contains("`spec/demo/3`"), "{body}");
}

#[test]
fn dry_run_prints_the_commands_and_does_nothing() {
    let t = Setup::new(&two_tasks());
    t.integrate("2");
    let run = t.pr(&["demo", "--dry-run"]);
    run.assert_code(0);
    let body = t.s.state_dir().join("report.md");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "git push origin spec/demo/integration:refs/heads/spec/demo/integration".to_owned(),
            format!(
                "gh pr create --base main --head spec/demo/integration --title 'demo: 2 tasks' --body-file {}",
                body.display()
            ),
        ],
        "{}",
        run.context()
    );
    assert!(t.remote_branches().is_empty());
    assert!(t.gh_calls().is_empty());
}

#[test]
fn the_remote_defaults_to_the_base_branch_upstream() {
    let t = Setup::new(&two_tasks());
    t.integrate("2");
    t.s.git(&["remote", "rename", "origin", "upstream"]);
    t.s.git(&["config", "branch.main.remote", "upstream"]);
    let run = t.pr(&["demo", "--dry-run"]);
    run.assert_code(0);
    assert!(
        run.stdout.starts_with("git push upstream "),
        "{}",
        run.context()
    );
    // --remote wins, and must exist.
    let run = t.pr(&["demo", "--remote", "origin"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("there is no remote `origin`"),
        "{}",
        run.context()
    );
    assert!(run.stderr.contains("`upstream`"), "{}", run.context());
    assert!(t.remote_branches().is_empty());
}

#[test]
fn what_is_missing_is_said_before_anything_is_pushed() {
    let t = Setup::new(&two_tasks());
    // No integration branch.
    t.s.git(&["branch", "-D", "spec/demo/integration"]);
    let run = t.pr(&["demo"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("`spec/demo/integration` does not exist"),
        "{}",
        run.context()
    );
    assert!(
        run.stderr.contains("cargo spec-exec land demo"),
        "{}",
        run.context()
    );
    t.integrate("2");
    // A detached HEAD and no --base.
    let head = t.s.git(&["rev-parse", "HEAD"]);
    t.s.git(&["checkout", "-q", "--detach", head.trim()]);
    let run = t.pr(&["demo"]);
    run.assert_code(2);
    assert!(run.stderr.contains("HEAD is detached"), "{}", run.context());
    assert!(run.stderr.contains("--base"), "{}", run.context());
    // An unknown base.
    let run = t.pr(&["demo", "--base", "nope"]);
    run.assert_code(2);
    assert!(run.stderr.contains("`nope`"), "{}", run.context());
    // The integration branch holds nothing the base lacks.
    let run = t.pr(&["demo", "--base", "spec/demo/2"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("nothing to open a pull request for"),
        "{}",
        run.context()
    );
    assert!(t.remote_branches().is_empty());
    assert!(t.gh_calls().is_empty());
}

#[test]
fn a_failing_gh_fails_the_command_with_its_words() {
    let t = Setup::new(&two_tasks());
    t.integrate("2");
    let path = format!(
        "{}:{}",
        t.fake_bin().display(),
        std::env::var("PATH").unwrap()
    );
    let mut cmd = t.s.spec_exec(&["pr", "demo"]);
    cmd.env("PATH", &path)
        .env("GH_ARGS", t.gh_log())
        .env("GH_FAIL", "1");
    let run = Run::of(cmd);
    run.assert_code(1);
    assert!(
        run.stderr.contains("HTTP 401: Bad credentials"),
        "{}",
        run.context()
    );
    // The branch was pushed before gh ran.
    assert!(t.remote_tip("spec/demo/integration").is_some());
}
