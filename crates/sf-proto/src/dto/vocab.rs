//! The closed vocabularies: statuses, kinds, roles, adapters, audit actions and outcomes, each a
//! wire enum with its spelling.

use super::*;

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
    /// What an agent does on the team, beside its orchestration role: picks its default
    /// persona, prompt section and tool rules (`sf_core::staffing`).
    JobRole {
        /** Leads: plans and staffs; may hire. */ Ceo = "ceo",
        /** Writes code. */ Coder = "coder",
        /** Reviews; never edits or pushes. */ Reviewer = "reviewer",
        /** Tests. */ Qa = "qa",
        /** Designs. */ Designer = "designer",
        /** Reviews security; never edits or pushes. */ Security = "security",
        /** Builds and deploys. */ Devops = "devops",
        /** Product management. */ Pm = "pm",
        /** Anything. */ General = "general",
    }
);

wire_enum!(
    /// Who works a seat.
    SeatKind {
        /** A person: its tasks go to the steward's inbox, never to an agent. */ Human = "human",
        /** One agent. */ Agent = "agent",
        /** An agent whose merge requests each wait for the steward's approval. */
        Hybrid = "hybrid",
    }
);

wire_enum!(
    /// What a message is for; the daemon routes by recipient, and a session or triage run
    /// sees the type.
    MessageType {
        /** Work handed to the recipient. */ TaskAssignment = "task-assignment",
        /** Progress. */ StatusUpdate = "status-update",
        /** A question that needs an answer. */ HelpRequest = "help-request",
        /** Work passed on with its context. */ Handoff = "handoff",
        /** The daemon asks a session whether it is alive. */ HealthCheck = "health-check",
        /** Anything else. */ Generic = "generic",
    }
);

#[allow(clippy::derivable_impls)] // wire_enum! derives a fixed set
impl Default for MessageType {
    fn default() -> Self {
        Self::Generic
    }
}

wire_enum!(
    /// Where a session is.
    SessionStatus {
        /** Taking turns: its CLI runs a turn, or waits for input. */ Active = "active",
        /** Stopped by a human (`sfctl agent stop`). */ Ended = "ended",
    }
);

wire_enum!(
    /// How a dry run went.
    DryRunStatus {
        /** Still running. */ Running = "running",
        /** Its run ended well. */ Passed = "passed",
        /** Its run failed, was stopped or was refused. */ Failed = "failed",
    }
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
        /** Waiting for a human (a held tool call, an approval it asked for) or a resource
        (its CLI's usage limit): see `blocked`. */
        Blocked = "blocked",
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
        /** `branch_pushed`: sfd pushed a branch to a remote */ BranchPushed = "branch_pushed",
        /** `push_failed`: a push was refused or failed */ PushFailed = "push_failed",
        /** `agent_registered` */ AgentRegistered = "agent_registered",
        /** `agent_removed` */ AgentRemoved = "agent_removed",
        /** `agent_enabled` */ AgentEnabled = "agent_enabled",
        /** `agent_disabled` */ AgentDisabled = "agent_disabled",
        /** `adapter_paused`: its CLI hit a usage limit */ AdapterPaused = "adapter_paused",
        /** `egress_denied`: a sandboxed run asked the proxy for a host it may not reach */
        EgressDenied = "egress_denied",
        /** `steward_fired` */ StewardFired = "steward_fired",
        /** `steward_skipped` */ StewardSkipped = "steward_skipped",
        /** `steward_finished` */ StewardFinished = "steward_finished",
        /** `steward_rate_limited` */ StewardRateLimited = "steward_rate_limited",
        /** `event_emitted` */ EventEmitted = "event_emitted",
        /** `git_repaired` */ GitRepaired = "git_repaired",
        /** `worktree_tampered`: a run changed its worktree's git links; restored */
        WorktreeTampered = "worktree_tampered",
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
        /** `request_denied`: the guard refused a request (the true actor, the rule) */
        RequestDenied = "request_denied",
        /** `spawn_denied`: the guard refused to start a process */
        SpawnDenied = "spawn_denied",
        /** `agent_hired`: an agent asked for a new agent */ AgentHired = "agent_hired",
        /** `agent_updated`: a human changed an agent's fields */ AgentUpdated = "agent_updated",
        /** `agent_permissions_changed` */ AgentPermissionsChanged = "agent_permissions_changed",
        /** `approval_requested` */ ApprovalRequested = "approval_requested",
        /** `approval_approved` */ ApprovalApproved = "approval_approved",
        /** `approval_rejected` */ ApprovalRejected = "approval_rejected",
        /** `approval_revision_requested` */
        ApprovalRevisionRequested = "approval_revision_requested",
        /** `approval_resubmitted` */ ApprovalResubmitted = "approval_resubmitted",
        /** `approval_cancelled` */ ApprovalCancelled = "approval_cancelled",
        /** `approval_commented` */ ApprovalCommented = "approval_commented",
        /** `tool_call_denied`: the guard refused a tool call */ ToolCallDenied = "tool_call_denied",
        /** `tool_call_held`: a tool call waits for a human */ ToolCallHeld = "tool_call_held",
        /** `guard_bypassed`: a run's CLI made a tool call the guard was never asked about */
        GuardBypassed = "guard_bypassed",
        /** `budget_set` */ BudgetSet = "budget_set",
        /** `budget_usage`: a budget passed half, then 80 %, of a limit */ BudgetUsage = "budget_usage",
        /** `budget_exhausted`: a run was stopped, or a spawn refused, at a budget's limit */
        BudgetExhausted = "budget_exhausted",
        /** `plan_budget_exhausted`: a plan's budget ran out; its live runs were stopped */
        PlanBudgetExhausted = "plan_budget_exhausted",
        /** `seat_created` */ SeatCreated = "seat_created",
        /** `seat_updated`: its stewards or charter changed */ SeatUpdated = "seat_updated",
        /** `agent_drafted`: a draft agent was created (template, draft, import, hire) */
        AgentDrafted = "agent_drafted",
        /** `manifest_signed`: a human signed an agent's permission manifest */
        ManifestSigned = "manifest_signed",
        /** `dry_run_started` */ DryRunStarted = "dry_run_started",
        /** `dry_run_finished`: a dry run ended, passed or failed, with its evidence */
        DryRunFinished = "dry_run_finished",
        /** `agent_live`: a human took an agent live */ AgentLive = "agent_live",
        /** `agent_decommissioned` */ AgentDecommissioned = "agent_decommissioned",
        /** `agent_scheduled`: a human set or cleared an agent's triggers */
        AgentScheduled = "agent_scheduled",
        /** `skill_pinned`: a human pinned a skill file's hash */ SkillPinned = "skill_pinned",
        /** `run_skills`: the skills (and their hashes) a run's prompt was given */
        RunSkills = "run_skills",
        /** `session_started`: a director's or persistent worker's session began */
        SessionStarted = "session_started",
        /** `session_turn`: a turn of a session began, with the input it was given */
        SessionTurn = "session_turn",
        /** `session_turn_ended`: a session's turn ended; its task waits for the next */
        SessionTurnEnded = "session_turn_ended",
        /** `session_flagged`: a session needs a human (a stalled turn, a budget, a claim) */
        SessionFlagged = "session_flagged",
        /** `session_ended`: a session was stopped, or its task closed */
        SessionEnded = "session_ended",
    }
);

