//! The one byte table and field scanner under both parsers (httparse's model: one
//! `parse_headers` serves `Request::parse` and `Response::parse`).
//!
//! [`Cursor`] reads a head strictly left to right and decides every error from the bytes
//! already read, so a prefix of a head is either [`Stop::Partial`] or fails exactly as the whole
//! head does, however the input was split. [`fields`] scans the header section with it:
//!
//! ```text
//! field-line   = field-name ":" OWS field-value OWS      ; RFC 9112 §5
//! field-name   = token                                   ; RFC 9110 §5.1
//! field-value  = *field-content                          ; RFC 9110 §5.5
//! field-vchar  = VCHAR / obs-text
//! OWS          = *( SP / HTAB )                          ; RFC 9110 §5.6.3
//! ```
//!
//! The rules are those both directions need: a bare LF is accepted as CRLF (RFC 9112 §2.2), a CR
//! not followed by LF is an error wherever it stands, obs-fold and whitespace before the colon
//! are errors (RFC 9112 §5.1, §5.2), and a value is trimmed of OWS (SP and HTAB only).

/// Byte classes, one bit each, looked up in [`CLASS`].
const TCHAR: u8 = 1;
/// `field-vchar`, SP or HTAB: what a field value (or a reason phrase) may hold.
const VALUE: u8 = 2;
/// VCHAR but `#`: what a request-target may hold (RFC 9112 §3.2; a fragment is never sent).
const TARGET: u8 = 4;

/// The byte table: `CLASS[b]` holds the classes of `b`.
static CLASS: [u8; 256] = build_classes();

const fn build_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        // tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
        //         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA      ; RFC 9110 §5.6.2
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            class |= TCHAR;
        }
        if b == b'\t' || (b >= 0x20 && b != 0x7f) {
            class |= VALUE;
        }
        if b >= 0x21 && b <= 0x7e && b != b'#' {
            class |= TARGET;
        }
        table[i] = class;
        i += 1;
    }
    table
}

fn has(b: u8, class: u8) -> bool {
    CLASS.get(usize::from(b)).is_some_and(|c| c & class != 0)
}

/// Whether `b` may appear in a token (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    has(b, TCHAR)
}

/// Whether `b` may appear in a field value or reason phrase: VCHAR, obs-text, SP, HTAB
/// (RFC 9110 §5.5); never another control byte.
pub(crate) fn is_value_byte(b: u8) -> bool {
    has(b, VALUE)
}

/// Whether `b` may appear in a request-target: visible ASCII but `#`.
pub(crate) fn is_target_byte(b: u8) -> bool {
    has(b, TARGET)
}

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

/// The non-empty items of a comma-separated list (RFC 9110 §5.6.1), trimmed of OWS.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

/// `1*DIGIT` as a `u64`; `None` when empty, not all digits, or overflowing.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// One header field, borrowed from the buffer it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'b> {
    /// The field name as sent (a token; compare it case-insensitively).
    pub name: &'b [u8],
    /// The field value with leading and trailing whitespace (OWS) removed.
    pub value: &'b [u8],
}

/// What the scanner itself rejects; each parser maps it to its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// A CR not followed by LF.
    BareCr,
    /// The head ran into the cursor's limit.
    HeadTooLarge,
    /// More fields than the caller allows.
    TooManyFields,
    /// A field name is empty or not a token.
    HeaderName,
    /// A field line without a colon.
    MissingColon,
    /// Whitespace between a field name and its colon.
    SpaceBeforeColon,
    /// A line starting with whitespace (obs-fold).
    ObsFold,
    /// A control byte other than HTAB in a field value.
    HeaderValue,
}

/// Why scanning stopped early.
#[derive(Debug)]
pub(crate) enum Stop<E> {
    /// The head is not complete yet.
    Partial,
    /// The head is invalid.
    Error(E),
}

impl<E> From<E> for Stop<E> {
    fn from(e: E) -> Self {
        Self::Error(e)
    }
}

/// A forward-only reader over the part of the buffer a head may occupy.
pub(crate) struct Cursor<'b> {
    buf: &'b [u8],
    /// The offset of the next byte.
    pub(crate) pos: usize,
    /// `min(buf.len(), limit)`: the head, line endings included, must fit before it.
    end: usize,
    /// Whether `end` is the limit rather than the end of the input.
    end_is_limit: bool,
}

impl<'b> Cursor<'b> {
    /// A cursor at the start of `buf`; a head longer than `limit` bytes is
    /// [`ScanError::HeadTooLarge`] (`usize::MAX`: the caller decides from its buffer size).
    pub(crate) fn new(buf: &'b [u8], limit: usize) -> Self {
        Self {
            buf,
            pos: 0,
            end: buf.len().min(limit),
            end_is_limit: buf.len() >= limit,
        }
    }

