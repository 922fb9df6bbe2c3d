//! The script a test gives the server: the turns it plays, in order.

use serde::{Deserialize, Serialize};

/// One model turn (see the server's documentation for each).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Turn {
    /// Call the CLI's shell tool with this command.
    Bash { bash: String },
    /// Call the tool named `call` with these arguments (as the CLI names and shapes them).
    Call {
        call: String,
        #[serde(default)]
        arguments: serde_json::Value,
    },
    /// A final answer.
    Text { text: String },
    /// An HTTP error.
    Status {
        status: u16,
        #[serde(default)]
        message: Option<String>,
        /// For a 429: when the limit resets, in seconds from now.
        #[serde(default)]
        reset_secs: Option<u64>,
        /// Headers to send besides (or instead of) the ones the server adds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        headers: Option<std::collections::BTreeMap<String, String>>,
    },
    /// Drop the connection mid-stream.
    Cut { cut: bool },
    /// Never answer.
    Hang { hang: bool },
}

/// The turns, in order.
pub struct Script {
    pub turns: Vec<Turn>,
}

impl Script {
    pub fn load(path: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let turns: Vec<Turn> =
            serde_json::from_str(&text).map_err(|e| format!("{path}: not a script: {e}"))?;
        if turns.is_empty() {
            return Err(format!("{path}: the script has no turns").into());
        }
        Ok(Self { turns })
    }
}
