//! A steward is never fired by its own work (issue 10, item 1): a custom steward whose
//! playbook creates a task on `task_completed` fires for the tasks others complete, never
//! for its own; and event fires past `steward_fire_limit` a minute are skipped, with a
//! `steward_rate_limited` event. A custom event a steward's run emits does not fire it
//! either, whatever the event's data says.

use std::fs;
use std::time::Duration;

use sf_proto::{StewardRunInfo, TaskStatus};

use crate::fleet::{FAKE, fleet, script, wait_status, worker};
use crate::harness::{TestDaemon, eventually};

const FOLLOWUP: &str = r#"
name = "followup"
title = "Follow up {{title}}"

[[vars]]
name = "task"
required = true

[[vars]]
name = "title"
default = ""

[[steps]]
id = "review"
title = "Review the work of {{task}}"
priority = 2
"#;

fn history(td: &TestDaemon, name: &str) -> Vec<StewardRunInfo> {
    td.sfctl().args(["steward", "history", name]).json()
}

fn echoer(td: &TestDaemon, on: &str) -> String {
    fs::write(td.repo.join(".sf/playbooks/followup.toml"), FOLLOWUP).expect("write playbook");
    let out = td
        .sfctl()
        .args([
            "agent",
            "register",
            "echoer",
            "--role",
            "steward",
            "--focus",
            "custom",
            "--playbook",
            "followup",
            "--on",
            on,
        ])
        .run();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits until the steward `name` has `n` runs in its history.
fn runs(td: &TestDaemon, name: &str, n: usize) -> Vec<StewardRunInfo> {
    td.wait_for(&format!("{n} runs of {name}"), || {
        let h = history(td, name);
        if h.len() >= n { Ok(h) } else { Err(h.len()) }
    })
}

#[test]
fn a_steward_whose_playbook_makes_tasks_never_fires_on_its_own_tasks() {
    let td = fleet("");
    let warning = echoer(&td, "task_closed");
    assert!(
        warning.contains("creates tasks") && warning.contains("task_closed"),
        "registration should warn that its output can match its trigger:\n{warning}"
    );
    // the worker takes the steward's review tasks; the humans' tasks need a skill it lacks
    let s = script(&td, "w", "complete-no-changes\n");
    worker(&td, "w1", &s, &[]);
    let human = |title: &str| {
        let id = td
            .create_task(title, &["--skill", "human"])
            .task
            .id
            .to_string();
        td.sfctl()
            .args(["task", "close", &id, "--reason", "done"])
            .success();
        id
    };
    let first = human("Human work");
    runs(&td, "echoer", 1);
    // the review task it created is completed by the worker too
    let review = eventually("the review task", Duration::from_secs(15), || {
        td.list_tasks(&["--limit", "100"])
            .into_iter()
            .find(|t| t.title == format!("Review the work of {first}"))
    });
    wait_status(&td, review.id.as_str(), TaskStatus::Closed);
    // a second human task: its fire comes after anything the review's completion caused
    let second = human("More human work");
    let h = runs(&td, "echoer", 2);
    assert_eq!(
        h.len(),
        2,
        "echoer fired for its own review task: {:?}",
        h.iter().map(|r| &r.data).collect::<Vec<_>>()
    );
    let tasks: Vec<String> = h
        .iter()
        .filter_map(|r| {
            r.data
                .get("task")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
        .collect();
    assert!(
        tasks.contains(&first) && tasks.contains(&second),
        "{tasks:?}"
    );
    // one task made per fire, said in the singular
    assert!(
        h.iter()
            .all(|r| r.result.as_deref().is_some_and(|x| x.ends_with("(1 task)"))),
        "{:?}",
        h.iter().map(|r| &r.result).collect::<Vec<_>>()
    );
}

#[test]
fn event_fires_past_the_rate_limit_are_skipped_and_said() {
    let td = fleet("steward_fire_limit = 2");
    echoer(&td, "message_sent");
    for i in 0..4 {
        td.sfctl()
            .args(["message", "send", "--to", "human", &format!("note {i}")])
            .success();
    }
    let limited = eventually(
        "a steward_rate_limited event",
        Duration::from_secs(15),
        || {
            td.events(&["--limit", "500"])
                .into_iter()
                .find(|e| e.action == "steward_rate_limited")
        },
    );
    assert_eq!(limited.subject, "agent:echoer");
    assert_eq!(history(&td, "echoer").len(), 2, "fired past its limit");
}

/// Registers a steward running the fake agent with `script`, fired `--on on`.
fn scripted_steward(td: &TestDaemon, name: &str, script: &std::path::Path, on: &str) {
    let command = format!("{FAKE} {}", script.display());
    td.sfctl()
        .args([
            "agent", "register", name, "--role", "steward", "--focus", "recovery",
        ])
        .args(["--command", &command, "--on", on])
        .success();
}

#[test]
fn a_custom_event_a_steward_emits_does_not_fire_it_again() {
    let td = fleet("");
    // the announcer passes the news on, as `deploy_done` again
    let s = script(
        &td,
        "announcer",
        "sfctl event emit deploy_done --data env=relayed\nexit 0\n",
    );
    scripted_steward(&td, "announcer", &s, "deploy_done");
    // the witness listens too, and hears both: the human's event and the announcer's
    let w = script(&td, "witness", "exit 0\n");
    scripted_steward(&td, "witness", &w, "deploy_done");
    // a human's event is the human's, whatever its data says: it fires the witness
    td.sfctl()
        .args(["event", "emit", "deploy_done", "--data", "env=prod"])
        .args([
            "--data",
            "actor=agent:witness",
            "--data",
            "origin=agent:witness",
        ])
        .success();
    runs(&td, "witness", 2);
    let h = history(&td, "announcer");
    assert_eq!(
        h.len(),
        1,
        "the announcer fired on its own event: {:?}",
        h.iter().map(|r| (&r.trigger, &r.data)).collect::<Vec<_>>()
    );
}
