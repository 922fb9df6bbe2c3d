//! Playbooks: TOML templates that become task graphs.
//!
//! [`Playbook::parse`] reads and validates one file (the caller reads it: sf-core does no IO);
//! [`Playbook::instantiate`] checks the variables given for a run, drops the steps whose
//! condition is false and returns the steps to create, in dependency order.
//!
//! # Format
//!
//! ```toml
//! name = "feature"                      # lowercase letters, digits, `-`, `_`
//! title = "Feature: {{feature}}"        # the workflow's title; may use {{variables}}
//! description = "Design, build, test and document a feature."
//!
//! # Variables: one [[vars]] table each, in the order they are shown.
//! [[vars]]
//! name = "feature"                      # lowercase letters, digits, `_`
//! type = "string"                       # string (the default) | number | boolean | enum
//! description = "What to build"
//! required = true                       # either `required = true` ...
//!
//! [[vars]]
//! name = "with_docs"
//! type = "boolean"
//! default = true                        # ... or a `default` of the variable's type
//!
//! [[vars]]
//! name = "size"
//! type = "enum"
//! values = ["small", "large"]           # enum only: the allowed values
//! default = "small"
//!
//! [[steps]]
//! id = "implement"                      # lowercase letters, digits, `-`, `_`; unique
//! title = "Implement {{feature}}"       # {{variables}} are substituted in titles and
//! description = "..."                   # descriptions only
//! priority = 2                          # 1 (most urgent) to 5; default 3
//! skills = ["rust"]                     # skills a worker needs; default none
//!
//! [[steps]]
//! id = "docs"
//! title = "Document {{feature}}"
//! depends_on = ["implement"]            # ids of steps that must be done first
//! condition = "{{with_docs}}"           # see crate::condition; variables only
//!
//! [[steps]]
//! id = "log"
//! title = "Recent history"
//! kind = "shell"                        # "task" (the default) or "shell"
//! command = "git log --oneline -20"     # run by `sh -c`; never templated
//! timeout = "5m"                        # shell only; default 10m, at most 24h
//! ```
//!
//! Unknown fields are refused everywhere. Shell commands are never substituted into: a shell
//! step gets every variable as the environment variable `SF_VAR_<NAME>` (`SF_VAR_WITH_DOCS`),
//! and a `{{variable}}` in a command is refused so nobody expects it to be replaced.
//!
//! # Dropped steps
//!
//! A step whose condition is false is dropped from the run and counts as done as soon as what it
//! depended on is done: a step that depended on it depends instead on the dropped step's own
//! (kept) dependencies. So with `implement → docs → review` and `docs` dropped, `review` still
//! waits on `implement`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use serde_json::{Number, Value};

use crate::condition::Condition;
use crate::naming;

mod parse;

/// Priority of a step that names none.
pub const DEFAULT_PRIORITY: u8 = 3;
/// Timeout of a shell step that names none, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10 * 60;
/// Longest shell step timeout, in seconds.
pub const MAX_TIMEOUT_SECS: u64 = 24 * 60 * 60;
/// Most steps in one playbook.
pub const MAX_STEPS: usize = 500;
/// Longest playbook name, step id or variable name.
pub const MAX_NAME: usize = 64;
/// Prefix of the environment variables that carry the variables to shell steps.
pub const ENV_PREFIX: &str = "SF_VAR_";

/// An invalid playbook, or variables that do not fit it. Displays as
/// `FILE: step `ID`: what is wrong and what to do`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybookError {
    /// The file (the `source` given to [`Playbook::parse`]).
    pub file: String,
    /// The step or variable concerned (`step `docs``, `variable `feature``), if any.
    pub at: Option<String>,
    /// What is wrong, and what to do about it.
    pub message: String,
}

impl fmt::Display for PlaybookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) => write!(f, "{}: {at}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for PlaybookError {}

/// The type of a variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarKind {
    /// Any text.
    String,
    /// A finite number, integer or not.
    Number,
    /// `true`/`false` (`yes`/`no` accepted on the command line).
    Boolean,
    /// One of the listed values.
    Enum(Vec<String>),
}

impl VarKind {
    /// The name used in the file: `string`, `number`, `boolean` or `enum`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Enum(_) => "enum",
        }
    }

    /// Parses a value given as text (`--var name=value`).
    pub fn parse_value(&self, text: &str) -> Result<VarValue, String> {
        match self {
            Self::String => Ok(VarValue::String(text.to_owned())),
            Self::Number => {
                let t = text.trim();
                if let Ok(i) = t.parse::<i64>() {
                    return Ok(VarValue::Number(i.into()));
                }
                t.parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(VarValue::Number)
                    .ok_or_else(|| format!("`{text}` is not a number"))
            }
            Self::Boolean => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" => Ok(VarValue::Boolean(true)),
                "false" | "no" => Ok(VarValue::Boolean(false)),
                _ => Err(format!(
                    "`{text}` is not a boolean: use true, false, yes or no"
                )),
            },
            Self::Enum(values) => {
                if values.iter().any(|v| v == text) {
                    Ok(VarValue::String(text.to_owned()))
                } else {
                    Err(format!(
                        "`{text}` is not one of the allowed values: {}",
                        values.join(", ")
                    ))
                }
            }
        }
    }
}

