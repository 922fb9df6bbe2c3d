//! `sfctl task …`: create, list, show, update, change status by name, and (for workers)
//! complete and hand off.

use sf_proto::{
    NewTask, Request, Response, StatusChange, TaskDetail, TaskFilter, TaskPatch, TaskStatus,
    Timestamp,
};

use crate::args::check_id;
use crate::context::{Context, LEASE_ENV, expect_response};
use crate::error::{CliError, CliResult};
use crate::output::{paint, status_color};
use crate::time;

mod args;
mod render;

pub use args::*;
use render::ready_rows;
pub use render::{render_tasks, render_waiting, show};

pub fn run(ctx: &mut Context, cmd: TaskCommand) -> CliResult {
    let now = chrono::Utc::now();
    match cmd {
        TaskCommand::Create(args) => create(ctx, args, now),
        TaskCommand::List(args) => {
            let filter = TaskFilter {
                status: if args.all {
                    TaskStatus::ALL.to_vec()
                } else {
                    args.status
                },
                assignee: args.assignee,
                plan: args.plan.as_deref().map(check_id).transpose()?,
                ready: args.ready,
                limit: args.limit,
            };
            let resp = ctx.request(&Request::ListTasks { filter })?;
            let tasks = expect_response!(resp, Response::Tasks(t) => t);
            ctx.ui.emit(&tasks, |ui, tasks| {
                if tasks.is_empty() {
                    ui.status("no tasks");
                    return Ok(());
                }
                let text = render_tasks(tasks, ui.color, ui.width(), now);
                ui.line(text)
            })
        }
        TaskCommand::Show { id } => {
            let resp = ctx.request(&Request::ShowTask { id: check_id(&id)? })?;
            let task = expect_response!(resp, Response::Task(t) => t);
            ctx.ui.emit(&task, |ui, task| show(ui, task, now))
        }
        TaskCommand::Update(args) => update(ctx, args, now),
        TaskCommand::Close(a) => change(ctx, &a.id, StatusChange::Close, a.reason, None),
        // closing stops a task's live run and withdraws its merge request: a cancel is a
        // close that says why
        TaskCommand::Cancel(a) => {
            let reason = a.reason.unwrap_or_else(|| "cancelled".to_owned());
            change(ctx, &a.id, StatusChange::Close, Some(reason), None)
        }
        TaskCommand::Reopen(a) => change(ctx, &a.id, StatusChange::Reopen, a.reason, None),
        TaskCommand::Defer(a) => {
            let until = a
                .until
                .map(|u| time::parse_time("--until", &u, now))
                .transpose()?;
            change(ctx, &a.id, StatusChange::Defer, a.reason, until)
        }
        TaskCommand::Undefer(a) => change(ctx, &a.id, StatusChange::Undefer, a.reason, None),
        TaskCommand::Backlog(a) => change(ctx, &a.id, StatusChange::Backlog, a.reason, None),
        TaskCommand::Activate(a) => change(ctx, &a.id, StatusChange::Activate, a.reason, None),
        TaskCommand::Block(a) => {
            if a.reason.trim().is_empty() {
                return Err(CliError::user("--reason must not be empty"));
            }
            change(ctx, &a.id, StatusChange::Block, Some(a.reason), None)
        }
        TaskCommand::Unblock(a) => change(ctx, &a.id, StatusChange::Unblock, a.reason, None),
        TaskCommand::Delete(a) => change(ctx, &a.id, StatusChange::Delete, a.reason, None),
        TaskCommand::Ready { limit } => {
            let resp = ctx.request(&Request::ReadyTasks { limit })?;
            let tasks = expect_response!(resp, Response::Ready(t) => t);
            ctx.ui.emit(&tasks, |ui, tasks| {
                if tasks.is_empty() {
                    ui.status("no ready tasks");
                    return Ok(());
                }
                let rows = ready_rows(tasks);
                ui.table(&["ID", "EFF", "PRI", "TYPE", "SKILLS", "TITLE"], rows)
            })
        }
        TaskCommand::Blocked { limit } => {
            let resp = ctx.request(&Request::BlockedTasks { limit })?;
            let tasks = expect_response!(resp, Response::Waiting(t) => t);
            ctx.ui.emit(&tasks, |ui, tasks| {
                if tasks.is_empty() {
                    ui.status("no waiting tasks");
                    return Ok(());
                }
                let text = render_waiting(tasks, ui.color, ui.width(), now);
                ui.line(text)
            })
        }
        TaskCommand::Complete(a) => {
            let req = Request::CompleteTask {
                token: lease_token(std::env::var(LEASE_ENV).ok(), "complete")?,
                summary: a.summary.filter(|s| !s.trim().is_empty()),
                no_changes: a.no_changes,
            };
            worker_result(ctx, &req, completed_line)
        }
        TaskCommand::Handoff(a) => {
            let req = Request::HandoffTask {
                token: lease_token(std::env::var(LEASE_ENV).ok(), "hand off")?,
                note: non_empty("--note", a.note)?,
            };
            worker_result(ctx, &req, |t| format!("task {} handed off", t.task.id))
        }
    }
}

/// The lease token from `SF_RUN`, or why there is none; `verb` is what the worker wanted.
fn lease_token(value: Option<String>, verb: &str) -> CliResult<String> {
    value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        CliError::refused(
            "permission_denied",
            format!("{LEASE_ENV} is not set: only a worker started by sfd can {verb} its task"),
        )
        .with_hint("humans close tasks with `sfctl task close ID`")
    })
}

