//! `sfctl dep add|remove|list|tree|approve|satisfy`.

use crate::output::Cell;
use clap::{Args, Subcommand};
use comfy_table::Color;
use sf_proto::{DepId, DepInfo, DepKind, DepTreeNode, Gate, NewGate, Request, Response, Timestamp};

use crate::args::check_id;
use crate::args::{parse_number_id, wire};
use crate::context::expect_response;
use crate::context::{Context, approver};
use crate::error::{CliError, CliResult};
use crate::output::{cell, paint, render_table, status_color};
use crate::time;

/// Dependencies between tasks, and gates (timers, approvals, external signals)
#[derive(Debug, Subcommand)]
pub enum DepCommand {
    Add(AddArgs),
    /// Remove a dependency, by its two tasks or by id
    #[command(
        after_help = "Examples:\n  sfctl dep remove k3f9xq m2n3p4\n  sfctl dep remove --id 12"
    )]
    Remove {
        /// The task that waits
        #[arg(required_unless_present = "id")]
        blocked: Option<String>,
        /// The task it waits on
        #[arg(required_unless_present = "id")]
        blocker: Option<String>,
        /// The dependency's id (`12` or `#12`)
        #[arg(long, value_name = "DEP_ID", value_parser = parse_dep_id,
              conflicts_with_all = ["blocked", "blocker"])]
        id: Option<DepId>,
    },
    /// What a task depends on, and what depends on it
    #[command(after_help = "\
Examples:
  sfctl dep list k3f9xq
  sfctl dep list k3f9xq --json")]
    List {
        /// Task id or unique prefix
        id: String,
    },
    /// What a task waits on, recursively, as a tree
    #[command(after_help = "\
Examples:
  sfctl dep tree k3f9xq
  sfctl dep tree k3f9xq --json")]
    Tree {
        /// Task id or unique prefix
        id: String,
    },
    /// Approve an approval gate
    #[command(after_help = "\
Examples:
  sfctl dep approve 12             # as $USER
  sfctl dep approve '#12' --as alice")]
    Approve {
        /// The gate's dependency id (`12` or `#12`)
        #[arg(value_parser = parse_dep_id)]
        dep: DepId,
        /// Approve as this approver (default: $USER)
        #[arg(long = "as", value_name = "NAME")]
        approver: Option<String>,
    },
    /// Mark an external gate satisfied
    #[command(after_help = "\
Examples:
  sfctl dep satisfy 12
  sfctl dep add k3f9xq --external \"security review\" && sfctl dep satisfy 13")]
    Satisfy {
        /// The gate's dependency id (`12` or `#12`)
        #[arg(value_parser = parse_dep_id)]
        dep: DepId,
    },
}

/// Make a task wait on another task, or on a gate
#[derive(Debug, Args)]
#[command(
    long_about = "\
Make BLOCKED wait on BLOCKER (`blocks`, `parent-child`; `relates-to` and `references` are
informational), or on a gate (`awaits`): a timer (--until), approvals (--approvers), or an
external signal (--external). The type defaults to `blocks`, or to `awaits` when a gate flag
is given. A dependency that would close a cycle is refused.",
    after_help = "\
Examples:
  sfctl dep add k3f9xq m2n3p4                      # k3f9xq waits until m2n3p4 closes
  sfctl dep add k3f9xq --until 2025-06-01          # waits until a date
  sfctl dep add k3f9xq --approvers alice,bob --count 2
  sfctl dep add k3f9xq --external \"security review\"
  sfctl dep satisfy 12"
)]
pub struct AddArgs {
    /// The task that waits
    pub blocked: String,
    /// The task it waits on (not for gates)
    pub blocker: Option<String>,
    /// Kind of dependency (default: blocks, or awaits with a gate flag)
    #[arg(long = "type", value_parser = wire::<DepKind>())]
    pub kind: Option<DepKind>,
    /// Timer gate: wait until this time (RFC 3339, YYYY-MM-DD, `YYYY-MM-DD HH:MM` UTC, +2h)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Approval gate: who may approve, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub approvers: Vec<String>,
    /// Approvals needed (default 1)
    #[arg(long, value_name = "N", requires = "approvers")]
    pub count: Option<u32>,
    /// External gate, satisfied by `sfctl dep satisfy`; optionally named
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub external: Option<String>,
}

