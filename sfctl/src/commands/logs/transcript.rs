//! A run's log as a reader wants it: the agent's stream rendered line by line
//! ([`sf_adapters::transcript`]), its text as written, each tool call on a line of its own
//! with how it ended, usage, and the final result or error in full.

use comfy_table::Color;
use sf_adapters::transcript::{Entry, Transcript};
use sf_proto::Adapter;

use crate::output::paint;

/// Turns a log's bytes, as they arrive, into rendered lines; keeps a line's start until its
/// newline comes.
pub struct Renderer {
    transcript: Transcript,
    partial: Vec<u8>,
    color: bool,
}

impl Renderer {
    pub fn new(adapter: Option<Adapter>, color: bool) -> Self {
        Self {
            transcript: Transcript::new(adapter),
            partial: Vec::new(),
            color,
        }
    }

    /// The rendered lines that `bytes` completes.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(bytes);
        let Some(last) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let done: Vec<u8> = self.partial.drain(..=last).collect();
        String::from_utf8_lossy(&done)
            .lines()
            .flat_map(|l| self.line(l))
            .collect()
    }

    /// The rendered lines of what is left (a last line without a newline).
    pub fn finish(&mut self) -> Vec<String> {
        let rest = std::mem::take(&mut self.partial);
        let rest = String::from_utf8_lossy(&rest);
        rest.lines().flat_map(|l| self.line(l)).collect()
    }

    fn line(&mut self, line: &str) -> Vec<String> {
        self.transcript
            .entries(line)
            .iter()
            .filter_map(|e| render(e, self.color))
            .collect()
    }
}

/// One entry as text (`None`: nothing worth a line).
fn render(entry: &Entry, color: bool) -> Option<String> {
    Some(match entry {
        Entry::Text(t) if t.trim().is_empty() => return None,
        Entry::Text(t) => t.trim_end().to_owned(),
        Entry::ToolCall { name, input } => {
            format!(
                "{} {input}",
                paint(color, &format!("▸ {name}"), Some(Color::Cyan))
            )
        }
        Entry::ToolResult { ok: true, output } => paint(
            color,
            format!("  ✓ {output}").trim_end(),
            Some(Color::Green),
        ),
        Entry::ToolResult { ok: false, output } => {
            paint(color, format!("  ✗ {output}").trim_end(), Some(Color::Red))
        }
        Entry::Usage {
            input,
            output,
            cost_usd,
        } => {
            let cost = cost_usd.map(|c| format!(" · ${c:.4}")).unwrap_or_default();
            paint(
                color,
                &format!("  tokens: {input} in · {output} out{cost}"),
                Some(Color::DarkGrey),
            )
        }
        Entry::Result { success, text } => {
            let head = if *success {
                paint(color, "── result: success ──", Some(Color::Green))
            } else {
                paint(color, "── result: failed ──", Some(Color::Red))
            };
            if text.trim().is_empty() {
                head
            } else {
                format!("{head}\n{}", text.trim_end())
            }
        }
        Entry::Error(t) => paint(color, &format!("! {t}"), Some(Color::Yellow)),
        Entry::Plain(l) => l.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_rendered_once_whole_and_a_long_result_in_full() {
        let mut r = Renderer::new(Some(Adapter::Codex), false);
        let call = r#"{"type":"item.completed","item":{"type":"command_execution","command":"/bin/bash -c 'cargo test'","aggregated_output":"test result: ok\n","exit_code":0}}"#;
        let (a, b) = call.split_at(40);
        assert!(r.feed(a.as_bytes()).is_empty(), "half a line waits");
        let lines = r.feed(format!("{b}\n").as_bytes());
        assert_eq!(
            lines,
            ["▸ shell /bin/bash -c 'cargo test'", "  ✓ test result: ok"]
        );
        let long = "x".repeat(1500);
        let failed = format!(r#"{{"type":"turn.failed","error":{{"message":"{long}"}}}}"#);
        let lines = r.feed(failed.as_bytes());
        assert!(lines.is_empty());
        let lines = r.finish();
        assert_eq!(lines, [format!("── result: failed ──\n{long}")]);
    }

    #[test]
    fn a_command_agents_output_is_shown_as_it_is() {
        let mut r = Renderer::new(Some(Adapter::Command), true);
        assert_eq!(
            r.feed(b"{\"type\":\"x\"}\nplain\n"),
            ["{\"type\":\"x\"}", "plain"]
        );
    }
}
