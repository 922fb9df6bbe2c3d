//! Tasks, their dependencies and gates, and plans.

use super::*;

/// Fields of a new task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewTask {
    /// One line.
    pub title: String,
    /// Free text.
    pub description: String,
    /// 1 (most urgent) to 5.
    pub priority: u8,
    /// Kind of work.
    pub task_type: TaskType,
    /// Plan id or prefix.
    pub plan: Option<String>,
    /// Ids or prefixes of tasks that block it.
    pub blocked_by: Vec<String>,
    /// Skills a worker must have.
    pub skills: Vec<String>,
    /// Acceptance criteria.
    pub acceptance: String,
    /// Not ready before this time.
    pub scheduled_for: Option<Timestamp>,
    /// Inside a run, its lease token (`SF_RUN`): the new task is a child of the run's task,
    /// and its usage counts against that task's budget too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The seat it is for: only that seat's agent takes it; a human seat's task is never
    /// dispatched and goes to its stewards' inboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
}

impl Default for NewTask {
    fn default() -> Self {
        Self {
            title: String::new(),
            description: String::new(),
            priority: 3,
            task_type: TaskType::Task,
            plan: None,
            blocked_by: Vec::new(),
            skills: Vec::new(),
            acceptance: String::new(),
            scheduled_for: None,
            token: None,
            seat: None,
        }
    }
}

/// Changes to a task's fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskPatch {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New priority.
    pub priority: Option<u8>,
    /// New type.
    pub task_type: Option<TaskType>,
    /// New acceptance criteria.
    pub acceptance: Option<String>,
    /// New skills (replaces the set).
    pub skills: Option<Vec<String>>,
    /// Move to a plan (id or prefix); `Some("")` removes it from its plan.
    pub plan: Option<String>,
    /// New schedule; use `clear_scheduled_for` to remove it.
    pub scheduled_for: Option<Timestamp>,
    /// Remove the schedule.
    pub clear_scheduled_for: bool,
    /// Append a note.
    pub note: Option<String>,
}

/// Filters of `sfctl task list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskFilter {
    /// Only these statuses (any of them). Empty: every status but `tombstone`.
    pub status: Vec<TaskStatus>,
    /// Only tasks assigned to this agent.
    pub assignee: Option<String>,
    /// Only tasks of this plan (id or prefix).
    pub plan: Option<String>,
    /// Only ready tasks, in dispatch order.
    pub ready: bool,
    /// At most this many.
    pub limit: Option<u32>,
}

/// Filters of `sfctl plan list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanFilter {
    /// Only these statuses (any of them). Empty: every status.
    pub status: Vec<PlanStatus>,
    /// Only the newest this many (still listed oldest first).
    pub limit: Option<u32>,
}

/// A task as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    /// Id.
    pub id: TaskId,
    /// Title.
    pub title: String,
    /// Status.
    pub status: TaskStatus,
    /// 1 (most urgent) to 5.
    pub priority: u8,
    /// Kind of work.
    pub task_type: TaskType,
    /// The agent working on it.
    pub assignee: Option<String>,
    /// Its plan.
    pub plan: Option<PlanId>,
    /// Required skills.
    pub skills: Vec<String>,
    /// Not ready before.
    pub scheduled_for: Option<Timestamp>,
    /// Deferred until.
    pub defer_until: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// A note on a task: a handoff note, a close reason, a comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub author: String,
    /// `note`, `handoff`, `close`, `block`, ...
    pub kind: String,
    /// Text.
    pub text: String,
}

/// A gate asked for in `sfctl dep add --type awaits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub enum NewGate {
    /// Satisfied when the time passes.
    Timer {
        /// The time.
        until: Timestamp,
    },
    /// Satisfied when `count` of `approvers` approve.
    Approval {
        /// Who may approve.
        approvers: Vec<String>,
        /// How many approvals are needed.
        count: u32,
    },
    /// Satisfied by `sfctl dep satisfy`.
    External {
        /// What it waits for, free text.
        #[serde(default)]
        name: Option<String>,
    },
}

/// A gate with its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub enum Gate {
    /// Satisfied when the time passes.
    Timer {
        /// The time.
        until: Timestamp,
    },
    /// Satisfied when `count` of `approvers` approve.
    Approval {
        /// Who may approve.
        approvers: Vec<String>,
        /// How many approvals are needed.
        count: u32,
        /// Who has approved.
        approved_by: Vec<String>,
    },
    /// Satisfied by `sfctl dep satisfy`.
    External {
        /// What it waits for.
        name: Option<String>,
    },
}

