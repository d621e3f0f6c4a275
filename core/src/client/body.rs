//! Body framing: `Content-Length`, chunked, and read-until-close (RFC 9112 §6, §7.1).
//!
//! The decoder copies nothing: each call reports how much input it consumed and which part of
//! that input is body data, so the driver hands the bytes straight from its receive buffer to
//! the file. Chunked framing is decoded with fixed state and hard limits on chunk-size digits,
//! extensions and trailers, so a hostile server cannot make it loop, overflow or buffer.

use core::fmt;
use core::ops::Range;

use super::head::Framing;

/// At most this many bytes of chunk extensions per chunk line.
pub const MAX_CHUNK_EXT: u16 = 1024;
/// At most this many bytes of trailer section.
pub const MAX_TRAILERS: u16 = 4096;

/// What is wrong with a body's framing.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// A chunk-size line is not hex digits (optionally followed by extensions).
    ChunkSize,
    /// A chunk size does not fit in 64 bits.
    ChunkTooLarge,
    /// Chunk data is not followed by CRLF.
    ChunkEnd,
    /// Chunk extensions or trailers exceed their limits or hold control bytes.
    Oversized,
    /// The connection ended before the body did (the body was cut short).
    Truncated {
        /// Body bytes received before the end.
        received: u64,
    },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChunkSize => f.write_str("malformed chunk size"),
            Self::ChunkTooLarge => f.write_str("chunk size overflows"),
            Self::ChunkEnd => f.write_str("chunk data not followed by CRLF"),
            Self::Oversized => f.write_str("chunk extensions or trailers too large or malformed"),
            Self::Truncated { received } => {
                write!(
                    f,
                    "connection ended after {received} body bytes, before the body did"
                )
            }
        }
    }
}

impl core::error::Error for FramingError {}

/// One step of decoding: input consumed and where in that input the body data lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of input consumed (framing and data alike).
    pub consumed: usize,
    /// The body data, as a range of the input (empty when this step held only framing).
    pub data: Range<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a chunk size.
    Size { value: u64, digits: u8 },
    /// Skipping `; ext` after the size.
    Ext { value: u64, len: u16 },
    /// Saw CR after the size line, need LF.
    SizeLf { value: u64 },
    /// Inside chunk data.
    Data { left: u64 },
    /// After chunk data, need CR (or a bare LF).
    DataCr,
    /// After chunk data and CR, need LF.
    DataLf,
    /// In the trailer section; `line` bytes into the current line.
    Trailer { line: u16, total: u16 },
}

