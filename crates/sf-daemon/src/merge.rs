//! The merge job: one merge request at a time, off the owner, in two calls into sf-git
//! around the tests. First the repository is opened (once for the merge), the user's
//! checkout checked, and the branch squashed onto the target tip in memory (conflicts
//! found there) with the result reset into the merge worktree kept between merges; the
//! test command runs there; then the target moves with a compare-and-swap and the user's
//! checkout is brought along. If someone moved the target meanwhile, the merge starts
//! again from the new tip. The target only ever moves to a tested commit.

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
    tracing::info!(mr = %id, ?outcome, "merge request processed");
    let landed = matches!(outcome, MergeOutcome::Merged { .. });
    let _ = tx.send(Internal::MergeDone { id, outcome });
    // the queue goes on meanwhile; a push that fails is recorded, the merge stands
    if landed && config.push_after_merge {
        let push = crate::mailbox::PushJob {
            actor: "daemon".to_owned(),
            task: job.info.task.clone(),
            run: None,
            mr: Some(id),
            remote: config.push_remote.clone(),
            branch: job.info.target.clone(),
        };
        crate::push::run(config.paths.root.clone(), push, None, tx).await;
    }
}

/// What the first step of a merge found.
enum Opened {
    /// The request had landed before a restart, as this commit on this parent.
    LandedBefore { commit: String, parent: String },
    /// Prepared (or not) from the target's tip; the squash message's commit list.
    Prepared(sf_git::merge::DeskPrepare, Vec<String>),
}

