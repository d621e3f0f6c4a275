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
//! To make that bookkeeping exact, the worker numbers its socket reads ([`ProbeMemo::received`])
//! and hands the number of the read that delivered a request to the connection with the bytes
//! (`Connection::handle_input(now, arrived, data)`), which passes it to `FileSource::probe`; a
//! remembered result carries the number of reads done before its `stat`. The worker reads every
//! ready socket of a turn first and handles the requests after, so one `stat` per path answers
//! the whole turn. The memo belongs to one worker's [`WorkerSite`](crate::site::WorkerSite):
//! nothing reaches the source but the arguments the core passes.

use std::cell::RefCell;

use satchel_core::source::{Arrival, Metadata, SourceError};

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

/// One worker's remembered `stat` results and its count of socket reads.
pub(crate) struct ProbeMemo {
    inner: RefCell<Memo>,
}

struct Memo {
    /// Socket reads completed by this worker.
    reads: u64,
    slots: Vec<Option<Remembered>>,
}

impl ProbeMemo {
    pub(crate) fn new() -> Self {
        Self {
            inner: RefCell::new(Memo {
                reads: 0,
                slots: (0..SLOTS).map(|_| None).collect(),
            }),
        }
    }

    /// Counts a socket read that returned bytes; what it delivered arrived at the result.
    pub(crate) fn received(&self) -> Arrival {
        let mut m = self.inner.borrow_mut();
        m.reads += 1;
        Arrival(m.reads)
    }

    /// The metadata of `path` for a request that `arrived`: remembered if the `stat` was made
    /// after the request arrived, otherwise from `stat` (and then remembered).
    pub(crate) fn probe(
        &self,
        path: &[u8],
        arrived: Arrival,
        stat: impl FnOnce() -> Result<Metadata, SourceError>,
    ) -> Result<Metadata, SourceError> {
        let slot = slot_of(path);
        let taken = {
            let m = self.inner.borrow();
            if let Some(r) = &m.slots[slot] {
                if r.taken >= arrived.0 && r.path == path {
                    return Ok(r.meta);
                }
            }
            // Counted before the call: a read completed while `stat` runs is not covered by it.
            m.reads
        };
        let result = stat();
        if let (Ok(meta), true) = (result, path.len() <= MAX_PATH) {
            let entry = &mut self.inner.borrow_mut().slots[slot];
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
        }
        result
    }
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

    fn probe_counting(
        memo: &ProbeMemo,
        path: &[u8],
        at: Arrival,
        len: u64,
        calls: &mut u32,
    ) -> u64 {
        memo.probe(path, at, || {
            *calls += 1;
            Ok(meta(len))
        })
        .map(|m| m.version.len)
        .unwrap()
    }

    #[test]
    fn requests_received_before_a_stat_share_it() {
        let memo = ProbeMemo::new();
        let a = memo.received();
        let b = memo.received();
        let mut calls = 0;
        assert_eq!(probe_counting(&memo, b"x", a, 1, &mut calls), 1);
        // The file changed after the first stat: both requests were already received, so the
        // first result answers the second too.
        assert_eq!(probe_counting(&memo, b"x", b, 2, &mut calls), 1);
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_request_received_after_the_stat_gets_a_new_one() {
        let memo = ProbeMemo::new();
        let a = memo.received();
        let mut calls = 0;
        assert_eq!(probe_counting(&memo, b"x", a, 1, &mut calls), 1);
        let b = memo.received();
        assert_eq!(probe_counting(&memo, b"x", b, 2, &mut calls), 2);
        assert_eq!(calls, 2);
    }

    #[test]
    fn nothing_is_reused_when_the_arrival_is_unknown() {
        let memo = ProbeMemo::new();
        let mut calls = 0;
        memo.received();
        assert_eq!(
            probe_counting(&memo, b"x", Arrival::UNKNOWN, 1, &mut calls),
            1
        );
        assert_eq!(
            probe_counting(&memo, b"x", Arrival::UNKNOWN, 2, &mut calls),
            2
        );
        assert_eq!(calls, 2);
    }

    #[test]
    fn other_paths_and_errors_are_not_reused() {
        let memo = ProbeMemo::new();
        let a = memo.received();
        let mut calls = 0;
        assert_eq!(probe_counting(&memo, b"x", a, 1, &mut calls), 1);
        assert_eq!(probe_counting(&memo, b"y", a, 5, &mut calls), 5);
        assert_eq!(calls, 2);
        assert_eq!(
            memo.probe(b"z", a, || Err(SourceError::NotFound)),
            Err(SourceError::NotFound)
        );
        assert_eq!(
            memo.probe(b"z", a, || Ok(meta(7))).map(|m| m.version.len),
            Ok(7)
        );
    }
}
