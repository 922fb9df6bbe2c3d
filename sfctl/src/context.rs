//! What every command needs: the global flags, the workspace, a connection.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sf_client::{Client, ClientError};
use sf_proto::paths::{WorkspacePaths, find_workspace, unreadable_workspace};
use sf_proto::{Request, Response};

use crate::args::GlobalArgs;
use crate::error::{CliError, CliResult};
use crate::output::Ui;

pub struct Context {
    pub global: GlobalArgs,
    pub ui: Ui,
}

/// `sfctl 0.1.0`, sent in the handshake.
pub fn client_name() -> String {
    format!("sfctl {}", env!("CARGO_PKG_VERSION"))
}

/// Who we are in the audit log: `agent:$SF_AGENT` inside a worker, else `human:<user>`
/// (see [`user_name`]).
pub fn actor() -> String {
    match std::env::var("SF_AGENT")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(agent) => format!("agent:{agent}"),
        None => format!(
            "human:{}",
            user_name().unwrap_or_else(|| "unknown".to_owned())
        ),
    }
}

/// The human's name, for the audit log and defaults like `--owner` and `mr approve --as`:
/// `$USER`, else the name of our uid in the user database (`$USER` is unset under cron
/// and in many containers), else `uid<N>`.
pub fn user_name() -> Option<String> {
    if let Some(user) = std::env::var("USER").ok().filter(|v| !v.trim().is_empty()) {
        return Some(user);
    }
    let uid = uzers::get_effective_uid();
    Some(
        uzers::get_user_by_uid(uid)
            .and_then(|u| u.name().to_str().map(str::to_owned))
            .unwrap_or_else(|| format!("uid{uid}")),
    )
}

/// Who approves (`dep approve`, `mr approve`): `--as NAME`, else `$USER`.
pub fn approver(given: Option<String>) -> CliResult<String> {
    given
        .filter(|a| !a.trim().is_empty())
        .or_else(user_name)
        .ok_or_else(|| CliError::user("cannot tell who approves").with_hint("pass --as NAME"))
}

impl Context {
    /// The directory commands start from: `--workspace`, else the current directory.
    pub fn start_dir(&self) -> CliResult<PathBuf> {
        match &self.global.workspace {
            Some(p) => Ok(p.clone()),
            None => std::env::current_dir()
                .map_err(|e| CliError::io("failed to read the current directory", &e)),
        }
    }

    /// The workspace: `--workspace`/`SF_WORKSPACE` (or a workspace above it), else the first
    /// directory above the current one that holds `.sf/config.toml`.
    pub fn workspace(&self) -> CliResult<WorkspacePaths> {
        let not_found = |what: String| {
            CliError::refused("not_found", what)
                .with_hint("run `sfctl init` in your repository, or pass --workspace PATH")
        };
        // A workspace of another user is private to them: say so rather than "not found".
        let unreadable = |start: &Path, what: &str| match unreadable_workspace(start) {
            Some((dir, owner)) => CliError::permission_denied(
                format!(
                    "permission denied reading the sf workspace {}",
                    dir.display()
                ),
                Some(owner),
            ),
            None => not_found(what.to_owned()),
        };
        if let Some(p) = &self.global.workspace {
            let canon = p.canonicalize().map_err(|e| {
                not_found(format!("workspace {} does not exist", p.display()))
                    .with_cause(e.to_string())
            })?;
            return find_workspace(&canon).ok_or_else(|| {
                unreadable(
                    &canon,
                    &format!("{} is not inside an sf workspace", canon.display()),
                )
            });
        }
        let cwd = self.start_dir()?;
        find_workspace(&cwd).ok_or_else(|| unreadable(&cwd, "not inside an sf workspace"))
    }

    /// `--socket`/`SF_SOCKET`, else the workspace's socket.
    pub fn socket(&self) -> CliResult<PathBuf> {
        match &self.global.socket {
            Some(s) => Ok(s.clone()),
            None => Ok(self.workspace()?.socket()),
        }
    }

    /// Connects and handshakes. Inside a worker (`SF_RUN` set) an unreachable daemon is
    /// waited for, up to `SF_CONNECT_WAIT` seconds: sfd may be restarting, and the worker's
    /// completion must not be lost to that. Only the connect is retried, never a request.
    pub fn connect_to(&self, socket: &Path) -> CliResult<Client> {
        let wait = connect_wait(
            std::env::var(LEASE_ENV).ok().as_deref(),
            std::env::var(CONNECT_WAIT_ENV).ok().as_deref(),
            |w| self.ui.warn(w),
        );
        self.connect_waiting(socket, wait)
    }

