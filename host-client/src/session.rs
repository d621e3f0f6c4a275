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
use std::time::{Duration as StdDuration, SystemTime};

use satchel_core::client::digest::Sha256 as Digest256;
use satchel_core::client::nal::{Buffers, DownloadError, Sink};
use satchel_core::client::session::{self, Config, Download, Resume, Retry, Saved, Start};
use satchel_core::client::target::decode_name;
use satchel_core::client::{ListingEntry, Plan, Url};
use satchel_core::http::date::{format_http_date, parse_http_date};
use satchel_core::status::StatusCode;
use satchel_core::time::Duration;
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
    part: &'a Path,
    meta: &'a Path,
    /// What the user asked for, for messages.
    label: &'a str,
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

impl<'a> PartFile<'a> {
    /// A sink for `part` (and its `meta`) with nothing written yet and no progress bar.
    fn new(part: &'a Path, meta: &'a Path, label: &'a str, opts: &Options) -> Self {
        Self {
            part,
            meta,
            label,
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
        Fail::local(self.label, e)
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
        self.etag = text(s.response.head.etag.filter(|e| !e.starts_with(b"W/")));
        self.last_modified = text(s.response.header(b"last-modified"));
        if self.probe && !matches!(s.plan, Plan::Complete) {
            return Err(Fail::local(
                self.label,
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
                        fs::write(self.meta, v)
                    }
                    None if self.meta_maybe => remove_if_present(self.meta),
                    None => Ok(()),
                }
                .map_err(|e| self.local(&e))?;
                self.file = Some(open_part(self.part, true).map_err(|e| self.local(&e))?);
                (0, total)
            }
            Plan::Append { offset, total } => {
                let file = open_part(self.part, false).map_err(|e| self.local(&e))?;
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
            self.check = Some(Check::start(expected, self.part, offset)?);
        }
        self.progress.begin(offset, total);
        Ok(())
    }

    fn body(&mut self, data: &[u8]) -> Result<(), Fail> {
        if let Some(file) = &mut self.file {
            file.write_all(data)
                .map_err(|e| Fail::local(self.label, &e))?;
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
        net.download(&mut download, buffers, sink)
            .map_err(|e| match e {
                DownloadError::Sink(fail) => fail,
                DownloadError::Encode(e) => Fail::usage(format!("{target}: {e}")),
                DownloadError::Session(e) => {
                    session_fail(&e, &download, net, self.port, self.opts.timeout)
                }
                _ => Fail::new(EXIT_NETWORK, "download failed"),
            })
            .map(|saved| (saved, download.not_modified()))
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
        let mut probe = false;
        match fs::symlink_metadata(dest) {
            Ok(m) if m.is_dir() => {
                return Err(Fail::local(
                    label,
                    &std::io::Error::other("is a folder here"),
                ))
            }
            Ok(_) if self.opts.force || save.copy.is_some() => {}
            Ok(m) if self.opts.resume && m.is_file() => probe = true,
            Ok(_) => {
                return Err(Fail::local(
                    label,
                    &std::io::Error::other("already exists (use --force to replace it)"),
                ))
            }
            Err(_) => {}
        }
        let part = with_suffix(dest, ".part");
        let meta = with_suffix(dest, ".part.meta");
        if probe {
            return self.check_complete(target, dest, label);
        }
        let result = self.download_into(target, dest, &part, &meta, label, save);
        match &result {
            Err(f) if f.code == EXIT_INTEGRITY => {
                // Bytes we cannot trust must not be resumed from later.
                let _ = remove_if_present(&part);
                let _ = remove_if_present(&meta);
            }
            Err(f) if f.code == EXIT_NETWORK => {
                let kept = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
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

    /// `--continue` on a file that exists: a conditional request on its modification time
    /// (which the client set from `Last-Modified` when it saved it); 304 is success.
    fn check_complete(&mut self, target: &str, dest: &Path, label: &str) -> Result<Got, Fail> {
        let date = fs::metadata(dest)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| format_http_date(d.as_secs()))
            .and_then(|d| String::from_utf8(d.to_vec()).ok());
        let unused = Path::new("");
        let mut sink = PartFile {
            probe: true,
            ..PartFile::new(unused, unused, label, &self.opts)
        };
        let (_, kept) = self.run(target, None, None, &mut sink, Some((None, date.as_deref())))?;
        if !kept {
            return Err(Fail::local(
                label,
                &std::io::Error::other("already exists (use --force to replace it)"),
            ));
        }
        if self.opts.verbose {
            eprintln!("satchel-client: {label}: already complete");
        }
        Ok(Got {
            kept: true,
            ..Got::default()
        })
    }

    fn download_into(
        &mut self,
        target: &str,
        dest: &Path,
        part: &Path,
        meta: &Path,
        label: &str,
        save: Save<'_>,
    ) -> Result<Got, Fail> {
        let mut validator = None;
        let mut offset = 0;
        let part_left = fs::symlink_metadata(part);
        if let Ok(m) = &part_left {
            let v = fs::read_to_string(meta).unwrap_or_default();
            let v = v.trim();
            if m.is_file() && !v.is_empty() && m.len() > 0 {
                validator = Some(v.to_owned());
                offset = m.len();
                if !self.opts.resume && self.opts.verbose {
                    eprintln!(
                        "satchel-client: {label}: resuming from byte {offset} of the part an earlier run left ({})",
                        part.display()
                    );
                }
            } else if self.opts.verbose {
                eprintln!(
                    "satchel-client: {label}: starting over: the part an earlier run left ({}) cannot be resumed",
                    part.display()
                );
            }
        }
        let resume = validator
            .as_deref()
            .map(|validator| Resume { offset, validator });
        let mut sink = PartFile {
            progress: Progress::new(label, self.opts.progress),
            make_dir: save.make_dir,
            resumed_from: offset,
            meta_maybe: part_left.is_ok(),
            ..PartFile::new(part, meta, label, &self.opts)
        };
        // A resumed part asks with If-Range; the copy's validators would contradict it.
        let copy = save.copy.filter(|_| resume.is_none());
        let result = self.run(target, None, resume, &mut sink, copy);
        sink.progress.finish();
        let (saved, kept) = result?;
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
            None => open_part(part, false).map_err(|e| Fail::local(label, &e))?,
        };
        let mtime = got
            .last_modified
            .as_deref()
            .and_then(|d| parse_http_date(d.as_bytes()))
            .map(|secs| SystemTime::UNIX_EPOCH + StdDuration::from_secs(secs));
        let meta = sink.meta_maybe.then_some(meta);
        let batch = save.batch;
        finish(
            file,
            saved.len,
            mtime,
            label,
            (part, meta, dest),
            batch,
            self.opts.sync,
        )?;
        Ok(got)
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
    net: &Net,
    port: u16,
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
            let why = match net.last_connect_error() {
                "" => e.to_string(),
                system => system.to_owned(),
            };
            Fail::new(
                EXIT_NETWORK,
                format!("cannot connect to {}:{port}: {why}", net.host()),
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

fn status_fail(status: StatusCode, reason: &str, target: &str) -> Fail {
    let code = if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        EXIT_NOT_FOUND
    } else {
        EXIT_HTTP
    };
    Fail::new(code, format!("{target}: {} {reason}", status.as_u16()))
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
        assert_eq!(
            status_fail(StatusCode::GONE, "Gone", "/x").code,
            EXIT_NOT_FOUND
        );
        assert_eq!(
            status_fail(StatusCode::FORBIDDEN, "Forbidden", "/x").code,
            EXIT_HTTP
        );
    }
}
