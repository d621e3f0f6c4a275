//! The content cache: bounded, scan-resistant, never stale, and free of allocation.
//!
//! [`Cache`] is one piece of code for every platform: an open-addressing index, the S3-FIFO
//! eviction policy, size-aware admission, exact version checks and the counters. Where the
//! bytes live is a [`Store`]: [`ArenaStore`] (one byte arena, for boards and tests) ships here;
//! a host plugs in a store whose handle is an `Arc<[u8]>`.
//!
//! # Bounds
//!
//! A cache holds at most `slots.len()` files and `store.capacity()` bytes (key plus content of
//! each entry), both fixed when it is built. All storage is handed in by the caller: on a board
//! arrays (`[Slot<u32>; N]`, `[Bucket; 2N]`, `[u8; BYTES]`, `[Region; N]`) in a static, on a
//! host boxed slices sized from `--cache-entries` and `--cache-size`.
//!
//! # Policy: S3-FIFO
//!
//! Eviction is S3-FIFO (Yang, Zhang, Qiu, Yue, Vinayak: "FIFO queues are all you need for cache
//! eviction", SOSP 2023): a small FIFO (10 % of the bytes) where new entries prove themselves, a
//! main FIFO with 2-bit hit counters evicted CLOCK-style, and a ghost FIFO of recently evicted
//! keys. A file requested once (a scan, a crawler) enters the small queue and leaves it without
//! ever touching the main queue, so one pass over a large folder cannot flush the hot set,
//! which plain LRU does. Among the scan-resistant policies it was chosen because it needs no
//! per-hit list surgery (a hit only bumps a counter: cheap under a shard lock, no pointer
//! writes), only FIFO links, a 2-bit counter per entry and a fingerprint table for the ghost,
//! all fixed-size; and its authors found it to match or beat state-of-the-art policies on
//! thousands of production traces. The ghost here is direct-mapped in the index's buckets (a fingerprint and an
//! age per bucket), so it takes no extra storage; collisions only make it forget early.
//!
//! Hit ratios against plain LRU, from `cargo run -p satchel-core --release --example hit_ratio`
//! (500,000 Zipf requests over 10,000 files of 4 KiB to 256 KiB, cache 10 % of their bytes,
//! fixed seed; a smaller deterministic run is a unit test):
//!
//! | trace | S3-FIFO | LRU | around the scan: S3-FIFO | LRU |
//! |---|---:|---:|---:|---:|
//! | Zipf(0.9) | 60.40 % | 55.64 % | | |
//! | Zipf(0.9) + scan of 5,000 cold files, interleaved | 59.65 % | 54.94 % | 59.75 % | 50.36 % |
//! | Zipf(1.0) | 71.40 % | 67.54 % | | |
//! | Zipf(1.0) + scan of 5,000 cold files, interleaved | 70.59 % | 66.72 % | 70.78 % | 61.76 % |
//!
//! ("Around the scan": regular requests from the scan's start to 10,000 after its end.)
//!
//! # Admission
//!
//! PROTOCOL.md, "The cache, as the wire shows it": "The first GET of a file reads it from the
//! file system and stores it (`fwd=miss; stored`)" and "A file larger than the cache's
//! per-entry limit is streamed from disk (`fwd=bypass`)". So:
//!
//! - A file above [`Config::max_entry_bytes`] is never cached ([`Cache::admits`] counts a
//!   bypass; the server streams it, `Cache-Status: satchel; fwd=bypass`).
//! - A small file is stored on its first request, in the small queue (`fwd=miss; stored`).
//! - A large file (charged above [`Config::large_bytes`]) is declined on its first request and
//!   only remembered in the ghost ([`InsertError::Deferred`]); a second request soon after finds
//!   it there and it goes straight to the main queue. One large file cannot evict dozens of hot
//!   small ones without earning it. (This refines "the first GET stores it" for files between
//!   `large_bytes` and `max_entry_bytes` only; set `large_bytes = max_entry_bytes` to store
//!   every admitted file on its first GET.)
//!
//! # Never stale
//!
//! Each entry carries the [`FileVersion`] it was read at. A lookup names the version the caller
//! just saw; an entry of another version is a miss that drops the old bytes (or lets them go on
//! the last release, when pinned).
//!
//! # Digests
//!
//! Each entry also keeps the SHA-256 of its content, taken in the insertion's pass over the
//! bytes ([`ContentCache::digest`]): the server's `Repr-Digest` and the `ETag` of every file the
//! cache admits, the same on every node holding the same bytes. It costs 32 bytes per slot and
//! one hash per fill, never per hit.
//!
//! # Arena layout
//!
//! [`ArenaStore`] keeps each entry contiguous (key then content) in one arena, in address order.
//! It allocates after the last entry, else in the first hole that fits, else compacts (slides
//! every unpinned entry down, leaving one free run at the end). So the free space it reports is
//! space it can use: fragmentation cannot leak capacity over time. A log-structured ring was
//! rejected because it forces eviction in address order, which is FIFO and not S3-FIFO, and
//! slab classes because memory assigned to one size class is lost to the others. Entries are
//! contiguous rather than chunked so the insertion's `fill` reads the file in one call and a
//! driver sends from one slice.
//!
//! # Pin rule
//!
//! A handle from a hit or an insertion pins its entry: until it is released the entry's bytes
//! are neither overwritten, moved, nor reused. Eviction passes over pinned entries; an entry
//! dropped while pinned (a new version, an invalidation) leaves the index at once but keeps its
//! bytes, still counted as used, until the last release. Every handle must be released.
//!
//! # Sharing on a host
//!
//! A `Cache` is `&mut self` and not internally locked. A host builds `N` shards, each a `Cache`
//! over an `Arc<[u8]>` store with `1/N` of the bytes and entries, behind its own `Mutex`, and
//! picks the shard from a hash of the path ([`shard_index`]); threads serving different files
//! rarely meet on a lock. A hit holds the shard lock only to look up and clone the `Arc`; the socket write
//! happens after the lock is released, from bytes that can never change, so a response is
//! never a torn mix of two versions. Such a store never pins, so no release is needed either.
//!
//! On a board the single-threaded poll loop uses `RefCell<Cache<ArenaStore<..>, ..>>` through
//! [`ContentCache`].

