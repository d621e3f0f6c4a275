//! The response rules, one step per function: lookup → open → decide (conditionals, range) →
//! fill the cache → head. Every answer ends in [`Connection::start`].

use crate::cache::ContentCache;
use crate::http::conditional::{self, Conditions, Decision, Validators};
use crate::http::digest::{ContentDigest, ContentHasher};
use crate::http::encoding::{AcceptEncoding, Coding};
use crate::http::etag::ETag;
use crate::http::method::Method;
use crate::http::request::Request;
use crate::http::response::{CacheStatus, ContentRange, ResponseHead};
use crate::http::status::StatusCode;
use crate::listing;
use crate::mime;
use crate::path::{SafePath, MAX_PATH};
use crate::source::{FileKind, FileSource, FileVersion, Metadata, SourceError, Ticket};
use crate::time::Instant;

use super::body::Body;
use super::connection::status_of;
use super::{Connection, File, Handle, Site, INDEX_FILE};

/// What a path led to.
enum Found<H, F> {
    /// A regular file: its content, from the cache or opened, and the metadata of that version.
    File(Content<H, F>, Metadata),
    /// A folder.
    Dir,
}

/// Which representation of a file is sent: the file itself, or a precompressed sibling of it.
#[derive(Clone, Copy)]
struct Representation {
    /// The original file's media type (a sibling `page.html.br` is still `text/html`).
    content_type: &'static str,
    /// The sibling's coding; `None` for the file itself.
    coding: Option<Coding>,
}

/// A file to answer with: which representation, where its bytes come from, and the metadata
/// of the file those bytes are read from.
struct Selected<H, F> {
    repr: Representation,
    content: Content<H, F>,
    meta: Metadata,
}

impl<H, F> Selected<H, F> {
    /// The file at `path` itself.
    fn identity(path: &SafePath<'_>, content: Content<H, F>, meta: Metadata) -> Self {
        let repr = Representation {
            content_type: mime::content_type(path.extension()),
            coding: None,
        };
        Self {
            repr,
            content,
            meta,
        }
    }
}

/// A [`Selected`] file of site `S`.
type SiteFile<S> = Selected<Handle<S>, File<S>>;

/// Where the bytes of a file response come from.
enum Content<H, F> {
    /// A cache entry of exactly the version the file system shows now.
    Cached(H),
    /// The open file (a miss, or a file the cache does not take).
    Opened(F),
}

impl<'s, S: Site, const TX: usize> Connection<'s, S, TX> {
    /// Plans the answer to a parsed request.
    pub(super) fn respond(&mut self, now: Instant, request: &Request<'_>) {
        let method = request.method;
        let close = !request.keep_alive || self.closing;
        if method == Method::Other {
            let reason = "method not allowed: use GET or HEAD";
            return self.respond_error(
                now,
                Some(method),
                StatusCode::METHOD_NOT_ALLOWED,
                reason,
                close,
            );
        }
        if !request.expect_ok() {
            let reason = "unsupported Expect";
            return self.respond_error(
                now,
                Some(method),
                StatusCode::EXPECTATION_FAILED,
                reason,
                close,
            );
        }
        let mut scratch = [0u8; MAX_PATH];
        let path = match SafePath::parse(request.path, &mut scratch, self.site.config().path) {
            Ok(path) => path,
            Err(e) => {
                return self.respond_error(
                    now,
                    Some(method),
                    status_of(e.status()),
                    e.reason(),
                    close,
                )
            }
        };
        let mut sibling = [0u8; MAX_PATH];
        match self.encoded(request, &path, &mut sibling) {
            Ok(Some((path, file))) => return self.respond_file(now, request, &path, file, close),
            Err(ticket) => return self.park(now, ticket),
            Ok(None) => {}
        }
        match self.lookup(&path) {
            Ok(Found::File(content, meta)) => {
                let file = Selected::identity(&path, content, meta);
                self.respond_file(now, request, &path, file, close)
            }
            Ok(Found::Dir) if !path.trailing_slash() && !path.is_root() => {
                self.respond_redirect(now, method, &path, close)
            }
            Ok(Found::Dir) => self.respond_folder(now, request, &path, close),
            Err(SourceError::Pending(ticket)) => self.park(now, ticket),
            Err(e) => self.respond_source_error(now, method, e, close),
        }
    }

