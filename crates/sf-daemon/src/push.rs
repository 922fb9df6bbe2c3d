//! Pushes, done by sfd and never by a worker: a worker holds no credential and cannot write
//! the remote's refs or the repository's configuration (the sandbox's rules), so with the
//! `push` capability it asks (`sfctl push`), and with `[merge] push = "after-merge"` the
//! merge job pushes the target after each landing. The git work (`sf_git::push`, the user's
//! credentials) runs on a blocking thread; the result comes back to the owner as
//! [`Internal::Pushed`], which records it (`branch_pushed` or `push_failed`) and answers.

use std::path::PathBuf;

use sf_proto::ErrorKind;
use tokio::sync::mpsc;

use crate::mailbox::{Internal, PushFailure, PushJob, Reply};

/// The stable code of a push refused for want of the capability.
pub(crate) const CAPABILITY_REQUIRED: &str = "CAPABILITY_REQUIRED";

/// Pushes on a blocking thread and reports to the owner; `reply` is the worker's request,
/// answered there once the push is recorded.
pub(crate) async fn run(
    root: PathBuf,
    job: PushJob,
    reply: Option<Reply>,
    tx: mpsc::UnboundedSender<Internal>,
) {
    let (remote, branch) = (job.remote.clone(), job.branch.clone());
    let result = match tokio::task::spawn_blocking(move || {
        sf_git::push::push_branch(&root, &remote, &branch)
    })
    .await
    {
        Ok(Ok(p)) => Ok(p.commit),
        Ok(Err(e)) => Err(failure(&e, &job)),
        Err(e) => Err(PushFailure {
            kind: ErrorKind::Internal,
            code: "push_failed",
            message: format!("the push of `{}` panicked: {e}", job.branch),
            hint: None,
        }),
    };
    match &result {
        Ok(commit) => tracing::info!(remote = %job.remote, branch = %job.branch, %commit, "pushed"),
        Err(f) => {
            tracing::warn!(remote = %job.remote, branch = %job.branch, error = %f.message, "push failed");
        }
    }
    let _ = tx.send(Internal::Pushed { job, result, reply });
}

/// What a failed push means to the one who asked.
fn failure(e: &sf_git::GitError, job: &PushJob) -> PushFailure {
    use sf_git::GitError as G;
    let message = crate::errors::error_chain(e);
    let (kind, code, hint) = match e {
        G::NoSuchRemote(_) => (
            ErrorKind::NotFound,
            "no_such_remote",
            format!(
                "name one of the repository's remotes (`git remote -v`) with --remote, or set \
                 `[merge] remote` in .sf/config.toml (now `{}`)",
                job.remote
            ),
        ),
        G::MissingBranch(_) => (
            ErrorKind::NotFound,
            "no_such_branch",
            "commit on the task's branch first".to_owned(),
        ),
        G::PushRejected { .. } => (
            ErrorKind::Conflict,
            "push_rejected",
            "the remote's own rules refused it (a protected branch, a hook)".to_owned(),
        ),
        G::Push {
            reason: sf_git::push::PushReason::NotFastForward,
            ..
        } => (
            ErrorKind::Conflict,
            "non_fast_forward",
            format!(
                "`{}` on `{}` has commits this branch lacks; sfd never force-pushes",
                job.branch, job.remote
            ),
        ),
        G::Push {
            reason: sf_git::push::PushReason::Auth,
            ..
        } => (
            ErrorKind::PermissionDenied,
            "auth_failed",
            "sfd pushes with the credentials of the user who started it (SSH agent, git's \
             credential helpers): check that `git push` works from your own shell"
                .to_owned(),
        ),
        _ => (
            ErrorKind::InvalidState,
            "push_failed",
            "check that the remote is reachable from sfd and `git push` works from your own \
             shell"
                .to_owned(),
        ),
    };
    PushFailure {
        kind,
        code,
        message,
        hint: Some(hint),
    }
}
