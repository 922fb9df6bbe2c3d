//! Everything `sfctl` prints on stdout goes through [`Ui`]: one JSON printer, one table
//! renderer, one colour decision.

use std::io::{self, BufWriter, IsTerminal, Read, Write};

use comfy_table::{Color, Table};
use serde::Serialize;
use sf_proto::{AgentState, MergeState, PlanStatus, TaskStatus};
use unicode_width::UnicodeWidthStr as _;

use crate::error::{CliError, CliResult};

/// The terminal side of a command.
pub struct Ui {
    out: BufWriter<Box<dyn Write>>,
    /// `--json`.
    pub json: bool,
    /// Whether stdout gets ANSI colours.
    pub color: bool,
    /// Whether stdout is a terminal (tables then fit its width).
    pub tty: bool,
    /// `--wide`: tables show every cell whole.
    pub wide: bool,
    /// `-v` count.
    pub verbose: u8,
}

impl Ui {
    pub fn new(json: bool, verbose: u8) -> Self {
        let stdout = io::stdout();
        let tty = stdout.is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            out: BufWriter::new(Box::new(stdout.lock())),
            json,
            color: tty && !no_color && !json,
            tty,
            wide: false,
            verbose,
        }
    }

    /// A plain `Ui` (no colour, no width) whose output goes to the returned buffer: what a
    /// command prints, for snapshot tests.
    #[cfg(test)]
    pub fn capture() -> (Self, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let ui = Self {
            out: BufWriter::new(Box::new(Shared(buf.clone()))),
            json: false,
            color: false,
            tty: false,
            wide: true,
            verbose: 0,
        };
        (ui, buf)
    }

    /// Writes `text` and a newline.
    pub fn line(&mut self, text: impl AsRef<str>) -> CliResult {
        let text = text.as_ref();
        writeln!(self.out, "{text}").map_err(|e| CliError::io("failed to write to stdout", &e))
    }

    /// Prints one JSON document (compact) and a newline: the DTO as the daemon sent it.
    pub fn json_value<T: Serialize + ?Sized>(&mut self, value: &T) -> CliResult {
        serde_json::to_writer(&mut self.out, value).map_err(|e| match e.io_error_kind() {
            Some(kind) => CliError::io("failed to write to stdout", &io::Error::from(kind)),
            None => CliError::internal("failed to encode json").with_cause(e.to_string()),
        })?;
        self.line("")
    }

    /// The one place a command's output forks: under `--json`, `value` as the daemon sent
    /// it (one compact document); otherwise what `render` draws of it.
    pub fn emit<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        render: impl FnOnce(&mut Self, &T) -> CliResult,
    ) -> CliResult {
        if self.json {
            self.json_value(value)
        } else {
            render(self, value)
        }
    }

    /// A message the daemon answered with: `{"message": …}` under `--json`, else the line.
    pub fn emit_message(&mut self, message: &str) -> CliResult {
        if self.json {
            self.json_message(message)
        } else {
            self.line(message)
        }
    }

    /// Prints `{"message": …}`: what a command prints under `--json` when the daemon
    /// answered with just a message.
    pub fn json_message(&mut self, message: &str) -> CliResult {
        self.json_value(&serde_json::json!({ "message": message }))
    }

    /// Copies everything `reader` yields to stdout, as bytes; returns how many. `what` names
    /// the source in the error if reading fails.
    pub fn copy_from(&mut self, reader: &mut impl Read, what: &str) -> CliResult<u64> {
        let mut buf = [0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CliError::io(format!("failed to read {what}"), &e)),
            };
            self.out
                .write_all(&buf[..n])
                .map_err(|e| CliError::io("failed to write to stdout", &e))?;
            total += n as u64;
        }
    }

    pub fn flush(&mut self) -> CliResult {
        self.out
            .flush()
            .map_err(|e| CliError::io("failed to write to stdout", &e))
    }

    /// A progress or warning line on stderr; never fails.
    pub fn status(&self, text: impl AsRef<str>) {
        let _ = writeln!(io::stderr(), "{}", text.as_ref());
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        self.status(format!("warning: {}", text.as_ref()));
    }

    /// Debug output for `-v`.
    pub fn debug(&self, text: impl AsRef<str>) {
        if self.verbose > 0 {
            self.status(format!("debug: {}", text.as_ref()));
        }
    }

    /// Renders and prints a table; see [`render_table`].
    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<Cell>>) -> CliResult {
        let text = render_table(header, rows, self.color, self.width());
        self.line(text)
    }

    /// The width tables fit: none with `--wide`; else the terminal's, or `$COLUMNS` (when
    /// stdout is not a terminal), or none.
    pub fn width(&self) -> Option<u16> {
        if self.wide {
            return None;
        }
        if self.tty {
            return terminal_width();
        }
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<u16>().ok())
            .filter(|w| *w >= 20)
    }

    /// `text` in `color` when colours are on.
    pub fn paint(&self, text: &str, color: Option<Color>) -> String {
        paint(self.color, text, color)
    }

    /// A table cell, coloured when colours are on.
    pub fn cell(&self, text: impl ToString, color: Option<Color>) -> Cell {
        cell(self.color, text, color)
    }
}