    /// Lookup and open: a cached entry of exactly the version the file system shows now (one
    /// probe), else the file opened (the probe plus the open), else what the path is.
    /// A file named with a trailing slash is not found (as nginx).
    ///
    /// A miss costs one path lookup plus the open: the probe's answer that the path is a file
    /// is enough to go straight to [`FileSource::open`], which checks containment and reports
    /// what it opened. Only when the probe finds no file is the path examined with
    /// [`FileSource::metadata`] (folders, errors, links that the probe may not judge).
    fn lookup(&self, path: &SafePath<'_>) -> Result<Found<Handle<S>, File<S>>, SourceError> {
        let source = self.site.source();
        let probed = match path.trailing_slash() {
            true => Err(SourceError::NotFound),
            false => source.probe(path, self.arrived),
        };
        let mut unprobed = false;
        match probed {
            Ok(meta) if meta.kind == FileKind::File => {
                if let Some(handle) = self.site.cache().lookup(path.as_bytes(), &meta.version) {
                    return Ok(Found::File(Content::Cached(handle), meta));
                }
            }
            // The source would have to wait to look: the open (which may wait) decides.
            Err(SourceError::WouldBlock) => unprobed = true,
            _ => match source.metadata(path)?.kind {
                // "/file.txt/" names no folder: as nginx, not found.
                FileKind::File if path.trailing_slash() => return Err(SourceError::NotFound),
                FileKind::File => {}
                FileKind::Dir => return Ok(Found::Dir),
                FileKind::Other => return Err(SourceError::NotFound),
            },
        }
        // Headers come from the version whose bytes we send: what was opened. HEAD opens too,
        // so that it reports exactly what GET would send, checked the same way.
        match source.open_waiting(path, self.wait)? {
            (file, meta) if meta.kind == FileKind::File => {
                // Not looked up before the open: the cache is asked for the version opened (it
                // counts the miss, and may have been filled by then, by a request that shared
                // this open).
                if unprobed {
                    if let Some(handle) = self.site.cache().lookup(path.as_bytes(), &meta.version) {
                        drop(file);
                        return Ok(Found::File(Content::Cached(handle), meta));
                    }
                }
                Ok(Found::File(Content::Opened(file), meta))
            }
            (_, meta) if meta.kind == FileKind::Dir => Ok(Found::Dir),
            _ => Err(SourceError::NotFound),
        }
    }

