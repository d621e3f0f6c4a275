//! File work off the event loops: a small pool of threads per process that opens files, reads
//! the ones the cache may take into memory, and renders folder listings, for the core's
//! waiting requests (`FileSource::open_waiting`, `FileSource::listing_waiting`).
//!
//! A worker's source starts a job under the request's ticket and the connection waits; the
//! pool thread does the job, puts the outcome in the worker's inbox and wakes the worker's
//! loop (its mio `Waker`), which hands the outcome to the source and tells the connection
//! (`Connection::handle_ready`). The loop never waits for the file system on a miss: only a
//! hit's `stat` (validating a cached entry) stays on it.
//!
//! **Single flight.** Opens are keyed by path: a miss of a file whose open is in flight joins
//! it instead of starting another, so N concurrent misses of one file open and read it once.
//!
//! **Never stale.** A request that joined a job may be answered with what the job found only if
//! that is what the path named at some instant after the request arrived. So the job takes its
//! waiters (the set closes: later misses start a new job) and only then checks: the path still
//! names the version opened (`statat`, as a hit's probe), and the bytes read ahead were of that
//! version (`fstat` after the read). Every waiter arrived before that check, so the answer is
//! linearizable, exactly as a hit validated by a `stat` made after its request arrived. When
//! the check fails (the file changed meanwhile) the job starts over for the same waiters.
//!
//! **Why threads, not io_uring.** The work is `openat2` + `fstat` + `pread` + `statat`, and
//! listings (`getdents` plus an `openat2` + `fstat` per entry). io_uring runs opens and stats
//! through its own kernel worker threads anyway (they cannot complete inline), is often
//! disabled in containers (seccomp, `io_uring_disabled`), and would need `unsafe` or a runtime;
//! a miss already costs microseconds on a fast disk and milliseconds on a slow one, against
//! which a thread hand-off (a mutex, a condvar, an eventfd write: a few microseconds) is small.
//! nginx's `aio threads` makes the same choice.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use mio::Waker;
use satchel_core::listing::ListingView;
use satchel_core::path::SafePath;
use satchel_core::source::{Arrival, FileKind, FileSource, Metadata, SourceError, Ticket};

use crate::fs::{FsSource, HostFile};

/// Threads per process. Enough for a slow medium to serve 16 or so misses at once (parallel
/// I/O is what makes a network volume fast); idle threads cost a little memory only.
pub(crate) const IO_THREADS: usize = 16;
/// Attempts of an open whose file keeps changing before it is answered as last found.
const ATTEMPTS: usize = 3;

/// Stops the pool when dropped (see [`IoPool::stop`]).
pub(crate) struct StopOnDrop<'a>(pub(crate) &'a IoPool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// What an open found: the file (read ahead when the cache may take it) and its metadata.
pub(crate) type Opened = Result<(HostFile, Metadata), SourceError>;

/// What a job was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    Open,
    Listing,
}

/// A finished job, for one waiting request.
pub(crate) struct Done {
    pub(crate) ticket: Ticket,
    pub(crate) work: Work,
    pub(crate) path: Vec<u8>,
    pub(crate) outcome: Outcome,
}

/// A job's result.
#[derive(Clone)]
pub(crate) enum Outcome {
    Opened(Opened),
    Listed(Result<Vec<u8>, SourceError>),
}

/// A request waiting for a job: its worker and its ticket there.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Waiter {
    worker: usize,
    ticket: Ticket,
}

enum Job {
    Open(Vec<u8>),
    Listing {
        path: Vec<u8>,
        view: ListingView,
        waiter: Waiter,
    },
}

struct Queue {
    jobs: VecDeque<Job>,
    stop: bool,
}

/// One worker's finished jobs, and how to wake it.
struct Inbox {
    done: Mutex<Vec<Done>>,
    waker: OnceLock<Arc<Waker>>,
}

/// The pool: a queue of jobs, the opens in flight by path, and one inbox per worker.
pub(crate) struct IoPool {
    queue: Mutex<Queue>,
    wake: Condvar,
    in_flight: Mutex<HashMap<Vec<u8>, Vec<Waiter>>>,
    inboxes: Box<[Inbox]>,
    /// Files up to this size are read ahead (the largest the cache takes).
    ahead_max: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere while it was held; the data (queues, lists)
    // is consistent at every step.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl IoPool {
    /// A pool for `workers` event loops; files up to `ahead_max` bytes are read ahead.
    pub(crate) fn new(workers: usize, ahead_max: u64) -> Self {
        Self {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            in_flight: Mutex::new(HashMap::new()),
            inboxes: (0..workers)
                .map(|_| Inbox {
                    done: Mutex::new(Vec::new()),
                    waker: OnceLock::new(),
                })
                .collect(),
            ahead_max,
        }
    }

    /// Sets how to wake worker `worker` when a job of its finishes.
    pub(crate) fn set_waker(&self, worker: usize, waker: Arc<Waker>) {
        if let Some(inbox) = self.inboxes.get(worker) {
            let _ = inbox.waker.set(waker);
        }
    }

