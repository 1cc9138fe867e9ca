//! Agents' structured output, read line by line as it arrives: claude's `stream-json`, codex's
//! `--json`, gemini's `stream-json`. Each line becomes what it says (progress: a message, a
//! tool call, its result; the session; tokens, cost and turns; the final message), and a line
//! of the transcript people read. Pure: no I/O. Unknown fields and event types are ignored,
//! and a line that is not JSON is kept as text.

use serde_json::Value;

pub use crate::agents::Format;

pub use crate::report::Usage;

/// What one line says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    /// What the agent is doing now: its kind (`message`, `tool`, `result`) and text.
    pub progress: Option<(&'static str, String)>,
    /// The line for the transcript.
    pub transcript: Option<String>,
}

/// What a whole stream said so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stream {
    pub usage: Usage,
    /// The agent's final message.
    pub final_text: Option<String>,
    /// The agent hit its usage or rate limit: when it resets (Unix seconds), when it says.
    pub rate_limited: Option<Option<u64>>,
}

/// A limit's reset time as an agent gave it, in Unix seconds: milliseconds are taken as such,
/// and a time more than 30 days ahead as no time at all (it is not one to wait for).
fn reset_time(t: u64) -> Option<u64> {
    let t = if t > 100_000_000_000 { t / 1000 } else { t };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (t <= now.saturating_add(30 * 24 * 3600)).then_some(t)
}

/// Whether the last lines of `text` (an agent's output or error message) say it hit a usage or
/// rate limit, in the words the CLIs and the APIs they call use. Only the end of the output
/// counts, and only words no code or test name would use alone.
pub fn says_rate_limited(text: &str) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines[lines.len().saturating_sub(20)..]
        .join("\n")
        .to_lowercase();
    [
        "you've hit your limit",
        "you've hit your session limit",
        "you've hit your usage limit",
        "usage limit reached",
        "usage_limit_reached",
        "resource_exhausted",
        "litellm.ratelimiterror",
        "\"type\":\"rate_limit_error\"",
    ]
    .iter()
    .any(|p| end.contains(p))
}

