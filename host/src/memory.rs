//! Handing the system back memory the process has freed (ADR 0030), and
//! keeping it in few arenas (ADR 0033).
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

/// Makes every thread allocate from one of at most `arenas` arenas
/// (glibc's `mallopt(M_ARENA_MAX)`, ADR 0033); whether glibc took it.
/// glibc otherwise gives threads up to eight arenas per core, and what
/// one thread allocates and another frees stays in the first one's: the
/// read model, folded by the runtime's workers from events that blocking
/// threads decoded, ends up spread over several arenas, each as large as
/// its own peak. Call it first thing in `main`, before any thread exists:
/// an arena, once made, stays. Elsewhere than glibc it does nothing and
/// returns false.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code, reason = "glibc's mallopt has no safe wrapper (ADR 0033)")]
pub fn limit_arenas(arenas: std::num::NonZeroU16) -> bool {
    // SAFETY: mallopt takes two integers and reads no memory of ours; it
    // sets a limit glibc reads under its own lock when a thread first
    // allocates, so it is sound from any thread at any time.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, i32::from(arenas.get())) == 1 }
}

/// Off glibc: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas(_arenas: std::num::NonZeroU16) -> bool {
    false
}
