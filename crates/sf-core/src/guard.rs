//! The one guard: who may do what.
//!
//! [`decide`] is a pure function of `(actor, action, subject, context)` and the workspace's
//! [`Policy`] (`.sf/policy.toml`). The daemon's router calls it for every request and its
//! launcher for every spawn, whatever asked for it; nothing starts a process or changes
//! state around it.
//!
//! The table, for an agent (the daemon itself and humans are allowed everything but the
//! requester's own moves on an approval; spawn rules apply to every spawn):
//!
//! | action | an agent may |
//! |---|---|
//! | reads | always |
//! | [human-only](Action::human_only) (agents, grants, approvals, schedules, the daemon) | never: `HUMAN_REQUIRED` |
//! | complete, hand off, push, notes on its own task | yes (push with the `push` capability) |
//! | create tasks and dependencies, send messages as itself | yes |
//! | anything on another agent's task | only if its role is granted `task.others` |
//! | plans, playbooks, re-prioritising | only if its role is granted them (directors by default) |
//! | hire an agent | only with `can_create_agents` (directors by default) |
//! | spawn | when no `[[spawn.deny]]` rule matches and the policy is valid |
//!
//! A missing or invalid policy denies every spawn (`POLICY_MISSING`) and every change an
//! agent asks for; humans can still do everything, so they can repair it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use sf_proto::{Capability, Role};

/// Who asks, parsed from the actor string the daemon recorded for the connection
/// (`human:NAME`, `agent:NAME`, `daemon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// A person at the user's terminal (or any client in the user's own namespace).
    Human(&'a str),
    /// An agent: the kernel said so (a sandboxed run) or the client did.
    Agent(&'a str),
    /// The daemon itself (dispatch, triggers, recovery).
    Daemon,
}

impl<'a> Actor<'a> {
    /// Parses an actor string; anything not `agent:` or the daemon's is a human.
    pub fn parse(s: &'a str) -> Self {
        if let Some(name) = s.strip_prefix("agent:") {
            Actor::Agent(name)
        } else if s == "daemon" || s == "sfd" || s.starts_with("system:") {
            Actor::Daemon
        } else {
            Actor::Human(s.strip_prefix("human:").unwrap_or(s))
        }
    }
}

/// How a spawn was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpawnPath {
    /// The dispatch loop gave a ready task to an idle worker.
    Dispatch,
    /// `sfctl agent start`.
    Start,
    /// A steward's cron trigger.
    Cron,
    /// A steward's event trigger.
    Event,
    /// `sfctl steward run`.
    Manual,
    /// A playbook's shell step.
    Playbook,
    /// An on-demand run (`sfctl agent run-now`, a triage run).
    OnDemand,
}

impl SpawnPath {
    /// Every path, for listings and tests.
    pub const ALL: [Self; 7] = [
        Self::Dispatch,
        Self::Start,
        Self::Cron,
        Self::Event,
        Self::Manual,
        Self::Playbook,
        Self::OnDemand,
    ];

    /// Its name in the policy and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dispatch => "dispatch",
            Self::Start => "start",
            Self::Cron => "cron",
            Self::Event => "event",
            Self::Manual => "manual",
            Self::Playbook => "playbook",
            Self::OnDemand => "on-demand",
        }
    }

    /// The path a steward trigger name (`cron:…`, `event:…`, `manual`) stands for.
    pub fn of_trigger(trigger: &str) -> Self {
        if trigger.starts_with("cron") {
            Self::Cron
        } else if trigger.starts_with("event") {
            Self::Event
        } else {
            Self::Manual
        }
    }
}

