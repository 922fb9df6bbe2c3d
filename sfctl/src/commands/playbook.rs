//! `sfctl playbook list|show|validate|run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use comfy_table::Color;
use sf_proto::{PlanDetail, PlaybookInfo, Request, Response, Timestamp};

use crate::commands::steward::key_value;
use crate::commands::task::render_tasks;
use crate::context::{Context, expect_response};
use crate::error::{CliError, CliResult};
use crate::output::{cell, indent, key_values, or_dash, render_table, truncate};

/// Playbooks: TOML templates that become workflows (plans of tasks)
#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// List the built-in playbooks and the workspace's (`.sf/playbooks/`)
    #[command(after_help = "\
Examples:
  sfctl playbook list
  sfctl playbook list --json

Built-in playbooks come with sf; yours go in .sf/playbooks/NAME.toml and win on a name clash.")]
    List,
    /// Show a playbook: its variables and steps
    #[command(after_help = "\
Examples:
  sfctl playbook show feature
  sfctl playbook show release --json")]
    Show {
        /// The playbook's name
        name: String,
    },
    /// Check a playbook file without running it
    #[command(after_help = "\
Examples:
  sfctl playbook validate .sf/playbooks/release.toml
  sfctl playbook validate my-playbook.toml --json

The file is read here and checked by the daemon; an invalid one exits 1 with an error naming
the step or variable at fault.")]
    Validate {
        /// The TOML file
        file: PathBuf,
    },
    /// Turn a playbook into an active workflow: one task per step whose condition holds
    #[command(after_help = "\
Examples:
  sfctl playbook run feature --var feature=\"CSV export\" --var with_docs=false
  sfctl playbook run release --var version=1.4.2
  sfctl playbook show feature      # its variables and their defaults

The variables are checked against their types; steps whose condition is false are dropped.
Follow the workflow with `sfctl plan show PLAN_ID`.")]
    Run {
        /// The playbook's name
        name: String,
        /// A variable (repeatable; a later one wins)
        #[arg(long = "var", value_name = "KEY=VALUE", value_parser = key_value)]
        vars: Vec<(String, String)>,
    },
}

pub fn run(ctx: &mut Context, cmd: PlaybookCommand) -> CliResult {
    match cmd {
        PlaybookCommand::List => {
            let resp = ctx.request(&Request::ListPlaybooks)?;
            let list = expect_response!(resp, Response::Playbooks(l) => l);
            let broken: Vec<&PlaybookInfo> = list.iter().filter(|p| p.error.is_some()).collect();
            for p in &broken {
                ctx.ui.warn(broken_warning(p));
            }
            if !broken.is_empty() {
                let file = match broken[..] {
                    [one] => one.source.as_str(),
                    _ => "FILE",
                };
                ctx.ui.status(format!(
                    "hint: fix the file or move it out of .sf/playbooks/; check it with \
                     `sfctl playbook validate {file}`"
                ));
            }
            ctx.ui.emit(&list, |ui, list| {
                if list.is_empty() {
                    ui.status("no playbooks");
                    return Ok(());
                }
                let text = render_list(list, ui.color, ui.width());
                ui.line(text)
            })
        }
        PlaybookCommand::Show { name } => {
            let resp = ctx.request(&Request::ShowPlaybook { name })?;
            let p = expect_response!(resp, Response::Playbook(p) => p);
            ctx.ui.emit(&p, |ui, p| {
                let text = render_show(p, ui.color, ui.width());
                ui.line(text)
            })
        }
        PlaybookCommand::Validate { file } => {
            let text = read_file(&file).map_err(|e| name_not_file_hint(e, &file))?;
            let source = file.display().to_string();
            let resp = ctx.request(&Request::ValidatePlaybook {
                source: source.clone(),
                text,
            })?;
            let p = expect_response!(resp, Response::Playbook(p) => p);
            ctx.ui.emit(&p, |ui, p| ui.line(valid_line(&source, p)))
        }
        PlaybookCommand::Run { name, vars } => {
            let vars: BTreeMap<String, String> = vars.into_iter().collect();
            let resp = ctx.request(&Request::RunPlaybook { name, vars })?;
            let plan = expect_response!(resp, Response::Plan(p) => p);
            ctx.ui.emit(&plan, |ui, plan| {
                let text = render_run(plan, ui.color, ui.width(), chrono::Utc::now());
                ui.line(text)
            })
        }
    }
}

