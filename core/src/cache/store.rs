//! Where cached bytes live: the [`Store`] trait.
//!
//! The index, the eviction policy, admission and the counters ([`super::Cache`]) are one piece
//! of code for every platform; only the storage of key and content bytes differs:
//!
//! - a board (and the tests) use [`super::ArenaStore`], a byte arena over storage the caller
//!   provides, whose handles *pin* an entry in place while it is being sent;
//! - a host uses a store whose handle is an `Arc<[u8]>`: a hit clones the `Arc` under the shard
//!   lock, the socket write happens after the lock is released, and since the bytes are
//!   immutable a reader can never see a torn mix of two versions. Such a store never pins
//!   ([`Store::is_pinned`] is always false): dropping an entry from the index only drops the
//!   store's reference, and the bytes live on until the last sender drops its clone.

use crate::source::SourceError;

/// Why a [`Store`] could not store an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// Not enough usable space or bookkeeping records right now; evicting may help.
    Full,
    /// The `fill` callback failed; nothing was stored.
    Fill(SourceError),
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Full => f.write_str("cache store full"),
            Self::Fill(e) => write!(f, "filling a cache entry failed: {e}"),
        }
    }
}

impl core::error::Error for StoreError {}

/// The `fill` callback of an insertion: writes exactly `buf.len()` content bytes into `buf`.
pub type Fill<'a> = dyn FnMut(&mut [u8]) -> Result<(), SourceError> + 'a;

/// Storage of cached keys and contents, accounted in bytes.
///
/// The [`super::Cache`] decides *what* is stored and evicted; the store decides *where*, and
/// reports how many bytes each entry costs ([`Store::charge`]) so the cache never holds more than
/// [`Store::capacity`].
///
/// Contract the cache relies on:
/// - `used() <= capacity()` at all times, and `alloc` fails with [`StoreError::Full`] (without
///   calling `fill`) rather than exceed it;
/// - an entry's key and content bytes never change while the entry exists;
/// - a [`Store::Handle`] keeps its content readable and unchanged until it is released (or
///   dropped, for stores whose handles own their bytes), even if the entry is freed meanwhile.
pub trait Store {
    /// What the index keeps per cached file (where its bytes are).
    type Entry;
    /// What a hit hands out: a reference to the content that stays valid until released.
    type Handle;

    /// The number of bytes this store may hold.
    fn capacity(&self) -> usize;

    /// The number of bytes held now, including entries freed while still pinned.
    fn used(&self) -> usize;

    /// The bytes an entry with a key of `key_len` bytes and `len` content bytes costs.
    fn charge(&self, key_len: usize, len: usize) -> usize;

    /// Stores `key` and `len` content bytes written by `fill` (called once, with a slice of
    /// exactly `len` bytes).
    ///
    /// # Errors
    /// [`StoreError::Full`] when there is no room right now (`fill` is then not called);
    /// [`StoreError::Fill`] when `fill` failed (nothing is kept).
    fn alloc(
        &mut self,
        key: &[u8],
        len: usize,
        fill: &mut Fill<'_>,
    ) -> Result<Self::Entry, StoreError>;

    /// Whether `entry` was stored under exactly `key`.
    fn key_eq(&self, entry: &Self::Entry, key: &[u8]) -> bool;

    /// Whether `entry` may not be freed now (a handle to it is out and its bytes cannot outlive
    /// the entry). Eviction skips pinned entries.
    fn is_pinned(&self, entry: &Self::Entry) -> bool;

    /// A handle to the content of `entry`, pinning it if this store pins; `None` if it cannot
    /// be handed out (e.g. a pin counter would overflow).
    fn acquire(&mut self, entry: &Self::Entry) -> Option<Self::Handle>;

    /// Gives a handle back (unpins).
    fn release(&mut self, handle: Self::Handle);

    /// Frees `entry`. If it is pinned its bytes stay (and stay counted in [`Store::used`])
    /// until the last handle is released.
    fn free(&mut self, entry: Self::Entry);
}
