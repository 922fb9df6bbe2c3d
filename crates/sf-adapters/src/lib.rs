#![warn(missing_docs)]
#![doc = include_str!("../README.md")]
//! Adapters for agent CLIs: from an agent's configuration to a command line, and from the CLI's
//! output back to structured [`Signal`]s.
//!
//! [`launch`] builds a [`Launch`]: a program, an argv and the prompt for stdin. It never builds a
//! shell string: a prompt or a title with quotes, `$()` or newlines reaches the CLI byte for byte,
//! on stdin. The prompt always goes on stdin rather than into argv, because Linux refuses a single
//! argument longer than 128 KiB and a prompt with handoff notes can grow past that. The caller
//! also writes the prompt to `prompt_file`, which every adapter names in `SF_PROMPT_FILE`, and
//! the [`Launch::files`] an adapter asks for (OpenCode's guard plugin, in a folder next to the
//! prompt file).
//!
//! A [`StreamParser`] reads the worker's log (stdout and stderr interleaved) one line at a time;
//! [`RunReport`] folds its signals into totals. Lines a parser does not understand, including
//! malformed JSON and stderr noise, are skipped.
//!
//! | adapter    | command line (before the optional per-agent prefix replaces the program) |
//! |------------|----------------------------------------------------------------------------|
//! | `claude`   | `claude -p --output-format stream-json --verbose --dangerously-skip-permissions --settings HOOKS --setting-sources "" [--model M] [--effort E] [--resume S]` |
//! | `codex`    | `codex exec --json --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check -c allow_login_shell=false --dangerously-bypass-hook-trust -c features.hooks=true -c features.unified_exec_tty=false -c hooks.PreToolUse=HOOK -c hooks.state=ENABLED [--model M] [-c model_reasoning_effort="E"] [resume S] -` |
//! | `opencode` | `opencode run --format json --model PROVIDER/MODEL [--variant E] [--session S]` (the model is required), sf's guard plugin added to `OPENCODE_CONFIG_CONTENT` |
//! | `command`  | the configured command line, split into words without a shell              |
//!
//! Permissions: an unattended worker must edit its worktree, run commands, commit (git writes the
//! main repository's `.git`, outside the worktree) and reach the daemon's socket with `sfctl`.
//! Claude Code in `-p` mode denies every tool that would prompt, so it gets
//! `--dangerously-skip-permissions` (Claude Code refuses it when run as root). Codex's
//! `workspace-write` sandbox cannot write the repository's `.git`, so it runs unsandboxed. OpenCode
//! allows edits and shell by default and `opencode run` auto-rejects anything that would ask, so
//! it gets no extra flag and the user's `opencode.json` stays in force.
//!
//! The guard: Claude Code runs `sfctl guard check` as its PreToolUse hook (`--settings`), and
//! OpenCode as a plugin's `tool.execute.before`, written by the caller ([`Launch::files`]) and
//! listed in `OPENCODE_CONFIG_CONTENT` (the one sfd passes through, with the plugin added).
//!
//! Sources (formats reconstructed from documentation, never from a live run):
//! - Claude Code headless mode and CLI reference (docs.claude.com/docs/claude-code/headless,
//!   .../cli-reference): `-p`, `--output-format stream-json` (needs `--verbose`), `--resume`,
//!   `--model`, `--effort`; the `system`/`init`, `assistant`, `result` messages
//!   (fields as in the SDK's `SDKResultMessage`); the `rate_limit_event` line
//!   (`rate_limit_info.status`, `resetsAt`, `rateLimitType`, anthropics/claude-code#77018); usage
//!   limit texts `Claude AI usage limit reached|<epoch>` (anthropics/claude-code#4048, #6119),
//!   `You've hit your session limit · resets 9am (Europe/Berlin)` (#86272, #51981).
//! - Codex `codex exec` (developers.openai.com/codex/noninteractive, openai/codex
//!   `codex-rs/exec/src/cli.rs`, `exec_events.rs`): `--json` JSONL `thread.started`,
//!   `turn.completed` (usage is the thread's running total), `turn.failed`, `item.completed`,
//!   `error`; `exec resume SESSION_ID PROMPT` with `-` reading stdin; usage limit texts from
//!   `UsageLimitReachedError` (`… Try again at 3:28 PM.`, older `… try again in 2 hours 5 minutes`).
//! - OpenCode `opencode run` (anomalyco/opencode `packages/opencode/src/cli/cmd/run.ts`):
//!   `--format json` lines `{type, timestamp, sessionID, part|error}` with types `step_start`,
//!   `text`, `tool_use`, `step_finish` (`part.tokens {input, output, reasoning, cache {read,
//!   write}}`, `part.cost`), `error`, `done`; piped stdin is the message when no positional is given
//!   (a positional with spaces is re-quoted by `run`, so the prompt goes on stdin instead);
//!   `--variant` is the provider-specific reasoning effort.

