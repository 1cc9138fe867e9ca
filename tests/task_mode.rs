//! Integration tests of one task at a time (`--task`, `--remote`, `--push`) and `sync`: the
//! built binary with the built-in shell agent, in temporary git repositories, each job in a
//! fresh clone of one bare remote, as the jobs of a CI workflow run.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod support;

use support::{FEATURE, Run, Scratch, git_in, shell_task, spec_exec_in, tasks_md, wait_until};

/// 1 → 2 → 3, each writing a file from what the one before wrote.
fn chain() -> String {
    tasks_md(&[
        shell_task("1", "One", "", "echo one > one.txt"),
        shell_task(
            "2",
            "Two",
            "Task 1",
            "cat one.txt > two.txt && echo two >> two.txt",
        ),
        shell_task(
            "3",
            "Three",
            "Task 2",
            "cat two.txt > three.txt && echo three >> three.txt",
        ),
    ])
}

/// A bare remote made from the scratch repository, beside it.
fn bare_remote(s: &Scratch) -> PathBuf {
    let remote = s.repo().with_file_name("remote.git");
    git_in(
        s.repo().parent().unwrap(),
        &["clone", "-q", "--bare", "repo", "remote.git"],
    );
    remote
}

/// A fresh clone of `remote` named `name`, beside it, as a CI job's checkout makes one.
fn clone(remote: &Path, name: &str) -> PathBuf {
    let dir = remote.with_file_name(name);
    git_in(
        remote.parent().unwrap(),
        &["clone", "-q", remote.to_str().unwrap(), name],
    );
    dir
}

/// The binary in `dir` with the shell agent, no verification and JSON output.
fn job(dir: &Path, args: &[&str]) -> Command {
    let mut all = vec![FEATURE];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--agent",
        "shell",
        "--no-verify",
        "--message-format",
        "json",
    ]);
    let mut cmd = spec_exec_in(dir, &all);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .stdin(Stdio::null());
    cmd
}

fn tasks_md_of(dir: &Path) -> Vec<u8> {
    std::fs::read(
        dir.join("documentation/features")
            .join(FEATURE)
            .join("tasks.md"),
    )
    .unwrap()
}

/// The tree of `rev` in the repository at `dir`.
fn tree(dir: &Path, rev: &str) -> String {
    git_in(dir, &["rev-parse", &format!("{rev}^{{tree}}")])
        .trim()
        .to_owned()
}

fn has_ref(dir: &Path, name: &str) -> bool {
    support::git_output_in(dir, &["rev-parse", "--verify", "-q", name])
        .status
        .success()
}

#[test]
fn a_task_runs_alone_unticked_and_only_once_its_dependencies_are_done() {
    let s = Scratch::package(&chain());
    let before = s.tasks_md();

    // Task 2 waits for 1, which is not done: nothing starts.
    let run = Run::of(job(&s.repo(), &["--task", "2"]));
    run.assert_code(2);
    assert!(
        run.stderr.contains("task 2 needs task 1") && run.stderr.contains("`spec/demo/1`"),
        "{}",
        run.context()
    );
    assert!(s.branches().is_empty(), "{:?}", s.branches());

    let run = Run::of(job(&s.repo(), &["--task", "9"]));
    run.assert_code(2);
    assert!(
        run.stderr.contains("`9`") && run.stderr.contains("1, 2, 3"),
        "{}",
        run.context()
    );
    let run = Run::of(job(&s.repo(), &["--task", "1", "--push"]));
    run.assert_code(2);
    assert!(run.stderr.contains("--remote"), "{}", run.context());

    // Task 1 alone: its branch, no tick, nothing else, no integration branch.
    let run = Run::of(job(&s.repo(), &["--task", "1"]));
    run.assert_code(0);
    assert_eq!(run.started(), ["1".to_owned()].into(), "{}", run.context());
    assert_eq!(run.status("1"), "done");
    assert_eq!(s.branches(), [Scratch::branch("1")]);
    assert_eq!(s.show(&Scratch::branch("1"), "one.txt"), "one\n");
    assert_eq!(s.tasks_md(), before, "tasks.md is not ticked");

    // Again: done already, nothing runs.
    let run = Run::of(job(&s.repo(), &["--task", "1"]));
    run.assert_code(0);
    assert!(run.started().is_empty(), "{}", run.context());
    assert!(run.stderr.contains("already done"), "{}", run.context());

    // Now 2 may run, on 1's branch.
    let run = Run::of(job(&s.repo(), &["--task", "2"]));
    run.assert_code(0);
    assert_eq!(run.started(), ["2".to_owned()].into(), "{}", run.context());
    assert_eq!(s.show(&Scratch::branch("2"), "two.txt"), "one\ntwo\n");
    assert_eq!(s.tasks_md(), before);
}

