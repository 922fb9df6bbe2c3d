//! `[sandbox] mode = "full"`: a worker whose script tries to cross the boundary (move
//! `main`, write the database, write outside its worktree, read the user's credentials,
//! reach a server on the host's loopback) is refused each time, while its legitimate work
//! (write, commit, `sfctl task complete`) goes through and merges.

use std::fs;

use sf_proto::TaskStatus;

use crate::fleet::{git, steward, wait_status, worker};

/// A daemon with `[sandbox] mode = "full"` and `sandbox` lines in that table (`merge`
/// lines in `[merge]`), run by an ordinary user: as root (CI), the `sftest` user that
/// `.ci/run` creates (or `nobody`).
fn sandboxed(merge: &str, sandbox: &str) -> crate::harness::TestDaemon {
    let mut td = sandboxed_stopped(merge, sandbox);
    td.spawn();
    td
}

/// [`sandboxed`], before the daemon starts: for a test that prepares more (files it writes
/// go to sfd's user with `td.give`).
pub(crate) fn sandboxed_stopped(merge: &str, sandbox: &str) -> crate::harness::TestDaemon {
    let mut td = crate::harness::TestDaemon::stopped();
    crate::fleet::configure(&td, "", merge);
    td.sandbox_mode(&format!("mode = \"full\"\n{sandbox}"));
    let cfg = td.repo.join(".sf/config.toml");
    let text = fs::read_to_string(&cfg).expect("config");
    let sfctl = crate::harness::reachable(crate::harness::SFCTL);
    let text = text.replacen(
        &format!("sfctl = \"{}\"", crate::harness::SFCTL),
        &format!("sfctl = \"{}\"", sfctl.display()),
        1,
    );
    fs::write(&cfg, text).expect("write config");
    if nix::unistd::Uid::effective().is_root() {
        let user = ["sftest", "nobody"]
            .into_iter()
            .find_map(|n| nix::unistd::User::from_name(n).ok().flatten())
            .expect("an ordinary user to run sfd as: `.ci/run` creates `sftest` (useradd --system sftest)");
        td.run_as(user.uid.as_raw(), user.gid.as_raw());
    }
    td
}

/// A worker builds and tests a Rust crate with `cargo test --offline` inside the sandbox
/// (its toolchain found through the `CARGO_HOME` and `RUSTUP_HOME` sfd gives it with its
/// private HOME), commits it, and the merge test runs `cargo test --offline` on it too, in
/// the merge queue's sandbox. As root (CI), the toolchain sits under /root, which no other
/// user can read: then sfd runs as root, in the same sandbox.
#[test]
fn cargo_test_works_inside_the_sandbox_for_the_worker_and_the_merge_test() {
    let mut td = crate::harness::TestDaemon::stopped();
    crate::fleet::configure(&td, "", "test_command = \"cargo test --offline --quiet\"");
    td.sandbox_mode("mode = \"full\"");
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let toolchain_private = home.is_some_and(|h| {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(&h).is_ok_and(|m| m.permissions().mode() & 0o005 == 0)
    });
    if nix::unistd::Uid::effective().is_root() && !toolchain_private {
        let user = nix::unistd::User::from_name("sftest")
            .ok()
            .flatten()
            .expect("`.ci/run` creates sftest");
        td.run_as(user.uid.as_raw(), user.gid.as_raw());
    }
    // sfd finds the toolchain through the user's HOME, as a user's daemon would
    let real_home = std::env::var("HOME").unwrap_or_default();
    let path = std::env::var("PATH").unwrap_or_default();
    td.spawn_with(&[("HOME", real_home.as_str()), ("PATH", path.as_str())]);
    steward(&td);
    let id = td.create_task("a crate", &[]).task.id.to_string();
    let s = script_inside(
        &td,
        "w1",
        "write Cargo.toml [package]\\nname = \"c\"\\nversion = \"0.1.0\"\\nedition = \"2021\"\\n\n\
         write src/lib.rs #[test]\\nfn adds() { assert_eq!(1 + 1, 2); }\\n\n\
         write .gitignore /target\\n\n\
         run cargo test --offline --quiet\n\
         commit add a crate\ncomplete done\n",
    );
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &id, TaskStatus::Closed);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("completed"),
        "{:?}",
        t.notes
    );
    assert!(
        git(&td.repo, &["show", "main:src/lib.rs"]).contains("fn adds"),
        "merged after the sandboxed merge test"
    );
}

/// Writes a fake agent's script where the sandboxed agent `agent` can read it (and write
/// its run markers next to it): its private HOME.
pub(crate) fn script_inside(
    td: &crate::harness::TestDaemon,
    agent: &str,
    text: &str,
) -> std::path::PathBuf {
    let home = td.repo.join(".sf/home").join(agent);
    fs::create_dir_all(&home).expect("mkdir the agent's home");
    let s = home.join(format!("{agent}.script"));
    fs::write(&s, text).expect("write script");
    td.give(&td.repo.join(".sf/home"));
    s
}

