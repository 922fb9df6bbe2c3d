//! `sfctl mr list|show|retry|approve|cancel`: the merge queue; and `sfctl merge`: put a
//! branch through it and wait for the result. Test output logs are read from the files the
//! daemon names (same machine), like `sfctl logs`.

use std::fs;
use std::io;
use std::thread;
use std::time::{Duration, Instant};

use crate::output::Cell;
use clap::{Args, Subcommand};
use sf_proto::{MergeRequestId, MergeRequestInfo, MergeState, Request, Response, Timestamp};

use crate::args::parse_number_id;
use crate::context::expect_response;
use crate::context::{Context, approver};
use crate::error::{CliError, CliErrorKind, CliResult};
use crate::git::git;
use crate::output::{
    Ui, cell, key_values, merge_state_color, or_dash, paint, render_table, truncate,
};
use crate::time;

/// How often `sfctl merge` asks how its request is doing.
const POLL: Duration = Duration::from_millis(200);
/// Lines of test output `mr show` prints without `--full`.
const SHOW_LINES: usize = 200;
/// Lines of test output `sfctl merge` prints when the merge fails.
const FAILURE_LINES: usize = 50;
/// Width of the RESULT column of `mr list`.
const RESULT_WIDTH: usize = 60;
/// The environment variable that names a worker's branch (set by sfd).
const BRANCH_ENV: &str = "SF_BRANCH";

/// The merge queue: list, inspect, retry, approve and cancel merge requests
#[derive(Debug, Subcommand)]
#[command(long_about = "\
The merge queue: each finished task (and each `sfctl merge`) becomes a merge request that the
merge steward tests on the merge result and lands on its target branch, one at a time per
target, most urgent first.

States: queued, testing, awaiting_approval (held by `require_approval` until `sfctl mr
approve`), waiting (cannot proceed yet; the reason says why), needs_fix (tests failed or the
branch conflicts; a fix task works on it), merged, cancelled.")]
pub enum MrCommand {
    /// List merge requests: open ones first, then the 50 most recently finished
    #[command(after_help = "\
Examples:
  sfctl mr list
  sfctl mr list --json | jq '.[] | select(.state == \"needs_fix\") | .id'")]
    List,
    /// Show a merge request in full, then the output of its last test run
    #[command(after_help = "\
Examples:
  sfctl mr show 12              # the last 200 lines of the test output
  sfctl mr show '#12' --full | less
  sfctl mr show 12 --json | jq -r .log_path")]
    Show {
        /// The merge request's id (`12` or `#12`)
        #[arg(value_parser = parse_mr_id)]
        id: MergeRequestId,
        /// Print the whole test output, not only its last 200 lines
        #[arg(long)]
        full: bool,
    },
    /// Queue a waiting, failed or cancelled merge request again
    #[command(after_help = "\
Examples:
  sfctl mr retry 12             # e.g. after committing a fix on its branch")]
    Retry {
        /// The merge request's id (`12` or `#12`)
        #[arg(value_parser = parse_mr_id)]
        id: MergeRequestId,
    },
    /// Approve a merge request held for approval (`require_approval`)
    #[command(after_help = "\
Examples:
  sfctl mr approve 12
  sfctl mr approve 12 --as alice")]
    Approve {
        /// The merge request's id (`12` or `#12`)
        #[arg(value_parser = parse_mr_id)]
        id: MergeRequestId,
        /// Approve as this approver (default: $USER)
        #[arg(long = "as", value_name = "NAME")]
        approver: Option<String>,
    },
    /// Cancel a merge request (its task, if in review, becomes blocked)
    #[command(after_help = "\
Examples:
  sfctl mr cancel 12
  sfctl mr retry 12             # changed your mind: queue it again")]
    Cancel {
        /// The merge request's id (`12` or `#12`)
        #[arg(value_parser = parse_mr_id)]
        id: MergeRequestId,
    },
}

