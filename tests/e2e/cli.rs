//! What every command shares: usage errors, `--json` errors, `-q`, plain output when piped,
//! and the exact wording of the messages users read most (inline snapshots).

use insta::assert_snapshot;
use sf_proto::{TaskStatus, TaskSummary};

use crate::harness::TestDaemon;

#[test]
fn usage_errors_exit_2() {
    let td = TestDaemon::start();
    for args in [
        &["frobnicate"][..],
        &["task"],
        &["task", "create"],
        &["task", "list", "--bogus"],
        &["task", "block", "x"],
        &["dep", "add"],
        &["agent", "register", "w1"],
    ] {
        let err = td.sfctl().args(args).fails(2);
        assert!(
            err.contains("Usage") || err.contains("usage"),
            "{args:?}: {err}"
        );
    }
    assert!(td.list_tasks(&[]).is_empty());
}

#[test]
fn version_and_help() {
    let td = TestDaemon::stopped();
    let v = td.sfctl().args(["--version"]).success();
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
    let help = td.sfctl().args(["--help"]).success();
    for cmd in ["init", "daemon", "agent", "task", "dep", "plan", "events"] {
        assert!(help.contains(cmd), "--help should list {cmd}:\n{help}");
    }
}

#[test]
fn quiet_create_prints_only_the_id() {
    let td = TestDaemon::start();
    let out = td
        .sfctl()
        .args(["task", "create", "-q", "quiet one"])
        .success();
    let id = out.trim();
    assert_eq!(out, format!("{id}\n"));
    assert_eq!(td.show_task(id).task.title, "quiet one");
    // plans too, for `PLAN=$(sfctl plan create TITLE -q)`
    let out = td
        .sfctl()
        .args(["plan", "create", "Quiet plan", "-q"])
        .success();
    let plan = out.trim();
    assert_eq!(out, format!("{plan}\n"));
    let shown: sf_proto::PlanDetail = td.sfctl().args(["plan", "show", plan]).json();
    assert_eq!(shown.plan.title, "Quiet plan");
}

#[test]
fn piped_output_has_no_colour_codes() {
    let td = TestDaemon::start();
    let t = td.create_task("colourless", &[]);
    td.sfctl()
        .args(["task", "close", t.task.id.as_str()])
        .success();
    for args in [
        &["task", "list", "--all"][..],
        &["task", "show", t.task.id.as_str()],
        &["events"],
    ] {
        let out = td.sfctl().args(args).env_remove("NO_COLOR").success();
        assert!(
            !out.contains('\u{1b}'),
            "{args:?} printed escape codes to a pipe:\n{out:?}"
        );
    }
}

#[test]
fn json_errors_have_kind_message_and_hint() {
    let td = TestDaemon::start();
    let (json, stderr) = td.sfctl().args(["task", "show", "zzzzzz"]).json_fails(1);
    assert_eq!(json["error"]["kind"], "not_found");
    let message = json["error"]["message"].as_str().expect("message");
    assert!(message.contains("zzzzzz"), "{json}");
    assert!(
        stderr.contains(message),
        "the text error goes to stderr too: {stderr}"
    );
    let keys: Vec<&String> = json["error"].as_object().expect("object").keys().collect();
    assert_eq!(keys, ["hint", "kind", "message"], "stable field names");
}

