//! `sfctl dep add|remove|list|tree|approve|satisfy`: blocking, cycles, gates, and the kinds
//! that only inform.

use sf_proto::{DepInfo, DepKind, DepList, DepTreeNode, Gate, TaskDetail, TaskStatus};

use crate::harness::{TestDaemon, rfc3339_from_now};

fn task(td: &TestDaemon, title: &str) -> String {
    td.create_task(title, &[]).task.id.to_string()
}

fn add(td: &TestDaemon, args: &[&str]) -> DepInfo {
    td.sfctl().args(["dep", "add"]).args(args).json()
}

fn deps(td: &TestDaemon, id: &str) -> DepList {
    td.sfctl().args(["dep", "list", id]).json()
}

fn is_ready(td: &TestDaemon, id: &str) -> bool {
    td.show_task(id).ready
}

#[test]
fn add_list_and_remove_a_blocking_dependency() {
    let td = TestDaemon::start();
    let a = task(&td, "a waits");
    let b = task(&td, "b first");
    let dep = add(&td, &[&a, &b]);
    assert_eq!(dep.kind, DepKind::Blocks, "blocks is the default kind");
    assert_eq!(dep.blocked.as_str(), a);
    assert_eq!(dep.blocker.as_ref().map(|t| t.as_str()), Some(b.as_str()));
    assert_eq!(dep.blocker_status, Some(TaskStatus::Open));
    assert!(!dep.satisfied);
    assert!(!is_ready(&td, &a));

    let la = deps(&td, &a);
    assert_eq!(la.depends_on.len(), 1);
    assert!(la.dependents.is_empty());
    let lb = deps(&td, &b);
    assert_eq!(lb.dependents.len(), 1);
    assert_eq!(lb.dependents[0].id, dep.id);
    let text = td.sfctl().args(["dep", "list", &a]).success();
    assert!(text.contains(&b), "{text}");

    td.sfctl().args(["task", "close", &b]).success();
    assert!(is_ready(&td, &a), "a is ready once b closed");
    assert!(deps(&td, &a).depends_on[0].satisfied);
    td.sfctl().args(["task", "reopen", &b]).success();
    assert!(!is_ready(&td, &a), "reopening b holds a back again");

    td.sfctl().args(["dep", "remove", &a, &b]).success();
    assert!(deps(&td, &a).depends_on.is_empty());
    assert!(is_ready(&td, &a));
    let err = td.sfctl().args(["dep", "remove", &a, &b]).fails(1);
    assert!(err.contains(&a) || err.contains("no dependency"), "{err}");
}

#[test]
fn remove_by_id() {
    let td = TestDaemon::start();
    let a = task(&td, "a");
    let b = task(&td, "b");
    let dep = add(&td, &[&a, &b]);
    td.sfctl()
        .args(["dep", "remove", "--id", &dep.id.to_string()])
        .success();
    assert!(deps(&td, &a).depends_on.is_empty());
    let err = td
        .sfctl()
        .args(["dep", "remove", "--id", &dep.id.to_string()])
        .fails(1);
    assert!(err.contains(&dep.id.to_string()), "{err}");
}

#[test]
fn bad_dependencies_are_refused() {
    let td = TestDaemon::start();
    let a = task(&td, "a");
    let b = task(&td, "b");
    let err = td.sfctl().args(["dep", "add", &a, "zzzzzz"]).fails(1);
    assert!(err.contains("zzzzzz"), "{err}");
    let err = td.sfctl().args(["dep", "add", &a, &a]).fails(1);
    assert!(err.contains(&a), "a task cannot wait on itself: {err}");
    let out = td.sfctl().args(["dep", "add", &a]).run();
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "blocks needs a blocker: {}",
        out.status
    );
    let out = td
        .sfctl()
        .args(["dep", "add", &a, "--type", "awaits"])
        .run();
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "awaits needs a gate: {}",
        out.status
    );
    let out = td
        .sfctl()
        .args(["dep", "add", &a, &b, "--type", "sometimes"])
        .run();
    assert!(matches!(out.status.code(), Some(1 | 2)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sometimes"));
    assert!(deps(&td, &a).depends_on.is_empty(), "nothing was added");
    add(&td, &[&a, &b]);
    let out = td.sfctl().args(["dep", "add", &a, &b]).run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a duplicate dependency should be refused"
    );
    assert_eq!(deps(&td, &a).depends_on.len(), 1);
}

