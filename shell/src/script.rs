//! Splitting a script into commands and words.
//!
//! The syntax is a small subset of POSIX sh, enough to pass any bytes as data:
//!
//! * commands end at `;` or at a newline;
//! * words are separated by spaces or tabs;
//! * `'...'` is literal; inside `"..."` a backslash escapes `"`, `\`, and makes `\n`, `\t`
//!   a newline and a tab (other backslashes stay as they are); outside quotes a backslash
//!   takes the next character literally (`\;`, `\ `);
//! * an unquoted `#` at the start of a word begins a comment that runs to the end of the
//!   line; blank commands are dropped.
//!
//! Each word remembers whether any part of it was quoted, so `'@file'` and `'0x41'` are
//! plain text while unquoted `@file` and `0x41` are data literals (see `data.rs`).

use crate::error::ShellError;

/// One word of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// Some part of the word was inside quotes or escaped: never a flag or a data literal.
    pub quoted: bool,
}

impl Word {
    pub fn plain(text: &str) -> Word {
        Word {
            text: text.to_string(),
            quoted: false,
        }
    }
}

/// One command as written: its words, and its source text for messages and JSON output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    pub words: Vec<Word>,
    pub source: String,
}

/// Splits a whole script into commands. Fails on an unterminated quote.
pub fn split(script: &str) -> Result<Vec<RawCommand>, ShellError> {
    let mut commands = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut start = 0usize; // byte offset where the current command's text begins
    let mut chars = script.char_indices().peekable();

    fn end_word(words: &mut Vec<Word>, cur: &mut String, in_word: &mut bool, quoted: &mut bool) {
        if *in_word {
            words.push(Word {
                text: std::mem::take(cur),
                quoted: *quoted,
            });
        }
        *in_word = false;
        *quoted = false;
    }

    let end_command = |commands: &mut Vec<RawCommand>, words: &mut Vec<Word>, src: &str| {
        if !words.is_empty() {
            commands.push(RawCommand {
                words: std::mem::take(words),
                source: src.trim().to_string(),
            });
        }
    };

    while let Some((i, c)) = chars.next() {
        match c {
            ';' | '\n' => {
                end_word(&mut words, &mut cur, &mut in_word, &mut quoted);
                end_command(&mut commands, &mut words, &script[start..i]);
                start = i + 1;
            }
            ' ' | '\t' | '\r' => end_word(&mut words, &mut cur, &mut in_word, &mut quoted),
            '#' if !in_word => {
                // Comment to the end of the line; the newline itself still ends the command.
                let src_end = i;
                while let Some(&(_, n)) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                }
                end_command(&mut commands, &mut words, &script[start..src_end]);
                start = chars.peek().map(|&(j, _)| j).unwrap_or(script.len());
            }
            '\'' => {
                in_word = true;
                quoted = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, ch)) => cur.push(ch),
                        None => {
                            return Err(ShellError::Usage(format!(
                                "unterminated ' quote in: {}",
                                script[start..].trim()
                            )))
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                quoted = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '"')) => cur.push('"'),
                            Some((_, '\\')) => cur.push('\\'),
                            Some((_, 'n')) => cur.push('\n'),
                            Some((_, 't')) => cur.push('\t'),
                            Some((_, other)) => {
                                cur.push('\\');
                                cur.push(other);
                            }
                            None => break,
                        },
                        Some((_, ch)) => cur.push(ch),
                        None => {
                            return Err(ShellError::Usage(format!(
                                "unterminated \" quote in: {}",
                                script[start..].trim()
                            )))
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                quoted = true;
                match chars.next() {
                    Some((_, ch)) => cur.push(ch),
                    None => cur.push('\\'),
                }
            }
            other => {
                in_word = true;
                cur.push(other);
            }
        }
    }
    end_word(&mut words, &mut cur, &mut in_word, &mut quoted);
    end_command(&mut commands, &mut words, &script[start..]);
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str) -> Vec<Vec<String>> {
        split(script)
            .unwrap()
            .into_iter()
            .map(|c| c.words.into_iter().map(|w| w.text).collect())
            .collect()
    }

    #[test]
    fn semicolons_and_newlines_separate_commands() {
        assert_eq!(
            texts("create /a x; get /a\nls /"),
            vec![
                vec!["create", "/a", "x"],
                vec!["get", "/a"],
                vec!["ls", "/"]
            ]
        );
    }

    #[test]
    fn blank_commands_and_comments_are_dropped() {
        assert_eq!(
            texts("\n  ;;\n# a comment; still comment\nget /a # trailing\n\t\n"),
            vec![vec!["get", "/a"]]
        );
    }

    #[test]
    fn quotes_keep_spaces_and_semicolons() {
        assert_eq!(
            texts(r#"set /a 'x; y'; set /b "p \"q\" \\ \n" ; set /c a'b c'd"#),
            vec![
                vec!["set", "/a", "x; y"],
                vec!["set", "/b", "p \"q\" \\ \n"],
                vec!["set", "/c", "ab cd"]
            ]
        );
    }

    #[test]
    fn empty_quotes_make_an_empty_word() {
        let cmds = split("create /a ''").unwrap();
        assert_eq!(cmds[0].words.len(), 3);
        assert_eq!(
            cmds[0].words[2],
            Word {
                text: String::new(),
                quoted: true
            }
        );
    }

    #[test]
    fn quoted_and_escaped_words_are_marked() {
        let cmds = split(r"x '0x41' 0x41 \@f # not-a-word").unwrap();
        let quoted: Vec<bool> = cmds[0].words.iter().map(|w| w.quoted).collect();
        assert_eq!(quoted, vec![false, true, false, true]);
        assert_eq!(cmds[0].words[3].text, "@f");
    }

    #[test]
    fn hash_inside_a_word_is_not_a_comment() {
        assert_eq!(texts("set /a x#y"), vec![vec!["set", "/a", "x#y"]]);
    }

    #[test]
    fn unterminated_quote_is_a_usage_error() {
        assert!(matches!(split("set /a 'oops"), Err(ShellError::Usage(_))));
        assert!(matches!(split("set /a \"oops"), Err(ShellError::Usage(_))));
    }

    #[test]
    fn source_text_is_kept_per_command() {
        let cmds = split(" create /a x ;get /a").unwrap();
        assert_eq!(cmds[0].source, "create /a x");
        assert_eq!(cmds[1].source, "get /a");
    }
}
