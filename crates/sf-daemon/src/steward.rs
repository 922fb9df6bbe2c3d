//! Stewards: their cron and event triggers, the internal event bus, and steward runs.
//!
//! The bus is fed by the audit log: after each change the owner turns the new audit events
//! into bus events (`task_created`, `task_completed`, `task_merged`, ... and custom events
//! from `sfctl event emit`) with their data, and fires every enabled steward whose trigger
//! matches, except a steward that caused the event itself (its run made it, or it is about a
//! task the steward created): see `BusEvent::causes`. Cron triggers are kept sorted by their
//! next fire time; the owner sleeps until the earliest one instead of scanning every minute.
//! A missed schedule fires once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sf_core::condition::Condition;
use sf_core::cron::CronSchedule;
use sf_proto::{Action, AgentSpec, AuditEvent, Focus, Role, StewardRunInfo};
use sf_store::{Store, StoreError};
use sf_worker::launcher::{Kind, LaunchError, Limits, Run, RunSpec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::mailbox::Internal;
use crate::workers::RunIdentity;

/// A cron trigger and when it fires next.
#[derive(Debug, Clone)]
pub(crate) struct CronEntry {
    pub steward: String,
    pub expr: String,
    pub schedule: CronSchedule,
    pub next: DateTime<Utc>,
    pub tz: sf_core::cron::Tz,
}

/// An event trigger.
#[derive(Debug, Clone)]
pub(crate) struct EventEntry {
    pub steward: String,
    pub spec: String,
    pub event: String,
    pub condition: Option<Condition>,
}

/// The triggers of every enabled steward.
#[derive(Debug, Default)]
pub(crate) struct Triggers {
    pub crons: Vec<CronEntry>,
    pub events: Vec<EventEntry>,
}

impl Triggers {
    /// Reads the stewards and their trigger state. Runs on the store thread.
    pub(crate) fn load(store: &Store, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let tz = store.time_zone();
        let mut t = Self::default();
        for a in store.list_agents()? {
            if !a.enabled || a.spec.role != Role::Steward {
                continue;
            }
            for expr in &a.spec.triggers {
                let Ok(schedule) = CronSchedule::parse(expr) else {
                    continue;
                };
                let since = store
                    .trigger_last_fired(&a.spec.name, expr)?
                    .and_then(DateTime::<Utc>::from_timestamp_millis)
                    .unwrap_or(a.created_at);
                // a schedule missed while the daemon was down fires once, now
                let next = schedule
                    .next_fire_in(tz, since)
                    .map(|n| n.max(now))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                t.crons.push(CronEntry {
                    steward: a.spec.name.clone(),
                    expr: expr.clone(),
                    schedule,
                    next,
                    tz,
                });
            }
            for spec in &a.spec.on {
                match sf_core::condition::parse_trigger(spec) {
                    Ok((event, condition)) => t.events.push(EventEntry {
                        steward: a.spec.name.clone(),
                        spec: spec.clone(),
                        event,
                        condition,
                    }),
                    Err(e) => {
                        tracing::warn!(steward = %a.spec.name, %spec, error = %e, "ignoring a malformed event trigger");
                    }
                }
            }
        }
        t.crons.sort_by_key(|c| c.next);
        Ok(t)
    }

    /// The earliest cron fire.
    pub(crate) fn next_cron(&self) -> Option<DateTime<Utc>> {
        self.crons.iter().map(|c| c.next).min()
    }

    /// Cron entries due at `now`; each is moved to its next fire time.
    pub(crate) fn take_due(&mut self, now: DateTime<Utc>) -> Vec<(String, String)> {
        let mut due = Vec::new();
        for c in &mut self.crons {
            if c.next <= now {
                due.push((c.steward.clone(), c.expr.clone()));
                c.next = c
                    .schedule
                    .next_fire_in(c.tz, now)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
            }
        }
        due
    }

    /// Stewards whose event triggers match a bus event, once per steward.
    pub(crate) fn matching(&self, event: &str, data: &Value) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for e in &self.events {
            if e.event == event
                && e.condition.as_ref().is_none_or(|c| c.eval(data))
                && !out.iter().any(|(s, _)| *s == e.steward)
            {
                out.push((e.steward.clone(), e.spec.clone()));
            }
        }
        out
    }
}

