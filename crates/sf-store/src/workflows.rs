//! Workflows: plans made from playbooks, with one task per kept step, and the shell steps
//! the daemon runs itself.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use serde_json::json;
use sf_core::playbook::{Instance, StepKind};
use sf_core::ready::{Key, Wait};
use sf_proto::{PlanDetail, PlanId, TaskId, TaskStatus};

use crate::events::Audit;
use crate::tasks::{ShellStep, add_note, load_task};
use crate::util::{fresh_id, now_ms};
use crate::{Store, StoreError};
use sf_proto::Action;

impl Store {
    /// Creates an active plan from a playbook instance, one task per step with the
    /// dependencies between them, all in one transaction.
    pub fn create_workflow(
        &mut self,
        actor: &str,
        instance: &Instance,
    ) -> Result<PlanDetail, StoreError> {
        if instance.steps.is_empty() {
            return Err(StoreError::invalid(format!(
                "every step of playbook `{}` was dropped by its conditions; nothing to run",
                instance.playbook
            )));
        }
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let plan_id = PlanId::new(fresh_id(&tx, "plans")?).expect("generated ids are valid");
        tx.prepare_cached(
            "INSERT INTO plans (id, title, description, status, playbook, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'active', ?4, ?5, ?5)",
        )?
        .execute(params![
            plan_id.as_str(),
            instance.title,
            instance.description,
            instance.playbook,
            now
        ])?;
        let plan_key = tx.last_insert_rowid();
        let mut events = vec![Audit::new(actor, Action::WorkflowCreated, format!("plan:{plan_id}"))
            .after(json!({"playbook": instance.playbook, "title": instance.title, "steps": instance.steps.len(), "dropped": instance.dropped}))
            .append(&tx, now)?];
        let mut keys: HashMap<&str, (Key, TaskId)> = HashMap::new();
        let mut created = Vec::new();
        for step in &instance.steps {
            let id = TaskId::new(fresh_id(&tx, "tasks")?).expect("generated ids are valid");
            let shell = match &step.kind {
                StepKind::Task => None,
                StepKind::Shell {
                    command,
                    timeout_secs,
                    env,
                } => Some(serde_json::to_string(&ShellStep {
                    command: command.clone(),
                    timeout_secs: *timeout_secs,
                    env: env.clone(),
                })?),
            };
            let description = if step.description.is_empty() {
                instance.description.clone()
            } else {
                step.description.clone()
            };
            tx.prepare_cached(
                "INSERT INTO tasks (id, title, description, status, priority, task_type, plan, skills, shell,
                                    created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'open', ?4, 'task', ?5, ?6, ?7, ?8, ?8)",
            )?
            .execute(params![
                id.as_str(),
                step.title,
                description,
                step.priority,
                plan_key,
                serde_json::to_string(&step.skills)?,
                shell,
                now
            ])?;
            let key = tx.last_insert_rowid();
            let mut waits = Vec::new();
            for dep in &step.depends_on {
                let Some((bk, _)) = keys.get(dep.as_str()) else {
                    continue;
                };
                tx.prepare_cached("INSERT INTO deps (blocked, blocker, kind, created_at) VALUES (?1, ?2, 'blocks', ?3)")?
                    .execute(params![key, bk, now])?;
                waits.push((tx.last_insert_rowid(), Wait::Task(*bk)));
            }
            let row = load_task(&tx, key)?;
            events.push(
                Audit::new(actor, Action::TaskCreated, format!("task:{id}"))
                    .task(key, &id)
                    .after(json!({"title": step.title, "plan": plan_id, "step": step.id, "shell": shell.is_some(), "depends_on": step.depends_on}))
                    .append(&tx, now)?,
            );
            keys.insert(step.id.as_str(), (key, id));
            created.push((key, row, waits));
        }
        tx.commit()?;
        self.new_events.extend(events);
        self.index.set_plan_active(plan_key, true);
        for (key, row, waits) in created {
            self.index.insert(key, row.live(), waits);
        }
        self.show_plan(plan_id.as_str())
    }

    /// Whether any open task is a shell step (an indexed lookup).
    pub fn has_open_shell_steps(&self) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM tasks INDEXED BY tasks_open_shell WHERE shell IS NOT NULL AND status = 'open' LIMIT 1")?
            .query_row([], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The shell step of a task, if it is one.
    pub fn shell_step(&self, key: Key) -> Result<Option<ShellStep>, StoreError> {
        Ok(self.task_row(key)?.shell)
    }

    /// A shell step ended: its output becomes the step's record. Success closes the task;
    /// failure blocks it and fails its workflow, with the reason.
    pub fn shell_step_finished(
        &mut self,
        run_id: i64,
        success: bool,
        summary: &str,
        output: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let (task_key,): (Option<Key>,) = self
            .conn
            .prepare_cached("SELECT task FROM runs WHERE id = ?1")?
            .query_row([run_id], |r| Ok((r.get(0)?,)))?;
        let Some(key) = task_key else { return Ok(()) };
        let before = self.task_row(key)?;
        let id = before.summary.id.clone();
        if before.summary.status != TaskStatus::InProgress {
            // someone moved the step meanwhile (closed it by hand): the run just ends
            self.conn
                .prepare_cached(
                    "UPDATE runs SET ended_at = coalesce(ended_at, ?1), outcome = coalesce(outcome, 'stopped') WHERE id = ?2",
                )?
                .execute(params![now, run_id])?;
            return Ok(());
        }
        let to = if success {
            TaskStatus::Closed
        } else {
            TaskStatus::Blocked
        };
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE runs SET released_at = ?1, ended_at = coalesce(ended_at, ?1), outcome = ?2 WHERE id = ?3",
        )?
        .execute(params![now, if success { "completed" } else { "failed" }, run_id])?;
        tx.prepare_cached(
            "UPDATE tasks SET status = ?1, assignee = NULL, updated_at = ?2, close_reason = ?3 WHERE key = ?4",
        )?
        .execute(params![to.as_str(), now, success.then_some(summary), key])?;
        add_note(
            &tx,
            key,
            now,
            "daemon",
            if success { "output" } else { "block" },
            &format!("{summary}\n{output}"),
        )?;
        let after = load_task(&tx, key)?;
        let mut events = vec![
            Audit::new(
                "daemon",
                if success {
                    Action::TaskClosed
                } else {
                    Action::ShellStepFailed
                },
                format!("task:{id}"),
            )
            .task(key, &id)
            .before(json!({"status": before.summary.status}))
            .after(json!({"status": to, "run": run_id}))
            .reason(Some(summary))
            .append(&tx, now)?,
        ];
        let mut plan_change = None;
        if let Some(plan) = after.plan_key {
            if success {
                plan_change = crate::plans::settle_plan(&tx, plan, "daemon", now, &mut events)?;
            } else {
                plan_change = crate::plans::fail_plan(
                    &tx,
                    plan,
                    &format!("shell step {id} failed: {summary}"),
                    now,
                    &mut events,
                )?;
            }
        }
        tx.commit()?;
        self.new_events.extend(events);
        self.after_status_change(key, &after, plan_change);
        Ok(())
    }
}
