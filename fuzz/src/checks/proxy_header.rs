//! `proxy_header`: arbitrary bytes at the start of a connection into
//! [`satchel_core::proxy::parse`] (PROXY protocol v2).
//!
//! Input: the connection's first bytes, as they arrive.
//!
//! Properties:
//! - no panic;
//! - the verdict does not depend on how the bytes arrive: every prefix is `Partial`, or the
//!   whole input's error, or (once it holds the whole header) the whole input's header and
//!   length; a `Partial` is never given for a prefix that already holds a complete header;
//! - what is accepted is what the spec's layout says, decoded here independently: a header
//!   starts with the 12-byte signature, version 2, its length is 16 + the big-endian length
//!   field and at most `MAX_LEN`; `Local` only for command 0; `Proxied` only for command 1
//!   with TCP over IPv4 (`0x11`: 4-byte addresses at 16 and 20, ports at 24 and 26) or IPv6
//!   (`0x21`: 16-byte addresses at 16 and 32, ports at 48 and 50), with exactly those values;
//! - a first byte other than `\r` is refused at once (an HTTP request is never waited on).

use satchel_core::proxy::{parse, Header, ProxyError, MAX_LEN, SIGNATURE};
use satchel_core::Status;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    let whole = parse(data);
    for cut in 0..data.len() {
        let part = parse(&data[..cut]);
        match (&whole, &part) {
            (Ok(Status::Complete((_, n))), Ok(Status::Partial)) => {
                assert!(cut < *n, "Partial at {cut} though the header ends at {n}")
            }
            (_, Ok(Status::Partial)) => {}
            (Ok(Status::Complete(w)), Ok(Status::Complete(p))) => assert_eq!(w, p, "cut {cut}"),
            (Err(w), Err(p)) => assert_eq!(w, p, "cut {cut}"),
            _ => panic!("prefix {cut} gives {part:?}, the whole input {whole:?}"),
        }
    }
    if data.first().is_some_and(|&b| b != b'\r') {
        assert_eq!(whole, Err(ProxyError::Signature));
    }
    let Ok(Status::Complete((header, n))) = whole else {
        return;
    };
    assert!(data.starts_with(&SIGNATURE));
    assert_eq!(data[12] >> 4, 2, "version 2 only");
    let declared = usize::from(u16::from_be_bytes([data[14], data[15]]));
    assert_eq!(n, 16 + declared);
    assert!(n <= MAX_LEN && n <= data.len());
    match header {
        Header::Local => assert_eq!(data[12] & 0x0f, 0, "Local for command LOCAL only"),
        Header::Proxied {
            source,
            destination,
        } => {
            assert_eq!(data[12] & 0x0f, 1, "Proxied for command PROXY only");
            let port = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
            let (s, d) = match data[13] {
                0x11 => {
                    assert!(declared >= 12);
                    let ip = |at: usize| {
                        Ipv4Addr::new(data[at], data[at + 1], data[at + 2], data[at + 3])
                    };
                    (
                        SocketAddr::from((ip(16), port(24))),
                        SocketAddr::from((ip(20), port(26))),
                    )
                }
                0x21 => {
                    assert!(declared >= 36);
                    let ip = |at: usize| {
                        let octets: [u8; 16] = data[at..at + 16].try_into().unwrap();
                        Ipv6Addr::from(octets)
                    };
                    (
                        SocketAddr::from((ip(16), port(48))),
                        SocketAddr::from((ip(32), port(50))),
                    )
                }
                fam => panic!("Proxied for family {fam:#x}"),
            };
            assert_eq!((source, destination), (s, d));
        }
    }
}
