//! `sfctl docs check`: finds, without the daemon, what went stale in the repository's Markdown
//! files: broken relative links, inline-code paths to files that are gone, and `sfctl`
//! commands or flags that no longer exist (checked against this binary's own clap tree).
//! The docs steward consumes its `--json` report.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::git::git;

mod commands;
mod kind;

use commands::{check_command, sfctl_command};
pub use kind::ProblemKind;

/// Check the repository's docs for broken links, missing files and stale commands
#[derive(Debug, Subcommand)]
pub enum DocsCommand {
    /// Check Markdown files: broken relative links, missing files, unknown sfctl commands
    #[command(
        long_about = "\
Check the tracked Markdown files (`*.md`, `*.markdown`) of the git repository containing the
current directory (or --workspace), without the daemon:

  broken link      a relative link or image (`[t](x)`, `[id]: x`, `href=\"x\"`, `src=\"x\"`)
                   whose target does not exist; URLs and `#anchors` are skipped
  missing file     an inline code span that names a repository path (`crates/x/src/a.rs`)
                   that does not exist
  unknown command  an `sfctl …` line of a code block or code span naming a subcommand
                   that does not exist
  unknown flag     … or a flag the command does not take

Links and paths inside fenced code blocks are ignored. Prints one `path:line: kind: detail`
line per problem and exits 1 if there is any. With --json, prints
{\"files_checked\": N, \"problems\": [{\"path\", \"line\", \"kind\", \"detail\", \"target\"}]}.",
        after_help = "\
Examples:
  sfctl docs check
  sfctl docs check README.md crates/
  sfctl docs check --json | jq -r '.problems[].path'"
    )]
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only these files or directories (default: every tracked Markdown file)
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
}

/// What `sfctl docs check --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocsReport {
    pub files_checked: usize,
    pub problems: Vec<Problem>,
}

/// One finding. Sorted by path, line, kind, detail.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Problem {
    /// The Markdown file, relative to the repository's top level, `/`-separated.
    pub path: String,
    /// 1-based.
    pub line: usize,
    pub kind: ProblemKind,
    /// A human sentence, as printed after `kind:`.
    pub detail: String,
    /// What was found in the file: the link target, the path, or the `sfctl` command line.
    pub target: String,
}

/// Runs `sfctl docs …`; `tree` is sfctl's own clap tree, built (the commands the docs
/// quote are checked against it).
pub fn run(ctx: &mut Context, cmd: DocsCommand, tree: &clap::Command) -> CliResult {
    match cmd {
        DocsCommand::Check(args) => check(ctx, &args, tree),
    }
}

fn check(ctx: &mut Context, args: &CheckArgs, tree: &clap::Command) -> CliResult {
    let start = ctx.start_dir()?;
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::io("failed to read the current directory", &e))?;
    let report = check_repo(&start, &cwd, &args.paths, tree)?;
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let files = plural(report.files_checked, "file");
    let summary = if report.problems.is_empty() {
        format!("no problems in {files}")
    } else {
        format!("{} in {files}", plural(report.problems.len(), "problem"))
    };
    ctx.ui.emit(&report, |ui, report| {
        for p in &report.problems {
            ui.line(format!("{}:{}: {}: {}", p.path, p.line, p.kind, p.detail))?;
        }
        ui.line(&summary)
    })?;
    if report.problems.is_empty() {
        return Ok(());
    }
    // The summary is already on stdout; the error only sets the exit code (and says it again
    // on stderr, like every refusal).
    Err(CliError::refused("docs_problems", summary).with_result_printed())
}

/// Checks the Markdown files of the repository containing `start`; `paths` (relative to
/// `cwd`) restrict the check to some files or directories; `sfctl` commands are checked
/// against `root`, the built clap tree.
pub fn check_repo(
    start: &Path,
    cwd: &Path,
    paths: &[PathBuf],
    root: &clap::Command,
) -> CliResult<DocsReport> {
    let top = PathBuf::from(git(start, &["rev-parse", "--show-toplevel"])?);
    let top = top.canonicalize().unwrap_or(top);
    let listed = git(&top, &["ls-files", "-z"])?;
    let mut files: BTreeSet<String> = listed
        .split('\0')
        .filter(|f| is_markdown(f) && top.join(f).is_file())
        .map(str::to_owned)
        .collect();
    if !paths.is_empty() {
        files = select(&top, cwd, paths, &files)?;
    }
    let mut problems = Vec::new();
    for rel in &files {
        let abs = top.join(rel);
        let text = fs::read(&abs)
            .map_err(|e| CliError::io(format!("failed to read {}", abs.display()), &e))?;
        let text = String::from_utf8_lossy(&text);
        problems.extend(check_file(&top, rel, &text, root));
    }
    problems.sort();
    problems.dedup();
    Ok(DocsReport {
        files_checked: files.len(),
        problems,
    })
}

