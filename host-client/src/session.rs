//! Downloads from one server over one kept-alive connection: atomic saves, resume, retries,
//! redirects, listings and mirroring.
//!
//! The file protocol (PROTOCOL.md, "The client"):
//! 1. the body goes to `NAME.part`, never to `NAME`; the validator (strong `ETag`, else
//!    `Last-Modified`) goes to `NAME.part.meta` so `--continue` can send `If-Range` later;
//! 2. at the end the byte count is checked against `Content-Length` / `Content-Range`, the
//!    part is fsynced, renamed over `NAME`, and the folder is fsynced;
//! 3. so `NAME` holds the whole file or is untouched, whatever happens before the rename
//!    (server death, reset, disk full, kill -9).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use satchel_core::client::digest::whole_file_sha256;
use satchel_core::client::nal::{Buffers, FetchError, Handler};
use satchel_core::client::target::decode_name;
use satchel_core::client::{
    plan, resolve_location, ExchangeError, Framing, ListingEntry, Plan, Request, Response, Url,
};
use satchel_core::time::Duration;
use sha2::{Digest as _, Sha256};

use crate::fail::{Fail, EXIT_HTTP, EXIT_INTEGRITY, EXIT_NETWORK, EXIT_NOT_FOUND};
use crate::net::Conn;
use crate::progress::Progress;

/// Receive buffer: bounds the response head and carries the body in chunks of this size.
const RX: usize = 256 * 1024;
/// Request head buffer.
const TX: usize = 8 * 1024;
/// Redirects followed per download (PROTOCOL.md: "up to 5 redirects on the same server").
const MAX_REDIRECTS: u32 = 5;
/// Largest folder listing read into memory.
const MAX_LISTING: usize = 16 << 20;
/// Deepest folder nesting `--recursive` descends into (PROTOCOL.md's 32 path segments).
const MAX_DEPTH: u32 = 32;
/// Times a download may start over because the file changed under it.
const MAX_RESTARTS: u32 = 2;

/// What the user asked for.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Replace an existing file.
    pub(crate) force: bool,
    /// Resume a `.part` left by an earlier run.
    pub(crate) resume: bool,
    /// Retries after a network failure or timeout.
    pub(crate) retries: u32,
    /// Head deadline and idle timeout.
    pub(crate) timeout: Duration,
    /// Show a progress bar (when stderr is a terminal).
    pub(crate) progress: bool,
    /// Print retry notices.
    pub(crate) verbose: bool,
}

/// A server and the connection to it.
pub(crate) struct Session {
    host: String,
    port: u16,
    host_header: String,
    opts: Options,
    conn: Option<Conn>,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

/// What a response turned out to be.
enum Outcome {
    /// No head yet.
    Pending,
    /// Writing the body into the part file.
    Saving {
        file: File,
        total: Option<u64>,
        check: Option<Check>,
    },
    /// The part already held the whole file (416 for its length).
    Complete,
    /// The part is not a prefix of the file any more: ask for everything.
    Restart,
    /// A redirect to this `Location`.
    Redirect(String),
    /// An error status, with the start of its body.
    Status(u16, String),
}

/// A whole-file SHA-256 the server announced, and the hash of what is saved so far.
struct Check {
    hasher: Sha256,
    expected: [u8; 32],
}

impl Check {
    /// Starts checking against the digest `r` announces, if any; for a resumed download the
    /// bytes already in `part` (up to `offset`) are hashed first.
    fn start(r: &Response<'_>, part: &Path, offset: u64) -> Result<Option<Self>, Fail> {
        let expected = whole_file_sha256(r).map_err(|e| Fail::integrity(e.to_string()))?;
        let Some(expected) = expected else {
            return Ok(None);
        };
        let mut hasher = Sha256::new();
        if offset > 0 {
            let file = File::open(part).map_err(|e| Fail::local(part.display(), &e))?;
            let copied = std::io::copy(&mut std::io::Read::take(file, offset), &mut hasher)
                .map_err(|e| Fail::local(part.display(), &e))?;
            if copied != offset {
                return Err(Fail::integrity("the part file shrank while resuming"));
            }
        }
        Ok(Some(Self { hasher, expected }))
    }
}

/// Handler writing a download's body into its part file.
struct Sink<'a> {
    part: &'a Path,
    meta: &'a Path,
    asked_from: Option<u64>,
    progress: &'a mut Progress,
    outcome: Outcome,
    validator: Option<String>,
    head_seen: bool,
}

