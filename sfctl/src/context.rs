//! What every command needs: the global flags, the workspace, a connection.

use std::path::{Path, PathBuf};

use sf_client::Client;
use sf_proto::paths::{WorkspacePaths, find_workspace};
use sf_proto::{Request, Response};

use crate::cli::GlobalArgs;
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

/// Who we are in the audit log: `agent:$SF_AGENT` inside a worker, else `human:$USER`.
pub fn actor() -> String {
    let non_empty = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    match (non_empty("SF_AGENT"), non_empty("USER")) {
        (Some(agent), _) => format!("agent:{agent}"),
        (None, Some(user)) => format!("human:{user}"),
        (None, None) => "human:unknown".to_owned(),
    }
}

/// `$USER`, for defaults like `--owner` and `dep approve --as`.
pub fn user_name() -> Option<String> {
    std::env::var("USER").ok().filter(|v| !v.trim().is_empty())
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
        if let Some(p) = &self.global.workspace {
            let canon = p.canonicalize().map_err(|e| {
                not_found(format!("workspace {} does not exist", p.display()))
                    .with_cause(e.to_string())
            })?;
            return find_workspace(&canon).ok_or_else(|| {
                not_found(format!("{} is not inside an sf workspace", canon.display()))
            });
        }
        let cwd = self.start_dir()?;
        find_workspace(&cwd).ok_or_else(|| not_found("not inside an sf workspace".to_owned()))
    }

    /// `--socket`/`SF_SOCKET`, else the workspace's socket.
    pub fn socket(&self) -> CliResult<PathBuf> {
        match &self.global.socket {
            Some(s) => Ok(s.clone()),
            None => Ok(self.workspace()?.socket()),
        }
    }

    pub fn connect_to(&self, socket: &Path) -> CliResult<Client> {
        let actor = actor();
        self.ui
            .debug(format!("connecting to {} as {actor}", socket.display()));
        let client = Client::connect(socket, &client_name(), Some(actor))?;
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
