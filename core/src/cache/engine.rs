//! [`Cache`]: the index, the S3-FIFO eviction policy, admission and the counters, over any
//! [`Store`].

use super::store::{Fill, Store, StoreError};
use super::CacheStats;
use crate::http::digest::ContentDigest;
use crate::source::{FileVersion, SourceError};

const NONE: u32 = u32::MAX;
/// Frequencies saturate here (S3-FIFO uses 2 bits).
const MAX_FREQ: u8 = 3;

/// Why a [`Cache`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheError {
    /// The slot table is empty or has `u32::MAX` slots or more.
    Slots,
    /// The bucket table's length is not a power of two of at least twice the slot count.
    Buckets,
}

impl core::fmt::Display for CacheError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Slots => "cache needs between 1 and u32::MAX - 1 slots",
            Self::Buckets => "cache buckets must be a power of two, at least twice the slots",
        })
    }
}

impl core::error::Error for CacheError {}

/// Why [`Cache::insert`] did not store an entry. None of these is a failure of the server: it
/// streams the file instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InsertError {
    /// Above the per-entry limit, or larger than the whole store: never cached.
    TooLarge,
    /// A large file seen for the first time: remembered, and admitted if it is asked for again
    /// soon (it must earn the space it would take from many small entries).
    Deferred,
    /// No room could be made (everything that would have to go is pinned).
    NoRoom,
    /// Reading the content failed; nothing was stored.
    Fill(SourceError),
}

impl core::fmt::Display for InsertError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLarge => f.write_str("file above the per-entry limit"),
            Self::Deferred => f.write_str("large file admitted on its next request"),
            Self::NoRoom => f.write_str("no evictable space"),
            Self::Fill(e) => write!(f, "reading the file failed: {e}"),
        }
    }
}

impl core::error::Error for InsertError {}

/// Tuning of a [`Cache`]; [`Config::for_capacity`] gives sensible defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Files with more content bytes than this are never cached (`--max-cached-file`).
    pub max_entry_bytes: usize,
    /// Entries charged more than this are admitted only on a request that finds them in the
    /// ghost queue, i.e. when asked for again soon after a first, declined, request.
    pub large_bytes: usize,
    /// Share of the capacity, in percent, that the small (probationary) queue holds before it
    /// is evicted from (S3-FIFO uses 10).
    pub small_percent: u8,
}

