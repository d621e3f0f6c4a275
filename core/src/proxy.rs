//! The PROXY protocol, version 2 (binary), receiver side: the header a load balancer (HAProxy's
//! `send-proxy-v2`) puts in front of a connection's first bytes to name the real client.
//!
//! Sans-IO like the rest of the core: bytes in, [`Status::Partial`] or the parsed [`Header`] with
//! the number of bytes it took, or an error. The driver feeds the connection's first bytes, and
//! once the header is complete hands the rest (the HTTP request) to the server connection.
//!
//! Strict, as a listener that requires the header must be (a connection without a valid header
//! is closed, never served):
//!
//! ```text
//! header = signature ver_cmd fam len[2] block          ; len = bytes of block, big-endian
//! signature = 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A      ; "\r\n\r\n\0\r\nQUIT\n"
//! ver_cmd = 0x20 (LOCAL) / 0x21 (PROXY)                ; version 2 only, no version 1 text
//! fam     = 0x11 (TCP over IPv4) / 0x21 (TCP over IPv6) ; for PROXY; any defined one for LOCAL
//! block   = src_addr dst_addr src_port dst_port *tlv   ; PROXY: 12 or 36 bytes of addresses
//! tlv     = type len_hi len_lo value                    ; each inside the block, skipped
//!                                                       ; LOCAL: the block is skipped whole
//! ```
//!
//! The first byte that cannot begin a valid header is an error at once (an HTTP request is
//! refused at its first byte, not after 16), a declared length above [`MAX_BLOCK_LEN`] is an
//! error before any of it is awaited, and a `PP2_TYPE_CRC32C` TLV, when present, must hold the
//! header's checksum (the spec's "MUST" for receivers that support it). UDP, UNIX and UNSPEC
//! families under PROXY are refused: this listener serves TCP only and must not guess the client.
//!
//! Reference: HAProxy's `doc/proxy-protocol.txt`, section 2.2.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::Status;

/// The 12 bytes every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part of a header: signature, version and command, family, length.
pub const FIXED_LEN: usize = 16;

/// The largest address block (addresses plus TLVs) accepted, in bytes. HAProxy's own headers
/// are far below it (36 bytes of IPv6 addresses, plus a unique id of at most 128 bytes and SSL
/// details when configured); a larger declared length is refused rather than awaited.
pub const MAX_BLOCK_LEN: usize = 1024;

/// The longest header [`parse`] accepts: the bytes a driver may need to hold before deciding.
pub const MAX_LEN: usize = FIXED_LEN + MAX_BLOCK_LEN;

const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;
const TCP4_ADDR_LEN: usize = 12;
const TCP6_ADDR_LEN: usize = 36;
const TLV_CRC32C: u8 = 0x03;

/// What a valid header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// `LOCAL`: the balancer opened this connection itself (a health check); the socket's own
    /// endpoints are the real ones.
    Local,
    /// `PROXY` over TCP: the connection is relayed on behalf of `source`, which connected to
    /// `destination` (the balancer's frontend address).
    Proxied {
        /// The real client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
}

impl Header {
    /// The client to log: `source` when proxied, otherwise `peer` (the socket's own peer).
    pub fn client_or(&self, peer: SocketAddr) -> SocketAddr {
        match self {
            Self::Local => peer,
            Self::Proxied { source, .. } => *source,
        }
    }
}

/// Why a header was refused. Every error means: close the connection without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The first bytes are not the version 2 signature (e.g. a plain HTTP request, or version
    /// 1's text form).
    Signature,
    /// A version other than 2.
    Version,
    /// A command other than `LOCAL` and `PROXY`.
    Command,
    /// An address family or transport byte the spec does not define.
    Family,
    /// A defined family this listener does not take under `PROXY` (UDP, UNIX, UNSPEC).
    Unsupported,
    /// The declared length is above [`MAX_BLOCK_LEN`].
    TooLong,
    /// The declared length is shorter than the addresses of the family.
    Truncated,
    /// A TLV runs past the end of the header, or a checksum TLV has the wrong length.
    Tlv,
    /// A `PP2_TYPE_CRC32C` TLV does not match the header.
    Checksum,
}

