//! `sfctl task ...`: creation and its bad inputs, ids and prefixes, updates, every status verb
//! and the transitions it refuses, list filters, readiness and its order.
//!
//! Size: each test here is one end-to-end scenario of this capability, with its own
//! workspace; they are kept together so that a capability's tests read as one list, and
//! share their helpers without a module of their own.

use std::collections::HashSet;

use sf_proto::{
    DepKind, ErrorKind, NewTask, PlanDetail, ReadyTask, Request, Response, TaskDetail, TaskStatus,
    TaskSummary, TaskType, WaitingTask,
};

use crate::harness::{TestDaemon, rfc3339_from_now};

fn ids(tasks: &[TaskSummary]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}

fn ready(td: &TestDaemon) -> Vec<ReadyTask> {
    td.sfctl().args(["task", "ready"]).json()
}

fn ready_ids(td: &TestDaemon) -> Vec<String> {
    ready(td)
        .into_iter()
        .map(|t| t.task.id.to_string())
        .collect()
}

fn status(td: &TestDaemon, id: &str) -> TaskStatus {
    td.show_task(id).task.status
}

#[test]
fn create_with_every_flag() {
    let td = TestDaemon::start();
    let plan: PlanDetail = td
        .sfctl()
        .args(["plan", "create", "Release 1", "--active"])
        .json();
    let blocker = td.create_task("blocker", &[]);
    let before = chrono::Utc::now();
    let t = td.create_task(
        "Fix the parser",
        &[
            "-d",
            "It crashes on empty input.\nSecond line.",
            "-p",
            "2",
            "--plan",
            plan.plan.id.as_str(),
            "--blocked-by",
            blocker.task.id.as_str(),
            "--skill",
            "Rust",
            "--skill",
            "parsing",
            "--type",
            "bug",
            "--acceptance",
            "empty input gives an error, not a panic",
            "--scheduled-for",
            "+2h",
        ],
    );
    assert_eq!(t.task.title, "Fix the parser");
    assert_eq!(t.description, "It crashes on empty input.\nSecond line.");
    assert_eq!(t.task.priority, 2);
    assert_eq!(t.task.task_type, TaskType::Bug);
    assert_eq!(t.task.plan.as_ref(), Some(&plan.plan.id));
    assert_eq!(t.task.skills, ["parsing", "rust"]);
    assert_eq!(t.acceptance, "empty input gives an error, not a panic");
    assert_eq!(t.task.status, TaskStatus::Open);
    assert_eq!(t.task.assignee, None);
    let at = t.task.scheduled_for.expect("scheduled_for is set");
    let two_hours = chrono::Duration::hours(2);
    assert!(
        at >= before + two_hours - chrono::Duration::seconds(5)
            && at <= chrono::Utc::now() + two_hours + chrono::Duration::seconds(5),
        "+2h should mean two hours from now, got {at}"
    );
    assert_eq!(t.depends_on.len(), 1, "{:?}", t.depends_on);
    assert_eq!(t.depends_on[0].kind, DepKind::Blocks);
    assert_eq!(t.depends_on[0].blocker.as_ref(), Some(&blocker.task.id));
    assert!(!t.ready);
    assert!(!t.waiting.is_empty());
    assert_eq!(
        td.show_task(t.task.id.as_str()),
        td.show_task(t.task.id.as_str())
    );

    let shown = td.show_task(t.task.id.as_str());
    assert_eq!(shown.task, t.task);
    assert_eq!(shown.dependents.len(), 0);
    let blocker_shown = td.show_task(blocker.task.id.as_str());
    assert_eq!(
        blocker_shown.dependents.len(),
        1,
        "dependencies are shown both ways"
    );
    assert!(
        shown.events.iter().any(|e| e.action == "task_created"),
        "`task show` lists the task's audit events: {:?}",
        shown.events
    );
}