#[test]
fn jobs_in_fresh_clones_leave_the_branches_of_a_local_run_and_sync_ticks_as_it_did() {
    let s = Scratch::package(&chain());
    let remote = bare_remote(&s);

    let local = clone(&remote, "local");
    let run = Run::of(job(&local, &[]));
    run.assert_code(0);

    for id in ["1", "2", "3"] {
        let dir = clone(&remote, &format!("job-{id}"));
        let run = Run::of(job(&dir, &["--task", id, "--remote", "origin", "--push"]));
        run.assert_code(0);
        assert_eq!(run.started(), [id.to_owned()].into(), "{}", run.context());
    }
    for id in ["1", "2", "3"] {
        let branch = Scratch::branch(id);
        assert_eq!(
            tree(&remote, &branch),
            tree(&local, &branch),
            "task {id}'s branch"
        );
    }

    let synced = clone(&remote, "synced");
    let out = spec_exec_in(&synced, &["sync", FEATURE, "--message-format", "json"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let run = Run::new(out, std::time::Duration::ZERO);
    run.assert_code(0);
    let ticked: Vec<&str> = run
        .of_type("ticked")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ticked, ["1", "2", "3"], "{}", run.context());
    assert_eq!(tasks_md_of(&synced), tasks_md_of(&local));

    // Nothing more to do.
    let out = spec_exec_in(&synced, &["sync", FEATURE])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to tick"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_second_of_two_jobs_of_one_task_fails_to_push_and_leaves_the_first_s_branch() {
    let s = Scratch::package(&tasks_md(&[shell_task(
        "1",
        "One",
        "",
        "touch \"$STARTED\"; while [ ! -e \"$GO\" ]; do sleep 0.05; done; echo \"one by $WHO\" > one.txt",
    )]));
    let remote = bare_remote(&s);
    let ctl = s.ctl();
    let (a, b) = (clone(&remote, "job-a"), clone(&remote, "job-b"));

    // B fetches, starts its agent and waits; A runs and pushes meanwhile; then B goes on.
    let mut second = job(&b, &["--task", "1", "--remote", "origin", "--push"]);
    second
        .env("WHO", "B")
        .env("STARTED", ctl.join("b-started"))
        .env("GO", ctl.join("b-go"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let second = second.spawn().unwrap();
    wait_until("job B's agent started", || ctl.join("b-started").exists());
    let mut first = job(&a, &["--task", "1", "--remote", "origin", "--push"]);
    first
        .env("WHO", "A")
        .env("STARTED", ctl.join("a-started"))
        .env("GO", ctl.join("a-started"));
    let run = Run::of(first);
    run.assert_code(0);
    let pushed = git_in(&remote, &["rev-parse", &Scratch::branch("1")]);
    std::fs::write(ctl.join("b-go"), "").unwrap();
    let run = Run::new(
        second.wait_with_output().unwrap(),
        std::time::Duration::ZERO,
    );
    run.assert_code(1);
    assert_eq!(run.status("1"), "failed");
    assert!(
        run.reason("1")
            .contains("someone else pushed `spec/demo/1`"),
        "{}",
        run.context()
    );
    assert_eq!(
        git_in(&remote, &["rev-parse", &Scratch::branch("1")]),
        pushed,
        "the first job's branch is intact"
    );
    assert_eq!(
        git_in(
            &remote,
            &["show", &format!("{}:one.txt", Scratch::branch("1"))]
        ),
        "one by A\n"
    );
    // B's commit stays on its local branch.
    assert_eq!(
        git_in(&b, &["show", &format!("{}:one.txt", Scratch::branch("1"))]),
        "one by B\n"
    );
}

/// A review that asks for changes in its first round and approves in its second, by the
/// branch it runs on.
const REVIEW: &str = "mkdir -p code_review && case \"$SPEC_EXEC_BRANCH\" in *.round-2) v=APPROVED;; *) v='REQUIRES CHANGES';; esac && printf 'Status: %s\\n' \"$v\" > code_review/CR-A.md";

#[test]
fn a_review_gate_goes_one_step_per_job_with_its_verdict_in_the_job_outputs() {
    let s = Scratch::package(&tasks_md(&[
        shell_task("1", "Build", "", "echo one > one.txt"),
        shell_task("CR-A", "Code review", "Task 1", REVIEW),
        shell_task("RW-A", "Rework", "CR-A (failed)", "echo fixed >> fix.txt"),
    ]));
    let remote = bare_remote(&s);
    let outputs = s.ctl().join("outputs");
    let step = |n: usize, id: &str| -> (Run, String) {
        let dir = clone(&remote, &format!("job-{n}"));
        let file = outputs.with_extension(n.to_string());
        std::fs::write(&file, "earlier=kept\n").unwrap();
        let mut cmd = job(&dir, &["--task", id, "--remote", "origin", "--push"]);
        cmd.env("GITHUB_OUTPUT", &file);
        let run = Run::of(cmd);
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(written.starts_with("earlier=kept\n"), "{written}");
        (run, written)
    };

    let (run, out) = step(1, "1");
    run.assert_code(0);
    assert_eq!(out, "earlier=kept\nstatus-1=done\n");

    // A review and its rework in one run: refused, saying why (the gate goes one step a run).
    let dir = clone(&remote, "job-both");
    let run = Run::of(job(
        &dir,
        &["--task", "CR-A", "--task", "RW-A", "--remote", "origin"],
    ));
    run.assert_code(2);
    assert!(
        run.stderr.contains("--task CR-A and --task RW-A")
            && run.stderr.contains("one step per run")
            && !run.stderr.contains("no recorded round"),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty(), "{}", run.context());

    let (run, out) = step(2, "CR-A");
    run.assert_code(0);
    assert_eq!(run.verdicts("CR-A"), [(1, "requires-changes".to_owned())]);
    assert!(
        run.started().len() == 1,
        "no rework here: {}",
        run.context()
    );
    assert_eq!(
        out,
        "earlier=kept\nstatus-CR-A=done\nverdict=changes\nverdict-CR-A=changes\n"
    );

    // The review again before its rework: the round stands, no new one runs, and the verdict
    // is given again (a workflow run again from its first job goes on to the rework).
    let (run, out) = step(20, "CR-A");
    run.assert_code(0);
    assert!(run.started().is_empty(), "{}", run.context());
    assert!(
        run.stderr.contains("Reviewed demo: task CR-A: its round 1")
            && run.stderr.contains("`--task RW-A` runs next"),
        "{}",
        run.context()
    );
    assert_eq!(
        out,
        "earlier=kept\nstatus-CR-A=done\nverdict=changes\nverdict-CR-A=changes\n"
    );

    let (run, out) = step(3, "RW-A");
    run.assert_code(0);
    assert_eq!(run.status("RW-A"), "done", "{}", run.context());
    assert_eq!(out, "earlier=kept\nstatus-RW-A=done\n");

    let (run, out) = step(4, "CR-A");
    run.assert_code(0);
    assert_eq!(run.verdicts("CR-A"), [(2, "approved".to_owned())]);
    assert_eq!(
        out,
        "earlier=kept\nstatus-CR-A=done\nverdict=approved\nverdict-CR-A=approved\n"
    );

    // The gate's branches are on the remote, each round on what came before it.
    for b in ["CR-A", "RW-A", "CR-A.round-2"] {
        assert!(has_ref(&remote, &Scratch::branch(b)), "{b}");
    }
    assert!(!has_ref(&remote, &Scratch::branch("RW-A.round-2")));
    let round2 = Scratch::branch("CR-A.round-2");
    assert_eq!(
        git_in(&remote, &["show", &format!("{round2}:fix.txt")]),
        "fixed\n"
    );

    // The rework ran and its review approved after it: it is done (not "not needed"), and so
    // is the review.
    let (run, out) = step(5, "RW-A");
    run.assert_code(0);
    assert!(run.started().is_empty(), "{}", run.context());
    assert_eq!(out, "earlier=kept\nstatus-RW-A=done\n");
    assert!(
        run.reason("RW-A").contains("already done") && run.reason("RW-A").contains("CR-A approved"),
        "{}",
        run.context()
    );
    let (run, out) = step(6, "CR-A");
    run.assert_code(0);
    assert!(run.started().is_empty(), "{}", run.context());
    assert_eq!(
        out,
        "earlier=kept\nstatus-CR-A=done\nverdict=approved\nverdict-CR-A=approved\n"
    );

    // sync ticks the gate as a run that went through it would.
    let synced = clone(&remote, "synced");
    let out = spec_exec_in(&synced, &["sync", FEATURE])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let md = String::from_utf8(tasks_md_of(&synced)).unwrap();
    for id in ["1", "CR-A", "RW-A"] {
        assert!(support::is_ticked(&md, id), "{id}: {md}");
    }
}

#[test]
fn a_fetch_makes_and_moves_local_branches_only_forward_and_never_one_checked_out() {
    let s = Scratch::package(&chain());
    let remote = bare_remote(&s);
    for id in ["1", "2"] {
        let dir = clone(&remote, &format!("job-{id}"));
        let run = Run::of(job(&dir, &["--task", id, "--remote", "origin", "--push"]));
        run.assert_code(0);
    }
    let (one, two) = (Scratch::branch("1"), Scratch::branch("2"));
    let theirs = |b: &str| git_in(&remote, &["rev-parse", b]);

    // 1 behind the remote's: moved; 2 diverged from it: kept, with a warning.
    let c = clone(&remote, "behind-and-diverged");
    git_in(&c, &["branch", &one, "main"]);
    git_in(&c, &["checkout", "-q", "-b", "mine"]);
    git_in(
        &c,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@localhost",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "mine",
        ],
    );
    git_in(&c, &["branch", &two, "mine"]);
    git_in(&c, &["checkout", "-q", "main"]);
    let mine = git_in(&c, &["rev-parse", "mine"]);
    let out = spec_exec_in(&c, &["sync", FEATURE])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(git_in(&c, &["rev-parse", &one]), theirs(&one));
    assert_eq!(git_in(&c, &["rev-parse", &two]), mine);
    assert!(
        stderr.contains(&format!("`{two}` and origin's have diverged")),
        "{stderr}"
    );
    // Only 1 is finished here: 2's branch is someone's own.
    let md = String::from_utf8(tasks_md_of(&c)).unwrap();
    assert!(
        support::is_ticked(&md, "1") && !support::is_ticked(&md, "2"),
        "{md}"
    );

    // A branch checked out is never moved.
    let d = clone(&remote, "checked-out");
    git_in(&d, &["checkout", "-q", "-b", &one, "main"]);
    let out = spec_exec_in(&d, &["sync", FEATURE])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        git_in(&d, &["rev-parse", &one]),
        git_in(&d, &["rev-parse", "main"])
    );
    assert!(stderr.contains("checked out"), "{stderr}");
    // Fetched: 2 was made at the remote's tip.
    assert_eq!(git_in(&d, &["rev-parse", &two]), theirs(&two));

    // A remote that is not there: exit 2 naming the remotes there are, for a run and for sync.
    let run = Run::of(job(&d, &["--task", "3", "--remote", "nowhere"]));
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("`nowhere` is not a remote of this repository")
            && run.stderr.contains("`origin`"),
        "{}",
        run.context()
    );
    let out = spec_exec_in(&d, &["sync", FEATURE, "--remote", "nowhere"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The bundled example as the jobs of a workflow: each task's job in topological order, each in
/// a fresh clone, leaves the branches of a local run, and `sync` then ticks tasks.md as the
/// local run did.
#[test]
fn the_example_run_job_by_job_matches_a_local_run() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    support::copy_dir(&support::fixture("example"), &origin);
    let git = |dir: &Path, args: &[&str]| {
        let mut all = vec![
            "-c",
            "user.name=Example",
            "-c",
            "user.email=example@localhost",
        ];
        all.extend_from_slice(args);
        git_in(dir, &all)
    };
    git(&origin, &["init", "-q", "-b", "main"]);
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-qm", "The example"]);
    let approve = spec_exec_in(&origin, &["approve", "user-auth"])
        .output()
        .unwrap();
    assert!(approve.status.success());
    git(&origin, &["commit", "-qam", "Approve"]);
    git(
        tmp.path(),
        &["clone", "-q", "--bare", "origin", "remote.git"],
    );
    let remote = tmp.path().join("remote.git");

    let example = |dir: &Path, args: &[&str]| {
        let mut all = vec!["user-auth", "--agent", "shell", "--no-verify"];
        all.extend_from_slice(args);
        let out = spec_exec_in(dir, &all)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GITHUB_OUTPUT")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let local = clone(&remote, "local");
    example(&local, &[]);
    for id in ["1", "2", "CR-A", "3", "5", "4", "CR-FINAL", "RW-FINAL"] {
        let dir = clone(&remote, &format!("job-{id}"));
        example(&dir, &["--task", id, "--remote", "origin", "--push"]);
    }
    let ours = git_in(
        &local,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/spec/user-auth/",
        ],
    );
    let tasks: Vec<&str> = ours
        .lines()
        .filter(|b| !b.ends_with("/integration"))
        .collect();
    assert_eq!(tasks.len(), 8, "{ours}");
    for branch in tasks {
        assert_eq!(tree(&remote, branch), tree(&local, branch), "{branch}");
    }
    let synced = clone(&remote, "synced");
    let out = spec_exec_in(&synced, &["sync", "user-auth"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let md =
        |dir: &Path| std::fs::read(dir.join("documentation/features/user-auth/tasks.md")).unwrap();
    assert_eq!(md(&synced), md(&local));
}

#[test]
fn a_whole_run_with_push_pushes_every_task_s_branches_and_still_ticks() {
    let s = Scratch::package(&tasks_md(&[
        shell_task("1", "Build", "", "echo one > one.txt"),
        shell_task("CR-A", "Code review", "Task 1", REVIEW),
        shell_task("RW-A", "Rework", "CR-A (failed)", "echo fixed >> fix.txt"),
    ]));
    let remote = bare_remote(&s);
    let dir = clone(&remote, "whole");
    let run = Run::of(job(&dir, &["--remote", "origin", "--push"]));
    run.assert_code(0);
    for b in ["1", "CR-A", "RW-A", "CR-A.round-2"] {
        let branch = Scratch::branch(b);
        assert_eq!(
            git_in(&remote, &["rev-parse", &branch]),
            git_in(&dir, &["rev-parse", &branch]),
            "{b}"
        );
    }
    let md = String::from_utf8(tasks_md_of(&dir)).unwrap();
    for id in ["1", "CR-A", "RW-A"] {
        assert!(support::is_ticked(&md, id), "{id}: {md}");
    }
}

#[test]
fn agents_get_neither_the_job_s_files_nor_its_token_which_only_spec_exec_s_git_gets() {
    let s = Scratch::package(&tasks_md(&[shell_task("1", "One", "", "env > env.txt")]));
    let remote = bare_remote(&s);
    let dir = clone(&remote, "job-1");
    let ctl = s.ctl();
    let outputs = ctl.join("outputs");
    let mut cmd = job(&dir, &["--task", "1", "--remote", "origin", "--push"]);
    cmd.env("GITHUB_OUTPUT", &outputs);
    let withheld = [
        "GITHUB_ENV",
        "GITHUB_PATH",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_STATE",
        "ACTIONS_RUNTIME_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    ];
    for name in withheld {
        cmd.env(name, ctl.join(name));
    }
    cmd.env("SPEC_EXEC_GIT_TOKEN", "s3cret")
        .env("GH_TOKEN", "s3cret");
    let run = Run::of(cmd);
    run.assert_code(0);
    let env = git_in(
        &remote,
        &["show", &format!("{}:env.txt", Scratch::branch("1"))],
    );
    for name in withheld
        .iter()
        .chain(&["GITHUB_OUTPUT", "SPEC_EXEC_GIT_TOKEN", "GH_TOKEN"])
    {
        assert!(!env.contains(&format!("{name}=")), "{name} in\n{env}");
    }
    assert!(!env.contains("s3cret"), "{env}");
    assert!(
        std::fs::read_to_string(&outputs)
            .unwrap()
            .contains("status-1=done\n")
    );

    // An HTTPS remote that asks for credentials gets the token, as GitHub expects it, from
    // spec-exec's fetch; nothing of it is left in the clone's configuration.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::thread::spawn(move || {
        use std::io::{BufRead as _, Write as _};
        let mut auth = Vec::new();
        // Git asks without credentials, then with them.
        for _ in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                if let Some(v) = line.strip_prefix("Authorization: ") {
                    auth.push(v.trim().to_owned());
                }
                line.clear();
            }
            let _ = (&stream).write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        auth
    });
    let dir = clone(&remote, "job-http");
    git_in(
        &dir,
        &[
            "remote",
            "set-url",
            "origin",
            &format!("http://127.0.0.1:{port}/remote.git"),
        ],
    );
    let mut cmd = job(&dir, &["--task", "1", "--remote", "origin"]);
    cmd.env("SPEC_EXEC_GIT_TOKEN", "s3cret");
    let run = Run::of(cmd);
    run.assert_code(2);
    assert!(run.stderr.contains("could not fetch"), "{}", run.context());
    // base64 of `x-access-token:s3cret`.
    assert_eq!(seen.join().unwrap(), ["Basic eC1hY2Nlc3MtdG9rZW46czNjcmV0"]);
    let config = std::fs::read_to_string(dir.join(".git/config")).unwrap();
    assert!(!config.contains("s3cret"), "{config}");
}

#[test]
fn a_task_done_here_but_not_on_the_remote_is_pushed_by_the_next_push_run() {
    let s = Scratch::package(&chain());
    let remote = bare_remote(&s);
    let dir = clone(&remote, "job");
    let branch = Scratch::branch("1");

    // The push fails: the commit stays here.
    let bad = remote.with_file_name("nowhere.git");
    git_in(
        &dir,
        &["config", "remote.origin.pushurl", bad.to_str().unwrap()],
    );
    let run = Run::of(job(&dir, &["--task", "1", "--remote", "origin", "--push"]));
    run.assert_code(1);
    assert!(
        run.reason("1").contains("could not push"),
        "{}",
        run.context()
    );
    assert!(!has_ref(&remote, &branch));

    // Again, with the remote reachable: nothing runs, and the branch is pushed.
    git_in(&dir, &["config", "--unset", "remote.origin.pushurl"]);
    let run = Run::of(job(&dir, &["--task", "1", "--remote", "origin", "--push"]));
    run.assert_code(0);
    assert!(run.started().is_empty(), "{}", run.context());
    assert!(
        run.reason("1").contains("already done")
            && run.reason("1").contains("pushed `spec/demo/1`"),
        "{}",
        run.context()
    );
    assert_eq!(
        git_in(&remote, &["rev-parse", &branch]),
        git_in(&dir, &["rev-parse", &branch])
    );
    // And once it is there, a run says it is done and pushes nothing.
    let run = Run::of(job(&dir, &["--task", "1", "--remote", "origin", "--push"]));
    run.assert_code(0);
    assert!(!run.reason("1").contains("pushed"), "{}", run.context());
}

#[test]
fn with_push_a_dependency_must_be_on_the_remote_as_it_is_here() {
    let s = Scratch::package(&chain());
    let remote = bare_remote(&s);
    let dir = clone(&remote, "job");
    let one = Scratch::branch("1");

    // Task 1 done here only: task 2 would be pushed on work the remote does not have.
    Run::of(job(&dir, &["--task", "1"])).assert_code(0);
    let run = Run::of(job(&dir, &["--task", "2", "--remote", "origin", "--push"]));
    run.assert_code(2);
    assert!(
        run.stderr.contains("`spec/demo/1` is not on origin")
            && run.stderr.contains("--task 1 --remote origin --push"),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty(), "{}", run.context());
    assert!(!has_ref(&remote, &Scratch::branch("2")));

    // Pushed, it is a dependency like any other.
    Run::of(job(&dir, &["--task", "1", "--remote", "origin", "--push"])).assert_code(0);
    assert!(has_ref(&remote, &one));

    // A dependency that diverged from the remote's here is refused too.
    let other = clone(&remote, "other");
    git_in(&other, &["fetch", "-q", "origin", &format!("{one}:{one}")]);
    git_in(&other, &["checkout", "-q", &one]);
    git_in(
        &other,
        &[
            "commit",
            "-q",
            "--amend",
            "--no-edit",
            "--date=2001-01-01T00:00:00",
        ],
    );
    git_in(&other, &["checkout", "-q", "main"]);
    let run = Run::of(job(
        &other,
        &["--task", "2", "--remote", "origin", "--push"],
    ));
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("`spec/demo/1` and origin's have diverged"),
        "{}",
        run.context()
    );
    assert!(!has_ref(&remote, &Scratch::branch("2")));

    Run::of(job(&dir, &["--task", "2", "--remote", "origin", "--push"])).assert_code(0);
    assert!(has_ref(&remote, &Scratch::branch("2")));
}

#[test]
fn someone_s_commit_on_a_task_branch_blocks_only_the_jobs_that_use_it_and_sync_names_it() {
    let s = Scratch::package(&tasks_md(&[
        shell_task("1", "One", "", "echo one > one.txt"),
        shell_task("2", "Two", "Task 1", "echo two > two.txt"),
        shell_task("3", "Three", "", "echo three > three.txt"),
    ]));
    let remote = bare_remote(&s);
    for id in ["1", "2"] {
        let dir = clone(&remote, &format!("job-{id}"));
        Run::of(job(&dir, &["--task", id, "--remote", "origin", "--push"])).assert_code(0);
    }
    // Someone commits on top of task 2's branch.
    let two = Scratch::branch("2");
    let human = clone(&remote, "human");
    git_in(&human, &["checkout", "-q", &two]);
    std::fs::write(human.join("two.txt"), "by hand\n").unwrap();
    git_in(&human, &["commit", "-q", "-am", "by hand"]);
    git_in(&human, &["push", "-q", "origin", &two]);

    // Task 3 does not use it: it runs.
    let dir = clone(&remote, "job-3");
    let run = Run::of(job(&dir, &["--task", "3", "--remote", "origin", "--push"]));
    run.assert_code(0);
    assert_eq!(run.started(), ["3".to_owned()].into(), "{}", run.context());
    // Task 2's own job still refuses to move it.
    let dir = clone(&remote, "job-2-again");
    let run = Run::of(job(&dir, &["--task", "2", "--remote", "origin", "--push"]));
    run.assert_code(2);
    assert!(
        run.stderr.contains("commits spec-exec did not make"),
        "{}",
        run.context()
    );

    // `sync` ticks what it can count and names the branch it cannot.
    let synced = clone(&remote, "synced");
    let out = spec_exec_in(&synced, &["sync", FEATURE])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`spec/demo/2`") && stderr.contains("not counted"),
        "{stderr}"
    );
    assert!(stderr.contains("local branches"), "{stderr}");
    let md = String::from_utf8(tasks_md_of(&synced)).unwrap();
    assert!(
        support::is_ticked(&md, "1") && support::is_ticked(&md, "3"),
        "{md}"
    );
    assert!(!support::is_ticked(&md, "2"), "{md}");
}