/// Reads the file to validate; failing to is the user's mistake (exit 1), named.
fn read_file(file: &Path) -> CliResult<String> {
    std::fs::read_to_string(file).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            "no such file".to_owned()
        } else {
            e.to_string()
        };
        CliError::user(format!("cannot read {}: {why}", file.display()))
    })
}

/// `validate bugfix`: a playbook's name where a file was wanted.
fn name_not_file_hint(err: CliError, file: &Path) -> CliError {
    let name = file.to_string_lossy();
    let looks_like_a_name = !file.exists()
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if looks_like_a_name {
        err.with_hint(format!(
            "validate takes a file path; to check a playbook by name use \
             `sfctl playbook show {name}`"
        ))
    } else {
        err
    }
}

/// The stderr warning for a workspace file `list` had to skip.
fn broken_warning(p: &PlaybookInfo) -> String {
    format!(
        "playbook `{}` is broken and cannot be run: {}",
        p.name,
        p.error.as_deref().unwrap_or_default()
    )
}

/// `FILE is a valid playbook: NAME (N steps, M variables)`.
fn valid_line(source: &str, p: &PlaybookInfo) -> String {
    format!(
        "{source} is a valid playbook: {} ({}, {})",
        p.name,
        plural(p.steps.len(), "step"),
        plural(p.vars.len(), "variable")
    )
}

/// `1 step`, `3 steps`.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The `list` table: NAME SOURCE STEPS TITLE; a broken file shows `BROKEN` and the first
/// line of its error instead of steps and title.
fn render_list(list: &[PlaybookInfo], color: bool, width: Option<u16>) -> String {
    let rows = list
        .iter()
        .map(|p| match &p.error {
            None => vec![
                cell(color, &p.name, None),
                cell(color, &p.source, None),
                cell(color, p.steps.len(), None),
                cell(color, truncate(&p.title, 60), None),
            ],
            Some(error) => vec![
                cell(color, &p.name, Some(Color::Red)),
                cell(color, &p.source, None),
                cell(color, "BROKEN", Some(Color::Red)),
                cell(color, truncate(broken_reason(p, error), 60), None),
            ],
        })
        .collect();
    render_table(&["NAME", "SOURCE", "STEPS", "TITLE"], rows, color, width)
}

/// A broken file's error without the file name it starts with (the SOURCE column has it).
fn broken_reason<'a>(p: &PlaybookInfo, error: &'a str) -> &'a str {
    error
        .strip_prefix(p.source.as_str())
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(error)
}

