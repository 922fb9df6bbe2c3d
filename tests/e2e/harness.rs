//! The real-binary harness: a temp git repository, `sfctl-dup init` in it, `sfd-dup` spawned
//! on its socket, and a `#[must_use]` builder around `sfctl-dup`. Everything is hermetic:
//! `env_clear()`, HOME inside the tempdir, no global or system git config.
//!
//! Size: the one harness every end-to-end test uses (daemon, CLI builder, waits, dumps); its
//! parts are used together.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;
use sf_proto::paths::WorkspacePaths;
use sf_proto::{
    AuditEvent, Hello, PROTOCOL_VERSION, Response, TaskDetail, TaskSummary, read_frame, write_frame,
};
use tempfile::TempDir;

pub const SFD: &str = env!("CARGO_BIN_EXE_sfd-dup");
pub const SFCTL: &str = env!("CARGO_BIN_EXE_sfctl-dup");

/// How long the daemon gets to answer after being spawned.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// The default deadline of [`eventually`] and [`TestDaemon::wait_for`].
pub const WAIT_DEADLINE: Duration = Duration::from_secs(15);

/// Polls `f` until it returns `Some`, or panics after `deadline` naming `what`.
pub fn eventually<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A workspace in a temp git repository, with (usually) a daemon running on it.
pub struct TestDaemon {
    dir: Option<TempDir>,
    /// The tempdir (canonical).
    pub root: PathBuf,
    /// The git repository and workspace root.
    pub repo: PathBuf,
    /// `HOME` of every process the harness starts.
    pub home: PathBuf,
    /// The daemon's socket.
    pub socket: PathBuf,
    /// Where the daemon's stderr goes (appended to across restarts).
    pub stderr_path: PathBuf,
    child: Option<Child>,
    /// The ordinary user sfd and sfctl run as (see [`Self::run_as`]); `None`: the tests'.
    user: Option<(u32, u32)>,
}

/// The `[sandbox]` header with the harness's `mode = "off"` (see [`TestDaemon::stopped`]).
const SANDBOX_OFF: &str = "\n[sandbox]\nmode = \"off\"\n";

impl TestDaemon {
    /// A git repository with one commit, `sfctl init` run in it, and `sfd` answering.
    pub fn start() -> Self {
        let mut td = Self::stopped();
        td.spawn();
        td
    }

    /// A git repository with one commit and `sfctl init` run in it; no daemon.
    pub fn stopped() -> Self {
        let td = Self::uninitialised();
        td.sfctl().args(["init"]).success();
        let cfg = td.repo.join(".sf/config.toml");
        let text = fs::read_to_string(&cfg).unwrap_or_else(|e| {
            panic!(
                "`sfctl init` did not create .sf/config.toml ({e})\n{}",
                td.listing()
            )
        });
        // the fake agent's scripts and markers live in the test's folder, outside what a
        // sandboxed run may reach: the tests of the sandbox turn it on (`sandbox_mode`)
        fs::write(&cfg, text.replacen("\n[sandbox]\n", SANDBOX_OFF, 1)).expect("write config");
        td
    }

    /// Sets `[sandbox]` lines (`mode = …` and more) in a stopped workspace's config in place
    /// of the harness's `mode = "off"`.
    pub fn sandbox_mode(&self, lines: &str) {
        let cfg = self.repo.join(".sf/config.toml");
        let text = fs::read_to_string(&cfg).expect("read config");
        assert!(text.contains(SANDBOX_OFF), "{text}");
        fs::write(
            &cfg,
            text.replacen(SANDBOX_OFF, &format!("\n[sandbox]\n{lines}\n"), 1),
        )
        .expect("write config");
    }

    /// A git repository with one commit on `main`; no `.sf/`, no daemon.
    pub fn uninitialised() -> Self {
        Self::uninitialised_at("repo")
    }

