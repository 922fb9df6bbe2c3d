//! Faults in the middle of git work: `sfd` killed half-way through a worktree's checkout,
//! right after the target moved, half-way through bringing the user's checkout along; lock
//! files and admin folders that killed git operations leave. Afterwards no file is lost from
//! `main`, no work is lost, and nothing stays wedged. The kills are real (`SIGKILL`), placed
//! with the daemon's `SF_TEST_CRASH_AT` hook so each lands at its exact step.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sf_proto::{AuditEvent, MergeState, TaskStatus};

use crate::fleet::{configure, git, mr_of, script, steward, wait_status, worker};
use crate::harness::{TestDaemon, eventually};

/// Commits `n` files `bulk/f<i>.txt` on `main` in the user's checkout.
fn commit_bulk(repo: &Path, n: usize) {
    fs::create_dir_all(repo.join("bulk")).expect("mkdir bulk");
    for i in 0..n {
        fs::write(repo.join(format!("bulk/f{i}.txt")), format!("file {i}\n")).expect("write");
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "bulk files"]);
}

/// Files tracked by `rev`.
fn tracked(repo: &Path, rev: &str) -> Vec<String> {
    git(repo, &["ls-tree", "-r", "--name-only", rev])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn repairs(td: &TestDaemon) -> Vec<AuditEvent> {
    td.events(&["--limit", "1000"])
        .into_iter()
        .filter(|e| e.action == "git_repaired")
        .collect()
}

fn repaired_text(td: &TestDaemon) -> String {
    repairs(td)
        .iter()
        .map(|e| {
            e.after
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A stopped workspace with workers and the merge queue configured (`test_command = "true"`).
fn workspace() -> TestDaemon {
    let td = TestDaemon::stopped();
    configure(&td, "", "test_command = \"true\"");
    td
}

/// [`workspace`] with the daemon started.
fn running() -> TestDaemon {
    let mut td = workspace();
    td.spawn();
    td
}

/// Writes a lock file as a killed git would leave it, `age` old.
fn stale_lock(path: &Path, age: Duration) {
    fs::write(path, "").expect("write lock");
    let f = fs::File::options()
        .write(true)
        .open(path)
        .expect("open lock");
    f.set_modified(SystemTime::now() - age)
        .expect("backdate lock");
}

#[test]
fn a_kill_half_way_through_a_new_worktrees_checkout_never_deletes_files_from_main() {
    const FILES: usize = 600;
    let mut td = workspace();
    commit_bulk(&td.repo, FILES);
    td.spawn_with(&[("SF_TEST_CRASH_AT", "worktree_checkout")]);
    steward(&td);
    let a = td.create_task("Add a note", &[]).task.id.to_string();
    let s = script(&td, "w", "write note.txt hello\ncommit note\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    td.wait_crashed(Duration::from_secs(30));
    let wt = fs::read_dir(td.repo.join(".sf/worktrees"))
        .expect("the worktree directory")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&a))
        .expect("the half-made worktree")
        .path();
    let present = fs::read_dir(wt.join("bulk")).map_or(0, |d| d.count());
    assert!(
        present < FILES,
        "the kill was meant to land mid-checkout, but {present} of {FILES} files are there"
    );

    td.spawn();
    wait_status(&td, &a, TaskStatus::Closed);
    let files = tracked(&td.repo, "main");
    for i in 0..FILES {
        assert!(
            files.contains(&format!("bulk/f{i}.txt")),
            "main lost bulk/f{i}.txt: {} files tracked",
            files.len()
        );
    }
    assert!(files.contains(&"note.txt".to_owned()));
    let diff = git(&td.repo, &["diff", "--name-status", "main~1", "main"]);
    assert_eq!(diff, "A\tnote.txt", "the merge did more than add the note");
    assert!(
        repaired_text(&td).contains("half-made worktree"),
        "no git_repaired event names the half-made worktree: {:?}",
        repairs(&td)
    );
}

#[test]
fn an_empty_admin_folder_left_by_a_kill_does_not_wedge_the_task() {
    let td = running();
    steward(&td);
    let a = td.create_task("Add a note", &[]).task.id.to_string();
    // what a kill between creating git's admin folder and writing into it leaves
    fs::create_dir_all(td.repo.join(".git/worktrees").join(&a)).expect("mkdir admin");
    let s = script(&td, "w", "write note.txt hello\ncommit note\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &a, TaskStatus::Closed);
    assert_eq!(t.attempts, 0, "an attempt was charged: {:?}", t.notes);
    assert!(tracked(&td.repo, "main").contains(&"note.txt".to_owned()));
    assert!(repaired_text(&td).contains("half-made worktree"));
}

#[test]
fn a_stale_index_lock_in_a_worktree_is_removed_and_the_completion_commits_the_work() {
    let td = running();
    steward(&td);
    let a = td
        .create_task("Leave work uncommitted", &[])
        .task
        .id
        .to_string();
    let lock = td.repo.join(".git/worktrees").join(&a).join("index.lock");
    // the worker leaves work uncommitted and an index.lock behind (as a git killed in its
    // shell would), then completes: the work must land
    let s = script(
        &td,
        "w",
        &format!(
            "write work.txt precious\ntouch {}\ncomplete\n",
            lock.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    wait_status(&td, &a, TaskStatus::Closed);
    assert_eq!(git(&td.repo, &["show", "main:work.txt"]), "precious");
    assert!(
        repaired_text(&td).contains("index.lock"),
        "{:?}",
        repairs(&td)
    );
}

#[test]
fn a_stale_index_lock_does_not_stop_a_failed_runs_work_from_being_saved() {
    let td = {
        let mut td = TestDaemon::stopped();
        configure(&td, "max_attempts = 1", "");
        td.spawn();
        td
    };
    let a = td.create_task("Crash with work", &[]).task.id.to_string();
    let lock = td.repo.join(".git/worktrees").join(&a).join("index.lock");
    let s = script(
        &td,
        "w",
        &format!(
            "write work.txt precious\ntouch {}\nexit 3\n",
            lock.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &a, TaskStatus::Blocked);
    let wip = git(
        &td.repo,
        &["for-each-ref", "--format=%(refname)", "refs/sf/wip/"],
    );
    assert!(!wip.is_empty(), "no WIP ref was made: {:?}", t.notes);
    assert_eq!(
        git(
            &td.repo,
            &[
                "show",
                &format!("{}:work.txt", wip.lines().next().unwrap_or_default())
            ]
        ),
        "precious"
    );
}

#[test]
fn stale_locks_on_the_target_and_the_users_index_do_not_stop_the_merge_queue() {
    let td = running();
    steward(&td);
    // left by a git killed a minute ago in the user's checkout
    stale_lock(
        &td.repo.join(".git/refs/heads/main.lock"),
        Duration::from_secs(60),
    );
    stale_lock(&td.repo.join(".git/index.lock"), Duration::from_secs(60));
    let a = td.create_task("Add a note", &[]).task.id.to_string();
    let s = script(&td, "w", "write note.txt hello\ncommit note\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    wait_status(&td, &a, TaskStatus::Closed);
    assert_eq!(git(&td.repo, &["show", "main:note.txt"]), "hello");
    assert_eq!(git(&td.repo, &["status", "--porcelain"]), "");
    assert!(
        td.repo.join("note.txt").is_file(),
        "the checkout was brought along"
    );
    let text = repaired_text(&td);
    assert!(
        text.contains("main.lock") && text.contains("index.lock"),
        "{text}"
    );
}

#[test]
fn a_lock_that_a_live_process_holds_is_left_alone() {
    let td = running();
    steward(&td);
    // a git in the user's checkout holds the target's lock (open, an hour old)
    let lock = td.repo.join(".git/refs/heads/main.lock");
    stale_lock(&lock, Duration::from_secs(3600));
    let held = fs::File::open(&lock).expect("hold the lock");
    let a = td.create_task("Add a note", &[]).task.id.to_string();
    let s = script(&td, "w", "write note.txt hello\ncommit note\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let mr = td.wait_for("the merge to wait on the held lock", || {
        match mr_of(&td, &a) {
            Some(m)
                if m.state == MergeState::Waiting
                    && m.reason.as_deref().is_some_and(|r| r.contains("lock")) =>
            {
                Ok(m)
            }
            other => Err(Box::new(other)),
        }
    });
    assert!(lock.exists(), "a held lock was removed: {mr:?}");
    drop(held);
    // once its holder let go, it is a leftover like any other
    wait_status(&td, &a, TaskStatus::Closed);
    assert_eq!(git(&td.repo, &["show", "main:note.txt"]), "hello");
}

#[test]
fn a_kill_right_after_the_target_moved_is_recorded_as_that_merge_on_restart() {
    let mut td = workspace();
    td.spawn_with(&[("SF_TEST_CRASH_AT", "target_moved")]);
    steward(&td);
    let base = git(&td.repo, &["rev-parse", "main"]);
    let a = td.create_task("Add a note", &[]).task.id.to_string();
    let s = script(&td, "w", "write note.txt hello\ncommit note\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    td.wait_crashed(Duration::from_secs(30));
    let landed = git(&td.repo, &["rev-parse", "main"]);
    assert_ne!(
        landed, base,
        "the kill was meant to land after the target moved"
    );

    td.spawn();
    let t = wait_status(&td, &a, TaskStatus::Closed);
    let mr = mr_of(&td, &a).expect("the request");
    assert_eq!(mr.state, MergeState::Merged);
    assert_eq!(mr.commit.as_deref(), Some(landed.as_str()), "{mr:?}");
    assert_eq!(
        git(&td.repo, &["rev-parse", "main"]),
        landed,
        "merged twice"
    );
    assert!(
        t.events
            .iter()
            .filter(|e| e.action == "task_merged")
            .count()
            == 1,
        "{:?}",
        t.events
    );
    let branch = t.branch.clone().expect("the task's branch");
    eventually(
        "the branch to be archived and deleted",
        Duration::from_secs(15),
        || {
            let left = git(&td.repo, &["branch", "--list", &branch]);
            let archived = git(&td.repo, &["for-each-ref", &format!("refs/sf/archive/{a}")]);
            (left.is_empty() && !archived.is_empty()).then_some(())
        },
    );
    assert_eq!(git(&td.repo, &["status", "--porcelain"]), "");
}

#[test]
fn a_kill_while_the_users_checkout_is_brought_along_is_finished_on_restart() {
    const FILES: usize = 40;
    let mut td = workspace();
    td.spawn_with(&[("SF_TEST_CRASH_AT", "checkout_sync")]);
    steward(&td);
    let a = td.create_task("Add many files", &[]).task.id.to_string();
    let mut text = String::from("--- for Add many files\n");
    for i in 0..FILES {
        text.push_str(&format!("write new/f{i}.txt {i}\n"));
    }
    text.push_str(
        "commit many\ncomplete\n--- for Add one more\nwrite more.txt more\ncommit more\ncomplete\n",
    );
    let s = script(&td, "w", &text);
    worker(&td, "w1", &s, &[]);
    td.wait_crashed(Duration::from_secs(30));
    let status = git(&td.repo, &["status", "--porcelain"]);
    assert!(
        !status.is_empty(),
        "the kill was meant to leave the checkout half brought along"
    );

    td.spawn();
    wait_status(&td, &a, TaskStatus::Closed);
    assert_eq!(git(&td.repo, &["status", "--porcelain"]), "");
    for i in 0..FILES {
        assert!(td.repo.join(format!("new/f{i}.txt")).is_file());
    }
    // the queue goes on: a second merge is not held on "local changes"
    let b = td.create_task("Add one more", &[]).task.id.to_string();
    wait_status(&td, &b, TaskStatus::Closed);
    assert!(
        repaired_text(&td).contains("finished bringing your checkout"),
        "{:?}",
        repairs(&td)
    );
}
