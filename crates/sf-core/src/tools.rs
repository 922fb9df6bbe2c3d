//! Tool rules: what the guard answers for one tool call an agent's CLI is about to make
//! (`[tools]` in `.sf/policy.toml`).
//!
//! A rule's `match` is `Tool(input)` with `*` and `?` wildcards (`Bash(git push*)`,
//! `Write(*.env)`), `Tool` alone for any input, or `*`. The first rule that matches decides:
//! `allow`, `deny`, or `hold` (the call waits for a human's approval, up to `hold_timeout`,
//! then is denied); `unless_capability` skips a rule for agents granted that capability. No
//! rule matching: `default`. A shell command matches when the whole command or any of its
//! parts (split at `&&`, `||`, `;`, `|` and newlines) does, so `cd x && git push` is a push.

use std::time::Duration;

use serde::Deserialize;
use sf_proto::Capability;
use wildmatch::WildMatch;

/// What a rule, or the default, decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolDecision {
    /// The call goes ahead.
    Allow,
    /// The call is refused; the model gets the reason.
    Deny,
    /// The call waits for a human's approval.
    Hold,
}

impl ToolDecision {
    /// Its name in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Hold => "hold",
        }
    }
}

/// One tool call, as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall<'a> {
    /// The tool, in Claude Code's names (`Bash`, `Edit`, `Write`, `Read`, …); other CLIs'
    /// names are mapped to these by their adapters.
    pub tool: &'a str,
    /// What it acts on: a shell command, a file path, else the input as compact JSON.
    pub input: &'a str,
}

/// One rule.
#[derive(Debug, Clone)]
pub struct ToolRule {
    tool: WildMatch,
    input: Option<WildMatch>,
    /// As written, for the ledger and the denial (`tools.rules[0] Bash(git push*)`).
    pub text: String,
    /// What it decides.
    pub decision: ToolDecision,
    /// Agents with this capability skip it.
    pub unless_capability: Option<Capability>,
    /// Why, told to the model on a denial.
    pub reason: Option<String>,
}

impl PartialEq for ToolRule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
            && self.decision == other.decision
            && self.unless_capability == other.unless_capability
            && self.reason == other.reason
    }
}

impl Eq for ToolRule {}

/// `[tools]`: the rules, the default, and how long a held call waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRules {
    /// In file order.
    pub rules: Vec<ToolRule>,
    /// When no rule matches.
    pub default: ToolDecision,
    /// How long a held call waits for a human before it is denied.
    pub hold_timeout: Duration,
}

impl Default for ToolRules {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            default: ToolDecision::Allow,
            hold_timeout: Duration::from_secs(600),
        }
    }
}

/// The guard's answer for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolVerdict {
    /// What to do.
    pub decision: ToolDecision,
    /// The rule that decided (`tools.rules[N] PATTERN`, or `tools.default`).
    pub rule: String,
    /// Why, for the model and the ledger.
    pub reason: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTools {
    #[serde(default)]
    default: Option<ToolDecision>,
    #[serde(default)]
    hold_timeout: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "match")]
    pattern: String,
    decision: ToolDecision,
    #[serde(default)]
    unless_capability: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

impl RawTools {
    /// Checks and compiles the rules; an error names the rule and what is wrong.
    pub(crate) fn compile(self) -> Result<ToolRules, String> {
        let hold_timeout = match self.hold_timeout.as_deref() {
            None => Duration::from_secs(600),
            Some(t) => humantime::parse_duration(t)
                .map_err(|e| format!("[tools] hold_timeout = \"{t}\": {e}"))?,
        };
        let mut rules = Vec::new();
        for (i, r) in self.rules.into_iter().enumerate() {
            let (tool, input) = split_pattern(&r.pattern).ok_or_else(|| {
                format!(
                    "tools.rules[{i}]: match = \"{}\" is not `Tool`, `Tool(input)` or `*`",
                    r.pattern
                )
            })?;
            let unless_capability = r
                .unless_capability
                .map(|c| {
                    c.parse::<Capability>()
                        .map_err(|e| format!("tools.rules[{i}]: unless_capability: {e}"))
                })
                .transpose()?;
            rules.push(ToolRule {
                tool: WildMatch::new(tool),
                input: input.map(WildMatch::new),
                text: format!("tools.rules[{i}] {}", r.pattern),
                decision: r.decision,
                unless_capability,
                reason: r.reason,
            });
        }
        Ok(ToolRules {
            rules,
            default: self.default.unwrap_or(ToolDecision::Allow),
            hold_timeout,
        })
    }
}

