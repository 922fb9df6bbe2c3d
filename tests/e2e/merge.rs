//! The merge queue: test-gated squash merges with a compare-and-swap, fix tasks for failing
//! tests and conflicts, approval, crash recovery, the user's own checkout, and `sfctl merge`.
//! Real git, real processes, the scripted fake agent; the "test suite" is a shell command.
//!
//! Size: each test here is one end-to-end scenario of this capability, with its own
//! workspace; they are kept together so that a capability's tests read as one list, and
//! share their helpers without a module of their own.

use std::fs;
use std::path::{Path, PathBuf};

use sf_proto::{AuditEvent, MergeState, TaskDetail, TaskStatus};

use crate::fleet::{
    fleet_with, git, git_ok, mr_of, mrs, script, steward, wait_mr, wait_status, worker,
};
use crate::harness::TestDaemon;

/// `git log --format=%s REV` as lines, newest first.
fn subjects(repo: &Path, rev: &str) -> Vec<String> {
    git(repo, &["log", "--format=%s", rev])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The parents of `rev`.
fn parents(repo: &Path, rev: &str) -> Vec<String> {
    git(repo, &["rev-list", "--parents", "-n", "1", rev])
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// The value of trailer `key` in the message of `rev` (as git parses trailers).
fn trailer(repo: &Path, rev: &str, key: &str) -> String {
    git(
        repo,
        &[
            "log",
            "-1",
            &format!("--format=%(trailers:key={key},valueonly)"),
            rev,
        ],
    )
}

fn events_named<'a>(t: &'a TaskDetail, action: &str) -> Vec<&'a AuditEvent> {
    t.events.iter().filter(|e| e.action == action).collect()
}

