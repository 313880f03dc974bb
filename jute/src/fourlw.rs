//! Four-letter words: ZooKeeper's admin commands on the client port.
//!
//! A client sends four ASCII letters (`ruok`, `srvr`, …) instead of a handshake. ZooKeeper's
//! `NIOServerCnxn`/`NettyServerCnxn` read the first 4 bytes of a connection that has not yet
//! handshaken as the frame length, and before any size check compare that int with the known
//! words' codes (`FourLetterCommands.isKnown`); on a match it answers the command in plain text
//! and closes the connection. No real frame collides: a word read as a length is at least
//! 0x63000000 (about 1.6 GB), far above any frame limit. Only the first 4 bytes of a fresh
//! connection are checked; later frames never are.
//!
//! Which words are answered is the server's choice (ZooKeeper's `4lw.commands.whitelist`,
//! `srvr` only by default; `ruok` answers `imok`). This crate only recognises them.

/// Every four-letter word ZooKeeper 3.8 knows (including `hash`, the digest dump).
pub const FOUR_LETTER_WORDS: [&str; 18] = [
    "ruok", "srvr", "stat", "mntr", "cons", "conf", "envi", "wchs", "wchc", "wchp", "dump", "isro",
    "crst", "srst", "dirs", "gtmk", "stmk", "hash",
];

/// The command spelled by the first 4 bytes of a fresh connection, if they spell one.
pub fn four_letter_word(first4: [u8; 4]) -> Option<&'static str> {
    FOUR_LETTER_WORDS
        .iter()
        .copied()
        .find(|w| w.as_bytes() == first4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_word_and_nothing_else() {
        for w in FOUR_LETTER_WORDS {
            let b: [u8; 4] = w.as_bytes().try_into().unwrap();
            assert_eq!(four_letter_word(b), Some(w));
        }
        assert_eq!(four_letter_word(*b"RUOK"), None);
        assert_eq!(four_letter_word(*b"ruo\0"), None);
        // A ConnectRequest frame starts with a small length, never a word.
        assert_eq!(four_letter_word([0, 0, 0, 45]), None);
    }

    #[test]
    fn words_as_lengths_are_huge() {
        for w in FOUR_LETTER_WORDS {
            let b: [u8; 4] = w.as_bytes().try_into().unwrap();
            assert!(i32::from_be_bytes(b) > 0x6000_0000, "{w}");
        }
    }
}
