//! Where files come from: the [`FileSource`] trait, and [`StaticSource`], a table of files baked
//! into the program (flash on a board, fixtures in tests).
//!
//! A source answers for [`SafePath`]s only, so it never sees a path that could leave its root.

use crate::listing::ListingView;
use crate::path::SafePath;
use crate::status::StatusCode;
pub use crate::version::FileVersion;

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// Anything else (device, fifo, socket): never served.
    Other,
}

/// What a source knows about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// File, folder or other.
    pub kind: FileKind,
    /// Identity and version; `len` is the size for a file.
    pub version: FileVersion,
    /// Modification time in seconds since the Unix epoch, when the platform has one
    /// (used for `Last-Modified` and `If-Modified-Since`).
    pub modified: Option<u64>,
}

/// Why a source could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceError {
    /// No such file, or one the server must not reveal (outside the root, hidden).
    NotFound,
    /// The file exists but may not be read.
    Forbidden,
    /// An I/O failure on the server's side.
    Io,
    /// Not answered yet: the source started the work (an open on a thread pool, a fetch from an
    /// upstream server) under this ticket, and the connection waits for it (see
    /// [`Ticket`]). Only the `_waiting` methods answer it.
    Pending(Ticket),
    /// Answering would mean waiting, and the source started nothing: from
    /// [`FileSource::probe`], where it sends the connection straight on to
    /// [`FileSource::open_waiting`] (the probe only validates a cached entry, and a source
    /// that knows the cache holds nothing under the path need not look); and from
    /// [`FileSource::read_at`] of a file still streaming in, whose bytes at the offset have
    /// not arrived (the response sends nothing until they do).
    WouldBlock,
    /// The file comes from an upstream server, which could not deliver it (see
    /// [`UpstreamError`]): the server answers `502 Bad Gateway`, or `504 Gateway Timeout`
    /// when upstream did not answer in time.
    Upstream(UpstreamError),
}

/// Why an upstream server did not deliver a file (see [`SourceError::Upstream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpstreamError {
    /// Nobody listens at the upstream address (the connection was refused).
    Refused,
    /// The connection could not be made, or broke before the whole answer was in.
    Broken,
    /// No answer in time: the connection, the response head, or the body's progress.
    Timeout,
    /// The answer was malformed, cut short, or not of the length it announced.
    BadAnswer,
    /// Upstream answered an error status (other than `404`, which is passed on as not found).
    Status(StatusCode),
    /// The body, of unannounced length (chunked, or ended by closing), overflows the fetch
    /// buffer: never served truncated (a larger body with a `Content-Length` streams).
    TooLarge,
    /// The path is too long to be fetched.
    PathTooLong,
}

impl UpstreamError {
    /// Whether the server answers `504 Gateway Timeout` (else `502 Bad Gateway`).
    pub const fn is_timeout(self) -> bool {
        matches!(self, Self::Timeout)
    }

    /// The status the server answers with: `504 Gateway Timeout` for a timeout, else
    /// `502 Bad Gateway`.
    pub const fn status(self) -> StatusCode {
        if self.is_timeout() {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        }
    }

    /// The reason sent in the error response's body.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Refused => "upstream refused the connection",
            Self::Broken => "upstream connection failed or was reset",
            Self::Timeout => "upstream did not answer in time",
            Self::BadAnswer => "upstream sent a malformed or incomplete answer",
            Self::Status(_) => "upstream answered with an error status",
            Self::TooLarge => "upstream file is larger than this server can hold",
            Self::PathTooLong => "path too long to fetch from upstream",
        }
    }
}

impl core::fmt::Display for SourceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::Forbidden => "forbidden",
            Self::Io => "i/o error",
            Self::Pending(_) => "pending",
            Self::WouldBlock => "would block",
            Self::Upstream(e) => e.reason(),
        })
    }
}

impl core::error::Error for SourceError {}

/// When the bytes of the request being answered had all arrived, in the driver's own count of
/// its socket reads: `Arrival(n)` means "delivered by read number `n` or earlier".
///
/// The driver passes it to [`Connection::handle_input`](crate::serve::Connection::handle_input),
/// and the connection to [`FileSource::probe`]. A source that remembers probe results may
/// answer a request with a result looked up *after* its arrival: the request was in flight
/// when the lookup ran, so answering with what the file was then is linearizable, and a
/// change made before a client sent its request is always seen by that request.
/// [`Arrival::UNKNOWN`] (a driver that does not count) allows no reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Arrival(pub u64);

