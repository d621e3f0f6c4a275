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

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use satchel_core::client::digest::Sha256 as Digest256;
use satchel_core::client::nal::{Buffers, DownloadError, Sink};
use satchel_core::client::session::{self, Config, Download, Resume, Retry, Saved, Start};
use satchel_core::client::target::decode_name;
use satchel_core::client::{ListingEntry, Plan, Url};
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
/// Deepest folder nesting `--recursive` descends into (PROTOCOL.md's 32 path segments).
const MAX_DEPTH: u32 = 32;

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
                return Err(Fail::integrity("the part file shrank while resuming"));
            }
        }
        Ok(Self { hasher, expected })
    }
}

/// Writes a download's body into its part file.
struct PartFile<'a> {
    part: &'a Path,
    meta: &'a Path,
    label: &'a str,
    verbose: bool,
    progress: Progress,
    file: Option<File>,
    check: Option<Check>,
}

impl Sink for PartFile<'_> {
    type Error = Fail;

    fn start(&mut self, s: &Start<'_>) -> Result<(), Fail> {
        self.check = None;
        let (offset, total) = match s.plan {
            Plan::Write { total } => {
                match s.validator {
                    Some(v) => fs::write(self.meta, v),
                    None => remove_if_present(self.meta),
                }
                .map_err(|e| Fail::local(self.meta.display(), &e))?;
                self.file = Some(open_part(self.part, true)?);
                (0, total)
            }
            Plan::Append { offset, total } => {
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
                .map_err(|e| Fail::local(self.part.display(), &e))?;
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
    ) -> Result<Saved, Fail> {
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
        let buffers = Buffers {
            tx: &mut self.tx,
            rx: &mut self.rx,
        };
        net.download(&mut download, buffers, sink)
            .map_err(|e| match e {
                DownloadError::Sink(fail) => fail,
                DownloadError::Encode(e) => Fail::usage(format!("{target}: {e}")),
                DownloadError::Session(e) => session_fail(&e, &download, net, self.port),
                _ => Fail::new(EXIT_NETWORK, "download failed"),
            })
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
                            "{f}; {} keeps {kept} bytes, and --continue resumes it",
                            part.display()
                        ),
                    ));
                }
            }
            _ => {}
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
        let mut validator = None;
        let mut offset = 0;
        if self.opts.resume {
            if let (Ok(m), Ok(v)) = (fs::symlink_metadata(part), fs::read_to_string(meta)) {
                let v = v.trim();
                if m.is_file() && !v.is_empty() {
                    validator = Some(v.to_owned());
                    offset = m.len();
                }
            }
        }
        let resume = validator
            .as_deref()
            .map(|validator| Resume { offset, validator });
        let mut sink = PartFile {
            part,
            meta,
            label,
            verbose: self.opts.verbose,
            progress: Progress::new(label, self.opts.progress),
            file: None,
            check: None,
        };
        let result = self.run(target, None, resume, &mut sink);
        sink.progress.finish();
        let saved = result?;
        if let Some(check) = sink.check.take() {
            if check.hasher.finalize().as_slice() != check.expected {
                return Err(Fail::integrity(format!(
                    "{}: SHA-256 differs from the digest the server announced",
                    dest.display()
                )));
            }
        }
        let file = match sink.file.take() {
            Some(file) => file,
            None => open_part(part, false)?,
        };
        finish(file, saved.len, part, meta, dest)
    }

    /// Fetches a small text resource (a listing), following redirects; returns its body.
    ///
    /// # Errors
    /// A [`Fail`] for network trouble, an error status, or a body that is not `text/plain`.
    pub(crate) fn fetch_listing(&mut self, target: &str) -> Result<Vec<u8>, Fail> {
        let mut collect = Collect::default();
        self.run(target, Some("text/plain"), None, &mut collect)?;
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

/// What a session's failure means for the user, and its exit code.
fn session_fail(e: &session::Error, download: &Download<'_>, net: &Net, port: u16) -> Fail {
    let target = download.target();
    match e {
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

fn status_fail(status: u16, reason: &str, target: &str) -> Fail {
    let code = if status == 404 || status == 410 {
        EXIT_NOT_FOUND
    } else {
        EXIT_HTTP
    };
    Fail::new(code, format!("{target}: {status} {reason}"))
}

/// Checks the byte count, flushes the part to disk and renames it over `dest`.
fn finish(file: File, total: u64, part: &Path, meta: &Path, dest: &Path) -> Result<(), Fail> {
    let len = file
        .metadata()
        .map_err(|e| Fail::local(part.display(), &e))?
        .len();
    if len != total {
        return Err(Fail::integrity(format!(
            "{}: saved {len} bytes, the server announced {total}",
            dest.display()
        )));
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
