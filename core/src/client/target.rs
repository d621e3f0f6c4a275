//! Names and places: `http://` URLs, request targets, redirect `Location`s, listing lines, and
//! the local file name a download may be saved under.
//!
//! The one promise this module keeps for the client: a [`local_name`] is a single, ordinary
//! path component (never empty, `.`, `..`, never holding `/`, `\` or NUL), so joining it to the
//! destination folder cannot leave that folder, whatever the user typed or the server sent.

use core::fmt;

use crate::percent::{self, Keep};

/// The longest request target or local name this module builds (PROTOCOL.md's `MAX_PATH`,
/// times three for percent-encoding).
pub const MAX_TARGET: usize = 3 * 1024;

/// A parsed `http://host[:port]/path` URL, borrowing the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Url<'a> {
    /// Host name or address; an IPv6 literal keeps its brackets.
    pub host: &'a str,
    /// Port (80 when absent).
    pub port: u16,
    /// Origin-form target: path and query, starting with `/`; the fragment is dropped.
    pub target: &'a str,
}

/// What is wrong with a URL, a name, or a redirect.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    /// Not `http://host[:port]/...` (another scheme, user info, bad port, empty host).
    Url,
    /// A redirect to another server, which the client does not follow.
    OtherServer,
    /// The name has no usable last segment (empty, `.`, `..`).
    NoName,
    /// The name decodes to something unsafe as a file name (`/`, `\`, NUL, control bytes,
    /// invalid UTF-8, bad percent-encoding).
    UnsafeName,
    /// The result does not fit the output buffer.
    TooLong,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Url => "not an http://host[:port]/path URL",
            Self::OtherServer => "redirect to another server",
            Self::NoName => "no file name in the path",
            Self::UnsafeName => "file name not safe to save under",
            Self::TooLong => "name too long",
        })
    }
}

impl core::error::Error for TargetError {}

impl<'a> Url<'a> {
    /// Parses an absolute `http://` URL (scheme case-insensitive).
    ///
    /// ```text
    /// http-URI = "http" "://" authority path-abempty [ "?" query ]     (RFC 9110 §4.2.1)
    /// ```
    ///
    /// # Errors
    /// [`TargetError::Url`] for another scheme, user info, an empty host or a bad port.
    pub fn parse(url: &'a str) -> Result<Self, TargetError> {
        let scheme = url.get(..7).ok_or(TargetError::Url)?;
        if !scheme.eq_ignore_ascii_case("http://") {
            return Err(TargetError::Url);
        }
        let rest = url.get(7..).ok_or(TargetError::Url)?;
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let target = if target.is_empty() { "/" } else { target };
        if target.starts_with('?') {
            // "http://h?q" has an empty path; we do not build "/?q" for it.
            return Err(TargetError::Url);
        }
        let (host, port) = split_authority(authority)?;
        Ok(Self { host, port, target })
    }
}

/// `host[:port]` into its parts; IPv6 literals stay bracketed.
fn split_authority(authority: &str) -> Result<(&str, u16), TargetError> {
    if authority.is_empty() || authority.contains('@') {
        return Err(TargetError::Url);
    }
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or(TargetError::Url)?;
        let (host, rest) = authority.split_at(close + 1);
        (host, rest.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => 80,
        Some(p) => p.parse().map_err(|_| TargetError::Url)?,
    };
    if host.is_empty() || host == "[]" || port == 0 {
        return Err(TargetError::Url);
    }
    Ok((host, port))
}

/// Turns a file NAME as the user typed it (raw bytes, `/` separating folders) into an
/// origin-form target: a leading `/` is added, everything else but unreserved characters and
/// `/` is percent-encoded (so a `%` in a name is sent as `%25`, and `?`/`#` stay in the name).
///
/// # Errors
/// [`TargetError::TooLong`] when `out` cannot hold the result.
pub fn encode_name<'o>(name: &str, out: &'o mut [u8]) -> Result<&'o str, TargetError> {
    let mut w = Out { buf: out, len: 0 };
    if !name.starts_with('/') {
        w.push(b'/')?;
    }
    percent::encode(name.as_bytes(), Keep::Path, |run| {
        run.iter().try_for_each(|&b| w.push(b))
    })?;
    w.into_str()
}

/// What [`encode_typed`] reads: a NAME (its `?` and `#` are part of the name) or the path
/// and query of a URL (its first `?` starts the query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    /// A NAME as in `HOST PORT NAME`.
    Name,
    /// The target of `http://host/TARGET`, as [`Url::parse`] returns it.
    Url,
}

