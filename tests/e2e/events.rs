//! `sfctl events`: one audit event per change, the `--task`, `--since` and `--limit` filters,
//! and `--follow` streaming live.

use std::time::Duration;

use sf_proto::{AuditEvent, EventId, PlanDetail};

use crate::harness::{ChildGuard, TestDaemon, drain, read_line_within};

#[test]
fn every_change_produces_exactly_one_event() {
    let td = TestDaemon::start();
    let mut seen = td.events(&[]).len();
    let mut expect_one = |what: &str, action_part: &str| {
        let events = td.events(&[]);
        assert_eq!(
            events.len(),
            seen + 1,
            "{what} should add exactly one event: {events:#?}"
        );
        let last = events.last().expect("an event");
        assert!(
            last.action.contains(action_part),
            "{what}: expected an action containing {action_part:?}, got {last:#?}"
        );
        assert!(!last.actor.is_empty());
        seen += 1;
        last.clone()
    };

    let t = td.create_task("audited", &[]);
    let id = t.task.id.to_string();
    let e = expect_one("task create", "create");
    assert_eq!(e.subject, format!("task:{id}"));
    assert_eq!(e.task.as_ref().map(ToString::to_string), Some(id.clone()));
    assert!(e.before.is_none() && e.after.is_some(), "{e:#?}");

    td.sfctl()
        .args(["task", "update", &id, "--title", "audited twice"])
        .success();
    expect_one("task update", "updat");
    td.sfctl()
        .args(["task", "close", &id, "--reason", "because"])
        .success();
    let e = expect_one("task close", "status");
    assert_eq!(e.reason.as_deref(), Some("because"), "{e:#?}");
    let before = e.before.expect("before").to_string();
    let after = e.after.expect("after").to_string();
    assert!(
        before.contains("open") && after.contains("closed"),
        "{before} -> {after}"
    );
    td.sfctl().args(["task", "reopen", &id]).success();
    expect_one("task reopen", "status");

    let other = td.create_task("other", &[]).task.id.to_string();
    expect_one("task create", "create");
    let dep: sf_proto::DepInfo = td.sfctl().args(["dep", "add", &id, &other]).json();
    expect_one("dep add", "dep");
    td.sfctl()
        .args(["dep", "remove", "--id", &dep.id.to_string()])
        .success();
    expect_one("dep remove", "dep");
    let p: PlanDetail = td.sfctl().args(["plan", "create", "P"]).json();
    expect_one("plan create", "plan");
    td.sfctl()
        .args(["plan", "activate", p.plan.id.as_str()])
        .success();
    expect_one("plan activate", "plan");
    td.sfctl()
        .args(["agent", "register", "w1", "--role", "director"])
        .success();
    expect_one("agent register", "agent");
    td.sfctl().args(["agent", "remove", "w1"]).success();
    expect_one("agent remove", "agent");

    // Reads and refusals write nothing.
    td.sfctl().args(["task", "list"]).success();
    td.sfctl().args(["task", "show", &id]).success();
    td.sfctl().args(["task", "undefer", &id]).fails(1);
    assert_eq!(
        td.events(&[]).len(),
        seen,
        "reads and refusals must not add events"
    );

    let ids: Vec<i64> = td.events(&[]).iter().map(|e| e.id.0).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "event ids only grow: {ids:?}"
    );
}

#[test]
fn filter_by_task_since_and_limit() {
    let td = TestDaemon::start();
    let a = td.create_task("a", &[]).task.id.to_string();
    let b = td.create_task("b", &[]).task.id.to_string();
    td.sfctl().args(["task", "close", &a]).success();
    td.sfctl().args(["task", "defer", &b]).success();
    let all = td.events(&[]);
    assert_eq!(all.len(), 4, "{all:#?}");

    let of_a = td.events(&["--task", &a]);
    assert_eq!(of_a.len(), 2, "{of_a:#?}");
    assert!(
        of_a.iter()
            .all(|e| e.task.as_ref().map(ToString::to_string) == Some(a.clone()))
    );
    let prefix = &a[..a.len() - 1];
    assert_eq!(
        td.events(&["--task", prefix]),
        of_a,
        "--task takes a prefix"
    );

    let since = all[1].id;
    let later = td.events(&["--since", &since.to_string()]);
    assert_eq!(later, all[2..].to_vec());
    assert!(td.events(&["--since", &all[3].id.to_string()]).is_empty());

    let newest = td.events(&["--limit", "2"]);
    assert_eq!(newest, all[2..].to_vec(), "--limit keeps the newest");

    let text = td.sfctl().args(["events"]).success();
    assert!(text.contains(&a) && text.contains(&b), "{text}");
    let err = td.sfctl().args(["events", "--task", "zzzzzz"]).fails(1);
    assert!(err.contains("zzzzzz"), "{err}");
}

