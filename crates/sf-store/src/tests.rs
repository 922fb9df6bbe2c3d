use sf_proto::{
    AgentSpec, DepKind, ErrorKind, NewGate, NewTask, Role, StatusChange, TaskFilter, TaskPatch,
    TaskStatus,
};

use crate::{Store, StoreError};

const ME: &str = "human:test";

fn task(store: &mut Store, title: &str, priority: u8) -> String {
    store
        .create_task(
            ME,
            NewTask {
                title: title.into(),
                priority,
                ..NewTask::default()
            },
        )
        .unwrap()
        .task
        .id
        .to_string()
}

fn ready_titles(store: &mut Store) -> Vec<String> {
    store
        .ready(crate::now_ms(), None)
        .unwrap()
        .into_iter()
        .map(|r| r.task.title)
        .collect()
}

fn event_count(store: &Store) -> usize {
    store.list_events(None, None, None).unwrap().len()
}

fn kind_of(e: StoreError) -> ErrorKind {
    e.kind()
}

#[test]
fn every_change_appends_exactly_one_event_in_its_transaction() {
    let mut s = Store::open_in_memory().unwrap();
    let a = task(&mut s, "a", 3);
    assert_eq!(event_count(&s), 1);
    s.update_task(
        ME,
        &a,
        TaskPatch {
            priority: Some(1),
            ..TaskPatch::default()
        },
    )
    .unwrap();
    assert_eq!(event_count(&s), 2);
    s.change_status(ME, &a, StatusChange::Defer, None, None)
        .unwrap();
    assert_eq!(event_count(&s), 3);
    let events = s.take_new_events();
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["task_created", "task_updated", "task_status_changed"]
    );
    assert_eq!(events[1].before.as_ref().unwrap()["priority"], 3);
    assert_eq!(events[1].after.as_ref().unwrap()["priority"], 1);
}

#[test]
fn illegal_transitions_are_refused_and_change_nothing() {
    let mut s = Store::open_in_memory().unwrap();
    let a = task(&mut s, "a", 3);
    let before = event_count(&s);
    let err = s
        .change_status(ME, &a, StatusChange::Undefer, None, None)
        .unwrap_err();
    assert_eq!(kind_of(err), ErrorKind::InvalidState);
    assert_eq!(event_count(&s), before);
    assert_eq!(s.show_task(&a).unwrap().task.status, TaskStatus::Open);
    s.change_status(ME, &a, StatusChange::Delete, None, None)
        .unwrap();
    let err = s
        .change_status(ME, &a, StatusChange::Reopen, None, None)
        .unwrap_err();
    assert!(
        err.to_string().contains("reopen applies to tasks that are"),
        "{err}"
    );
}

#[test]
fn ready_order_follows_effective_priority() {
    let mut s = Store::open_in_memory().unwrap();
    let low_blocker = task(&mut s, "low blocker", 5);
    let _mid = task(&mut s, "mid", 2);
    let urgent = task(&mut s, "urgent", 1);
    s.add_dep(ME, &urgent, Some(&low_blocker), DepKind::Blocks, None)
        .unwrap();
    assert_eq!(ready_titles(&mut s), ["low blocker", "mid"]);
    s.change_status(ME, &low_blocker, StatusChange::Close, Some("done"), None)
        .unwrap();
    assert_eq!(ready_titles(&mut s), ["urgent", "mid"]);
    // reopening blocks again
    s.change_status(ME, &low_blocker, StatusChange::Reopen, None, None)
        .unwrap();
    assert_eq!(ready_titles(&mut s), ["low blocker", "mid"]);
}

