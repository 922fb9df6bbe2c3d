//! Agent templates: what `sfctl agent template list|show` offers and a draft agent starts
//! from (its spec, its seat's draft charter, and the sample task of its dry run).
//!
//! Eight are built in: `director`, `coder`, `reviewer`, `qa`, `security-reviewer`,
//! `merge-steward`, `docs-steward` and `recovery-steward`. A workspace adds its own, or
//! replaces a built-in of the same name, with a file `.sf/templates/NAME.toml`, NAME
//! following the rules of agent names (lowercase letters, digits, `-`, `_`):
//!
//! ```toml
//! description = "Writes Rust, tests first"   # required: what the template is for
//! extends = "coder"             # optional: a built-in whose values are the defaults
//! role = "worker"               # director | worker | steward
//! mode = "ephemeral"            # ephemeral | persistent
//! job = "coder"                 # ceo | coder | reviewer | qa | designer | security |
//!                               #   devops | pm | general
//! adapter = "claude"            # claude | codex | opencode | command
//! # command = "/opt/bin/agent"  # for `command`, or another path for the CLI
//! model = "sonnet"
//! effort = "high"               # low | medium | high
//! skills = ["rust", "tdd"]
//! capabilities = ["network"]    # push | network | github | ticketing
//! persona = "You write small, well-tested changes."
//! title = "Backend engineer"
//! max_tasks = 2                 # 1 to 64
//! max_runtime = "30m"           # wall time of one run
//! secrets = ["CRATES_TOKEN"]    # aliases of [secrets] in config.toml
//! # Stewards only (role = "steward"), and `focus` is required for them:
//! # focus = "docs"              # merge | docs | recovery | custom
//! # playbook = "nightly"        # with focus = "custom": the playbook it runs
//! # triggers = ["0 3 * * *"]    # 5-field cron
//! # on = ["task_stuck"]         # event triggers, EVENT[:CONDITION]
//!
//! [charter]                     # the seat's draft charter
//! purpose = "Implement backend tasks as small, tested changes."
//! inputs = "Backend tasks and the director's messages."
//! outputs = "Commits on the task branch and a summary at `sfctl task complete`."
//! approval_boundaries = "Lands only through the merge queue; never pushes."
//! escalation = "Hands the task back when it is unclear."
//!
//! [sample_task]                 # what its dry run works on when no task is given
//! title = "Describe the crate layout"
//! description = "Add a one-line note to NOTES.md describing the crates, then complete."
//! ```
//!
//! Every key but `description` is optional; an unknown key is an error. Without `extends`
//! a template is an ephemeral `general` worker on the `claude` adapter with one task at a
//! time; with it, each key given replaces the built-in's value (lists as a whole, the
//! charter and sample task field by field), and an empty string clears a text field. A
//! `role` other than `steward` drops the steward fields it would inherit (`focus`,
//! `playbook`, `triggers`, `on`). Values of the closed vocabularies are spelled as on the
//! wire, loosely (`in-progress` or `in_progress`, any case).

use std::path::Path;
use std::sync::LazyLock;

use sf_proto::TemplateInfo;

pub(crate) use def::{RawDef, Src, files, stem};

use crate::naming::validate_agent_name;

mod def;

/// A template that could not be read or found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A file or directory could not be read.
    #[error("cannot read {file}: {message}")]
    Read {
        /// The file or directory.
        file: String,
        /// Why.
        message: String,
    },
    /// A file is not a valid template.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong, with line and column when known.
        message: String,
    },
    /// No template has the name.
    #[error(
        "no template `{name}`{}; see `sfctl agent template list`",
        .suggestion.as_ref().map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
    )]
    NotFound {
        /// The name asked for.
        name: String,
        /// The closest name there is, if any is close.
        suggestion: Option<String>,
    },
}

/// Parses the template `name` from `text`, the content of the file `source` (which errors
/// name, with line and column).
pub fn parse(name: &str, source: &str, text: &str) -> Result<TemplateInfo, TemplateError> {
    build(name, source, text, &BUILTINS)
}

