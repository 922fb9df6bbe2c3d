//! Agents and their runs: specs, summaries, usage, and where run logs are.

use super::*;

/// Everything `sfctl agent register` can say about an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSpec {
    /// Unique name: lowercase letters, digits, `-` and `_`, at most 32 characters.
    pub name: String,
    /// Director, worker or steward.
    pub role: Role,
    /// Ephemeral (spawned per task) or persistent.
    pub mode: Mode,
    /// For stewards.
    pub focus: Option<Focus>,
    /// Standard 5-field cron expressions.
    pub triggers: Vec<String>,
    /// Event triggers, `EVENT[:CONDITION]`.
    pub on: Vec<String>,
    /// Which CLI it runs.
    pub adapter: Adapter,
    /// The executable (and arguments) to run, for `command`, or to override a CLI's path.
    pub command: Option<String>,
    /// Model name passed to the adapter.
    pub model: Option<String>,
    /// Reasoning effort.
    pub effort: Option<Effort>,
    /// Skills, lowercase, sorted, unique.
    pub skills: Vec<String>,
    /// Job title.
    pub title: Option<String>,
    /// Persona text put into its prompt.
    pub persona: Option<String>,
    /// Another agent's name.
    pub reports_to: Option<String>,
    /// The human who owns it.
    pub owner: Option<String>,
    /// Most tasks it runs at once.
    pub max_tasks: u32,
    /// Granted capabilities.
    pub capabilities: Vec<Capability>,
    /// For custom stewards: the playbook it runs.
    pub playbook: Option<String>,
    /// Wall-time limit of one run in seconds (default: the workspace's `worker_timeout`).
    pub max_runtime_secs: Option<u64>,
    /// Secret aliases (`[secrets]` in config.toml) whose values its runs get, as `$ALIAS`.
    /// Only the aliases are stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// What it may do beyond its role's defaults; changed only by a human.
    #[serde(default, skip_serializing_if = "Permissions::is_default")]
    pub permissions: Permissions,
    /// Its job on the team (default persona, prompt section and tool rules).
    pub job: JobRole,
    /// The seat it staffs, if any (`sfctl seat create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
}

/// An agent's permissions: each `None` takes its role's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Permissions {
    /// May hire agents (`sfctl agent hire`) and read agents' configurations; default: on
    /// for directors, off for others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_create_agents: Option<bool>,
}

impl Permissions {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl AgentSpec {
    /// Whether it may hire agents: its own setting, else its role's default.
    pub fn can_create_agents(&self) -> bool {
        self.permissions
            .can_create_agents
            .unwrap_or(self.role == Role::Director || self.job == JobRole::Ceo)
    }
}

/// `sfctl agent update`: the fields to change, each `None` left as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentPatch {
    /// Which CLI it runs.
    pub adapter: Option<Adapter>,
    /// The executable (and arguments); `Some("")` clears it.
    pub command: Option<String>,
    /// Model; `Some("")` clears it.
    pub model: Option<String>,
    /// Reasoning effort.
    pub effort: Option<Effort>,
    /// Skills (replaces the set).
    pub skills: Option<Vec<String>>,
    /// Job title; `Some("")` clears it.
    pub title: Option<String>,
    /// Persona; `Some("")` clears it.
    pub persona: Option<String>,
    /// Owner; `Some("")` clears it.
    pub owner: Option<String>,
    /// Most tasks at once.
    pub max_tasks: Option<u32>,
    /// Capabilities (replaces the set).
    pub capabilities: Option<Vec<Capability>>,
    /// Secret aliases (replaces the set).
    pub secrets: Option<Vec<String>>,
    /// Wall-time limit of one run in seconds.
    pub max_runtime_secs: Option<u64>,
    /// Cron triggers (replaces the set).
    pub triggers: Option<Vec<String>>,
    /// Event triggers (replaces the set).
    pub on: Option<Vec<String>>,
    /// Job role.
    pub job: Option<JobRole>,
    /// Seat; `Some("")` frees it.
    pub seat: Option<String>,
}

impl AgentPatch {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether it changes a steward's schedule (its triggers).
    pub fn changes_schedule(&self) -> bool {
        self.triggers.is_some() || self.on.is_some()
    }

    /// Applies it to `spec`.
    pub fn apply(&self, spec: &mut AgentSpec) {
        let text = |v: &Option<String>, f: &mut Option<String>| {
            if let Some(v) = v {
                *f = (!v.is_empty()).then(|| v.clone());
            }
        };
        if let Some(a) = self.adapter {
            spec.adapter = a;
        }
        text(&self.command, &mut spec.command);
        text(&self.model, &mut spec.model);
        if let Some(e) = self.effort {
            spec.effort = Some(e);
        }
        if let Some(s) = &self.skills {
            spec.skills.clone_from(s);
        }
        text(&self.title, &mut spec.title);
        text(&self.persona, &mut spec.persona);
        text(&self.owner, &mut spec.owner);
        if let Some(n) = self.max_tasks {
            spec.max_tasks = n;
        }
        if let Some(c) = &self.capabilities {
            spec.capabilities.clone_from(c);
        }
        if let Some(s) = &self.secrets {
            spec.secrets.clone_from(s);
        }
        if let Some(n) = self.max_runtime_secs {
            spec.max_runtime_secs = Some(n);
        }
        if let Some(t) = &self.triggers {
            spec.triggers.clone_from(t);
        }
        if let Some(o) = &self.on {
            spec.on.clone_from(o);
        }
        if let Some(j) = self.job {
            spec.job = j;
        }
        text(&self.seat, &mut spec.seat);
    }
}

