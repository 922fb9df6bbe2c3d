//! What an agent's configuration shows of keys and tokens: `[redacted]`.
//!
//! An agent's `--command` (and any text shaped like a command line) may carry a key: an
//! `API_KEY=…` assignment, a `--token …` flag, or a bare key (`sk-…`, `ghp_…`, a long
//! random-looking word). [`command`] replaces each with [`REDACTED`]; everything else is
//! kept so the configuration stays comparable.

/// What a redacted value reads as.
pub const REDACTED: &str = "[redacted]";

/// Names that say their value is a secret (an environment variable or a flag).
const SECRET_WORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pass",
    "auth",
    "credential",
    "bearer",
    "cookie",
    "session",
];

fn secret_name(name: &str) -> bool {
    let lower = name.trim_start_matches('-').to_ascii_lowercase();
    !lower.is_empty()
        && lower
            .split(['_', '-', '.'])
            .any(|part| SECRET_WORDS.contains(&part))
}

/// Prefixes of well-known key formats.
const KEY_PREFIXES: &[&str] = &[
    "sk-",
    "sk_",
    "pk_",
    "rk_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "AKIA",
    "ASIA",
    "AIza",
    "eyJ",
];

/// Whether a word looks like a key: a known prefix, or 24+ characters of letters and
/// digits (and `-_+/=`) with both letters and digits.
pub fn looks_like_key(word: &str) -> bool {
    let w = word.trim_matches(|c| c == '"' || c == '\'');
    if w.len() >= 12 && KEY_PREFIXES.iter().any(|p| w.starts_with(p)) {
        return true;
    }
    // a path is not a key, however long and digit-laden
    let path = w.starts_with(['/', '.', '~']);
    !path
        && w.len() >= 24
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_+/=".contains(c))
        && w.chars().any(|c| c.is_ascii_digit())
        && w.chars().any(|c| c.is_ascii_alphabetic())
        && !w.contains("//")
}

/// `text` with keys replaced by [`REDACTED`]: the value of `NAME=value` when `NAME` says
/// secret, the word after (or the value of `=` in) a flag that says secret, and any word
/// that [looks like a key](looks_like_key). Whitespace is kept as it was.
pub fn command(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut redact_next = false;
    let mut rest = text;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        if rest.is_empty() {
            break;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        if redact_next {
            out.push_str(REDACTED);
            redact_next = false;
            continue;
        }
        if let Some((name, value)) = word.split_once('=')
            && !value.is_empty()
            && (secret_name(name) || looks_like_key(value))
        {
            out.push_str(name);
            out.push('=');
            out.push_str(REDACTED);
            continue;
        }
        if word.starts_with('-') && secret_name(word) && !word.contains('=') {
            out.push_str(word);
            redact_next = true;
            continue;
        }
        if looks_like_key(word) {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
    }
    out
}

/// An agent's spec as anyone may see it: its command redacted.
pub fn spec(spec: &sf_proto::AgentSpec) -> sf_proto::AgentSpec {
    let mut s = spec.clone();
    s.command = s.command.as_deref().map(command);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_commands_are_redacted() {
        assert_eq!(
            command("env OPENAI_API_KEY=sk-abc123def456ghi my-agent --fast"),
            "env OPENAI_API_KEY=[redacted] my-agent --fast"
        );
        assert_eq!(
            command("agent --api-key hunter2 --token=abc run"),
            "agent --api-key [redacted] --token=[redacted] run"
        );
        assert_eq!(
            command("curl -H ghp_0123456789abcdefABCDEF0123"),
            "curl -H [redacted]"
        );
        assert_eq!(
            command("x Q9f8e7d6c5b4a3Z2y1x0w9v8u7t6 y"),
            "x [redacted] y"
        );
    }

    #[test]
    fn ordinary_commands_are_kept() {
        for c in [
            "/usr/bin/python3 -m agent --model gpt-5 --verbose",
            "bash -c 'cargo test --workspace'",
            "node /home/u/.local/lib/node_modules/@anthropic-ai/claude-code/cli.js",
            "MODE=fast ./run.sh",
            "/work/h1-target/debug/fake-agent /tmp/sf-e2e-Ab12Cd/w1.script",
        ] {
            assert_eq!(command(c), c);
        }
    }
}