/// A one-answer HTTP server on the host's loopback: it answers each connection with
/// `body`, and counts the connections it served.
fn http_server(body: &'static str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&served);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, served)
}

/// The network of a sandboxed worker is sfd's egress proxy: it cannot resolve a name or
/// reach the host's loopback directly, reaches an allowed host through the proxy (a plain
/// request and a CONNECT tunnel), is answered 403 for any other host, and each connection
/// is recorded with its rule (`agent egress`), a denied one also as an event.
#[test]
fn a_sandboxed_worker_reaches_only_allowed_hosts_through_the_proxy() {
    let (allowed, allowed_served) = http_server("hello from the allowed host");
    let (other, other_served) = http_server("you should not see this");
    let td = sandboxed(
        "",
        &format!("[sandbox.egress]\ncommand = [\"127.0.0.1:{allowed}\"]"),
    );
    let id = td.create_task("reach out", &[]).task.id.to_string();
    let s = script_inside(
        &td,
        "w1",
        &format!(
            "resolve-fails example.com\n\
             connect-fails 127.0.0.1:{allowed}\n\
             proxy-get http://127.0.0.1:{allowed}/v1/x hello from the allowed host\n\
             proxy-tunnel 127.0.0.1:{allowed} hello from the allowed host\n\
             proxy-denied 127.0.0.1:{other} 403\n\
             write feature.txt done\ncommit add feature\ncomplete done\n"
        ),
    );
    worker(&td, "w1", &s, &[]);
    let t = wait_status(&td, &id, TaskStatus::Review);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("completed"),
        "{:?}",
        t.notes
    );
    assert_eq!(
        allowed_served.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the allowed host was reached twice, through the proxy only"
    );
    assert_eq!(
        other_served.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a host no rule allows was reached"
    );
    // a connection is recorded when both ends have closed it
    let records = td.wait_for("the three connections' records", || {
        let r: Vec<sf_proto::EgressRecord> = td.sfctl().args(["agent", "egress", "w1"]).json();
        if r.len() == 3 { Ok(r) } else { Err(r) }
    });
    let denied: Vec<_> = records.iter().filter(|r| !r.allowed).collect();
    assert_eq!(denied.len(), 1, "{records:?}");
    assert_eq!(
        (denied[0].port, denied[0].rule.as_str()),
        (other, "default-deny")
    );
    for r in records.iter().filter(|r| r.allowed) {
        assert_eq!(
            (r.port, r.rule.as_str()),
            (allowed, "adapter:command"),
            "{r:?}"
        );
        assert!(r.bytes_in > 0 && r.bytes_out > 0, "{r:?}");
        assert_eq!(r.run, t.runs[0].id);
    }
    // a `command` agent has no pre-call hook: its ledger is what its proxy saw
    let calls: Vec<sf_proto::ToolCallRecord> =
        td.sfctl().args(["agent", "tool-calls", "w1"]).json();
    let mut seen: Vec<(String, String)> = calls
        .iter()
        .map(|c| (c.source.clone() + " " + &c.tool, c.decision.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("proxy Network".to_owned(), "allow".to_owned()),
            ("proxy Network".to_owned(), "allow".to_owned()),
            ("proxy Network".to_owned(), "deny".to_owned()),
        ],
        "{calls:#?}"
    );
    let events = td.events(&[]);
    let ev = events
        .iter()
        .find(|e| e.action == "egress_denied")
        .expect("the denial is an event");
    assert!(ev.subject.contains(&id), "{ev:?}");
    // only that run's, and the table fits
    let none: Vec<sf_proto::EgressRecord> = td
        .sfctl()
        .args(["agent", "egress", "w1", "--run", "999999"])
        .json();
    assert!(none.is_empty());
    let out = td.sfctl().args(["agent", "egress", "w1"]).success();
    assert!(
        out.contains("default-deny") && out.contains("adapter:command"),
        "{out}"
    );
}

