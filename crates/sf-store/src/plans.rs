//! Plans: groups of tasks that are dispatched only while the plan is active, and that
//! complete by themselves when every task is closed.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use serde_json::json;
use sf_core::naming::{validate_text, validate_title};
use sf_core::ready::Key;
use sf_core::status::plan_dispatchable;
use sf_proto::{
    AuditEvent, ErrorKind, PlanDetail, PlanFilter, PlanId, PlanStatus, PlanSummary, TaskFilter,
    TaskStatus, normalize_prefix,
};

use crate::events::Audit;
use crate::util::{fresh_id, now_ms, prefix_range, ts};
use crate::{Store, StoreError};
use sf_proto::Action;

#[derive(Debug, Clone)]
pub(crate) struct PlanRow {
    pub key: Key,
    pub id: PlanId,
    pub status: PlanStatus,
}

fn load_plan_status(conn: &Connection, key: Key) -> Result<PlanStatus, StoreError> {
    let s: String = conn
        .prepare_cached("SELECT status FROM plans WHERE key = ?1")?
        .query_row([key], |r| r.get(0))?;
    s.parse()
        .map_err(|e: String| StoreError::Sqlite(rusqlite::Error::InvalidParameterName(e)))
}

pub(crate) fn set_plan_status(
    conn: &Connection,
    key: Key,
    status: PlanStatus,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE plans SET status = ?1, updated_at = ?2 WHERE key = ?3")?
        .execute(params![status.as_str(), now, key])?;
    Ok(())
}

/// After a task of `plan` changed status: an active plan whose tasks are all closed
/// completes; a completed plan with a task that is not closed becomes active again.
/// Returns the plan's new status if it changed.
pub(crate) fn settle_plan(
    conn: &Connection,
    plan: Key,
    actor: &str,
    now: i64,
    events: &mut Vec<AuditEvent>,
) -> Result<Option<(Key, PlanStatus)>, StoreError> {
    let status = load_plan_status(conn, plan)?;
    let (total, closed): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(status = 'closed'), 0) FROM tasks
             WHERE plan = ?1 AND status != 'tombstone'",
        )?
        .query_row([plan], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let next = match status {
        PlanStatus::Active if total > 0 && closed == total => PlanStatus::Completed,
        PlanStatus::Completed if closed < total => PlanStatus::Active,
        _ => return Ok(None),
    };
    set_plan_status(conn, plan, next, now)?;
    let id: String = conn
        .prepare_cached("SELECT id FROM plans WHERE key = ?1")?
        .query_row([plan], |r| r.get(0))?;
    let action = if next == PlanStatus::Completed {
        Action::PlanCompleted
    } else {
        Action::PlanReopened
    };
    events.push(
        Audit::new(actor, action, format!("plan:{id}"))
            .before(json!({"status": status}))
            .after(json!({"status": next, "tasks": total}))
            .append(conn, now)?,
    );
    Ok(Some((plan, next)))
}

/// Fails an active workflow with a reason (a shell step failed, a step was deleted).
pub(crate) fn fail_plan(
    conn: &Connection,
    plan: Key,
    reason: &str,
    now: i64,
    events: &mut Vec<AuditEvent>,
) -> Result<Option<(Key, PlanStatus)>, StoreError> {
    let status = load_plan_status(conn, plan)?;
    if !matches!(status, PlanStatus::Active | PlanStatus::Draft) {
        return Ok(None);
    }
    conn.prepare_cached(
        "UPDATE plans SET status = 'failed', reason = ?1, updated_at = ?2 WHERE key = ?3",
    )?
    .execute(params![reason, now, plan])?;
    let id: String = conn
        .prepare_cached("SELECT id FROM plans WHERE key = ?1")?
        .query_row([plan], |r| r.get(0))?;
    events.push(
        Audit::new("daemon", Action::PlanFailed, format!("plan:{id}"))
            .before(json!({"status": status}))
            .after(json!({"status": "failed"}))
            .reason(Some(reason))
            .append(conn, now)?,
    );
    Ok(Some((plan, PlanStatus::Failed)))
}

