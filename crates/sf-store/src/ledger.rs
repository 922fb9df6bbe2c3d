//! The tool-call ledger: each call an agent's CLI asked the guard about, its decision, the
//! rule and the guard's latency; each run's counts; an agent's Trust Card.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Row, params};
use serde_json::json;
use sf_proto::{Action, RunLedger, TaskId, ToolCallRecord, TrustCard};

use crate::events::Audit;
use crate::util::{now_ms, ts};
use crate::{Store, StoreError};

/// The live run a lease token names, as the guard needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRun {
    /// The run.
    pub run_id: i64,
    /// Its agent.
    pub agent: String,
    /// Its task, for a worker's run.
    pub task: Option<TaskId>,
}

/// One call to record.
#[derive(Debug, Clone)]
pub struct NewToolCall<'a> {
    /// The run.
    pub run: &'a GuardRun,
    /// `hook`, `stream`, `proxy`.
    pub source: &'a str,
    /// The tool.
    pub tool: &'a str,
    /// The CLI's id of the call.
    pub call_id: Option<&'a str>,
    /// What it acts on, redacted.
    pub summary: &'a str,
    /// `allow`, `deny`, `hold`.
    pub decision: &'a str,
    /// The deciding rule.
    pub rule: &'a str,
    /// Why.
    pub reason: &'a str,
    /// The guard's time to decide.
    pub latency_us: u64,
}

const COLS: &str = "id, run_id, agent, task, source, tool, call_id, summary, decision, rule, reason, latency_us, at";

fn row_to_call(r: &Row<'_>) -> rusqlite::Result<ToolCallRecord> {
    Ok(ToolCallRecord {
        id: r.get(0)?,
        run: sf_proto::RunId(r.get(1)?),
        agent: r.get(2)?,
        task: r
            .get::<_, Option<String>>(3)?
            .and_then(|t| TaskId::new(t).ok()),
        source: r.get(4)?,
        tool: r.get(5)?,
        call_id: r.get(6)?,
        summary: r.get(7)?,
        decision: r.get(8)?,
        rule: r.get(9)?,
        reason: r.get(10)?,
        latency_us: r.get::<_, i64>(11)?.max(0) as u64,
        at: ts(r.get(12)?),
    })
}

