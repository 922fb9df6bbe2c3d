//! The owner's mailbox: what connections send it ([`Command`], through a [`DaemonHandle`])
//! and what the tasks it starts report back ([`Internal`]). Kept apart so that the owner
//! and the tasks that talk to it (workers, stewards, merges) each depend on this module,
//! not on one another.

use std::path::PathBuf;

use sf_proto::{
    AuditEvent, ErrorKind, MergeRequestId, ProtoError, Request, Response, RunUsage, TaskId,
};
use sf_store::Lease;
use sf_worker::adapters::RunReport;
use sf_worker::outcome::RunClass;
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
    pub reply: Reply,
}

/// What the owner answers a request with.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "moved once through a oneshot; nearly every answer is a Response"
)]
pub(crate) enum Answer {
    /// One response (every request but `FollowEvents`).
    Response(Response),
    /// A follow was admitted: the backlog, then the events committed after it.
    Follow(Following),
}

/// An admitted event stream. The owner subscribes while it reads the backlog, between two
/// of its own fan-outs, so that no event falls between the backlog and the stream.
#[derive(Debug)]
pub(crate) struct Following {
    /// Only this task's events, when set.
    pub task: Option<TaskId>,
    /// The events after the `since` the client gave (none without one).
    pub backlog: Vec<AuditEvent>,
    /// Every event committed after the backlog was read.
    pub events: broadcast::Receiver<AuditEvent>,
}

/// Where the owner sends its answer to one request.
#[derive(Debug)]
pub(crate) struct Reply(oneshot::Sender<Answer>);

impl Reply {
    /// Answers with one response; the connection may have gone, which is not an error.
    pub(crate) fn send(self, response: Response) {
        let _ = self.0.send(Answer::Response(response));
    }

    /// Admits an event stream.
    pub(crate) fn follow(self, following: Following) {
        let _ = self.0.send(Answer::Follow(following));
    }
}

/// What connections hold: a sender to the owner.
#[derive(Debug, Clone)]
pub(crate) struct DaemonHandle {
    pub(crate) tx: mpsc::Sender<Command>,
    /// Who a connection's peer is, from its user namespace.
    pub(crate) identities: crate::identity::Identities,
}

impl DaemonHandle {
    /// Sends a request to the owner and waits for its answer.
    pub(crate) async fn request(&self, actor: &str, request: Request) -> Answer {
        let (tx, rx) = oneshot::channel();
        let cmd = Command {
            actor: actor.to_owned(),
            request,
            reply: Reply(tx),
        };
        if self.tx.send(cmd).await.is_err() {
            return Answer::Response(shutting_down());
        }
        rx.await
            .unwrap_or_else(|_| Answer::Response(shutting_down()))
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
    pub(crate) reply: Reply,
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
    /// A run's output said this, live (its tool calls and their results).
    Live {
        run_id: i64,
        live: sf_worker::adapters::Live,
    },
    /// The spawn gate refused a claimed run at the last door (the policy changed since the
    /// claim): the claim is undone, uncounted.
    SpawnDenied {
        run_id: i64,
        agent: String,
        reason: String,
    },
    /// The process is gone; `report` is what its adapter's parser read in its log.
    Exited {
        run_id: i64,
        exit: Option<ExitInfo>,
        why: ExitWhy,
        report: Option<Box<RunReport>>,
    },
    /// Uncommitted work of a failed run was saved; the task can go back to the pool.
    Saved {
        run_id: i64,
        ending: Ending,
        note: String,
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
    MergeTesting { id: MergeRequestId, log: PathBuf },
    /// A merge request was processed.
    MergeDone {
        id: MergeRequestId,
        outcome: MergeOutcome,
    },
    /// Git work found what a killed operation left (a half-made worktree, a stale lock, a
    /// half-updated checkout) and repaired it; recorded as a `git_repaired` event.
    Repaired {
        task: Option<sf_proto::TaskId>,
        repaired: Vec<String>,
        /// A run changed its worktree's git links (`worktree_tampered`), not a crash.
        tampered: bool,
    },
    /// A janitor pass ended: what it did, one line each (recorded as `cleaned_up`).
    Tidied { lines: Vec<String> },
    /// A connection through a run's egress proxy ended (or was denied).
    Egress(Box<EgressConnection>),
    /// A push ended: the commit the remote branch names now, or why not. `reply` is the
    /// worker's `sfctl push`, answered once the push is recorded.
    Pushed {
        job: PushJob,
        result: Result<String, PushFailure>,
        reply: Option<Reply>,
    },
}

/// Why a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitWhy {
    /// On its own.
    Exited,
    /// Hit the wall-time limit.
    TimedOut,
    /// Its output showed no progress for `stall_timeout`.
    Stalled,
    /// Stopped on request (agent stop, or after completing).
    Stopped,
    /// An adopted process that is gone (exit status unknown).
    Vanished,
}

impl From<sf_worker::launcher::EndReason> for ExitWhy {
    fn from(why: sf_worker::launcher::EndReason) -> Self {
        use sf_worker::launcher::EndReason as E;
        match why {
            E::Exited => Self::Exited,
            E::TimedOut => Self::TimedOut,
            E::Stalled => Self::Stalled,
            E::Stopped => Self::Stopped,
        }
    }
}

impl ExitWhy {
    /// As the launcher says it (a process gone after a restart exited on its own).
    pub(crate) fn end_reason(self) -> sf_worker::launcher::EndReason {
        use sf_worker::launcher::EndReason as E;
        match self {
            Self::Exited | Self::Vanished => E::Exited,
            Self::TimedOut => E::TimedOut,
            Self::Stalled => E::Stalled,
            Self::Stopped => E::Stopped,
        }
    }
}

/// How a worker's run that did not complete or hand off its task ended: carried from its
/// exit, through saving its work, to the record of its end.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    pub agent: String,
    pub adapter: sf_proto::Adapter,
    pub exit: Option<ExitInfo>,
    pub why: ExitWhy,
    pub class: RunClass,
    /// What the agent's CLI said about it, in full.
    pub said: Option<String>,
    pub usage: Option<RunUsage>,
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

/// One connection through a run's egress proxy, as recorded.
#[derive(Debug)]
pub(crate) struct EgressConnection {
    pub run_id: i64,
    pub host: String,
    pub port: u16,
    /// The rule that allowed it; `None`: denied.
    pub rule: Option<String>,
    /// Bytes to the host, bytes from it.
    pub bytes: (u64, u64),
    /// Why an allowed connection failed.
    pub error: Option<String>,
    pub started_ms: i64,
}

/// One push to make, and who it is for.
#[derive(Debug, Clone)]
pub(crate) struct PushJob {
    /// `agent:NAME` for `sfctl push`, `daemon` after a merge.
    pub actor: String,
    pub task: Option<TaskId>,
    pub run: Option<i64>,
    pub mr: Option<MergeRequestId>,
    pub remote: String,
    pub branch: String,
}

/// A push that did not happen: the error's kind, its stable code, and the words.
#[derive(Debug, Clone)]
pub(crate) struct PushFailure {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl PushFailure {
    pub(crate) fn to_proto(&self) -> ProtoError {
        let e = ProtoError::new(self.kind, self.message.clone()).with_code(self.code);
        match &self.hint {
            Some(h) => e.with_hint(h.clone()),
            None => e,
        }
    }
}
