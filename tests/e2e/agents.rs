//! `sfctl agent register|list|show|enable|disable|remove` and their bad inputs.
//!
//! Size: each test here is one end-to-end scenario of this capability, with its own
//! workspace; they are kept together so that a capability's tests read as one list, and
//! share their helpers without a module of their own.

use std::fs;

use sf_proto::{
    Adapter, AgentDetail, AgentState, AgentSummary, Capability, Effort, Focus, Mode, Role,
};

use crate::harness::TestDaemon;

/// Workers and stewards run the `command` adapter by default, which needs a command.
const CMD: [&str; 2] = ["--command", "true"];

fn register(td: &TestDaemon, name: &str, args: &[&str]) -> AgentDetail {
    let needs_command = !args.contains(&"--command") && !args.contains(&"--adapter");
    td.sfctl()
        .args(["agent", "register", name])
        .args(args)
        .args(if needs_command { &CMD[..] } else { &[] })
        .json()
}

fn agents(td: &TestDaemon) -> Vec<AgentSummary> {
    td.sfctl().args(["agent", "list"]).json()
}

#[test]
fn register_with_every_flag_and_read_it_back() {
    let td = TestDaemon::start();
    register(&td, "lead", &["--role", "director", "--mode", "persistent"]);
    let command = format!("{} --flag 'quoted arg'", crate::fleet::FAKE);
    let created = register(
        &td,
        "w1",
        &[
            "--role",
            "worker",
            "--mode",
            "ephemeral",
            "--adapter",
            "command",
            "--command",
            &command,
            "--model",
            "model-x",
            "--effort",
            "high",
            "--skills",
            "Rust,SQL,rust",
            "--title",
            "Backend engineer",
            "--persona",
            "Terse. Writes tests first.",
            "--reports-to",
            "lead",
            "--owner",
            "alice",
            "--max-tasks",
            "2",
            "--capability",
            "push",
            "--capability",
            "network",
        ],
    );
    let shown: AgentDetail = td.sfctl().args(["agent", "show", "w1"]).json();
    assert_eq!(
        shown, created,
        "`agent show` should return what `register` returned"
    );
    let spec = &shown.agent.spec;
    assert_eq!(spec.name, "w1");
    assert_eq!(spec.role, Role::Worker);
    assert_eq!(spec.mode, Mode::Ephemeral);
    assert_eq!(spec.adapter, Adapter::Command);
    assert_eq!(spec.command.as_deref(), Some(command.as_str()));
    assert_eq!(spec.model.as_deref(), Some("model-x"));
    assert_eq!(spec.effort, Some(Effort::High));
    assert_eq!(spec.skills, ["rust", "sql"], "skills are a lowercase set");
    assert_eq!(spec.title.as_deref(), Some("Backend engineer"));
    assert_eq!(spec.persona.as_deref(), Some("Terse. Writes tests first."));
    assert_eq!(spec.reports_to.as_deref(), Some("lead"));
    assert_eq!(spec.owner.as_deref(), Some("alice"));
    assert_eq!(spec.max_tasks, 2);
    let mut caps = spec.capabilities.clone();
    caps.sort();
    assert_eq!(caps, [Capability::Push, Capability::Network]);
    assert!(shown.agent.enabled);
    assert_eq!(shown.agent.state, AgentState::NeverRun);
    assert!(shown.runs.is_empty());
}

#[test]
fn capabilities_are_off_by_default() {
    let td = TestDaemon::start();
    let a = register(&td, "plain", &["--role", "worker"]);
    assert!(
        a.agent.spec.capabilities.is_empty(),
        "{:?}",
        a.agent.spec.capabilities
    );
    assert!(a.agent.enabled);
}