/// Merge a branch through the merge queue and wait for the result
#[derive(Debug, Args)]
#[command(
    long_about = "\
Merge a branch through the merge queue: the same pipeline as a finished task (the test
command run on the merge result, then the target moved with a compare-and-swap). The branch
defaults to $SF_BRANCH (set in persistent workers), else the branch checked out in the
current directory.

sfctl prints the request's id, then waits: progress goes to stderr, and the result to stdout.
Exit 0 once merged; exit 1 if it needs a fix or is cancelled (with the last 50 lines of the
test output), or if it is still not merged after --timeout (the request stays queued). With
--json, prints the request as it last was (`sfctl mr show` format).",
    after_help = "\
Examples:
  sfctl merge                                   # the current branch into the target branch
  sfctl merge --branch feature/login --into main -m \"Login page\"
  sfctl merge --no-wait                         # queue it; follow with `sfctl mr show ID`
  sfctl merge --timeout 2h --json | jq -r .commit"
)]
pub struct MergeArgs {
    /// The branch to merge (default: $SF_BRANCH, else the current branch here)
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// The branch to merge into (default: the workspace's target branch)
    #[arg(long, value_name = "TARGET")]
    pub into: Option<String>,
    /// Commit message (default: derived from the branch)
    #[arg(short, long, value_name = "TEXT")]
    pub message: Option<String>,
    /// Queue the merge request and return without waiting for it
    #[arg(long)]
    pub no_wait: bool,
    /// Stop waiting after this long (e.g. 90s, 10m, 2h); the request stays queued
    #[arg(long, value_name = "DURATION", default_value = "30m",
          value_parser = humantime::parse_duration, conflicts_with = "no_wait")]
    pub timeout: Duration,
}

fn parse_mr_id(s: &str) -> Result<MergeRequestId, String> {
    parse_number_id(s, "merge request").map(MergeRequestId)
}

pub fn run(ctx: &mut Context, cmd: MrCommand) -> CliResult {
    let now = chrono::Utc::now();
    match cmd {
        MrCommand::List => {
            let resp = ctx.request(&Request::ListMergeRequests)?;
            let mrs = expect_response!(resp, Response::MergeRequests(m) => m);
            ctx.ui.emit(&mrs, |ui, mrs| {
                if mrs.is_empty() {
                    ui.status("the merge queue is empty");
                    return Ok(());
                }
                let text = render_mrs(mrs, ui.color, ui.width());
                ui.line(text)
            })
        }
        MrCommand::Show { id, full } => {
            let mr = fetch(ctx, id)?;
            ctx.ui.emit(&mr, |ui, mr| {
                let text = show_text(mr, ui.color, now);
                ui.line(text)?;
                if let Some(path) = &mr.log_path {
                    ui.line("")?;
                    print_test_output(ui, mr, path, (!full).then_some(SHOW_LINES))?;
                }
                Ok(())
            })
        }
        MrCommand::Retry { id } => changed(ctx, &Request::RetryMergeRequest { id }, "queued again"),
        MrCommand::Approve { id, approver: name } => {
            let approver = approver(name)?;
            let done = format!("approved as {approver}");
            changed(ctx, &Request::ApproveMergeRequest { id, approver }, &done)
        }
        MrCommand::Cancel { id } => changed(ctx, &Request::CancelMergeRequest { id }, "cancelled"),
    }
}

fn fetch(ctx: &Context, id: MergeRequestId) -> CliResult<MergeRequestInfo> {
    let resp = ctx.request(&Request::ShowMergeRequest { id })?;
    Ok(expect_response!(resp, Response::MergeRequest(m) => m))
}

/// Sends `retry`, `approve` or `cancel`; prints `merge request #12 <done>: b -> t, now <state>`.
fn changed(ctx: &mut Context, req: &Request, done: &str) -> CliResult {
    let resp = ctx.request(req)?;
    let mr = expect_response!(resp, Response::MergeRequest(m) => m);
    ctx.ui.emit(&mr, |ui, mr| {
        let state = ui.paint(mr.state.as_str(), merge_state_color(mr.state));
        ui.line(format!(
            "merge request #{} {done}: {} -> {}, now {state}",
            mr.id, mr.branch, mr.target
        ))
    })
}

