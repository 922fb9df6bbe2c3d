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
use crate::commands::init::git;
use crate::context::expect_response;
use crate::context::{Context, approver};
use crate::error::{CliError, CliErrorKind, CliResult};
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
            if ctx.ui.json {
                return ctx.ui.json_value(&mrs);
            }
            if mrs.is_empty() {
                ctx.ui.status("the merge queue is empty");
                return Ok(());
            }
            let text = render_mrs(&mrs, ctx.ui.color, ctx.ui.width());
            ctx.ui.line(text)
        }
        MrCommand::Show { id, full } => {
            let mr = fetch(ctx, id)?;
            if ctx.ui.json {
                return ctx.ui.json_value(&mr);
            }
            let text = show_text(&mr, ctx.ui.color, now);
            ctx.ui.line(text)?;
            if let Some(path) = &mr.log_path {
                ctx.ui.line("")?;
                print_test_output(&mut ctx.ui, &mr, path, (!full).then_some(SHOW_LINES))?;
            }
            Ok(())
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
    if ctx.ui.json {
        return ctx.ui.json_value(&mr);
    }
    let state = ctx.ui.paint(mr.state.as_str(), merge_state_color(mr.state));
    ctx.ui.line(format!(
        "merge request #{} {done}: {} -> {}, now {state}",
        mr.id, mr.branch, mr.target
    ))
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
mod tests {
    use clap::Parser;

    use super::*;

    fn now() -> Timestamp {
        "2025-05-01T12:00:00Z".parse().unwrap()
    }

    fn mr(state: MergeState) -> MergeRequestInfo {
        MergeRequestInfo {
            fix_tasks: Vec::new(),
            test_logs: Vec::new(),
            id: MergeRequestId(12),
            task: Some("k3f9xq".parse().unwrap()),
            title: "Fix the flaky login test".into(),
            branch: "sf/k3f9xq".into(),
            target: "main".into(),
            state,
            reason: None,
            attempts: 1,
            last_result: None,
            log_path: None,
            commit: None,
            fix_task: None,
            approved_by: None,
            created_at: "2025-05-01T11:00:00Z".parse().unwrap(),
            updated_at: "2025-05-01T11:58:00Z".parse().unwrap(),
        }
    }

    fn code(r: &CliResult<String>) -> u8 {
        match r {
            Ok(_) => 0,
            Err(e) if e.exit_code() == std::process::ExitCode::from(1) => 1,
            Err(e) => panic!("unexpected exit code for {e:?}"),
        }
    }

    #[test]
    fn states_decide_whether_merge_waits_succeeds_or_fails() {
        let waited = Duration::from_secs(1800);
        for state in MergeState::ALL.iter().copied() {
            let (expected_outcome, expected_code) = match state {
                MergeState::Merged => (Outcome::Merged, 0),
                MergeState::NeedsFix | MergeState::Cancelled => (Outcome::Failed, 1),
                _ => (Outcome::Pending, 1),
            };
            assert_eq!(outcome(state), expected_outcome, "{state}");
            assert_eq!(code(&verdict(&mr(state), waited)), expected_code, "{state}");
        }
    }

    #[test]
    fn verdicts_say_what_happened_and_what_to_do() {
        let mut m = mr(MergeState::Merged);
        m.commit = Some("0123456789abcdef0123".into());
        assert_eq!(
            verdict(&m, Duration::ZERO).unwrap(),
            "merged sf/k3f9xq into main as 0123456789ab"
        );
        m.commit = None;
        assert_eq!(
            verdict(&m, Duration::ZERO).unwrap(),
            "merged sf/k3f9xq into main"
        );

        let mut m = mr(MergeState::NeedsFix);
        m.last_result = Some("tests failed (exit 101)".into());
        m.fix_task = Some("m2n3p4".parse().unwrap());
        let err = verdict(&m, Duration::ZERO).unwrap_err();
        assert_eq!(
            err.message,
            "merge request #12 needs a fix: tests failed (exit 101)"
        );
        assert!(err.hints[0].contains("fix task m2n3p4"), "{:?}", err.hints);
        assert!(err.hints.iter().any(|h| h.contains("sfctl mr retry 12")));

        let mut m = mr(MergeState::Cancelled);
        m.reason = Some("cancelled by hand".into());
        let err = verdict(&m, Duration::ZERO).unwrap_err();
        assert_eq!(
            err.message,
            "merge request #12 was cancelled: cancelled by hand"
        );

        let mut m = mr(MergeState::AwaitingApproval);
        m.reason = Some("require_approval".into());
        let err = verdict(&m, Duration::from_millis(1_800_400)).unwrap_err();
        assert_eq!(err.code, "timeout");
        assert_eq!(
            err.message,
            "merge request #12 is still awaiting_approval after 30m: require_approval"
        );
        assert!(err.hints.iter().any(|h| h.contains("sfctl mr show 12")));
        assert!(err.hints.iter().any(|h| h.contains("sfctl mr approve 12")));
    }

    #[test]
    fn progress_lines_name_the_state_and_reason() {
        let mut m = mr(MergeState::Testing);
        m.reason = Some("ignored".into());
        assert_eq!(progress_line(&m), "testing…");
        m.state = MergeState::Waiting;
        m.reason = Some("main has local changes in /repo".into());
        assert_eq!(
            progress_line(&m),
            "waiting: main has local changes in /repo"
        );
        m.reason = None;
        assert_eq!(progress_line(&m), "waiting");
        m.state = MergeState::AwaitingApproval;
        assert!(progress_line(&m).contains("sfctl mr approve 12"));
    }

    #[test]
    fn branch_comes_from_the_flag_then_the_env_then_git() {
        let git_says = |b: &'static str| move || Ok(b.to_owned());
        let no_git = || -> CliResult<String> { panic!("git must not run") };
        assert_eq!(
            resolve_branch(Some("feat"), Some("env".into()), no_git).unwrap(),
            "feat"
        );
        assert_eq!(
            resolve_branch(None, Some(" env ".into()), no_git).unwrap(),
            "env"
        );
        assert_eq!(
            resolve_branch(None, Some(String::new()), git_says("topic")).unwrap(),
            "topic"
        );
        let err = resolve_branch(None, None, git_says("HEAD")).unwrap_err();
        assert_eq!(
            err.message,
            "HEAD is detached: there is no current branch to merge"
        );
        assert!(err.hints[0].contains("--branch"), "{:?}", err.hints);
        assert!(resolve_branch(Some(" "), None, no_git).is_err());
    }

    #[test]
    fn the_result_column_prefers_the_reason_and_is_cut_short() {
        let mut m = mr(MergeState::Queued);
        assert_eq!(result_text(&m), "-");
        m.last_result = Some("tests passed".into());
        assert_eq!(result_text(&m), "tests passed");
        m.reason = Some(format!("{}\nsecond line", "x".repeat(100)));
        let text = result_text(&m);
        assert_eq!(text.chars().count(), RESULT_WIDTH);
        assert!(text.ends_with('…'), "{text}");
    }

    #[test]
    fn the_queue_table_renders_plainly() {
        let mut a = mr(MergeState::NeedsFix);
        a.last_result = Some("tests failed".into());
        let mut b = mr(MergeState::Queued);
        b.id = MergeRequestId(13);
        b.task = None;
        b.branch = "feature".into();
        b.attempts = 0;
        assert_eq!(
            render_mrs(&[a, b], false, None),
            "ID   STATE      TASK    BRANCH     TARGET  ATTEMPTS  RESULT\n\
             #12  needs_fix  k3f9xq  sf/k3f9xq  main    1         tests failed\n\
             #13  queued     -       feature    main    0         -"
        );
    }

    #[test]
    fn show_lists_every_field() {
        let mut m = mr(MergeState::Merged);
        m.commit = Some("abc".into());
        m.log_path = Some("/ws/.sf/logs/merge-12.log".into());
        let text = show_text(&m, false, now());
        assert!(
            text.starts_with("merge request #12: Fix the flaky login test\nstate:       merged\n"),
            "{text}"
        );
        for key in [
            "task:",
            "branch:",
            "target:",
            "reason:",
            "attempts:",
            "last result:",
            "commit:",
            "fix task:",
            "approved by:",
            "test log:",
            "created:",
            "updated:",
        ] {
            assert!(text.contains(key), "{key} missing in\n{text}");
        }
        assert!(
            text.contains("updated:     2025-05-01 11:58:00Z (2m ago)"),
            "{text}"
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), (1, "b\nc"));
        assert_eq!(tail_lines("a\nb\nc", 2), (1, "b\nc"));
        assert_eq!(tail_lines("a\nb\n", 5), (0, "a\nb"));
        assert_eq!(tail_lines("", 5), (0, ""));
        assert_eq!(tail_lines("a\n\n\nb\n", 1), (3, "b"));
        assert_eq!(tail_lines("a\nb", 0), (2, ""));
    }

    #[test]
    fn ids_and_flags_parse() {
        let cli = crate::Cli::try_parse_from(["sfctl", "mr", "show", "#12", "--full"]).unwrap();
        assert!(matches!(
            cli.command,
            crate::cli::Command::Mr(MrCommand::Show {
                id: MergeRequestId(12),
                full: true
            })
        ));
        assert!(crate::Cli::try_parse_from(["sfctl", "mr", "retry", "x"]).is_err());
        let cli = crate::Cli::try_parse_from(["sfctl", "merge", "--into", "main"]).unwrap();
        match cli.command {
            crate::cli::Command::Merge(a) => {
                assert_eq!(a.timeout, Duration::from_secs(1800));
                assert_eq!(a.into.as_deref(), Some("main"));
                assert!(!a.no_wait);
            }
            other => panic!("{other:?}"),
        }
        let err = crate::Cli::try_parse_from(["sfctl", "merge", "--no-wait", "--timeout", "1m"]);
        assert!(err.is_err(), "--timeout means nothing with --no-wait");
    }
}
