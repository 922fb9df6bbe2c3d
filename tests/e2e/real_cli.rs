//! The real agent CLIs under `sfd`: Claude Code, Codex and OpenCode, pinned in
//! `tests/agents/` (installed by `npm install --prefix tests/agents --no-save`), each pointed at
//! `sf-model-server` on loopback, which plays a script of model turns. What a user depends
//! on: a worker finishes a task and its branch merges; a CLI that cannot authenticate takes
//! its agent out after one run and charges no task; a usage limit pauses the adapter across
//! a restart; a model that never answers is stopped after `stall_timeout`; a stream cut
//! mid-turn fails the run with the CLI's own words; a handed-off task continues its session.
//!
//! A missing CLI fails these tests with the install command: it is never a skip.

use std::fs;

use serde_json::{Value, json};
use sf_proto::TaskStatus;

use crate::agents_env::{
    Cli, ModelServer, OPENCODE_MODEL, codex_config, opencode_config_dir, provider_env,
};
use crate::fleet::wait_status;
use crate::harness::TestDaemon;

/// A workspace whose daemon points the CLIs at `base` (the server's `http://ADDR`), with
/// the API key granted as a secret when `key`. As root, Claude Code needs `IS_SANDBOX=1`,
/// passed through like a user on a sandbox machine would.
fn workspace(base: &str, key: bool, extra: &str) -> TestDaemon {
    workspace_with(base, key, extra, "")
}

