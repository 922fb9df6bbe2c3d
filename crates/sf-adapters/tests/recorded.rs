//! The parsers against streams recorded from the pinned CLIs (`tests/agents/`) playing
//! `sf-model-server`'s scripts: `fixtures/<cli>/recorded/*.jsonl`, written by
//! `tests/agents/record.sh` (run it again when a version is bumped). Session ids, paths and
//! times differ at each recording; what is asserted is what sf reads from them.

use std::path::Path;

use chrono::{DateTime, FixedOffset};
use sf_adapters::{RunReport, TokenUsage, report_from_log};
use sf_proto::Adapter;

/// The zone and instant clock times in the streams are read at.
fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-03-10T12:00:00+01:00").expect("valid time")
}

fn recorded(adapter: Adapter, case: &str) -> RunReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(adapter.as_str())
        .join("recorded")
        .join(format!("{case}.jsonl"));
    let log = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/agents/record.sh)", path.display()));
    report_from_log(adapter, &log, now())
}

/// The server's script: one tool call (turn 1: 100 in, 10 out), then the answer (200, 20).
const SCRIPTED: TokenUsage = TokenUsage {
    input_tokens: 300,
    output_tokens: 30,
    cache_read_tokens: 0,
    cache_write_tokens: 0,
};

#[test]
fn a_successful_run_of_each_cli() {
    for adapter in [Adapter::Claude, Adapter::Codex, Adapter::Opencode] {
        let r = recorded(adapter, "success");
        assert!(r.session_id.is_some(), "{adapter}: {r:?}");
        assert_eq!(r.tokens, SCRIPTED, "{adapter}");
        assert_eq!(r.tool_calls, 1, "{adapter}");
        let result = r.result.expect("a result");
        assert!(result.success, "{adapter}: {result:?}");
        assert_eq!(result.text, "Done: note.txt is committed.", "{adapter}");
        assert_eq!((r.usage_limit, r.auth_failure), (None, None), "{adapter}");
    }
    let claude = recorded(Adapter::Claude, "success");
    assert!(claude.cost_usd.is_some_and(|c| c > 0.0), "{claude:?}");
}

#[test]
fn a_claude_run_killed_before_its_result_still_counts_usage() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude/recorded/success.jsonl");
    let log = std::fs::read_to_string(path).expect("fixture");
    let lines: Vec<&str> = log.lines().collect();
    let r = report_from_log(Adapter::Claude, &lines[..lines.len() - 1].join("\n"), now());
    // each `assistant` line carries its message's usage as the stream began: the input in
    // full, the output only as far as it was known then (the `result` has the totals)
    assert_eq!(
        r.tokens.input_tokens, SCRIPTED.input_tokens,
        "each message once"
    );
    assert_eq!(r.tokens.output_tokens, 2, "{r:?}");
    assert_eq!((r.cost_usd, r.result), (None, None));
    assert_eq!(r.tool_calls, 1);
}

#[test]
fn not_logged_in_and_refused_keys_are_authentication_failures() {
    for (adapter, case, words) in [
        (
            Adapter::Claude,
            "not_logged_in",
            "Not logged in · Please run /login",
        ),
        (Adapter::Codex, "unauthorized", "401 Unauthorized"),
        (Adapter::Opencode, "unauthorized", "invalid x-api-key"),
    ] {
        let r = recorded(adapter, case);
        let said = r.auth_failure.clone().unwrap_or_default();
        assert!(said.contains(words), "{adapter}: {r:?}");
        assert!(r.result.is_some_and(|res| !res.success), "{adapter}");
        assert_eq!(r.usage_limit, None, "{adapter}");
    }
}

#[test]
fn usage_limits_with_the_reset_the_cli_names() {
    let codex = recorded(Adapter::Codex, "usage_limit");
    let limit = codex.usage_limit.expect("a usage limit");
    assert!(limit.message.contains("hit your usage limit"), "{limit:?}");
    assert!(
        limit.resets_at.is_some(),
        "Codex names a clock time: {limit:?}"
    );
    assert_eq!(codex.auth_failure, None);
    // Claude Code names none for an API 429: the default pause applies
    let claude = recorded(Adapter::Claude, "usage_limit");
    let limit = claude.usage_limit.expect("a usage limit");
    assert!(limit.message.contains("429"), "{limit:?}");
    assert_eq!(claude.auth_failure, None);
}

#[test]
fn a_stream_cut_mid_turn_is_a_plain_failure() {
    for adapter in [Adapter::Codex, Adapter::Opencode] {
        let r = recorded(adapter, "cut");
        let result = r.result.clone().expect("a result");
        assert!(!result.success, "{adapter}: {r:?}");
        assert!(!result.text.is_empty(), "{adapter}: the CLI's words");
        assert!(
            r.usage_limit.is_none() && r.auth_failure.is_none(),
            "{adapter}: {r:?}"
        );
    }
}

fn transcript(adapter: Adapter, case: &str) -> Vec<sf_adapters::transcript::Entry> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(adapter.as_str())
        .join("recorded")
        .join(format!("{case}.jsonl"));
    let log = std::fs::read_to_string(path).expect("fixture");
    let mut t = sf_adapters::transcript::Transcript::new(Some(adapter));
    log.lines().flat_map(|l| t.entries(l)).collect()
}

#[test]
fn each_clis_transcript_shows_the_call_its_end_the_answer_and_the_usage() {
    use sf_adapters::transcript::Entry;
    for adapter in [Adapter::Claude, Adapter::Codex, Adapter::Opencode] {
        let t = transcript(adapter, "success");
        let call = t.iter().find_map(|e| match e {
            Entry::ToolCall { input, .. } => Some(input.clone()),
            _ => None,
        });
        assert!(
            call.is_some_and(|c| c.contains("echo note > note.txt")),
            "{adapter}: {t:#?}"
        );
        assert!(
            t.iter().any(|e| matches!(e, Entry::ToolResult { ok: true, output } if output.contains("committed"))),
            "{adapter}: {t:#?}"
        );
        assert!(
            t.iter()
                .any(|e| matches!(e, Entry::Text(s) if s == "Done: note.txt is committed.")),
            "{adapter}: {t:#?}"
        );
        assert!(
            t.iter()
                .any(|e| matches!(e, Entry::Usage { input, .. } if *input > 0)),
            "{adapter}"
        );
    }
}

#[test]
fn a_failed_run_shows_the_clis_error_in_full() {
    use sf_adapters::transcript::Entry;
    // Claude Code 2.1's `result` line is over a kilobyte, its text among the last keys
    let t = transcript(Adapter::Claude, "not_logged_in");
    assert!(
        t.contains(&Entry::Result {
            success: false,
            text: "Not logged in · Please run /login".into()
        }),
        "{t:#?}"
    );
    let t = transcript(Adapter::Codex, "unauthorized");
    assert!(
        t.iter().any(|e| matches!(e, Entry::Result { success: false, text } if text.contains("401 Unauthorized"))),
        "{t:#?}"
    );
    // the CLI's stderr is kept as it is
    assert!(
        t.iter()
            .any(|e| matches!(e, Entry::Plain(l) if l.starts_with("WARNING"))),
        "{t:#?}"
    );
}