/// A dependency as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepInfo {
    /// Id, for `dep remove --id`, `dep approve`, `dep satisfy`.
    pub id: DepId,
    /// The kind.
    pub kind: DepKind,
    /// The task that waits.
    pub blocked: TaskId,
    /// Its title.
    pub blocked_title: String,
    /// The task it waits on (absent for gates).
    pub blocker: Option<TaskId>,
    /// That task's title.
    pub blocker_title: Option<String>,
    /// That task's status.
    pub blocker_status: Option<TaskStatus>,
    /// The gate, for `awaits`.
    pub gate: Option<Gate>,
    /// Whether it no longer holds the task back (always true for informational kinds).
    pub satisfied: bool,
    /// Created.
    pub created_at: Timestamp,
}

/// `sfctl task show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDetail {
    /// The summary fields.
    #[serde(flatten)]
    pub task: TaskSummary,
    /// Description.
    pub description: String,
    /// Acceptance criteria.
    pub acceptance: String,
    /// Why it was closed.
    pub close_reason: Option<String>,
    /// The most urgent priority of it and everything it transitively blocks.
    pub effective_priority: u8,
    /// Whether it is ready now.
    pub ready: bool,
    /// Why it is not ready, if it is open and not ready.
    pub waiting: Vec<String>,
    /// What it depends on.
    pub depends_on: Vec<DepInfo>,
    /// What depends on it.
    pub dependents: Vec<DepInfo>,
    /// Notes, oldest first.
    pub notes: Vec<Note>,
    /// Its runs, newest first.
    pub runs: Vec<RunSummary>,
    /// Its branch, once a worker has started on it.
    #[serde(default)]
    pub branch: Option<String>,
    /// Its worktree, once a worker has started on it.
    #[serde(default)]
    pub worktree: Option<String>,
    /// Failed runs so far.
    #[serde(default)]
    pub attempts: u32,
    /// For a playbook's shell step: the command the daemon runs (instead of a worker).
    #[serde(default)]
    pub shell: Option<String>,
    /// Not dispatched again before this time (backoff after a failed run).
    #[serde(default)]
    pub retry_at: Option<Timestamp>,
    /// Messages about it, oldest first.
    #[serde(default)]
    pub messages: Vec<MessageInfo>,
    /// The task this one fixes (a fix task made by a failed merge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_of: Option<TaskId>,
    /// The fix tasks failed merges of this task made, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fix_tasks: Vec<FixTaskRef>,
    /// Its audit events, oldest first.
    pub events: Vec<AuditEvent>,
}

/// A fix task a failed merge made: which, why, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixTaskRef {
    /// The fix task.
    pub id: TaskId,
    /// What failed: `tests` or `conflict`.
    pub kind: String,
    /// Its status now.
    pub status: TaskStatus,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A ready task in dispatch order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyTask {
    /// The task.
    #[serde(flatten)]
    pub task: TaskSummary,
    /// The most urgent priority of it and everything it transitively blocks.
    pub effective_priority: u8,
}

/// A task that is not ready, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingTask {
    /// The task.
    #[serde(flatten)]
    pub task: TaskSummary,
    /// Each reason it waits, e.g. `blocked by k3f9xq (open)`.
    pub reasons: Vec<String>,
}

/// A node of `sfctl dep tree`: a task and what it waits on, recursively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepTreeNode {
    /// The task.
    pub id: TaskId,
    /// Its title.
    pub title: String,
    /// Its status.
    pub status: TaskStatus,
    /// How its parent node depends on it (absent at the root).
    pub kind: Option<DepKind>,
    /// Whether that dependency is satisfied (absent at the root).
    pub satisfied: Option<bool>,
    /// Gates of this task.
    pub gates: Vec<DepInfo>,
    /// What it waits on. Empty with `truncated` set when the tree was cut.
    pub children: Vec<Self>,
    /// Set where a node was already shown above or the depth limit was hit.
    pub truncated: bool,
}

/// Both directions of a task's dependencies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepList {
    /// The task.
    pub id: TaskId,
    /// What it depends on.
    pub depends_on: Vec<DepInfo>,
    /// What depends on it.
    pub dependents: Vec<DepInfo>,
}

/// A plan as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Id.
    pub id: PlanId,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Status.
    pub status: PlanStatus,
    /// Task counts by status (tombstones excluded).
    pub counts: BTreeMap<TaskStatus, u64>,
    /// Number of tasks (tombstones excluded).
    pub total: u64,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// `sfctl plan show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDetail {
    /// The summary.
    #[serde(flatten)]
    pub plan: PlanSummary,
    /// Its tasks.
    pub tasks: Vec<TaskSummary>,
}
