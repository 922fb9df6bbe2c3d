//! The owner: the one task through which every request and every daemon phase passes, in
//! order. It runs the phases on each tick and whenever a change wakes it, supervises worker
//! runs through messages from their tasks, and fans audit events out to followers. Slow work
//! (git, spawning, waiting on processes) runs in other tasks and reports back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sf_proto::{
    Adapter, AuditEvent, DaemonStatus, ErrorKind, ProtoError, Request, Response, RunSummary,
    StewardOutcome,
};
use sf_store::{AfterFailure, Failure, Lease, Store};
use sf_worker::process::ExitInfo;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::dispatch::Start;
use crate::mailbox::{Command, DaemonHandle, ExitWhy, Internal, PendingComplete};
use crate::store_thread::StoreHandle;
use crate::workers::Launch;

/// Capacity of the follower broadcast; a follower further behind receives `Lagged`.
const EVENT_BUFFER: usize = 4096;

fn internal(e: impl std::fmt::Display) -> Response {
    Response::Error(ProtoError::new(ErrorKind::Internal, e.to_string()))
}

/// A worker run the owner knows to be in flight.
#[derive(Debug)]
struct Worker {
    agent: String,
    adapter: Adapter,
    task: String,
    epoch: i64,
    worktree: Option<String>,
    log: Option<String>,
    stop: CancellationToken,
    completing: bool,
    kind: RunKind,
}

/// What a run in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunKind {
    /// An agent working on a task.
    Worker,
    /// A steward's run (no task of its own).
    Steward,
    /// A playbook shell step the daemon runs.
    Shell,
}

/// The end of a run that the store failed to record (a full disk, say). The run would
/// otherwise stay live, holding its agent and its task, until a restart: it is recorded
/// again at every tick until that works.
#[derive(Debug)]
enum UnrecordedEnd {
    Run {
        run_id: i64,
        code: Option<i32>,
        failure: Failure,
        note: String,
        usage: Option<sf_proto::RunUsage>,
        max: u32,
    },
    Steward {
        id: i64,
        outcome: StewardOutcome,
        result: String,
        code: Option<i32>,
    },
}

pub(crate) struct Owner {
    config: Arc<Config>,
    store: StoreHandle,
    rx: mpsc::Receiver<Command>,
    events: broadcast::Sender<AuditEvent>,
    cancel: CancellationToken,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    workers: HashMap<i64, Worker>,
    paused: HashMap<Adapter, chrono::DateTime<chrono::Utc>>,
    /// sfd ran out of descriptors, processes, memory or disk starting a run: nothing is
    /// dispatched until this time (the next tick), so a starved daemon does not spin.
    starved_until: Option<Instant>,
    /// When each steward's event triggers fired in the last minute (the rate limit).
    fires: HashMap<String, std::collections::VecDeque<Instant>>,
    /// When each steward was last refused by the rate limit (one event a minute).
    rate_limited: HashMap<String, Instant>,
    target: Option<String>,
    merging: Option<i64>,
    tick_due: bool,
    triggers: crate::steward::Triggers,
    triggers_dirty: bool,
    bus_pending: Vec<AuditEvent>,
    /// Tasks known to be ready, for `task_ready` events (kept only while a steward listens).
    ready_seen: Option<HashSet<String>>,
    started_at: chrono::DateTime<chrono::Utc>,
    ticks: u64,
    last_tick: Option<Duration>,
    /// Run ends to record again, and the last error that kept them from being recorded.
    unrecorded: Vec<UnrecordedEnd>,
    unrecorded_error: Option<String>,
    /// Work was let go of (a task closed, a run ended): a janitor pass is due.
    tidy_due: bool,
    /// A janitor pass is running; `tidy_due` set meanwhile runs another after it.
    tidying: bool,
    /// What start-up found of the previous daemon's runs, for `daemon status`.
    recovered: Option<String>,
}

impl Owner {
    pub(crate) fn new(
        config: Arc<Config>,
        store: StoreHandle,
        cancel: CancellationToken,
    ) -> (DaemonHandle, Self) {
        let (tx, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let handle = DaemonHandle {
            tx,
            events: events.clone(),
        };
        let owner = Self {
            config,
            store,
            rx,
            events,
            cancel,
            internal_tx,
            internal_rx,
            workers: HashMap::new(),
            paused: HashMap::new(),
            starved_until: None,
            fires: HashMap::new(),
            rate_limited: HashMap::new(),
            target: None,
            merging: None,
            tick_due: false,
            triggers: crate::steward::Triggers::default(),
            triggers_dirty: true,
            bus_pending: Vec::new(),
            ready_seen: None,
            started_at: chrono::Utc::now(),
            ticks: 0,
            last_tick: None,
            unrecorded: Vec::new(),
            unrecorded_error: None,
            tidy_due: false,
            tidying: false,
            recovered: None,
        };
        (handle, owner)
    }

    pub(crate) async fn run(mut self) {
        self.resolve_target().await;
        self.repair_repository().await;
        self.recover().await;
        crate::merge::prune_leftovers(&self.config).await;
        if let Err(e) = self.store_call(|s| s.requeue_interrupted_mrs()).await {
            tracing::error!(error = %e, "failed to requeue interrupted merge requests");
        }
        // what is left from before (work let go of while sfd was down), before any request
        if let Some(target) = self.target.clone() {
            let (config, store) = (self.config.clone(), self.store.clone());
            match crate::janitor::pass(config, store, target, false).await {
                Ok(lines) => self.on_internal(Internal::Tidied { lines }).await,
                Err(e) => {
                    tracing::warn!(error = %e, "clean-up failed");
                    false
                }
            };
        }
        let mut tick = tokio::time::interval(self.config.tick_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        self.process_bus().await;
        let mut pending = false;
        loop {
            let wake = tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                msg = self.internal_rx.recv() => match msg {
                    Some(m) => self.on_internal(m).await,
                    None => false,
                },
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.handle(cmd).await
                }
                _ = tick.tick() => {
                    self.tick_due = true;
                    true
                }
                () = sleep_until_utc(self.triggers.next_cron()) => {
                    self.fire_due_crons().await;
                    true
                }
            };
            if !self.bus_pending.is_empty() || self.triggers_dirty {
                self.process_bus().await;
            }
            if self.tidy_due && !self.tidying {
                self.tidy();
            }
            if tick.period() != self.config.tick_interval {
                // a reload changed it
                tick = tokio::time::interval(self.config.tick_interval);
                tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            }
            // coalesce a burst: run the phases once the queues are drained
            pending |= wake;
            if pending && self.rx.is_empty() && self.internal_rx.is_empty() {
                pending = false;
                self.phases().await;
            }
        }
        tracing::debug!(
            workers = self.workers.len(),
            "owner stopped; workers keep running and are adopted on restart"
        );
    }

