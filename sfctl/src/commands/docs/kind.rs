//! The kinds of problem `sfctl docs check` reports.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What is wrong, as `kind` in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    BrokenLink,
    MissingFile,
    UnknownCommand,
    UnknownFlag,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BrokenLink => "broken link",
            Self::MissingFile => "missing file",
            Self::UnknownCommand => "unknown command",
            Self::UnknownFlag => "unknown flag",
        })
    }
}
