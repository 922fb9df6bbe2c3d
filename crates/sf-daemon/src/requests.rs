//! Request handling on the store thread: one `Request` in, one `Response` out. Refusals
//! become `Response::Error`; a panic becomes an internal error and the in-memory index is
//! rebuilt from the file, so no request can take the daemon down.

use std::panic::{AssertUnwindSafe, catch_unwind};

use sf_proto::{ErrorKind, ProtoError, Request, Response};
use sf_store::{Store, StoreError, now_ms};

fn ok(message: impl Into<String>) -> Response {
    Response::Ok {
        message: message.into(),
    }
}

/// An agent's `--command` must split into words and name a program that exists: an
/// absolute path to an executable file, or a name found on the daemon's `PATH` (which its
/// workers inherit). A relative path is looked up in each worktree, so it is not checked.
fn check_command(command: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let refuse = |message: String, hint: &str| StoreError::Refused {
        kind: ErrorKind::InvalidInput,
        message,
        hint: Some(hint.to_owned()),
    };
    let words = sf_worker::adapters::split_command(command).map_err(|e| {
        refuse(
            e.to_string(),
            "quote words with spaces in '...' or \"...\", e.g. --command \"my-agent --flag 'a b'\"",
        )
    })?;
    let Some(program) = words.first() else {
        return Err(refuse(
            "the command is empty".into(),
            "--command PROGRAM [ARGS...]",
        ));
    };
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = std::path::Path::new(program);
    let found = if path.is_absolute() {
        runnable(path)
    } else if program.contains('/') {
        true
    } else {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|dir| runnable(&dir.join(program))))
    };
    if found {
        Ok(())
    } else {
        Err(refuse(
            format!("cannot run `{program}`: no such executable file (looked on sfd's PATH)"),
            "give the full path of an executable, or install it where sfd's PATH can find it",
        ))
    }
}

