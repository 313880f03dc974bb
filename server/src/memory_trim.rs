//! Gives memory the allocator keeps but no longer uses back to the operating system.
//!
//! glibc's malloc returns freed memory to the kernel only from the top of each arena;
//! memory freed in the middle (a burst of creates then deletes, the buffers of a
//! snapshot, a sync of a follower) stays resident. After the benchmark's create runs
//! (100 k+ nodes of 1 KiB created, then deleted) a server would otherwise sit at its peak
//! RSS forever. A background thread checks every few seconds how much free memory the
//! arenas hold (`mallinfo2`, cheap) and calls `malloc_trim(0)` only when that is more
//! than [`TRIM_ABOVE`], so an idle or steady server never pays for it.
//!
//! Only for glibc targets; elsewhere [`spawn`] does nothing.

use std::time::Duration;

/// Free bytes held by the allocator above which a trim is worth its cost.
pub const TRIM_ABOVE: usize = 16 << 20;
/// How often the thread looks.
pub const EVERY: Duration = Duration::from_secs(5);

/// Starts the trimming thread (detached; it lives as long as the process).
pub fn spawn() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let _ = std::thread::Builder::new()
            .name("memory-trim".into())
            .spawn(|| loop {
                std::thread::sleep(EVERY);
                trim_if_worth_it();
            });
    }
}

/// Free bytes the allocator holds (glibc: `fordblks`), or `None` where unknown.
pub fn free_held() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 has no preconditions and returns a plain struct.
        let info = unsafe { libc::mallinfo2() };
        Some(info.fordblks)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Trims when more than [`TRIM_ABOVE`] bytes are free; returns whether it trimmed.
pub fn trim_if_worth_it() -> bool {
    match free_held() {
        Some(free) if free > TRIM_ABOVE => {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim has no preconditions; it only releases free pages.
            unsafe {
                libc::malloc_trim(0);
            }
            true
        }
        _ => false,
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap()
    }

    #[test]
    fn freed_small_blocks_go_back_to_the_system() {
        // Many small blocks (below the mmap threshold, so they live in the heap), then
        // free all but every 64th: the heap cannot shrink from its top, but trim
        // releases the free pages in the middle.
        let mut blocks: Vec<Box<[u8]>> = (0..100_000).map(|_| vec![1u8; 1000].into()).collect();
        let mut kept = Vec::new();
        for (i, b) in blocks.drain(..).enumerate() {
            if i % 64 == 0 {
                kept.push(b);
            }
        }
        let before = rss_kib();
        assert!(free_held().unwrap() > TRIM_ABOVE, "{:?}", free_held());
        assert!(trim_if_worth_it());
        let after = rss_kib();
        assert!(
            after + 50 * 1024 < before,
            "RSS {before} KiB before the trim, {after} KiB after"
        );
        assert_eq!(kept.len(), 100_000 / 64 + 1);
    }
}
