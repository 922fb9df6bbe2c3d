//! Dispatch: ephemeral workers (the scripted fake agent) in git worktrees, complete and
//! handoff, limits, faults, stale leases and restarts.
//!
//! Size: each test here is one end-to-end scenario of this capability, with its own
//! workspace; they are kept together so that a capability's tests read as one list, and
//! share their helpers without a module of their own.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use sf_proto::{DaemonStatus, LogRef, TaskStatus};

use crate::fleet::{fleet, git, script, wait_status, worker};
use crate::harness::eventually;

#[test]
fn a_worker_completes_its_task_in_its_own_worktree() {
    let td = fleet("");
    let title = "Fix \"quotes\" $(rm -rf /) `x` ünïcödé ✓";
    let t = td.create_task(title, &["-d", "make it so", "--acceptance", "it is so"]);
    let id = t.task.id.to_string();
    let s = script(
        &td,
        "w",
        &format!(
            "expect-cwd-is-worktree\nexpect-env SF_TASK_ID={id}\nexpect-env SF_AGENT=w1\n\
             expect-env SF_TARGET_BRANCH=main\nexpect-prompt-contains it is so\n\
             expect-prompt-contains \"$SF_SFCTL\" task complete\n\
             write feature.txt done\ncommit add feature\nwrite leftover.txt uncommitted\ncomplete all done\n"
        ),
    );
    worker(&td, "w1", &s, &[]);
    let done = wait_status(&td, &id, TaskStatus::Review);
    let branch = done.branch.clone().expect("branch");
    assert!(
        branch.starts_with(&format!("agent/w1/{id}-fix-quotes-rm-rf")),
        "{branch}"
    );
    let wt = PathBuf::from(done.worktree.clone().expect("worktree"));
    assert!(
        wt.ends_with(format!("{id}-fix-quotes-rm-rf-x-n-c-d"))
            || wt.to_string_lossy().contains(&id),
        "{wt:?}"
    );
    // the committed work and what the worker left uncommitted are both on the branch
    let files = git(&td.repo, &["ls-tree", "--name-only", &branch]);
    assert!(
        files.contains("feature.txt") && files.contains("leftover.txt"),
        "{files}"
    );
    assert_eq!(
        git(
            &td.repo,
            &["rev-list", "--count", &format!("main..{branch}")]
        ),
        "2"
    );
    // the user's checkout is untouched
    assert!(!td.repo.join("feature.txt").exists());
    assert_eq!(done.notes.iter().filter(|n| n.kind == "summary").count(), 1);
    let runs = td.wait_for("the run to end", || {
        let t = td.show_task(&id);
        if t.runs.first().is_some_and(|r| r.ended_at.is_some()) {
            Ok(t.runs)
        } else {
            Err(t.runs)
        }
    });
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].outcome.as_deref(), Some("completed"));
    assert_eq!(runs[0].exit_code, Some(0));
    let mrs: Vec<sf_proto::MergeRequestInfo> = td.sfctl().args(["mr", "list"]).json();
    assert_eq!(mrs.len(), 1, "{mrs:?}");
    assert_eq!(mrs[0].branch, branch);
}