    /// Like [`Self::uninitialised`], with the repository at `rel` inside the tempdir.
    pub fn uninitialised_at(rel: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sf-e2e-")
            .tempdir()
            .expect("create tempdir");
        let root = fs::canonicalize(dir.path()).expect("canonicalize tempdir");
        let repo = root.join(rel);
        let home = root.join("home");
        fs::create_dir_all(home.join(".config")).expect("create HOME");
        let runtime = root.join("xdg");
        fs::create_dir_all(&runtime).expect("create XDG_RUNTIME_DIR");
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).expect("chmod 0700");
        init_git_repo(&repo);
        // When `<repo>/.sf/run/sfd.sock` is too long the socket moves under XDG_RUNTIME_DIR,
        // which the hermetic environment points into the tempdir.
        let socket = WorkspacePaths::new(&repo)
            .socket_dir_in(Some(&runtime))
            .join("sfd.sock");
        let stderr_path = root.join("sfd.stderr");
        Self {
            dir: Some(dir),
            root,
            repo,
            home,
            socket,
            stderr_path,
            child: None,
            user: None,
        }
    }

    /// [`Self::start`] with the repository at `rel` inside the tempdir.
    pub fn start_at(rel: &str) -> Self {
        let mut td = Self::uninitialised_at(rel);
        td.sfctl().args(["init"]).success();
        td.spawn();
        td
    }

    /// The environment every harness process starts from (after `env_clear`).
    pub fn hermetic_env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            (
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            ),
            ("HOME", self.home.clone().into()),
            ("XDG_CONFIG_HOME", self.home.join(".config").into()),
            ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
            ("GIT_CONFIG_SYSTEM", "/dev/null".into()),
            ("GIT_CEILING_DIRECTORIES", self.root.clone().into()),
            ("XDG_RUNTIME_DIR", self.root.join("xdg").into()),
            ("SF_LOG", "debug".into()),
            ("NO_COLOR", "1".into()),
            ("SF_SFD", SFD.into()),
        ]
    }

    /// A `sfd-dup --workspace <repo>` command with the hermetic environment, not yet spawned.
    pub fn sfd_command(&self) -> Command {
        let mut cmd = match self.user {
            Some((uid, gid)) => {
                let mut c = Command::new(reachable(SFD));
                c.uid(uid).gid(gid);
                c
            }
            None => Command::new(SFD),
        };
        cmd.arg("--workspace")
            .arg(&self.repo)
            .current_dir(&self.repo)
            .env_clear();
        for (k, v) in self.hermetic_env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Spawns the daemon as a child and waits until it answers a handshake.
    pub fn spawn(&mut self) {
        self.spawn_with(&[]);
    }

    /// [`Self::spawn`] with extra environment variables (e.g. `SF_TEST_CRASH_AT`).
    pub fn spawn_with(&mut self, env: &[(&str, &str)]) {
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("open daemon stderr file");
        self.spawn_inner(env, stderr.into());
    }

    /// [`Self::spawn`] with the daemon's stderr going to `stderr` (e.g. `/dev/full`).
    pub fn spawn_with_stderr(&mut self, stderr: Stdio) {
        self.spawn_inner(&[], stderr);
    }

    fn spawn_inner(&mut self, env: &[(&str, &str)], stderr: Stdio) {
        assert!(self.child.is_none(), "the daemon is already running");
        let mut cmd = self.sfd_command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn sfd-dup");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait sfd") {
                panic!(
                    "sfd-dup exited with {status} before answering on {}\n{}",
                    self.socket.display(),
                    self.stderr_tail()
                );
            }
            if self.daemon_pid().is_some() {
                break;
            }
            if start.elapsed() > START_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "sfd-dup did not answer on {} within {START_DEADLINE:?}\n{}\n{}",
                    self.socket.display(),
                    self.stderr_tail(),
                    self.listing()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }

    /// The pid of the daemon child the harness spawned.
    pub fn child_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The pid of whatever daemon answers on the socket (asked as the user of
    /// [`Self::run_as`], whom alone it serves, if there is one).
    pub fn daemon_pid(&self) -> Option<u32> {
        if self.user.is_none() {
            return handshake_pid(&self.socket);
        }
        let out = self
            .sfctl()
            .args(["--json", "daemon", "status"])
            .command()
            .output()
            .ok()?;
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        status["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
    }

    /// `kill -9` the daemon child and reap it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("no daemon child to kill");
        signal(child.id(), Signal::SIGKILL);
        child.wait().expect("wait for killed sfd");
    }

    /// Waits until the daemon child kills itself at its `SF_TEST_CRASH_AT` point, and reaps it.
    pub fn wait_crashed(&mut self, deadline: Duration) {
        let mut child = self.child.take().expect("no daemon child");
        let status = eventually("sfd to reach its crash point", deadline, || {
            child.try_wait().expect("try_wait sfd")
        });
        use std::os::unix::process::ExitStatusExt as _;
        assert!(
            status.signal().is_some(),
            "sfd exited with {status} instead of being killed at its crash point\n{}",
            self.stderr_tail()
        );
    }

    /// Whether the daemon child has exited (it is not reaped; see [`Self::reap_crashed`]).
    pub fn child_exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("no daemon child");
        matches!(child.try_wait(), Ok(Some(_)))
    }

    /// Forgets the daemon child after [`Self::child_exited`] said it died at its crash point.
    pub fn reap_crashed(&mut self) {
        let mut child = self.child.take().expect("no daemon child");
        let _ = child.wait();
    }

    /// Spawns the daemon again (after [`Self::kill9`] or [`Self::shutdown`]).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.shutdown();
        }
        self.spawn();
    }

    /// SIGTERM, wait for the exit, and check that the socket file was removed.
    pub fn shutdown(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("no daemon child to stop");
        signal(child.id(), Signal::SIGTERM);
        let status = eventually("sfd to exit after SIGTERM", Duration::from_secs(15), || {
            child.try_wait().expect("try_wait sfd")
        });
        assert!(
            !self.socket.exists(),
            "the socket {} is still there after a graceful shutdown\n{}",
            self.socket.display(),
            self.stderr_tail()
        );
        status
    }

    /// A `sfctl-dup` invocation in the repository.
    /// From now on, sfd and sfctl run as the ordinary user `uid`:`gid` (the tests run as
    /// root in CI), who is given the whole tempdir; their binaries are copies any user can
    /// run ([`reachable`]).
    pub fn run_as(&mut self, uid: u32, gid: u32) {
        assert!(self.child.is_none(), "stop the daemon first");
        chown_tree(&self.root, uid, gid);
        self.user = Some((uid, gid));
    }

    /// Gives `path` (and what is under it) to the user of [`Self::run_as`], if any: for
    /// files the test writes for its daemon or its workers.
    pub fn give(&self, path: &Path) {
        if let Some((uid, gid)) = self.user {
            chown_tree(path, uid, gid);
        }
    }

    /// Whether sfd and sfctl run as another user ([`Self::run_as`]).
    pub fn runs_as_other_user(&self) -> bool {
        self.user.is_some()
    }

    pub fn sfctl(&self) -> Sfctl<'_> {
        Sfctl {
            td: self,
            program: if self.user.is_some() {
                reachable(SFCTL)
            } else {
                SFCTL.into()
            },
            args: Vec::new(),
            cwd: self.repo.clone(),
            env: Vec::new(),
            env_remove: Vec::new(),
        }
    }

    /// The last lines the daemon wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        format!(
            "--- sfd stderr (last {} lines) ---\n{}",
            tail.len(),
            tail.join("\n")
        )
    }

    /// The tempdir's files, for failure messages.
    pub fn listing(&self) -> String {
        let mut out = format!("--- files under {} ---\n", self.root.display());
        list_dir(&self.root, &self.root, 0, &mut out);
        out
    }

    /// Polls `f` until it returns `Some`; on timeout panics with the last state seen, the
    /// daemon's stderr and the tempdir listing.
    pub fn wait_for<T, S: std::fmt::Debug>(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<T, S>,
    ) -> T {
        let start = Instant::now();
        loop {
            match f() {
                Ok(v) => return v,
                Err(last) if start.elapsed() > WAIT_DEADLINE => panic!(
                    "timed out after {WAIT_DEADLINE:?} waiting for {what}\nlast state: \
                     {last:#?}\n{}\n{}",
                    self.stderr_tail(),
                    self.listing()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(25)),
            }
        }
    }

    /// A connected protocol client.
    pub fn client(&self) -> sf_client::Client {
        sf_client::Client::connect(&self.socket, "sf-tests", Some("human:tester".into()))
            .unwrap_or_else(|e| panic!("failed to connect: {e:?}\n{}", self.stderr_tail()))
    }

    /// Replaces each id with its name (`[A]`, `[B]`, ...) and the tempdir with `[TMP]`, for
    /// snapshots.
    pub fn redact(&self, text: &str, names: &[(&str, &str)]) -> String {
        let mut out = text.replace(&self.root.display().to_string(), "[TMP]");
        for (id, name) in names {
            out = out.replace(id, name);
        }
        out
    }

    // Shorthands for the commands most tests need.

    /// `sfctl task create TITLE ARGS... --json`.
    pub fn create_task(&self, title: &str, args: &[&str]) -> TaskDetail {
        self.sfctl()
            .args(["task", "create", title])
            .args(args)
            .json()
    }

    /// `sfctl task show ID --json`.
    pub fn show_task(&self, id: &str) -> TaskDetail {
        self.sfctl().args(["task", "show", id]).json()
    }

    /// `sfctl task list ARGS... --json`.
    pub fn list_tasks(&self, args: &[&str]) -> Vec<TaskSummary> {
        self.sfctl().args(["task", "list"]).args(args).json()
    }

    /// Waits until the daemon has run its phases (dispatch, timers, merges, stewards) `n`
    /// more times: what it would do next has had its chances. How a test checks that
    /// something does *not* happen, without sleeping on the clock. Needs a short
    /// `tick_interval` (the fleet's default is 50 ms).
    pub fn wait_ticks(&self, n: u64) {
        let status =
            || -> sf_proto::DaemonStatus { self.sfctl().args(["daemon", "status"]).json() };
        let first = status();
        assert!(
            first.tick_interval_ms <= 250,
            "wait_ticks needs a tick_interval of at most 250 ms (it is {} ms): set it in the test's config",
            first.tick_interval_ms
        );
        let until = first.ticks + n;
        self.wait_for(&format!("{n} more ticks"), || {
            let now = status().ticks;
            if now >= until { Ok(()) } else { Err(now) }
        });
    }

    /// `sfctl events ARGS... --json`, parsed as JSON Lines.
    pub fn events(&self, args: &[&str]) -> Vec<AuditEvent> {
        let out = self.sfctl().args(["--json", "events"]).args(args).success();
        parse_json_lines(&out)
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), Signal::SIGKILL);
            let _ = child.wait();
        }
        // A daemon started by `sfctl daemon start` is not our child; find it by its socket.
        if let Some(pid) = self.daemon_pid() {
            signal(pid, Signal::SIGKILL);
        }
        if std::env::var_os("SF_KEEP_TEMP").is_some()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("SF_KEEP_TEMP: kept {}", kept.display());
        }
    }
}

