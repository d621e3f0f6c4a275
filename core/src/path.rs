//! Request paths: percent-decoding and normalisation into a [`SafePath`].
//!
//! # Containment guarantee
//!
//! A [`SafePath`] is the only way a path reaches a [`FileSource`](crate::source::FileSource),
//! and every `SafePath` in existence satisfies, by construction:
//!
//! - it is relative: it never starts with `/`;
//! - it has no empty segment (no `//`, no trailing `/`) and no `.` or `..` segment;
//! - it contains no NUL, no backslash and no other control byte (0x01-0x1F, 0x7F);
//! - with a `/` in front it is at most [`MAX_PATH`] bytes long, and it is at most
//!   [`MAX_DEPTH`] segments deep.
//!
//! So joining it under a root folder can only name something inside that folder, up to symbolic
//! links, which the host source checks itself (PROTOCOL.md: "the resolved file must lie inside
//! the root after following symbolic links").
//!
//! # Rules
//!
//! PROTOCOL.md, "Paths": the target path is percent-decoded once, then split on `/` into
//! segments.
//!
//! - `.` segments and empty segments are dropped.
//! - a `..` segment, a decoded `/` (`%2F`), a NUL byte (raw or `%00`), a backslash, or bad
//!   percent-encoding (`%zz`, `%4`): 400.
//! - a segment starting with `.` (hidden file) is 404 unless the server runs with `--hidden`.
//! - longer than `MAX_PATH` (1024 bytes decoded) or deeper than 32 segments: 414.
//!
//! In addition, control bytes are rejected (400): they are never legitimate names on the wire
//! and would poison logs. Other bytes, UTF-8 or not, are kept as they are: Linux names are bytes.

use crate::percent;
use crate::status::StatusCode;

/// The longest decoded path accepted, in bytes, leading `/` included; longer is 414.
pub const MAX_PATH: usize = 1024;

/// The most segments a path may have after normalisation; deeper is 414.
pub const MAX_DEPTH: usize = 32;

/// Policy knobs for [`SafePath::parse`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathOptions {
    /// Serve hidden files (segments starting with `.`); off by default (`--hidden`).
    pub allow_hidden: bool,
}

/// A normalised request path that cannot name anything outside the root.
///
/// See the [module documentation](self) for the invariants every `SafePath` upholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SafePath<'a> {
    /// Decoded segments joined by `/`; no leading `/`; empty for the root.
    bytes: &'a [u8],
    /// Whether the request named a folder (its path ended with `/` or a `.` segment).
    trailing_slash: bool,
    /// The number of segments.
    depth: usize,
}