#[test]
fn steward_with_cron_and_event_triggers() {
    let td = TestDaemon::start();
    let s = register(
        &td,
        "merger",
        &[
            "--role",
            "steward",
            "--focus",
            "merge",
            "--trigger",
            "*/15 * * * *",
            "--trigger",
            "0 2 * * 1-5",
            "--on",
            "task_closed",
        ],
    );
    assert_eq!(s.agent.spec.role, Role::Steward);
    assert_eq!(s.agent.spec.focus, Some(Focus::Merge));
    assert_eq!(s.agent.spec.triggers, ["*/15 * * * *", "0 2 * * 1-5"]);
    assert_eq!(s.agent.spec.on, ["task_closed"]);
    assert_eq!(s.next_fires.len(), 2);
    let now = chrono::Utc::now();
    for fire in &s.next_fires {
        let fire = fire.expect("each cron trigger has a next fire time");
        assert!(
            fire > now - chrono::Duration::seconds(5),
            "{fire} is in the past"
        );
        assert!(
            fire < now + chrono::Duration::days(4),
            "{fire} is too far off"
        );
    }
}

#[test]
fn skills_are_a_case_insensitive_set() {
    let td = TestDaemon::start();
    let a = register(
        &td,
        "polyglot",
        &["--role", "worker", "--skills", "Go,RUST,go,Rust,sql"],
    );
    assert_eq!(a.agent.spec.skills, ["go", "rust", "sql"]);
}

#[test]
fn a_name_clash_is_refused_and_keeps_the_first_agent() {
    let td = TestDaemon::start();
    register(&td, "w1", &["--role", "worker", "--model", "first"]);
    let err = td
        .sfctl()
        .args(["agent", "register", "w1", "--role", "director"])
        .fails(1);
    assert!(err.contains("w1"), "the error should name the agent: {err}");
    let (json, _) = td
        .sfctl()
        .args(["agent", "register", "w1", "--role", "worker"])
        .args(CMD)
        .json_fails(1);
    assert_eq!(json["error"]["kind"], "conflict", "{json}");
    let all = agents(&td);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].spec.role, Role::Worker);
    assert_eq!(all[0].spec.model.as_deref(), Some("first"));
}

#[test]
fn an_unknown_reports_to_is_refused() {
    let td = TestDaemon::start();
    let err = td
        .sfctl()
        .args([
            "agent",
            "register",
            "w1",
            "--role",
            "worker",
            "--reports-to",
            "nobody",
        ])
        .args(CMD)
        .fails(1);
    assert!(
        err.contains("nobody"),
        "the error should name the unknown agent: {err}"
    );
    assert!(agents(&td).is_empty(), "nothing should be registered");
}

#[test]
fn malformed_cron_expressions_are_refused_at_registration() {
    let td = TestDaemon::start();
    for (expr, needle) in [
        ("61 * * * *", "61"),
        ("* * *", "5 fields"),
        ("0 0 31 2 *", "never"),
    ] {
        let err = td
            .sfctl()
            .args([
                "agent", "register", "s1", "--role", "steward", "--focus", "docs",
            ])
            .args(["--trigger", expr])
            .args(CMD)
            .fails(1);
        assert!(
            err.contains("cron"),
            "{expr}: the error should say it is about cron: {err}"
        );
        assert!(
            err.contains(needle),
            "{expr}: the error should mention {needle:?}: {err}"
        );
    }
    assert!(agents(&td).is_empty(), "nothing should be registered");
}

#[test]
fn a_bad_role_or_invalid_name_is_refused() {
    let td = TestDaemon::start();
    let out = td
        .sfctl()
        .args(["agent", "register", "w1", "--role", "boss"])
        .run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "{}: {err}",
        out.status
    );
    assert!(err.contains("boss"), "{err}");
    assert!(
        err.contains("worker"),
        "the error should list the roles: {err}"
    );

    for bad in ["Bad Name", "-x", "a/b", &"x".repeat(40)] {
        let out = td
            .sfctl()
            .args(["agent", "register", bad, "--role", "worker"])
            .run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{bad:?}: {}: {err}",
            out.status
        );
        assert!(
            err.contains("name") || err.contains("argument"),
            "{bad:?}: {err}"
        );
    }
    let out = td
        .sfctl()
        .args([
            "agent",
            "register",
            "w1",
            "--role",
            "worker",
            "--max-tasks",
            "0",
        ])
        .args(CMD)
        .run();
    assert!(
        !out.status.success(),
        "--max-tasks 0 would never run anything"
    );
    assert!(agents(&td).is_empty());
}