impl core::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Signature => "not a PROXY protocol v2 header",
            Self::Version => "PROXY protocol version is not 2",
            Self::Command => "PROXY protocol command is neither LOCAL nor PROXY",
            Self::Family => "PROXY protocol family or transport undefined",
            Self::Unsupported => "PROXY protocol family other than TCP over IPv4/IPv6",
            Self::TooLong => "PROXY protocol header longer than accepted",
            Self::Truncated => "PROXY protocol address block shorter than its addresses",
            Self::Tlv => "PROXY protocol TLV out of bounds",
            Self::Checksum => "PROXY protocol CRC32C mismatch",
        })
    }
}

impl core::error::Error for ProxyError {}

/// Parses a PROXY protocol v2 header at the start of `input`.
///
/// Returns `Partial` while `input` is a valid beginning of a header, and `Complete((header,
/// consumed))` once the whole header has arrived; the bytes from `consumed` on belong to the
/// proxied connection. The result depends only on the bytes, never on how they were split: a
/// caller may call again with more bytes appended.
///
/// # Errors
/// A [`ProxyError`] as soon as the bytes cannot begin a valid header.
pub fn parse(input: &[u8]) -> Result<Status<(Header, usize)>, ProxyError> {
    // The signature, checked byte by byte so that a wrong first byte is refused at once.
    let sig_have = input.len().min(SIGNATURE.len());
    if input.get(..sig_have) != SIGNATURE.get(..sig_have) {
        return Err(ProxyError::Signature);
    }
    let Some(&ver_cmd) = input.get(12) else {
        return Ok(Status::Partial);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Version);
    }
    let command = ver_cmd & 0x0f;
    if command != CMD_LOCAL && command != CMD_PROXY {
        return Err(ProxyError::Command);
    }
    let Some(&fam) = input.get(13) else {
        return Ok(Status::Partial);
    };
    if fam >> 4 > 3 || fam & 0x0f > 2 {
        return Err(ProxyError::Family);
    }
    let addr_len = match fam {
        TCP4 => TCP4_ADDR_LEN,
        TCP6 => TCP6_ADDR_LEN,
        _ if command == CMD_LOCAL => 0,
        _ => return Err(ProxyError::Unsupported),
    };
    let (Some(&hi), Some(&lo)) = (input.get(14), input.get(15)) else {
        return Ok(Status::Partial);
    };
    let block_len = usize::from(u16::from_be_bytes([hi, lo]));
    if block_len > MAX_BLOCK_LEN {
        return Err(ProxyError::TooLong);
    }
    if command == CMD_PROXY && block_len < addr_len {
        return Err(ProxyError::Truncated);
    }
    let total = FIXED_LEN + block_len;
    let Some(header) = input.get(..total) else {
        return Ok(Status::Partial);
    };
    if command == CMD_LOCAL {
        // The spec: "discard the protocol block including the family which is ignored".
        return Ok(Status::Complete((Header::Local, total)));
    }
    check_tlvs(header, FIXED_LEN + addr_len)?;
    let block = header.get(FIXED_LEN..).unwrap_or_default();
    let (source, destination) = if fam == TCP4 {
        let ip = |at: usize| Ipv4Addr::from(array::<4>(block, at));
        let port = |at: usize| u16::from_be_bytes(array::<2>(block, at));
        (
            SocketAddr::V4(SocketAddrV4::new(ip(0), port(8))),
            SocketAddr::V4(SocketAddrV4::new(ip(4), port(10))),
        )
    } else {
        let ip = |at: usize| Ipv6Addr::from(array::<16>(block, at));
        let port = |at: usize| u16::from_be_bytes(array::<2>(block, at));
        (
            SocketAddr::V6(SocketAddrV6::new(ip(0), port(32), 0, 0)),
            SocketAddr::V6(SocketAddrV6::new(ip(16), port(34), 0, 0)),
        )
    };
    Ok(Status::Complete((
        Header::Proxied {
            source,
            destination,
        },
        total,
    )))
}

