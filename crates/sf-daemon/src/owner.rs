//! The owner: the one task through which every request and every daemon phase passes, in
//! order. It runs the phases on each tick and whenever a change wakes it, and fans audit
//! events out to followers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sf_proto::{AuditEvent, DaemonStatus, ErrorKind, ProtoError, Request, Response};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::store_thread::StoreHandle;

/// Capacity of the follower broadcast; a follower further behind receives `Lagged`.
const EVENT_BUFFER: usize = 4096;

/// A message to the owner.
#[derive(Debug)]
pub(crate) struct Command {
    pub actor: String,
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// What connections hold: a sender to the owner and a way to follow events.
#[derive(Debug, Clone)]
pub(crate) struct DaemonHandle {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<AuditEvent>,
}

impl DaemonHandle {
    /// Sends a request to the owner and waits for its response.
    pub(crate) async fn request(&self, actor: &str, request: Request) -> Response {
        let (reply, rx) = oneshot::channel();
        let cmd = Command {
            actor: actor.to_owned(),
            request,
            reply,
        };
        if self.tx.send(cmd).await.is_err() {
            return shutting_down();
        }
        rx.await.unwrap_or_else(|_| shutting_down())
    }

    /// Subscribes to audit events committed from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<AuditEvent> {
        self.events.subscribe()
    }
}

fn shutting_down() -> Response {
    Response::Error(
        ProtoError::new(ErrorKind::Internal, "sfd is shutting down")
            .with_hint("start it again with `sfctl daemon start`"),
    )
}

pub(crate) struct Owner {
    config: Arc<Config>,
    store: StoreHandle,
    rx: mpsc::Receiver<Command>,
    events: broadcast::Sender<AuditEvent>,
    cancel: CancellationToken,
    started_at: chrono::DateTime<chrono::Utc>,
    ticks: u64,
    last_tick: Option<Duration>,
}

impl Owner {
    pub(crate) fn new(
        config: Arc<Config>,
        store: StoreHandle,
        cancel: CancellationToken,
    ) -> (DaemonHandle, Self) {
        let (tx, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
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
            started_at: chrono::Utc::now(),
            ticks: 0,
            last_tick: None,
        };
        (handle, owner)
    }

    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(self.config.tick_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let wake = self.handle(cmd).await;
                    if wake {
                        // a change that could make work ready: run the phases now
                        self.phases().await;
                    }
                }
                _ = tick.tick() => self.phases().await,
            }
        }
        tracing::debug!("owner stopped");
    }

    /// Handles one command; returns whether it changed state.
    async fn handle(&mut self, cmd: Command) -> bool {
        let Command {
            actor,
            request,
            reply,
        } = cmd;
        let response = match request {
            Request::Status => self.status().await,
            Request::Shutdown => {
                self.cancel.cancel();
                Response::Ok {
                    message: "sfd is shutting down".into(),
                }
            }
            request => {
                let result = self
                    .store
                    .call(move |s| {
                        let r = crate::requests::handle(s, &actor, request);
                        (r, s.take_new_events())
                    })
                    .await;
                match result {
                    Ok((r, events)) => {
                        let changed = !events.is_empty();
                        for e in events {
                            let _ = self.events.send(e);
                        }
                        let _ = reply.send(r);
                        return changed;
                    }
                    Err(e) => Response::Error(ProtoError::new(ErrorKind::Internal, e.to_string())),
                }
            }
        };
        let _ = reply.send(response);
        false
    }

    /// The phases of a tick. Today: timer gates and deferrals that came due.
    async fn phases(&mut self) {
        let start = Instant::now();
        let result = self
            .store
            .call(|s| {
                let now = sf_store::now_ms();
                let timers = s.satisfy_due_timers(now)?;
                let deferrals = s.expire_deferrals(now)?;
                Ok::<_, sf_store::StoreError>(((timers, deferrals), s.take_new_events()))
            })
            .await;
        match result {
            Ok(Ok(((timers, deferrals), events))) => {
                if timers + deferrals > 0 {
                    tracing::info!(timers, deferrals, "gates and deferrals came due");
                }
                for e in events {
                    let _ = self.events.send(e);
                }
            }
            Ok(Err(e)) => tracing::error!(error = ?e, "tick failed"),
            Err(e) => tracing::error!(error = %e, "tick failed"),
        }
        self.ticks += 1;
        self.last_tick = Some(start.elapsed());
    }

    async fn status(&self) -> Response {
        let counts = self
            .store
            .call(|s| Ok::<_, sf_store::StoreError>((s.status_counts()?, s.running_runs()?)))
            .await;
        let (tasks, running_workers) = match counts {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Response::Error(e.into()),
            Err(e) => return Response::Error(ProtoError::new(ErrorKind::Internal, e.to_string())),
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
            running_workers,
            paused_adapters: Default::default(),
        })
    }
}
