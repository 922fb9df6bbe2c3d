//! The permission manifest: what a human signs before an agent may work, and the staffing
//! gate every spawn passes — the agent is live, and its manifest as signed is its
//! configuration now.
//!
//! The manifest covers what decides an agent's authority: its role, job, focus and
//! playbook, adapter, command, model and effort, capabilities, secret aliases,
//! `can_create_agents`, its job role's tool rules, its seat and owner (who answers for it,
//! and whether its merges wait for a steward), its schedule (triggers), its limits
//! (`max_tasks`, `max_runtime`) and its budget. Its hash is SHA-256 over their canonical JSON
//! (keys sorted, no spaces), so any change to one of them unsigns it; changing its persona,
//! title or skills does not (skills answer to their own pins).

use serde_json::{Value, json};
use sf_proto::{AgentSpec, AgentStatus};

use crate::guard::{Code, Denial};

/// What an agent's manifest covers. `budget` is its agent budget's limits (`null`: none).
pub fn covers(spec: &AgentSpec, budget: Value) -> Value {
    let tools = crate::jobs::tool_rules(spec.job)
        .map(crate::tools::ToolRules::texts)
        .unwrap_or_default();
    let mut capabilities: Vec<&str> = spec.capabilities.iter().map(|c| c.as_str()).collect();
    capabilities.sort_unstable();
    // serde_json's map is ordered by key: this is its canonical form
    json!({
        "role": spec.role,
        "job": spec.job,
        "mode": spec.mode,
        "focus": spec.focus,
        "playbook": spec.playbook,
        "adapter": spec.adapter,
        "command": spec.command,
        "model": spec.model,
        "effort": spec.effort,
        "capabilities": capabilities,
        "secrets": spec.secrets,
        "can_create_agents": spec.can_create_agents(),
        "tool_rules": tools,
        "seat": spec.seat,
        "owner": spec.owner,
        "triggers": spec.triggers,
        "on": spec.on,
        "max_tasks": spec.max_tasks,
        "max_runtime_secs": spec.max_runtime_secs,
        "budget": budget,
    })
}

/// The hash of what a manifest covers: `sha256:<hex>`.
pub fn hash(covers: &Value) -> String {
    crate::digest::sha256(covers.to_string().as_bytes())
}

/// The staffing gate for a spawn of `agent`: it must be live (a dry run needs only a
/// signature), and the manifest a human signed must be its configuration now.
pub fn check_spawn(
    agent: &str,
    status: AgentStatus,
    signed: Option<&str>,
    current: &str,
    dry_run: bool,
) -> Result<(), Denial> {
    if !dry_run && status != AgentStatus::Live {
        let hint = match status {
            AgentStatus::Draft => format!(
                "a draft works once a human signs it, it passes a dry run and a human takes it \
                 live: `sfctl charter sign-manifest {agent}`, `sfctl agent dry-run {agent}`, \
                 `sfctl agent go-live {agent}`"
            ),
            AgentStatus::PendingApproval => {
                "its hire waits for a human: `sfctl approval list --status pending`".to_owned()
            }
            _ => "it never runs again; register or draft another".to_owned(),
        };
        return Err(Denial {
            code: Code::AgentNotLive,
            reason: format!("agent `{agent}` is {status}, not live"),
            hint,
            rule: "staffing.live".to_owned(),
        });
    }
    match signed {
        Some(s) if s == current => Ok(()),
        None if dry_run => Err(Denial {
            code: Code::CommandPreconditionFailed,
            reason: format!("agent `{agent}` has no signed permission manifest"),
            hint: format!(
                "a human reviews and signs it first: `sfctl charter sign-manifest {agent}`"
            ),
            rule: "staffing.signed".to_owned(),
        }),
        _ => Err(Denial {
            code: if dry_run {
                Code::CommandPreconditionFailed
            } else {
                Code::ManifestUnsigned
            },
            reason: format!(
                "the permission manifest of `{agent}` changed since it was signed ({} now, {} \
                 signed): its capabilities, secrets, tool rules, budget, adapter or model differ",
                short(current),
                signed.map_or("none", short)
            ),
            hint: format!(
                "a human reviews it (`sfctl charter manifest {agent}`) and signs it again: \
                 `sfctl charter sign-manifest {agent}`"
            ),
            rule: "staffing.signed".to_owned(),
        }),
    }
}

/// A hash cut for messages: `sha256:` and 12 hex digits.
pub fn short(hash: &str) -> &str {
    hash.get(..19).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sf_proto::{Capability, JobRole};

    fn spec() -> AgentSpec {
        AgentSpec {
            name: "w1".into(),
            ..AgentSpec::default()
        }
    }

    #[test]
    fn authority_changes_the_hash_and_words_do_not() {
        let base = hash(&covers(&spec(), Value::Null));
        let mut s = spec();
        s.persona = Some("kind".into());
        s.title = Some("Engineer".into());
        s.skills = vec!["rust".into()];
        assert_eq!(hash(&covers(&s, Value::Null)), base);
        let changes: [fn(&mut AgentSpec); 10] = [
            |s| s.capabilities = vec![Capability::Push],
            |s| s.secrets = vec!["GH".into()],
            |s| s.model = Some("opus".into()),
            |s| s.adapter = sf_proto::Adapter::Claude,
            |s| s.command = Some("x".into()),
            |s| s.job = JobRole::Reviewer,
            |s| s.permissions.can_create_agents = Some(true),
            |s| s.seat = Some("ops".into()),
            |s| s.triggers = vec!["0 3 * * *".into()],
            |s| s.max_runtime_secs = Some(60),
        ];
        for change in changes {
            let mut s = spec();
            change(&mut s);
            assert_ne!(hash(&covers(&s, Value::Null)), base, "{s:?}");
        }
        assert_ne!(hash(&covers(&spec(), json!({"tokens": 10}))), base);
    }

    #[test]
    fn the_gate_wants_live_and_signed_and_a_dry_run_only_signed() {
        let h = "sha256:aaaaaaaaaaaaaaaaaaaa";
        assert!(check_spawn("w1", AgentStatus::Live, Some(h), h, false).is_ok());
        let d = check_spawn("w1", AgentStatus::Draft, Some(h), h, false).unwrap_err();
        assert_eq!(d.code, Code::AgentNotLive);
        assert!(d.hint.contains("go-live"), "{}", d.hint);
        assert!(check_spawn("w1", AgentStatus::Draft, Some(h), h, true).is_ok());
        let d = check_spawn("w1", AgentStatus::Draft, None, h, true).unwrap_err();
        assert_eq!(d.code, Code::CommandPreconditionFailed);
        assert!(d.hint.contains("charter sign-manifest w1"), "{}", d.hint);
        let d = check_spawn("w1", AgentStatus::Live, Some("sha256:bbb"), h, false).unwrap_err();
        assert_eq!(d.code, Code::ManifestUnsigned);
        assert!(
            d.reason.contains("changed since it was signed"),
            "{}",
            d.reason
        );
    }
}
