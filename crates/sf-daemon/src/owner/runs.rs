//! The run lifecycle: launching a claimed task's worker, what its task reports back
//! (spawned, could not start, exited, work saved), recording the end (again at every tick
//! when the store could not), and `sfctl agent start|stop`.

use std::collections::HashSet;
use std::time::Instant;

use sf_core::guard::SpawnPath;
use sf_proto::{Adapter, ErrorKind, ProtoError, Response, RunSummary, StewardOutcome};
use sf_store::{AfterFailure, Failure};
use sf_worker::adapters::RunReport;
use sf_worker::outcome::RunClass;
use sf_worker::process::ExitInfo;
use tokio_util::sync::CancellationToken;

use super::{Owner, RunKind, UnrecordedEnd, Worker, internal};
use crate::dispatch::Start;
use crate::mailbox::{Ending, ExitWhy};
use crate::workers::Launch;

impl Owner {
    /// The spawn gate: whether `agent` may be started by `path` now, by the policy and by
    /// its staffing (live, its manifest signed as it is). A refusal is recorded
    /// (`spawn_denied`, with `actor`, who asked) and returned as the client's error.
    pub(super) async fn spawn_gate(
        &mut self,
        actor: &str,
        agent: &str,
        path: SpawnPath,
    ) -> Result<(), ProtoError> {
        let mut verdict = crate::guard::check_spawn(self.config.policy.as_ref(), path, agent);
        if verdict.is_ok() {
            let a = agent.to_owned();
            let (dir, policy) = (
                self.config.paths.dir.join("skills"),
                self.config.policy.clone(),
            );
            verdict = match self
                .store_call(move |s| {
                    let source = crate::staffing::SkillSource {
                        dir: &dir,
                        policy: policy.as_ref().ok(),
                    };
                    crate::staffing::gate(s, &a, false, source).map(|_| ())
                })
                .await
            {
                Ok((Ok(()), _)) => Ok(()),
                Ok((Err(crate::staffing::GateError::Denied(d)), _)) => Err(d),
                Ok((Err(crate::staffing::GateError::Store(e)), _)) => return Err(e.into()),
                Err(e) => {
                    return Err(ProtoError::new(ErrorKind::Internal, e.to_string()));
                }
            };
        }
        match verdict {
            Ok(()) => Ok(()),
            Err(d) => {
                let e = crate::guard::denied(&d, false);
                // a trigger refused at each fire is recorded once until the policy changes
                let repeated = matches!(path, SpawnPath::Cron | SpawnPath::Event)
                    && !self.spawn_denials_noted.insert((agent.to_owned(), path));
                if repeated {
                    return Err(e);
                }
                let (actor, agent) = (actor.to_owned(), agent.to_owned());
                if let Err(err) = self
                    .store_call(move |s| {
                        crate::guard::record_spawn_denial(s, &actor, path, &agent, &d)
                    })
                    .await
                {
                    tracing::error!(error = %err, "failed to record a spawn denial");
                }
                Err(e)
            }
        }
    }

    /// Records a denial dispatch met, once per agent and path until the policy changes.
    pub(super) async fn note_spawn_denial(
        &mut self,
        actor: &str,
        agent: &str,
        path: SpawnPath,
        d: &sf_core::guard::Denial,
    ) {
        if !self.spawn_denials_noted.insert((agent.to_owned(), path)) {
            return;
        }
        tracing::warn!(%agent, %path, reason = %d.reason, "spawn denied by the policy");
        let (actor, agent, d) = (actor.to_owned(), agent.to_owned(), d.clone());
        if let Err(e) = self
            .store_call(move |s| crate::guard::record_spawn_denial(s, &actor, path, &agent, &d))
            .await
        {
            tracing::error!(error = %e, "failed to record a spawn denial");
        }
    }