/// Whether an audit event changes the set of triggers.
pub(crate) fn touches_triggers(e: &AuditEvent) -> bool {
    matches!(
        e.action.parse(),
        Ok(Action::AgentRegistered
            | Action::AgentRemoved
            | Action::AgentEnabled
            | Action::AgentDisabled)
    )
}

/// An event on the bus: its name, its data (what conditions and the steward's prompt see),
/// and who caused it.
#[derive(Debug, Clone)]
pub(crate) struct BusEvent {
    pub name: String,
    pub data: Value,
    /// The actors that caused it: the actor of its audit event and, for a task event, the
    /// actor that created the task (a steward's run or playbook acts as `agent:<steward>`).
    /// Kept apart from `data`, which a custom event's emitter chooses.
    pub causes: Vec<String>,
}

/// Turns audit events into bus events with their data. Runs on the store thread.
pub(crate) fn bus_events(store: &mut Store, events: &[AuditEvent]) -> Vec<BusEvent> {
    let mut out = Vec::new();
    for e in events {
        let after = e.after.clone().unwrap_or(Value::Null);
        let Ok(action) = e.action.parse::<Action>() else {
            continue;
        };
        let names: Vec<&str> = match action {
            Action::TaskCreated => vec!["task_created"],
            Action::TaskDispatched => vec!["task_dispatched"],
            Action::TaskCompleted => vec!["task_completed", "branch_ready"],
            Action::TaskMerged => vec!["task_merged", "task_closed"],
            Action::TaskClosed => vec!["task_closed"],
            Action::TaskStatusChanged
                if after.get("status").and_then(Value::as_str) == Some("closed") =>
            {
                vec!["task_closed"]
            }
            Action::MergeFailed => vec!["merge_failed"],
            Action::TaskStuck => vec!["task_stuck"],
            Action::RunFailed => vec!["agent_failed"],
            Action::MessageSent => vec!["message_sent"],
            Action::EventEmitted => {
                if let Some(name) = after.get("name").and_then(Value::as_str) {
                    out.push(BusEvent {
                        name: name.to_owned(),
                        data: after.get("data").cloned().unwrap_or(Value::Null),
                        causes: vec![e.actor.clone()],
                    });
                }
                continue;
            }
            _ => continue,
        };
        let mut data = json!({ "event_id": e.id, "actor": e.actor });
        if let Some(id) = &e.task {
            add_task_data(store, id.as_str(), &mut data);
        }
        if let Value::Object(extra) = &after {
            for (k, v) in extra {
                data.as_object_mut()
                    .expect("an object")
                    .entry(k.clone())
                    .or_insert_with(|| v.clone());
            }
        }
        debug_assert_known_fields(&data);
        let causes = causes_of(&data);
        for n in names {
            out.push(BusEvent {
                name: n.to_owned(),
                data: data.clone(),
                causes: causes.clone(),
            });
        }
    }
    out
}

/// Every field of a daemon event's data is listed in `DAEMON_EVENT_FIELDS`, by which
/// registration checks `--on` conditions (the e2e tests run a debug sfd through every event).
fn debug_assert_known_fields(data: &Value) {
    if let Value::Object(o) = data {
        debug_assert!(
            o.keys()
                .all(|k| sf_proto::DAEMON_EVENT_FIELDS.contains(&k.as_str())),
            "a daemon event carries a field missing from sf_proto::DAEMON_EVENT_FIELDS: {data}"
        );
    }
}