/// [`workspace`] with `sandbox` lines in its `[sandbox]` table.
fn workspace_with(base: &str, key: bool, extra: &str, sandbox: &str) -> TestDaemon {
    let mut td = TestDaemon::stopped();
    crate::fleet::configure(
        &td,
        &format!(
            "env_passthrough = [\"ANTHROPIC_BASE_URL\", \"IS_SANDBOX\", \
             \"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC\", \"DISABLE_AUTOUPDATER\", \
             \"OPENCODE_CONFIG_CONTENT\", \"OPENCODE_DISABLE_AUTOUPDATE\", \
             \"OPENCODE_DISABLE_MODELS_FETCH\"]\n{extra}"
        ),
        "test_command = \"test -f README.md\"",
    );
    // the model calls `sfctl` by name: the one workers get must be called that (the tests'
    // build names it `sfctl-dup`)
    let bin = td.root.join("bin");
    fs::create_dir_all(&bin).expect("mkdir bin");
    std::os::unix::fs::symlink(crate::harness::SFCTL, bin.join("sfctl")).expect("symlink sfctl");
    let cfg = td.repo.join(".sf/config.toml");
    let text = fs::read_to_string(&cfg).expect("read config");
    let text = text.replacen(
        &format!("sfctl = \"{}\"", crate::harness::SFCTL),
        &format!("sfctl = \"{}\"", bin.join("sfctl").display()),
        1,
    );
    let text = text.replacen(
        "\n[secrets]\n",
        "\n[secrets]\nANTHROPIC_API_KEY = \"env:SF_TEST_KEY\"\nMOCK_API_KEY = \"env:SF_TEST_KEY\"\n",
        1,
    );
    fs::write(&cfg, text).expect("write config");
    if !sandbox.is_empty() {
        td.sandbox_mode(sandbox);
    }
    // Codex reads its provider from its own config, as a user would set it up
    let codex = td.home.join(".codex");
    fs::create_dir_all(&codex).expect("mkdir .codex");
    fs::write(codex.join("config.toml"), codex_config(base)).expect("write codex config");
    opencode_config_dir(&td.home);
    let mut env = provider_env(base);
    if key {
        env.push((
            "SF_TEST_KEY".to_owned(),
            crate::agents_env::API_KEY.to_owned(),
        ));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    td.spawn_with(&env);
    td
}

/// Registers worker `name` running the pinned `cli`, with the key when `key`.
fn register(td: &TestDaemon, name: &str, cli: Cli, key: bool) {
    let path = cli.path();
    let mut args: Vec<String> = [
        "agent",
        "register",
        name,
        "--role",
        "worker",
        "--adapter",
        cli.name(),
        "--command",
    ]
    .map(String::from)
    .into();
    args.push(path.display().to_string());
    if key {
        args.extend(["--secret".to_owned(), cli.key_var().to_owned()]);
    }
    if cli == Cli::Opencode {
        args.extend(["--model".to_owned(), OPENCODE_MODEL.to_owned()]);
    }
    td.sfctl().args(&args).success();
}

/// The task once every run of it has ended and recorded what its CLI reported (a worker
/// may still be exiting when its merged task closes).
fn runs_recorded(td: &TestDaemon, id: &str) -> sf_proto::TaskDetail {
    td.wait_for("every run to be recorded", || {
        let t = td.show_task(id);
        if t.runs
            .iter()
            .all(|r| r.ended_at.is_some() && r.usage.is_some())
        {
            Ok(t)
        } else {
            Err(t.runs)
        }
    })
}

/// A script that writes a file, commits it and completes the task, as a model would. It
/// calls `sfctl` by name, as models often do whatever the prompt says: the CLI's shell must
/// keep the `PATH` sfd gives (Codex's login shell did not).
fn finishing_script() -> Value {
    json!([
        {"bash": "echo 'written by the model' > model.txt && git add model.txt && git commit -qm 'add model.txt' && sfctl task complete --summary 'added model.txt'"},
        {"text": "Done: model.txt is committed and the task is complete."}
    ])
}

fn completes_and_merges(cli: Cli) {
    let server = ModelServer::start(&finishing_script());
    let td = workspace(&server.base_url(), true, "");
    finishes(&td, &server, cli);
}

/// With `[sandbox] mode = "full"` the CLI reaches its model only through sfd's egress
/// proxy (the model server named as each adapter's API host), logs in with what sfd copies
/// into its private HOME (Codex's config), and its work merges; each model request is an
/// allowed egress record.
fn completes_in_the_sandbox(cli: Cli) {
    let server = ModelServer::start(&finishing_script());
    let addr = &server.addr;
    // OpenCode, sandboxed, writes its step's tokens more than a second after the tool call
    // that completed the task (its snapshot of the worktree): room to exit on its own
    let td = workspace_with(
        &server.base_url(),
        true,
        "complete_grace = \"20s\"",
        &format!(
            "mode = \"full\"\n[sandbox.egress]\nclaude = [\"{addr}\"]\n\
             codex = [\"{addr}\"]\nopencode = [\"{addr}\"]"
        ),
    );
    finishes(&td, &server, cli);
    // the model's requests went through the proxy, allowed by the adapter's rule; whatever
    // else the CLI asked for (its telemetry, update checks) was denied
    let rule = format!("adapter:{}", cli.name());
    let records = td.wait_for("the model requests' egress records", || {
        let r: Vec<sf_proto::EgressRecord> = td.sfctl().args(["agent", "egress", "w1"]).json();
        if r.iter().any(|r| r.allowed && r.bytes_in > 0) {
            Ok(r)
        } else {
            Err(r)
        }
    });
    for r in &records {
        let to_model = format!("{}:{}", r.host, r.port) == *addr;
        assert_eq!(r.allowed, to_model, "{r:?}");
        assert_eq!(
            r.rule,
            if to_model { &rule } else { "default-deny" },
            "{r:?}"
        );
    }
}

#[test]
fn claude_code_completes_a_task_in_the_sandbox() {
    completes_in_the_sandbox(Cli::Claude);
}

#[test]
fn codex_completes_a_task_in_the_sandbox() {
    completes_in_the_sandbox(Cli::Codex);
}

#[test]
fn opencode_completes_a_task_in_the_sandbox() {
    completes_in_the_sandbox(Cli::Opencode);
}

/// Registers `w1` with `cli` and a merge steward; the task completes and merges.
fn finishes(td: &TestDaemon, server: &ModelServer, cli: Cli) {
    crate::fleet::steward(td);
    let id = td.create_task("add model.txt", &[]).task.id.to_string();
    register(td, "w1", cli, true);
    wait_status(td, &id, TaskStatus::Closed);
    let t = runs_recorded(td, &id);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("completed"),
        "{:?}",
        t.runs
    );
    let usage = t.runs[0].usage.clone().unwrap_or_default();
    assert!(usage.session_id.is_some(), "the CLI's session: {usage:?}");
    assert!(
        usage.input_tokens > 0,
        "tokens read from the stream: {usage:?}"
    );
    // the run's log as a transcript: the tool call, how it ended, the answer
    let shown = td.sfctl().args(["logs", &id]).success();
    assert!(shown.contains("▸ "), "{shown}");
    assert!(
        shown.contains("echo 'written by the model' > model.txt"),
        "{shown}"
    );
    assert!(shown.contains("  ✓ "), "{shown}");
    // the model's answer after `task complete` may be cut by complete_grace (seen with
    // OpenCode under load), so it is not required here; the adapters' tests read it
    assert!(shown.contains("tokens: "), "{shown}");
    let raw = td.sfctl().args(["logs", &id, "--raw"]).success();
    assert!(raw.lines().any(|l| l.starts_with("{\"type\"")), "{raw}");
    let merged = crate::fleet::git(&td.repo, &["show", "main:model.txt"]);
    assert_eq!(merged.trim(), "written by the model");
    let played = server.played();
    assert!(matches!(played.len(), 1 | 2), "{played:?}");
    assert!(played[0]["played"]["bash"].is_string(), "{played:?}");
}