use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, Local};
use serde::{Deserialize, Serialize};
use sf_proto::{Adapter, Effort};

mod argv;
mod auth;
mod catalogue;
mod claude;
mod codex;
mod command;
mod limit;
mod opencode;
mod report;
pub mod transcript;

pub use argv::split_command;
pub use auth::auth_fix;
pub use catalogue::catalogue;
pub use report::{
    DEFAULT_PAUSE, MAX_PAUSE, MIN_PAUSE, RunReport, RunResult, UsageLimit, clamp_reset,
    report_from_log,
};

/// The name of the environment variable naming the file that holds the prompt.
pub const PROMPT_FILE_ENV: &str = "SF_PROMPT_FILE";

/// What [`launch`] needs to know about one run.
#[derive(Debug, Clone, Copy)]
pub struct LaunchInput<'a> {
    /// Which CLI.
    pub adapter: Adapter,
    /// The agent's `command`: for `command`, the whole command line; for the others, an optional
    /// replacement for the CLI's program (for example `/opt/claude/bin/claude` or
    /// `npx @openai/codex`). Split by [`split_command`]: words separated by whitespace, single and
    /// double quotes group, a backslash escapes; no variables, globs or other shell syntax.
    pub executable: Option<&'a str>,
    /// Model name, passed as is.
    pub model: Option<&'a str>,
    /// Reasoning effort, for the CLIs that take one.
    pub effort: Option<Effort>,
    /// The full prompt, sent on stdin.
    pub prompt: &'a str,
    /// Where the caller has written the same prompt; named in `SF_PROMPT_FILE`.
    pub prompt_file: &'a Path,
    /// A session of this CLI to continue (as reported by [`Signal::Session`]).
    pub resume_session: Option<&'a str>,
    /// OpenCode: the `OPENCODE_CONFIG_CONTENT` the run would get otherwise (passed through
    /// from sfd's environment), a JSON object; sf's guard plugin is added to its `plugin` list.
    pub opencode_config: Option<&'a str>,
}

/// A command line ready to spawn: program and argv, never a shell string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The executable, looked up in `PATH` if it has no slash.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Written to stdin, which is then closed.
    pub stdin: Option<String>,
    /// Environment to add on top of the worker's (cleared) environment.
    pub env: Vec<(String, String)>,
    /// Files the caller writes before the run, `(path, contents)`, each in a folder of its
    /// own that the caller creates and the run must be able to read (and should not write).
    pub files: Vec<(PathBuf, String)>,
}

/// Why no command line could be built.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The `command` adapter was given no command line.
    #[error("the `command` adapter needs a command line")]
    MissingCommand,
    /// The command line could not be split into words.
    #[error("failed to split command line `{command}`: {reason}")]
    BadCommand {
        /// The command line.
        command: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A model or session value that would be read as an option or is empty.
    #[error("invalid {what} `{value}`: must be non-empty, one line, and not start with `-`")]
    InvalidValue {
        /// `model` or `session`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// An OpenCode agent without `--model PROVIDER/MODEL`.
    #[error(
        "the `opencode` adapter needs an explicit --model PROVIDER/MODEL (got {got}): without one \
         OpenCode falls back to a hosted free model of a third party, which would receive the code"
    )]
    OpencodeModel {
        /// What was given.
        got: String,
    },
    /// The `OPENCODE_CONFIG_CONTENT` to add sf's guard plugin to is not a JSON object with a
    /// `plugin` list.
    #[error(
        "cannot add sf's guard plugin to the OPENCODE_CONFIG_CONTENT passed through: {reason}; \
         give OpenCode's settings as a JSON object (or in opencode.json)"
    )]
    OpencodeConfig {
        /// What is wrong with it.
        reason: String,
    },
    /// The prompt file's path cannot be put in the environment.
    #[error("prompt file path {} is not valid UTF-8", path.display())]
    NonUtf8PromptFile {
        /// The path.
        path: PathBuf,
    },
}

