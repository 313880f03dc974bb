//! Data arguments: text, `@file`, or `0x` hex.
//!
//! Only an unquoted word is a literal: `@path` reads the file's bytes (when the command
//! runs, not when it is parsed) and `0x4142` decodes hex (an even number of digits;
//! `0x` alone is empty data). Anything quoted is taken as its UTF-8 text, so `'@x'`
//! stores the two characters `@x`.

use crate::error::ShellError;
use crate::script::Word;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataArg {
    Bytes(Vec<u8>),
    File(String),
}

impl DataArg {
    pub fn empty() -> DataArg {
        DataArg::Bytes(Vec::new())
    }

    pub fn parse(word: &Word) -> Result<DataArg, ShellError> {
        if word.quoted {
            return Ok(DataArg::Bytes(word.text.as_bytes().to_vec()));
        }
        if let Some(file) = word.text.strip_prefix('@') {
            if file.is_empty() {
                return Err(ShellError::Usage("@ needs a file name".into()));
            }
            return Ok(DataArg::File(file.to_string()));
        }
        if let Some(hex) = word
            .text
            .strip_prefix("0x")
            .or_else(|| word.text.strip_prefix("0X"))
        {
            return decode_hex(hex).map(DataArg::Bytes);
        }
        Ok(DataArg::Bytes(word.text.as_bytes().to_vec()))
    }

    /// The bytes to send (reads the file for `@file`).
    pub fn load(&self) -> Result<Vec<u8>, ShellError> {
        match self {
            DataArg::Bytes(b) => Ok(b.clone()),
            DataArg::File(f) => {
                std::fs::read(f).map_err(|e| ShellError::Io(format!("cannot read {f}: {e}")))
            }
        }
    }
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, ShellError> {
    let bad = || ShellError::Usage(format!("invalid hex data: 0x{hex}"));
    if hex.len() & 1 == 1 {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// Lower-case hex of some bytes (for JSON output).
pub fn to_hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Word {
        Word {
            text: text.into(),
            quoted: true,
        }
    }

    #[test]
    fn text_hex_and_file_literals() {
        assert_eq!(
            DataArg::parse(&Word::plain("hello")).unwrap(),
            DataArg::Bytes(b"hello".to_vec())
        );
        assert_eq!(
            DataArg::parse(&Word::plain("0x00ff41")).unwrap(),
            DataArg::Bytes(vec![0, 255, 0x41])
        );
        assert_eq!(
            DataArg::parse(&Word::plain("0XAb")).unwrap(),
            DataArg::Bytes(vec![0xab])
        );
        assert_eq!(
            DataArg::parse(&Word::plain("0x")).unwrap(),
            DataArg::Bytes(vec![])
        );
        assert_eq!(
            DataArg::parse(&Word::plain("@/tmp/f")).unwrap(),
            DataArg::File("/tmp/f".into())
        );
    }

    #[test]
    fn quoted_words_are_always_text() {
        assert_eq!(
            DataArg::parse(&q("0x41")).unwrap(),
            DataArg::Bytes(b"0x41".to_vec())
        );
        assert_eq!(
            DataArg::parse(&q("@f")).unwrap(),
            DataArg::Bytes(b"@f".to_vec())
        );
    }

    #[test]
    fn bad_hex_is_a_usage_error() {
        for bad in ["0x1", "0xzz", "0x12g4", "0xé1"] {
            assert!(
                matches!(DataArg::parse(&Word::plain(bad)), Err(ShellError::Usage(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            DataArg::parse(&Word::plain("@")),
            Err(ShellError::Usage(_))
        ));
    }

    #[test]
    fn file_is_read_when_loaded() {
        let dir = std::env::temp_dir().join(format!("zk-shell-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("blob");
        std::fs::write(&f, [1u8, 2, 3, 0]).unwrap();
        let arg = DataArg::parse(&Word::plain(&format!("@{}", f.display()))).unwrap();
        assert_eq!(arg.load().unwrap(), vec![1, 2, 3, 0]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(arg.load(), Err(ShellError::Io(_))));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(to_hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