impl Arrival {
    /// Arrival not known: every probe looks again.
    pub const UNKNOWN: Self = Self(u64::MAX);
}

/// The work a source does for one waiting request, named by the source.
///
/// A source that cannot answer [`FileSource::open_waiting`] (or
/// [`FileSource::listing_waiting`]) at once starts the work and answers
/// [`SourceError::Pending`] with a ticket. The connection parks the request (its bytes stay
/// unconsumed in the driver's buffer) and reports the ticket through
/// [`Connection::waiting_for`](crate::serve::Connection::waiting_for); when the work is done
/// the driver calls [`Connection::handle_ready`](crate::serve::Connection::handle_ready),
/// and the connection answers the request again from its start, passing the ticket back to
/// every `_waiting` call. The source answers what it completed under the ticket and adds any
/// further work (a folder's `index.html` after the folder) to the same ticket, until the
/// request is answered. What the numbers mean is the source's and its driver's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// A tree of files under a root.
///
/// Every method takes `&self`: a host source is shared by threads, a board's lives in a static.
pub trait FileSource {
    /// An open file, from which `read_at` reads the version `open` reported.
    type File;
    /// A rendered folder listing (see [`FileSource::listing`]).
    type Listing: AsRef<[u8]>;

    /// The metadata of `path`, following links that stay inside the root.
    ///
    /// # Errors
    /// [`SourceError::NotFound`] when the path does not exist or must not be revealed.
    fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError>;

    /// A quick look at `path` for validating a cached entry, which may skip the containment
    /// checks of [`FileSource::metadata`] (on the host: one `statx` instead of `openat2` +
    /// `fstat`).
    ///
    /// This is sound only for comparing with a [`FileVersion`] read earlier through
    /// [`FileSource::open`] (a version names the file's identity, so a path that now leads
    /// elsewhere reports another version and is a miss), and for deciding to go on to
    /// [`FileSource::open`], which checks containment itself. Use nothing else of the result.
    ///
    /// `arrived` says when the request being answered had arrived: a source may answer with a
    /// result it looked up after that point (see [`Arrival`]); the default looks every time.
    ///
    /// A slow source may answer [`SourceError::WouldBlock`] instead of looking (when the cache
    /// holds nothing under the path, say): the connection then goes straight on to
    /// [`FileSource::open_waiting`], which judges files, folders and errors alike.
    ///
    /// # Errors
    /// As [`FileSource::metadata`], and [`SourceError::WouldBlock`].
    fn probe(&self, path: &SafePath<'_>, arrived: Arrival) -> Result<Metadata, SourceError> {
        let _ = arrived;
        self.metadata(path)
    }

