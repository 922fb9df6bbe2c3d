//! Stewards and the event bus: audit events become bus events that fire event triggers
//! (rate-limited, never by a steward's own work), cron triggers come due, and a fired
//! steward runs as an agent, checks the merge queue, or instantiates its playbook.

use std::time::{Duration, Instant};

use sf_proto::{ErrorKind, ProtoError, Response, StewardOutcome};
use sf_worker::process::ExitInfo;
use tokio_util::sync::CancellationToken;

use super::{Owner, RunKind, UnrecordedEnd, Worker, internal};
use crate::mailbox::ExitWhy;

impl Owner {
    /// Turns pending audit events into bus events and fires the stewards they trigger;
    /// reloads the triggers when agents changed.
    pub(super) async fn process_bus(&mut self) {
        let events = std::mem::take(&mut self.bus_pending);
        if self.triggers_dirty || events.iter().any(crate::steward::touches_triggers) {
            self.triggers_dirty = false;
            match self
                .store
                .call(|s| crate::steward::Triggers::load(s, chrono::Utc::now()))
                .await
            {
                Ok(Ok(t)) => self.triggers = t,
                Ok(Err(e)) => tracing::error!(error = ?e, "failed to load steward triggers"),
                Err(e) => tracing::error!(error = %e, "failed to load steward triggers"),
            }
        }
        if self.triggers.events.is_empty() || events.is_empty() {
            return;
        }
        let wants_ready = self.triggers.events.iter().any(|e| e.event == "task_ready");
        let first_look = wants_ready && self.ready_seen.is_none();
        let mut seen = wants_ready.then(|| self.ready_seen.take().unwrap_or_default());
        let result = self
            .store
            .call(move |s| {
                let mut bus = crate::steward::bus_events(s, &events);
                if let Some(seen) = seen.as_mut() {
                    let ready = crate::steward::newly_ready(s, seen);
                    // the first look only learns what is ready; it announces nothing
                    if !first_look {
                        bus.extend(ready);
                    }
                }
                (bus, seen)
            })
            .await;
        let bus = match result {
            Ok((bus, seen)) => {
                self.ready_seen = seen;
                bus
            }
            Err(e) => return tracing::error!(error = %e, "failed to read bus events"),
        };
        for ev in bus {
            let (event, data) = (&ev.name, &ev.data);
            for (steward, spec) in self.triggers.matching(event, data) {
                if crate::steward::caused_by(&steward, &ev) {
                    tracing::info!(%steward, %event, "not fired: the event comes from the steward's own work");
                    continue;
                }
                if !self.fire_allowed(&steward).await {
                    continue;
                }
                tracing::info!(%steward, %event, "event trigger fired");
                let r = self
                    .fire_steward("daemon", &steward, format!("event: {spec}"), data.clone())
                    .await;
                if let Response::Error(e) = r {
                    tracing::warn!(%steward, error = %e.message, "steward could not be fired");
                }
            }
        }
    }

