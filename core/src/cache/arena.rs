//! [`ArenaStore`]: cached bytes in one contiguous arena the caller provides.
//!
//! Each entry is one contiguous region holding its key then its content, so a driver can send
//! it straight from the arena. Regions are kept in a list ordered by address. Allocation takes
//! the space after the last region, else the first hole between regions that fits, else it
//! *compacts*: every unpinned region slides down towards offset 0, closing all holes, and the
//! free space becomes one run at the end. Hence the free space the store reports
//! (`capacity - used`) is space it can really use; the only exception is transient: a pinned
//! region cannot move, so free space on both sides of it stays split until it is released,
//! and the next compaction recovers it. Nothing is lost for good, whatever the sequence of
//! operations.
//!
//! Finding a hole walks the regions, and compaction costs one `memmove` of the live bytes; both
//! are paid only by insertions that find no room after the last region, never by lookups. This store is meant for boards and tests (arenas of kilobytes to
//! a few megabytes); a host stores each entry in its own `Arc<[u8]>` instead.
//!
//! # Pin rule
//!
//! [`ArenaStore::acquire`](super::Store::acquire) pins a region: until the matching
//! `release`, its bytes are neither overwritten, moved nor reused, even when the cache drops
//! the entry meanwhile (the region is then an orphan: still counted as used, freed on the last
//! release).

use super::store::{Fill, Store, StoreError};

const NONE: u32 = u32::MAX;

/// Why an arena store could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArenaError {
    /// No region records were given, or more than `u32::MAX - 1`.
    Records,
}

impl core::fmt::Display for ArenaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("arena store needs between 1 and u32::MAX - 1 region records")
    }
}

impl core::error::Error for ArenaError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Live,
    /// Freed by the cache while pinned: its bytes stay until the last release.
    Orphan,
}

/// The bookkeeping of one region of an [`ArenaStore`]; give the store at least as many as the
/// cache has slots (a few more let pinned entries that were dropped linger without blocking
/// insertions).
#[derive(Debug, Clone, Copy)]
pub struct Region {
    off: usize,
    len: usize,
    key_len: usize,
    pins: u32,
    /// Neighbours in address order (or the free-record list through `next`).
    prev: u32,
    next: u32,
    state: State,
}

impl Region {
    /// An unused record, for initialising arrays in statics: `[const { Region::new() }; N]`.
    pub const fn new() -> Self {
        Self {
            off: 0,
            len: 0,
            key_len: 0,
            pins: 0,
            prev: NONE,
            next: NONE,
            state: State::Free,
        }
    }

    fn end(&self) -> usize {
        self.off + self.len
    }
}

impl Default for Region {
    fn default() -> Self {
        Self::new()
    }
}

/// A pinned reference to content in an [`ArenaStore`]. Give it back with `release`; a handle
/// that is dropped instead leaves its region pinned for good.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an arena handle pins its bytes until it is released"]
pub struct ArenaHandle {
    rec: u32,
    /// Offset of the content (after the key) and its length; fixed while pinned.
    off: usize,
    len: usize,
}

