//! The dispatch phase, run on the store thread in one go: which agents can take work,
//! which ready tasks they take, and the claims (one transaction each) made before anything
//! is spawned.

use std::collections::HashSet;

use sf_core::dispatch::{Slot, pair};
use sf_core::guard::{Denial, SpawnPath};
use sf_proto::{Adapter, AgentSpec, ErrorKind, Mode, Role, TaskDetail};
use sf_store::{Claim, Store, StoreError, now_ms};

/// A claimed task ready to launch.
pub(crate) struct Start {
    pub claim: Claim,
    pub agent: AgentSpec,
    pub task: TaskDetail,
    /// For a playbook shell step: what the daemon runs.
    pub shell: Option<sf_store::ShellStep>,
    /// A session of the agent's CLI to continue (`agent start --resume`).
    pub resume: Option<String>,
    /// How the spawn was asked for, for the launcher's last look at the spawn gate.
    pub path: SpawnPath,
    /// What its budgets leave it to spend, in USD (`None`: no cost limit).
    pub cost_left: Option<f64>,
    /// A dry run (`sfctl agent dry-run`): no secrets, capabilities, push or merge.
    pub dry_run: bool,
    /// The skills its prompt gets.
    pub skills: Vec<sf_core::skills::Skill>,
    /// A session's turn: the session, and the input the turn is given.
    pub turn: Option<(i64, String)>,
}

/// How many ready tasks to look at per free slot (skills may rule some out).
const LOOKAHEAD: usize = 8;

fn eligible(a: &sf_proto::AgentSummary, paused: &HashSet<Adapter>) -> bool {
    a.enabled
        && a.status == sf_proto::AgentStatus::Live
        && a.spec.role == Role::Worker
        && a.spec.mode == Mode::Ephemeral
        && !paused.contains(&a.spec.adapter)
}

/// What live runs' streams have said of their usage, when some budget is set (`None`: no
/// budget, so none is read on this hot path).
pub(crate) type Budgets<'a> = Option<&'a std::collections::HashMap<i64, sf_store::LiveUse>>;

/// The spawn gate dispatch asks for each agent it would start (`sf_core::guard`).
pub(crate) type Gate<'a> = &'a dyn Fn(&str, SpawnPath) -> Result<(), Denial>;

/// What one dispatch pass did: the claims to launch, and the spawns the guard refused.
#[derive(Default)]
pub(crate) struct Dispatched {
    pub starts: Vec<Start>,
    pub denied: Vec<(String, SpawnPath, Denial)>,
}

