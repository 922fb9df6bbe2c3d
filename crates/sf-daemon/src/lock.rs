//! One daemon per workspace: an exclusive `flock` on `.sf/sfd.lock`, which also records the
//! holder's pid for error messages. The kernel drops the lock when the process dies, so a
//! `kill -9` never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use nix::fcntl::{Flock, FlockArg};

/// The held lock; released on drop.
#[derive(Debug)]
pub(crate) struct WorkspaceLock {
    _lock: Flock<File>,
}

impl WorkspaceLock {
    pub(crate) fn acquire(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::private::FILE_MODE)
            .open(path)
            .with_context(|| format!("failed to open the lock file {}", path.display()))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let who = if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                };
                bail!(
                    "another sfd is already running for this workspace{who}; stop it with `sfctl daemon stop`"
                );
            }
        };
        lock.set_len(0)?;
        lock.rewind()?;
        write!(lock, "{}", std::process::id())?;
        lock.flush()?;
        Ok(Self { _lock: lock })
    }
}
