//! The host's shared cache: `satchel-core`'s [`Cache`] (index, S3-FIFO, admission, versions,
//! counters) in shards, each behind its own mutex, with content in `Arc<[u8]>`.
//!
//! A hit holds its shard's lock only to find the entry and clone its `Arc`; the socket write
//! happens after the lock is released, from bytes that can never change, so a response is never
//! a torn mix of two versions and no lock is held during I/O. An entry evicted while a response
//! is still sending from it lives on until that response drops its clone (so memory may exceed
//! `--cache-size` by the bodies in flight, never the cache's own accounting).

use std::sync::{Arc, Mutex, MutexGuard};

use satchel_core::cache::{
    shard_index, Bucket, Cache, CacheStats, Config, ContentCache, Fill, Slot, Store, StoreError,
};
use satchel_core::http::digest::ContentDigest;
use satchel_core::source::{FileVersion, SourceError};

use crate::memfd::Sealed;

/// Bytes charged per entry on top of key and content: the allocation's own bookkeeping.
pub(crate) const ENTRY_OVERHEAD: usize = 64;
/// Most shards; each must still hold a few of the largest cacheable files.
const MAX_SHARDS: usize = 64;

/// A cached file's bytes: key then content, immutable, shared by the index and every response
/// sending it. A large entry's content lives in a sealed memfd instead ([`crate::memfd`]), and
/// `bytes` holds the key alone.
#[derive(Debug, Clone)]
pub(crate) struct CachedBytes {
    bytes: Arc<[u8]>,
    key_len: usize,
    sealed: Option<Arc<Sealed>>,
    /// The entry's SHA-256, copied into the handle a lookup hands out (under the same lock), so
    /// that a hit needs no second visit to its shard for its validators.
    digest: Option<ContentDigest>,
}

impl CachedBytes {
    /// The file's content, when it is on the heap (`None`: see [`CachedBytes::sealed`]).
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self.sealed {
            Some(_) => None,
            None => Some(self.bytes.get(self.key_len..).unwrap_or_default()),
        }
    }

    /// The file's content, when it is in a sealed memfd.
    pub(crate) fn sealed(&self) -> Option<&Sealed> {
        self.sealed.as_deref()
    }

    fn content_len(&self) -> usize {
        match &self.sealed {
            Some(s) => s.len(),
            None => self.bytes.len() - self.key_len,
        }
    }
}

/// A [`Store`] of `Arc<[u8]>`s, accounted against a byte budget. It never pins: dropping an
/// entry only drops the store's reference.
#[derive(Debug)]
pub(crate) struct ArcStore {
    capacity: usize,
    used: usize,
}

impl Store for ArcStore {
    type Entry = CachedBytes;
    type Handle = CachedBytes;

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn used(&self) -> usize {
        self.used
    }

    fn charge(&self, key_len: usize, len: usize) -> usize {
        key_len.saturating_add(len).saturating_add(ENTRY_OVERHEAD)
    }

    fn alloc(
        &mut self,
        key: &[u8],
        len: usize,
        fill: &mut Fill<'_>,
    ) -> Result<CachedBytes, StoreError> {
        let charge = self.charge(key.len(), len);
        if self.used.saturating_add(charge) > self.capacity {
            return Err(StoreError::Full);
        }
        // A large entry goes into a sealed memfd (charged the same); the heap keeps its key.
        if let Some(sealed) = Sealed::filled(len, fill) {
            let sealed = sealed.map_err(StoreError::Fill)?;
            self.used += charge;
            return Ok(CachedBytes {
                bytes: Arc::from(key),
                key_len: key.len(),
                sealed: Some(Arc::new(sealed)),
                digest: None,
            });
        }
        // One allocation, written in place: collect into the Arc, then fill it while unshared.
        let mut bytes: Arc<[u8]> = std::iter::repeat_n(0u8, key.len() + len).collect();
        let Some(buf) = Arc::get_mut(&mut bytes) else {
            return Err(StoreError::Full);
        };
        buf[..key.len()].copy_from_slice(key);
        fill(&mut buf[key.len()..]).map_err(StoreError::Fill)?;
        self.used += charge;
        Ok(CachedBytes {
            bytes,
            key_len: key.len(),
            sealed: None,
            digest: None,
        })
    }

    fn key_eq(&self, entry: &CachedBytes, key: &[u8]) -> bool {
        entry.bytes.get(..entry.key_len) == Some(key)
    }

    fn is_pinned(&self, _entry: &CachedBytes) -> bool {
        false
    }

    fn acquire(&mut self, entry: &CachedBytes) -> Option<CachedBytes> {
        Some(entry.clone())
    }

    fn release(&mut self, _handle: CachedBytes) {}

    fn free(&mut self, entry: CachedBytes) {
        let charge = self.charge(entry.key_len, entry.content_len());
        self.used = self.used.saturating_sub(charge);
    }
}

type Shard = Cache<ArcStore, Box<[Slot<CachedBytes>]>, Box<[Bucket]>>;