#[test]
fn list_shows_never_run_agents() {
    let td = TestDaemon::start();
    register(&td, "w1", &["--role", "worker"]);
    register(&td, "d1", &["--role", "director", "--mode", "persistent"]);
    let all = agents(&td);
    let mut names: Vec<&str> = all.iter().map(|a| a.spec.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["d1", "w1"]);
    assert!(
        all.iter()
            .all(|a| a.state == AgentState::NeverRun && a.running == 0)
    );
    let text = td.sfctl().args(["agent", "list"]).success();
    for needle in ["w1", "d1", "never-run", "worker", "director"] {
        assert!(
            text.contains(needle),
            "`agent list` should show {needle}:\n{text}"
        );
    }
}

#[test]
fn disable_and_enable_an_agent() {
    let td = TestDaemon::start();
    register(&td, "w1", &["--role", "worker"]);
    td.sfctl().args(["agent", "disable", "w1"]).success();
    let a: AgentDetail = td.sfctl().args(["agent", "show", "w1"]).json();
    assert!(!a.agent.enabled);
    assert_eq!(
        a.agent.state,
        AgentState::Disabled,
        "a disabled agent is disabled"
    );
    td.sfctl().args(["agent", "enable", "w1"]).success();
    let a: AgentDetail = td.sfctl().args(["agent", "show", "w1"]).json();
    assert!(a.agent.enabled);
    assert_eq!(a.agent.state, AgentState::NeverRun);
    let events = td.events(&[]);
    let agent_events: Vec<&str> = events
        .iter()
        .filter(|e| e.subject == "agent:w1")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        agent_events.len(),
        3,
        "register, disable, enable: {agent_events:?}"
    );
}

#[test]
fn remove_an_agent() {
    let td = TestDaemon::start();
    register(&td, "w1", &["--role", "worker"]);
    register(&td, "w2", &["--role", "worker"]);
    td.sfctl().args(["agent", "remove", "w1"]).success();
    let names: Vec<String> = agents(&td).into_iter().map(|a| a.spec.name).collect();
    assert_eq!(names, ["w2"]);
    let err = td.sfctl().args(["agent", "show", "w1"]).fails(1);
    assert!(err.contains("w1"), "{err}");
    let err = td.sfctl().args(["agent", "remove", "w1"]).fails(1);
    assert!(err.contains("w1"), "{err}");
    let (json, _) = td.sfctl().args(["agent", "show", "w1"]).json_fails(1);
    assert_eq!(json["error"]["kind"], "not_found", "{json}");
    for verb in ["enable", "disable"] {
        let err = td.sfctl().args(["agent", verb, "ghost"]).fails(1);
        assert!(err.contains("ghost"), "{verb}: {err}");
    }
}

#[test]
fn role_and_focus_must_agree() {
    let td = TestDaemon::start();
    let err = td
        .sfctl()
        .args(["agent", "register", "s1", "--role", "steward"])
        .args(CMD)
        .fails(1);
    assert!(err.contains("focus"), "a steward needs a focus: {err}");
    let err = td
        .sfctl()
        .args([
            "agent", "register", "w1", "--role", "worker", "--focus", "merge",
        ])
        .args(CMD)
        .fails(1);
    assert!(err.contains("focus") && err.contains("steward"), "{err}");
    assert!(agents(&td).is_empty());
}

#[test]
fn event_triggers_are_checked() {
    let td = TestDaemon::start();
    let s = register(
        &td,
        "s1",
        &[
            "--role",
            "steward",
            "--focus",
            "docs",
            "--on",
            "task_completed:{{priority}} == 1",
        ],
    );
    assert_eq!(s.agent.spec.on, ["task_completed:{{priority}} == 1"]);
    for bad in ["Task Closed", ":priority", ""] {
        let err = td
            .sfctl()
            .args([
                "agent", "register", "s2", "--role", "steward", "--focus", "docs",
            ])
            .args(["--on", bad])
            .args(CMD)
            .fails(1);
        assert!(err.contains("event"), "--on {bad:?}: {err}");
    }
    assert_eq!(agents(&td).len(), 1);
}

