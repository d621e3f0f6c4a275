//! A worker's clock: read once per turn of the event loop, not once per use.
//!
//! Every request needs the monotonic time (timeouts) and the time of day (`Date`); reading the
//! system clock for each cost about 1.5 % of the server's CPU in profiles. A worker calls
//! [`Clock::tick`] each time `epoll_wait` returns, and everything handled in that turn uses the
//! same instant: timeouts are swept every 250 ms and `Date` has a resolution of one second, so a
//! turn (microseconds) is well within both. Each worker owns its clock (in its
//! [`WorkerSite`](crate::site::WorkerSite)).

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use satchel_core::time::Instant;

/// The instants of a worker's current turn.
pub(crate) struct Clock {
    now: Cell<(Instant, u64)>,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            now: Cell::new(read()),
        }
    }

    /// Reads the clocks for the current turn.
    pub(crate) fn tick(&self) {
        self.now.set(read());
    }

    /// The monotonic instant of the current turn.
    pub(crate) fn now(&self) -> Instant {
        self.now.get().0
    }

    /// The time of day (Unix seconds) of the current turn.
    pub(crate) fn unix_secs(&self) -> u64 {
        self.now.get().1
    }
}

/// Reads the system clocks: monotonic ms since the process's first reading, and Unix seconds.
fn read() -> (Instant, u64) {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    let mono = Instant::from_millis(u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX));
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (mono, unix)
}
