//! Where playbooks come from: the built-in ones (compiled in from `playbooks/`) and the
//! workspace's `.sf/playbooks/*.toml`, which win on a name clash. A workspace file that does
//! not load is kept as a broken entry under its name, so it cannot hide the others.

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

/// A playbook by name: valid, or a workspace file that failed to load. A broken file
/// disables only its own name, so one mistake does not take every playbook down.
#[derive(Debug, Clone)]
pub(crate) enum Loaded {
    /// A playbook that parsed and validated.
    Valid(Playbook),
    /// A workspace file that did not.
    Broken {
        /// The name it declares if that much can be read, else its file stem.
        name: String,
        /// The file.
        source: String,
        /// Why it was refused.
        error: String,
    },
}

impl Loaded {
    /// The playbook, or the file's error.
    fn into_playbook(self) -> Result<Playbook, ProtoError> {
        match self {
            Self::Valid(pb) => Ok(pb),
            Self::Broken { error, source, .. } => Err(refuse(error).with_hint(format!(
                "fix the file or move it out of .sf/playbooks/; check it with \
                 `sfctl playbook validate {source}`"
            ))),
        }
    }
}

/// What can be sent as a [`PlaybookInfo`].
pub(crate) trait Describe {
    /// The wire form.
    fn describe(&self) -> PlaybookInfo;
}

impl Describe for Playbook {
    fn describe(&self) -> PlaybookInfo {
        valid_info(self)
    }
}

impl Describe for Loaded {
    fn describe(&self) -> PlaybookInfo {
        match self {
            Self::Valid(pb) => valid_info(pb),
            Self::Broken {
                name,
                source,
                error,
            } => PlaybookInfo {
                name: name.clone(),
                title: String::new(),
                description: String::new(),
                source: source.clone(),
                vars: Vec::new(),
                steps: Vec::new(),
                error: Some(error.clone()),
            },
        }
    }
}

/// A broken workspace file, named by what it declares (so a broken override of a built-in
/// hides the built-in rather than silently running it) or else by its file stem.
fn broken(path: &std::path::Path, text: Option<&str>, error: String) -> Loaded {
    let declared = text
        .and_then(|t| toml::from_str::<toml::Table>(t).ok())
        .and_then(|t| t.get("name")?.as_str().map(str::to_owned))
        .filter(|n| !n.is_empty());
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Loaded::Broken {
        name: declared.unwrap_or(stem),
        source: path.display().to_string(),
        error,
    }
}

/// Every playbook, by name; a broken workspace file is an entry of its own (see [`Loaded`]).
pub(crate) fn load_all(config: &Config) -> Result<BTreeMap<String, Loaded>, ProtoError> {
    let mut out = BTreeMap::new();
    for (source, text) in BUILT_IN {
        let pb = Playbook::parse(text, source).map_err(refuse)?;
        out.insert(pb.name().to_owned(), Loaded::Valid(pb));
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
            let loaded = match std::fs::read_to_string(&path) {
                Err(e) => broken(
                    &path,
                    None,
                    format!("failed to read {}: {e}", path.display()),
                ),
                Ok(text) => match Playbook::parse(&text, &path.display().to_string()) {
                    Ok(pb) => Loaded::Valid(pb),
                    Err(e) => broken(&path, Some(&text), e.to_string()),
                },
            };
            let name = match &loaded {
                Loaded::Valid(pb) => pb.name().to_owned(),
                Loaded::Broken { name, .. } => name.clone(),
            };
            out.insert(name, loaded);
        }
    }
    Ok(out)
}

/// One playbook by name; a broken file of that name is its error.
pub(crate) fn find(config: &Config, name: &str) -> Result<Playbook, ProtoError> {
    let mut all = load_all(config)?;
    match all.remove(name) {
        Some(loaded) => loaded.into_playbook(),
        None => {
            let names: Vec<String> = all
                .iter()
                .filter(|(_, l)| matches!(l, Loaded::Valid(_)))
                .map(|(n, _)| n.clone())
                .collect();
            Err(
                ProtoError::new(ErrorKind::NotFound, format!("no playbook named `{name}`"))
                    .with_hint(format!("playbooks: {}", names.join(", "))),
            )
        }
    }
}

/// The wire form of a playbook or of a broken file.
pub(crate) fn info(pb: &impl Describe) -> PlaybookInfo {
    pb.describe()
}

fn valid_info(pb: &Playbook) -> PlaybookInfo {
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
        error: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace whose `.sf/playbooks/` holds `files`.
    fn workspace(files: &[(&str, &str)]) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".sf/playbooks")).unwrap();
        std::fs::write(dir.path().join(".sf/config.toml"), "").unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(".sf/playbooks").join(name), text).unwrap();
        }
        let config = Config::load(dir.path()).unwrap();
        (dir, config)
    }

    const MINE: &str = "name = \"mine\"\ntitle = \"Mine\"\n[[steps]]\nid = \"a\"\ntitle = \"A\"\n";
    const BAD_DEPENDENCY: &str = "name = \"bad\"\ntitle = \"Bad\"\n[[steps]]\nid = \"a\"\ndepends_on = [\"zzz\"]\ntitle = \"A\"\n";

    #[test]
    fn a_broken_file_disables_only_its_own_name() {
        let (_dir, config) = workspace(&[
            ("a-bad.toml", BAD_DEPENDENCY),
            ("b-not-toml.toml", "this is [ not toml"),
            ("mine.toml", MINE),
        ]);
        let all = load_all(&config).unwrap();
        let infos: Vec<PlaybookInfo> = all.values().map(info).collect();
        let broken: Vec<(&str, bool)> = infos
            .iter()
            .map(|p| (p.name.as_str(), p.error.is_some()))
            .collect();
        assert_eq!(
            broken,
            [
                ("b-not-toml", true),
                ("bad", true),
                ("bugfix", false),
                ("feature", false),
                ("mine", false),
                ("release", false),
            ]
        );
        let bad = &infos[1];
        assert!(bad.source.ends_with("a-bad.toml"), "{bad:?}");
        assert!(bad.error.as_deref().unwrap().contains("zzz"), "{bad:?}");

        assert_eq!(find(&config, "bugfix").unwrap().name(), "bugfix");
        assert_eq!(find(&config, "mine").unwrap().name(), "mine");
        let e = find(&config, "bad").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(e.message.contains("a-bad.toml"), "{e:?}");
        assert!(e.message.contains("zzz"), "{e:?}");
        assert!(
            e.hint
                .as_deref()
                .is_some_and(|h| h.contains("sfctl playbook validate")),
            "{e:?}"
        );
        let e = find(&config, "nothing").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(!e.hint.unwrap().contains("bad"));
    }

    #[test]
    fn a_broken_override_of_a_built_in_is_its_error_not_the_built_in() {
        let (_dir, config) = workspace(&[(
            "my-bugfix.toml",
            "name = \"bugfix\"\ntitle = \"Mine\"\nsteps = 3\n",
        )]);
        let e = find(&config, "bugfix").unwrap_err();
        assert!(e.message.contains("my-bugfix.toml"), "{e:?}");
        assert_eq!(find(&config, "feature").unwrap().name(), "feature");
    }
}