fn dispatch(store: &mut Store, actor: &str, req: Request) -> Result<Response, StoreError> {
    Ok(match req {
        Request::RegisterAgent { spec } => {
            if let Some(command) = &spec.command {
                check_command(command)?;
            } else if spec.adapter != sf_proto::Adapter::Command
                && spec.role != sf_proto::Role::Director
            {
                // the adapter's own CLI, found on sfd's PATH at each spawn: check it now,
                // not at the first dispatch
                let cli = spec.adapter.as_str();
                check_command(cli).map_err(|_| StoreError::Refused {
                    kind: ErrorKind::InvalidInput,
                    message: format!(
                        "the {cli} adapter runs `{cli}`, and there is no `{cli}` on sfd's PATH"
                    ),
                    hint: Some(format!(
                        "install {cli} where sfd's PATH finds it (then restart sfd), or pass \
                         --command /path/to/{cli}"
                    )),
                })?;
            }
            Response::Agent(store.register_agent(actor, spec)?)
        }
        Request::ListAgents => Response::Agents(store.list_agents()?),
        Request::ShowAgent { name } => Response::Agent(store.show_agent(&name)?),
        Request::SetAgentEnabled { name, enabled } => {
            Response::Agent(store.set_agent_enabled(actor, &name, enabled)?)
        }
        Request::RemoveAgent { name } => {
            store.remove_agent(actor, &name)?;
            ok(format!("removed agent `{name}`"))
        }
        Request::CreateTask { task } => Response::Task(Box::new(store.create_task(actor, task)?)),
        Request::ListTasks { filter } => Response::Tasks(store.list_tasks(&filter)?),
        Request::ShowTask { id } => Response::Task(Box::new(store.show_task(&id)?)),
        Request::UpdateTask { id, patch } => {
            Response::Task(Box::new(store.update_task(actor, &id, patch)?))
        }
        Request::ChangeTaskStatus {
            id,
            change,
            reason,
            until,
        } => Response::Task(Box::new(store.change_status(
            actor,
            &id,
            change,
            reason.as_deref(),
            until,
        )?)),
        Request::ReadyTasks { limit } => {
            Response::Ready(store.ready(now_ms(), limit.map(|l| l as usize))?)
        }
        Request::BlockedTasks { limit } => {
            Response::Waiting(store.waiting(now_ms(), limit.map(|l| l as usize))?)
        }
        Request::AddDep {
            blocked,
            blocker,
            kind,
            gate,
        } => Response::Dep(store.add_dep(actor, &blocked, blocker.as_deref(), kind, gate)?),
        Request::RemoveDep {
            blocked,
            blocker,
            dep,
        } => Response::Dep(store.remove_dep(actor, blocked.as_deref(), blocker.as_deref(), dep)?),
        Request::ListDeps { id } => Response::Deps(store.list_deps(&id)?),
        Request::DepTree { id } => Response::DepTree(store.dep_tree(&id)?),
        Request::ApproveGate { dep, approver } => {
            Response::Dep(store.approve_gate(actor, dep, &approver)?)
        }
        Request::SatisfyGate { dep } => Response::Dep(store.satisfy_gate(actor, dep)?),
        Request::CreatePlan {
            title,
            description,
            active,
        } => Response::Plan(store.create_plan(actor, &title, &description, active)?),
        Request::ActivatePlan { id } => Response::Plan(store.activate_plan(actor, &id)?),
        Request::ListPlans { filter } => Response::Plans(store.list_plans(&filter)?),
        Request::ShowPlan { id } => Response::Plan(store.show_plan(&id)?),
        Request::CancelPlan { id } => Response::Plan(store.cancel_plan(actor, &id)?),
        Request::ListEvents { since, task, limit } => {
            Response::Events(store.list_events(since, task.as_deref(), limit)?)
        }
        Request::Logs { target } => Response::Logs(store.logs(&target)?),
        Request::StewardHistory { name, limit } => {
            Response::StewardRuns(store.steward_history(name.as_deref(), limit)?)
        }
        Request::EmitEvent { name, data } => {
            store.emit_event(actor, &name, &serde_json::to_value(&data)?)?;
            ok(format!("emitted `{name}`"))
        }
        Request::SendMessage { message } => Response::Message(store.send_message(actor, message)?),
        Request::ListMessages { to, unread, limit } => {
            Response::Messages(store.list_messages(&to, unread, limit)?)
        }
        Request::ShowMessage { id } => Response::Message(store.show_message(id)?),
        Request::ReadMessages { ids } => Response::Messages(store.read_messages(actor, &ids)?),
        Request::ListMergeRequests => Response::MergeRequests(store.list_mrs()?),
        Request::ShowMergeRequest { id } => Response::MergeRequest(store.show_mr(id)?),
        Request::RetryMergeRequest { id } => Response::MergeRequest(store.retry_mr(id)?),
        Request::ApproveMergeRequest { id, approver } => {
            Response::MergeRequest(store.approve_mr(id, &approver)?)
        }
        Request::CancelMergeRequest { id } => Response::MergeRequest(store.cancel_mr(actor, id)?),
        Request::Status
        | Request::Shutdown
        | Request::FollowEvents { .. }
        | Request::CompleteTask { .. }
        | Request::HandoffTask { .. }
        | Request::StartAgent { .. }
        | Request::StopAgent { .. }
        | Request::Merge { .. }
        | Request::Gc { .. }
        | Request::ReloadConfig
        | Request::RunSteward { .. }
        | Request::ListPlaybooks
        | Request::ShowPlaybook { .. }
        | Request::ValidatePlaybook { .. }
        | Request::RunPlaybook { .. } => {
            return Err(StoreError::Refused {
                kind: ErrorKind::Internal,
                message: "request routed to the store by mistake".into(),
                hint: None,
            });
        }
    })
}

/// Handles one request on the store thread.
pub(crate) fn handle(store: &mut Store, actor: &str, req: Request) -> Response {
    match catch_unwind(AssertUnwindSafe(|| dispatch(store, actor, req))) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            if e.kind() == ErrorKind::Internal {
                tracing::error!(error = ?e, "request failed");
            }
            Response::Error(ProtoError::from(e))
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "request handler panicked; rebuilding the index");
            if let Err(e) = store.reload_index() {
                tracing::error!(error = ?e, "failed to rebuild the index");
            }
            Response::Error(
                ProtoError::new(ErrorKind::Internal, format!("internal error: {what}"))
                    .with_hint("this is a bug in sfd; nothing was changed by this request"),
            )
        }
    }
}
