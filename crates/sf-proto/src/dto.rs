//! Requests, responses and the data they carry. Field names are part of the contract: the
//! `--json` output of `sfctl` prints these types as they are.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{DepId, EventId, PlanId, TaskId};

/// A point in time, UTC, RFC 3339 on the wire.
pub type Timestamp = DateTime<Utc>;

/// The client's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Client name and version, for logs, e.g. `sfctl 0.1.0`.
    pub client: String,
    /// Who is asking, recorded in the audit log: `human:alice` or `agent:w1`.
    #[serde(default)]
    pub actor: Option<String>,
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let lower = s.trim().to_ascii_lowercase().replace('_', "-");
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().replace('_', "-") == lower)
                    .ok_or_else(|| {
                        let all: Vec<_> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        format!("unknown {} `{}` (expected one of: {})", stringify!($name), s, all.join(", "))
                    })
            }
        }
    };
}

wire_enum!(
    /// Where a task is in its life. The legal moves between them live in `sf-core`.
    TaskStatus {
        /// Waiting to be worked on.
        Open = "open",
        /// Claimed by a worker.
        InProgress = "in_progress",
        /// Stopped until someone unblocks it.
        Blocked = "blocked",
        /// Put off, possibly until a time.
        Deferred = "deferred",
        /// Not planned yet.
        Backlog = "backlog",
        /// Finished by a worker, waiting in the merge queue.
        Review = "review",
        /// Done.
        Closed = "closed",
        /// Deleted.
        Tombstone = "tombstone",
    }
);

wire_enum!(
    /// What kind of work a task is.
    TaskType {
        /// A defect.
        Bug = "bug",
        /// New behaviour.
        Feature = "feature",
        /// Anything else worth doing.
        Task = "task",
        /// Upkeep.
        Chore = "chore",
    }
);

wire_enum!(
    /// How one task relates to another (or to a gate).
    DepKind {
        /// The blocker must close first.
        Blocks = "blocks",
        /// The task is a child of the other; it waits while its parent waits.
        ParentChild = "parent-child",
        /// The task waits on a gate: a timer, approvals or an external signal.
        Awaits = "awaits",
        /// Informational.
        RelatesTo = "relates-to",
        /// Informational.
        References = "references",
    }
);

wire_enum!(
    /// An agent's job.
    Role { /** Plans. */ Director = "director", /** Executes tasks. */ Worker = "worker", /** Maintains. */ Steward = "steward" }
);

wire_enum!(
    /// Whether the daemon spawns the agent per task or a human runs it.
    Mode { /** Spawned by the daemon for one task at a time. */ Ephemeral = "ephemeral", /** Started by a human. */ Persistent = "persistent" }
);

wire_enum!(
    /// A steward's focus.
    Focus {
        /** Test-gated merges. */ Merge = "merge",
        /** Documentation upkeep. */ Docs = "docs",
        /** Stuck-task recovery. */ Recovery = "recovery",
        /** A playbook. */ Custom = "custom",
    }
);

wire_enum!(
    /// Which coding-agent CLI an agent runs.
    Adapter {
        /** Claude Code. */ Claude = "claude",
        /** OpenAI Codex CLI. */ Codex = "codex",
        /** OpenCode. */ Opencode = "opencode",
        /** Any executable. */ Command = "command",
    }
);

wire_enum!(
    /// Reasoning effort passed to adapters that support it.
    Effort { /** Low. */ Low = "low", /** Medium. */ Medium = "medium", /** High. */ High = "high" }
);

wire_enum!(
    /// Things an agent may do beyond editing its worktree; all off by default.
    Capability {
        /** Push to remotes. */ Push = "push",
        /** Network egress. */ Network = "network",
        /** The GitHub API. */ Github = "github",
        /** A ticketing system. */ Ticketing = "ticketing",
    }
);