#[test]
fn codex_completes_a_task_and_its_branch_merges() {
    completes_and_merges(Cli::Codex);
}

#[test]
fn claude_completes_a_task_and_its_branch_merges() {
    completes_and_merges(Cli::Claude);
}

#[test]
fn opencode_completes_a_task_and_its_branch_merges() {
    completes_and_merges(Cli::Opencode);
}

/// Two tasks, one agent that cannot authenticate: one run, the agent disabled with the
/// CLI's words and the fix, no task charged.
fn cannot_authenticate(cli: Cli, key: bool, fix: &str) {
    let server = ModelServer::start(&json!([{"status": 401}]));
    let td = workspace(&server.base_url(), key, "max_attempts = 1");
    let a = td.create_task("first", &[]).task.id.to_string();
    let b = td.create_task("second", &[]).task.id.to_string();
    register(&td, "w1", cli, key);
    let agent = crate::fleet::wait_disabled(&td, "w1");
    assert_eq!(agent.runs.len(), 1, "{:?}", agent.runs);
    assert_eq!(agent.runs[0].outcome.as_deref(), Some("auth_failed"));
    let reason = agent.agent.disabled_reason.unwrap_or_default();
    assert!(reason.contains("could not authenticate"), "{reason}");
    assert!(reason.contains(fix), "the fix: {reason}");
    td.wait_for("both tasks open again", || {
        let ts: Vec<_> = [&a, &b].iter().map(|id| td.show_task(id)).collect();
        if ts
            .iter()
            .all(|t| t.task.status == TaskStatus::Open && t.attempts == 0)
        {
            Ok(())
        } else {
            Err(ts
                .iter()
                .map(|t| (t.task.status, t.attempts))
                .collect::<Vec<_>>())
        }
    });
}

#[test]
fn claude_not_logged_in_disables_its_agent_after_one_run() {
    // no key and no login: Claude Code answers "Not logged in" without calling the model
    cannot_authenticate(Cli::Claude, false, "claude login");
}

#[test]
fn claude_refused_by_the_api_disables_its_agent_after_one_run() {
    // Claude Code retries a refused key ten times over minutes: sfd stops it at the first
    cannot_authenticate(Cli::Claude, true, "claude login");
}

