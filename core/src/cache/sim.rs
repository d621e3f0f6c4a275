//! Hit-ratio simulation: the cache's S3-FIFO against plain LRU on Zipf traces, with and
//! without a one-off scan of cold files.
//!
//! Shared by the unit test in `cache/mod.rs` and by `examples/hit_ratio.rs` (which includes
//! this file with `#[path]` and provides the same names through `super::`), so both report the
//! same code. It uses std: it only exists in tests and the example.

use std::boxed::Box;
use std::collections::{BTreeMap, HashMap};
use std::vec::Vec;

use super::{Bucket, Cache, Config, FileVersion, Fill, Slot, Store, StoreError};

/// SplitMix64: a tiny, fixed-seed generator (no dependency).
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A request trace over files `0..files` (Zipf-popular, rank = id) plus cold files
/// `files..files + scan`, each with a size.
pub(super) struct Trace {
    pub(super) requests: Vec<u32>,
    pub(super) sizes: Vec<u32>,
    /// The regular files are `0..files`; the scan's are `files..`.
    pub(super) files: u32,
    /// Request positions from the scan's first request to 10,000 regular requests after its
    /// last (empty without a scan).
    pub(super) around_scan: core::ops::Range<usize>,
}

/// How a one-off scan is mixed into a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// No scan.
    None,
    /// This many cold files, one after each regular request from the middle of the trace on
    /// (a crawler running beside normal traffic).
    Interleaved(u32),
    /// This many cold files back to back in the middle of the trace (a backup job).
    Burst(u32),
}

/// `len` Zipf(`alpha`) requests over `files` files with sizes log-uniform in 4 KiB..256 KiB,
/// with a one-off sequential `scan` of cold files mixed in.
pub(super) fn trace(files: u32, alpha: f64, len: usize, scan: Scan, seed: u64) -> Trace {
    let (scan, burst) = match scan {
        Scan::None => (0, false),
        Scan::Interleaved(n) => (n, false),
        Scan::Burst(n) => (n, true),
    };
    let mut rng = Rng::new(seed);
    let sizes = (0..files + scan)
        .map(|_| (4096.0 * 64f64.powf(rng.unit())) as u32)
        .collect();
    let mut cdf = Vec::with_capacity(files as usize);
    let mut total = 0.0;
    for rank in 1..=files {
        total += 1.0 / f64::from(rank).powf(alpha);
        cdf.push(total);
    }
    // The same regular requests with or without the scan: draw them from their own generator.
    let mut rng = Rng::new(seed ^ 0x5ca1_ab1e);
    let mut requests = Vec::with_capacity(len + scan as usize);
    for i in 0..len {
        if burst && i == len / 2 {
            requests.extend(files..files + scan);
        }
        let u = rng.unit() * total;
        requests.push(cdf.partition_point(|&c| c < u).min(files as usize - 1) as u32);
        let k = i.wrapping_sub(len / 2);
        if !burst && k < scan as usize {
            requests.push(files + k as u32);
        }
    }
    let is_scan = |&r: &u32| r >= files;
    let first = requests.iter().position(is_scan).unwrap_or(0);
    let last = requests.iter().rposition(is_scan).map_or(0, |p| p + 1);
    let around_scan = first..(last + if scan > 0 { 10_000 } else { 0 }).min(requests.len());
    Trace {
        requests,
        sizes,
        files,
        around_scan,
    }
}

/// Hit ratios of one run: over all requests, and over the regular requests around the scan.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ratios {
    pub(super) all: f64,
    pub(super) around_scan: f64,
}

fn ratios(t: &Trace, hit: &[bool]) -> Ratios {
    let ratio = |n: usize, h: usize| if n == 0 { 0.0 } else { h as f64 / n as f64 };
    let all = ratio(hit.len(), hit.iter().filter(|&&h| h).count());
    let window = t.around_scan.clone().filter(|&i| t.requests[i] < t.files);
    let (n, h) = window.fold((0, 0), |(n, h), i| (n + 1, h + usize::from(hit[i])));
    Ratios {
        all,
        around_scan: ratio(n, h),
    }
}

