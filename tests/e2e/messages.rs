//! Messages: routing to the director (or a backlog task when there is none), inboxes, read
//! marks, messages from inside a run checked by lease, messages to a task reaching its next
//! worker's prompt, `inbox --follow`, and bad input that changes nothing.

use std::fs;
use std::time::Duration;

use sf_proto::{MessageInfo, StewardRunInfo, TaskStatus};

use crate::fleet::{FAKE, fleet, script, wait_status, worker};
use crate::harness::{ChildGuard, TestDaemon, drain, read_line_within};

fn register_director(td: &TestDaemon, name: &str) {
    td.sfctl()
        .args([
            "agent",
            "register",
            name,
            "--role",
            "director",
            "--mode",
            "persistent",
        ])
        .success();
}

fn all_messages(td: &TestDaemon) -> Vec<MessageInfo> {
    td.sfctl().args(["message", "list"]).json()
}

#[test]
fn a_message_to_the_director_without_one_becomes_a_backlog_task_no_worker_takes() {
    let td = fleet("");
    let s = script(&td, "w", "complete-no-changes\n");
    worker(&td, "w1", &s, &[]);
    let m: MessageInfo = td
        .sfctl()
        .args([
            "message",
            "send",
            "--to",
            "director",
            "--subject",
            "Drop Python 2?",
            "The CI matrix still runs 2.7; keep it or drop it?",
        ])
        .json();
    assert_eq!(m.to, "director");
    let decision = m.became_task.expect("no director: it became a task");
    let d = td.show_task(decision.as_str());
    assert_eq!(d.task.status, TaskStatus::Backlog);
    assert_eq!(d.task.title, "Decision needed: Drop Python 2?");
    assert!(
        d.description.contains("keep it or drop it?"),
        "{}",
        d.description
    );
    assert!(!d.ready);
    // the worker takes real work and leaves the decision alone
    let work = td.create_task("real work", &[]).task.id.to_string();
    wait_status(&td, &work, TaskStatus::Closed);
    let d = td.show_task(decision.as_str());
    assert_eq!(d.task.status, TaskStatus::Backlog);
    assert!(d.runs.is_empty(), "{:?}", d.runs);
    let created = td
        .events(&["--task", decision.as_str()])
        .into_iter()
        .find(|e| e.action == "task_created")
        .expect("an audit event for the task");
    assert!(
        created
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("no director"),
        "{created:?}"
    );
}

#[test]
fn messages_reach_the_director_the_sender_reports_to_and_are_marked_read() {
    let td = TestDaemon::start();
    register_director(&td, "d1");
    register_director(&td, "d2");
    let s = td.root.join("noop.script");
    fs::write(&s, "exit 0\n").expect("script");
    td.sfctl()
        .args([
            "agent",
            "register",
            "w1",
            "--role",
            "worker",
            "--command",
            &format!("{FAKE} {}", s.display()),
            "--reports-to",
            "d2",
        ])
        .success();
    let from_worker: MessageInfo = td
        .sfctl()
        .env("SF_AGENT", "w1")
        .args(["message", "send", "--to", "director", "Which API version?"])
        .json();
    assert_eq!(
        (from_worker.from.as_str(), from_worker.to.as_str()),
        ("w1", "d2")
    );
    assert_eq!(from_worker.addressed.as_deref(), Some("director"));
    assert_eq!(from_worker.subject, "Which API version?");
    let from_human: MessageInfo = td
        .sfctl()
        .env("USER", "alice")
        .args(["message", "send", "--to", "director", "Status?"])
        .json();
    assert_eq!(
        (from_human.from.as_str(), from_human.to.as_str()),
        ("human:alice", "d1"),
        "no one to report to: the first director by name"
    );

    // d2 reads its inbox: unread first, then marked read, then only with --all
    let inbox: Vec<MessageInfo> = td.sfctl().env("SF_AGENT", "d2").arg("inbox").json();
    assert_eq!(
        inbox.iter().map(|m| m.id).collect::<Vec<_>>(),
        [from_worker.id]
    );
    // someone else looking does not take it out of d2's inbox; d2 reading it does
    td.sfctl()
        .args(["message", "read", &from_worker.id.to_string()])
        .success();
    let inbox: Vec<MessageInfo> = td.sfctl().env("SF_AGENT", "d2").arg("inbox").json();
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let text = td
        .sfctl()
        .env("SF_AGENT", "d2")
        .args(["message", "read", &from_worker.id.to_string()])
        .success();
    assert!(
        text.contains("Which API version?") && text.contains("from:") && text.contains("w1"),
        "{text}"
    );
    let inbox: Vec<MessageInfo> = td.sfctl().env("SF_AGENT", "d2").arg("inbox").json();
    assert!(inbox.is_empty(), "{inbox:?}");
    let all: Vec<MessageInfo> = td
        .sfctl()
        .env("SF_AGENT", "d2")
        .args(["inbox", "--all"])
        .json();
    assert!(all[0].read_at.is_some(), "{all:?}");

    // a reply goes back to the sender
    let reply: MessageInfo = td
        .sfctl()
        .env("SF_AGENT", "d2")
        .args(["message", "reply", &from_worker.id.to_string(), "v2"])
        .json();
    assert_eq!((reply.from.as_str(), reply.to.as_str()), ("d2", "w1"));
    assert_eq!(reply.reply_to, Some(from_worker.id));
    let events = td.events(&[]);
    assert_eq!(
        events.iter().filter(|e| e.action == "message_sent").count(),
        3
    );
    assert_eq!(
        events.iter().filter(|e| e.action == "message_read").count(),
        1
    );
}

