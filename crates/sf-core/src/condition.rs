//! Conditions on event triggers (`--on 'task_completed:{{status}} == closed'`) and on playbook
//! steps (`condition = "{{with_docs}}"`).
//!
//! The grammar is deliberately tiny, and is parsed once (at registration, or when a playbook is
//! loaded) into a tree that is evaluated by a few lines of matching, never by a general-purpose
//! interpreter:
//!
//! ```text
//! condition  := and ( "||" and )*                 `&&` binds tighter than `||`
//! and        := unary ( "&&" unary )*
//! unary      := "!" unary | "(" condition ")" | test
//! test       := var [ ( "==" | "!=" ) value ]
//! var        := "{{" path "}}"                    spaces inside the braces are fine
//! path       := name ( "." name )*                names: letters, digits, `_`, `-`
//! value      := bare word or number | "double" or 'single' quoted string (`\"` `\\` escapes)
//! ```
//!
//! * `{{var}}` is true when the value is present and not `null`, `false`, `0`, `""`, `[]` or
//!   `{}`. `!` negates a test or a parenthesized condition; `!{{a}} == b` is refused as
//!   ambiguous (write `{{a}} != b` or `!({{a}} == b)`).
//! * A dotted path walks into objects (`{{task.priority}}`); a numeric part indexes an array
//!   (`{{tags.0}}`).
//! * `==` and `!=` compare the value's string form (strings as they are, numbers and booleans
//!   as written in JSON, a missing value or `null` as `""`), except that when the value and a
//!   *bare* literal both read as finite numbers they compare as numbers (`{{p}} == 1` matches
//!   `1`, `1.0` and `"1"`). A quoted literal always compares as a string.
//!
//! Size: the lexer, parser, evaluator and their error messages of one small language, with
//! its unit tests in `condition/tests.rs`.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// A malformed condition or trigger, with where the mistake is.
///
/// Its `Display` is the message followed by the text and a caret under the mistake:
///
/// ```text
/// invalid condition at column 12: unknown operator `=`: use `==` to compare (or `!=`)
///   {{status}} = closed
///              ^
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    text: String,
    offset: usize,
    message: String,
    trigger: bool,
}

impl ConditionError {
    fn new(text: &str, offset: usize, message: impl Into<String>) -> Self {
        Self {
            text: text.to_owned(),
            offset: offset.min(text.len()),
            message: message.into(),
            trigger: false,
        }
    }

    /// The text as given (the whole trigger spec for [`parse_trigger`]).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Byte offset of the mistake in [`text`](Self::text).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// 1-based column (in characters) of the mistake.
    pub fn column(&self) -> usize {
        self.text[..self.offset].chars().count() + 1
    }

    /// What is wrong, without position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.trigger { "trigger" } else { "condition" };
        let column = self.column();
        write!(
            f,
            "invalid {what} at column {column}: {}\n  {}\n  {}^",
            self.message,
            self.text,
            " ".repeat(column - 1)
        )
    }
}

impl std::error::Error for ConditionError {}

/// A parsed condition. Its `Display` is the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    text: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Truthy(Vec<String>),
    Compare {
        path: Vec<String>,
        equal: bool,
        value: Literal,
    },
    Not(Box<Self>),
    And(Vec<Self>),
    Or(Vec<Self>),
}

#[derive(Debug, Clone, PartialEq)]
struct Literal {
    text: String,
    quoted: bool,
}

impl Condition {
    /// Parses a condition; the error points at the first mistake.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        let tokens = lex(text).map_err(|(at, msg)| ConditionError::new(text, at, msg))?;
        let mut p = Parser {
            text,
            tokens,
            pos: 0,
        };
        let expr = p.parse_or()?;
        p.expect_end()?;
        Ok(Self {
            text: text.to_owned(),
            expr,
        })
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Evaluates against event data or playbook variables (normally a JSON object).
    pub fn eval(&self, data: &Value) -> bool {
        eval(&self.expr, data)
    }

