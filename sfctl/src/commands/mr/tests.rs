use clap::Parser;

use super::*;

fn now() -> Timestamp {
    "2025-05-01T12:00:00Z".parse().unwrap()
}

fn mr(state: MergeState) -> MergeRequestInfo {
    MergeRequestInfo {
        fix_tasks: Vec::new(),
        test_logs: Vec::new(),
        id: MergeRequestId(12),
        task: Some("k3f9xq".parse().unwrap()),
        title: "Fix the flaky login test".into(),
        branch: "sf/k3f9xq".into(),
        target: "main".into(),
        state,
        reason: None,
        attempts: 1,
        last_result: None,
        log_path: None,
        commit: None,
        fix_task: None,
        approved_by: None,
        created_at: "2025-05-01T11:00:00Z".parse().unwrap(),
        updated_at: "2025-05-01T11:58:00Z".parse().unwrap(),
    }
}

fn code(r: &CliResult<String>) -> u8 {
    match r {
        Ok(_) => 0,
        Err(e) if e.exit_code() == std::process::ExitCode::from(1) => 1,
        Err(e) => panic!("unexpected exit code for {e:?}"),
    }
}

#[test]
fn states_decide_whether_merge_waits_succeeds_or_fails() {
    let waited = Duration::from_secs(1800);
    for state in MergeState::ALL.iter().copied() {
        let (expected_outcome, expected_code) = match state {
            MergeState::Merged => (Outcome::Merged, 0),
            MergeState::NeedsFix | MergeState::Cancelled => (Outcome::Failed, 1),
            _ => (Outcome::Pending, 1),
        };
        assert_eq!(outcome(state), expected_outcome, "{state}");
        assert_eq!(code(&verdict(&mr(state), waited)), expected_code, "{state}");
    }
}

#[test]
fn verdicts_say_what_happened_and_what_to_do() {
    let mut m = mr(MergeState::Merged);
    m.commit = Some("0123456789abcdef0123".into());
    assert_eq!(
        verdict(&m, Duration::ZERO).unwrap(),
        "merged sf/k3f9xq into main as 0123456789ab"
    );
    m.commit = None;
    assert_eq!(
        verdict(&m, Duration::ZERO).unwrap(),
        "merged sf/k3f9xq into main"
    );

    let mut m = mr(MergeState::NeedsFix);
    m.last_result = Some("tests failed (exit 101)".into());
    m.fix_task = Some("m2n3p4".parse().unwrap());
    let err = verdict(&m, Duration::ZERO).unwrap_err();
    assert_eq!(
        err.message,
        "merge request #12 needs a fix: tests failed (exit 101)"
    );
    assert!(err.hints[0].contains("fix task m2n3p4"), "{:?}", err.hints);
    assert!(err.hints.iter().any(|h| h.contains("sfctl mr retry 12")));

    let mut m = mr(MergeState::Cancelled);
    m.reason = Some("cancelled by hand".into());
    let err = verdict(&m, Duration::ZERO).unwrap_err();
    assert_eq!(
        err.message,
        "merge request #12 was cancelled: cancelled by hand"
    );

    let mut m = mr(MergeState::AwaitingApproval);
    m.reason = Some("require_approval".into());
    let err = verdict(&m, Duration::from_millis(1_800_400)).unwrap_err();
    assert_eq!(err.code, "timeout");
    assert_eq!(
        err.message,
        "merge request #12 is still awaiting_approval after 30m: require_approval"
    );
    assert!(err.hints.iter().any(|h| h.contains("sfctl mr show 12")));
    assert!(err.hints.iter().any(|h| h.contains("sfctl mr approve 12")));
}

#[test]
fn progress_lines_name_the_state_and_reason() {
    let mut m = mr(MergeState::Testing);
    m.reason = Some("ignored".into());
    assert_eq!(progress_line(&m), "testing…");
    m.state = MergeState::Waiting;
    m.reason = Some("main has local changes in /repo".into());
    assert_eq!(
        progress_line(&m),
        "waiting: main has local changes in /repo"
    );
    m.reason = None;
    assert_eq!(progress_line(&m), "waiting");
    m.state = MergeState::AwaitingApproval;
    assert!(progress_line(&m).contains("sfctl mr approve 12"));
}

