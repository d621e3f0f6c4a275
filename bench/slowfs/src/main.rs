//! slowfs: a read-only FUSE passthrough of a folder that adds a fixed delay to the operations a
//! cold file costs on slow storage, for the slow-storage scenario of `bench/slow.sh`.
//!
//! ```text
//! slowfs [--delay-ms MS] [--getattr-delay-ms MS] [--ttl-ms MS] [--threads N] BACKING MOUNTPOINT
//! ```
//!
//! - `lookup` (a name seen for the first time, or again after its entry TTL), `open` and each
//!   `read` sleep `--delay-ms` (default 5) before doing the real work on BACKING: a cold 16 KiB
//!   file costs three delays, as a first access does on a network volume (name, open, data).
//! - `getattr` sleeps `--getattr-delay-ms` (default 0). The kernel caches attributes and entries
//!   for `--ttl-ms` (default 1000), like an NFS client's attribute cache, so a hot file's `stat`
//!   rarely reaches the file system at all.
//! - Every `open` is answered without `FOPEN_KEEP_CACHE`: the kernel drops the file's pages at
//!   each open, so data reached through a new open is always read (and delayed) again, whatever
//!   the backing folder's page cache holds.
//! - `--threads` (default 64) worker threads read requests from `/dev/fuse` (each with its own
//!   cloned fd); a delay holds only the thread of its own request, so up to N requests wait
//!   their delays at the same time, as on a device with a queue depth of N. The kernel's limit
//!   of background requests (readahead) is raised to N too.
//!
//! It runs in the foreground until the mount is removed (`umount MOUNTPOINT`), then prints
//! how many operations of each kind it served on stderr and exits 0.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, Request, SessionACL,
};

const USAGE: &str = "usage: slowfs [--delay-ms MS] [--getattr-delay-ms MS] [--ttl-ms MS] \
                     [--threads N] BACKING MOUNTPOINT";

struct Options {
    delay: Duration,
    getattr_delay: Duration,
    ttl: Duration,
    threads: usize,
    backing: PathBuf,
    mountpoint: PathBuf,
}

fn parse_ms(flag: &str, value: Option<String>) -> Result<Duration, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    match value.parse::<f64>() {
        Ok(ms) if ms.is_finite() && (0.0..=60_000.0).contains(&ms) => {
            Ok(Duration::from_secs_f64(ms / 1000.0))
        }
        _ => Err(format!(
            "{flag}: not a number of milliseconds in 0..=60000: {value:?}"
        )),
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut delay = Duration::from_millis(5);
    let mut getattr_delay = Duration::ZERO;
    let mut ttl = Duration::from_secs(1);
    let mut threads = 64;
    let mut paths = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--delay-ms" => delay = parse_ms(&arg, args.next())?,
            "--getattr-delay-ms" => getattr_delay = parse_ms(&arg, args.next())?,
            "--ttl-ms" => ttl = parse_ms(&arg, args.next())?,
            "--threads" => {
                let value = args.next().ok_or("--threads needs a value")?;
                threads = match value.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => n,
                    _ => return Err(format!("--threads: not a count in 1..=1024: {value:?}")),
                };
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let [backing, mountpoint]: [PathBuf; 2] = paths
        .try_into()
        .map_err(|_| "expected BACKING and MOUNTPOINT".to_string())?;
    let backing =
        fs::canonicalize(&backing).map_err(|e| format!("BACKING {}: {e}", backing.display()))?;
    if !backing.is_dir() {
        return Err(format!("BACKING {} is not a folder", backing.display()));
    }
    Ok(Options {
        delay,
        getattr_delay,
        ttl,
        threads,
        backing,
        mountpoint,
    })
}

/// How many operations of each kind were served (printed at exit).
#[derive(Default)]
struct Counters {
    lookup: AtomicU64,
    getattr: AtomicU64,
    open: AtomicU64,
    read: AtomicU64,
    read_bytes: AtomicU64,
}

/// Inode numbers of our own (1 is the root), one per backing (device, inode).
#[derive(Default)]
struct Inodes {
    paths: Vec<PathBuf>,
    by_backing: HashMap<(u64, u64), u64>,
}

struct SlowFs {
    backing: PathBuf,
    delay: Duration,
    getattr_delay: Duration,
    ttl: Duration,
    max_background: u16,
    inodes: RwLock<Inodes>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    next_fh: AtomicU64,
    counters: Counters,
}

fn io_err(e: &io::Error) -> Errno {
    match e.raw_os_error() {
        Some(code) => Errno::from_i32(code),
        None => Errno::EIO,
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nsecs = u32::try_from(nsecs).unwrap_or(0);
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nsecs),
        Err(_) => UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 0),
    }
}

fn attr(ino: u64, md: &fs::Metadata) -> FileAttr {
    let kind = FileType::from_std(md.file_type()).unwrap_or(FileType::RegularFile);
    FileAttr {
        ino: INodeNo(ino),
        size: md.size(),
        blocks: md.blocks(),
        atime: time(md.atime(), md.atime_nsec()),
        mtime: time(md.mtime(), md.mtime_nsec()),
        ctime: time(md.ctime(), md.ctime_nsec()),
        crtime: time(md.ctime(), md.ctime_nsec()),
        kind,
        perm: (md.mode() & 0o7777) as u16,
        nlink: md.nlink() as u32,
        uid: md.uid(),
        gid: md.gid(),
        rdev: md.rdev() as u32,
        blksize: md.blksize() as u32,
        flags: 0,
    }
}