fn parse_dep_id(s: &str) -> Result<DepId, String> {
    parse_number_id(s, "dependency").map(DepId)
}

/// What `dep add` sends, checked locally: `(kind, blocker, gate)`.
pub fn plan_add(
    args: &AddArgs,
    now: Timestamp,
) -> CliResult<(DepKind, Option<String>, Option<NewGate>)> {
    let approvers: Vec<String> = args
        .approvers
        .iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    let mut gates = Vec::new();
    if let Some(until) = &args.until {
        gates.push(NewGate::Timer {
            until: time::parse_time("--until", until, now)?,
        });
    }
    if !args.approvers.is_empty() {
        if approvers.is_empty() {
            return Err(CliError::user("--approvers needs at least one name"));
        }
        let count = args.count.unwrap_or(1);
        if count == 0 || count as usize > approvers.len() {
            return Err(CliError::user(format!(
                "--count must be between 1 and the number of approvers ({})",
                approvers.len()
            )));
        }
        gates.push(NewGate::Approval { approvers, count });
    }
    if let Some(name) = &args.external {
        let name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
        gates.push(NewGate::External { name });
    }
    let kind = args.kind.unwrap_or(if gates.is_empty() {
        DepKind::Blocks
    } else {
        DepKind::Awaits
    });
    let blocker = args.blocker.as_deref().map(check_id).transpose()?;
    if kind == DepKind::Awaits {
        if blocker.is_some() {
            return Err(
                CliError::user("an `awaits` dependency waits on a gate, not on a task")
                    .with_hint("drop BLOCKER, or use --type blocks"),
            );
        }
        if gates.len() != 1 {
            return Err(CliError::user(if gates.is_empty() {
                "`awaits` needs a gate: one of --until, --approvers or --external"
            } else {
                "give only one of --until, --approvers and --external"
            }));
        }
        return Ok((kind, None, gates.pop()));
    }
    if !gates.is_empty() {
        return Err(CliError::user(format!(
            "--until, --approvers and --external make an `awaits` gate, not `{kind}`"
        ))
        .with_hint("drop --type, or use --type awaits"));
    }
    if blocker.is_none() {
        return Err(
            CliError::user(format!("a `{kind}` dependency needs BLOCKER"))
                .with_hint("sfctl dep add BLOCKED BLOCKER"),
        );
    }
    Ok((kind, blocker, None))
}

pub fn run(ctx: &mut Context, cmd: DepCommand) -> CliResult {
    let now = chrono::Utc::now();
    match cmd {
        DepCommand::Add(args) => {
            let (kind, blocker, gate) = plan_add(&args, now)?;
            let blocked = check_id(&args.blocked)?;
            let resp = ctx.request(&Request::AddDep {
                blocked,
                blocker,
                kind,
                gate,
            })?;
            let dep = expect_response!(resp, Response::Dep(d) => d);
            ctx.ui.emit(&dep, |ui, dep| {
                ui.line(format!(
                    "added dependency #{}: {}",
                    dep.id,
                    describe(dep, now)
                ))
            })
        }
        DepCommand::Remove {
            blocked,
            blocker,
            id,
        } => {
            let req = Request::RemoveDep {
                blocked: blocked.as_deref().map(check_id).transpose()?,
                blocker: blocker.as_deref().map(check_id).transpose()?,
                dep: id,
            };
            match ctx.request(&req)? {
                Response::Dep(d) if ctx.ui.json => ctx.ui.json_value(&d),
                Response::Ok { message } if ctx.ui.json => ctx.ui.json_message(&message),
                Response::Dep(d) => ctx.ui.line(format!(
                    "removed dependency #{}: {}",
                    d.id,
                    describe(&d, now)
                )),
                Response::Ok { message } => ctx.ui.line(message),
                other => Err(CliError::unexpected(&other)),
            }
        }
        DepCommand::List { id } => {
            let resp = ctx.request(&Request::ListDeps { id: check_id(&id)? })?;
            let list = expect_response!(resp, Response::Deps(d) => d);
            ctx.ui.emit(&list, |ui, list| {
                let color = ui.color;
                for (title, deps, side) in [
                    ("depends on", &list.depends_on, Side::Blocker),
                    ("dependents", &list.dependents, Side::Blocked),
                ] {
                    ui.line(format!("{title}:"))?;
                    if deps.is_empty() {
                        ui.line("  (none)")?;
                    } else {
                        ui.line(crate::output::indent(&render_deps(deps, side, color, now)))?;
                    }
                }
                Ok(())
            })
        }
        DepCommand::Tree { id } => {
            let resp = ctx.request(&Request::DepTree { id: check_id(&id)? })?;
            let tree = expect_response!(resp, Response::DepTree(t) => t);
            ctx.ui.emit(&tree, |ui, tree| {
                let text = render_tree(tree, ui.color, now);
                ui.line(text)
            })
        }
        DepCommand::Approve {
            dep,
            approver: name,
        } => {
            let approver = approver(name)?;
            let resp = ctx.request(&Request::ApproveGate {
                dep,
                approver: approver.clone(),
            })?;
            gate_result(ctx, resp, &format!("approved #{dep} as {approver}"), now)
        }
        DepCommand::Satisfy { dep } => {
            let resp = ctx.request(&Request::SatisfyGate { dep })?;
            gate_result(ctx, resp, &format!("satisfied #{dep}"), now)
        }
    }
}

