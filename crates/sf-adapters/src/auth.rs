//! Recognising an agent CLI that cannot authenticate, and the fix to tell its owner.
//!
//! A CLI that is not logged in fails every run the same way, whatever the task: sf stops
//! handing that agent work (the agent is disabled with the reason and the fix) instead of
//! charging each task an attempt. The texts, as the pinned versions print them against a
//! server that answers 401 (see `tests/agents/README.md`):
//! - Claude Code: a synthetic assistant message with `error: "authentication_failed"` and the
//!   text `Not logged in · Please run /login` (no credentials), or `Invalid API key · Fix
//!   external API key` (a key the API refuses), then an error `result`;
//!   `api_error_status: 401` on the result.
//! - Codex: `unexpected status 401 Unauthorized: …` in `error` and `turn.failed` events, or
//!   `Missing environment variable: `OPENAI_API_KEY`` for a provider without its key.
//! - OpenCode: an `error` line whose `data.statusCode` is 401, or a `ProviderAuthError`.

use sf_proto::Adapter;

/// Whether `text`, an error the CLI reported, says it could not authenticate.
pub(super) fn is_auth_failure(text: &str) -> bool {
    let t = text.to_lowercase();
    [
        "not logged in",
        "please run /login",
        "authentication_failed",
        "authentication_error",
        "invalid api key",
        "invalid x-api-key",
        "incorrect api key",
        "invalid_api_key",
        "401 unauthorized",
        "status 401",
        "providerautherror",
        "oauth token has expired",
    ]
    .iter()
    .any(|m| t.contains(m))
        || (t.contains("missing environment variable") && t.contains("api_key"))
}

/// What the owner of an agent of `adapter` does so that its CLI can authenticate.
pub fn auth_fix(adapter: Adapter) -> &'static str {
    match adapter {
        Adapter::Claude => {
            "run `claude login` as the user sfd runs as, or grant an API key: add \
             `ANTHROPIC_API_KEY = \"env:ANTHROPIC_API_KEY\"` to [secrets] in .sf/config.toml \
             and register the agent with `--secret ANTHROPIC_API_KEY`"
        }
        Adapter::Codex => {
            "run `codex login` as the user sfd runs as, or grant an API key: add \
             `OPENAI_API_KEY = \"env:OPENAI_API_KEY\"` to [secrets] in .sf/config.toml and \
             register the agent with `--secret OPENAI_API_KEY`"
        }
        Adapter::Opencode => {
            "run `opencode auth login` for the agent's provider as the user sfd runs as, or \
             grant the provider's API key with `--secret` ([secrets] in .sf/config.toml)"
        }
        Adapter::Command => "give the command the credentials it needs (`--secret`)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_clis_words_are_recognised() {
        for text in [
            "Not logged in · Please run /login",
            "Invalid API key · Fix external API key",
            "unexpected status 401 Unauthorized: {\"error\":{\"message\":\"bad key\"}}",
            "Missing environment variable: `OPENAI_API_KEY`.",
            "ProviderAuthError: no credentials",
        ] {
            assert!(is_auth_failure(text), "{text}");
        }
    }

    #[test]
    fn other_errors_are_not_taken_for_one() {
        for text in [
            "unexpected status 500 Internal Server Error",
            "You've hit your usage limit. Try again at 3:28 PM.",
            "error: could not compile `auth` (lib) due to 1 previous error",
            "stream disconnected before completion",
        ] {
            assert!(!is_auth_failure(text), "{text}");
        }
    }
}
