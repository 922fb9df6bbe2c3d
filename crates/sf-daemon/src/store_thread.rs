//! The store lives on one dedicated OS thread; async code sends it closures and awaits the
//! results (the design of `tokio-rusqlite`, in a few lines).

use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::Context as _;
use sf_store::Store;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// The store thread has stopped (it panicked or was closed).
#[derive(Debug, thiserror::Error)]
#[error("the store thread has stopped")]
pub(crate) struct StoreGone;

/// A cheap, cloneable handle to the store thread.
#[derive(Debug, Clone)]
pub(crate) struct StoreHandle {
    tx: mpsc::Sender<Job>,
}

impl StoreHandle {
    /// Opens the store at `path` on a new thread.
    pub(crate) fn spawn(path: PathBuf) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sf-store".into())
            .spawn(move || {
                let mut store = match Store::open(&path) {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::new(e)));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&mut store);
                }
            })
            .context("failed to start the store thread")?;
        ready_rx
            .recv()
            .context("the store thread died while opening")??;
        Ok(Self { tx })
    }

    /// Runs `f` on the store thread and returns its result.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R, StoreGone>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(move |s| {
                let _ = tx.send(f(s));
            }))
            .map_err(|_| StoreGone)?;
        rx.await.map_err(|_| StoreGone)
    }

    /// Lets the thread end once every clone is gone.
    pub(crate) fn close(self) {}
}
