//! Folder listings (PROTOCOL.md, "Listings"): the choice of form and order for a request, and
//! the three forms, written into any [`core::fmt::Write`] without allocating.
//!
//! | form | chosen by | for |
//! |------|-----------|-----|
//! | HTML page | default | people: breadcrumbs, a sortable table, light and dark, no script |
//! | `name<TAB>size` lines | `Accept` preferring `text/plain` | the client (`-r`, `--list`) |
//! | JSON | `Accept` preferring `application/json` | scripts |
//!
//! The order comes from the query: `?sort=name|size|date&order=asc|desc` (default: name,
//! ascending), folders always first. [`negotiate`] turns a request into a [`ListingView`];
//! the source sorts its entries with [`Sort::compare`] and feeds them to a [`ListingWriter`].
//!
//! On a board the sink is a `heapless::String<N>` (a full one makes the write fail with
//! [`fmt::Error`]); on the host, a `String`.

use core::cmp::Ordering;
use core::fmt::{self, Write};

use crate::http::date::civil_from_days;
use crate::http::etag::ETag;
use crate::http::trim_ows;
use crate::percent::{self, Keep};
use crate::version::FileVersion;

/// The forms of a folder listing (PROTOCOL.md, "Listings"; this module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingStyle {
    /// An HTML page for people.
    Html,
    /// One `name<TAB>size` line per entry, for the client.
    Text,
    /// A JSON object, for scripts.
    Json,
}

/// One entry of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry<'a> {
    /// The file or folder name, raw bytes as the file system gives them (not encoded).
    pub name: &'a [u8],
    /// Whether it is a folder (listed with a trailing `/`).
    pub is_dir: bool,
    /// The size in bytes (a folder's is shown as `—` in HTML and `null` in JSON).
    pub size: u64,
    /// Modification time in seconds since the Unix epoch, when known.
    pub modified: Option<u64>,
    /// The file's version, when known: a file's JSON entry then carries the `ETag` a GET of it
    /// answers.
    pub version: Option<FileVersion>,
}

/// What a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// The name, bytewise (as `ls` in the C locale).
    #[default]
    Name,
    /// The size in bytes.
    Size,
    /// The modification time (unknown times first).
    Modified,
}

impl SortKey {
    /// The value of `sort=` that selects this key.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Size => "size",
            Self::Modified => "date",
        }
    }
}

/// The order of a listing: folders first, then by `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    /// The column.
    pub key: SortKey,
    /// Largest, latest or last name first.
    pub descending: bool,
}

impl Sort {
    /// Compares two entries for this order: folders before files whatever the direction, then
    /// by the key in the chosen direction, ties by name ascending.
    pub fn compare(self, a: &Entry<'_>, b: &Entry<'_>) -> Ordering {
        let by_key = match self.key {
            SortKey::Name => a.name.cmp(b.name),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Modified => a.modified.cmp(&b.modified),
        };
        let by_key = if self.descending {
            by_key.reverse()
        } else {
            by_key
        };
        b.is_dir
            .cmp(&a.is_dir)
            .then(by_key)
            .then_with(|| a.name.cmp(b.name))
    }

    /// The value of `order=`.
    const fn order_str(self) -> &'static str {
        if self.descending {
            "desc"
        } else {
            "asc"
        }
    }
}

/// The form and order of a listing, as [`negotiate`] chooses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingView {
    /// HTML, text or JSON.
    pub style: ListingStyle,
    /// The order of the entries.
    pub sort: Sort,
}

impl Default for ListingView {
    fn default() -> Self {
        Self {
            style: ListingStyle::Html,
            sort: Sort::default(),
        }
    }
}

impl ListingStyle {
    /// The `Content-Type` of a listing in this style.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Html => "text/html; charset=utf-8",
            Self::Text => "text/plain; charset=utf-8",
            // RFC 8259 §11: no charset parameter; JSON text is UTF-8.
            Self::Json => "application/json",
        }
    }
}

/// The `Content-Security-Policy` of every listing response: nothing may load or run, the page's
/// one `<style>` element is allowed by its hash, forms and `<base>` are refused, and the page
/// may not be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; \
    style-src 'sha256-8ncCOc8avETrCaHL0+pxmtSuloSQR2gmg+XwOqtpBno='; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The form and order of the listing a request asks for, from its `Accept` value and its raw
/// request-target (whose query, if any, holds the sort).
///
/// Form: the explicitly listed type among `text/html`, `application/json` and `text/plain`
/// with the highest nonzero quality wins; ties go in that order, and wildcards or no `Accept` at
/// all give HTML (a browser's `*/*` is not a request for JSON).
///
/// Order: `sort=name|size|date` (also `modified`) and `order=asc|desc`, case-insensitive;
/// missing or unknown values keep the default, name ascending.
pub fn negotiate(accept: Option<&[u8]>, target: &[u8]) -> ListingView {
    ListingView {
        style: accept.map_or(ListingStyle::Html, preferred_style),
        sort: target
            .iter()
            .position(|&b| b == b'?')
            .and_then(|i| target.get(i + 1..))
            .map_or_else(Sort::default, parse_sort),
    }
}

fn preferred_style(accept: &[u8]) -> ListingStyle {
    // Quality in thousandths of each candidate, in tie-breaking order.
    let mut best = [
        (ListingStyle::Html, &b"text/html"[..], 0u16),
        (ListingStyle::Json, b"application/json", 0),
        (ListingStyle::Text, b"text/plain", 0),
    ];
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
        for (_, name, best_q) in &mut best {
            if media.eq_ignore_ascii_case(name) {
                *best_q = (*best_q).max(q);
            }
        }
    }
    best.iter()
        .fold((ListingStyle::Html, 0), |(style, q), &(s, _, bq)| {
            if bq > q {
                (s, bq)
            } else {
                (style, q)
            }
        })
        .0
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

