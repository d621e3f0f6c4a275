//! Conditional and partial GET/HEAD (RFC 9110 §13.2.2, §14.2), as PROTOCOL.md "Conditional and
//! partial requests" narrows them.
//!
//! The server evaluates, in this order (RFC 9110 §13.2.2 steps 3 to 6; satchel sends no
//! `If-Match` / `If-Unmodified-Since` semantics because it serves no writes):
//!
//! 1. `If-None-Match` → 304 when it matches (weak comparison, `*`);
//! 2. only when there is no `If-None-Match`: `If-Modified-Since` → 304 when the file is not
//!    newer; an unparseable date is ignored;
//! 3. `Range`, honoured only when `If-Range` is absent or matches (a strong ETag equal to the
//!    file's, or an HTTP-date exactly equal to its `Last-Modified`); otherwise the whole file.

use super::date::parse_http_date;
use super::etag::{matches_if_none_match, strong_eq, ETag};
use super::range::{evaluate_range, RangeRequest};

/// The validators of the selected representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators<'a> {
    /// Its strong entity-tag.
    pub etag: &'a ETag,
    /// Its modification time in seconds since the Unix epoch, if the source has one.
    pub last_modified: Option<u64>,
}

/// The request fields that make a request conditional or partial, as raw field values.
///
/// `None` means the field was absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Conditions<'a> {
    /// `If-None-Match`.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a [u8]>,
    /// `If-Range`.
    pub if_range: Option<&'a [u8]>,
    /// `Range`.
    pub range: Option<&'a [u8]>,
}

/// How to answer a request for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// 304 Not Modified, no body.
    NotModified,
    /// 200 OK with the whole file.
    Full,
    /// 206 Partial Content with bytes `first..=last` (`first <= last < size`).
    Partial {
        /// The first byte offset.
        first: u64,
        /// The last byte offset, inclusive.
        last: u64,
    },
    /// 416 Range Not Satisfiable, with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Decides how to answer a request with conditions `c` for a file of `size` bytes with
/// validators `v`.
///
/// Conditionals and `Range` apply to GET and HEAD only (RFC 9110 §13.1.2-§13.1.5, §14.2); for
/// any other method (`is_get_or_head == false`) the answer is [`Decision::Full`]. HEAD gets the
/// same decision as GET, so it answers exactly the headers GET would (PROTOCOL.md).
pub fn evaluate(
    c: &Conditions<'_>,
    v: &Validators<'_>,
    size: u64,
    is_get_or_head: bool,
) -> Decision {
    if !is_get_or_head {
        return Decision::Full;
    }
    if let Some(inm) = c.if_none_match {
        // RFC 9110 §13.2.2 step 3: "if the field value is false [no match] [...] respond 304".
        if matches_if_none_match(inm, v.etag) {
            return Decision::NotModified;
        }
    } else if let Some(ims) = c.if_modified_since {
        // Step 4, only "when If-None-Match is not present".
        if not_modified_since(ims, v.last_modified) {
            return Decision::NotModified;
        }
    }
    let Some(range) = c.range else {
        return Decision::Full;
    };
    if let Some(if_range) = c.if_range {
        // Step 5: "if the If-Range condition evaluates to false, ignore the Range header field".
        if !if_range_matches(if_range, v) {
            return Decision::Full;
        }
    }
    match evaluate_range(range, size) {
        RangeRequest::Full => Decision::Full,
        RangeRequest::Partial { first, last } => Decision::Partial { first, last },
        RangeRequest::Unsatisfiable => Decision::Unsatisfiable,
    }
}

