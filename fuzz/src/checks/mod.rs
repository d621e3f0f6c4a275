//! The property checks behind each fuzz target, shared with the stable corpus replay.
//!
//! Every `check(data)` takes any bytes and panics (with a message naming the broken property)
//! only when satchel-core misbehaves. Structured targets decode their bytes with [`Reader`], a
//! total decoder in the spirit of `arbitrary::Unstructured`: every byte string is a valid input
//! (missing bytes read as zero), so libFuzzer's mutations always reach the code under test and
//! the stable replay decodes a corpus file exactly as the fuzzer did. [`Writer`] is its mirror,
//! used to build the seed corpora ([`seeds`]).
//!
//! This module is compiled twice: in the `satchel-fuzz` crate and, through `#[path]`, in
//! `core/tests/fuzz_corpus.rs`. It may use only `std` and `satchel_core`.

pub mod cache_ops;
pub mod client;
pub mod client_pipeline;
pub mod connection;
pub mod names;
pub mod path;
pub mod proxy_header;
pub mod range_and_conditionals;
pub mod request_head;
pub mod response_head;
pub mod seeds;
pub mod site;

/// A target's check: panics when a property does not hold for the input.
pub type Check = fn(&[u8]);

/// Every target: its name (as in `fuzz/Cargo.toml` and `corpus/<name>/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("request_head", request_head::check),
    ("path", path::check),
    ("range_and_conditionals", range_and_conditionals::check),
    ("connection", connection::check),
    ("cache_ops", cache_ops::check),
    ("response_head", response_head::check),
    ("client", client::check),
    ("client_pipeline", client_pipeline::check),
    ("names", names::check),
    ("proxy_header", proxy_header::check),
];

/// A total decoder over fuzz input: each read takes bytes from the front, and reads past the
/// end give zeros (and empty slices), never an error.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// The low bit of the next byte.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A value in `0..n` from the next byte (`n` at most 256; 0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let b = usize::from(self.u8());
        if n == 0 {
            0
        } else {
            b % n
        }
    }

    /// A byte string: a one-byte length, then that many bytes (fewer at the end of input).
    pub fn bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.u8()).min(self.data.len());
        let (taken, rest) = self.data.split_at(len);
        self.data = rest;
        taken
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }
}

/// Builds inputs that [`Reader`] decodes back: each method mirrors the reader's.
#[derive(Debug, Clone, Default)]
pub struct Writer {
    /// The bytes so far.
    pub out: Vec<u8>,
}

impl Writer {
    /// Appends one byte.
    pub fn u8(&mut self, b: u8) -> &mut Self {
        self.out.push(b);
        self
    }

    /// Appends a `u16`, little-endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a `u32`, little-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a `u64`, little-endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a length-prefixed byte string (at most 255 bytes).
    ///
    /// # Panics
    /// When `b` is longer than 255 bytes (seeds are written by hand; keep them short).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = u8::try_from(b.len()).expect("seed byte strings are at most 255 bytes");
        self.out.push(len);
        self.out.extend_from_slice(b);
        self
    }

    /// Appends raw bytes (for a trailing [`Reader::rest`]).
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }

    /// The finished input.
    pub fn finish(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_what_writer_wrote() {
        let data = Writer::default()
            .u8(7)
            .u16(0x1234)
            .u32(0xdead_beef)
            .u64(u64::MAX - 1)
            .bytes(b"abc")
            .raw(b"tail")
            .finish();
        let mut r = Reader::new(&data);
        assert_eq!(r.u8(), 7);
        assert_eq!(r.u16(), 0x1234);
        assert_eq!(r.u32(), 0xdead_beef);
        assert_eq!(r.u64(), u64::MAX - 1);
        assert_eq!(r.bytes(), b"abc");
        assert_eq!(r.rest(), b"tail");
        assert!(r.is_empty());
        assert_eq!((r.u8(), r.u64(), r.bytes()), (0, 0, &b""[..]));
    }
}
