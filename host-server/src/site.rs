//! What the workers share: the core's view of the server ([`HostSite`]) and the process-wide
//! counters and flags ([`Shared`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use satchel_core::serve::{Config, Site};

use crate::cache::ShardedCache;
use crate::fs::FsSource;

/// The server as the core's connections see it: files, cache, settings, the time of day.
pub(crate) struct HostSite {
    source: FsSource,
    cache: ShardedCache,
    config: Config,
}

impl HostSite {
    pub(crate) fn new(source: FsSource, cache: ShardedCache, config: Config) -> Self {
        Self {
            source,
            cache,
            config,
        }
    }

    pub(crate) fn source_root(&self) -> &Path {
        self.source.root_path()
    }
}

impl Site for HostSite {
    type Source = FsSource;
    type Cache = ShardedCache;

    fn source(&self) -> &FsSource {
        &self.source
    }

    fn cache(&self) -> &ShardedCache {
        &self.cache
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn unix_time(&self) -> Option<u64> {
        Some(crate::clock::unix_secs())
    }
}

/// Process-wide state of the workers.
pub(crate) struct Shared {
    /// Connections open now, across all workers.
    pub(crate) connections: AtomicUsize,
    /// The cap on `connections` (after the open-file limit was applied).
    pub(crate) max_connections: usize,
    /// Requests answered.
    pub(crate) requests: AtomicUsize,
    /// Set on SIGINT/SIGTERM: stop accepting, finish what is in flight.
    pub(crate) shutdown: AtomicBool,
    /// No access log.
    pub(crate) quiet: bool,
}

impl Shared {
    pub(crate) fn new(max_connections: usize, quiet: bool) -> Self {
        Self {
            connections: AtomicUsize::new(0),
            max_connections,
            requests: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            quiet,
        }
    }

    /// Takes a connection slot if the cap allows.
    pub(crate) fn try_admit(&self) -> bool {
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_connections).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a connection slot back.
    pub(crate) fn release(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}