#[test]
fn an_agent_others_report_to_cannot_be_removed() {
    let td = TestDaemon::start();
    register(&td, "lead", &["--role", "director", "--mode", "persistent"]);
    register(&td, "w1", &["--role", "worker", "--reports-to", "lead"]);
    let err = td.sfctl().args(["agent", "remove", "lead"]).fails(1);
    assert!(
        err.contains("w1"),
        "the refusal should name who reports to it: {err}"
    );
    assert_eq!(agents(&td).len(), 2, "nothing was removed");
    let err = td
        .sfctl()
        .args([
            "agent",
            "register",
            "selfish",
            "--role",
            "worker",
            "--reports-to",
            "selfish",
        ])
        .args(CMD)
        .fails(1);
    assert!(err.contains("selfish"), "{err}");
    td.sfctl().args(["agent", "remove", "w1"]).success();
    td.sfctl().args(["agent", "remove", "lead"]).success();
    assert!(agents(&td).is_empty());
}

#[test]
fn a_command_worker_needs_a_command() {
    let td = TestDaemon::start();
    let err = td
        .sfctl()
        .args(["agent", "register", "w1", "--role", "worker"])
        .fails(1);
    assert!(err.contains("command"), "{err}");
    assert!(agents(&td).is_empty());
    let fake = crate::fleet::FAKE;
    register(
        &td,
        "w2",
        &["--role", "worker", "--adapter", "claude", "--command", fake],
    );
    register(&td, "d1", &["--role", "director"]);
    assert_eq!(agents(&td).len(), 2);
}

#[test]
fn a_command_that_cannot_run_is_refused_at_registration() {
    let td = TestDaemon::start();
    for (command, want) in [
        ("/does/not/exist --flag", "cannot run `/does/not/exist`"),
        (
            "no-such-agent-cli-xyz",
            "cannot run `no-such-agent-cli-xyz`",
        ),
        ("agent 'unterminated", "split"),
    ] {
        let err = td
            .sfctl()
            .args([
                "agent",
                "register",
                "w",
                "--role",
                "worker",
                "--command",
                command,
            ])
            .fails(1);
        assert!(err.contains(want), "{command}: {err}");
        assert!(err.contains("hint:"), "{command}: {err}");
    }
    let agents: Vec<sf_proto::AgentSummary> = td.sfctl().args(["agent", "list"]).json();
    assert!(agents.is_empty(), "{agents:?}");
}

#[test]
fn an_agent_whose_command_stops_working_is_disabled_and_no_task_is_charged() {
    let td = crate::fleet::fleet("max_attempts = 1");
    // a script that exists at registration and is gone by dispatch time
    let program = crate::fleet::exiting_program(&td, "agent-cli");
    td.sfctl()
        .args(["agent", "register", "w1", "--role", "worker", "--command"])
        .arg(program.display().to_string())
        .success();
    fs::remove_file(&program).expect("remove");
    let ids: Vec<String> = (0..3)
        .map(|i| td.create_task(&format!("t{i}"), &[]).task.id.to_string())
        .collect();
    let agent: sf_proto::AgentDetail = td.wait_for("w1 to be disabled", || {
        let a: sf_proto::AgentDetail = td.sfctl().args(["agent", "show", "w1"]).json();
        if a.agent.enabled {
            Err(a.agent.state)
        } else {
            Ok(a)
        }
    });
    assert_eq!(
        agent.runs.len(),
        1,
        "one failed start, then no more: {:?}",
        agent.runs
    );
    for id in &ids {
        let t = td.show_task(id);
        assert_eq!(
            t.task.status,
            sf_proto::TaskStatus::Open,
            "{id}: {:?}",
            t.notes
        );
        assert_eq!(t.attempts, 0, "{id} was not charged");
    }
    crate::fleet::assert_disabled_by_daemon(&td, "agent-cli");
}

