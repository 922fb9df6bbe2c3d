//! A run's log made readable: what the agent said, each tool call with a summary of its
//! input and how it ended, token usage, and the final result or error in full. One
//! [`Transcript`] per run reads its log a line at a time; lines it does not know (the
//! CLI's stderr, a `command` agent's output) come back as [`Entry::Plain`].

use std::collections::HashSet;

use serde_json::Value;
use sf_proto::Adapter;

/// Longest tool-input or tool-output summary, in characters.
const SUMMARY: usize = 160;

/// One thing that happened in a run, as a reader wants to see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// Text the agent wrote.
    Text(String),
    /// The agent called a tool: its name and its input in one line.
    ToolCall {
        /// The tool (`Bash`, `command_execution`, `edit`, ...).
        name: String,
        /// The command, the file, or the input as compact JSON; clipped.
        input: String,
    },
    /// A tool call's end: whether it went well, and the first line of its output.
    ToolResult {
        /// It succeeded.
        ok: bool,
        /// The first line of its output or error; clipped.
        output: String,
    },
    /// Tokens (and cost) of a step or of the run.
    Usage {
        /// Input tokens (cached ones included).
        input: u64,
        /// Output tokens.
        output: u64,
        /// Cost in US dollars, when the CLI says.
        cost_usd: Option<f64>,
    },
    /// How the run ended, in the CLI's words, in full.
    Result {
        /// The CLI considers it a success.
        success: bool,
        /// Its final message or error.
        text: String,
    },
    /// An error or a retry the CLI reported on the way.
    Error(String),
    /// A line that is not part of the CLI's stream, shown as it is.
    Plain(String),
}

/// Reads one run's log, a line at a time.
#[derive(Debug)]
pub struct Transcript {
    adapter: Adapter,
    /// Tool calls already shown when they started (Codex `item.started`, OpenCode's
    /// `pending`/`running` parts): their end shows only how they ended.
    started: HashSet<String>,
}

impl Transcript {
    /// For a run of `adapter` (`None`: a log sf does not know the format of).
    pub fn new(adapter: Option<Adapter>) -> Self {
        Self {
            adapter: adapter.unwrap_or(Adapter::Command),
            started: HashSet::new(),
        }
    }

    /// What one line of the log (without its newline) shows. A `command` agent's lines are
    /// all [`Entry::Plain`], blank ones included; in a CLI's stream a blank line shows
    /// nothing and a line that is not JSON (its stderr) is kept as it is.
    pub fn entries(&mut self, line: &str) -> Vec<Entry> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if self.adapter == Adapter::Command {
            return vec![Entry::Plain(line.to_owned())];
        }
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Vec::new();
        }
        let json = trimmed
            .starts_with('{')
            .then(|| serde_json::from_str::<Value>(trimmed).ok())
            .flatten();
        let Some(v) = json else {
            return vec![Entry::Plain(line.trim_end().to_owned())];
        };
        let kind = str_at(&v, &["type"]).unwrap_or_default();
        let out = match self.adapter {
            Adapter::Claude => claude(kind, &v),
            Adapter::Codex => codex(kind, &v, &mut self.started),
            Adapter::Opencode => opencode(kind, &v, &mut self.started),
            Adapter::Command => None,
        };
        out.unwrap_or_default()
    }
}

fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    at(v, path).and_then(Value::as_str)
}

fn u64_at(v: &Value, path: &[&str]) -> u64 {
    at(v, path)
        .and_then(|n| n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)))
        .unwrap_or(0)
}

/// The first non-empty line of `text`, clipped to [`SUMMARY`] characters.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    clip(line)
}

