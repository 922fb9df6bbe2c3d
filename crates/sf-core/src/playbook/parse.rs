//! Reading a playbook: the file as written (serde's view of the TOML), and its validation
//! into a [`Playbook`]: names, variables and their defaults, steps, dependencies (no
//! cycles), conditions, shell commands and timeouts.

use crate::condition::Condition;
use crate::naming;
use serde::Deserialize;
use serde_json::Number;
use std::collections::{BTreeMap, BTreeSet};

use super::*;

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

/// Parses a timeout like `10m`, `90s` or `1h 30m` into whole seconds.
pub(super) fn parse_timeout(text: &str) -> Result<u64, String> {
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
}
