//! Standard 5-field cron expressions (`min hour day-of-month month day-of-week`), checked
//! here field by field and then handed, expanded, to the `cron` crate in its 6-field form
//! (which users never see). Day of week accepts `0`–`7` (both `0`
//! and `7` are Sunday) and names. When both day-of-month and day-of-week are restricted (do
//! not start with `*`) a time matches if *either* does, as in standard cron.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
pub use chrono_tz::Tz;

/// A malformed expression, with what was wrong and, when one field is to blame, where.
///
/// Its `Display` is the message, then (for a bad field) the expression with a caret under
/// the field:
///
/// ```text
/// invalid cron expression `61 * * * *`: `61` is out of range in the minute field (valid: 0-59)
///   61 * * * *
///   ^^
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// The expression as given.
    pub expr: String,
    /// What was wrong.
    pub reason: String,
    /// The bad field, as `(column, width)` in characters of `expr`.
    pub span: Option<(usize, usize)>,
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid cron expression `{}`: {}",
            self.expr, self.reason
        )?;
        if let Some((column, width)) = self.span {
            write!(
                f,
                "\n  {}\n  {}{}",
                self.expr,
                " ".repeat(column),
                "^".repeat(width.max(1))
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for CronError {}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    /// One schedule, or two whose union is the schedule (day-of-month OR day-of-week).
    parts: Vec<cron::Schedule>,
}

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// What one of the five fields accepts.
struct Field {
    label: &'static str,
    /// Smallest and largest value written.
    min: u32,
    max: u32,
    /// Largest value `*` and `a/n` run to (`6` for day of week, where `7` is also Sunday).
    star_max: u32,
    /// Names for `min`, `min + 1`, …
    names: &'static [&'static str],
    /// What a bad name or number is called ("`9` is not a day").
    not_a: &'static str,
    valid: &'static str,
}

const FIELDS: [Field; 5] = [
    Field {
        label: "minute",
        min: 0,
        max: 59,
        star_max: 59,
        names: &[],
        not_a: "",
        valid: "0-59",
    },
    Field {
        label: "hour",
        min: 0,
        max: 23,
        star_max: 23,
        names: &[],
        not_a: "",
        valid: "0-23",
    },
    Field {
        label: "day-of-month",
        min: 1,
        max: 31,
        star_max: 31,
        names: &[],
        not_a: "",
        valid: "1-31",
    },
    Field {
        label: "month",
        min: 1,
        max: 12,
        star_max: 12,
        names: &MONTHS,
        not_a: "month",
        valid: "1-12 or JAN-DEC",
    },
    Field {
        label: "day-of-week",
        min: 0,
        max: 7,
        star_max: 6,
        names: &DAYS,
        not_a: "day",
        valid: "0-7 or SUN-SAT; 0 and 7 are Sunday",
    },
];