#[test]
fn cycles_are_refused_and_printed() {
    let mut s = Store::open_in_memory().unwrap();
    let a = task(&mut s, "a", 3);
    let b = task(&mut s, "b", 3);
    let c = task(&mut s, "c", 3);
    s.add_dep(ME, &a, Some(&b), DepKind::Blocks, None).unwrap();
    s.add_dep(ME, &b, Some(&c), DepKind::Blocks, None).unwrap();
    let err = s
        .add_dep(ME, &c, Some(&a), DepKind::Blocks, None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("adding this dependency would close a cycle: {c} -> {a} -> {b} -> {c}")
    );
    // informational links never form cycles
    s.add_dep(ME, &c, Some(&a), DepKind::RelatesTo, None)
        .unwrap();
}

#[test]
fn prefixes_resolve_uniquely() {
    let mut s = Store::open_in_memory().unwrap();
    let a = task(&mut s, "a", 3);
    assert_eq!(s.show_task(&a[..4]).unwrap().task.id.as_str(), a);
    assert_eq!(s.show_task(&a.to_uppercase()).unwrap().task.id.as_str(), a);
    assert_eq!(
        kind_of(s.show_task("zzzzzzzz").unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind_of(s.show_task("$(x)").unwrap_err()),
        ErrorKind::InvalidInput
    );
}

#[test]
fn draft_plans_hold_tasks_and_plans_complete_by_themselves() {
    let mut s = Store::open_in_memory().unwrap();
    let plan = s
        .create_plan(ME, "p", "", false)
        .unwrap()
        .plan
        .id
        .to_string();
    let t = s
        .create_task(
            ME,
            NewTask {
                title: "in plan".into(),
                plan: Some(plan.clone()),
                ..NewTask::default()
            },
        )
        .unwrap();
    assert!(!t.ready);
    assert!(t.waiting[0].contains("is draft"), "{:?}", t.waiting);
    s.activate_plan(ME, &plan).unwrap();
    assert_eq!(ready_titles(&mut s), ["in plan"]);
    s.change_status(ME, t.task.id.as_str(), StatusChange::Close, None, None)
        .unwrap();
    assert_eq!(
        s.show_plan(&plan).unwrap().plan.status,
        sf_proto::PlanStatus::Completed
    );
    s.change_status(ME, t.task.id.as_str(), StatusChange::Reopen, None, None)
        .unwrap();
    assert_eq!(
        s.show_plan(&plan).unwrap().plan.status,
        sf_proto::PlanStatus::Active
    );
}

#[test]
fn gates() {
    let mut s = Store::open_in_memory().unwrap();
    let a = task(&mut s, "a", 3);
    let gate = s
        .add_dep(
            ME,
            &a,
            None,
            DepKind::Awaits,
            Some(NewGate::Approval {
                approvers: vec!["alice".into(), "bob".into()],
                count: 2,
            }),
        )
        .unwrap();
    assert!(ready_titles(&mut s).is_empty());
    assert_eq!(
        kind_of(s.approve_gate(ME, gate.id, "mallory").unwrap_err()),
        ErrorKind::PermissionDenied
    );
    s.approve_gate(ME, gate.id, "Alice").unwrap();
    assert!(ready_titles(&mut s).is_empty());
    assert_eq!(
        kind_of(s.approve_gate(ME, gate.id, "alice").unwrap_err()),
        ErrorKind::Conflict
    );
    let done = s.approve_gate(ME, gate.id, "bob").unwrap();
    assert!(done.satisfied);
    assert_eq!(ready_titles(&mut s), ["a"]);

    let b = task(&mut s, "b", 3);
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    s.add_dep(
        ME,
        &b,
        None,
        DepKind::Awaits,
        Some(NewGate::Timer { until: future }),
    )
    .unwrap();
    assert_eq!(ready_titles(&mut s), ["a"]);
    let c = task(&mut s, "c", 3);
    s.add_dep(
        ME,
        &c,
        None,
        DepKind::Awaits,
        Some(NewGate::Timer { until: past }),
    )
    .unwrap();
    assert_eq!(ready_titles(&mut s), ["a", "c"]);
    assert_eq!(s.satisfy_due_timers(crate::now_ms()).unwrap(), 1);
}

#[test]
fn the_index_survives_a_reopen_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sf.db");
    let expected = {
        let mut s = Store::open(&path).unwrap();
        let a = task(&mut s, "a", 4);
        let b = task(&mut s, "b", 1);
        let _c = task(&mut s, "c", 3);
        s.add_dep(ME, &b, Some(&a), DepKind::Blocks, None).unwrap();
        ready_titles(&mut s)
    };
    assert_eq!(expected, ["a", "c"]);
    let mut s = Store::open(&path).unwrap();
    assert_eq!(ready_titles(&mut s), expected);
    let first = s.list_tasks(&TaskFilter::default()).unwrap()[0]
        .id
        .to_string();
    let a = s.show_task(&first).unwrap();
    assert_eq!(
        (a.task.title.as_str(), a.effective_priority),
        ("b", 1),
        "listed by priority"
    );
    let a = s.list_tasks(&TaskFilter::default()).unwrap()[2]
        .id
        .to_string();
    assert_eq!(s.show_task(&a).unwrap().effective_priority, 1, "a blocks b");
}

