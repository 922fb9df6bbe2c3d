//! `sfctl logs`: the log file of a task's or an agent's run, rendered as a transcript (or
//! `--raw`), optionally followed while the run is live. The daemon says where the files
//! are and whose stream they hold; sfctl reads them itself (same machine).

mod transcript;

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::thread;
use std::time::Duration;

use clap::Args;
use sf_proto::{Adapter, LogRef, Request, Response};

use crate::context::Context;
use crate::context::expect_response;
use crate::error::{CliError, CliErrorKind, CliResult};

/// How often `--follow` looks for appended bytes.
const POLL: Duration = Duration::from_millis(200);
/// `--follow` asks the daemon whether the run is still live every this many polls (~1 s).
const POLLS_PER_LIVENESS_CHECK: u32 = 5;

/// Print the log of a task's or an agent's run
#[derive(Debug, Args)]
#[command(
    long_about = "\
Print the log of a task's or an agent's run: what the worker process wrote on stdout and
stderr. The newest run by default, or --run N; --all prints every run's log (the 50 newest
runs), oldest first, each under a `==> run N (agent, task) <==` header.

A run of Claude Code, Codex or OpenCode is shown as a transcript: what the agent wrote
(wrapped to the terminal, never cut), each tool call on one line (`▸ Bash  git commit …`)
with how it ended (`✓`/`✗` and the first line of its output), the tokens used, and the final
result or the CLI's error in full; lines the CLI wrote on stderr as they are. --raw prints
the CLI's JSON Lines as they are (a `command` agent's output is always shown as it is).

The merge queue's test output: `mr:ID` for each attempt of merge request ID (--run N is
attempt N), or the merge steward's name for the last test of each request (--run N is
request N).

With --follow, keep printing what the run appends until it ends (Ctrl-C to stop earlier); if
the task or agent has no run yet, wait for its first one.
With --json, print the runs' log files as JSON ([{run, task, agent, path, live, adapter}],
the selected runs only) instead of their content.",
    after_help = "\
Examples:
  sfctl logs k3f9xq              # the newest run of task k3f9xq, as a transcript
  sfctl logs k3f9xq --raw        # the same, as the CLI's JSON Lines
  sfctl logs w1 --follow         # agent w1's newest run, live
  sfctl logs k3f9xq --run 12
  sfctl logs k3f9xq --all | less
  sfctl logs w1 --json | jq -r '.[0].path'
  sfctl logs mr:7 --run 1        # the first failing test of merge request 7
  sfctl logs merger --all"
)]
pub struct LogsArgs {
    /// A task id (or unique prefix), an agent name, or mr:ID (a merge request's tests)
    #[arg(value_name = "TASK|AGENT|mr:ID")]
    pub target: String,
    /// Keep printing what the run appends until the run ends
    #[arg(short, long, conflicts_with = "all")]
    pub follow: bool,
    /// This run instead of the newest
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub run: Option<i64>,
    /// Every run's log, oldest first, each under a header
    #[arg(long)]
    pub all: bool,
    /// The log as the CLI wrote it (JSON Lines), not rendered
    #[arg(long)]
    pub raw: bool,
}

/// Where a log's bytes go: to stdout as they are, or through a transcript renderer.
enum Sink {
    Raw,
    Rendered(transcript::Renderer),
}

impl Sink {
    /// A `command` agent's output and a merge test's have no format to render: their bytes
    /// are copied as they are (a partial line too, while following).
    fn new(r: &LogRef, raw: bool, style: transcript::Style) -> Self {
        match r.adapter {
            Some(adapter) if !raw && adapter != Adapter::Command => {
                Self::Rendered(transcript::Renderer::new(Some(adapter), style))
            }
            _ => Self::Raw,
        }
    }

