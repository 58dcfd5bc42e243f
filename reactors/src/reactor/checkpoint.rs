//! The feed position kept across restarts: a low-water mark (see
//! [`Ledger`](crate::ledger::Ledger)), one decimal number in a file.
//!
//! Losing a write only means replaying more on restart, and handling is
//! idempotent, so an unreadable file means "from the start", not an error.

use std::io;
use std::path::{Path, PathBuf};

/// The checkpoint file.
pub(super) struct Checkpoint {
    pub(super) path: PathBuf,
}

impl Checkpoint {
    /// The position to resume from: the saved one, else 1 (the start).
    pub(super) fn load(&self) -> u64 {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                eprintln!(
                    "sealplane-reactor: checkpoint {} is unreadable; replaying the feed from the start (handling is idempotent)",
                    self.path.display()
                );
                1
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(e) => {
                eprintln!(
                    "sealplane-reactor: cannot read checkpoint {}: {e}; replaying the feed from the start",
                    self.path.display()
                );
                1
            }
        }
    }

    /// Writes atomically; a lost write only means replaying more on restart.
    pub(super) fn save(&self, position: u64) {
        if let Err(e) = write_atomically(&self.path, format!("{position}\n").as_bytes()) {
            eprintln!(
                "sealplane-reactor: cannot save checkpoint {}: {e}",
                self.path.display()
            );
        }
    }
}

fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
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
        c.save(42);
        assert_eq!(c.load(), 42);
        std::fs::write(&c.path, "garbage").unwrap();
        assert_eq!(c.load(), 1);
    }
}