/// The sort named by a query string (`a=b&c=d`, without the `?`).
fn parse_sort(query: &[u8]) -> Sort {
    let mut sort = Sort::default();
    for pair in query.split(|&b| b == b'&') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let is = |s: &str| value.eq_ignore_ascii_case(s.as_bytes());
        match name {
            b"sort" if is("name") => sort.key = SortKey::Name,
            b"sort" if is("size") => sort.key = SortKey::Size,
            b"sort" if is("date") || is("modified") => sort.key = SortKey::Modified,
            b"order" if is("asc") => sort.descending = false,
            b"order" if is("desc") => sort.descending = true,
            _ => {}
        }
    }
    sort
}

/// Writes a folder listing, entry by entry.
///
/// The caller supplies the entries already sorted (with [`Sort::compare`] for the view's
/// order); the writer neither reorders nor buffers them, so a listing of any length is written
/// in constant memory.
///
/// ```text
/// HTML:  <tr><td><a href="a%20b.txt">a b.txt</a><td title="1,234 bytes">1.2 KiB<td><time …>
/// text:  a%20b.txt<TAB>1234<LF>                      (folders: name/<TAB>size)
/// JSON:  {"name":"a b.txt","href":"a%20b.txt","type":"file","size":1234,"modified":…,"etag":…}
/// ```
#[derive(Debug)]
pub struct ListingWriter<W> {
    out: W,
    view: ListingView,
    folders: u64,
    files: u64,
    bytes: u64,
}

impl<W: Write> ListingWriter<W> {
    /// Starts a listing of `folder` in `view`'s style, writing the page head for HTML and the
    /// opening of the object for JSON.
    ///
    /// `folder` is the decoded path of the folder below the root, without leading or trailing
    /// slash (empty for the root, as [`crate::path::SafePath::as_bytes`] gives it). HTML shows
    /// it as breadcrumbs, each linked by a relative `../` path, and every folder but the root
    /// gets a `../` row.
    ///
    /// # Errors
    /// [`fmt::Error`] when the sink refuses the text (full).
    pub fn begin(mut out: W, view: ListingView, folder: &[u8]) -> Result<Self, fmt::Error> {
        match view.style {
            ListingStyle::Html => html_head(&mut out, view.sort, folder)?,
            ListingStyle::Json => {
                out.write_str("{\"path\":\"/")?;
                if !folder.is_empty() {
                    percent_encode_path(folder, &mut out)?;
                    out.write_str("/")?;
                }
                out.write_str("\",\"entries\":[")?;
            }
            ListingStyle::Text => {}
        }
        Ok(Self {
            out,
            view,
            folders: 0,
            files: 0,
            bytes: 0,
        })
    }

    /// Writes one entry.
    ///
    /// # Errors
    /// [`fmt::Error`] when the sink refuses the text (full).
    pub fn entry(&mut self, entry: &Entry<'_>) -> fmt::Result {
        let first = self.folders == 0 && self.files == 0;
        if entry.is_dir {
            self.folders += 1;
        } else {
            self.files += 1;
            self.bytes = self.bytes.saturating_add(entry.size);
        }
        let out = &mut self.out;
        let slash = if entry.is_dir { "/" } else { "" };
        match self.view.style {
            ListingStyle::Html => html_row(out, entry),
            ListingStyle::Text => {
                percent_encode_path_segment(entry.name, out)?;
                writeln!(out, "{slash}\t{}", entry.size)
            }
            ListingStyle::Json => {
                out.write_str(if first {
                    "\n{\"name\":"
                } else {
                    ",\n{\"name\":"
                })?;
                json_string(entry.name, out)?;
                out.write_str(",\"href\":\"")?;
                percent_encode_path_segment(entry.name, out)?;
                out.write_str(slash)?;
                if entry.is_dir {
                    out.write_str("\",\"type\":\"dir\",\"size\":null,\"modified\":")?;
                } else {
                    write!(
                        out,
                        "\",\"type\":\"file\",\"size\":{},\"modified\":",
                        entry.size
                    )?;
                }
                match entry.modified {
                    Some(secs) => {
                        out.write_str("\"")?;
                        write_timestamp(secs, out)?;
                        out.write_str("\"")?;
                    }
                    None => out.write_str("null")?,
                }
                out.write_str(",\"etag\":")?;
                match entry.version.filter(|_| !entry.is_dir) {
                    Some(version) => json_string(ETag::from_version(&version).as_bytes(), out)?,
                    None => out.write_str("null")?,
                }
                out.write_str("}")
            }
        }
    }

    /// Ends the listing (closing the HTML page or the JSON object) and returns the sink.
    ///
    /// # Errors
    /// [`fmt::Error`] when the sink refuses the text (full).
    pub fn finish(mut self) -> Result<W, fmt::Error> {
        let out = &mut self.out;
        match self.view.style {
            ListingStyle::Html => {
                if self.folders == 0 && self.files == 0 {
                    out.write_str("<tr><td colspan=3>This folder is empty.\n")?;
                }
                out.write_str("</tbody>\n</table>\n<footer>")?;
                write_count(self.folders, "folder", out)?;
                out.write_str(", ")?;
                write_count(self.files, "file", out)?;
                if self.files > 0 {
                    out.write_str(", ")?;
                    write_human_size(self.bytes, out)?;
                }
                out.write_str("</footer>\n</body>\n</html>\n")?;
            }
            ListingStyle::Json => {
                out.write_str(if self.folders == 0 && self.files == 0 {
                    "]}\n"
                } else {
                    "\n]}\n"
                })?;
            }
            ListingStyle::Text => {}
        }
        Ok(self.out)
    }
}