#[test]
fn priority_and_dependency_order_with_one_worker() {
    let td = fleet("");
    let order = td.root.join("order.txt");
    let high = td.create_task("high", &["-p", "2"]).task.id.to_string();
    let mid = td.create_task("mid", &["-p", "3"]).task.id.to_string();
    let low = td.create_task("low", &["-p", "4"]).task.id.to_string();
    let urgent = td
        .create_task("urgent", &["-p", "1", "--blocked-by", &low])
        .task
        .id
        .to_string();
    let mut text = String::new();
    for t in ["high", "mid", "low", "urgent"] {
        text.push_str(&format!(
            "--- for {t}\nappend {} {t}\\n\nwrite {t}.txt x\ncommit {t}\ncomplete\n",
            order.display()
        ));
    }
    let s = script(&td, "w", &text);
    worker(&td, "w1", &s, &[]);
    for id in [&high, &mid, &low] {
        wait_status(&td, id, TaskStatus::Review);
    }
    // `low` blocks a priority-1 task: its effective priority is 1, so it goes first
    let got = fs::read_to_string(&order).expect("order");
    assert_eq!(got.lines().collect::<Vec<_>>(), ["low", "high", "mid"]);
    // a blocker in review still blocks: `urgent` waits until `low` is closed
    let waiting = td.show_task(&urgent);
    assert_eq!(waiting.task.status, TaskStatus::Open);
    assert!(
        waiting
            .waiting
            .iter()
            .any(|w| w.contains(&low) && w.contains("review")),
        "{:?}",
        waiting.waiting
    );
    td.sfctl()
        .args(["task", "close", &low, "--reason", "merged by hand"])
        .success();
    wait_status(&td, &urgent, TaskStatus::Review);
    let got = fs::read_to_string(&order).expect("order");
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        ["low", "high", "mid", "urgent"]
    );
}

#[test]
fn skills_and_limits() {
    let td = fleet("max_workers = 2");
    let gate = td.root.join("go");
    let s = script(
        &td,
        "w",
        &format!(
            "wait-file {}\nwrite f.txt x\ncommit f\ncomplete\n",
            gate.display()
        ),
    );
    let rust = td
        .create_task("needs rust", &["--skill", "Rust"])
        .task
        .id
        .to_string();
    let go = td
        .create_task("needs go", &["--skill", "go"])
        .task
        .id
        .to_string();
    let any: Vec<String> = (0..3)
        .map(|i| td.create_task(&format!("any {i}"), &[]).task.id.to_string())
        .collect();
    worker(&td, "rusty", &s, &["--skills", "RUST"]);
    worker(&td, "plain", &s, &[]);
    worker(&td, "plain2", &s, &[]);
    // at most max_workers run at once, and never the task nobody has the skill for
    let status: DaemonStatus = td.wait_for("two workers running", || {
        let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
        if st.running_workers == 2 {
            Ok(st)
        } else {
            Err(st.running_workers)
        }
    });
    assert_eq!(status.running_workers, 2);
    td.wait_ticks(3);
    let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert_eq!(st.running_workers, 2, "max_workers = 2 is a hard limit");
    let r = td.show_task(&rust);
    assert!(matches!(
        r.task.status,
        TaskStatus::InProgress | TaskStatus::Open
    ));
    if let Some(a) = &r.task.assignee {
        assert_eq!(a, "rusty", "only rusty has the rust skill");
    }
    fs::write(&gate, "").expect("open the gate");
    wait_status(&td, &rust, TaskStatus::Review);
    for id in &any {
        wait_status(&td, id, TaskStatus::Review);
    }
    let r = td.show_task(&rust);
    assert_eq!(r.runs[0].agent, "rusty");
    let g = td.show_task(&go);
    assert_eq!(g.task.status, TaskStatus::Open, "nobody can take it");
    assert!(g.runs.is_empty());
}

#[test]
fn handoff_resumes_in_the_same_worktree_with_the_note_in_the_prompt() {
    let td = fleet("");
    let id = td.create_task("two steps", &[]).task.id.to_string();
    let s = script(
        &td,
        "w",
        "write step1.txt one\nhandoff did step one; step two is left\n\
         --- next invocation\n\
         expect-file step1.txt\nexpect-prompt-contains did step one; step two is left\n\
         write step2.txt two\ncommit both steps\ncomplete\n",
    );
    worker(&td, "w1", &s, &[]);
    let done = wait_status(&td, &id, TaskStatus::Review);
    let handoffs: Vec<_> = done.notes.iter().filter(|n| n.kind == "handoff").collect();
    assert_eq!(handoffs.len(), 1, "{:?}", done.notes);
    let runs = td.wait_for("both runs to end", || {
        let t = td.show_task(&id);
        if t.runs.len() == 2 && t.runs.iter().all(|r| r.ended_at.is_some()) {
            Ok(t.runs)
        } else {
            Err(t.runs)
        }
    });
    let outcomes: Vec<_> = runs
        .iter()
        .rev()
        .map(|r| r.outcome.clone().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["handed_off", "completed"]);
    assert_eq!(runs[0].epoch, 2);
    assert_eq!(done.attempts, 0, "a handoff is not a failure");
    let branch = done.branch.expect("branch");
    let files = git(&td.repo, &["ls-tree", "--name-only", &branch]);
    assert!(
        files.contains("step1.txt") && files.contains("step2.txt"),
        "{files}"
    );
}

