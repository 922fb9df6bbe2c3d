//! The real agent CLIs run directly (not under `sfd`) against `sf-model-server`, as a
//! worker runs them: a temp git repository, a cleared environment with a temp `HOME`, the
//! prompt on stdin, the flags sf's adapters pass. Each CLI runs a scripted tool call that
//! commits, and its JSON stream ends in success; answered 401, it fails and says so.
//! `agents_env` holds what points each CLI at the server.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::agents_env::{Cli, CliRun, ModelServer, cli_env, run_cli, write_cli_config};

/// Far above a run's few seconds: only a CLI that hangs meets it.
const LIMIT: Duration = Duration::from_secs(120);

/// A repository with one commit, and a `HOME`, in `dir`.
fn repo_and_home(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (repo, home) = (dir.join("repo"), dir.join("home"));
    std::fs::create_dir_all(&home).expect("mkdir home");
    git2::Repository::init(&repo).expect("git init");
    crate::fleet::git(
        &repo,
        &[
            "-c",
            "user.name=sf",
            "-c",
            "user.email=sf@sf.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "initial",
        ],
    );
    (repo, home)
}

/// Runs `cli` against a server playing `script`, with the API key unless `key` is false,
/// and `extra` variables.
fn run(
    cli: Cli,
    script: &Value,
    key: bool,
    extra: &[(&str, &str)],
) -> (CliRun, ModelServer, tempfile::TempDir) {
    run_configured(cli, script, key, extra, "")
}

/// [`run`] with `user_config` added to Codex's `~/.codex/config.toml`.
fn run_configured(
    cli: Cli,
    script: &Value,
    key: bool,
    extra: &[(&str, &str)],
    user_config: &str,
) -> (CliRun, ModelServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, home) = repo_and_home(dir.path());
    let server = ModelServer::start(script);
    write_cli_config(cli, &server, &home);
    if !user_config.is_empty() {
        let path = home.join(".codex/config.toml");
        let text = std::fs::read_to_string(&path).expect("read codex config");
        std::fs::write(&path, format!("{text}{user_config}")).expect("write codex config");
    }
    let mut env = cli_env(cli, &server, &home);
    if !key {
        env.retain(|(k, _)| k != cli.key_var());
    }
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let out = run_cli(cli, &repo, &env, "Add a note and commit it.\n", LIMIT);
    (out, server, dir)
}

fn last_event(out: &CliRun) -> Value {
    out.events()
        .pop()
        .unwrap_or_else(|| panic!("no JSON line: {out:?}"))
}

fn commits(cli: Cli) {
    let script = json!([
        {"bash": "echo hi > note.txt && git add note.txt && git commit -qm note"},
        {"text": "all done"}
    ]);
    // Claude Code, Codex and OpenCode ask sf's guard before each call (their PreToolUse hook
    // or OpenCode's plugin run `"$SF_SFCTL" guard check`): outside sfd a guard that says yes
    // stands in for it
    let (out, server, dir) = run(cli, &script, true, &[("SF_SFCTL", "/bin/true")]);
    assert!(out.status.success(), "{out:?}");
    let subject = crate::fleet::git(&dir.path().join("repo"), &["log", "-1", "--format=%s"]);
    assert_eq!(subject.trim(), "note", "{out:?}");
    let last = last_event(&out);
    match cli {
        Cli::Claude => {
            assert_eq!(last["type"], "result", "{last}");
            assert_eq!(last["subtype"], "success", "{last}");
            assert_eq!(last["is_error"], false, "{last}");
            assert_eq!(last["result"], "all done", "{last}");
        }
        Cli::Codex => assert_eq!(last["type"], "turn.completed", "{last}"),
        Cli::Opencode => {
            assert_eq!(last["type"], "step_finish", "{last}");
            assert_eq!(last["part"]["reason"], "stop", "{last}");
        }
    }
    let played = server.played();
    assert_eq!(played.len(), 2, "one request per turn: {played:?}");
    let shell = match cli {
        Cli::Claude => "Bash",
        Cli::Codex => "exec_command",
        Cli::Opencode => "bash",
    };
    let tools = played[0]["tools"].as_array().cloned().unwrap_or_default();
    assert!(tools.contains(&json!(shell)), "{shell} offered: {tools:?}");
}

#[test]
fn claude_runs_a_tool_call_that_commits() {
    commits(Cli::Claude);
}

#[test]
fn codex_runs_a_tool_call_that_commits() {
    commits(Cli::Codex);
}

#[test]
fn opencode_runs_a_tool_call_that_commits() {
    commits(Cli::Opencode);
}

