//! Temporary git repositories with an sf workspace, and a real `sfd` running over them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use sf_client::Client;
use sf_proto::paths::WorkspacePaths;
use sf_proto::{AuditEvent, Request, Response};

/// The release binaries, found next to this executable.
#[derive(Debug, Clone)]
pub struct Bins {
    pub sfd: PathBuf,
    pub sfctl: PathBuf,
}

impl Bins {
    pub fn locate() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("failed to find the bench executable")?;
        let dir = exe
            .parent()
            .context("the bench executable has no directory")?;
        let bins = Self {
            sfd: dir.join("sfd"),
            sfctl: dir.join("sfctl"),
        };
        for b in [&bins.sfd, &bins.sfctl] {
            if !b.is_file() {
                bail!(
                    "{} is missing: build the binaries first with \
                     `cargo build --release -p sfd -p sfctl`",
                    b.display()
                );
            }
        }
        if !dir.ends_with("release") {
            eprintln!(
                "warning: running from {}, not a release build; figures are meaningless",
                dir.display()
            );
        }
        Ok(bins)
    }
}

/// A hermetic git command (no user or system configuration).
fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .stdout(Stdio::null());
    c
}

fn check(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("failed to run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A temporary git repository with one commit and `sfctl init` done.
#[derive(Debug)]
pub struct Workspace {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub paths: WorkspacePaths,
}

impl Workspace {
    pub fn new(bins: &Bins) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("sf-bench-").tempdir()?;
        let root = dir.path().canonicalize()?;
        check(git(&root).args(["init", "-q", "-b", "main"]), "git init")?;
        std::fs::write(root.join("README"), "bench\n")?;
        check(git(&root).args(["add", "README"]), "git add")?;
        check(
            git(&root).args(["commit", "-q", "-m", "init"]),
            "git commit",
        )?;
        check(
            Command::new(&bins.sfctl).arg("init").current_dir(&root),
            "sfctl init",
        )?;
        let paths = WorkspacePaths::new(&root);
        Ok(Self {
            _dir: dir,
            root,
            paths,
        })
    }

    /// Replaces `.sf/config.toml` (top-level keys first, then the tables): `sfctl` set to
    /// the bench's binary, `max_workers`, a 1 s `complete_grace`, `[merge] test_command`.
    pub fn configure(
        &self,
        bins: &Bins,
        max_workers: u32,
        test_command: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut text = format!(
            "# written by sf-bench\nsfctl = {:?}\nmax_workers = {max_workers}\n\
             complete_grace = \"1s\"\n",
            bins.sfctl.display().to_string()
        );
        if let Some(t) = test_command {
            text.push_str(&format!("\n[merge]\ntest_command = {t:?}\n"));
        }
        // the bench agent stamps times into a folder of the bench's, outside what a
        // sandboxed run may write: these benches measure sf's own costs, and `sf-bench
        // spawn` what the sandbox adds to each spawn
        text.push_str("\n[sandbox]\nmode = \"off\"\n");
        std::fs::write(self.paths.config(), text)?;
        Ok(())
    }

    /// Turns the sandbox on (`[sandbox] mode = "full"`, the default users get) in a
    /// configuration written by [`Self::configure`].
    pub fn sandbox_full(&self) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(self.paths.config())?;
        anyhow::ensure!(
            text.contains("mode = \"off\""),
            "no sandbox line in the bench config"
        );
        std::fs::write(
            self.paths.config(),
            text.replacen("mode = \"off\"", "mode = \"full\"", 1),
        )?;
        Ok(())
    }

    /// Runs a hermetic git command in the repository; fails on a non-zero exit.
    pub fn git(&self, args: &[&str]) -> anyhow::Result<()> {
        check(
            git(&self.root).args(args),
            &format!("git {}", args.join(" ")),
        )
    }

    /// An `sfctl` command run from the repository.
    pub fn sfctl(&self, bins: &Bins) -> Command {
        let mut c = Command::new(&bins.sfctl);
        c.current_dir(&self.root).env("NO_COLOR", "1");
        c
    }
}

/// A running `sfd`, stopped (gracefully, else killed) on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub pid: u32,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// From spawn to the first answered handshake.
    pub startup: Duration,
}

