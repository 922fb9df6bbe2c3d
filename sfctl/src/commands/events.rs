//! `sfctl events`: the audit log, optionally followed live.

use std::time::{Duration, Instant};

use clap::Args;
use comfy_table::Color;
use sf_client::ClientError;
use sf_proto::{AuditEvent, EventId, FrameError, Request, Response};

use crate::args::check_id;
use crate::context::Context;
use crate::context::expect_response;
use crate::error::{CliError, CliErrorKind, CliResult};
use crate::output::{Ui, paint};
use crate::time;

/// Show the audit log: who changed what, when and why
#[derive(Debug, Args)]
#[command(
    long_about = "\
Show the audit log, one line per event: `#ID  TIME  ACTOR  ACTION  SUBJECT  REASON`.

With --follow, print new events as they happen until the daemon closes the stream (Ctrl-C to
stop); with --retry too, a stream the daemon closes (a restart) is reconnected, with a note on
stderr, and resumes after the last event printed, none twice and none left out. With --json,
print one JSON object per event per line (JSON Lines), with or without --follow.",
    after_help = "\
Examples:
  sfctl events --limit 20
  sfctl events --task k3f9xq
  sfctl events --follow --json | jq -r .action
  sfctl events --follow --retry            # goes on across `sfctl daemon restart`
  sfctl events --denied                    # what the guard refused, and to whom"
)]
pub struct EventsArgs {
    /// Keep printing new events as they happen
    #[arg(short, long)]
    pub follow: bool,
    /// With --follow: when sfd closes the stream (it restarted), reconnect and go on after the
    /// last event printed, waiting longer between tries while it is away
    #[arg(long, requires = "follow")]
    pub retry: bool,
    /// Only events after this id
    #[arg(long, value_name = "ID", value_parser = parse_event_id)]
    pub since: Option<EventId>,
    /// Only events about this task
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// At most this many (the newest)
    #[arg(long, value_name = "N", conflicts_with = "follow")]
    pub limit: Option<u32>,
    /// Only denials: requests and spawns the guard refused, connections the egress proxy
    /// refused (`request_denied`, `spawn_denied`, `egress_denied`)
    #[arg(long, conflicts_with = "follow")]
    pub denied: bool,
}

fn parse_event_id(s: &str) -> Result<EventId, String> {
    s.parse::<EventId>()
        .map_err(|_| format!("`{s}` is not an event id (expected a number)"))
}

pub fn run(ctx: &mut Context, args: &EventsArgs) -> CliResult {
    let task = args.task.as_deref().map(check_id).transpose()?;
    if !args.follow {
        let req = Request::ListEvents {
            since: args.since,
            task,
            limit: args.limit,
            denied: args.denied,
        };
        let resp = ctx.request(&req)?;
        let events = expect_response!(resp, Response::Events(e) => e);
        for e in &events {
            print_event(&mut ctx.ui, e)?;
        }
        return Ok(());
    }
    let mut last = args.since;
    if args.retry && last.is_none() {
        // where the stream starts, so that a reconnect before any event resumes there
        let req = Request::ListEvents {
            since: None,
            task: task.clone(),
            limit: Some(1),
            denied: false,
        };
        let resp = ctx.request(&req)?;
        let events = expect_response!(resp, Response::Events(e) => e);
        last = Some(events.iter().map(|e| e.id).max().unwrap_or(EventId(0)));
    }
    let mut backoff = FIRST_RETRY;
    let mut away = false;
    loop {
        let client = match ctx.connect() {
            Ok(c) => c,
            Err(e) if away && e.kind == CliErrorKind::Unreachable => {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_RETRY);
                continue;
            }
            Err(e) => return Err(e),
        };
        if away {
            ctx.ui.status(format!(
                "note: reconnected to sfd (pid {}); going on after {}",
                client.daemon_pid,
                last.map_or_else(|| "the start".to_owned(), |id| format!("event #{id}"))
            ));
        }
        let connected = Instant::now();
        let seen = last;
        follow(ctx, client, task.clone(), &mut last)?;
        if !args.retry {
            return Err(stream_closed(last, args.task.as_deref(), ctx.ui.json));
        }
        ctx.ui.status(
            "note: sfd closed the stream (it stopped or restarted); reconnecting (--retry)",
        );
        away = true;
        // a stream that breaks at once again (sfd still shutting down) is retried later
        // each time; one that carried events or lasted starts the wait afresh
        if last != seen || connected.elapsed() > MAX_RETRY {
            backoff = FIRST_RETRY;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_RETRY);
    }
}

