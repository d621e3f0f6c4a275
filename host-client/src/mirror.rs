//! `-r`: mirroring a folder, incrementally, over a few connections at once.
//!
//! 1. The folder's listings are read (the text form, one kept-alive connection), depth first;
//!    every entry name is decoded and checked to be one plain path component. A name that is
//!    not is skipped with a warning and counted (exit code 8 when nothing else failed).
//! 2. The files are fetched by `connections` workers, each with its own kept-alive connection
//!    and its own core download session per file, the next files' requests sent ahead on it
//!    (`pipeline` deep: the core's `client::pipeline`). A file saved by an earlier mirror is asked
//!    for conditionally (`If-None-Match` its `ETag`, `If-Modified-Since` its `Last-Modified`);
//!    a `304` keeps it. Each saved file gets the server's `Last-Modified` as its modification
//!    time. Parts are made durable a batch at a time (one `syncfs`), then renamed.
//! 3. Each folder's validators are written to its record, `.satchel-mirror` (a small sidecar
//!    file rather than extended attributes: it works on every file system, including tmpfs
//!    and network mounts that drop xattrs, costs one read and one write per folder instead of
//!    a system call per file, and a copy whose modification time was changed locally is
//!    simply not trusted and fetched again).
//! 4. With `--delete`, files in a mirrored folder that its listing no longer names are
//!    removed (files only, never folders; parts of listed files are kept).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use satchel_core::client::target::{decode_name, MAX_TARGET};
use satchel_core::client::ListingEntry;
use satchel_core::http::date::parse_http_date;

use crate::fail::{Fail, EXIT_LOCAL_IO};
use crate::session::{folder_target, printable, Batch, FileJob, Got, Options, Session};

/// The record of what a mirror saved in a folder; names starting with it are reserved.
pub(crate) const RECORD: &str = ".satchel-mirror";
/// Deepest folder nesting descended into (PROTOCOL.md's 32 path segments).
const MAX_DEPTH: u32 = 32;

/// What `-r` was asked to do beyond [`Options`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct MirrorOptions {
    /// Remove files the server no longer lists.
    pub(crate) delete: bool,
    /// Connections used at once for the files.
    pub(crate) connections: usize,
    /// Requests sent ahead on each connection (1: one at a time).
    pub(crate) pipeline: usize,
}

/// What one mirror did.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) saved: usize,
    pub(crate) kept: usize,
    pub(crate) skipped: usize,
    pub(crate) removed: usize,
    pub(crate) failed: usize,
    /// The first failure, whose exit code the run takes.
    pub(crate) first: Option<Fail>,
}

impl Summary {
    fn fail(&mut self, fail: Fail) {
        eprintln!("satchel-client: {fail}");
        self.failed += 1;
        self.first.get_or_insert(fail);
    }
}

/// A saved copy's validators, as the record keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Record {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// A mirrored folder.
struct Folder {
    dest: PathBuf,
    /// The encoded names its listing gave, files and folders.
    listed: Vec<String>,
    /// What the last mirror saved here, by encoded name.
    records: HashMap<String, Record>,
}

/// A file to fetch.
struct Job {
    target: String,
    dest: PathBuf,
    encoded: String,
    folder: usize,
}

