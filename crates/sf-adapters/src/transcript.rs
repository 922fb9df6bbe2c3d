//! A run's log made readable: what the agent said, each tool call with a summary of its
//! input and how it ended, token usage, and the final result or error in full. One
//! [`Transcript`] per run reads its log a line at a time; lines it does not know (the
//! CLI's stderr, a `command` agent's output) come back as [`Entry::Plain`].

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
}

impl Transcript {
    /// For a run of `adapter` (`None`: a log sf does not know the format of).
    pub fn new(adapter: Option<Adapter>) -> Self {
        Self {
            adapter: adapter.unwrap_or(Adapter::Command),
        }
    }

    /// What one line of the log shows.
    pub fn entries(&mut self, line: &str) -> Vec<Entry> {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Vec::new();
        }
        let json = (self.adapter != Adapter::Command && trimmed.starts_with('{'))
            .then(|| serde_json::from_str::<Value>(trimmed).ok())
            .flatten();
        let Some(v) = json else {
            return vec![Entry::Plain(line.trim_end().to_owned())];
        };
        let kind = str_at(&v, &["type"]).unwrap_or_default();
        let out = match self.adapter {
            Adapter::Claude => claude(kind, &v),
            Adapter::Codex => codex(kind, &v),
            Adapter::Opencode => opencode(kind, &v),
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

fn codex(kind: &str, v: &Value) -> Option<Vec<Entry>> {
    let mut out = Vec::new();
    match kind {
        "item.completed" => {
            let item = v.get("item")?;
            let item_kind = str_at(item, &["type"]).or_else(|| str_at(item, &["item_type"]));
            match item_kind {
                Some("agent_message" | "assistant_message") => {
                    out.push(Entry::Text(
                        str_at(item, &["text"]).unwrap_or("").to_owned(),
                    ));
                }
                Some("command_execution") => {
                    out.push(Entry::ToolCall {
                        name: "shell".into(),
                        input: first_line(str_at(item, &["command"]).unwrap_or("")),
                    });
                    let code = at(item, &["exit_code"]).and_then(Value::as_i64);
                    let output = first_line(str_at(item, &["aggregated_output"]).unwrap_or(""));
                    out.push(Entry::ToolResult {
                        ok: code == Some(0),
                        output: match code {
                            Some(c) if output.is_empty() => format!("exit {c}"),
                            _ => output,
                        },
                    });
                }
                Some("file_change") => {
                    let paths: Vec<&str> = at(item, &["changes"])
                        .and_then(Value::as_array)
                        .map(|c| c.iter().filter_map(|c| str_at(c, &["path"])).collect())
                        .unwrap_or_default();
                    out.push(Entry::ToolCall {
                        name: "edit".into(),
                        input: clip(&paths.join(", ")),
                    });
                }
                Some("mcp_tool_call") => out.push(Entry::ToolCall {
                    name: format!(
                        "{}.{}",
                        str_at(item, &["server"]).unwrap_or("mcp"),
                        str_at(item, &["tool"]).unwrap_or("tool")
                    ),
                    input: summarize_input(item.get("arguments").unwrap_or(&Value::Null)),
                }),
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

fn opencode(kind: &str, v: &Value) -> Option<Vec<Entry>> {
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
            out.push(Entry::ToolCall {
                name: str_at(part, &["tool"]).unwrap_or("tool").to_owned(),
                input: summarize_input(at(part, &["state", "input"]).unwrap_or(&Value::Null)),
            });
            let status = str_at(part, &["state", "status"]);
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
