//! `sealplane backup` and `sealplane restore`: the binary's edge over
//! `sealplane_event_store::backup` (which does the work and says why it
//! refused), printing what was copied and verified.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use sealplane_control_plane::config::{Config, EventStoreConfig};
use sealplane_event_store::backup::{self, BackupSummary};
use sealplane_event_store::{LogCheckpoint, LogHash, Position};

/// Copies the configured event log to `to` while the server may run.
pub async fn backup(config_path: &Path, to: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let EventStoreConfig::Embedded { path } = &config.event_store else {
        bail!(
            "`sealplane backup` copies the embedded event store; back up a PostgreSQL event store with pg_dump, a KurrentDB one with its own backup tools, or copy either to a file with `sealplane migrate-store --to embedded:FILE` (README, Backup and restore)"
        );
    };
    let (db, dest) = (path.clone(), to.to_owned());
    let started = Instant::now();
    let summary = tokio::task::spawn_blocking(move || backup::backup(&db, &dest))
        .await
        .context("the backup task failed")??;
    let BackupSummary {
        events,
        head,
        bytes,
    } = summary;
    println!(
        "Backed up {events} events from {} to {} ({bytes} bytes, mode 0600) in {} ms.",
        path.display(),
        to.display(),
        started.elapsed().as_millis()
    );
    println!(
        "  head: position {}, log hash {}",
        head.position.0, head.log_hash
    );
    println!("  It holds ciphertext, hashes and metadata only, never a secret value.");
    println!(
        "  Restore (verifying against this head) with:\n    sealplane restore --from {} --to DATA_DIR --checkpoint {}:{}",
        to.display(),
        head.position.0,
        head.log_hash
    );
    Ok(())
}

/// Verifies the backup `from` and, unless `verify_only`, restores it to `to`.
pub async fn restore(
    from: &Path,
    to: Option<PathBuf>,
    verify_only: bool,
    checkpoints: &[String],
) -> anyhow::Result<()> {
    let held = checkpoints
        .iter()
        .map(|c| parse_checkpoint(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    if verify_only {
        if to.is_some() {
            bail!("--verify checks a backup without restoring it; leave out --to");
        }
        // Verified on a private copy: opening a log may migrate its schema.
        let scratch = tempfile::Builder::new()
            .prefix("sealplane-verify-")
            .tempdir()?;
        let copy = scratch.path().join("events.db");
        std::fs::copy(from, &copy).with_context(|| format!("cannot read {}", from.display()))?;
        let verified = backup::verify_file(&copy, from, held).await?;
        println!(
            "{} verifies: {} events in {} streams, {} held checkpoint(s) matched, head position {}, log hash {} ({} ms). Nothing was restored.",
            from.display(),
            verified.events,
            verified.streams,
            verified.checkpoints,
            verified.head.position.0,
            verified.head.log_hash,
            started.elapsed().as_millis()
        );
        return Ok(());
    }
    let Some(to) = to else {
        bail!(
            "name where to restore with --to DATA_DIR_OR_FILE, or check the backup only with --verify"
        );
    };
    let db = backup::restore_target(&to);
    let restored = backup::restore(from, &db, held).await?;
    let v = restored.verified;
    println!(
        "Restored {} events in {} streams to {}; the whole hash chain verified ({} held checkpoint(s) matched) in {} ms.",
        v.events,
        v.streams,
        db.display(),
        v.checkpoints,
        started.elapsed().as_millis()
    );
    println!(
        "  head: position {}, log hash {}",
        v.head.position.0, v.head.log_hash
    );
    println!(
        "  Upload requests open when the backup was taken cannot finish (their one-time keys are gone); sealctl retries them."
    );
    Ok(())
}

/// `POSITION:LOG_HASH`, as `sealplane backup` and `sealctl audit verify` print it.
fn parse_checkpoint(text: &str) -> anyhow::Result<LogCheckpoint> {
    let bad =
        || anyhow::anyhow!("--checkpoint must be POSITION:LOG_HASH (64 hex digits), not `{text}`");
    let (position, hash) = text.split_once(':').ok_or_else(bad)?;
    Ok(LogCheckpoint {
        position: Position(position.parse().map_err(|_| bad())?),
        log_hash: LogHash::from_hex(hash).ok_or_else(bad)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_a_position_and_a_log_hash() {
        let hash = "ab".repeat(32);
        let c = parse_checkpoint(&format!("42:{hash}")).unwrap();
        assert_eq!(c.position, Position(42));
        assert_eq!(c.log_hash.to_hex(), hash);
        for bad in ["42", "x:ab", &format!("42:{}", "ab".repeat(31))] {
            let err = parse_checkpoint(bad).unwrap_err().to_string();
            assert!(err.contains("POSITION:LOG_HASH"), "{err}");
        }
    }
}