#[test]
fn job_outputs_that_cannot_be_written_fail_the_run() {
    let s = Scratch::package(&chain());
    let nowhere = s.ctl().join("no-such-dir").join("outputs");
    for again in [false, true] {
        let mut cmd = job(&s.repo(), &["--task", "1"]);
        cmd.env("GITHUB_OUTPUT", &nowhere);
        let run = Run::of(cmd);
        run.assert_code(1);
        assert!(
            run.stderr.contains("could not write the job outputs")
                && run.stderr.contains("no-such-dir"),
            "{}",
            run.context()
        );
        // The task itself is done either way; the second run finds it so.
        assert_eq!(run.started().is_empty(), again, "{}", run.context());
    }
}

#[test]
fn a_review_that_fails_at_its_limit_of_rounds_is_pushed_and_not_run_again() {
    let s = Scratch::package(&tasks_md(&[
        shell_task("1", "Build", "", "echo one > one.txt"),
        shell_task(
            "CR-A",
            "Code review",
            "Task 1",
            "mkdir -p code_review && printf 'Status: REQUIRES CHANGES\\n' > code_review/CR-A.md && echo ran >> \"$LOG\"",
        ),
        shell_task("RW-A", "Rework", "CR-A (failed)", "echo fixed >> fix.txt"),
    ]));
    let remote = bare_remote(&s);
    let log = s.ctl().join("review-runs");
    let review = |name: &str| {
        let dir = clone(&remote, name);
        let mut cmd = job(
            &dir,
            &[
                "--task",
                "CR-A",
                "--remote",
                "origin",
                "--push",
                "--max-review-rounds",
                "1",
            ],
        );
        cmd.env("LOG", &log);
        Run::of(cmd)
    };
    Run::of(job(
        &clone(&remote, "job-1"),
        &["--task", "1", "--remote", "origin", "--push"],
    ))
    .assert_code(0);

    let run = review("job-2");
    run.assert_code(1);
    assert_eq!(run.status("CR-A"), "failed");
    assert!(
        run.reason("CR-A").contains("--max-review-rounds 1")
            && run.reason("CR-A").contains("pushed to origin"),
        "{}",
        run.context()
    );
    assert!(
        has_ref(&remote, &Scratch::branch("CR-A")),
        "the round is the gate's record"
    );

    // Run again: the gate is spent, no agent runs, and it fails the same way.
    let run = review("job-3");
    run.assert_code(1);
    assert!(run.started().is_empty(), "{}", run.context());
    assert!(
        run.reason("CR-A")
            .contains("the limit, --max-review-rounds 1"),
        "{}",
        run.context()
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran\n");
}

#[test]
fn a_fetch_that_stalls_is_stopped_after_the_git_timeout() {
    let s = Scratch::package(&chain());
    // A server that takes the connection and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    git_in(
        &s.repo(),
        &[
            "remote",
            "add",
            "origin",
            &format!("http://127.0.0.1:{port}/remote.git"),
        ],
    );
    let mut cmd = job(&s.repo(), &["--task", "1", "--remote", "origin"]);
    cmd.env("SPEC_EXEC_GIT_TIMEOUT", "1s");
    let run = Run::of(cmd);
    run.assert_code(2);
    assert!(
        run.stderr.contains("`git fetch` did not finish within 1s")
            && run.stderr.contains("git-timeout"),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty(), "{}", run.context());

    let mut cmd = job(&s.repo(), &["--task", "1", "--remote", "origin"]);
    cmd.env("SPEC_EXEC_GIT_TIMEOUT", "soon");
    let run = Run::of(cmd);
    run.assert_code(2);
    assert!(
        run.stderr.contains("invalid SPEC_EXEC_GIT_TIMEOUT"),
        "{}",
        run.context()
    );
}

