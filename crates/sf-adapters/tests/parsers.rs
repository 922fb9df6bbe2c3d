//! Adapters against transcripts in the documented formats (see `fixtures/README.md`), parsed
//! directly and replayed by a fake executable started from the `Launch` that `launch()` builds.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, FixedOffset, Utc};
use sf_adapters::{
    AdapterError, Launch, LaunchInput, Live, RunReport, RunResult, Signal, TokenUsage, UsageLimit,
    guarded, launch, live, parser, report_from_log,
};
use sf_proto::{Adapter, Effort};

/// 2026-03-10 14:00 at UTC+01:00: the instant and zone the fixtures are read in.
fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-03-10T14:00:00+01:00").expect("valid time")
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn report(adapter: Adapter, name: &str) -> RunReport {
    report_from_log(adapter, &fixture(name), now())
}

fn tokens(input: u64, output: u64, cache_read: u64, cache_write: u64) -> TokenUsage {
    TokenUsage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
    }
}

fn ok(text: &str) -> Option<RunResult> {
    Some(RunResult {
        success: true,
        text: text.to_owned(),
    })
}

fn failed(text: &str) -> Option<RunResult> {
    Some(RunResult {
        success: false,
        text: text.to_owned(),
    })
}

// ---------------------------------------------------------------- claude

#[test]
fn claude_success() {
    let r = report(Adapter::Claude, "claude/success.jsonl");
    assert_eq!(
        r,
        RunReport {
            session_id: Some("9f1c2a4e-5b6d-4e8f-a1b2-c3d4e5f60718".into()),
            tokens: tokens(20, 512, 63_630, 5_910),
            cost_usd: Some(0.087_341_5),
            tool_calls: 3,
            steps: 4,
            usage_limit: None,
            auth_failure: None,
            result: ok("Login now honours ?next=; tests pass and task 7 is in review."),
        }
    );
}

#[test]
fn claude_killed_before_its_result_still_counts_usage() {
    let log = fixture("claude/success.jsonl");
    let lines: Vec<&str> = log.lines().collect();
    let partial = lines[..lines.len() - 1].join("\n");
    let r = report_from_log(Adapter::Claude, &partial, now());
    // The same message arrives as several lines; each is counted once, at its largest usage.
    assert_eq!(r.tokens, tokens(20, 512, 63_630, 5_910));
    assert_eq!(r.cost_usd, None);
    assert_eq!(r.tool_calls, 3);
    assert_eq!(r.result, None);
}

#[test]
fn claude_usage_limit() {
    let r = report(Adapter::Claude, "claude/usage_limit.jsonl");
    let text = "You've hit your session limit · resets 9am (Europe/Berlin)";
    assert_eq!(
        r.session_id.as_deref(),
        Some("a74d2edb-d7df-475f-ad7f-2c89def2ca88")
    );
    assert_eq!(
        r.usage_limit,
        Some(UsageLimit {
            message: text.into(),
            // from `rate_limit_event.resetsAt`; the prose says the same in local time
            resets_at: Some(utc("2026-03-11T09:00:00+01:00")),
        })
    );
    assert_eq!(r.result, failed(text));
    assert_eq!(r.tokens, TokenUsage::default());
}

#[test]
fn claude_usage_limit_prose_alone_gives_the_reset_time() {
    let log: String = fixture("claude/usage_limit.jsonl")
        .lines()
        .filter(|l| !l.contains("rate_limit_event"))
        .collect::<Vec<_>>()
        .join("\n");
    let r = report_from_log(Adapter::Claude, &log, now());
    let limit = r.usage_limit.expect("a usage limit");
    assert_eq!(limit.resets_at, Some(utc("2026-03-11T09:00:00+01:00")));
}

#[test]
fn claude_usage_limit_legacy_epoch() {
    let r = report(Adapter::Claude, "claude/usage_limit_legacy.jsonl");
    assert_eq!(
        r.usage_limit,
        Some(UsageLimit {
            message: "Claude AI usage limit reached|1755615600".into(),
            resets_at: DateTime::from_timestamp(1_755_615_600, 0),
        })
    );
    assert_eq!(r.result, failed("Claude AI usage limit reached|1755615600"));
}

