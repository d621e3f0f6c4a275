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

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use std::hint::black_box;

    fn rss_anon_kib() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Cache-sized blocks freed between small ones that stay (the pattern of evicted entries
    /// among live ones) leave the resident memory: with glibc's dynamic threshold, raised by
    /// the first freed 4 MiB block, they would stay as holes in an arena heap (64 MiB here).
    #[test]
    fn freed_large_blocks_leave_resident_memory() {
        assert!(super::return_large_blocks());
        let before = rss_anon_kib();
        drop(black_box(vec![1u8; 4 << 20]));
        let mut large = Vec::new();
        let mut small = Vec::new();
        for i in 0..64u8 {
            large.push(black_box(vec![i; 1 << 20]));
            small.push(black_box(vec![i; 1024]));
        }
        drop(large);
        let grown = rss_anon_kib().saturating_sub(before);
        assert!(
            grown < 16 << 10,
            "{grown} KiB still resident after freeing 64 MiB"
        );
        drop(small);
    }
}