impl<'a> SafePath<'a> {
    /// Percent-decodes and normalises a request path (`Request::path`, starting with `/`) into
    /// `scratch`.
    ///
    /// `/a/./b//c/` becomes `a/b/c` with [`trailing_slash`](Self::trailing_slash) set;
    /// `/a%20b` becomes `a b`; `/` becomes the root (empty).
    ///
    /// # Errors
    ///
    /// A [`PathError`] whose [`status`](PathError::status) is 400 for a path that does not
    /// start with `/`, bad percent-encoding, a `..` segment, a decoded `/`, a NUL, a backslash
    /// or a control byte; 414 for a path longer than [`MAX_PATH`] decoded bytes or deeper than
    /// [`MAX_DEPTH`] segments; 404 for a hidden segment unless `opts.allow_hidden`. The 404 is
    /// only returned for a path with none of the other faults.
    pub fn parse(
        raw: &[u8],
        scratch: &'a mut [u8; MAX_PATH],
        opts: PathOptions,
    ) -> Result<Self, PathError> {
        let Some((b'/', rest)) = raw.split_first() else {
            return Err(PathError::NotAbsolute);
        };
        let mut out = Writer {
            buf: scratch,
            len: 0,
        };
        // Decoded bytes so far, the leading '/' included.
        let mut decoded = 1;
        let mut depth = 0;
        let mut hidden = false;
        let mut trailing_slash;
        let mut segment = out.begin_segment()?;
        let mut bytes = rest.iter().copied();
        loop {
            let b = bytes.next();
            if b.is_some() {
                decoded += 1;
                if decoded > MAX_PATH {
                    return Err(PathError::TooLong);
                }
            }
            match b {
                None | Some(b'/') => {
                    let kept = out.end_segment(segment)?;
                    trailing_slash = !kept;
                    if kept {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return Err(PathError::TooDeep);
                        }
                        hidden |= out.segment(segment).first() == Some(&b'.');
                    }
                    if b.is_none() {
                        break;
                    }
                    segment = out.begin_segment()?;
                }
                Some(b'%') => {
                    let d = percent::decode_escape(&mut bytes).ok_or(PathError::BadEscape)?;
                    if d == b'/' {
                        return Err(PathError::EncodedSlash);
                    }
                    check_byte(d)?;
                    out.push(d)?;
                }
                Some(b) => {
                    check_byte(b)?;
                    out.push(b)?;
                }
            }
        }
        if hidden && !opts.allow_hidden {
            return Err(PathError::Hidden);
        }
        let len = out.len;
        let done: &'a [u8] = out.buf;
        Ok(Self {
            bytes: done.get(..len).ok_or(PathError::TooLong)?,
            trailing_slash,
            depth,
        })
    }

    /// Wraps bytes already in normalised form (tests, static file tables).
    ///
    /// Hidden segments are accepted: hiding is the server's policy for request paths, not part
    /// of the containment guarantee. The result has [`trailing_slash`](Self::trailing_slash)
    /// set only for the root.
    ///
    /// # Errors
    ///
    /// [`PathError::NotNormalized`] for a leading or trailing `/`, an empty or `.` segment;
    /// otherwise the error [`parse`](Self::parse) gives for the same fault (`..`, NUL,
    /// backslash, control byte, too long, too deep).
    pub fn from_normalized(bytes: &'a [u8]) -> Result<Self, PathError> {
        if bytes.len() >= MAX_PATH {
            return Err(PathError::TooLong);
        }
        for &b in bytes {
            check_byte(b)?;
        }
        let mut depth = 0;
        if !bytes.is_empty() {
            for segment in bytes.split(|&b| b == b'/') {
                match segment {
                    b"" | b"." => return Err(PathError::NotNormalized),
                    b".." => return Err(PathError::DotDot),
                    _ => depth += 1,
                }
            }
        }
        if depth > MAX_DEPTH {
            return Err(PathError::TooDeep);
        }
        Ok(Self {
            bytes,
            trailing_slash: bytes.is_empty(),
            depth,
        })
    }

    /// The decoded path below the root without a leading slash; empty for the root itself.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether this is the root folder.
    pub fn is_root(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether the request path ended with `/` (or a `.` segment, which stands for the folder
    /// it is in, RFC 3986 §5.2.4): the client asked for a folder.
    pub fn trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// The segments, in order; none for the root.
    pub fn segments(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.bytes.split(|&b| b == b'/').filter(|s| !s.is_empty())
    }

    /// The last segment; `None` for the root.
    pub fn file_name(&self) -> Option<&'a [u8]> {
        self.segments().last()
    }

    /// The part of the file name after its last `.`; `None` if there is no dot, the only dot
    /// starts the name (`.profile`) or ends it (`notes.`).
    pub fn extension(&self) -> Option<&'a [u8]> {
        let name = self.file_name()?;
        let dot = name.iter().rposition(|&b| b == b'.')?;
        match name.get(dot + 1..) {
            Some(ext) if dot > 0 && !ext.is_empty() => Some(ext),
            _ => None,
        }
    }

    /// The number of segments; 0 for the root.
    pub fn depth(&self) -> usize {
        self.depth
    }
}

