//! Recognising usage-limit messages and reading the reset time out of them.
//!
//! The texts these CLIs print, as documented or reported:
//! - Claude Code: `Claude AI usage limit reached|1755615600` (epoch seconds), `Claude usage limit
//!   reached. Your limit will reset at 5pm (Europe/Warsaw).`, `5-hour limit reached ∙ resets 3pm`,
//!   `You've hit your session limit · resets 9am (Europe/Berlin)`, `You've hit your limit · resets
//!   Apr 23 at 4pm (America/Recife)`, and from the API `You have reached your specified API usage
//!   limits. You will regain access on 2026-04-01 at 00:00 UTC.`
//! - Codex: `You've hit your usage limit. … Try again at 3:28 PM.`, `… or try again at Aug 8th,
//!   2026 12:30 PM.`, older `… try again in 3 days 6 hours 57 minutes.`, and the raw API error
//!   `usage_limit_reached` with `resets_in_seconds`.
//!
//! A named zone such as `(Europe/Berlin)` is not resolved: the CLI runs on the daemon's machine
//! and prints its local zone, so clock times are read in the offset of `now`. `UTC`/`GMT` are
//! honoured. The result only schedules a retry and is clamped by [`super::clamp_reset`].

use chrono::{DateTime, Datelike as _, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone as _};
use chrono::{NaiveDateTime, Utc};

use super::UsageLimit;

/// Whether `text` (an error message) says a usage limit was hit.
pub(super) fn is_usage_limit(text: &str) -> bool {
    let t = normalize(text);
    t.contains("usage_limit_reached")
        || t.contains("usage limit reached")
        || t.contains("usage limit has been reached")
        || t.contains("api usage limits")
        || (t.contains("hit your") && t.contains("limit"))
        || (t.contains("limit reached") && t.contains("reset"))
}

/// Whether `text` carries the unmistakable `usage limit reached|<epoch>` marker, which is safe to
/// look for even in text that is not known to be an error.
pub(super) fn has_epoch_marker(text: &str) -> bool {
    epoch_after_pipe(&normalize(text)).is_some()
}

/// A [`UsageLimit`] for `message`, with the reset time read from it when it names one.
pub(super) fn usage_limit(message: &str, now: DateTime<FixedOffset>) -> UsageLimit {
    UsageLimit {
        message: super::clip(message.trim()),
        resets_at: reset_time(message, now),
    }
}

/// The reset time `text` names, if any.
pub(super) fn reset_time(text: &str, now: DateTime<FixedOffset>) -> Option<DateTime<Utc>> {
    let t = normalize(text);
    if let Some(at) = epoch_after_pipe(&t) {
        return Some(at);
    }
    if let Some(secs) = number_after(&t, "resets_in_seconds") {
        return Some(now.with_timezone(&Utc) + Duration::seconds(secs));
    }
    if let Some(secs) = number_after(&t, "resets_at") {
        return DateTime::from_timestamp(secs, 0);
    }
    for anchor in [
        "try again in ",
        "resets in ",
        "reset in ",
        "available again in ",
    ] {
        if let Some(rest) = after(&t, anchor)
            && let Some(d) = parse_duration(rest)
        {
            return Some(now.with_timezone(&Utc) + d);
        }
    }
    for anchor in [
        "try again at ",
        "try again on ",
        "reset at ",
        "resets at ",
        "resets on ",
        "regain access on ",
        "resets ",
        "try again ",
    ] {
        if let Some(rest) = after(&t, anchor)
            && let Some(at) = parse_absolute(rest, now)
        {
            return Some(at);
        }
    }
    None
}

fn normalize(text: &str) -> String {
    text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'")
}

fn after<'a>(text: &'a str, anchor: &str) -> Option<&'a str> {
    text.find(anchor).map(|i| &text[i + anchor.len()..])
}

fn epoch_after_pipe(t: &str) -> Option<DateTime<Utc>> {
    let rest = after(t, "limit reached|")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: i64 = digits.parse().ok()?;
    match digits.len() {
        9 | 10 => DateTime::from_timestamp(n, 0),
        13 => DateTime::from_timestamp_millis(n),
        _ => None,
    }
}

/// The first integer after `key` (skipping quotes, colons, `=` and spaces), as in
/// `"resets_in_seconds": 3600`.
fn number_after(t: &str, key: &str) -> Option<i64> {
    let rest = after(t, key)?.trim_start_matches(['"', ':', '=', ' ']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn tokens(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| ",.;!?()[]\"'".contains(c)))
        .filter(|w| !w.is_empty())
        .take(10)
        .collect()
}

