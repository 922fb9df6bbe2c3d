//! The tables a user reads most, at 80 columns (issue 10, item 16): long branch names, cron
//! triggers, multi-line reasons and log paths are cut with `…`, never wrapped or broken
//! mid-word, and no line is wider than the terminal. `--wide` (no width) shows them whole.
//! Then the detail views a user reads to understand one thing: `task show`, `mr show`,
//! `agent show`, `daemon status`.

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
        id: sf_proto::MergeRequestId(n),
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
        id: sf_proto::RunId(n),
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

// The detail views (issue 11, item 6): `task show`, `mr show`, `agent show`, `daemon status`.

fn captured(f: impl FnOnce(&mut crate::output::Ui)) -> String {
    let (mut ui, buf) = crate::output::Ui::capture();
    f(&mut ui);
    ui.flush().unwrap();
    drop(ui);
    String::from_utf8(buf.lock().unwrap().clone()).unwrap()
}

#[test]
fn task_show() {
    let mut t = summary("k3f9xq", 1, TaskStatus::Review, "Fix the flaky login test");
    t.assignee = Some("w1".to_owned());
    t.skills = vec!["rust".to_owned()];
    let d = sf_proto::TaskDetail {
        task: t,
        description: "The login test fails one run in ten.".to_owned(),
        acceptance: "cargo test passes 100 times in a row".to_owned(),
        close_reason: None,
        effective_priority: 1,
        ready: false,
        waiting: Vec::new(),
        depends_on: Vec::new(),
        dependents: Vec::new(),
        notes: vec![sf_proto::Note {
            at: ago(90),
            author: "agent:w1".to_owned(),
            kind: "summary".to_owned(),
            text: "the race was in the session store".to_owned(),
        }],
        runs: Vec::new(),
        branch: Some("agent/w1/k3f9xq-fix-the-flaky-login-test".to_owned()),
        worktree: Some("k3f9xq-fix-the-flaky-login-test".to_owned()),
        attempts: 1,
        shell: None,
        retry_at: None,
        messages: Vec::new(),
        fix_of: None,
        fix_tasks: vec![sf_proto::FixTaskRef {
            id: id("m2n3p4"),
            kind: "tests".to_owned(),
            status: TaskStatus::Closed,
            created_at: ago(600),
        }],
        events: vec![event(
            12,
            "human:alice",
            "task_created",
            "task:k3f9xq",
            None,
        )],
    };
    let text = captured(|ui| task::show(ui, &d, now()).unwrap());
    assert_snapshot!(text, @r"
    task k3f9xq: Fix the flaky login test
    status:    review
    priority:  1
    type:      task
    assignee:  w1
    plan:      -
    skills:    rust
    branch:    agent/w1/k3f9xq-fix-the-flaky-login-test
    worktree:  k3f9xq-fix-the-flaky-login-test
    attempts:  1 failed
    fix tasks: m2n3p4 (tests, closed)
    created:   2026-12-05 11:00:00Z (1h ago)
    updated:   2026-12-05 11:59:00Z (1m ago)

    description:
      The login test fails one run in ten.

    acceptance:
      cargo test passes 100 times in a row

    notes:
      2026-12-05 11:58:30Z agent:w1 [summary] the race was in the session store

    events:
      #12    2026-12-05 11:58:00Z  human:alice    task_created         task:k3f9xq
    ");
}

#[test]
fn mr_show() {
    let mut m = request(
        7,
        "k3f9xq",
        "agent/w1/k3f9xq-fix-the-flaky-login-test",
        MergeState::Merged,
        None,
    );
    m.attempts = 2;
    m.last_result = Some("tests passed; merged".to_owned());
    m.commit = Some("0715ad3cb8a915633a2be6abcda2aa89c5b30e20".to_owned());
    m.log_path = Some("/home/alice/app/.sf/logs/mr-7-2.log".to_owned());
    m.test_logs = vec![
        "/home/alice/app/.sf/logs/mr-7-1.log".to_owned(),
        "/home/alice/app/.sf/logs/mr-7-2.log".to_owned(),
    ];
    m.fix_tasks = vec![sf_proto::FixTaskRef {
        id: id("m2n3p4"),
        kind: "tests".to_owned(),
        status: TaskStatus::Closed,
        created_at: ago(600),
    }];
    assert_snapshot!(mr::show_text(&m, false, now()), @r"
    merge request #7: t
    state:       merged
    task:        k3f9xq
    branch:      agent/w1/k3f9xq-fix-the-flaky-login-test
    target:      main
    reason:      -
    attempts:    2
    last result: tests passed; merged
    commit:      0715ad3cb8a915633a2be6abcda2aa89c5b30e20
    fix task:    -
    fix tasks:   m2n3p4 (tests, closed)
    approved by: -
    test log:    /home/alice/app/.sf/logs/mr-7-2.log
    test logs:   2 (`sfctl logs mr:7 --run N` prints test N)
    created:     2026-12-05 11:50:00Z (10m ago)
    updated:     2026-12-05 11:59:00Z (1m ago)
    ");
}

#[test]
fn agent_show() {
    let spec: sf_proto::AgentSpec = serde_json::from_value(serde_json::json!({
        "name": "merger",
        "role": "steward",
        "focus": "merge",
        "adapter": "command",
        "max_tasks": 1,
    }))
    .unwrap();
    let d = sf_proto::AgentDetail {
        agent: sf_proto::AgentSummary {
            spec,
            enabled: true,
            status: sf_proto::AgentStatus::Live,
            state: sf_proto::AgentState::Idle,
            running: 0,
            merges: Some(26),
            disabled_reason: None,
            blocked: None,
            created_at: ago(3600),
        },
        runs: Vec::new(),
        next_fires: Vec::new(),
        sandbox: None,
        signed: Some(true),
    };
    let text = captured(|ui| crate::commands::agent::show(ui, &d, now()).unwrap());
    assert_snapshot!(text, @r"
    name:           merger
    role:           steward
    job:            general
    mode:           ephemeral
    status:         live
    seat:           -
    manifest:       signed
    state:          idle
    enabled:        yes
    running:        0
    merges:         26
    focus:          merge
    adapter:        command
    command:        -
    model:          -
    effort:         -
    skills:         -
    capabilities:   -
    title:          -
    reports to:     -
    owner:          -
    max tasks:      1
    playbook:       -
    secrets:        -
    event triggers: -
    created:        2026-12-05 11:00:00Z (1h ago)
    ");
}

#[test]
fn daemon_status() {
    let st = sf_proto::DaemonStatus {
        pid: 4242,
        version: "sfd 0.1.0".to_owned(),
        protocol: 2,
        started_at: ago(7200),
        uptime_secs: 7200,
        workspace: "/home/alice/app".to_owned(),
        socket: "/home/alice/app/.sf/run/sfd.sock".to_owned(),
        tick_interval_ms: 5000,
        ticks: 1440,
        last_tick_us: Some(1100),
        tasks: [(TaskStatus::Open, 3), (TaskStatus::Closed, 26)].into(),
        running_workers: 2,
        paused_adapters: Default::default(),
        sandbox: "full (user and network namespaces, Landlock)".into(),
        warnings: vec!["no merge steward: merge requests wait (register one with `sfctl agent register merger --role steward --focus merge`)".to_owned()],
        recovered: Some("at start: adopted 2 worker(s) that outlived the previous daemon; 1 run(s) had ended (their work saved)".to_owned()),
        policy_error: None,
    };
    assert_snapshot!(crate::commands::daemon::render_status(&st, now()), @r"
    pid:             4242
    version:         sfd 0.1.0 (protocol 2)
    uptime:          2h (since 2026-12-05 10:00:00Z)
    socket:          /home/alice/app/.sf/run/sfd.sock
    workspace:       /home/alice/app
    tick interval:   5000 ms
    ticks:           1440
    last tick:       1.1 ms
    tasks:           open 3, closed 26
    running workers: 2
    paused adapters: none
    sandbox:         full (user and network namespaces, Landlock)
    recovered: at start: adopted 2 worker(s) that outlived the previous daemon; 1 run(s) had ended (their work saved)
    warning: no merge steward: merge requests wait (register one with `sfctl agent register merger --role steward --focus merge`)
    ");
}
