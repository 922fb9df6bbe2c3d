//! The launcher: the one entry point through which sf starts a child process. Worker and
//! steward runs, playbook shell steps, worktree setup commands, merge tests and the reports
//! sf runs for a prompt each describe what to run as a [`RunSpec`] (what kind of process,
//! argv, working directory, environment, log, limits) and get a [`Run`] back, which is
//! waited on with one routine: to its exit, its wall-time limit or a stop, after which its
//! whole process group is stopped. One environment policy ([`Environment`]) applies to all
//! of them; a failure to start says whether the agent's own command is at fault
//! ([`LaunchError::agent_fault`]).
//!
//! This is the seam where a sandbox wraps every process sf starts for an agent or for code
//! an agent wrote.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::log::{Capture, CopyReport, LogCap};
use crate::process::{ExitInfo, SpawnError, SpawnSpec, Spawned, StopSignal, signal_group};

/// What kind of process a launch starts; it decides who is to blame when it cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An agent's CLI (a worker's or a steward's run): when its program is missing or
    /// not executable, the agent's configuration is at fault, not the task.
    Agent,
    /// A playbook's shell step (`sh -c`, written by the playbook's author).
    Shell,
    /// The configured worktree setup command (`sh -c`, trusted configuration).
    Setup,
    /// The configured merge test command (`sh -c`, trusted configuration).
    Tests,
    /// A report sf runs itself for a prompt (`sfctl docs check`).
    Report,
}

/// The environment of a launched process. sfd's own environment is never inherited:
/// the process gets the base variables ([`Environment::BASE`], from sfd's environment when
/// set), the configured pass-through list, what the launch sets itself (identity, adapter
/// variables) and its secrets, in that order, later ones winning.
#[derive(Clone, Default)]
pub struct Environment {
    /// Variables copied from sfd's environment when set, besides the base ones
    /// (`env_passthrough` in the configuration).
    pub passthrough: Vec<String>,
    /// A directory put first on `PATH` (where `sfctl` is, for agents).
    pub path_first: Option<PathBuf>,
    /// Variables set for this process.
    pub set: Vec<(String, String)>,
    /// Secrets, set last: variables whose values are also replaced by `[secret:NAME]` in
    /// the process's output (see [`crate::redact`]); a process holding any needs a capped
    /// log ([`RunSpec::log_cap`]).
    pub secrets: Vec<(String, String)>,
}

/// Names only: the values set may be secrets, and a spec may end up in a log.
impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("passthrough", &self.passthrough)
            .field("path_first", &self.path_first)
            .field("set", &self.set.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field(
                "secrets",
                &self.secrets.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Environment {
    /// What every process sf starts gets from sfd's environment, when set.
    pub const BASE: [&str; 6] = ["PATH", "HOME", "LANG", "TERM", "CARGO_HOME", "RUSTUP_HOME"];

    /// The whole environment, read from sfd's environment now.
    pub fn resolve(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Self::BASE
            .into_iter()
            .chain(self.passthrough.iter().map(String::as_str))
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
            .collect();
        let path = env.iter_mut().find(|(k, _)| k == "PATH");
        let system = "/usr/local/bin:/usr/bin:/bin";
        let joined = |rest: &str| match &self.path_first {
            Some(dir) => format!("{}:{rest}", dir.display()),
            None => rest.to_owned(),
        };
        match path {
            Some((_, v)) => *v = joined(v),
            None => env.push(("PATH".into(), joined(system))),
        }
        env.extend(self.set.iter().cloned());
        env.extend(self.secrets.iter().cloned());
        env
    }
}

/// How long a process may run, and how long it gets to leave when stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time; past it the process group is stopped.
    pub wall: Duration,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Stop it when its output shows no progress for a while (needs a capped log).
    pub stall: Option<Stall>,
}

/// When a run counts as making no progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// No progress for this long stops the run ([`EndReason::Stalled`]).
    pub after: Duration,
    /// Whose stream the output is: a retry notice of this CLI is not progress.
    pub stream: sf_proto::Adapter,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// What kind of process this is.
    pub kind: Kind,
    /// The executable.
    pub program: String,
    /// Its arguments (argv, never a shell string).
    pub args: Vec<String>,
    /// Written to stdin, which is then closed; `None`: stdin is `/dev/null`.
    pub stdin: Option<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The environment policy.
    pub env: Environment,
    /// stdout and stderr go here (appended).
    pub log: PathBuf,
    /// Keep at most this much of the output (head and tail, see [`crate::log`]); `None`:
    /// the process appends to the log directly (a process that is never adopted after a
    /// restart, so that nothing would drain a FIFO).
    pub log_cap: Option<LogCap>,
    /// Wall time and grace.
    pub limits: Limits,
    /// The sandbox it runs in (`None`: the user's whole authority).
    pub sandbox: Option<crate::sandbox::Policy>,
    /// Called with each line of the output as the copier sees it (only with a `log_cap`
    /// and a stall watch): how the daemon follows a run live.
    pub tap: Option<crate::log::LineTap>,
}

