//! `limit_arenas(1)`: memory one thread frees is reused by another, rather
//! than each thread's arena staying as large as its own peak (ADR 0033).
//! A test binary of its own without the test harness: the limit must be
//! set before any other thread allocates, and the harness's threads would.

#[cfg(all(feature = "memory", target_os = "linux", target_env = "gnu"))]
mod common;

#[cfg(all(feature = "memory", target_os = "linux", target_env = "gnu"))]
fn main() {
    use std::num::NonZeroU16;
    use std::sync::mpsc;

    use common::resident_kib;

    const BLOCK: usize = 4096;
    const BLOCKS: usize = 16 * 1024; // 64 MiB

    // Given one arena for the whole process,
    assert!(sealplane_host::memory::limit_arenas(NonZeroU16::MIN));
    // a thread that filled 64 MiB in small blocks and freed all but every
    // 64th (those kept pin the freed ones between them), and lives on,
    let (freed_tx, freed) = mpsc::channel();
    let (end_tx, end) = mpsc::channel::<()>();
    let first = std::thread::spawn(move || {
        let mut blocks: Vec<Box<[u8]>> = (0..BLOCKS)
            .map(|i| vec![(i % 251) as u8 + 1; BLOCK].into_boxed_slice())
            .collect();
        let mut i = 0;
        blocks.retain(|_| {
            i += 1;
            i % 64 == 0
        });
        freed_tx.send(()).unwrap();
        end.recv().unwrap();
        blocks.len()
    });
    freed.recv().unwrap();
    let before = resident_kib();
    // when another thread, beside it, fills 48 MiB in small blocks,
    let second = std::thread::spawn(|| {
        let blocks: Vec<Box<[u8]>> = (0..BLOCKS * 3 / 4)
            .map(|i| vec![(i % 241) as u8 + 1; BLOCK].into_boxed_slice())
            .collect();
        let grown = resident_kib();
        (blocks.iter().all(|b| b[0] == b[BLOCK - 1]), grown)
    });
    let (intact, grown) = second.join().unwrap();
    end_tx.send(()).unwrap();
    assert_eq!(first.join().unwrap(), BLOCKS / 64);
    // then it takes the memory the first one freed: the process grows by
    // far less than the 48 MiB it allocated (in an arena of its own it
    // would grow by all of it).
    assert!(intact);
    assert!(
        grown < before + 16 * 1024,
        "resident {before} KiB before the second thread, {grown} KiB with its 48 MiB"
    );
    println!("one arena: resident {before} KiB, then {grown} KiB with another thread's 48 MiB");
}

#[cfg(not(all(feature = "memory", target_os = "linux", target_env = "gnu")))]
fn main() {}