impl Store {
    pub(crate) fn resolve_plan(&self, prefix: &str) -> Result<PlanRow, StoreError> {
        let p = normalize_prefix(prefix).map_err(|e| {
            StoreError::invalid(e.to_string()).hint("list plans with `sfctl plan list`")
        })?;
        let (lo, hi) = prefix_range(&p);
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, id, status FROM plans WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 6",
        )?;
        let rows: Vec<(Key, String, String)> = stmt
            .query_map([&lo, &hi], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let pick = |(k, id, s): &(Key, String, String)| PlanRow {
            key: *k,
            id: PlanId::new(id.clone()).expect("stored ids are valid"),
            status: s.parse().unwrap_or(PlanStatus::Draft),
        };
        if let Some(exact) = rows.iter().find(|r| r.1 == p) {
            return Ok(pick(exact));
        }
        match rows.as_slice() {
            [] => Err(StoreError::not_found(format!("no plan matches `{prefix}`"))
                .hint("list plans with `sfctl plan list`")),
            [one] => Ok(pick(one)),
            many => Err(StoreError::refused(
                ErrorKind::Ambiguous,
                format!(
                    "`{prefix}` matches more than one plan: {}",
                    many.iter()
                        .map(|r| r.1.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .hint("type more characters of the id")),
        }
    }

    /// Creates a plan, draft unless `active`.
    pub fn create_plan(
        &mut self,
        actor: &str,
        title: &str,
        description: &str,
        active: bool,
    ) -> Result<PlanDetail, StoreError> {
        let title = validate_title(title)?;
        validate_text("description", description)?;
        let status = if active {
            PlanStatus::Active
        } else {
            PlanStatus::Draft
        };
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let id = PlanId::new(fresh_id(&tx, "plans")?).expect("generated ids are valid");
        tx.prepare_cached(
            "INSERT INTO plans (id, title, description, status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?
        .execute(params![id.as_str(), title, description, status.as_str(), now])?;
        let key = tx.last_insert_rowid();
        let ev = Audit::new(actor, Action::PlanCreated, format!("plan:{id}"))
            .after(json!({"title": title, "status": status}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.index.set_plan_active(key, plan_dispatchable(status));
        self.plan_detail(key)
    }

    fn plan_transition(
        &mut self,
        actor: &str,
        prefix: &str,
        to: PlanStatus,
    ) -> Result<PlanDetail, StoreError> {
        let plan = self.resolve_plan(prefix)?;
        let allowed = match to {
            PlanStatus::Active => plan.status == PlanStatus::Draft,
            PlanStatus::Cancelled => matches!(plan.status, PlanStatus::Draft | PlanStatus::Active),
            _ => false,
        };
        if !allowed {
            let verb = if to == PlanStatus::Active {
                "activate"
            } else {
                "cancel"
            };
            return Err(StoreError::state(format!(
                "cannot {verb} plan {}: it is {}",
                plan.id, plan.status
            ))
            .hint(if to == PlanStatus::Active {
                "only draft plans can be activated"
            } else {
                "only draft or active plans can be cancelled"
            }));
        }
        let now = now_ms();
        let tx = self.conn.transaction()?;
        set_plan_status(&tx, plan.key, to, now)?;
        let action = if to == PlanStatus::Active {
            Action::PlanActivated
        } else {
            Action::PlanCancelled
        };
        let mut events = vec![
            Audit::new(actor, action, format!("plan:{}", plan.id))
                .before(json!({"status": plan.status}))
                .after(json!({"status": to}))
                .append(&tx, now)?,
        ];
        let mut final_status = to;
        if to == PlanStatus::Active
            && let Some((_, s)) = settle_plan(&tx, plan.key, actor, now, &mut events)?
        {
            final_status = s;
        }
        tx.commit()?;
        self.new_events.extend(events);
        self.index
            .set_plan_active(plan.key, plan_dispatchable(final_status));
        self.plan_detail(plan.key)
    }

    /// Activates a draft plan: its tasks become eligible for dispatch.
    pub fn activate_plan(&mut self, actor: &str, prefix: &str) -> Result<PlanDetail, StoreError> {
        self.plan_transition(actor, prefix, PlanStatus::Active)
    }

    /// Cancels a plan: its tasks are never dispatched.
    ///
    /// The plan's work stops with it: each task in progress or in review is blocked
    /// ("plan cancelled"), which stops its run (the owner stops the run of a task that
    /// leaves `in_progress`, its work saved) and withdraws its merge request; its open
    /// tasks are never ready again. A task whose merge request is being tested is left to
    /// its test (named in the log).
    pub fn cancel_plan(&mut self, actor: &str, prefix: &str) -> Result<PlanDetail, StoreError> {
        let plan = self.resolve_plan(prefix)?;
        self.plan_transition(actor, prefix, PlanStatus::Cancelled)?;
        let live: Vec<Key> = self
            .conn
            .prepare_cached(
                "SELECT key FROM tasks WHERE plan = ?1 AND status IN ('in_progress', 'review')",
            )?
            .query_map([plan.key], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for key in live {
            let row = self.task_row(key)?;
            let id = row.summary.id.clone();
            if row.summary.status == TaskStatus::Review
                && let Some((mr, sf_proto::MergeState::Testing)) = self.open_mr_of(key)?
            {
                tracing::warn!(task = %id, mr, "plan cancelled while its merge request is tested; left to the test");
                continue;
            }
            self.set_status(
                actor,
                key,
                &id,
                &row,
                TaskStatus::Blocked,
                "block",
                Some("plan cancelled"),
                None,
            )?;
        }
        self.show_plan(prefix)
    }

    fn plan_summaries(&self, key: Option<Key>) -> Result<Vec<(Key, PlanSummary)>, StoreError> {
        let mut counts: BTreeMap<Key, BTreeMap<TaskStatus, u64>> = BTreeMap::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT plan, status, count(*) FROM tasks
                 WHERE plan IS NOT NULL AND (?1 IS NULL OR plan = ?1) AND status != 'tombstone'
                 GROUP BY plan, status",
            )?;
            let rows = stmt.query_map([key], |r| {
                Ok((
                    r.get::<_, Key>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (p, s, n) = row?;
                if let Ok(s) = s.parse::<TaskStatus>() {
                    counts.entry(p).or_default().insert(s, n.unsigned_abs());
                }
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, id, title, description, status, created_at, updated_at FROM plans
             WHERE ?1 IS NULL OR key = ?1 ORDER BY created_at, key",
        )?;
        let rows = stmt.query_map([key], |r| {
            Ok((
                r.get::<_, Key>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (k, id, title, description, status, created, updated) = row?;
            let c = counts.remove(&k).unwrap_or_default();
            out.push((
                k,
                PlanSummary {
                    id: PlanId::new(id).expect("stored ids are valid"),
                    title,
                    description,
                    status: status.parse().unwrap_or(PlanStatus::Draft),
                    total: c.values().sum(),
                    counts: c,
                    created_at: ts(created),
                    updated_at: ts(updated),
                },
            ));
        }
        Ok(out)
    }

    /// Plans with their progress, oldest first: those of the filter's statuses (every one
    /// when it names none), only the newest `limit` of them.
    pub fn list_plans(&self, filter: &PlanFilter) -> Result<Vec<PlanSummary>, StoreError> {
        let mut plans: Vec<PlanSummary> = self
            .plan_summaries(None)?
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| filter.status.is_empty() || filter.status.contains(&s.status))
            .collect();
        if let Some(limit) = filter.limit {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            plans.drain(..plans.len().saturating_sub(limit));
        }
        Ok(plans)
    }

    /// One plan with its tasks.
    pub fn show_plan(&mut self, prefix: &str) -> Result<PlanDetail, StoreError> {
        let plan = self.resolve_plan(prefix)?;
        self.plan_detail(plan.key)
    }

    fn plan_detail(&mut self, key: Key) -> Result<PlanDetail, StoreError> {
        let (_, plan) = self
            .plan_summaries(Some(key))?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::not_found("plan disappeared"))?;
        let tasks = self.list_tasks(&TaskFilter {
            plan: Some(plan.id.to_string()),
            ..TaskFilter::default()
        })?;
        Ok(PlanDetail { plan, tasks })
    }
}
