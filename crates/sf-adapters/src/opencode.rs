//! OpenCode: `opencode run --format json`, prompt on stdin (with no positional message, `run`
//! takes piped stdin as the message; a positional with spaces would be re-quoted by `run`).
//!
//! Read from the JSON lines (`{type, timestamp, sessionID, part|error}`): the session id,
//! `tool_use` parts (`part.tool`), `step_finish` parts (per-step `tokens` and `cost`, added up;
//! reasoning tokens count as output), `text` parts (the last one is the result text), the final
//! `step_finish` with `reason: "stop"` or a `done` line (success), and `error` lines (failure and
//! usage limits; an API error with status 429 counts as a usage limit).
//!
//! sf's guard is a plugin ([`GUARD_PLUGIN`]) that OpenCode 1.18 loads from the `plugin` list of
//! `OPENCODE_CONFIG_CONTENT`. OpenCode adds up the `plugin` lists of every config it reads
//! (its user's, the project's `opencode.json` and `.opencode/`, then `OPENCODE_CONFIG_CONTENT`),
//! so a project cannot take sf's out, and sf's comes last: its `tool.execute.before` runs
//! after any other plugin's and sees the arguments the tool will run with. A plugin that fails
//! to load is only logged: a completed call without a guard record in the run's stream
//! ([`live`]) then stops the run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use super::{
    Options, RunResult, Signal, StreamParser, TokenUsage, auth_failed, clip, json_line, limit,
    note_session,
};

/// sf's guard as an OpenCode plugin: its `tool.execute.before` runs `"$SF_SFCTL" guard
/// check` with the call in Claude Code's hook shape on stdin, and throws (OpenCode then does
/// not run the call, and the model gets the message) when sfctl blocks it, fails or cannot
/// be run.
pub(super) const GUARD_PLUGIN: &str = include_str!("opencode_guard.js");

/// The variable OpenCode reads a config from, merged over every other.
pub(super) const CONFIG_ENV: &str = "OPENCODE_CONFIG_CONTENT";

/// Where the run's guard plugin is written: in a folder of its own next to its prompt file
/// (OpenCode's runtime, Bun, opens the folder of a module it imports: a sandboxed run may
/// read that folder, not the one of every run's prompt).
pub(super) fn guard_plugin_path(prompt_file: &Path) -> PathBuf {
    prompt_file.with_extension("sf-guard").join("sf-guard.js")
}

/// `OPENCODE_CONFIG_CONTENT` for a run: `inherited` (the one it would get otherwise, a JSON
/// object) with `plugin` added to its `plugin` list, as a `file://` URL.
pub(super) fn config_content(inherited: Option<&str>, plugin: &Path) -> Result<String, String> {
    if !plugin.is_absolute() {
        return Err(format!(
            "the plugin's path {} is not absolute",
            plugin.display()
        ));
    }
    let mut config = match inherited.filter(|c| !c.trim().is_empty()) {
        Some(text) => serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| format!("it is not JSON ({e})"))?,
        None => serde_json::json!({}),
    };
    let object = config.as_object_mut().ok_or("it is not a JSON object")?;
    let list = object
        .entry("plugin")
        .or_insert_with(|| serde_json::json!([]))
        .as_array_mut()
        .ok_or("its `plugin` is not a list")?;
    list.push(file_url(plugin).into());
    Ok(config.to_string())
}

/// `file://` and the absolute path, every byte but the unreserved ones and `/` escaped.
fn file_url(path: &Path) -> String {
    let mut url = "file://".to_owned();
    for b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(b) {
            url.push(char::from(*b));
        } else {
            let _ = write!(url, "%{b:02X}");
        }
    }
    url
}

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
                    out.push(Signal::Step);
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

/// What one line says live: a tool call that ran (a `tool_use` part whose state is
/// `completed`), as a call and its result. A call the guard blocked ends in `error`, as does
/// one OpenCode refused before any plugin saw it (arguments that do not fit the tool): neither
/// ran, so neither is reported.
pub(super) fn live(line: &str) -> Vec<super::Live> {
    let line = line.trim_start();
    if !line.starts_with(r#"{"type":"tool_use""#) {
        return Vec::new();
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Vec::new();
    };
    let part = &v["part"];
    let (Some(id), Some(name)) = (part["callID"].as_str(), part["tool"].as_str()) else {
        return Vec::new();
    };
    if part["state"]["status"] != "completed" {
        return Vec::new();
    }
    vec![
        super::Live::ToolUse {
            id: id.to_owned(),
            name: name.to_owned(),
        },
        super::Live::ToolResult { id: id.to_owned() },
    ]
}
