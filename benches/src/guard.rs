//! What the guard costs per request: the pure decision in process, and a request over one
//! connection as a human (no store read), as an agent allowed (one store read: its spec and
//! the subject's owner), and as an agent refused (the read plus the `request_denied` event).

use std::time::Duration;

use anyhow::ensure;
use sf_core::guard::{Action, Actor, Context, Policy, Subject, decide};
use sf_proto::{AgentSpec, NewTask, Request, Role};

use crate::harness::{Bins, Daemon, Workspace};
use crate::stats::{self, sample};

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub iters: usize,
    pub warmup: usize,
}

pub fn run(bins: &Bins, o: Opts) -> anyhow::Result<()> {
    println!("== guard: the decision per request ==");
    let policy = Policy::parse(sf_proto::DEFAULT_POLICY, "policy.toml")?;
    let ctx = Context {
        role: Some(Role::Worker),
        ..Context::default()
    };
    let subject = Subject {
        owner: Some("w2"),
        ..Subject::default()
    };
    let pure = sample(1000, 100_000, || {
        decide(
            Ok(&policy),
            Actor::parse("agent:w1"),
            Action::UpdateTask,
            &subject,
            &ctx,
        )
    });
    println!(
        "  decide() in process: median {:.0} ns, p95 {:.0} ns",
        pure.median.as_secs_f64() * 1e9,
        pure.p95.as_secs_f64() * 1e9
    );
    staffing_gate(&policy)?;

    let ws = Workspace::new(bins)?;
    ws.configure(bins, 1, None)?;
    let daemon = Daemon::start(bins, &ws)?;
    daemon.request(&Request::RegisterAgent {
        spec: AgentSpec {
            name: "w1".into(),
            command: Some("/bin/true".into()),
            ..AgentSpec::default()
        },
    })?;
    let create = || Request::CreateTask {
        task: NewTask {
            title: "guarded".into(),
            ..NewTask::default()
        },
    };
    let mut results = Vec::new();
    for (label, actor, req, denied) in [
        (
            "a human creates a task (no guard read)",
            "human:bench",
            create(),
            false,
        ),
        (
            "an agent creates a task (guard reads the store)",
            "agent:w1",
            create(),
            false,
        ),
        (
            "an agent refused (guard + request_denied)",
            "agent:w1",
            Request::Shutdown,
            true,
        ),
    ] {
        let mut c = sf_client::Client::connect(&daemon.socket, "sf-bench", Some(actor.into()))?;
        let mut failed = None;
        let s = sample(o.warmup, o.iters, || match c.request(&req) {
            Err(sf_client::ClientError::Refused(e))
                if denied && e.kind == sf_proto::ErrorKind::Denied => {}
            Err(e) => failed = Some(e.to_string()),
            Ok(_) if denied => failed = Some("not refused".into()),
            Ok(_) => {}
        });
        ensure!(failed.is_none(), "{label}: {failed:?}");
        stats::report(label, &s, Some(Duration::from_millis(9)));
        results.push(s);
    }
    println!(
        "  the guard adds {} to an agent's request (difference of medians)",
        stats::ms(results[1].median.saturating_sub(results[0].median))
    );
    tool_calls(bins, &ws, &daemon, o)?;
    daemon.stop()
}