/// Pairs ready tasks with idle ephemeral workers and claims them, at most `capacity`.
/// Agents the spawn gate refuses get no task; a shell step it refuses is not claimed.
pub(crate) fn dispatch(
    store: &mut Store,
    capacity: usize,
    paused: &HashSet<Adapter>,
    gate: Gate<'_>,
    budgets: Budgets<'_>,
    source: crate::staffing::SkillSource<'_>,
    triage: Triage,
) -> Result<Dispatched, StoreError> {
    let mut done = Dispatched::default();
    if capacity == 0 {
        return Ok(done);
    }
    if triage.health_ms > 0 {
        store.send_health_checks(triage.health_ms, now_ms())?;
    }
    session_turns(store, capacity, paused, gate, budgets, source, &mut done)?;
    let running = store.running_by_agent()?;
    // an agent in a dry run takes nothing else: its requests are the dry run's
    let rehearsing = store.agents_in_dry_run()?;
    let slots: Vec<Slot> = store
        .list_agents()?
        .into_iter()
        .filter(|a| eligible(a, paused) && !rehearsing.contains(&a.spec.name))
        .filter_map(|a| {
            let busy = running.get(&a.spec.name).copied().unwrap_or(0);
            let free = a.spec.max_tasks.saturating_sub(busy);
            (free > 0).then_some(Slot {
                skills: sf_core::jobs::work_skills(&a.spec),
                agent: a.spec.name,
                free,
            })
        })
        .collect();
    // an idle daemon with no free agent and no shell step to run does no work here
    let shells = store.has_open_shell_steps()?;
    if slots.is_empty() && !shells {
        return Ok(done);
    }
    let mut slots = slots;
    triage_runs(
        store, capacity, &running, &mut slots, gate, source, budgets, triage, &mut done,
    )?;
    let free: usize = slots.iter().map(|s| s.free as usize).sum::<usize>() + capacity;
    // sessions' tasks wait among the ready ones between turns, never taken here: the window
    // is that much wider
    let window = capacity.min(free) * LOOKAHEAD + store.active_sessions()?;
    let ready = store.ready(now_ms(), Some(window))?;
    if ready.is_empty() {
        return Ok(done);
    }
    // the spawn gate, once per agent that could take work now: the policy, then its
    // staffing (a manifest changed since it was signed stops it here)
    let mut allowed = Vec::with_capacity(slots.len());
    let mut skills = std::collections::HashMap::new();
    for s in slots {
        let verdict = match gate(&s.agent, SpawnPath::Dispatch) {
            Ok(()) => match crate::staffing::gate(store, &s.agent, false, source) {
                Err(crate::staffing::GateError::Store(e)) => return Err(e),
                Err(crate::staffing::GateError::Denied(d)) => Err(d),
                Ok(k) => Ok(k),
            },
            Err(d) => Err(d),
        };
        match verdict {
            Ok(k) => {
                skills.insert(s.agent.clone(), k);
                allowed.push(s);
            }
            Err(d) => done.denied.push((s.agent.clone(), SpawnPath::Dispatch, d)),
        }
    }
    let mut slots = allowed;
    let shells_allowed = !shells
        || match gate(SHELL_AGENT, SpawnPath::Playbook) {
            Ok(()) => true,
            Err(d) => {
                done.denied
                    .push((SHELL_AGENT.to_owned(), SpawnPath::Playbook, d));
                false
            }
        };
    let out = &mut done.starts;
    // playbook shell steps are run by the daemon itself, not by a worker
    let mut tasks: Vec<(usize, &[String])> = Vec::new();
    // the per-task shell check runs only while some shell step is open
    for (i, r) in ready.iter().enumerate() {
        let is_shell = shells && {
            let (key, _) = store.resolve_task(r.task.id.as_str())?;
            store.shell_step(key)?.is_some()
        };
        if is_shell {
            if shells_allowed && out.len() < capacity {
                match claim_one(store, SHELL_AGENT, r.task.id.as_str()) {
                    Ok(s) => out.push(s),
                    Err(e) => {
                        tracing::warn!(task = %r.task.id, error = %e, "claim of a shell step failed");
                    }
                }
            }
        } else {
            tasks.push((i, r.task.skills.as_slice()));
        }
    }
    let pairs = pair(&tasks, &mut slots, capacity.saturating_sub(out.len()));
    for (i, agent) in pairs {
        let id = ready[i].task.id.to_string();
        // a task whose budget ran out is not started: blocked until a human raises it
        if let Some(live) = budgets
            && let Some(e) = store.spawn_budget(&id, &agent, live)?
        {
            let reason = format!("BUDGET_EXHAUSTED: {}", e.reason());
            store.change_status(
                "daemon",
                &id,
                sf_proto::StatusChange::Block,
                Some(&reason),
                None,
            )?;
            done.denied
                .push((agent, SpawnPath::Dispatch, budget_denial(&e)));
            continue;
        }
        match claim_one(store, &agent, &id) {
            Ok(mut s) => {
                if let Some(live) = budgets {
                    s.cost_left = store.cost_left(&id, &agent, live)?;
                }
                s.skills = skills.get(&agent).cloned().unwrap_or_default();
                if !s.skills.is_empty() {
                    store.record_run_skills(
                        s.claim.run_id,
                        &crate::staffing::skill_record(&s.skills),
                    )?;
                }
                out.push(s);
            }
            // a previous worker still exiting: dispatched when its run ends
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tracing::debug!(task = %id, %agent, error = %e, "claim deferred");
            }
            Err(e) => tracing::warn!(task = %id, %agent, error = %e, "claim failed"),
        }
    }
    Ok(done)
}

