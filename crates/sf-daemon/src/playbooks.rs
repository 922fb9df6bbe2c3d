//! Where playbooks come from: the built-in ones (compiled in from `playbooks/`) and the
//! workspace's `.sf/playbooks/*.toml`, which win on a name clash.

use std::collections::BTreeMap;

use sf_core::playbook::{Playbook, StepAction, VarKind};
use sf_proto::{ErrorKind, PlaybookInfo, PlaybookStep, PlaybookVar, ProtoError};

use crate::Config;

const BUILT_IN: &[(&str, &str)] = &[
    (
        "playbooks/bugfix.toml",
        include_str!("../../../playbooks/bugfix.toml"),
    ),
    (
        "playbooks/feature.toml",
        include_str!("../../../playbooks/feature.toml"),
    ),
    (
        "playbooks/release.toml",
        include_str!("../../../playbooks/release.toml"),
    ),
];

fn refuse(e: impl std::fmt::Display) -> ProtoError {
    ProtoError::new(ErrorKind::InvalidInput, e.to_string())
}

/// Every playbook, by name; a broken workspace playbook is an error naming its file.
pub(crate) fn load_all(config: &Config) -> Result<BTreeMap<String, Playbook>, ProtoError> {
    let mut out = BTreeMap::new();
    for (source, text) in BUILT_IN {
        let pb = Playbook::parse(text, source).map_err(refuse)?;
        out.insert(pb.name().to_owned(), pb);
    }
    let dir = config.paths.playbooks();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| refuse(format!("failed to read {}: {e}", path.display())))?;
            let pb = Playbook::parse(&text, &path.display().to_string()).map_err(|e| {
                refuse(e).with_hint("fix the file or move it out of .sf/playbooks/; check it with `sfctl playbook validate FILE`")
            })?;
            out.insert(pb.name().to_owned(), pb);
        }
    }
    Ok(out)
}

/// One playbook by name.
pub(crate) fn find(config: &Config, name: &str) -> Result<Playbook, ProtoError> {
    let mut all = load_all(config)?;
    let names: Vec<String> = all.keys().cloned().collect();
    all.remove(name).ok_or_else(|| {
        ProtoError::new(ErrorKind::NotFound, format!("no playbook named `{name}`"))
            .with_hint(format!("playbooks: {}", names.join(", ")))
    })
}

/// The wire form.
pub(crate) fn info(pb: &Playbook) -> PlaybookInfo {
    PlaybookInfo {
        name: pb.name().to_owned(),
        title: pb.title().to_owned(),
        description: pb.description().to_owned(),
        source: if pb.source().starts_with("playbooks/") {
            "built-in".into()
        } else {
            pb.source().to_owned()
        },
        vars: pb
            .vars()
            .iter()
            .map(|v| PlaybookVar {
                name: v.name.clone(),
                kind: match &v.kind {
                    VarKind::Enum(values) => format!("enum: {}", values.join("|")),
                    k => k.name().to_owned(),
                },
                required: v.required(),
                default: v.default.as_ref().map(ToString::to_string),
                description: v.description.clone(),
            })
            .collect(),
        steps: pb
            .steps()
            .iter()
            .map(|s| PlaybookStep {
                id: s.id.clone(),
                title: s.title.clone(),
                kind: match s.action {
                    StepAction::Task => "task".into(),
                    StepAction::Shell { .. } => "shell".into(),
                },
                depends_on: s.depends_on.clone(),
                condition: s.condition.as_ref().map(|c| c.as_str().to_owned()),
                priority: s.priority,
            })
            .collect(),
    }
}

/// Variables for a custom steward's playbook from its event data: the declared ones only,
/// as text.
pub(crate) fn vars_from_data(pb: &Playbook, data: &serde_json::Value) -> BTreeMap<String, String> {
    pb.vars()
        .iter()
        .filter_map(|v| {
            let value = data.get(&v.name)?;
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => return None,
                other => other.to_string(),
            };
            Some((v.name.clone(), text))
        })
        .collect()
}
