//! Steward runs (runs without a task, fired by a trigger), trigger bookkeeping and custom
//! events.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::{Value, json};
use sf_proto::{AgentSpec, ErrorKind, Role, StewardRunInfo};

use crate::events::Audit;
use crate::util::{now_ms, opt_ts, ts};
use crate::{Store, StoreError};
use sf_proto::Action;

/// What firing a steward did.
#[derive(Debug, Clone)]
pub enum Fired {
    /// A run was started; the caller launches it.
    Started {
        /// The run as recorded.
        info: StewardRunInfo,
        /// Its lease token.
        token: String,
        /// The steward.
        spec: Box<AgentSpec>,
    },
    /// Its previous run is still going: recorded as skipped.
    Skipped(StewardRunInfo),
}

const COLS: &str = "id, agent, trigger, data, started_at, ended_at, outcome, result, log_path";

fn row_to_info(r: &Row<'_>) -> rusqlite::Result<StewardRunInfo> {
    Ok(StewardRunInfo {
        id: sf_proto::RunId(r.get(0)?),
        steward: r.get(1)?,
        trigger: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        data: r
            .get::<_, Option<String>>(3)?
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(Value::Null),
        started_at: ts(r.get(4)?),
        ended_at: opt_ts(r.get(5)?),
        outcome: r.get(6)?,
        result: r.get(7)?,
        log_path: r.get(8)?,
    })
}

impl Store {
    /// One steward run.
    pub fn steward_run(&self, id: i64) -> Result<StewardRunInfo, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLS} FROM runs WHERE id = ?1"))?
            .query_row([id], row_to_info)?)
    }

    /// Fires a steward: starts a run, or records a skipped fire when its previous run is
    /// still going. Disabled stewards are refused.
    pub fn fire_steward(
        &mut self,
        actor: &str,
        name: &str,
        trigger: &str,
        data: &Value,
    ) -> Result<Fired, StoreError> {
        let agent = self.show_agent(name)?.agent;
        if agent.spec.role != Role::Steward {
            return Err(StoreError::invalid(format!(
                "`{name}` is a {}, not a steward",
                agent.spec.role
            ))
            .hint("fire stewards only; workers take tasks"));
        }
        if !agent.enabled {
            return Err(StoreError::state(format!("steward `{name}` is disabled"))
                .hint(format!("enable it with `sfctl agent enable {name}`")));
        }
        let now = now_ms();
        let token: String = (0..24).map(|_| fastrand::alphanumeric()).collect();
        let data_s = data.to_string();
        let skipped = agent.running > 0;
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO runs (task, agent, epoch, started_at, ended_at, outcome, result, token, trigger, data)
             VALUES (NULL, ?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            name,
            now,
            skipped.then_some(now),
            skipped.then_some("skipped"),
            skipped.then_some("its previous run was still going"),
            token,
            trigger,
            data_s
        ])?;
        let id = tx.last_insert_rowid();
        let ev = Audit::new(
            actor,
            if skipped {
                Action::StewardSkipped
            } else {
                Action::StewardFired
            },
            format!("agent:{name}"),
        )
        .after(json!({"run": id, "trigger": trigger, "data": data}))
        .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        let info = self.steward_run(id)?;
        Ok(if skipped {
            Fired::Skipped(info)
        } else {
            Fired::Started {
                info,
                token,
                spec: Box::new(agent.spec),
            }
        })
    }

    /// Records the end of a steward run.
    pub fn end_steward_run(
        &mut self,
        id: i64,
        outcome: &str,
        result: &str,
        code: Option<i32>,
        log_path: Option<&str>,
    ) -> Result<StewardRunInfo, StoreError> {
        let now = now_ms();
        let before = self.steward_run(id)?;
        if before.ended_at.is_some() {
            return Ok(before);
        }
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE runs SET ended_at = ?1, outcome = ?2, result = ?3, exit_code = ?4, log_path = coalesce(?5, log_path)
             WHERE id = ?6 AND ended_at IS NULL",
        )?
        .execute(params![now, outcome, result, code, log_path, id])?;
        let ev = Audit::new(
            "daemon",
            Action::StewardFinished,
            format!("agent:{}", before.steward),
        )
        .after(json!({"run": id, "outcome": outcome, "result": result}))
        .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.steward_run(id)
    }

    /// Steward runs, newest first.
    pub fn steward_history(
        &self,
        name: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<StewardRunInfo>, StoreError> {
        if let Some(n) = name {
            self.show_agent(n)?;
        }
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM runs WHERE task IS NULL AND trigger IS NOT NULL AND (?1 IS NULL OR agent = ?1)
             ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![name, i64::from(limit.unwrap_or(100))], row_to_info)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When a steward's trigger last fired (unix ms).
    pub fn trigger_last_fired(
        &self,
        agent: &str,
        trigger: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT last_fired FROM trigger_state WHERE agent = ?1 AND trigger = ?2",
            )?
            .query_row([agent, trigger], |r| r.get(0))
            .optional()?)
    }

    /// Records a trigger's fire time (bookkeeping; the fire itself has its event).
    pub fn set_trigger_fired(
        &mut self,
        agent: &str,
        trigger: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO trigger_state (agent, trigger, last_fired) VALUES (?1, ?2, ?3)
                 ON CONFLICT (agent, trigger) DO UPDATE SET last_fired = excluded.last_fired",
            )?
            .execute(params![agent, trigger, at])?;
        Ok(())
    }

    /// Publishes a custom event (recorded in the audit log; the daemon's bus sees it).
    pub fn emit_event(&mut self, actor: &str, name: &str, data: &Value) -> Result<(), StoreError> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::refused(
                ErrorKind::InvalidInput,
                format!("invalid event name `{name}`"),
            )
            .hint("use lowercase letters, digits and `_`, e.g. `deploy_finished`"));
        }
        // a custom event named like one of the daemon's own would fake it to the stewards
        if sf_proto::DAEMON_EVENTS.contains(&name) {
            return Err(StoreError::refused(
                ErrorKind::InvalidInput,
                format!("`{name}` is an event the daemon publishes itself; it cannot be emitted"),
            )
            .hint(format!(
                "custom event names must not be one of the daemon's own; pick another name, \
                 e.g. my_{name}"
            )));
        }
        crate::validate_text_len("event data", &data.to_string())?;
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let ev = Audit::new(actor, Action::EventEmitted, format!("event:{name}"))
            .after(json!({"name": name, "data": data}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }
}