/// Starts the turns sessions are due: a new session's first, and one for each session with
/// messages waiting (they are its input, read by the turn). A turn resumes the CLI's own
/// session, so only the new input is sent.
fn session_turns(
    store: &mut Store,
    capacity: usize,
    paused: &HashSet<Adapter>,
    gate: Gate<'_>,
    budgets: Budgets<'_>,
    source: crate::staffing::SkillSource<'_>,
    done: &mut Dispatched,
) -> Result<(), StoreError> {
    let due = store.turns_due()?;
    if due.is_empty() {
        return Ok(());
    }
    let rehearsing = store.agents_in_dry_run()?;
    for due in due {
        if done.starts.len() >= capacity {
            break;
        }
        let adapter = store.agent_spec(&due.agent)?.map(|s| s.adapter);
        if rehearsing.contains(&due.agent) || adapter.is_some_and(|a| paused.contains(&a)) {
            continue;
        }
        if let Some(live) = budgets
            && let Some(e) = store.spawn_budget(due.task.as_str(), &due.agent, live)?
        {
            store.flag_session(due.session, &format!("BUDGET_EXHAUSTED: {}", e.reason()))?;
            done.denied
                .push((due.agent.clone(), SpawnPath::Start, budget_denial(&e)));
            continue;
        }
        let skills = match gate(&due.agent, SpawnPath::Start) {
            Ok(()) => match crate::staffing::gate(store, &due.agent, false, source) {
                Ok(k) => k,
                Err(crate::staffing::GateError::Store(e)) => return Err(e),
                Err(crate::staffing::GateError::Denied(d)) => {
                    done.denied.push((due.agent.clone(), SpawnPath::Start, d));
                    continue;
                }
            },
            Err(d) => {
                done.denied.push((due.agent.clone(), SpawnPath::Start, d));
                continue;
            }
        };
        let mut start = match claim_one(store, &due.agent, due.task.as_str()) {
            Ok(s) => s,
            // its last turn's process is still exiting: the next pass takes it
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            // never the whole pass for one session: it is flagged for the humans
            Err(e) => {
                tracing::warn!(agent = %due.agent, error = %e, "a session's turn could not be claimed");
                store.flag_session(due.session, &format!("its next turn cannot start: {e}"))?;
                continue;
            }
        };
        let ids: Vec<i64> = due.input.iter().map(|m| m.id.0).collect();
        store.turn_started(due.session, start.claim.run_id, &ids)?;
        if let Some(live) = budgets {
            start.cost_left = store.cost_left(due.task.as_str(), &due.agent, live)?;
        }
        if !skills.is_empty() {
            store.record_run_skills(start.claim.run_id, &crate::staffing::skill_record(&skills))?;
        }
        start.path = SpawnPath::Start;
        start.resume = due.resume;
        start.skills = skills;
        start.turn = Some((due.session, turn_input(&due.input)));
        done.starts.push(start);
    }
    Ok(())
}

/// What a turn is given: the messages that wait for its agent, oldest first.
pub(crate) fn turn_input(messages: &[sf_proto::MessageInfo]) -> String {
    if messages.is_empty() {
        return "The session starts. Read your inbox (`sfctl inbox`) if you need to, then \
                wait: each message sent to you arrives as your next turn."
            .to_owned();
    }
    let mut text = String::from(
        "## New input\n\nEach message is quoted below; the sender and type outside the quote \
         are the daemon's, what is inside is the sender's own words.\n",
    );
    for m in messages {
        text.push_str(&sf_store::quoted_message(m));
    }
    text
}

/// When an idle ephemeral worker's messages are due a triage run (`triage_batch`,
/// `triage_after`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Triage {
    pub batch: u32,
    pub after_ms: i64,
    /// How long a session may go without a turn before it is sent a health check
    /// (`session_health_interval`; 0: never).
    pub health_ms: i64,
}

