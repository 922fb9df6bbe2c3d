//! Stewards: event triggers with conditions, manual fires (the path cron fires take too),
//! overlap skipped, history kept across restarts, cron next-fire times shown.

use std::fs;

use sf_proto::{AgentDetail, StewardRunInfo};

use crate::fleet::{FAKE, fleet, script};
use crate::harness::TestDaemon;

fn steward(td: &TestDaemon, name: &str, script: &std::path::Path, args: &[&str]) {
    let command = format!("{FAKE} {}", script.display());
    td.sfctl()
        .args([
            "agent",
            "register",
            name,
            "--role",
            "steward",
            "--focus",
            "recovery",
            "--command",
            &command,
        ])
        .args(args)
        .success();
}

fn history(td: &TestDaemon, name: &str) -> Vec<StewardRunInfo> {
    td.sfctl().args(["steward", "history", name]).json()
}

fn finished(td: &TestDaemon, name: &str, n: usize) -> Vec<StewardRunInfo> {
    td.wait_for(&format!("{n} finished runs of {name}"), || {
        let h = history(td, name);
        if h.len() == n && h.iter().all(|r| r.ended_at.is_some()) {
            Ok(h)
        } else {
            Err(h)
        }
    })
}

#[test]
fn an_event_trigger_fires_once_per_matching_event_and_never_otherwise() {
    let td = fleet("");
    let fired = td.root.join("fired.txt");
    let s = script(&td, "s", &format!("append {} fired\\n\n", fired.display()));
    steward(
        &td,
        "watcher",
        &s,
        &["--on", "deploy_finished:{{env}} == prod && !{{dry_run}}"],
    );
    td.sfctl()
        .args(["event", "emit", "deploy_finished", "--data", "env=dev"])
        .success();
    td.sfctl()
        .args([
            "event",
            "emit",
            "deploy_finished",
            "--data",
            "env=prod",
            "--data",
            "dry_run=true",
        ])
        .success();
    td.sfctl()
        .args(["event", "emit", "other_event", "--data", "env=prod"])
        .success();
    td.sfctl()
        .args(["event", "emit", "deploy_finished", "--data", "env=prod"])
        .success();
    let runs = finished(&td, "watcher", 1);
    assert_eq!(runs[0].outcome.as_deref(), Some("ok"), "{runs:?}");
    assert!(runs[0].trigger.contains("deploy_finished"), "{runs:?}");
    assert_eq!(runs[0].data["env"], "prod");
    // settle: nothing else fires
    td.wait_ticks(3);
    assert_eq!(history(&td, "watcher").len(), 1);
    assert_eq!(
        fs::read_to_string(&fired).expect("fired").lines().count(),
        1
    );
}

#[test]
fn a_task_event_carries_the_task_data() {
    let td = fleet("");
    let seen = td.root.join("data.json");
    let s = script(
        &td,
        "s",
        &format!("save-env SF_STEWARD_DATA {}\n", seen.display()),
    );
    steward(
        &td,
        "urgent-watch",
        &s,
        &["--on", "task_created:{{priority}} == 1"],
    );
    td.create_task("not urgent", &["-p", "3"]);
    let t = td.create_task("urgent", &["-p", "1"]);
    let runs = finished(&td, "urgent-watch", 1);
    assert_eq!(runs[0].data["task"], t.task.id.as_str());
    let data: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&seen).expect("data")).expect("json");
    assert_eq!(data["title"], "urgent");
}

#[test]
fn a_running_steward_is_not_started_again_and_history_survives_a_restart() {
    let mut td = fleet("");
    let gate = td.root.join("gate");
    let s = script(&td, "s", &format!("wait-file {}\n", gate.display()));
    steward(&td, "slow", &s, &[]);
    let first: StewardRunInfo = td
        .sfctl()
        .args(["steward", "run", "slow", "--data", "n=1", "--no-wait"])
        .json();
    assert!(first.ended_at.is_none());
    let second: StewardRunInfo = td.sfctl().args(["steward", "run", "slow"]).json();
    assert_eq!(second.outcome.as_deref(), Some("skipped"), "{second:?}");
    fs::write(&gate, "").expect("open the gate");
    let runs = finished(&td, "slow", 2);
    assert_eq!(
        runs.iter()
            .filter(|r| r.outcome.as_deref() == Some("ok"))
            .count(),
        1,
        "{runs:?}"
    );
    assert!(runs.iter().all(|r| r.trigger == "manual"));
    td.restart();
    let after = history(&td, "slow");
    assert_eq!(after, runs, "history is in the store");
}

