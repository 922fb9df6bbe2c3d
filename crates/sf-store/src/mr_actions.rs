//! What people and agents ask of the merge queue: retry, approve and cancel a request,
//! and `sfctl merge` of a branch of their own.

use crate::events::Audit;
use crate::util::now_ms;
use crate::{Store, StoreError};
use rusqlite::params;
use serde_json::json;
use sf_core::ready::Key;
use sf_proto::Action;
use sf_proto::{ErrorKind, MergeRequestInfo, MergeState, TaskStatus};

impl Store {
    /// `sfctl mr retry`: queue a waiting, failed or cancelled request again.
    pub fn retry_mr(
        &mut self,
        id: sf_proto::MergeRequestId,
    ) -> Result<MergeRequestInfo, StoreError> {
        let id = id.0;
        let job = self.mr(id)?;
        if matches!(
            job.info.state,
            MergeState::Merged | MergeState::Testing | MergeState::Queued
        ) {
            return Err(
                StoreError::state(format!("merge request #{id} is {}", job.info.state))
                    .hint("only waiting, failed or cancelled requests can be retried"),
            );
        }
        self.set_mr_state(
            sf_proto::MergeRequestId(id),
            MergeState::Queued,
            Some("retried by hand"),
            None,
        )
    }

    /// Queues every waiting request again (a merge steward's cron fire). Returns how many.
    pub fn retry_waiting_mrs(&mut self) -> Result<usize, StoreError> {
        self.requeue_all(MergeState::Waiting, "retried by the merge steward")
    }

    /// `sfctl mr approve`.
    pub fn approve_mr(
        &mut self,
        id: sf_proto::MergeRequestId,
        approver: &str,
    ) -> Result<MergeRequestInfo, StoreError> {
        let id = id.0;
        let job = self.mr(id)?;
        if job.info.approved_by.is_some() {
            return Err(StoreError::refused(
                ErrorKind::Conflict,
                format!("merge request #{id} is already approved"),
            ));
        }
        if matches!(job.info.state, MergeState::Merged | MergeState::Cancelled) {
            return Err(StoreError::state(format!(
                "merge request #{id} is {}",
                job.info.state
            )));
        }
        // a hybrid seat's merge is its steward's to approve
        if let Some(agent) = job.agent.as_deref()
            && let Some(seat) = self.seat_of_agent(agent)?
            && seat.kind == sf_proto::SeatKind::Hybrid
        {
            let who = approver.strip_prefix("human:").unwrap_or(approver);
            if !seat.stewards.iter().any(|s| s == who) {
                return Err(StoreError::refused(
                    ErrorKind::PermissionDenied,
                    format!(
                        "merge request #{id} is from seat `{}`, whose steward approves it ({}); \
                         `{who}` is not its steward",
                        seat.name,
                        seat.stewards.join(", ")
                    ),
                )
                .hint(format!(
                    "ask {}; or add a steward with `sfctl seat update {} --add-steward NAME`",
                    seat.stewards.join(" or "),
                    seat.name
                )));
            }
        }
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE merge_requests SET approved_by = ?1, updated_at = ?2,
                 state = CASE WHEN state = 'awaiting_approval' THEN 'queued' ELSE state END,
                 reason = CASE WHEN state = 'awaiting_approval' THEN 'approved' ELSE reason END
             WHERE id = ?3",
        )?
        .execute(params![approver, now, id])?;
        let ev = Audit::new(
            &format!("human:{approver}"),
            Action::MergeRequestApproved,
            format!("mr:{id}"),
        )
        .after(json!({"approved_by": approver}))
        .append(&tx, now)?;
        let closed = crate::approvals::close_subject(
            &tx,
            &format!("human:{approver}"),
            &format!("mr:{id}"),
            sf_core::approval::Move::Approve,
            None,
            now,
        )?;
        tx.commit()?;
        self.new_events.push(ev);
        self.new_events.extend(closed);
        self.show_mr(sf_proto::MergeRequestId(id))
    }

    /// `sfctl mr cancel`: the request stops; its task (if in review) is blocked with the reason.
    pub fn cancel_mr(
        &mut self,
        actor: &str,
        id: sf_proto::MergeRequestId,
    ) -> Result<MergeRequestInfo, StoreError> {
        self.cancel_mr_closing(actor, id, sf_core::approval::Move::Cancel, None)
    }

    /// Cancels a merge request; its open approval (if any) ends with `m` (cancelled, or
    /// rejected by a human) and `note`.
    pub(crate) fn cancel_mr_closing(
        &mut self,
        actor: &str,
        id: sf_proto::MergeRequestId,
        m: sf_core::approval::Move,
        note: Option<&str>,
    ) -> Result<MergeRequestInfo, StoreError> {
        let id = id.0;
        let job = self.mr(id)?;
        let hint = match job.info.state {
            MergeState::Testing => {
                Some("a request being tested can be cancelled once its test run ends")
            }
            MergeState::Merged => {
                Some("it has landed; to undo it, revert its commit on the target branch")
            }
            MergeState::Cancelled => {
                Some("it is already cancelled; `sfctl mr retry` queues it again")
            }
            _ => None,
        };
        if let Some(hint) = hint {
            return Err(
                StoreError::state(format!("merge request #{id} is {}", job.info.state)).hint(hint),
            );
        }
        // the decision first, so the state change finds no open approval to cancel
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let closed =
            crate::approvals::close_subject(&tx, actor, &format!("mr:{id}"), m, note, now)?;
        tx.commit()?;
        self.new_events.extend(closed);
        self.set_mr_state(
            sf_proto::MergeRequestId(id),
            MergeState::Cancelled,
            Some(if m == sf_core::approval::Move::Reject {
                "rejected by a human"
            } else {
                "cancelled by hand"
            }),
            None,
        )?;
        if let Some(key) = job.task_key {
            let row = self.task_row(key)?;
            if row.summary.status == TaskStatus::Review {
                let id = row.summary.id.clone();
                self.set_status(
                    actor,
                    key,
                    &id,
                    &row,
                    TaskStatus::Blocked,
                    "block",
                    Some("merge request cancelled"),
                    None,
                )?;
            }
        }
        self.show_mr(sf_proto::MergeRequestId(id))
    }

    /// `sfctl merge`: a request for a branch that no task owns.
    pub fn create_branch_mr(
        &mut self,
        actor: &str,
        branch: &str,
        target: &str,
        message: Option<&str>,
    ) -> Result<MergeRequestInfo, StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO merge_requests (branch, target, state, message, agent, created_at, updated_at)
             VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?5)",
        )?
        .execute(params![branch, target, message, actor, now])?;
        let id = tx.last_insert_rowid();
        let ev = Audit::new(actor, Action::MergeRequested, format!("mr:{id}"))
            .after(json!({"branch": branch, "target": target}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.show_mr(sf_proto::MergeRequestId(id))
    }

    /// The task a fix task fixes.
    pub(crate) fn fix_of(&self, key: Key) -> Result<Option<Key>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT fix_of FROM tasks WHERE key = ?1")?
            .query_row([key], |r| r.get(0))?)
    }
}