    /// Moves what `log` has now to stdout.
    fn pump(&mut self, ctx: &mut Context, log: &mut impl Read, what: &str) -> CliResult {
        match self {
            Self::Raw => ctx.ui.copy_from(log, what).map(|_| ()),
            Self::Rendered(r) => {
                let mut bytes = Vec::new();
                log.read_to_end(&mut bytes)
                    .map_err(|e| CliError::io(format!("failed to read {what}"), &e))?;
                for line in r.feed(&bytes) {
                    ctx.ui.line(line)?;
                }
                Ok(())
            }
        }
    }

    /// The end of the log: a last line without its newline.
    fn finish(&mut self, ctx: &mut Context) -> CliResult {
        if let Self::Rendered(r) = self {
            for line in r.finish() {
                ctx.ui.line(line)?;
            }
        }
        Ok(())
    }
}

pub fn run(ctx: &mut Context, args: &LogsArgs) -> CliResult {
    let target = args.target.trim();
    if target.is_empty() {
        return Err(CliError::user("the task or agent must not be empty"));
    }
    let mut refs = fetch(ctx, target)?;
    if ctx.ui.json {
        return ctx
            .ui
            .json_value(&select(&refs, args.run, args.all, target)?);
    }
    if refs.is_empty() && args.follow && args.run.is_none() {
        refs = wait_for_first_run(ctx, target)?;
    }
    let chosen = select(&refs, args.run, args.all, target)?;
    if chosen.is_empty() {
        ctx.ui
            .status(format!("no runs of `{target}` have a log yet"));
        return Ok(());
    }
    let mut ends_with_newline = true;
    for (i, r) in chosen.iter().enumerate() {
        if args.all {
            if i > 0 {
                // Like tail(1): a blank line between files, and never a header glued to
                // the last line of the previous log.
                ctx.ui.line(if ends_with_newline { "" } else { "\n" })?;
            }
            ctx.ui.line(header(r))?;
        }
        let mut log = LastByte::new(open_log(r)?);
        let style = transcript::Style {
            color: ctx.ui.color,
            width: ctx.ui.width(),
        };
        let mut sink = Sink::new(r, args.raw, style);
        let what = format!("log file {}", r.path);
        sink.pump(ctx, &mut log, &what)?;
        if args.follow && r.live {
            follow(ctx, target, r, &mut log, &mut sink)?;
            return sink.finish(ctx);
        }
        sink.finish(ctx)?;
        ends_with_newline =
            matches!(sink, Sink::Rendered(_)) || log.last.is_none_or(|b| b == b'\n');
    }
    Ok(())
}

/// Asks the daemon for the log files of `target`'s runs, newest first.
fn fetch(ctx: &Context, target: &str) -> CliResult<Vec<LogRef>> {
    let resp = ctx.request(&Request::Logs {
        target: target.to_owned(),
    })?;
    Ok(expect_response!(resp, Response::Logs(l) => l))
}

/// The runs to print: every one oldest first (`--all`), run `run`, or the newest (none if
/// there are no runs).
fn select<'a>(
    refs: &'a [LogRef],
    run: Option<i64>,
    all: bool,
    target: &str,
) -> CliResult<Vec<&'a LogRef>> {
    if all {
        let mut every: Vec<&LogRef> = refs.iter().collect();
        every.sort_by_key(|r| r.run);
        return Ok(every);
    }
    let Some(n) = run else {
        return Ok(refs.iter().max_by_key(|r| r.run).into_iter().collect());
    };
    match refs.iter().find(|r| r.run.0 == n) {
        Some(r) => Ok(vec![r]),
        None => {
            let mut ids: Vec<i64> = refs.iter().map(|r| r.run.0).collect();
            ids.sort_unstable();
            let err = CliError::refused("not_found", format!("no run {n} of `{target}` has a log"));
            Err(if ids.is_empty() {
                err
            } else {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                err.with_hint(format!("runs with a log: {}", ids.join(", ")))
            })
        }
    }
}

