//! `sfctl plan create|activate|list|show|cancel`.

use clap::Subcommand;
use sf_proto::{PlanDetail, PlanFilter, PlanStatus, PlanSummary, Request, Response, TaskStatus};

use crate::args::check_id;
use crate::args::wire;
use crate::commands::task::render_tasks;
use crate::context::Context;
use crate::context::expect_response;
use crate::error::{CliError, CliResult};
use crate::output::{indent, key_values, plan_status_color};
use crate::time;

/// Group tasks into plans; tasks of a draft plan are never dispatched
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Create a plan (a draft unless --active)
    #[command(after_help = "\
Examples:
  sfctl plan create \"Login rewrite\" -d \"Replace the session code\"
  PLAN=$(sfctl plan create \"Login rewrite\" -q)
  sfctl task create \"Add token table\" --plan <PLAN_ID>
  sfctl plan activate <PLAN_ID>")]
    Create {
        /// Title
        title: String,
        /// Description
        #[arg(short, long, value_name = "TEXT")]
        description: Option<String>,
        /// Start active, so its tasks can be dispatched right away
        #[arg(long)]
        active: bool,
        /// Print only the new plan's id
        #[arg(short, long)]
        quiet: bool,
    },
    /// Activate a draft plan so its tasks can be dispatched
    #[command(after_help = "\
Examples:
  sfctl plan activate 7hm2pa
  sfctl plan create \"Login page\" --active    # create it active instead")]
    Activate {
        /// Plan id or unique prefix
        id: String,
    },
    /// List plans with their progress, oldest first
    #[command(after_help = "\
Examples:
  sfctl plan list
  sfctl plan list --status draft,active
  sfctl plan list --limit 5 --json          # the five newest")]
    List {
        /// Only this status; repeatable or comma-separated
        #[arg(long, value_parser = wire::<PlanStatus>(), value_delimiter = ',')]
        status: Vec<PlanStatus>,
        /// Only the newest N
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Show a plan: progress by status and its tasks
    #[command(after_help = "\
Examples:
  sfctl plan show 7hm2pa
  sfctl plan show 7hm2pa --json")]
    Show {
        /// Plan id or unique prefix
        id: String,
    },
    /// Cancel a plan
    #[command(after_help = "\
Examples:
  sfctl plan cancel 7hm2pa
  sfctl plan cancel 7hm2pa --json | jq -r .status    # cancelled")]
    Cancel {
        /// Plan id or unique prefix
        id: String,
    },
}

pub fn run(ctx: &mut Context, cmd: PlanCommand) -> CliResult {
    match cmd {
        PlanCommand::Create {
            title,
            description,
            active,
            quiet,
        } => {
            if title.trim().is_empty() {
                return Err(CliError::user("the title must not be empty"));
            }
            let req = Request::CreatePlan {
                title,
                description: description.unwrap_or_default(),
                active,
            };
            let plan = plan_response(ctx, &req)?;
            let Some(plan) = plan else { return Ok(()) };
            if quiet {
                return ctx.ui.line(plan.plan.id.as_str());
            }
            ctx.ui.line(format!(
                "created plan {}: {} ({})",
                plan.plan.id, plan.plan.title, plan.plan.status
            ))
        }
        PlanCommand::Activate { id } => {
            let plan = plan_response(ctx, &Request::ActivatePlan { id: check_id(&id)? })?;
            let Some(plan) = plan else { return Ok(()) };
            ctx.ui
                .line(format!("plan {}: {}", plan.plan.id, plan.plan.status))
        }
        PlanCommand::Cancel { id } => {
            let plan = plan_response(ctx, &Request::CancelPlan { id: check_id(&id)? })?;
            let Some(plan) = plan else { return Ok(()) };
            ctx.ui
                .line(format!("plan {}: {}", plan.plan.id, plan.plan.status))
        }
        PlanCommand::List { status, limit } => {
            let filter = PlanFilter { status, limit };
            let resp = ctx.request(&Request::ListPlans { filter })?;
            let plans = expect_response!(resp, Response::Plans(p) => p);
            ctx.ui.emit(&plans, |ui, plans| {
                if plans.is_empty() {
                    ui.status("no plans");
                    return Ok(());
                }
                let now = chrono::Utc::now();
                let rows = plans
                    .iter()
                    .map(|p| {
                        vec![
                            ui.cell(&p.id, None),
                            ui.cell(p.status, plan_status_color(p.status)),
                            ui.cell(progress(p), None),
                            ui.cell(time::relative(p.created_at, now), None),
                            ui.cell(&p.title, None),
                        ]
                    })
                    .collect();
                ui.table(&["ID", "STATUS", "PROGRESS", "CREATED", "TITLE"], rows)
            })
        }
        PlanCommand::Show { id } => {
            let plan = plan_response(ctx, &Request::ShowPlan { id: check_id(&id)? })?;
            let Some(plan) = plan else { return Ok(()) };
            let now = chrono::Utc::now();
            let p = &plan.plan;
            let counts = if p.counts.is_empty() {
                "-".to_owned()
            } else {
                p.counts
                    .iter()
                    .map(|(s, n)| format!("{s} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            ctx.ui.line(format!("plan {}: {}", p.id, p.title))?;
            ctx.ui.line(key_values(&[
                (
                    "status",
                    ctx.ui.paint(p.status.as_str(), plan_status_color(p.status)),
                ),
                ("progress", progress(p)),
                ("tasks", counts),
                ("created", time::both(p.created_at, now)),
                ("updated", time::both(p.updated_at, now)),
            ]))?;
            if !p.description.trim().is_empty() {
                ctx.ui
                    .line(format!("\ndescription:\n{}", indent(&p.description)))?;
            }
            if !plan.tasks.is_empty() {
                ctx.ui.line("")?;
                let text = render_tasks(&plan.tasks, ctx.ui.color, ctx.ui.width(), now);
                ctx.ui.line(text)?;
            }
            Ok(())
        }
    }
}

/// Sends a request answered by `Response::Plan`; prints it under `--json` and returns `None`.
fn plan_response(ctx: &mut Context, req: &Request) -> CliResult<Option<PlanDetail>> {
    let resp = ctx.request(req)?;
    let plan = expect_response!(resp, Response::Plan(p) => p);
    if ctx.ui.json {
        ctx.ui.json_value(&plan)?;
        return Ok(None);
    }
    Ok(Some(plan))
}

/// `3/6 closed`.
fn progress(p: &PlanSummary) -> String {
    let closed = p.counts.get(&TaskStatus::Closed).copied().unwrap_or(0);
    format!("{closed}/{} closed", p.total)
}