/// The page's style sheet, allowed by its hash in [`CONTENT_SECURITY_POLICY`] (a unit test
/// checks the hash). No double quotes, so that it stays a plain string.
const STYLE: &str = "\n\
    :root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--mute:#59636e;--line:#d1d9e0;--alt:#f6f8fa;--link:#0969da;--dir:#54aeff}\n\
    @media(prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mute:#9198a1;--line:#3d444d;--alt:#151b23;--link:#4493f8;--dir:#3b82c4}}\n\
    *{box-sizing:border-box}\n\
    body{margin:0 auto;max-width:64rem;padding:1rem 1.25rem 2rem;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,DejaVu Sans,sans-serif}\n\
    h1{margin:.25rem 0 1rem;font-size:1.3rem;font-weight:600;overflow-wrap:anywhere}\n\
    a{color:var(--link);text-decoration:none}\n\
    a:hover{text-decoration:underline}\n\
    h1 a{padding:0 .15em}\n\
    table{width:100%;border-collapse:collapse;table-layout:fixed}\n\
    th,td{padding:.5rem .6rem;border-bottom:1px solid var(--line);text-align:left}\n\
    th{font-size:.8rem;font-weight:600;letter-spacing:.03em;color:var(--mute);white-space:nowrap}\n\
    th a{color:inherit}\n\
    th:nth-child(2),td:nth-child(2){width:7rem;text-align:right;white-space:nowrap}\n\
    th:nth-child(3),td:nth-child(3){width:11rem;white-space:nowrap}\n\
    td+td{color:var(--mute);font-variant-numeric:tabular-nums}\n\
    td:first-child{overflow-wrap:anywhere}\n\
    tbody tr:hover{background:var(--alt)}\n\
    td:first-child>*::before{content:'';display:inline-block;width:.75em;height:.95em;margin-right:.6em;vertical-align:-.1em;border:1.5px solid var(--mute);border-radius:2px}\n\
    .d td:first-child a::before{width:1.05em;height:.85em;vertical-align:-.05em;border:0;background:linear-gradient(var(--dir) 0 0) 0 0/45% 30% no-repeat,linear-gradient(var(--dir) 0 0) 0 100%/100% 80% no-repeat}\n\
    .d a{font-weight:600}\n\
    td>span{color:var(--mute)}\n\
    footer{margin-top:.75rem;font-size:.85rem;color:var(--mute)}\n\
    @media(max-width:40rem){body{padding:.5rem .5rem 1.5rem;font-size:14px}th,td{padding:.55rem .35rem}th:nth-child(2),td:nth-child(2){width:4.9rem}th:nth-child(3),td:nth-child(3){width:6.4rem}time span{display:none}}\n";

/// The HTML page up to the first entry: head, breadcrumbs, the sortable column headers and
/// the parent row.
fn html_head<W: Write + ?Sized>(out: &mut W, sort: Sort, folder: &[u8]) -> fmt::Result {
    out.write_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n<title>Index of /",
    )?;
    let segments = || folder.split(|&b| b == b'/').filter(|s| !s.is_empty());
    for segment in segments() {
        html_escape(segment, out)?;
        out.write_str("/")?;
    }
    out.write_str("</title>\n<style>")?;
    out.write_str(STYLE)?;
    out.write_str("</style>\n</head>\n<body>\n<h1>Index of ")?;
    // Breadcrumbs: "/" is the root, `depth` folders up; the last segment is this folder.
    let depth = segments().count();
    if depth == 0 {
        out.write_str("/")?;
    } else {
        out.write_str("<a href=\"")?;
        write_up(depth, out)?;
        out.write_str("\">/</a>")?;
    }
    for (i, segment) in segments().enumerate() {
        let up = depth - 1 - i;
        if up > 0 {
            out.write_str("<a href=\"")?;
            write_up(up, out)?;
            out.write_str("\">")?;
            html_escape(segment, out)?;
            out.write_str("</a>/")?;
        } else {
            html_escape(segment, out)?;
            out.write_str("/")?;
        }
    }
    out.write_str("</h1>\n<table>\n<thead><tr>")?;
    column_header(out, sort, SortKey::Name, "Name")?;
    column_header(out, sort, SortKey::Size, "Size")?;
    column_header(out, sort, SortKey::Modified, "Modified")?;
    out.write_str("\n</thead>\n<tbody>\n")?;
    if depth > 0 {
        out.write_str("<tr class=d><td><a href=\"../\">../</a><td><td>\n")?;
    }
    Ok(())
}

/// `../` `n` times.
fn write_up<W: Write + ?Sized>(n: usize, out: &mut W) -> fmt::Result {
    (0..n).try_for_each(|_| out.write_str("../"))
}

/// A column header linking to the listing sorted by `key`: the active column links to the
/// other direction and shows an arrow; the others start ascending for names, descending
/// (largest, latest first) for size and date.
fn column_header<W: Write + ?Sized>(
    out: &mut W,
    sort: Sort,
    key: SortKey,
    label: &str,
) -> fmt::Result {
    let active = sort.key == key;
    let next = Sort {
        key,
        descending: if active {
            !sort.descending
        } else {
            key != SortKey::Name
        },
    };
    out.write_str("<th")?;
    if active {
        out.write_str(if sort.descending {
            " aria-sort=\"descending\""
        } else {
            " aria-sort=\"ascending\""
        })?;
    }
    write!(
        out,
        "><a href=\"?sort={}&amp;order={}\">{label}",
        key.as_str(),
        next.order_str()
    )?;
    if active {
        out.write_str(if sort.descending {
            " \u{2193}"
        } else {
            " \u{2191}"
        })?;
    }
    out.write_str("</a>")
}