#[test]
fn a_worker_speaks_with_its_lease_and_a_stale_lease_is_refused() {
    let td = fleet("");
    let token = td.root.join("token");
    let s = script(
        &td,
        "w",
        &format!(
            "save-env SF_RUN {}\nsfctl message send --to human --subject stuck which-database?\ncomplete-no-changes\n",
            token.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("pick a database", &[]).task.id.to_string();
    wait_status(&td, &id, TaskStatus::Closed);
    let inbox: Vec<MessageInfo> = td.sfctl().arg("inbox").json();
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0].from, "w1");
    assert_eq!(
        inbox[0].task.as_ref().map(|t| t.as_str()),
        Some(id.as_str())
    );
    assert_eq!(inbox[0].body, "which-database?");

    // the run is over: its token cannot speak any more, and nothing is recorded
    let token = fs::read_to_string(&token).expect("saved token");
    let err = td
        .sfctl()
        .env("SF_RUN", token.trim())
        .args(["message", "send", "--to", "human", "late"])
        .fails(1);
    assert!(err.contains("ended"), "{err}");
    assert_eq!(all_messages(&td).len(), 1);
}

#[test]
fn a_message_to_a_task_is_in_the_prompt_of_its_next_worker() {
    let td = fleet("");
    let id = td
        .create_task("call the billing API", &[])
        .task
        .id
        .to_string();
    let m: MessageInfo = td
        .sfctl()
        .args([
            "message",
            "send",
            "--task",
            &id,
            "Use the v2 endpoint; v1 is going away",
        ])
        .json();
    assert_eq!(m.to, format!("task:{id}"));
    let s = script(
        &td,
        "w",
        "expect-prompt-contains Use the v2 endpoint; v1 is going away\ncomplete-no-changes\n",
    );
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &id, TaskStatus::Closed);
    assert_eq!(
        t.attempts, 0,
        "the first run saw the message: {:?}",
        t.notes
    );
    assert_eq!(t.messages.len(), 1);
}

#[test]
fn inbox_follow_prints_each_new_message_for_you_as_it_arrives() {
    let td = TestDaemon::start();
    register_director(&td, "d1");
    let mut follow = ChildGuard(
        td.sfctl()
            .env("SF_AGENT", "d1")
            .args(["--json", "inbox", "--follow"])
            .spawn(),
    );
    let stdout = follow.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (line, rest) = read_line_within(stdout, Duration::from_secs(15));
        let _ = tx.send(line);
        for l in rest {
            let _ = tx.send(Some(l));
        }
    });
    // it may subscribe after the first few: keep sending until one shows up; the messages
    // to someone else in between must never show
    let mut sent = Vec::new();
    let line = loop {
        td.sfctl()
            .args(["message", "send", "--to", "human", "not for d1"])
            .success();
        let m: MessageInfo = td
            .sfctl()
            .args([
                "message",
                "send",
                "--to",
                "director",
                &format!("n{}", sent.len()),
            ])
            .json();
        sent.push(m.id);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            break line.unwrap_or_else(|| {
                panic!(
                    "no line; stderr: {}",
                    drain(follow.0.stderr.take().expect("stderr"))
                )
            });
        }
        assert!(sent.len() < 40, "`inbox --follow` printed nothing");
    };
    let m: MessageInfo = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(sent.contains(&m.id), "{m:?}");
    assert_eq!(m.to, "d1");
    // and a later one arrives live
    let last: MessageInfo = td
        .sfctl()
        .args(["message", "send", "--to", "d1", "live"])
        .json();
    let got = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a live message within 10 s")
            .expect("a line");
        let m: MessageInfo = serde_json::from_str(&line).expect("a message");
        assert_eq!(m.to, "d1", "only d1's messages: {m:?}");
        if m.id == last.id {
            break m;
        }
    };
    assert_eq!(got.body, "live");
}

