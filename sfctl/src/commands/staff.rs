//! Staffing: `sfctl seat`, `sfctl charter`, `sfctl skill`, and the agent lifecycle commands
//! (`agent template|create|draft|dry-run|dry-runs|go-live|run-now|schedule|decommission|
//! discover|import`).

use clap::{Args, Subcommand};
use sf_proto::{
    AgentDetail, Charter, DryRunInfo, Manifest, NewSeat, Request, Response, SeatInfo, SeatKind,
    SkillInfo, TemplateInfo,
};

use crate::args::wire;
use crate::context::{Context, expect_response, user_name};
use crate::error::{CliError, CliResult};
use crate::output::{Ui, key_values};

/// Seats: positions of work, each with a human steward
#[derive(Debug, Subcommand)]
pub enum SeatCommand {
    /// Create a seat: a person's, one agent's, or an agent's whose merges its steward approves
    #[command(after_help = "\
Examples:
  sfctl seat create backend --kind agent --steward alice
  sfctl seat create review --kind hybrid --steward alice --charter review.toml
  sfctl seat create ops --kind human --steward bob")]
    Create {
        /// Its name
        name: String,
        /// Who works it
        #[arg(long, value_parser = wire::<SeatKind>())]
        kind: SeatKind,
        /// A human steward (repeatable; default: you)
        #[arg(long = "steward", value_name = "HUMAN")]
        stewards: Vec<String>,
        /// Its charter: a TOML file of purpose, inputs, outputs, approval_boundaries,
        /// escalation
        #[arg(long, value_name = "FILE")]
        charter: Option<std::path::PathBuf>,
    },
    /// List seats
    #[command(after_help = "\
Examples:
  sfctl seat list
  sfctl seat list --json | jq -r '.[] | select(.kind == \"hybrid\") | .name'")]
    List,
    /// Show a seat, its charter, stewards and agent
    #[command(after_help = "\
Examples:
  sfctl seat show backend
  sfctl seat show backend --json")]
    Show {
        /// Its name
        name: String,
    },
    /// Add or remove stewards (never the last one)
    #[command(after_help = "\
Examples:
  sfctl seat update backend --add-steward carol --remove-steward alice")]
    Update {
        /// Its name
        name: String,
        /// Add this steward (repeatable)
        #[arg(long = "add-steward", value_name = "HUMAN")]
        add: Vec<String>,
        /// Remove this steward (repeatable)
        #[arg(long = "remove-steward", value_name = "HUMAN")]
        remove: Vec<String>,
    },
}

/// Charters and permission manifests
#[derive(Debug, Subcommand)]
pub enum CharterCommand {
    /// Show a seat's charter
    #[command(after_help = "\
Examples:
  sfctl charter show backend
  sfctl charter show backend --json")]
    Show {
        /// The seat
        seat: String,
    },
    /// Set a seat's charter from a TOML file or flags (a human's decision)
    #[command(after_help = "\
Examples:
  sfctl charter set backend --purpose 'Own the API' --escalation 'ask alice'
  sfctl charter set backend --file charter.toml")]
    Set(CharterArgs),
    /// Show an agent's permission manifest: what it covers, its hash and its signature
    #[command(after_help = "\
Examples:
  sfctl charter manifest e-worker-1
  sfctl charter manifest e-worker-1 --json | jq .current")]
    Manifest {
        /// The agent
        agent: String,
    },
    /// Sign an agent's permission manifest as it is now (a human's decision)
    ///
    /// The manifest covers the agent's role and job, adapter, command and model,
    /// capabilities, secret aliases, `can_create_agents`, its job's tool rules and its
    /// budget. Changing any of them later unsigns it, and the agent is not started until a
    /// human signs again (MANIFEST_UNSIGNED).
    #[command(after_help = "\
Examples:
  sfctl charter manifest e-worker-1
  sfctl charter sign-manifest e-worker-1")]
    SignManifest {
        /// The agent
        agent: String,
    },
}

/// `charter set`.
#[derive(Debug, Args)]
pub struct CharterArgs {
    /// The seat
    pub seat: String,
    /// A TOML file with any of the fields below
    #[arg(long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    /// Why the seat exists
    #[arg(long)]
    pub purpose: Option<String>,
    /// What it takes in
    #[arg(long)]
    pub inputs: Option<String>,
    /// What it produces
    #[arg(long)]
    pub outputs: Option<String>,
    /// What needs a human's approval
    #[arg(long)]
    pub approval_boundaries: Option<String>,
    /// Whom it turns to, and when
    #[arg(long)]
    pub escalation: Option<String>,
}

