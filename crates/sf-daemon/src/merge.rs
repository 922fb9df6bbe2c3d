//! The merge job: one merge request at a time, off the owner. Check the user's checkout,
//! squash the branch onto the target tip in a temporary worktree (conflicts are found in
//! memory), run the test command there on the merge result, then move the target with a
//! compare-and-swap; if someone moved it meanwhile, start again from the new tip. The
//! target only ever moves to a tested commit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sf_store::MergeJob;
use sf_worker::launcher::{self, EndReason, Kind, Limits, RunSpec};
use sf_worker::process::tail_lines;
use tokio::sync::mpsc;

use crate::Config;
use crate::mailbox::{Internal, MergeOutcome};

/// How many times a request restarts because the target moved under it.
const MAX_CAS_RETRIES: usize = 5;

fn scratch_dir(config: &Config) -> PathBuf {
    config.paths.dir.join("merge")
}

/// Removes temporary merge worktrees left by a crash.
pub(crate) async fn prune_leftovers(config: &Config) {
    let (root, scratch) = (config.paths.root.clone(), scratch_dir(config));
    match tokio::task::spawn_blocking(move || sf_git::merge::prune_scratch(&root, &scratch)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(
            removed = n,
            "removed temporary merge worktrees left by a crash"
        ),
        Ok(Err(e)) => tracing::warn!(error = %e, "failed to prune temporary merge worktrees"),
        Err(e) => tracing::warn!(error = %e, "failed to prune temporary merge worktrees"),
    }
}

