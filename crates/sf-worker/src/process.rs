//! Spawning, watching and stopping worker processes.

use std::fs::OpenOptions;
use std::io::{BufRead as _, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};

/// What to run.
#[derive(Clone)]
pub struct SpawnSpec {
    /// The executable.
    pub program: String,
    /// Its arguments (argv, never a shell string).
    pub args: Vec<String>,
    /// The whole environment (the daemon's own is not inherited).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// stdout and stderr go here (appended).
    pub log_path: PathBuf,
    /// Keep at most this much of the output in the log (head and tail, see [`crate::log`]);
    /// `None`: the child appends to the log file directly, without a cap.
    pub log_cap: Option<crate::log::LogCap>,
    /// Written to stdin, which is then closed; `None`: stdin is `/dev/null`.
    pub stdin: Option<String>,
    /// Progress in the output is tracked here (only with a `log_cap`).
    pub activity: Option<crate::log::Activity>,
    /// The sandbox the child enters before exec.
    pub sandbox: Option<std::sync::Arc<crate::sandbox::Prepared>>,
    /// `(alias, value)` of the secrets the child holds: each value is replaced by
    /// `[secret:ALIAS]` in its output (only with a `log_cap`; see [`crate::redact`]).
    pub secrets: Vec<(String, String)>,
}

/// Names of the environment only: its values may be secrets.
impl std::fmt::Debug for SpawnSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpawnSpec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

