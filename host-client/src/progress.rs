//! A one-line progress bar on stderr: name, percentage, bytes, rate and ETA.
//!
//! Drawn only when stderr is a terminal and `--quiet` is off, at most ten times a second;
//! otherwise every call is a no-op, so piping or redirecting stderr gets nothing.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const REDRAW: Duration = Duration::from_millis(100);
const BAR: usize = 24;

/// The progress of one download.
pub(crate) struct Progress {
    enabled: bool,
    name: String,
    start: Instant,
    last_draw: Option<Instant>,
    /// Bytes already on disk when this transfer started (resumed downloads).
    base: u64,
    done: u64,
    total: Option<u64>,
}

impl Progress {
    /// A bar for `name`, shown only when `show` and stderr is a terminal.
    pub(crate) fn new(name: &str, show: bool) -> Self {
        Self {
            enabled: show && std::io::stderr().is_terminal(),
            // Names can come from a server's listing: nothing a terminal would act on.
            name: name
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
            start: Instant::now(),
            last_draw: None,
            base: 0,
            done: 0,
            total: None,
        }
    }

    /// (Re)starts counting: `base` bytes are already saved, `total` is the whole size if known.
    pub(crate) fn begin(&mut self, base: u64, total: Option<u64>) {
        self.start = Instant::now();
        self.base = base;
        self.done = base;
        self.total = total;
    }

    /// Counts `n` more bytes saved.
    pub(crate) fn add(&mut self, n: u64) {
        self.done += n;
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_none_or(|t| now.duration_since(t) >= REDRAW)
        {
            self.last_draw = Some(now);
            self.draw(now);
        }
    }

    /// Draws the final state and ends the line.
    pub(crate) fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            self.draw(Instant::now());
            eprintln!();
            self.last_draw = None;
        }
    }

    fn draw(&self, now: Instant) {
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-3);
        let rate = (self.done - self.base) as f64 / secs;
        let mut line = format!("\r{:<24.24} ", self.name);
        match self.total.filter(|&t| t > 0) {
            Some(total) => {
                let frac = (self.done as f64 / total as f64).clamp(0.0, 1.0);
                let filled = (frac * BAR as f64) as usize;
                line += &format!(
                    "{:>3}% [{}{}] {}/{} {}/s",
                    (frac * 100.0) as u32,
                    "#".repeat(filled),
                    "-".repeat(BAR - filled),
                    human(self.done),
                    human(total),
                    human(rate as u64)
                );
                if rate > 0.0 {
                    let eta = (total.saturating_sub(self.done) as f64 / rate) as u64;
                    line += &format!(" ETA {}:{:02}", eta / 60, eta % 60);
                }
            }
            None => line += &format!("{} {}/s", human(self.done), human(rate as u64)),
        }
        line += "\x1b[K";
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }
}

/// `1536` -> `1.5 KiB`.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(256 << 20), "256.0 MiB");
    }
}
