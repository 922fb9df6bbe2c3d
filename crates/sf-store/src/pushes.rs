//! Pushes sfd made, or refused, for a worker (`sfctl push`) or after a merge: one audit
//! event each (`branch_pushed`, `push_failed`), about the task when there is one.

use serde_json::json;
use sf_proto::{Action, TaskId};

use crate::events::Audit;
use crate::util::now_ms;
use crate::{Store, StoreError};

/// One push, as recorded.
#[derive(Debug, Clone)]
pub struct PushRecord<'a> {
    /// Who asked: `agent:NAME` for a worker, `daemon` after a merge.
    pub actor: &'a str,
    /// The task whose branch it is, or whose merge moved the target.
    pub task: Option<&'a TaskId>,
    /// The worker's run, for `sfctl push`.
    pub run: Option<i64>,
    /// The merge request that landed, for a push after a merge.
    pub mr: Option<sf_proto::MergeRequestId>,
    /// The remote's name (never its URL, which may carry a credential).
    pub remote: &'a str,
    /// The branch.
    pub branch: &'a str,
    /// The commit the remote branch now names, or a stable code and what went wrong.
    pub outcome: Result<&'a str, (&'a str, &'a str)>,
}

impl Store {
    /// Records a push (`branch_pushed`) or its refusal or failure (`push_failed`, with its
    /// code and error).
    pub fn record_push(&mut self, p: &PushRecord<'_>) -> Result<(), StoreError> {
        let key = match p.task {
            Some(t) => self.resolve_task(t.as_str()).ok(),
            None => None,
        };
        let mut data = json!({ "remote": p.remote, "branch": p.branch });
        if let Some((_, id)) = &key {
            data["task"] = json!(id);
        }
        if let Some(run) = p.run {
            data["run"] = json!(run);
        }
        if let Some(mr) = p.mr {
            data["mr"] = json!(mr);
        }
        let (action, reason) = match p.outcome {
            Ok(commit) => {
                data["commit"] = json!(commit);
                (Action::BranchPushed, None)
            }
            Err((code, error)) => {
                data["code"] = json!(code);
                data["error"] = json!(error);
                (Action::PushFailed, Some(error))
            }
        };
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let mut audit = Audit::new(p.actor, action, format!("branch:{}", p.branch))
            .after(data)
            .reason(reason);
        if let Some((k, id)) = &key {
            audit = audit.task(*k, id);
        }
        let ev = audit.append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }
}