impl CronSchedule {
    /// Parses a standard 5-field expression.
    ///
    /// Every field is checked here, so a mistake is reported in 5-field terms; the `cron`
    /// crate only ever sees the expanded values.
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let err = |reason: String, span: Option<(usize, usize)>| CronError {
            expr: expr.to_owned(),
            reason,
            span,
        };
        let fields = split_fields(expr);
        if fields.len() != 5 {
            return Err(err(
                format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                    fields.len()
                ),
                None,
            ));
        }
        let mut sets = Vec::with_capacity(5);
        for (spec, &(column, text)) in FIELDS.iter().zip(&fields) {
            let set = expand(spec, text).map_err(|problem| {
                err(
                    format!(
                        "{problem} in the {} field (valid: {})",
                        spec.label, spec.valid
                    ),
                    Some((column, text.chars().count())),
                )
            })?;
            sets.push(set);
        }
        let [min, hour, dom, month, dow] = [0, 1, 2, 3, 4].map(|i| render(&FIELDS[i], &sets[i]));
        let build = |dom: &str, dow: &str| {
            cron::Schedule::from_str(&format!("0 {min} {hour} {dom} {month} {dow}")).map_err(|_| {
                // Unreachable after `expand`; the crate's message would show its 6-field form.
                err("the `cron` library refused it".to_owned(), None)
            })
        };
        let (dom_raw, dow_raw) = (fields[2].1, fields[4].1);
        let both_restricted = !dom_raw.starts_with('*') && !dow_raw.starts_with('*');
        let parts = if both_restricted {
            vec![build(&dom, "*")?, build("*", &dow)?]
        } else {
            vec![build(&dom, &dow)?]
        };
        // An expression that never fires (e.g. `0 0 31 2 *`) is almost surely a mistake.
        let probe = DateTime::<Utc>::from_timestamp(0, 0).expect("epoch");
        if parts.iter().all(|p| p.after(&probe).next().is_none()) {
            return Err(err("it never fires".to_owned(), None));
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

/// The whitespace-separated fields of `expr`, each with its column in characters.
fn split_fields(expr: &str) -> Vec<(usize, &str)> {
    let mut fields = Vec::new();
    let mut start = None;
    for (column, (i, c)) in expr.char_indices().enumerate() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some((i, column)),
            (true, Some((s, col))) => {
                fields.push((col, &expr[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some((s, col)) = start {
        fields.push((col, &expr[s..]));
    }
    fields
}

/// One value of a field: a number or (for month and day of week) a name.
fn value(spec: &Field, text: &str) -> Result<u32, String> {
    if let Some(i) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(spec.min + u32::try_from(i).expect("few names"));
    }
    let not_a = |what: &str| format!("`{text}` is not a {what}");
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n) if (spec.min..=spec.max).contains(&n) => Ok(n),
            _ if !spec.not_a.is_empty() => Err(not_a(spec.not_a)),
            _ => Err(format!("`{text}` is out of range")),
        };
    }
    if spec.not_a.is_empty() {
        Err(not_a("number"))
    } else {
        Err(not_a(spec.not_a))
    }
}

/// Expands a field (`*`, `5`, `1-5`, `1,15`, `*/15`, `1-31/2`, `MON-FRI`) into its values, in
/// the field's own numbering (day of week: 0 = Sunday, 7 folded into 0).
fn expand(spec: &Field, field: &str) -> Result<Vec<u32>, String> {
    let mut set = vec![false; spec.max as usize + 1];
    for item in field.split(',') {
        if item.is_empty() {
            return Err(format!("`{field}` has an empty list item"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step =
                    s.parse::<u32>().ok().filter(|&s| s > 0).ok_or_else(|| {
                        format!("step `{s}` in `{item}` is not a positive number")
                    })?;
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.star_max)
        } else if let Some((a, b)) = range.split_once('-') {
            if a.is_empty() || b.is_empty() {
                return Err(format!("`{range}` is neither a value nor a range"));
            }
            let (lo, hi) = (value(spec, a)?, value(spec, b)?);
            if hi < lo {
                return Err(format!("range `{range}` runs backwards"));
            }
            (lo, hi)
        } else {
            let v = value(spec, range)?;
            (v, if step > 1 { spec.star_max.max(v) } else { v })
        };
        for v in (lo..=hi).step_by(step as usize) {
            set[v as usize] = true;
        }
    }
    if spec.star_max < spec.max && set[spec.max as usize] {
        set[spec.max as usize] = false;
        set[spec.min as usize] = true;
    }
    Ok((spec.min..=spec.star_max)
        .filter(|&v| set[v as usize])
        .collect())
}

/// A field in the `cron` crate's syntax: `*` when every value is in, else a list. Days of
/// week go by name, since the crate numbers them from 1.
fn render(spec: &Field, values: &[u32]) -> String {
    if values.len() == (spec.star_max - spec.min + 1) as usize {
        return "*".to_owned();
    }
    values
        .iter()
        .map(|&v| {
            if spec.star_max < spec.max {
                DAYS[v as usize].to_owned()
            } else {
                v.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
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

    fn parse_err(expr: &str) -> String {
        CronSchedule::parse(expr).unwrap_err().to_string()
    }

    #[test]
    fn an_out_of_range_field_is_named_with_its_valid_range_and_a_caret() {
        assert_eq!(
            parse_err("61 * * * *"),
            "invalid cron expression `61 * * * *`: `61` is out of range in the minute field \
             (valid: 0-59)\n  61 * * * *\n  ^^"
        );
        assert_eq!(
            parse_err("0 24 * * *"),
            "invalid cron expression `0 24 * * *`: `24` is out of range in the hour field \
             (valid: 0-23)\n  0 24 * * *\n    ^^"
        );
        assert_eq!(
            parse_err("0 0 0 * *"),
            "invalid cron expression `0 0 0 * *`: `0` is out of range in the day-of-month \
             field (valid: 1-31)\n  0 0 0 * *\n      ^"
        );
        assert_eq!(
            parse_err("0 0 * 1,13 *"),
            "invalid cron expression `0 0 * 1,13 *`: `13` is not a month in the month field \
             (valid: 1-12 or JAN-DEC)\n  0 0 * 1,13 *\n        ^^^^"
        );
        assert_eq!(
            parse_err("0  0 * * mon-fry"),
            "invalid cron expression `0  0 * * mon-fry`: `fry` is not a day in the \
             day-of-week field (valid: 0-7 or SUN-SAT; 0 and 7 are Sunday)\n  \
             0  0 * * mon-fry\n           ^^^^^^^"
        );
    }

    #[test]
    fn malformed_fields_never_show_the_six_field_form() {
        for (expr, needle) in [
            (
                "*/0 * * * *",
                "step `0` in `*/0` is not a positive number in the minute field",
            ),
            ("*/x * * * *", "step `x`"),
            (
                "0 1,,2 * * *",
                "`1,,2` has an empty list item in the hour field",
            ),
            ("0 0 ? * *", "`?` is not a number in the day-of-month field"),
            ("0 0 L * *", "`L` is not a number"),
            (
                "0 9-5 * * *",
                "range `9-5` runs backwards in the hour field",
            ),
            (
                "0 -5 * * *",
                "`-5` is neither a value nor a range in the hour field",
            ),
            ("0 0 * * 8", "`8` is not a day"),
            ("60 * * * *", "(valid: 0-59)"),
        ] {
            let err = parse_err(expr);
            assert!(err.contains(needle), "{expr}: {err}");
            assert!(!err.contains(&format!("0 {expr}")), "{expr}: {err}");
            assert!(err.ends_with('^'), "{expr}: {err}");
        }
    }

    #[test]
    fn every_form_of_field_is_accepted_within_its_range() {
        for expr in [
            "59 23 31 12 7",
            "0-59 0-23 1-31 1-12 0-7",
            "*/5 */2 */10 */3 */2",
            "0-30/10 8-18/2 1-31/7 1-12/6 1-5/2",
            "5/15 1/6 * * *",
            "0 0 * jan,Jul-DEC mon-FRI",
            "0,30 9,17 1,15 * SUN,sat",
        ] {
            CronSchedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        }
        // 2026-03-01 is a Sunday; steps from a start run to the field's end
        assert_eq!(
            next("5/20 * * * *", "2026-03-01T10:50:00Z"),
            "2026-03-01T11:05:00+00:00"
        );
        assert_eq!(
            next("0 0 1 jul-aug *", "2026-03-01T00:00:00Z"),
            "2026-07-01T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * * 6-7", "2026-03-02T00:00:00Z"),
            "2026-03-07T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 * */5 *", "2026-03-01T00:00:00Z"),
            "2026-06-01T00:00:00+00:00"
        );
    }
}
