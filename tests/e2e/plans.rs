//! `sfctl plan create|activate|list|show|cancel`: draft plans hold their tasks back, progress
//! counts, automatic completion, cancellation.

use sf_proto::{PlanDetail, PlanStatus, PlanSummary, TaskStatus};

use crate::harness::TestDaemon;

fn plan(td: &TestDaemon, args: &[&str]) -> PlanDetail {
    td.sfctl().args(["plan"]).args(args).json()
}

fn show(td: &TestDaemon, id: &str) -> PlanDetail {
    plan(td, &["show", id])
}

#[test]
fn tasks_of_a_draft_plan_are_not_ready_until_it_is_activated() {
    let td = TestDaemon::start();
    let p = plan(&td, &["create", "Q3 roadmap"]);
    assert_eq!(p.plan.status, PlanStatus::Draft, "plans start as drafts");
    let id = p.plan.id.to_string();
    let t = td.create_task("draft work", &["--plan", &id]);
    assert!(!t.ready, "a task of a draft plan is never ready");
    assert!(
        t.waiting
            .iter()
            .any(|w| w.contains("plan") || w.contains(&id)),
        "{:?}",
        t.waiting
    );
    assert!(td.list_tasks(&["--ready"]).is_empty());

    let active = plan(&td, &["activate", &id]);
    assert_eq!(active.plan.status, PlanStatus::Active);
    assert!(td.show_task(t.task.id.as_str()).ready);
    let err = td.sfctl().args(["plan", "activate", &id]).fails(1);
    assert!(
        err.contains("active"),
        "activating twice names the state: {err}"
    );
}

#[test]
fn show_counts_progress_by_status() {
    let td = TestDaemon::start();
    let p = plan(&td, &["create", "Counting", "--active"]);
    assert_eq!(p.plan.status, PlanStatus::Active);
    let id = p.plan.id.to_string();
    let tasks: Vec<String> = (0..4)
        .map(|i| {
            td.create_task(&format!("t{i}"), &["--plan", &id])
                .task
                .id
                .to_string()
        })
        .collect();
    td.sfctl().args(["task", "close", &tasks[0]]).success();
    td.sfctl().args(["task", "backlog", &tasks[1]]).success();
    td.sfctl().args(["task", "delete", &tasks[2]]).success();
    let shown = show(&td, &id);
    assert_eq!(shown.plan.total, 3, "tombstones do not count");
    assert_eq!(shown.plan.counts.get(&TaskStatus::Open), Some(&1));
    assert_eq!(shown.plan.counts.get(&TaskStatus::Closed), Some(&1));
    assert_eq!(shown.plan.counts.get(&TaskStatus::Backlog), Some(&1));
    assert_eq!(shown.tasks.len(), 3);
    assert_eq!(
        shown.plan.status,
        PlanStatus::Active,
        "a backlog task keeps the plan open"
    );
    let text = td.sfctl().args(["plan", "show", &id]).success();
    assert!(
        text.contains("Counting") && text.contains(&tasks[3]),
        "{text}"
    );
}

