//! Capped run logs that survive a daemon restart.
//!
//! A worker does not write its log file itself. Its stdout and stderr are a FIFO next to the
//! log (`<log>.pipe`), opened read-write on the child's side, and a copier thread in the
//! daemon moves what arrives into the log file:
//!
//! - the first `head` bytes go to the log as they come (so `sfctl logs --follow` sees them);
//! - past that a marker line is written and everything else goes to a fixed-size ring file
//!   (`<log>.tail`, an 8-byte count then `tail` bytes of data) that always holds the newest
//!   `tail` bytes; it lives in the page cache, not in the daemon's memory;
//! - at the end of the output (every writer closed the FIFO) a second marker saying how many
//!   bytes were dropped and the ring's content, oldest first, are appended to the log, and
//!   the FIFO and the ring are removed.
//!
//! Why a FIFO opened read-write by the child rather than a plain pipe: the child itself then
//! holds a reader, so when the daemon dies (even `kill -9`) its writes never fail with
//! `EPIPE`/`SIGPIPE`; they only block once the pipe buffer is full, until the restarted
//! daemon opens the FIFO by its name again ([`resume`]) and drains it. The copier's state is
//! all on disk (the log's length and the ring's count), so a resumed copier goes on where
//! the dead one stopped and the tail is never lost.
//!
//! A run that holds secrets has its output filtered for their values before anything is
//! written, in the log and in the ring alike ([`crate::redact`]): the copier is given the
//! run's `(alias, value)` pairs when it starts, and again when it is resumed (sfd reads
//! them anew, it never stores them). The few bytes a redactor holds back because they
//! could be the start of a value are in memory only: a daemon killed at that moment loses
//! them rather than write part of a value.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::Mode;
use tokio::sync::watch;

use crate::redact::Redactor;

/// The default cap of one run's log: 16 MiB, kept as the first and the last 8 MiB.
pub const DEFAULT_MAX: u64 = 16 << 20;
/// The smallest cap accepted.
pub const MIN_MAX: u64 = 64 << 10;

/// Read size of the copier; the FIFO's buffer is raised to the same size when allowed.
const CHUNK: usize = 1 << 20;
/// The ring file's header: the number of bytes ever written to the ring, little endian.
const HEADER: u64 = 8;

/// How much of a run's output is kept: the first `head` and the last `tail` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCap {
    head: u64,
    tail: u64,
}

impl LogCap {
    /// A cap of `max` bytes (at least [`MIN_MAX`]), half head and half tail.
    pub fn new(max: u64) -> Self {
        let max = max.max(MIN_MAX);
        let head = max / 2;
        Self {
            head,
            tail: max - head,
        }
    }

    /// The whole cap in bytes.
    pub fn max(self) -> u64 {
        self.head + self.tail
    }
}

/// What a copier did with a run's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Bytes of output read from the worker (since the copier started or resumed), before
    /// its secrets were replaced.
    pub read: u64,
    /// Bytes dropped from the middle of the output because of the cap.
    pub dropped: u64,
    /// Bytes that could not be written to the log (write errors, such as a full disk).
    pub lost: u64,
}

/// A function given each complete line of a run's output (see [`Activity::with_tap`]).
#[derive(Clone)]
pub struct LineTap(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for LineTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineTap")
    }
}

/// When a run last showed progress in its output ([`sf_adapters::is_progress`]: a retry
/// notice of its CLI is not progress), as its copier saw it: what `stall_timeout` is
/// measured from. Shared between the copier's thread and the run's waiter.
#[derive(Debug, Clone)]
pub struct Activity {
    adapter: sf_proto::Adapter,
    origin: Instant,
    /// Milliseconds from `origin` to the last progress.
    last_ms: Arc<AtomicU64>,
    /// The output said the CLI cannot get on ([`sf_adapters::is_hopeless`]).
    hopeless: Arc<std::sync::atomic::AtomicBool>,
    /// Wakes the waiter when `hopeless` is set.
    wake: Arc<tokio::sync::Notify>,
    /// Given every complete line (lines longer than [`TAP_MAX`] are not).
    tap: Option<LineTap>,
}

/// The longest line a tap is given: a tool call or a usage report fits, a flood does not.
const TAP_MAX: usize = 256 << 10;

impl Activity {
    /// Starts counting now, for a run whose output is `adapter`'s stream.
    pub fn new(adapter: sf_proto::Adapter) -> Self {
        Self {
            adapter,
            origin: Instant::now(),
            last_ms: Arc::default(),
            hopeless: Arc::default(),
            wake: Arc::default(),
            tap: None,
        }
    }

