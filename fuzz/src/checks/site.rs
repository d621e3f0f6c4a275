//! An in-memory site for the server-side targets: a mutable file set, a small board cache, a
//! miniature driver and a strict response reader.

use core::cell::{Cell, RefCell};
use std::rc::Rc;

use satchel_core::cache::{ArenaStore, ArrayCache, Bucket, Cache, Config as CacheConfig};
use satchel_core::cache::{Region, Slot};
use satchel_core::http::digest::ContentDigest;
use satchel_core::http::etag::ETag;
use satchel_core::listing::{Entry, ListingView, ListingWriter};
use satchel_core::path::SafePath;
use satchel_core::serve::{Config, Connection, Event, SiteParts};
use satchel_core::source::{Arrival, SourceError, Ticket};
use satchel_core::source::{FileKind, FileSource, FileVersion, Metadata};
use satchel_core::time::Instant;

/// Bytes in the site's cache arena.
pub const CACHE_BYTES: usize = 8 * 1024;
/// Files above this many bytes bypass the cache (and stream from the "file").
pub const MAX_CACHED: usize = 4 * 1024;
/// The connection's TX buffer, as the server tests use.
pub const TX: usize = 4096;

/// The board cache of the site: 8 entries, 16 buckets, [`CACHE_BYTES`] bytes.
pub type BoardCache = ArrayCache<8, 16, CACHE_BYTES>;

/// One version of a file: what an open file keeps reading even after the path is replaced
/// (the file system's inode semantics).
#[derive(Debug)]
pub struct Snapshot {
    /// The content.
    pub data: Vec<u8>,
    /// Its metadata (a file).
    pub meta: Metadata,
}

impl Snapshot {
    /// The `ETag` the server derives for this version.
    /// The tag the server gives this version: the digest of its content when the cache admits
    /// it (at most [`MAX_CACHED`] bytes), else its version (a streamed file).
    pub fn etag(&self) -> ETag {
        if self.data.len() <= MAX_CACHED {
            ETag::from_digest(&ContentDigest::of(&self.data))
        } else {
            ETag::from_version(&self.meta.version)
        }
    }
}

/// A file set in memory whose files can be replaced while the server runs.
#[derive(Debug, Default)]
pub struct MemSource {
    files: RefCell<Vec<(Vec<u8>, Rc<Snapshot>)>>,
    next_id: Cell<u64>,
    /// Opens and listings wait (answer `Pending`) until the connection asks again with its
    /// ticket, and then answer with the files as they are at that moment.
    pub slow: Cell<bool>,
    /// With `slow`, probes answer `WouldBlock` (a miss goes straight to the open).
    pub probe_blocks: Cell<bool>,
    next_ticket: Cell<u64>,
}

impl MemSource {
    /// Adds (or replaces, as a rename over it would) the file at normalised `path`.
    pub fn put(&self, path: &[u8], data: Vec<u8>, modified: Option<u64>) -> Rc<Snapshot> {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        let snap = Rc::new(Snapshot {
            meta: Metadata {
                kind: FileKind::File,
                version: FileVersion {
                    len: data.len() as u64,
                    stamp: modified.unwrap_or(0).wrapping_mul(1_000_000_000),
                    id,
                },
                modified,
            },
            data,
        });
        let mut files = self.files.borrow_mut();
        match files.iter_mut().find(|(p, _)| p == path) {
            Some(slot) => slot.1 = Rc::clone(&snap),
            None => files.push((path.to_vec(), Rc::clone(&snap))),
        }
        snap
    }

    /// `Pending` under a new ticket, for a slow source's first answer to a request.
    fn pend(&self, wait: Option<Ticket>) -> Option<SourceError> {
        if !self.slow.get() || wait.is_some() {
            return None;
        }
        let t = self.next_ticket.get() + 1;
        self.next_ticket.set(t);
        Some(SourceError::Pending(Ticket(t)))
    }

    /// The current version of the file at normalised `path`.
    pub fn get(&self, path: &[u8]) -> Option<Rc<Snapshot>> {
        let files = self.files.borrow();
        files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, s)| Rc::clone(s))
    }

    /// Whether normalised `path` is a folder (the root, or a proper prefix of a file's path).
    pub fn is_dir(&self, path: &[u8]) -> bool {
        path.is_empty()
            || self
                .files
                .borrow()
                .iter()
                .any(|(p, _)| p.len() > path.len() && p.starts_with(path) && p[path.len()] == b'/')
    }
}