impl Handler for Sink<'_> {
    type Error = Fail;

    fn head(&mut self, r: &Response<'_>) -> Result<(), Fail> {
        self.head_seen = true;
        self.outcome = match r.status {
            301 | 302 | 303 | 307 | 308 if r.location.is_some() => Outcome::Redirect(
                String::from_utf8_lossy(r.location.unwrap_or_default()).into_owned(),
            ),
            200..=299 | 416 => match plan(self.asked_from, r) {
                Err(e) => return Err(Fail::integrity(e.to_string())),
                Ok(Plan::Complete) => Outcome::Complete,
                Ok(Plan::Restart) => Outcome::Restart,
                Ok(Plan::Write { total }) => {
                    let total = total.or((r.framing == Framing::Empty).then_some(0));
                    self.validator = validator(r);
                    match &self.validator {
                        Some(v) => fs::write(self.meta, v),
                        None => remove_if_present(self.meta),
                    }
                    .map_err(|e| Fail::local(self.meta.display(), &e))?;
                    let file = open_part(self.part, true)?;
                    let check = Check::start(r, self.part, 0)?;
                    self.progress.begin(0, total);
                    Outcome::Saving { file, total, check }
                }
                Ok(Plan::Append { offset, total }) => {
                    let file = open_part(self.part, false)?;
                    let len = file
                        .metadata()
                        .map_err(|e| Fail::local(self.part.display(), &e))?
                        .len();
                    if len != offset {
                        return Err(Fail::local(
                            self.part.display(),
                            &std::io::Error::other("changed while resuming"),
                        ));
                    }
                    let check = Check::start(r, self.part, offset)?;
                    self.progress.begin(offset, total);
                    Outcome::Saving { file, total, check }
                }
            },
            status => Outcome::Status(status, printable(r.reason)),
        };
        Ok(())
    }

    fn body(&mut self, data: &[u8]) -> Result<(), Fail> {
        if let Outcome::Saving { file, check, .. } = &mut self.outcome {
            file.write_all(data)
                .map_err(|e| Fail::local(self.part.display(), &e))?;
            if let Some(check) = check {
                check.hasher.update(data);
            }
            self.progress.add(data.len() as u64);
        }
        // Bodies of redirects and error statuses are read (to keep the connection) and dropped.
        Ok(())
    }
}

/// Handler collecting a small body (listings) in memory.
struct Collect {
    status: u16,
    reason: String,
    content_type: String,
    location: Option<String>,
    body: Vec<u8>,
    head_seen: bool,
}

impl Handler for Collect {
    type Error = Fail;

