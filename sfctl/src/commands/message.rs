//! `sfctl message send|read|reply|list` and `sfctl inbox`: messages between agents and
//! humans, routed by the daemon.

use std::io::Read;

use clap::{Args, Subcommand};
use sf_proto::{MessageId, MessageInfo, MessageType, NewMessage, Request, Response};

use crate::context::{Context, expect_response};
use crate::error::{CliError, CliResult};
use crate::output::{key_values, or_dash, truncate};
use crate::time;

/// Longest text read from stdin; the daemon refuses anything over 64 KiB with a clear error,
/// so reading more than that only wastes memory.
const STDIN_CAP: u64 = 64 * 1024 + 1;

/// Send and read messages between agents and humans
#[derive(Debug, Subcommand)]
#[command(long_about = "\
Send and read messages between agents and humans.

Addresses: an agent's name; `director` (the director the sender reports to, or else the
first enabled one by name); `human` (the operators); or `task:ID` (whoever works on that
task: the message is put in the prompt of every later run of it). A message to `director`
with no enabled director becomes a backlog task, so nothing that needs a decision is
dropped; no worker takes backlog tasks. Only its recipient's reading marks a message read.

Inside a run (SF_RUN is set) the sender is the run's agent and the message is about its task
by default; a run whose lease has ended cannot send.")]
pub enum MessageCommand {
    /// Send a message
    #[command(after_help = "\
Examples:
  sfctl message send --to director \"Should the cache be per-user or global?\"
  sfctl message send --task k3f9xq \"Use the v2 API; v1 is going away\"
  sfctl message send --to w1 --subject \"Logs\" - < notes.txt
  sfctl message send --to p-worker-1 --type task-assignment \"Add the /health endpoint\"")]
    Send(SendArgs),
    /// Print messages in full and mark them read
    Read {
        /// Message ids
        #[arg(required = true, value_name = "ID", value_parser = parse_message_id)]
        ids: Vec<MessageId>,
    },
    /// Answer a message: to its sender, about the same task
    #[command(after_help = "\
Examples:
  sfctl message reply 12 \"Per-user; see the design note in docs/cache.md\"
  git diff --stat | sfctl message reply 12 -    # the text from stdin")]
    Reply {
        /// The message to answer
        #[arg(value_parser = parse_message_id)]
        id: MessageId,
        /// The text (`-` reads it from stdin)
        text: String,
    },
    /// Every message, newest first
    List {
        /// Only messages to this recipient (repeatable)
        #[arg(long, value_name = "WHO")]
        to: Vec<String>,
        /// Only unread ones
        #[arg(long)]
        unread: bool,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// `sfctl message send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The text (`-` reads it from stdin)
    pub text: String,
    /// Who it is for: an agent, `director`, `human` or `task:ID`
    #[arg(long, value_name = "WHO")]
    pub to: Option<String>,
    /// The task it is about (without --to: for whoever works on it)
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// One line (default: the text's first line)
    #[arg(long)]
    pub subject: Option<String>,
    /// The message it answers
    #[arg(long, value_name = "ID", value_parser = parse_message_id)]
    pub reply_to: Option<MessageId>,
    /// What it is for: the daemon routes it by recipient (a persistent worker's session
    /// gets it as its next turn; an idle ephemeral worker's messages gather for a triage run)
    #[arg(long = "type", value_parser = crate::args::wire::<MessageType>(), default_value = "generic")]
    pub kind: MessageType,
}

/// Your unread messages (`--all` for read ones too)
#[derive(Debug, Args)]
#[command(
    long_about = "\
Your messages, newest first: unread ones, or all with --all.

Whose: --for WHO if given; inside a run, its agent's and its task's (SF_AGENT, SF_TASK_ID);
in an agent's session, that agent's (SF_AGENT); else `human`. Reading the list does not mark
messages read: `sfctl message read ID` does.

