//! Everything `sfctl` prints on stdout goes through [`Ui`]: one JSON printer, one table
//! renderer, one colour decision.

use std::io::{self, BufWriter, IsTerminal, Read, StdoutLock, Write};

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use serde::Serialize;
use sf_proto::{AgentState, MergeState, PlanStatus, TaskStatus};

use crate::error::{CliError, CliResult};

/// The terminal side of a command.
pub struct Ui {
    out: BufWriter<StdoutLock<'static>>,
    /// `--json`.
    pub json: bool,
    /// Whether stdout gets ANSI colours.
    pub color: bool,
    /// Whether stdout is a terminal (tables then wrap to its width).
    pub tty: bool,
    /// `-v` count.
    pub verbose: u8,
}

impl Ui {
    pub fn new(json: bool, verbose: u8) -> Self {
        let stdout = io::stdout();
        let tty = stdout.is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            out: BufWriter::new(stdout.lock()),
            json,
            color: tty && !no_color && !json,
            tty,
            verbose,
        }
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

    /// The terminal's width, when stdout is one.
    pub fn width(&self) -> Option<u16> {
        if self.tty { terminal_width() } else { None }
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
    let cell = Cell::new(text.to_string());
    match color {
        Some(c) if enabled => cell.fg(c),
        _ => cell,
    }
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
/// `width` wraps long cells to fit a terminal.
pub fn render_table(
    header: &[&str],
    rows: Vec<Vec<Cell>>,
    color: bool,
    width: Option<u16>,
) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.force_no_tty();
    if color {
        table.enforce_styling();
    }
    match width {
        Some(w) => {
            table
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(w);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    table.set_header(header.iter().map(|h| Cell::new(*h)));
    for row in rows {
        table.add_row(row);
    }
    let last = header.len().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
    }
    table
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
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
