//! `Accept-Encoding` (RFC 9110 §12.5.3) and the choice of a precompressed representation.
//!
//! ```text
//! Accept-Encoding  = #( codings [ weight ] )
//! codings          = content-coding / "identity" / "*"
//! weight           = OWS ";" OWS "q=" qvalue
//! qvalue           = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
//! ```
//!
//! satchel compresses nothing itself: it serves `name.br`, `name.zst` or `name.gz` when one sits
//! beside `name` and the client accepts that coding. This module is the pure part of that rule:
//! it parses what the client accepts and ranks the codings to try, best first.
//!
//! The rules, from §12.5.3:
//! * no `Accept-Encoding` field at all: the server sends identity (a client that says nothing
//!   may not decode anything, whatever the RFC allows);
//! * an empty field: only identity;
//! * `q=0` refuses a coding; `*` rates every coding not listed by name (identity included);
//! * codings are case-insensitive; `x-gzip` means `gzip` (§8.4.1.3);
//! * identity stays acceptable unless refused (`identity;q=0`, or `*;q=0` with no `identity`
//!   entry), and when the field does not rate it, it is the fallback: any accepted coding is
//!   preferred to it. A coding rated below an explicitly rated identity loses to it.
//! * among accepted codings the higher q-value wins, then the order br, zstd, gzip (smaller
//!   first). A member with a malformed weight is ignored, as if not listed.
//!
//! When identity is refused and no sibling is acceptable, the server still sends identity
//! (RFC 9110 §12.5.3 allows it; a 406 would help nobody).

use super::scan::{list_items, trim_ows};

/// A content coding satchel serves from a precompressed sibling file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Brotli (RFC 7932), sibling `name.br`.
    Br,
    /// Zstandard (RFC 8878), sibling `name.zst`.
    Zstd,
    /// gzip (RFC 1952), sibling `name.gz`.
    Gzip,
}

impl Coding {
    /// Every coding, in the order preferred when the client rates them equally.
    pub const PREFERENCE: [Self; 3] = [Self::Br, Self::Zstd, Self::Gzip];

    /// The `Content-Encoding` token.
    pub const fn token(self) -> &'static str {
        match self {
            Self::Br => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }

    /// The file-name suffix of the sibling holding this coding, dot included.
    pub const fn extension(self) -> &'static [u8] {
        match self {
            Self::Br => b".br",
            Self::Zstd => b".zst",
            Self::Gzip => b".gz",
        }
    }

    /// What the `ETag` of the encoded representation carries after the file's own tag, so
    /// that it never equals the identity representation's tag (RFC 9110 §8.8.3).
    pub const fn etag_suffix(self) -> &'static [u8] {
        match self {
            Self::Br => b"-br",
            Self::Zstd => b"-zst",
            Self::Gzip => b"-gz",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Br => 0,
            Self::Zstd => 1,
            Self::Gzip => 2,
        }
    }

    /// The coding named by `token` (case-insensitive; `x-gzip` is `gzip`).
    fn from_token(token: &[u8]) -> Option<Self> {
        let is = |name: &[u8]| token.eq_ignore_ascii_case(name);
        if is(b"br") {
            Some(Self::Br)
        } else if is(b"zstd") {
            Some(Self::Zstd)
        } else if is(b"gzip") || is(b"x-gzip") {
            Some(Self::Gzip)
        } else {
            None
        }
    }
}

/// A quality value in thousandths (`q=0.5` is 500), `0..=1000`.
type Quality = u16;

/// What a request's `Accept-Encoding` fields say, as far as satchel's codings go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AcceptEncoding {
    /// Whether any `Accept-Encoding` field was present.
    present: bool,
    /// The q-value given to each coding by name, in [`Coding::index`] order.
    named: [Option<Quality>; 3],
    /// The q-value of `identity`, if named.
    identity: Option<Quality>,
    /// The q-value of `*`, if present.
    star: Option<Quality>,
}

impl AcceptEncoding {
    /// What a request with no `Accept-Encoding` field accepts (for satchel: identity only).
    pub const fn absent() -> Self {
        Self {
            present: false,
            named: [None; 3],
            identity: None,
            star: None,
        }
    }

    /// Parses every `Accept-Encoding` field value of a request, in order (several fields are
    /// one comma-separated list, RFC 9110 §5.3). When a coding is listed twice, the first
    /// entry counts.
    pub fn parse<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> Self {
        let mut accept = Self::absent();
        for value in values {
            accept.present = true;
            for member in list_items(value) {
                let Some((name, q)) = parse_member(member) else {
                    continue;
                };
                let slot = if name == b"*" {
                    &mut accept.star
                } else if name.eq_ignore_ascii_case(b"identity") {
                    &mut accept.identity
                } else if let Some(coding) = Coding::from_token(name) {
                    &mut accept.named[coding.index()]
                } else {
                    continue;
                };
                slot.get_or_insert(q);
            }
        }
        accept
    }

