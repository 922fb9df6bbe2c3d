//! Skills: files of instructions put into the prompts of the agents that have them
//! (`sfctl skill list|show|pin`).
//!
//! A skill is named like an agent's `--skills` (lowercase; letters, digits and `-_.+#`). Its
//! text is the Markdown file `.sf/skills/NAME.md` of the workspace, else a built-in one:
//! `docs`, `git-hygiene`, `review`, `security-review` and `tdd`. A file replaces the
//! built-in of its name. A skill with neither is only a label that tasks are matched on.
//!
//! Each skill's text has a hash (`sha256:…`); a human may pin it, and an agent whose
//! pinned skill changed since is held until someone looks ([`check_pins`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::naming::{NameError, normalize_skills, validate_text};
use crate::templates::{files, stem};

/// One skill's instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    /// Its name.
    pub name: String,
    /// The file it was read from, or `built-in`.
    pub source: String,
    /// Its instructions, as written.
    pub text: String,
    /// `sha256:` and the hex digest of its text.
    pub hash: String,
}

impl Skill {
    fn new(name: &str, source: String, text: String) -> Self {
        Self {
            name: name.to_owned(),
            hash: crate::digest::sha256(text.as_bytes()),
            source,
            text,
        }
    }
}

/// A skill that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkillError {
    /// Not a skill name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A file or directory could not be read.
    #[error("cannot read {file}: {message}")]
    Read {
        /// The file or directory.
        file: String,
        /// Why.
        message: String,
    },
    /// A file is not a usable skill.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong, and what to do.
        message: String,
    },
}

/// A pinned skill whose text changed since.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("skill `{name}` changed since it was pinned (pinned {pinned}, now {found})")]
pub struct Mismatch {
    /// The skill.
    pub name: String,
    /// The hash a human pinned.
    pub pinned: String,
    /// The hash of its text now.
    pub found: String,
}

/// The built-in skills, sorted by name.
const BUILTIN: [(&str, &str); 5] = [
    ("docs", include_str!("skills/docs.md")),
    ("git-hygiene", include_str!("skills/git-hygiene.md")),
    ("review", include_str!("skills/review.md")),
    ("security-review", include_str!("skills/security-review.md")),
    ("tdd", include_str!("skills/tdd.md")),
];

fn builtin(name: &str) -> Option<Skill> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| Skill::new(n, "built-in".to_owned(), (*text).to_owned()))
}

/// Reads the skill file `path` of the skill `name`.
fn read(name: &str, path: &Path) -> Result<Skill, SkillError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SkillError::Read {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let invalid = |message: String| SkillError::Invalid {
        file: file.clone(),
        message,
    };
    validate_text("skill", &text).map_err(|e| invalid(e.to_string()))?;
    if text.trim().is_empty() {
        return Err(invalid(
            "the file is empty: write the skill's instructions, or delete the file (a skill \
             without a file is a label tasks are matched on)"
                .to_owned(),
        ));
    }
    Ok(Skill::new(name, file, text))
}

/// The skill `name` (normalized first): the file `dir/NAME.md` (`dir` is `.sf/skills`),
/// else the built-in; `None` when neither exists.
pub fn load(dir: &Path, name: &str) -> Result<Option<Skill>, SkillError> {
    let name = normalize_skills([name])?
        .pop()
        .ok_or_else(|| NameError::Skill(name.to_owned()))?;
    let path = dir.join(format!("{name}.md"));
    match read(&name, &path) {
        Err(SkillError::Read { .. }) if !path.exists() => Ok(builtin(&name)),
        r => r.map(Some),
    }
}