/// A variable's value.
#[derive(Debug, Clone, PartialEq)]
pub enum VarValue {
    /// A string or enum value.
    String(String),
    /// A number.
    Number(Number),
    /// A boolean.
    Boolean(bool),
}

impl VarValue {
    /// As JSON, for conditions.
    pub fn to_json(&self) -> Value {
        match self {
            Self::String(s) => Value::String(s.clone()),
            Self::Number(n) => Value::Number(n.clone()),
            Self::Boolean(b) => Value::Bool(*b),
        }
    }
}

/// The text form: substituted into titles and descriptions, and put in `SF_VAR_<NAME>`.
impl fmt::Display for VarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => f.write_str(s),
            Self::Number(n) => write!(f, "{n}"),
            Self::Boolean(b) => write!(f, "{b}"),
        }
    }
}

/// A declared variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    /// Name, as used in `{{name}}`.
    pub name: String,
    /// Type.
    pub kind: VarKind,
    /// What it is for.
    pub description: String,
    /// The default; `None` means the variable is required.
    pub default: Option<VarValue>,
}

impl Var {
    /// Whether a run must give it.
    pub fn required(&self) -> bool {
        self.default.is_none()
    }

    /// The environment variable that carries it to shell steps (`SF_VAR_WITH_DOCS`).
    pub fn env_name(&self) -> String {
        env_name(&self.name)
    }
}

/// What a template step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    /// A task for an agent.
    Task,
    /// A command the daemon runs itself.
    Shell {
        /// Run by `sh -c`, as written.
        command: String,
        /// Killed after this many seconds.
        timeout_secs: u64,
    },
}

/// A validated template step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Unique id within the playbook.
    pub id: String,
    /// Title template.
    pub title: String,
    /// Description template.
    pub description: String,
    /// Ids of steps that must be done first (each exists; no cycles).
    pub depends_on: Vec<String>,
    /// Included only when this holds over the variables.
    pub condition: Option<Condition>,
    /// 1 (most urgent) to 5.
    pub priority: u8,
    /// Normalized skills a worker needs.
    pub skills: Vec<String>,
    /// Task or shell.
    pub action: StepAction,
}

/// A validated playbook. Its steps are kept in a dependency order (each after what it depends
/// on; otherwise in file order).
#[derive(Debug, Clone, PartialEq)]
pub struct Playbook {
    name: String,
    title: String,
    description: String,
    vars: Vec<Var>,
    steps: Vec<Step>,
    source: String,
}

/// What an instance step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// A task for an agent.
    Task,
    /// A command the daemon runs in a worktree of its own.
    Shell {
        /// Run by `sh -c`, exactly as written in the playbook.
        command: String,
        /// Killed after this many seconds.
        timeout_secs: u64,
        /// `SF_VAR_<NAME>` for every variable.
        env: BTreeMap<String, String>,
    },
}

/// A step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInstance {
    /// The step's id.
    pub id: String,
    /// Title, variables substituted.
    pub title: String,
    /// Description, variables substituted.
    pub description: String,
    /// Ids of kept steps that must be done first (earlier in [`Instance::steps`]).
    pub depends_on: Vec<String>,
    /// 1 (most urgent) to 5.
    pub priority: u8,
    /// Normalized skills a worker needs.
    pub skills: Vec<String>,
    /// Task or shell.
    pub kind: StepKind,
}

/// A playbook with its variables bound: what a run creates.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The playbook's name.
    pub playbook: String,
    /// The workflow's title, variables substituted.
    pub title: String,
    /// The workflow's description, variables substituted.
    pub description: String,
    /// Every variable's value (given or default).
    pub vars: BTreeMap<String, VarValue>,
    /// The kept steps, each after the steps it depends on.
    pub steps: Vec<StepInstance>,
    /// Ids of the steps dropped because their condition was false.
    pub dropped: Vec<String>,
}

/// The `{{ name }}` placeholders of a template: byte range and name. Text between braces that
/// is not a name (`{{ a b }}`) is not a placeholder and stays as written.
fn placeholders(text: &str) -> Vec<(Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = text[i..].find("{{") {
        let start = i + p;
        let Some(q) = text[start + 2..].find("}}") else {
            break;
        };
        let name = text[start + 2..start + 2 + q].trim();
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            let end = start + 2 + q + 2;
            out.push((start..end, name));
            i = end;
        } else {
            i = start + 2;
        }
    }
    out
}

fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, name) in placeholders(text) {
        if let Some(v) = values.get(name) {
            out.push_str(&text[last..range.start]);
            out.push_str(v);
            last = range.end;
        }
    }
    out.push_str(&text[last..]);
    out
}

fn env_name(var: &str) -> String {
    format!("{ENV_PREFIX}{}", var.to_ascii_uppercase())
}