#[test]
fn only_a_configured_remote_s_name_is_a_remote_and_a_killed_fetch_s_locks_are_cleared() {
    let s = Scratch::package(&chain());
    let remote = bare_remote(&s);
    let first = clone(&remote, "job-1");
    Run::of(job(
        &first,
        &["--task", "1", "--remote", "origin", "--push"],
    ))
    .assert_code(0);
    let dir = clone(&remote, "job-2");

    // A path beside the clone, an option: neither is a remote's name.
    std::fs::create_dir_all(dir.join("bare.git")).unwrap();
    git_in(&dir.join("bare.git"), &["init", "-q", "--bare"]);
    for name in ["bare.git", "../remote.git", "--upload-pack=touch x"] {
        let run = Run::of(job(&dir, &["--task", "2", &format!("--remote={name}")]));
        run.assert_code(2);
        assert!(
            run.stderr.contains("is not a remote of this repository")
                && run.stderr.contains("`origin`")
                && !run.stderr.contains("git fetch --"),
            "{name}: {}",
            run.context()
        );
    }
    assert!(!dir.join("x").exists());

    // A lock file a killed fetch left in spec-exec's namespace does not stop the next fetch.
    let locks = dir.join(".git/refs/spec-exec/remote/origin/demo");
    std::fs::create_dir_all(&locks).unwrap();
    let lock = locks.join("1.lock");
    std::fs::write(&lock, "").unwrap();
    Command::new("touch")
        .args(["-d", "2001-01-01"])
        .arg(&lock)
        .status()
        .unwrap();
    let run = Run::of(job(&dir, &["--task", "2", "--remote", "origin", "--push"]));
    run.assert_code(0);
    assert!(!lock.exists());
    assert!(has_ref(&remote, &Scratch::branch("2")));
}