#[test]
fn task_list_table() {
    let td = TestDaemon::start();
    let a = td.create_task("Fix the parser", &["-p", "1", "--type", "bug"]);
    let b = td.create_task("Write docs", &["-p", "4", "--type", "chore"]);
    td.sfctl()
        .args(["task", "defer", b.task.id.as_str()])
        .success();
    let out = td.sfctl().args(["task", "list"]).success();
    let out = td.redact(
        &out,
        &[
            (a.task.id.as_str(), "[A]   "),
            (b.task.id.as_str(), "[B]   "),
        ],
    );
    assert_snapshot!(out, @r"
    ID      PRI  STATUS    TYPE   ASSIGNEE  TITLE
    [A]     1    open      bug    -         Fix the parser
    [B]     4    deferred  chore  -         Write docs
    ");
}

#[test]
fn cycle_message() {
    let td = TestDaemon::start();
    let ids: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|t| td.create_task(t, &[]).task.id.to_string())
        .collect();
    td.sfctl().args(["dep", "add", &ids[0], &ids[1]]).success();
    td.sfctl().args(["dep", "add", &ids[1], &ids[2]]).success();
    let err = td.sfctl().args(["dep", "add", &ids[2], &ids[0]]).fails(1);
    let names = [
        (ids[0].as_str(), "[A]"),
        (ids[1].as_str(), "[B]"),
        (ids[2].as_str(), "[C]"),
    ];
    assert_snapshot!(td.redact(&err, &names), @r#"
    error: adding this dependency would close a cycle: [C] -> [A] -> [B] -> [C]
    hint: each arrow reads "waits on"; remove one of those dependencies first
    "#);
}

#[test]
fn illegal_transition_message() {
    let td = TestDaemon::start();
    let t = td.create_task("open task", &[]);
    let id = t.task.id.as_str();
    let err = td.sfctl().args(["task", "undefer", id]).fails(1);
    assert_snapshot!(td.redact(&err, &[(id, "[A]")]), @r"
    error: task [A]: cannot undefer a task that is open; undefer applies to tasks that are deferred
    hint: see where it is with `sfctl task show [A]`
    ");
    td.sfctl().args(["task", "delete", id]).success();
    let err = td.sfctl().args(["task", "reopen", id]).fails(1);
    assert_snapshot!(td.redact(&err, &[(id, "[A]")]), @r"
    error: task [A]: cannot reopen a task that is tombstone; reopen applies to tasks that are closed, review, blocked
    hint: see where it is with `sfctl task show [A]`
    ");
    assert_eq!(td.show_task(id).task.status, TaskStatus::Tombstone);
}

#[test]
fn unreachable_message() {
    let td = TestDaemon::stopped();
    let err = td.sfctl().args(["task", "list"]).fails(3);
    assert_snapshot!(td.redact(&err, &[]), @r"
    error: failed to connect to sfd at [TMP]/repo/.sf/run/sfd.sock
    hint: start it with `sfctl daemon start`
    ");
}

#[test]
fn dep_add_reads_in_the_right_direction() {
    let td = TestDaemon::start();
    let a = td.create_task("waits", &[]).task.id.to_string();
    let b = td.create_task("goes first", &[]).task.id.to_string();
    let out = td.sfctl().args(["dep", "add", &a, &b]).success();
    assert!(
        !out.contains(&format!("{a} blocks {b}")),
        "`dep add A B` makes A wait on B, but the confirmation says A blocks B: {out}"
    );
    assert!(
        out.contains(&format!("{b} blocks {a}")) || out.contains(&format!("{a} waits on {b}")),
        "the confirmation should say B blocks A (or A waits on B): {out}"
    );
}

#[test]
fn deleting_a_blocker_frees_its_dependents() {
    let td = TestDaemon::start();
    let a = td.create_task("waits", &[]).task.id.to_string();
    let b = td.create_task("dropped", &[]).task.id.to_string();
    td.sfctl().args(["dep", "add", &a, &b]).success();
    assert!(!td.show_task(&a).ready);
    td.sfctl().args(["task", "delete", &b]).success();
    assert!(
        td.show_task(&a).ready,
        "a deleted blocker no longer holds anything back"
    );
    let all: Vec<TaskSummary> = td.sfctl().args(["task", "list", "--all"]).json();
    assert_eq!(all.len(), 2, "--all includes tombstones");
}

#[test]
fn update_notes_skills_plan_and_schedule() {
    let td = TestDaemon::start();
    let plan: sf_proto::PlanDetail = td.sfctl().args(["plan", "create", "P", "--active"]).json();
    let t = td.create_task("t", &["--skill", "go", "--plan", plan.plan.id.as_str()]);
    let id = t.task.id.as_str();
    let u: sf_proto::TaskDetail = td
        .sfctl()
        .args([
            "task",
            "update",
            id,
            "--skill",
            "Rust",
            "--skill",
            "SQL",
            "--no-plan",
        ])
        .args(["--scheduled-for", "+1h", "--note", "customers hit this"])
        .json();
    assert_eq!(u.task.skills, ["rust", "sql"], "--skill replaces the set");
    assert_eq!(u.task.plan, None);
    assert!(u.task.scheduled_for.is_some());
    assert!(!u.ready);
    assert!(
        u.notes.iter().any(|n| n.text == "customers hit this"),
        "{:?}",
        u.notes
    );
    let u: sf_proto::TaskDetail = td
        .sfctl()
        .args(["task", "update", id, "--no-schedule", "--no-skills"])
        .json();
    assert_eq!(u.task.scheduled_for, None);
    assert!(u.task.skills.is_empty());
    assert!(u.ready);
}

#[test]
fn skill_and_skills_mean_the_same_on_tasks_and_agents() {
    let td = TestDaemon::start();
    let t = td.create_task("t", &["--skills", "Rust,go", "--skill", "sql"]);
    assert_eq!(t.task.skills, ["go", "rust", "sql"], "task create");
    let u: sf_proto::TaskDetail = td
        .sfctl()
        .args(["task", "update", t.task.id.as_str()])
        .args(["--skill", "c", "--skills", "zig,ada"])
        .json();
    assert_eq!(u.task.skills, ["ada", "c", "zig"], "task update");
    let a: sf_proto::AgentDetail = td
        .sfctl()
        .args([
            "agent",
            "register",
            "w1",
            "--role",
            "worker",
            "--command",
            "true",
        ])
        .args(["--skill", "Rust", "--skill", "go", "--skills", "sql,c"])
        .json();
    assert_eq!(
        a.agent.spec.skills,
        ["c", "go", "rust", "sql"],
        "agent register"
    );
}

#[test]
fn task_show_text_has_dependencies_both_ways_notes_and_events() {
    let td = TestDaemon::start();
    let a = td.create_task("the middle one", &[]).task.id.to_string();
    let up = td.create_task("upstream", &[]).task.id.to_string();
    let down = td.create_task("downstream", &[]).task.id.to_string();
    td.sfctl().args(["dep", "add", &a, &up]).success();
    td.sfctl().args(["dep", "add", &down, &a]).success();
    td.sfctl()
        .args(["task", "update", &a, "--note", "a note worth reading"])
        .success();
    let out = td.sfctl().args(["task", "show", &a]).success();
    for needle in [
        &*a,
        &*up,
        &*down,
        "the middle one",
        "a note worth reading",
        "task_created",
    ] {
        assert!(
            out.contains(needle),
            "`task show` should include {needle}:\n{out}"
        );
    }
}

#[test]
fn a_worker_waits_for_an_unreachable_daemon_and_a_human_does_not() {
    use std::time::{Duration, Instant};

    let mut td = TestDaemon::stopped();
    let err = td.sfctl().args(["task", "list"]).fails(3);
    assert!(!err.contains("retrying"), "a human is told at once: {err}");
    let err = td
        .sfctl()
        .args(["daemon", "status"])
        .env("SF_RUN", "lease")
        .fails(3);
    assert!(!err.contains("retrying"), "`daemon` never waits: {err}");

    let begun = Instant::now();
    let err = td
        .sfctl()
        .args(["task", "list"])
        .env("SF_RUN", "lease")
        .env("SF_CONNECT_WAIT", "1")
        .fails(3);
    assert!(begun.elapsed() >= Duration::from_secs(1), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("retrying")).count(),
        1,
        "one line, not one per attempt: {err}"
    );
    assert!(
        err.contains("sfd is not reachable; retrying for up to 1 s (SF_CONNECT_WAIT)"),
        "{err}"
    );

    // A worker's command started while sfd is down goes through once it is back.
    let mut waiting = td
        .sfctl()
        .args(["--json", "task", "list"])
        .env("SF_RUN", "lease")
        .spawn();
    // sfd comes back once sfctl says it waits for it
    let stderr = waiting.stderr.take().expect("stderr");
    let (first, rest) = crate::harness::read_line_within(stderr, Duration::from_secs(15));
    let first = first.expect("sfctl said nothing while sfd was down");
    assert!(first.contains("retrying for up to 120 s"), "{first}");
    td.spawn();
    let out = waiting.wait_with_output().expect("wait for sfctl");
    let stderr: String = rest.try_iter().collect();
    assert!(out.status.success(), "{}\n{first}{stderr}", out.status);
    let tasks: Vec<TaskSummary> =
        serde_json::from_slice(&out.stdout).expect("the task list as JSON");
    assert!(tasks.is_empty());
}

#[test]
fn blocked_and_show_print_wait_times_like_every_other_time() {
    let td = TestDaemon::start();
    let t = td.create_task("later", &["--scheduled-for", "+2h"]);
    let id = t.task.id.to_string();
    let when = t.task.scheduled_for.expect("scheduled");
    let short = when.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let blocked = td.sfctl().args(["task", "blocked"]).success();
    assert!(
        blocked.contains(&format!("scheduled for {short} (in 1h)"))
            || blocked.contains(&format!("scheduled for {short} (in 2h)")),
        "{blocked}"
    );
    assert!(!blocked.contains("+00:00"), "no RFC 3339 times: {blocked}");
    let show = td.sfctl().args(["task", "show", &id]).success();
    assert!(
        show.contains(&format!("- scheduled for {short} (in ")),
        "{show}"
    );
    assert!(!show.contains("+00:00"), "no RFC 3339 times: {show}");
    // --json keeps the daemon's text as it is
    let waiting: serde_json::Value = td.sfctl().args(["task", "blocked"]).json();
    let reason = waiting[0]["reasons"][0].as_str().expect("a reason");
    assert!(reason.starts_with("scheduled for 20"), "{reason}");
}

#[test]
fn cancelling_a_merged_request_says_it_has_landed() {
    use sf_proto::MergeState;

    let td = crate::fleet::fleet_with("", "test_command = \"true\"");
    crate::fleet::steward(&td);
    let id = td.create_task("land it", &[]).task.id.to_string();
    let s = crate::fleet::script(&td, "w", "write f.txt x\ncommit f\ncomplete\n");
    crate::fleet::worker(&td, "w1", &s, &[]);
    let mr = crate::fleet::wait_mr(&td, &id, MergeState::Merged);
    let err = td
        .sfctl()
        .args(["mr", "cancel", &mr.id.to_string()])
        .fails(1);
    assert!(err.contains("is merged"), "{err}");
    assert!(
        err.contains("hint: it has landed; to undo it, revert its commit on the target branch"),
        "{err}"
    );
    assert!(!err.contains("being tested"), "{err}");
}

#[test]
fn without_user_set_the_human_is_named_from_the_uid() {
    let td = crate::harness::TestDaemon::start();
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid{}", nix::unistd::geteuid()), |u| u.name);
    let id = td
        .sfctl()
        .env_remove("USER")
        .args(["task", "create", "From cron", "-q"])
        .success();
    let t = td.show_task(id.trim());
    let created = t
        .events
        .iter()
        .find(|e| e.action == "task_created")
        .expect("the creation");
    assert_eq!(created.actor, format!("human:{me}"));
    // an approval needs a name: it reaches the daemon (which knows no request 999)
    let (err, _) = td
        .sfctl()
        .env_remove("USER")
        .args(["mr", "approve", "999"])
        .json_fails(1);
    assert_eq!(err["error"]["kind"], "not_found", "{err}");
}

#[test]
fn every_command_answers_a_usage_error_under_json_with_a_json_error() {
    use clap::CommandFactory as _;
    fn leaves(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = path.to_vec();
            p.push(sub.get_name().to_owned());
            if sub.has_subcommands() {
                leaves(sub, &p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut all = Vec::new();
    leaves(&sfctl_cli::Cli::command(), &[], &mut all);
    assert!(all.len() > 40, "{} commands", all.len());
    let td = crate::harness::TestDaemon::uninitialised();
    for path in all {
        let out = td
            .sfctl()
            .arg("--json")
            .args(&path)
            .arg("--no-such-flag")
            .run();
        assert_eq!(out.status.code(), Some(2), "sfctl {path:?}: {out:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("sfctl {path:?} --json: no JSON on stdout ({e}): {out:?}"));
        assert_eq!(doc["error"]["kind"], "usage", "sfctl {path:?}: {doc}");
        let message = doc["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("--no-such-flag"), "sfctl {path:?}: {doc}");
    }
}
