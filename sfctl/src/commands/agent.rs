//! `sfctl agent register|hire|update|permissions|config|list|show|start|stop|egress|enable|
//! disable|remove`.

use crate::output::Cell;
use clap::{Args, Subcommand};
use comfy_table::Color;
use sf_proto::{
    Adapter, AgentDetail, AgentSpec, AgentSummary, Capability, Effort, Focus, JobRole, Mode,
    Request, Response, Role, RunSummary, RunUsage, Timestamp,
};

use crate::args::check_id;
use crate::args::wire;
use crate::context::expect_response;
use crate::context::{Context, user_name};
use crate::error::{CliError, CliResult};
use crate::output::{Ui, agent_state_color, cell, indent, key_values, or_dash, render_table};
use crate::time;

/// Register and manage agents
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    Register(Box<RegisterArgs>),
    /// List agents
    #[command(after_help = "\
Examples:
  sfctl agent list
  sfctl agent list --json | jq -r '.[].spec.name'")]
    List,
    /// Show one agent, its triggers and recent runs
    #[command(after_help = "\
Examples:
  sfctl agent show w1
  sfctl agent show merger --json")]
    Show {
        /// The agent's name
        name: String,
    },
    /// Start a worker of an agent now, through the same checks as dispatch
    #[command(after_help = "\
Examples:
  sfctl agent start w1
  sfctl agent start w1 --task k3f9xq
  sfctl agent start w1 --task k3f9xq --resume 5f1c…   # continue that CLI session
  sfctl task show k3f9xq --json | jq -r '.runs[0].usage.session_id'   # a run's session")]
    Start {
        /// The agent's name
        name: String,
        /// Work on this task (id or prefix); default: the first ready task it can take
        #[arg(long, value_name = "ID")]
        task: Option<String>,
        /// Continue this session of the agent's CLI (as `sfctl agent sessions NAME` lists
        /// them, or `task show --json` reports a run's `usage.session_id`) instead of
        /// starting a new one
        #[arg(long, value_name = "SESSION")]
        resume: Option<String>,
    },
    /// List a director's or persistent worker's sessions, newest first
    #[command(after_help = "\
Examples:
  sfctl agent sessions lead
  sfctl agent start lead --resume \"$(sfctl agent sessions lead --json | jq -r '.[0].provider_session')\"")]
    Sessions {
        /// The agent
        name: String,
    },
    /// Talk to a session: its transcript as its turns run, and each line you type sent as
    /// its next turn (delivered when the running turn ends)
    #[command(after_help = "\
Examples:
  sfctl agent attach p-worker-1
  echo 'add a /health endpoint, then merge it' | sfctl agent attach p-worker-1")]
    Attach {
        /// The agent
        name: String,
    },
    /// Stop an agent's running workers and disable it
    ///
    /// Each worker is stopped (SIGTERM, then SIGKILL after `stop_grace`); its uncommitted work
    /// is saved and its task returns to the pool. The agent stays disabled until `sfctl agent
    /// enable`.
    #[command(after_help = "\
Examples:
  sfctl agent stop w1
  sfctl agent enable w1    # let the daemon start it again")]
    Stop {
        /// The agent's name
        name: String,
    },
    /// Let the daemon start an agent again
    #[command(after_help = "\
Examples:
  sfctl agent enable w1
  sfctl agent list                         # ENABLED shows which ones are off")]
    Enable {
        /// The agent's name
        name: String,
    },
    /// Stop the daemon from starting an agent (running work is not killed)
    #[command(after_help = "\
Examples:
  sfctl agent disable w1    # its running work finishes; no new work starts
  sfctl agent stop w1       # stops its running work too")]
    Disable {
        /// The agent's name
        name: String,
    },
    /// Show an agent's connections through sfd's egress proxy, newest first
    ///
    /// A sandboxed run reaches the network only through sfd, which relays what the agent's
    /// rules allow (its adapter's API hosts, its capabilities' hosts: `[sandbox.egress]`)
    /// and denies the rest. Each connection is one record: the host, the decision and the
    /// rule, the bytes each way.
    #[command(after_help = "\