wire_enum!(
    /// An agent's live state, derived from its run records (never stored).
    AgentState {
        /** Registered, never ran. */ NeverRun = "never-run",
        /** Not running now; the last run ended well. */ Idle = "idle",
        /** At least one run in flight. */ Running = "running",
        /** Paused: waiting for a resource (its CLI's usage limit). */ Blocked = "blocked",
        /** The last run failed. */ Failed = "failed",
        /** The last run was stopped (its task was closed, or a human stopped it). */
        Stopped = "stopped",
        /** Disabled: the daemon starts nothing of it. */ Disabled = "disabled",
    }
);

wire_enum!(
    /// What an audit event records: the closed set of actions the daemon writes
    /// (`AuditEvent::action` carries its wire name).
    Action {
        /** `task_created` */ TaskCreated = "task_created",
        /** `task_updated` */ TaskUpdated = "task_updated",
        /** `task_status_changed` */ TaskStatusChanged = "task_status_changed",
        /** `task_dispatched` */ TaskDispatched = "task_dispatched",
        /** `task_completed` */ TaskCompleted = "task_completed",
        /** `task_closed` */ TaskClosed = "task_closed",
        /** `task_merged` */ TaskMerged = "task_merged",
        /** `task_handed_off` */ TaskHandedOff = "task_handed_off",
        /** `task_stuck` */ TaskStuck = "task_stuck",
        /** `run_failed` */ RunFailed = "run_failed",
        /** `run_log_truncated` */ RunLogTruncated = "run_log_truncated",
        /** `plan_created` */ PlanCreated = "plan_created",
        /** `plan_failed` */ PlanFailed = "plan_failed",
        /** `workflow_created` */ WorkflowCreated = "workflow_created",
        /** `dep_added` */ DepAdded = "dep_added",
        /** `dep_removed` */ DepRemoved = "dep_removed",
        /** `message_sent` */ MessageSent = "message_sent",
        /** `message_read` */ MessageRead = "message_read",
        /** `merge_requested` */ MergeRequested = "merge_requested",
        /** `merge_request_updated` */ MergeRequestUpdated = "merge_request_updated",
        /** `merge_request_approved` */ MergeRequestApproved = "merge_request_approved",
        /** `merge_requeued` */ MergeRequeued = "merge_requeued",
        /** `merge_failed` */ MergeFailed = "merge_failed",
        /** `branch_merged` */ BranchMerged = "branch_merged",
        /** `agent_registered` */ AgentRegistered = "agent_registered",
        /** `agent_removed` */ AgentRemoved = "agent_removed",
        /** `agent_enabled` */ AgentEnabled = "agent_enabled",
        /** `agent_disabled` */ AgentDisabled = "agent_disabled",
        /** `steward_fired` */ StewardFired = "steward_fired",
        /** `steward_skipped` */ StewardSkipped = "steward_skipped",
        /** `steward_finished` */ StewardFinished = "steward_finished",
        /** `steward_rate_limited` */ StewardRateLimited = "steward_rate_limited",
        /** `event_emitted` */ EventEmitted = "event_emitted",
        /** `git_repaired` */ GitRepaired = "git_repaired",
        /** `cleaned_up` */ CleanedUp = "cleaned_up",
        /** `config_reloaded` */ ConfigReloaded = "config_reloaded",
        /** `worker_adopted` */ WorkerAdopted = "worker_adopted",
        /** `worker_reaped` */ WorkerReaped = "worker_reaped",
        /** `shell_step_failed` */ ShellStepFailed = "shell_step_failed",
        /** `plan_activated` */ PlanActivated = "plan_activated",
        /** `plan_cancelled` */ PlanCancelled = "plan_cancelled",
        /** `plan_completed` */ PlanCompleted = "plan_completed",
        /** `plan_reopened` */ PlanReopened = "plan_reopened",
        /** `gate_approved` */ GateApproved = "gate_approved",
        /** `gate_satisfied` */ GateSatisfied = "gate_satisfied",
    }
);

wire_enum!(
    /// How a steward's run ended (`StewardRunInfo::outcome` carries its wire name).
    StewardOutcome {
        /** It did its work. */ Ok = "ok",
        /** It failed, or could not start. */ Failed = "failed",
        /** Stopped at its wall-time limit. */ TimedOut = "timed_out",
        /** Stopped by a human or the daemon. */ Stopped = "stopped",
        /** Its process was gone after a daemon restart. */ Crashed = "crashed",
        /** The daemon stopped before its process started. */ Interrupted = "interrupted",
    }
);

