//! Helpers shared by the tests that run workers (the scripted fake agent) and the merge
//! queue: a workspace configured for them, fake-agent scripts, workers, a merge steward,
//! and `git` in the repository.

use std::fs;
use std::path::{Path, PathBuf};

use sf_proto::{MergeRequestInfo, MergeState, TaskDetail, TaskStatus};

use crate::harness::{SFCTL, TestDaemon};

pub const FAKE: &str = env!("CARGO_BIN_EXE_fake-agent");

/// A stopped workspace whose config lets workers find `sfctl` and stops them quickly, with
/// `extra` config lines; the daemon is started.
pub fn fleet(extra: &str) -> TestDaemon {
    fleet_with(extra, "")
}

/// Like [`fleet`], with `merge` lines added to the `[merge]` table (e.g. `test_command`).
pub fn fleet_with(extra: &str, merge: &str) -> TestDaemon {
    let mut td = TestDaemon::stopped();
    configure(&td, extra, merge);
    td.spawn();
    td
}

/// Writes the fleet settings into a stopped workspace's config: `extra` top-level lines,
/// `merge` lines in the `[merge]` table.
pub fn configure(td: &TestDaemon, extra: &str, merge: &str) {
    let cfg = td.repo.join(".sf/config.toml");
    let old = fs::read_to_string(&cfg).expect("read config");
    assert!(
        old.contains("\n[merge]\n"),
        "the default config has no [merge] table:\n{old}"
    );
    let old = old.replacen("\n[merge]\n", &format!("\n[merge]\n{merge}\n"), 1);
    // a short tick, so that `wait_ticks` can check that nothing more happens
    let tick = if extra.contains("tick_interval") {
        ""
    } else {
        "tick_interval = \"50ms\"\n"
    };
    let grace = if extra.contains("complete_grace") {
        ""
    } else {
        "complete_grace = \"1s\"\n"
    };
    fs::write(
        &cfg,
        format!("sfctl = \"{SFCTL}\"\n{grace}stop_grace = \"1s\"\n{tick}{extra}\n{old}"),
    )
    .expect("write config");
}

/// Writes a fake-agent script into the tempdir and returns its path.
pub fn script(td: &TestDaemon, name: &str, text: &str) -> PathBuf {
    let path = td.root.join(format!("{name}.script"));
    fs::write(&path, text).expect("write script");
    path
}

/// Registers an ephemeral worker running the fake agent with `script`.
/// When sfd runs as another user ([`TestDaemon::run_as`]), it is a copy that user can run.
pub fn worker(td: &TestDaemon, name: &str, script: &Path, args: &[&str]) {
    let fake = if td.runs_as_other_user() {
        crate::harness::reachable(FAKE)
    } else {
        PathBuf::from(FAKE)
    };
    let command = format!("{} {}", fake.display(), script.display());
    td.sfctl()
        .args([
            "agent",
            "register",
            name,
            "--role",
            "worker",
            "--command",
            &command,
        ])
        .args(args)
        .success();
}

/// Registers the merge steward `merger`, which makes the merge queue run.
pub fn steward(td: &TestDaemon) {
    td.sfctl()
        .args([
            "agent", "register", "merger", "--role", "steward", "--focus", "merge",
        ])
        .success();
}

/// Waits until a fake agent's `touch` of `<gate>.started` says it runs (while task `id`,
/// shown if it never does, is dispatched).
pub fn wait_started(td: &TestDaemon, gate: &Path, id: &str) {
    let started = PathBuf::from(format!("{}.started", gate.display()));
    td.wait_for("the worker to start", || {
        if started.exists() {
            Ok(())
        } else {
            Err(td.show_task(id).task.status)
        }
    });
}

/// Waits until the first run of task `id` has ended, and returns the task.
pub fn wait_first_run_ended(td: &TestDaemon, id: &str) -> TaskDetail {
    td.wait_for(&format!("the first run of task {id} to end"), || {
        let t = td.show_task(id);
        match t.runs.first().and_then(|r| r.outcome.as_ref()) {
            Some(_) => Ok(t),
            None => Err(t.runs),
        }
    })
}

/// Waits until task `id` has status `want`.
pub fn wait_status(td: &TestDaemon, id: &str, want: TaskStatus) -> TaskDetail {
    td.wait_for(&format!("task {id} to be {want}"), || {
        let t = td.show_task(id);
        if t.task.status == want {
            Ok(t)
        } else {
            Err((t.task.status, t.notes))
        }
    })
}

