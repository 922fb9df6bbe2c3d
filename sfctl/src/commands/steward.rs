//! `sfctl steward run|history` and `sfctl event emit`.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use sf_proto::{Request, Response, StewardRunInfo};

use crate::context::{Context, expect_response};
use crate::error::{CliError, CliResult};
use crate::output::{cell, or_dash, render_table_keeping};
use crate::time;

/// Fire stewards by hand and see what they did
#[derive(Debug, Subcommand)]
pub enum StewardCommand {
    /// Fire a steward now, through the same path as its triggers
    #[command(after_help = "\
Examples:
  sfctl steward run docs-keeper
  sfctl steward run fixer --data task=k3f9xq --data reason=flaky
  sfctl steward run docs-keeper --no-wait

sfctl waits for the run's outcome (progress on stderr) and exits 1 if it failed;
`--no-wait` returns once it started. A steward whose previous run is still going is not
started again: the fire is recorded as skipped.")]
    Run {
        /// The steward
        name: String,
        /// Data for the run, as an event would carry it (repeatable)
        #[arg(long = "data", value_name = "KEY=VALUE", value_parser = key_value)]
        data: Vec<(String, String)>,
        /// Return once the run started instead of waiting for its outcome
        #[arg(long)]
        no_wait: bool,
    },
    /// Every steward run (trigger, start, end, outcome, log), newest first
    #[command(after_help = "\
Examples:
  sfctl steward history
  sfctl steward history merger --limit 10
  sfctl steward history --json")]
    History {
        /// Only this steward
        name: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Publish events on the daemon's bus
#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Publish a custom event; stewards with a matching `--on` trigger fire
    #[command(after_help = "\
Examples:
  sfctl event emit deploy_finished --data env=prod --data version=1.4.2
  sfctl event emit nightly_done            # no data; fires `--on nightly_done` stewards")]
    Emit(EmitArgs),
}

/// `sfctl event emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {
    /// Event name: lowercase letters, digits and `_`
    pub name: String,
    /// Event data (repeatable)
    #[arg(long = "data", value_name = "KEY=VALUE", value_parser = key_value)]
    pub data: Vec<(String, String)>,
}

/// Parses `key=value`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

fn render(ctx: &mut Context, runs: &[StewardRunInfo]) -> CliResult {
    let text = render_runs(runs, ctx.ui.color, ctx.ui.width(), chrono::Utc::now());
    ctx.ui.line(text)
}

/// The history table: RUN STEWARD TRIGGER STARTED ENDED OUTCOME RESULT LOG.
pub fn render_runs(
    runs: &[StewardRunInfo],
    color: bool,
    width: Option<u16>,
    now: sf_proto::Timestamp,
) -> String {
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                cell(color, r.id, None),
                cell(color, &r.steward, None),
                cell(color, &r.trigger, None),
                cell(color, time::relative(r.started_at, now), None),
                cell(
                    color,
                    r.ended_at
                        .map_or_else(|| "running".to_owned(), |e| time::relative(e, now)),
                    None,
                ),
                cell(color, or_dash(r.outcome.as_deref()), None),
                cell(color, r.result.as_deref().unwrap_or("-"), None),
                cell(color, or_dash(r.log_path.as_deref()), None),
            ]
        })
        .collect();
    // a trigger cut short (`cron: 0 9 *…`) says nothing: it stays whole while it can
    render_table_keeping(
        &[
            "RUN", "STEWARD", "TRIGGER", "STARTED", "ENDED", "OUTCOME", "RESULT", "LOG",
        ],
        rows,
        color,
        width,
        &["TRIGGER"],
    )
}

/// Polls the steward's history until run `id` has ended.
fn wait_for_run(
    ctx: &mut Context,
    steward: &str,
    id: sf_proto::RunId,
) -> CliResult<StewardRunInfo> {
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        let resp = ctx.request(&Request::StewardHistory {
            name: Some(steward.to_owned()),
            limit: Some(20),
        })?;
        let runs = expect_response!(resp, Response::StewardRuns(r) => r);
        match runs.into_iter().find(|r| r.id == id) {
            Some(r) if r.ended_at.is_some() => return Ok(r),
            Some(_) => {}
            None => {
                return Err(CliError::internal(format!(
                    "steward run {id} is no longer in its history"
                )));
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(500));
    }
}

pub fn run(ctx: &mut Context, cmd: StewardCommand) -> CliResult {
    match cmd {
        StewardCommand::Run {
            name,
            data,
            no_wait,
        } => {
            let data: BTreeMap<String, String> = data.into_iter().collect();
            let resp = ctx.request(&Request::RunSteward { name, data })?;
            let mut r = expect_response!(resp, Response::StewardRun(r) => r);
            if r.outcome.as_deref() == Some("skipped") {
                return ctx.ui.emit(&r, |ui, r| {
                    ui.line(format!(
                        "steward {}: skipped (its previous run is still going), run {}",
                        r.steward, r.id
                    ))
                });
            }
            if no_wait {
                return ctx.ui.emit(&r, |ui, r| {
                    ui.line(format!(
                        "started steward {} (run {}); follow it with `sfctl steward history {}`",
                        r.steward, r.id, r.steward
                    ))
                });
            }
            if r.ended_at.is_none() {
                ctx.ui
                    .status(format!("steward {} running (run {})…", r.steward, r.id));
                r = wait_for_run(ctx, &r.steward, r.id)?;
            }
            let ok = r.outcome.as_deref() == Some("ok");
            ctx.ui.emit(&r, |ui, r| {
                ui.line(format!(
                    "steward {} run {}: {}{}",
                    r.steward,
                    r.id,
                    r.outcome.as_deref().unwrap_or("?"),
                    r.result
                        .as_deref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default()
                ))
            })?;
            if ok {
                return Ok(());
            }
            let mut err = CliError::refused(
                "steward_failed",
                format!(
                    "steward {} run {} ended {}: {}",
                    r.steward,
                    r.id,
                    r.outcome.as_deref().unwrap_or("?"),
                    r.result.as_deref().unwrap_or("no result")
                ),
            )
            .with_hint(format!(
                "see `sfctl steward history {}` and the run's log",
                r.steward
            ));
            if ctx.ui.json {
                err = err.with_result_printed();
            }
            Err(err)
        }
        StewardCommand::History { name, limit } => {
            let resp = ctx.request(&Request::StewardHistory {
                name,
                limit: Some(limit),
            })?;
            let runs = expect_response!(resp, Response::StewardRuns(r) => r);
            if ctx.ui.json {
                return ctx.ui.json_value(&runs);
            }
            if runs.is_empty() {
                ctx.ui.status("no steward has run yet");
                return Ok(());
            }
            render(ctx, &runs)
        }
    }
}

pub fn event(ctx: &mut Context, cmd: EventCommand) -> CliResult {
    let EventCommand::Emit(EmitArgs { name, data }) = cmd;
    if name.trim().is_empty() {
        return Err(CliError::user("the event name must not be empty"));
    }
    let data: BTreeMap<String, String> = data.into_iter().collect();
    let resp = ctx.request(&Request::EmitEvent {
        name: name.clone(),
        data,
    })?;
    let message = expect_response!(resp, Response::Ok { message } => message);
    ctx.ui.emit_message(&message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_key_equals_value() {
        assert_eq!(key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(key_value("k=").unwrap(), ("k".into(), String::new()));
        assert!(key_value("novalue").is_err());
        assert!(key_value("=v").is_err());
    }
}