/// `==> run 12 (w1, k3f9xq) <==`, as tail(1) heads each file.
fn header(r: &LogRef) -> String {
    let task = r
        .task
        .as_ref()
        .map(|t| format!(", task {t}"))
        .unwrap_or_default();
    match r.merge_request {
        // `mr:ID`: one test run per attempt
        Some(mr) if mr.0 != r.run.0 => format!("==> merge request #{mr}, test {}{task} <==", r.run),
        Some(mr) => format!("==> merge request #{mr} ({}{task}) <==", r.agent),
        None => match &r.task {
            Some(task) => format!("==> run {} ({}, {task}) <==", r.run, r.agent),
            None => format!("==> run {} ({}) <==", r.run, r.agent),
        },
    }
}

fn open_log(r: &LogRef) -> CliResult<BufReader<File>> {
    File::open(&r.path)
        .map(BufReader::new)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => CliError::refused(
                "not_found",
                format!("log file {} of run {} does not exist", r.path, r.run),
            ),
            io::ErrorKind::PermissionDenied => CliError::refused(
                "permission_denied",
                format!("cannot read log file {} of run {}", r.path, r.run),
            )
            .with_cause(e.to_string()),
            _ => CliError::io(format!("failed to open log file {}", r.path), &e),
        })
}