#[test]
fn branch_comes_from_the_flag_then_the_env_then_git() {
    let git_says = |b: &'static str| move || Ok(b.to_owned());
    let no_git = || -> CliResult<String> { panic!("git must not run") };
    assert_eq!(
        resolve_branch(Some("feat"), Some("env".into()), no_git).unwrap(),
        "feat"
    );
    assert_eq!(
        resolve_branch(None, Some(" env ".into()), no_git).unwrap(),
        "env"
    );
    assert_eq!(
        resolve_branch(None, Some(String::new()), git_says("topic")).unwrap(),
        "topic"
    );
    let err = resolve_branch(None, None, git_says("HEAD")).unwrap_err();
    assert_eq!(
        err.message,
        "HEAD is detached: there is no current branch to merge"
    );
    assert!(err.hints[0].contains("--branch"), "{:?}", err.hints);
    assert!(resolve_branch(Some(" "), None, no_git).is_err());
}

#[test]
fn the_result_column_prefers_the_reason_and_is_cut_short() {
    let mut m = mr(MergeState::Queued);
    assert_eq!(result_text(&m), "-");
    m.last_result = Some("tests passed".into());
    assert_eq!(result_text(&m), "tests passed");
    m.reason = Some(format!("{}\nsecond line", "x".repeat(100)));
    let text = result_text(&m);
    assert_eq!(text.chars().count(), RESULT_WIDTH);
    assert!(text.ends_with('…'), "{text}");
}

#[test]
fn the_queue_table_renders_plainly() {
    let mut a = mr(MergeState::NeedsFix);
    a.last_result = Some("tests failed".into());
    let mut b = mr(MergeState::Queued);
    b.id = MergeRequestId(13);
    b.task = None;
    b.branch = "feature".into();
    b.attempts = 0;
    assert_eq!(
        render_mrs(&[a, b], false, None),
        "ID   STATE      TASK    BRANCH     TARGET  ATTEMPTS  RESULT\n\
         #12  needs_fix  k3f9xq  sf/k3f9xq  main    1         tests failed\n\
         #13  queued     -       feature    main    0         -"
    );
}

#[test]
fn show_lists_every_field() {
    let mut m = mr(MergeState::Merged);
    m.commit = Some("abc".into());
    m.log_path = Some("/ws/.sf/logs/merge-12.log".into());
    let text = show_text(&m, false, now());
    assert!(
        text.starts_with("merge request #12: Fix the flaky login test\nstate:       merged\n"),
        "{text}"
    );
    for key in [
        "task:",
        "branch:",
        "target:",
        "reason:",
        "attempts:",
        "last result:",
        "commit:",
        "fix task:",
        "approved by:",
        "test log:",
        "created:",
        "updated:",
    ] {
        assert!(text.contains(key), "{key} missing in\n{text}");
    }
    assert!(
        text.contains("updated:     2025-05-01 11:58:00Z (2m ago)"),
        "{text}"
    );
}

#[test]
fn tail_keeps_the_last_lines() {
    assert_eq!(tail_lines("a\nb\nc\n", 2), (1, "b\nc"));
    assert_eq!(tail_lines("a\nb\nc", 2), (1, "b\nc"));
    assert_eq!(tail_lines("a\nb\n", 5), (0, "a\nb"));
    assert_eq!(tail_lines("", 5), (0, ""));
    assert_eq!(tail_lines("a\n\n\nb\n", 1), (3, "b"));
    assert_eq!(tail_lines("a\nb", 0), (2, ""));
}

#[test]
fn ids_and_flags_parse() {
    let cli = crate::Cli::try_parse_from(["sfctl", "mr", "show", "#12", "--full"]).unwrap();
    assert!(matches!(
        cli.command,
        crate::cli::Command::Mr(MrCommand::Show {
            id: MergeRequestId(12),
            full: true
        })
    ));
    assert!(crate::Cli::try_parse_from(["sfctl", "mr", "retry", "x"]).is_err());
    let cli = crate::Cli::try_parse_from(["sfctl", "merge", "--into", "main"]).unwrap();
    match cli.command {
        crate::cli::Command::Merge(a) => {
            assert_eq!(a.timeout, Duration::from_secs(1800));
            assert_eq!(a.into.as_deref(), Some("main"));
            assert!(!a.no_wait);
        }
        other => panic!("{other:?}"),
    }
    let err = crate::Cli::try_parse_from(["sfctl", "merge", "--no-wait", "--timeout", "1m"]);
    assert!(err.is_err(), "--timeout means nothing with --no-wait");
}