#[test]
fn a_database_from_a_newer_sf_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sf.db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn a_database_from_an_older_sf_is_migrated_in_place_keeping_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sf.db");
    // a version-1 file, as the first release wrote it, with a task in it
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(include_str!("migrations/0001_initial.sql"))
        .unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    conn.execute(
        "INSERT INTO tasks (id, title, status, priority, task_type, created_at, updated_at)
         VALUES ('abc234', 'old work', 'open', 2, 'task', 1, 1)",
        [],
    )
    .unwrap();
    drop(conn);
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.show_task("abc234").unwrap().task.title, "old work");
    let m = s
        .send_message(
            ME,
            sf_proto::NewMessage {
                task: Some("abc234".into()),
                body: "still here".into(),
                ..sf_proto::NewMessage::default()
            },
        )
        .unwrap();
    assert_eq!(m.to, "task:abc234");
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(usize::try_from(v).unwrap(), crate::SCHEMA_VERSION);
}

#[test]
fn agents_validate_and_derive_state() {
    let mut s = Store::open_in_memory().unwrap();
    let spec = |name: &str| AgentSpec {
        name: name.into(),
        role: Role::Worker,
        command: Some("/bin/true".into()),
        skills: vec!["Rust".into(), "rust".into()],
        ..AgentSpec::default()
    };
    let a = s.register_agent(ME, spec("w1"), true).unwrap();
    assert_eq!(a.agent.spec.skills, ["rust"]);
    assert_eq!(a.agent.state, sf_proto::AgentState::NeverRun);
    assert_eq!(
        kind_of(s.register_agent(ME, spec("w1"), true).unwrap_err()),
        ErrorKind::Conflict
    );
    let bad = AgentSpec {
        reports_to: Some("ghost".into()),
        ..spec("w2")
    };
    assert_eq!(
        kind_of(s.register_agent(ME, bad, true).unwrap_err()),
        ErrorKind::NotFound
    );
    let bad = AgentSpec {
        triggers: vec!["61 * * * *".into()],
        ..spec("w3")
    };
    assert!(
        s.register_agent(ME, bad, true)
            .unwrap_err()
            .to_string()
            .contains("invalid cron expression")
    );
    let bad = AgentSpec {
        command: None,
        ..spec("w4")
    };
    assert!(
        s.register_agent(ME, bad, true)
            .unwrap_err()
            .to_string()
            .contains("names no command")
    );
    let d = s.set_agent_enabled(ME, "w1", false).unwrap();
    assert_eq!(d.agent.state, sf_proto::AgentState::Disabled);
    s.remove_agent(ME, "w1").unwrap();
    assert!(s.list_agents().unwrap().is_empty());
}

