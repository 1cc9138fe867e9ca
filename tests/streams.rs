//! Agents' structured streams, read as they come: progress events, tokens and cost in the
//! reports, a transcript beside the log. A command agent that opts in with `format` replays a
//! stream in claude's documented stream-json format; the built binary runs it.

#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use support::{Scratch, tasks_md, write};

const STREAM: &str = r#"#!/usr/bin/env bash
echo done > "$SPEC_EXEC_TASK_ID.txt"
echo '{"type":"system","subtype":"init","session_id":"abc-123","model":"m"}'
echo '{"type":"assistant","message":{"content":[{"type":"text","text":"Adding one."}]},"session_id":"abc-123"}'
sleep 1.2
echo '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"cargo test"}}]},"session_id":"abc-123"}'
echo '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}}'
echo 'a line that is not JSON'
sleep 1.2
echo '{"type":"result","subtype":"success","is_error":false,"result":"One is added.","total_cost_usd":0.0123,"num_turns":3,"session_id":"abc-123","usage":{"input_tokens":100,"cache_creation_input_tokens":20,"cache_read_input_tokens":300,"output_tokens":50}}'
"#;

#[test]
fn a_stream_gives_progress_usage_and_a_transcript() {
    let s = Scratch::new(&tasks_md(&[
        "- [ ] 1. **Add one**\n  - _Agent: streamer_\n  - _Dependencies: None_\n\n".to_owned(),
    ]));
    streamer(&s, STREAM, "");

    let run = s.run_args(&["run", "demo", "--message-format", "json", "--no-verify"]);
    run.assert_code(0);
    let progress: Vec<(String, String)> = run
        .of_type("agent-progress")
        .map(|e| {
            assert_eq!(e["task"], "1");
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        progress,
        [
            ("message".to_owned(), "Adding one.".to_owned()),
            ("tool".to_owned(), "Bash: cargo test".to_owned()),
            ("result".to_owned(), "One is added.".to_owned()),
        ],
        "{}",
        run.context()
    );
    let usage = &run.finished("1")["usage"];
    assert_eq!(usage["input_tokens"], 120);
    assert_eq!(usage["cached_tokens"], 300);
    assert_eq!(usage["output_tokens"], 50);
    assert_eq!(usage["cost_usd"], 0.0123);
    assert_eq!(usage["turns"], 3);
    assert_eq!(usage["session_id"], "abc-123");
    let total = &run.of_type("run-finished").next().unwrap()["usage"];
    assert_eq!(total["output_tokens"], 50);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.run_dir().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["usage"]["cost_usd"], 0.0123);
    let md = std::fs::read_to_string(s.run_dir().join("report.md")).unwrap();
    assert!(
        md.contains("420 tokens in (300 cached), 50 out, $0.0123, 3 turns"),
        "{md}"
    );
    // The raw stream is in the log; the transcript beside it reads as text.
    let log = run.finished("1")["log"].as_str().unwrap().to_owned();
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("\"type\":\"result\"")
    );
    let transcript =
        std::fs::read_to_string(std::path::Path::new(&log).with_extension("transcript.md"))
            .unwrap();
    for line in [
        "Adding one.",
        "> Bash: cargo test",
        "a line that is not JSON",
        "= One is added.",
    ] {
        assert!(transcript.contains(line), "{line} not in {transcript}");
    }
}

#[test]
fn no_new_task_starts_once_the_reported_spend_reaches_max_cost() {
    let s = two_streamer_tasks();
    streamer(&s, &STREAM.replace("sleep 1.2\n", ""), "max-cost = 0.01");
    let run = s.run_args(&["run", "demo", "--message-format", "json", "--no-verify"]);
    run.assert_code(1);
    assert_eq!(run.status("1"), "done");
    let budget = run.of_type("budget-reached").next().unwrap();
    assert_eq!(budget["max_cost_usd"], 0.01);
    assert_eq!(run.status("2"), "skipped");
    assert!(
        run.reason("2").contains("reached --max-cost $0.0100"),
        "{}",
        run.context()
    );
    // The flag wins over the configuration.
    let run = s.run_args(&[
        "run",
        "demo",
        "--message-format",
        "json",
        "--no-verify",
        "--max-cost",
        "5",
    ]);
    run.assert_code(0);
    assert_eq!(run.status("2"), "done");
}

