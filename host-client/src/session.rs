//! Downloads from one server over one kept-alive connection: the files (atomic saves, resume),
//! listings and mirroring. Every protocol decision (redirects, retries and their backoff,
//! resume, timeouts) is the core's download session ([`Download`]); this module only wires it
//! to files, sockets and the progress bar.
//!
//! The file protocol (PROTOCOL.md, "The client"):
//! 1. the body goes to `NAME.part`, never to `NAME`; the validator (strong `ETag`, else
//!    `Last-Modified`) goes to `NAME.part.meta` so `--continue` can send `If-Range` later;
//! 2. at the end the byte count is checked against what the session saved, the part is
//!    fsynced, renamed over `NAME`, and the folder is fsynced;
//! 3. so `NAME` holds the whole file or is untouched, whatever happens before the rename
//!    (server death, reset, disk full, kill -9).
//!
//! A mirror ([`crate::mirror`]) batches step 2: many parts are written, one `syncfs` makes them
//! all durable, then each is renamed (the same promise for a fraction of the `fsync`s), on a
//! thread of its own while the downloads go on.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, SystemTime};

use satchel_core::client::digest::Sha256 as Digest256;
use satchel_core::client::nal::{Buffers, DownloadError, Jobs, Sink};
use satchel_core::client::pipeline::Pipeline;
use satchel_core::client::session::{self, Config, Download, Resume, Retry, Saved, Start};
use satchel_core::client::target::decode_name;
use satchel_core::client::{ListingEntry, Plan, Url};
use satchel_core::http::date::{format_http_date, parse_http_date};
use satchel_core::time::{Duration, Instant};
use sha2::{Digest as _, Sha256};

use crate::fail::{Fail, EXIT_HTTP, EXIT_INTEGRITY, EXIT_NETWORK, EXIT_NOT_FOUND};
use crate::net::Net;
use crate::progress::Progress;

/// Receive buffer: bounds the response head and carries the body in chunks of this size.
const RX: usize = 256 * 1024;
/// Request head buffer.
const TX: usize = 8 * 1024;
/// Largest folder listing read into memory.
const MAX_LISTING: usize = 16 << 20;

/// What the user asked for.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Replace an existing file.
    pub(crate) force: bool,
    /// Resume a `.part` left by an earlier run.
    pub(crate) resume: bool,
    /// Retries after a transient failure (see the core's session).
    pub(crate) retries: u32,
    /// Connect and head deadline, and the body's progress window.
    pub(crate) timeout: Duration,
    /// Show a progress bar (when stderr is a terminal).
    pub(crate) progress: bool,
    /// Print retry notices.
    pub(crate) verbose: bool,
    /// Flush each file to disk before its rename (`--no-sync` turns it off).
    pub(crate) sync: bool,
}

/// How one file is saved, beyond [`Options`].
#[derive(Default)]
pub(crate) struct Save<'a> {
    /// Create this folder (and its parents) when the first byte arrives, not before.
    pub(crate) make_dir: Option<&'a Path>,
    /// A file a mirror saved before: its `ETag` and `Last-Modified` (when it is still the copy
    /// saved), sent as `If-None-Match` / `If-Modified-Since`; it may be replaced without `--force`.
    pub(crate) copy: Option<(Option<&'a str>, Option<&'a str>)>,
    /// Defer the durability step to a batch (a mirror); `None` fsyncs this file on its own.
    pub(crate) batch: Option<&'a mut Batch>,
}

/// What a successful [`Session::download`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Got {
    /// The server answered 304: the copy on disk is current and was kept.
    pub(crate) kept: bool,
    /// The response's strong `ETag`, if any (for the mirror's record).
    pub(crate) etag: Option<String>,
    /// The response's `Last-Modified`, if any.
    pub(crate) last_modified: Option<String>,
}

/// Bodies up to this size get no `.part.meta`: a part this small is fetched again rather than
/// resumed, which saves a mirror of small files two file operations each.
const NOT_WORTH_RESUMING: u64 = 64 * 1024;

/// Parts written but not yet renamed: made durable together by one `syncfs`, then renamed.
#[derive(Default)]
pub(crate) struct Batch {
    /// Part, its meta if one may exist, final name, and the caller's tag.
    pending: Vec<(PathBuf, Option<PathBuf>, PathBuf, usize)>,
    /// The tag the next pushed part gets (a mirror: the job's index).
    pub(crate) tag: usize,
}