/// The queue table: ID STATE TASK BRANCH TARGET ATTEMPTS RESULT.
pub fn render_mrs(mrs: &[MergeRequestInfo], color: bool, width: Option<u16>) -> String {
    let rows = mrs
        .iter()
        .map(|m| {
            vec![
                Cell::new(format!("#{}", m.id)),
                cell(color, m.state, merge_state_color(m.state)),
                Cell::new(or_dash(m.task.as_ref())),
                Cell::new(&m.branch),
                Cell::new(&m.target),
                Cell::new(m.attempts),
                Cell::new(result_text(m)),
            ]
        })
        .collect();
    render_table(
        &[
            "ID", "STATE", "TASK", "BRANCH", "TARGET", "ATTEMPTS", "RESULT",
        ],
        rows,
        color,
        width,
    )
}

/// The RESULT column: why it waits or failed, else the last test result, cut to one short line.
fn result_text(m: &MergeRequestInfo) -> String {
    [&m.reason, &m.last_result]
        .into_iter()
        .flatten()
        .find(|r| !r.trim().is_empty())
        .map_or_else(|| "-".to_owned(), |r| truncate(r, RESULT_WIDTH))
}

/// `sfctl mr show` without the test output: a title line, then every field.
pub fn show_text(m: &MergeRequestInfo, color: bool, now: Timestamp) -> String {
    let pairs = [
        (
            "state",
            paint(color, m.state.as_str(), merge_state_color(m.state)),
        ),
        ("task", or_dash(m.task.as_ref())),
        ("branch", m.branch.clone()),
        ("target", m.target.clone()),
        ("reason", or_dash(m.reason.as_ref())),
        ("attempts", m.attempts.to_string()),
        ("last result", or_dash(m.last_result.as_ref())),
        ("commit", or_dash(m.commit.as_ref())),
        ("fix task", or_dash(m.fix_task.as_ref())),
        ("fix tasks", fix_tasks_text(&m.fix_tasks)),
        ("approved by", or_dash(m.approved_by.as_ref())),
        ("test log", or_dash(m.log_path.as_ref())),
        (
            "test logs",
            if m.test_logs.len() > 1 {
                format!(
                    "{} (`sfctl logs mr:{} --run N` prints test N)",
                    m.test_logs.len(),
                    m.id
                )
            } else {
                "-".to_owned()
            },
        ),
        ("created", time::both(m.created_at, now)),
        ("updated", time::both(m.updated_at, now)),
    ];
    format!(
        "merge request #{}: {}\n{}",
        m.id,
        m.title,
        key_values(&pairs)
    )
}