#[test]
fn huge_and_hostile_input_is_refused_or_stored_verbatim() {
    let mut s = Store::open_in_memory().unwrap();
    let title = "fix \"quotes\" $(rm -rf /) `whoami` ünïcödé ✓";
    let id = task(&mut s, title, 3);
    assert_eq!(s.show_task(&id).unwrap().task.title, title);
    let before = event_count(&s);
    let err = s
        .create_task(
            ME,
            NewTask {
                title: "big".into(),
                description: "x".repeat(1 << 20),
                ..NewTask::default()
            },
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("description is 1048576 bytes long"),
        "{err}"
    );
    assert_eq!(event_count(&s), before);
    let err = s
        .create_task(
            ME,
            NewTask {
                title: "p".into(),
                priority: 9,
                ..NewTask::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("priority 9"), "{err}");
}

/// A store with one ephemeral worker `w1`.
fn store_with_worker() -> Store {
    let mut s = Store::open_in_memory().unwrap();
    s.register_agent(
        ME,
        AgentSpec {
            name: "w1".into(),
            role: Role::Worker,
            command: Some("/bin/true".into()),
            ..AgentSpec::default()
        },
        true,
    )
    .unwrap();
    s
}

#[test]
fn handoffs_in_a_row_back_off_and_too_many_block_the_task() {
    let mut s = store_with_worker();
    let id = task(&mut s, "spins", 3);
    let (key, _) = s.resolve_task(&id).unwrap();
    let mut waits = Vec::new();
    for n in 1..=crate::MAX_HANDOFFS {
        // the test does not wait out the backoff: it clears it
        s.conn
            .execute("UPDATE tasks SET retry_at = NULL WHERE key = ?1", [key])
            .unwrap();
        s.reload_index().unwrap();
        let claim = s.claim(ME, "w1", key).unwrap();
        let lease = s.check_lease(&claim.token).unwrap();
        s.handoff(&lease, &format!("handoff {n}")).unwrap();
        // the handing-off process exits
        s.run_ended(claim.run_id, Some(0), crate::Failure::Exited, "", None, 3)
            .unwrap();
        let t = s.show_task(&id).unwrap();
        assert_eq!(t.runs[0].error, None, "a handed-off run has no error");
        waits.push(t.retry_at.map(|r| r.timestamp_millis() - crate::now_ms()));
        if n < crate::MAX_HANDOFFS {
            assert_eq!(t.task.status, TaskStatus::Open, "after {n}");
        }
    }
    assert_eq!(waits[0], None, "the first handoff is taken up at once");
    assert!(
        waits[1].is_some_and(|w| w > 500) && waits[2].is_some_and(|w| w > waits[1].unwrap()),
        "{waits:?}"
    );
    let t = s.show_task(&id).unwrap();
    assert_eq!(t.task.status, TaskStatus::Blocked);
    assert!(
        s.list_events(None, Some(&id), None)
            .unwrap()
            .iter()
            .any(|e| e.action == "task_stuck"),
        "a stuck task is announced"
    );
}

#[test]
fn the_handoff_backoff_doubles_and_is_capped() {
    use crate::handoff_backoff_ms as b;
    assert_eq!((b(0), b(1)), (None, None));
    assert_eq!((b(2), b(3), b(4)), (Some(1_000), Some(2_000), Some(4_000)));
    assert_eq!(b(40), Some(300_000));
}

#[test]
fn a_task_whose_merge_is_testing_cannot_be_moved_and_leaving_review_cancels_the_request() {
    use sf_proto::MergeState;
    let mut s = store_with_worker();
    let id = task(&mut s, "under review", 3);
    let (key, _) = s.resolve_task(&id).unwrap();
    let claim = s.claim(ME, "w1", key).unwrap();
    let lease = s.check_lease(&claim.token).unwrap();
    s.complete(&lease, Some("done"), "main", false).unwrap();
    let (mr, state) = s.open_mr_of(key).unwrap().expect("a request");
    assert_eq!(state, MergeState::Queued);
    s.set_mr_state(
        sf_proto::MergeRequestId(mr),
        MergeState::Testing,
        None,
        None,
    )
    .unwrap();
    let before = event_count(&s);
    let err = s
        .change_status(ME, &id, StatusChange::Close, None, None)
        .unwrap_err();
    assert_eq!(kind_of(err), ErrorKind::InvalidState);
    assert_eq!(event_count(&s), before, "nothing changed");
    s.set_mr_state(sf_proto::MergeRequestId(mr), MergeState::Queued, None, None)
        .unwrap();
    s.change_status(ME, &id, StatusChange::Close, Some("not needed"), None)
        .unwrap();
    assert_eq!(
        s.show_mr(sf_proto::MergeRequestId(mr)).unwrap().state,
        MergeState::Cancelled
    );
    assert_eq!(s.open_mr_of(key).unwrap(), None);
}

#[test]
fn a_message_to_a_director_by_name_counts_as_telling_the_director() {
    let mut s = store_with_worker();
    s.register_agent(
        ME,
        AgentSpec {
            name: "boss".into(),
            role: Role::Director,
            mode: sf_proto::Mode::Persistent,
            ..AgentSpec::default()
        },
        true,
    )
    .unwrap();
    s.register_agent(
        ME,
        AgentSpec {
            name: "rec".into(),
            role: Role::Steward,
            focus: Some(sf_proto::Focus::Recovery),
            command: Some("/bin/true".into()),
            ..AgentSpec::default()
        },
        true,
    )
    .unwrap();
    let id = task(&mut s, "stuck", 3);
    assert!(!s.told_director("rec", &id, 0).unwrap());
    let msg = |to: &str| sf_proto::NewMessage {
        to: Some(to.into()),
        task: Some(id.clone()),
        body: "decide".into(),
        ..sf_proto::NewMessage::default()
    };
    s.send_message("agent:rec", msg("w1")).unwrap();
    assert!(
        !s.told_director("rec", &id, 0).unwrap(),
        "w1 is no director"
    );
    s.send_message("agent:rec", msg("boss")).unwrap();
    assert!(s.told_director("rec", &id, 0).unwrap());
    assert!(
        !s.told_director("rec", &id, crate::now_ms() + 1_000)
            .unwrap(),
        "only messages since the given time count"
    );
}

#[test]
fn reading_a_message_marks_it_read_only_for_its_recipient() {
    let mut s = store_with_worker();
    let m = s
        .send_message(
            ME,
            sf_proto::NewMessage {
                to: Some("w1".into()),
                body: "hi".into(),
                ..sf_proto::NewMessage::default()
            },
        )
        .unwrap();
    s.read_messages("human:alice", &[m.id]).unwrap();
    assert!(
        s.show_message(m.id).unwrap().read_at.is_none(),
        "a human only looked"
    );
    s.read_messages("agent:w1", &[m.id]).unwrap();
    assert!(s.show_message(m.id).unwrap().read_at.is_some());
}

#[test]
fn a_task_waiting_out_a_retry_says_so_not_scheduled() {
    let mut s = store_with_worker();
    let id = task(&mut s, "fails once", 3);
    let (key, _) = s.resolve_task(&id).unwrap();
    let claim = s.claim(ME, "w1", key).unwrap();
    s.run_ended(
        claim.run_id,
        Some(1),
        crate::Failure::Exited,
        "boom",
        None,
        3,
    )
    .unwrap();
    // the run says why it ended, in task show and agent show alike
    let t = s.show_task(&id).unwrap();
    assert_eq!(t.runs[0].outcome.as_deref(), Some("failed"));
    assert_eq!(t.runs[0].error.as_deref(), Some("boom"));
    assert_eq!(
        s.show_agent("w1").unwrap().runs[0].error.as_deref(),
        Some("boom")
    );
    let waiting = s.waiting(crate::now_ms(), None).unwrap();
    let w = waiting
        .iter()
        .find(|w| w.task.id.as_str() == id)
        .expect("waiting");
    assert_eq!(w.reasons.len(), 1, "{w:?}");
    assert!(
        w.reasons[0].starts_with("retry after failure at "),
        "{:?}",
        w.reasons
    );
}