impl Daemon {
    pub fn start(bins: &Bins, ws: &Workspace) -> anyhow::Result<Self> {
        let log = ws.root.join("sfd-bench.log");
        let stderr = File::create(&log)?;
        let start = Instant::now();
        let mut child = Command::new(&bins.sfd)
            .arg("--workspace")
            .arg(&ws.root)
            .current_dir(&ws.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("failed to spawn sfd")?;
        let socket = ws.paths.socket();
        loop {
            if let Ok(c) = Client::connect(&socket, "sf-bench", None) {
                drop(c);
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "sfd exited with {status} before answering; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("sfd did not answer within 60 s; log at {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(Self {
            pid: child.id(),
            child,
            socket,
            log,
            startup: start.elapsed(),
        })
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.socket, "sf-bench", None)?)
    }

    /// One request; a refusal is an error.
    pub fn request(&self, req: &Request) -> anyhow::Result<Response> {
        Ok(self.client()?.request(req)?)
    }

    /// Asks sfd to shut down and waits for it.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        let _ = self.request(&Request::Shutdown);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("sfd did not stop within 10 s and was killed")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("warning: {e:#}");
        }
    }
}

/// What `/proc/<pid>` says about a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// Resident set, in kB.
    pub rss_kb: u64,
    /// Peak resident set, in kB.
    pub hwm_kb: u64,
    pub threads: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// cutime + cstime: CPU of children it has waited for (workers, git, tests), in ticks.
    pub child_ticks: u64,
}

impl ProcSample {
    pub fn read(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
            let num = line.split_whitespace().next().context("empty field")?;
            Ok(num.parse()?)
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // the command name may hold spaces and parentheses: split after the last ')'
        let rest = &stat[stat.rfind(')').context("malformed stat")? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // fields 14 and 15 of stat(5); `rest` starts at field 3
        let utime: u64 = f.get(11).context("short stat")?.parse()?;
        let stime: u64 = f.get(12).context("short stat")?.parse()?;
        let cutime: u64 = f.get(13).context("short stat")?.parse()?;
        let cstime: u64 = f.get(14).context("short stat")?.parse()?;
        Ok(Self {
            rss_kb: field("VmRSS:")?,
            hwm_kb: field("VmHWM:")?,
            threads: field("Threads:")?,
            cpu_ticks: utime + stime,
            child_ticks: cutime + cstime,
        })
    }
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if that fails).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Megabytes (10^6 bytes, the stricter reading of "30 MB") from the kB (KiB) of `/proc`.
pub fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

/// A hermetic git command in `dir` (no user or system configuration), stdout discarded.
pub fn git_in(dir: &Path) -> Command {
    git(dir)
}

/// Runs `cmd`; fails with its stderr on a non-zero exit.
pub fn run_checked(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    check(cmd, what)
}

/// The scripted worker: records when it starts (`date +%s%N`, CLOCK_REALTIME, into
/// `<results>/<task>.start`), writes one file of its own, commits it, records the time again
/// (`<task>.done`), runs `sfctl task complete`, then records the time it returned
/// (`<task>.end`). Argument: the results directory.
pub const AGENT_SCRIPT: &str = r#"#!/bin/sh
date +%s%N > "$1/$SF_TASK_ID.start"
echo "$SF_TASK_ID" > "bench-$SF_TASK_ID.txt"
git -c user.name=bench -c user.email=bench@example.invalid add -A
git -c user.name=bench -c user.email=bench@example.invalid commit -qm "bench $SF_TASK_ID"
date +%s%N > "$1/$SF_TASK_ID.done"
sfctl task complete --summary done > /dev/null
date +%s%N > "$1/$SF_TASK_ID.end"
"#;

/// A results directory holding the agent script, and the command line to register it with.
#[derive(Debug)]
pub struct Agent {
    _dir: tempfile::TempDir,
    pub results: PathBuf,
    pub command: String,
}

impl Agent {
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sf-bench-agent-")
            .tempdir()?;
        let root = dir.path().canonicalize()?;
        let script = root.join("agent.sh");
        std::fs::write(&script, AGENT_SCRIPT)?;
        let results = root.join("results");
        std::fs::create_dir(&results)?;
        Ok(Self {
            command: format!("/bin/sh {} {}", script.display(), results.display()),
            _dir: dir,
            results,
        })
    }

