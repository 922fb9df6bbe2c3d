//! Every tool call guarded and recorded: a run's pre-call hook (`sfctl guard check`, as the
//! fake agent plays it; the real CLIs' hooks are in `real_cli`) is answered by the policy's
//! tool rules, each call is a ledger row with its decision and rule, a held call waits for a
//! human, and a guard that cannot answer blocks.

use std::fs;

use sf_proto::{ApprovalInfo, TaskStatus, ToolCallRecord};

use crate::fleet::{fleet, script, wait_status, worker};
use crate::harness::TestDaemon;

fn calls(td: &TestDaemon, agent: &str, extra: &[&str]) -> Vec<ToolCallRecord> {
    td.sfctl()
        .args(["agent", "tool-calls", agent])
        .args(extra)
        .json()
}

/// The default policy denies `git push` (the reason reaches the model on stderr) and allows
/// the rest; each call is in the ledger with its rule, the denial is an event, and the run
/// list and the Trust Card count them.
#[test]
fn each_call_is_decided_by_the_tool_rules_and_recorded() {
    let td = fleet("");
    let s = script(
        &td,
        "w1",
        "guard-allows Bash ls -la\n\
         guard-blocks Bash git push origin HEAD\n\
         guard-blocks Bash cd sub && git push\n\
         guard-blocks Bash git commit --no-verify -m x\n\
         guard-allows Read /etc/hostname\n\
         write a.txt a\ncommit a\ncomplete\n",
    );
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("guarded", &[]).task.id.to_string();
    let t = wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("completed"),
        "{:?}",
        t.notes
    );

    let all = calls(&td, "w1", &[]);
    assert_eq!(all.len(), 5, "{all:#?}");
    let newest_first: Vec<&str> = all.iter().map(|c| c.decision.as_str()).collect();
    assert_eq!(newest_first, ["allow", "deny", "deny", "deny", "allow"]);
    let push = &all[3];
    assert_eq!(push.tool, "Bash");
    assert_eq!(push.summary, "git push origin HEAD");
    assert_eq!(push.rule, "tools.rules[0] Bash(git push*)");
    assert!(push.reason.contains("do not push"), "{push:?}");
    assert_eq!(
        push.task.as_ref().map(ToString::to_string),
        Some(id.clone())
    );
    assert_eq!(push.source, "hook");
    let denied = calls(&td, "w1", &["--denied-only"]);
    assert_eq!(denied.len(), 3);
    let run = t.runs[0].id.0.to_string();
    assert_eq!(calls(&td, "w1", &["--run", &run]).len(), 5);
    assert!(calls(&td, "w1", &["--run", "99999"]).is_empty());

    let events: Vec<_> = td
        .events(&[])
        .into_iter()
        .filter(|e| e.action == "tool_call_denied")
        .collect();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].actor, "agent:w1");

    let runs: Vec<sf_proto::RunLedger> = td.sfctl().args(["agent", "runs", "w1"]).json();
    assert_eq!(
        (runs[0].tool_calls, runs[0].denied, runs[0].held),
        (5, 3, 0)
    );
    let card: sf_proto::TrustCard = td.sfctl().args(["agent", "card", "w1"]).json();
    assert_eq!((card.tool_calls, card.denied), (5, 3));
    assert_eq!(card.runs.get("completed"), Some(&1));
    assert!(card.guard_median_us.is_some());
    let text = td.sfctl().args(["agent", "card", "w1"]).success();
    assert!(text.contains("5 (3 denied, 0 held)"), "{text}");
}

/// A held call waits for a human: approved, it runs; one no human approves within
/// `hold_timeout` is denied, and its approval cancelled.
#[test]
fn a_held_call_waits_for_a_human() {
    let td = fleet("");
    let policy = td.repo.join(".sf/policy.toml");
    let text = fs::read_to_string(&policy).expect("policy");
    let text = text.replace("hold_timeout = \"10m\"", "hold_timeout = \"2s\"");
    fs::write(
        &policy,
        format!("{text}\n[[tools.rules]]\nmatch = \"Bash(npm publish*)\"\ndecision = \"hold\"\n"),
    )
    .expect("policy");
    td.sfctl().args(["daemon", "reload"]).success();
    let s = script(
        &td,
        "w1",
        "guard-allows Bash npm publish --dry-run\n\
         guard-blocks Bash npm publish\n\
         write a.txt a\ncommit a\ncomplete\n",
    );
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("publishes", &[]).task.id.to_string();
    let approval = td.wait_for("the held call's approval", || {
        let list: Vec<ApprovalInfo> = td
            .sfctl()
            .args(["approval", "list", "--status", "pending"])
            .json();
        list.into_iter()
            .find(|a| a.kind == sf_proto::ApprovalKind::ToolCall)
            .ok_or(())
    });
    assert_eq!(approval.requested_by, "agent:w1");
    assert_eq!(approval.payload["summary"], "npm publish --dry-run");
    let held = calls(&td, "w1", &["--held-only"]);
    assert_eq!(held[0].decision, "hold");
    td.sfctl()
        .args(["approval", "approve", &approval.id.to_string()])
        .success();
    // the second hold is left alone: denied after hold_timeout
    let t = wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("completed"),
        "{:?}",
        t.notes
    );
    let held = calls(&td, "w1", &["--held-only"]);
    let decisions: Vec<&str> = held.iter().map(|c| c.decision.as_str()).collect();
    assert_eq!(decisions, ["held_timed_out", "held_approved"]);
    let list: Vec<ApprovalInfo> = td.sfctl().args(["approval", "list"]).json();
    let statuses: Vec<_> = list.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [
            sf_proto::ApprovalStatus::Cancelled,
            sf_proto::ApprovalStatus::Approved
        ]
    );
}

