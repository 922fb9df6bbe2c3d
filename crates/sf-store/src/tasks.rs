//! Tasks: create, read, update, status changes.
//!
//! Size: the task row's mapping, its audit snapshots and the live-index updates are shared
//! by every write here; readiness, run logs and the merge queue live in files of their own.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension as _, Row, params, params_from_iter};
use serde_json::{Value, json};
use sf_core::naming::{normalize_skills, validate_text, validate_title};
use sf_core::ready::{Key, LiveTask, Wait};
use sf_core::status::{apply_change, is_done, plan_dispatchable};
use sf_proto::{
    ErrorKind, MergeState, NewTask, Note, PlanId, StatusChange, TaskDetail, TaskFilter, TaskId,
    TaskPatch, TaskStatus, TaskSummary, Timestamp, normalize_prefix,
};

use crate::events::Audit;
use crate::util::{fresh_id, now_ms, opt_ts, prefix_range, ts};
use crate::{Store, StoreError};
use sf_proto::Action;

pub(crate) const TASK_COLS: &str = "t.key, t.id, t.title, t.status, t.priority, t.task_type, \
     t.assignee, p.id, t.skills, t.scheduled_for, t.defer_until, t.created_at, t.updated_at, \
     t.plan, t.description, t.acceptance, t.close_reason, t.retry_at, t.attempts, t.branch, \
     t.worktree, t.shell";

pub(crate) const TASK_FROM: &str = "tasks t LEFT JOIN plans p ON p.key = t.plan";

/// A task row with the fields the summary does not carry.
#[derive(Debug, Clone)]
pub(crate) struct TaskRow {
    pub summary: TaskSummary,
    pub plan_key: Option<Key>,
    pub description: String,
    pub acceptance: String,
    pub close_reason: Option<String>,
    pub retry_at: Option<i64>,
    pub attempts: u32,
    pub branch: Option<String>,
    pub worktree: Option<String>,
    /// A playbook shell step: command, timeout, environment.
    pub shell: Option<ShellStep>,
}

/// A shell step the daemon runs itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShellStep {
    /// The command (run with `sh -c`; trusted: it comes from a playbook file).
    pub command: String,
    /// Its timeout.
    pub timeout_secs: u64,
    /// `SF_VAR_*` variables.
    pub env: std::collections::BTreeMap<String, String>,
}

fn parse_enum<T: std::str::FromStr>(s: &str) -> rusqlite::Result<T> {
    s.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown stored value `{s}`").into(),
        )
    })
}

pub(crate) fn row_to_task(r: &Row<'_>) -> rusqlite::Result<TaskRow> {
    let skills: String = r.get(8)?;
    Ok(TaskRow {
        summary: TaskSummary {
            id: TaskId::new(r.get::<_, String>(1)?).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
            })?,
            title: r.get(2)?,
            status: parse_enum(&r.get::<_, String>(3)?)?,
            priority: r.get(4)?,
            task_type: parse_enum(&r.get::<_, String>(5)?)?,
            assignee: r.get(6)?,
            plan: r
                .get::<_, Option<String>>(7)?
                .and_then(|s| PlanId::new(s).ok()),
            skills: serde_json::from_str(&skills).unwrap_or_default(),
            scheduled_for: opt_ts(r.get(9)?),
            defer_until: opt_ts(r.get(10)?),
            created_at: ts(r.get(11)?),
            updated_at: ts(r.get(12)?),
        },
        plan_key: r.get(13)?,
        description: r.get(14)?,
        acceptance: r.get(15)?,
        close_reason: r.get(16)?,
        retry_at: r.get(17)?,
        attempts: r.get(18)?,
        branch: r.get(19)?,
        worktree: r.get(20)?,
        shell: r
            .get::<_, Option<String>>(21)?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

impl TaskRow {
    pub(crate) fn live(&self) -> LiveTask {
        LiveTask {
            priority: self.summary.priority,
            status: self.summary.status,
            assigned: self.summary.assignee.is_some(),
            plan: self.plan_key,
            scheduled_for: self
                .summary
                .scheduled_for
                .map(|t| t.timestamp_millis())
                .max(self.retry_at),
            created: self.summary.created_at.timestamp_millis(),
        }
    }

    /// The fields shown in audit events.
    pub(crate) fn snapshot(&self) -> Value {
        json!({
            "title": self.summary.title,
            "status": self.summary.status,
            "priority": self.summary.priority,
            "type": self.summary.task_type,
            "assignee": self.summary.assignee,
            "plan": self.summary.plan,
            "skills": self.summary.skills,
            "scheduled_for": self.summary.scheduled_for,
            "defer_until": self.summary.defer_until,
        })
    }
}

pub(crate) fn load_task(conn: &Connection, key: Key) -> Result<TaskRow, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TASK_COLS} FROM {TASK_FROM} WHERE t.key = ?1"
    ))?;
    Ok(stmt.query_row([key], row_to_task)?)
}