fn build(
    name: &str,
    source: &str,
    text: &str,
    bases: &[TemplateInfo],
) -> Result<TemplateInfo, TemplateError> {
    let invalid = |message: String| TemplateError::Invalid {
        file: source.to_owned(),
        message,
    };
    validate_agent_name(name).map_err(|e| {
        invalid(format!(
            "{e}; a template is named by its file, so rename the file"
        ))
    })?;
    let src = Src {
        text,
        first_line: 1,
    };
    let mut raw = src.read().map_err(invalid)?;
    if let Some(n) = &raw.name {
        return Err(invalid(src.at(
            &n.span(),
            "`name`: a template is named by its file; remove `name`",
        )));
    }
    let description = raw
        .description
        .take()
        .filter(|d| !d.trim().is_empty())
        .ok_or_else(|| {
            invalid("`description` is missing: say in a sentence what the template is for".into())
        })?;
    let r = raw.resolve(bases, src).map_err(invalid)?;
    Ok(TemplateInfo {
        name: name.to_owned(),
        description,
        source: source.to_owned(),
        spec: r.spec,
        charter: r.charter,
        sample_task: r.sample_task,
    })
}

/// The built-in templates and those of `dir` (`.sf/templates`), sorted by name; a file
/// replaces the built-in of its name.
pub fn load(dir: &Path) -> Result<Vec<TemplateInfo>, TemplateError> {
    let read = |file: &Path, e: std::io::Error| TemplateError::Read {
        file: file.display().to_string(),
        message: e.to_string(),
    };
    let mut all = builtin();
    for path in files(dir, "toml").map_err(|e| read(dir, e))? {
        let file = path.display().to_string();
        let name = stem(&path).ok_or_else(|| TemplateError::Invalid {
            file: file.clone(),
            message: "the file name is not UTF-8; name it NAME.toml".into(),
        })?;
        let text = std::fs::read_to_string(&path).map_err(|e| read(&path, e))?;
        let t = parse(name, &file, &text)?;
        all.retain(|b| b.name != t.name);
        all.push(t);
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// The template `name`, built in or of `dir`.
pub fn find(dir: &Path, name: &str) -> Result<TemplateInfo, TemplateError> {
    let all = load(dir)?;
    if let Some(t) = all.iter().find(|t| t.name == name) {
        return Ok(t.clone());
    }
    let suggestion = all
        .iter()
        .map(|t| (strsim::jaro_winkler(name, &t.name), &t.name))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score >= 0.8)
        .map(|(_, n)| n.clone());
    Err(TemplateError::NotFound {
        name: name.to_owned(),
        suggestion,
    })
}

/// The built-in templates, in the format of `.sf/templates/NAME.toml`.
const BUILTIN: [(&str, &str); 8] = [
    ("coder", include_str!("templates/coder.toml")),
    ("director", include_str!("templates/director.toml")),
    ("docs-steward", include_str!("templates/docs-steward.toml")),
    (
        "merge-steward",
        include_str!("templates/merge-steward.toml"),
    ),
    ("qa", include_str!("templates/qa.toml")),
    (
        "recovery-steward",
        include_str!("templates/recovery-steward.toml"),
    ),
    ("reviewer", include_str!("templates/reviewer.toml")),
    (
        "security-reviewer",
        include_str!("templates/security-reviewer.toml"),
    ),
];

/// The built-ins, parsed once (they are part of the program: a mistake is a bug, caught by
/// the tests).
static BUILTINS: LazyLock<Vec<TemplateInfo>> = LazyLock::new(|| {
    BUILTIN
        .iter()
        .map(|(name, text)| {
            build(name, "built-in", text, &[])
                .unwrap_or_else(|e| panic!("built-in template `{name}`: {e}"))
        })
        .collect()
});

/// The built-in templates, sorted by name: `coder`, `director`, `docs-steward`,
/// `merge-steward` (adapter `command`: the daemon runs the queue itself), `qa`,
/// `recovery-steward`, `reviewer` and `security-reviewer`. None grants a capability; only
/// stewards have triggers.
pub fn builtin() -> Vec<TemplateInfo> {
    BUILTINS.clone()
}

#[cfg(test)]
pub(crate) mod tests;