/// Decodes a response body as its [`Framing`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDecoder {
    state: State,
    received: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length { left: u64 },
    Chunked(Chunk),
    UntilClose,
    Done,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing` says.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length { left: n },
            Framing::Chunked => State::Chunked(Chunk::Size {
                value: 0,
                digits: 0,
            }),
            Framing::UntilClose => State::UntilClose,
        };
        Self { state, received: 0 }
    }

    /// Whether the whole body has been read (never true for read-until-close framing).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes decoded so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Consumes framing from `input` up to and including the next run of body data.
    ///
    /// Call again with the rest of the input until it is all consumed or [`is_done`] is true;
    /// bytes left over after the body belong to the next response.
    ///
    /// [`is_done`]: Self::is_done
    ///
    /// # Errors
    /// A [`FramingError`] for malformed chunked framing; the connection cannot be used again.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, FramingError> {
        let mut pos = 0usize;
        loop {
            match &mut self.state {
                State::Done => return Ok(self.step(pos, pos..pos)),
                State::UntilClose => return Ok(self.step(input.len(), pos..input.len())),
                State::Length { left } => {
                    let take = clamp(*left, input.len() - pos);
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = State::Done;
                    }
                    return Ok(self.step(pos + take, pos..pos + take));
                }
                State::Chunked(Chunk::Data { left }) => {
                    let take = clamp(*left, input.len() - pos);
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = State::Chunked(Chunk::DataCr);
                    }
                    return Ok(self.step(pos + take, pos..pos + take));
                }
                State::Chunked(chunk) => {
                    let Some(&b) = input.get(pos) else {
                        return Ok(self.step(pos, pos..pos));
                    };
                    pos += 1;
                    match chunk_byte(*chunk, b)? {
                        Some(next) => self.state = State::Chunked(next),
                        None => self.state = State::Done,
                    }
                }
            }
        }
    }

    /// Tells the decoder the connection ended.
    ///
    /// # Errors
    /// [`FramingError::Truncated`] unless the body was complete or ran until close.
    pub fn finish(&mut self) -> Result<(), FramingError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(FramingError::Truncated {
                received: self.received,
            }),
        }
    }

    fn step(&mut self, consumed: usize, data: Range<usize>) -> Decoded {
        self.received += data.len() as u64;
        Decoded { consumed, data }
    }
}

fn clamp(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |l| l.min(available))
}

/// Advances the chunk framing by one byte; `None` means the body has ended.
///
/// ```text
/// chunked-body   = *chunk last-chunk trailer-section CRLF
/// chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// last-chunk     = 1*("0") [ chunk-ext ] CRLF
/// ```
fn chunk_byte(state: Chunk, b: u8) -> Result<Option<Chunk>, FramingError> {
    Ok(Some(match state {
        Chunk::Size { value, digits } => match b {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                let d = u64::from(match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    _ => b - b'A' + 10,
                });
                if value > (u64::MAX >> 4) {
                    return Err(FramingError::ChunkTooLarge);
                }
                Chunk::Size {
                    value: (value << 4) | d,
                    digits: digits.saturating_add(1),
                }
            }
            _ if digits == 0 => return Err(FramingError::ChunkSize),
            b';' | b' ' | b'\t' => Chunk::Ext { value, len: 0 },
            b'\r' => Chunk::SizeLf { value },
            b'\n' => return Ok(after_size(value)),
            _ => return Err(FramingError::ChunkSize),
        },
        // Extensions are skipped (RFC 9112 §7.1.1: unrecognised ones are ignored), bounded.
        Chunk::Ext { value, len } => match b {
            b'\r' => Chunk::SizeLf { value },
            b'\n' => return Ok(after_size(value)),
            _ if len >= MAX_CHUNK_EXT || (b < 0x20 && b != b'\t') || b == 0x7f => {
                return Err(FramingError::Oversized)
            }
            _ => Chunk::Ext {
                value,
                len: len + 1,
            },
        },
        Chunk::SizeLf { value } => match b {
            b'\n' => return Ok(after_size(value)),
            _ => return Err(FramingError::ChunkSize),
        },
        Chunk::Data { .. } => return Err(FramingError::ChunkEnd),
        Chunk::DataCr => match b {
            b'\r' => Chunk::DataLf,
            b'\n' => Chunk::Size {
                value: 0,
                digits: 0,
            },
            _ => return Err(FramingError::ChunkEnd),
        },
        Chunk::DataLf => match b {
            b'\n' => Chunk::Size {
                value: 0,
                digits: 0,
            },
            _ => return Err(FramingError::ChunkEnd),
        },
        Chunk::Trailer { line, total } => {
            if total >= MAX_TRAILERS {
                return Err(FramingError::Oversized);
            }
            match b {
                b'\n' if line == 0 => return Ok(None),
                b'\n' => Chunk::Trailer {
                    line: 0,
                    total: total + 1,
                },
                // CR only counts as part of the line ending; a blank line is "\r\n".
                b'\r' => Chunk::Trailer {
                    line,
                    total: total + 1,
                },
                _ if b < 0x20 && b != b'\t' => return Err(FramingError::Oversized),
                _ => Chunk::Trailer {
                    line: line + 1,
                    total: total + 1,
                },
            }
        }
    }))
}

