//! `sfctl task complete` and `task handoff` from a worker: the lease is checked, the git
//! work (commit what is left, count the commits ahead) runs off the owner, then the
//! completion is recorded with the lease checked again and the worker stopped after a grace.

use sf_proto::{ErrorKind, ProtoError, Response};
use sf_store::Lease;

use super::{Owner, internal};
use crate::mailbox::{Internal, PendingComplete, Reply};

impl Owner {
    /// The live lease `token` names, for a call by `actor`. A sandboxed run's calls are its
    /// agent's whatever it claims (see `identity`): it may use only its own agent's lease,
    /// never one it read or guessed.
    pub(super) async fn lease(&self, token: String, actor: &str) -> Result<Lease, Response> {
        let lease = match self.store.call(move |s| s.check_lease(&token)).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return Err(Response::Error(e.into())),
            Err(e) => return Err(internal(e)),
        };
        if let Some(agent) = actor.strip_prefix("agent:")
            && agent != lease.agent
        {
            return Err(Response::Error(
                ProtoError::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "this lease is {}'s, but the caller is agent `{agent}`",
                        lease.agent
                    ),
                )
                .with_hint("a run acts only on its own task, with its own SF_RUN"),
            ));
        }
        Ok(lease)
    }

    pub(super) async fn complete(
        &mut self,
        actor: &str,
        token: String,
        summary: Option<String>,
        no_changes: bool,
        reply: Reply,
    ) -> bool {
        let lease = match self.lease(token, actor).await {
            Ok(l) => l,
            Err(r) => {
                reply.send(r);
                return false;
            }
        };
        let Some(target) = self.target.clone() else {
            reply.send(internal("no target branch"));
            return false;
        };
        if let Some(w) = self.workers.get_mut(&lease.run_id) {
            if w.completing {
                reply.send(Response::Error(ProtoError::new(
                    ErrorKind::InvalidState,
                    "this run is already completing",
                )));
                return false;
            }
            w.completing = true;
        }
        let root = self.config.paths.root.clone();
        let wt = crate::workers::worktree_path(&self.config, &lease.worktree);
        let tx = self.internal_tx.clone();
        let task_id = lease.task_id.clone();
        let fix_base = match self.store.call(move |s| s.fix_base(&task_id)).await {
            Ok(Ok(base)) => base,
            _ => None,
        };
        tokio::spawn(async move {
            let (branch, agent, task) = (
                lease.branch.clone(),
                lease.agent.clone(),
                lease.task_id.to_string(),
            );
            let tx2 = tx.clone();
            let (root2, branch2) = (root.clone(), branch.clone());
            let ahead = tokio::task::spawn_blocking(move || {
                if wt.exists() {
                    let name = wt
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let admin = crate::workers::admin_name(&name);
                    let restored = sf_git::restore_worktree_links(&root, admin, &wt)?;
                    if !restored.is_empty() {
                        crate::workers::report_tampering(&tx2, Some(&task), restored);
                        return Err(sf_git::GitError::Io {
                            what: "complete the task".to_owned(),
                            source: std::io::Error::other(
                                "the run changed its worktree's git links (restored; see the \
                                 worktree_tampered event): the completion is refused",
                            ),
                        });
                    }
                    let repaired = sf_git::locks::repair_worktree(&wt)?;
                    crate::workers::report_repairs(&tx2, Some(&task), repaired);
                    sf_git::commit_all(
                        &wt,
                        &format!("{task}: work left uncommitted at completion"),
                        &agent,
                    )?;
                }
                sf_git::commits_ahead(&root, &branch, &target)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
            // a fix task: has the branch moved since the merge it fixes failed?
            let fixed = match fix_base {
                Some(base) if ahead.is_ok() => Some(
                    tokio::task::spawn_blocking(move || sf_git::branch_tip_id(&root2, &branch2))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                        .map(|tip| tip != base),
                ),
                _ => None,
            };
            let _ = tx.send(Internal::CompletePrepared(Box::new(PendingComplete {
                lease,
                summary,
                no_changes,
                ahead,
                fixed,
                reply,
            })));
        });
        false
    }

    pub(super) async fn finish_complete(&mut self, p: PendingComplete) -> bool {
        let PendingComplete {
            lease,
            summary,
            no_changes,
            ahead,
            fixed,
            reply,
        } = p;
        let run_id = lease.run_id;
        if let Some(w) = self.workers.get_mut(&run_id) {
            w.completing = false;
        }
        let target = self.target.clone().unwrap_or_default();
        let refuse = |m: String, hint: &str| {
            Response::Error(ProtoError::new(ErrorKind::InvalidState, m).with_hint(hint))
        };
        let nothing = match ahead {
            Err(e) => {
                reply.send(internal(format!(
                    "failed to inspect branch {}: {e}",
                    lease.branch
                )));
                return false;
            }
            Ok(0) if !no_changes => {
                reply.send(refuse(
                    format!("branch {} has no commits ahead of {target}", lease.branch),
                    "commit your work first, or pass --no-changes to close the task as nothing to merge",
                ));
                return false;
            }
            Ok(n) if n > 0 && no_changes => {
                reply.send(refuse(
                    format!(
                        "--no-changes, but branch {} has {n} commit(s) ahead of {target}",
                        lease.branch
                    ),
                    "complete without --no-changes to queue them for merge",
                ));
                return false;
            }
            Ok(n) => n == 0,
        };
        // a fix that adds nothing would fail the merge the same way, at once
        if let Some(Ok(false)) = fixed {
            reply.send(refuse(
                format!(
                    "this fix task adds no commit to {} since the merge failed; retesting it \
                     would fail the same way",
                    lease.branch
                ),
                "commit a fix first; if you cannot, hand the task back with \
                 `sfctl task handoff --note \"what blocks it\"`",
            ));
            return false;
        }
        let token_check = lease.clone();
        let r = self
            .store_call(move |s| {
                // the lease may have changed while git ran: check it again
                let lease = s.check_lease_by_run(token_check.run_id)?;
                s.complete(&lease, summary.as_deref(), &target, nothing)?;
                s.show_task(lease.task_id.as_str())
            })
            .await;
        let (response, taken_away) = match r {
            Ok((Ok(t), _)) => (Response::Task(Box::new(t)), false),
            // the task was taken from this run while its git work ran (closed by hand):
            // the worker was skipped then, so it is stopped now
            Ok((Err(e), _)) => {
                let denied = e.kind() == ErrorKind::PermissionDenied;
                (Response::Error(e.into()), denied)
            }
            Err(e) => (internal(e), false),
        };
        let ok = !matches!(response, Response::Error(_));
        reply.send(response);
        if ok {
            self.stop_after_grace(run_id);
        } else if taken_away && let Some(w) = self.workers.get(&run_id) {
            w.stop.cancel();
        }
        ok
    }

    pub(super) fn stop_after_grace(&self, run_id: i64) {
        if let Some(w) = self.workers.get(&run_id) {
            let stop = w.stop.clone();
            let grace = self.config.complete_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                stop.cancel();
            });
        }
    }

    pub(super) async fn handoff(&mut self, actor: &str, token: String, note: String) -> Response {
        let lease = match self.lease(token, actor).await {
            Ok(l) => l,
            Err(r) => return r,
        };
        let run_id = lease.run_id;
        let r = self
            .store_call(move |s| {
                s.handoff(&lease, &note)?;
                s.show_task(lease.task_id.as_str())
            })
            .await;
        match r {
            Ok((Ok(t), _)) => {
                self.stop_after_grace(run_id);
                Response::Task(Box::new(t))
            }
            Ok((Err(e), _)) => Response::Error(e.into()),
            Err(e) => internal(e),
        }
    }
}
