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

use serde::Deserialize;
use serde_json::{Number, Value};

use crate::condition::Condition;
use crate::naming;

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

// ---------------------------------------------------------------------------------------------
// The file as written

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    name: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    vars: Vec<RawVar>,
    #[serde(default)]
    steps: Vec<RawStep>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawVarType {
    #[default]
    String,
    Number,
    Boolean,
    Enum,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVar {
    name: String,
    #[serde(rename = "type", default)]
    ty: RawVarType,
    #[serde(default)]
    description: String,
    required: Option<bool>,
    default: Option<toml::Value>,
    values: Option<Vec<String>>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    #[default]
    Task,
    Shell,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    depends_on: Vec<String>,
    condition: Option<String>,
    priority: Option<i64>,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default)]
    kind: RawKind,
    command: Option<String>,
    timeout: Option<String>,
}

// ---------------------------------------------------------------------------------------------

fn env_name(var: &str) -> String {
    format!("{ENV_PREFIX}{}", var.to_ascii_uppercase())
}

/// Variable names: lowercase letters, digits and `_`, starting with a letter.
fn valid_var_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Playbook names and step ids: lowercase letters, digits, `-` and `_`, starting with a letter
/// or digit.
fn valid_id(id: &str) -> bool {
    id.len() <= MAX_NAME
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
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

/// Parses a timeout like `10m`, `90s` or `1h 30m` into whole seconds.
fn parse_timeout(text: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "invalid timeout `{text}` ({e}): write a duration like \"90s\", \"10m\" or \"1h 30m\""
        )
    })?;
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if secs == 0 {
        return Err(format!(
            "timeout `{text}` is zero: give the command at least one second"
        ));
    }
    if secs > MAX_TIMEOUT_SECS {
        return Err(format!("timeout `{text}` is longer than the limit of 24h"));
    }
    Ok(secs)
}

/// Finds a cycle in the graph `deps` (node → the nodes it waits on): `[a, b, ..., a]`.
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    fn visit(
        n: usize,
        deps: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[n] = 1;
        stack.push(n);
        for &d in &deps[n] {
            if state[d] == 1 {
                let pos = stack.iter().position(|&x| x == d).unwrap_or(0);
                let mut cycle = stack[pos..].to_vec();
                cycle.push(d);
                return Some(cycle);
            }
            if state[d] == 0
                && let Some(c) = visit(d, deps, state, stack)
            {
                return Some(c);
            }
        }
        stack.pop();
        state[n] = 2;
        None
    }
    let mut state = vec![0_u8; deps.len()];
    let mut stack = Vec::new();
    (0..deps.len()).find_map(|n| {
        if state[n] == 0 {
            visit(n, deps, &mut state, &mut stack)
        } else {
            None
        }
    })
}

/// A dependency order of an acyclic graph: repeatedly the first node in file order whose
/// dependencies are all placed.
fn topo_order(deps: &[Vec<usize>]) -> Vec<usize> {
    let mut placed = vec![false; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    while order.len() < deps.len() {
        let Some(next) =
            (0..deps.len()).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]))
        else {
            break; // a cycle; refused before this is called
        };
        placed[next] = true;
        order.push(next);
    }
    order
}