impl ToolRules {
    /// Rules given in code (a job role's defaults): `(match, decision, reason)`, each
    /// named `{name}[N] PATTERN` in the ledger; the default allows.
    pub fn built_in(name: &str, rules: &[(&str, ToolDecision, &str)]) -> Self {
        let rules = rules
            .iter()
            .enumerate()
            .filter_map(|(i, (pattern, decision, reason))| {
                let (tool, input) = split_pattern(pattern)?;
                Some(ToolRule {
                    tool: WildMatch::new(tool),
                    input: input.map(WildMatch::new),
                    text: format!("{name}[{i}] {pattern}"),
                    decision: *decision,
                    unless_capability: None,
                    reason: Some((*reason).to_owned()),
                })
            })
            .collect();
        Self {
            rules,
            ..Self::default()
        }
    }

    /// The rules' texts, in order (what a signed manifest covers).
    pub fn texts(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|r| format!("{} => {}", r.text, r.decision.as_str()))
            .collect()
    }
}

/// `Tool(input)` → (`Tool`, `Some(input)`); `Tool` → (`Tool`, `None`).
fn split_pattern(p: &str) -> Option<(&str, Option<&str>)> {
    let p = p.trim();
    if p.is_empty() {
        return None;
    }
    match p.split_once('(') {
        None if !p.contains(')') => Some((p, None)),
        Some((tool, rest)) if !tool.is_empty() => {
            let input = rest.strip_suffix(')')?;
            Some((tool.trim(), Some(input)))
        }
        _ => None,
    }
}

/// The parts of a shell command a rule also matches: the whole, then each part between
/// `&&`, `||`, `;`, `|` and newlines, trimmed.
fn command_parts(cmd: &str) -> impl Iterator<Item = &str> {
    std::iter::once(cmd.trim()).chain(
        cmd.split(['\n', ';', '|', '&'])
            .map(str::trim)
            .filter(|s| !s.is_empty()),
    )
}

impl ToolRules {
    /// Decides one call of an agent holding `capabilities`.
    pub fn decide(&self, call: &ToolCall<'_>, capabilities: &[Capability]) -> ToolVerdict {
        for rule in &self.rules {
            if rule
                .unless_capability
                .is_some_and(|c| capabilities.contains(&c))
            {
                continue;
            }
            if !rule.tool.matches(call.tool) {
                continue;
            }
            let input_matches = match &rule.input {
                None => true,
                Some(m) => command_parts(call.input).any(|part| m.matches(part)),
            };
            if input_matches {
                let reason = rule.reason.clone().unwrap_or_else(|| match rule.decision {
                    ToolDecision::Allow => "allowed by the policy".to_owned(),
                    ToolDecision::Deny => format!("denied by {} of .sf/policy.toml", rule.text),
                    ToolDecision::Hold => "held for a human's approval".to_owned(),
                });
                return ToolVerdict {
                    decision: rule.decision,
                    rule: rule.text.clone(),
                    reason,
                };
            }
        }
        ToolVerdict {
            decision: self.default,
            rule: "tools.default".to_owned(),
            reason: match self.default {
                ToolDecision::Allow => "allowed (no rule matched)".to_owned(),
                ToolDecision::Deny => {
                    "denied: no rule of .sf/policy.toml allows this call".to_owned()
                }
                ToolDecision::Hold => "held for a human's approval (no rule matched)".to_owned(),
            },
        }
    }
}

