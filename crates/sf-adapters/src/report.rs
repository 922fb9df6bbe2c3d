//! Folding signals into one run's report, and clamping usage-limit pauses.

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use sf_proto::Adapter;

use super::{Signal, TokenUsage, parser};

/// Shortest pause after a usage limit.
pub const MIN_PAUSE: Duration = Duration::minutes(1);
/// Longest pause after a usage limit; a later run finds out whether the limit has lifted.
pub const MAX_PAUSE: Duration = Duration::hours(6);
/// Pause when the message names no reset time.
pub const DEFAULT_PAUSE: Duration = Duration::minutes(15);

/// A usage limit the CLI reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLimit {
    /// The CLI's message.
    pub message: String,
    /// When the limit lifts, if the CLI said; not yet clamped (see [`clamp_reset`]).
    pub resets_at: Option<DateTime<Utc>>,
}

/// How a run ended, as the CLI reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// Whether the CLI considers the run successful.
    pub success: bool,
    /// The final message or the error (at most 8 KiB).
    pub text: String,
}

/// Everything the signals of one run add up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The CLI's session id, for resuming.
    pub session_id: Option<String>,
    /// Token totals.
    pub tokens: TokenUsage,
    /// Cost in US dollars, when the CLI reports one.
    pub cost_usd: Option<f64>,
    /// Tool calls seen.
    pub tool_calls: u64,
    /// Model steps (turns) seen.
    pub steps: u64,
    /// The usage limit hit, if any.
    pub usage_limit: Option<UsageLimit>,
    /// The CLI could not authenticate: its own words.
    pub auth_failure: Option<String>,
    /// The last outcome reported.
    pub result: Option<RunResult>,
}

impl RunReport {
    /// Adds one signal.
    pub fn apply(&mut self, signal: &Signal) {
        match signal {
            Signal::Session { id } => self.session_id = Some(id.clone()),
            Signal::Usage {
                tokens,
                cost_usd,
                total: true,
            } => {
                self.tokens = *tokens;
                if cost_usd.is_some() {
                    self.cost_usd = *cost_usd;
                }
            }
            Signal::Usage {
                tokens,
                cost_usd,
                total: false,
            } => {
                self.tokens = self.tokens.saturating_add(*tokens);
                if let Some(c) = cost_usd {
                    self.cost_usd = Some(self.cost_usd.unwrap_or(0.0) + c);
                }
            }
            Signal::ToolCall { .. } => self.tool_calls += 1,
            Signal::Step => self.steps += 1,
            Signal::UsageLimit(limit) => {
                // The first reset time seen wins: structured events come before the prose.
                let resets_at = self
                    .usage_limit
                    .as_ref()
                    .and_then(|l| l.resets_at)
                    .or(limit.resets_at);
                let message = match &self.usage_limit {
                    Some(old) if limit.message.is_empty() => old.message.clone(),
                    _ => limit.message.clone(),
                };
                self.usage_limit = Some(UsageLimit { message, resets_at });
            }
            Signal::AuthFailed { message } => {
                self.auth_failure.get_or_insert_with(|| message.clone());
            }
            Signal::Result(result) => self.result = Some(result.clone()),
        }
    }

    /// Adds several signals.
    pub fn apply_all<'a>(&mut self, signals: impl IntoIterator<Item = &'a Signal>) {
        for s in signals {
            self.apply(s);
        }
    }
}

/// Parses a whole log of `adapter`'s output into a report.
pub fn report_from_log(adapter: Adapter, log: &str, now: DateTime<FixedOffset>) -> RunReport {
    let mut parser = parser(adapter);
    let mut report = RunReport::default();
    for line in log.lines() {
        report.apply_all(&parser.feed_line_at(line, now));
    }
    report
}

/// When dispatch to an adapter may resume after a usage limit: the reported reset time kept
/// within [`MIN_PAUSE`]..=[`MAX_PAUSE`] from `now`, or [`DEFAULT_PAUSE`] from `now` if unknown.
pub fn clamp_reset(resets_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    match resets_at {
        None => now + DEFAULT_PAUSE,
        Some(at) => at.clamp(now + MIN_PAUSE, now + MAX_PAUSE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timezone(&Utc)
    }

    #[test]
    fn clamps() {
        let now = t("2026-03-10T12:00:00Z");
        assert_eq!(clamp_reset(None, now), t("2026-03-10T12:15:00Z"));
        assert_eq!(
            clamp_reset(Some(t("2026-03-10T11:00:00Z")), now),
            t("2026-03-10T12:01:00Z")
        );
        assert_eq!(
            clamp_reset(Some(t("2026-03-10T14:30:00Z")), now),
            t("2026-03-10T14:30:00Z")
        );
        assert_eq!(
            clamp_reset(Some(t("2026-03-17T00:00:00Z")), now),
            t("2026-03-10T18:00:00Z")
        );
    }

    #[test]
    fn usage_adds_and_totals_replace() {
        let mut r = RunReport::default();
        let tokens = TokenUsage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 1,
            cache_write_tokens: 2,
        };
        let delta = Signal::Usage {
            tokens,
            cost_usd: Some(0.25),
            total: false,
        };
        r.apply(&delta);
        r.apply(&delta);
        assert_eq!(r.tokens.input_tokens, 20);
        assert_eq!(r.tokens.total(), 36);
        assert_eq!(r.cost_usd, Some(0.5));
        r.apply(&Signal::Usage {
            tokens,
            cost_usd: None,
            total: true,
        });
        assert_eq!(r.tokens, tokens);
        assert_eq!(r.cost_usd, Some(0.5));
    }

    #[test]
    fn first_reset_time_wins_last_message_wins() {
        let mut r = RunReport::default();
        let at = t("2026-03-10T15:00:00Z");
        r.apply(&Signal::UsageLimit(UsageLimit {
            message: "five_hour limit".into(),
            resets_at: Some(at),
        }));
        r.apply(&Signal::UsageLimit(UsageLimit {
            message: "You've hit your limit".into(),
            resets_at: Some(t("2026-03-10T16:00:00Z")),
        }));
        assert_eq!(
            r.usage_limit,
            Some(UsageLimit {
                message: "You've hit your limit".into(),
                resets_at: Some(at)
            })
        );
    }
}