/// `text` wrapped in ANSI codes for `color` if `enabled`.
pub fn paint(enabled: bool, text: &str, color: Option<Color>) -> String {
    match color.and_then(ansi_code).filter(|_| enabled) {
        Some(code) => format!("\x1b[{code}m{text}\x1b[0m"),
        None => text.to_owned(),
    }
}

/// A table cell, coloured if `enabled`.
pub fn cell(enabled: bool, text: impl ToString, color: Option<Color>) -> Cell {
    let cell = Cell::new(text);
    match color {
        Some(c) if enabled => cell.fg(c),
        _ => cell,
    }
}

/// A table cell: one line of text (a cell given several shows the first and `…`), and its
/// colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    text: String,
    color: Option<Color>,
}

impl Cell {
    pub fn new(text: impl ToString) -> Self {
        Self {
            text: one_line(&text.to_string()),
            color: None,
        }
    }

    /// Painted in `color` (callers decide whether colours are on: see [`cell`]).
    pub fn fg(mut self, color: Color) -> Self {
        self.color = Some(color);
        self
    }
}

/// The first line of `text`, with ` …` when more lines follow (a log tail in a reason).
pub fn one_line(text: &str) -> String {
    let mut lines = text.trim().lines();
    let first = lines.next().unwrap_or_default().trim_end();
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first.to_owned()
    }
}

/// Cuts `text` to at most `max` columns, ending in `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.width() <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        out.push(ch);
        used += w;
    }
    format!("{}…", out.trim_end())
}

fn terminal_width() -> Option<u16> {
    // A pseudo-terminal without a size reports 0 columns; do not wrap into slivers then.
    Table::new().width().filter(|w| *w >= 40)
}

fn ansi_code(color: Color) -> Option<u8> {
    Some(match color {
        Color::Red => 31,
        Color::Green => 32,
        Color::Yellow => 33,
        Color::Blue => 34,
        Color::Magenta => 35,
        Color::Cyan => 36,
        Color::DarkGrey => 90,
        _ => return None,
    })
}

/// A borderless table: a header row, then rows, columns two spaces apart, no trailing spaces.
/// Every row is one line. With a `width`, the table fits it: the widest columns give way
/// first, down to their header's width (and at least 6), their cells cut with `…`; words are
/// never broken across lines. Without one, every cell is shown whole.
pub fn render_table(
    header: &[&str],
    rows: Vec<Vec<Cell>>,
    color: bool,
    width: Option<u16>,
) -> String {
    render_table_keeping(header, rows, color, width, &[])
}

/// Like [`render_table`], with the columns named in `keep` (a cron expression, say) left
/// whole as long as the others can give way enough.
pub fn render_table_keeping(
    header: &[&str],
    rows: Vec<Vec<Cell>>,
    color: bool,
    width: Option<u16>,
    keep: &[&str],
) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.text.width());
        }
    }
    if let Some(limit) = width {
        let kept: Vec<bool> = header.iter().map(|h| keep.contains(h)).collect();
        fit(&mut widths, header, &kept, usize::from(limit));
        fit(&mut widths, header, &vec![false; n], usize::from(limit));
    }
    let header_row: Vec<Cell> = header.iter().map(Cell::new).collect();
    std::iter::once(header_row)
        .chain(rows)
        .map(|row| {
            let mut line = String::new();
            for (i, c) in row.iter().enumerate().take(n) {
                let text = cut(&c.text, widths[i]);
                let pad = if i + 1 == n {
                    0
                } else {
                    widths[i] - text.width() + 2
                };
                line.push_str(&paint(color, &text, c.color));
                line.extend(std::iter::repeat_n(' ', pad));
            }
            line.trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Narrows `widths` until the columns, two spaces apart, fit `limit`: the widest column
/// gives way first, each down to its floor (its header, at least 6 columns; a `kept` one
/// not at all).
fn fit(widths: &mut [usize], header: &[&str], kept: &[bool], limit: usize) {
    let floors: Vec<usize> = header
        .iter()
        .zip(widths.iter())
        .zip(kept)
        .map(|((h, w), k)| if *k { *w } else { (*w).min(h.width().max(6)) })
        .collect();
    let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
    while total(widths) > limit {
        let over = total(widths) - limit;
        // the widest column that can still give way (the rightmost of equals)
        let Some((i, _)) = widths
            .iter()
            .enumerate()
            .filter(|(i, w)| **w > floors[*i])
            .max_by_key(|(i, w)| (**w, *i))
        else {
            return;
        };
        let next = widths
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, w)| *w)
            .max()
            .unwrap_or(0);
        // down to the next widest (then they give way in turn), or by what is over
        let target = widths[i].saturating_sub(over).max(next.min(widths[i] - 1));
        widths[i] = target.max(floors[i]);
    }
}

