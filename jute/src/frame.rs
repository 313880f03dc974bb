//! Length-prefixed framing: every packet in either direction, the handshake included, is a
//! 4-byte big-endian length followed by that many bytes.
//!
//! ZooKeeper closes the connection when a length is negative or over `jute.maxbuffer`
//! (0xfffff bytes by default, [`ZK_MAX_BUFFER`]) rather than answering with an error; a server
//! using [`frame()`] should do the same on `Err`. The first 4 bytes of a fresh connection may
//! instead be a four-letter word (see [`crate::four_letter_word`]); check that before calling
//! [`frame()`], since such a word read as a length is a large positive number (`ruok` is
//! 0x72756f6b) that would fail the size check.

use crate::JuteError;

/// ZooKeeper's default `jute.maxbuffer`: the largest packet a server accepts.
pub const ZK_MAX_BUFFER: usize = 0xfffff;

/// Reads the frame length from the first 4 bytes, checking it against `max`.
pub fn frame_len(first4: [u8; 4], max: usize) -> Result<usize, JuteError> {
    let len = i32::from_be_bytes(first4);
    if len < 0 {
        return Err(JuteError::InvalidLength { offset: 0, len });
    }
    let len = len as usize;
    if len > max {
        return Err(JuteError::FrameTooLarge { len, max });
    }
    Ok(len)
}

/// If `buf` starts with a complete frame, returns its payload (the bytes after the length; the
/// frame occupies `4 + payload.len()` bytes of `buf`). `Ok(None)` means more bytes are needed;
/// `Err` means the length is negative or over `max` and the connection should be closed.
pub fn frame(buf: &[u8], max: usize) -> Result<Option<&[u8]>, JuteError> {
    let Some(first4) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = frame_len(*first4, max)?;
    Ok(buf.get(4..4 + len))
}

/// Prefixes `payload` with its length.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame over 4 GiB");
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_complete_frames_and_waits_for_partial_ones() {
        let buf = [0, 0, 0, 2, 0xaa, 0xbb, 0, 0, 0];
        assert_eq!(frame(&buf, 16), Ok(Some(&[0xaa, 0xbb][..])));
        assert_eq!(frame(&buf[..5], 16), Ok(None));
        assert_eq!(frame(&buf[..3], 16), Ok(None));
        assert_eq!(frame(&buf[6..], 16), Ok(None));
        assert_eq!(frame(&[0, 0, 0, 0], 16), Ok(Some(&[][..])));
    }

    #[test]
    fn rejects_negative_and_oversized_lengths() {
        assert_eq!(
            frame(&[0xff, 0xff, 0xff, 0xff], 16),
            Err(JuteError::InvalidLength { offset: 0, len: -1 })
        );
        assert_eq!(
            frame(&[0, 0, 0, 17], 16),
            Err(JuteError::FrameTooLarge { len: 17, max: 16 })
        );
        assert_eq!(
            frame(b"ruok", ZK_MAX_BUFFER),
            Err(JuteError::FrameTooLarge {
                len: 0x7275_6f6b,
                max: ZK_MAX_BUFFER
            })
        );
    }

    #[test]
    fn encode_frame_round_trips() {
        let f = encode_frame(b"abc");
        assert_eq!(f, [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(frame(&f, 3), Ok(Some(&b"abc"[..])));
    }
}