#[test]
fn a_cycle_is_refused_and_printed() {
    let td = TestDaemon::start();
    let a = task(&td, "a");
    let b = task(&td, "b");
    let c = task(&td, "c");
    add(&td, &[&a, &b]);
    add(&td, &[&b, &c]);
    let events = td.events(&[]).len();
    let err = td.sfctl().args(["dep", "add", &c, &a]).fails(1);
    assert!(err.contains("cycle"), "{err}");
    for id in [&a, &b, &c] {
        assert!(
            err.contains(id.as_str()),
            "the cycle should name {id}: {err}"
        );
    }
    let (json, _) = td.sfctl().args(["dep", "add", &c, &a]).json_fails(1);
    assert_eq!(json["error"]["kind"], "invalid_input", "{json}");
    assert!(deps(&td, &c).depends_on.is_empty(), "nothing was added");
    assert_eq!(td.events(&[]).len(), events, "a refusal writes no event");
    let out = td
        .sfctl()
        .args(["dep", "add", &c, &a, "--type", "parent-child"])
        .run();
    assert_eq!(
        out.status.code(),
        Some(1),
        "parent-child cycles are cycles too"
    );
}

#[test]
fn tree_shows_what_a_task_waits_on_recursively() {
    let td = TestDaemon::start();
    let a = task(&td, "root goal");
    let b = task(&td, "middle step");
    let c = task(&td, "first step");
    let d = task(&td, "side step");
    add(&td, &[&a, &b]);
    add(&td, &[&b, &c]);
    add(&td, &[&a, &d]);
    td.sfctl().args(["task", "close", &d]).success();
    let tree: DepTreeNode = td.sfctl().args(["dep", "tree", &a]).json();
    assert_eq!(tree.id.as_str(), a);
    assert_eq!(tree.kind, None);
    let mut kids: Vec<&DepTreeNode> = tree.children.iter().collect();
    kids.sort_by_key(|n| n.title.clone());
    assert_eq!(kids.len(), 2, "{tree:#?}");
    assert_eq!(kids[0].id.as_str(), b);
    assert_eq!(kids[0].satisfied, Some(false));
    assert_eq!(kids[0].children.len(), 1);
    assert_eq!(kids[0].children[0].id.as_str(), c);
    assert_eq!(kids[1].id.as_str(), d);
    assert_eq!(kids[1].satisfied, Some(true));
    assert_eq!(kids[1].status, TaskStatus::Closed);
    let text = td.sfctl().args(["dep", "tree", &a]).success();
    for needle in [&a, &b, &c, &d] {
        assert!(text.contains(needle.as_str()), "{text}");
    }
    assert!(text.contains("first step"), "{text}");
}

#[test]
fn timer_gates_in_the_past_are_satisfied_and_in_the_future_wait() {
    let td = TestDaemon::start();
    let past = task(&td, "past timer");
    let future = task(&td, "future timer");
    let soon = task(&td, "soon timer");
    let d = add(
        &td,
        &[&past, "--type", "awaits", "--until", &rfc3339_from_now(-60)],
    );
    assert!(matches!(d.gate, Some(Gate::Timer { .. })), "{d:#?}");
    assert!(d.satisfied);
    assert!(is_ready(&td, &past));
    let d = add(
        &td,
        &[
            &future,
            "--type",
            "awaits",
            "--until",
            &rfc3339_from_now(3600),
        ],
    );
    assert!(!d.satisfied);
    assert!(!is_ready(&td, &future));
    let shown = td.show_task(&future);
    assert!(!shown.waiting.is_empty(), "{shown:#?}");
    add(&td, &[&soon, "--type", "awaits", "--until", "+2s"]);
    assert!(!is_ready(&td, &soon));
    td.wait_for("a 2-second timer gate to open", || {
        let t = td.show_task(&soon);
        if t.ready { Ok(()) } else { Err(t.waiting) }
    });
}