#[test]
fn disabled_stewards_fire_nothing_and_cron_next_fires_are_shown() {
    let td = fleet("");
    let s = script(&td, "s", "exit 0\n");
    steward(
        &td,
        "nightly",
        &s,
        &["--trigger", "0 2 * * *", "--trigger", "*/15 * * * *"],
    );
    let shown: AgentDetail = td.sfctl().args(["agent", "show", "nightly"]).json();
    assert_eq!(shown.next_fires.len(), 2);
    let now = chrono::Utc::now();
    for next in shown.next_fires.iter().flatten() {
        assert!(
            *next > now && *next <= now + chrono::Duration::days(1),
            "{next}"
        );
    }
    let text = td.sfctl().args(["agent", "show", "nightly"]).success();
    assert!(text.contains("0 2 * * *"), "{text}");
    td.sfctl().args(["agent", "disable", "nightly"]).success();
    let err = td.sfctl().args(["steward", "run", "nightly"]).fails(1);
    assert!(err.contains("disabled"), "{err}");
    assert!(history(&td, "nightly").is_empty());
}

#[test]
fn malformed_event_conditions_are_refused_at_registration() {
    let td = fleet("");
    let s = script(&td, "s", "exit 0\n");
    let command = format!("{FAKE} {}", s.display());
    for bad in [
        "task_completed:{{status} == closed",
        "task_completed:{{status}} = closed",
        "Bad-Event",
        "task_completed:{{a}} &&",
    ] {
        let err = td
            .sfctl()
            .args([
                "agent",
                "register",
                "s",
                "--role",
                "steward",
                "--focus",
                "recovery",
                "--command",
                &command,
                "--on",
                bad,
            ])
            .fails(1);
        assert!(err.contains("invalid event trigger"), "{bad}: {err}");
    }
}

#[test]
fn task_ready_fires_when_a_task_becomes_ready() {
    let td = fleet("");
    let s = script(&td, "s", "exit 0\n");
    let blocker = td.create_task("blocker", &["-p", "3"]).task.id.to_string();
    steward(
        &td,
        "ready-watch",
        &s,
        &["--on", "task_ready:{{priority}} == 1"],
    );
    let urgent = td
        .create_task("urgent", &["-p", "1", "--blocked-by", &blocker])
        .task
        .id
        .to_string();
    td.wait_ticks(3);
    assert!(history(&td, "ready-watch").is_empty(), "not ready yet");
    td.sfctl().args(["task", "close", &blocker]).success();
    let runs = finished(&td, "ready-watch", 1);
    assert_eq!(runs[0].data["task"], urgent.as_str());
    assert_eq!(runs[0].data["title"], "urgent");
}

