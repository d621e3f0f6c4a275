//! Entity tags (RFC 9110 §8.8.3) and their comparison in `If-None-Match` and `If-Range`.
//!
//! ```text
//! ETag       = entity-tag
//! entity-tag = [ weak ] opaque-tag
//! weak       = %s"W/"
//! opaque-tag = DQUOTE *etagc DQUOTE
//! etagc      = %x21 / %x23-7E / obs-text
//! ```

use super::digest::{ContentDigest, BASE64_LEN};
use super::encoding::Coding;
use super::{trim_ows, trim_ows_start};
use crate::version::FileVersion;

/// The longest tag built here: a content tag, two quotes around the 44-character base64 of a
/// SHA-256 ([`ETag::from_digest`]), with a coding's suffix of up to 4 bytes
/// ([`ETag::for_coding`]); a version tag ([`ETag::from_version`]) is at most two quotes, two
/// 16-digit hex numbers and a dash, plus the same suffix.
pub const MAX_ETAG_LEN: usize = 2 + BASE64_LEN + 4;

/// A strong entity-tag, quotes included: a file's content or its version as every copy of it
/// shares it.
///
/// Two forms, which can never be equal to each other (base64 has no `-`, a version tag always
/// has one):
///
/// * a **content tag** `"<base64 of the SHA-256 of the content>"` ([`ETag::from_digest`]), for
///   files the cache takes: exact (two different contents never share it, however close in
///   time they were written) and the same on every node holding the same bytes;
/// * a **version tag** `"<stamp hex>-<len hex>"` ([`ETag::from_version`]; lower-case hex without
///   leading zeros, nginx's form with the modification time in ns), for files streamed from
///   disk, which the server cannot hash without reading them whole. It changes whenever the
///   file's modification stamp or size does and never depends on what one copy does not share
///   with another (`FileVersion::id`: device, inode, ctime). Its limit: two versions of the same
///   size written within one tick of the file system's clock share it.
///
/// Neither depends on the path alone, so nodes serving copies of one tree give the same tag and
/// a client may validate or resume against any of them (PROTOCOL.md, "Responses").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ETag {
    bytes: [u8; MAX_ETAG_LEN],
    len: u8,
}

impl ETag {
    /// The tag of a file version.
    pub fn from_version(version: &FileVersion) -> Self {
        let mut tag = Self {
            bytes: [0; MAX_ETAG_LEN],
            len: 0,
        };
        tag.push(b'"');
        tag.push_hex(version.stamp);
        tag.push(b'-');
        tag.push_hex(version.len);
        tag.push(b'"');
        tag
    }

    /// The content tag of a file whose bytes have the SHA-256 `digest`.
    pub fn from_digest(digest: &ContentDigest) -> Self {
        let mut tag = Self {
            bytes: [0; MAX_ETAG_LEN],
            len: 0,
        };
        tag.bytes[0] = b'"';
        tag.bytes[1..=BASE64_LEN].copy_from_slice(&digest.base64());
        tag.bytes[BASE64_LEN + 1] = b'"';
        tag.len = (BASE64_LEN + 2) as u8;
        tag
    }

    /// A tag equal to no entity-tag a request can carry (it is empty: a parsed tag always has
    /// its quotes), for a file whose validator is not known: `If-None-Match` and `If-Range`
    /// then never match it (only `If-None-Match: *` does, which asks whether the file exists).
    pub const fn unknown() -> Self {
        Self {
            bytes: [0; MAX_ETAG_LEN],
            len: 0,
        }
    }

    /// Whether this is [`ETag::unknown`].
    pub const fn is_unknown(&self) -> bool {
        self.len == 0
    }

