//! How a run of an agent ended, told from its process and from what its CLI said: the one
//! vocabulary sf uses for it (the run's outcome, the note on its task, whether the task is
//! charged an attempt, what happens to the agent and its adapter).

use sf_adapters::RunReport;

use crate::launcher::EndReason;

/// How a run of an agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunClass {
    /// It completed its task (`sfctl task complete`).
    Success,
    /// It handed its task off (`sfctl task handoff`).
    Handoff,
    /// Its CLI could not authenticate. The agent's fault, not the task's: the task is not
    /// charged, the agent is disabled with the reason and the fix.
    Authentication,
    /// Its CLI hit its plan's usage limit: the task is not charged, dispatch to the adapter
    /// pauses until the reset (kept across restarts).
    UsageLimit,
    /// Its output showed no progress for `stall_timeout`: stopped, its work saved, charged.
    NoProgress,
    /// It exited (or was gone after a restart) without completing or handing off: charged.
    Crash,
    /// It ran past its wall-time limit: stopped, its work saved, charged.
    Timeout,
    /// A human or the daemon stopped it: not charged.
    Stopped,
}

impl RunClass {
    /// A run that ended without completing or handing off its task. What the CLI said
    /// comes first (a CLI that cannot authenticate may also retry until it stalls), except
    /// for a stop, which is always a stop.
    pub fn of_unfinished(end: EndReason, report: &RunReport) -> Self {
        match end {
            EndReason::Stopped => Self::Stopped,
            _ if report.usage_limit.is_some() => Self::UsageLimit,
            _ if report.auth_failure.is_some() => Self::Authentication,
            EndReason::Stalled => Self::NoProgress,
            EndReason::TimedOut => Self::Timeout,
            EndReason::Exited => Self::Crash,
        }
    }

    /// Its word in a run's `outcome` (`sfctl agent show`, `task show`, `--json`).
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Success => "completed",
            Self::Handoff => "handed_off",
            Self::Authentication => "auth_failed",
            Self::UsageLimit => "usage_limited",
            Self::NoProgress => "stalled",
            Self::Crash => "failed",
            Self::Timeout => "timed_out",
            Self::Stopped => "stopped",
        }
    }

    /// Whether the task is charged one of its attempts.
    pub fn charged(self) -> bool {
        matches!(self, Self::NoProgress | Self::Crash | Self::Timeout)
    }
}

/// What the CLI itself said about the end of its run, in full (up to the 8 KiB the parsers
/// keep): its authentication error, its usage-limit message, or its failed result.
pub fn cli_message(report: &RunReport) -> Option<&str> {
    report
        .auth_failure
        .as_deref()
        .or(report.usage_limit.as_ref().map(|l| l.message.as_str()))
        .or(report
            .result
            .as_ref()
            .filter(|r| !r.success)
            .map(|r| r.text.as_str()))
        .filter(|m| !m.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use sf_adapters::{RunResult, UsageLimit};

    use super::*;

    #[test]
    fn the_clis_words_come_before_how_the_process_ended() {
        let auth = RunReport {
            auth_failure: Some("Not logged in · Please run /login".into()),
            ..RunReport::default()
        };
        let limited = RunReport {
            usage_limit: Some(UsageLimit {
                message: "You've hit your usage limit".into(),
                resets_at: None,
            }),
            ..RunReport::default()
        };
        let quiet = RunReport::default();
        use EndReason as E;
        use RunClass as C;
        for (end, report, class) in [
            (E::Exited, &auth, C::Authentication),
            (E::Stalled, &auth, C::Authentication),
            (E::Exited, &limited, C::UsageLimit),
            (E::Stopped, &auth, C::Stopped),
            (E::Stalled, &quiet, C::NoProgress),
            (E::TimedOut, &quiet, C::Timeout),
            (E::Exited, &quiet, C::Crash),
        ] {
            assert_eq!(RunClass::of_unfinished(end, report), class, "{end:?}");
        }
        assert!(!C::Authentication.charged() && !C::UsageLimit.charged());
        assert!(C::NoProgress.charged() && C::Crash.charged());
    }

    #[test]
    fn the_clis_message_is_its_error_in_full() {
        let long = format!("API Error: {}", "x".repeat(1200));
        let report = RunReport {
            result: Some(RunResult {
                success: false,
                text: long.clone(),
            }),
            ..RunReport::default()
        };
        assert_eq!(cli_message(&report), Some(long.as_str()));
        let ok = RunReport {
            result: Some(RunResult {
                success: true,
                text: "done".into(),
            }),
            ..RunReport::default()
        };
        assert_eq!(cli_message(&ok), None);
    }
}
