//! Folder listings (PROTOCOL.md, "Listings"): percent-encoding, HTML escaping and the two page
//! forms, written into any [`core::fmt::Write`] without allocating.
//!
//! On a board the sink is a `heapless::String<N>` (a full one makes the write fail with
//! [`fmt::Error`]); on the host, a `String`.

use core::fmt::{self, Write};

use crate::percent::{self, Keep};
use crate::source::ListingStyle;

/// One entry of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The file or folder name, raw bytes as the file system gives them (not encoded).
    pub name: &'a [u8],
    /// Whether it is a folder (listed with a trailing `/`).
    pub is_dir: bool,
    /// The size in bytes (a folder's is shown as `-` in HTML).
    pub size: u64,
}

/// Writes a folder listing, entry by entry.
///
/// The caller supplies the entries already in listing order: folders first, then files, each
/// group sorted as it likes (by name, usually). The writer does not reorder or buffer them.
///
/// ```text
/// HTML:  <a href="a%20b.txt">a b.txt</a>   1234      (inside a <pre>)
/// text:  a%20b.txt<TAB>1234<LF>                      (folders: name/<TAB>size)
/// ```
#[derive(Debug)]
pub struct ListingWriter<W> {
    out: W,
    style: ListingStyle,
}

impl<W: Write> ListingWriter<W> {
    /// Starts a listing of `folder` in `style`, writing the page head for HTML.
    ///
    /// `folder` is the decoded path of the folder below the root, without leading or trailing
    /// slash (empty for the root, as [`crate::path::SafePath::as_bytes`] gives it). It is shown
    /// as `/folder/` in the title, and every folder but the root gets a `../` link.
    ///
    /// # Errors
    /// [`fmt::Error`] when the sink refuses the text (full).
    pub fn begin(mut out: W, style: ListingStyle, folder: &[u8]) -> Result<Self, fmt::Error> {
        if style == ListingStyle::Html {
            let title = |out: &mut W| -> fmt::Result {
                out.write_str("Index of /")?;
                if !folder.is_empty() {
                    html_escape(folder, out)?;
                    out.write_str("/")?;
                }
                Ok(())
            };
            out.write_str("<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>")?;
            title(&mut out)?;
            out.write_str("</title></head>\n<body>\n<h1>")?;
            title(&mut out)?;
            out.write_str("</h1>\n<hr>\n<pre>\n")?;
            if !folder.is_empty() {
                out.write_str("<a href=\"../\">../</a>\n")?;
            }
        }
        Ok(Self { out, style })
    }

    /// Writes one entry.
    ///
    /// # Errors
    /// [`fmt::Error`] when the sink refuses the text (full).
    pub fn entry(&mut self, entry: &Entry<'_>) -> fmt::Result {
        let slash = if entry.is_dir { "/" } else { "" };
        match self.style {
            ListingStyle::Html => {
                self.out.write_str("<a href=\"")?;
                // Percent-encoding leaves `&` and `'` (sub-delims): escape them for the attribute.
                percent_encode_path_segment(entry.name, &mut HtmlEscaper(&mut self.out))?;
                self.out.write_str(slash)?;
                self.out.write_str("\">")?;
                html_escape(entry.name, &mut self.out)?;
                self.out.write_str(slash)?;
                self.out.write_str("</a>\t")?;
                if entry.is_dir {
                    self.out.write_str("-\n")
                } else {
                    writeln!(self.out, "{}", entry.size)
                }
            }
            ListingStyle::Text => {
                percent_encode_path_segment(entry.name, &mut self.out)?;
                writeln!(self.out, "{slash}\t{}", entry.size)
            }
        }
    }

    /// Ends the listing (closing the HTML page) and returns the sink.
    ///
    /// # Errors
    /// [`fmt::Error`] when the sink refuses the text (full).
    pub fn finish(mut self) -> Result<W, fmt::Error> {
        if self.style == ListingStyle::Html {
            self.out.write_str("</pre>\n<hr>\n</body>\n</html>\n")?;
        }
        Ok(self.out)
    }
}