/// A byte-bounded LRU of `capacity` bytes (entries up to a quarter of it).
pub(super) fn lru(t: &Trace, capacity: u64) -> Ratios {
    let mut stamp_of: HashMap<u32, u64> = HashMap::new();
    let mut by_age: BTreeMap<u64, u32> = BTreeMap::new();
    let mut used = 0u64;
    let mut hits = Vec::with_capacity(t.requests.len());
    for (now, &f) in (0u64..).zip(&t.requests) {
        let size = u64::from(t.sizes[f as usize]);
        let old = stamp_of.insert(f, now);
        hits.push(old.is_some());
        if let Some(old) = old {
            by_age.remove(&old);
            by_age.insert(now, f);
            continue;
        }
        if size > capacity / 4 {
            stamp_of.remove(&f);
            continue;
        }
        by_age.insert(now, f);
        used += size;
        while used > capacity {
            let Some((_, victim)) = by_age.pop_first() else {
                break;
            };
            stamp_of.remove(&victim);
            used -= u64::from(t.sizes[victim as usize]);
        }
    }
    ratios(t, &hits)
}

/// A store that only accounts bytes (a simulation keeps no content): `fill` gets an empty
/// slice.
struct Accounting {
    capacity: usize,
    used: usize,
}

impl Store for Accounting {
    type Entry = (u32, usize);
    type Handle = ();

    fn capacity(&self) -> usize {
        self.capacity
    }
    fn used(&self) -> usize {
        self.used
    }
    fn charge(&self, _key_len: usize, len: usize) -> usize {
        len
    }
    fn alloc(
        &mut self,
        key: &[u8],
        len: usize,
        _fill: &mut Fill<'_>,
    ) -> Result<(u32, usize), StoreError> {
        if self.capacity - self.used < len {
            return Err(StoreError::Full);
        }
        let mut id = [0u8; 4];
        id.copy_from_slice(key);
        self.used += len;
        Ok((u32::from_le_bytes(id), len))
    }
    fn key_eq(&self, e: &(u32, usize), key: &[u8]) -> bool {
        e.0.to_le_bytes() == key
    }
    fn is_pinned(&self, _: &(u32, usize)) -> bool {
        false
    }
    fn acquire(&mut self, _: &(u32, usize)) -> Option<()> {
        Some(())
    }
    fn release(&mut self, (): ()) {}
    fn free(&mut self, e: (u32, usize)) {
        self.used -= e.1;
    }
}

/// The cache (S3-FIFO, default [`Config`]) with `capacity` bytes.
pub(super) fn s3fifo(t: &Trace, capacity: usize) -> Ratios {
    let n = t.sizes.len();
    let slots: Box<[Slot<(u32, usize)>]> = (0..n).map(|_| Slot::new()).collect();
    let buckets = std::vec![Bucket::new(); (2 * n).next_power_of_two()].into_boxed_slice();
    let store = Accounting { capacity, used: 0 };
    let Ok(mut cache) = Cache::new(store, slots, buckets, Config::for_capacity(capacity)) else {
        return Ratios {
            all: 0.0,
            around_scan: 0.0,
        };
    };
    let mut hits = Vec::with_capacity(t.requests.len());
    for &f in &t.requests {
        let size = t.sizes[f as usize];
        let key = f.to_le_bytes();
        let version = FileVersion {
            len: u64::from(size),
            stamp: 0,
            id: u64::from(f),
        };
        let hit = cache.get(&key, &version).is_some();
        hits.push(hit);
        if !hit && cache.admits(u64::from(size)) {
            let _ = cache.insert(&key, &version, size as usize, &mut |_| Ok(()));
        }
    }
    ratios(t, &hits)
}

/// 10 % of the bytes of the regular (non-scan) files.
pub(super) fn tenth_of_working_set(t: &Trace) -> usize {
    t.sizes[..t.files as usize]
        .iter()
        .map(|&s| s as usize)
        .sum::<usize>()
        / 10
}
