//! `sfctl push` on the owner: the lease and the caller are checked, then the agent's `push`
//! capability (a refusal is recorded, with its stable code); the push itself runs off the
//! owner (`crate::push`) and comes back as `Internal::Pushed`, recorded here with the
//! pushes made after a merge.

use sf_proto::{Capability, ErrorKind, PushInfo, Response};
use sf_store::PushRecord;

use super::{Owner, internal};
use crate::mailbox::{PushFailure, PushJob, Reply};
use crate::push::CAPABILITY_REQUIRED;

impl Owner {
    pub(super) async fn push_branch(
        &mut self,
        actor: &str,
        token: String,
        remote: Option<String>,
        reply: Reply,
    ) -> bool {
        let lease = match self.lease(token, actor).await {
            Ok(l) => l,
            Err(r) => {
                reply.send(r);
                return false;
            }
        };
        let job = PushJob {
            actor: format!("agent:{}", lease.agent),
            task: Some(lease.task_id.clone()),
            run: Some(lease.run_id),
            mr: None,
            remote: remote.unwrap_or_else(|| self.config.push_remote.clone()),
            branch: lease.branch.clone(),
        };
        let agent = lease.agent.clone();
        let granted = match self.store.call(move |s| s.show_agent(&agent)).await {
            Ok(Ok(a)) => a.agent.spec.capabilities.contains(&Capability::Push),
            Ok(Err(e)) => {
                reply.send(Response::Error(e.into()));
                return false;
            }
            Err(e) => {
                reply.send(internal(e));
                return false;
            }
        };
        if !granted {
            let refused = PushFailure {
                kind: ErrorKind::Denied,
                code: CAPABILITY_REQUIRED,
                message: format!(
                    "agent `{}` lacks the `push` capability: sfd pushes only for agents granted it",
                    lease.agent
                ),
                hint: Some(format!(
                    "finish with `sfctl task complete`: the merge queue lands your branch (and \
                     pushes the target if [merge] push = \"after-merge\"); a human can grant \
                     pushing by registering the agent with `--capability push` (`sfctl agent \
                     show {}` lists its capabilities)",
                    lease.agent
                )),
            };
            return self.pushed(job, Err(refused), Some(reply)).await;
        }
        if !sf_git::push::valid_remote_name(&job.remote) {
            let refused = PushFailure {
                kind: ErrorKind::InvalidInput,
                code: "no_such_remote",
                message: format!("`{}` is not a name git allows for a remote", job.remote),
                hint: Some("name one of the repository's remotes, e.g. --remote origin".into()),
            };
            reply.send(Response::Error(refused.to_proto()));
            return false;
        }
        tokio::spawn(crate::push::run(
            self.config.paths.root.clone(),
            job,
            Some(reply),
            self.internal_tx.clone(),
        ));
        false
    }

    /// Records a push, made or refused, and answers the worker who asked, if one did.
    /// Returns whether an event was committed.
    pub(super) async fn pushed(
        &mut self,
        job: PushJob,
        result: Result<String, PushFailure>,
        reply: Option<Reply>,
    ) -> bool {
        let record = job.clone();
        let outcome = result.clone().map_err(|f| (f.code, f.message));
        let recorded = self
            .store_call(move |s| {
                s.record_push(&PushRecord {
                    actor: &record.actor,
                    task: record.task.as_ref(),
                    run: record.run,
                    mr: record.mr,
                    remote: &record.remote,
                    branch: &record.branch,
                    outcome: outcome
                        .as_ref()
                        .map(String::as_str)
                        .map_err(|(c, m)| (*c, m.as_str())),
                })
            })
            .await;
        let changed = match recorded {
            Ok((Ok(()), changed)) => changed,
            Ok((Err(e), _)) => {
                tracing::error!(error = ?e, "failed to record a push");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "failed to record a push");
                false
            }
        };
        if let Some(reply) = reply {
            reply.send(match result {
                Ok(commit) => Response::Pushed(PushInfo {
                    task: job.task,
                    remote: job.remote,
                    branch: job.branch,
                    commit,
                }),
                Err(f) => Response::Error(f.to_proto()),
            });
        }
        changed
    }
}
