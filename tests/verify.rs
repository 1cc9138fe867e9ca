//! Verification before commit: the verify commands run on each task's work; what fails goes back
//! to the agent for another attempt; the commit records what passed. Real cargo, real git, the
//! helper agent.

mod support;

use support::{Scratch, shell_task, task, tasks_md};

const LIB: &str = "crates/tiny/src/lib.rs";

/// The helper's runs for task `id`: `<step> <attempt>` each.
fn steps(s: &Scratch, id: &str) -> Vec<String> {
    std::fs::read_to_string(s.ctl().join(format!("steps-{id}")))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_first_attempt_that_fails_cargo_check_is_fixed_by_the_second_and_committed_once() {
    // Attempt 1 leaves code that does not compile; attempt 2 removes it and adds a function.
    let s = Scratch::new(&tasks_md(&[task(
        "1",
        "Add a function",
        "",
        &format!(
            "attempt=1 line={LIB}:not~rust attempt=2 unline={LIB}:not~rust line={LIB}:pub~fn~one()~->~u32~{{~1~}}"
        ),
    )]));
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(steps(&s, "1"), ["task 1", "task 2"]);

    let finished = run.finished("1");
    assert_eq!(finished["status"], "done", "{}", run.context());
    assert_eq!(finished["attempts"], 2);
    let verify = finished["verify"].as_array().unwrap();
    assert_eq!(verify.len(), 2, "{verify:?}");
    assert_eq!(
        verify[0]["command"],
        "cargo check --workspace --all-targets"
    );
    assert_eq!(verify[0]["passed"], false);
    assert_eq!(verify[0]["attempt"], 1);
    assert!(verify[0]["failure"].as_str().unwrap().starts_with("exit "));
    assert_eq!(verify[1]["passed"], true);
    assert_eq!(verify[1]["attempt"], 2);

    // The second attempt's prompt quoted cargo's error.
    let prompt =
        std::fs::read_to_string(s.run_dir().join("prompts/1.md")).expect("the prompt file");
    assert!(prompt.contains("## Attempt 2 of 2"), "{prompt}");
    assert!(
        prompt.contains("cargo check --workspace --all-targets"),
        "{prompt}"
    );
    assert!(prompt.contains("error"), "{prompt}");

    // One commit on top of the base, with the trailer, holding the fixed code.
    let branch = Scratch::branch("1");
    assert_eq!(
        s.git(&["rev-list", "--count", &format!("main..{branch}")])
            .trim(),
        "1"
    );
    let message = s.git(&["log", "-1", "--format=%B", &branch]);
    assert!(
        message.contains("Spec-Exec-Verified: cargo check --workspace --all-targets"),
        "{message}"
    );
    let lib = s.show(&branch, LIB);
    assert!(lib.contains("pub fn one() -> u32 { 1 }"), "{lib}");
    assert!(!lib.contains("not rust"), "{lib}");
    assert!(support::is_ticked(&s.tasks_md(), "1"));
}

#[test]
fn work_that_fails_every_attempt_fails_the_task_with_the_command_and_keeps_the_worktree() {
    let s = Scratch::new(&tasks_md(&[task(
        "1",
        "Break the build",
        "",
        &format!("line={LIB}:not~rust"),
    )]));
    let run = s.run(&["--max-attempts", "3"]);
    run.assert_code(1);
    assert_eq!(steps(&s, "1"), ["task 1", "task 2", "task 3"]);
    let finished = run.finished("1");
    assert_eq!(finished["status"], "failed");
    let reason = finished["reason"].as_str().unwrap();
    assert!(
        reason.contains("verify failed: `cargo check --workspace --all-targets` ended with exit"),
        "{reason}"
    );
    assert!(reason.contains("after 3 attempts"), "{reason}");
    assert!(finished["last_output"].is_string(), "{finished}");
    // The tail of cargo's output, as the task's report keeps it.
    let tail = finished["output_tail"].as_str().unwrap();
    assert!(
        tail.contains("error") && tail.lines().count() <= 20,
        "{tail}"
    );
    let worktree = finished["worktree"].as_str().expect("the worktree is kept");
    assert!(std::path::Path::new(worktree).join(LIB).exists());
    // Nothing committed, nothing ticked.
    assert_eq!(s.tip("1"), s.git(&["rev-parse", "main"]).trim());
    assert!(!support::is_ticked(&s.tasks_md(), "1"));
    // The verify log has cargo's output.
    let log = std::fs::read_to_string(finished["verify_log"].as_str().unwrap()).unwrap();
    assert!(log.contains("error"), "{log}");
}

#[test]
fn an_agent_that_exits_non_zero_gets_another_attempt_with_its_exit_status() {
    let s = Scratch::new(&tasks_md(&[task(
        "1",
        "Try twice",
        "",
        "attempt=1 say=first~try~went~wrong exit=3 attempt=2 write=two.txt",
    )]));
    let run = s.run(&[]);
    run.assert_code(0);
    assert_eq!(steps(&s, "1"), ["task 1", "task 2"]);
    let prompt = std::fs::read_to_string(s.run_dir().join("prompts/1.md")).unwrap();
    assert!(prompt.contains("ended with exit 3"), "{prompt}");
    assert!(prompt.contains("first try went wrong"), "{prompt}");
    assert_eq!(s.show(&Scratch::branch("1"), "two.txt").trim(), "1");
}

#[test]
fn verify_commands_come_from_the_flag_the_configuration_or_nowhere() {
    // A verify command of the user's, split into words, no shell: the `;` is an argument.
    let s = Scratch::new(&tasks_md(&[task("1", "Write", "", "write=out.txt")]));
    let run = s.run(&[
        "--verify",
        "sh -c 'test -s out.txt && echo checked > ../verified-by-sh' ; ignored",
        "--max-attempts",
        "1",
    ]);
    run.assert_code(0);
    let message = s.git(&["log", "-1", "--format=%B", &Scratch::branch("1")]);
    assert!(
        message.contains("Spec-Exec-Verified: sh -c 'test -s out.txt && echo checked > ../verified-by-sh' ; ignored"),
        "{message}"
    );
    assert!(!message.contains("cargo check"), "{message}");

    // --no-verify: nothing runs, no trailer.
    let s = Scratch::new(&tasks_md(&[task(
        "1",
        "Break",
        "",
        &format!("line={LIB}:not~rust"),
    )]));
    let run = s.run(&["--no-verify"]);
    run.assert_code(0);
    assert!(run.finished("1")["verify"].as_array().unwrap().is_empty());
    let message = s.git(&["log", "-1", "--format=%B", &Scratch::branch("1")]);
    assert!(!message.contains("Spec-Exec-Verified"), "{message}");

    // `verify = []` in the configuration turns it off too; a failing configured command fails.
    let s = Scratch::new(&tasks_md(&[task("1", "Write", "", "write=out.txt")]));
    let manifest = s.repo().join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[workspace.metadata.spec-exec]\nverify = [\"false\"]\nmax-attempts = 1\n");
    std::fs::write(&manifest, text).unwrap();
    s.git(&["commit", "-qam", "verify with false"]);
    let run = s.run(&[]);
    run.assert_code(1);
    assert!(
        run.finished("1")["reason"]
            .as_str()
            .unwrap()
            .contains("`false` ended with exit 1"),
        "{}",
        run.context()
    );
}

#[test]
fn a_bad_verify_flag_is_an_error_before_anything_runs() {
    let s = Scratch::new(&tasks_md(&[task("1", "Write", "", "write=out.txt")]));
    let run = s.run(&["--verify", "cargo 'check"]);
    run.assert_code(2);
    assert!(run.stderr.contains("invalid --verify"), "{}", run.context());
    assert!(!s.agent_log().exists());
}

#[test]
fn the_shell_agent_runs_its_blocks_once() {
    let s = Scratch::new(&tasks_md(&[support::shell_task(
        "1",
        "Break",
        "",
        &format!("echo 'not rust' >> {LIB}"),
    )]));
    let run = s.shell_run(&[]);
    run.assert_code(1);
    let finished = run.finished("1");
    assert_eq!(finished["attempts"], 1);
    assert!(
        finished["reason"]
            .as_str()
            .unwrap()
            .starts_with("verify failed"),
        "{finished}"
    );
    // Its block ran once: one line appended.
    let worktree = finished["worktree"].as_str().unwrap();
    let lib = std::fs::read_to_string(std::path::Path::new(worktree).join(LIB)).unwrap();
    assert_eq!(lib.matches("not rust").count(), 1);
}

#[test]
fn what_verify_changes_is_put_back_before_the_commit() {
    // The agent adds a file and changes README.md; the verify command appends to README.md,
    // deletes the agent's file and makes one of its own: none of that is committed.
    let s = Scratch::new(&tasks_md(&[task(
        "1",
        "Work",
        "",
        "write=new.txt line=README.md:agent~line",
    )]));
    let run = s.run(&[
        "--verify",
        "sh -c 'echo junk >> README.md; rm new.txt; echo made > made-by-verify.txt'",
    ]);
    run.assert_code(0);
    let branch = Scratch::branch("1");
    let files = s.files(&branch);
    assert!(files.contains("new.txt"), "{files:?}");
    assert!(!files.contains("made-by-verify.txt"), "{files:?}");
    assert_eq!(s.show(&branch, "README.md"), "scratch\nagent line\n");
}

#[test]
fn what_the_task_retyped_survives_a_verify_that_retypes_stages_and_commits() {
    // The task turns directories into a file and links, a link into a file, and makes a file;
    // the verify command edits and retypes them back, extends .gitignore to hide what it
    // writes, stages one file and commits another. What the task left is committed, and
    // nothing of the verify command.
    let s = Scratch::package(&tasks_md(&[shell_task(
        "1",
        "Retype",
        "",
        "mkdir -p d2f d2l ldir && echo a > d2f/a && echo b > d2l/b && echo c > ldir/c && ln -s Cargo.toml l2f && git add -A && git -c user.name=t -c user.email=t@t commit -qm dirs && rm -r d2f d2l ldir l2f && echo now-a-file > d2f && ln -s README.md d2l && ln -s README.md ldir && echo file > l2f && echo work > work.txt",
    )]));
    let verify = [
        "echo junk >> README.md; echo more >> d2f; echo more >> l2f",
        "rm work.txt; mkdir work.txt; rm ldir; mkdir ldir; echo x > ldir/x",
        "printf 'gen.txt\\ngendir/\\n' >> .gitignore; echo g > gen.txt; mkdir gendir; echo g > gendir/g",
        "echo staged > staged.txt; git add staged.txt; echo committed > committed.txt",
        "git add committed.txt; git -c user.name=v -c user.email=v@v commit -qm verify",
    ]
    .join("; ");
    let run = s.shell_run(&["--verify", &format!("sh -c \"{verify}\"")]);
    run.assert_code(0);
    let branch = Scratch::branch("1");
    let files = s.files(&branch);
    for absent in ["gen.txt", "gendir/g", "staged.txt", "committed.txt"] {
        assert!(!files.contains(absent), "{absent}: {files:?}");
    }
    assert!(
        !files
            .iter()
            .any(|f| f.contains('/') && !f.starts_with("src/") && !f.starts_with("documentation/")),
        "{files:?}"
    );
    assert_eq!(s.show(&branch, "d2f"), "now-a-file\n");
    assert_eq!(s.show(&branch, "l2f"), "file\n");
    assert_eq!(s.show(&branch, "work.txt"), "work\n");
    assert_eq!(s.show(&branch, "README.md"), "scratch\n");
    assert_eq!(s.show(&branch, ".gitignore"), s.show("main", ".gitignore"));
    for link in ["d2l", "ldir"] {
        let entry = s.git(&["ls-tree", &branch, link]);
        assert!(entry.starts_with("120000"), "{entry}");
    }
    assert_eq!(
        s.git(&["rev-parse", &format!("{branch}~1")]),
        s.git(&["rev-parse", "main"])
    );
}

#[test]
fn an_agent_cannot_turn_the_default_verification_off() {
    // The agent empties the workspace's members (which would leave `cargo check` nothing to
    // check) and breaks the crate: the default still applies, as decided on the base.
    let s = Scratch::new(&tasks_md(&[task(
        "1",
        "Hide the crate",
        "",
        &format!(
            "write=Cargo.toml line=Cargo.toml:[workspace] line=Cargo.toml:members~=~[] line={LIB}:not~rust"
        ),
    )]));
    let run = s.run(&["--max-attempts", "1"]);
    run.assert_code(1);
    assert_eq!(
        run.finished("1")["verify"][0]["passed"],
        false,
        "{}",
        run.context()
    );
}

#[test]
fn verify_commands_that_cannot_run_are_refused_before_anything_starts() {
    let s = Scratch::new(&tasks_md(&[task("1", "Write", "", "write=out.txt")]));
    for (flag, says) in [
        ("no-such-program-anywhere --flag", "which is not on PATH"),
        ("'' --flag", "names no program"),
        ("sh -c \"true\n\nexit 0\"", "is not one line"),
    ] {
        let run = s.run(&["--verify", flag]);
        run.assert_code(2);
        assert!(run.stderr.contains(says), "{flag}: {}", run.context());
    }
    assert!(!s.agent_log().exists());
}

#[test]
fn the_last_output_shown_drives_no_terminal() {
    let s = Scratch::new(&tasks_md(&[task("1", "Write", "", "write=out.txt")]));
    let run = s.run(&[
        "--verify",
        "sh -c 'printf \"\\033]0;title\\007\\033[31mRED\\n\"; exit 1'",
        "--max-attempts",
        "1",
    ]);
    run.assert_code(1);
    let last = run.finished("1")["last_output"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(last.contains("RED"), "{last}");
    assert!(!last.chars().any(char::is_control), "{last:?}");
}