#[test]
fn claude_error_max_turns() {
    let r = report(Adapter::Claude, "claude/error.jsonl");
    assert_eq!(
        r,
        RunReport {
            session_id: Some("e8d7c6b5-a493-4827-8160-5f4e3d2c1b0a".into()),
            tokens: tokens(7, 119, 4_100, 4_300),
            cost_usd: Some(0.0213),
            tool_calls: 2,
            steps: 2,
            usage_limit: None,
            auth_failure: None,
            result: failed("error_max_turns"),
        }
    );
}

#[test]
fn claude_agent_prose_about_limits_is_not_a_limit() {
    let sid = "s-1";
    let lines = [
        format!(
            r#"{{"type":"assistant","message":{{"id":"m1","model":"claude-sonnet-4-5","content":[{{"type":"text","text":"The test fixture prints Claude AI usage limit reached|1755615600 and You've hit your session limit · resets 9am"}}],"usage":{{"input_tokens":1,"output_tokens":2}}}},"session_id":"{sid}"}}"#
        ),
        format!(
            r#"{{"type":"result","subtype":"success","is_error":false,"result":"Added detection for 'Claude AI usage limit reached|1755615600' (the legacy form, epoch seconds after a pipe) and for \"You've hit your limit · resets 3pm\" messages, with unit tests covering both forms and new fixtures.","session_id":"{sid}","total_cost_usd":0.01,"usage":{{"input_tokens":1,"output_tokens":2}}}}"#
        ),
    ];
    let r = report_from_log(Adapter::Claude, &lines.join("\n"), now());
    assert_eq!(r.usage_limit, None);
    assert!(r.result.is_some_and(|res| res.success));
}

#[test]
fn claude_rate_limit_events_that_do_not_stop_the_run() {
    let lines = [
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1773216000,"rateLimitType":"five_hour","isUsingOverage":false},"session_id":"s"}"#,
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1773216000,"rateLimitType":"seven_day"},"session_id":"s"}"#,
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1773216000,"rateLimitType":"five_hour","isUsingOverage":true},"session_id":"s"}"#,
        r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":500,"error_status":429,"error":"rate_limit","session_id":"s"}"#,
    ];
    let r = report_from_log(Adapter::Claude, &lines.join("\n"), now());
    assert_eq!(r.session_id.as_deref(), Some("s"));
    assert_eq!(r.usage_limit, None);
}

// ---------------------------------------------------------------- codex

#[test]
fn codex_success() {
    let r = report(Adapter::Codex, "codex/success.jsonl");
    assert_eq!(
        r,
        RunReport {
            session_id: Some("0199a213-81c0-7800-8aa1-bbab2a035a53".into()),
            tokens: tokens(24_763 - 24_448, 122, 24_448, 0),
            cost_usd: None,
            tool_calls: 3,
            steps: 1,
            usage_limit: None,
            auth_failure: None,
            result: ok("Login now honours ?next=; tests pass and task 7 is in review."),
        }
    );
}

#[test]
fn codex_usage_limit() {
    let r = report(Adapter::Codex, "codex/usage_limit.jsonl");
    let text = "You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/codex/settings/usage to purchase more credits or try again at 3:28 PM.";
    assert_eq!(
        r.session_id.as_deref(),
        Some("0199b7c4-1f20-7d31-9a42-5e6f708192a3")
    );
    assert_eq!(
        r.usage_limit,
        Some(UsageLimit {
            message: text.into(),
            resets_at: Some(utc("2026-03-10T15:28:00+01:00")),
        })
    );
    assert_eq!(r.result, failed(text));
}

#[test]
fn codex_usage_limit_legacy_duration() {
    let r = report(Adapter::Codex, "codex/usage_limit_legacy.jsonl");
    let limit = r.usage_limit.expect("a usage limit");
    assert_eq!(limit.resets_at, Some(utc("2026-03-10T16:05:00+01:00")));
}