/// `sfctl mr list --json`.
pub fn mrs(td: &TestDaemon) -> Vec<MergeRequestInfo> {
    td.sfctl().args(["mr", "list"]).json()
}

/// The merge request of task `task`.
pub fn mr_of(td: &TestDaemon, task: &str) -> Option<MergeRequestInfo> {
    mrs(td)
        .into_iter()
        .find(|m| m.task.as_ref().is_some_and(|t| t.as_str() == task))
}

/// Waits until the merge request of task `task` is in state `want`.
pub fn wait_mr(td: &TestDaemon, task: &str, want: MergeState) -> MergeRequestInfo {
    td.wait_for(
        &format!("the merge request of {task} to be {want}"),
        || match mr_of(td, task) {
            Some(m) if m.state == want => Ok(m),
            other => Err(Box::new(other)),
        },
    )
}

/// Runs `git ARGS` in `repo` (no global or system config) and returns its trimmed stdout;
/// panics if it fails.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = git_output(repo, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `git ARGS` in `repo` and returns whether it succeeded.
pub fn git_ok(repo: &Path, args: &[&str]) -> bool {
    git_output(repo, args).status.success()
}

fn git_output(repo: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        // the tests that run sfd as an ordinary user give it the repository
        .args(["-c", "safe.directory=*"])
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_SYSTEM", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Someone Else")
        .env("GIT_AUTHOR_EMAIL", "else@sf.invalid")
        .env("GIT_COMMITTER_NAME", "Someone Else")
        .env("GIT_COMMITTER_EMAIL", "else@sf.invalid")
        .output()
        .expect("run git")
}

/// The daemon disabled an agent (its `agent_disabled` event, by `daemon`), saying why with
/// `mentions` (the program that could not run).
/// Waits until sfd has disabled agent `name`, and returns it.
pub fn wait_disabled(td: &TestDaemon, name: &str) -> sf_proto::AgentDetail {
    td.wait_for(&format!("agent {name} to be disabled"), || {
        let a: sf_proto::AgentDetail = td.sfctl().args(["agent", "show", name]).json();
        if a.agent.enabled { Err(a.runs) } else { Ok(a) }
    })
}

pub fn assert_disabled_by_daemon(td: &TestDaemon, mentions: &str) {
    let disabled = td
        .events(&[])
        .into_iter()
        .find(|e| e.action == "agent_disabled")
        .expect("an agent_disabled event");
    assert_eq!(disabled.actor, "daemon");
    let reason = disabled.reason.as_deref().unwrap_or("");
    assert!(reason.contains(mentions), "{disabled:?}");
}

/// An executable `name` in the test's root that exits 0: an agent's `--command` that exists
/// at registration (remove it to make the command stop working).
pub fn exiting_program(td: &TestDaemon, name: &str) -> PathBuf {
    let program = td.root.join(name);
    fs::write(&program, "#!/bin/sh\nexit 0\n").expect("write");
    fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    program
}

/// A human takes draft `name` live: signs its manifest, dry-runs it (the run must pass)
/// and goes live.
pub fn take_live(td: &TestDaemon, name: &str) {
    sign(td, name);
    let started: sf_proto::DryRunInfo = td.sfctl().args(["agent", "dry-run", name]).json();
    let done = wait_dry_run(td, name, started.id);
    assert_eq!(done.status, sf_proto::DryRunStatus::Passed, "{done:?}");
    td.sfctl().args(["agent", "go-live", name]).success();
}

/// A human signs `name`'s permission manifest.
pub fn sign(td: &TestDaemon, name: &str) {
    td.sfctl()
        .args(["charter", "sign-manifest", name])
        .success();
}

/// Waits until dry run `id` of `name` has ended, and returns it with its evidence.
pub fn wait_dry_run(td: &TestDaemon, name: &str, id: i64) -> sf_proto::DryRunInfo {
    td.wait_for(&format!("the dry run of {name} to end"), || {
        let runs: Vec<sf_proto::DryRunInfo> = td.sfctl().args(["agent", "dry-runs", name]).json();
        match runs.into_iter().find(|d| d.id == id) {
            Some(d) if d.status != sf_proto::DryRunStatus::Running => Ok(d),
            other => Err(other.map(|d| d.status)),
        }
    })
}
