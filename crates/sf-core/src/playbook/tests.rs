use super::parse::parse_timeout;
use super::*;

const FEATURE: &str = r#"
name = "feature"
title = "Feature: {{feature}}"
description = "Build {{feature}}."

[[vars]]
name = "feature"
description = "what to build"
required = true

[[vars]]
name = "with_docs"
type = "boolean"
default = true

[[vars]]
name = "size"
type = "enum"
values = ["small", "large"]
default = "small"

[[vars]]
name = "reviewers"
type = "number"
default = 1

[[steps]]
id = "review"
title = "Review {{feature}}"
depends_on = ["docs", "tests"]
priority = 2

[[steps]]
id = "design"
title = "Design {{ feature }}"
description = "A {{size}} design for {{feature}}; {{not a var}} stays."
condition = "{{size}} == large"

[[steps]]
id = "implement"
title = "Implement {{feature}}"
depends_on = ["design"]
skills = ["Rust", "rust"]

[[steps]]
id = "tests"
title = "Test {{feature}}"
depends_on = ["implement"]

[[steps]]
id = "docs"
title = "Document {{feature}}"
depends_on = ["implement"]
condition = "{{with_docs}}"

[[steps]]
id = "check"
title = "Check"
kind = "shell"
command = "echo \"$SF_VAR_FEATURE\""
timeout = "1m 30s"
depends_on = ["review"]
"#;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ids(inst: &Instance) -> Vec<&str> {
    inst.steps.iter().map(|s| s.id.as_str()).collect()
}

fn step<'a>(inst: &'a Instance, id: &str) -> &'a StepInstance {
    inst.steps.iter().find(|s| s.id == id).unwrap()
}

#[test]
fn parses_and_orders_steps() {
    let pb = Playbook::parse(FEATURE, "feature.toml").unwrap();
    assert_eq!(pb.name(), "feature");
    assert_eq!(pb.vars().len(), 4);
    assert!(pb.vars()[0].required());
    assert_eq!(pb.vars()[1].default, Some(VarValue::Boolean(true)));
    assert_eq!(pb.vars()[1].env_name(), "SF_VAR_WITH_DOCS");
    let order: Vec<&str> = pb.steps().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        order,
        ["design", "implement", "tests", "docs", "review", "check"]
    );
    let implement = &pb.steps()[1];
    assert_eq!(implement.skills, ["rust"]);
    assert_eq!(implement.priority, DEFAULT_PRIORITY);
    assert_eq!(
        pb.steps()[5].action,
        StepAction::Shell {
            command: "echo \"$SF_VAR_FEATURE\"".to_owned(),
            timeout_secs: 90
        }
    );
}

#[test]
fn instantiates_with_defaults() {
    let pb = Playbook::parse(FEATURE, "feature.toml").unwrap();
    let inst = pb.instantiate(&vars(&[("feature", "login")])).unwrap();
    assert_eq!(inst.title, "Feature: login");
    assert_eq!(inst.description, "Build login.");
    // design is dropped (size is small): implement no longer waits on anything
    assert_eq!(inst.dropped, ["design"]);
    assert_eq!(
        ids(&inst),
        ["implement", "tests", "docs", "review", "check"]
    );
    assert!(step(&inst, "implement").depends_on.is_empty());
    assert_eq!(step(&inst, "review").depends_on, ["docs", "tests"]);
    assert_eq!(step(&inst, "review").priority, 2);
    assert_eq!(step(&inst, "review").title, "Review login");
    let StepKind::Shell {
        command,
        timeout_secs,
        env,
    } = &step(&inst, "check").kind
    else {
        panic!("check is a shell step");
    };
    // commands are never templated; variables come in the environment
    assert_eq!(command, "echo \"$SF_VAR_FEATURE\"");
    assert_eq!(*timeout_secs, 90);
    assert_eq!(env["SF_VAR_FEATURE"], "login");
    assert_eq!(env["SF_VAR_WITH_DOCS"], "true");
    assert_eq!(env["SF_VAR_SIZE"], "small");
    assert_eq!(env["SF_VAR_REVIEWERS"], "1");
    assert_eq!(inst.vars["reviewers"], VarValue::Number(1.into()));
}

#[test]
fn dropped_steps_pass_their_dependencies_on() {
    let pb = Playbook::parse(FEATURE, "feature.toml").unwrap();
    let inst = pb
        .instantiate(&vars(&[
            ("feature", "x"),
            ("with_docs", "no"),
            ("size", "large"),
        ]))
        .unwrap();
    assert_eq!(inst.dropped, ["docs"]);
    assert_eq!(
        ids(&inst),
        ["design", "implement", "tests", "review", "check"]
    );
    assert_eq!(step(&inst, "implement").depends_on, ["design"]);
    // review waited on docs and tests; docs is dropped, so it waits on what docs waited on
    assert_eq!(step(&inst, "review").depends_on, ["implement", "tests"]);
    assert_eq!(
        step(&inst, "design").description,
        "A large design for x; {{not a var}} stays."
    );
    assert_eq!(step(&inst, "design").title, "Design x");
}

