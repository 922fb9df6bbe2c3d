//! The tool-call ledger: one record per call an agent's CLI asked the guard about, each
//! run's counts, and an agent's Trust Card.

use super::*;

/// One tool call and the guard's decision on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// Its id in the ledger.
    pub id: i64,
    /// The run.
    pub run: RunId,
    /// Its agent.
    pub agent: String,
    /// Its task, for a worker's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// Where the record comes from: `hook` (the CLI asked before the call), `stream`
    /// (seen in the CLI's output), `proxy` (the egress proxy).
    pub source: String,
    /// The tool, in Claude Code's names.
    pub tool: String,
    /// The CLI's id of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// What it acted on, keys redacted and cut short.
    pub summary: String,
    /// `allow`, `deny`, `hold`, then `held_approved` / `held_denied` / `held_timed_out`.
    pub decision: String,
    /// The rule that decided.
    pub rule: String,
    /// Why.
    pub reason: String,
    /// The guard's time to decide, in microseconds (a held call's wait excluded).
    pub latency_us: u64,
    /// When the call was asked about.
    pub at: Timestamp,
}

/// The answer to a guard check: what the hook tells the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolAnswer {
    /// Whether the call may run.
    pub allow: bool,
    /// The decision as recorded (`allow`, `deny`, `held_approved`, …).
    pub decision: String,
    /// Why, for the model on a denial.
    pub reason: String,
    /// The ledger record.
    pub record: i64,
}

/// One run of an agent with its ledger counts (`sfctl agent runs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunLedger {
    /// The run.
    #[serde(flatten)]
    pub run: RunSummary,
    /// Tool calls asked about.
    pub tool_calls: u64,
    /// Of which held for a human.
    pub held: u64,
    /// Of which denied.
    pub denied: u64,
}

/// An agent's Trust Card: what it did over its life, what it was stopped from doing, what
/// it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustCard {
    /// The agent.
    pub agent: String,
    /// Runs, by outcome (`completed`, `failed`, …; `running` for live ones).
    pub runs: BTreeMap<String, u64>,
    /// Tool calls asked about.
    pub tool_calls: u64,
    /// Of which denied.
    pub denied: u64,
    /// Of which held for a human.
    pub held: u64,
    /// Requests the guard refused it (`request_denied`).
    pub requests_denied: u64,
    /// Connections the egress proxy refused it.
    pub egress_denied: u64,
    /// Tokens in and out over its runs.
    pub tokens: u64,
    /// What its CLIs reported spending, in USD.
    pub cost_usd: f64,
    /// The guard's median latency per call, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_median_us: Option<u64>,
}
