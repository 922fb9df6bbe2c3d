//! Every built-in playbook in `playbooks/` loads, validates and instantiates; every file in
//! `tests/fixtures/playbooks-invalid/` is refused with the expected, readable error.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sf_core::playbook::{Instance, Playbook, StepKind};

fn repo_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// `(file name, contents)` of every `.toml` file in a directory, sorted by name.
fn toml_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&p).unwrap();
            (name, text)
        })
        .collect();
    files.sort();
    files
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Checks the invariants of any instance: ids unique, dependencies point at earlier steps.
fn check_graph(inst: &Instance) {
    for (i, step) in inst.steps.iter().enumerate() {
        assert!(
            !inst.steps[..i].iter().any(|s| s.id == step.id),
            "{}: duplicate step {}",
            inst.playbook,
            step.id
        );
        for d in &step.depends_on {
            assert!(
                inst.steps[..i].iter().any(|s| s.id == *d),
                "{}: {} depends on {d}, which is not an earlier kept step",
                inst.playbook,
                step.id
            );
        }
        assert!((1..=5).contains(&step.priority));
        assert!(
            !step.title.contains("{{"),
            "{}: {}",
            inst.playbook,
            step.title
        );
    }
}

fn ids(inst: &Instance) -> Vec<&str> {
    inst.steps.iter().map(|s| s.id.as_str()).collect()
}

fn deps<'a>(inst: &'a Instance, id: &str) -> Vec<&'a str> {
    let step = inst.steps.iter().find(|s| s.id == id).unwrap();
    step.depends_on.iter().map(String::as_str).collect()
}

#[test]
fn every_builtin_playbook_loads_and_instantiates() {
    let dir = repo_dir("playbooks");
    let files = toml_files(&dir);
    assert!(!files.is_empty(), "no playbooks in {}", dir.display());
    for (file, text) in &files {
        let source = format!("playbooks/{file}");
        let pb = Playbook::parse(text, &source).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            format!("{}.toml", pb.name()),
            *file,
            "a built-in playbook's name is its file name"
        );
        // Sensible values: every required variable gets a plain string, or the first value
        // of an enum, or a number/boolean.
        let given: BTreeMap<String, String> = pb
            .vars()
            .iter()
            .filter(|v| v.required())
            .map(|v| {
                let value = match &v.kind {
                    sf_core::playbook::VarKind::Enum(values) => values[0].clone(),
                    sf_core::playbook::VarKind::Number => "1".to_owned(),
                    sf_core::playbook::VarKind::Boolean => "true".to_owned(),
                    sf_core::playbook::VarKind::String => "sample value".to_owned(),
                };
                (v.name.clone(), value)
            })
            .collect();
        let inst = pb
            .instantiate(&given)
            .unwrap_or_else(|e| panic!("{source}: {e}"));
        assert!(!inst.steps.is_empty(), "{source}: no steps with defaults");
        check_graph(&inst);
    }
}

#[test]
fn feature_playbook_drops_docs_on_request() {
    let text = fs::read_to_string(repo_dir("playbooks/feature.toml")).unwrap();
    let pb = Playbook::parse(&text, "feature.toml").unwrap();
    let inst = pb.instantiate(&vars(&[("feature", "CSV export")])).unwrap();
    assert_eq!(
        ids(&inst),
        ["design", "implement", "tests", "docs", "review"]
    );
    assert_eq!(inst.title, "Feature: CSV export");
    assert_eq!(deps(&inst, "review"), ["tests", "docs"]);

    let inst = pb
        .instantiate(&vars(&[("feature", "CSV export"), ("with_docs", "no")]))
        .unwrap();
    assert_eq!(ids(&inst), ["design", "implement", "tests", "review"]);
    assert_eq!(inst.dropped, ["docs"]);
    // the dropped docs step counts as done once implement is
    assert_eq!(deps(&inst, "review"), ["tests", "implement"]);
    check_graph(&inst);
}

#[test]
fn bugfix_playbook_follows_severity() {
    let text = fs::read_to_string(repo_dir("playbooks/bugfix.toml")).unwrap();
    let pb = Playbook::parse(&text, "bugfix.toml").unwrap();
    let inst = pb.instantiate(&vars(&[("bug", "crash")])).unwrap();
    assert_eq!(ids(&inst), ["reproduce", "fix", "regression-test"]);
    let inst = pb
        .instantiate(&vars(&[("bug", "crash"), ("severity", "critical")]))
        .unwrap();
    assert_eq!(
        ids(&inst),
        ["reproduce", "fix-urgent", "regression-test", "postmortem"]
    );
    assert_eq!(inst.steps[1].priority, 1);
    check_graph(&inst);
    let e = pb
        .instantiate(&vars(&[("bug", "crash"), ("severity", "bad")]))
        .unwrap_err();
    assert!(e.to_string().contains("minor, major, critical"), "{e}");
}

