//! Making the C allocator give freed cache buffers back to the system.
//!
//! glibc's `malloc` serves a request of at least `M_MMAP_THRESHOLD` bytes (128 KiB at start)
//! with its own `mmap`, which `free` unmaps. But the threshold is *dynamic*: each time such a
//! block is freed, the threshold rises to its size (up to 32 MiB), so once the first evicted
//! 4 MiB entry is freed, every later cache buffer up to 4 MiB comes from the per-thread arenas,
//! where freed space in the middle of a heap stays resident and gets fragmented by the next
//! buffers of other sizes. Measured with `bench/soak.py` (256 connections over 2,000 files of
//! 1 KiB to 4 MiB changing every 2 s, 64 MiB cache): RSS 106 to 137 MiB with the dynamic
//! threshold, 71 MiB with a fixed one. A fixed threshold (setting it turns the adjustment off)
//! keeps every buffer of 128 KiB and more in its own mapping, returned on free, so RSS follows
//! the bytes the cache really holds.

/// The size from which blocks get their own mapping: glibc's initial default, kept fixed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes glibc's mmap threshold (see the module doc). Call before any thread is spawned. Does
/// nothing with another C library; returns whether the setting was accepted.
#[allow(unsafe_code)]
pub(crate) fn return_large_blocks() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` takes two integers and touches no memory of ours; it only changes
        // the allocator's parameters, under the allocator's own lock.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