Examples:
  sfctl agent egress w1
  sfctl agent egress w1 --run 42
  sfctl agent egress w1 --json | jq '.[] | select(.allowed | not)'")]
    Egress {
        /// The agent's name
        name: String,
        /// Only this run's connections
        #[arg(long, value_name = "N")]
        run: Option<i64>,
        /// Show at most this many
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Ask for a new agent (from an agent that may hire): it waits for a human's approval
    ///
    /// The same flags as `register`. From an agent with `can_create_agents` (directors by
    /// default) the agent is created `pending_approval` with a `hire_agent` approval, and
    /// never runs until a human approves it (`sfctl approval approve`); with
    /// `require_approval_for_new_agents = false` in config.toml it works at once. From a
    /// human it is a registration.
    #[command(after_help = "\
Examples:
  sfctl agent hire e-worker-9 --role worker --adapter claude --model sonnet
  sfctl approval list --status pending     # the human's side")]
    Hire(Box<RegisterArgs>),
    /// Change a registered agent's fields (a human's decision)
    #[command(after_help = "\
Examples:
  sfctl agent update w1 --model opus
  sfctl agent update w1 --capability push --capability network
  sfctl agent update w1 --no-capabilities --no-secrets")]
    Update(Box<UpdateArgs>),
    /// Change what an agent may do (a human's decision)
    #[command(after_help = "\
Examples:
  sfctl agent permissions lead --can-create-agents false
  sfctl agent permissions w1 --can-create-agents true")]
    Permissions {
        /// The agent's name
        name: String,
        /// May hire agents and read their configurations (default: directors only)
        #[arg(long, value_name = "BOOL")]
        can_create_agents: Option<bool>,
    },
    /// Show agents' full configurations, keys and secrets redacted
    ///
    /// For humans, and for agents that may hire (`can_create_agents`), to compare
    /// configurations; anything shaped like a key or token in a command is `[redacted]`.
    #[command(after_help = "\
Examples:
  sfctl agent config w1
  sfctl agent config --all --json")]
    Config {
        /// The agent's name
        #[arg(required_unless_present = "all")]
        name: Option<String>,
        /// Every agent
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
    /// Show an agent's tool calls and the guard's decisions, newest first
    #[command(after_help = "\
Examples:
  sfctl agent tool-calls w1
  sfctl agent tool-calls w1 --run 42 --denied-only
  sfctl agent tool-calls w1 --held-only --json")]
    ToolCalls {
        /// The agent's name
        name: String,
        /// Only this run's calls
        #[arg(long, value_name = "N")]
        run: Option<i64>,
        /// Only calls held for a human
        #[arg(long)]
        held_only: bool,
        /// Only denied calls
        #[arg(long)]
        denied_only: bool,
        /// Show at most this many
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show an agent's runs: outcome, tool calls, held and denied, tokens and cost
    #[command(after_help = "\
Examples:
  sfctl agent runs w1
  sfctl agent runs w1 --json | jq '.[] | {id, denied}'")]
    Runs {
        /// The agent's name
        name: String,
    },
    /// Show an agent's Trust Card: its runs, spend, calls and denials over its life
    #[command(after_help = "\
Examples:
  sfctl agent card w1
  sfctl agent card w1 --json")]
    Card {
        /// The agent's name
        name: String,
    },
    /// Templates agents are drafted from
    #[command(subcommand)]
    Template(crate::commands::staff::TemplateCommand),
    /// Draft an agent from a template (a draft is signed, dry-run and taken live)
    #[command(after_help = "\
Examples:
  sfctl agent template list
  sfctl agent create --template coder --seat backend          # named e-worker-N
  sfctl agent create --template reviewer --seat review rev1 --adapter claude")]
    Create {
        /// The template
        #[arg(long, value_name = "T")]
        template: String,
        /// The seat it staffs
        #[arg(long, value_name = "SEAT")]
        seat: Option<String>,
        /// Its name (default: the convention, numbered after the existing ones)
        name: Option<String>,
        /// Which CLI it runs (default: the template's)
        #[arg(long, value_parser = wire::<Adapter>())]
        adapter: Option<Adapter>,
        /// The command line (for `command`) or the CLI's program
        #[arg(long, value_name = "CMD")]
        command: Option<String>,
        /// Model
        #[arg(long)]
        model: Option<String>,
    },
    /// Draft a custom agent: the flags of `register`, created as a draft
    #[command(after_help = "\
Examples:
  sfctl agent draft --role worker --job qa --seat qa --adapter codex")]
    Draft(Box<RegisterArgs>),
    /// Run a signed agent once on a sample or given task: no secrets, capabilities, push
    /// or merge; the evidence is kept (`agent dry-runs`)
    #[command(after_help = "\
Examples:
  sfctl agent dry-run e-worker-1
  sfctl agent dry-run e-worker-1 --task k3f9xq     # a copy of it; the task is untouched
  sfctl agent dry-runs e-worker-1")]
    DryRun {
        /// The agent
        name: String,
        /// A task to copy for it (default: its template's sample task)
        #[arg(long, value_name = "ID")]
        task: Option<String>,
    },
    /// Show an agent's dry runs and their evidence, newest first
    #[command(after_help = "\
Examples:
  sfctl agent dry-runs e-worker-1
  sfctl agent dry-runs e-worker-1 --json | jq '.[0].evidence.diff_stat'")]
    DryRuns {
        /// The agent
        name: String,
    },
    /// Take a draft live: it needs a passed dry run on its signed manifest (a human's decision)
    #[command(after_help = "\
Examples:
  sfctl agent go-live e-worker-1")]
    GoLive {
        /// The agent
        name: String,
    },
    /// Run a live agent now (a worker on a task, a steward once), through the guard
    #[command(after_help = "\
Examples:
  sfctl agent run-now e-worker-1
  sfctl agent run-now e-worker-1 --task k3f9xq
  sfctl agent run-now d-steward-1")]
    RunNow {
        /// The agent
        name: String,
        /// The task (workers; default: the first ready task it can take)
        #[arg(long, value_name = "ID")]
        task: Option<String>,
    },
    /// Set or clear an agent's triggers (a human's decision)
    #[command(after_help = "\
Examples:
  sfctl agent schedule d-steward-1 --trigger '0 3 * * *'
  sfctl agent schedule r-steward-1 --on task_stuck
  sfctl agent schedule d-steward-1 --clear")]
    Schedule {
        /// The agent
        name: String,
        /// Cron schedule (repeatable; replaces the set)
        #[arg(long = "trigger", value_name = "CRON")]
        triggers: Vec<String>,
        /// Event trigger `EVENT[:COND]` (repeatable; replaces the set)
        #[arg(long = "on", value_name = "EVENT[:COND]")]
        on: Vec<String>,
        /// Remove every trigger
        #[arg(long, conflicts_with_all = ["triggers", "on"])]
        clear: bool,
    },
    /// Retire an agent for good: stops its runs, keeps its history, frees its seat
    /// (dangerous; a human's decision)
    #[command(after_help = "\
Examples:
  sfctl agent decommission e-worker-1 --confirm e-worker-1")]
    Decommission {
        /// The agent
        name: String,
        /// Its name again, to confirm
        #[arg(long, value_name = "NAME", required = true)]
        confirm: String,
    },
    /// List agent definitions in the repository (AGENTS.md sections `Agent: NAME`, or
    /// .sf/agents/*.toml) that are not registered
    #[command(after_help = "\
Examples:
  sfctl agent discover
  sfctl agent import reviewer-bot --seat review")]
    Discover,
    /// Bring a discovered definition in as a draft
    #[command(after_help = "\
Examples:
  sfctl agent discover
  sfctl agent import reviewer-bot --seat review")]
    Import {
        /// Its name
        name: String,
        /// The seat it staffs
        #[arg(long, value_name = "SEAT")]
        seat: Option<String>,
    },
    /// Remove an agent (refused while it has live work)
    #[command(after_help = "\
Examples:
  sfctl agent remove w1
  sfctl agent stop w1 && sfctl agent remove w1    # it had live work")]
    Remove {
        /// The agent's name
        name: String,
    },
}

/// Register an agent: a director, worker or steward
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sfctl agent register w1 --role worker --adapter claude --skills rust,sql
  sfctl agent register merger --role steward --focus merge --trigger '*/10 * * * *'
  sfctl agent register janitor --role steward --focus custom --playbook cleanup \\
      --on task_closed --capability push")]
pub struct RegisterArgs {
    /// Unique name: lowercase letters, digits, `-` and `_`, at most 32 characters; default:
    /// the convention (`director`, `e-worker-N`, `p-worker-N`, `m-steward-N`, `d-steward-N`,
    /// `r-steward-N`, `c-steward-N`), numbered after the existing ones
    pub name: Option<String>,
    /// What the agent does
    #[arg(long, value_parser = wire::<Role>())]
    pub role: Role,
    /// Ephemeral: spawned by the daemon per task; persistent: started by a human
    #[arg(long, value_parser = wire::<Mode>(), default_value = "ephemeral")]
    pub mode: Mode,
    /// A steward's focus
    #[arg(long, value_parser = wire::<Focus>())]
    pub focus: Option<Focus>,
    /// Cron schedule (standard 5 fields, in UTC unless `timezone` in .sf/config.toml names
    /// another); repeatable
    #[arg(long = "trigger", value_name = "CRON")]
    pub triggers: Vec<String>,
    /// Event trigger `EVENT[:CONDITION]`; repeatable
    #[arg(long = "on", value_name = "EVENT[:COND]")]
    pub on: Vec<String>,
    /// Which coding-agent CLI it runs
    #[arg(long, value_parser = wire::<Adapter>(), default_value = "command")]
    pub adapter: Adapter,
    /// Executable to run (for `command`), or the path of the adapter's CLI
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// Model passed to the adapter
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
    /// Reasoning effort
    #[arg(long, value_parser = wire::<Effort>())]
    pub effort: Option<Effort>,
    /// A skill; repeatable, or comma-separated (`--skills a,b`)
    #[arg(
        long = "skill",
        visible_alias = "skills",
        value_name = "SKILL",
        value_delimiter = ','
    )]
    pub skills: Vec<String>,
    /// Job title
    #[arg(long, value_name = "T")]
    pub title: Option<String>,
    /// Persona text put into its prompt
    #[arg(long, value_name = "P")]
    pub persona: Option<String>,
    /// The agent it reports to
    #[arg(long, value_name = "NAME")]
    pub reports_to: Option<String>,
    /// The human who owns it (default: $USER)
    #[arg(long, value_name = "HUMAN")]
    pub owner: Option<String>,
    /// Most tasks it runs at once
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tasks: u32,
    /// A capability to grant; repeatable (all are off by default)
    #[arg(long = "capability", value_parser = wire::<Capability>())]
    pub capabilities: Vec<Capability>,
    /// For custom stewards: the playbook it runs
    #[arg(long, value_name = "NAME")]
    pub playbook: Option<String>,
    /// Wall-time limit of one run, e.g. `30m` (default: `worker_timeout` in config.toml)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_runtime: Option<std::time::Duration>,
    /// A secret alias from `[secrets]` in .sf/config.toml; its runs get the value as $ALIAS
    /// (repeatable; only the alias is stored)
    #[arg(long = "secret", value_name = "ALIAS")]
    pub secrets: Vec<String>,
    /// Its job on the team: picks its default persona and tool rules
    #[arg(long, value_parser = wire::<JobRole>(), default_value = "general")]
    pub job: JobRole,
    /// The seat it staffs (`sfctl seat create`)
    #[arg(long, value_name = "SEAT")]
    pub seat: Option<String>,
}