/// The first wait before reconnecting a broken stream, doubled at each try up to the last.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Follows the stream after `last` (updated as events are printed) until sfd closes it
/// (`Ok`), or fails.
fn follow(
    ctx: &mut Context,
    mut client: sf_client::Client,
    task: Option<String>,
    last: &mut Option<EventId>,
) -> CliResult {
    client
        .set_read_timeout(None)
        .map_err(|e| CliError::io("failed to set up the stream", &e))?;
    client.send(&Request::FollowEvents { since: *last, task })?;
    loop {
        match client.recv() {
            Ok(Response::Event(e)) => {
                print_event(&mut ctx.ui, &e)?;
                ctx.ui.flush()?;
                *last = Some(e.id);
            }
            Ok(Response::Lagged { skipped }) => {
                ctx.ui
                    .warn(format!("fell behind; {skipped} events were skipped"));
            }
            Ok(Response::Events(batch)) => {
                for e in &batch {
                    print_event(&mut ctx.ui, e)?;
                }
                ctx.ui.flush()?;
                *last = batch.last().map(|e| e.id).or(*last);
            }
            Ok(Response::Ok { .. }) => {}
            Ok(Response::Error(e)) => return Err(e.into()),
            Ok(other) => return Err(CliError::unexpected(&other)),
            Err(e) if stream_ended(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the daemon went away under a stream (it stopped, crashed or restarted).
pub(crate) fn stream_ended(e: &ClientError) -> bool {
    match e {
        ClientError::Frame(FrameError::Closed) => true,
        ClientError::Frame(FrameError::Io(io)) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

/// The end of a followed stream is not a success: whoever watches (a script, a steward)
/// must be able to tell it apart from Ctrl-C. Exit 3, with how to pick up where it stopped.
/// Under `--json` stdout stays pure JSON Lines of events.
fn stream_closed(last: Option<EventId>, task: Option<&str>, json: bool) -> CliError {
    let mut resume = "sfctl events --follow".to_owned();
    if let Some(id) = last {
        resume.push_str(&format!(" --since {id}"));
    }
    if let Some(task) = task {
        resume.push_str(&format!(" --task {task}"));
    }
    let mut err = CliError::unreachable("sfd closed the stream (it stopped or restarted)");
    err.hints = vec![format!(
        "once sfd is back, `{resume}` continues where this stopped"
    )];
    if json {
        err = err.with_result_printed();
    }
    err
}

fn print_event(ui: &mut Ui, e: &AuditEvent) -> CliResult {
    if ui.json {
        ui.json_value(e)
    } else {
        let line = event_line(e, ui.color, ui.width());
        ui.line(line)
    }
}

/// `#12     2025-05-01 12:00:07Z  human:alice   task_created  task:k3f9xq  why`: one line
/// (a reason of several lines shows its first and `…`), cut to `width` with `…`.
pub fn event_line(e: &AuditEvent, color: bool, width: Option<u16>) -> String {
    let id = format!("#{:<5}", e.id);
    let head = format!(
        "{id} {}  {:<14} {:<20} {:<14}",
        time::short(e.at),
        e.actor,
        e.action,
        e.subject,
    );
    let reason = crate::output::one_line(e.reason.as_deref().unwrap_or_default());
    let line = match width.map(usize::from) {
        _ if reason.is_empty() => head.trim_end().to_owned(),
        None => format!("{head} {reason}"),
        // the reason gives way; the columns before it stay whole
        Some(w) => match w.saturating_sub(head.chars().count() + 1) {
            // no room: `--wide` shows it
            0 => head.trim_end().to_owned(),
            room => format!("{head} {}", crate::output::cut(&reason, room)),
        },
    };
    let rest = &line[id.len()..];
    format!("{}{rest}", paint(color, &id, Some(Color::DarkGrey)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_stream_is_exit_3_with_how_to_resume() {
        let err = stream_closed(Some(EventId(41)), Some("k3f"), false);
        assert_eq!(err.exit_code(), std::process::ExitCode::from(3));
        assert_eq!(
            err.message,
            "sfd closed the stream (it stopped or restarted)"
        );
        assert_eq!(
            err.hints,
            [
                "once sfd is back, `sfctl events --follow --since 41 --task k3f` continues where \
              this stopped"
            ]
        );
        assert!(!err.result_printed);
        assert!(stream_closed(None, None, true).result_printed);
        assert!(stream_ended(&ClientError::Frame(FrameError::Closed)));
        assert!(stream_ended(&ClientError::Frame(FrameError::Io(
            std::io::ErrorKind::ConnectionReset.into()
        ))));
        assert!(!stream_ended(&ClientError::Unexpected("x".into())));
    }

    #[test]
    fn event_lines_are_aligned() {
        let e = AuditEvent {
            id: EventId(12),
            at: "2025-05-01T12:00:07Z".parse().unwrap(),
            actor: "human:alice".into(),
            action: "task_created".into(),
            subject: "task:k3f9xq".into(),
            task: None,
            before: None,
            after: None,
            reason: None,
        };
        assert_eq!(
            event_line(&e, false, None),
            "#12    2025-05-01 12:00:07Z  human:alice    task_created         task:k3f9xq"
        );
    }
}
