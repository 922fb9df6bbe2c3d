//! `sfctl`, the command-line client of sf, as a library so the test harness can run it
//! under another binary name (`sfctl-dup`).
//!
//! Layout (jj's): `cli` is the clap tree, `commands/*` one file per command group, `output`
//! prints (tables, JSON, colour), `error` maps failures to messages and exit codes, `context`
//! finds the workspace and connects. The socket is the only view of the system: this crate
//! never links rusqlite, git2, nix or tokio, so a command starts and ends in milliseconds.

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod context;
mod error;
mod output;
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
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let ui = Ui::new(cli.global.json, cli.global.verbose);
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
            let _ = writeln!(stderr, "error: {}", err.message);
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

fn run(ctx: &mut Context, command: Command) -> CliResult {
    match command {
        Command::Init(args) => commands::init::run(ctx, &args),
        Command::Daemon(cmd) => commands::daemon::run(ctx, cmd),
        Command::Agent(cmd) => commands::agent::run(ctx, cmd),
        Command::Task(cmd) => commands::task::run(ctx, cmd),
        Command::Dep(cmd) => commands::dep::run(ctx, cmd),
        Command::Plan(cmd) => commands::plan::run(ctx, cmd),
        Command::Events(args) => commands::events::run(ctx, &args),
        Command::Logs(args) => commands::logs::run(ctx, &args),
        Command::Mr(cmd) => commands::mr::run(ctx, cmd),
        Command::Merge(args) => commands::mr::merge(ctx, &args),
        Command::Docs(cmd) => commands::docs::run(ctx, cmd),
        Command::Demo(args) => commands::demo::run(ctx, &args),
        Command::Playbook(cmd) => commands::playbook::run(ctx, cmd),
        Command::Steward(cmd) => commands::steward::run(ctx, cmd),
        Command::Event(cmd) => commands::steward::event(ctx, cmd),
        Command::Message(cmd) => commands::message::run(ctx, cmd),
        Command::Inbox(args) => commands::message::inbox(ctx, args),
        Command::DemoAgent => commands::demo::agent(ctx),
    }
}
