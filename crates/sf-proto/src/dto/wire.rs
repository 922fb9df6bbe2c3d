//! The requests and responses themselves.

use super::*;

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
        /// Only denials (`request_denied`, `spawn_denied`, `egress_denied`).
        #[serde(default)]
        denied: bool,
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
    /// A worker pushes its task's branch to a remote (`sfctl push`): sfd pushes
    /// `refs/heads/B:refs/heads/B` with the user's credentials, which the worker never
    /// holds. Needs the agent's `push` capability; carries the worker's lease token.
    PushBranch {
        /// The lease token.
        token: String,
        /// The remote (default: `[merge] remote` of config.toml, `origin`).
        #[serde(default)]
        remote: Option<String>,
    },
    /// Start a worker by hand, through the same checks as dispatch.
    StartAgent {
        /// The agent.
        name: String,
        /// A specific task (id or prefix); default: the first ready task it can take.
        #[serde(default)]
        task: Option<String>,
        /// A session of the agent's CLI to continue (`--resume`): a worker's on `task`; a
        /// director's or persistent worker's new session continues it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
    },
    /// A director's or persistent worker's sessions, newest first.
    ListSessions {
        /// The agent.
        name: String,
    },
    /// Stop an agent's running workers (their work is saved and their tasks return to the
    /// pool) and disable it.
    StopAgent {
        /// The agent.
        name: String,
    },
    /// An agent's connections through the egress proxy, newest first.
    AgentEgress {
        /// The agent.
        name: String,
        /// Only this run's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<i64>,
        /// At most this many (default 50).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
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
        id: MergeRequestId,
    },
    /// Queue a waiting or failed merge request again.
    RetryMergeRequest {
        /// Its id.
        id: MergeRequestId,
    },
    /// Approve a merge request held by `require_approval`.
    ApproveMergeRequest {
        /// Its id.
        id: MergeRequestId,
        /// Who approves.
        approver: String,
    },
    /// Cancel a merge request.
    CancelMergeRequest {
        /// Its id.
        id: MergeRequestId,
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
        id: MessageId,
    },
    /// Mark messages read.
    ReadMessages {
        /// Their ids.
        ids: Vec<MessageId>,
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
    /// An agent asks for a new agent (`sfctl agent hire`): created `pending_approval` with
    /// a `hire_agent` approval, or ready at once without `require_approval_for_new_agents`.
    HireAgent {
        /// The requested configuration.
        spec: AgentSpec,
    },
    /// Change a registered agent's fields (human-only).
    UpdateAgent {
        /// Its name.
        name: String,
        /// What changes.
        patch: AgentPatch,
    },
    /// Change an agent's permissions (human-only).
    SetAgentPermissions {
        /// Its name.
        name: String,
        /// May hire agents; `None` leaves it.
        #[serde(default)]
        can_create_agents: Option<bool>,
    },
    /// Full configurations, redacted: one agent, or all.
    AgentConfigs {
        /// One agent; `None`: all.
        #[serde(default)]
        name: Option<String>,
    },
    /// The adapters and their configuration fields.
    ListAdapters,
    /// Create a seat (human-only).
    CreateSeat {
        /// The seat.
        seat: NewSeat,
    },
    /// Every seat.
    ListSeats,
    /// One seat.
    ShowSeat {
        /// Its name.
        name: String,
    },
    /// Change a seat's charter or stewards (human-only).
    UpdateSeat {
        /// Its name.
        name: String,
        /// The new charter; `None` keeps it.
        #[serde(default)]
        charter: Option<Charter>,
        /// Stewards to add.
        #[serde(default)]
        add_stewards: Vec<String>,
        /// Stewards to remove (never the last).
        #[serde(default)]
        remove_stewards: Vec<String>,
    },
    /// The templates (built in and `.sf/templates/`).
    ListTemplates,
    /// One template.
    ShowTemplate {
        /// Its name.
        name: String,
    },
    /// Draft an agent (from a template, a spec, or a definition found in the repository):
    /// a human's draft waits to be signed, dry-run and taken live; an agent's is a hire.
    DraftAgent {
        /// The spec (from a template: its name, seat and the flags given override it).
        spec: AgentSpec,
        /// The template it starts from.
        #[serde(default)]
        template: Option<String>,
        /// A definition found by `DiscoverAgents`, by name, it starts from instead.
        #[serde(default)]
        import: Option<String>,
    },
    /// Agent definitions in the repository that are not registered.
    DiscoverAgents,
    /// An agent's permission manifest.
    ShowManifest {
        /// The agent.
        name: String,
    },
    /// Sign an agent's manifest as it is now (human-only).
    SignManifest {
        /// The agent.
        name: String,
    },
    /// Run a signed agent once on a sample or given task, with no secrets, push or merge,
    /// and keep the evidence.
    DryRun {
        /// The agent.
        name: String,
        /// The task (default: its template's sample task).
        #[serde(default)]
        task: Option<String>,
    },
    /// An agent's dry runs, newest first.
    ListDryRuns {
        /// The agent.
        name: String,
    },
    /// Take a draft live (human-only).
    GoLive {
        /// The agent.
        name: String,
    },
    /// Retire an agent for good (human-only).
    Decommission {
        /// The agent.
        name: String,
    },
    /// The skills (built in and `.sf/skills/`).
    ListSkills,
    /// One skill with its text.
    ShowSkill {
        /// Its name.
        name: String,
    },
    /// Pin a skill's hash as it is now (human-only).
    PinSkill {
        /// Its name.
        name: String,
    },
    /// Approvals, newest first.
    ListApprovals {
        /// Only in this status.
        #[serde(default)]
        status: Option<ApprovalStatus>,
    },
    /// One approval with its comments and history.
    ShowApproval {
        /// Its id.
        id: i64,
    },
    /// Comment on an approval.
    CommentApproval {
        /// Its id.
        id: i64,
        /// The comment.
        text: String,
    },
    /// A human approves or rejects.
    DecideApproval {
        /// Its id.
        id: i64,
        /// Approve (else reject).
        approve: bool,
        /// Why.
        #[serde(default)]
        note: Option<String>,
    },
    /// A human asks the requester to change it.
    RequestRevision {
        /// Its id.
        id: i64,
        /// What to change.
        note: String,
    },
    /// The requester resubmits after a revision was asked for, with changes.
    ResubmitApproval {
        /// Its id.
        id: i64,
        /// For a hire: the changed fields of the requested agent.
        #[serde(default)]
        patch: AgentPatch,
        /// What changed.
        #[serde(default)]
        note: Option<String>,
    },
    /// The requester withdraws it.
    CancelApproval {
        /// Its id.
        id: i64,
    },
    /// A run's CLI is about to make a tool call (`sfctl guard check`, from its hook): allow
    /// or deny, recorded in the ledger; a held call is answered once a human decides.
    GuardToolCall {
        /// The run's lease token (`SF_RUN`).
        token: String,
        /// `hook` for a CLI's pre-call hook.
        source: String,
        /// The tool, in Claude Code's names.
        tool: String,
        /// The CLI's id of the call.
        #[serde(default)]
        call_id: Option<String>,
        /// The tool's input.
        #[serde(default)]
        input: serde_json::Value,
    },
    /// An agent's tool calls, newest first.
    AgentToolCalls {
        /// The agent.
        name: String,
        /// Only this run's.
        #[serde(default)]
        run: Option<i64>,
        /// Only held calls.
        #[serde(default)]
        held_only: bool,
        /// Only denied calls.
        #[serde(default)]
        denied_only: bool,
        /// At most this many.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// An agent's runs with their ledger counts, newest first.
    AgentRuns {
        /// The agent.
        name: String,
        /// At most this many.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// An agent's Trust Card.
    AgentCard {
        /// The agent.
        name: String,
    },
    /// Sets (or changes) a budget's limits (a human's decision).
    SetBudget {
        /// What it limits.
        scope: BudgetScope,
        /// The task id, plan id or agent name.
        subject: String,
        /// The limits to set; `None` fields keep their value.
        limits: BudgetLimits,
    },
    /// Budgets and their use.
    ShowBudgets {
        /// Only this scope.
        #[serde(default)]
        scope: Option<BudgetScope>,
        /// Only this subject.
        #[serde(default)]
        subject: Option<String>,
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
    /// A branch reached its remote.
    Pushed(PushInfo),
    /// One agent.
    Agent(AgentDetail),
    /// Agents.
    Agents(Vec<AgentSummary>),
    /// Connections through the egress proxy, newest first.
    Egress(Vec<EgressRecord>),
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
    /// Agents' configurations, redacted.
    AgentConfigs(Vec<AgentConfig>),
    /// The adapters.
    Adapters(Vec<AdapterInfo>),
    /// One approval.
    Approval(Box<ApprovalDetail>),
    /// Approvals.
    Approvals(Vec<ApprovalInfo>),
    /// A guard check's answer.
    ToolAnswer(ToolAnswer),
    /// Tool calls.
    ToolCalls(Vec<ToolCallRecord>),
    /// Runs with their ledger counts.
    AgentRuns(Vec<RunLedger>),
    /// A Trust Card.
    TrustCard(TrustCard),
    /// Budgets.
    Budgets(Vec<BudgetInfo>),
    /// One seat.
    Seat(Box<SeatInfo>),
    /// Seats.
    Seats(Vec<SeatInfo>),
    /// Templates.
    Templates(Vec<TemplateInfo>),
    /// A draft agent and its seat's charter.
    Drafted {
        /// The agent.
        agent: Box<AgentDetail>,
        /// Its seat, with the (draft) charter.
        seat: Option<Box<SeatInfo>>,
    },
    /// Definitions found in the repository.
    Discovered(Vec<Discovered>),
    /// A permission manifest.
    Manifest(Box<Manifest>),
    /// One dry run.
    DryRun(Box<DryRunInfo>),
    /// Dry runs.
    DryRuns(Vec<DryRunInfo>),
    /// Skills.
    Skills(Vec<SkillInfo>),
    /// One session.
    Session(Box<SessionInfo>),
    /// Sessions.
    Sessions(Vec<SessionInfo>),
    /// A refusal.
    Error(ProtoError),
}