impl fmt::Display for SpawnPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! actions {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        /// What is asked. Each has a stable name (`agent.register`), used in policy grants,
        /// denial events and `sfctl events --denied`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $( $(#[$doc])* $variant, )*
            /// Start a process for an agent.
            Spawn(SpawnPath),
        }

        impl Action {
            /// Every request action (spawns aside).
            pub const REQUESTS: &'static [Action] = &[$(Action::$variant,)*];

            /// Its stable name.
            pub fn name(self) -> &'static str {
                match self {
                    $( Action::$variant => $name, )*
                    Action::Spawn(_) => "spawn",
                }
            }

            /// The action named `name`, for policy grants.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $name => Some(Action::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    /// Anything that only reads (lists, shows, logs, events, status).
    Read = "read",
    /// `daemon stop` and `daemon restart`.
    StopDaemon = "daemon.stop",
    /// `daemon reload`: applies the config and the policy.
    ReloadConfig = "daemon.reload",
    /// `gc`: removes finished work's worktrees and branches.
    Gc = "gc",
    /// Emit a custom event (which may fire stewards).
    EmitEvent = "event.emit",
    /// Register an agent.
    RegisterAgent = "agent.register",
    /// Change a registered agent's fields.
    UpdateAgent = "agent.update",
    /// Remove an agent.
    RemoveAgent = "agent.remove",
    /// Enable or disable an agent.
    EnableAgent = "agent.enable",
    /// Change an agent's permissions.
    SetPermissions = "agent.permissions",
    /// Ask for a new agent, to be approved by a human.
    HireAgent = "agent.hire",
    /// Read agents' full configurations (redacted).
    ShowAgentConfig = "agent.config",
    /// Start an agent's run by hand.
    StartAgent = "agent.start",
    /// Stop an agent (disables it and stops its runs).
    StopAgent = "agent.stop",
    /// Fire a steward by hand.
    RunSteward = "steward.run",
    /// Create a task.
    CreateTask = "task.create",
    /// Edit a task's fields or add a note.
    UpdateTask = "task.update",
    /// Change a task's priority.
    Reprioritize = "task.reprioritize",
    /// Change a task's status (close, reopen, block, defer).
    ChangeTaskStatus = "task.status",
    /// Complete the task of one's lease.
    CompleteTask = "task.complete",
    /// Hand off the task of one's lease.
    HandoffTask = "task.handoff",
    /// Push one's branch.
    Push = "push",
    /// Add a dependency.
    AddDep = "dep.add",
    /// Remove a dependency.
    RemoveDep = "dep.remove",
    /// Approve an approval gate.
    ApproveGate = "gate.approve",
    /// Satisfy an external gate.
    SatisfyGate = "gate.satisfy",
    /// Create a plan.
    CreatePlan = "plan.create",
    /// Activate a plan.
    ActivatePlan = "plan.activate",
    /// Cancel a plan.
    CancelPlan = "plan.cancel",
    /// Instantiate a playbook into a workflow.
    RunPlaybook = "playbook.run",
    /// Send a message as oneself.
    SendMessage = "message.send",
    /// Mark messages read.
    ReadMessages = "message.read",
    /// Queue a branch for merging.
    Merge = "merge",
    /// Queue a failed merge request again.
    RetryMergeRequest = "mr.retry",
    /// Approve a merge request.
    ApproveMergeRequest = "mr.approve",
    /// Cancel a merge request.
    CancelMergeRequest = "mr.cancel",
    /// Approve or reject an approval.
    DecideApproval = "approval.decide",
    /// Ask the requester of an approval for a revision.
    RequestRevision = "approval.request-revision",
    /// Comment on an approval.
    CommentApproval = "approval.comment",
    /// Resubmit one's approval after a revision was asked for.
    ResubmitApproval = "approval.resubmit",
    /// Cancel one's own approval request.
    CancelApproval = "approval.cancel",
    /// Change a steward's schedule (its triggers).
    ChangeSchedule = "agent.schedule",
    /// Ask the guard about one of one's own run's tool calls (the lease is checked).
    CheckToolCall = "tool.check",
    /// Set a budget's limits.
    SetBudget = "budget.set",
    /// Create a seat, or change its charter or stewards.
    ManageSeat = "seat.manage",
    /// Draft an agent (an agent's draft is a hire).
    DraftAgent = "agent.draft",
    /// Sign an agent's permission manifest.
    SignManifest = "manifest.sign",
    /// Dry-run a signed agent (no secrets, push or merge).
    DryRun = "agent.dry-run",
    /// Take a draft live.
    GoLive = "agent.go-live",
    /// Retire an agent for good.
    Decommission = "agent.decommission",
    /// Pin a skill's hash.
    PinSkill = "skill.pin",
}

/// What is durable and decided by a person: an agent asking gets `HUMAN_REQUIRED`, and no
/// policy grant changes that.
impl Action {
    /// Whether only a human may do it.
    pub fn human_only(self) -> bool {
        matches!(
            self,
            Self::StopDaemon
                | Self::ReloadConfig
                | Self::Gc
                | Self::RegisterAgent
                | Self::UpdateAgent
                | Self::RemoveAgent
                | Self::EnableAgent
                | Self::SetPermissions
                | Self::StopAgent
                | Self::ApproveGate
                | Self::SatisfyGate
                | Self::ApproveMergeRequest
                | Self::DecideApproval
                | Self::RequestRevision
                | Self::ChangeSchedule
                | Self::ManageSeat
                | Self::SignManifest
                | Self::GoLive
                | Self::Decommission
                | Self::PinSkill
        )
    }

    /// Whether it changes nothing.
    pub fn is_read(self) -> bool {
        self == Self::Read
    }
}