/// `sfctl agent config`: an agent's whole configuration, secrets and anything shaped like
/// a key shown as `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// The spec, redacted.
    #[serde(flatten)]
    pub spec: AgentSpec,
    /// Whether it may work.
    pub status: AgentStatus,
    /// Whether the daemon may start it.
    pub enabled: bool,
    /// `can_create_agents` in force (its own setting or its role's default).
    pub can_create_agents: bool,
}

/// One configuration field of an adapter (`sfctl adapters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterField {
    /// The `sfctl agent register` flag (or config key).
    pub name: String,
    /// What it does for this adapter.
    pub meaning: String,
    /// Its default.
    pub default: String,
}

/// `sfctl adapters`: what each adapter is and how it is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterInfo {
    /// The adapter.
    pub adapter: Adapter,
    /// The CLI it runs.
    pub program: String,
    /// What it is.
    pub description: String,
    /// Its fields.
    pub fields: Vec<AdapterField>,
}

impl Default for AgentSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            role: Role::Worker,
            mode: Mode::Ephemeral,
            focus: None,
            triggers: Vec::new(),
            on: Vec::new(),
            adapter: Adapter::Command,
            command: None,
            model: None,
            effort: None,
            skills: Vec::new(),
            title: None,
            persona: None,
            reports_to: None,
            owner: None,
            max_tasks: 1,
            capabilities: Vec::new(),
            playbook: None,
            max_runtime_secs: None,
            secrets: Vec::new(),
            permissions: Permissions::default(),
            job: JobRole::General,
            seat: None,
        }
    }
}

fn live() -> AgentStatus {
    AgentStatus::Live
}

/// One row of `sfctl agent list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSummary {
    /// The registered spec.
    #[serde(flatten)]
    pub spec: AgentSpec,
    /// Whether the daemon may start it.
    pub enabled: bool,
    /// Whether it may work at all: `pending_approval` and `terminated` agents never run.
    #[serde(default = "live")]
    pub status: AgentStatus,
    /// Derived from its runs.
    pub state: AgentState,
    /// Runs in flight.
    pub running: u32,
    /// A merge steward: the merge requests the queue it runs has merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merges: Option<u32>,
    /// Why the daemon disabled it (its CLI cannot authenticate, its command cannot run),
    /// with the fix; `None` when enabled or disabled by a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// What it waits for when its state is `blocked`: a human (a held tool call, an
    /// approval it asked for) or a resource (its adapter paused after a usage limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// `sfctl agent show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDetail {
    /// The summary.
    #[serde(flatten)]
    pub agent: AgentSummary,
    /// Its most recent runs, newest first.
    pub runs: Vec<RunSummary>,
    /// Next fire time of each cron trigger, in the order of `triggers`.
    pub next_fires: Vec<Option<Timestamp>>,
    /// The sandbox its runs start in (`[sandbox] mode`), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Whether the permission manifest a human signed is its configuration now (`None`:
    /// never signed); an unsigned agent is not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<bool>,
}

/// One connection a sandboxed run asked sfd's egress proxy for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRecord {
    /// The run.
    pub run: RunId,
    /// Its agent.
    pub agent: String,
    /// Its task, for a worker's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// The host asked for.
    pub host: String,
    /// The port asked for.
    pub port: u16,
    /// Whether the proxy relayed it.
    pub allowed: bool,
    /// The rule that allowed it (`adapter:claude`, `capability:network`, …), or
    /// `default-deny`.
    pub rule: String,
    /// Bytes sent to the host.
    pub bytes_out: u64,
    /// Bytes received from it.
    pub bytes_in: u64,
    /// Why an allowed connection failed (the host could not be resolved or reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was asked for.
    pub started_at: Timestamp,
    /// When it ended.
    pub ended_at: Timestamp,
}

/// One worker incarnation on one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run id.
    pub id: RunId,
    /// The task it worked on.
    pub task: Option<TaskId>,
    /// The agent.
    pub agent: String,
    /// Lease epoch.
    pub epoch: i64,
    /// Start.
    pub started_at: Timestamp,
    /// End, if it ended.
    pub ended_at: Option<Timestamp>,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// How it ended: `completed`, `handed_off`, `failed`, `timed_out`, `stopped`,
    /// `usage_limited`, `spawn_failed`, ...
    pub outcome: Option<String>,
    /// Process id while it runs.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Its log file.
    #[serde(default)]
    pub log_path: Option<String>,
    /// Tokens, cost and session reported by the agent CLI.
    #[serde(default)]
    pub usage: Option<RunUsage>,
    /// Why a run that neither completed nor handed off ended: sfd's note about it (how it
    /// ended, where its work was saved, the CLI's words or the log's last lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an agent CLI reported about a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunUsage {
    /// The CLI's session id (to resume).
    pub session_id: Option<String>,
    /// The adapter whose CLI the session belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<crate::Adapter>,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache reads.
    pub cache_read_tokens: u64,
    /// Cache writes.
    pub cache_write_tokens: u64,
    /// Cost in US dollars, when the CLI reports it.
    pub cost_usd: Option<f64>,
    /// Tool calls made.
    pub tool_calls: u64,
    /// Model steps (turns) taken.
    #[serde(skip_serializing_if = "is_zero")]
    pub steps: u64,
    /// The CLI's final message.
    pub result: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A run's log file, for `sfctl logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRef {
    /// The run.
    pub run: RunId,
    /// Its task.
    pub task: Option<TaskId>,
    /// Its agent.
    pub agent: String,
    /// The file.
    pub path: String,
    /// Whether the run is still going.
    pub live: bool,
    /// A merge test's log: its merge request (`run` is then the attempt, or for a merge
    /// steward's listing the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_request: Option<MergeRequestId>,
    /// Whose stream the log holds (its agent's adapter), for `sfctl logs` to render it;
    /// `None` for a merge test's log or an agent since removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<crate::Adapter>,
}