fn is_markdown(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown")
}

/// The files among `tracked` under the given paths; a file named explicitly is checked even
/// when git does not track it.
fn select(
    top: &Path,
    cwd: &Path,
    paths: &[PathBuf],
    tracked: &BTreeSet<String>,
) -> CliResult<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for p in paths {
        let abs = cwd.join(p);
        let abs = abs.canonicalize().map_err(|e| {
            CliError::user(format!("{} does not exist", p.display())).with_cause(e.to_string())
        })?;
        let rel = abs.strip_prefix(top).map_err(|_| {
            CliError::user(format!(
                "{} is outside the repository {}",
                p.display(),
                top.display()
            ))
        })?;
        let rel = to_slash(rel);
        if abs.is_file() {
            out.insert(rel);
        } else {
            let prefix = if rel.is_empty() {
                String::new()
            } else {
                format!("{rel}/")
            };
            out.extend(tracked.iter().filter(|f| f.starts_with(&prefix)).cloned());
        }
    }
    Ok(out)
}

fn to_slash(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every problem of one file; `rel` is its path from `top`.
fn check_file(top: &Path, rel: &str, text: &str, root: &clap::Command) -> Vec<Problem> {
    let dir = top
        .join(rel)
        .parent()
        .map_or_else(|| top.to_owned(), Path::to_owned);
    let scan = scan(text);
    let mut out = Vec::new();
    let mut push = |line, kind, detail, target: &str| {
        out.push(Problem {
            path: rel.to_owned(),
            line,
            kind,
            detail,
            target: target.to_owned(),
        });
    };
    for link in &scan.links {
        if let Some(resolved) = broken_link(top, &dir, &link.target) {
            let detail = if resolved == link.target {
                link.target.clone()
            } else {
                format!("{} (resolves to {resolved})", link.target)
            };
            push(link.line, ProblemKind::BrokenLink, detail, &link.target);
        }
    }
    for span in &scan.spans {
        if let Some(cmd) = sfctl_command(&span.text) {
            for issue in check_command(root, cmd) {
                push(span.line, issue.kind, issue.detail(), cmd);
            }
        } else if let Some(path) = missing_path(top, &dir, &span.text) {
            push(span.line, ProblemKind::MissingFile, path.clone(), &path);
        }
    }
    for (line, text) in &scan.code_lines {
        if let Some(cmd) = sfctl_command(text) {
            for issue in check_command(root, cmd) {
                push(*line, issue.kind, issue.detail(), cmd);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Markdown scanning
// ---------------------------------------------------------------------------------------

/// A link target found outside code.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    line: usize,
    target: String,
}

/// An inline code span, its content normalised (newlines to spaces, one padding space off).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    line: usize,
    text: String,
}

#[derive(Debug, Default)]
struct Scan {
    links: Vec<Link>,
    spans: Vec<Span>,
    /// Lines of fenced code blocks, with `\`-continued lines joined (numbered by the first).
    code_lines: Vec<(usize, String)>,
}

/// Parses `text` as CommonMark (with footnotes) and collects what the checks look at: link
/// and image destinations and reference definitions outside code, HTML `href`/`src`
/// attributes, inline code spans, and the lines of fenced code blocks.
fn scan(text: &str) -> Scan {
    use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |offset: usize| starts.partition_point(|s| *s <= offset);
    let mut scan = Scan::default();
    let parser = Parser::new_ext(text, Options::ENABLE_FOOTNOTES);
    // definitions are checked where they are written; the links that use them are not
    // checked again
    for (_, def) in parser.reference_definitions().iter() {
        scan.links.push(Link {
            line: line_of(def.span.start),
            target: def.dest.to_string(),
        });
    }
    let mut fenced = false;
    let mut pending: Option<(usize, String)> = None;
    for (event, range) in parser.into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) => fenced = true,
            Event::End(TagEnd::CodeBlock) => {
                fenced = false;
                scan.code_lines.extend(pending.take());
            }
            Event::Text(code) if fenced => {
                let first = line_of(range.start);
                for (k, line) in code.lines().enumerate() {
                    let (start, mut joined) = pending.take().unwrap_or((first + k, String::new()));
                    match line.trim_end().strip_suffix('\\') {
                        Some(head) => {
                            joined.push_str(head);
                            joined.push(' ');
                            pending = Some((start, joined));
                        }
                        None => {
                            joined.push_str(line);
                            scan.code_lines.push((start, joined));
                        }
                    }
                }
            }
            Event::Code(span) => scan.spans.push(Span {
                line: line_of(range.start),
                text: span.to_string(),
            }),
            Event::Start(
                Tag::Link {
                    link_type,
                    dest_url,
                    ..
                }
                | Tag::Image {
                    link_type,
                    dest_url,
                    ..
                },
            ) if matches!(
                link_type,
                pulldown_cmark::LinkType::Inline | pulldown_cmark::LinkType::Autolink
            ) =>
            {
                scan.links.push(Link {
                    line: line_of(range.start),
                    target: dest_url.to_string(),
                });
            }
            Event::Html(html) | Event::InlineHtml(html) => {
                for (at, target) in html_links(&html) {
                    scan.links.push(Link {
                        line: line_of(range.start + at),
                        target,
                    });
                }
            }
            _ => {}
        }
    }
    scan.code_lines.extend(pending);
    scan
}

