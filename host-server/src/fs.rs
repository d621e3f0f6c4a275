//! The host's file source: files under ROOT, opened with `openat2(RESOLVE_BENEATH)`.
//!
//! Containment is the kernel's job, not string checks: every open resolves the (already
//! normalised) path relative to a descriptor of ROOT with `RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS`, so `..`, absolute symbolic links and links that lead outside ROOT
//! fail with `EXDEV` whenever they are swapped in. A link that stays inside is followed.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use satchel_core::listing::{Entry, ListingView, ListingWriter};
use satchel_core::path::SafePath;
use satchel_core::source::{Arrival, FileKind, FileSource, FileVersion, Metadata, SourceError};

/// An open file: its descriptor, shared by every request that waited for the same open
/// ([`crate::iopool`]), and, for a file the cache may take, its bytes read ahead by the I/O
/// pool with the metadata checked after that read, so that the cache fill on the worker's loop
/// reads memory, not the disk.
#[derive(Clone)]
pub(crate) struct HostFile {
    fd: Arc<OwnedFd>,
    ahead: Option<Arc<ReadAhead>>,
}

/// A whole file read ahead, and its metadata after the read (equal to what the open reported).
pub(crate) struct ReadAhead {
    bytes: Vec<u8>,
    after: Metadata,
}

impl HostFile {
    fn new(fd: OwnedFd) -> Self {
        Self {
            fd: Arc::new(fd),
            ahead: None,
        }
    }

    /// Whether the file's bytes were read ahead.
    pub(crate) fn is_read_ahead(&self) -> bool {
        self.ahead.is_some()
    }

    /// Reads the whole file (`meta.version.len` bytes) into memory and keeps it if the file
    /// was the version `meta` names all along (`fstat` after the read); otherwise the file
    /// stays without read-ahead (its bytes cannot be trusted to be one version).
    pub(crate) fn read_ahead(&mut self, source: &FsSource, meta: &Metadata) {
        let Ok(len) = usize::try_from(meta.version.len) else {
            return;
        };
        let mut bytes = vec![0u8; len];
        let mut done = 0;
        while done < len {
            match source.read_at(self, done as u64, &mut bytes[done..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => done += n,
            }
        }
        match source.file_metadata(self) {
            Ok(after) if after.version == meta.version => {
                self.ahead = Some(Arc::new(ReadAhead { bytes, after }));
            }
            _ => {}
        }
    }
}

impl AsFd for HostFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Files under one root folder.
pub(crate) struct FsSource {
    root: OwnedFd,
    root_path: PathBuf,
    allow_hidden: bool,
    /// Files up to this size are labelled by their content (the cache admits them, see
    /// `ContentCache::keeps_digests`), which a listing cannot know without reading them: their
    /// JSON entries carry no `etag`. Larger files' entries carry the version tag a GET sends.
    content_tagged_up_to: u64,
}

impl FsSource {
    /// Opens `root`, which must be a folder.
    pub(crate) fn open(root: &Path, allow_hidden: bool) -> std::io::Result<Self> {
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            root: fd,
            root_path: root.to_path_buf(),
            allow_hidden,
            content_tagged_up_to: u64::MAX,
        })
    }

    /// The same source, listing no `etag` for files of at most `max` bytes (those the cache
    /// admits, whose `ETag` is the content's digest).
    pub(crate) fn with_content_tags_up_to(mut self, max: u64) -> Self {
        self.content_tagged_up_to = max;
        self
    }

    /// The root folder as given.
    pub(crate) fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// `openat2` below the root; `path` must be a normalised [`SafePath`] (or empty = root).
    fn open_beneath(&self, path: &SafePath<'_>, flags: OFlags) -> Result<OwnedFd, SourceError> {
        let rel: &[u8] = if path.is_root() {
            b"."
        } else {
            path.as_bytes()
        };
        rustix::fs::openat2(
            self.root.as_fd(),
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(map_errno)
    }
}

