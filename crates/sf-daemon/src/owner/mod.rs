//! The owner: the one task through which every request and every daemon phase passes, in
//! order. It runs the phases on each tick and whenever a change wakes it, supervises runs
//! through messages from their tasks, and fans audit events out to followers. Slow work
//! (git, spawning, waiting on processes) runs in other tasks and reports back.
//!
//! This module holds the loop, the store calls and the tick's phases; `router` maps every
//! request to its one handler, and each concern has its file: `runs` (launch and run
//! ends), `completion` (complete and handoff), `recovery` (adopt or reap at start-up),
//! `stewards` (the bus, triggers and steward runs), `merging` (the merge queue), `status`
//! and `admin` (reload, gc).

mod admin;
mod completion;
mod merging;
mod pushing;
mod recovery;
mod router;
mod runs;
mod staffing;
mod status;
mod stewards;
mod tools;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sf_proto::{Adapter, AuditEvent, ErrorKind, ProtoError, Response, StewardOutcome};
use sf_store::{Failure, Store};
use tokio::sync::{broadcast, mpsc};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::mailbox::{DaemonHandle, Internal};
use crate::store_thread::StoreHandle;

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
    /// Its agent's model, for `[prices]`.
    model: Option<String>,
    task: String,
    epoch: i64,
    worktree: Option<String>,
    log: Option<String>,
    stop: CancellationToken,
    completing: bool,
    /// Tokens of the CLI session it continues that earlier runs recorded.
    counted: Option<sf_worker::adapters::TokenUsage>,
    kind: RunKind,
    /// A dry run: its requests change nothing, and its end leaves evidence.
    dry_run: bool,
    /// A session's turn: the session.
    session: Option<i64>,
}