With --follow, print each new message as it arrives until Ctrl-C.",
    after_help = "\
Examples:
  sfctl inbox
  sfctl inbox --for director-1 --all
  sfctl inbox --follow --json"
)]
pub struct InboxArgs {
    /// Read messages too
    #[arg(long)]
    pub all: bool,
    /// Keep printing new messages as they arrive
    #[arg(short, long)]
    pub follow: bool,
    /// Whose inbox (repeatable): an agent, `human`, `human:NAME` (a seat's steward) or
    /// `task:ID`
    #[arg(long = "for", value_name = "WHO")]
    pub who: Vec<String>,
    /// At most this many
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

fn parse_message_id(s: &str) -> Result<MessageId, String> {
    crate::args::parse_number_id(s, "message").map(MessageId)
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// The text as given, or stdin's for `-`.
fn text_arg(text: String) -> CliResult<String> {
    let text = if text == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .take(STDIN_CAP)
            .read_to_string(&mut buf)
            .map_err(|e| CliError::io("failed to read the message from stdin", &e))?;
        if buf.len() as u64 >= STDIN_CAP {
            return Err(CliError::user(format!(
                "the message on stdin is longer than the limit of {} bytes",
                STDIN_CAP - 1
            ))
            .with_hint("put long text in a file and send its path"));
        }
        buf
    } else {
        text
    };
    if text.trim().is_empty() {
        return Err(CliError::user("the message is empty")
            .with_hint("give the text as an argument, or `-` to read it from stdin"));
    }
    Ok(text)
}

/// The inboxes `sfctl inbox` reads by default.
fn my_inboxes() -> Vec<String> {
    match env("SF_AGENT") {
        Some(agent) => {
            let mut v = vec![agent];
            v.extend(env("SF_TASK_ID").map(|t| format!("task:{t}")));
            v
        }
        // the humans' inbox, and the user's own (a seat's steward: `human:NAME`)
        None => std::iter::once("human".to_owned())
            .chain(crate::context::user_name().map(|u| format!("human:{u}")))
            .collect(),
    }
}

fn send(ctx: &mut Context, message: NewMessage) -> CliResult {
    let resp = ctx.request(&Request::SendMessage { message })?;
    let m = expect_response!(resp, Response::Message(m) => m);
    ctx.ui.emit(&m, |ui, m| {
        match &m.became_task {
            Some(t) => {
                ui.line(format!(
                    "message {}: no enabled director is registered, so it became backlog task {t}",
                    m.id
                ))?;
                ui.status(
                    "hint: register a director with `sfctl agent register NAME --role director --mode persistent`",
                );
                Ok(())
            }
            None => ui.line(format!("sent message {} to {}", m.id, m.to)),
        }
    })
}

pub fn run(ctx: &mut Context, cmd: MessageCommand) -> CliResult {
    match cmd {
        MessageCommand::Send(a) => {
            let message = NewMessage {
                to: a.to,
                task: a.task,
                subject: a.subject,
                body: text_arg(a.text)?,
                reply_to: a.reply_to,
                token: env("SF_RUN"),
                kind: a.kind,
            };
            send(ctx, message)
        }
        MessageCommand::Reply { id, text } => {
            let message = NewMessage {
                body: text_arg(text)?,
                reply_to: Some(id),
                token: env("SF_RUN"),
                ..NewMessage::default()
            };
            send(ctx, message)
        }
        MessageCommand::Read { ids } => {
            let resp = ctx.request(&Request::ReadMessages { ids })?;
            let messages = expect_response!(resp, Response::Messages(m) => m);
            ctx.ui.emit(&messages, |ui, messages| {
                for (i, m) in messages.iter().enumerate() {
                    if i > 0 {
                        ui.line("")?;
                    }
                    ui.line(full(m))?;
                }
                Ok(())
            })
        }
        MessageCommand::List { to, unread, limit } => list(ctx, to, unread, limit),
    }
}

pub fn inbox(ctx: &mut Context, args: InboxArgs) -> CliResult {
    let who = if args.who.is_empty() {
        my_inboxes()
    } else {
        args.who
    };
    if args.follow {
        return follow(ctx, &who);
    }
    list(ctx, who, !args.all, args.limit)
}

fn list(ctx: &mut Context, to: Vec<String>, unread: bool, limit: u32) -> CliResult {
    let whose = if to.is_empty() {
        "anyone".to_owned()
    } else {
        to.join(", ")
    };
    let resp = ctx.request(&Request::ListMessages {
        to,
        unread,
        limit: Some(limit),
    })?;
    let messages = expect_response!(resp, Response::Messages(m) => m);
    ctx.ui.emit(&messages, |ui, messages| {
        if messages.is_empty() {
            ui.status(format!(
                "no {}messages for {whose}",
                if unread { "unread " } else { "" }
            ));
            return Ok(());
        }
        let now = chrono::Utc::now();
        let rows = messages
            .iter()
            .map(|m| {
                vec![
                    ui.cell(m.id, None),
                    ui.cell(time::relative(m.at, now), None),
                    ui.cell(&m.from, None),
                    ui.cell(&m.to, None),
                    ui.cell(or_dash(m.task.as_ref()), None),
                    ui.cell(if m.read_at.is_some() { "read" } else { "new" }, None),
                    ui.cell(truncate(&m.subject, 60), None),
                ]
            })
            .collect();
        ui.table(
            &["ID", "SENT", "FROM", "TO", "TASK", "STATE", "SUBJECT"],
            rows,
        )?;
        ui.status("hint: read one in full with `sfctl message read ID`");
        Ok(())
    })
}

/// A message in full: its envelope, then its text.
fn full(m: &MessageInfo) -> String {
    let now = chrono::Utc::now();
    let mut pairs = vec![
        ("message", m.id.to_string()),
        ("from", m.from.clone()),
        ("to", m.to.clone()),
        ("sent", time::both(m.at, now)),
        ("subject", m.subject.clone()),
    ];
    if let Some(a) = &m.addressed {
        pairs.push(("addressed to", a.clone()));
    }
    if let Some(t) = &m.task {
        pairs.push(("task", t.to_string()));
    }
    if let Some(r) = m.reply_to {
        pairs.push(("in reply to", r.to_string()));
    }
    if let Some(t) = &m.became_task {
        pairs.push(("became task", t.to_string()));
    }
    format!("{}\n\n{}", key_values(&pairs), printable(m.body.trim_end()))
}

/// Text for a terminal: control characters other than newline and tab (escape sequences
/// an agent may have put in a message) are shown as `�`, never sent to the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Prints each new message to `who` as it arrives, from the daemon's event stream.
fn follow(ctx: &mut Context, who: &[String]) -> CliResult {
    let mut stream = ctx.connect()?;
    stream
        .set_read_timeout(None)
        .map_err(|e| CliError::io("failed to set up the stream", &e))?;
    stream.send(&Request::FollowEvents {
        since: None,
        task: None,
    })?;
    ctx.ui.status(format!(
        "waiting for messages to {} (Ctrl-C to stop)",
        who.join(", ")
    ));
    loop {
        let event = match stream.recv() {
            Ok(Response::Event(e)) => e,
            Ok(Response::Lagged { skipped }) => {
                ctx.ui.warn(format!(
                    "fell behind; {skipped} events were skipped: check `sfctl inbox`"
                ));
                continue;
            }
            Ok(Response::Error(e)) => return Err(e.into()),
            Ok(_) => continue,
            Err(e) if crate::commands::events::stream_ended(&e) => {
                let mut err =
                    CliError::unreachable("sfd closed the stream (it stopped or restarted)");
                err.hints = vec![format!(
                    "once sfd is back, `sfctl inbox --follow --for {}` waits again; `sfctl inbox` shows what came meanwhile",
                    who.join(" --for ")
                )];
                if ctx.ui.json {
                    err = err.with_result_printed();
                }
                return Err(err);
            }
            Err(e) => return Err(e.into()),
        };
        if event.action != "message_sent" {
            continue;
        }
        let to = event
            .after
            .as_ref()
            .and_then(|a| a.get("to"))
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        if !who.iter().any(|w| w == to) {
            continue;
        }
        let Some(id) = event
            .after
            .as_ref()
            .and_then(|a| a.get("id"))
            .and_then(serde_json::Value::as_i64)
        else {
            continue;
        };
        let resp = ctx.request(&Request::ShowMessage { id: MessageId(id) })?;
        let m = expect_response!(resp, Response::Message(m) => m);
        ctx.ui.emit(&m, |ui, m| {
            ui.line(full(m))?;
            ui.line("")
        })?;
        ctx.ui.flush()?;
    }
}