/// A `sfctl-dup` invocation being built.
#[must_use]
pub struct Sfctl<'a> {
    td: &'a TestDaemon,
    program: PathBuf,
    args: Vec<OsString>,
    cwd: PathBuf,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
}

impl Sfctl<'_> {
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = dir.into();
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Leaves `key` out of the hermetic environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env_remove.push(key.into());
        self
    }

    /// The command, ready to run.
    /// Runs this `sfctl` binary instead of the built one (e.g. a copy another user can reach).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        if let Some((uid, gid)) = self.td.user {
            cmd.uid(uid).gid(gid);
        }
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .stdin(Stdio::null());
        for (k, v) in self.td.hermetic_env() {
            cmd.env(k, v);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        cmd
    }

    fn describe(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect();
        format!("sfctl {} (in {})", args.join(" "), self.cwd.display())
    }

    pub fn run(self) -> Output {
        self.output()
    }

    fn output(&self) -> Output {
        let started = Instant::now();
        let out = self.command().output().expect("spawn sfctl-dup");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} took {:?}",
            self.describe(),
            started.elapsed()
        );
        out
    }

    /// Spawns it with piped stdout and stderr (for `events --follow`).
    pub fn spawn(self) -> Child {
        self.command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sfctl-dup")
    }

    fn report(&self, out: &Output, expected: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}\nexpected {expected}, got {}",
            self.describe(),
            out.status
        );
        let _ = writeln!(
            s,
            "--- stdout ---\n{}",
            truncate(&String::from_utf8_lossy(&out.stdout))
        );
        let _ = writeln!(
            s,
            "--- stderr ---\n{}",
            truncate(&String::from_utf8_lossy(&out.stderr))
        );
        s.push_str(&self.td.stderr_tail());
        s
    }

    /// Runs it, asserts exit code 0 and returns stdout.
    pub fn success(self) -> String {
        let out = self.output();
        assert!(out.status.success(), "{}", self.report(&out, "success"));
        String::from_utf8(out.stdout).expect("stdout is UTF-8")
    }

    /// Runs it with `--json` in front, asserts success and parses stdout as one `T`.
    pub fn json<T: DeserializeOwned>(self) -> T {
        let described = self.describe();
        let mut args = vec![OsString::from("--json")];
        args.extend(self.args);
        let out = Self { args, ..self }.success();
        serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!(
                "{described} --json printed something that is not a {}: {e}\n{}",
                std::any::type_name::<T>(),
                truncate(&out)
            )
        })
    }

    /// Runs it, asserts exit code `code` and returns stderr.
    pub fn fails(self, code: i32) -> String {
        let out = self.output();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            self.report(&out, &format!("exit {code}"))
        );
        String::from_utf8(out.stderr).expect("stderr is UTF-8")
    }

    /// Runs it with `--json` in front, asserts exit code `code` and returns the error object
    /// printed on stdout (`{"error":{"kind","message","hint"}}`) and stderr.
    pub fn json_fails(self, code: i32) -> (serde_json::Value, String) {
        let mut args = vec![OsString::from("--json")];
        args.extend(self.args);
        let me = Self { args, ..self };
        let out = me.output();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            me.report(&out, &format!("exit {code}"))
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "--json error output is not JSON: {e}\n{}",
                me.report(&out, "a JSON error")
            )
        });
        (value, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A child process that is SIGKILLed and reaped when dropped, so a failing test leaves
/// nothing running.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Parses JSON Lines.
pub fn parse_json_lines<T: DeserializeOwned>(text: &str) -> Vec<T> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a {}: {e}\n{l}", std::any::type_name::<T>()))
        })
        .collect()
}

