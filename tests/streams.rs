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
    let script = s.ctl().join("stream.sh");
    write(&script, STREAM);
    let manifest = s.repo().join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "\n[workspace.metadata.spec-exec.agents.streamer]\ncommand = [\"bash\", \"{}\"]\nformat = \"claude-stream\"\n",
        script.display()
    ));
    std::fs::write(&manifest, text).unwrap();
    s.git(&["commit", "-qam", "the streamer agent"]);

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
    let s = Scratch::new(&tasks_md(&[
        "- [ ] 1. **Add one**\n  - _Agent: streamer_\n  - _Dependencies: None_\n\n".to_owned(),
        "- [ ] 2. **Add two**\n  - _Agent: streamer_\n  - _Dependencies: Task 1_\n\n".to_owned(),
    ]));
    let script = s.ctl().join("stream.sh");
    write(&script, &STREAM.replace("sleep 1.2\n", ""));
    let manifest = s.repo().join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!(
        "\n[workspace.metadata.spec-exec]\nmax-cost = 0.01\n[workspace.metadata.spec-exec.agents.streamer]\ncommand = [\"bash\", \"{}\"]\nformat = \"claude-stream\"\n",
        script.display()
    ));
    std::fs::write(&manifest, text).unwrap();
    s.git(&["commit", "-qam", "the streamer agent, and a budget"]);
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