/// Why a request path was refused. Each error knows the status code to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/` (400).
    NotAbsolute,
    /// A `%` not followed by two hex digits (400).
    BadEscape,
    /// `%2F`: a `/` inside a segment (400).
    EncodedSlash,
    /// A NUL byte, raw or `%00` (400).
    Nul,
    /// A backslash, raw or `%5C` (400).
    Backslash,
    /// A control byte 0x01-0x1F or 0x7F, raw or encoded (400).
    Control,
    /// A `..` segment (400).
    DotDot,
    /// Bytes given to [`SafePath::from_normalized`] are not in normal form (400).
    NotNormalized,
    /// A segment starting with `.` while hidden files are not served (404).
    Hidden,
    /// More than [`MAX_PATH`] decoded bytes (414).
    TooLong,
    /// More than [`MAX_DEPTH`] segments (414).
    TooDeep,
}

impl PathError {
    /// The status code of the response this error calls for: 400, 404 or 414.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Hidden => StatusCode::NOT_FOUND,
            Self::TooLong | Self::TooDeep => StatusCode::URI_TOO_LONG,
            Self::NotAbsolute
            | Self::BadEscape
            | Self::EncodedSlash
            | Self::Nul
            | Self::Backslash
            | Self::Control
            | Self::DotDot
            | Self::NotNormalized => StatusCode::BAD_REQUEST,
        }
    }

    /// A short sentence saying what was wrong, suitable as the error response body.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotAbsolute => "path must start with a slash",
            Self::BadEscape => "bad percent-encoding in path",
            Self::EncodedSlash => "encoded slash in path",
            Self::Nul => "NUL byte in path",
            Self::Backslash => "backslash in path",
            Self::Control => "control character in path",
            Self::DotDot => "parent segment in path",
            Self::NotNormalized => "path is not normalised",
            Self::Hidden => "not found",
            Self::TooLong => "path too long",
            Self::TooDeep => "path too deep",
        }
    }
}

impl core::fmt::Display for PathError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

impl core::error::Error for PathError {}

/// Where the current segment sits in the output.
#[derive(Clone, Copy)]
struct Segment {
    /// Where its joining `/` is (or would be, for the first segment).
    joiner: usize,
    /// Where its first byte is.
    start: usize,
}

/// Appends the normalised path to the scratch buffer.
struct Writer<'s> {
    buf: &'s mut [u8; MAX_PATH],
    len: usize,
}

impl Writer<'_> {
    /// Appends one byte. The caller's `MAX_PATH` check on decoded bytes keeps the output
    /// (never longer than the decoded input less its leading `/`) inside the buffer; the
    /// error is there so that no arithmetic slip could ever turn into a panic.
    fn push(&mut self, b: u8) -> Result<(), PathError> {
        let slot = self.buf.get_mut(self.len).ok_or(PathError::TooLong)?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    /// Starts a segment, writing the `/` that joins it to the previous one, if any.
    fn begin_segment(&mut self) -> Result<Segment, PathError> {
        let joiner = self.len;
        if joiner > 0 {
            self.push(b'/')?;
        }
        Ok(Segment {
            joiner,
            start: self.len,
        })
    }

    fn segment(&self, s: Segment) -> &[u8] {
        self.buf.get(s.start..self.len).unwrap_or_default()
    }

    /// Ends a segment: drops it (with its joiner) if it is empty or `.`, refuses `..`.
    /// Returns whether it was kept.
    fn end_segment(&mut self, s: Segment) -> Result<bool, PathError> {
        match self.segment(s) {
            b"" | b"." => {
                self.len = s.joiner;
                Ok(false)
            }
            b".." => Err(PathError::DotDot),
            _ => Ok(true),
        }
    }
}