/// The text of a tool call's input, short: its command, path or first string.
fn input_text(input: &Value) -> String {
    for key in [
        "command",
        "file_path",
        "path",
        "pattern",
        "url",
        "query",
        "description",
    ] {
        if let Some(s) = input.get(key).and_then(Value::as_str) {
            return s.to_owned();
        }
    }
    match input {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn u64_at(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A text on one line, for progress.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Stream {
    /// Reads one line of `format`.
    pub fn line(&mut self, format: Format, line: &str) -> Read {
        let line = line.trim_end();
        if line.is_empty() {
            return Read::default();
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Read {
                progress: None,
                transcript: Some(line.to_owned()),
            };
        };
        match format {
            Format::ClaudeStream => self.claude(&v),
            Format::CodexJson => self.codex(&v),
            Format::GeminiStream => self.gemini(&v),
        }
    }

    fn claude(&mut self, v: &Value) -> Read {
        let mut read = Read::default();
        if let Some(id) = v.get("session_id").and_then(Value::as_str) {
            self.usage.session_id = Some(id.to_owned());
        }
        match v.get("type").and_then(Value::as_str) {
            Some("rate_limit_event") => {
                let info = v.get("rate_limit_info").unwrap_or(&Value::Null);
                if info.get("status").and_then(Value::as_str) == Some("rejected") {
                    self.rate_limited = Some(
                        info.get("resetsAt")
                            .and_then(Value::as_u64)
                            .and_then(reset_time),
                    );
                }
            }
            Some("assistant") if v.get("error").and_then(Value::as_str) == Some("rate_limit") => {
                self.rate_limited.get_or_insert(None);
            }
            Some("assistant") => {
                let blocks = v
                    .pointer("/message/content")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut lines = Vec::new();
                for b in &blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            let text = b.get("text").and_then(Value::as_str).unwrap_or_default();
                            lines.push(text.to_owned());
                            read.progress = Some(("message", one_line(text)));
                        }
                        Some("tool_use") => {
                            let name = b.get("name").and_then(Value::as_str).unwrap_or("tool");
                            let input = input_text(b.get("input").unwrap_or(&Value::Null));
                            lines.push(format!("> {name}: {input}"));
                            read.progress = Some(("tool", one_line(&format!("{name}: {input}"))));
                        }
                        _ => {}
                    }
                }
                read.transcript = (!lines.is_empty()).then(|| lines.join("\n"));
            }
            Some("user") => {
                let results = v
                    .pointer("/message/content")
                    .and_then(Value::as_array)
                    .map(|bs| {
                        bs.iter()
                            .filter(|b| {
                                b.get("type").and_then(Value::as_str) == Some("tool_result")
                            })
                            .count()
                    })
                    .unwrap_or(0);
                if results > 0 {
                    read.transcript = Some("< (tool result)".to_owned());
                }
            }
            Some("result") => {
                if let Some(u) = v.get("usage") {
                    self.usage.input_tokens =
                        u64_at(u, "input_tokens") + u64_at(u, "cache_creation_input_tokens");
                    self.usage.output_tokens = u64_at(u, "output_tokens");
                    self.usage.cached_tokens = u64_at(u, "cache_read_input_tokens");
                }
                self.usage.cost_usd = v.get("total_cost_usd").and_then(Value::as_f64);
                let failed = v.get("is_error").and_then(Value::as_bool) == Some(true);
                if failed
                    && (v.get("api_error_status").and_then(Value::as_u64) == Some(429)
                        || v.get("result")
                            .and_then(Value::as_str)
                            .is_some_and(says_rate_limited))
                {
                    self.rate_limited.get_or_insert(None);
                }
                self.usage.turns = v.get("num_turns").and_then(Value::as_u64).map(|n| n as u32);
                if let Some(text) = v.get("result").and_then(Value::as_str) {
                    self.final_text = Some(text.to_owned());
                    read.transcript = Some(format!("= {text}"));
                    read.progress = Some(("result", one_line(text)));
                }
            }
            _ => {}
        }
        read
    }

    fn codex(&mut self, v: &Value) -> Read {
        let mut read = Read::default();
        match v.get("type").and_then(Value::as_str) {
            Some("thread.started") => {
                if let Some(id) = v.get("thread_id").and_then(Value::as_str) {
                    self.usage.session_id = Some(id.to_owned());
                }
            }
            Some("turn.completed") => {
                if let Some(u) = v.get("usage") {
                    self.usage.input_tokens += u64_at(u, "input_tokens");
                    self.usage.output_tokens += u64_at(u, "output_tokens");
                    self.usage.cached_tokens += u64_at(u, "cached_input_tokens");
                }
                self.usage.turns = Some(self.usage.turns.unwrap_or(0) + 1);
            }
            Some(kind @ ("item.started" | "item.completed")) => {
                let item = v.get("item").unwrap_or(&Value::Null);
                let started = kind == "item.started";
                match item.get("type").and_then(Value::as_str) {
                    Some("agent_message") if !started => {
                        let text = item.get("text").and_then(Value::as_str).unwrap_or_default();
                        self.final_text = Some(text.to_owned());
                        read.transcript = Some(text.to_owned());
                        read.progress = Some(("message", one_line(text)));
                    }
                    Some("command_execution") => {
                        let command = item
                            .get("command")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if started {
                            read.transcript = Some(format!("> shell: {command}"));
                            read.progress = Some(("tool", one_line(&format!("shell: {command}"))));
                        } else if let Some(code) = item.get("exit_code").and_then(Value::as_i64) {
                            read.transcript = Some(format!("< exit {code}"));
                        }
                    }
                    Some("file_change") if !started => {
                        let paths: Vec<&str> = item
                            .get("changes")
                            .and_then(Value::as_array)
                            .map(|cs| {
                                cs.iter()
                                    .filter_map(|c| c.get("path").and_then(Value::as_str))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let text = format!("edit: {}", paths.join(", "));
                        read.transcript = Some(format!("> {text}"));
                        read.progress = Some(("tool", text));
                    }
                    _ => {}
                }
            }
            Some("error" | "turn.failed") => {
                let message = v
                    .get("message")
                    .or_else(|| v.pointer("/error/message"))
                    .and_then(Value::as_str)
                    .unwrap_or("error");
                if says_rate_limited(message) {
                    self.rate_limited.get_or_insert(None);
                }
                read.transcript = Some(format!("! {message}"));
            }
            _ => {}
        }
        read
    }

    fn gemini(&mut self, v: &Value) -> Read {
        let mut read = Read::default();
        if let Some(id) = v.get("session_id").and_then(Value::as_str) {
            self.usage.session_id = Some(id.to_owned());
        }
        match v.get("type").and_then(Value::as_str) {
            Some("message") if v.get("role").and_then(Value::as_str) == Some("assistant") => {
                let text = v.get("content").and_then(Value::as_str).unwrap_or_default();
                // Deltas add up to the final message.
                if v.get("delta").and_then(Value::as_bool) == Some(true) {
                    self.final_text
                        .get_or_insert_with(String::new)
                        .push_str(text);
                } else {
                    self.final_text = Some(text.to_owned());
                }
                read.transcript = Some(text.to_owned());
                read.progress = Some((
                    "message",
                    one_line(self.final_text.as_deref().unwrap_or(text)),
                ));
            }
            Some("tool_use") => {
                let name = v.get("tool_name").and_then(Value::as_str).unwrap_or("tool");
                let input = input_text(v.get("parameters").unwrap_or(&Value::Null));
                read.transcript = Some(format!("> {name}: {input}"));
                read.progress = Some(("tool", one_line(&format!("{name}: {input}"))));
                // A new message follows the tool's result.
                self.final_text = None;
            }
            Some("tool_result") => {
                let status = v.get("status").and_then(Value::as_str).unwrap_or("done");
                read.transcript = Some(format!("< {status}"));
            }
            Some("result") => {
                if let Some(s) = v.get("stats") {
                    self.usage.input_tokens = u64_at(s, "input_tokens");
                    self.usage.output_tokens = u64_at(s, "output_tokens");
                    self.usage.cached_tokens = u64_at(s, "cached");
                }
                if let Some(e) = v.get("error") {
                    let kind = e.get("type").and_then(Value::as_str).unwrap_or_default();
                    let message = e.get("message").and_then(Value::as_str).unwrap_or_default();
                    if kind.contains("Quota") || says_rate_limited(message) {
                        self.rate_limited.get_or_insert(None);
                    }
                }
            }
            Some("error") => {
                let message = v.get("message").and_then(Value::as_str).unwrap_or("error");
                if says_rate_limited(message) {
                    self.rate_limited.get_or_insert(None);
                }
                read.transcript = Some(format!("! {message}"));
            }
            _ => {}
        }
        read
    }
}

/// An agent's stream as a run reads it: each line parsed, its transcript line written, and what
/// the agent is doing now sent on, at most once a second.
#[derive(Debug)]
pub struct Tap {
    pub stream: Stream,
    format: Format,
    transcript: Option<std::fs::File>,
    progress: Option<tokio::sync::mpsc::UnboundedSender<crate::report::Event>>,
    task: String,
    last_sent: Option<std::time::Instant>,
}

impl Tap {
    pub fn new(
        format: Format,
        transcript: &std::path::Path,
        progress: Option<tokio::sync::mpsc::UnboundedSender<crate::report::Event>>,
        task: &str,
    ) -> Tap {
        Tap {
            stream: Stream::default(),
            format,
            transcript: std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(transcript)
                .ok(),
            progress,
            task: task.to_owned(),
            last_sent: None,
        }
    }

    pub fn line(&mut self, line: &str) {
        let read = self.stream.line(self.format, line);
        if let (Some(t), Some(file)) = (&read.transcript, &mut self.transcript) {
            // Text people read: no terminal escapes, no line of megabytes.
            let clean: String = console::strip_ansi_codes(t)
                .chars()
                .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
                .take(4096)
                .collect();
            let _ = std::io::Write::write_all(file, format!("{clean}\n").as_bytes());
        }
        let Some((kind, text)) = read.progress else {
            return;
        };
        let due = self
            .last_sent
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1));
        if let (true, Some(tx)) = (due, &self.progress) {
            self.last_sent = Some(std::time::Instant::now());
            let text = console::strip_ansi_codes(&text)
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect();
            let _ = tx.send(crate::report::Event::AgentProgress {
                task: self.task.clone(),
                kind,
                text,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(format: Format, lines: &[&str]) -> (Stream, Vec<Read>) {
        let mut s = Stream::default();
        let reads = lines.iter().map(|l| s.line(format, l)).collect();
        (s, reads)
    }

    #[test]
    fn claude_stream_json() {
        let (s, reads) = read_all(
            Format::ClaudeStream,
            &[
                r#"{"type":"system","subtype":"init","session_id":"abc-123","tools":["Bash"],"model":"claude"}"#,
                r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Adding the function."}]},"session_id":"abc-123"}"#,
                r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"cargo test"}}]},"session_id":"abc-123"}"#,
                r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}}"#,
                "not json at all",
                r#"{"type":"result","subtype":"success","is_error":false,"result":"Done.\nStatus: APPROVED","total_cost_usd":0.0123,"num_turns":3,"session_id":"abc-123","usage":{"input_tokens":100,"cache_creation_input_tokens":20,"cache_read_input_tokens":300,"output_tokens":50},"new_field":1}"#,
            ],
        );
        let progress: Vec<_> = reads.iter().filter_map(|r| r.progress.clone()).collect();
        assert_eq!(
            progress,
            [
                ("message", "Adding the function.".to_owned()),
                ("tool", "Bash: cargo test".to_owned()),
                ("result", "Done. Status: APPROVED".to_owned())
            ]
        );
        assert_eq!(reads[4].transcript.as_deref(), Some("not json at all"));
        assert_eq!(
            s.usage,
            Usage {
                input_tokens: 120,
                output_tokens: 50,
                cached_tokens: 300,
                cost_usd: Some(0.0123),
                turns: Some(3),
                session_id: Some("abc-123".into()),
            }
        );
        assert_eq!(s.final_text.as_deref(), Some("Done.\nStatus: APPROVED"));
    }

    #[test]
    fn codex_json() {
        let (s, reads) = read_all(
            Format::CodexJson,
            &[
                r#"{"type":"thread.started","thread_id":"th-9"}"#,
                r#"{"type":"turn.started"}"#,
                r#"{"type":"item.started","item":{"id":"i1","type":"command_execution","command":"bash -lc 'cargo build'","status":"in_progress"}}"#,
                r#"{"type":"item.completed","item":{"id":"i1","type":"command_execution","command":"bash -lc 'cargo build'","exit_code":0,"status":"completed"}}"#,
                r#"{"type":"item.completed","item":{"id":"i2","type":"file_change","changes":[{"path":"src/lib.rs","kind":"update"}]}}"#,
                r#"{"type":"item.completed","item":{"id":"i3","type":"agent_message","text":"Built and tested."}}"#,
                r#"{"type":"turn.completed","usage":{"input_tokens":900,"cached_input_tokens":400,"output_tokens":80}}"#,
            ],
        );
        let progress: Vec<_> = reads.iter().filter_map(|r| r.progress.clone()).collect();
        assert_eq!(
            progress,
            [
                ("tool", "shell: bash -lc 'cargo build'".to_owned()),
                ("tool", "edit: src/lib.rs".to_owned()),
                ("message", "Built and tested.".to_owned())
            ]
        );
        assert_eq!(s.usage.session_id.as_deref(), Some("th-9"));
        assert_eq!(
            (
                s.usage.input_tokens,
                s.usage.cached_tokens,
                s.usage.output_tokens,
                s.usage.turns
            ),
            (900, 400, 80, Some(1))
        );
        assert_eq!(s.usage.cost_usd, None);
        assert_eq!(s.final_text.as_deref(), Some("Built and tested."));
    }

    #[test]
    fn gemini_stream_json() {
        let (s, reads) = read_all(
            Format::GeminiStream,
            &[
                r#"{"type":"init","timestamp":"2026-01-01T00:00:00Z","session_id":"g-1","model":"gemini"}"#,
                r#"{"type":"message","role":"user","content":"the prompt"}"#,
                r#"{"type":"tool_use","timestamp":"x","tool_name":"run_shell_command","tool_id":"t","parameters":{"command":"cargo check"}}"#,
                r#"{"type":"tool_result","timestamp":"x","tool_id":"t","status":"success","output":"ok"}"#,
                r#"{"type":"message","role":"assistant","content":"All ","delta":true}"#,
                r#"{"type":"message","role":"assistant","content":"done.","delta":true}"#,
                r#"{"type":"result","status":"success","stats":{"total_tokens":300,"input_tokens":200,"output_tokens":100,"duration_ms":10,"tool_calls":1}}"#,
            ],
        );
        let progress: Vec<_> = reads.iter().filter_map(|r| r.progress.clone()).collect();
        assert_eq!(
            progress[0],
            ("tool", "run_shell_command: cargo check".to_owned())
        );
        assert_eq!(
            progress.last().unwrap(),
            &("message", "All done.".to_owned())
        );
        assert_eq!(s.final_text.as_deref(), Some("All done."));
        assert_eq!((s.usage.input_tokens, s.usage.output_tokens), (200, 100));
        assert_eq!(s.usage.session_id.as_deref(), Some("g-1"));
    }

    #[test]
    fn rate_limits_are_recognised_in_each_stream() {
        let (s, _) = read_all(
            Format::ClaudeStream,
            &[
                r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1783173600}}"#,
            ],
        );
        assert_eq!(s.rate_limited, None);
        let (s, _) = read_all(
            Format::ClaudeStream,
            &[
                r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1783173600,"rateLimitType":"five_hour"}}"#,
            ],
        );
        assert_eq!(s.rate_limited, Some(Some(1_783_173_600)));
        let (s, _) = read_all(
            Format::ClaudeStream,
            &[
                r#"{"is_error":true,"subtype":"success","api_error_status":429,"result":"You've hit your session limit · resets 9am (Europe/Berlin)","type":"result"}"#,
            ],
        );
        assert_eq!(s.rate_limited, Some(None));
        let (s, _) = read_all(
            Format::CodexJson,
            &[
                r#"{"type":"error","message":"You've hit your usage limit. Upgrade to Pro or try again at Aug 20th, 2026 11:50 AM."}"#,
            ],
        );
        assert_eq!(s.rate_limited, Some(None));
        let (s, _) = read_all(
            Format::GeminiStream,
            &[
                r#"{"type":"result","status":"error","error":{"type":"TerminalQuotaError","message":"Quota exceeded"},"stats":{"duration_ms":0}}"#,
            ],
        );
        assert_eq!(s.rate_limited, Some(None));
        assert!(says_rate_limited(
            "litellm.RateLimitError: AnthropicException - rate limit"
        ));
        assert!(!says_rate_limited("all 3 tests passed"));
    }

    #[test]
    fn usage_adds_up() {
        let mut a = Usage {
            input_tokens: 1,
            cost_usd: Some(0.5),
            ..Usage::default()
        };
        a.add(&Usage {
            input_tokens: 2,
            output_tokens: 3,
            turns: Some(2),
            ..Usage::default()
        });
        assert_eq!(
            (a.input_tokens, a.output_tokens, a.cost_usd, a.turns),
            (3, 3, Some(0.5), Some(2))
        );
    }
}
