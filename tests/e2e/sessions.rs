//! Messages routed by recipient (an idle ephemeral worker's gather into one triage run; a
//! director's stay in its inbox), sessions of persistent workers and directors (turns,
//! input at turn boundaries, `sfctl merge`, restart, `--resume`), and silent workers.

use sf_proto::{MessageInfo, TaskStatus, TaskSummary};

use crate::fleet::{fleet, script, wait_status, worker};

fn send(td: &crate::harness::TestDaemon, to: &str, kind: &str, text: &str) {
    td.sfctl()
        .args(["message", "send", "--to", to, "--type", kind, text])
        .success();
}

#[test]
fn three_messages_to_an_idle_worker_start_one_triage_run_and_a_directors_stay_unread() {
    let td = fleet("triage_batch = 3\ntriage_after = \"1h\"");
    let s = script(
        &td,
        "w1",
        "expect-prompt-contains first question\nexpect-prompt-contains second question\n\
         expect-prompt-contains third question\nexpect-prompt-contains type help-request\ncomplete-no-changes\n",
    );
    worker(&td, "w1", &s, &[]);
    td.sfctl()
        .args([
            "agent",
            "register",
            "lead",
            "--role",
            "director",
            "--mode",
            "persistent",
        ])
        .success();
    send(&td, "w1", "help-request", "first question");
    send(&td, "w1", "generic", "second question");
    send(&td, "lead", "status-update", "for the director");
    td.wait_ticks(3);
    let none: Vec<TaskSummary> = td.sfctl().args(["task", "list"]).json();
    assert!(none.is_empty(), "two messages are not a batch: {none:?}");
    send(&td, "w1", "generic", "third question");
    let triage = td.wait_for("a triage task", || {
        let tasks: Vec<TaskSummary> = td.sfctl().args(["task", "list"]).json();
        match tasks
            .into_iter()
            .find(|t| t.title.starts_with("Triage 3 message(s)"))
        {
            Some(t) => Ok(t),
            None => Err(()),
        }
    });
    let t = wait_status(&td, triage.id.as_str(), TaskStatus::Closed);
    assert_eq!(t.runs.len(), 1, "one triage run: {:?}", t.runs);
    assert_eq!(t.runs[0].agent, "w1");
    let tasks: Vec<TaskSummary> = td
        .sfctl()
        .args(["task", "list", "--status", "closed"])
        .json();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    // the director reads its own inbox: its message is still unread, and it never ran
    let lead: Vec<MessageInfo> = td.sfctl().args(["message", "list", "--to", "lead"]).json();
    assert_eq!(lead.len(), 1);
    assert!(lead[0].read_at.is_none());
    assert_eq!(lead[0].kind, sf_proto::MessageType::StatusUpdate);
}

#[test]
fn a_silent_worker_is_stopped_at_stall_timeout_with_its_work_saved() {
    let td = fleet("max_attempts = 1\nstall_timeout = \"1s\"");
    let s = script(
        &td,
        "w1",
        "write wip.txt half done\nsleep 30000\ncomplete\n",
    );
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("silent", &[]).task.id.to_string();
    let t = crate::fleet::wait_first_run_ended(&td, &id);
    assert_eq!(t.runs[0].outcome.as_deref(), Some("stalled"), "{t:?}");
    let wip = crate::fleet::git(&td.repo, &["show", &format!("refs/sf/wip/{id}/1:wip.txt")]);
    assert_eq!(wip.trim(), "half done");
}

fn session(td: &crate::harness::TestDaemon, agent: &str) -> sf_proto::SessionInfo {
    let list: Vec<sf_proto::SessionInfo> = td.sfctl().args(["agent", "sessions", agent]).json();
    list.into_iter().next().expect("a session")
}

/// Waits until `agent`'s session has taken `turns` turns and none runs.
fn wait_turns(td: &crate::harness::TestDaemon, agent: &str, turns: u32) -> sf_proto::SessionInfo {
    td.wait_for(&format!("{agent}'s session to end turn {turns}"), || {
        let s = session(td, agent);
        if s.turns >= turns && !s.running {
            Ok(s)
        } else {
            Err((s.turns, s.running))
        }
    })
}

