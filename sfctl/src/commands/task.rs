//! `sfctl task …`: create, list, show, update, change status by name, and (for workers)
//! complete and hand off.

use crate::output::Cell;
use clap::{Args, Subcommand};
use sf_proto::{
    NewTask, ReadyTask, Request, Response, StatusChange, TaskDetail, TaskFilter, TaskPatch,
    TaskStatus, TaskSummary, TaskType, Timestamp, WaitingTask,
};

use crate::args::wire;
use crate::commands::{agent, dep, events};
use crate::context::{Context, LEASE_ENV, expect_response};
use crate::error::{CliError, CliResult};
use crate::output::{Ui, cell, indent, key_values, or_dash, paint, status_color};
use crate::time;

/// Create, list, inspect and change tasks
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    Create(CreateArgs),
    List(ListArgs),
    /// Show a task in full: fields, why it waits, dependencies, notes, runs, events
    #[command(after_help = "\
Examples:
  sfctl task show k3f9xq
  sfctl task show k3f                      # any unique prefix
  sfctl task show k3f9xq --json | jq -r .branch")]
    Show {
        /// Task id or unique prefix
        id: String,
    },
    Update(UpdateArgs),
    /// Close a task (done, or not worth doing)
    #[command(after_help = "\
Examples:
  sfctl task close k3f9xq
  sfctl task close k3f9xq --reason \"duplicate of m2n3p4\"")]
    Close(ChangeArgs),
    /// Reopen a closed, review or blocked task
    #[command(after_help = "\
Examples:
  sfctl task reopen k3f9xq --reason \"the fix did not cover Safari\"
  sfctl task reopen k3f9xq --json | jq -r .status    # open")]
    Reopen(ChangeArgs),
    /// Put a task off, optionally until a time
    #[command(after_help = "\
Examples:
  sfctl task defer k3f9xq --until +3d --reason \"after the release\"
  sfctl task defer k3f9xq --until 2025-06-01
  sfctl task defer k3f9xq                  # until `sfctl task undefer`")]
    Defer(DeferArgs),
    /// Bring a deferred task back to open
    #[command(after_help = "\
Examples:
  sfctl task undefer k3f9xq
  sfctl task undefer k3f9xq --reason \"the release is out\"")]
    Undefer(ChangeArgs),
    /// Move a task to the backlog (not planned yet)
    #[command(after_help = "\
Examples:
  sfctl task backlog k3f9xq --reason \"not this quarter\"
  sfctl task activate k3f9xq               # back to open")]
    Backlog(ChangeArgs),
    /// Move a backlog task to open
    #[command(after_help = "\
Examples:
  sfctl task activate k3f9xq
  sfctl task list --status backlog         # what could be activated")]
    Activate(ChangeArgs),
    /// Block a task until someone unblocks it
    #[command(after_help = "\
Examples:
  sfctl task block k3f9xq --reason \"waiting for the staging credentials\"
  sfctl task unblock k3f9xq")]
    Block(BlockArgs),
    /// Unblock a blocked task
    #[command(after_help = "\
Examples:
  sfctl task unblock k3f9xq --reason \"credentials arrived\"
  sfctl task blocked                       # why the others still wait")]
    Unblock(ChangeArgs),
    /// Delete a task (it becomes a tombstone)
    #[command(after_help = "\
Examples:
  sfctl task delete k3f9xq --reason \"created by mistake\"
  sfctl task list --status tombstone       # deleted tasks")]
    Delete(ChangeArgs),
    /// Ready tasks, in the order the daemon dispatches them
    #[command(after_help = "\