wire_enum!(
    /// Where a plan is in its life.
    PlanStatus {
        /** Being written; its tasks are never ready. */ Draft = "draft",
        /** Its tasks can be dispatched. */ Active = "active",
        /** Every task closed. */ Completed = "completed",
        /** Given up. */ Cancelled = "cancelled",
        /** A workflow whose shell step failed or whose step was deleted. */ Failed = "failed",
    }
);

wire_enum!(
    /// A status change asked for by name (`sfctl task close`, `defer`, ...).
    StatusChange {
        /** To `closed`. */ Close = "close",
        /** From `closed` (or `review`, `blocked`) back to `open`. */ Reopen = "reopen",
        /** To `deferred`, optionally until a time. */ Defer = "defer",
        /** From `deferred` to `open`. */ Undefer = "undefer",
        /** To `backlog`. */ Backlog = "backlog",
        /** From `backlog` to `open`. */ Activate = "activate",
        /** To `blocked`, with a reason. */ Block = "block",
        /** From `blocked` to `open`. */ Unblock = "unblock",
        /** To `tombstone`. */ Delete = "delete",
    }
);

/// Why a request was refused. A closed set: clients branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such task, plan, agent or dependency.
    NotFound,
    /// An id prefix matches more than one thing.
    Ambiguous,
    /// The thing exists but is in the wrong state for this (illegal transition, live work).
    InvalidState,
    /// The request itself is wrong (bad field, bad cron expression, cycle).
    InvalidInput,
    /// It would clash with something that exists (a name taken).
    Conflict,
    /// The daemon does not do that (yet).
    Unsupported,
    /// Client and daemon speak different protocol versions.
    IncompatibleProtocol,
    /// The caller may not do that.
    PermissionDenied,
    /// A failure inside the daemon; the daemon keeps running.
    Internal,
    /// The daemon is at a limit (connections, request bytes in flight): retry shortly.
    Busy,
}

/// A refusal, with what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtoError {
    /// The class of error.
    pub kind: ErrorKind,
    /// What was wrong, a lowercase fragment.
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ProtoError {
    /// An error without a hint.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
        }
    }
    /// Adds a hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProtoError {}

/// Everything `sfctl agent register` can say about an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSpec {
    /// Unique name: lowercase letters, digits, `-` and `_`, at most 32 characters.
    pub name: String,
    /// Director, worker or steward.
    pub role: Role,
    /// Ephemeral (spawned per task) or persistent.
    pub mode: Mode,
    /// For stewards.
    pub focus: Option<Focus>,
    /// Standard 5-field cron expressions.
    pub triggers: Vec<String>,
    /// Event triggers, `EVENT[:CONDITION]`.
    pub on: Vec<String>,
    /// Which CLI it runs.
    pub adapter: Adapter,
    /// The executable (and arguments) to run, for `command`, or to override a CLI's path.
    pub command: Option<String>,
    /// Model name passed to the adapter.
    pub model: Option<String>,
    /// Reasoning effort.
    pub effort: Option<Effort>,
    /// Skills, lowercase, sorted, unique.
    pub skills: Vec<String>,
    /// Job title.
    pub title: Option<String>,
    /// Persona text put into its prompt.
    pub persona: Option<String>,
    /// Another agent's name.
    pub reports_to: Option<String>,
    /// The human who owns it.
    pub owner: Option<String>,
    /// Most tasks it runs at once.
    pub max_tasks: u32,
    /// Granted capabilities.
    pub capabilities: Vec<Capability>,
    /// For custom stewards: the playbook it runs.
    pub playbook: Option<String>,
    /// Wall-time limit of one run in seconds (default: the workspace's `worker_timeout`).
    pub max_runtime_secs: Option<u64>,
    /// Secret aliases (`[secrets]` in config.toml) whose values its runs get, as `$ALIAS`.
    /// Only the aliases are stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

