//! Claude Code, headless: `claude -p --output-format stream-json --verbose`, prompt on stdin.
//!
//! Read from the stream: the session id (every message carries `session_id`); token usage from
//! each `assistant` message (counted once per message id, then replaced by the `result` totals);
//! `tool_use` blocks; `rate_limit_event` lines with `status: "rejected"`; usage-limit prose in
//! error results and in the synthetic assistant message Claude Code writes when the API refuses;
//! and the final `result`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use super::{
    Options, RunResult, Signal, StreamParser, TokenUsage, UsageLimit, auth_failed, clip, json_line,
    limit, note_session,
};

/// The hooks sf installs: before each tool call, `sfctl guard check` (sfd decides and
/// records the call). Claude Code runs the tool when a hook exits with anything but 2 or
/// times out, so the command turns every failure into 2 (`|| exit 2`: an `sfctl` that
/// cannot start, a crash) and its timeout outlasts the guard's own deadline (a held call
/// waits for a human up to the policy's `hold_timeout`).
pub(super) fn hook_settings() -> String {
    serde_json::json!({
        "hooks": {
            "PreToolUse": [{
                "matcher": "*",
                "hooks": [{
                    "type": "command",
                    "command": "\"$SF_SFCTL\" guard check --deadline 2h || exit 2",
                    "timeout": 7800,
                }],
            }],
        },
    })
    .to_string()
}

