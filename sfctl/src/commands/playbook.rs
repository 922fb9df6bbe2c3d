//! `sfctl playbook list|show|validate|run`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Subcommand;
use sf_proto::{PlaybookInfo, Request, Response};

use crate::commands::steward::key_value;
use crate::commands::task::render_tasks;
use crate::context::{Context, expect_response};
use crate::error::{CliError, CliResult};
use crate::output::{or_dash, truncate};

/// Playbooks: templates that become plans of tasks
#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// List the built-in playbooks and the workspace's (`.sf/playbooks/`)
    List,
    /// Show a playbook's variables and steps
    Show {
        /// Its name
        name: String,
    },
    /// Check a playbook file without running it
    #[command(after_help = "Example:\n  sfctl playbook validate .sf/playbooks/release.toml")]
    Validate {
        /// The TOML file
        file: PathBuf,
    },
    /// Turn a playbook into an active plan with one task per step whose condition holds
    #[command(after_help = "\
Examples:
  sfctl playbook run feature --var feature=\"CSV export\" --var with_docs=true
  sfctl playbook show feature      # its variables")]
    Run {
        /// Its name
        name: String,
        /// A variable (repeatable)
        #[arg(long = "var", value_name = "KEY=VALUE", value_parser = key_value)]
        vars: Vec<(String, String)>,
    },
}

fn show(ctx: &mut Context, p: &PlaybookInfo) -> CliResult {
    ctx.ui
        .line(format!("playbook {} ({}): {}", p.name, p.source, p.title))?;
    if !p.description.trim().is_empty() {
        ctx.ui.line(p.description.trim())?;
    }
    if !p.vars.is_empty() {
        ctx.ui.line("\nvariables:")?;
        let rows = p
            .vars
            .iter()
            .map(|v| {
                vec![
                    ctx.ui.cell(&v.name, None),
                    ctx.ui.cell(&v.kind, None),
                    ctx.ui.cell(if v.required { "yes" } else { "no" }, None),
                    ctx.ui.cell(or_dash(v.default.as_deref()), None),
                    ctx.ui.cell(truncate(&v.description, 60), None),
                ]
            })
            .collect();
        ctx.ui.table(
            &["NAME", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"],
            rows,
        )?;
    }
    ctx.ui.line("\nsteps:")?;
    let rows = p
        .steps
        .iter()
        .map(|s| {
            vec![
                ctx.ui.cell(&s.id, None),
                ctx.ui.cell(&s.kind, None),
                ctx.ui.cell(s.priority, None),
                ctx.ui.cell(
                    if s.depends_on.is_empty() {
                        "-".to_owned()
                    } else {
                        s.depends_on.join(", ")
                    },
                    None,
                ),
                ctx.ui.cell(or_dash(s.condition.as_deref()), None),
                ctx.ui.cell(truncate(&s.title, 50), None),
            ]
        })
        .collect();
    ctx.ui.table(
        &["ID", "KIND", "PRI", "DEPENDS ON", "CONDITION", "TITLE"],
        rows,
    )
}

pub fn run(ctx: &mut Context, cmd: PlaybookCommand) -> CliResult {
    match cmd {
        PlaybookCommand::List => {
            let resp = ctx.request(&Request::ListPlaybooks)?;
            let list = expect_response!(resp, Response::Playbooks(l) => l);
            if ctx.ui.json {
                return ctx.ui.json_value(&list);
            }
            let rows = list
                .iter()
                .map(|p| {
                    vec![
                        ctx.ui.cell(&p.name, None),
                        ctx.ui.cell(truncate(&p.source, 40), None),
                        ctx.ui.cell(p.steps.len(), None),
                        ctx.ui.cell(truncate(&p.title, 60), None),
                    ]
                })
                .collect();
            ctx.ui.table(&["NAME", "SOURCE", "STEPS", "TITLE"], rows)
        }
        PlaybookCommand::Show { name } => {
            let resp = ctx.request(&Request::ShowPlaybook { name })?;
            let p = expect_response!(resp, Response::Playbook(p) => p);
            if ctx.ui.json {
                return ctx.ui.json_value(&p);
            }
            show(ctx, &p)
        }
        PlaybookCommand::Validate { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::io(format!("failed to read {}", file.display()), &e))?;
            let source = file.display().to_string();
            let resp = ctx.request(&Request::ValidatePlaybook {
                source: source.clone(),
                text,
            })?;
            let p = expect_response!(resp, Response::Playbook(p) => p);
            if ctx.ui.json {
                return ctx.ui.json_value(&p);
            }
            ctx.ui.line(format!(
                "{source} is a valid playbook: {} ({} steps, {} variables)",
                p.name,
                p.steps.len(),
                p.vars.len()
            ))
        }
        PlaybookCommand::Run { name, vars } => {
            let vars: BTreeMap<String, String> = vars.into_iter().collect();
            let resp = ctx.request(&Request::RunPlaybook { name, vars })?;
            let plan = expect_response!(resp, Response::Plan(p) => p);
            if ctx.ui.json {
                return ctx.ui.json_value(&plan);
            }
            ctx.ui.line(format!(
                "created workflow {}: {} ({} tasks)",
                plan.plan.id,
                plan.plan.title,
                plan.tasks.len()
            ))?;
            let table = render_tasks(
                &plan.tasks,
                ctx.ui.color,
                ctx.ui.width(),
                chrono::Utc::now(),
            );
            ctx.ui.line(table)
        }
    }
}
