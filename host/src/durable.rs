//! Durable atomic files: a file is replaced (or created) whole or not at
//! all, even across a crash or power loss, and is never readable by more
//! than the mode the caller asks for, not even for a moment.
//!
//! How: the bytes go to a temporary file in the target's own directory
//! (same file system, so the rename is atomic), created with `O_EXCL`,
//! `O_NOFOLLOW` and the final mode from the start (a symlink planted at
//! the temporary name fails the create instead of redirecting the write); it is fsynced, renamed into place, and
//! the directory is fsynced so the rename itself survives a crash. A rename
//! without the fsyncs can leave an empty file after a power loss (the
//! rename reached the disk before the data did). On any error the
//! temporary file is removed.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// How temporary files start; a directory scan can skip them (a crash
/// between create and rename leaves one behind).
pub const TEMP_PREFIX: &str = ".sealplane-tmp-";

/// Why a durable write failed: which step, on which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}: {source}", path.display())]
pub struct DurableError {
    /// What was being done (`create a temporary file in`, `write`, `sync`,
    /// `rename into place`, `create`, `sync directory`...).
    pub step: &'static str,
    /// The file or directory it was done to.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl DurableError {
    /// The kind of the underlying I/O error (`AlreadyExists`, `NotFound`...).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

impl From<DurableError> for io::Error {
    fn from(e: DurableError) -> Self {
        io::Error::new(e.kind(), e)
    }
}

/// Replaces (or creates) `path` with `bytes`, atomically and durably; the
/// file ends with exactly `mode` (e.g. `0o600`), whatever the umask.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DurableError> {
    write(path, bytes, mode, Replace::Yes)
}

/// As [`write_atomic`], but never replaces an existing file: that fails
/// with [`io::ErrorKind::AlreadyExists`] and leaves the file as it was.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DurableError> {
    write(path, bytes, mode, Replace::No)
}

/// As [`write_atomic`], except that the directory is not fsynced: the
/// rename reaches the disk with the directory's next fsync (the next
/// durable write in it) or the file system's own commit, so after a power
/// loss the file may still hold its previous content, never a mix. For
/// records whose crash recovery accepts the previous content (one fsync
/// fewer per write).
pub fn write_atomic_deferring_dir_sync(
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), DurableError> {
    write(path, bytes, mode, Replace::YesWithoutDirSync)
}

/// Creates the directory `path` holding `files` (name, bytes), all of it
/// or nothing, even across a crash: the files are written and fsynced in
/// a temporary directory beside `path`, which is fsynced and renamed into
/// place (never over anything: an existing `path` fails with
/// [`io::ErrorKind::AlreadyExists`]), then the parent is fsynced. The
/// directory ends with `dir_mode`, each file with `file_mode`. A crash
/// before the rename leaves a temporary directory (named with
/// [`TEMP_PREFIX`]) and no `path`.
pub fn create_dir_with(
    path: &Path,
    dir_mode: u32,
    files: &[(&str, &[u8])],
    file_mode: u32,
) -> Result<(), DurableError> {
    let parent = parent_of(path);
    // Dropping `tmp` before the rename removes it and what it holds.
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempdir_in(parent)
        .map_err(failed("create a temporary directory in", parent))?;
    fs::set_permissions(tmp.path(), Permissions::from_mode(dir_mode))
        .map_err(failed("set the mode of", tmp.path()))?;
    for (name, bytes) in files {
        let file = tmp.path().join(name);
        let mut f = create_temp(&file, file_mode).map_err(failed("create", &file))?;
        f.set_permissions(Permissions::from_mode(file_mode))
            .map_err(failed("set the mode of", &file))?;
        f.write_all(bytes).map_err(failed("write", &file))?;
        f.sync_all().map_err(failed("sync", &file))?;
    }
    File::open(tmp.path())
        .and_then(|d| d.sync_all())
        .map_err(failed("sync directory", tmp.path()))?;
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        tmp.path(),
        rustix::fs::CWD,
        path,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| failed("create", path)(e.into()))?;
    // Renamed: nothing is left at the temporary path to remove.
    let _ = tmp.keep();
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(failed("sync directory", parent))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    Yes,
    YesWithoutDirSync,
    No,
}

