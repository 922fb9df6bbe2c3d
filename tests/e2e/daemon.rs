//! `sfctl daemon start|status|stop|restart`, `sfd` in the foreground, the one-daemon lock,
//! and what every command does when no daemon answers.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use sf_proto::{DaemonStatus, PROTOCOL_VERSION, TaskStatus};

use crate::harness::{ChildGuard, TestDaemon, eventually};

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z" | "X") | None)
        }
        Err(_) => false,
    }
}

fn combined(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn start_launches_the_daemon_and_a_second_start_names_its_pid() {
    let td = TestDaemon::stopped();
    td.sfctl().args(["daemon", "start"]).success();
    let pid = td
        .daemon_pid()
        .expect("the daemon answers right after `daemon start` returns");
    assert!(alive(pid));

    let out = td.sfctl().args(["daemon", "start"]).run();
    let text = combined(&out);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "second start: {}\n{text}",
        out.status
    );
    assert!(
        text.contains("already running"),
        "second start should say so: {text}"
    );
    assert!(
        text.contains(&pid.to_string()),
        "second start should name pid {pid}: {text}"
    );
    assert_eq!(
        td.daemon_pid(),
        Some(pid),
        "a second start must not replace the daemon"
    );

    td.sfctl().args(["daemon", "stop"]).success();
}

#[test]
fn status_reports_pid_version_uptime_socket_ticks_and_counts() {
    let td = TestDaemon::start();
    td.create_task("stays open", &[]);
    let b = td.create_task("gets closed", &[]);
    td.sfctl()
        .args(["task", "close", b.task.id.as_str()])
        .success();

    let status: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert_eq!(Some(status.pid), td.child_pid());
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.protocol, PROTOCOL_VERSION);
    assert_eq!(
        fs::canonicalize(&status.socket).ok(),
        fs::canonicalize(&td.socket).ok()
    );
    assert_eq!(
        fs::canonicalize(&status.workspace).ok(),
        Some(td.repo.clone())
    );
    assert_eq!(status.tick_interval_ms, 5000, "the default tick is 5 s");
    assert_eq!(
        status.tasks.get(&TaskStatus::Open),
        Some(&1),
        "{:?}",
        status.tasks
    );
    assert_eq!(
        status.tasks.get(&TaskStatus::Closed),
        Some(&1),
        "{:?}",
        status.tasks
    );
    assert_eq!(status.running_workers, 0);
    assert!(status.uptime_secs < 60);

    let ticked = td.wait_for("the daemon to run a tick", || {
        let s: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
        if s.ticks >= 1 && s.last_tick_us.is_some() {
            Ok(s)
        } else {
            Err(Box::new(s))
        }
    });
    assert!(ticked.uptime_secs >= status.uptime_secs);

    let text = td.sfctl().args(["daemon", "status"]).success();
    for needle in [
        status.pid.to_string(),
        status.version.clone(),
        td.socket.display().to_string(),
        "open".to_owned(),
        "closed".to_owned(),
    ] {
        assert!(
            text.contains(&needle),
            "`daemon status` should show {needle}:\n{text}"
        );
    }
    let lower = text.to_lowercase();
    for needle in ["uptime", "tick", "last tick", "workers"] {
        assert!(
            lower.contains(needle),
            "`daemon status` should show {needle}:\n{text}"
        );
    }
}

#[test]
fn stop_waits_until_the_daemon_has_exited_and_removed_its_socket() {
    let td = TestDaemon::stopped();
    td.sfctl().args(["daemon", "start"]).success();
    let pid = td.daemon_pid().expect("daemon answers");
    td.sfctl().args(["daemon", "stop"]).success();
    assert!(
        !td.socket.exists(),
        "socket still there after `daemon stop` returned"
    );
    // The daemon is not our child; its new parent reaps it, so allow a moment for that.
    eventually(
        "the stopped daemon to disappear",
        Duration::from_secs(5),
        || (!alive(pid)).then_some(()),
    );
    let err = td.sfctl().args(["daemon", "status"]).fails(3);
    assert!(err.contains("sfctl daemon start"), "{err}");
    let out = td.sfctl().args(["daemon", "stop"]).run();
    assert_ne!(
        out.status.code(),
        Some(255),
        "stopping a stopped daemon: {}",
        combined(&out)
    );
}

#[test]
fn restart_replaces_the_daemon_and_keeps_the_queue() {
    let td = TestDaemon::stopped();
    td.sfctl().args(["daemon", "start"]).success();
    let old = td.daemon_pid().expect("daemon answers");
    let t = td.create_task("survives a restart", &["-p", "2"]);
    td.sfctl().args(["daemon", "restart"]).success();
    let new = td.daemon_pid().expect("daemon answers after restart");
    assert_ne!(old, new, "restart should start a new process");
    eventually("the old daemon to exit", Duration::from_secs(5), || {
        (!alive(old)).then_some(())
    });
    let back = td.show_task(t.task.id.as_str());
    assert_eq!(back.task.title, "survives a restart");
    assert_eq!(back.task.priority, 2);
    td.sfctl().args(["daemon", "stop"]).success();
}