    /// Also gives each complete line of the output to `tap`.
    #[must_use]
    pub fn with_tap(mut self, tap: Option<LineTap>) -> Self {
        self.tap = tap;
        self
    }

    /// Whether the output said the CLI cannot get on (an authentication failure it retries).
    pub fn hopeless(&self) -> bool {
        self.hopeless.load(Ordering::Relaxed)
    }

    /// Completes when the output says the CLI cannot get on.
    pub async fn gave_up(&self) {
        loop {
            let woken = self.wake.notified();
            if self.hopeless() {
                return;
            }
            woken.await;
        }
    }

    /// When the run last made progress (its start if it never did).
    pub fn last(&self) -> Instant {
        self.origin + std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn progressed(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Looks at a chunk of output: each line it completes (`partial` holds the start of a
    /// line from earlier chunks) that is progress counts. A line longer than a notice is
    /// always progress, and is not buffered whole.
    fn saw(&self, chunk: &[u8], partial: &mut Vec<u8>) {
        if let Some(tap) = &self.tap {
            return self.saw_every_line(chunk, partial, tap);
        }
        const LONGEST_NOTICE: usize = 4096;
        let mut progressed = false;
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            partial.extend_from_slice(&rest[..nl]);
            let line = String::from_utf8_lossy(partial);
            progressed =
                partial.len() > LONGEST_NOTICE || sf_adapters::is_progress(self.adapter, &line);
            if !progressed && sf_adapters::is_hopeless(self.adapter, &line) {
                self.hopeless.store(true, Ordering::Relaxed);
                self.wake.notify_one();
            }
            partial.clear();
            rest = &rest[nl + 1..];
            if progressed {
                // the rest of the chunk only matters for the line it leaves unfinished
                if let Some(last) = rest.iter().rposition(|&b| b == b'\n') {
                    rest = &rest[last + 1..];
                }
                break;
            }
        }
        partial.extend_from_slice(&rest[..rest.len().min(LONGEST_NOTICE + 1)]);
        if partial.len() > LONGEST_NOTICE {
            progressed = true;
            partial.truncate(LONGEST_NOTICE + 1);
        }
        if progressed {
            self.progressed();
        }
    }
}

impl Activity {
    /// [`Activity::saw`] with a tap: every complete line is looked at (and given to the
    /// tap), up to [`TAP_MAX`] bytes of a line kept.
    fn saw_every_line(&self, chunk: &[u8], partial: &mut Vec<u8>, tap: &LineTap) {
        let mut progressed = false;
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let whole = partial.len() + nl <= TAP_MAX;
            if whole {
                partial.extend_from_slice(&rest[..nl]);
            }
            let line = String::from_utf8_lossy(partial);
            if whole {
                (tap.0)(&line);
            }
            if !whole || sf_adapters::is_progress(self.adapter, &line) {
                progressed = true;
            } else if sf_adapters::is_hopeless(self.adapter, &line) {
                self.hopeless.store(true, Ordering::Relaxed);
                self.wake.notify_one();
            }
            partial.clear();
            rest = &rest[nl + 1..];
        }
        let room = (TAP_MAX + 1).saturating_sub(partial.len());
        partial.extend_from_slice(&rest[..rest.len().min(room)]);
        if progressed || partial.len() > TAP_MAX {
            self.progressed();
        }
    }
}

/// A running copier; [`Capture::finished`] waits for the end of the output.
#[derive(Debug, Clone)]
pub struct Capture {
    done: watch::Receiver<Option<CopyReport>>,
}

impl Capture {
    /// Waits until every writer closed the FIFO and the log is complete. `None` if the
    /// copier failed.
    pub async fn finished(mut self) -> Option<CopyReport> {
        self.done
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|r| *r)
    }
}

/// Copiers running in this process, by FIFO: a second copier on one FIFO would interleave.
static ACTIVE: LazyLock<Mutex<HashMap<PathBuf, watch::Receiver<Option<CopyReport>>>>> =
    LazyLock::new(Mutex::default);

/// The FIFO a run's output goes through.
pub fn fifo_path(log: &Path) -> PathBuf {
    suffixed(log, ".pipe")
}

/// The ring file holding the newest output past the head.
pub fn ring_path(log: &Path) -> PathBuf {
    suffixed(log, ".tail")
}

