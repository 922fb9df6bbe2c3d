//! Staffing: seats and their charters, templates, permission manifests, dry runs and
//! skills (`sfctl seat|charter|agent template|agent dry-run|skill`).

use super::*;

/// What a seat is for, in the words a steward reviews (`sfctl charter show|set`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Charter {
    /// Why the seat exists.
    pub purpose: String,
    /// What it takes in (tasks, messages, events).
    pub inputs: String,
    /// What it produces (branches, reviews, reports).
    pub outputs: String,
    /// What needs a human's approval.
    pub approval_boundaries: String,
    /// Whom it turns to, and when.
    pub escalation: String,
}

impl Charter {
    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `sfctl seat create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSeat {
    /// Its name (an agent name's rules).
    pub name: String,
    /// Who works it.
    pub kind: SeatKind,
    /// Its human stewards (at least one).
    pub stewards: Vec<String>,
    /// Its charter.
    #[serde(default)]
    pub charter: Charter,
}

/// One seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatInfo {
    /// Its name.
    pub name: String,
    /// Who works it.
    pub kind: SeatKind,
    /// Its human stewards.
    pub stewards: Vec<String>,
    /// Its charter.
    pub charter: Charter,
    /// The agents that staff it (not decommissioned).
    pub agents: Vec<String>,
    /// Its open tasks.
    pub open_tasks: u32,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A template an agent is drafted from (`sfctl agent template list|show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateInfo {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Built in, or a file of `.sf/templates/`.
    pub source: String,
    /// The spec a draft starts from (its name empty: the convention picks one).
    pub spec: AgentSpec,
    /// The draft charter it gives the seat.
    pub charter: Charter,
    /// The task its dry run works on when none is given.
    pub sample_task: SampleTask,
}

/// The task a dry run works on when none is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SampleTask {
    /// Its title.
    pub title: String,
    /// What to do.
    pub description: String,
}

/// An agent's permission manifest: what a human signs before it may work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The agent.
    pub agent: String,
    /// `sha256:` and the hex digest of everything below, as canonical JSON.
    pub hash: String,
    /// What it covers.
    pub covers: serde_json::Value,
    /// The hash a human signed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<String>,
    /// Who signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Whether the signature matches the configuration now.
    pub current: bool,
}

/// One dry run (`sfctl agent dry-runs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRunInfo {
    /// Its id.
    pub id: i64,
    /// The agent.
    pub agent: String,
    /// Its run (transcript: `sfctl logs --run`).
    pub run: RunId,
    /// The manifest it ran under.
    pub manifest: String,
    /// The task it worked on: a given one, or its sample.
    pub task: String,
    /// How it went.
    pub status: DryRunStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its evidence, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
}

/// What a dry run leaves for its reviewer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// Where its transcript is.
    pub log_path: Option<String>,
    /// Tool calls recorded, by decision.
    pub tool_calls: u32,
    /// Tool calls denied.
    pub denied: u32,
    /// Tool calls held for a human.
    pub held: u32,
    /// `git diff --stat` of its worktree against where it started.
    pub diff_stat: String,
    /// The diff itself, cut at 64 KiB.
    pub diff: String,
    /// What it used.
    pub usage: Option<RunUsage>,
}

/// One skill: a file of instructions put into the prompts of agents that have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillInfo {
    /// Its name.
    pub name: String,
    /// `.sf/skills/NAME.md`, or `built-in`.
    pub source: String,
    /// `sha256:` and the hex digest of its text now.
    pub hash: String,
    /// The hash a human pinned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// Job roles whose agents must have it (`[skills.required]` in the policy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_by: Vec<JobRole>,
    /// Its text (`skill show` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// An agent definition found in the repository and not registered (`sfctl agent discover`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovered {
    /// Where it was found: `AGENTS.md#heading` or `.sf/agents/NAME.toml`.
    pub source: String,
    /// The spec it defines.
    pub spec: AgentSpec,
    /// Its charter, if it gives one.
    #[serde(default, skip_serializing_if = "Charter::is_empty")]
    pub charter: Charter,
}

/// A session of a director or persistent worker (`sfctl agent sessions`): turns of its CLI,
/// each resuming the CLI's own session, with the messages sent to it as input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Its id.
    pub id: i64,
    /// The agent.
    pub agent: String,
    /// The task its turns run under.
    pub task: TaskId,
    /// Its branch: `agent/NAME/session-TIMESTAMP`.
    pub branch: String,
    /// The CLI's own session id (what `--resume` takes), once its first turn reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_session: Option<String>,
    /// The CLI session it continued (`agent start --resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
    /// Active or ended.
    pub status: SessionStatus,
    /// Why it ended, or what a human should know (a stalled turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Turns taken.
    pub turns: u32,
    /// Whether a turn runs now.
    #[serde(default)]
    pub running: bool,
    /// When it started.
    pub started_at: Timestamp,
    /// When its last turn started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_turn_at: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
}