/// `--follow` before the first run: polls until a run of `target` has a log (Ctrl-C to stop
/// earlier), riding out daemon restarts like [`follow`].
fn wait_for_first_run(ctx: &mut Context, target: &str) -> CliResult<Vec<LogRef>> {
    ctx.ui.status(format!(
        "waiting for the first run of {target}… (Ctrl-C to stop)"
    ));
    let mut warned = false;
    loop {
        thread::sleep(POLL * POLLS_PER_LIVENESS_CHECK);
        match fetch(ctx, target) {
            Ok(refs) if !refs.is_empty() => return Ok(refs),
            Ok(_) => {}
            Err(e) if e.kind == CliErrorKind::Unreachable => {
                if !warned {
                    ctx.ui.warn(format!(
                        "sfd is not answering ({}); still waiting, Ctrl-C to stop",
                        e.message
                    ));
                    warned = true;
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Prints what run `r` appends to its log (read so far up to `log`'s position) until the
/// daemon no longer lists the run as live, then what is left.
fn follow(
    ctx: &mut Context,
    target: &str,
    r: &LogRef,
    log: &mut impl Read,
    sink: &mut Sink,
) -> CliResult {
    let what = format!("log file {}", r.path);
    let mut polls = 0u32;
    let mut warned = false;
    loop {
        ctx.ui.flush()?;
        thread::sleep(POLL);
        sink.pump(ctx, log, &what)?;
        polls += 1;
        if !polls.is_multiple_of(POLLS_PER_LIVENESS_CHECK) {
            continue;
        }
        match fetch(ctx, target) {
            Ok(refs) if refs.iter().any(|l| l.run == r.run && l.live) => {}
            Ok(_) => return sink.pump(ctx, log, &what),
            // A daemon restart must not end the follow: workers outlive it.
            Err(e) if e.kind == CliErrorKind::Unreachable => {
                if !warned {
                    ctx.ui.warn(format!(
                        "sfd is not answering ({}); still following, Ctrl-C to stop",
                        e.message
                    ));
                    warned = true;
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// A reader that remembers the last byte it yielded.
struct LastByte<R> {
    inner: R,
    last: Option<u8>,
}

impl<R> LastByte<R> {
    fn new(inner: R) -> Self {
        Self { inner, last: None }
    }
}

impl<R: Read> Read for LastByte<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = buf[..n].last() {
            self.last = Some(*b);
        }
        Ok(n)
    }
}

/// `sfctl agent attach NAME` (and `sfctl director`): the session's transcript as its turns
/// run, rendered as `sfctl logs` renders it, while each line typed on stdin is sent to the
/// agent as a message: its next turn, delivered when the running one ends. Ctrl-C detaches
/// (the session goes on).
pub fn attach(ctx: &mut Context, agent: &str) -> CliResult {
    if ctx.ui.json {
        return Err(
            CliError::user("attach is interactive and prints no JSON").with_hint(format!(
                "for the transcript as data: `sfctl logs {agent} --follow --json`; to send: \
                 `sfctl message send --to {agent} --json TEXT`"
            )),
        );
    }
    let resp = ctx.request(&Request::ListSessions {
        name: agent.to_owned(),
    })?;
    let sessions = expect_response!(resp, Response::Sessions(s) => s);
    let Some(session) = sessions
        .into_iter()
        .find(|s| s.status == sf_proto::SessionStatus::Active)
    else {
        return Err(
            CliError::refused("invalid_state", format!("`{agent}` has no session"))
                .with_hint(format!("start one with `sfctl agent start {agent}`")),
        );
    };
    // the typing side needs no terminal output of its own (the main thread's `Ui` holds
    // stdout): a plain client per line, to the socket resolved here
    let socket = ctx.socket()?;
    let to = agent.to_owned();
    let input_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done_flag = std::sync::Arc::clone(&input_done);
    thread::spawn(move || {
        let actor = crate::context::actor();
        for line in io::stdin().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            let message = sf_proto::NewMessage {
                to: Some(to.clone()),
                body: line,
                ..sf_proto::NewMessage::default()
            };
            let sent = sf_client::Client::connect(
                &socket,
                &crate::context::client_name(),
                Some(actor.clone()),
            )
            .and_then(|mut c| c.request(&Request::SendMessage { message }));
            if let Err(e) = sent {
                eprintln!("error: not sent: {e}");
            }
        }
        done_flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    ctx.ui.status(format!(
        "attached to {agent}'s session #{} on {}: each line you type is its next turn; \
         Ctrl-C detaches",
        session.id, session.branch
    ));
    let mut seen: Option<sf_proto::RunId> = None;
    let mut first = true;
    let mut warned = false;
    loop {
        let refs = match fetch(ctx, agent) {
            Ok(r) => r,
            Err(e) if e.kind == CliErrorKind::Unreachable => {
                if !warned {
                    ctx.ui.warn(format!(
                        "sfd is not answering ({}); still attached",
                        e.message
                    ));
                    warned = true;
                }
                thread::sleep(POLL * POLLS_PER_LIVENESS_CHECK);
                continue;
            }
            Err(e) => return Err(e),
        };
        warned = false;
        let mut new: Vec<&LogRef> = refs
            .iter()
            .filter(|r| seen.is_none_or(|s| r.run > s))
            .collect();
        new.sort_by_key(|r| r.run);
        if first {
            // what is on screen when you attach: the newest turn, not the whole history
            new = new.split_off(new.len().saturating_sub(1));
            first = false;
        }
        for r in new {
            ctx.ui.line(header(r))?;
            let mut log = LastByte::new(open_log(r)?);
            let style = transcript::Style {
                color: ctx.ui.color,
                width: ctx.ui.width(),
            };
            let mut sink = Sink::new(r, ctx.ui.json, style);
            sink.pump(ctx, &mut log, &format!("log file {}", r.path))?;
            if r.live {
                follow(ctx, agent, r, &mut log, &mut sink)?;
            }
            sink.finish(ctx)?;
            seen = Some(r.run);
        }
        ctx.ui.flush()?;
        // the session ended, or the input ended and everything typed has been answered
        let resp = ctx.request(&Request::ListSessions {
            name: agent.to_owned(),
        })?;
        let sessions = expect_response!(resp, Response::Sessions(s) => s);
        let Some(now) = sessions.into_iter().find(|s| s.id == session.id) else {
            return Ok(());
        };
        if now.status != sf_proto::SessionStatus::Active {
            ctx.ui
                .status(format!("session #{} of {agent} ended", now.id));
            return Ok(());
        }
        if input_done.load(std::sync::atomic::Ordering::SeqCst) && !now.running {
            let resp = ctx.request(&Request::ListMessages {
                to: vec![agent.to_owned()],
                unread: true,
                limit: Some(1),
            })?;
            let waiting = expect_response!(resp, Response::Messages(m) => m);
            if waiting.is_empty() && refs.iter().all(|r| !r.live) {
                return Ok(());
            }
        }
        thread::sleep(POLL);
    }
}

/// `sfctl director`: attach to the director whose session runs.
pub fn attach_director(ctx: &mut Context) -> CliResult {
    let resp = ctx.request(&Request::ListAgents)?;
    let agents = expect_response!(resp, Response::Agents(a) => a);
    let directors: Vec<String> = agents
        .into_iter()
        .filter(|a| a.spec.role == sf_proto::Role::Director)
        .map(|a| a.spec.name)
        .collect();
    if directors.is_empty() {
        return Err(CliError::refused("not_found", "this workspace has no director")
            .with_hint("register one: `sfctl agent register director --role director --mode persistent --adapter claude`"));
    }
    for name in &directors {
        let resp = ctx.request(&Request::ListSessions { name: name.clone() })?;
        let sessions = expect_response!(resp, Response::Sessions(s) => s);
        if sessions
            .iter()
            .any(|s| s.status == sf_proto::SessionStatus::Active)
        {
            return attach(ctx, name);
        }
    }
    Err(CliError::refused(
        "invalid_state",
        format!("no session of {} runs", directors.join(", ")),
    )
    .with_hint(format!("start one: `sfctl agent start {}`", directors[0])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(run: i64, task: Option<&str>, live: bool) -> LogRef {
        LogRef {
            merge_request: None,
            run: sf_proto::RunId(run),
            task: task.map(|t| t.parse().unwrap()),
            agent: "w1".into(),
            path: format!("/ws/.sf/logs/{run}.log"),
            live,
            adapter: None,
        }
    }

    fn runs(chosen: &[&LogRef]) -> Vec<i64> {
        chosen.iter().map(|r| r.run.0).collect()
    }

    #[test]
    fn headers_name_run_agent_and_task() {
        assert_eq!(
            header(&log(12, Some("k3f9xq"), false)),
            "==> run 12 (w1, k3f9xq) <=="
        );
        assert_eq!(header(&log(3, None, true)), "==> run 3 (w1) <==");
    }

    #[test]
    fn the_newest_run_by_default_every_run_oldest_first_with_all() {
        let refs = [log(9, None, true), log(4, None, false), log(7, None, false)];
        assert_eq!(runs(&select(&refs, None, false, "w1").unwrap()), [9]);
        assert_eq!(runs(&select(&refs, None, true, "w1").unwrap()), [4, 7, 9]);
        assert_eq!(runs(&select(&refs, Some(7), false, "w1").unwrap()), [7]);
        assert!(select(&[], None, false, "w1").unwrap().is_empty());
    }

    #[test]
    fn an_unknown_run_is_refused_with_the_known_ones() {
        let refs = [log(9, None, true), log(4, None, false)];
        let err = select(&refs, Some(5), false, "w1").unwrap_err();
        assert_eq!(err.exit_code(), std::process::ExitCode::from(1));
        assert_eq!(err.message, "no run 5 of `w1` has a log");
        assert_eq!(err.hints, ["runs with a log: 4, 9"]);
        assert!(
            select(&[], Some(5), false, "w1")
                .unwrap_err()
                .hints
                .is_empty()
        );
    }

    #[test]
    fn a_missing_log_file_is_named() {
        let mut r = log(3, None, false);
        r.path = "/nonexistent/sf-test/3.log".into();
        let err = open_log(&r).unwrap_err();
        assert_eq!(err.exit_code(), std::process::ExitCode::from(1));
        assert_eq!(
            err.message,
            "log file /nonexistent/sf-test/3.log of run 3 does not exist"
        );
    }

    #[test]
    fn last_byte_tracks_what_was_read() {
        let mut r = LastByte::new(&b"one\ntwo"[..]);
        assert_eq!(r.last, None);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.last, Some(b'o'));
    }
}