fn suffixed(log: &Path, suffix: &str) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Makes the FIFO of `log`, starts its copier, and returns the child's end (stdout and
/// stderr of the worker). The values of `secrets`, `(alias, value)` pairs, are replaced by
/// `[secret:ALIAS]` in what is written.
pub fn start(
    log: &Path,
    cap: LogCap,
    activity: Option<Activity>,
    secrets: &[(String, String)],
) -> io::Result<(File, Capture)> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let fifo = fifo_path(log);
    match std::fs::remove_file(&fifo) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).map_err(io::Error::from)?;
    let reader = open_reader(&fifo)?;
    // read-write: the child holds a reader too, so its writes never raise SIGPIPE
    let child_end = OpenOptions::new().read(true).write(true).open(&fifo)?;
    // a bigger buffer means fewer wake-ups at flood speed; refused above the system's
    // pipe-max-size for unprivileged users, which only costs speed
    let _ = fcntl(&child_end, FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
    let capture = spawn_copier(log, Some(reader), cap, activity, secrets)?;
    Ok((child_end, capture))
}

/// After a daemon restart: starts the copier of `log` again if its run's output still
/// goes through a FIFO (or finishes its ring if the FIFO is gone). `None` when the log has
/// neither (it was finished, or the run wrote its log directly). `secrets` are the run's, as
/// for [`start`]: the copier that is started again must be given them again.
pub fn resume(log: &Path, cap: LogCap, secrets: &[(String, String)]) -> Option<Capture> {
    let fifo = fifo_path(log);
    if let Some(done) = active().get(&fifo) {
        return Some(Capture { done: done.clone() });
    }
    let reader = if fifo.exists() {
        match open_reader(&fifo) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(fifo = %fifo.display(), error = %e, "failed to reopen a run's output");
                None
            }
        }
    } else {
        None
    };
    if reader.is_none() && !ring_path(log).exists() {
        return None;
    }
    match spawn_copier(log, reader, cap, None, secrets) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(log = %log.display(), error = %e, "failed to resume a run's log");
            None
        }
    }
}

/// The copier of `log` running in this process, if any (never starts one: see [`resume`]).
pub fn running(log: &Path) -> Option<Capture> {
    active()
        .get(&fifo_path(log))
        .map(|done| Capture { done: done.clone() })
}

fn active() -> std::sync::MutexGuard<'static, HashMap<PathBuf, watch::Receiver<Option<CopyReport>>>>
{
    ACTIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Opens a FIFO for reading without waiting for a writer, then makes reads block.
fn open_reader(fifo: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(fifo)?;
    fcntl(&f, FcntlArg::F_SETFL(OFlag::empty())).map_err(io::Error::from)?;
    Ok(f)
}

fn spawn_copier(
    log: &Path,
    reader: Option<File>,
    cap: LogCap,
    activity: Option<Activity>,
    secrets: &[(String, String)],
) -> io::Result<Capture> {
    let fifo = fifo_path(log);
    let (tx, rx) = watch::channel(None);
    let mut copier = Copier::open(log, cap)?;
    copier.activity = activity;
    copier.redactor = Redactor::new(secrets);
    active().insert(fifo.clone(), rx.clone());
    let name = format!(
        "sf-log-{}",
        log.file_stem()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default()
    );
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let report = copier.run(reader);
        let _ = std::fs::remove_file(&fifo);
        active().remove(&fifo);
        let _ = tx.send(Some(report));
    });
    if let Err(e) = spawned {
        active().remove(&fifo_path(log));
        return Err(e);
    }
    Ok(Capture { done: rx })
}

/// The copier's state; everything in it can be rebuilt from the files.
struct Copier {
    log: File,
    log_path: PathBuf,
    /// Bytes in the log file.
    len: u64,
    /// Whether the log ends with a newline (markers go on lines of their own).
    at_line_start: bool,
    ring: Option<Ring>,
    cap: LogCap,
    report: CopyReport,
    /// Progress seen in the output, and the start of its last, unfinished line.
    activity: Option<Activity>,
    partial: Vec<u8>,
    /// Replaces the values of the run's secrets before anything is written.
    redactor: Option<Redactor>,
}

struct Ring {
    file: File,
    /// Bytes ever written to the ring.
    total: u64,
}