mod arena;
mod engine;
mod store;

#[cfg(test)]
mod sim;

use core::cell::RefCell;

pub use arena::{ArenaError, ArenaHandle, ArenaStore, Region};
pub use engine::{shard_index, Bucket, Cache, CacheError, Config, InsertError, Slot};
pub use store::{Fill, Store, StoreError};

use crate::http::digest::ContentDigest;
use crate::source::{FileVersion, SourceError};

/// A board's cache in arrays: `ENTRIES` files, an index of `BUCKETS` buckets (a power of two,
/// at least `2 * ENTRIES`), `BYTES` bytes of keys and content.
///
/// `Cache::new` returns the cache by value; where `BYTES` is large for the stack, give it
/// `&'static mut` slices instead (e.g. from `static_cell`), which the same code accepts.
pub type ArrayCache<const ENTRIES: usize, const BUCKETS: usize, const BYTES: usize> =
    Cache<ArenaStore<[u8; BYTES], [Region; ENTRIES]>, [Slot<u32>; ENTRIES], [Bucket; BUCKETS]>;

/// A snapshot of a cache's counters, cheap to take (for the host's log or a board's defmt/log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups that found the requested version.
    pub hits: u64,
    /// Lookups that did not (including stale entries).
    pub misses: u64,
    /// Entries stored.
    pub insertions: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Files refused for being above the per-entry limit.
    pub bypasses: u64,
    /// Entries dropped because the file's version changed.
    pub stale_drops: u64,
    /// First requests of large files, declined until requested again.
    pub deferred: u64,
    /// Bytes held now (keys and content, including dropped entries still pinned).
    pub bytes_used: usize,
    /// Files held now.
    pub entries: usize,
    /// The byte bound.
    pub bytes_capacity: usize,
    /// The file bound.
    pub entries_capacity: usize,
}

