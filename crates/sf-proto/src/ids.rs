//! Identifiers. Task and plan ids are short strings over a shell-safe alphabet (lowercase
//! Crockford base32: no `i`, `l`, `o`, `u`), so any unique prefix can name them. Dependency and
//! event ids are plain integers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The alphabet of task and plan ids.
pub const ID_ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Length of a generated task or plan id.
pub const ID_LEN: usize = 6;

/// An id or id prefix that is not made of the id alphabet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid id: ids are made of digits and lowercase letters (no i, l, o, u)")]
pub struct IdError(pub String);

/// Checks that `s` could be an id or a prefix of one. Uppercase is folded to lowercase.
pub fn normalize_prefix(s: &str) -> Result<String, IdError> {
    let lower = s.trim().to_ascii_lowercase();
    if lower.is_empty() || lower.len() > 32 || !lower.bytes().all(|b| ID_ALPHABET.contains(&b)) {
        return Err(IdError(s.to_owned()));
    }
    Ok(lower)
}

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a full id after checking its alphabet.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                let norm = normalize_prefix(&s)?;
                Ok(Self(norm))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

string_id!(
    /// A task id, e.g. `k3f9xq`.
    TaskId
);
string_id!(
    /// A plan id, e.g. `7hm2pa`.
    PlanId
);

macro_rules! int_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().trim_start_matches('#').parse().map(Self)
            }
        }
    };
}

int_id!(
    /// A dependency id, shown as `#12` in listings.
    DepId
);
int_id!(
    /// An audit event id; ids only grow.
    EventId
);
int_id!(
    /// A run id: one worker, steward or shell-step run.
    RunId
);
int_id!(
    /// A merge request id, shown as `#4`.
    MergeRequestId
);
int_id!(
    /// A message id.
    MessageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_folded_and_checked() {
        assert_eq!(normalize_prefix("K3F").unwrap(), "k3f");
        assert!(normalize_prefix("").is_err());
        assert!(normalize_prefix("ab$(rm)").is_err());
        assert!(
            normalize_prefix("hello").is_err(),
            "`l` and `o` are not in the alphabet"
        );
    }

    #[test]
    fn dep_ids_accept_a_hash() {
        assert_eq!("#12".parse::<DepId>().unwrap(), DepId(12));
    }
}