/// The fields `sfctl agent update` changes; the others stay as they are.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The agent's name
    pub name: String,
    /// Which CLI it runs
    #[arg(long, value_parser = wire::<Adapter>())]
    pub adapter: Option<Adapter>,
    /// The command line (for `command`) or the CLI's program; "" clears it
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,
    /// Model; "" clears it
    #[arg(long)]
    pub model: Option<String>,
    /// Reasoning effort
    #[arg(long, value_parser = wire::<Effort>())]
    pub effort: Option<Effort>,
    /// Skills, comma-separated (replaces the set)
    #[arg(long, value_delimiter = ',')]
    pub skills: Option<Vec<String>>,
    /// Job title; "" clears it
    #[arg(long)]
    pub title: Option<String>,
    /// Persona; "" clears it
    #[arg(long)]
    pub persona: Option<String>,
    /// Most tasks at once
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tasks: Option<u32>,
    /// Capabilities (repeatable; replaces the set)
    #[arg(long = "capability", value_parser = wire::<Capability>())]
    pub capabilities: Vec<Capability>,
    /// Take every capability away
    #[arg(long, conflicts_with = "capabilities")]
    pub no_capabilities: bool,
    /// Secret aliases (repeatable; replaces the set)
    #[arg(long = "secret", value_name = "ALIAS")]
    pub secrets: Vec<String>,
    /// Take every secret away
    #[arg(long, conflicts_with = "secrets")]
    pub no_secrets: bool,
    /// Wall-time limit of one run, e.g. `30m`
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_runtime: Option<std::time::Duration>,
    /// Cron triggers (repeatable; replaces the set; a schedule is a human's decision)
    #[arg(long = "trigger", value_name = "CRON")]
    pub triggers: Vec<String>,
    /// Job role
    #[arg(long, value_parser = wire::<JobRole>())]
    pub job: Option<JobRole>,
    /// The seat it staffs; "" frees it
    #[arg(long, value_name = "SEAT")]
    pub seat: Option<String>,
}

impl UpdateArgs {
    fn into_patch(self) -> (String, sf_proto::AgentPatch) {
        let patch = sf_proto::AgentPatch {
            adapter: self.adapter,
            command: self.command,
            model: self.model,
            effort: self.effort,
            skills: self.skills,
            title: self.title,
            persona: self.persona,
            owner: None,
            max_tasks: self.max_tasks,
            capabilities: if self.no_capabilities {
                Some(Vec::new())
            } else {
                (!self.capabilities.is_empty()).then_some(self.capabilities)
            },
            secrets: if self.no_secrets {
                Some(Vec::new())
            } else {
                (!self.secrets.is_empty()).then_some(self.secrets)
            },
            max_runtime_secs: self.max_runtime.map(|d| d.as_secs().max(1)),
            triggers: (!self.triggers.is_empty()).then_some(self.triggers),
            on: None,
            job: self.job,
            seat: self.seat,
        };
        (self.name, patch)
    }
}

impl RegisterArgs {
    fn into_spec(self) -> AgentSpec {
        let mut skills: Vec<String> = self
            .skills
            .iter()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        skills.sort();
        skills.dedup();
        AgentSpec {
            name: self.name.unwrap_or_default(),
            role: self.role,
            mode: self.mode,
            focus: self.focus,
            triggers: self.triggers,
            on: self.on,
            adapter: self.adapter,
            command: self.command,
            model: self.model,
            effort: self.effort,
            skills,
            title: self.title,
            persona: self.persona,
            reports_to: self.reports_to,
            owner: self.owner.or_else(user_name),
            max_tasks: self.max_tasks,
            capabilities: self.capabilities,
            playbook: self.playbook,
            max_runtime_secs: self.max_runtime.map(|d| d.as_secs().max(1)),
            secrets: self.secrets,
            permissions: sf_proto::Permissions::default(),
            job: self.job,
            seat: self.seat,
        }
    }
}

/// The event names of `--on` triggers that are not the daemon's own (a typo, or a custom
/// event someone must emit).
fn custom_events(on: &[String]) -> Vec<&str> {
    on.iter()
        .map(|t| t.split(':').next().unwrap_or_default().trim())
        .filter(|e| !sf_proto::DAEMON_EVENTS.contains(e))
        .collect()
}

