//! Staffing: seats and charters, the agent lifecycle (draft → signed → dry run passed →
//! live → decommissioned), signed permission manifests, dry runs and pinned skills.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};
use sf_proto::{
    Action, AgentStatus, BudgetScope, Charter, DryRunInfo, DryRunStatus, ErrorKind, Evidence,
    Manifest, NewSeat, RunId, SeatInfo, SeatKind,
};

use crate::events::Audit;
use crate::util::{now_ms, opt_ts, ts};
use crate::{Store, StoreError};

/// Where a staffing check left an agent, for the spawn gate.
#[derive(Debug, Clone)]
pub struct Staffing {
    /// Its lifecycle status.
    pub status: AgentStatus,
    /// The manifest hash a human signed.
    pub signed: Option<String>,
    /// Its manifest hash now.
    pub current: String,
}

fn seat_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

impl Store {
    /// `sfctl seat create`.
    pub fn create_seat(&mut self, actor: &str, seat: NewSeat) -> Result<SeatInfo, StoreError> {
        sf_core::naming::validate_agent_name(&seat.name).map_err(|_| {
            StoreError::invalid(format!(
                "invalid seat name `{}`: use 1 to 32 lowercase letters, digits, `-` or `_`",
                seat.name
            ))
        })?;
        let stewards = clean_stewards(&seat.stewards)?;
        check_charter(&seat.charter)?;
        if self.seat_kind(&seat.name)?.is_some() {
            return Err(StoreError::refused(
                ErrorKind::Conflict,
                format!("a seat named `{}` already exists", seat.name),
            )
            .hint("see it with `sfctl seat show`"));
        }
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO seats (name, kind, stewards, charter, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?
        .execute(params![
            seat.name,
            seat.kind.as_str(),
            serde_json::to_string(&stewards)?,
            serde_json::to_string(&seat.charter)?,
            now
        ])?;
        let ev = Audit::new(actor, Action::SeatCreated, format!("seat:{}", seat.name))
            .after(json!({"kind": seat.kind, "stewards": stewards, "charter": seat.charter}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.show_seat(&seat.name)
    }

    /// A seat's kind, if it exists.
    pub fn seat_kind(&self, name: &str) -> Result<Option<SeatKind>, StoreError> {
        let kind: Option<String> = self
            .conn
            .prepare_cached("SELECT kind FROM seats WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        Ok(kind.and_then(|k| k.parse().ok()))
    }

    /// One seat.
    pub fn show_seat(&self, name: &str) -> Result<SeatInfo, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT name, kind, stewards, charter, created_at FROM seats WHERE name = ?1",
            )?
            .query_row([name], seat_row)
            .optional()?
            .ok_or_else(|| {
                StoreError::not_found(format!("no seat named `{name}`")).hint(
                    "list seats with `sfctl seat list`, or create one with `sfctl seat create`",
                )
            })?;
        self.seat_info(row)
    }

    fn seat_info(
        &self,
        (name, kind, stewards, charter, created): (String, String, String, String, i64),
    ) -> Result<SeatInfo, StoreError> {
        let agents = self
            .list_agents()?
            .into_iter()
            .filter(|a| {
                a.spec.seat.as_deref() == Some(name.as_str())
                    && !matches!(
                        a.status,
                        AgentStatus::Decommissioned | AgentStatus::Terminated
                    )
            })
            .map(|a| a.spec.name)
            .collect();
        let open_tasks: u32 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM tasks WHERE seat = ?1 AND status NOT IN ('closed', 'tombstone')",
            )?
            .query_row([&name], |r| r.get(0))?;
        Ok(SeatInfo {
            kind: kind.parse().map_err(StoreError::invalid)?,
            stewards: serde_json::from_str(&stewards)?,
            charter: serde_json::from_str(&charter)?,
            agents,
            open_tasks,
            created_at: ts(created),
            name,
        })
    }

    /// Every seat, by name.
    pub fn list_seats(&self) -> Result<Vec<SeatInfo>, StoreError> {
        let rows: Vec<_> = self
            .conn
            .prepare_cached(
                "SELECT name, kind, stewards, charter, created_at FROM seats ORDER BY name",
            )?
            .query_map([], seat_row)?
            .collect::<Result<_, _>>()?;
        rows.into_iter().map(|r| self.seat_info(r)).collect()
    }

    /// `sfctl charter set` and `sfctl seat update`: a seat's charter and stewards. Removing
    /// the last steward is refused: every seat has a human who answers for it.
    pub fn update_seat(
        &mut self,
        actor: &str,
        name: &str,
        charter: Option<Charter>,
        add: &[String],
        remove: &[String],
    ) -> Result<SeatInfo, StoreError> {
        let before = self.show_seat(name)?;
        let mut stewards = before.stewards.clone();
        stewards.extend(add.iter().cloned());
        stewards.retain(|s| !remove.contains(s));
        if let Some(gone) = remove.iter().find(|r| !before.stewards.contains(r)) {
            return Err(StoreError::invalid(format!(
                "`{gone}` is not a steward of seat `{name}` (stewards: {})",
                before.stewards.join(", ")
            )));
        }
        if stewards.is_empty() {
            return Err(StoreError::state(format!(
                "seat `{name}` would have no human steward; every seat needs one"
            ))
            .hint(format!(
                "add another first: `sfctl seat update {name} --add-steward NAME`"
            )));
        }
        let stewards = clean_stewards(&stewards)?;
        let charter = charter.unwrap_or_else(|| before.charter.clone());
        check_charter(&charter)?;
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE seats SET stewards = ?1, charter = ?2, updated_at = ?3 WHERE name = ?4",
        )?
        .execute(params![
            serde_json::to_string(&stewards)?,
            serde_json::to_string(&charter)?,
            now,
            name
        ])?;
        let ev = Audit::new(actor, Action::SeatUpdated, format!("seat:{name}"))
            .before(json!({"stewards": before.stewards, "charter": before.charter}))
            .after(json!({"stewards": stewards, "charter": charter}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.show_seat(name)
    }

    /// The seat an agent staffs, with its kind and stewards (for the merge queue and spawns).
    pub fn seat_of_agent(&self, agent: &str) -> Result<Option<SeatInfo>, StoreError> {
        match self.agent_spec(agent)?.and_then(|s| s.seat) {
            Some(seat) => self.show_seat(&seat).map(Some),
            None => Ok(None),
        }
    }

    /// Why merge request `mr` of `agent`'s work waits for a human before it is tested: its
    /// agent is no longer live (decommissioned, a draft), or it staffs a hybrid seat, whose
    /// steward approves each merge. `None`: it goes on (or `agent` is no agent, e.g. a
    /// human's `sfctl merge`).
    pub fn merge_hold(&self, agent: &str, mr: i64) -> Result<Option<String>, StoreError> {
        let status: Option<String> = self
            .conn
            .prepare_cached("SELECT status FROM agents WHERE name = ?1")?
            .query_row([agent], |r| r.get(0))
            .optional()?;
        let Some(status) = status else {
            return Ok(None);
        };
        if status != AgentStatus::Live.as_str() {
            return Ok(Some(format!(
                "its agent is {status}: a human decides whether it lands (`sfctl mr approve {mr}`)"
            )));
        }
        Ok(self
            .seat_of_agent(agent)?
            .filter(|seat| seat.kind == SeatKind::Hybrid)
            .map(|seat| {
                format!(
                    "waiting for seat `{}`'s steward ({}): `sfctl mr approve {mr}`",
                    seat.name,
                    seat.stewards.join(", ")
                )
            }))
    }

    /// An agent's permission manifest: what it covers, its hash, and its signature.
    pub fn agent_manifest(&self, name: &str) -> Result<Manifest, StoreError> {
        let spec = self.agent_spec(name)?.ok_or_else(|| {
            StoreError::not_found(format!("no agent named `{name}`"))
                .hint("list agents with `sfctl agent list`")
        })?;
        let (signed, signed_by): (Option<String>, Option<String>) = self
            .conn
            .prepare_cached("SELECT signed_manifest, signed_by FROM agents WHERE name = ?1")?
            .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let budget = self
            .budget_limits(BudgetScope::Agent, name)?
            .map(serde_json::to_value)
            .transpose()?
            .unwrap_or(Value::Null);
        let mut covers = sf_core::manifest::covers(&spec, budget);
        let hash = sf_core::manifest::hash(&covers);
        // shown redacted; hashed as it is
        covers["command"] = json!(spec.command.as_deref().map(sf_core::redact::command));
        Ok(Manifest {
            agent: name.to_owned(),
            current: signed.as_deref() == Some(hash.as_str()),
            hash,
            covers,
            signed,
            signed_by,
        })
    }

    /// The staffing facts the spawn gate needs for `agent`.
    pub fn staffing(&self, agent: &str) -> Result<Staffing, StoreError> {
        let m = self.agent_manifest(agent)?;
        let status: String = self
            .conn
            .prepare_cached("SELECT status FROM agents WHERE name = ?1")?
            .query_row([agent], |r| r.get(0))?;
        Ok(Staffing {
            status: status.parse().unwrap_or(AgentStatus::Terminated),
            signed: m.signed,
            current: m.hash,
        })
    }

    /// The staffing gate for a spawn of `agent`: it is live (a dry run needs only a
    /// signature), its manifest as signed is its configuration now, and each skill its
    /// prompt gets (its own and its job role's required ones, from `skills_dir` or built in)
    /// still has its pinned hash. The outer error is the store's; the inner, the refusal.
    pub fn staffing_gate(
        &self,
        agent: &str,
        dry_run: bool,
        skills_dir: &std::path::Path,
        policy: Option<&sf_core::guard::Policy>,
    ) -> Result<Result<Vec<sf_core::skills::Skill>, sf_core::guard::Denial>, StoreError> {
        use sf_core::guard::Denial;
        let st = self.staffing(agent)?;
        if let Err(d) = sf_core::manifest::check_spawn(
            agent,
            st.status,
            st.signed.as_deref(),
            &st.current,
            dry_run,
        ) {
            return Ok(Err(d));
        }
        let spec = self.agent_spec(agent)?.unwrap_or_default();
        let names = match policy {
            Some(p) => p.skills_for(&spec),
            None => spec.skills.clone(),
        };
        let required = policy
            .and_then(|p| p.required_skills.get(&spec.job))
            .cloned()
            .unwrap_or_default();
        let mut skills = Vec::new();
        for name in names {
            match sf_core::skills::load(skills_dir, &name) {
                Ok(Some(k)) => skills.push(k),
                // a skill the policy requires must exist: its instructions are the point
                Ok(None) if required.contains(&name) => {
                    return Ok(Err(Denial {
                        code: sf_core::guard::Code::SkillHashMismatch,
                        reason: format!(
                            "skill `{name}`, required of every {} by the policy, has no file \
                             and is not built in",
                            spec.job
                        ),
                        hint: format!(
                            "write .sf/skills/{name}.md and pin it, or fix [skills.required] in \
                             .sf/policy.toml"
                        ),
                        rule: format!("skills.required.{}", spec.job),
                    }));
                }
                // a skill only for matching tasks to workers
                Ok(None) => {}
                Err(e) => {
                    return Ok(Err(Denial {
                        code: sf_core::guard::Code::SkillHashMismatch,
                        reason: format!("skill `{name}` cannot be read: {e}"),
                        hint: format!("fix .sf/skills/{name}.md"),
                        rule: "skills".to_owned(),
                    }));
                }
            }
        }
        if !skills.is_empty() {
            let pins = self.skill_pins()?;
            // a skill from a file is text anyone who can write the workspace could have
            // put there: it goes into prompts only once a human pinned it
            if let Some(k) = skills
                .iter()
                .find(|k| k.source != "built-in" && !pins.contains_key(&k.name))
            {
                return Ok(Err(Denial {
                    code: sf_core::guard::Code::SkillHashMismatch,
                    reason: format!(
                        "skill `{}` ({}) is not pinned: its text goes into no prompt until a \
                         human has read and pinned it",
                        k.name, k.source
                    ),
                    hint: format!(
                        "read it (`sfctl skill show {0}`), then `sfctl skill pin {0}`",
                        k.name
                    ),
                    rule: format!("skills.pin:{}", k.name),
                }));
            }
            if let Err(m) = sf_core::skills::check_pins(&skills, &pins) {
                return Ok(Err(Denial {
                    code: sf_core::guard::Code::SkillHashMismatch,
                    reason: m.to_string(),
                    hint: format!(
                        "review the file, then pin it again: `sfctl skill pin {}` (or restore it)",
                        m.name
                    ),
                    rule: format!("skills.pin:{}", m.name),
                }));
            }
        }
        Ok(Ok(skills))
    }

    /// Agents that were working before manifests existed (migration 0011 made them `live`
    /// with no signature) keep working: their manifest as it is is signed by the upgrade,
    /// recorded as such. A live agent has no signature in no other way.
    pub(crate) fn sign_upgraded_agents(&mut self) -> Result<(), StoreError> {
        let names: Vec<String> = self
            .conn
            .prepare_cached(
                "SELECT name FROM agents WHERE status = 'live' AND signed_manifest IS NULL",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for name in names {
            self.sign_manifest("sfd:upgrade", &name)?;
        }
        Ok(())
    }

    /// `sfctl charter sign-manifest`: a human signs an agent's manifest as it is now.
    pub fn sign_manifest(&mut self, actor: &str, name: &str) -> Result<Manifest, StoreError> {
        let m = self.agent_manifest(name)?;
        let status = self.staffing(name)?.status;
        if matches!(
            status,
            AgentStatus::Decommissioned | AgentStatus::Terminated | AgentStatus::PendingApproval
        ) {
            return Err(StoreError::state(format!(
                "agent `{name}` is {status}; its manifest cannot be signed"
            )));
        }
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE agents SET signed_manifest = ?1, signed_by = ?2, updated_at = ?3 WHERE name = ?4",
        )?
        .execute(params![m.hash, actor, now, name])?;
        let ev = Audit::new(actor, Action::ManifestSigned, format!("agent:{name}"))
            .before(json!({"signed": m.signed}))
            .after(json!({"signed": m.hash, "covers": m.covers}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.agent_manifest(name)
    }

    /// Opens a dry run's record for its run.
    pub fn start_dry_run(
        &mut self,
        actor: &str,
        agent: &str,
        run: i64,
        manifest: &str,
        task: &str,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO dry_runs (agent, run, manifest, task, status, started_at) VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
        )?
        .execute(params![agent, run, manifest, task, now])?;
        let id = tx.last_insert_rowid();
        let ev = Audit::new(actor, Action::DryRunStarted, format!("agent:{agent}"))
            .after(json!({"dry_run": id, "run": run, "manifest": manifest, "task": task}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(id)
    }

    /// Closes a dry run with its outcome and evidence (once: a finished one stays).
    pub fn finish_dry_run(
        &mut self,
        run: i64,
        passed: bool,
        reason: Option<&str>,
        evidence: &Evidence,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let row: Option<(i64, String)> = tx
            .prepare_cached("SELECT id, agent FROM dry_runs WHERE run = ?1 AND status = 'running'")?
            .query_row([run], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((id, agent)) = row else {
            return Ok(());
        };
        let status = if passed {
            DryRunStatus::Passed
        } else {
            DryRunStatus::Failed
        };
        tx.prepare_cached(
            "UPDATE dry_runs SET status = ?1, reason = ?2, evidence = ?3, ended_at = ?4 WHERE id = ?5",
        )?
        .execute(params![
            status.as_str(),
            reason,
            serde_json::to_string(evidence)?,
            now,
            id
        ])?;
        let ev = Audit::new("daemon", Action::DryRunFinished, format!("agent:{agent}"))
            .after(json!({
                "dry_run": id, "run": run, "status": status, "reason": reason,
                "tool_calls": evidence.tool_calls, "denied": evidence.denied,
                "held": evidence.held, "diff_stat": evidence.diff_stat,
            }))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// A run's tool calls: all, denied, held.
    pub fn run_call_counts(&self, run: i64) -> Result<(u32, u32, u32), StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(*), coalesce(sum(decision = 'deny'), 0), coalesce(sum(decision = 'hold'), 0)
                 FROM tool_calls WHERE run_id = ?1",
            )?
            .query_row([run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
    }

    /// After a run's end is recorded: a dry run still open fails with the run's outcome,
    /// and its task (a copy made for it, which no one else can take) is closed.
    pub fn dry_run_ended(&mut self, run: i64) -> Result<(), StoreError> {
        let row: Option<(String, Option<String>)> = self
            .conn
            .prepare_cached(
                "SELECT d.status, t.id FROM dry_runs d JOIN runs r ON r.id = d.run
                 LEFT JOIN tasks t ON t.key = r.task WHERE d.run = ?1",
            )?
            .query_row([run], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((status, task)) = row else {
            return Ok(());
        };
        if status == "running" {
            let outcome: Option<String> = self
                .conn
                .prepare_cached("SELECT outcome FROM runs WHERE id = ?1")?
                .query_row([run], |r| r.get(0))?;
            let reason = format!(
                "its run ended ({}) before its evidence was taken",
                outcome.as_deref().unwrap_or("unknown")
            );
            self.finish_dry_run(run, false, Some(&reason), &Evidence::default())?;
        }
        if let Some(task) = task {
            let open = self.show_task(&task)?.task.status;
            if !matches!(
                open,
                sf_proto::TaskStatus::Closed | sf_proto::TaskStatus::Tombstone
            ) {
                self.change_status(
                    "daemon",
                    &task,
                    sf_proto::StatusChange::Close,
                    Some("dry run ended"),
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// The agents with a dry run in flight (they take no other work meanwhile).
    pub fn agents_in_dry_run(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT agent FROM dry_runs INDEXED BY dry_runs_running WHERE status = 'running'",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// Whether `run` is a dry run (its requests change nothing; it never merges).
    pub fn is_dry_run(&self, run: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM dry_runs WHERE run = ?1")?
            .query_row([run], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// An agent's dry runs, newest first.
    pub fn list_dry_runs(&self, agent: &str) -> Result<Vec<DryRunInfo>, StoreError> {
        self.agent_spec(agent)?.ok_or_else(|| {
            StoreError::not_found(format!("no agent named `{agent}`"))
                .hint("list agents with `sfctl agent list`")
        })?;
        let rows = self
            .conn
            .prepare_cached(
                "SELECT id, agent, run, manifest, task, status, reason, evidence, started_at, ended_at
                 FROM dry_runs WHERE agent = ?1 ORDER BY id DESC",
            )?
            .query_map([agent], |r| {
                let evidence: Option<String> = r.get(7)?;
                let status: String = r.get(5)?;
                Ok(DryRunInfo {
                    id: r.get(0)?,
                    agent: r.get(1)?,
                    run: RunId(r.get(2)?),
                    manifest: r.get(3)?,
                    task: r.get(4)?,
                    status: status.parse().unwrap_or(DryRunStatus::Failed),
                    reason: r.get(6)?,
                    evidence: evidence.and_then(|e| serde_json::from_str(&e).ok()),
                    started_at: ts(r.get(8)?),
                    ended_at: opt_ts(r.get(9)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// `sfctl agent go-live`: a human takes a signed agent live after a passed dry run on
    /// its current manifest, with a named steward (its seat's, or its owner).
    pub fn go_live(
        &mut self,
        actor: &str,
        name: &str,
    ) -> Result<sf_proto::AgentDetail, StoreError> {
        let st = self.staffing(name)?;
        let spec = self.agent_spec(name)?.unwrap_or_default();
        if st.status == AgentStatus::Live {
            return self.show_agent(name);
        }
        if st.status != AgentStatus::Draft {
            return Err(StoreError::state(format!(
                "agent `{name}` is {}; only a draft goes live",
                st.status
            )));
        }
        let precondition = |what: String, hint: String| {
            StoreError::Denied(
                sf_proto::ProtoError::new(ErrorKind::InvalidState, what)
                    .with_hint(hint)
                    .with_code("COMMAND_PRECONDITION_FAILED"),
            )
        };
        if st.signed.as_deref() != Some(st.current.as_str()) {
            return Err(precondition(
                format!("agent `{name}` has no signed manifest matching its configuration"),
                format!("`sfctl charter sign-manifest {name}`, then `sfctl agent dry-run {name}`"),
            ));
        }
        let passed: bool = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM dry_runs WHERE agent = ?1 AND manifest = ?2 AND status = 'passed')",
            )?
            .query_row(params![name, st.current], |r| r.get(0))?;
        if !passed {
            return Err(precondition(
                format!("agent `{name}` has no passed dry run on its current manifest"),
                format!("`sfctl agent dry-run {name}`, then review `sfctl agent dry-runs {name}`"),
            ));
        }
        let steward = match &spec.seat {
            Some(seat) => self.show_seat(seat)?.stewards.first().cloned(),
            None => spec.owner.clone(),
        };
        let Some(steward) = steward else {
            return Err(precondition(
                format!("agent `{name}` has no human steward (no seat and no owner)"),
                format!("put it in a seat: `sfctl agent update {name} --seat SEAT`"),
            ));
        };
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE agents SET status = 'live', enabled = 1, updated_at = ?1 WHERE name = ?2",
        )?
        .execute(params![now, name])?;
        let ev = Audit::new(actor, Action::AgentLive, format!("agent:{name}"))
            .before(json!({"status": st.status}))
            .after(json!({"status": "live", "manifest": st.current, "steward": steward}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.show_agent(name)
    }

    /// `sfctl agent decommission`: retires an agent for good (its history kept, its seat
    /// freed). Its runs are stopped by the daemon.
    pub fn decommission_agent(
        &mut self,
        actor: &str,
        name: &str,
    ) -> Result<sf_proto::AgentDetail, StoreError> {
        let mut spec = self.agent_spec(name)?.ok_or_else(|| {
            StoreError::not_found(format!("no agent named `{name}`"))
                .hint("list agents with `sfctl agent list`")
        })?;
        let seat = spec.seat.take();
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE agents SET status = 'decommissioned', enabled = 0, spec = ?1, updated_at = ?2 WHERE name = ?3",
        )?
        .execute(params![serde_json::to_string(&spec)?, now, name])?;
        let ev = Audit::new(actor, Action::AgentDecommissioned, format!("agent:{name}"))
            .after(json!({"status": "decommissioned", "seat_freed": seat}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        self.show_agent(name)
    }

    /// `sfctl skill pin`: a human pins a skill's hash.
    pub fn pin_skill(&mut self, actor: &str, name: &str, hash: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO skill_pins (name, hash, pinned_by, pinned_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET hash = ?2, pinned_by = ?3, pinned_at = ?4",
        )?
        .execute(params![name, hash, actor, now])?;
        let ev = Audit::new(actor, Action::SkillPinned, format!("skill:{name}"))
            .after(json!({"hash": hash}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// Every pinned skill's hash, by name.
    pub fn skill_pins(&self) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT name, hash FROM skill_pins")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    /// Records the skills (and hashes) a run's prompt was given.
    pub fn record_run_skills(&mut self, run: i64, skills: &Value) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let agent: String = tx
            .prepare_cached("UPDATE runs SET skills = ?1 WHERE id = ?2 RETURNING agent")?
            .query_row(params![skills.to_string(), run], |r| r.get(0))?;
        let ev = Audit::new("daemon", Action::RunSkills, format!("agent:{agent}"))
            .after(json!({"run": run, "skills": skills}))
            .append(&tx, now)?;
        tx.commit()?;
        self.new_events.push(ev);
        Ok(())
    }

    /// The skills a run's prompt was given.
    pub fn run_skills(&self, run: i64) -> Result<Option<Value>, StoreError> {
        let s: Option<Option<String>> = self
            .conn
            .prepare_cached("SELECT skills FROM runs WHERE id = ?1")?
            .query_row([run], |r| r.get(0))
            .optional()?;
        Ok(s.flatten().and_then(|s| serde_json::from_str(&s).ok()))
    }
}

/// Checks a charter's fields: each within a description's size.
fn check_charter(c: &Charter) -> Result<(), StoreError> {
    for (field, text) in [
        ("charter purpose", &c.purpose),
        ("charter inputs", &c.inputs),
        ("charter outputs", &c.outputs),
        ("charter approval boundaries", &c.approval_boundaries),
        ("charter escalation", &c.escalation),
    ] {
        sf_core::naming::validate_text(field, text)?;
    }
    Ok(())
}

/// Checks stewards: human names, at least one.
fn clean_stewards(stewards: &[String]) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = stewards
        .iter()
        .map(|s| s.trim().trim_start_matches("human:").to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(StoreError::invalid("a seat needs a human steward")
            .hint("--steward NAME (your user name, or a teammate's)"));
    }
    if let Some(bad) = out
        .iter()
        .find(|s| s.len() > 64 || !s.chars().all(|c| c.is_alphanumeric() || "-_.@".contains(c)))
    {
        return Err(StoreError::invalid(format!(
            "invalid steward `{bad}`: a user name of letters, digits and `-_.@`"
        )));
    }
    Ok(out)
}
