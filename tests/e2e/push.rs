//! Pushing is done by sfd: a worker never holds push credentials and cannot write the
//! remote. Each test gives the repository a local bare remote as `origin`: a sandboxed worker
//! without the `push` capability cannot push by itself (`git push`) nor through sfd (`sfctl
//! push`, refused with `CAPABILITY_REQUIRED`); one with it has sfd push its branch; and
//! `[merge] push = "after-merge"` pushes the target after each merge.

use std::fs;
use std::path::{Path, PathBuf};

use sf_proto::{AuditEvent, TaskStatus};

use crate::fleet::worker;
use crate::fleet::{configure, git, git_ok, steward, wait_status};
use crate::harness::TestDaemon;

/// A bare repository in the test's tempdir, added to the workspace's repository as `origin`.
fn bare_origin(td: &TestDaemon) -> PathBuf {
    let bare = td.root.join("remote.git");
    git(
        &td.root,
        &["init", "--bare", "-q", bare.to_str().expect("utf-8")],
    );
    git(
        &td.repo,
        &["remote", "add", "origin", bare.to_str().expect("utf-8")],
    );
    bare
}

/// A sandboxed workspace (run by an ordinary user when the tests run as root, see
/// `sandbox::sandboxed`) with a bare `origin`, started, the sandbox checked to be in force.
fn sandboxed_with_origin() -> (TestDaemon, PathBuf) {
    let mut td = crate::sandbox::sandboxed_stopped("", "");
    let bare = bare_origin(&td);
    td.give(&bare);
    td.give(&td.repo.join(".git"));
    td.spawn();
    let st: sf_proto::DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert!(st.sandbox.starts_with("full"), "{}", st.sandbox);
    (td, bare)
}

/// Writes a script where agent `agent`'s sandboxed run can read it, and returns it with
/// the agent's private HOME, where the run may write.
fn agent_script(td: &TestDaemon, agent: &str, text: &str) -> (PathBuf, PathBuf) {
    let s = crate::sandbox::script_inside(td, agent, text);
    (s, td.repo.join(".sf/home").join(agent))
}

fn events_named(td: &TestDaemon, action: &str) -> Vec<AuditEvent> {
    td.events(&[])
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

fn remote_has(bare: &Path, branch: &str) -> bool {
    git_ok(
        bare,
        &[
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}"),
        ],
    )
}

#[test]
fn a_worker_without_the_push_capability_cannot_push_by_itself_or_through_sfd() {
    let (td, bare) = sandboxed_with_origin();
    let id = td.create_task("no push", &[]).task.id.to_string();
    let home = td.repo.join(".sf/home/w1");
    let (s, _) = agent_script(
        &td,
        "w1",
        &format!(
            "write feature.txt done\ncommit add feature\n\
             git-fails push origin HEAD\n\
             sfctl-fails push\n\
             save-env SF_RUN {home}/token\n\
             wait-file {home}/go\n\
             complete done\n",
            home = home.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    td.wait_for("the worker to save its lease", || {
        fs::read_to_string(home.join("token"))
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or("no token yet")
    });
    let branch = td.show_task(&id).branch.expect("the task's branch");

    // the same refusal, as sfctl prints it under --json: kind, stable code, reason, hint
    let token = fs::read_to_string(home.join("token")).expect("token");
    let (err, stderr) = td
        .sfctl()
        .env("SF_RUN", token.trim())
        .args(["push"])
        .json_fails(1);
    assert_eq!(err["error"]["kind"], "denied", "{err}");
    assert_eq!(err["error"]["code"], "CAPABILITY_REQUIRED", "{err}");
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("lacks the `push` capability"), "{err}");
    assert!(
        err["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("--capability push")),
        "{err}"
    );
    assert!(stderr.contains("error: "), "{stderr}");

    fs::write(home.join("go"), "").expect("go");
    let t = wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("completed"),
        "the script's `git-fails push` and `sfctl-fails push` both failed: {:?}",
        t.notes
    );
    assert!(
        !remote_has(&bare, &branch),
        "the branch reached the remote without the capability"
    );
    // both refusals are recorded, as the worker's agent, with the code: the worker's own
    // by the guard at the door, the one made with its lease from outside by the push
    let refused = events_named(&td, "push_failed");
    assert_eq!(refused.len(), 1, "{refused:#?}");
    for e in &refused {
        assert_eq!(e.actor, "agent:w1", "{e:?}");
        assert_eq!(e.task.as_ref().map(ToString::to_string), Some(id.clone()));
        let after = e.after.as_ref().expect("data");
        assert_eq!(after["code"], "CAPABILITY_REQUIRED", "{e:?}");
        assert_eq!(after["remote"], "origin", "{e:?}");
        assert_eq!(after["branch"], branch.as_str(), "{e:?}");
    }
    let denied = events_named(&td, "request_denied");
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0].actor, "agent:w1");
    let after = denied[0].after.as_ref().expect("data");
    assert_eq!(after["code"], "CAPABILITY_REQUIRED", "{denied:?}");
    assert_eq!(after["action"], "push", "{denied:?}");
    assert!(events_named(&td, "branch_pushed").is_empty());
    // the sandbox, not the command, stopped the worker's `git push`: from the user's shell
    // the same push goes through
    // (the remote is sfd's user's when the tests run as root: git's ownership check is
    // lifted on the receiving side too)
    git(
        &td.repo,
        &[
            "push",
            "-q",
            "--receive-pack=git -c safe.directory='*' receive-pack",
            "origin",
            &branch,
        ],
    );
    assert!(remote_has(&bare, &branch));
}

