//! `release_freed` gives back pages the allocator kept after they were
//! freed (ADR 0030). A test binary of its own: one process, nothing else
//! allocating beside it.

#![cfg(all(feature = "memory", target_os = "linux", target_env = "gnu"))]

mod common;

use common::resident_kib;

#[test]
fn freed_pages_kept_by_the_allocator_go_back_to_the_system() {
    const BLOCK: usize = 4096;
    const BLOCKS: usize = 16 * 1024; // 64 MiB
    let before = resident_kib();
    // Given 64 MiB in small blocks, written so that they are resident,
    let mut blocks: Vec<Box<[u8]>> = (0..BLOCKS)
        .map(|i| vec![(i % 251) as u8 + 1; BLOCK].into_boxed_slice())
        .collect();
    let filled = resident_kib();
    assert!(filled >= before + 60 * 1024, "{before} → {filled} KiB");
    // of which all but every 64th are freed (those kept, the last among
    // them, pin the freed ones between them, as long-lived state does),
    let mut i = 0;
    blocks.retain(|_| {
        i += 1;
        i % 64 == 0
    });
    let freed = resident_kib();
    // the allocator keeps the freed pages resident on its own;
    assert!(
        freed >= before + 48 * 1024,
        "the allocator gave the pages back by itself ({before} → {freed} KiB): this test shows nothing here"
    );
    // when they are released,
    assert!(sealplane_host::memory::release_freed());
    // then most of them are no longer resident, and the kept blocks are intact.
    let released = resident_kib();
    assert!(
        released + 32 * 1024 <= freed,
        "resident {freed} KiB before, {released} KiB after"
    );
    for (k, block) in blocks.iter().enumerate() {
        let i = (k + 1) * 64 - 1;
        assert!(block.iter().all(|&b| b == (i % 251) as u8 + 1));
    }
}