#[test]
fn codex_refused_by_the_api_disables_its_agent_after_one_run() {
    cannot_authenticate(Cli::Codex, true, "codex login");
}

#[test]
fn opencode_refused_by_the_api_disables_its_agent_after_one_run() {
    cannot_authenticate(Cli::Opencode, true, "opencode auth login");
}

#[test]
fn a_codex_usage_limit_pauses_codex_across_a_restart() {
    let server = ModelServer::start(&json!([{"status": 429, "reset_secs": 5400}]));
    let mut td = workspace(&server.base_url(), true, "");
    let id = td.create_task("limited", &[]).task.id.to_string();
    register(&td, "w1", Cli::Codex, true);
    let t = td.wait_for("the run to end", || {
        let t = td.show_task(&id);
        match t.runs.first() {
            Some(r) if r.ended_at.is_some() && t.task.status == TaskStatus::Open => Ok(t),
            _ => Err((t.task.status, t.runs)),
        }
    });
    assert_eq!(t.runs[0].outcome.as_deref(), Some("usage_limited"));
    assert_eq!(t.attempts, 0);
    let st: sf_proto::DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    let until = *st.paused_adapters.get("codex").expect("codex is paused");
    let ahead = until - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::minutes(60),
        "paused until Codex's `try again at` time, about 90 minutes ahead: {until}"
    );
    td.restart();
    let st: sf_proto::DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert_eq!(st.paused_adapters.get("codex"), Some(&until));
    td.wait_ticks(3);
    assert_eq!(
        td.show_task(&id).runs.len(),
        1,
        "not dispatched to codex again"
    );
}

#[test]
fn a_codex_run_whose_model_never_answers_is_stopped_as_stalled() {
    let server = ModelServer::start(&json!([{"hang": true}]));
    let td = workspace(
        &server.base_url(),
        true,
        "max_attempts = 1\nstall_timeout = \"3s\"",
    );
    codex_stalls(&td);
}

#[test]
fn a_stream_cut_mid_turn_fails_the_run_with_the_clis_words() {
    let server = ModelServer::start(&json!([{"cut": true}]));
    let td = workspace(&server.base_url(), true, "max_attempts = 1");
    let id = td.create_task("cut off", &[]).task.id.to_string();
    register(&td, "w1", Cli::Codex, true);
    let t = wait_status(&td, &id, TaskStatus::Blocked);
    assert_eq!(t.runs[0].outcome.as_deref(), Some("failed"), "{:?}", t.runs);
    let notes: Vec<&str> = t.notes.iter().map(|n| n.text.as_str()).collect();
    let note = notes.join("\n");
    assert!(note.contains("codex said:"), "{note}");
    assert!(note.contains("stream"), "Codex's own words: {note}");
}

#[test]
fn a_codex_task_handed_off_continues_its_session() {
    let server = ModelServer::start(&json!([
        {"bash": "\"$SF_SFCTL\" task handoff --note 'half done, continue'"},
        {"text": "Handed off."},
        {"bash": "echo second > second.txt && git add second.txt && git commit -qm second && \"$SF_SFCTL\" task complete --summary 'finished'"},
        {"text": "Finished."}
    ]));
    let td = workspace(&server.base_url(), true, "resume_on_handoff = true");
    crate::fleet::steward(&td);
    let id = td.create_task("two sittings", &[]).task.id.to_string();
    register(&td, "w1", Cli::Codex, true);
    wait_status(&td, &id, TaskStatus::Closed);
    let t = runs_recorded(&td, &id);
    assert_eq!(t.runs.len(), 2, "{:?}", t.runs);
    let (second, first) = (&t.runs[0], &t.runs[1]);
    assert_eq!(first.outcome.as_deref(), Some("handed_off"));
    let session = |r: &sf_proto::RunSummary| r.usage.as_ref().and_then(|u| u.session_id.clone());
    assert!(session(first).is_some());
    assert_eq!(session(second), session(first), "the same Codex thread");
    let played = server.played();
    assert_eq!(played.len(), 4, "{played:?}");
    // the resumed run's first request carries the first run's conversation
    let messages = |r: &Value| r["messages"].as_u64().unwrap_or(0);
    assert!(messages(&played[2]) > messages(&played[1]), "{played:?}");
}