/// Skills: instructions put into the prompts of the agents that have them
#[derive(Debug, Subcommand)]
pub enum SkillCommand {
    /// List skills (`.sf/skills/*.md` and built in), their hashes and pins
    #[command(after_help = "\
Examples:
  sfctl skill list
  sfctl skill list --json")]
    List,
    /// Show a skill's text
    #[command(after_help = "\
Examples:
  sfctl skill show review
  sfctl skill show review --json | jq -r .[0].hash")]
    Show {
        /// Its name
        name: String,
    },
    /// Pin a skill's hash as it is now: an edit afterwards blocks the spawns of agents
    /// that have it (SKILL_HASH_MISMATCH) until a human pins it again
    #[command(after_help = "\
Examples:
  sfctl skill pin review")]
    Pin {
        /// Its name
        name: String,
    },
}

/// `agent template`.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List templates (built in and `.sf/templates/*.toml`)
    #[command(after_help = "\
Examples:
  sfctl agent template list
  sfctl agent template list --json | jq -r '.[].name'")]
    List,
    /// Show a template
    #[command(after_help = "\
Examples:
  sfctl agent template show reviewer
  sfctl agent template show coder --json")]
    Show {
        /// Its name
        name: String,
    },
}

fn read_charter(path: &std::path::Path) -> Result<Charter, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::user(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        CliError::user(format!("{}: {}", path.display(), e.message()))
            .with_hint("keys: purpose, inputs, outputs, approval_boundaries, escalation (strings)")
    })
}

pub fn seat(ctx: &mut Context, cmd: SeatCommand) -> CliResult {
    let request = match cmd {
        SeatCommand::Create {
            name,
            kind,
            mut stewards,
            charter,
        } => {
            if stewards.is_empty() {
                stewards.extend(user_name());
            }
            let charter = charter.as_deref().map(read_charter).transpose()?;
            Request::CreateSeat {
                seat: NewSeat {
                    name,
                    kind,
                    stewards,
                    charter: charter.unwrap_or_default(),
                },
            }
        }
        SeatCommand::List => Request::ListSeats,
        SeatCommand::Show { name } => Request::ShowSeat { name },
        SeatCommand::Update { name, add, remove } => Request::UpdateSeat {
            name,
            charter: None,
            add_stewards: add,
            remove_stewards: remove,
        },
    };
    let resp = ctx.request(&request)?;
    match resp {
        Response::Seats(list) => ctx.ui.emit(&list, |ui, list| seats_table(ui, list)),
        other => {
            let seat = expect_response!(other, Response::Seat(s) => s);
            ctx.ui.emit(&seat, |ui, s| show_seat(ui, s))
        }
    }
}

fn seats_table(ui: &mut Ui, list: &[SeatInfo]) -> CliResult {
    if list.is_empty() {
        return ui.line("no seats; create one with `sfctl seat create NAME --kind agent`");
    }
    let rows = list
        .iter()
        .map(|s| {
            vec![
                ui.cell(&s.name, None),
                ui.cell(s.kind, None),
                ui.cell(s.stewards.join(","), None),
                ui.cell(
                    if s.agents.is_empty() {
                        "-".to_owned()
                    } else {
                        s.agents.join(",")
                    },
                    None,
                ),
                ui.cell(s.open_tasks, None),
            ]
        })
        .collect();
    ui.table(&["SEAT", "KIND", "STEWARDS", "AGENT", "OPEN TASKS"], rows)
}

fn charter_lines(c: &Charter) -> String {
    let or = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    key_values(&[
        ("purpose", or(&c.purpose)),
        ("inputs", or(&c.inputs)),
        ("outputs", or(&c.outputs)),
        ("approval", or(&c.approval_boundaries)),
        ("escalation", or(&c.escalation)),
    ])
}

fn show_seat(ui: &mut Ui, s: &SeatInfo) -> CliResult {
    ui.line(key_values(&[
        ("seat", s.name.clone()),
        ("kind", s.kind.to_string()),
        ("stewards", s.stewards.join(", ")),
        (
            "agent",
            if s.agents.is_empty() {
                "-".to_owned()
            } else {
                s.agents.join(", ")
            },
        ),
        ("open tasks", s.open_tasks.to_string()),
    ]))?;
    ui.line("\ncharter:")?;
    ui.line(charter_lines(&s.charter))
}