/// Refuses the bytes no segment may hold, raw or decoded.
fn check_byte(b: u8) -> Result<(), PathError> {
    match b {
        0 => Err(PathError::Nul),
        b'\\' => Err(PathError::Backslash),
        0x01..=0x1f | 0x7f => Err(PathError::Control),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    const DENY: PathOptions = PathOptions {
        allow_hidden: false,
    };
    const ALLOW: PathOptions = PathOptions { allow_hidden: true };

    /// Parses `raw` with `opts`, returning the normalised bytes and the trailing-slash flag.
    fn norm(raw: &[u8], opts: PathOptions) -> Result<(Vec<u8>, bool), PathError> {
        let mut scratch = [0; MAX_PATH];
        let p = SafePath::parse(raw, &mut scratch, opts)?;
        assert_contained(&p);
        Ok((p.as_bytes().to_vec(), p.trailing_slash()))
    }

    /// The containment guarantee of the module documentation.
    fn assert_contained(p: &SafePath<'_>) {
        let bytes = p.as_bytes();
        assert!(bytes.len() < MAX_PATH);
        assert!(!bytes.starts_with(b"/"), "{bytes:?}");
        assert!(!bytes.contains(&0) && !bytes.contains(&b'\\'), "{bytes:?}");
        assert!(!bytes.iter().any(|&b| b < 0x20 || b == 0x7f), "{bytes:?}");
        if !bytes.is_empty() {
            for segment in bytes.split(|&b| b == b'/') {
                assert!(!matches!(segment, b"" | b"." | b".."), "{bytes:?}");
            }
        }
        assert_eq!(p.depth(), p.segments().count());
        assert!(p.depth() <= MAX_DEPTH);
        assert_eq!(
            SafePath::from_normalized(bytes).map(|q| q.as_bytes()),
            Ok(bytes)
        );
    }

    /// `path!(name, raw, Ok(normalised, trailing_slash))` or `path!(name, raw, Err(variant))`,
    /// with hidden files denied.
    macro_rules! path {
        ($name:ident, $raw:expr, Ok($want:expr, $slash:expr)) => {
            #[test]
            fn $name() {
                assert_eq!(norm($raw, DENY), Ok(($want.to_vec(), $slash)));
            }
        };
        ($name:ident, $raw:expr, Err($err:ident)) => {
            #[test]
            fn $name() {
                assert_eq!(norm($raw, DENY), Err(PathError::$err));
            }
        };
    }

    path!(root, b"/", Ok(b"", true));
    path!(plain_file, b"/index.html", Ok(b"index.html", false));
    path!(nested, b"/a/b/c.txt", Ok(b"a/b/c.txt", false));
    path!(folder, b"/a/b/", Ok(b"a/b", true));
    path!(dot_segments_dropped, b"/./a/./b/.", Ok(b"a/b", true));
    path!(empty_segments_dropped, b"//a///b//", Ok(b"a/b", true));
    path!(only_dots_and_slashes, b"/./././/", Ok(b"", true));
    path!(encoded_dot_is_a_dot, b"/%2e/a/%2E", Ok(b"a", true));
    path!(percent_decoded_once, b"/a%20b/%25zz", Ok(b"a b/%zz", false));
    path!(
        double_encoded_parent_is_a_name,
        b"/%252e%252e/x",
        Ok(b"%2e%2e/x", false)
    );
    path!(
        non_utf8_kept,
        b"/caf%C3%A9/%ff",
        Ok(b"caf\xc3\xa9/\xff", false)
    );
    path!(dots_inside_names, b"/a..b/c...", Ok(b"a..b/c...", false));
    path!(triple_dot_is_hidden, b"/.../x", Err(Hidden));

    path!(not_absolute, b"a/b", Err(NotAbsolute));
    path!(empty, b"", Err(NotAbsolute));
    path!(parent, b"/a/../b", Err(DotDot));
    path!(parent_at_root, b"/..", Err(DotDot));
    path!(parent_trailing, b"/a/../", Err(DotDot));
    path!(encoded_parent, b"/%2e%2e/etc/passwd", Err(DotDot));
    path!(half_encoded_parent, b"/.%2E/x", Err(DotDot));
    path!(encoded_slash, b"/a%2fb", Err(EncodedSlash));
    path!(encoded_slash_upper, b"/..%2F..%2Fetc", Err(EncodedSlash));
    path!(raw_nul, b"/a\0b", Err(Nul));
    path!(encoded_nul, b"/a%00.html", Err(Nul));
    path!(raw_backslash, b"/a\\b", Err(Backslash));
    path!(encoded_backslash, b"/..%5c..%5cwin.ini", Err(Backslash));
    path!(bad_escape_letters, b"/a%zz", Err(BadEscape));
    path!(bad_escape_short, b"/a%4", Err(BadEscape));
    path!(bad_escape_at_end, b"/a%", Err(BadEscape));
    path!(bad_escape_half_hex, b"/%4g", Err(BadEscape));
    path!(raw_control, b"/a\x1bb", Err(Control));
    path!(encoded_control, b"/a%0d%0aSet-Cookie", Err(Control));
    path!(encoded_del, b"/a%7f", Err(Control));
    path!(hidden_file, b"/.env", Err(Hidden));
    path!(hidden_folder, b"/a/.git/config", Err(Hidden));
    path!(encoded_hidden, b"/%2egit/HEAD", Err(Hidden));
    path!(bad_request_beats_hidden, b"/.git/%zz", Err(BadEscape));
    path!(parent_beats_hidden, b"/.git/../x", Err(DotDot));

    #[test]
    fn hidden_allowed_by_option() {
        assert_eq!(
            norm(b"/.well-known/a/.env", ALLOW),
            Ok((b".well-known/a/.env".to_vec(), false))
        );
        assert_eq!(norm(b"/.well-known/../x", ALLOW), Err(PathError::DotDot));
    }

    #[test]
    fn length_limit_counts_decoded_bytes() {
        // "/" + 1023 bytes = MAX_PATH decoded bytes: accepted.
        let mut raw = std::vec![b'/'];
        raw.resize(MAX_PATH, b'a');
        assert_eq!(norm(&raw, DENY).map(|(b, _)| b.len()), Ok(MAX_PATH - 1));
        raw.push(b'a');
        assert_eq!(norm(&raw, DENY), Err(PathError::TooLong));
        // Escapes count once decoded: 1023 x "%61" is 1024 decoded bytes.
        let mut raw = b"/".to_vec();
        for _ in 0..MAX_PATH - 1 {
            raw.extend_from_slice(b"%61");
        }
        assert_eq!(norm(&raw, DENY).map(|(b, _)| b.len()), Ok(MAX_PATH - 1));
        assert_eq!(PathError::TooLong.status(), 414);
    }

    #[test]
    fn depth_limit() {
        let deep = b"/a".repeat(MAX_DEPTH);
        let mut scratch = [0; MAX_PATH];
        let p = SafePath::parse(&deep, &mut scratch, DENY).unwrap();
        assert_eq!(p.depth(), MAX_DEPTH);
        let deeper = b"/a".repeat(MAX_DEPTH + 1);
        assert_eq!(norm(&deeper, DENY), Err(PathError::TooDeep));
        // Dropped segments do not count.
        let padded = [&b"/./"[..], &b"a//".repeat(MAX_DEPTH)].concat();
        assert_eq!(norm(&padded, DENY).map(|(_, slash)| slash), Ok(true));
        assert_eq!(PathError::TooDeep.status(), 414);
    }

    #[test]
    fn accessors() {
        let mut scratch = [0; MAX_PATH];
        let p = SafePath::parse(b"/docs/./guide/intro.tar.gz", &mut scratch, DENY).unwrap();
        assert!(!p.is_root());
        assert!(!p.trailing_slash());
        assert_eq!(p.depth(), 3);
        assert_eq!(
            p.segments().collect::<Vec<_>>(),
            [&b"docs"[..], b"guide", b"intro.tar.gz"]
        );
        assert_eq!(p.file_name(), Some(&b"intro.tar.gz"[..]));
        assert_eq!(p.extension(), Some(&b"gz"[..]));

        let mut scratch = [0; MAX_PATH];
        let root = SafePath::parse(b"/", &mut scratch, DENY).unwrap();
        assert!(root.is_root() && root.trailing_slash());
        assert_eq!(root.depth(), 0);
        assert_eq!(root.segments().count(), 0);
        assert_eq!(root.file_name(), None);
        assert_eq!(root.extension(), None);
    }

    #[test]
    fn extensions() {
        let ext = |s: &'static [u8]| SafePath::from_normalized(s).unwrap().extension();
        assert_eq!(ext(b"a/b.html"), Some(&b"html"[..]));
        assert_eq!(ext(b"a.d/README"), None);
        assert_eq!(ext(b".profile"), None);
        assert_eq!(ext(b"notes."), None);
        assert_eq!(ext(b".config.toml"), Some(&b"toml"[..]));
    }

    #[test]
    fn from_normalized_enforces_the_invariant() {
        let ok = SafePath::from_normalized(b"a/b.txt").unwrap();
        assert_eq!(ok.depth(), 2);
        assert!(!ok.trailing_slash());
        assert!(SafePath::from_normalized(b"").unwrap().is_root());
        assert!(SafePath::from_normalized(b".hidden/x").is_ok());
        let err = |s: &[u8]| SafePath::from_normalized(s).unwrap_err();
        assert_eq!(err(b"/a"), PathError::NotNormalized);
        assert_eq!(err(b"a/"), PathError::NotNormalized);
        assert_eq!(err(b"a//b"), PathError::NotNormalized);
        assert_eq!(err(b"a/./b"), PathError::NotNormalized);
        assert_eq!(err(b"a/../b"), PathError::DotDot);
        assert_eq!(err(b".."), PathError::DotDot);
        assert_eq!(err(b"a\0"), PathError::Nul);
        assert_eq!(err(b"a\\b"), PathError::Backslash);
        assert_eq!(err(b"a\nb"), PathError::Control);
        assert_eq!(err(&[b'a'; MAX_PATH]), PathError::TooLong);
        assert_eq!(
            err(&b"a/".repeat(MAX_DEPTH + 1)[..2 * MAX_DEPTH + 1]),
            PathError::TooDeep
        );
    }

    #[test]
    fn errors_know_their_status_and_reason() {
        assert_eq!(PathError::DotDot.status(), 400);
        assert_eq!(PathError::Hidden.status(), 404);
        assert_eq!(
            std::format!("{}", PathError::EncodedSlash),
            "encoded slash in path"
        );
    }

    /// Every line of the PayloadsAllTheThings traversal lists, used as a request path.
    #[test]
    fn traversal_payloads_stay_inside_the_root() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/security-data/payloadsallthethings");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            std::println!("skipped: no payload lists at {}", dir.display());
            return;
        };
        let (mut lines, mut accepted) = (0, 0);
        for entry in entries.flatten() {
            let file = entry.path();
            if file.extension().is_none_or(|e| e != "txt") {
                continue;
            }
            let text = std::fs::read(&file).unwrap();
            for line in text.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let raw = if line.starts_with(b"/") {
                    line.to_vec()
                } else {
                    [&b"/"[..], line].concat()
                };
                let climbs = decoded_once_climbs(&raw);
                for opts in [DENY, ALLOW] {
                    lines += 1;
                    let mut scratch = [0; MAX_PATH];
                    let Ok(p) = SafePath::parse(&raw, &mut scratch, opts) else {
                        continue;
                    };
                    accepted += 1;
                    assert_contained(&p);
                    assert!(
                        !climbs,
                        "{}: accepted a parent reference: {:?} -> {:?}",
                        file.display(),
                        std::string::String::from_utf8_lossy(&raw),
                        std::string::String::from_utf8_lossy(p.as_bytes())
                    );
                }
            }
        }
        std::println!("{lines} payload parses, {accepted} accepted (as literal names)");
        assert!(lines > 0);
    }

    /// Whether `raw`, percent-decoded once the way a naive server would, has a `..` segment
    /// (separated by `/` or `\`). Such a path must never be accepted.
    fn decoded_once_climbs(raw: &[u8]) -> bool {
        let mut decoded = Vec::new();
        let mut i = 0;
        while let Some(&b) = raw.get(i) {
            let escape = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match (b, escape) {
                (b'%', Some(d)) => {
                    decoded.push(d);
                    i += 3;
                }
                _ => {
                    decoded.push(b);
                    i += 1;
                }
            }
        }
        decoded
            .split(|&b| b == b'/' || b == b'\\')
            .any(|s| s == b"..")
    }

    /// A deliberately simple model of the rules, written with `Vec`s: decode everything, then
    /// check, then split. Returns the normalised bytes or the status code.
    fn model(raw: &[u8], allow_hidden: bool) -> Result<Vec<u8>, u16> {
        if raw.first() != Some(&b'/') {
            return Err(400);
        }
        // (byte, came from an escape)
        let mut decoded = Vec::new();
        let mut i = 0;
        while let Some(&b) = raw.get(i) {
            if b == b'%' {
                let h = raw.get(i + 1..i + 3).ok_or(400u16)?;
                let s = std::str::from_utf8(h).map_err(|_| 400u16)?;
                if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(400);
                }
                decoded.push((u8::from_str_radix(s, 16).map_err(|_| 400u16)?, true));
                i += 3;
            } else {
                decoded.push((b, false));
                i += 1;
            }
        }
        for &(b, escaped) in &decoded {
            if (escaped && b == b'/') || b == 0 || b == b'\\' || b < 0x20 || b == 0x7f {
                return Err(400);
            }
        }
        let bytes: Vec<u8> = decoded.iter().map(|&(b, _)| b).collect();
        let segments: Vec<&[u8]> = bytes
            .split(|&b| b == b'/')
            .filter(|s| !s.is_empty() && *s != b".")
            .collect();
        if segments.iter().any(|s| *s == b"..") {
            return Err(400);
        }
        if bytes.len() > MAX_PATH || segments.len() > MAX_DEPTH {
            return Err(414);
        }
        if !allow_hidden && segments.iter().any(|s| s.starts_with(b".")) {
            return Err(404);
        }
        Ok(segments.join(&b'/'))
    }

    /// Paths built from the pieces that matter to the rules.
    fn tricky_path() -> impl Strategy<Value = Vec<u8>> {
        const PIECES: &[&[u8]] = &[
            b"/",
            b".",
            b"..",
            b"%2e",
            b"%2E",
            b"%2f",
            b"%2F",
            b"%00",
            b"%5c",
            b"%5C",
            b"\\",
            b"\0",
            b"%",
            b"%4",
            b"%zz",
            b"%41",
            b"a",
            b"bc",
            b"\x01",
            b"%7f",
            b"%ff",
            b"\xc0\xaf",
            b"%c0%af",
            b"etc",
            b"passwd",
        ];
        let piece = prop::sample::select(PIECES);
        prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..1200)) {
            let mut scratch = [0; MAX_PATH];
            if let Ok(p) = SafePath::parse(&raw, &mut scratch, ALLOW) {
                assert_contained(&p);
            }
            let _ = SafePath::from_normalized(&raw);
        }

        #[test]
        fn output_is_always_contained(tail in tricky_path(), allow_hidden in any::<bool>()) {
            let raw = [&b"/"[..], &tail].concat();
            let mut scratch = [0; MAX_PATH];
            if let Ok(p) = SafePath::parse(&raw, &mut scratch, PathOptions { allow_hidden }) {
                assert_contained(&p);
            }
        }

        #[test]
        fn agrees_with_the_model(raw in tricky_path(), allow_hidden in any::<bool>()) {
            let mut scratch = [0; MAX_PATH];
            let got = SafePath::parse(&raw, &mut scratch, PathOptions { allow_hidden })
                .map(|p| p.as_bytes().to_vec())
                .map_err(|e| e.status().as_u16());
            prop_assert_eq!(got, model(&raw, allow_hidden));
        }

        #[test]
        fn normalising_is_idempotent(raw in tricky_path()) {
            let mut scratch = [0; MAX_PATH];
            if let Ok(p) = SafePath::parse(&raw, &mut scratch, ALLOW) {
                let again = [&b"/"[..], p.as_bytes()].concat();
                let mut scratch2 = [0; MAX_PATH];
                let q = SafePath::parse(&again, &mut scratch2, ALLOW);
                prop_assert_eq!(q.map(|q| q.as_bytes()), Ok(p.as_bytes()));
            }
        }
    }
}
