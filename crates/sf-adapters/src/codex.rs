//! Codex: `codex exec --json … -` with the prompt on stdin; `codex exec … resume SESSION -` to
//! continue. Options go before `resume` so that versions where they are not global accept them.
//!
//! sf's guard is Codex's `PreToolUse` hook, given on the command line (see [`hook_args`]).
//!
//! Read from the JSONL: `thread.started` (the session id), `turn.completed` (usage: the thread's
//! running total, with `cached_input_tokens` a part of `input_tokens`), `item.completed` (tool
//! calls, and the last `agent_message` as the result text), `turn.failed` and `error` (failure,
//! and usage limits).

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use super::{
    Options, RunResult, Signal, StreamParser, TokenUsage, auth_failed, clip, json_line, limit,
    note_session,
};

/// The hook command: `sfctl guard check` (sfd decides and records the call). Codex blocks a
/// call only when its hook exits 2 *and* writes a reason on stderr; any other exit, an exit
/// 2 with nothing on stderr, or a timeout runs the call. So every failure of the guard
/// (an `sfctl` that cannot start, a crash, a guard that exits 1) becomes an exit 2 with a
/// line on stderr, and the timeout outlasts the guard's own deadline (a held call waits for
/// a human up to the policy's `hold_timeout`). Codex runs hooks with the user's login shell
/// (`$SHELL -lc`, else the account's shell), which may not be a POSIX one: the command is
/// `/bin/sh`'s, in single quotes that any shell passes through unchanged.
const HOOK_COMMAND: &str = "exec /bin/sh -c '\"$SF_SFCTL\" guard check --cli codex --deadline 2h || \
     { echo \"sf guard: the call is blocked (guard check exited $?)\" >&2; exit 2; }'";

/// The key under which Codex keeps the state (enabled, trusted) of the first `PreToolUse`
/// hook given with `-c`: its source is the `<session-flags>` layer.
const HOOK_KEY: &str = "/<session-flags>/config.toml:pre_tool_use:0:0";

/// The flags that install sf's hook, so that it runs before every tool call Codex hooks
/// (its shell, `apply_patch`, MCP and its other function tools) and the user's config
/// cannot turn it off. `-c` values form the session-flags layer, which wins over
/// `~/.codex/config.toml` and a project's `.codex/config.toml`:
///
/// - `--dangerously-bypass-hook-trust`: a hook that was never reviewed (trusted in the
///   user's config by its hash) is otherwise skipped silently;
/// - `features.hooks=true`: `[features] hooks = false` (or `codex_hooks`) turns hooks off;
/// - `hooks.state`: the hook enabled, whatever `[hooks.state."KEY"] enabled = false` says;
/// - `features.unified_exec_tty=false`: `write_stdin` (typing into a process an earlier
///   call started) runs no hook; without a TTY a process's stdin is closed, so each
///   command is one `exec_command` call, which the hook sees.
///
/// `--ignore-user-config` would also keep the user's config out, but it drops the model
/// provider, the model and the MCP servers configured there, which sf leaves to the user.
fn hook_args() -> Vec<String> {
    let command = serde_json::to_string(HOOK_COMMAND).unwrap_or_default();
    vec![
        "--dangerously-bypass-hook-trust".to_owned(),
        "-c".to_owned(),
        "features.hooks=true".to_owned(),
        "-c".to_owned(),
        "features.unified_exec_tty=false".to_owned(),
        "-c".to_owned(),
        format!(
            "hooks.PreToolUse=[{{matcher=\"*\",hooks=[{{type=\"command\",command={command},\
             timeout=7800}}]}}]"
        ),
        "-c".to_owned(),
        format!("hooks.state={{\"{HOOK_KEY}\"={{enabled=true}}}}"),
    ]
}