    /// Connects and handshakes once, whoever we are: for `sfctl daemon`, which must see at
    /// once whether a daemon answers.
    pub fn connect_once(&self, socket: &Path) -> CliResult<Client> {
        self.connect_waiting(socket, None)
    }

    fn connect_waiting(&self, socket: &Path, wait: Option<Duration>) -> CliResult<Client> {
        let actor = actor();
        self.ui
            .debug(format!("connecting to {} as {actor}", socket.display()));
        let client = retry_connect(
            wait,
            || Client::connect(socket, &client_name(), Some(actor.clone())),
            |wait| {
                self.ui.status(format!(
                    "sfd is not reachable; retrying for up to {} s ({CONNECT_WAIT_ENV})",
                    wait.as_secs_f64()
                ));
            },
            std::thread::sleep,
        )?;
        self.ui.debug(format!(
            "connected to {} (pid {})",
            client.daemon, client.daemon_pid
        ));
        Ok(client)
    }

    pub fn connect(&self) -> CliResult<Client> {
        let socket = self.socket()?;
        self.connect_to(&socket)
    }

    /// Connects, sends one request, returns the response (a refusal is an error).
    pub fn request(&self, request: &Request) -> CliResult<Response> {
        let mut client = self.connect()?;
        Ok(client.request(request)?)
    }
}

/// The variable that carries a worker's lease; sfd sets it only in the workers it starts.
pub const LEASE_ENV: &str = "SF_RUN";
/// How long (seconds) a worker's sfctl waits for an unreachable daemon.
const CONNECT_WAIT_ENV: &str = "SF_CONNECT_WAIT";
const DEFAULT_CONNECT_WAIT: Duration = Duration::from_secs(120);
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// How long to wait for an unreachable daemon: `None` (fail at once) for humans, else
/// `SF_CONNECT_WAIT` seconds, 120 by default. A value that is not a number of seconds is
/// reported through `warn` and the default used: a worker's completion is worth more than
/// the typo.
fn connect_wait(
    lease: Option<&str>,
    setting: Option<&str>,
    warn: impl FnOnce(String),
) -> Option<Duration> {
    lease.filter(|l| !l.trim().is_empty())?;
    let Some(setting) = setting.map(str::trim).filter(|s| !s.is_empty()) else {
        return Some(DEFAULT_CONNECT_WAIT);
    };
    match setting.parse::<f64>() {
        Ok(secs) if let Ok(d) = Duration::try_from_secs_f64(secs) => Some(d),
        _ => {
            warn(format!(
                "ignoring {CONNECT_WAIT_ENV}=`{setting}` (expected a number of seconds); \
                 waiting up to {} s",
                DEFAULT_CONNECT_WAIT.as_secs()
            ));
            Some(DEFAULT_CONNECT_WAIT)
        }
    }
}

/// Whether a failed connect means that sfd is away (no socket, or nobody listening on it),
/// which a restart fixes, rather than something waiting will not fix.
fn is_away(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Unreachable { source, .. }
            if matches!(source.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused)
    )
}

/// Calls `connect` until it succeeds, fails for a reason other than [`is_away`], or the
/// pauses between attempts add up to `wait` (`None`: one attempt). Pauses start at 50 ms and
/// double up to 2 s; `announce` is called once, before the first pause.
fn retry_connect<T>(
    wait: Option<Duration>,
    mut connect: impl FnMut() -> Result<T, ClientError>,
    announce: impl FnOnce(Duration),
    mut sleep: impl FnMut(Duration),
) -> Result<T, ClientError> {
    let mut announce = Some(announce);
    let mut waited = Duration::ZERO;
    let mut pause = FIRST_RETRY;
    loop {
        let err = match connect() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(wait) = wait.filter(|_| is_away(&err)) else {
            return Err(err);
        };
        let left = wait.saturating_sub(waited);
        if left.is_zero() {
            return Err(err);
        }
        if let Some(announce) = announce.take() {
            announce(wait);
        }
        let this = pause.min(left);
        sleep(this);
        waited += this;
        pause = (pause * 2).min(MAX_RETRY);
    }
}

/// Takes the payload out of the expected response variant, or fails with "unexpected".
macro_rules! expect_response {
    ($resp:expr, $pat:pat => $out:expr) => {
        match $resp {
            $pat => $out,
            other => return Err($crate::error::CliError::unexpected(&other)),
        }
    };
}

