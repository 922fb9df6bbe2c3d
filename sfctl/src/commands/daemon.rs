//! `sfctl daemon start|status|stop|restart`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Subcommand;
use interprocess::local_socket::GenericFilePath;
use interprocess::local_socket::prelude::*;
use serde_json::json;
use sf_client::ClientError;
use sf_proto::{DaemonStatus, FrameError, Request, Response};

use crate::context::Context;
use crate::context::expect_response;
use crate::error::{CliError, CliErrorKind, CliResult};
use crate::output::key_values;
use crate::time;

const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);
const PROGRESS_AFTER: Duration = Duration::from_secs(1);
const LOG_TAIL_LINES: usize = 20;
/// What an sfd that finds the workspace locked says (`sf-daemon`'s `lock.rs`).
const LOST_LOCK: &str = "another sfd is already running";

/// Start, inspect and stop the daemon
#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Start sfd in the background for this workspace
    #[command(
        long_about = "\
Start sfd in the background for this workspace and wait (up to 15 s) until it answers.

The binary is $SF_SFD if set, else `sfd` next to sfctl, else `sfd` on PATH. It runs in its
own process group with its output appended to .sf/logs/sfd.log; SF_LOG sets its log level.
If sfd is already running this says so and exits 0.",
        after_help = "\
Examples:
  sfctl daemon start
  SF_LOG=debug sfctl daemon start
  sfctl daemon start --json | jq .pid"
    )]
    Start,
    /// Show what sfd is doing (exit 3 if it is not running)
    #[command(after_help = "\
Examples:
  sfctl daemon status
  sfctl daemon status --json | jq .running_workers
  sfctl daemon status >/dev/null 2>&1 || sfctl daemon start")]
    Status,
    /// Stop sfd gracefully and wait until it has gone
    #[command(
        long_about = "\
Ask sfd to shut down gracefully and wait up to 30 s until it no longer answers. Workers
keep running while sfd is down: the next `sfctl daemon start` adopts each one still alive
and reaps (saving its work) each one that ended meanwhile. To stop workers, use
`sfctl agent stop NAME` first. Exits 0 if it was not running.",
        after_help = "\
Examples:
  sfctl daemon stop
  sfctl daemon stop && cargo install --path sfd && sfctl daemon start"
    )]
    Stop,
    /// Check .sf/config.toml as sfd would read it, without starting or stopping anything
    #[command(after_help = "\
Examples:
  sfctl daemon check
  sfctl daemon check && sfctl daemon restart")]
    Check,
    /// Apply a changed .sf/config.toml without stopping sfd or its workers
    #[command(
        long_about = "\
Read .sf/config.toml again and apply it: runs, merges and steward fires started from now on
use the new settings; runs in flight keep the ones they started with. A file sfd would refuse
changes nothing (exit 1, with the mistake). The socket, idle_timeout, max_connections and
log_level apply only at the next `sfctl daemon restart` (said when changed).",
        after_help = "\
Examples:
  sfctl daemon reload
  sfctl daemon check && sfctl daemon reload
  sfctl daemon reload --json | jq -r .message"
    )]
    Reload,
    /// Stop sfd if it is running, then start it
    #[command(after_help = "\
Examples:
  sfctl daemon restart                     # e.g. after editing .sf/config.toml
  SF_LOG=debug sfctl daemon restart")]
    Restart,
}

