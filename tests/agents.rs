//! Agents per task: `_Agent: name_` (or a track's `> Primary Agent:`) picks the command
//! configured for that name in `[workspace.metadata.spec-exec.agents.<name>]`, else the default
//! agent with the persona file in the prompt. The built binary, in temporary git repositories.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod support;

use support::{plan_line, plan_task, spec_exec_in, text};

/// The default agent: records that it ran, and keeps its prompt.
const DEFAULT_AGENT: &str = r#"["bash", "-c", "echo default > \"$SPEC_EXEC_TASK_ID.default\"; cp \"$SPEC_EXEC_PROMPT_FILE\" \"$SPEC_EXEC_TASK_ID.prompt.md\""]"#;

/// The reviewer's own command: another program, another file.
const REVIEWER_AGENT: &str = r#"["sh", "-c", "echo reviewed-by-reviewer > \"$SPEC_EXEC_TASK_ID.reviewer\"; cp \"$SPEC_EXEC_PROMPT_FILE\" \"$SPEC_EXEC_TASK_ID.prompt.md\""]"#;

/// Task 1 has no agent name; 2 names `reviewer` (its own command); 3 names `writer` (a persona
/// file only); track B's tasks have `reviewer` as the track's Primary Agent.
const TASKS: &str = "# Implementation Tasks: Demo

## Parallel Execution Tracks

### Track A: Work (No Dependencies)

- [ ] 1. **Build the thing**
  - _Dependencies: None_

- [ ] 2. **Review the thing**
  - _Dependencies: Task 1_
  - _Agent: reviewer_

- [ ] 3. **Document the thing**
  - _Dependencies: Task 1_
  - _Agent: writer_

### Track B: Audit (Dependencies: Track A)
> Primary Agent: reviewer

- [ ] 4. **Audit the thing**
";

struct Repo {
    _tmp: tempfile::TempDir,
    /// The git repository's working tree.
    git_root: PathBuf,
    /// The Cargo workspace root (the git root, or a directory inside it).
    root: PathBuf,
}

impl Repo {
    /// A workspace at the repository root with `config` as the body of its
    /// `[workspace.metadata.spec-exec]` table (more tables may follow it), feature `demo`
    /// with `tasks`, and `files` (relative to the workspace root), committed.
    fn new(config: &str, tasks: &str, files: &[(&str, &str)]) -> Repo {
        Repo::inside("", config, tasks, files)
    }

    /// The same with the workspace in `sub` of the repository (`""`: at its root).
    fn inside(sub: &str, config: &str, tasks: &str, files: &[(&str, &str)]) -> Repo {
        let tmp = tempfile::Builder::new()
            .prefix("spec-exec-agents-")
            .tempdir()
            .unwrap();
        let git_root = tmp.path().join("repo");
        let root = if sub.is_empty() {
            git_root.clone()
        } else {
            git_root.join(sub)
        };
        let repo = Repo {
            _tmp: tmp,
            git_root,
            root,
        };
        repo.write(
            "Cargo.toml",
            &format!("[workspace]\n\n[workspace.metadata.spec-exec]\n{config}\n"),
        );
        repo.write(".gitignore", "/target\n");
        repo.write("documentation/features/demo/tasks.md", tasks);
        for (path, content) in files {
            repo.write(path, content);
        }
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Agent Tester"]);
        repo.git(&["config", "user.email", "agents@localhost"]);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-qm", "The spec"]);
        repo
    }

