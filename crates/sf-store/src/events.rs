//! The audit log: one event per change, appended in the change's own transaction.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;
use sf_proto::{AuditEvent, EventId, TaskId};

use crate::util::ts;
use crate::{Store, StoreError};

/// One event to append.
pub(crate) struct Audit<'a> {
    pub actor: &'a str,
    pub action: sf_proto::Action,
    pub subject: String,
    pub task: Option<(i64, &'a TaskId)>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub reason: Option<&'a str>,
}

impl<'a> Audit<'a> {
    pub(crate) fn new(actor: &'a str, action: sf_proto::Action, subject: String) -> Self {
        Self {
            actor,
            action,
            subject,
            task: None,
            before: None,
            after: None,
            reason: None,
        }
    }

    pub(crate) fn task(mut self, key: i64, id: &'a TaskId) -> Self {
        self.task = Some((key, id));
        self
    }

    pub(crate) fn before(mut self, v: impl Into<Option<Value>>) -> Self {
        self.before = v.into();
        self
    }

    pub(crate) fn after(mut self, v: impl Into<Option<Value>>) -> Self {
        self.after = v.into();
        self
    }

    pub(crate) fn reason(mut self, r: Option<&'a str>) -> Self {
        self.reason = r;
        self
    }

    /// Appends the event inside the caller's transaction.
    pub(crate) fn append(self, conn: &Connection, now: i64) -> Result<AuditEvent, StoreError> {
        let before = self.before.as_ref().map(Value::to_string);
        let after = self.after.as_ref().map(Value::to_string);
        conn.prepare_cached(
            "INSERT INTO events (at, actor, action, subject, task, before, after, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            now,
            self.actor,
            self.action.as_str(),
            self.subject,
            self.task.map(|(k, _)| k),
            before,
            after,
            self.reason,
        ])?;
        Ok(AuditEvent {
            id: EventId(conn.last_insert_rowid()),
            at: ts(now),
            actor: self.actor.to_owned(),
            action: self.action.as_str().to_owned(),
            subject: self.subject,
            task: self.task.map(|(_, id)| id.clone()),
            before: self.before,
            after: self.after,
            reason: self.reason.map(str::to_owned),
        })
    }
}

const EVENT_COLS: &str =
    "e.id, e.at, e.actor, e.action, e.subject, t.id, e.before, e.after, e.reason";

fn parse_json(s: Option<String>) -> Option<Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

fn row_to_event(r: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    Ok(AuditEvent {
        id: EventId(r.get(0)?),
        at: ts(r.get(1)?),
        actor: r.get(2)?,
        action: r.get(3)?,
        subject: r.get(4)?,
        task: r
            .get::<_, Option<String>>(5)?
            .and_then(|s| TaskId::new(s).ok()),
        before: parse_json(r.get(6)?),
        after: parse_json(r.get(7)?),
        reason: r.get(8)?,
    })
}

impl Store {
    /// Events after `since` (or the newest `limit` when `since` is absent), oldest first,
    /// optionally only those about one task.
    pub fn list_events(
        &self,
        since: Option<EventId>,
        task: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.list_events_where(since, task, limit, false)
    }

    /// [`Store::list_events`], only denials when `denied` (`request_denied`,
    /// `spawn_denied`, `egress_denied`; an index keeps them a short read).
    pub fn list_events_where(
        &self,
        since: Option<EventId>,
        task: Option<&str>,
        limit: Option<u32>,
        denied: bool,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let task_key = match task {
            Some(p) => Some(self.resolve_task(p)?.0),
            None => None,
        };
        let limit = i64::from(limit.unwrap_or(u32::MAX));
        let only_denied = if denied {
            " AND e.action IN ('request_denied', 'spawn_denied', 'egress_denied')"
        } else {
            ""
        };
        let sql = if since.is_some() {
            format!(
                "SELECT {EVENT_COLS} FROM events e LEFT JOIN tasks t ON t.key = e.task
                 WHERE e.id > ?1 AND (?2 IS NULL OR e.task = ?2){only_denied} ORDER BY e.id ASC LIMIT ?3"
            )
        } else {
            format!(
                "SELECT * FROM (SELECT {EVENT_COLS} FROM events e LEFT JOIN tasks t ON t.key = e.task
                 WHERE ?1 IS NULL AND (?2 IS NULL OR e.task = ?2){only_denied} ORDER BY e.id DESC LIMIT ?3)
                 ORDER BY 1 ASC"
            )
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![since.map(|e| e.0), task_key, limit], row_to_event)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a denial by the guard: `request_denied` or `spawn_denied`, with the true
    /// actor, the action, the code and the rule.
    pub fn record_denial(
        &mut self,
        actor: &str,
        spawn: bool,
        subject: &str,
        data: &Value,
        reason: &str,
    ) -> Result<(), StoreError> {
        let now = crate::util::now_ms();
        let action = if spawn {
            sf_proto::Action::SpawnDenied
        } else {
            sf_proto::Action::RequestDenied
        };
        let ev = Audit::new(actor, action, subject.to_owned())
            .after(data.clone())
            .reason(Some(reason))
            .append(&self.conn, now)?;
        self.new_events.push(ev);
        Ok(())
    }

    /// The newest event id, if any.
    pub fn last_event_id(&self) -> Result<Option<EventId>, StoreError> {
        let id: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM events", [], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(id.map(EventId))
    }

    pub(crate) fn task_events(&self, key: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLS} FROM events e LEFT JOIN tasks t ON t.key = e.task
             WHERE e.task = ?1 ORDER BY e.id ASC"
        ))?;
        let rows = stmt.query_map([key], row_to_event)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
