//! Length-prefixed prost frames with a size limit, as a tokio-util codec.
//!
//! Each frame is a 4-byte big-endian length and one encoded message. A frame over
//! the limit is an error the caller answers by closing the connection: its bytes
//! cannot be skipped safely without trusting the peer.

use bytes::{Buf, BufMut, BytesMut};
use std::marker::PhantomData;
use tokio_util::codec::{Decoder, Encoder};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(#[from] prost::DecodeError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Decodes `D` and encodes `E`, each in a length-prefixed frame of at most `max` bytes.
pub struct Codec<D, E> {
    max: usize,
    _types: PhantomData<fn(E) -> D>,
}

impl<D, E> Codec<D, E> {
    pub fn new(max: usize) -> Self {
        Codec {
            max,
            _types: PhantomData,
        }
    }
}

impl<D: prost::Message + Default, E> Decoder for Codec<D, E> {
    type Item = D;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<D>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let body = src.split_to(len).freeze();
        Ok(Some(D::decode(body)?))
    }
}

impl<D, E: prost::Message> Encoder<E> for Codec<D, E> {
    type Error = FrameError;

    fn encode(&mut self, item: E, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = item.encoded_len();
        dst.reserve(4 + len);
        dst.put_u32(len as u32);
        item.encode(dst)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    type C = Codec<wire::ClientFrame, wire::ClientFrame>;

    fn frame(xid: i32) -> wire::ClientFrame {
        wire::ClientFrame {
            kind: Some(wire::client_frame::Kind::Request(wire::Request {
                xid,
                consistency: 0,
                op: Some(wire::request::Op::Ping(wire::Empty {})),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn round_trip_split_anywhere() {
        let mut buf = BytesMut::new();
        let mut c = C::new(1024);
        c.encode(frame(7), &mut buf).unwrap();
        c.encode(frame(8), &mut buf).unwrap();
        let all = buf.freeze();
        for cut in 0..all.len() {
            let mut src = BytesMut::from(&all[..cut]);
            let mut got = vec![];
            while let Some(f) = c.decode(&mut src).unwrap() {
                got.push(f);
            }
            src.extend_from_slice(&all[cut..]);
            while let Some(f) = c.decode(&mut src).unwrap() {
                got.push(f);
            }
            assert_eq!(got, vec![frame(7), frame(8)]);
        }
    }

    #[test]
    fn oversized_and_malformed_are_errors() {
        let mut c = C::new(16);
        let mut src = BytesMut::from(&[0u8, 0, 1, 0][..]);
        assert!(matches!(
            c.decode(&mut src),
            Err(FrameError::TooLarge { len: 256, max: 16 })
        ));
        let mut src = BytesMut::from(&[0u8, 0, 0, 3, 0xff, 0xff, 0xff][..]);
        assert!(matches!(c.decode(&mut src), Err(FrameError::Malformed(_))));
    }
}