impl RunSpec {
    /// A command line of trusted configuration (or a playbook's step), run with `sh -c`.
    pub fn shell(kind: Kind, command: &str, cwd: &Path, log: &Path, limits: Limits) -> Self {
        Self {
            kind,
            program: "/bin/sh".into(),
            args: vec!["-c".into(), command.to_owned()],
            stdin: None,
            cwd: cwd.to_owned(),
            env: Environment::default(),
            log: log.to_owned(),
            log_cap: None,
            limits,
            sandbox: None,
            tap: None,
        }
    }
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LaunchError {
    /// What went wrong, with its causes.
    pub message: String,
    /// The agent's own command is at fault (its program is missing or not executable, its
    /// adapter cannot build a command line, a secret it names is gone): the task is not to
    /// blame, the agent is.
    pub agent_fault: bool,
}

impl LaunchError {
    /// A failure the agent's own configuration causes.
    pub fn agent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            agent_fault: true,
        }
    }

    /// Any other failure: the run counts like a failed one.
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            agent_fault: false,
        }
    }
}

/// A started process.
#[derive(Debug)]
pub struct Run {
    spawned: Spawned,
    limits: Limits,
    activity: Option<crate::log::Activity>,
    egress: Option<std::net::TcpListener>,
}

/// Why a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// It exited on its own.
    Exited,
    /// It ran past its wall time and was stopped.
    TimedOut,
    /// It was stopped.
    Stopped,
    /// Its output showed no progress for [`Stall::after`], or said its CLI cannot get on
    /// whatever it retries (an authentication failure); it was stopped.
    Stalled,
}

/// How a process ended.
#[derive(Debug)]
pub struct Ended {
    /// Why.
    pub why: EndReason,
    /// Its exit status (`None` if waiting for it failed).
    pub exit: Option<ExitInfo>,
    /// What its log copier did, when the log is capped and the copier finished.
    pub log: Option<CopyReport>,
}

impl Ended {
    /// Whether it exited on its own with status 0.
    pub fn success(&self) -> bool {
        self.why == EndReason::Exited && self.exit.is_some_and(|e| e.code == Some(0))
    }
}

/// Starts a process as `spec` says, in a process group of its own.
pub fn launch(spec: RunSpec) -> Result<Run, LaunchError> {
    let RunSpec {
        kind,
        program,
        args,
        stdin,
        cwd,
        env,
        log,
        log_cap,
        limits,
        sandbox,
        tap,
    } = spec;
    // fail closed: a sandbox that cannot be made starts nothing
    let mut sandbox = sandbox
        .map(|policy| crate::sandbox::prepare(&policy))
        .transpose()
        .map_err(|e| LaunchError::other(e.to_string()))?;
    let egress = sandbox
        .as_mut()
        .and_then(crate::sandbox::Prepared::take_egress);
    let sandbox = sandbox.map(std::sync::Arc::new);
    let activity = limits
        .stall
        .filter(|_| log_cap.is_some())
        .map(|s| crate::log::Activity::new(s.stream).with_tap(tap));
    let spec = SpawnSpec {
        program,
        args,
        env: env.resolve(),
        cwd,
        log_path: log,
        log_cap,
        stdin,
        activity: activity.clone(),
        sandbox,
        secrets: env.secrets,
    };
    let spawned = crate::process::spawn(&spec).map_err(|e| {
        let message = crate::error_chain(&e);
        // the program itself is missing or not executable (its working directory exists):
        // for an agent, the agent's fault; anything else (no memory, too many processes, a
        // busy file) is transient and counts like a failed run
        let own = matches!(&e, SpawnError::Exec { source, .. }
        if spec.cwd.is_dir()
            && matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ));
        LaunchError {
            message,
            agent_fault: kind == Kind::Agent && own,
        }
    })?;
    // the child listened on its loopback and sent the listener before its exec; without
    // it the sandbox simply has no way out (closed, not open)
    let egress = egress.and_then(|channel| {
        crate::sandbox::receive_listener(channel)
            .inspect_err(|e| {
                tracing::warn!(pid = spawned.pid, error = %e, "the sandbox's egress listener did not arrive; the run has no network");
            })
            .ok()
    });
    Ok(Run {
        spawned,
        limits,
        activity,
        egress,
    })
}