impl FileSource for MemSource {
    type File = Rc<Snapshot>;
    type Listing = Vec<u8>;

    fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
        if let Some(snap) = self.get(path.as_bytes()) {
            return Ok(snap.meta);
        }
        if self.is_dir(path.as_bytes()) {
            return Ok(Metadata {
                kind: FileKind::Dir,
                version: FileVersion::default(),
                modified: None,
            });
        }
        Err(SourceError::NotFound)
    }

    fn probe(&self, path: &SafePath<'_>, _arrived: Arrival) -> Result<Metadata, SourceError> {
        if self.slow.get() && self.probe_blocks.get() {
            return Err(SourceError::WouldBlock);
        }
        self.metadata(path)
    }

    fn open(&self, path: &SafePath<'_>) -> Result<(Rc<Snapshot>, Metadata), SourceError> {
        let snap = self.get(path.as_bytes()).ok_or(SourceError::NotFound)?;
        let meta = snap.meta;
        Ok((snap, meta))
    }

    /// A slow source reports folders from the open too (a probe that would block sends every
    /// path here).
    fn open_waiting(
        &self,
        path: &SafePath<'_>,
        wait: Option<Ticket>,
    ) -> Result<(Rc<Snapshot>, Metadata), SourceError> {
        if let Some(pending) = self.pend(wait) {
            return Err(pending);
        }
        match self.metadata(path) {
            Ok(meta) if meta.kind == FileKind::Dir => Ok((
                Rc::new(Snapshot {
                    data: Vec::new(),
                    meta,
                }),
                meta,
            )),
            _ => self.open(path),
        }
    }

    fn listing_waiting(
        &self,
        path: &SafePath<'_>,
        view: ListingView,
        wait: Option<Ticket>,
    ) -> Result<Vec<u8>, SourceError> {
        match self.pend(wait) {
            Some(pending) => Err(pending),
            None => self.listing(path, view),
        }
    }

    fn file_metadata(&self, file: &Rc<Snapshot>) -> Result<Metadata, SourceError> {
        Ok(file.meta)
    }

    fn read_at(
        &self,
        file: &Rc<Snapshot>,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, SourceError> {
        let data = &file.data;
        let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn listing(&self, path: &SafePath<'_>, view: ListingView) -> Result<Vec<u8>, SourceError> {
        let dir = path.as_bytes();
        let mut out =
            ListingWriter::begin(String::new(), view, dir).map_err(|_| SourceError::Io)?;
        let prefix_len = if dir.is_empty() { 0 } else { dir.len() + 1 };
        for (p, snap) in self.files.borrow().iter() {
            if p.len() <= prefix_len || !p.starts_with(dir) {
                continue;
            }
            if !dir.is_empty() && p[dir.len()] != b'/' {
                continue;
            }
            let rest = &p[prefix_len..];
            let (name, is_dir) = match rest.iter().position(|&b| b == b'/') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            let entry = Entry {
                name,
                is_dir,
                size: snap.meta.version.len,
                modified: snap.meta.modified,
                version: Some(snap.meta.version),
            };
            out.entry(&entry).map_err(|_| SourceError::Io)?;
        }
        let text = out.finish().map_err(|_| SourceError::Io)?;
        Ok(text.into_bytes())
    }
}

/// A site over a [`MemSource`] and a [`BoardCache`]; no clock, so no `Date`.
pub type MemSite = SiteParts<MemSource, RefCell<BoardCache>>;

/// An empty site with `config` and a cache that stores every file up to [`MAX_CACHED`] bytes on
/// its first GET.
pub fn mem_site(config: Config) -> MemSite {
    let store = ArenaStore::new([0u8; CACHE_BYTES], [const { Region::new() }; 8])
        .expect("eight region records");
    let cache = Cache::new(
        store,
        [const { Slot::new() }; 8],
        [const { Bucket::new() }; 16],
        CacheConfig {
            max_entry_bytes: MAX_CACHED,
            large_bytes: MAX_CACHED,
            small_percent: 10,
        },
    )
    .expect("16 buckets for 8 slots");
    SiteParts::new(MemSource::default(), RefCell::new(cache), config)
}

/// A connection with the peer's side of the socket: bytes received but not consumed, and
/// bytes sent so far.
pub struct Peer<'s> {
    /// The site served.
    pub site: &'s MemSite,
    /// The connection under test.
    pub conn: Connection<'s, MemSite, TX>,
    /// The fake clock, in milliseconds.
    pub now: u64,
    /// Received, not yet consumed.
    pub pending: Vec<u8>,
    /// Everything the server sent.
    pub out: Vec<u8>,
    /// The planned size of the response whose `Done` event is still to come.
    open_response: Option<u64>,
    /// Bytes the `Done` events reported sent, in all.
    logged: u64,
}

