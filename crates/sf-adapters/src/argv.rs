//! Splitting a configured command line into words, without a shell.

use super::AdapterError;

/// Splits a command line into words.
///
/// Words are separated by whitespace. Inside single quotes every character is literal. Inside
/// double quotes a backslash escapes `"` and `\` only. Outside quotes a backslash escapes any
/// character. Quotes join with adjacent text (`a"b c"` is one word `ab c`), and `''` is an empty
/// word. Nothing else is special: `$`, `~`, `*`, `;`, `|` and `$()` stay as they are, because no
/// shell ever sees the result.
pub fn split_command(command: &str) -> Result<Vec<String>, AdapterError> {
    let bad = |reason| AdapterError::BadCommand {
        command: command.to_owned(),
        reason,
    };
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(bad("unterminated single quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(bad("unterminated double quote")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(bad("unterminated double quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(bad("trailing backslash")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(bad("no program"));
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_command(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(split("  a  b\tc "), ["a", "b", "c"]);
        assert_eq!(
            split(r#"'/opt/my agent/run' --flag "x y""#),
            ["/opt/my agent/run", "--flag", "x y"]
        );
        assert_eq!(split(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(split(r#"say "a \"q\" \\ \n""#), ["say", r#"a "q" \ \n"#]);
        assert_eq!(split(r"a\ b \'"), ["a b", "'"]);
        assert_eq!(split("x '' y"), ["x", "", "y"]);
    }

    #[test]
    fn nothing_is_expanded() {
        assert_eq!(
            split("echo $HOME ~ * $(rm -rf /) ; |"),
            ["echo", "$HOME", "~", "*", "$(rm", "-rf", "/)", ";", "|"]
        );
        assert_eq!(split("sh -c 'echo $(id)'"), ["sh", "-c", "echo $(id)"]);
    }

    #[test]
    fn errors() {
        for bad in ["", "   ", "'open", "\"open", "end\\", "\"a\\"] {
            assert!(split_command(bad).is_err(), "{bad:?} should fail");
        }
    }
}
