//! Hit ratios of the cache's S3-FIFO policy against plain LRU.
//!
//! `cargo run -p satchel-core --release --example hit_ratio` prints a markdown table:
//! Zipf(0.9) and Zipf(1.0) traces over 10,000 files (4 KiB..256 KiB, log-uniform), without and
//! with a one-off sequential scan of 5,000 cold files from the middle of the trace (interleaved
//! with the regular requests, or back to back);
//! cache sized to 10 % of the bytes of the 10,000 files; fixed seed. The simulation code is the
//! one the unit test runs (`core/src/cache/sim.rs`); S3-FIFO is the real `Cache`, over a store
//! that only counts bytes.

use satchel_core::cache::{Bucket, Cache, Config, Fill, Slot, Store, StoreError};
use satchel_core::source::FileVersion;

#[path = "../src/cache/sim.rs"]
mod sim;

use sim::Scan;

const FILES: u32 = 10_000;
const SCAN: u32 = 5_000;
const REQUESTS: usize = 500_000;
const SEED: u64 = 0x5a7c_4e11;

fn main() {
    println!("| trace | requests | cache | S3-FIFO | LRU | S3-FIFO - LRU | around the scan: S3-FIFO | LRU |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for alpha in [0.9, 1.0] {
        for scan in [Scan::None, Scan::Interleaved(SCAN), Scan::Burst(SCAN)] {
            let t = sim::trace(FILES, alpha, REQUESTS, scan, SEED);
            let cap = sim::tenth_of_working_set(&t);
            let ours = sim::s3fifo(&t, cap);
            let lru = sim::lru(&t, cap as u64);
            let name = match scan {
                Scan::None => format!("(a) Zipf({alpha:.1})"),
                Scan::Interleaved(n) => {
                    format!("(b) Zipf({alpha:.1}) + {n} cold files interleaved")
                }
                Scan::Burst(n) => format!("(b) Zipf({alpha:.1}) + {n} cold files back to back"),
            };
            let around = if scan == Scan::None {
                "| - | - |".to_owned()
            } else {
                format!(
                    "| {:.2} % | {:.2} % |",
                    100.0 * ours.around_scan,
                    100.0 * lru.around_scan
                )
            };
            println!(
                "| {name} | {} | {:.1} MiB | {:.2} % | {:.2} % | {:+.2} {around}",
                t.requests.len(),
                cap as f64 / f64::from(1 << 20),
                100.0 * ours.all,
                100.0 * lru.all,
                100.0 * (ours.all - lru.all),
            );
        }
    }
}