/// Codex with no network answers every refused connection with `Reconnecting... waiting for
/// network` and never exits: those notices are not progress, so `stall_timeout` stops it.
#[test]
fn a_codex_run_with_the_model_unreachable_is_stopped_as_stalled() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let td = workspace(
        &format!("http://{addr}"),
        true,
        "max_attempts = 1\nstall_timeout = \"3s\"",
    );
    // Codex's own retries, as a user has them (the other tests turn them off to be quick)
    let config = td.home.join(".codex/config.toml");
    let text = fs::read_to_string(&config).expect("codex config");
    let text = text.replace("request_max_retries = 0\nstream_max_retries = 0\n", "");
    fs::write(&config, text).expect("write codex config");
    codex_stalls(&td);
}

/// A Codex worker on a task, in a workspace with `max_attempts = 1`: stopped as stalled,
/// its one attempt charged, the task blocked.
fn codex_stalls(td: &TestDaemon) {
    let id = td
        .create_task("waits for its model", &[])
        .task
        .id
        .to_string();
    register(td, "w1", Cli::Codex, true);
    let t = wait_status(td, &id, TaskStatus::Blocked);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("stalled"),
        "{:?}",
        t.runs
    );
    assert_eq!(t.attempts, 1);
}

/// The CLI asks sfd about each tool call (Claude Code's pre-call hook, OpenCode's plugin):
/// the model's `git push` is denied by the default policy, the model receives the guard's
/// reason with the tool's result, the ledger records the call as denied (as `Bash`, with
/// the CLI's call id; and the next one as allowed), and the Trust Card counts it. The task
/// still completes.
fn denied_git_push(cli: Cli, call_ids: &str) {
    let server = ModelServer::start(&json!([
        {"bash": "git push origin HEAD"},
        {"bash": "echo 'written by the model' > model.txt && git add model.txt && git commit -qm 'add model.txt' && sfctl task complete --summary 'added model.txt'"},
        {"text": "Done."}
    ]));
    let td = workspace(&server.base_url(), true, "");
    let id = td.create_task("add model.txt", &[]).task.id.to_string();
    register(&td, "w1", cli, true);
    let t = wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(t.runs[0].agent, "w1");
    let played = server.played();
    assert!(played.len() >= 2, "{played:#?}");
    let told = played[1]["last_user"].as_str().unwrap_or_default();
    assert!(
        told.contains("do not push"),
        "the model's next request carries the guard's reason: {told}"
    );
    let calls: Vec<sf_proto::ToolCallRecord> =
        td.sfctl().args(["agent", "tool-calls", "w1"]).json();
    let push = calls
        .iter()
        .find(|c| c.summary == "git push origin HEAD")
        .unwrap_or_else(|| panic!("the push is in the ledger: {calls:#?}"));
    assert_eq!(
        (push.tool.as_str(), push.decision.as_str()),
        ("Bash", "deny")
    );
    assert_eq!(push.source, "hook");
    assert!(
        push.call_id
            .as_deref()
            .is_some_and(|c| c.starts_with(call_ids)),
        "{push:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.decision == "allow" && c.summary.contains("sfctl task complete")),
        "{calls:#?}"
    );
    let card: sf_proto::TrustCard = td.sfctl().args(["agent", "card", "w1"]).json();
    assert_eq!(card.denied, 1, "{card:?}");
    assert!(card.tool_calls >= 2, "{card:?}");
}

#[test]
fn codex_is_denied_git_push_by_the_guard_and_the_model_is_told_why() {
    denied_git_push(Cli::Codex, "call_");
}

#[test]
fn claude_code_is_denied_git_push_by_the_guard_and_the_model_is_told_why() {
    denied_git_push(Cli::Claude, "toolu");
}

