//! End-to-end tests: the real `sfd` on a temp socket over a temp git repository, driven
//! through the real `sfctl` (as `sfd-dup` and `sfctl-dup`). One test binary, one module per
//! area; each test starts its own daemon, so they run in parallel under nextest.

mod fleet;
mod harness;

mod agent_failures;
mod agents;
mod agents_env;
mod bounds;
mod cleanup;
mod cli;
mod crash;
mod daemon;
mod demo;
mod deps;
mod dispatch;
mod events;
mod faults;
mod guard;
mod init;
mod layering;
mod ledger;
mod logs;
mod merge;
mod messages;
mod modules;
mod plans;
mod playbooks;
mod protocol;
mod push;
mod real_cli;
mod real_cli_direct;
mod sandbox;
mod secrets;
mod security;
mod selffeed;
mod sessions;
mod soak;
mod staffing;
mod states;
mod stewards;
mod tasks;

/// jj's check: every `.rs` file in this directory is declared as a module, so no test file is
/// silently left out of the build.
#[test]
fn no_forgotten_test_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
    let main = std::fs::read_to_string(dir.join("main.rs")).expect("read main.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read e2e/") {
        let path = entry.expect("dir entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_none_or(|e| e != "rs") || stem == "main" {
            continue;
        }
        if !main.contains(&format!("mod {stem};")) {
            missing.push(stem.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "test files not declared in e2e/main.rs: {missing:?}"
    );
}