impl Store {
    /// The live run of a lease token (a worker's or a steward's), for the guard; refused
    /// when the token is unknown or its run has ended.
    pub fn guard_run(&self, token: &str) -> Result<GuardRun, StoreError> {
        let row: Option<(i64, String, Option<String>, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT r.id, r.agent, t.id, r.ended_at FROM runs r LEFT JOIN tasks t ON t.key = r.task
                 WHERE r.token = ?1",
            )?
            .query_row([token], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        match row {
            Some((run_id, agent, task, None)) => Ok(GuardRun {
                run_id,
                agent,
                task: task.and_then(|t| TaskId::new(t).ok()),
            }),
            Some((run_id, ..)) => Err(StoreError::refused(
                sf_proto::ErrorKind::PermissionDenied,
                format!("run {run_id} has ended; its tool calls are refused"),
            )),
            None => Err(StoreError::refused(
                sf_proto::ErrorKind::PermissionDenied,
                "unknown lease token: no live run makes this call",
            )
            .hint("the guard answers only the runs sfd started (SF_RUN)")),
        }
    }

    /// Records one call; a denial is also a `tool_call_denied` event, a held call a
    /// `tool_call_held` one and a `tool_call` approval for a human, in the same
    /// transaction. Returns its id and the approval's.
    pub fn record_tool_call(
        &mut self,
        c: &NewToolCall<'_>,
    ) -> Result<(i64, Option<i64>), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO tool_calls (run_id, agent, task, source, tool, call_id, summary, decision,
                 rule, reason, latency_us, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            c.run.run_id,
            c.run.agent,
            c.run.task.as_ref().map(TaskId::as_str),
            c.source,
            c.tool,
            c.call_id,
            c.summary,
            c.decision,
            c.rule,
            c.reason,
            i64::try_from(c.latency_us).unwrap_or(i64::MAX),
            now
        ])?;
        let id = tx.last_insert_rowid();
        let action = match c.decision {
            "deny" => Some(Action::ToolCallDenied),
            "hold" => Some(Action::ToolCallHeld),
            _ => None,
        };
        let ev = match action {
            Some(action) => {
                let actor = format!("agent:{}", c.run.agent);
                Some(
                    Audit::new(&actor, action, format!("tool_call:{id}"))
                        .after(json!({
                            "run": c.run.run_id,
                            "task": c.run.task,
                            "tool": c.tool,
                            "summary": c.summary,
                            "rule": c.rule,
                        }))
                        .reason(Some(c.reason))
                        .append(&tx, now)?,
                )
            }
            None => None,
        };
        let mut approval = None;
        let mut events: Vec<sf_proto::AuditEvent> = ev.into_iter().collect();
        if c.decision == "hold" {
            let payload = json!({
                "record": id,
                "run": c.run.run_id,
                "agent": c.run.agent,
                "task": c.run.task,
                "tool": c.tool,
                "summary": c.summary,
                "rule": c.rule,
            });
            let (a, ev) = crate::approvals::open(
                &tx,
                sf_proto::ApprovalKind::ToolCall,
                &format!("tool_call:{id}"),
                &format!("agent:{}", c.run.agent),
                &payload,
                now,
            )?;
            approval = Some(a);
            events.push(ev);
        }
        tx.commit()?;
        self.new_events.extend(events);
        Ok((id, approval))
    }

    /// Whether the guard was asked about call `call_id` of run `run_id`.
    pub fn call_recorded(&self, run_id: i64, call_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM tool_calls WHERE call_id = ?1 AND run_id = ?2)",
            )?
            .query_row(params![call_id, run_id], |r| r.get(0))?)
    }

    /// The agent of run `run_id`.
    pub fn run_agent(&self, run_id: i64) -> Result<String, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT agent FROM runs WHERE id = ?1")?
            .query_row([run_id], |r| r.get(0))?)
    }

    /// Records a connection of an unguarded run (a `command` agent, whose CLI has no hook)
    /// in the ledger, as its egress proxy decided it: source `proxy`, tool `Network`.
    pub fn record_proxy_call(
        &mut self,
        run_id: i64,
        host: &str,
        port: u16,
        rule: Option<&str>,
    ) -> Result<(), StoreError> {
        let (agent, task): (String, Option<String>) = self
            .conn
            .prepare_cached(
                "SELECT r.agent, t.id FROM runs r LEFT JOIN tasks t ON t.key = r.task WHERE r.id = ?1",
            )?
            .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let run = GuardRun {
            run_id,
            agent,
            task: task.and_then(|t| TaskId::new(t).ok()),
        };
        let summary = format!("{host}:{port}");
        self.record_tool_call(&NewToolCall {
            run: &run,
            source: "proxy",
            tool: "Network",
            call_id: None,
            summary: &summary,
            decision: if rule.is_some() { "allow" } else { "deny" },
            rule: rule.unwrap_or("default-deny"),
            reason: if rule.is_some() {
                "relayed by the egress proxy"
            } else {
                "the egress proxy denied this host"
            },
            latency_us: 0,
        })?;
        Ok(())
    }

    /// Records a run stopped for a tool call the guard was never asked about: a
    /// `guard_bypassed` event, and a ledger row (source `stream`, decision `bypassed`).
    pub fn record_guard_bypassed(
        &mut self,
        run_id: i64,
        agent: &str,
        task: &str,
        call_id: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let task = (!task.is_empty()).then_some(task);
        let reason = "the CLI ran this call without asking the guard (its hook was off or bypassed): the run was stopped";
        tx.prepare_cached(
            "INSERT INTO tool_calls (run_id, agent, task, source, tool, call_id, summary, decision,
                 rule, reason, latency_us, at)
             VALUES (?1, ?2, ?3, 'stream', '?', ?4, '', 'bypassed', 'guard', ?5, 0, ?6)",
        )?
        .execute(params![run_id, agent, task, call_id, reason, now])?;
        let actor = format!("agent:{agent}");
        let ev = Audit::new(&actor, Action::GuardBypassed, format!("run:{run_id}"))
            .after(json!({"run": run_id, "task": task, "call_id": call_id}))
            .reason(Some(reason))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// A held call's end: `held_approved`, `held_denied` or `held_timed_out`.
    pub fn settle_held_call(
        &mut self,
        id: i64,
        decision: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE tool_calls SET decision = ?1, reason = ?2 WHERE id = ?3")?
            .execute(params![decision, reason, id])?;
        Ok(())
    }

    /// An agent's calls, newest first.
    pub fn list_tool_calls(
        &self,
        agent: &str,
        run: Option<i64>,
        held_only: bool,
        denied_only: bool,
        limit: u32,
    ) -> Result<Vec<ToolCallRecord>, StoreError> {
        self.agent_summary_exists(agent)?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM tool_calls WHERE agent = ?1 AND (?2 IS NULL OR run_id = ?2)
               AND (NOT ?3 OR decision LIKE 'hold%' OR decision LIKE 'held%')
               AND (NOT ?4 OR decision IN ('deny', 'held_denied', 'held_timed_out'))
             ORDER BY id DESC LIMIT ?5"
        ))?;
        let rows = stmt.query_map(
            params![agent, run, held_only, denied_only, i64::from(limit)],
            row_to_call,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// An agent's runs with their counts, newest first.
    pub fn agent_runs(&self, agent: &str) -> Result<Vec<RunLedger>, StoreError> {
        self.agent_summary_exists(agent)?;
        let runs = self.runs_where("agent = ?1", rusqlite::types::Value::Text(agent.to_owned()))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT count(*),
                    coalesce(sum(decision LIKE 'hold%' OR decision LIKE 'held%'), 0),
                    coalesce(sum(decision IN ('deny', 'held_denied', 'held_timed_out')), 0)
             FROM tool_calls WHERE run_id = ?1",
        )?;
        runs.into_iter()
            .map(|run| {
                let (calls, held, denied): (i64, i64, i64) =
                    stmt.query_row([run.id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(RunLedger {
                    run,
                    tool_calls: calls.max(0) as u64,
                    held: held.max(0) as u64,
                    denied: denied.max(0) as u64,
                })
            })
            .collect()
    }

    /// An agent's Trust Card: its whole life, from the runs, the ledger and the events.
    pub fn trust_card(&self, agent: &str) -> Result<TrustCard, StoreError> {
        self.agent_summary_exists(agent)?;
        let mut runs = BTreeMap::new();
        let mut tokens = 0u64;
        let mut cost = 0f64;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT outcome, ended_at, usage FROM runs WHERE agent = ?1")?;
        let rows = stmt.query_map([agent], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (outcome, ended, usage) = row?;
            let key = match (outcome, ended) {
                (_, None) => "running".to_owned(),
                (Some(o), Some(_)) => o,
                (None, Some(_)) => "ended".to_owned(),
            };
            *runs.entry(key).or_insert(0u64) += 1;
            if let Some(u) = usage.and_then(|u| serde_json::from_str::<sf_proto::RunUsage>(&u).ok())
            {
                tokens += u.input_tokens + u.output_tokens;
                cost += u.cost_usd.unwrap_or(0.0);
            }
        }
        let (calls, held, denied): (i64, i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT count(*),
                    coalesce(sum(decision LIKE 'hold%' OR decision LIKE 'held%'), 0),
                    coalesce(sum(decision IN ('deny', 'held_denied', 'held_timed_out')), 0)
             FROM tool_calls WHERE agent = ?1",
            )?
            .query_row([agent], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let actor = format!("agent:{agent}");
        let count = |action: &str| -> Result<u64, StoreError> {
            let n: i64 = self
                .conn
                .prepare_cached(
                    "SELECT count(*) FROM events INDEXED BY events_denied
                     WHERE action IN ('request_denied', 'spawn_denied', 'egress_denied')
                       AND action = ?1 AND actor = ?2",
                )?
                .query_row(params![action, actor], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        };
        let egress: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM egress WHERE agent = ?1 AND NOT allowed")?
            .query_row([agent], |r| r.get(0))?;
        let median: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT latency_us FROM tool_calls WHERE agent = ?1 ORDER BY latency_us
                 LIMIT 1 OFFSET (SELECT count(*) / 2 FROM tool_calls WHERE agent = ?1)",
            )?
            .query_row([agent], |r| r.get(0))
            .optional()?;
        Ok(TrustCard {
            agent: agent.to_owned(),
            runs,
            tool_calls: calls.max(0) as u64,
            denied: denied.max(0) as u64,
            held: held.max(0) as u64,
            requests_denied: count("request_denied")?,
            egress_denied: egress.max(0) as u64,
            tokens,
            cost_usd: cost,
            guard_median_us: median.map(|m| m.max(0) as u64),
        })
    }

    fn agent_summary_exists(&self, agent: &str) -> Result<(), StoreError> {
        if self.agent_exists(agent)? {
            Ok(())
        } else {
            Err(StoreError::not_found(format!("no agent named `{agent}`"))
                .hint("list agents with `sfctl agent list`"))
        }
    }
}