/// `N` bytes of `block` at `at`; the caller has checked that the block holds them (zeros
/// otherwise, never a panic).
fn array<const N: usize>(block: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(src) = block.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// Walks the TLVs of `header` (the whole header) from `start`: each must end inside it. A
/// `PP2_TYPE_CRC32C` TLV must be 4 bytes and hold the CRC32C of the header with its own value
/// taken as zeros.
fn check_tlvs(header: &[u8], start: usize) -> Result<(), ProxyError> {
    let mut at = start;
    while at < header.len() {
        let (Some(&kind), Some(&hi), Some(&lo)) =
            (header.get(at), header.get(at + 1), header.get(at + 2))
        else {
            return Err(ProxyError::Tlv);
        };
        let value = at + 3;
        let end = value + usize::from(u16::from_be_bytes([hi, lo]));
        let Some(stored) = header.get(value..end) else {
            return Err(ProxyError::Tlv);
        };
        if kind == TLV_CRC32C {
            let stored: [u8; 4] = stored.try_into().map_err(|_| ProxyError::Tlv)?;
            if crc32c_zeroing(header, value..end) != u32::from_be_bytes(stored) {
                return Err(ProxyError::Checksum);
            }
        }
        at = end;
    }
    Ok(())
}

/// CRC32C (Castagnoli, RFC 4960 appendix B) of `bytes`, with the bytes in `zeroed` taken as 0.
fn crc32c_zeroing(bytes: &[u8], zeroed: core::ops::Range<usize>) -> u32 {
    let mut crc = !0u32;
    for (i, &b) in bytes.iter().enumerate() {
        let b = if zeroed.contains(&i) { 0 } else { b };
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82f6_3b78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// A header as HAProxy's `send-proxy-v2` sends it: `ver_cmd`, `fam`, then the block.
    fn header(ver_cmd: u8, fam: u8, block: &[u8]) -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        h.push(ver_cmd);
        h.push(fam);
        h.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        h.extend_from_slice(block);
        h
    }

    /// 192.0.2.1:56324 → 198.51.100.7:80, as an IPv4 address block.
    const V4_BLOCK: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0, 80];

    fn v4() -> (SocketAddr, SocketAddr) {
        (
            "192.0.2.1:56324".parse().unwrap(),
            "198.51.100.7:80".parse().unwrap(),
        )
    }

    fn proxied((source, destination): (SocketAddr, SocketAddr)) -> Header {
        Header::Proxied {
            source,
            destination,
        }
    }

    #[test]
    fn the_bytes_haproxy_sends_for_tcp4() {
        // A header captured from HAProxy's send-proxy-v2 (172.19.0.1:42578 → 172.19.0.3:80),
        // followed by the request it relays.
        let wire: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\
            \xac\x13\x00\x01\xac\x13\x00\x03\xa6\x52\x00\x50GET / HTTP/1.1\r\n";
        let (h, n) = match parse(wire) {
            Ok(Status::Complete(done)) => done,
            other => panic!("{other:?}"),
        };
        assert_eq!(n, 28);
        assert_eq!(&wire[n..n + 3], b"GET");
        assert_eq!(
            h,
            proxied((
                "172.19.0.1:42578".parse().unwrap(),
                "172.19.0.3:80".parse().unwrap()
            ))
        );
        assert_eq!(
            h.client_or("127.0.0.1:1".parse().unwrap()),
            "172.19.0.1:42578".parse().unwrap()
        );
    }

    #[test]
    fn tcp6() {
        let mut block = Vec::new();
        block.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        block.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        block.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
        let h = header(0x21, 0x21, &block);
        assert_eq!(
            parse(&h),
            Ok(Status::Complete((
                proxied((
                    "[2001:db8::1]:12345".parse().unwrap(),
                    "[2001:db8::2]:443".parse().unwrap()
                )),
                16 + 36
            )))
        );
    }

    #[test]
    fn local_is_accepted_and_its_block_skipped() {
        // A health check: LOCAL, UNSPEC, no block.
        let h = header(0x20, 0x00, &[]);
        assert_eq!(parse(&h), Ok(Status::Complete((Header::Local, 16))));
        // "must not assume zero is presented for LOCAL": a block with addresses is skipped.
        let h = header(0x20, 0x11, &V4_BLOCK);
        assert_eq!(parse(&h), Ok(Status::Complete((Header::Local, 28))));
        let peer: SocketAddr = "10.0.0.9:4000".parse().unwrap();
        assert_eq!(Header::Local.client_or(peer), peer);
        // A LOCAL with a family it does not define is still refused.
        assert_eq!(parse(&header(0x20, 0x41, &[])), Err(ProxyError::Family));
    }

    #[test]
    fn tlvs_are_skipped_within_bounds() {
        let mut block = V4_BLOCK.to_vec();
        block.extend_from_slice(&[0x04, 0x00, 0x02, 0xaa, 0xbb]); // NOOP, 2 bytes
        block.extend_from_slice(&[0x05, 0x00, 0x03, 1, 2, 3]); // UNIQUE_ID
        block.extend_from_slice(&[0xe0, 0x00, 0x00]); // custom, empty
        let h = header(0x21, 0x11, &block);
        assert_eq!(parse(&h), Ok(Status::Complete((proxied(v4()), h.len()))));
        // A TLV whose value runs past the declared end; one cut inside its own 3-byte head.
        for tail in [&[0x04, 0x00, 0x09, 0xaa][..], &[0x04, 0x00]] {
            let mut block = V4_BLOCK.to_vec();
            block.extend_from_slice(tail);
            assert_eq!(parse(&header(0x21, 0x11, &block)), Err(ProxyError::Tlv));
        }
    }

    #[test]
    fn crc32c_tlv_is_verified() {
        // RFC 3720 B.4 / the usual check value: CRC32C("123456789") = 0xE3069283.
        assert_eq!(crc32c_zeroing(b"123456789", 0..0), 0xe306_9283);
        let mut block = V4_BLOCK.to_vec();
        block.extend_from_slice(&[TLV_CRC32C, 0x00, 0x04, 0, 0, 0, 0]);
        let mut h = header(0x21, 0x11, &block);
        let at = h.len() - 4;
        let crc = crc32c_zeroing(&h, at..h.len());
        h[at..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(parse(&h), Ok(Status::Complete((proxied(v4()), h.len()))));
        h[17] ^= 1; // another source address under the same checksum
        assert_eq!(parse(&h), Err(ProxyError::Checksum));
        let mut block = V4_BLOCK.to_vec();
        block.extend_from_slice(&[TLV_CRC32C, 0x00, 0x02, 0, 0]);
        assert_eq!(parse(&header(0x21, 0x11, &block)), Err(ProxyError::Tlv));
    }

    #[test]
    fn partial_until_the_whole_header_is_there() {
        let mut wire = header(0x21, 0x11, &V4_BLOCK);
        wire.extend_from_slice(b"GET /");
        for cut in 0..28 {
            assert_eq!(parse(&wire[..cut]), Ok(Status::Partial), "cut at {cut}");
        }
        assert_eq!(parse(&wire), Ok(Status::Complete((proxied(v4()), 28))));
    }

    #[test]
    fn strict_refusals() {
        // Plain HTTP, version 1's text form and a corrupt signature: refused at the first
        // differing byte.
        assert_eq!(parse(b"G"), Err(ProxyError::Signature));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::Signature));
        assert_eq!(
            parse(b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 80\r\n"),
            Err(ProxyError::Signature)
        );
        assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX"), Err(ProxyError::Signature));
        // Version 1 or 3 in the binary form.
        assert_eq!(
            parse(&header(0x11, 0x11, &V4_BLOCK)),
            Err(ProxyError::Version)
        );
        assert_eq!(
            parse(&header(0x31, 0x11, &V4_BLOCK)),
            Err(ProxyError::Version)
        );
        // Commands 2..=15.
        for cmd in 2..=15 {
            assert_eq!(
                parse(&header(0x20 | cmd, 0x11, &V4_BLOCK)),
                Err(ProxyError::Command)
            );
        }
        // Undefined families and transports.
        for fam in [0x41, 0x13, 0xf1, 0x1f] {
            assert_eq!(
                parse(&header(0x21, fam, &V4_BLOCK)),
                Err(ProxyError::Family)
            );
        }
        // Defined, but not TCP over IP: UNSPEC, UDP, UNIX.
        for fam in [0x00, 0x01, 0x10, 0x12, 0x22, 0x31, 0x32] {
            assert_eq!(
                parse(&header(0x21, fam, &V4_BLOCK)),
                Err(ProxyError::Unsupported),
                "{fam:#x}"
            );
        }
        // Addresses cut short by the declared length.
        assert_eq!(
            parse(&header(0x21, 0x11, &V4_BLOCK[..11])),
            Err(ProxyError::Truncated)
        );
        assert_eq!(
            parse(&header(0x21, 0x21, &[0; 35])),
            Err(ProxyError::Truncated)
        );
    }

    #[test]
    fn a_declared_length_above_the_cap_is_refused_before_it_arrives() {
        let mut h = header(0x21, 0x11, &[]);
        h[14..16].copy_from_slice(&u16::try_from(MAX_BLOCK_LEN + 1).unwrap().to_be_bytes());
        assert_eq!(parse(&h), Err(ProxyError::TooLong));
        h[14..16].copy_from_slice(&[0xff, 0xff]);
        assert_eq!(parse(&h), Err(ProxyError::TooLong));
        // Exactly the cap is fine once it is all there.
        let mut block = V4_BLOCK.to_vec();
        block.extend_from_slice(&[0x04, 0x03, 0xf1]);
        block.resize(MAX_BLOCK_LEN, 0xee);
        let h = header(0x21, 0x11, &block);
        assert_eq!(h.len(), MAX_LEN);
        assert_eq!(parse(&h[..MAX_LEN - 1]), Ok(Status::Partial));
        assert_eq!(parse(&h), Ok(Status::Complete((proxied(v4()), MAX_LEN))));
    }

    fn any_header() -> impl Strategy<Value = Vec<u8>> {
        // Mostly well-formed headers with random TLVs, so that the split property reaches the
        // complete case; some with a random byte changed.
        (
            prop_oneof![Just(0x20u8), Just(0x21u8)],
            prop_oneof![Just(0x11u8), Just(0x21u8), Just(0x00u8)],
            proptest::collection::vec(any::<u8>(), 36),
            proptest::collection::vec(
                (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20)),
                0..4,
            ),
            proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
            proptest::collection::vec(any::<u8>(), 0..8),
        )
            .prop_map(|(ver_cmd, fam, addrs, tlvs, flip, tail)| {
                let mut block = addrs[..if fam == 0x21 { 36 } else { 12 }].to_vec();
                for (kind, value) in tlvs {
                    let kind = if kind == TLV_CRC32C { 0x04 } else { kind };
                    block.push(kind);
                    block.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
                    block.extend_from_slice(&value);
                }
                let mut h = header(ver_cmd, fam, &block);
                if let Some((at, b)) = flip {
                    let at = at.index(h.len());
                    h[at] = b;
                }
                h.extend_from_slice(&tail);
                h
            })
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&bytes);
            let mut with_sig = SIGNATURE.to_vec();
            with_sig.extend_from_slice(&bytes);
            let _ = parse(&with_sig);
        }

        /// Each prefix gives Partial, the same error, or (once long enough) the same header
        /// and length as the whole input: the verdict does not depend on how bytes arrive.
        #[test]
        fn split_invariant(input in any_header()) {
            let whole = parse(&input);
            for cut in 0..=input.len() {
                let part = parse(&input[..cut]);
                match (&whole, &part) {
                    (_, Ok(Status::Partial)) => {
                        if let Ok(Status::Complete((_, n))) = whole {
                            prop_assert!(cut < n);
                        }
                    }
                    (Ok(Status::Complete((h, n))), Ok(Status::Complete((h2, n2)))) => {
                        prop_assert!(cut >= *n);
                        prop_assert_eq!((h, n), (h2, n2));
                    }
                    (Err(e), Err(e2)) => prop_assert_eq!(e, e2),
                    _ => prop_assert!(false, "cut {}: {:?} whole {:?}", cut, part, whole),
                }
            }
            if let Ok(Status::Complete((_, n))) = whole {
                prop_assert!((FIXED_LEN..=MAX_LEN).contains(&n) && n <= input.len());
            }
        }
    }
}
