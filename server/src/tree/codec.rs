//! The compact binary encoding shared by txns and snapshots.
//!
//! Integers are LEB128 varints (signed ones zigzag-encoded), byte strings are a
//! varint length followed by the bytes. Txns and snapshots are mostly small
//! numbers (versions, child counts, zxids of one epoch), so varints halve their
//! size compared with fixed-width fields, which is what keeps a snapshot well
//! under ZooKeeper's per-znode overhead.
//!
//! The reader never trusts a length: every read is bounds-checked against the
//! remaining input and a count can never make it allocate more than the input
//! could hold, so garbage returns [`DecodeError`], never a panic or an
//! out-of-memory abort.

use crate::request::Acl;

/// Bytes that are not a valid txn or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("input ends inside a value")]
    Truncated,
    #[error("varint longer than 64 bits")]
    VarintOverflow,
    #[error("invalid value: {0}")]
    Invalid(&'static str),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    #[error("checksum mismatch")]
    Checksum,
}

/// Appends encoded values to a byte vector.
pub(crate) struct Writer<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }

    pub(crate) fn u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.u64(((v << 1) ^ (v >> 63)) as u64);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.i64(v as i64);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.out.extend_from_slice(b);
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub(crate) fn acl(&mut self, acl: &[Acl]) {
        self.u64(acl.len() as u64);
        for a in acl {
            self.i32(a.perms);
            self.str(&a.scheme);
            self.str(&a.id);
        }
    }
}

/// Reads encoded values from a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing(self.buf.len()))
        }
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
            self.buf = rest;
            if i == 9 && b > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        let u = self.u64()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        i32::try_from(self.i64()?).map_err(|_| DecodeError::Invalid("i32 out of range"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    /// A count of items that each take at least `min_item_bytes` bytes, checked
    /// against the remaining input so it can size an allocation safely.
    pub(crate) fn count(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        let max = (self.buf.len() / min_item_bytes.max(1)) as u64;
        if n > max {
            return Err(DecodeError::Truncated);
        }
        Ok(n as usize)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u64()?;
        if n > self.buf.len() as u64 {
            return Err(DecodeError::Truncated);
        }
        let (b, rest) = self.buf.split_at(n as usize);
        self.buf = rest;
        Ok(b)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::Invalid("string is not UTF-8"))
    }

    pub(crate) fn acl(&mut self) -> Result<Vec<Acl>, DecodeError> {
        let n = self.count(3)?;
        let mut acl = Vec::with_capacity(n);
        for _ in 0..n {
            let perms = self.i32()?;
            let scheme = self.str()?.to_string();
            let id = self.str()?.to_string();
            acl.push(Acl { perms, scheme, id });
        }
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        let values = [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ];
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        for v in values {
            w.i64(v);
            w.u64(v as u64);
        }
        let mut r = Reader::new(&out);
        for v in values {
            assert_eq!(r.i64().unwrap(), v);
            assert_eq!(r.u64().unwrap(), v as u64);
        }
        r.finish().unwrap();
    }

    #[test]
    fn small_numbers_take_one_byte() {
        let mut out = Vec::new();
        Writer::new(&mut out).i64(-3);
        Writer::new(&mut out).u64(100);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn overlong_and_truncated_input_is_refused() {
        assert_eq!(
            Reader::new(&[0xff; 11]).u64(),
            Err(DecodeError::VarintOverflow)
        );
        assert_eq!(Reader::new(&[0x80]).u64(), Err(DecodeError::Truncated));
        // A length larger than the input.
        assert_eq!(Reader::new(&[5, 1, 2]).bytes(), Err(DecodeError::Truncated));
        // A count that would allocate more items than the input could hold.
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0x03, 0]).count(1),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            Reader::new(&[1, 0xff]).str(),
            Err(DecodeError::Invalid("string is not UTF-8"))
        );
    }
}