    /// Runs `f` on the store thread, fans out the events it committed, and reports whether
    /// it committed any.
    async fn store_call<R, F>(&mut self, f: F) -> Result<(R, bool), crate::store_thread::StoreGone>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> R + Send + 'static,
    {
        let (r, events) = self
            .store
            .call(move |s| (f(s), s.take_new_events()))
            .await?;
        let changed = !events.is_empty();
        for e in events {
            self.stop_if_taken_away(&e);
            // a merge steward registered or enabled: waiting requests are looked at now,
            // not at the next tick
            if crate::steward::touches_triggers(&e) {
                self.tick_due = true;
            }
            self.tidy_due |= crate::janitor::lets_go(&e);
            let _ = self.events.send(e.clone());
            self.bus_pending.push(e);
        }
        Ok((r, changed))
    }

    /// Starts a janitor pass in the background; it reports back with `Internal::Tidied`.
    fn tidy(&mut self) {
        self.tidy_due = false;
        self.tidying = true;
        let (config, store, tx) = (
            self.config.clone(),
            self.store.clone(),
            self.internal_tx.clone(),
        );
        let target = self.target.clone();
        tokio::spawn(async move {
            let lines = match target {
                Some(t) => crate::janitor::pass(config, store, t, false)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "clean-up failed");
                        Vec::new()
                    }),
                None => Vec::new(),
            };
            let _ = tx.send(Internal::Tidied { lines });
        });
    }

    /// A task moved out of `in_progress` by someone else (closed or blocked by hand) must
    /// not keep a worker: stop it. Its work is saved to a WIP ref as for any stopped run,
    /// and the run ends without touching the task (invariant 4: one live worker per task,
    /// even after a reopen).
    fn stop_if_taken_away(&self, e: &AuditEvent) {
        let from = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .and_then(|v| v.get("status"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        if e.action != "task_status_changed"
            || from(&e.before).as_deref() != Some("in_progress")
            || from(&e.after).as_deref() == Some("in_progress")
        {
            return;
        }
        let Some(task) = &e.task else { return };
        for (run, w) in &self.workers {
            if w.kind != RunKind::Steward && !w.completing && w.task == task.as_str() {
                tracing::info!(run, task = %task, agent = %w.agent, "task moved out of in_progress: stopping its worker");
                w.stop.cancel();
            }
        }
    }

    async fn resolve_target(&mut self) {
        let root = self.config.paths.root.clone();
        let configured = self.config.target_branch.clone();
        match tokio::task::spawn_blocking(move || {
            sf_git::target_branch(&root, configured.as_deref())
        })
        .await
        {
            Ok(Ok(t)) => {
                tracing::info!(target = %t, "target branch");
                self.target = Some(t);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no target branch yet; dispatch waits for one");
            }
            Err(e) => tracing::error!(error = %e, "target branch lookup failed"),
        }
    }

    /// On start-up: repairs what operations killed with the previous daemon left in the
    /// repository (half-made worktrees, stale locks, the user's checkout of the target half
    /// brought along), before anything else touches git.
    async fn repair_repository(&mut self) {
        let (root, dir, target) = (
            self.config.paths.root.clone(),
            self.config.paths.dir.clone(),
            self.target.clone(),
        );
        let repaired = tokio::task::spawn_blocking(move || {
            let mut out = sf_git::locks::repair_workspace(&root, &dir, target.as_deref())?;
            if let Some(t) = &target {
                out.extend(crate::merge::describe_checkout_repair(
                    sf_git::merge::repair_checkout(&root, t)?,
                    t,
                ));
            }
            Ok::<_, sf_git::GitError>(out)
        })
        .await;
        match repaired {
            Ok(Ok(lines)) => crate::workers::report_repairs(&self.internal_tx, None, lines),
            Ok(Err(e)) => tracing::error!(
                error = %crate::errors::error_chain(&e),
                "failed to repair what a killed daemon left in the repository"
            ),
            Err(e) => tracing::error!(error = %e, "repository repair failed"),
        }
    }

    /// Handles one command; returns whether it changed state.
    async fn handle(&mut self, cmd: Command) -> bool {
        let Command {
            actor,
            request,
            reply,
        } = cmd;
        let merging = self.merging;
        let response = match request {
            Request::Status => {
                let _ = reply.send(self.status().await);
                return false;
            }
            Request::Shutdown => {
                self.cancel.cancel();
                Response::Ok {
                    message: "sfd is shutting down".into(),
                }
            }
            Request::CompleteTask {
                token,
                summary,
                no_changes,
            } => {
                return self.complete(token, summary, no_changes, reply).await;
            }
            Request::HandoffTask { token, note } => self.handoff(token, note).await,
            Request::StartAgent { name, task } => self.start_agent(name, task).await,
            Request::StopAgent { name } => self.stop_agent(&actor, name).await,
            Request::ListPlaybooks => {
                let config = self.config.clone();
                match tokio::task::spawn_blocking(move || crate::playbooks::load_all(&config)).await
                {
                    Ok(Ok(all)) => {
                        Response::Playbooks(all.values().map(crate::playbooks::info).collect())
                    }
                    Ok(Err(e)) => Response::Error(e),
                    Err(e) => internal(e),
                }
            }
            Request::ShowPlaybook { name } => {
                let config = self.config.clone();
                match tokio::task::spawn_blocking(move || crate::playbooks::find(&config, &name))
                    .await
                {
                    Ok(Ok(pb)) => Response::Playbook(crate::playbooks::info(&pb)),
                    Ok(Err(e)) => Response::Error(e),
                    Err(e) => internal(e),
                }
            }
            Request::ValidatePlaybook { source, text } => {
                match sf_core::playbook::Playbook::parse(&text, &source) {
                    Ok(pb) => Response::Playbook(crate::playbooks::info(&pb)),
                    Err(e) => {
                        Response::Error(ProtoError::new(ErrorKind::InvalidInput, e.to_string()))
                    }
                }
            }
            Request::RunPlaybook { name, vars } => self.run_playbook(&actor, &name, &vars).await,
            Request::RegisterAgent { spec }
                if spec.playbook.is_some() || !spec.secrets.is_empty() =>
            {
                match self.check_registration(&spec).await {
                    Ok(()) => match self
                        .store_call(move |s| {
                            crate::requests::handle(s, &actor, Request::RegisterAgent { spec })
                        })
                        .await
                    {
                        Ok((r, changed)) => {
                            let _ = reply.send(r);
                            return changed;
                        }
                        Err(e) => internal(e),
                    },
                    Err(e) => Response::Error(e),
                }
            }
            Request::RunSteward { name, data } => {
                let data = serde_json::to_value(&data).unwrap_or_default();
                self.fire_steward(&actor, &name, "manual".into(), data)
                    .await
            }
            Request::Merge {
                branch,
                into,
                message,
            } => self.merge_branch(&actor, branch, into, message).await,
            Request::Gc { dry_run } => self.gc(&actor, dry_run).await,
            Request::ReloadConfig => self.reload(&actor).await,
            request => match self
                .store_call(move |s| {
                    // a task whose request is in the merge pipeline (picked, not yet testing)
                    // keeps its status until the merge ends
                    let busy = match (merging, &request) {
                        (Some(mr), Request::ChangeTaskStatus { id, .. }) => {
                            matches!(s.mr_is_of_task(mr, id), Ok(true))
                                .then(|| (mr, format!("task {id}")))
                        }
                        (Some(mr), Request::CancelMergeRequest { id }) if *id == mr => {
                            Some((mr, format!("merge request #{mr}")))
                        }
                        _ => None,
                    };
                    if let Some((mr, what)) = busy {
                        return Response::Error(
                            ProtoError::new(
                                ErrorKind::InvalidState,
                                format!("{what} is being merged (merge request #{mr})"),
                            )
                            .with_hint(format!(
                                "wait for its result (`sfctl mr show {mr}`), then try again"
                            )),
                        );
                    }
                    crate::requests::handle(s, &actor, request)
                })
                .await
            {
                Ok((r, changed)) => {
                    let _ = reply.send(r);
                    return changed;
                }
                Err(e) => internal(e),
            },
        };
        let changed = !matches!(response, Response::Error(_));
        let _ = reply.send(response);
        changed
    }

    /// The phases of a tick: timers and deferrals that came due, then dispatch.
    async fn phases(&mut self) {
        let start = Instant::now();
        // an empty repository gets its first commit while sfd runs: look again at ticks
        if self.target.is_none() && self.tick_due {
            self.resolve_target().await;
        }
        if self.tick_due {
            self.record_unrecorded().await;
        }
        let now = chrono::Utc::now();
        self.paused.retain(|_, until| *until > now);
        let capacity = (self.config.max_workers as usize).saturating_sub(self.workers.len());
        let paused: HashSet<Adapter> = self.paused.keys().copied().collect();
        self.starved_until = self.starved_until.filter(|t| *t > Instant::now());
        let can_dispatch = self.target.is_some() && self.starved_until.is_none();
        let result = self
            .store_call(move |s| {
                let now = sf_store::now_ms();
                s.satisfy_due_timers(now)?;
                s.expire_deferrals(now)?;
                if can_dispatch {
                    crate::dispatch::dispatch(s, capacity, &paused)
                } else {
                    Ok(Vec::new())
                }
            })
            .await;
        match result {
            Ok((Ok(starts), _)) => {
                for s in starts {
                    self.launch(s);
                }
            }
            Ok((Err(e), _)) => tracing::error!(error = ?e, "tick failed"),
            Err(e) => tracing::error!(error = %e, "tick failed"),
        }
        self.merge_phase().await;
        self.ticks += 1;
        self.last_tick = Some(start.elapsed());
    }

    fn launch(&mut self, s: Start) {
        let Some(target) = self.target.clone() else {
            return;
        };
        let stop = CancellationToken::new();
        self.workers.insert(
            s.claim.run_id,
            Worker {
                agent: s.claim.agent.clone(),
                adapter: s.agent.adapter,
                task: s.claim.task_id.to_string(),
                epoch: s.claim.epoch,
                worktree: Some(s.claim.worktree.clone()),
                log: None,
                stop: stop.clone(),
                completing: false,
                kind: if s.shell.is_some() {
                    RunKind::Shell
                } else {
                    RunKind::Worker
                },
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
        }));
    }

    /// Runs the store marks live after a restart: adopt the ones still running, reap the rest.
    async fn recover(&mut self) {
        let runs = match self.store.call(|s| s.live_runs()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return tracing::error!(error = ?e, "failed to read live runs"),
            Err(e) => return tracing::error!(error = %e, "failed to read live runs"),
        };
        let agents: HashMap<String, sf_proto::AgentSpec> =
            match self.store.call(|s| s.list_agents()).await {
                Ok(Ok(a)) => a
                    .into_iter()
                    .map(|a| (a.spec.name.clone(), a.spec))
                    .collect(),
                _ => HashMap::new(),
            };
        let adapters: HashMap<String, Adapter> =
            agents.iter().map(|(n, s)| (n.clone(), s.adapter)).collect();
        let (mut adopted, mut reaped) = (0_usize, 0_usize);
        for mut run in runs {
            if run.pid.is_none()
                && let Some((pid, start)) = sf_worker::process::find_by_env("SF_RUN", &run.token)
            {
                // spawned, but the daemon died before it wrote the pid down
                let task = run.task.as_ref().map_or("", |(_, id)| id.as_str());
                let log = crate::workers::log_path(&self.config, task, run.run_id)
                    .display()
                    .to_string();
                let (id, log2) = (run.run_id, log.clone());
                let _ = self
                    .store
                    .call(move |s| s.record_spawn(id, pid, start, &log2))
                    .await;
                run.pid = Some(pid);
                run.proc_start = start;
                run.log_path = Some(log);
            }
            let alive = run
                .pid
                .is_some_and(|p| sf_worker::process::is_same_process(p, run.proc_start));
            // the dead daemon's log copier goes on (or, the process being gone, finishes
            // the log's tail) before anything reads the log
            let capture = run.log_path.as_ref().and_then(|l| {
                sf_worker::log::resume(
                    std::path::Path::new(l),
                    sf_worker::log::LogCap::new(self.config.run_log_max),
                )
            });
            if !alive && let Some(c) = capture.clone() {
                let (tx, run_id) = (self.internal_tx.clone(), run.run_id);
                let log = run.log_path.clone().unwrap_or_default().into();
                tokio::spawn(async move {
                    if let Some(r) = c.finished().await
                        && r.dropped > 0
                    {
                        let _ = tx.send(Internal::LogTruncated {
                            run_id,
                            dropped: r.dropped,
                            log,
                        });
                    }
                });
            }
            if !alive {
                reaped += 1;
                let detail = if run.pid.is_some() {
                    "its process was gone when the daemon restarted; its work is saved"
                } else {
                    "the daemon stopped before its process was started"
                };
                self.record_recovery(&run, false, detail).await;
            }
            if run.task.is_none() && !alive {
                let outcome = if run.pid.is_some() {
                    StewardOutcome::Crashed
                } else {
                    StewardOutcome::Interrupted
                };
                self.end_steward(
                    run.run_id,
                    outcome,
                    "the daemon restarted and its process was gone",
                    None,
                )
                .await;
                continue;
            }
            let recovering = agents
                .get(&run.agent)
                .is_some_and(|a| a.focus == Some(sf_proto::Focus::Recovery));
            let task = match &run.task {
                Some((_, id)) => id.to_string(),
                // a recovery steward still answers for its stuck task after a restart
                None if recovering => run
                    .data
                    .as_ref()
                    .and_then(|d| d.get("task"))
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                None => String::new(),
            };
            let adapter = adapters
                .get(&run.agent)
                .copied()
                .unwrap_or(Adapter::Command);
            if alive {
                let pid = run.pid.unwrap_or_default();
                tracing::info!(run_id = run.run_id, pid, %task, "adopting a worker that outlived the daemon");
                adopted += 1;
                let detail = format!("its process (pid {pid}) outlived the daemon and goes on");
                self.record_recovery(&run, true, &detail).await;
                let stop = CancellationToken::new();
                self.workers.insert(
                    run.run_id,
                    Worker {
                        agent: run.agent.clone(),
                        adapter,
                        task: task.clone(),
                        epoch: run.epoch,
                        worktree: run.worktree.clone(),
                        log: run.log_path.clone(),
                        stop: stop.clone(),
                        completing: false,
                        kind: if run.task.is_none() {
                            RunKind::Steward
                        } else {
                            RunKind::Worker
                        },
                    },
                );
                if run.task.is_some() && !run.released && !run.holds_task {
                    // its task was taken away (closed by hand) just before the daemon went
                    // down: the worker must not go on
                    tracing::info!(run_id = run.run_id, %task, "stopping an adopted worker whose task was taken away");
                    stop.cancel();
                }
                tokio::spawn(watch_adopted(
                    run.run_id,
                    pid,
                    run.proc_start,
                    stop,
                    self.config.stop_grace,
                    adapter,
                    (run.log_path.clone(), capture),
                    self.internal_tx.clone(),
                ));
            } else if run.released || run.pid.is_none() {
                let failure = if run.released {
                    Failure::Exited
                } else {
                    Failure::Interrupted
                };
                let note = "the daemon stopped before this run's worker was started".to_owned();
                let id = run.run_id;
                let max = self.config.max_attempts;
                let _ = self
                    .store_call(move |s| s.run_ended(id, None, failure, &note, None, max))
                    .await;
            } else {
                tracing::info!(run_id = run.run_id, %task, "worker died while the daemon was down; saving its work");
                crate::workers::save_work(
                    self.config.clone(),
                    (run.run_id, task, run.epoch, run.worktree, run.log_path),
                    None,
                    ExitWhy::Vanished,
                    None,
                    self.internal_tx.clone(),
                );
            }
        }
        if adopted + reaped > 0 {
            let summary = format!(
                "at start: adopted {adopted} worker(s) that outlived the previous daemon; {reaped} run(s) had ended (their work saved)"
            );
            tracing::info!("{summary}");
            self.recovered = Some(summary);
        }
    }

    /// Records a run the previous daemon left: adopted, or found gone.
    async fn record_recovery(&mut self, run: &sf_store::LiveRun, adopted: bool, detail: &str) {
        let (id, agent, task, detail) = (
            run.run_id,
            run.agent.clone(),
            run.task.clone(),
            detail.to_owned(),
        );
        let r = self
            .store_call(move |s| s.record_recovery(id, &agent, task.as_ref(), adopted, &detail))
            .await;
        if !matches!(r, Ok((Ok(()), _))) {
            tracing::error!(run_id = id, "failed to record a recovered run");
        }
    }

    async fn on_internal(&mut self, msg: Internal) -> bool {
        match msg {
            Internal::Tidied { lines } => {
                self.tidying = false;
                if lines.is_empty() {
                    return false;
                }
                match self
                    .store_call(move |s| s.record_cleanup("daemon", &lines))
                    .await
                {
                    Ok((Ok(()), _)) => {}
                    Ok((Err(e), _)) => tracing::error!(error = ?e, "failed to record a clean-up"),
                    Err(e) => tracing::error!(error = %e, "failed to record a clean-up"),
                }
                false
            }
            Internal::Repaired { task, repaired } => {
                match self
                    .store_call(move |s| s.record_repair(task.as_ref(), &repaired))
                    .await
                {
                    Ok((Ok(()), changed)) => changed,
                    Ok((Err(e), _)) => {
                        tracing::error!(error = ?e, "failed to record a repair");
                        false
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "failed to record a repair");
                        false
                    }
                }
            }
            Internal::Spawned {
                run_id,
                pid,
                start_time,
                log_path,
            } => {
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
                false
            }
            Internal::SpawnFailed {
                run_id,
                error,
                agent_fault,
            } => {
                let worker = self.workers.remove(&run_id);
                if worker.as_ref().is_some_and(|w| w.kind == RunKind::Steward) {
                    self.end_steward(
                        run_id,
                        StewardOutcome::Failed,
                        &format!("could not start: {error}"),
                        None,
                    )
                    .await;
                    return true;
                }
                let max = self.config.max_attempts;
                let note = format!("the worker could not be started: {error}");
                if agent_fault && let Some(w) = worker {
                    // the agent's command cannot run: the task is not to blame, the agent
                    // is taken out of dispatch until a human fixes and enables it
                    self.end_run(run_id, None, Failure::AgentBroken, note, None, max)
                        .await;
                    let (agent, why) = (w.agent.clone(), format!("could not start: {error}"));
                    if let Err(e) = self
                        .store_call(move |s| s.disable_broken_agent(&agent, &why))
                        .await
                    {
                        tracing::error!(agent = %w.agent, error = %e, "failed to disable a broken agent");
                    }
                    return true;
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
                true
            }
            Internal::Exited {
                run_id,
                exit,
                why,
                usage,
                usage_limit_until,
            } => {
                let Some(w) = self.workers.remove(&run_id) else {
                    return false;
                };
                if w.kind == RunKind::Shell {
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
                                    sf_worker::process::tail_lines(std::path::Path::new(&l), 40)
                                        .join("\n")
                                })
                                .unwrap_or_default();
                            s.shell_step_finished(run_id, success, &summary, &tail)
                        })
                        .await
                    {
                        tracing::error!(run_id, error = %e, "failed to record a shell step");
                    }
                    return true;
                }
                if w.kind == RunKind::Steward {
                    let code = exit.and_then(|e| e.code);
                    let (outcome, result) = match (why, code) {
                        (ExitWhy::Exited, Some(0)) => (StewardOutcome::Ok, "exited 0".to_owned()),
                        (ExitWhy::TimedOut, _) => (
                            StewardOutcome::TimedOut,
                            "stopped at its wall-time limit".to_owned(),
                        ),
                        (ExitWhy::Stopped, _) => (StewardOutcome::Stopped, "stopped".to_owned()),
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
                    return true;
                }
                if let Some(until) = usage_limit_until {
                    tracing::warn!(adapter = %w.adapter, %until, "usage limit reported; pausing dispatch to this adapter");
                    self.paused.insert(w.adapter, until);
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
                    let why = if usage_limit_until.is_some() {
                        ExitWhy::UsageLimited
                    } else {
                        why
                    };
                    crate::workers::save_work(
                        self.config.clone(),
                        (run_id, w.task, w.epoch, w.worktree, w.log),
                        exit,
                        why,
                        usage,
                        self.internal_tx.clone(),
                    );
                }
                true
            }
            Internal::Saved {
                run_id,
                exit,
                why,
                note,
                usage,
            } => {
                let failure = match why {
                    ExitWhy::Exited => Failure::Exited,
                    ExitWhy::TimedOut => Failure::TimedOut,
                    ExitWhy::Stopped => Failure::Stopped,
                    ExitWhy::Vanished => Failure::Lost,
                    ExitWhy::UsageLimited => Failure::UsageLimited,
                };
                let code = exit.and_then(|e| e.code);
                self.end_run(run_id, code, failure, note, usage, self.config.max_attempts)
                    .await;
                true
            }
            Internal::CompletePrepared(p) => self.finish_complete(*p).await,
            Internal::MergeDone { id, outcome } => {
                self.merging = None;
                // a request that could not proceed is looked at again at the next tick
                let progressed = !matches!(
                    outcome,
                    crate::mailbox::MergeOutcome::CheckoutDirty { .. }
                        | crate::mailbox::MergeOutcome::Error(_)
                );
                self.merge_done(id, outcome).await;
                progressed
            }
            Internal::LogTruncated {
                run_id,
                dropped,
                log,
            } => {
                let (cap, log) = (self.config.run_log_max, log.display().to_string());
                tracing::warn!(run_id, dropped, "a run's output passed the log cap");
                if let Err(e) = self
                    .store_call(move |s| s.run_log_truncated(run_id, dropped, cap, &log))
                    .await
                {
                    tracing::error!(run_id, error = %e, "failed to record a truncated log");
                }
                false
            }
            Internal::MergeTesting { id, log } => {
                let log = log.display().to_string();
                if let Err(e) = self
                    .store_call(move |s| {
                        s.set_mr_state(id, sf_proto::MergeState::Testing, None, Some(&log))
                    })
                    .await
                {
                    tracing::error!(mr = id, error = %e, "failed to record a merge test run");
                }
                false
            }
        }
    }

    /// Turns pending audit events into bus events and fires the stewards they trigger;
    /// reloads the triggers when agents changed.
    async fn process_bus(&mut self) {
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
    async fn fire_allowed(&mut self, steward: &str) -> bool {
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

    async fn fire_due_crons(&mut self) {
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
    async fn fire_steward(
        &mut self,
        actor: &str,
        name: &str,
        trigger: String,
        data: serde_json::Value,
    ) -> Response {
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

    async fn start_steward(
        &mut self,
        info: sf_proto::StewardRunInfo,
        token: String,
        spec: sf_proto::AgentSpec,
    ) {
        let id = info.id;
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
                task: recovering,
                epoch: 0,
                worktree: None,
                log: None,
                stop: stop.clone(),
                completing: false,
                kind: RunKind::Steward,
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
        }));
    }

    /// What registration checks against the workspace rather than the store: secret aliases
    /// must be defined in `[secrets]`, a custom steward's playbook must exist.
    async fn check_registration(&self, spec: &sf_proto::AgentSpec) -> Result<(), ProtoError> {
        if let Some(alias) = spec
            .secrets
            .iter()
            .find(|a| !self.config.secrets.contains_key(*a))
        {
            let known: Vec<&str> = self.config.secrets.keys().map(String::as_str).collect();
            return Err(ProtoError::new(
                ErrorKind::InvalidInput,
                format!("no secret `{alias}` in [secrets] of .sf/config.toml"),
            )
            .with_hint(if known.is_empty() {
                format!("define it first, e.g. `{alias} = \"env:{alias}\"` under [secrets], then restart sfd")
            } else {
                format!("defined aliases: {}", known.join(", "))
            }));
        }
        if let Some(name) = spec.playbook.clone() {
            let config = self.config.clone();
            match tokio::task::spawn_blocking(move || crate::playbooks::find(&config, &name)).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(ProtoError::new(ErrorKind::Internal, e.to_string())),
            }
        }
        Ok(())
    }

    /// Instantiates a playbook into a workflow (an active plan) in one transaction.
    async fn run_playbook(
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
    async fn stuck_task(&self, data: &serde_json::Value) -> Option<Box<sf_proto::TaskDetail>> {
        let task = data.get("task").and_then(|t| t.as_str())?.to_owned();
        match self.store.call(move |s| s.show_task(&task)).await {
            Ok(Ok(t)) => Some(Box::new(t)),
            _ => None,
        }
    }

    /// A recovery run must end with exactly one of: the stuck task completed (in review or
    /// closed), handed back to the pool with a note, or deferred with a message to the
    /// director. Anything else is a failed recovery.
    async fn check_recovery(
        &self,
        run_id: i64,
        steward: &str,
        task: &str,
    ) -> (StewardOutcome, String) {
        use sf_proto::TaskStatus as S;
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
        let id = &d.task.id;
        let noted = d.notes.iter().any(|n| n.author == author && n.at >= since);
        match d.task.status {
            S::Review | S::Closed => (
                StewardOutcome::Ok,
                format!("task {id} completed (now {})", d.task.status),
            ),
            S::Open | S::InProgress if noted => (
                StewardOutcome::Ok,
                format!("task {id} handed back with a note"),
            ),
            S::Open | S::InProgress => (
                StewardOutcome::Failed,
                format!("task {id} was handed back without a note for the next worker"),
            ),
            S::Deferred | S::Backlog if told => (
                StewardOutcome::Ok,
                format!("task {id} deferred with a message to the director"),
            ),
            S::Deferred | S::Backlog => (
                StewardOutcome::Failed,
                format!("task {id} was deferred without a message to the director"),
            ),
            _ => (
                StewardOutcome::Failed,
                format!("ended without completing, handing off or deferring task {id}"),
            ),
        }
    }

    async fn end_steward(
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

    /// Records again the run ends the store failed to record.
    async fn record_unrecorded(&mut self) {
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

    /// Starts the next merge request if none is running and a merge steward is enabled.
    async fn merge_phase(&mut self) {
        if self.merging.is_some() {
            return;
        }
        // requests waiting on the user's checkout are re-checked on ticks, not on every wake
        let recheck_waiting = std::mem::take(&mut self.tick_due);
        let require_approval = self.config.merge_require_approval;
        let has_tests = self.config.merge_test_command.is_some();
        let picked = self
            .store_call(move |s| -> Result<Option<sf_store::MergeJob>, sf_store::StoreError> {
                let stewards: Vec<(String, bool)> = s
                    .list_agents()?
                    .into_iter()
                    .filter(|a| a.spec.role == sf_proto::Role::Steward && a.spec.focus == Some(sf_proto::Focus::Merge))
                    .map(|a| (a.spec.name, a.enabled))
                    .collect();
                let steward = stewards.iter().any(|(_, enabled)| *enabled);
                loop {
                    let Some(job) = s.next_mr(recheck_waiting)? else { return Ok(None) };
                    let wait = |why: &str| Some(why.to_owned());
                    let reason = if let (false, Some((name, _))) = (steward, stewards.first()) {
                        Some(format!("the merge steward `{name}` is disabled: enable it with `sfctl agent enable {name}`"))
                    } else if !steward {
                        wait("no merge steward: register one with `sfctl agent register NAME --role steward --focus merge`")
                    } else if !has_tests {
                        wait("no test command: set [merge] test_command in .sf/config.toml, then apply it with `sfctl daemon reload`")
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        if job.info.reason.as_deref() != Some(reason.as_str()) {
                            s.set_mr_state(job.info.id, sf_proto::MergeState::Waiting, Some(&reason), None)?;
                        }
                        return Ok(None);
                    }
                    if require_approval && job.info.approved_by.is_none() {
                        s.set_mr_state(job.info.id, sf_proto::MergeState::AwaitingApproval, Some("waiting for `sfctl mr approve`"), None)?;
                        continue;
                    }
                    return Ok(Some(job));
                }
            })
            .await;
        match picked {
            Ok((Ok(Some(job)), _)) => {
                self.merging = Some(job.info.id);
                tokio::spawn(crate::merge::run(
                    self.config.clone(),
                    job,
                    self.internal_tx.clone(),
                ));
            }
            Ok((Ok(None), _)) => {}
            Ok((Err(e), _)) => tracing::error!(error = ?e, "merge phase failed"),
            Err(e) => tracing::error!(error = %e, "merge phase failed"),
        }
    }

    /// `sfctl daemon reload`: reads the configuration file again and, if it is valid,
    /// applies it to what starts from now on (runs, merges, stewards, ticks); runs in flight
    /// keep the settings they started with. An invalid file changes nothing.
    async fn reload(&mut self, actor: &str) -> Response {
        let root = self.config.paths.root.clone();
        let loaded = match tokio::task::spawn_blocking(move || Config::load(&root)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Response::Error(
                    ProtoError::new(
                        ErrorKind::InvalidInput,
                        format!("{e:#}"),
                    )
                    .with_hint("fix .sf/config.toml (check it with `sfctl daemon check`); the daemon goes on with the configuration it had"),
                );
            }
            Err(e) => return internal(e),
        };
        let mut new = loaded;
        // where sfd listens was set when it started (`--socket` included)
        new.socket.clone_from(&self.config.socket);
        let (applied, restart) = new.changes_from(&self.config);
        if applied.is_empty() && restart.is_empty() {
            return Response::Ok {
                message: "configuration unchanged".into(),
            };
        }
        let target_changed = applied.contains(&"target_branch");
        self.config = Arc::new(new);
        if target_changed {
            self.resolve_target().await;
        }
        self.tick_due = true;
        let (actor, a, r) = (
            actor.to_owned(),
            applied.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>(),
            restart.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>(),
        );
        let (a2, r2) = (a.clone(), r.clone());
        if let Err(e) = self
            .store_call(move |s| s.record_config_reload(&actor, &a2, &r2))
            .await
        {
            tracing::error!(error = %e, "failed to record a reload");
        }
        let mut message = if a.is_empty() {
            "configuration reloaded; nothing of it applies before a restart".to_owned()
        } else {
            format!("configuration reloaded; in effect now: {}", a.join(", "))
        };
        if !r.is_empty() {
            message.push_str(&format!(
                "; {} apply at the next `sfctl daemon restart`",
                r.join(", ")
            ));
        }
        Response::Ok { message }
    }

    /// `sfctl gc`: a janitor pass now, or with `dry_run` what it would do.
    async fn gc(&mut self, actor: &str, dry_run: bool) -> Response {
        let Some(target) = self.target.clone() else {
            return Response::Error(
                ProtoError::new(
                    ErrorKind::InvalidState,
                    "no target branch yet: nothing can be told merged or not",
                )
                .with_hint("make a first commit on the branch sf merges into"),
            );
        };
        let (config, store) = (self.config.clone(), self.store.clone());
        match crate::janitor::pass(config, store, target, dry_run).await {
            Ok(actions) => {
                if !dry_run && !actions.is_empty() {
                    let (actor, lines) = (actor.to_owned(), actions.clone());
                    if let Err(e) = self
                        .store_call(move |s| s.record_cleanup(&actor, &lines))
                        .await
                    {
                        tracing::error!(error = %e, "failed to record a clean-up");
                    }
                }
                Response::Cleaned(sf_proto::GcReport { dry_run, actions })
            }
            Err(e) => Response::Error(ProtoError::new(ErrorKind::Internal, e)),
        }
    }

    async fn merge_done(&mut self, id: i64, outcome: crate::mailbox::MergeOutcome) {
        use crate::mailbox::MergeOutcome as O;
        use sf_proto::MergeState;
        let max_rounds = self.config.max_attempts;
        let r = self
            .store_call(move |s| -> Result<(), sf_store::StoreError> {
                match outcome {
                    O::Merged { commit, .. } => {
                        s.mr_merged(id, &commit, "tests passed; merged")?;
                    }
                    O::NothingToMerge => {
                        s.mr_merged(id, "", "nothing to merge")?;
                    }
                    O::TestsFailed { tail, result, tip } => {
                        s.mr_failed(id, sf_store::MergeFailure::Tests, &tail, &result, max_rounds, Some(&tip))?;
                    }
                    O::Conflict { paths, tip } => {
                        let detail = paths.iter().map(|p| format!("- {p}")).collect::<Vec<_>>().join("\n");
                        s.mr_failed(id, sf_store::MergeFailure::Conflict, &detail, &format!("conflicts in {}", paths.join(", ")), max_rounds, tip.as_deref())?;
                    }
                    O::CheckoutDirty { paths } => {
                        let shown: Vec<_> = paths.iter().take(5).cloned().collect();
                        let reason = format!(
                            "checkout of the target has local changes ({}); commit or stash them and the merge goes on",
                            shown.join(", ")
                        );
                        s.set_mr_state(id, MergeState::Waiting, Some(&reason), None)?;
                    }
                    O::Error(e) => {
                        s.set_mr_state(id, MergeState::Waiting, Some(&e), None)?;
                    }
                }
                Ok(())
            })
            .await;
        match r {
            Ok((Err(e), _)) => {
                tracing::error!(mr = id, error = ?e, "failed to record a merge outcome");
            }
            Err(e) => tracing::error!(mr = id, error = %e, "failed to record a merge outcome"),
            Ok(_) => {}
        }
    }

    async fn merge_branch(
        &mut self,
        actor: &str,
        branch: String,
        into: Option<String>,
        message: Option<String>,
    ) -> Response {
        let Some(target) = into.or_else(|| self.target.clone()) else {
            return Response::Error(
                ProtoError::new(ErrorKind::InvalidState, "no target branch")
                    .with_hint("pass --into BRANCH"),
            );
        };
        if branch == target {
            return Response::Error(ProtoError::new(
                ErrorKind::InvalidInput,
                format!("cannot merge `{branch}` into itself"),
            ));
        }
        let (root, b, t) = (
            self.config.paths.root.clone(),
            branch.clone(),
            target.clone(),
        );
        match tokio::task::spawn_blocking(move || sf_git::commits_ahead(&root, &b, &t)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Response::Error(
                    ProtoError::new(ErrorKind::NotFound, crate::errors::error_chain(&e)).with_hint(
                        "name an existing local branch with --branch, and its target with --into",
                    ),
                );
            }
            Err(e) => return internal(e),
        }
        let actor = actor.to_owned();
        match self
            .store_call(move |s| s.create_branch_mr(&actor, &branch, &target, message.as_deref()))
            .await
        {
            Ok((Ok(mr), _)) => Response::MergeRequest(mr),
            Ok((Err(e), _)) => Response::Error(e.into()),
            Err(e) => internal(e),
        }
    }

    async fn end_run(
        &mut self,
        run_id: i64,
        code: Option<i32>,
        failure: Failure,
        note: String,
        usage: Option<sf_proto::RunUsage>,
        max: u32,
    ) {
        let (note2, usage2) = (note.clone(), usage.clone());
        // a run of a task closed meanwhile held its worktree until now
        self.tidy_due = true;
        let error = match self
            .store_call(move |s| s.run_ended(run_id, code, failure, &note, usage.as_ref(), max))
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

    async fn lease(&self, token: String) -> Result<Lease, Response> {
        match self.store.call(move |s| s.check_lease(&token)).await {
            Ok(Ok(l)) => Ok(l),
            Ok(Err(e)) => Err(Response::Error(e.into())),
            Err(e) => Err(internal(e)),
        }
    }

    async fn complete(
        &mut self,
        token: String,
        summary: Option<String>,
        no_changes: bool,
        reply: oneshot::Sender<Response>,
    ) -> bool {
        let lease = match self.lease(token).await {
            Ok(l) => l,
            Err(r) => {
                let _ = reply.send(r);
                return false;
            }
        };
        let Some(target) = self.target.clone() else {
            let _ = reply.send(internal("no target branch"));
            return false;
        };
        if let Some(w) = self.workers.get_mut(&lease.run_id) {
            if w.completing {
                let _ = reply.send(Response::Error(ProtoError::new(
                    ErrorKind::InvalidState,
                    "this run is already completing",
                )));
                return false;
            }
            w.completing = true;
        }
        let root = self.config.paths.root.clone();
        let wt = crate::workers::worktree_path(&self.config, &lease.worktree);
        let tx = self.internal_tx.clone();
        let task_id = lease.task_id.clone();
        let fix_base = match self.store.call(move |s| s.fix_base(&task_id)).await {
            Ok(Ok(base)) => base,
            _ => None,
        };
        tokio::spawn(async move {
            let (branch, agent, task) = (
                lease.branch.clone(),
                lease.agent.clone(),
                lease.task_id.to_string(),
            );
            let tx2 = tx.clone();
            let (root2, branch2) = (root.clone(), branch.clone());
            let ahead = tokio::task::spawn_blocking(move || {
                if wt.exists() {
                    let repaired = sf_git::locks::repair_worktree(&wt)?;
                    crate::workers::report_repairs(&tx2, Some(&task), repaired);
                    sf_git::commit_all(
                        &wt,
                        &format!("{task}: work left uncommitted at completion"),
                        &agent,
                    )?;
                }
                sf_git::commits_ahead(&root, &branch, &target)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
            // a fix task: has the branch moved since the merge it fixes failed?
            let fixed = match fix_base {
                Some(base) if ahead.is_ok() => Some(
                    tokio::task::spawn_blocking(move || sf_git::branch_tip_id(&root2, &branch2))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                        .map(|tip| tip != base),
                ),
                _ => None,
            };
            let _ = tx.send(Internal::CompletePrepared(Box::new(PendingComplete {
                lease,
                summary,
                no_changes,
                ahead,
                fixed,
                reply,
            })));
        });
        false
    }

    async fn finish_complete(&mut self, p: PendingComplete) -> bool {
        let PendingComplete {
            lease,
            summary,
            no_changes,
            ahead,
            fixed,
            reply,
        } = p;
        let run_id = lease.run_id;
        if let Some(w) = self.workers.get_mut(&run_id) {
            w.completing = false;
        }
        let target = self.target.clone().unwrap_or_default();
        let refuse = |m: String, hint: &str| {
            Response::Error(ProtoError::new(ErrorKind::InvalidState, m).with_hint(hint))
        };
        let nothing = match ahead {
            Err(e) => {
                let _ = reply.send(internal(format!(
                    "failed to inspect branch {}: {e}",
                    lease.branch
                )));
                return false;
            }
            Ok(0) if !no_changes => {
                let _ = reply.send(refuse(
                    format!("branch {} has no commits ahead of {target}", lease.branch),
                    "commit your work first, or pass --no-changes to close the task as nothing to merge",
                ));
                return false;
            }
            Ok(n) if n > 0 && no_changes => {
                let _ = reply.send(refuse(
                    format!(
                        "--no-changes, but branch {} has {n} commit(s) ahead of {target}",
                        lease.branch
                    ),
                    "complete without --no-changes to queue them for merge",
                ));
                return false;
            }
            Ok(n) => n == 0,
        };
        // a fix that adds nothing would fail the merge the same way, at once
        if let Some(Ok(false)) = fixed {
            let _ = reply.send(refuse(
                format!(
                    "this fix task adds no commit to {} since the merge failed; retesting it \
                     would fail the same way",
                    lease.branch
                ),
                "commit a fix first; if you cannot, hand the task back with \
                 `sfctl task handoff --note \"what blocks it\"`",
            ));
            return false;
        }
        let token_check = lease.clone();
        let r = self
            .store_call(move |s| {
                // the lease may have changed while git ran: check it again
                let lease = s.check_lease_by_run(token_check.run_id)?;
                s.complete(&lease, summary.as_deref(), &target, nothing)?;
                s.show_task(lease.task_id.as_str())
            })
            .await;
        let (response, taken_away) = match r {
            Ok((Ok(t), _)) => (Response::Task(Box::new(t)), false),
            // the task was taken from this run while its git work ran (closed by hand):
            // the worker was skipped then, so it is stopped now
            Ok((Err(e), _)) => {
                let denied = e.kind() == ErrorKind::PermissionDenied;
                (Response::Error(e.into()), denied)
            }
            Err(e) => (internal(e), false),
        };
        let ok = !matches!(response, Response::Error(_));
        let _ = reply.send(response);
        if ok {
            self.stop_after_grace(run_id);
        } else if taken_away && let Some(w) = self.workers.get(&run_id) {
            w.stop.cancel();
        }
        ok
    }

    fn stop_after_grace(&self, run_id: i64) {
        if let Some(w) = self.workers.get(&run_id) {
            let stop = w.stop.clone();
            let grace = self.config.complete_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                stop.cancel();
            });
        }
    }

    async fn handoff(&mut self, token: String, note: String) -> Response {
        let lease = match self.lease(token).await {
            Ok(l) => l,
            Err(r) => return r,
        };
        let run_id = lease.run_id;
        let r = self
            .store_call(move |s| {
                s.handoff(&lease, &note)?;
                s.show_task(lease.task_id.as_str())
            })
            .await;
        match r {
            Ok((Ok(t), _)) => {
                self.stop_after_grace(run_id);
                Response::Task(Box::new(t))
            }
            Ok((Err(e), _)) => Response::Error(e.into()),
            Err(e) => internal(e),
        }
    }

    async fn start_agent(&mut self, name: String, task: Option<String>) -> Response {
        if self.target.is_none() {
            self.resolve_target().await;
        }
        if self.target.is_none() {
            return Response::Error(
                ProtoError::new(
                    ErrorKind::InvalidState,
                    "the repository has no target branch to work from",
                )
                .with_hint("make a first commit, or set target_branch in .sf/config.toml"),
            );
        }
        let capacity = (self.config.max_workers as usize).saturating_sub(self.workers.len());
        let paused: HashSet<Adapter> = self.paused.keys().copied().collect();
        match self
            .store_call(move |s| {
                crate::dispatch::start_agent(s, &name, task.as_deref(), capacity, &paused)
            })
            .await
        {
            Ok((Ok(start), _)) => {
                let summary = RunSummary {
                    id: start.claim.run_id,
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
                };
                self.launch(start);
                Response::Run(summary)
            }
            Ok((Err(e), _)) => Response::Error(e.into()),
            Err(e) => internal(e),
        }
    }

    async fn stop_agent(&mut self, actor: &str, name: String) -> Response {
        let actor = actor.to_owned();
        let n = name.clone();
        match self
            .store_call(move |s| s.set_agent_enabled(&actor, &n, false))
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
        Response::Ok {
            message: format!(
                "stopping {stopped} worker(s) of `{name}` (their work is saved and their tasks return to the pool); \
                 `{name}` is disabled: enable it with `sfctl agent enable {name}`"
            ),
        }
    }

    /// What keeps work from flowing, for `sfctl daemon status`.
    async fn warnings(&self) -> Vec<String> {
        let mut out = self
            .store
            .call(unstaffed_work)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        if let Some(e) = &self.unrecorded_error
            && !self.unrecorded.is_empty()
        {
            out.push(format!(
                "the end of {} run(s) could not be recorded ({e}); sfd tries again at every tick: \
                 free disk space if the disk is full",
                self.unrecorded.len()
            ));
        }
        if self.target.is_none() {
            out.push(match &self.config.target_branch {
                Some(b) => format!(
                    "no target branch: `{b}` (target_branch in .sf/config.toml) does not exist; nothing is dispatched until it does"
                ),
                None => "no target branch: the repository has no commits yet; nothing is dispatched until it has one (commit something)".to_owned(),
            });
        }
        out
    }

    async fn status(&self) -> Response {
        let counts = self.store.call(|s| s.status_counts()).await;
        let tasks = match counts {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Response::Error(e.into()),
            Err(e) => return internal(e),
        };
        let now = chrono::Utc::now();
        Response::Status(DaemonStatus {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: sf_proto::PROTOCOL_VERSION,
            started_at: self.started_at,
            uptime_secs: (now - self.started_at).num_seconds().max(0).unsigned_abs(),
            workspace: self.config.paths.root.display().to_string(),
            socket: self.config.socket.display().to_string(),
            tick_interval_ms: u64::try_from(self.config.tick_interval.as_millis())
                .unwrap_or(u64::MAX),
            ticks: self.ticks,
            last_tick_us: self
                .last_tick
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            tasks,
            running_workers: u32::try_from(self.workers.len()).unwrap_or(u32::MAX),
            paused_adapters: self
                .paused
                .iter()
                .filter(|(_, t)| **t > now)
                .map(|(a, t)| (a.to_string(), *t))
                .collect(),
            warnings: self.warnings().await,
            recovered: self.recovered.clone(),
        })
    }
}

/// Ready tasks no enabled ephemeral worker can take (no worker at all, or none with the
/// skills they need), as warnings. Looks at the first 500 ready tasks.
fn unstaffed_work(s: &mut Store) -> Result<Vec<String>, sf_store::StoreError> {
    let mut out: Vec<String> = s
        .waiting_mr_reasons()?
        .into_iter()
        .map(|(reason, n)| format!("{n} merge request(s) waiting: {reason}"))
        .collect();
    let (enabled, disabled): (Vec<_>, Vec<_>) = s
        .list_agents()?
        .into_iter()
        .filter(|a| {
            a.spec.role == sf_proto::Role::Worker && a.spec.mode == sf_proto::Mode::Ephemeral
        })
        .partition(|a| a.enabled);
    let workers: Vec<Vec<String>> = enabled.into_iter().map(|a| a.spec.skills).collect();
    let ready = s.ready(sf_store::now_ms(), Some(500))?;
    if ready.is_empty() {
        return Ok(out);
    }
    if workers.is_empty() {
        let what = if disabled.is_empty() {
            "register one with `sfctl agent register NAME --role worker ...`".to_owned()
        } else {
            let names: Vec<&str> = disabled.iter().map(|a| a.spec.name.as_str()).collect();
            format!(
                "{} disabled (see why with `sfctl events`); enable with `sfctl agent enable NAME`",
                names.join(", ")
            )
        };
        out.push(format!(
            "{} ready task(s) and no enabled ephemeral worker: {what}",
            ready.len()
        ));
        return Ok(out);
    }
    let mut missing = std::collections::BTreeSet::new();
    let mut stranded = 0;
    for r in &ready {
        let takes = |w: &Vec<String>| r.task.skills.iter().all(|k| w.contains(k));
        if !workers.iter().any(takes) {
            stranded += 1;
            missing.extend(r.task.skills.iter().cloned());
        }
    }
    if stranded > 0 {
        out.push(format!(
            "{stranded} ready task(s) need skills no enabled worker has (among: {}): give a worker those --skills",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

/// Watches a worker adopted after a restart (not our child: it is polled, not waited on).
#[expect(clippy::too_many_arguments, reason = "one call site")]
async fn watch_adopted(
    run_id: i64,
    pid: u32,
    start: Option<u64>,
    stop: CancellationToken,
    grace: Duration,
    adapter: Adapter,
    (log, capture): (Option<String>, Option<sf_worker::log::Capture>),
    tx: mpsc::UnboundedSender<Internal>,
) {
    let why = tokio::select! {
        () = sf_worker::process::wait_adopted(pid, start) => ExitWhy::Exited,
        () = stop.cancelled() => {
            sf_worker::process::stop_group(pid, grace).await;
            ExitWhy::Stopped
        }
    };
    sf_worker::process::signal_group(pid, sf_worker::process::StopSignal::Kill);
    if let Some(r) = crate::workers::log_finished(capture, pid).await
        && r.dropped > 0
        && let Some(l) = &log
    {
        let _ = tx.send(Internal::LogTruncated {
            run_id,
            dropped: r.dropped,
            log: l.into(),
        });
    }
    let (usage, usage_limit_until) = match &log {
        Some(l) => crate::workers::read_usage(adapter, std::path::Path::new(l)).await,
        None => (None, None),
    };
    let exit: Option<ExitInfo> = None;
    let _ = tx.send(Internal::Exited {
        run_id,
        exit,
        why,
        usage,
        usage_limit_until,
    });
}

/// Sleeps until a UTC instant; forever when there is none.
async fn sleep_until_utc(at: Option<chrono::DateTime<chrono::Utc>>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    // capped: the loop comes back and recomputes, so a far-off fire needs no huge timer
    let wait = (at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default()
        .min(Duration::from_secs(3600));
    tokio::time::sleep(wait).await;
}