impl Config {
    /// Defaults for a store of `capacity` bytes: entries up to a quarter of it, "large" above
    /// 1/32 of it, a 10 % small queue.
    pub const fn for_capacity(capacity: usize) -> Self {
        Self {
            max_entry_bytes: capacity / 4,
            large_bytes: capacity / 32,
            small_percent: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Free,
    Small,
    Main,
}

/// The bookkeeping of one cached file. A cache holds at most as many files as it has slots;
/// initialise arrays with `[const { Slot::new() }; N]`.
#[derive(Debug)]
pub struct Slot<E> {
    entry: Option<E>,
    version: FileVersion,
    /// The SHA-256 of the content, computed once when the entry was filled.
    digest: ContentDigest,
    hash: u64,
    charge: usize,
    /// Neighbours in the slot's queue (towards the head, towards the tail), or the free list.
    prev: u32,
    next: u32,
    freq: u8,
    queue: Queue,
}

impl<E> Slot<E> {
    /// An unused slot.
    pub const fn new() -> Self {
        Self {
            entry: None,
            version: FileVersion {
                len: 0,
                stamp: 0,
                id: 0,
            },
            digest: ContentDigest([0; 32]),
            hash: 0,
            charge: 0,
            prev: NONE,
            next: NONE,
            freq: 0,
            queue: Queue::Free,
        }
    }
}

impl<E> Default for Slot<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// One cell of the open-addressing index (linear probing). It also holds one direct-mapped
/// ghost entry: the fingerprint of a recently evicted or deferred key.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    slot: u32,
    ghost_fp: u32,
    ghost_at: u32,
}

impl Bucket {
    /// An empty bucket, for initialising arrays: `[Bucket::new(); N]`.
    pub const fn new() -> Self {
        Self {
            slot: NONE,
            ghost_fp: 0,
            ghost_at: 0,
        }
    }
}

impl Default for Bucket {
    fn default() -> Self {
        Self::new()
    }
}

/// A FIFO of slots: new entries at the head, eviction looks at the tail.
#[derive(Debug, Clone, Copy)]
struct Fifo {
    head: u32,
    tail: u32,
    len: usize,
    bytes: usize,
}

impl Fifo {
    const EMPTY: Self = Self {
        head: NONE,
        tail: NONE,
        len: 0,
        bytes: 0,
    };
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    hits: u64,
    misses: u64,
    insertions: u64,
    evictions: u64,
    bypasses: u64,
    stale_drops: u64,
    deferred: u64,
}

/// A bounded content cache: at most `slots.len()` files and `store.capacity()` bytes, with
/// S3-FIFO eviction, size-aware admission and exact version checks.
///
/// `T` holds the [`Slot`]s and `I` the [`Bucket`]s of the index (a power of two, at least
/// twice the slots); both are containers the caller provides (arrays, `&'static mut [_]`,
/// boxed slices), so the cache never allocates.
#[derive(Debug)]
pub struct Cache<S: Store, T, I> {
    store: S,
    slots: T,
    buckets: I,
    small: Fifo,
    main: Fifo,
    free: u32,
    ghost_clock: u32,
    config: Config,
    small_target: usize,
    n: Counters,
}

/// FxHash-style multiply-rotate over 8-byte words, then a SplitMix64 finaliser so both the low
/// bits (bucket) and the high bits (ghost fingerprint) are well mixed. Not cryptographic: keys
/// are always compared in full, the hash only picks a bucket.
fn hash_key(key: &[u8]) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let mut h = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h.rotate_left(26) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    let mut b = [0u8; 8];
    let rest = words.remainder();
    b[..rest.len()].copy_from_slice(rest);
    h = (h.rotate_left(26) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Which of `shards` shards (`shards > 0`) a host keeps `key` in; 0 when `shards` is 0.
///
/// Uses the hash's high bits, spread evenly by a multiply-shift, because each shard's index
/// uses the low bits: choosing shards by `hash % shards` would leave all keys of a shard in a
/// fraction of its buckets.
pub fn shard_index(key: &[u8], shards: usize) -> usize {
    let high = hash_key(key) >> 32;
    // high < 2^32 and shards as u64 < 2^64, so the product fits u128 and the result < shards.
    ((u128::from(high) * shards as u128) >> 32) as usize
}

fn fingerprint(h: u64) -> u32 {
    ((h >> 32) as u32) | 1
}

impl<S, T, I> Cache<S, T, I>
where
    S: Store,
    T: AsRef<[Slot<S::Entry>]> + AsMut<[Slot<S::Entry>]>,
    I: AsRef<[Bucket]> + AsMut<[Bucket]>,
{
    /// A cache over `store`, with `slots` (its entry limit) and `buckets` (its index); their
    /// previous contents are discarded.
    ///
    /// # Errors
    /// [`CacheError::Slots`] for an empty or oversized slot table; [`CacheError::Buckets`] when
    /// the bucket count is not a power of two of at least twice the slot count.
    pub fn new(store: S, mut slots: T, mut buckets: I, config: Config) -> Result<Self, CacheError> {
        let n = slots.as_ref().len();
        if n == 0 || n >= NONE as usize {
            return Err(CacheError::Slots);
        }
        let nb = buckets.as_ref().len();
        if !nb.is_power_of_two() || nb / 2 < n {
            return Err(CacheError::Buckets);
        }
        for (i, s) in slots.as_mut().iter_mut().enumerate() {
            *s = Slot::new();
            // i + 1 < n < u32::MAX, checked above.
            s.next = if i + 1 < n { (i + 1) as u32 } else { NONE };
        }
        buckets.as_mut().fill(Bucket::new());
        let percent = usize::from(config.small_percent.min(100));
        let cap = store.capacity();
        let small_target = cap / 100 * percent + cap % 100 * percent / 100;
        Ok(Self {
            store,
            slots,
            buckets,
            small: Fifo::EMPTY,
            main: Fifo::EMPTY,
            free: 0,
            ghost_clock: 0,
            config,
            small_target,
            n: Counters::default(),
        })
    }

    /// The store, e.g. to read content through a handle.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration this cache was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.n.hits,
            misses: self.n.misses,
            insertions: self.n.insertions,
            evictions: self.n.evictions,
            bypasses: self.n.bypasses,
            stale_drops: self.n.stale_drops,
            deferred: self.n.deferred,
            bytes_used: self.store.used(),
            entries: self.small.len + self.main.len,
            bytes_capacity: self.store.capacity(),
            entries_capacity: self.slots.as_ref().len(),
        }
    }

    /// Looks `key` up for exactly `version`.
    ///
    /// A hit returns a handle to the content (pinned, for stores that pin; give it back with
    /// [`Cache::release`]). An entry of another version is dropped (its bytes stay while
    /// pinned) and the lookup is a miss: a version change is never a hit.
    pub fn get(&mut self, key: &[u8], version: &FileVersion) -> Option<S::Handle> {
        let h = hash_key(key);
        let Some((b, s)) = self.find(key, h) else {
            self.n.misses += 1;
            return None;
        };
        if self.slots.as_ref()[s as usize].version != *version {
            self.n.stale_drops += 1;
            self.n.misses += 1;
            self.remove(b, s);
            return None;
        }
        let slot = &mut self.slots.as_mut()[s as usize];
        slot.freq = (slot.freq + 1).min(MAX_FREQ);
        let handle = slot.entry.as_ref().and_then(|e| self.store.acquire(e));
        if handle.is_some() {
            self.n.hits += 1;
        } else {
            self.n.misses += 1;
        }
        handle
    }

    /// The SHA-256 of the content cached for `key` at exactly `version`, if it is cached (the
    /// entry a [`Cache::get`] of the same key and version hands out). Counts nothing.
    pub fn digest(&self, key: &[u8], version: &FileVersion) -> Option<ContentDigest> {
        let (_, s) = self.find(key, hash_key(key))?;
        let slot = &self.slots.as_ref()[s as usize];
        (slot.version == *version).then_some(slot.digest)
    }

