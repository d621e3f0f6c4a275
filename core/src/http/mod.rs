//! HTTP/1.1 subset: request head parser, response head encoder, ranges, conditionals, dates.
//!
//! Views borrow the caller's buffer; encoders follow `encoded_len()` + `encode(&mut [u8])`.

pub mod conditional;
pub mod date;
pub mod etag;
pub mod method;
pub mod range;
pub mod request;
pub mod response;
pub mod status;

/// Strips leading `OWS = *( SP / HTAB )` (RFC 9110 §5.6.3).
pub(crate) fn trim_ows_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// Strips leading and trailing `OWS = *( SP / HTAB )` (RFC 9110 §5.6.3).
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let mut s = trim_ows_start(s);
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
