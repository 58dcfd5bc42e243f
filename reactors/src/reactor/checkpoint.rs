//! The feed position kept across restarts: a low-water mark (see
//! [`Ledger`](crate::ledger::Ledger)), one decimal number in a file.
//!
//! Losing a write only means replaying more on restart, and handling is
//! idempotent, so an unreadable file means "from the start", not an error.

use std::io;
use std::path::PathBuf;

use sealplane_host::durable;
use tokio::task::JoinHandle;

/// The checkpoint file.
#[derive(Clone)]
pub(super) struct Checkpoint {
    pub(super) path: PathBuf,
}

impl Checkpoint {
    /// The position to resume from: the saved one, else 1 (the start).
    pub(super) fn load(&self) -> u64 {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                tracing::warn!(
                    path = %self.path.display(),
                    "checkpoint {} is unreadable; replaying the feed from the start (handling is idempotent)",
                    self.path.display()
                );
                1
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(e) => {
                tracing::warn!(
                    path = %self.path.display(),
                    error = %e,
                    "cannot read checkpoint {}: {e}; replaying the feed from the start",
                    self.path.display()
                );
                1
            }
        }
    }

    /// [`Checkpoint::save_sync`] on tokio's blocking pool, so its fsyncs do
    /// not stall a runtime worker.
    pub(super) async fn save(&self, position: u64) {
        // A join error means the save panicked; the next save tries again.
        let _ = self.spawn_save(position).await;
    }

    fn spawn_save(&self, position: u64) -> JoinHandle<()> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.save_sync(position))
    }

    /// Writes atomically and durably (0600); a failed write is logged, as
    /// it only means replaying more on restart.
    pub(super) fn save_sync(&self, position: u64) {
        if let Err(e) = durable::write_atomic(&self.path, format!("{position}\n").as_bytes(), 0o600)
        {
            tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "cannot save checkpoint {}: {e}",
                self.path.display()
            );
        }
    }
}

/// Saves made while the feed flows, in the background: the feed loop
/// hands a position over and goes on at once, rather than waiting for the
/// write and its fsyncs (several milliseconds while the disk is busy, with
/// every event behind it waiting too). One save at a time: a position
/// handed over while one is in flight is skipped (the next hand-over saves
/// the position then current), so saves never land out of order.
pub(super) struct Saver {
    checkpoint: Checkpoint,
    in_flight: Option<JoinHandle<()>>,
}

impl Saver {
    pub(super) fn new(checkpoint: Checkpoint) -> Self {
        Self {
            checkpoint,
            in_flight: None,
        }
    }

    /// Starts saving `position` unless a save is still in flight; whether
    /// it started.
    pub(super) fn start(&mut self, position: u64) -> bool {
        if self.in_flight.as_ref().is_some_and(|h| !h.is_finished()) {
            return false;
        }
        self.in_flight = Some(self.checkpoint.spawn_save(position));
        true
    }

    /// The last save, on stopping: waits for the one in flight, so that it
    /// cannot land after this one, then saves `position`.
    pub(super) async fn finish(mut self, position: u64) {
        if let Some(in_flight) = self.in_flight.take() {
            let _ = in_flight.await;
        }
        self.checkpoint.save(position).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_survive_a_restart_and_a_bad_file_means_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoint {
            path: dir.path().join("cp"),
        };
        assert_eq!(c.load(), 1);
        c.save_sync(42);
        assert_eq!(c.load(), 42);
        std::fs::write(&c.path, "garbage").unwrap();
        assert_eq!(c.load(), 1);
    }

    #[test]
    fn a_save_replaces_the_file_whole_privately_and_leaves_no_temporary_file() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoint {
            path: dir.path().join("reactor.checkpoint"),
        };
        c.save_sync(7);
        c.save_sync(1234);
        assert_eq!(std::fs::read_to_string(&c.path).unwrap(), "1234\n");
        let mode = std::fs::metadata(&c.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["reactor.checkpoint"]);
    }

    #[test]
    fn a_save_that_cannot_be_written_is_survived_and_means_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoint {
            path: dir.path().join("no-such-dir").join("cp"),
        };
        c.save_sync(42);
        assert_eq!(c.load(), 1);
    }

    #[tokio::test]
    async fn a_background_save_is_not_overtaken_and_the_last_save_is_the_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoint {
            path: dir.path().join("cp"),
        };
        let mut saver = Saver::new(c.clone());
        // Given a save started in the background,
        assert!(saver.start(5));
        // when another is handed over at once and the reactor then stops,
        saver.start(7);
        saver.finish(9).await;
        // then the file holds the stop's position, whichever of the
        // earlier saves ran.
        assert_eq!(c.load(), 9);
    }
}
