//! What the sandbox adds to a spawn (issue 13): `launch` + wait of `/bin/true` through
//! `sf_worker::launcher`, unsandboxed and in the sandbox agents run in (user and network
//! namespaces, loopback up, Landlock rules and scopes, `no_new_privs`), alternating so that
//! the machine's drift hits both alike. The sandbox's cost is the difference of medians.

use std::time::Duration;

use sf_worker::launcher::{Kind, Limits, RunSpec, launch};
use sf_worker::sandbox::Policy;

use crate::stats::{self, Summary};

pub struct Opts {
    pub iters: usize,
    pub warmup: usize,
}

fn spec(dir: &std::path::Path, sandboxed: bool) -> RunSpec {
    let mut policy = Policy::system([]);
    policy.write.push(dir.to_owned());
    // as sfd's runs have it: the egress listener made inside and handed over
    policy.egress = Some(3128);
    RunSpec {
        sandbox: sandboxed.then_some(policy),
        program: "/bin/true".into(),
        args: Vec::new(),
        ..RunSpec::shell(
            Kind::Agent,
            "",
            dir,
            &dir.join("log"),
            Limits {
                wall: Duration::from_secs(60),
                grace: Duration::from_secs(1),
                stall: None,
            },
        )
    }
}

pub fn run(o: Opts) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    println!(
        "spawn: launch and wait for /bin/true, {} times each, alternating",
        o.iters
    );
    let mut plain = Vec::with_capacity(o.iters);
    let mut boxed = Vec::with_capacity(o.iters);
    for i in 0..(o.warmup + o.iters) {
        for (sandboxed, out) in [(false, &mut plain), (true, &mut boxed)] {
            let t = std::time::Instant::now();
            let ended = rt.block_on(async {
                launch(spec(dir.path(), sandboxed))
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .wait(std::future::pending())
                    .await
                    .exit
                    .ok_or_else(|| anyhow::anyhow!("no exit status"))
            })?;
            anyhow::ensure!(ended.code == Some(0), "/bin/true failed: {ended}");
            if i >= o.warmup {
                out.push(t.elapsed());
            }
        }
    }
    let (p, b) = (Summary::of(&plain), Summary::of(&boxed));
    stats::report("unsandboxed", &p, None);
    stats::report("sandboxed", &b, None);
    println!(
        "  the sandbox adds {} per spawn (difference of medians)",
        stats::ms(b.median.saturating_sub(p.median))
    );
    Ok(())
}