/// The directory `path` is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn write(path: &Path, bytes: &[u8], mode: u32, replace: Replace) -> Result<(), DurableError> {
    let dir = parent_of(path);
    // Dropping `tmp` before it is persisted removes the temporary file,
    // so every early return below cleans up.
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .make_in(dir, |tmp| create_temp(tmp, mode))
        .map_err(failed("create a temporary file in", dir))?;
    // The umask may have taken bits from `mode`; the caller asked for it exactly.
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(failed("set the mode of", tmp.path()))?;
    tmp.write_all(bytes).map_err(failed("write", tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(failed("sync", tmp.path()))?;
    match replace {
        Replace::Yes | Replace::YesWithoutDirSync => tmp
            .persist(path)
            .map_err(|e| failed("rename into place", path)(e.error))?,
        Replace::No => tmp
            .persist_noclobber(path)
            .map_err(|e| failed("create", path)(e.error))?,
    };
    if replace == Replace::YesWithoutDirSync {
        return Ok(());
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed("sync directory", dir))
}

/// Creates the temporary file: never an existing one (`O_EXCL`), never
/// through a symlink (`O_NOFOLLOW`, which `O_EXCL` implies on Linux but
/// is said here too), with `mode` from the start (less the umask).
fn create_temp(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Names the step and path of an I/O error.
fn failed(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DurableError {
    let path = path.to_owned();
    move |source| DurableError { step, path, source }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn content_is_replaced_whole_and_no_temporary_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        write_atomic(&path, b"one\n", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one\n");
        write_atomic(&path, b"two\n", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        assert_eq!(names(dir.path()), ["checkpoint"]);
    }

    #[test]
    fn the_file_gets_exactly_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, b"new", 0o600).unwrap();
        assert_eq!(mode(&path), 0o600, "a new file, not the old one's mode");
        write_atomic(&path, b"newer", 0o640).unwrap();
        assert_eq!(mode(&path), 0o640);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file_and_the_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory where the file should go: the rename fails.
        let target = dir.path().join("busy");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        let e = write_atomic(&target, b"data", 0o600).unwrap_err();
        assert_eq!(e.step, "rename into place");
        assert!(e.to_string().contains("busy"), "{e}");
        assert_eq!(names(dir.path()), ["busy"]);
        assert_eq!(names(&target), ["inside"]);
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        let e = write_atomic(&missing.join("file"), b"data", 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "cannot create a temporary file in {}: ",
                missing.display()
            )),
            "{text}"
        );
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_symlink_at_the_temporary_path_does_not_redirect_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"untouched").unwrap();
        let planted = dir.path().join(format!("{TEMP_PREFIX}planted"));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let e = create_temp(&planted, 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        // A dangling link too: creating through it would make the file it names.
        let dangling = dir.path().join(format!("{TEMP_PREFIX}dangling"));
        let would_create = dir.path().join("created-through-link");
        std::os::unix::fs::symlink(&would_create, &dangling).unwrap();
        assert!(create_temp(&dangling, 0o600).is_err());
        assert!(!would_create.exists());
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"untouched").unwrap();
        fs::set_permissions(&victim, Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("known_reactors");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomic(&path, b"pins", 0o600).unwrap();
        assert!(
            !fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&path).unwrap(), b"pins");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
        // create_new refuses the link (it exists) and leaves the victim alone.
        let key = dir.path().join("master.key");
        std::os::unix::fs::symlink(&victim, &key).unwrap();
        assert_eq!(
            create_new(&key, b"k", 0o600).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(fs::read(&victim).unwrap(), b"untouched");
    }

    #[test]
    fn a_deferred_write_replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head");
        write_atomic_deferring_dir_sync(&path, b"one\n", 0o600).unwrap();
        write_atomic_deferring_dir_sync(&path, b"two\n", 0o640).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\n");
        assert_eq!(mode(&path), 0o640);
        assert_eq!(names(dir.path()), ["head"]);
    }

    #[test]
    fn a_directory_is_created_with_its_files_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("db");
        create_dir_with(
            &secret,
            0o700,
            &[("v1.json", b"one"), ("+head", b"1")],
            0o600,
        )
        .unwrap();
        assert_eq!(names(dir.path()), ["db"], "no temporary directory stays");
        assert_eq!(names(&secret), ["+head", "v1.json"]);
        assert_eq!(fs::read(secret.join("v1.json")).unwrap(), b"one");
        assert_eq!(mode(&secret), 0o700);
        assert_eq!(mode(&secret.join("+head")), 0o600);
    }

    #[test]
    fn a_directory_is_never_created_over_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("db");
        // Even an empty directory, which a plain rename would replace.
        fs::create_dir(&secret).unwrap();
        let e = create_dir_with(&secret, 0o700, &[("v1.json", b"one")], 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert_eq!(e.step, "create");
        assert!(names(&secret).is_empty());
        assert_eq!(
            names(dir.path()),
            ["db"],
            "the temporary directory is removed"
        );
    }

    #[test]
    fn create_new_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        create_new(&path, b"first\n", 0o600).unwrap();
        assert_eq!(mode(&path), 0o600);
        let e = create_new(&path, b"second\n", 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first\n");
        assert_eq!(names(dir.path()), ["master.key"]);
    }
}