fn gate_result(ctx: &mut Context, resp: Response, done: &str, now: Timestamp) -> CliResult {
    match resp {
        Response::Dep(d) if ctx.ui.json => ctx.ui.json_value(&d),
        Response::Ok { message } if ctx.ui.json => ctx.ui.json_message(&message),
        Response::Dep(d) => ctx.ui.line(format!("{done}: {}", describe(&d, now))),
        Response::Ok { .. } => ctx.ui.line(done),
        other => Err(CliError::unexpected(&other)),
    }
}

/// `timer until …`, `approval 1/2 (alice, bob; approved: alice)`, `external "review"`.
pub fn gate_text(gate: &Gate, now: Timestamp) -> String {
    match gate {
        Gate::Timer { until } => format!("timer until {}", time::both(*until, now)),
        Gate::Approval {
            approvers,
            count,
            approved_by,
        } => {
            let mut s = format!(
                "approval {}/{count} of {}",
                approved_by.len(),
                approvers.join(", ")
            );
            if !approved_by.is_empty() {
                s.push_str(&format!(" (approved: {})", approved_by.join(", ")));
            }
            s
        }
        Gate::External { name: Some(n) } => format!("external `{n}`"),
        Gate::External { name: None } => "external".to_owned(),
    }
}

/// One line about a dependency: `k3f9xq blocks on m2n3p4 (open, waiting)`.
fn describe(d: &DepInfo, now: Timestamp) -> String {
    let target = match (&d.blocker, &d.gate) {
        (Some(b), _) => {
            format!(
                "{b} ({})",
                d.blocker_status
                    .map_or_else(|| "?".to_owned(), |s| s.to_string())
            )
        }
        (None, Some(g)) => gate_text(g, now),
        (None, None) => "-".to_owned(),
    };
    let state = if d.satisfied { "satisfied" } else { "waiting" };
    let verb = match d.kind {
        DepKind::Blocks => "waits on",
        DepKind::ParentChild => "is a child of",
        DepKind::Awaits => "awaits",
        DepKind::RelatesTo => "relates to",
        DepKind::References => "references",
    };
    format!("{} {verb} {target}, {state}", d.blocked)
}

/// Which end of a dependency a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// What the task waits on.
    Blocker,
    /// Who waits on the task.
    Blocked,
}

fn mark(satisfied: bool, color: bool) -> String {
    if satisfied {
        paint(color, "✓", Some(Color::Green))
    } else {
        paint(color, "✗", Some(Color::Red))
    }
}