#[test]
fn start_reports_why_the_daemon_could_not_start() {
    let td = TestDaemon::stopped();
    fs::write(
        td.repo.join(".sf/config.toml"),
        "tick_interval = [this is not toml\n",
    )
    .expect("break config");
    let started = Instant::now();
    let out = td.sfctl().args(["daemon", "start"]).run();
    let text = combined(&out);
    assert!(
        !out.status.success(),
        "start with a broken config should fail: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "start took {:?}",
        started.elapsed()
    );
    assert!(
        text.contains("config"),
        "the failure should mention the config (log tail): {text}"
    );
    assert!(td.daemon_pid().is_none());
}

#[test]
fn commands_without_a_daemon_exit_3_with_a_hint_to_start_it() {
    let td = TestDaemon::stopped();
    for args in [
        &["task", "list"][..],
        &["task", "create", "nobody hears this"],
        &["agent", "list"],
        &["plan", "list"],
        &["events"],
        &["daemon", "status"],
    ] {
        let err = td.sfctl().args(args).fails(3);
        assert!(
            err.contains("sfctl daemon start"),
            "{args:?} should hint at the fix: {err}"
        );
    }
    let (json, _) = td.sfctl().args(["task", "list"]).json_fails(3);
    assert_eq!(json["error"]["kind"], "unreachable", "{json}");
    assert!(
        json["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("sfctl daemon start"))
    );
}

#[test]
fn a_second_sfd_on_the_same_workspace_refuses_to_start() {
    let td = TestDaemon::start();
    let first = td.child_pid().expect("child");
    let mut second = ChildGuard(
        td.sfd_command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn second sfd"),
    );
    let status = td.wait_for("the second sfd to give up", || {
        second
            .0
            .try_wait()
            .expect("try_wait")
            .ok_or("still running")
    });
    let stderr = crate::harness::drain(second.0.stderr.take().expect("stderr"));
    assert!(!status.success(), "a second daemon must not run: {stderr}");
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("already") || lower.contains("lock"),
        "the refusal should say another daemon holds the workspace: {stderr}"
    );
    assert_eq!(
        stderr.matches("another sfd is already running").count(),
        1,
        "the refusal is said once, not once more as a log line: {stderr}"
    );
    assert_eq!(
        td.daemon_pid(),
        Some(first),
        "the first daemon must keep its socket"
    );
    td.create_task("first daemon still serves", &[]);
}

#[test]
fn sfd_in_the_foreground_shuts_down_gracefully_on_sigterm() {
    let mut td = TestDaemon::start();
    td.create_task("before shutdown", &[]);
    let status = td.shutdown();
    assert!(
        status.success(),
        "sfd should exit 0 on SIGTERM, got {status}\n{}",
        td.stderr_tail()
    );
    let log = fs::read_to_string(&td.stderr_path).expect("read stderr");
    assert!(
        !log.trim().is_empty(),
        "SF_LOG=debug should produce log lines on stderr"
    );
    td.spawn();
    assert_eq!(td.list_tasks(&[]).len(), 1);
}

#[test]
fn sfd_without_an_initialised_workspace_fails_clearly() {
    let td = TestDaemon::uninitialised();
    let mut child = ChildGuard(
        td.sfd_command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sfd"),
    );
    let status = td.wait_for("sfd to refuse an uninitialised workspace", || {
        child.0.try_wait().expect("try_wait").ok_or("still running")
    });
    let stderr = crate::harness::drain(child.0.stderr.take().expect("stderr"));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("sfctl init"),
        "should hint at `sfctl init`: {stderr}"
    );
}

#[test]
fn a_workspace_with_a_long_path_gets_a_socket_that_fits() {
    let deep = format!("{}/{}/repo", "d".repeat(60), "e".repeat(60));
    let mut td = TestDaemon::start_at(&deep);
    assert!(
        !td.socket.starts_with(&td.repo),
        "the socket cannot live in {}",
        td.repo.display()
    );
    assert!(
        td.socket.as_os_str().len() <= 108,
        "{}",
        td.socket.display()
    );
    let t = td.create_task("deep", &[]);
    let status: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert_eq!(std::path::PathBuf::from(&status.socket), td.socket);
    let from_sub: Vec<sf_proto::TaskSummary> = td
        .sfctl()
        .args(["task", "list"])
        .cwd(td.repo.join("src"))
        .json();
    assert_eq!(from_sub[0].id, t.task.id);
    let dir = td.socket.parent().expect("dir").to_owned();
    let mode = fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    td.shutdown();
}

