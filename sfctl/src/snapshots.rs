//! The tables a user reads most, at 80 columns (issue 10, item 16): long branch names, cron
//! triggers, multi-line reasons and log paths are cut with `…`, never wrapped or broken
//! mid-word, and no line is wider than the terminal. `--wide` (no width) shows them whole.

use chrono::TimeZone as _;
use insta::assert_snapshot;
use sf_proto::{
    AuditEvent, EventId, MergeRequestInfo, MergeState, StewardRunInfo, TaskId, TaskStatus,
    TaskSummary, TaskType, Timestamp, WaitingTask,
};

use crate::commands::{events, mr, steward, task};

fn now() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()
}

fn ago(secs: i64) -> Timestamp {
    now() - chrono::TimeDelta::seconds(secs)
}

fn id(s: &str) -> TaskId {
    TaskId::new(s.to_owned()).unwrap()
}

fn assert_fits(text: &str) {
    for line in text.lines() {
        assert!(
            unicode_width::UnicodeWidthStr::width(line) <= 80,
            "{} columns: {line}",
            unicode_width::UnicodeWidthStr::width(line)
        );
    }
}

fn summary(task: &str, priority: u8, status: TaskStatus, title: &str) -> TaskSummary {
    TaskSummary {
        id: id(task),
        title: title.to_owned(),
        status,
        priority,
        task_type: TaskType::Task,
        assignee: None,
        plan: None,
        skills: Vec::new(),
        scheduled_for: None,
        defer_until: None,
        created_at: ago(3600),
        updated_at: ago(60),
    }
}

