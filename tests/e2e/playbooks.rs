//! Playbooks: workspace playbooks instantiated into workflows (plans) with the right graph,
//! dispatched in dependency order; shell steps run by the daemon; a failing shell step fails
//! its workflow; a custom steward runs its playbook when it fires.

use std::fs;

use sf_proto::{PlanDetail, PlanStatus, Request, Response, TaskStatus};

use crate::fleet::{fleet, script, worker};
use crate::harness::TestDaemon;

const PLAYBOOK: &str = r#"
name = "ship"
title = "Ship {{thing}}"
description = "Build and ship {{thing}}."

[[vars]]
name = "thing"
required = true

[[vars]]
name = "with_docs"
type = "boolean"
default = false

[[steps]]
id = "build"
title = "Build {{thing}}"
priority = 2

[[steps]]
id = "check"
title = "Check the tree"
kind = "shell"
command = "test -f README.md && echo checked $SF_VAR_THING"
timeout = "30s"
depends_on = ["build"]

[[steps]]
id = "docs"
title = "Document {{thing}}"
condition = "{{with_docs}}"
depends_on = ["build"]

[[steps]]
id = "announce"
title = "Announce {{thing}}"
depends_on = ["check", "docs"]
"#;

fn run(
    td: &TestDaemon,
    name: &str,
    vars: &[(&str, &str)],
) -> Result<PlanDetail, sf_proto::ProtoError> {
    let mut c = td.client();
    let vars = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    match c.request(&Request::RunPlaybook {
        name: name.into(),
        vars,
    }) {
        Ok(Response::Plan(p)) => Ok(p),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(sf_client::ClientError::Refused(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}

fn by_title<'a>(p: &'a PlanDetail, title: &str) -> &'a sf_proto::TaskSummary {
    p.tasks
        .iter()
        .find(|t| t.title == title)
        .unwrap_or_else(|| panic!("no task {title:?} in {:?}", p.tasks))
}

#[test]
fn a_playbook_becomes_a_workflow_that_runs_in_dependency_order() {
    let td = fleet("");
    fs::write(td.repo.join(".sf/playbooks/ship.toml"), PLAYBOOK).expect("write playbook");
    let err = run(&td, "ship", &[]).unwrap_err();
    assert!(
        err.message.contains("thing"),
        "a required variable is named: {err:?}"
    );
    let plan = run(&td, "ship", &[("thing", "the widget")]).expect("run");
    assert_eq!(plan.plan.title, "Ship the widget");
    assert_eq!(plan.plan.status, PlanStatus::Active);
    let titles: Vec<&str> = plan.tasks.iter().map(|t| t.title.as_str()).collect();
    assert_eq!(plan.tasks.len(), 3, "the docs step is dropped: {titles:?}");
    let build = by_title(&plan, "Build the widget").id.to_string();
    let check = by_title(&plan, "Check the tree").id.to_string();
    let announce = by_title(&plan, "Announce the widget").id.to_string();
    // the dropped docs step counts as done once its own dependency (build) is: announce
    // takes that dependency over
    let deps = td.show_task(&announce).depends_on;
    let mut blockers: Vec<String> = deps
        .iter()
        .filter_map(|d| d.blocker.as_ref().map(ToString::to_string))
        .collect();
    blockers.sort();
    let mut want = vec![check.clone(), build.clone()];
    want.sort();
    assert_eq!(blockers, want);
    // only `build` is ready; a worker does it, then the daemon runs the shell step, then `announce`
    let order = td.root.join("order.txt");
    let s = script(
        &td,
        "w",
        &format!(
            "--- for Build\nappend {o} build\\n\nwrite b.txt x\ncommit b\ncomplete\n--- for Announce\nappend {o} announce\\n\ncomplete-no-changes\n",
            o = order.display()
        ),
    );
    worker(&td, "w1", &s, &[]);
    let b = td.wait_for("build in review", || {
        let t = td.show_task(&build);
        if t.task.status == TaskStatus::Review {
            Ok(t)
        } else {
            Err(t.task.status)
        }
    });
    assert_eq!(b.task.status, TaskStatus::Review);
    // a blocker in review still blocks: the shell step waits for build to close
    assert_eq!(td.show_task(&check).task.status, TaskStatus::Open);
    td.sfctl()
        .args(["task", "close", &build, "--reason", "merged by hand"])
        .success();
    let checked = td.wait_for("the shell step to close", || {
        let t = td.show_task(&check);
        if t.task.status == TaskStatus::Closed {
            Ok(t)
        } else {
            Err((t.task.status, t.notes))
        }
    });
    assert!(
        checked
            .notes
            .iter()
            .any(|n| n.text.contains("checked the widget")),
        "{:?}",
        checked.notes
    );
    assert_eq!(checked.runs[0].agent, "sf-shell");
    td.wait_for("announce closed", || {
        let t = td.show_task(&announce);
        if t.task.status == TaskStatus::Closed {
            Ok(())
        } else {
            Err(t.task.status)
        }
    });
    assert_eq!(
        fs::read_to_string(&order).expect("order"),
        "build\nannounce\n"
    );
    let p: PlanDetail = td
        .sfctl()
        .args(["plan", "show", plan.plan.id.as_str()])
        .json();
    assert_eq!(p.plan.status, PlanStatus::Completed);
}

#[test]
fn a_failing_shell_step_fails_its_workflow() {
    let td = fleet("");
    let text = PLAYBOOK.replace(
        "test -f README.md && echo checked $SF_VAR_THING",
        "echo broken >&2; exit 3",
    );
    fs::write(td.repo.join(".sf/playbooks/ship.toml"), text).expect("write playbook");
    let plan = run(&td, "ship", &[("thing", "x"), ("with_docs", "yes")]).expect("run");
    assert_eq!(plan.tasks.len(), 4, "with_docs keeps the docs step");
    let build = by_title(&plan, "Build x").id.to_string();
    let check = by_title(&plan, "Check the tree").id.to_string();
    td.sfctl().args(["task", "close", &build]).success();
    let t = td.wait_for("the shell step to fail", || {
        let t = td.show_task(&check);
        if t.task.status == TaskStatus::Blocked {
            Ok(t)
        } else {
            Err(t.task.status)
        }
    });
    assert!(
        t.notes.iter().any(|n| n.text.contains("broken")),
        "{:?}",
        t.notes
    );
    let p: PlanDetail = td
        .sfctl()
        .args(["plan", "show", plan.plan.id.as_str()])
        .json();
    assert_eq!(p.plan.status, PlanStatus::Failed);
}

#[test]
fn a_custom_steward_runs_its_playbook_with_the_event_data() {
    let td = fleet("");
    fs::write(td.repo.join(".sf/playbooks/ship.toml"), PLAYBOOK).expect("write playbook");
    td.sfctl()
        .args([
            "agent",
            "register",
            "shipper",
            "--role",
            "steward",
            "--focus",
            "custom",
            "--playbook",
            "ship",
            "--on",
            "release_requested",
        ])
        .success();
    td.sfctl()
        .args(["event", "emit", "release_requested", "--data", "thing=v2"])
        .success();
    let runs: Vec<sf_proto::StewardRunInfo> = td.wait_for("the steward to run", || {
        let h: Vec<sf_proto::StewardRunInfo> =
            td.sfctl().args(["steward", "history", "shipper"]).json();
        if h.first().is_some_and(|r| r.ended_at.is_some()) {
            Ok(h)
        } else {
            Err(h)
        }
    });
    assert_eq!(runs[0].outcome.as_deref(), Some("ok"), "{runs:?}");
    assert!(
        runs[0]
            .result
            .as_deref()
            .unwrap_or("")
            .contains("created workflow"),
        "{runs:?}"
    );
    let plans: Vec<sf_proto::PlanSummary> = td.sfctl().args(["plan", "list"]).json();
    assert!(plans.iter().any(|p| p.title == "Ship v2"), "{plans:?}");
}

#[test]
fn built_in_playbooks_are_listed_and_broken_workspace_ones_are_named() {
    let td = fleet("");
    let mut c = td.client();
    let Ok(Response::Playbooks(list)) = c.request(&Request::ListPlaybooks) else {
        panic!("list")
    };
    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    for n in ["bugfix", "feature", "release"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert!(list.iter().all(|p| p.error.is_none()), "{list:?}");
    fs::write(
        td.repo.join(".sf/playbooks/bad.toml"),
        "name = \"bad\"\ntitle = \"Bad\"\n[[steps]]\nid = \"a\"\ndepends_on = [\"zzz\"]\ntitle = \"A\"\n",
    )
    .expect("write");
    fs::write(td.repo.join(".sf/playbooks/ship.toml"), PLAYBOOK).expect("write");

    // the list still answers: the valid ones, and the broken file with its error
    let Ok(Response::Playbooks(list)) = c.request(&Request::ListPlaybooks) else {
        panic!("list with a broken file")
    };
    let valid: Vec<&str> = list
        .iter()
        .filter(|p| p.error.is_none())
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(valid, ["bugfix", "feature", "release", "ship"], "{list:?}");
    let bad = list
        .iter()
        .find(|p| p.name == "bad")
        .unwrap_or_else(|| panic!("the broken file is not listed: {list:?}"));
    assert!(bad.source.ends_with("bad.toml"), "{bad:?}");
    assert!(
        bad.error.as_deref().is_some_and(|e| e.contains("zzz")),
        "{bad:?}"
    );

    let out = td.sfctl().args(["playbook", "list"]).run();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("bugfix"), "{stdout}");
    let bad_row = stdout
        .lines()
        .find(|l| l.starts_with("bad "))
        .unwrap_or_else(|| panic!("no row for bad.toml:\n{stdout}"));
    assert!(bad_row.contains("BROKEN"), "{stdout}");
    assert!(
        stderr.contains("warning: playbook `bad`") && stderr.contains("zzz"),
        "{stderr}"
    );
    let json: Vec<sf_proto::PlaybookInfo> = td.sfctl().args(["playbook", "list"]).json();
    assert_eq!(json.len(), list.len());

    // a valid name shows and runs; the broken name is its file's error
    let shown = td.sfctl().args(["playbook", "show", "bugfix"]).success();
    assert!(shown.contains("source: built-in"), "{shown}");
    let plan = run(&td, "bugfix", &[("bug", "crash on start")])
        .unwrap_or_else(|e| panic!("run bugfix: {e:?}"));
    assert!(!plan.tasks.is_empty(), "{plan:?}");
    run(&td, "ship", &[("thing", "v1")]).unwrap_or_else(|e| panic!("run ship: {e:?}"));
    for cmd in [
        &["playbook", "show", "bad"][..],
        &["playbook", "run", "bad"],
    ] {
        let err = td.sfctl().args(cmd).fails(1);
        assert!(
            err.contains("bad.toml") && err.contains("zzz"),
            "{cmd:?}: {err}"
        );
        assert!(err.contains("hint: fix the file"), "{cmd:?}: {err}");
    }

    // `validate` takes a file; given a name it says how to check one by name
    let err = td.sfctl().args(["playbook", "validate", "bad"]).fails(1);
    assert!(
        err.contains(
            "hint: validate takes a file path; to check a playbook by name use \
             `sfctl playbook show bad`"
        ),
        "{err}"
    );
}

#[test]
fn steward_run_waits_for_the_outcome_and_names_the_flag_that_gives_variables() {
    let td = fleet("");
    fs::write(td.repo.join(".sf/playbooks/ship.toml"), PLAYBOOK).expect("write playbook");
    td.sfctl()
        .args([
            "agent",
            "register",
            "watcher",
            "--role",
            "steward",
            "--focus",
            "custom",
            "--playbook",
            "ship",
        ])
        .success();
    // the playbook needs `thing`: the run fails at once, and sfctl says so
    let out = td.sfctl().args(["steward", "run", "watcher"]).run();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--data thing") || stderr.contains("--data NAME=VALUE"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("--var"),
        "steward run takes --data, not --var: {stderr}"
    );
    // with it, the run's outcome is printed
    let ok = td
        .sfctl()
        .args(["steward", "run", "watcher", "--data", "thing=v2"])
        .success();
    assert!(ok.contains(": ok"), "{ok}");
}

#[test]
fn a_step_condition_naming_an_undeclared_variable_is_refused_with_the_declared_ones() {
    let td = TestDaemon::start();
    let file = td.root.join("prio.toml");
    fs::write(
        &file,
        PLAYBOOK.replace(
            "condition = \"{{with_docs}}\"",
            "condition = \"{{prio}} == 1\"",
        ),
    )
    .expect("write");
    let err = td
        .sfctl()
        .arg("playbook")
        .arg("validate")
        .arg(&file)
        .fails(1);
    assert!(
        err.contains("step `docs`")
            && err.contains("{{prio}}")
            && err.contains("declared: thing, with_docs"),
        "{err}"
    );
    let (json, _) = td
        .sfctl()
        .arg("playbook")
        .arg("validate")
        .arg(&file)
        .json_fails(1);
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("{{prio}}")),
        "{json}"
    );
}