impl Run {
    /// Its pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.spawned.pid
    }

    /// The listener on the sandbox's loopback where its proxy requests arrive (see
    /// [`crate::sandbox::Policy::egress`]), for sfd to serve.
    pub fn take_egress(&mut self) -> Option<std::net::TcpListener> {
        self.egress.take()
    }

    /// Its start time (see [`crate::process::process_start_time`]).
    pub fn start_time(&self) -> Option<u64> {
        self.spawned.start_time
    }

    /// Waits until the process exits, runs past its wall time, or `stop` completes; in the
    /// last two cases its whole group is stopped (SIGTERM, SIGKILL after the grace). Either
    /// way whatever the process left running in its group is killed: nothing it started
    /// outlives it. Then waits for the log copier to reach the end of the output.
    pub async fn wait(self, stop: impl Future<Output = ()>) -> Ended {
        let Self {
            spawned:
                Spawned {
                    mut child,
                    pid,
                    log: capture,
                    ..
                },
            limits,
            activity,
            ..
        } = self;
        let stalled = no_progress(activity, limits.stall.map(|s| s.after));
        let outcome = tokio::select! {
            st = child.wait() => Ok(st),
            () = tokio::time::sleep(limits.wall) => Err(EndReason::TimedOut),
            () = stalled => Err(EndReason::Stalled),
            () = stop => Err(EndReason::Stopped),
        };
        let (status, why) = match outcome {
            Ok(status) => (status, EndReason::Exited),
            Err(why) => {
                match why {
                    EndReason::TimedOut => {
                        tracing::warn!(
                            pid,
                            "a process hit its wall-time limit; stopping its group"
                        );
                    }
                    EndReason::Stalled => {
                        tracing::warn!(
                            pid,
                            "a run showed no progress for its stall timeout, or only retried an authentication failure; stopping its group"
                        );
                    }
                    _ => {}
                }
                let stopper = tokio::spawn(crate::process::stop_group(pid, limits.grace));
                let status = child.wait().await;
                let _ = stopper.await;
                (status, why)
            }
        };
        // stragglers of the group (a grandchild that outlived the leader)
        signal_group(pid, StopSignal::Kill);
        Ended {
            why,
            exit: status.ok().map(ExitInfo::from),
            log: log_finished(capture, pid).await,
        }
    }
}

/// Completes once `activity` has shown no progress for `after` (never without both): sleeps
/// until the deadline the last progress sets, and again whenever progress moved it.
async fn no_progress(activity: Option<crate::log::Activity>, after: Option<Duration>) {
    let (Some(activity), Some(after)) = (activity, after) else {
        return std::future::pending().await;
    };
    loop {
        let deadline = activity.last() + after;
        if activity.hopeless() || tokio::time::Instant::now().into_std() >= deadline {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = activity.gave_up() => {}
        }
    }
}

