//! Run logs under pressure: a flooding worker's log is capped (head and tail kept, the cut
//! said in the log and in an event), also across a `kill -9` of the daemon; and the daemon
//! survives its own log and its database failing to be written (a full disk).

use std::fs;
use std::io::Read as _;
use std::process::Stdio;
use std::time::Duration;

use sf_proto::{DaemonStatus, TaskStatus};

use crate::fleet::{fleet, script, wait_status, worker};
use crate::harness::{TestDaemon, eventually};

/// The cap the tests configure; what is kept may exceed it by the two marker lines.
const CAP: u64 = 256 << 10;
const SLACK: u64 = 1024;

fn log_path(td: &TestDaemon, task: &str) -> String {
    let t = td.show_task(task);
    t.runs
        .first()
        .and_then(|r| r.log_path.clone())
        .unwrap_or_else(|| panic!("run of {task} has no log: {:?}", t.runs))
}

fn truncation_events(td: &TestDaemon) -> Vec<serde_json::Value> {
    td.events(&[])
        .into_iter()
        .filter(|e| e.action == "run_log_truncated")
        .filter_map(|e| e.after)
        .collect()
}

#[test]
fn a_flooding_worker_keeps_the_head_and_tail_of_its_log_and_the_cut_is_recorded() {
    let td = fleet("run_log_max = \"256 KiB\"");
    let id = td.create_task("flood", &[]).task.id.to_string();
    let s = script(
        &td,
        "w",
        "stdout first line\nflood 20000000\nstdout last line\nwrite f.txt x\ncommit f\ncomplete\n",
    );
    worker(&td, "w1", &s, &[]);
    wait_status(&td, &id, TaskStatus::Review);
    td.wait_for("the run to end", || {
        let t = td.show_task(&id);
        if t.runs.first().is_some_and(|r| r.ended_at.is_some()) {
            Ok(())
        } else {
            Err(t.runs)
        }
    });
    let path = log_path(&td, &id);
    let size = fs::metadata(&path).expect("log file").len();
    assert!(
        size <= CAP + SLACK,
        "the log of a 20 MB flood is {size} bytes"
    );
    let shown = td.sfctl().args(["logs", &id]).success();
    assert!(
        shown.starts_with("first line\nflood 0000000000 "),
        "{}",
        &shown[..200]
    );
    // the tail: the last lines the worker wrote (then what `sfctl task complete` printed)
    let end = &shown[shown.len() - 200..];
    assert!(end.contains("flood "), "{end}");
    assert!(end.contains("\nlast line\n"), "{end}");
    assert!(
        shown.contains("[sf] log cap reached"),
        "no marker in the log"
    );
    let dropped_line = shown
        .lines()
        .find(|l| l.contains("bytes of output dropped here"))
        .expect("a line saying how much was dropped");
    let dropped: u64 = dropped_line
        .trim_start_matches("[sf] ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a byte count");
    assert!(dropped > 19_000_000, "{dropped_line}");
    let events = truncation_events(&td);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["dropped_bytes"], dropped);
    assert_eq!(events[0]["cap_bytes"], CAP);
    // no FIFO or ring file is left next to the log
    assert!(!fs::exists(format!("{path}.pipe")).unwrap());
    assert!(!fs::exists(format!("{path}.tail")).unwrap());
}

