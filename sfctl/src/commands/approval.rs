//! `sfctl approval list|show|comment|approve|reject|request-revision|resubmit|cancel`, and
//! `sfctl adapters`.

use clap::{Args, Subcommand};
use comfy_table::Color;
use sf_proto::{
    AdapterInfo, AgentPatch, ApprovalDetail, ApprovalInfo, ApprovalStatus, Request, Response,
};

use crate::args::wire;
use crate::context::{Context, expect_response};
use crate::error::CliResult;
use crate::output::{Ui, key_values, or_dash};
use crate::time;

/// Decisions waiting for a human: hires, held merge requests, approval gates
#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// List approvals, newest first
    #[command(after_help = "\
Examples:
  sfctl approval list
  sfctl approval list --status pending
  sfctl approval list --json | jq '.[] | select(.kind == \"hire_agent\")'")]
    List {
        /// Only in this status: pending, revision_requested, approved, rejected, cancelled
        #[arg(long, value_parser = wire::<ApprovalStatus>())]
        status: Option<ApprovalStatus>,
    },
    /// Show an approval: what is asked, its comments and history
    #[command(after_help = "\
Examples:
  sfctl approval show 3
  sfctl approval show 3 --json | jq .payload")]
    Show {
        /// Its id
        id: i64,
    },
    /// Comment on an approval (the requesting agent gets it in its inbox)
    #[command(after_help = "\
Examples:
  sfctl approval comment 3 'why sonnet and not haiku?'")]
    Comment {
        /// Its id
        id: i64,
        /// The comment
        text: String,
    },
    /// Approve (a human's decision): the hire works, the merge request goes on, the gate opens
    #[command(after_help = "\
Examples:
  sfctl approval approve 3
  sfctl approval approve 3 --note 'ok for this sprint'")]
    Approve(Decision),
    /// Reject (a human's decision): a hire is terminated and never runs
    #[command(after_help = "\
Examples:
  sfctl approval reject 3 --note 'we have enough workers'")]
    Reject(Decision),
    /// Ask the requester to change it (a human's decision)
    #[command(after_help = "\
Examples:
  sfctl approval request-revision 3 --note 'use a cheaper model'")]
    RequestRevision {
        /// Its id
        id: i64,
        /// What to change
        #[arg(long)]
        note: String,
    },
    /// Resubmit after a revision was asked for (by the requester), with changed fields
    #[command(after_help = "\
Examples:
  sfctl approval resubmit 3 --model haiku --note 'cheaper model'")]
    Resubmit {
        /// Its id
        id: i64,
        /// For a hire: the model to ask for instead
        #[arg(long)]
        model: Option<String>,
        /// For a hire: the skills to ask for instead (comma-separated)
        #[arg(long, value_delimiter = ',')]
        skills: Option<Vec<String>>,
        /// For a hire: the most tasks at once to ask for instead
        #[arg(long)]
        max_tasks: Option<u32>,
        /// What changed
        #[arg(long)]
        note: Option<String>,
    },
    /// Withdraw an approval request (by the requester)
    #[command(after_help = "\
Examples:
  sfctl approval cancel 3")]
    Cancel {
        /// Its id
        id: i64,
    },
}

/// An approval and the decider's note.
#[derive(Debug, Args)]
pub struct Decision {
    /// Its id
    pub id: i64,
    /// Why
    #[arg(long)]
    pub note: Option<String>,
}