/// Per tool call: a live run's lease, then the guard asked about calls over one connection
/// (what sfd does per call), and `sfctl guard check` processes as a CLI's hook runs them
/// (the whole cost a call pays).
fn tool_calls(bins: &Bins, ws: &Workspace, daemon: &Daemon, o: Opts) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("token");
    let command = format!(
        "/bin/sh -c 'echo $SF_RUN > {}.tmp && mv {0}.tmp {0} && sleep 600'",
        token_file.display()
    );
    crate::harness::register(
        bins,
        ws,
        "holder",
        &["--role", "worker", "--command", &command],
    )?;
    daemon.request(&Request::CreateTask {
        task: NewTask {
            title: "held open".into(),
            ..NewTask::default()
        },
    })?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let token = loop {
        if let Ok(t) = std::fs::read_to_string(&token_file) {
            break t.trim().to_owned();
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let ask = |cmd: &str| Request::GuardToolCall {
        token: token.clone(),
        source: "hook".into(),
        tool: "Bash".into(),
        call_id: None,
        input: serde_json::json!({ "command": cmd }),
    };
    let mut c =
        sf_client::Client::connect(&daemon.socket, "sf-bench", Some("agent:holder".into()))?;
    let mut failed = None;
    let over_socket = sample(o.warmup, o.iters, || {
        if let Err(e) = c.request(&ask("cargo test --workspace")) {
            failed = Some(e.to_string());
        }
    });
    ensure!(failed.is_none(), "{failed:?}");
    stats::report(
        "a tool call over the socket (allowed)",
        &over_socket,
        Some(Duration::from_millis(5)),
    );
    let denied = sample(o.warmup, o.iters, || {
        c.request(&ask("git push origin HEAD"))
    });
    stats::report(
        "a tool call over the socket (denied)",
        &denied,
        Some(Duration::from_millis(5)),
    );
    let hook = serde_json::json!({
        "tool_name": "Bash",
        "tool_input": {"command": "ls -la"},
        "tool_use_id": "toolu_bench",
    })
    .to_string();
    let processes = o.iters.min(300);
    let mut status_failed = None;
    let by_hook = sample(o.warmup.min(20), processes, || {
        use std::io::Write as _;
        let mut child = std::process::Command::new(&bins.sfctl)
            .args(["guard", "check"])
            .env("SF_RUN", &token)
            .env("SF_AGENT", "holder")
            .env("SF_SOCKET", &daemon.socket)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn sfctl");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(hook.as_bytes());
        }
        let status = child.wait().expect("wait sfctl");
        if !status.success() {
            status_failed = Some(status);
        }
    });
    ensure!(
        status_failed.is_none(),
        "sfctl guard check: {status_failed:?}"
    );
    stats::report(
        "`sfctl guard check` as a hook runs it",
        &by_hook,
        Some(Duration::from_millis(5)),
    );
    println!(
        "  p99: over the socket {}, by the hook {}",
        stats::ms(over_socket.p99),
        stats::ms(by_hook.p99)
    );
    Ok(())
}

/// The staffing gate every spawn passes (issue 16), in process on a real store: the agent's
/// status, its manifest hashed and compared with the signed one (an agent budget set, so the
/// budget is read too), and its three skills loaded, hashed and checked against their pins.
fn staffing_gate(policy: &Policy) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let skills = dir.path().join("skills");
    std::fs::create_dir_all(&skills)?;
    std::fs::write(
        skills.join("style.md"),
        "Write short functions.\n".repeat(40),
    )?;
    let mut store = sf_store::Store::open(&dir.path().join("sf.db"))?;
    let spec = AgentSpec {
        name: "w1".into(),
        command: Some("/bin/true".into()),
        skills: vec!["style".into(), "tdd".into(), "git-hygiene".into()],
        ..AgentSpec::default()
    };
    store.register_agent("human:bench", spec, true)?;
    store.set_budget(
        "human:bench",
        sf_proto::BudgetScope::Agent,
        "w1",
        &sf_proto::BudgetLimits {
            tokens: Some(1_000_000),
            ..sf_proto::BudgetLimits::default()
        },
    )?;
    store.sign_manifest("human:bench", "w1")?;
    for k in ["style", "tdd"] {
        let skill = sf_core::skills::load(&skills, k)?.expect("skill");
        store.pin_skill("human:bench", k, &skill.hash)?;
    }
    let mut failed = None;
    let s = sample(100, 5_000, || {
        match store.staffing_gate("w1", false, &skills, Some(policy)) {
            Ok(Ok(k)) if k.len() == 3 => {}
            other => failed = Some(format!("{other:?}")),
        }
    });
    ensure!(failed.is_none(), "the gate refused: {failed:?}");
    stats::report(
        "staffing gate per spawn (manifest + 3 skills)",
        &s,
        Some(Duration::from_millis(9)),
    );
    Ok(())
}