/// A warning when a steward's own output can match its trigger: a custom steward's
/// playbook creates tasks, and these `--on` events fire for tasks.
fn feeds_itself(spec: &sf_proto::AgentSpec) -> Option<String> {
    if spec.focus != Some(sf_proto::Focus::Custom) {
        return None;
    }
    let task_events: Vec<&str> = spec
        .on
        .iter()
        .map(|t| t.split(':').next().unwrap_or_default().trim())
        .filter(|e| {
            e.starts_with("task_") || matches!(*e, "branch_ready" | "merge_failed" | "agent_failed")
        })
        .collect();
    let first = task_events.first()?;
    Some(format!(
        "`{}`'s playbook `{}` creates tasks, and `{first}` fires for tasks: its own tasks' \
         events never fire it again, but a playbook that reacts to other stewards' tasks can \
         still chain; it fires at most `steward_fire_limit` times a minute (10 by default). \
         Narrow it with a condition, e.g. --on '{first}:{{{{type}}}} == bug'",
        spec.name,
        spec.playbook.as_deref().unwrap_or("?"),
    ))
}

pub fn run(ctx: &mut Context, cmd: AgentCommand) -> CliResult {
    use crate::commands::staff;
    match cmd {
        AgentCommand::Template(t) => staff::template(ctx, t),
        AgentCommand::Create {
            template,
            seat,
            name,
            adapter,
            command,
            model,
        } => {
            let spec = AgentSpec {
                name: name.unwrap_or_default(),
                seat,
                adapter: adapter.unwrap_or(Adapter::Command),
                command,
                model,
                ..AgentSpec::default()
            };
            let resp = ctx.request(&Request::DraftAgent {
                spec,
                template: Some(template),
                import: None,
            })?;
            staff::drafted(ctx, resp)
        }
        AgentCommand::Draft(args) => {
            let spec = (*args).into_spec();
            let resp = ctx.request(&Request::DraftAgent {
                spec,
                template: None,
                import: None,
            })?;
            staff::drafted(ctx, resp)
        }
        AgentCommand::Import { name, seat } => {
            let spec = AgentSpec {
                seat,
                ..AgentSpec::default()
            };
            let resp = ctx.request(&Request::DraftAgent {
                spec,
                template: None,
                import: Some(name),
            })?;
            staff::drafted(ctx, resp)
        }
        AgentCommand::Discover => {
            let resp = ctx.request(&Request::DiscoverAgents)?;
            let list = expect_response!(resp, Response::Discovered(d) => d);
            ctx.ui.emit(&list, |ui, list| {
                if list.is_empty() {
                    return ui.line("no unregistered agent definitions (AGENTS.md `## Agent: NAME` sections, .sf/agents/*.toml)");
                }
                let rows = list
                    .iter()
                    .map(|d| {
                        vec![
                            ui.cell(&d.spec.name, None),
                            ui.cell(format!("{} {}", d.spec.role, d.spec.job), None),
                            ui.cell(&d.source, None),
                        ]
                    })
                    .collect();
                ui.table(&["NAME", "ROLE/JOB", "SOURCE"], rows)
            })
        }
        AgentCommand::DryRun { name, task } => {
            let resp = ctx.request(&Request::DryRun { name, task })?;
            let d = expect_response!(resp, Response::DryRun(d) => d);
            ctx.ui.emit(&d, |ui, d| {
                ui.line(format!(
                    "dry run #{} of {} started (run {}) on: {}",
                    d.id, d.agent, d.run.0, d.task
                ))?;
                ui.line(format!(
                    "follow it with `sfctl logs --run {}`; its evidence: `sfctl agent dry-runs {}`",
                    d.run.0, d.agent
                ))
            })
        }
        AgentCommand::DryRuns { name } => {
            let resp = ctx.request(&Request::ListDryRuns { name })?;
            let list = expect_response!(resp, Response::DryRuns(d) => d);
            ctx.ui.emit(&list, |ui, list| staff::dry_runs(ui, list))
        }
        AgentCommand::GoLive { name } => {
            let resp = ctx.request(&Request::GoLive { name })?;
            staff::agent_line(ctx, resp, "took live")
        }
        AgentCommand::Decommission { name, confirm } => {
            if confirm != name {
                return Err(CliError::user(format!(
                    "--confirm `{confirm}` does not match `{name}`"
                ))
                .with_hint(format!("sfctl agent decommission {name} --confirm {name}")));
            }
            let resp = ctx.request(&Request::Decommission { name })?;
            staff::agent_line(ctx, resp, "decommissioned")
        }
        AgentCommand::Schedule {
            name,
            triggers,
            on,
            clear,
        } => {
            if !clear && triggers.is_empty() && on.is_empty() {
                return Err(CliError::user(
                    "give --trigger CRON, --on EVENT, or --clear",
                ));
            }
            let patch = sf_proto::AgentPatch {
                triggers: Some(triggers),
                on: Some(on),
                ..sf_proto::AgentPatch::default()
            };
            let resp = ctx.request(&Request::UpdateAgent { name, patch })?;
            staff::agent_line(ctx, resp, "scheduled")
        }
        AgentCommand::RunNow { name, task } => {
            let resp = ctx.request(&Request::ShowAgent { name: name.clone() })?;
            let a = expect_response!(resp, Response::Agent(a) => a);
            if a.agent.spec.role == Role::Steward {
                return crate::commands::steward::run(
                    ctx,
                    crate::commands::steward::StewardCommand::Run {
                        name,
                        data: Vec::new(),
                        no_wait: false,
                    },
                );
            }
            run(
                ctx,
                AgentCommand::Start {
                    name,
                    task,
                    resume: None,
                },
            )
        }
        AgentCommand::Register(args) => {
            let spec = (*args).into_spec();
            let resp = ctx.request(&Request::RegisterAgent { spec })?;
            let agent = expect_response!(resp, Response::Agent(a) => a);
            for event in custom_events(&agent.agent.spec.on) {
                let guess = sf_proto::DAEMON_EVENTS
                    .iter()
                    .find(|e| strsim::levenshtein(e, event) <= 2)
                    .map(|e| format!("; did you mean `{e}`?"))
                    .unwrap_or_default();
                ctx.ui.warn(format!(
                    "`{event}` is not an event sfd publishes: it fires only on `sfctl event emit {event}`{guess} \
                     (sfd's own: {})",
                    sf_proto::DAEMON_EVENTS.join(", ")
                ));
            }
            if let Some(w) = feeds_itself(&agent.agent.spec) {
                ctx.ui.warn(w);
            }
            ctx.ui.emit(&agent, |ui, agent| {
                let s = &agent.agent.spec;
                ui.line(format!(
                    "registered agent {} ({} {})",
                    s.name, s.mode, s.role
                ))
            })
        }
        AgentCommand::Hire(args) => {
            let spec = (*args).into_spec();
            let resp = ctx.request(&Request::HireAgent { spec })?;
            let agent = expect_response!(resp, Response::Agent(a) => a);
            ctx.ui.emit(&agent, |ui, agent| {
                let s = &agent.agent.spec;
                match agent.agent.status {
                    sf_proto::AgentStatus::PendingApproval => {
                        ui.line(format!(
                            "hired agent {} ({} {}): pending_approval, it runs once a human approves",
                            s.name, s.mode, s.role
                        ))?;
                        ui.status("hint: a human sees it in `sfctl approval list --status pending`");
                        Ok(())
                    }
                    _ => ui.line(format!("hired agent {} ({} {})", s.name, s.mode, s.role)),
                }
            })
        }
        AgentCommand::Update(args) => {
            let (name, patch) = (*args).into_patch();
            let resp = ctx.request(&Request::UpdateAgent { name, patch })?;
            let agent = expect_response!(resp, Response::Agent(a) => a);
            ctx.ui.emit(&agent, |ui, agent| {
                ui.line(format!("updated agent {}", agent.agent.spec.name))
            })
        }
        AgentCommand::Permissions {
            name,
            can_create_agents,
        } => {
            let resp = ctx.request(&Request::SetAgentPermissions {
                name,
                can_create_agents,
            })?;
            let agent = expect_response!(resp, Response::Agent(a) => a);
            ctx.ui.emit(&agent, |ui, agent| {
                ui.line(format!(
                    "agent {}: can_create_agents {}",
                    agent.agent.spec.name,
                    agent.agent.spec.can_create_agents()
                ))
            })
        }
        AgentCommand::Config { name, all: _ } => {
            let resp = ctx.request(&Request::AgentConfigs { name })?;
            let configs = expect_response!(resp, Response::AgentConfigs(c) => c);
            ctx.ui.emit(&configs, |ui, configs| {
                for (i, c) in configs.iter().enumerate() {
                    if i > 0 {
                        ui.line("")?;
                    }
                    ui.line(config_text(c))?;
                }
                Ok(())
            })
        }
        AgentCommand::ToolCalls {
            name,
            run,
            held_only,
            denied_only,
            limit,
        } => {
            let resp = ctx.request(&Request::AgentToolCalls {
                name,
                run,
                held_only,
                denied_only,
                limit: Some(limit),
            })?;
            let calls = expect_response!(resp, Response::ToolCalls(c) => c);
            ctx.ui.emit(&calls, |ui, calls| tool_calls_table(ui, calls))
        }
        AgentCommand::Runs { name } => {
            let resp = ctx.request(&Request::AgentRuns { name, limit: None })?;
            let runs = expect_response!(resp, Response::AgentRuns(r) => r);
            ctx.ui.emit(&runs, |ui, runs| runs_table(ui, runs))
        }
        AgentCommand::Card { name } => {
            let resp = ctx.request(&Request::AgentCard { name })?;
            let card = expect_response!(resp, Response::TrustCard(c) => c);
            ctx.ui.emit(&card, |ui, card| ui.line(card_text(card)))
        }
        AgentCommand::List => {
            let resp = ctx.request(&Request::ListAgents)?;
            let agents = expect_response!(resp, Response::Agents(a) => a);
            ctx.ui.emit(&agents, |ui, agents| agent_table(ui, agents))
        }
        AgentCommand::Show { name } => {
            let resp = ctx.request(&Request::ShowAgent { name })?;
            let agent = expect_response!(resp, Response::Agent(a) => a);
            ctx.ui
                .emit(&agent, |ui, agent| show(ui, agent, chrono::Utc::now()))
        }
        AgentCommand::Start { name, task, resume } => {
            let task = task.as_deref().map(check_id).transpose()?;
            let resp = ctx.request(&Request::StartAgent { name, task, resume })?;
            if let Response::Session(s) = resp {
                return ctx.ui.emit(&s, |ui, s| {
                    ui.line(format!(
                        "started session #{} of {} on {}; talk to it with `sfctl agent attach {}`",
                        s.id, s.agent, s.branch, s.agent
                    ))
                });
            }
            let run = expect_response!(resp, Response::Run(r) => r);
            ctx.ui.emit(&run, |ui, run| ui.line(started_line(run)))
        }
        AgentCommand::Sessions { name } => {
            let resp = ctx.request(&Request::ListSessions { name })?;
            let list = expect_response!(resp, Response::Sessions(s) => s);
            ctx.ui.emit(&list, |ui, list| sessions_table(ui, list))
        }
        AgentCommand::Attach { name } => crate::commands::logs::attach(ctx, &name),
        AgentCommand::Stop { name } => {
            let resp = ctx.request(&Request::StopAgent { name: name.clone() })?;
            match resp {
                Response::Ok { message } if ctx.ui.json => ctx.ui.json_message(&message),
                Response::Agent(a) if ctx.ui.json => ctx.ui.json_value(&a),
                Response::Ok { message } => ctx.ui.line(message),
                Response::Agent(_) => ctx.ui.line(format!("stopped agent {name}")),
                other => Err(CliError::unexpected(&other)),
            }
        }
        AgentCommand::Egress { name, run, limit } => {
            let resp = ctx.request(&Request::AgentEgress {
                name,
                run,
                limit: Some(limit),
            })?;
            let records = expect_response!(resp, Response::Egress(e) => e);
            ctx.ui
                .emit(&records, |ui, records| egress_table(ui, records))
        }
        AgentCommand::Enable { name } => set_enabled(ctx, name, true),
        AgentCommand::Disable { name } => set_enabled(ctx, name, false),
        AgentCommand::Remove { name } => {
            let resp = ctx.request(&Request::RemoveAgent { name: name.clone() })?;
            match resp {
                Response::Ok { message } if ctx.ui.json => ctx.ui.json_message(&message),
                Response::Agent(a) if ctx.ui.json => ctx.ui.json_value(&a),
                Response::Ok { .. } | Response::Agent(_) => {
                    ctx.ui.line(format!("removed agent {name}"))
                }
                other => Err(CliError::unexpected(&other)),
            }
        }
    }
}