#[test]
fn a_persistent_workers_session_takes_messages_as_turns_and_lands_its_work() {
    let mut td = crate::fleet::fleet_with("", "test_command = \"true\"");
    crate::fleet::steward(&td);
    let g1 = td.root.join("g1");
    let g2 = td.root.join("g2");
    let s = script(
        &td,
        "p1",
        &format!(
            "expect-prompt-contains The session starts\n\
             --- next invocation\n\
             expect-prompt-contains add the health endpoint\n\
             expect-prompt-contains type task-assignment\n\
             touch {g1}.started\nwait-file {g1}\n\
             write health.txt ok\ncommit health\nsfctl merge --no-wait\n\
             --- next invocation\n\
             expect-prompt-contains and a readme too\n\
             touch {g2}.started\nwait-file {g2}\n\
             write README.md hello\ncommit readme\n",
            g1 = g1.display(),
            g2 = g2.display()
        ),
    );
    worker(&td, "p1", &s, &["--mode", "persistent"]);
    let started: sf_proto::SessionInfo = td.sfctl().args(["agent", "start", "p1"]).json();
    assert!(
        started.branch.starts_with("agent/p1/session-"),
        "{started:?}"
    );
    wait_turns(&td, "p1", 1);
    // a message is the next turn; one sent while a turn runs waits for its end
    send(&td, "p1", "task-assignment", "add the health endpoint");
    let started_file = std::path::PathBuf::from(format!("{}.started", g1.display()));
    td.wait_for("turn 2 to run", || {
        if started_file.exists() {
            Ok(())
        } else {
            Err(session(&td, "p1").turns)
        }
    });
    send(&td, "p1", "generic", "and a readme too");
    td.wait_ticks(3);
    assert_eq!(session(&td, "p1").turns, 2, "never interrupted mid-turn");
    std::fs::write(&g1, "go").unwrap();
    // its own `sfctl merge` lands the turn's work
    td.wait_for("the session's merge to land", || {
        match crate::fleet::mrs(&td)
            .into_iter()
            .find(|m| m.branch == started.branch)
        {
            Some(m) if m.state == sf_proto::MergeState::Merged => Ok(()),
            other => Err(other.map(|m| m.state)),
        }
    });
    assert_eq!(
        crate::fleet::git(&td.repo, &["show", "HEAD:health.txt"]).trim(),
        "ok"
    );
    // turn 3 runs with the message that waited; the daemon is killed under it
    let started_file = std::path::PathBuf::from(format!("{}.started", g2.display()));
    td.wait_for("turn 3 to run", || {
        if started_file.exists() {
            Ok(())
        } else {
            Err(session(&td, "p1").turns)
        }
    });
    td.kill9();
    td.restart();
    std::fs::write(&g2, "go").unwrap();
    let s = wait_turns(&td, "p1", 3);
    assert_eq!(s.status, sf_proto::SessionStatus::Active, "{s:?}");
    let adopted = td
        .events(&[])
        .into_iter()
        .any(|e| e.action == "worker_adopted");
    assert!(adopted, "the turn in flight was adopted");
    // a human ends it: the branch is kept
    let out = td.sfctl().args(["agent", "stop", "p1"]).success();
    assert!(out.contains("ended session"), "{out}");
    assert_eq!(session(&td, "p1").status, sf_proto::SessionStatus::Ended);
}

#[test]
fn an_ephemeral_worker_is_no_session_and_a_session_is_one_at_a_time() {
    let td = fleet("");
    let s = script(&td, "w1", "complete\n");
    worker(&td, "w1", &s, &[]);
    let (err, _) = td
        .sfctl()
        .args(["agent", "sessions", "nobody"])
        .json_fails(1);
    assert_eq!(err["error"]["kind"], "not_found", "{err}");
    let p = script(&td, "p1", "stdout idle\n");
    worker(&td, "p1", &p, &["--mode", "persistent"]);
    td.sfctl().args(["agent", "start", "p1"]).success();
    let (err, _) = td.sfctl().args(["agent", "start", "p1"]).json_fails(1);
    assert!(
        err["error"]["hint"]
            .as_str()
            .unwrap_or("")
            .contains("agent attach p1"),
        "{err}"
    );
    let (err, _) = td
        .sfctl()
        .args(["agent", "start", "p1", "--task", "abc123"])
        .json_fails(1);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("session"),
        "{err}"
    );
    let err = td.sfctl().args(["agent", "attach", "w1"]).fails(1);
    assert!(err.contains("no session"), "{err}");
}

/// Runs `sfctl ARGS` in a detached tmux session `name` (a terminal, as a person's), with
/// the workspace's hermetic environment.
fn in_tmux(td: &crate::harness::TestDaemon, name: &str, args: &[&str]) {
    let mut line: Vec<String> = vec!["env".into()];
    for (k, v) in td.hermetic_env() {
        line.push(format!("{k}={}", v.to_string_lossy()));
    }
    line.push(crate::harness::SFCTL.to_owned());
    line.extend(args.iter().map(|a| (*a).to_owned()));
    let status = std::process::Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "160",
            "-y",
            "50",
            "-c",
        ])
        .arg(&td.repo)
        .arg(line.join(" "))
        .status()
        .expect("tmux is installed (apt-get install tmux)");
    assert!(status.success());
}