    /// Opens the file at `path` and returns it with the metadata of what was opened.
    ///
    /// # Errors
    /// As [`FileSource::metadata`]; also when `path` is not a regular file.
    fn open(&self, path: &SafePath<'_>) -> Result<(Self::File, Metadata), SourceError>;

    /// [`FileSource::open`] for a request that can wait: the connection calls this one. A
    /// source that is always fast keeps the default (the sync `open`, nothing more). A slow one
    /// may start the open elsewhere and answer [`SourceError::Pending`]; `wait` is the
    /// request's ticket once it has one (see [`Ticket`]), under which the source answers
    /// what it completed. What it answers follows `open`'s rules (a folder may be "opened":
    /// its metadata says so), and a file it returns must be readable without waiting for the
    /// bytes the cache fill needs (read ahead into memory, or a fast medium).
    ///
    /// # Errors
    /// As [`FileSource::open`], and [`SourceError::Pending`].
    fn open_waiting(
        &self,
        path: &SafePath<'_>,
        wait: Option<Ticket>,
    ) -> Result<(Self::File, Metadata), SourceError> {
        let _ = wait;
        self.open(path)
    }

    /// Whether the server may copy `file` into its cache (default: yes). A source whose bytes
    /// already sit in fast, addressable memory (flash on a board) answers `false` for them, so
    /// the cache keeps its room for files from a slow source; they are then streamed
    /// (`Cache-Status: satchel; fwd=bypass`).
    fn cacheable(&self, file: &Self::File) -> bool {
        let _ = file;
        true
    }

    /// The server is done with `file`: its response ended, was cut short, or sent no body
    /// (`HEAD`, `304`). A source streaming the file from elsewhere stops fetching it; the
    /// default does nothing.
    fn close(&self, file: &Self::File) {
        let _ = file;
    }

    /// The metadata of an open file as it is now (`fstat` on the host).
    ///
    /// The server compares it with what `open` reported after reading a file into the cache,
    /// so that a file changed during the read is never stored.
    ///
    /// # Errors
    /// [`SourceError::Io`] when the file cannot be examined.
    fn file_metadata(&self, file: &Self::File) -> Result<Metadata, SourceError>;

    /// Reads up to `buf.len()` bytes at `offset`; `Ok(0)` means the end of the file.
    ///
    /// # Errors
    /// [`SourceError::Io`] on a read failure; [`SourceError::WouldBlock`] from a source that
    /// streams the file and has not received the bytes at `offset` yet (the response waits
    /// for them).
    fn read_at(&self, file: &Self::File, offset: u64, buf: &mut [u8])
        -> Result<usize, SourceError>;

    /// Renders the listing of the folder at `path` in the view's style and order (see
    /// [`crate::listing`]).
    ///
    /// # Errors
    /// [`SourceError::NotFound`] where the source has no listings (the default).
    fn listing(
        &self,
        path: &SafePath<'_>,
        view: ListingView,
    ) -> Result<Self::Listing, SourceError> {
        let _ = (path, view);
        Err(SourceError::NotFound)
    }

    /// [`FileSource::listing`] for a request that can wait, as
    /// [`FileSource::open_waiting`] is for `open`; the default renders at once.
    ///
    /// # Errors
    /// As [`FileSource::listing`], and [`SourceError::Pending`].
    fn listing_waiting(
        &self,
        path: &SafePath<'_>,
        view: ListingView,
        wait: Option<Ticket>,
    ) -> Result<Self::Listing, SourceError> {
        let _ = wait;
        self.listing(path, view)
    }
}

/// One file of a [`StaticSource`].
#[derive(Debug, Clone, Copy)]
pub struct StaticFile {
    /// The path below the root, without a leading slash (`"img/logo.png"`).
    pub path: &'static str,
    /// The content.
    pub data: &'static [u8],
    /// Modification time in seconds since the Unix epoch, if known.
    pub modified: Option<u64>,
}

/// A read-only file set in memory: files baked into flash with `include_bytes!`, or fixtures.
///
/// Folders are implied by the files' paths. It has no listings.
#[derive(Debug, Clone, Copy)]
pub struct StaticSource {
    files: &'static [StaticFile],
}

impl StaticSource {
    /// A source over `files`.
    pub const fn new(files: &'static [StaticFile]) -> Self {
        Self { files }
    }

    /// The files of this source.
    pub const fn files(&self) -> &'static [StaticFile] {
        self.files
    }

    fn metadata_of(index: usize, file: &StaticFile) -> Metadata {
        Metadata {
            kind: FileKind::File,
            version: FileVersion {
                len: file.data.len() as u64,
                stamp: file.modified.unwrap_or(0),
                id: index as u64 + 1,
            },
            modified: file.modified,
        }
    }
}

impl FileSource for StaticSource {
    type File = usize;
    type Listing = &'static [u8];

    fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
        let want = path.as_bytes();
        for (i, f) in self.files.iter().enumerate() {
            let have = f.path.as_bytes();
            if have == want {
                return Ok(Self::metadata_of(i, f));
            }
            let is_dir = want.is_empty()
                || (have.len() > want.len() && have.starts_with(want) && have[want.len()] == b'/');
            if is_dir {
                return Ok(Metadata {
                    kind: FileKind::Dir,
                    version: FileVersion::default(),
                    modified: None,
                });
            }
        }
        Err(SourceError::NotFound)
    }

    fn open(&self, path: &SafePath<'_>) -> Result<(usize, Metadata), SourceError> {
        let want = path.as_bytes();
        self.files
            .iter()
            .enumerate()
            .find(|(_, f)| f.path.as_bytes() == want)
            .map(|(i, f)| (i, Self::metadata_of(i, f)))
            .ok_or(SourceError::NotFound)
    }

    fn file_metadata(&self, file: &usize) -> Result<Metadata, SourceError> {
        let f = self.files.get(*file).ok_or(SourceError::Io)?;
        Ok(Self::metadata_of(*file, f))
    }

    fn read_at(&self, file: &usize, offset: u64, buf: &mut [u8]) -> Result<usize, SourceError> {
        let data = self.files.get(*file).ok_or(SourceError::Io)?.data;
        let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
}