impl<'s> Peer<'s> {
    /// A connection accepted at time 0.
    pub fn new(site: &'s MemSite) -> Self {
        Self {
            site,
            conn: Connection::new(site, Instant::from_millis(0)),
            now: 0,
            pending: Vec::new(),
            out: Vec::new(),
            open_response: None,
            logged: 0,
        }
    }

    /// Polls every waiting event and checks what they say against what was sent: each
    /// response has one `Response` then one `Done`; a `Done` reports exactly the bytes that
    /// went out for it, all of the planned bytes when complete.
    pub fn drain_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Response(info) => {
                    assert_eq!(self.open_response, None, "Response before the last Done");
                    self.open_response = Some(info.bytes);
                }
                Event::Done(done) => {
                    let planned = self.open_response.take().expect("Done without a Response");
                    assert!(done.sent <= planned, "sent more than planned");
                    assert!(!done.complete || done.sent == planned, "complete but short");
                    self.logged += done.sent;
                    assert_eq!(
                        self.logged,
                        self.out.len() as u64,
                        "Done counts differ from the wire"
                    );
                }
            }
        }
    }

    /// The current instant.
    pub fn instant(&self) -> Instant {
        Instant::from_millis(self.now)
    }

    /// Offers the pending bytes once; returns those consumed (removed from `pending`).
    pub fn offer(&mut self) -> Vec<u8> {
        self.drain_events();
        let n = self
            .conn
            .handle_input(self.instant(), Arrival::UNKNOWN, &self.pending);
        assert!(n <= self.pending.len(), "consumed more than offered");
        self.drain_events();
        self.pending.drain(..n).collect()
    }

    /// Sends at most `max` bytes of what the connection offers and reports them; `None` when it
    /// offers nothing.
    pub fn send(&mut self, max: usize) -> Option<usize> {
        let now = self.instant();
        let tx = self.conn.poll_transmit()?;
        let offered = tx.len();
        assert!(offered > 0, "poll_transmit offered an empty transmit");
        let mut sent = vec![0u8; usize::try_from(offered).unwrap_or(usize::MAX).min(max)];
        let n = tx
            .copy_to(self.site, &mut sent)
            .expect("memory files always read");
        assert_eq!(n, sent.len(), "body shorter than planned");
        sent.truncate(n);
        let n = sent.len();
        self.out.extend_from_slice(&sent);
        self.conn.transmitted(now, n);
        self.drain_events();
        Some(n)
    }

    /// Alternates offering input and sending everything until neither makes progress.
    pub fn run(&mut self) {
        loop {
            let consumed = !self.offer().is_empty();
            let mut sent = false;
            while self.send(usize::MAX).is_some() {
                sent = true;
            }
            if !consumed && !sent {
                break;
            }
        }
    }
}

/// One response as the peer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The head's length in bytes, final empty line included.
    pub head_len: usize,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of the first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Content-Length`, parsed.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {v:?}"))
        })
    }

    /// Whether the server announced it closes after this response.
    pub fn closes(&self) -> bool {
        self.header("connection") == Some("close")
    }
}

/// Reads one response from the front of `buf` as a strict client would: `None` when it is not
/// complete yet. `head_only` is for the answer to a HEAD (no body whatever the length says).
///
/// # Panics
/// On anything PROTOCOL.md rules out: a malformed status line or field, a response other than
/// 304 without `Content-Length`, a 304 with a body.
pub fn read_response(buf: &[u8], head_only: bool) -> Option<(Response, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end - 4]).expect("response head is ASCII");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("bad field line {line:?}"));
        assert!(
            !name.is_empty() && !name.contains(' '),
            "bad field {line:?}"
        );
        headers.push((name.to_owned(), value.to_owned()));
    }
    let mut response = Response {
        status,
        headers,
        head_len: end,
        body: Vec::new(),
    };
    let len = match (response.content_length(), status) {
        (None, 304) => 0,
        (Some(_), 304) => panic!("304 with Content-Length"),
        (None, _) => panic!("{status} without Content-Length"),
        (Some(len), _) => len,
    };
    let body_len = if head_only { 0 } else { len as usize };
    let body = buf.get(end..end + body_len)?;
    response.body = body.to_vec();
    Some((response, end + body_len))
}
