//! Handing the system back memory the process has freed (ADR 0030).
//!
//! glibc's allocator keeps what a program frees in its arenas for reuse,
//! and gives pages back to the system on its own only from the top of a
//! heap. After a burst of short-lived allocations among long-lived ones
//! (folding the log at start, encoding a snapshot, walking the whole log),
//! the freed pages between them stay resident although nothing uses them:
//! the process looks as large as its peak. [`release_freed`] asks for them
//! back. Live allocations are not touched.

/// Asks the allocator to return every free page of every arena to the
/// system (glibc's `malloc_trim(0)`); whether it returned any. It walks
/// each arena under that arena's lock, so threads allocating meanwhile
/// wait: call it after a burst, never on a request's path. Elsewhere than
/// glibc it does nothing (other allocators return memory by themselves, or
/// have no such call) and returns false.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(
    unsafe_code,
    reason = "glibc's malloc_trim has no safe wrapper (ADR 0030)"
)]
pub fn release_freed() -> bool {
    // SAFETY: malloc_trim takes no pointer and reads no memory of ours; it
    // changes only glibc's own free lists, under the locks every other
    // allocator call takes, so it is sound from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Off glibc: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() -> bool {
    false
}
