//! Requests, responses and the data they carry. Field names are part of the contract: the
//! `--json` output of `sfctl` prints these types as they are.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{DepId, EventId, MergeRequestId, MessageId, PlanId, RunId, TaskId};

/// A point in time, UTC, RFC 3339 on the wire.
pub type Timestamp = DateTime<Utc>;

/// The client's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Client name and version, for logs, e.g. `sfctl 0.1.0`.
    pub client: String,
    /// Who is asking, recorded in the audit log: `human:alice` or `agent:w1`.
    #[serde(default)]
    pub actor: Option<String>,
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let lower = s.trim().to_ascii_lowercase().replace('_', "-");
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().replace('_', "-") == lower)
                    .ok_or_else(|| {
                        let all: Vec<_> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        format!("unknown {} `{}` (expected one of: {})", stringify!($name), s, all.join(", "))
                    })
            }
        }
    };
}

mod agents;
mod approvals;
mod budgets;
mod error;
mod events;
mod ledger;
mod merge;
mod messages;
mod staffing;
mod stewards;
mod tasks;
mod vocab;
mod wire;

pub use agents::*;
pub use approvals::*;
pub use budgets::*;
pub use error::*;
pub use events::*;
pub use ledger::*;
pub use merge::*;
pub use messages::*;
pub use staffing::*;
pub use stewards::*;
pub use tasks::*;
pub use vocab::*;
pub use wire::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_loosely_and_print_their_wire_name() {
        assert_eq!(
            "in-progress".parse::<TaskStatus>().unwrap(),
            TaskStatus::InProgress
        );
        assert_eq!(
            "parent_child".parse::<DepKind>().unwrap(),
            DepKind::ParentChild
        );
        assert_eq!(DepKind::ParentChild.to_string(), "parent-child");
        let err = "nope".parse::<Role>().unwrap_err();
        assert!(err.contains("director, worker, steward"), "{err}");
    }

    #[test]
    fn requests_have_a_readable_wire_form() {
        let json = serde_json::to_value(Request::ShowTask { id: "k3f".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"type": "show_task", "id": "k3f"}));
        let err: Response = Response::Error(ProtoError::new(ErrorKind::NotFound, "no task `x`"));
        let json = serde_json::to_value(err).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["data"]["kind"], "not_found");
        // a filter added later: the request without one still reads, as no filter
        let old: Request =
            serde_json::from_value(serde_json::json!({"type": "list_plans"})).unwrap();
        assert_eq!(
            old,
            Request::ListPlans {
                filter: PlanFilter::default()
            }
        );
    }

    #[test]
    fn a_log_ref_from_a_daemon_without_adapters_still_reads() {
        let old = serde_json::json!({
            "run": 3, "task": null, "agent": "w1", "path": "/ws/.sf/logs/3.log", "live": false
        });
        let r: LogRef = serde_json::from_value(old).unwrap();
        assert_eq!(r.adapter, None);
        let json = serde_json::to_value(LogRef {
            adapter: Some(Adapter::Codex),
            ..r
        })
        .unwrap();
        assert_eq!(json["adapter"], "codex");
    }
}