fn decision_color(decision: &str) -> Option<Color> {
    match decision {
        "allow" | "held_approved" => Some(Color::Green),
        "hold" => Some(Color::Yellow),
        _ => Some(Color::Red),
    }
}

fn tool_calls_table(ui: &mut Ui, calls: &[sf_proto::ToolCallRecord]) -> CliResult {
    if calls.is_empty() {
        return ui.line("no tool calls recorded");
    }
    let now = chrono::Utc::now();
    let rows = calls
        .iter()
        .map(|c| {
            vec![
                ui.cell(time::relative(c.at, now), None),
                ui.cell(c.run, None),
                ui.cell(&c.tool, None),
                ui.cell(&c.decision, decision_color(&c.decision)),
                ui.cell(&c.summary, None),
                ui.cell(&c.rule, None),
            ]
        })
        .collect();
    ui.table(&["WHEN", "RUN", "TOOL", "DECISION", "INPUT", "RULE"], rows)
}

fn runs_table(ui: &mut Ui, runs: &[sf_proto::RunLedger]) -> CliResult {
    if runs.is_empty() {
        return ui.line("no runs");
    }
    let rows = runs
        .iter()
        .map(|r| {
            let usage = r.run.usage.clone().unwrap_or_default();
            vec![
                ui.cell(r.run.id, None),
                ui.cell(or_dash(r.run.task.as_ref()), None),
                ui.cell(or_dash(r.run.outcome.as_deref()), None),
                ui.cell(r.tool_calls, None),
                ui.cell(r.held, None),
                ui.cell(r.denied, (r.denied > 0).then_some(Color::Red)),
                ui.cell(usage.input_tokens + usage.output_tokens, None),
                ui.cell(
                    usage
                        .cost_usd
                        .map_or_else(|| "-".to_owned(), |c| format!("${c:.4}")),
                    None,
                ),
            ]
        })
        .collect();
    ui.table(
        &[
            "RUN", "TASK", "OUTCOME", "CALLS", "HELD", "DENIED", "TOKENS", "COST",
        ],
        rows,
    )
}

