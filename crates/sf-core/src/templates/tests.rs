use sf_proto::{Adapter, Capability, JobRole, Mode, Role};

use super::*;
use crate::naming::normalize_skills;

fn invalid(text: &str) -> String {
    parse("t", ".sf/templates/t.toml", text)
        .unwrap_err()
        .to_string()
}

#[test]
fn builtins_are_complete_and_consistent() {
    let all = builtin();
    let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "coder",
            "director",
            "docs-steward",
            "merge-steward",
            "qa",
            "recovery-steward",
            "reviewer",
            "security-reviewer"
        ]
    );
    for t in &all {
        let s = &t.spec;
        assert!(
            validate_agent_name(&t.name).is_ok() && s.name.is_empty(),
            "{}",
            t.name
        );
        assert_eq!(s.focus.is_some(), s.role == Role::Steward, "{}", t.name);
        assert_eq!(
            !s.triggers.is_empty(),
            s.role == Role::Steward,
            "{}",
            t.name
        );
        assert!(!s.capabilities.contains(&Capability::Push), "{}", t.name);
        assert_eq!(normalize_skills(&s.skills).unwrap(), s.skills, "{}", t.name);
        for cron in &s.triggers {
            crate::cron::CronSchedule::parse(cron).unwrap();
        }
        let c = &t.charter;
        for field in [
            &c.purpose,
            &c.inputs,
            &c.outputs,
            &c.approval_boundaries,
            &c.escalation,
        ] {
            assert!(field.ends_with('.'), "{}: {field}", t.name);
        }
        assert!(
            !t.description.is_empty() && !t.sample_task.title.is_empty(),
            "{}",
            t.name
        );
        assert!(t.sample_task.description.contains("sfctl"), "{}", t.name);
    }
    let director = &all[1].spec;
    assert_eq!(
        (director.role, director.mode, director.job),
        (Role::Director, Mode::Persistent, JobRole::Ceo)
    );
}

#[test]
fn a_file_extends_a_builtin_field_by_field() {
    let t = parse(
        "backend",
        "b.toml",
        "description = \"Rust backend\"\nextends = \"coder\"\nadapter = \"CODEX\"\nskills = [\"Rust\", \"tdd\"]\n\
         max_runtime = \"30m\"\ncapabilities = [\"network\"]\n[charter]\npurpose = \"Backend work.\"\n",
    )
    .unwrap();
    let coder = &builtin()[0];
    assert_eq!(t.source, "b.toml");
    assert_eq!(t.spec.adapter, Adapter::Codex);
    assert_eq!(t.spec.job, JobRole::Coder);
    assert_eq!(t.spec.skills, ["rust", "tdd"]);
    assert_eq!(t.spec.max_runtime_secs, Some(1800));
    assert_eq!(t.spec.capabilities, [Capability::Network]);
    assert_eq!(t.charter.purpose, "Backend work.");
    assert_eq!(t.charter.escalation, coder.charter.escalation);
    assert_eq!(t.sample_task, coder.sample_task);
}

#[test]
fn defaults_without_extends_and_steward_fields_dropped_with_the_role() {
    let t = parse(
        "x",
        "x.toml",
        "description = \"d\"\nmode = \"persistent\"\n",
    )
    .unwrap();
    assert_eq!(
        (t.spec.role, t.spec.adapter, t.spec.max_tasks),
        (Role::Worker, Adapter::Claude, 1)
    );
    let t = parse(
        "x",
        "x.toml",
        "description = \"d\"\nextends = \"docs-steward\"\nrole = \"worker\"\n",
    )
    .unwrap();
    assert_eq!((t.spec.focus, t.spec.triggers.len()), (None, 0));
}

