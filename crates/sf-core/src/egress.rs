//! Which hosts a sandboxed run may reach through sfd's egress proxy: a list of host
//! patterns, each with the rule that allows it (`adapter:claude`, `capability:github`, …).
//! Anything that no pattern matches is denied.

use std::fmt;
use std::str::FromStr;

/// One allowed host pattern: `example.com`, `*.example.com` (any subdomain, not the domain
/// itself), `*` (any host), each with an optional `:port` (default: any port). IPv6
/// addresses are written in brackets: `[::1]:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host, `*.suffix` or `*`.
    host: String,
    port: Option<u16>,
}

/// Why a host pattern is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a host pattern: expected a host name or address, `*.domain` or `*`, with an optional `:port` (for example \"api.anthropic.com\", \"*.github.com\", \"127.0.0.1:8080\")"
)]
pub struct BadPattern(String);

impl FromStr for HostPattern {
    type Err = BadPattern;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPattern(s.to_owned());
        let (host, port) = split_host_port(s.trim()).ok_or_else(bad)?;
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad()))
            .transpose()?;
        let name = host.strip_prefix("*.").unwrap_or(host);
        let legal = host == "*"
            || (!name.is_empty()
                && !name.starts_with('.')
                && !name.ends_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')));
        if !legal || port == Some(0) {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => write!(f, "{host}:{p}"),
            None => f.write_str(&host),
        }
    }
}

impl HostPattern {
    /// Whether `host:port` (as a proxy request names it) matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => host == self.host,
        }
    }
}

/// Splits `host[:port]` or `[v6]:port`; `None` when the brackets do not close.
pub fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        // a bare IPv6 address has several colons and no port
        Some((h, p)) if !h.contains(':') => Some((h, Some(p))),
        _ => Some((s, None)),
    }
}

/// A pattern and the rule that allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// The hosts.
    pub pattern: HostPattern,
    /// Why they are allowed, as egress records name it (`adapter:codex`,
    /// `capability:network`, …).
    pub rule: String,
}

/// The rule that allows `host:port`, or `None`: denied.
pub fn decide<'a>(allow: &'a [Allow], host: &str, port: u16) -> Option<&'a str> {
    allow
        .iter()
        .find(|a| a.pattern.matches(host, port))
        .map(|a| a.rule.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn patterns_match_hosts_subdomains_ports_and_everything() {
        assert!(p("api.anthropic.com").matches("API.Anthropic.com", 443));
        assert!(p("api.anthropic.com").matches("api.anthropic.com.", 80));
        assert!(!p("api.anthropic.com").matches("evil-api.anthropic.com", 443));
        assert!(!p("api.anthropic.com").matches("api.anthropic.com.evil.net", 443));
        assert!(p("*.github.com").matches("api.github.com", 443));
        assert!(!p("*.github.com").matches("github.com", 443));
        assert!(!p("*.github.com").matches("evilgithub.com", 443));
        assert!(p("127.0.0.1:8080").matches("127.0.0.1", 8080));
        assert!(!p("127.0.0.1:8080").matches("127.0.0.1", 8081));
        assert!(p("[::1]:8080").matches("::1", 8080));
        assert!(p("*").matches("anything.example", 22));
    }

    #[test]
    fn malformed_patterns_are_refused_with_examples() {
        for bad in [
            "", "*.", ".com", "a b", "host:x", "host:0", "[::1", "http://x",
        ] {
            let e = bad.parse::<HostPattern>().expect_err(bad).to_string();
            assert!(e.contains("host pattern"), "{e}");
        }
    }

    #[test]
    fn the_first_matching_rule_decides_and_nothing_matched_is_denied() {
        let allow = [
            Allow {
                pattern: p("api.openai.com"),
                rule: "adapter:codex".into(),
            },
            Allow {
                pattern: p("*.github.com"),
                rule: "capability:github".into(),
            },
        ];
        assert_eq!(decide(&allow, "api.openai.com", 443), Some("adapter:codex"));
        assert_eq!(
            decide(&allow, "codeload.github.com", 443),
            Some("capability:github")
        );
        assert_eq!(decide(&allow, "example.com", 443), None);
        assert_eq!(decide(&[], "api.openai.com", 443), None);
    }

    #[test]
    fn patterns_print_as_written() {
        for s in [
            "api.openai.com",
            "*.github.com",
            "127.0.0.1:8080",
            "[::1]:9",
            "*",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
    }
}