/// Mirrors the folder `target` on `session`'s server into `dest`.
pub(crate) fn mirror(
    session: &mut Session,
    target: &str,
    dest: &Path,
    opts: &Options,
    mirror: MirrorOptions,
) -> Summary {
    let mut summary = Summary::default();
    let mut folders = Vec::new();
    let mut jobs = Vec::new();
    walk(
        session,
        &folder_target(target),
        dest,
        0,
        &mut Walk {
            folders: &mut folders,
            jobs: &mut jobs,
            summary: &mut summary,
        },
    );

    let results = fetch_all(session, &jobs, &folders, opts, mirror);
    let mut saved: Vec<HashMap<String, Record>> = vec![HashMap::new(); folders.len()];
    for (job, result) in jobs.iter().zip(results) {
        match result {
            Ok(got) => {
                let record = if got.kept {
                    summary.kept += 1;
                    folders[job.folder]
                        .records
                        .get(&job.encoded)
                        .cloned()
                        .unwrap_or_default()
                } else {
                    summary.saved += 1;
                    Record {
                        etag: got.etag,
                        last_modified: got.last_modified,
                    }
                };
                saved[job.folder].insert(job.encoded.clone(), record);
            }
            Err(fail) => summary.fail(fail),
        }
    }
    for (folder, records) in folders.iter().zip(&saved) {
        if let Err(e) = write_records(&folder.dest, records) {
            summary.fail(Fail::local(folder.dest.join(RECORD).display(), &e));
        }
        if mirror.delete {
            delete_unlisted(folder, opts.verbose, &mut summary);
        }
    }
    if opts.verbose {
        eprintln!(
            "satchel-client: {}: {} saved, {} unchanged, {} skipped, {} removed, {} failed",
            target, summary.saved, summary.kept, summary.skipped, summary.removed, summary.failed
        );
    }
    summary
}

/// What the walk of the listings collects.
struct Walk<'a> {
    folders: &'a mut Vec<Folder>,
    jobs: &'a mut Vec<Job>,
    summary: &'a mut Summary,
}

/// Reads the listing of `target` (a folder, ending in `/`) and its subfolders'.
fn walk(session: &mut Session, target: &str, dest: &Path, depth: u32, w: &mut Walk<'_>) {
    if depth > MAX_DEPTH {
        w.summary.fail(Fail::integrity(format!(
            "{target}: folders nested too deep"
        )));
        return;
    }
    let body = match session.fetch_listing(target) {
        Ok(body) => body,
        Err(fail) => return w.summary.fail(fail),
    };
    if let Err(e) = fs::create_dir_all(dest) {
        return w.summary.fail(Fail::local(dest.display(), &e));
    }
    let index = w.folders.len();
    w.folders.push(Folder {
        dest: dest.to_path_buf(),
        listed: Vec::new(),
        records: read_records(dest),
    });
    let text = String::from_utf8_lossy(&body);
    let mut subfolders = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let entry = match ListingEntry::parse(line) {
            Ok(entry) => entry,
            Err(e) => {
                w.summary.fail(Fail::integrity(format!(
                    "{target}: listing line {:?}: {e}",
                    printable(line.as_bytes())
                )));
                continue;
            }
        };
        let mut buf = [0u8; MAX_TARGET];
        let name = match decode_name(entry.encoded_name, &mut buf) {
            Ok(name) if !name.starts_with(RECORD) => name,
            Ok(_) => {
                skip(
                    w.summary,
                    target,
                    entry.encoded_name,
                    "name reserved for the mirror's record",
                );
                continue;
            }
            Err(e) => {
                skip(w.summary, target, entry.encoded_name, &e.to_string());
                continue;
            }
        };
        w.folders[index].listed.push(entry.encoded_name.to_owned());
        let child_dest = dest.join(name);
        let child = format!("{target}{}", entry.encoded_name);
        if entry.is_dir {
            if fs::symlink_metadata(&child_dest).is_ok_and(|m| m.file_type().is_symlink()) {
                w.summary.fail(Fail::local(
                    child_dest.display(),
                    &std::io::Error::other("is a symbolic link"),
                ));
                continue;
            }
            subfolders.push((folder_target(&child), child_dest));
        } else {
            w.jobs.push(Job {
                target: child,
                dest: child_dest,
                encoded: entry.encoded_name.to_owned(),
                folder: index,
            });
        }
    }
    for (child, child_dest) in subfolders {
        walk(session, &child, &child_dest, depth + 1, w);
    }
}

/// Warns about an entry that cannot be saved safely and counts it.
fn skip(summary: &mut Summary, folder: &str, encoded: &str, why: &str) {
    eprintln!(
        "satchel-client: skipped {folder}{}: {why}",
        printable(encoded.as_bytes())
    );
    summary.skipped += 1;
}

