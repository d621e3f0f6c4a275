//! `path`: arbitrary request targets into [`SafePath::parse`].
//!
//! Input: the raw (still percent-encoded) request path, parsed with hidden files refused and
//! allowed.
//!
//! Properties:
//! - no panic;
//! - containment, checked against a model file system: the root is `/srv/www` in a deeper
//!   tree; the model decodes the raw path once, splits it on `/` *and* `\`, and resolves `.`
//!   and `..` the way an OS would. If that walk ever climbs above the root, the path must be
//!   refused. An accepted path, joined under the root and resolved the same way, must name
//!   exactly the folder or file the model reached;
//! - the accepted form upholds every invariant the `path` module documents (relative, no
//!   empty / `.` / `..` segment, no NUL, backslash or control byte, `MAX_PATH`, `MAX_DEPTH`,
//!   hidden segments only when allowed) and round-trips through `SafePath::from_normalized`;
//! - no over-blocking: a path the model finds clean (valid escapes, no `..`, no `%2F`, no
//!   forbidden byte, within the limits) is accepted;
//! - a refusal is 400, 404 (hidden, and only then) or 414.

use satchel_core::path::{PathError, PathOptions, SafePath, MAX_DEPTH, MAX_PATH};

/// Where the model puts the served root: two levels below `/`, so escapes have somewhere to go.
const ROOT: [&[u8]; 2] = [b"srv", b"www"];

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    for allow_hidden in [false, true] {
        check_with(data, PathOptions { allow_hidden });
    }
}

fn check_with(raw: &[u8], opts: PathOptions) {
    let mut scratch = [0u8; MAX_PATH];
    let verdict = SafePath::parse(raw, &mut scratch, opts);
    let model = Model::of(raw);
    match verdict {
        Ok(path) => {
            invariants(&path, opts);
            assert!(
                !model.escapes,
                "{:?} climbs above the root in the model but was accepted as {:?}",
                String::from_utf8_lossy(raw),
                String::from_utf8_lossy(path.as_bytes())
            );
            // What an OS would open: the root joined with the accepted path.
            let mut joined = Vec::from(b"/srv/www/".as_slice());
            joined.extend_from_slice(path.as_bytes());
            let resolved = resolve(&joined);
            assert!(!resolved.escapes, "joined path leaves the root");
            assert_eq!(
                resolved.inside,
                model.inside,
                "{:?} accepted as {:?}, which names another file",
                String::from_utf8_lossy(raw),
                String::from_utf8_lossy(path.as_bytes())
            );
        }
        Err(e) => {
            assert!(matches!(e.status().as_u16(), 400 | 404 | 414), "{e:?}");
            assert_eq!(e == PathError::Hidden, e.status() == 404);
            if e == PathError::Hidden {
                assert!(!opts.allow_hidden, "hidden refused while allowed");
            }
            if model.clean(opts) {
                panic!(
                    "{:?} is clean in the model but refused: {e:?}",
                    String::from_utf8_lossy(raw)
                );
            }
        }
    }
}

fn invariants(path: &SafePath<'_>, opts: PathOptions) {
    let bytes = path.as_bytes();
    assert!(
        bytes.len() < MAX_PATH,
        "longer than MAX_PATH with its slash"
    );
    assert!(!bytes.starts_with(b"/") && !bytes.ends_with(b"/"));
    assert!(
        !bytes
            .iter()
            .any(|&b| b == 0 || b == b'\\' || b < 0x20 || b == 0x7f),
        "forbidden byte in {bytes:?}"
    );
    let segments: Vec<&[u8]> = if bytes.is_empty() {
        Vec::new()
    } else {
        bytes.split(|&b| b == b'/').collect()
    };
    for s in &segments {
        assert!(!matches!(*s, b"" | b"." | b".."), "segment {s:?}");
        if !opts.allow_hidden {
            assert!(!s.starts_with(b"."), "hidden segment served");
        }
    }
    assert_eq!(path.depth(), segments.len());
    assert!(path.depth() <= MAX_DEPTH);
    assert_eq!(path.is_root(), segments.is_empty());
    assert!(path.segments().eq(segments.iter().copied()));
    let again = SafePath::from_normalized(bytes).expect("an accepted path is normalised");
    assert_eq!((again.as_bytes(), again.depth()), (bytes, path.depth()));
}