fn card_text(c: &sf_proto::TrustCard) -> String {
    let runs = if c.runs.is_empty() {
        "none".to_owned()
    } else {
        c.runs
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    key_values(&[
        ("agent", c.agent.clone()),
        ("runs", runs),
        (
            "tool calls",
            format!("{} ({} denied, {} held)", c.tool_calls, c.denied, c.held),
        ),
        ("requests denied", c.requests_denied.to_string()),
        ("egress denied", c.egress_denied.to_string()),
        ("tokens", c.tokens.to_string()),
        ("cost", format!("${:.4}", c.cost_usd)),
        (
            "guard latency",
            c.guard_median_us.map_or_else(
                || "-".to_owned(),
                |us| format!("{:.2} ms median", us as f64 / 1000.0),
            ),
        ),
    ])
}

/// One agent's configuration as key: value lines.
fn config_text(c: &sf_proto::AgentConfig) -> String {
    let s = &c.spec;
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    key_values(&[
        ("name", s.name.clone()),
        (
            "status",
            format!("{}{}", c.status, if c.enabled { "" } else { " (disabled)" }),
        ),
        ("role", format!("{} {}", s.mode, s.role)),
        ("adapter", s.adapter.to_string()),
        ("command", or_dash(s.command.as_deref())),
        ("model", or_dash(s.model.as_deref())),
        (
            "effort",
            s.effort.map_or_else(|| "-".to_owned(), |e| e.to_string()),
        ),
        ("skills", list(&s.skills)),
        (
            "capabilities",
            list(
                &s.capabilities
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            ),
        ),
        ("secrets", list(&s.secrets)),
        ("can create agents", c.can_create_agents.to_string()),
        ("max tasks", s.max_tasks.to_string()),
        (
            "max runtime",
            s.max_runtime_secs
                .map_or_else(|| "-".to_owned(), time::duration_secs),
        ),
        ("triggers", list(&s.triggers)),
        ("on", list(&s.on)),
        ("owner", or_dash(s.owner.as_deref())),
    ])
}

fn set_enabled(ctx: &mut Context, name: String, enabled: bool) -> CliResult {
    let resp = ctx.request(&Request::SetAgentEnabled {
        name: name.clone(),
        enabled,
    })?;
    match resp {
        Response::Agent(a) if ctx.ui.json => ctx.ui.json_value(&a),
        Response::Ok { message } if ctx.ui.json => ctx.ui.json_message(&message),
        Response::Agent(_) | Response::Ok { .. } => ctx.ui.line(format!(
            "agent {name} {}",
            if enabled { "enabled" } else { "disabled" }
        )),
        other => Err(CliError::unexpected(&other)),
    }
}

fn agent_table(ui: &mut Ui, agents: &[AgentSummary]) -> CliResult {
    let rows = agents
        .iter()
        .map(|a| {
            vec![
                ui.cell(&a.spec.name, None),
                ui.cell(a.spec.role, None),
                ui.cell(a.spec.mode, None),
                ui.cell(a.spec.adapter, None),
                if a.status == sf_proto::AgentStatus::Live {
                    ui.cell(a.state, agent_state_color(a.state))
                } else {
                    ui.cell(a.status, Some(Color::Yellow))
                },
                ui.cell(if a.enabled { "yes" } else { "no" }, None),
                ui.cell(a.running, None),
                ui.cell(a.spec.skills.join(","), None),
            ]
        })
        .collect();
    ui.table(
        &[
            "NAME", "ROLE", "MODE", "ADAPTER", "STATE", "ENABLED", "RUNNING", "SKILLS",
        ],
        rows,
    )
}

fn egress_table(ui: &mut Ui, records: &[sf_proto::EgressRecord]) -> CliResult {
    if records.is_empty() {
        return ui.line("no connections through the egress proxy");
    }
    let now = chrono::Utc::now();
    let rows = records
        .iter()
        .map(|r| {
            let host = if r.host.contains(':') {
                format!("[{}]:{}", r.host, r.port)
            } else {
                format!("{}:{}", r.host, r.port)
            };
            let (decision, color) = match (r.allowed, &r.error) {
                (false, _) => ("denied".to_owned(), Some(Color::Red)),
                (true, Some(e)) => (format!("failed: {e}"), Some(Color::Yellow)),
                (true, None) => ("allowed".to_owned(), Some(Color::Green)),
            };
            vec![
                ui.cell(time::relative(r.started_at, now), None),
                ui.cell(r.run, None),
                ui.cell(host, None),
                ui.cell(decision, color),
                ui.cell(&r.rule, None),
                ui.cell(format!("{}/{}", r.bytes_out, r.bytes_in), None),
            ]
        })
        .collect();
    ui.table(&["WHEN", "RUN", "HOST", "DECISION", "RULE", "OUT/IN"], rows)
}

pub fn show(ui: &mut Ui, detail: &AgentDetail, now: sf_proto::Timestamp) -> CliResult {
    let a = &detail.agent;
    let s = &a.spec;
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    let caps: Vec<String> = s.capabilities.iter().map(ToString::to_string).collect();
    let mut pairs = vec![
        ("name", s.name.clone()),
        ("role", s.role.to_string()),
        ("job", s.job.to_string()),
        ("mode", s.mode.to_string()),
        ("status", a.status.to_string()),
        ("seat", or_dash(s.seat.as_ref())),
        (
            "manifest",
            match detail.signed {
                Some(true) => "signed".to_owned(),
                Some(false) => ui.paint(
                    &format!(
                        "CHANGED since it was signed: `sfctl charter sign-manifest {}`",
                        s.name
                    ),
                    Some(Color::Red),
                ),
                None => "unsigned".to_owned(),
            },
        ),
        (
            "state",
            ui.paint(a.state.as_str(), agent_state_color(a.state)),
        ),
        ("enabled", if a.enabled { "yes" } else { "no" }.to_owned()),
        ("running", a.running.to_string()),
    ];
    if let Some(level) = &detail.sandbox {
        pairs.push(("sandbox", level.clone()));
    }
    if let Some(n) = a.merges {
        pairs.push(("merges", n.to_string()));
    }
    pairs.extend([
        ("focus", or_dash(s.focus)),
        ("adapter", s.adapter.to_string()),
        ("command", or_dash(s.command.as_ref())),
        ("model", or_dash(s.model.as_ref())),
        ("effort", or_dash(s.effort)),
        ("skills", list(&s.skills)),
        ("capabilities", list(&caps)),
        ("title", or_dash(s.title.as_ref())),
        ("reports to", or_dash(s.reports_to.as_ref())),
        ("owner", or_dash(s.owner.as_ref())),
        ("max tasks", s.max_tasks.to_string()),
        ("playbook", or_dash(s.playbook.as_ref())),
        (
            "secrets",
            if s.secrets.is_empty() {
                "-".to_owned()
            } else {
                s.secrets.join(", ")
            },
        ),
        ("event triggers", list(&s.on)),
        ("created", time::both(a.created_at, now)),
    ]);
    if let Some(p) = &s.persona {
        pairs.push(("persona", p.clone()));
    }
    ui.line(key_values(&pairs))?;
    if let Some(why) = &a.blocked {
        ui.line(format!(
            "\n{} {why}",
            ui.paint("blocked:", Some(Color::Yellow))
        ))?;
    }
    if let Some(why) = &a.disabled_reason {
        // the CLI's own words and the fix, in full
        ui.line(format!(
            "\n{}",
            ui.paint("disabled by sfd:", Some(Color::Red))
        ))?;
        ui.line(indent(why))?;
    }
    if !s.triggers.is_empty() {
        ui.line("\ncron triggers:")?;
        let lines: Vec<String> = s
            .triggers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let next = detail.next_fires.get(i).copied().flatten();
                format!(
                    "{t}  next: {}",
                    next.map_or_else(|| "-".to_owned(), |n| time::both(n, now))
                )
            })
            .collect();
        ui.line(indent(&lines.join("\n")))?;
    }
    if !detail.runs.is_empty() {
        ui.line("\nruns:")?;
        run_table(ui, &detail.runs, RunsOf::Agent)?;
    }
    Ok(())
}