#[test]
fn opencode_success() {
    let r = report(Adapter::Opencode, "opencode/success.jsonl");
    let cost = r.cost_usd.expect("a cost");
    assert!((cost - 0.0189).abs() < 1e-9, "cost {cost}");
    assert_eq!(
        r,
        RunReport {
            session_id: Some("ses_494719016ffe85dkDMj0FPRbHK".into()),
            tokens: tokens(10_834, 555, 20_600, 0),
            cost_usd: Some(cost),
            tool_calls: 3,
            steps: 3,
            usage_limit: None,
            auth_failure: None,
            result: ok("Login now honours ?next=; tests pass and task 7 is in review."),
        }
    );
}

#[test]
fn opencode_usage_limit() {
    let r = report(Adapter::Opencode, "opencode/usage_limit.jsonl");
    let text = "You've hit your usage limit. Try again in 45 minutes.";
    assert_eq!(
        r.usage_limit,
        Some(UsageLimit {
            message: text.into(),
            resets_at: Some(utc("2026-03-10T14:45:00+01:00")),
        })
    );
    assert_eq!(r.result, failed(text));
}

#[test]
fn junk_lines_are_skipped() {
    let junk = [
        "",
        "   ",
        "not json at all",
        "{",
        "{\"type\":",
        "[1,2,3]",
        "null",
        "{\"type\":123}",
        "{\"type\":null}",
        "{\"no_type\":true}",
        "{\"type\":\"assistant\",\"message\":\"not an object\"}",
        "{\"type\":\"result\",\"usage\":[]}",
        "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":-1}}",
        "{\"type\":\"step_finish\",\"part\":{\"tokens\":{\"input\":1e400}}}",
        "{\"type\":\"item.completed\",\"item\":7}",
        "{\"type\":\"something_from_a_future_version\",\"x\":{}}",
        "\u{feff}\u{0}\u{1b}[31mred\u{1b}[0m ünïcödé 🦀",
    ];
    for adapter in Adapter::ALL.iter().copied() {
        let mut p = parser(adapter);
        for line in junk {
            let signals = p.feed_line_at(line, now());
            assert!(signals.is_empty(), "{adapter} on {line:?}: {signals:?}");
        }
    }
}

#[test]
fn a_huge_line_is_fine() {
    let blob = "x".repeat(20 << 20);
    let user = format!(
        r#"{{"type":"user","message":{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t","content":"{blob}"}}]}},"session_id":"s"}}"#
    );
    let assistant = format!(
        r#"{{"type":"assistant","message":{{"id":"m","content":[{{"type":"text","text":"{blob}"}}],"usage":{{"input_tokens":3,"output_tokens":4}}}},"session_id":"s"}}"#
    );
    let mut p = parser(Adapter::Claude);
    let mut r = RunReport::default();
    r.apply_all(&p.feed_line_at(&user, now()));
    r.apply_all(&p.feed_line_at(&assistant, now()));
    assert_eq!(r.session_id.as_deref(), Some("s"));
    assert_eq!(r.tokens, tokens(3, 4, 0, 0));
    let plain = format!("usage limit reached {blob}");
    for adapter in Adapter::ALL.iter().copied() {
        assert!(parser(adapter).feed_line_at(&plain, now()).is_empty());
    }
    let result_line =
        format!(r#"{{"type":"result","subtype":"success","result":"{blob}","is_error":false}}"#);
    let signals = parser(Adapter::Claude).feed_line_at(&result_line, now());
    let Some(Signal::Result(res)) = signals.last() else {
        panic!("no result in {signals:?}");
    };
    assert!(res.success);
    assert!(
        res.text.len() <= 8 * 1024 + 4,
        "result text is clipped to 8 KiB"
    );
}

#[test]
fn usage_limit_on_stderr_is_seen() {
    let mut p = parser(Adapter::Codex);
    let signals = p.feed_line_at(
        "ERROR: You've hit your usage limit. Try again in 30 minutes.",
        now(),
    );
    assert_eq!(
        signals,
        vec![Signal::UsageLimit(UsageLimit {
            message: "ERROR: You've hit your usage limit. Try again in 30 minutes.".into(),
            resets_at: Some(utc("2026-03-10T14:30:00+01:00")),
        })]
    );
    assert!(
        parser(Adapter::Command)
            .feed_line_at("You've hit your usage limit.", now())
            .is_empty()
    );
}

// ---------------------------------------------------------------- launch

const TRICKY: &str = "Fix \"login\" for O'Brien; $(rm -rf ~) `id` $HOME \\n\nnext line\t* | && ;";

fn input(adapter: Adapter) -> LaunchInput<'static> {
    LaunchInput {
        adapter,
        executable: None,
        // OpenCode refuses to run without a provider/model (see `opencode_needs_a_model`)
        model: (adapter == Adapter::Opencode).then_some("local/some-model"),
        effort: None,
        prompt: TRICKY,
        prompt_file: Path::new("/ws/.sf/runs/7/prompt.md"),
        resume_session: None,
        opencode_config: None,
    }
}

