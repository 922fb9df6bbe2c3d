//! The merge queue: merge requests, their states, and the fix tasks made when a merge fails.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::json;
use sf_core::ready::Key;
use sf_proto::{MergeRequestInfo, MergeState, TaskId, TaskStatus, TaskType};

use crate::events::Audit;
use crate::tasks::{add_note, load_task};
use crate::util::{fresh_id, now_ms, ts};
use crate::{Store, StoreError};
use sf_proto::Action;

const MR_COLS: &str = "m.id, t.id, coalesce(t.title, m.message, m.branch), m.branch, m.target, m.state, m.reason, \
     m.attempts, m.last_result, m.log_path, m.commit_id, f.id, m.approved_by, m.created_at, m.updated_at, \
     m.task, m.summary, m.agent, m.message";
const MR_FROM: &str =
    "merge_requests m LEFT JOIN tasks t ON t.key = m.task LEFT JOIN tasks f ON f.key = m.fix_task";

/// A merge request with what the merge job needs.
#[derive(Debug, Clone)]
pub struct MergeJob {
    /// The request as shown.
    pub info: MergeRequestInfo,
    /// The task's key.
    pub task_key: Option<Key>,
    /// The worker's summary.
    pub summary: Option<String>,
    /// The agent that did the work.
    pub agent: Option<String>,
    /// A message given with `sfctl merge`.
    pub message: Option<String>,
}

fn row_to_mr(r: &Row<'_>) -> rusqlite::Result<MergeJob> {
    let state: String = r.get(5)?;
    Ok(MergeJob {
        info: MergeRequestInfo {
            id: sf_proto::MergeRequestId(r.get(0)?),
            task: r
                .get::<_, Option<String>>(1)?
                .and_then(|s| TaskId::new(s).ok()),
            title: r.get(2)?,
            branch: r.get(3)?,
            target: r.get(4)?,
            state: state.parse().unwrap_or(MergeState::Waiting),
            reason: r.get(6)?,
            attempts: r.get(7)?,
            last_result: r.get(8)?,
            log_path: r.get(9)?,
            commit: r.get(10)?,
            fix_task: r
                .get::<_, Option<String>>(11)?
                .and_then(|s| TaskId::new(s).ok()),
            approved_by: r.get(12)?,
            created_at: ts(r.get(13)?),
            updated_at: ts(r.get(14)?),
            fix_tasks: Vec::new(),
            test_logs: Vec::new(),
        },
        task_key: r.get(15)?,
        summary: r.get(16)?,
        agent: r.get(17)?,
        message: r.get(18)?,
    })
}

/// How a merge attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeFailure {
    /// The test command failed on the merge result.
    Tests,
    /// The branch conflicts with the target.
    Conflict,
}

impl Store {
    pub(crate) fn mr(&self, id: i64) -> Result<MergeJob, StoreError> {
        self.conn
            .prepare_cached(&format!("SELECT {MR_COLS} FROM {MR_FROM} WHERE m.id = ?1"))?
            .query_row([id], row_to_mr)
            .optional()?
            .ok_or_else(|| {
                StoreError::not_found(format!("no merge request #{id}"))
                    .hint("list them with `sfctl mr list`")
            })
    }