    /// An agent whose script and stamps live in agent `name`'s private HOME in `ws`, where
    /// its sandboxed run may read and write them (see [`Agent::new`]).
    pub fn inside(ws: &Workspace, name: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sf-bench-agent-")
            .tempdir()?;
        let home = ws.paths.dir.join("home").join(name);
        std::fs::create_dir_all(&home)?;
        let script = home.join("agent.sh");
        std::fs::write(&script, AGENT_SCRIPT)?;
        let results = home.join("results");
        std::fs::create_dir_all(&results)?;
        Ok(Self {
            command: format!("/bin/sh {} {}", script.display(), results.display()),
            _dir: dir,
            results,
        })
    }

    /// A time the agent recorded for `task` (`start`, `done` or `end`), once it exists.
    pub fn stamp(&self, task: &str, which: &str) -> Option<SystemTime> {
        let text = std::fs::read_to_string(self.results.join(format!("{task}.{which}"))).ok()?;
        let ns: u64 = text.trim().parse().ok()?;
        Some(UNIX_EPOCH + Duration::from_nanos(ns))
    }

    /// Waits for a stamp, up to `timeout`.
    pub fn wait_stamp(
        &self,
        task: &str,
        which: &str,
        timeout: Duration,
    ) -> anyhow::Result<SystemTime> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = self.stamp(task, which) {
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!("the worker of task {task} wrote no `{which}` stamp within {timeout:?}");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

/// Registers agents through `sfctl agent register`.
pub fn register(bins: &Bins, ws: &Workspace, name: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut c = ws.sfctl(bins);
    c.args(["agent", "register", name]).args(args);
    check(&mut c, &format!("sfctl agent register {name}"))
}

/// Registers `n` ephemeral workers `w1`..`wn` running `agent`.
pub fn register_workers(
    bins: &Bins,
    ws: &Workspace,
    agent: &Agent,
    n: usize,
) -> anyhow::Result<()> {
    for i in 1..=n {
        register(
            bins,
            ws,
            &format!("w{i}"),
            &["--role", "worker", "--command", &agent.command],
        )?;
    }
    Ok(())
}

/// `sfctl task create -q TITLE`: the new id, and when the process returned.
pub fn create_task(
    bins: &Bins,
    ws: &Workspace,
    title: &str,
) -> anyhow::Result<(String, SystemTime, Duration)> {
    let t = Instant::now();
    let out = ws
        .sfctl(bins)
        .args(["task", "create", "-q", title])
        .stderr(Stdio::piped())
        .output()
        .context("failed to run sfctl task create")?;
    let returned = SystemTime::now();
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "sfctl task create failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let id = String::from_utf8(out.stdout)?.trim().to_owned();
    Ok((id, returned, took))
}

/// Every audit event as it arrives, with the bench's clock at arrival, collected by a thread
/// following the daemon's event stream (`FollowEvents`).
#[derive(Debug)]
pub struct EventLog {
    rx: std::sync::mpsc::Receiver<(AuditEvent, SystemTime)>,
    pub seen: Vec<(AuditEvent, SystemTime)>,
}

impl EventLog {
    pub fn follow(daemon: &Daemon) -> anyhow::Result<Self> {
        let mut client = daemon.client()?;
        client.send(&Request::FollowEvents {
            since: None,
            task: None,
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(r) = client.recv() {
                if let Response::Event(e) = r
                    && tx.send((e, SystemTime::now())).is_err()
                {
                    break;
                }
            }
        });
        Ok(Self {
            rx,
            seen: Vec::new(),
        })
    }

    /// Waits until `done` holds over the events seen so far, up to `timeout`.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[(AuditEvent, SystemTime)]) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out after {timeout:?} waiting for events");
            }
            match self.rx.recv_timeout(left) {
                Ok(e) => self.seen.push(e),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(e) => bail!("the event stream ended: {e}"),
            }
        }
        Ok(())
    }

    /// How many events with `action` were seen.
    pub fn count(&self, action: &str) -> usize {
        self.seen.iter().filter(|(e, _)| e.action == action).count()
    }
}

/// The whole worker count of the daemon (`Status`).
pub fn running_workers(daemon: &Daemon) -> anyhow::Result<u32> {
    match daemon.request(&Request::Status)? {
        Response::Status(s) => Ok(s.running_workers),
        other => bail!("unexpected response to Status: {other:?}"),
    }
}

/// Waits until the daemon runs no worker.
pub fn wait_no_workers(daemon: &Daemon, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while running_workers(daemon)? > 0 {
        if Instant::now() > deadline {
            bail!("workers still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Load average over the last minute, and how many cores.
pub fn load() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "load average {} on {} cores",
        l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        std::thread::available_parallelism().map_or(0, usize::from)
    )
}