#[test]
fn a_task_the_plan_blocks_is_refused_and_one_it_leaves_out_is_skipped() {
    let md = tasks_md(&[
        shell_task("1", "Blocked", "", "echo one > one.txt"),
        shell_task("2", "After it", "Task 1", "echo two > two.txt"),
        shell_task("3", "Optional", "", "echo three > three.txt"),
    ])
    .replace("- [ ] 1. ", "- [~] 1. ")
    .replace("- [ ] 3. ", "- [ ]* 3. ");
    let s = Scratch::package(&md);

    let run = Run::of(job(&s.repo(), &["--task", "1"]));
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("task 1 cannot run: it is marked not runnable (`[~]`)")
            && run
                .stderr
                .contains("select another task, or change tasks.md"),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty(), "{}", run.context());

    let run = Run::of(job(&s.repo(), &["--task", "2"]));
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("task 2 cannot run: it waits for task 1, which cannot run"),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty(), "{}", run.context());

    // Left out by --skip-optional: reported as skipped (which fails the run, as a skipped
    // task does), not run, not refused.
    let run = Run::of(job(&s.repo(), &["--task", "3", "--skip-optional"]));
    run.assert_code(1);
    assert!(run.started().is_empty(), "{}", run.context());
    assert_eq!(run.status("3"), "skipped", "{}", run.context());
    assert!(
        run.reason("3").contains("not in this run's plan")
            && run.reason("3").contains("--skip-optional"),
        "{}",
        run.context()
    );
    assert!(s.branches().is_empty(), "{:?}", s.branches());
}