    pub(super) fn launch(&mut self, s: Start) {
        let Some(target) = self.target.clone() else {
            return;
        };
        // the last door before a process: whatever claimed the task, the gate decides (a
        // policy reloaded since the claim ends the run uncounted)
        if let Err(d) =
            crate::guard::check_spawn(self.config.policy.as_ref(), s.path, &s.claim.agent)
        {
            let tx = self.internal_tx.clone();
            let run_id = s.claim.run_id;
            let _ = tx.send(crate::mailbox::Internal::SpawnDenied {
                run_id,
                agent: s.claim.agent.clone(),
                reason: d.reason,
            });
            return;
        }
        let resume = s.resume.clone().or_else(|| {
            self.config
                .resume_on_handoff
                .then(|| crate::workers::handed_off_session(&s.task, s.agent.adapter))
                .flatten()
        });
        let counted = resume
            .as_deref()
            .map(|session| crate::workers::session_tokens(&s.task, session));
        let stop = CancellationToken::new();
        self.workers.insert(
            s.claim.run_id,
            Worker {
                agent: s.claim.agent.clone(),
                adapter: s.agent.adapter,
                model: s.agent.model.clone(),
                task: s.claim.task_id.to_string(),
                epoch: s.claim.epoch,
                worktree: Some(s.claim.worktree.clone()),
                log: None,
                stop: stop.clone(),
                completing: false,
                counted,
                kind: if s.shell.is_some() {
                    RunKind::Shell
                } else {
                    RunKind::Worker
                },
                dry_run: s.dry_run,
                session: s.turn.as_ref().map(|(id, _)| *id),
            },
        );
        tokio::spawn(crate::workers::launch(Launch {
            config: self.config.clone(),
            claim: s.claim,
            agent: s.agent,
            task: s.task,
            target,
            stop,
            tx: self.internal_tx.clone(),
            shell: s.shell,
            resume,
            identities: self.identities.clone(),
            cost_left: s.cost_left,
            skills: s.skills,
            turn_input: s.turn.map(|(_, input)| input),
        }));
    }

    /// The branch runs work from, resolved if it was not yet (a repository's first commit
    /// may have come since the start).
    pub(super) async fn require_target(&mut self) -> Result<(), ProtoError> {
        if self.target.is_none() {
            self.resolve_target().await;
        }
        if self.target.is_none() {
            return Err(ProtoError::new(
                ErrorKind::InvalidState,
                "the repository has no target branch to work from",
            )
            .with_hint("make a first commit, or set target_branch in .sf/config.toml"));
        }
        Ok(())
    }

    /// Records again the run ends the store failed to record.
    pub(super) async fn record_unrecorded(&mut self) {
        let pending = std::mem::take(&mut self.unrecorded);
        if pending.is_empty() {
            return;
        }
        tracing::info!(
            runs = pending.len(),
            "recording run ends that failed before"
        );
        for end in pending {
            match end {
                UnrecordedEnd::Run {
                    run_id,
                    code,
                    failure,
                    note,
                    usage,
                    max,
                } => self.end_run(run_id, code, failure, note, usage, max).await,
                UnrecordedEnd::Steward {
                    id,
                    outcome,
                    result,
                    code,
                } => self.end_steward(id, outcome, &result, code).await,
            }
        }
        if self.unrecorded.is_empty() {
            self.unrecorded_error = None;
        }
    }

    pub(super) async fn end_run(
        &mut self,
        run_id: i64,
        code: Option<i32>,
        failure: Failure,
        note: String,
        usage: Option<sf_proto::RunUsage>,
        max: u32,
    ) {
        self.live_use.remove(&run_id);
        self.live_messages.remove(&run_id);
        let (note2, usage2) = (note.clone(), usage.clone());
        // a run of a task closed meanwhile held its worktree until now
        self.tidy_due = true;
        let error = match self
            .store_call(move |s| {
                let r = s.run_ended(run_id, code, failure, &note, usage.as_ref(), max);
                if r.is_ok()
                    && let Err(e) = s.dry_run_ended(run_id)
                {
                    tracing::error!(run_id, error = %e, "failed to close a dry run");
                }
                r
            })
            .await
        {
            Ok((Ok(AfterFailure::Stuck), _)) => {
                return tracing::warn!(run_id, "task is stuck after too many failed runs");
            }
            Ok((Ok(_), _)) => return,
            Ok((Err(e), _)) if !e.is_transient() => {
                return tracing::error!(run_id, error = ?e, "failed to record the end of a run");
            }
            Ok((Err(e), _)) => crate::errors::error_chain(&e),
            Err(e) => e.to_string(),
        };
        tracing::error!(run_id, %error, "failed to record the end of a run; retrying at every tick");
        self.unrecorded_error = Some(error);
        self.unrecorded.push(UnrecordedEnd::Run {
            run_id,
            code,
            failure,
            note: note2,
            usage: usage2,
            max,
        });
    }

