//! One `stat` per path per batch of requests, without ever serving stale content.
//!
//! Every cache hit is validated by a `stat` of its path (the core's `FileSource::probe`), and
//! that system call was about 13 % of the server's CPU for small files. When a worker's batch of
//! requests all name the same few paths, most of those calls are redundant — but only if reusing
//! a result can never hide a change that a client could know happened before its request.
//!
//! The rule that guarantees it: a `stat` result may answer a request whose bytes were all
//! *received before the `stat` was made*. Such a request was in flight when the `stat` ran, so
//! answering with what the file was at that moment is linearizable (the read takes effect at a
//! point inside the request's lifetime). A request received after the `stat` gets a new one, so a
//! change made before a client sends its request is always seen by that request.
//!
//! To make that bookkeeping exact, the worker numbers its socket reads ([`received`]) and says
//! which read delivered the bytes it is about to hand to a connection ([`handling`]); a
//! remembered result carries the number of reads done before its `stat`. The worker reads every
//! ready socket of a turn first and handles the requests after, so one `stat` per path answers
//! the whole turn. State is per thread (each worker is one thread), like the turn's clock.

use std::cell::RefCell;

use satchel_core::source::{Metadata, SourceError};

/// Remembered results per worker: direct-mapped by a hash of the path.
const SLOTS: usize = 64;
/// Longer paths are not remembered (they are rare, and a slot keeps its buffer).
const MAX_PATH: usize = 256;

struct Remembered {
    path: Vec<u8>,
    /// Reads completed before the `stat`: requests received by read number `<= taken` may use it.
    taken: u64,
    meta: Metadata,
}

struct Memo {
    /// Socket reads completed on this thread.
    reads: u64,
    /// The read that delivered the request being handled (`u64::MAX`: unknown, never reuse).
    handling: u64,
    slots: Vec<Option<Remembered>>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo {
        reads: 0,
        handling: u64::MAX,
        slots: (0..SLOTS).map(|_| None).collect(),
    });
}

/// Counts a socket read that returned bytes and returns its number.
pub(crate) fn received() -> u64 {
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        m.reads += 1;
        m.reads
    })
}

/// Declares that the bytes about to be handled were received by read number `read` or earlier.
pub(crate) fn handling(read: u64) {
    MEMO.with(|m| m.borrow_mut().handling = read);
}

/// The metadata of `path`: remembered if that is allowed for the request being handled,
/// otherwise from `stat` (and then remembered).
pub(crate) fn probe(
    path: &[u8],
    stat: impl FnOnce() -> Result<Metadata, SourceError>,
) -> Result<Metadata, SourceError> {
    let slot = slot_of(path);
    let found = MEMO.with(|m| {
        let m = m.borrow();
        match &m.slots[slot] {
            Some(r) if r.taken >= m.handling && r.path == path => Some(r.meta),
            _ => None,
        }
    });
    if let Some(meta) = found {
        return Ok(meta);
    }
    // Counted before the call: a read completed while `stat` runs is not covered by it.
    let taken = MEMO.with(|m| m.borrow().reads);
    let result = stat();
    if let (Ok(meta), true) = (result, path.len() <= MAX_PATH) {
        MEMO.with(|m| {
            let entry = &mut m.borrow_mut().slots[slot];
            match entry {
                Some(r) => {
                    r.path.clear();
                    r.path.extend_from_slice(path);
                    r.taken = taken;
                    r.meta = meta;
                }
                None => {
                    *entry = Some(Remembered {
                        path: path.to_vec(),
                        taken,
                        meta,
                    });
                }
            }
        });
    }
    result
}

/// FNV-1a, folded to a slot.
fn slot_of(path: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &b in path {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h as usize ^ (h as usize >> 16)) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use satchel_core::source::{FileKind, FileVersion};

    fn meta(len: u64) -> Metadata {
        Metadata {
            kind: FileKind::File,
            version: FileVersion {
                len,
                stamp: 1,
                id: 2,
            },
            modified: None,
        }
    }

    /// Each test runs on its own thread, so each starts from a fresh memo.
    fn probe_counting(path: &[u8], len: u64, calls: &mut u32) -> u64 {
        probe(path, || {
            *calls += 1;
            Ok(meta(len))
        })
        .map(|m| m.version.len)
        .unwrap()
    }

    #[test]
    fn requests_received_before_a_stat_share_it() {
        let a = received();
        let b = received();
        let mut calls = 0;
        handling(a);
        assert_eq!(probe_counting(b"x", 1, &mut calls), 1);
        handling(b);
        // The file changed after the first stat: both requests were already received, so the
        // first result answers the second too.
        assert_eq!(probe_counting(b"x", 2, &mut calls), 1);
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_request_received_after_the_stat_gets_a_new_one() {
        let a = received();
        let mut calls = 0;
        handling(a);
        assert_eq!(probe_counting(b"x", 1, &mut calls), 1);
        let b = received();
        handling(b);
        assert_eq!(probe_counting(b"x", 2, &mut calls), 2);
        assert_eq!(calls, 2);
    }

    #[test]
    fn nothing_is_reused_before_the_worker_says_what_it_handles() {
        let mut calls = 0;
        received();
        assert_eq!(probe_counting(b"x", 1, &mut calls), 1);
        assert_eq!(probe_counting(b"x", 2, &mut calls), 2);
        assert_eq!(calls, 2);
    }

    #[test]
    fn other_paths_and_errors_are_not_reused() {
        let a = received();
        handling(a);
        let mut calls = 0;
        assert_eq!(probe_counting(b"x", 1, &mut calls), 1);
        assert_eq!(probe_counting(b"y", 5, &mut calls), 5);
        assert_eq!(calls, 2);
        assert_eq!(
            probe(b"z", || Err(SourceError::NotFound)),
            Err(SourceError::NotFound)
        );
        assert_eq!(probe(b"z", || Ok(meta(7))).map(|m| m.version.len), Ok(7));
    }
}
