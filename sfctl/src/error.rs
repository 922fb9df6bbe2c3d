//! `CliError`: what went wrong, how to fix it, and which exit code it means (jj's model).

use std::io;
use std::process::ExitCode;

use sf_client::ClientError;
use sf_proto::{ErrorKind, ProtoError, Response};

/// The class of a failure; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliErrorKind {
    /// The daemon refused, the user asked for something we can tell is wrong, or the
    /// workspace or socket belongs to another user (`permission_denied`). Exit 1.
    Refused,
    /// Nothing answers on the socket. Exit 3.
    Unreachable,
    /// A bug or an unexpected failure. Exit 255.
    Internal,
    /// Stdout was closed under us (`sfctl task list | head`). Exit 0, silently.
    BrokenPipe,
    /// `sfctl guard check` blocks the tool call (a denial, or anything that kept the guard
    /// from answering). Exit 2: what agent CLIs' hooks read as "block".
    Blocked,
}

/// An error with hints, printed as `error: …` and `hint: …` lines.
#[derive(Debug)]
pub struct CliError {
    pub kind: CliErrorKind,
    /// Machine-readable kind for `--json`: the daemon's `ErrorKind` in snake case, or one of
    /// `invalid_input`, `unreachable`, `internal`.
    pub code: String,
    pub message: String,
    pub hints: Vec<String>,
    /// The daemon's stable reason within the kind (`CAPABILITY_REQUIRED`), for `--json`.
    pub reason_code: Option<Box<str>>,
    /// A denial a human's approval would lift.
    pub requires_approval: bool,
    /// Causes, printed with `-v`.
    pub causes: Vec<String>,
    /// The command already printed its `--json` result (e.g. the failed merge request), so
    /// the `{"error": …}` document is left off stdout; the message still goes to stderr.
    pub result_printed: bool,
}

impl CliError {
    fn new(kind: CliErrorKind, code: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.to_owned(),
            message: message.into(),
            hints: Vec::new(),
            reason_code: None,
            requires_approval: false,
            causes: Vec::new(),
            result_printed: false,
        }
    }

    /// A tool call blocked by `sfctl guard check` (exit 2), with the reason for the model.
    pub fn blocked(message: impl Into<String>) -> Self {
        Self::new(CliErrorKind::Blocked, "blocked", message)
    }

    /// A mistake in the user's input that we detect before asking the daemon.
    pub fn user(message: impl Into<String>) -> Self {
        Self::new(CliErrorKind::Refused, "invalid_input", message)
    }

    /// A refusal that is not about the input (e.g. "not inside a git repository").
    pub fn refused(code: &str, message: impl Into<String>) -> Self {
        Self::new(CliErrorKind::Refused, code, message)
    }

    /// The daemon is not there.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(CliErrorKind::Unreachable, "unreachable", message)
            .with_hint("start it with `sfctl daemon start`")
    }

    /// The workspace or the daemon belongs to another user. `owner`: the uid that owns
    /// what we could not reach, if known.
    pub fn permission_denied(message: impl Into<String>, owner: Option<u32>) -> Self {
        let whose = match owner {
            Some(0) => "it belongs to root (uid 0)".to_owned(),
            Some(uid) => format!("it belongs to uid {uid}"),
            None => "it belongs to another user".to_owned(),
        };
        Self::refused("permission_denied", message).with_hint(format!(
            "{whose}: run sfctl as that user (for example with `sudo -u`), or use a \
             workspace of your own"
        ))
    }

    /// Something that should not happen.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(CliErrorKind::Internal, "internal", message)
    }

    /// The daemon answered with a response of the wrong type.
    pub fn unexpected(response: &Response) -> Self {
        let name = serde_json::to_value(response)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_else(|| "?".to_owned());
        Self::internal(format!("unexpected response `{name}` from sfd"))
            .with_hint("sfctl and sfd may be different versions; check `sfctl daemon status`")
    }

    /// An IO failure while doing `what` (a "failed to …" fragment).
    pub fn io(what: impl Into<String>, err: &io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            return Self::new(CliErrorKind::BrokenPipe, "broken_pipe", "broken pipe");
        }
        Self::internal(what).with_cause(err.to_string())
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    #[must_use]
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    /// Marks that the command's `--json` result is already on stdout; see `result_printed`.
    #[must_use]
    pub fn with_result_printed(mut self) -> Self {
        self.result_printed = true;
        self
    }

    pub fn exit_code(&self) -> ExitCode {
        match self.kind {
            CliErrorKind::Refused => ExitCode::from(1),
            CliErrorKind::Unreachable => ExitCode::from(3),
            CliErrorKind::Internal => ExitCode::from(255),
            CliErrorKind::BrokenPipe => ExitCode::SUCCESS,
            CliErrorKind::Blocked => ExitCode::from(2),
        }
    }

    /// `{"error": {"kind", "message", "hint"}}`, printed on stdout under `--json`, with
    /// `"code"` when the daemon gave one.
    pub fn to_json(&self) -> serde_json::Value {
        let hint = if self.hints.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::Value::String(self.hints.join("\n"))
        };
        let mut j = serde_json::json!({
            "error": { "kind": self.code, "message": self.message, "hint": hint }
        });
        if let Some(code) = &self.reason_code {
            j["error"]["code"] = serde_json::Value::from(&**code);
        }
        // a denial by the guard: its reason and whether a human's approval would lift it
        if self.code == "denied" {
            j["error"]["reason"] = serde_json::Value::from(self.message.as_str());
            j["error"]["requires_approval"] = serde_json::Value::from(self.requires_approval);
        }
        j
    }
}