/// What a call acts on, as rules match it: a shell command, a file path, a URL or pattern,
/// else the input as compact JSON.
pub fn input_text(input: &serde_json::Value) -> String {
    for key in ["command", "file_path", "path", "url", "pattern"] {
        if let Some(s) = input.get(key).and_then(|v| v.as_str()) {
            return s.to_owned();
        }
    }
    input.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> ToolRules {
        let raw: RawTools = toml::from_str(text).unwrap();
        raw.compile().unwrap()
    }

    fn decide(r: &ToolRules, tool: &str, input: &str, caps: &[Capability]) -> ToolDecision {
        r.decide(&ToolCall { tool, input }, caps).decision
    }

    #[test]
    fn the_first_matching_rule_decides_and_capabilities_skip_rules() {
        let r = rules(
            "[[rules]]\nmatch = \"Bash(git push*)\"\ndecision = \"deny\"\nunless_capability = \"push\"\n\
             [[rules]]\nmatch = \"Bash(npm publish*)\"\ndecision = \"hold\"\n\
             [[rules]]\nmatch = \"Write(*.env)\"\ndecision = \"deny\"\n",
        );
        assert_eq!(
            decide(&r, "Bash", "git push origin HEAD", &[]),
            ToolDecision::Deny
        );
        assert_eq!(
            decide(&r, "Bash", "cd x && git push", &[]),
            ToolDecision::Deny,
            "a part of a compound command"
        );
        assert_eq!(
            decide(&r, "Bash", "git push", &[Capability::Push]),
            ToolDecision::Allow
        );
        assert_eq!(decide(&r, "Bash", "npm publish", &[]), ToolDecision::Hold);
        assert_eq!(decide(&r, "Write", "/w/.env", &[]), ToolDecision::Deny);
        assert_eq!(decide(&r, "Write", "/w/main.rs", &[]), ToolDecision::Allow);
        assert_eq!(decide(&r, "Bash", "git status", &[]), ToolDecision::Allow);
        let v = r.decide(
            &ToolCall {
                tool: "Bash",
                input: "git push",
            },
            &[],
        );
        assert_eq!(v.rule, "tools.rules[0] Bash(git push*)");
    }

    #[test]
    fn a_deny_default_denies_what_no_rule_allows() {
        let r = rules("default = \"deny\"\n[[rules]]\nmatch = \"Read\"\ndecision = \"allow\"\n");
        assert_eq!(decide(&r, "Read", "/x", &[]), ToolDecision::Allow);
        let v = r.decide(
            &ToolCall {
                tool: "Bash",
                input: "ls",
            },
            &[],
        );
        assert_eq!(v.decision, ToolDecision::Deny);
        assert_eq!(v.rule, "tools.default");
    }

    #[test]
    fn bad_rules_are_named() {
        for (text, says) in [
            (
                "[[rules]]\nmatch = \"Bash(git\"\ndecision = \"deny\"\n",
                "tools.rules[0]",
            ),
            (
                "[[rules]]\nmatch = \"\"\ndecision = \"deny\"\n",
                "tools.rules[0]",
            ),
            (
                "[[rules]]\nmatch = \"Bash\"\ndecision = \"deny\"\nunless_capability = \"fly\"\n",
                "unless_capability",
            ),
            ("hold_timeout = \"soon\"\n", "hold_timeout"),
        ] {
            let raw: RawTools = toml::from_str(text).unwrap();
            let e = raw.compile().unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn input_text_takes_the_command_or_the_path() {
        assert_eq!(
            input_text(&serde_json::json!({"command": "ls -l"})),
            "ls -l"
        );
        assert_eq!(
            input_text(&serde_json::json!({"file_path": "/a/b"})),
            "/a/b"
        );
        assert_eq!(input_text(&serde_json::json!({"x": 1})), "{\"x\":1}");
    }
}
