//! Temporary git repositories with an sf workspace, and a real `sfd` running over them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sf_client::Client;
use sf_proto::paths::WorkspacePaths;
use sf_proto::{Request, Response};

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
        Ok(Self {
            rss_kb: field("VmRSS:")?,
            hwm_kb: field("VmHWM:")?,
            threads: field("Threads:")?,
            cpu_ticks: utime + stime,
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