    /// The q-value this field gives `coding` (by name, else through `*`; 0 when not accepted).
    fn quality(&self, coding: Coding) -> Quality {
        if !self.present {
            return 0;
        }
        self.named[coding.index()].or(self.star).unwrap_or(0)
    }

    /// The q-value identity must be beaten by, or `None` when the field leaves it unrated (then
    /// any accepted coding beats it).
    fn identity_rating(&self) -> Option<Quality> {
        self.identity.or(self.star)
    }

    /// The codings worth trying, best first: accepted (q > 0), not rated below identity, by
    /// q-value and then [`Coding::PREFERENCE`]. Empty when only identity will do.
    pub fn ranked(&self) -> Ranked {
        let mut ranked = Ranked {
            codings: [Coding::Br; 3],
            len: 0,
        };
        let floor = self.identity_rating().unwrap_or(0);
        for coding in Coding::PREFERENCE {
            let q = self.quality(coding);
            if q == 0 || q < floor {
                continue;
            }
            // Insert after every coding rated at least as high (stable: preference breaks ties).
            let len = usize::from(ranked.len);
            let at = ranked.codings[..len]
                .iter()
                .position(|&c| self.quality(c) < q)
                .unwrap_or(len);
            ranked.codings.copy_within(at..len, at + 1);
            ranked.codings[at] = coding;
            ranked.len += 1;
        }
        ranked
    }

    /// The best coding of those `available`, or `None` for identity.
    pub fn choose(&self, mut available: impl FnMut(Coding) -> bool) -> Option<Coding> {
        self.ranked().into_iter().find(|&c| available(c))
    }
}

/// The codings to try, best first (see [`AcceptEncoding::ranked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranked {
    codings: [Coding; 3],
    len: u8,
}

