//! Daemon administration: `sfctl daemon reload` and `sfctl gc`.

use std::sync::Arc;

use sf_proto::{ErrorKind, ProtoError, Response};

use super::{Owner, internal};
use crate::Config;

impl Owner {
    /// `sfctl daemon reload`: reads the configuration file again and, if it is valid,
    /// applies it to what starts from now on (runs, merges, stewards, ticks); runs in flight
    /// keep the settings they started with. An invalid file changes nothing.
    pub(super) async fn reload(&mut self, actor: &str) -> Response {
        let root = self.config.paths.root.clone();
        let loaded = match tokio::task::spawn_blocking(move || Config::load(&root)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Response::Error(
                    ProtoError::new(
                        ErrorKind::InvalidInput,
                        format!("{e:#}"),
                    )
                    .with_hint("fix .sf/config.toml (check it with `sfctl daemon check`); the daemon goes on with the configuration it had"),
                );
            }
            Err(e) => return internal(e),
        };
        let mut new = loaded;
        // where sfd listens was set when it started (`--socket` included)
        new.socket.clone_from(&self.config.socket);
        let (applied, restart) = new.changes_from(&self.config);
        if applied.is_empty() && restart.is_empty() {
            return Response::Ok {
                message: "configuration unchanged".into(),
            };
        }
        let target_changed = applied.contains(&"target_branch");
        self.config = Arc::new(new);
        self.spawn_denials_noted.clear();
        self.sandbox_error = super::sandbox_error(&self.config);
        self.identities.enforce(self.config.sandbox);
        if target_changed {
            self.resolve_target().await;
        }
        self.tick_due = true;
        let (actor, a, r) = (
            actor.to_owned(),
            applied.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>(),
            restart.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>(),
        );
        let (a2, r2) = (a.clone(), r.clone());
        if let Err(e) = self
            .store_call(move |s| s.record_config_reload(&actor, &a2, &r2))
            .await
        {
            tracing::error!(error = %e, "failed to record a reload");
        }
        let mut message = if a.is_empty() {
            "configuration reloaded; nothing of it applies before a restart".to_owned()
        } else {
            format!("configuration reloaded; in effect now: {}", a.join(", "))
        };
        if !r.is_empty() {
            message.push_str(&format!(
                "; {} apply at the next `sfctl daemon restart`",
                r.join(", ")
            ));
        }
        if let Err(e) = &self.config.policy {
            message.push_str(&format!(
                "; NOTHING IS SPAWNED (POLICY_MISSING): {e}; fix it and reload again"
            ));
        }
        Response::Ok { message }
    }

    /// `sfctl gc`: a janitor pass now, or with `dry_run` what it would do.
    pub(super) async fn gc(&mut self, actor: &str, dry_run: bool) -> Response {
        let Some(target) = self.target.clone() else {
            return Response::Error(
                ProtoError::new(
                    ErrorKind::InvalidState,
                    "no target branch yet: nothing can be told merged or not",
                )
                .with_hint("make a first commit on the branch sf merges into"),
            );
        };
        let (config, store) = (self.config.clone(), self.store.clone());
        match crate::janitor::pass(config, store, target, dry_run).await {
            Ok(actions) => {
                if !dry_run && !actions.is_empty() {
                    let (actor, lines) = (actor.to_owned(), actions.clone());
                    if let Err(e) = self
                        .store_call(move |s| s.record_cleanup(&actor, &lines))
                        .await
                    {
                        tracing::error!(error = %e, "failed to record a clean-up");
                    }
                }
                Response::Cleaned(sf_proto::GcReport { dry_run, actions })
            }
            Err(e) => Response::Error(ProtoError::new(ErrorKind::Internal, e)),
        }
    }
}
