//! The guard at the daemon's two doors: [`check_request`] for every request the router
//! takes, [`check_spawn`] for every process the launcher would start. Both ask the one
//! decision in `sf_core::guard` and record each denial as an event with the true actor and
//! the rule (`request_denied`, `spawn_denied`); the denial reaches the client as an error
//! of kind `denied` with a stable code.

use serde_json::json;
use sf_core::guard::{
    Action, Actor, Context, Decision, Denial, Policy, PolicyError, SpawnPath, Subject, decide,
};
use sf_proto::{ErrorKind, ProtoError, Request};
use sf_store::{Store, StoreError};

/// The action a request asks for.
pub(crate) fn action_of(req: &Request) -> Action {
    use Request as R;
    match req {
        R::Status
        | R::ListAgents
        | R::ShowAgent { .. }
        | R::AgentEgress { .. }
        | R::ListTasks { .. }
        | R::ShowTask { .. }
        | R::ReadyTasks { .. }
        | R::BlockedTasks { .. }
        | R::ListDeps { .. }
        | R::DepTree { .. }
        | R::ListPlans { .. }
        | R::ShowPlan { .. }
        | R::ListEvents { .. }
        | R::FollowEvents { .. }
        | R::Logs { .. }
        | R::ListMergeRequests
        | R::ShowMergeRequest { .. }
        | R::StewardHistory { .. }
        | R::ListPlaybooks
        | R::ShowPlaybook { .. }
        | R::ValidatePlaybook { .. }
        | R::ListMessages { .. }
        | R::ShowMessage { .. }
        | R::ListAdapters
        | R::ListApprovals { .. }
        | R::ShowApproval { .. }
        | R::AgentToolCalls { .. }
        | R::AgentRuns { .. }
        | R::AgentCard { .. }
        | R::ShowBudgets { .. }
        | R::ListSeats
        | R::ShowSeat { .. }
        | R::ListTemplates
        | R::ShowTemplate { .. }
        | R::DiscoverAgents
        | R::ShowManifest { .. }
        | R::ListDryRuns { .. }
        | R::ListSkills
        | R::ShowSkill { .. }
        | R::ListSessions { .. } => Action::Read,
        R::CreateSeat { .. } | R::UpdateSeat { .. } => Action::ManageSeat,
        // an agent's draft is a hire: `can_create_agents`, and a human's approval
        R::DraftAgent { .. } => Action::HireAgent,
        R::SignManifest { .. } => Action::SignManifest,
        R::DryRun { .. } => Action::DryRun,
        R::GoLive { .. } => Action::GoLive,
        R::Decommission { .. } => Action::Decommission,
        R::PinSkill { .. } => Action::PinSkill,
        R::SetBudget { .. } => Action::SetBudget,
        R::GuardToolCall { .. } => Action::CheckToolCall,
        R::Shutdown => Action::StopDaemon,
        R::ReloadConfig => Action::ReloadConfig,
        R::Gc { .. } => Action::Gc,
        R::EmitEvent { .. } => Action::EmitEvent,
        R::RegisterAgent { .. } => Action::RegisterAgent,
        R::UpdateAgent { patch, .. } if patch.changes_schedule() => Action::ChangeSchedule,
        R::UpdateAgent { .. } => Action::UpdateAgent,
        R::RemoveAgent { .. } => Action::RemoveAgent,
        R::SetAgentEnabled { .. } => Action::EnableAgent,
        R::SetAgentPermissions { .. } => Action::SetPermissions,
        R::HireAgent { .. } => Action::HireAgent,
        R::AgentConfigs { .. } => Action::ShowAgentConfig,
        R::StartAgent { .. } => Action::StartAgent,
        R::StopAgent { .. } => Action::StopAgent,
        R::RunSteward { .. } => Action::RunSteward,
        R::CreateTask { .. } => Action::CreateTask,
        // re-prioritising is a grant of its own only when the priority is all that changes
        R::UpdateTask { patch, .. }
            if patch.priority.is_some()
                && *patch
                    == sf_proto::TaskPatch {
                        priority: patch.priority,
                        ..sf_proto::TaskPatch::default()
                    } =>
        {
            Action::Reprioritize
        }
        R::UpdateTask { .. } => Action::UpdateTask,
        R::ChangeTaskStatus { .. } => Action::ChangeTaskStatus,
        R::CompleteTask { .. } => Action::CompleteTask,
        R::HandoffTask { .. } => Action::HandoffTask,
        R::PushBranch { .. } => Action::Push,
        R::AddDep { .. } => Action::AddDep,
        R::RemoveDep { .. } => Action::RemoveDep,
        R::ApproveGate { .. } => Action::ApproveGate,
        R::SatisfyGate { .. } => Action::SatisfyGate,
        R::CreatePlan { .. } => Action::CreatePlan,
        R::ActivatePlan { .. } => Action::ActivatePlan,
        R::CancelPlan { .. } => Action::CancelPlan,
        R::RunPlaybook { .. } => Action::RunPlaybook,
        R::SendMessage { .. } => Action::SendMessage,
        R::ReadMessages { .. } => Action::ReadMessages,
        R::Merge { .. } => Action::Merge,
        R::RetryMergeRequest { .. } => Action::RetryMergeRequest,
        R::ApproveMergeRequest { .. } => Action::ApproveMergeRequest,
        R::CancelMergeRequest { .. } => Action::CancelMergeRequest,
        R::DecideApproval { .. } => Action::DecideApproval,
        R::RequestRevision { .. } => Action::RequestRevision,
        R::CommentApproval { .. } => Action::CommentApproval,
        R::ResubmitApproval { .. } => Action::ResubmitApproval,
        R::CancelApproval { .. } => Action::CancelApproval,
    }
}