/// An agent that hits its limit on its first run (of any task) (claude's rejected `rate_limit_event`,
/// resetting a second later, then exit 1), and does the task on the next.
const LIMITED_ONCE: &str = r#"#!/usr/bin/env bash
if [ ! -e "$HELPER_CTL/limited" ]; then
    touch "$HELPER_CTL/limited"
    echo "{\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"rejected\",\"resetsAt\":$(( $(date +%s) + 1 )),\"rateLimitType\":\"five_hour\"}}"
    echo '{"is_error":true,"subtype":"success","api_error_status":429,"result":"You have hit your limit","type":"result"}'
    exit 1
fi
echo "run" >> "$HELPER_CTL/runs-$SPEC_EXEC_TASK_ID"
echo done > "$SPEC_EXEC_TASK_ID.txt"
echo '{"type":"result","subtype":"success","is_error":false,"result":"Done.","session_id":"s"}'
"#;

fn streamer(s: &Scratch, script: &str, extra: &str) {
    let path = s.ctl().join("stream.sh");
    write(&path, script);
    let manifest = s.repo().join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "\n[workspace.metadata.spec-exec]\n{extra}\n[workspace.metadata.spec-exec.agents.streamer]\ncommand = [\"bash\", \"{}\"]\nformat = \"claude-stream\"\n",
        path.display()
    ));
    std::fs::write(&manifest, text).unwrap();
    s.git(&["commit", "-qam", "the streamer agent"]);
}

fn two_streamer_tasks() -> Scratch {
    Scratch::new(&tasks_md(&[
        "- [ ] 1. **Add one**\n  - _Agent: streamer_\n  - _Dependencies: None_\n\n".to_owned(),
        "- [ ] 2. **Add two**\n  - _Agent: streamer_\n  - _Dependencies: Task 1_\n\n".to_owned(),
    ]))
}

#[test]
fn a_rate_limit_is_waited_out_and_the_task_run_again() {
    let s = two_streamer_tasks();
    streamer(&s, LIMITED_ONCE, "");
    let run = s.run_args(&["run", "demo", "--message-format", "json", "--no-verify"]);
    run.assert_code(0);
    let limited = run
        .of_type("rate-limited")
        .next()
        .expect("a rate-limited event");
    assert_eq!(limited["task"], "1");
    assert!(limited["resets_at"].is_u64(), "{limited}");
    // The order: started, limited, started again, finished; then task 2.
    let order: Vec<String> = run
        .events
        .iter()
        .filter(|e| (e["id"] == "1" || e["task"] == "1") && e["type"] != "agent-progress")
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        order,
        [
            "task-started",
            "rate-limited",
            "task-started",
            "task-finished"
        ],
        "{}",
        run.context()
    );
    assert_eq!(run.status("1"), "done");
    assert_eq!(run.status("2"), "done");
}

#[test]
fn on_rate_limit_stop_ends_the_run_with_exit_3_and_a_later_run_goes_on() {
    let s = two_streamer_tasks();
    streamer(&s, LIMITED_ONCE, "on-rate-limit = \"stop\"");
    let run = s.run_args(&["run", "demo", "--message-format", "json", "--no-verify"]);
    run.assert_code(3);
    assert_eq!(run.status("1"), "skipped");
    assert!(
        run.reason("1").contains("usage or rate limit"),
        "{}",
        run.context()
    );
    assert!(
        run.reason("1").contains("run again after it resets at"),
        "{}",
        run.context()
    );
    assert_eq!(run.status("2"), "skipped");
    assert!(!support::is_ticked(&s.tasks_md(), "1"));
    let again = s.run_args(&["run", "demo", "--message-format", "json", "--no-verify"]);
    again.assert_code(0);
    assert_eq!(again.status("1"), "done");
}