#[test]
fn opencode_is_denied_git_push_by_the_guard_and_the_model_is_told_why() {
    // the scripted model's call ids
    denied_git_push(Cli::Opencode, "call_");
}

/// A CLI whose guard does not run (`wrapper`, a script that runs the CLI, leaves it out):
/// its first tool call comes back in its stream with no guard record, and sfd stops the run
/// as `guard_bypassed`, saves its work and records it.
fn guard_bypassed(cli: Cli, wrapper: &str) {
    let server = ModelServer::start(&json!([
        {"bash": "echo 'written by the model' > model.txt && git add model.txt && git commit -qm 'add model.txt'"},
        {"bash": "sfctl task complete --summary 'added model.txt'"},
        {"text": "Done."}
    ]));
    let td = workspace(&server.base_url(), true, "");
    let path = td.root.join(format!("{}-unguarded", cli.name()));
    fs::write(&path, wrapper).expect("write wrapper");
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    let id = td.create_task("add model.txt", &[]).task.id.to_string();
    let mut args: Vec<String> = [
        "agent",
        "register",
        "w1",
        "--role",
        "worker",
        "--adapter",
        cli.name(),
        "--secret",
        cli.key_var(),
        "--command",
    ]
    .map(String::from)
    .into();
    args.push(path.display().to_string());
    if cli == Cli::Opencode {
        args.extend(["--model".to_owned(), OPENCODE_MODEL.to_owned()]);
    }
    td.sfctl().args(&args).success();
    let t = crate::fleet::wait_first_run_ended(&td, &id);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("guard_bypassed"),
        "{:?}",
        t.notes
    );
    td.sfctl().args(["agent", "disable", "w1"]).success();
    let e = td
        .events(&[])
        .into_iter()
        .find(|e| e.action == "guard_bypassed")
        .expect("a guard_bypassed event");
    assert_eq!(e.actor, "agent:w1");
    let calls: Vec<sf_proto::ToolCallRecord> =
        td.sfctl().args(["agent", "tool-calls", "w1"]).json();
    assert_eq!(calls[0].decision, "bypassed", "{calls:#?}");
    assert_eq!(calls[0].source, "stream");
    // its work is kept: the commit the unguarded call made is on the task's branch
    let branch = t.branch.clone().expect("the task's branch");
    let kept = crate::fleet::git(&td.repo, &["show", &format!("{branch}:model.txt")]);
    assert_eq!(kept.trim(), "written by the model");
    assert_ne!(td.show_task(&id).task.status, TaskStatus::Review);
}

/// A Claude Code that runs no hooks (a wrapper drops sf's `--settings` and
/// `--setting-sources`, as a CLI that ignored them would).
#[test]
fn a_claude_run_whose_hooks_do_not_run_is_stopped_as_guard_bypassed() {
    guard_bypassed(
        Cli::Claude,
        &format!(
            "#!/bin/sh\n# sf's hook settings dropped: a Claude Code that runs no hooks\n\
             n=$#; skip=0\n\
             while [ $n -gt 0 ]; do\n  a=$1; shift; n=$((n-1))\n\
             \x20 if [ $skip = 1 ]; then skip=0; continue; fi\n\
             \x20 case \"$a\" in --settings|--setting-sources) skip=1; continue;; esac\n\
             \x20 set -- \"$@\" \"$a\"\ndone\n\
             exec {} \"$@\"\n",
            Cli::Claude.path().display()
        ),
    );
}

/// An OpenCode that loads no plugin (`OPENCODE_PURE=1`, as `--pure` sets it): OpenCode runs
/// on without a plugin it did not load (a missing file is only logged), so only the stream
/// says the guard was not asked.
#[test]
fn an_opencode_run_whose_guard_plugin_does_not_load_is_stopped_as_guard_bypassed() {
    guard_bypassed(
        Cli::Opencode,
        &format!(
            "#!/bin/sh\n# no external plugins: sf's guard is not loaded\n\
             OPENCODE_PURE=1 exec {} \"$@\"\n",
            Cli::Opencode.path().display()
        ),
    );
}