/// Connects, sends a [`Hello`], and returns the daemon's pid from its `Welcome`; `None` if
/// nothing answers within a second.
pub fn handshake_pid(socket: &Path) -> Option<u32> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .ok()?;
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        client: "sf-tests probe".into(),
        actor: None,
    };
    write_frame(&mut stream, &hello).ok()?;
    match read_frame(&mut stream, sf_proto::MAX_FRAME).ok()? {
        Response::Welcome { pid, .. } => Some(pid),
        _ => None,
    }
}

/// A raw connection for protocol tests, with timeouts so a wrong daemon fails instead of
/// hanging.
pub fn raw_connect(socket: &Path) -> UnixStream {
    let stream = UnixStream::connect(socket).expect("connect to the socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("set read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(15)))
        .expect("set write timeout");
    stream
}

/// Writes one length-prefixed frame of raw bytes.
pub fn write_raw_frame(stream: &mut UnixStream, body: &[u8]) {
    let len = u32::try_from(body.len()).expect("frame fits u32");
    stream
        .write_all(&len.to_be_bytes())
        .expect("write frame length");
    stream.write_all(body).expect("write frame body");
    stream.flush().expect("flush frame");
}

/// Reads one frame as a generic JSON value.
pub fn read_raw_frame(stream: &mut UnixStream) -> serde_json::Value {
    read_frame(stream, sf_proto::MAX_FRAME).expect("read a response frame")
}

