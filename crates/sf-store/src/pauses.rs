//! Dispatch paused per adapter after its CLI hit a usage limit, kept across restarts.

use rusqlite::params;
use serde_json::json;
use sf_proto::{Action, Adapter};

use crate::events::Audit;
use crate::util::{now_ms, ts};
use crate::{Store, StoreError};

/// A paused adapter: until when, and its CLI's message.
pub type AdapterPause = (Adapter, (chrono::DateTime<chrono::Utc>, String));

impl Store {
    /// Pauses dispatch to `adapter` until `until` (moving an earlier pause later, never
    /// earlier), recorded as `adapter_paused` with the CLI's message.
    pub fn pause_adapter(
        &mut self,
        adapter: Adapter,
        until: chrono::DateTime<chrono::Utc>,
        message: &str,
        run_id: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let until_ms = until.timestamp_millis();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO adapter_pauses (adapter, until_ms, message, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (adapter) DO UPDATE SET
               until_ms = max(until_ms, excluded.until_ms), message = excluded.message",
        )?
        .execute(params![adapter.as_str(), until_ms, message, now])?;
        let ev = Audit::new("daemon", Action::AdapterPaused, format!("adapter:{adapter}"))
            .after(json!({"until": until, "run": run_id}))
            .reason(Some(&format!(
                "the {adapter} CLI hit a usage limit; dispatch to {adapter} agents waits until {}: {message}",
                until.format("%Y-%m-%d %H:%M UTC")
            )))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// The pauses still in force at `now_ms`, with the CLI's message; those that ended are
    /// forgotten.
    pub fn adapter_pauses(&mut self, now_ms: i64) -> Result<Vec<AdapterPause>, StoreError> {
        self.conn
            .prepare_cached("DELETE FROM adapter_pauses WHERE until_ms <= ?1")?
            .execute([now_ms])?;
        let rows: Vec<(String, i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT adapter, until_ms, message FROM adapter_pauses ORDER BY adapter",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(a, until, message)| Some((a.parse().ok()?, (ts(until), message))))
            .collect())
    }
}