/// Parts a worker hands to the committer at a time.
const HAND_OVER: usize = 64;

/// Fetches every job over `connections` connections (the first is `session`'s own), each
/// carrying up to `pipeline` requests at once. Saved parts go to one committer thread, which makes whatever has gathered durable with one
/// `syncfs` and renames it, while the workers go on downloading.
fn fetch_all(
    session: &mut Session,
    jobs: &[Job],
    folders: &[Folder],
    opts: &Options,
    mirror: MirrorOptions,
) -> Vec<Result<Got, Fail>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Got, Fail>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let (to_committer, committer_inbox) = std::sync::mpsc::channel::<Batch>();
    let work = |s: &mut Session, out: std::sync::mpsc::Sender<Batch>| {
        let mut batch = Batch::default();
        let mut done = Vec::new();
        let next_file = || {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let job = jobs.get(i)?;
            Some((
                i,
                job.target.as_str(),
                prepare(opts, job, &folders[job.folder]),
            ))
        };
        let file_done = |i: usize, r: Result<Got, Fail>, batch: Option<&mut Batch>| {
            done.push((i, r));
            if let Some(batch) = batch.filter(|b| b.len() >= HAND_OVER) {
                let _ = out.send(std::mem::take(batch));
            }
        };
        let piped = s.download_pipelined(mirror.pipeline, next_file, file_done, Some(&mut batch));
        if let Err(fail) = piped {
            // No poller for the connection: every file this worker would take fails.
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs.len() {
                    break;
                }
                done.push((i, Err(Fail::new(fail.code, fail.message.clone()))));
            }
        }
        let _ = out.send(batch);
        let mut all = results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, r) in done {
            all[i] = Some(r);
        }
    };
    let sync = opts.sync;
    let commit = move || {
        let mut failed: Vec<(usize, Fail)> = Vec::new();
        let mut pending = Batch::default();
        // Blocks for the next hand-over, then takes whatever else is waiting: the longer the
        // last syncfs took, the more the next one covers.
        while let Ok(mut first) = committer_inbox.recv() {
            pending.append(&mut first);
            while let Ok(mut more) = committer_inbox.try_recv() {
                pending.append(&mut more);
            }
            if let Err((fail, tags)) = pending.flush(sync) {
                failed.extend(
                    tags.into_iter()
                        .map(|t| (t, Fail::new(fail.code, fail.message.clone()))),
                );
            }
        }
        failed
    };
    let extra = mirror.connections.clamp(1, 64).min(jobs.len().max(1)) - 1;
    let mut siblings: Vec<Session> = (0..extra).map(|_| session.sibling(opts.clone())).collect();
    let failed = std::thread::scope(|scope| {
        let committer = scope.spawn(commit);
        for sibling in &mut siblings {
            let out = to_committer.clone();
            scope.spawn(|| work(sibling, out));
        }
        work(session, to_committer);
        committer.join().unwrap_or_default()
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (i, fail) in failed {
        if let Some(r) = results.get_mut(i) {
            *r = Some(Err(fail));
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Fail::new(EXIT_LOCAL_IO, "a mirror worker stopped"))))
        .collect()
}

/// One file, prepared: conditional when the record vouches for the copy on disk.
fn prepare<'t>(opts: &Options, job: &Job, folder: &Folder) -> Result<FileJob<'t>, Fail> {
    // A file the record lists is the mirror's own: asked for conditionally while it is the
    // copy saved, fetched again and replaced when it was changed here. A file the record does
    // not know is not replaced without --force.
    let copy = folder.records.get(&job.encoded).map(|r| {
        if copy_is_current(&job.dest, r) {
            (r.etag.as_deref(), r.last_modified.as_deref())
        } else {
            (None, None)
        }
    });
    // Messages name the file as the user will find it under DEST.
    let label = printable(job.dest.as_os_str().as_encoded_bytes());
    FileJob::prepare(opts, &job.dest, &label, None, copy)
}

