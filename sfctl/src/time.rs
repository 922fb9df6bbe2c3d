//! Times on input (`--until`, `--scheduled-for`) and on output (relative and short UTC).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use sf_proto::Timestamp;

use crate::error::CliError;

/// What `parse_time` accepts, for error messages and `--help`.
pub const TIME_FORMS: &str = "an RFC 3339 time (2025-05-01T14:00:00Z), a UTC date (2025-05-01), \
                              a UTC date and time (2025-05-01 14:00) or a duration from now \
                              (+2h, 30m, 3d)";

/// Parses a user-given time relative to `now`. `flag` names the option in the error.
pub fn parse_time(flag: &str, input: &str, now: Timestamp) -> Result<Timestamp, CliError> {
    parse_time_inner(input.trim(), now).ok_or_else(|| {
        CliError::user(format!("invalid value `{input}` for {flag}"))
            .with_hint(format!("expected {TIME_FORMS}"))
    })
}

fn parse_time_inner(s: &str, now: Timestamp) -> Option<Timestamp> {
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), fmt) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    let rel = s.strip_prefix('+').unwrap_or(s);
    if !rel.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let dur = humantime::parse_duration(rel).ok()?;
    now.checked_add_signed(TimeDelta::from_std(dur).ok()?)
}

/// `2025-05-01 14:00:07Z`: short, unambiguous, UTC.
pub fn short(ts: Timestamp) -> String {
    ts.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// `3m ago`, `in 2h`, `just now`.
pub fn relative(ts: Timestamp, now: Timestamp) -> String {
    let secs = (now - ts).num_seconds();
    let (future, n) = (secs < 0, secs.unsigned_abs());
    if n < 5 {
        return if future { "in a moment" } else { "just now" }.to_owned();
    }
    let amount = match n {
        0..60 => format!("{n}s"),
        60..3600 => format!("{}m", n / 60),
        3600..86_400 => format!("{}h", n / 3600),
        86_400..3_024_000 => format!("{}d", n / 86_400),
        _ => return ts.format("%Y-%m-%d").to_string(),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// `2025-05-01 14:00:07Z (3m ago)`.
pub fn both(ts: Timestamp, now: Timestamp) -> String {
    format!("{} ({})", short(ts), relative(ts, now))
}

/// `text` with every RFC 3339 time in it (as the daemon writes them into reasons, e.g.
/// `scheduled for 2026-11-21T20:39:45.358+00:00`) shown as [`both`].
pub fn humanize(text: &str, now: Timestamp) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let start = word
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(word.len());
        let end = word
            .rfind(|c: char| c.is_ascii_digit() || c == 'Z')
            .map_or(start, |e| e + 1)
            .max(start);
        match DateTime::parse_from_rfc3339(&word[start..end]) {
            Ok(t) => {
                out.push_str(&word[..start]);
                out.push_str(&both(t.with_timezone(&Utc), now));
                out.push_str(&word[end..]);
            }
            Err(_) => out.push_str(word),
        }
    }
    out
}

/// A reason the daemon gave, for a table: `retry after failure at <time>` reads `retry after
/// failure, in 20s`; any other time in it is shown as [`both`].
pub fn reason(text: &str, now: Timestamp) -> String {
    if let Some(at) = text.strip_prefix("retry after failure at ")
        && let Ok(t) = DateTime::parse_from_rfc3339(at.trim())
    {
        return format!(
            "retry after failure, {}",
            relative(t.with_timezone(&Utc), now)
        );
    }
    humanize(text, now)
}

/// `1h 2m 3s` for a number of seconds.
pub fn duration_secs(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2025-05-01T12:00:00Z".parse().unwrap()
    }

    fn p(s: &str) -> Option<String> {
        parse_time_inner(s, now()).map(|t| t.to_rfc3339())
    }

    #[test]
    fn accepts_every_documented_form() {
        assert_eq!(
            p("2025-06-01T10:00:00+02:00").unwrap(),
            "2025-06-01T08:00:00+00:00"
        );
        assert_eq!(p("2025-06-01").unwrap(), "2025-06-01T00:00:00+00:00");
        assert_eq!(p("2025-06-01 10:30").unwrap(), "2025-06-01T10:30:00+00:00");
        assert_eq!(p("2025-06-01T10:30").unwrap(), "2025-06-01T10:30:00+00:00");
        assert_eq!(p("+2h").unwrap(), "2025-05-01T14:00:00+00:00");
        assert_eq!(p("30m").unwrap(), "2025-05-01T12:30:00+00:00");
        assert_eq!(p("3d").unwrap(), "2025-05-04T12:00:00+00:00");
        assert_eq!(p("1h 30m").unwrap(), "2025-05-01T13:30:00+00:00");
    }

    #[test]
    fn rejects_garbage_with_a_message_naming_the_flag() {
        for bad in ["", "tomorrow", "2025-13-01", "+", "-2h", "12"] {
            assert_eq!(p(bad), None, "{bad}");
        }
        let err = parse_time("--until", "soon", now()).unwrap_err();
        assert_eq!(err.message, "invalid value `soon` for --until");
        assert!(err.hints[0].contains("+2h"), "{:?}", err.hints);
    }

    #[test]
    fn times_in_reasons_are_shown_like_every_other_time() {
        let n = now();
        assert_eq!(
            humanize("scheduled for 2025-05-01T14:00:07.358+00:00", n),
            "scheduled for 2025-05-01 14:00:07Z (in 2h)"
        );
        assert_eq!(
            humanize(
                "gate #3: timer until 2025-05-01T11:00:00Z; blocked by k3f9xq (open)",
                n
            ),
            "gate #3: timer until 2025-05-01 11:00:00Z (1h ago); blocked by k3f9xq (open)"
        );
        assert_eq!(
            humanize("(until 2025-05-01T14:00:00+02:00)", n),
            "(until 2025-05-01 12:00:00Z (just now))"
        );
        for plain in [
            "blocked by k3f9xq (open)",
            "gate #12: approval 1/2",
            "",
            "  two  spaces ",
        ] {
            assert_eq!(humanize(plain, n), plain);
        }
    }

    #[test]
    fn relative_times_read_naturally() {
        let n = now();
        assert_eq!(relative(n, n), "just now");
        assert_eq!(relative(n - TimeDelta::minutes(3), n), "3m ago");
        assert_eq!(relative(n + TimeDelta::hours(2), n), "in 2h");
        assert_eq!(relative(n - TimeDelta::days(100), n), "2025-01-21");
        assert_eq!(duration_secs(3723), "1h 2m 3s");
        assert_eq!(duration_secs(0), "0s");
    }
}
