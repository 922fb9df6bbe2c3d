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
/// the skills its prompt gets (each pinned one checked against its pin):
/// [`Store::staffing_gate`].
pub(crate) fn gate(
    store: &Store,
    agent: &str,
    dry_run: bool,
    source: SkillSource<'_>,
) -> Result<Vec<Skill>, GateError> {
    store
        .staffing_gate(agent, dry_run, source.dir, source.policy)?
        .map_err(GateError::Denied)
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
