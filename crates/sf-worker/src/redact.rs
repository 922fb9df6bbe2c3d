//! Filtering a run's output for the values of the secrets it holds.
//!
//! A run that is granted secrets gets their values in its environment; whatever it prints
//! goes through its log copier ([`crate::log`]), which passes the bytes through a
//! [`Redactor`] before anything is written: each value becomes `[secret:ALIAS]`. The log,
//! its tail ring and everything sfd later takes from the log (the report parsed from it,
//! the last lines quoted in a run's notes) therefore never hold a value.
//!
//! - Every non-empty value is redacted, however short: a value of one or two bytes then
//!   blanks that text wherever it appears in the output, which is the price of never
//!   writing it. Empty values are ignored.
//! - A value is also looked for in its JSON-escaped form when that differs (a value with a
//!   quote, a backslash or a control character, printed inside an agent CLI's JSON stream).
//!   Other encodings of it (base64, URL-encoding, split by the program itself) are not.
//! - When values overlap (one is a prefix of another, or they share text), the longest
//!   match starting at the leftmost position wins.
//! - A value split across two reads is still found: the redactor holds back the end of the
//!   stream while it could be the start of a value (at most the longest value minus one
//!   byte) and writes it once the next bytes decide, or at the end of the output. Output
//!   that cannot be the start of a value is never held back.

use aho_corasick::{AhoCorasick, MatchKind};

/// Replaces the values of a run's secrets in its output stream by `[secret:ALIAS]`.
pub struct Redactor {
    finder: AhoCorasick,
    /// What each pattern is replaced by.
    marks: Vec<Vec<u8>>,
    patterns: Vec<Vec<u8>>,
    longest: usize,
    /// Bytes read but not yet decided: they could be the start of a value.
    pending: Vec<u8>,
}