impl CacheStats {
    /// The share of lookups that were hits, in per mille (0 before any lookup).
    pub fn hit_permille(&self) -> u64 {
        let total = self.hits.saturating_add(self.misses);
        if total == 0 {
            0
        } else {
            // hits <= total, so hits * 1000 / total <= 1000; u128 avoids the overflow.
            (u128::from(self.hits) * 1000 / u128::from(total)) as u64
        }
    }
}

/// One log line: `hits=.. misses=.. ... bytes=used/capacity entries=used/capacity`.
impl core::fmt::Display for CacheStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "hits={} misses={} insertions={} evictions={} bypasses={} stale_drops={} \
             deferred={} bytes={}/{} entries={}/{}",
            self.hits,
            self.misses,
            self.insertions,
            self.evictions,
            self.bypasses,
            self.stale_drops,
            self.deferred,
            self.bytes_used,
            self.bytes_capacity,
            self.entries,
            self.entries_capacity,
        )
    }
}

/// Shared, interior-mutable access to a content cache, as the server layer uses it.
pub trait ContentCache {
    /// A pinned reference to cached content; while it lives, its bytes are neither evicted nor overwritten.
    type Handle;
    /// Looks `key` up for exactly `version`: a hit pins and returns it; an entry of another version is dropped and it is a miss.
    fn lookup(&self, key: &[u8], version: &FileVersion) -> Option<Self::Handle>;
    /// Whether a file of `len` bytes may be cached at all (per-entry limit); when false, counts a bypass.
    fn admits(&self, len: u64) -> bool;
    /// Stores `len` bytes produced by `fill` (which writes exactly `len` bytes or fails) for (key, version) and returns it pinned; None when it could not be stored (e.g. all space pinned, fill failed, admission refused).
    fn insert(
        &self,
        key: &[u8],
        version: &FileVersion,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), SourceError>,
    ) -> Option<Self::Handle>;
    /// Length of the content behind `h`.
    fn content_len(&self, h: &Self::Handle) -> usize;
    /// Copies content bytes from `offset` into `dst`, returning how many (drivers that copy, e.g. smoltcp).
    fn copy_out(&self, h: &Self::Handle, offset: usize, dst: &mut [u8]) -> usize;
    /// Unpins.
    fn release(&self, h: Self::Handle);
    /// A snapshot of the counters.
    fn stats(&self) -> CacheStats;
    /// The SHA-256 of the content cached for `key` at exactly `version` (computed once, when
    /// the entry was filled, and kept with it); `None` when that entry is not (or no longer)
    /// cached.
    fn digest(&self, key: &[u8], version: &FileVersion) -> Option<ContentDigest>;
    /// The SHA-256 a handle from [`ContentCache::lookup`] carries, for caches whose handles
    /// keep it (the host's), so that a hit needs no second look-up; `None` (the default): ask
    /// [`ContentCache::digest`].
    fn handle_digest(&self, _h: &Self::Handle) -> Option<ContentDigest> {
        None
    }
}

/// A shared reference to a cache is the cache: a site and a source that both need it (a
/// caching edge's [`Upstream`](crate::upstream::Upstream) checks what the cache holds before
/// revalidating) can share one in a static, e.g. `SiteParts::new(source, &CACHE, config)`.
impl<C: ContentCache + ?Sized> ContentCache for &C {
    type Handle = C::Handle;

    fn lookup(&self, key: &[u8], version: &FileVersion) -> Option<Self::Handle> {
        (**self).lookup(key, version)
    }

    fn admits(&self, len: u64) -> bool {
        (**self).admits(len)
    }

    fn insert(
        &self,
        key: &[u8],
        version: &FileVersion,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), SourceError>,
    ) -> Option<Self::Handle> {
        (**self).insert(key, version, len, fill)
    }

    fn content_len(&self, h: &Self::Handle) -> usize {
        (**self).content_len(h)
    }

    fn copy_out(&self, h: &Self::Handle, offset: usize, dst: &mut [u8]) -> usize {
        (**self).copy_out(h, offset, dst)
    }

    fn release(&self, h: Self::Handle) {
        (**self).release(h);
    }

    fn stats(&self) -> CacheStats {
        (**self).stats()
    }

    fn digest(&self, key: &[u8], version: &FileVersion) -> Option<ContentDigest> {
        (**self).digest(key, version)
    }

    fn handle_digest(&self, h: &Self::Handle) -> Option<ContentDigest> {
        (**self).handle_digest(h)
    }
}