/// Turns what a user typed (a NAME, or a URL's path and query) into an origin-form target as
/// browsers and wget do: a `%` followed by two hex digits is an escape and is kept as written;
/// every other byte that cannot stand in a target (space, non-ASCII, controls, `"<>\^`{|}`, a
/// lone `%`, and for a NAME `?` and `#`) is percent-encoded; a leading `/` is added.
///
/// # Errors
/// [`TargetError::TooLong`] when `out` cannot hold the result.
pub fn encode_typed<'o>(
    typed: &str,
    kind: Typed,
    out: &'o mut [u8],
) -> Result<&'o str, TargetError> {
    let mut w = Out { buf: out, len: 0 };
    if !typed.starts_with('/') {
        w.push(b'/')?;
    }
    let bytes = typed.as_bytes();
    let mut in_query = false;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = b == b'%'
            && bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        let query_mark = kind == Typed::Url && b == b'?' && !in_query;
        in_query |= query_mark;
        let keep = escape || query_mark || Keep::Path.keeps(b) || (in_query && b == b'?');
        if keep {
            w.push(b)?;
        } else {
            percent::escape(b).iter().try_for_each(|&e| w.push(e))?;
        }
    }
    w.into_str()
}

/// The last segment of a target's path, percent-decoded and checked to be a safe file name.
///
/// The query is ignored. `out` receives the decoded name. This is the only way the client
/// derives a file name from anything a user or a server wrote.
///
/// # Errors
/// [`TargetError::NoName`] for an empty last segment, `.` or `..`;
/// [`TargetError::UnsafeName`] when the decoded name holds `/`, `\`, NUL or another control
/// byte, is not UTF-8, or is badly percent-encoded; [`TargetError::TooLong`] when it does not fit.
pub fn local_name<'o>(target: &str, out: &'o mut [u8]) -> Result<&'o str, TargetError> {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let segment = path.rsplit('/').next().unwrap_or_default();
    decode_name(segment, out)
}

/// Percent-decodes one path segment (a listing entry, the last segment of a target) and checks
/// that it is a safe file name, as [`local_name`] does.
///
/// # Errors
/// As [`local_name`].
pub fn decode_name<'o>(segment: &str, out: &'o mut [u8]) -> Result<&'o str, TargetError> {
    let mut w = Out { buf: out, len: 0 };
    let mut bytes = segment.bytes();
    while let Some(b) = bytes.next() {
        let b = if b == b'%' {
            percent::decode_escape(&mut bytes).ok_or(TargetError::UnsafeName)?
        } else {
            b
        };
        if b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f {
            return Err(TargetError::UnsafeName);
        }
        w.push(b)?;
    }
    let name = w.into_str().map_err(|e| match e {
        TargetError::TooLong => e,
        _ => TargetError::UnsafeName,
    })?;
    if name.is_empty() || name == "." || name == ".." {
        return Err(TargetError::NoName);
    }
    Ok(name)
}

/// Resolves a redirect's `Location` against the URL it answered, keeping to the same server.
///
/// Accepts an absolute `http://` URL naming the same host and port, a network-path reference
/// `//host[:port]/...` naming the same server, an absolute path `/x`, or a relative path
/// (merged with the base's folder, RFC 3986 §5.2.3). Writes the new origin-form target into
/// `out`. The client saves under the name it was asked for, never one derived from a
/// `Location`.
///
/// # Errors
/// [`TargetError::OtherServer`] for a redirect elsewhere (or to https);
/// [`TargetError::Url`] for a value that is not a URL reference we follow (control bytes,
/// spaces, another scheme); [`TargetError::TooLong`] when `out` is too small.
pub fn resolve_location<'o>(
    base: &Url<'_>,
    location: &[u8],
    out: &'o mut [u8],
) -> Result<&'o str, TargetError> {
    let location = core::str::from_utf8(location).map_err(|_| TargetError::Url)?;
    if location.is_empty() || !location.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TargetError::Url);
    }
    let location = location.split('#').next().unwrap_or_default();
    let mut w = Out { buf: out, len: 0 };
    let same = |host: &str, port: u16| host.eq_ignore_ascii_case(base.host) && port == base.port;
    if let Some(rest) = location.strip_prefix("//") {
        let url = Url::parse_rest(rest)?;
        if !same(url.host, url.port) {
            return Err(TargetError::OtherServer);
        }
        w.push_str(url.target)?;
    } else if location.starts_with('/') {
        w.push_str(location)?;
    } else if let Some((scheme, _)) = location.split_once(':').filter(|(s, _)| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    }) {
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(TargetError::OtherServer);
        }
        let url = Url::parse(location)?;
        if !same(url.host, url.port) {
            return Err(TargetError::OtherServer);
        }
        w.push_str(url.target)?;
    } else {
        let base_path = base.target.split('?').next().unwrap_or("/");
        let dir = base_path
            .rfind('/')
            .and_then(|i| base_path.get(..=i))
            .unwrap_or("/");
        w.push_str(dir)?;
        w.push_str(location)?;
    }
    w.into_str()
}

