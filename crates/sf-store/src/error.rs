use sf_proto::{ErrorKind, ProtoError};

/// A refused or failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A refusal the caller can act on: what was wrong, and what to do.
    #[error("{message}")]
    Refused {
        /// The class.
        kind: ErrorKind,
        /// What was wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// The file was written by a newer sf.
    #[error(
        "the database has schema version {found}, newer than the {supported} this sfd knows; upgrade sf"
    )]
    TooNew {
        /// Found in the file.
        found: usize,
        /// Known to this build.
        supported: usize,
    },
    /// SQLite failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON column could not be read.
    #[error("corrupt stored value")]
    Json(#[from] serde_json::Error),
    /// A refusal decided outside the store (the guard's denial), passed through as it is.
    #[error("{0}")]
    Denied(ProtoError),
}

impl StoreError {
    pub(crate) fn refused(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Refused {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::refused(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn state(message: impl Into<String>) -> Self {
        Self::refused(ErrorKind::InvalidState, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::refused(ErrorKind::NotFound, message)
    }

    #[must_use]
    pub(crate) fn hint(mut self, h: impl Into<String>) -> Self {
        if let Self::Refused { hint, .. } = &mut self {
            *hint = Some(h.into());
        }
        self
    }

    /// Whether the failure may pass by itself (a full disk, an I/O error, a busy or
    /// read-only database), so that the same operation is worth trying again later.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode as C;
        matches!(self, Self::Sqlite(rusqlite::Error::SqliteFailure(e, _))
        if matches!(
            e.code,
            C::DiskFull
                | C::SystemIoFailure
                | C::DatabaseBusy
                | C::DatabaseLocked
                | C::CannotOpen
                | C::ReadOnly
                | C::OutOfMemory
        ))
    }

    /// The refusal's kind, or `Internal`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused { kind, .. } => *kind,
            Self::Denied(e) => e.kind,
            _ => ErrorKind::Internal,
        }
    }
}

impl From<StoreError> for ProtoError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused {
                kind,
                message,
                hint,
            } => Self {
                kind,
                message,
                hint,
                code: None,
                requires_approval: false,
            },
            StoreError::Denied(e) => e,
            other => {
                let mut msg = other.to_string();
                let mut src = std::error::Error::source(&other);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                Self::new(ErrorKind::Internal, msg)
                    .with_hint("this is a bug or a disk problem; see the daemon's log")
            }
        }
    }
}

impl From<sf_core::naming::NameError> for StoreError {
    fn from(e: sf_core::naming::NameError) -> Self {
        use sf_core::naming::NameError as N;
        let hint = match &e {
            N::LongText { .. } => {
                Some("shorten it, or put the long part in a file in the repository and refer to it")
            }
            N::LongTitle(_) => {
                Some("keep titles to one short line; put details in the description")
            }
            _ => None,
        };
        let err = Self::invalid(e.to_string());
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}