#[test]
fn follow_streams_events_as_they_happen() {
    let td = TestDaemon::start();
    td.create_task("before following", &[]);
    let last: EventId = td.events(&[]).last().expect("one event").id;
    let mut follow = ChildGuard(
        td.sfctl()
            .args(["--json", "events", "--follow", "--since", &last.to_string()])
            .spawn(),
    );
    let stdout = follow.0.stdout.take().expect("stdout");
    let first = td.create_task("while following", &[]).task.id;
    let (line, rx) = read_line_within(stdout, Duration::from_secs(10));
    let line = line.unwrap_or_else(|| {
        let _ = follow.0.kill();
        let err = drain(follow.0.stderr.take().expect("stderr"));
        panic!(
            "`events --follow` printed nothing within 10 s\nstderr: {err}\n{}",
            td.stderr_tail()
        )
    });
    let e: AuditEvent = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(e.task.as_ref(), Some(&first), "{e:#?}");

    // The follower is certainly subscribed now: this one must arrive live.
    let second = td.create_task("live", &[]).task.id;
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a live event within 10 s");
    let e: AuditEvent = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(e.task.as_ref(), Some(&second), "{e:#?}");
    assert!(e.id > last);
    assert!(
        follow.0.try_wait().expect("try_wait").is_none(),
        "--follow keeps running"
    );
}

#[test]
fn follow_without_since_only_shows_new_events() {
    let td = TestDaemon::start();
    let old = td.create_task("old", &[]).task.id;
    let mut follow = ChildGuard(td.sfctl().args(["--json", "events", "--follow"]).spawn());
    let stdout = follow.0.stdout.take().expect("stdout");
    // Keep creating until the follower shows one: it may subscribe after the first few.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (line, rest) = read_line_within(stdout, Duration::from_secs(15));
        let _ = tx.send(line);
        drop(rest);
    });
    let mut created = Vec::new();
    let line = loop {
        created.push(td.create_task("new", &[]).task.id);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            break line.expect("a line from --follow");
        }
        assert!(
            created.len() < 40,
            "`events --follow` printed nothing\n{}",
            td.stderr_tail()
        );
    };
    let e: AuditEvent = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_ne!(
        e.task.as_ref(),
        Some(&old),
        "history is not replayed without --since"
    );
    assert!(created.contains(e.task.as_ref().expect("a task event")));
}

#[test]
fn follow_ends_cleanly_when_the_daemon_stops() {
    let mut td = TestDaemon::start();
    let mut follow = ChildGuard(td.sfctl().args(["events", "--follow"]).spawn());
    // the stream is open once it has printed an event
    let stdout = follow.0.stdout.take().expect("stdout");
    let (first, _rest) = first_followed_line(&td, stdout);
    assert!(first.is_some(), "`events --follow` printed nothing");
    td.shutdown();
    let status = td.wait_for("`events --follow` to exit after the daemon stopped", || {
        follow
            .0
            .try_wait()
            .expect("try_wait")
            .ok_or("still running")
    });
    assert_ne!(status.code(), Some(255), "not a crash: {status}");
    assert_ne!(status.code(), None, "killed by a signal: {status}");
}

/// Creates tasks until `events --follow` (whose stdout is `stdout`) prints a line: then
/// the stream is surely open. Returns that line and the rest of the output.
fn first_followed_line(
    td: &TestDaemon,
    stdout: std::process::ChildStdout,
) -> (Option<String>, std::sync::mpsc::Receiver<String>) {
    std::thread::scope(|s| {
        let reader = s.spawn(|| read_line_within(stdout, Duration::from_secs(15)));
        while !reader.is_finished() {
            td.create_task("seen live", &[]);
            std::thread::sleep(Duration::from_millis(100));
        }
        reader.join().expect("reader thread")
    })
}

