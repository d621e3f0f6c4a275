//! A measurement, not a check (ignored by default; nothing is asserted about time): how long
//! satchel-server takes to answer the listing of a 20,000-entry folder in each form, and how
//! many bytes each form is.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo test --release -p satchel-tests --test listing_scale -- --ignored --nocapture
//! ```

use std::fs;
use std::time::Instant;

use satchel_tests::raw::Conn;
use satchel_tests::Server;

const ENTRIES: usize = 20_000;

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn twenty_thousand_entries() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..ENTRIES {
        let name = if i % 100 == 0 {
            format!("folder {i:05}")
        } else {
            format!("file-{i:05} r\u{e9}sum\u{e9}.txt")
        };
        let path = dir.path().join(name);
        if i % 100 == 0 {
            fs::create_dir(path).unwrap();
        } else {
            fs::write(path, vec![b'x'; i % 4096]).unwrap();
        }
    }
    let server = Server::start(dir.path(), &["--quiet"]);
    for (form, target, accept) in [
        ("html", "/", "text/html"),
        ("html by size", "/?sort=size&order=desc", "text/html"),
        ("text", "/", "text/plain"),
        ("json", "/", "application/json"),
    ] {
        // The first answer warms the directory cache; report the best of three after it.
        let mut best = None;
        let mut bytes = 0;
        for _ in 0..4 {
            let mut c = Conn::open(server.addr());
            let start = Instant::now();
            c.get(
                target,
                &format!("Accept: {accept}\r\nConnection: close\r\n"),
            );
            let r = c.response(false).expect("a response");
            let took = start.elapsed();
            assert_eq!(r.status, 200);
            bytes = r.body.len();
            best = Some(best.map_or(took, |b: std::time::Duration| b.min(took)));
        }
        let best = best.unwrap();
        println!(
            "{ENTRIES} entries, {form:>12}: {bytes:>9} bytes ({:.0} per entry), best of 3: {:.1} ms",
            bytes as f64 / ENTRIES as f64,
            best.as_secs_f64() * 1e3
        );
    }
}
