//! Jute's binary primitives: the [`Reader`] and [`Writer`] every record is built on.
//!
//! Jute (ZooKeeper's `BinaryInputArchive` / `BinaryOutputArchive`) has five shapes:
//!
//! | jute       | bytes                                                    |
//! |------------|----------------------------------------------------------|
//! | `int`      | 4 bytes, big-endian two's complement                     |
//! | `long`     | 8 bytes, big-endian two's complement                     |
//! | `boolean`  | 1 byte; ZooKeeper writes 0 or 1 and reads any non-zero as true |
//! | `buffer`   | `int` length (-1 = null) then that many bytes            |
//! | `ustring`  | like `buffer`, the bytes being UTF-8                     |
//! | `vector<T>`| `int` count (-1 = null) then the elements                |
//!
//! Records are their fields in declaration order, with no tag, padding or length of their own.
//!
//! # Null
//! Jute distinguishes a null buffer/string/vector (length -1) from an empty one. This crate maps
//! null to empty on decode (ZooKeeper's own clients treat both alike for every field the client
//! protocol uses) and always writes the empty form; a round trip of a null therefore yields
//! length 0, which is the only place where decode-then-encode is not byte-identical.
//!
//! # Hostile input
//! The [`Reader`] is fed bytes from the network. It never panics and never allocates more than
//! the input it was given: every length is checked against the bytes that remain *before*
//! anything is allocated, and a vector's count is checked against the smallest possible size of
//! its elements times the count. Lengths below -1 are [`JuteError::InvalidLength`]; lengths past
//! the end are [`JuteError::Truncated`].

use crate::JuteError;

/// A cursor over one encoded message. All reads are bounds-checked.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The unconsumed bytes.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// True once every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails with [`JuteError::TrailingBytes`] unless every byte has been consumed.
    pub fn finish(&self) -> Result<(), JuteError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(JuteError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], JuteError> {
        if n > self.remaining() {
            return Err(JuteError::Truncated {
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], JuteError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// jute `int`.
    pub fn read_int(&mut self) -> Result<i32, JuteError> {
        Ok(i32::from_be_bytes(self.take_array()?))
    }

    /// jute `long`.
    pub fn read_long(&mut self) -> Result<i64, JuteError> {
        Ok(i64::from_be_bytes(self.take_array()?))
    }

    /// jute `boolean`: any non-zero byte is true, as in Java's `DataInput.readBoolean`.
    pub fn read_bool(&mut self) -> Result<bool, JuteError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// Reads a length (or count) prefix: `None` for null (-1), an error below -1.
    fn read_len(&mut self) -> Result<Option<usize>, JuteError> {
        let offset = self.pos;
        let len = self.read_int()?;
        match len {
            -1 => Ok(None),
            l if l < 0 => Err(JuteError::InvalidLength { offset, len }),
            l => Ok(Some(l as usize)),
        }
    }

    /// jute `buffer`, borrowed. Null reads as empty.
    pub fn read_buffer_ref(&mut self) -> Result<&'a [u8], JuteError> {
        match self.read_len()? {
            None => Ok(&[]),
            Some(n) => self.take(n),
        }
    }

    /// jute `buffer`. Null reads as empty.
    pub fn read_buffer(&mut self) -> Result<Vec<u8>, JuteError> {
        Ok(self.read_buffer_ref()?.to_vec())
    }

    /// jute `ustring`. Null reads as empty; invalid UTF-8 is an error (ZooKeeper would
    /// silently substitute U+FFFD, which would make a path mean something the client did not send).
    pub fn read_ustring(&mut self) -> Result<String, JuteError> {
        let offset = self.pos;
        let bytes = self.read_buffer_ref()?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(JuteError::InvalidUtf8 { offset }),
        }
    }

    /// jute `vector<T>`, each element read by `elem`. `min_elem_size` is the fewest bytes one
    /// element can take (4 for a `ustring`); a count that cannot fit in the remaining bytes is
    /// rejected before any allocation. Null reads as empty.
    pub fn read_vec<T>(
        &mut self,
        min_elem_size: usize,
        mut elem: impl FnMut(&mut Self) -> Result<T, JuteError>,
    ) -> Result<Vec<T>, JuteError> {
        let offset = self.pos;
        let Some(count) = self.read_len()? else {
            return Ok(Vec::new());
        };
        let needed = count.saturating_mul(min_elem_size.max(1));
        if needed > self.remaining() {
            return Err(JuteError::Truncated {
                offset,
                needed,
                available: self.remaining(),
            });
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(elem(self)?);
        }
        Ok(out)
    }

    /// jute `vector<ustring>`.
    pub fn read_string_vec(&mut self) -> Result<Vec<String>, JuteError> {
        self.read_vec(4, Self::read_ustring)
    }
}

