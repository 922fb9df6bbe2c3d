//! `sfctl docs check`: finds, without the daemon, what went stale in the repository's Markdown
//! files: broken relative links, inline-code paths to files that are gone, and `sfctl`
//! commands or flags that no longer exist (checked against this binary's own clap tree).
//! The docs steward consumes its `--json` report.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

use clap::{Args, CommandFactory, Subcommand};
use serde::{Deserialize, Serialize};

use crate::cli::Cli;
use crate::commands::init::git;
use crate::context::Context;
use crate::error::{CliError, CliResult};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    BrokenLink,
    MissingFile,
    UnknownCommand,
    UnknownFlag,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BrokenLink => "broken link",
            Self::MissingFile => "missing file",
            Self::UnknownCommand => "unknown command",
            Self::UnknownFlag => "unknown flag",
        })
    }
}

pub fn run(ctx: &mut Context, cmd: DocsCommand) -> CliResult {
    match cmd {
        DocsCommand::Check(args) => check(ctx, &args),
    }
}

fn check(ctx: &mut Context, args: &CheckArgs) -> CliResult {
    let start = ctx.start_dir()?;
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::io("failed to read the current directory", &e))?;
    let report = check_repo(&start, &cwd, &args.paths)?;
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let files = plural(report.files_checked, "file");
    let summary = if report.problems.is_empty() {
        format!("no problems in {files}")
    } else {
        format!("{} in {files}", plural(report.problems.len(), "problem"))
    };
    if ctx.ui.json {
        ctx.ui.json_value(&report)?;
    } else {
        for p in &report.problems {
            ctx.ui
                .line(format!("{}:{}: {}: {}", p.path, p.line, p.kind, p.detail))?;
        }
        ctx.ui.line(&summary)?;
    }
    if report.problems.is_empty() {
        return Ok(());
    }
    // The summary is already on stdout; the error only sets the exit code (and says it again
    // on stderr, like every refusal).
    Err(CliError::refused("docs_problems", summary).with_result_printed())
}