/// Directories named `sf-merge-*` under `.sf/merge/`.
fn scratch_dirs(td: &TestDaemon) -> Vec<PathBuf> {
    fs::read_dir(td.repo.join(".sf/merge"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("sf-merge-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the merge queue leaves between merges: at most its one merge worktree, which
/// git knows, with no temporary one beside it and nothing in it but the last merge result
/// (and what the repository ignores).
fn assert_only_the_merge_worktree(td: &TestDaemon) {
    let dirs = scratch_dirs(td);
    let bench = td.repo.join(".sf/merge/sf-merge-queue");
    assert!(dirs.iter().all(|d| *d == bench), "{dirs:?}");
    let worktrees = git(&td.repo, &["worktree", "list", "--porcelain"]);
    let temporary = worktrees
        .lines()
        .filter(|l| l.contains("sf-merge-") && !l.ends_with("/sf-merge-queue"))
        .count();
    assert_eq!(temporary, 0, "{worktrees}");
    if bench.exists() {
        // its index holds the last merge result (staged on the tip it was made on); its
        // files match the index and nothing else is there
        assert_eq!(
            git(&bench, &["diff", "--name-only"]),
            "",
            "{}",
            bench.display()
        );
        let others = git(&bench, &["ls-files", "--others", "--exclude-standard"]);
        assert_eq!(others, "", "{}", bench.display());
    }
}

/// A shell loop that waits (at most 30 s) for `gate` to exist.
fn wait_gate(gate: &Path) -> String {
    format!(
        "for i in $(seq 600); do [ -f {} ] && break; sleep 0.05; done",
        gate.display()
    )
}

/// A task's worktree (the task detail names it under `.sf/worktrees/`).
fn worktree_dir(td: &TestDaemon, t: &TaskDetail) -> PathBuf {
    td.repo
        .join(".sf/worktrees")
        .join(t.worktree.as_deref().expect("a worktree"))
}

fn exists(what: &str, path: &Path) -> Result<(), String> {
    if path.exists() {
        Ok(())
    } else {
        Err(format!("{what}: {} does not exist yet", path.display()))
    }
}

#[test]
fn a_passing_merge_lands_one_squash_commit_and_dispatches_the_dependent_at_once() {
    // a one-hour tick: everything after startup must be driven by events, so the dependent
    // can only be dispatched because the merge itself woke the dispatcher
    let td = fleet_with(
        "tick_interval = \"1h\"",
        "test_command = \"test -f ok.txt\"",
    );
    steward(&td);
    let base = git(&td.repo, &["rev-parse", "main"]);
    let a = td
        .create_task("Add the feature", &["-p", "2"])
        .task
        .id
        .to_string();
    let b = td
        .create_task("Use the feature", &["--blocked-by", &a])
        .task
        .id
        .to_string();
    let saved = td.root.join("worktree-of-a");
    let s = script(
        &td,
        "w",
        &format!(
            "--- for Add the feature\nsave-env SF_WORKTREE {}\n\
         write ok.txt ok\nwrite feature.txt A\ncommit add feature\n\
         write more.txt more\ncommit add more\ncomplete the feature works\n\
         --- for Use the feature\n\
         expect-file feature.txt\nwrite use.txt B\ncommit use the feature\ncomplete\n",
            saved.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let done = wait_status(&td, &a, TaskStatus::Closed);
    let branch = done.branch.clone().expect("branch");
    let worktree = worktree_dir(&td, &done);
    let mr = wait_mr(&td, &a, MergeState::Merged);
    let commit = mr.commit.clone().expect("the merge commit");
    assert_eq!(
        done.close_reason.as_deref(),
        Some(format!("merged as {}", &commit[..12]).as_str())
    );

    // one squash commit on the old tip, with the title, the summary and the trailers
    assert_eq!(parents(&td.repo, &commit), std::slice::from_ref(&base));
    let message = git(&td.repo, &["log", "-1", "--format=%B", &commit]);
    assert_eq!(
        message.lines().next(),
        Some(format!("Add the feature ({a})").as_str()),
        "{message}"
    );
    assert!(message.contains("the feature works"), "{message}");
    assert_eq!(trailer(&td.repo, &commit, "Sf-Task"), a, "{message}");
    assert_eq!(trailer(&td.repo, &commit, "Sf-Agent"), "w1", "{message}");

    // the branch is gone, its commits are kept under refs/sf/archive/<id> (the janitor
    // retires both once the merge is recorded)
    td.wait_for("the worktree and the branch to be retired", || {
        let branch_ref = format!("refs/heads/{branch}");
        let left = (
            worktree.exists(),
            git_ok(&td.repo, &["rev-parse", "--verify", "--quiet", &branch_ref]),
        );
        if left == (false, false) {
            Ok(())
        } else {
            Err(left)
        }
    });
    assert!(
        !git_ok(
            &td.repo,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}")
            ]
        ),
        "branch {branch} was not deleted"
    );
    let archive = format!("refs/sf/archive/{a}");
    assert_eq!(
        subjects(&td.repo, &format!("{base}..{archive}")),
        ["add more", "add feature"]
    );
    assert_eq!(
        git(&td.repo, &["rev-parse", &format!("{archive}^{{tree}}")]),
        git(&td.repo, &["rev-parse", &format!("{commit}^{{tree}}")]),
        "the archived branch tip is what was squashed"
    );
    // the worktree is removed
    assert_eq!(
        PathBuf::from(fs::read_to_string(&saved).expect("saved worktree")),
        worktree
    );
    assert!(!worktree.exists(), "{} is still there", worktree.display());
    let worktrees = git(&td.repo, &["worktree", "list", "--porcelain"]);
    assert!(!worktrees.contains(&a), "{worktrees}");

    // the event
    let merged = events_named(&done, "task_merged");
    assert_eq!(merged.len(), 1, "{:?}", done.events);
    let after = merged[0].after.clone().unwrap_or_default();
    assert_eq!(after["commit"], commit.as_str());

    // the dependent was dispatched on its own (no tick), worked on top of the merge, merged
    let dep = wait_status(&td, &b, TaskStatus::Closed);
    let dispatched = events_named(&dep, "task_dispatched");
    assert_eq!(dispatched.len(), 1, "{:?}", dep.events);
    assert!(dispatched[0].id > merged[0].id);
    assert_eq!(
        subjects(&td.repo, "main"),
        [
            format!("Use the feature ({b})"),
            format!("Add the feature ({a})"),
            "initial commit".to_owned()
        ]
    );
    assert_eq!(git(&td.repo, &["rev-list", "--merges", "main"]), "");

    // the user's clean checkout was brought along
    assert_eq!(
        fs::read_to_string(td.repo.join("feature.txt")).expect("feature.txt"),
        "A"
    );
    assert!(td.repo.join("use.txt").is_file());
    assert_eq!(git(&td.repo, &["status", "--porcelain"]), "");
}

#[test]
fn a_failing_test_never_touches_the_target_and_one_fix_task_repairs_it() {
    let gate = |td: &TestDaemon| td.root.join("fix-go");
    let prompt_at = |td: &TestDaemon| td.root.join("fix-prompt-path");
    let td = fleet_with(
        "",
        "test_command = 'if grep -q BAD src.txt 2>/dev/null; then echo \"tests: src.txt still says BAD\"; exit 1; fi'",
    );
    steward(&td);
    let base = git(&td.repo, &["rev-parse", "main"]);
    let o = td
        .create_task("Write the source", &["-p", "1"])
        .task
        .id
        .to_string();
    let d = td
        .create_task("Build on the source", &["--blocked-by", &o])
        .task
        .id
        .to_string();
    // the fix section comes first: the fix task's title also contains the original's
    let s = script(
        &td,
        "w",
        &format!(
            "--- for Fix failing tests\n\
             expect-file src.txt\nexpect-prompt-contains tests: src.txt still says BAD\n\
             save-env SF_PROMPT_FILE {}\n\
             wait-file {}\nwrite src.txt GOOD\\n\ncommit fix the source\ncomplete fixed\n\
             --- for Write the source\nwrite src.txt BAD\\n\ncommit write the source\ncomplete\n\
             --- for Build on the source\nexpect-file src.txt\nwrite dep.txt x\ncommit dep\ncomplete\n",
            prompt_at(&td).display(),
            gate(&td).display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let mr = wait_mr(&td, &o, MergeState::NeedsFix);
    let fix = mr.fix_task.clone().expect("a fix task").to_string();
    assert_eq!(git(&td.repo, &["rev-parse", "main"]), base, "main moved");
    assert!(
        mr.last_result
            .as_deref()
            .is_some_and(|r| r.contains("failed")),
        "{mr:?}"
    );

    // exactly one fix task, on the same branch and worktree, with the failing output
    let all = td.list_tasks(&["--all"]);
    let fixes: Vec<_> = all
        .iter()
        .filter(|t| t.title.starts_with("Fix failing tests"))
        .collect();
    assert_eq!(fixes.len(), 1, "{all:?}");
    assert_eq!(fixes[0].title, "Fix failing tests: Write the source");
    let f = td.show_task(&fix);
    let orig = td.show_task(&o);
    assert_eq!(f.branch, orig.branch);
    assert_eq!(f.worktree, orig.worktree);
    assert_eq!(f.task.priority, 1, "the original's priority");
    assert!(
        f.description.contains("tests: src.txt still says BAD"),
        "{}",
        f.description
    );
    // while the fix is under way: the original stays in review, its dependent blocked
    let running = wait_status(&td, &fix, TaskStatus::InProgress);
    assert_eq!(
        running.task.assignee.as_deref(),
        Some("w1"),
        "a worker, not the steward"
    );
    // the failing output is in its prompt once (in the task's description), not once more
    // as a note from earlier work
    let prompt_file = td.wait_for("the fix worker to save its prompt's path", || {
        fs::read_to_string(prompt_at(&td))
            .ok()
            .filter(|p| !p.is_empty())
            .ok_or("not yet")
    });
    let prompt = fs::read_to_string(&prompt_file).expect("read the fix task's prompt");
    assert_eq!(
        prompt.matches("tests: src.txt still says BAD").count(),
        1,
        "{prompt}"
    );
    assert_eq!(orig.task.status, TaskStatus::Review);
    let dep = td.show_task(&d);
    assert_eq!(dep.task.status, TaskStatus::Open);
    assert!(dep.runs.is_empty(), "{:?}", dep.runs);
    assert!(
        dep.waiting.iter().any(|w| w.contains(&o)),
        "{:?}",
        dep.waiting
    );

    fs::write(gate(&td), "").expect("open the gate");
    let closed = wait_status(&td, &o, TaskStatus::Closed);
    assert_eq!(td.show_task(&fix).task.status, TaskStatus::Closed);
    let mr = mr_of(&td, &o).expect("the request");
    assert_eq!(mr.state, MergeState::Merged);
    assert_eq!(mr.attempts, 2, "{mr:?}");
    let commit = mr.commit.expect("commit");
    assert_eq!(parents(&td.repo, &commit), [base]);
    assert_eq!(
        git(&td.repo, &["show", &format!("{commit}:src.txt")]),
        "GOOD"
    );
    assert_eq!(events_named(&closed, "merge_failed").len(), 1);
    assert_eq!(events_named(&closed, "task_merged").len(), 1);

    // the history outlives the merge: the request and both tasks name the fix, and the
    // first failing test's output is printable
    let shown: sf_proto::MergeRequestInfo =
        td.sfctl().args(["mr", "show", &mr.id.to_string()]).json();
    assert_eq!(shown.fix_tasks.len(), 1, "{shown:?}");
    assert_eq!(shown.fix_tasks[0].id.as_str(), fix);
    assert_eq!(shown.fix_tasks[0].kind, "tests");
    assert_eq!(shown.fix_tasks[0].status, TaskStatus::Closed);
    assert_eq!(shown.test_logs.len(), 2, "{shown:?}");
    let text = td
        .sfctl()
        .args(["mr", "show", &mr.id.to_string()])
        .success();
    assert!(
        text.contains(&format!("fix tasks:   {fix} (tests, closed)")),
        "{text}"
    );
    let orig = td.show_task(&o);
    assert_eq!(orig.fix_tasks.len(), 1);
    assert_eq!(orig.fix_tasks[0].id.as_str(), fix);
    assert_eq!(
        td.show_task(&fix).fix_of.map(|t| t.to_string()),
        Some(o.clone())
    );
    let first = td
        .sfctl()
        .args(["logs", &format!("mr:{}", mr.id), "--run", "1"])
        .success();
    assert!(first.contains("tests: src.txt still says BAD"), "{first}");
    let by_steward = td.sfctl().args(["logs", "merger", "--all"]).success();
    assert!(
        by_steward.contains(&format!(
            "==> merge request #{} (merger, task {o}) <==",
            mr.id
        )),
        "{by_steward}"
    );

    let dep = wait_status(&td, &d, TaskStatus::Closed);
    let merged_at = events_named(&closed, "task_merged")[0].id;
    assert!(events_named(&dep, "task_dispatched")[0].id > merged_at);
    assert_eq!(
        subjects(&td.repo, "main"),
        [
            format!("Build on the source ({d})"),
            format!("Write the source ({o})"),
            "initial commit".to_owned()
        ],
        "one merge commit per task, none for the fix task"
    );
    let all = td.list_tasks(&["--all"]);
    assert_eq!(
        all.iter()
            .filter(|t| t.title.starts_with("Fix failing tests"))
            .count(),
        1,
        "{all:?}"
    );
}

#[test]
fn a_conflict_is_resolved_through_a_fix_task_then_merges() {
    let td = fleet_with("", "test_command = \"true\"");
    steward(&td);
    let (go_a, go_b, go_fix) = (
        td.root.join("go-a"),
        td.root.join("go-b"),
        td.root.join("go-fix"),
    );
    let a = td
        .create_task("Change line two to alpha", &[])
        .task
        .id
        .to_string();
    let b = td
        .create_task("Change line two to beta", &[])
        .task
        .id
        .to_string();
    let s = script(
        &td,
        "w",
        &format!(
            "--- for Resolve merge conflict\n\
             expect-prompt-contains src/lib.txt\nwait-file {fix}\n\
             git-fails merge main\n\
             write src/lib.txt one\\nalpha and beta\\nthree\\n\n\
             commit merge main, keeping both\ncomplete resolved\n\
             --- for Change line two to alpha\nwait-file {a}\n\
             write src/lib.txt one\\nalpha\\nthree\\n\ncommit alpha\ncomplete\n\
             --- for Change line two to beta\nwait-file {b}\n\
             write src/lib.txt one\\nbeta\\nthree\\n\ncommit beta\ncomplete\n",
            fix = go_fix.display(),
            a = go_a.display(),
            b = go_b.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    worker(&td, "w2", &s, &[]);
    // both start from the same tip
    wait_status(&td, &a, TaskStatus::InProgress);
    wait_status(&td, &b, TaskStatus::InProgress);
    fs::write(&go_a, "").expect("gate");
    wait_status(&td, &a, TaskStatus::Closed);
    let after_a = git(&td.repo, &["rev-parse", "main"]);
    fs::write(&go_b, "").expect("gate");

    let mr = wait_mr(&td, &b, MergeState::NeedsFix);
    let fix = mr.fix_task.clone().expect("a fix task").to_string();
    assert!(
        mr.last_result
            .as_deref()
            .is_some_and(|r| r.contains("src/lib.txt")),
        "{mr:?}"
    );
    assert_eq!(git(&td.repo, &["rev-parse", "main"]), after_a, "main moved");
    let f = td.show_task(&fix);
    assert_eq!(
        f.task.title,
        "Resolve merge conflict: Change line two to beta"
    );
    assert!(f.description.contains("src/lib.txt"), "{}", f.description);
    // no conflict markers anywhere: the user's checkout and the branch's worktree are as they were
    assert_eq!(
        fs::read_to_string(td.repo.join("src/lib.txt")).expect("lib"),
        "one\nalpha\nthree\n"
    );
    let wt = worktree_dir(&td, &td.show_task(&b));
    assert!(wt.is_dir(), "{}", wt.display());
    assert_eq!(
        fs::read_to_string(wt.join("src/lib.txt")).expect("lib"),
        "one\nbeta\nthree\n"
    );
    assert_eq!(git(&wt, &["status", "--porcelain"]), "");

    fs::write(&go_fix, "").expect("gate");
    wait_status(&td, &b, TaskStatus::Closed);
    assert_eq!(td.show_task(&fix).task.status, TaskStatus::Closed);
    assert_eq!(
        subjects(&td.repo, "main"),
        [
            format!("Change line two to beta ({b})"),
            format!("Change line two to alpha ({a})"),
            "initial commit".to_owned()
        ]
    );
    assert_eq!(parents(&td.repo, "main"), [after_a]);
    assert_eq!(
        git(&td.repo, &["show", "main:src/lib.txt"]),
        "one\nalpha and beta\nthree"
    );
    assert_eq!(
        fs::read_to_string(td.repo.join("src/lib.txt")).expect("lib"),
        "one\nalpha and beta\nthree\n"
    );
    let conflicts = td
        .list_tasks(&["--all"])
        .into_iter()
        .filter(|t| t.title.starts_with("Resolve merge conflict"))
        .count();
    assert_eq!(conflicts, 1);
}

#[test]
fn the_target_moved_mid_merge_is_handled_by_the_compare_and_swap() {
    let root = tempfile::tempdir().expect("gates dir");
    let (started, gate) = (root.path().join("started"), root.path().join("go"));
    let td = fleet_with(
        "",
        &format!(
            "test_command = 'touch {}; {}; test -f ok.txt'",
            started.display(),
            wait_gate(&gate)
        ),
    );
    steward(&td);
    let a = td.create_task("Add a", &[]).task.id.to_string();
    let s = script(
        &td,
        "w",
        "write ok.txt ok\nwrite a.txt a\ncommit add a\ncomplete\n",
    );
    worker(&td, "w1", &s, &[]);
    // the merge result is prepared and under test: someone commits straight to main
    td.wait_for("the test run to start", || exists("started", &started));
    fs::write(td.repo.join("outside.txt"), "outside\n").expect("write");
    git(&td.repo, &["add", "outside.txt"]);
    git(&td.repo, &["commit", "-q", "-m", "outside change"]);
    let outside = git(&td.repo, &["rev-parse", "main"]);
    fs::write(&gate, "").expect("open the gate");

    wait_status(&td, &a, TaskStatus::Closed);
    assert_eq!(
        subjects(&td.repo, "main"),
        [
            format!("Add a ({a})"),
            "outside change".to_owned(),
            "initial commit".to_owned()
        ]
    );
    assert_eq!(parents(&td.repo, "main"), [outside]);
    let files = git(&td.repo, &["ls-tree", "--name-only", "main"]);
    for f in ["outside.txt", "a.txt", "ok.txt"] {
        assert!(files.lines().any(|l| l == f), "{f} missing: {files}");
    }
    assert!(
        fs::read_to_string(&td.stderr_path)
            .unwrap_or_default()
            .contains("the target moved"),
        "the compare-and-swap did not fail\n{}",
        td.stderr_tail()
    );
    assert!(td.repo.join("a.txt").is_file());
    assert_eq!(git(&td.repo, &["status", "--porcelain"]), "");
    assert_only_the_merge_worktree(&td);
}

#[test]
fn require_approval_holds_the_request_until_approved() {
    // the fleet's short tick: the merge phase gets its chances while the request waits
    let td = fleet_with(
        "",
        "test_command = \"test -f ok.txt\"\nrequire_approval = true",
    );
    steward(&td);
    let base = git(&td.repo, &["rev-parse", "main"]);
    let a = td.create_task("Needs a look", &[]).task.id.to_string();
    let s = script(&td, "w", "write ok.txt ok\ncommit ok\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let mr = wait_mr(&td, &a, MergeState::AwaitingApproval);
    assert!(mr.approved_by.is_none());
    td.wait_ticks(3);
    let mr = mr_of(&td, &a).expect("the request");
    assert_eq!(mr.state, MergeState::AwaitingApproval);
    assert_eq!(git(&td.repo, &["rev-parse", "main"]), base);
    assert_eq!(td.show_task(&a).task.status, TaskStatus::Review);
    let list = td.sfctl().args(["mr", "list"]).success();
    assert!(list.contains("awaiting_approval"), "{list}");

    let out = td
        .sfctl()
        .args(["mr", "approve", &mr.id.to_string(), "--as", "alice"])
        .success();
    assert!(out.contains("approved as alice"), "{out}");
    let merged = wait_mr(&td, &a, MergeState::Merged);
    assert_eq!(merged.approved_by.as_deref(), Some("alice"));
    wait_status(&td, &a, TaskStatus::Closed);
    assert_eq!(parents(&td.repo, "main"), [base]);
    assert_eq!(subjects(&td.repo, "main")[0], format!("Needs a look ({a})"));
}

#[test]
fn kill_9_during_the_test_run_then_restart_merges_once_and_leaves_nothing_behind() {
    let root = tempfile::tempdir().expect("gates dir");
    let (started, gate) = (root.path().join("started"), root.path().join("go"));
    let mut td = fleet_with(
        "",
        &format!(
            "test_command = 'touch {}; {}; test -f ok.txt'",
            started.display(),
            wait_gate(&gate)
        ),
    );
    steward(&td);
    let base = git(&td.repo, &["rev-parse", "main"]);
    let a = td.create_task("Survive a crash", &[]).task.id.to_string();
    let s = script(&td, "w", "write ok.txt ok\ncommit ok\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    td.wait_for("the first test run to start", || {
        exists("started", &started)
    });
    let leftovers = scratch_dirs(&td);
    assert_eq!(leftovers.len(), 1, "{}", td.listing());
    // what the interrupted test run wrote in the merge worktree
    let left = leftovers[0].join("left-by-the-killed-run");
    fs::write(&left, "x").expect("plant");
    td.kill9();
    assert_eq!(git(&td.repo, &["rev-parse", "main"]), base);
    fs::remove_file(&started).expect("rm started");

    td.spawn();
    td.wait_for("the test run to start again", || {
        exists("started", &started)
    });
    assert!(
        !left.exists(),
        "what the interrupted run left in the merge worktree is still there"
    );
    fs::write(&gate, "").expect("open the gate");
    let t = wait_status(&td, &a, TaskStatus::Closed);
    let mr = mr_of(&td, &a).expect("the request");
    assert_eq!(mr.state, MergeState::Merged);
    assert_eq!(mr.attempts, 2, "retried from the start: {mr:?}");
    assert_eq!(events_named(&t, "task_merged").len(), 1);
    assert_eq!(
        subjects(&td.repo, "main"),
        [
            format!("Survive a crash ({a})"),
            "initial commit".to_owned()
        ]
    );
    assert_eq!(parents(&td.repo, "main"), [base]);
    assert_only_the_merge_worktree(&td);
    assert_eq!(
        git(&td.repo, &["for-each-ref", "refs/heads/sf-merging/"]),
        ""
    );
    assert_eq!(git(&td.repo, &["status", "--porcelain"]), "");
    assert!(td.repo.join("ok.txt").is_file());
}

/// A persistent worker's branch, made by hand in a worktree of its own under the tempdir.
fn hand_branch(td: &TestDaemon, branch: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = td.root.join(branch.replace('/', "-"));
    git(
        &td.repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            branch,
            &dir.display().to_string(),
            "main",
        ],
    );
    for (name, text) in files {
        fs::write(dir.join(name), text).expect("write");
    }
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", &format!("work on {branch}")]);
    dir
}

const BRANCH_TESTS: &str = "test_command = 'if [ -f BAD ]; then echo \"BAD file found: tests fail\"; exit 1; fi; test -f ok.txt'";

#[test]
fn sfctl_merge_of_a_persistent_workers_branch_goes_through_the_queue() {
    let td = fleet_with("", BRANCH_TESTS);
    steward(&td);
    let base = git(&td.repo, &["rev-parse", "main"]);
    hand_branch(
        &td,
        "feature/login",
        &[("ok.txt", "ok"), ("login.txt", "form")],
    );
    let out = td
        .sfctl()
        .args(["merge", "--branch", "feature/login", "-m", "Login page"])
        .success();
    assert!(out.contains("merged feature/login into main as"), "{out}");
    assert_eq!(parents(&td.repo, "main"), [base]);
    assert_eq!(subjects(&td.repo, "main")[0], "Login page");
    assert!(
        td.repo.join("login.txt").is_file(),
        "checkout brought along"
    );
    let all = mrs(&td);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].state, MergeState::Merged);
    assert!(all[0].task.is_none());
    assert!(td.list_tasks(&["--all"]).is_empty(), "no task, no fix task");
}

/// `sfctl merge` of a branch whose tests fail; returns its output.
fn merge_failing_branch(td: &TestDaemon) -> std::process::Output {
    steward(td);
    hand_branch(td, "feature/bad", &[("ok.txt", "ok"), ("BAD", "bad")]);
    // the branch from $SF_BRANCH, as in a persistent worker
    td.sfctl()
        .env("SF_BRANCH", "feature/bad")
        .args(["merge"])
        .run()
}

#[test]
fn sfctl_merge_of_a_failing_branch_exits_1_and_leaves_the_target_alone() {
    let td = fleet_with("", BRANCH_TESTS);
    let base = git(&td.repo, &["rev-parse", "main"]);
    let out = merge_failing_branch(&td);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("queued merge request #1: feature/bad -> main"),
        "{stdout}"
    );
    assert!(
        stderr.contains("merge request #1 was cancelled") && stderr.contains("failed"),
        "{stderr}"
    );
    assert_eq!(git(&td.repo, &["rev-parse", "main"]), base, "main moved");
    assert!(!td.repo.join("BAD").exists());
    assert!(
        td.list_tasks(&["--all"]).is_empty(),
        "no fix task for a branch"
    );
    let all = mrs(&td);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].state, MergeState::Cancelled);
    assert!(
        git_ok(
            &td.repo,
            &["rev-parse", "--verify", "--quiet", "refs/heads/feature/bad"]
        ),
        "the branch is kept"
    );
}

#[test]
fn the_test_output_of_a_failed_merge_is_printed_by_sfctl_merge_and_mr_show() {
    let td = fleet_with("", BRANCH_TESTS);
    let out = merge_failing_branch(&td);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let logs: Vec<String> = fs::read_dir(td.repo.join(".sf/logs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mr = &mrs(&td)[0];
    assert!(
        stdout.contains("BAD file found: tests fail"),
        "`sfctl merge` does not print the test output\n--- stdout ---\n{stdout}\n--- stderr ---\n\
         {stderr}\nlog_path: {:?}; .sf/logs holds {logs:?}",
        mr.log_path
    );
    let show = td.sfctl().args(["mr", "show", "1"]).success();
    assert!(show.contains("BAD file found: tests fail"), "{show}");
}

#[test]
fn branch_deletion_is_refused_when_its_commits_would_be_lost() {
    let td = fleet_with("", "test_command = \"true\"");
    steward(&td);
    let a = td.create_task("Keep my branch", &[]).task.id.to_string();
    // the archive ref is taken by an unrelated commit: archiving the branch there is refused,
    // so its commits would only be reachable from the branch itself
    let tree = git(&td.repo, &["rev-parse", "main^{tree}"]);
    let unrelated = git(&td.repo, &["commit-tree", &tree, "-m", "unrelated"]);
    let archive = format!("refs/sf/archive/{a}");
    git(&td.repo, &["update-ref", &archive, &unrelated]);
    let s = script(&td, "w", "write k.txt k\ncommit keep me\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &a, TaskStatus::Closed);
    let branch = t.branch.expect("branch");
    // the janitor tried, and says why it kept the branch
    td.wait_for("the janitor to keep the branch", || {
        let said: Vec<String> = td
            .events(&[])
            .into_iter()
            .filter(|e| e.action == "cleaned_up")
            .map(|e| e.after.unwrap_or_default().to_string())
            .collect();
        if said
            .iter()
            .any(|s| s.contains(&format!("kept branch {branch}")))
        {
            Ok(())
        } else {
            Err(said)
        }
    });
    assert_eq!(
        subjects(&td.repo, "main")[0],
        format!("Keep my branch ({a})")
    );
    assert_eq!(
        subjects(&td.repo, &format!("main..{branch}")),
        ["keep me"],
        "the branch and its commit are kept"
    );
    assert_eq!(git(&td.repo, &["rev-parse", &archive]), unrelated);
}

#[test]
fn delete_branch_false_keeps_the_merged_branch() {
    let td = fleet_with("", "test_command = \"true\"\ndelete_branch = false");
    steward(&td);
    let a = td.create_task("Keep it", &[]).task.id.to_string();
    let s = script(&td, "w", "write k.txt k\ncommit keep\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &a, TaskStatus::Closed);
    let branch = t.branch.expect("branch");
    // the janitor's pass is over (it removed the worktree) and left the branch
    td.wait_for("the janitor's pass", || {
        let n = td
            .events(&[])
            .iter()
            .filter(|e| e.action == "cleaned_up")
            .count();
        if n > 0 { Ok(()) } else { Err(n) }
    });
    assert!(
        git_ok(
            &td.repo,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}")
            ]
        ),
        "branch {branch} was deleted although delete_branch = false"
    );
}

/// The user's checkout of `main` has a local edit of a tracked file while task "Wait for
/// me" completes; returns the task id and the request's id once it waits on the checkout.
fn dirty_checkout_waiting(td: &TestDaemon) -> (String, i64) {
    steward(td);
    fs::write(td.repo.join("README.md"), "# my local edit\n").expect("edit");
    let a = td.create_task("Wait for me", &[]).task.id.to_string();
    let s = script(
        td,
        "w",
        "write ok.txt ok\nwrite a.txt a\ncommit a\ncomplete\n",
    );
    worker(td, "w1", &s, &[]);
    let mr = td.wait_for("the request to wait on the checkout", || {
        match mr_of(td, &a) {
            Some(m)
                if m.state == MergeState::Waiting
                    && m.reason.as_deref().is_some_and(|r| r.contains("README.md")) =>
            {
                Ok(m)
            }
            other => Err(Box::new(other)),
        }
    });
    (a, mr.id.0)
}

#[test]
fn a_dirty_checkout_of_the_target_holds_the_request_until_it_is_clean() {
    let td = fleet_with(
        "tick_interval = \"200ms\"",
        "test_command = \"test -f ok.txt\"",
    );
    let base = git(&td.repo, &["rev-parse", "main"]);
    let (a, _) = dirty_checkout_waiting(&td);
    td.wait_for("`mr list` to show the reason", || {
        let list = td.sfctl().args(["mr", "list"]).success();
        if list.contains("waiting") && list.contains("README.md") {
            Ok(())
        } else {
            Err(list)
        }
    });
    // several ticks later: nothing moved, the user's edit untouched
    td.wait_ticks(3);
    let later = mr_of(&td, &a).expect("the request");
    assert!(
        matches!(later.state, MergeState::Waiting | MergeState::Testing),
        "{later:?}"
    );
    assert_eq!(td.show_task(&a).task.status, TaskStatus::Review);
    assert_eq!(git(&td.repo, &["rev-parse", "main"]), base);
    assert_eq!(
        fs::read_to_string(td.repo.join("README.md")).expect("readme"),
        "# my local edit\n"
    );
    assert!(!td.repo.join("a.txt").exists());
    assert_only_the_merge_worktree(&td);

    git(&td.repo, &["checkout", "--", "README.md"]);
    wait_status(&td, &a, TaskStatus::Closed);
    assert_eq!(parents(&td.repo, "main"), [base]);
    assert!(td.repo.join("a.txt").is_file());
    assert_eq!(git(&td.repo, &["status", "--porcelain"]), "");
}

#[test]
fn a_request_waiting_on_the_checkout_is_rechecked_at_the_tick_not_in_a_busy_loop() {
    let td = fleet_with(
        "tick_interval = \"200ms\"",
        "test_command = \"test -f ok.txt\"",
    );
    let (a, id) = dirty_checkout_waiting(&td);
    let before = mr_of(&td, &a).expect("the request").attempts;
    td.wait_ticks(5);
    let after = mr_of(&td, &a).expect("the request");
    let updates = td
        .events(&[])
        .iter()
        .filter(|e| e.subject == format!("mr:{id}"))
        .count();
    assert!(
        after.attempts - before <= 10,
        "the waiting request went through {} test attempts in one second at a 200ms tick \
         ({updates} merge_request_updated events so far)",
        after.attempts - before
    );
    // a waiting request says so: it does not flicker to `testing` without running tests
    assert_eq!(after.state, MergeState::Waiting, "{after:?}");
}

/// Invariant 8: the owner never waits on slow work. While a merge's test command is still
/// running (it waits on a file), the daemon keeps serving requests and dispatching.
#[test]
fn the_daemon_answers_while_a_merge_test_runs() {
    let gate = tempfile::tempdir().expect("tempdir");
    let gate_file = gate.path().join("go");
    let td = crate::fleet::fleet_with(
        "",
        &format!(
            "test_command = \"while [ ! -f '{}' ]; do sleep 0.05; done\"",
            gate_file.display()
        ),
    );
    crate::fleet::steward(&td);
    crate::fleet::git(&td.repo, &["checkout", "-q", "-b", "side"]);
    std::fs::write(td.repo.join("side.txt"), "x").expect("write");
    crate::fleet::git(&td.repo, &["add", "side.txt"]);
    crate::fleet::git(
        &td.repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@x",
            "commit",
            "-q",
            "-m",
            "side",
        ],
    );
    crate::fleet::git(&td.repo, &["checkout", "-q", "main"]);
    td.sfctl()
        .args(["merge", "--branch", "side", "--no-wait"])
        .success();
    td.wait_for("the merge test to start", || {
        let m = crate::fleet::mrs(&td);
        if m.first()
            .is_some_and(|m| m.state == sf_proto::MergeState::Testing)
        {
            Ok(())
        } else {
            Err(m)
        }
    });
    // the test command is blocked; the daemon is not
    let t = td.create_task("created during a merge", &[]);
    assert_eq!(
        td.show_task(t.task.id.as_str()).task.title,
        "created during a merge"
    );
    let st: sf_proto::DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert_eq!(st.tasks.get(&sf_proto::TaskStatus::Open), Some(&1));
    assert_eq!(
        crate::fleet::mrs(&td)[0].state,
        sf_proto::MergeState::Testing,
        "still testing"
    );
    std::fs::write(&gate_file, "").expect("open the gate");
    td.wait_for("the merge", || {
        let m = crate::fleet::mrs(&td);
        if m.first()
            .is_some_and(|m| m.state == sf_proto::MergeState::Merged)
        {
            Ok(())
        } else {
            Err(m)
        }
    });
}

#[test]
fn closing_or_reopening_a_task_in_review_withdraws_its_merge_request() {
    // no merge steward yet: the requests wait in the queue
    let td = fleet_with("", "test_command = \"true\"");
    let s = script(
        &td,
        "w",
        "--- for alpha\nwrite alpha.txt a\\n\ncommit alpha\ncomplete\n\
         --- for beta\nappend beta.txt b\\n\ncommit beta\ncomplete\n",
    );
    worker(&td, "w1", &s, &["--max-tasks", "2"]);
    let alpha = td.create_task("alpha", &[]).task.id.to_string();
    let beta = td.create_task("beta", &[]).task.id.to_string();
    wait_status(&td, &alpha, TaskStatus::Review);
    wait_status(&td, &beta, TaskStatus::Review);
    let first_beta = mr_of(&td, &beta).expect("beta's request").id;

    td.sfctl()
        .args(["task", "close", &alpha, "--reason", "changed our minds"])
        .success();
    td.sfctl().args(["task", "reopen", &beta]).success();
    let alpha_mr = mr_of(&td, &alpha).expect("alpha's request");
    assert_eq!(alpha_mr.state, MergeState::Cancelled, "{alpha_mr:?}");
    let all = mrs(&td);
    let old = all
        .iter()
        .find(|m| m.id == first_beta)
        .expect("beta's first request");
    assert_eq!(old.state, MergeState::Cancelled, "{old:?}");

    // with a merge steward, only beta's redone work lands; closed alpha never does
    steward(&td);
    let t = wait_status(&td, &beta, TaskStatus::Closed);
    assert_eq!(t.runs.len(), 2, "beta was done again: {:?}", t.runs);
    let log = subjects(&td.repo, "main");
    assert!(log.iter().any(|s| s.starts_with("beta")), "{log:?}");
    assert!(!log.iter().any(|s| s.starts_with("alpha")), "{log:?}");
    assert_eq!(td.show_task(&alpha).task.status, TaskStatus::Closed);
}

#[test]
fn a_merge_that_keeps_failing_gives_up_after_max_attempts_fix_rounds() {
    let td = fleet_with("max_attempts = 2", "test_command = \"false\"");
    steward(&td);
    let s = script(&td, "w", "append work.txt more\\n\ncommit more\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("never green", &[]).task.id.to_string();
    let t = wait_status(&td, &id, TaskStatus::Blocked);
    let fixes: Vec<_> = td
        .list_tasks(&["--all"])
        .into_iter()
        .filter(|t| t.title.starts_with("Fix failing tests"))
        .collect();
    assert_eq!(fixes.len(), 2, "two fix rounds, then no more: {fixes:?}");
    let mr = mr_of(&td, &id).expect("its request");
    assert_eq!(mr.state, MergeState::Cancelled, "{mr:?}");
    assert!(
        mr.reason.as_deref().unwrap_or("").contains("giving up"),
        "{mr:?}"
    );
    assert!(
        t.notes.iter().any(|n| n.text.contains("2 fix task(s)")),
        "{:?}",
        t.notes
    );
    let events = td.events(&["--task", &id]);
    assert!(
        events.iter().any(|e| e.action == "task_stuck"),
        "{events:?}"
    );
    td.wait_ticks(3);
    let again: Vec<_> = td
        .list_tasks(&["--all"])
        .into_iter()
        .filter(|t| t.title.starts_with("Fix failing tests"))
        .collect();
    assert_eq!(again.len(), 2, "no further fix task");
}

#[test]
fn sfctl_merge_without_a_message_keeps_the_branch_commit_messages() {
    let td = fleet_with("", BRANCH_TESTS);
    steward(&td);
    let dir = hand_branch(&td, "one", &[("ok.txt", "ok")]);
    git(
        &dir,
        &[
            "commit",
            "-q",
            "--amend",
            "-m",
            "Add the ok file\n\nBecause the tests want it.",
        ],
    );
    td.sfctl().args(["merge", "--branch", "one"]).success();
    let msg = git(&td.repo, &["log", "-1", "--format=%B", "main"]);
    assert!(
        msg.starts_with("Add the ok file\n\nBecause the tests want it."),
        "one commit: its own message\n{msg}"
    );
    let dir = hand_branch(&td, "two", &[("a.txt", "a")]);
    fs::write(dir.join("b.txt"), "b").expect("write");
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "Second step"]);
    td.sfctl().args(["merge", "--branch", "two"]).success();
    let msg = git(&td.repo, &["log", "-1", "--format=%B", "main"]);
    assert!(
        msg.starts_with("Merge branch 'two'\n\n* work on two\n* Second step"),
        "several: listed\n{msg}"
    );
}

#[test]
fn a_request_waiting_on_a_disabled_merge_steward_says_so() {
    let td = fleet_with("", "test_command = \"true\"");
    steward(&td);
    td.sfctl().args(["agent", "disable", "merger"]).success();
    let s = script(&td, "w", "write f.txt x\ncommit f\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("waits", &[]).task.id.to_string();
    let mr = wait_mr(&td, &id, MergeState::Waiting);
    assert!(
        mr.reason.as_deref().is_some_and(
            |r| r.contains("`merger` is disabled") && r.contains("agent enable merger")
        ),
        "{mr:?}"
    );
    td.sfctl().args(["agent", "enable", "merger"]).success();
    wait_status(&td, &id, TaskStatus::Closed);
}

#[test]
fn reopening_a_task_whose_fix_is_in_progress_closes_the_fix_and_stops_its_worker() {
    let td = fleet_with("", "test_command = 'test ! -f BAD'");
    steward(&td);
    let gate = td.root.join("never");
    let s = script(
        &td,
        "w",
        &format!(
            "--- for Fix failing tests\nwrite fix-was-here.txt x\nwait-file {}\n\
             --- for Original\nappend work.txt more\\n\ncommit more\nwrite BAD x\ncommit bad\ncomplete\n",
            gate.display()
        ),
    );
    worker(&td, "w1", &s, &["--max-tasks", "2"]);
    let id = td.create_task("Original", &[]).task.id.to_string();
    let mr = wait_mr(&td, &id, MergeState::NeedsFix);
    let fix = mr.fix_task.expect("a fix task").to_string();
    wait_status(&td, &fix, TaskStatus::InProgress);
    td.sfctl().args(["task", "reopen", &id]).success();
    // the fix goes with the withdrawn request, and its worker is stopped before the original
    // is given to a worker again in the same worktree
    let f = td.wait_for("the fix's run to end", || {
        let f = td.show_task(&fix);
        if f.runs.iter().all(|r| r.ended_at.is_some()) {
            Ok(f)
        } else {
            Err(f.runs)
        }
    });
    assert_eq!(f.task.status, TaskStatus::Closed);
    let fix_ended = f.runs[0].ended_at.expect("ended");
    let t = td.wait_for("the original's second run", || {
        let t = td.show_task(&id);
        if t.runs.len() >= 2 {
            Ok(t)
        } else {
            Err(t.runs)
        }
    });
    assert!(
        t.runs[0].started_at >= fix_ended,
        "the original restarted while the fix still ran: {:?} / {:?}",
        t.runs,
        f.runs
    );
    assert_eq!(
        mrs(&td).iter().find(|m| m.id == mr.id).map(|m| m.state),
        Some(MergeState::Cancelled)
    );
}

#[test]
fn sfctl_merge_names_a_missing_branch_and_says_when_there_is_nothing_to_merge() {
    let td = fleet_with("", BRANCH_TESTS);
    steward(&td);
    let err = td.sfctl().args(["merge", "--branch", "nope"]).fails(1);
    assert!(err.contains("branch `nope` does not exist"), "{err}");
    assert!(!err.contains("target branch"), "{err}");
    git(&td.repo, &["branch", "same", "main"]);
    let out = td.sfctl().args(["merge", "--branch", "same"]).run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("nothing to merge"), "{text}");
    assert!(
        !text.contains(" as \n") && !text.trim_end().ends_with(" as"),
        "{text}"
    );
}

#[test]
fn a_fix_that_adds_no_commit_is_sent_back_to_its_worker_not_retested() {
    let td = fleet_with(
        "",
        "test_command = 'if grep -q BAD src.txt 2>/dev/null; then echo \"tests: BAD\"; exit 1; fi'",
    );
    steward(&td);
    let o = td.create_task("Write the source", &[]).task.id.to_string();
    // the fix worker first tries to complete without changing anything: refused, with the
    // reason; then it fixes the source and completes
    let s = script(
        &td,
        "w",
        "--- for Fix failing tests\n\
         sfctl-fails task complete --summary nothing-changed\n\
         write src.txt GOOD\\n\ncommit fix the source\ncomplete fixed\n\
         --- for Write the source\nwrite src.txt BAD\\n\ncommit write the source\ncomplete\n",
    );
    worker(&td, "w1", &s, &[]);
    wait_status(&td, &o, TaskStatus::Closed);
    let mr = mr_of(&td, &o).expect("the request");
    assert_eq!(mr.state, MergeState::Merged);
    assert_eq!(mr.attempts, 2, "the empty fix was retested: {mr:?}");
    assert_eq!(git(&td.repo, &["show", "main:src.txt"]), "GOOD");
}

/// A test command past `test_timeout` is stopped with everything it started, and the
/// request needs a fix that says so.
#[test]
fn a_test_command_past_its_limit_is_stopped_whole_and_said() {
    // a sleep of this run's own: another run of the suite on the machine has its own
    let marker = format!("sleep 300.{}", std::process::id());
    let td = fleet_with(
        "",
        &format!("test_command = \"{marker} & echo started; wait\"\ntest_timeout = \"1s\""),
    );
    steward(&td);
    let s = script(&td, "w", "write a.txt a\ncommit a\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let a = td.create_task("Slow tests", &[]).task.id.to_string();
    let mr = wait_mr(&td, &a, MergeState::NeedsFix);
    assert!(
        mr.last_result
            .as_deref()
            .is_some_and(|r| r.contains("timed out after 1s")),
        "{mr:?}"
    );
    // the `sleep` the command started in the background went with it (a SIGKILL of its
    // group is delivered at once but reaped as the machine gets to it: waited for, not slept)
    let left = || -> Vec<String> {
        fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.trim() == marker)
            .collect()
    };
    // other tests run in parallel; only this test's sleep would be a leak
    td.wait_for("the test command's background sleep to be gone", || {
        let l = left();
        if l.is_empty() { Ok(()) } else { Err(l) }
    });
}
