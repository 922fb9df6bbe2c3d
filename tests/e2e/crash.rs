//! `kill -9` of the daemon at any moment, then a restart: every task is in a legal state and
//! nothing acknowledged to a client is lost.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sf_proto::{NewTask, Request, Response, TaskDetail, TaskStatus};

use crate::harness::{TestDaemon, eventually};

fn snapshot(td: &TestDaemon) -> Vec<TaskDetail> {
    let mut listed = td.list_tasks(&["--limit", "1000"]);
    listed.extend(td.list_tasks(&["--limit", "1000", "--status", "tombstone"]));
    let mut all: Vec<TaskDetail> = listed.iter().map(|t| td.show_task(t.id.as_str())).collect();
    all.sort_by(|a, b| a.task.id.cmp(&b.task.id));
    all
}

#[test]
fn kill9_then_restart_keeps_every_task_and_event() {
    let mut td = TestDaemon::start();
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            td.create_task(&format!("task {i}"), &["-p", &(1 + i % 5).to_string()])
                .task
                .id
                .to_string(),
        );
    }
    td.sfctl().args(["dep", "add", &ids[0], &ids[1]]).success();
    td.sfctl()
        .args(["task", "close", &ids[2], "--reason", "done"])
        .success();
    td.sfctl()
        .args(["task", "defer", &ids[3], "--until", "+1h"])
        .success();
    td.sfctl().args(["task", "backlog", &ids[4]]).success();
    td.sfctl()
        .args(["task", "block", &ids[5], "--reason", "wait"])
        .success();
    td.sfctl().args(["task", "delete", &ids[6]]).success();
    td.sfctl()
        .args(["task", "update", &ids[7], "--title", "renamed"])
        .success();
    td.sfctl()
        .args(["plan", "create", "P", "--active"])
        .success();
    td.sfctl()
        .args(["agent", "register", "w1", "--role", "director"])
        .success();
    let before = snapshot(&td);
    let events_before = td.events(&["--limit", "1000"]);
    let old_pid = td.child_pid().expect("child");

    td.kill9();
    assert!(td.sfctl().args(["task", "list"]).run().status.code() == Some(3));
    // Start it the way a user would: through `sfctl daemon start`, over the stale socket.
    td.sfctl().args(["daemon", "start"]).success();
    let new_pid = td
        .daemon_pid()
        .expect("the daemon answers after `daemon start`");
    assert_ne!(new_pid, old_pid);

    let after = snapshot(&td);
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            a.task, b.task,
            "task {} changed across the crash",
            b.task.id
        );
        assert_eq!(a.depends_on, b.depends_on);
        assert_eq!(a.notes, b.notes);
    }
    let events_after = td.events(&["--limit", "1000"]);
    assert_eq!(
        events_after[..events_before.len()],
        events_before[..],
        "the audit log survives a crash"
    );
    let names: Vec<String> = td
        .sfctl()
        .args(["agent", "list"])
        .json::<Vec<sf_proto::AgentSummary>>()
        .into_iter()
        .map(|a| a.spec.name)
        .collect();
    assert_eq!(names, ["w1"]);
    td.create_task("after the crash", &[]);
    td.sfctl().args(["daemon", "stop"]).success();
}