    /// The tag of the precompressed representation of a resource whose sibling file has this
    /// tag: the coding's suffix inside the quotes (`"5f3a-1c-br"`), so it never equals the
    /// tag of an identity representation (RFC 9110 §8.8.3: each representation its own tag).
    #[must_use]
    pub fn for_coding(mut self, coding: Coding) -> Self {
        if self.is_unknown() {
            // No tag stays no tag.
            return self;
        }
        // A tag ends with a quote; the suffix goes before it.
        self.len = self.len.saturating_sub(1);
        for &b in coding.etag_suffix() {
            self.push(b);
        }
        self.push(b'"');
        self
    }

    /// The tag as sent in the `ETag` field, quotes included.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The tag as text (it is always ASCII).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    fn push(&mut self, b: u8) {
        // At most MAX_ETAG_LEN pushes happen, by construction of `from_version` and
        // `from_digest`.
        if let Some(slot) = self.bytes.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }

    fn push_hex(&mut self, n: u64) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
        for i in (0..digits).rev() {
            self.push(HEX[((n >> (i * 4)) & 0xf) as usize]);
        }
    }
}

impl core::fmt::Display for ETag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an `If-None-Match` field value matches `etag` (RFC 9110 §13.1.2).
///
/// ```text
/// If-None-Match = "*" / #entity-tag
/// ```
///
/// `*` matches any current representation. Otherwise the value is a comma-separated list and
/// matches when one member is equal to `etag` under the weak comparison (RFC 9110 §8.8.3.2: the
/// `W/` prefix is ignored). Optional whitespace and empty list elements are tolerated
/// (RFC 9110 §5.6.1); a malformed list matches nothing, so the full response is sent.
pub fn matches_if_none_match(header: &[u8], etag: &ETag) -> bool {
    let header = trim_ows(header);
    if header == b"*" {
        return true;
    }
    let mut found = false;
    let mut rest = header;
    loop {
        rest = skip_separators(rest);
        if rest.is_empty() {
            return found;
        }
        let Some((tag, after)) = split_entity_tag(rest) else {
            return false;
        };
        found |= tag.opaque == etag.as_bytes();
        rest = trim_ows_start(after);
        match rest.first() {
            None | Some(b',') => {}
            Some(_) => return false,
        }
    }
}

/// Whether an entity-tag (as in `If-Range`) is strong and equal to `etag` (the strong
/// comparison of RFC 9110 §8.8.3.2, required by §13.1.5).
///
/// Surrounding whitespace is ignored; a weak or malformed tag is never equal.
pub fn strong_eq(tag: &[u8], etag: &ETag) -> bool {
    match split_entity_tag(trim_ows(tag)) {
        Some((parsed, rest)) => rest.is_empty() && !parsed.weak && parsed.opaque == etag.as_bytes(),
        None => false,
    }
}

/// One parsed entity-tag: the opaque-tag keeps its quotes, as [`ETag::as_bytes`] does.
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

/// Splits one entity-tag off the front of `s`.
fn split_entity_tag(s: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let inner = s.strip_prefix(b"\"")?;
    let close = inner.iter().position(|&b| b == b'"')?;
    let (body, _) = inner.split_at(close);
    if !body
        .iter()
        .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
    {
        return None;
    }
    // The opening quote, the body and the closing quote.
    let (opaque, rest) = s.split_at(close + 2);
    Some((EntityTag { weak, opaque }, rest))
}