/// Starts a triage run for each idle worker whose messages are due: one task holding the
/// batch, claimed for it, the messages marked as given to that run. Before ready tasks: a
/// worker's own messages come first.
#[allow(clippy::too_many_arguments)]
fn triage_runs(
    store: &mut Store,
    capacity: usize,
    running: &std::collections::HashMap<String, u32>,
    slots: &mut [Slot],
    gate: Gate<'_>,
    source: crate::staffing::SkillSource<'_>,
    budgets: Budgets<'_>,
    triage: Triage,
    done: &mut Dispatched,
) -> Result<(), StoreError> {
    let now = now_ms();
    for slot in slots.iter_mut() {
        if done.starts.len() >= capacity {
            break;
        }
        if slot.free == 0 || running.contains_key(&slot.agent) {
            continue;
        }
        let Some(batch) = store.triage_due(&slot.agent, triage.batch, triage.after_ms, now)? else {
            continue;
        };
        let skills = match gate(&slot.agent, SpawnPath::Dispatch) {
            Ok(()) => match crate::staffing::gate(store, &slot.agent, false, source) {
                Ok(k) => k,
                Err(crate::staffing::GateError::Store(e)) => return Err(e),
                Err(crate::staffing::GateError::Denied(d)) => {
                    done.denied
                        .push((slot.agent.clone(), SpawnPath::Dispatch, d));
                    continue;
                }
            },
            Err(d) => {
                done.denied
                    .push((slot.agent.clone(), SpawnPath::Dispatch, d));
                continue;
            }
        };
        // the agent's own budget: a triage run is its work like any other
        if let Some(live) = budgets
            && let Some(e) = store.spawn_budget_of_agent(&slot.agent, live)?
        {
            done.denied
                .push((slot.agent.clone(), SpawnPath::Dispatch, budget_denial(&e)));
            continue;
        }
        let task = store.create_triage(&slot.agent, &batch)?;
        // claimed now; a kill before the claim leaves the task to dispatch, for this agent
        let mut start = match claim_one(store, &slot.agent, task.task.id.as_str()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(agent = %slot.agent, error = %e, "a triage task was made but not claimed; dispatch takes it");
                continue;
            }
        };
        tracing::info!(agent = %slot.agent, messages = batch.len(), task = %task.task.id, "triage run");
        start.skills = skills;
        slot.free -= 1;
        done.starts.push(start);
    }
    Ok(())
}

/// The spawn gate's refusal for an exhausted budget.
pub(crate) fn budget_denial(e: &sf_store::Exhausted) -> Denial {
    Denial {
        code: sf_core::guard::Code::BudgetExhausted,
        reason: e.reason(),
        hint: format!(
            "a human raises it: `sfctl budget set --{} {} ...`, then unblocks the task",
            e.scope, e.subject
        ),
        rule: format!("budget:{}:{}", e.scope, e.subject),
    }
}

/// The assignee of shell steps: the daemon itself.
pub(crate) const SHELL_AGENT: &str = "sf-shell";

pub(crate) fn claim_one(store: &mut Store, agent: &str, task: &str) -> Result<Start, StoreError> {
    let (key, _) = store.resolve_task(task)?;
    let shell = store.shell_step(key)?;
    let claim = store.claim("daemon", agent, key)?;
    let spec = if agent == SHELL_AGENT {
        AgentSpec {
            name: SHELL_AGENT.to_owned(),
            max_runtime_secs: shell.as_ref().map(|s| s.timeout_secs),
            ..AgentSpec::default()
        }
    } else {
        // only the spec: a claim is on the hot path
        store.agent_spec(agent)?.ok_or_else(|| {
            refuse(
                ErrorKind::NotFound,
                format!("no agent named `{agent}`"),
                "list agents with `sfctl agent list`",
            )
        })?
    };
    let task = store.show_task(claim.task_id.as_str())?;
    let path = if shell.is_some() {
        SpawnPath::Playbook
    } else {
        SpawnPath::Dispatch
    };
    Ok(Start {
        claim,
        agent: spec,
        task,
        shell,
        resume: None,
        path,
        cost_left: None,
        dry_run: false,
        skills: Vec::new(),
        turn: None,
    })
}