#[test]
fn defaults_are_priority_3_type_task_open() {
    let td = TestDaemon::start();
    let t = td.create_task("plain", &[]);
    assert_eq!(t.task.priority, 3);
    assert_eq!(t.task.task_type, TaskType::Task);
    assert_eq!(t.task.status, TaskStatus::Open);
    assert!(t.ready);
    assert_eq!(t.task.id.as_str().len(), sf_proto::ID_LEN);
    assert!(
        t.task
            .id
            .as_str()
            .bytes()
            .all(|b| sf_proto::ID_ALPHABET.contains(&b))
    );
}

#[test]
fn titles_with_shell_characters_and_unicode_are_stored_verbatim() {
    let td = TestDaemon::start();
    let titles = [
        r#"it's "quoted" \ backslash"#,
        "$(touch pwned) and ${HOME}",
        "`touch pwned` backticks",
        "héllo wörld 日本語 🚀",
        "a; b && c | d > e < f * ?",
        "--looks-like-a-flag",
    ];
    let mut created = Vec::new();
    for title in titles {
        let t: TaskDetail = td.sfctl().args(["task", "create", "--", title]).json();
        assert_eq!(t.task.title, title);
        created.push(t.task.id);
    }
    for (id, title) in created.iter().zip(titles) {
        assert_eq!(td.show_task(id.as_str()).task.title, title);
        let text = td.sfctl().args(["task", "show", id.as_str()]).success();
        assert!(
            text.contains(title),
            "`task show` text should contain {title:?}:\n{text}"
        );
    }
    assert!(
        !td.repo.join("pwned").exists(),
        "a title was executed by a shell"
    );
    assert!(
        !td.root.join("pwned").exists(),
        "a title was executed by a shell"
    );
}

#[test]
fn bad_titles_are_refused() {
    let td = TestDaemon::start();
    for (title, needle) in [
        ("", "empty"),
        ("   ", "empty"),
        ("two\nlines", "line"),
        (&*"x".repeat(201), "200"),
    ] {
        let err = td.sfctl().args(["task", "create", title]).fails(1);
        assert!(err.contains(needle), "{title:?}: {err}");
    }
    assert!(td.list_tasks(&[]).is_empty(), "nothing should be created");
}

#[test]
fn priority_out_of_range_is_refused() {
    let td = TestDaemon::start();
    for p in ["0", "6", "high"] {
        let out = td
            .sfctl()
            .args(["task", "create", "bad priority", "-p", p])
            .run();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "-p {p}: {}: {err}",
            out.status
        );
        assert!(
            err.contains("priority") || err.contains("1-5") || err.contains("1..=5"),
            "-p {p}: {err}"
        );
    }
    let t = td.create_task("no good", &["-p", "3"]);
    for p in ["0", "6"] {
        let out = td
            .sfctl()
            .args(["task", "update", t.task.id.as_str(), "-p", p])
            .run();
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "update -p {p}: {}",
            out.status
        );
    }
    let all = td.list_tasks(&[]);
    assert_eq!(all.len(), 1, "only the valid task exists");
    assert_eq!(all[0].priority, 3);
}

#[test]
fn unknown_and_invalid_ids_are_refused() {
    let td = TestDaemon::start();
    td.create_task("exists", &[]);
    let other = if td.list_tasks(&[])[0].id.as_str().starts_with('z') {
        "yyyyyy"
    } else {
        "zzzzzz"
    };
    let err = td.sfctl().args(["task", "show", other]).fails(1);
    assert!(err.contains("no task"), "{err}");
    assert!(err.contains(other), "the error should name the id: {err}");
    let (json, _) = td.sfctl().args(["task", "show", other]).json_fails(1);
    assert_eq!(json["error"]["kind"], "not_found", "{json}");
    for verb in ["close", "reopen", "defer", "delete", "undefer"] {
        let err = td.sfctl().args(["task", verb, other]).fails(1);
        assert!(err.contains("no task"), "{verb}: {err}");
    }
    let out = td.sfctl().args(["task", "show", "ab$(x)"]).run();
    assert!(matches!(out.status.code(), Some(1 | 2)), "{}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid id"));
}