impl Batch {
    /// How many parts wait.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Moves every part of `other` into this batch.
    pub(crate) fn append(&mut self, other: &mut Self) {
        self.pending.append(&mut other.pending);
    }

    /// Makes every pending part durable with one `syncfs`, renames each over its name, and
    /// fsyncs the folders that changed.
    ///
    /// # Errors
    /// The first file system error, with the tags of the parts not renamed (they stay parts).
    pub(crate) fn flush(&mut self, sync: bool) -> Result<(), (Fail, Vec<usize>)> {
        let Some((part, _, _, _)) = self.pending.first() else {
            return Ok(());
        };
        let synced = if sync {
            File::open(part).and_then(|any| syncfs(&any))
        } else {
            Ok(())
        };
        if let Err(e) = synced {
            let tags = self.pending.drain(..).map(|p| p.3).collect();
            return Err((Fail::local("syncfs", &e), tags));
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut failed: Option<(Fail, Vec<usize>)> = None;
        for (part, meta, dest, tag) in self.pending.drain(..) {
            if let Err(e) = fs::rename(&part, &dest) {
                failed
                    .get_or_insert_with(|| (Fail::local(dest.display(), &e), Vec::new()))
                    .1
                    .push(tag);
                continue;
            }
            if let Some(meta) = meta {
                let _ = remove_if_present(&meta);
            }
            let dir = parent_dir(&dest).to_path_buf();
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        for dir in dirs.iter().filter(|_| sync) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// `syncfs(2)` on the file system holding `file`: every dirty page of it reaches the disk.
fn syncfs(file: &File) -> std::io::Result<()> {
    rustix::fs::syncfs(file).map_err(std::io::Error::from)
}

/// A server and the connection to it.
pub(crate) struct Session {
    host: String,
    port: u16,
    host_header: String,
    opts: Options,
    net: Option<Net>,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

/// A whole-file SHA-256 the server announced, and the hash of what is saved so far.
struct Check {
    hasher: Sha256,
    expected: Digest256,
}

impl Check {
    /// Starts checking against `expected`; for a resumed download the bytes already in `part`
    /// (up to `offset`) are hashed first.
    fn start(expected: Digest256, part: &Path, offset: u64) -> Result<Self, Fail> {
        let mut hasher = Sha256::new();
        if offset > 0 {
            let file = File::open(part).map_err(|e| Fail::local(part.display(), &e))?;
            let copied = std::io::copy(&mut std::io::Read::take(file, offset), &mut hasher)
                .map_err(|e| Fail::local(part.display(), &e))?;
            if copied != offset {
                return Err(Fail::integrity(
                    "the partly saved file shrank while resuming",
                ));
            }
        }
        Ok(Self { hasher, expected })
    }
}

/// Writes a download's body into its part file.
struct PartFile<'a> {
    part: PathBuf,
    meta: PathBuf,
    /// What the user asked for, for messages.
    label: String,
    verbose: bool,
    progress: Progress,
    file: Option<File>,
    check: Option<Check>,
    /// Created at the first byte (see [`Save::make_dir`]).
    make_dir: Option<&'a Path>,
    /// Bytes of an earlier run's part that this run resumes from (0: none).
    resumed_from: u64,
    /// Only asking whether the saved file is current: a body is not wanted.
    probe: bool,
    /// A part or its meta may exist (left by an earlier run, or written by this one).
    meta_maybe: bool,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl PartFile<'_> {
    /// A sink for `part` (and its `meta`) with nothing written yet and no progress bar.
    fn new(part: PathBuf, meta: PathBuf, label: &str, opts: &Options) -> Self {
        Self {
            part,
            meta,
            label: label.to_owned(),
            verbose: opts.verbose,
            progress: Progress::new(label, false),
            file: None,
            check: None,
            make_dir: None,
            resumed_from: 0,
            probe: false,
            meta_maybe: false,
            etag: None,
            last_modified: None,
        }
    }

    fn local(&self, e: &std::io::Error) -> Fail {
        Fail::local(&self.label, e)
    }
}

impl Sink for PartFile<'_> {
    type Error = Fail;

    fn start(&mut self, s: &Start<'_>) -> Result<(), Fail> {
        self.check = None;
        let text = |v: Option<&[u8]>| {
            v.and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        };
        self.etag = text(s.response.etag.filter(|e| !e.starts_with(b"W/")));
        self.last_modified = text(s.response.last_modified);
        if self.probe && !matches!(s.plan, Plan::Complete) {
            return Err(Fail::local(
                &self.label,
                &std::io::Error::other(
                    "already exists and is not the server's current version (use --force to replace it)",
                ),
            ));
        }
        if let (Some(dir), Plan::Write { .. } | Plan::Append { .. }) = (self.make_dir, s.plan) {
            fs::create_dir_all(dir).map_err(|e| Fail::local(dir.display(), &e))?;
        }
        let (offset, total) = match s.plan {
            Plan::Write { total } => {
                if self.resumed_from > 0 && self.verbose {
                    eprintln!(
                        "satchel-client: {}: changed on the server since the earlier run; starting over",
                        self.label
                    );
                }
                self.resumed_from = 0;
                let small = total.is_some_and(|t| t <= NOT_WORTH_RESUMING);
                match s.validator.filter(|_| !small) {
                    Some(v) => {
                        self.meta_maybe = true;
                        fs::write(&self.meta, v)
                    }
                    None if self.meta_maybe => remove_if_present(&self.meta),
                    None => Ok(()),
                }
                .map_err(|e| self.local(&e))?;
                self.file = Some(open_part(&self.part, true).map_err(|e| self.local(&e))?);
                (0, total)
            }
            Plan::Append { offset, total } => {
                let file = open_part(&self.part, false).map_err(|e| self.local(&e))?;
                let len = file.metadata().map_err(|e| self.local(&e))?.len();
                if len != offset {
                    return Err(self.local(&std::io::Error::other(
                        "the part file changed while resuming",
                    )));
                }
                self.file = Some(file);
                (offset, total)
            }
            Plan::Complete | Plan::Restart => {
                self.file = None;
                return Ok(());
            }
        };
        if let Some(expected) = s.digest {
            self.check = Some(Check::start(expected, &self.part, offset)?);
        }
        self.progress.begin(offset, total);
        Ok(())
    }

    fn body(&mut self, data: &[u8]) -> Result<(), Fail> {
        if let Some(file) = &mut self.file {
            file.write_all(data)
                .map_err(|e| Fail::local(&self.label, &e))?;
            if let Some(check) = &mut self.check {
                check.hasher.update(data);
            }
            self.progress.add(data.len() as u64);
        }
        Ok(())
    }

    fn retry(&mut self, r: &Retry) {
        self.progress.finish();
        if self.verbose {
            eprintln!(
                "satchel-client: {}: {}; retry {}/{} in {} ms",
                self.label,
                r.cause,
                r.attempt,
                r.of,
                r.wait.as_millis()
            );
        }
    }
}

/// Collects a small body (a listing) in memory.
#[derive(Default)]
struct Collect {
    body: Vec<u8>,
}

impl Sink for Collect {
    type Error = Fail;

    fn start(&mut self, s: &Start<'_>) -> Result<(), Fail> {
        match s.plan {
            Plan::Append { offset, .. } => self.body.truncate(offset as usize),
            _ => self.body.clear(),
        }
        Ok(())
    }

    fn body(&mut self, data: &[u8]) -> Result<(), Fail> {
        if self.body.len() + data.len() > MAX_LISTING {
            return Err(Fail::new(EXIT_HTTP, "listing larger than 16 MiB"));
        }
        self.body.extend_from_slice(data);
        Ok(())
    }
}

/// Server-sent bytes made safe to print: invalid UTF-8 becomes U+FFFD and control characters
/// (C0 and C1, which terminals may act on) become `?`.
pub(crate) fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Opens the part file without following a symbolic link planted in its place.
fn open_part(part: &Path, truncate: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).custom_flags(libc::O_NOFOLLOW);
    if truncate {
        o.create(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(part)
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `dest` with `suffix` appended to its file name.
fn with_suffix(dest: &Path, suffix: &str) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Downloads a pipeline holds at once (sent up to `--pipeline` deep; the others wait their
/// turn or a backoff).
const SLOTS: usize = 32;

/// One file to download, prepared (no network yet): where its body goes, and what its session
/// is told.
pub(crate) struct FileJob<'a> {
    dest: PathBuf,
    sink: PartFile<'a>,
    /// A part left by an earlier run: its length and validator.
    resume: Option<(u64, String)>,
    /// `If-None-Match` and `If-Modified-Since` for a copy saved before.
    copy: Option<(Option<String>, Option<String>)>,
}

impl<'a> FileJob<'a> {
    /// Checks `dest` and any part an earlier run left (and says what it does with it).
    ///
    /// # Errors
    /// A [`Fail`] when `dest` may not be written (it exists, or is a folder).
    pub(crate) fn prepare(
        opts: &Options,
        dest: &Path,
        label: &str,
        make_dir: Option<&'a Path>,
        copy: Option<(Option<&str>, Option<&str>)>,
    ) -> Result<Self, Fail> {
        let exists = |why: &str| Fail::local(label, &std::io::Error::other(why.to_owned()));
        match fs::symlink_metadata(dest) {
            Ok(m) if m.is_dir() => return Err(exists("is a folder here")),
            Ok(_) if opts.force || copy.is_some() => {}
            // `--continue` on a file that exists: a conditional request on its modification
            // time (which the client set from `Last-Modified` when it saved it); 304 is
            // success.
            Ok(m) if opts.resume && m.is_file() => {
                let date = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| format_http_date(d.as_secs()))
                    .and_then(|d| String::from_utf8(d.to_vec()).ok());
                return Ok(Self {
                    dest: dest.to_path_buf(),
                    sink: PartFile {
                        probe: true,
                        ..PartFile::new(PathBuf::new(), PathBuf::new(), label, opts)
                    },
                    resume: None,
                    copy: Some((None, date)),
                });
            }
            Ok(_) => return Err(exists("already exists (use --force to replace it)")),
            Err(_) => {}
        }
        let part = with_suffix(dest, ".part");
        let meta = with_suffix(dest, ".part.meta");
        let mut resume = None;
        let part_left = fs::symlink_metadata(&part);
        if let Ok(m) = &part_left {
            let v = fs::read_to_string(&meta).unwrap_or_default();
            let v = v.trim();
            if m.is_file() && !v.is_empty() && m.len() > 0 {
                resume = Some((m.len(), v.to_owned()));
                if !opts.resume && opts.verbose {
                    eprintln!(
                        "satchel-client: {label}: resuming from byte {} of the part an earlier run left ({})",
                        m.len(),
                        part.display()
                    );
                }
            } else if opts.verbose {
                eprintln!(
                    "satchel-client: {label}: starting over: the part an earlier run left ({}) cannot be resumed",
                    part.display()
                );
            }
        }
        let offset = resume.as_ref().map_or(0, |(offset, _)| *offset);
        let sink = PartFile {
            progress: Progress::new(label, opts.progress),
            make_dir,
            resumed_from: offset,
            meta_maybe: part_left.is_ok(),
            ..PartFile::new(part, meta, label, opts)
        };
        let owned = |v: Option<&str>| v.map(str::to_owned);
        Ok(Self {
            dest: dest.to_path_buf(),
            sink,
            // A resumed part asks with If-Range; the copy's validators would contradict it.
            copy: copy
                .filter(|_| resume.is_none())
                .map(|(etag, date)| (owned(etag), owned(date))),
            resume,
        })
    }

    /// After the download: checks the digest, then saves the part under its name (or leaves
    /// that to `batch`); a failure keeps a resumable part and says so, or removes bytes that
    /// cannot be trusted.
    fn complete(
        mut self,
        opts: &Options,
        outcome: Result<(Saved, bool), Fail>,
        batch: Option<&mut Batch>,
    ) -> Result<Got, Fail> {
        self.sink.progress.finish();
        let label = self.sink.label.clone();
        if self.sink.probe {
            let (_, kept) = outcome?;
            if !kept {
                return Err(Fail::local(
                    &label,
                    &std::io::Error::other("already exists (use --force to replace it)"),
                ));
            }
            if opts.verbose {
                eprintln!("satchel-client: {label}: already complete");
            }
            return Ok(Got {
                kept: true,
                ..Got::default()
            });
        }
        let result = self.save(opts, outcome, batch);
        let (part, meta) = (&self.sink.part, &self.sink.meta);
        match &result {
            Err(f) if f.code == EXIT_INTEGRITY => {
                // Bytes we cannot trust must not be resumed from later.
                let _ = remove_if_present(part);
                let _ = remove_if_present(meta);
            }
            Err(f) if f.code == EXIT_NETWORK => {
                let kept = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
                if kept > 0 && meta.exists() {
                    return Err(Fail::new(
                        f.code,
                        format!(
                            "{f}; {} keeps {kept} bytes, and a rerun (or --continue) resumes it",
                            part.display()
                        ),
                    ));
                }
            }
            _ => {}
        }
        result
    }

    fn save(
        &mut self,
        opts: &Options,
        outcome: Result<(Saved, bool), Fail>,
        batch: Option<&mut Batch>,
    ) -> Result<Got, Fail> {
        let (saved, kept) = outcome?;
        let sink = &mut self.sink;
        let label = sink.label.as_str();
        let got = Got {
            kept,
            etag: sink.etag.take(),
            last_modified: sink.last_modified.take(),
        };
        if kept {
            return Ok(got);
        }
        if let Some(check) = sink.check.take() {
            if check.hasher.finalize().as_slice() != check.expected {
                return Err(Fail::integrity(format!(
                    "{label}: SHA-256 differs from the digest the server announced"
                )));
            }
        }
        let file = match sink.file.take() {
            Some(file) => file,
            None => open_part(&sink.part, false).map_err(|e| Fail::local(label, &e))?,
        };
        let mtime = got
            .last_modified
            .as_deref()
            .and_then(|d| parse_http_date(d.as_bytes()))
            .map(|secs| SystemTime::UNIX_EPOCH + StdDuration::from_secs(secs));
        let meta = sink.meta_maybe.then_some(sink.meta.as_path());
        finish(
            file,
            saved.len,
            mtime,
            label,
            (&sink.part, meta, &self.dest),
            batch,
            opts.sync,
        )?;
        Ok(got)
    }
}

/// A [`FileJob`]'s part to resume from, as the session takes it.
fn resume_of(resume: &Option<(u64, String)>) -> Option<Resume<'_>> {
    resume.as_ref().map(|(offset, validator)| Resume {
        offset: *offset,
        validator,
    })
}

/// A [`FileJob`]'s conditional validators, as the session takes them.
fn copy_of(
    copy: &Option<(Option<String>, Option<String>)>,
) -> Option<(Option<&str>, Option<&str>)> {
    copy.as_ref()
        .map(|(etag, date)| (etag.as_deref(), date.as_deref()))
}

/// The files of a [`Session::download_pipelined`], as the core's pipeline driver sees them.
struct Piped<'p, 't, 'b, F, G> {
    host: &'p str,
    port: u16,
    host_header: &'p str,
    opts: &'p Options,
    config: Config<'static>,
    /// Each slot's file and its tag.
    files: Vec<Option<(usize, FileJob<'t>)>>,
    last_connect_error: Arc<Mutex<String>>,
    next: F,
    done: G,
    batch: Option<&'b mut Batch>,
}

impl<'p, 't: 'p, F, G> Jobs<'p, SLOTS> for Piped<'p, 't, '_, F, G>
where
    F: FnMut() -> Option<(usize, &'t str, Result<FileJob<'t>, Fail>)>,
    G: FnMut(usize, Result<Got, Fail>, Option<&mut Batch>),
{
    type Error = Fail;

    fn refill(&mut self, pipeline: &mut Pipeline<'p, SLOTS>, now: Instant) {
        while pipeline.has_room() {
            let Some((tag, target, prepared)) = (self.next)() else {
                return;
            };
            let file = match prepared {
                Ok(file) => file,
                Err(fail) => {
                    (self.done)(tag, Err(fail), self.batch.as_deref_mut());
                    continue;
                }
            };
            let url = Url {
                host: self.host,
                port: self.port,
                target,
            };
            let resume = resume_of(&file.resume);
            let made = Download::new(url, self.host_header, self.config, resume, false, now);
            let mut download = match made {
                Ok(d) => d,
                Err(e) => {
                    (self.done)(
                        tag,
                        Err(Fail::usage(format!("{target}: {e}"))),
                        self.batch.as_deref_mut(),
                    );
                    continue;
                }
            };
            if let Some((etag, date)) = copy_of(&file.copy) {
                download.set_conditional(etag, date);
            }
            if let Ok(slot) = pipeline.push(download) {
                self.files[slot] = Some((tag, file));
            }
        }
    }

    fn start(&mut self, slot: usize, start: &Start<'_>) -> Result<(), Fail> {
        match self.files.get_mut(slot).and_then(Option::as_mut) {
            Some((_, file)) => file.sink.start(start),
            None => Ok(()),
        }
    }

    fn body(&mut self, slot: usize, data: &[u8]) -> Result<(), Fail> {
        match self.files.get_mut(slot).and_then(Option::as_mut) {
            Some((_, file)) => file.sink.body(data),
            None => Ok(()),
        }
    }

    fn retry(&mut self, slot: usize, retry: &Retry) {
        if let Some((_, file)) = self.files.get_mut(slot).and_then(Option::as_mut) {
            file.sink.retry(retry);
        }
    }

    fn done(
        &mut self,
        slot: usize,
        download: Download<'p>,
        result: Result<Saved, DownloadError<Fail>>,
    ) {
        let Some((tag, file)) = self.files.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let last_connect_error = self
            .last_connect_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        let outcome = download_outcome(
            result,
            &download,
            (self.host, self.port, &last_connect_error),
            self.opts.timeout,
        );
        if let Some(batch) = self.batch.as_deref_mut() {
            batch.tag = tag;
        }
        let got = file.complete(self.opts, outcome, self.batch.as_deref_mut());
        (self.done)(tag, got, self.batch.as_deref_mut());
    }
}

/// What a download's end means for the caller: what it saved and whether the copy was kept
/// (a 304), or the failure for the user.
fn download_outcome(
    result: Result<Saved, DownloadError<Fail>>,
    download: &Download<'_>,
    server: (&str, u16, &str),
    timeout: Duration,
) -> Result<(Saved, bool), Fail> {
    let target = download.target();
    result
        .map_err(|e| match e {
            DownloadError::Sink(fail) => fail,
            DownloadError::Encode(e) => Fail::usage(format!("{target}: {e}")),
            DownloadError::Session(e) => session_fail(&e, download, server, timeout),
            _ => Fail::new(EXIT_NETWORK, "download failed"),
        })
        .map(|saved| (saved, download.not_modified()))
}

impl Session {
    /// A session with `host:port`; connects on first use.
    pub(crate) fn new(host: &str, port: u16, opts: Options) -> Self {
        let host_header = if port == 80 {
            host.to_owned()
        } else {
            format!("{host}:{port}")
        };
        Self {
            host: host.to_owned(),
            port,
            host_header,
            opts,
            net: None,
            tx: vec![0; TX],
            rx: vec![0; RX],
        }
    }

    /// Another session with the same server, on its own connection.
    pub(crate) fn sibling(&self, opts: Options) -> Self {
        Self::new(&self.host, self.port, opts)
    }

    /// Whether this session talks to `host:port`.
    pub(crate) fn is_for(&self, host: &str, port: u16) -> bool {
        self.host.eq_ignore_ascii_case(host) && self.port == port
    }

    /// Runs one core download session of `target` into `sink`.
    fn run<K: Sink<Error = Fail>>(
        &mut self,
        target: &str,
        accept: Option<&str>,
        resume: Option<Resume<'_>>,
        sink: &mut K,
        copy: Option<(Option<&str>, Option<&str>)>,
    ) -> Result<(Saved, bool), Fail> {
        let net = match &mut self.net {
            Some(net) => net,
            None => self
                .net
                .insert(Net::new(&self.host, self.port).map_err(|e| Fail::local("poll", &e))?),
        };
        let url = Url {
            host: &self.host,
            port: self.port,
            target,
        };
        let config = Config {
            timeout: self.opts.timeout,
            retries: self.opts.retries,
            head_capacity: self.rx.len(),
            accept,
        };
        let connected = net.is_connected();
        let mut download =
            Download::new(url, &self.host_header, config, resume, connected, net.now())
                .map_err(|e| Fail::usage(format!("{target}: {e}")))?;
        if let Some((etag, date)) = copy {
            download.set_conditional(etag, date);
        }
        let buffers = Buffers {
            tx: &mut self.tx,
            rx: &mut self.rx,
        };
        let result = net.download(&mut download, buffers, sink);
        let last_connect_error = net
            .last_connect_error()
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        download_outcome(
            result,
            &download,
            (&self.host, self.port, &last_connect_error),
            self.opts.timeout,
        )
    }

    /// Downloads `target` into `dest` (see the module doc for the file protocol).
    ///
    /// A `.part` (with its validator) left by an earlier run is resumed, with or without
    /// `--continue`, and said so; a part that cannot be resumed is started over, and said so.
    /// With `--continue`, an existing `dest` is checked against the server
    /// (`If-Modified-Since` its modification time): unchanged is success, "already complete".
    ///
    /// # Errors
    /// A [`Fail`] with the exit code of what went wrong; `dest` is then untouched.
    pub(crate) fn download(
        &mut self,
        target: &str,
        dest: &Path,
        label: &str,
        save: Save<'_>,
    ) -> Result<Got, Fail> {
        let mut file = FileJob::prepare(&self.opts, dest, label, save.make_dir, save.copy)?;
        let FileJob {
            sink, resume, copy, ..
        } = &mut file;
        let outcome = self.run(target, None, resume_of(resume), sink, copy_of(copy));
        file.complete(&self.opts, outcome, save.batch)
    }

    /// Downloads files over one connection, pipelined `depth` requests deep (see the core's
    /// `client::pipeline`): `next` hands out the next file (a tag, its target, and the file
    /// prepared, or why it cannot be), `done` gets each file's result with its tag and the
    /// batch its part went to (without a batch, each file is flushed and renamed on its own).
    ///
    /// # Errors
    /// A [`Fail`] when the connection's poller cannot be made (nothing was fetched).
    pub(crate) fn download_pipelined<'t>(
        &mut self,
        depth: usize,
        next: impl FnMut() -> Option<(usize, &'t str, Result<FileJob<'t>, Fail>)>,
        done: impl FnMut(usize, Result<Got, Fail>, Option<&mut Batch>),
        batch: Option<&mut Batch>,
    ) -> Result<(), Fail> {
        let host = self.host.clone();
        let host_header = self.host_header.clone();
        let net = match &mut self.net {
            Some(net) => net,
            None => self
                .net
                .insert(Net::new(&self.host, self.port).map_err(|e| Fail::local("poll", &e))?),
        };
        let mut jobs = Piped {
            host: &host,
            port: self.port,
            host_header: &host_header,
            opts: &self.opts,
            config: Config {
                timeout: self.opts.timeout,
                retries: self.opts.retries,
                head_capacity: self.rx.len(),
                accept: None,
            },
            files: (0..SLOTS).map(|_| None).collect(),
            last_connect_error: net.last_connect_error(),
            next,
            done,
            batch,
        };
        let mut pipeline: Box<Pipeline<'_, SLOTS>> = Box::new(Pipeline::new(depth));
        let buffers = Buffers {
            tx: &mut self.tx,
            rx: &mut self.rx,
        };
        net.pipeline(&mut pipeline, buffers, &mut jobs);
        Ok(())
    }

    /// Fetches a small text resource (a listing), following redirects; returns its body.
    ///
    /// # Errors
    /// A [`Fail`] for network trouble, an error status, or a body that is not `text/plain`.
    pub(crate) fn fetch_listing(&mut self, target: &str) -> Result<Vec<u8>, Fail> {
        let mut collect = Collect::default();
        self.run(target, Some("text/plain"), None, &mut collect, None)?;
        Ok(collect.body)
    }

    /// Prints the entries of the folder `target` (decoded name, `/` for folders, tab, size).
    ///
    /// # Errors
    /// As [`fetch_listing`](Self::fetch_listing); a malformed line is an integrity failure.
    pub(crate) fn list(&mut self, target: &str) -> Result<(), Fail> {
        let body = self.fetch_listing(&folder_target(target))?;
        let text = String::from_utf8_lossy(&body);
        let mut out = std::io::stdout().lock();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let entry = ListingEntry::parse(line)
                .map_err(|e| Fail::integrity(format!("listing line {line:?}: {e}")))?;
            let mut buf = [0u8; satchel_core::client::target::MAX_TARGET];
            // A name that is not a safe file name is shown as sent (percent-encoded ASCII).
            let name = decode_name(entry.encoded_name, &mut buf).unwrap_or(entry.encoded_name);
            let name = printable(name.as_bytes());
            let slash = if entry.is_dir { "/" } else { "" };
            writeln!(out, "{name}{slash}\t{}", entry.size)
                .map_err(|e| Fail::local("stdout", &e))?;
        }
        Ok(())
    }
}

/// `target` with a trailing `/` (a folder).
pub(crate) fn folder_target(target: &str) -> String {
    if target.ends_with('/') {
        target.to_owned()
    } else {
        format!("{target}/")
    }
}

/// What a session's failure means for the user, and its exit code.
fn session_fail(
    e: &session::Error,
    download: &Download<'_>,
    (host, port, last_connect_error): (&str, u16, &str),
    timeout: Duration,
) -> Fail {
    let target = download.target();
    match e {
        session::Error::Timeout => {
            let what = download
                .waiting()
                .map_or_else(|| "the server".to_owned(), |w| w.to_string());
            Fail::new(
                EXIT_NETWORK,
                format!(
                    "{target}: timed out after {} s waiting for {what}",
                    timeout.as_millis() / 1000
                ),
            )
        }
        session::Error::Folder => Fail::new(
            EXIT_HTTP,
            format!("{target}: is a folder on the server (use -r to mirror it)"),
        ),
        session::Error::Connect(_) => {
            let why = match last_connect_error {
                "" => e.to_string(),
                system => system.to_owned(),
            };
            Fail::new(
                EXIT_NETWORK,
                format!("cannot connect to {host}:{port}: {why}"),
            )
        }
        e if e.is_network() => Fail::new(EXIT_NETWORK, format!("{target}: {e}")),
        session::Error::Status(status) => {
            status_fail(*status, &printable(download.reason()), target)
        }
        session::Error::Redirect(_) | session::Error::TooManyRedirects => {
            Fail::new(EXIT_HTTP, format!("{target}: {e}"))
        }
        session::Error::NotAccepted => Fail::new(
            EXIT_HTTP,
            format!("{target}: the server sent no text listing"),
        ),
        e => Fail::integrity(format!("{target}: {e}")),
    }
}

fn status_fail(status: u16, reason: &str, target: &str) -> Fail {
    let code = if status == 404 || status == 410 {
        EXIT_NOT_FOUND
    } else {
        EXIT_HTTP
    };
    Fail::new(code, format!("{target}: {status} {reason}"))
}

/// Checks the byte count, sets the modification time, flushes the part to disk and renames
/// it over `dest` (or leaves the last two steps to `batch`).
fn finish(
    file: File,
    total: u64,
    mtime: Option<SystemTime>,
    label: &str,
    (part, meta, dest): (&Path, Option<&Path>, &Path),
    batch: Option<&mut Batch>,
    sync: bool,
) -> Result<(), Fail> {
    let local = |e: std::io::Error| Fail::local(label, &e);
    let len = file.metadata().map_err(local)?.len();
    if len != total {
        return Err(Fail::integrity(format!(
            "{label}: saved {len} bytes, the server announced {total}"
        )));
    }
    if let Some(t) = mtime {
        file.set_modified(t).map_err(local)?;
    }
    if let Some(batch) = batch {
        drop(file);
        batch.pending.push((
            part.to_path_buf(),
            meta.map(Path::to_path_buf),
            dest.to_path_buf(),
            batch.tag,
        ));
        return Ok(());
    }
    if sync {
        file.sync_all().map_err(local)?;
    }
    drop(file);
    fs::rename(part, dest).map_err(local)?;
    if let Some(meta) = meta {
        let _ = remove_if_present(meta);
    }
    // Make the rename itself durable.
    if let Some(d) = sync.then(|| File::open(parent_dir(dest)).ok()).flatten() {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The folder holding `path` (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_defangs_terminal_controls() {
        assert_eq!(printable(b"Not Found"), "Not Found");
        assert_eq!(printable("a\u{9b}31mb".as_bytes()), "a?31mb");
        assert_eq!(printable(b"x\x1b[2Jy\xff"), "x?[2Jy\u{fffd}");
    }

    #[test]
    fn suffixes_and_folders() {
        assert_eq!(
            with_suffix(Path::new("d/f.bin"), ".part"),
            Path::new("d/f.bin.part")
        );
        assert_eq!(folder_target("/a"), "/a/");
        assert_eq!(folder_target("/a/"), "/a/");
        assert_eq!(status_fail(410, "Gone", "/x").code, EXIT_NOT_FOUND);
        assert_eq!(status_fail(403, "Forbidden", "/x").code, EXIT_HTTP);
    }
}
