#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
mod config;
mod dispatch;
mod egress;
mod errors;
mod guard;
mod identity;
mod janitor;
mod lock;
mod mailbox;
mod merge;
mod owner;
mod playbooks;
mod private;
mod prompt;
mod push;
mod requests;
mod server;
mod staffing;
mod steward;
mod store_thread;
mod workers;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// Runs the daemon until `shutdown` resolves or a client asks it to stop, then shuts down
/// gracefully: stop accepting, finish in-flight requests, flush the store, remove the
/// socket, release the lock.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = Arc::new(config);
    private::repair_and_report(&config.paths);
    let lock = lock::WorkspaceLock::acquire(&config.paths.lock())?;
    private::create_file(&config.paths.db()).with_context(|| {
        format!(
            "failed to create the database at {}",
            config.paths.db().display()
        )
    })?;
    let store = store_thread::StoreHandle::spawn(config.paths.db()).with_context(|| {
        format!(
            "failed to open the database at {}",
            config.paths.db().display()
        )
    })?;
    let tz = config.timezone;
    store
        .call(move |s| s.set_time_zone(tz))
        .await
        .context("the store thread stopped")?;
    let managed = config.socket.parent() == Some(config.paths.socket_dir().as_path());
    let listener = server::bind(&config.socket, managed)?;
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (handle, owner) = owner::Owner::new(config.clone(), store.clone(), cancel.clone());
    let mut owner_task = tokio::spawn(owner.run());
    tracing::info!(
        socket = %config.socket.display(),
        workspace = %config.paths.root.display(),
        pid = std::process::id(),
        "sfd ready"
    );
    let limits = server::Limits {
        max_connections: config.max_connections,
        idle_timeout: config.idle_timeout,
    };
    let accept = server::accept_loop(
        listener,
        handle.clone(),
        tracker.clone(),
        cancel.clone(),
        limits,
    );
    let owner_failed = serve(shutdown, &cancel, accept, &mut owner_task).await;
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(std::time::Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections did not close within 5 s");
    }
    drop(handle);
    if owner_failed.is_none()
        && let Err(e) = owner_task.await
    {
        tracing::error!(error = %e, "owner task failed");
    }
    if let Err(e) = store
        .call(|s| s.checkpoint())
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r.map_err(Into::into))
    {
        tracing::warn!(error = %e, "failed to checkpoint the database");
    }
    store.close();
    let _ = std::fs::remove_file(&config.socket);
    lock.record_end(owner_failed.as_deref());
    tracing::info!("sfd stopped");
    match owner_failed {
        // exit with an error, so that whoever watches sfd restarts it
        Some(why) => Err(anyhow::anyhow!("sfd stopped because {why}")),
        None => Ok(()),
    }
}

/// Serves until a shutdown is asked for, or until the owner task ends by itself: a panic
/// there must not leave a daemon that accepts connections only to answer "shutting down"
/// to every request. Returns why the owner ended, in that case.
async fn serve(
    shutdown: impl Future<Output = ()>,
    cancel: &CancellationToken,
    accept: impl Future<Output = ()>,
    owner: &mut tokio::task::JoinHandle<()>,
) -> Option<String> {
    tokio::select! {
        () = shutdown => tracing::info!("shutdown requested by signal"),
        () = cancel.cancelled() => tracing::info!("shutdown requested by a client"),
        () = accept => {}
        ended = owner => {
            let why = match ended {
                Err(e) if e.is_panic() => {
                    let panic = e.into_panic();
                    let text = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("(no message)");
                    format!("its owner task panicked: {text}")
                }
                Err(e) => format!("its owner task failed: {e}"),
                Ok(()) => "its owner task stopped".to_owned(),
            };
            tracing::error!("{why}; shutting down");
            return Some(why);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_the_owner_stops_the_daemon_instead_of_leaving_it_half_alive() {
        let cancel = CancellationToken::new();
        let mut owner = tokio::spawn(async { panic!("failed printing to stderr") });
        let why = serve(
            std::future::pending(),
            &cancel,
            std::future::pending(),
            &mut owner,
        )
        .await;
        assert_eq!(
            why.as_deref(),
            Some("its owner task panicked: failed printing to stderr")
        );
    }
}