/// The `href="x"` and `src="x"` attribute values in a piece of HTML, with their offsets.
fn html_links(html: &str) -> Vec<(usize, String)> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    for attr in ["href=", "src="] {
        for (pos, _) in lower.match_indices(attr) {
            let before = lower[..pos].chars().next_back();
            if before.is_some_and(|c| !c.is_whitespace()) {
                continue;
            }
            let start = pos + attr.len();
            let Some(quote) = html[start..]
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')
            else {
                continue;
            };
            let value = &html[start + 1..];
            if let Some(end) = value.find(quote) {
                out.push((start + 1, value[..end].to_owned()));
            }
        }
    }
    out
}

/// `None` if `target` is fine or not ours to check; else where it resolves, from `top`.
fn broken_link(top: &Path, dir: &Path, target: &str) -> Option<String> {
    let target = target.trim();
    if target.is_empty()
        || target.starts_with('#')
        || target.starts_with("//")
        || has_scheme(target)
    {
        return None;
    }
    let path = target.split(['#', '?']).next().unwrap_or_default();
    if path.is_empty() {
        return None;
    }
    let path = percent_decode(path);
    let abs = match path.strip_prefix('/') {
        Some(from_top) => normalize(&top.join(from_top)),
        None => normalize(&dir.join(&path)),
    };
    if abs.exists() {
        return None;
    }
    Some(
        abs.strip_prefix(top)
            .map_or_else(|_| abs.display().to_string(), to_slash),
    )
}

/// `scheme:` as in `https:`, `mailto:`, `file:` (two letters at least, so not `C:`).
fn has_scheme(target: &str) -> bool {
    let Some((scheme, _)) = target.split_once(':') else {
        return false;
    };
    scheme.len() >= 2
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes `.` and resolves `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}

/// Extensions that make a code span without a `/` look like a file name.
const PATH_EXTENSIONS: &[&str] = &[
    "rs", "md", "toml", "sh", "json", "yml", "yaml", "sql", "lock", "txt", "py", "js", "ts",
];

/// If the code span `span` names a repository path that does not exist, that path. Only
/// spans that are clearly paths count: no spaces or shell characters, a `/` or a known
/// extension, and either `./`/`../` in front or a first component that exists (at the top or
/// in the document's directory or one above it); runtime paths (`.sf/`, `target/`, and git's
/// own `.git/`, whose files come and go) are skipped.
fn missing_path(top: &Path, dir: &Path, span: &str) -> Option<String> {
    let s = strip_line_number(span.trim());
    if !is_pathlike_chars(s) {
        return None;
    }
    let has_ext = Path::new(s)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PATH_EXTENSIONS.contains(&e));
    if !s.contains('/') && !has_ext {
        return None;
    }
    let parts: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
    if parts
        .iter()
        .any(|p| matches!(*p, ".sf" | ".git" | "target"))
    {
        return None;
    }
    // Paths are written from the repository's top, a crate's directory or the document's:
    // try every directory from the document's up to the top.
    let bases: Vec<&Path> = dir.ancestors().take_while(|d| d.starts_with(top)).collect();
    let relative = s.starts_with("./") || s.starts_with("../");
    if !relative {
        let first = parts.first()?;
        if !bases.iter().any(|b| b.join(first).exists()) {
            return None;
        }
    }
    if bases.iter().any(|b| normalize(&b.join(s)).exists()) {
        return None;
    }
    Some(s.to_owned())
}

/// No whitespace, shell or glob characters, no `:` (URLs, `crate::path`), no placeholders.
fn is_pathlike_chars(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && !s.starts_with('-')
        && !s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || "|&;<>()$`\"'*?[]{}!~=,:@#%\\^".contains(c)
        })
}

/// `src/lib.rs:42` and `src/lib.rs:42:7` name `src/lib.rs`.
fn strip_line_number(s: &str) -> &str {
    let mut s = s;
    for _ in 0..2 {
        if let Some((head, tail)) = s.rsplit_once(':')
            && !tail.is_empty()
            && tail.chars().all(|c| c.is_ascii_digit())
        {
            s = head;
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// sfctl commands
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;