fn after_size(value: u64) -> Option<Chunk> {
    Some(if value == 0 {
        Chunk::Trailer { line: 0, total: 0 }
    } else {
        Chunk::Data { left: value }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Feeds `input` in pieces of `step` bytes; returns the body and what was left over.
    fn run(framing: Framing, input: &[u8], step: usize) -> Result<(Vec<u8>, usize), FramingError> {
        let mut d = BodyDecoder::new(framing);
        let mut body = Vec::new();
        let mut pos = 0;
        let mut avail = 0;
        while !d.is_done() {
            if pos == avail {
                if avail == input.len() {
                    d.finish()?;
                    break;
                }
                avail = (avail + step).min(input.len());
            }
            let out = d.decode(&input[pos..avail])?;
            body.extend_from_slice(&input[pos..avail][out.data]);
            pos += out.consumed;
        }
        assert_eq!(d.received(), body.len() as u64);
        Ok((body, input.len() - pos))
    }

    const CHUNKED: &[u8] =
        b"5\r\nhello\r\n7;name=\"v\"\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";

    #[test]
    fn length_stops_at_the_end() {
        for step in [1, 3, 100] {
            assert_eq!(
                run(Framing::Length(5), b"helloNEXT", step),
                Ok((b"hello".to_vec(), 4))
            );
        }
        assert_eq!(
            run(Framing::Length(9), b"hello", 2),
            Err(FramingError::Truncated { received: 5 })
        );
    }

    #[test]
    fn chunked_any_split() {
        for step in 1..CHUNKED.len() {
            assert_eq!(
                run(Framing::Chunked, CHUNKED, step),
                Ok((b"hello, world".to_vec(), 4)),
                "step {step}"
            );
        }
    }

    #[test]
    fn chunked_bare_lf_and_uppercase() {
        assert_eq!(
            run(Framing::Chunked, b"A\nabcdefghij\n0\n\n", 4),
            Ok((b"abcdefghij".to_vec(), 0))
        );
    }

    #[test]
    fn chunked_errors() {
        let cases: &[(&[u8], FramingError)] = &[
            (b"zz\r\n", FramingError::ChunkSize),
            (b"\r\n", FramingError::ChunkSize),
            (b"5\r\nhelloX\r\n", FramingError::ChunkEnd),
            (b"11111111111111111\r\n", FramingError::ChunkTooLarge),
            (b"5\r\nhel", FramingError::Truncated { received: 3 }),
            (b"0\r\n", FramingError::Truncated { received: 0 }),
        ];
        for (input, err) in cases {
            assert_eq!(run(Framing::Chunked, input, 64), Err(*err), "{input:?}");
        }
        let mut long_ext = Vec::from(&b"1;"[..]);
        long_ext.resize(2 + usize::from(MAX_CHUNK_EXT) + 1, b'x');
        assert_eq!(
            run(Framing::Chunked, &long_ext, 4096),
            Err(FramingError::Oversized)
        );
        let mut trailers = Vec::from(&b"0\r\n"[..]);
        for _ in 0..1000 {
            trailers.extend_from_slice(b"A: b\r\n");
        }
        assert_eq!(
            run(Framing::Chunked, &trailers, 4096),
            Err(FramingError::Oversized)
        );
    }

    #[test]
    fn until_close_takes_everything() {
        assert_eq!(
            run(Framing::UntilClose, b"all of it", 4),
            Ok((b"all of it".to_vec(), 0))
        );
    }

    proptest::proptest! {
        #[test]
        fn chunked_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256), step in 1usize..64) {
            let _ = run(Framing::Chunked, &bytes, step);
        }

        #[test]
        fn chunked_roundtrip(parts in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..40), 0..8), step in 1usize..50) {
            let mut wire = Vec::new();
            let mut body = Vec::new();
            for p in &parts {
                wire.extend_from_slice(std::format!("{:x}\r\n", p.len()).as_bytes());
                wire.extend_from_slice(p);
                wire.extend_from_slice(b"\r\n");
                body.extend_from_slice(p);
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            proptest::prop_assert_eq!(run(Framing::Chunked, &wire, step), Ok((body, 0)));
        }
    }
}