impl<'a> Url<'a> {
    fn parse_rest(rest: &'a str) -> Result<Self, TargetError> {
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        let (host, port) = split_authority(authority)?;
        let target = if target.is_empty() { "/" } else { target };
        if target.starts_with('?') {
            return Err(TargetError::Url);
        }
        Ok(Self { host, port, target })
    }
}

/// One line of the server's `text/plain` folder listing (PROTOCOL.md, "Listings"):
/// `percent-encoded-name[/] TAB size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingEntry<'a> {
    /// The name as sent: percent-encoded, without the trailing `/`. Decode it with
    /// [`decode_name`] before using it as a file name.
    pub encoded_name: &'a str,
    /// Whether it is a folder (the name ended in `/`).
    pub is_dir: bool,
    /// Size in bytes.
    pub size: u64,
}

impl<'a> ListingEntry<'a> {
    /// Parses one listing line (without its line ending).
    ///
    /// # Errors
    /// [`TargetError::UnsafeName`] when the line is not `name[/] TAB digits`, or the name holds
    /// bytes that percent-encoding would have removed (space, control bytes).
    pub fn parse(line: &'a str) -> Result<Self, TargetError> {
        let (name, size) = line.split_once('\t').ok_or(TargetError::UnsafeName)?;
        let size = crate::http::scan::parse_u64(size.trim_end().as_bytes())
            .ok_or(TargetError::UnsafeName)?;
        let (encoded_name, is_dir) = match name.strip_suffix('/') {
            Some(n) => (n, true),
            None => (name, false),
        };
        if encoded_name.is_empty() || !encoded_name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TargetError::UnsafeName);
        }
        Ok(Self {
            encoded_name,
            is_dir,
            size,
        })
    }
}

/// A bounded writer into a byte slice.
struct Out<'o> {
    buf: &'o mut [u8],
    len: usize,
}

impl<'o> Out<'o> {
    fn push(&mut self, b: u8) -> Result<(), TargetError> {
        let slot = self.buf.get_mut(self.len).ok_or(TargetError::TooLong)?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    fn push_str(&mut self, s: &str) -> Result<(), TargetError> {
        s.bytes().try_for_each(|b| self.push(b))
    }

    fn into_str(self) -> Result<&'o str, TargetError> {
        let bytes = self.buf.get(..self.len).ok_or(TargetError::TooLong)?;
        core::str::from_utf8(bytes).map_err(|_| TargetError::UnsafeName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("http://127.0.0.1:8080/a/b.txt?x=1#frag"),
            Ok(Url {
                host: "127.0.0.1",
                port: 8080,
                target: "/a/b.txt?x=1"
            })
        );
        assert_eq!(
            Url::parse("HTTP://example"),
            Ok(Url {
                host: "example",
                port: 80,
                target: "/"
            })
        );
        assert_eq!(
            Url::parse("http://[::1]:9/x"),
            Ok(Url {
                host: "[::1]",
                port: 9,
                target: "/x"
            })
        );
        for bad in [
            "https://h/x",
            "http://u@h/x",
            "http://h:99999/",
            "http:///x",
            "ftp://h",
            "http://h:0/",
        ] {
            assert_eq!(Url::parse(bad), Err(TargetError::Url), "{bad}");
        }
    }

    #[test]
    fn names_are_encoded() {
        let mut buf = [0u8; 64];
        assert_eq!(
            encode_name("dir/a b%2f?.txt", &mut buf),
            Ok("/dir/a%20b%252f%3F.txt")
        );
        assert_eq!(encode_name("/abs", &mut buf), Ok("/abs"));
        let mut tiny = [0u8; 3];
        assert_eq!(encode_name("abcd", &mut tiny), Err(TargetError::TooLong));
    }

