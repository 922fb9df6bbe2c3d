//! `sfctl daemon status`: counts, timings, paused adapters, and what keeps work from
//! flowing.

use sf_proto::{DaemonStatus, Response};
use sf_store::Store;

use super::{Owner, internal};

impl Owner {
    /// What keeps work from flowing, for `sfctl daemon status`.
    pub(super) async fn warnings(&self) -> Vec<String> {
        let mut out = self
            .store
            .call(unstaffed_work)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        if let Some(e) = &self.unrecorded_error
            && !self.unrecorded.is_empty()
        {
            out.push(format!(
                "the end of {} run(s) could not be recorded ({e}); sfd tries again at every tick: \
                 free disk space if the disk is full",
                self.unrecorded.len()
            ));
        }
        if let Some(e) = &self.sandbox_error {
            out.push(format!(
                "{e}: nothing is dispatched (the sandbox fails closed); \"full\" needs \
                 unprivileged user namespaces and Landlock ABI 6; set [sandbox] mode = \
                 \"landlock-only\" in .sf/config.toml where user namespaces are refused, or \
                 \"off\" for a trusted setup"
            ));
        }
        let now = chrono::Utc::now();
        for (adapter, (until, message)) in &self.paused {
            if *until > now {
                out.push(format!(
                    "dispatch to {adapter} agents is paused until {} after a usage limit: {message}",
                    until.format("%Y-%m-%d %H:%M UTC")
                ));
            }
        }
        if self.target.is_none() {
            out.push(match &self.config.target_branch {
                Some(b) => format!(
                    "no target branch: `{b}` (target_branch in .sf/config.toml) does not exist; nothing is dispatched until it does"
                ),
                None => "no target branch: the repository has no commits yet; nothing is dispatched until it has one (commit something)".to_owned(),
            });
        }
        out
    }

    pub(super) async fn status(&self) -> Response {
        let counts = self.store.call(|s| s.status_counts()).await;
        let tasks = match counts {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Response::Error(e.into()),
            Err(e) => return internal(e),
        };
        let now = chrono::Utc::now();
        Response::Status(DaemonStatus {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: sf_proto::PROTOCOL_VERSION,
            started_at: self.started_at,
            uptime_secs: (now - self.started_at).num_seconds().max(0).unsigned_abs(),
            workspace: self.config.paths.root.display().to_string(),
            socket: self.config.socket.display().to_string(),
            tick_interval_ms: u64::try_from(self.config.tick_interval.as_millis())
                .unwrap_or(u64::MAX),
            ticks: self.ticks,
            last_tick_us: self
                .last_tick
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            tasks,
            running_workers: u32::try_from(self.workers.len()).unwrap_or(u32::MAX),
            sandbox: self.config.sandbox.describe().to_owned(),
            paused_adapters: self
                .paused
                .iter()
                .filter(|(_, (t, _))| *t > now)
                .map(|(a, (t, _))| (a.to_string(), *t))
                .collect(),
            warnings: self.warnings().await,
            recovered: self.recovered.clone(),
            policy_error: self.config.policy.as_ref().err().map(ToString::to_string),
        })
    }
}

/// What keeps work from flowing that the store knows: merge requests waiting and ready
/// tasks no enabled ephemeral worker can take (among the first 500 ready tasks).
fn unstaffed_work(s: &mut Store) -> Result<Vec<String>, sf_store::StoreError> {
    let mut out: Vec<String> = s
        .waiting_mr_reasons()?
        .into_iter()
        .map(|(reason, n)| format!("{n} merge request(s) waiting: {reason}"))
        .collect();
    let agents = s.list_agents()?;
    // an agent sfd took out of dispatch: the CLI's words and the fix, in full
    out.extend(agents.iter().filter_map(|a| {
        let why = a.disabled_reason.as_deref()?;
        Some(format!("agent {} was disabled by sfd: {why}", a.spec.name))
    }));
    let mut staff = Vec::new();
    for a in agents.into_iter().filter(|a| {
        a.spec.role == sf_proto::Role::Worker && a.spec.mode == sf_proto::Mode::Ephemeral
    }) {
        // a worker takes work only live, with its manifest as a human signed it
        let st = s.staffing(&a.spec.name)?;
        let signed = st.signed.as_deref() == Some(st.current.as_str());
        let name = &a.spec.name;
        match (a.status, signed) {
            (sf_proto::AgentStatus::Live, false) if a.enabled => out.push(format!(
                "agent {name}'s permission manifest changed since it was signed: it takes no \
                 work until a human signs it (`sfctl charter manifest {name}`, then `sfctl \
                 charter sign-manifest {name}`)"
            )),
            (sf_proto::AgentStatus::Draft, _) => out.push(format!(
                "agent {name} is a draft: it takes no work until it is signed, dry-run and \
                 taken live (`sfctl agent go-live {name}`)"
            )),
            _ => {}
        }
        staff.push(sf_core::staffing::Staff {
            enabled: a.enabled && a.status == sf_proto::AgentStatus::Live && signed,
            skills: sf_core::jobs::work_skills(&a.spec),
            name: a.spec.name,
        });
    }
    let ready = s.ready(sf_store::now_ms(), Some(500))?;
    // a session's task, a dry run's copy and a human seat's task are no worker's to take
    let mut needs: Vec<&[String]> = Vec::new();
    for r in &ready {
        let skills = r.task.skills.as_slice();
        let internal = skills
            .iter()
            .any(|k| k.starts_with("session.") || k.starts_with("dryrun."));
        let mut human = false;
        for k in skills {
            if let Some(seat) = k.strip_prefix("seat.") {
                human |= s.seat_kind(seat)? == Some(sf_proto::SeatKind::Human);
            }
        }
        if !internal && !human {
            needs.push(skills);
        }
    }
    out.extend(sf_core::staffing::unstaffed(&needs, &staff));
    Ok(out)
}
