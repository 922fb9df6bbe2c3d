//! An agent's spec as the store accepts it: checked and normalised once, for
//! registrations, hires and updates alike.

use sf_core::cron::CronSchedule;
use sf_core::naming::{normalize_skills, validate_agent_name, validate_text};
use sf_proto::{AgentSpec, Focus, Mode, Role};

use crate::StoreError;

/// Checks and normalizes a spec. `exists` tells whether another agent has a name.
pub fn validate_spec(
    mut spec: AgentSpec,
    exists: impl Fn(&str) -> bool,
) -> Result<AgentSpec, StoreError> {
    validate_agent_name(&spec.name)?;
    // `director` is a director's name (messages to `director` reach a director anyway)
    if matches!(spec.name.as_str(), "human" | "sf-shell" | "daemon")
        || (spec.name == "director" && spec.role != Role::Director)
    {
        return Err(StoreError::invalid(format!(
            "`{}` is a reserved name (messages to it, or the daemon's own runs, mean something else)",
            spec.name
        ))
        .hint("choose another name"));
    }
    spec.skills = normalize_skills(&spec.skills)?;
    if let Some(s) = spec.skills.iter().find(|s| {
        ["seat.", "triage.", "dryrun.", "session."]
            .iter()
            .any(|p| s.starts_with(p))
    }) {
        return Err(StoreError::invalid(format!(
            "skill `{s}`: `seat.`, `triage.`, `dryrun.` and `session.` skills are the daemon's own"
        ))
        .hint("put the agent in a seat with --seat instead"));
    }
    if let Some(c) = sf_core::jobs::forbidden(spec.job)
        .iter()
        .find(|c| spec.capabilities.contains(c))
    {
        return Err(StoreError::invalid(format!(
            "a {} may not hold the `{c}` capability",
            spec.job
        ))
        .hint("drop it, or give the agent another --job"));
    }
    spec.secrets.sort();
    spec.secrets.dedup();
    for expr in &spec.triggers {
        CronSchedule::parse(expr).map_err(|e| {
            StoreError::invalid(e.to_string())
                .hint("use standard 5-field cron: minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\"")
        })?;
    }
    for on in &spec.on {
        let (event, condition) = sf_core::condition::parse_trigger(on).map_err(|e| {
            StoreError::invalid(format!(
                "invalid event trigger `{on}` at column {}: {}",
                e.column(),
                e.message()
            ))
                .hint("EVENT[:CONDITION], e.g. --on task_stuck or --on 'task_completed:{{priority}} == 1 && {{type}} != chore'")
        })?;
        // a daemon event's data is known: a name it never carries is a typo that would
        // silently never fire (a custom event carries whatever its emitter sends)
        if sf_proto::DAEMON_EVENTS.contains(&event.as_str())
            && let Some(var) = condition.iter().flat_map(|c| c.vars()).find(|v| {
                let first = v.split('.').next().unwrap_or_default();
                !sf_proto::DAEMON_EVENT_FIELDS.contains(&first)
            })
        {
            return Err(StoreError::invalid(format!(
                "invalid event trigger `{on}`: the condition mentions {{{{{var}}}}}, which `{event}` \
                 events do not carry (known: {})",
                sf_proto::DAEMON_EVENT_FIELDS.join(", ")
            ))
            .hint(format!(
                "fix the name, e.g. --on '{event}:{{{{priority}}}} == 1'"
            )));
        }
    }
    if spec.focus.is_some() && spec.role != Role::Steward {
        return Err(StoreError::invalid(format!(
            "--focus applies to stewards; `{}` is a {}",
            spec.name, spec.role
        ))
        .hint("register it with --role steward, or drop --focus"));
    }
    if spec.role == Role::Steward && spec.focus.is_none() {
        return Err(
            StoreError::invalid(format!("steward `{}` needs a focus", spec.name))
                .hint("--focus merge|docs|recovery|custom"),
        );
    }
    if spec.playbook.is_some() && spec.focus != Some(Focus::Custom) {
        return Err(StoreError::invalid("--playbook goes with --focus custom"));
    }
    if spec.focus == Some(Focus::Custom) && spec.playbook.is_none() {
        return Err(
            StoreError::invalid("a custom steward needs a playbook").hint("--playbook NAME")
        );
    }
    if spec.adapter == sf_proto::Adapter::Opencode
        && spec.focus != Some(Focus::Merge)
        && let Err(e) = sf_adapters::opencode_model(spec.model.as_deref())
    {
        return Err(StoreError::invalid(format!("agent `{}`: {e}", spec.name))
            .hint("pass --model PROVIDER/MODEL, a provider configured for OpenCode (`opencode models` lists them)"));
    }
    if spec.adapter == sf_proto::Adapter::Command
        && spec.command.as_deref().is_none_or(|c| c.trim().is_empty())
        && spec.mode == Mode::Ephemeral
        && spec.role != Role::Director
        && !matches!(spec.focus, Some(Focus::Merge | Focus::Custom))
    {
        return Err(StoreError::invalid(format!("agent `{}` uses the `command` adapter but names no command", spec.name))
            .hint("pass --command PATH (any executable; it gets the prompt on stdin), or --adapter claude|codex|opencode"));
    }
    if spec.max_tasks == 0 || spec.max_tasks > 64 {
        return Err(
            StoreError::invalid(format!("--max-tasks {} is out of range", spec.max_tasks))
                .hint("use 1 to 64"),
        );
    }
    if spec.role == Role::Director && spec.mode == Mode::Ephemeral && !spec.triggers.is_empty() {
        return Err(StoreError::invalid("directors do not take cron triggers")
            .hint("triggers are for stewards"));
    }
    for (field, text) in [
        ("persona", &spec.persona),
        ("title", &spec.title),
        ("command", &spec.command),
    ] {
        if let Some(t) = text {
            validate_text(field, t)?;
        }
    }
    if let Some(r) = &spec.reports_to {
        if r == &spec.name {
            return Err(StoreError::invalid(format!(
                "`{}` cannot report to itself",
                spec.name
            )));
        }
        if !exists(r) {
            return Err(StoreError::not_found(format!(
                "--reports-to names an unknown agent `{r}`"
            ))
            .hint("register that agent first, or list agents with `sfctl agent list`"));
        }
    }
    spec.capabilities.sort();
    spec.capabilities.dedup();
    Ok(spec)
}