/// Sends a worker's request; prints the task (or the daemon's message) under `--json`, else
/// `done(task)` (or the message).
fn worker_result(
    ctx: &mut Context,
    req: &Request,
    done: impl FnOnce(&TaskDetail) -> String,
) -> CliResult {
    match ctx.request(req)? {
        Response::Task(t) if ctx.ui.json => ctx.ui.json_value(&t),
        Response::Ok { message } if ctx.ui.json => ctx.ui.json_message(&message),
        Response::Task(t) => ctx.ui.line(done(&t)),
        Response::Ok { message } => ctx.ui.line(message),
        other => Err(CliError::unexpected(&other)),
    }
}

/// What `task complete` did, by the task's new status.
fn completed_line(t: &TaskDetail) -> String {
    let id = &t.task.id;
    match t.task.status {
        TaskStatus::Review => format!("task {id} completed: queued for merge (review)"),
        TaskStatus::Closed => format!("task {id} closed: nothing to merge"),
        other => format!("task {id} completed: now {other}"),
    }
}

fn non_empty(flag: &str, value: String) -> CliResult<String> {
    if value.trim().is_empty() {
        return Err(CliError::user(format!("{flag} must not be empty")));
    }
    Ok(value)
}

fn create(ctx: &mut Context, args: CreateArgs, now: Timestamp) -> CliResult {
    let task = NewTask {
        title: non_empty("the title", args.title)?,
        description: args.description.unwrap_or_default(),
        priority: args.priority,
        task_type: args.task_type,
        plan: args.plan.as_deref().map(check_id).transpose()?,
        blocked_by: args
            .blocked_by
            .iter()
            .map(|b| check_id(b))
            .collect::<CliResult<_>>()?,
        skills: args.skills,
        acceptance: args.acceptance.unwrap_or_default(),
        scheduled_for: args
            .scheduled_for
            .map(|s| time::parse_time("--scheduled-for", &s, now))
            .transpose()?,
        // inside a run the new task is a child of the run's task (its budget is charged)
        token: std::env::var(crate::context::LEASE_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty()),
        seat: args.seat,
    };
    let resp = ctx.request(&Request::CreateTask { task })?;
    let task = expect_response!(resp, Response::Task(t) => t);
    ctx.ui.emit(&task, |ui, task| {
        if args.quiet {
            return ui.line(task.task.id.as_str());
        }
        ui.line(format!(
            "created task {}: {}",
            task.task.id, task.task.title
        ))
    })
}

fn update(ctx: &mut Context, a: UpdateArgs, now: Timestamp) -> CliResult {
    let patch = TaskPatch {
        title: a.title.map(|t| non_empty("--title", t)).transpose()?,
        description: a.description,
        priority: a.priority,
        task_type: a.task_type,
        acceptance: a.acceptance,
        skills: if a.no_skills {
            Some(Vec::new())
        } else {
            Some(a.skills).filter(|s| !s.is_empty())
        },
        plan: if a.no_plan {
            Some(String::new())
        } else {
            a.plan.as_deref().map(check_id).transpose()?
        },
        scheduled_for: a
            .scheduled_for
            .map(|s| time::parse_time("--scheduled-for", &s, now))
            .transpose()?,
        clear_scheduled_for: a.no_schedule,
        note: a.note,
    };
    if patch == TaskPatch::default() {
        return Err(CliError::user("nothing to update").with_hint(
            "pass at least one of --title, -d, -p, --type, --acceptance, --skill, --no-skills, \
             --plan, --no-plan, --scheduled-for, --no-schedule, --note",
        ));
    }
    let resp = ctx.request(&Request::UpdateTask {
        id: check_id(&a.id)?,
        patch,
    })?;
    let task = expect_response!(resp, Response::Task(t) => t);
    ctx.ui.emit(&task, |ui, task| {
        ui.line(format!(
            "updated task {}: {}",
            task.task.id, task.task.title
        ))
    })
}

fn change(
    ctx: &mut Context,
    id: &str,
    change: StatusChange,
    reason: Option<String>,
    until: Option<Timestamp>,
) -> CliResult {
    let req = Request::ChangeTaskStatus {
        id: check_id(id)?,
        change,
        reason,
        until,
    };
    let resp = ctx.request(&req)?;
    let task = expect_response!(resp, Response::Task(t) => t);
    ctx.ui.emit(&task, |ui, task| {
        let new = paint(
            ui.color,
            task.task.status.as_str(),
            status_color(task.task.status),
        );
        let line = match previous_status(task) {
            Some(old) if old != task.task.status.as_str() => {
                format!("task {}: {old} -> {new}", task.task.id)
            }
            _ => format!("task {}: now {new}", task.task.id),
        };
        ui.line(line)
    })
}

/// The status before the latest status change, read from the task's audit events.
fn previous_status(task: &TaskDetail) -> Option<String> {
    task.events.iter().rev().find_map(|e| {
        let before = e.before.as_ref()?.get("status")?.as_str()?;
        let after = e.after.as_ref()?.get("status")?.as_str()?;
        (before != after).then(|| before.to_owned())
    })
}

#[cfg(test)]
mod tests;
