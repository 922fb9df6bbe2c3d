//! `sfctl init`: the workspace on disk, git ignoring it, idempotence, and refusal outside git.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::harness::TestDaemon;

/// Every file under `dir` with its contents, for before/after comparisons.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = e.expect("dir entry").path();
            let rel = path
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string();
            if path.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                stack.push(path);
            } else {
                out.insert(rel, fs::read(&path).expect("read file"));
            }
        }
    }
    out
}

#[test]
fn init_creates_the_workspace_layout() {
    let td = TestDaemon::uninitialised();
    let out = td.sfctl().args(["init"]).success();
    let sf = td.repo.join(".sf");
    assert!(sf.is_dir(), "{out}\n{}", td.listing());
    for dir in ["worktrees", "logs", "prompts", "playbooks"] {
        assert!(
            sf.join(dir).is_dir(),
            ".sf/{dir}/ missing\n{}",
            td.listing()
        );
    }
    let config = fs::read_to_string(sf.join("config.toml")).expect("read .sf/config.toml");
    assert!(
        config.lines().any(|l| l.trim_start().starts_with('#')),
        "config.toml should document its defaults in comments:\n{config}"
    );
    assert!(
        config.parse::<toml::Table>().is_ok(),
        "config.toml must be valid TOML:\n{config}"
    );
    assert!(
        out.contains(".sf") || out.to_lowercase().contains("initiali"),
        "{out}"
    );
}

#[test]
fn init_makes_git_ignore_the_workspace() {
    let td = TestDaemon::stopped();
    let repo = git2::Repository::open(&td.repo).expect("open repo");
    for path in [
        ".sf/config.toml",
        ".sf/logs/x.log",
        ".sf/worktrees/t1/README.md",
    ] {
        assert!(
            repo.is_path_ignored(path).expect("is_path_ignored"),
            "git does not ignore {path}\n{}",
            td.listing()
        );
    }
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let statuses = repo.statuses(Some(&mut opts)).expect("git status");
    let dirty: Vec<String> = statuses
        .iter()
        .filter_map(|s| s.path().ok().map(str::to_owned))
        .filter(|p| p.starts_with(".sf"))
        .collect();
    assert!(
        dirty.is_empty(),
        "`git status` shows workspace files: {dirty:?}"
    );
    let tracked_changed: Vec<String> = statuses
        .iter()
        .filter(|s| !s.status().is_wt_new())
        .filter_map(|s| s.path().ok().map(str::to_owned))
        .collect();
    assert!(
        tracked_changed.is_empty(),
        "init modified tracked files: {tracked_changed:?}"
    );
}

#[test]
fn second_init_says_already_initialised_and_changes_nothing() {
    let td = TestDaemon::stopped();
    let config = td.repo.join(".sf/config.toml");
    let mut text = fs::read_to_string(&config).expect("read config");
    text.push_str("\n# a line the user added\n");
    fs::write(&config, &text).expect("edit config");
    let before = snapshot(&td.repo);
    let out = td.sfctl().args(["init"]).run();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.to_lowercase().contains("already"),
        "second init should say so: {all}"
    );
    let after = snapshot(&td.repo);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "second init added or removed files"
    );
    for (path, content) in &before {
        assert!(after[path] == *content, "second init changed {path}");
    }
}

#[test]
fn init_in_a_subdirectory_initialises_the_repository_root() {
    let td = TestDaemon::uninitialised();
    td.sfctl().args(["init"]).cwd(td.repo.join("src")).success();
    assert!(
        td.repo.join(".sf/config.toml").is_file(),
        "{}",
        td.listing()
    );
    assert!(!td.repo.join("src/.sf").exists(), "{}", td.listing());
}

#[test]
fn init_outside_a_git_repository_is_refused() {
    let td = TestDaemon::uninitialised();
    let plain = td.root.join("plain");
    fs::create_dir_all(&plain).expect("mkdir");
    let err = td.sfctl().args(["init"]).cwd(&plain).fails(1);
    assert!(
        err.contains("git"),
        "the error should say it needs a git repository: {err}"
    );
    assert!(!plain.join(".sf").exists(), "init outside git created .sf/");
    let (json, _) = td.sfctl().args(["init"]).cwd(&plain).json_fails(1);
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("git")),
        "{json}"
    );
}

#[test]
fn the_daemon_creates_the_database_in_the_workspace() {
    let td = TestDaemon::start();
    td.create_task("persist me", &[]);
    assert!(td.repo.join(".sf/sf.db").is_file(), "{}", td.listing());
}

#[test]
fn commands_find_the_workspace_from_a_subdirectory_and_from_sf_workspace() {
    let td = TestDaemon::start();
    let t = td.create_task("found from anywhere", &[]);
    let from_sub: Vec<sf_proto::TaskSummary> = td
        .sfctl()
        .args(["task", "list"])
        .cwd(td.repo.join("src"))
        .json();
    assert_eq!(from_sub.len(), 1);
    assert_eq!(from_sub[0].id, t.task.id);
    let elsewhere = td.root.join("elsewhere");
    fs::create_dir_all(&elsewhere).expect("mkdir");
    let via_env: Vec<sf_proto::TaskSummary> = td
        .sfctl()
        .args(["task", "list"])
        .cwd(&elsewhere)
        .env("SF_WORKSPACE", &td.repo)
        .json();
    assert_eq!(via_env.len(), 1);
    let via_flag: Vec<sf_proto::TaskSummary> = td
        .sfctl()
        .arg("--workspace")
        .arg(&td.repo)
        .args(["task", "list"])
        .cwd(&elsewhere)
        .json();
    assert_eq!(via_flag.len(), 1);
}

