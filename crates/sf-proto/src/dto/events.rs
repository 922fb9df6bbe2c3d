//! The audit log and the daemon's status.

use super::*;

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Id; ids only grow.
    pub id: EventId,
    /// When.
    pub at: Timestamp,
    /// Who: `human:alice`, `agent:w1`, `daemon`.
    pub actor: String,
    /// What: `task_created`, `task_status_changed`, `dep_added`, ...
    pub action: String,
    /// On what: `task:k3f9xq`, `agent:w1`, `plan:7hm2pa`, `dep:12`.
    pub subject: String,
    /// The task concerned, if any.
    pub task: Option<TaskId>,
    /// State before, if it existed.
    pub before: Option<serde_json::Value>,
    /// State after, if it still exists.
    pub after: Option<serde_json::Value>,
    /// Why, if given.
    pub reason: Option<String>,
}

/// `sfctl daemon status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// Daemon pid.
    pub pid: u32,
    /// Daemon version.
    pub version: String,
    /// Protocol version.
    pub protocol: u32,
    /// Start time.
    pub started_at: Timestamp,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Workspace root.
    pub workspace: String,
    /// Socket path.
    pub socket: String,
    /// Tick interval in milliseconds.
    pub tick_interval_ms: u64,
    /// Ticks run since start.
    pub ticks: u64,
    /// Duration of the last tick, in microseconds.
    pub last_tick_us: Option<u64>,
    /// Tasks by status (tombstones excluded).
    pub tasks: BTreeMap<TaskStatus, u64>,
    /// Worker processes running.
    pub running_workers: u32,
    /// Adapters whose dispatch is paused (usage limits), with the time it resumes.
    #[serde(default)]
    pub paused_adapters: BTreeMap<String, Timestamp>,
    /// How agents' processes are confined (`[sandbox]` in config.toml), in words.
    #[serde(default)]
    pub sandbox: String,
    /// What keeps the daemon from working normally, each with what to do.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// What start-up did with the runs a daemon that exited left: adopted, or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
    /// Why `.sf/policy.toml` cannot be used (`POLICY_MISSING`): then nothing is spawned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_error: Option<String>,
}

/// The events the daemon publishes on its bus itself (stewards' `--on` triggers); custom
/// events (`sfctl event emit`) may not take these names.
pub const DAEMON_EVENTS: &[&str] = &[
    "task_created",
    "task_ready",
    "task_dispatched",
    "task_completed",
    "branch_ready",
    "task_merged",
    "task_closed",
    "merge_failed",
    "task_stuck",
    "agent_failed",
    "message_sent",
];

/// The fields the data of the daemon's own events may carry (the names an `--on` condition on
/// one of [`DAEMON_EVENTS`] can test): every task event carries the task's fields (the first
/// ten), each event some of the rest. A condition on a daemon event that names anything else
/// could never hold, and is refused at registration. Custom events carry what their emitter
/// sends.
pub const DAEMON_EVENT_FIELDS: &[&str] = &[
    "task",
    "title",
    "status",
    "priority",
    "agent",
    "branch",
    "plan",
    "type",
    "skills",
    "origin",
    "event_id",
    "actor",
    "assignee",
    "scheduled_for",
    "defer_until",
    "blocked_by",
    "fix_of",
    "kind",
    "step",
    "shell",
    "depends_on",
    "run",
    "epoch",
    "merge_request",
    "commit",
    "target",
    "gave_up",
    "fix_rounds",
    "handoffs_in_a_row",
    "attempts",
    "outcome",
    "exit_code",
    "retry_at",
    "id",
    "from",
    "to",
    "addressed",
    "subject",
    "reply_to",
    "became_task",
];
