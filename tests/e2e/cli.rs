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