    pub(super) async fn start_agent(
        &mut self,
        actor: &str,
        name: String,
        task: Option<String>,
        resume: Option<String>,
    ) -> Response {
        if let Err(e) = self.spawn_gate(actor, &name, SpawnPath::Start).await {
            return Response::Error(e);
        }
        // a director or persistent worker starts a session: its turns are the dispatch
        // phase's, starting now
        let n = name.clone();
        let (sessioned, enabled) = match self.store_call(move |s| s.show_agent(&n)).await {
            Ok((Ok(a), _)) => (
                a.agent.spec.role == sf_proto::Role::Director
                    || a.agent.spec.mode == sf_proto::Mode::Persistent,
                a.agent.enabled,
            ),
            _ => (false, true),
        };
        if sessioned && actor.starts_with("agent:") {
            return Response::Error(
                ProtoError::new(
                    ErrorKind::Denied,
                    format!("a session of `{name}` is started by a human"),
                )
                .with_hint("ask a human: `sfctl agent start NAME`")
                .with_code("HUMAN_REQUIRED"),
            );
        }
        if sessioned && !enabled {
            return Response::Error(
                ProtoError::new(
                    ErrorKind::InvalidState,
                    format!("agent `{name}` is disabled"),
                )
                .with_hint(format!("enable it first: `sfctl agent enable {name}`")),
            );
        }
        if !sessioned && resume.is_some() && task.is_none() {
            return Response::Error(
                ProtoError::new(
                    ErrorKind::InvalidInput,
                    format!("--resume continues a run of `{name}` on a task: give --task ID"),
                )
                .with_hint("sfctl agent start NAME --task ID --resume SESSION"),
            );
        }
        if sessioned {
            if task.is_some() {
                return Response::Error(
                    ProtoError::new(
                        ErrorKind::InvalidInput,
                        format!("`{name}` works in a session of its own, not on a task"),
                    )
                    .with_hint("send it the task instead: `sfctl message send --to NAME --type task-assignment ...`"),
                );
            }
            let actor = actor.to_owned();
            return match self
                .store_call(move |s| s.start_session(&actor, &name, resume.as_deref()))
                .await
            {
                Ok((Ok(session), _)) => {
                    self.tick_due = true;
                    Response::Session(Box::new(session))
                }
                Ok((Err(e), _)) => Response::Error(e.into()),
                Err(e) => internal(e),
            };
        }
        if let Err(e) = self.require_target().await {
            return Response::Error(e);
        }
        let capacity = (self.config.max_workers as usize).saturating_sub(self.workers.len());
        let paused: HashSet<Adapter> = self.paused.keys().copied().collect();
        let live = self.budgets_exist.then(|| self.live_use.clone());
        let config = self.config.clone();
        match self
            .store_call(move |s| {
                let dir = config.paths.dir.join("skills");
                let source = crate::staffing::SkillSource {
                    dir: &dir,
                    policy: config.policy.as_ref().ok(),
                };
                crate::dispatch::start_agent(
                    s,
                    &name,
                    task.as_deref(),
                    capacity,
                    &paused,
                    live.as_ref(),
                    source,
                )
            })
            .await
        {
            Ok((Ok(start), _)) => {
                let summary = RunSummary {
                    id: sf_proto::RunId(start.claim.run_id),
                    task: Some(start.claim.task_id.clone()),
                    agent: start.claim.agent.clone(),
                    epoch: start.claim.epoch,
                    started_at: chrono::Utc::now(),
                    ended_at: None,
                    exit_code: None,
                    outcome: None,
                    pid: None,
                    log_path: Some(
                        crate::workers::log_path(
                            &self.config,
                            start.claim.task_id.as_str(),
                            start.claim.run_id,
                        )
                        .display()
                        .to_string(),
                    ),
                    usage: None,
                    error: None,
                };
                self.launch(Start { resume, ..start });
                Response::Run(summary)
            }
            Ok((Err(e), _)) => Response::Error(e.into()),
            Err(e) => internal(e),
        }
    }

