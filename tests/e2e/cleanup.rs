//! Worktrees and branches of work that is done do not pile up (issue 10, item 4): a task
//! closed by a human gives its worktree back (uncommitted work saved) and its branch is
//! archived, and a reopen goes on from that work; a playbook's shell step leaves no branch;
//! `sfctl gc` cleans what is left, `--dry-run` first, and leaves alone what is not sf's.

use std::fs;
use std::path::Path;

use sf_proto::{GcReport, PlanDetail, TaskStatus};

use crate::fleet::{fleet, git, git_ok, script, wait_started, wait_status, worker};
use crate::harness::TestDaemon;

fn has_ref(repo: &Path, name: &str) -> bool {
    git_ok(repo, &["rev-parse", "--verify", "--quiet", name])
}

/// Waits until the janitor has removed `dir` and the branch `branch`.
fn wait_retired(td: &TestDaemon, dir: &Path, branch: &str) {
    td.wait_for("the worktree and branch to be retired", || {
        let (d, b) = (
            dir.exists(),
            has_ref(&td.repo, &format!("refs/heads/{branch}")),
        );
        if !d && !b {
            Ok(())
        } else {
            Err(format!("worktree there: {d}, branch there: {b}"))
        }
    });
}

#[test]
fn a_task_closed_by_hand_gives_back_its_worktree_and_a_reopen_gets_its_work_back() {
    let td = fleet("");
    let gate = td.root.join("gate");
    let s = script(
        &td,
        "w",
        &format!(
            "--- for Half done\nwrite a.txt committed\ncommit part one\nwrite b.txt uncommitted\n\
             touch {g}.started\nwait-file {g}\nexit 1\n\
             --- for Half done\nexpect-file a.txt\nexpect-file b.txt\ncomplete carried on\n",
            g = gate.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("Half done", &[]).task.id.to_string();
    wait_started(&td, &gate, &id);
    let t = td.show_task(&id);
    let (branch, dir) = (
        t.branch.clone().expect("a branch"),
        td.repo
            .join(".sf/worktrees")
            .join(t.worktree.as_deref().expect("a worktree")),
    );
    assert!(dir.exists());
    td.sfctl()
        .args(["task", "close", &id, "--reason", "not now"])
        .success();
    wait_retired(&td, &dir, &branch);
    // nothing is lost: the committed and the uncommitted work are in the archive
    let archive = format!("refs/sf/archive/{id}");
    assert_eq!(
        git(&td.repo, &["show", &format!("{archive}:a.txt")]),
        "committed"
    );
    assert_eq!(
        git(&td.repo, &["show", &format!("{archive}:b.txt")]),
        "uncommitted"
    );
    // the janitor records its pass once its git work is done: after the worktree is gone
    td.wait_for("the clean-up's event", || {
        let n = td
            .events(&[])
            .iter()
            .filter(|e| e.action == "cleaned_up")
            .count();
        if n > 0 { Ok(()) } else { Err(n) }
    });
    // reopened, the task goes on from its archived branch, in a new worktree
    td.sfctl().args(["task", "reopen", &id]).success();
    wait_status(&td, &id, TaskStatus::Review);
    let runs = td.show_task(&id).runs;
    assert_eq!(runs.len(), 2, "{runs:?}");
}

const SHELL_ONLY: &str = r#"
name = "lint"
title = "Lint"
description = "a shell step alone"

[[steps]]
id = "check"
title = "Check the tree"
kind = "shell"
command = "test -f README.md"
"#;

#[test]
fn a_shell_step_that_does_not_commit_leaves_no_branch_or_worktree() {
    let td = fleet("");
    fs::write(td.repo.join(".sf/playbooks/lint.toml"), SHELL_ONLY).expect("write playbook");
    let plan: PlanDetail = td.sfctl().args(["playbook", "run", "lint"]).json();
    let step = plan.tasks[0].id.to_string();
    let t = wait_status(&td, &step, TaskStatus::Closed);
    let branch = t.branch.clone().expect("a branch");
    assert!(branch.starts_with("agent/sf-shell/"), "{branch}");
    let dir = td
        .repo
        .join(".sf/worktrees")
        .join(t.worktree.as_deref().expect("a worktree"));
    wait_retired(&td, &dir, &branch);
    // nothing of it was worth keeping: no archive either
    assert!(!has_ref(&td.repo, &format!("refs/sf/archive/{step}")));
    assert_eq!(
        git(&td.repo, &["branch", "--list", "agent/*"]),
        "",
        "branches left"
    );
}

#[test]
fn gc_dry_run_says_what_would_go_and_gc_removes_it_leaving_what_is_not_sfs() {
    let td = fleet("");
    // the daemon's own start-up clean-up is over once it answers a request
    td.sfctl().args(["task", "list"]).success();
    // a worktree no task uses (left by an older sf, say), with a file never committed
    let stray = td.repo.join(".sf/worktrees/stray");
    git(
        &td.repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "agent/old/stray",
            stray.to_str().expect("utf-8"),
            "main",
        ],
    );
    fs::write(stray.join("notes.txt"), "mine\n").expect("write");
    // a branch under agent/ that no task names: not known to be sf's
    git(&td.repo, &["branch", "agent/someone/idea", "main"]);

    let dry: GcReport = td.sfctl().args(["gc", "--dry-run"]).json();
    assert!(dry.dry_run);
    assert_eq!(
        dry.actions,
        ["remove worktree .sf/worktrees/stray (no task uses it)"]
    );
    assert!(stray.exists(), "a dry run removed it");
    let text = td.sfctl().args(["gc", "-n"]).success();
    assert!(text.starts_with("would remove worktree"), "{text}");

    let done: GcReport = td.sfctl().args(["gc"]).json();
    assert!(!done.dry_run);
    assert_eq!(done.actions.len(), 1, "{:?}", done.actions);
    assert!(
        done.actions[0].contains("uncommitted work is saved"),
        "{:?}",
        done.actions
    );
    assert!(!stray.exists());
    // the file is saved, on the worktree's branch (kept: no task names it)
    assert_eq!(
        git(&td.repo, &["show", "agent/old/stray:notes.txt"]),
        "mine"
    );
    assert!(has_ref(&td.repo, "refs/heads/agent/someone/idea"));
    assert_eq!(
        td.sfctl().args(["gc"]).success().trim(),
        "nothing to clean up"
    );
}
