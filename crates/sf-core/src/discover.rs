//! Agent definitions kept in the repository, found by `sfctl agent discover` to be
//! imported as drafts.
//!
//! Two places hold them, in the format of templates (`sf_core::templates`: every key
//! optional, unknown keys are errors, `extends` names a built-in template or one of
//! `.sf/templates/`; `description` and `[sample_task]` are accepted and unused).
//!
//! **`.sf/agents/NAME.toml`**: one agent per file, named by `name` or else by the file:
//!
//! ```toml
//! name = "backend"           # optional: the file's name otherwise
//! extends = "coder"
//! adapter = "codex"
//! skills = ["rust", "tdd"]
//! persona = "You own server/ and write Rust, tests first."
//!
//! [charter]
//! purpose = "Implement server tasks as small, tested changes."
//! escalation = "Ask the director before changing the public API."
//! ```
//!
//! **`AGENTS.md`** at the root of the repository: each section whose heading (any level)
//! is `Agent: NAME` defines the agent NAME (lowercased). The section runs to the next
//! heading of the same or a higher level. Its first fenced code block marked `toml` gives
//! the fields; its prose (paragraphs, lists and quotes, as written; not headings or code)
//! becomes the persona unless the TOML sets `persona`. A section without TOML is an
//! ephemeral `general` worker on the `claude` adapter.
//!
//! ````markdown
//! ## Agent: backend
//!
//! You own `server/` and write Rust, tests first. Never change the public API without a
//! task that asks for it.
//!
//! ```toml
//! extends = "coder"
//! skills = ["rust", "tdd"]
//!
//! [charter]
//! purpose = "Implement server tasks as small, tested changes."
//! ```
//!
//! ## Agent: nightly-docs
//!
//! ```toml
//! extends = "docs-steward"
//! triggers = ["0 4 * * *"]
//! ```
//! ````
//!
//! A name defined twice, in either place, is an error naming both.

use std::collections::BTreeMap;
use std::path::Path;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Parser, Tag, TagEnd};
use sf_proto::{Discovered, TemplateInfo};

use crate::naming::validate_agent_name;
use crate::templates::{self, RawDef, Src, TemplateError};

/// Definitions that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    /// A file or directory could not be read.
    #[error("cannot read {file}: {message}")]
    Read {
        /// The file or directory.
        file: String,
        /// Why.
        message: String,
    },
    /// A definition is invalid.
    #[error("{place}: {message}")]
    Invalid {
        /// The file, and the section of `AGENTS.md`.
        place: String,
        /// What is wrong, with line and column when known.
        message: String,
    },
    /// Two definitions of one name.
    #[error("agent `{name}` is defined twice, in {first} and in {second}; keep one")]
    Duplicate {
        /// The name.
        name: String,
        /// Where it is defined first.
        first: String,
        /// Where it is defined again.
        second: String,
    },
    /// The templates that definitions extend could not be read.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// One `Agent: NAME` section of `AGENTS.md`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Section {
    heading: String,
    /// The agent it defines, lowercased.
    name: String,
    level: Option<HeadingLevel>,
    /// Its first `toml` block, and the line of the file the block's first line is.
    toml: Option<(String, usize)>,
    prose: Vec<String>,
}

/// The `Agent:` sections of a Markdown text, in order.
fn sections(text: &str) -> Vec<Section> {
    let line_of = |at: usize| text.get(..at).unwrap_or(text).matches('\n').count() + 1;
    let (mut out, mut open, mut depth) = (Vec::<Section>::new(), false, 0usize);
    let (mut heading, mut code): (Option<String>, Option<(String, usize)>) = (None, None);
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(tag) => {
                let current = out.last_mut().filter(|_| open && depth == 0);
                match (tag, current) {
                    (Tag::Heading { .. }, _) if depth == 0 => heading = Some(String::new()),
                    (Tag::CodeBlock(CodeBlockKind::Fenced(info)), Some(s))
                        if s.toml.is_none()
                            && info
                                .split_whitespace()
                                .next()
                                .is_some_and(|i| i.eq_ignore_ascii_case("toml")) =>
                    {
                        code = Some((String::new(), line_of(range.start) + 1));
                    }
                    (Tag::Paragraph | Tag::List(_) | Tag::BlockQuote(_), Some(s)) => {
                        s.prose.push(text[range].trim().to_owned());
                    }
                    _ => {}
                }
                depth += 1;
            }
            Event::End(end) => {
                depth = depth.saturating_sub(1);
                match end {
                    TagEnd::Heading(level) if depth == 0 => {
                        let h = heading.take().unwrap_or_default();
                        if out.last().and_then(|s| s.level).is_some_and(|l| level <= l) {
                            open = false;
                        }
                        if h.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("agent:")) {
                            out.push(Section {
                                name: h[6..].trim().to_lowercase(),
                                heading: h.trim().to_owned(),
                                level: Some(level),
                                ..Section::default()
                            });
                            open = true;
                        }
                    }
                    TagEnd::CodeBlock if depth == 0 => {
                        if let (Some(c), Some(s)) = (code.take(), out.last_mut()) {
                            s.toml = Some(c);
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = &mut heading {
                    h.push_str(&t);
                } else if let Some((c, _)) = &mut code {
                    c.push_str(&t);
                }
            }
            _ => {}
        }
    }
    out
}