/// The causes of a task event: its `actor` and the task's `origin`, as the daemon set them.
fn causes_of(data: &Value) -> Vec<String> {
    ["actor", "origin"]
        .iter()
        .filter_map(|k| data.get(*k).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The data every task event carries: task, title, status, priority, agent, branch, plan,
/// type, skills.
fn add_task_data(store: &mut Store, id: &str, data: &mut Value) {
    let Ok(t) = store.show_task(id) else { return };
    data["task"] = json!(t.task.id);
    data["title"] = json!(t.task.title);
    data["status"] = json!(t.task.status);
    data["priority"] = json!(t.task.priority);
    data["agent"] = json!(
        t.task
            .assignee
            .or_else(|| t.runs.first().map(|r| r.agent.clone()))
    );
    data["branch"] = json!(t.branch);
    data["plan"] = json!(t.task.plan);
    data["type"] = json!(t.task.task_type);
    data["skills"] = json!(t.task.skills);
    // what caused the task: the actor that created it (a steward's run or workflow creates
    // as `agent:<steward>`), so that a steward is never fired by its own tasks' events
    let origin = t
        .events
        .iter()
        .find(|e| e.action == Action::TaskCreated.as_str())
        .map(|e| e.actor.clone());
    data["origin"] = json!(origin);
}

/// Whether a bus event was caused by `steward` itself: made by its own run, or about a task
/// its run or playbook created. Firing it again would let a steward feed itself forever.
pub(crate) fn caused_by(steward: &str, event: &BusEvent) -> bool {
    let me = format!("agent:{steward}");
    event.causes.contains(&me)
}

/// `task_ready` events: tasks ready now that were not ready when last looked. Only computed
/// while some steward listens for them. Runs on the store thread.
pub(crate) fn newly_ready(
    store: &mut Store,
    seen: &mut std::collections::HashSet<String>,
) -> Vec<BusEvent> {
    let Ok(ready) = store.ready_ids(sf_store::now_ms()) else {
        return Vec::new();
    };
    let now: std::collections::HashSet<String> =
        ready.into_iter().map(|id| id.to_string()).collect();
    let mut out = Vec::new();
    for id in now.difference(seen) {
        let mut data = json!({});
        add_task_data(store, id, &mut data);
        debug_assert_known_fields(&data);
        out.push(BusEvent {
            name: "task_ready".to_owned(),
            causes: causes_of(&data),
            data,
        });
    }
    *seen = now;
    out
}

/// What a steward's prompt gets beyond its trigger and data.
pub(crate) enum Context {
    /// Nothing more.
    None,
    /// The `sfctl docs check` report.
    Docs,
    /// The stuck task's history, for a recovery steward.
    Stuck(Box<sf_proto::TaskDetail>),
}

impl Context {
    /// The prompt text; runs sfctl or reads log tails, so it is built off the owner.
    async fn text(&self, config: &Config, report: &Path) -> String {
        match self {
            Self::None => String::new(),
            Self::Docs => docs_report(config, report).await,
            Self::Stuck(t) => stuck_text(t),
        }
    }
}

fn stuck_text(t: &sf_proto::TaskDetail) -> String {
    let id = &t.task.id;
    let mut out = format!(
        "## The stuck task: {} ({id})\n\nStatus {}, {} failed attempt(s). End with exactly one of:\n\
         - complete it: fix the cause on its branch, then `\"$SF_SFCTL\" task close {id} --reason ...` if nothing is left \
         to merge, or hand it back as below;\n\
         - hand it back to the pool with a note for the next worker: `\"$SF_SFCTL\" task update {id} --note \"...\"` then \
         `\"$SF_SFCTL\" task unblock {id}`;\n\
         - defer it with a message to the director: `\"$SF_SFCTL\" task defer {id} --reason \"...\"` and \
         `\"$SF_SFCTL\" message send --to director --task {id} \"what needs deciding\"`.\n",
        t.task.title, t.task.status, t.attempts
    );
    for n in &t.notes {
        out.push_str(&format!(
            "\n- [{}] {} at {}:\n{}\n",
            n.kind,
            n.author,
            n.at.format("%Y-%m-%d %H:%M UTC"),
            n.text
        ));
    }
    for r in &t.runs {
        out.push_str(&format!(
            "\nRun {} by {} (epoch {}): {}, exit code {}\n",
            r.id,
            r.agent,
            r.epoch,
            r.outcome.as_deref().unwrap_or("running"),
            r.exit_code.map_or_else(
                || "none (killed or still running)".to_owned(),
                |c| c.to_string()
            )
        ));
        let tail = r
            .log_path
            .as_deref()
            .map(|l| sf_worker::process::tail_lines(std::path::Path::new(l), 20))
            .unwrap_or_default();
        if !tail.is_empty() {
            out.push_str(&format!("```\n{}\n```\n", tail.join("\n")));
        }
    }
    out
}

/// A steward run to launch as a process.
pub(crate) struct StewardLaunch {
    pub config: Arc<Config>,
    pub run: StewardRunInfo,
    pub token: String,
    pub spec: AgentSpec,
    pub target: String,
    /// Focus-specific context for the prompt.
    pub context: Context,
    pub stop: CancellationToken,
    pub tx: mpsc::UnboundedSender<Internal>,
    /// Where the run's sandbox namespace is recorded as this steward's.
    pub identities: crate::identity::Identities,
}

fn steward_branch(spec: &AgentSpec) -> String {
    match spec.focus {
        Some(Focus::Docs) => format!("{}/docs/auto-updates", spec.name),
        Some(f) => format!("{}/{f}", spec.name),
        None => format!("{}/steward", spec.name),
    }
}

/// Starts a steward's agent in the steward's own worktree and supervises it like a worker.
pub(crate) async fn launch(l: StewardLaunch) {
    let run_id = l.run.id.0;
    match start(&l).await {
        Ok((run, log)) => {
            let watch = crate::workers::Watch {
                identities: l.identities,
                agent: l.spec.name.clone(),
                egress: crate::egress::rules(&l.config, &l.spec),
            };
            crate::workers::supervise(run, run_id, l.stop, l.spec.adapter, log, l.tx, watch).await;
        }
        Err(e) => {
            tracing::warn!(run_id, error = %e.message, agent_fault = e.agent_fault, "steward failed to start");
            let _ = l.tx.send(Internal::SpawnFailed {
                run_id,
                error: e.message,
                agent_fault: e.agent_fault,
            });
        }
    }
}

async fn start(l: &StewardLaunch) -> Result<(Run, PathBuf), LaunchError> {
    let config = &l.config;
    let branch = steward_branch(&l.spec);
    let name = format!("steward-{}", l.spec.name);
    let path = config.paths.worktrees().join(&name);
    let (root, p, b, t, n) = (
        config.paths.root.clone(),
        path.clone(),
        branch.clone(),
        l.target.clone(),
        name.clone(),
    );
    let wt = tokio::task::spawn_blocking(move || sf_git::ensure_worktree(&root, &n, &p, &b, &t))
        .await
        .map_err(|e| LaunchError::other(e.to_string()))?
        .map_err(|e| LaunchError::other(crate::errors::error_chain(&e)))?;
    let mut prompt = crate::prompt::role_prompt(config, Role::Steward);
    prompt.push_str(&format!(
        "\n\n## You\n\nYou are the steward `{}`{}.\n",
        l.spec.name,
        l.spec
            .focus
            .map_or_else(String::new, |f| format!(" (focus: {f})"))
    ));
    if let Some(p) = &l.spec.persona {
        prompt.push_str(p);
        prompt.push('\n');
    }
    prompt.push_str(&format!(
        "\n## Why you were started\n\nTrigger: {}\nData:\n```json\n{}\n```\n",
        l.run.trigger,
        serde_json::to_string_pretty(&l.run.data).unwrap_or_default()
    ));
    let logs = config.paths.logs();
    let report = logs.join(format!("steward-{}-{}.docs.json", l.spec.name, l.run.id));
    let context = l.context.text(config, &report).await;
    if !context.is_empty() {
        prompt.push('\n');
        prompt.push_str(&context);
        prompt.push('\n');
    }
    prompt.push_str(&format!(
        "\n## Where you are\n\nBranch `{branch}` (from `{}`), in a worktree of your own. To land changes, commit them \
         and run `\"$SF_SFCTL\" merge --branch {branch} --no-wait`: the merge queue tests and merges them. When you are done, exit.\n",
        l.target
    ));
    let log = logs.join(format!("steward-{}-{}.log", l.spec.name, l.run.id));
    let prompt_file = logs.join(format!("steward-{}-{}.prompt.md", l.spec.name, l.run.id));
    let who = RunIdentity {
        title: None,
        agent: &l.spec.name,
        task: None,
        token: &l.token,
        branch: &branch,
        target: &l.target,
    };
    let extra = vec![
        ("SF_STEWARD_TRIGGER".to_owned(), l.run.trigger.clone()),
        ("SF_STEWARD_DATA".to_owned(), l.run.data.to_string()),
    ];
    let prompt = crate::workers::Prompt {
        text: &prompt,
        file: &prompt_file,
        resume: None,
    };
    let spec = crate::workers::agent_run(config, &l.spec, &who, &wt.path, &prompt, &log, extra)?;
    let run = sf_worker::launcher::launch(spec)?;
    tracing::info!(run_id = l.run.id.0, steward = %l.spec.name, pid = run.pid(), "steward spawned");
    Ok((run, log))
}

/// `sfctl docs check --json` on the steward's view of the repository, for its prompt;
/// its output goes to `report`.
pub(crate) async fn docs_report(config: &Config, report: &Path) -> String {
    let Some(sfctl) = crate::workers::sfctl_path(config) else {
        return "(the docs report is unavailable: sfctl was not found)".into();
    };
    let spec = RunSpec {
        kind: Kind::Report,
        program: sfctl.display().to_string(),
        args: vec!["--json".into(), "docs".into(), "check".into()],
        stdin: None,
        cwd: config.paths.root.clone(),
        env: crate::workers::trusted_environment(config),
        log: report.to_owned(),
        log_cap: None,
        sandbox: None,
        tap: None,
        limits: Limits {
            wall: Duration::from_secs(60),
            grace: config.stop_grace,
            stall: None,
        },
    };
    // a report left from an earlier run would be appended to
    let _ = std::fs::remove_file(report);
    let ran = match sf_worker::launcher::launch(spec) {
        Ok(run) => Ok(run.wait(std::future::pending()).await),
        Err(e) => Err(e.message),
    };
    let out = ran.and_then(|_| std::fs::read_to_string(report).map_err(|e| e.to_string()));
    match out {
        Ok(o) => format!(
            "## The docs report (`\"$SF_SFCTL\" docs check`)\n\n```json\n{}\n```\n\nFix what you can on your branch. \
             What needs a human decision, send to the director: `\"$SF_SFCTL\" message send --to director --subject \"...\" \"...\"` \
             (with no director registered it becomes a backlog task for a human).",
            o.trim()
        ),
        Err(e) => format!("(the docs report failed: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn entry(expr: &str, next: &str) -> CronEntry {
        CronEntry {
            steward: "s".into(),
            expr: expr.into(),
            schedule: CronSchedule::parse(expr).unwrap(),
            next: at(next),
            tz: sf_core::cron::Tz::UTC,
        }
    }

    #[test]
    fn a_missed_schedule_fires_once_then_moves_to_the_next_slot() {
        // down from 01:00 to 05:30 with an hourly schedule: one fire at 05:30, next at 06:00
        let mut t = Triggers {
            crons: vec![entry("0 * * * *", "2026-03-01T02:00:00Z")],
            events: vec![],
        };
        assert!(t.take_due(at("2026-03-01T01:59:59Z")).is_empty());
        let due = t.take_due(at("2026-03-01T05:30:00Z"));
        assert_eq!(due, vec![("s".to_owned(), "0 * * * *".to_owned())]);
        assert_eq!(t.next_cron(), Some(at("2026-03-01T06:00:00Z")));
        assert!(t.take_due(at("2026-03-01T05:59:00Z")).is_empty());
    }

    #[test]
    fn event_triggers_match_by_name_and_condition_once_per_steward() {
        let ev = |steward: &str, spec: &str| {
            let (event, condition) = sf_core::condition::parse_trigger(spec).unwrap();
            EventEntry {
                steward: steward.into(),
                spec: spec.into(),
                event,
                condition,
            }
        };
        let t = Triggers {
            crons: vec![],
            events: vec![
                ev("a", "task_completed:{{priority}} == 1"),
                ev("a", "task_completed"),
                ev("b", "task_completed:{{type}} != chore"),
            ],
        };
        let data = serde_json::json!({"priority": 1, "type": "chore"});
        let m = t.matching("task_completed", &data);
        assert_eq!(m.len(), 1, "a fires once, b's condition is false: {m:?}");
        assert!(t.matching("task_merged", &data).is_empty());
    }
}