/// Percent-encodes `name` as one path segment (RFC 3986 §2.1, upper-case hex).
///
/// Unreserved characters and sub-delims stay; everything else is encoded, including `%`, `/`,
/// `?`, `#`, `:`, `@`, space, controls and every non-ASCII byte.
///
/// # Errors
/// [`fmt::Error`] when the sink refuses the text (full).
pub fn percent_encode_path_segment<W: Write + ?Sized>(name: &[u8], out: &mut W) -> fmt::Result {
    // Kept bytes and escapes are ASCII, hence UTF-8.
    percent::encode(name, Keep::Segment, |run| {
        out.write_str(core::str::from_utf8(run).map_err(|_| fmt::Error)?)
    })
}

/// Percent-encodes a path segment by segment, keeping its `/` separators (for `Location:`).
///
/// # Errors
/// [`fmt::Error`] when the sink refuses the text (full).
pub fn percent_encode_path<W: Write + ?Sized>(path: &[u8], out: &mut W) -> fmt::Result {
    for (i, segment) in path.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.write_str("/")?;
        }
        percent_encode_path_segment(segment, out)?;
    }
    Ok(())
}

/// Writes `text` escaped for HTML text and double- or single-quoted attribute values: `&`, `<`,
/// `>`, `"` and `'` become character references; bytes that are not UTF-8 become U+FFFD.
///
/// # Errors
/// [`fmt::Error`] when the sink refuses the text (full).
pub fn html_escape<W: Write + ?Sized>(text: &[u8], out: &mut W) -> fmt::Result {
    for chunk in text.utf8_chunks() {
        escape_str(chunk.valid(), out)?;
        if !chunk.invalid().is_empty() {
            out.write_char(char::REPLACEMENT_CHARACTER)?;
        }
    }
    Ok(())
}

fn escape_str<W: Write + ?Sized>(s: &str, out: &mut W) -> fmt::Result {
    let mut rest = s;
    while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
        let (plain, tail) = rest.split_at(i);
        out.write_str(plain)?;
        let mut chars = tail.chars();
        out.write_str(match chars.next() {
            Some('&') => "&amp;",
            Some('<') => "&lt;",
            Some('>') => "&gt;",
            Some('"') => "&quot;",
            _ => "&#39;",
        })?;
        rest = chars.as_str();
    }
    out.write_str(rest)
}

/// A sink that HTML-escapes what is written through it.
struct HtmlEscaper<'w, W: ?Sized>(&'w mut W);

