//! The `Range` request field (RFC 9110 §14.1-14.2), one byte range at most.
//!
//! ```text
//! Range            = ranges-specifier
//! ranges-specifier = range-unit "=" range-set
//! range-set        = 1#range-spec
//! range-spec       = int-range / suffix-range / other-range
//! int-range        = first-pos "-" [ last-pos ]
//! suffix-range     = "-" suffix-length
//! ```
//!
//! satchel honours a single `bytes` range and answers anything else with the whole file, as
//! RFC 9110 §14.2 allows ("A server MAY ignore the Range header field").

use super::scan::parse_u64;
use super::trim_ows;

/// What a `Range` field asks of a representation of a given size (PROTOCOL.md, "Conditional
/// and partial requests").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeRequest {
    /// Ignore the field and send the whole representation with 200: several ranges, another
    /// unit, an invalid range (`last < first`) or bad syntax.
    Full,
    /// Send bytes `first..=last` with 206; `first <= last < size` always holds.
    Partial {
        /// The first byte offset.
        first: u64,
        /// The last byte offset, inclusive.
        last: u64,
    },
    /// No byte of the representation is in the range: 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Evaluates a `Range` field value against a representation of `size` bytes.
///
/// - `bytes=a-b`: bytes `a..=min(b, size - 1)`;
/// - `bytes=a-`: bytes `a..=size - 1`;
/// - `bytes=-n`: the last `n` bytes, or the whole file (as a 206) when `n >= size`;
/// - `a >= size`, `-0`, or any valid range over an empty file: [`RangeRequest::Unsatisfiable`];
/// - more than one range, another unit, `b < a`, or bad syntax (including numbers that overflow
///   a `u64`): [`RangeRequest::Full`].
///
/// The unit is case-insensitive (RFC 9110 §14.1); optional whitespace around the value and
/// around the range-spec, and empty list elements, are tolerated (RFC 9110 §5.6.1).
pub fn evaluate_range(header: &[u8], size: u64) -> RangeRequest {
    let Some(spec) = parse_single_spec(header) else {
        return RangeRequest::Full;
    };
    let Some(last_index) = size.checked_sub(1) else {
        return RangeRequest::Unsatisfiable;
    };
    match spec {
        Spec::Int { first, .. } if first >= size => RangeRequest::Unsatisfiable,
        Spec::Int { first, last } => RangeRequest::Partial {
            first,
            last: last.map_or(last_index, |l| l.min(last_index)),
        },
        Spec::Suffix(0) => RangeRequest::Unsatisfiable,
        Spec::Suffix(n) => RangeRequest::Partial {
            first: size.saturating_sub(n),
            last: last_index,
        },
    }
}

/// A syntactically valid byte range-spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-[last]`, with `last >= first` when present.
    Int { first: u64, last: Option<u64> },
    /// `-n`.
    Suffix(u64),
}