#[test]
fn concurrent_starts_start_one_daemon_and_the_others_say_it_is_running() {
    let td = TestDaemon::stopped();
    // `daemon start` ends on its own (within its 15 s start timeout), so no guards.
    let starts: Vec<std::process::Child> = (0..3)
        .map(|_| td.sfctl().args(["daemon", "start"]).spawn())
        .collect();
    let outs: Vec<std::process::Output> = starts
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait for sfctl"))
        .collect();
    let pid = td.daemon_pid().expect("a daemon answers");
    let texts: Vec<String> = outs.iter().map(combined).collect();
    for (out, text) in outs.iter().zip(&texts) {
        assert!(
            out.status.success(),
            "{}: {text}\nall: {texts:#?}",
            out.status
        );
    }
    let started = texts
        .iter()
        .filter(|t| t.contains(&format!("sfd started (pid {pid},")))
        .count();
    let running = texts
        .iter()
        .filter(|t| t.trim() == format!("sfd is already running (pid {pid})"))
        .count();
    assert_eq!((started, running), (1, 2), "{texts:#?}");
    td.sfctl().args(["daemon", "stop"]).success();
}

#[test]
fn daemon_stop_leaves_workers_running_and_start_adopts_them_as_its_help_says() {
    let help = TestDaemon::uninitialised()
        .sfctl()
        .args(["daemon", "stop", "--help"])
        .success();
    assert!(
        help.contains("Workers\nkeep running") || help.contains("Workers keep running"),
        "the help must say what happens to workers:\n{help}"
    );
    assert!(!help.contains("workers are stopped"), "{help}");
    let td = crate::fleet::fleet("");
    let gate = td.root.join("go");
    let s = crate::fleet::script(
        &td,
        "w",
        &format!("wait-file {}\ncomplete-no-changes\n", gate.display()),
    );
    crate::fleet::worker(&td, "w1", &s, &[]);
    let id = td.create_task("Outlive a stop", &[]).task.id.to_string();
    let pid = td.wait_for("the worker to run", || {
        let t = td.show_task(&id);
        t.runs.first().and_then(|r| r.pid).ok_or(t.runs)
    });
    td.sfctl().args(["daemon", "stop"]).success();
    let alive = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        None,
    )
    .is_ok();
    assert!(alive, "daemon stop stopped the worker");
    td.sfctl().args(["daemon", "start"]).success();
    std::fs::write(&gate, "").expect("open the gate");
    crate::fleet::wait_status(&td, &id, sf_proto::TaskStatus::Closed);
    td.sfctl().args(["daemon", "stop"]).success();
}

#[test]
fn restart_with_a_broken_config_keeps_the_running_daemon() {
    let mut td = TestDaemon::start();
    let pid = td.daemon_pid().expect("running");
    td.sfctl().args(["daemon", "check"]).success();
    let cfg = td.repo.join(".sf/config.toml");
    let good = fs::read_to_string(&cfg).expect("read config");
    fs::write(&cfg, format!("tick_interval = \"soon\"\n{good}")).expect("break the config");
    let (err, _) = td.sfctl().args(["daemon", "check"]).json_fails(1);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("tick_interval"),
        "{err}"
    );
    let (err, _) = td.sfctl().args(["daemon", "restart"]).json_fails(1);
    assert!(
        err["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("left alone"),
        "{err}"
    );
    assert_eq!(td.daemon_pid(), Some(pid), "restart stopped the daemon");
    fs::write(&cfg, good).expect("fix the config");
    td.sfctl().args(["daemon", "check"]).success();
    td.shutdown();
}

/// `sfctl daemon reload` applies a changed config without a restart (issue 10, item 5): the
/// merge queue waiting for a test command goes on once one is set and reloaded, and a file
/// sfd would refuse changes nothing.
#[test]
fn reload_applies_a_changed_config_and_a_broken_one_changes_nothing() {
    use sf_proto::{MergeState, TaskStatus};

    use crate::fleet::{fleet, script, steward, wait_mr, wait_status, worker};

    let td = fleet("");
    steward(&td);
    let s = script(&td, "w", "write a.txt a\ncommit a\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("Add a", &[]).task.id.to_string();
    let waiting = wait_mr(&td, &id, MergeState::Waiting);
    let reason = waiting.reason.unwrap_or_default();
    assert!(reason.contains("`sfctl daemon reload`"), "{reason}");
    let pid = td.child_pid().expect("sfd");

    let cfg = td.repo.join(".sf/config.toml");
    let text = std::fs::read_to_string(&cfg).expect("read config");
    // a mistake first: refused with what is wrong, nothing applied
    std::fs::write(&cfg, format!("max_attempts = \"many\"\n{text}")).expect("write");
    let err = td.sfctl().args(["daemon", "reload"]).fails(1);
    assert!(err.contains("max_attempts"), "{err}");
    std::fs::write(
        &cfg,
        text.replacen("\n[merge]\n", "\n[merge]\ntest_command = \"true\"\n", 1),
    )
    .expect("write");
    let said = td.sfctl().args(["daemon", "reload"]).success();
    assert!(said.contains("merge.test_command"), "{said}");
    wait_mr(&td, &id, MergeState::Merged);
    wait_status(&td, &id, TaskStatus::Closed);
    assert_eq!(td.child_pid(), Some(pid), "the daemon was not restarted");
    let again = td.sfctl().args(["daemon", "reload"]).success();
    assert_eq!(again.trim(), "configuration unchanged");
}