impl Default for AgentSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            role: Role::Worker,
            mode: Mode::Ephemeral,
            focus: None,
            triggers: Vec::new(),
            on: Vec::new(),
            adapter: Adapter::Command,
            command: None,
            model: None,
            effort: None,
            skills: Vec::new(),
            title: None,
            persona: None,
            reports_to: None,
            owner: None,
            max_tasks: 1,
            capabilities: Vec::new(),
            playbook: None,
            max_runtime_secs: None,
            secrets: Vec::new(),
        }
    }
}

/// One row of `sfctl agent list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSummary {
    /// The registered spec.
    #[serde(flatten)]
    pub spec: AgentSpec,
    /// Whether the daemon may start it.
    pub enabled: bool,
    /// Derived from its runs.
    pub state: AgentState,
    /// Runs in flight.
    pub running: u32,
    /// A merge steward: the merge requests the queue it runs has merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merges: Option<u32>,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// `sfctl agent show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDetail {
    /// The summary.
    #[serde(flatten)]
    pub agent: AgentSummary,
    /// Its most recent runs, newest first.
    pub runs: Vec<RunSummary>,
    /// Next fire time of each cron trigger, in the order of `triggers`.
    pub next_fires: Vec<Option<Timestamp>>,
}

/// One worker incarnation on one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run id.
    pub id: i64,
    /// The task it worked on.
    pub task: Option<TaskId>,
    /// The agent.
    pub agent: String,
    /// Lease epoch.
    pub epoch: i64,
    /// Start.
    pub started_at: Timestamp,
    /// End, if it ended.
    pub ended_at: Option<Timestamp>,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// How it ended: `completed`, `handed_off`, `failed`, `timed_out`, `stopped`,
    /// `usage_limited`, `spawn_failed`, ...
    pub outcome: Option<String>,
    /// Process id while it runs.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Its log file.
    #[serde(default)]
    pub log_path: Option<String>,
    /// Tokens, cost and session reported by the agent CLI.
    #[serde(default)]
    pub usage: Option<RunUsage>,
}

/// What an agent CLI reported about a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunUsage {
    /// The CLI's session id (to resume).
    pub session_id: Option<String>,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache reads.
    pub cache_read_tokens: u64,
    /// Cache writes.
    pub cache_write_tokens: u64,
    /// Cost in US dollars, when the CLI reports it.
    pub cost_usd: Option<f64>,
    /// Tool calls made.
    pub tool_calls: u64,
    /// The CLI's final message.
    pub result: Option<String>,
}

wire_enum!(
    /// Where a merge request is.
    MergeState {
        /** Waiting its turn. */ Queued = "queued",
        /** Its merge result is being tested. */ Testing = "testing",
        /** Waits for `sfctl mr approve`. */ AwaitingApproval = "awaiting_approval",
        /** Cannot proceed yet; `reason` says why. */ Waiting = "waiting",
        /** Tests failed or it conflicts; a fix task is working on it. */ NeedsFix = "needs_fix",
        /** Landed on the target. */ Merged = "merged",
        /** Given up. */ Cancelled = "cancelled",
    }
);

/// A merge request, for `sfctl mr list|show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRequestInfo {
    /// Id.
    pub id: i64,
    /// The task it merges (absent for `sfctl merge` of a branch).
    pub task: Option<TaskId>,
    /// The task's title, or the merge message.
    pub title: String,
    /// The branch.
    pub branch: String,
    /// Where it goes.
    pub target: String,
    /// State.
    pub state: MergeState,
    /// Why it waits, or how it failed.
    pub reason: Option<String>,
    /// Test runs so far.
    pub attempts: u32,
    /// Last test result, one line.
    pub last_result: Option<String>,
    /// The test output log of the last attempt.
    pub log_path: Option<String>,
    /// The commit that landed.
    pub commit: Option<String>,
    /// The open fix task, if any.
    pub fix_task: Option<TaskId>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Every fix task its failed merges made, oldest first (kept after the merge; `mr
    /// show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fix_tasks: Vec<FixTaskRef>,
    /// The test output of each attempt, first to last (`mr show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_logs: Vec<String>,
}

