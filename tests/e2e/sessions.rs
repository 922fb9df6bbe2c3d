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
         expect-prompt-contains third question\nexpect-prompt-contains (help-request)\ncomplete-no-changes\n",
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