#[test]
fn a_plan_completes_by_itself_when_all_its_tasks_are_closed() {
    let td = TestDaemon::start();
    let p = plan(&td, &["create", "Finish me", "--active"]);
    let id = p.plan.id.to_string();
    let a = td.create_task("a", &["--plan", &id]).task.id.to_string();
    let b = td.create_task("b", &["--plan", &id]).task.id.to_string();
    td.sfctl().args(["task", "close", &a]).success();
    assert_eq!(
        show(&td, &id).plan.status,
        PlanStatus::Active,
        "one task is still open"
    );
    td.sfctl().args(["task", "close", &b]).success();
    let done = td.wait_for("the plan to complete", || {
        let s = show(&td, &id);
        if s.plan.status == PlanStatus::Completed {
            Ok(s)
        } else {
            Err(Box::new(s.plan))
        }
    });
    assert_eq!(done.plan.counts.get(&TaskStatus::Closed), Some(&2));
    let events = td.events(&[]);
    assert!(
        events
            .iter()
            .any(|e| e.subject == format!("plan:{id}") && e.action.contains("complet")),
        "the completion is in the audit log: {:#?}",
        events
            .iter()
            .map(|e| (&e.action, &e.subject))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_draft_plan_does_not_complete_and_an_empty_plan_stays_active() {
    let td = TestDaemon::start();
    let draft = plan(&td, &["create", "Draft"]);
    let did = draft.plan.id.to_string();
    let t = td.create_task("t", &["--plan", &did]).task.id.to_string();
    td.sfctl().args(["task", "close", &t]).success();
    assert_eq!(show(&td, &did).plan.status, PlanStatus::Draft);
    let empty = plan(&td, &["create", "Empty", "--active"]);
    assert_eq!(
        show(&td, empty.plan.id.as_str()).plan.status,
        PlanStatus::Active
    );
}

#[test]
fn cancel_a_plan() {
    let td = TestDaemon::start();
    let p = plan(&td, &["create", "Doomed", "--active"]);
    let id = p.plan.id.to_string();
    let t = td.create_task("doomed work", &["--plan", &id]);
    td.sfctl().args(["plan", "cancel", &id]).success();
    let shown = show(&td, &id);
    assert_eq!(shown.plan.status, PlanStatus::Cancelled);
    assert!(
        !td.show_task(t.task.id.as_str()).ready,
        "tasks of a cancelled plan are not ready"
    );
    let err = td.sfctl().args(["plan", "activate", &id]).fails(1);
    assert!(err.contains("cancelled"), "{err}");
    let err = td.sfctl().args(["plan", "cancel", &id]).fails(1);
    assert!(err.contains("cancelled"), "{err}");
}

#[test]
fn list_shows_every_plan_and_unknown_plans_are_refused() {
    let td = TestDaemon::start();
    let a = plan(&td, &["create", "Alpha"]);
    let b = plan(&td, &["create", "Beta", "--active"]);
    let all: Vec<PlanSummary> = td.sfctl().args(["plan", "list"]).json();
    let mut got: Vec<(String, PlanStatus)> =
        all.iter().map(|p| (p.title.clone(), p.status)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("Alpha".into(), PlanStatus::Draft),
            ("Beta".into(), PlanStatus::Active)
        ]
    );
    let text = td.sfctl().args(["plan", "list"]).success();
    assert!(
        text.contains(a.plan.id.as_str()) && text.contains(b.plan.id.as_str()),
        "{text}"
    );
    assert!(text.contains("draft") && text.contains("active"), "{text}");
    for verb in ["show", "activate", "cancel"] {
        let err = td.sfctl().args(["plan", verb, "zzzzzz"]).fails(1);
        assert!(err.contains("zzzzzz"), "{verb}: {err}");
    }
    let err = td.sfctl().args(["plan", "create", ""]).run();
    assert!(!err.status.success(), "an empty plan title is refused");
}

#[test]
fn list_filters_by_status_and_limits_to_the_newest() {
    let td = TestDaemon::start();
    let alpha = plan(&td, &["create", "Alpha"]);
    plan(&td, &["create", "Beta", "--active"]);
    plan(&td, &["create", "Gamma", "--active"]);
    plan(&td, &["create", "Delta"]);
    plan(&td, &["cancel", alpha.plan.id.as_str()]);
    let titles = |args: &[&str]| -> Vec<String> {
        let list: Vec<PlanSummary> = td.sfctl().args(["plan", "list"]).args(args).json();
        list.into_iter().map(|p| p.title).collect()
    };
    assert_eq!(titles(&[]), ["Alpha", "Beta", "Gamma", "Delta"]);
    assert_eq!(titles(&["--status", "active"]), ["Beta", "Gamma"]);
    assert_eq!(
        titles(&["--status", "draft,cancelled"]),
        ["Alpha", "Delta"],
        "comma-separated"
    );
    assert_eq!(
        titles(&["--status", "draft", "--status", "cancelled"]),
        ["Alpha", "Delta"],
        "repeated"
    );
    assert_eq!(titles(&["--status", "completed"]), Vec::<String>::new());
    assert_eq!(
        titles(&["--limit", "2"]),
        ["Gamma", "Delta"],
        "the newest two"
    );
    assert_eq!(titles(&["--status", "active", "--limit", "1"]), ["Gamma"]);
    let text = td
        .sfctl()
        .args(["plan", "list", "--status", "cancelled"])
        .success();
    assert!(text.contains("Alpha") && !text.contains("Beta"), "{text}");
    let err = td
        .sfctl()
        .args(["plan", "list", "--status", "open"])
        .fails(2);
    assert!(err.contains("draft, active, completed, cancelled"), "{err}");
    let (json, _) = td
        .sfctl()
        .args(["plan", "list", "--status", "open"])
        .json_fails(2);
    assert_eq!(json["error"]["kind"], "usage", "{json}");
}