    /// Precompressed: the sibling (`path.br`, `.zst`, `.gz`) to send instead of the file at
    /// `path`, when the precompressed switch is on, the request's `Accept-Encoding` accepts its
    /// coding (best first, see [`AcceptEncoding::ranked`]), and it is a regular file no older
    /// than the original (see [`not_older`]; a stale sibling is never sent).
    ///
    /// Costs nothing without an accepted coding; else one probe of the original and one per
    /// coding tried, then the sibling's lookup (so it is cached under its own name like any
    /// file, and opened with the same containment checks).
    ///
    /// The original is only probed (its time judges the sibling's freshness), never opened: the
    /// bytes sent are the sibling's, which its own lookup checks. So an original that the open
    /// would refuse (a link out of the root) does not stop a sibling inside the root, which is
    /// servable under its own name anyway, from being sent (nginx's `gzip_static` does not look
    /// at the original at all).
    ///
    /// A probe that would block is made as [`FileSource::metadata`] (at once), and a sibling
    /// whose open waits parks the request: `Err(ticket)`.
    fn encoded<'b>(
        &self,
        request: &Request<'_>,
        path: &SafePath<'_>,
        buf: &'b mut [u8; MAX_PATH],
    ) -> Result<Option<(SafePath<'b>, SiteFile<S>)>, Ticket> {
        if !self.site.config().precompressed || path.trailing_slash() || path.is_root() {
            return Ok(None);
        }
        let accept = AcceptEncoding::parse(
            request
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(b"accept-encoding"))
                .map(|h| h.value),
        );
        let ranked = accept.ranked();
        if ranked.as_slice().is_empty() {
            return Ok(None);
        }
        let source = self.site.source();
        // A probe that would block (the source holds no cheap answer) is made as a lookup.
        let look = |p: &SafePath<'_>| match source.probe(p, self.arrived) {
            Err(SourceError::WouldBlock) => source.metadata(p).ok(),
            found => found.ok(),
        };
        let Some(original) = look(path).filter(|m| m.kind == FileKind::File) else {
            return Ok(None);
        };
        let fresh = |m: &Metadata| m.kind == FileKind::File && not_older(m, &original);
        let Some(coding) = ranked.into_iter().find(|&c| {
            sibling_path(path, c, buf)
                .and_then(|s| look(&s))
                .is_some_and(|m| fresh(&m))
        }) else {
            return Ok(None);
        };
        let Some(sibling) = sibling_path(path, coding, buf) else {
            return Ok(None);
        };
        // The lookup's metadata is that of the bytes sent: check freshness on it again.
        match self.lookup(&sibling) {
            Ok(Found::File(content, meta)) if fresh(&meta) => {
                let repr = Representation {
                    content_type: mime::content_type(path.extension()),
                    coding: Some(coding),
                };
                Ok(Some((
                    sibling,
                    Selected {
                        repr,
                        content,
                        meta,
                    },
                )))
            }
            Ok(Found::File(content, _)) => {
                self.drop_content(content);
                Ok(None)
            }
            Err(SourceError::Pending(ticket)) => Err(ticket),
            _ => Ok(None),
        }
    }

    /// A folder: its `index.html` if present, else a listing when listings are on, else 404.
    fn respond_folder(
        &mut self,
        now: Instant,
        request: &Request<'_>,
        dir: &SafePath<'_>,
        close: bool,
    ) {
        let method = request.method;
        let mut joined = [0u8; MAX_PATH];
        if let Some(index) = join(dir, INDEX_FILE, &mut joined) {
            let mut sibling = [0u8; MAX_PATH];
            match self.encoded(request, &index, &mut sibling) {
                Ok(Some((path, file))) => {
                    return self.respond_file(now, request, &path, file, close)
                }
                Err(ticket) => return self.park(now, ticket),
                Ok(None) => {}
            }
            match self.lookup(&index) {
                Ok(Found::File(content, meta)) => {
                    let file = Selected::identity(&index, content, meta);
                    return self.respond_file(now, request, &index, file, close);
                }
                Err(SourceError::Pending(ticket)) => return self.park(now, ticket),
                _ => {}
            }
        }
        if !self.site.config().listings {
            return self.respond_error(
                now,
                Some(method),
                StatusCode::NOT_FOUND,
                "not found",
                close,
            );
        }
        let view = listing::negotiate(request.accept, request.target);
        let listing = match self.site.source().listing_waiting(dir, view, self.wait) {
            Ok(listing) => listing,
            Err(SourceError::Pending(ticket)) => return self.park(now, ticket),
            Err(e) => return self.respond_source_error(now, method, e, close),
        };
        let len = listing.as_ref().len();
        let mut head = ResponseHead::new(StatusCode::OK);
        head.content_type = Some(view.style.content_type());
        head.content_security_policy = Some(listing::CONTENT_SECURITY_POLICY);
        head.content_length = Some(len as u64);
        head.date = self.site.unix_time();
        head.connection_close = close;
        let body = if method == Method::Head {
            Body::None
        } else {
            Body::Listing {
                listing,
                offset: 0,
                len,
            }
        };
        self.start(now, Some(method), &head, b"", body, close);
    }

    /// A regular file: decide (conditionals, range), fill the cache, build the head, send.
    ///
    /// Every path out hands `content` to [`Connection::start`] as the body or as the body to
    /// drop, so a cache pin is released in one place.
    fn respond_file(
        &mut self,
        now: Instant,
        request: &Request<'_>,
        path: &SafePath<'_>,
        file: SiteFile<S>,
        close: bool,
    ) {
        let Selected {
            repr,
            content,
            meta,
        } = file;
        let method = request.method;
        let size = meta.version.len;
        // Fill before deciding: a file the cache admits is labelled by its content, known once
        // its bytes are (a 304 or a 416 of a miss fills the cache too).
        let (content, cache_status) = self.fill(path, &meta.version, content);
        let digest = self.digest_of(path, &content, &meta.version, cache_status);
        let etag = match digest {
            Some(digest) => ETag::from_digest(&digest),
            // Streamed: labelled by its version.
            None if cache_status == CacheStatus::Bypass => ETag::from_version(&meta.version),
            // Admitted but not hashed (a read failed): no validator, so no false match.
            None => ETag::unknown(),
        };
        // A precompressed sibling: its own bytes' tag, marked with the coding (a file whose
        // bytes equal its `.br` sibling's must not share a tag with it).
        let etag = match repr.coding {
            Some(coding) => etag.for_coding(coding),
            None => etag,
        };
        // What to send: `None` for a 304, else (first byte, length, Content-Range).
        let part = match decide(request, &meta, &etag) {
            Decision::Unsatisfiable => {
                self.drop_content(content);
                return self.respond_unsatisfiable(now, method, size, close);
            }
            Decision::NotModified => None,
            Decision::Full => Some((0, size, None)),
            Decision::Partial { first, last } => Some((
                first,
                last - first + 1,
                Some(ContentRange::Bytes {
                    first,
                    last,
                    complete: Some(size),
                }),
            )),
        };

        let mut head = ResponseHead::new(StatusCode::NOT_MODIFIED);
        head.etag = Some(&etag).filter(|t| !t.is_unknown());
        head.last_modified = meta.modified;
        head.cache_control = self.site.config().cache_control;
        head.date = self.site.unix_time();
        head.cache_status = Some(cache_status);
        head.connection_close = close;
        // With precompressed siblings on, what a file's URL sends depends on Accept-Encoding,
        // whether a sibling exists now or appears later: every file response says so (as
        // nginx's gzip_static with gzip_vary), 304s included (RFC 9110 §15.4.5).
        if self.site.config().precompressed {
            head.vary = Some("Accept-Encoding");
        }
        if let Some((_, len, content_range)) = part {
            head.status = match content_range {
                Some(_) => StatusCode::PARTIAL_CONTENT,
                None => StatusCode::OK,
            };
            head.content_range = content_range;
            head.content_type = Some(repr.content_type);
            head.content_encoding = repr.coding.map(Coding::token);
            head.content_length = Some(len);
            head.accept_ranges = true;
            head.repr_digest = digest.as_ref();
        }
        let body = match part {
            Some((first, len, _)) if method == Method::Get => {
                content_body(content, meta.version, first, len)
            }
            _ => {
                self.drop_content(content);
                Body::None
            }
        };
        self.start(now, Some(method), &head, b"", body, close);
    }

    /// `416` with `Content-Range: bytes */size`.
    fn respond_unsatisfiable(&mut self, now: Instant, method: Method, size: u64, close: bool) {
        let mut head = ResponseHead::new(StatusCode::RANGE_NOT_SATISFIABLE);
        head.content_range = Some(ContentRange::Unsatisfied { complete: size });
        head.date = self.site.unix_time();
        head.connection_close = close;
        self.respond_error_head(now, Some(method), head, "range not satisfiable");
    }

    /// Fill: on a miss, reads the opened file into the cache; the content then comes from the
    /// new entry. Returns the content to send and the cache's part in it.
    fn fill(
        &self,
        path: &SafePath<'_>,
        version: &FileVersion,
        content: Content<Handle<S>, File<S>>,
    ) -> (Content<Handle<S>, File<S>>, CacheStatus) {
        let cache = self.site.cache();
        let file = match content {
            Content::Cached(h) => return (Content::Cached(h), CacheStatus::Hit),
            Content::Opened(ref file)
                if !self.site.source().cacheable(file) || !cache.admits(version.len) =>
            {
                return (content, CacheStatus::Bypass)
            }
            Content::Opened(file) => file,
        };
        let Ok(len) = usize::try_from(version.len) else {
            return (Content::Opened(file), CacheStatus::Miss);
        };
        let source = self.site.source();
        let mut fill = |dst: &mut [u8]| fill_from(source, &file, version, dst);
        if let Some(handle) = cache.insert(path.as_bytes(), version, len, &mut fill) {
            return (Content::Cached(handle), CacheStatus::MissStored);
        }
        (Content::Opened(file), CacheStatus::Miss)
    }

    /// The SHA-256 of a file the cache admits: its entry's (computed once at fill), or, when
    /// the cache declined to store it (a large file's first request, no room) or the entry went
    /// meanwhile, read now from the open file or the handle. `None` for a streamed file
    /// (bypass), or when that read fails.
    fn digest_of(
        &self,
        path: &SafePath<'_>,
        content: &Content<Handle<S>, File<S>>,
        version: &FileVersion,
        cache_status: CacheStatus,
    ) -> Option<ContentDigest> {
        let cache = self.site.cache();
        match content {
            Content::Opened(_) if cache_status == CacheStatus::Bypass => None,
            Content::Opened(file) => hash_from(self.site.source(), file, version).ok(),
            Content::Cached(handle) => cache
                .handle_digest(handle)
                .or_else(|| cache.digest(path.as_bytes(), version))
                .or_else(|| {
                    let mut hasher = ContentHasher::new();
                    let mut buf = [0u8; 1024];
                    let mut offset = 0;
                    while offset < cache.content_len(handle) {
                        let n = cache.copy_out(handle, offset, &mut buf);
                        if n == 0 {
                            return None;
                        }
                        hasher.update(&buf[..n]);
                        offset += n;
                    }
                    Some(hasher.finish())
                }),
        }
    }

    fn drop_content(&self, content: Content<Handle<S>, File<S>>) {
        self.drop_body(content_body(content, FileVersion::default(), 0, 0));
    }

    fn respond_redirect(&mut self, now: Instant, method: Method, path: &SafePath<'_>, close: bool) {
        let mut location = [0u8; 3 * MAX_PATH + 2];
        let Some(n) = encode_location(path, &mut location) else {
            return self.respond_error(
                now,
                Some(method),
                StatusCode::URI_TOO_LONG,
                "path too long",
                close,
            );
        };
        let mut head = ResponseHead::new(StatusCode::MOVED_PERMANENTLY);
        head.location = Some(&location[..n]);
        head.date = self.site.unix_time();
        head.connection_close = close;
        self.respond_error_head(now, Some(method), head, "moved permanently");
    }

    /// `503` + `Retry-After: 1`, then close: the driver is past its connection cap.
    pub(super) fn respond_busy(&mut self, now: Instant) {
        let mut head = ResponseHead::new(StatusCode::SERVICE_UNAVAILABLE);
        head.retry_after = Some(1);
        head.date = self.site.unix_time();
        head.connection_close = true;
        let reason = "server busy: too many connections, retry later";
        self.respond_error_head(now, None, head, reason);
    }

    fn respond_source_error(&mut self, now: Instant, method: Method, e: SourceError, close: bool) {
        let (status, reason) = match e {
            SourceError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            SourceError::Io => (StatusCode::INTERNAL_SERVER_ERROR, "file could not be read"),
            SourceError::Upstream(e) => (
                status_of(if e.is_timeout() { 504 } else { 502 }),
                e.reason(),
            ),
            // A source that pends where it may not (outside the `_waiting` methods).
            SourceError::Pending(_) | SourceError::WouldBlock => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "file source did not answer",
            ),
            _ => (StatusCode::NOT_FOUND, "not found"),
        };
        self.respond_error(now, Some(method), status, reason, close);
    }

    /// An error (or other short) response with a `text/plain` body stating `reason`.
    pub(super) fn respond_error(
        &mut self,
        now: Instant,
        method: Option<Method>,
        status: StatusCode,
        reason: &str,
        close: bool,
    ) {
        let mut head = ResponseHead::new(status);
        head.date = self.site.unix_time();
        head.connection_close = close;
        if status == StatusCode::METHOD_NOT_ALLOWED {
            head.allow = Some("GET, HEAD");
        }
        self.respond_error_head(now, method, head, reason);
    }

    /// Sends `head` with a `text/plain` body `reason` + newline (none for HEAD).
    fn respond_error_head(
        &mut self,
        now: Instant,
        method: Option<Method>,
        mut head: ResponseHead<'_>,
        reason: &str,
    ) {
        let close = head.connection_close;
        head.content_type = Some("text/plain; charset=utf-8");
        let mut text = [0u8; 128];
        let n = reason.len().min(text.len() - 1);
        text[..n].copy_from_slice(&reason.as_bytes()[..n]);
        text[n] = b'\n';
        head.content_length = Some(n as u64 + 1);
        let inline = if method == Some(Method::Head) {
            &text[..0]
        } else {
            &text[..=n]
        };
        self.start(now, method, &head, inline, Body::None, close);
    }
}