#[test]
fn a_crashing_worker_leaves_the_task_safe_and_it_gets_stuck_after_max_attempts() {
    let td = fleet("max_attempts = 2");
    let id = td.create_task("crashy", &[]).task.id.to_string();
    let s = script(
        &td,
        "w",
        "write half.txt half done\nstderr something broke\nexit 3\n",
    );
    worker(&td, "w1", &s, &[]);
    let first = td.wait_for("the first failure", || {
        let t = td.show_task(&id);
        if t.attempts == 1 && t.task.status == TaskStatus::Open {
            Ok(t)
        } else {
            Err((t.task.status, t.attempts))
        }
    });
    assert!(first.retry_at.is_some(), "failed runs back off");
    let note = &first
        .notes
        .iter()
        .find(|n| n.kind == "handoff")
        .expect("a handoff note")
        .text;
    assert!(
        note.contains("exit code 3") && note.contains("something broke"),
        "{note}"
    );
    // the run table says how the run ended, from the same note
    assert_eq!(first.runs[0].error.as_ref(), Some(note), "{:?}", first.runs);
    let shown = td.sfctl().args(["task", "show", &id]).success();
    assert!(
        shown.lines().any(|l| l.contains(" failed ")
            && l.ends_with("the worker exited (exit code 3) without completing or handing off")),
        "{shown}"
    );
    // the uncommitted work was saved to a WIP ref and the branch
    let wip = git(
        &td.repo,
        &["ls-tree", "--name-only", &format!("refs/sf/wip/{id}/1")],
    );
    assert!(wip.contains("half.txt"), "{wip}");
    let branch = first.branch.clone().expect("branch");
    assert!(git(&td.repo, &["ls-tree", "--name-only", &branch]).contains("half.txt"));
    // after the backoff the second run fails too: blocked, with a task_stuck event
    let stuck = td.wait_for("the task to get stuck", || {
        let t = td.show_task(&id);
        if t.task.status == TaskStatus::Blocked {
            Ok(t)
        } else {
            Err((t.task.status, t.attempts, t.retry_at))
        }
    });
    assert_eq!(stuck.attempts, 2);
    assert!(
        stuck.events.iter().any(|e| e.action == "task_stuck"),
        "{:?}",
        stuck.events
    );
    let blocked = td.sfctl().args(["task", "blocked"]).success();
    assert!(blocked.contains(&id), "{blocked}");
}

#[test]
fn a_hanging_worker_is_stopped_at_its_wall_time_with_its_grandchildren() {
    let td = fleet("max_attempts = 1");
    let id = td.create_task("hangs", &[]).task.id.to_string();
    let pidfile = td.root.join("grandchild.pid");
    let s = script(
        &td,
        "w",
        &format!(
            "ignore-sigterm\nspawn-grandchild 60000 {}\nwrite wip.txt x\nsleep 60000\n",
            pidfile.display()
        ),
    );
    worker(&td, "w1", &s, &["--max-runtime", "1s"]);
    let t = wait_status(&td, &id, TaskStatus::Blocked);
    let run = &t.runs[0];
    assert_eq!(run.outcome.as_deref(), Some("timed_out"), "{run:?}");
    let grandchild: i32 = fs::read_to_string(&pidfile)
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid");
    eventually("the grandchild to be gone", Duration::from_secs(10), || {
        let stat = fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        (stat.is_empty() || stat.contains(") Z ")).then_some(())
    });
    assert!(
        git(
            &td.repo,
            &["ls-tree", "--name-only", &format!("refs/sf/wip/{id}/1")]
        )
        .contains("wip.txt")
    );
}

