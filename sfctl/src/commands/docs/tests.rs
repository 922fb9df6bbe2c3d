use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::commands::shell_words;
use super::*;

fn spans(text: &str) -> Vec<(usize, String)> {
    scan(text)
        .spans
        .into_iter()
        .map(|s| (s.line, s.text))
        .collect()
}

fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut l: Vec<_> = scan(text)
        .links
        .into_iter()
        .map(|l| (l.line, l.target))
        .collect();
    l.sort();
    l
}

fn issues(line: &str) -> Vec<String> {
    check_command(&crate::clap_tree(), line)
        .iter()
        .map(|i| format!("{}: {}", i.kind, i.detail()))
        .collect()
}

#[test]
fn links_inline_images_references_and_html() {
    let text = "\
# Title

See [the guide](docs/guide.md#setup) and ![logo](img/logo%20big.png \"Logo\").
[![badge](a.svg)](<with space.md>) and [paren](foo_(bar).md).
<a href=\"x.html\">x</a> <img src='y.png'>
Not a link: [text] (nope) and a data-src=\"z\".

[ref]: ../other.md \"title\"
[^1]: a footnote, not a link
";
    assert_eq!(
        link_targets(text),
        [
            (3, "docs/guide.md#setup".to_owned()),
            (3, "img/logo%20big.png".to_owned()),
            (4, "a.svg".to_owned()),
            (4, "foo_(bar).md".to_owned()),
            (4, "with space.md".to_owned()),
            (5, "x.html".to_owned()),
            (5, "y.png".to_owned()),
            (8, "../other.md".to_owned()),
        ]
    );
}

#[test]
fn code_fences_and_spans_hide_links() {
    let text = "\
Before `[a](in-span.md)` after [b](real.md).

```sh
[c](in-fence.md)
sfctl task list
```

~~~~
```
[d](still-in-fence.md)
~~~~
``code with ` inside`` and `a
b` spanning lines, then [e](after.md)
";
    assert_eq!(
        link_targets(text),
        [(1, "real.md".to_owned()), (13, "after.md".to_owned())]
    );
    assert_eq!(
        spans(text),
        [
            (1, "[a](in-span.md)".to_owned()),
            (12, "code with ` inside".to_owned()),
            (12, "a b".to_owned()),
        ]
    );
    let s = scan(text);
    let code: Vec<_> = s.code_lines.iter().map(|(n, l)| (*n, l.as_str())).collect();
    assert_eq!(
        code,
        [
            (4, "[c](in-fence.md)"),
            (5, "sfctl task list"),
            (9, "```"),
            (10, "[d](still-in-fence.md)"),
        ]
    );
}

#[test]
fn continued_code_lines_are_joined() {
    let s = scan("```\nsfctl task create x \\\n  --frob\nnext\n```\n");
    assert_eq!(s.code_lines[0].0, 2);
    assert!(s.code_lines[0].1.contains("--frob"), "{:?}", s.code_lines);
    assert_eq!(s.code_lines[1], (4, "next".to_owned()));
}

#[test]
fn unclosed_backticks_are_literal() {
    assert_eq!(spans("a ` b [x](y.md)"), []);
    assert_eq!(link_targets("a ` b [x](y.md)"), [(1, "y.md".to_owned())]);
}

#[test]
fn schemes_and_anchors_are_skipped() {
    let top = Path::new("/nonexistent-top");
    for t in [
        "https://x.y/z",
        "mailto:a@b",
        "#section",
        "//cdn/x",
        "ftp:x",
        "?q",
    ] {
        assert_eq!(broken_link(top, top, t), None, "{t}");
    }
    assert_eq!(
        broken_link(top, &top.join("sub"), "../a%20b.md#x"),
        Some("a b.md".to_owned())
    );
    assert_eq!(
        broken_link(top, &top.join("sub"), "/c.md"),
        Some("c.md".to_owned())
    );
}

#[test]
fn shell_words_follow_quotes_and_stop_at_operators() {
    let w = |s: &str| shell_words(s);
    assert_eq!(
        w(r#"sfctl task create "Fix the 'x'" -d 'a b' c\ d"#),
        ["sfctl", "task", "create", "Fix the 'x'", "-d", "a b", "c d"]
    );
    assert_eq!(w("sfctl task list | head"), ["sfctl", "task", "list"]);
    assert_eq!(w("sfctl a|b c"), ["sfctl", "a|b", "c"]);
    assert_eq!(w("sfctl x && y"), ["sfctl", "x"]);
    assert_eq!(w("sfctl x; y"), ["sfctl", "x"]);
    assert_eq!(w("sfctl x # comment --frob"), ["sfctl", "x"]);
    assert_eq!(w("sfctl x > out"), ["sfctl", "x"]);
    assert_eq!(w("sfctl x 2>&1"), ["sfctl", "x"]);
    assert_eq!(
        w("sfctl logs <task-id> (workers)"),
        ["sfctl", "logs", "<task-id>"]
    );
}

#[test]
fn commands_are_checked_against_the_clap_tree() {
    let none: [&str; 0] = [];
    assert_eq!(issues("sfctl task list --status open"), none);
    assert_eq!(issues("sfctl task list --status=open --json -v"), none);
    assert_eq!(issues("sfctl --json task create \"x\" -p 2"), none);
    assert_eq!(issues("sfctl task create x -p2 --plan <PLAN_ID>"), none);
    assert_eq!(issues("sfctl logs TASK|AGENT [--follow]"), none);
    assert_eq!(issues("sfctl merge [--branch B] [--into T]"), none);
    assert_eq!(issues("sfctl task <SUBCOMMAND> --frob"), none);
    assert_eq!(issues("sfctl task --help"), none);
    assert_eq!(issues("sfctl --version"), none);
    assert_eq!(issues("sfctl / agents (Unix socket)"), none);
    assert_eq!(issues("sfctl docs check README.md"), none);
    assert_eq!(
        issues("sfctl task frobnicate"),
        ["unknown command: `sfctl task` has no subcommand `frobnicate`"]
    );
    assert_eq!(
        issues("sfctl frobnicate --json"),
        ["unknown command: `sfctl` has no subcommand `frobnicate`"]
    );
    assert_eq!(
        issues("sfctl task list --frob"),
        ["unknown flag: `sfctl task list` has no flag `--frob`"]
    );
    assert_eq!(
        issues("sfctl task list -Z"),
        ["unknown flag: `sfctl task list` has no flag `-Z`"]
    );
}

#[test]
fn alternatives_are_each_checked() {
    let none: [&str; 0] = [];
    assert_eq!(issues("sfctl daemon start|status"), none);
    assert_eq!(
        issues("sfctl daemon start|frob|status"),
        ["unknown command: `sfctl daemon` has no subcommand `frob`"]
    );
    // A flag some of the alternatives take is fine; one none of them take is not.
    assert_eq!(issues("sfctl task complete|handoff --note x"), none);
    assert_eq!(
        issues("sfctl daemon start|status --frob"),
        ["unknown flag: `sfctl daemon start|status` has no flag `--frob`"]
    );
}

#[test]
fn sfctl_lines_are_recognised() {
    assert_eq!(sfctl_command("$ sfctl task list"), Some("sfctl task list"));
    assert_eq!(sfctl_command("  sfctl"), Some("sfctl"));
    assert_eq!(sfctl_command("sfctld x"), None);
    assert_eq!(sfctl_command("cargo run -- sfctl x"), None);
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn temp_dir(name: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sfctl-docs-{name}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn git_in(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[test]
fn missing_paths_are_conservative() {
    let top = temp_dir("paths");
    write(&top, "crates/a/src/lib.rs", "");
    write(&top, ".ci/run", "");
    let dir = top.join("crates/a");
    let missing = |s: &str| missing_path(&top, &dir, s);
    assert_eq!(missing("crates/a/src/lib.rs"), None);
    assert_eq!(missing("crates/a/src/lib.rs:12"), None);
    assert_eq!(missing("src/lib.rs"), None, "relative to the document");
    let deeper = top.join("crates/a/tests/fixtures");
    assert_eq!(
        missing_path(&top, &deeper, "src/lib.rs"),
        None,
        "relative to a parent"
    );
    assert_eq!(missing(".ci/run"), None);
    assert_eq!(
        missing("crates/a/src/gone.rs"),
        Some("crates/a/src/gone.rs".into())
    );
    assert_eq!(missing(".ci/gone"), Some(".ci/gone".into()));
    assert_eq!(missing("./gone.sh"), Some("./gone.sh".into()));
    assert_eq!(missing("src/gone.rs"), Some("src/gone.rs".into()));
    for fine in [
        "other/x.rs",
        "gone.rs",
        "crates/*/src",
        "crates/<name>/x.rs",
        "https://x/y.md",
        "crates/a b.rs",
        ".sf/config.toml",
        ".git/info/exclude",
        "target/debug/sfctl",
        "/etc/passwd",
        "--flag",
        "a::b",
        "crates",
    ] {
        assert_eq!(missing(fine), None, "{fine}");
    }
    fs::remove_dir_all(&top).unwrap();
}

#[test]
fn check_repo_finds_planted_problems() {
    let top = temp_dir("repo");
    write(&top, "src/main.rs", "");
    write(
        &top,
        "docs/ok.md",
        "# ok\n[home](../README.md) [top](/src/main.rs)\n",
    );
    write(
        &top,
        "README.md",
        "\
# Planted

[fine](docs/ok.md#ok) [web](https://example.com) [anchor](#planted) [gone](docs/gone.md) and ![img](img/missing.png)

[ref]: /nowhere.md
See `src/main.rs` and `src/old.rs`.

```sh
sfctl task list --status open
sfctl task frobnicate
[inside](fence-only.md)
```

Run `sfctl task list --frob` then `sfctl daemon start|status`.
",
    );
    write(&top, "notes.txt", "[not markdown](gone.md)\n");
    git_in(&top, &["init", "-q"]);
    git_in(&top, &["add", "-A"]);
    // Untracked and ignored files are not checked.
    write(&top, "untracked.md", "[x](gone.md)\n");
    write(&top, ".sf/notes.md", "[x](gone.md)\n");
    let report = check_repo(&top.join("docs"), &top, &[], &crate::clap_tree()).unwrap();
    assert_eq!(report.files_checked, 2);
    let found: Vec<String> = report
        .problems
        .iter()
        .map(|p| format!("{}:{}: {}: {}", p.path, p.line, p.kind, p.detail))
        .collect();
    assert_eq!(
        found,
        [
            "README.md:3: broken link: docs/gone.md",
            "README.md:3: broken link: img/missing.png",
            "README.md:5: broken link: /nowhere.md (resolves to nowhere.md)",
            "README.md:6: missing file: src/old.rs",
            "README.md:10: unknown command: `sfctl task` has no subcommand `frobnicate`",
            "README.md:14: unknown flag: `sfctl task list` has no flag `--frob`",
        ]
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["files_checked"], 2);
    assert_eq!(json["problems"][0]["kind"], "broken_link");
    assert_eq!(json["problems"][0]["target"], "docs/gone.md");
    assert_eq!(json["problems"][0]["line"], 3);
    assert_eq!(json["problems"][0]["path"], "README.md");

    // Restricting to a directory, or to an explicit (even untracked) file.
    let only_docs = check_repo(&top, &top, &[PathBuf::from("docs")], &crate::clap_tree()).unwrap();
    assert_eq!((only_docs.files_checked, only_docs.problems.len()), (1, 0));
    let explicit = check_repo(
        &top,
        &top,
        &[PathBuf::from("untracked.md")],
        &crate::clap_tree(),
    )
    .unwrap();
    assert_eq!(explicit.files_checked, 1);
    assert_eq!(explicit.problems[0].target, "gone.md");
    assert!(check_repo(&top, &top, &[PathBuf::from("nope")], &crate::clap_tree()).is_err());
    fs::remove_dir_all(&top).unwrap();
}