impl ArenaHandle {
    /// The length of the content.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A [`Store`] over one byte arena `B` and a table of region records `R`, both provided by the
/// caller (`[u8; N]` in a static on a board, `&'static mut [u8]`, or boxed slices on a host).
#[derive(Debug)]
pub struct ArenaStore<B, R> {
    bytes: B,
    regions: R,
    /// Lowest and highest region in address order.
    first: u32,
    last: u32,
    /// Unused records, linked through `next`.
    free_rec: u32,
    used: usize,
}

impl<B, R> ArenaStore<B, R>
where
    B: AsRef<[u8]> + AsMut<[u8]>,
    R: AsRef<[Region]> + AsMut<[Region]>,
{
    /// A store over the arena `bytes` with the region records `regions` (their previous
    /// contents are discarded).
    ///
    /// # Errors
    /// [`ArenaError::Records`] when `regions` is empty or has `u32::MAX` records or more.
    pub fn new(bytes: B, mut regions: R) -> Result<Self, ArenaError> {
        let n = regions.as_ref().len();
        if n == 0 || n >= NONE as usize {
            return Err(ArenaError::Records);
        }
        for (i, r) in regions.as_mut().iter_mut().enumerate() {
            *r = Region::new();
            // i + 1 < n <= u32::MAX - 1, checked above.
            r.next = if i + 1 < n { (i + 1) as u32 } else { NONE };
        }
        Ok(Self {
            bytes,
            regions,
            first: NONE,
            last: NONE,
            free_rec: 0,
            used: 0,
        })
    }

    /// The content behind `h`. Valid (unchanged) for as long as `h` is not released.
    pub fn content(&self, h: &ArenaHandle) -> &[u8] {
        self.bytes.as_ref().get(h.off..h.off + h.len).unwrap_or(&[])
    }

    /// Copies content bytes of `h` from `offset` into `dst`; returns how many were copied
    /// (0 at or past the end).
    pub fn copy_out(&self, h: &ArenaHandle, offset: usize, dst: &mut [u8]) -> usize {
        let src = self.content(h).get(offset..).unwrap_or(&[]);
        let n = src.len().min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
        n
    }

    fn rec(&self, i: u32) -> &Region {
        &self.regions.as_ref()[i as usize]
    }

    fn rec_mut(&mut self, i: u32) -> &mut Region {
        &mut self.regions.as_mut()[i as usize]
    }

    /// Where `len` bytes fit without moving anything: (offset, region to link after).
    fn place(&self, len: usize) -> Option<(usize, u32)> {
        let cap = self.bytes.as_ref().len();
        let top = if self.last == NONE {
            0
        } else {
            self.rec(self.last).end()
        };
        if cap - top >= len {
            return Some((top, self.last));
        }
        let mut prev_end = 0;
        let mut prev = NONE;
        let mut i = self.first;
        while i != NONE {
            let r = self.rec(i);
            if r.off - prev_end >= len {
                return Some((prev_end, prev));
            }
            prev_end = r.end();
            prev = i;
            i = r.next;
        }
        None
    }

    /// Slides every unpinned region down, closing the holes between regions.
    fn compact(&mut self) {
        let mut cursor = 0;
        let mut i = self.first;
        while i != NONE {
            let r = *self.rec(i);
            if r.pins > 0 {
                cursor = r.end();
            } else {
                if r.off != cursor {
                    self.bytes.as_mut().copy_within(r.off..r.end(), cursor);
                    self.rec_mut(i).off = cursor;
                }
                cursor += r.len;
            }
            i = r.next;
        }
    }

    /// Returns a record to the free list and unlinks its region.
    fn drop_region(&mut self, i: u32) {
        let r = *self.rec(i);
        if r.prev == NONE {
            self.first = r.next;
        } else {
            self.rec_mut(r.prev).next = r.next;
        }
        if r.next == NONE {
            self.last = r.prev;
        } else {
            self.rec_mut(r.next).prev = r.prev;
        }
        self.used -= r.len;
        let free = self.free_rec;
        let rec = self.rec_mut(i);
        *rec = Region::new();
        rec.next = free;
        self.free_rec = i;
    }
}

impl<B, R> Store for ArenaStore<B, R>
where
    B: AsRef<[u8]> + AsMut<[u8]>,
    R: AsRef<[Region]> + AsMut<[Region]>,
{
    /// The index of the entry's region record.
    type Entry = u32;
    type Handle = ArenaHandle;

    fn capacity(&self) -> usize {
        self.bytes.as_ref().len()
    }

    fn used(&self) -> usize {
        self.used
    }

    fn charge(&self, key_len: usize, len: usize) -> usize {
        key_len.saturating_add(len)
    }

    fn alloc(&mut self, key: &[u8], len: usize, fill: &mut Fill<'_>) -> Result<u32, StoreError> {
        let total = key.len().checked_add(len).ok_or(StoreError::Full)?;
        if self.free_rec == NONE || self.capacity() - self.used < total {
            return Err(StoreError::Full);
        }
        let (off, after) = match self.place(total) {
            Some(p) => p,
            None => {
                self.compact();
                self.place(total).ok_or(StoreError::Full)?
            }
        };
        let (key_dst, content) = self.bytes.as_mut()[off..off + total].split_at_mut(key.len());
        key_dst.copy_from_slice(key);
        fill(content).map_err(StoreError::Fill)?;

        let i = self.free_rec;
        let next = if after == NONE {
            self.first
        } else {
            self.rec(after).next
        };
        self.free_rec = self.rec(i).next;
        *self.rec_mut(i) = Region {
            off,
            len: total,
            key_len: key.len(),
            pins: 0,
            prev: after,
            next,
            state: State::Live,
        };
        if after == NONE {
            self.first = i;
        } else {
            self.rec_mut(after).next = i;
        }
        if next == NONE {
            self.last = i;
        } else {
            self.rec_mut(next).prev = i;
        }
        self.used += total;
        Ok(i)
    }

    fn key_eq(&self, entry: &u32, key: &[u8]) -> bool {
        let r = self.rec(*entry);
        r.key_len == key.len() && self.bytes.as_ref().get(r.off..r.off + r.key_len) == Some(key)
    }

    fn is_pinned(&self, entry: &u32) -> bool {
        self.rec(*entry).pins > 0
    }

    fn acquire(&mut self, entry: &u32) -> Option<ArenaHandle> {
        let r = self.rec_mut(*entry);
        r.pins = r.pins.checked_add(1)?;
        Some(ArenaHandle {
            rec: *entry,
            off: r.off + r.key_len,
            len: r.len - r.key_len,
        })
    }

    fn release(&mut self, handle: ArenaHandle) {
        let Some(r) = self.regions.as_mut().get_mut(handle.rec as usize) else {
            return;
        };
        r.pins = r.pins.saturating_sub(1);
        if r.pins == 0 && r.state == State::Orphan {
            self.drop_region(handle.rec);
        }
    }

    fn free(&mut self, entry: u32) {
        let r = self.rec_mut(entry);
        if r.pins > 0 {
            r.state = State::Orphan;
        } else {
            self.drop_region(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceError;

    fn put<B, R>(
        s: &mut ArenaStore<B, R>,
        key: &[u8],
        byte: u8,
        len: usize,
    ) -> Result<u32, StoreError>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        R: AsRef<[Region]> + AsMut<[Region]>,
    {
        s.alloc(key, len, &mut |b| {
            b.fill(byte);
            Ok(())
        })
    }

    fn content_of<B, R>(s: &mut ArenaStore<B, R>, e: u32) -> std::vec::Vec<u8>
    where
        B: AsRef<[u8]> + AsMut<[u8]>,
        R: AsRef<[Region]> + AsMut<[Region]>,
    {
        let h = s.acquire(&e).unwrap();
        let v = s.content(&h).to_vec();
        s.release(h);
        v
    }

    #[test]
    fn stores_key_and_content_contiguously() {
        let mut s = ArenaStore::new([0u8; 64], [Region::new(); 4]).unwrap();
        let e = put(&mut s, b"ab", 7, 5).unwrap();
        assert_eq!(s.used(), 7);
        assert!(s.key_eq(&e, b"ab"));
        assert!(!s.key_eq(&e, b"a"));
        assert!(!s.key_eq(&e, b"ac"));
        assert_eq!(content_of(&mut s, e), [7; 5]);
    }

    #[test]
    fn full_does_not_call_fill() {
        let mut s = ArenaStore::new([0u8; 8], [Region::new(); 4]).unwrap();
        let mut called = false;
        let r = s.alloc(b"k", 8, &mut |_| {
            called = true;
            Ok(())
        });
        assert_eq!(r, Err(StoreError::Full));
        assert!(!called);
    }

    #[test]
    fn failed_fill_keeps_nothing() {
        let mut s = ArenaStore::new([0u8; 8], [Region::new(); 1]).unwrap();
        let r = s.alloc(b"k", 3, &mut |_| Err(SourceError::Io));
        assert_eq!(r, Err(StoreError::Fill(SourceError::Io)));
        assert_eq!(s.used(), 0);
        assert!(
            put(&mut s, b"k", 1, 7).is_ok(),
            "the record and the bytes are still free"
        );
    }

    #[test]
    fn compaction_makes_all_free_space_usable() {
        let mut s = ArenaStore::new([0u8; 40], [Region::new(); 8]).unwrap();
        let a = put(&mut s, b"a", 1, 9).unwrap(); // 0..10
        let b = put(&mut s, b"b", 2, 9).unwrap(); // 10..20
        let c = put(&mut s, b"c", 3, 9).unwrap(); // 20..30
        let d = put(&mut s, b"d", 4, 9).unwrap(); // 30..40
        s.free(a);
        s.free(c);
        // 20 bytes free in two holes of 10: a 15-byte entry needs a compaction.
        let e = put(&mut s, b"e", 5, 14).unwrap();
        assert_eq!(s.used(), 35);
        assert_eq!(content_of(&mut s, b), [2; 9]);
        assert_eq!(content_of(&mut s, d), [4; 9]);
        assert_eq!(content_of(&mut s, e), [5; 14]);
        assert!(s.key_eq(&d, b"d"));
        let f = put(&mut s, b"f", 6, 4).unwrap();
        assert_eq!(s.used(), 40);
        assert_eq!(content_of(&mut s, f), [6; 4]);
    }

    #[test]
    fn pinned_regions_neither_move_nor_vanish() {
        let mut s = ArenaStore::new([0u8; 30], [Region::new(); 8]).unwrap();
        let a = put(&mut s, b"a", 1, 9).unwrap(); // 0..10
        let b = put(&mut s, b"b", 2, 9).unwrap(); // 10..20
        let c = put(&mut s, b"c", 3, 9).unwrap(); // 20..30
        let hb = s.acquire(&b).unwrap();
        s.free(a);
        s.free(b); // orphan: still counted, still readable
        s.free(c);
        assert_eq!(s.used(), 10);
        // 20 bytes free but split by the pinned region: a 15-byte entry cannot be placed.
        assert_eq!(put(&mut s, b"x", 9, 14), Err(StoreError::Full));
        assert_eq!(s.content(&hb), [2; 9]);
        let small = put(&mut s, b"y", 8, 9).unwrap();
        assert_eq!(s.content(&hb), [2; 9]);
        s.release(hb);
        assert_eq!(s.used(), 10);
        s.free(small);
        assert_eq!(s.used(), 0);
        assert!(
            put(&mut s, b"z", 7, 29).is_ok(),
            "after the release, all space is usable"
        );
    }

    #[test]
    fn runs_out_of_records_before_bytes() {
        let mut s = ArenaStore::new([0u8; 64], [Region::new(); 2]).unwrap();
        put(&mut s, b"a", 1, 1).unwrap();
        put(&mut s, b"b", 1, 1).unwrap();
        assert_eq!(put(&mut s, b"c", 1, 1), Err(StoreError::Full));
    }

    #[test]
    fn copy_out_is_bounded() {
        let mut s = ArenaStore::new([0u8; 16], [Region::new(); 2]).unwrap();
        let e = s
            .alloc(b"k", 5, &mut |b| {
                b.copy_from_slice(b"hello");
                Ok(())
            })
            .unwrap();
        let h = s.acquire(&e).unwrap();
        let mut dst = [0u8; 3];
        assert_eq!(s.copy_out(&h, 0, &mut dst), 3);
        assert_eq!(&dst, b"hel");
        assert_eq!(s.copy_out(&h, 3, &mut dst), 2);
        assert_eq!(&dst[..2], b"lo");
        assert_eq!(s.copy_out(&h, 5, &mut dst), 0);
        assert_eq!(s.copy_out(&h, usize::MAX, &mut dst), 0);
        s.release(h);
    }
}
