//! The router: one exhaustive `match` over [`Request`], each variant to exactly one
//! handler. A handler either runs on the owner (requests that start, stop or wait on
//! something, or read the workspace rather than the store) or is one closure run on the
//! store thread, where a refusal becomes an error response and a panic an internal error
//! that changes nothing ([`crate::requests::on_store_thread`]). This is the one place every
//! request passes: what decides whether a caller may make it goes here.

use sf_core::approval::Move;
use sf_proto::{AgentPatch, ErrorKind, ProtoError, Request, Response};
use sf_store::{Store, StoreError, now_ms};

use super::{Owner, internal};
use crate::mailbox::{Command, Following, Reply};
use crate::requests::check_registration_command;

/// What a dry run's request is answered instead of being carried out: completing or
/// handing off is taken as its run's end (nothing is merged); anything else that changes
/// the workspace but a message is refused with `DRY_RUN`.
fn dry_run_answer(request: &Request) -> Option<Response> {
    match request {
        Request::CompleteTask { .. } | Request::HandoffTask { .. } => Some(ok(
            "dry run: your completion is recorded as evidence; nothing is merged. Exit now.",
        )),
        Request::SendMessage { .. }
        | Request::GuardToolCall { .. }
        | Request::ReadMessages { .. } => None,
        r if crate::guard::action_of(r).is_read() => None,
        _ => Some(Response::Error(
            ProtoError::new(
                ErrorKind::Denied,
                "a dry run changes nothing in the workspace (tasks, merges, pushes, agents)",
            )
            .with_hint("this run is a rehearsal: finish with `sfctl task complete`")
            .with_code("DRY_RUN"),
        )),
    }
}

fn ok(message: impl Into<String>) -> Response {
    Response::Ok {
        message: message.into(),
    }
}