Examples:
  sfctl task ready
  sfctl task ready --limit 5 --json | jq -r '.[].id'")]
    Ready {
        /// At most this many
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Tasks that wait, with why
    #[command(after_help = "\
Examples:
  sfctl task blocked
  sfctl task blocked --limit 10 --json")]
    Blocked {
        /// At most this many
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    Complete(CompleteArgs),
    Handoff(HandoffArgs),
}

/// For workers: finish your task and queue it for merge
#[derive(Debug, Args)]
#[command(
    long_about = "\
For workers: finish the task this worker holds. The daemon commits what is left in the
worktree, queues a merge request and moves the task to `review`. With --no-changes, a branch
without commits closes the task as nothing to merge instead.

Only a worker started by sfd can do this: the lease token comes from SF_RUN, which sfd sets
in the worker's environment (with SF_WORKSPACE and SF_SOCKET). Humans close tasks with
`sfctl task close ID`. If sfd is restarting, this waits for it (up to SF_CONNECT_WAIT
seconds, default 120) instead of failing.",
    after_help = "\
Examples:
  sfctl task complete --summary \"Fixed the race in the login test; added a regression test\"
  sfctl task complete --no-changes --summary \"Already fixed upstream\""
)]
pub struct CompleteArgs {
    /// What was done (recorded as a note on the task)
    #[arg(long, value_name = "TEXT")]
    pub summary: Option<String>,
    /// If the branch has no commits, close the task as nothing to merge
    #[arg(long)]
    pub no_changes: bool,
}

/// For workers: give your task back to the pool, with a note for the next worker
#[derive(Debug, Args)]
#[command(
    long_about = "\
For workers: hand the task this worker holds back to the pool, with a note for the next
worker. The branch and worktree are kept, so the next worker continues where this one stopped.

Only a worker started by sfd can do this: the lease token comes from SF_RUN.",
    after_help = "\
Examples:
  sfctl task handoff --note \"Parser done; the CLI flags in src/cli.rs still need tests\"
  \"$SF_SFCTL\" task handoff --note \"$(cat notes.md)\"    # from a `command` agent's script"
)]
pub struct HandoffArgs {
    /// What the next worker needs to know
    #[arg(long, value_name = "TEXT")]
    pub note: String,
}

/// Create a task
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sfctl task create \"Fix the flaky login test\" -p 2 --type bug --skill rust
  sfctl task create \"Write release notes\" --blocked-by k3f9xq --scheduled-for +2h
  id=$(sfctl task create -q \"Refactor the parser\")")]
pub struct CreateArgs {
    /// One-line title
    pub title: String,
    /// Longer description
    #[arg(short, long, value_name = "TEXT")]
    pub description: Option<String>,
    /// 1 (most urgent) to 5
    #[arg(short, long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub priority: u8,
    /// Plan id or prefix
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<String>,
    /// A task that must close first; repeatable
    #[arg(long, value_name = "ID")]
    pub blocked_by: Vec<String>,
    /// A skill the worker needs; repeatable, or comma-separated (`--skills a,b`)
    #[arg(
        long = "skill",
        visible_alias = "skills",
        value_name = "SKILL",
        value_delimiter = ','
    )]
    pub skills: Vec<String>,
    /// Kind of work
    #[arg(long = "type", value_parser = wire::<TaskType>(), default_value = "task")]
    pub task_type: TaskType,
    /// Acceptance criteria
    #[arg(long, value_name = "TEXT")]
    pub acceptance: Option<String>,
    /// Not ready before this time (RFC 3339, YYYY-MM-DD, `YYYY-MM-DD HH:MM` UTC, or +2h/30m/3d)
    #[arg(long, value_name = "TIME")]
    pub scheduled_for: Option<String>,
    /// Print only the new task's id
    #[arg(short, long)]
    pub quiet: bool,
}

/// List tasks (every status but deleted, unless filtered)
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sfctl task list
  sfctl task list --status open,in_progress --plan 7hm2pa
  sfctl task list --assignee w1 --json | jq -r '.[].id'
  sfctl task list --ready --limit 10")]
pub struct ListArgs {
    /// Only this status; repeatable or comma-separated
    #[arg(long, value_parser = wire::<TaskStatus>(), value_delimiter = ',', conflicts_with = "all")]
    pub status: Vec<TaskStatus>,
    /// Only tasks assigned to this agent
    #[arg(long, value_name = "AGENT")]
    pub assignee: Option<String>,
    /// Only tasks of this plan
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<String>,
    /// Only ready tasks, in dispatch order
    #[arg(long)]
    pub ready: bool,
    /// At most this many
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Include deleted (tombstone) tasks
    #[arg(long)]
    pub all: bool,
}