/// A Claude run with a token budget on its task: its usage streams in message by message,
/// and once it passes the limit the run is stopped mid-run (`budget_exhausted`), its work
/// kept, the task blocked rather than started again.
#[test]
fn a_claude_run_past_its_token_budget_is_stopped_mid_run() {
    let server = ModelServer::start(&json!([
        {"bash": "echo 'written by the model' > model.txt && git add model.txt && git commit -qm 'add model.txt'"},
        {"bash": "ls"},
        {"bash": "ls -la"},
        {"bash": "sfctl task complete --summary 'added model.txt'"},
        {"text": "Done."}
    ]));
    let td = workspace(&server.base_url(), true, "");
    let id = td.create_task("add model.txt", &[]).task.id.to_string();
    // the scripted model reports 100 input tokens more with each turn: 101, then 302
    td.sfctl()
        .args(["budget", "set", "--task", &id, "--tokens", "250"])
        .success();
    register(&td, "w1", Cli::Claude, true);
    let t = wait_status(&td, &id, TaskStatus::Blocked);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("budget_exhausted"),
        "{:?}",
        t.notes
    );
    assert_eq!(t.runs.len(), 1);
    assert!(
        server.played().len() < 4,
        "stopped before the end of its script"
    );
    let branch = t.branch.clone().expect("the task's branch");
    let kept = crate::fleet::git(&td.repo, &["show", &format!("{branch}:model.txt")]);
    assert_eq!(kept.trim(), "written by the model");
    assert!(
        td.events(&[])
            .iter()
            .any(|e| e.action == "budget_exhausted"),
        "a budget_exhausted event"
    );
}

/// A Claude run with a budget of model steps: each message of the model is a step, and
/// the run is stopped at the limit, its task blocked.
#[test]
fn a_claude_run_at_its_steps_budget_is_stopped() {
    let server = ModelServer::start(&json!([
        {"bash": "echo one > one.txt && git add one.txt && git commit -qm one"},
        {"bash": "ls"},
        {"bash": "ls -la"},
        {"bash": "sfctl task complete --summary 'done'"},
        {"text": "Done."}
    ]));
    let td = workspace(&server.base_url(), true, "");
    let id = td
        .create_task("three steps at most", &[])
        .task
        .id
        .to_string();
    td.sfctl()
        .args(["budget", "set", "--task", &id, "--steps", "2"])
        .success();
    register(&td, "w1", Cli::Claude, true);
    let t = wait_status(&td, &id, TaskStatus::Blocked);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("budget_exhausted"),
        "{:?}",
        t.notes
    );
    let shown: Vec<sf_proto::BudgetInfo> =
        td.sfctl().args(["budget", "show", "--task", &id]).json();
    assert!(shown[0].used.steps >= 2, "{shown:?}");
    assert!(
        shown[0]
            .exhausted
            .as_deref()
            .is_some_and(|e| e.contains("steps")),
        "{shown:?}"
    );
}