/// Checks the Markdown files of the repository containing `start`; `paths` (relative to
/// `cwd`) restrict the check to some files or directories.
pub fn check_repo(start: &Path, cwd: &Path, paths: &[PathBuf]) -> CliResult<DocsReport> {
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
    let root = command_tree();
    let mut problems = Vec::new();
    for rel in &files {
        let abs = top.join(rel);
        let text = fs::read(&abs)
            .map_err(|e| CliError::io(format!("failed to read {}", abs.display()), &e))?;
        let text = String::from_utf8_lossy(&text);
        problems.extend(check_file(&top, rel, &text, &root));
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

/// The clap tree, built (help, version and global flags propagated).
fn command_tree() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
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

/// Splits `text` into fenced code (kept line by line) and paragraphs (scanned for code spans,
/// then for links outside them).
fn scan(text: &str) -> Scan {
    let mut scan = Scan::default();
    let mut fence: Option<(char, usize)> = None;
    let mut block: Vec<(usize, &str)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim_start();
        if let Some((ch, len)) = fence {
            let run = trimmed.chars().take_while(|c| *c == ch).count();
            if run >= len && trimmed[run..].trim().is_empty() {
                fence = None;
                if let Some(p) = pending.take() {
                    scan.code_lines.push(p);
                }
                continue;
            }
            let (start, mut joined) = pending.take().unwrap_or((n, String::new()));
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
            continue;
        }
        if let Some(open) = fence_open(trimmed) {
            scan_block(&block, &mut scan);
            block.clear();
            fence = Some(open);
            continue;
        }
        if trimmed.is_empty() {
            scan_block(&block, &mut scan);
            block.clear();
        } else {
            block.push((n, line));
        }
    }
    if let Some(p) = pending.take() {
        scan.code_lines.push(p);
    }
    scan_block(&block, &mut scan);
    scan
}

/// ```` ``` ```` or `~~~` (three or more) opening a fence: its character and length.
fn fence_open(trimmed: &str) -> Option<(char, usize)> {
    let ch = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let run = trimmed.chars().take_while(|c| *c == ch).count();
    // A backtick fence's info string cannot hold a backtick (that is an inline span).
    (run >= 3 && !(ch == '`' && trimmed[run..].contains('`'))).then_some((ch, run))
}

/// One paragraph-like block (consecutive non-blank lines outside fences).
fn scan_block(lines: &[(usize, &str)], scan: &mut Scan) {
    if lines.is_empty() {
        return;
    }
    let mut text = String::new();
    let mut starts = Vec::with_capacity(lines.len());
    for (n, l) in lines {
        starts.push((text.len(), *n));
        text.push_str(l);
        text.push('\n');
    }
    let line_at = |offset: usize| {
        let i = starts.partition_point(|(s, _)| *s <= offset);
        starts[i.saturating_sub(1)].1
    };
    let (masked, spans) = code_spans(&text);
    for (offset, content) in spans {
        scan.spans.push(Span {
            line: line_at(offset),
            text: content,
        });
    }
    for (offset, target) in links(&masked) {
        scan.links.push(Link {
            line: line_at(offset),
            target,
        });
    }
}

/// Finds inline code spans: returns `text` with them blanked out (newlines kept) and each
/// span's offset and content.
fn code_spans(text: &str) -> (String, Vec<(usize, String)>) {
    let bytes = text.as_bytes();
    let mut masked = bytes.to_vec();
    let mut spans = Vec::new();
    let run_at = |i: usize| bytes[i..].iter().take_while(|b| **b == b'`').count();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let len = run_at(i);
        let mut j = i + len;
        let mut close = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let l = run_at(j);
                if l == len {
                    close = Some(j);
                    break;
                }
                j += l;
            } else {
                j += 1;
            }
        }
        let Some(close) = close else {
            i += len;
            continue;
        };
        let raw = text[i + len..close].replace('\n', " ");
        let content = match raw.strip_prefix(' ').and_then(|r| r.strip_suffix(' ')) {
            Some(inner) if !raw.trim().is_empty() => inner.to_owned(),
            _ => raw,
        };
        spans.push((i, content));
        for b in &mut masked[i..close + len] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        i = close + len;
    }
    // Only whole characters were blanked (a span starts and ends at a backtick).
    let masked = String::from_utf8(masked).unwrap_or_default();
    (masked, spans)
}

/// Link targets in text without code: inline links and images `](x)`, reference
/// definitions `[id]: x`, and HTML `href="x"` / `src="x"`. Returns each target's offset.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (pos, _) in text.match_indices("](") {
        let start = pos + 2;
        let rest = &text[start..];
        let skipped = rest.len() - rest.trim_start().len();
        if let Some(target) = link_destination(&rest[skipped..]) {
            out.push((start + skipped, target));
        }
    }
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some((at, target)) = reference_definition(line) {
            out.push((offset + at, target));
        }
        offset += line.len();
    }
    let lower = text.to_ascii_lowercase();
    for attr in ["href=", "src="] {
        for (pos, _) in lower.match_indices(attr) {
            let before = lower[..pos].chars().next_back();
            if before.is_some_and(|c| !c.is_whitespace()) {
                continue;
            }
            let start = pos + attr.len();
            let Some(quote) = text[start..]
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')
            else {
                continue;
            };
            let value = &text[start + 1..];
            if let Some(end) = value.find(quote) {
                out.push((start + 1, value[..end].to_owned()));
            }
        }
    }
    out
}

/// The destination at the start of `s` (just after `](`): `<…>`, or up to whitespace or the
/// unbalanced `)`, with backslash escapes removed.
fn link_destination(s: &str) -> Option<String> {
    if let Some(rest) = s.strip_prefix('<') {
        let end = rest.find(['>', '\n'])?;
        return Some(rest[..end].to_owned()).filter(|t| !t.is_empty());
    }
    let mut out = String::new();
    let mut depth = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '(' => {
                depth += 1;
                out.push(c);
            }
            ')' if depth == 0 => break,
            ')' => {
                depth -= 1;
                out.push(c);
            }
            c if c.is_whitespace() => break,
            c => out.push(c),
        }
    }
    Some(out).filter(|t| !t.is_empty())
}

