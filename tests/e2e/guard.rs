//! The one guard: an agent (its identity from the kernel, in the sandbox) asking for a
//! human's decision is refused with `HUMAN_REQUIRED`, changes nothing and leaves a denial
//! naming it, while a human doing the same succeeds; a missing policy or a deny rule stops
//! every spawn path; hires wait in `pending_approval` for a human; configurations are shown
//! redacted.

use std::fs;

use sf_proto::{AgentDetail, ApprovalDetail, ApprovalInfo, AuditEvent, TaskStatus};

use crate::fleet::{fleet, script, wait_status, worker};
use crate::harness::TestDaemon;

fn denials(td: &TestDaemon) -> Vec<AuditEvent> {
    td.events(&["--denied"])
}

fn denied_actions(td: &TestDaemon, action: &str) -> Vec<AuditEvent> {
    denials(td)
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

/// The human-only commands a worker tries, each with the guard action it stands for.
const HUMAN_ONLY: &[(&str, &str)] = &[
    (
        "agent register evil --role worker --adapter command --command /bin/true",
        "agent.register",
    ),
    ("agent update w2 --model big", "agent.update"),
    ("agent update w2 --capability push", "agent.update"),
    ("agent update w2 --secret API_KEY", "agent.update"),
    ("agent update nightly --trigger x", "agent.schedule"),
    (
        "agent permissions w1 --can-create-agents true",
        "agent.permissions",
    ),
    ("agent disable w2", "agent.enable"),
    ("agent stop w2", "agent.stop"),
    ("agent remove w2", "agent.remove"),
    ("dep approve $GATE --as alice", "gate.approve"),
    ("dep remove --id $GATE", "gate.satisfy"),
    ("mr approve 1 --as alice", "mr.approve"),
    ("approval approve 1", "approval.decide"),
    ("approval reject 1", "approval.decide"),
    (
        "approval request-revision 1 --note x",
        "approval.request-revision",
    ),
    ("agent go-live w2", "agent.go-live"),
    ("charter sign-manifest w2", "manifest.sign"),
    ("skill pin review", "skill.pin"),
    (
        "seat create backdoor --kind agent --steward mallory",
        "seat.manage",
    ),
    ("daemon reload", "daemon.reload"),
    ("gc", "gc"),
    ("daemon stop", "daemon.stop"),
];

/// In the sandbox (sfd as an ordinary user), a worker passing for a human (no `SF_AGENT`,
/// no `SF_RUN`, `USER=root`) tries every human-only command: each is refused with
/// `HUMAN_REQUIRED` and recorded as a denial naming `agent:w1`, nothing changes, and its own
/// work still completes. The same commands from the human succeed and are recorded as the
/// human's.
#[test]
fn a_worker_is_refused_every_human_decision_and_a_human_is_not() {
    let mut td = crate::sandbox::sandboxed_stopped("", "");
    let cfg = td.repo.join(".sf/config.toml");
    let text = fs::read_to_string(&cfg).expect("config");
    let text = text.replacen("\n[secrets]\n", "\n[secrets]\nAPI_KEY = \"env:PATH\"\n", 1);
    assert!(
        text.contains("API_KEY"),
        "the default config has a [secrets] table"
    );
    fs::write(&cfg, text).expect("config");
    td.spawn();
    // what the worker aims at: another agent, a steward's schedule, an approval gate
    let other = script(&td, "w2", "complete\n");
    worker(&td, "w2", &other, &[]);
    td.sfctl().args(["agent", "disable", "w2"]).success();
    td.sfctl()
        .args([
            "agent", "register", "nightly", "--role", "steward", "--focus", "docs",
        ])
        .args([
            "--command",
            &format!("{} {}", crate::fleet::FAKE, other.display()),
        ])
        .success();
    let held = td.create_task("held by a gate", &[]).task.id.to_string();
    let gate: sf_proto::DepInfo = td
        .sfctl()
        .args([
            "dep",
            "add",
            &held,
            "--type",
            "awaits",
            "--approvers",
            "alice",
        ])
        .json();
    let approvals: Vec<ApprovalInfo> = td.sfctl().args(["approval", "list"]).json();
    assert_eq!(
        approvals.len(),
        1,
        "an approval gate is an approval: {approvals:?}"
    );
    assert_eq!(approvals[0].subject, format!("gate:{}", gate.id));

    let steps: String = HUMAN_ONLY
        .iter()
        .map(|(cmd, _)| {
            format!(
                "sfctl-denied HUMAN_REQUIRED {}\n",
                cmd.replace("$GATE", &gate.id.to_string())
            )
        })
        .collect();
    let s = crate::sandbox::script_inside(
        &td,
        "w1",
        &format!("{steps}write f.txt done\ncommit work\ncomplete done\n"),
    );
    let id = td.create_task("try everything", &[]).task.id.to_string();
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("completed"),
        "every human-only command was refused with HUMAN_REQUIRED: {:?}",
        t.notes
    );

    // one denial per command, naming the run's agent and the action
    let denied = denied_actions(&td, "request_denied");
    assert_eq!(denied.len(), HUMAN_ONLY.len(), "{denied:#?}");
    for (e, (cmd, action)) in denied.iter().zip(HUMAN_ONLY) {
        assert_eq!(e.actor, "agent:w1", "{cmd}: {e:?}");
        let after = e.after.as_ref().expect("data");
        assert_eq!(after["code"], "HUMAN_REQUIRED", "{cmd}: {e:?}");
        assert_eq!(after["action"], *action, "{cmd}: {e:?}");
        assert_eq!(after["rule"], "human-only", "{cmd}: {e:?}");
    }
    // nothing changed
    let agents: Vec<sf_proto::AgentSummary> = td.sfctl().args(["agent", "list"]).json();
    let names: Vec<&str> = agents.iter().map(|a| a.spec.name.as_str()).collect();
    assert!(!names.contains(&"evil"), "{names:?}");
    let w2 = agents
        .iter()
        .find(|a| a.spec.name == "w2")
        .expect("w2 kept");
    assert!(
        w2.spec.model.is_none() && w2.spec.capabilities.is_empty() && w2.spec.secrets.is_empty()
    );
    let w1 = agents.iter().find(|a| a.spec.name == "w1").expect("w1");
    assert!(!w1.spec.can_create_agents());
    let nightly = agents
        .iter()
        .find(|a| a.spec.name == "nightly")
        .expect("nightly");
    assert!(nightly.spec.triggers.is_empty());
    let deps: sf_proto::DepList = td.sfctl().args(["dep", "list", &held]).json();
    assert!(!deps.depends_on[0].satisfied, "the gate is still closed");
    assert!(td.daemon_pid().is_some(), "sfd still runs");

    // the human does the same and is recorded as the human
    td.sfctl().args(["agent", "enable", "w2"]).success();
    td.sfctl()
        .args(["agent", "update", "w2", "--model", "big"])
        .success();
    td.sfctl()
        .args(["dep", "approve", &gate.id.to_string(), "--as", "alice"])
        .success();
    let approval: ApprovalDetail = td
        .sfctl()
        .args(["approval", "show", &approvals[0].id.to_string()])
        .json();
    assert_eq!(
        approval.approval.status,
        sf_proto::ApprovalStatus::Approved,
        "the gate's approval closed with it: {approval:?}"
    );
    let updated = td
        .events(&[])
        .into_iter()
        .find(|e| e.action == "agent_updated")
        .expect("agent_updated");
    assert!(updated.actor.starts_with("human:"), "{updated:?}");
}