#[test]
fn agent_stop_really_stops_the_group_and_a_stale_lease_is_refused() {
    let td = fleet("");
    let id = td.create_task("long", &[]).task.id.to_string();
    let token = td.root.join("token1");
    let s = script(
        &td,
        "w",
        &format!(
            "save-env SF_RUN {}\nsleep 60000\n--- next invocation\nwrite f.txt x\ncommit f\ncomplete\n",
            token.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    td.wait_for("the first run to start", || {
        if token.exists() { Ok(()) } else { Err(()) }
    });
    let out = td.sfctl().args(["agent", "stop", "w1"]).success();
    assert!(out.contains("disabled"), "{out}");
    let t = td.wait_for("the run to be stopped", || {
        let t = td.show_task(&id);
        if t.task.status == TaskStatus::Open && t.runs.first().is_some_and(|r| r.ended_at.is_some())
        {
            Ok(t)
        } else {
            Err(t.runs)
        }
    });
    assert_eq!(t.runs[0].outcome.as_deref(), Some("stopped"));
    assert_eq!(t.attempts, 0, "a stop by a human is not a failed attempt");
    td.sfctl().args(["agent", "enable", "w1"]).success();
    wait_status(&td, &id, TaskStatus::Review);
    // the first run's lease is stale: it can neither complete nor hand off
    let old = fs::read_to_string(&token).expect("token");
    let err = td
        .sfctl()
        .env("SF_RUN", old.trim())
        .args(["task", "complete"])
        .fails(1);
    assert!(err.contains("lease"), "{err}");
    let err = td
        .sfctl()
        .env("SF_RUN", old.trim())
        .args(["task", "handoff", "--note", "x"])
        .fails(1);
    assert!(err.contains("lease"), "{err}");
    assert_eq!(
        td.show_task(&id).task.status,
        TaskStatus::Review,
        "nothing changed"
    );
}

#[test]
fn complete_refuses_a_branch_without_commits_unless_no_changes() {
    let td = fleet("");
    let a = td.create_task("nothing to do", &[]).task.id.to_string();
    let s = script(&td, "w", "sfctl-fails task complete\ncomplete-no-changes\n");
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &a, TaskStatus::Closed);
    assert_eq!(t.close_reason.as_deref(), Some("nothing to merge"));
}

#[test]
fn logs_of_a_run_are_kept_and_shown() {
    let td = fleet("");
    let id = td.create_task("chatty", &[]).task.id.to_string();
    let s = script(
        &td,
        "w",
        "stdout hello from the worker\nwrite f.txt x\ncommit f\ncomplete\n",
    );
    worker(&td, "w1", &s, &[]);
    wait_status(&td, &id, TaskStatus::Review);
    let out = td.sfctl().args(["logs", &id]).success();
    assert!(out.starts_with("hello from the worker\n"), "{out}");
    // a `command` agent's log has no format to render: shown as it is, as with --raw
    let raw = td.sfctl().args(["logs", &id, "--raw"]).success();
    assert_eq!(out, raw);
    let refs: Vec<LogRef> = td.sfctl().args(["logs", "w1"]).json();
    assert_eq!(refs.len(), 1);
    assert!(refs[0].path.contains(".sf/logs/"), "{refs:?}");
    assert_eq!(
        refs[0].adapter,
        Some(sf_proto::Adapter::Command),
        "{refs:?}"
    );
}

#[test]
fn the_log_of_a_cli_run_reads_as_a_transcript_and_raw_as_json_lines() {
    let td = fleet("");
    let id = td.create_task("transcript", &[]).task.id.to_string();
    // what Codex writes on stdout (`codex exec --json`), then the worker's own sfctl
    let lines = [
        r#"{"type":"thread.started","thread_id":"t-1"}"#,
        r#"{"type":"item.started","item":{"id":"i1","type":"command_execution","command":"bash -lc 'git commit -qm note'","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#,
        r#"{"type":"item.completed","item":{"id":"i1","type":"command_execution","command":"bash -lc 'git commit -qm note'","aggregated_output":"[agent 1a2b3c4] note","exit_code":0,"status":"completed"}}"#,
        r#"{"type":"item.completed","item":{"id":"i2","type":"agent_message","text":"Done: note.txt is committed."}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}"#,
    ];
    let stdout: String = lines.iter().map(|l| format!("stdout {l}\n")).collect();
    let s = script(
        &td,
        "w",
        &format!("write note.txt x\ncommit note\n{stdout}stderr a warning on stderr\ncomplete\n"),
    );
    worker(&td, "x1", &s, &["--adapter", "codex"]);
    wait_status(&td, &id, TaskStatus::Review);
    let shown = td.sfctl().args(["logs", &id]).success();
    let expected = "\
▸ shell  bash -lc 'git commit -qm note'
  ✓ [agent 1a2b3c4] note

Done: note.txt is committed.

  tokens: 24,763 in · 122 out
a warning on stderr
";
    assert!(shown.starts_with(expected), "{shown}");
    assert!(!shown.contains("{\""), "no JSON left: {shown}");
    let raw = td.sfctl().args(["logs", &id, "--raw"]).success();
    assert!(raw.starts_with(&format!("{}\n", lines[0])), "{raw}");
    assert!(raw.contains(lines[4]), "{raw}");
}

#[test]
fn kill_9_of_the_daemon_with_workers_in_flight_then_restart() {
    let mut td = fleet("max_workers = 10");
    let gate = td.root.join("go");
    let ids: Vec<String> = (0..10)
        .map(|i| {
            td.create_task(&format!("task {i}"), &[])
                .task
                .id
                .to_string()
        })
        .collect();
    let s = script(
        &td,
        "w",
        &format!(
            "wait-file {}\nwrite f.txt x\ncommit f\ncomplete\n",
            gate.display()
        ),
    );
    for i in 0..10 {
        worker(&td, &format!("w{i}"), &s, &[]);
    }
    // every worker process is running and recorded: what the restart must adopt
    td.wait_for("ten worker processes running", || {
        let running = ids
            .iter()
            .filter(|id| {
                td.show_task(id)
                    .runs
                    .first()
                    .is_some_and(|r| r.pid.is_some())
            })
            .count();
        if running == 10 { Ok(()) } else { Err(running) }
    });
    td.kill9();
    td.spawn();
    fs::write(&gate, "").expect("open the gate");
    for id in &ids {
        wait_status(&td, id, TaskStatus::Review);
    }
    for id in &ids {
        let t = td.show_task(id);
        assert_eq!(t.runs.len(), 1, "dispatched exactly once: {:?}", t.runs);
        let completed = t
            .events
            .iter()
            .filter(|e| e.action == "task_completed")
            .count();
        assert_eq!(completed, 1, "completed exactly once");
    }
    td.wait_for("every run to end", || {
        let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
        if st.running_workers == 0 {
            Ok(())
        } else {
            Err(st.running_workers)
        }
    });
}

#[test]
fn a_usage_limit_pauses_the_adapter_without_counting_a_failure() {
    // a root sfd runs Claude Code only when told the machine is a sandbox
    let mut td = crate::harness::TestDaemon::stopped();
    crate::fleet::configure(
        &td,
        "max_attempts = 1\nenv_passthrough = [\"IS_SANDBOX\"]",
        "",
    );
    td.spawn_with(&[("IS_SANDBOX", "1")]);
    let id = td.create_task("limited", &[]).task.id.to_string();
    let resets = chrono::Utc::now().timestamp() + 3600;
    let s = script(
        &td,
        "claude",
        &format!(
            "stdout {{\"type\":\"rate_limit_event\",\"rate_limit_info\":{{\"status\":\"rejected\",\"resetsAt\":{resets},\"rateLimitType\":\"five_hour\",\"isUsingOverage\":false}}}}\nexit 1\n"
        ),
    );
    let command = format!("{} {}", crate::fleet::FAKE, s.display());
    td.sfctl()
        .args([
            "agent",
            "register",
            "c1",
            "--role",
            "worker",
            "--adapter",
            "claude",
            "--command",
            &command,
        ])
        .success();
    let t = td.wait_for("the run to end", || {
        let t = td.show_task(&id);
        if t.runs.first().is_some_and(|r| r.ended_at.is_some()) && t.task.status == TaskStatus::Open
        {
            Ok(t)
        } else {
            Err((t.task.status, t.runs))
        }
    });
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("usage_limited"),
        "{:?}",
        t.runs
    );
    assert_eq!(
        t.attempts, 0,
        "a usage limit is not a failed attempt (max_attempts = 1 would block it)"
    );
    let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    let until = st.paused_adapters.get("claude").expect("claude is paused");
    assert!(
        (until.timestamp() - resets).abs() <= 1,
        "paused until the reset the CLI named: {until}"
    );
    let text = td.sfctl().args(["daemon", "status"]).success();
    assert!(
        text.contains("dispatch to claude agents is paused until"),
        "{text}"
    );
    // paused: the task is not handed to the claude worker again
    td.wait_ticks(3);
    assert_eq!(td.show_task(&id).runs.len(), 1);
    let paused: Vec<_> = td
        .events(&[])
        .into_iter()
        .filter(|e| e.action == "adapter_paused")
        .collect();
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert!(
        paused[0]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("usage limit"),
        "{paused:?}"
    );
    // nor after a restart: the pause is kept in the store
    td.restart();
    let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    let after = st.paused_adapters.get("claude").expect("still paused");
    assert_eq!(after.timestamp(), until.timestamp());
    td.wait_ticks(3);
    assert_eq!(
        td.show_task(&id).runs.len(),
        1,
        "dispatched after a restart"
    );
}