/// The board configuration: a single-threaded poll loop owns the cache in a `RefCell`.
///
/// A call made while the cache is already borrowed (from inside an insertion's `fill`) finds
/// nothing and stores nothing rather than panicking; `release` then leaves the entry pinned.
impl<B, R, T, I> ContentCache for RefCell<Cache<ArenaStore<B, R>, T, I>>
where
    B: AsRef<[u8]> + AsMut<[u8]>,
    R: AsRef<[Region]> + AsMut<[Region]>,
    T: AsRef<[Slot<u32>]> + AsMut<[Slot<u32>]>,
    I: AsRef<[Bucket]> + AsMut<[Bucket]>,
{
    type Handle = ArenaHandle;

    fn lookup(&self, key: &[u8], version: &FileVersion) -> Option<ArenaHandle> {
        self.try_borrow_mut().ok()?.get(key, version)
    }

    fn admits(&self, len: u64) -> bool {
        self.try_borrow_mut().is_ok_and(|mut c| c.admits(len))
    }

    fn insert(
        &self,
        key: &[u8],
        version: &FileVersion,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), SourceError>,
    ) -> Option<ArenaHandle> {
        self.try_borrow_mut()
            .ok()?
            .insert(key, version, len, fill)
            .ok()
    }

    fn content_len(&self, h: &ArenaHandle) -> usize {
        h.len()
    }

    fn copy_out(&self, h: &ArenaHandle, offset: usize, dst: &mut [u8]) -> usize {
        self.try_borrow()
            .map_or(0, |c| c.store().copy_out(h, offset, dst))
    }

    fn release(&self, h: ArenaHandle) {
        if let Ok(mut c) = self.try_borrow_mut() {
            c.release(h);
        }
    }

    fn stats(&self) -> CacheStats {
        self.try_borrow().map(|c| c.stats()).unwrap_or_default()
    }

    fn digest(&self, key: &[u8], version: &FileVersion) -> Option<ContentDigest> {
        self.try_borrow().ok()?.digest(key, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::vec;
    use std::vec::Vec;

    type Board = ArrayCache<8, 16, 512>;

    fn board() -> RefCell<Board> {
        let store = ArenaStore::new([0u8; 512], [const { Region::new() }; 8]).unwrap();
        let cache = Cache::new(
            store,
            [const { Slot::new() }; 8],
            [Bucket::new(); 16],
            Config::for_capacity(512),
        );
        RefCell::new(cache.unwrap())
    }

    fn ver(n: u64) -> FileVersion {
        FileVersion {
            len: 4,
            stamp: n,
            id: 9,
        }
    }

    #[test]
    fn content_cache_round_trip() {
        let c = board();
        assert!(c.lookup(b"f", &ver(1)).is_none());
        assert!(c.admits(4));
        let h = c
            .insert(b"f", &ver(1), 4, &mut |b| {
                b.copy_from_slice(b"data");
                Ok(())
            })
            .unwrap();
        assert_eq!(c.content_len(&h), 4);
        let mut out = [0u8; 3];
        assert_eq!(c.copy_out(&h, 0, &mut out), 3);
        assert_eq!(&out, b"dat");
        assert_eq!(c.copy_out(&h, 3, &mut out), 1);
        assert_eq!(out[0], b'a');
        c.release(h);
        let h = c.lookup(b"f", &ver(1)).unwrap();
        c.release(h);
        assert!(c.lookup(b"f", &ver(2)).is_none());
        let st = c.stats();
        assert_eq!(
            (st.hits, st.misses, st.stale_drops, st.insertions),
            (1, 2, 1, 1)
        );
        assert_eq!((st.entries_capacity, st.bytes_capacity), (8, 512));
        assert!(!c.admits(129));
        assert_eq!(c.stats().bypasses, 1);
        assert_eq!(c.stats().hit_permille(), 333);
        assert_eq!(
            std::format!("{}", c.stats()),
            "hits=1 misses=2 insertions=1 evictions=0 bypasses=1 stale_drops=1 deferred=0 \
             bytes=0/512 entries=0/8"
        );
    }

    #[test]
    fn reentrant_use_from_fill_is_refused_not_a_panic() {
        let c = board();
        let mut inner = None;
        let h = c.insert(b"f", &ver(1), 4, &mut |b| {
            inner = Some(c.lookup(b"f", &ver(1)).is_none() && !c.admits(1));
            b.fill(0);
            Ok(())
        });
        assert_eq!(inner, Some(true));
        c.release(h.unwrap());
    }

    #[test]
    fn s3fifo_beats_lru_on_a_scan_and_holds_on_zipf() {
        const FILES: u32 = 2_000;
        for alpha in [0.9, 1.0] {
            let plain = sim::trace(FILES, alpha, 30_000, sim::Scan::None, 7);
            let cap = sim::tenth_of_working_set(&plain);
            let (ours, lru) = (
                sim::s3fifo(&plain, cap).all,
                sim::lru(&plain, cap as u64).all,
            );
            assert!(
                ours >= lru - 0.01,
                "zipf {alpha}: s3fifo {ours:.4} vs lru {lru:.4}"
            );
            for scan in [sim::Scan::Interleaved(1_000), sim::Scan::Burst(1_000)] {
                let t = sim::trace(FILES, alpha, 30_000, scan, 7);
                let (ours, lru) = (sim::s3fifo(&t, cap), sim::lru(&t, cap as u64));
                assert!(ours.all > lru.all, "{alpha} {scan:?}: {ours:?} vs {lru:?}");
                // Right around the scan, the hot set's hit ratio is where LRU suffers.
                assert!(
                    ours.around_scan > lru.around_scan,
                    "{alpha} {scan:?}: {ours:?} vs {lru:?}"
                );
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get {
            key: u8,
            ver: u64,
            hold: bool,
        },
        Insert {
            key: u8,
            ver: u64,
            len: usize,
            salt: u8,
            fail: bool,
            hold: bool,
        },
        Invalidate {
            key: u8,
        },
        Release,
    }

    /// Mostly the current version, sometimes an older or newer one.
    fn version() -> impl Strategy<Value = u64> {
        prop_oneof![4 => Just(0u64), 1 => 1..3u64]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..16u8, version(), any::<bool>()).prop_map(|(key, ver, hold)| Op::Get { key, ver, hold }),
            4 => (0..16u8, version(), 0..150usize, any::<u8>(), prop::bool::weighted(0.1), any::<bool>())
                .prop_map(|(key, ver, len, salt, fail, hold)| Op::Insert { key, ver, len, salt, fail, hold }),
            1 => (0..16u8).prop_map(|key| Op::Invalidate { key }),
            2 => Just(Op::Release),
        ]
    }

    fn key_of(k: u8) -> [u8; 3] {
        [b'k', k, b'/']
    }

    fn version_of(k: u8, ver: u64, len: usize) -> FileVersion {
        FileVersion {
            len: len as u64,
            stamp: ver,
            id: u64::from(k),
        }
    }

    type Dyn = Cache<ArenaStore<Vec<u8>, Vec<Region>>, Vec<Slot<u32>>, Vec<Bucket>>;

    proptest! {
        /// Differential test against a std map of what may be cached: capacity is never
        /// exceeded, a hit returns exactly the bytes inserted for that key and version, a
        /// version change is never a hit, pinned bytes never change, and once nothing is pinned
        /// all the free space reported is usable.
        #[test]
        fn behaves_like_a_map(
            capacity in 40..400usize,
            entries in 1..12usize,
            large in 10..400usize,
            ops in prop::collection::vec(op(), 1..120),
        ) {
            let store = ArenaStore::new(vec![0u8; capacity], vec![Region::new(); entries + 1]).unwrap();
            let slots = (0..entries).map(|_| Slot::new()).collect();
            let buckets = vec![Bucket::new(); (2 * entries).next_power_of_two()];
            let config = Config { max_entry_bytes: capacity, large_bytes: large, small_percent: 10 };
            let c: RefCell<Dyn> = RefCell::new(Cache::new(store, slots, buckets, config).unwrap());
            // key -> (version, content) of the last stored version that may still be cached
            let mut model: HashMap<u8, (FileVersion, Vec<u8>)> = HashMap::new();
            let mut held: Vec<(ArenaHandle, Vec<u8>)> = Vec::new();
            // The version each key's file has "on disk"; lengths follow the version.
            let mut lens: HashMap<(u8, u64), usize> = HashMap::new();

            for op in ops {
                match op {
                    Op::Get { key, ver, hold } => {
                        let len = *lens.entry((key, ver)).or_insert(usize::from(key) * 7);
                        let v = version_of(key, ver, len);
                        match c.lookup(&key_of(key), &v) {
                            Some(h) => {
                                let (mv, bytes) = model.get(&key).cloned().expect("hit on a key never stored");
                                prop_assert_eq!(mv, v, "a hit of another version");
                                let mut got = vec![0u8; c.content_len(&h)];
                                prop_assert_eq!(c.copy_out(&h, 0, &mut got), got.len());
                                prop_assert_eq!(&got, &bytes);
                                if hold { held.push((h, bytes)) } else { c.release(h) }
                            }
                            None => { model.remove(&key); }
                        }
                    }
                    Op::Insert { key, ver, len, salt, fail, hold } => {
                        let len = *lens.entry((key, ver)).or_insert(len);
                        let v = version_of(key, ver, len);
                        let fresh: Vec<u8> = (0..len).map(|i| (i as u8) ^ salt ^ key).collect();
                        let mut filled = false;
                        let r = c.insert(&key_of(key), &v, len, &mut |b| {
                            filled = true;
                            if fail { return Err(SourceError::Io) }
                            b.copy_from_slice(&fresh);
                            Ok(())
                        });
                        match r {
                            Some(h) => {
                                let expect = if filled {
                                    fresh
                                } else {
                                    let (mv, bytes) = model.get(&key).cloned().expect("reused an unknown entry");
                                    prop_assert_eq!(mv, v);
                                    bytes
                                };
                                prop_assert!(!fail || !filled);
                                model.insert(key, (v, expect.clone()));
                                let mut got = vec![0u8; c.content_len(&h)];
                                c.copy_out(&h, 0, &mut got);
                                prop_assert_eq!(&got, &expect);
                                if hold { held.push((h, expect)) } else { c.release(h) }
                            }
                            None => { model.remove(&key); }
                        }
                    }
                    Op::Invalidate { key } => {
                        c.borrow_mut().invalidate(&key_of(key));
                        model.remove(&key);
                    }
                    Op::Release => {
                        if !held.is_empty() {
                            let (h, _) = held.remove(0);
                            c.release(h);
                        }
                    }
                }
                c.borrow().check_invariants();
                let st = c.stats();
                prop_assert!(st.bytes_used <= capacity);
                prop_assert!(st.entries <= entries);
                for (h, bytes) in &held {
                    let mut got = vec![0u8; c.content_len(h)];
                    c.copy_out(h, 0, &mut got);
                    prop_assert_eq!(&got, bytes, "pinned bytes changed");
                }
            }
            for (h, _) in held.drain(..) {
                c.release(h);
            }
            // No fragmentation leak: a file filling exactly the reported free space fits
            // without evicting anything (the first request may be deferred, not evicted).
            let st = c.stats();
            let free = capacity - st.bytes_used;
            if free >= 3 && st.entries < entries {
                let v = version_of(99, 0, free - 3);
                let mut fill = |b: &mut [u8]| { b.fill(0xee); Ok(()) };
                let h = c.insert(&key_of(99), &v, free - 3, &mut fill)
                    .or_else(|| c.insert(&key_of(99), &v, free - 3, &mut fill));
                prop_assert!(h.is_some(), "{} free bytes reported but not usable", free);
                prop_assert_eq!(c.stats().evictions, st.evictions);
                prop_assert_eq!(c.stats().bytes_used, capacity);
                c.release(h.unwrap());
            }
        }
    }
}
