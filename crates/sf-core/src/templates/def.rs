//! The format shared by templates (`.sf/templates/NAME.toml`) and agent definitions
//! (`.sf/agents/NAME.toml`, `AGENTS.md`): parsed with the places of its values, then
//! applied to the template it extends. The format is described in [`super`].

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use sf_proto::{
    Adapter, AgentSpec, Capability, Charter, Effort, Focus, JobRole, Mode, Role, SampleTask,
    TemplateInfo,
};
use toml::Spanned;

use crate::naming::normalize_skills;

type Text = Spanned<String>;

/// One definition as written: a template file, or (with `name`) an agent definition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDef {
    pub(crate) name: Option<Text>,
    pub(crate) description: Option<String>,
    pub(crate) extends: Option<Text>,
    role: Option<Text>,
    mode: Option<Text>,
    focus: Option<Text>,
    job: Option<Text>,
    adapter: Option<Text>,
    effort: Option<Text>,
    command: Option<String>,
    model: Option<String>,
    persona: Option<String>,
    title: Option<String>,
    playbook: Option<String>,
    skills: Option<Vec<Text>>,
    capabilities: Option<Vec<Text>>,
    triggers: Option<Vec<Text>>,
    on: Option<Vec<Text>>,
    secrets: Option<Vec<String>>,
    max_tasks: Option<Spanned<u32>>,
    max_runtime: Option<Text>,
    charter: Option<RawCharter>,
    sample_task: Option<RawSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCharter {
    purpose: Option<String>,
    inputs: Option<String>,
    outputs: Option<String>,
    approval_boundaries: Option<String>,
    escalation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSample {
    title: Option<String>,
    description: Option<String>,
}

/// A definition's text, to point at places in it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Src<'a> {
    /// The TOML.
    pub(crate) text: &'a str,
    /// The line of the file its first line is.
    pub(crate) first_line: usize,
}

impl Src<'_> {
    /// `line L, column C: MESSAGE` for a problem at `span`.
    pub(crate) fn at(&self, span: &Range<usize>, message: impl std::fmt::Display) -> String {
        let before = self.text.get(..span.start).unwrap_or(self.text);
        let line = self.first_line + before.matches('\n').count();
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[start..].chars().count() + 1;
        format!("line {line}, column {column}: {message}")
    }

    /// Parses the TOML.
    pub(crate) fn read(&self) -> Result<RawDef, String> {
        toml::from_str(self.text).map_err(|e| {
            let message = e.message().trim_end();
            e.span()
                .map_or_else(|| message.to_owned(), |s| self.at(&s, message))
        })
    }

    fn pick<T: FromStr<Err = String>>(
        &self,
        value: &Option<Text>,
        field: &str,
    ) -> Result<Option<T>, String> {
        value
            .as_ref()
            .map(|v| {
                v.get_ref()
                    .parse()
                    .map_err(|e| self.at(&v.span(), format!("`{field}`: {e}")))
            })
            .transpose()
    }
}

/// What a definition gives, on top of its base.
pub(crate) struct Resolved {
    pub(crate) spec: AgentSpec,
    pub(crate) charter: Charter,
    pub(crate) sample_task: SampleTask,
}

fn set_text(value: Option<String>, field: &mut Option<String>) {
    if let Some(v) = value {
        *field = (!v.trim().is_empty()).then_some(v);
    }
}

fn set(value: Option<String>, field: &mut String) {
    if let Some(v) = value {
        *field = v;
    }
}