/// Every skill with instructions: the files of `dir` (`.sf/skills`) and the built-ins they
/// do not replace, sorted by name.
pub fn list(dir: &Path) -> Result<Vec<Skill>, SkillError> {
    let paths = files(dir, "md").map_err(|e| SkillError::Read {
        file: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for path in paths {
        let name = stem(&path).unwrap_or_default();
        if normalize_skills([name]).ok().as_deref() != Some(&[name.to_owned()]) {
            return Err(SkillError::Invalid {
                file: path.display().to_string(),
                message: format!(
                    "`{name}` is not a skill name: use lowercase letters, digits and `-_.+#`, \
                     at most 40 characters, and rename the file"
                ),
            });
        }
        out.push(read(name, &path)?);
    }
    for (name, _) in BUILTIN {
        if !out.iter().any(|s| s.name == name) {
            out.extend(builtin(name));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Checks each skill that has a pin in `pins` (by name) against its hash now; skills without
/// a pin pass.
pub fn check_pins(skills: &[Skill], pins: &BTreeMap<String, String>) -> Result<(), Mismatch> {
    for s in skills {
        if let Some(pinned) = pins.get(&s.name)
            && *pinned != s.hash
        {
            return Err(Mismatch {
                name: s.name.clone(),
                pinned: pinned.clone(),
                found: s.hash.clone(),
            });
        }
    }
    Ok(())
}

/// The `## Skills` section of a prompt: each skill's name and instructions; empty when there
/// are none.
pub fn prompt_section(skills: &[Skill]) -> String {
    if skills.is_empty() {
        return String::new();
    }
    let mut out = String::from("## Skills\n\nFollow these instructions where they apply.\n");
    for s in skills {
        out.push_str(&format!("\n### {}\n\n{}\n", s.name, s.text.trim()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sf-skills-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn builtins_are_short_real_instructions() {
        for (name, text) in BUILTIN {
            let lines = text.lines().count();
            assert!((5..=15).contains(&lines), "{name}: {lines} lines");
            assert_eq!(normalize_skills([name]).unwrap(), [name]);
        }
        assert!(BUILTIN.windows(2).all(|w| w[0].0 < w[1].0));
        let git = builtin("git-hygiene").unwrap();
        assert!(git.text.contains("sfctl task complete") && git.text.contains("Never push"));
    }

    #[test]
    fn a_file_beats_the_builtin_and_an_unknown_skill_is_a_label() {
        let dir = temp("load");
        let review = load(&dir, " Review ").unwrap().unwrap();
        assert_eq!(
            (review.source.as_str(), review.name.as_str()),
            ("built-in", "review")
        );
        assert_eq!(review.hash, crate::digest::sha256(review.text.as_bytes()));
        std::fs::write(dir.join("review.md"), "Be brief.\n").unwrap();
        let review = load(&dir, "review").unwrap().unwrap();
        assert_eq!(review.text, "Be brief.\n");
        assert!(review.source.ends_with("review.md"));
        assert_eq!(load(&dir, "rust").unwrap(), None);
        assert!(matches!(load(&dir, "a b"), Err(SkillError::Name(_))));
        assert!(load(&dir, " ").is_err());
        std::fs::write(dir.join("empty.md"), " \n").unwrap();
        let e = load(&dir, "empty").unwrap_err().to_string();
        assert!(e.contains("empty.md: the file is empty"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(load(&dir, "tdd").unwrap().is_some(), "a missing directory");
    }

    #[test]
    fn list_merges_files_and_builtins() {
        let dir = temp("list");
        std::fs::write(dir.join("tdd.md"), "Tests first.\n").unwrap();
        std::fs::write(dir.join("rust.md"), "Use clippy.\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a skill").unwrap();
        let all = list(&dir).unwrap();
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "docs",
                "git-hygiene",
                "review",
                "rust",
                "security-review",
                "tdd"
            ]
        );
        assert_eq!(all[5].text, "Tests first.\n");
        std::fs::write(dir.join("Rust.md"), "x").unwrap();
        let e = list(&dir).unwrap_err().to_string();
        assert!(e.contains("Rust.md: `Rust` is not a skill name"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(list(&dir).unwrap().len(), BUILTIN.len());
    }

    #[test]
    fn pins_catch_changed_skills_only() {
        let skills = [builtin("tdd").unwrap(), builtin("docs").unwrap()];
        let mut pins = BTreeMap::from([("tdd".to_owned(), skills[0].hash.clone())]);
        assert_eq!(check_pins(&skills, &pins), Ok(()));
        pins.insert("docs".to_owned(), "sha256:00".to_owned());
        let e = check_pins(&skills, &pins).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "skill `docs` changed since it was pinned (pinned sha256:00, now {})",
                skills[1].hash
            )
        );
    }

    #[test]
    fn the_prompt_section_names_each_skill() {
        assert_eq!(prompt_section(&[]), "");
        let s = prompt_section(&[builtin("tdd").unwrap(), builtin("review").unwrap()]);
        assert!(s.starts_with("## Skills\n"), "{s}");
        assert!(
            s.contains("\n### tdd\n\nWork test-first.") && s.contains("\n### review\n"),
            "{s}"
        );
    }
}