pub fn charter(ctx: &mut Context, cmd: CharterCommand) -> CliResult {
    match cmd {
        CharterCommand::Show { seat } => {
            let resp = ctx.request(&Request::ShowSeat { name: seat })?;
            let seat = expect_response!(resp, Response::Seat(s) => s);
            ctx.ui
                .emit(&seat.charter, |ui, c| ui.line(charter_lines(c)))
        }
        CharterCommand::Set(a) => {
            let mut c = match &a.file {
                Some(f) => read_charter(f)?,
                None => {
                    let resp = ctx.request(&Request::ShowSeat {
                        name: a.seat.clone(),
                    })?;
                    expect_response!(resp, Response::Seat(s) => s).charter
                }
            };
            let set = |f: &mut String, v: Option<String>| {
                if let Some(v) = v {
                    *f = v;
                }
            };
            set(&mut c.purpose, a.purpose);
            set(&mut c.inputs, a.inputs);
            set(&mut c.outputs, a.outputs);
            set(&mut c.approval_boundaries, a.approval_boundaries);
            set(&mut c.escalation, a.escalation);
            let resp = ctx.request(&Request::UpdateSeat {
                name: a.seat,
                charter: Some(c),
                add_stewards: Vec::new(),
                remove_stewards: Vec::new(),
            })?;
            let seat = expect_response!(resp, Response::Seat(s) => s);
            ctx.ui.emit(&seat, |ui, s| show_seat(ui, s))
        }
        CharterCommand::Manifest { agent } => {
            let resp = ctx.request(&Request::ShowManifest { name: agent })?;
            let m = expect_response!(resp, Response::Manifest(m) => m);
            ctx.ui.emit(&m, |ui, m| show_manifest(ui, m))
        }
        CharterCommand::SignManifest { agent } => {
            let resp = ctx.request(&Request::SignManifest { name: agent })?;
            let m = expect_response!(resp, Response::Manifest(m) => m);
            ctx.ui.emit(&m, |ui, m| {
                ui.line(format!("signed the manifest of {}: {}", m.agent, m.hash))?;
                ui.line(format!(
                    "next: `sfctl agent dry-run {}` (a draft), or it works as it is (live)",
                    m.agent
                ))
            })
        }
    }
}

fn show_manifest(ui: &mut Ui, m: &Manifest) -> CliResult {
    ui.line(key_values(&[
        ("agent", m.agent.clone()),
        ("hash", m.hash.clone()),
        (
            "signed",
            match (&m.signed, &m.signed_by) {
                (Some(h), Some(by)) if m.current => format!("yes, by {by} ({h})"),
                (Some(h), _) => format!("NO: {h} was signed; the configuration changed since"),
                _ => "no".to_owned(),
            },
        ),
    ]))?;
    ui.line(serde_json::to_string_pretty(&m.covers).unwrap_or_default())
}

pub fn skill(ctx: &mut Context, cmd: SkillCommand) -> CliResult {
    let (request, show) = match cmd {
        SkillCommand::List => (Request::ListSkills, false),
        SkillCommand::Show { name } => (Request::ShowSkill { name }, true),
        SkillCommand::Pin { name } => (Request::PinSkill { name }, false),
    };
    let resp = ctx.request(&request)?;
    let list = expect_response!(resp, Response::Skills(s) => s);
    ctx.ui.emit(&list, |ui, list| {
        if show && let Some(k) = list.first() {
            ui.line(key_values(&[
                ("skill", k.name.clone()),
                ("source", k.source.clone()),
                ("hash", k.hash.clone()),
                ("pinned", k.pinned.clone().unwrap_or_else(|| "-".into())),
            ]))?;
            return ui.line(format!("\n{}", k.text.as_deref().unwrap_or("")));
        }
        skills_table(ui, list)
    })
}

