//! Validation of names, skills, titles and text sizes, and branch slugs.

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description, acceptance text, note or reason, in bytes.
pub const MAX_TEXT: usize = 64 * 1024;

/// A name or text that does not fit the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Agent name.
    #[error(
        "invalid agent name `{0}`: use 1 to 32 lowercase letters, digits, `-` or `_`, starting with a letter or digit"
    )]
    AgentName(String),
    /// Skill.
    #[error("invalid skill `{0}`: use letters, digits and `-_.+#`, at most 40 characters")]
    Skill(String),
    /// Empty title.
    #[error("the title is empty")]
    EmptyTitle,
    /// Title too long.
    #[error("the title is {0} characters long; the limit is {MAX_TITLE}")]
    LongTitle(usize),
    /// Title with a line break or control character.
    #[error("the title contains a line break or control character; put details in the description")]
    TitleControl,
    /// Text too large.
    #[error("the {field} is {len} bytes long; the limit is {MAX_TEXT} bytes")]
    LongText {
        /// Which field.
        field: &'static str,
        /// Its size.
        len: usize,
    },
}

/// Checks an agent name.
pub fn validate_agent_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError::AgentName(name.to_owned()))
    }
}

/// Lowercases, trims, dedupes and sorts skills (skills compare case-insensitively).
pub fn normalize_skills<I, S>(skills: I) -> Result<Vec<String>, NameError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = Vec::new();
    for s in skills {
        let s = s.as_ref().trim().to_lowercase();
        if s.is_empty() {
            continue;
        }
        if s.chars().count() > 40
            || !s
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.+#".contains(c))
        {
            return Err(NameError::Skill(s));
        }
        out.push(s);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Whether an agent with `have` covers every skill in `need` (both normalized).
pub fn has_skills(have: &[String], need: &[String]) -> bool {
    need.iter().all(|n| have.binary_search(n).is_ok())
}

/// Checks and trims a title. Shell characters are fine: titles are data, never commands.
pub fn validate_title(title: &str) -> Result<String, NameError> {
    let t = title.trim();
    if t.is_empty() {
        return Err(NameError::EmptyTitle);
    }
    let n = t.chars().count();
    if n > MAX_TITLE {
        return Err(NameError::LongTitle(n));
    }
    if t.chars().any(char::is_control) {
        return Err(NameError::TitleControl);
    }
    Ok(t.to_owned())
}

/// Checks the size of a free-text field.
pub fn validate_text(field: &'static str, text: &str) -> Result<(), NameError> {
    if text.len() > MAX_TEXT {
        return Err(NameError::LongText {
            field,
            len: text.len(),
        });
    }
    Ok(())
}

/// Branch-safe slug of a title: lowercase ASCII letters and digits joined by single hyphens,
/// at most 30 characters, never empty.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            if out.len() == 30 {
                break;
            }
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            if out.len() >= 29 {
                break;
            }
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "task".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names() {
        assert!(validate_agent_name("w1").is_ok());
        assert!(validate_agent_name("merge-steward_2").is_ok());
        for bad in ["", "W1", "-x", "a b", "x;rm", &"a".repeat(33)] {
            assert!(validate_agent_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn skills_are_a_case_insensitive_set() {
        let s = normalize_skills(["Rust", "rust ", "SQL", ""]).unwrap();
        assert_eq!(s, vec!["rust", "sql"]);
        assert!(has_skills(&s, &normalize_skills(["RUST"]).unwrap()));
        assert!(!has_skills(&s, &normalize_skills(["go"]).unwrap()));
        assert!(normalize_skills(["a b"]).is_err());
    }

    #[test]
    fn titles() {
        assert_eq!(
            validate_title("  fix `$(rm -rf /)` \"now\" ✓ ").unwrap(),
            "fix `$(rm -rf /)` \"now\" ✓"
        );
        assert_eq!(validate_title("  "), Err(NameError::EmptyTitle));
        assert_eq!(validate_title("a\nb"), Err(NameError::TitleControl));
        assert!(matches!(
            validate_title(&"x".repeat(201)),
            Err(NameError::LongTitle(201))
        ));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Fix the login bug!"), "fix-the-login-bug");
        assert_eq!(slug("$(rm -rf /) && `x`"), "rm-rf-x");
        assert_eq!(slug("Ünïcödé ✓"), "n-c-d");
        assert_eq!(slug("✓✓✓"), "task");
        let long = slug("a very long title that goes on and on and on forever");
        assert!(long.len() <= 30 && !long.ends_with('-'), "{long}");
    }
}
