//! Approvals: one mechanism for every decision that waits for a human (a hire, a held
//! merge request, an approval gate).

use super::*;

/// One approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalInfo {
    /// Its id.
    pub id: i64,
    /// What it decides.
    pub kind: ApprovalKind,
    /// What it is about: `agent:NAME`, `mr:N`, `gate:N`.
    pub subject: String,
    /// Where it is.
    pub status: ApprovalStatus,
    /// Who asked (`agent:NAME`, `human:NAME`, `daemon`).
    pub requested_by: String,
    /// What is asked, by kind: a hire's `agent`, `requested_by` and the requested
    /// configuration (`spec`).
    pub payload: serde_json::Value,
    /// Who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Timestamp>,
    /// The decider's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_note: Option<String>,
    /// When it was asked for.
    pub created_at: Timestamp,
    /// Its last change.
    pub updated_at: Timestamp,
}

/// A comment or a step in an approval's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalComment {
    /// Who.
    pub author: String,
    /// `comment`, `requested`, `revision_requested`, `resubmitted`, `approved`, `rejected`,
    /// `cancelled`.
    pub kind: String,
    /// The text (a note, or what changed).
    pub body: String,
    /// When.
    pub at: Timestamp,
}

/// `sfctl approval show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalDetail {
    /// The approval.
    #[serde(flatten)]
    pub approval: ApprovalInfo,
    /// Comments and history, oldest first.
    pub comments: Vec<ApprovalComment>,
}
