//! `Accept`, as far as the server reads it: which listing form the client prefers.

use crate::http::trim_ows;

/// Whether an `Accept` value prefers `text/plain` over `text/html` (the client's listing form).
pub(super) fn prefers_text(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut plain = None;
    let mut html = None;
    for item in accept.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let media = trim_ows(parts.next().unwrap_or_default());
        let q = parts
            .filter_map(|p| {
                let p = trim_ows(p);
                p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q="))
            })
            .map(parse_qvalue)
            .next()
            .unwrap_or(1000);
        if media.eq_ignore_ascii_case(b"text/plain") {
            plain = plain.max(Some(q));
        } else if media.eq_ignore_ascii_case(b"text/html") {
            html = html.max(Some(q));
        }
    }
    match (plain, html) {
        (Some(p), Some(h)) => p > 0 && p > h,
        (Some(p), None) => p > 0,
        _ => false,
    }
}

/// An RFC 9110 §12.4.2 qvalue in thousandths; malformed values count as 0.
fn parse_qvalue(v: &[u8]) -> u16 {
    match v {
        [b'1', rest @ ..] if rest.iter().all(|&b| b == b'.' || b == b'0') => 1000,
        [b'0'] | [b'0', b'.'] => 0,
        [b'0', b'.', digits @ ..] if digits.len() <= 3 && digits.iter().all(u8::is_ascii_digit) => {
            let mut q = 0u16;
            for i in 0..3 {
                q = q * 10 + digits.get(i).map_or(0, |d| u16::from(d - b'0'));
            }
            q
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_only_when_preferred() {
        assert!(!prefers_text(None));
        assert!(prefers_text(Some(b"text/plain")));
        assert!(!prefers_text(Some(b"text/html, text/plain;q=0.5")));
        assert!(prefers_text(Some(b"text/html;q=0.4 , TEXT/PLAIN; Q=0.9")));
        assert!(!prefers_text(Some(b"text/plain;q=0")));
        assert!(!prefers_text(Some(b"text/plain;q=1, text/html")));
        assert_eq!(parse_qvalue(b"0.123"), 123);
        assert_eq!(parse_qvalue(b"0.5"), 500);
        assert_eq!(parse_qvalue(b"1.000"), 1000);
        assert_eq!(parse_qvalue(b"2"), 0);
    }
}
