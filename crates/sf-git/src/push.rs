//! Pushing a branch to a remote, as sfd does for a worker with the `push` capability and
//! after a merge: the remote and its URL come from the repository's configuration (which a
//! sandboxed worker cannot write), the refspec is always `refs/heads/B:refs/heads/B`, and
//! the credentials are the user's, found as the git CLI finds them: the SSH agent for SSH
//! remotes, git's credential helpers (`credential.helper`) for HTTPS, then libgit2's default
//! (Negotiate/NTLM). Each kind is tried once, so a refused credential ends the push instead
//! of looping. `pre-push` hooks do not run (libgit2 does not run hooks).

use std::cell::RefCell;
use std::path::Path;

use git2::{BranchType, Cred, CredentialType, PushOptions, RemoteCallbacks};

use crate::{Ctx, GitError, open};

/// A branch that reached its remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The commit the remote branch now names.
    pub commit: String,
}

/// What kind of failure a push's error is, for the one who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushReason {
    /// The remote branch has commits the local one lacks.
    NotFastForward,
    /// No credential the remote accepted.
    Auth,
    /// Anything else (the remote unreachable, a transport error).
    Other,
}

impl PushReason {
    fn of(e: &git2::Error) -> Self {
        match e.code() {
            git2::ErrorCode::NotFastForward => Self::NotFastForward,
            git2::ErrorCode::Auth => Self::Auth,
            _ => Self::Other,
        }
    }
}

/// Whether `name` can be a remote's name (git's own rule, and no leading `-`, which the
/// git CLI would read as an option); checked before anything is read.
pub fn valid_remote_name(name: &str) -> bool {
    !name.starts_with('-') && git2::Remote::is_valid_name(name)
}

/// Pushes local branch `branch` of the repository at `repo_root` to the branch of the same
/// name on remote `remote`. A non-fast-forward is refused, as by `git push` without
/// `--force`.
pub fn push_branch(repo_root: &Path, remote: &str, branch: &str) -> Result<Pushed, GitError> {
    if !valid_remote_name(remote) {
        return Err(GitError::NoSuchRemote(remote.to_owned()));
    }
    let repo = open(repo_root)?;
    let local = repo
        .find_branch(branch, BranchType::Local)
        .map_err(|_| GitError::MissingBranch(branch.to_owned()))?;
    let commit = local
        .get()
        .peel_to_commit()
        .ctx(|| format!("read the tip of branch `{branch}`"))?
        .id()
        .to_string();
    let mut origin = repo
        .find_remote(remote)
        .map_err(|_| GitError::NoSuchRemote(remote.to_owned()))?;
    let config = repo.config().ctx(|| "read the git configuration".into())?;
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    let rejected: RefCell<Option<String>> = RefCell::new(None);
    {
        let mut tried = CredentialType::empty();
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(move |url, given, allowed| {
            let user = given.unwrap_or("git");
            let next = [
                CredentialType::USERNAME,
                CredentialType::SSH_KEY,
                CredentialType::USER_PASS_PLAINTEXT,
                CredentialType::DEFAULT,
            ]
            .into_iter()
            .find(|k| allowed.contains(*k) && !tried.contains(*k));
            let Some(kind) = next else {
                return Err(git2::Error::from_str(
                    "no credential the remote accepts: tried the SSH agent, git's credential \
                     helpers and the default credentials",
                ));
            };
            tried |= kind;
            match kind {
                CredentialType::USERNAME => Cred::username(user),
                CredentialType::SSH_KEY => Cred::ssh_key_from_agent(user),
                CredentialType::USER_PASS_PLAINTEXT => Cred::credential_helper(&config, url, given),
                _ => Cred::default(),
            }
        });
        callbacks.push_update_reference(|name, status| {
            if let Some(why) = status {
                *rejected.borrow_mut() = Some(format!("{name}: {why}"));
            }
            Ok(())
        });
        let mut proxy = git2::ProxyOptions::new();
        proxy.auto();
        let mut options = PushOptions::new();
        options.remote_callbacks(callbacks).proxy_options(proxy);
        origin
            .push(&[refspec.as_str()], Some(&mut options))
            .map_err(|source| GitError::Push {
                remote: remote.to_owned(),
                branch: branch.to_owned(),
                reason: PushReason::of(&source),
                source,
            })?;
    }
    if let Some(reason) = rejected.into_inner() {
        return Err(GitError::PushRejected {
            remote: remote.to_owned(),
            reason,
        });
    }
    Ok(Pushed { commit })
}