#[test]
fn a_worker_with_the_push_capability_has_sfd_push_its_branch() {
    let (td, bare) = sandboxed_with_origin();
    let id = td.create_task("push me", &[]).task.id.to_string();
    let (s, _) = agent_script(
        &td,
        "w1",
        "expect-prompt-contains You may publish your branch on the remote\n\
         write feature.txt done\ncommit add feature\n\
         git-fails push origin HEAD\n\
         sfctl push\n\
         sfctl-fails push --remote nosuch\n\
         complete done\n",
    );
    worker(&td, "w1", &s, &["--capability", "push"]);
    let t = wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("completed"),
        "{:?}",
        t.notes
    );
    let branch = t.branch.expect("the task's branch");
    assert!(
        remote_has(&bare, &branch),
        "the branch is not on the remote"
    );
    let local = git(&td.repo, &["rev-parse", &branch]);
    assert_eq!(
        git(&bare, &["rev-parse", &format!("refs/heads/{branch}")]),
        local
    );
    let pushed = events_named(&td, "branch_pushed");
    assert_eq!(pushed.len(), 1, "{pushed:#?}");
    let e = &pushed[0];
    assert_eq!(e.actor, "agent:w1");
    assert_eq!(e.subject, format!("branch:{branch}"));
    assert_eq!(e.task.as_ref().map(ToString::to_string), Some(id.clone()));
    let after = e.after.as_ref().expect("data");
    assert_eq!(after["remote"], "origin");
    assert_eq!(after["branch"], branch.as_str());
    assert_eq!(after["commit"], local.as_str());
    assert!(after["run"].is_number(), "{e:?}");
    // a remote the repository lacks is named as such
    let failed = events_named(&td, "push_failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let after = failed[0].after.as_ref().expect("data");
    assert_eq!(after["code"], "no_such_remote", "{failed:?}");
    assert_eq!(after["remote"], "nosuch", "{failed:?}");
}

#[test]
fn after_merge_push_sends_the_target_to_the_remote() {
    let td = TestDaemon::stopped();
    configure(
        &td,
        "",
        "test_command = \"test -f feature.txt\"\npush = \"after-merge\"",
    );
    let bare = bare_origin(&td);
    let mut td = td;
    td.spawn();
    // a human has no lease: `sfctl push` is for workers
    let (err, _) = td.sfctl().args(["push"]).json_fails(1);
    assert_eq!(err["error"]["kind"], "permission_denied", "{err}");
    assert!(
        err["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("after-merge")),
        "{err}"
    );
    steward(&td);
    let id = td
        .create_task("merged then pushed", &[])
        .task
        .id
        .to_string();
    let s = crate::fleet::script(
        &td,
        "w",
        "write feature.txt done\ncommit add feature\ncomplete done\n",
    );
    crate::fleet::worker(&td, "w1", &s, &[]);
    wait_status(&td, &id, TaskStatus::Closed);
    let main = git(&td.repo, &["rev-parse", "main"]);
    let e = td.wait_for("the target to be pushed", || {
        events_named(&td, "branch_pushed")
            .into_iter()
            .next()
            .ok_or_else(|| events_named(&td, "push_failed"))
    });
    assert_eq!(git(&bare, &["rev-parse", "refs/heads/main"]), main);
    assert_eq!(git(&bare, &["show", "main:feature.txt"]), "done");
    assert_eq!(e.actor, "daemon");
    assert_eq!(e.subject, "branch:main");
    assert_eq!(e.task.as_ref().map(ToString::to_string), Some(id));
    let after = e.after.as_ref().expect("data");
    assert_eq!(after["remote"], "origin");
    assert_eq!(after["commit"], main.as_str());
    assert!(after["mr"].is_number(), "{e:?}");
}
