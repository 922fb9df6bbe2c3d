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
/// Reads the CLI's hook input on stdin (PreToolUse JSON: `tool_name`, `tool_input`,
/// `tool_use_id`, as Claude Code and Codex send it), asks sfd with the run's lease (SF_RUN),
/// and exits 0 when the call is allowed. A denial, a held call a human did not approve in
/// time, an unreachable sfd, a malformed input: exit 2 with the reason on stderr, which
/// blocks the call.
///
/// With `--cli codex`, Codex's tool names become the policy's (Claude Code's): `Bash` is
/// Codex's shell too; `apply_patch` is asked as `Write` for the files it adds and `Edit`
/// for those it changes, deletes or moves (absolute paths, one a line), and blocked if
/// either is denied; `view_image` is `Read`; MCP tools are `mcp__SERVER__TOOL` in both.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sfctl guard check < call.json        # {\"tool_name\":\"Bash\",\"tool_input\":{\"command\":\"ls\"}}
  sfctl guard check --cli codex --deadline 2h < call.json
  sfctl guard check --deadline 10m     # wait at most 10 minutes for a held call
  # as sfd installs it for Claude Code (--settings), failing closed:
  #   \"$SF_SFCTL\" guard check --deadline 2h || exit 2
  # for Codex (-c hooks.PreToolUse=...), which needs a reason on stderr to block:
  #   exec /bin/sh -c '\"$SF_SFCTL\" guard check --cli codex || { echo \"sf guard: ...\" >&2; exit 2; }'")]
pub struct CheckArgs {
    /// How long to wait for sfd's answer; a held call waits for a human up to the
    /// policy's hold_timeout
    #[arg(long, value_name = "DURATION", default_value = "1h",
          value_parser = humantime::parse_duration)]
    pub deadline: Duration,
    /// Whose hook input this is: its tool names are mapped to the policy's
    #[arg(long, value_enum, default_value = "claude")]
    pub cli: HookCli,
}

/// The CLI whose hook runs `guard check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HookCli {
    /// Claude Code: its names are the policy's
    Claude,
    /// Codex: `apply_patch` and `view_image` are mapped
    Codex,
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
    let asks = asks(args.cli, &hook)?;
    // an unreachable sfd blocks at once: the call waits for nobody
    let socket = ctx.socket()?;
    let mut client = ctx.connect_once(&socket)?;
    client.set_reply_timeout(args.deadline);
    // every ask is recorded; the first denial blocks the call
    for (tool, input) in asks {
        let request = Request::GuardToolCall {
            token: token.clone(),
            source: "hook".into(),
            tool,
            call_id: hook["tool_use_id"].as_str().map(str::to_owned),
            input,
        };
        let answer = match client.request(&request)? {
            Response::ToolAnswer(a) => a,
            other => return Err(CliError::unexpected(&other)),
        };
        if ctx.ui.json {
            ctx.ui.json_value(&answer)?;
        }
        if !answer.allow {
            return Err(CliError::blocked(format!(
                "sf guard: {} ({})",
                answer.reason, answer.decision
            )));
        }
    }
    Ok(())
}

/// What to ask sfd about one hook input: a tool in the policy's names and its input, one
/// ask for most calls, one per kind of change for a Codex patch.
fn asks(cli: HookCli, hook: &serde_json::Value) -> CliResult<Vec<(String, serde_json::Value)>> {
    let tool = hook["tool_name"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CliError::user("the hook input names no `tool_name`"))?;
    let input = hook["tool_input"].clone();
    Ok(match (cli, tool) {
        (HookCli::Codex, "apply_patch") => {
            let patch = input["command"].as_str().unwrap_or_default();
            let cwd = hook["cwd"].as_str().map(std::path::Path::new);
            patch_asks(patch, cwd).unwrap_or_else(|| vec![("Edit".to_owned(), input)])
        }
        (HookCli::Codex, "view_image") => vec![("Read".to_owned(), input)],
        _ => vec![(tool.to_owned(), input)],
    })
}

