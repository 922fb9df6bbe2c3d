//! The `command` adapter: any executable. It reads the prompt on stdin or from the file named by
//! `SF_PROMPT_FILE`; `SF_MODEL` and `SF_EFFORT` carry the agent's model and effort when set. Its
//! output is not parsed.

use chrono::{DateTime, FixedOffset};

use super::{Options, Signal, StreamParser};

pub(super) fn env(opts: &Options<'_>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(model) = opts.model {
        env.push(("SF_MODEL".to_owned(), model.to_owned()));
    }
    if let Some(effort) = opts.effort {
        env.push(("SF_EFFORT".to_owned(), effort.as_str().to_owned()));
    }
    env
}

/// Parses nothing.
pub(super) struct Parser;

impl StreamParser for Parser {
    fn feed_line_at(&mut self, _line: &str, _now: DateTime<FixedOffset>) -> Vec<Signal> {
        Vec::new()
    }
}