#[test]
fn a_dependency_s_branch_without_its_commit_is_not_done() {
    let s = Scratch::package(&chain());
    let remote = bare_remote(&s);
    let dir = clone(&remote, "job");
    // Task 1's branch is there, at the base: it holds no commit of task 1.
    git_in(&dir, &["branch", &Scratch::branch("1"), "main"]);
    git_in(&dir, &["push", "-q", "origin", &Scratch::branch("1")]);

    let run = Run::of(job(&dir, &["--task", "2", "--remote", "origin"]));
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "task 2 needs task 1, which is not done: not ticked in tasks.md, and its branch `spec/demo/1` does not hold its commit (after fetching from origin)"
        ),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty(), "{}", run.context());
    assert!(!has_ref(&dir, &Scratch::branch("2")));
}

/// Build 1; review CR-A of it, which always asks for changes; its rework RW-A; 2 after the
/// review, 3 after the rework.
fn gate() -> String {
    tasks_md(&[
        shell_task("1", "Build", "", "echo one > one.txt"),
        shell_task(
            "CR-A",
            "Code review",
            "Task 1",
            "mkdir -p code_review && printf 'Status: REQUIRES CHANGES\\n' > code_review/CR-A.md",
        ),
        shell_task("RW-A", "Rework", "CR-A (failed)", "echo fixed >> fix.txt"),
        shell_task("2", "After review", "CR-A", "echo two > two.txt"),
        shell_task("3", "After rework", "RW-A", "echo three > three.txt"),
    ])
}