/// `started w1 on task k3f9xq (run 12, pid 4242)`.
fn started_line(run: &RunSummary) -> String {
    let on = run
        .task
        .as_ref()
        .map(|t| format!(" on task {t}"))
        .unwrap_or_default();
    let pid = run.pid.map(|p| format!(", pid {p}")).unwrap_or_default();
    format!("started {}{on} (run {}{pid})", run.agent, run.id)
}

/// Whose runs a table lists; that side's column is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsOf {
    /// A task's runs: the table names each run's agent.
    Task,
    /// An agent's runs: the table names each run's task.
    Agent,
}

/// Prints the runs of a task or an agent; see [`render_runs`].
pub fn run_table(ui: &mut Ui, runs: &[RunSummary], of: RunsOf) -> CliResult {
    let text = render_runs(runs, of, ui.color, ui.width(), chrono::Utc::now());
    ui.line(text)
}

/// The run table: RUN AGENT|TASK EPOCH STARTED ENDED EXIT OUTCOME TOKENS COST ERROR. ERROR
/// is the first line of what the CLI said when the run did not complete or hand off (`task
/// show` has it in full, in the run's note); it is the column that gives way first.
pub fn render_runs(
    runs: &[RunSummary],
    of: RunsOf,
    color: bool,
    width: Option<u16>,
    now: Timestamp,
) -> String {
    let rows: Vec<Vec<Cell>> = runs
        .iter()
        .map(|r| {
            let usage = r.usage.as_ref();
            vec![
                cell(color, r.id, None),
                match of {
                    RunsOf::Task => cell(color, &r.agent, None),
                    RunsOf::Agent => cell(color, or_dash(r.task.as_ref()), None),
                },
                cell(color, r.epoch, None),
                cell(color, time::relative(r.started_at, now), None),
                cell(
                    color,
                    r.ended_at
                        .map_or_else(|| "-".to_owned(), |t| time::relative(t, now)),
                    None,
                ),
                cell(color, or_dash(r.exit_code), None),
                cell(
                    color,
                    r.outcome.as_deref().unwrap_or("running"),
                    outcome_color(r.outcome.as_deref()),
                ),
                cell(color, or_dash(usage.map(tokens)), None),
                cell(
                    color,
                    or_dash(usage.and_then(|u| u.cost_usd).map(dollars)),
                    None,
                ),
                cell(color, run_error(r), None),
            ]
        })
        .collect();
    let who = match of {
        RunsOf::Task => "AGENT",
        RunsOf::Agent => "TASK",
    };
    render_table(
        &[
            "RUN", who, "EPOCH", "STARTED", "ENDED", "EXIT", "OUTCOME", "TOKENS", "COST", "ERROR",
        ],
        rows,
        color,
        width,
    )
}

/// Green for a run that did its work, red for one that failed, none while it runs.
fn outcome_color(outcome: Option<&str>) -> Option<Color> {
    match outcome? {
        "completed" | "handed_off" => Some(Color::Green),
        "stopped" | "interrupted" | "usage_limited" => Some(Color::Yellow),
        _ => Some(Color::Red),
    }
}

/// The first line of what the CLI said about a run that did not complete or hand off.
fn run_error(r: &RunSummary) -> String {
    let failed = r
        .outcome
        .as_deref()
        .is_some_and(|o| !matches!(o, "completed" | "handed_off"));
    let first = |t: &str| {
        t.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    };
    let said = r
        .usage
        .as_ref()
        .and_then(|u| u.result.as_deref())
        .filter(|_| failed)
        .and_then(first);
    // else sfd's note: its first clause says how the run ended
    let noted = || {
        r.error
            .as_deref()
            .filter(|_| failed)
            .and_then(first)
            .map(|l| {
                l.split_once("; ")
                    .map_or(l.as_str(), |(head, _)| head)
                    .trim_end_matches('.')
                    .to_owned()
            })
    };
    said.or_else(noted).unwrap_or_else(|| "-".to_owned())
}

