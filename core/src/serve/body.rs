//! Response bodies and what a driver sends: [`Transmit`], [`BodyRef`], and the one
//! [`Transmit::copy_to`] every copying driver uses.

use crate::cache::ContentCache;
use crate::source::{FileSource, FileVersion, SourceError};

use super::Site;

/// The body of the response being sent, and how far it has gone.
pub(super) enum Body<H, F, L> {
    None,
    Cached {
        handle: H,
        offset: usize,
        len: usize,
    },
    File {
        file: F,
        offset: u64,
        len: u64,
        /// The version `open` reported, which every piece sent must still be read from.
        version: FileVersion,
    },
    Listing {
        listing: L,
        offset: usize,
        len: usize,
    },
}

impl<H, F, L> Body<H, F, L> {
    /// Bytes still to send.
    pub(super) fn remaining(&self) -> u64 {
        match self {
            Self::None => 0,
            Self::Cached { len, .. } | Self::Listing { len, .. } => *len as u64,
            Self::File { len, .. } => *len,
        }
    }

    /// Counts `n` body bytes as sent.
    pub(super) fn advance(&mut self, n: usize) {
        match self {
            Self::None => {}
            Self::Cached { offset, len, .. } | Self::Listing { offset, len, .. } => {
                let k = n.min(*len);
                *offset += k;
                *len -= k;
            }
            Self::File { offset, len, .. } => {
                let k = (n as u64).min(*len);
                *offset += k;
                *len -= k;
            }
        }
    }

    /// A view of what is left to send.
    pub(super) fn as_ref(&self) -> BodyRef<'_, H, F, L> {
        match self {
            Self::None => BodyRef::None,
            Self::Cached {
                handle,
                offset,
                len,
            } => BodyRef::Cached {
                handle,
                offset: *offset,
                len: *len,
            },
            Self::File {
                file,
                offset,
                len,
                version,
            } => BodyRef::File {
                file,
                offset: *offset,
                len: *len,
                version: *version,
            },
            Self::Listing {
                listing,
                offset,
                len,
            } => BodyRef::Listing {
                listing,
                offset: *offset,
                len: *len,
            },
        }
    }
}

/// What to send next: the rest of the response head, then (part of) the body.
///
/// Send `head` first, then the body bytes; report the total sent with
/// [`Connection::transmitted`](super::Connection::transmitted). A driver that sends from where
/// the bytes live (`writev` of a cache entry) matches on [`BodyRef`]; one that copies into a
/// socket buffer calls [`Transmit::copy_to`].
#[must_use]
pub struct Transmit<'a, H, F, L> {
    /// Head bytes not yet sent (may be empty).
    pub head: &'a [u8],
    /// The body still to send.
    pub body: BodyRef<'a, H, F, L>,
}

/// The part of a response body still to send, where it lives.
#[must_use]
pub enum BodyRef<'a, H, F, L> {
    /// No body (or all of it sent).
    None,
    /// `len` bytes at `offset` of a pinned cache entry.
    Cached {
        /// The pinned entry.
        handle: &'a H,
        /// Offset into the entry's content.
        offset: usize,
        /// Bytes to send.
        len: usize,
    },
    /// `len` bytes at `offset` of an open file, which must still be at `version`. A file that
    /// ends early, or whose version changed, has changed under us: the driver must
    /// [`Connection::abort`](super::Connection::abort) rather than send anything else (a driver
    /// that reads pieces itself checks [`FileSource::file_metadata`] after each read, as
    /// [`Transmit::copy_to`] does).
    File {
        /// The open file.
        file: &'a F,
        /// Offset into the file.
        offset: u64,
        /// Bytes to send.
        len: u64,
        /// The version the response's head announced (what `open` reported).
        version: FileVersion,
    },
    /// `len` bytes at `offset` of a rendered listing.
    Listing {
        /// The listing.
        listing: &'a L,
        /// Offset into it.
        offset: usize,
        /// Bytes to send.
        len: usize,
    },
}