/// `abc123 (tests, closed), def456 (conflict, open)`, or `-`.
pub fn fix_tasks_text(fixes: &[sf_proto::FixTaskRef]) -> String {
    if fixes.is_empty() {
        return "-".to_owned();
    }
    fixes
        .iter()
        .map(|f| format!("{} ({}, {})", f.id, f.kind, f.status))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last `n` lines of `text` (a final newline ends the last line, it does not start
/// another), and how many lines come before them.
fn tail_lines(text: &str, n: usize) -> (usize, &str) {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let total = if body.is_empty() {
        0
    } else {
        body.split('\n').count()
    };
    if total <= n {
        return (0, body);
    }
    let skipped = total - n;
    let start = body
        .match_indices('\n')
        .nth(skipped - 1)
        .map_or(body.len(), |(i, _)| i + 1);
    (skipped, &body[start..])
}

/// Prints `test output (PATH):` and the log, or its last `limit` lines. An unreadable log is
/// a warning, not a failure: the request itself was shown.
fn print_test_output(
    ui: &mut Ui,
    m: &MergeRequestInfo,
    path: &str,
    limit: Option<usize>,
) -> CliResult {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            ui.warn(format!("test output log {path} does not exist"));
            return Ok(());
        }
        Err(e) => {
            ui.warn(format!("cannot read test output log {path}: {e}"));
            return Ok(());
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let (skipped, shown) = match limit {
        Some(n) => tail_lines(&text, n),
        None => (0, text.strip_suffix('\n').unwrap_or(&text)),
    };
    ui.line(format!("test output ({path}):"))?;
    if skipped > 0 {
        ui.line(format!(
            "… {skipped} earlier lines (`sfctl mr show {} --full` prints them all)",
            m.id
        ))?;
    }
    ui.line(if shown.is_empty() { "(empty)" } else { shown })
}

/// How `sfctl merge` ends for a merge request state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Not decided yet: keep waiting.
    Pending,
    /// Landed: exit 0.
    Merged,
    /// Needs a fix or was cancelled: exit 1.
    Failed,
}

fn outcome(state: MergeState) -> Outcome {
    match state {
        MergeState::Queued
        | MergeState::Testing
        | MergeState::AwaitingApproval
        | MergeState::Waiting => Outcome::Pending,
        MergeState::Merged => Outcome::Merged,
        MergeState::NeedsFix | MergeState::Cancelled => Outcome::Failed,
    }
}

/// The branch `sfctl merge` merges: `--branch`, else `$SF_BRANCH`, else `current()` (the
/// checkout's branch), which must not be a detached `HEAD`.
fn resolve_branch(
    flag: Option<&str>,
    env: Option<String>,
    current: impl FnOnce() -> CliResult<String>,
) -> CliResult<String> {
    if let Some(b) = flag {
        let b = b.trim();
        if b.is_empty() {
            return Err(CliError::user("--branch must not be empty"));
        }
        return Ok(b.to_owned());
    }
    if let Some(b) = env.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        return Ok(b.to_owned());
    }
    let b = current()?;
    if b == "HEAD" {
        return Err(CliError::refused(
            "invalid_state",
            "HEAD is detached: there is no current branch to merge",
        )
        .with_hint("check out a branch, or pass --branch BRANCH"));
    }
    Ok(b)
}

/// The branch checked out in the current directory.
fn current_branch() -> CliResult<String> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::io("failed to read the current directory", &e))?;
    git(&cwd, &["rev-parse", "--abbrev-ref", "HEAD"])
        .map_err(|e| e.with_hint("or name the branch with --branch BRANCH"))
}

/// What `sfctl merge` waits for, on stderr: `testing…`, `waiting: <reason>`, ….
fn progress_line(m: &MergeRequestInfo) -> String {
    let reason = m.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    match (m.state, reason) {
        (MergeState::Testing, _) => "testing…".to_owned(),
        (MergeState::AwaitingApproval, _) => format!(
            "awaiting approval: approve with `sfctl mr approve {}`",
            m.id
        ),
        (state, Some(r)) => format!("{state}: {r}"),
        (state, None) => state.to_string(),
    }
}