/// A Codex patch as Claude Code's tools: `Write` for the files it adds, `Edit` for those it
/// updates, deletes or moves (both ends of a move), each `{"file_path": "A\nB"}` with the
/// paths made absolute against `cwd`. `None` when the patch names no file.
fn patch_asks(
    patch: &str,
    cwd: Option<&std::path::Path>,
) -> Option<Vec<(String, serde_json::Value)>> {
    let (mut written, mut edited) = (Vec::new(), Vec::new());
    for line in patch.lines() {
        let line = line.trim_end();
        let (list, path) = if let Some(p) = line.strip_prefix("*** Add File: ") {
            (&mut written, p)
        } else if let Some(p) = line
            .strip_prefix("*** Update File: ")
            .or_else(|| line.strip_prefix("*** Delete File: "))
            .or_else(|| line.strip_prefix("*** Move to: "))
        {
            (&mut edited, p)
        } else {
            continue;
        };
        let path = std::path::Path::new(path.trim());
        let path = match cwd {
            Some(cwd) if path.is_relative() => cwd.join(path),
            _ => path.to_path_buf(),
        };
        list.push(path.display().to_string());
    }
    let asks: Vec<_> = [("Write", written), ("Edit", edited)]
        .into_iter()
        .filter(|(_, paths)| !paths.is_empty())
        .map(|(tool, paths)| {
            (
                tool.to_owned(),
                serde_json::json!({"file_path": paths.join("\n")}),
            )
        })
        .collect();
    (!asks.is_empty()).then_some(asks)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{HookCli, asks};

    fn names(cli: HookCli, hook: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
        asks(cli, hook).unwrap()
    }

    #[test]
    fn claude_and_codex_shell_calls_are_asked_as_they_come() {
        let hook = json!({"tool_name": "Bash", "tool_input": {"command": "git push"},
                          "tool_use_id": "call_0"});
        for cli in [HookCli::Claude, HookCli::Codex] {
            assert_eq!(
                names(cli, &hook),
                [("Bash".to_owned(), json!({"command": "git push"}))]
            );
        }
        let mcp = json!({"tool_name": "mcp__gh__create_pr", "tool_input": {"title": "x"}});
        assert_eq!(names(HookCli::Codex, &mcp)[0].0, "mcp__gh__create_pr");
        assert!(asks(HookCli::Codex, &json!({"tool_input": {}})).is_err());
    }

    #[test]
    fn a_codex_patch_is_asked_as_writes_and_edits_of_absolute_paths() {
        let patch = "*** Begin Patch\n*** Add File: new.env\n+K=V\n*** Update File: src/a.rs\n\
                     @@\n-x\n+y\n*** Move to: src/b.rs\n*** Delete File: /w/old.txt\n*** End Patch\n";
        let hook = json!({"tool_name": "apply_patch", "cwd": "/w",
                          "tool_input": {"command": patch}});
        assert_eq!(
            names(HookCli::Codex, &hook),
            [
                ("Write".to_owned(), json!({"file_path": "/w/new.env"})),
                (
                    "Edit".to_owned(),
                    json!({"file_path": "/w/src/a.rs\n/w/src/b.rs\n/w/old.txt"})
                ),
            ]
        );
        // a patch that names no file is still asked about, as an edit
        let odd = json!({"tool_name": "apply_patch", "tool_input": {"command": "junk"}});
        assert_eq!(
            names(HookCli::Codex, &odd),
            [("Edit".to_owned(), json!({"command": "junk"}))]
        );
        // Claude Code has no such tool: its name is kept
        assert_eq!(names(HookCli::Claude, &hook)[0].0, "apply_patch");
    }

    #[test]
    fn codex_view_image_is_a_read() {
        let hook = json!({"tool_name": "view_image", "tool_input": {"path": "/w/a.png"}});
        assert_eq!(
            names(HookCli::Codex, &hook),
            [("Read".to_owned(), json!({"path": "/w/a.png"}))]
        );
    }
}