fn clip(text: &str) -> String {
    if text.chars().count() <= SUMMARY {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(SUMMARY - 1).collect();
    s.push('…');
    s
}

/// A tool's input in one line: the command, the file, or compact JSON.
fn summarize_input(input: &Value) -> String {
    for key in [
        "command",
        "cmd",
        "file_path",
        "filePath",
        "path",
        "pattern",
        "url",
        "query",
    ] {
        if let Some(s) = input.get(key).and_then(Value::as_str) {
            return first_line(s);
        }
    }
    match input {
        Value::Null => String::new(),
        Value::String(s) => first_line(s),
        other => clip(&other.to_string()),
    }
}

/// Text of a tool result's `content`: a string, or a list of text blocks.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn claude(kind: &str, v: &Value) -> Option<Vec<Entry>> {
    let mut out = Vec::new();
    match kind {
        "assistant" => {
            let blocks = at(v, &["message", "content"])?.as_array()?;
            let synthetic =
                v.get("error").is_some() || str_at(v, &["message", "model"]) == Some("<synthetic>");
            for b in blocks {
                match str_at(b, &["type"]) {
                    Some("text") => {
                        let text = str_at(b, &["text"]).unwrap_or_default().to_owned();
                        out.push(if synthetic {
                            Entry::Error(text)
                        } else {
                            Entry::Text(text)
                        });
                    }
                    Some("tool_use" | "server_tool_use") => out.push(Entry::ToolCall {
                        name: str_at(b, &["name"]).unwrap_or("tool").to_owned(),
                        input: summarize_input(b.get("input").unwrap_or(&Value::Null)),
                    }),
                    _ => {}
                }
            }
        }
        "user" => {
            for b in at(v, &["message", "content"])?.as_array()? {
                if str_at(b, &["type"]) == Some("tool_result") {
                    out.push(Entry::ToolResult {
                        ok: !b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
                        output: first_line(&content_text(b.get("content"))),
                    });
                }
            }
        }
        "system" if str_at(v, &["subtype"]) == Some("api_retry") => {
            out.push(Entry::Error(format!(
                "retrying the API ({}, attempt {} of {})",
                str_at(v, &["error"]).unwrap_or("error"),
                u64_at(v, &["attempt"]),
                u64_at(v, &["max_retries"]),
            )));
        }
        "result" => {
            let usage = v.get("usage");
            if usage.is_some() || v.get("total_cost_usd").is_some() {
                out.push(Entry::Usage {
                    input: u64_at(v, &["usage", "input_tokens"])
                        + u64_at(v, &["usage", "cache_read_input_tokens"])
                        + u64_at(v, &["usage", "cache_creation_input_tokens"]),
                    output: u64_at(v, &["usage", "output_tokens"]),
                    cost_usd: at(v, &["total_cost_usd"]).and_then(Value::as_f64),
                });
            }
            let failed = v.get("is_error").and_then(Value::as_bool).unwrap_or(false)
                || str_at(v, &["subtype"]).is_some_and(|s| s != "success");
            let text = str_at(v, &["result"])
                .map(str::to_owned)
                .or_else(|| {
                    at(v, &["errors"]).and_then(Value::as_array).map(|e| {
                        e.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                })
                .unwrap_or_else(|| str_at(v, &["subtype"]).unwrap_or("").to_owned());
            out.push(Entry::Result {
                success: !failed,
                text,
            });
        }
        _ => {}
    }
    Some(out)
}

fn codex(kind: &str, v: &Value, started: &mut HashSet<String>) -> Option<Vec<Entry>> {
    let mut out = Vec::new();
    match kind {
        "item.started" | "item.updated" => {
            let item = v.get("item")?;
            match codex_item_kind(item) {
                Some("command_execution" | "mcp_tool_call") if kind == "item.started" => {
                    if let Some(id) = str_at(item, &["id"]) {
                        started.insert(id.to_owned());
                    }
                    out.extend(codex_call(item));
                }
                Some("todo_list") => out.extend(codex_todo(item)),
                _ => {}
            }
        }
        "item.completed" => {
            let item = v.get("item")?;
            let shown = str_at(item, &["id"]).is_some_and(|id| started.remove(id));
            match codex_item_kind(item) {
                Some("agent_message" | "assistant_message") => {
                    out.push(Entry::Text(
                        str_at(item, &["text"]).unwrap_or("").to_owned(),
                    ));
                }
                Some("command_execution") => {
                    if !shown {
                        out.extend(codex_call(item));
                    }
                    let code = at(item, &["exit_code"]).and_then(Value::as_i64);
                    let output = first_line(str_at(item, &["aggregated_output"]).unwrap_or(""));
                    let status = str_at(item, &["status"]).unwrap_or("");
                    out.push(Entry::ToolResult {
                        ok: code == Some(0),
                        output: match code {
                            Some(c) if output.is_empty() => format!("exit {c}"),
                            None if output.is_empty() => status.to_owned(),
                            _ => output,
                        },
                    });
                }
                Some("mcp_tool_call") => {
                    if !shown {
                        out.extend(codex_call(item));
                    }
                    let failed = str_at(item, &["status"]) == Some("failed")
                        || item.get("error").is_some_and(|e| !e.is_null());
                    let text = str_at(item, &["error", "message"])
                        .map(str::to_owned)
                        .or_else(|| at(item, &["result", "content"]).map(|c| content_text(Some(c))))
                        .unwrap_or_default();
                    out.push(Entry::ToolResult {
                        ok: !failed,
                        output: first_line(&text),
                    });
                }
                Some("file_change") => {
                    let changes: Vec<String> = at(item, &["changes"])
                        .and_then(Value::as_array)
                        .map(|c| {
                            c.iter()
                                .filter_map(|c| {
                                    let path = str_at(c, &["path"])?;
                                    Some(match str_at(c, &["kind"]) {
                                        Some(k) if k != "update" => format!("{path} ({k})"),
                                        _ => path.to_owned(),
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Entry::ToolCall {
                        name: "edit".into(),
                        input: clip(&changes.join(", ")),
                    });
                    if str_at(item, &["status"]) == Some("failed") {
                        out.push(Entry::ToolResult {
                            ok: false,
                            output: "failed".into(),
                        });
                    }
                }
                Some("web_search") => out.push(Entry::ToolCall {
                    name: "web_search".into(),
                    input: first_line(str_at(item, &["query"]).unwrap_or("")),
                }),
                Some("error") => {
                    out.push(Entry::Error(
                        str_at(item, &["message"]).unwrap_or("").to_owned(),
                    ));
                }
                _ => {}
            }
        }
        "turn.completed" => out.push(Entry::Usage {
            input: u64_at(v, &["usage", "input_tokens"]),
            output: u64_at(v, &["usage", "output_tokens"]),
            cost_usd: None,
        }),
        "turn.failed" => out.push(Entry::Result {
            success: false,
            text: str_at(v, &["error", "message"])
                .unwrap_or("turn failed")
                .to_owned(),
        }),
        "error" => out.push(Entry::Error(
            str_at(v, &["message"]).unwrap_or("").to_owned(),
        )),
        _ => {}
    }
    Some(out)
}

fn codex_item_kind(item: &Value) -> Option<&str> {
    str_at(item, &["type"]).or_else(|| str_at(item, &["item_type"]))
}

/// A Codex command or MCP tool call, as it starts.
fn codex_call(item: &Value) -> Option<Entry> {
    Some(match codex_item_kind(item)? {
        "command_execution" => Entry::ToolCall {
            name: "shell".into(),
            input: first_line(str_at(item, &["command"]).unwrap_or("")),
        },
        "mcp_tool_call" => Entry::ToolCall {
            name: format!(
                "{}.{}",
                str_at(item, &["server"]).unwrap_or("mcp"),
                str_at(item, &["tool"]).unwrap_or("tool")
            ),
            input: summarize_input(item.get("arguments").unwrap_or(&Value::Null)),
        },
        _ => return None,
    })
}

/// Codex's plan: how far it is, and the next step.
fn codex_todo(item: &Value) -> Option<Entry> {
    let items = at(item, &["items"])?.as_array()?;
    let done = |i: &Value| i.get("completed").and_then(Value::as_bool) == Some(true);
    let finished = items.iter().filter(|i| done(i)).count();
    let next = items
        .iter()
        .find(|i| !done(i))
        .and_then(|i| str_at(i, &["text"]))
        .map(|t| format!(" · next: {t}"))
        .unwrap_or_default();
    Some(Entry::ToolCall {
        name: "plan".into(),
        input: clip(&format!("{finished}/{} done{next}", items.len())),
    })
}

fn opencode(kind: &str, v: &Value, started: &mut HashSet<String>) -> Option<Vec<Entry>> {
    let mut out = Vec::new();
    let part = v.get("part");
    match kind {
        "text" => out.push(Entry::Text(
            part.and_then(|p| str_at(p, &["text"]))
                .unwrap_or("")
                .to_owned(),
        )),
        "tool_use" => {
            let part = part?;
            let status = str_at(part, &["state", "status"]);
            let id = str_at(part, &["callID"]).or_else(|| str_at(part, &["id"]));
            let ended = matches!(status, Some("completed" | "error"));
            let shown = match id {
                Some(id) if ended => started.remove(id),
                Some(id) => !started.insert(id.to_owned()),
                None => false,
            };
            if !shown {
                out.push(Entry::ToolCall {
                    name: str_at(part, &["tool"]).unwrap_or("tool").to_owned(),
                    input: summarize_input(at(part, &["state", "input"]).unwrap_or(&Value::Null)),
                });
            }
            if matches!(status, Some("completed" | "error")) {
                let text = str_at(part, &["state", "output"])
                    .or_else(|| str_at(part, &["state", "error"]))
                    .unwrap_or("");
                out.push(Entry::ToolResult {
                    ok: status == Some("completed"),
                    output: first_line(text),
                });
            }
        }
        "step_finish" => {
            let part = part?;
            if part.get("tokens").is_some() {
                out.push(Entry::Usage {
                    input: u64_at(part, &["tokens", "input"])
                        + u64_at(part, &["tokens", "cache", "read"]),
                    output: u64_at(part, &["tokens", "output"])
                        + u64_at(part, &["tokens", "reasoning"]),
                    cost_usd: part.get("cost").and_then(Value::as_f64),
                });
            }
            if str_at(part, &["reason"]) == Some("stop") {
                out.push(Entry::Result {
                    success: true,
                    text: String::new(),
                });
            }
        }
        "error" => {
            let text = str_at(v, &["error", "data", "message"])
                .or_else(|| str_at(v, &["error", "message"]))
                .or_else(|| str_at(v, &["error", "name"]))
                .unwrap_or("error");
            out.push(Entry::Result {
                success: false,
                text: text.to_owned(),
            });
        }
        _ => {}
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(adapter: Adapter, log: &str) -> Vec<Entry> {
        let mut t = Transcript::new(Some(adapter));
        log.lines().flat_map(|l| t.entries(l)).collect()
    }

    fn call(name: &str, input: &str) -> Entry {
        Entry::ToolCall {
            name: name.into(),
            input: input.into(),
        }
    }

    fn ended(ok: bool, output: &str) -> Entry {
        Entry::ToolResult {
            ok,
            output: output.into(),
        }
    }

    #[test]
    fn claude_text_tool_calls_their_ends_and_thinking_left_out() {
        let log = r#"{"type":"system","subtype":"init","session_id":"s","tools":["Bash"]}
{"type":"assistant","message":{"model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"hmm","signature":"x"},{"type":"text","text":"Committing the note."},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"git commit -qm \"note\"\ngit log -1","description":"commit"}}]}}
{"type":"user","message":{"role":"user","content":[{"tool_use_id":"t1","type":"tool_result","content":"","is_error":false}]}}
{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t2","name":"Edit","input":{"file_path":"/w/src/a.rs","old_string":"a","new_string":"b"}},{"type":"tool_use","id":"t3","name":"TodoWrite","input":{"todos":[{"content":"x"}]}}]}}
{"type":"user","message":{"content":[{"tool_use_id":"t2","type":"tool_result","content":[{"type":"text","text":"\nString not found in file\nmore"}],"is_error":true}]}}
{"type":"unknown_future_type","x":1}
{"type":"assistant"}"#;
        assert_eq!(
            read(Adapter::Claude, log),
            [
                Entry::Text("Committing the note.".into()),
                call("Bash", "git commit -qm \"note\""),
                ended(true, ""),
                call("Edit", "/w/src/a.rs"),
                call("TodoWrite", r#"{"todos":[{"content":"x"}]}"#),
                ended(false, "String not found in file"),
            ]
        );
    }

    #[test]
    fn claude_errors_retries_and_a_long_result_in_full() {
        let synthetic = r#"{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text","text":"Invalid API key · Please run /login"}]},"error":"authentication_failed"}"#;
        let retry = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"error":"rate_limit"}"#;
        let text = format!("Done.\n\n{}\nlast line", "all tests pass; ".repeat(70));
        // Claude Code 2.1: over a kilobyte, `type` and `result` among the last keys
        let result = serde_json::json!({
            "subtype": "success", "is_error": false, "duration_ms": 1234, "num_turns": 3,
            "session_id": "e8d7c6b5-a493-4827-8160-5f4e3d2c1b0a", "total_cost_usd": 0.0123,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 1000,
                      "cache_creation_input_tokens": 224, "output_tokens": 567},
            "type": "result", "result": text,
        });
        let result = result.to_string();
        assert!(result.len() > 1200, "{}", result.len());
        let log = format!("{synthetic}\n{retry}\n{result}\n");
        assert_eq!(
            read(Adapter::Claude, &log),
            [
                Entry::Error("Invalid API key · Please run /login".into()),
                Entry::Error("retrying the API (rate_limit, attempt 1 of 10)".into()),
                Entry::Usage {
                    input: 1234,
                    output: 567,
                    cost_usd: Some(0.0123)
                },
                Entry::Result {
                    success: true,
                    text
                },
            ]
        );
        let failed = r#"{"type":"result","subtype":"error_max_turns","is_error":true}"#;
        assert_eq!(
            read(Adapter::Claude, failed),
            [Entry::Result {
                success: false,
                text: "error_max_turns".into()
            }]
        );
    }

    #[test]
    fn codex_items_shown_as_they_start_and_end() {
        let log = r#"Reading prompt from stdin...
{"type":"thread.started","thread_id":"t"}
{"type":"item.completed","item":{"id":"i0","type":"reasoning","text":"**Looking**"}}
{"type":"item.started","item":{"id":"i1","type":"command_execution","command":"bash -lc 'cargo test'","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"i1","type":"command_execution","command":"bash -lc 'cargo test'","aggregated_output":"error[E0308]: mismatched types\n","exit_code":101,"status":"failed"}}
{"type":"item.completed","item":{"id":"i2","type":"command_execution","command":"true","aggregated_output":"","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"i3","type":"file_change","changes":[{"path":"src/a.rs","kind":"update"},{"path":"src/b.rs","kind":"add"}],"status":"completed"}}
{"type":"item.started","item":{"id":"i4","type":"mcp_tool_call","server":"docs","tool":"search","arguments":{"query":"tokio"},"status":"in_progress"}}
{"type":"item.completed","item":{"id":"i4","type":"mcp_tool_call","server":"docs","tool":"search","arguments":{"query":"tokio"},"status":"failed","error":{"message":"timed out"}}}
{"type":"item.completed","item":{"id":"i5","type":"web_search","query":"rust 2024 edition"}}
{"type":"item.started","item":{"id":"i6","type":"todo_list","items":[{"text":"read","completed":true},{"text":"fix","completed":false}]}}
{"type":"item.completed","item":{"id":"i7","type":"agent_message","text":"Fixed."}}
{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}
{"type":"error","message":"Reconnecting... 1/5"}
{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized"}}"#;
        assert_eq!(
            read(Adapter::Codex, log),
            [
                Entry::Plain("Reading prompt from stdin...".into()),
                call("shell", "bash -lc 'cargo test'"),
                ended(false, "error[E0308]: mismatched types"),
                call("shell", "true"),
                ended(true, "exit 0"),
                call("edit", "src/a.rs, src/b.rs (add)"),
                call("docs.search", "tokio"),
                ended(false, "timed out"),
                call("web_search", "rust 2024 edition"),
                call("plan", "1/2 done · next: fix"),
                Entry::Text("Fixed.".into()),
                Entry::Usage {
                    input: 24763,
                    output: 122,
                    cost_usd: None
                },
                Entry::Error("Reconnecting... 1/5".into()),
                Entry::Result {
                    success: false,
                    text: "unexpected status 401 Unauthorized".into()
                },
            ]
        );
    }

    #[test]
    fn opencode_parts_steps_and_errors() {
        let log = r#"{"type":"step_start","part":{"type":"step-start"}}
{"type":"tool_use","part":{"callID":"c1","tool":"bash","state":{"status":"running","input":{"command":"cargo test"}}}}
{"type":"tool_use","part":{"callID":"c1","tool":"bash","state":{"status":"completed","input":{"command":"cargo test"},"output":"test result: ok\n"}}}
{"type":"tool_use","part":{"callID":"c2","tool":"edit","state":{"status":"error","input":{"filePath":"/w/a.rs"},"error":"oldString not found"}}}
{"type":"text","part":{"type":"text","text":"All green."}}
{"type":"step_finish","part":{"reason":"stop","cost":0.0042,"tokens":{"input":1200,"output":80,"reasoning":20,"cache":{"read":300,"write":0}}}}
{"type":"error","error":{"name":"ProviderAuthError","data":{"message":"invalid x-api-key"}}}"#;
        assert_eq!(
            read(Adapter::Opencode, log),
            [
                call("bash", "cargo test"),
                ended(true, "test result: ok"),
                call("edit", "/w/a.rs"),
                ended(false, "oldString not found"),
                Entry::Text("All green.".into()),
                Entry::Usage {
                    input: 1500,
                    output: 100,
                    cost_usd: Some(0.0042)
                },
                Entry::Result {
                    success: true,
                    text: String::new()
                },
                Entry::Result {
                    success: false,
                    text: "invalid x-api-key".into()
                },
            ]
        );
    }

    #[test]
    fn a_command_agents_lines_are_all_plain_and_a_clis_stderr_is_kept() {
        let log = "{\"type\":\"result\"}\n\n  indented  \r\n";
        assert_eq!(
            read(Adapter::Command, log),
            [
                Entry::Plain("{\"type\":\"result\"}".into()),
                Entry::Plain(String::new()),
                Entry::Plain("  indented  ".into()),
            ]
        );
        let mut unknown = Transcript::new(None);
        assert_eq!(
            unknown.entries("{\"type\":\"result\"}"),
            [Entry::Plain("{\"type\":\"result\"}".into())]
        );
        assert_eq!(
            read(Adapter::Claude, "\nnpm WARN deprecated\n{not json\n"),
            [
                Entry::Plain("npm WARN deprecated".into()),
                Entry::Plain("{not json".into()),
            ]
        );
    }
}