/// A persistent worker's session with the real CLI: its first turn, a message sent to it
/// that the model receives as the next user turn in the same conversation (the CLI's
/// session resumed), its `sfctl merge` landing; then a new session `--resume`d from the
/// first, whose first request carries the earlier conversation.
fn a_session_takes_turns_and_resumes(cli: Cli) {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = dir.path().join("gate");
    let server = ModelServer::start(&json!([
        {"text": "Ready for instructions."},
        {"bash": format!("while [ ! -e {} ]; do sleep 0.05; done; echo ok > health.txt && echo hi > README.md && git add health.txt README.md && git commit -qm health && sfctl merge --no-wait", gate.display())},
        {"text": "The health endpoint is merged."},
        {"text": "A readme is there already."},
        {"text": "I remember the health endpoint."}
    ]));
    let td = workspace(&server.base_url(), true, "");
    crate::fleet::steward(&td);
    let path = cli.path();
    let mut args: Vec<String> = [
        "agent",
        "register",
        "p1",
        "--role",
        "worker",
        "--mode",
        "persistent",
        "--adapter",
        cli.name(),
        "--command",
    ]
    .map(String::from)
    .into();
    args.push(path.display().to_string());
    args.extend(["--secret".to_owned(), cli.key_var().to_owned()]);
    if cli == Cli::Opencode {
        args.extend(["--model".to_owned(), OPENCODE_MODEL.to_owned()]);
    }
    td.sfctl().args(&args).success();
    let sessions = |td: &TestDaemon| -> Vec<sf_proto::SessionInfo> {
        td.sfctl().args(["agent", "sessions", "p1"]).json()
    };
    // a real CLI's turn takes seconds (OpenCode's start most), more on a loaded machine
    let slow = std::time::Duration::from_secs(90);
    let wait_turns = |n: u32| {
        crate::harness::eventually(&format!("turn {n} to end"), slow, || {
            let s = sessions(&td).remove(0);
            (s.turns >= n && !s.running).then_some(s)
        })
    };
    let first: sf_proto::SessionInfo = td.sfctl().args(["agent", "start", "p1"]).json();
    let s = wait_turns(1);
    assert!(
        s.provider_session.is_some(),
        "the CLI reported its session: {s:?}"
    );
    td.sfctl()
        .args(["message", "send", "--to", "p1", "--type", "task-assignment"])
        .arg("add the health endpoint and merge it")
        .success();
    // while the model works on it, another message: it is the next turn's input
    crate::harness::eventually("turn 2 to run", slow, || {
        let s = sessions(&td).remove(0);
        (s.turns == 2 && s.running).then_some(())
    });
    td.sfctl()
        .args(["message", "send", "--to", "p1", "and a readme too"])
        .success();
    fs::write(&gate, "go").expect("open the gate");
    wait_turns(3);
    td.wait_for("the session's merge to land", || {
        match crate::fleet::mrs(&td)
            .into_iter()
            .find(|m| m.branch == first.branch)
        {
            Some(m) if m.state == sf_proto::MergeState::Merged => Ok(()),
            other => Err(other.map(|m| (m.state, m.reason))),
        }
    });
    let played = server.played();
    let text = |r: &Value| r["last_user"].as_str().unwrap_or("").to_owned();
    let messages = |r: &Value| r["messages"].as_u64().unwrap_or(0);
    assert!(
        text(&played[1]).contains("add the health endpoint"),
        "{played:?}"
    );
    assert!(
        messages(&played[1]) > messages(&played[0]),
        "the same conversation: {played:?}"
    );
    assert!(
        text(&played[3]).contains("and a readme too"),
        "the next turn: {played:?}"
    );
    assert!(messages(&played[3]) > messages(&played[2]), "{played:?}");
    // a new session resumed from the first carries its context
    let provider = sessions(&td)[0].provider_session.clone().unwrap();
    td.sfctl().args(["agent", "stop", "p1"]).success();
    td.sfctl().args(["agent", "enable", "p1"]).success();
    let resumed: sf_proto::SessionInfo = td
        .sfctl()
        .args(["agent", "start", "p1", "--resume", &provider])
        .json();
    assert_eq!(resumed.resumed_from.as_deref(), Some(provider.as_str()));
    wait_turns(1);
    let played = server.played();
    let last = played.last().expect("a request");
    assert!(messages(last) > messages(&played[0]), "{played:?}");
}

#[test]
fn a_claude_code_session_takes_turns_and_resumes() {
    a_session_takes_turns_and_resumes(Cli::Claude);
}

#[test]
fn a_codex_session_takes_turns_and_resumes() {
    a_session_takes_turns_and_resumes(Cli::Codex);
}

#[test]
fn an_opencode_session_takes_turns_and_resumes() {
    a_session_takes_turns_and_resumes(Cli::Opencode);
}