wire_enum!(
    /// Whether an agent may work at all, beside `enabled` (which a human or the daemon
    /// toggles): hired agents wait for a human's approval.
    AgentStatus {
        /** Drafted: signed and dry-run before a human takes it live; never dispatched. */
        Draft = "draft",
        /** Live: may work while its signed manifest matches its configuration. */
        Live = "live",
        /** Hired by an agent; waits for a human's approval; never runs. */
        PendingApproval = "pending_approval",
        /** Its hire was rejected: kept for the record, never runs. */ Terminated = "terminated",
        /** Retired by a human: its history kept, its seat freed, never runs again. */
        Decommissioned = "decommissioned",
    }
);

wire_enum!(
    /// What a budget limits.
    BudgetScope {
        /** A task, with the tasks its runs created. */ Task = "task",
        /** A plan's tasks. */ Plan = "plan",
        /** An agent's runs, per day (UTC). */ Agent = "agent",
    }
);

wire_enum!(
    /// What an approval decides.
    ApprovalKind {
        /** A new agent asked for by an agent (`sfctl agent hire`). */ HireAgent = "hire_agent",
        /** A merge request held for approval. */ MergeRequest = "merge_request",
        /** An approval gate a task awaits. */ Gate = "gate",
        /** A tool call held by the policy. */ ToolCall = "tool_call",
    }
);

wire_enum!(
    /// Where an approval is; `approved`, `rejected` and `cancelled` are final. The legal
    /// moves live in `sf-core`.
    ApprovalStatus {
        /** Waiting for a human. */ Pending = "pending",
        /** A human asked the requester to change it. */ RevisionRequested = "revision_requested",
        /** Approved. */ Approved = "approved",
        /** Rejected. */ Rejected = "rejected",
        /** Withdrawn by its requester (or its subject went away). */ Cancelled = "cancelled",
    }
);

wire_enum!(
    /// What a run is: what the daemon started, and what it does when the run ends.
    RunKind {
        /** An agent working on a task. */ Worker = "worker",
        /** A steward's run (no task of its own). */ Steward = "steward",
        /** A playbook's shell step the daemon runs. */ Shell = "shell",
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
