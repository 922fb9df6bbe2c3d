//! `sfctl guard check`: the hook an agent's CLI runs before each tool call. It reads the
//! call from stdin, asks sfd, and blocks the call (exit 2, the reason on stderr, which the
//! CLI gives the model) on a denial and on anything that keeps sfd from answering: it fails
//! closed.

use std::io::Read as _;
use std::time::Duration;

use clap::{Args, Subcommand};
use sf_proto::{Request, Response};

use crate::context::{Context, LEASE_ENV};
use crate::error::{CliError, CliResult};

/// For agents' CLIs: the guard each tool call passes (installed by sfd as a hook)
#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    Check(CheckArgs),
}

/// Ask sfd whether a tool call may run: exit 0 to run it, 2 to block it
///
/// Reads the CLI's hook input on stdin (Claude Code's PreToolUse JSON: `tool_name`,
/// `tool_input`, `tool_use_id`), asks sfd with the run's lease (SF_RUN), and exits 0 when the
/// call is allowed. A denial, a held call a human did not approve in time, an unreachable
/// sfd, a malformed input: exit 2 with the reason on stderr, which blocks the call.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sfctl guard check < call.json        # {\"tool_name\":\"Bash\",\"tool_input\":{\"command\":\"ls\"}}
  sfctl guard check --deadline 10m     # wait at most 10 minutes for a held call
  # as sfd installs it for Claude Code (--settings), failing closed:
  #   \"$SF_SFCTL\" guard check --deadline 2h || exit 2")]
pub struct CheckArgs {
    /// How long to wait for sfd's answer; a held call waits for a human up to the
    /// policy's hold_timeout
    #[arg(long, value_name = "DURATION", default_value = "1h",
          value_parser = humantime::parse_duration)]
    pub deadline: Duration,
}

/// The most hook input read from stdin.
const MAX_INPUT: u64 = 4 << 20;

pub fn run(ctx: &mut Context, cmd: GuardCommand) -> CliResult {
    match cmd {
        GuardCommand::Check(args) => check(ctx, &args).map_err(|e| {
            if e.kind == crate::error::CliErrorKind::Blocked {
                e
            } else {
                // whatever kept the guard from answering blocks the call
                let mut b = CliError::blocked(format!(
                    "sf guard: the call is blocked because the guard could not decide: {}",
                    e.message
                ));
                b.hints = e.hints;
                b
            }
        }),
    }
}

fn check(ctx: &mut Context, args: &CheckArgs) -> CliResult {
    let token = std::env::var(LEASE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| CliError::user(format!("{LEASE_ENV} is not set: not inside a run")))?;
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_INPUT)
        .read_to_string(&mut text)
        .map_err(|e| CliError::io("failed to read the hook input", &e))?;
    let hook: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::user(format!("the hook input is not JSON: {e}")))?;
    let tool = hook["tool_name"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CliError::user("the hook input names no `tool_name`"))?
        .to_owned();
    let request = Request::GuardToolCall {
        token,
        source: "hook".into(),
        tool,
        call_id: hook["tool_use_id"].as_str().map(str::to_owned),
        input: hook["tool_input"].clone(),
    };
    // an unreachable sfd blocks at once: the call waits for nobody
    let socket = ctx.socket()?;
    let mut client = ctx.connect_once(&socket)?;
    client.set_reply_timeout(args.deadline);
    let answer = match client.request(&request)? {
        Response::ToolAnswer(a) => a,
        other => return Err(CliError::unexpected(&other)),
    };
    if ctx.ui.json {
        ctx.ui.json_value(&answer)?;
    }
    if answer.allow {
        Ok(())
    } else {
        Err(CliError::blocked(format!(
            "sf guard: {} ({})",
            answer.reason, answer.decision
        )))
    }
}