/// The one `bytes` range-spec of `header`, or `None` if the field is to be ignored.
fn parse_single_spec(header: &[u8]) -> Option<Spec> {
    let header = trim_ows(header);
    let eq = header.iter().position(|&b| b == b'=')?;
    let (unit, set) = header.split_at(eq);
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let set = set.get(1..)?;
    let mut members = set
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|m| !m.is_empty());
    let spec = members.next()?;
    if members.next().is_some() {
        return None;
    }
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = spec.split_at(dash);
    let last = last.get(1..)?;
    if first.is_empty() {
        return parse_u64(last).map(Spec::Suffix);
    }
    let first = parse_u64(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(parse_u64(last)?)
    };
    // RFC 9110 §14.1.1: "A range-spec is invalid if [...] last-pos [is] less than first-pos".
    if last.is_some_and(|l| l < first) {
        return None;
    }
    Some(Spec::Int { first, last })
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::{Full, Partial, Unsatisfiable};
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;

    fn eval(h: &str, size: u64) -> RangeRequest {
        evaluate_range(h.as_bytes(), size)
    }

    #[test]
    fn first_last() {
        assert_eq!(
            eval("bytes=0-499", 1000),
            Partial {
                first: 0,
                last: 499
            }
        );
        assert_eq!(
            eval("bytes=500-999", 1000),
            Partial {
                first: 500,
                last: 999
            }
        );
        assert_eq!(eval("bytes=7-7", 1000), Partial { first: 7, last: 7 });
    }

    #[test]
    fn last_past_end_is_clamped() {
        assert_eq!(
            eval("bytes=500-5000", 1000),
            Partial {
                first: 500,
                last: 999
            }
        );
        assert_eq!(
            eval("bytes=0-18446744073709551615", 10),
            Partial { first: 0, last: 9 }
        );
    }

    #[test]
    fn open_ended() {
        assert_eq!(
            eval("bytes=9500-", 10000),
            Partial {
                first: 9500,
                last: 9999
            }
        );
        assert_eq!(eval("bytes=0-", 1), Partial { first: 0, last: 0 });
    }

    #[test]
    fn suffix() {
        assert_eq!(
            eval("bytes=-500", 10000),
            Partial {
                first: 9500,
                last: 9999
            }
        );
        assert_eq!(eval("bytes=-1", 10), Partial { first: 9, last: 9 });
    }

    #[test]
    fn suffix_longer_than_file_is_whole_file_as_206() {
        assert_eq!(eval("bytes=-10", 10), Partial { first: 0, last: 9 });
        assert_eq!(eval("bytes=-5000", 10), Partial { first: 0, last: 9 });
    }

    #[test]
    fn zero_suffix_is_unsatisfiable() {
        assert_eq!(eval("bytes=-0", 10), Unsatisfiable);
    }

    #[test]
    fn start_past_end_is_unsatisfiable() {
        assert_eq!(eval("bytes=10-", 10), Unsatisfiable);
        assert_eq!(eval("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(eval("bytes=18446744073709551615-", 10), Unsatisfiable);
    }

    #[test]
    fn empty_file_is_unsatisfiable_for_any_valid_range() {
        assert_eq!(eval("bytes=0-", 0), Unsatisfiable);
        assert_eq!(eval("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(eval("bytes=-1", 0), Unsatisfiable);
        assert_eq!(eval("bytes=-0", 0), Unsatisfiable);
        // ...but bad syntax is still ignored.
        assert_eq!(eval("bytes=x", 0), Full);
        assert_eq!(eval("bytes=5-1", 0), Full);
    }

    #[test]
    fn several_ranges_are_ignored() {
        assert_eq!(eval("bytes=0-1,5-6", 10), Full);
        assert_eq!(eval("bytes=0-1, -2", 10), Full);
    }

    #[test]
    fn other_units_are_ignored() {
        assert_eq!(eval("items=0-1", 10), Full);
        assert_eq!(eval("byte=0-1", 10), Full);
        assert_eq!(eval("=0-1", 10), Full);
    }

    #[test]
    fn unit_is_case_insensitive() {
        assert_eq!(eval("BYTES=0-1", 10), Partial { first: 0, last: 1 });
        assert_eq!(eval("Bytes=0-1", 10), Partial { first: 0, last: 1 });
    }

    #[test]
    fn reversed_range_is_ignored() {
        assert_eq!(eval("bytes=5-4", 10), Full);
    }

    #[test]
    fn ows_and_empty_elements_are_tolerated() {
        assert_eq!(eval(" bytes= 0-1 ", 10), Partial { first: 0, last: 1 });
        assert_eq!(eval("bytes=\t2-3\t", 10), Partial { first: 2, last: 3 });
        assert_eq!(eval("bytes=, 0-1 ,", 10), Partial { first: 0, last: 1 });
    }

    #[test]
    fn bad_syntax_is_ignored() {
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=--1",
            "bytes=1",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes=1- 2",
            "bytes =0-1",
            "bytes=0x1-2",
            "bytes=,",
            "bytes=18446744073709551616-",
            "bytes=-18446744073709551616",
            "bytes=0-18446744073709551616",
            "bytes=1-2;",
        ] {
            assert_eq!(eval(bad, 100), Full, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn partial_ranges_are_inside_the_file(
            a in prop::option::of(0u64..2000),
            b in prop::option::of(0u64..2000),
            size in 0u64..1500,
        ) {
            let h = std::format!(
                "bytes={}-{}",
                a.map(|a| a.to_string()).unwrap_or_default(),
                b.map(|b| b.to_string()).unwrap_or_default(),
            );
            if let Partial { first, last } = evaluate_range(h.as_bytes(), size) {
                prop_assert!(first <= last);
                prop_assert!(last < size);
            }
        }

        #[test]
        fn any_input_is_inside_the_file(s in "[bytesBYTES= ,0-9-]{0,30}", size: u64) {
            if let Partial { first, last } = evaluate_range(s.as_bytes(), size) {
                prop_assert!(first <= last);
                prop_assert!(last < size);
            }
        }

        #[test]
        fn never_panics(s in proptest::collection::vec(any::<u8>(), 0..48), size: u64) {
            let _ = evaluate_range(&s, size);
        }
    }
}