    pub(super) async fn stop_agent(&mut self, actor: &str, name: String) -> Response {
        let (who, n) = (actor.to_owned(), name.clone());
        match self
            .store_call(move |s| s.set_agent_enabled(&who, &n, false))
            .await
        {
            Ok((Ok(_), _)) => {}
            Ok((Err(e), _)) => return Response::Error(e.into()),
            Err(e) => return internal(e),
        }
        let mut stopped = 0;
        for w in self.workers.values().filter(|w| w.agent == name) {
            w.stop.cancel();
            stopped += 1;
        }
        let (a, n) = (actor.to_owned(), name.clone());
        if let Ok((Ok(Some(s)), _)) = self
            .store_call(move |st| st.end_session(&a, &n, "stopped by a human"))
            .await
        {
            return Response::Ok {
                message: format!(
                    "ended session #{} of `{name}` after {} turn(s); its branch {} is kept in \
                     the archive (`sfctl agent sessions {name}`); `{name}` is disabled: enable it \
                     with `sfctl agent enable {name}`",
                    s.id, s.turns, s.branch
                ),
            };
        }
        Response::Ok {
            message: format!(
                "stopping {stopped} worker(s) of `{name}` (their work is saved and their tasks return to the pool); \
                 `{name}` is disabled: enable it with `sfctl agent enable {name}`"
            ),
        }
    }

    /// The process is running: its pid and log are recorded.
    pub(super) async fn spawned(
        &mut self,
        run_id: i64,
        pid: u32,
        start_time: Option<u64>,
        log_path: std::path::PathBuf,
    ) {
        let log = log_path.display().to_string();
        if let Some(w) = self.workers.get_mut(&run_id) {
            w.log = Some(log.clone());
        }
        if let Err(e) = self
            .store
            .call(move |s| s.record_spawn(run_id, pid, start_time, &log))
            .await
        {
            tracing::error!(error = %e, "failed to record a spawn");
        }
    }

    /// A run could not be started: the claim is undone, charged to the agent when its own
    /// command is at fault, to nobody when sfd ran out of resources.
    pub(super) async fn spawn_failed(&mut self, run_id: i64, error: String, agent_fault: bool) {
        let worker = self.workers.remove(&run_id);
        let steward = worker.as_ref().is_some_and(|w| w.kind == RunKind::Steward);
        if steward {
            let result = format!("could not start: {error}");
            self.end_steward(run_id, StewardOutcome::Failed, &result, None)
                .await;
        }
        let max = self.config.max_attempts;
        let note = format!("the worker could not be started: {error}");
        if agent_fault && let Some(w) = worker {
            // the agent's command cannot run: the task is not to blame, the agent
            // is taken out of dispatch (and out of its triggers) until a human fixes and
            // enables it
            if !steward {
                self.end_run(run_id, None, Failure::AgentBroken, note, None, max)
                    .await;
            }
            let (agent, why) = (w.agent.clone(), format!("could not start: {error}"));
            if let Err(e) = self
                .store_call(move |s| s.disable_broken_agent(&agent, &why, None))
                .await
            {
                tracing::error!(agent = %w.agent, error = %e, "failed to disable a broken agent");
            }
            return;
        }
        if steward {
            return;
        }
        // the daemon's own exhaustion (descriptors, processes, memory, disk) is not the
        // task's fault: the run ends uncounted and the task waits for the next round
        let failure = if crate::workers::out_of_resources(&error) {
            tracing::warn!(run_id, %error, "sfd ran out of a resource starting a run; the task is not charged, dispatch waits for the next tick");
            self.starved_until = Some(Instant::now() + self.config.tick_interval);
            Failure::DaemonResources
        } else {
            Failure::SpawnFailed
        };
        self.end_run(run_id, None, failure, note, None, max).await;
    }

    /// A run's process ended. Returns whether anything changed.
    pub(super) async fn exited(
        &mut self,
        run_id: i64,
        exit: Option<ExitInfo>,
        why: ExitWhy,
        report: Option<Box<RunReport>>,
    ) -> bool {
        let Some(w) = self.workers.remove(&run_id) else {
            return false;
        };
        self.identities.ended(run_id);
        match w.kind {
            RunKind::Shell => self.shell_step_ended(run_id, &w, exit, why).await,
            RunKind::Steward => self.steward_exited(run_id, &w, exit, why).await,
            RunKind::Worker => self.worker_exited(run_id, w, exit, why, report).await,
        }
        true
    }

    pub(super) async fn shell_step_ended(
        &mut self,
        run_id: i64,
        w: &Worker,
        exit: Option<ExitInfo>,
        why: ExitWhy,
    ) {
        let code = exit.and_then(|e| e.code);
        let success = why == ExitWhy::Exited && code == Some(0);
        let summary = match why {
            ExitWhy::TimedOut => "timed out".to_owned(),
            _ => exit.map_or_else(|| "exited".to_owned(), |e| e.to_string()),
        };
        let log = w.log.clone();
        if let Err(e) = self
            .store_call(move |s| {
                // the log is read on the store thread, not on the owner
                let tail = log
                    .map(|l| {
                        sf_worker::process::tail_lines(std::path::Path::new(&l), 40).join("\n")
                    })
                    .unwrap_or_default();
                s.shell_step_finished(run_id, success, &summary, &tail)
            })
            .await
        {
            tracing::error!(run_id, error = %e, "failed to record a shell step");
        }
    }