impl Ranked {
    /// The codings, best first.
    pub fn as_slice(&self) -> &[Coding] {
        self.codings.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl IntoIterator for Ranked {
    type Item = Coding;
    type IntoIter = core::iter::Take<core::array::IntoIter<Coding, 3>>;

    fn into_iter(self) -> Self::IntoIter {
        self.codings.into_iter().take(usize::from(self.len))
    }
}

/// One list member: `codings [ weight ]`. `None` when the weight is malformed (or a parameter
/// other than `q` is given, which no coding satchel knows takes).
fn parse_member(member: &[u8]) -> Option<(&[u8], Quality)> {
    let mut parts = member.splitn(2, |&b| b == b';');
    let name = trim_ows(parts.next()?);
    if name.is_empty() {
        return None;
    }
    let q = match parts.next() {
        None => 1000,
        Some(weight) => {
            let [b'q' | b'Q', b'=', value @ ..] = trim_ows(weight) else {
                return None;
            };
            parse_qvalue(value)?
        }
    };
    Some((name, q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in thousandths.
fn parse_qvalue(s: &[u8]) -> Option<Quality> {
    let (whole, frac) = match s {
        [w, b'.', frac @ ..] => (*w, frac),
        [w] => (*w, &[][..]),
        _ => return None,
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Quality = 0;
    for (i, &d) in frac.iter().enumerate() {
        thousandths += Quality::from(d - b'0') * [100, 10, 1][i];
    }
    match whole {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::{Br, Gzip, Zstd};

    fn ranked(values: &[&str]) -> std::vec::Vec<Coding> {
        AcceptEncoding::parse(values.iter().map(|v| v.as_bytes()))
            .ranked()
            .into_iter()
            .collect()
    }

    #[test]
    fn no_field_and_empty_field_mean_identity() {
        assert_eq!(ranked(&[]), []);
        assert_eq!(ranked(&[""]), []);
        assert_eq!(ranked(&[" , ,"]), []);
    }

    #[test]
    fn what_browsers_and_curl_send() {
        // Chromium, Firefox: all rated 1, satchel's preference decides.
        assert_eq!(ranked(&["gzip, deflate, br, zstd"]), [Br, Zstd, Gzip]);
        // curl --compressed.
        assert_eq!(ranked(&["deflate, gzip, br, zstd"]), [Br, Zstd, Gzip]);
        assert_eq!(ranked(&["gzip"]), [Gzip]);
        assert_eq!(ranked(&["br"]), [Br]);
        assert_eq!(ranked(&["deflate, compress"]), []);
    }

    #[test]
    fn q_values_order_before_preference() {
        assert_eq!(
            ranked(&["br;q=0.5, gzip;q=0.9, zstd;q=0.7"]),
            [Gzip, Zstd, Br]
        );
        assert_eq!(ranked(&["gzip;q=1.0, br;q=1"]), [Br, Gzip]);
        assert_eq!(ranked(&["gzip;q=0.001, br;q=0.002"]), [Br, Gzip]);
        // OWS around the semicolon, upper-case Q and coding names.
        assert_eq!(ranked(&["GZIP ; Q=0.5 , Br\t;\tq=0.4"]), [Gzip, Br]);
    }

    #[test]
    fn zero_refuses() {
        assert_eq!(ranked(&["br;q=0, gzip"]), [Gzip]);
        assert_eq!(ranked(&["gzip;q=0.000"]), []);
        assert_eq!(ranked(&["*;q=0"]), []);
        assert_eq!(ranked(&["*, br;q=0"]), [Zstd, Gzip]);
    }

    #[test]
    fn star_rates_what_is_not_named() {
        assert_eq!(ranked(&["*"]), [Br, Zstd, Gzip]);
        // br and zstd get 0.5 through `*`, as does identity: a tie with identity goes to the
        // coding.
        assert_eq!(ranked(&["gzip;q=0.9, *;q=0.5"]), [Gzip, Br, Zstd]);
        // `*` rates identity too (0.5 here), so codings rated below it lose to identity.
        assert_eq!(ranked(&["gzip;q=0.9, br;q=0.4, *;q=0.5"]), [Gzip, Zstd]);
    }

    #[test]
    fn identity_rated_explicitly_competes() {
        assert_eq!(ranked(&["gzip;q=0.5, identity"]), []);
        assert_eq!(ranked(&["gzip;q=0.5, identity;q=0.5"]), [Gzip]);
        assert_eq!(ranked(&["gzip, identity;q=0"]), [Gzip]);
        // Unrated identity is the fallback: any accepted coding beats it.
        assert_eq!(ranked(&["gzip;q=0.1"]), [Gzip]);
    }

    #[test]
    fn x_gzip_is_gzip_and_first_entry_counts() {
        assert_eq!(ranked(&["x-gzip"]), [Gzip]);
        assert_eq!(ranked(&["gzip;q=0, gzip"]), []);
        assert_eq!(ranked(&["gzip", "gzip;q=0"]), [Gzip]);
    }

    #[test]
    fn several_fields_are_one_list() {
        assert_eq!(ranked(&["gzip", "br;q=0.5"]), [Gzip, Br]);
    }

    #[test]
    fn malformed_weights_are_ignored() {
        for bad in [
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=0.1234",
            "gzip;q=",
            "gzip;q=.5",
            "gzip;q=abc",
            "gzip;level=9",
            "gzip;q=0.5;x=1",
            "gzip;q = 0.5",
        ] {
            assert_eq!(ranked(&[bad]), [], "{bad}");
        }
        // A bad member leaves the others alone.
        assert_eq!(ranked(&["gzip;q=9, br"]), [Br]);
        assert_eq!(ranked(&[";q=1, br"]), [Br]);
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue(b"0"), Some(0));
        assert_eq!(parse_qvalue(b"0."), Some(0));
        assert_eq!(parse_qvalue(b"0.5"), Some(500));
        assert_eq!(parse_qvalue(b"0.05"), Some(50));
        assert_eq!(parse_qvalue(b"0.999"), Some(999));
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        assert_eq!(parse_qvalue(b"1.001"), None);
        assert_eq!(parse_qvalue(b"-0"), None);
        assert_eq!(parse_qvalue(b""), None);
    }

    #[test]
    fn choose_takes_the_best_available() {
        let accept = AcceptEncoding::parse([&b"gzip, br, zstd"[..]]);
        assert_eq!(accept.choose(|_| true), Some(Br));
        assert_eq!(accept.choose(|c| c != Br), Some(Zstd));
        assert_eq!(accept.choose(|c| c == Gzip), Some(Gzip));
        assert_eq!(accept.choose(|_| false), None);
        assert_eq!(AcceptEncoding::absent().choose(|_| true), None);
    }

    proptest::proptest! {
        #[test]
        fn any_field_ranks_each_coding_at_most_once(
            values in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..3)
        ) {
            let accept = AcceptEncoding::parse(values.iter().map(|v| v.as_slice()));
            let r = accept.ranked();
            let s = r.as_slice();
            for (i, c) in s.iter().enumerate() {
                proptest::prop_assert!(!s[i + 1..].contains(c));
            }
        }
    }
}