/// A failed spawn.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The log file could not be opened.
    #[error("failed to open the log file {}", path.display())]
    Log {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The executable could not be started.
    #[error("failed to start `{program}`")]
    Exec {
        /// What.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A started worker.
#[derive(Debug)]
pub struct Spawned {
    /// The child; its supervisor must `wait()` it.
    pub child: Child,
    /// Its pid, which is also its process group id.
    pub pid: u32,
    /// Its start time from `/proc/<pid>/stat`, to tell it from a later process with the same pid.
    pub start_time: Option<u64>,
    /// The copier of its capped log (when [`SpawnSpec::log_cap`] is set).
    pub log: Option<crate::log::Capture>,
}

/// Starts a worker in a process group of its own.
pub(crate) fn spawn(spec: &SpawnSpec) -> Result<Spawned, SpawnError> {
    let log_err = |source| SpawnError::Log {
        path: spec.log_path.clone(),
        source,
    };
    let (log, capture) = match spec.log_cap {
        Some(cap) => {
            let (end, capture) =
                crate::log::start(&spec.log_path, cap, spec.activity.clone(), &spec.secrets)
                    .map_err(log_err)?;
            (end, Some(capture))
        }
        // fail closed: output written straight to the file could not be filtered
        None if !spec.secrets.is_empty() => {
            return Err(log_err(std::io::Error::other(
                "a process that holds secrets needs a capped log (its output is filtered for them)",
            )));
        }
        None => {
            if let Some(dir) = spec.log_path.parent() {
                std::fs::create_dir_all(dir).map_err(log_err)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600) // private: a run log may quote secrets
                .open(&spec.log_path)
                .map_err(log_err)?;
            (file, None)
        }
    };
    let log2 = log.try_clone().map_err(log_err)?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .process_group(0)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .kill_on_drop(false);
    if let Some(sandbox) = spec.sandbox.clone() {
        enter_before_exec(&mut cmd, sandbox);
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError::Exec {
        program: spec.program.clone(),
        source,
    })?;
    let pid = child.id().unwrap_or_default();
    if let (Some(text), Some(mut stdin)) = (spec.stdin.clone(), child.stdin.take()) {
        tokio::spawn(async move {
            // a worker that exits without reading its prompt is not our error
            let _ = stdin.write_all(text.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
    }
    Ok(Spawned {
        child,
        pid,
        start_time: process_start_time(pid),
        log: capture,
    })
}

/// Whatever descriptors the daemon inherited from whoever started it (a shell's, a
/// supervisor's, a test harness's) must not reach the agents it starts: every descriptor
/// above stderr is marked close-on-exec. Call first thing, before any thread exists; sfd's
/// own descriptors are opened close-on-exec by the standard library, so a child gets its
/// stdin, stdout and stderr only.
#[expect(unsafe_code, reason = "close_range(2) and fcntl(2) on raw descriptors")]
pub fn close_inherited_on_exec() {
    use nix::libc;
    // SAFETY: setting the close-on-exec flag changes no descriptor's meaning for this
    // process; nothing else runs yet.
    let done = unsafe {
        libc::close_range(
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC.cast_signed(),
        )
    };
    if done == 0 {
        return;
    }
    // kernels before 5.11: one descriptor at a time
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; a descriptor closed meanwhile (the listing's own) fails with
        // EBADF, which is harmless.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

/// Makes the child enter `sandbox` between fork and exec.
#[expect(unsafe_code, reason = "pre_exec runs in the forked child")]
fn enter_before_exec(cmd: &mut Command, sandbox: std::sync::Arc<crate::sandbox::Prepared>) {
    // SAFETY: `enter` makes only async-signal-safe system calls on data prepared before the
    // fork (see `sandbox::Prepared::enter`); it neither allocates nor takes a lock.
    unsafe {
        cmd.pre_exec(move || sandbox.enter());
    }
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may contain spaces and parentheses: split after the last ')'
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is still the process that started at `start_time` (and not a zombie).
pub fn is_same_process(pid: u32, start_time: Option<u64>) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let rest = &stat[close + 2..];
    let mut fields = rest.split_whitespace();
    if fields.next() == Some("Z") {
        return false;
    }
    start_time.is_none_or(|t| process_start_time(pid) == Some(t))
}

/// A live process of ours whose environment holds `KEY=VALUE`: finds a worker whose pid
/// was never recorded because the daemon died between spawning it and writing the pid
/// down. Returns its pid and start time.
pub fn find_by_env(key: &str, value: &str) -> Option<(u32, Option<u64>)> {
    let needle = format!("{key}={value}");
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
                && is_same_process(*pid, None)
        })
        .map(|pid| (pid, process_start_time(pid)))
}

/// The values of the variables `keys` in the environment `pid` was started with (as far
/// as `/proc/<pid>/environ` can be read and `pid` is still the process that started at
/// `start_time`): what a run adopted after a restart was given.
pub fn environ_values(pid: u32, start_time: Option<u64>, keys: &[&str]) -> Vec<(String, String)> {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return Vec::new();
    };
    if !is_same_process(pid, start_time) {
        return Vec::new();
    }
    env.split(|&b| b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok()?.split_once('='))
        .filter(|(k, _)| keys.contains(k))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Whether any live (non-zombie) process of the group is left. Zombies do not count: a
/// killed grandchild waits for whoever inherited it to reap it, which is not up to us.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    if matches!(killpg(Pid::from_raw(raw), None), Err(Errno::ESRCH)) {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let mut f = stat[close + 2..].split_whitespace();
            let state = f.next();
            let pgrp = f.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(pgid) && state != Some("Z")
        })
}

/// The signals sf sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
    /// SIGKILL.
    Kill,
}

/// Signals a whole process group; a group already gone is not an error.
pub fn signal_group(pgid: u32, sig: StopSignal) {
    let Ok(raw) = i32::try_from(pgid) else { return };
    if raw <= 1 {
        return;
    }
    let sig = match sig {
        StopSignal::Term => Signal::SIGTERM,
        StopSignal::Int => Signal::SIGINT,
        StopSignal::Kill => Signal::SIGKILL,
    };
    if let Err(e) = killpg(Pid::from_raw(raw), sig)
        && e != Errno::ESRCH
    {
        tracing::warn!(pgid, error = %e, "failed to signal a process group");
    }
}

/// Signals one process.
pub fn signal_process(pid: u32, sig: StopSignal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let sig = match sig {
        StopSignal::Term => Signal::SIGTERM,
        StopSignal::Int => Signal::SIGINT,
        StopSignal::Kill => Signal::SIGKILL,
    };
    let _ = kill(Pid::from_raw(raw), sig);
}

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The group left after SIGTERM.
    Terminated,
    /// It had to be killed.
    Killed,
}

/// Stops a process group: SIGTERM, up to `grace` for it to leave, then SIGKILL, then one
/// more SIGKILL for stragglers. Works for children and adopted processes alike (it polls
/// the group rather than waiting on a child).
pub async fn stop_group(pgid: u32, grace: Duration) -> Stopped {
    signal_group(pgid, StopSignal::Term);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !group_alive(pgid) {
            return Stopped::Terminated;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal_group(pgid, StopSignal::Kill);
    Stopped::Killed
}

/// How a worker process ended, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal, if killed by one.
    pub signal: Option<i32>,
}