#[test]
fn any_unique_prefix_names_a_task_and_an_ambiguous_one_is_refused() {
    let td = TestDaemon::start();
    let mut by_first: std::collections::HashMap<char, Vec<String>> = Default::default();
    let (a, b) = loop {
        let t = td.create_task("prefix test", &[]);
        let id = t.task.id.to_string();
        let first = id.chars().next().expect("non-empty id");
        let same = by_first.entry(first).or_default();
        same.push(id);
        if same.len() == 2 {
            break (same[0].clone(), same[1].clone());
        }
        assert!(
            by_first.len() <= 33,
            "ids are not from a 32-letter alphabet"
        );
    };
    let all: Vec<String> = td
        .list_tasks(&["--limit", "100"])
        .into_iter()
        .map(|t| t.id.to_string())
        .collect();
    let prefix = &a[..1];
    let err = td.sfctl().args(["task", "show", prefix]).fails(1);
    let lower = err.to_lowercase();
    assert!(
        lower.contains("ambiguous") || lower.contains("more than one"),
        "{err}"
    );
    assert!(
        err.contains(&a) && err.contains(&b),
        "the error should name the candidates: {err}"
    );
    let (json, _) = td.sfctl().args(["task", "show", prefix]).json_fails(1);
    assert_eq!(json["error"]["kind"], "ambiguous", "{json}");

    // The shortest prefix of `a` that no other id shares.
    let unique = (1..=a.len())
        .map(|n| &a[..n])
        .find(|p| all.iter().filter(|id| id.starts_with(p)).count() == 1)
        .expect("the full id is unique");
    assert_eq!(td.show_task(unique).task.id.as_str(), a);
    assert_eq!(
        td.show_task(&unique.to_uppercase()).task.id.as_str(),
        a,
        "prefixes fold case"
    );
    td.sfctl().args(["task", "close", unique]).success();
    assert_eq!(status(&td, &a), TaskStatus::Closed);
    assert_eq!(
        status(&td, &b),
        TaskStatus::Open,
        "only the named task changes"
    );
}

#[test]
fn update_changes_fields_and_records_one_event() {
    let td = TestDaemon::start();
    let t = td.create_task("old title", &["-p", "4", "-d", "old"]);
    let id = t.task.id.as_str();
    let before = td.events(&[]).len();
    let u: TaskDetail = td
        .sfctl()
        .args([
            "task",
            "update",
            id,
            "--title",
            "new title",
            "-p",
            "1",
            "-d",
            "new description",
        ])
        .args(["--type", "feature", "--acceptance", "it works"])
        .json();
    assert_eq!(u.task.title, "new title");
    assert_eq!(u.task.priority, 1);
    assert_eq!(u.description, "new description");
    assert_eq!(u.task.task_type, TaskType::Feature);
    assert_eq!(u.acceptance, "it works");
    assert!(u.task.updated_at >= t.task.updated_at);
    assert_eq!(u.task.created_at, t.task.created_at);
    assert_eq!(td.show_task(id), u);
    let events = td.events(&[]);
    assert_eq!(
        events.len(),
        before + 1,
        "one update, one event: {events:#?}"
    );
    let last = events.last().expect("an event");
    assert_eq!(last.task.as_ref().map(|t| t.as_str()), Some(id));
    assert!(last.before.is_some() && last.after.is_some(), "{last:#?}");
    let before_text = last.before.as_ref().expect("before").to_string();
    let after_text = last.after.as_ref().expect("after").to_string();
    assert!(
        before_text.contains("old title") && after_text.contains("new title"),
        "{last:#?}"
    );
}