#[test]
fn a_recovery_steward_gets_the_stuck_task_and_must_end_with_exactly_one_resolution() {
    let td = fleet("max_attempts = 1");
    let prompt_copy = td.root.join("prompt.txt");
    // four fires, four endings: defer with a message to the director (ok), defer without
    // one (failed), hand back with a note (ok; the worker fails again, so it is stuck again),
    // complete by closing it (ok)
    let s = script(
        &td,
        "rec",
        &format!(
            "save-env SF_PROMPT_FILE {}\n\
             sfctl task defer $data.task --reason needs-a-human\n\
             sfctl message send --to director --task $data.task --subject cache-policy per-user-or-global?\n\
             --- next invocation\n\
             sfctl task defer $data.task --reason no-message\n\
             --- next invocation\n\
             sfctl task update $data.task --note retry-with-a-clean-cache\n\
             sfctl task unblock $data.task\n\
             --- next invocation\n\
             sfctl task close $data.task --reason fixed-by-hand\n",
            prompt_copy.display()
        ),
    );
    steward(&td, "rescuer", &s, &["--on", "task_stuck"]);
    let w = script(&td, "w", "stderr the build is on fire\nexit 2\n");
    crate::fleet::worker(&td, "w1", &w, &[]);

    let first = td.create_task("doomed once", &[]).task.id.to_string();
    let runs = finished(&td, "rescuer", 1);
    assert_eq!(runs[0].data["task"], first.as_str());
    assert_eq!(runs[0].outcome.as_deref(), Some("ok"), "{runs:?}");
    assert!(
        runs[0].result.as_deref().unwrap_or("").contains("director"),
        "{runs:?}"
    );
    let prompt_file = fs::read_to_string(&prompt_copy).expect("the prompt path");
    let prompt = fs::read_to_string(prompt_file.trim()).expect("prompt");
    assert!(
        prompt.contains("The stuck task") && prompt.contains("the build is on fire"),
        "{prompt}"
    );
    // no director is registered: the message became a backlog task for a human
    let t = td.show_task(&first);
    assert_eq!(t.task.status, sf_proto::TaskStatus::Deferred);
    assert_eq!(t.messages.len(), 1, "{:?}", t.messages);
    assert_eq!(t.messages[0].from, "rescuer");
    let decision = t.messages[0].became_task.clone().expect("became a task");
    let d = td.show_task(decision.as_str());
    assert_eq!(d.task.status, sf_proto::TaskStatus::Backlog);
    assert!(d.task.title.contains("cache-policy"), "{}", d.task.title);

    let second = td.create_task("doomed twice", &[]).task.id.to_string();
    let runs = finished(&td, "rescuer", 2);
    assert_eq!(runs[0].outcome.as_deref(), Some("failed"), "{runs:?}");
    let result = runs[0].result.clone().unwrap_or_default();
    assert!(
        result.contains(&second) && result.contains("without a message"),
        "{result}"
    );

    let third = td.create_task("doomed thrice", &[]).task.id.to_string();
    let runs = finished(&td, "rescuer", 4);
    let (handed, closed) = (&runs[1], &runs[0]);
    assert_eq!(handed.data["task"], third.as_str());
    assert_eq!(handed.outcome.as_deref(), Some("ok"), "{runs:?}");
    assert!(
        handed
            .result
            .as_deref()
            .unwrap_or("")
            .contains("handed back with a note"),
        "{runs:?}"
    );
    assert_eq!(closed.data["task"], third.as_str());
    assert_eq!(closed.outcome.as_deref(), Some("ok"), "{runs:?}");
    assert!(
        closed.result.as_deref().unwrap_or("").contains("completed"),
        "{runs:?}"
    );
    let t = td.show_task(&third);
    assert_eq!(t.task.status, sf_proto::TaskStatus::Closed);
    assert!(
        t.notes
            .iter()
            .any(|n| n.author == "agent:rescuer" && n.text == "retry-with-a-clean-cache"),
        "{:?}",
        t.notes
    );
}

#[test]
fn the_docs_steward_fixes_planted_broken_links_through_the_merge_queue_and_asks_the_director() {
    use crate::fleet::git;
    let td = crate::fleet::fleet_with("", "test_command = \"true\"");
    fs::create_dir_all(td.repo.join("docs")).expect("mkdir");
    fs::write(
        td.repo.join("docs/index.md"),
        "# Docs\n\nSee the [guide](missing-guide.md).\n",
    )
    .expect("plant a broken link");
    git(&td.repo, &["add", "docs"]);
    git(&td.repo, &["commit", "-qm", "docs with a broken link"]);
    let before = td.sfctl().cwd(&td.repo).args(["docs", "check"]).run();
    let report = String::from_utf8_lossy(&before.stdout);
    assert_eq!(before.status.code(), Some(1), "{report}");
    assert!(report.contains("missing-guide.md"), "{report}");

    crate::fleet::steward(&td);
    let s = script(
        &td,
        "scribe",
        "expect-prompt-contains missing-guide.md\n\
         expect-env SF_BRANCH=scribe/docs/auto-updates\n\
         write docs/index.md # Docs\\n\\nSee the [guide](guide.md).\\n\n\
         write docs/guide.md # Guide\\n\n\
         commit docs: fix the guide link\n\
         sfctl merge --branch $SF_BRANCH --no-wait\n\
         sfctl message send --to director --subject keep-the-v1-pages? The-v1-API-pages-look-stale\n",
    );
    let command = format!("{FAKE} {}", s.display());
    td.sfctl()
        .args([
            "agent",
            "register",
            "scribe",
            "--role",
            "steward",
            "--focus",
            "docs",
            "--command",
            &command,
        ])
        .success();
    td.sfctl().args(["steward", "run", "scribe"]).success();
    let runs = finished(&td, "scribe", 1);
    assert_eq!(runs[0].outcome.as_deref(), Some("ok"), "{runs:?}");
    let merged = td.wait_for("the docs branch to merge", || {
        let mrs = crate::fleet::mrs(&td);
        match mrs.iter().find(|m| m.branch == "scribe/docs/auto-updates") {
            Some(m) if m.state == sf_proto::MergeState::Merged => Ok(m.clone()),
            _ => Err(mrs),
        }
    });
    assert!(merged.task.is_none(), "a branch merge, not a task's");
    let text = git(&td.repo, &["show", "HEAD:docs/index.md"]);
    assert!(text.contains("(guide.md)"), "{text}");
    td.sfctl().cwd(&td.repo).args(["docs", "check"]).success();
    // no director is registered: the question became a backlog task for a human
    let tasks = td.list_tasks(&["--status", "backlog"]);
    assert!(
        tasks
            .iter()
            .any(|t| t.title == "Decision needed: keep-the-v1-pages?"),
        "{tasks:?}"
    );
}