#[test]
fn errors_name_the_file_the_place_and_the_problem() {
    for (text, says) in [
        (
            "description = \"d\"\nrole = \"boss\"\n",
            "t.toml: line 2, column 8: `role`: unknown Role `boss` (expected one of: director, worker, steward)",
        ),
        (
            "description = \"d\"\ncolour = 1\n",
            "line 2, column 1: unknown field `colour`",
        ),
        (
            "description = \"d\"\nrole = \"steward\"\n",
            "line 2, column 8: a steward needs a `focus`",
        ),
        (
            "description = \"d\"\nfocus = \"docs\"\n",
            "`focus` is for stewards",
        ),
        (
            "description = \"d\"\nextends = \"nope\"\n",
            "`extends`: no template `nope` (known: coder,",
        ),
        (
            "description = \"d\"\ncapabilities = [\"fly\"]\n",
            "`capabilities`: unknown Capability `fly`",
        ),
        (
            "description = \"d\"\nrole = \"steward\"\nfocus = \"docs\"\ntriggers = [\"61 * * * *\"]\n",
            "line 4, column 13: `triggers`: invalid cron",
        ),
        (
            "description = \"d\"\non = [\"task_stuck:{{\"]\n",
            "`on`: invalid event trigger",
        ),
        (
            "description = \"d\"\nmax_runtime = \"soon\"\n",
            "line 2, column 15: `max_runtime`",
        ),
        (
            "description = \"d\"\nmax_tasks = 0\n",
            "`max_tasks` = 0 is out of range",
        ),
        (
            "description = \"d\"\nskills = [\"a b\"]\n",
            "line 2, column 11: `skills`: invalid skill",
        ),
        ("description = \"d\"\nname = \"x\"\n", "remove `name`"),
        ("role = \"worker\"\n", "`description` is missing"),
        (
            "description = \"d\"\n[charter]\npurpose = 1\n",
            "line 3, column 11",
        ),
    ] {
        let e = invalid(text);
        assert!(e.contains(says), "{text}: {e}");
    }
    let e = parse("Bad Name", "Bad Name.toml", "description = \"d\"\n").unwrap_err();
    assert!(e.to_string().contains("rename the file"), "{e}");
}

#[test]
fn load_merges_files_and_find_suggests_a_name() {
    let dir = std::env::temp_dir().join(format!("sf-templates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("coder.toml"),
        "description = \"Our coder\"\nextends = \"coder\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("writer.toml"), "description = \"Writes\"\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let all = load(&dir).unwrap();
    assert_eq!(all.len(), builtin().len() + 1);
    assert!(all.windows(2).all(|w| w[0].name < w[1].name));
    let coder = find(&dir, "coder").unwrap();
    assert_eq!(coder.description, "Our coder");
    assert!(coder.source.ends_with("coder.toml"));
    assert_eq!(find(&dir, "writer").unwrap().spec.job, JobRole::General);
    let e = find(&dir, "reviwer").unwrap_err().to_string();
    assert_eq!(
        e,
        "no template `reviwer` (did you mean `reviewer`?); see `sfctl agent template list`"
    );
    let e = find(&dir, "zzz").unwrap_err().to_string();
    assert_eq!(e, "no template `zzz`; see `sfctl agent template list`");
    std::fs::write(dir.join("Bad.toml"), "description = \"d\"\n").unwrap();
    assert!(load(&dir).unwrap_err().to_string().contains("Bad.toml"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(load(&dir).unwrap(), builtin());
}

/// The fenced blocks of a module's doc comment marked `lang` (blocks nested in another are
/// part of it).
pub(crate) fn doc_blocks(source: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<(String, bool, String)> = None; // closing fence, wanted, body
    for line in source.lines().filter_map(|l| l.strip_prefix("//!")) {
        let line = line.strip_prefix(' ').unwrap_or(line);
        let ticks = line.len() - line.trim_start_matches('`').len();
        match block.take() {
            Some((fence, wanted, body)) if line == fence => out.extend(wanted.then_some(body)),
            Some((fence, wanted, body)) => block = Some((fence, wanted, body + line + "\n")),
            None if ticks >= 3 => {
                block = Some(("`".repeat(ticks), line[ticks..] == *lang, String::new()));
            }
            None => {}
        }
    }
    out
}

#[test]
fn the_documented_example_is_a_valid_template() {
    let blocks = doc_blocks(include_str!("../templates.rs"), "toml");
    assert_eq!(blocks.len(), 1);
    let t = parse("backend", "backend.toml", &blocks[0]).unwrap();
    assert_eq!(t.spec.max_tasks, 2);
    assert_eq!(t.sample_task.title, "Describe the crate layout");
}
