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
    daemon.stop()
}