    pub(super) async fn worker_exited(
        &mut self,
        run_id: i64,
        w: Worker,
        exit: Option<ExitInfo>,
        why: ExitWhy,
        report: Option<Box<RunReport>>,
    ) {
        let mut usage = report
            .as_deref()
            .map(|r| crate::workers::run_usage(r, w.adapter, w.counted));
        // a CLI that reports no cost is priced by `[prices]` for its model
        if let Some(u) = usage.as_mut()
            && u.cost_usd.is_none()
            && let Some(price) = w.model.as_deref().and_then(|m| self.config.prices.get(m))
        {
            u.cost_usd = Some(price.cost(u));
        }
        let report = report.map(|r| *r).unwrap_or_default();
        if let Some(session) = w.session {
            return self.turn_ended(run_id, session, &w, exit, why, usage).await;
        }
        if w.dry_run {
            let passed = why == ExitWhy::Exited && exit.and_then(|e| e.code) == Some(0);
            let reason = (!passed).then(|| match exit {
                Some(e) => format!("its run {e} ({:?})", why.end_reason()),
                None => format!("its run ended: {:?}", why.end_reason()),
            });
            self.dry_run_evidence(run_id, &w, passed, reason, usage.clone())
                .await;
        }
        let class = RunClass::of_unfinished(why.end_reason(), &report);
        if let Some(limit) = &report.usage_limit {
            self.pause_adapter(w.adapter, limit, run_id).await;
        }
        let released = matches!(
            self.store.call(move |s| s.run_released(run_id)).await,
            Ok(Ok(true))
        );
        if released {
            let code = exit.and_then(|e| e.code);
            self.end_run(
                run_id,
                code,
                Failure::Exited,
                String::new(),
                usage,
                self.config.max_attempts,
            )
            .await;
        } else {
            let ending = Ending {
                agent: w.agent,
                adapter: w.adapter,
                exit,
                why,
                class,
                said: sf_worker::outcome::cli_message(&report).map(str::to_owned),
                usage,
            };
            crate::workers::save_work(
                self.config.clone(),
                (run_id, w.task, w.epoch, w.worktree, w.log),
                ending,
                self.internal_tx.clone(),
            );
        }
    }

    /// Dispatch to `adapter` waits until its usage limit resets (clamped), here and in the
    /// store, so that a restart keeps waiting.
    async fn pause_adapter(
        &mut self,
        adapter: Adapter,
        limit: &sf_worker::adapters::UsageLimit,
        run_id: i64,
    ) {
        let until = sf_worker::adapters::clamp_reset(limit.resets_at, chrono::Utc::now());
        tracing::warn!(%adapter, %until, "usage limit reported; pausing dispatch to this adapter");
        let message = limit.message.clone();
        self.paused.insert(adapter, (until, message.clone()));
        if let Err(e) = self
            .store_call(move |s| s.pause_adapter(adapter, until, &message, run_id))
            .await
        {
            tracing::error!(%adapter, error = %e, "failed to record an adapter's pause; it holds until a restart");
        }
    }

    /// A failed run's work is saved: its end is recorded; an agent whose CLI cannot
    /// authenticate is disabled with the reason and the fix.
    pub(super) async fn saved(&mut self, run_id: i64, ending: Ending, note: String) {
        let failure = match (ending.class, ending.why) {
            _ if self.stopped_for.contains_key(&run_id) => {
                self.stopped_for.remove(&run_id).unwrap_or(Failure::Stopped)
            }
            (RunClass::Authentication, _) => Failure::AuthFailed,
            (RunClass::UsageLimit, _) => Failure::UsageLimited,
            (RunClass::NoProgress, _) => Failure::Stalled,
            (RunClass::Timeout, _) => Failure::TimedOut,
            (RunClass::Stopped, _) => Failure::Stopped,
            (_, ExitWhy::Vanished) => Failure::Lost,
            _ => Failure::Exited,
        };
        let code = ending.exit.and_then(|e| e.code);
        self.end_run(
            run_id,
            code,
            failure,
            note,
            ending.usage,
            self.config.max_attempts,
        )
        .await;
        if ending.class == RunClass::Authentication {
            let adapter = ending.adapter;
            let said = ending.said.as_deref().unwrap_or("authentication failed");
            let why = format!("{adapter} could not authenticate (run {run_id}): {said}");
            let fix = sf_worker::adapters::auth_fix(adapter);
            let agent = ending.agent.clone();
            tracing::warn!(agent = %agent, %adapter, "the agent's CLI cannot authenticate; disabling the agent");
            if let Err(e) = self
                .store_call(move |s| s.disable_broken_agent(&agent, &why, Some(fix)))
                .await
            {
                tracing::error!(agent = %ending.agent, error = %e, "failed to disable an agent that cannot authenticate");
            }
        }
    }