/// What the model makes of a raw request path.
#[derive(Debug)]
struct Model {
    /// Whether the walk climbed above the root at some point.
    escapes: bool,
    /// The segments below the root where the walk ended (when it did not escape).
    inside: Vec<Vec<u8>>,
    /// The path decodes (valid escapes) without a `/` from `%2F`.
    decodes: bool,
    /// The decoded bytes, leading `/` included.
    decoded_len: usize,
    /// A decoded byte that no name may hold (NUL, backslash, control).
    forbidden: bool,
    /// A `..` segment (even one that stays inside).
    dot_dot: bool,
    /// A kept segment starting with `.`.
    hidden: bool,
}

impl Model {
    fn of(raw: &[u8]) -> Self {
        let absolute = raw.first() == Some(&b'/');
        let (decoded, decodes) = percent_decode(raw);
        let encoded_slash = contains_encoded_slash(raw);
        let walk = resolve_under_root(&decoded);
        Self {
            escapes: walk.escapes,
            inside: walk.inside.clone(),
            decodes: decodes && absolute && !encoded_slash,
            decoded_len: decoded.len(),
            forbidden: decoded
                .iter()
                .any(|&b| b == 0 || b == b'\\' || b < 0x20 || b == 0x7f),
            dot_dot: decoded.split(|&b| b == b'/').any(|s| s == b".."),
            hidden: walk.inside.iter().any(|s| s.starts_with(b".")),
        }
    }

    /// Whether PROTOCOL.md's rules leave nothing to refuse.
    fn clean(&self, opts: PathOptions) -> bool {
        self.decodes
            && !self.forbidden
            && !self.dot_dot
            && !self.escapes
            && self.decoded_len <= MAX_PATH
            && self.inside.len() <= MAX_DEPTH
            && (opts.allow_hidden || !self.hidden)
    }
}

/// Percent-decodes once; the flag is false when an escape is malformed (the bytes of a bad
/// escape are then kept as they are).
fn percent_decode(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(raw.len());
    let mut ok = true;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
            ok = false;
        }
        out.push(raw[i]);
        i += 1;
    }
    (out, ok)
}

fn contains_encoded_slash(raw: &[u8]) -> bool {
    raw.windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'2' && (w[2] == b'f' || w[2] == b'F'))
}

/// The result of walking a path in the model file system.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Walk {
    escapes: bool,
    inside: Vec<Vec<u8>>,
}

/// Walks decoded `path` (relative to the root), as [`resolve`] does for absolute ones.
fn resolve_under_root(path: &[u8]) -> Walk {
    let mut joined = Vec::from(b"/srv/www/".as_slice());
    joined.extend_from_slice(path);
    resolve(&joined)
}

/// Resolves an absolute path from `/` as an OS would, treating `\` as a separator too (as
/// Windows, and some proxies, do): `..` climbs, `.` and empty segments stay. Reports whether
/// the walk ever left `/srv/www`, and where below it the walk ended.
fn resolve(path: &[u8]) -> Walk {
    let mut stack: Vec<&[u8]> = Vec::new();
    let mut escapes = false;
    // A NUL ends the name at the system call boundary.
    let path = path.split(|&b| b == 0).next().unwrap_or_default();
    for segment in path.split(|&b| b == b'/' || b == b'\\') {
        match segment {
            b"" | b"." => {}
            b".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
        if stack.len() < ROOT.len() && !stack.iter().zip(ROOT).all(|(a, b)| *a == b) {
            escapes = true;
        }
        if stack.len() < ROOT.len() && segment == b".." {
            escapes = true;
        }
    }
    let inside = if stack.len() >= ROOT.len() && stack[..ROOT.len()] == ROOT {
        stack[ROOT.len()..].iter().map(|s| s.to_vec()).collect()
    } else {
        escapes = true;
        Vec::new()
    };
    Walk { escapes, inside }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_sees_escapes() {
        assert!(resolve_under_root(b"/../etc/passwd").escapes);
        assert!(resolve_under_root(b"/a/../../www/x").escapes);
        assert!(resolve_under_root(b"/a\\..\\..\\x").escapes);
        let w = resolve_under_root(b"/a/./b//c/");
        assert!(!w.escapes);
        assert_eq!(w.inside, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(Model::of(b"/a%2e%2e/b").clean(PathOptions::default()));
        assert!(!Model::of(b"/%2e%2e/b").clean(PathOptions::default()));
        assert!(!Model::of(b"/a%2fb").clean(PathOptions::default()));
    }
}