#[test]
fn every_status_verb_moves_the_task() {
    let td = TestDaemon::start();
    let t = td.create_task("walk the state machine", &[]);
    let id = t.task.id.as_str();
    let steps: &[(&[&str], TaskStatus)] = &[
        (&["defer"], TaskStatus::Deferred),
        (&["undefer"], TaskStatus::Open),
        (&["backlog"], TaskStatus::Backlog),
        (&["activate"], TaskStatus::Open),
        (
            &["block", "--reason", "waiting on the vendor"],
            TaskStatus::Blocked,
        ),
        (&["unblock"], TaskStatus::Open),
        (&["defer", "--until", "+1h"], TaskStatus::Deferred),
        (&["undefer"], TaskStatus::Open),
        (&["close", "--reason", "done already"], TaskStatus::Closed),
        (&["reopen"], TaskStatus::Open),
        (&["delete"], TaskStatus::Tombstone),
    ];
    for (verb, want) in steps {
        td.sfctl()
            .args(["task", verb[0], id])
            .args(&verb[1..])
            .success();
        let shown = td.show_task(id);
        assert_eq!(shown.task.status, *want, "after `task {}`", verb.join(" "));
        match verb[0] {
            "block" => assert!(
                shown
                    .notes
                    .iter()
                    .any(|n| n.text.contains("waiting on the vendor")),
                "the block reason is kept: {:?}",
                shown.notes
            ),
            "defer" if verb.len() > 1 => {
                assert!(
                    shown
                        .task
                        .defer_until
                        .is_some_and(|u| u > chrono::Utc::now())
                );
            }
            "close" => assert_eq!(shown.close_reason.as_deref(), Some("done already")),
            _ => {}
        }
    }
    assert!(
        td.list_tasks(&[]).is_empty(),
        "tombstones are hidden by default"
    );
    let tomb = td.list_tasks(&["--status", "tombstone"]);
    assert_eq!(ids(&tomb), [id]);
}

#[test]
fn illegal_transitions_are_refused_with_the_legal_ones_named_and_change_nothing() {
    let td = TestDaemon::start();
    let open = td.create_task("open task", &[]);
    let closed = td.create_task("closed task", &[]);
    td.sfctl()
        .args(["task", "close", closed.task.id.as_str()])
        .success();
    let tomb = td.create_task("deleted task", &[]);
    td.sfctl()
        .args(["task", "delete", tomb.task.id.as_str()])
        .success();

    let cases: &[(&str, &[&str], TaskStatus)] = &[
        (open.task.id.as_str(), &["undefer"], TaskStatus::Open),
        (open.task.id.as_str(), &["activate"], TaskStatus::Open),
        (open.task.id.as_str(), &["unblock"], TaskStatus::Open),
        (open.task.id.as_str(), &["reopen"], TaskStatus::Open),
        (closed.task.id.as_str(), &["close"], TaskStatus::Closed),
        (closed.task.id.as_str(), &["defer"], TaskStatus::Closed),
        (
            closed.task.id.as_str(),
            &["block", "--reason", "x"],
            TaskStatus::Closed,
        ),
        (tomb.task.id.as_str(), &["reopen"], TaskStatus::Tombstone),
        (tomb.task.id.as_str(), &["close"], TaskStatus::Tombstone),
        (tomb.task.id.as_str(), &["delete"], TaskStatus::Tombstone),
    ];
    let events_before = td.events(&[]).len();
    for (id, verb, unchanged) in cases {
        let err = td
            .sfctl()
            .args(["task", verb[0], id])
            .args(&verb[1..])
            .fails(1);
        assert!(
            err.contains("may go to") || err.contains("applies to tasks that are"),
            "`task {verb:?}` on a {unchanged} task should name what is allowed: {err}"
        );
        assert!(
            err.contains(unchanged.as_str()),
            "the error should name the status: {err}"
        );
        assert_eq!(
            status(&td, id),
            *unchanged,
            "a refused `task {verb:?}` changed the task"
        );
    }
    let (json, _) = td
        .sfctl()
        .args(["task", "undefer", open.task.id.as_str()])
        .json_fails(1);
    assert_eq!(json["error"]["kind"], "invalid_state", "{json}");
    assert_eq!(
        td.events(&[]).len(),
        events_before,
        "refusals must not write events"
    );
}

#[test]
fn editing_a_deleted_task_is_refused() {
    let td = TestDaemon::start();
    let t = td.create_task("gone", &[]);
    let id = t.task.id.as_str();
    td.sfctl().args(["task", "delete", id]).success();
    let out = td
        .sfctl()
        .args(["task", "update", id, "--title", "zombie"])
        .run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "updating a tombstone should be refused"
    );
    assert_eq!(td.show_task(id).task.title, "gone");
}