async fn attempt(
    config: &Arc<Config>,
    job: &MergeJob,
    tx: &mpsc::UnboundedSender<Internal>,
) -> MergeOutcome {
    use sf_git::merge::{Desk, DeskPrepare, Landing};
    let Some(test_command) = config.merge_test_command.clone() else {
        return MergeOutcome::Error(
            "no test command: set [merge] test_command in .sf/config.toml, then apply it with `sfctl daemon reload`".into(),
        );
    };
    let (root, scratch) = (config.paths.root.clone(), scratch_dir(config));
    let target = job.info.target.clone();
    let log = config
        .paths
        .logs()
        .join(format!("mr-{}-{}.log", job.info.id, job.info.attempts + 1));
    let wants_messages = job.info.task.is_none() && job.message.is_none();
    // sf's own files (policy, skills, templates, playbooks, prompts) are changed by humans,
    // never merged from an agent's branch
    let sf_files = {
        let (root, branch, target) = (root.clone(), job.info.branch.clone(), target.clone());
        blocking(move || sf_git::changes_under(&root, &branch, &target, ".sf/")).await
    };
    match sf_files {
        Ok(paths) if !paths.is_empty() => {
            return MergeOutcome::Error(format!(
                "the branch changes sf's own files ({}): .sf/ is changed by a human in the \
                 workspace, never merged from a branch; drop those changes and merge again",
                paths.join(", ")
            ));
        }
        Ok(_) => {}
        Err(e) => return MergeOutcome::Error(e),
    }
    // step 1, one call: the repository opened once for the whole merge; what a killed merge
    // left repaired (a lock on the target, the user's checkout half brought along); a
    // landing a kill left unrecorded recognised; the merge prepared in the merge worktree
    let first = {
        let (job, tx) = (job.clone(), tx.clone());
        blocking(move || {
            let desk = Desk::open(&root, &scratch)?;
            let (target, branch) = (&job.info.target, &job.info.branch);
            let (mut repaired, checkout) = desk.repair(target)?;
            repaired.extend(describe_checkout_repair(checkout, target));
            crate::workers::report_repairs(&tx, None, repaired);
            // the walk stops at commits older than the request, so it costs nothing with history
            let since = job.info.created_at.timestamp() - 60;
            let task = job.info.task.as_ref().map(ToString::to_string);
            if let Some((commit, parent)) =
                desk.find_landed(target, job.info.id.0, task.as_deref(), since)?
            {
                return Ok((desk, Opened::LandedBefore { commit, parent }));
            }
            let commits = if wants_messages {
                desk.messages_ahead(branch, target, 50).unwrap_or_default()
            } else {
                Vec::new()
            };
            let prepared = desk.prepare(branch, target)?;
            Ok((desk, Opened::Prepared(prepared, commits)))
        })
        .await
    };
    let (mut desk, mut prepared, commits) = match first {
        Err(e) => return MergeOutcome::Error(e),
        Ok((desk, Opened::LandedBefore { commit, parent })) => {
            // a daemon killed after moving the target and before recording it: merged as
            // that commit, and what follows a landing is done now
            tracing::warn!(
                mr = %job.info.id,
                %commit,
                "this request had landed before a restart; recording it as merged"
            );
            let t = target.clone();
            if let Err(e) = blocking(move || desk.sync_checkout(&t, &parent)).await {
                tracing::warn!(error = %e, "failed to update the user's checkout");
            }
            return MergeOutcome::Merged { commit };
        }
        Ok((desk, Opened::Prepared(p, commits))) => (desk, p, commits),
    };
    let message = commit_message(job, &commits);
    for round in 0..MAX_CAS_RETRIES {
        let ready = match prepared {
            DeskPrepare::Ready(p) => p,
            DeskPrepare::Conflict { paths, tip } => {
                return MergeOutcome::Conflict {
                    paths,
                    tip: Some(tip),
                };
            }
            DeskPrepare::NothingToMerge => return MergeOutcome::NothingToMerge,
            DeskPrepare::CheckoutDirty { paths } => return MergeOutcome::CheckoutDirty { paths },
        };
        let _ = tx.send(Internal::MergeTesting {
            id: job.info.id,
            log: log.clone(),
        });
        if let Err(result) = run_tests(config, &test_command, &ready.path, &log).await {
            let tail = tail_lines(&log, 40).join("\n");
            return MergeOutcome::TestsFailed {
                tail,
                result,
                tip: ready.branch_tip,
            };
        }
        // step 2, one call: the checkout checked again, the compare-and-swap, the user's
        // checkout brought along; if the target moved, prepared again from its new tip
        let (t, b, m, two_parents) = (
            target.clone(),
            job.info.branch.clone(),
            message.clone(),
            config.merge_commit,
        );
        let last = round + 1 == MAX_CAS_RETRIES;
        let landed = blocking(move || {
            let author = ("sf merge steward", "sf@sf.invalid");
            let landing = desk.land(&ready, &t, &m, author, two_parents)?;
            let again = match (&landing, last) {
                (Landing::TargetMoved, false) => Some(desk.prepare(&b, &t)?),
                _ => None,
            };
            Ok((desk, landing, again))
        })
        .await;
        match landed {
            Err(e) => return MergeOutcome::Error(e),
            Ok((_, Landing::Landed { commit, checkout }, _)) => {
                tracing::debug!(?checkout, "user checkout");
                return MergeOutcome::Merged { commit };
            }
            Ok((_, Landing::CheckoutDirty { paths }, _)) => {
                return MergeOutcome::CheckoutDirty { paths };
            }
            Ok((d, Landing::TargetMoved, again)) => {
                tracing::info!(
                    mr = %job.info.id,
                    "the target moved during the tests; starting again from its new tip"
                );
                let Some(again) = again else { break };
                desk = d;
                prepared = again;
            }
        }
    }
    MergeOutcome::Error(format!(
        "the target kept moving; gave up after {MAX_CAS_RETRIES} attempts"
    ))
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

/// The test command is trusted configuration, run with `sh -c` in the merge result.
async fn run_tests(config: &Config, command: &str, dir: &Path, log: &Path) -> Result<(), String> {
    let timeout: Duration = config.merge_test_timeout;
    let limits = Limits {
        wall: timeout,
        grace: config.stop_grace,
        stall: None,
    };
    // the tests run code agents wrote: in a sandbox of their own (named `_merge`, which no
    // agent can be), writing only the merge worktree, moving no ref, with no network in
    // full mode
    let mut env = crate::workers::trusted_environment(config);
    let sandbox = crate::workers::confine(
        config,
        &crate::workers::Confine {
            name: "_merge",
            worktree: dir,
            branch: None,
            program: "/bin/sh",
            adapter: None,
            read: Vec::new(),
            proxy: false,
        },
        &mut env,
    )
    .map_err(|e| format!("cannot start `{command}`: {}", e.message))?;
    let spec = RunSpec {
        // uncapped: a test run is not adopted after a restart, so nothing would drain a FIFO
        env,
        sandbox,
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