#[test]
fn approval_gates_need_the_count_of_listed_approvers() {
    let td = TestDaemon::start();
    let a = task(&td, "ship it");
    let gate = add(
        &td,
        &[
            &a,
            "--type",
            "awaits",
            "--approvers",
            "alice,bob",
            "--count",
            "2",
        ],
    );
    match &gate.gate {
        Some(Gate::Approval {
            approvers,
            count,
            approved_by,
        }) => {
            assert_eq!(approvers, &["alice", "bob"]);
            assert_eq!(*count, 2);
            assert!(approved_by.is_empty());
        }
        other => panic!("expected an approval gate, got {other:?}"),
    }
    let id = gate.id.to_string();
    assert!(!is_ready(&td, &a));
    let err = td
        .sfctl()
        .args(["dep", "approve", &id, "--as", "mallory"])
        .fails(1);
    assert!(
        err.contains("mallory"),
        "an unknown approver is refused by name: {err}"
    );
    td.sfctl()
        .args(["dep", "approve", &id, "--as", "alice"])
        .success();
    assert!(!is_ready(&td, &a), "one of two approvals is not enough");
    let _ = td
        .sfctl()
        .args(["dep", "approve", &id, "--as", "alice"])
        .run();
    assert!(
        !is_ready(&td, &a),
        "alice approving twice still counts once"
    );
    td.sfctl()
        .args(["dep", "approve", &id, "--as", "bob"])
        .success();
    let t: TaskDetail = td.show_task(&a);
    assert!(t.ready, "two approvals open the gate: {:?}", t.waiting);
    match &t.depends_on[0].gate {
        Some(Gate::Approval { approved_by, .. }) => {
            let mut by = approved_by.clone();
            by.sort();
            assert_eq!(by, ["alice", "bob"]);
        }
        other => panic!("{other:?}"),
    }
    let err = td
        .sfctl()
        .args(["dep", "approve", "99999", "--as", "alice"])
        .fails(1);
    assert!(err.contains("99999"), "{err}");
}

#[test]
fn approval_gates_with_impossible_counts_are_refused() {
    let td = TestDaemon::start();
    let a = task(&td, "x");
    for count in ["3", "0"] {
        let out = td
            .sfctl()
            .args([
                "dep",
                "add",
                &a,
                "--type",
                "awaits",
                "--approvers",
                "alice,bob",
            ])
            .args(["--count", count])
            .run();
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "--count {count}: {}",
            out.status
        );
    }
    assert!(deps(&td, &a).depends_on.is_empty());
}

#[test]
fn external_gates_open_with_satisfy() {
    let td = TestDaemon::start();
    let a = task(&td, "after deploy");
    let b = task(&td, "blocker");
    let gate = add(&td, &[&a, "--type", "awaits", "--external", "prod deploy"]);
    assert!(
        matches!(&gate.gate, Some(Gate::External { name }) if name.as_deref() == Some("prod deploy")),
        "{gate:#?}"
    );
    assert!(!is_ready(&td, &a));
    let blocks = add(&td, &[&b, &a]);
    let err = td
        .sfctl()
        .args(["dep", "satisfy", &blocks.id.to_string()])
        .fails(1);
    assert!(err.contains("external") || err.contains("gate"), "{err}");
    td.sfctl()
        .args(["dep", "satisfy", &gate.id.to_string()])
        .success();
    assert!(is_ready(&td, &a));
    let err = td
        .sfctl()
        .args(["dep", "approve", &gate.id.to_string(), "--as", "alice"])
        .fails(1);
    assert!(err.contains("approv") || err.contains("gate"), "{err}");
}

#[test]
fn informational_kinds_do_not_block() {
    let td = TestDaemon::start();
    let a = task(&td, "a");
    let b = task(&td, "b");
    let c = task(&td, "c");
    let r = add(&td, &[&a, &b, "--type", "relates-to"]);
    let f = add(&td, &[&a, &c, "--type", "references"]);
    assert!(r.satisfied && f.satisfied);
    assert!(
        is_ready(&td, &a),
        "relates-to and references never hold a task back"
    );
    add(&td, &[&b, &a, "--type", "relates-to"]);
    assert_eq!(deps(&td, &a).depends_on.len(), 2);
}

#[test]
fn parent_child_is_recorded_and_listed() {
    let td = TestDaemon::start();
    let parent = task(&td, "epic");
    let child = task(&td, "story");
    let d = add(&td, &[&child, &parent, "--type", "parent-child"]);
    assert_eq!(d.kind, DepKind::ParentChild);
    let l = deps(&td, &parent);
    assert_eq!(l.dependents.len(), 1);
    assert_eq!(l.dependents[0].kind, DepKind::ParentChild);
}