    /// The dotted paths it mentions, each once, in order of first appearance.
    pub fn vars(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_vars(&self.expr, &mut out);
        out
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Condition {
    type Err = ConditionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Longest event name.
pub const MAX_EVENT_NAME: usize = 64;

/// Checks an event name: 1 to 64 lowercase letters, digits and `_`.
pub fn is_valid_event_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_EVENT_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Parses a trigger spec `EVENT[:CONDITION]` (the argument of `--on`). Offsets in the error are
/// in the whole spec.
pub fn parse_trigger(spec: &str) -> Result<(String, Option<Condition>), ConditionError> {
    let trigger_err = |at: usize, msg: String| ConditionError {
        trigger: true,
        ..ConditionError::new(spec, at, msg)
    };
    let (event_part, rest) = match spec.split_once(':') {
        Some((e, c)) => (e, Some(c)),
        None => (spec, None),
    };
    let event = event_part.trim();
    if event.is_empty() {
        return Err(trigger_err(
            0,
            "missing event name: write EVENT or EVENT:CONDITION (e.g. task_completed)".to_owned(),
        ));
    }
    if !is_valid_event_name(event) {
        let lead = event_part.len() - event_part.trim_start().len();
        let at = event
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .map_or(lead, |(i, _)| lead + i);
        return Err(trigger_err(
            at,
            format!(
                "invalid event name `{event}`: use 1 to {MAX_EVENT_NAME} lowercase letters, digits and `_` (e.g. task_completed)"
            ),
        ));
    }
    let Some(cond) = rest else {
        return Ok((event.to_owned(), None));
    };
    let base = event_part.len() + 1;
    if cond.trim().is_empty() {
        return Err(trigger_err(
            base,
            format!("expected a condition after `:`; leave out the `:` to fire on every {event}"),
        ));
    }
    match Condition::parse(cond) {
        Ok(c) => Ok((event.to_owned(), Some(c))),
        Err(e) => Err(trigger_err(base + e.offset, e.message)),
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Var(Vec<String>),
    Eq,
    Ne,
    Not,
    And,
    Or,
    LParen,
    RParen,
    Word(String),
    Quoted(String),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || "_-./:+@%".contains(c)
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

type LexError = (usize, String);

fn lex(text: &str) -> Result<Vec<Token>, LexError> {
    let mut out = Vec::new();
    let mut it = text.char_indices().peekable();
    while let Some((start, c)) = it.next() {
        if c.is_whitespace() {
            continue;
        }
        let next = it.peek().map(|&(_, n)| n);
        let tok = match (c, next) {
            ('{', Some('{')) => {
                let (path, end) = lex_var(text, start)?;
                while it.peek().is_some_and(|&(i, _)| i < end) {
                    it.next();
                }
                out.push(Token {
                    tok: Tok::Var(path),
                    start,
                    end,
                });
                continue;
            }
            ('=', Some('=')) | ('!', Some('=')) | ('&', Some('&')) | ('|', Some('|')) => {
                it.next();
                let tok = match c {
                    '=' => Tok::Eq,
                    '!' => Tok::Ne,
                    '&' => Tok::And,
                    _ => Tok::Or,
                };
                (tok, 2)
            }
            ('!', _) => (Tok::Not, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('=', _) => {
                return Err((
                    start,
                    "unknown operator `=`: use `==` to compare (or `!=`)".into(),
                ));
            }
            ('&', _) => return Err((start, "unknown operator `&`: use `&&`".into())),
            ('|', _) => return Err((start, "unknown operator `|`: use `||`".into())),
            ('<' | '>' | '~', _) => {
                return Err((
                    start,
                    format!(
                        "unknown operator `{c}`: only `==` and `!=` compare, combined with `&&`, `||` and `!`"
                    ),
                ));
            }
            ('"' | '\'', _) => {
                let mut value = String::new();
                let mut end = None;
                while let Some((i, d)) = it.next() {
                    if d == c {
                        end = Some(i + 1);
                        break;
                    }
                    if d == '\\'
                        && let Some(&(_, e)) = it.peek()
                        && (e == c || e == '\\')
                    {
                        value.push(e);
                        it.next();
                        continue;
                    }
                    value.push(d);
                }
                let Some(end) = end else {
                    return Err((start, format!("unclosed quote: end the value with `{c}`")));
                };
                out.push(Token {
                    tok: Tok::Quoted(value),
                    start,
                    end,
                });
                continue;
            }
            _ if is_word_char(c) => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, d)) = it.peek() {
                    if !is_word_char(d) {
                        break;
                    }
                    end = i + d.len_utf8();
                    it.next();
                }
                out.push(Token {
                    tok: Tok::Word(text[start..end].to_owned()),
                    start,
                    end,
                });
                continue;
            }
            ('{', _) => {
                return Err((
                    start,
                    "unexpected `{`: variables are written {{name}}".to_owned(),
                ));
            }
            _ => return Err((start, format!("unexpected character `{c}`"))),
        };
        out.push(Token {
            tok: tok.0,
            start,
            end: start + tok.1,
        });
    }
    out.push(Token {
        tok: Tok::End,
        start: text.len(),
        end: text.len(),
    });
    Ok(out)
}

/// Lexes `{{ path }}` starting at `start`; returns the path and the end offset.
fn lex_var(text: &str, start: usize) -> Result<(Vec<String>, usize), LexError> {
    let inner_start = start + 2;
    let unclosed = || {
        (
            start,
            "unclosed `{{`: close the variable with `}}`".to_owned(),
        )
    };
    let close = text[inner_start..].find("}}").ok_or_else(unclosed)?;
    let inner = &text[inner_start..inner_start + close];
    if inner.contains("{{") {
        return Err(unclosed());
    }
    let end = inner_start + close + 2;
    let name = inner.trim();
    if name.is_empty() {
        return Err((
            start,
            "empty variable: write a name between `{{` and `}}`".to_owned(),
        ));
    }
    let lead = inner.len() - inner.trim_start().len();
    let name_start = inner_start + lead;
    if let Some((i, c)) = name
        .char_indices()
        .find(|&(_, c)| !(is_name_char(c) || c == '.'))
    {
        return Err((
            name_start + i,
            format!(
                "`{c}` cannot appear in variable name `{name}`: use letters, digits, `_` and `-`, with `.` between parts"
            ),
        ));
    }
    let mut path = Vec::new();
    let mut off = name_start;
    for part in name.split('.') {
        if part.is_empty() {
            return Err((
                off,
                format!("empty part in variable path `{name}`: write parts like `task.priority`"),
            ));
        }
        path.push(part.to_owned());
        off += part.len() + 1;
    }
    Ok((path, end))
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn bump(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if t.tok != Tok::End {
            self.pos += 1;
        }
        t
    }

    fn err(&self, at: usize, msg: impl Into<String>) -> ConditionError {
        ConditionError::new(self.text, at, msg)
    }

    fn describe(&self, t: &Token) -> String {
        match t.tok {
            Tok::End => "the end".to_owned(),
            Tok::Var(_) => self.text[t.start..t.end].to_owned(),
            _ => format!("`{}`", &self.text[t.start..t.end]),
        }
    }

    /// The token before the current one.
    fn prev(&self) -> Option<&Token> {
        self.pos.checked_sub(1).map(|i| &self.tokens[i])
    }

    fn parse_or(&mut self) -> Result<Expr, ConditionError> {
        let mut terms = vec![self.parse_and()?];
        while self.peek().tok == Tok::Or {
            self.bump();
            terms.push(self.parse_and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn parse_and(&mut self) -> Result<Expr, ConditionError> {
        let mut terms = vec![self.parse_unary()?];
        while self.peek().tok == Tok::And {
            self.bump();
            terms.push(self.parse_unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn parse_unary(&mut self) -> Result<Expr, ConditionError> {
        let prev = self.prev().cloned();
        let t = self.bump();
        match t.tok {
            Tok::Not => {
                if let Tok::Var(path) = &self.peek().tok {
                    let path = path.clone();
                    let var = self.bump();
                    let op = self.peek();
                    if matches!(op.tok, Tok::Eq | Tok::Ne) {
                        let name = &self.text[var.start..var.end];
                        return Err(self.err(
                            op.start,
                            format!(
                                "`!` negates a variable, not a comparison: write {name} != value, or !({name} == value)"
                            ),
                        ));
                    }
                    Ok(Expr::Not(Box::new(Expr::Truthy(path))))
                } else {
                    Ok(Expr::Not(Box::new(self.parse_unary()?)))
                }
            }
            Tok::LParen => {
                let inner = self.parse_or()?;
                if self.peek().tok == Tok::RParen {
                    self.bump();
                    return Ok(inner);
                }
                Err(self.unexpected_after(Some(t.start)))
            }
            Tok::Var(path) => {
                let equal = match self.peek().tok {
                    Tok::Eq => true,
                    Tok::Ne => false,
                    _ => return Ok(Expr::Truthy(path)),
                };
                let op = self.bump();
                let op_text = &self.text[op.start..op.end];
                let v = self.bump();
                let value = match v.tok {
                    Tok::Word(w) => Literal {
                        text: w,
                        quoted: false,
                    },
                    Tok::Quoted(q) => Literal {
                        text: q,
                        quoted: true,
                    },
                    Tok::Var(_) => {
                        return Err(self.err(
                            v.start,
                            format!(
                                "expected a value after `{op_text}`, found {}: a variable can only be compared with a literal value",
                                self.describe(&v)
                            ),
                        ));
                    }
                    _ => {
                        return Err(self.err(
                            v.start,
                            format!(
                                "expected a value after `{op_text}`, found {} (quote an empty value: \"\")",
                                self.describe(&v)
                            ),
                        ));
                    }
                };
                Ok(Expr::Compare { path, equal, value })
            }
            Tok::End => Err(self.err(
                t.start,
                match &prev {
                    None => "the condition is empty".to_owned(),
                    Some(p) => format!("expected a condition after {}", self.describe(p)),
                },
            )),
            Tok::Word(_) | Tok::Quoted(_) => Err(self.err(
                t.start,
                format!(
                    "unexpected value {}: a condition starts with a {{{{variable}}}}, `!` or `(`",
                    self.describe(&t)
                ),
            )),
            Tok::Eq | Tok::Ne => Err(self.err(
                t.start,
                format!(
                    "unexpected {}: it goes between a {{{{variable}}}} and a value",
                    self.describe(&t)
                ),
            )),
            Tok::And | Tok::Or | Tok::RParen => Err(self.err(
                t.start,
                match &prev {
                    None => format!(
                        "unexpected {} at the start: expected a condition first",
                        self.describe(&t)
                    ),
                    Some(p) => format!(
                        "expected a condition between {} and {}",
                        self.describe(p),
                        self.describe(&t)
                    ),
                },
            )),
        }
    }

    /// The error for an unexpected token after a complete (sub)condition, which could have
    /// been followed by `closing` (a closing parenthesis) or else the end.
    fn unexpected_after(&self, closing: Option<usize>) -> ConditionError {
        let t = self.peek();
        let prev = self.prev().map_or_else(String::new, |p| self.describe(p));
        let mut ops = if self.prev().is_some_and(|p| matches!(p.tok, Tok::Var(_))) {
            "`==`, `!=`, `&&` or `||`".to_owned()
        } else {
            "`&&` or `||`".to_owned()
        };
        if let Some(open) = closing {
            if t.tok == Tok::End {
                return self.err(open, "unclosed `(`: add a `)` to close it");
            }
            let col = self.text[..open].chars().count() + 1;
            ops = format!("{ops} (or `)` to close the `(` at column {col})");
        }
        self.err(
            t.start,
            format!("expected {ops} after {prev}, found {}", self.describe(t)),
        )
    }

    fn expect_end(&self) -> Result<(), ConditionError> {
        let t = self.peek();
        match t.tok {
            Tok::End => Ok(()),
            Tok::RParen => Err(self.err(t.start, "unmatched `)`: remove it or add a `(`")),
            _ => Err(self.unexpected_after(None)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

fn lookup<'a>(data: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = data;
    for part in path {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// The string form compared by `==` and `!=`.
pub(crate) fn string_form(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn finite(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn equals(v: Option<&Value>, lit: &Literal) -> bool {
    let s = string_form(v);
    if !lit.quoted
        && let (Some(a), Some(b)) = (finite(&s), finite(&lit.text))
    {
        return a == b;
    }
    s == lit.text
}

fn eval(e: &Expr, data: &Value) -> bool {
    match e {
        Expr::Truthy(path) => truthy(lookup(data, path)),
        Expr::Compare { path, equal, value } => equals(lookup(data, path), value) == *equal,
        Expr::Not(inner) => !eval(inner, data),
        Expr::And(terms) => terms.iter().all(|t| eval(t, data)),
        Expr::Or(terms) => terms.iter().any(|t| eval(t, data)),
    }
}

fn collect_vars(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Truthy(path) | Expr::Compare { path, .. } => {
            let joined = path.join(".");
            if !out.contains(&joined) {
                out.push(joined);
            }
        }
        Expr::Not(inner) => collect_vars(inner, out),
        Expr::And(terms) | Expr::Or(terms) => {
            for t in terms {
                collect_vars(t, out);
            }
        }
    }
}

#[cfg(test)]
mod tests;
