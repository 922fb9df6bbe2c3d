//! The merge queue on the owner: picking the next request when nothing else merges (or
//! saying why it waits), recording what the merge task reports, and `sfctl merge`.

use sf_core::merge_queue::MergeSteward;
use sf_proto::{ErrorKind, ProtoError, Response};

use super::{Owner, internal};
use crate::mailbox::MergeOutcome;

impl Owner {
    /// Starts the next merge request if none is running and a merge steward is enabled.
    pub(super) async fn merge_phase(&mut self) {
        // a merge test runs agents' code: with no usable policy nothing is spawned, and
        // requests wait (daemon status says why)
        if self.merging.is_some() || self.config.policy.is_err() {
            return;
        }
        // requests waiting on the user's checkout are re-checked on ticks, not on every wake
        let recheck_waiting = std::mem::take(&mut self.tick_due);
        let require_approval = self.config.merge_require_approval;
        let has_tests = self.config.merge_test_command.is_some();
        let picked = self
            .store_call(
                move |s| -> Result<Option<sf_store::MergeJob>, sf_store::StoreError> {
                    let stewards: Vec<MergeSteward> = s
                        .list_agents()?
                        .into_iter()
                        .filter(|a| {
                            a.spec.role == sf_proto::Role::Steward
                                && a.spec.focus == Some(sf_proto::Focus::Merge)
                        })
                        .map(|a| MergeSteward {
                            name: a.spec.name,
                            enabled: a.enabled,
                        })
                        .collect();
                    let reason = sf_core::merge_queue::wait_reason(&stewards, has_tests);
                    loop {
                        let Some(job) = s.next_mr(recheck_waiting)? else {
                            return Ok(None);
                        };
                        if let Some(reason) = &reason {
                            if job.info.reason.as_deref() != Some(reason.as_str()) {
                                s.set_mr_state(
                                    job.info.id,
                                    sf_proto::MergeState::Waiting,
                                    Some(reason),
                                    None,
                                )?;
                            }
                            return Ok(None);
                        }
                        // a hybrid seat's steward, or a human for an agent no longer live
                        let held = match job.agent.as_deref() {
                            Some(a) if job.info.approved_by.is_none() => {
                                s.merge_hold(a, job.info.id.0)?
                            }
                            _ => None,
                        };
                        if let Some(why) = held {
                            s.set_mr_state(
                                job.info.id,
                                sf_proto::MergeState::AwaitingApproval,
                                Some(&why),
                                None,
                            )?;
                            continue;
                        }
                        if require_approval && job.info.approved_by.is_none() {
                            s.set_mr_state(
                                job.info.id,
                                sf_proto::MergeState::AwaitingApproval,
                                Some("waiting for `sfctl mr approve`"),
                                None,
                            )?;
                            continue;
                        }
                        return Ok(Some(job));
                    }
                },
            )
            .await;
        match picked {
            Ok((Ok(Some(job)), _)) => {
                self.merging = Some(job.info.id);
                tokio::spawn(crate::merge::run(
                    self.config.clone(),
                    job,
                    self.internal_tx.clone(),
                ));
            }
            Ok((Ok(None), _)) => {}
            Ok((Err(e), _)) => tracing::error!(error = ?e, "merge phase failed"),
            Err(e) => tracing::error!(error = %e, "merge phase failed"),
        }
    }

    /// Records what the merge task reported.
    pub(super) async fn merge_done(&mut self, id: sf_proto::MergeRequestId, outcome: MergeOutcome) {
        use MergeOutcome as O;
        use sf_proto::MergeState;
        let max_rounds = self.config.max_attempts;
        let r = self
            .store_call(move |s| -> Result<(), sf_store::StoreError> {
                match outcome {
                    O::Merged { commit, .. } => {
                        s.mr_merged(id, &commit, "tests passed; merged")?;
                    }
                    O::NothingToMerge => {
                        s.mr_merged(id, "", "nothing to merge")?;
                    }
                    O::TestsFailed { tail, result, tip } => {
                        s.mr_failed(id, sf_store::MergeFailure::Tests, &tail, &result, max_rounds, Some(&tip))?;
                    }
                    O::Conflict { paths, tip } => {
                        let detail = paths.iter().map(|p| format!("- {p}")).collect::<Vec<_>>().join("\n");
                        s.mr_failed(id, sf_store::MergeFailure::Conflict, &detail, &format!("conflicts in {}", paths.join(", ")), max_rounds, tip.as_deref())?;
                    }
                    O::CheckoutDirty { paths } => {
                        let shown: Vec<_> = paths.iter().take(5).cloned().collect();
                        let reason = format!(
                            "checkout of the target has local changes ({}); commit or stash them and the merge goes on",
                            shown.join(", ")
                        );
                        s.set_mr_state(id, MergeState::Waiting, Some(&reason), None)?;
                    }
                    O::Error(e) => {
                        s.set_mr_state(id, MergeState::Waiting, Some(&e), None)?;
                    }
                }
                Ok(())
            })
            .await;
        match r {
            Ok((Err(e), _)) => {
                tracing::error!(mr = %id, error = ?e, "failed to record a merge outcome");
            }
            Err(e) => tracing::error!(mr = %id, error = %e, "failed to record a merge outcome"),
            Ok(_) => {}
        }
    }

    pub(super) async fn merge_branch(
        &mut self,
        actor: &str,
        branch: String,
        into: Option<String>,
        message: Option<String>,
    ) -> Response {
        let Some(target) = into.or_else(|| self.target.clone()) else {
            return Response::Error(
                ProtoError::new(ErrorKind::InvalidState, "no target branch")
                    .with_hint("pass --into BRANCH"),
            );
        };
        if branch == target {
            return Response::Error(ProtoError::new(
                ErrorKind::InvalidInput,
                format!("cannot merge `{branch}` into itself"),
            ));
        }
        let (root, b, t) = (
            self.config.paths.root.clone(),
            branch.clone(),
            target.clone(),
        );
        match tokio::task::spawn_blocking(move || sf_git::commits_ahead(&root, &b, &t)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Response::Error(
                    ProtoError::new(ErrorKind::NotFound, crate::errors::error_chain(&e)).with_hint(
                        "name an existing local branch with --branch, and its target with --into",
                    ),
                );
            }
            Err(e) => return internal(e),
        }
        let actor = actor.to_owned();
        match self
            .store_call(move |s| s.create_branch_mr(&actor, &branch, &target, message.as_deref()))
            .await
        {
            Ok((Ok(mr), _)) => Response::MergeRequest(mr),
            Ok((Err(e), _)) => Response::Error(e.into()),
            Err(e) => internal(e),
        }
    }

    /// The merge task finished with `outcome`. Returns whether the queue progressed.
    pub(super) async fn merge_finished(
        &mut self,
        id: sf_proto::MergeRequestId,
        outcome: MergeOutcome,
    ) -> bool {
        self.merging = None;
        // a request that could not proceed is looked at again at the next tick
        let progressed = !matches!(
            outcome,
            MergeOutcome::CheckoutDirty { .. } | MergeOutcome::Error(_)
        );
        self.merge_done(id, outcome).await;
        progressed
    }

    /// The merge task started the tests: their log is recorded.
    pub(super) async fn merge_testing(
        &mut self,
        id: sf_proto::MergeRequestId,
        log: std::path::PathBuf,
    ) {
        let log = log.display().to_string();
        if let Err(e) = self
            .store_call(move |s| {
                s.set_mr_state(id, sf_proto::MergeState::Testing, None, Some(&log))
            })
            .await
        {
            tracing::error!(mr = %id, error = %e, "failed to record a merge test run");
        }
    }
}
