//! The presets as a run starts them: what each may do (build, test, read git, the verify
//! commands, `allow` in the configuration), `--yolo`, and the environment they need. Fake CLIs
//! on PATH record their argv; the built binary runs them.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::path::{Path, PathBuf};

use support::{Scratch, task, tasks_md, write};

/// A fake CLI named `name` in `dir`: records its arguments (one per line) and
/// GEMINI_CLI_TRUST_WORKSPACE, then does the task (writes `<id>.txt`).
fn fake_cli(dir: &Path, name: &str) {
    let script = format!(
        "#!/usr/bin/env bash\nprintf '%s\\n' \"$@\" > \"$HELPER_CTL/argv-{name}\"\necho \"trust=${{GEMINI_CLI_TRUST_WORKSPACE:-}}\" >> \"$HELPER_CTL/argv-{name}\"\necho done > \"$SPEC_EXEC_TASK_ID.txt\"\n"
    );
    let path = dir.join(name);
    write(&path, &script);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn bin(s: &Scratch) -> PathBuf {
    let dir = s.ctl().join("bin");
    for name in ["claude", "codex", "gemini", "aider"] {
        fake_cli(&dir, name);
    }
    dir
}

fn run_with(s: &Scratch, args: &[&str]) -> support::Run {
    let path = format!("{}:{}", bin(s).display(), std::env::var("PATH").unwrap());
    let mut all = vec!["run", "demo", "--message-format", "json", "--no-verify"];
    all.extend_from_slice(args);
    let mut cmd = s.spec_exec(&all);
    cmd.env("PATH", path);
    support::Run::of(cmd)
}

fn argv(s: &Scratch, name: &str) -> Vec<String> {
    std::fs::read_to_string(s.ctl().join(format!("argv-{name}")))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn configure(s: &Scratch, keys: &str) {
    let manifest = s.repo().join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!("\n[workspace.metadata.spec-exec]\n{keys}\n"));
    std::fs::write(&manifest, text).unwrap();
    s.git(&["commit", "-qam", "configure"]);
}

#[test]
fn claude_may_build_test_read_git_and_what_the_configuration_allows() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "nothing")]));
    configure(
        &s,
        "allow = [\"Bash(npm test *)\"]\n[workspace.metadata.spec-exec.agents.claude]\nallow = [\"Bash(make *)\"]",
    );
    let run = run_with(&s, &["--agent", "claude"]);
    run.assert_code(0);
    let argv = argv(&s, "claude");
    let tools_at = argv.iter().position(|a| a == "--allowedTools").unwrap();
    let tools = &argv[tools_at + 1..argv.len() - 1];
    for rule in [
        "Bash(cargo *)",
        "Bash(git status *)",
        "Bash(git diff *)",
        "Bash(npm test *)",
        "Bash(make *)",
    ] {
        assert!(tools.iter().any(|t| t == rule), "{rule} not in {argv:?}");
    }
    assert_eq!(
        &argv[..7],
        [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "acceptEdits",
            "--allowedTools"
        ]
    );
    assert!(!argv.iter().any(|a| a.contains("dangerously")));
}

#[test]
fn yolo_runs_each_preset_in_its_full_bypass_mode() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "nothing")]));
    let run = run_with(&s, &["--agent", "claude", "--yolo"]);
    run.assert_code(0);
    assert_eq!(
        &argv(&s, "claude")[..5],
        [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions"
        ]
    );
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "nothing")]));
    configure(&s, "yolo = true");
    let run = run_with(&s, &["--agent", "codex"]);
    run.assert_code(0);
    assert_eq!(
        &argv(&s, "codex")[..4],
        [
            "exec",
            "--json",
            "--dangerously-bypass-approvals-and-sandbox",
            "-"
        ]
    );
}

#[test]
fn gemini_trusts_the_worktree_and_codex_may_reach_the_network_and_cargo_home() {
    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "nothing")]));
    let run = run_with(&s, &["--agent", "gemini"]);
    run.assert_code(0);
    let argv_g = argv(&s, "gemini");
    assert!(argv_g.iter().any(|a| a == "--skip-trust"), "{argv_g:?}");
    assert_eq!(argv_g.last().unwrap(), "trust=true");

    let s = Scratch::new(&tasks_md(&[task("1", "One", "", "nothing")]));
    let cmd_path = format!("{}:{}", bin(&s).display(), std::env::var("PATH").unwrap());
    let mut cmd = s.spec_exec(&[
        "run",
        "demo",
        "--agent",
        "codex",
        "--no-verify",
        "--message-format",
        "json",
    ]);
    cmd.env("PATH", cmd_path)
        .env("CARGO_HOME", "/opt/cargo-home");
    let run = support::Run::of(cmd);
    run.assert_code(0);
    let argv_c = argv(&s, "codex");
    let joined = argv_c.join(" ");
    assert!(
        joined.contains("sandbox_workspace_write.network_access=true")
            && joined.contains("--add-dir /opt/cargo-home"),
        "{joined}"
    );
    assert!(joined.ends_with("- trust="), "{joined}");
}