#[test]
fn release_playbook_passes_variables_to_shell_steps_by_environment() {
    let text = fs::read_to_string(repo_dir("playbooks/release.toml")).unwrap();
    let pb = Playbook::parse(&text, "release.toml").unwrap();
    let inst = pb.instantiate(&vars(&[("version", "1.4.0")])).unwrap();
    assert_eq!(
        ids(&inst),
        ["changes", "changelog", "bump-version", "check", "announce"]
    );
    let StepKind::Shell {
        command,
        timeout_secs,
        env,
    } = &inst.steps[0].kind
    else {
        panic!("changes is a shell step");
    };
    assert_eq!(command, "git log --oneline -20");
    assert_eq!(*timeout_secs, 60);
    assert_eq!(env["SF_VAR_VERSION"], "1.4.0");
    assert_eq!(env["SF_VAR_DRY_RUN"], "false");

    let inst = pb
        .instantiate(&vars(&[("version", "1.4.0"), ("dry_run", "yes")]))
        .unwrap();
    assert_eq!(inst.dropped, ["announce"]);
}

/// File name → substrings its error must contain (besides the file path).
const INVALID: &[(&str, &[&str])] = &[
    (
        "bad-condition.toml",
        &[
            "step `design`",
            "invalid condition at column 10: unknown operator `=`",
            "{{size}} = large",
        ],
    ),
    (
        "bad-default-type.toml",
        &[
            "variable `with_docs`",
            "the default is a string, but the variable is a boolean: write true or false without quotes",
        ],
    ),
    (
        "bad-priority.toml",
        &[
            "step `urgent`",
            "priority 7 is out of range: use 1 (most urgent) to 5",
        ],
    ),
    (
        "bad-timeout.toml",
        &["step `log`", "invalid timeout `ten minutes`", "\"10m\""],
    ),
    (
        "command-template.toml",
        &[
            "step `tag`",
            "commands are not templated",
            "\"$SF_VAR_VERSION\"",
        ],
    ),
    (
        "cycle.toml",
        &[
            "in a cycle: design -> review -> implement -> design",
            "remove one",
        ],
    ),
    (
        "duplicate-id.toml",
        &["step `tests`", "two steps have this id"],
    ),
    (
        "duplicate-variable.toml",
        &["variable `feature`", "declared twice"],
    ),
    ("empty-title.toml", &["step `design`", "the title is empty"]),
    (
        "enum-default-not-in-values.toml",
        &[
            "variable `size`",
            "the default \"huge\" is not one of the values (small, large)",
        ],
    ),
    (
        "enum-without-values.toml",
        &["variable `size`", "an enum needs its `values`"],
    ),
    (
        "invalid-variable-name.toml",
        &["variable `With-Docs`", "invalid variable name"],
    ),
    (
        "neither-required-nor-default.toml",
        &[
            "variable `feature`",
            "neither `required = true` nor a `default`",
        ],
    ),
    ("no-steps.toml", &["the playbook has no steps", "[[steps]]"]),
    (
        "required-and-default.toml",
        &[
            "variable `feature`",
            "both `required = true` and a `default`",
        ],
    ),
    (
        "self-dependency.toml",
        &["step `loop`", "depends on itself"],
    ),
    (
        "shell-without-command.toml",
        &["step `log`", "a shell step needs a `command`"],
    ),
    ("syntax-error.toml", &["TOML parse error at line 3"]),
    (
        "task-with-command.toml",
        &[
            "step `log`",
            "a task step has no `command`: add kind = \"shell\"",
        ],
    ),
    ("unclosed-variable.toml", &["step `docs`", "unclosed `{{`"]),
    (
        "undeclared-variable-in-title.toml",
        &[
            "step `build`",
            "the title mentions {{name}}, which is not a declared variable (declared: feature)",
        ],
    ),
    (
        "undeclared-variable.toml",
        &[
            "step `docs`",
            "the condition mentions {{with_doc}}, which is not a declared variable (declared: with_docs)",
        ],
    ),
    (
        "unknown-dependency.toml",
        &[
            "step `implement`",
            "depends_on names `desing`, which is not a step of this playbook (steps: design, implement)",
        ],
    ),
    (
        "unknown-field.toml",
        &["line 12", "unknown field `dependencies`", "depends_on"],
    ),
    (
        "unknown-kind.toml",
        &["line 8", "unknown variant `script`", "task", "shell"],
    ),
];

#[test]
fn invalid_playbooks_are_refused_with_readable_errors() {
    let dir = repo_dir("tests/fixtures/playbooks-invalid");
    let files = toml_files(&dir);
    let expected: BTreeMap<&str, &[&str]> = INVALID.iter().copied().collect();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        expected.keys().copied().collect::<Vec<_>>(),
        "every fixture needs an expected error here, and every entry a fixture"
    );
    assert!(files.len() >= 10);
    for (file, text) in &files {
        let source = format!("tests/fixtures/playbooks-invalid/{file}");
        let err = match Playbook::parse(text, &source) {
            Ok(_) => panic!("{source} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with(&format!("{source}: ")), "{err}");
        for needle in expected[file.as_str()] {
            assert!(err.contains(needle), "{file}: wanted {needle:?} in:\n{err}");
        }
    }
}