impl From<ProtoError> for CliError {
    fn from(e: ProtoError) -> Self {
        let code = serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "internal".to_owned());
        let mut err = Self::new(CliErrorKind::Refused, &code, e.message);
        err.reason_code = e.code.map(String::into_boxed_str);
        err.requires_approval = e.requires_approval;
        if let Some(h) = e.hint {
            err.hints.push(h);
        } else if e.kind == ErrorKind::IncompatibleProtocol {
            err.hints
                .push("sfctl and sfd are different versions; restart sfd".to_owned());
        }
        err
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unreachable {
                ref source,
                ref path,
            } if source.kind() == io::ErrorKind::PermissionDenied => Self::permission_denied(
                format!("permission denied connecting to sfd at {}", path.display()),
                nearest_owner(path),
            )
            .with_cause(source.to_string()),
            ClientError::Unreachable { ref source, .. } => {
                let cause = source.to_string();
                Self::unreachable(e.to_string()).with_cause(cause)
            }
            ClientError::ForeignPeer { .. } => Self::refused("permission_denied", e.to_string())
                .with_hint(
                    "another user may have planted that socket; do not use it: set \
                     XDG_RUNTIME_DIR to a directory of your own, or pass --socket",
                ),
            ClientError::Refused(p) => p.into(),
            ClientError::Timeout { what, .. } => {
                let err = Self::unreachable(e.to_string());
                match what {
                    "reply" => err.with_hint(
                        "sfd may be overloaded or stuck (`sfctl daemon status`); what you asked \
                         may still have been applied: look before you retry; \
                         SF_REPLY_TIMEOUT=SECONDS waits longer",
                    ),
                    _ => err.with_hint(
                        "sfd is not accepting connections: it may be overloaded or stuck; \
                         `sfctl daemon status`, or restart it with `sfctl daemon stop && sfctl daemon start`",
                    ),
                }
            }
            ClientError::Frame(sf_proto::FrameError::Closed | sf_proto::FrameError::Io(_)) => {
                let mut err = Self::unreachable(
                    "the connection to sfd broke before its answer arrived".to_owned(),
                )
                .with_hint(
                    "what you asked may have been applied: look (e.g. `sfctl task show ID`) \
                     before you retry; `sfctl daemon status` says whether sfd is up",
                );
                let mut cause: Option<&dyn std::error::Error> = Some(&e);
                while let Some(c) = cause {
                    err.causes.push(c.to_string());
                    cause = c.source();
                }
                err
            }
            ClientError::Frame(ref f) => {
                let mut err = Self::internal(e.to_string());
                let mut cause: Option<&dyn std::error::Error> = Some(f);
                while let Some(c) = cause {
                    err.causes.push(c.to_string());
                    cause = c.source();
                }
                err
            }
            ClientError::Unexpected(_) => Self::internal(e.to_string()),
        }
    }
}

/// The owner of the deepest existing path on the way to `path` that we can see: who to ask
/// when the socket cannot be reached for lack of permission.
fn nearest_owner(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    path.ancestors()
        .find_map(|p| std::fs::symlink_metadata(p).ok())
        .map(|m| m.uid())
}

pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_refusals_keep_their_kind_and_hint() {
        let e: CliError = ProtoError::new(ErrorKind::NotFound, "no task `abc`")
            .with_hint("list them")
            .into();
        assert_eq!(e.exit_code(), ExitCode::from(1));
        let j = e.to_json();
        assert_eq!(j["error"]["kind"], "not_found");
        assert_eq!(j["error"]["message"], "no task `abc`");
        assert_eq!(j["error"]["hint"], "list them");
        assert!(j["error"].get("code").is_none(), "{j}");
        let e: CliError = ProtoError::new(ErrorKind::PermissionDenied, "no push")
            .with_code("CAPABILITY_REQUIRED")
            .into();
        assert_eq!(e.to_json()["error"]["code"], "CAPABILITY_REQUIRED");
    }

    #[test]
    fn permission_denied_is_not_unreachable() {
        let e: CliError = ClientError::Unreachable {
            path: "/nonexistent-sf/run/sfd.sock".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        }
        .into();
        assert_eq!(e.exit_code(), ExitCode::from(1));
        assert_eq!(e.code, "permission_denied");
        assert!(e.message.contains("permission denied"), "{}", e.message);
        assert!(!e.hints.iter().any(|h| h.contains("daemon start")), "{e:?}");
        assert!(e.hints[0].contains("root (uid 0)"), "/ is root's: {e:?}");
    }

    #[test]
    fn unreachable_exits_3_with_the_start_hint() {
        let e = CliError::unreachable("failed to connect to sfd at /x");
        assert_eq!(e.exit_code(), ExitCode::from(3));
        assert_eq!(e.hints, ["start it with `sfctl daemon start`"]);
    }
}
