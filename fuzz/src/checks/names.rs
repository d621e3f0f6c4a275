//! `names`: the client's URL, name and redirect handling ([`local_name`], [`decode_name`],
//! [`encode_name`], [`resolve_location`], [`ListingEntry`]).
//!
//! Input: a selector byte, then the text (invalid UTF-8 replaced) handed to one function: a
//! listing line, a path segment, a request target, a `Location` answering
//! `http://h:8080/dir/file?q`, or a file name the user typed.
//!
//! Properties (PROTOCOL.md, "The client": it "never writes outside `DEST_DIR`, whatever NAME or
//! the server says"):
//! - no panic;
//! - every name accepted as a file name is one plain entry of the destination folder: joined
//!   under it and resolved as an OS would (with `/` and `\` as separators), it names a direct
//!   child, and it holds no NUL or control byte and is not empty, `.` or `..`;
//! - `local_name` is `decode_name` of the target's last segment, query and fragment dropped;
//! - `encode_name` gives an origin-form target of path characters and escapes only, which
//!   decodes back to the name, and whose `local_name` is the name's last part when that part is
//!   a safe name;
//! - `resolve_location` gives an origin-form target of visible ASCII, and refuses a `Location`
//!   that names another host or port (checked with a separate reading of the authority).

use satchel_core::client::target::{decode_name, encode_name, MAX_TARGET};
use satchel_core::client::{local_name, resolve_location, ListingEntry, Url};

use super::Reader;

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let op = r.below(5);
    let text = String::from_utf8_lossy(r.rest()).into_owned();
    let mut out = [0u8; MAX_TARGET];
    match op {
        0 => {
            if let Ok(entry) = ListingEntry::parse(&text) {
                assert!(!entry.encoded_name.is_empty());
                if let Ok(name) = decode_name(entry.encoded_name, &mut out) {
                    safe_name(name);
                }
            }
        }
        1 => {
            if let Ok(name) = decode_name(&text, &mut out) {
                safe_name(name);
            }
        }
        2 => {
            let got = local_name(&text, &mut out).map(str::to_owned);
            if let Ok(name) = &got {
                safe_name(name);
            }
            let path = text.split(['?', '#']).next().unwrap_or_default();
            let last = path.rsplit('/').next().unwrap_or_default();
            let mut again = [0u8; MAX_TARGET];
            let direct = decode_name(last, &mut again).map(str::to_owned);
            assert_eq!(
                got, direct,
                "local_name is not decode_name of the last segment"
            );
        }
        3 => redirect(&text, &mut out),
        _ => encoded(&text, &mut out),
    }
}

/// A name the client may create in its destination folder.
fn safe_name(name: &str) {
    assert!(!matches!(name, "" | "." | ".."), "name {name:?} accepted");
    assert!(
        !name
            .bytes()
            .any(|b| b < 0x20 || b == 0x7f || b == b'/' || b == b'\\'),
        "name {name:?} accepted"
    );
    // Resolve "/home/u/dest/<name>" as an OS would; it must be a direct child of dest.
    let joined = format!("/home/u/dest/{name}");
    let mut stack: Vec<&str> = Vec::new();
    for segment in joined.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
    }
    assert_eq!(
        stack[..stack.len().min(3)],
        ["home", "u", "dest"],
        "{name:?} leaves the destination"
    );
    assert_eq!(
        stack.len(),
        4,
        "{name:?} is not a direct child of the destination"
    );
}

fn redirect(location: &str, out: &mut [u8]) {
    let base = Url::parse("http://h:8080/dir/file?q").expect("a valid base");
    let result = resolve_location(&base, location.as_bytes(), out);
    if let Ok(target) = result {
        assert!(
            target.starts_with('/'),
            "target {target:?} not in origin-form"
        );
        assert!(
            target.bytes().all(|b| b.is_ascii_graphic()),
            "target {target:?} holds space or control bytes"
        );
    }
    if let Some((host, port)) = authority_of(location) {
        let same = host.eq_ignore_ascii_case("h") && port == Some(8080);
        if !same {
            assert!(
                result.is_err(),
                "{location:?} leads to {host}:{port:?}, followed as {result:?}"
            );
        }
    }
}

/// The host and port a URL reference names, if it names any (`scheme://authority...` or
/// `//authority...`); the port is `None` when it is not a number (80 when absent for http).
fn authority_of(location: &str) -> Option<(String, Option<u16>)> {
    let location = location.split('#').next().unwrap_or_default();
    let rest = if let Some(rest) = location.strip_prefix("//") {
        rest
    } else {
        let (scheme, rest) = location.split_once("://")?;
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        if !scheme.eq_ignore_ascii_case("http") {
            // Another scheme is another server whatever its host.
            return Some((String::new(), None));
        }
        rest
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').map_or(authority.len(), |i| i + 1);
        let (host, rest) = authority.split_at(close);
        (host, rest.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => Some(80),
        Some(p) => p.parse().ok(),
    };
    Some((host.to_owned(), port))
}

fn encoded(name: &str, out: &mut [u8]) {
    let Ok(target) = encode_name(name, out) else {
        return;
    };
    let target = target.to_owned();
    assert!(target.starts_with('/'));
    let bytes = target.as_bytes();
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("two hex digits");
            assert!(hex
                .bytes()
                .all(|h| h.is_ascii_hexdigit() && !h.is_ascii_lowercase()));
            decoded.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            assert!(
                b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b),
                "{:?} left unencoded",
                b as char
            );
            decoded.push(b);
            i += 1;
        }
    }
    let expected = if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    };
    assert_eq!(
        decoded,
        expected.as_bytes(),
        "encode_name does not decode back"
    );
    let last = name.rsplit('/').next().unwrap_or_default();
    let mut scratch = [0u8; MAX_TARGET];
    let got = local_name(&target, &mut scratch).map(str::to_owned);
    let plain_ok = !matches!(last, "" | "." | "..")
        && !last.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\');
    if plain_ok && last.len() < MAX_TARGET {
        assert_eq!(
            got.as_deref(),
            Ok(last),
            "local_name of encode_name({name:?})"
        );
    } else if let Ok(got) = got {
        assert!(got == last && plain_ok, "{got:?} from {name:?}");
    }
}