#[test]
fn bad_messages_are_refused_with_a_hint_and_change_nothing() {
    let td = TestDaemon::start();
    let huge = "x".repeat(70 * 1024);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["send", "--to", "nobody", "hi"],
            "no agent named `nobody`",
        ),
        (vec!["send", "hi"], "no recipient"),
        (vec!["send", "--to", "human", "  "], "empty"),
        (vec!["send", "--to", "human", &huge], "limit"),
        (
            vec!["send", "--to", "human", "--subject", "a\nb", "hi"],
            "subject",
        ),
        (vec!["send", "--task", "zzzzzz", "hi"], "zzzzzz"),
        (vec!["send", "--to", "task:zzzzzz", "hi"], "zzzzzz"),
        (vec!["reply", "42", "hi"], "no message 42"),
        (vec!["read", "42"], "no message 42"),
        (vec!["send", "--to", "human", "--reply-to", "x", "hi"], "x"),
    ];
    for (args, want) in cases {
        let err = td.sfctl().arg("message").args(&args).run();
        let stderr = String::from_utf8_lossy(&err.stderr);
        let shown: Vec<String> = args.iter().map(|a| a.chars().take(40).collect()).collect();
        assert!(!err.status.success(), "{shown:?} succeeded");
        assert!(stderr.contains(want), "{shown:?}: {stderr}");
        assert!(
            stderr.contains("hint:") || err.status.code() == Some(2),
            "{shown:?} gives a hint: {stderr}"
        );
    }
    assert!(all_messages(&td).is_empty());
    assert!(td.list_tasks(&[]).is_empty());
    assert!(
        !td.events(&[])
            .iter()
            .any(|e| e.action.starts_with("message")),
        "nothing recorded"
    );
}

#[test]
fn a_steward_can_fire_on_message_sent() {
    let td = fleet("");
    let s = script(&td, "s", "exit 0\n");
    td.sfctl()
        .args([
            "agent",
            "register",
            "triage",
            "--role",
            "steward",
            "--focus",
            "recovery",
            "--command",
            &format!("{FAKE} {}", s.display()),
            "--on",
            "message_sent:{{to}} == human",
        ])
        .success();
    td.sfctl()
        .args(["message", "send", "--to", "triage", "not for humans"])
        .success();
    td.sfctl()
        .args([
            "message",
            "send",
            "--to",
            "human",
            "--subject",
            "help",
            "please",
        ])
        .success();
    let runs: Vec<StewardRunInfo> = td.wait_for("one steward run", || {
        let h: Vec<StewardRunInfo> = td.sfctl().args(["steward", "history", "triage"]).json();
        if h.len() == 1 && h[0].ended_at.is_some() {
            Ok(h)
        } else {
            Err(h)
        }
    });
    assert_eq!(runs[0].data["subject"], "help");
    assert_eq!(runs[0].data["to"], "human");
    td.wait_ticks(3);
    let h: Vec<StewardRunInfo> = td.sfctl().args(["steward", "history", "triage"]).json();
    assert_eq!(h.len(), 1, "the message to triage did not fire it: {h:?}");
}

#[test]
fn inbox_follow_exits_3_when_the_daemon_goes_away() {
    let mut td = TestDaemon::start();
    let mut follow = ChildGuard(
        td.sfctl()
            .args(["--json", "inbox", "--follow", "--for", "human"])
            .spawn(),
    );
    let stdout = follow.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (line, _rest) = read_line_within(stdout, Duration::from_secs(15));
        let _ = tx.send(line);
    });
    // make sure it is subscribed: a message arrives
    let mut sent = 0;
    loop {
        td.sfctl()
            .args(["message", "send", "--to", "human", "ping"])
            .success();
        sent += 1;
        if rx.recv_timeout(Duration::from_millis(300)).is_ok() {
            break;
        }
        assert!(sent < 40, "`inbox --follow` printed nothing");
    }
    td.shutdown();
    let status =
        crate::harness::eventually("the follower to exit", Duration::from_secs(15), || {
            follow.0.try_wait().ok().flatten()
        });
    assert_eq!(status.code(), Some(3));
    let err = drain(follow.0.stderr.take().expect("stderr"));
    assert!(err.contains("sfd closed the stream"), "{err}");
    assert!(err.contains("sfctl inbox --follow --for human"), "{err}");
}

#[test]
fn a_message_from_an_agent_that_does_not_exist_is_refused() {
    let td = crate::harness::TestDaemon::start();
    let (err, _) = td
        .sfctl()
        .env("SF_AGENT", "nobody")
        .args(["message", "send", "--to", "human", "hello"])
        .json_fails(1);
    assert_eq!(err["error"]["kind"], "not_found", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nobody"),
        "{err}"
    );
    let listed: Vec<serde_json::Value> = td.sfctl().args(["message", "list"]).json();
    assert!(listed.is_empty(), "recorded anyway: {listed:?}");
    // a registered one may
    td.sfctl()
        .args(["agent", "register", "lead", "--role", "director"])
        .success();
    td.sfctl()
        .env("SF_AGENT", "lead")
        .args(["message", "send", "--to", "human", "hello"])
        .success();
}
