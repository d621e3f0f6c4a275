//! What the workers share ([`HostSite`]: files, cache, settings; [`Shared`]: counters and
//! flags), and each worker's own view of the site for the core's connections ([`WorkerSite`]:
//! the shared parts plus the worker's clock and `stat` memo).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use satchel_core::listing::ListingView;
use satchel_core::path::SafePath;
use satchel_core::serve::{Config, Site};
use satchel_core::source::{Arrival, FileSource, Metadata, SourceError, Ticket};

use crate::cache::ShardedCache;
use crate::clock::Clock;
use crate::fs::FsSource;
use crate::iopool::{Done, IoPool, Outcome, Work};
use crate::probes::ProbeMemo;

/// The server's files, cache and settings, shared by the workers.
pub(crate) struct HostSite {
    pub(crate) source: FsSource,
    pub(crate) cache: ShardedCache,
    pub(crate) config: Config,
    /// The threads that do file work for misses ([`crate::iopool`]).
    pub(crate) pool: IoPool,
}

impl HostSite {
    pub(crate) fn new(source: FsSource, cache: ShardedCache, config: Config, pool: IoPool) -> Self {
        Self {
            source,
            cache,
            config,
            pool,
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
    /// The site of worker number `worker` (its index in the I/O pool's inboxes).
    pub(crate) fn new(host: &'a HostSite, worker: usize) -> Self {
        Self {
            source: WorkerSource {
                fs: &host.source,
                memo: ProbeMemo::new(),
                cache: &host.cache,
                pool: &host.pool,
                worker,
                next_ticket: Cell::new(0),
                done: RefCell::new(HashMap::new()),
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

    /// The pool's finished jobs for this worker, kept for the requests waiting under their
    /// tickets; returns those tickets.
    pub(crate) fn collect_done(&self) -> Vec<Ticket> {
        let done = self.source.pool.take_done(self.source.worker);
        let tickets = done.iter().map(|d| d.ticket).collect();
        let mut table = self.source.done.borrow_mut();
        for d in done {
            table.entry(d.ticket.0).or_default().push(d);
        }
        tickets
    }

    /// Drops what was kept for `ticket`: its request was answered, or its connection closed.
    pub(crate) fn forget(&self, ticket: Ticket) {
        self.source.done.borrow_mut().remove(&ticket.0);
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

/// The shared file source with one worker's `stat` memo in front of its probes, and its side
/// of the I/O pool: misses are opened, read ahead and listed there, under tickets this worker
/// numbers, and their outcomes kept here until their requests are answered.
pub(crate) struct WorkerSource<'a> {
    fs: &'a FsSource,
    memo: ProbeMemo,
    cache: &'a ShardedCache,
    pool: &'a IoPool,
    worker: usize,
    next_ticket: Cell<u64>,
    /// Finished jobs by ticket.
    done: RefCell<HashMap<u64, Vec<Done>>>,
}

impl WorkerSource<'_> {
    /// The ticket a request waits under: its own, or a new one.
    fn ticket(&self, wait: Option<Ticket>) -> Ticket {
        wait.unwrap_or_else(|| {
            let n = self.next_ticket.get() + 1;
            self.next_ticket.set(n);
            Ticket(n)
        })
    }

    /// The outcome of `work` on `path` finished under `wait`, if any (taken out when `take`).
    fn finished(
        &self,
        wait: Option<Ticket>,
        work: Work,
        path: &SafePath<'_>,
        take: bool,
    ) -> Option<Outcome> {
        let mut table = self.done.borrow_mut();
        let list = table.get_mut(&wait?.0)?;
        let i = list
            .iter()
            .position(|d| d.work == work && d.path == path.as_bytes())?;
        Some(match take {
            true => list.swap_remove(i).outcome,
            false => list[i].outcome.clone(),
        })
    }
}

impl FileSource for WorkerSource<'_> {
    type File = <FsSource as FileSource>::File;
    type Listing = <FsSource as FileSource>::Listing;

    fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
        self.fs.metadata(path)
    }

    /// From the memo, else one `stat` when the cache holds an entry under the path (a hit to
    /// validate); else [`SourceError::WouldBlock`]: a miss goes straight to the pool, and the
    /// loop never waits for a `stat` of a file it does not hold.
    fn probe(&self, path: &SafePath<'_>, arrived: Arrival) -> Result<Metadata, SourceError> {
        self.memo.probe(path.as_bytes(), arrived, || {
            match self.cache.may_hold(path.as_bytes()) {
                true => self.fs.probe(path, arrived),
                false => Err(SourceError::WouldBlock),
            }
        })
    }

    fn open(&self, path: &SafePath<'_>) -> Result<(Self::File, Metadata), SourceError> {
        self.fs.open(path)
    }

    fn open_waiting(
        &self,
        path: &SafePath<'_>,
        wait: Option<Ticket>,
    ) -> Result<(Self::File, Metadata), SourceError> {
        if let Some(Outcome::Opened(opened)) = self.finished(wait, Work::Open, path, false) {
            return opened;
        }
        let ticket = self.ticket(wait);
        self.pool.open(self.worker, ticket, path.as_bytes());
        Err(SourceError::Pending(ticket))
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

    fn listing_waiting(
        &self,
        path: &SafePath<'_>,
        view: ListingView,
        wait: Option<Ticket>,
    ) -> Result<Self::Listing, SourceError> {
        if let Some(Outcome::Listed(listed)) = self.finished(wait, Work::Listing, path, true) {
            return listed;
        }
        let ticket = self.ticket(wait);
        self.pool
            .listing(self.worker, ticket, path.as_bytes(), view);
        Err(SourceError::Pending(ticket))
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