    /// The firing rate limit of event triggers (`steward_fire_limit` a minute per steward):
    /// whether `steward` may fire now. The first refusal in a minute is recorded as a
    /// `steward_rate_limited` event.
    pub(super) async fn fire_allowed(&mut self, steward: &str) -> bool {
        let now = Instant::now();
        let window = Duration::from_secs(60);
        let limit = self.config.steward_fire_limit as usize;
        let fires = self.fires.entry(steward.to_owned()).or_default();
        while fires
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            fires.pop_front();
        }
        if fires.len() < limit {
            fires.push_back(now);
            return true;
        }
        let first_refusal = self
            .rate_limited
            .get(steward)
            .is_none_or(|t| now.duration_since(*t) >= window);
        if first_refusal {
            self.rate_limited.insert(steward.to_owned(), now);
            tracing::warn!(%steward, limit, "steward fire rate limit reached; event fires skipped for now");
            let name = steward.to_owned();
            if let Err(e) = self
                .store_call(move |s| s.record_steward_rate_limited(&name, limit))
                .await
            {
                tracing::error!(error = %e, "failed to record a rate-limited steward");
            }
        }
        false
    }

    pub(super) async fn fire_due_crons(&mut self) {
        let now = chrono::Utc::now();
        for (steward, expr) in self.triggers.take_due(now) {
            let (s2, e2, at) = (steward.clone(), expr.clone(), now.timestamp_millis());
            let _ = self
                .store
                .call(move |s| s.set_trigger_fired(&s2, &e2, at))
                .await;
            tracing::info!(%steward, %expr, "cron trigger fired");
            let data = serde_json::json!({ "scheduled": now });
            let r = self
                .fire_steward("daemon", &steward, format!("cron: {expr}"), data)
                .await;
            if let Response::Error(e) = r {
                tracing::warn!(%steward, error = %e.message, "steward could not be fired");
            }
        }
    }

    /// Fires a steward (manual, cron or event): a skipped fire if its last run still goes.
    pub(super) async fn fire_steward(
        &mut self,
        actor: &str,
        name: &str,
        trigger: String,
        data: serde_json::Value,
    ) -> Response {
        let path = sf_core::guard::SpawnPath::of_trigger(&trigger);
        if let Err(e) = self.spawn_gate(actor, name, path).await {
            return Response::Error(e);
        }
        let (a, n) = (actor.to_owned(), name.to_owned());
        match self
            .store_call(move |s| s.fire_steward(&a, &n, &trigger, &data))
            .await
        {
            Ok((Ok(sf_store::Fired::Skipped(info)), _)) => Response::StewardRun(info),
            Ok((Ok(sf_store::Fired::Started { info, token, spec }), _)) => {
                self.start_steward(info.clone(), token, *spec).await;
                Response::StewardRun(info)
            }
            Ok((Err(e), _)) => Response::Error(e.into()),
            Err(e) => internal(e),
        }
    }

    pub(super) async fn start_steward(
        &mut self,
        info: sf_proto::StewardRunInfo,
        token: String,
        spec: sf_proto::AgentSpec,
    ) {
        let id = info.id.0;
        match spec.focus {
            Some(sf_proto::Focus::Merge) => {
                let r = self.store_call(|s| s.retry_waiting_mrs()).await;
                let n = match r {
                    Ok((Ok(n), _)) => n,
                    _ => 0,
                };
                self.end_steward(
                    id,
                    StewardOutcome::Ok,
                    &format!("merge queue checked; {n} waiting request(s) queued again"),
                    None,
                )
                .await;
                return;
            }
            Some(sf_proto::Focus::Custom) => {
                let name = spec.playbook.clone().unwrap_or_default();
                let config = self.config.clone();
                let found =
                    tokio::task::spawn_blocking(move || crate::playbooks::find(&config, &name))
                        .await;
                let (outcome, result) = match found {
                    Ok(Ok(pb)) => {
                        let vars = crate::playbooks::vars_from_data(&pb, &info.data);
                        match self
                            .run_playbook(&format!("agent:{}", spec.name), pb.name(), &vars)
                            .await
                        {
                            Response::Plan(p) => (
                                StewardOutcome::Ok,
                                format!(
                                    "created workflow {} ({} task{})",
                                    p.plan.id,
                                    p.tasks.len(),
                                    if p.tasks.len() == 1 { "" } else { "s" }
                                ),
                            ),
                            // a steward's playbook gets its variables from the event's data
                            // (or `sfctl steward run --data`), not from `--var`
                            Response::Error(e) => (
                                StewardOutcome::Failed,
                                e.message.replace(
                                    "give each as --var NAME=VALUE",
                                    "give each in the event's data, or as --data NAME=VALUE to \
                                     `sfctl steward run`",
                                ),
                            ),
                            _ => (StewardOutcome::Failed, "unexpected response".to_owned()),
                        }
                    }
                    Ok(Err(e)) => (StewardOutcome::Failed, e.message),
                    Err(e) => (StewardOutcome::Failed, e.to_string()),
                };
                self.end_steward(id, outcome, &result, None).await;
                return;
            }
            _ => {}
        }
        let Some(target) = self.target.clone() else {
            self.end_steward(id, StewardOutcome::Failed, "no target branch", None)
                .await;
            return;
        };
        // the prompt's context is built by the launch task: it reads logs and runs sfctl
        let context = match spec.focus {
            Some(sf_proto::Focus::Docs) => crate::steward::Context::Docs,
            Some(sf_proto::Focus::Recovery) => match self.stuck_task(&info.data).await {
                Some(t) => crate::steward::Context::Stuck(t),
                None => crate::steward::Context::None,
            },
            _ => crate::steward::Context::None,
        };
        let stop = CancellationToken::new();
        // a recovery steward answers for the stuck task it was fired for
        let recovering = match spec.focus {
            Some(sf_proto::Focus::Recovery) => info
                .data
                .get("task")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_owned(),
            _ => String::new(),
        };
        self.workers.insert(
            id,
            Worker {
                agent: spec.name.clone(),
                adapter: spec.adapter,
                model: spec.model.clone(),
                task: recovering,
                epoch: 0,
                worktree: None,
                log: None,
                stop: stop.clone(),
                completing: false,
                counted: None,
                kind: RunKind::Steward,
                dry_run: false,
                session: None,
            },
        );
        tokio::spawn(crate::steward::launch(crate::steward::StewardLaunch {
            config: self.config.clone(),
            run: info,
            token,
            spec,
            target,
            context,
            stop,
            tx: self.internal_tx.clone(),
            identities: self.identities.clone(),
        }));
    }

    /// Instantiates a playbook into a workflow (an active plan) in one transaction.
    pub(super) async fn run_playbook(
        &mut self,
        actor: &str,
        name: &str,
        vars: &std::collections::BTreeMap<String, String>,
    ) -> Response {
        let config = self.config.clone();
        let n = name.to_owned();
        let pb =
            match tokio::task::spawn_blocking(move || crate::playbooks::find(&config, &n)).await {
                Ok(Ok(pb)) => pb,
                Ok(Err(e)) => return Response::Error(e),
                Err(e) => return internal(e),
            };
        let instance = match pb.instantiate(vars) {
            Ok(i) => i,
            Err(e) => {
                return Response::Error(
                    ProtoError::new(ErrorKind::InvalidInput, e.to_string()).with_hint(format!(
                        "see its variables with `sfctl playbook show {name}`"
                    )),
                );
            }
        };
        let actor = actor.to_owned();
        match self
            .store_call(move |s| s.create_workflow(&actor, &instance))
            .await
        {
            Ok((Ok(p), _)) => Response::Plan(p),
            Ok((Err(e), _)) => Response::Error(e.into()),
            Err(e) => internal(e),
        }
    }

    /// The stuck task a recovery steward was fired for (its history goes into the prompt).
    pub(super) async fn stuck_task(
        &self,
        data: &serde_json::Value,
    ) -> Option<Box<sf_proto::TaskDetail>> {
        let task = data.get("task").and_then(|t| t.as_str())?.to_owned();
        match self.store.call(move |s| s.show_task(&task)).await {
            Ok(Ok(t)) => Some(Box::new(t)),
            _ => None,
        }
    }

    /// What a recovery run did to its stuck task, judged by [`sf_core::recovery::verdict`].
    pub(super) async fn check_recovery(
        &self,
        run_id: i64,
        steward: &str,
        task: &str,
    ) -> (StewardOutcome, String) {
        let (t, who) = (task.to_owned(), steward.to_owned());
        let author = format!("agent:{steward}");
        // only what this run did counts, not notes or messages of earlier runs
        let found = self
            .store
            .call(move |s| {
                let since = s.steward_run(run_id)?.started_at;
                let told = s.told_director(&who, &t, since.timestamp_millis())?;
                Ok::<_, sf_store::StoreError>((s.show_task(&t)?, told, since))
            })
            .await;
        let (d, told, since) = match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return (StewardOutcome::Failed, e.to_string()),
            Err(e) => return (StewardOutcome::Failed, e.to_string()),
        };
        let noted = d.notes.iter().any(|n| n.author == author && n.at >= since);
        let facts = sf_core::recovery::RecoveryFacts {
            status: d.task.status,
            noted,
            told_director: told,
        };
        sf_core::recovery::verdict(d.task.id.as_str(), facts)
    }

    /// Records the end of a steward run (again at every tick when the store could not).
    pub(super) async fn end_steward(
        &mut self,
        id: i64,
        outcome: StewardOutcome,
        result: &str,
        code: Option<i32>,
    ) {
        let r = result.to_owned();
        let error = match self
            .store_call(move |s| s.end_steward_run(id, outcome.as_str(), &r, code, None))
            .await
        {
            Ok((Ok(_), _)) => return,
            Ok((Err(e), _)) if !e.is_transient() => {
                return tracing::error!(run = id, error = ?e, "failed to record the end of a steward run");
            }
            Ok((Err(e), _)) => crate::errors::error_chain(&e),
            Err(e) => e.to_string(),
        };
        tracing::error!(run = id, %error, "failed to record the end of a steward run; retrying at every tick");
        self.unrecorded_error = Some(error);
        self.unrecorded.push(UnrecordedEnd::Steward {
            id,
            outcome,
            result: result.to_owned(),
            code,
        });
    }

    /// A steward run's process ended: its outcome (a recovery run's is what it did to its
    /// stuck task) is recorded.
    pub(super) async fn steward_exited(
        &mut self,
        run_id: i64,
        w: &Worker,
        exit: Option<ExitInfo>,
        why: ExitWhy,
    ) {
        let code = exit.and_then(|e| e.code);
        let (outcome, result) = match (why, code) {
            (ExitWhy::Exited, Some(0)) => (StewardOutcome::Ok, "exited 0".to_owned()),
            (ExitWhy::TimedOut, _) => (
                StewardOutcome::TimedOut,
                "stopped at its wall-time limit".to_owned(),
            ),
            (ExitWhy::Stopped, _) => (StewardOutcome::Stopped, "stopped".to_owned()),
            (ExitWhy::Stalled, _) => (
                StewardOutcome::Failed,
                format!(
                    "stopped: its output showed no progress for {} (stall_timeout)",
                    humantime::format_duration(self.config.stall_timeout)
                ),
            ),
            (_, _) => (
                StewardOutcome::Failed,
                exit.map_or_else(|| "exited".to_owned(), |e| e.to_string()),
            ),
        };
        let (outcome, result) = if w.task.is_empty() || outcome != StewardOutcome::Ok {
            (outcome, result)
        } else {
            self.check_recovery(run_id, &w.agent, &w.task).await
        };
        self.end_steward(run_id, outcome, &result, code).await;
    }
}
