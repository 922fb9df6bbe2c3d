//! The egress log: one row per connection a sandboxed run asked sfd's proxy for.

use rusqlite::params;
use serde_json::json;
use sf_proto::{Action, EgressRecord, RunId, TaskId};

use crate::events::Audit;
use crate::util::{now_ms, ts};
use crate::{Store, StoreError};

impl Store {
    /// Records one connection of run `run_id` (its agent and task are the run's). A denied
    /// one is also an `egress_denied` event on the run's task (or the run, for a steward's).
    #[expect(clippy::too_many_arguments, reason = "one connection's fields")]
    pub fn record_egress(
        &mut self,
        run_id: i64,
        host: &str,
        port: u16,
        rule: Option<&str>,
        bytes: (u64, u64),
        error: Option<&str>,
        started_ms: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let (agent, task): (String, Option<(i64, String)>) = self
            .conn
            .prepare_cached(
                "SELECT r.agent, t.key, t.id FROM runs r LEFT JOIN tasks t ON t.key = r.task WHERE r.id = ?1",
            )?
            .query_row([run_id], |r| {
                let task = match (r.get::<_, Option<i64>>(1)?, r.get::<_, Option<String>>(2)?) {
                    (Some(k), Some(id)) => Some((k, id)),
                    _ => None,
                };
                Ok((r.get(0)?, task))
            })?;
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO egress (run_id, agent, host, port, allowed, rule, bytes_out, bytes_in, error, started_at, ended_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            run_id,
            agent,
            host,
            port,
            rule.is_some(),
            rule.unwrap_or("default-deny"),
            bytes.0.min(i64::MAX as u64) as i64,
            bytes.1.min(i64::MAX as u64) as i64,
            error,
            started_ms,
            now
        ])?;
        if rule.is_none() {
            let task = task.and_then(|(k, id)| TaskId::new(id).ok().map(|id| (k, id)));
            let subject = task
                .as_ref()
                .map_or_else(|| format!("run:{run_id}"), |(_, id)| format!("task:{id}"));
            let mut audit = Audit::new("daemon", Action::EgressDenied, subject);
            if let Some((k, id)) = &task {
                audit = audit.task(*k, id);
            }
            let reason = format!(
                "run {run_id} of agent `{agent}` asked for {host}:{port}, which no egress rule allows"
            );
            let ev = audit
                .after(json!({"run": run_id, "agent": agent, "host": host, "port": port}))
                .reason(Some(&reason))
                .append(&tx, now)?;
            self.new_events.push(ev);
        }
        tx.commit()?;
        Ok(())
    }

    /// An agent's connections through the proxy, newest first: at most `limit`, only run
    /// `run`'s if given.
    pub fn list_egress(
        &self,
        agent: &str,
        run: Option<i64>,
        limit: u32,
    ) -> Result<Vec<EgressRecord>, StoreError> {
        if !self.agent_exists(agent)? {
            return Err(StoreError::not_found(format!(
                "no agent named `{agent}` (see `sfctl agent list`)"
            )));
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.run_id, e.agent, t.id, e.host, e.port, e.allowed, e.rule, e.bytes_out, e.bytes_in,
                    e.error, e.started_at, e.ended_at
             FROM egress e LEFT JOIN runs r ON r.id = e.run_id LEFT JOIN tasks t ON t.key = r.task
             WHERE e.agent = ?1 AND (?2 IS NULL OR e.run_id = ?2)
             ORDER BY e.id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![agent, run, limit], |r| {
            Ok(EgressRecord {
                run: RunId(r.get(0)?),
                agent: r.get(1)?,
                task: r
                    .get::<_, Option<String>>(2)?
                    .and_then(|t| TaskId::new(t).ok()),
                host: r.get(3)?,
                port: r.get(4)?,
                allowed: r.get(5)?,
                rule: r.get(6)?,
                bytes_out: r.get::<_, i64>(7)?.max(0) as u64,
                bytes_in: r.get::<_, i64>(8)?.max(0) as u64,
                error: r.get(9)?,
                started_at: ts(r.get(10)?),
                ended_at: ts(r.get(11)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