/// A table of dependencies: DEP TYPE OK TASK STATUS TITLE (no STATUS for dependents).
pub fn render_deps(deps: &[DepInfo], side: Side, color: bool, now: Timestamp) -> String {
    let rows = deps
        .iter()
        .map(|d| {
            let mut row = vec![
                Cell::new(format!("#{}", d.id)),
                Cell::new(d.kind),
                if d.satisfied {
                    cell(color, "✓", Some(Color::Green))
                } else {
                    cell(color, "✗", Some(Color::Red))
                },
            ];
            match (side, &d.blocker, &d.gate) {
                (Side::Blocked, _, _) => {
                    row.extend([Cell::new(&d.blocked), Cell::new(&d.blocked_title)]);
                }
                (Side::Blocker, Some(b), _) => row.extend([
                    Cell::new(b),
                    d.blocker_status
                        .map_or_else(|| Cell::new("-"), |s| cell(color, s, status_color(s))),
                    Cell::new(d.blocker_title.as_deref().unwrap_or_default()),
                ]),
                (Side::Blocker, None, gate) => row.extend([
                    Cell::new("-"),
                    Cell::new("gate"),
                    Cell::new(gate.as_ref().map(|g| gate_text(g, now)).unwrap_or_default()),
                ]),
            }
            row
        })
        .collect();
    let header: &[&str] = match side {
        Side::Blocker => &["DEP", "TYPE", "OK", "TASK", "STATUS", "TITLE"],
        Side::Blocked => &["DEP", "TYPE", "OK", "TASK", "TITLE"],
    };
    render_table(header, rows, color, None)
}

/// `sfctl dep tree`: the root, then each dependency and gate with `├──`/`└──` branches.
pub fn render_tree(root: &DepTreeNode, color: bool, now: Timestamp) -> String {
    let mut out = vec![node_text(root, color)];
    tree_children(root, "", color, now, &mut out);
    out.join("\n")
}

fn node_text(n: &DepTreeNode, color: bool) -> String {
    let status = paint(color, n.status.as_str(), status_color(n.status));
    let mut s = String::new();
    if let Some(sat) = n.satisfied {
        s.push_str(&mark(sat, color));
        s.push(' ');
    }
    if let Some(kind) = n.kind {
        s.push_str(&format!("{kind} "));
    }
    s.push_str(&format!("{} {} [{status}]", n.id, n.title));
    if n.truncated {
        s.push_str(" …");
    }
    s
}

