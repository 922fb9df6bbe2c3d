//! Start-up recovery: the runs the store marks live are adopted when their process outlived
//! the previous daemon (and watched by polling, not being our children), or reaped, their
//! work saved and their end recorded.

use std::collections::HashMap;
use std::time::Duration;

use sf_proto::{Adapter, StewardOutcome};
use sf_store::Failure;
use sf_worker::process::ExitInfo;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Owner, RunKind, Worker};
use crate::mailbox::{ExitWhy, Internal};

impl Owner {
    /// Runs the store marks live after a restart: adopt the ones still running, reap the rest.
    pub(super) async fn recover(&mut self) {
        // a usage limit outlives the daemon: its pause still holds
        match self
            .store
            .call(|s| s.adapter_pauses(sf_store::now_ms()))
            .await
        {
            Ok(Ok(pauses)) => self.paused.extend(pauses),
            _ => tracing::error!("failed to read the adapters' pauses"),
        }
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
        let models: HashMap<String, Option<String>> = agents
            .iter()
            .map(|(n, s)| (n.clone(), s.model.clone()))
            .collect();
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
            // the log's tail) before anything reads the log, given the secrets the run
            // holds again: its output is still filtered for them
            let capture = run.log_path.as_ref().and_then(|l| {
                let process = run.pid.filter(|_| alive).map(|p| (p, run.proc_start));
                let secrets = crate::workers::adopted_secrets(
                    &self.config,
                    run.run_id,
                    agents.get(&run.agent),
                    process,
                );
                sf_worker::log::resume(
                    std::path::Path::new(l),
                    sf_worker::log::LogCap::new(self.config.run_log_max),
                    &secrets,
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
                // its sandbox's namespace still names it
                self.identities.started(run.run_id, &run.agent, pid);
                adopted += 1;
                // a dry run stays one across the restart: its requests still change nothing
                let id = run.run_id;
                let (dry_run, session) = match self
                    .store_call(move |s| {
                        Ok::<_, sf_store::StoreError>((s.is_dry_run(id)?, s.session_of_run(id)?))
                    })
                    .await
                {
                    Ok((Ok(v), _)) => v,
                    // unknown: its requests change nothing until it ends
                    _ => (true, None),
                };
                let detail = format!("its process (pid {pid}) outlived the daemon and goes on");
                self.record_recovery(&run, true, &detail).await;
                let stop = CancellationToken::new();
                self.workers.insert(
                    run.run_id,
                    Worker {
                        agent: run.agent.clone(),
                        adapter,
                        model: models.get(&run.agent).cloned().flatten(),
                        task: task.clone(),
                        epoch: run.epoch,
                        worktree: run.worktree.clone(),
                        log: run.log_path.clone(),
                        stop: stop.clone(),
                        completing: false,
                        counted: None,
                        kind: if run.task.is_none() {
                            RunKind::Steward
                        } else {
                            RunKind::Worker
                        },
                        dry_run,
                        session,
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
                    .store_call(move |s| {
                        let r = s.run_ended(id, None, failure, &note, None, max);
                        if r.is_ok() {
                            s.dry_run_ended(id)?;
                        }
                        r
                    })
                    .await;
            } else {
                tracing::info!(run_id = run.run_id, %task, "worker died while the daemon was down; saving its work");
                let ending = crate::mailbox::Ending {
                    agent: run.agent.clone(),
                    adapter,
                    exit: None,
                    why: ExitWhy::Vanished,
                    class: sf_worker::outcome::RunClass::Crash,
                    said: None,
                    usage: None,
                };
                crate::workers::save_work(
                    self.config.clone(),
                    (run.run_id, task, run.epoch, run.worktree, run.log_path),
                    ending,
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
    pub(super) async fn record_recovery(
        &mut self,
        run: &sf_store::LiveRun,
        adopted: bool,
        detail: &str,
    ) {
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
    if let Some(r) = sf_worker::launcher::log_finished(capture, pid).await
        && r.dropped > 0
        && let Some(l) = &log
    {
        let _ = tx.send(Internal::LogTruncated {
            run_id,
            dropped: r.dropped,
            log: l.into(),
        });
    }
    let report = match &log {
        Some(l) => crate::workers::read_report(adapter, std::path::Path::new(l)).await,
        None => None,
    };
    let exit: Option<ExitInfo> = None;
    let _ = tx.send(Internal::Exited {
        run_id,
        exit,
        why,
        report: report.map(Box::new),
    });
}