/// What the daemon follows of a run's output as it comes (see [`live`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Live {
    /// The model asked for a tool call.
    ToolUse {
        /// The CLI's id of the call.
        id: String,
        /// The tool.
        name: String,
    },
    /// A tool call's result came back (the call ran, or its hook blocked it).
    ToolResult {
        /// The CLI's id of the call.
        id: String,
    },
    /// A model message's tokens (a message may be reported more than once: count it once
    /// by its id).
    Usage {
        /// The message's id.
        message: String,
        /// Tokens in and out.
        tokens: u64,
    },
    /// What the run cost so far, as the CLI says (replaces earlier figures).
    Cost {
        /// US dollars.
        usd: f64,
    },
}

/// What one line of `adapter`'s output says live: the tool calls and their results, for
/// the CLIs whose every call sf's hook guards (Claude Code, OpenCode). Cheap on anything
/// else: a line that does not start as one of those messages is not parsed.
pub fn live(adapter: Adapter, line: &str) -> Vec<Live> {
    match adapter {
        Adapter::Claude => claude::live(line),
        Adapter::Opencode => opencode::live(line),
        _ => Vec::new(),
    }
}

/// Whether `adapter`'s CLI runs sf's guard before every tool call (Claude Code's hook,
/// OpenCode's plugin), so that a call seen in its output without a guard record was never
/// asked about.
///
/// Not Codex, though its calls pass sf's hook too: its `--json` items (`item_3`) do not
/// carry the model's call id that the hook reports (`call_0`), so an executed command
/// cannot be paired with its guard record.
pub fn guarded(adapter: Adapter) -> bool {
    matches!(adapter, Adapter::Claude | Adapter::Opencode)
}

/// The arguments that make `adapter`'s CLI stop itself once it has spent `usd` (Claude
/// Code's `--max-budget-usd`, which stops a turn late: sf stops the run too); none for the
/// CLIs that cannot.
pub fn budget_args(adapter: Adapter, usd: f64) -> Vec<String> {
    match adapter {
        Adapter::Claude => vec!["--max-budget-usd".to_owned(), format!("{usd:.4}")],
        _ => Vec::new(),
    }
}

/// Builds the command line for one run of `input.adapter`.
pub fn launch(input: &LaunchInput<'_>) -> Result<Launch, AdapterError> {
    let model = input.model.map(|m| checked("model", m)).transpose()?;
    let resume = input
        .resume_session
        .map(|s| checked("session", s))
        .transpose()?;
    let prompt_file =
        input
            .prompt_file
            .to_str()
            .ok_or_else(|| AdapterError::NonUtf8PromptFile {
                path: input.prompt_file.to_path_buf(),
            })?;
    if input.adapter == Adapter::Opencode {
        opencode_model(model)?;
    }
    let prefix = match input.executable {
        Some(cmd) => Some(split_command(cmd)?),
        None => None,
    };
    let opts = Options {
        model,
        effort: input.effort,
        resume,
    };
    let mut launch = match input.adapter {
        Adapter::Claude => with_prefix(prefix, "claude", claude::args(&opts)),
        Adapter::Codex => with_prefix(prefix, "codex", codex::args(&opts)),
        Adapter::Opencode => {
            let mut launch = with_prefix(prefix, "opencode", opencode::args(&opts));
            // sf's guard, as a plugin next to the prompt file
            let plugin = opencode::guard_plugin_path(input.prompt_file);
            let config = opencode::config_content(input.opencode_config, &plugin)
                .map_err(|reason| AdapterError::OpencodeConfig { reason })?;
            launch.env.push((opencode::CONFIG_ENV.to_owned(), config));
            launch
                .files
                .push((plugin, opencode::GUARD_PLUGIN.to_owned()));
            launch
        }
        Adapter::Command => {
            let words = prefix.ok_or(AdapterError::MissingCommand)?;
            let mut launch = with_prefix(Some(words), "", Vec::new());
            launch.env.extend(command::env(&opts));
            launch
        }
    };
    launch.stdin = Some(input.prompt.to_owned());
    launch
        .env
        .push((PROMPT_FILE_ENV.to_owned(), prompt_file.to_owned()));
    Ok(launch)
}