#[test]
fn a_flooding_worker_outlives_a_kill_9_of_the_daemon_and_its_log_stays_capped() {
    let mut td = fleet("run_log_max = \"256 KiB\"");
    let gate = td.root.join("stop-flooding");
    let id = td.create_task("flood", &[]).task.id.to_string();
    let s = script(
        &td,
        "w",
        &format!(
            "stdout first line\nflood 1000000 {}\nstdout last line\nwrite f.txt x\ncommit f\ncomplete\n",
            gate.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let path = td.wait_for("the worker to flood past the cap", || {
        let t = td.show_task(&id);
        let p = t.runs.first().and_then(|r| r.log_path.clone());
        match p.as_ref().map(fs::read) {
            Some(Ok(bytes)) if bytes.windows(20).any(|w| w == b"[sf] log cap reached") => {
                Ok(p.unwrap_or_default())
            }
            _ => Err(t.runs),
        }
    });
    td.kill9();
    // with nobody reading, the worker must wait, not die of SIGPIPE or fill the disk
    td.spawn();
    let mut follow = td
        .sfctl()
        .args(["logs", &id, "--follow"])
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sfctl logs --follow");
    fs::write(&gate, "").expect("open the gate");
    wait_status(&td, &id, TaskStatus::Review);
    let mut followed = String::new();
    follow
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut followed)
        .expect("read the follow");
    let status = eventually("logs --follow to end", Duration::from_secs(15), || {
        follow.try_wait().expect("try_wait")
    });
    assert!(status.success(), "logs --follow: {status}");
    assert!(followed.starts_with("first line\n"), "{}", &followed[..100]);
    assert!(followed.contains("[sf] log cap reached"));
    assert!(followed.contains("bytes of output dropped here"));
    let end = &followed[followed.len() - 200..];
    assert!(end.contains("\nlast line\n"), "{end}");
    let size = fs::metadata(&path).expect("log file").len();
    assert!(size <= CAP + SLACK, "the log is {size} bytes");
    let t = td.show_task(&id);
    assert_eq!(
        t.runs.len(),
        1,
        "adopted, not dispatched again: {:?}",
        t.runs
    );
    let events = truncation_events(&td);
    assert_eq!(events.len(), 1, "{events:?}");
}

#[test]
fn sfd_keeps_working_when_its_own_log_cannot_be_written() {
    let mut td = TestDaemon::stopped();
    crate::fleet::configure(&td, "", "");
    // every write to /dev/full fails with ENOSPC, like sfd.log on a full disk
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    td.spawn_with_stderr(full.into());
    let id = td.create_task("work", &[]).task.id.to_string();
    let s = script(&td, "w", "write f.txt x\ncommit f\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    wait_status(&td, &id, TaskStatus::Review);
    let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert_eq!(st.pid, td.child_pid().expect("sfd child"));
}

/// Sets sfd's limit on the size of files it writes (`RLIMIT_FSIZE`): with a limit of 1
/// byte every write fails (`EFBIG`), as on a full disk; reads still work.
fn set_file_size_limit(pid: u32, limit: Option<u64>) {
    crate::harness::set_soft_limit(pid, nix::libc::RLIMIT_FSIZE, limit);
}

#[test]
fn a_run_end_that_could_not_be_recorded_is_recorded_when_space_returns() {
    let td = fleet("tick_interval = \"200ms\"\nmax_attempts = 5");
    let gate = td.root.join("exit-now");
    let id = td.create_task("fails", &[]).task.id.to_string();
    let s = script(&td, "w", &format!("wait-file {}\nexit 3\n", gate.display()));
    worker(&td, "w1", &s, &[]);
    let run = td.wait_for("the worker to run", || {
        let t = td.show_task(&id);
        match t.runs.first() {
            Some(r) if r.pid.is_some() => Ok(r.id),
            _ => Err(t.runs),
        }
    });
    let sfd = td.child_pid().expect("sfd child");
    set_file_size_limit(sfd, Some(1));
    fs::write(&gate, "").expect("let the worker exit");
    let warning = td.wait_for("sfd to say a run end could not be recorded", || {
        let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
        st.warnings
            .iter()
            .find(|w| w.contains("could not be recorded"))
            .cloned()
            .ok_or(st.warnings)
    });
    assert!(warning.contains("free disk space"), "{warning}");
    let t = td.show_task(&id);
    assert_eq!(t.task.status, TaskStatus::InProgress);
    assert!(t.runs[0].ended_at.is_none());
    // space returns: the end is recorded without a restart, the task goes back to the pool
    set_file_size_limit(sfd, None);
    let t = td.wait_for("the run's end to be recorded", || {
        let t = td.show_task(&id);
        if t.runs.iter().any(|r| r.id == run && r.ended_at.is_some()) {
            Ok(t)
        } else {
            Err((t.task.status, t.runs))
        }
    });
    let ended = t.runs.iter().find(|r| r.id == run).expect("the run");
    assert_eq!(ended.exit_code, Some(3), "{ended:?}");
    assert!(
        t.events.iter().any(|e| e.action == "run_failed"),
        "the task went back to the pool: {:?}",
        t.events
    );
    let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert_eq!(st.pid, sfd, "the same daemon");
    assert!(
        !st.warnings
            .iter()
            .any(|w| w.contains("could not be recorded")),
        "{:?}",
        st.warnings
    );
}