/// Input plus output tokens, short: `950`, `12.3k`, `1.2M`; `-` when none were reported.
fn tokens(u: &RunUsage) -> String {
    let n = u.input_tokens.saturating_add(u.output_tokens);
    if n == 0 {
        return "-".to_owned();
    }
    #[allow(clippy::cast_precision_loss)] // for display only
    let f = n as f64;
    match n {
        1..1_000 => n.to_string(),
        1_000..999_950 => format!("{:.1}k", f / 1e3),
        _ => format!("{:.1}M", f / 1e6),
    }
}

/// `$0.42`; fractions of a cent as `<$0.01`.
fn dollars(usd: f64) -> String {
    if usd > 0.0 && usd < 0.005 {
        "<$0.01".to_owned()
    } else {
        format!("${usd:.2}")
    }
}

fn sessions_table(ui: &mut Ui, list: &[sf_proto::SessionInfo]) -> CliResult {
    if list.is_empty() {
        return ui.line("no sessions; start one with `sfctl agent start NAME`");
    }
    let now = chrono::Utc::now();
    let rows = list
        .iter()
        .map(|s| {
            vec![
                ui.cell(s.id, None),
                ui.cell(or_dash(s.provider_session.as_ref()), None),
                ui.cell(&s.task, None),
                ui.cell(&s.branch, None),
                ui.cell(
                    match (&s.note, s.running) {
                        (_, true) => "turn running".to_owned(),
                        (Some(n), _) if s.status == sf_proto::SessionStatus::Ended => {
                            format!("ended: {n}")
                        }
                        _ => s.status.to_string(),
                    },
                    None,
                ),
                ui.cell(s.turns, None),
                ui.cell(time::relative(s.started_at, now), None),
            ]
        })
        .collect();
    ui.table(
        &[
            "ID",
            "CLI SESSION",
            "TASK",
            "BRANCH",
            "STATUS",
            "TURNS",
            "STARTED",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_on_events_sfd_does_not_publish_are_named() {
        let on = [
            "task_stuck".to_owned(),
            "task_completed:{{priority}} == 1".to_owned(),
            "deploy_finished:{{env}} == prod".to_owned(),
            "task_stcuk".to_owned(),
        ];
        assert_eq!(custom_events(&on), ["deploy_finished", "task_stcuk"]);
    }

    fn run(id: i64) -> RunSummary {
        RunSummary {
            id: sf_proto::RunId(id),
            task: Some("k3f9xq".parse().unwrap()),
            agent: "w1".into(),
            epoch: 2,
            started_at: "2025-05-01T11:50:00Z".parse().unwrap(),
            ended_at: None,
            exit_code: None,
            outcome: None,
            pid: Some(4242),
            log_path: None,
            usage: None,
            error: None,
        }
    }

    #[test]
    fn started_line_names_task_run_and_pid() {
        assert_eq!(
            started_line(&run(12)),
            "started w1 on task k3f9xq (run 12, pid 4242)"
        );
        let mut r = run(3);
        r.task = None;
        r.pid = None;
        assert_eq!(started_line(&r), "started w1 (run 3)");
    }

    #[test]
    fn run_tables_show_usage_and_leave_out_the_known_side() {
        let mut done = run(7);
        done.ended_at = Some("2025-05-01T11:58:00Z".parse().unwrap());
        done.exit_code = Some(0);
        done.outcome = Some("completed".into());
        done.usage = Some(RunUsage {
            input_tokens: 12_000,
            output_tokens: 345,
            cost_usd: Some(0.4217),
            ..RunUsage::default()
        });
        let now = "2025-05-01T12:00:00Z".parse().unwrap();
        let text = render_runs(&[run(9), done.clone()], RunsOf::Task, false, None, now);
        assert_eq!(
            text,
            "RUN  AGENT  EPOCH  STARTED  ENDED   EXIT  OUTCOME    TOKENS  COST   ERROR\n\
             9    w1     2      10m ago  -       -     running    -       -      -\n\
             7    w1     2      10m ago  2m ago  0     completed  12.3k   $0.42  -"
        );
        let text = render_runs(&[done], RunsOf::Agent, false, None, now);
        assert!(text.starts_with("RUN  TASK    EPOCH"), "{text}");
        assert!(text.contains("7    k3f9xq  2"), "{text}");
    }

    /// A failed run shows the first line of what its CLI said; the error gives way first
    /// on a narrow terminal.
    #[test]
    fn a_failed_run_shows_its_clis_error() {
        let mut failed = run(4);
        failed.ended_at = Some("2025-05-01T11:58:00Z".parse().unwrap());
        failed.exit_code = Some(1);
        failed.outcome = Some("auth_failed".into());
        failed.usage = Some(RunUsage {
            result: Some("Not logged in · Please run /login\nmore".into()),
            ..RunUsage::default()
        });
        let now = "2025-05-01T12:00:00Z".parse().unwrap();
        let text = render_runs(
            std::slice::from_ref(&failed),
            RunsOf::Task,
            false,
            None,
            now,
        );
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .ends_with("auth_failed  -       -     Not logged in · Please run /login"),
            "{text}"
        );
        let narrow = render_runs(&[failed], RunsOf::Task, false, Some(80), now);
        for line in narrow.lines() {
            assert!(
                unicode_width::UnicodeWidthStr::width(line) <= 80,
                "{narrow}"
            );
        }
        assert!(narrow.contains("auth_failed"), "{narrow}");
    }

    /// Without the CLI's words (a `command` agent, a run stopped for its time), sfd's note
    /// says how the run ended.
    #[test]
    fn a_failed_run_without_the_clis_words_shows_how_it_ended() {
        let mut failed = run(5);
        failed.ended_at = Some("2025-05-01T11:58:00Z".parse().unwrap());
        failed.outcome = Some("timed_out".into());
        failed.error = Some(
            "the worker hit its wall-time limit and was stopped without completing or handing \
             off; uncommitted work, if any, was saved to refs/sf/wip/k3f9xq/2 (1a2b3c4d5e).\n\
             Last log lines:\nwaiting"
                .into(),
        );
        assert_eq!(
            run_error(&failed),
            "the worker hit its wall-time limit and was stopped without completing or handing off"
        );
        failed.outcome = Some("completed".into());
        assert_eq!(run_error(&failed), "-");
    }

    #[test]
    fn token_counts_and_costs_are_short() {
        let u = |n| RunUsage {
            input_tokens: n,
            ..RunUsage::default()
        };
        assert_eq!(tokens(&u(0)), "-");
        assert_eq!(tokens(&u(999)), "999");
        assert_eq!(tokens(&u(1_000)), "1.0k");
        assert_eq!(tokens(&u(999_949)), "999.9k");
        assert_eq!(tokens(&u(999_950)), "1.0M");
        assert_eq!(dollars(0.0), "$0.00");
        assert_eq!(dollars(0.001), "<$0.01");
        assert_eq!(dollars(3.5), "$3.50");
    }
}