/// A stable, machine-readable reason for a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Only a human may decide that.
    HumanRequired,
    /// The actor lacks the permission (`can_create_agents`, a role grant, its own task).
    PermissionDenied,
    /// The agent lacks the capability (`push`).
    CapabilityRequired,
    /// `.sf/policy.toml` is missing or invalid.
    PolicyMissing,
    /// A rule of the policy denies it.
    PolicyDenied,
    /// Only the requester of an approval may do that.
    NotRequester,
    /// A budget the work is charged to ran out.
    BudgetExhausted,
    /// The agent is not live (a draft, a pending hire, decommissioned): it never runs.
    AgentNotLive,
    /// The agent's permission manifest changed since a human signed it.
    ManifestUnsigned,
    /// A pinned skill's file no longer matches its hash.
    SkillHashMismatch,
    /// A step that must come first has not (a dry run before the manifest is signed).
    CommandPreconditionFailed,
}

impl Code {
    /// Its spelling on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HumanRequired => "HUMAN_REQUIRED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::CapabilityRequired => "CAPABILITY_REQUIRED",
            Self::PolicyMissing => "POLICY_MISSING",
            Self::PolicyDenied => "POLICY_DENIED",
            Self::NotRequester => "NOT_REQUESTER",
            Self::BudgetExhausted => "BUDGET_EXHAUSTED",
            Self::AgentNotLive => "AGENT_NOT_LIVE",
            Self::ManifestUnsigned => "MANIFEST_UNSIGNED",
            Self::SkillHashMismatch => "SKILL_HASH_MISMATCH",
            Self::CommandPreconditionFailed => "COMMAND_PRECONDITION_FAILED",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the code, what was refused and why, what to do, and the rule that decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The stable code.
    pub code: Code,
    /// What was refused and why, a lowercase fragment.
    pub reason: String,
    /// What to do about it.
    pub hint: String,
    /// The rule that decided (`human-only`, `roles.worker`, `spawn.deny[2]`, `policy`).
    pub rule: String,
}

/// What kind of approval a request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalKind {
    /// A new agent asked for by an agent.
    HireAgent,
}

/// The guard's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused.
    Deny(Denial),
    /// Allowed once a human approves; the request creates the approval.
    NeedsApproval(ApprovalKind),
}

impl Decision {
    /// Whether it is [`Decision::Allow`].
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow)
    }
}

/// What the action is about, as far as the guard needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject<'a> {
    /// The agent the subject (a task, a merge request, a branch) belongs to: its assignee
    /// or owner; `None` when it belongs to none.
    pub owner: Option<&'a str>,
    /// For an approval: who asked for it.
    pub requester: Option<&'a str>,
    /// For a spawn: the agent to start.
    pub agent: Option<&'a str>,
}

/// What the guard knows of the acting agent (empty for humans and the daemon).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context<'a> {
    /// The acting agent's orchestration role; `None` when it is not registered.
    pub role: Option<Role>,
    /// Its capabilities.
    pub capabilities: &'a [Capability],
    /// Whether it may hire agents.
    pub can_create_agents: bool,
    /// For a hire: whether new agents wait for a human's approval
    /// (`require_approval_for_new_agents`).
    pub hire_needs_approval: bool,
    /// For a hire: what it would grant that the hirer does not hold itself (capabilities,
    /// secrets, permissions), in words; granting is a human's decision.
    pub hire_grants: Option<&'a str>,
}

/// `.sf/policy.toml`, parsed and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// What each role may do beyond the defaults, by role.
    pub grants: BTreeMap<Role, Vec<Grant>>,
    /// Spawn rules, in file order; the first that matches denies.
    pub spawn_deny: Vec<SpawnRule>,
    /// What each tool call is answered (`[tools]`).
    pub tools: crate::tools::ToolRules,
    /// The skills each job role's agents must have (`[skills.required]`).
    pub required_skills: BTreeMap<sf_proto::JobRole, Vec<String>>,
}

/// A grant to a role: an action, or `task.others` (anything on another agent's task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// One action.
    Action(Action),
    /// Acting on tasks (and their merge requests) that belong to other agents.
    OthersTasks,
}

/// One `[[spawn.deny]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRule {
    /// The agent it applies to, or `*`.
    pub agent: String,
    /// The path it applies to, or `None` for every path.
    pub path: Option<SpawnPath>,
    /// Why, shown in the denial.
    pub reason: Option<String>,
}

