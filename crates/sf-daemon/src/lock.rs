//! One daemon per workspace: an exclusive `flock` on `.sf/sfd.lock`, which also records the
//! holder's pid for error messages. The kernel drops the lock when the process dies, so a
//! `kill -9` never leaves a stale lock behind.
//!
//! The file tells how the last daemon ended (`sfctl daemon status` reads it when none
//! answers): `<pid> <started ms>` while it runs, and, written as it stops, `stopped <ms>` or
//! `failed <ms> <why>`. A file still naming a dead pid is a daemon that exited unexpectedly
//! (`kill -9`, a crash, the machine going down).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use nix::fcntl::{Flock, FlockArg};

/// The held lock; released on drop.
#[derive(Debug)]
pub(crate) struct WorkspaceLock {
    lock: Flock<File>,
}

/// How long a lock whose recorded holder is dead may stay taken: a process forked by the
/// killed daemon holds the descriptor until it runs its `exec`, which under load can take a
/// moment.
const DEAD_HOLDER_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Takes the lock; if it is taken while the pid recorded in it is not alive, waits (at most
/// [`DEAD_HOLDER_GRACE`]) for the kernel to drop it.
fn lock_or_wait_for_the_dead(file: File) -> Result<Flock<File>, File> {
    let start = std::time::Instant::now();
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(l),
            Err((f, _)) => file = f,
        }
        let mut text = String::new();
        let _ = file.rewind();
        let _ = (&file).read_to_string(&mut text);
        let holder_alive = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .parse::<i32>()
            .is_ok_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());
        if holder_alive || start.elapsed() > DEAD_HOLDER_GRACE {
            return Err(file);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
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
        let lock = match lock_or_wait_for_the_dead(file) {
            Ok(l) => l,
            Err(mut file) => {
                let mut text = String::new();
                let _ = file.rewind();
                let _ = file.read_to_string(&mut text);
                let pid = text.split_whitespace().next().unwrap_or_default();
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
        let mut held = Self { lock };
        held.record(&format!("{} {}", std::process::id(), sf_store::now_ms()))?;
        Ok(held)
    }

    fn record(&mut self, text: &str) -> std::io::Result<()> {
        self.lock.set_len(0)?;
        self.lock.rewind()?;
        write!(self.lock, "{text}")?;
        self.lock.flush()
    }

    /// Records how the daemon ends (a clean stop, or `why` it failed), just before the
    /// lock is released.
    pub(crate) fn record_end(mut self, why: Option<&str>) {
        let now = sf_store::now_ms();
        let text = match why {
            None => format!("stopped {now}"),
            Some(why) => format!("failed {now} {}", why.replace('\n', " ")),
        };
        if let Err(e) = self.record(&text) {
            tracing::warn!(error = %e, "failed to record the stop in the lock file");
        }
    }
}