/// Waits for a run's log copier to reach the end of the output, once its process group is
/// gone. A process that left the group (`setsid`) but kept the output open would keep the
/// copier going: after a while it is left to finish on its own.
pub async fn log_finished(capture: Option<Capture>, pid: u32) -> Option<CopyReport> {
    let report = tokio::time::timeout(Duration::from_secs(10), capture?.finished()).await;
    if report.is_err() {
        tracing::warn!(
            pid,
            "a run's output is still held open after its process group ended; its log will be finished when that process exits"
        );
    }
    report.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(wall: Duration) -> Limits {
        Limits {
            wall,
            grace: Duration::from_millis(200),
            stall: None,
        }
    }

    #[test]
    fn the_environment_is_the_policys_not_sfds() {
        let env = Environment {
            passthrough: vec!["SF_TEST_NOT_SET_ANYWHERE".into()],
            path_first: Some("/opt/sf/bin".into()),
            set: vec![("SF_AGENT".into(), "w1".into())],
            secrets: Vec::new(),
        };
        let resolved = env.resolve();
        let keys: Vec<&str> = resolved.iter().map(|(k, _)| k.as_str()).collect();
        for k in &keys {
            assert!(
                Environment::BASE.contains(k) || *k == "SF_AGENT",
                "unexpected variable {k}"
            );
        }
        let path = &resolved.iter().find(|(k, _)| k == "PATH").unwrap().1;
        assert!(path.starts_with("/opt/sf/bin:"), "{path}");
        assert!(resolved.contains(&("SF_AGENT".into(), "w1".into())));
        let shown = format!("{env:?}");
        assert!(
            shown.contains("SF_AGENT") && !shown.contains("w1"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_the_agents_fault_only_for_an_agent() {
        let dir = tempfile::tempdir().unwrap();
        let spec = |kind| RunSpec {
            kind,
            program: dir.path().join("no-such-cli").display().to_string(),
            args: vec![],
            stdin: None,
            cwd: dir.path().to_owned(),
            env: Environment::default(),
            log: dir.path().join("log"),
            log_cap: None,
            limits: limits(Duration::from_secs(5)),
            sandbox: None,
            tap: None,
        };
        let e = launch(spec(Kind::Agent)).unwrap_err();
        assert!(e.agent_fault, "{e}");
        assert!(e.message.contains("no-such-cli"), "{e}");
        assert!(!launch(spec(Kind::Tests)).unwrap_err().agent_fault);
    }

    #[tokio::test]
    async fn past_its_wall_time_the_whole_group_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let script = format!("sleep 301 & echo $! > {}; wait", pidfile.display());
        let spec = RunSpec::shell(
            Kind::Tests,
            &script,
            dir.path(),
            &dir.path().join("log"),
            limits(Duration::from_millis(300)),
        );
        let run = launch(spec).unwrap();
        let ended = run.wait(std::future::pending()).await;
        assert_eq!(ended.why, EndReason::TimedOut);
        assert!(!ended.success());
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            !crate::process::is_same_process(grandchild, None),
            "the grandchild outlived its group"
        );
    }

    /// A CLI that retries forever (Codex with no network) prints notices, never progress:
    /// the stall timeout stops it; one whose output shows progress runs to its end.
    #[tokio::test]
    async fn a_run_that_only_retries_is_stopped_as_stalled() {
        let dir = tempfile::tempdir().unwrap();
        let run = |script: &str, stall: Duration| {
            let mut spec = RunSpec::shell(
                Kind::Agent,
                script,
                dir.path(),
                &dir.path().join("log"),
                Limits {
                    stall: Some(Stall {
                        after: stall,
                        stream: sf_proto::Adapter::Codex,
                    }),
                    ..limits(Duration::from_secs(120))
                },
            );
            spec.log_cap = Some(LogCap::new(crate::log::DEFAULT_MAX));
            launch(spec).unwrap()
        };
        let retrying = r#"echo '{"type":"thread.started","thread_id":"t1"}'
            while true; do echo '{"type":"error","message":"Reconnecting... 1/5"}'; sleep 0.05; done"#;
        let ended = run(retrying, Duration::from_millis(400))
            .wait(std::future::pending())
            .await;
        assert_eq!(ended.why, EndReason::Stalled);
        let working = r#"for i in 1 2 3 4 5 6 7 8 9 10; do
            echo '{"type":"item.completed","item":{"type":"agent_message","text":"step"}}'; sleep 0.05; done"#;
        let ended = run(working, Duration::from_secs(30))
            .wait(std::future::pending())
            .await;
        assert!(ended.success(), "{:?}", ended.why);
    }

    /// Claude Code retries a refused key ten times over minutes: the first retry of an
    /// authentication failure ends the run, however long the stall timeout.
    #[tokio::test]
    async fn a_cli_retrying_an_authentication_failure_is_stopped_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let retry = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":536,"error_status":401,"error":"authentication_failed","session_id":"s1"}"#;
        let mut spec = RunSpec::shell(
            Kind::Agent,
            &format!("echo '{retry}'; sleep 302"),
            dir.path(),
            &dir.path().join("log"),
            Limits {
                stall: Some(Stall {
                    after: Duration::from_secs(3600),
                    stream: sf_proto::Adapter::Claude,
                }),
                ..limits(Duration::from_secs(7200))
            },
        );
        spec.log_cap = Some(LogCap::new(crate::log::DEFAULT_MAX));
        let ended = launch(spec).unwrap().wait(std::future::pending()).await;
        assert_eq!(ended.why, EndReason::Stalled);
    }

    #[tokio::test]
    async fn a_stop_ends_it_and_an_exit_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let run = |cmd: &str| {
            launch(RunSpec::shell(
                Kind::Shell,
                cmd,
                dir.path(),
                &log,
                limits(Duration::from_secs(60)),
            ))
            .unwrap()
        };
        let ended = run("sleep 303").wait(async {}).await;
        assert_eq!(ended.why, EndReason::Stopped);
        let ended = run("echo hello; exit 0").wait(std::future::pending()).await;
        assert!(ended.success(), "{ended:?}");
        let ended = run("exit 3").wait(std::future::pending()).await;
        assert_eq!(ended.exit.and_then(|e| e.code), Some(3));
        assert!(std::fs::read_to_string(&log).unwrap().contains("hello"));
    }
}