/// `3 days 6 hours 57 minutes`, `2h 5m`, `45 minutes`, `90 seconds`.
fn parse_duration(text: &str) -> Option<Duration> {
    let toks = tokens(text);
    let mut total = Duration::zero();
    let mut found = false;
    let mut i = 0;
    while i < toks.len() {
        let tok = toks[i];
        if tok == "and" {
            i += 1;
            continue;
        }
        let split = tok.find(|c: char| !c.is_ascii_digit()).unwrap_or(tok.len());
        let Ok(n) = tok[..split].parse::<i64>() else {
            break;
        };
        let unit = if split < tok.len() {
            &tok[split..]
        } else if let Some(next) = toks.get(i + 1) {
            i += 1;
            next
        } else {
            break;
        };
        let secs = match unit {
            "d" | "day" | "days" => 86_400,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            _ => break,
        };
        total += Duration::seconds(n.saturating_mul(secs));
        found = true;
        i += 1;
    }
    found.then_some(total)
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month(tok: &str) -> Option<u32> {
    if tok.len() < 3 || !tok.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let found = MONTHS
        .iter()
        .position(|m| *m == tok || (tok.len() <= 4 && m.starts_with(tok)))?;
    u32::try_from(found + 1).ok()
}

fn day(tok: &str) -> Option<u32> {
    let digits = tok.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &tok[digits.len()..];
    if !matches!(suffix, "" | "st" | "nd" | "rd" | "th") {
        return None;
    }
    let d: u32 = digits.parse().ok()?;
    (1..=31).contains(&d).then_some(d)
}

fn year(tok: &str) -> Option<i32> {
    (tok.len() == 4).then(|| tok.parse().ok()).flatten()
}

fn iso_date(tok: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(tok, "%Y-%m-%d").ok()
}

/// `3pm`, `3:28pm`, `3:28 pm`, `12:30 PM`, `15:00`. Returns the time and how many tokens it used.
fn time(tok: &str, next: Option<&str>) -> Option<(NaiveTime, usize)> {
    let (clock, meridiem, used) = if let Some(c) = tok.strip_suffix("am") {
        (c, Some(false), 1)
    } else if let Some(c) = tok.strip_suffix("pm") {
        (c, Some(true), 1)
    } else {
        match next {
            Some("am" | "a.m") => (tok, Some(false), 2),
            Some("pm" | "p.m") => (tok, Some(true), 2),
            _ => (tok, None, 1),
        }
    };
    let (h, m) = match clock.split_once(':') {
        Some((h, m)) => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        None if meridiem.is_some() => (clock.parse::<u32>().ok()?, 0),
        None => return None,
    };
    let h = match meridiem {
        Some(pm) => {
            if !(1..=12).contains(&h) {
                return None;
            }
            (h % 12) + if pm { 12 } else { 0 }
        }
        None => h,
    };
    Some((NaiveTime::from_hms_opt(h, m, 0)?, used))
}

/// A date and/or clock time: `3pm`, `9am (europe/berlin)`, `aug 18`, `apr 23 at 4pm`,
/// `aug 8th, 2026 12:30 pm`, `2026-04-01 at 00:00 utc`. Needs a date or a time.
fn parse_absolute(text: &str, now: DateTime<FixedOffset>) -> Option<DateTime<Utc>> {
    let toks = tokens(text);
    let mut i = 0;
    let skip = |i: &mut usize| {
        while matches!(toks.get(*i), Some(&("at" | "on" | "the"))) {
            *i += 1;
        }
    };
    skip(&mut i);
    let mut date: Option<NaiveDate> = None;
    let mut month_day: Option<(u32, u32)> = None;
    let mut explicit_year: Option<i32> = None;
    if let Some(d) = toks.get(i).and_then(|t| iso_date(t)) {
        date = Some(d);
        i += 1;
    } else if let Some(m) = toks.get(i).and_then(|t| month(t))
        && let Some(d) = toks.get(i + 1).and_then(|t| day(t))
    {
        month_day = Some((m, d));
        i += 2;
        if let Some(y) = toks.get(i).and_then(|t| year(t)) {
            explicit_year = Some(y);
            i += 1;
        }
    }
    skip(&mut i);
    let mut clock = None;
    if let Some(tok) = toks.get(i)
        && let Some((t, used)) = time(tok, toks.get(i + 1).copied())
    {
        clock = Some(t);
        i += used;
    }
    if date.is_none() && month_day.is_none() && clock.is_none() {
        return None;
    }
    let utc = matches!(toks.get(i), Some(&("utc" | "gmt" | "z")));
    let offset = if utc {
        FixedOffset::east_opt(0)?
    } else {
        *now.offset()
    };
    let today = now.with_timezone(&offset).date_naive();
    let time_of_day = clock.unwrap_or(NaiveTime::MIN);
    let at = |d: NaiveDate| -> Option<DateTime<Utc>> {
        let local = NaiveDateTime::new(d, time_of_day);
        Some(
            offset
                .from_local_datetime(&local)
                .single()?
                .with_timezone(&Utc),
        )
    };
    let now_utc = now.with_timezone(&Utc);
    if let Some(d) = date {
        return at(d);
    }
    if let Some((m, d)) = month_day {
        let first = at(NaiveDate::from_ymd_opt(
            explicit_year.unwrap_or(today.year()),
            m,
            d,
        )?)?;
        if explicit_year.is_none() && first < now_utc - Duration::days(1) {
            return at(NaiveDate::from_ymd_opt(today.year() + 1, m, d)?);
        }
        return Some(first);
    }
    let first = at(today)?;
    if first <= now_utc {
        return at(today.succ_opt()?);
    }
    Some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-10 14:00 at UTC+01:00 (13:00 UTC).
    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-03-10T14:00:00+01:00").unwrap_or_else(|e| panic!("{e}"))
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    #[test]
    fn recognises_limit_messages() {
        for text in [
            "Claude AI usage limit reached|1755615600",
            "Claude usage limit reached. Your limit will reset at 5pm (Europe/Warsaw).",
            "5-hour limit reached ∙ resets 3pm",
            "You've hit your session limit · resets 9am (Europe/Berlin)",
            "You\u{2019}ve hit your limit · resets Apr 23 at 4pm (America/Recife)",
            "You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro) or try again at 3:28 PM.",
            "You have reached your specified API usage limits. You will regain access on 2026-04-01 at 00:00 UTC.",
            r#"{"error":{"type":"usage_limit_reached","resets_in_seconds":120}}"#,
            "API Error: Request rejected (429) · The usage limit has been reached",
        ] {
            assert!(is_usage_limit(text), "{text}");
        }
        for text in [
            "Implemented the parser",
            "error: file not found",
            "stream disconnected before completion: rate limit of 1000 tokens exceeded, retrying",
        ] {
            assert!(!is_usage_limit(text), "{text}");
        }
    }

    #[test]
    fn epoch_marker() {
        assert!(has_epoch_marker("Claude AI usage limit reached|1755615600"));
        assert!(!has_epoch_marker("the usage limit reached text"));
        assert_eq!(
            reset_time("Claude AI usage limit reached|1755615600", now()),
            DateTime::from_timestamp(1_755_615_600, 0)
        );
        assert_eq!(
            reset_time("Claude AI usage limit reached|1755615600000", now()),
            DateTime::from_timestamp(1_755_615_600, 0)
        );
    }

    #[test]
    fn relative_times() {
        let n = now().with_timezone(&Utc);
        let cases = [
            (
                "or try again in 3 days 6 hours 57 minutes.",
                3 * 86_400 + 6 * 3_600 + 57 * 60,
            ),
            ("Please try again in 2 hours.", 7_200),
            ("try again in 2h 5m", 7_500),
            ("resets in 45 minutes", 2_700),
            (
                r#"{"type":"usage_limit_reached","resets_in_seconds": 3600}"#,
                3_600,
            ),
        ];
        for (text, secs) in cases {
            assert_eq!(
                reset_time(text, now()),
                Some(n + Duration::seconds(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn clock_times_are_local_and_in_the_future() {
        let cases = [
            ("resets 3pm", "2026-03-10T15:00:00+01:00"),
            (
                "5-hour limit reached ∙ resets 3:30pm",
                "2026-03-10T15:30:00+01:00",
            ),
            (
                "You've hit your session limit · resets 9am (Europe/Berlin)",
                "2026-03-11T09:00:00+01:00",
            ),
            (
                "Your limit will reset at 5pm (Europe/Warsaw).",
                "2026-03-10T17:00:00+01:00",
            ),
            ("… or try again at 3:28 PM.", "2026-03-10T15:28:00+01:00"),
            ("Try again at 12:30 AM.", "2026-03-11T00:30:00+01:00"),
            ("try again at 2:00 PM.", "2026-03-11T14:00:00+01:00"),
            ("resets 14:30", "2026-03-10T14:30:00+01:00"),
        ];
        for (text, want) in cases {
            assert_eq!(reset_time(text, now()), Some(utc(want)), "{text}");
        }
    }

    #[test]
    fn dates() {
        let cases = [
            (
                "You've hit your limit · resets Apr 23 at 4pm (America/Recife)",
                "2026-04-23T16:00:00+01:00",
            ),
            (
                "or try again at Aug 8th, 2026 12:30 PM.",
                "2026-08-08T12:30:00+01:00",
            ),
            (
                "You've hit your usage limit. Try again Aug 18.",
                "2026-08-18T00:00:00+01:00",
            ),
            ("resets Jan 2 at 9am", "2027-01-02T09:00:00+01:00"),
            (
                "You will regain access on 2026-04-01 at 00:00 UTC.",
                "2026-04-01T00:00:00Z",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(reset_time(text, now()), Some(utc(want)), "{text}");
        }
    }

    #[test]
    fn no_time_named() {
        for text in [
            "You've hit your usage limit. Try again later.",
            "Claude AI usage limit reached",
            "resets soon",
            "try again in a bit",
            "resets 13pm",
            "",
        ] {
            assert_eq!(reset_time(text, now()), None, "{text}");
        }
    }
}