/// Change a task's fields
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sfctl task update k3f9xq -p 1 --note \"customers hit this\"
  sfctl task update k3f9xq --skill rust --skill sql --no-plan")]
pub struct UpdateArgs {
    /// Task id or unique prefix
    pub id: String,
    /// New title
    #[arg(long)]
    pub title: Option<String>,
    /// New description
    #[arg(short, long, value_name = "TEXT")]
    pub description: Option<String>,
    /// New priority, 1 (most urgent) to 5
    #[arg(short, long, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub priority: Option<u8>,
    /// New kind of work
    #[arg(long = "type", value_parser = wire::<TaskType>())]
    pub task_type: Option<TaskType>,
    /// New acceptance criteria
    #[arg(long, value_name = "TEXT")]
    pub acceptance: Option<String>,
    /// Required skill; repeatable, or comma-separated (`--skills a,b`); replaces the set
    #[arg(
        long = "skill",
        visible_alias = "skills",
        value_name = "SKILL",
        value_delimiter = ',',
        conflicts_with = "no_skills"
    )]
    pub skills: Vec<String>,
    /// Remove every required skill
    #[arg(long)]
    pub no_skills: bool,
    /// Move to a plan
    #[arg(long, value_name = "PLAN", conflicts_with = "no_plan")]
    pub plan: Option<String>,
    /// Take out of its plan
    #[arg(long)]
    pub no_plan: bool,
    /// Not ready before this time (RFC 3339, YYYY-MM-DD, `YYYY-MM-DD HH:MM` UTC, or +2h/30m/3d)
    #[arg(long, value_name = "TIME", conflicts_with = "no_schedule")]
    pub scheduled_for: Option<String>,
    /// Remove the schedule
    #[arg(long)]
    pub no_schedule: bool,
    /// Append a note
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Task id or unique prefix
    pub id: String,
    /// Why (recorded as a note and in the audit log)
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeferArgs {
    /// Task id or unique prefix
    pub id: String,
    /// Until when (RFC 3339, YYYY-MM-DD, `YYYY-MM-DD HH:MM` UTC, or +2h/30m/3d)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Why
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct BlockArgs {
    /// Task id or unique prefix
    pub id: String,
    /// Why it is blocked
    #[arg(long)]
    pub reason: String,
}

/// Checks the shape of a task or plan id before it goes to the daemon.
pub fn check_id(s: &str) -> CliResult<String> {
    sf_proto::normalize_prefix(s).map_err(|e| CliError::user(e.to_string()))
}

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
            if ctx.ui.json {
                return ctx.ui.json_value(&tasks);
            }
            if tasks.is_empty() {
                ctx.ui.status("no tasks");
                return Ok(());
            }
            let text = render_tasks(&tasks, ctx.ui.color, ctx.ui.width(), now);
            ctx.ui.line(text)
        }
        TaskCommand::Show { id } => {
            let resp = ctx.request(&Request::ShowTask { id: check_id(&id)? })?;
            let task = expect_response!(resp, Response::Task(t) => t);
            if ctx.ui.json {
                return ctx.ui.json_value(&task);
            }
            show(&mut ctx.ui, &task, now)
        }
        TaskCommand::Update(args) => update(ctx, args, now),
        TaskCommand::Close(a) => change(ctx, &a.id, StatusChange::Close, a.reason, None),
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
            if ctx.ui.json {
                return ctx.ui.json_value(&tasks);
            }
            if tasks.is_empty() {
                ctx.ui.status("no ready tasks");
                return Ok(());
            }
            let rows = ready_rows(&tasks);
            ctx.ui
                .table(&["ID", "EFF", "PRI", "TYPE", "SKILLS", "TITLE"], rows)
        }
        TaskCommand::Blocked { limit } => {
            let resp = ctx.request(&Request::BlockedTasks { limit })?;
            let tasks = expect_response!(resp, Response::Waiting(t) => t);
            if ctx.ui.json {
                return ctx.ui.json_value(&tasks);
            }
            if tasks.is_empty() {
                ctx.ui.status("no waiting tasks");
                return Ok(());
            }
            let text = render_waiting(&tasks, ctx.ui.color, ctx.ui.width(), now);
            ctx.ui.line(text)
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
    };
    let resp = ctx.request(&Request::CreateTask { task })?;
    let task = expect_response!(resp, Response::Task(t) => t);
    if ctx.ui.json {
        return ctx.ui.json_value(&task);
    }
    if args.quiet {
        return ctx.ui.line(task.task.id.as_str());
    }
    ctx.ui.line(format!(
        "created task {}: {}",
        task.task.id, task.task.title
    ))
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
    if ctx.ui.json {
        return ctx.ui.json_value(&task);
    }
    ctx.ui.line(format!(
        "updated task {}: {}",
        task.task.id, task.task.title
    ))
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
    if ctx.ui.json {
        return ctx.ui.json_value(&task);
    }
    let new = paint(
        ctx.ui.color,
        task.task.status.as_str(),
        status_color(task.task.status),
    );
    let line = match previous_status(&task) {
        Some(old) if old != task.task.status.as_str() => {
            format!("task {}: {old} -> {new}", task.task.id)
        }
        _ => format!("task {}: now {new}", task.task.id),
    };
    ctx.ui.line(line)
}

