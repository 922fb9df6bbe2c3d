//! An agent's state says what is true (issue 10, item 12): a disabled agent is `disabled`,
//! a worker whose task a human closed is `stopped` (not `failed`), and the merge steward
//! counts the merges it ran instead of staying `never-run`.

use sf_proto::{AgentState, AgentSummary, MergeState, TaskStatus};

use crate::fleet::{fleet_with, script, steward, wait_mr, wait_started, wait_status, worker};
use crate::harness::TestDaemon;

fn agent(td: &TestDaemon, name: &str) -> AgentSummary {
    let all: Vec<AgentSummary> = td.sfctl().args(["agent", "list"]).json();
    all.into_iter()
        .find(|a| a.spec.name == name)
        .unwrap_or_else(|| panic!("no agent {name}"))
}

#[test]
fn a_disabled_agent_is_disabled_and_a_stopped_worker_is_stopped() {
    let td = fleet_with("", "");
    let gate = td.root.join("gate");
    let s = script(
        &td,
        "w",
        &format!(
            "touch {g}.started\nwait-file {g}\nexit 1\n",
            g = gate.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("Long job", &[]).task.id.to_string();
    wait_started(&td, &gate, &id);
    assert_eq!(agent(&td, "w1").state, AgentState::Running);
    td.sfctl()
        .args(["task", "close", &id, "--reason", "not needed"])
        .success();
    td.wait_for("the run to end", || {
        let a = agent(&td, "w1");
        if a.running == 0 { Ok(()) } else { Err(a.state) }
    });
    assert_eq!(agent(&td, "w1").state, AgentState::Stopped);
    td.sfctl().args(["agent", "disable", "w1"]).success();
    assert_eq!(agent(&td, "w1").state, AgentState::Disabled);
    let table = td.sfctl().args(["agent", "list"]).success();
    assert!(table.contains("disabled"), "{table}");
}

#[test]
fn the_merge_steward_shows_the_merges_it_ran() {
    let td = fleet_with("", "test_command = \"true\"");
    steward(&td);
    assert_eq!(agent(&td, "merger").state, AgentState::NeverRun);
    let s = script(&td, "w", "write a.txt a\ncommit a\ncomplete\n");
    worker(&td, "w1", &s, &[]);
    let id = td.create_task("Add a", &[]).task.id.to_string();
    wait_status(&td, &id, TaskStatus::Closed);
    wait_mr(&td, &id, MergeState::Merged);
    let m = agent(&td, "merger");
    assert_eq!(m.state, AgentState::Idle);
    assert_eq!(m.merges, Some(1));
    let shown = td.sfctl().args(["agent", "show", "merger"]).success();
    assert!(shown.contains("merges:"), "{shown}");
}
