//! The server's counters and their Prometheus text exposition (`GET /metrics` on the admin
//! listener, [`crate::admin`]).
//!
//! Each worker owns one [`WorkerCounters`] and is its only writer: a count goes up by a plain
//! load and store of a relaxed atomic (no locked instruction, no shared cache line, no lock per
//! request); a scrape sums the workers' counters. The cache's own counters (hits, misses,
//! evictions...) are read from its shards at scrape time, and the open connections from the
//! shared admission count.
//!
//! The text format is written by hand: it is a few lines of `name{label="v"} value` with `HELP`
//! and `TYPE` comments, checked by `promtool check metrics` in the tests, and the `prometheus`
//! or `metrics` crates would bring a registry, a global and their own locking for a dozen
//! numbers that already live here.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use satchel_core::cache::CacheStats;

/// Status codes are counted in slots `0..600`; anything else (never sent) would go to 0.
const CODES: usize = 600;

/// One worker's counters, written only by that worker's thread.
#[repr(align(128))]
pub(crate) struct WorkerCounters {
    /// Responses by status code.
    by_status: Box<[AtomicU64]>,
    /// Head and body bytes written to clients.
    sent: AtomicU64,
    /// Responses cut off at shutdown (still sending when the grace period ended).
    cut_off: AtomicU64,
}

/// Adds `n` to a counter that only the calling thread writes: a load and a store, which other
/// threads may read at any time (they see the old or the new value, never a torn one).
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl WorkerCounters {
    fn new() -> Self {
        Self {
            by_status: (0..CODES).map(|_| AtomicU64::new(0)).collect(),
            sent: AtomicU64::new(0),
            cut_off: AtomicU64::new(0),
        }
    }

    /// A response with `status` was planned.
    pub(crate) fn response(&self, status: u16) {
        let i = usize::from(status);
        bump(&self.by_status[if i < CODES { i } else { 0 }], 1);
    }

    /// `n` bytes of a response went out.
    pub(crate) fn sent(&self, n: u64) {
        bump(&self.sent, n);
    }

    /// A response was cut off at shutdown.
    pub(crate) fn cut_off(&self) {
        bump(&self.cut_off, 1);
    }

    /// Responses counted by this worker.
    pub(crate) fn responses(&self) -> u64 {
        self.by_status
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// Every worker's counters.
pub(crate) struct Metrics {
    workers: Box<[WorkerCounters]>,
}

/// What a scrape reads besides the workers' counters.
pub(crate) struct Gauges {
    pub(crate) cache: CacheStats,
    pub(crate) open_connections: usize,
    pub(crate) draining: bool,
}

impl Metrics {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            workers: (0..workers).map(|_| WorkerCounters::new()).collect(),
        }
    }

    /// Worker `i`'s counters.
    pub(crate) fn worker(&self, i: usize) -> &WorkerCounters {
        &self.workers[i]
    }

    fn sum(&self, f: impl Fn(&WorkerCounters) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| f(w).load(Ordering::Relaxed))
            .sum()
    }

    /// Responses cut off at shutdown, all workers.
    pub(crate) fn cut_off_total(&self) -> u64 {
        self.sum(|w| &w.cut_off)
    }

    /// The Prometheus text exposition format (version 0.0.4) of every metric.
    pub(crate) fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "satchel_http_responses_total",
            "counter",
            "HTTP responses by status code (including 503 refusals past --max-connections).",
        );
        for code in 0..CODES {
            let n = self.sum(|w| &w.by_status[code]);
            if n > 0 {
                let _ = writeln!(out, "satchel_http_responses_total{{code=\"{code}\"}} {n}");
            }
        }
        let c = &g.cache;
        let counters: [(&str, &str, u64); 7] = [
            (
                "satchel_http_response_bytes_total",
                "Bytes of response heads and bodies written to clients.",
                self.sum(|w| &w.sent),
            ),
            (
                "satchel_cache_hits_total",
                "Requests answered from the cache.",
                c.hits,
            ),
            (
                "satchel_cache_misses_total",
                "Cache lookups that found no fresh entry (bypassed files included).",
                c.misses,
            ),
            (
                "satchel_cache_bypasses_total",
                "Requests for files too large to cache, streamed from disk.",
                c.bypasses,
            ),
            (
                "satchel_cache_evictions_total",
                "Entries evicted to make room.",
                c.evictions,
            ),
            (
                "satchel_cache_stale_drops_total",
                "Entries dropped because the file changed on disk.",
                c.stale_drops,
            ),
            (
                "satchel_shutdown_cut_off_responses_total",
                "Responses still sending when the shutdown grace period ended, cut off.",
                self.cut_off_total(),
            ),
        ];
        for (name, help, value) in counters {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        }
        let gauges: [(&str, &str, u64); 6] = [
            (
                "satchel_cache_size_bytes",
                "Bytes the cache holds (content, keys and per-entry bookkeeping).",
                c.bytes_used as u64,
            ),
            (
                "satchel_cache_capacity_bytes",
                "Bytes the cache may hold (--cache-size).",
                c.bytes_capacity as u64,
            ),
            (
                "satchel_cache_entries",
                "Files the cache holds.",
                c.entries as u64,
            ),
            (
                "satchel_cache_entries_capacity",
                "Files the cache may hold.",
                c.entries_capacity as u64,
            ),
            (
                "satchel_open_connections",
                "Client connections open now.",
                g.open_connections as u64,
            ),
            (
                "satchel_draining",
                "1 after SIGTERM/SIGINT (/healthz answers 503), else 0.",
                u64::from(g.draining),
            ),
        ];
        for (name, help, value) in gauges {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_workers_and_lists_only_codes_sent() {
        let m = Metrics::new(2);
        m.worker(0).response(200);
        m.worker(1).response(200);
        m.worker(1).response(404);
        m.worker(0).sent(100);
        m.worker(1).sent(23);
        m.worker(1).cut_off();
        let text = m.render(&Gauges {
            cache: CacheStats::default(),
            open_connections: 3,
            draining: true,
        });
        assert!(text.contains("satchel_http_responses_total{code=\"200\"} 2\n"));
        assert!(text.contains("satchel_http_responses_total{code=\"404\"} 1\n"));
        assert!(!text.contains("code=\"500\""));
        assert!(text.contains("satchel_http_response_bytes_total 123\n"));
        assert!(text.contains("satchel_shutdown_cut_off_responses_total 1\n"));
        assert!(text.contains("satchel_open_connections 3\n"));
        assert!(text.contains("satchel_draining 1\n"));
        assert_eq!(m.worker(1).responses(), 2);
    }
}