impl<H, F, L> BodyRef<'_, H, F, L> {
    /// Bytes of body still to send.
    pub fn len(&self) -> u64 {
        match self {
            Self::None => 0,
            Self::Cached { len, .. } | Self::Listing { len, .. } => *len as u64,
            Self::File { len, .. } => *len,
        }
    }

    /// Whether no body bytes remain.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The body's source came up short or changed: a file ended before its announced length, was
/// rewritten (its version is not the one announced), or could not be read. Nothing truthful can follow; the driver must
/// [`Connection::abort`](super::Connection::abort).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceChanged;

impl core::fmt::Display for SourceChanged {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("file changed while it was sent")
    }
}

impl core::error::Error for SourceChanged {}

impl<H, F, L: AsRef<[u8]>> Transmit<'_, H, F, L> {
    /// Bytes to send in all: head plus body.
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.body.len()
    }

    /// Whether there is nothing left to send (the response completes with
    /// [`transmitted(0)`](super::Connection::transmitted)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the head bytes, then as many body bytes as fit, into `buf`; returns how many were
    /// copied (report them with [`transmitted`](super::Connection::transmitted) once sent).
    ///
    /// `Ok(0)` only when `buf` is empty, nothing is left, or the file's source has no bytes
    /// yet (its `read_at` answered [`SourceError::WouldBlock`]: a body streamed from upstream;
    /// poll again later). A body source that yields nothing
    /// while bytes are owed is `Err(SourceChanged)` when no head byte was copied either (with a
    /// head copied, the head goes out and the next call reports it).
    ///
    /// A piece of a file is checked after it is read: if the file's size or modification time
    /// ([`FileSource::file_metadata`]) is no longer the one the head announced, the piece may
    /// mix two versions and is `Err(SourceChanged)`, so the response ends short instead of
    /// completing with a body that is part old, part new. A writer changes the version before
    /// it changes the bytes (the kernel updates mtime and ctime before copying a `write`'s
    /// data), so a piece read before a check that passes holds only the announced version.
    ///
    /// # Errors
    /// [`SourceChanged`]: the driver must abort the connection.
    pub fn copy_to<S>(&self, site: &S, buf: &mut [u8]) -> Result<usize, SourceChanged>
    where
        S: Site,
        S::Cache: ContentCache<Handle = H>,
        S::Source: FileSource<File = F, Listing = L>,
    {
        let h = self.head.len().min(buf.len());
        let (head_dst, room) = buf.split_at_mut(h);
        head_dst.copy_from_slice(&self.head[..h]);
        let want = usize::try_from(self.body.len())
            .unwrap_or(usize::MAX)
            .min(room.len());
        if h < self.head.len() || want == 0 {
            return Ok(h);
        }
        let dst = &mut room[..want];
        let got = match &self.body {
            BodyRef::None => 0,
            BodyRef::Cached { handle, offset, .. } => site.cache().copy_out(handle, *offset, dst),
            // A read error is a short read: either way nothing truthful can follow.
            BodyRef::File {
                file,
                offset,
                version,
                ..
            } => {
                let got = match site.source().read_at(file, *offset, dst) {
                    // A streaming source has no bytes yet: nothing to send this time.
                    Err(SourceError::WouldBlock) => return Ok(h),
                    read => read.unwrap_or(0),
                };
                // Size and modification time: what a write changes. Not the rest of the
                // version: the ctime also moves when the file is only renamed over or unlinked,
                // and the bytes of the inode being sent are then still the announced ones.
                match site.source().file_metadata(file) {
                    Ok(now)
                        if (now.version.len, now.version.stamp) == (version.len, version.stamp) =>
                    {
                        got
                    }
                    _ => return Err(SourceChanged),
                }
            }
            BodyRef::Listing {
                listing, offset, ..
            } => match listing.as_ref().get(*offset..).and_then(|r| r.get(..want)) {
                Some(part) => {
                    dst.copy_from_slice(part);
                    want
                }
                None => 0,
            },
        };
        match (h, got) {
            (0, 0) => Err(SourceChanged),
            _ => Ok(h + got.min(want)),
        }
    }
}
