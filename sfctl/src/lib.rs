//! `sfctl`, the command-line client of sf, as a library so the test harness can run it
//! under another binary name (`sfctl-dup`).
//!
//! Layout (jj's): `cli` is the clap tree, `commands/*` one file per command group, `output`
//! prints (tables, JSON, colour), `error` maps failures to messages and exit codes, `context`
//! finds the workspace and connects. The socket is the only view of the system: this crate
//! never links rusqlite, git2, nix or tokio, so a command starts and ends in milliseconds.

#![forbid(unsafe_code)]

mod args;
mod cli;
mod commands;
mod context;
mod error;
mod git;
mod output;
#[cfg(test)]
mod snapshots;
mod time;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

pub use crate::cli::Cli;
use crate::cli::Command;
use crate::context::Context;
use crate::error::{CliErrorKind, CliResult};
use crate::output::Ui;

/// Parses the command line, runs the command, prints errors, returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() && wants_json(std::env::args_os()) {
                // a usage error under --json is a JSON document on stdout too
                let rendered = e.render().to_string();
                let (message, hint) = usage_error_parts(&rendered);
                let doc = serde_json::json!({
                    "error": { "kind": "usage", "message": message, "hint": hint }
                });
                println!("{doc}");
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let mut ui = Ui::new(cli.global.json, cli.global.verbose);
    ui.wide = cli.global.wide;
    let mut ctx = Context {
        global: cli.global,
        ui,
    };
    let result = run(&mut ctx, cli.command).and_then(|()| ctx.ui.flush());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind == CliErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            if ctx.ui.json && !err.result_printed {
                let _ = ctx.ui.json_value(&err.to_json());
            }
            let _ = ctx.ui.flush();
            let mut stderr = std::io::stderr().lock();
            match &err.reason_code {
                Some(code) => {
                    let _ = writeln!(stderr, "error: {} ({code})", err.message);
                }
                None => {
                    let _ = writeln!(stderr, "error: {}", err.message);
                }
            }
            if ctx.ui.verbose > 0 {
                for cause in &err.causes {
                    let _ = writeln!(stderr, "caused by: {cause}");
                }
            }
            for hint in &err.hints {
                let _ = writeln!(stderr, "hint: {hint}");
            }
            err.exit_code()
        }
    }
}

/// A clap usage error as `(message, hint)`: the error's own lines (without `error: `), then
/// its tips, or its usage line.
fn usage_error_parts(rendered: &str) -> (String, String) {
    let mut message = Vec::new();
    let mut tips = Vec::new();
    let mut usage = None;
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage: ") {
            usage = Some(u.to_owned());
        } else if let Some(t) = line.strip_prefix("tip: ") {
            tips.push(t.to_owned());
        } else if line.starts_with("For more information") {
        } else if usage.is_none() {
            message.push(line.trim_start_matches("error: ").to_owned());
        }
    }
    let hint = if tips.is_empty() {
        usage.map_or_else(
            || "see --help".to_owned(),
            |u| format!("usage: {u} (see --help)"),
        )
    } else {
        tips.join("; ")
    };
    (message.join(" "), hint)
}

/// Whether `--json` is among the arguments (before a `--`), even when they do not parse.
fn wants_json(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

fn run(ctx: &mut Context, command: Command) -> CliResult {
    match command {
        Command::Init(args) => commands::init::run(ctx, &args),
        Command::Daemon(cmd) => commands::daemon::run(ctx, cmd),
        Command::Agent(cmd) => commands::agent::run(ctx, cmd),
        Command::Approval(cmd) => commands::approval::run(ctx, cmd),
        Command::Adapters(_) => commands::approval::adapters(ctx),
        Command::Guard(cmd) => commands::guard::run(ctx, cmd),
        Command::Budget(cmd) => commands::budget::run(ctx, cmd),
        Command::Director => commands::logs::attach_director(ctx),
        Command::Seat(cmd) => commands::staff::seat(ctx, cmd),
        Command::Charter(cmd) => commands::staff::charter(ctx, cmd),
        Command::Skill(cmd) => commands::staff::skill(ctx, cmd),
        Command::Task(cmd) => commands::task::run(ctx, cmd),
        Command::Dep(cmd) => commands::dep::run(ctx, cmd),
        Command::Plan(cmd) => commands::plan::run(ctx, cmd),
        Command::Events(args) => commands::events::run(ctx, &args),
        Command::Logs(args) => commands::logs::run(ctx, &args),
        Command::Mr(cmd) => commands::mr::run(ctx, cmd),
        Command::Merge(args) => commands::mr::merge(ctx, &args),
        Command::Push(args) => commands::push::run(ctx, &args),
        Command::Gc(args) => commands::gc::run(ctx, &args),
        Command::Docs(cmd) => commands::docs::run(ctx, cmd, &clap_tree()),
        Command::Demo(args) => commands::demo::run(ctx, &args),
        Command::Playbook(cmd) => commands::playbook::run(ctx, cmd),
        Command::Steward(cmd) => commands::steward::run(ctx, cmd),
        Command::Event(cmd) => commands::steward::event(ctx, cmd),
        Command::Message(cmd) => commands::message::run(ctx, cmd),
        Command::Inbox(args) => commands::message::inbox(ctx, args),
        Command::DemoAgent => commands::demo::agent(ctx),
    }
}

/// sfctl's clap tree, built (help, version and global flags propagated): what `sfctl docs
/// check` holds the commands quoted in the docs against.
pub fn clap_tree() -> clap::Command {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}