/// The status before the latest status change, read from the task's audit events.
fn previous_status(task: &TaskDetail) -> Option<String> {
    task.events.iter().rev().find_map(|e| {
        let before = e.before.as_ref()?.get("status")?.as_str()?;
        let after = e.after.as_ref()?.get("status")?.as_str()?;
        (before != after).then(|| before.to_owned())
    })
}

/// The task table: ID PRI STATUS TYPE ASSIGNEE TITLE.
pub fn render_tasks(
    tasks: &[TaskSummary],
    color: bool,
    width: Option<u16>,
    now: Timestamp,
) -> String {
    let rows = tasks.iter().map(|t| task_row(t, color, now)).collect();
    crate::output::render_table(
        &["ID", "PRI", "STATUS", "TYPE", "ASSIGNEE", "TITLE"],
        rows,
        color,
        width,
    )
}

fn task_row(t: &TaskSummary, color: bool, now: Timestamp) -> Vec<Cell> {
    let mut status = t.status.to_string();
    if let Some(until) = t.defer_until.filter(|_| t.status == TaskStatus::Deferred) {
        status = format!("{status} ({})", time::relative(until, now));
    }
    vec![
        cell(color, &t.id, None),
        cell(color, t.priority, None),
        cell(color, status, status_color(t.status)),
        cell(color, t.task_type, None),
        cell(color, or_dash(t.assignee.as_ref()), None),
        cell(color, &t.title, None),
    ]
}

fn ready_rows(tasks: &[ReadyTask]) -> Vec<Vec<Cell>> {
    tasks
        .iter()
        .map(|r| {
            let t = &r.task;
            vec![
                Cell::new(&t.id),
                Cell::new(r.effective_priority),
                Cell::new(t.priority),
                Cell::new(t.task_type),
                Cell::new(if t.skills.is_empty() {
                    "-".to_owned()
                } else {
                    t.skills.join(",")
                }),
                Cell::new(&t.title),
            ]
        })
        .collect()
}

/// The `task blocked` table: ID PRI STATUS TITLE WAITING ON.
pub fn render_waiting(
    tasks: &[WaitingTask],
    color: bool,
    width: Option<u16>,
    now: Timestamp,
) -> String {
    crate::output::render_table(
        &["ID", "PRI", "STATUS", "TITLE", "WAITING ON"],
        waiting_rows(tasks, color, now),
        color,
        width,
    )
}

fn waiting_rows(tasks: &[WaitingTask], color: bool, now: Timestamp) -> Vec<Vec<Cell>> {
    tasks
        .iter()
        .map(|w| {
            let t = &w.task;
            vec![
                cell(color, &t.id, None),
                cell(color, t.priority, None),
                cell(color, t.status, status_color(t.status)),
                cell(color, &t.title, None),
                cell(
                    color,
                    w.reasons
                        .iter()
                        .map(|r| time::reason(&crate::output::one_line(r), now))
                        .collect::<Vec<_>>()
                        .join("; "),
                    None,
                ),
            ]
        })
        .collect()
}