fn skip_separators(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b',', rest @ ..] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag() -> ETag {
        ETag::from_version(&FileVersion {
            len: 0x1234,
            stamp: 0x17f0_0000_0000_0001,
            id: 0x2a,
        })
    }

    #[test]
    fn format_is_stamp_len_hex_quoted() {
        assert_eq!(tag().as_bytes(), b"\"17f0000000000001-1234\"");
        assert_eq!(
            ETag::from_version(&FileVersion::default()).as_str(),
            "\"0-0\""
        );
        let max = ETag::from_version(&FileVersion {
            len: u64::MAX,
            stamp: u64::MAX,
            id: u64::MAX,
        });
        assert_eq!(max.as_bytes().len(), 2 + 2 * 16 + 1);
        // The longest suffix still fits, whole, on the longest tag.
        let coded = max.for_coding(Coding::Zstd);
        assert!(coded.as_str().ends_with("-zst\""));
        let content = ETag::from_digest(&ContentDigest::of(b"x")).for_coding(Coding::Zstd);
        assert_eq!(content.as_bytes().len(), MAX_ETAG_LEN);
        assert!(content.as_str().ends_with("=-zst\""));
        assert!(ETag::unknown().for_coding(Coding::Br).is_unknown());
    }

    #[test]
    fn each_coding_has_its_own_tag() {
        let plain = tag();
        let tags = [
            plain,
            plain.for_coding(Coding::Br),
            plain.for_coding(Coding::Zstd),
            plain.for_coding(Coding::Gzip),
        ];
        assert_eq!(tags[1].as_str(), "\"17f0000000000001-1234-br\"");
        assert_eq!(tags[3].as_str(), "\"17f0000000000001-1234-gz\"");
        for (i, a) in tags.iter().enumerate() {
            for b in &tags[i + 1..] {
                assert_ne!(a, b);
                assert!(!matches_if_none_match(a.as_bytes(), b));
            }
            // A coded tag is a valid strong entity-tag: it validates itself.
            assert!(strong_eq(a.as_bytes(), a));
        }
    }

    #[test]
    fn shared_fields_change_the_tag_local_ones_do_not() {
        let v = FileVersion {
            len: 1,
            stamp: 2,
            id: 3,
        };
        let base = ETag::from_version(&v);
        assert_ne!(base, ETag::from_version(&FileVersion { len: 9, ..v }));
        assert_ne!(base, ETag::from_version(&FileVersion { stamp: 9, ..v }));
        // Another node's copy: another inode, device and ctime, the same tag.
        assert_eq!(base, ETag::from_version(&FileVersion { id: 9, ..v }));
    }

    /// Two copies of one file (`cp -a`: same size and mtime, another inode, device and ctime)
    /// have the same tag but different versions, so the cache still tells them apart; a change
    /// of inode or ctime alone still changes the version.
    #[test]
    fn copies_share_the_tag_but_not_the_version() {
        let (len, mtime) = (4096, 1_700_000_000_123_456_789);
        let a = FileVersion::from_stat(len, mtime, mtime, 0x801, 12);
        let b = FileVersion::from_stat(len, mtime, mtime + 5_000, 0x802, 99);
        assert_eq!(ETag::from_version(&a), ETag::from_version(&b));
        assert_ne!(a, b);
        let ino = FileVersion::from_stat(len, mtime, mtime, 0x801, 13);
        let ctime = FileVersion::from_stat(len, mtime, mtime + 1, 0x801, 12);
        let dev = FileVersion::from_stat(len, mtime, mtime, 0x802, 12);
        for other in [ino, ctime, dev] {
            assert_ne!(a, other);
            assert_eq!(ETag::from_version(&a), ETag::from_version(&other));
        }
        let touched = FileVersion::from_stat(len, mtime + 1, mtime + 1, 0x801, 12);
        assert_ne!(ETag::from_version(&a), ETag::from_version(&touched));
    }

    #[test]
    fn content_tags_are_the_digest_and_never_a_version_tag() {
        let d = ContentDigest::of(b"hello world\n");
        let t = ETag::from_digest(&d);
        assert_eq!(
            t.as_str(),
            "\"qUiQTy8PR5uPgZdpSzAYSw0u0cHNKh7A+4XSmaGSpEc=\""
        );
        assert_eq!(t.as_bytes().len(), 2 + BASE64_LEN);
        assert!(strong_eq(t.as_bytes(), &t));
        assert!(matches_if_none_match(t.as_bytes(), &t));
        assert_ne!(t, ETag::from_digest(&ContentDigest::of(b"hello world!")));
        // Same size, same time, other bytes: other content tags.
        assert_ne!(
            ETag::from_digest(&ContentDigest::of(b"aaaa")),
            ETag::from_digest(&ContentDigest::of(b"bbbb"))
        );
        assert!(!t.as_str().contains('-'));
        assert!(tag().as_str().contains('-'));
    }

    #[test]
    fn the_unknown_tag_matches_only_star() {
        let u = ETag::unknown();
        assert!(u.is_unknown() && !tag().is_unknown());
        assert!(matches_if_none_match(b"*", &u));
        for field in [&b"\"\""[..], b"W/\"\"", b"\"0-0\"", b"", b"\"x\", \"\""] {
            assert!(!matches_if_none_match(field, &u));
            assert!(!strong_eq(field, &u));
        }
    }

    #[test]
    fn if_none_match_star_and_lists() {
        let t = tag();
        assert!(matches_if_none_match(b"*", &t));
        assert!(matches_if_none_match(b" * ", &t));
        assert!(matches_if_none_match(b"\"17f0000000000001-1234\"", &t));
        assert!(matches_if_none_match(
            b"\"x\", \"17f0000000000001-1234\"",
            &t
        ));
        assert!(!matches_if_none_match(b"\"x\", \"y\"", &t));
        assert!(!matches_if_none_match(b"", &t));
    }

    #[test]
    fn if_none_match_is_weak_comparison() {
        assert!(matches_if_none_match(
            b"W/\"17f0000000000001-1234\"",
            &tag()
        ));
        assert!(matches_if_none_match(
            b"\"a\",W/\"17f0000000000001-1234\"",
            &tag()
        ));
    }

    #[test]
    fn if_none_match_tolerates_ows_and_empty_elements() {
        let t = tag();
        assert!(matches_if_none_match(
            b" ,, \"a\" ,\t\"17f0000000000001-1234\" , ",
            &t
        ));
    }

    #[test]
    fn if_none_match_malformed_list_is_no_match() {
        let t = tag();
        let good = "\"17f0000000000001-1234\"";
        for bad in [
            std::format!("{good} \"a\""),       // missing comma
            std::format!("{good}, \"unclosed"), // unterminated
            std::format!("{good}, bare"),       // not quoted
            std::format!("{good}, w/\"a\""),    // weak prefix is case-sensitive
            std::format!("*, {good}"),          // `*` is not a list member
            std::format!("{good}x"),            // trailing junk
            std::format!("\"a b\", {good}"),    // space inside a tag
        ] {
            assert!(!matches_if_none_match(bad.as_bytes(), &t), "{bad}");
        }
    }

    #[test]
    fn strong_eq_requires_strong_and_equal() {
        let t = tag();
        assert!(strong_eq(b"\"17f0000000000001-1234\"", &t));
        assert!(strong_eq(b" \"17f0000000000001-1234\" ", &t));
        assert!(!strong_eq(b"W/\"17f0000000000001-1234\"", &t));
        assert!(!strong_eq(b"\"17f0000000000001-1235\"", &t));
        assert!(!strong_eq(b"17f0000000000001-1234", &t));
        assert!(!strong_eq(b"\"17f0000000000001-1234\", \"x\"", &t));
        assert!(!strong_eq(b"*", &t));
    }

    proptest! {
        #[test]
        fn own_tag_always_matches(len: u64, stamp: u64, id: u64) {
            let t = ETag::from_version(&FileVersion { len, stamp, id });
            prop_assert!(t.as_bytes().len() <= MAX_ETAG_LEN);
            prop_assert!(matches_if_none_match(t.as_bytes(), &t));
            prop_assert!(strong_eq(t.as_bytes(), &t));
        }

        #[test]
        fn comparisons_never_panic(s in proptest::collection::vec(any::<u8>(), 0..64)) {
            let t = tag();
            let _ = matches_if_none_match(&s, &t);
            let _ = strong_eq(&s, &t);
        }
    }
}