#[test]
fn a_rework_waits_for_a_round_of_its_review_and_goes_one_step_of_the_gate_per_run() {
    let s = Scratch::package(&gate());
    let repo = s.repo();
    Run::of(job(&repo, &["--task", "1"])).assert_code(0);

    // The rework before its review has a round: nothing to answer yet.
    let run = Run::of(job(&repo, &["--task", "RW-A"]));
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "rework RW-A answers review CR-A, which has no recorded round yet (its branch `spec/demo/CR-A`); run `--task CR-A` first"
        ),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty(), "{}", run.context());

    // A task selected with the review (or the rework) it waits for.
    for (id, on) in [("2", "CR-A"), ("3", "RW-A")] {
        let run = Run::of(job(&repo, &["--task", on, "--task", id]));
        run.assert_code(2);
        assert!(
            run.stderr.contains(&format!(
                "--task {id} and --task {on}: {id} waits for {on}, whose review gate goes one step per run"
            )) && run.stderr.contains(&format!("run {on} on its own, then {id} in another run")),
            "{}",
            run.context()
        );
        assert!(run.started().is_empty(), "{}", run.context());
    }

    // The rework with its review: it answers a round, one step per run.
    let run = Run::of(job(&repo, &["--task", "CR-A", "--task", "RW-A"]));
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "--task CR-A and --task RW-A: rework RW-A answers a round of review CR-A, and a review gate goes one step per run"
        ),
        "{}",
        run.context()
    );
    assert!(run.started().is_empty(), "{}", run.context());
    assert_eq!(s.branches(), [Scratch::branch("1")]);

    // A round that asks for changes, then the rework that answers it.
    Run::of(job(&repo, &["--task", "CR-A"])).assert_code(0);
    let run = Run::of(job(&repo, &["--task", "RW-A"]));
    run.assert_code(0);
    assert_eq!(
        run.started(),
        ["RW-A".to_owned()].into(),
        "{}",
        run.context()
    );

    // Again: it answered the last round already; the review's next round comes next.
    let run = Run::of(job(&repo, &["--task", "RW-A"]));
    run.assert_code(0);
    assert!(run.started().is_empty(), "{}", run.context());
    assert_eq!(run.status("RW-A"), "reused", "{}", run.context());
    assert!(
        run.reason("RW-A")
            .contains("already done: it answered CR-A's last round; CR-A's next round runs next"),
        "{}",
        run.context()
    );
}

