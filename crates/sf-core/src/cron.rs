//! Standard 5-field cron expressions (`min hour day-of-month month day-of-week`), parsed with
//! the `cron` crate after conversion to its 6-field form. Day of week accepts `0`–`7` (both `0`
//! and `7` are Sunday) and names. When both day-of-month and day-of-week are restricted (do
//! not start with `*`) a time matches if *either* does, as in standard cron.

use std::str::FromStr;

use chrono::{DateTime, Utc};
pub use chrono_tz::Tz;

/// A malformed expression, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression `{expr}`: {reason}")]
pub struct CronError {
    /// The expression as given.
    pub expr: String,
    /// What was wrong.
    pub reason: String,
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    /// One schedule, or two whose union is the schedule (day-of-month OR day-of-week).
    parts: Vec<cron::Schedule>,
}

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl CronSchedule {
    /// Parses a standard 5-field expression.
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let err = |reason: String| CronError {
            expr: expr.to_owned(),
            reason,
        };
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        }
        let [min, hour, dom, month, dow] = [fields[0], fields[1], fields[2], fields[3], fields[4]];
        let days = expand_dow(dow).map_err(|r| err(format!("day-of-week `{dow}`: {r}")))?;
        let dow_conv = if dow.starts_with('*') && days.len() == 7 {
            "*".to_owned()
        } else {
            days.iter().map(|&d| DAYS[d]).collect::<Vec<_>>().join(",")
        };
        let build = |dom: &str, dow: &str| {
            cron::Schedule::from_str(&format!("0 {min} {hour} {dom} {month} {dow}"))
                .map_err(|e| err(e.to_string()))
        };
        let both_restricted = !dom.starts_with('*') && !dow.starts_with('*');
        let parts = if both_restricted {
            vec![build(dom, "*")?, build("*", &dow_conv)?]
        } else {
            vec![build(dom, &dow_conv)?]
        };
        // An expression that never fires (e.g. `0 0 31 2 *`) is almost surely a mistake.
        let probe = DateTime::<Utc>::from_timestamp(0, 0).expect("epoch");
        if parts.iter().all(|p| p.after(&probe).next().is_none()) {
            return Err(err("it never fires".to_owned()));
        }
        Ok(Self {
            expr: expr.to_owned(),
            parts,
        })
    }

    /// The expression as given.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The first fire time strictly after `after`.
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.parts
            .iter()
            .filter_map(|p| p.after(&after).next())
            .min()
    }

    /// The first fire time strictly after `after`, reading the expression's hours and days
    /// in the time zone `tz` (so `0 9 * * *` is 9:00 there, across daylight-saving changes).
    pub fn next_fire_in(&self, tz: chrono_tz::Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        self.parts
            .iter()
            .filter_map(|p| p.after(&local).next())
            .map(|d| d.with_timezone(&Utc))
            .min()
    }
}

fn day_number(s: &str) -> Result<usize, String> {
    if let Some(i) = DAYS.iter().position(|d| d.eq_ignore_ascii_case(s)) {
        return Ok(i);
    }
    match s.parse::<usize>() {
        Ok(n) if n <= 7 => Ok(n % 7),
        _ => Err(format!("`{s}` is not a day (0-7 or SUN-SAT)")),
    }
}

/// Expands a day-of-week field into a sorted set of days, 0 = Sunday.
fn expand_dow(field: &str) -> Result<Vec<usize>, String> {
    let mut set = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: usize = s
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or(format!("bad step `{s}`"))?;
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = day_number(a)?;
            let hi = if b == "7" { 7 } else { day_number(b)? };
            if hi < lo {
                return Err(format!("range `{range}` runs backwards"));
            }
            (lo, hi)
        } else {
            let d = day_number(range)?;
            (d, if step > 1 { 6 } else { d })
        };
        for d in (lo..=hi).step_by(step) {
            set[d % 7] = true;
        }
    }
    Ok((0..7).filter(|&d| set[d]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, after: &str) -> String {
        CronSchedule::parse(expr)
            .unwrap()
            .next_fire(at(after))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn common_schedules() {
        assert_eq!(
            next("0 2 * * *", "2026-03-01T02:00:00Z"),
            "2026-03-02T02:00:00+00:00"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-03-01T10:07:00Z"),
            "2026-03-01T10:15:00+00:00"
        );
        // 2026-03-02 is a Monday
        assert_eq!(
            next("30 10 * * 1", "2026-03-01T00:00:00Z"),
            "2026-03-02T10:30:00+00:00"
        );
        assert_eq!(
            next("0 9 * * 1-5", "2026-03-06T10:00:00Z"),
            "2026-03-09T09:00:00+00:00"
        );
        assert_eq!(
            next("0 0 1,15 * *", "2026-03-02T00:00:00Z"),
            "2026-03-15T00:00:00+00:00"
        );
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        // 2026-03-08 is a Sunday
        assert_eq!(
            next("0 12 * * 0", "2026-03-02T00:00:00Z"),
            "2026-03-08T12:00:00+00:00"
        );
        assert_eq!(
            next("0 12 * * 7", "2026-03-02T00:00:00Z"),
            "2026-03-08T12:00:00+00:00"
        );
        assert_eq!(
            next("0 12 * * 5-7", "2026-03-07T13:00:00Z"),
            "2026-03-08T12:00:00+00:00"
        );
        assert_eq!(
            next("0 12 * * sun", "2026-03-02T00:00:00Z"),
            "2026-03-08T12:00:00+00:00"
        );
    }

    #[test]
    fn month_ends_and_leap_days() {
        assert_eq!(
            next("0 0 31 * *", "2026-04-01T00:00:00Z"),
            "2026-05-31T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
        assert_eq!(
            next("59 23 28-31 2 *", "2028-02-29T00:00:00Z"),
            "2028-02-29T23:59:00+00:00"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        // the 13th, or any Friday: 2026-03-06 is a Friday, before the 13th
        assert_eq!(
            next("0 0 13 * 5", "2026-03-01T00:00:00Z"),
            "2026-03-06T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 13 * 5", "2026-03-10T00:00:00Z"),
            "2026-03-13T00:00:00+00:00"
        );
        // with a star day-of-month only the weekday counts
        assert_eq!(
            next("0 0 * * 5", "2026-03-10T00:00:00Z"),
            "2026-03-13T00:00:00+00:00"
        );
    }

    #[test]
    fn a_time_zone_moves_the_hours_and_follows_daylight_saving() {
        let s = CronSchedule::parse("0 9 * * *").unwrap();
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        // winter: 9:00 in Berlin is 08:00 UTC; summer (after 2026-03-29): 07:00 UTC
        let winter = s.next_fire_in(berlin, at("2026-03-01T00:00:00Z")).unwrap();
        assert_eq!(winter.to_rfc3339(), "2026-03-01T08:00:00+00:00");
        let summer = s.next_fire_in(berlin, at("2026-03-30T00:00:00Z")).unwrap();
        assert_eq!(summer.to_rfc3339(), "2026-03-30T07:00:00+00:00");
    }

    #[test]
    fn malformed_expressions_say_what_is_wrong() {
        for (expr, needle) in [
            ("* * * *", "expected 5 fields"),
            ("0 0 * * * *", "expected 5 fields"),
            ("61 * * * *", "invalid cron expression"),
            ("0 0 * * 9", "not a day"),
            ("0 0 * * 5-1", "runs backwards"),
            ("0 0 31 2 *", "never fires"),
            ("every day", "expected 5 fields"),
        ] {
            let err = CronSchedule::parse(expr).unwrap_err().to_string();
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }
}