/// A heading's anchor, as GitHub makes it (`Agent: backend` → `agent-backend`).
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The templates definitions extend, read once when one does.
struct Bases<'a> {
    dir: &'a Path,
    loaded: Option<Vec<TemplateInfo>>,
}

impl Bases<'_> {
    fn for_def(&mut self, raw: &RawDef) -> Result<&[TemplateInfo], DiscoverError> {
        if raw.extends.is_some() && self.loaded.is_none() {
            self.loaded = Some(templates::load(self.dir)?);
        }
        Ok(self.loaded.as_deref().unwrap_or_default())
    }
}

/// The name a definition's place gives it.
#[derive(Clone, Copy)]
enum Named<'a> {
    /// Its `AGENTS.md` heading's: a `name` key must agree.
    Heading(&'a str),
    /// Its file's: a `name` key replaces it.
    File(&'a str),
}

/// Resolves one definition; `persona` is its prose.
fn define(
    source: String,
    place: &str,
    src: Src<'_>,
    named: Named<'_>,
    persona: Option<String>,
    bases: &mut Bases<'_>,
) -> Result<Discovered, DiscoverError> {
    let invalid = |message: String| DiscoverError::Invalid {
        place: place.to_owned(),
        message,
    };
    let mut raw = src.read().map_err(invalid)?;
    let name = match (raw.name.take(), named) {
        (Some(n), Named::Heading(h)) if n.get_ref() != h => {
            let why = format!(
                "`name` = \"{}\" differs from the heading's `{h}`; remove `name`",
                n.get_ref()
            );
            return Err(invalid(src.at(&n.span(), why)));
        }
        (Some(n), _) => n.into_inner(),
        (None, Named::Heading(n) | Named::File(n)) => n.to_owned(),
    };
    validate_agent_name(&name).map_err(|e| invalid(e.to_string()))?;
    let bases = bases.for_def(&raw)?;
    let r = raw.resolve(bases, src).map_err(invalid)?;
    let mut spec = r.spec;
    spec.name = name;
    if spec.persona.is_none() {
        spec.persona = persona;
    }
    Ok(Discovered {
        source,
        spec,
        charter: r.charter,
    })
}

fn read(path: &Path, shown: &str) -> Result<Option<String>, DiscoverError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DiscoverError::Read {
            file: shown.to_owned(),
            message: e.to_string(),
        }),
    }
}

/// The agents defined in `AGENTS.md` and `.sf/agents/*.toml` under the repository `root`,
/// sorted by name. Neither place existing is no agents.
pub fn discover(root: &Path) -> Result<Vec<Discovered>, DiscoverError> {
    let mut bases = Bases {
        dir: &root.join(".sf/templates"),
        loaded: None,
    };
    let mut found = Vec::new();
    if let Some(text) = read(&root.join("AGENTS.md"), "AGENTS.md")? {
        for s in sections(&text) {
            let place = format!("AGENTS.md, section `{}`", s.heading);
            let (toml, first_line) = s.toml.unwrap_or_default();
            let src = Src {
                text: &toml,
                first_line,
            };
            let persona = (!s.prose.is_empty()).then(|| s.prose.join("\n\n"));
            let source = format!("AGENTS.md#{}", anchor(&s.heading));
            let named = Named::Heading(&s.name);
            found.push(define(source, &place, src, named, persona, &mut bases)?);
        }
    }
    let dir = root.join(".sf/agents");
    let paths = templates::files(&dir, "toml").map_err(|e| DiscoverError::Read {
        file: ".sf/agents".to_owned(),
        message: e.to_string(),
    })?;
    for path in paths {
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        let source = format!(".sf/agents/{file}");
        let text = read(&path, &source)?.unwrap_or_default();
        let name = templates::stem(&path).unwrap_or_default();
        let src = Src {
            text: &text,
            first_line: 1,
        };
        let named = Named::File(name);
        found.push(define(
            source.clone(),
            &source,
            src,
            named,
            None,
            &mut bases,
        )?);
    }
    let mut seen = BTreeMap::new();
    for d in &found {
        if let Some(first) = seen.insert(&d.spec.name, &d.source) {
            return Err(DiscoverError::Duplicate {
                name: d.spec.name.clone(),
                first: first.clone(),
                second: d.source.clone(),
            });
        }
    }
    found.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    Ok(found)
}

#[cfg(test)]
mod tests;