pub(super) fn args(opts: &Options<'_>) -> Vec<String> {
    let mut args: Vec<String> = [
        "exec",
        "--json",
        "--dangerously-bypass-approvals-and-sandbox",
        "--skip-git-repo-check",
        // Codex runs shell commands with `bash -lc` by default: a login shell resets PATH
        // from the profile, and `sfctl` (first on the PATH sf gives) is then not found
        "-c",
        "allow_login_shell=false",
    ]
    .map(String::from)
    .into();
    args.extend(hook_args());
    if let Some(model) = opts.model {
        args.extend(["--model".to_owned(), model.to_owned()]);
    }
    if let Some(effort) = opts.effort {
        args.extend([
            "-c".to_owned(),
            format!("model_reasoning_effort=\"{}\"", effort.as_str()),
        ]);
    }
    if let Some(session) = opts.resume {
        args.extend(["resume".to_owned(), session.to_owned()]);
    }
    args.push("-".to_owned());
    args
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ThreadStarted {
    thread_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Usage {
    input_tokens: u64,
    cached_input_tokens: u64,
    output_tokens: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TurnCompleted {
    usage: Option<Usage>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    message: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TurnFailed {
    error: ErrorBody,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorEvent {
    message: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Item {
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Older versions name the type `item_type`.
    item_type: Option<String>,
    text: Option<String>,
    server: Option<String>,
    tool: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ItemCompleted {
    item: Item,
}

/// State across the lines of one run.
#[derive(Default)]
pub(super) struct Parser {
    session: Option<String>,
    last_message: Option<String>,
}

impl StreamParser for Parser {
    fn feed_line_at(&mut self, line: &str, now: DateTime<FixedOffset>) -> Vec<Signal> {
        let mut out = Vec::new();
        let Some((kind, line)) = json_line(line, now, &mut out) else {
            return out;
        };
        match kind.as_str() {
            "thread.started" | "thread.resumed" => {
                if let Ok(ev) = serde_json::from_str::<ThreadStarted>(line) {
                    note_session(&mut self.session, ev.thread_id.as_deref(), &mut out);
                }
            }
            "turn.completed" => {
                if let Ok(ev) = serde_json::from_str::<TurnCompleted>(line) {
                    if let Some(u) = ev.usage {
                        out.push(Signal::Step);
                        let cached = u.cached_input_tokens.min(u.input_tokens);
                        out.push(Signal::Usage {
                            tokens: TokenUsage {
                                input_tokens: u.input_tokens - cached,
                                output_tokens: u.output_tokens,
                                cache_read_tokens: cached,
                                cache_write_tokens: 0,
                            },
                            cost_usd: None,
                            total: true,
                        });
                    }
                    out.push(Signal::Result(RunResult {
                        success: true,
                        text: clip(self.last_message.as_deref().unwrap_or("")),
                    }));
                }
            }
            "turn.failed" => {
                if let Ok(ev) = serde_json::from_str::<TurnFailed>(line) {
                    let message = ev.error.message.unwrap_or_else(|| "turn failed".to_owned());
                    if limit::is_usage_limit(&message) {
                        out.push(Signal::UsageLimit(limit::usage_limit(&message, now)));
                    } else {
                        out.extend(auth_failed(&message));
                    }
                    out.push(Signal::Result(RunResult {
                        success: false,
                        text: clip(&message),
                    }));
                }
            }
            "error" => {
                if let Ok(ev) = serde_json::from_str::<ErrorEvent>(line)
                    && let Some(message) = ev.message
                {
                    if limit::is_usage_limit(&message) {
                        out.push(Signal::UsageLimit(limit::usage_limit(&message, now)));
                    } else {
                        out.extend(auth_failed(&message));
                    }
                }
            }
            "item.completed" => {
                if let Ok(ev) = serde_json::from_str::<ItemCompleted>(line) {
                    self.item(ev.item, &mut out);
                }
            }
            _ => {}
        }
        out
    }
}

impl Parser {
    fn item(&mut self, item: Item, out: &mut Vec<Signal>) {
        let kind = item.kind.or(item.item_type).unwrap_or_default();
        match kind.as_str() {
            "agent_message" | "assistant_message" => self.last_message = item.text,
            "command_execution" | "file_change" | "web_search" => {
                out.push(Signal::ToolCall { name: kind });
            }
            "mcp_tool_call" => {
                let name = match (item.server, item.tool) {
                    (Some(server), Some(tool)) => format!("{server}.{tool}"),
                    (None, Some(tool)) => tool,
                    _ => kind,
                };
                out.push(Signal::ToolCall { name });
            }
            _ => {}
        }
    }
}