/// `show`: the header fields, the description, the variables and the steps.
fn render_show(p: &PlaybookInfo, color: bool, width: Option<u16>) -> String {
    let mut out = vec![key_values(&[
        ("name", p.name.clone()),
        ("title", p.title.clone()),
        ("source", p.source.clone()),
    ])];
    if !p.description.trim().is_empty() {
        out.push(format!("\ndescription:\n{}", indent(p.description.trim())));
    }
    if p.vars.is_empty() {
        out.push("\nvariables: none".to_owned());
    } else {
        let rows = p
            .vars
            .iter()
            .map(|v| {
                vec![
                    cell(color, &v.name, None),
                    cell(color, &v.kind, None),
                    cell(color, if v.required { "yes" } else { "no" }, None),
                    cell(color, or_dash(v.default.as_deref()), None),
                    cell(color, &v.description, None),
                ]
            })
            .collect();
        out.push("\nvariables:".to_owned());
        out.push(render_table(
            &["NAME", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"],
            rows,
            color,
            width,
        ));
    }
    if p.steps.is_empty() {
        out.push("\nsteps: none".to_owned());
    } else {
        let rows = p
            .steps
            .iter()
            .map(|s| {
                let deps = if s.depends_on.is_empty() {
                    "-".to_owned()
                } else {
                    s.depends_on.join(",")
                };
                vec![
                    cell(color, &s.id, None),
                    cell(color, &s.kind, None),
                    cell(color, s.priority, None),
                    cell(color, deps, None),
                    cell(color, or_dash(s.condition.as_deref()), None),
                    cell(color, &s.title, None),
                ]
            })
            .collect();
        out.push("\nsteps:".to_owned());
        out.push(render_table(
            &["ID", "KIND", "PRIORITY", "DEPENDS-ON", "CONDITION", "TITLE"],
            rows,
            color,
            width,
        ));
    }
    out.join("\n")
}

/// `run`: `created workflow ID: TITLE (N tasks)` and the task table.
fn render_run(plan: &PlanDetail, color: bool, width: Option<u16>, now: Timestamp) -> String {
    let head = format!(
        "created workflow {}: {} ({})",
        plan.plan.id,
        plan.plan.title,
        plural(plan.tasks.len(), "task")
    );
    if plan.tasks.is_empty() {
        return head;
    }
    format!("{head}\n\n{}", render_tasks(&plan.tasks, color, width, now))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use sf_proto::{PlaybookStep, PlaybookVar};

    use super::*;
    use crate::cli::{Cli, Command};

    fn info() -> PlaybookInfo {
        PlaybookInfo {
            name: "feature".into(),
            title: "Feature: {{feature}}".into(),
            description: "Build {{feature}} end to end.\nKeep each step focused.\n".into(),
            source: "built-in".into(),
            vars: vec![
                PlaybookVar {
                    name: "feature".into(),
                    kind: "string".into(),
                    required: true,
                    default: None,
                    description: "the feature".into(),
                },
                PlaybookVar {
                    name: "with_docs".into(),
                    kind: "boolean".into(),
                    required: false,
                    default: Some("true".into()),
                    description: "write docs".into(),
                },
            ],
            steps: vec![
                PlaybookStep {
                    id: "design".into(),
                    title: "Design {{feature}}".into(),
                    kind: "task".into(),
                    depends_on: vec![],
                    condition: None,
                    priority: 2,
                },
                PlaybookStep {
                    id: "docs".into(),
                    title: "Document {{feature}}".into(),
                    kind: "task".into(),
                    depends_on: vec!["design".into(), "impl".into()],
                    condition: Some("{{with_docs}}".into()),
                    priority: 3,
                },
            ],
            error: None,
        }
    }

    #[test]
    fn list_marks_a_broken_file_with_the_first_line_of_its_error() {
        let broken = PlaybookInfo {
            name: "bad".into(),
            title: String::new(),
            description: String::new(),
            source: ".sf/playbooks/bad.toml".into(),
            vars: vec![],
            steps: vec![],
            error: Some(
                ".sf/playbooks/bad.toml: step `a` depends on unknown step `zzz`\nmore".into(),
            ),
        };
        let text = render_list(&[broken.clone(), info()], false, None);
        assert_eq!(
            text,
            "NAME     SOURCE                  STEPS   TITLE\n\
             bad      .sf/playbooks/bad.toml  BROKEN  step `a` depends on unknown step `zzz`…\n\
             feature  built-in                2       Feature: {{feature}}"
        );
        assert_eq!(
            broken_warning(&broken),
            "playbook `bad` is broken and cannot be run: \
             .sf/playbooks/bad.toml: step `a` depends on unknown step `zzz`\nmore"
        );
    }

    #[test]
    fn validating_a_name_instead_of_a_file_hints_at_show() {
        let path = Path::new("no-such-playbook-name");
        let err = name_not_file_hint(read_file(path).unwrap_err(), path);
        assert_eq!(
            err.hints,
            [
                "validate takes a file path; to check a playbook by name use \
              `sfctl playbook show no-such-playbook-name`"
            ]
        );
        let path = Path::new("/nonexistent/dir/pb.toml");
        let err = name_not_file_hint(read_file(path).unwrap_err(), path);
        assert!(err.hints.is_empty(), "{:?}", err.hints);
    }

    #[test]
    fn list_is_a_table() {
        let mut other = info();
        other.name = "ship".into();
        other.source = ".sf/playbooks/ship.toml".into();
        other.title = "Ship {{thing}}".into();
        other.steps.truncate(1);
        let text = render_list(&[info(), other], false, None);
        assert_eq!(
            text,
            "NAME     SOURCE                   STEPS  TITLE\n\
             feature  built-in                 2      Feature: {{feature}}\n\
             ship     .sf/playbooks/ship.toml  1      Ship {{thing}}"
        );
    }

    #[test]
    fn show_prints_fields_variables_and_steps() {
        let text = render_show(&info(), false, None);
        assert_eq!(
            text,
            "name:   feature\n\
             title:  Feature: {{feature}}\n\
             source: built-in\n\
             \n\
             description:\n  \
               Build {{feature}} end to end.\n  \
               Keep each step focused.\n\
             \n\
             variables:\n\
             NAME       TYPE     REQUIRED  DEFAULT  DESCRIPTION\n\
             feature    string   yes       -        the feature\n\
             with_docs  boolean  no        true     write docs\n\
             \n\
             steps:\n\
             ID      KIND  PRIORITY  DEPENDS-ON   CONDITION      TITLE\n\
             design  task  2         -            -              Design {{feature}}\n\
             docs    task  3         design,impl  {{with_docs}}  Document {{feature}}"
        );
    }

    #[test]
    fn show_says_when_there_are_no_variables() {
        let mut p = info();
        p.vars.clear();
        p.description = String::new();
        let text = render_show(&p, false, None);
        assert!(
            text.contains("source: built-in\n\nvariables: none\n\nsteps:\n"),
            "{text}"
        );
    }

    #[test]
    fn validate_names_the_file_and_counts() {
        assert_eq!(
            valid_line("pb/x.toml", &info()),
            "pb/x.toml is a valid playbook: feature (2 steps, 2 variables)"
        );
        let mut p = info();
        p.steps.truncate(1);
        p.vars.clear();
        assert_eq!(
            valid_line("x.toml", &p),
            "x.toml is a valid playbook: feature (1 step, 0 variables)"
        );
    }

    #[test]
    fn a_missing_file_is_a_user_error_naming_it() {
        let err = read_file(Path::new("/nonexistent/dir/pb.toml")).unwrap_err();
        assert_eq!(err.exit_code(), std::process::ExitCode::from(1));
        assert_eq!(
            err.message,
            "cannot read /nonexistent/dir/pb.toml: no such file"
        );
    }

    #[test]
    fn run_prints_the_workflow_and_its_tasks() {
        let now = "2025-05-01T12:00:00Z".parse().unwrap();
        let mut plan = PlanDetail {
            plan: sf_proto::PlanSummary {
                id: "7hm2pa".parse().unwrap(),
                title: "Feature: CSV export".into(),
                description: String::new(),
                status: sf_proto::PlanStatus::Active,
                total: 1,
                counts: BTreeMap::new(),
                created_at: now,
                updated_at: now,
            },
            tasks: vec![sf_proto::TaskSummary {
                id: "k3f9xq".parse().unwrap(),
                title: "Fix the flaky login test".into(),
                status: sf_proto::TaskStatus::InProgress,
                priority: 2,
                task_type: sf_proto::TaskType::Bug,
                assignee: Some("w1".into()),
                plan: Some("7hm2pa".parse().unwrap()),
                skills: vec![],
                scheduled_for: None,
                defer_until: None,
                created_at: now,
                updated_at: now,
            }],
        };
        let text = render_run(&plan, false, None, now);
        assert_eq!(
            text,
            "created workflow 7hm2pa: Feature: CSV export (1 task)\n\
             \n\
             ID      PRI  STATUS       TYPE  ASSIGNEE  TITLE\n\
             k3f9xq  2    in_progress  bug   w1        Fix the flaky login test"
        );
        plan.tasks.clear();
        assert_eq!(
            render_run(&plan, false, None, now),
            "created workflow 7hm2pa: Feature: CSV export (0 tasks)"
        );
    }

    #[test]
    fn run_parses_repeated_vars() {
        let cli = Cli::try_parse_from([
            "sfctl",
            "playbook",
            "run",
            "feature",
            "--var",
            "feature=CSV export",
            "--var",
            "with_docs=a=b",
        ])
        .unwrap();
        let Command::Playbook(PlaybookCommand::Run { name, vars }) = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(name, "feature");
        assert_eq!(
            vars,
            [
                ("feature".to_owned(), "CSV export".to_owned()),
                ("with_docs".to_owned(), "a=b".to_owned())
            ]
        );
        let err =
            Cli::try_parse_from(["sfctl", "playbook", "run", "x", "--var", "novalue"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("is not KEY=VALUE"), "{err}");
    }
}