fn toml_type(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

impl Playbook {
    /// Parses and validates a playbook. `source` names the file in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, PlaybookError> {
        let err = |at: Option<String>, message: String| PlaybookError {
            file: source.to_owned(),
            at,
            message,
        };
        let raw: RawPlaybook =
            toml::from_str(text).map_err(|e| err(None, e.to_string().trim_end().to_owned()))?;

        if !valid_id(&raw.name) {
            return Err(err(
                None,
                format!(
                    "invalid playbook name `{}`: use 1 to {MAX_NAME} lowercase letters, digits, `-` or `_`, starting with a letter or digit",
                    raw.name
                ),
            ));
        }
        let title = naming::validate_title(&raw.title)
            .map_err(|e| err(None, format!("playbook title: {e}")))?;
        naming::validate_text("description", &raw.description)
            .map_err(|e| err(None, e.to_string()))?;

        let vars = Self::parse_vars(raw.vars, source)?;
        let declared: BTreeSet<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        let declared_list = || {
            if declared.is_empty() {
                "it declares none".to_owned()
            } else {
                format!(
                    "declared: {}",
                    declared.iter().copied().collect::<Vec<_>>().join(", ")
                )
            }
        };
        let check_template = |at: &Option<String>, field: &str, text: &str| {
            for (_, name) in placeholders(text) {
                if !declared.contains(name) {
                    return Err(err(
                        at.clone(),
                        format!(
                            "the {field} mentions {{{{{name}}}}}, which is not a declared variable ({}); declare it under [[vars]] or fix the name",
                            declared_list()
                        ),
                    ));
                }
            }
            Ok(())
        };
        check_template(&None, "playbook title", &raw.title)?;
        check_template(&None, "playbook description", &raw.description)?;

        if raw.steps.is_empty() {
            return Err(err(
                None,
                "the playbook has no steps: add at least one [[steps]] table".to_owned(),
            ));
        }
        if raw.steps.len() > MAX_STEPS {
            return Err(err(
                None,
                format!(
                    "the playbook has {} steps; the limit is {MAX_STEPS}",
                    raw.steps.len()
                ),
            ));
        }

        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for (i, s) in raw.steps.iter().enumerate() {
            let at = Some(format!("step `{}`", s.id));
            if !valid_id(&s.id) {
                return Err(err(
                    at,
                    format!(
                        "invalid step id: use 1 to {MAX_NAME} lowercase letters, digits, `-` or `_`, starting with a letter or digit"
                    ),
                ));
            }
            if index.insert(s.id.clone(), i).is_some() {
                return Err(err(
                    at,
                    "two steps have this id: give each step its own id".to_owned(),
                ));
            }
        }
        let ids = || index.keys().cloned().collect::<Vec<_>>().join(", ");

        let mut steps = Vec::with_capacity(raw.steps.len());
        let mut deps: Vec<Vec<usize>> = Vec::with_capacity(raw.steps.len());
        for s in raw.steps {
            let at = Some(format!("step `{}`", s.id));
            let step_title = naming::validate_title(&s.title)
                .map_err(|e| err(at.clone(), format!("{e}: give the step a one-line title")))?;
            check_template(&at, "title", &s.title)?;
            naming::validate_text("description", &s.description)
                .map_err(|e| err(at.clone(), e.to_string()))?;
            check_template(&at, "description", &s.description)?;

            let mut depends_on = Vec::new();
            let mut dep_index = Vec::new();
            for d in &s.depends_on {
                if *d == s.id {
                    return Err(err(
                        at,
                        "depends on itself: remove its own id from depends_on".to_owned(),
                    ));
                }
                let Some(&j) = index.get(d) else {
                    return Err(err(
                        at,
                        format!(
                            "depends_on names `{d}`, which is not a step of this playbook (steps: {}); fix the id or add the step",
                            ids()
                        ),
                    ));
                };
                if !dep_index.contains(&j) {
                    dep_index.push(j);
                    depends_on.push(d.clone());
                }
            }
            deps.push(dep_index);

            let condition = match &s.condition {
                None => None,
                Some(text) => {
                    let c = Condition::parse(text).map_err(|e| err(at.clone(), e.to_string()))?;
                    for v in c.vars() {
                        if !declared.contains(v.as_str()) {
                            return Err(err(
                                at,
                                format!(
                                    "the condition mentions {{{{{v}}}}}, which is not a declared variable ({}); declare it under [[vars]] or fix the name",
                                    declared_list()
                                ),
                            ));
                        }
                    }
                    Some(c)
                }
            };

            let priority = match s.priority {
                None => DEFAULT_PRIORITY,
                Some(p @ 1..=5) => u8::try_from(p).unwrap_or(DEFAULT_PRIORITY),
                Some(p) => {
                    return Err(err(
                        at,
                        format!(
                            "priority {p} is out of range: use 1 (most urgent) to 5, or leave it out for {DEFAULT_PRIORITY}"
                        ),
                    ));
                }
            };
            let skills =
                naming::normalize_skills(&s.skills).map_err(|e| err(at.clone(), e.to_string()))?;

            let action = match s.kind {
                RawKind::Task => {
                    if s.command.is_some() {
                        return Err(err(
                            at,
                            "a task step has no `command`: add kind = \"shell\" to run it, or remove the command".to_owned(),
                        ));
                    }
                    if s.timeout.is_some() {
                        return Err(err(
                            at,
                            "a task step has no `timeout` (only shell steps do): remove it"
                                .to_owned(),
                        ));
                    }
                    StepAction::Task
                }
                RawKind::Shell => {
                    let command = s.command.unwrap_or_default();
                    if command.trim().is_empty() {
                        return Err(err(
                            at,
                            "a shell step needs a `command`: add command = \"...\", or make it a task step".to_owned(),
                        ));
                    }
                    if let Some((_, name)) = placeholders(&command).first() {
                        return Err(err(
                            at,
                            format!(
                                "commands are not templated, so {{{{{name}}}}} would stay as written: read the variable from the environment instead, as \"${}\"",
                                env_name(name)
                            ),
                        ));
                    }
                    let timeout_secs = match &s.timeout {
                        None => DEFAULT_TIMEOUT_SECS,
                        Some(t) => parse_timeout(t).map_err(|m| err(at.clone(), m))?,
                    };
                    StepAction::Shell {
                        command,
                        timeout_secs,
                    }
                }
            };

            steps.push(Step {
                id: s.id,
                title: step_title,
                description: s.description,
                depends_on,
                condition,
                priority,
                skills,
                action,
            });
        }

        if let Some(cycle) = find_cycle(&deps) {
            let path: Vec<&str> = cycle.iter().map(|&i| steps[i].id.as_str()).collect();
            return Err(err(
                None,
                format!(
                    "the steps depend on each other in a cycle: {} (each depends on the next); remove one of these depends_on entries",
                    path.join(" -> ")
                ),
            ));
        }
        let order = topo_order(&deps);
        let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
        let steps = order.iter().filter_map(|&i| slots[i].take()).collect();

        Ok(Self {
            name: raw.name,
            title,
            description: raw.description,
            vars,
            steps,
            source: source.to_owned(),
        })
    }

    fn parse_vars(raw: Vec<RawVar>, source: &str) -> Result<Vec<Var>, PlaybookError> {
        let mut vars: Vec<Var> = Vec::with_capacity(raw.len());
        for v in raw {
            let err = |message: String| PlaybookError {
                file: source.to_owned(),
                at: Some(format!("variable `{}`", v.name)),
                message,
            };
            if !valid_var_name(&v.name) {
                return Err(err(format!(
                    "invalid variable name: use 1 to {MAX_NAME} lowercase letters, digits or `_`, starting with a letter (it becomes the environment variable {ENV_PREFIX}NAME)"
                )));
            }
            if vars.iter().any(|w| w.name == v.name) {
                return Err(err(
                    "declared twice: remove one of the [[vars]] tables or rename it".to_owned(),
                ));
            }
            naming::validate_text("description", &v.description).map_err(|e| err(e.to_string()))?;
            let kind = match (v.ty, v.values) {
                (RawVarType::Enum, None) => {
                    return Err(err(
                        "an enum needs its `values`: add values = [\"a\", \"b\"]".to_owned(),
                    ));
                }
                (RawVarType::Enum, Some(values)) => {
                    if values.is_empty() {
                        return Err(err(
                            "an enum needs at least one value in `values`".to_owned()
                        ));
                    }
                    for (i, val) in values.iter().enumerate() {
                        if val.trim().is_empty() || val.chars().any(char::is_control) {
                            return Err(err(format!(
                                "enum value {val:?} is empty or has a control character: use plain words"
                            )));
                        }
                        if values[..i].contains(val) {
                            return Err(err(format!(
                                "enum value `{val}` is listed twice: remove one"
                            )));
                        }
                    }
                    VarKind::Enum(values)
                }
                (ty, Some(_)) => {
                    let kind = match ty {
                        RawVarType::Number => "number",
                        RawVarType::Boolean => "boolean",
                        _ => "string",
                    };
                    return Err(err(format!(
                        "`values` only applies to enum variables, and this is a {kind}: set type = \"enum\" or remove `values`"
                    )));
                }
                (RawVarType::String, None) => VarKind::String,
                (RawVarType::Number, None) => VarKind::Number,
                (RawVarType::Boolean, None) => VarKind::Boolean,
            };
            let default = match (v.required, v.default) {
                (Some(true), Some(_)) => {
                    return Err(err(
                        "has both `required = true` and a `default`: keep one of them".to_owned(),
                    ));
                }
                (_, None) if v.required != Some(true) => {
                    return Err(err(
                        "has neither `required = true` nor a `default`: add one of them".to_owned(),
                    ));
                }
                (_, None) => None,
                (_, Some(d)) => Some(Self::typed_default(&kind, &d).map_err(err)?),
            };
            vars.push(Var {
                name: v.name,
                kind,
                description: v.description,
                default,
            });
        }
        Ok(vars)
    }

    fn typed_default(kind: &VarKind, d: &toml::Value) -> Result<VarValue, String> {
        let found = toml_type(d);
        match (kind, d) {
            (VarKind::String, toml::Value::String(s)) => Ok(VarValue::String(s.clone())),
            (VarKind::Number, toml::Value::Integer(i)) => Ok(VarValue::Number((*i).into())),
            (VarKind::Number, toml::Value::Float(f)) => Number::from_f64(*f)
                .map(VarValue::Number)
                .ok_or_else(|| format!("the default {f} is not a finite number")),
            (VarKind::Boolean, toml::Value::Boolean(b)) => Ok(VarValue::Boolean(*b)),
            (VarKind::Enum(values), toml::Value::String(s)) => {
                if values.contains(s) {
                    Ok(VarValue::String(s.clone()))
                } else {
                    Err(format!(
                        "the default \"{s}\" is not one of the values ({}): use one of them or add it to `values`",
                        values.join(", ")
                    ))
                }
            }
            (VarKind::String | VarKind::Enum(_), _) => Err(format!(
                "the default is {found}, but the variable is a {}: write it in quotes",
                kind.name()
            )),
            (VarKind::Number, _) => Err(format!(
                "the default is {found}, but the variable is a number: write a number without quotes"
            )),
            (VarKind::Boolean, _) => Err(format!(
                "the default is {found}, but the variable is a boolean: write true or false without quotes"
            )),
        }
    }

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
