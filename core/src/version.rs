//! [`FileVersion`]: which version of a file's content a byte sequence is. A plain value at the
//! bottom of the layers, so that the validators (`http`), the listings and the sources can all
//! name it without depending on one another.

/// The version of a file's content: what every copy of it shares, plus what this copy alone has.
///
/// Two reads of a file with equal versions are assumed to give the same bytes. The cache compares
/// whole versions (all three fields), so its freshness check sees every change any field
/// records. The `ETag` clients see is built from `len` and `stamp` only, the part that replicas
/// of one tree share (`cp -a`, `rsync -t`, an image), so every node serving a copy of the file
/// gives the same validator; `id` never leaves the server.
///
/// On the host: `len` is the size, `stamp` the modification time in ns, and `id` folds device,
/// inode and change time together ([`FileVersion::from_stat`]). A board with files in flash uses
/// the size, a build stamp and the table index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileVersion {
    /// Size in bytes. Shared by every copy, part of the `ETag`.
    pub len: u64,
    /// Modification stamp (in nanoseconds on the host). Shared by every copy, part of the `ETag`.
    pub stamp: u64,
    /// What this copy alone has (device, inode and change time on the host): checked by the
    /// cache, never shown to clients.
    pub id: u64,
}

impl FileVersion {
    /// The version of a file from POSIX `stat` fields (times in ns since the epoch).
    ///
    /// A rewrite in place changes mtime and ctime, a rename over changes the inode, and even a
    /// rewrite that restores the old mtime (`touch -r`) changes ctime: each changes the version.
    /// Only size and mtime reach the `ETag`; inode, device and ctime differ between copies of
    /// one tree, so they go into `id`, folded so that a change of any one of them still changes
    /// the version the cache compares, as it did when ctime was folded into `stamp`.
    pub const fn from_stat(len: u64, mtime_ns: u64, ctime_ns: u64, dev: u64, ino: u64) -> Self {
        Self {
            len,
            stamp: mtime_ns,
            id: ino ^ dev.rotate_left(40) ^ ctime_ns.rotate_left(29),
        }
    }
}
