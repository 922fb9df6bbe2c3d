//! Staffing requests: seats and charters, templates and drafts, manifests, dry runs,
//! go-live, decommissioning and skills.

use sf_proto::{ErrorKind, ProtoError, Request, Response};
use sf_store::StoreError;

use super::{Owner, internal};
use crate::mailbox::Reply;

fn core_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Denied(ProtoError::new(ErrorKind::InvalidInput, e.to_string()))
}

impl Owner {
    /// Answers one staffing request (the guard has passed it).
    pub(super) async fn route_staffing(
        &mut self,
        actor: String,
        request: Request,
        reply: Reply,
    ) -> bool {
        let sf_dir = self.config.paths.dir.clone();
        let root = self.config.paths.root.clone();
        match request {
            Request::CreateSeat { seat } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Seat(Box::new(s.create_seat(&actor, seat)?)))
                })
                .await
            }
            Request::ListSeats => {
                self.on_store(reply, |s| Ok(Response::Seats(s.list_seats()?)))
                    .await
            }
            Request::ShowSeat { name } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Seat(Box::new(s.show_seat(&name)?)))
                })
                .await
            }
            Request::UpdateSeat {
                name,
                charter,
                add_stewards,
                remove_stewards,
            } => {
                self.on_store(reply, move |s| {
                    let seat =
                        s.update_seat(&actor, &name, charter, &add_stewards, &remove_stewards)?;
                    Ok(Response::Seat(Box::new(seat)))
                })
                .await
            }
            // files of `.sf/`: read off the owner
            Request::ListTemplates => {
                let r = blocking(move || {
                    sf_core::templates::load(&sf_dir.join("templates"))
                        .map(Response::Templates)
                        .unwrap_or_else(invalid)
                })
                .await;
                reply.send(r);
                false
            }
            Request::ShowTemplate { name } => {
                let r = blocking(move || {
                    sf_core::templates::find(&sf_dir.join("templates"), &name)
                        .map(|t| Response::Templates(vec![t]))
                        .unwrap_or_else(invalid)
                })
                .await;
                reply.send(r);
                false
            }
            Request::DiscoverAgents => {
                self.on_store(reply, move |s| {
                    let found = sf_core::discover::discover(&root).map_err(core_error)?;
                    let mut out = Vec::new();
                    for d in found {
                        if s.agent_spec(&d.spec.name)?.is_none() {
                            out.push(d);
                        }
                    }
                    Ok(Response::Discovered(out))
                })
                .await
            }
            Request::DraftAgent {
                spec,
                template,
                import,
            } => {
                let (dir, top) = (sf_dir.clone(), root.clone());
                let drafted = tokio::task::spawn_blocking(move || {
                    crate::staffing::draft_spec(&dir, &top, spec, template, import)
                })
                .await;
                let (spec, charter) = match drafted {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => {
                        reply.send(Response::Error(e.into()));
                        return false;
                    }
                    Err(e) => {
                        reply.send(internal(e));
                        return false;
                    }
                };
                // the same checks as a registration: its secrets, playbook and command
                if let Err(e) = self.check_registration(&spec).await {
                    reply.send(Response::Error(e));
                    return false;
                }
                let needs_approval =
                    self.config.require_approval_for_new_agents && actor.starts_with("agent:");
                self.on_store(reply, move |s| {
                    crate::requests::check_registration_command(&spec)?;
                    let agent = match actor.strip_prefix("agent:") {
                        // an agent's draft is a hire: what it grants beyond its hirer waits
                        // for a human even when hires need no approval
                        Some(hirer) => {
                            let hirer = s.agent_spec(hirer)?;
                            let grants = crate::guard::hire_grants(&spec, hirer.as_ref());
                            if !needs_approval && let Some(g) = &grants {
                                return Err(StoreError::Denied(
                                    ProtoError::new(
                                        ErrorKind::Denied,
                                        format!("this draft would grant {g}, beyond its hirer"),
                                    )
                                    .with_hint("a human registers it, or grants it afterwards")
                                    .with_code("HUMAN_REQUIRED"),
                                ));
                            }
                            s.hire_agent(&actor, spec, needs_approval, grants.as_deref())?
                                .0
                        }
                        None => s.register_agent(&actor, spec, false)?,
                    };
                    // the seat's charter starts as the template's draft, when a human drafts
                    let seat = match &agent.agent.spec.seat {
                        Some(seat) => {
                            let info = s.show_seat(seat)?;
                            let human = !actor.starts_with("agent:");
                            if human && info.charter.is_empty() && !charter.is_empty() {
                                Some(s.update_seat(&actor, seat, Some(charter), &[], &[])?)
                            } else {
                                Some(info)
                            }
                        }
                        None => None,
                    };
                    Ok(Response::Drafted {
                        agent: Box::new(super::router::redacted(agent)),
                        seat: seat.map(Box::new),
                    })
                })
                .await
            }
            Request::ShowManifest { name } => {
                self.on_store(reply, move |s| {
                    Ok(Response::Manifest(Box::new(s.agent_manifest(&name)?)))
                })
                .await
            }
            Request::SignManifest { name } => {
                self.spawn_denials_noted.clear();
                self.on_store(reply, move |s| {
                    Ok(Response::Manifest(Box::new(
                        s.sign_manifest(&actor, &name)?,
                    )))
                })
                .await
            }
            Request::ListDryRuns { name } => {
                self.on_store(reply, move |s| {
                    Ok(Response::DryRuns(s.list_dry_runs(&name)?))
                })
                .await
            }
            Request::DryRun { name, task } => {
                let r = self.dry_run(&actor, name, task).await;
                reply.send(r);
                true
            }
            Request::GoLive { name } => {
                self.spawn_denials_noted.clear();
                self.on_store(reply, move |s| {
                    Ok(Response::Agent(super::router::redacted(
                        s.go_live(&actor, &name)?,
                    )))
                })
                .await
            }
            Request::Decommission { name } => {
                for w in self.workers.values().filter(|w| w.agent == name) {
                    w.stop.cancel();
                }
                self.on_store(reply, move |s| {
                    Ok(Response::Agent(super::router::redacted(
                        s.decommission_agent(&actor, &name)?,
                    )))
                })
                .await
            }
            Request::ListSkills => {
                let policy = self.config.policy.clone();
                self.on_store(reply, move |s| {
                    let pins = s.skill_pins()?;
                    let skills =
                        sf_core::skills::list(&sf_dir.join("skills")).map_err(core_error)?;
                    Ok(Response::Skills(
                        skills
                            .into_iter()
                            .map(|k| skill_info(k, &pins, policy.as_ref().ok(), false))
                            .collect(),
                    ))
                })
                .await
            }
            Request::ShowSkill { name } => {
                let policy = self.config.policy.clone();
                self.on_store(reply, move |s| {
                    let pins = s.skill_pins()?;
                    let skill = find_skill(&sf_dir, &name)?;
                    Ok(Response::Skills(vec![skill_info(
                        skill,
                        &pins,
                        policy.as_ref().ok(),
                        true,
                    )]))
                })
                .await
            }
            Request::PinSkill { name } => {
                self.spawn_denials_noted.clear();
                let policy = self.config.policy.clone();
                self.on_store(reply, move |s| {
                    let skill = find_skill(&sf_dir, &name)?;
                    s.pin_skill(&actor, &skill.name, &skill.hash)?;
                    let pins = s.skill_pins()?;
                    Ok(Response::Skills(vec![skill_info(
                        skill,
                        &pins,
                        policy.as_ref().ok(),
                        false,
                    )]))
                })
                .await
            }
            other => {
                reply.send(Response::Error(ProtoError::new(
                    ErrorKind::Internal,
                    format!("not a staffing request: {other:?}"),
                )));
                false
            }
        }
    }

    /// `sfctl agent dry-run`: starts the run; its end records the evidence.
    async fn dry_run(&mut self, actor: &str, name: String, task: Option<String>) -> Response {
        if let Err(d) = crate::guard::check_spawn(
            self.config.policy.as_ref(),
            sf_core::guard::SpawnPath::Start,
            &name,
        ) {
            self.note_spawn_denial(actor, &name, sf_core::guard::SpawnPath::Start, &d)
                .await;
            return Response::Error(crate::guard::denied(&d, false));
        }
        if let Err(e) = self.require_target().await {
            return Response::Error(e);
        }
        let config = self.config.clone();
        let actor = actor.to_owned();
        match self
            .store_call(move |s| {
                let dir = config.paths.dir.join("skills");
                let source = crate::staffing::SkillSource {
                    dir: &dir,
                    policy: config.policy.as_ref().ok(),
                };
                let templates = config.paths.dir.join("templates");
                crate::dispatch::start_dry_run(
                    s,
                    &actor,
                    &name,
                    task.as_deref(),
                    &templates,
                    source,
                )
            })
            .await
        {
            Ok((Ok((start, info)), _)) => {
                self.launch(start);
                Response::DryRun(Box::new(info))
            }
            Ok((Err(e), _)) => Response::Error(e.into()),
            Err(e) => internal(e),
        }
    }

    /// A dry run's process ended: its evidence (ledger counts, the diff of its worktree
    /// against the target, usage) is kept with its outcome.
    pub(super) async fn dry_run_evidence(
        &mut self,
        run_id: i64,
        w: &super::Worker,
        passed: bool,
        reason: Option<String>,
        usage: Option<sf_proto::RunUsage>,
    ) {
        let (root, target) = (self.config.paths.root.clone(), self.target.clone());
        let worktree = w.worktree.clone().map(|name| {
            let path = crate::workers::worktree_path(&self.config, &name);
            (name, path)
        });
        // libgit2 only, after the links the run may have rewritten are restored: nothing a
        // run configured in its worktree runs here
        let diff = tokio::task::spawn_blocking(move || match (worktree, target) {
            (Some((name, path)), Some(target)) if path.exists() => {
                sf_git::restore_worktree_links(&root, crate::workers::admin_name(&name), &path)
                    .and_then(|_| sf_git::worktree_diff(&path, &target, 64 * 1024))
                    .unwrap_or_else(|e| (format!("(no diff: {e})"), String::new()))
            }
            _ => (String::new(), String::new()),
        })
        .await
        .unwrap_or_default();
        let log_path = w.log.clone();
        let r = self
            .store_call(move |s| {
                let (tool_calls, denied, held) = s.run_call_counts(run_id)?;
                let evidence = sf_proto::Evidence {
                    log_path,
                    tool_calls,
                    denied,
                    held,
                    diff_stat: diff.0,
                    diff: diff.1,
                    usage,
                };
                s.finish_dry_run(run_id, passed, reason.as_deref(), &evidence)
            })
            .await;
        if let Ok((Err(e), _)) = r {
            tracing::error!(run_id, error = %e, "failed to record a dry run's evidence");
        }
    }
}

/// Runs `f` on a blocking thread (file reads), its panic an internal error.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(internal)
}

fn invalid(e: impl std::fmt::Display) -> Response {
    Response::Error(ProtoError::new(ErrorKind::InvalidInput, e.to_string()))
}

fn find_skill(sf_dir: &std::path::Path, name: &str) -> Result<sf_core::skills::Skill, StoreError> {
    sf_core::skills::load(&sf_dir.join("skills"), name)
        .map_err(core_error)?
        .ok_or_else(|| {
            StoreError::Denied(
                ProtoError::new(ErrorKind::NotFound, format!("no skill named `{name}`"))
                    .with_hint("write .sf/skills/NAME.md, or see `sfctl skill list`"),
            )
        })
}

fn skill_info(
    k: sf_core::skills::Skill,
    pins: &std::collections::BTreeMap<String, String>,
    policy: Option<&sf_core::guard::Policy>,
    text: bool,
) -> sf_proto::SkillInfo {
    sf_proto::SkillInfo {
        pinned: pins.get(&k.name).cloned(),
        required_by: policy.map(|p| p.required_by(&k.name)).unwrap_or_default(),
        text: text.then(|| k.text.clone()),
        name: k.name,
        source: k.source,
        hash: k.hash,
    }
}