fn refuse(kind: ErrorKind, message: String, hint: &str) -> StoreError {
    StoreError::Refused {
        kind,
        message,
        hint: Some(hint.to_owned()),
    }
}

/// `sfctl agent start NAME [--task ID]`: the same checks as dispatch, for one agent.
pub(crate) fn start_agent(
    store: &mut Store,
    name: &str,
    task: Option<&str>,
    capacity: usize,
    paused: &HashSet<Adapter>,
    budgets: Budgets<'_>,
    source: crate::staffing::SkillSource<'_>,
) -> Result<Start, StoreError> {
    let agent = store.show_agent(name)?.agent;
    let skills = crate::staffing::gate(store, name, false, source)?;
    if store.agents_in_dry_run()?.contains(name) {
        return Err(refuse(
            ErrorKind::InvalidState,
            format!("agent `{name}` is in a dry run"),
            "wait for it to end: `sfctl agent dry-runs NAME`",
        ));
    }
    if !agent.enabled {
        return Err(refuse(
            ErrorKind::InvalidState,
            format!("agent `{name}` is disabled"),
            "enable it with `sfctl agent enable`",
        ));
    }
    if agent.spec.role != Role::Worker || agent.spec.mode != Mode::Ephemeral {
        return Err(refuse(
            ErrorKind::InvalidState,
            format!(
                "agent `{name}` is a {} {}; only ephemeral workers are started by sfd",
                agent.spec.mode, agent.spec.role
            ),
            "persistent agents are started by a human; stewards fire on their triggers",
        ));
    }
    if paused.contains(&agent.spec.adapter) {
        return Err(refuse(
            ErrorKind::InvalidState,
            format!(
                "dispatch to the `{}` adapter is paused after a usage limit",
                agent.spec.adapter
            ),
            "see `sfctl daemon status` for when it resumes",
        ));
    }
    if agent.running >= agent.spec.max_tasks {
        return Err(refuse(
            ErrorKind::InvalidState,
            format!(
                "agent `{name}` already runs {} task(s), its limit",
                agent.running
            ),
            "raise --max-tasks or wait",
        ));
    }
    if capacity == 0 {
        return Err(refuse(
            ErrorKind::InvalidState,
            "the workspace already runs `max_workers` workers".to_owned(),
            "raise max_workers in .sf/config.toml or wait",
        ));
    }
    let task_id = match task {
        Some(t) => {
            let d = store.show_task(t)?;
            if !sf_core::naming::has_skills(
                &sf_core::jobs::work_skills(&agent.spec),
                &d.task.skills,
            ) {
                return Err(refuse(
                    ErrorKind::InvalidState,
                    format!(
                        "agent `{name}` lacks skills task {} needs: {}",
                        d.task.id,
                        d.task.skills.join(", ")
                    ),
                    "pick another agent or task",
                ));
            }
            d.task.id.to_string()
        }
        None => store
            .ready(now_ms(), None)?
            .into_iter()
            .find(|r| {
                sf_core::naming::has_skills(
                    &sf_core::jobs::work_skills(&agent.spec),
                    &r.task.skills,
                )
            })
            .map(|r| r.task.id.to_string())
            .ok_or_else(|| StoreError::Refused {
                kind: ErrorKind::NotFound,
                message: format!("no ready task that `{name}` can take"),
                hint: Some("see `sfctl task ready` and `sfctl task blocked`".into()),
            })?,
    };
    if let Some(live) = budgets
        && let Some(e) = store.spawn_budget(&task_id, name, live)?
    {
        let d = budget_denial(&e);
        return Err(StoreError::Denied(
            sf_proto::ProtoError::new(ErrorKind::Denied, d.reason)
                .with_hint(d.hint)
                .with_code(d.code.as_str()),
        ));
    }
    let mut start = claim_one(store, name, &task_id)?;
    start.path = SpawnPath::Start;
    if !skills.is_empty() {
        store.record_run_skills(start.claim.run_id, &crate::staffing::skill_record(&skills))?;
    }
    start.skills = skills;
    if let Some(live) = budgets {
        start.cost_left = store.cost_left(&task_id, name, live)?;
    }
    Ok(start)
}

