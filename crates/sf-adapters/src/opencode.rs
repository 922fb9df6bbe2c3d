//! OpenCode: `opencode run --format json`, prompt on stdin (with no positional message, `run`
//! takes piped stdin as the message; a positional with spaces would be re-quoted by `run`).
//!
//! Read from the JSON lines (`{type, timestamp, sessionID, part|error}`): the session id,
//! `tool_use` parts (`part.tool`), `step_finish` parts (per-step `tokens` and `cost`, added up;
//! reasoning tokens count as output), `text` parts (the last one is the result text), the final
//! `step_finish` with `reason: "stop"` or a `done` line (success), and `error` lines (failure and
//! usage limits; an API error with status 429 counts as a usage limit).

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use super::{
    Options, RunResult, Signal, StreamParser, TokenUsage, auth_failed, clip, json_line, limit,
    note_session,
};

pub(super) fn args(opts: &Options<'_>) -> Vec<String> {
    let mut args: Vec<String> = ["run", "--format", "json"].map(String::from).into();
    if let Some(model) = opts.model {
        args.extend(["--model".to_owned(), model.to_owned()]);
    }
    if let Some(effort) = opts.effort {
        args.extend(["--variant".to_owned(), effort.as_str().to_owned()]);
    }
    if let Some(session) = opts.resume {
        args.extend(["--session".to_owned(), session.to_owned()]);
    }
    args
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Cache {
    read: f64,
    write: f64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Tokens {
    input: f64,
    output: f64,
    reasoning: f64,
    cache: Cache,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Part {
    tool: Option<String>,
    text: Option<String>,
    reason: Option<String>,
    cost: Option<f64>,
    tokens: Option<Tokens>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorData {
    message: Option<String>,
    #[serde(rename = "statusCode")]
    status_code: Option<u16>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    name: Option<String>,
    message: Option<String>,
    data: Option<ErrorData>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Event {
    #[serde(rename = "sessionID")]
    session_id: Option<String>,
    part: Part,
    error: Option<ErrorBody>,
}

/// State across the lines of one run.
#[derive(Default)]
pub(super) struct Parser {
    session: Option<String>,
    last_text: Option<String>,
    failed: bool,
}

/// Token counts arrive as JSON numbers that may be written as floats.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "clamped to 0..=u64::MAX first; fractions of a token are meaningless"
)]
fn count(n: f64) -> u64 {
    if n.is_finite() {
        n.clamp(0.0, u64::MAX as f64) as u64
    } else {
        0
    }
}

impl StreamParser for Parser {
    fn feed_line_at(&mut self, line: &str, now: DateTime<FixedOffset>) -> Vec<Signal> {
        let mut out = Vec::new();
        let Some((kind, line)) = json_line(line, now, &mut out) else {
            return out;
        };
        let Ok(ev) = serde_json::from_str::<Event>(line) else {
            return out;
        };
        note_session(&mut self.session, ev.session_id.as_deref(), &mut out);
        let part = ev.part;
        match kind.as_str() {
            "tool_use" => {
                if let Some(tool) = part.tool {
                    out.push(Signal::ToolCall { name: tool });
                }
            }
            "text" => {
                if let Some(text) = part.text {
                    self.last_text = Some(text);
                }
            }
            "step_finish" => {
                if let Some(t) = &part.tokens {
                    out.push(Signal::Usage {
                        tokens: TokenUsage {
                            input_tokens: count(t.input),
                            output_tokens: count(t.output + t.reasoning),
                            cache_read_tokens: count(t.cache.read),
                            cache_write_tokens: count(t.cache.write),
                        },
                        cost_usd: part.cost,
                        total: false,
                    });
                }
                if part.reason.as_deref() == Some("stop") && !self.failed {
                    out.push(self.success());
                }
            }
            "done" if !self.failed => out.push(self.success()),
            "error" => {
                self.failed = true;
                let err = ev.error.unwrap_or_default();
                let data = err.data.unwrap_or_default();
                let provider_auth = err.name.as_deref() == Some("ProviderAuthError");
                let message = data
                    .message
                    .or(err.message)
                    .or(err.name)
                    .unwrap_or_else(|| "error".to_owned());
                if data.status_code == Some(429) || limit::is_usage_limit(&message) {
                    out.push(Signal::UsageLimit(limit::usage_limit(&message, now)));
                } else if data.status_code == Some(401) || provider_auth {
                    out.push(Signal::AuthFailed {
                        message: clip(&message),
                    });
                } else {
                    out.extend(auth_failed(&message));
                }
                out.push(Signal::Result(RunResult {
                    success: false,
                    text: clip(&message),
                }));
            }
            _ => {}
        }
        out
    }
}

impl Parser {
    fn success(&self) -> Signal {
        Signal::Result(RunResult {
            success: true,
            text: clip(self.last_text.as_deref().unwrap_or("")),
        })
    }
}
