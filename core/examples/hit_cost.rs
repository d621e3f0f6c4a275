//! The core's work for a 1 KiB cache hit, for counting instructions (not timing them).
//!
//! `cargo run -p satchel-core --release --example hit_cost -- N` serves N kept-alive GETs of
//! one 1 KiB file through the blocking driver (`satchel_core::io::serve`) from an in-memory
//! stream: request parsing, path normalisation, the cache lookup and probe, the conditional
//! and range decision, the response head, and copying the body out, all on a warm cache after
//! the first request. `bench/hit_instructions.sh` runs it under callgrind for two values of N
//! and divides the difference, so start-up and the first miss cancel out. What the host's
//! worker adds (epoll, system calls, its own bookkeeping) is not in this count.

use core::cell::RefCell;
use core::convert::Infallible;

use satchel_core::cache::{
    ArenaStore, ArrayCache, Bucket, Cache, Config as CacheConfig, Region, Slot,
};
use satchel_core::serve::{Config, SiteParts};
use satchel_core::source::{StaticFile, StaticSource};
use satchel_core::time::Instant;

const BYTES: usize = 64 * 1024;
static DATA: [u8; 1024] = [b'x'; 1024];
static FILES: &[StaticFile] = &[StaticFile {
    path: "one.bin",
    data: &DATA,
    modified: Some(1_700_000_000),
}];

/// Requests in, responses counted out.
struct Stream {
    input: Vec<u8>,
    pos: usize,
    written: usize,
}

impl embedded_io::ErrorType for Stream {
    type Error = Infallible;
}

impl embedded_io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = (self.input.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl embedded_io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.written += std::hint::black_box(buf).len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let store = ArenaStore::new([0u8; BYTES], [const { Region::new() }; 8]).expect("store");
    let cache: ArrayCache<8, 16, BYTES> = Cache::new(
        store,
        [const { Slot::new() }; 8],
        [const { Bucket::new() }; 16],
        CacheConfig {
            max_entry_bytes: BYTES / 2,
            large_bytes: BYTES / 2,
            small_percent: 10,
        },
    )
    .expect("cache");
    let site = SiteParts::new(
        StaticSource::new(FILES),
        RefCell::new(cache),
        Config::host(),
    )
    .with_clock(|| 1_700_000_000);
    let request = b"GET /one.bin HTTP/1.1\r\nHost: bench\r\n\r\n";
    let mut stream = Stream {
        input: request.repeat(n),
        pos: 0,
        written: 0,
    };
    let mut rx = vec![0u8; 64 * 1024];
    let mut chunk = [0u8; 4096];
    let mut responses = 0usize;
    satchel_core::io::serve::<_, _, 1024>(
        &site,
        &mut stream,
        &mut rx,
        &mut chunk,
        || Instant::from_millis(0),
        |_, _| responses += 1,
    )
    .expect("in-memory stream");
    println!(
        "{n} requests, {responses} events, {} bytes out",
        stream.written
    );
}