/// A guard that cannot answer blocks: the socket is gone (exit 2, the reason on stderr),
/// no lease, a lease of no live run, a malformed hook input.
#[test]
fn a_guard_that_cannot_answer_blocks_the_call() {
    let td = TestDaemon::start();
    let hook = r#"{"tool_name":"Bash","tool_input":{"command":"ls"}}"#;
    let run = |env: &[(&str, &str)], input: &str| {
        let mut cmd = td.sfctl().args(["guard", "check"]).command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn sfctl");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin");
            // sfctl may refuse (no SF_RUN) before it reads its input
            let _ = stdin.write_all(input.as_bytes());
        }
        child.wait_with_output().expect("wait")
    };
    for (env, input, says) in [
        (
            vec![("SF_RUN", "no-such-lease")],
            hook,
            "unknown lease token",
        ),
        (vec![], hook, "SF_RUN is not set"),
        (vec![("SF_RUN", "x")], "not json", "not JSON"),
        (
            vec![("SF_RUN", "x"), ("SF_SOCKET", "/nonexistent/sfd.sock")],
            hook,
            "blocked",
        ),
    ] {
        let out = run(&env, input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(says), "{env:?}: {stderr}");
    }
}

/// `plan cancel` stops the plan's work: its running worker is stopped (its work saved), its
/// task in review has its merge request withdrawn, and nothing of the plan lands on `main`
/// afterwards, even when the stopped worker's script would have gone on.
#[test]
fn cancelling_a_plan_stops_its_workers_and_nothing_of_it_merges() {
    let td = crate::fleet::fleet_with("", "require_approval = true\ntest_command = \"true\"");
    crate::fleet::steward(&td);
    let gate = td.root.join("go");
    let started = td.root.join("go.started");
    let s = script(
        &td,
        "w1",
        &format!(
            "--- for held\nwrite held.txt held\ncommit held\ncomplete\n\
             --- for running\ntouch {}\nwait-file {}\nwrite running.txt running\ncommit running\ncomplete\n",
            started.display(),
            gate.display()
        ),
    );
    worker(&td, "w1", &s, &["--max-tasks", "2"]);
    let plan: sf_proto::PlanDetail = td.sfctl().args(["plan", "create", "P", "--active"]).json();
    let p = plan.plan.id.to_string();
    let held = td.create_task("held", &["--plan", &p]).task.id.to_string();
    crate::fleet::wait_mr(&td, &held, sf_proto::MergeState::AwaitingApproval);
    let running = td
        .create_task("running", &["--plan", &p])
        .task
        .id
        .to_string();
    crate::fleet::wait_started(&td, &gate, &running);

    td.sfctl().args(["plan", "cancel", &p]).success();
    let t = wait_status(&td, &running, TaskStatus::Blocked);
    let run = crate::fleet::wait_first_run_ended(&td, &running);
    assert_eq!(
        run.runs[0].outcome.as_deref(),
        Some("stopped"),
        "{:?}",
        t.notes
    );
    assert_eq!(td.show_task(&held).task.status, TaskStatus::Blocked);
    let mr = crate::fleet::mr_of(&td, &held).expect("mr");
    assert_eq!(mr.state, sf_proto::MergeState::Cancelled);
    let approvals: Vec<ApprovalInfo> = td.sfctl().args(["approval", "list"]).json();
    assert!(
        approvals
            .iter()
            .all(|a| a.status == sf_proto::ApprovalStatus::Cancelled),
        "{approvals:?}"
    );
    // the stopped worker's script would go on now: nothing of the plan lands
    fs::write(&gate, "").expect("go");
    td.wait_ticks(10);
    for f in ["held.txt", "running.txt"] {
        assert!(
            !crate::fleet::git_ok(&td.repo, &["cat-file", "-e", &format!("main:{f}")]),
            "{f} landed after the plan was cancelled"
        );
    }
}