#[test]
fn the_daemons_own_event_names_cannot_be_emitted() {
    let td = TestDaemon::start();
    assert!(sf_proto::DAEMON_EVENTS.contains(&"task_completed"));
    for &name in sf_proto::DAEMON_EVENTS {
        let err = td
            .sfctl()
            .args(["event", "emit", name, "--data", "task=zzzz"])
            .fails(1);
        assert!(
            err.contains(&format!("`{name}` is an event the daemon publishes itself")),
            "{name}: {err}"
        );
        assert!(
            err.contains(&format!(
                "hint: custom event names must not be one of the daemon's own; pick another \
                 name, e.g. my_{name}"
            )),
            "{name}: {err}"
        );
    }
    let emitted = td.events(&[]);
    assert!(
        !emitted.iter().any(|e| e.action == "event_emitted"),
        "{emitted:?}"
    );
    td.sfctl()
        .args(["event", "emit", "my_task_completed", "--data", "task=zzzz"])
        .success();
}

#[test]
fn a_bad_cron_field_is_named_in_five_field_form_with_its_valid_range() {
    let td = TestDaemon::start();
    for (expr, message, caret) in [
        (
            "61 * * * *",
            "`61` is out of range in the minute field (valid: 0-59)",
            "  61 * * * *\n  ^^\n",
        ),
        (
            "0 24 * * *",
            "`24` is out of range in the hour field (valid: 0-23)",
            "  0 24 * * *\n    ^^\n",
        ),
    ] {
        let err = td
            .sfctl()
            .args([
                "agent", "register", "s", "--role", "steward", "--focus", "recovery",
            ])
            .args(["--command", "true", "--trigger", expr])
            .fails(1);
        assert!(
            err.contains(&format!(
                "error: invalid cron expression `{expr}`: {message}\n{caret}"
            )),
            "{expr}: {err}"
        );
        assert!(!err.contains(&format!("0 {expr}")), "{expr}: {err}");
        assert!(!err.contains("must be less than"), "{expr}: {err}");
    }
}

#[test]
fn a_steward_whose_command_stops_working_is_disabled_like_a_worker() {
    let td = fleet("");
    // a program that exists at registration and is gone when the steward fires
    let program = crate::fleet::exiting_program(&td, "steward-cli");
    td.sfctl()
        .args([
            "agent",
            "register",
            "gone",
            "--role",
            "steward",
            "--focus",
            "recovery",
            "--command",
        ])
        .arg(program.display().to_string())
        .success();
    fs::remove_file(&program).expect("remove");
    // `steward run` waits for the run and says it failed
    let out = td.sfctl().args(["steward", "run", "gone"]).fails(1);
    assert!(out.contains("could not start"), "{out}");
    let runs = finished(&td, "gone", 1);
    assert_eq!(runs[0].outcome.as_deref(), Some("failed"), "{runs:?}");
    assert!(
        runs[0]
            .result
            .as_deref()
            .unwrap_or("")
            .contains("could not start"),
        "{runs:?}"
    );
    let agent: AgentDetail = td.wait_for("the steward to be disabled", || {
        let a: AgentDetail = td.sfctl().args(["agent", "show", "gone"]).json();
        if a.agent.enabled {
            Err(a.agent.state)
        } else {
            Ok(a)
        }
    });
    assert!(!agent.agent.enabled);
    crate::fleet::assert_disabled_by_daemon(&td, "steward-cli");
}