/// Whose the subject of a request is: an agent's name, `human:…`, or empty.
fn owner_of(store: &Store, req: &Request) -> Result<Option<String>, StoreError> {
    use Request as R;
    Ok(match req {
        R::UpdateTask { id, .. } | R::ChangeTaskStatus { id, .. } => Some(store.task_owner(id)?),
        R::RemoveDep {
            blocked: Some(b), ..
        } => Some(store.task_owner(b)?),
        R::RemoveDep { dep: Some(d), .. } => Some(store.dep_owner(*d)?),
        R::RetryMergeRequest { id } | R::CancelMergeRequest { id } => Some(store.mr_owner(*id)?),
        R::Merge { branch, .. } => Some(
            branch
                .strip_prefix("agent/")
                .and_then(|b| b.split_once('/'))
                .map(|(agent, _)| agent.to_owned())
                .unwrap_or_default(),
        ),
        _ => None,
    })
}

/// The approval a request moves, for the requester-only moves.
fn approval_of(req: &Request) -> Option<i64> {
    match req {
        Request::ResubmitApproval { id, .. } | Request::CancelApproval { id } => Some(*id),
        _ => None,
    }
}

/// The denial as the client gets it.
pub(crate) fn denied(d: &Denial, requires_approval: bool) -> ProtoError {
    let mut e = ProtoError::new(ErrorKind::Denied, d.reason.clone())
        .with_hint(d.hint.clone())
        .with_code(d.code.as_str());
    e.requires_approval = requires_approval;
    e
}

/// Decides one request on the store thread. Humans and the daemon pass at once (but for
/// the requester-only moves on an approval); an agent's context and the subject's owner
/// are read first. A denial is recorded as `request_denied` and returned as the error.
pub(crate) fn check_request(
    store: &mut Store,
    config: &crate::Config,
    actor: &str,
    req: &Request,
) -> Result<(), StoreError> {
    let policy = config.policy.as_ref();
    let mut action = action_of(req);
    let who = Actor::parse(actor);
    // removing a gate opens it: the same decision as satisfying it
    if let Request::RemoveDep { dep: Some(d), .. } = req
        && store.dep_is_gate(*d)?
    {
        action = Action::SatisfyGate;
    }
    let approval = approval_of(req);
    if !matches!(who, Actor::Agent(_)) && approval.is_none() {
        return Ok(());
    }
    if matches!(who, Actor::Agent(_)) && action.is_read() {
        return Ok(());
    }
    let requester = match approval {
        Some(id) => Some(store.approval_requester(id)?),
        None => None,
    };
    let spec = match who {
        Actor::Agent(name) => store.agent_spec(name)?,
        _ => None,
    };
    let owner = if matches!(who, Actor::Agent(_)) {
        owner_of(store, req)?
    } else {
        None
    };
    let grants = match (req, &spec) {
        (Request::HireAgent { spec: hired }, Some(hirer)) => beyond(hired, hirer),
        (Request::HireAgent { spec: hired }, None) => {
            beyond(hired, &sf_proto::AgentSpec::default())
        }
        _ => None,
    };
    let ctx = Context {
        role: spec.as_ref().map(|s| s.role),
        capabilities: spec.as_ref().map_or(&[], |s| s.capabilities.as_slice()),
        can_create_agents: spec
            .as_ref()
            .is_some_and(sf_proto::AgentSpec::can_create_agents),
        hire_needs_approval: config.require_approval_for_new_agents,
        hire_grants: grants.as_deref(),
    };
    let subject = Subject {
        owner: owner.as_deref(),
        requester: requester.as_deref(),
        agent: None,
    };
    match decide(policy, who, action, &subject, &ctx) {
        Decision::Allow | Decision::NeedsApproval(_) => Ok(()),
        Decision::Deny(d) => {
            let request = serde_json::to_value(req)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
                .unwrap_or_default();
            let data = json!({
                "action": action.name(),
                "request": request,
                "code": d.code.as_str(),
                "rule": d.rule,
                "owner": owner,
            });
            store.record_denial(
                actor,
                false,
                &format!("action:{}", action.name()),
                &data,
                &d.reason,
            )?;
            Err(StoreError::Denied(denied(&d, false)))
        }
    }
}

