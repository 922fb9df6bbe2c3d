//! Readiness: the ready queue in dispatch order, what each waiting task waits on (in
//! words), and deferrals that came due.

use crate::tasks::{TASK_COLS, TASK_FROM, row_to_task};
use crate::util::ts;
use crate::{Store, StoreError};
use rusqlite::OptionalExtension;
use sf_core::ready::{Key, WaitReason};
use sf_proto::{ReadyTask, TaskId, TaskStatus, WaitingTask};

impl Store {
    /// Ready tasks in dispatch order at `now` (unix ms).
    pub fn ready(&mut self, now: i64, limit: Option<usize>) -> Result<Vec<ReadyTask>, StoreError> {
        let keys = self.index.ready(now, limit);
        // one read transaction for the whole fetch: SQLite then takes its lock once
        let tx = self.conn.transaction()?;
        let out = {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {TASK_COLS} FROM {TASK_FROM} WHERE t.key = ?1"
            ))?;
            keys.into_iter()
                .map(|(k, eff)| {
                    let row = stmt.query_row([k], row_to_task)?;
                    Ok(ReadyTask {
                        task: row.summary,
                        effective_priority: eff,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?
        };
        tx.commit()?;
        Ok(out)
    }

    /// The ids of every ready task (no row is read but the ids).
    pub fn ready_ids(&mut self, now: i64) -> Result<Vec<TaskId>, StoreError> {
        let keys = self.index.ready(now, None);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM tasks WHERE key = ?1")?;
        keys.into_iter()
            .map(|(k, _)| {
                let id: String = stmt.query_row([k], |r| r.get(0))?;
                Ok(TaskId::new(id).expect("stored ids are valid"))
            })
            .collect()
    }

    /// Open and blocked tasks that are not ready, with the reasons: by priority, then oldest
    /// first.
    pub fn waiting(
        &mut self,
        now: i64,
        limit: Option<usize>,
    ) -> Result<Vec<WaitingTask>, StoreError> {
        let mut out = Vec::new();
        for (k, reasons) in self
            .index
            .waiting(now)
            .into_iter()
            .take(limit.unwrap_or(usize::MAX))
        {
            let row = self.task_row(k)?;
            let reasons = self.render_reasons(k, &reasons)?;
            out.push(WaitingTask {
                task: row.summary,
                reasons,
            });
        }
        Ok(out)
    }

    fn task_label(&self, key: Key) -> Result<String, StoreError> {
        let row = self.task_row(key)?;
        Ok(format!("{} ({})", row.summary.id, row.summary.status))
    }

    pub(crate) fn render_reasons(
        &self,
        key: Key,
        reasons: &[WaitReason],
    ) -> Result<Vec<String>, StoreError> {
        reasons
            .iter()
            .map(|r| {
                Ok(match *r {
                    WaitReason::Status(TaskStatus::Blocked) => {
                        let note: Option<String> = self
                            .conn
                            .prepare_cached("SELECT text FROM notes WHERE task = ?1 AND kind = 'block' ORDER BY id DESC LIMIT 1")?
                            .query_row([key], |r| r.get(0))
                            .optional()?;
                        match note {
                            Some(n) => format!("marked blocked: {n}"),
                            None => "marked blocked".to_owned(),
                        }
                    }
                    WaitReason::Status(s) => format!("status is {s}"),
                    WaitReason::Assigned => "assigned to an agent".to_owned(),
                    WaitReason::PlanInactive(p) => {
                        let (id, status): (String, String) = self
                            .conn
                            .prepare_cached("SELECT id, status FROM plans WHERE key = ?1")?
                            .query_row([p], |r| Ok((r.get(0)?, r.get(1)?)))?;
                        format!("plan {id} is {status}")
                    }
                    WaitReason::Scheduled(t) if self.task_row(key)?.retry_at == Some(t) => {
                        format!("retry after failure at {}", ts(t).to_rfc3339())
                    }
                    WaitReason::Scheduled(t) => format!("scheduled for {}", ts(t).to_rfc3339()),
                    WaitReason::BlockedBy(b) => format!("blocked by {}", self.task_label(b)?),
                    WaitReason::ParentWaiting(p) => format!("parent {} is waiting", self.task_label(p)?),
                    WaitReason::Timer(dep, t) => format!("gate #{dep}: timer until {}", ts(t).to_rfc3339()),
                    WaitReason::Gate(dep) => {
                        let gate: Option<String> = self
                            .conn
                            .prepare_cached("SELECT gate FROM deps WHERE id = ?1")?
                            .query_row([dep], |r| r.get(0))?;
                        let what = gate
                            .and_then(|g| serde_json::from_str::<sf_proto::Gate>(&g).ok())
                            .map_or_else(|| "gate".to_owned(), |g| match g {
                                sf_proto::Gate::Approval { count, approved_by, .. } => {
                                    format!("approval {}/{count}", approved_by.len())
                                }
                                sf_proto::Gate::External { name } => {
                                    format!("external {}", name.unwrap_or_default()).trim_end().to_owned()
                                }
                                sf_proto::Gate::Timer { .. } => "timer".to_owned(),
                            });
                        format!("gate #{dep}: {what}")
                    }
                })
            })
            .collect()
    }

    /// Deferred tasks whose time has come go back to `open`. Returns how many.
    pub fn expire_deferrals(&mut self, now: i64) -> Result<usize, StoreError> {
        let due: Vec<Key> = self
            .conn
            .prepare_cached("SELECT key FROM tasks INDEXED BY tasks_deferred WHERE status = 'deferred' AND defer_until IS NOT NULL AND defer_until <= ?1")?
            .query_map([now], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for &key in &due {
            let before = self.task_row(key)?;
            let id = before.summary.id.clone();
            self.set_status(
                "daemon",
                key,
                &id,
                &before,
                TaskStatus::Open,
                "undefer",
                Some("deferral expired"),
                None,
            )?;
        }
        Ok(due.len())
    }
}