/// The keys the daemon accepts in `table` (`""`: the top level), read from its own "unknown
/// field" error so a new setting cannot be left out of the template.
fn accepted_keys(table: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(dir.path().join(".sf")).expect("mkdir .sf");
    let probe = if table.is_empty() {
        "__probe = 1\n".to_owned()
    } else {
        format!("[{table}]\n__probe = 1\n")
    };
    fs::write(dir.path().join(".sf/config.toml"), probe).expect("write config");
    let err = format!(
        "{:#}",
        sf_daemon::Config::load(dir.path()).expect_err("an unknown key is refused")
    );
    let expected = err
        .split("unknown field `__probe`, expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("no list of expected keys in: {err}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .filter(|k| {
            !(table.is_empty()
                && matches!(
                    k.as_str(),
                    "worktree" | "merge" | "secrets" | "sandbox" | "prices" | "staffing"
                ))
        })
        .collect()
}

#[test]
fn the_init_config_documents_every_setting_the_daemon_accepts_with_its_default() {
    // `init`'s own file, without the harness's `mode = "off"`
    let td = TestDaemon::uninitialised();
    td.sfctl().args(["init"]).success();
    let path = td.repo.join(".sf/config.toml");
    let config = fs::read_to_string(&path).expect("read config");
    let first_table = config
        .find("\n[")
        .unwrap_or_else(|| panic!("no [section] in:\n{config}"));
    let sections = [
        ("", &config[..first_table]),
        (
            "worktree",
            config.split("\n[worktree]\n").nth(1).unwrap_or(""),
        ),
        ("merge", config.split("\n[merge]\n").nth(1).unwrap_or("")),
        (
            "sandbox",
            config.split("\n[sandbox]\n").nth(1).unwrap_or(""),
        ),
        (
            "staffing",
            config.split("\n[staffing]\n").nth(1).unwrap_or(""),
        ),
    ];
    for (table, text) in sections {
        let text = text.split("\n[").next().unwrap_or("");
        for key in accepted_keys(table) {
            let line = format!("\n# {key} = ");
            assert!(
                text.contains(&line),
                "`{key}` is not documented in [{table}] of the init config:\n{config}"
            );
            let explained = text
                .split(&line)
                .next()
                .and_then(|before| before.lines().last())
                .is_some_and(|l| l.starts_with("# ") && !l.contains(" = "));
            assert!(
                explained,
                "`{key}` has no comment line explaining it:\n{config}"
            );
        }
    }
    assert!(
        config[..first_table]
            .to_lowercase()
            .contains("top-level keys must stay above the first [section]"),
        "the config should say where top-level keys go:\n{config}"
    );

    // uncommented, the template is accepted and its values are the defaults
    let uncommented: String = config
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .filter(|r| r.contains(" = "))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let empty = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(empty.path().join(".sf")).expect("mkdir .sf");
    fs::write(empty.path().join(".sf/config.toml"), "").expect("write config");
    let default = sf_daemon::Config::load(empty.path()).expect("empty config");
    fs::write(&path, &uncommented).expect("write config");
    let c = sf_daemon::Config::load(&td.repo)
        .unwrap_or_else(|e| panic!("uncommented template refused: {e:#}\n{uncommented}"));
    assert_eq!(c.tick_interval, default.tick_interval);
    assert_eq!(c.max_workers, default.max_workers);
    assert_eq!(c.max_attempts, default.max_attempts);
    assert_eq!(c.worker_timeout, default.worker_timeout);
    assert_eq!(c.stop_grace, default.stop_grace);
    assert_eq!(c.complete_grace, default.complete_grace);
    assert_eq!(c.env_passthrough, default.env_passthrough);
    assert_eq!(c.timezone, default.timezone);
    assert_eq!(c.worktree_setup_timeout, default.worktree_setup_timeout);
    assert_eq!(c.merge_test_timeout, default.merge_test_timeout);
    assert_eq!(c.merge_commit, default.merge_commit);
    assert_eq!(c.merge_require_approval, default.merge_require_approval);
    assert_eq!(c.merge_delete_branch, default.merge_delete_branch);
    assert_eq!(c.push_after_merge, default.push_after_merge);
    assert_eq!(c.push_remote, default.push_remote);
}

#[test]
fn a_top_level_key_below_a_section_is_refused_with_a_hint_to_move_it() {
    let td = TestDaemon::stopped();
    let path = td.repo.join(".sf/config.toml");
    let mut config = fs::read_to_string(&path).expect("read config");
    config.push_str("timezone = \"Europe/Berlin\"\n");
    fs::write(&path, config).expect("write config");
    let out = td.sfctl().args(["daemon", "start"]).run();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "start should fail: {text}");
    assert!(text.contains("unknown field `timezone`"), "{text}");
    assert!(
        text.contains(
            "hint: `timezone` is a top-level setting and must be above the first [section] \
             (here it is under [merge])"
        ),
        "{text}"
    );
    assert!(td.daemon_pid().is_none());
}