fn full(adapter: Adapter) -> LaunchInput<'static> {
    LaunchInput {
        model: Some("local/some-model"),
        effort: Some(Effort::High),
        resume_session: Some("sess-42"),
        ..input(adapter)
    }
}

fn build(i: &LaunchInput<'_>) -> Launch {
    launch(i).unwrap_or_else(|e| panic!("launch {}: {e}", i.adapter))
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn claude_argv() {
    let l = build(&input(Adapter::Claude));
    assert_eq!(l.program, "claude");
    assert_eq!(
        strs(&l.args),
        [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
            "--settings",
            l.args[6].as_str(),
            "--setting-sources",
            ""
        ]
    );
    // the guard's hook before every tool call, failing closed: any failure is exit 2
    let settings: serde_json::Value = serde_json::from_str(&l.args[6]).expect("JSON settings");
    let hook = &settings["hooks"]["PreToolUse"][0];
    assert_eq!(hook["matcher"], "*");
    let command = hook["hooks"][0]["command"].as_str().unwrap_or_default();
    assert!(
        command.contains("guard check") && command.ends_with("|| exit 2"),
        "{command}"
    );
    assert!(
        hook["hooks"][0]["timeout"].as_u64() > Some(2 * 3600),
        "outlasts the guard's deadline"
    );
    let l = build(&full(Adapter::Claude));
    assert_eq!(
        strs(&l.args)[9..],
        [
            "--model",
            "local/some-model",
            "--effort",
            "high",
            "--resume",
            "sess-42"
        ]
    );
}

#[test]
fn codex_argv() {
    let l = build(&input(Adapter::Codex));
    assert_eq!(l.program, "codex");
    assert_eq!(
        strs(&l.args),
        [
            "exec",
            "--json",
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check",
            "-c",
            "allow_login_shell=false",
            "--dangerously-bypass-hook-trust",
            "-c",
            "features.hooks=true",
            "-c",
            "features.unified_exec_tty=false",
            "-c",
            "hooks.PreToolUse=[{matcher=\"*\",hooks=[{type=\"command\",command=\"exec /bin/sh -c \
             '\\\"$SF_SFCTL\\\" guard check --cli codex --deadline 2h || { echo \\\"sf guard: the \
             call is blocked (guard check exited $?)\\\" >&2; exit 2; }'\",timeout=7800}]}]",
            "-c",
            "hooks.state={\"/<session-flags>/config.toml:pre_tool_use:0:0\"={enabled=true}}",
            "-"
        ]
    );
    let l = build(&full(Adapter::Codex));
    assert_eq!(
        strs(&l.args)[15..],
        [
            "--model",
            "local/some-model",
            "-c",
            "model_reasoning_effort=\"high\"",
            "resume",
            "sess-42",
            "-"
        ]
    );
}

#[test]
fn opencode_argv() {
    let l = build(&input(Adapter::Opencode));
    assert_eq!(l.program, "opencode");
    assert_eq!(
        strs(&l.args),
        ["run", "--format", "json", "--model", "local/some-model"]
    );
    // the guard: a plugin next to the prompt file, listed in OpenCode's config
    let plugin = Path::new("/ws/.sf/runs/7/prompt.sf-guard/sf-guard.js");
    assert_eq!(l.files.len(), 1, "{:?}", l.files);
    assert_eq!(l.files[0].0, plugin);
    let source = &l.files[0].1;
    assert!(
        source.contains("\"tool.execute.before\"") && source.contains("\"guard\", \"check\""),
        "{source}"
    );
    assert_eq!(
        opencode_config(&l),
        serde_json::json!({"plugin": ["file:///ws/.sf/runs/7/prompt.sf-guard/sf-guard.js"]})
    );
    let l = build(&full(Adapter::Opencode));
    assert_eq!(
        strs(&l.args)[3..],
        [
            "--model",
            "local/some-model",
            "--variant",
            "high",
            "--session",
            "sess-42"
        ]
    );
}

fn opencode_config(l: &Launch) -> serde_json::Value {
    let (_, text) = l
        .env
        .iter()
        .find(|(k, _)| k == "OPENCODE_CONFIG_CONTENT")
        .unwrap_or_else(|| panic!("OPENCODE_CONFIG_CONTENT is set: {:?}", l.env));
    serde_json::from_str(text).expect("JSON config")
}

/// The config sfd passes through keeps everything and gets sf's plugin last in its list;
/// one sf cannot add to is refused, rather than run OpenCode unguarded.
#[test]
fn opencode_guard_plugin_joins_the_config_passed_through() {
    let given = r#"{"provider": {"p": {"npm": "x"}}, "plugin": ["their-plugin@1"]}"#;
    let l = build(&LaunchInput {
        opencode_config: Some(given),
        prompt_file: Path::new("/w s/é/p.prompt.md"),
        ..input(Adapter::Opencode)
    });
    assert_eq!(
        opencode_config(&l),
        serde_json::json!({
            "provider": {"p": {"npm": "x"}},
            "plugin": ["their-plugin@1", "file:///w%20s/%C3%A9/p.prompt.sf-guard/sf-guard.js"]
        })
    );
    assert_eq!(
        l.files[0].0,
        Path::new("/w s/é/p.prompt.sf-guard/sf-guard.js")
    );
    for bad in ["{\"plugin\": \"x\"}", "[1]", "{// jsonc\n}"] {
        let e = launch(&LaunchInput {
            opencode_config: Some(bad),
            ..input(Adapter::Opencode)
        })
        .unwrap_err();
        assert!(
            matches!(e, AdapterError::OpencodeConfig { .. }),
            "{bad}: {e}"
        );
    }
    let l = build(&LaunchInput {
        opencode_config: Some(" "),
        ..input(Adapter::Opencode)
    });
    assert_eq!(
        opencode_config(&l)["plugin"].as_array().map(Vec::len),
        Some(1)
    );
    // the other adapters get no files and no OpenCode config
    for adapter in [Adapter::Claude, Adapter::Codex] {
        let l = build(&LaunchInput {
            opencode_config: Some(given),
            ..input(adapter)
        });
        assert!(l.files.is_empty(), "{adapter}");
        assert!(l.env.iter().all(|(k, _)| k != "OPENCODE_CONFIG_CONTENT"));
    }
}

/// OpenCode's calls, live: a call that ran (`completed`) is a call and its result, for the
/// owner to check against the guard's records; a blocked or refused call (`error`) ran not.
#[test]
fn opencode_live_tool_calls() {
    assert!(guarded(Adapter::Opencode) && guarded(Adapter::Claude));
    assert!(!guarded(Adapter::Codex) && !guarded(Adapter::Command));
    let ran = r#"{"type":"tool_use","timestamp":1,"sessionID":"ses_1","part":{"type":"tool","tool":"bash","callID":"call_7","state":{"status":"completed","input":{"command":"ls"},"output":"x"}}}"#;
    assert_eq!(
        live(Adapter::Opencode, ran),
        [
            Live::ToolUse {
                id: "call_7".into(),
                name: "bash".into()
            },
            Live::ToolResult {
                id: "call_7".into()
            }
        ]
    );
    let blocked = ran.replace(r#""status":"completed""#, r#""status":"error""#);
    assert!(live(Adapter::Opencode, &blocked).is_empty());
    for other in [
        r#"{"type":"text","part":{"text":"hi"}}"#,
        r#"{"type":"tool_use","part":{"tool":"bash","state":{"status":"completed"}}}"#,
        "not json",
    ] {
        assert!(live(Adapter::Opencode, other).is_empty(), "{other}");
    }
    // the recorded run's one call
    let calls: Vec<Live> = fixture("opencode/recorded/success.jsonl")
        .lines()
        .flat_map(|l| live(Adapter::Opencode, l))
        .collect();
    assert_eq!(
        calls.last(),
        Some(&Live::ToolResult {
            id: "call_0".into()
        })
    );
    assert!(live(Adapter::Codex, ran).is_empty());
}

/// With no model, OpenCode picks a hosted free model of a third party: refused.
#[test]
fn opencode_needs_a_model() {
    for model in [None, Some("some-model"), Some("/m"), Some("p/")] {
        let i = LaunchInput {
            model,
            ..input(Adapter::Opencode)
        };
        let e = launch(&i).unwrap_err();
        assert!(
            matches!(e, AdapterError::OpencodeModel { .. }),
            "{model:?}: {e}"
        );
        assert!(e.to_string().contains("--model PROVIDER/MODEL"), "{e}");
    }
}

#[test]
fn the_prompt_goes_to_stdin_verbatim_and_never_into_argv() {
    for adapter in Adapter::ALL.iter().copied() {
        let i = LaunchInput {
            executable: Some("'/opt/my agents/bin/run' --flag"),
            ..full(adapter)
        };
        let l = build(&i);
        assert_eq!(l.stdin.as_deref(), Some(TRICKY), "{adapter}");
        assert!(
            l.args
                .iter()
                .all(|a| !a.contains("rm -rf") && !a.contains("O'Brien")),
            "{adapter}: {:?}",
            l.args
        );
        assert_eq!(l.program, "/opt/my agents/bin/run", "{adapter}");
        assert_eq!(
            l.args.first().map(String::as_str),
            Some("--flag"),
            "{adapter}"
        );
        assert!(
            l.env.contains(&(
                "SF_PROMPT_FILE".to_owned(),
                "/ws/.sf/runs/7/prompt.md".to_owned()
            )),
            "{adapter}: {:?}",
            l.env
        );
    }
}

#[test]
fn command_adapter() {
    let err = launch(&input(Adapter::Command));
    assert!(matches!(err, Err(AdapterError::MissingCommand)), "{err:?}");
    let l = build(&LaunchInput {
        executable: Some("python3 -u agent.py --name \"w 1\""),
        ..full(Adapter::Command)
    });
    assert_eq!(l.program, "python3");
    assert_eq!(strs(&l.args), ["-u", "agent.py", "--name", "w 1"]);
    assert_eq!(l.stdin.as_deref(), Some(TRICKY));
    let env: Vec<(&str, &str)> = l
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("SF_MODEL", "local/some-model"),
            ("SF_EFFORT", "high"),
            ("SF_PROMPT_FILE", "/ws/.sf/runs/7/prompt.md")
        ]
    );
}