/// Reads a line from a child's stdout within `deadline`, on a helper thread.
pub fn read_line_within(
    stdout: impl Read + Send + 'static,
    deadline: Duration,
) -> (Option<String>, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let first = rx.recv_timeout(deadline).ok();
    (first, rx)
}

/// Reads what is left of a pipe (after the process was killed).
pub fn drain(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// An RFC 3339 time `secs` seconds from now (negative: in the past).
pub fn rfc3339_from_now(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339()
}

fn signal(pid: u32, sig: Signal) {
    let pid = i32::try_from(pid).expect("pid fits i32");
    let _ = kill(Pid::from_raw(pid), sig);
}

fn init_git_repo(path: &Path) {
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = git2::Repository::init_opts(path, &opts).expect("git init");
    {
        let mut cfg = repo.config().expect("repo config");
        cfg.set_str("user.name", "SF Tests").expect("set user.name");
        cfg.set_str("user.email", "tests@sf.invalid")
            .expect("set user.email");
    }
    fs::write(
        path.join("README.md"),
        "# fixture\n\nA repository for sf tests.\n",
    )
    .expect("write README");
    fs::create_dir_all(path.join("src")).expect("mkdir src");
    fs::write(path.join("src/lib.txt"), "one\ntwo\nthree\n").expect("write src/lib.txt");
    let mut index = repo.index().expect("index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("git add");
    index.write().expect("write index");
    let tree_id = index.write_tree().expect("write tree");
    let tree = repo.find_tree(tree_id).expect("find tree");
    let sig = repo.signature().expect("signature");
    repo.commit(Some("HEAD"), &sig, &sig, "initial commit", &tree, &[])
        .expect("commit");
}

fn list_dir(base: &Path, dir: &Path, depth: usize, out: &mut String) {
    if depth > 4 {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for e in entries {
        let path = e.path();
        let rel = path.strip_prefix(base).unwrap_or(&path);
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let _ = writeln!(out, "{}{}", rel.display(), if is_dir { "/" } else { "" });
        if is_dir && e.file_name() != ".git" {
            list_dir(base, &path, depth + 1, out);
        }
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 8000;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut cut = MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... [{} more bytes]", &s[..cut], s.len() - cut)
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c))
    {
        s.to_owned()
    } else if s.len() > 200 {
        format!("'<{} bytes>'", s.len())
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Sets the soft limit `resource` (`libc::RLIMIT_*`) of process `pid` to `soft`, or back to
/// its hard limit with `None`, through prlimit(2): how the tests starve a running sfd of
/// descriptors or disk.
#[expect(
    unsafe_code,
    reason = "prlimit(2) on another process has no safe wrapper"
)]
pub fn set_soft_limit(pid: u32, resource: nix::libc::__rlimit_resource_t, soft: Option<u64>) {
    use nix::libc;
    let pid = libc::pid_t::try_from(pid).expect("pid");
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new limit only reads the current one into `old`.
    let rc = unsafe { libc::prlimit(pid, resource, std::ptr::null(), &raw mut old) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft.unwrap_or(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: `new` is a valid rlimit for the call; the old value is not asked for again.
    let rc = unsafe { libc::prlimit(pid, resource, &raw const new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// A copy of `bin` that any user can run: the build's own may sit under a private home
/// directory (a CI checkout under /root). Hard-linked when it can be, into a shared 0755
/// directory, replaced atomically so that concurrent tests agree.
pub fn reachable(bin: &str) -> PathBuf {
    let src = Path::new(bin);
    let dir = std::env::temp_dir().join("sf-e2e-bins");
    let _ = fs::create_dir(&dir);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod the bin dir");
    let name = src.file_name().expect("a binary name");
    let dest = dir.join(name);
    let tmp = dir.join(format!("{}.{}", name.to_string_lossy(), std::process::id()));
    let _ = fs::remove_file(&tmp);
    if fs::hard_link(src, &tmp).is_err() {
        fs::copy(src, &tmp).expect("copy the binary");
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod the binary");
    fs::rename(&tmp, &dest).expect("put the binary in place");
    dest
}

/// Gives `dir` and everything under it to `uid`:`gid` (symbolic links themselves).
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    let (u, g) = (
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    );
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        dir,
        u,
        g,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
    if fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        for entry in fs::read_dir(dir).expect("read dir").flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}
