//! Messages between agents and humans.

use super::*;

/// A message between agents (and humans), for `sfctl inbox` and `sfctl message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageInfo {
    /// Id; ids only grow.
    pub id: MessageId,
    /// When it was sent.
    pub at: Timestamp,
    /// Who sent it: an agent's name, or `human:<user>`.
    pub from: String,
    /// Who it is for: an agent's name, `human`, or `task:<id>` (whoever works on that task).
    pub to: String,
    /// The address as the sender wrote it, when routing changed it (`director`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addressed: Option<String>,
    /// The task it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// One line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// The message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// When its recipient read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<Timestamp>,
    /// The task it became because nobody could receive it (no director is registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub became_task: Option<TaskId>,
    /// What it is for.
    #[serde(default)]
    pub kind: MessageType,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NewMessage {
    /// An agent's name, `director` (the director the sender reports to, or the first enabled one),
    /// `human`, or `task:<id>`; absent with `task`: whoever works on that task.
    #[serde(default)]
    pub to: Option<String>,
    /// The task it is about (id or prefix); inside a run, default: the run's task.
    #[serde(default)]
    pub task: Option<String>,
    /// One line (default: the body's first line).
    #[serde(default)]
    pub subject: Option<String>,
    /// The text.
    pub body: String,
    /// The message it answers (its sender becomes the recipient when `to` is absent).
    #[serde(default)]
    pub reply_to: Option<MessageId>,
    /// The sender's lease token (`SF_RUN`) inside a run: names the sender and is checked
    /// like a completion's, so a stale incarnation cannot speak.
    #[serde(default)]
    pub token: Option<String>,
    /// What it is for (default `generic`).
    #[serde(default)]
    pub kind: MessageType,
}