/// What a hired agent's spec grants beyond what its hirer holds, in words.
fn beyond(hired: &sf_proto::AgentSpec, hirer: &sf_proto::AgentSpec) -> Option<String> {
    let mut more: Vec<String> = hired
        .capabilities
        .iter()
        .filter(|c| !hirer.capabilities.contains(c))
        .map(|c| format!("the capability `{c}`"))
        .chain(
            hired
                .secrets
                .iter()
                .filter(|s| !hirer.secrets.contains(s))
                .map(|s| format!("the secret `{s}`")),
        )
        .collect();
    if hired.permissions.can_create_agents == Some(true) && !hirer.can_create_agents() {
        more.push("`can_create_agents`".to_owned());
    }
    // a role's grants (a steward's `task.others`, a director's plans) and a schedule are
    // more than a worker holds; an unguarded `command` adapter escapes the tool rules
    if hired.role != sf_proto::Role::Worker && hired.role != hirer.role {
        more.push(format!("the role `{}`", hired.role));
    }
    if !hired.triggers.is_empty() || !hired.on.is_empty() {
        more.push("a schedule (triggers)".to_owned());
    }
    if hired.playbook.is_some() {
        more.push("a playbook to run".to_owned());
    }
    if !sf_worker::adapters::guarded(hired.adapter) && sf_worker::adapters::guarded(hirer.adapter) {
        more.push(format!("the unguarded `{}` adapter", hired.adapter));
    }
    (!more.is_empty()).then(|| more.join(", "))
}

/// What a hire grants beyond its hirer, for the approval a human reads (public to the
/// router).
pub(crate) fn hire_grants(
    hired: &sf_proto::AgentSpec,
    hirer: Option<&sf_proto::AgentSpec>,
) -> Option<String> {
    beyond(hired, hirer.unwrap_or(&sf_proto::AgentSpec::default()))
}

/// Decides one spawn: `Err` with the denial when the policy is unusable or a spawn rule
/// matches. Pure; the caller records it ([`record_spawn_denial`]).
pub(crate) fn check_spawn(
    policy: Result<&Policy, &PolicyError>,
    path: SpawnPath,
    agent: &str,
) -> Result<(), Denial> {
    let subject = Subject {
        agent: Some(agent),
        ..Subject::default()
    };
    match decide(
        policy,
        Actor::Daemon,
        Action::Spawn(path),
        &subject,
        &Context::default(),
    ) {
        Decision::Deny(d) => Err(d),
        _ => Ok(()),
    }
}

/// Records a refused spawn (`spawn_denied`, actor: who asked for it).
pub(crate) fn record_spawn_denial(
    store: &mut Store,
    actor: &str,
    path: SpawnPath,
    agent: &str,
    d: &Denial,
) -> Result<(), StoreError> {
    let data = json!({
        "agent": agent,
        "path": path.as_str(),
        "code": d.code.as_str(),
        "rule": d.rule,
    });
    store.record_denial(actor, true, &format!("agent:{agent}"), &data, &d.reason)
}
