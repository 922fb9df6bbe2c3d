//! The `sfctl` commands quoted in the docs, checked against this binary's clap tree:
//! unknown subcommands and flags, flags missing their value, with suggestions.

use super::kind::ProblemKind;

/// The command in a code line or span if it is an `sfctl` one (`sfctl …` or `$ sfctl …`).
pub(super) fn sfctl_command(text: &str) -> Option<&str> {
    let t = text.trim();
    let t = t.strip_prefix("$ ").map_or(t, str::trim_start);
    (t == "sfctl" || t.starts_with("sfctl ")).then_some(t)
}

/// A problem with one `sfctl` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Issue {
    pub(super) kind: ProblemKind,
    /// The command the word was given to, e.g. `sfctl task list`.
    command: String,
    /// The unknown subcommand or flag.
    word: String,
}

impl Issue {
    pub(super) fn detail(&self) -> String {
        match self.kind {
            ProblemKind::UnknownFlag => format!("`{}` has no flag `{}`", self.command, self.word),
            _ => format!("`{}` has no subcommand `{}`", self.command, self.word),
        }
    }
}

/// Checks `line` (starting with `sfctl`) against the clap tree `root`.
pub(super) fn check_command(root: &clap::Command, line: &str) -> Vec<Issue> {
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
pub(super) fn shell_words(line: &str) -> Vec<String> {
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