pub(super) fn args(opts: &Options<'_>) -> Vec<String> {
    let mut args: Vec<String> = [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--dangerously-skip-permissions",
    ]
    .map(String::from)
    .into();
    // sf's hooks, and only them: with no setting sources the agent cannot turn them off
    // (`disableAllHooks`) or add its own through the user's or the project's settings
    args.extend([
        "--settings".to_owned(),
        hook_settings(),
        "--setting-sources".to_owned(),
        String::new(),
    ]);
    if let Some(model) = opts.model {
        args.extend(["--model".to_owned(), model.to_owned()]);
    }
    if let Some(effort) = opts.effort {
        args.extend(["--effort".to_owned(), effort.as_str().to_owned()]);
    }
    if let Some(session) = opts.resume {
        args.extend(["--resume".to_owned(), session.to_owned()]);
    }
    args
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl From<&Usage> for TokenUsage {
    fn from(u: &Usage) -> Self {
        Self {
            input_tokens: u.input_tokens.unwrap_or(0),
            output_tokens: u.output_tokens.unwrap_or(0),
            cache_read_tokens: u.cache_read_input_tokens.unwrap_or(0),
            cache_write_tokens: u.cache_creation_input_tokens.unwrap_or(0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Common {
    session_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Block {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    name: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Message {
    id: Option<String>,
    model: Option<String>,
    content: Vec<Block>,
    usage: Option<Usage>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Assistant {
    session_id: Option<String>,
    message: Message,
    error: Option<String>,
    is_api_error_message: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RateLimitInfo {
    status: Option<String>,
    #[serde(rename = "resetsAt")]
    resets_at: Option<i64>,
    #[serde(rename = "rateLimitType")]
    kind: Option<String>,
    /// The plan's limit is hit but extra usage keeps the run going.
    #[serde(rename = "isUsingOverage")]
    using_overage: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RateLimitEvent {
    session_id: Option<String>,
    rate_limit_info: RateLimitInfo,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResultMessage {
    subtype: Option<String>,
    is_error: bool,
    result: Option<String>,
    errors: Vec<String>,
    session_id: Option<String>,
    total_cost_usd: Option<f64>,
    usage: Option<Usage>,
    api_error_status: Option<u16>,
}

/// A `system` line; `api_retry` ones say why Claude Code calls the API again.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Retry {
    subtype: Option<String>,
    session_id: Option<String>,
    error: Option<String>,
    error_status: Option<u16>,
    attempt: Option<u32>,
    max_retries: Option<u32>,
}

/// State across the lines of one run.
#[derive(Default)]
pub(super) struct Parser {
    session: Option<String>,
    /// Usage already counted per assistant message id: one message arrives as several lines.
    counted: HashMap<String, TokenUsage>,
    tool_ids: HashSet<String>,
}

impl StreamParser for Parser {
    fn feed_line_at(&mut self, line: &str, now: DateTime<FixedOffset>) -> Vec<Signal> {
        let mut out = Vec::new();
        let Some((kind, line)) = json_line(line, now, &mut out) else {
            return out;
        };
        match kind.as_str() {
            "assistant" => {
                if let Ok(msg) = serde_json::from_str::<Assistant>(line) {
                    self.assistant(msg, now, &mut out);
                }
            }
            "rate_limit_event" => {
                if let Ok(ev) = serde_json::from_str::<RateLimitEvent>(line) {
                    note_session(&mut self.session, ev.session_id.as_deref(), &mut out);
                    let info = ev.rate_limit_info;
                    if info.status.as_deref() == Some("rejected")
                        && info.using_overage != Some(true)
                    {
                        let which = info.kind.as_deref().unwrap_or("usage");
                        out.push(Signal::UsageLimit(UsageLimit {
                            message: format!("claude {which} limit reached"),
                            resets_at: info.resets_at.and_then(|s| DateTime::from_timestamp(s, 0)),
                        }));
                    }
                }
            }
            "result" => {
                if let Ok(res) = serde_json::from_str::<ResultMessage>(line)
                    && res.subtype.is_some()
                {
                    self.result(res, now, &mut out);
                }
            }
            "system" => {
                if let Ok(r) = serde_json::from_str::<Retry>(line) {
                    note_session(&mut self.session, r.session_id.as_deref(), &mut out);
                    let auth = r.error_status == Some(401)
                        || r.error.as_deref() == Some("authentication_failed");
                    if r.subtype.as_deref() == Some("api_retry") && auth {
                        out.push(Signal::AuthFailed {
                            message: format!(
                                "API Error: {} {} (Claude Code retries it, attempt {} of {})",
                                r.error_status.unwrap_or(401),
                                r.error.as_deref().unwrap_or("authentication_failed"),
                                r.attempt.unwrap_or(1),
                                r.max_retries.unwrap_or(0)
                            ),
                        });
                    }
                }
            }
            _ => {
                if let Ok(c) = serde_json::from_str::<Common>(line) {
                    note_session(&mut self.session, c.session_id.as_deref(), &mut out);
                }
            }
        }
        out
    }
}

impl Parser {
    fn assistant(&mut self, msg: Assistant, now: DateTime<FixedOffset>, out: &mut Vec<Signal>) {
        note_session(&mut self.session, msg.session_id.as_deref(), out);
        let m = msg.message;
        if let (Some(id), Some(usage)) = (&m.id, &m.usage) {
            // a message is printed once per content block: one step per message
            if !self.counted.contains_key(id) {
                out.push(Signal::Step);
            }
            let seen = self.counted.entry(id.clone()).or_default();
            let now_usage = TokenUsage::from(usage);
            let delta = now_usage.saturating_sub(*seen);
            *seen = seen.max(now_usage);
            if delta.total() > 0 {
                out.push(Signal::Usage {
                    tokens: delta,
                    cost_usd: None,
                    total: false,
                });
            }
        }
        for block in &m.content {
            if matches!(block.kind.as_deref(), Some("tool_use" | "server_tool_use"))
                && let Some(name) = &block.name
            {
                let fresh = block
                    .id
                    .as_ref()
                    .is_none_or(|id| self.tool_ids.insert(id.clone()));
                if fresh {
                    out.push(Signal::ToolCall { name: name.clone() });
                }
            }
        }
        let synthetic = msg.error.is_some()
            || msg.is_api_error_message
            || m.model.as_deref() == Some("<synthetic>");
        if synthetic {
            let text: Vec<&str> = m.content.iter().filter_map(|b| b.text.as_deref()).collect();
            let text = text.join("\n");
            if msg.error.as_deref() == Some("rate_limit") || limit::is_usage_limit(&text) {
                out.push(Signal::UsageLimit(limit::usage_limit(&text, now)));
            } else if msg.error.as_deref() == Some("authentication_failed") {
                out.push(Signal::AuthFailed {
                    message: clip(text.trim()),
                });
            } else {
                out.extend(auth_failed(&text));
            }
        }
    }

    fn result(&mut self, res: ResultMessage, now: DateTime<FixedOffset>, out: &mut Vec<Signal>) {
        note_session(&mut self.session, res.session_id.as_deref(), out);
        let usage = res
            .usage
            .filter(|u| u.input_tokens.is_some() || u.output_tokens.is_some());
        if usage.is_some() || res.total_cost_usd.is_some() {
            out.push(Signal::Usage {
                tokens: usage.as_ref().map(TokenUsage::from).unwrap_or_default(),
                cost_usd: res.total_cost_usd,
                total: true,
            });
        }
        let subtype = res.subtype.as_deref().unwrap_or("unknown");
        let text = match (&res.result, res.errors.is_empty()) {
            (Some(text), _) => text.clone(),
            (None, false) => res.errors.join("\n"),
            (None, true) => subtype.to_owned(),
        };
        let limited = if res.is_error {
            res.api_error_status == Some(429) || limit::is_usage_limit(&text)
        } else {
            // Older versions ended a limited run with a "success" whose text is only the marker.
            text.trim().len() < 200 && limit::has_epoch_marker(&text)
        };
        if limited {
            out.push(Signal::UsageLimit(limit::usage_limit(&text, now)));
        } else if res.is_error {
            if res.api_error_status == Some(401) {
                out.push(Signal::AuthFailed {
                    message: clip(text.trim()),
                });
            } else {
                out.extend(auth_failed(&text));
            }
        }
        out.push(Signal::Result(RunResult {
            success: !res.is_error && subtype == "success" && !limited,
            text: clip(&text),
        }));
    }
}

/// The tool calls and results in one line of Claude Code's stream-json (see
/// [`crate::live`]).
pub(super) fn live(line: &str) -> Vec<super::Live> {
    let line = line.trim_start();
    let assistant = line.starts_with(r#"{"type":"assistant""#);
    let user = line.starts_with(r#"{"type":"user""#);
    let result = line.starts_with(r#"{"type":"result""#);
    if !assistant && !user && !result {
        return Vec::new();
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Vec::new();
    };
    if result {
        return v
            .get("total_cost_usd")
            .and_then(serde_json::Value::as_f64)
            .map(|usd| super::Live::Cost { usd })
            .into_iter()
            .collect();
    }
    let mut out = Vec::new();
    if assistant
        && let (Some(id), Some(u)) = (
            v.pointer("/message/id").and_then(|i| i.as_str()),
            v.pointer("/message/usage"),
        )
    {
        let n = |k: &str| u.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        out.push(super::Live::Usage {
            message: id.to_owned(),
            tokens: n("input_tokens") + n("output_tokens"),
        });
    }
    let blocks = v
        .pointer("/message/content")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    out.extend(blocks.iter().filter_map(|b| {
        let kind = b.get("type")?.as_str()?;
        match kind {
            "tool_use" if assistant => Some(super::Live::ToolUse {
                id: b.get("id")?.as_str()?.to_owned(),
                name: b.get("name")?.as_str()?.to_owned(),
            }),
            "tool_result" if user => Some(super::Live::ToolResult {
                id: b.get("tool_use_id")?.as_str()?.to_owned(),
            }),
            _ => None,
        }
    }));
    out
}