/// Builds core metadata from `stat` (the version as [`FileVersion::from_stat`] folds it).
fn metadata_from(st: &Stat) -> Metadata {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => FileKind::File,
        FileType::Directory => FileKind::Dir,
        _ => FileKind::Other,
    };
    let ns = |secs: i64, nsec: u64| (secs as u64).wrapping_mul(1_000_000_000).wrapping_add(nsec);
    #[allow(clippy::unnecessary_cast)] // field widths differ between targets
    let mtime = ns(st.st_mtime as i64, st.st_mtime_nsec as u64);
    #[allow(clippy::unnecessary_cast)]
    let ctime = ns(st.st_ctime as i64, st.st_ctime_nsec as u64);
    #[allow(clippy::unnecessary_cast)]
    let (ino, dev) = (st.st_ino as u64, st.st_dev as u64);
    Metadata {
        kind,
        version: FileVersion::from_stat(st.st_size.max(0) as u64, mtime, ctime, dev, ino),
        modified: u64::try_from(st.st_mtime).ok(),
    }
}

fn map_errno(e: Errno) -> SourceError {
    match e {
        Errno::ACCESS | Errno::PERM => SourceError::Forbidden,
        // Does not exist, or resolves outside the root (EXDEV under RESOLVE_BENEATH), or
        // through a link loop, or a file used as a folder: all "not found" to the client.
        Errno::NOENT | Errno::NOTDIR | Errno::XDEV | Errno::LOOP | Errno::NAMETOOLONG => {
            SourceError::NotFound
        }
        _ => SourceError::Io,
    }
}

impl FileSource for FsSource {
    type File = HostFile;
    type Listing = Vec<u8>;

    fn metadata(&self, path: &SafePath<'_>) -> Result<Metadata, SourceError> {
        let fd = self.open_beneath(path, OFlags::PATH)?;
        rustix::fs::fstat(&fd)
            .map(|st| metadata_from(&st))
            .map_err(map_errno)
    }

    /// One `statat` below the root, following links without containment checks: sound for a
    /// probe only (see `FileSource::probe`). Each worker remembers results in its own memo
    /// (`WorkerSource`), with the request's arrival deciding what may be reused.
    fn probe(&self, path: &SafePath<'_>, _arrived: Arrival) -> Result<Metadata, SourceError> {
        let rel: &[u8] = if path.is_root() {
            b"."
        } else {
            path.as_bytes()
        };
        rustix::fs::statat(self.root.as_fd(), rel, AtFlags::empty())
            .map(|st| metadata_from(&st))
            .map_err(map_errno)
    }

