//! `sfctl adapters`: each adapter, the CLI it runs and what each of an agent's fields means
//! for it, so a person or a hiring agent can compare configurations.

use sf_proto::{Adapter, AdapterField, AdapterInfo};

fn field(name: &str, meaning: &str, default: &str) -> AdapterField {
    AdapterField {
        name: name.to_owned(),
        meaning: meaning.to_owned(),
        default: default.to_owned(),
    }
}

/// Every adapter with its configuration fields.
pub fn catalogue() -> Vec<AdapterInfo> {
    let common = || {
        vec![
            field("--max-tasks", "most tasks the agent runs at once", "1"),
            field(
                "--max-runtime",
                "wall-time limit of one run",
                "worker_timeout in config.toml (2h)",
            ),
            field(
                "--capability",
                "push, network, github, ticketing: what it may do beyond its worktree (a human grants)",
                "none",
            ),
            field(
                "--secret",
                "aliases of [secrets] whose values its runs get as $ALIAS (a human grants)",
                "none",
            ),
            field("--skills", "skills a task may require", "none"),
        ]
    };
    let with = |mut own: Vec<AdapterField>| {
        own.extend(common());
        own
    };
    vec![
        AdapterInfo {
            adapter: Adapter::Claude,
            program: "claude".into(),
            description: "Claude Code in print mode, stream-json output; resumes sessions".into(),
            fields: with(vec![
                field(
                    "--model",
                    "model alias or name (`sonnet`, `opus`, a full id)",
                    "the CLI's default",
                ),
                field(
                    "--effort",
                    "low, medium, high: reasoning effort (`--effort`)",
                    "the CLI's default",
                ),
                field(
                    "--command",
                    "replaces the `claude` program (a path, or `npx …`)",
                    "claude on PATH",
                ),
            ]),
        },
        AdapterInfo {
            adapter: Adapter::Codex,
            program: "codex".into(),
            description: "OpenAI Codex `codex exec --json`; resumes sessions".into(),
            fields: with(vec![
                field(
                    "--model",
                    "model name (`gpt-5-codex`, …)",
                    "the CLI's default",
                ),
                field(
                    "--effort",
                    "low, medium, high: `model_reasoning_effort`",
                    "the CLI's default",
                ),
                field("--command", "replaces the `codex` program", "codex on PATH"),
            ]),
        },
        AdapterInfo {
            adapter: Adapter::Opencode,
            program: "opencode".into(),
            description: "OpenCode `opencode run --format json`; resumes sessions".into(),
            fields: with(vec![
                field(
                    "--model",
                    "PROVIDER/MODEL, required (no hosted fallback)",
                    "none: required",
                ),
                field(
                    "--effort",
                    "low, medium, high: `--variant`",
                    "the provider's default",
                ),
                field(
                    "--command",
                    "replaces the `opencode` program",
                    "opencode on PATH",
                ),
            ]),
        },
        AdapterInfo {
            adapter: Adapter::Command,
            program: "(the command line)".into(),
            description:
                "any executable; the prompt on stdin, SF_MODEL/SF_EFFORT in its environment".into(),
            fields: with(vec![
                field(
                    "--command",
                    "the command line, split into words without a shell; required",
                    "none: required",
                ),
                field("--model", "passed as SF_MODEL", "none"),
                field("--effort", "passed as SF_EFFORT", "none"),
            ]),
        },
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_adapter_is_listed_with_its_model_and_command() {
        let all = super::catalogue();
        for a in sf_proto::Adapter::ALL {
            let info = all.iter().find(|i| i.adapter == *a).expect("listed");
            for f in ["--model", "--command"] {
                assert!(info.fields.iter().any(|x| x.name == f), "{a} {f}");
            }
        }
    }
}

#[cfg(test)]
mod budget_tests {
    use sf_proto::Adapter;

    #[test]
    fn only_claude_stops_itself_at_a_cost() {
        assert_eq!(
            crate::budget_args(Adapter::Claude, 1.5),
            ["--max-budget-usd", "1.5000"]
        );
        for a in [Adapter::Codex, Adapter::Opencode, Adapter::Command] {
            assert!(crate::budget_args(a, 1.5).is_empty());
        }
    }
}