/// Names only: the values are secrets.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor for `secrets`, `(alias, value)` pairs; `None` when no value is non-empty
    /// (the output is then copied as it is). A value listed under two aliases is shown as
    /// the first.
    pub fn new(secrets: &[(String, String)]) -> Option<Self> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut marks = Vec::new();
        for (alias, value) in secrets {
            let json = serde_json::to_string(value).unwrap_or_default();
            let escaped = json
                .strip_prefix('"')
                .and_then(|j| j.strip_suffix('"'))
                .unwrap_or_default();
            for form in [value.as_str(), escaped] {
                if form.is_empty() || patterns.iter().any(|p| p == form.as_bytes()) {
                    continue;
                }
                patterns.push(form.as_bytes().to_vec());
                marks.push(format!("[secret:{alias}]").into_bytes());
            }
        }
        if patterns.is_empty() {
            return None;
        }
        let finder = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()?;
        let longest = patterns.iter().map(Vec::len).max().unwrap_or(0);
        Some(Self {
            finder,
            marks,
            patterns,
            longest,
            pending: Vec::new(),
        })
    }

    /// Takes the next bytes of the stream; appends to `out` what can be written now.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(chunk);
        let undecided = self.undecided();
        self.emit(undecided, out);
    }

    /// The end of the stream: appends what was held back to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.emit(self.pending.len(), out);
    }

    /// Bytes held back, waiting for the next read.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Where the longest end of `pending` that is a proper prefix of a value starts (its
    /// length when there is none). A match starting before it is final: no longer value
    /// starting at or before it can still be completed by later bytes.
    fn undecided(&self) -> usize {
        let len = self.pending.len();
        let from = len.saturating_sub(self.longest.saturating_sub(1));
        (from..len)
            .find(|&j| {
                let end = &self.pending[j..];
                self.patterns
                    .iter()
                    .any(|p| p.len() > end.len() && p.starts_with(end))
            })
            .unwrap_or(len)
    }

    /// Writes `pending` with its values replaced, up to `safe` (or the end of a match that
    /// starts before it); keeps the rest.
    fn emit(&mut self, safe: usize, out: &mut Vec<u8>) {
        let mut pos = 0;
        for m in self.finder.find_iter(&self.pending) {
            if m.start() >= safe {
                break;
            }
            out.extend_from_slice(&self.pending[pos..m.start()]);
            out.extend_from_slice(&self.marks[m.pattern().as_usize()]);
            pos = m.end();
        }
        let upto = pos.max(safe);
        out.extend_from_slice(&self.pending[pos..upto]);
        self.pending.drain(..upto);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, v)| ((*a).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The stream cut into `chunks`, through a redactor for `pairs`.
    fn through(pairs: &[(&str, &str)], chunks: &[&[u8]]) -> Vec<u8> {
        let mut r = Redactor::new(&secrets(pairs)).expect("a redactor");
        let mut out = Vec::new();
        for c in chunks {
            r.push(c, &mut out);
        }
        r.finish(&mut out);
        out
    }

    /// Every way of cutting `input` in two and in three pieces gives `want`.
    fn every_cut(pairs: &[(&str, &str)], input: &[u8], want: &[u8]) {
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(
                String::from_utf8_lossy(&through(pairs, &[a, b])),
                String::from_utf8_lossy(want),
                "cut at {i}"
            );
            for j in i..=input.len() {
                let (b, c) = input[i..].split_at(j - i);
                assert_eq!(
                    String::from_utf8_lossy(&through(pairs, &[a, b, c])),
                    String::from_utf8_lossy(want),
                    "cut at {i} and {j}"
                );
            }
        }
    }

    #[test]
    fn a_value_split_across_reads_is_still_replaced() {
        let pairs = [("API_KEY", "sk-test-9f8e7d6c5b4a")];
        let mut r = Redactor::new(&secrets(&pairs)).unwrap();
        let mut out = Vec::new();
        r.push(b"key: sk-test-9f", &mut out);
        // what could be the start of the value is held back, the rest is written
        assert_eq!(out, b"key: ");
        assert_eq!(r.held(), "sk-test-9f".len());
        r.push(b"8e7d6c5b4a\nnext", &mut out);
        assert_eq!(out, b"key: [secret:API_KEY]\nnext");
        r.finish(&mut out);
        assert_eq!(out, b"key: [secret:API_KEY]\nnext");

        every_cut(
            &pairs,
            b"a sk-test-9f8e7d6c5b4a b sk-test-9f8e7 sk-test-9f8e7d6c5b4asksk-test-9f8e7d6c5b4a",
            b"a [secret:API_KEY] b sk-test-9f8e7 [secret:API_KEY]sk[secret:API_KEY]",
        );
    }

    #[test]
    fn a_start_of_a_value_left_at_the_end_is_written_as_it_is() {
        let pairs = [("API_KEY", "sk-test-9f8e7d6c5b4a")];
        assert_eq!(
            through(&pairs, &[b"done sk-te", b"st-9f"]),
            b"done sk-test-9f"
        );
    }

    #[test]
    fn output_that_cannot_start_a_value_is_not_held_back() {
        let mut r = Redactor::new(&secrets(&[("K", "sk-test-9f8e7d6c5b4a")])).unwrap();
        let mut out = Vec::new();
        r.push(b"progress 10%\n", &mut out);
        assert_eq!(out, b"progress 10%\n");
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn overlapping_values_prefer_the_longest_match() {
        // one value is a prefix of the other, a third shares the other's end
        let pairs = [("SHORT", "abcd"), ("LONG", "abcdefgh"), ("END", "fghij")];
        every_cut(&pairs, b"abcdefgh", b"[secret:LONG]");
        every_cut(&pairs, b"abcdefg", b"[secret:SHORT]efg");
        every_cut(&pairs, b"xabcdefghij", b"x[secret:LONG]ij");
        every_cut(&pairs, b"abcdfghij", b"[secret:SHORT][secret:END]");
        // a longer value that starts earlier than a shorter one's match
        let pairs = [("INNER", "cd"), ("OUTER", "abcdef")];
        every_cut(&pairs, b"abcdef abcdx", b"[secret:OUTER] ab[secret:INNER]x");
    }

    #[test]
    fn every_non_empty_value_is_redacted_even_a_short_one() {
        let pairs = [("EMPTY", ""), ("ONE", "z"), ("DUP", "z")];
        every_cut(&pairs, b"lazy zoo", b"la[secret:ONE]y [secret:ONE]oo");
        assert!(Redactor::new(&secrets(&[("EMPTY", "")])).is_none());
        assert!(Redactor::new(&[]).is_none());
    }

    #[test]
    fn a_value_is_found_in_its_json_escaped_form_too() {
        let pairs = [("PEM", "line1\nline\"2")];
        every_cut(
            &pairs,
            b"raw line1\nline\"2 json {\"text\":\"line1\\nline\\\"2\"}",
            b"raw [secret:PEM] json {\"text\":\"[secret:PEM]\"}",
        );
    }

    #[test]
    fn without_a_value_in_it_the_stream_passes_unchanged() {
        // arbitrary bytes (not UTF-8), many small reads, some that start a value
        let input: Vec<u8> = (0..5000u32)
            .map(|i| u8::try_from((i * 7919) % 251).unwrap())
            .chain(b"sk-test-9f8e7d6c5b4".iter().copied())
            .collect();
        let pairs = [("API_KEY", "sk-test-9f8e7d6c5b4a")];
        let chunks: Vec<&[u8]> = input.chunks(13).collect();
        assert_eq!(through(&pairs, &chunks), input);
        assert_eq!(through(&pairs, &[&input]), input);
    }
}