impl From<ExitStatus> for ExitInfo {
    fn from(s: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt as _;
        Self {
            code: s.code(),
            signal: s.signal(),
        }
    }
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            (None, None) => f.write_str("unknown exit"),
        }
    }
}

/// Waits for an adopted (not our child) process to go away, polling.
pub async fn wait_adopted(pid: u32, start_time: Option<u64>) {
    while is_same_process(pid, start_time) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The last `n` lines of a log file (reads at most the last 64 KiB).
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let lines: Vec<String> = buf
        .lines()
        .map_while(Result::ok)
        .map(|l| l.chars().take(500).collect())
        .collect();
    let skip = lines.len().saturating_sub(n);
    lines.into_iter().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str) -> SpawnSpec {
        SpawnSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("ONLY".into(), "this".into()),
            ],
            cwd: dir.to_owned(),
            log_path: dir.join("logs/run.log"),
            log_cap: None,
            stdin: Some("the prompt\n".into()),
            activity: None,
            sandbox: None,
            secrets: Vec::new(),
        }
    }

    #[tokio::test]
    async fn output_goes_to_the_log_and_the_environment_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(
            dir.path(),
            "read line; echo \"got $line\"; echo \"only=$ONLY home=${HOME:-unset}\" >&2; exit 3",
        );
        let mut w = spawn(&s).unwrap();
        assert!(w.start_time.is_some());
        let status = ExitInfo::from(w.child.wait().await.unwrap());
        assert_eq!(status.code, Some(3));
        let log = std::fs::read_to_string(&s.log_path).unwrap();
        assert!(log.contains("got the prompt"), "{log}");
        assert!(log.contains("only=this home=unset"), "{log}");
        assert_eq!(tail_lines(&s.log_path, 1), vec!["only=this home=unset"]);
    }

    #[tokio::test]
    async fn stopping_kills_the_whole_group_including_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!(
            "trap '' TERM; sleep 30 & echo $! > {}; wait",
            pidfile.display()
        );
        let w = spawn(&SpawnSpec {
            stdin: None,
            activity: None,
            sandbox: None,
            secrets: Vec::new(),
            ..spec(dir.path(), &script)
        })
        .unwrap();
        let (pid, mut child) = (w.pid, w.child);
        // like the daemon's supervisor: someone always reaps the leader
        let waiter = tokio::spawn(async move { ExitInfo::from(child.wait().await.unwrap()) });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "grandchild never started"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gc_start = process_start_time(grandchild);
        // the whole group ignores SIGTERM, so this escalates to SIGKILL
        let how = stop_group(pid, Duration::from_millis(300)).await;
        assert_eq!(how, Stopped::Killed);
        let status = waiter.await.unwrap();
        assert_eq!(status.signal, Some(9));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while is_same_process(grandchild, gc_start) {
            assert!(
                std::time::Instant::now() < deadline,
                "grandchild survived its group"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!group_alive(pid));
    }

    #[tokio::test]
    async fn a_worker_is_found_by_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let token = format!("tok{}", std::process::id());
        let mut s = spec(dir.path(), "sleep 5");
        s.env.push(("SF_RUN".into(), token.clone()));
        s.stdin = None;
        let mut w = spawn(&s).unwrap();
        // until the child has exec'd, /proc shows the parent's environment: poll briefly
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let found = loop {
            if let Some(f) = find_by_env("SF_RUN", &token) {
                break Some(f);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(found.map(|f| f.0), Some(w.pid));
        assert_eq!(find_by_env("SF_RUN", "no-such-token"), None);
        // and the values it was given can be read back (for an adopted run's secrets)
        let start = found.and_then(|f| f.1);
        assert_eq!(
            environ_values(w.pid, start, &["SF_RUN", "NOT_SET"]),
            [("SF_RUN".to_owned(), token.clone())]
        );
        assert!(environ_values(w.pid, start.map(|t| t + 1), &["SF_RUN"]).is_empty());
        signal_group(w.pid, StopSignal::Kill);
        let _ = w.child.wait().await;
    }

    #[test]
    fn start_times_tell_processes_apart() {
        let me = std::process::id();
        let t = process_start_time(me).unwrap();
        assert!(is_same_process(me, Some(t)));
        assert!(!is_same_process(me, Some(t + 1)));
        assert!(!is_same_process(u32::MAX - 1, None));
    }
}
