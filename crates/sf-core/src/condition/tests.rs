use super::*;
use serde_json::json;

fn holds(cond: &str, data: &Value) -> bool {
    Condition::parse(cond)
        .unwrap_or_else(|e| panic!("{cond}: {e}"))
        .eval(data)
}

fn error(cond: &str) -> ConditionError {
    match Condition::parse(cond) {
        Ok(c) => panic!("{cond:?} parsed as {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn truthiness() {
    let data = json!({
        "yes": true, "no": false, "zero": 0, "zero_f": 0.0, "one": 1, "empty": "",
        "text": "x", "null": null, "list": [], "full": [1], "obj": {}, "fobj": {"a": 1},
        "str_false": "false"
    });
    for (var, want) in [
        ("yes", true),
        ("no", false),
        ("zero", false),
        ("zero_f", false),
        ("one", true),
        ("empty", false),
        ("text", true),
        ("null", false),
        ("missing", false),
        ("list", false),
        ("full", true),
        ("obj", false),
        ("fobj", true),
        // strings are data: only the empty string is false
        ("str_false", true),
    ] {
        assert_eq!(holds(&format!("{{{{{var}}}}}"), &data), want, "{var}");
        assert_eq!(holds(&format!("!{{{{{var}}}}}"), &data), !want, "!{var}");
    }
}

#[test]
fn comparisons() {
    let data = json!({"status": "closed", "priority": 2, "flag": true, "name": "a b"});
    assert!(holds("{{status}} == closed", &data));
    assert!(!holds("{{status}} != closed", &data));
    assert!(holds("{{status}} != open", &data));
    assert!(holds("{{status}}==closed", &data));
    assert!(holds("{{ status }} == \"closed\"", &data));
    assert!(holds("{{status}} == 'closed'", &data));
    assert!(holds("{{name}} == \"a b\"", &data));
    assert!(holds("{{flag}} == true", &data));
    // numbers compare as numbers when both sides read as numbers
    assert!(holds("{{priority}} == 2", &data));
    assert!(holds("{{priority}} == 2.0", &data));
    assert!(holds("{{priority}} != 3", &data));
    assert!(holds("{{p}} == 2", &json!({"p": "2"})));
    assert!(holds("{{p}} == 2", &json!({"p": 2.0})));
    // a quoted literal is a string
    assert!(!holds("{{priority}} == \"2.0\"", &data));
    assert!(holds("{{priority}} == \"2\"", &data));
    // missing and null read as ""
    assert!(holds("{{missing}} == \"\"", &data));
    assert!(holds("{{missing}} != closed", &data));
    assert!(!holds("{{missing}} == closed", &data));
    // NaN and infinities are not numbers here
    assert!(holds("{{x}} == nan", &json!({"x": "nan"})));
}

#[test]
fn escapes_in_quotes() {
    let data = json!({"q": "say \"hi\"\\"});
    assert!(holds(r#"{{q}} == "say \"hi\"\\""#, &data));
    assert!(holds(
        r#"{{q}} == 'it\'s \\ "x"'"#,
        &json!({"q": "it's \\ \"x\""})
    ));
}

#[test]
fn and_binds_tighter_than_or() {
    // a || b && c  ==  a || (b && c)
    let c = "{{a}} || {{b}} && {{c}}";
    assert!(holds(c, &json!({"a": true, "b": false, "c": false})));
    assert!(!holds(c, &json!({"a": false, "b": true, "c": false})));
    assert!(holds(c, &json!({"a": false, "b": true, "c": true})));
    // a && b || c  ==  (a && b) || c
    let c = "{{a}} && {{b}} || {{c}}";
    assert!(holds(c, &json!({"a": false, "b": false, "c": true})));
    assert!(!holds(c, &json!({"a": true, "b": false, "c": false})));
    // parentheses override
    let c = "({{a}} || {{b}}) && {{c}}";
    assert!(!holds(c, &json!({"a": true, "b": false, "c": false})));
    assert!(holds(c, &json!({"a": true, "b": false, "c": true})));
    // ! binds tightest
    assert!(holds("!{{a}} && {{b}}", &json!({"a": false, "b": true})));
    assert!(holds("!({{a}} && {{b}})", &json!({"a": true, "b": false})));
    assert!(holds("!!{{a}}", &json!({"a": 1})));
    assert!(holds("!({{s}} == x) || {{t}}", &json!({"s": "y"})));
}

#[test]
fn dotted_paths() {
    let data = json!({"task": {"priority": 1, "status": "review", "tags": ["ui", "db"]}});
    assert!(holds("{{task.priority}} == 1", &data));
    assert!(holds(
        "{{task.status}} == review && {{task.priority}} != 2",
        &data
    ));
    assert!(holds("{{task.tags.1}} == db", &data));
    assert!(!holds("{{task.tags.5}}", &data));
    assert!(!holds("{{task.priority.x}}", &data));
    assert!(!holds("{{nothing.here}}", &data));
    assert!(holds("{{task-x.a_b}}", &json!({"task-x": {"a_b": 1}})));
}

#[test]
fn vars_and_display() {
    let c = Condition::parse("{{a}} && ({{b.c}} == 1 || !{{a}}) || {{d}} != x").unwrap();
    assert_eq!(c.vars(), vec!["a", "b.c", "d"]);
    assert_eq!(
        c.to_string(),
        "{{a}} && ({{b.c}} == 1 || !{{a}}) || {{d}} != x"
    );
    let back: Condition = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    assert!(serde_json::from_value::<Condition>(json!("{{a")).is_err());
}

#[test]
fn malformed_conditions_point_at_the_mistake() {
    for (cond, offset, needle) in [
        ("", 0, "the condition is empty"),
        ("   ", 3, "the condition is empty"),
        ("{{status", 0, "unclosed `{{`"),
        ("{{a && {{b}}", 0, "unclosed `{{`"),
        ("{{}}", 0, "empty variable"),
        ("{{  }} == x", 0, "empty variable"),
        ("{{a b}}", 3, "cannot appear in variable name `a b`"),
        ("{{a..b}}", 4, "empty part in variable path"),
        ("{{.a}}", 2, "empty part"),
        ("{{a}} &&", 8, "expected a condition after `&&`"),
        ("{{a}} && ", 9, "expected a condition after `&&`"),
        ("{{a}} ||", 8, "expected a condition after `||`"),
        ("&& {{a}}", 0, "unexpected `&&` at the start"),
        (
            "{{a}} && && {{b}}",
            9,
            "expected a condition between `&&` and `&&`",
        ),
        ("{{a}} ==", 8, "expected a value after `==`, found the end"),
        (
            "{{a}} != && {{b}}",
            9,
            "expected a value after `!=`, found `&&`",
        ),
        ("{{a}} == {{b}}", 9, "compared with a literal value"),
        ("{{status}} = closed", 11, "unknown operator `=`"),
        ("{{a}} & {{b}}", 6, "unknown operator `&`: use `&&`"),
        ("{{a}} | {{b}}", 6, "unknown operator `|`: use `||`"),
        ("{{a}} > 3", 6, "unknown operator `>`"),
        ("{{a}} == x #", 11, "unexpected character `#`"),
        ("{{a}} == x;", 10, "unexpected character `;`"),
        ("{{a}} == x}", 10, "unexpected character `}`"),
        ("{a}", 0, "variables are written {{name}}"),
        (
            "{{status}} closed",
            11,
            "expected `==`, `!=`, `&&` or `||` after {{status}}",
        ),
        (
            "{{a}} == b c",
            11,
            "expected `&&` or `||` after `b`, found `c`",
        ),
        ("status == closed", 0, "unexpected value `status`"),
        ("== x", 0, "unexpected `==`"),
        ("!{{a}} == x", 7, "`!` negates a variable, not a comparison"),
        ("!", 1, "expected a condition after `!`"),
        ("({{a}}", 0, "unclosed `(`"),
        ("({{a}} x)", 7, "or `)` to close the `(` at column 1"),
        ("{{a}})", 5, "unmatched `)`"),
        ("()", 1, "expected a condition between `(` and `)`"),
        ("{{a}} == \"x", 9, "unclosed quote"),
    ] {
        let e = error(cond);
        assert!(
            e.message().contains(needle),
            "{cond:?}: got {:?}, wanted {needle:?}",
            e.message()
        );
        assert_eq!(e.offset(), offset, "{cond:?}: {e}");
    }
}

#[test]
fn error_display_has_a_caret() {
    let e = error("{{status}} = closed");
    assert_eq!(e.column(), 12);
    assert_eq!(
        e.to_string(),
        "invalid condition at column 12: unknown operator `=`: use `==` to compare (or `!=`)\n  {{status}} = closed\n             ^"
    );
    // columns count characters, not bytes
    let e = error("{{é}} == ü ;");
    assert_eq!(e.column(), 12);
    assert!(e.to_string().ends_with("\n             ^"), "{e}");
}

#[test]
fn triggers() {
    assert_eq!(
        parse_trigger("task_completed").unwrap(),
        ("task_completed".to_owned(), None)
    );
    let (event, cond) = parse_trigger("task_completed:{{status}} == closed").unwrap();
    assert_eq!(event, "task_completed");
    let cond = cond.unwrap();
    assert_eq!(cond.as_str(), "{{status}} == closed");
    assert!(cond.eval(&json!({"status": "closed"})));
    // a colon inside the condition belongs to it
    let (_, cond) = parse_trigger("custom_1:{{at}} == \"10:30\"").unwrap();
    assert!(cond.unwrap().eval(&json!({"at": "10:30"})));

    for (spec, offset, needle) in [
        ("", 0, "missing event name"),
        (":{{a}}", 0, "missing event name"),
        ("Task_Completed", 0, "invalid event name `Task_Completed`"),
        ("task-done:{{a}}", 4, "invalid event name `task-done`"),
        ("task_completed:", 15, "expected a condition after `:`"),
        (
            "task_completed:{{status}} = closed",
            26,
            "unknown operator `=`",
        ),
    ] {
        let e = parse_trigger(spec).unwrap_err();
        assert!(e.message().contains(needle), "{spec:?}: {e}");
        assert_eq!(e.offset(), offset, "{spec:?}: {e}");
        assert_eq!(e.text(), spec);
        assert!(
            e.to_string().starts_with("invalid trigger at column"),
            "{e}"
        );
    }
}
