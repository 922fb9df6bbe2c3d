//! Errors on the wire: a stable kind, the message and a hint.

use super::*;

/// Why a request was refused. A closed set: clients branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such task, plan, agent or dependency.
    NotFound,
    /// An id prefix matches more than one thing.
    Ambiguous,
    /// The thing exists but is in the wrong state for this (illegal transition, live work).
    InvalidState,
    /// The request itself is wrong (bad field, bad cron expression, cycle).
    InvalidInput,
    /// It would clash with something that exists (a name taken).
    Conflict,
    /// The daemon does not do that (yet).
    Unsupported,
    /// Client and daemon speak different protocol versions.
    IncompatibleProtocol,
    /// The caller may not do that.
    PermissionDenied,
    /// The guard refused it: see the code (`HUMAN_REQUIRED`, `PERMISSION_DENIED`,
    /// `POLICY_MISSING`, …), the reason and the hint.
    Denied,
    /// A failure inside the daemon; the daemon keeps running.
    Internal,
    /// The daemon is at a limit (connections, request bytes in flight): retry shortly.
    Busy,
}

/// A refusal, with what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtoError {
    /// The class of error.
    pub kind: ErrorKind,
    /// What was wrong, a lowercase fragment.
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// A stable, machine-readable reason within the kind, in snake case, for the refusals
    /// that have one (`CAPABILITY_REQUIRED`); clients may branch on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A denial a human's approval would lift.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requires_approval: bool,
}

impl ProtoError {
    /// An error without a hint.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            code: None,
            requires_approval: false,
        }
    }
    /// Adds a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// Adds a stable code (see [`ProtoError::code`]).
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProtoError {}