#[test]
fn task_blocked_at_80_columns() {
    let retry = (now() + chrono::TimeDelta::seconds(20)).to_rfc3339();
    let tasks = vec![
        WaitingTask {
            task: summary("k3f9xq", 1, TaskStatus::Blocked, "Fix the flaky login test"),
            reasons: vec![
                "marked blocked: the worker exited (exit code 101)\nLast log lines:\nerror: \
                 assertion failed\n  left: 1\n right: 2"
                    .to_owned(),
            ],
        },
        WaitingTask {
            task: summary(
                "m2n3p4",
                2,
                TaskStatus::Open,
                "Rewrite the billing export so that it streams rows instead of buffering",
            ),
            reasons: vec![format!("retry after failure at {retry}")],
        },
        WaitingTask {
            task: summary("q7r8s9", 3, TaskStatus::Open, "Document the API"),
            reasons: vec![
                "blocked by m2n3p4 (open)".to_owned(),
                "gate #4: approval 0/1".to_owned(),
            ],
        },
    ];
    let text = task::render_waiting(&tasks, false, Some(80), now());
    assert_fits(&text);
    assert_snapshot!(text, @r"
    ID      PRI  STATUS   TITLE                         WAITING ON
    k3f9xq  1    blocked  Fix the flaky login test      marked blocked: the worker…
    m2n3p4  2    open     Rewrite the billing export…   retry after failure, in 20s
    q7r8s9  3    open     Document the API              blocked by m2n3p4 (open); g…
    ");
    let wide = task::render_waiting(&tasks, false, None, now());
    assert!(wide.contains("instead of buffering"), "{wide}");
}

fn event(n: i64, actor: &str, action: &str, subject: &str, reason: Option<&str>) -> AuditEvent {
    AuditEvent {
        id: EventId(n),
        at: ago(120),
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        task: None,
        before: None,
        after: None,
        reason: reason.map(str::to_owned),
    }
}

#[test]
fn events_at_80_columns() {
    let events = [
        event(12, "human:alice", "task_created", "task:k3f9xq", None),
        event(
            13,
            "daemon",
            "run_failed",
            "task:k3f9xq",
            Some(
                "the worker exited (exit code 101) without completing or handing off; \
                 uncommitted work, if any, was saved to refs/sf/wip/k3f9xq/2 (032346f8b5).\n\
                 Last log lines:\nerror: --no-changes, but branch agent/w1/k3f9xq-fix has 2 \
                 commit(s) ahead of main",
            ),
        ),
        event(
            14,
            "agent:merger",
            "merge_failed",
            "mr:7",
            Some("tests failed"),
        ),
    ];
    let text: Vec<String> = events
        .iter()
        .map(|e| events::event_line(e, false, Some(80)))
        .collect();
    let text = text.join("\n");
    assert_fits(&text);
    // a reason that cannot fit is left to --wide, whole and on one line
    let wide = events::event_line(&events[1], false, None);
    assert!(
        wide.ends_with("saved to refs/sf/wip/k3f9xq/2 (032346f8b5). …"),
        "{wide}"
    );
    assert_snapshot!(text, @r"
    #12    2026-12-05 11:58:00Z  human:alice    task_created         task:k3f9xq
    #13    2026-12-05 11:58:00Z  daemon         run_failed           task:k3f9xq
    #14    2026-12-05 11:58:00Z  agent:merger   merge_failed         mr:7
    ");
}

fn request(
    n: i64,
    task: &str,
    branch: &str,
    state: MergeState,
    reason: Option<&str>,
) -> MergeRequestInfo {
    MergeRequestInfo {
        fix_tasks: Vec::new(),
        test_logs: Vec::new(),
        id: n,
        task: Some(id(task)),
        title: "t".to_owned(),
        branch: branch.to_owned(),
        target: "main".to_owned(),
        state,
        reason: reason.map(str::to_owned),
        attempts: 1,
        last_result: None,
        log_path: None,
        commit: None,
        fix_task: None,
        approved_by: None,
        created_at: ago(600),
        updated_at: ago(60),
    }
}

#[test]
fn mr_list_at_80_columns() {
    let mrs = [
        request(
            7,
            "k3f9xq",
            "agent/backend-worker-2/k3f9xq-rewrite-the-billing-export-so-that-it-streams",
            MergeState::NeedsFix,
            Some("tests failed:\nFAILED tests/test_export.py::test_streams - AssertionError"),
        ),
        request(
            8,
            "m2n3p4",
            "agent/w1/m2n3p4-docs",
            MergeState::Merged,
            Some("tests passed; merged"),
        ),
    ];
    let text = mr::render_mrs(&mrs, false, Some(80));
    assert_fits(&text);
    assert_snapshot!(text, @r"
    ID  STATE      TASK    BRANCH               TARGET  ATTEMPTS  RESULT
    #7  needs_fix  k3f9xq  agent/backend-work…  main    1         tests failed:…
    #8  merged     m2n3p4  agent/w1/m2n3p4-do…  main    1         tests passed; mer…
    ");
}

fn run(n: i64, steward: &str, trigger: &str, outcome: &str, result: &str) -> StewardRunInfo {
    StewardRunInfo {
        id: n,
        steward: steward.to_owned(),
        trigger: trigger.to_owned(),
        data: serde_json::Value::Null,
        started_at: ago(300),
        ended_at: Some(ago(290)),
        outcome: Some(outcome.to_owned()),
        result: Some(result.to_owned()),
        log_path: Some(format!(
            "/home/alice/src/app/.sf/logs/steward-{steward}-{n}.log"
        )),
    }
}

#[test]
fn steward_history_at_80_columns() {
    let runs = [
        run(3, "nightly", "cron: 0 9 * * 1-5", "ok", "exited 0"),
        run(
            4,
            "reviewer",
            "event: task_completed",
            "failed",
            "exit status: 1\nmissing playbook variable `ticket`",
        ),
    ];
    let text = steward::render_runs(&runs, false, Some(80), now());
    assert_fits(&text);
    assert_snapshot!(text, @r"
    RUN  STEWARD   TRIGGER                STARTED  ENDED   OUTCOME  RESULT   LOG
    3    nightly   cron: 0 9 * * 1-5      5m ago   4m ago  ok       exited…  /home/…
    4    reviewer  event: task_completed  5m ago   4m ago  failed   exit s…  /home/…
    ");
}
