//! Stewards and playbooks: steward runs, and playbooks as shown.

use super::*;

/// One firing of a steward, for `sfctl steward history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StewardRunInfo {
    /// Run id.
    pub id: RunId,
    /// The steward.
    pub steward: String,
    /// What fired it: `cron: 0 2 * * *`, `event: task_stuck`, `manual`.
    pub trigger: String,
    /// The event data or `--data` it got.
    pub data: serde_json::Value,
    /// Start.
    pub started_at: Timestamp,
    /// End, if it ended.
    pub ended_at: Option<Timestamp>,
    /// `ok`, `failed`, `skipped` (its previous run was still going), ...
    pub outcome: Option<String>,
    /// What it did, one line.
    pub result: Option<String>,
    /// Its output log.
    pub log_path: Option<String>,
}

/// A playbook variable, for `sfctl playbook show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookVar {
    /// Name (`--var NAME=VALUE`).
    pub name: String,
    /// `string`, `number`, `boolean`, or `enum: a|b|c`.
    pub kind: String,
    /// Whether it must be given.
    pub required: bool,
    /// Its default.
    pub default: Option<String>,
    /// What it is for.
    pub description: String,
}

/// A playbook step, for `sfctl playbook show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookStep {
    /// Step id.
    pub id: String,
    /// Title template.
    pub title: String,
    /// `task` or `shell`.
    pub kind: String,
    /// Steps it waits on.
    pub depends_on: Vec<String>,
    /// When it is kept.
    pub condition: Option<String>,
    /// 1-5.
    pub priority: u8,
}

/// A playbook, for `sfctl playbook list|show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybookInfo {
    /// Name.
    pub name: String,
    /// Title template.
    pub title: String,
    /// Description.
    pub description: String,
    /// `built-in` or the file it came from.
    pub source: String,
    /// Its variables.
    pub vars: Vec<PlaybookVar>,
    /// Its steps, in dependency order.
    pub steps: Vec<PlaybookStep>,
    /// Set for a workspace file that failed to load: why. Such an entry has only `name`
    /// (declared, or the file stem) and `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