/// A policy that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No file.
    #[error("{path} does not exist")]
    Missing {
        /// Where it was looked for.
        path: String,
    },
    /// Not valid TOML or not a valid policy.
    #[error("{path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with line and column when known.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: u32,
    #[serde(default)]
    roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    spawn: RawSpawn,
    #[serde(default)]
    tools: crate::tools::RawTools,
    #[serde(default)]
    skills: RawSkills,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSkills {
    #[serde(default)]
    required: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    allow: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSpawn {
    #[serde(default)]
    deny: Vec<RawSpawnRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpawnRule {
    #[serde(default = "star")]
    agent: String,
    #[serde(default = "star")]
    path: String,
    #[serde(default)]
    reason: Option<String>,
}

fn star() -> String {
    "*".to_owned()
}

impl Policy {
    /// Parses the text of `path`. Unknown keys, unknown roles, actions and paths, and
    /// grants of human-only actions are errors, with line and column where TOML gives them.
    pub fn parse(text: &str, path: &str) -> Result<Self, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let place = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}: ")
                })
                .unwrap_or_default();
            invalid(format!("{place}{}", e.message()))
        })?;
        if raw.version != 1 {
            return Err(invalid(format!(
                "version {} is not known; this sfd reads version 1",
                raw.version
            )));
        }
        let mut grants = BTreeMap::new();
        for (role, r) in raw.roles {
            let role: Role = role.parse().map_err(|_| {
                invalid(format!(
                    "[roles.{role}]: no such role (director, worker, steward)"
                ))
            })?;
            let mut list = Vec::new();
            for name in r.allow {
                let grant = if name == "task.others" {
                    Grant::OthersTasks
                } else {
                    match Action::from_name(&name) {
                        Some(a) if a.human_only() => {
                            return Err(invalid(format!(
                                "[roles.{role}] allows `{name}`, a human-only decision; \
                                 no policy grants it to agents"
                            )));
                        }
                        Some(a) => Grant::Action(a),
                        None => {
                            return Err(invalid(format!(
                                "[roles.{role}] allows `{name}`: no such action (see \
                                 the comments of the policy sfctl init writes)"
                            )));
                        }
                    }
                };
                list.push(grant);
            }
            grants.insert(role, list);
        }
        let mut spawn_deny = Vec::new();
        for (i, r) in raw.spawn.deny.into_iter().enumerate() {
            let path = if r.path == "*" {
                None
            } else {
                Some(
                    SpawnPath::ALL
                        .into_iter()
                        .find(|p| p.as_str() == r.path)
                        .ok_or_else(|| {
                            invalid(format!(
                                "spawn.deny[{i}]: path `{}` is not one of *, {}",
                                r.path,
                                SpawnPath::ALL.map(SpawnPath::as_str).join(", ")
                            ))
                        })?,
                )
            };
            spawn_deny.push(SpawnRule {
                agent: r.agent,
                path,
                reason: r.reason,
            });
        }
        let tools = raw.tools.compile().map_err(invalid)?;
        let mut required_skills = BTreeMap::new();
        for (job, skills) in raw.skills.required {
            let j: sf_proto::JobRole = job
                .parse()
                .map_err(|e| invalid(format!("[skills.required] {job}: {e}")))?;
            let skills = crate::naming::normalize_skills(&skills)
                .map_err(|e| invalid(format!("[skills.required] {job}: {e}")))?;
            required_skills.insert(j, skills);
        }
        Ok(Self {
            grants,
            spawn_deny,
            tools,
            required_skills,
        })
    }

    /// The job roles that require skill `name`.
    pub fn required_by(&self, name: &str) -> Vec<sf_proto::JobRole> {
        self.required_skills
            .iter()
            .filter(|(_, s)| s.iter().any(|s| s == name))
            .map(|(j, _)| *j)
            .collect()
    }

    /// The skills an agent's prompt gets: its own, and those its job role requires.
    pub fn skills_for(&self, spec: &sf_proto::AgentSpec) -> Vec<String> {
        let mut out = spec.skills.clone();
        if let Some(req) = self.required_skills.get(&spec.job) {
            out.extend(req.iter().cloned());
        }
        out.sort();
        out.dedup();
        out
    }

    fn grants(&self, role: Option<Role>, grant: Grant) -> bool {
        role.and_then(|r| self.grants.get(&r))
            .is_some_and(|g| g.contains(&grant))
    }
}

fn deny(code: Code, reason: String, hint: impl Into<String>, rule: impl Into<String>) -> Decision {
    Decision::Deny(Denial {
        code,
        reason,
        hint: hint.into(),
        rule: rule.into(),
    })
}