/// Whether the file at `dest` is the copy `record` describes: a regular file whose
/// modification time is still the `Last-Modified` it was saved with.
fn copy_is_current(dest: &Path, record: &Record) -> bool {
    let Ok(m) = fs::symlink_metadata(dest) else {
        return false;
    };
    if !m.is_file() || (record.etag.is_none() && record.last_modified.is_none()) {
        return false;
    }
    match record
        .last_modified
        .as_deref()
        .map(|d| parse_http_date(d.as_bytes()))
    {
        None => true,
        Some(None) => false,
        Some(Some(secs)) => m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .is_some_and(|d| d.as_secs() == secs),
    }
}

/// Reads `dest`'s record: `encoded-name<TAB>etag<TAB>last-modified` lines, `-` for none.
/// A missing or damaged record only means every file there is fetched again.
fn read_records(dest: &Path) -> HashMap<String, Record> {
    let text = fs::read_to_string(dest.join(RECORD)).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let (name, etag, date) = (f.next()?, f.next()?, f.next()?);
            let field = |v: &str| (v != "-" && !v.is_empty()).then(|| v.to_owned());
            Some((
                name.to_owned(),
                Record {
                    etag: field(etag),
                    last_modified: field(date),
                },
            ))
        })
        .collect()
}

/// Writes `dest`'s record atomically (a temporary file renamed over it).
fn write_records(dest: &Path, records: &HashMap<String, Record>) -> std::io::Result<()> {
    let mut names: Vec<&String> = records.keys().collect();
    names.sort();
    let mut text = String::new();
    for name in names {
        let r = &records[name];
        let clean = |v: &Option<String>| {
            v.as_deref()
                .filter(|v| !v.contains(['\t', '\n', '\r']))
                .unwrap_or("-")
                .to_owned()
        };
        text += &format!("{name}\t{}\t{}\n", clean(&r.etag), clean(&r.last_modified));
    }
    let tmp = dest.join(format!("{RECORD}.tmp"));
    fs::write(&tmp, text)?;
    fs::rename(&tmp, dest.join(RECORD))
}

/// `--delete`: removes the files in `folder` that its listing no longer names.
fn delete_unlisted(folder: &Folder, verbose: bool, summary: &mut Summary) {
    let Ok(entries) = fs::read_dir(&folder.dest) else {
        return;
    };
    let mut listed = std::collections::HashSet::new();
    for encoded in &folder.listed {
        let mut buf = [0u8; MAX_TARGET];
        if let Ok(name) = decode_name(encoded, &mut buf) {
            listed.insert(name.to_owned());
            listed.insert(format!("{name}.part"));
            listed.insert(format!("{name}.part.meta"));
        }
    }
    for entry in entries.flatten() {
        let name = entry.file_name();
        let keep = name
            .to_str()
            .is_some_and(|n| listed.contains(n) || n.starts_with(RECORD));
        let is_file = entry
            .file_type()
            .is_ok_and(|t| t.is_file() || t.is_symlink());
        if keep || !is_file {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => {
                summary.removed += 1;
                if verbose {
                    eprintln!(
                        "satchel-client: removed {} (no longer on the server)",
                        printable(path.as_os_str().as_encoded_bytes())
                    );
                }
            }
            Err(e) => summary.fail(Fail::local(path.display(), &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_damage() {
        let dir = tempfile_dir();
        let mut records = HashMap::new();
        records.insert(
            "a%20b".to_owned(),
            Record {
                etag: Some("\"1-2\"".into()),
                last_modified: Some("Sun, 06 Nov 1994 08:49:37 GMT".into()),
            },
        );
        records.insert("c".to_owned(), Record::default());
        write_records(&dir, &records).expect("writes");
        assert_eq!(read_records(&dir), records);
        fs::write(dir.join(RECORD), "garbage\n\n").expect("damage");
        assert!(read_records(&dir).is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("satchel-mirror-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}