pub fn run(ctx: &mut Context, cmd: DaemonCommand) -> CliResult {
    match cmd {
        DaemonCommand::Start => {
            let started = start(ctx)?;
            print_started(ctx, &started)
        }
        DaemonCommand::Status => status(ctx),
        DaemonCommand::Stop => {
            let stopped = stop(ctx)?;
            let report = json!({ "stopped": stopped.is_some(), "pid": stopped });
            ctx.ui.emit(&report, |ui, _| {
                ui.line(if stopped.is_some() {
                    "sfd stopped"
                } else {
                    "sfd is not running"
                })
            })
        }
        DaemonCommand::Reload => {
            let resp = ctx.request(&Request::ReloadConfig)?;
            match resp {
                Response::Ok { message } => ctx.ui.emit_message(&message),
                other => Err(CliError::unexpected(&other)),
            }
        }
        DaemonCommand::Check => {
            check(ctx)?;
            ctx.ui
                .emit(&json!({ "ok": true }), |ui, _| ui.line("configuration ok"))
        }
        DaemonCommand::Restart => {
            // a configuration sfd would refuse must not cost the running daemon
            check(ctx)?;
            let stopped = stop(ctx)?;
            if !ctx.ui.json && stopped.is_some() {
                ctx.ui.line("sfd stopped")?;
                ctx.ui.flush()?;
            }
            let started = start(ctx)?;
            if ctx.ui.json {
                return ctx.ui.json_value(&json!({
                    "stopped": stopped.is_some(),
                    "started": started.started,
                    "pid": started.pid,
                    "socket": started.socket,
                }));
            }
            print_started(ctx, &started)
        }
    }
}

struct Started {
    started: bool,
    pid: u32,
    socket: PathBuf,
}

fn print_started(ctx: &mut Context, s: &Started) -> CliResult {
    // the status is answered once start-up (recovery included) is over
    let recovered = if s.started {
        ctx.connect_once(&s.socket)
            .and_then(|mut c| Ok(c.request(&Request::Status)?))
            .ok()
            .and_then(|r| match r {
                Response::Status(st) => st.recovered,
                _ => None,
            })
    } else {
        None
    };
    if ctx.ui.json {
        return ctx.ui.json_value(&json!({
            "started": s.started,
            "pid": s.pid,
            "socket": s.socket,
            "recovered": recovered,
        }));
    }
    if !s.started {
        return ctx
            .ui
            .line(format!("sfd is already running (pid {})", s.pid));
    }
    ctx.ui.line(format!(
        "sfd started (pid {}, socket {})",
        s.pid,
        s.socket.display()
    ))?;
    match recovered {
        Some(r) => ctx.ui.line(format!("recovered {r}")),
        None => Ok(()),
    }
}

/// The daemon binary: `$SF_SFD`, else `sfd` next to this executable, else `sfd` on PATH.
fn locate_sfd() -> PathBuf {
    if let Some(p) = std::env::var_os("SF_SFD").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        let sibling = exe.with_file_name("sfd");
        if sibling.is_file() {
            return sibling;
        }
    }
    PathBuf::from("sfd")
}

/// Runs `sfd --check` on the workspace: the configuration as the daemon would read it.
fn check(ctx: &mut Context) -> CliResult {
    let ws = ctx.workspace()?;
    let bin = locate_sfd();
    let out = Command::new(&bin)
        .arg("--workspace")
        .arg(&ws.root)
        .arg("--check")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CliError::io(format!("failed to run {}", bin.display()), &e))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    let why = why
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or("sfd refused its configuration")
        .to_owned();
    Err(CliError::refused("invalid_input", why).with_hint(format!(
        "fix {} and run `sfctl daemon check` again; a running sfd was left alone",
        ws.dir.join("config.toml").display()
    )))
}