#[test]
fn list_filters_by_status_plan_ready_and_limit() {
    let td = TestDaemon::start();
    let plan: PlanDetail = td.sfctl().args(["plan", "create", "P", "--active"]).json();
    let p = plan.plan.id.as_str();
    let a = td.create_task("a", &["--plan", p]);
    let b = td.create_task("b", &["--plan", p]);
    let c = td.create_task("c", &[]);
    let d = td.create_task("d", &["--blocked-by", c.task.id.as_str()]);
    td.sfctl()
        .args(["task", "close", b.task.id.as_str()])
        .success();
    td.sfctl()
        .args(["task", "backlog", c.task.id.as_str()])
        .success();

    let all = td.list_tasks(&[]);
    assert_eq!(all.len(), 4);
    let closed = td.list_tasks(&["--status", "closed"]);
    assert_eq!(ids(&closed), [b.task.id.as_str()]);
    let open = td.list_tasks(&["--status", "open"]);
    let open_ids: HashSet<&str> = ids(&open).into_iter().collect();
    assert_eq!(
        open_ids,
        HashSet::from([a.task.id.as_str(), d.task.id.as_str()])
    );
    let in_plan = td.list_tasks(&["--plan", p]);
    let plan_ids: HashSet<&str> = ids(&in_plan).into_iter().collect();
    assert_eq!(
        plan_ids,
        HashSet::from([a.task.id.as_str(), b.task.id.as_str()])
    );
    let ready_list = td.list_tasks(&["--ready"]);
    assert_eq!(
        ids(&ready_list),
        [a.task.id.as_str()],
        "d waits on c, which is in the backlog"
    );
    assert_eq!(td.list_tasks(&["--limit", "2"]).len(), 2);
    assert!(td.list_tasks(&["--status", "review"]).is_empty());
    let assigned = td.list_tasks(&["--assignee", "nobody"]);
    assert!(assigned.is_empty());

    let out = td
        .sfctl()
        .args(["task", "list", "--status", "nonsense"])
        .run();
    assert!(matches!(out.status.code(), Some(1 | 2)), "{}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));

    let text = td.sfctl().args(["task", "list"]).success();
    for t in [&a, &b, &c, &d] {
        assert!(text.contains(t.task.id.as_str()), "{text}");
        assert!(text.contains(&t.task.title), "{text}");
    }
}

#[test]
fn ready_order_is_effective_priority_then_priority_then_age() {
    let td = TestDaemon::start();
    let p2 = td.create_task("p2 alone", &["-p", "2"]);
    let p1 = td.create_task("p1 waits", &["-p", "1"]);
    let p5 = td.create_task("p5 unblocks p1", &["-p", "5"]);
    td.sfctl()
        .args(["dep", "add", p1.task.id.as_str(), p5.task.id.as_str()])
        .success();
    let old3 = td.create_task("p3 older", &["-p", "3"]);
    let new3 = td.create_task("p3 newer", &["-p", "3"]);
    let p4 = td.create_task("p4", &["-p", "4"]);

    let r = ready(&td);
    let order: Vec<&str> = r.iter().map(|t| t.task.title.as_str()).collect();
    assert_eq!(
        order,
        ["p5 unblocks p1", "p2 alone", "p3 older", "p3 newer", "p4"]
    );
    assert_eq!(
        r[0].effective_priority, 1,
        "p5 inherits the urgency of what it blocks"
    );
    assert_eq!(r[1].effective_priority, 2);
    assert_eq!(td.show_task(p5.task.id.as_str()).effective_priority, 1);

    let listed = td.list_tasks(&["--ready"]);
    assert_eq!(
        ids(&listed),
        r.iter().map(|t| t.task.id.as_str()).collect::<Vec<_>>()
    );
    let _ = (p2, old3, new3, p4);

    td.sfctl()
        .args(["task", "close", p5.task.id.as_str()])
        .success();
    assert_eq!(
        ready_ids(&td)[0],
        p1.task.id.as_str(),
        "p1 is ready once its blocker closed"
    );
}

#[test]
fn transitive_blocking_raises_effective_priority() {
    let td = TestDaemon::start();
    let top = td.create_task("urgent goal", &["-p", "1"]);
    let mid = td.create_task("middle", &["-p", "4"]);
    let leaf = td.create_task("leaf", &["-p", "5"]);
    let other = td.create_task("other", &["-p", "2"]);
    td.sfctl()
        .args(["dep", "add", top.task.id.as_str(), mid.task.id.as_str()])
        .success();
    td.sfctl()
        .args(["dep", "add", mid.task.id.as_str(), leaf.task.id.as_str()])
        .success();
    let ids = ready_ids(&td);
    assert_eq!(ids, [leaf.task.id.to_string(), other.task.id.to_string()]);
    assert_eq!(td.show_task(mid.task.id.as_str()).effective_priority, 1);
}

#[test]
fn blocked_lists_each_waiting_task_with_its_reason() {
    let td = TestDaemon::start();
    let blocker = td.create_task("blocker", &[]);
    let waits = td.create_task("waits", &["--blocked-by", blocker.task.id.as_str()]);
    let manual = td.create_task("manual", &[]);
    td.sfctl()
        .args([
            "task",
            "block",
            manual.task.id.as_str(),
            "--reason",
            "vendor is late",
        ])
        .success();
    let later = td.create_task("later", &["--scheduled-for", "+3h"]);
    let free = td.create_task("free", &[]);

    let waiting: Vec<WaitingTask> = td.sfctl().args(["task", "blocked"]).json();
    let find = |id: &str| {
        waiting
            .iter()
            .find(|w| w.task.id.as_str() == id)
            .unwrap_or_else(|| panic!("{id} missing from `task blocked`: {waiting:#?}"))
    };
    let w = find(waits.task.id.as_str());
    assert!(
        w.reasons
            .iter()
            .any(|r| r.contains(blocker.task.id.as_str())),
        "{w:#?}"
    );
    let m = find(manual.task.id.as_str());
    assert!(
        m.reasons.iter().any(|r| r.contains("vendor is late")),
        "{m:#?}"
    );
    let l = find(later.task.id.as_str());
    assert!(l.reasons.iter().any(|r| r.contains("schedul")), "{l:#?}");
    assert!(
        waiting
            .iter()
            .all(|w| w.task.id != free.task.id && w.task.id != blocker.task.id)
    );
    let text = td.sfctl().args(["task", "blocked"]).success();
    assert!(
        text.contains("vendor is late") && text.contains(blocker.task.id.as_str()),
        "{text}"
    );
    // most urgent first: a priority-1 task made last comes before the older ones
    let urgent = td.create_task("urgent", &["-p", "1", "--scheduled-for", "+1h"]);
    let waiting: Vec<WaitingTask> = td.sfctl().args(["task", "blocked"]).json();
    assert_eq!(waiting[0].task.id, urgent.task.id, "{waiting:#?}");
    let priorities: Vec<u8> = waiting.iter().map(|w| w.task.priority).collect();
    assert!(priorities.is_sorted(), "{priorities:?}");
}

#[test]
fn a_huge_description_is_refused_and_nothing_is_created() {
    let td = TestDaemon::start();
    // A single argv string cannot exceed 128 KiB on Linux; 100 KB is past the 64 KiB limit.
    let big = "x".repeat(100_000);
    let err = td
        .sfctl()
        .args(["task", "create", "big", "-d", &big])
        .fails(1);
    assert!(
        err.contains("description"),
        "the error should name the field: {err}"
    );
    assert!(err.len() < 2000, "the error should not echo the text back");
    let t = td.create_task("small", &[]);
    let err = td
        .sfctl()
        .args(["task", "update", t.task.id.as_str(), "-d", &big])
        .fails(1);
    assert!(err.contains("description"), "{err}");

    // A 1 MB description through the protocol.
    let mut client = td.client();
    let task = NewTask {
        title: "huge".into(),
        description: "y".repeat(1 << 20),
        ..NewTask::default()
    };
    match client.request(&Request::CreateTask { task }) {
        Err(sf_client::ClientError::Refused(e)) => {
            assert_eq!(e.kind, ErrorKind::InvalidInput, "{e:?}");
            assert!(e.message.contains("description"), "{e:?}");
        }
        other => panic!("a 1 MB description should be refused, got {other:?}"),
    }
    let all = td.list_tasks(&[]);
    assert_eq!(ids(&all), [t.task.id.as_str()], "nothing else was created");
    assert_eq!(td.show_task(t.task.id.as_str()).description, "");
}

#[test]
fn scheduled_for_in_the_future_is_not_ready_and_in_the_past_is() {
    let td = TestDaemon::start();
    let future = td.create_task("future", &["--scheduled-for", &rfc3339_from_now(3600)]);
    let past = td.create_task("past", &["--scheduled-for", &rfc3339_from_now(-3600)]);
    let soon = td.create_task("soon", &["--scheduled-for", "+2s"]);
    assert!(!future.ready);
    assert!(past.ready);
    let r = ready_ids(&td);
    assert!(!r.contains(&future.task.id.to_string()) && r.contains(&past.task.id.to_string()));
    td.wait_for("a task scheduled 2 s ahead to become ready", || {
        let r = ready_ids(&td);
        if r.contains(&soon.task.id.to_string()) {
            Ok(())
        } else {
            Err(r)
        }
    });
    let out = td
        .sfctl()
        .args([
            "task",
            "create",
            "bad time",
            "--scheduled-for",
            "tomorrowish",
        ])
        .run();
    assert!(matches!(out.status.code(), Some(1 | 2)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tomorrowish"));
    assert_eq!(td.list_tasks(&[]).len(), 3);
}

#[test]
fn unknown_plan_or_blocker_at_creation_is_refused_and_nothing_is_created() {
    let td = TestDaemon::start();
    let err = td
        .sfctl()
        .args(["task", "create", "x", "--plan", "zzzzzz"])
        .fails(1);
    assert!(err.contains("zzzzzz"), "{err}");
    let err = td
        .sfctl()
        .args(["task", "create", "x", "--blocked-by", "zzzzzz"])
        .fails(1);
    assert!(err.contains("zzzzzz"), "{err}");
    assert!(td.list_tasks(&[]).is_empty());
}

#[test]
fn ready_and_blocked_are_empty_on_an_empty_queue() {
    let td = TestDaemon::start();
    assert!(ready(&td).is_empty());
    let waiting: Vec<WaitingTask> = td.sfctl().args(["task", "blocked"]).json();
    assert!(waiting.is_empty());
    assert!(td.list_tasks(&[]).is_empty());
    let r = td
        .client()
        .request(&Request::ReadyTasks { limit: None })
        .expect("ready");
    assert!(matches!(r, Response::Ready(v) if v.is_empty()));
}

#[test]
fn every_documented_time_form_is_accepted() {
    let td = TestDaemon::start();
    let cases = [
        ("2020-01-01", true),
        ("2020-01-01 10:30", true),
        ("2020-01-01T10:30:00+02:00", true),
        ("2099-06-01", false),
        ("2099-06-01T08:00", false),
        ("+3d", false),
        ("90m", false),
    ];
    for (input, ready) in cases {
        let t = td.create_task(input, &["--scheduled-for", input]);
        assert!(t.task.scheduled_for.is_some(), "{input}");
        assert_eq!(t.ready, ready, "--scheduled-for {input}");
    }
    let t = td.create_task("checked", &["--scheduled-for", "2020-01-01T10:30:00+02:00"]);
    assert_eq!(
        t.task.scheduled_for.map(|s| s.to_rfc3339()).as_deref(),
        Some("2020-01-01T08:30:00+00:00"),
        "offsets are converted to UTC"
    );
}