impl Owner {
    /// Routes one request to its handler; returns whether it changed state.
    pub(super) async fn route(&mut self, cmd: Command) -> bool {
        let Command {
            actor,
            request,
            reply,
        } = cmd;
        if let Err(e) = self.guard(&actor, &request).await {
            reply.send(Response::Error(e));
            return true;
        }
        // a session's task is the session's: a turn ends when its CLI stops, never by
        // completing or handing off that task
        if let Some(agent) = actor.strip_prefix("agent:")
            && self
                .workers
                .values()
                .any(|w| w.session.is_some() && w.agent == agent)
            && matches!(
                request,
                Request::CompleteTask { .. } | Request::HandoffTask { .. }
            )
        {
            reply.send(ok(
                "this is a session: your turn ends when you stop; land work with `sfctl merge`, \
                 and wait for the next message",
            ));
            return false;
        }
        // a dry run changes nothing: its completion is evidence, not a merge
        if let Some(agent) = actor.strip_prefix("agent:")
            && self.workers.values().any(|w| w.dry_run && w.agent == agent)
            && let Some(r) = dry_run_answer(&request)
        {
            reply.send(r);
            return false;
        }
        match request {
            // the daemon
            Request::Status => {
                reply.send(self.status().await);
                false
            }
            Request::Shutdown => {
                self.cancel.cancel();
                reply.send(ok("sfd is shutting down"));
                true
            }
            Request::ReloadConfig => answer(reply, self.reload(&actor).await),
            Request::Gc { dry_run } => answer(reply, self.gc(&actor, dry_run).await),
            Request::FollowEvents { since, task } => self.follow(reply, since, task).await,
            Request::ListEvents {
                since,
                task,
                limit,
                denied,
            } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Events(s.list_events_where(
                        since,
                        task.as_deref(),
                        limit,
                        denied,
                    )?))
                })
                .await
            }
            Request::Logs { target } => {
                self.on_store(reply, move |s| Ok(Response::Logs(s.logs(&target)?)))
                    .await
            }
            Request::EmitEvent { name, data } => {
                self.on_store(reply, move |s| {
                    s.emit_event(&actor, &name, &serde_json::to_value(&data)?)?;
                    Ok(ok(format!("emitted `{name}`")))
                })
                .await
            }

            // agents
            Request::RegisterAgent { spec } => {
                if let Err(e) = self.check_registration(&spec).await {
                    reply.send(Response::Error(e));
                    return false;
                }
                let level = self.config.sandbox.describe();
                let live = !self.config.require_dry_run;
                self.on_store(reply, move |s| {
                    check_registration_command(&spec)?;
                    let mut agent = s.register_agent(&actor, spec, live)?;
                    agent.sandbox = Some(level.to_owned());
                    Ok(Response::Agent(redacted(agent)))
                })
                .await
            }
            Request::ListAgents => {
                self.on_store(reply, |s| {
                    let mut agents = s.list_agents()?;
                    for a in &mut agents {
                        a.spec = sf_core::redact::spec(&a.spec);
                    }
                    Ok(Response::Agents(agents))
                })
                .await
            }
            Request::ShowAgent { name } => {
                let level = self.config.sandbox.describe();
                self.on_store(reply, move |s| {
                    let mut agent = s.show_agent(&name)?;
                    agent.sandbox = Some(level.to_owned());
                    Ok(Response::Agent(redacted(agent)))
                })
                .await
            }
            Request::HireAgent { spec } => {
                if let Err(e) = self.check_registration(&spec).await {
                    reply.send(Response::Error(e));
                    return false;
                }
                // an agent's hire waits for a human unless the workspace says otherwise; a
                // human's is a registration
                let needs_approval =
                    self.config.require_approval_for_new_agents && actor.starts_with("agent:");
                let level = self.config.sandbox.describe();
                self.on_store(reply, move |s| {
                    check_registration_command(&spec)?;
                    let hirer = match actor.strip_prefix("agent:") {
                        Some(a) => s.agent_spec(a)?,
                        None => None,
                    };
                    let grants = crate::guard::hire_grants(&spec, hirer.as_ref());
                    let (mut agent, _) =
                        s.hire_agent(&actor, spec, needs_approval, grants.as_deref())?;
                    agent.sandbox = Some(level.to_owned());
                    Ok(Response::Agent(redacted(agent)))
                })
                .await
            }
            Request::UpdateAgent { name, patch } => {
                if let Some(secrets) = &patch.secrets {
                    let probe = sf_proto::AgentSpec {
                        secrets: secrets.clone(),
                        ..sf_proto::AgentSpec::default()
                    };
                    if let Err(e) = self.check_registration(&probe).await {
                        reply.send(Response::Error(e));
                        return false;
                    }
                }
                let level = self.config.sandbox.describe();
                self.on_store(reply, move |s| {
                    // the changed spec is checked before anything is written
                    let mut changed = s.show_agent(&name)?.agent.spec;
                    patch.apply(&mut changed);
                    check_registration_command(&changed)?;
                    let mut agent = s.update_agent(&actor, &name, &patch)?;
                    agent.sandbox = Some(level.to_owned());
                    Ok(Response::Agent(redacted(agent)))
                })
                .await
            }
            Request::SetAgentPermissions {
                name,
                can_create_agents,
            } => {
                self.on_store(reply, move |s| {
                    let agent = s.set_agent_permissions(&actor, &name, can_create_agents)?;
                    Ok(Response::Agent(redacted(agent)))
                })
                .await
            }
            Request::AgentConfigs { name } => {
                self.on_store(reply, move |s| {
                    let agents = match name {
                        Some(n) => vec![s.show_agent(&n)?.agent],
                        None => s.list_agents()?,
                    };
                    Ok(Response::AgentConfigs(
                        agents
                            .into_iter()
                            .map(|a| sf_proto::AgentConfig {
                                can_create_agents: a.spec.can_create_agents(),
                                spec: sf_core::redact::spec(&a.spec),
                                status: a.status,
                                enabled: a.enabled,
                            })
                            .collect(),
                    ))
                })
                .await
            }
            Request::ListAdapters => {
                reply.send(Response::Adapters(sf_worker::adapters::catalogue()));
                false
            }

            // tool calls and the ledger
            Request::GuardToolCall {
                token,
                source,
                tool,
                call_id,
                input,
            } => {
                let ask = super::tools::Ask {
                    token,
                    source,
                    tool,
                    call_id,
                    input,
                };
                self.guard_tool_call(&actor, ask, reply).await
            }
            Request::AgentToolCalls {
                name,
                run,
                held_only,
                denied_only,
                limit,
            } => {
                let limit = limit.unwrap_or(50).clamp(1, 10_000);
                self.on_store(reply, move |s| {
                    Ok(Response::ToolCalls(s.list_tool_calls(
                        &name,
                        run,
                        held_only,
                        denied_only,
                        limit,
                    )?))
                })
                .await
            }
            Request::AgentRuns { name, limit: _ } => {
                self.on_store(reply, move |s| {
                    Ok(Response::AgentRuns(s.agent_runs(&name)?))
                })
                .await
            }
            Request::AgentCard { name } => {
                self.on_store(reply, move |s| {
                    Ok(Response::TrustCard(s.trust_card(&name)?))
                })
                .await
            }

            // budgets
            Request::SetBudget {
                scope,
                subject,
                limits,
            } => {
                let changed = self
                    .on_store(reply, move |s| {
                        Ok(Response::Budgets(vec![
                            s.set_budget(&actor, scope, &subject, &limits)?,
                        ]))
                    })
                    .await;
                self.budgets_exist |= changed;
                changed
            }
            Request::ShowBudgets { scope, subject } => {
                let live = self.live_use.clone();
                self.on_store(reply, move |s| {
                    Ok(Response::Budgets(s.list_budgets(
                        scope,
                        subject.as_deref(),
                        &live,
                    )?))
                })
                .await
            }

            // approvals
            Request::ListApprovals { status } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Approvals(s.list_approvals(status)?))
                })
                .await
            }
            Request::ShowApproval { id } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Approval(Box::new(s.show_approval(id)?)))
                })
                .await
            }
            Request::CommentApproval { id, text } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Approval(Box::new(
                        s.comment_approval(&actor, id, &text)?,
                    )))
                })
                .await
            }
            Request::DecideApproval { id, approve, note } => {
                let m = if approve { Move::Approve } else { Move::Reject };
                self.move_approval(reply, actor, id, m, note, AgentPatch::default())
                    .await
            }
            Request::RequestRevision { id, note } => {
                self.move_approval(
                    reply,
                    actor,
                    id,
                    Move::RequestRevision,
                    Some(note),
                    AgentPatch::default(),
                )
                .await
            }
            Request::ResubmitApproval { id, patch, note } => {
                if let Some(secrets) = &patch.secrets {
                    let probe = sf_proto::AgentSpec {
                        secrets: secrets.clone(),
                        ..sf_proto::AgentSpec::default()
                    };
                    if let Err(e) = self.check_registration(&probe).await {
                        reply.send(Response::Error(e));
                        return false;
                    }
                }
                if patch.command.is_some() || patch.adapter.is_some() {
                    let probe = sf_proto::AgentSpec {
                        adapter: patch.adapter.unwrap_or(sf_proto::Adapter::Command),
                        command: patch.command.clone().filter(|c| !c.is_empty()),
                        ..sf_proto::AgentSpec::default()
                    };
                    if patch.command.as_deref().is_some_and(|c| !c.is_empty())
                        && let Err(e) = check_registration_command(&probe)
                    {
                        reply.send(Response::Error(e.into()));
                        return false;
                    }
                }
                self.move_approval(reply, actor, id, Move::Resubmit, note, patch)
                    .await
            }
            Request::CancelApproval { id } => {
                self.move_approval(reply, actor, id, Move::Cancel, None, AgentPatch::default())
                    .await
            }
            Request::AgentEgress { name, run, limit } => {
                let limit = limit.unwrap_or(50).clamp(1, 10_000);
                self.on_store(reply, move |s| {
                    Ok(Response::Egress(s.list_egress(&name, run, limit)?))
                })
                .await
            }
            Request::SetAgentEnabled { name, enabled } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Agent(
                        s.set_agent_enabled(&actor, &name, enabled)?,
                    ))
                })
                .await
            }
            Request::RemoveAgent { name } => {
                self.on_store(reply, move |s| {
                    s.remove_agent(&actor, &name)?;
                    Ok(ok(format!("removed agent `{name}`")))
                })
                .await
            }
            Request::StartAgent { name, task, resume } => {
                answer(reply, self.start_agent(&actor, name, task, resume).await)
            }
            Request::StopAgent { name } => answer(reply, self.stop_agent(&actor, name).await),
            Request::ListSessions { name } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Sessions(s.list_sessions(&name)?))
                })
                .await
            }
            r @ (Request::CreateSeat { .. }
            | Request::ListSeats
            | Request::ShowSeat { .. }
            | Request::UpdateSeat { .. }
            | Request::ListTemplates
            | Request::ShowTemplate { .. }
            | Request::DraftAgent { .. }
            | Request::DiscoverAgents
            | Request::ShowManifest { .. }
            | Request::SignManifest { .. }
            | Request::DryRun { .. }
            | Request::ListDryRuns { .. }
            | Request::GoLive { .. }
            | Request::Decommission { .. }
            | Request::ListSkills
            | Request::ShowSkill { .. }
            | Request::PinSkill { .. }) => self.route_staffing(actor, r, reply).await,

            // tasks
            Request::CreateTask { task } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Task(Box::new(s.create_task(&actor, task)?)))
                })
                .await
            }
            Request::ListTasks { filter } => {
                self.on_store(reply, move |s| Ok(Response::Tasks(s.list_tasks(&filter)?)))
                    .await
            }
            Request::ShowTask { id } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Task(Box::new(s.show_task(&id)?)))
                })
                .await
            }
            Request::UpdateTask { id, patch } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Task(Box::new(s.update_task(&actor, &id, patch)?)))
                })
                .await
            }
            Request::ChangeTaskStatus {
                id,
                change,
                reason,
                until,
            } => {
                let merging = self.merging;
                self.on_store(reply, move |s| {
                    // a task whose request is in the merge pipeline (picked, not yet
                    // testing) keeps its status until the merge ends
                    if let Some(mr) = merging
                        && matches!(s.mr_is_of_task(mr, &id), Ok(true))
                    {
                        return Err(being_merged(&format!("task {id}"), mr));
                    }
                    let detail = s.change_status(&actor, &id, change, reason.as_deref(), until)?;
                    Ok(Response::Task(Box::new(detail)))
                })
                .await
            }
            Request::ReadyTasks { limit } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Ready(
                        s.ready(now_ms(), limit.map(|l| l as usize))?,
                    ))
                })
                .await
            }
            Request::BlockedTasks { limit } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Waiting(
                        s.waiting(now_ms(), limit.map(|l| l as usize))?,
                    ))
                })
                .await
            }
            Request::CompleteTask {
                token,
                summary,
                no_changes,
            } => {
                self.complete(&actor, token, summary, no_changes, reply)
                    .await
            }
            Request::HandoffTask { token, note } => {
                answer(reply, self.handoff(&actor, token, note).await)
            }
            Request::PushBranch { token, remote } => {
                self.push_branch(&actor, token, remote, reply).await
            }

            // dependencies and gates
            Request::AddDep {
                blocked,
                blocker,
                kind,
                gate,
            } => {
                self.on_store(reply, move |s| {
                    let dep = s.add_dep(&actor, &blocked, blocker.as_deref(), kind, gate)?;
                    Ok(Response::Dep(dep))
                })
                .await
            }
            Request::RemoveDep {
                blocked,
                blocker,
                dep,
            } => {
                self.on_store(reply, move |s| {
                    let dep = s.remove_dep(&actor, blocked.as_deref(), blocker.as_deref(), dep)?;
                    Ok(Response::Dep(dep))
                })
                .await
            }
            Request::ListDeps { id } => {
                self.on_store(reply, move |s| Ok(Response::Deps(s.list_deps(&id)?)))
                    .await
            }
            Request::DepTree { id } => {
                self.on_store(reply, move |s| Ok(Response::DepTree(s.dep_tree(&id)?)))
                    .await
            }
            Request::ApproveGate { dep, approver } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Dep(s.approve_gate(&actor, dep, &approver)?))
                })
                .await
            }
            Request::SatisfyGate { dep } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Dep(s.satisfy_gate(&actor, dep)?))
                })
                .await
            }

            // plans and playbooks
            Request::CreatePlan {
                title,
                description,
                active,
            } => {
                self.on_store(reply, move |s| {
                    let plan = s.create_plan(&actor, &title, &description, active)?;
                    Ok(Response::Plan(plan))
                })
                .await
            }
            Request::ActivatePlan { id } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Plan(s.activate_plan(&actor, &id)?))
                })
                .await
            }
            Request::ListPlans { filter } => {
                self.on_store(reply, move |s| Ok(Response::Plans(s.list_plans(&filter)?)))
                    .await
            }
            Request::ShowPlan { id } => {
                self.on_store(reply, move |s| Ok(Response::Plan(s.show_plan(&id)?)))
                    .await
            }
            Request::CancelPlan { id } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Plan(s.cancel_plan(&actor, &id)?))
                })
                .await
            }
            Request::ListPlaybooks => answer(reply, self.list_playbooks().await),
            Request::ShowPlaybook { name } => answer(reply, self.show_playbook(name).await),
            Request::ValidatePlaybook { source, text } => {
                let r = match sf_core::playbook::Playbook::parse(&text, &source) {
                    Ok(pb) => Response::Playbook(crate::playbooks::info(&pb)),
                    Err(e) => {
                        Response::Error(ProtoError::new(ErrorKind::InvalidInput, e.to_string()))
                    }
                };
                reply.send(r);
                false
            }
            Request::RunPlaybook { name, vars } => {
                answer(reply, self.run_playbook(&actor, &name, &vars).await)
            }

            // stewards
            Request::RunSteward { name, data } => {
                let data = serde_json::to_value(&data).unwrap_or_default();
                let r = self
                    .fire_steward(&actor, &name, "manual".into(), data)
                    .await;
                answer(reply, r)
            }
            Request::StewardHistory { name, limit } => {
                self.on_store(reply, move |s| {
                    Ok(Response::StewardRuns(
                        s.steward_history(name.as_deref(), limit)?,
                    ))
                })
                .await
            }

            // messages
            Request::SendMessage { message } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Message(s.send_message(&actor, message)?))
                })
                .await
            }
            Request::ListMessages { to, unread, limit } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Messages(s.list_messages(&to, unread, limit)?))
                })
                .await
            }
            Request::ShowMessage { id } => {
                self.on_store(reply, move |s| Ok(Response::Message(s.show_message(id)?)))
                    .await
            }
            Request::ReadMessages { ids } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Messages(s.read_messages(&actor, &ids)?))
                })
                .await
            }

            // merging
            Request::Merge {
                branch,
                into,
                message,
            } => {
                let r = self.merge_branch(&actor, branch, into, message).await;
                answer(reply, r)
            }
            Request::ListMergeRequests => {
                self.on_store(reply, |s| Ok(Response::MergeRequests(s.list_mrs()?)))
                    .await
            }
            Request::ShowMergeRequest { id } => {
                self.on_store(reply, move |s| Ok(Response::MergeRequest(s.show_mr(id)?)))
                    .await
            }
            Request::RetryMergeRequest { id } => {
                self.on_store(reply, move |s| Ok(Response::MergeRequest(s.retry_mr(id)?)))
                    .await
            }
            Request::ApproveMergeRequest { id, approver } => {
                self.on_store(reply, move |s| {
                    Ok(Response::MergeRequest(s.approve_mr(id, &approver)?))
                })
                .await
            }
            Request::CancelMergeRequest { id } => {
                let merging = self.merging;
                self.on_store(reply, move |s| {
                    if merging == Some(id) {
                        return Err(being_merged(&format!("merge request #{id}"), id));
                    }
                    Ok(Response::MergeRequest(s.cancel_mr(&actor, id)?))
                })
                .await
            }
        }
    }

    /// The guard's decision on a request (see [`crate::guard`]): `Err` with the denial,
    /// recorded as `request_denied`. Humans pass without a store read.
    async fn guard(&mut self, actor: &str, request: &Request) -> Result<(), ProtoError> {
        if !actor.starts_with("agent:")
            && !matches!(
                request,
                Request::ResubmitApproval { .. } | Request::CancelApproval { .. }
            )
        {
            return Ok(());
        }
        let config = self.config.clone();
        let (actor, request) = (actor.to_owned(), request.clone());
        match self
            .store_call(move |s| crate::guard::check_request(s, &config, &actor, &request))
            .await
        {
            Ok((Ok(()), _)) => Ok(()),
            Ok((Err(e), _)) => Err(e.into()),
            Err(e) => Err(ProtoError::new(ErrorKind::Internal, e.to_string())),
        }
    }

    /// A move on an approval; a hire approved or rejected changes who may be dispatched,
    /// so the next tick comes now.
    async fn move_approval(
        &mut self,
        reply: Reply,
        actor: String,
        id: i64,
        m: Move,
        note: Option<String>,
        patch: AgentPatch,
    ) -> bool {
        let r = self
            .store_call(move |s| {
                crate::requests::on_store_thread(s, |s| {
                    Ok(Response::Approval(Box::new(s.move_approval(
                        &actor,
                        id,
                        m,
                        note.as_deref(),
                        &patch,
                    )?)))
                })
            })
            .await;
        match r {
            Ok((response, changed)) => {
                // a held tool call waits on this approval: answer it now
                if let Response::Approval(d) = &response {
                    self.settle_held(d.approval.id, d.approval.status).await;
                }
                reply.send(response);
                if changed {
                    self.tick_due = true;
                }
                changed
            }
            Err(e) => {
                reply.send(internal(e));
                false
            }
        }
    }

    /// Runs a request's handler on the store thread and sends its response. Returns
    /// whether it committed anything.
    pub(super) async fn on_store<F>(&mut self, reply: Reply, f: F) -> bool
    where
        F: FnOnce(&mut Store) -> Result<Response, StoreError> + Send + 'static,
    {
        match self
            .store_call(move |s| crate::requests::on_store_thread(s, f))
            .await
        {
            Ok((r, changed)) => {
                reply.send(r);
                changed
            }
            Err(e) => {
                reply.send(internal(e));
                false
            }
        }
    }

    /// Admits an event stream: the task it is limited to is resolved and the backlog after
    /// `since` read, and the stream subscribed between two fan-outs, so no event is lost
    /// between the backlog and the stream.
    async fn follow(
        &mut self,
        reply: Reply,
        since: Option<sf_proto::EventId>,
        task: Option<String>,
    ) -> bool {
        let found = self
            .store
            .call(move |s| {
                let task = task
                    .map(|t| s.resolve_task(&t))
                    .transpose()?
                    .map(|(_, id)| id);
                let backlog = match since {
                    Some(_) => s.list_events(since, task.as_ref().map(|t| t.as_str()), None)?,
                    None => Vec::new(),
                };
                Ok::<_, StoreError>((task, backlog))
            })
            .await;
        match found {
            Ok(Ok((task, backlog))) => reply.follow(Following {
                task,
                backlog,
                events: self.events.subscribe(),
            }),
            Ok(Err(e)) => reply.send(Response::Error(e.into())),
            Err(e) => reply.send(internal(e)),
        }
        false
    }

    /// What registration checks against the workspace rather than the store: secret aliases
    /// must be defined in `[secrets]`, a custom steward's playbook must exist.
    pub(super) async fn check_registration(
        &self,
        spec: &sf_proto::AgentSpec,
    ) -> Result<(), ProtoError> {
        if let Some(alias) = spec
            .secrets
            .iter()
            .find(|a| !self.config.secrets.contains_key(*a))
        {
            let known: Vec<&str> = self.config.secrets.keys().map(String::as_str).collect();
            return Err(ProtoError::new(
                ErrorKind::InvalidInput,
                format!("no secret `{alias}` in [secrets] of .sf/config.toml"),
            )
            .with_hint(if known.is_empty() {
                format!("define it first, e.g. `{alias} = \"env:{alias}\"` under [secrets], then restart sfd")
            } else {
                format!("defined aliases: {}", known.join(", "))
            }));
        }
        if let Some(name) = spec.playbook.clone() {
            let config = self.config.clone();
            match tokio::task::spawn_blocking(move || crate::playbooks::find(&config, &name)).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(ProtoError::new(ErrorKind::Internal, e.to_string())),
            }
        }
        Ok(())
    }

    /// `sfctl playbook list`: the playbooks of the workspace, read off the owner.
    async fn list_playbooks(&self) -> Response {
        let config = self.config.clone();
        match tokio::task::spawn_blocking(move || crate::playbooks::load_all(&config)).await {
            Ok(Ok(all)) => Response::Playbooks(all.values().map(crate::playbooks::info).collect()),
            Ok(Err(e)) => Response::Error(e),
            Err(e) => internal(e),
        }
    }

    /// `sfctl playbook show NAME`.
    async fn show_playbook(&self, name: String) -> Response {
        let config = self.config.clone();
        match tokio::task::spawn_blocking(move || crate::playbooks::find(&config, &name)).await {
            Ok(Ok(pb)) => Response::Playbook(crate::playbooks::info(&pb)),
            Ok(Err(e)) => Response::Error(e),
            Err(e) => internal(e),
        }
    }
}

/// An agent as clients see it: its command's keys redacted.
pub(super) fn redacted(mut agent: sf_proto::AgentDetail) -> sf_proto::AgentDetail {
    agent.agent.spec = sf_core::redact::spec(&agent.agent.spec);
    agent
}

/// Sends a handler's response; an error changed nothing.
fn answer(reply: Reply, response: Response) -> bool {
    let changed = !matches!(response, Response::Error(_));
    reply.send(response);
    changed
}

/// The refusal of a change to something the merge queue is merging.
fn being_merged(what: &str, mr: sf_proto::MergeRequestId) -> StoreError {
    StoreError::Refused {
        kind: ErrorKind::InvalidState,
        message: format!("{what} is being merged (merge request #{mr})"),
        hint: Some(format!(
            "wait for its result (`sfctl mr show {mr}`), then try again"
        )),
    }
}