/// `[id]: target` at the start of a line (up to three spaces in); not footnotes `[^1]:`.
fn reference_definition(line: &str) -> Option<(usize, String)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = line[indent..].strip_prefix('[')?;
    if rest.starts_with('^') {
        return None;
    }
    let close = rest.find("]:")?;
    if close == 0 || rest[..close].contains(['[', ']']) {
        return None;
    }
    let after = &rest[close + 2..];
    let value = after.trim_start();
    let at = line.len() - value.len();
    let target = link_destination(value)?;
    Some((at, target))
}

// ---------------------------------------------------------------------------------------
// Links and paths
// ---------------------------------------------------------------------------------------

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
/// in the document's directory or one above it); runtime paths (`.sf/`, `target/`) are skipped.
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
    if parts.iter().any(|p| *p == ".sf" || *p == "target") {
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

/// The command in a code line or span if it is an `sfctl` one (`sfctl …` or `$ sfctl …`).
fn sfctl_command(text: &str) -> Option<&str> {
    let t = text.trim();
    let t = t.strip_prefix("$ ").map_or(t, str::trim_start);
    (t == "sfctl" || t.starts_with("sfctl ")).then_some(t)
}

/// A problem with one `sfctl` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Issue {
    kind: ProblemKind,
    /// The command the word was given to, e.g. `sfctl task list`.
    command: String,
    /// The unknown subcommand or flag.
    word: String,
}

impl Issue {
    fn detail(&self) -> String {
        match self.kind {
            ProblemKind::UnknownFlag => format!("`{}` has no flag `{}`", self.command, self.word),
            _ => format!("`{}` has no subcommand `{}`", self.command, self.word),
        }
    }
}

/// Checks `line` (starting with `sfctl`) against the clap tree `root`.
fn check_command(root: &clap::Command, line: &str) -> Vec<Issue> {
    let words = shell_words(line);
    let Some((first, rest)) = words.split_first() else {
        return Vec::new();
    };
    if first != "sfctl" {
        return Vec::new();
    }
    let mut out = Vec::new();
    walk(root, &[], "sfctl", rest, &mut out);
    out.dedup();
    out
}