/// Decides one request or spawn. `policy` is `Err` when `.sf/policy.toml` could not be read.
pub fn decide(
    policy: Result<&Policy, &PolicyError>,
    actor: Actor<'_>,
    action: Action,
    subject: &Subject<'_>,
    ctx: &Context<'_>,
) -> Decision {
    if let Action::Spawn(path) = action {
        return decide_spawn(policy, path, subject.agent.unwrap_or(""));
    }
    // the requester's own moves on an approval, for everyone
    if matches!(action, Action::ResubmitApproval | Action::CancelApproval)
        && let Some(requester) = subject.requester
    {
        let me = match actor {
            Actor::Human(h) => format!("human:{h}"),
            Actor::Agent(a) => format!("agent:{a}"),
            Actor::Daemon => "daemon".to_owned(),
        };
        let bare = requester.split_once(':').map_or(requester, |(_, n)| n);
        let same = requester == me
            || matches!(actor, Actor::Human(h) if h == bare && !requester.starts_with("agent:"));
        if !same && actor != Actor::Daemon {
            return deny(
                Code::NotRequester,
                format!(
                    "only its requester ({requester}) may {}",
                    match action {
                        Action::ResubmitApproval => "resubmit it",
                        _ => "cancel it",
                    }
                ),
                "comment on it instead (`sfctl approval comment`)",
                "requester-only",
            );
        }
        return Decision::Allow;
    }
    let agent = match actor {
        Actor::Daemon | Actor::Human(_) => return Decision::Allow,
        Actor::Agent(a) => a,
    };
    if action.is_read() {
        return Decision::Allow;
    }
    if action.human_only() {
        return deny(
            Code::HumanRequired,
            format!(
                "`{}` is a human's decision; agent `{agent}` may not make it",
                action.name()
            ),
            "ask a human: send a message with `sfctl message send --to human`",
            "human-only",
        );
    }
    let policy = match policy {
        Ok(p) => p,
        // a run in flight may still end its work with its lease
        Err(_) if matches!(action, Action::CompleteTask | Action::HandoffTask) => {
            return Decision::Allow;
        }
        Err(e) => {
            return deny(
                Code::PolicyMissing,
                format!("agents may change nothing while the policy is unusable: {e}"),
                "a human restores .sf/policy.toml (`sfctl init` writes the default) and runs `sfctl daemon reload`",
                "policy",
            );
        }
    };
    let role_name = ctx
        .role
        .map_or_else(|| "unregistered".to_owned(), |r| r.to_string());
    let granted = |a: Action| policy.grants(ctx.role, Grant::Action(a));
    let others_allowed = policy.grants(ctx.role, Grant::OthersTasks);
    // a subject whose owner is unknown is not the agent's own (fail closed)
    let own = |subject: &Subject<'_>| subject.owner == Some(agent);
    let not_own = |what: &str| {
        deny(
            Code::PermissionDenied,
            format!(
                "{what} belongs to agent `{}`, not to `{agent}`",
                subject.owner.unwrap_or("?")
            ),
            format!(
                "a {role_name} acts only on its own task unless .sf/policy.toml grants \
                 `task.others` to its role; message its owner instead"
            ),
            format!("roles.{role_name}"),
        )
    };
    match action {
        Action::CreateTask | Action::AddDep | Action::SendMessage | Action::ReadMessages => {
            Decision::Allow
        }
        Action::CommentApproval => Decision::Allow,
        Action::CompleteTask | Action::HandoffTask | Action::CheckToolCall => Decision::Allow,
        Action::Push => {
            if ctx.capabilities.contains(&Capability::Push) {
                Decision::Allow
            } else {
                deny(
                    Code::CapabilityRequired,
                    format!("agent `{agent}` lacks the `push` capability"),
                    "a human grants it with `sfctl agent update NAME --capability push`",
                    "capability:push",
                )
            }
        }
        Action::UpdateTask
        | Action::ChangeTaskStatus
        | Action::RemoveDep
        | Action::RetryMergeRequest
        | Action::CancelMergeRequest
        | Action::Merge => {
            if own(subject) || others_allowed {
                Decision::Allow
            } else {
                not_own(match action {
                    Action::Merge => "that branch",
                    Action::RetryMergeRequest | Action::CancelMergeRequest => "that merge request",
                    Action::RemoveDep => "that dependency's task",
                    _ => "that task",
                })
            }
        }
        Action::HireAgent => {
            if !ctx.can_create_agents {
                deny(
                    Code::PermissionDenied,
                    format!("agent `{agent}` may not hire agents (no `can_create_agents`)"),
                    "a human grants it with `sfctl agent permissions NAME --can-create-agents true`",
                    "permission:can_create_agents",
                )
            } else if ctx.hire_needs_approval {
                Decision::NeedsApproval(ApprovalKind::HireAgent)
            } else if let Some(grants) = ctx.hire_grants {
                deny(
                    Code::HumanRequired,
                    format!(
                        "the hire would grant {grants}, which agent `{agent}` does not hold; \
                         granting is a human's decision"
                    ),
                    "hire without them, or ask a human to register the agent",
                    "human-only",
                )
            } else {
                Decision::Allow
            }
        }
        Action::ShowAgentConfig => {
            if ctx.can_create_agents {
                Decision::Allow
            } else {
                deny(
                    Code::PermissionDenied,
                    format!(
                        "agent `{agent}` may not read agents' configurations (no `can_create_agents`)"
                    ),
                    "only humans and agents that may hire read configurations",
                    "permission:can_create_agents",
                )
            }
        }
        Action::Reprioritize if !own(subject) && !others_allowed && !granted(action) => {
            not_own("that task")
        }
        Action::Reprioritize => Decision::Allow,
        _ if granted(action) => Decision::Allow,
        _ => deny(
            Code::PermissionDenied,
            format!("a {role_name} may not `{}`", action.name()),
            format!(
                "a human may do it, or grant it to the role in [roles.{role_name}] of .sf/policy.toml"
            ),
            format!("roles.{role_name}"),
        ),
    }
}

