//! Large cache entries in sealed memfds, sent with `sendfile`: the kernel hands the entry's
//! pages to the socket instead of copying them from the heap.
//!
//! An entry of at least [`SEALED_MIN`] bytes is filled as every entry is (read, then checked
//! against the file's version), into the worker's scratch buffer, then written once into a new
//! memfd, which is sealed against any write, shrink or growth (`F_SEAL_WRITE | F_SEAL_SHRINK |
//! F_SEAL_GROW | F_SEAL_SEAL`). Sealed pages can never change, so the bytes a
//! socket still references after `sendfile` (on loopback the receiver reads them from those very
//! pages) stay the version the response announced: no mixed body, even for a slow reader. A
//! memfd's pages are freed when its last descriptor is closed *and* no socket references them.
//!
//! Measured on this machine (`bench/sendpath.c`, sender CPU per body, median of 5 interleaved
//! rounds, a receiver draining on the other core): `send` from the heap against `sendfile` from
//! a memfd, 4 KiB 1.94 against 1.97 µs, 16 KiB 5.71 against 4.01, 64 KiB 25.1 against 15.7,
//! 256 KiB 86 against 64, 1 MiB 330 against 247. Below 16 KiB the copy costs no more than the
//! `sendfile` setup, and a small response goes out with its head in one `send`, so small entries
//! stay on the heap.
//!
//! Each sealed entry holds a descriptor; at most [`MAX_SEALED`] exist at once (the server's
//! open-file limit reserves them), past that new entries stay on the heap. A memfd that cannot
//! be made (no descriptor, no memory) leaves the entry on the heap as well.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::Errno;
use satchel_core::cache::Fill;
use satchel_core::source::SourceError;

/// Entries of at least this many content bytes go into a sealed memfd.
pub(crate) const SEALED_MIN: usize = 16 * 1024;
/// Most sealed entries (descriptors) alive at once, in the whole process.
pub(crate) const MAX_SEALED: usize = 1024;

/// Sealed memfds alive now.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// A worker keeps its scratch buffer between fills up to this size (a fresh allocation per
/// fill would cost its page faults every time); larger fills allocate and free their own.
const SCRATCH_KEEP: usize = 1024 * 1024;

thread_local! {
    /// Where a sealed entry's bytes are filled before they are written into its memfd.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A sealed memfd holding one cache entry's content. Its bytes never change.
#[derive(Debug)]
pub(crate) struct Sealed {
    fd: OwnedFd,
    len: usize,
}

impl Sealed {
    /// A new sealed entry of `len` content bytes written by `fill` (through the thread's scratch
    /// buffer, then into the memfd); `None` when `len` is too small to gain from it, when
    /// [`MAX_SEALED`] are alive, or when no memfd can be made: `fill` was not called and the
    /// caller stores the entry on the heap.
    ///
    /// # Errors
    /// What `fill` returned, or [`SourceError::Io`] when the memfd cannot take the bytes.
    pub(crate) fn filled(len: usize, fill: &mut Fill<'_>) -> Option<Result<Self, SourceError>> {
        if len < SEALED_MIN {
            return None;
        }
        LIVE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_SEALED).then_some(n + 1)
        })
        .ok()?;
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        let Ok(fd) = rustix::fs::memfd_create("satchel-cache", flags) else {
            LIVE.fetch_sub(1, Ordering::AcqRel);
            return None;
        };
        // From here `Drop` gives the slot back, whatever fails.
        let sealed = Self { fd, len };
        Some(SCRATCH.with(|scratch| {
            let mut buf = scratch.take();
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let written = fill(&mut buf[..len]).and_then(|()| sealed.write_all(&buf[..len]));
            if buf.len() <= SCRATCH_KEEP {
                scratch.set(buf);
            }
            written.map(|()| sealed)
        }))
    }

    /// Writes `bytes` at the start of the memfd, then seals it for good.
    fn write_all(&self, bytes: &[u8]) -> Result<(), SourceError> {
        let mut done = 0;
        while done < bytes.len() {
            match rustix::io::pwrite(&self.fd, &bytes[done..], done as u64) {
                Ok(0) => return Err(SourceError::Io),
                Ok(n) => done += n,
                Err(Errno::INTR) => {}
                Err(_) => return Err(SourceError::Io),
            }
        }
        let seals = SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        rustix::fs::fcntl_add_seals(&self.fd, seals).map_err(|_| SourceError::Io)
    }

    /// Content bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies bytes at `offset` into `dst`; how many.
    pub(crate) fn read_at(&self, offset: usize, dst: &mut [u8]) -> usize {
        let want = self.len.saturating_sub(offset).min(dst.len());
        let mut done = 0;
        while done < want {
            match rustix::io::pread(&self.fd, &mut dst[done..want], (offset + done) as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno::INTR) => {}
                Err(_) => break,
            }
        }
        done
    }

    /// Sends `head` (which may be empty), then up to `len` content bytes from `offset`, to
    /// `sock`: the head by `send` (with `MSG_MORE` so it leaves with the body's first segment),
    /// the content by `sendfile`. Returns the bytes sent in all; `WouldBlock` only when nothing
    /// was sent.
    pub(crate) fn send_to(
        &self,
        sock: impl AsFd,
        head: &[u8],
        offset: usize,
        len: usize,
    ) -> io::Result<usize> {
        let mut sent = 0;
        if !head.is_empty() {
            sent = loop {
                match rustix::net::send(&sock, head, rustix::net::SendFlags::MORE) {
                    Err(Errno::INTR) => {}
                    r => break r?,
                }
            };
            if sent < head.len() || len == 0 {
                return Ok(sent);
            }
        }
        let mut at = offset as u64;
        let len = len.min(self.len.saturating_sub(offset));
        loop {
            match rustix::fs::sendfile(&sock, &self.fd, Some(&mut at), len) {
                Ok(n) => return Ok(sent + n),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) if sent > 0 => return Ok(sent),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A sealed entry holds what `fill` wrote, refuses any later write, reads back at any
    /// offset, and sends a head and a body range over a real socket.
    #[test]
    fn sealed_entry_is_filled_immutable_and_sent() {
        let content: Vec<u8> = (0..SEALED_MIN * 3).map(|i| (i % 251) as u8).collect();
        let mut fill = |dst: &mut [u8]| {
            dst.copy_from_slice(&content);
            Ok(())
        };
        let sealed = Sealed::filled(content.len(), &mut fill).unwrap().unwrap();
        assert_eq!(sealed.len(), content.len());
        assert!(rustix::io::pwrite(&sealed.fd, b"x", 0).is_err(), "sealed");
        let mut back = vec![0u8; 100];
        assert_eq!(sealed.read_at(1000, &mut back), 100);
        assert_eq!(back, content[1000..1100]);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut rx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (tx, _) = listener.accept().unwrap();
        let n = sealed.send_to(&tx, b"HEAD", 10, 5000).unwrap();
        assert_eq!(n, 4 + 5000);
        drop(tx);
        let mut got = Vec::new();
        rx.read_to_end(&mut got).unwrap();
        assert_eq!(&got[..4], b"HEAD");
        assert_eq!(got[4..], content[10..5010]);

        // Small entries and a failing fill.
        assert!(Sealed::filled(SEALED_MIN - 1, &mut fill).is_none());
        let mut failing = |_: &mut [u8]| Err(SourceError::Io);
        assert!(matches!(
            Sealed::filled(SEALED_MIN, &mut failing),
            Some(Err(SourceError::Io))
        ));
    }
}