/// Decide: the conditionals and the range of `request` against the file's validators.
///
/// Only a GET has a range (RFC 9110 §14.2): a HEAD with `Range` is answered as a plain HEAD.
fn decide(request: &Request<'_>, meta: &Metadata, etag: &ETag) -> Decision {
    let validators = Validators {
        etag,
        last_modified: meta.modified,
    };
    let mut range = request.range.filter(|_| request.method == Method::Get);
    if etag.is_unknown() && request.if_range.is_some() {
        // Without a validator no `If-Range` can be shown to match (a date alone could name
        // two versions of one second): the whole file, never a splice.
        range = None;
    }
    let conditions = Conditions {
        if_none_match: request.if_none_match,
        if_modified_since: request.if_modified_since,
        if_range: request.if_range,
        range,
    };
    conditional::evaluate(&conditions, &validators, meta.version.len, true)
}

/// The body for `len` bytes at `first` of `content`, a file opened at `version`.
fn content_body<H, F, L>(
    content: Content<H, F>,
    version: FileVersion,
    first: u64,
    len: u64,
) -> Body<H, F, L> {
    match content {
        // Both fit in usize: the entry holds the whole file in memory.
        Content::Cached(handle) => Body::Cached {
            handle,
            offset: first as usize,
            len: len as usize,
        },
        Content::Opened(file) => Body::File {
            file,
            offset: first,
            len,
            version,
        },
    }
}

