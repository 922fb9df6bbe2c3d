//! Local security: a workspace's files are private to its user, the socket directory cannot
//! be squatted by another user, `sfctl` talks only to a daemon of its own user, and another
//! user is told "permission denied", not "sfd is not running".
//!
//! The tests about a second user need root (only root can start a process as someone else)
//! and a second account: `sftest`, which `.ci/run` creates when it runs as root, else
//! `nobody`. Without them they print why and pass without checking anything.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::unistd::{Uid, User, chown};
use sf_proto::TaskStatus;
use sf_proto::paths::WorkspacePaths;

use crate::fleet::{FAKE, fleet, script, wait_status, worker};
use crate::harness::{ChildGuard, SFCTL, TestDaemon, WAIT_DEADLINE, eventually, reachable};

/// The second user of the tests that need one, or `None` after printing why the test
/// cannot run here.
fn other_user(test: &str) -> Option<User> {
    let skip = |why: String| {
        eprintln!("skipping {test}: {why}");
        None
    };
    if !Uid::effective().is_root() {
        return skip("it needs root to act as a second user (CI runs as root)".into());
    }
    let Some(user) = ["sftest", "nobody"]
        .into_iter()
        .find_map(|name| User::from_name(name).ok().flatten())
    else {
        return skip("there is no `sftest` or `nobody` user (`.ci/run` creates `sftest`)".into());
    };
    Some(user)
}

