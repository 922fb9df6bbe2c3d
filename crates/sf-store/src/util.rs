use chrono::{DateTime, TimeZone, Utc};

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub(crate) fn ts(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(crate) fn opt_ts(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(ts)
}

/// A short id not yet used in `table` (`tasks` or `plans`), checked inside the caller's
/// transaction.
pub(crate) fn fresh_id(
    conn: &rusqlite::Connection,
    table: &'static str,
) -> Result<String, crate::StoreError> {
    use rusqlite::OptionalExtension;
    loop {
        let c = new_short_id();
        let taken = conn
            .prepare_cached(&format!("SELECT 1 FROM {table} WHERE id = ?1"))?
            .query_row([&c], |_| Ok(()))
            .optional()?
            .is_some();
        if !taken {
            return Ok(c);
        }
    }
}

fn new_short_id() -> String {
    (0..sf_proto::ID_LEN)
        .map(|_| char::from(sf_proto::ID_ALPHABET[fastrand::usize(..sf_proto::ID_ALPHABET.len())]))
        .collect()
}

/// `[lo, hi)` bounds for a prefix range scan over ids (ids use only `[0-9a-z]`).
pub(crate) fn prefix_range(prefix: &str) -> (String, String) {
    (prefix.to_owned(), format!("{prefix}~"))
}
