//! Agents and their runs. An agent's live state is derived from its run records.

use rusqlite::{OptionalExtension, params};
use serde_json::json;
use sf_core::cron::CronSchedule;
use sf_core::ready::Key;
use sf_proto::{
    AgentDetail, AgentSpec, AgentState, AgentStatus, AgentSummary, ErrorKind, RunSummary, TaskId,
};

use crate::events::Audit;
use crate::spec::validate_spec;
use crate::util::{now_ms, opt_ts, ts};
use crate::{Store, StoreError};
use sf_proto::Action;

/// Outcomes of a run that count as a failure for the agent's state.
const FAILED_OUTCOMES: &[&str] = &[
    "failed",
    "crashed",
    "killed",
    "timed_out",
    "stalled",
    "auth_failed",
    "spawn_failed",
];

impl Store {
    pub(crate) fn agent_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM agents WHERE name = ?1")?
            .query_row([name], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Registers an agent. `live`: a human's one-step path (created, its manifest signed
    /// by `actor`, live at once, recorded as such); else a draft that is signed, dry-run
    /// and taken live by a human.
    pub fn register_agent(
        &mut self,
        actor: &str,
        spec: AgentSpec,
        live: bool,
    ) -> Result<AgentDetail, StoreError> {
        let spec = self.prepare_spec(actor, spec)?;
        let now = now_ms();
        let status = if live {
            AgentStatus::Live
        } else {
            AgentStatus::Draft
        };
        // the one-step path signs the manifest as it is registered, by the same human
        let signed = if live {
            let budget = self
                .budget_limits(sf_proto::BudgetScope::Agent, &spec.name)?
                .map(serde_json::to_value)
                .transpose()?
                .unwrap_or(serde_json::Value::Null);
            Some(sf_core::manifest::hash(&sf_core::manifest::covers(
                &spec, budget,
            )))
        } else {
            None
        };
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO agents (name, spec, enabled, status, created_at, updated_at, signed_manifest, signed_by)
             VALUES (?1, ?2, 1, ?3, ?4, ?4, ?5, ?6)",
        )?
        .execute(params![
            spec.name,
            serde_json::to_string(&spec)?,
            status.as_str(),
            now,
            signed,
            signed.as_ref().map(|_| actor)
        ])?;
        let ev = Audit::new(
            actor,
            if live {
                Action::AgentRegistered
            } else {
                Action::AgentDrafted
            },
            format!("agent:{}", spec.name),
        )
        .after(json!({"spec": sf_core::redact::spec(&spec), "status": status, "signed": signed}))
        .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.show_agent(&spec.name)
    }

    /// Names, checks and seats a new agent's spec: an omitted name follows the convention
    /// (`sf_core::jobs::default_name`); an agent with no seat and no owner answers to the
    /// human who registers it (or its hirer's owner); its seat must take it.
    pub(crate) fn prepare_spec(
        &self,
        actor: &str,
        mut spec: AgentSpec,
    ) -> Result<AgentSpec, StoreError> {
        if spec.name.is_empty() {
            let names: Vec<String> = self
                .conn
                .prepare_cached("SELECT name FROM agents")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            spec.name = sf_core::jobs::default_name(
                spec.role,
                spec.mode,
                spec.focus,
                names.iter().map(String::as_str),
            );
        }
        if spec.owner.is_none() && spec.seat.is_none() {
            spec.owner = match actor.strip_prefix("agent:") {
                Some(hirer) => self.agent_spec(hirer)?.and_then(|h| h.owner),
                None => Some(actor.strip_prefix("human:").unwrap_or(actor).to_owned()),
            };
        }
        let spec = validate_spec(spec, |n| self.agent_exists(n).unwrap_or(false))?;
        if self.agent_exists(&spec.name)? {
            return Err(StoreError::refused(
                ErrorKind::Conflict,
                format!("an agent named `{}` already exists", spec.name),
            )
            .hint("pick another name (or omit it for the next conventional one), or remove it first with `sfctl agent remove`"));
        }
        self.check_seat(&spec)?;
        Ok(spec)
    }