/// Appends jute primitives to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }

    /// A writer whose first 4 bytes are a placeholder for a frame length, filled in by
    /// [`Writer::into_frame`].
    pub fn for_frame() -> Self {
        Writer { buf: vec![0; 4] }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes written.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// For a writer made by [`Writer::for_frame`]: fills the leading length with the number of
    /// bytes after it and returns the whole frame.
    pub fn into_frame(mut self) -> Vec<u8> {
        debug_assert!(
            self.buf.len() >= 4,
            "into_frame on a writer not made by for_frame"
        );
        let len = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }

    /// jute `int`.
    pub fn write_int(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// jute `long`.
    pub fn write_long(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// jute `boolean` (0 or 1).
    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    /// jute `buffer` (never null).
    pub fn write_buffer(&mut self, v: &[u8]) {
        self.write_len(v.len());
        self.buf.extend_from_slice(v);
    }

    /// jute `ustring` (never null).
    pub fn write_ustring(&mut self, v: &str) {
        self.write_buffer(v.as_bytes());
    }

    /// jute `vector<T>` (never null), each element written by `elem`.
    pub fn write_vec<T>(&mut self, v: &[T], mut elem: impl FnMut(&mut Self, &T)) {
        self.write_len(v.len());
        for e in v {
            elem(self, e);
        }
    }

    /// jute `vector<ustring>`.
    pub fn write_string_vec(&mut self, v: &[String]) {
        self.write_vec(v, |w, s| w.write_ustring(s));
    }

    /// jute `null` buffer/string/vector (length -1); only needed to build test input.
    pub fn write_null(&mut self) {
        self.write_int(-1);
    }

    /// Appends raw bytes (an already encoded record).
    pub fn write_raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    fn write_len(&mut self, n: usize) {
        // Lengths over i32::MAX cannot be expressed in jute; a frame limit far below that
        // stops them at the edges, so this is a programming error.
        let n = i32::try_from(n).expect("jute length over i32::MAX");
        self.write_int(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_golden_bytes() {
        let mut w = Writer::new();
        w.write_int(-2);
        w.write_long(0x0102_0304_0506_0708);
        w.write_bool(true);
        w.write_ustring("/a");
        w.write_buffer(&[]);
        w.write_string_vec(&["x".to_string()]);
        assert_eq!(
            w.into_inner(),
            [
                0xff, 0xff, 0xff, 0xfe, // int -2
                1, 2, 3, 4, 5, 6, 7, 8, // long
                1, // true
                0, 0, 0, 2, b'/', b'a', // ustring
                0, 0, 0, 0, // empty buffer
                0, 0, 0, 1, 0, 0, 0, 1, b'x', // vector<ustring>
            ]
        );
    }

    #[test]
    fn null_reads_as_empty() {
        let mut w = Writer::new();
        w.write_null();
        w.write_null();
        w.write_null();
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.read_buffer().unwrap(), Vec::<u8>::new());
        assert_eq!(r.read_ustring().unwrap(), "");
        assert!(r.read_string_vec().unwrap().is_empty());
        r.finish().unwrap();
    }

    #[test]
    fn any_nonzero_byte_is_true() {
        let mut r = Reader::new(&[0, 1, 2, 0xff]);
        assert!(!r.read_bool().unwrap());
        assert!(r.read_bool().unwrap());
        assert!(r.read_bool().unwrap());
        assert!(r.read_bool().unwrap());
        assert!(matches!(r.read_bool(), Err(JuteError::Truncated { .. })));
    }

    #[test]
    fn hostile_buffer_length_is_truncated_not_allocated() {
        // Length 0x7fffffff followed by only 3 bytes.
        let bytes = [0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
        let mut r = Reader::new(&bytes);
        assert_eq!(
            r.read_buffer(),
            Err(JuteError::Truncated {
                offset: 4,
                needed: 0x7fff_ffff,
                available: 3
            })
        );
        let mut r = Reader::new(&bytes);
        assert!(matches!(r.read_ustring(), Err(JuteError::Truncated { .. })));
    }

    #[test]
    fn hostile_vector_count_is_rejected_before_allocation() {
        // 0x7fffffff strings would need at least 8 GiB; only 3 bytes follow.
        let bytes = [0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
        let mut r = Reader::new(&bytes);
        assert_eq!(
            r.read_string_vec(),
            Err(JuteError::Truncated {
                offset: 0,
                needed: 0x7fff_ffff * 4,
                available: 3
            })
        );
        // A count that fits the byte budget of 1-byte elements but not of 4-byte ones.
        let bytes = [0, 0, 0, 2, 0, 0, 0, 0];
        assert!(Reader::new(&bytes).read_string_vec().is_err());
        assert_eq!(
            Reader::new(&bytes).read_vec(1, |r| r.read_bool()).unwrap(),
            vec![false, false]
        );
        assert!(Reader::new(&bytes[..7])
            .read_vec(4, |r| r.read_int())
            .is_err());
    }

    #[test]
    fn negative_lengths_below_minus_one_are_invalid() {
        let bytes = (-2i32).to_be_bytes();
        assert_eq!(
            Reader::new(&bytes).read_buffer(),
            Err(JuteError::InvalidLength { offset: 0, len: -2 })
        );
        let bytes = i32::MIN.to_be_bytes();
        assert!(matches!(
            Reader::new(&bytes).read_string_vec(),
            Err(JuteError::InvalidLength { .. })
        ));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let bytes = [0, 0, 0, 2, 0xc3, 0x28];
        assert_eq!(
            Reader::new(&bytes).read_ustring(),
            Err(JuteError::InvalidUtf8 { offset: 0 })
        );
    }

    #[test]
    fn finish_reports_trailing_bytes() {
        let r = Reader::new(&[1, 2]);
        assert_eq!(r.finish(), Err(JuteError::TrailingBytes(2)));
    }

    #[test]
    fn frame_writer_fills_length() {
        let mut w = Writer::for_frame();
        w.write_int(7);
        assert_eq!(w.into_frame(), [0, 0, 0, 4, 0, 0, 0, 7]);
    }
}