/// How `sfctl merge` ends, given the request as it last was and how long it waited: the line
/// to print when merged, else the error (exit 1).
fn verdict(m: &MergeRequestInfo, waited: Duration) -> CliResult<String> {
    let id = m.id;
    let why = [&m.reason, &m.last_result]
        .into_iter()
        .flatten()
        .map(|r| r.trim())
        .find(|r| !r.is_empty());
    let show_hint = format!("see `sfctl mr show {id}`");
    match (outcome(m.state), m.state) {
        (Outcome::Merged, _) => Ok(match (&m.commit, why) {
            (Some(c), _) if !c.is_empty() => format!(
                "merged {} into {} as {}",
                m.branch,
                m.target,
                c.get(..12).unwrap_or(c)
            ),
            (_, Some(r)) => format!("merged {} into {}: {r}", m.branch, m.target),
            (_, None) => format!("merged {} into {}", m.branch, m.target),
        }),
        (Outcome::Failed, MergeState::NeedsFix) => {
            let mut err = CliError::refused(
                "merge_failed",
                format!(
                    "merge request #{id} needs a fix: {}",
                    why.unwrap_or("tests failed")
                ),
            );
            if let Some(fix) = &m.fix_task {
                err = err.with_hint(format!(
                    "fix task {fix} works on it; the request is queued again when it completes"
                ));
            }
            Err(err.with_hint(show_hint).with_hint(format!(
                "after fixing the branch yourself: `sfctl mr retry {id}`"
            )))
        }
        (Outcome::Failed, _) => Err(CliError::refused(
            "merge_failed",
            format!(
                "merge request #{id} was cancelled: {}",
                why.unwrap_or("no reason given")
            ),
        )
        .with_hint(show_hint)),
        (Outcome::Pending, state) => {
            let mut err = CliError::refused(
                "timeout",
                format!(
                    "merge request #{id} is still {state} after {}{}",
                    humantime::format_duration(Duration::from_secs(waited.as_secs())),
                    why.map(|r| format!(": {r}")).unwrap_or_default()
                ),
            )
            .with_hint(format!(
                "it stays in the queue; follow it with `sfctl mr show {id}`"
            ));
            if state == MergeState::AwaitingApproval {
                err = err.with_hint(format!("approve it with `sfctl mr approve {id}`"));
            }
            Err(err)
        }
    }
}

/// `sfctl merge`.
pub fn merge(ctx: &mut Context, args: &MergeArgs) -> CliResult {
    let branch = resolve_branch(
        args.branch.as_deref(),
        std::env::var(BRANCH_ENV).ok(),
        current_branch,
    )?;
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let resp = ctx.request(&Request::Merge {
        branch,
        into: non_empty(&args.into),
        message: non_empty(&args.message),
    })?;
    let mr = expect_response!(resp, Response::MergeRequest(m) => m);
    if !ctx.ui.json {
        ctx.ui.line(format!(
            "queued merge request #{}: {} -> {}",
            mr.id, mr.branch, mr.target
        ))?;
    }
    if args.no_wait {
        return if ctx.ui.json {
            ctx.ui.json_value(&mr)
        } else {
            Ok(())
        };
    }
    ctx.ui.flush()?;
    let started = Instant::now();
    let mr = wait(ctx, mr, args.timeout)?;
    let verdict = verdict(&mr, started.elapsed());
    if ctx.ui.json {
        ctx.ui.json_value(&mr)?;
        return verdict.map(drop).map_err(CliError::with_result_printed);
    }
    match verdict {
        Ok(line) => ctx.ui.line(line),
        Err(err) => {
            if let (Outcome::Failed, Some(path)) = (outcome(mr.state), &mr.log_path) {
                print_test_output(&mut ctx.ui, &mr, path, Some(FAILURE_LINES))?;
            }
            Err(err)
        }
    }
}

/// Polls the request until it is merged, needs a fix or is cancelled, or `timeout` passes;
/// returns it as it last was. Each change of progress is printed on stderr once. A daemon
/// that stops answering is waited for: the request is in its store and survives a restart.
fn wait(
    ctx: &mut Context,
    mut mr: MergeRequestInfo,
    timeout: Duration,
) -> CliResult<MergeRequestInfo> {
    let started = Instant::now();
    // `queued` was just said by the `queued merge request` line.
    let mut last = (mr.state == MergeState::Queued).then(|| progress_line(&mr));
    let mut warned = false;
    while outcome(mr.state) == Outcome::Pending {
        let line = progress_line(&mr);
        if last.as_ref() != Some(&line) {
            ctx.ui.status(&line);
            last = Some(line);
        }
        if started.elapsed() >= timeout {
            break;
        }
        thread::sleep(POLL);
        match fetch(ctx, mr.id) {
            Ok(m) => {
                mr = m;
                warned = false;
            }
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
    Ok(mr)
}

#[cfg(test)]
mod tests;