    #[test]
    fn typed_names_and_urls_keep_escapes_and_encode_the_rest() {
        let mut buf = [0u8; 128];
        let mut enc = |s: &str, k| encode_typed(s, k, &mut buf).map(std::string::String::from);
        assert_eq!(
            enc("dir/a b%20c%zz?#é.txt", Typed::Name).as_deref(),
            Ok("/dir/a%20b%20c%25zz%3F%23%C3%A9.txt")
        );
        assert_eq!(
            enc("/a b/ü.txt?q=1 2&r=?", Typed::Url).as_deref(),
            Ok("/a%20b/%C3%BC.txt?q=1%202&r=?")
        );
        assert_eq!(enc("/x%2Fy", Typed::Url).as_deref(), Ok("/x%2Fy"));
        assert_eq!(enc("a\"<>\\", Typed::Name).as_deref(), Ok("/a%22%3C%3E%5C"));
        let mut tiny = [0u8; 3];
        assert_eq!(
            encode_typed("abcd", Typed::Name, &mut tiny),
            Err(TargetError::TooLong)
        );
    }

    #[test]
    fn local_names_stay_inside() {
        let mut buf = [0u8; 64];
        assert_eq!(local_name("/a/b%20c.txt?q=/x", &mut buf), Ok("b c.txt"));
        assert_eq!(local_name("/../../x", &mut buf), Ok("x"));
        for (target, err) in [
            ("/dir/", TargetError::NoName),
            ("/..", TargetError::NoName),
            ("/a/%2e%2e", TargetError::NoName),
            ("/a/..%2fetc", TargetError::UnsafeName),
            ("/a/x%2F", TargetError::UnsafeName),
            ("/a/x%5cy", TargetError::UnsafeName),
            ("/a/x%00", TargetError::UnsafeName),
            ("/a/x%0a", TargetError::UnsafeName),
            ("/a/%zz", TargetError::UnsafeName),
            ("/a/%4", TargetError::UnsafeName),
            ("/a/%ff", TargetError::UnsafeName),
        ] {
            assert_eq!(local_name(target, &mut buf), Err(err), "{target}");
        }
    }

    #[test]
    fn redirects_stay_on_the_server() {
        let base = Url {
            host: "h",
            port: 8080,
            target: "/dir/file?q",
        };
        let mut buf = [0u8; 128];
        let mut r =
            |loc: &[u8]| resolve_location(&base, loc, &mut buf).map(std::string::String::from);
        assert_eq!(r(b"/other"), Ok("/other".into()));
        assert_eq!(r(b"next"), Ok("/dir/next".into()));
        assert_eq!(r(b"http://H:8080/x"), Ok("/x".into()));
        assert_eq!(r(b"//h:8080/y"), Ok("/y".into()));
        assert_eq!(r(b"http://evil:8080/x"), Err(TargetError::OtherServer));
        assert_eq!(r(b"http://h:80/x"), Err(TargetError::OtherServer));
        assert_eq!(r(b"https://h:8080/x"), Err(TargetError::OtherServer));
        assert_eq!(r(b"//evil/x"), Err(TargetError::OtherServer));
        assert_eq!(r(b"file:///etc/passwd"), Err(TargetError::OtherServer));
        assert_eq!(r(b"/a\r\nX: y"), Err(TargetError::Url));
        assert_eq!(r(b""), Err(TargetError::Url));
    }

    #[test]
    fn listing_lines() {
        assert_eq!(
            ListingEntry::parse("a%20b.txt\t12"),
            Ok(ListingEntry {
                encoded_name: "a%20b.txt",
                is_dir: false,
                size: 12
            })
        );
        assert_eq!(
            ListingEntry::parse("sub/\t4096"),
            Ok(ListingEntry {
                encoded_name: "sub",
                is_dir: true,
                size: 4096
            })
        );
        for bad in ["noTab", "a b\t1", "/\t1", "x\t-1", "x\t"] {
            assert!(ListingEntry::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn local_name_is_one_plain_component(target in "\\PC{0,40}") {
            let mut buf = [0u8; MAX_TARGET];
            if let Ok(name) = local_name(&target, &mut buf) {
                proptest::prop_assert!(!name.is_empty() && name != "." && name != "..");
                proptest::prop_assert!(!name.contains(['/', '\\', '\0']));
            }
        }

        #[test]
        fn encode_then_name_roundtrips(name in "[^/\\\\\\x00-\\x1f\\x7f]{1,30}") {
            proptest::prop_assume!(name != "." && name != "..");
            let mut t = [0u8; MAX_TARGET];
            let target = encode_name(&name, &mut t).map(std::string::String::from);
            proptest::prop_assert!(target.is_ok());
            let target = target.unwrap_or_default();
            let mut n = [0u8; MAX_TARGET];
            proptest::prop_assert_eq!(local_name(&target, &mut n), Ok(name.as_str()));
        }
    }
}