#[test]
fn values_that_would_read_as_options_are_refused() {
    for (model, session) in [
        (Some("--dangerously-do-anything"), None),
        (None, Some("-x")),
        (Some(""), None),
        (None, Some("a\nb")),
    ] {
        let i = LaunchInput {
            model,
            resume_session: session,
            ..input(Adapter::Claude)
        };
        assert!(
            matches!(launch(&i), Err(AdapterError::InvalidValue { .. })),
            "{model:?} {session:?}"
        );
    }
    let i = LaunchInput {
        executable: Some("'unterminated"),
        ..input(Adapter::Claude)
    };
    assert!(matches!(launch(&i), Err(AdapterError::BadCommand { .. })));
}

// ---------------------------------------------------------------- replay

/// Writes a fake CLI that records its argv and stdin next to itself and prints `fixture`.
fn fake_cli(dir: &Path, fixture: &Path) -> PathBuf {
    let script = dir.join("fake cli");
    let body = format!(
        "#!/bin/sh\n: > '{dir}/argv'; for a in \"$@\"; do printf '%s\\n' \"$a\" >> '{dir}/argv'; done\ncat > '{dir}/stdin'\nprintf '%s' \"$SF_PROMPT_FILE\" > '{dir}/prompt_file'\ncat '{fixture}'\n",
        dir = dir.display(),
        fixture = fixture.display(),
    );
    let mut f = std::fs::File::create(&script).expect("create script");
    f.write_all(body.as_bytes()).expect("write script");
    f.sync_all().expect("sync script");
    drop(f);
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

/// Runs a `Launch` the way the daemon does: argv, cleared environment, prompt on stdin.
fn run(l: &Launch) -> String {
    let spawn = || {
        Command::new(&l.program)
            .args(&l.args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(l.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
    };
    // A script written a moment ago can still be open in a child forked by another test thread.
    let mut child = loop {
        match spawn() {
            Err(e) if e.raw_os_error() == Some(26) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap_or_else(|e| panic!("spawn {}: {e}", l.program)),
        }
    };
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(l.stdin.as_deref().unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "fake cli failed: {:?}", out.status);
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn replay(adapter: Adapter, name: &str) -> RunReport {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = fake_cli(dir.path(), &fixture_path(name));
    let exe = format!("'{}'", script.display());
    let prompt_file = dir.path().join("prompt.md");
    std::fs::write(&prompt_file, TRICKY).expect("write prompt");
    let l = build(&LaunchInput {
        executable: Some(&exe),
        prompt_file: &prompt_file,
        ..full(adapter)
    });
    let stdout = run(&l);

    let argv = std::fs::read_to_string(dir.path().join("argv")).expect("argv");
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        strs(&l.args),
        "argv reached the CLI intact"
    );
    let stdin = std::fs::read_to_string(dir.path().join("stdin")).expect("stdin");
    assert_eq!(stdin, TRICKY, "the prompt reached the CLI byte for byte");
    let named = std::fs::read_to_string(dir.path().join("prompt_file")).expect("prompt_file");
    assert_eq!(std::fs::read_to_string(named).expect("prompt file"), TRICKY);

    let mut p = parser(adapter);
    let mut report = RunReport::default();
    for line in stdout.lines() {
        report.apply_all(&p.feed_line_at(line, now()));
    }
    report
}

#[test]
fn replayed_claude() {
    assert_eq!(
        replay(Adapter::Claude, "claude/recorded/success.jsonl"),
        report(Adapter::Claude, "claude/recorded/success.jsonl")
    );
    let r = replay(Adapter::Claude, "claude/usage_limit.jsonl");
    assert!(r.usage_limit.is_some_and(|l| l.resets_at.is_some()));
}

#[test]
fn replayed_codex() {
    let r = replay(Adapter::Codex, "codex/recorded/success.jsonl");
    assert_eq!(r, report(Adapter::Codex, "codex/recorded/success.jsonl"));
    assert_eq!(r.tool_calls, 1);
    let r = replay(Adapter::Codex, "codex/usage_limit.jsonl");
    assert!(r.usage_limit.is_some_and(|l| l.resets_at.is_some()));
}

#[test]
fn replayed_opencode() {
    let r = replay(Adapter::Opencode, "opencode/recorded/success.jsonl");
    assert_eq!(
        r,
        report(Adapter::Opencode, "opencode/recorded/success.jsonl")
    );
    assert!(r.result.is_some_and(|res| res.success));
}

#[test]
fn replayed_command_output_is_not_parsed() {
    let r = replay(Adapter::Command, "claude/success.jsonl");
    assert_eq!(r, RunReport::default());
}

#[test]
fn retries_and_error_notices_are_not_progress() {
    use sf_adapters::is_progress;
    let codex_retry = r#"{"type":"error","message":"Reconnecting... 2/5 (stream disconnected before completion)"}"#;
    assert!(!is_progress(Adapter::Codex, codex_retry));
    assert!(!is_progress(
        Adapter::Codex,
        "Reconnecting... waiting for network"
    ));
    assert!(!is_progress(Adapter::Claude, ""));
    assert!(is_progress(
        Adapter::Codex,
        r#"{"type":"item.completed","item":{"type":"agent_message","text":"hi"}}"#
    ));
    assert!(is_progress(
        Adapter::Claude,
        r#"{"type":"assistant","message":{}}"#
    ));
    // the `command` adapter's output is not read: every line counts
    assert!(is_progress(
        Adapter::Command,
        "Reconnecting to the build server"
    ));
}