/// A stopped workspace like `fleet`, with `setup` as the `[worktree] setup` command.
fn fleet_with_setup(extra: &str, setup: &str) -> crate::harness::TestDaemon {
    let mut td = crate::harness::TestDaemon::stopped();
    crate::fleet::configure(&td, extra, "");
    let cfg = td.repo.join(".sf/config.toml");
    let text = fs::read_to_string(&cfg).expect("read config");
    assert!(text.contains("\n[worktree]\n"), "{text}");
    let text = text.replacen(
        "\n[worktree]\n",
        &format!("\n[worktree]\nsetup = {setup:?}\nsetup_timeout = \"20s\"\n"),
        1,
    );
    fs::write(&cfg, text).expect("write config");
    td.spawn();
    td
}

#[test]
fn the_worktree_setup_command_runs_before_the_agent_and_its_failure_is_reported() {
    let td = fleet_with_setup("", "echo prepared > setup-ran.txt");
    let id = td.create_task("needs setup", &[]).task.id.to_string();
    let s = script(
        &td,
        "w",
        "expect-file setup-ran.txt\nwrite f.txt x\ncommit f\ncomplete\n",
    );
    worker(&td, "w1", &s, &[]);
    wait_status(&td, &id, TaskStatus::Review);

    let td = fleet_with_setup("max_attempts = 1", "echo npm exploded >&2; exit 7");
    let id = td.create_task("broken setup", &[]).task.id.to_string();
    let s = script(&td, "w", "touch never\n");
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &id, TaskStatus::Blocked);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("spawn_failed"),
        "{:?}",
        t.runs
    );
    let note = t
        .notes
        .iter()
        .map(|n| n.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        note.contains("worktree setup") && note.contains("npm exploded"),
        "{note}"
    );
    assert!(!td.root.join("never").exists(), "the agent never ran");
}