fn skills_table(ui: &mut Ui, list: &[SkillInfo]) -> CliResult {
    let rows = list
        .iter()
        .map(|k| {
            let pin = match &k.pinned {
                None => "-".to_owned(),
                Some(p) if *p == k.hash => "pinned".to_owned(),
                Some(_) => "CHANGED".to_owned(),
            };
            vec![
                ui.cell(&k.name, None),
                ui.cell(&k.source, None),
                ui.cell(sf_core_short(&k.hash), None),
                ui.cell(pin, None),
                ui.cell(
                    k.required_by
                        .iter()
                        .map(|j| j.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    None,
                ),
            ]
        })
        .collect();
    ui.table(&["SKILL", "SOURCE", "HASH", "PIN", "REQUIRED BY"], rows)
}

fn sf_core_short(hash: &str) -> String {
    hash.get(..19).unwrap_or(hash).to_owned()
}

pub fn template(ctx: &mut Context, cmd: TemplateCommand) -> CliResult {
    let (request, show) = match cmd {
        TemplateCommand::List => (Request::ListTemplates, false),
        TemplateCommand::Show { name } => (Request::ShowTemplate { name }, true),
    };
    let resp = ctx.request(&request)?;
    let list = expect_response!(resp, Response::Templates(t) => t);
    if show && let Some(t) = list.first() {
        return ctx.ui.emit(t, show_template);
    }
    ctx.ui.emit(&list, |ui, list| {
        let rows = list
            .iter()
            .map(|t| {
                vec![
                    ui.cell(&t.name, None),
                    ui.cell(format!("{} {}", t.spec.role, t.spec.job), None),
                    ui.cell(&t.source, None),
                    ui.cell(&t.description, None),
                ]
            })
            .collect();
        ui.table(&["TEMPLATE", "ROLE/JOB", "SOURCE", "DESCRIPTION"], rows)
    })
}

fn show_template(ui: &mut Ui, t: &TemplateInfo) -> CliResult {
    ui.line(key_values(&[
        ("template", t.name.clone()),
        ("source", t.source.clone()),
        ("about", t.description.clone()),
        ("role", format!("{} {}", t.spec.mode, t.spec.role)),
        ("job", t.spec.job.to_string()),
        ("adapter", t.spec.adapter.to_string()),
        ("skills", t.spec.skills.join(", ")),
        ("sample task", t.sample_task.title.clone()),
    ]))?;
    ui.line("\ndraft charter:")?;
    ui.line(charter_lines(&t.charter))
}

/// Prints a draft and what comes next.
pub fn drafted(ctx: &mut Context, resp: Response) -> CliResult {
    let (agent, seat) = expect_response!(resp, Response::Drafted { agent, seat } => (agent, seat));
    let out = serde_json::json!({"agent": agent, "seat": seat});
    ctx.ui.emit(&out, |ui, _| {
        let s = &agent.agent.spec;
        ui.line(format!(
            "drafted agent {} ({} {}, job {}): {}",
            s.name, s.mode, s.role, s.job, agent.agent.status
        ))?;
        if let Some(seat) = &seat {
            ui.line(format!("\nseat {} charter (draft):", seat.name))?;
            ui.line(charter_lines(&seat.charter))?;
        }
        ui.line(format!(
            "\nnext: a human reviews and signs it (`sfctl charter manifest {0}`, `sfctl charter \
             sign-manifest {0}`), dry-runs it (`sfctl agent dry-run {0}`), and takes it live \
             (`sfctl agent go-live {0}`)",
            s.name
        ))
    })
}

/// Prints dry runs.
pub fn dry_runs(ui: &mut Ui, list: &[DryRunInfo]) -> CliResult {
    if list.is_empty() {
        return ui.line("no dry runs");
    }
    for d in list {
        let e = d.evidence.clone().unwrap_or_default();
        ui.line(key_values(&[
            ("dry run", format!("#{} (run {})", d.id, d.run.0)),
            (
                "status",
                match &d.reason {
                    Some(r) => format!("{}: {r}", d.status),
                    None => d.status.to_string(),
                },
            ),
            ("task", d.task.clone()),
            ("manifest", d.manifest.clone()),
            (
                "tool calls",
                format!("{} ({} denied, {} held)", e.tool_calls, e.denied, e.held),
            ),
            (
                "cost",
                e.usage
                    .as_ref()
                    .and_then(|u| u.cost_usd)
                    .map_or_else(|| "-".to_owned(), |c| format!("${c:.4}")),
            ),
            (
                "transcript",
                e.log_path.clone().unwrap_or_else(|| "-".into()),
            ),
        ]))?;
        if !e.diff_stat.trim().is_empty() {
            ui.line(format!("diff:\n{}", e.diff_stat.trim_end()))?;
        }
        ui.line("")?;
    }
    Ok(())
}

/// Prints an agent after a lifecycle step.
pub fn agent_line(ctx: &mut Context, resp: Response, what: &str) -> CliResult {
    let agent: Box<AgentDetail> = Box::new(expect_response!(resp, Response::Agent(a) => a));
    ctx.ui.emit(&agent, |ui, a| {
        ui.line(format!(
            "{what} {} ({}): {}",
            a.agent.spec.name, a.agent.spec.role, a.agent.status
        ))
    })
}