/// What `sfctl gc` did (or, with `--dry-run`, would do): one line per worktree or branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// One line each.
    pub actions: Vec<String>,
}

/// One firing of a steward, for `sfctl steward history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StewardRunInfo {
    /// Run id.
    pub id: i64,
    /// The steward.
    pub steward: String,
    /// What fired it: `cron: 0 2 * * *`, `event: task_stuck`, `manual`.
    pub trigger: String,
    /// The event data or `--data` it got.
    pub data: serde_json::Value,
    /// Start.
    pub started_at: Timestamp,
    /// End, if it ended.
    pub ended_at: Option<Timestamp>,
    /// `ok`, `failed`, `skipped` (its previous run was still going), ...
    pub outcome: Option<String>,
    /// What it did, one line.
    pub result: Option<String>,
    /// Its output log.
    pub log_path: Option<String>,
}

/// A message between agents (and humans), for `sfctl inbox` and `sfctl message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageInfo {
    /// Id; ids only grow.
    pub id: i64,
    /// When it was sent.
    pub at: Timestamp,
    /// Who sent it: an agent's name, or `human:<user>`.
    pub from: String,
    /// Who it is for: an agent's name, `human`, or `task:<id>` (whoever works on that task).
    pub to: String,
    /// The address as the sender wrote it, when routing changed it (`director`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addressed: Option<String>,
    /// The task it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// One line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// The message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<i64>,
    /// When its recipient read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<Timestamp>,
    /// The task it became because nobody could receive it (no director is registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub became_task: Option<TaskId>,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NewMessage {
    /// An agent's name, `director` (the director the sender reports to, or the first enabled one),
    /// `human`, or `task:<id>`; absent with `task`: whoever works on that task.
    #[serde(default)]
    pub to: Option<String>,
    /// The task it is about (id or prefix); inside a run, default: the run's task.
    #[serde(default)]
    pub task: Option<String>,
    /// One line (default: the body's first line).
    #[serde(default)]
    pub subject: Option<String>,
    /// The text.
    pub body: String,
    /// The message it answers (its sender becomes the recipient when `to` is absent).
    #[serde(default)]
    pub reply_to: Option<i64>,
    /// The sender's lease token (`SF_RUN`) inside a run: names the sender and is checked
    /// like a completion's, so a stale incarnation cannot speak.
    #[serde(default)]
    pub token: Option<String>,
}

/// A playbook variable, for `sfctl playbook show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookVar {
    /// Name (`--var NAME=VALUE`).
    pub name: String,
    /// `string`, `number`, `boolean`, or `enum: a|b|c`.
    pub kind: String,
    /// Whether it must be given.
    pub required: bool,
    /// Its default.
    pub default: Option<String>,
    /// What it is for.
    pub description: String,
}

/// A playbook step, for `sfctl playbook show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookStep {
    /// Step id.
    pub id: String,
    /// Title template.
    pub title: String,
    /// `task` or `shell`.
    pub kind: String,
    /// Steps it waits on.
    pub depends_on: Vec<String>,
    /// When it is kept.
    pub condition: Option<String>,
    /// 1-5.
    pub priority: u8,
}

/// A playbook, for `sfctl playbook list|show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookInfo {
    /// Name.
    pub name: String,
    /// Title template.
    pub title: String,
    /// Description.
    pub description: String,
    /// `built-in` or the file it came from.
    pub source: String,
    /// Its variables.
    pub vars: Vec<PlaybookVar>,
    /// Its steps, in dependency order.
    pub steps: Vec<PlaybookStep>,
    /// Set for a workspace file that failed to load: why. Such an entry has only `name`
    /// (declared, or the file stem) and `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A run's log file, for `sfctl logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRef {
    /// The run.
    pub run: i64,
    /// Its task.
    pub task: Option<TaskId>,
    /// Its agent.
    pub agent: String,
    /// The file.
    pub path: String,
    /// Whether the run is still going.
    pub live: bool,
    /// A merge test's log: its merge request (`run` is then the attempt, or for a merge
    /// steward's listing the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_request: Option<i64>,
}

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
    /// What keeps the daemon from working normally, each with what to do.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// What start-up did with the runs a daemon that exited left: adopted, or ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
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

