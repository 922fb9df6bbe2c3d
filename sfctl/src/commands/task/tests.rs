use sf_proto::{TaskDetail, TaskStatus, TaskSummary, TaskType, WaitingTask};

use super::render::waiting_rows;
use super::*;

pub fn summary() -> TaskSummary {
    TaskSummary {
        id: "k3f9xq".parse().unwrap(),
        title: "Fix the flaky login test".into(),
        status: TaskStatus::InProgress,
        priority: 2,
        task_type: TaskType::Bug,
        assignee: Some("w1".into()),
        plan: None,
        skills: vec!["rust".into()],
        scheduled_for: None,
        defer_until: None,
        created_at: "2025-05-01T11:00:00Z".parse().unwrap(),
        updated_at: "2025-05-01T11:30:00Z".parse().unwrap(),
    }
}

#[test]
fn task_table_renders_plainly() {
    let mut other = summary();
    other.id = "m2n3p4".parse().unwrap();
    other.title = "Write docs".into();
    other.status = TaskStatus::Open;
    other.priority = 3;
    other.task_type = TaskType::Chore;
    other.assignee = None;
    let now = "2025-05-01T12:00:00Z".parse().unwrap();
    let text = render_tasks(&[summary(), other], false, None, now);
    assert_eq!(
        text,
        "ID      PRI  STATUS       TYPE   ASSIGNEE  TITLE\n\
         k3f9xq  2    in_progress  bug    w1        Fix the flaky login test\n\
         m2n3p4  3    open         chore  -         Write docs"
    );
}

fn detail(status: TaskStatus) -> TaskDetail {
    TaskDetail {
        fix_of: None,
        fix_tasks: Vec::new(),
        task: TaskSummary {
            status,
            ..summary()
        },
        description: String::new(),
        acceptance: String::new(),
        close_reason: None,
        effective_priority: 2,
        ready: false,
        waiting: Vec::new(),
        depends_on: Vec::new(),
        dependents: Vec::new(),
        notes: Vec::new(),
        runs: Vec::new(),
        branch: None,
        worktree: None,
        attempts: 0,
        shell: None,
        retry_at: None,
        events: Vec::new(),
        messages: Vec::new(),
    }
}

#[test]
fn complete_says_where_the_task_went() {
    assert_eq!(
        completed_line(&detail(TaskStatus::Review)),
        "task k3f9xq completed: queued for merge (review)"
    );
    assert_eq!(
        completed_line(&detail(TaskStatus::Closed)),
        "task k3f9xq closed: nothing to merge"
    );
}

#[test]
fn worker_commands_need_the_lease_token() {
    for missing in [None, Some(String::new()), Some("  ".into())] {
        let err = lease_token(missing, "complete").unwrap_err();
        assert_eq!(err.exit_code(), std::process::ExitCode::from(1));
        assert_eq!(
            err.message,
            "SF_RUN is not set: only a worker started by sfd can complete its task"
        );
        assert_eq!(err.hints, ["humans close tasks with `sfctl task close ID`"]);
    }
    let err = lease_token(None, "hand off").unwrap_err();
    assert!(
        err.message.ends_with("can hand off its task"),
        "{}",
        err.message
    );
    assert_eq!(lease_token(Some("tok".into()), "complete").unwrap(), "tok");
}

#[test]
fn blocked_shows_times_like_the_rest_of_sfctl() {
    let now = "2025-05-01T12:00:00Z".parse().unwrap();
    let w = WaitingTask {
        task: TaskSummary {
            status: TaskStatus::Open,
            ..summary()
        },
        reasons: vec![
            "scheduled for 2025-05-01T14:00:07.358+00:00".into(),
            "blocked by m2n3p4 (open)".into(),
        ],
    };
    let text = crate::output::render_table(
        &["ID", "PRI", "STATUS", "TITLE", "WAITING ON"],
        waiting_rows(&[w], false, now),
        false,
        None,
    );
    assert!(
        text.ends_with("scheduled for 2025-05-01 14:00:07Z (in 2h); blocked by m2n3p4 (open)"),
        "{text}"
    );
}

#[test]
fn ids_are_checked_locally() {
    assert_eq!(check_id("K3F").unwrap(), "k3f");
    let err = check_id("$(rm -rf)").unwrap_err();
    assert_eq!(err.exit_code(), std::process::ExitCode::from(1));
}
