//! A tokio-util codec for ZooKeeper connections (feature `codec`, on by default).
//!
//! [`FrameCodec`] splits the byte stream into length-prefixed frames and hands each payload
//! over undecoded: what a payload means depends on the connection's state (the first one is a
//! `ConnectRequest` or `ConnectResponse`, later ones a request or a reply), which the connection
//! handler knows and the codec does not. Decode payloads with [`crate::ConnectRequest`],
//! [`crate::decode_request_payload`] or [`crate::decode_reply`].
//!
//! On the server side ([`FrameCodec::server`]) the first 4 bytes of the connection are first
//! checked for a four-letter word, as ZooKeeper does; a match yields
//! [`Inbound::FourLetterWord`] and the handler should answer in text and close. (`stmk` is
//! followed by an 8-byte trace mask, which would then be read as the start of a frame; a server
//! that supports `stmk` must read it itself.)
//!
//! Encoding is a pass-through: [`crate::encode_request`], [`crate::encode_response`] and the
//! connect encoders already return whole frames, length included.

use crate::{four_letter_word, frame_len, JuteError};
use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// One unit read from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A frame's payload (without its length).
    Frame(BytesMut),
    /// The connection opened with this four-letter word instead of a frame.
    FourLetterWord(&'static str),
}

/// Length-prefixed framing with a size limit and optional four-letter-word detection.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max: usize,
    /// Still before the first frame, and four-letter words are recognised.
    detect_four_letter_word: bool,
}

impl FrameCodec {
    /// For a server's client connection: recognises a four-letter word in the first 4 bytes.
    /// `max` is the largest payload accepted (ZooKeeper: [`crate::ZK_MAX_BUFFER`]).
    pub fn server(max: usize) -> Self {
        FrameCodec {
            max,
            detect_four_letter_word: true,
        }
    }

    /// For a client's connection to a server: frames only.
    pub fn client(max: usize) -> Self {
        FrameCodec {
            max,
            detect_four_letter_word: false,
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Inbound;
    type Error = JuteError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, JuteError> {
        let Some(first4) = src.first_chunk::<4>().copied() else {
            return Ok(None);
        };
        if std::mem::take(&mut self.detect_four_letter_word) {
            if let Some(word) = four_letter_word(first4) {
                src.advance(4);
                return Ok(Some(Inbound::FourLetterWord(word)));
            }
        }
        let len = frame_len(first4, self.max)?;
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(Inbound::Frame(src.split_to(len))))
    }
}

/// Writes a frame produced by this crate's `encode_*` functions (length prefix included).
impl Encoder<Vec<u8>> for FrameCodec {
    type Error = JuteError;

    fn encode(&mut self, item: Vec<u8>, dst: &mut BytesMut) -> Result<(), JuteError> {
        debug_assert!(
            item.len() >= 4
                && u32::from_be_bytes([item[0], item[1], item[2], item[3]]) as usize
                    == item.len() - 4,
            "FrameCodec::encode expects a whole frame from an encode_* function"
        );
        dst.extend_from_slice(&item);
        Ok(())
    }
}

impl From<std::io::Error> for JuteError {
    fn from(e: std::io::Error) -> Self {
        JuteError::Io {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    #[test]
    fn frames_arrive_byte_by_byte() {
        let req = Request::Sync(SyncRequest { path: "/a".into() });
        let mut stream = encode_connect_request(&ConnectRequest::default());
        stream.extend(encode_request(1, &req));
        let mut codec = FrameCodec::server(ZK_MAX_BUFFER);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in stream {
            buf.extend_from_slice(&[b]);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                out.push(item);
            }
        }
        assert_eq!(out.len(), 2);
        let Inbound::Frame(connect) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            ConnectRequest::from_bytes(connect).unwrap(),
            ConnectRequest::default()
        );
        let Inbound::Frame(payload) = &out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(decode_request_payload(payload).unwrap().1, req);
        assert!(buf.is_empty());
    }

    #[test]
    fn four_letter_word_only_at_the_start_of_a_server_connection() {
        let mut codec = FrameCodec::server(ZK_MAX_BUFFER);
        let mut buf = BytesMut::from(&b"ruok"[..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(Inbound::FourLetterWord("ruok"))
        );
        assert!(buf.is_empty());
        // Later, the same bytes are a (far too large) length.
        let mut buf = BytesMut::from(&b"ruok"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(JuteError::FrameTooLarge { .. })
        ));
        // A client codec never treats them as a word.
        let mut buf = BytesMut::from(&b"srvr"[..]);
        assert!(matches!(
            FrameCodec::client(ZK_MAX_BUFFER).decode(&mut buf),
            Err(JuteError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn a_normal_first_frame_turns_detection_off() {
        let mut codec = FrameCodec::server(64);
        let mut buf = BytesMut::from(&[0, 0, 0, 1, 7][..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(Inbound::Frame(BytesMut::from(&[7][..])))
        );
        let mut buf = BytesMut::from(&b"ruok"[..]);
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn oversized_and_negative_lengths_are_errors() {
        let mut codec = FrameCodec::client(16);
        assert_eq!(
            codec.decode(&mut BytesMut::from(&[0, 0, 0, 17][..])),
            Err(JuteError::FrameTooLarge { len: 17, max: 16 })
        );
        assert!(matches!(
            codec.decode(&mut BytesMut::from(&[0xff, 0xf4, 0xff, 0xfd][..])),
            Err(JuteError::InvalidLength { .. })
        ));
    }

    #[test]
    fn encoder_passes_frames_through() {
        let frame = encode_request(PING_XID, &Request::Ping);
        let mut dst = BytesMut::new();
        FrameCodec::client(64)
            .encode(frame.clone(), &mut dst)
            .unwrap();
        assert_eq!(&dst[..], &frame[..]);
    }
}