pub fn run(ctx: &mut Context, cmd: ApprovalCommand) -> CliResult {
    let request = match cmd {
        ApprovalCommand::List { status } => {
            let resp = ctx.request(&Request::ListApprovals { status })?;
            let list = expect_response!(resp, Response::Approvals(a) => a);
            return ctx.ui.emit(&list, |ui, list| table(ui, list));
        }
        ApprovalCommand::Show { id } => Request::ShowApproval { id },
        ApprovalCommand::Comment { id, text } => Request::CommentApproval { id, text },
        ApprovalCommand::Approve(d) => Request::DecideApproval {
            id: d.id,
            approve: true,
            note: d.note,
        },
        ApprovalCommand::Reject(d) => Request::DecideApproval {
            id: d.id,
            approve: false,
            note: d.note,
        },
        ApprovalCommand::RequestRevision { id, note } => Request::RequestRevision { id, note },
        ApprovalCommand::Resubmit {
            id,
            model,
            skills,
            max_tasks,
            note,
        } => Request::ResubmitApproval {
            id,
            patch: AgentPatch {
                model,
                skills,
                max_tasks,
                ..AgentPatch::default()
            },
            note,
        },
        ApprovalCommand::Cancel { id } => Request::CancelApproval { id },
    };
    let resp = ctx.request(&request)?;
    let detail = expect_response!(resp, Response::Approval(a) => a);
    ctx.ui.emit(&*detail, |ui, d| ui.line(show(d)))
}

fn status_color(s: ApprovalStatus) -> Option<Color> {
    match s {
        ApprovalStatus::Pending | ApprovalStatus::RevisionRequested => Some(Color::Yellow),
        ApprovalStatus::Approved => Some(Color::Green),
        ApprovalStatus::Rejected => Some(Color::Red),
        ApprovalStatus::Cancelled => None,
    }
}

fn table(ui: &mut Ui, list: &[ApprovalInfo]) -> CliResult {
    if list.is_empty() {
        return ui.line("no approvals");
    }
    let now = chrono::Utc::now();
    let rows = list
        .iter()
        .map(|a| {
            vec![
                ui.cell(a.id, None),
                ui.cell(a.kind, None),
                ui.cell(&a.subject, None),
                ui.cell(a.status, status_color(a.status)),
                ui.cell(&a.requested_by, None),
                ui.cell(time::relative(a.updated_at, now), None),
            ]
        })
        .collect();
    ui.table(&["ID", "KIND", "SUBJECT", "STATUS", "BY", "UPDATED"], rows)
}

fn show(d: &ApprovalDetail) -> String {
    let a = &d.approval;
    let mut out = key_values(&[
        ("approval", format!("#{} ({})", a.id, a.kind)),
        ("subject", a.subject.clone()),
        ("status", a.status.to_string()),
        ("requested by", a.requested_by.clone()),
        ("decided by", or_dash(a.decided_by.as_deref())),
        ("note", or_dash(a.decision_note.as_deref())),
        ("created", time::short(a.created_at)),
    ]);
    out.push_str("\npayload:\n");
    let payload = serde_json::to_string_pretty(&a.payload).unwrap_or_default();
    for line in payload.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("history:");
    for c in &d.comments {
        out.push_str(&format!(
            "\n  {}  {}  {}{}",
            time::short(c.at),
            c.author,
            c.kind,
            if c.body.is_empty() {
                String::new()
            } else {
                format!(": {}", c.body)
            }
        ));
    }
    out
}

/// List the adapters: the CLI each runs and its configuration fields
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sfctl adapters
  sfctl adapters --json | jq '.[] | {adapter, fields: [.fields[].name]}'")]
pub struct AdaptersArgs {}

pub fn adapters(ctx: &mut Context) -> CliResult {
    let resp = ctx.request(&Request::ListAdapters)?;
    let list = expect_response!(resp, Response::Adapters(a) => a);
    ctx.ui.emit(&list, |ui, list: &Vec<AdapterInfo>| {
        for (i, a) in list.iter().enumerate() {
            if i > 0 {
                ui.line("")?;
            }
            ui.line(format!("{} ({}): {}", a.adapter, a.program, a.description))?;
            for f in &a.fields {
                ui.line(format!(
                    "  {:<14} {} (default: {})",
                    f.name, f.meaning, f.default
                ))?;
            }
        }
        Ok(())
    })
}
