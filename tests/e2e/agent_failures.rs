//! How a run of an agent's CLI that fails is told apart and handled: a CLI that cannot
//! authenticate disables its agent (the task is not charged), a CLI that only retries is
//! stopped as stalled (charged), Claude Code under a root sfd is refused with the way out,
//! and nothing sfd inherited reaches a worker. The agent CLIs are played by the fake agent
//! printing the real CLIs' lines (`crates/sf-adapters/tests/fixtures`); the real CLIs run in
//! `real_cli`.

use std::fs;

use sf_proto::{AgentDetail, TaskStatus};

use crate::fleet::{fleet, script, wait_status, worker};

/// The error text Codex prints when the API refuses its key: longer than the 500 characters
/// a log line is cut to, so the note must quote it whole.
fn codex_401() -> String {
    format!(
        "unexpected status 401 Unauthorized: {{\"error\":{{\"message\":\"Incorrect API key provided: sk-test. {}END\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}}}",
        "You can find your API key at https://platform.openai.com/account/api-keys. ".repeat(8)
    )
}

#[test]
fn a_cli_that_cannot_authenticate_disables_its_agent_and_charges_no_task() {
    let td = fleet("max_attempts = 1");
    let a = td.create_task("first", &[]).task.id.to_string();
    let b = td.create_task("second", &[]).task.id.to_string();
    let error = serde_json::json!({"type": "error", "message": codex_401()}).to_string();
    let failed =
        serde_json::json!({"type": "turn.failed", "error": {"message": codex_401()}}).to_string();
    let s = script(
        &td,
        "w",
        &format!(
            "stdout {{\"type\":\"thread.started\",\"thread_id\":\"t-1\"}}\nstdout {error}\nstdout {failed}\nexit 1\n"
        ),
    );
    worker(&td, "x1", &s, &["--adapter", "codex"]);
    let agent = crate::fleet::wait_disabled(&td, "x1");
    // one run, not one per task: the agent is out of dispatch after the first
    assert_eq!(agent.runs.len(), 1, "{:?}", agent.runs);
    assert_eq!(agent.runs[0].outcome.as_deref(), Some("auth_failed"));
    let reason = agent.agent.disabled_reason.clone().unwrap_or_default();
    assert!(reason.contains("codex could not authenticate"), "{reason}");
    assert!(reason.contains("codex login"), "the fix: {reason}");
    assert!(reason.contains("END"), "the CLI's words in full: {reason}");
    let text = td.sfctl().args(["agent", "show", "x1"]).success();
    assert!(text.contains("disabled by sfd"), "{text}");
    let status = td.sfctl().args(["daemon", "status"]).success();
    assert!(
        status.contains("agent x1 was disabled by sfd: codex could not authenticate"),
        "{status}"
    );
    // no task was charged: both are open, with no attempt counted
    td.wait_for("the tasks to be open again", || {
        let ts: Vec<_> = [&a, &b].iter().map(|id| td.show_task(id)).collect();
        if ts.iter().all(|t| t.task.status == TaskStatus::Open) {
            Ok(())
        } else {
            Err(ts.iter().map(|t| t.task.status).collect::<Vec<_>>())
        }
    });
    let charged: Vec<_> = [&a, &b].iter().map(|id| td.show_task(id)).collect();
    assert!(charged.iter().all(|t| t.attempts == 0), "attempts counted");
    let ran = charged
        .iter()
        .find(|t| !t.runs.is_empty())
        .expect("one ran");
    let notes: Vec<&str> = ran.notes.iter().map(|n| n.text.as_str()).collect();
    let note = notes.join("\n");
    assert!(note.contains("could not authenticate"), "{note}");
    assert!(note.contains("END"), "the CLI's error in full: {note}");
    // a human fixes the login and enables it: the reason is gone
    let enabled: AgentDetail = td.sfctl().args(["agent", "enable", "x1"]).json();
    assert!(enabled.agent.disabled_reason.is_none());
}

#[test]
fn a_cli_that_only_retries_is_stopped_as_stalled_and_its_task_charged() {
    let td = fleet("max_attempts = 1\nstall_timeout = \"1s\"");
    let id = td.create_task("unreachable model", &[]).task.id.to_string();
    let retry = r#"{"type":"error","message":"Reconnecting... 1/5 (stream disconnected before completion)"}"#;
    let s = script(
        &td,
        "w",
        &format!(
            "write wip.txt half done\nstdout {{\"type\":\"thread.started\",\"thread_id\":\"t-2\"}}\n{}sleep 600000\n",
            format!("stdout {retry}\nsleep 100\n").repeat(3)
        ),
    );
    worker(&td, "x1", &s, &["--adapter", "codex"]);
    let t = wait_status(&td, &id, TaskStatus::Blocked);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("stalled"),
        "{:?}",
        t.runs
    );
    assert_eq!(t.attempts, 1);
    let note: Vec<&str> = t.notes.iter().map(|n| n.text.as_str()).collect();
    let note = note.join("\n");
    assert!(
        note.contains("no progress for 1s (stall_timeout)"),
        "{note}"
    );
    assert!(note.contains("refs/sf/wip/"), "its work saved: {note}");
}