    /// The next byte; running out of input is `Partial`, running into the limit is
    /// [`ScanError::HeadTooLarge`].
    pub(crate) fn next<E: From<ScanError>>(&mut self) -> Result<u8, Stop<E>> {
        let b = if self.pos < self.end {
            self.buf.get(self.pos).copied()
        } else {
            None
        };
        match b {
            Some(b) => {
                self.pos += 1;
                Ok(b)
            }
            None if self.end_is_limit => Err(Stop::Error(ScanError::HeadTooLarge.into())),
            None => Err(Stop::Partial),
        }
    }

    /// Completes a line ending whose first byte `b` was just read: LF, or CR LF.
    /// Returns `false` if `b` is not a line ending.
    pub(crate) fn line_end<E: From<ScanError>>(&mut self, b: u8) -> Result<bool, Stop<E>> {
        match b {
            b'\n' => Ok(true),
            b'\r' => match self.next()? {
                b'\n' => Ok(true),
                _ => Err(Stop::Error(ScanError::BareCr.into())),
            },
            _ => Ok(false),
        }
    }

    /// Reads up to and including a line ending, every byte before it checked with `ok`
    /// (`bad` otherwise); returns the line without its ending.
    pub(crate) fn rest_of_line<E: From<ScanError>>(
        &mut self,
        ok: fn(u8) -> bool,
        bad: E,
    ) -> Result<&'b [u8], Stop<E>> {
        let start = self.pos;
        loop {
            let b = self.next()?;
            let at = self.pos - 1;
            if self.line_end(b)? {
                return Ok(self.slice(start, at));
            }
            if !ok(b) {
                return Err(Stop::Error(bad));
            }
        }
    }

    /// `buf[start..end]`; callers pass offsets already scanned, so this never falls back.
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'b [u8] {
        self.buf.get(start..end).unwrap_or_default()
    }
}

/// Scans the header section through the empty line that ends it, handing every field to
/// `each` in order; more than `max` fields is [`ScanError::TooManyFields`].
pub(crate) fn fields<'b, E: From<ScanError>>(
    cur: &mut Cursor<'b>,
    max: usize,
    mut each: impl FnMut(Header<'b>) -> Result<(), E>,
) -> Result<(), Stop<E>> {
    let mut count = 0;
    loop {
        let start = cur.pos;
        let b = cur.next()?;
        if cur.line_end(b)? {
            return Ok(());
        }
        if b == b' ' || b == b'\t' {
            return Err(Stop::Error(ScanError::ObsFold.into()));
        }
        if count == max {
            return Err(Stop::Error(ScanError::TooManyFields.into()));
        }
        count += 1;
        each(field_line(cur, start, b)?)?;
    }
}

/// Scans `field-name ":" OWS field-value OWS` and its line ending; `first` (at `start`) has
/// been read already and is neither whitespace nor a line ending.
fn field_line<'b, E: From<ScanError>>(
    cur: &mut Cursor<'b>,
    start: usize,
    first: u8,
) -> Result<Header<'b>, Stop<E>> {
    let mut b = first;
    while b != b':' {
        let err = match b {
            b' ' | b'\t' => ScanError::SpaceBeforeColon,
            _ if cur.line_end(b)? => ScanError::MissingColon,
            _ if !is_tchar(b) => ScanError::HeaderName,
            _ => {
                b = cur.next()?;
                continue;
            }
        };
        return Err(Stop::Error(err.into()));
    }
    let name = cur.slice(start, cur.pos - 1);
    if name.is_empty() {
        return Err(Stop::Error(ScanError::HeaderName.into()));
    }
    let value = cur.rest_of_line(is_value_byte, ScanError::HeaderValue.into())?;
    Ok(Header {
        name,
        value: trim_ows(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_grammar() {
        for b in 0..=255u8 {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), tchar, "tchar {b:#x}");
            let value = b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80;
            assert_eq!(is_value_byte(b), value, "value {b:#x}");
            assert_eq!(is_target_byte(b), b.is_ascii_graphic() && b != b'#');
        }
    }

    #[test]
    fn ows_is_space_and_tab_only() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        // A form feed is not OWS (the old client trimmed it with `trim_ascii`).
        assert_eq!(trim_ows(b"\x0ca\x0c"), b"\x0ca\x0c");
    }

    #[test]
    fn parse_u64_bounds() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1a"), None);
    }
}