/// One table row: linked name, size (exact bytes in the tooltip), modification date.
///
/// A name with a control byte is shown but not linked: the server refuses such paths
/// (PROTOCOL.md, "Paths"), so a link could only lead to a 400.
fn html_row<W: Write + ?Sized>(out: &mut W, entry: &Entry<'_>) -> fmt::Result {
    let slash = if entry.is_dir { "/" } else { "" };
    out.write_str(if entry.is_dir {
        "<tr class=d><td>"
    } else {
        "<tr><td>"
    })?;
    let servable = !entry.name.iter().any(|&b| b < 0x20 || b == 0x7f);
    if servable {
        out.write_str("<a href=\"")?;
        // Percent-encoding leaves `&` and `'` (sub-delims): escape them for the attribute.
        percent_encode_path_segment(entry.name, &mut HtmlEscaper(&mut *out))?;
        out.write_str(slash)?;
        out.write_str("\">")?;
    } else {
        out.write_str("<span title=\"not served: a control character in the name\">")?;
    }
    html_escape(entry.name, out)?;
    out.write_str(slash)?;
    out.write_str(if servable { "</a><td" } else { "</span><td" })?;
    if entry.is_dir {
        out.write_str(">\u{2014}")?;
    } else {
        out.write_str(" title=\"")?;
        write_grouped(entry.size, out)?;
        out.write_str(if entry.size == 1 {
            " byte\">"
        } else {
            " bytes\">"
        })?;
        write_human_size(entry.size, out)?;
    }
    out.write_str("<td>")?;
    if let Some(secs) = entry.modified {
        let [y, mo, d, h, mi, _] = civil(secs);
        out.write_str("<time datetime=\"")?;
        write_timestamp(secs, out)?;
        write!(
            out,
            "\">{y:04}-{mo:02}-{d:02}<span> {h:02}:{mi:02}</span></time>"
        )?;
    }
    out.write_str("\n")
}