    /// A run's output passed the log cap.
    pub(super) async fn log_truncated(
        &mut self,
        run_id: i64,
        dropped: u64,
        log: std::path::PathBuf,
    ) {
        let (cap, log) = (self.config.run_log_max, log.display().to_string());
        tracing::warn!(run_id, dropped, "a run's output passed the log cap");
        if let Err(e) = self
            .store_call(move |s| s.run_log_truncated(run_id, dropped, cap, &log))
            .await
        {
            tracing::error!(run_id, error = %e, "failed to record a truncated log");
        }
    }

    /// Records a connection through a run's egress proxy (a denied one is an event).
    pub(super) async fn egress(&mut self, c: crate::mailbox::EgressConnection) {
        let crate::mailbox::EgressConnection {
            run_id,
            host,
            port,
            rule,
            bytes,
            error,
            started_ms,
        } = c;
        if rule.is_none() {
            tracing::info!(run_id, %host, port, "egress denied");
        }
        if let Err(e) = self
            .store_call(move |s| {
                s.record_egress(
                    run_id,
                    &host,
                    port,
                    rule.as_deref(),
                    bytes,
                    error.as_deref(),
                    started_ms,
                )?;
                // a run whose CLI has no pre-call hook is recorded by what its proxy saw
                let agent = s.run_agent(run_id)?;
                let unguarded = s
                    .agent_spec(&agent)?
                    .is_some_and(|a| !sf_worker::adapters::guarded(a.adapter));
                if unguarded {
                    s.record_proxy_call(run_id, &host, port, rule.as_deref())?;
                }
                Ok::<(), sf_store::StoreError>(())
            })
            .await
        {
            tracing::error!(run_id, error = %e, "failed to record an egress connection");
        }
    }

    /// A session's turn ended: the run is recorded as a turn (nothing counted), the CLI
    /// session it reported is the next turn's. A turn stopped as stalled flags the session
    /// to the humans; the session goes on with the next message.
    async fn turn_ended(
        &mut self,
        run_id: i64,
        session: i64,
        w: &Worker,
        exit: Option<ExitInfo>,
        why: ExitWhy,
        usage: Option<sf_proto::RunUsage>,
    ) {
        let provider = usage.as_ref().and_then(|u| u.session_id.clone());
        let code = exit.and_then(|e| e.code);
        let note = match why {
            ExitWhy::Exited => String::new(),
            other => format!("the turn ended: {:?}", other.end_reason()),
        };
        let stalled = why == ExitWhy::Stalled;
        let max = self.config.max_attempts;
        self.end_run(run_id, code, Failure::TurnEnded, note, usage, max)
            .await;
        let agent = w.agent.clone();
        let r = self
            .store_call(move |s| {
                s.turn_ended(session, provider.as_deref())?;
                if stalled {
                    let why = format!(
                        "a turn of `{agent}`'s session showed no progress for stall_timeout and \
                         was stopped; the session waits for the next message"
                    );
                    s.flag_session(session, &why)?;
                    s.send_message(
                        "daemon",
                        sf_proto::NewMessage {
                            to: Some("human".into()),
                            subject: Some(format!("session of {agent} stalled")),
                            body: why,
                            kind: sf_proto::MessageType::StatusUpdate,
                            ..sf_proto::NewMessage::default()
                        },
                    )?;
                }
                Ok::<_, sf_store::StoreError>(())
            })
            .await;
        if let Ok((Err(e), _)) = r {
            tracing::error!(run_id, error = %e, "failed to record a session's turn");
        }
        // a message that came during the turn is the next turn's
        self.tick_due = true;
    }
}
