//! Budgets: limits on what work may spend, per task, plan and agent (per day).

use super::*;

/// Limits; `None` is no limit on that.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BudgetLimits {
    /// Tokens in and out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// What the CLIs report spending, in US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Tool calls asked of the guard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<u64>,
    /// Model steps (turns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Wall time of the runs, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_secs: Option<u64>,
}

impl BudgetLimits {
    /// Whether it limits nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What has been spent against a budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetUse {
    /// Tokens in and out.
    pub tokens: u64,
    /// US dollars.
    pub cost_usd: f64,
    /// Tool calls.
    pub tool_calls: u64,
    /// Model steps (turns).
    pub steps: u64,
    /// Seconds of runs.
    pub wall_secs: u64,
}

/// One budget and its use (`sfctl budget show`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetInfo {
    /// `task`, `plan` or `agent` (per day).
    pub scope: BudgetScope,
    /// The task id, plan id or agent name.
    pub subject: String,
    /// The limits.
    pub limits: BudgetLimits,
    /// The use so far (today's, for an agent), the runs in flight included.
    pub used: BudgetUse,
    /// What ran out, if something did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhausted: Option<String>,
}