pub fn show(ui: &mut Ui, d: &TaskDetail, now: Timestamp) -> CliResult {
    let t = &d.task;
    ui.line(format!("task {}: {}", t.id, t.title))?;
    let mut status = ui.paint(t.status.as_str(), status_color(t.status));
    if t.status == TaskStatus::Open {
        status.push_str(if d.ready { " (ready)" } else { " (waiting)" });
    }
    let mut pairs = vec![
        ("status", status),
        (
            "priority",
            if d.effective_priority == t.priority {
                t.priority.to_string()
            } else {
                format!("{} (effective {})", t.priority, d.effective_priority)
            },
        ),
        ("type", t.task_type.to_string()),
        ("assignee", or_dash(t.assignee.as_ref())),
        ("plan", or_dash(t.plan.as_ref())),
        (
            "skills",
            if t.skills.is_empty() {
                "-".to_owned()
            } else {
                t.skills.join(", ")
            },
        ),
    ];
    if let Some(s) = t.scheduled_for {
        pairs.push(("scheduled for", time::both(s, now)));
    }
    if let Some(s) = t.defer_until {
        pairs.push(("deferred until", time::both(s, now)));
    }
    if let Some(b) = &d.branch {
        pairs.push(("branch", b.clone()));
    }
    if let Some(w) = &d.worktree {
        pairs.push(("worktree", w.clone()));
    }
    if d.attempts > 0 {
        pairs.push(("attempts", format!("{} failed", d.attempts)));
    }
    if let Some(r) = d.retry_at {
        pairs.push(("retry at", time::both(r, now)));
    }
    if let Some(f) = &d.fix_of {
        pairs.push(("fixes", f.to_string()));
    }
    if !d.fix_tasks.is_empty() {
        pairs.push(("fix tasks", super::mr::fix_tasks_text(&d.fix_tasks)));
    }
    pairs.push(("created", time::both(t.created_at, now)));
    pairs.push(("updated", time::both(t.updated_at, now)));
    if let Some(r) = &d.close_reason {
        pairs.push(("close reason", r.clone()));
    }
    ui.line(key_values(&pairs))?;
    let section = |ui: &mut Ui, title: &str, body: &str| -> CliResult {
        ui.line(format!("\n{title}:"))?;
        ui.line(indent(body))
    };
    if !d.description.trim().is_empty() {
        section(ui, "description", &d.description)?;
    }
    if !d.acceptance.trim().is_empty() {
        section(ui, "acceptance", &d.acceptance)?;
    }
    if !d.waiting.is_empty() {
        let body: Vec<String> = d
            .waiting
            .iter()
            .map(|w| format!("- {}", time::humanize(w, now)))
            .collect();
        section(ui, "waiting", &body.join("\n"))?;
    }
    if !d.depends_on.is_empty() {
        let text = dep::render_deps(&d.depends_on, dep::Side::Blocker, ui.color, now);
        section(ui, "depends on", &text)?;
    }
    if !d.dependents.is_empty() {
        let text = dep::render_deps(&d.dependents, dep::Side::Blocked, ui.color, now);
        section(ui, "dependents", &text)?;
    }
    if !d.notes.is_empty() {
        let body: Vec<String> = d
            .notes
            .iter()
            .map(|n| format!("{} {} [{}] {}", time::short(n.at), n.author, n.kind, n.text))
            .collect();
        section(ui, "notes", &body.join("\n"))?;
    }
    if !d.messages.is_empty() {
        let body: Vec<String> = d
            .messages
            .iter()
            .map(|m| {
                format!(
                    "{} #{} {} -> {}: {}",
                    time::short(m.at),
                    m.id,
                    m.from,
                    m.to,
                    m.subject
                )
            })
            .collect();
        section(ui, "messages", &body.join("\n"))?;
    }
    if !d.runs.is_empty() {
        ui.line("\nruns:")?;
        agent::run_table(ui, &d.runs, agent::RunsOf::Task)?;
    }
    if !d.events.is_empty() {
        let body: Vec<String> = d
            .events
            .iter()
            // indented by two in the section
            .map(|e| events::event_line(e, ui.color, ui.width().map(|w| w.saturating_sub(2))))
            .collect();
        section(ui, "events", &body.join("\n"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