#[test]
fn substituted_values_are_data() {
    let pb = Playbook::parse(FEATURE, "feature.toml").unwrap();
    let inst = pb
        .instantiate(&vars(&[("feature", "$(rm -rf /) {{size}}")]))
        .unwrap();
    // substitution happens once; a value that looks like a placeholder stays as given
    assert_eq!(inst.title, "Feature: $(rm -rf /) {{size}}");
    let StepKind::Shell { env, .. } = &step(&inst, "check").kind else {
        panic!("shell");
    };
    assert_eq!(env["SF_VAR_FEATURE"], "$(rm -rf /) {{size}}");
}

#[test]
fn variables_are_checked() {
    let pb = Playbook::parse(FEATURE, "feature.toml").unwrap();
    for (given, needle) in [
        (
            vec![],
            "missing required variable `feature` (string: what to build)",
        ),
        (
            vec![("feature", "x"), ("colour", "red")],
            "variable `colour`: the playbook `feature` has no such variable (it takes feature, with_docs, size, reviewers)",
        ),
        (
            vec![("feature", "x"), ("with_docs", "maybe")],
            "variable `with_docs`: `maybe` is not a boolean",
        ),
        (
            vec![("feature", "x"), ("size", "huge")],
            "variable `size`: `huge` is not one of the allowed values: small, large",
        ),
        (
            vec![("feature", "x"), ("reviewers", "two")],
            "variable `reviewers`: `two` is not a number",
        ),
        (
            vec![("feature", "a\nb")],
            "after substituting the variables: the title contains a line break",
        ),
    ] {
        let e = pb.instantiate(&vars(&given)).unwrap_err().to_string();
        assert!(e.starts_with("feature.toml: "), "{e}");
        assert!(e.contains(needle), "{given:?}: {e}");
    }
}

#[test]
fn values_parse_to_their_type() {
    assert_eq!(
        VarKind::Boolean.parse_value("YES"),
        Ok(VarValue::Boolean(true))
    );
    assert_eq!(
        VarKind::Boolean.parse_value("false"),
        Ok(VarValue::Boolean(false))
    );
    assert_eq!(
        VarKind::Number.parse_value("2.5").unwrap().to_string(),
        "2.5"
    );
    assert_eq!(VarKind::Number.parse_value(" 7 ").unwrap().to_string(), "7");
    assert!(VarKind::Number.parse_value("inf").is_err());
    assert!(VarKind::Number.parse_value("NaN").is_err());
}

#[test]
fn conditions_see_typed_values() {
    let text = r#"
name = "t"
title = "t"
[[vars]]
name = "n"
type = "number"
default = 2
[[steps]]
id = "big"
title = "big"
condition = "{{n}} != 2 && ({{n}} == 10 || {{n}} == 10.5)"
[[steps]]
id = "any"
title = "any"
condition = "!{{n}}"
"#;
    let pb = Playbook::parse(text, "t.toml").unwrap();
    let run = |n: &str| {
        let inst = pb.instantiate(&vars(&[("n", n)])).unwrap();
        inst.steps.into_iter().map(|s| s.id).collect::<Vec<_>>()
    };
    assert!(run("2").is_empty());
    assert_eq!(run("10.0"), ["big"]);
    assert_eq!(run("10.5"), ["big"]);
    assert_eq!(run("0"), ["any"]);
}

#[test]
fn cycles_are_printed() {
    let text = r#"
name = "c"
title = "c"
[[steps]]
id = "a"
title = "a"
depends_on = ["c"]
[[steps]]
id = "b"
title = "b"
depends_on = ["a"]
[[steps]]
id = "c"
title = "c"
depends_on = ["b"]
"#;
    let e = Playbook::parse(text, "c.toml").unwrap_err().to_string();
    assert!(
        e.contains("in a cycle: a -> c -> b -> a (each depends on the next)"),
        "{e}"
    );
}

#[test]
fn timeouts() {
    assert_eq!(parse_timeout("10m"), Ok(600));
    assert_eq!(parse_timeout("1h 30m"), Ok(5400));
    assert_eq!(parse_timeout("1500ms"), Ok(2));
    assert!(parse_timeout("0s").unwrap_err().contains("zero"));
    assert!(parse_timeout("2d").unwrap_err().contains("limit"));
    assert!(
        parse_timeout("soon")
            .unwrap_err()
            .contains("invalid timeout")
    );
}

#[test]
fn placeholders_are_names_in_double_braces() {
    let p: Vec<&str> = placeholders("{{a}} {{ b.c }} {{x y}} {{}} {{d")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(p, ["a", "b.c"]);
    let values = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
    assert_eq!(substitute("{{a}}-{{ a }}-{{b}}", &values), "1-1-{{b}}");
}