/// Checks an OpenCode agent's model: `PROVIDER/MODEL`, both parts non-empty.
pub fn opencode_model(model: Option<&str>) -> Result<(), AdapterError> {
    match model {
        Some(m)
            if m.split_once('/')
                .is_some_and(|(p, n)| !p.is_empty() && !n.is_empty()) =>
        {
            Ok(())
        }
        other => Err(AdapterError::OpencodeModel {
            got: other.map_or_else(|| "none".to_owned(), |m| format!("`{m}`")),
        }),
    }
}

/// The per-run options an adapter turns into flags.
struct Options<'a> {
    model: Option<&'a str>,
    effort: Option<Effort>,
    resume: Option<&'a str>,
}

fn checked<'a>(what: &'static str, value: &'a str) -> Result<&'a str, AdapterError> {
    let bad = value.is_empty()
        || value.starts_with('-')
        || value.contains(['\n', '\r', '\0'])
        || value.trim() != value;
    if bad {
        return Err(AdapterError::InvalidValue {
            what,
            value: value.to_owned(),
        });
    }
    Ok(value)
}

fn with_prefix(prefix: Option<Vec<String>>, default: &str, args: Vec<String>) -> Launch {
    let mut words = prefix
        .unwrap_or_else(|| vec![default.to_owned()])
        .into_iter();
    let program = words.next().unwrap_or_else(|| default.to_owned());
    let mut all: Vec<String> = words.collect();
    all.extend(args);
    Launch {
        program,
        args: all,
        stdin: None,
        env: Vec::new(),
        files: Vec::new(),
    }
}

/// Token counts. `input_tokens` excludes cached input, so the four add up to what was processed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
}

impl TokenUsage {
    /// The sum of all four counts.
    pub fn total(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// Each count added, saturating.
    #[must_use]
    pub fn saturating_add(self, other: Self) -> Self {
        Self {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            cache_read_tokens: self
                .cache_read_tokens
                .saturating_add(other.cache_read_tokens),
            cache_write_tokens: self
                .cache_write_tokens
                .saturating_add(other.cache_write_tokens),
        }
    }

    /// Each count less `other`'s, stopping at zero.
    #[must_use]
    pub fn saturating_sub(self, other: Self) -> Self {
        Self {
            input_tokens: self.input_tokens.saturating_sub(other.input_tokens),
            output_tokens: self.output_tokens.saturating_sub(other.output_tokens),
            cache_read_tokens: self
                .cache_read_tokens
                .saturating_sub(other.cache_read_tokens),
            cache_write_tokens: self
                .cache_write_tokens
                .saturating_sub(other.cache_write_tokens),
        }
    }

    fn max(self, other: Self) -> Self {
        Self {
            input_tokens: self.input_tokens.max(other.input_tokens),
            output_tokens: self.output_tokens.max(other.output_tokens),
            cache_read_tokens: self.cache_read_tokens.max(other.cache_read_tokens),
            cache_write_tokens: self.cache_write_tokens.max(other.cache_write_tokens),
        }
    }
}

/// Something a parser recognised in one line of a CLI's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The CLI's session id, for resuming.
    Session {
        /// The id.
        id: String,
    },
    /// Token usage and cost.
    Usage {
        /// The counts.
        tokens: TokenUsage,
        /// Cost in US dollars, when the CLI reports one.
        cost_usd: Option<f64>,
        /// `true`: these are the run's totals so far and replace earlier counts; `false`: they
        /// add to them.
        total: bool,
    },
    /// The model finished one step (a turn): what a `steps` budget counts.
    Step,
    /// The agent called a tool.
    ToolCall {
        /// The tool's name (`Bash`, `command_execution`, `edit`, ...).
        name: String,
    },
    /// The CLI hit its plan's usage limit.
    UsageLimit(UsageLimit),
    /// The CLI could not authenticate (not logged in, a key the API refuses).
    AuthFailed {
        /// The CLI's own words.
        message: String,
    },
    /// The run ended with this outcome.
    Result(RunResult),
}

/// Turns a CLI's output, one line at a time, into [`Signal`]s.
pub trait StreamParser: Send {
    /// Parses one line (without its newline). `now` anchors relative times such as "resets in 2
    /// hours"; its offset is the zone that clock times such as "resets 3pm" are read in.
    fn feed_line_at(&mut self, line: &str, now: DateTime<FixedOffset>) -> Vec<Signal>;