fn tmux(args: &[&str]) -> String {
    let out = std::process::Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Ends a tmux session when the test does, passed or not.
struct TmuxSession(String);

impl Drop for TmuxSession {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

#[test]
fn attach_in_a_terminal_shows_the_transcript_and_sends_what_is_typed() {
    let td = fleet("");
    let s = script(
        &td,
        "p1",
        "stdout hello from the first turn\n\
         --- next invocation\n\
         expect-prompt-contains typed by a person\n\
         stdout got it: the second turn\n",
    );
    worker(&td, "p1", &s, &["--mode", "persistent"]);
    td.sfctl().args(["agent", "start", "p1"]).success();
    wait_turns(&td, "p1", 1);
    let name = format!("sf-attach-{}", std::process::id());
    let _session = TmuxSession(name.clone());
    in_tmux(&td, &name, &["agent", "attach", "p1"]);
    let screen = || tmux(&["capture-pane", "-p", "-t", &name]);
    td.wait_for("the transcript on the screen", || {
        let s = screen();
        if s.contains("hello from the first turn") {
            Ok(())
        } else {
            Err(s)
        }
    });
    // a person types a line and Enter: it is the session's next turn
    tmux(&["send-keys", "-t", &name, "typed by a person", "Enter"]);
    td.wait_for("the second turn on the screen", || {
        let s = screen();
        if s.contains("got it: the second turn") {
            Ok(())
        } else {
            let m: Vec<MessageInfo> = td.sfctl().args(["message", "list", "--to", "p1"]).json();
            Err((s, m.len(), session(&td, "p1").turns))
        }
    });
    assert_eq!(wait_turns(&td, "p1", 2).turns, 2);
}

#[test]
fn a_quiet_session_gets_a_health_check_as_its_next_turn() {
    let td = fleet("session_health_interval = \"1s\"");
    let s = script(
        &td,
        "p1",
        "stdout first\n--- next invocation\nexpect-prompt-contains type health-check\n\
         sfctl message send --to human --type status-update idle-and-well\n",
    );
    worker(&td, "p1", &s, &["--mode", "persistent"]);
    td.sfctl().args(["agent", "start", "p1"]).success();
    let s = wait_turns(&td, "p1", 2);
    assert!(s.note.is_none(), "{s:?}");
    let answers: Vec<MessageInfo> = td.sfctl().args(["message", "list", "--to", "human"]).json();
    assert!(
        answers
            .iter()
            .any(|m| m.from == "p1" && m.kind == sf_proto::MessageType::StatusUpdate),
        "{answers:?}"
    );
}

#[test]
fn a_message_before_the_session_is_its_first_turn_and_a_stalled_turn_is_flagged() {
    let td = fleet("stall_timeout = \"1s\"");
    let s = script(
        &td,
        "p1",
        "expect-prompt-contains sent before the session\nsleep 30000\n",
    );
    worker(&td, "p1", &s, &["--mode", "persistent"]);
    send(&td, "p1", "task-assignment", "sent before the session");
    td.wait_ticks(2);
    let tasks: Vec<TaskSummary> = td.sfctl().args(["task", "list"]).json();
    assert!(
        tasks.is_empty(),
        "a persistent worker gets no triage run: {tasks:?}"
    );
    td.sfctl().args(["agent", "start", "p1"]).success();
    let s = td.wait_for("the stalled turn to be flagged", || {
        let s = session(&td, "p1");
        if s.note.is_some() && !s.running {
            Ok(s)
        } else {
            Err((s.turns, s.running))
        }
    });
    assert_eq!(
        s.status,
        sf_proto::SessionStatus::Active,
        "a session is flagged, not stopped"
    );
    assert!(s.note.unwrap().contains("stall_timeout"));
    let human: Vec<MessageInfo> = td.sfctl().args(["message", "list", "--to", "human"]).json();
    assert!(
        human.iter().any(|m| m.subject.contains("stalled")),
        "{human:?}"
    );
}

#[test]
fn attach_with_its_input_ended_returns_once_the_session_is_idle() {
    let td = fleet("");
    let s = script(&td, "p1", "stdout hello from the first turn\n");
    worker(&td, "p1", &s, &["--mode", "persistent"]);
    td.sfctl().args(["agent", "start", "p1"]).success();
    wait_turns(&td, "p1", 1);
    // stdin is empty (as `... < /dev/null` or the end of a pipe): the transcript, then done
    let out = td.sfctl().args(["agent", "attach", "p1"]).success();
    assert!(out.contains("hello from the first turn"), "{out}");
    let (err, _) = td.sfctl().args(["agent", "attach", "p1"]).json_fails(1);
    assert!(
        err["error"]["hint"]
            .as_str()
            .unwrap_or("")
            .contains("logs p1"),
        "{err}"
    );
    // an agent may not start a session: a human does
    td.sfctl().args(["agent", "stop", "p1"]).success();
    td.sfctl().args(["agent", "enable", "p1"]).success();
    let (err, _) = td
        .sfctl()
        .env("SF_AGENT", "p1")
        .args(["agent", "start", "p1"])
        .json_fails(1);
    assert_eq!(err["error"]["kind"], "denied", "{err}");
    assert!(session(&td, "p1").status == sf_proto::SessionStatus::Ended);
}