#[test]
fn closing_a_task_in_progress_stops_its_worker_and_a_reopen_never_makes_two() {
    let td = fleet("");
    let gate = td.root.join("gate");
    let s = script(
        &td,
        "w",
        &format!(
            "write wip.txt unsaved-work\nwait-file {}\nwrite done.txt x\ncommit done\ncomplete\n",
            gate.display()
        ),
    );
    worker(&td, "w1", &s, &["--max-tasks", "2"]);
    let id = td
        .create_task("closed under its worker", &[])
        .task
        .id
        .to_string();
    let first = td.wait_for("the worker to start", || {
        let t = td.show_task(&id);
        match t.runs.first() {
            Some(r) if r.pid.is_some() => Ok(r.clone()),
            _ => Err(t.runs),
        }
    });
    // close and reopen at once: the reopened task must not get a second worker while the
    // first one is still there
    td.sfctl()
        .args(["task", "close", &id, "--reason", "not needed"])
        .success();
    td.sfctl().args(["task", "reopen", &id]).success();
    let t = td.wait_for("a second run", || {
        let t = td.show_task(&id);
        if t.runs.len() == 2 {
            Ok(t)
        } else {
            Err(t.runs)
        }
    });
    let (second, old) = (&t.runs[0], &t.runs[1]);
    assert_eq!(old.id, first.id);
    assert_eq!(old.outcome.as_deref(), Some("stopped"), "{:?}", t.runs);
    let ended = old
        .ended_at
        .expect("the first run ended before the second started");
    assert!(second.started_at >= ended, "{:?}", t.runs);
    let wip = git(
        &td.repo,
        &[
            "for-each-ref",
            "--format=%(refname)",
            &format!("refs/sf/wip/{id}/"),
        ],
    );
    assert!(!wip.is_empty(), "the stopped worker's work was saved");
    fs::write(&gate, "").expect("open the gate");
    let t = wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(t.runs.len(), 2, "{:?}", t.runs);
}