impl Copier {
    fn open(log_path: &Path, cap: LogCap) -> io::Result<Self> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .open(log_path)?;
        let len = log.metadata()?.len();
        let mut last = [b'\n'];
        if len > 0 {
            log.read_exact_at(&mut last, len - 1)?;
        }
        let ring_path = ring_path(log_path);
        let ring = if ring_path.exists() {
            let file = OpenOptions::new().read(true).write(true).open(&ring_path)?;
            let mut header = [0u8; HEADER as usize];
            let total = match file.read_exact_at(&mut header, 0) {
                Ok(()) => u64::from_le_bytes(header),
                Err(_) => 0,
            };
            Some(Ring { file, total })
        } else {
            None
        };
        Ok(Self {
            log,
            log_path: log_path.to_owned(),
            len,
            at_line_start: last[0] == b'\n',
            ring,
            cap,
            report: CopyReport::default(),
            activity: None,
            partial: Vec::new(),
            redactor: None,
        })
    }

    /// Copies until every writer closed the FIFO, then finishes the log.
    fn run(&mut self, reader: Option<File>) -> CopyReport {
        if let Some(mut reader) = reader {
            let mut buf = vec![0u8; CHUNK];
            let mut redacted = Vec::new();
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        self.report.read += n as u64;
                        let out = match self.redactor.as_mut() {
                            Some(r) => {
                                redacted.clear();
                                r.push(&buf[..n], &mut redacted);
                                &redacted[..]
                            }
                            None => &buf[..n],
                        };
                        if let Some(a) = &self.activity {
                            a.saw(out, &mut self.partial);
                        }
                        self.take(out);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(log = %self.log_path.display(), error = %e, "failed to read a run's output");
                        break;
                    }
                }
            }
        }
        if let Some(mut r) = self.redactor.take() {
            let mut rest = Vec::new();
            r.finish(&mut rest);
            self.take(&rest);
        }
        self.finish();
        self.report
    }

    fn take(&mut self, mut data: &[u8]) {
        if self.ring.is_none() {
            let room =
                usize::try_from(self.cap.head.saturating_sub(self.len)).unwrap_or(usize::MAX);
            let k = room.min(data.len());
            if k > 0 {
                self.append(&data[..k]);
                data = &data[k..];
            }
            if data.is_empty() {
                return;
            }
            let marker = format!(
                "[sf] log cap reached: the first {} bytes are kept above; later output is kept \
                 only as its last {} bytes, added below when the run ends (run_log_max in \
                 .sf/config.toml)\n",
                self.cap.head, self.cap.tail
            );
            self.marker(&marker);
            match self.open_ring() {
                Ok(r) => self.ring = Some(r),
                Err(e) => {
                    tracing::warn!(log = %self.log_path.display(), error = %e, "failed to create a run's tail file");
                    self.report.lost += data.len() as u64;
                    return;
                }
            }
        }
        self.ring_write(data);
    }

    fn open_ring(&self) -> io::Result<Ring> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(ring_path(&self.log_path))?;
        file.write_all_at(&0u64.to_le_bytes(), 0)?;
        Ok(Ring { file, total: 0 })
    }

    fn ring_write(&mut self, data: &[u8]) {
        let size = self.cap.tail;
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        // only the last `size` bytes of this chunk can survive it
        let skip = (data.len() as u64).saturating_sub(size);
        let (mut total, mut rest) = (
            ring.total + skip,
            &data[usize::try_from(skip).unwrap_or(0)..],
        );
        let mut ok = true;
        while !rest.is_empty() {
            let pos = total % size;
            let k = usize::try_from(size - pos)
                .unwrap_or(usize::MAX)
                .min(rest.len());
            ok &= ring.file.write_all_at(&rest[..k], HEADER + pos).is_ok();
            total += k as u64;
            rest = &rest[k..];
        }
        ok &= ring.file.write_all_at(&total.to_le_bytes(), 0).is_ok();
        ring.total = total;
        if !ok {
            self.report.lost += data.len() as u64;
        }
    }

    fn append(&mut self, data: &[u8]) {
        match self.log.write_all(data) {
            Ok(()) => {
                self.len += data.len() as u64;
                self.at_line_start = data.last() == Some(&b'\n');
            }
            Err(_) => self.report.lost += data.len() as u64,
        }
    }

    fn marker(&mut self, text: &str) {
        if !self.at_line_start {
            self.append(b"\n");
        }
        self.append(text.as_bytes());
    }

    /// Appends the drop marker and the ring's content to the log, then removes the ring.
    fn finish(&mut self) {
        let Some(ring) = self.ring.take() else {
            return;
        };
        let size = self.cap.tail;
        let kept = ring.total.min(size);
        let (mut start, end) = (ring.total - kept, ring.total);
        // begin at a line start when the newest output is lines
        if ring.total > size {
            let mut probe = vec![0u8; usize::try_from(kept.min(64 << 10)).unwrap_or(0)];
            if read_ring(&ring.file, size, start, &mut probe).is_ok()
                && let Some(nl) = probe.iter().position(|&b| b == b'\n')
            {
                start += nl as u64 + 1;
            }
        }
        let dropped = ring.total - (end - start);
        self.report.dropped += dropped;
        let marker = format!(
            "[sf] {dropped} bytes of output dropped here (log cap {} bytes); the last {} bytes follow\n",
            self.cap.max(),
            end - start
        );
        self.marker(&marker);
        let mut buf = vec![0u8; CHUNK.min(usize::try_from(end - start).unwrap_or(CHUNK))];
        while start < end {
            let k = buf
                .len()
                .min(usize::try_from(end - start).unwrap_or(usize::MAX));
            if read_ring(&ring.file, size, start, &mut buf[..k]).is_err() {
                self.report.lost += end - start;
                break;
            }
            self.append(&buf[..k]);
            start += k as u64;
        }
        drop(ring);
        let _ = std::fs::remove_file(ring_path(&self.log_path));
    }
}