pub(crate) use expect_response;

#[cfg(test)]
mod tests {
    use super::*;

    fn away(kind: io::ErrorKind) -> ClientError {
        ClientError::Unreachable {
            path: "/ws/.sf/run/sfd.sock".into(),
            source: io::Error::from(kind),
        }
    }

    /// Runs `retry_connect` over `results` (then "refused" forever); returns the outcome,
    /// the pauses in ms, and what was announced.
    fn drive(
        wait: Option<Duration>,
        results: Vec<Result<u32, ClientError>>,
    ) -> (Result<u32, ClientError>, Vec<u128>, Vec<u64>) {
        let mut results = results.into_iter();
        let (mut pauses, mut announced) = (Vec::new(), Vec::new());
        let out = retry_connect(
            wait,
            || {
                results
                    .next()
                    .unwrap_or_else(|| Err(away(io::ErrorKind::ConnectionRefused)))
            },
            |w| announced.push(w.as_secs()),
            |d| pauses.push(d.as_millis()),
        );
        (out, pauses, announced)
    }

    #[test]
    fn a_worker_waits_for_a_restarting_daemon_with_backoff() {
        let (out, pauses, announced) = drive(
            Some(Duration::from_secs(120)),
            vec![
                Err(away(io::ErrorKind::NotFound)),
                Err(away(io::ErrorKind::ConnectionRefused)),
                Err(away(io::ErrorKind::NotFound)),
                Ok(7),
            ],
        );
        assert_eq!(out.unwrap(), 7);
        assert_eq!(pauses, [50, 100, 200]);
        assert_eq!(announced, [120], "announced once, with the limit");
    }

    #[test]
    fn the_wait_is_capped_and_the_last_error_returned() {
        let (out, pauses, announced) = drive(Some(Duration::from_secs(5)), Vec::new());
        assert!(
            matches!(out, Err(ClientError::Unreachable { .. })),
            "{out:?}"
        );
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1600, 1850]);
        assert_eq!(pauses.iter().sum::<u128>(), 5000);
        assert_eq!(announced, [5]);
        let (_, pauses, _) = drive(Some(Duration::from_secs(20)), Vec::new());
        assert!(pauses.iter().all(|p| *p <= 2000), "{pauses:?}");
    }

    #[test]
    fn humans_and_other_failures_are_not_retried() {
        let (out, pauses, announced) = drive(None, Vec::new());
        assert!(out.is_err());
        assert!(pauses.is_empty() && announced.is_empty());
        let (out, pauses, _) = drive(
            Some(Duration::from_secs(120)),
            vec![Err(away(io::ErrorKind::PermissionDenied))],
        );
        assert!(out.is_err());
        assert!(pauses.is_empty(), "a permission problem does not go away");
        let refused = ClientError::Refused(sf_proto::ProtoError::new(
            sf_proto::ErrorKind::IncompatibleProtocol,
            "protocol 9 is not supported",
        ));
        let (out, pauses, _) = drive(Some(Duration::from_secs(120)), vec![Err(refused)]);
        assert!(matches!(out, Err(ClientError::Refused(_))), "{out:?}");
        assert!(pauses.is_empty());
        let (out, pauses, announced) = drive(Some(Duration::ZERO), Vec::new());
        assert!(out.is_err());
        assert!(pauses.is_empty() && announced.is_empty(), "0 turns it off");
    }

    #[test]
    fn only_workers_wait_and_sf_connect_wait_sets_how_long() {
        let mut warnings = Vec::new();
        let mut wait = |lease, setting| connect_wait(lease, setting, |w| warnings.push(w));
        assert_eq!(wait(None, Some("30")), None);
        assert_eq!(wait(Some(" "), None), None);
        assert_eq!(wait(Some("tok"), None), Some(Duration::from_secs(120)));
        assert_eq!(wait(Some("tok"), Some("")), Some(Duration::from_secs(120)));
        assert_eq!(wait(Some("tok"), Some("30")), Some(Duration::from_secs(30)));
        assert_eq!(
            wait(Some("tok"), Some("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(wait(Some("tok"), Some("0")), Some(Duration::ZERO));
        assert_eq!(
            wait(Some("tok"), Some("soon")),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            wait(Some("tok"), Some("-1")),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            wait(Some("tok"), Some("1e20")),
            Some(Duration::from_secs(120)),
            "too large for a Duration: the default, not a panic"
        );
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings[0].contains("SF_CONNECT_WAIT=`soon`"),
            "{warnings:?}"
        );
    }
}