fn tree_children(
    node: &DepTreeNode,
    prefix: &str,
    color: bool,
    now: Timestamp,
    out: &mut Vec<String>,
) {
    let total = node.gates.len() + node.children.len();
    let mut i = 0;
    for gate in &node.gates {
        i += 1;
        let branch = if i == total {
            "└── "
        } else {
            "├── "
        };
        let text = gate
            .gate
            .as_ref()
            .map_or_else(|| "gate".to_owned(), |g| gate_text(g, now));
        out.push(format!(
            "{prefix}{branch}{} awaits #{} {text}",
            mark(gate.satisfied, color),
            gate.id
        ));
    }
    for child in &node.children {
        i += 1;
        let last = i == total;
        let branch = if last { "└── " } else { "├── " };
        out.push(format!("{prefix}{branch}{}", node_text(child, color)));
        let next = format!("{prefix}{}", if last { "    " } else { "│   " });
        tree_children(child, &next, color, now, out);
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use sf_proto::TaskStatus;

    use super::*;

    fn now() -> Timestamp {
        "2025-05-01T12:00:00Z".parse().unwrap()
    }

    fn args(line: &[&str]) -> AddArgs {
        let mut argv = vec!["sfctl", "dep", "add"];
        argv.extend_from_slice(line);
        match crate::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Dep(DepCommand::Add(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    fn plan(line: &[&str]) -> Result<(DepKind, Option<String>, Option<NewGate>), String> {
        plan_add(&args(line), now()).map_err(|e| e.message)
    }

    #[test]
    fn dep_add_defaults_and_gates() {
        assert_eq!(
            plan(&["a1", "b2"]).unwrap(),
            (DepKind::Blocks, Some("b2".into()), None)
        );
        assert_eq!(
            plan(&["a1", "b2", "--type", "parent-child"]).unwrap().0,
            DepKind::ParentChild
        );
        assert_eq!(
            plan(&["a1", "--until", "+1h"]).unwrap(),
            (
                DepKind::Awaits,
                None,
                Some(NewGate::Timer {
                    until: "2025-05-01T13:00:00Z".parse().unwrap()
                })
            )
        );
        assert_eq!(
            plan(&["a1", "--approvers", "alice, bob"]).unwrap().2,
            Some(NewGate::Approval {
                approvers: vec!["alice".into(), "bob".into()],
                count: 1
            })
        );
        assert_eq!(
            plan(&["a1", "--external"]).unwrap().2,
            Some(NewGate::External { name: None })
        );
        assert_eq!(
            plan(&["a1", "--external", "review", "--type", "awaits"])
                .unwrap()
                .2,
            Some(NewGate::External {
                name: Some("review".into())
            })
        );
    }

    #[test]
    fn dep_add_rejects_inconsistent_flags() {
        assert!(plan(&["a1"]).unwrap_err().contains("needs BLOCKER"));
        assert!(
            plan(&["a1", "--type", "awaits"])
                .unwrap_err()
                .contains("needs a gate")
        );
        assert!(
            plan(&["a1", "b2", "--until", "1h"])
                .unwrap_err()
                .contains("not on a task")
        );
        assert!(
            plan(&["a1", "--until", "1h", "--external"])
                .unwrap_err()
                .contains("only one")
        );
        assert!(
            plan(&["a1", "b2", "--type", "blocks", "--external"])
                .unwrap_err()
                .contains("not `blocks`")
        );
        assert!(
            plan(&["a1", "--approvers", "a", "--count", "2"])
                .unwrap_err()
                .contains("--count")
        );
        assert!(
            plan(&["a1", "--until", "whenever"])
                .unwrap_err()
                .contains("--until")
        );
        let err = crate::Cli::try_parse_from(["sfctl", "dep", "add", "a1", "--count", "2"]);
        assert!(err.is_err(), "--count needs --approvers");
    }

    #[test]
    fn dep_ids_accept_a_hash() {
        assert_eq!(parse_dep_id("#12").unwrap(), DepId(12));
        assert!(parse_dep_id("x").unwrap_err().contains("dependency id"));
    }

    fn node(id: &str, title: &str, status: TaskStatus, sat: Option<bool>) -> DepTreeNode {
        DepTreeNode {
            id: id.parse().unwrap(),
            title: title.into(),
            status,
            kind: sat.map(|_| DepKind::Blocks),
            satisfied: sat,
            gates: Vec::new(),
            children: Vec::new(),
            truncated: false,
        }
    }

    #[test]
    fn tree_renders_with_branches_and_marks() {
        let mut root = node("a1", "Ship it", TaskStatus::Open, None);
        let mut b = node("b2", "Build", TaskStatus::Open, Some(false));
        let mut c = node("c3", "Design", TaskStatus::Closed, Some(true));
        c.truncated = true;
        b.children.push(c);
        b.children
            .push(node("d4", "Spec", TaskStatus::InProgress, Some(false)));
        root.gates.push(DepInfo {
            id: DepId(7),
            kind: DepKind::Awaits,
            blocked: "a1".parse().unwrap(),
            blocked_title: "Ship it".into(),
            blocker: None,
            blocker_title: None,
            blocker_status: None,
            gate: Some(Gate::Approval {
                approvers: vec!["alice".into()],
                count: 1,
                approved_by: vec![],
            }),
            satisfied: false,
            created_at: now(),
        });
        root.children.push(b);
        root.children
            .push(node("e5", "Docs", TaskStatus::Closed, Some(true)));
        assert_eq!(
            render_tree(&root, false, now()),
            "a1 Ship it [open]\n\
             ├── ✗ awaits #7 approval 0/1 of alice\n\
             ├── ✗ blocks b2 Build [open]\n\
             │   ├── ✓ blocks c3 Design [closed] …\n\
             │   └── ✗ blocks d4 Spec [in_progress]\n\
             └── ✓ blocks e5 Docs [closed]"
        );
    }
}