/// A request, after the handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Daemon status.
    Status,
    /// Graceful shutdown.
    Shutdown,
    /// Register an agent.
    RegisterAgent {
        /// Its spec.
        spec: AgentSpec,
    },
    /// Every agent.
    ListAgents,
    /// One agent.
    ShowAgent {
        /// Its name.
        name: String,
    },
    /// Enable or disable an agent.
    SetAgentEnabled {
        /// Its name.
        name: String,
        /// The new value.
        enabled: bool,
    },
    /// Remove an agent (refused while it has live work).
    RemoveAgent {
        /// Its name.
        name: String,
    },
    /// Create a task.
    CreateTask {
        /// Its fields.
        task: NewTask,
    },
    /// List tasks.
    ListTasks {
        /// Filters.
        #[serde(default)]
        filter: TaskFilter,
    },
    /// One task in full.
    ShowTask {
        /// Id or unique prefix.
        id: String,
    },
    /// Change a task's fields.
    UpdateTask {
        /// Id or unique prefix.
        id: String,
        /// The changes.
        patch: TaskPatch,
    },
    /// Change a task's status by name.
    ChangeTaskStatus {
        /// Id or unique prefix.
        id: String,
        /// Which change.
        change: StatusChange,
        /// Why (recorded as a note and in the audit event).
        #[serde(default)]
        reason: Option<String>,
        /// For `defer`: until when.
        #[serde(default)]
        until: Option<Timestamp>,
    },
    /// Ready tasks in dispatch order.
    ReadyTasks {
        /// At most this many.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Open tasks that are not ready, and blocked tasks, with the reasons.
    BlockedTasks {
        /// At most this many.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Add a dependency: `blocked` waits on `blocker` (or on a gate).
    AddDep {
        /// The task that waits (id or prefix).
        blocked: String,
        /// The task it waits on (id or prefix); absent for gates.
        #[serde(default)]
        blocker: Option<String>,
        /// The kind.
        kind: DepKind,
        /// For `awaits`.
        #[serde(default)]
        gate: Option<NewGate>,
    },
    /// Remove a dependency, by its two tasks or by id.
    RemoveDep {
        /// The task that waits (id or prefix).
        #[serde(default)]
        blocked: Option<String>,
        /// The task it waits on.
        #[serde(default)]
        blocker: Option<String>,
        /// Or the dependency's id.
        #[serde(default)]
        dep: Option<DepId>,
    },
    /// Both directions of a task's dependencies.
    ListDeps {
        /// Id or prefix.
        id: String,
    },
    /// What a task waits on, as a tree.
    DepTree {
        /// Id or prefix.
        id: String,
    },
    /// Record an approval on an approval gate.
    ApproveGate {
        /// The gate's dependency id.
        dep: DepId,
        /// Who approves (must be one of the gate's approvers).
        approver: String,
    },
    /// Mark an external gate satisfied.
    SatisfyGate {
        /// The gate's dependency id.
        dep: DepId,
    },
    /// Create a plan.
    CreatePlan {
        /// Title.
        title: String,
        /// Description.
        #[serde(default)]
        description: String,
        /// Start active rather than draft.
        #[serde(default)]
        active: bool,
    },
    /// Activate a draft plan.
    ActivatePlan {
        /// Id or prefix.
        id: String,
    },
    /// Plans, oldest first.
    ListPlans {
        /// Filters.
        #[serde(default)]
        filter: PlanFilter,
    },
    /// One plan with its tasks.
    ShowPlan {
        /// Id or prefix.
        id: String,
    },
    /// Cancel a plan.
    CancelPlan {
        /// Id or prefix.
        id: String,
    },
    /// Audit events.
    ListEvents {
        /// Only events with a larger id.
        #[serde(default)]
        since: Option<EventId>,
        /// Only events about this task.
        #[serde(default)]
        task: Option<String>,
        /// At most this many (the newest).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// A worker finished its task: commit what is left, queue a merge request, move the
    /// task to `review`. Carries the worker's lease token (`SF_RUN`).
    CompleteTask {
        /// The lease token.
        token: String,
        /// What was done.
        #[serde(default)]
        summary: Option<String>,
        /// Close the task as nothing to merge when the branch has no commits.
        #[serde(default)]
        no_changes: bool,
    },
    /// A worker hands its task back to the pool with a note; branch and worktree are kept.
    HandoffTask {
        /// The lease token.
        token: String,
        /// For the next worker.
        note: String,
    },
    /// Start a worker by hand, through the same checks as dispatch.
    StartAgent {
        /// The agent.
        name: String,
        /// A specific task (id or prefix); default: the first ready task it can take.
        #[serde(default)]
        task: Option<String>,
    },
    /// Stop an agent's running workers (their work is saved and their tasks return to the
    /// pool) and disable it.
    StopAgent {
        /// The agent.
        name: String,
    },
    /// Log files of a task's or an agent's runs, newest first.
    Logs {
        /// A task id or prefix, or an agent name.
        target: String,
    },
    /// The merge queue.
    ListMergeRequests,
    /// One merge request.
    ShowMergeRequest {
        /// Its id.
        id: i64,
    },
    /// Queue a waiting or failed merge request again.
    RetryMergeRequest {
        /// Its id.
        id: i64,
    },
    /// Approve a merge request held by `require_approval`.
    ApproveMergeRequest {
        /// Its id.
        id: i64,
        /// Who approves.
        approver: String,
    },
    /// Cancel a merge request.
    CancelMergeRequest {
        /// Its id.
        id: i64,
    },
    /// Merge a branch through the merge queue (`sfctl merge`); answers with the request,
    /// whose progress the client follows with `ShowMergeRequest`.
    Merge {
        /// The branch (default: the caller's `SF_BRANCH` or current branch, resolved by the client).
        branch: String,
        /// The target (default: the workspace's target branch).
        #[serde(default)]
        into: Option<String>,
        /// Commit message (default: derived from the branch).
        #[serde(default)]
        message: Option<String>,
    },
    /// Fire a steward by hand, through the same path as its triggers.
    RunSteward {
        /// The steward.
        name: String,
        /// Data, as an event would carry (`--data key=value`).
        #[serde(default)]
        data: BTreeMap<String, String>,
    },
    /// Steward runs, newest first.
    StewardHistory {
        /// One steward, or all.
        #[serde(default)]
        name: Option<String>,
        /// At most this many.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Publish a custom event on the daemon's bus (event triggers see it).
    EmitEvent {
        /// Its name: lowercase letters, digits and `_`.
        name: String,
        /// Its data.
        #[serde(default)]
        data: BTreeMap<String, String>,
    },
    /// Built-in and workspace playbooks (the workspace's win on a name clash).
    ListPlaybooks,
    /// One playbook.
    ShowPlaybook {
        /// Its name.
        name: String,
    },
    /// Check a playbook file's text without running it.
    ValidatePlaybook {
        /// Where the text came from, for messages.
        source: String,
        /// The TOML text.
        text: String,
    },
    /// Instantiate a playbook into an active plan (a workflow) with one task per kept step.
    RunPlaybook {
        /// Its name.
        name: String,
        /// Variables (`--var key=value`).
        #[serde(default)]
        vars: BTreeMap<String, String>,
    },
    /// Send a message; one to `director` with no director registered becomes a backlog task.
    SendMessage {
        /// The message.
        message: NewMessage,
    },
    /// Messages, newest first.
    ListMessages {
        /// For these recipients (agents, `human`, `task:<id>`); empty: everyone's.
        #[serde(default)]
        to: Vec<String>,
        /// Only unread ones.
        #[serde(default)]
        unread: bool,
        /// At most this many.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// One message.
    ShowMessage {
        /// Its id.
        id: i64,
    },
    /// Mark messages read.
    ReadMessages {
        /// Their ids.
        ids: Vec<i64>,
    },
    /// Read `.sf/config.toml` again and apply it, workers kept running.
    ReloadConfig,
    /// Clean up the worktrees and branches of work that is done.
    Gc {
        /// Only say what would be cleaned up.
        #[serde(default)]
        dry_run: bool,
    },
    /// Audit events, then every new one as it happens, as `Response::Event` frames.
    FollowEvents {
        /// Start after this id; absent: only new events.
        #[serde(default)]
        since: Option<EventId>,
        /// Only events about this task.
        #[serde(default)]
        task: Option<String>,
    },
}

/// A response. Each request gets exactly one, except `FollowEvents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Response {
    /// The handshake was accepted.
    Welcome {
        /// The daemon's protocol version.
        protocol: u32,
        /// Daemon name and version.
        daemon: String,
        /// Daemon pid.
        pid: u32,
    },
    /// Done; nothing to return but a message.
    Ok {
        /// What happened.
        message: String,
    },
    /// Daemon status.
    Status(DaemonStatus),
    /// What a clean-up did, or would do.
    Cleaned(GcReport),
    /// One agent.
    Agent(AgentDetail),
    /// Agents.
    Agents(Vec<AgentSummary>),
    /// One task.
    Task(Box<TaskDetail>),
    /// Tasks.
    Tasks(Vec<TaskSummary>),
    /// Ready tasks in dispatch order.
    Ready(Vec<ReadyTask>),
    /// Waiting tasks with reasons.
    Waiting(Vec<WaitingTask>),
    /// One dependency.
    Dep(DepInfo),
    /// A task's dependencies.
    Deps(DepList),
    /// A dependency tree.
    DepTree(DepTreeNode),
    /// One plan.
    Plan(PlanDetail),
    /// Plans.
    Plans(Vec<PlanSummary>),
    /// Audit events.
    Events(Vec<AuditEvent>),
    /// A run that was started.
    Run(RunSummary),
    /// Log files.
    Logs(Vec<LogRef>),
    /// Merge requests.
    MergeRequests(Vec<MergeRequestInfo>),
    /// One merge request.
    MergeRequest(MergeRequestInfo),
    /// One steward run.
    StewardRun(StewardRunInfo),
    /// Playbooks.
    Playbooks(Vec<PlaybookInfo>),
    /// One playbook.
    Playbook(PlaybookInfo),
    /// Steward runs.
    StewardRuns(Vec<StewardRunInfo>),
    /// One message.
    Message(MessageInfo),
    /// Messages.
    Messages(Vec<MessageInfo>),
    /// One audit event, in a follow stream.
    Event(AuditEvent),
    /// Events were dropped because the follower fell behind.
    Lagged {
        /// How many.
        skipped: u64,
    },
    /// A refusal.
    Error(ProtoError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_loosely_and_print_their_wire_name() {
        assert_eq!(
            "in-progress".parse::<TaskStatus>().unwrap(),
            TaskStatus::InProgress
        );
        assert_eq!(
            "parent_child".parse::<DepKind>().unwrap(),
            DepKind::ParentChild
        );
        assert_eq!(DepKind::ParentChild.to_string(), "parent-child");
        let err = "nope".parse::<Role>().unwrap_err();
        assert!(err.contains("director, worker, steward"), "{err}");
    }

    #[test]
    fn requests_have_a_readable_wire_form() {
        let json = serde_json::to_value(Request::ShowTask { id: "k3f".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"type": "show_task", "id": "k3f"}));
        let err: Response = Response::Error(ProtoError::new(ErrorKind::NotFound, "no task `x`"));
        let json = serde_json::to_value(err).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["data"]["kind"], "not_found");
        // a filter added later: the request without one still reads, as no filter
        let old: Request =
            serde_json::from_value(serde_json::json!({"type": "list_plans"})).unwrap();
        assert_eq!(
            old,
            Request::ListPlans {
                filter: PlanFilter::default()
            }
        );
    }
}
