//! The owner's mailbox: what connections send it ([`Command`], through a [`DaemonHandle`])
//! and what the tasks it starts report back ([`Internal`]). Kept apart so that the owner
//! and the tasks that talk to it (workers, stewards, merges) each depend on this module,
//! not on one another.

use std::path::PathBuf;

use sf_proto::{AuditEvent, ErrorKind, ProtoError, Request, Response, RunUsage};
use sf_store::Lease;
use sf_worker::process::ExitInfo;
use tokio::sync::{broadcast, mpsc, oneshot};

/// The answer to a request that reaches a daemon on its way out.
fn shutting_down() -> Response {
    Response::Error(
        ProtoError::new(ErrorKind::Internal, "sfd is shutting down")
            .with_hint("start it again with `sfctl daemon start`"),
    )
}

/// A message to the owner.
#[derive(Debug)]
pub(crate) struct Command {
    pub actor: String,
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// What connections hold: a sender to the owner and a way to follow events.
#[derive(Debug, Clone)]
pub(crate) struct DaemonHandle {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<AuditEvent>,
}

impl DaemonHandle {
    /// Sends a request to the owner and waits for its response.
    pub(crate) async fn request(&self, actor: &str, request: Request) -> Response {
        let (reply, rx) = oneshot::channel();
        let cmd = Command {
            actor: actor.to_owned(),
            request,
            reply,
        };
        if self.tx.send(cmd).await.is_err() {
            return shutting_down();
        }
        rx.await.unwrap_or_else(|_| shutting_down())
    }

    /// Subscribes to audit events committed from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<AuditEvent> {
        self.events.subscribe()
    }
}

/// A completion whose git work is done, back on the owner to be recorded.
#[derive(Debug)]
pub(crate) struct PendingComplete {
    pub(crate) lease: Lease,
    pub(crate) summary: Option<String>,
    pub(crate) no_changes: bool,
    pub(crate) ahead: Result<usize, String>,
    /// For a fix task: whether the branch moved since the merge it fixes failed.
    pub(crate) fixed: Option<Result<bool, String>>,
    pub(crate) reply: oneshot::Sender<Response>,
}

/// Messages from worker tasks to the owner.
#[derive(Debug)]
pub(crate) enum Internal {
    /// The process is running.
    Spawned {
        run_id: i64,
        pid: u32,
        start_time: Option<u64>,
        log_path: PathBuf,
    },
    /// It could not be started; the claim must be undone.
    SpawnFailed {
        run_id: i64,
        error: String,
        /// The agent's command could not run at all (not the task's fault).
        agent_fault: bool,
    },
    /// The process is gone.
    Exited {
        run_id: i64,
        exit: Option<ExitInfo>,
        why: ExitWhy,
        usage: Option<RunUsage>,
        usage_limit_until: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Uncommitted work of a failed run was saved; the task can go back to the pool.
    Saved {
        run_id: i64,
        exit: Option<ExitInfo>,
        why: ExitWhy,
        note: String,
        usage: Option<RunUsage>,
    },
    /// A completion's git work is done.
    CompletePrepared(Box<PendingComplete>),
    /// A run's output passed the log cap; the middle was dropped.
    LogTruncated {
        run_id: i64,
        dropped: u64,
        log: PathBuf,
    },
    /// A merge request's test run starts (its log is `log`).
    MergeTesting { id: i64, log: PathBuf },
    /// A merge request was processed.
    MergeDone { id: i64, outcome: MergeOutcome },
    /// Git work found what a killed operation left (a half-made worktree, a stale lock, a
    /// half-updated checkout) and repaired it; recorded as a `git_repaired` event.
    Repaired {
        task: Option<sf_proto::TaskId>,
        repaired: Vec<String>,
    },
    /// A janitor pass ended: what it did, one line each (recorded as `cleaned_up`).
    Tidied { lines: Vec<String> },
}

/// Why a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitWhy {
    /// On its own.
    Exited,
    /// Hit the wall-time limit.
    TimedOut,
    /// Stopped on request (agent stop, or after completing).
    Stopped,
    /// An adopted process that is gone (exit status unknown).
    Vanished,
    /// It reported a usage limit of its CLI.
    UsageLimited,
}

/// What became of one merge request.
#[derive(Debug)]
pub(crate) enum MergeOutcome {
    /// Landed as this commit.
    Merged { commit: String },
    /// The branch adds nothing to the target.
    NothingToMerge,
    /// The test command failed on the merge result.
    TestsFailed {
        tail: String,
        result: String,
        /// The branch tip that was tested (a fix must move it).
        tip: String,
    },
    /// The branch conflicts with the target.
    Conflict {
        paths: Vec<String>,
        /// The branch tip that conflicts, if it could be read.
        tip: Option<String>,
    },
    /// The user's checkout of the target has local changes; nothing was touched.
    CheckoutDirty { paths: Vec<String> },
    /// Something else went wrong (a git error); the request waits.
    Error(String),
}
