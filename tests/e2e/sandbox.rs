//! `[sandbox] mode = "full"`: a worker whose script tries to cross the boundary (move
//! `main`, write the database, write outside its worktree, read the user's credentials,
//! reach a server on the host's loopback) is refused each time, while its legitimate work
//! (write, commit, `sfctl task complete`) goes through and merges.

use std::fs;

use sf_proto::TaskStatus;

use crate::fleet::{git, steward, wait_status, worker};

#[test]
fn a_sandboxed_worker_is_refused_each_escape_and_its_work_still_merges() {
    let mut td = crate::harness::TestDaemon::stopped();
    crate::fleet::configure(&td, "", "test_command = \"test -f feature.txt\"");
    let cfg = td.repo.join(".sf/config.toml");
    let text = fs::read_to_string(&cfg).expect("config");
    assert!(text.contains("\n[sandbox]\n"), "{text}");
    fs::write(
        &cfg,
        text.replacen("\n[sandbox]\n", "\n[sandbox]\nmode = \"full\"\n", 1),
    )
    .expect("write config");
    td.spawn();
    let st: sf_proto::DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert!(st.sandbox.starts_with("full"), "{}", st.sandbox);
    // what an agent must not reach: the user's credentials, a server on the host
    fs::write(
        td.home.join(".git-credentials"),
        "https://user:token@example.invalid\n",
    )
    .expect("plant credentials");
    let host = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    host.set_nonblocking(true).expect("nonblocking");
    let port = host.local_addr().expect("addr").port();
    steward(&td);
    let id = td
        .create_task("inside the sandbox", &[])
        .task
        .id
        .to_string();
    let main_before = git(&td.repo, &["rev-parse", "main"]);
    // the script where the sandboxed fake agent can read it and write its run markers next
    // to it: the agent's private HOME
    let home = td.repo.join(".sf/home/w1");
    fs::create_dir_all(&home).expect("mkdir the agent's home");
    let s = home.join("w.script");
    fs::write(
        &s,
        format!(
            "write feature.txt done\ncommit add feature\n\
             git-fails update-ref refs/heads/main HEAD\n\
             git-fails update-ref refs/heads/other HEAD\n\
             write-fails {repo}/.sf/sf.db\n\
             write-fails {repo}/.git/hooks/pre-commit\n\
             write-fails {repo}/.git/config\n\
             write-fails {repo}/outside.txt\n\
             read-fails {home}/.git-credentials\n\
             connect-fails 127.0.0.1:{port}\n\
             sfctl-disguised task create planted-by-an-agent\n\
             complete done\n",
            repo = td.repo.display(),
            home = td.home.display(),
        ),
    )
    .expect("write script");
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &id, TaskStatus::Closed);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("completed"),
        "{:?}",
        t.notes
    );
    assert!(host.accept().is_err(), "the host's server was reached");
    assert!(!td.repo.join("outside.txt").exists());
    // main moved once, by the merge queue, to a commit with the work
    let main_after = git(&td.repo, &["rev-parse", "main"]);
    assert_ne!(main_before, main_after);
    assert_eq!(git(&td.repo, &["show", "main:feature.txt"]).trim(), "done");
    // the kernel says who called: the task the agent made without its SF_* variables and as
    // `USER=root` is recorded as the agent's
    let created = td
        .events(&[])
        .into_iter()
        .find(|e| {
            e.action == "task_created"
                && e.subject.contains(
                    &td.list_tasks(&[])
                        .iter()
                        .find(|t| t.title == "planted-by-an-agent")
                        .expect("the task was created")
                        .id
                        .to_string(),
                )
        })
        .expect("its event");
    assert_eq!(created.actor, "agent:w1", "{created:?}");
}

/// A run that points its worktree's `.git` at the main repository, so that sf's commit of
/// its leftovers at completion would land on `main`: the completion is refused, the link is
/// restored before any git work, `worktree_tampered` records it, and `main` does not move.
#[test]
fn a_worktree_whose_git_link_is_rewritten_is_restored_and_recorded() {
    let td = crate::fleet::fleet("max_attempts = 1");
    let id = td.create_task("tamper", &[]).task.id.to_string();
    let main_before = git(&td.repo, &["rev-parse", "main"]);
    let s = crate::fleet::script(
        &td,
        "w",
        &format!(
            "write leftover.txt uncommitted\nwrite .git gitdir: {}/.git\\n\ncomplete done\n",
            td.repo.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &id, TaskStatus::Blocked);
    let tampered: Vec<_> = td
        .events(&[])
        .into_iter()
        .filter(|e| e.action == "worktree_tampered")
        .collect();
    assert!(!tampered.is_empty(), "{:?}", t.notes);
    assert_eq!(
        git(&td.repo, &["rev-parse", "main"]),
        main_before,
        "main moved"
    );
    let wt = td
        .repo
        .join(".sf/worktrees")
        .read_dir()
        .expect("worktrees")
        .flatten()
        .next();
    let gitfile = fs::read_to_string(wt.expect("the worktree").path().join(".git")).expect(".git");
    assert!(gitfile.contains("/.git/worktrees/"), "restored: {gitfile}");
}