    fn open(&self, path: &SafePath<'_>) -> Result<(HostFile, Metadata), SourceError> {
        // O_NONBLOCK: opening a fifo must not block the worker; regular files ignore it.
        let fd = self.open_beneath(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?;
        let meta = rustix::fs::fstat(&fd)
            .map(|st| metadata_from(&st))
            .map_err(map_errno)?;
        Ok((HostFile::new(fd), meta))
    }

    /// The metadata checked after the read-ahead for a file read ahead (its bytes are what
    /// `read_at` gives), else `fstat`.
    fn file_metadata(&self, file: &HostFile) -> Result<Metadata, SourceError> {
        if let Some(ahead) = &file.ahead {
            return Ok(ahead.after);
        }
        rustix::fs::fstat(file)
            .map(|st| metadata_from(&st))
            .map_err(map_errno)
    }

    fn read_at(&self, file: &HostFile, offset: u64, buf: &mut [u8]) -> Result<usize, SourceError> {
        if let Some(ahead) = &file.ahead {
            let src = usize::try_from(offset)
                .ok()
                .and_then(|o| ahead.bytes.get(o..))
                .unwrap_or_default();
            let n = src.len().min(buf.len());
            buf[..n].copy_from_slice(&src[..n]);
            return Ok(n);
        }
        loop {
            match rustix::io::pread(file, &mut *buf, offset) {
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => continue,
                Err(_) => return Err(SourceError::Io),
            }
        }
    }

    fn listing(&self, path: &SafePath<'_>, view: ListingView) -> Result<Vec<u8>, SourceError> {
        let dir_fd = self.open_beneath(path, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let dir = rustix::fs::Dir::read_from(&dir_fd).map_err(map_errno)?;
        // (name, metadata): names live in one buffer, entries borrow them once it is complete.
        let mut names = Vec::new();
        let mut found: Vec<(std::ops::Range<usize>, Metadata)> = Vec::new();
        for entry in dir {
            let Ok(entry) = entry else { break };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." || (!self.allow_hidden && name.starts_with(b".")) {
                continue;
            }
            // Follow links, but only those that stay inside the root (checked by openat2).
            let Ok(fd) = rustix::fs::openat2(
                &dir_fd,
                name,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            ) else {
                continue;
            };
            let Ok(st) = rustix::fs::fstat(&fd) else {
                continue;
            };
            let meta = metadata_from(&st);
            if meta.kind != FileKind::Other {
                found.push((names.len()..names.len() + name.len(), meta));
                names.extend_from_slice(name);
            }
        }
        let mut entries: Vec<Entry<'_>> = found
            .into_iter()
            .map(|(name, meta)| Entry {
                name: &names[name],
                is_dir: meta.kind == FileKind::Dir,
                size: if meta.kind == FileKind::Dir {
                    0
                } else {
                    meta.version.len
                },
                modified: meta.modified,
                version: Some(meta.version).filter(|v| v.len > self.content_tagged_up_to),
            })
            .collect();
        entries.sort_unstable_by(|a, b| view.sort.compare(a, b));
        let render = || -> Result<String, std::fmt::Error> {
            let out = String::with_capacity(2048 + entries.len() * 192);
            let mut writer = ListingWriter::begin(out, view, path.as_bytes())?;
            for entry in &entries {
                writer.entry(entry)?;
            }
            writer.finish()
        };
        let out = render().map_err(|_| SourceError::Io)?.into_bytes();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::ShardedCache;
    use satchel_core::cache::ContentCache;
    use satchel_core::http::etag::ETag;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("satchel-fs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn version(source: &FsSource) -> FileVersion {
        let path = SafePath::from_normalized(b"a.bin").unwrap();
        FileSource::open(source, &path).unwrap().1.version
    }

    /// A copy made as `cp -a` makes it (same bytes, same mtime in ns, another inode) has the
    /// same ETag and another version; a change of ctime alone (chmod) keeps the ETag and changes
    /// the version, so the cache drops the entry it had.
    #[test]
    fn copies_share_the_etag_and_the_cache_still_sees_inode_and_ctime() {
        let (one, two) = (temp_dir("one"), temp_dir("two"));
        std::fs::write(one.join("a.bin"), b"the same bytes on every node").unwrap();
        std::fs::copy(one.join("a.bin"), two.join("a.bin")).unwrap();
        let mtime = std::fs::metadata(one.join("a.bin"))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(two.join("a.bin"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let (src_one, src_two) = (
            FsSource::open(&one, false).unwrap(),
            FsSource::open(&two, false).unwrap(),
        );
        let (v1, v2) = (version(&src_one), version(&src_two));
        assert_ne!(v1, v2, "another inode is another version");
        assert_eq!(ETag::from_version(&v1), ETag::from_version(&v2));

        let cache = ShardedCache::new(1 << 20, 64, 1 << 20);
        let bytes = b"the same bytes on every node";
        let stored = cache.insert(b"a.bin", &v1, bytes.len(), &mut |buf| {
            buf.copy_from_slice(bytes);
            Ok(())
        });
        assert!(stored.is_some());
        assert!(cache.lookup(b"a.bin", &v1).is_some());

        // Change the ctime only: chmod until the clock has moved on (coarse timestamps).
        let file = one.join("a.bin");
        let ctime = |m: &std::fs::Metadata| (m.ctime(), m.ctime_nsec());
        let ctime_before = ctime(&std::fs::metadata(&file).unwrap());
        let mut mode = 0o600;
        for _ in 0..1000 {
            mode ^= 0o040;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let m = std::fs::metadata(&file).unwrap();
            if ctime(&m) != ctime_before {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let v3 = version(&src_one);
        assert_eq!(ETag::from_version(&v1), ETag::from_version(&v3));
        assert_ne!(v1, v3, "a new ctime is a new version");
        assert!(cache.lookup(b"a.bin", &v3).is_none());
        assert!(
            cache.lookup(b"a.bin", &v1).is_none(),
            "the stale entry was dropped"
        );
        assert_eq!(cache.stats().stale_drops, 1);

        std::fs::remove_dir_all(&one).unwrap();
        std::fs::remove_dir_all(&two).unwrap();
    }
}
