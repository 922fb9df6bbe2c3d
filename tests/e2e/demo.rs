//! The README's main command, `sfctl demo`: the whole loop over a throwaway repository with
//! the scripted demo agent and a real `cargo test` as the merge steward's test command.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sf_proto::paths::WorkspacePaths;

use crate::fleet::git;
use crate::harness::{TestDaemon, handshake_pid};

/// Kills whatever daemon still answers on the demo's socket when the test ends.
struct DemoDaemon(PathBuf);

impl Drop for DemoDaemon {
    fn drop(&mut self) {
        if let Some(pid) = handshake_pid(&self.0) {
            let _ = kill(
                Pid::from_raw(i32::try_from(pid).expect("pid")),
                Signal::SIGKILL,
            );
        }
    }
}

/// Where the daemon of a workspace at `root` listens, given the hermetic XDG_RUNTIME_DIR.
fn socket_of(td: &TestDaemon, root: &Path) -> PathBuf {
    let local = WorkspacePaths::new(root).socket();
    if local.starts_with(root) {
        return local;
    }
    let name = local
        .parent()
        .and_then(Path::file_name)
        .expect("socket dir name");
    td.root.join("xdg").join(name).join("sfd.sock")
}

/// `cargo` (through rustup) needs its homes; HOME is the tempdir's.
fn toolchain_env() -> Vec<(&'static str, OsString)> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut env = Vec::new();
    for (key, default) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
        let value = std::env::var_os(key).or_else(|| {
            home.as_ref()
                .map(|h| h.join(default))
                .filter(|p| p.is_dir())
                .map(PathBuf::into_os_string)
        });
        if let Some(v) = value {
            env.push((key, v));
        }
    }
    if let Some(t) = std::env::var_os("RUSTUP_TOOLCHAIN") {
        env.push(("RUSTUP_TOOLCHAIN", t));
    }
    env
}

#[test]
fn the_readme_demo_runs_the_whole_loop_and_merges_every_task() {
    let td = TestDaemon::uninitialised();
    let dir = td.root.join("demo");
    let _guard = DemoDaemon(socket_of(&td, &dir));
    let mut cmd = td
        .sfctl()
        .cwd(&td.root)
        .args(["demo", "--timeout", "4m", "--dir"])
        .arg(&dir)
        .command();
    for (k, v) in toolchain_env() {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run sfctl-dup demo");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "sfctl demo failed ({}) after {:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status,
        started.elapsed()
    );

    // it ends with the summary, then says where the repository is
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let [.., summary, last] = lines.as_slice() else {
        panic!("{stdout}");
    };
    assert_eq!(
        *last,
        format!("The repository is yours to inspect: cd {}", dir.display()),
        "{stdout}"
    );
    assert!(
        summary.starts_with("7/7 tasks closed (1 fix task)"),
        "the summary line is {summary:?}\n{stdout}"
    );
    assert!(stdout.contains("tests FAILED"), "{stdout}");
    assert!(stdout.contains("history of main:"), "{stdout}");

    // main: the initial commit and six squash commits, one per planned task, no merge commit
    let log = git(&dir, &["log", "--format=%s", "main"]);
    let subjects: Vec<&str> = log.lines().collect();
    assert_eq!(subjects.len(), 7, "{log}");
    assert_eq!(
        subjects.last(),
        Some(&"A calculator crate with empty modules")
    );
    for title in [
        "Add addition",
        "Add subtraction",
        "Add multiplication",
        "Add integer division",
        "Add power on top of multiplication",
        "Add the mean of a list",
    ] {
        let n = subjects
            .iter()
            .filter(|s| s.starts_with(&format!("{title} (")))
            .count();
        assert_eq!(n, 1, "{title}: {log}");
    }
    assert_eq!(git(&dir, &["rev-list", "--merges", "main"]), "");
    // the fixed division landed: the merged crate's tests pass (they ran on every merge)
    let div = git(&dir, &["show", "main:src/div.rs"]);
    assert!(div.contains("if b == 0"), "{div}");
    // the daemon was stopped
    crate::harness::eventually("the demo's sfd to stop", Duration::from_secs(15), || {
        handshake_pid(&socket_of(&td, &dir)).is_none().then_some(())
    });
}