/// Lets every user into the tempdir (tempfile makes it 0700), as a shared machine's
/// repository would be.
fn open_tempdir(td: &TestDaemon) {
    fs::set_permissions(&td.root, fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
}

/// Runs `sfctl --json ARGS` as `user` in the repository.
fn sfctl_as(td: &TestDaemon, user: &User, args: &[&str]) -> Output {
    td.sfctl()
        .program(reachable(SFCTL))
        .arg("--json")
        .args(args)
        .command()
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .output()
        .expect("run sfctl as the other user")
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every path under `dir` with its mode, but not inside `.sf/worktrees` or `.sf/merge`:
/// those are checkouts of the user's repository, whose files keep their modes (the folders
/// themselves, 0700, keep other users out).
fn modes_under(dir: &Path, out: &mut Vec<(PathBuf, u32, bool)>) {
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        out.push((
            path.clone(),
            meta.permissions().mode() & 0o7777,
            meta.is_dir(),
        ));
        if meta.is_dir() && !path.ends_with(".sf/worktrees") && !path.ends_with(".sf/merge") {
            modes_under(&path, out);
        }
    }
}

fn not_private(sf: &Path) -> Vec<String> {
    let mut all = vec![(sf.to_owned(), mode(sf), true)];
    modes_under(sf, &mut all);
    all.iter()
        .filter(|(_, m, dir)| *m != if *dir { 0o700 } else { 0o600 })
        .map(|(p, m, _)| format!("{} {m:o}", p.display()))
        .collect()
}

#[test]
fn workspace_files_are_private_after_init_start_and_a_run() {
    let td = fleet("");
    let id = td.create_task("private", &[]).task.id.to_string();
    let s = script(&td, "w", "write f.txt x\ncommit add f\ncomplete done\n");
    worker(&td, "w1", &s, &[]);
    wait_status(&td, &id, TaskStatus::Review);
    let sf = td.repo.join(".sf");
    let logs: Vec<_> = fs::read_dir(sf.join("logs")).expect("logs").collect();
    assert!(!logs.is_empty(), "the run left no log to check");
    let bad = not_private(&sf);
    assert!(
        bad.is_empty(),
        "readable by others (want 0700 dirs, 0600 files):\n{}",
        bad.join("\n")
    );
}

#[test]
fn a_readable_database_and_folders_are_repaired_on_start() {
    let mut td = TestDaemon::start();
    td.create_task("kept", &[]);
    td.shutdown();
    let sf = td.repo.join(".sf");
    for (p, m) in [
        (sf.clone(), 0o755),
        (sf.join("sf.db"), 0o644),
        (sf.join("logs"), 0o755),
        (sf.join("config.toml"), 0o664),
    ] {
        fs::set_permissions(&p, fs::Permissions::from_mode(m)).expect("chmod");
    }
    td.spawn();
    let bad = not_private(&sf);
    assert!(bad.is_empty(), "not repaired:\n{}", bad.join("\n"));
    let log = fs::read_to_string(&td.stderr_path).expect("stderr");
    assert!(
        log.contains("repaired") && log.contains("sf.db"),
        "the repair is not reported:\n{}",
        td.stderr_tail()
    );
    assert_eq!(td.list_tasks(&[]).len(), 1, "the database is intact");
}

/// Removes a directory of the shared /tmp when the test ends.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn sfd_refuses_a_socket_directory_squatted_by_another_user() {
    let Some(user) = other_user("sfd_refuses_a_socket_directory_squatted_by_another_user") else {
        return;
    };
    let deep = format!("{}/{}/repo", "s".repeat(60), "q".repeat(60));
    let td = TestDaemon::uninitialised_at(&deep);
    td.sfctl().args(["init"]).success();
    // Without XDG_RUNTIME_DIR the socket goes to a directory of /tmp that others can
    // predict; the other user creates it first, writable by them.
    let dir = WorkspacePaths::new(&td.repo).socket_dir_in(None);
    assert!(dir.starts_with("/tmp"), "{}", dir.display());
    let _cleanup = RemoveDir(dir.clone());
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("create the squatted dir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    chown(&dir, Some(user.uid), Some(user.gid)).expect("chown to the other user");

    let mut sfd = ChildGuard(
        td.sfd_command()
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sfd"),
    );
    let squatted = dir.join("sfd.sock");
    let status = eventually("sfd to exit or answer", WAIT_DEADLINE, || {
        match sfd.0.try_wait().expect("try_wait") {
            Some(status) => Some(Some(status)),
            None => crate::harness::handshake_pid(&squatted).map(|_| None),
        }
    });
    if status.is_none() {
        let _ = sfd.0.kill();
        let _ = sfd.0.wait();
    }
    let stderr = crate::harness::drain(sfd.0.stderr.take().expect("stderr"));
    assert!(
        status.is_some_and(|s| !s.success()),
        "sfd started in a squatted dir\n{stderr}"
    );
    assert!(
        stderr.contains(&dir.display().to_string()) && stderr.contains("XDG_RUNTIME_DIR"),
        "the error should name the directory and the way out:\n{stderr}"
    );
    let meta = fs::symlink_metadata(&dir).expect("stat");
    assert_eq!(meta.uid(), user.uid.as_raw(), "the dir was left alone");
    assert_eq!(meta.permissions().mode() & 0o777, 0o777, "mode left alone");
    assert!(
        !dir.join("sfd.sock").exists(),
        "no socket in the squatted dir"
    );
}

#[test]
fn sfctl_refuses_to_talk_to_a_socket_of_another_user() {
    let Some(user) = other_user("sfctl_refuses_to_talk_to_a_socket_of_another_user") else {
        return;
    };
    let td = TestDaemon::stopped();
    open_tempdir(&td);
    // The other user listens on a socket of theirs and records what arrives.
    let theirs = td.root.join("theirs");
    fs::create_dir(&theirs).expect("mkdir");
    chown(&theirs, Some(user.uid), Some(user.gid)).expect("chown");
    let socket = theirs.join("sfd.sock");
    let got = theirs.join("got");
    let plan = theirs.join("listen.script");
    fs::write(
        &plan,
        format!("listen-once {} {}\n", socket.display(), got.display()),
    )
    .expect("write script");
    let mut listener = ChildGuard(
        Command::new(reachable(FAKE))
            .arg(&plan)
            .env_clear()
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the other user's listener"),
    );
    let ready = PathBuf::from(format!("{}.ready", got.display()));
    eventually("the other user's socket", WAIT_DEADLINE, || {
        ready.exists().then_some(())
    });

    let out = td
        .sfctl()
        .args(["--json", "--socket"])
        .arg(&socket)
        .args(["task", "create", "secret plan"])
        .command()
        .output()
        .expect("run sfctl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let err: serde_json::Value = serde_json::from_str(&stdout).expect("json error");
    assert_eq!(err["error"]["kind"], "permission_denied", "{err}");
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("uid {}", user.uid)),
        "the message should name the other uid: {message}"
    );
    // Nothing was sent, not even the hello.
    let status = eventually("the listener to end", WAIT_DEADLINE, || {
        listener.0.try_wait().expect("try_wait")
    });
    let sent = fs::read(&got).unwrap_or_else(|e| {
        panic!(
            "the listener saved nothing ({e}, {status}): {}",
            crate::harness::drain(listener.0.stderr.take().expect("stderr"))
        )
    });
    assert!(sent.is_empty(), "sent {:?}", String::from_utf8_lossy(&sent));
}

#[test]
fn another_user_is_told_permission_denied_not_that_sfd_is_down() {
    let Some(user) = other_user("another_user_is_told_permission_denied_not_that_sfd_is_down")
    else {
        return;
    };
    let td = TestDaemon::start();
    open_tempdir(&td);
    // From inside the workspace, and with the socket named explicitly.
    let socket = td.socket.display().to_string();
    for args in [
        vec!["task", "list"],
        vec!["--socket", &socket, "daemon", "status"],
    ] {
        let out = sfctl_as(&td, &user, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}\n{stdout}\n{stderr}");
        let err: serde_json::Value = serde_json::from_str(&stdout).expect("json error");
        assert_eq!(err["error"]["kind"], "permission_denied", "{args:?}: {err}");
        let hint = err["error"]["hint"].as_str().unwrap_or_default();
        assert!(
            hint.contains("uid 0") || hint.contains("root"),
            "{args:?}: the hint should say whose it is: {err}"
        );
        assert!(
            !stderr.contains("sfctl daemon start"),
            "{args:?}: not a start hint: {stderr}"
        );
    }
}