/// A guard that fails (exit 1), is missing, or cannot be found blocks the call, and the
/// model is told so: the tool's result is an error (Claude Code's `is_error`; OpenCode
/// sends the plugin's error as the tool's message, here what it says about sfctl).
fn blocks_the_call_when_the_guard_cannot_answer(cli: Cli) {
    let script = json!([
        {"bash": "echo hi > note.txt && git add note.txt && git commit -qm note"},
        {"text": "all done"}
    ]);
    for guard in ["/bin/false", "/nonexistent/sfctl", ""] {
        let (out, server, dir) = run(cli, &script, true, &[("SF_SFCTL", guard)]);
        let subject = crate::fleet::git(&dir.path().join("repo"), &["log", "-1", "--format=%s"]);
        assert_eq!(
            subject.trim(),
            "initial",
            "{guard:?}: the call ran: {out:?}"
        );
        let played = server.played();
        let told = played
            .get(1)
            .and_then(|p| p["last_user"].as_str())
            .unwrap_or_default();
        match cli {
            Cli::Claude => assert!(told.contains("is_error"), "{guard:?}: {told}"),
            // Codex blocks only on exit 2 with a reason: sf's hook gives one on any failure
            Cli::Codex => assert!(
                told.contains("Command blocked by PreToolUse hook")
                    && told.contains("sf guard: the call is blocked (guard check exited "),
                "{guard:?}: {told}"
            ),
            _ => {
                let told: Value = serde_json::from_str(told).unwrap_or_default();
                assert_eq!(told["role"], "tool", "{guard:?}: {told}");
                let text = told["content"].as_str().unwrap_or_default();
                let why = match guard {
                    "/bin/false" => "guard check exited with 1",
                    "" => "SF_SFCTL is not set",
                    _ => "cannot run /nonexistent/sfctl",
                };
                assert!(
                    text.starts_with("sf guard: the call is blocked") && text.contains(why),
                    "{guard:?}: {text}"
                );
            }
        }
    }
}

/// Claude Code runs a tool whose hook exits with anything but 2, or times out: sf's hook
/// turns every failure of the guard into 2.
#[test]
fn claude_blocks_the_call_when_the_guard_cannot_answer() {
    blocks_the_call_when_the_guard_cannot_answer(Cli::Claude);
}

/// OpenCode does not run a call whose plugin's `tool.execute.before` throws: sf's plugin
/// throws on anything but sfctl's exit 0.
#[test]
fn opencode_blocks_the_call_when_the_guard_cannot_answer() {
    blocks_the_call_when_the_guard_cannot_answer(Cli::Opencode);
}

