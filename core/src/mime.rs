//! Media types by file extension, for `Content-Type` (PROTOCOL.md, "Responses").
//!
//! A fixed table, looked up by binary search on the lower-cased extension; no allocation.
//! Text types carry `; charset=utf-8`; an unknown or missing extension is
//! `application/octet-stream` (RFC 9110 §8.3: a recipient may treat it as unknown data).

/// The type of content satchel knows nothing about.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The longest extension in [`TABLE`]; longer ones are unknown without looking.
const MAX_EXTENSION_LEN: usize = 11;

/// `(lower-case extension, Content-Type value)`, sorted by extension bytes.
const TABLE: &[(&[u8], &str)] = &[
    (b"7z", "application/x-7z-compressed"),
    (b"aac", "audio/aac"),
    (b"apk", "application/vnd.android.package-archive"),
    (b"avi", "video/x-msvideo"),
    (b"avif", "image/avif"),
    (b"bin", OCTET_STREAM),
    (b"bmp", "image/bmp"),
    (b"bz2", "application/x-bzip2"),
    (b"c", "text/x-c; charset=utf-8"),
    (b"cpp", "text/x-c; charset=utf-8"),
    (b"css", "text/css; charset=utf-8"),
    (b"csv", "text/csv; charset=utf-8"),
    (b"deb", "application/vnd.debian.binary-package"),
    (b"dmg", "application/x-apple-diskimage"),
    (
        b"docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    (b"epub", "application/epub+zip"),
    (b"flac", "audio/flac"),
    (b"gif", "image/gif"),
    (b"go", "text/x-go; charset=utf-8"),
    (b"gz", "application/gzip"),
    (b"h", "text/x-c; charset=utf-8"),
    (b"hpp", "text/x-c; charset=utf-8"),
    (b"htm", "text/html; charset=utf-8"),
    (b"html", "text/html; charset=utf-8"),
    (b"ico", "image/x-icon"),
    (b"img", OCTET_STREAM),
    (b"ini", "text/plain; charset=utf-8"),
    (b"iso", "application/x-iso9660-image"),
    (b"jar", "application/java-archive"),
    (b"jpeg", "image/jpeg"),
    (b"jpg", "image/jpeg"),
    (b"js", "text/javascript; charset=utf-8"),
    (b"json", "application/json"),
    (b"log", "text/plain; charset=utf-8"),
    (b"m4a", "audio/mp4"),
    (b"map", "application/json"),
    (b"md", "text/markdown; charset=utf-8"),
    (b"mjs", "text/javascript; charset=utf-8"),
    (b"mkv", "video/x-matroska"),
    (b"mov", "video/quicktime"),
    (b"mp3", "audio/mpeg"),
    (b"mp4", "video/mp4"),
    (b"mpeg", "video/mpeg"),
    (b"mpg", "video/mpeg"),
    (b"odt", "application/vnd.oasis.opendocument.text"),
    (b"oga", "audio/ogg"),
    (b"ogg", "audio/ogg"),
    (b"ogv", "video/ogg"),
    (b"opus", "audio/ogg"),
    (b"otf", "font/otf"),
    (b"pdf", "application/pdf"),
    (b"png", "image/png"),
    (
        b"pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    (b"py", "text/x-python; charset=utf-8"),
    (b"rs", "text/x-rust; charset=utf-8"),
    (b"sh", "text/x-shellscript; charset=utf-8"),
    (b"svg", "image/svg+xml"),
    (b"tar", "application/x-tar"),
    (b"tgz", "application/gzip"),
    (b"tif", "image/tiff"),
    (b"tiff", "image/tiff"),
    (b"toml", "application/toml"),
    (b"ttf", "font/ttf"),
    (b"txt", "text/plain; charset=utf-8"),
    (b"wasm", "application/wasm"),
    (b"wav", "audio/wav"),
    (b"webm", "video/webm"),
    (b"webmanifest", "application/manifest+json"),
    (b"webp", "image/webp"),
    (b"woff", "font/woff"),
    (b"woff2", "font/woff2"),
    (
        b"xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    (b"xml", "text/xml; charset=utf-8"),
    (b"xz", "application/x-xz"),
    (b"yaml", "application/yaml"),
    (b"yml", "application/yaml"),
    (b"zip", "application/zip"),
    (b"zst", "application/zstd"),
];

/// The `Content-Type` value for a file extension (without the dot), case-insensitive.
///
/// `None`, an empty or an unknown extension gives [`OCTET_STREAM`].
pub fn content_type(extension: Option<&[u8]>) -> &'static str {
    let Some(ext) = extension else {
        return OCTET_STREAM;
    };
    let mut lower = [0u8; MAX_EXTENSION_LEN];
    let Some(lower) = lower.get_mut(..ext.len()) else {
        return OCTET_STREAM;
    };
    for (dst, src) in lower.iter_mut().zip(ext) {
        *dst = src.to_ascii_lowercase();
    }
    let lower: &[u8] = lower;
    TABLE
        .binary_search_by(|(e, _)| (*e).cmp(lower))
        .ok()
        .and_then(|i| TABLE.get(i))
        .map_or(OCTET_STREAM, |(_, ct)| ct)
}

/// The extension of a file name: the bytes after its last `.`, or `None` when it has none.
///
/// A leading dot alone does not start an extension (`.bashrc` has none), nor does a trailing
/// one (`notes.` has none).
pub fn extension(file_name: &[u8]) -> Option<&[u8]> {
    let dot = file_name.iter().rposition(|&b| b == b'.')?;
    if dot == 0 {
        return None;
    }
    file_name.get(dot + 1..).filter(|e| !e.is_empty())
}

/// The `Content-Type` value for a file name, by its [`extension`].
pub fn content_type_for_name(file_name: &[u8]) -> &'static str {
    content_type(extension(file_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_lower_case_and_bounded() {
        assert!(
            TABLE.windows(2).all(|w| w[0].0 < w[1].0),
            "TABLE must be sorted"
        );
        for (ext, ct) in TABLE {
            assert!(!ext.is_empty() && ext.len() <= MAX_EXTENSION_LEN);
            assert!(ext
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
            // Exactly the text types carry a charset.
            assert_eq!(
                ct.starts_with("text/"),
                ct.ends_with("; charset=utf-8"),
                "{ct}"
            );
        }
        assert!(TABLE.iter().any(|(e, _)| e.len() == MAX_EXTENSION_LEN));
    }

    #[test]
    fn every_entry_is_found() {
        for (ext, ct) in TABLE {
            assert_eq!(content_type(Some(ext)), *ct);
        }
    }

    #[test]
    fn common_types() {
        assert_eq!(content_type(Some(b"html")), "text/html; charset=utf-8");
        assert_eq!(content_type(Some(b"png")), "image/png");
        assert_eq!(content_type(Some(b"woff2")), "font/woff2");
        assert_eq!(content_type(Some(b"js")), "text/javascript; charset=utf-8");
    }

    #[test]
    fn case_insensitive() {
        assert_eq!(content_type(Some(b"HTML")), "text/html; charset=utf-8");
        assert_eq!(content_type(Some(b"JpEg")), "image/jpeg");
    }

    #[test]
    fn unknown_is_octet_stream() {
        assert_eq!(content_type(None), OCTET_STREAM);
        assert_eq!(content_type(Some(b"")), OCTET_STREAM);
        assert_eq!(content_type(Some(b"nope")), OCTET_STREAM);
        assert_eq!(
            content_type(Some(b"averyveryverylongextension")),
            OCTET_STREAM
        );
        assert_eq!(content_type(Some(b"ht\xffml")), OCTET_STREAM);
    }

    #[test]
    fn extension_of_names() {
        assert_eq!(extension(b"index.html"), Some(&b"html"[..]));
        assert_eq!(extension(b"a.tar.gz"), Some(&b"gz"[..]));
        assert_eq!(extension(b"README"), None);
        assert_eq!(extension(b".bashrc"), None);
        assert_eq!(extension(b"notes."), None);
        assert_eq!(extension(b".config.toml"), Some(&b"toml"[..]));
        assert_eq!(content_type_for_name(b"Photo.JPG"), "image/jpeg");
        assert_eq!(content_type_for_name(b"Makefile"), OCTET_STREAM);
    }
}