/// The squash commit's message: a task's title and id; else the message given to
/// `sfctl merge`; else the branch's one commit message as written, or for several commits
/// `Merge branch 'B'` with their subjects listed (`commits`: the branch's messages, oldest
/// first).
fn commit_message(job: &MergeJob, commits: &[String]) -> String {
    let info = &job.info;
    let mut msg = match (&info.task, &job.message, commits) {
        (Some(id), _, _) => format!("{} ({id})", info.title),
        (None, Some(m), _) => m.clone(),
        (None, None, [one]) => one.trim_end().to_owned(),
        (None, None, many) => {
            let mut m = format!("Merge branch '{}'", info.branch);
            if !many.is_empty() {
                m.push_str("\n\n");
                for c in many {
                    m.push_str(&format!("* {}\n", c.lines().next().unwrap_or_default()));
                }
                m.truncate(m.trim_end().len());
            }
            m
        }
    };
    if let Some(s) = job.summary.as_deref().filter(|s| !s.trim().is_empty()) {
        msg.push_str("\n\n");
        msg.push_str(s.trim());
    }
    msg.push('\n');
    let mut trailers = Vec::new();
    if let Some(id) = &info.task {
        trailers.push(format!("Sf-Task: {id}"));
    }
    if let Some(a) = &job.agent {
        trailers.push(format!("Sf-Agent: {a}"));
    }
    trailers.push(format!("Sf-Merge-Request: {}", info.id));
    msg.push('\n');
    msg.push_str(&trailers.join("\n"));
    msg.push('\n');
    msg
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, sf_git::GitError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(crate::errors::error_chain(&e)),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs one request to its outcome and reports it to the owner.
pub(crate) async fn run(config: Arc<Config>, job: MergeJob, tx: mpsc::UnboundedSender<Internal>) {
    let id = job.info.id;
    let outcome = attempt(&config, &job, &tx).await;
    tracing::info!(mr = id, ?outcome, "merge request processed");
    let _ = tx.send(Internal::MergeDone { id, outcome });
}

async fn attempt(
    config: &Arc<Config>,
    job: &MergeJob,
    tx: &mpsc::UnboundedSender<Internal>,
) -> MergeOutcome {
    let Some(test_command) = config.merge_test_command.clone() else {
        return MergeOutcome::Error(
            "no test command: set [merge] test_command in .sf/config.toml, then apply it with `sfctl daemon reload`".into(),
        );
    };
    let root = config.paths.root.clone();
    let (branch, target) = (job.info.branch.clone(), job.info.target.clone());
    let commits = if job.info.task.is_none() && job.message.is_none() {
        let (root, branch, target) = (root.clone(), branch.clone(), target.clone());
        blocking(move || sf_git::messages_ahead(&root, &branch, &target, 50))
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let message = commit_message(job, &commits);
    let log = config
        .paths
        .logs()
        .join(format!("mr-{}-{}.log", job.info.id, job.info.attempts + 1));
    {
        // what a killed merge may have left: a lock on the target, the user's checkout
        // half brought along (never to be shown to the user as "local changes")
        let (root, target, tx) = (root.clone(), target.clone(), tx.clone());
        let repaired = blocking(move || {
            let mut out = sf_git::locks::repair_target(&root, &target)?;
            out.extend(describe_checkout_repair(
                sf_git::merge::repair_checkout(&root, &target)?,
                &target,
            ));
            Ok(out)
        })
        .await;
        match repaired {
            Ok(lines) => crate::workers::report_repairs(&tx, None, lines),
            Err(e) => return MergeOutcome::Error(e),
        }
    }
    match landed_before(config, job).await {
        Ok(Some(commit)) => return MergeOutcome::Merged { commit },
        Ok(None) => {}
        Err(e) => return MergeOutcome::Error(e),
    }
    for _ in 0..MAX_CAS_RETRIES {
        {
            let (root, target) = (root.clone(), target.clone());
            match blocking(move || sf_git::merge::check_checkout_clean(&root, &target)).await {
                Ok(Some(paths)) if !paths.is_empty() => {
                    return MergeOutcome::CheckoutDirty { paths };
                }
                Ok(_) => {}
                Err(e) => return MergeOutcome::Error(e),
            }
        }
        let prepared = {
            let (root, scratch, branch, target) = (
                root.clone(),
                scratch_dir(config),
                branch.clone(),
                target.clone(),
            );
            match blocking(move || sf_git::merge::prepare_squash(&root, &scratch, &branch, &target))
                .await
            {
                Ok(sf_git::merge::Prepare::Ready(p)) => p,
                Ok(sf_git::merge::Prepare::Conflict { paths }) => {
                    let (root, branch) = (config.paths.root.clone(), job.info.branch.clone());
                    let tip = blocking(move || sf_git::branch_tip_id(&root, &branch))
                        .await
                        .ok();
                    return MergeOutcome::Conflict { paths, tip };
                }
                Ok(sf_git::merge::Prepare::NothingToMerge) => return MergeOutcome::NothingToMerge,
                Err(e) => return MergeOutcome::Error(e),
            }
        };
        let _ = tx.send(Internal::MergeTesting {
            id: job.info.id,
            log: log.clone(),
        });
        let tested = run_tests(config, &test_command, &prepared.path, &log).await;
        if let Err(result) = tested {
            remove_scratch(&root, &prepared).await;
            let tail = tail_lines(&log, 40).join("\n");
            return MergeOutcome::TestsFailed {
                tail,
                result,
                tip: prepared.branch_tip.clone(),
            };
        }
        {
            let (r, t, p) = (root.clone(), target.clone(), prepared.clone());
            match blocking(move || sf_git::merge::check_checkout_ready(&r, &t, &p)).await {
                Ok(Some(paths)) if !paths.is_empty() => {
                    remove_scratch(&root, &prepared).await;
                    return MergeOutcome::CheckoutDirty { paths };
                }
                Ok(_) => {}
                Err(e) => {
                    remove_scratch(&root, &prepared).await;
                    return MergeOutcome::Error(e);
                }
            }
        }
        let landed = {
            let (root, prepared2, target, message) = (
                root.clone(),
                prepared.clone(),
                target.clone(),
                message.clone(),
            );
            let land = if config.merge_commit {
                sf_git::merge::land_merge
            } else {
                sf_git::merge::land_squash
            };
            blocking(move || {
                land(
                    &root,
                    &prepared2,
                    &target,
                    &message,
                    "sf merge steward",
                    "sf@sf.invalid",
                )
            })
            .await
        };
        remove_scratch(&root, &prepared).await;
        match landed {
            Ok(sf_git::merge::Land::Landed { commit }) => {
                after_landing(config, job, &prepared.base).await;
                return MergeOutcome::Merged { commit };
            }
            Ok(sf_git::merge::Land::TargetMoved { .. }) => {
                tracing::info!(
                    mr = job.info.id,
                    "the target moved during the tests; starting again from its new tip"
                );
            }
            Err(e) => return MergeOutcome::Error(e),
        }
    }
    MergeOutcome::Error(format!(
        "the target kept moving; gave up after {MAX_CAS_RETRIES} attempts"
    ))
}

/// A request may have been landed already by a daemon killed after moving the target and
/// before recording it (its branch then brings nothing, or is already archived and
/// deleted): the commit carries the request's trailers. Then the request is merged as that
/// commit, and what follows a landing is done now (the checkout, the worktree, the branch).
/// The walk stops at commits older than the request, so it costs nothing with history.
async fn landed_before(config: &Config, job: &MergeJob) -> Result<Option<String>, String> {
    let (root, target, id) = (
        config.paths.root.clone(),
        job.info.target.clone(),
        job.info.id,
    );
    let task = job.info.task.as_ref().map(ToString::to_string);
    let since = job.info.created_at.timestamp() - 60;
    match blocking(move || sf_git::merge::find_landed(&root, &target, id, task.as_deref(), since))
        .await
    {
        Ok(Some((commit, parent))) => {
            tracing::warn!(
                mr = id,
                %commit,
                "this request had landed before a restart; recording it as merged"
            );
            after_landing(config, job, &parent).await;
            Ok(Some(commit))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The lines of a `git_repaired` event for a finished checkout update.
pub(crate) fn describe_checkout_repair(
    r: Option<sf_git::merge::CheckoutRepair>,
    target: &str,
) -> Vec<String> {
    let Some(r) = r else { return Vec::new() };
    let short = |s: &str| s[..s.len().min(10)].to_owned();
    let mut line = format!(
        "finished bringing your checkout of `{target}` from {} to {} ({} file(s) updated), cut short by a kill",
        short(&r.from),
        short(&r.to),
        r.updated
    );
    if !r.kept.is_empty() {
        line.push_str(&format!("; kept your own changes to {}", r.kept.join(", ")));
    }
    vec![line]
}

async fn remove_scratch(root: &Path, prepared: &sf_git::merge::Prepared) {
    let (root, p) = (root.to_owned(), prepared.clone());
    if let Err(e) = blocking(move || sf_git::merge::remove_scratch(&root, &p)).await {
        tracing::warn!(error = %e, "failed to remove a temporary merge worktree");
    }
}

/// The test command is trusted configuration, run with `sh -c` in the merge result.
async fn run_tests(config: &Config, command: &str, dir: &Path, log: &Path) -> Result<(), String> {
    let timeout: Duration = config.merge_test_timeout;
    let limits = Limits {
        wall: timeout,
        grace: config.stop_grace,
    };
    let spec = RunSpec {
        // uncapped: a test run is not adopted after a restart, so nothing would drain a FIFO
        env: crate::workers::trusted_environment(config),
        ..RunSpec::shell(Kind::Tests, command, dir, log, limits)
    };
    let run = launcher::launch(spec).map_err(|e| format!("failed to start `{command}`: {e}"))?;
    let ended = run.wait(std::future::pending()).await;
    match (ended.why, ended.exit) {
        _ if ended.success() => Ok(()),
        (EndReason::TimedOut, _) => Err(format!(
            "`{command}` timed out after {}",
            humantime::format_duration(timeout)
        )),
        (_, Some(exit)) => Err(format!("`{command}` failed ({exit})")),
        (_, None) => Err(format!("`{command}` could not be waited for")),
    }
}

/// After a landing: bring the user's clean checkout along. The task's worktree and branch
/// are retired by the janitor once the merge is recorded (the task is then closed).
async fn after_landing(config: &Config, job: &MergeJob, old_tip: &str) {
    let root = config.paths.root.clone();
    let (target, old) = (job.info.target.clone(), old_tip.to_owned());
    match blocking(move || sf_git::merge::sync_checkout(&root, &target, &old)).await {
        Ok(state) => tracing::debug!(?state, "user checkout"),
        Err(e) => tracing::warn!(error = %e, "failed to update the user's checkout"),
    }
}