fn decide_spawn(policy: Result<&Policy, &PolicyError>, path: SpawnPath, agent: &str) -> Decision {
    let policy = match policy {
        Ok(p) => p,
        Err(e) => {
            return deny(
                Code::PolicyMissing,
                format!("no process is started while the policy is unusable: {e}"),
                "restore .sf/policy.toml (`sfctl init` writes the default) and run `sfctl daemon reload`",
                "policy",
            );
        }
    };
    for (i, rule) in policy.spawn_deny.iter().enumerate() {
        let agent_matches = rule.agent == "*" || rule.agent == agent;
        let path_matches = rule.path.is_none_or(|p| p == path);
        if agent_matches && path_matches {
            return deny(
                Code::PolicyDenied,
                format!(
                    "spawning `{agent}` by {path} is denied by spawn.deny[{i}] of .sf/policy.toml{}",
                    rule.reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                "a human edits .sf/policy.toml and runs `sfctl daemon reload`",
                format!("spawn.deny[{i}]"),
            );
        }
    }
    Decision::Allow
}

/// The policy `sfctl init` writes: safe defaults, every setting explained.
pub use sf_proto::DEFAULT_POLICY;

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::parse(DEFAULT_POLICY, "policy.toml").unwrap()
    }

    fn ctx(role: Role) -> Context<'static> {
        Context {
            role: Some(role),
            ..Context::default()
        }
    }

    fn code(d: Decision) -> Option<Code> {
        match d {
            Decision::Deny(d) => Some(d.code),
            _ => None,
        }
    }

    #[test]
    fn agents_never_make_human_decisions_and_no_grant_changes_that() {
        let p = policy();
        for &a in Action::REQUESTS.iter().filter(|a| a.human_only()) {
            let d = decide(
                Ok(&p),
                Actor::Agent("w"),
                a,
                &Subject::default(),
                &ctx(Role::Director),
            );
            assert_eq!(code(d), Some(Code::HumanRequired), "{}", a.name());
            assert!(
                decide(
                    Ok(&p),
                    Actor::Human("alice"),
                    a,
                    &Subject::default(),
                    &Context::default()
                )
                .is_allow()
            );
            let text = format!("version = 1\n[roles.worker]\nallow = [\"{}\"]\n", a.name());
            let e = Policy::parse(&text, "p").unwrap_err();
            assert!(e.to_string().contains("human-only"), "{e}");
        }
    }

    #[test]
    fn an_agent_acts_on_its_own_task_and_not_on_anothers_without_a_grant() {
        let p = policy();
        let mine = Subject {
            owner: Some("w"),
            ..Subject::default()
        };
        let theirs = Subject {
            owner: Some("v"),
            ..Subject::default()
        };
        for a in [
            Action::UpdateTask,
            Action::ChangeTaskStatus,
            Action::CancelMergeRequest,
        ] {
            assert!(decide(Ok(&p), Actor::Agent("w"), a, &mine, &ctx(Role::Worker)).is_allow());
            assert_eq!(
                code(decide(
                    Ok(&p),
                    Actor::Agent("w"),
                    a,
                    &theirs,
                    &ctx(Role::Worker)
                )),
                Some(Code::PermissionDenied)
            );
            // stewards are granted task.others by default
            assert!(decide(Ok(&p), Actor::Agent("s"), a, &theirs, &ctx(Role::Steward)).is_allow());
        }
    }

    #[test]
    fn directors_plan_and_reprioritise_workers_do_not() {
        let p = policy();
        let theirs = Subject {
            owner: Some("v"),
            ..Subject::default()
        };
        for a in [
            Action::CreatePlan,
            Action::ActivatePlan,
            Action::RunPlaybook,
        ] {
            assert!(decide(Ok(&p), Actor::Agent("d"), a, &theirs, &ctx(Role::Director)).is_allow());
            assert_eq!(
                code(decide(
                    Ok(&p),
                    Actor::Agent("w"),
                    a,
                    &theirs,
                    &ctx(Role::Worker)
                )),
                Some(Code::PermissionDenied)
            );
        }
        assert!(
            decide(
                Ok(&p),
                Actor::Agent("d"),
                Action::Reprioritize,
                &theirs,
                &ctx(Role::Director)
            )
            .is_allow()
        );
        assert_eq!(
            code(decide(
                Ok(&p),
                Actor::Agent("w"),
                Action::Reprioritize,
                &theirs,
                &ctx(Role::Worker)
            )),
            Some(Code::PermissionDenied)
        );
    }

    #[test]
    fn everyone_creates_tasks_deps_and_messages_and_reads() {
        let p = policy();
        for a in [
            Action::CreateTask,
            Action::AddDep,
            Action::SendMessage,
            Action::Read,
        ] {
            assert!(
                decide(
                    Ok(&p),
                    Actor::Agent("w"),
                    a,
                    &Subject::default(),
                    &ctx(Role::Worker)
                )
                .is_allow()
            );
        }
    }

    #[test]
    fn hiring_needs_the_permission_and_waits_for_approval_when_configured() {
        let p = policy();
        let s = Subject::default();
        let mut c = ctx(Role::Worker);
        assert_eq!(
            code(decide(Ok(&p), Actor::Agent("w"), Action::HireAgent, &s, &c)),
            Some(Code::PermissionDenied)
        );
        c.can_create_agents = true;
        assert!(decide(Ok(&p), Actor::Agent("w"), Action::HireAgent, &s, &c).is_allow());
        c.hire_grants = Some("the secret API_KEY");
        assert_eq!(
            code(decide(Ok(&p), Actor::Agent("w"), Action::HireAgent, &s, &c)),
            Some(Code::HumanRequired),
            "an agent grants nothing it does not hold without a human"
        );
        c.hire_needs_approval = true;
        assert_eq!(
            decide(Ok(&p), Actor::Agent("w"), Action::HireAgent, &s, &c),
            Decision::NeedsApproval(ApprovalKind::HireAgent)
        );
        assert_eq!(
            code(decide(
                Ok(&p),
                Actor::Agent("w"),
                Action::ShowAgentConfig,
                &s,
                &ctx(Role::Worker)
            )),
            Some(Code::PermissionDenied)
        );
    }

    #[test]
    fn push_needs_the_capability() {
        let p = policy();
        let s = Subject::default();
        assert_eq!(
            code(decide(
                Ok(&p),
                Actor::Agent("w"),
                Action::Push,
                &s,
                &ctx(Role::Worker)
            )),
            Some(Code::CapabilityRequired)
        );
        let caps = [Capability::Push];
        let c = Context {
            capabilities: &caps,
            ..ctx(Role::Worker)
        };
        assert!(decide(Ok(&p), Actor::Agent("w"), Action::Push, &s, &c).is_allow());
    }

    #[test]
    fn only_the_requester_resubmits_or_cancels() {
        let p = policy();
        let s = Subject {
            requester: Some("agent:d"),
            ..Subject::default()
        };
        let c = ctx(Role::Director);
        for a in [Action::ResubmitApproval, Action::CancelApproval] {
            assert!(decide(Ok(&p), Actor::Agent("d"), a, &s, &c).is_allow());
            assert_eq!(
                code(decide(Ok(&p), Actor::Agent("e"), a, &s, &c)),
                Some(Code::NotRequester)
            );
            assert_eq!(
                code(decide(
                    Ok(&p),
                    Actor::Human("alice"),
                    a,
                    &s,
                    &Context::default()
                )),
                Some(Code::NotRequester)
            );
        }
        let mine = Subject {
            requester: Some("human:alice"),
            ..Subject::default()
        };
        assert!(
            decide(
                Ok(&p),
                Actor::Human("alice"),
                Action::CancelApproval,
                &mine,
                &Context::default()
            )
            .is_allow()
        );
    }

    #[test]
    fn a_missing_policy_denies_every_spawn_and_every_agent_change_but_not_humans() {
        let e = PolicyError::Missing {
            path: ".sf/policy.toml".into(),
        };
        for path in SpawnPath::ALL {
            let s = Subject {
                agent: Some("w"),
                ..Subject::default()
            };
            assert_eq!(
                code(decide(
                    Err(&e),
                    Actor::Daemon,
                    Action::Spawn(path),
                    &s,
                    &Context::default()
                )),
                Some(Code::PolicyMissing)
            );
        }
        assert_eq!(
            code(decide(
                Err(&e),
                Actor::Agent("w"),
                Action::CreateTask,
                &Subject::default(),
                &ctx(Role::Worker)
            )),
            Some(Code::PolicyMissing)
        );
        assert!(
            decide(
                Err(&e),
                Actor::Agent("w"),
                Action::Read,
                &Subject::default(),
                &ctx(Role::Worker)
            )
            .is_allow()
        );
        assert!(
            decide(
                Err(&e),
                Actor::Human("a"),
                Action::RegisterAgent,
                &Subject::default(),
                &Context::default()
            )
            .is_allow()
        );
    }

    #[test]
    fn spawn_rules_match_by_agent_and_path_first_match_wins() {
        let p = Policy::parse(
            "version = 1\n[[spawn.deny]]\nagent = \"w\"\npath = \"cron\"\nreason = \"quiet\"\n\
             [[spawn.deny]]\npath = \"on-demand\"\n",
            "p",
        )
        .unwrap();
        let spawn = |agent, path| {
            decide(
                Ok(&p),
                Actor::Daemon,
                Action::Spawn(path),
                &Subject {
                    agent: Some(agent),
                    ..Subject::default()
                },
                &Context::default(),
            )
        };
        match spawn("w", SpawnPath::Cron) {
            Decision::Deny(d) => {
                assert_eq!(d.code, Code::PolicyDenied);
                assert_eq!(d.rule, "spawn.deny[0]");
                assert!(d.reason.contains("quiet"));
            }
            d => panic!("{d:?}"),
        }
        assert!(spawn("w", SpawnPath::Dispatch).is_allow());
        assert!(spawn("v", SpawnPath::Cron).is_allow());
        assert_eq!(
            code(spawn("v", SpawnPath::OnDemand)),
            Some(Code::PolicyDenied)
        );
    }

    #[test]
    fn bad_policies_say_where_and_what() {
        let e = Policy::parse("version = 1\n[roles.worker]\nallow = [\"fly\"]\n", "p").unwrap_err();
        assert!(e.to_string().contains("no such action"), "{e}");
        let e = Policy::parse("version = 1\nbogus = 3\n", "p").unwrap_err();
        assert!(e.to_string().contains("line 2, column 1"), "{e}");
        let e = Policy::parse("version = 1\n[roles.king]\n", "p").unwrap_err();
        assert!(e.to_string().contains("no such role"), "{e}");
        let e = Policy::parse("version = 2\n", "p").unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
        let e = Policy::parse("version = 1\n[[spawn.deny]]\npath = \"fax\"\n", "p").unwrap_err();
        assert!(e.to_string().contains("fax"), "{e}");
        let e = Policy::parse("version = [\n", "p").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn steward_triggers_name_their_spawn_path() {
        assert_eq!(SpawnPath::of_trigger("cron: */5 * * * *"), SpawnPath::Cron);
        assert_eq!(
            SpawnPath::of_trigger("event: task_created"),
            SpawnPath::Event
        );
        assert_eq!(SpawnPath::of_trigger("manual"), SpawnPath::Manual);
    }

    #[test]
    fn actor_strings_parse() {
        assert_eq!(Actor::parse("agent:w"), Actor::Agent("w"));
        assert_eq!(Actor::parse("human:alice"), Actor::Human("alice"));
        assert_eq!(Actor::parse("daemon"), Actor::Daemon);
        assert_eq!(Actor::parse("unknown"), Actor::Human("unknown"));
        for a in Action::REQUESTS {
            assert_eq!(Action::from_name(a.name()), Some(*a));
        }
    }

    #[test]
    fn required_skills_are_per_job_role_and_checked() {
        let text = format!(
            "{}\n[skills.required]\nreviewer = [\"Review\"]\n",
            sf_proto::DEFAULT_POLICY
        );
        let p = Policy::parse(&text, "policy.toml").unwrap();
        let spec = sf_proto::AgentSpec {
            job: sf_proto::JobRole::Reviewer,
            skills: vec!["tdd".into()],
            ..sf_proto::AgentSpec::default()
        };
        assert_eq!(p.skills_for(&spec), ["review", "tdd"]);
        assert_eq!(p.required_by("review"), [sf_proto::JobRole::Reviewer]);
        let bad = format!(
            "{}\n[skills.required]\nboss = []\n",
            sf_proto::DEFAULT_POLICY
        );
        let e = Policy::parse(&bad, "policy.toml").unwrap_err().to_string();
        assert!(e.contains("[skills.required] boss"), "{e}");
    }
}