    fn head(&mut self, r: &Response<'_>) -> Result<(), Fail> {
        self.head_seen = true;
        self.status = r.status;
        self.reason = printable(r.reason);
        self.content_type = printable(r.content_type.unwrap_or_default());
        self.location = r.location.map(|l| String::from_utf8_lossy(l).into_owned());
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

/// The validator to resume with: a strong `ETag`, else `Last-Modified` (RFC 9110 §13.1.5:
/// `If-Range` needs a strong one). Only values that can be sent back verbatim are kept.
fn validator(r: &Response<'_>) -> Option<String> {
    let strong_etag = r.etag.filter(|e| !e.starts_with(b"W/"));
    let v = strong_etag.or(r.last_modified)?;
    let ok = !v.is_empty() && v.iter().all(|&b| b == b' ' || b.is_ascii_graphic());
    ok.then(|| String::from_utf8_lossy(v).into_owned())
}

/// Server-sent bytes made safe to print: invalid UTF-8 becomes U+FFFD and control characters
/// (C0 and C1, which terminals may act on) become `?`.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Opens the part file without following a symbolic link planted in its place.
fn open_part(part: &Path, truncate: bool) -> Result<File, Fail> {
    let mut o = OpenOptions::new();
    o.write(true).custom_flags(libc::O_NOFOLLOW);
    if truncate {
        o.create(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(part).map_err(|e| Fail::local(part.display(), &e))
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

/// Handlers that can tell whether a response head arrived (so a stale keep-alive connection
/// can be told apart from a failed response).
trait HeadSeen {
    fn head_seen(&self) -> bool;
}

impl HeadSeen for Sink<'_> {
    fn head_seen(&self) -> bool {
        self.head_seen
    }
}

impl HeadSeen for Collect {
    fn head_seen(&self) -> bool {
        self.head_seen
    }
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
            conn: None,
            tx: vec![0; TX],
            rx: vec![0; RX],
        }
    }

    /// Whether this session talks to `host:port`.
    pub(crate) fn is_for(&self, host: &str, port: u16) -> bool {
        self.host.eq_ignore_ascii_case(host) && self.port == port
    }

    /// One request and its response on the kept-alive connection (opened when needed).
    ///
    /// A reused connection the server closed while idle fails before any response; that
    /// request is sent again once on a new connection.
    fn exchange<H: Handler<Error = Fail> + HeadSeen>(
        &mut self,
        req: &Request<'_>,
        handler: &mut H,
    ) -> Result<bool, Fail> {
        loop {
            let reused = self.conn.is_some();
            let conn = match &mut self.conn {
                Some(c) => c,
                None => {
                    let c = Conn::open(&self.host, self.port, self.opts.timeout).map_err(|e| {
                        let why = match e {
                            FetchError::Net(n) => n.0.to_string(),
                            other => other.to_string(),
                        };
                        Fail::new(
                            EXIT_NETWORK,
                            format!("cannot connect to {}:{}: {why}", self.host, self.port),
                        )
                    })?;
                    self.conn.insert(c)
                }
            };
            let buffers = Buffers {
                tx: &mut self.tx,
                rx: &mut self.rx,
            };
            match conn.exchange(req, self.opts.timeout, buffers, handler) {
                Ok(done) => {
                    if !done.keep_alive {
                        self.conn = None;
                    }
                    return Ok(done.keep_alive);
                }
                Err(e) => {
                    self.conn = None;
                    let stale = reused
                        && !handler.head_seen()
                        && matches!(
                            e,
                            FetchError::Net(_)
                                | FetchError::Exchange(ExchangeError::Closed {
                                    response_started: false
                                })
                        );
                    if !stale {
                        return Err(Fail::from_fetch(e));
                    }
                }
            }
        }
    }

    fn url<'a>(&'a self, target: &'a str) -> Url<'a> {
        Url {
            host: &self.host,
            port: self.port,
            target,
        }
    }

    /// Downloads `target` into `dest` (see the module doc for the file protocol).
    ///
    /// # Errors
    /// A [`Fail`] with the exit code of what went wrong; `dest` is then untouched.
    pub(crate) fn download(&mut self, target: &str, dest: &Path, label: &str) -> Result<(), Fail> {
        match fs::symlink_metadata(dest) {
            Ok(m) if m.is_dir() => {
                return Err(Fail::local(
                    dest.display(),
                    &std::io::Error::other("is a folder"),
                ))
            }
            Ok(_) if !self.opts.force => {
                return Err(Fail::local(
                    dest.display(),
                    &std::io::Error::other("already exists (use --force to replace it)"),
                ))
            }
            _ => {}
        }
        let part = with_suffix(dest, ".part");
        let meta = with_suffix(dest, ".part.meta");
        let result = self.download_into(target, dest, &part, &meta, label);
        if matches!(&result, Err(f) if f.code == EXIT_INTEGRITY) {
            // Bytes we cannot trust must not be resumed from later.
            let _ = remove_if_present(&part);
            let _ = remove_if_present(&meta);
        }
        result
    }

    fn download_into(
        &mut self,
        target: &str,
        dest: &Path,
        part: &Path,
        meta: &Path,
        label: &str,
    ) -> Result<(), Fail> {
        let host_header = self.host_header.clone();
        let mut validator = None;
        if self.opts.resume {
            if let (Ok(m), Ok(v)) = (fs::symlink_metadata(part), fs::read_to_string(meta)) {
                let v = v.trim();
                if m.is_file() && !v.is_empty() {
                    validator = Some(v.to_owned());
                }
            }
        }
        let mut target = target.to_owned();
        let (mut redirects, mut attempts, mut restarts) = (0u32, 0u32, 0u32);
        let mut progress = Progress::new(label, self.opts.progress);
        loop {
            // Resume from what the part holds, when we know which version of the file it is.
            let offset = match &validator {
                Some(_) => fs::metadata(part).map(|m| m.len()).unwrap_or(0),
                None => 0,
            };
            let range_from = (offset > 0).then_some(offset);
            let req = Request {
                host: &host_header,
                target: &target,
                accept: None,
                range_from,
                if_range: validator.as_deref().filter(|_| range_from.is_some()),
                keep_alive: true,
            };
            let mut sink = Sink {
                part,
                meta,
                asked_from: range_from,
                progress: &mut progress,
                outcome: Outcome::Pending,
                validator: None,
                head_seen: false,
            };
            let result = self.exchange(&req, &mut sink);
            let (outcome, new_validator) = (sink.outcome, sink.validator);
            if new_validator.is_some() {
                validator = new_validator;
            }
            match result {
                Ok(_) => match outcome {
                    Outcome::Saving { file, total, check } => {
                        progress.finish();
                        if let Some(check) = check {
                            if check.hasher.finalize().as_slice() != check.expected {
                                return Err(Fail::integrity(format!(
                                    "{}: SHA-256 differs from the digest the server announced",
                                    dest.display()
                                )));
                            }
                        }
                        return finish(file, total, part, meta, dest);
                    }
                    Outcome::Complete => {
                        let file = open_part(part, false)?;
                        return finish(file, Some(offset), part, meta, dest);
                    }
                    Outcome::Restart => {
                        restarts += 1;
                        if restarts > MAX_RESTARTS {
                            return Err(Fail::integrity("the file keeps changing on the server"));
                        }
                        validator = None;
                    }
                    Outcome::Redirect(location) => {
                        redirects += 1;
                        if redirects > MAX_REDIRECTS {
                            return Err(Fail::new(EXIT_HTTP, "more than 5 redirects"));
                        }
                        let mut buf = [0u8; satchel_core::client::target::MAX_TARGET];
                        let next =
                            resolve_location(&self.url(&target), location.as_bytes(), &mut buf)
                                .map_err(|e| {
                                    Fail::new(EXIT_HTTP, format!("redirect to {location:?}: {e}"))
                                })?;
                        target = next.to_owned();
                    }
                    Outcome::Status(status, reason) => {
                        return Err(status_fail(status, &reason, &target))
                    }
                    Outcome::Pending => return Err(Fail::integrity("no response head")),
                },
                Err(fail) if fail.is_retryable() && attempts < self.opts.retries => {
                    progress.finish();
                    attempts += 1;
                    let pause = StdDuration::from_millis(250 << attempts.min(5));
                    if self.opts.verbose {
                        eprintln!(
                            "satchel-client: {label}: {fail}; retry {attempts}/{} in {} ms",
                            self.opts.retries,
                            pause.as_millis()
                        );
                    }
                    std::thread::sleep(pause);
                }
                Err(fail) => {
                    progress.finish();
                    return Err(fail);
                }
            }
        }
    }

    /// Fetches a small text resource (a listing), following redirects; returns its body.
    ///
    /// # Errors
    /// A [`Fail`] for network trouble, an error status, or a body that is not `text/plain`.
    pub(crate) fn fetch_listing(&mut self, target: &str) -> Result<Vec<u8>, Fail> {
        let host_header = self.host_header.clone();
        let mut target = target.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let req = Request {
                accept: Some("text/plain"),
                ..Request::get(&host_header, &target)
            };
            let mut c = Collect {
                status: 0,
                reason: String::new(),
                content_type: String::new(),
                location: None,
                body: Vec::new(),
                head_seen: false,
            };
            self.exchange(&req, &mut c)?;
            match (c.status, c.location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    let mut buf = [0u8; satchel_core::client::target::MAX_TARGET];
                    let next = resolve_location(&self.url(&target), location.as_bytes(), &mut buf)
                        .map_err(|e| {
                            Fail::new(EXIT_HTTP, format!("redirect to {location:?}: {e}"))
                        })?;
                    target = next.to_owned();
                }
                (200, _) => {
                    if !c
                        .content_type
                        .to_ascii_lowercase()
                        .starts_with("text/plain")
                    {
                        return Err(Fail::new(
                            EXIT_HTTP,
                            format!(
                                "{target}: the server sent no text listing ({})",
                                c.content_type
                            ),
                        ));
                    }
                    return Ok(c.body);
                }
                (status, _) => return Err(status_fail(status, &c.reason, &target)),
            }
        }
        Err(Fail::new(EXIT_HTTP, "more than 5 redirects"))
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

    /// Mirrors the folder `target` into `dest_dir`, recursively. Every entry name is decoded and
    /// checked to be one plain path component before it touches the file system.
    ///
    /// # Errors
    /// The first failure; the other entries are still attempted.
    pub(crate) fn mirror(&mut self, target: &str, dest_dir: &Path, depth: u32) -> Result<(), Fail> {
        if depth > MAX_DEPTH {
            return Err(Fail::integrity(format!(
                "{target}: folders nested too deep"
            )));
        }
        let target = folder_target(target);
        let body = self.fetch_listing(&target)?;
        fs::create_dir_all(dest_dir).map_err(|e| Fail::local(dest_dir.display(), &e))?;
        let text = String::from_utf8_lossy(&body);
        let mut first: Option<Fail> = None;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let result = self.mirror_entry(&target, line, dest_dir, depth);
            if let Err(fail) = result {
                eprintln!("satchel-client: {fail}");
                first.get_or_insert(fail);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn mirror_entry(
        &mut self,
        folder: &str,
        line: &str,
        dest_dir: &Path,
        depth: u32,
    ) -> Result<(), Fail> {
        let entry = ListingEntry::parse(line)
            .map_err(|e| Fail::integrity(format!("listing line {line:?}: {e}")))?;
        let mut buf = [0u8; satchel_core::client::target::MAX_TARGET];
        let name = decode_name(entry.encoded_name, &mut buf)
            .map_err(|e| Fail::integrity(format!("listing entry {:?}: {e}", entry.encoded_name)))?;
        let dest = dest_dir.join(name);
        let child = format!("{folder}{}", entry.encoded_name);
        if entry.is_dir {
            if fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Fail::local(
                    dest.display(),
                    &std::io::Error::other("is a symbolic link"),
                ));
            }
            self.mirror(&child, &dest, depth + 1)
        } else {
            self.download(&child, &dest, name)
        }
    }
}

/// `target` with a trailing `/` (a folder).
fn folder_target(target: &str) -> String {
    if target.ends_with('/') {
        target.to_owned()
    } else {
        format!("{target}/")
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

/// Checks the byte count, flushes the part to disk and renames it over `dest`.
fn finish(
    file: File,
    total: Option<u64>,
    part: &Path,
    meta: &Path,
    dest: &Path,
) -> Result<(), Fail> {
    let len = file
        .metadata()
        .map_err(|e| Fail::local(part.display(), &e))?
        .len();
    if let Some(total) = total {
        if len != total {
            return Err(Fail::integrity(format!(
                "{}: saved {len} bytes, the server announced {total}",
                dest.display()
            )));
        }
    }
    file.sync_all()
        .map_err(|e| Fail::local(part.display(), &e))?;
    drop(file);
    fs::rename(part, dest).map_err(|e| Fail::local(dest.display(), &e))?;
    let _ = remove_if_present(meta);
    // Make the rename itself durable.
    if let Some(dir) = dest.parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    }) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
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