    /// Opens `path` for the request waiting under `ticket` on `worker`, joining an open of the
    /// same path in flight.
    pub(crate) fn open(&self, worker: usize, ticket: Ticket, path: &[u8]) {
        let waiter = Waiter { worker, ticket };
        {
            let mut in_flight = lock(&self.in_flight);
            if let Some(waiters) = in_flight.get_mut(path) {
                if !waiters.contains(&waiter) {
                    waiters.push(waiter);
                }
                return;
            }
            in_flight.insert(path.to_vec(), vec![waiter]);
        }
        self.push(Job::Open(path.to_vec()));
    }

    /// Renders the listing of `path` in `view` for the request waiting under `ticket`.
    pub(crate) fn listing(&self, worker: usize, ticket: Ticket, path: &[u8], view: ListingView) {
        let waiter = Waiter { worker, ticket };
        self.push(Job::Listing {
            path: path.to_vec(),
            view,
            waiter,
        });
    }

    fn push(&self, job: Job) {
        lock(&self.queue).jobs.push_back(job);
        self.wake.notify_one();
    }

    /// The jobs of `worker` finished since the last call.
    pub(crate) fn take_done(&self, worker: usize) -> Vec<Done> {
        self.inboxes
            .get(worker)
            .map(|inbox| std::mem::take(&mut *lock(&inbox.done)))
            .unwrap_or_default()
    }

    /// Ends the threads once the queue is empty (after the workers have stopped).
    pub(crate) fn stop(&self) {
        lock(&self.queue).stop = true;
        self.wake.notify_all();
    }

    /// A pool thread: does jobs until [`IoPool::stop`].
    pub(crate) fn run(&self, fs: &FsSource) {
        loop {
            let job = {
                let mut q = lock(&self.queue);
                loop {
                    if let Some(job) = q.jobs.pop_front() {
                        break job;
                    }
                    if q.stop {
                        return;
                    }
                    q = self.wake.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            match job {
                Job::Open(path) => {
                    let (waiters, opened) = self.open_checked(fs, &path);
                    self.deliver(&waiters, Work::Open, &path, &Outcome::Opened(opened));
                }
                Job::Listing { path, view, waiter } => {
                    let listed = match SafePath::from_normalized(&path) {
                        Ok(safe) => fs.listing(&safe, view),
                        Err(_) => Err(SourceError::NotFound),
                    };
                    self.deliver(&[waiter], Work::Listing, &path, &Outcome::Listed(listed));
                }
            }
        }
    }

    /// Opens `path` (reading it ahead when the cache may take it), closes the set of its
    /// waiters, and checks that what was found is what the path names now; starts over while
    /// it is not (at most [`ATTEMPTS`] times).
    fn open_checked(&self, fs: &FsSource, path: &[u8]) -> (Vec<Waiter>, Opened) {
        let Ok(safe) = SafePath::from_normalized(path) else {
            let waiters = lock(&self.in_flight).remove(path).unwrap_or_default();
            return (waiters, Err(SourceError::NotFound));
        };
        let mut waiters = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let opened = fs.open(&safe).map(|(mut file, meta)| {
                if meta.kind == FileKind::File && meta.version.len <= self.ahead_max {
                    file.read_ahead(fs, &meta);
                }
                (file, meta)
            });
            let waiters = waiters
                .get_or_insert_with(|| lock(&self.in_flight).remove(path).unwrap_or_default());
            if attempt >= ATTEMPTS || still_named(fs, &safe, &opened, self.ahead_max) {
                return (std::mem::take(waiters), opened);
            }
        }
    }

    fn deliver(&self, waiters: &[Waiter], work: Work, path: &[u8], outcome: &Outcome) {
        for w in waiters {
            let Some(inbox) = self.inboxes.get(w.worker) else {
                continue;
            };
            lock(&inbox.done).push(Done {
                ticket: w.ticket,
                work,
                path: path.to_vec(),
                outcome: outcome.clone(),
            });
            if let Some(waker) = inbox.waker.get() {
                let _ = waker.wake();
            }
        }
    }
}

/// Whether `path` names now what `opened` found: the same version of a file (whose bytes, when
/// it should have been read ahead, were read as that version), a folder, or the same error.
fn still_named(fs: &FsSource, path: &SafePath<'_>, opened: &Opened, ahead_max: u64) -> bool {
    let now = fs.probe(path, Arrival::UNKNOWN);
    match (opened, now) {
        (Ok((file, meta)), Ok(now)) if meta.kind == FileKind::File => {
            let read_as_one = file.is_read_ahead() || meta.version.len > ahead_max;
            now.kind == FileKind::File && now.version == meta.version && read_as_one
        }
        (Ok((_, meta)), Ok(now)) => now.kind == meta.kind,
        (Err(e), Err(now)) => *e == now,
        _ => false,
    }
}