    /// The merge queue, open requests first, then the 50 most recent finished ones.
    pub fn list_mrs(&self) -> Result<Vec<MergeRequestInfo>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {MR_COLS} FROM {MR_FROM}
             WHERE m.state NOT IN ('merged', 'cancelled')
                OR m.id IN (SELECT id FROM merge_requests WHERE state IN ('merged', 'cancelled') ORDER BY id DESC LIMIT 50)
             ORDER BY m.state IN ('merged', 'cancelled'), m.id"
        ))?;
        let rows = stmt.query_map([], row_to_mr)?;
        Ok(rows.map(|r| r.map(|j| j.info)).collect::<Result<_, _>>()?)
    }

    /// One merge request, with the fix tasks its failures made and each attempt's test log.
    pub fn show_mr(&self, id: sf_proto::MergeRequestId) -> Result<MergeRequestInfo, StoreError> {
        let id = id.0;
        let job = self.mr(id)?;
        let mut info = job.info;
        if let Some(key) = job.task_key {
            info.fix_tasks = self.fix_tasks_of(key)?;
        }
        info.test_logs = test_logs(&info);
        Ok(info)
    }

    /// The fix tasks made for task `key`, oldest first.
    pub(crate) fn fix_tasks_of(&self, key: Key) -> Result<Vec<sf_proto::FixTaskRef>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, coalesce(fix_kind, 'tests'), status, created_at FROM tasks INDEXED BY tasks_by_fix_of
             WHERE fix_of = ?1 ORDER BY created_at, key",
        )?;
        let rows = stmt.query_map([key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, status, at) = row?;
            out.push(sf_proto::FixTaskRef {
                id: TaskId::new(id).map_err(|e| StoreError::state(e.to_string()))?,
                kind,
                status: status
                    .parse()
                    .map_err(|_| StoreError::state(format!("task has unknown status {status}")))?,
                created_at: ts(at),
            });
        }
        Ok(out)
    }

    /// The next request to process: queued, most urgent task first, then oldest.
    /// With `recheck_waiting` (on ticks), waiting requests count too, after the queued ones:
    /// a dirty checkout may be clean now, a steward may have been registered, a git error
    /// may have passed.
    pub fn next_mr(&self, recheck_waiting: bool) -> Result<Option<MergeJob>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {MR_COLS} FROM {MR_FROM}
                 WHERE m.state = 'queued' OR (?1 AND m.state = 'waiting')
                 ORDER BY m.state = 'waiting', coalesce(t.priority, 3), m.id LIMIT 1"
            ))?
            .query_row([recheck_waiting], row_to_mr)
            .optional()?)
    }

    /// Moves a request to `state` with a reason, recording an event when the state changes.
    pub fn set_mr_state(
        &mut self,
        id: sf_proto::MergeRequestId,
        state: MergeState,
        reason: Option<&str>,
        log_path: Option<&str>,
    ) -> Result<MergeRequestInfo, StoreError> {
        let id = id.0;
        let before = self.mr(id)?;
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let attempts = u32::from(state == MergeState::Testing);
        tx.prepare_cached(
            "UPDATE merge_requests SET state = ?1, reason = ?2, updated_at = ?3, attempts = attempts + ?4,
                 log_path = coalesce(?5, log_path)
             WHERE id = ?6",
        )?
        .execute(params![state.as_str(), reason, now, attempts, log_path, id])?;
        if before.info.state != state || before.info.reason.as_deref() != reason {
            let ev = Audit::new("daemon", Action::MergeRequestUpdated, format!("mr:{id}"))
                .before(json!({"state": before.info.state, "reason": before.info.reason}))
                .after(json!({"state": state, "reason": reason}))
                .append(&tx, now)?;
            let mut events = vec![ev];
            let subject = format!("mr:{id}");
            // a held request is an approval for a human, one per request
            if state == MergeState::AwaitingApproval
                && crate::approvals::open_of(&tx, &subject)?.is_none()
            {
                let requester = match before.agent.as_deref() {
                    Some(a) if a.contains(':') => a.to_owned(),
                    Some(a) => format!("agent:{a}"),
                    None => "daemon".to_owned(),
                };
                let payload = json!({
                    "mr": id,
                    "task": before.info.task,
                    "title": before.info.title,
                    "branch": before.info.branch,
                    "target": before.info.target,
                });
                let (_, ev) = crate::approvals::open(
                    &tx,
                    sf_proto::ApprovalKind::MergeRequest,
                    &subject,
                    &requester,
                    &payload,
                    now,
                )?;
                events.push(ev);
            }
            if state == MergeState::Cancelled
                && let Some(ev) = crate::approvals::close_subject(
                    &tx,
                    "daemon",
                    &subject,
                    sf_core::approval::Move::Cancel,
                    reason,
                    now,
                )?
            {
                events.push(ev);
            }
            tx.commit()?;
            self.new_events.extend(events);
        } else {
            tx.commit()?;
        }
        self.show_mr(sf_proto::MergeRequestId(id))
    }

    /// Queues every request in `state` again with `reason`. Returns how many.
    pub(crate) fn requeue_all(
        &mut self,
        state: MergeState,
        reason: &str,
    ) -> Result<usize, StoreError> {
        let ids: Vec<i64> = self
            .conn
            .prepare_cached("SELECT id FROM merge_requests WHERE state = ?1")?
            .query_map([state.as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for &id in &ids {
            self.set_mr_state(
                sf_proto::MergeRequestId(id),
                MergeState::Queued,
                Some(reason),
                None,
            )?;
        }
        Ok(ids.len())
    }

    /// Requests left `testing` by a crash go back to the queue (the test runs again from
    /// the start). Returns how many.
    pub fn requeue_interrupted_mrs(&mut self) -> Result<usize, StoreError> {
        self.requeue_all(
            MergeState::Testing,
            "interrupted by a daemon restart; retrying",
        )
    }

    /// Records a landed merge: the request is merged, its task closes (its dependents become
    /// ready), with a `task_merged` event.
    pub fn mr_merged(
        &mut self,
        id: sf_proto::MergeRequestId,
        commit: &str,
        result: &str,
    ) -> Result<MergeRequestInfo, StoreError> {
        let id = id.0;
        let job = self.mr(id)?;
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE merge_requests SET state = 'merged', reason = NULL, commit_id = nullif(?1, ''), last_result = ?2, updated_at = ?3
             WHERE id = ?4",
        )?
        .execute(params![commit, result, now, id])?;
        let mut events = Vec::new();
        let mut after_task = None;
        if let Some(key) = job.task_key {
            let before = load_task(&tx, key)?;
            let tid = before.summary.id.clone();
            if before.summary.status == TaskStatus::Review {
                let reason = if commit.is_empty() {
                    "nothing to merge".to_owned()
                } else {
                    format!("merged as {}", &commit[..commit.len().min(12)])
                };
                tx.prepare_cached(
                    "UPDATE tasks SET status = 'closed', assignee = NULL, close_reason = ?1, updated_at = ?2 WHERE key = ?3",
                )?
                .execute(params![reason, now, key])?;
            }
            let after = load_task(&tx, key)?;
            events.push(
                Audit::new("daemon", Action::TaskMerged, format!("task:{tid}"))
                    .task(key, &tid)
                    .before(json!({"status": before.summary.status}))
                    .after(json!({"status": after.summary.status, "commit": commit, "branch": job.info.branch, "target": job.info.target, "merge_request": id}))
                    .append(&tx, now)?,
            );
            let mut plan_change = None;
            if let Some(plan) = after.plan_key {
                plan_change = crate::plans::settle_plan(&tx, plan, "daemon", now, &mut events)?;
            }
            after_task = Some((key, after, plan_change));
        } else {
            events.push(
                Audit::new("daemon", Action::BranchMerged, format!("mr:{id}"))
                    .after(json!({"commit": commit, "branch": job.info.branch, "target": job.info.target}))
                    .append(&tx, now)?,
            );
        }
        tx.commit()?;
        self.new_events.extend(events);
        if let Some((key, after, plan_change)) = after_task {
            self.after_status_change(key, &after, plan_change);
        }
        self.show_mr(sf_proto::MergeRequestId(id))
    }

    /// Records a failed merge attempt. For a task's request, makes one fix task (per
    /// original and kind) that works on the same branch and worktree; the original stays in
    /// `review` and is queued again when the fix completes.
    pub fn mr_failed(
        &mut self,
        id: sf_proto::MergeRequestId,
        failure: MergeFailure,
        detail: &str,
        result: &str,
        max_rounds: u32,
        fix_base: Option<&str>,
    ) -> Result<MergeRequestInfo, StoreError> {
        let id = id.0;
        let job = self.mr(id)?;
        let now = now_ms();
        let kind = match failure {
            MergeFailure::Tests => "tests",
            MergeFailure::Conflict => "conflict",
        };
        if let Some(key) = job.task_key {
            let rounds: u32 = self
                .conn
                .prepare_cached(
                    "SELECT count(*) FROM tasks WHERE fix_of = ?1 AND status != 'tombstone'",
                )?
                .query_row([key], |r| r.get(0))?;
            let open: bool = self
                .conn
                .prepare_cached("SELECT count(*) > 0 FROM tasks WHERE fix_of = ?1 AND status NOT IN ('closed', 'tombstone')")?
                .query_row([key], |r| r.get(0))?;
            if rounds >= max_rounds && !open {
                return self.give_up_mr(id, key, kind, rounds, result);
            }
        }
        let tx = self.conn.transaction()?;
        let mut events = Vec::new();
        let mut fix_key = None;
        let mut new_fix = None;
        if let Some(key) = job.task_key {
            let original = load_task(&tx, key)?;
            let existing: Option<Key> = tx
                .prepare_cached(
                    "SELECT key FROM tasks WHERE fix_of = ?1 AND fix_kind = ?2 AND status NOT IN ('closed', 'tombstone') LIMIT 1",
                )?
                .query_row(params![key, kind], |r| r.get(0))
                .optional()?;
            fix_key = Some(match existing {
                Some(k) => k,
                None => {
                    let title_prefix = match failure {
                        MergeFailure::Tests => "Fix failing tests",
                        MergeFailure::Conflict => "Resolve merge conflict",
                    };
                    let title: String = format!("{title_prefix}: {}", original.summary.title)
                        .chars()
                        .take(sf_core::naming::MAX_TITLE)
                        .collect();
                    let description = match failure {
                        MergeFailure::Tests => format!(
                            "The merge steward tested branch `{}` merged into `{}` and the tests failed. \
                             Make them pass on this branch, commit, and complete the task; the original task ({}) \
                             is then queued for merge again.\n\nLast lines of the test output:\n\n```\n{detail}\n```",
                            job.info.branch, job.info.target, original.summary.id
                        ),
                        MergeFailure::Conflict => format!(
                            "Branch `{}` conflicts with `{}`. Merge `{}` into this branch (or rebase onto it), \
                             resolve the conflicts, commit, and complete the task; the original task ({}) is then \
                             queued for merge again.\n\nConflicting paths:\n{detail}",
                            job.info.branch, job.info.target, job.info.target, original.summary.id
                        ),
                    };
                    let fid =
                        TaskId::new(fresh_id(&tx, "tasks")?).expect("generated ids are valid");
                    tx.prepare_cached(
                        "INSERT INTO tasks (id, title, description, status, priority, task_type, plan, skills,
                                            branch, worktree, fix_of, fix_kind, created_at, updated_at)
                         VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
                    )?
                    .execute(params![
                        fid.as_str(),
                        title,
                        description,
                        original.summary.priority,
                        TaskType::Bug.as_str(),
                        original.plan_key,
                        serde_json::to_string(&original.summary.skills)?,
                        original.branch,
                        original.worktree,
                        key,
                        kind,
                        now
                    ])?;
                    // the failure's detail is in the description only: a note would put it
                    // in the worker's prompt a second time
                    let fk = tx.last_insert_rowid();
                    let row = load_task(&tx, fk)?;
                    new_fix = Some((fk, fid, row));
                    fk
                }
            });
            if let Some(fk) = fix_key {
                tx.prepare_cached("UPDATE tasks SET fix_base = ?2 WHERE key = ?1")?
                    .execute(params![fk, fix_base])?;
            }
            events.push(
                Audit::new(
                    "daemon",
                    Action::MergeFailed,
                    format!("task:{}", original.summary.id),
                )
                .task(key, &original.summary.id)
                .after(json!({"merge_request": id, "kind": kind, "branch": job.info.branch}))
                .reason(Some(result))
                .append(&tx, now)?,
            );
            // the fix task is announced after the failure that caused it
            if let Some((fk, fid, row)) = &new_fix {
                events.push(
                    Audit::new("daemon", Action::TaskCreated, format!("task:{fid}"))
                        .task(*fk, fid)
                        .after(json!({"title": row.summary.title, "fix_of": original.summary.id, "kind": kind, "branch": original.branch}))
                        .append(&tx, now)?,
                );
            }
        } else {
            events.push(
                Audit::new("daemon", Action::MergeFailed, format!("mr:{id}"))
                    .after(json!({"kind": kind, "branch": job.info.branch}))
                    .reason(Some(result))
                    .append(&tx, now)?,
            );
        }
        let state = if job.task_key.is_some() {
            MergeState::NeedsFix
        } else {
            MergeState::Cancelled
        };
        tx.prepare_cached(
            "UPDATE merge_requests SET state = ?1, reason = ?2, last_result = ?3, fix_task = ?4, updated_at = ?5 WHERE id = ?6",
        )?
        .execute(params![state.as_str(), result, result, fix_key, now, id])?;
        tx.commit()?;
        self.new_events.extend(events);
        if let Some((fk, _, row)) = new_fix {
            self.index.insert(fk, row.live(), Vec::new());
        }
        self.show_mr(sf_proto::MergeRequestId(id))
    }

    /// The task's merge request that is still open (not merged, not cancelled), with its state.
    pub(crate) fn open_mr_of(&self, task: Key) -> Result<Option<(i64, MergeState)>, StoreError> {
        let row: Option<(i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT id, state FROM merge_requests
                 WHERE task = ?1 AND state NOT IN ('merged', 'cancelled') ORDER BY id DESC LIMIT 1",
            )?
            .query_row([task], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(match row {
            Some((id, state)) => Some((id, state.parse().map_err(StoreError::invalid)?)),
            None => None,
        })
    }

    /// Why merge requests wait, with how many wait for each reason (for `daemon status`).
    pub fn waiting_mr_reasons(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let rows = self
            .conn
            .prepare_cached(
                "SELECT coalesce(reason, 'waiting'), count(*) FROM merge_requests
                 WHERE state = 'waiting' GROUP BY 1 ORDER BY 2 DESC",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Whether the merge request `mr` belongs to the task `prefix` (the daemon refuses to
    /// move a task while its request is in the merge pipeline).
    pub fn mr_is_of_task(
        &self,
        mr: sf_proto::MergeRequestId,
        prefix: &str,
    ) -> Result<bool, StoreError> {
        let mr = mr.0;
        let (key, _) = self.resolve_task(prefix)?;
        let task: Option<Option<Key>> = self
            .conn
            .prepare_cached("SELECT task FROM merge_requests WHERE id = ?1")?
            .query_row([mr], |r| r.get(0))
            .optional()?;
        Ok(task.flatten() == Some(key))
    }

    /// A request that failed again after `rounds` fix tasks: it is cancelled and its task is
    /// blocked and announced as stuck (for a human or the recovery steward), instead of a
    /// fix task after fix task without end.
    fn give_up_mr(
        &mut self,
        id: i64,
        key: Key,
        kind: &str,
        rounds: u32,
        result: &str,
    ) -> Result<MergeRequestInfo, StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let original = load_task(&tx, key)?;
        let tid = original.summary.id.clone();
        let reason = format!(
            "the merge failed again ({result}) after {rounds} fix task(s); giving up: the task is blocked"
        );
        tx.prepare_cached(
            "UPDATE merge_requests SET state = 'cancelled', reason = ?1, last_result = ?2, fix_task = NULL, updated_at = ?3 WHERE id = ?4",
        )?
        .execute(params![reason, result, now, id])?;
        tx.prepare_cached(
            "UPDATE tasks SET status = 'blocked', assignee = NULL, updated_at = ?1 WHERE key = ?2",
        )?
        .execute(params![now, key])?;
        add_note(&tx, key, now, "daemon", "block", &reason)?;
        let after = load_task(&tx, key)?;
        let events = vec![
            Audit::new("daemon", Action::MergeFailed, format!("task:{tid}"))
                .task(key, &tid)
                .after(json!({"merge_request": id, "kind": kind, "branch": original.branch, "gave_up": true}))
                .reason(Some(result))
                .append(&tx, now)?,
            Audit::new("daemon", Action::TaskStuck, format!("task:{tid}"))
                .task(key, &tid)
                .before(json!({"status": original.summary.status}))
                .after(json!({"status": "blocked", "fix_rounds": rounds}))
                .reason(Some(&reason))
                .append(&tx, now)?,
        ];
        tx.commit()?;
        self.new_events.extend(events);
        self.index.update(key, after.live());
        self.show_mr(sf_proto::MergeRequestId(id))
    }

    /// A fix task completed: close it and queue its original's request again.
    pub(crate) fn fix_completed(
        &mut self,
        fix_key: Key,
        original: Key,
        actor: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let requeued = tx
            .prepare_cached(
                "UPDATE merge_requests SET state = 'queued', reason = 'fix completed', fix_task = NULL, updated_at = ?1
                 WHERE task = ?2 AND state = 'needs_fix'",
            )?
            .execute(params![now, original])?;
        if requeued == 0 {
            // the original's request was withdrawn meanwhile: nothing to queue again
            return Ok(());
        }
        let o = load_task(&tx, original)?;
        let ev = Audit::new(
            actor,
            Action::MergeRequeued,
            format!("task:{}", o.summary.id),
        )
        .task(original, &o.summary.id)
        .after(json!({"fixed_by": load_task(&tx, fix_key)?.summary.id}))
        .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }
}

impl Store {
    /// The branch tip the fix task `task` started from (what the failed merge tested), or
    /// `None` if it is no fix task or predates the record.
    pub fn fix_base(&self, task: &sf_proto::TaskId) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT fix_base FROM tasks WHERE id = ?1 AND fix_of IS NOT NULL")?
            .query_row([task.as_str()], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }
}

/// The test logs of a request's attempts that are still on disk, first to last: the merge
/// queue writes attempt `n`'s output to `mr-<id>-<n>.log` beside the last one.
fn test_logs(info: &MergeRequestInfo) -> Vec<String> {
    let Some(dir) = info
        .log_path
        .as_deref()
        .and_then(|p| std::path::Path::new(p).parent())
    else {
        return Vec::new();
    };
    // a passing attempt may not have been counted yet
    (1..=info.attempts + 1)
        .map(|n| dir.join(format!("mr-{}-{n}.log", info.id)))
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .collect()
}