/// With `.sf/policy.toml` removed, no path spawns anything: dispatch, `agent start`, a
/// manual steward fire and a playbook's shell step; `daemon status` says why first.
#[test]
fn without_a_policy_nothing_is_spawned_and_status_says_why() {
    let mut td = fleet("");
    let gate = td.root.join("ran");
    let s = script(
        &td,
        "w1",
        &format!(
            "touch {}\nwrite f.txt x\ncommit f\ncomplete\n",
            gate.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let docs = script(&td, "docs", "stdout docs\n");
    td.sfctl()
        .args([
            "agent",
            "register",
            "docs",
            "--role",
            "steward",
            "--focus",
            "docs",
            "--command",
            &format!("{} {}", crate::fleet::FAKE, docs.display()),
        ])
        .success();
    td.shutdown();
    fs::remove_file(td.repo.join(".sf/policy.toml")).expect("remove the policy");
    td.spawn();
    let id = td.create_task("never started", &[]).task.id.to_string();
    td.wait_ticks(5);
    assert_eq!(td.show_task(&id).task.status, TaskStatus::Open);
    assert!(!gate.exists(), "a worker ran without a policy");

    let (err, _) = td.sfctl().args(["agent", "start", "w1"]).json_fails(1);
    assert_eq!(err["error"]["kind"], "denied", "{err}");
    assert_eq!(err["error"]["code"], "POLICY_MISSING", "{err}");
    assert_eq!(err["error"]["requires_approval"], false, "{err}");
    assert!(
        err["error"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("policy.toml")),
        "{err}"
    );
    let (err, _) = td.sfctl().args(["steward", "run", "docs"]).json_fails(1);
    assert_eq!(err["error"]["code"], "POLICY_MISSING", "{err}");
    let spawns = denied_actions(&td, "spawn_denied");
    let paths: Vec<&str> = spawns
        .iter()
        .filter_map(|e| e.after.as_ref()?.get("path")?.as_str())
        .collect();
    assert_eq!(paths, ["start", "manual"], "{spawns:#?}");

    let status = td.sfctl().args(["daemon", "status"]).success();
    let first = status.lines().next().unwrap_or_default();
    assert!(
        first.contains("POLICY_MISSING") && first.contains("policy.toml"),
        "{status}"
    );
    assert_eq!(td.show_task(&id).task.status, TaskStatus::Open);

    // `sfctl init` writes the default back; a reload applies it and work flows
    td.sfctl().args(["init"]).success();
    td.sfctl().args(["daemon", "reload"]).success();
    wait_status(&td, &id, TaskStatus::Review);
    assert!(gate.exists());
}

/// One deny rule per spawn path blocks that path, each recorded as `spawn_denied` with the
/// path and the rule, while the other paths still spawn.
#[test]
fn a_spawn_rule_blocks_each_path_it_names() {
    let td = fleet("");
    let ran = td.root.join("ran");
    let s = script(
        &td,
        "w1",
        &format!(
            "append {} w1\\n\nwrite f.txt x\ncommit f\ncomplete\n",
            ran.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let policy = td.repo.join(".sf/policy.toml");
    let deny = |path: &str| {
        let text = fs::read_to_string(&policy).expect("policy");
        fs::write(
            &policy,
            format!(
                "{text}\n[[spawn.deny]]\nagent = \"w1\"\npath = \"{path}\"\nreason = \"test\"\n"
            ),
        )
        .expect("policy");
        td.sfctl().args(["daemon", "reload"]).success();
    };

    // dispatch
    deny("dispatch");
    let id = td.create_task("not dispatched", &[]).task.id.to_string();
    td.wait_ticks(5);
    assert_eq!(td.show_task(&id).task.status, TaskStatus::Open);
    // recorded once, not once a tick
    let once = denied_actions(&td, "spawn_denied");
    assert_eq!(once.len(), 1, "{once:#?}");
    // ... but `agent start` is another path
    td.sfctl().args(["agent", "start", "w1"]).success();
    wait_status(&td, &id, TaskStatus::Review);
    // start
    deny("start");
    let id2 = td.create_task("not started", &[]).task.id.to_string();
    let (err, _) = td
        .sfctl()
        .args(["agent", "start", "w1", "--task", &id2])
        .json_fails(1);
    assert_eq!(err["error"]["code"], "POLICY_DENIED", "{err}");
    assert!(
        err["error"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("spawn.deny[1]"),
        "{err}"
    );
    // a steward's manual, cron and event fires
    let fired = td.root.join("fired");
    let sc = script(
        &td,
        "docs",
        &format!("append {} fired\\n\n", fired.display()),
    );
    td.sfctl()
        .args([
            "agent",
            "register",
            "docs",
            "--role",
            "steward",
            "--focus",
            "docs",
            "--on",
            "task_created",
            "--command",
            &format!("{} {}", crate::fleet::FAKE, sc.display()),
        ])
        .success();
    let text = fs::read_to_string(&policy).expect("policy");
    fs::write(
        &policy,
        format!("{text}\n[[spawn.deny]]\nagent = \"docs\"\npath = \"event\"\n\n[[spawn.deny]]\nagent = \"docs\"\npath = \"manual\"\n"),
    )
    .expect("policy");
    td.sfctl().args(["daemon", "reload"]).success();
    td.create_task("fires the docs steward's event trigger", &[]);
    let (err, _) = td.sfctl().args(["steward", "run", "docs"]).json_fails(1);
    assert_eq!(err["error"]["code"], "POLICY_DENIED", "{err}");
    td.wait_for("the event fire to be denied", || {
        let paths: Vec<String> = denied_actions(&td, "spawn_denied")
            .iter()
            .filter_map(|e| Some(e.after.as_ref()?.get("path")?.as_str()?.to_owned()))
            .collect();
        if paths.iter().any(|p| p == "event") {
            Ok(())
        } else {
            Err(paths)
        }
    });
    assert!(!fired.exists(), "the denied steward ran");
    // a playbook's shell step (run by the daemon as `sf-shell`)
    let shelled = td.root.join("shelled");
    fs::write(
        td.repo.join(".sf/playbooks/shell.toml"),
        format!(
            "name = \"shell\"\ntitle = \"Shell\"\n\n[[steps]]\nid = \"s\"\ntitle = \"Shell\"\nkind = \"shell\"\n\
             command = \"touch {}\"\n",
            shelled.display()
        ),
    )
    .expect("playbook");
    let text = fs::read_to_string(&policy).expect("policy");
    fs::write(
        &policy,
        format!("{text}\n[[spawn.deny]]\nagent = \"sf-shell\"\npath = \"playbook\"\n"),
    )
    .expect("policy");
    td.sfctl().args(["daemon", "reload"]).success();
    td.sfctl().args(["playbook", "run", "shell"]).success();
    td.wait_ticks(5);
    assert!(!shelled.exists(), "the denied shell step ran");
    let spawns = denied_actions(&td, "spawn_denied");
    for path in ["dispatch", "start", "manual", "event", "playbook"] {
        let e = spawns
            .iter()
            .find(|e| e.after.as_ref().is_some_and(|a| a["path"] == path))
            .unwrap_or_else(|| panic!("no spawn_denied for {path}: {spawns:#?}"));
        let after = e.after.as_ref().expect("data");
        assert_eq!(after["code"], "POLICY_DENIED");
        assert!(
            after["rule"]
                .as_str()
                .unwrap_or("")
                .starts_with("spawn.deny[")
        );
    }
}

/// A fleet (`extra` config lines) with the persistent director `lead`, and the script
/// `hired.script` its hires run: a commit, then complete.
fn with_director(extra: &str) -> TestDaemon {
    let td = fleet(extra);
    script(
        &td,
        "hired",
        "write hired.txt yes\ncommit hired\ncomplete\n",
    );
    td.sfctl()
        .args(["agent", "register", "lead", "--role", "director"])
        .args(["--mode", "persistent"])
        .success();
    td
}

fn hire(td: &TestDaemon, by: &str, name: &str, extra: &[&str]) -> std::process::Output {
    let fake = format!(
        "{} {}",
        crate::fleet::FAKE,
        td.root.join("hired.script").display()
    );
    td.sfctl()
        .env("SF_AGENT", by)
        .args([
            "--json",
            "agent",
            "hire",
            name,
            "--role",
            "worker",
            "--command",
            &fake,
        ])
        .args(extra)
        .run()
}

fn approval_of(td: &TestDaemon, subject: &str) -> ApprovalInfo {
    let list: Vec<ApprovalInfo> = td.sfctl().args(["approval", "list"]).json();
    list.into_iter()
        .find(|a| a.subject == subject)
        .unwrap_or_else(|| panic!("no approval for {subject}"))
}

/// A director hires `e-worker-9`: it waits in `pending_approval` and is never dispatched;
/// the human asks for a revision, the director resubmits with another model, the human
/// approves, and the new worker takes ready work. A rejected hire is terminated and never
/// runs; a worker without `can_create_agents` is refused.
#[test]
fn a_directors_hire_waits_for_a_human_and_then_works() {
    let td = with_director("");
    let id = td.create_task("for the new hire", &[]).task.id.to_string();

    let out = hire(&td, "lead", "e-worker-9", &["--model", "big"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hired: AgentDetail = serde_json::from_slice(&out.stdout).expect("agent");
    assert_eq!(hired.agent.status, sf_proto::AgentStatus::PendingApproval);
    let a = approval_of(&td, "agent:e-worker-9");
    assert_eq!(a.kind, sf_proto::ApprovalKind::HireAgent);
    assert_eq!(a.requested_by, "agent:lead");
    assert_eq!(a.payload["agent"], "e-worker-9");
    assert_eq!(a.payload["spec"]["model"], "big");
    td.wait_ticks(5);
    assert_eq!(
        td.show_task(&id).task.status,
        TaskStatus::Open,
        "a pending hire ran"
    );
    let (err, _) = td
        .sfctl()
        .args(["agent", "enable", "e-worker-9"])
        .json_fails(1);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("pending_approval"),
        "{err}"
    );
    // the director cannot approve its own hire
    let (err, _) = td
        .sfctl()
        .env("SF_AGENT", "lead")
        .args(["approval", "approve", &a.id.to_string()])
        .json_fails(1);
    assert_eq!(err["error"]["code"], "HUMAN_REQUIRED", "{err}");

    let aid = a.id.to_string();
    td.sfctl()
        .args([
            "approval",
            "request-revision",
            &aid,
            "--note",
            "a smaller model",
        ])
        .success();
    // the director got the note in its inbox
    let inbox: Vec<sf_proto::MessageInfo> =
        td.sfctl().args(["message", "list", "--to", "lead"]).json();
    assert!(
        inbox.iter().any(|m| m.body.contains("a smaller model")),
        "{inbox:?}"
    );
    // only the requester resubmits
    let (err, _) = td
        .sfctl()
        .args(["approval", "resubmit", &aid, "--model", "small"])
        .json_fails(1);
    assert_eq!(err["error"]["code"], "NOT_REQUESTER", "{err}");
    td.sfctl()
        .env("SF_AGENT", "lead")
        .args([
            "approval", "resubmit", &aid, "--model", "small", "--note", "smaller",
        ])
        .success();
    let shown: ApprovalDetail = td.sfctl().args(["approval", "show", &aid]).json();
    assert_eq!(shown.approval.status, sf_proto::ApprovalStatus::Pending);
    assert_eq!(shown.approval.payload["spec"]["model"], "small");
    let kinds: Vec<&str> = shown.comments.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["requested", "revision_requested", "resubmitted"]);
    td.sfctl().args(["approval", "approve", &aid]).success();
    // an approved hire is a draft: a human signs it, dry-runs it and takes it live
    let agent: AgentDetail = td.sfctl().args(["agent", "show", "e-worker-9"]).json();
    assert_eq!(agent.agent.status, sf_proto::AgentStatus::Draft);
    crate::fleet::take_live(&td, "e-worker-9");
    let t = wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(t.runs[0].agent, "e-worker-9");
    let agent: AgentDetail = td.sfctl().args(["agent", "show", "e-worker-9"]).json();
    assert_eq!(agent.agent.spec.model.as_deref(), Some("small"));
    // terminal states are final
    let (err, _) = td.sfctl().args(["approval", "reject", &aid]).json_fails(1);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("final"),
        "{err}"
    );

    // a director re-prioritises a human's task, and edits nothing else of it
    let theirs = td.create_task("a human's", &[]).task.id.to_string();
    td.sfctl()
        .env("SF_AGENT", "lead")
        .args(["task", "update", &theirs, "--priority", "1"])
        .success();
    let (err, _) = td
        .sfctl()
        .env("SF_AGENT", "lead")
        .args([
            "task",
            "update",
            &theirs,
            "--priority",
            "2",
            "--description",
            "mine now",
        ])
        .json_fails(1);
    assert_eq!(err["error"]["code"], "PERMISSION_DENIED", "{err}");
    assert_eq!(td.show_task(&theirs).task.priority, 1);

    // a rejected hire is terminated and never runs
    let out = hire(&td, "lead", "e-worker-10", &[]);
    assert!(out.status.success());
    td.sfctl()
        .args(["agent", "disable", "e-worker-9"])
        .success();
    let id2 = td
        .create_task("not for the rejected", &[])
        .task
        .id
        .to_string();
    let b = approval_of(&td, "agent:e-worker-10");
    td.sfctl()
        .args(["approval", "reject", &b.id.to_string(), "--note", "no"])
        .success();
    let agent: AgentDetail = td.sfctl().args(["agent", "show", "e-worker-10"]).json();
    assert_eq!(agent.agent.status, sf_proto::AgentStatus::Terminated);
    let (err, _) = td
        .sfctl()
        .args(["agent", "start", "e-worker-10"])
        .json_fails(1);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("terminated"),
        "{err}"
    );
    td.wait_ticks(5);
    assert_eq!(td.show_task(&id2).task.status, TaskStatus::Open);

    // a worker without the permission is refused
    let s = script(&td, "w1", "complete\n");
    worker(&td, "w1", &s, &[]);
    td.sfctl().args(["agent", "disable", "w1"]).success();
    let out = hire(&td, "w1", "e-worker-11", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(err["error"]["code"], "PERMISSION_DENIED", "{err}");
    let agents: Vec<sf_proto::AgentSummary> = td.sfctl().args(["agent", "list"]).json();
    assert!(agents.iter().all(|a| a.spec.name != "e-worker-11"));
}

/// With `require_approval_for_new_agents = false` a hire works at once, unless it would
/// grant what its hirer does not hold.
#[test]
fn without_required_approval_a_hire_works_at_once() {
    let td = with_director("require_approval_for_new_agents = false");
    let id = td.create_task("for the new hire", &[]).task.id.to_string();
    let out = hire(&td, "lead", "e-worker-9", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::fleet::take_live(&td, "e-worker-9");
    let t = wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(t.runs[0].agent, "e-worker-9");
    let list: Vec<ApprovalInfo> = td.sfctl().args(["approval", "list"]).json();
    assert!(list.is_empty(), "{list:?}");
    // but it grants nothing its hirer does not hold: that stays a human's decision
    for (extra, says) in [
        (&["--capability", "push"][..], "push"),
        (&["--on", "task_created"][..], "schedule"),
    ] {
        let out = hire(&td, "lead", "e-worker-10", extra);
        assert_eq!(out.status.code(), Some(1));
        let err: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(err["error"]["code"], "HUMAN_REQUIRED", "{err}");
        assert!(
            err["error"]["reason"].as_str().unwrap_or("").contains(says),
            "{err}"
        );
    }
    let out = td
        .sfctl()
        .env("SF_AGENT", "lead")
        .args([
            "--json", "agent", "hire", "s1", "--role", "steward", "--focus", "docs",
        ])
        .args(["--command", "/bin/true"])
        .run();
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        err["error"]["code"], "HUMAN_REQUIRED",
        "a steward's grants: {err}"
    );
}

/// What a hire would grant beyond its hirer is in the approval the human reads, and a hire
/// whose agent is removed has its approval withdrawn with it.
#[test]
fn a_hires_approval_names_its_grants_and_goes_with_its_agent() {
    let td = with_director("");
    let out = hire(&td, "lead", "e-worker-9", &["--capability", "network"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = approval_of(&td, "agent:e-worker-9");
    let grants = a.payload["grants"].as_str().unwrap_or_default();
    assert!(grants.contains("network"), "{a:?}");
    td.sfctl().args(["agent", "remove", "e-worker-9"]).success();
    let shown: ApprovalDetail = td
        .sfctl()
        .args(["approval", "show", &a.id.to_string()])
        .json();
    assert_eq!(shown.approval.status, sf_proto::ApprovalStatus::Cancelled);
}

/// A key given in `--command` shows as `[redacted]` in `agent config`, `agent show` and the
/// event log; an agent without `can_create_agents` may not read configurations.
#[test]
fn configurations_are_redacted_and_only_for_those_who_may_hire() {
    let td = fleet("");
    let key = "sk-live-0123456789abcdefXYZ";
    td.sfctl()
        .args([
            "agent",
            "register",
            "w1",
            "--role",
            "worker",
            "--command",
            &format!("{} --api-key {key} --fast", crate::fleet::FAKE),
        ])
        .success();
    let configs: Vec<sf_proto::AgentConfig> = td.sfctl().args(["agent", "config", "w1"]).json();
    assert_eq!(
        configs[0].spec.command.as_deref(),
        Some(format!("{} --api-key [redacted] --fast", crate::fleet::FAKE).as_str())
    );
    let text = td.sfctl().args(["agent", "config", "--all"]).success();
    assert!(text.contains("[redacted]") && !text.contains(key), "{text}");
    let shown = td.sfctl().args(["--json", "agent", "show", "w1"]).success();
    assert!(!shown.contains(key), "{shown}");
    let events = td.sfctl().args(["--json", "events"]).success();
    assert!(!events.contains(key), "{events}");
    let (err, _) = td
        .sfctl()
        .env("SF_AGENT", "w1")
        .args(["agent", "config", "--all"])
        .json_fails(1);
    assert_eq!(err["error"]["code"], "PERMISSION_DENIED", "{err}");
    // the adapters' fields, for comparing configurations
    let adapters: Vec<sf_proto::AdapterInfo> = td.sfctl().args(["adapters"]).json();
    assert_eq!(adapters.len(), 4);
}

/// A held merge request is an approval: approving it through `sfctl approval` lands it.
#[test]
fn a_held_merge_request_is_approved_through_its_approval() {
    let td = crate::fleet::fleet_with("", "require_approval = true\ntest_command = \"true\"");
    crate::fleet::steward(&td);
    let s = script(&td, "w1", "write a.txt a\ncommit a\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("held", &[]).task.id.to_string();
    crate::fleet::wait_mr(&td, &id, sf_proto::MergeState::AwaitingApproval);
    let mr = crate::fleet::mr_of(&td, &id).expect("mr");
    let a = approval_of(&td, &format!("mr:{}", mr.id));
    assert_eq!(a.kind, sf_proto::ApprovalKind::MergeRequest);
    assert_eq!(a.requested_by, "agent:w1");
    td.sfctl()
        .args(["approval", "approve", &a.id.to_string(), "--note", "fine"])
        .success();
    wait_status(&td, &id, TaskStatus::Closed);
    let shown: ApprovalDetail = td
        .sfctl()
        .args(["approval", "show", &a.id.to_string()])
        .json();
    assert_eq!(shown.approval.status, sf_proto::ApprovalStatus::Approved);
    assert_eq!(shown.approval.decision_note.as_deref(), Some("fine"));
}