impl RawDef {
    /// Applies it to the template it extends (one of `bases`), or to the defaults.
    pub(crate) fn resolve(self, bases: &[TemplateInfo], src: Src<'_>) -> Result<Resolved, String> {
        let base = match &self.extends {
            None => None,
            Some(e) => {
                let found = bases.iter().find(|t| t.name == *e.get_ref());
                let known = || bases.iter().map(|t| t.name.as_str()).collect::<Vec<_>>();
                let no = || {
                    format!(
                        "`extends`: no template `{}` (known: {})",
                        e.get_ref(),
                        known().join(", ")
                    )
                };
                Some(found.ok_or_else(|| src.at(&e.span(), no()))?)
            }
        };
        let mut spec = base.map_or_else(
            || AgentSpec {
                adapter: Adapter::Claude,
                ..AgentSpec::default()
            },
            |b| b.spec.clone(),
        );
        let mut charter = base.map(|b| b.charter.clone()).unwrap_or_default();
        let mut sample_task = base.map(|b| b.sample_task.clone()).unwrap_or_default();

        if let Some(role) = src.pick::<Role>(&self.role, "role")? {
            spec.role = role;
        }
        if spec.role != Role::Steward {
            // what it inherits from a steward; given values are applied (and checked) below
            spec.focus = None;
            spec.playbook = None;
            spec.triggers.clear();
            spec.on.clear();
        }
        if let Some(focus) = src.pick::<Focus>(&self.focus, "focus")? {
            if spec.role != Role::Steward {
                let span = self.focus.as_ref().map(Spanned::span).unwrap_or_default();
                return Err(src.at(
                    &span,
                    format!(
                        "`focus` is for stewards and the role is `{}`; set role = \"steward\" or remove `focus`",
                        spec.role
                    ),
                ));
            }
            spec.focus = Some(focus);
        }
        if spec.role == Role::Steward && spec.focus.is_none() {
            let span = self.role.as_ref().map(Spanned::span).unwrap_or_default();
            return Err(src.at(
                &span,
                "a steward needs a `focus` (merge, docs, recovery or custom)",
            ));
        }
        if let Some(mode) = src.pick::<Mode>(&self.mode, "mode")? {
            spec.mode = mode;
        }
        if let Some(job) = src.pick::<JobRole>(&self.job, "job")? {
            spec.job = job;
        }
        if let Some(adapter) = src.pick::<Adapter>(&self.adapter, "adapter")? {
            spec.adapter = adapter;
        }
        if let Some(effort) = src.pick::<Effort>(&self.effort, "effort")? {
            spec.effort = Some(effort);
        }
        set_text(self.command, &mut spec.command);
        set_text(self.model, &mut spec.model);
        set_text(self.persona, &mut spec.persona);
        set_text(self.title, &mut spec.title);
        set_text(self.playbook, &mut spec.playbook);
        if spec.playbook.is_some() != (spec.focus == Some(Focus::Custom)) {
            return Err(
                "`playbook` goes with focus = \"custom\", and a custom steward needs one".into(),
            );
        }
        if let Some(skills) = self.skills {
            for s in &skills {
                normalize_skills([s.get_ref()])
                    .map_err(|e| src.at(&s.span(), format!("`skills`: {e}")))?;
            }
            spec.skills = normalize_skills(skills.iter().map(Spanned::get_ref))
                .map_err(|e| format!("`skills`: {e}"))?;
        }
        if let Some(caps) = self.capabilities {
            spec.capabilities = caps
                .into_iter()
                .map(|c| {
                    c.get_ref()
                        .parse::<Capability>()
                        .map_err(|e| src.at(&c.span(), format!("`capabilities`: {e}")))
                })
                .collect::<Result<_, _>>()?;
            spec.capabilities.sort();
            spec.capabilities.dedup();
        }
        if let Some(triggers) = self.triggers {
            for t in &triggers {
                crate::cron::CronSchedule::parse(t.get_ref()).map_err(|e| {
                    src.at(
                        &t.span(),
                        format!(
                            "`triggers`: invalid cron expression `{}`: {}",
                            e.expr, e.reason
                        ),
                    )
                })?;
            }
            spec.triggers = triggers.into_iter().map(Spanned::into_inner).collect();
        }
        if let Some(on) = self.on {
            for t in &on {
                crate::condition::parse_trigger(t.get_ref()).map_err(|e| {
                    let what = format!(
                        "`on`: invalid event trigger `{}` at column {}: {}",
                        t.get_ref(),
                        e.column(),
                        e.message()
                    );
                    src.at(&t.span(), what)
                })?;
            }
            spec.on = on.into_iter().map(Spanned::into_inner).collect();
        }
        if let Some(mut secrets) = self.secrets {
            secrets.sort();
            secrets.dedup();
            spec.secrets = secrets;
        }
        if let Some(n) = self.max_tasks {
            if !(1..=64).contains(n.get_ref()) {
                return Err(src.at(
                    &n.span(),
                    format!("`max_tasks` = {} is out of range; use 1 to 64", n.get_ref()),
                ));
            }
            spec.max_tasks = n.into_inner();
        }
        if let Some(t) = self.max_runtime {
            let secs = humantime::parse_duration(t.get_ref())
                .map_err(|e| e.to_string())
                .and_then(|d| match d.as_secs() {
                    0 => Err("it must be at least one second".to_owned()),
                    s => Ok(s),
                })
                .map_err(|e| {
                    src.at(
                        &t.span(),
                        format!(
                            "`max_runtime` = \"{}\": {e} (write it like \"30m\" or \"2h\")",
                            t.get_ref()
                        ),
                    )
                })?;
            spec.max_runtime_secs = Some(secs);
        }
        if let Some(c) = self.charter {
            set(c.purpose, &mut charter.purpose);
            set(c.inputs, &mut charter.inputs);
            set(c.outputs, &mut charter.outputs);
            set(c.approval_boundaries, &mut charter.approval_boundaries);
            set(c.escalation, &mut charter.escalation);
        }
        if let Some(s) = self.sample_task {
            set(s.title, &mut sample_task.title);
            set(s.description, &mut sample_task.description);
        }
        Ok(Resolved {
            spec,
            charter,
            sample_task,
        })
    }
}

/// The files of `dir` whose names end in `.EXT`, sorted; none when `dir` does not exist.
pub(crate) fn files(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r?,
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == ext) && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The stem of `path`, when it is UTF-8.
pub(crate) fn stem(path: &Path) -> Option<&str> {
    path.file_stem().and_then(|s| s.to_str())
}