    fn write(&self, path: &str, content: &str) {
        let p = self.root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.git_root)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    fn spec_exec(&self, args: &[&str]) -> Output {
        spec_exec_in(&self.root, args)
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .env_remove("CARGO_TERM_COLOR")
            .env_remove("CI")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn approve(&self) {
        let out = self.spec_exec(&["approve", "demo"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        self.git(&["commit", "-qam", "Approve"]);
    }

    /// The `plan` line of a JSON dry run.
    fn plan(&self, extra: &[&str]) -> Value {
        let mut args = vec!["demo", "--dry-run", "--message-format", "json"];
        args.extend_from_slice(extra);
        plan_line(&self.spec_exec(&args))
    }

    /// The files committed on a task's branch.
    fn files(&self, id: &str) -> Vec<String> {
        self.git(&["ls-tree", "-r", "--name-only", &format!("spec/demo/{id}")])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn show(&self, id: &str, path: &str) -> String {
        self.git(&["show", &format!("spec/demo/{id}:{path}")])
    }

    fn branches(&self) -> String {
        self.git(&["branch", "--list", "spec/*"])
    }
}

fn config() -> String {
    format!(
        "agent = {DEFAULT_AGENT}\n\n[workspace.metadata.spec-exec.agents.reviewer]\ncommand = {REVIEWER_AGENT}\n"
    )
}

const WRITER: (&str, &str) = (
    ".claude/agents/writer.md",
    "You write documentation that a newcomer can follow.\n",
);

#[test]
fn a_named_agent_runs_its_own_command_and_the_others_the_default() {
    let repo = Repo::new(&config(), TASKS, &[WRITER]);

    // The dry run shows each task's agent and what runs it.
    let plan = repo.plan(&[]);
    for (id, agent, command) in [
        ("1", Value::Null, "bash"),
        ("2", "reviewer".into(), "sh"),
        ("3", "writer".into(), "bash"),
        ("4", "reviewer".into(), "sh"),
    ] {
        assert_eq!(plan_task(&plan, id)["agent"], agent, "agent of {id}");
        assert_eq!(
            plan_task(&plan, id)["agent_command"],
            command,
            "command of {id}"
        );
    }
    let human = repo.spec_exec(&["demo", "--dry-run", "-v"]);
    let out = text(&human.stdout);
    assert!(out.contains("    1 Build the thing\n"), "{out}");
    assert!(
        out.contains("    2 Review the thing [reviewer: sh]\n"),
        "{out}"
    );
    assert!(out.contains("    3 Document the thing [writer]\n"), "{out}");
    assert!(
        out.contains("    4 Audit the thing [reviewer: sh]\n"),
        "{out}"
    );
    assert!(
        out.contains("Agent: `bash` (the configuration); reviewer runs `sh`\n"),
        "{out}"
    );
    // Without -v, no agents.
    let plain = text(&repo.spec_exec(&["demo", "--dry-run"]).stdout);
    assert!(!plain.contains("reviewer"), "{plain}");

    // Everything is known: check has nothing to say about agents.
    let check = repo.spec_exec(&["check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        !text(&check.stderr).contains("agent `"),
        "{}",
        text(&check.stderr)
    );

    repo.approve();
    let run = repo.spec_exec(&["demo"]);
    let err = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{err}");
    assert!(
        err.contains("`sh` for the tasks of agent `reviewer`"),
        "{err}"
    );

    // Task 1 and 3 ran the default agent; 2 (its `_Agent:`) and 4 (its track's Primary Agent)
    // the reviewer's command.
    for (id, by) in [
        ("1", "default"),
        ("2", "reviewer"),
        ("3", "default"),
        ("4", "reviewer"),
    ] {
        let files = repo.files(id);
        let other = if by == "default" {
            "reviewer"
        } else {
            "default"
        };
        assert!(files.contains(&format!("{id}.{by}")), "{id}: {files:?}");
        assert!(!files.contains(&format!("{id}.{other}")), "{id}: {files:?}");
    }
    assert_eq!(repo.show("2", "2.reviewer"), "reviewed-by-reviewer\n");
    // Both get the persona in the prompt: its name, and its file's text when there is one.
    let review_prompt = repo.show("2", "2.prompt.md");
    assert!(
        review_prompt.contains("Work as `reviewer`."),
        "{review_prompt}"
    );
    let writer_prompt = repo.show("3", "3.prompt.md");
    assert!(
        writer_prompt.contains("Work as `writer`."),
        "{writer_prompt}"
    );
    assert!(
        writer_prompt.contains("You write documentation that a newcomer can follow."),
        "{writer_prompt}"
    );
}

#[test]
fn agent_on_the_command_line_runs_every_task() {
    let repo = Repo::new(&config(), TASKS, &[WRITER]);
    let flag = "bash -c 'echo flag > \"$SPEC_EXEC_TASK_ID.flag\"'";

    let plan = repo.plan(&["--agent", flag]);
    for id in ["1", "2", "3", "4"] {
        assert_eq!(
            plan_task(&plan, id)["agent_command"],
            "bash",
            "command of {id}"
        );
    }
    let human = text(
        &repo
            .spec_exec(&["demo", "--dry-run", "-v", "--agent", flag])
            .stdout,
    );
    assert!(
        human.contains("    2 Review the thing [reviewer]\n"),
        "{human}"
    );
    assert!(
        human.contains(
            "Agent: `bash` (--agent), for every task; the configured commands of reviewer are not used\n"
        ),
        "{human}"
    );

    repo.approve();
    let run = repo.spec_exec(&["demo", "--agent", flag]);
    let err = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{err}");
    assert!(
        err.contains("the configured commands of `reviewer` are not used"),
        "{err}"
    );
    for id in ["1", "2", "3", "4"] {
        let files = repo.files(id);
        assert!(files.contains(&format!("{id}.flag")), "{id}: {files:?}");
        assert!(
            !files.contains(&format!("{id}.reviewer")),
            "{id}: {files:?}"
        );
    }
}

#[test]
fn a_missing_program_of_a_named_agent_stops_the_run_before_it_starts() {
    let config = format!(
        "agent = {DEFAULT_AGENT}\n\n[workspace.metadata.spec-exec.agents.reviewer]\ncommand = [\"definitely-not-an-agent-xyz\", \"--review\"]\n"
    );
    let repo = Repo::new(&config, TASKS, &[WRITER]);
    repo.approve();
    let run = repo.spec_exec(&["demo"]);
    let err = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(
        err.contains("agent program `definitely-not-an-agent-xyz` was not found"),
        "{err}"
    );
    assert!(err.contains("agent `reviewer`"), "{err}");
    assert_eq!(repo.branches(), "", "nothing ran");

    // Only the names of the tasks that run count: without track A's reviewer task and track B,
    // the run goes ahead.
    let only_writer = TASKS.replace("  - _Agent: reviewer_\n", "  - _Agent: writer_\n");
    let only_writer = &only_writer[..only_writer.find("### Track B").unwrap()];
    let repo = Repo::new(&config, only_writer, &[WRITER]);
    repo.approve();
    let run = repo.spec_exec(&["demo"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
}

#[test]
fn every_task_with_its_own_command_needs_no_default_agent() {
    // No `agent` and no --agent: every task names `reviewer`, so no default agent is looked
    // for (none of claude, codex, gemini, aider need be installed).
    let config =
        format!("\n[workspace.metadata.spec-exec.agents.reviewer]\ncommand = {REVIEWER_AGENT}\n");
    let tasks = "# Implementation Tasks\n\n### Track A: Audit (No Dependencies)\n> Primary Agent: reviewer\n\n- [ ] 1. **Audit**\n\n- [ ] 2. **Audit again**\n";
    let repo = Repo::new(&config, tasks, &[]);
    repo.approve();
    let run = repo.spec_exec(&["demo"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(repo.files("2").contains(&"2.reviewer".to_owned()));
}

#[test]
fn check_warns_about_an_agent_with_no_command_and_no_persona() {
    let tasks = format!(
        "{TASKS}\n- [ ] 5. **Haunt the thing**\n  - _Agent: ghost_\n\n- [ ] 6. **Haunt it again**\n  - _Agent: ghost_\n\n### Track C: Other (No Dependencies)\n> Primary Agent: phantom\n\n- [ ] 7. **Float**\n"
    );
    // The workspace is a directory of a larger repository; writer's persona is at the
    // repository's root, under .kiro/agents.
    let repo = Repo::inside(
        "ws",
        &config(),
        &tasks,
        &[("../.kiro/agents/writer.md", "You write.\n")],
    );
    let check = repo.spec_exec(&["check"]);
    let err = text(&check.stderr);
    assert_eq!(
        check.status.code(),
        Some(0),
        "a warning, not an error: {err}"
    );
    assert_eq!(err.matches("warning: agent `").count(), 2, "{err}");
    assert!(
        err.contains(
            "warning: agent `ghost` has neither a command in the configuration nor a persona file"
        ),
        "{err}"
    );
    // At the `_Agent:` line of the first task that names it.
    let line = tasks
        .lines()
        .position(|l| l == "  - _Agent: ghost_")
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("documentation/features/demo/tasks.md:{line}:13")),
        "{err}"
    );
    // At the track's Primary Agent line.
    let line = tasks
        .lines()
        .position(|l| l == "> Primary Agent: phantom")
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("documentation/features/demo/tasks.md:{line}:18")),
        "{err}"
    );
    assert!(err.contains(".claude/agents/ghost.md"), "{err}");
    assert!(err.contains("2 warnings"), "{err}");

    // The JSON form carries the same warnings.
    let json = text(
        &repo
            .spec_exec(&["check", "--message-format", "json"])
            .stdout,
    );
    let line: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    let messages: Vec<&str> = line["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("agent `phantom` has neither")),
        "{messages:?}"
    );
}

/// `check` in a workspace whose Cargo.toml is `manifest`: its exit code and standard error.
fn check_manifest(manifest: &str) -> (Option<i32>, String) {
    let repo = Repo::new("", TASKS, &[WRITER]);
    repo.write("Cargo.toml", manifest);
    repo.write("src/lib.rs", "");
    let out = repo.spec_exec(&["check"]);
    (out.status.code(), text(&out.stderr))
}

#[test]
fn agent_tables_are_checked_and_their_errors_located() {
    let (code, err) = check_manifest(
        "[workspace]\n\n[workspace.metadata.spec-exec]\nmax-agents = 2\n\n[workspace.metadata.spec-exec.agents.reviewer]\ncommand = \"codex\"\nmodel = \"o3\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "Cargo.toml:8:1: unknown key `model` in [workspace.metadata.spec-exec.agents.reviewer]"
        ) || err.contains(" --> Cargo.toml:8:1"),
        "{err}"
    );
    assert!(
        err.contains("unknown key `model` in [workspace.metadata.spec-exec.agents.reviewer]"),
        "{err}"
    );
    assert!(err.contains("the keys are: command"), "{err}");

    let (code, err) = check_manifest(
        "[workspace]\n\n[workspace.metadata.spec-exec.agents.reviewer]\ncommand = \"nope\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("invalid `command` in [workspace.metadata.spec-exec.agents.reviewer]: `nope` is not an agent preset"),
        "{err}"
    );
    assert!(err.contains("Cargo.toml:4:1"), "{err}");

    // Dotted keys and inline tables are located too.
    let (code, err) = check_manifest(
        "[workspace]\n\n[workspace.metadata.spec-exec]\nagents.reviewer.command = []\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("expected a preset name or a list of arguments"),
        "{err}"
    );
    assert!(err.contains("Cargo.toml:4:17"), "{err}");

    let (code, err) = check_manifest(
        "[workspace]\n\n[workspace.metadata.spec-exec.agents]\nreviewer = { comand = \"codex\" }\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown key `comand`"), "{err}");
    assert!(err.contains("Cargo.toml:4:1"), "{err}");