impl Store {
    /// Records that the daemon repaired what a killed operation left in the repository
    /// (a half-made worktree, a stale lock, a half-updated checkout): one `git_repaired`
    /// event, naming the task when the repair was in its worktree.
    pub fn record_repair(
        &mut self,
        task: Option<&sf_proto::TaskId>,
        repaired: &[String],
        tampered: bool,
    ) -> Result<(), StoreError> {
        let key = match task {
            Some(t) => self.resolve_task(t.as_str()).ok(),
            None => None,
        };
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let subject = key
            .as_ref()
            .map_or_else(|| "repository".to_owned(), |(_, id)| format!("task:{id}"));
        let action = if tampered {
            Action::WorktreeTampered
        } else {
            Action::GitRepaired
        };
        let mut audit =
            Audit::new("daemon", action, subject).after(json!({ "repaired": repaired }));
        if let Some((k, id)) = &key {
            audit = audit.task(*k, id);
        }
        let ev = audit.append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }
}

impl Store {
    /// Records that `steward`'s event triggers reached their rate limit (`limit` fires a
    /// minute): the fires past it are skipped until the minute is over.
    pub fn record_steward_rate_limited(
        &mut self,
        steward: &str,
        limit: usize,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let ev = Audit::new("daemon", Action::StewardRateLimited, format!("agent:{steward}"))
            .after(json!({ "limit_per_minute": limit }))
            .reason(Some(
                "event fires past the limit are skipped; raise steward_fire_limit in .sf/config.toml if this steward is meant to fire that often",
            ))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// Records a clean-up of the janitor (`cleaned_up`): one line per worktree or branch
    /// retired, or kept and why.
    pub fn record_cleanup(&mut self, actor: &str, lines: &[String]) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let ev = Audit::new(actor, Action::CleanedUp, "repository".to_owned())
            .after(json!({ "done": lines }))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// Records what a restarted daemon did with a run the previous one left:
    /// `worker_adopted` (its process still ran) or `worker_reaped` (it was gone), about the
    /// run's task when it has one.
    pub fn record_recovery(
        &mut self,
        run_id: i64,
        agent: &str,
        task: Option<&(sf_core::ready::Key, sf_proto::TaskId)>,
        adopted: bool,
        detail: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let action = if adopted {
            Action::WorkerAdopted
        } else {
            Action::WorkerReaped
        };
        let mut audit = Audit::new("daemon", action, format!("agent:{agent}"))
            .after(json!({ "run": run_id, "agent": agent }))
            .reason(Some(detail));
        if let Some((k, id)) = task {
            audit = audit.task(*k, id);
        }
        let ev = audit.append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// Records a reload of the configuration (`config_reloaded`): the settings that now
    /// apply and those waiting for a restart.
    pub fn record_config_reload(
        &mut self,
        actor: &str,
        applied: &[String],
        restart: &[String],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let ev = Audit::new(actor, Action::ConfigReloaded, "daemon".to_owned())
            .after(json!({ "applied": applied, "after_restart": restart }))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }
}