#[test]
fn claude_code_under_a_root_sfd_is_refused_with_the_way_out() {
    let td = fleet("max_attempts = 1");
    let id = td.create_task("as root", &[]).task.id.to_string();
    let s = script(&td, "w", "write f.txt x\ncommit f\ncomplete\n");
    worker(&td, "c1", &s, &["--adapter", "claude"]);
    if !nix::unistd::geteuid().is_root() {
        // the legitimate path: an ordinary user's sfd runs it
        wait_status(&td, &id, TaskStatus::Review);
        return;
    }
    let agent = crate::fleet::wait_disabled(&td, "c1");
    let reason = agent.agent.disabled_reason.unwrap_or_default();
    assert!(
        reason.contains("as root") && reason.contains("IS_SANDBOX"),
        "{reason}"
    );
    let t = td.show_task(&id);
    assert_eq!(t.attempts, 0, "the task is not to blame");
}

#[test]
fn a_worker_gets_no_descriptor_sfd_inherited() {
    let mut td = crate::harness::TestDaemon::stopped();
    crate::fleet::configure(&td, "", "");
    // a descriptor without close-on-exec, as a careless parent would leave sfd
    let marker = td.root.join("inherited-marker");
    let file = fs::File::create(&marker).expect("marker");
    nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .expect("clear close-on-exec");
    td.spawn();
    drop(file);
    let id = td.create_task("list descriptors", &[]).task.id.to_string();
    let fds = td.root.join("fds.txt");
    let s = script(
        &td,
        "w",
        &format!("save-fds {}\ncomplete-no-changes\n", fds.display()),
    );
    worker(&td, "w1", &s, &[]);
    wait_status(&td, &id, TaskStatus::Closed);
    let listing = fs::read_to_string(&fds).expect("the worker listed its descriptors");
    assert!(
        !listing.contains("inherited-marker"),
        "sfd passed on what it inherited:\n{listing}"
    );
    let extra: Vec<&str> = listing
        .lines()
        .filter(|l| !["0 ", "1 ", "2 "].iter().any(|p| l.starts_with(p)))
        .filter(|l| !l.contains("/proc/"))
        .collect();
    assert!(extra.is_empty(), "descriptors beyond stdio: {extra:?}");
}

/// Codex's `turn.completed` usage: the thread's running total.
fn codex_turn(thread: &str, input: u64, output: u64) -> String {
    format!(
        "stdout {{\"type\":\"thread.started\",\"thread_id\":\"{thread}\"}}\n\
         stdout {{\"type\":\"turn.completed\",\"usage\":{{\"input_tokens\":{input},\"cached_input_tokens\":0,\"output_tokens\":{output}}}}}\n"
    )
}

#[test]
fn a_handed_off_task_continues_its_session_and_counts_its_tokens_once() {
    let td = fleet("resume_on_handoff = true");
    let id = td.create_task("two sittings", &[]).task.id.to_string();
    let args = td.root.join("args-2.txt");
    let s = script(
        &td,
        "w",
        &format!(
            "{}handoff half done\n--- next invocation\nsave-args {}\n{}complete-no-changes\n",
            codex_turn("thread-9", 100, 10),
            args.display(),
            codex_turn("thread-9", 150, 15),
        ),
    );
    worker(&td, "x1", &s, &["--adapter", "codex"]);
    wait_status(&td, &id, TaskStatus::Closed);
    let argv = fs::read_to_string(&args).expect("the second run saved its arguments");
    let argv: Vec<&str> = argv.lines().collect();
    assert!(
        argv.windows(2).any(|w| w == ["resume", "thread-9"]),
        "the second run resumes the first one's session: {argv:?}"
    );
    let t = td.wait_for("both runs to be recorded", || {
        let t = td.show_task(&id);
        if t.runs.len() == 2 && t.runs.iter().all(|r| r.usage.is_some()) {
            Ok(t)
        } else {
            Err(t.runs)
        }
    });
    // newest first; Codex reports the thread's total: the second run adds 50 and 5
    let second = t.runs[0].usage.as_ref().expect("usage");
    let first = t.runs[1].usage.as_ref().expect("usage");
    assert_eq!((first.input_tokens, first.output_tokens), (100, 10));
    assert_eq!((second.input_tokens, second.output_tokens), (50, 5));
}

#[test]
fn agent_start_resume_needs_a_task() {
    let td = fleet("");
    let s = crate::fleet::script(&td, "x1", "complete\n");
    crate::fleet::worker(&td, "x1", &s, &[]);
    // an ephemeral worker resumes a run on a task; a session resumes without one
    let err = td
        .sfctl()
        .args(["agent", "start", "x1", "--resume", "sess-7"])
        .fails(1);
    assert!(err.contains("--task"), "{err}");
}

/// With no model OpenCode falls back to a hosted free model of a third party: an OpenCode
/// agent is refused without `--model PROVIDER/MODEL`, and nothing is registered.
#[test]
fn an_opencode_agent_without_a_provider_model_is_refused() {
    let td = fleet("");
    for model in [None, Some("gpt-5")] {
        let mut args = vec![
            "agent",
            "register",
            "o1",
            "--role",
            "worker",
            "--adapter",
            "opencode",
            "--command",
            crate::fleet::FAKE,
        ];
        if let Some(m) = model {
            args.extend(["--model", m]);
        }
        let (err, _) = td.sfctl().args(&args).json_fails(1);
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("--model PROVIDER/MODEL"), "{err}");
        assert!(message.contains("hosted free model"), "{err}");
    }
    let agents: Vec<sf_proto::AgentSummary> = td.sfctl().args(["agent", "list"]).json();
    assert!(agents.is_empty());
    td.sfctl()
        .args([
            "agent",
            "register",
            "o1",
            "--role",
            "worker",
            "--adapter",
            "opencode",
            "--command",
            crate::fleet::FAKE,
            "--model",
            "anthropic/claude-sonnet-4-5",
        ])
        .success();
}