/// The cache shared by all workers.
pub(crate) struct ShardedCache {
    shards: Box<[Mutex<Shard>]>,
    max_file: u64,
}

impl ShardedCache {
    /// A cache of `bytes` bytes and `entries` files in all; files above `max_file` bytes are
    /// never cached.
    ///
    /// Shards are as many as allow each to hold four of the largest cacheable files (so sharding
    /// never makes a file uncacheable), at most [`MAX_SHARDS`], and a power of two.
    /// Every entry is charged at least [`ENTRY_OVERHEAD`] bytes, so no more than
    /// `bytes / ENTRY_OVERHEAD` entries can ever be held: the index is not made larger than
    /// that (each index slot costs about 100 bytes of memory outside `bytes`).
    pub(crate) fn new(bytes: usize, entries: usize, max_file: u64) -> Self {
        let entries = entries.min(bytes / ENTRY_OVERHEAD).max(1);
        let max_file_usize = usize::try_from(max_file).unwrap_or(usize::MAX);
        let by_size = bytes / max_file_usize.saturating_mul(4).max(1);
        let by_entries = entries / 16;
        let mut n = by_size.min(by_entries).clamp(1, MAX_SHARDS);
        n = 1 << n.ilog2();
        let shard_bytes = bytes / n;
        let shard_entries = entries.div_ceil(n).max(1);
        let buckets = (shard_entries * 2).next_power_of_two();
        let shards = (0..n)
            .map(|_| {
                let mut config = Config::for_capacity(shard_bytes);
                config.max_entry_bytes = max_file_usize.min(shard_bytes);
                let cache = Cache::new(
                    ArcStore {
                        capacity: shard_bytes,
                        used: 0,
                    },
                    (0..shard_entries).map(|_| Slot::new()).collect(),
                    vec![Bucket::new(); buckets].into_boxed_slice(),
                    config,
                )
                // Sizes chosen above satisfy Cache::new's rules (slots > 0, buckets a power of
                // two >= 2 * slots).
                .expect("valid shard geometry");
                Mutex::new(cache)
            })
            .collect();
        Self { shards, max_file }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        let i = shard_index(key, self.shards.len());
        // A poisoned shard only means a panic elsewhere while it was held; its data is
        // consistent at every await-free step, so keep serving.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the cache holds an entry (of any version) under `key`: when it does not, a miss
    /// needs no `stat` to validate anything and goes straight to the I/O pool.
    pub(crate) fn may_hold(&self, key: &[u8]) -> bool {
        self.shard(key).contains(key)
    }

    /// How many shards there are.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// How many files the cache can hold in all.
    pub(crate) fn entries_capacity(&self) -> usize {
        self.stats().entries_capacity
    }
}

impl ContentCache for ShardedCache {
    type Handle = CachedBytes;

    fn lookup(&self, key: &[u8], version: &FileVersion) -> Option<CachedBytes> {
        let mut shard = self.shard(key);
        let mut handle = shard.get(key, version)?;
        handle.digest = shard.digest(key, version);
        Some(handle)
    }

    fn admits(&self, len: u64) -> bool {
        if len > self.max_file {
            // Counted once, in the first shard, so the sum of the shards' counters is right.
            let mut shard = self.shards[0].lock().unwrap_or_else(|e| e.into_inner());
            return shard.admits(len);
        }
        true
    }

    fn insert(
        &self,
        key: &[u8],
        version: &FileVersion,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), SourceError>,
    ) -> Option<CachedBytes> {
        self.shard(key).insert(key, version, len, fill).ok()
    }

    fn content_len(&self, h: &CachedBytes) -> usize {
        h.content_len()
    }

    fn copy_out(&self, h: &CachedBytes, offset: usize, dst: &mut [u8]) -> usize {
        let Some(bytes) = h.bytes() else {
            return h.sealed().map_or(0, |s| s.read_at(offset, dst));
        };
        let src = bytes.get(offset..).unwrap_or_default();
        let n = src.len().min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
        n
    }

    fn release(&self, _h: CachedBytes) {}

    fn handle_digest(&self, h: &CachedBytes) -> Option<ContentDigest> {
        h.digest
    }

    fn digest(&self, key: &[u8], version: &FileVersion) -> Option<ContentDigest> {
        self.shard(key).digest(key, version)
    }

    fn stats(&self) -> CacheStats {
        let mut total = CacheStats::default();
        for shard in self.shards.iter() {
            let s = shard.lock().unwrap_or_else(|e| e.into_inner()).stats();
            total.hits += s.hits;
            total.misses += s.misses;
            total.insertions += s.insertions;
            total.evictions += s.evictions;
            total.bypasses += s.bypasses;
            total.stale_drops += s.stale_drops;
            total.deferred += s.deferred;
            total.bytes_used += s.bytes_used;
            total.entries += s.entries;
            total.bytes_capacity += s.bytes_capacity;
            total.entries_capacity += s.entries_capacity;
        }
        total
    }
}
