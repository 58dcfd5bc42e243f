//! The feed position kept across restarts: a low-water mark (see
//! [`Ledger`](crate::ledger::Ledger)), one decimal number in a file.
//!
//! Losing a write only means replaying more on restart, and handling is
//! idempotent, so an unreadable file means "from the start", not an error.

use std::io;
use std::path::PathBuf;

use sealplane_host::durable;

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
        let this = self.clone();
        // A join error means the save panicked; the next save tries again.
        let _ = tokio::task::spawn_blocking(move || this.save_sync(position)).await;
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
}