use sf_proto::RunKind;

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
    rx: mpsc::Receiver<crate::mailbox::Command>,
    events: broadcast::Sender<AuditEvent>,
    cancel: CancellationToken,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    workers: HashMap<i64, Worker>,
    /// Why the sandbox `[sandbox] mode = "full"` asks for cannot be made here: nothing is
    /// dispatched then (fail closed), and `daemon status` says why.
    sandbox_error: Option<String>,
    /// The user namespaces of the live sandboxed runs (shared with the server).
    identities: crate::identity::Identities,
    /// Adapters whose CLI hit a usage limit: until when, and the CLI's message.
    paused: HashMap<Adapter, (chrono::DateTime<chrono::Utc>, String)>,
    /// sfd ran out of descriptors, processes, memory or disk starting a run: nothing is
    /// dispatched until this time (the next tick), so a starved daemon does not spin.
    starved_until: Option<Instant>,
    /// When each steward's event triggers fired in the last minute (the rate limit).
    fires: HashMap<String, std::collections::VecDeque<Instant>>,
    /// When each steward was last refused by the rate limit (one event a minute).
    rate_limited: HashMap<String, Instant>,
    target: Option<String>,
    merging: Option<sf_proto::MergeRequestId>,
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
    /// Dispatch's spawn denials already recorded (one `spawn_denied` per agent and path
    /// until the policy changes, not one a tick).
    spawn_denials_noted: HashSet<(String, sf_core::guard::SpawnPath)>,
    /// Tool calls held for a human, by approval id: answered when it is decided or its
    /// `hold_timeout` passes.
    held: HashMap<i64, tools::HeldCall>,
    /// Runs the owner stopped for a reason of its own (a bypassed guard): how their end is
    /// recorded once their work is saved.
    stopped_for: HashMap<i64, Failure>,
    /// What each live run's stream has said of its usage so far, for its budgets.
    live_use: HashMap<i64, sf_store::LiveUse>,
    /// The model messages of each live run already counted (a message is reported once per
    /// content block).
    live_messages: HashMap<i64, HashSet<String>>,
    /// The budget shares already reported (`budget_usage`), by budget and percent.
    budget_warned: HashSet<(sf_proto::BudgetScope, String, u32)>,
    /// Some budget is set: live runs are checked against them at ticks (wall time).
    budgets_exist: bool,
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
        let identities = crate::identity::Identities::new();
        let handle = DaemonHandle {
            tx,
            identities: identities.clone(),
        };
        let sandbox_error = sandbox_error(&config);
        identities.enforce(config.sandbox);
        let owner = Self {
            config,
            store,
            rx,
            events,
            cancel,
            internal_tx,
            internal_rx,
            workers: HashMap::new(),
            sandbox_error,
            identities,
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
            spawn_denials_noted: HashSet::new(),
            held: HashMap::new(),
            stopped_for: HashMap::new(),
            live_use: HashMap::new(),
            live_messages: HashMap::new(),
            budget_warned: HashSet::new(),
            budgets_exist: false,
        };
        (handle, owner)
    }

    pub(crate) async fn run(mut self) {
        self.budgets_exist = matches!(self.store.call(|s| s.has_budgets()).await, Ok(Ok(true)));
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
                    self.route(cmd).await
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

    /// The phases of a tick: timers and deferrals that came due, then dispatch.
    async fn phases(&mut self) {
        let start = Instant::now();
        // an empty repository gets its first commit while sfd runs: look again at ticks
        if self.target.is_none() && self.tick_due {
            self.resolve_target().await;
        }
        if self.tick_due {
            self.record_unrecorded().await;
            if !self.held.is_empty() {
                self.expire_held().await;
            }
            // wall time passes without any output: budgets are looked at on ticks too
            if self.budgets_exist {
                let live: Vec<i64> = self
                    .workers
                    .iter()
                    .filter(|(_, w)| w.kind != RunKind::Steward)
                    .map(|(r, _)| *r)
                    .collect();
                for run in live {
                    self.check_budget(run).await;
                }
            }
        }
        let now = chrono::Utc::now();
        self.paused.retain(|_, (until, _)| *until > now);
        let capacity = (self.config.max_workers as usize).saturating_sub(self.workers.len());
        let paused: HashSet<Adapter> = self.paused.keys().copied().collect();
        self.starved_until = self.starved_until.filter(|t| *t > Instant::now());
        let can_dispatch = self.target.is_some()
            && self.starved_until.is_none()
            && self.sandbox_error.is_none()
            && self.config.policy.is_ok();
        let config = self.config.clone();
        let live = self.budgets_exist.then(|| self.live_use.clone());
        let result = self
            .store_call(move |s| {
                let now = sf_store::now_ms();
                s.satisfy_due_timers(now)?;
                s.expire_deferrals(now)?;
                if can_dispatch {
                    let policy = config.policy.as_ref();
                    let gate = |agent: &str, path| crate::guard::check_spawn(policy, path, agent);
                    let dir = config.paths.dir.join("skills");
                    let source = crate::staffing::SkillSource {
                        dir: &dir,
                        policy: policy.ok(),
                    };
                    let triage = crate::dispatch::Triage {
                        batch: config.triage_batch,
                        after_ms: i64::try_from(config.triage_after.as_millis())
                            .unwrap_or(i64::MAX),
                        health_ms: i64::try_from(config.session_health_interval.as_millis())
                            .unwrap_or(i64::MAX),
                    };
                    crate::dispatch::dispatch(
                        s,
                        capacity,
                        &paused,
                        &gate,
                        live.as_ref(),
                        source,
                        triage,
                    )
                } else {
                    Ok(crate::dispatch::Dispatched::default())
                }
            })
            .await;
        match result {
            Ok((Ok(done), _)) => {
                for (agent, path, denial) in done.denied {
                    self.note_spawn_denial("daemon", &agent, path, &denial)
                        .await;
                }
                for s in done.starts {
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

    /// What a task the owner started reports back. Returns whether anything changed.
    async fn on_internal(&mut self, msg: Internal) -> bool {
        match msg {
            Internal::Tidied { lines } => {
                self.tidying = false;
                if !lines.is_empty()
                    && let Err(e) = self
                        .store_call(move |s| s.record_cleanup("daemon", &lines))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|(r, _)| r.map_err(|e| format!("{e:?}")))
                {
                    tracing::error!(error = %e, "failed to record a clean-up");
                }
                false
            }
            Internal::Repaired {
                task,
                repaired,
                tampered,
            } => {
                match self
                    .store_call(move |s| s.record_repair(task.as_ref(), &repaired, tampered))
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
                self.spawned(run_id, pid, start_time, log_path).await;
                false
            }
            Internal::Live { run_id, live } => {
                self.live(run_id, live).await;
                false
            }
            Internal::SpawnDenied {
                run_id,
                agent,
                reason,
            } => {
                let max = self.config.max_attempts;
                let note = format!("not started: {reason}");
                let r2 = reason.clone();
                if let Err(e) = self
                    .store_call(move |s| {
                        s.record_denial(
                            "daemon",
                            true,
                            &format!("agent:{agent}"),
                            &serde_json::json!({"agent": agent, "run": run_id, "code": "POLICY_DENIED", "rule": "launch"}),
                            &r2,
                        )
                    })
                    .await
                {
                    tracing::error!(error = %e, "failed to record a spawn denial");
                }
                self.end_run(
                    run_id,
                    None,
                    sf_store::Failure::Interrupted,
                    note,
                    None,
                    max,
                )
                .await;
                true
            }
            Internal::SpawnFailed {
                run_id,
                error,
                agent_fault,
            } => {
                self.spawn_failed(run_id, error, agent_fault).await;
                true
            }
            Internal::Exited {
                run_id,
                exit,
                why,
                report,
            } => self.exited(run_id, exit, why, report).await,
            Internal::Saved {
                run_id,
                ending,
                note,
            } => {
                self.saved(run_id, ending, note).await;
                true
            }
            Internal::CompletePrepared(p) => self.finish_complete(*p).await,
            Internal::MergeDone { id, outcome } => self.merge_finished(id, outcome).await,
            Internal::LogTruncated {
                run_id,
                dropped,
                log,
            } => {
                self.log_truncated(run_id, dropped, log).await;
                false
            }
            Internal::MergeTesting { id, log } => {
                self.merge_testing(id, log).await;
                false
            }
            Internal::Egress(c) => {
                self.egress(*c).await;
                false
            }
            Internal::Pushed { job, result, reply } => self.pushed(job, result, reply).await,
        }
    }
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

/// Whether the sandbox the configuration asks for can be made on this kernel (user
/// namespaces, Landlock ABI 6): `None` when it can or when none is asked for. A probe
/// process is started in it: only a spawn proves that user namespaces are allowed.
fn sandbox_error(config: &Config) -> Option<String> {
    use crate::config::SandboxMode;
    let (network, namespaces) = match config.sandbox {
        SandboxMode::Off => return None,
        SandboxMode::Full { network } => (network, true),
        SandboxMode::LandlockOnly => (true, false),
    };
    let policy = sf_worker::sandbox::Policy {
        network,
        namespaces,
        ..sf_worker::sandbox::Policy::system([])
    };
    let failed = sf_worker::sandbox::probe(&policy).err()?;
    tracing::error!(error = %failed, mode = config.sandbox.describe(), "the sandbox [sandbox] mode asks for cannot be made here; nothing is dispatched");
    Some(failed.to_string())
}