/// A plan's budget of tool calls, shared by two runs: the call past it is denied, both of
/// the plan's live runs are stopped (`budget_exhausted`, `plan_budget_exhausted`), and the
/// plan's tasks are not started again (blocked, `BUDGET_EXHAUSTED`).
#[test]
fn a_plan_budget_running_out_stops_every_run_of_the_plan() {
    let td = fleet("");
    let a_started = td.root.join("alpha.started");
    let never = td.root.join("never");
    let s = script(
        &td,
        "w1",
        &format!(
            "--- for alpha\nguard-allows Bash a1\nguard-allows Bash a2\ntouch {a}\nwait-file {n}\n\
             --- for beta\nwait-file {a}\nguard-allows Bash b1\nguard-blocks Bash b2\nwait-file {n}\n",
            a = a_started.display(),
            n = never.display()
        ),
    );
    worker(&td, "w1", &s, &["--max-tasks", "2"]);
    let plan: sf_proto::PlanDetail = td.sfctl().args(["plan", "create", "P"]).json();
    let p = plan.plan.id.to_string();
    td.sfctl()
        .args(["budget", "set", "--plan", &p, "--tool-calls", "3"])
        .success();
    let alpha = td.create_task("alpha", &["--plan", &p]).task.id.to_string();
    let beta = td.create_task("beta", &["--plan", &p]).task.id.to_string();
    td.sfctl().args(["plan", "activate", &p]).success();
    for id in [&alpha, &beta] {
        let t = wait_status(&td, id, TaskStatus::Blocked);
        assert_eq!(
            t.runs[0].outcome.as_deref(),
            Some("budget_exhausted"),
            "{id}: {:?}",
            t.notes
        );
        assert_eq!(t.runs.len(), 1, "not started again: {:?}", t.runs);
    }
    let denied = calls(&td, "w1", &["--denied-only"]);
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0].summary, "b2");
    assert_eq!(denied[0].rule, format!("budget:plan:{p}"));
    assert!(denied[0].reason.contains("BUDGET_EXHAUSTED"), "{denied:?}");
    let events = td.events(&[]);
    assert!(events.iter().any(|e| e.action == "plan_budget_exhausted"));
    // on the way: half, then 80 %, of the limit, each once
    let shares: Vec<u64> = events
        .iter()
        .filter(|e| e.action == "budget_usage")
        .filter_map(|e| e.after.as_ref()?.get("percent")?.as_u64())
        .collect();
    assert_eq!(shares, [50, 80], "{events:#?}");
    let shown: Vec<sf_proto::BudgetInfo> = td.sfctl().args(["budget", "show", "--plan", &p]).json();
    assert_eq!(shown[0].used.tool_calls, 4);
    assert!(shown[0].exhausted.is_some(), "{shown:?}");
}

/// A task a run creates is its task's child: the child's calls are charged to the parent's
/// budget, so the child cannot spend more than the parent had left.
#[test]
fn a_task_created_by_a_run_spends_from_its_parents_budget() {
    let td = fleet("");
    let s = script(
        &td,
        "w1",
        "--- for parent\nguard-allows Bash p1\nsfctl task create child\ncomplete-no-changes\n\
         --- for child\nguard-allows Bash c1\nguard-blocks Bash c2\ncomplete-no-changes\n",
    );
    worker(&td, "w1", &s, &[]);
    let parent = td.create_task("parent", &[]).task.id.to_string();
    td.sfctl()
        .args(["budget", "set", "--task", &parent, "--tool-calls", "2"])
        .success();
    wait_status(&td, &parent, TaskStatus::Closed);
    let child = td.wait_for("the child task", || {
        td.list_tasks(&[])
            .into_iter()
            .find(|t| t.title == "child")
            .ok_or(())
    });
    let t = crate::fleet::wait_first_run_ended(&td, child.id.as_str());
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("budget_exhausted"),
        "{:?}",
        t.notes
    );
    let denied = calls(&td, "w1", &["--denied-only"]);
    assert_eq!(denied[0].summary, "c2");
    assert_eq!(denied[0].rule, format!("budget:task:{parent}"));
}

/// Wall time passes without output: a run past its task's wall budget is stopped at a tick.
#[test]
fn a_run_past_its_wall_budget_is_stopped() {
    let td = fleet("");
    let never = td.root.join("never");
    let s = script(&td, "w1", &format!("wait-file {}\n", never.display()));
    let id = td.create_task("slow", &[]).task.id.to_string();
    td.sfctl()
        .args(["budget", "set", "--task", &id, "--wall", "1s"])
        .success();
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &id, TaskStatus::Blocked);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("budget_exhausted"),
        "{:?}",
        t.notes
    );
    let blocked = t.notes.iter().any(|n| n.text.contains("BUDGET_EXHAUSTED"));
    assert!(blocked, "{:?}", t.notes);
}