/// Follows `words` down the tree from `cmd` (named `path`); `inherited` are the ancestors'
/// global flags.
fn walk<'a>(
    cmd: &'a clap::Command,
    inherited: &[&'a clap::Arg],
    path: &str,
    words: &[String],
    out: &mut Vec<Issue>,
) {
    let mut globals: Vec<&clap::Arg> = inherited.to_vec();
    globals.extend(cmd.get_arguments().filter(|a| a.is_global_set()));
    let args = || cmd.get_arguments().chain(globals.iter().copied());
    let issue = |kind, word: &str| Issue {
        kind,
        command: path.to_owned(),
        word: word.to_owned(),
    };
    let mut subcommand_slot = cmd.has_subcommands();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if word == "--" {
            return;
        }
        // `[--branch B]` in a synopsis.
        let flag = if word.trim_start_matches('[').starts_with('-') {
            word.trim_start_matches('[').trim_end_matches(']')
        } else {
            word.as_str()
        };
        if let Some(long) = flag.strip_prefix("--").filter(|l| !l.is_empty()) {
            let (name, value) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            let found = args().find(|a| {
                a.get_long() == Some(name)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&name))
            });
            match found {
                None if !matches!(name, "help" | "version") => {
                    out.push(issue(ProblemKind::UnknownFlag, &format!("--{name}")));
                }
                Some(arg) if !value && takes_value(arg) => i += 1,
                _ => {}
            }
            continue;
        }
        if let Some(shorts) = flag.strip_prefix('-').filter(|s| !s.is_empty())
            && shorts.parse::<f64>().is_err()
        {
            let chars: Vec<char> = shorts.chars().collect();
            for (k, c) in chars.iter().enumerate() {
                let found = args().find(|a| {
                    a.get_short() == Some(*c)
                        || a.get_all_short_aliases().is_some_and(|al| al.contains(c))
                });
                match found {
                    None if !matches!(c, 'h' | 'V') => {
                        out.push(issue(ProblemKind::UnknownFlag, &format!("-{c}")));
                        break;
                    }
                    Some(arg) if takes_value(arg) => {
                        if k + 1 == chars.len() {
                            i += 1;
                        }
                        break;
                    }
                    _ => {}
                }
            }
            continue;
        }
        if !subcommand_slot {
            continue;
        }
        let alternatives: Vec<&str> = word.split('|').filter(|a| !a.is_empty()).collect();
        // `<ID>`, `TASK`, or not a word at all (`sfctl / agents` in a diagram): stop here.
        if is_placeholder(word) || !alternatives.iter().all(|a| is_command_word(a)) {
            return;
        }
        if alternatives.len() > 1 {
            let mut each = Vec::new();
            for alt in alternatives {
                match cmd.find_subcommand(alt) {
                    Some(sub) => {
                        let mut found = Vec::new();
                        let sub_path = format!("{path} {}", sub.get_name());
                        walk(sub, &globals, &sub_path, &words[i..], &mut found);
                        each.push(found);
                    }
                    None => out.push(issue(ProblemKind::UnknownCommand, alt)),
                }
            }
            // What follows the alternatives may suit only some of them: report what is
            // wrong for all of them.
            if let Some((first, others)) = each.split_first() {
                for f in first {
                    let everywhere = others
                        .iter()
                        .all(|o| o.iter().any(|x| x.kind == f.kind && x.word == f.word));
                    if everywhere {
                        out.push(Issue {
                            command: format!("{path} {word}"),
                            ..f.clone()
                        });
                    }
                }
            }
            return;
        }
        match cmd.find_subcommand(word) {
            Some(sub) => {
                let sub_path = format!("{path} {}", sub.get_name());
                return walk(sub, &globals, &sub_path, &words[i..], out);
            }
            None if cmd.is_subcommand_required_set() || cmd.get_positionals().next().is_none() => {
                out.push(issue(ProblemKind::UnknownCommand, word));
                return;
            }
            None => subcommand_slot = false,
        }
    }
}

/// Could be a subcommand's name: `list`, `demo-agent`.
fn is_command_word(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_alphanumeric())
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn takes_value(arg: &clap::Arg) -> bool {
    arg.get_action().takes_values() && arg.get_num_args().is_none_or(|r| r.min_values() > 0)
}

/// `<ID>`, `[ARGS]`, `{a,b}`, `$TASK`, `...`, `TASK`, `TASK_ID`: a metavariable, not a word.
fn is_placeholder(word: &str) -> bool {
    word.starts_with(['<', '[', '{', '$'])
        || word.contains("...")
        || word.contains('…')
        || (word.chars().any(|c| c.is_ascii_uppercase())
            && !word.chars().any(|c| c.is_ascii_lowercase()))
}

/// Splits a command line into words like a shell would, roughly: quotes and backslashes,
/// stopping at a comment, `;`, `&`, `&&`, a pipe `|` (a word of its own; `a|b` inside a
/// word stays, as alternatives), a redirection `>` or a `(`.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut started = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                started = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if chars.peek().is_some_and(|n| "\"\\$`".contains(*n)) => {
                            cur.extend(chars.next());
                        }
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                started = true;
                cur.extend(chars.next());
            }
            '#' | '|' | '(' if !started => break,
            ';' | '&' => break,
            '>' if !cur.starts_with('<') => {
                // `2>&1`: the fd number is not a word.
                if !cur.chars().all(|c| c.is_ascii_digit()) {
                    words.push(std::mem::take(&mut cur));
                }
                started = false;
                break;
            }
            c => {
                started = true;
                cur.push(c);
            }
        }
    }
    if started {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests;