#[test]
fn kill9_during_concurrent_creations_loses_nothing_acknowledged() {
    const N: usize = 50;
    let mut td = TestDaemon::start();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let socket = td.socket.clone();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let acked = Arc::clone(&acked);
            let started = Arc::clone(&started);
            let socket = socket.clone();
            std::thread::spawn(move || {
                let Ok(mut c) = sf_client::Client::connect(&socket, "crash", None) else {
                    return;
                };
                for j in 0.. {
                    started.fetch_add(1, Ordering::SeqCst);
                    let task = NewTask {
                        title: format!("c{i}-{j}"),
                        ..NewTask::default()
                    };
                    match c.request(&Request::CreateTask { task }) {
                        Ok(Response::Task(t)) => acked.lock().expect("lock").push(t.task.id),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    eventually(
        "some creations to be acknowledged",
        Duration::from_secs(15),
        || (acked.lock().expect("lock").len() >= 100).then_some(()),
    );
    td.kill9();
    for h in handles {
        h.join().expect("client thread");
    }
    let acked: HashSet<String> = acked
        .lock()
        .expect("lock")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        started.load(Ordering::SeqCst) > acked.len(),
        "some requests were in flight"
    );

    td.spawn();
    let listed = td.list_tasks(&["--limit", "100000"]);
    let present: HashSet<String> = listed.iter().map(|t| t.id.to_string()).collect();
    let lost: Vec<&String> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged tasks were lost: {lost:?}",
        lost.len()
    );
    assert!(
        listed.iter().all(|t| t.status == TaskStatus::Open),
        "every task is in a legal state"
    );
    let events = td.events(&["--limit", "100000"]);
    let created: HashSet<String> = events
        .iter()
        .filter(|e| e.action.contains("create"))
        .filter_map(|e| e.task.as_ref().map(ToString::to_string))
        .collect();
    assert_eq!(
        created, present,
        "every task that exists has its creation event, and no other"
    );
    td.create_task("the daemon works after the crash", &[]);
}

#[test]
fn repeated_crashes_leave_a_usable_workspace() {
    let mut td = TestDaemon::start();
    for round in 0..3 {
        let t = td.create_task(&format!("round {round}"), &[]);
        td.sfctl()
            .args(["task", "close", t.task.id.as_str()])
            .success();
        td.kill9();
        td.spawn();
        assert_eq!(
            td.show_task(t.task.id.as_str()).task.status,
            TaskStatus::Closed
        );
    }
    td.restart();
    assert_eq!(
        td.list_tasks(&[]).len(),
        3,
        "a graceful restart after crashes keeps them too"
    );
}

#[test]
fn a_worker_that_completes_while_the_daemon_is_down_waits_for_the_restart() {
    let mut td = crate::fleet::fleet("");
    let gate = td.root.join("go");
    let id = td
        .create_task("finish while sfd restarts", &[])
        .task
        .id
        .to_string();
    let s = crate::fleet::script(
        &td,
        "w",
        &format!(
            "wait-file {}\nwrite f.txt x\ncommit f\ncomplete done while sfd was away\n",
            gate.display()
        ),
    );
    crate::fleet::worker(&td, "w1", &s, &[]);
    let branch = td.wait_for("the worker process to run", || {
        let t = td.show_task(&id);
        match (&t.branch, t.runs.first().and_then(|r| r.pid)) {
            (Some(b), Some(_)) => Ok(b.clone()),
            _ => Err(t.runs),
        }
    });

    td.kill9();
    std::fs::write(&gate, "").expect("open the gate");
    // The worker commits, then runs `sfctl task complete` while nothing answers.
    let range = format!("main..{branch}");
    eventually(
        "the worker to commit while sfd is down",
        Duration::from_secs(15),
        || (crate::fleet::git(&td.repo, &["rev-list", "--count", &range]) != "0").then_some(()),
    );
    // its `sfctl task complete` runs, finding nothing that answers (its output waits in
    // the run's FIFO for the next sfd, so the process itself is what can be seen)
    eventually(
        "the worker's `sfctl task complete` to run",
        Duration::from_secs(15),
        || completing_sfctl(&td.repo).then_some(()),
    );
    td.spawn();

    let done = crate::fleet::wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(
        done.notes.iter().filter(|n| n.kind == "summary").count(),
        1,
        "the completion's summary is recorded: {:?}",
        done.notes
    );
    let runs = td.wait_for("the run to end", || {
        let t = td.show_task(&id);
        if t.runs.first().is_some_and(|r| r.ended_at.is_some()) {
            Ok(t.runs)
        } else {
            Err(t.runs)
        }
    });
    assert_eq!(runs.len(), 1, "dispatched exactly once: {runs:?}");
    assert_eq!(
        runs[0].outcome.as_deref(),
        Some("completed"),
        "not reaped as crashed: {runs:?}"
    );
    let log = td.sfctl().args(["logs", &id]).success();
    assert!(
        log.contains("sfd is not reachable; retrying for up to 120 s (SF_CONNECT_WAIT)"),
        "the worker's sfctl said it was waiting: {log}"
    );
}

/// Recovery is told (issue 10, item 15): after a `kill -9`, `daemon status` says sfd exited
/// unexpectedly; `daemon start` sums up the workers it adopted and the runs that had ended,
/// and each is an event about its task.
#[test]
fn a_crash_is_said_and_the_restart_tells_what_it_adopted_and_reaped() {
    let mut td = crate::fleet::fleet("");
    let (stay, go) = (td.root.join("stay"), td.root.join("go"));
    let s = crate::fleet::script(
        &td,
        "w",
        &format!(
            "--- for Outlives\ntouch {stay}.started\nwait-file {stay}\ncomplete-no-changes\n\
             --- for Dies\ntouch {go}.started\nwait-file {go}\nexit 1\n",
            stay = stay.display(),
            go = go.display()
        ),
    );
    crate::fleet::worker(&td, "w1", &s, &[]);
    crate::fleet::worker(&td, "w2", &s, &[]);
    let outlives = td.create_task("Outlives", &[]).task.id.to_string();
    let dies = td.create_task("Dies", &[]).task.id.to_string();
    for f in [&stay, &go] {
        let started = std::path::PathBuf::from(format!("{}.started", f.display()));
        eventually("both workers to start", Duration::from_secs(15), || {
            started.exists().then_some(())
        });
    }
    let worker_pid = td.show_task(&dies).runs[0].pid.expect("the worker's pid");
    let pid = td.child_pid().expect("sfd");
    td.kill9();
    let said = td.sfctl().args(["daemon", "status"]).fails(3);
    assert!(
        said.contains(&format!(
            "sfd is not running: it exited unexpectedly (pid {pid}"
        )),
        "{said}"
    );
    // one worker ends while nothing watches it
    std::fs::write(&go, "").expect("open the gate");
    eventually("the worker to exit", Duration::from_secs(15), || {
        // gone, or a zombie nobody has reaped yet
        let stat = std::fs::read_to_string(format!("/proc/{worker_pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
        matches!(state, None | Some(Some('Z'))).then_some(())
    });
    let started = td.sfctl().args(["daemon", "start"]).success();
    assert!(
        started.contains("recovered at start: adopted 1 worker(s)")
            && started.contains("1 run(s) had ended"),
        "{started}"
    );
    let actions = |id: &str| -> Vec<String> {
        td.show_task(id)
            .events
            .into_iter()
            .map(|e| e.action)
            .collect()
    };
    assert!(actions(&outlives).contains(&"worker_adopted".to_owned()));
    assert!(actions(&dies).contains(&"worker_reaped".to_owned()));
    std::fs::write(&stay, "").expect("open the gate");
    crate::fleet::wait_status(&td, &outlives, TaskStatus::Closed);
}

/// Whether an `sfctl task complete` of a worker of the workspace at `repo` is running
/// (found in `/proc` by its command line and its `SF_WORKSPACE`).
fn completing_sfctl(repo: &std::path::Path) -> bool {
    let workspace = format!("SF_WORKSPACE={}", repo.display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let completes = args
            .windows(2)
            .any(|w| w == [&b"task"[..], &b"complete"[..]]);
        completes
            && std::fs::read(p.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == workspace.as_bytes()))
    })
}
