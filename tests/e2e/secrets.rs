//! Invariant 7, nothing secret in the clear: secrets are referenced by alias; a value reaches
//! a worker's environment only when its agent lists the alias, and never the database, the
//! audit events, the daemon's log, or a run's log (what a run prints of a value it holds
//! is written as `[secret:ALIAS]`, also after a restart of sfd).

use std::fs;
use std::time::Duration;

use sf_proto::{AgentDetail, TaskStatus};

use crate::fleet::{FAKE, configure, script, wait_status};
use crate::harness::{TestDaemon, eventually};

const VALUE: &str = "s3cr3t-value-4f9c2e";

fn register(td: &TestDaemon, name: &str, script: &std::path::Path, extra: &[&str]) {
    td.sfctl()
        .args(["agent", "register", name, "--role", "worker", "--command"])
        .arg(format!("{FAKE} {}", script.display()))
        .args(extra)
        .success();
}

#[test]
fn a_secret_reaches_only_the_agents_that_list_it_and_is_never_stored_or_logged() {
    let mut td = TestDaemon::stopped();
    configure(&td, "", "");
    let secret_file = td.root.join("token.txt");
    fs::write(&secret_file, format!("{VALUE}\n")).expect("write secret");
    let cfg = td.repo.join(".sf/config.toml");
    let mut text = fs::read_to_string(&cfg).expect("read config");
    text = text.replacen(
        "\n[secrets]\n",
        &format!(
            "\n[secrets]\nAPI_TOKEN = \"file:{}\"\n",
            secret_file.display()
        ),
        1,
    );
    assert!(
        text.contains("API_TOKEN"),
        "the init config has a [secrets] table:\n{text}"
    );
    fs::write(&cfg, text).expect("write config");
    td.spawn();

    let (seen_a, seen_b) = (td.root.join("seen-a"), td.root.join("seen-b"));
    let a = script(
        &td,
        "a",
        &format!(
            "save-env API_TOKEN {}\ncomplete-no-changes\n",
            seen_a.display()
        ),
    );
    let b = script(
        &td,
        "b",
        &format!(
            "save-env API_TOKEN {}\ncomplete-no-changes\n",
            seen_b.display()
        ),
    );
    register(
        &td,
        "with-secret",
        &a,
        &["--secret", "API_TOKEN", "--skills", "a"],
    );
    register(&td, "without", &b, &["--skills", "b"]);
    let ta = td
        .create_task("needs the token", &["--skill", "a"])
        .task
        .id
        .to_string();
    let tb = td
        .create_task("does not", &["--skill", "b"])
        .task
        .id
        .to_string();
    wait_status(&td, &ta, TaskStatus::Closed);
    wait_status(&td, &tb, TaskStatus::Closed);
    assert_eq!(fs::read_to_string(&seen_a).expect("seen a"), VALUE);
    assert_eq!(
        fs::read_to_string(&seen_b).expect("seen b"),
        "",
        "not listed, not given"
    );

    // the alias is shown, the value is nowhere sfd writes
    let shown: AgentDetail = td.sfctl().args(["agent", "show", "with-secret"]).json();
    assert_eq!(shown.agent.spec.secrets, ["API_TOKEN"]);
    let events = td.sfctl().args(["events"]).success();
    assert!(!events.contains(VALUE));
    td.shutdown();
    let mut leaks = Vec::new();
    for dir in [td.repo.join(".sf"), td.root.clone()] {
        for entry in walk(&dir) {
            if entry == secret_file || entry.starts_with(td.root.join("seen-a")) {
                continue;
            }
            if fs::read(&entry).is_ok_and(|b| b.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()))
            {
                leaks.push(entry);
            }
        }
    }
    assert!(leaks.is_empty(), "the secret value is in {leaks:?}");
}