/// Colour of a task status word.
pub fn status_color(status: TaskStatus) -> Option<Color> {
    match status {
        TaskStatus::Open => Some(Color::Green),
        TaskStatus::InProgress => Some(Color::Cyan),
        TaskStatus::Review => Some(Color::Magenta),
        TaskStatus::Blocked => Some(Color::Red),
        TaskStatus::Deferred | TaskStatus::Backlog => Some(Color::Yellow),
        TaskStatus::Closed | TaskStatus::Tombstone => Some(Color::DarkGrey),
    }
}

pub fn agent_state_color(state: AgentState) -> Option<Color> {
    match state {
        AgentState::Running => Some(Color::Cyan),
        AgentState::Idle => Some(Color::Green),
        AgentState::Blocked => Some(Color::Yellow),
        AgentState::Failed => Some(Color::Red),
        AgentState::Stopped | AgentState::Disabled => Some(Color::DarkGrey),
        AgentState::NeverRun => None,
    }
}

pub fn plan_status_color(status: PlanStatus) -> Option<Color> {
    match status {
        PlanStatus::Draft => Some(Color::Yellow),
        PlanStatus::Active => Some(Color::Green),
        PlanStatus::Completed | PlanStatus::Cancelled => Some(Color::DarkGrey),
        PlanStatus::Failed => Some(Color::Red),
    }
}

/// Colour of a merge request state, matched to the task statuses it mirrors.
pub fn merge_state_color(state: MergeState) -> Option<Color> {
    match state {
        MergeState::Queued => Some(Color::Green),
        MergeState::Testing => Some(Color::Cyan),
        MergeState::AwaitingApproval => Some(Color::Magenta),
        MergeState::Waiting => Some(Color::Yellow),
        MergeState::NeedsFix => Some(Color::Red),
        MergeState::Merged | MergeState::Cancelled => Some(Color::DarkGrey),
    }
}

/// The first line of `text`, cut to at most `max` characters with `…` when longer.
pub fn truncate(text: &str, max: usize) -> String {
    let mut lines = text.trim().lines();
    let first = lines.next().unwrap_or_default().trim_end();
    let more = lines.next().is_some();
    if first.chars().count() <= max && !more {
        return first.to_owned();
    }
    let kept: String = first.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

/// `-` for nothing.
pub fn or_dash(s: Option<impl ToString>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// Aligned `key: value` lines.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs
        .iter()
        .map(|(k, v)| {
            format!("{:<width$} {v}", format!("{k}:"))
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Indents every line of `text` by two spaces.
pub fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}").trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_borderless_and_trimmed() {
        let rows = vec![
            vec![Cell::new("k3f9xq"), Cell::new("open"), Cell::new("a title")],
            vec![Cell::new("m2"), Cell::new("in_progress"), Cell::new("")],
        ];
        let text = render_table(&["ID", "STATUS", "TITLE"], rows, false, None);
        assert_eq!(
            text,
            "ID      STATUS       TITLE\n\
             k3f9xq  open         a title\n\
             m2      in_progress"
        );
    }

    #[test]
    fn truncate_keeps_the_first_line_and_marks_cuts() {
        assert_eq!(truncate("tests passed", 20), "tests passed");
        assert_eq!(truncate("  exactly five  ", 13), "exactly five");
        assert_eq!(truncate("0123456789", 5), "0123…");
        assert_eq!(truncate("first\nsecond", 20), "first…");
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        assert_eq!(truncate("", 5), "");
    }

    #[test]
    fn key_values_align() {
        let text = key_values(&[
            ("pid", "1".into()),
            ("version", "x".into()),
            ("e", String::new()),
        ]);
        assert_eq!(text, "pid:     1\nversion: x\ne:");
    }
}