impl SlowFs {
    fn new(o: &Options) -> Self {
        let inodes = Inodes {
            // index 0 unused, index 1 = root (the backing folder itself)
            paths: vec![PathBuf::new(), o.backing.clone()],
            by_backing: HashMap::new(),
        };
        Self {
            backing: o.backing.clone(),
            delay: o.delay,
            getattr_delay: o.getattr_delay,
            ttl: o.ttl,
            max_background: u16::try_from(o.threads).unwrap_or(u16::MAX),
            inodes: RwLock::new(inodes),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            counters: Counters::default(),
        }
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        let inodes = self.inodes.read().unwrap_or_else(PoisonError::into_inner);
        usize::try_from(ino.0)
            .ok()
            .filter(|&i| i >= 1)
            .and_then(|i| inodes.paths.get(i))
            .cloned()
            .ok_or(Errno::ESTALE)
    }

    /// Our inode number for a backing file, allocated on first sight.
    fn inode_of(&self, path: PathBuf, md: &fs::Metadata) -> u64 {
        if path == self.backing {
            return INodeNo::ROOT.0;
        }
        let key = (md.dev(), md.ino());
        let mut inodes = self.inodes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&ino) = inodes.by_backing.get(&key) {
            // A rename in the backing folder: the latest name wins.
            inodes.paths[ino as usize] = path;
            return ino;
        }
        let ino = inodes.paths.len() as u64;
        inodes.paths.push(path);
        inodes.by_backing.insert(key, ino);
        ino
    }

    fn file(&self, fh: FileHandle) -> Option<Arc<File>> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files.get(&fh.0).cloned()
    }
}

fn sleep(d: Duration) {
    if !d.is_zero() {
        thread::sleep(d);
    }
}

impl Filesystem for SlowFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // Let as many readahead requests be in flight as we have threads to wait for them.
        let n = self.max_background;
        let _ = config.set_max_background(n);
        let _ = config.set_congestion_threshold(n - n / 4);
        // Without this the kernel serialises lookups in one folder (the folder's lock is held
        // across the request), so cold files of one folder would wait for each other's delay.
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS) {
            eprintln!("slowfs: the kernel lacks {missing:?}: lookups in one folder serialise");
        }
        Ok(())
    }

    fn destroy(&mut self) {
        let c = &self.counters;
        eprintln!(
            "slowfs: served lookup={} getattr={} open={} read={} read_bytes={}",
            c.lookup.load(Ordering::Relaxed),
            c.getattr.load(Ordering::Relaxed),
            c.open.load(Ordering::Relaxed),
            c.read.load(Ordering::Relaxed),
            c.read_bytes.load(Ordering::Relaxed),
        );
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.counters.lookup.fetch_add(1, Ordering::Relaxed);
        sleep(self.delay);
        let path = match self.path(parent) {
            Ok(p) => p.join(name),
            Err(e) => return reply.error(e),
        };
        match fs::metadata(&path) {
            Ok(md) => {
                let ino = self.inode_of(path, &md);
                reply.entry(&self.ttl, &attr(ino, &md), Generation(0));
            }
            Err(e) => reply.error(io_err(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.counters.getattr.fetch_add(1, Ordering::Relaxed);
        sleep(self.getattr_delay);
        match self
            .path(ino)
            .and_then(|p| fs::metadata(p).map_err(|e| io_err(&e)))
        {
            Ok(md) => reply.attr(&self.ttl, &attr(ino.0, &md)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        sleep(self.delay);
        // Read-only mount: the kernel refuses writes before they reach us.
        match self
            .path(ino)
            .and_then(|p| File::open(p).map_err(|e| io_err(&e)))
        {
            Ok(file) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
                files.insert(fh, Arc::new(file));
                drop(files);
                // No FOPEN_KEEP_CACHE: the kernel drops this file's cached pages now.
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.counters.read.fetch_add(1, Ordering::Relaxed);
        sleep(self.delay);
        let Some(file) = self.file(fh) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(io_err(&e)),
            }
        }
        self.counters
            .read_bytes
            .fetch_add(got as u64, Ordering::Relaxed);
        reply.data(&buf[..got]);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files.remove(&fh.0);
        drop(files);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.path(ino) {
            Ok(p) if p.is_dir() => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dir = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let entries = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => return reply.error(io_err(&e)),
        };
        // Offsets are positions in read_dir's order, which is stable while the folder is.
        for (i, entry) in entries.enumerate().skip(offset as usize) {
            let Ok(entry) = entry else { continue };
            let Ok(md) = fs::metadata(entry.path()) else {
                continue;
            };
            let kind = FileType::from_std(md.file_type()).unwrap_or(FileType::RegularFile);
            let child = self.inode_of(entry.path(), &md);
            if reply.add(INodeNo(child), i as u64 + 1, kind, entry.file_name()) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("slowfs: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName(format!("slowfs:{}", opts.backing.display())),
        MountOption::Subtype("slowfs".to_string()),
    ];
    // Servers that drop privileges (nginx and h2o workers run as www-data) must read it too.
    config.acl = SessionACL::All;
    config.n_threads = Some(opts.threads);
    config.clone_fd = true;
    let fs = SlowFs::new(&opts);
    eprintln!(
        "slowfs: {} on {} (delay {:?}, getattr delay {:?}, ttl {:?}, {} threads)",
        opts.backing.display(),
        opts.mountpoint.display(),
        opts.delay,
        opts.getattr_delay,
        opts.ttl,
        opts.threads
    );
    match fuser::mount(fs, Path::new(&opts.mountpoint), &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slowfs: mount on {}: {e}", opts.mountpoint.display());
            ExitCode::FAILURE
        }
    }
}