/// The task a dry run works on when none is given: its job's template's sample.
fn sample_task(templates: &std::path::Path, spec: &sf_proto::AgentSpec) -> sf_proto::SampleTask {
    sf_core::templates::load(templates)
        .unwrap_or_else(|_| sf_core::templates::builtin())
        .into_iter()
        .find(|t| t.spec.job == spec.job && t.spec.role == spec.role)
        .map(|t| t.sample_task)
        .filter(|t| !t.title.is_empty())
        .unwrap_or_else(|| sf_proto::SampleTask {
            title: "Describe the repository".to_owned(),
            description: "Read the repository and write NOTES.md: what it is, how it is laid \
                          out, and how to build and test it. Commit it on your branch."
                .to_owned(),
        })
}

/// `sfctl agent dry-run`: on the store thread, the signed agent gets a copy of the given
/// task (or its sample) that only it can take, claimed for a run with no secrets and no
/// capabilities, and a dry-run record.
pub(crate) fn start_dry_run(
    store: &mut Store,
    actor: &str,
    name: &str,
    task: Option<&str>,
    templates: &std::path::Path,
    source: crate::staffing::SkillSource<'_>,
) -> Result<(Start, sf_proto::DryRunInfo), StoreError> {
    let skills = crate::staffing::gate(store, name, true, source)?;
    let agent = store.show_agent(name)?.agent;
    // the router tells a dry run's requests by its agent: no other run of it may go on
    if agent.running > 0 {
        return Err(refuse(
            ErrorKind::InvalidState,
            format!(
                "agent `{name}` has {} run(s) in flight; a dry run needs it idle",
                agent.running
            ),
            "stop it first (`sfctl agent stop NAME`) or wait for its runs to end",
        ));
    }
    if let Some(s) = store.active_session(name)? {
        return Err(refuse(
            ErrorKind::InvalidState,
            format!("agent `{name}` is in session #{}", s.id),
            "end it first: `sfctl agent stop NAME`",
        ));
    }
    let spec = agent.spec;
    let (title, description) = match task {
        Some(t) => {
            let d = store.show_task(t)?;
            let mut text = d.description.clone();
            if !d.acceptance.is_empty() {
                text.push_str("\n\nAcceptance:\n");
                text.push_str(&d.acceptance);
            }
            // a description and its criteria may each be at the limit: the copy is cut
            if text.len() > sf_core::naming::MAX_TEXT {
                let mut cut = sf_core::naming::MAX_TEXT - 32;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push_str("\n[cut]");
            }
            (d.task.title, text)
        }
        None => {
            let s = sample_task(templates, &spec);
            (s.title, s.description)
        }
    };
    let mut title_full = format!("[dry run] {title}");
    if title_full.chars().count() > sf_core::naming::MAX_TITLE {
        title_full = title_full
            .chars()
            .take(sf_core::naming::MAX_TITLE)
            .collect();
    }
    let copy = store.create_task(
        "daemon",
        sf_proto::NewTask {
            title: title_full,
            description,
            // only this agent's dry run takes it: no agent has this skill
            skills: vec![format!("dryrun.{name}")],
            ..sf_proto::NewTask::default()
        },
    )?;
    let manifest = store.staffing(name)?.current;
    let mut start = claim_one(store, name, copy.task.id.as_str())?;
    start.path = sf_core::guard::SpawnPath::Start;
    start.dry_run = true;
    store.record_run_skills(start.claim.run_id, &crate::staffing::skill_record(&skills))?;
    start.skills = skills;
    start.agent.secrets.clear();
    start.agent.capabilities.clear();
    let id = store.start_dry_run(actor, name, start.claim.run_id, &manifest, &title)?;
    let info = store
        .list_dry_runs(name)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| {
            StoreError::Denied(sf_proto::ProtoError::new(
                sf_proto::ErrorKind::Internal,
                "the dry run just recorded is gone",
            ))
        })?;
    Ok((start, info))
}