/// `If-Modified-Since` is false ("not modified") when the file's time is at or before the date
/// (RFC 9110 §13.1.3). Without a modification time or a valid date the field is ignored.
fn not_modified_since(field: &[u8], last_modified: Option<u64>) -> bool {
    match (parse_http_date(field), last_modified) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// Whether an `If-Range` value matches (RFC 9110 §13.1.5):
///
/// ```text
/// If-Range = entity-tag / HTTP-date
/// ```
///
/// An entity-tag must be strong and equal; a date must equal `Last-Modified` exactly. Anything
/// else, a weak tag or an unparseable value included, does not match.
fn if_range_matches(field: &[u8], v: &Validators<'_>) -> bool {
    let trimmed = field.trim_ascii_start();
    if trimmed.starts_with(b"\"") || trimmed.starts_with(b"W/") {
        strong_eq(field, v.etag)
    } else {
        parse_http_date(field).is_some_and(|date| Some(date) == v.last_modified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::FileVersion;

    const SIZE: u64 = 1000;
    const MODIFIED: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
    const AT: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &[u8] = b"Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &[u8] = b"Sun, 06 Nov 1994 08:49:38 GMT";

    fn etag() -> ETag {
        ETag::from_version(&FileVersion {
            len: SIZE,
            stamp: 7,
            id: 1,
        })
    }

    fn decide(c: Conditions<'_>) -> Decision {
        decide_with(c, Some(MODIFIED))
    }

    fn decide_with(c: Conditions<'_>, last_modified: Option<u64>) -> Decision {
        let tag = etag();
        evaluate(
            &c,
            &Validators {
                etag: &tag,
                last_modified,
            },
            SIZE,
            true,
        )
    }

    const TAG: &[u8] = b"\"7-3e8\"";

    #[test]
    fn the_test_tag_is_the_files_tag() {
        assert_eq!(etag().as_bytes(), TAG);
    }

    #[test]
    fn no_conditions_is_full() {
        assert_eq!(decide(Conditions::default()), Decision::Full);
    }

    #[test]
    fn if_none_match_matching_is_304() {
        let c = Conditions {
            if_none_match: Some(TAG),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::NotModified);
    }

    #[test]
    fn if_none_match_weak_and_star_are_304() {
        for inm in [&b"W/\"7-3e8\""[..], b"*", b"\"a\", \"7-3e8\""] {
            let c = Conditions {
                if_none_match: Some(inm),
                ..Default::default()
            };
            assert_eq!(decide(c), Decision::NotModified);
        }
    }

    #[test]
    fn if_none_match_not_matching_is_full() {
        let c = Conditions {
            if_none_match: Some(b"\"other\""),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::Full);
    }

    #[test]
    fn if_none_match_overrides_if_modified_since() {
        // A non-matching If-None-Match wins over an If-Modified-Since that would say 304.
        let c = Conditions {
            if_none_match: Some(b"\"other\""),
            if_modified_since: Some(AFTER),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::Full);
    }

    #[test]
    fn if_modified_since_not_newer_is_304() {
        for ims in [AT, AFTER] {
            let c = Conditions {
                if_modified_since: Some(ims),
                ..Default::default()
            };
            assert_eq!(decide(c), Decision::NotModified);
        }
    }

    #[test]
    fn if_modified_since_newer_is_full() {
        let c = Conditions {
            if_modified_since: Some(BEFORE),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::Full);
    }

    #[test]
    fn if_modified_since_unparseable_is_ignored() {
        let c = Conditions {
            if_modified_since: Some(b"yesterday"),
            range: Some(b"bytes=0-9"),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::Partial { first: 0, last: 9 });
    }

    #[test]
    fn if_modified_since_without_last_modified_is_ignored() {
        let c = Conditions {
            if_modified_since: Some(AFTER),
            ..Default::default()
        };
        assert_eq!(decide_with(c, None), Decision::Full);
    }

    #[test]
    fn range_alone_is_partial() {
        let c = Conditions {
            range: Some(b"bytes=-10"),
            ..Default::default()
        };
        assert_eq!(
            decide(c),
            Decision::Partial {
                first: 990,
                last: 999
            }
        );
    }

    #[test]
    fn range_past_end_is_unsatisfiable() {
        let c = Conditions {
            range: Some(b"bytes=1000-"),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::Unsatisfiable);
    }

    #[test]
    fn several_ranges_other_unit_or_bad_syntax_is_full() {
        for r in [&b"bytes=0-1,3-4"[..], b"lines=0-1", b"bytes=zz"] {
            let c = Conditions {
                range: Some(r),
                ..Default::default()
            };
            assert_eq!(decide(c), Decision::Full);
        }
    }

    #[test]
    fn if_range_matching_strong_etag_honours_range() {
        let c = Conditions {
            if_range: Some(TAG),
            range: Some(b"bytes=0-0"),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::Partial { first: 0, last: 0 });
    }

    #[test]
    fn if_range_other_or_weak_etag_is_full() {
        for ir in [&b"\"other\""[..], b"W/\"7-3e8\""] {
            let c = Conditions {
                if_range: Some(ir),
                range: Some(b"bytes=0-0"),
                ..Default::default()
            };
            assert_eq!(decide(c), Decision::Full);
        }
    }

    #[test]
    fn if_range_exact_date_honours_range() {
        let c = Conditions {
            if_range: Some(AT),
            range: Some(b"bytes=5-"),
            ..Default::default()
        };
        assert_eq!(
            decide(c),
            Decision::Partial {
                first: 5,
                last: 999
            }
        );
    }

    #[test]
    fn if_range_other_date_is_full() {
        for ir in [BEFORE, AFTER] {
            let c = Conditions {
                if_range: Some(ir),
                range: Some(b"bytes=5-"),
                ..Default::default()
            };
            assert_eq!(decide(c), Decision::Full);
        }
    }

    #[test]
    fn if_range_date_without_last_modified_is_full() {
        let c = Conditions {
            if_range: Some(AT),
            range: Some(b"bytes=5-"),
            ..Default::default()
        };
        assert_eq!(decide_with(c, None), Decision::Full);
    }

    #[test]
    fn if_range_garbage_is_full() {
        let c = Conditions {
            if_range: Some(b"soon"),
            range: Some(b"bytes=5-"),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::Full);
    }

    #[test]
    fn if_range_without_range_is_full() {
        let c = Conditions {
            if_range: Some(TAG),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::Full);
    }

    #[test]
    fn if_range_matching_but_unsatisfiable_is_416() {
        let c = Conditions {
            if_range: Some(TAG),
            range: Some(b"bytes=2000-"),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::Unsatisfiable);
    }

    #[test]
    fn not_modified_wins_over_range() {
        let c = Conditions {
            if_none_match: Some(TAG),
            range: Some(b"bytes=0-0"),
            ..Default::default()
        };
        assert_eq!(decide(c), Decision::NotModified);
    }

    #[test]
    fn other_methods_ignore_conditions() {
        let tag = etag();
        let c = Conditions {
            if_none_match: Some(TAG),
            range: Some(b"bytes=0-0"),
            ..Default::default()
        };
        let v = Validators {
            etag: &tag,
            last_modified: Some(MODIFIED),
        };
        assert_eq!(evaluate(&c, &v, SIZE, false), Decision::Full);
    }
}
