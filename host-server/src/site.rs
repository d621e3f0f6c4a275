//! What the workers share ([`HostSite`]: files, cache, settings; [`Shared`]: counters and
//! flags), and each worker's own view of the site for the core's connections ([`WorkerSite`]:
//! the shared parts plus the worker's clock and `stat` memo).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use satchel_core::listing::ListingView;
use satchel_core::path::SafePath;
use satchel_core::serve::{Config, Site};
use satchel_core::source::{Arrival, FileSource, Metadata, SourceError};

use crate::cache::ShardedCache;
use crate::clock::Clock;
use crate::fs::FsSource;
use crate::probes::ProbeMemo;

/// The server's files, cache and settings, shared by the workers.
pub(crate) struct HostSite {
    pub(crate) source: FsSource,
    pub(crate) cache: ShardedCache,
    pub(crate) config: Config,
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

/// One worker's site: the shared files, cache and settings, with the worker's own clock (read
/// once per turn) and `stat` memo. Lives on the worker's thread; everything the source needs
/// per request comes in as an argument (`FileSource::probe`'s arrival).
pub(crate) struct WorkerSite<'a> {
    source: WorkerSource<'a>,
    cache: &'a ShardedCache,
    config: Config,
    pub(crate) clock: Clock,
}

impl<'a> WorkerSite<'a> {
    pub(crate) fn new(host: &'a HostSite) -> Self {
        Self {
            source: WorkerSource {
                fs: &host.source,
                memo: ProbeMemo::new(),
            },
            cache: &host.cache,
            config: host.config,
            clock: Clock::new(),
        }
    }

    /// Counts a socket read that returned bytes (see [`crate::probes`]).
    pub(crate) fn received(&self) -> Arrival {
        self.source.memo.received()
    }
}

impl<'a> Site for WorkerSite<'a> {
    type Source = WorkerSource<'a>;
    type Cache = ShardedCache;

    fn source(&self) -> &WorkerSource<'a> {
        &self.source
    }

    fn cache(&self) -> &ShardedCache {
        self.cache
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn unix_time(&self) -> Option<u64> {
        Some(self.clock.unix_secs())
    }
}

/// The shared file source with one worker's `stat` memo in front of its probes.
pub(crate) struct WorkerSource<'a> {
    fs: &'a FsSource,
    memo: ProbeMemo,
}

impl FileSource for WorkerSource<'_> {
    type File = <FsSource as FileSource>::File;
    type Listing = <FsSource as FileSource>::Listing;

    fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
        self.fs.metadata(path)
    }

    fn probe(&self, path: &SafePath<'_>, arrived: Arrival) -> Result<Metadata, SourceError> {
        self.memo
            .probe(path.as_bytes(), arrived, || self.fs.probe(path, arrived))
    }

    fn open(&self, path: &SafePath<'_>) -> Result<(Self::File, Metadata), SourceError> {
        self.fs.open(path)
    }

    fn file_metadata(&self, file: &Self::File) -> Result<Metadata, SourceError> {
        self.fs.file_metadata(file)
    }

    fn read_at(
        &self,
        file: &Self::File,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, SourceError> {
        self.fs.read_at(file, offset, buf)
    }

    fn listing(
        &self,
        path: &SafePath<'_>,
        view: ListingView,
    ) -> Result<Self::Listing, SourceError> {
        self.fs.listing(path, view)
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
