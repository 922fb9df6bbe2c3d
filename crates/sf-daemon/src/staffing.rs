//! The staffing gate every spawn of an agent passes besides the policy: the agent is live
//! (a dry run needs only a signature), the permission manifest a human signed is its
//! configuration now, and each pinned skill its prompt gets still has its pinned hash.

use sf_core::guard::Denial;
use sf_core::skills::Skill;
use sf_store::{Store, StoreError};

/// Where skills come from: the workspace's `.sf/skills/`, and the policy's required ones.
#[derive(Clone, Copy)]
pub(crate) struct SkillSource<'a> {
    /// `.sf/skills`.
    pub dir: &'a std::path::Path,
    /// The policy, if it could be read.
    pub policy: Option<&'a sf_core::guard::Policy>,
}

/// Checks `agent` for a spawn (`dry_run`: a dry run's looser rule on status), and returns
/// the skills its prompt gets (each pinned one checked against its pin).
pub(crate) fn gate(
    store: &Store,
    agent: &str,
    dry_run: bool,
    source: SkillSource<'_>,
) -> Result<Vec<Skill>, GateError> {
    let st = store.staffing(agent)?;
    sf_core::manifest::check_spawn(agent, st.status, st.signed.as_deref(), &st.current, dry_run)
        .map_err(GateError::Denied)?;
    let spec = store.agent_spec(agent)?.unwrap_or_default();
    let names = match source.policy {
        Some(p) => p.skills_for(&spec),
        None => spec.skills.clone(),
    };
    let mut skills = Vec::new();
    for name in names {
        match sf_core::skills::load(source.dir, &name) {
            Ok(Some(k)) => skills.push(k),
            Ok(None) => {}
            Err(e) => {
                return Err(GateError::Denied(Denial {
                    code: sf_core::guard::Code::SkillHashMismatch,
                    reason: format!("skill `{name}` cannot be read: {e}"),
                    hint: format!("fix .sf/skills/{name}.md"),
                    rule: "skills".to_owned(),
                }));
            }
        }
    }
    if !skills.is_empty() {
        let pins = store.skill_pins()?;
        sf_core::skills::check_pins(&skills, &pins).map_err(|m| {
            GateError::Denied(Denial {
                code: sf_core::guard::Code::SkillHashMismatch,
                reason: m.to_string(),
                hint: format!(
                    "review the file, then pin it again: `sfctl skill pin {}` (or restore it)",
                    m.name
                ),
                rule: format!("skills.pin:{}", m.name),
            })
        })?;
    }
    Ok(skills)
}

/// What the run record keeps of the skills a prompt was given: name → hash.
pub(crate) fn skill_record(skills: &[Skill]) -> serde_json::Value {
    skills
        .iter()
        .map(|k| (k.name.clone(), serde_json::Value::String(k.hash.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Why the gate did not pass.
#[derive(Debug)]
pub(crate) enum GateError {
    /// It refused the spawn.
    Denied(Denial),
    /// The store could not answer.
    Store(StoreError),
}

impl From<StoreError> for GateError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<GateError> for StoreError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Denied(d) => Self::Denied(crate::guard::denied(&d, false)),
            GateError::Store(e) => e,
        }
    }
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
    name: &str,
    task: Option<&str>,
    templates: &std::path::Path,
    source: SkillSource<'_>,
) -> Result<(crate::dispatch::Start, sf_proto::DryRunInfo), StoreError> {
    let skills = gate(store, name, true, source)?;
    let spec = store.show_agent(name)?.agent.spec;
    let (title, description) = match task {
        Some(t) => {
            let d = store.show_task(t)?;
            let mut text = d.description.clone();
            if !d.acceptance.is_empty() {
                text.push_str("\n\nAcceptance:\n");
                text.push_str(&d.acceptance);
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
    let mut start = crate::dispatch::claim_one(store, name, copy.task.id.as_str())?;
    start.path = sf_core::guard::SpawnPath::Start;
    start.dry_run = true;
    store.record_run_skills(start.claim.run_id, &skill_record(&skills))?;
    start.skills = skills;
    start.agent.secrets.clear();
    start.agent.capabilities.clear();
    let id = store.start_dry_run(name, start.claim.run_id, &manifest, &title)?;
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

/// The spec and draft charter of a draft: a template's (its name, seat, owner, adapter,
/// command and model given override it), a definition found in the repository, or the
/// spec as given.
pub(crate) fn draft_spec(
    sf_dir: &std::path::Path,
    root: &std::path::Path,
    given: sf_proto::AgentSpec,
    template: Option<String>,
    import: Option<String>,
) -> Result<(sf_proto::AgentSpec, sf_proto::Charter), StoreError> {
    let bad = |e: String| {
        StoreError::Denied(sf_proto::ProtoError::new(
            sf_proto::ErrorKind::InvalidInput,
            e,
        ))
    };
    let (mut spec, charter) = if let Some(t) = template {
        let t = sf_core::templates::find(&sf_dir.join("templates"), &t)
            .map_err(|e| bad(e.to_string()))?;
        (t.spec, t.charter)
    } else if let Some(name) = import {
        let found = sf_core::discover::discover(root).map_err(|e| bad(e.to_string()))?;
        let d = found
            .into_iter()
            .find(|d| d.spec.name == name)
            .ok_or_else(|| {
                StoreError::Denied(
                    sf_proto::ProtoError::new(
                        sf_proto::ErrorKind::NotFound,
                        format!("no agent definition named `{name}` in the repository"),
                    )
                    .with_hint("see `sfctl agent discover`"),
                )
            })?;
        (d.spec, d.charter)
    } else {
        return Ok((given, sf_proto::Charter::default()));
    };
    if !given.name.is_empty() {
        spec.name = given.name;
    }
    if given.seat.is_some() {
        spec.seat = given.seat;
    }
    if given.owner.is_some() {
        spec.owner = given.owner;
    }
    if given.adapter != sf_proto::Adapter::Command || given.command.is_some() {
        spec.adapter = given.adapter;
    }
    if given.command.is_some() {
        spec.command = given.command;
    }
    if given.model.is_some() {
        spec.model = given.model;
    }
    Ok((spec, charter))
}