#[test]
fn follow_says_so_and_exits_3_when_the_daemon_closes_the_stream() {
    let mut td = TestDaemon::start();
    let mut follow = ChildGuard(td.sfctl().args(["events", "--follow"]).spawn());
    let stdout = follow.0.stdout.take().expect("stdout");
    let (first, rx) = first_followed_line(&td, stdout);
    assert!(first.is_some(), "`events --follow` printed nothing");
    td.shutdown();
    let status = td.wait_for("`events --follow` to exit after the daemon stopped", || {
        follow
            .0
            .try_wait()
            .expect("try_wait")
            .ok_or("still running")
    });
    drop(rx);
    let stderr = drain(follow.0.stderr.take().expect("stderr"));
    assert_eq!(status.code(), Some(3), "{status}\n{stderr}");
    assert!(
        stderr.contains("error: sfd closed the stream (it stopped or restarted)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sfctl events --follow --since "),
        "{stderr}"
    );
}

#[test]
fn follow_with_retry_goes_on_across_a_restart_without_losing_or_repeating_an_event() {
    let mut td = TestDaemon::start();
    let mut follow = ChildGuard(
        td.sfctl()
            .args(["--json", "events", "--follow", "--retry"])
            .spawn(),
    );
    let stdout = follow.0.stdout.take().expect("stdout");
    let (first, rx) = first_followed_line(&td, stdout);
    let mut lines = vec![first.expect("`events --follow --retry` printed nothing")];
    td.restart();
    // at once: likely before the follower is back, so it comes from the resumed history
    td.sfctl()
        .args(["event", "emit", "after_restart", "--data", "n=1"])
        .success();
    let wait_for = |lines: &mut Vec<String>, subject: &str| {
        let start = std::time::Instant::now();
        while !lines.iter().any(|l| l.contains(subject)) {
            let left = Duration::from_secs(20).saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => panic!("no {subject} within 20 s: {lines:#?}\n{}", td.stderr_tail()),
            }
        }
    };
    wait_for(&mut lines, "event:after_restart");
    // and one that can only arrive live, on the new stream
    td.sfctl().args(["event", "emit", "live_again"]).success();
    wait_for(&mut lines, "event:live_again");
    let events: Vec<AuditEvent> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "each event once, in order: {ids:?}"
    );
    // nothing the daemon recorded after the first printed event was left out
    let logged: Vec<EventId> = td
        .events(&["--since", &ids[0].to_string()])
        .iter()
        .map(|e| e.id)
        .filter(|id| *id <= *ids.last().expect("ids"))
        .collect();
    assert_eq!(ids[1..], logged[..], "every event once");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.subject == "event:after_restart")
            .count(),
        1
    );
    assert!(
        follow.0.try_wait().expect("try_wait").is_none(),
        "--retry keeps following"
    );
    let _ = follow.0.kill();
    let _ = follow.0.wait();
    let stderr = drain(follow.0.stderr.take().expect("stderr"));
    assert!(
        stderr.contains("sfd closed the stream") && stderr.contains("reconnected to sfd"),
        "a note on stderr says so: {stderr}"
    );
}

#[test]
fn logs_follow_waits_for_the_first_run_then_follows_it() {
    use std::io::{BufRead, BufReader};

    let td = crate::fleet::fleet("");
    let gate = td.root.join("go");
    let id = td.create_task("log me later", &[]).task.id.to_string();
    let mut follow = ChildGuard(td.sfctl().args(["logs", &id, "--follow"]).spawn());
    let lines = |pipe: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let stderr = lines(Box::new(follow.0.stderr.take().expect("stderr")));
    let stdout = lines(Box::new(follow.0.stdout.take().expect("stdout")));
    let waiting = stderr
        .recv_timeout(Duration::from_secs(15))
        .expect("a line on stderr before any run");
    assert_eq!(
        waiting,
        format!("waiting for the first run of {id}… (Ctrl-C to stop)")
    );

    let s = crate::fleet::script(
        &td,
        "w",
        &format!(
            "stdout hello from the first run\nwait-file {}\ncomplete-no-changes\n",
            gate.display()
        ),
    );
    crate::fleet::worker(&td, "w1", &s, &[]);
    let line = stdout
        .recv_timeout(Duration::from_secs(15))
        .unwrap_or_else(|_| panic!("the run's output was not followed\n{}", td.stderr_tail()));
    assert_eq!(line, "hello from the first run");
    assert!(
        follow.0.try_wait().expect("try_wait").is_none(),
        "still following the live run"
    );
    std::fs::write(&gate, "").expect("open the gate");
    let status = td.wait_for("`logs --follow` to exit after the run ended", || {
        follow
            .0
            .try_wait()
            .expect("try_wait")
            .ok_or("still running")
    });
    assert!(status.success(), "{status}");
}