impl Playbook {
    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The title template.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The description template.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The variables, in file order.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The steps, each after the steps it depends on (otherwise in file order).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Where it was read from, as given to [`parse`](Self::parse).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Binds the variables of a run (`--var name=value`): every required variable must be
    /// given, no unknown one may be, and each value must parse to its type. Callers that pass
    /// event data (a custom steward) keep only the keys naming declared variables.
    ///
    /// Steps whose condition is false over the variables are dropped; see the module docs for
    /// how their dependents are rewired. Titles and descriptions get `{{var}}` substituted;
    /// shell steps get the variables as `SF_VAR_<NAME>` environment variables instead. An
    /// instance can have no steps at all when every condition is false.
    pub fn instantiate(&self, given: &BTreeMap<String, String>) -> Result<Instance, PlaybookError> {
        let err = |at: Option<String>, message: String| PlaybookError {
            file: self.source.clone(),
            at,
            message,
        };
        for name in given.keys() {
            if !self.vars.iter().any(|v| v.name == *name) {
                let known = if self.vars.is_empty() {
                    "it takes none".to_owned()
                } else {
                    let names: Vec<&str> = self.vars.iter().map(|v| v.name.as_str()).collect();
                    format!("it takes {}", names.join(", "))
                };
                return Err(err(
                    Some(format!("variable `{name}`")),
                    format!(
                        "the playbook `{}` has no such variable ({known})",
                        self.name
                    ),
                ));
            }
        }
        let missing: Vec<String> = self
            .vars
            .iter()
            .filter(|v| v.required() && !given.contains_key(&v.name))
            .map(|v| {
                if v.description.is_empty() {
                    format!("`{}` ({})", v.name, v.kind.name())
                } else {
                    format!("`{}` ({}: {})", v.name, v.kind.name(), v.description)
                }
            })
            .collect();
        if !missing.is_empty() {
            return Err(err(
                None,
                format!(
                    "missing required variable{} {}: give each as --var NAME=VALUE",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", ")
                ),
            ));
        }

        let mut values: BTreeMap<String, VarValue> = BTreeMap::new();
        for v in &self.vars {
            let value = match (given.get(&v.name), &v.default) {
                (Some(text), _) => v
                    .kind
                    .parse_value(text)
                    .map_err(|m| err(Some(format!("variable `{}`", v.name)), m))?,
                (None, Some(default)) => default.clone(),
                (None, None) => continue, // refused above
            };
            values.insert(v.name.clone(), value);
        }
        let data = Value::Object(
            values
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        );
        let text: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let env: BTreeMap<String, String> =
            text.iter().map(|(k, v)| (env_name(k), v.clone())).collect();

        // Steps are in dependency order, so a step's dependencies are resolved before it.
        let mut kept: BTreeSet<&str> = BTreeSet::new();
        let mut dropped: Vec<String> = Vec::new();
        // For each step: the kept steps it (transitively through dropped steps) waits on.
        let mut waits: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut steps = Vec::new();
        for s in &self.steps {
            let mut on: Vec<&str> = Vec::new();
            for d in &s.depends_on {
                let via: Vec<&str> = if kept.contains(d.as_str()) {
                    vec![d.as_str()]
                } else {
                    waits.get(d.as_str()).cloned().unwrap_or_default()
                };
                for x in via {
                    if !on.contains(&x) {
                        on.push(x);
                    }
                }
            }
            waits.insert(&s.id, on.clone());
            if s.condition.as_ref().is_some_and(|c| !c.eval(&data)) {
                dropped.push(s.id.clone());
                continue;
            }
            kept.insert(&s.id);
            let at = || Some(format!("step `{}`", s.id));
            let title = naming::validate_title(&substitute(&s.title, &text)).map_err(|e| {
                err(
                    at(),
                    format!("after substituting the variables: {e}; check the values given"),
                )
            })?;
            let description = substitute(&s.description, &text);
            naming::validate_text("description", &description)
                .map_err(|e| err(at(), format!("after substituting the variables: {e}")))?;
            let kind = match &s.action {
                StepAction::Task => StepKind::Task,
                StepAction::Shell {
                    command,
                    timeout_secs,
                } => StepKind::Shell {
                    command: command.clone(),
                    timeout_secs: *timeout_secs,
                    env: env.clone(),
                },
            };
            steps.push(StepInstance {
                id: s.id.clone(),
                title,
                description,
                depends_on: on.iter().map(|&x| x.to_owned()).collect(),
                priority: s.priority,
                skills: s.skills.clone(),
                kind,
            });
        }

        let title = naming::validate_title(&substitute(&self.title, &text)).map_err(|e| {
            err(
                None,
                format!("the playbook title, after substituting the variables: {e}; check the values given"),
            )
        })?;
        let description = substitute(&self.description, &text);
        Ok(Instance {
            playbook: self.name.clone(),
            title,
            description,
            vars: values,
            steps,
            dropped,
        })
    }
}

#[cfg(test)]
mod tests;