#[test]
fn a_worker_that_only_hands_off_backs_off_instead_of_spinning() {
    let td = fleet("");
    let s = script(&td, "w", "handoff nothing-to-add\n");
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("hot potato", &[]).task.id.to_string();
    let t = td.wait_for("two handoffs", || {
        let t = td.show_task(&id);
        if t.runs.len() >= 2 && t.runs.iter().all(|r| r.ended_at.is_some()) {
            Ok(t)
        } else {
            Err(t.runs.len())
        }
    });
    assert!(
        t.retry_at.is_some_and(|r| r > chrono::Utc::now()),
        "a second handoff in a row waits: {:?}",
        t.retry_at
    );
    td.wait_ticks(5);
    let runs = td.show_task(&id).runs.len();
    assert!(
        runs <= 3,
        "{runs} runs within five ticks: the handoffs spin"
    );
}

#[test]
fn an_empty_repository_is_reported_and_work_starts_after_its_first_commit() {
    let mut td = crate::harness::TestDaemon::stopped();
    crate::fleet::configure(&td, "tick_interval = \"200ms\"", "");
    // no commits at all: the branch is unborn
    git(&td.repo, &["update-ref", "-d", "refs/heads/main"]);
    td.spawn();
    let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert!(
        st.warnings.iter().any(|w| w.contains("no commits")),
        "{:?}",
        st.warnings
    );
    let text = td.sfctl().args(["daemon", "status"]).success();
    assert!(text.contains("warning: no target branch"), "{text}");
    let s = script(&td, "w", "complete-no-changes\n");
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("first task", &[]).task.id.to_string();
    td.wait_ticks(3);
    assert_eq!(td.show_task(&id).task.status, TaskStatus::Open);
    git(
        &td.repo,
        &["commit", "-q", "--allow-empty", "-m", "first commit"],
    );
    wait_status(&td, &id, TaskStatus::Closed);
    let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert!(st.warnings.is_empty(), "{:?}", st.warnings);
}

#[test]
fn daemon_status_says_which_ready_work_no_worker_can_take() {
    let td = fleet("");
    td.create_task("needs go", &["--skill", "golang"]);
    let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert!(
        st.warnings
            .iter()
            .any(|w| w.contains("no enabled ephemeral worker")),
        "{:?}",
        st.warnings
    );
    let s = script(&td, "w", "exit 0\n");
    worker(&td, "w1", &s, &["--skills", "rust"]);
    let st: DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert!(
        st.warnings
            .iter()
            .any(|w| w.contains("1 ready task(s) need skills") && w.contains("golang")),
        "{:?}",
        st.warnings
    );
}
