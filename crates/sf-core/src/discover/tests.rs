use sf_proto::{Adapter, Focus, JobRole, Role};

use super::*;

const AGENTS_MD: &str = "# Our agents

Intro prose belongs to no agent.

## Agent: Backend

You own `server/`.

- Write Rust.
- Tests first.

```toml
extends = \"coder\"
adapter = \"codex\"
[charter]
purpose = \"Server tasks.\"
```

```toml
role = \"director\"
```

### Style

> Small commits.

## Notes

Not an agent.

### agent: nightly

```toml
extends = \"tidy\"
```

# Agent: plain
";

fn temp(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-discover-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join(".sf/agents")).unwrap();
    std::fs::create_dir_all(dir.join(".sf/templates")).unwrap();
    dir
}

#[test]
fn sections_run_to_the_next_heading_of_their_level() {
    let s = sections(AGENTS_MD);
    let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["backend", "nightly", "plain"]);
    let backend = &s[0];
    assert_eq!(backend.heading, "Agent: Backend");
    assert_eq!(
        backend.prose,
        [
            "You own `server/`.",
            "- Write Rust.\n- Tests first.",
            "> Small commits."
        ]
    );
    let (toml, line) = backend.toml.clone().unwrap();
    assert!(
        toml.starts_with("extends = \"coder\"\n") && !toml.contains("director"),
        "{toml}"
    );
    assert_eq!(line, 13, "the line after the fence");
    assert!(s[1].prose.is_empty(), "`Notes` ended the backend section");
    assert_eq!(s[2].toml, None);
    assert_eq!(anchor("Agent: Backend"), "agent-backend");
}

#[test]
fn both_places_are_found_with_their_sources() {
    let root = temp("found");
    std::fs::write(root.join("AGENTS.md"), AGENTS_MD).unwrap();
    std::fs::write(
        root.join(".sf/templates/tidy.toml"),
        "description = \"Tidies\"\nextends = \"docs-steward\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join(".sf/agents/qa-bot.toml"),
        "extends = \"qa\"\npersona = \"Be thorough.\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join(".sf/agents/other.toml"),
        "name = \"renamed\"\nrole = \"worker\"\n",
    )
    .unwrap();
    let found = discover(&root).unwrap();
    let names: Vec<(&str, &str)> = found
        .iter()
        .map(|d| (d.spec.name.as_str(), d.source.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("backend", "AGENTS.md#agent-backend"),
            ("nightly", "AGENTS.md#agent-nightly"),
            ("plain", "AGENTS.md#agent-plain"),
            ("qa-bot", ".sf/agents/qa-bot.toml"),
            ("renamed", ".sf/agents/other.toml"),
        ]
    );
    let backend = &found[0];
    assert_eq!(
        (backend.spec.adapter, backend.spec.job),
        (Adapter::Codex, JobRole::Coder)
    );
    assert_eq!(backend.charter.purpose, "Server tasks.");
    let persona = backend.spec.persona.as_deref().unwrap();
    assert!(
        persona.starts_with("You own `server/`.\n\n- Write Rust."),
        "{persona}"
    );
    assert_eq!(
        (found[1].spec.role, found[1].spec.focus),
        (Role::Steward, Some(Focus::Docs))
    );
    assert_eq!(found[2].spec.persona, None);
    assert!(found[2].charter.is_empty());
    assert_eq!(found[3].spec.persona.as_deref(), Some("Be thorough."));
    assert_eq!(found[3].spec.job, JobRole::Qa);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(discover(&root).unwrap(), []);
}

#[test]
fn errors_name_the_file_the_section_and_the_problem() {
    let root = temp("errors");
    let md = "# Team\n\n## Agent: x\n\n```toml\nrole = \"worker\"\nmood = \"calm\"\n```\n";
    std::fs::write(root.join("AGENTS.md"), md).unwrap();
    let e = discover(&root).unwrap_err().to_string();
    assert!(
        e.starts_with("AGENTS.md, section `Agent: x`: line 7, column 1: unknown field `mood`"),
        "{e}"
    );
    std::fs::write(
        root.join("AGENTS.md"),
        "## Agent: x\n```toml\nname = \"y\"\n```\n",
    )
    .unwrap();
    let e = discover(&root).unwrap_err().to_string();
    assert!(
        e.contains("line 3, column 8: `name` = \"y\" differs"),
        "{e}"
    );
    std::fs::write(root.join("AGENTS.md"), "## Agent: Bad Name\n").unwrap();
    let e = discover(&root).unwrap_err().to_string();
    assert!(
        e.contains("section `Agent: Bad Name`: invalid agent name `bad name`"),
        "{e}"
    );
    std::fs::write(root.join("AGENTS.md"), "## Agent: x\n").unwrap();
    std::fs::write(root.join(".sf/agents/x.toml"), "").unwrap();
    let e = discover(&root).unwrap_err().to_string();
    assert_eq!(
        e,
        "agent `x` is defined twice, in AGENTS.md#agent-x and in .sf/agents/x.toml; keep one"
    );
    std::fs::remove_file(root.join("AGENTS.md")).unwrap();
    std::fs::write(root.join(".sf/agents/x.toml"), "extends = \"nope\"\n").unwrap();
    let e = discover(&root).unwrap_err().to_string();
    assert!(
        e.starts_with(".sf/agents/x.toml: line 1, column 11: `extends`: no template `nope`"),
        "{e}"
    );
    std::fs::write(root.join(".sf/templates/broken.toml"), "role = 1\n").unwrap();
    let e = discover(&root).unwrap_err().to_string();
    assert!(
        e.contains("broken.toml"),
        "templates are read when one is extended: {e}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_documented_examples_are_valid() {
    let source = include_str!("../discover.rs");
    let toml = crate::templates::tests::doc_blocks(source, "toml");
    let md = crate::templates::tests::doc_blocks(source, "markdown");
    assert_eq!((toml.len(), md.len()), (1, 1));
    let root = temp("docs");
    std::fs::write(root.join(".sf/agents/server.toml"), &toml[0]).unwrap();
    let found = discover(&root).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].spec.name.as_str(), found[0].spec.adapter),
        ("backend", Adapter::Codex)
    );
    assert_eq!(found[0].source, ".sf/agents/server.toml");
    std::fs::remove_file(root.join(".sf/agents/server.toml")).unwrap();
    std::fs::write(root.join("AGENTS.md"), &md[0]).unwrap();
    let found = discover(&root).unwrap();
    let names: Vec<&str> = found.iter().map(|d| d.spec.name.as_str()).collect();
    assert_eq!(names, ["backend", "nightly-docs"]);
    assert!(
        found[0]
            .spec
            .persona
            .as_deref()
            .unwrap()
            .starts_with("You own `server/`")
    );
    assert_eq!(found[1].spec.triggers, ["0 4 * * *"]);
    std::fs::remove_dir_all(&root).unwrap();
}