/// Reads exactly `dst.len()` bytes of `file` and checks the file is still at `version`
/// afterwards, so a file changed during the read is never stored.
fn fill_from<F: FileSource>(
    source: &F,
    file: &F::File,
    version: &FileVersion,
    dst: &mut [u8],
) -> Result<(), SourceError> {
    let mut done = 0;
    while done < dst.len() {
        let n = source.read_at(file, done as u64, &mut dst[done..])?;
        if n == 0 {
            return Err(SourceError::Io);
        }
        done += n;
    }
    match source.file_metadata(file) {
        Ok(after) if after.version == *version => Ok(()),
        _ => Err(SourceError::Io),
    }
}

/// The SHA-256 of `file`'s `version.len` bytes, read in small pieces, then checked against the
/// file's size and modification stamp afterwards (a write during the read changes the stamp).
/// Unlike [`fill_from`] it does not insist on the copy's own `id`: a file that was renamed over
/// or unlinked while open gets a new change time without a change of its bytes, and its
/// response still deserves its validator.
fn hash_from<F: FileSource>(
    source: &F,
    file: &F::File,
    version: &FileVersion,
) -> Result<ContentDigest, SourceError> {
    let mut hasher = ContentHasher::new();
    // Small, as it lives on a board's stack too (a host reads a few more times).
    let mut buf = [0u8; 2048];
    let mut done = 0u64;
    while done < version.len {
        let want = usize::try_from(version.len - done).map_or(buf.len(), |n| n.min(buf.len()));
        let n = source.read_at(file, done, &mut buf[..want])?;
        if n == 0 {
            return Err(SourceError::Io);
        }
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    match source.file_metadata(file) {
        Ok(after) if (after.version.len, after.version.stamp) == (version.len, version.stamp) => {
            Ok(hasher.finish())
        }
        _ => Err(SourceError::Io),
    }
}

/// Whether a sibling with metadata `sibling` is not older than its `original`: compared in
/// whole seconds (the resolution of `Last-Modified`) where the source has them, because tools
/// copy the original's time to seconds only (`brotli -k` does), which must not make a sibling
/// made from the current original look stale; else by modification stamp.
fn not_older(sibling: &Metadata, original: &Metadata) -> bool {
    match (sibling.modified, original.modified) {
        (Some(s), Some(o)) => s >= o,
        _ => sibling.version.stamp >= original.version.stamp,
    }
}

/// `path` + the coding's extension (`page.html.br`) as a [`SafePath`] in `buf`, if it fits.
fn sibling_path<'b>(
    path: &SafePath<'_>,
    coding: Coding,
    buf: &'b mut [u8; MAX_PATH],
) -> Option<SafePath<'b>> {
    let p = path.as_bytes();
    let ext = coding.extension();
    let len = p.len() + ext.len();
    buf.get_mut(..p.len())?.copy_from_slice(p);
    buf.get_mut(p.len()..len)?.copy_from_slice(ext);
    SafePath::from_normalized(&buf[..len]).ok()
}