/// Unsatisfied blocking dependencies of a task, as index waits.
pub(crate) fn load_waits(conn: &Connection, key: Key) -> Result<Vec<(i64, Wait)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, blocker, gate_until FROM deps
         WHERE blocked = ?1 AND satisfied_at IS NULL AND kind IN ('blocks', 'parent-child', 'awaits')",
    )?;
    let rows = stmt.query_map([key], |r| {
        let kind: String = r.get(1)?;
        let blocker: Option<i64> = r.get(2)?;
        let until: Option<i64> = r.get(3)?;
        Ok((r.get::<_, i64>(0)?, wait_of(&kind, blocker, until)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn wait_of(kind: &str, blocker: Option<i64>, until: Option<i64>) -> Wait {
    match (kind, blocker, until) {
        ("blocks", Some(b), _) => Wait::Task(b),
        ("parent-child", Some(b), _) => Wait::Parent(b),
        (_, _, Some(t)) => Wait::Timer(t),
        _ => Wait::Gate,
    }
}

pub(crate) fn add_note(
    conn: &Connection,
    key: Key,
    now: i64,
    author: &str,
    kind: &str,
    text: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO notes (task, at, author, kind, text) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![key, now, author, kind, text])?;
    Ok(())
}

fn check_priority(p: u8) -> Result<(), StoreError> {
    if (1..=5).contains(&p) {
        Ok(())
    } else {
        Err(StoreError::invalid(format!("priority {p} is out of range"))
            .hint("use 1 (most urgent) to 5; the default is 3"))
    }
}

impl Store {
    /// Resolves an id or unique prefix to a task's key and full id.
    pub fn resolve_task(&self, prefix: &str) -> Result<(Key, TaskId), StoreError> {
        let p = normalize_prefix(prefix).map_err(|e| {
            StoreError::invalid(e.to_string()).hint("list tasks with `sfctl task list`")
        })?;
        let (lo, hi) = prefix_range(&p);
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, id FROM tasks WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 6",
        )?;
        let rows: Vec<(Key, String)> = stmt
            .query_map([&lo, &hi], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if let Some((k, id)) = rows.iter().find(|(_, id)| *id == p) {
            return Ok((*k, TaskId::new(id.clone()).expect("stored ids are valid")));
        }
        match rows.as_slice() {
            [] => Err(StoreError::not_found(format!("no task matches `{prefix}`"))
                .hint("list tasks with `sfctl task list --all`")),
            [(k, id)] => Ok((*k, TaskId::new(id.clone()).expect("stored ids are valid"))),
            many => {
                let ids: Vec<&str> = many.iter().map(|(_, id)| id.as_str()).take(5).collect();
                Err(StoreError::refused(
                    ErrorKind::Ambiguous,
                    format!("`{prefix}` matches more than one task: {}", ids.join(", ")),
                )
                .hint("type more characters of the id"))
            }
        }
    }

    pub(crate) fn task_row(&self, key: Key) -> Result<TaskRow, StoreError> {
        load_task(&self.conn, key)
    }

    fn resolve_blockers(&self, ids: &[String]) -> Result<Vec<(Key, TaskId)>, StoreError> {
        let mut out = Vec::new();
        for p in ids {
            let (k, id) = self.resolve_task(p)?;
            if self.task_row(k)?.summary.status == TaskStatus::Tombstone {
                return Err(StoreError::state(format!(
                    "task {id} is deleted and cannot block anything"
                )));
            }
            if !out.iter().any(|(o, _)| *o == k) {
                out.push((k, id));
            }
        }
        Ok(out)
    }

    /// Creates a task, its `blocked_by` dependencies and its event, in one transaction.
    pub fn create_task(&mut self, actor: &str, new: NewTask) -> Result<TaskDetail, StoreError> {
        self.create_task_with(actor, new, |_, _| Ok(()))
    }

    /// [`Store::create_task`], with `also` done in the same transaction once the task's row
    /// exists (given the transaction and the task's key).
    pub(crate) fn create_task_with(
        &mut self,
        actor: &str,
        new: NewTask,
        also: impl FnOnce(&rusqlite::Transaction<'_>, Key) -> Result<(), StoreError>,
    ) -> Result<TaskDetail, StoreError> {
        let title = validate_title(&new.title)?;
        validate_text("description", &new.description)?;
        validate_text("acceptance criteria", &new.acceptance)?;
        check_priority(new.priority)?;
        let mut skills = normalize_skills(&new.skills)?;
        let seat = match &new.seat {
            Some(seat) => {
                let info = self.show_seat(seat)?;
                skills.push(sf_core::jobs::seat_skill(seat));
                skills.sort();
                Some(info)
            }
            None => None,
        };
        let plan = match &new.plan {
            Some(p) => {
                let plan = self.resolve_plan(p)?;
                if matches!(plan.status, sf_proto::PlanStatus::Cancelled) {
                    return Err(StoreError::state(format!("plan {} is cancelled", plan.id))
                        .hint("create a new plan with `sfctl plan create`"));
                }
                Some(plan)
            }
            None => None,
        };
        let blockers = self.resolve_blockers(&new.blocked_by)?;
        // a task a run creates is its task's child: charged to that task's budget too
        let parent = match (&new.token, actor.strip_prefix("agent:")) {
            (Some(token), Some(agent)) => match self.guard_run(token) {
                Ok(run) if run.agent == agent => run
                    .task
                    .as_ref()
                    .map(|t| self.resolve_task(t.as_str()))
                    .transpose()?
                    .map(|(k, _)| k),
                _ => None,
            },
            _ => None,
        };
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let id = TaskId::new(fresh_id(&tx, "tasks")?).expect("generated ids are valid");
        tx.prepare_cached(
            "INSERT INTO tasks (id, title, description, acceptance, status, priority, task_type,
                                plan, skills, scheduled_for, created_at, updated_at, parent_task, seat)
             VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12)",
        )?
        .execute(params![
            id.as_str(),
            title,
            new.description,
            new.acceptance,
            new.priority,
            new.task_type.as_str(),
            plan.as_ref().map(|p| p.key),
            serde_json::to_string(&skills)?,
            new.scheduled_for.map(|t| t.timestamp_millis()),
            now,
            parent,
            seat.as_ref().map(|s| s.name.as_str()),
        ])?;
        let key = tx.last_insert_rowid();
        also(&tx, key)?;
        let mut waits = Vec::new();
        for (bk, _) in &blockers {
            tx.prepare_cached("INSERT INTO deps (blocked, blocker, kind, created_at) VALUES (?1, ?2, 'blocks', ?3)")?
                .execute(params![key, bk, now])?;
            waits.push((tx.last_insert_rowid(), Wait::Task(*bk)));
        }
        let row = load_task(&tx, key)?;
        let mut after = row.snapshot();
        after["blocked_by"] = json!(blockers.iter().map(|(_, id)| id).collect::<Vec<_>>());
        let ev = Audit::new(actor, Action::TaskCreated, format!("task:{id}"))
            .task(key, &id)
            .after(after)
            .append(&tx, now)?;
        let mut events = vec![ev];
        let mut plan_change = None;
        if let Some(plan) = &plan {
            plan_change = crate::plans::settle_plan(&tx, plan.key, actor, now, &mut events)?;
        }
        tx.commit()?;
        self.new_events.extend(events);
        if let Some((plan, status)) = plan_change {
            self.index.set_plan_active(plan, plan_dispatchable(status));
        }
        self.index.insert(key, row.live(), waits);
        // a human seat's work is its stewards': it waits in their inboxes, never dispatched
        if let Some(seat) = seat.filter(|s| s.kind == sf_proto::SeatKind::Human) {
            for steward in &seat.stewards {
                let m = sf_proto::NewMessage {
                    to: Some(format!("human:{steward}")),
                    subject: Some(format!("task {} for seat {}: {title}", id, seat.name)),
                    body: format!(
                        "Task {id} is for seat `{}`, a human seat you steward: no agent takes it.\n\n\
                         `sfctl task show {id}`; close it with `sfctl task close {id}` when done.",
                        seat.name
                    ),
                    ..sf_proto::NewMessage::default()
                };
                if let Err(e) = self.send_message("daemon", m) {
                    tracing::warn!(error = %e, task = %id, "could not tell a seat's steward");
                }
            }
        }
        self.task_detail(key)
    }

    /// Lists tasks. Without a status filter every task but deleted ones is listed.
    pub fn list_tasks(&mut self, filter: &TaskFilter) -> Result<Vec<TaskSummary>, StoreError> {
        let limit = filter.limit.map(|l| l as usize);
        if filter.ready {
            let ready = self.ready(now_ms(), None)?;
            let plan_key = match &filter.plan {
                Some(p) => Some(self.resolve_plan(p)?.id),
                None => None,
            };
            return Ok(ready
                .into_iter()
                .map(|r| r.task)
                .filter(|t| filter.status.is_empty() || filter.status.contains(&t.status))
                .filter(|t| plan_key.is_none() || t.plan == plan_key)
                .take(limit.unwrap_or(usize::MAX))
                .collect());
        }
        let mut sql = format!("SELECT {TASK_COLS} FROM {TASK_FROM} WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if filter.status.is_empty() {
            sql.push_str(" AND t.status != 'tombstone'");
        } else {
            let marks = vec!["?"; filter.status.len()].join(", ");
            sql.push_str(&format!(" AND t.status IN ({marks})"));
            args.extend(filter.status.iter().map(|s| s.as_str().to_owned().into()));
        }
        if let Some(a) = &filter.assignee {
            sql.push_str(" AND t.assignee = ?");
            args.push(a.clone().into());
        }
        if let Some(p) = &filter.plan {
            sql.push_str(" AND t.plan = ?");
            args.push(self.resolve_plan(p)?.key.into());
        }
        sql.push_str(" ORDER BY t.priority ASC, t.created_at ASC, t.key ASC");
        if let Some(l) = limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |r| {
            row_to_task(r).map(|t| t.summary)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One task in full.
    pub fn show_task(&mut self, prefix: &str) -> Result<TaskDetail, StoreError> {
        let (key, _) = self.resolve_task(prefix)?;
        self.task_detail(key)
    }

    pub(crate) fn task_detail(&mut self, key: Key) -> Result<TaskDetail, StoreError> {
        let row = self.task_row(key)?;
        let now = now_ms();
        let (depends_on, dependents) = self.deps_of(key)?;
        let waiting = if row.summary.status == TaskStatus::Open {
            self.render_reasons(key, &self.index.reasons(key, now))?
        } else {
            Vec::new()
        };
        let effective_priority = self
            .index
            .effective_priority(key)
            .unwrap_or(row.summary.priority);
        let mut notes_stmt = self.conn.prepare_cached(
            "SELECT at, author, kind, text FROM notes WHERE task = ?1 ORDER BY id",
        )?;
        let notes = notes_stmt
            .query_map([key], |r| {
                Ok(Note {
                    at: ts(r.get(0)?),
                    author: r.get(1)?,
                    kind: r.get(2)?,
                    text: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        drop(notes_stmt);
        Ok(TaskDetail {
            ready: self.index.is_ready(key, now),
            waiting,
            effective_priority,
            description: row.description,
            acceptance: row.acceptance,
            close_reason: row.close_reason,
            depends_on,
            dependents,
            notes,
            runs: self.task_runs(key)?,
            branch: row.branch,
            worktree: row.worktree,
            attempts: row.attempts,
            shell: row.shell.as_ref().map(|s| s.command.clone()),
            retry_at: crate::util::opt_ts(row.retry_at),
            events: self.task_events(key)?,
            messages: self.task_messages(key)?,
            fix_of: match self.fix_of(key)? {
                Some(k) => Some(self.task_row(k)?.summary.id),
                None => None,
            },
            fix_tasks: self.fix_tasks_of(key)?,
            task: row.summary,
        })
    }

    /// Changes a task's fields.
    pub fn update_task(
        &mut self,
        actor: &str,
        prefix: &str,
        patch: TaskPatch,
    ) -> Result<TaskDetail, StoreError> {
        let (key, id) = self.resolve_task(prefix)?;
        let before = self.task_row(key)?;
        if before.summary.status == TaskStatus::Tombstone {
            return Err(StoreError::state(format!("task {id} is deleted"))
                .hint("deleted tasks cannot change"));
        }
        let title = patch.title.as_deref().map(validate_title).transpose()?;
        if let Some(d) = &patch.description {
            validate_text("description", d)?;
        }
        if let Some(a) = &patch.acceptance {
            validate_text("acceptance criteria", a)?;
        }
        if let Some(n) = &patch.note {
            validate_text("note", n)?;
        }
        if let Some(p) = patch.priority {
            check_priority(p)?;
        }
        let skills = patch.skills.as_ref().map(normalize_skills).transpose()?;
        let plan = match patch.plan.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(p) => Some(Some(self.resolve_plan(p)?)),
        };
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let mut sets: Vec<(&str, rusqlite::types::Value)> = Vec::new();
        if let Some(t) = title {
            sets.push(("title", t.into()));
        }
        if let Some(d) = patch.description {
            sets.push(("description", d.into()));
        }
        if let Some(a) = patch.acceptance {
            sets.push(("acceptance", a.into()));
        }
        if let Some(p) = patch.priority {
            sets.push(("priority", i64::from(p).into()));
        }
        if let Some(t) = patch.task_type {
            sets.push(("task_type", t.as_str().to_owned().into()));
        }
        if let Some(s) = &skills {
            sets.push(("skills", serde_json::to_string(s)?.into()));
        }
        if let Some(p) = &plan {
            sets.push(("plan", p.as_ref().map(|p| p.key).into()));
        }
        if patch.clear_scheduled_for {
            sets.push(("scheduled_for", rusqlite::types::Value::Null));
        } else if let Some(s) = patch.scheduled_for {
            sets.push(("scheduled_for", s.timestamp_millis().into()));
        }
        if sets.is_empty() && patch.note.is_none() {
            return Err(StoreError::invalid("nothing to update")
                .hint("pass at least one field, e.g. `--priority 1` or `--note TEXT`"));
        }
        if !sets.is_empty() {
            let assigns: Vec<String> = sets.iter().map(|(c, _)| format!("{c} = ?")).collect();
            let sql = format!(
                "UPDATE tasks SET {}, updated_at = ? WHERE key = ?",
                assigns.join(", ")
            );
            let mut args: Vec<rusqlite::types::Value> = sets.into_iter().map(|(_, v)| v).collect();
            args.push(now.into());
            args.push(key.into());
            tx.execute(&sql, params_from_iter(args))?;
        }
        if let Some(n) = &patch.note {
            add_note(&tx, key, now, actor, "note", n)?;
        }
        let after = load_task(&tx, key)?;
        let (b, a) = diff(&before.snapshot(), &after.snapshot());
        let ev = Audit::new(actor, Action::TaskUpdated, format!("task:{id}"))
            .task(key, &id)
            .before(b)
            .after(a)
            .reason(patch.note.as_deref())
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        if let Some(p) = plan.flatten() {
            self.index
                .set_plan_active(p.key, plan_dispatchable(p.status));
        }
        self.index.update(key, after.live());
        self.task_detail(key)
    }

    /// Applies a named status change (`close`, `defer`, ...).
    pub fn change_status(
        &mut self,
        actor: &str,
        prefix: &str,
        change: StatusChange,
        reason: Option<&str>,
        until: Option<Timestamp>,
    ) -> Result<TaskDetail, StoreError> {
        let (key, id) = self.resolve_task(prefix)?;
        let before = self.task_row(key)?;
        let to = apply_change(before.summary.status, change).map_err(|e| {
            StoreError::state(format!("task {id}: {e}"))
                .hint(format!("see where it is with `sfctl task show {id}`"))
        })?;
        if let Some(r) = reason {
            validate_text("reason", r)?;
        }
        if change == StatusChange::Block && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(
                StoreError::invalid("blocking a task needs a reason").hint("pass `--reason TEXT`")
            );
        }
        if until.is_some() && change != StatusChange::Defer {
            return Err(StoreError::invalid("`until` only applies to `defer`"));
        }
        if before.summary.status == TaskStatus::Review
            && let Some((mr, MergeState::Testing)) = self.open_mr_of(key)?
        {
            return Err(StoreError::state(format!(
                "task {id} is being merged: merge request #{mr} is testing"
            ))
            .hint(format!(
                "wait for its result (`sfctl mr show {mr}`), then try again"
            )));
        }
        self.set_status(
            actor,
            key,
            &id,
            &before,
            to,
            change.as_str(),
            reason,
            until.map(|t| t.timestamp_millis()),
        )?;
        self.task_detail(key)
    }

    /// Moves a task to `to` (already checked), with its note, event and plan bookkeeping.
    #[expect(
        clippy::too_many_arguments,
        reason = "one internal call shape for every status change"
    )]
    pub(crate) fn set_status(
        &mut self,
        actor: &str,
        key: Key,
        id: &TaskId,
        before: &TaskRow,
        to: TaskStatus,
        verb: &str,
        reason: Option<&str>,
        defer_until: Option<i64>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let keep_assignee = matches!(to, TaskStatus::InProgress | TaskStatus::Review);
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE tasks SET status = ?1, updated_at = ?2,
                assignee = CASE WHEN ?3 THEN assignee ELSE NULL END,
                defer_until = ?4,
                close_reason = CASE WHEN ?1 = 'closed' THEN ?5 ELSE NULL END
             WHERE key = ?6",
        )?
        .execute(params![
            to.as_str(),
            now,
            keep_assignee,
            defer_until,
            reason,
            key
        ])?;
        if let Some(r) = reason.filter(|r| !r.trim().is_empty()) {
            add_note(&tx, key, now, actor, verb, r)?;
        }
        let after = load_task(&tx, key)?;
        let mut events = vec![Audit::new(actor, Action::TaskStatusChanged, format!("task:{id}"))
            .task(key, id)
            .before(json!({"status": before.summary.status, "assignee": before.summary.assignee}))
            .after(json!({"status": to, "assignee": after.summary.assignee, "defer_until": after.summary.defer_until}))
            .reason(reason)
            .append(&tx, now)?];
        let closed_fixes = if before.summary.status == TaskStatus::Review {
            // the work under review is withdrawn: its merge request must not land
            cancel_open_mrs(&tx, key, id, actor, verb, now, &mut events)?
        } else {
            Vec::new()
        };
        let mut plan_change = None;
        if let Some(plan) = after.plan_key {
            let workflow: Option<String> = tx
                .prepare_cached("SELECT playbook FROM plans WHERE key = ?1")?
                .query_row([plan], |r| r.get(0))?;
            plan_change = if to == TaskStatus::Tombstone && workflow.is_some() {
                let reason = format!("step {id} was deleted");
                crate::plans::fail_plan(&tx, plan, &reason, now, &mut events)?
            } else {
                crate::plans::settle_plan(&tx, plan, actor, now, &mut events)?
            };
        }
        let waits = if is_done(to) || is_done(before.summary.status) == is_done(to) {
            None
        } else {
            Some(load_waits(&tx, key)?)
        };
        tx.commit()?;
        self.new_events.extend(events);
        for k in closed_fixes {
            self.index.remove(k);
        }
        if let Some((plan, status)) = plan_change {
            self.index.set_plan_active(plan, plan_dispatchable(status));
        }
        if is_done(to) {
            self.index.remove(key);
        } else if let Some(waits) = waits {
            self.index.insert(key, after.live(), waits);
        } else {
            self.index.update(key, after.live());
        }
        Ok(())
    }

    /// Task counts by status, tombstones excluded.
    pub fn status_counts(&self) -> Result<BTreeMap<TaskStatus, u64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, count(*) FROM tasks WHERE status != 'tombstone' GROUP BY status",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                parse_enum::<TaskStatus>(&r.get::<_, String>(0)?)?,
                r.get::<_, i64>(1)?.unsigned_abs(),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn load_index(&mut self) -> Result<(), StoreError> {
        // streamed in two passes with only the columns the index needs, so that loading a
        // large history does not leave a large peak behind in the allocator
        let live: i64 = self.conn.query_row(
            "SELECT count(*) FROM tasks WHERE status NOT IN ('closed', 'tombstone')",
            [],
            |r| r.get(0),
        )?;
        self.index.reserve(usize::try_from(live).unwrap_or(0));
        {
            let mut stmt = self.conn.prepare(
                "SELECT key, status, priority, assignee IS NOT NULL, plan, scheduled_for, retry_at, created_at
                 FROM tasks WHERE status NOT IN ('closed', 'tombstone')",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let scheduled: Option<i64> = r.get(5)?;
                let retry: Option<i64> = r.get(6)?;
                let task = LiveTask {
                    status: parse_enum(&r.get::<_, String>(1)?)?,
                    priority: r.get(2)?,
                    assigned: r.get(3)?,
                    plan: r.get(4)?,
                    scheduled_for: scheduled.max(retry),
                    created: r.get(7)?,
                };
                self.index.insert(r.get(0)?, task, Vec::new());
            }
        }
        {
            let mut stmt = self.conn.prepare(
                "SELECT d.id, d.blocked, d.kind, d.blocker, d.gate_until FROM deps d JOIN tasks t ON t.key = d.blocked
                 WHERE d.satisfied_at IS NULL AND d.kind IN ('blocks', 'parent-child', 'awaits')
                   AND t.status NOT IN ('closed', 'tombstone')",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let kind: String = r.get(2)?;
                let wait = wait_of(&kind, r.get(3)?, r.get(4)?);
                self.index.add_wait(r.get(1)?, r.get(0)?, wait);
            }
        }
        let plans: Vec<(Key, String)> = self
            .conn
            .prepare("SELECT key, status FROM plans")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (k, s) in plans {
            let status: sf_proto::PlanStatus = parse_enum(&s)?;
            self.index.set_plan_active(k, plan_dispatchable(status));
        }
        Ok(())
    }
}

/// The fields that differ between two snapshots, as (before, after).
fn diff(before: &Value, after: &Value) -> (Value, Value) {
    let (mut b, mut a) = (serde_json::Map::new(), serde_json::Map::new());
    if let (Some(bo), Some(ao)) = (before.as_object(), after.as_object()) {
        for (k, av) in ao {
            let bv = bo.get(k).cloned().unwrap_or(Value::Null);
            if &bv != av {
                b.insert(k.clone(), bv);
                a.insert(k.clone(), av.clone());
            }
        }
    }
    (Value::Object(b), Value::Object(a))
}

/// Cancels the open merge requests of a task that left `review` by hand (closed, reopened,
/// blocked), inside the caller's transaction, one event each.
pub(crate) fn cancel_open_mrs(
    tx: &rusqlite::Connection,
    task: Key,
    id: &TaskId,
    actor: &str,
    verb: &str,
    now: i64,
    events: &mut Vec<sf_proto::AuditEvent>,
) -> Result<Vec<Key>, StoreError> {
    let open: Vec<(i64, String)> = tx
        .prepare_cached(
            "SELECT id, state FROM merge_requests WHERE task = ?1 AND state NOT IN ('merged', 'cancelled')",
        )?
        .query_map([task], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let reason = format!("task {id} was moved out of review ({verb})");
    for (mr, state) in open {
        tx.prepare_cached(
            "UPDATE merge_requests SET state = 'cancelled', reason = ?1, updated_at = ?2 WHERE id = ?3",
        )?
        .execute(params![reason, now, mr])?;
        events.push(
            Audit::new(actor, Action::MergeRequestUpdated, format!("mr:{mr}"))
                .task(task, id)
                .before(json!({"state": state}))
                .after(json!({"state": "cancelled", "reason": reason}))
                .append(tx, now)?,
        );
        events.extend(crate::approvals::close_subject(
            tx,
            actor,
            &format!("mr:{mr}"),
            sf_core::approval::Move::Cancel,
            Some(&reason),
            now,
        )?);
    }
    // its fix tasks work on the same branch and worktree: they go too (a worker on one is
    // stopped by the event), so a reopened task never shares its worktree with a fix
    let fixes: Vec<(Key, String, String, Option<String>)> = tx
        .prepare_cached(
            "SELECT key, id, status, assignee FROM tasks WHERE fix_of = ?1 AND status NOT IN ('closed', 'tombstone')",
        )?
        .query_map([task], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let mut closed = Vec::new();
    for (key, fid, status, assignee) in fixes {
        let why = format!("its task {id} was moved out of review ({verb})");
        tx.prepare_cached(
            "UPDATE tasks SET status = 'closed', assignee = NULL, close_reason = ?1, updated_at = ?2 WHERE key = ?3",
        )?
        .execute(params![why, now, key])?;
        add_note(tx, key, now, actor, "close", &why)?;
        let fid = TaskId::new(fid).map_err(|e| StoreError::invalid(e.to_string()))?;
        events.push(
            Audit::new(actor, Action::TaskStatusChanged, format!("task:{fid}"))
                .task(key, &fid)
                .before(json!({"status": status, "assignee": assignee}))
                .after(json!({"status": "closed", "assignee": null}))
                .reason(Some(&why))
                .append(tx, now)?,
        );
        closed.push(key);
    }
    Ok(closed)
}

impl Store {
    /// Whether dependency `dep` is a gate (approval, external or timer): removing it opens
    /// what it held, a human's decision.
    pub fn dep_is_gate(&self, dep: sf_proto::DepId) -> Result<bool, StoreError> {
        let gate: Option<Option<String>> = self
            .conn
            .prepare_cached("SELECT gate FROM deps WHERE id = ?1")?
            .query_row([dep.0], |r| r.get(0))
            .optional()?;
        Ok(matches!(gate, Some(Some(_))))
    }

    /// Whose a task is, for the guard: its assignee, else the actor that created it
    /// (`agent:` stripped from an agent's name; a human's kept as `human:…`).
    pub fn task_owner(&self, prefix: &str) -> Result<String, StoreError> {
        let (key, _) = self.resolve_task(prefix)?;
        self.task_owner_of(key)
    }

    fn task_owner_of(&self, key: Key) -> Result<String, StoreError> {
        let assignee: Option<String> = self
            .conn
            .prepare_cached("SELECT assignee FROM tasks WHERE key = ?1")?
            .query_row([key], |r| r.get(0))?;
        if let Some(a) = assignee {
            return Ok(a);
        }
        let creator: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT actor FROM events WHERE task = ?1 AND action = 'task_created' ORDER BY id LIMIT 1",
            )?
            .query_row([key], |r| r.get(0))
            .optional()?;
        Ok(owner_name(creator.as_deref().unwrap_or("")))
    }

    /// Whose the task a dependency holds is (see [`Store::task_owner`]).
    pub fn dep_owner(&self, dep: sf_proto::DepId) -> Result<String, StoreError> {
        let key: Option<Key> = self
            .conn
            .prepare_cached("SELECT blocked FROM deps WHERE id = ?1")?
            .query_row([dep.0], |r| r.get(0))
            .optional()?;
        match key {
            Some(k) => self.task_owner_of(k),
            None => Err(StoreError::not_found(format!("no dependency #{dep}"))),
        }
    }

    /// Whose a merge request is: its task's, else whoever asked for it.
    pub fn mr_owner(&self, id: sf_proto::MergeRequestId) -> Result<String, StoreError> {
        let row: Option<(Option<Key>, Option<String>)> = self
            .conn
            .prepare_cached("SELECT task, agent FROM merge_requests WHERE id = ?1")?
            .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            Some((Some(k), _)) => self.task_owner_of(k),
            Some((None, agent)) => Ok(owner_name(agent.as_deref().unwrap_or(""))),
            None => Err(StoreError::not_found(format!("no merge request #{id}"))),
        }
    }
}

/// An actor string as an owner: an agent's bare name, anything else as it is.
fn owner_name(actor: &str) -> String {
    actor.strip_prefix("agent:").unwrap_or(actor).to_owned()
}
