//! Invariant 7, nothing secret in the clear: secrets are referenced by alias; a value reaches
//! a worker's environment only when its agent lists the alias, and never the database, the
//! audit events or the daemon's log.

use std::fs;

use sf_proto::{AgentDetail, TaskStatus};

use crate::fleet::{FAKE, configure, script, wait_status};
use crate::harness::TestDaemon;

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
            // worker logs are the agent's own output; sfd's own files must be clean
            let name = entry.display().to_string();
            if name.contains("/.sf/logs/") && !name.ends_with("sfd.log") {
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

/// Every file below `dir` (skipping the repository's own git objects, which sfd never
/// writes secrets into and which are large).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "objects") {
                continue;
            }
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