#[test]
fn a_sandboxed_worker_is_refused_each_escape_and_its_work_still_merges() {
    let mut td = sandboxed_stopped("", "");
    // the worktree's setup command and the merge test run in the sandbox too: each tries
    // to write outside (the tempdir is sfd's user's), the tests also to move `main`
    let root = td.root.display().to_string();
    let cfg = td.repo.join(".sf/config.toml");
    let text = fs::read_to_string(&cfg).expect("config");
    let text = text
        .replacen(
            "\n[merge]\n",
            &format!(
                "\n[merge]\ntest_command = 'test -f feature.txt && test -f setup-ran && \
                 ! touch {root}/planted-by-tests && ! git update-ref refs/heads/main HEAD'\n"
            ),
            1,
        )
        .replacen(
            "\n[worktree]\n",
            &format!(
                "\n[worktree]\nsetup = 'touch setup-ran && ! touch {root}/planted-by-setup'\n"
            ),
            1,
        );
    fs::write(&cfg, text).expect("write config");
    td.give(&cfg);
    td.spawn();
    let st: sf_proto::DaemonStatus = td.sfctl().args(["daemon", "status"]).json();
    assert!(st.sandbox.starts_with("full"), "{}", st.sandbox);
    // what an agent must not reach: the user's credentials, a server on the host
    fs::write(
        td.home.join(".git-credentials"),
        "https://user:token@example.invalid\n",
    )
    .expect("plant credentials");
    fs::create_dir_all(td.home.join(".ssh")).expect("mkdir .ssh");
    fs::write(td.home.join(".ssh/id_ed25519"), "a private key\n").expect("plant a key");
    td.give(&td.home);
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
    let s = script_inside(
        &td,
        "w1",
        &format!(
            "write feature.txt done\ncommit add feature\n\
             git-fails update-ref refs/heads/main HEAD\n\
             git-fails update-ref refs/heads/other HEAD\n\
             write-fails {repo}/.sf/sf.db\n\
             read-fails {repo}/.sf/sf.db\n\
             read-fails {repo}/.sf/config.toml\n\
             write-fails {repo}/.git/hooks/pre-commit\n\
             write-fails {repo}/.git/config\n\
             write-fails {repo}/outside.txt\n\
             read-fails {home}/.git-credentials\n\
             read-fails {home}/.ssh/id_ed25519\n\
             signal-fails {sfd}\n\
             connect-fails 127.0.0.1:{port}\n\
             sfctl-disguised task create planted-by-an-agent\n\
             complete done\n",
            repo = td.repo.display(),
            home = td.home.display(),
            sfd = st.pid,
        ),
    );
    worker(&td, "w1", &s, &[]);
    let shown = td.sfctl().args(["agent", "show", "w1"]).success();
    assert!(
        shown.contains("sandbox") && shown.contains("full ("),
        "{shown}"
    );
    let t = wait_status(&td, &id, TaskStatus::Closed);
    assert_eq!(
        t.runs[0].outcome.as_deref(),
        Some("completed"),
        "{:?}",
        t.notes
    );
    assert!(host.accept().is_err(), "the host's server was reached");
    assert!(!td.repo.join("outside.txt").exists());
    assert!(!td.root.join("planted-by-tests").exists());
    assert!(!td.root.join("planted-by-setup").exists());
    assert_eq!(
        git(&td.repo, &["show", "main:setup-ran"]),
        "",
        "the setup ran"
    );
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

/// A sandboxed run that holds another agent's lease (here handed to it; it cannot read one
/// itself) still cannot act on that task: its calls are its own agent's, and a lease of
/// another agent is refused for `task complete`, `task handoff` alike.
#[test]
fn a_sandboxed_run_cannot_use_another_agents_lease() {
    let td = sandboxed("", "");
    let a = td.create_task("w1's task", &[]).task.id.to_string();
    let home1 = td.repo.join(".sf/home/w1");
    let s1 = script_inside(
        &td,
        "w1",
        &format!(
            "write a.txt a\ncommit a\nsave-env SF_RUN {h}/token\nwait-file {h}/go\ncomplete mine\n",
            h = home1.display()
        ),
    );
    worker(&td, "w1", &s1, &[]);
    let token = td.wait_for("w1's lease", || {
        fs::read_to_string(home1.join("token"))
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or("none yet")
    });
    let home2 = td.repo.join(".sf/home/w2");
    fs::create_dir_all(&home2).expect("mkdir");
    fs::write(home2.join("stolen"), token.trim()).expect("hand the lease over");
    let b = td.create_task("w2's task", &[]).task.id.to_string();
    let s2 = script_inside(
        &td,
        "w2",
        &format!(
            "run ! SF_RUN=$(cat {h}/stolen) \"$SF_SFCTL\" task complete --summary stolen\n\
             run ! SF_RUN=$(cat {h}/stolen) \"$SF_SFCTL\" task handoff --note stolen\n\
             write b.txt b\ncommit b\ncomplete mine\n",
            h = home2.display()
        ),
    );
    worker(&td, "w2", &s2, &[]);
    // w2's one run was refused both (its script goes on only if each call fails) and
    // completed its own task
    let tb = wait_status(&td, &b, TaskStatus::Review);
    assert_eq!(tb.runs.len(), 1, "{:?}", tb.notes);
    assert_eq!(
        tb.runs[0].outcome.as_deref(),
        Some("completed"),
        "{:?}",
        tb.notes
    );
    // w1's task is still w1's first run's, in progress: nobody completed or handed it off
    // (its work is committed: a completion with its lease would have gone through)
    let ta = td.show_task(&a);
    assert_eq!(ta.task.status, TaskStatus::InProgress, "{ta:?}");
    assert_eq!(ta.runs.len(), 1, "{:?}", ta.runs);
    assert!(ta.runs[0].ended_at.is_none(), "{:?}", ta.runs);
    fs::write(home1.join("go"), "").expect("go");
    td.give(&home1.join("go"));
    let ta = wait_status(&td, &a, TaskStatus::Review);
    assert_eq!(
        ta.runs[0].outcome.as_deref(),
        Some("completed"),
        "{:?}",
        ta.notes
    );
}