impl<W: Write + ?Sized> Write for HtmlEscaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_str(s, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    fn enc(name: &[u8]) -> String {
        let mut s = String::new();
        percent_encode_path_segment(name, &mut s).unwrap();
        s
    }

    fn esc(name: &[u8]) -> String {
        let mut s = String::new();
        html_escape(name, &mut s).unwrap();
        s
    }

    fn decode(s: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(core::str::from_utf8(&hex).ok()?, 16).ok()?);
            } else {
                out.push(b);
            }
        }
        Some(out)
    }

    #[test]
    fn segment_keeps_unreserved_and_sub_delims() {
        assert_eq!(enc(b"AZaz09-._~"), "AZaz09-._~");
        assert_eq!(enc(b"!$&'()*+,;="), "!$&'()*+,;=");
    }

    #[test]
    fn segment_encodes_the_rest() {
        assert_eq!(enc(b"a b"), "a%20b");
        assert_eq!(enc(b"100%"), "100%25");
        assert_eq!(enc(b"what?#x"), "what%3F%23x");
        assert_eq!(enc(b"a/b"), "a%2Fb");
        assert_eq!(enc(b"javascript:alert(1)"), "javascript%3Aalert(1)");
        assert_eq!(enc(b"me@host"), "me%40host");
        assert_eq!(enc(b"tab\there\0"), "tab%09here%00");
        assert_eq!(enc("caf\u{e9}".as_bytes()), "caf%C3%A9");
        assert_eq!(enc(b"\xff"), "%FF");
        assert_eq!(enc(b"<\"'>"), "%3C%22'%3E");
    }

    #[test]
    fn path_keeps_slashes() {
        let mut s = String::new();
        percent_encode_path(b"my docs/r\xc3\xa9sum\xc3\xa9 #1/", &mut s).unwrap();
        assert_eq!(s, "my%20docs/r%C3%A9sum%C3%A9%20%231/");
        let mut s = String::new();
        percent_encode_path(b"", &mut s).unwrap();
        assert_eq!(s, "");
    }

    #[test]
    fn html_escape_specials_and_invalid_utf8() {
        assert_eq!(esc(b"<b>&\"x'"), "&lt;b&gt;&amp;&quot;x&#39;");
        assert_eq!(esc("\u{e9}t\u{e9}".as_bytes()), "\u{e9}t\u{e9}");
        assert_eq!(esc(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(esc(b""), "");
    }

    #[test]
    fn html_listing_page() {
        let mut w = ListingWriter::begin(String::new(), ListingStyle::Html, b"docs/<x>").unwrap();
        w.entry(&Entry {
            name: b"sub dir",
            is_dir: true,
            size: 0,
        })
        .unwrap();
        w.entry(&Entry {
            name: b"a&b's.txt",
            is_dir: false,
            size: 1234,
        })
        .unwrap();
        let page = w.finish().unwrap();
        assert_eq!(
            page,
            "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\">\
             <title>Index of /docs/&lt;x&gt;/</title></head>\n<body>\n\
             <h1>Index of /docs/&lt;x&gt;/</h1>\n<hr>\n<pre>\n\
             <a href=\"../\">../</a>\n\
             <a href=\"sub%20dir/\">sub dir/</a>\t-\n\
             <a href=\"a&amp;b&#39;s.txt\">a&amp;b&#39;s.txt</a>\t1234\n\
             </pre>\n<hr>\n</body>\n</html>\n"
        );
    }

    #[test]
    fn html_root_has_no_parent_link() {
        let page = ListingWriter::begin(String::new(), ListingStyle::Html, b"")
            .unwrap()
            .finish()
            .unwrap();
        assert!(page.contains("<title>Index of /</title>"));
        assert!(!page.contains("../"));
    }

    #[test]
    fn text_listing() {
        let mut w = ListingWriter::begin(String::new(), ListingStyle::Text, b"docs").unwrap();
        w.entry(&Entry {
            name: b"sub",
            is_dir: true,
            size: 4096,
        })
        .unwrap();
        w.entry(&Entry {
            name: b"a b.txt",
            is_dir: false,
            size: 7,
        })
        .unwrap();
        w.entry(&Entry {
            name: b"tab\tname",
            is_dir: false,
            size: 0,
        })
        .unwrap();
        assert_eq!(
            w.finish().unwrap(),
            "sub/\t4096\na%20b.txt\t7\ntab%09name\t0\n"
        );
    }

    #[test]
    fn full_heapless_sink_is_an_error_not_a_panic() {
        let w = ListingWriter::begin(heapless::String::<16>::new(), ListingStyle::Html, b"");
        assert!(w.is_err());
        let mut w =
            ListingWriter::begin(heapless::String::<16>::new(), ListingStyle::Text, b"").unwrap();
        assert!(w
            .entry(&Entry {
                name: b"0123456789abcdef",
                is_dir: false,
                size: 1
            })
            .is_err());
    }

    proptest! {
        #[test]
        fn segment_round_trips_and_is_safe(name in proptest::collection::vec(any::<u8>(), 0..40)) {
            let e = enc(&name);
            prop_assert!(e.bytes().all(|b| Keep::Segment.keeps(b) || b == b'%' || b.is_ascii_hexdigit()));
            prop_assert!(!e.contains(['/', '?', '#', ':', ' ']));
            prop_assert_eq!(decode(&e), Some(name));
        }

        #[test]
        fn escaped_text_has_no_markup(name in proptest::collection::vec(any::<u8>(), 0..40)) {
            let e = esc(&name);
            prop_assert!(!e.contains(['<', '>', '"', '\'']));
            // Every `&` starts one of the references.
            for (i, _) in e.match_indices('&') {
                let tail = &e[i..];
                prop_assert!(["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|r| tail.starts_with(r)));
            }
        }
    }
}