    // A bad name, an entry that is not a table, a table without a command.
    let (code, err) = check_manifest(
        "[workspace]\n\n[workspace.metadata.spec-exec.agents.\"code reviewer\"]\ncommand = \"codex\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("invalid agent name in [workspace.metadata.spec-exec.agents]: `code reviewer` has a space"),
        "{err}"
    );
    assert!(err.contains("Cargo.toml:3:39"), "{err}");

    let (code, err) = check_manifest(
        "[workspace]\n\n[workspace.metadata.spec-exec]\nagents = { reviewer = \"codex\" }\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid `agents.reviewer`"), "{err}");
    assert!(err.contains("expected a table"), "{err}");

    let (code, err) =
        check_manifest("[workspace]\n\n[workspace.metadata.spec-exec.agents.reviewer]\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("[workspace.metadata.spec-exec.agents.reviewer] has no `command`"),
        "{err}"
    );
    assert!(err.contains("Cargo.toml:3:38"), "{err}");

    // A package root's table works the same way.
    let (code, err) = check_manifest(
        "[package]\nname = \"solo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.spec-exec.agents.reviewer]\ncommand = [\"sh\"]\nflavour = 1\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("unknown key `flavour` in [package.metadata.spec-exec.agents.reviewer]"),
        "{err}"
    );
    assert!(err.contains("Cargo.toml:8:1"), "{err}");
}

#[test]
fn a_configured_name_is_not_a_warning_and_the_dry_run_needs_no_program() {
    // A dry run shows the configured command even when its program is not installed: only a
    // run looks for it.
    let config =
        "[workspace.metadata.spec-exec.agents.reviewer]\ncommand = [\"not-installed-xyz\"]\n";
    let repo = Repo::new(config, TASKS, &[WRITER]);
    let plan = repo.plan(&["--agent", "shell"]);
    assert_eq!(plan_task(&plan, "2")["agent_command"], "shell");
    let plan = repo.plan(&[]);
    assert_eq!(plan_task(&plan, "2")["agent_command"], "not-installed-xyz");
    assert_eq!(plan_task(&plan, "1")["agent_command"], Value::Null);
    let check = repo.spec_exec(&["check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        !text(&check.stderr).contains("agent `"),
        "{}",
        text(&check.stderr)
    );
}