#[test]
fn aider_exiting_0_on_a_rate_limit_is_not_done() {
    let s = two_streamer_tasks();
    let bin = s.ctl().join("bin");
    let aider = bin.join("aider");
    write(
        &aider,
        "#!/usr/bin/env bash\necho 'litellm.RateLimitError: AnthropicException - {\"type\":\"rate_limit_error\"}'\nexit 0\n",
    );
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&aider, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = s.spec_exec(&[
        "run",
        "demo",
        "--agent",
        "aider",
        "--on-rate-limit",
        "stop",
        "--no-verify",
        "--message-format",
        "json",
    ]);
    cmd.env(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    let run = support::Run::of(cmd);
    run.assert_code(3);
    assert_eq!(run.status("1"), "skipped");
    assert_eq!(run.of_type("rate-limited").count(), 1);
}

#[test]
fn claude_resumes_its_session_in_the_worktree_it_left_after_its_limit_reset() {
    let s = Scratch::new(&tasks_md(&[support::task("1", "Add one", "", "nothing")]));
    let bin = s.ctl().join("bin");
    let claude = bin.join("claude");
    write(
        &claude,
        r#"#!/usr/bin/env bash
printf '%s\n' "$@" > "$HELPER_CTL/argv-$(ls "$HELPER_CTL" | grep -c '^argv-')"
echo '{"type":"system","subtype":"init","session_id":"sess-1","model":"m"}'
if [ ! -e "$HELPER_CTL/limited" ]; then
    touch "$HELPER_CTL/limited"
    echo partial > partial.txt
    echo "{\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"rejected\",\"resetsAt\":$(( $(date +%s) + 1 ))}}"
    exit 1
fi
test -e partial.txt || { echo 'the worktree was not kept' >&2; exit 7; }
echo done > done.txt
echo '{"type":"result","subtype":"success","is_error":false,"result":"Done.","session_id":"sess-1"}'
"#,
    );
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = s.spec_exec(&[
        "run",
        "demo",
        "--agent",
        "claude",
        "--no-verify",
        "--message-format",
        "json",
    ]);
    cmd.env(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    let run = support::Run::of(cmd);
    run.assert_code(0);
    let first = std::fs::read_to_string(s.ctl().join("argv-0")).unwrap();
    assert!(!first.contains("--resume"), "{first}");
    let second: Vec<String> = std::fs::read_to_string(s.ctl().join("argv-1"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(&second[..3], ["-p", "--resume", "sess-1"], "{second:?}");
    let files = s.files(&Scratch::branch("1"));
    assert!(
        files.contains("partial.txt") && files.contains("done.txt"),
        "{files:?}"
    );
}

#[test]
fn a_limit_the_agent_got_past_is_not_a_limit_and_bytes_that_are_not_text_are_kept() {
    let s = two_streamer_tasks();
    streamer(
        &s,
        r#"#!/usr/bin/env bash
printf 'not text: \xff\xfe\n'
echo done > "$SPEC_EXEC_TASK_ID.txt"
echo "{\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"rejected\",\"resetsAt\":$(( $(date +%s) + 100 ))}}"
for i in $(seq 1 3000); do echo "{\"type\":\"user\",\"message\":{\"content\":[]}}"; done
head -c 3000000 /dev/zero | tr '\0' x; echo
echo '{"type":"result","subtype":"success","is_error":false,"result":"Done anyway."}'
"#,
        "",
    );
    let run = s.run_args(&["run", "demo", "--message-format", "json", "--no-verify"]);
    run.assert_code(0);
    assert_eq!(run.of_type("rate-limited").count(), 0, "{}", run.context());
    let log = std::fs::read(run.finished("1")["log"].as_str().unwrap()).unwrap();
    assert!(
        log.windows(2).any(|w| w == b"\xff\xfe"),
        "the bytes were not kept"
    );
    assert!(String::from_utf8_lossy(&log).contains("Done anyway."));
    // A line of megabytes goes to the log whole, and the stream is read on past it.
    assert!(log.len() > 3_000_000, "{}", log.len());
    let log_path = run.finished("1")["log"].as_str().unwrap().to_owned();
    let transcript =
        std::fs::read_to_string(std::path::Path::new(&log_path).with_extension("transcript.md"))
            .unwrap();
    assert!(
        transcript.contains("= Done anyway."),
        "the stream was not read past the long line"
    );
    assert!(transcript.len() < 100_000, "{}", transcript.len());
}

#[test]
fn ctrl_c_while_waiting_for_a_limit_ends_the_run_at_once() {
    let s = two_streamer_tasks();
    streamer(
        &s,
        r#"#!/usr/bin/env bash
echo "{\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"rejected\",\"resetsAt\":$(( $(date +%s) + 3600 ))}}"
exit 1
"#,
        "",
    );
    let child = s
        .spec_exec(&["run", "demo", "--message-format", "json", "--no-verify"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    support::wait_until("the run never started waiting", || {
        std::fs::read_dir(s.state_dir().join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| d.path().join("logs/1.log").exists())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    support::sigint(child.id());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    // A run that waited out the hour would fail the test here rather than hang it.
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the run kept waiting after Ctrl-C")
        .unwrap();
    let run = support::Run::new(out, std::time::Duration::ZERO);
    run.assert_code(130);
    assert_eq!(run.of_type("rate-limited").count(), 1, "{}", run.context());
    assert!(
        run.of_type("run-finished").next().is_some(),
        "{}",
        run.context()
    );
}