/// `dir/name` as a [`SafePath`] in `buf`, if it fits.
fn join<'b>(dir: &SafePath<'_>, name: &[u8], buf: &'b mut [u8; MAX_PATH]) -> Option<SafePath<'b>> {
    let d = dir.as_bytes();
    let sep = usize::from(!d.is_empty());
    let len = d.len() + sep + name.len();
    if len > MAX_PATH {
        return None;
    }
    buf[..d.len()].copy_from_slice(d);
    if sep == 1 {
        buf[d.len()] = b'/';
    }
    buf[d.len() + sep..len].copy_from_slice(name);
    SafePath::from_normalized(&buf[..len]).ok()
}

/// `/` + the percent-encoded path + `/` into `out`; its length, or `None` if it does not fit.
fn encode_location(path: &SafePath<'_>, out: &mut [u8]) -> Option<usize> {
    let mut w = SliceWriter { buf: out, len: 0 };
    w.push(b"/")?;
    listing::percent_encode_path(path.as_bytes(), &mut w).ok()?;
    w.push(b"/")?;
    Some(w.len)
}

/// A `core::fmt::Write` into a byte slice that fails (rather than truncates) when full.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl SliceWriter<'_> {
    fn push(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len.checked_add(bytes.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }
}

impl core::fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes()).ok_or(core::fmt::Error)
    }
}