fn start(ctx: &mut Context) -> CliResult<Started> {
    let ws = ctx.workspace()?;
    let socket = ctx.socket()?;
    match ctx.connect_once(&socket) {
        Ok(client) => {
            return Ok(Started {
                started: false,
                pid: client.daemon_pid,
                socket,
            });
        }
        Err(e) if e.kind == CliErrorKind::Unreachable => {}
        Err(e) => return Err(e),
    }

    let logs = ws.logs();
    fs::create_dir_all(&logs)
        .map_err(|e| CliError::io(format!("failed to create {}", logs.display()), &e))?;
    let log_path = ws.daemon_log();
    let log_err =
        |e: std::io::Error| CliError::io(format!("failed to open {}", log_path.display()), &e);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(log_err)?;
    let log_start = log.metadata().map_err(log_err)?.len();
    let log_dup = log.try_clone().map_err(log_err)?;

    let bin = locate_sfd();
    ctx.ui.debug(format!(
        "spawning {} --workspace {}",
        bin.display(),
        ws.root.display()
    ));
    let mut command = Command::new(&bin);
    command
        .arg("--workspace")
        .arg(&ws.root)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_dup)
        .process_group(0);
    if let Some(s) = &ctx.global.socket {
        command.env("SF_SOCKET", s);
    }
    let mut child = command.spawn().map_err(|e| {
        CliError::refused("not_found", format!("failed to run {}", bin.display()))
            .with_cause(e.to_string())
            .with_hint("set SF_SFD to the sfd binary, or install sfd next to sfctl or on PATH")
    })?;

    let begun = Instant::now();
    let mut announced = false;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                // Another `sfctl daemon start` (or `sfd`) may have won the race for the
                // workspace lock: ours gave up, theirs is starting. Report it once it
                // answers. (Probing the lock ourselves could make a starting sfd lose it.)
                let lost_lock = log_tail(&log_path, log_start, usize::MAX)
                    .iter()
                    .any(|l| l.contains(LOST_LOCK));
                let deadline = if lost_lock {
                    begun + START_TIMEOUT
                } else {
                    Instant::now()
                };
                if let Some(pid) = wait_for_other(&socket, deadline) {
                    return Ok(Started {
                        started: false,
                        pid,
                        socket,
                    });
                }
                return Err(start_failed(
                    ctx,
                    &format!("it exited with {status}"),
                    &log_path,
                    log_start,
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(CliError::io("failed to check on sfd", &e)),
        }
        match sf_client::Client::connect(&socket, &crate::context::client_name(), None) {
            Ok(client) => {
                // Whoever answers may be another sfd that won the lock; ours then exits.
                return Ok(Started {
                    started: client.daemon_pid == child.id(),
                    pid: client.daemon_pid,
                    socket,
                });
            }
            Err(ClientError::Unreachable { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if begun.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let why = format!(
                "it did not answer within {}s and was killed",
                START_TIMEOUT.as_secs()
            );
            return Err(start_failed(ctx, &why, &log_path, log_start));
        }
        if !announced && begun.elapsed() > PROGRESS_AFTER {
            ctx.ui.status("starting sfd...");
            announced = true;
        }
        std::thread::sleep(POLL);
    }
}

/// After our sfd exited: the pid of another daemon answering on `socket`, polled until
/// `deadline` (at least once).
fn wait_for_other(socket: &Path, deadline: Instant) -> Option<u32> {
    loop {
        if let Ok(client) = sf_client::Client::connect(socket, &crate::context::client_name(), None)
        {
            return Some(client.daemon_pid);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

fn start_failed(ctx: &Context, why: &str, log: &Path, from: u64) -> CliError {
    let tail = log_tail(log, from, LOG_TAIL_LINES);
    if !tail.is_empty() {
        ctx.ui.status(format!("last lines of {}:", log.display()));
        for line in &tail {
            ctx.ui.status(format!("  {line}"));
        }
    }
    CliError::refused("internal", format!("sfd failed to start ({why})"))
        .with_hint(format!("see {}", log.display()))
}

/// The last `n` lines written to `path` after byte `from`.
fn log_tail(path: &Path, from: u64, n: usize) -> Vec<String> {
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = from.max(len.saturating_sub(64 * 1024));
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

fn status(ctx: &mut Context) -> CliResult {
    let socket = ctx.socket()?;
    let resp = ctx
        .connect_once(&socket)
        .and_then(|mut c| Ok(c.request(&Request::Status)?));
    let last = ctx.workspace().ok().map(|ws| (ws.lock(), ws.daemon_log()));
    let resp = resp.map_err(|e| {
        if e.kind == CliErrorKind::Unreachable {
            let how = last
                .as_ref()
                .and_then(|(lock, log)| last_end(lock, log, chrono::Utc::now()));
            let mut err = CliError::unreachable(match &how {
                Some(how) => format!("sfd is not running: {how}"),
                None => "sfd is not running".to_owned(),
            })
            .with_cause(format!("nothing answers on {}", socket.display()));
            if how.is_some() {
                err.hints.insert(
                    0,
                    "`sfctl daemon start` adopts the workers still running and saves the work of those that are not".to_owned(),
                );
            }
            err
        } else {
            e
        }
    })?;
    let st = expect_response!(resp, Response::Status(s) => s);
    ctx.ui
        .emit(&st, |ui, st| ui.line(render_status(st, chrono::Utc::now())))
}

pub fn render_status(st: &DaemonStatus, now: sf_proto::Timestamp) -> String {
    let tasks = if st.tasks.is_empty() {
        "none".to_owned()
    } else {
        st.tasks
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let paused = if st.paused_adapters.is_empty() {
        "none".to_owned()
    } else {
        st.paused_adapters
            .iter()
            .map(|(a, until)| format!("{a} until {}", time::both(*until, now)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // a policy that cannot be used stops every spawn: it comes before anything else
    let mut first = String::new();
    if let Some(e) = &st.policy_error {
        first = format!(
            "NOTHING IS SPAWNED (POLICY_MISSING): {e}\nhint: restore it (`sfctl init` writes the \
             default), then `sfctl daemon reload`\n"
        );
    }
    let out = key_values(&[
        ("pid", st.pid.to_string()),
        (
            "version",
            format!("{} (protocol {})", st.version, st.protocol),
        ),
        (
            "uptime",
            format!(
                "{} (since {})",
                time::duration_secs(st.uptime_secs),
                time::short(st.started_at)
            ),
        ),
        ("socket", st.socket.clone()),
        ("workspace", st.workspace.clone()),
        ("tick interval", format!("{} ms", st.tick_interval_ms)),
        ("ticks", st.ticks.to_string()),
        (
            "last tick",
            st.last_tick_us.map_or_else(
                || "-".to_owned(),
                |us| format!("{:.1} ms", us as f64 / 1000.0),
            ),
        ),
        ("tasks", tasks),
        ("running workers", st.running_workers.to_string()),
        ("paused adapters", paused),
        ("sandbox", st.sandbox.clone()),
    ]);
    let mut out = first + &out;
    if let Some(r) = &st.recovered {
        out.push_str(&format!("\nrecovered: {r}"));
    }
    for w in &st.warnings {
        out.push_str(&format!("\nwarning: {w}"));
    }
    out
}

/// Asks the daemon to shut down and waits until it has gone. `None` if it was not running.
fn stop(ctx: &mut Context) -> CliResult<Option<u32>> {
    let socket = ctx.socket()?;
    let mut client = match ctx.connect_once(&socket) {
        Ok(c) => c,
        Err(e) if e.kind == CliErrorKind::Unreachable => return Ok(None),
        Err(e) => return Err(e),
    };
    let pid = client.daemon_pid;
    match client.request(&Request::Shutdown) {
        Ok(Response::Ok { .. }) | Err(ClientError::Frame(FrameError::Closed)) => {}
        Ok(other) => return Err(CliError::unexpected(&other)),
        Err(e) => return Err(e.into()),
    }
    drop(client);

    let lock = ctx.workspace().ok().map(|ws| ws.lock());
    let begun = Instant::now();
    let mut announced = false;
    loop {
        let answering = socket
            .as_path()
            .to_fs_name::<GenericFilePath>()
            .and_then(LocalSocketStream::connect)
            .is_ok();
        if !answering && !lock.as_deref().is_some_and(lock_held) {
            return Ok(Some(pid));
        }
        if begun.elapsed() > STOP_TIMEOUT {
            return Err(CliError::refused(
                "internal",
                format!(
                    "sfd (pid {pid}) did not stop within {}s",
                    STOP_TIMEOUT.as_secs()
                ),
            )
            .with_hint(format!(
                "check .sf/logs/sfd.log, or kill it with `kill {pid}`"
            )));
        }
        if !announced && begun.elapsed() > PROGRESS_AFTER {
            ctx.ui
                .status(format!("waiting for sfd (pid {pid}) to stop..."));
            announced = true;
        }
        std::thread::sleep(POLL);
    }
}

/// How the last daemon ended, from the lock file it leaves (see sf-daemon's `lock.rs`),
/// when that is worth telling: it exited unexpectedly (the file still names its pid, which
/// is dead), or it stopped on a failure. `None` after a clean stop, or when unknown.
fn last_end(lock: &Path, log: &Path, now: sf_proto::Timestamp) -> Option<String> {
    let text = std::fs::read_to_string(lock).ok()?;
    let mut words = text.split_whitespace();
    let first = words.next()?;
    let at = |ms: &str| {
        ms.parse::<i64>()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| time::both(t, now))
    };
    match first {
        "stopped" => None,
        "failed" => {
            let when = at(words.next()?)?;
            let why: Vec<&str> = words.collect();
            Some(format!("it stopped at {when} because {}", why.join(" ")))
        }
        pid => {
            let pid: i32 = pid.parse().ok()?;
            if std::path::Path::new(&format!("/proc/{pid}")).exists() && lock_held(lock) {
                return None; // alive: it is starting, or does not answer (said elsewhere)
            }
            let started = words.next().and_then(at);
            let heard = std::fs::metadata(log)
                .and_then(|m| m.modified())
                .ok()
                .map(|t| time::both(chrono::DateTime::<chrono::Utc>::from(t), now));
            let mut out = format!("it exited unexpectedly (pid {pid}");
            if let Some(s) = started {
                out.push_str(&format!(", started {s}"));
            }
            out.push(')');
            if let Some(h) = heard {
                out.push_str(&format!("; its log was last written {h}"));
            }
            Some(out)
        }
    }
}

/// Whether some process (the daemon) holds the workspace lock.
fn lock_held(path: &Path) -> bool {
    match File::open(path) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sf_proto::TaskStatus;

    use super::*;

    #[test]
    fn status_is_aligned_key_values() {
        let now: sf_proto::Timestamp = "2025-05-01T12:00:00Z".parse().unwrap();
        let st = DaemonStatus {
            pid: 42,
            version: "sfd 0.1.0".into(),
            protocol: 1,
            started_at: "2025-05-01T11:00:00Z".parse().unwrap(),
            uptime_secs: 3600,
            workspace: "/repo".into(),
            socket: "/repo/.sf/run/sfd.sock".into(),
            tick_interval_ms: 5000,
            ticks: 720,
            last_tick_us: Some(1500),
            tasks: BTreeMap::from([(TaskStatus::Open, 3), (TaskStatus::InProgress, 1)]),
            running_workers: 1,
            paused_adapters: BTreeMap::new(),
            sandbox: "off: agents run with the user's whole authority".into(),
            warnings: Vec::new(),
            recovered: None,
            policy_error: None,
        };
        let text = render_status(&st, now);
        assert!(text.starts_with("pid:             42\n"), "{text}");
        assert!(
            text.contains("uptime:          1h (since 2025-05-01 11:00:00Z)"),
            "{text}"
        );
        assert!(
            text.contains("tasks:           open 3, in_progress 1"),
            "{text}"
        );
        assert!(text.contains("last tick:       1.5 ms"), "{text}");
    }

    #[test]
    fn log_tail_reads_only_new_lines() {
        let path = std::env::temp_dir().join(format!("sfctl-log-{}", std::process::id()));
        fs::write(&path, "old\nnew1\nnew2\nnew3\n").unwrap();
        assert_eq!(log_tail(&path, 4, 2), ["new2", "new3"]);
        assert_eq!(log_tail(&path, 0, 10).len(), 4);
        fs::remove_file(&path).unwrap();
    }
}