    /// An agent may staff a seat that exists, is not a human's, and has no other agent.
    pub(crate) fn check_seat(&self, spec: &AgentSpec) -> Result<(), StoreError> {
        let Some(seat) = &spec.seat else {
            return Ok(());
        };
        let info = self.show_seat(seat)?;
        if info.kind == sf_proto::SeatKind::Human {
            return Err(StoreError::state(format!(
                "seat `{seat}` is a human seat; no agent staffs it"
            ))
            .hint("its tasks go to its steward's inbox; pick an agent or hybrid seat"));
        }
        if let Some(other) = info.agents.iter().find(|a| **a != spec.name) {
            return Err(StoreError::state(format!(
                "seat `{seat}` is staffed by `{other}`; a seat takes one agent"
            ))
            .hint(format!(
                "create another seat, or free it: `sfctl agent decommission {other} --confirm {other}`"
            )));
        }
        Ok(())
    }

    fn agent_summary(&self, name: &str) -> Result<AgentSummary, StoreError> {
        let row: Option<(String, bool, i64, Option<String>, String)> = self
            .conn
            .prepare_cached(
                "SELECT spec, enabled, created_at, disabled_reason, status FROM agents WHERE name = ?1",
            )?
            .query_row([name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        let Some((spec, enabled, created, disabled_reason, status)) = row else {
            return Err(StoreError::not_found(format!("no agent named `{name}`"))
                .hint("list agents with `sfctl agent list`"));
        };
        let spec: AgentSpec = serde_json::from_str(&spec)?;
        let running: u32 = self
            .conn
            .prepare_cached("SELECT count(*) FROM runs WHERE agent = ?1 AND ended_at IS NULL")?
            .query_row([name], |r| r.get(0))?;
        let last: Option<Option<String>> = self
            .conn
            .prepare_cached("SELECT outcome FROM runs WHERE agent = ?1 AND ended_at IS NOT NULL ORDER BY id DESC LIMIT 1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        // the merge steward's work is the merge queue's: its merges, and a test in flight
        let merge_steward =
            spec.role == sf_proto::Role::Steward && spec.focus == Some(sf_proto::Focus::Merge);
        let (merges, testing) = if merge_steward {
            let merged: u32 = self
                .conn
                .prepare_cached(
                    "SELECT count(*) FROM merge_requests INDEXED BY merge_requests_merged WHERE state = 'merged'",
                )?
                .query_row([], |r| r.get(0))?;
            let testing: bool = self
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM merge_requests WHERE state = 'testing')",
                )?
                .query_row([], |r| r.get(0))?;
            (Some(merged), testing)
        } else {
            (None, false)
        };
        let state = if running > 0 || testing {
            AgentState::Running
        } else if !enabled {
            AgentState::Disabled
        } else {
            match last {
                None if merges.unwrap_or(0) > 0 => AgentState::Idle,
                None => AgentState::NeverRun,
                Some(Some(o)) if FAILED_OUTCOMES.contains(&o.as_str()) => AgentState::Failed,
                Some(Some(o)) if o == "stopped" => AgentState::Stopped,
                Some(_) => AgentState::Idle,
            }
        };
        let blocked = if enabled {
            self.blocked_on(name, spec.adapter)?
        } else {
            None
        };
        let state = if blocked.is_some() {
            AgentState::Blocked
        } else {
            state
        };
        Ok(AgentSummary {
            blocked,
            spec,
            enabled,
            status: status.parse().unwrap_or(AgentStatus::Terminated),
            state,
            running,
            merges,
            disabled_reason: disabled_reason.filter(|_| !enabled),
            created_at: ts(created),
        })
    }

    /// What an agent waits for, if anything: an approval it asked for (a held tool call, a
    /// hire, a merge), or its adapter's pause. Reads only open approvals and live pauses.
    fn blocked_on(
        &self,
        name: &str,
        adapter: sf_proto::Adapter,
    ) -> Result<Option<String>, StoreError> {
        let open: Option<(i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT id, kind FROM approvals INDEXED BY approvals_by_status
                 WHERE status IN ('pending', 'revision_requested') AND requested_by = ?1
                 ORDER BY id LIMIT 1",
            )?
            .query_row([format!("agent:{name}")], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((id, kind)) = open {
            return Ok(Some(format!(
                "waiting for a human: approval #{id} ({kind}); `sfctl approval show {id}`"
            )));
        }
        let paused: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT until_ms FROM adapter_pauses WHERE adapter = ?1 AND until_ms > ?2",
            )?
            .query_row(params![adapter.as_str(), now_ms()], |r| r.get(0))
            .optional()?;
        Ok(paused.map(|until| {
            format!(
                "waiting for a resource: the `{adapter}` adapter is paused after a usage limit until {}",
                ts(until).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        }))
    }

    /// An agent's spec, if it is registered (a cheap read, for the guard).
    pub fn agent_spec(&self, name: &str) -> Result<Option<AgentSpec>, StoreError> {
        let spec: Option<String> = self
            .conn
            .prepare_cached("SELECT spec FROM agents WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        Ok(spec.map(|s| serde_json::from_str(&s)).transpose()?)
    }

    /// Every agent, by name.
    pub fn list_agents(&self) -> Result<Vec<AgentSummary>, StoreError> {
        let names: Vec<String> = self
            .conn
            .prepare_cached("SELECT name FROM agents ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        names.iter().map(|n| self.agent_summary(n)).collect()
    }

    /// One agent with its recent runs and next fire times.
    pub fn show_agent(&self, name: &str) -> Result<AgentDetail, StoreError> {
        let agent = self.agent_summary(name)?;
        let now = chrono::Utc::now();
        let next_fires = agent
            .spec
            .triggers
            .iter()
            .map(|t| {
                CronSchedule::parse(t)
                    .ok()
                    .and_then(|s| s.next_fire_in(self.time_zone, now))
            })
            .collect();
        let runs = self.runs_where("agent = ?1", rusqlite::types::Value::Text(name.to_owned()))?;
        let st = self.staffing(name)?;
        Ok(AgentDetail {
            agent,
            runs,
            next_fires,
            sandbox: None,
            signed: st.signed.map(|s| s == st.current),
        })
    }

    /// Enables or disables an agent. Returns it unchanged (and records nothing) if it already was.
    pub fn set_agent_enabled(
        &mut self,
        actor: &str,
        name: &str,
        enabled: bool,
    ) -> Result<AgentDetail, StoreError> {
        let before = self.agent_summary(name)?;
        if enabled && before.status != AgentStatus::Live {
            return Err(StoreError::state(format!(
                "agent `{name}` is {} and cannot be enabled",
                before.status
            ))
            .hint(match before.status {
                AgentStatus::PendingApproval => {
                    "its hire waits for a human: `sfctl approval list --status pending`"
                }
                AgentStatus::Draft => {
                    "a draft works once signed, dry-run and taken live: `sfctl agent go-live`"
                }
                _ => "it is kept for the record and never runs",
            }));
        }
        if before.enabled != enabled {
            let now = now_ms();
            let tx = self.conn.transaction()?;
            tx.prepare_cached(
                "UPDATE agents SET enabled = ?1, updated_at = ?2, disabled_reason = NULL WHERE name = ?3",
            )?
            .execute(params![enabled, now, name])?;
            let ev = Audit::new(
                actor,
                if enabled {
                    Action::AgentEnabled
                } else {
                    Action::AgentDisabled
                },
                format!("agent:{name}"),
            )
            .before(json!({"enabled": before.enabled}))
            .after(json!({"enabled": enabled}))
            .append(&tx, now)?;
            tx.commit()?;
            self.new_events.push(ev);
        }
        self.show_agent(name)
    }

    /// Disables an agent whose command could not be started (`fix: None`), or whose CLI
    /// cannot work for another reason of its own (`fix`: what its owner does), with the
    /// reason on the agent and in its event (`agent_disabled`, actor `daemon`), so dispatch
    /// stops handing it tasks.
    pub fn disable_broken_agent(
        &mut self,
        name: &str,
        why: &str,
        fix: Option<&str>,
    ) -> Result<(), StoreError> {
        let before = self.agent_summary(name)?;
        if !before.enabled {
            return Ok(());
        }
        let reason = match fix {
            Some(fix) => format!("{why}\nfix: {fix}; then `sfctl agent enable {name}`"),
            None => format!(
                "{why}; fix its command (`sfctl agent remove {name}`, then register it again), or fix what it runs and `sfctl agent enable {name}`"
            ),
        };
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE agents SET enabled = 0, updated_at = ?1, disabled_reason = ?2 WHERE name = ?3",
        )?
        .execute(params![now, reason, name])?;
        let ev = Audit::new("daemon", Action::AgentDisabled, format!("agent:{name}"))
            .before(json!({"enabled": true}))
            .after(json!({"enabled": false}))
            .reason(Some(&reason))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// Removes an agent; refused while it has live work or others report to it.
    pub fn remove_agent(&mut self, actor: &str, name: &str) -> Result<(), StoreError> {
        let agent = self.agent_summary(name)?;
        let held: Vec<String> = self
            .conn
            .prepare_cached("SELECT id FROM tasks WHERE assignee = ?1 AND status IN ('in_progress', 'review') LIMIT 5")?
            .query_map([name], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if agent.running > 0 || !held.is_empty() {
            let what = if held.is_empty() {
                format!("{} run(s) in flight", agent.running)
            } else {
                format!("tasks {}", held.join(", "))
            };
            return Err(StoreError::state(format!("agent `{name}` has live work: {what}"))
                .hint(format!("stop it first with `sfctl agent disable {name}` and let its work finish or hand off")));
        }
        let reports: Vec<String> = self
            .list_agents()?
            .into_iter()
            .filter(|a| a.spec.reports_to.as_deref() == Some(name))
            .map(|a| a.spec.name)
            .collect();
        if !reports.is_empty() {
            return Err(StoreError::state(format!(
                "agents report to `{name}`: {}",
                reports.join(", ")
            ))
            .hint("remove them or register them with another --reports-to first"));
        }
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached("DELETE FROM agents WHERE name = ?1")?
            .execute([name])?;
        let ev = Audit::new(actor, Action::AgentRemoved, format!("agent:{name}"))
            .before(serde_json::to_value(sf_core::redact::spec(&agent.spec))?)
            .append(&tx, now)?;
        // a hire still waiting for a human goes with the agent
        let closed = crate::approvals::close_subject(
            &tx,
            actor,
            &format!("agent:{name}"),
            sf_core::approval::Move::Cancel,
            Some("the agent was removed"),
            now,
        )?;
        tx.commit()?;
        self.new_events.push(ev);
        self.new_events.extend(closed);
        Ok(())
    }

    pub(crate) fn runs_where(
        &self,
        cond: &str,
        arg: rusqlite::types::Value,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT r.id, t.id, r.agent, r.epoch, r.started_at, r.ended_at, r.exit_code, r.outcome,
                    r.pid, r.log_path, r.usage,
                    CASE WHEN r.outcome IN ('completed', 'handed_off', 'ok', 'skipped') THEN NULL
                         ELSE r.result END
             FROM runs r LEFT JOIN tasks t ON t.key = r.task WHERE r.{cond} ORDER BY r.id DESC LIMIT 20"
        ))?;
        let rows = stmt.query_map([arg], |r| {
            Ok(RunSummary {
                id: sf_proto::RunId(r.get(0)?),
                task: r
                    .get::<_, Option<String>>(1)?
                    .and_then(|s| TaskId::new(s).ok()),
                agent: r.get(2)?,
                epoch: r.get(3)?,
                started_at: ts(r.get(4)?),
                ended_at: opt_ts(r.get(5)?),
                exit_code: r.get(6)?,
                outcome: r.get(7)?,
                pid: r.get(8)?,
                log_path: r.get(9)?,
                usage: r
                    .get::<_, Option<String>>(10)?
                    .and_then(|u| serde_json::from_str(&u).ok()),
                error: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(crate) fn task_runs(&self, key: Key) -> Result<Vec<RunSummary>, StoreError> {
        self.runs_where("task = ?1", rusqlite::types::Value::Integer(key))
    }

    /// Runs in flight.
    pub fn running_runs(&self) -> Result<u32, StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM runs WHERE ended_at IS NULL",
            [],
            |r| r.get(0),
        )?)
    }
}
