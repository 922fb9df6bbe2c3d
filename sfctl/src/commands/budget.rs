//! `sfctl budget set|show`: limits on what work may spend, per task, plan and agent.

use clap::{Args, Subcommand};
use comfy_table::Color;
use sf_proto::{BudgetInfo, BudgetLimits, BudgetScope, Request, Response};

use crate::context::{Context, expect_response};
use crate::error::{CliError, CliResult};
use crate::output::Ui;

/// Budgets: limits on tokens, cost, tool calls and wall time, per task, plan and agent
#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Set a budget's limits (a human's decision); limits not given keep their value
    ///
    /// A task's budget counts its runs and the runs of the tasks they create; a plan's,
    /// every run of its tasks; an agent's, its runs of the day (UTC). A run is charged up
    /// that chain as its CLI reports usage; when a limit is reached its next tool call is
    /// denied and it is stopped (its work saved); a plan's budget stops all the plan's
    /// runs; work whose budget ran out is not started (BUDGET_EXHAUSTED).
    #[command(after_help = "\
Examples:
  sfctl budget set --task k3f9xq --tokens 200000 --tool-calls 300 --steps 40
  sfctl budget set --plan p7a2 --cost 5
  sfctl budget set --agent w1 --wall 2h")]
    Set(SetArgs),
    /// Show budgets and what has been spent against them
    #[command(after_help = "\
Examples:
  sfctl budget show
  sfctl budget show --plan p7a2 --json")]
    Show(Which),
}

/// Which budget.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct Which {
    /// A task's (and the tasks its runs create)
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// A plan's
    #[arg(long, value_name = "ID")]
    pub plan: Option<String>,
    /// An agent's, per day
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
}

impl Which {
    fn pick(&self) -> Option<(BudgetScope, String)> {
        match (&self.task, &self.plan, &self.agent) {
            (Some(t), _, _) => Some((BudgetScope::Task, t.clone())),
            (_, Some(p), _) => Some((BudgetScope::Plan, p.clone())),
            (_, _, Some(a)) => Some((BudgetScope::Agent, a.clone())),
            _ => None,
        }
    }
}

/// `budget set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub which: Which,
    /// Tokens in and out
    #[arg(long)]
    pub tokens: Option<u64>,
    /// US dollars, as the CLIs report them
    #[arg(long, value_name = "USD")]
    pub cost: Option<f64>,
    /// Tool calls
    #[arg(long)]
    pub tool_calls: Option<u64>,
    /// Model steps (turns)
    #[arg(long)]
    pub steps: Option<u64>,
    /// Wall time of the runs, e.g. `30m`
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wall: Option<std::time::Duration>,
}

pub fn run(ctx: &mut Context, cmd: BudgetCommand) -> CliResult {
    let request = match cmd {
        BudgetCommand::Set(a) => {
            let (scope, subject) = a.which.pick().ok_or_else(|| {
                CliError::user("name the budget: --task ID, --plan ID or --agent NAME")
            })?;
            Request::SetBudget {
                scope,
                subject,
                limits: BudgetLimits {
                    tokens: a.tokens,
                    cost_usd: a.cost,
                    tool_calls: a.tool_calls,
                    steps: a.steps,
                    wall_secs: a.wall.map(|d| d.as_secs()),
                },
            }
        }
        BudgetCommand::Show(w) => {
            let (scope, subject) = w.pick().unzip();
            Request::ShowBudgets { scope, subject }
        }
    };
    let resp = ctx.request(&request)?;
    let list = expect_response!(resp, Response::Budgets(b) => b);
    ctx.ui.emit(&list, |ui, list| table(ui, list))
}

fn of<T: std::fmt::Display>(used: T, limit: Option<T>) -> String {
    match limit {
        Some(l) => format!("{used}/{l}"),
        None => format!("{used}"),
    }
}

fn table(ui: &mut Ui, list: &[BudgetInfo]) -> CliResult {
    if list.is_empty() {
        return ui.line("no budgets");
    }
    let rows = list
        .iter()
        .map(|b| {
            vec![
                ui.cell(format!("{} {}", b.scope, b.subject), None),
                ui.cell(of(b.used.tokens, b.limits.tokens), None),
                ui.cell(
                    of(
                        format!("${:.2}", b.used.cost_usd),
                        b.limits.cost_usd.map(|c| format!("${c:.2}")),
                    ),
                    None,
                ),
                ui.cell(of(b.used.tool_calls, b.limits.tool_calls), None),
                ui.cell(of(b.used.steps, b.limits.steps), None),
                ui.cell(of(b.used.wall_secs, b.limits.wall_secs), None),
                match &b.exhausted {
                    Some(e) => ui.cell(format!("exhausted: {e}"), Some(Color::Red)),
                    None => ui.cell("ok", Some(Color::Green)),
                },
            ]
        })
        .collect();
    ui.table(
        &[
            "BUDGET", "TOKENS", "COST", "CALLS", "STEPS", "WALL S", "STATE",
        ],
        rows,
    )
}