#[test]
fn a_review_round_that_stands_is_reported_again_until_its_limit_then_fails() {
    let s = Scratch::package(&gate());
    let repo = s.repo();
    let outputs = s.ctl().join("outputs");
    let review = |max: &str| {
        std::fs::write(&outputs, "").unwrap();
        let mut cmd = job(&repo, &["--task", "CR-A", "--max-review-rounds", max]);
        cmd.env("GITHUB_OUTPUT", &outputs);
        let run = Run::of(cmd);
        (run, std::fs::read_to_string(&outputs).unwrap())
    };
    Run::of(job(&repo, &["--task", "1"])).assert_code(0);
    let (run, _) = review("3");
    run.assert_code(0);
    assert_eq!(run.verdicts("CR-A"), [(1, "requires-changes".to_owned())]);

    // Its rework has not run: the round stands, no agent runs, the verdict is given again.
    let (run, out) = review("3");
    run.assert_code(0);
    assert!(run.started().is_empty(), "{}", run.context());
    assert_eq!(run.status("CR-A"), "reused", "{}", run.context());
    assert!(run.verdicts("CR-A").is_empty(), "{}", run.context());
    assert!(
        run.reason("CR-A").contains(
            "its round 1 (`spec/demo/CR-A`) requires changes that its rework RW-A has not answered yet: `--task RW-A` runs next, then its round 2"
        ),
        "{}",
        run.context()
    );
    assert_eq!(
        out,
        "status-CR-A=done\nverdict=changes\nverdict-CR-A=changes\n"
    );

    // At the limit, the same round fails the gate: another run would only repeat it.
    let (run, out) = review("1");
    run.assert_code(1);
    assert!(run.started().is_empty(), "{}", run.context());
    assert_eq!(run.status("CR-A"), "failed", "{}", run.context());
    assert!(
        run.reason("CR-A").contains(
            "still requires changes after 1 review round (the limit, --max-review-rounds 1): its last round is `spec/demo/CR-A`; raise the limit to go on"
        ),
        "{}",
        run.context()
    );
    assert_eq!(out, "status-CR-A=failed\n");
}