#[test]
fn an_unknown_secret_alias_is_refused_at_registration() {
    let td = TestDaemon::start();
    let s = td.root.join("noop.script");
    fs::write(&s, "exit 0\n").expect("script");
    let err = td
        .sfctl()
        .args([
            "agent",
            "register",
            "w",
            "--role",
            "worker",
            "--secret",
            "NOPE",
            "--command",
        ])
        .arg(format!("{FAKE} {}", s.display()))
        .fails(1);
    assert!(err.contains("no secret `NOPE`"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

/// What the worker of [`printed`] holds and prints.
const PRINTED: &str = "sk-test-9f8e7d6c5b4a";

/// A worker granted `API_KEY` prints its value: in two writes (split in the middle), then,
/// after a `kill -9` and a restart of sfd, whole. `rotate`: the secret's file gets another
/// value while sfd is down (the run still holds the first), and the run then fails, so that
/// its last lines are quoted in its task's notes. Its log shows the alias each time, and no
/// file under `.sf/` holds the value, while sfd runs and after it stopped.
fn printed(rotate: bool) {
    let mut td = TestDaemon::stopped();
    configure(&td, "max_attempts = 1", "");
    let secret_file = td.root.join("api-key.txt");
    fs::write(&secret_file, format!("{PRINTED}\n")).expect("write secret");
    let cfg = td.repo.join(".sf/config.toml");
    let text = fs::read_to_string(&cfg).expect("read config").replacen(
        "\n[secrets]\n",
        &format!(
            "\n[secrets]\nAPI_KEY = \"file:{}\"\n",
            secret_file.display()
        ),
        1,
    );
    fs::write(&cfg, text).expect("write config");
    td.spawn();

    let gate = td.root.join("restarted");
    // ten characters each side: `sk-test-9f` and `8e7d6c5b4a`, a pause between the writes
    let s = script(
        &td,
        "p",
        &format!(
            "stdout before\n\
             run printf 'split=%s' \"${{API_KEY%??????????}}\"; sleep 0.5; printf '%s\\n' \"${{API_KEY#??????????}}\"\n\
             wait-file {}\n\
             run echo \"after the restart: $API_KEY\"\n\
             {}\n",
            gate.display(),
            if rotate {
                "exit 1"
            } else {
                "complete-no-changes"
            }
        ),
    );
    register(&td, "printer", &s, &["--secret", "API_KEY"]);
    let id = td.create_task("prints its key", &[]).task.id.to_string();
    eventually(
        "the split value in the log",
        Duration::from_secs(30),
        || {
            let log = td.sfctl().args(["logs", &id]).success();
            log.contains("split=[secret:API_KEY]\n").then_some(())
        },
    );
    td.kill9();
    if rotate {
        fs::write(&secret_file, "sk-test-rotated-0000\n").expect("rotate secret");
        // the run prints and fails once adopted (the output of a process that ends while
        // no sfd reads its FIFO is lost with the FIFO); a request is answered after the
        // recovery
        td.spawn();
        td.show_task(&id);
        fs::write(&gate, "").expect("open the gate");
    } else {
        // the run prints while sfd is down: the next sfd's copier drains it
        fs::write(&gate, "").expect("open the gate");
        td.spawn();
    }
    let ended = wait_status(
        &td,
        &id,
        if rotate {
            TaskStatus::Blocked
        } else {
            TaskStatus::Closed
        },
    );
    if rotate {
        let notes: Vec<&str> = ended.notes.iter().map(|n| n.text.as_str()).collect();
        let notes = notes.join("\n");
        assert!(
            notes.contains("after the restart: [secret:API_KEY]"),
            "the failure's note quotes the log's last lines: {notes}"
        );
    }
    td.wait_for("the run to end", || {
        let t = td.show_task(&id);
        if t.runs.first().is_some_and(|r| r.ended_at.is_some()) {
            Ok(())
        } else {
            Err(t.runs)
        }
    });

    let log = td.sfctl().args(["logs", &id]).success();
    assert!(
        log.contains("before\nsplit=[secret:API_KEY]\n"),
        "the value printed in two writes: {log}"
    );
    assert!(
        log.contains("after the restart: [secret:API_KEY]\n"),
        "the value printed to the next sfd: {log}"
    );
    assert!(!log.contains("9f8e7d"), "{log}");
    let sf_dir = td.repo.join(".sf");
    let leaks = |when: &str| {
        let found: Vec<_> = walk(&sf_dir)
            .into_iter()
            .filter(|p| {
                // the live FIFO and the socket are not files to read
                fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
                    && fs::read(p)
                        .is_ok_and(|b| b.windows(PRINTED.len()).any(|w| w == PRINTED.as_bytes()))
            })
            .collect();
        assert!(found.is_empty(), "{when}, the value is in {found:?}");
    };
    leaks("while sfd runs");
    td.shutdown();
    leaks("after sfd stopped");
}

#[test]
fn a_secret_a_worker_prints_is_logged_as_its_alias_also_across_a_restart() {
    printed(false);
}

#[test]
fn a_secret_whose_source_changed_while_sfd_was_down_is_still_filtered_also_from_the_failure_note() {
    printed(true);
}

/// Every file below `dir` (skipping the git objects of a `.git` directory, which sfd never
/// writes secrets into and which are large).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "objects")
                && p.parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|n| n == ".git")
            {
                continue;
            }
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
