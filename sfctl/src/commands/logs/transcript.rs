//! A run's log as a reader wants it: the agent's stream rendered line by line
//! ([`sf_adapters::transcript`]), its text as written, each tool call on a line of its own
//! with how it ended, usage, and the final result or error in full.

use comfy_table::Color;
use sf_adapters::transcript::{Entry, Transcript};
use sf_proto::Adapter;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr as _};

use crate::output::{cut, paint};

/// Turns a log's bytes, as they arrive, into rendered lines; keeps a line's start until its
/// newline comes.
pub struct Renderer {
    transcript: Transcript,
    partial: Vec<u8>,
    style: Style,
    /// Whether a line was printed yet, and whether the next entry wants a blank line
    /// before it (after a paragraph of text or a result).
    printed: bool,
    gap: bool,
    /// The agent's last words (text or error) since the last tool call: a result that only
    /// repeats them (Claude's always does) shows just its heading.
    last_said: Option<String>,
}

/// How rendered lines look: coloured or not, fitted to a width or not.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub width: Option<u16>,
}

impl Renderer {
    pub fn new(adapter: Option<Adapter>, style: Style) -> Self {
        Self {
            transcript: Transcript::new(adapter),
            partial: Vec::new(),
            style,
            printed: false,
            gap: false,
            last_said: None,
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
        let mut out = Vec::new();
        for mut entry in self.transcript.entries(line) {
            match &mut entry {
                Entry::Text(t) | Entry::Error(t) => self.last_said = Some(t.trim().to_owned()),
                Entry::ToolCall { .. } | Entry::ToolResult { .. } => self.last_said = None,
                Entry::Result { text, .. } if self.last_said.as_deref() == Some(text.trim()) => {
                    text.clear();
                }
                Entry::Usage {
                    input: 0,
                    output: 0,
                    cost_usd: None | Some(0.0),
                } => continue,
                _ => {}
            }
            let lines = render(&entry, self.style);
            if lines.is_empty() {
                continue;
            }
            let paragraph = matches!(entry, Entry::Text(_) | Entry::Result { .. });
            if self.printed && (self.gap || paragraph) {
                out.push(String::new());
            }
            out.extend(lines);
            self.printed = true;
            self.gap = paragraph;
        }
        out
    }
}

/// One entry as lines (none: nothing worth showing). Text wraps at the width, never cut;
/// a tool call or its end is one line, cut to the width.
pub fn render(entry: &Entry, style: Style) -> Vec<String> {
    let Style { color, width } = style;
    let width = width.map(usize::from);
    let one = |text: String, c: Option<Color>| {
        let text = match width {
            Some(w) => cut(&text, w),
            None => text,
        };
        vec![paint(color, &text, c)]
    };
    match entry {
        Entry::Text(t) => wrap(t.trim_matches('\n').trim_end(), width),
        Entry::ToolCall { name, input } => {
            let name = format!("▸ {name}");
            let line = match width {
                Some(w) => cut(&format!("{name}  {input}"), w),
                None => format!("{name}  {input}"),
            };
            let rest = line.strip_prefix(&name).unwrap_or_default();
            vec![format!("{}{rest}", paint(color, &name, Some(Color::Cyan)))]
        }
        Entry::ToolResult { ok: true, output } => one(
            format!("  ✓ {output}").trim_end().to_owned(),
            Some(Color::Green),
        ),
        Entry::ToolResult { ok: false, output } => one(
            format!("  ✗ {output}").trim_end().to_owned(),
            Some(Color::Red),
        ),
        Entry::Usage {
            input,
            output,
            cost_usd,
        } => {
            let cost = cost_usd
                .map(|c| format!(" · {}", dollars(c)))
                .unwrap_or_default();
            one(
                format!(
                    "  tokens: {} in · {} out{cost}",
                    thousands(*input),
                    thousands(*output)
                ),
                Some(Color::DarkGrey),
            )
        }
        Entry::Result { success, text } => {
            let mut lines = vec![if *success {
                paint(color, "── result: success ──", Some(Color::Green))
            } else {
                paint(color, "── result: failed ──", Some(Color::Red))
            }];
            lines.extend(wrap(text.trim_matches('\n').trim_end(), width));
            lines
        }
        Entry::Error(t) => wrap(&format!("! {}", t.trim()), width)
            .into_iter()
            .map(|l| paint(color, &l, Some(Color::Yellow)))
            .collect(),
        Entry::Plain(l) => vec![l.clone()],
    }
}

/// `text`'s lines, each broken at spaces to fit `width` columns (a longer word is split);
/// nothing is left out. Blank lines stay.
fn wrap(text: &str, width: Option<usize>) -> Vec<String> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let Some(width) = width.filter(|w| *w >= 20) else {
        return text.lines().map(str::to_owned).collect();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        if line.width() <= width {
            out.push(line.to_owned());
            continue;
        }
        let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
        let mut cur = String::new();
        for word in line.split_whitespace() {
            let sep = usize::from(!cur.is_empty());
            if !cur.is_empty() && cur.width() + sep + word.width() > width {
                out.push(std::mem::take(&mut cur));
            }
            if cur.is_empty() {
                if indent.width() < width / 2 {
                    cur.push_str(&indent);
                }
            } else {
                cur.push(' ');
            }
            for ch in word.chars() {
                let w = UnicodeWidthChar::width(ch).unwrap_or(0);
                if cur.width() + w > width && !cur.trim().is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                cur.push(ch);
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
    }
    out
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `$0.012`, `$1.50`; small amounts keep their first digits (`$0.0004`).
fn dollars(c: f64) -> String {
    if c >= 1.0 {
        format!("${c:.2}")
    } else if c == 0.0 {
        "$0".to_owned()
    } else if c >= 0.01 {
        format!("${c:.3}")
    } else {
        format!("${c:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style {
        color: false,
        width: None,
    };

    #[test]
    fn lines_are_rendered_once_whole_and_a_long_result_in_full() {
        let mut r = Renderer::new(Some(Adapter::Codex), PLAIN);
        let call = r#"{"type":"item.completed","item":{"type":"command_execution","command":"/bin/bash -c 'cargo test'","aggregated_output":"test result: ok\n","exit_code":0}}"#;
        let (a, b) = call.split_at(40);
        assert!(r.feed(a.as_bytes()).is_empty(), "half a line waits");
        let lines = r.feed(format!("{b}\n").as_bytes());
        assert_eq!(
            lines,
            ["▸ shell  /bin/bash -c 'cargo test'", "  ✓ test result: ok"]
        );
        let long = "x".repeat(1500);
        let failed = format!(r#"{{"type":"turn.failed","error":{{"message":"{long}"}}}}"#);
        let lines = r.feed(failed.as_bytes());
        assert!(lines.is_empty());
        let lines = r.finish();
        assert_eq!(lines, ["", "── result: failed ──", long.as_str()]);
    }

    #[test]
    fn a_claude_run_reads_as_paragraphs_tool_lines_usage_and_the_result() {
        let log = concat!(
            r#"{"type":"system","subtype":"init","session_id":"s"}"#,
            "\n",
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"I'll write the note and commit it."},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"echo note > note.txt && git add note.txt && git commit -qm \"note\""}}]}}"#,
            "\n",
            r#"{"type":"user","message":{"content":[{"tool_use_id":"t1","type":"tool_result","content":"[main 1a2b3c4] note","is_error":false}]}}"#,
            "\n",
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t2","name":"Read","input":{"file_path":"/w/missing.txt"}}]}}"#,
            "\n",
            r#"{"type":"user","message":{"content":[{"tool_use_id":"t2","type":"tool_result","content":"File does not exist.","is_error":true}]}}"#,
            "\n",
            "npm WARN something on stderr\n",
            r#"{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0.01234,"usage":{"input_tokens":1234,"output_tokens":567},"result":"Done: note.txt is committed. The note says what was asked, and the tests pass."}"#,
            "\n",
        );
        let mut r = Renderer::new(
            Some(Adapter::Claude),
            Style {
                color: false,
                width: Some(40),
            },
        );
        let lines = r.feed(log.as_bytes());
        assert_eq!(
            lines.join("\n"),
            "\
I'll write the note and commit it.

▸ Bash  echo note > note.txt && git add…
  ✓ [main 1a2b3c4] note
▸ Read  /w/missing.txt
  ✗ File does not exist.
npm WARN something on stderr
  tokens: 1,234 in · 567 out · $0.012

── result: success ──
Done: note.txt is committed. The note
says what was asked, and the tests pass."
        );
        for l in &lines {
            assert!(l.width() <= 40, "{l}");
        }
    }

    #[test]
    fn a_result_that_repeats_the_last_words_shows_only_its_heading() {
        let log = concat!(
            r#"{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text","text":"Not logged in · Please run /login"}]},"error":"authentication_failed"}"#,
            "\n",
            r#"{"type":"result","subtype":"success","is_error":true,"total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0},"result":"Not logged in · Please run /login"}"#,
            "\n",
        );
        let mut r = Renderer::new(Some(Adapter::Claude), PLAIN);
        assert_eq!(
            r.feed(log.as_bytes()),
            [
                "! Not logged in · Please run /login",
                "",
                "── result: failed ──"
            ]
        );
    }

    #[test]
    fn colours_only_when_asked() {
        let style = Style {
            color: true,
            width: None,
        };
        let call = Entry::ToolCall {
            name: "Bash".into(),
            input: "ls".into(),
        };
        assert_eq!(render(&call, style), ["\x1b[36m▸ Bash\x1b[0m  ls"]);
        assert_eq!(render(&call, PLAIN), ["▸ Bash  ls"]);
        let err = Entry::Error("authentication_failed".into());
        assert_eq!(
            render(&err, style),
            ["\x1b[33m! authentication_failed\x1b[0m"]
        );
    }

    #[test]
    fn text_wraps_at_spaces_and_a_long_word_is_split_not_cut() {
        assert_eq!(
            wrap("one two three four five six", Some(20)),
            ["one two three four", "five six"]
        );
        let word = "y".repeat(45);
        assert_eq!(
            wrap(&format!("a {word}"), Some(20)).concat(),
            format!("a{word}")
        );
        assert_eq!(
            wrap("  - indented item that goes on and on", Some(20)),
            ["  - indented item", "  that goes on and", "  on"]
        );
        assert_eq!(wrap("keep\n\nblank", Some(20)), ["keep", "", "blank"]);
        assert_eq!(wrap("  ", Some(20)), Vec::<String>::new());
    }

    #[test]
    fn token_counts_and_costs_read_easily() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(dollars(0.01234), "$0.012");
        assert_eq!(dollars(0.0004), "$0.0004");
        assert_eq!(dollars(2.5), "$2.50");
        assert_eq!(dollars(0.0), "$0");
    }

    #[test]
    fn a_command_agents_output_is_shown_as_it_is() {
        let mut r = Renderer::new(Some(Adapter::Command), PLAIN);
        assert_eq!(
            r.feed(b"{\"type\":\"x\"}\n\nplain  \n"),
            ["{\"type\":\"x\"}", "", "plain  "]
        );
    }
}