    /// Whether an entry (of any version) is held under `key`. Changes nothing, counts nothing:
    /// for a source deciding whether a cheap validation is worth making before a slow open.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key, hash_key(key)).is_some()
    }

    /// Whether a file of `len` bytes may be cached at all (the per-entry limit); when not,
    /// counts a bypass: the server streams it.
    pub fn admits(&mut self, len: u64) -> bool {
        let ok = usize::try_from(len).is_ok_and(|l| l <= self.config.max_entry_bytes);
        if !ok {
            self.n.bypasses += 1;
        }
        ok
    }

    /// Stores `len` bytes written by `fill` for (`key`, `version`) and returns a handle as
    /// [`Cache::get`] does.
    ///
    /// If the key is cached at that version already, the existing entry is returned and `fill`
    /// is not called; an entry of another version is dropped first. A new entry goes to the
    /// small queue, or straight to the main queue if its key is in the ghost queue (it was
    /// evicted from the small queue, or deferred, recently). Space is made by evicting.
    ///
    /// # Errors
    /// See [`InsertError`]; in every case nothing is stored and the server streams the file.
    pub fn insert(
        &mut self,
        key: &[u8],
        version: &FileVersion,
        len: usize,
        fill: &mut Fill<'_>,
    ) -> Result<S::Handle, InsertError> {
        let h = hash_key(key);
        if let Some((b, s)) = self.find(key, h) {
            let slot = &self.slots.as_ref()[s as usize];
            if slot.version == *version {
                return slot
                    .entry
                    .as_ref()
                    .and_then(|e| self.store.acquire(e))
                    .ok_or(InsertError::NoRoom);
            }
            self.n.stale_drops += 1;
            self.remove(b, s);
        }
        let charge = self.store.charge(key.len(), len);
        if len > self.config.max_entry_bytes || charge > self.store.capacity() {
            return Err(InsertError::TooLarge);
        }
        let earned = self.ghost_take(h);
        if !earned && charge > self.config.large_bytes {
            self.ghost_put(h);
            self.n.deferred += 1;
            return Err(InsertError::Deferred);
        }
        // The digest is taken from the bytes as they are stored, in the same pass.
        let mut digest = ContentDigest([0; 32]);
        let mut fill_and_hash = |dst: &mut [u8]| {
            fill(dst)?;
            digest = ContentDigest::of(dst);
            Ok(())
        };
        let entry = loop {
            if self.free != NONE && self.store.capacity() - self.store.used() >= charge {
                match self.store.alloc(key, len, &mut fill_and_hash) {
                    Ok(e) => break e,
                    Err(StoreError::Full) => {}
                    Err(StoreError::Fill(e)) => return Err(InsertError::Fill(e)),
                }
            }
            if !self.evict_one() {
                return Err(InsertError::NoRoom);
            }
        };
        let s = self.free;
        let handle = self.store.acquire(&entry);
        {
            let slot = &mut self.slots.as_mut()[s as usize];
            self.free = slot.next;
            *slot = Slot {
                entry: Some(entry),
                version: *version,
                digest,
                hash: h,
                charge,
                prev: NONE,
                next: NONE,
                freq: 0,
                queue: if earned { Queue::Main } else { Queue::Small },
            };
        }
        self.push_head(s);
        self.index_put(h, s);
        self.n.insertions += 1;
        handle.ok_or(InsertError::NoRoom)
    }

    /// Gives back a handle from [`Cache::get`] or [`Cache::insert`] (unpins it).
    pub fn release(&mut self, handle: S::Handle) {
        self.store.release(handle);
    }

    /// Drops the entry of `key`, whatever its version; returns whether there was one.
    pub fn invalidate(&mut self, key: &[u8]) -> bool {
        match self.find(key, hash_key(key)) {
            Some((b, s)) => {
                self.remove(b, s);
                true
            }
            None => false,
        }
    }

    fn mask(&self) -> usize {
        self.buckets.as_ref().len() - 1
    }

    /// The bucket and slot of `key`. O(1) expected: the index is at most half full.
    fn find(&self, key: &[u8], h: u64) -> Option<(usize, u32)> {
        let (slots, buckets) = (self.slots.as_ref(), self.buckets.as_ref());
        let mask = self.mask();
        let mut i = h as usize & mask;
        loop {
            let s = buckets[i].slot;
            if s == NONE {
                return None;
            }
            let slot = &slots[s as usize];
            if slot.hash == h
                && slot
                    .entry
                    .as_ref()
                    .is_some_and(|e| self.store.key_eq(e, key))
            {
                return Some((i, s));
            }
            i = (i + 1) & mask;
        }
    }

    fn index_put(&mut self, h: u64, s: u32) {
        let mask = self.mask();
        let buckets = self.buckets.as_mut();
        let mut i = h as usize & mask;
        while buckets[i].slot != NONE {
            i = (i + 1) & mask;
        }
        buckets[i].slot = s;
    }

    /// Removes bucket `i` from the index by backward-shift deletion (no tombstones, so probe
    /// lengths do not grow over time).
    fn index_remove(&mut self, mut i: usize) {
        let mask = self.mask();
        let (slots, buckets) = (self.slots.as_ref(), self.buckets.as_mut());
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = buckets[j].slot;
            if s == NONE {
                break;
            }
            let home = slots[s as usize].hash as usize & mask;
            // Move j's entry into the hole at i unless its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                buckets[i].slot = s;
                i = j;
            }
        }
        buckets[i].slot = NONE;
    }

    /// The bucket holding slot `s`.
    fn bucket_of(&self, s: u32) -> usize {
        let mask = self.mask();
        let buckets = self.buckets.as_ref();
        let mut i = self.slots.as_ref()[s as usize].hash as usize & mask;
        while buckets[i].slot != s {
            i = (i + 1) & mask;
        }
        i
    }

    fn ghost_put(&mut self, h: u64) {
        let mask = self.mask();
        let b = &mut self.buckets.as_mut()[h as usize & mask];
        b.ghost_fp = fingerprint(h);
        b.ghost_at = self.ghost_clock;
        self.ghost_clock = self.ghost_clock.wrapping_add(1);
    }

    /// Whether `h` is in the ghost queue (among the last `slots` keys put there and not
    /// overwritten since); consumes it.
    fn ghost_take(&mut self, h: u64) -> bool {
        let window = self.slots.as_ref().len() as u32;
        let (mask, clock) = (self.mask(), self.ghost_clock);
        let b = &mut self.buckets.as_mut()[h as usize & mask];
        let hit = b.ghost_fp == fingerprint(h) && clock.wrapping_sub(b.ghost_at) <= window;
        if hit {
            b.ghost_fp = 0;
        }
        hit
    }

    fn fifo(&mut self, q: Queue) -> &mut Fifo {
        if q == Queue::Main {
            &mut self.main
        } else {
            &mut self.small
        }
    }

    fn push_head(&mut self, s: u32) {
        let (q, charge) = {
            let slot = &self.slots.as_ref()[s as usize];
            (slot.queue, slot.charge)
        };
        let f = *self.fifo(q);
        let slots = self.slots.as_mut();
        slots[s as usize].prev = NONE;
        slots[s as usize].next = f.head;
        if f.head != NONE {
            slots[f.head as usize].prev = s;
        }
        let f = self.fifo(q);
        f.head = s;
        if f.tail == NONE {
            f.tail = s;
        }
        f.len += 1;
        f.bytes += charge;
    }

    fn unlink(&mut self, s: u32) {
        let slot = &self.slots.as_ref()[s as usize];
        let (q, prev, next, charge) = (slot.queue, slot.prev, slot.next, slot.charge);
        let slots = self.slots.as_mut();
        if prev != NONE {
            slots[prev as usize].next = next;
        }
        if next != NONE {
            slots[next as usize].prev = prev;
        }
        let f = self.fifo(q);
        if prev == NONE {
            f.head = next;
        }
        if next == NONE {
            f.tail = prev;
        }
        f.len -= 1;
        f.bytes -= charge;
    }

    /// Moves `s` to the head of queue `q`.
    fn requeue(&mut self, s: u32, q: Queue) {
        self.unlink(s);
        self.slots.as_mut()[s as usize].queue = q;
        self.push_head(s);
    }

    /// Drops slot `s` (at bucket `b`) from the index and its queue and frees its bytes.
    fn remove(&mut self, b: usize, s: u32) {
        self.index_remove(b);
        self.unlink(s);
        let free = self.free;
        let slot = &mut self.slots.as_mut()[s as usize];
        let entry = slot.entry.take();
        *slot = Slot::new();
        slot.next = free;
        self.free = s;
        if let Some(e) = entry {
            self.store.free(e);
        }
    }

    /// Evicts one entry, by S3-FIFO (Yang et al., SOSP 2023):
    ///
    /// - while the small queue is over its share, look at its tail: an entry hit since it
    ///   was inserted moves to the main queue; one that was not is evicted and its key goes to
    ///   the ghost queue;
    /// - otherwise look at the main queue's tail: an entry with hits left is reinserted at the
    ///   head with one hit less (CLOCK), one without is evicted.
    ///
    /// Pinned entries are passed over. Returns false when nothing can be evicted.
    fn evict_one(&mut self) -> bool {
        let mut budget = 2 * (MAX_FREQ as usize + 2) * (self.small.len + self.main.len) + 2;
        let mut small_pinned = 0;
        while budget > 0 {
            budget -= 1;
            let from_small = self.small.len > small_pinned
                && (self.small.bytes > self.small_target || self.main.len == 0);
            let q = if from_small {
                Queue::Small
            } else {
                Queue::Main
            };
            let t = self.fifo(q).tail;
            if t == NONE {
                return false;
            }
            let slot = &self.slots.as_ref()[t as usize];
            let (freq, hash) = (slot.freq, slot.hash);
            if slot.entry.as_ref().is_some_and(|e| self.store.is_pinned(e)) {
                if from_small {
                    small_pinned += 1;
                }
                self.requeue(t, q);
                continue;
            }
            if freq > 0 {
                self.slots.as_mut()[t as usize].freq = if from_small { 0 } else { freq - 1 };
                self.requeue(t, Queue::Main);
                continue;
            }
            if from_small {
                self.ghost_put(hash);
            }
            let b = self.bucket_of(t);
            self.remove(b, t);
            self.n.evictions += 1;
            return true;
        }
        false
    }

    /// Asserts the structural invariants: queues, index, free list and byte accounting agree.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        let (slots, buckets) = (self.slots.as_ref(), self.buckets.as_ref());
        let mut charged = 0;
        for (q, f) in [(Queue::Small, &self.small), (Queue::Main, &self.main)] {
            let (mut n, mut bytes, mut prev, mut i) = (0, 0, NONE, f.head);
            while i != NONE {
                let s = &slots[i as usize];
                assert_eq!(s.queue, q);
                assert_eq!(s.prev, prev);
                assert!(s.entry.is_some());
                n += 1;
                bytes += s.charge;
                prev = i;
                i = s.next;
            }
            assert_eq!((n, bytes, prev), (f.len, f.bytes, f.tail));
            charged += bytes;
        }
        let live = self.small.len + self.main.len;
        let (mut free, mut i) = (0, self.free);
        while i != NONE {
            assert_eq!(slots[i as usize].queue, Queue::Free);
            free += 1;
            i = slots[i as usize].next;
        }
        assert_eq!(free + live, slots.len());
        let mask = self.mask();
        let mut indexed = 0;
        for (b, bucket) in buckets.iter().enumerate() {
            if bucket.slot == NONE {
                continue;
            }
            indexed += 1;
            let s = &slots[bucket.slot as usize];
            assert_ne!(s.queue, Queue::Free);
            // Every bucket between the entry's home and its bucket is occupied.
            let mut j = s.hash as usize & mask;
            while j != b {
                assert_ne!(buckets[j].slot, NONE, "probe chain broken");
                j = (j + 1) & mask;
            }
        }
        assert_eq!(indexed, live);
        assert!(self.store.used() >= charged);
        assert!(self.store.used() <= self.store.capacity());
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ArenaHandle, ArenaStore, Region};
    use super::*;
    use std::boxed::Box;
    use std::sync::Arc;
    use std::vec;
    use std::vec::Vec;

    fn v(n: u64) -> FileVersion {
        FileVersion {
            len: n,
            stamp: n * 10,
            id: 1,
        }
    }

    type Arena = Cache<ArenaStore<Vec<u8>, Vec<Region>>, Vec<Slot<u32>>, Vec<Bucket>>;

    fn arena(bytes: usize, entries: usize, config: Config) -> Arena {
        let store = ArenaStore::new(vec![0; bytes], vec![Region::new(); entries + 2]).unwrap();
        let slots = (0..entries).map(|_| Slot::new()).collect();
        let buckets = vec![Bucket::new(); (2 * entries).next_power_of_two()];
        Cache::new(store, slots, buckets, config).unwrap()
    }

    fn put(
        c: &mut Arena,
        key: &[u8],
        ver: u64,
        byte: u8,
        len: usize,
    ) -> Result<ArenaHandle, InsertError> {
        c.insert(key, &v(ver), len, &mut |b| {
            b.fill(byte);
            Ok(())
        })
    }

    /// Inserts and releases at once; panics if not stored.
    fn stored(c: &mut Arena, key: &[u8], ver: u64, byte: u8, len: usize) {
        let h = put(c, key, ver, byte, len).unwrap();
        c.release(h);
    }

    fn hit(c: &mut Arena, key: &[u8], ver: u64) -> Option<Vec<u8>> {
        let h = c.get(key, &v(ver))?;
        let bytes = c.store().content(&h).to_vec();
        c.release(h);
        Some(bytes)
    }

    #[test]
    fn hit_returns_the_inserted_bytes() {
        let mut c = arena(1000, 8, Config::for_capacity(1000));
        assert_eq!(hit(&mut c, b"a", 1), None);
        let h = put(&mut c, b"a", 1, 7, 10).unwrap();
        assert_eq!(c.store().content(&h), [7; 10]);
        c.release(h);
        assert_eq!(hit(&mut c, b"a", 1), Some(vec![7; 10]));
        assert_eq!(hit(&mut c, b"b", 1), None);
        let st = c.stats();
        assert_eq!((st.hits, st.misses, st.insertions), (1, 2, 1));
        assert_eq!((st.entries, st.bytes_used), (1, 11));
    }

    #[test]
    fn the_digest_of_the_stored_bytes_is_kept_for_that_version_only() {
        let mut c = arena(1000, 8, Config::for_capacity(1000));
        assert_eq!(c.digest(b"a", &v(1)), None);
        stored(&mut c, b"a", 1, 7, 10);
        assert_eq!(c.digest(b"a", &v(1)), Some(ContentDigest::of(&[7; 10])));
        assert_eq!(c.digest(b"a", &v(2)), None, "another version");
        assert_eq!(c.digest(b"b", &v(1)), None, "another key");
        let before = c.stats();
        let _ = c.digest(b"a", &v(1));
        assert_eq!(c.stats(), before, "a digest lookup counts nothing");
        // A new version, its own digest; a failed fill stores none.
        stored(&mut c, b"a", 2, 8, 10);
        assert_eq!(c.digest(b"a", &v(2)), Some(ContentDigest::of(&[8; 10])));
        assert_eq!(c.digest(b"a", &v(1)), None);
        let failed = c.insert(b"c", &v(1), 5, &mut |_| Err(SourceError::Io));
        assert!(failed.is_err());
        assert_eq!(c.digest(b"c", &v(1)), None);
    }

    #[test]
    fn another_version_is_a_miss_that_drops_the_entry() {
        let mut c = arena(1000, 8, Config::for_capacity(1000));
        stored(&mut c, b"a", 1, 7, 10);
        assert_eq!(hit(&mut c, b"a", 2), None);
        assert_eq!(c.stats().stale_drops, 1);
        assert_eq!(c.stats().bytes_used, 0);
        assert_eq!(
            hit(&mut c, b"a", 1),
            None,
            "the old version is gone, not just hidden"
        );
    }

    #[test]
    fn insert_of_a_new_version_replaces_the_old() {
        let mut c = arena(1000, 8, Config::for_capacity(1000));
        stored(&mut c, b"a", 1, 1, 10);
        stored(&mut c, b"a", 2, 2, 20);
        assert_eq!(hit(&mut c, b"a", 2), Some(vec![2; 20]));
        assert_eq!(c.stats().entries, 1);
        assert_eq!(c.stats().bytes_used, 21);
    }

    #[test]
    fn insert_of_a_cached_version_does_not_refill() {
        let mut c = arena(1000, 8, Config::for_capacity(1000));
        stored(&mut c, b"a", 1, 1, 10);
        let h = c
            .insert(b"a", &v(1), 10, &mut |_| panic!("must not refill"))
            .unwrap();
        assert_eq!(c.store().content(&h), [1; 10]);
        c.release(h);
        assert_eq!(c.stats().insertions, 1);
    }

    #[test]
    fn keys_are_compared_in_full() {
        let mut c = arena(1000, 8, Config::for_capacity(1000));
        stored(&mut c, b"dir/a", 1, 1, 3);
        assert_eq!(hit(&mut c, b"dir/b", 1), None);
        assert_eq!(hit(&mut c, b"dir/a\0", 1), None);
        assert_eq!(hit(&mut c, b"dir/", 1), None);
    }

    #[test]
    fn pinned_content_survives_invalidation_and_pressure() {
        let mut c = arena(
            100,
            8,
            Config {
                max_entry_bytes: 100,
                large_bytes: 100,
                small_percent: 10,
            },
        );
        let pinned = put(&mut c, b"a", 1, 9, 40).unwrap();
        assert!(c.invalidate(b"a"));
        assert_eq!(hit(&mut c, b"a", 1), None);
        // The orphan still occupies its 41 bytes: 59 remain.
        assert_eq!(put(&mut c, b"b", 1, 2, 60), Err(InsertError::NoRoom));
        stored(&mut c, b"b", 1, 2, 50);
        assert_eq!(c.store().content(&pinned), [9; 40]);
        c.release(pinned);
        assert_eq!(c.stats().bytes_used, 51);
    }

    #[test]
    fn eviction_passes_over_pinned_entries() {
        let mut c = arena(
            100,
            8,
            Config {
                max_entry_bytes: 100,
                large_bytes: 100,
                small_percent: 10,
            },
        );
        let a = put(&mut c, b"a", 1, 1, 29).unwrap();
        stored(&mut c, b"b", 1, 2, 29);
        stored(&mut c, b"c", 1, 3, 29);
        stored(&mut c, b"d", 1, 4, 29);
        assert_eq!(c.store().content(&a), [1; 29]);
        assert!(
            hit(&mut c, b"a", 1).is_some(),
            "the oldest entry was pinned, not evicted"
        );
        assert_eq!(hit(&mut c, b"b", 1), None);
        c.release(a);
    }

    #[test]
    fn all_pinned_means_no_room() {
        let mut c = arena(
            60,
            8,
            Config {
                max_entry_bytes: 60,
                large_bytes: 60,
                small_percent: 10,
            },
        );
        let a = put(&mut c, b"a", 1, 1, 29).unwrap();
        let b = put(&mut c, b"b", 1, 2, 29).unwrap();
        assert_eq!(put(&mut c, b"c", 1, 3, 29), Err(InsertError::NoRoom));
        c.release(a);
        stored(&mut c, b"c", 1, 3, 29);
        c.release(b);
    }

    #[test]
    fn entry_limit_is_exact() {
        let mut c = arena(10_000, 4, Config::for_capacity(10_000));
        for i in 0..10u8 {
            stored(&mut c, &[i], 1, i, 5);
            assert!(c.stats().entries <= 4);
        }
        assert_eq!(c.stats().entries, 4);
        assert_eq!(c.stats().evictions, 6);
    }

    #[test]
    fn oversized_files_bypass() {
        let mut c = arena(
            1000,
            8,
            Config {
                max_entry_bytes: 100,
                large_bytes: 1000,
                small_percent: 10,
            },
        );
        assert!(c.admits(100));
        assert!(!c.admits(101));
        assert!(!c.admits(u64::MAX));
        assert_eq!(c.stats().bypasses, 2);
        assert_eq!(put(&mut c, b"a", 1, 0, 101), Err(InsertError::TooLarge));
        assert_eq!(c.stats().insertions, 0);
    }

    #[test]
    fn failed_fill_stores_nothing() {
        let mut c = arena(1000, 8, Config::for_capacity(1000));
        let r = c.insert(b"a", &v(1), 10, &mut |_| Err(SourceError::Io));
        assert_eq!(r, Err(InsertError::Fill(SourceError::Io)));
        assert_eq!(hit(&mut c, b"a", 1), None);
        assert_eq!(c.stats().bytes_used, 0);
    }

    #[test]
    fn a_large_file_must_earn_its_place() {
        let mut c = arena(
            1000,
            64,
            Config {
                max_entry_bytes: 1000,
                large_bytes: 100,
                small_percent: 10,
            },
        );
        // A hot set of small files, each requested a few times.
        for round in 0..3 {
            for i in 0..30u8 {
                match c.get(&[i], &v(1)) {
                    Some(h) => c.release(h),
                    None => {
                        assert_eq!(round, 0);
                        stored(&mut c, &[i], 1, i, 20);
                    }
                }
            }
        }
        // First request of a file that would need half of the cache: declined.
        assert_eq!(put(&mut c, b"big", 1, 0, 500), Err(InsertError::Deferred));
        assert_eq!(c.stats().evictions, 0);
        // Asked for again soon: it has earned its place.
        let h = put(&mut c, b"big", 1, 0xbb, 500).unwrap();
        assert_eq!(c.store().content(&h), [0xbb; 500]);
        c.release(h);
        assert_eq!(c.stats().deferred, 1);
    }

    #[test]
    fn a_one_slot_cache_still_remembers_a_deferred_file() {
        // Regression: the ghost forgot the key put there just before when it had one slot.
        let mut c = arena(
            60,
            1,
            Config {
                max_entry_bytes: 60,
                large_bytes: 10,
                small_percent: 10,
            },
        );
        assert_eq!(put(&mut c, b"k", 1, 1, 57), Err(InsertError::Deferred));
        stored(&mut c, b"k", 1, 1, 57);
        assert_eq!(c.stats().bytes_used, 58);
    }

    #[test]
    fn a_scan_does_not_flush_the_hot_set() {
        let mut c = arena(10_000, 256, Config::for_capacity(10_000));
        let hot = |i: u32| i.to_le_bytes();
        for _ in 0..4 {
            for i in 0..40 {
                match c.get(&hot(i), &v(1)) {
                    Some(h) => c.release(h),
                    None => stored(&mut c, &hot(i), 1, 1, 150),
                }
            }
        }
        for i in 1000..1200u32 {
            if c.get(&hot(i), &v(1)).is_none() {
                stored(&mut c, &hot(i), 1, 2, 150);
            }
        }
        let survivors = (0..40)
            .filter(|&i| hit(&mut c, &hot(i), 1).is_some())
            .count();
        assert_eq!(
            survivors, 40,
            "a one-off scan of 200 files evicted hot ones"
        );
    }

    #[test]
    fn shard_index_spreads_keys_and_stays_in_range() {
        let mut counts = [0usize; 8];
        for i in 0..8000u32 {
            let k = shard_index(std::format!("dir/file{i}.html").as_bytes(), 8);
            counts[k] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(shard_index(b"x", 1), 0);
        assert_eq!(shard_index(b"x", 0), 0);
    }

    #[test]
    fn index_survives_heavy_churn() {
        let mut c = arena(100_000, 64, Config::for_capacity(100_000));
        for round in 0..20u32 {
            for i in 0..100u32 {
                let key = (i * 7919 + round).to_le_bytes();
                match i % 3 {
                    0 => drop(c.invalidate(&key)),
                    _ => stored(&mut c, &key, u64::from(round), 1, 10),
                }
                c.check_invariants();
            }
        }
        let live = (0..100u32)
            .filter(|i| i % 3 != 0 && hit(&mut c, &(i * 7919 + 19).to_le_bytes(), 19).is_some())
            .count();
        assert_eq!(live, c.stats().entries.min(66));
    }

    #[test]
    fn rejects_bad_tables() {
        let store = || ArenaStore::new(vec![0u8; 10], vec![Region::new(); 4]).unwrap();
        let slots = |n: usize| (0..n).map(|_| Slot::<u32>::new()).collect::<Vec<_>>();
        let cfg = Config::for_capacity(10);
        let e = Cache::new(store(), slots(0), vec![Bucket::new(); 4], cfg).unwrap_err();
        assert_eq!(e, CacheError::Slots);
        let e = Cache::new(store(), slots(4), vec![Bucket::new(); 4], cfg).unwrap_err();
        assert_eq!(e, CacheError::Buckets);
        let e = Cache::new(store(), slots(4), vec![Bucket::new(); 12], cfg).unwrap_err();
        assert_eq!(e, CacheError::Buckets);
        assert!(Cache::new(store(), slots(4), vec![Bucket::new(); 8], cfg).is_ok());
    }

    #[test]
    fn board_configuration_lives_in_arrays() {
        let store = ArenaStore::new([0u8; 256], [const { Region::new() }; 4]).unwrap();
        let mut c: Cache<_, [Slot<u32>; 4], [Bucket; 8]> = Cache::new(
            store,
            [const { Slot::new() }; 4],
            [Bucket::new(); 8],
            Config::for_capacity(256),
        )
        .unwrap();
        let h = c
            .insert(b"k", &v(1), 3, &mut |b| {
                b.copy_from_slice(b"abc");
                Ok(())
            })
            .unwrap();
        let mut out = [0u8; 8];
        assert_eq!(c.store().copy_out(&h, 1, &mut out), 2);
        assert_eq!(&out[..2], b"bc");
        c.release(h);
    }

    /// A host-style store: each entry is an `Arc<[u8]>`, a hit clones it, nothing is pinned.
    #[derive(Default)]
    struct ArcStore {
        budget: usize,
        used: usize,
    }

    struct ArcEntry {
        key: Box<[u8]>,
        data: Arc<[u8]>,
    }

    impl Store for ArcStore {
        type Entry = ArcEntry;
        type Handle = Arc<[u8]>;
        fn capacity(&self) -> usize {
            self.budget
        }
        fn used(&self) -> usize {
            self.used
        }
        fn charge(&self, key_len: usize, len: usize) -> usize {
            key_len + len
        }
        fn alloc(
            &mut self,
            key: &[u8],
            len: usize,
            fill: &mut Fill<'_>,
        ) -> Result<ArcEntry, StoreError> {
            if self.budget - self.used < key.len() + len {
                return Err(StoreError::Full);
            }
            let mut data = vec![0u8; len];
            fill(&mut data).map_err(StoreError::Fill)?;
            self.used += key.len() + len;
            Ok(ArcEntry {
                key: key.into(),
                data: data.into(),
            })
        }
        fn key_eq(&self, e: &ArcEntry, key: &[u8]) -> bool {
            *e.key == *key
        }
        fn is_pinned(&self, _: &ArcEntry) -> bool {
            false
        }
        fn acquire(&mut self, e: &ArcEntry) -> Option<Arc<[u8]>> {
            Some(Arc::clone(&e.data))
        }
        fn release(&mut self, _: Arc<[u8]>) {}
        fn free(&mut self, e: ArcEntry) {
            self.used -= e.key.len() + e.data.len();
        }
    }

    type Shard = Cache<ArcStore, Box<[Slot<ArcEntry>]>, Box<[Bucket]>>;

    fn shard(budget: usize) -> Shard {
        let slots: Box<[Slot<ArcEntry>]> = (0..16).map(|_| Slot::new()).collect();
        let buckets = vec![Bucket::new(); 32].into_boxed_slice();
        let cfg = Config {
            max_entry_bytes: budget,
            large_bytes: budget,
            small_percent: 10,
        };
        Cache::new(ArcStore { budget, used: 0 }, slots, buckets, cfg).unwrap()
    }

    #[test]
    fn arc_store_hands_out_immutable_bytes_that_outlive_the_entry() {
        let mut c = shard(100);
        let fill = |byte: u8| {
            move |b: &mut [u8]| -> Result<(), SourceError> {
                b.fill(byte);
                Ok(())
            }
        };
        drop(c.insert(b"a", &v(1), 50, &mut fill(1)).unwrap());
        let sending = c.get(b"a", &v(1)).unwrap(); // a sender took a clone, lock released
                                                   // Meanwhile the file changes and another thread stores the new version.
        drop(c.insert(b"a", &v(2), 60, &mut fill(2)).unwrap());
        assert_eq!(
            &*sending,
            &[1; 50][..],
            "the first sender still sees only version 1"
        );
        assert_eq!(&*c.get(b"a", &v(2)).unwrap(), &[2; 60][..]);
        assert!(c.stats().bytes_used <= 100);
    }

    #[test]
    fn arc_store_shards_behind_mutexes() {
        use std::sync::Mutex;
        let shards: Vec<Mutex<Shard>> = (0..4).map(|_| Mutex::new(shard(1000))).collect();
        let shard_of = |key: &[u8]| shard_index(key, 4);
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let shards = &shards;
                s.spawn(move || {
                    for i in 0..200u8 {
                        let key = [i % 20];
                        let ver = v(u64::from(i % 3));
                        let sh = &shards[shard_of(&key)];
                        let got = sh.lock().unwrap().get(&key, &ver);
                        let bytes = got.or_else(|| {
                            let mut fill = |b: &mut [u8]| {
                                b.fill(key[0] ^ (i % 3));
                                Ok(())
                            };
                            sh.lock().unwrap().insert(&key, &ver, 30, &mut fill).ok()
                        });
                        // "Socket I/O" without the lock: content matches key and version.
                        if let Some(b) = bytes {
                            assert!(b.iter().all(|&x| x == key[0] ^ (i % 3)), "thread {t}");
                        }
                    }
                });
            }
        });
        for sh in &shards {
            assert!(sh.lock().unwrap().stats().bytes_used <= 1000);
        }
    }
}