#[test]
fn a_custom_steward_needs_a_playbook_that_exists() {
    let td = TestDaemon::start();
    let err = td
        .sfctl()
        .args([
            "agent",
            "register",
            "s",
            "--role",
            "steward",
            "--focus",
            "custom",
            "--playbook",
            "nope",
        ])
        .fails(1);
    assert!(err.contains("nope"), "{err}");
    let agents: Vec<AgentSummary> = td.sfctl().args(["agent", "list"]).json();
    assert!(agents.is_empty(), "{agents:?}");
    td.sfctl()
        .args([
            "agent",
            "register",
            "s",
            "--role",
            "steward",
            "--focus",
            "custom",
            "--playbook",
            "bugfix",
        ])
        .success();
}

#[test]
fn reserved_names_cannot_be_agents() {
    let td = TestDaemon::start();
    for name in ["human", "director", "sf-shell"] {
        let err = td
            .sfctl()
            .args(["agent", "register", name, "--role", "worker"])
            .args(CMD)
            .fails(1);
        assert!(err.contains("reserved name"), "{name}: {err}");
    }
}

#[test]
fn an_adapter_whose_cli_is_not_installed_is_refused_at_registration() {
    // sfd's PATH without any agent CLI
    let mut td = TestDaemon::stopped();
    for cli in ["claude", "codex", "opencode"] {
        assert!(
            !std::path::Path::new("/usr/bin").join(cli).exists()
                && !std::path::Path::new("/bin").join(cli).exists(),
            "this test needs a PATH without {cli}"
        );
    }
    td.spawn_with(&[("PATH", "/usr/bin:/bin")]);
    for cli in ["claude", "codex", "opencode"] {
        let (err, _) = td
            .sfctl()
            .args([
                "agent",
                "register",
                "w1",
                "--role",
                "worker",
                "--adapter",
                cli,
            ])
            .json_fails(1);
        let message = err["error"]["message"].as_str().unwrap_or_default();
        let hint = err["error"]["hint"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("no `{cli}`")), "{err}");
        assert!(hint.contains("--command"), "{err}");
    }
    assert!(agents(&td).is_empty(), "nothing registered");
    // the adapter's CLI given by path is checked like any --command
    register(
        &td,
        "w1",
        &[
            "--role",
            "worker",
            "--adapter",
            "claude",
            "--command",
            crate::fleet::FAKE,
        ],
    );
}

#[test]
fn a_misspelt_event_trigger_gets_a_did_you_mean() {
    let td = TestDaemon::start();
    let out = td
        .sfctl()
        .args([
            "agent",
            "register",
            "s1",
            "--role",
            "steward",
            "--focus",
            "merge",
            "--on",
            "task_complete",
        ])
        .run();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("did you mean `task_completed`?"),
        "{stderr}"
    );
    // a custom event far from every daemon event gets no guess
    let out = td
        .sfctl()
        .args([
            "agent",
            "register",
            "s2",
            "--role",
            "steward",
            "--focus",
            "merge",
            "--on",
            "deploy_finished",
        ])
        .run();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("did you mean"));
}

#[test]
fn a_condition_naming_data_its_event_never_carries_is_refused() {
    let td = TestDaemon::start();
    let steward = |name: &str, on: &str| {
        td.sfctl()
            .args(["agent", "register", name, "--role", "steward"])
            .args(["--focus", "merge", "--on", on])
    };
    let err = steward("s1", "task_completed:{{prio}} == 1").fails(1);
    assert!(
        err.contains("{{prio}}") && err.contains("priority") && err.contains("title"),
        "the error names the unknown variable and the known ones: {err}"
    );
    let (json, _) = steward("s1", "task_completed:{{type}} != chore && !{{prio}}").json_fails(1);
    assert_eq!(json["error"]["kind"], "invalid_input", "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("{{prio}}")),
        "{json}"
    );
    assert!(agents(&td).is_empty(), "nothing registered");
    // what the daemon's events carry is accepted, a dotted path by its first name; a custom
    // event's data is whatever its emitter sends
    steward(
        "s1",
        "task_completed:{{priority}} == 1 && {{skills.0}} == rust",
    )
    .success();
    steward("s2", "merge_failed:{{kind}} == tests").success();
    steward("s3", "deploy_finished:{{prio}} == 1").success();
}