/// `n folder(s)`.
fn write_count<W: Write + ?Sized>(n: u64, noun: &str, out: &mut W) -> fmt::Result {
    write!(out, "{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// A size for people, in binary units: `999 B`, `1.0 KiB`, `9.9 MiB`, `10 MiB`, `1023 GiB`.
///
/// Three significant digits at most below 10 units, whole units above; rounded to nearest.
fn write_human_size<W: Write + ?Sized>(n: u64, out: &mut W) -> fmt::Result {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return write!(out, "{n} B");
    }
    let mut exp = 1;
    while exp < UNITS.len() - 1 && n >> (10 * (exp + 1)) != 0 {
        exp += 1;
    }
    let unit = 1u128 << (10 * exp);
    let n = u128::from(n);
    let tenths = (n * 10 + unit / 2) / unit;
    if tenths < 100 {
        return write!(out, "{}.{} {}", tenths / 10, tenths % 10, UNITS[exp]);
    }
    let whole = (n + unit / 2) / unit;
    match UNITS.get(exp + 1) {
        // Rounded up to the next unit: 1023.6 KiB is 1.0 MiB.
        Some(next) if whole >= 1024 => write!(out, "1.0 {next}"),
        _ => write!(out, "{whole} {}", UNITS[exp]),
    }
}

/// `n` in decimal with `,` between groups of three digits: `1,234,567`.
fn write_grouped<W: Write + ?Sized>(mut n: u64, out: &mut W) -> fmt::Result {
    // 20 digits and 6 separators at most.
    let mut buf = [0u8; 26];
    let mut at = buf.len();
    let mut digits = 0;
    loop {
        if digits > 0 && digits % 3 == 0 {
            at -= 1;
            buf[at] = b',';
        }
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        digits += 1;
        if n == 0 {
            break;
        }
    }
    out.write_str(core::str::from_utf8(&buf[at..]).map_err(|_| fmt::Error)?)
}

/// `[year, month, day, hour, minute, second]` in UTC of `secs` since the Unix epoch (clamped to
/// the year 9999).
fn civil(secs: u64) -> [u64; 6] {
    let secs = secs.min(crate::http::date::MAX_HTTP_DATE);
    let (y, mo, d) = civil_from_days(secs / 86_400);
    let tod = secs % 86_400;
    [y, mo, d, tod / 3600, tod / 60 % 60, tod % 60]
}

/// An RFC 3339 UTC timestamp: `2024-05-01T12:00:00Z`.
fn write_timestamp<W: Write + ?Sized>(secs: u64, out: &mut W) -> fmt::Result {
    let [y, mo, d, h, mi, s] = civil(secs);
    write!(out, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Writes `text` as a JSON string (RFC 8259 §7), quotes included.
///
/// `"` and `\` are escaped, control characters U+0000..U+001F become `\b` `\f` `\n` `\r` `\t`
/// or `\u00XX`; everything else is written as it is (JSON text is UTF-8, §8.1). A JSON string
/// cannot hold bytes that are not UTF-8, so each maximal invalid sequence becomes U+FFFD, as
/// [`html_escape`] shows it; the entry's `href`, percent-encoded, keeps the exact bytes.
///
/// # Errors
/// [`fmt::Error`] when the sink refuses the text (full).
pub fn json_string<W: Write + ?Sized>(text: &[u8], out: &mut W) -> fmt::Result {
    out.write_str("\"")?;
    for chunk in text.utf8_chunks() {
        let mut rest = chunk.valid();
        while let Some(i) = rest.find(|c: char| c < ' ' || c == '"' || c == '\\') {
            out.write_str(&rest[..i])?;
            let b = rest.as_bytes()[i];
            match b {
                b'"' => out.write_str("\\\"")?,
                b'\\' => out.write_str("\\\\")?,
                b'\n' => out.write_str("\\n")?,
                b'\r' => out.write_str("\\r")?,
                b'\t' => out.write_str("\\t")?,
                0x08 => out.write_str("\\b")?,
                0x0c => out.write_str("\\f")?,
                _ => write!(out, "\\u{b:04x}")?,
            }
            rest = &rest[i + 1..];
        }
        out.write_str(rest)?;
        if !chunk.invalid().is_empty() {
            out.write_char(char::REPLACEMENT_CHARACTER)?;
        }
    }
    out.write_str("\"")
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

/// Writes `text` escaped for HTML text and double- or single-quoted attribute values, for
/// display: `&`, `<`, `>`, `"` and `'` become character references; control characters (a
/// newline would show as a space) and the bidirectional formatting characters (which could
/// make `exe.txt` read `txt.exe`) become U+FFFD, and so does each maximal sequence of bytes
/// that is not UTF-8. The link, percent-encoded, keeps the exact bytes.
///
/// # Errors
/// [`fmt::Error`] when the sink refuses the text (full).
pub fn html_escape<W: Write + ?Sized>(text: &[u8], out: &mut W) -> fmt::Result {
    for chunk in text.utf8_chunks() {
        let mut rest = chunk.valid();
        while let Some((i, c)) = rest.char_indices().find(|&(_, c)| is_hidden(c)) {
            escape_str(&rest[..i], out)?;
            out.write_char(char::REPLACEMENT_CHARACTER)?;
            rest = &rest[i + c.len_utf8()..];
        }
        escape_str(rest, out)?;
        if !chunk.invalid().is_empty() {
            out.write_char(char::REPLACEMENT_CHARACTER)?;
        }
    }
    Ok(())
}

/// Whether `c` is invisible or reorders what follows: C0 and C1 controls, DEL, and the
/// bidirectional marks, embeddings, overrides and isolates (Unicode UAX #9).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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
    use std::string::{String, ToString};
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

    fn json(text: &[u8]) -> String {
        let mut s = String::new();
        json_string(text, &mut s).unwrap();
        s
    }

    fn human(n: u64) -> String {
        let mut s = String::new();
        write_human_size(n, &mut s).unwrap();
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

    const fn file(name: &[u8], size: u64, modified: u64) -> Entry<'_> {
        Entry {
            name,
            is_dir: false,
            size,
            modified: Some(modified),
            version: Some(FileVersion {
                len: size,
                stamp: modified,
                id: 7,
            }),
        }
    }

    const fn dir(name: &[u8], modified: u64) -> Entry<'_> {
        Entry {
            name,
            is_dir: true,
            size: 0,
            modified: Some(modified),
            version: None,
        }
    }

    fn view(style: ListingStyle, key: SortKey, descending: bool) -> ListingView {
        ListingView {
            style,
            sort: Sort { key, descending },
        }
    }

    fn render(view: ListingView, folder: &[u8], entries: &[Entry<'_>]) -> String {
        let mut w = ListingWriter::begin(String::new(), view, folder).unwrap();
        for e in entries {
            w.entry(e).unwrap();
        }
        w.finish().unwrap()
    }

    // --- percent-encoding and escaping ---------------------------------------------------

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
    fn html_escape_specials_controls_and_invalid_utf8() {
        assert_eq!(esc(b"<b>&\"x'"), "&lt;b&gt;&amp;&quot;x&#39;");
        assert_eq!(esc("\u{e9}t\u{e9}".as_bytes()), "\u{e9}t\u{e9}");
        assert_eq!(esc(b"a\xffb"), "a\u{fffd}b");
        // One U+FFFD per maximal invalid sequence, as String::from_utf8_lossy.
        assert_eq!(esc(b"\xe2\x82x\xf0\x9f"), "\u{fffd}x\u{fffd}");
        assert_eq!(
            esc(b"line\nbreak\ttab\x7f"),
            "line\u{fffd}break\u{fffd}tab\u{fffd}"
        );
        assert_eq!(
            esc("evil\u{202e}txt.exe \u{85}".as_bytes()),
            "evil\u{fffd}txt.exe \u{fffd}"
        );
        assert_eq!(esc(b""), "");
    }

    // --- JSON strings ----------------------------------------------------------------------

    #[test]
    fn json_string_escapes() {
        assert_eq!(json(b"plain"), "\"plain\"");
        assert_eq!(json(b"q\"b\\s/"), r#""q\"b\\s/""#);
        assert_eq!(json(b"\n\r\t\x08\x0c"), r#""\n\r\t\b\f""#);
        assert_eq!(json(b"\x00\x01\x1f\x7f"), "\"\\u0000\\u0001\\u001f\x7f\"");
        assert_eq!(
            json("caf\u{e9} \u{1f600}".as_bytes()),
            "\"caf\u{e9} \u{1f600}\""
        );
        assert_eq!(json(b"a\xffb\xc3"), "\"a\u{fffd}b\u{fffd}\"");
    }

    proptest! {
        #[test]
        fn json_string_is_valid_json_of_the_lossy_text(text in proptest::collection::vec(any::<u8>(), 0..40)) {
            let parsed: serde_json::Value = serde_json::from_str(&json(&text)).unwrap();
            let lossy = String::from_utf8_lossy(&text);
            prop_assert_eq!(parsed.as_str(), Some(&*lossy));
        }
    }

    // --- human sizes, dates --------------------------------------------------------------

    #[test]
    fn human_sizes() {
        for (n, want) in [
            (0, "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (10_188, "9.9 KiB"),
            (10_189, "10 KiB"),
            (1_047_552, "1023 KiB"),
            (1_048_064, "1.0 MiB"),
            (5 << 30, "5.0 GiB"),
            (1_000_000_000_000, "931 GiB"),
            (u64::MAX, "16 EiB"),
        ] {
            assert_eq!(human(n), want, "{n}");
        }
    }

    #[test]
    fn grouped_digits() {
        for (n, want) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ] {
            let mut s = String::new();
            write_grouped(n, &mut s).unwrap();
            assert_eq!(s, want);
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (784_111_777, "1994-11-06T08:49:37Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (u64::MAX, "9999-12-31T23:59:59Z"),
        ] {
            let mut s = String::new();
            write_timestamp(secs, &mut s).unwrap();
            assert_eq!(s, want);
        }
    }

    // --- negotiation and sorting -----------------------------------------------------------

    #[test]
    fn negotiate_style_from_accept() {
        let style = |accept: Option<&str>| negotiate(accept.map(str::as_bytes), b"/").style;
        assert_eq!(style(None), ListingStyle::Html);
        assert_eq!(style(Some("*/*")), ListingStyle::Html);
        assert_eq!(
            style(Some(
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
            )),
            ListingStyle::Html
        );
        assert_eq!(style(Some("text/plain")), ListingStyle::Text);
        assert_eq!(
            style(Some("TEXT/PLAIN ; charset=utf-8")),
            ListingStyle::Text
        );
        assert_eq!(style(Some("text/plain;q=0")), ListingStyle::Html);
        assert_eq!(style(Some("text/html, text/plain")), ListingStyle::Html);
        assert_eq!(
            style(Some("text/html;q=0.5, text/plain")),
            ListingStyle::Text
        );
        assert_eq!(style(Some("application/json")), ListingStyle::Json);
        assert_eq!(style(Some("application/json;q=0.001")), ListingStyle::Json);
        assert_eq!(
            style(Some("text/plain;q=0.9, application/json")),
            ListingStyle::Json
        );
        assert_eq!(
            style(Some("application/json;q=0.5, text/plain")),
            ListingStyle::Text
        );
        assert_eq!(
            style(Some("application/json, text/plain")),
            ListingStyle::Json
        );
        assert_eq!(
            style(Some("application/json, text/html")),
            ListingStyle::Html
        );
        assert_eq!(style(Some("application/json;q=x")), ListingStyle::Html);
    }

    #[test]
    fn negotiate_sort_from_query() {
        let sort = |target: &str| negotiate(None, target.as_bytes()).sort;
        let s = |key, descending| Sort { key, descending };
        assert_eq!(sort("/"), Sort::default());
        assert_eq!(sort("/"), s(SortKey::Name, false));
        assert_eq!(sort("/d/?sort=size"), s(SortKey::Size, false));
        assert_eq!(sort("/d/?sort=size&order=desc"), s(SortKey::Size, true));
        assert_eq!(sort("/?order=DESC&sort=Date"), s(SortKey::Modified, true));
        assert_eq!(sort("/?sort=modified"), s(SortKey::Modified, false));
        assert_eq!(sort("/?sort=name&order=desc"), s(SortKey::Name, true));
        assert_eq!(sort("/?sort=bogus&order=sideways&x"), Sort::default());
        assert_eq!(sort("/?"), Sort::default());
        assert_eq!(
            sort("http://h/x/?sort=size&order=desc"),
            s(SortKey::Size, true)
        );
        // The view combines both.
        assert_eq!(
            negotiate(Some(b"application/json"), b"/?sort=date&order=desc"),
            view(ListingStyle::Json, SortKey::Modified, true)
        );
    }

    #[test]
    fn sort_orders_folders_first_in_both_directions() {
        let entries = [
            file(b"b.txt", 30, 300),
            dir(b"zdir", 100),
            file(b"a.txt", 30, 100),
            file(b"C.txt", 10, 200),
            dir(b"adir", 200),
            Entry {
                modified: None,
                ..file(b"old", 20, 0)
            },
        ];
        let order = |key, descending| {
            let sort = Sort { key, descending };
            let mut v = entries.to_vec();
            v.sort_by(|a, b| sort.compare(a, b));
            v.iter()
                .map(|e| core::str::from_utf8(e.name).unwrap())
                .collect::<Vec<_>>()
        };
        use SortKey::{Modified, Name, Size};
        assert_eq!(
            order(Name, false),
            ["adir", "zdir", "C.txt", "a.txt", "b.txt", "old"]
        );
        assert_eq!(
            order(Name, true),
            ["zdir", "adir", "old", "b.txt", "a.txt", "C.txt"]
        );
        // Ties (a.txt and b.txt are both 30 bytes) by name, ascending.
        assert_eq!(
            order(Size, false),
            ["adir", "zdir", "C.txt", "old", "a.txt", "b.txt"]
        );
        assert_eq!(
            order(Size, true),
            ["adir", "zdir", "a.txt", "b.txt", "old", "C.txt"]
        );
        // Unknown times first.
        assert_eq!(
            order(Modified, false),
            ["zdir", "adir", "old", "a.txt", "C.txt", "b.txt"]
        );
        assert_eq!(
            order(Modified, true),
            ["adir", "zdir", "b.txt", "C.txt", "a.txt", "old"]
        );
    }

    // --- the three forms -------------------------------------------------------------------

    #[test]
    fn text_listing_is_the_protocol_form() {
        let text = render(
            view(ListingStyle::Text, SortKey::Name, false),
            b"docs",
            &[
                Entry {
                    size: 4096,
                    ..dir(b"sub", 1)
                },
                file(b"a b.txt", 7, 1),
                file(b"tab\tname", 0, 1),
            ],
        );
        assert_eq!(text, "sub/\t4096\na%20b.txt\t7\ntab%09name\t0\n");
    }

    #[test]
    fn json_listing() {
        let text = render(
            view(ListingStyle::Json, SortKey::Name, false),
            b"my docs",
            &[
                dir(b"sub dir", 784_111_777),
                file(b"q\"\n\xff.txt", 1234, 0),
                Entry {
                    modified: None,
                    version: None,
                    ..file(b"x", 1, 0)
                },
            ],
        );
        assert_eq!(
            text,
            "{\"path\":\"/my%20docs/\",\"entries\":[\n\
             {\"name\":\"sub dir\",\"href\":\"sub%20dir/\",\"type\":\"dir\",\"size\":null,\
             \"modified\":\"1994-11-06T08:49:37Z\",\"etag\":null},\n\
             {\"name\":\"q\\\"\\n\u{fffd}.txt\",\"href\":\"q%22%0A%FF.txt\",\"type\":\"file\",\
             \"size\":1234,\"modified\":\"1970-01-01T00:00:00Z\",\"etag\":\"\\\"0-4d2\\\"\"},\n\
             {\"name\":\"x\",\"href\":\"x\",\"type\":\"file\",\"size\":1,\"modified\":null,\
             \"etag\":null}\n]}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["entries"][1]["name"], "q\"\n\u{fffd}.txt");
        assert_eq!(parsed["entries"][1]["etag"], "\"0-4d2\"");
        // The root, and an empty folder.
        let text = render(view(ListingStyle::Json, SortKey::Name, false), b"", &[]);
        assert_eq!(text, "{\"path\":\"/\",\"entries\":[]}\n");
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["entries"].as_array().map(Vec::len), Some(0));
    }

    #[test]
    fn html_page_head_breadcrumbs_and_rows() {
        let page = render(
            ListingView::default(),
            b"docs/a&b/<x>",
            &[
                dir(b"sub dir", 784_111_777),
                file(b"a&b's.txt", 1234, 951_782_400),
                file(b"<img src=x onerror=alert(1)>\n", 1, 0),
            ],
        );
        for part in [
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<meta name=\"color-scheme\" content=\"light dark\">\n",
            "<title>Index of /docs/a&amp;b/&lt;x&gt;/</title>\n<style>\n",
            "prefers-color-scheme:dark",
            // Breadcrumbs: each ancestor linked by a relative path, this folder plain text.
            "<h1>Index of <a href=\"../../../\">/</a><a href=\"../../\">docs</a>/\
             <a href=\"../\">a&amp;b</a>/&lt;x&gt;/</h1>\n",
            // Name ascending is the default: its header links to descending.
            "<th aria-sort=\"ascending\"><a href=\"?sort=name&amp;order=desc\">Name \u{2191}</a>\
             <th><a href=\"?sort=size&amp;order=desc\">Size</a>\
             <th><a href=\"?sort=date&amp;order=desc\">Modified</a>\n",
            "<tr class=d><td><a href=\"../\">../</a><td><td>\n",
            "<tr class=d><td><a href=\"sub%20dir/\">sub dir/</a><td>\u{2014}\
             <td><time datetime=\"1994-11-06T08:49:37Z\">1994-11-06<span> 08:49</span></time>\n",
            "<tr><td><a href=\"a&amp;b&#39;s.txt\">a&amp;b&#39;s.txt</a>\
             <td title=\"1,234 bytes\">1.2 KiB\
             <td><time datetime=\"2000-02-29T00:00:00Z\">2000-02-29<span> 00:00</span></time>\n",
            "<tr><td><span title=\"not served: a control character in the name\">\
             &lt;img src=x onerror=alert(1)&gt;\u{fffd}</span><td title=\"1 byte\">1 B<td>",
            "</tbody>\n</table>\n<footer>1 folder, 2 files, 1.2 KiB</footer>\n</body>\n</html>\n",
        ] {
            assert!(page.contains(part), "missing {part:?} in\n{page}");
        }
        assert!(page.find("sub%20dir/").unwrap() < page.find("a&amp;b&#39;s.txt").unwrap());
        // No script, no external anything.
        assert!(!page.contains("<script") && !page.contains("http:") && !page.contains("https:"));
        assert!(!page.contains("<img"));
    }

    #[test]
    fn html_headers_follow_the_sort() {
        let head = |key, descending| {
            render(view(ListingStyle::Html, key, descending), b"", &[])
                .split("<thead>")
                .nth(1)
                .and_then(|t| t.split("</thead>").next())
                .unwrap()
                .to_string()
        };
        assert_eq!(
            head(SortKey::Name, true),
            "<tr><th aria-sort=\"descending\"><a href=\"?sort=name&amp;order=asc\">Name \u{2193}</a>\
             <th><a href=\"?sort=size&amp;order=desc\">Size</a>\
             <th><a href=\"?sort=date&amp;order=desc\">Modified</a>\n"
        );
        assert_eq!(
            head(SortKey::Size, true),
            "<tr><th><a href=\"?sort=name&amp;order=asc\">Name</a>\
             <th aria-sort=\"descending\"><a href=\"?sort=size&amp;order=asc\">Size \u{2193}</a>\
             <th><a href=\"?sort=date&amp;order=desc\">Modified</a>\n"
        );
        assert_eq!(
            head(SortKey::Modified, false),
            "<tr><th><a href=\"?sort=name&amp;order=asc\">Name</a>\
             <th><a href=\"?sort=size&amp;order=desc\">Size</a>\
             <th aria-sort=\"ascending\"><a href=\"?sort=date&amp;order=desc\">Modified \u{2191}</a>\n"
        );
    }

    #[test]
    fn html_root_and_empty_folder() {
        let page = render(ListingView::default(), b"", &[]);
        assert!(page.contains("<title>Index of /</title>"));
        assert!(page.contains("<h1>Index of /</h1>"));
        assert!(!page.contains("../"));
        assert!(page.contains("<tr><td colspan=3>This folder is empty.\n"));
        assert!(page.contains("<footer>0 folders, 0 files</footer>"));
        let page = render(ListingView::default(), b"one", &[]);
        assert!(page.contains("<h1>Index of <a href=\"../\">/</a>one/</h1>"));
    }

    #[test]
    fn style_hash_matches_the_policy() {
        use sha2::{Digest, Sha256};
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let digest = Sha256::digest(STYLE.as_bytes());
        let mut b64 = String::new();
        for chunk in digest.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                b64.push(if i <= chunk.len() {
                    char::from(B64[(n >> (18 - 6 * i) & 63) as usize])
                } else {
                    '='
                });
            }
        }
        let source = std::format!("style-src 'sha256-{b64}'");
        assert!(
            CONTENT_SECURITY_POLICY.contains(&source),
            "update CONTENT_SECURITY_POLICY: {source}"
        );
        assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none'; "));
        // The page's one style element is exactly STYLE.
        let page = render(ListingView::default(), b"", &[]);
        assert_eq!(page.matches("<style>").count(), 1);
        assert!(page.contains(&std::format!("<style>{STYLE}</style>")));
        assert!(!page.contains(" style="));
    }

    #[test]
    fn full_heapless_sink_is_an_error_not_a_panic() {
        let w = ListingWriter::begin(heapless::String::<16>::new(), ListingView::default(), b"");
        assert!(w.is_err());
        let mut w = ListingWriter::begin(
            heapless::String::<16>::new(),
            view(ListingStyle::Text, SortKey::Name, false),
            b"",
        )
        .unwrap();
        assert!(w.entry(&file(b"0123456789abcdef", 1, 0)).is_err());
    }

    #[test]
    fn html_page_fits_a_board_sized_sink() {
        // The whole page of a small folder in a fixed buffer, as a board would render it.
        let mut w = ListingWriter::begin(
            heapless::String::<4096>::new(),
            ListingView::default(),
            b"d",
        )
        .unwrap();
        w.entry(&file(b"index.txt", 12, 0)).unwrap();
        let page = w.finish().unwrap();
        assert!(page.ends_with("</html>\n"));
    }

    /// A measurement, not a check: the writer alone over 20,000 entries in each form.
    /// `cargo test --release -p satchel-core --lib render_20000 -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement: run with --ignored --nocapture"]
    fn render_20000_entries_measured() {
        let names: Vec<String> = (0..20_000)
            .map(|i| std::format!("file-{i:05} r\u{e9}sum\u{e9}.txt"))
            .collect();
        for style in [ListingStyle::Html, ListingStyle::Json, ListingStyle::Text] {
            let start = std::time::Instant::now();
            let view = view(style, SortKey::Name, false);
            let mut w = ListingWriter::begin(String::new(), view, b"folder").unwrap();
            for (i, name) in names.iter().enumerate() {
                w.entry(&file(
                    name.as_bytes(),
                    i as u64 * 37,
                    1_700_000_000 + i as u64,
                ))
                .unwrap();
            }
            let page = w.finish().unwrap();
            std::println!(
                "{style:?}: {} bytes in {:.1} ms",
                page.len(),
                start.elapsed().as_secs_f64() * 1e3
            );
        }
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
            prop_assert!(!e.chars().any(is_hidden));
            // Every `&` starts one of the references.
            for (i, _) in e.match_indices('&') {
                let tail = &e[i..];
                prop_assert!(["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|r| tail.starts_with(r)));
            }
        }

        #[test]
        fn json_listing_parses_back(
            names in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..12), 0..6),
            key in 0..3u8,
        ) {
            let entries: Vec<Entry<'_>> = names
                .iter()
                .enumerate()
                .map(|(i, n)| Entry { is_dir: i % 2 == 0, ..file(n, i as u64, i as u64 * 1000) })
                .collect();
            let key = [SortKey::Name, SortKey::Size, SortKey::Modified][usize::from(key)];
            let text = render(view(ListingStyle::Json, key, false), b"a b", &entries);
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            let list = parsed["entries"].as_array().unwrap();
            prop_assert_eq!(list.len(), names.len());
            for (got, e) in list.iter().zip(&entries) {
                let href = got["href"].as_str().unwrap();
                let href = href.strip_suffix('/').filter(|_| e.is_dir).unwrap_or(href);
                prop_assert_eq!(decode(href), Some(e.name.to_vec()));
                let lossy = String::from_utf8_lossy(e.name);
                prop_assert_eq!(got["name"].as_str(), Some(&*lossy));
                prop_assert_eq!(got["type"].as_str(), Some(if e.is_dir { "dir" } else { "file" }));
            }
        }
    }
}
