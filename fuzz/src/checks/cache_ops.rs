//! `cache_ops`: sequences of operations against the content cache and a model of it.
//!
//! Input ([`Reader`] encoding): the cache configuration (per-entry limit, "large" threshold,
//! small-queue share), then operations until the input ends, each a tag byte and its operands:
//! look up (key, version), insert (key, version, length, whether the read fails), release a
//! held handle, invalidate a key. Keys come from a fixed set that includes an empty key and a
//! long one; content is a function of (key, version, length), so any byte served can be
//! traced to what was stored.
//!
//! The model is the set of (key → version, length) the cache *may* hold: an insertion adds,
//! and a miss, a version change or an invalidation removes, while evictions are the cache's
//! choice.
//!
//! Properties, after every operation:
//! - capacity: bytes used never exceed the capacity, entries never exceed the slots, and the
//!   cache never holds an entry the model rules out;
//! - no stale hit: a hit for (key, version) is for the version last stored under that key
//!   and still in the model, and serves exactly its content;
//! - pins hold: every handle still held reads the bytes it read when it was handed out;
//! - nothing leaks: once all handles are released and all keys invalidated, the cache holds no
//!   byte and no entry.

use std::collections::HashMap;

use satchel_core::cache::{ArenaHandle, ArenaStore, ArrayCache, Bucket, Cache, Config};
use satchel_core::cache::{InsertError, Region, Slot};
use satchel_core::source::{FileVersion, SourceError};

use super::Reader;

/// Arena bytes of the cache under test.
const BYTES: usize = 1024;
/// The keys operations pick from.
const KEYS: [&[u8]; 6] = [
    b"a",
    b"b",
    b"index.html",
    b"",
    b"docs/deep/folder/with/a/rather/long/name/that/takes/room/in/the/arena.txt",
    b"c",
];

type Board = ArrayCache<6, 16, BYTES>;

/// The content stored for `key` at `version` with `len` bytes.
fn content(key: usize, version: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 * 31 + key as u64 * 7 + version * 13) as u8)
        .collect()
}

fn version(v: u64, len: usize) -> FileVersion {
    FileVersion {
        len: len as u64,
        stamp: v,
        id: 1,
    }
}

/// A handle held by the test, with what it read when handed out.
struct Held {
    handle: ArenaHandle,
    bytes: Vec<u8>,
}

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    let mut r = Reader::new(data);
    let config = Config {
        max_entry_bytes: usize::from(r.u16()) % (BYTES + 64),
        large_bytes: usize::from(r.u16()) % (BYTES + 64),
        small_percent: r.u8() % 110,
    };
    let store = ArenaStore::new([0u8; BYTES], [const { Region::new() }; 6]).expect("records");
    let mut cache: Board = Cache::new(
        store,
        [const { Slot::new() }; 6],
        [const { Bucket::new() }; 16],
        config,
    )
    .expect("16 buckets for 6 slots");
    let mut model: HashMap<usize, (u64, usize)> = HashMap::new();
    let mut held: Vec<Held> = Vec::new();

    while !r.is_empty() {
        match r.below(5) {
            0 => {
                let (k, v) = (r.below(KEYS.len()), u64::from(r.u8() % 4));
                // Look up with the length the model knows, or any.
                let len = model.get(&k).map_or(0, |&(_, len)| len);
                let ver = version(v, len);
                match cache.get(KEYS[k], &ver) {
                    Some(handle) => {
                        let bytes = cache.store().content(&handle).to_vec();
                        assert_eq!(
                            model.get(&k),
                            Some(&(v, len)),
                            "hit for key {k} version {v} the model rules out"
                        );
                        assert!(bytes == content(k, v, len), "hit serves other bytes");
                        held.push(Held { handle, bytes });
                    }
                    None => {
                        model.remove(&k);
                    }
                }
            }
            1 => {
                let (k, v) = (r.below(KEYS.len()), u64::from(r.u8() % 4));
                let len = usize::from(r.u16()) % (BYTES + 64);
                let fails = r.u8() & 7 == 0;
                let before = model.get(&k).copied();
                let mut filled = false;
                let result = cache.insert(KEYS[k], &version(v, len), len, &mut |buf| {
                    filled = true;
                    assert_eq!(buf.len(), len, "fill given a slice of another length");
                    if fails {
                        return Err(SourceError::Io);
                    }
                    buf.copy_from_slice(&content(k, v, len));
                    Ok(())
                });
                match result {
                    Ok(handle) => {
                        let bytes = cache.store().content(&handle).to_vec();
                        assert!(!fails || !filled, "stored a failed read");
                        assert!(
                            bytes == content(k, v, len),
                            "insertion hands out other bytes"
                        );
                        model.insert(k, (v, len));
                        held.push(Held { handle, bytes });
                    }
                    Err(e) => {
                        if let InsertError::Fill(_) = e {
                            assert!(fails && filled);
                        }
                        if !filled {
                            assert!(!matches!(e, InsertError::Fill(_)));
                        }
                        if before.is_some_and(|(bv, blen)| (bv, blen) != (v, len)) || filled {
                            model.remove(&k);
                        }
                    }
                }
            }
            2 if !held.is_empty() => {
                let i = r.below(held.len());
                let h = held.swap_remove(i);
                assert!(
                    cache.store().content(&h.handle) == h.bytes,
                    "pinned bytes moved"
                );
                cache.release(h.handle);
            }
            3 => {
                let k = r.below(KEYS.len());
                let was = cache.invalidate(KEYS[k]);
                let modelled = model.remove(&k).is_some();
                assert!(
                    !was || modelled,
                    "invalidated key {k} the model did not have"
                );
            }
            _ => {
                // Keep the number of pins bounded, as a server's connections are.
                if held.len() > 8 {
                    let h = held.remove(0);
                    cache.release(h.handle);
                }
            }
        }
        invariants(&cache, &model, &held);
    }

    for h in held.drain(..) {
        assert!(
            cache.store().content(&h.handle) == h.bytes,
            "pinned bytes moved"
        );
        cache.release(h.handle);
    }
    for key in KEYS {
        cache.invalidate(key);
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.bytes_used, stats.entries),
        (0, 0),
        "bytes or entries left after everything was released and invalidated"
    );
}

fn invariants(cache: &Board, model: &HashMap<usize, (u64, usize)>, held: &[Held]) {
    let stats = cache.stats();
    assert!(
        stats.bytes_used <= stats.bytes_capacity,
        "{} bytes used of {}",
        stats.bytes_used,
        stats.bytes_capacity
    );
    assert!(stats.entries <= stats.entries_capacity);
    assert!(
        stats.entries <= model.len(),
        "{} entries, the model allows {}",
        stats.entries,
        model.len()
    );
    for h in held {
        assert!(
            cache.store().content(&h.handle) == h.bytes,
            "pinned bytes changed"
        );
    }
}
