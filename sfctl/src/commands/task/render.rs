//! How tasks are shown: the task table, the ready and waiting tables, and `task show`.

use sf_proto::{ReadyTask, TaskDetail, TaskStatus, TaskSummary, Timestamp, WaitingTask};

use crate::commands::{agent, dep, events};
use crate::error::CliResult;
use crate::output::{Cell, Ui, cell, indent, key_values, or_dash, status_color};
use crate::time;

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

pub(super) fn task_row(t: &TaskSummary, color: bool, now: Timestamp) -> Vec<Cell> {
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

pub(super) fn ready_rows(tasks: &[ReadyTask]) -> Vec<Vec<Cell>> {
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

pub(super) fn waiting_rows(tasks: &[WaitingTask], color: bool, now: Timestamp) -> Vec<Vec<Cell>> {
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
        pairs.push((
            "fix tasks",
            crate::commands::mr::fix_tasks_text(&d.fix_tasks),
        ));
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