/// Reads `buf.len()` bytes of the output stream starting at stream offset `at` from a ring
/// of `size` bytes.
fn read_ring(file: &File, size: u64, mut at: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let pos = at % size;
        let k = usize::try_from(size - pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        file.read_exact_at(&mut buf[..k], HEADER + pos)?;
        at += k as u64;
        buf = &mut buf[k..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{SpawnSpec, spawn};

    fn sh(dir: &Path, script: &str, cap: Option<LogCap>) -> SpawnSpec {
        SpawnSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: dir.to_owned(),
            log_path: dir.join("logs/run.log"),
            log_cap: cap,
            stdin: None,
            activity: None,
            sandbox: None,
            secrets: Vec::new(),
        }
    }

    async fn run(spec: &SpawnSpec) -> CopyReport {
        let mut w = spawn(spec).unwrap();
        let status = w.child.wait().await.unwrap();
        assert!(status.success(), "{status}");
        w.log.take().unwrap().finished().await.unwrap()
    }

    #[tokio::test]
    async fn a_flood_keeps_the_head_and_the_tail_and_says_what_was_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cap = LogCap::new(MIN_MAX);
        let spec = sh(
            dir.path(),
            "echo first; i=0; while [ $i -lt 3000 ]; do echo \"line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; i=$((i+1)); done; echo last >&2",
            Some(cap),
        );
        let report = run(&spec).await;
        let log = std::fs::read_to_string(&spec.log_path).unwrap();
        assert!(log.starts_with("first\nline 0 "), "{}", &log[..100]);
        assert!(
            log.ends_with(
                "line 2999 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nlast\n"
            )
        );
        assert!(log.len() as u64 <= cap.max() + 1024, "{} bytes", log.len());
        assert!(log.contains("[sf] log cap reached"), "no first marker");
        let dropped = format!("[sf] {} bytes of output dropped here", report.dropped);
        assert!(log.contains(&dropped), "no `{dropped}` in the log");
        // nothing else was lost: kept + dropped = everything the worker wrote (give or take
        // the newline that puts a marker on a line of its own)
        let kept = log.len() as u64
            - log
                .lines()
                .filter(|l| l.starts_with("[sf] "))
                .map(|l| l.len() as u64 + 1)
                .sum::<u64>();
        let expected = report.read - report.dropped;
        assert!(
            (expected..=expected + 1).contains(&kept),
            "{kept} kept, {report:?}"
        );
        assert_eq!(report.lost, 0);
        // the tail starts on a line of its own
        let after = log.split_once(&dropped).unwrap().1;
        let first_tail_line = after.lines().nth(1).unwrap();
        assert!(first_tail_line.starts_with("line "), "{first_tail_line}");
        assert!(!fifo_path(&spec.log_path).exists());
        assert!(!ring_path(&spec.log_path).exists());
    }

    #[tokio::test]
    async fn output_under_the_cap_is_kept_whole_without_markers() {
        let dir = tempfile::tempdir().unwrap();
        let spec = sh(
            dir.path(),
            "echo out; echo err >&2; printf tail",
            Some(LogCap::new(MIN_MAX)),
        );
        let report = run(&spec).await;
        assert_eq!(
            std::fs::read_to_string(&spec.log_path).unwrap(),
            "out\nerr\ntail"
        );
        assert_eq!(
            report,
            CopyReport {
                read: 12,
                dropped: 0,
                lost: 0
            }
        );
    }

    const VALUE: &str = "sk-test-9f8e7d6c5b4a";

    fn holding_secret(mut spec: SpawnSpec) -> SpawnSpec {
        spec.env.push(("API_KEY".into(), VALUE.into()));
        spec.secrets = vec![("API_KEY".into(), VALUE.into())];
        spec
    }

    #[tokio::test]
    async fn a_secret_printed_in_pieces_is_replaced_in_the_head_and_in_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        // in two writes, then past the head so that the ring holds it too
        let spec = holding_secret(sh(
            dir.path(),
            "printf 'key=%s' \"${API_KEY%??????????}\"; sleep 0.2; printf '%s\\n' \"${API_KEY#??????????}\"; \
             i=0; while [ $i -lt 2000 ]; do echo \"line $i $API_KEY xxxxxxxxxxxxxxxxxxxxxxxxx\"; i=$((i+1)); done; \
             printf 'end %s' \"$API_KEY\"",
            Some(LogCap::new(MIN_MAX)),
        ));
        let report = run(&spec).await;
        assert!(report.dropped > 0, "{report:?}");
        let log = std::fs::read_to_string(&spec.log_path).unwrap();
        assert!(log.starts_with("key=[secret:API_KEY]\nline 0 [secret:API_KEY] x"));
        assert!(log.contains("line 1999 [secret:API_KEY] x"), "the tail");
        assert!(log.ends_with("\nend [secret:API_KEY]"));
        assert!(!log.contains("9f8e7d"), "{log}");
    }

    #[tokio::test]
    async fn a_resumed_copier_replaces_the_secrets_it_is_given_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        // a run whose first copier died: its FIFO is there, written to by the child
        nix::unistd::mkfifo(&fifo_path(&log), Mode::from_bits_truncate(0o600)).unwrap();
        let mut child_end = OpenOptions::new()
            .read(true)
            .write(true)
            .open(fifo_path(&log))
            .unwrap();
        child_end.write_all(b"before sk-test-9f").unwrap();
        let secrets = [("API_KEY".to_owned(), VALUE.to_owned())];
        let capture = resume(&log, LogCap::new(MIN_MAX), &secrets).unwrap();
        child_end
            .write_all(format!("8e7d6c5b4a after {VALUE}\n").as_bytes())
            .unwrap();
        drop(child_end);
        capture.finished().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "before [secret:API_KEY] after [secret:API_KEY]\n"
        );
    }

    #[tokio::test]
    async fn a_process_holding_secrets_is_not_started_without_a_capped_log() {
        let dir = tempfile::tempdir().unwrap();
        let spec = holding_secret(sh(dir.path(), "echo $API_KEY", None));
        let err = spawn(&spec).unwrap_err();
        assert!(
            crate::error_chain(&err).contains("needs a capped log"),
            "{err}"
        );
        assert!(!spec.log_path.exists());
    }

    #[test]
    fn a_copier_that_died_is_resumed_from_the_files_without_losing_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        let cap = LogCap::new(MIN_MAX);
        let line = |i: u32| format!("{i:07} {}\n", "y".repeat(56));
        {
            // the first daemon: head, marker, part of the ring, then it is killed
            let mut c = Copier::open(&log, cap).unwrap();
            for i in 0..2000 {
                c.take(line(i).as_bytes());
            }
        }
        let mut c = Copier::open(&log, cap).unwrap();
        for i in 2000..2100 {
            c.take(line(i).as_bytes());
        }
        let report = c.run(None);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with(&line(0)));
        assert!(text.ends_with(&line(2099)));
        assert_eq!(text.matches("[sf] log cap reached").count(), 1);
        let tail = text.split_once("bytes follow\n").unwrap().1;
        let first: u32 = tail[..7].parse().unwrap();
        // the ring held the newest `tail` bytes across the restart, in order
        for (n, l) in tail.lines().enumerate() {
            assert_eq!(format!("{l}\n"), line(first + n as u32));
        }
        assert!(report.dropped > 0);
        assert!(!ring_path(&log).exists());
    }
}
