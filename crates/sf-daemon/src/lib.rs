#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
mod config;
mod dispatch;
mod lock;
mod merge;
mod owner;
mod playbooks;
mod private;
mod prompt;
mod requests;
mod server;
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
    let owner_task = tokio::spawn(owner.run());
    tracing::info!(
        socket = %config.socket.display(),
        workspace = %config.paths.root.display(),
        pid = std::process::id(),
        "sfd ready"
    );
    tokio::select! {
        () = shutdown => tracing::info!("shutdown requested by signal"),
        () = cancel.cancelled() => tracing::info!("shutdown requested by a client"),
        () = server::accept_loop(listener, handle.clone(), tracker.clone(), cancel.clone()) => {}
    }
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(std::time::Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections did not close within 5 s");
    }
    drop(handle);
    if let Err(e) = owner_task.await {
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
    drop(lock);
    tracing::info!("sfd stopped");
    Ok(())
}