/// OpenCode's plugin hands sfctl the call as Claude Code's hook would: the tool by Claude
/// Code's name, its input with Claude Code's keys, OpenCode's call id; a guard that says no
/// (exit 2, its reason on stderr) blocks the call and its reason is the model's tool result.
#[test]
fn opencode_asks_the_guard_with_the_call_and_passes_on_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seen = dir.path().join("seen.jsonl");
    let guard = dir.path().join("sfctl");
    std::fs::write(
        &guard,
        format!(
            "#!/bin/sh\n[ \"$*\" = 'guard check --deadline 2h' ] || exit 9\n\
             input=$(cat); printf '%s\\n' \"$input\" >> '{seen}'\n\
             case \"$input\" in *'git push'*) echo 'sf guard: do not push (deny)' >&2; exit 2;; esac\n",
            seen = seen.display()
        ),
    )
    .expect("write the guard");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&guard, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = json!([
        {"bash": "git push origin HEAD"},
        {"bash": "echo hi > note.txt && git add note.txt && git commit -qm note"},
        {"text": "all done"}
    ]);
    let sfctl = guard.display().to_string();
    let (out, server, run_dir) = run(Cli::Opencode, &script, true, &[("SF_SFCTL", &sfctl)]);
    assert!(out.status.success(), "{out:?}");
    let subject = crate::fleet::git(&run_dir.path().join("repo"), &["log", "-1", "--format=%s"]);
    assert_eq!(subject.trim(), "note", "the allowed call ran: {out:?}");
    let calls: Vec<Value> = std::fs::read_to_string(&seen)
        .expect("the guard was asked")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON on the guard's stdin"))
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0]["tool_name"], "Bash", "{calls:?}");
    assert_eq!(calls[0]["tool_input"]["command"], "git push origin HEAD");
    assert_eq!(calls[0]["tool_use_id"], "call_0");
    assert_eq!(calls[1]["tool_use_id"], "call_1");
    let played = server.played();
    let told: Value = serde_json::from_str(played[1]["last_user"].as_str().unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(
        (told["role"].as_str(), told["content"].as_str()),
        (Some("tool"), Some("sf guard: do not push (deny)")),
        "{played:?}"
    );
    // and the stream says the push ended in the guard's error, the commit completed
    let states: Vec<(String, String)> = out
        .events()
        .iter()
        .filter(|e| e["type"] == "tool_use")
        .map(|e| {
            let part = &e["part"];
            (
                part["callID"].as_str().unwrap_or_default().to_owned(),
                part["state"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("call_0".to_owned(), "error".to_owned()),
            ("call_1".to_owned(), "completed".to_owned())
        ]
    );
}

/// Codex runs a tool whose hook exits with anything but 2, exits 2 with nothing on stderr,
/// or times out: sf's hook turns every failure of the guard into 2 with a line on stderr
/// (a bare `|| exit 2`, as for Claude Code, lets `/bin/false` through).
#[test]
fn codex_blocks_the_call_when_the_guard_cannot_answer() {
    blocks_the_call_when_the_guard_cannot_answer(Cli::Codex);
}

/// The user's Codex config cannot turn sf's hook off: not with hooks off as a feature, not
/// with the hook's own state disabled. A guard that cannot answer still blocks the call.
#[test]
fn codex_keeps_the_guard_whatever_the_user_config_says() {
    let script = json!([
        {"bash": "echo hi > note.txt && git add note.txt && git commit -qm note"},
        {"text": "all done"}
    ]);
    for config in [
        "[features]\nhooks = false\n",
        "[features]\ncodex_hooks = false\n",
        "[hooks.state.\"/<session-flags>/config.toml:pre_tool_use:0:0\"]\nenabled = false\n",
    ] {
        let (out, _server, dir) = run_configured(
            Cli::Codex,
            &script,
            true,
            &[("SF_SFCTL", "/bin/false")],
            config,
        );
        let subject = crate::fleet::git(&dir.path().join("repo"), &["log", "-1", "--format=%s"]);
        assert_eq!(
            subject.trim(),
            "initial",
            "{config:?}: the call ran: {out:?}"
        );
    }
}

/// Codex's shell cannot be given commands past the hook: `write_stdin` (typing into a
/// process an earlier call started) runs no hook, so sf turns TTYs off, and a process's
/// stdin is then closed. The interactive shell is refused, the typed commit never happens.
#[test]
fn codex_cannot_type_commands_past_the_guard() {
    let script = json!([
        {"call": "exec_command", "arguments": {"cmd": "bash", "tty": true, "yield_time_ms": 1000}},
        {"call": "exec_command", "arguments": {"cmd": "sleep 3; read c; eval \"$c\"", "yield_time_ms": 500}},
        {"call": "write_stdin", "arguments": {"session_id": "$SESSION",
            "chars": "echo hi > note.txt && git add note.txt && git commit -qm note\n",
            "yield_time_ms": 5000}},
        {"text": "all done"}
    ]);
    let (out, server, dir) = run(Cli::Codex, &script, true, &[("SF_SFCTL", "/bin/true")]);
    let subject = crate::fleet::git(&dir.path().join("repo"), &["log", "-1", "--format=%s"]);
    assert_eq!(subject.trim(), "initial", "the typed command ran: {out:?}");
    let told: Vec<String> = server
        .played()
        .iter()
        .map(|p| p["last_user"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(told[1].contains("TTY execution is disabled"), "{told:#?}");
    assert!(told[3].contains("stdin is closed"), "{told:#?}");
}

/// What each CLI prints when the API answers 401, and that it exits non-zero. Claude Code
/// would retry a 401 ten times over about three minutes (`api_retry` lines): here it does
/// not (`CLAUDE_CODE_MAX_RETRIES=0`); Codex's retries are off in its config.
fn refused(cli: Cli) -> CliRun {
    let (out, _server, _dir) = run(
        cli,
        &json!([{"status": 401}]),
        true,
        &[("CLAUDE_CODE_MAX_RETRIES", "0")],
    );
    assert!(!out.status.success(), "{out:?}");
    out
}

#[test]
fn claude_refused_by_the_api_says_so() {
    let out = refused(Cli::Claude);
    let last = last_event(&out);
    assert_eq!(last["type"], "result", "{last}");
    assert_eq!(last["is_error"], true, "{last}");
    let text = last["result"].as_str().unwrap_or_default();
    assert!(text.contains("401") || text.contains("API key"), "{last}");
}

#[test]
fn codex_refused_by_the_api_says_so() {
    let out = refused(Cli::Codex);
    let last = last_event(&out);
    assert_eq!(last["type"], "turn.failed", "{last}");
    let text = last["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("401 Unauthorized"), "{last}");
    // and nothing else on stderr than its note about helper binaries under /tmp
    assert!(!out.log().contains("panicked"), "{}", out.log());
}

#[test]
fn opencode_refused_by_the_api_says_so() {
    let out = refused(Cli::Opencode);
    let last = last_event(&out);
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["error"]["data"]["statusCode"], 401, "{last}");
}

/// Claude Code with no API key and no login does not call the model: its stream says
/// `Not logged in · Please run /login` and it exits 1.
#[test]
fn claude_without_a_key_is_not_logged_in() {
    let (out, server, _dir) = run(Cli::Claude, &json!([{"text": "unused"}]), false, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let last = last_event(&out);
    assert_eq!(last["is_error"], true, "{last}");
    assert!(
        last["result"]
            .as_str()
            .is_some_and(|r| r.contains("Not logged in")),
        "{last}"
    );
    assert!(server.played().is_empty(), "{:?}", server.requests());
}