    /// [`StreamParser::feed_line_at`] with the system clock and local time zone.
    fn feed_line(&mut self, line: &str) -> Vec<Signal> {
        self.feed_line_at(line, Local::now().fixed_offset())
    }
}

/// A fresh parser for one run of `adapter`. The `command` adapter's output is not parsed.
pub fn parser(adapter: Adapter) -> Box<dyn StreamParser> {
    match adapter {
        Adapter::Claude => Box::new(claude::Parser::default()),
        Adapter::Codex => Box::new(codex::Parser::default()),
        Adapter::Opencode => Box::new(opencode::Parser::default()),
        Adapter::Command => Box::new(command::Parser),
    }
}

/// Whether a line of a run's output shows the agent making progress, as opposed to its CLI
/// waiting: an error notice or a retry (`Reconnecting... 2/5`, `waiting for network`) is
/// not progress, so a CLI that retries forever is still caught by `stall_timeout`. Every
/// other non-empty line is, whatever the adapter.
pub fn is_progress(adapter: Adapter, line: &str) -> bool {
    let line = line.trim();
    if line.is_empty() {
        return false;
    }
    if adapter == Adapter::Command {
        return true;
    }
    if line_type(line).as_deref() == Some("error") {
        return false;
    }
    // only the CLI's own notices are looked at: a long line is the model's or a tool's
    const NOTICE: usize = 600;
    if line.len() > NOTICE {
        return true;
    }
    let t = line.to_lowercase();
    ![
        "reconnecting",
        "retrying",
        "waiting for network",
        "api_retry",
    ]
    .iter()
    .any(|m| t.contains(m))
}

/// Whether a line says the CLI cannot get on whatever it retries: it reports an
/// authentication failure (Claude Code retries a refused key ten times over minutes, Codex
/// five). sf stops such a run at once rather than waiting for `stall_timeout`.
pub fn is_hopeless(adapter: Adapter, line: &str) -> bool {
    adapter != Adapter::Command
        && parser(adapter)
            .feed_line(line)
            .iter()
            .any(|s| matches!(s, Signal::AuthFailed { .. }))
}

/// Longest result text kept, in bytes.
const MAX_RESULT_TEXT: usize = 8 * 1024;

/// Cuts `text` to at most [`MAX_RESULT_TEXT`] bytes, on a character boundary.
fn clip(text: &str) -> String {
    if text.len() <= MAX_RESULT_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_RESULT_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The `type` of a JSON line, read without building the rest of it.
fn line_type(line: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str::<Head>(line).ok()?.kind
}

/// The opening every JSON-lines parser shares: a JSON line's `type` and the line trimmed;
/// `None` for a line without one, after looking at a line that is not JSON for a plain-text
/// usage limit (the CLI's stderr shares the log with its stdout).
fn json_line<'l>(
    line: &'l str,
    now: DateTime<FixedOffset>,
    out: &mut Vec<Signal>,
) -> Option<(String, &'l str)> {
    let Some(kind) = line_type(line) else {
        if !line.trim_start().starts_with('{') {
            out.extend(plain_line_limit(line, now));
        }
        return None;
    };
    Some((kind, line.trim()))
}

/// Pushes a [`Signal::Session`] when `id` is new.
fn note_session(current: &mut Option<String>, id: Option<&str>, out: &mut Vec<Signal>) {
    let Some(id) = id.filter(|id| !id.is_empty()) else {
        return;
    };
    if current.as_deref() != Some(id) {
        *current = Some(id.to_owned());
        out.push(Signal::Session { id: id.to_owned() });
    }
}

/// A usage limit or an authentication failure in a line that is not JSON (the CLI's stderr
/// shares the log with its stdout).
fn plain_line_limit(line: &str, now: DateTime<FixedOffset>) -> Option<Signal> {
    const MAX_PLAIN_LINE: usize = 1000;
    let line = line.trim();
    if line.is_empty() || line.len() > MAX_PLAIN_LINE {
        return None;
    }
    if limit::is_usage_limit(line) {
        return Some(Signal::UsageLimit(limit::usage_limit(line, now)));
    }
    auth_failed(line)
}

/// [`Signal::AuthFailed`] when `message`, an error the CLI reported, says it could not
/// authenticate.
fn auth_failed(message: &str) -> Option<Signal> {
    auth::is_auth_failure(message).then(|| Signal::AuthFailed {
        message: clip(message.trim()),
    })
}
