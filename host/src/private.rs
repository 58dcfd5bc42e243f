//! Reading files that must be private: key and token files (no group or
//! other access at all) and trusted configuration (owned by this user,
//! writable by no one else).
//!
//! Every check is made on the opened handle (`fstat` of the descriptor
//! that is then read), never on a second look at the path, so a file
//! swapped in between the check and the read is never used. A symlink is
//! followed when opening: the mode that counts is the file's that holds
//! the bytes.

use std::fs::{File, Metadata};
use std::io::{self, Read as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Why a private file was not read; never quotes its content.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// The file could not be opened or read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Io {
        /// What the file is (`master key file`, `known_reactors file`...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A key or token file that its group or others may access.
    #[error(
        "{what} {path} has mode {mode:04o}, open to group or others; refusing to use it: run `chmod 600 {path}`",
        path = .path.display()
    )]
    Exposed {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A trusted file that its group or others may write.
    #[error(
        "{what} {path} has mode {mode:04o}, writable by group or others, so anyone could have changed it; refusing to trust it: check its content, then run `chmod 600 {path}`",
        path = .path.display()
    )]
    Writable {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A trusted file owned by another user.
    #[error(
        "{what} {path} is owned by uid {owner}, not by the user running this (uid {uid}); refusing to trust it: check its content, then `chown` it to yourself or remove it",
        path = .path.display()
    )]
    NotOwned {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The file's owner.
        owner: u32,
        /// The current (effective) uid.
        uid: u32,
    },
    /// Not a regular file (a directory, a device...).
    #[error("{what} {} is not a regular file", path.display())]
    NotRegular {
        /// What the file is.
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// Not UTF-8 text where text was expected.
    #[error("{what} {} is not UTF-8 text: is it the right file?", path.display())]
    NotText {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// Larger than any such file can be: probably the wrong path.
    #[error("{what} {} is larger than {limit} bytes: is it the right file?", path.display())]
    TooLarge {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
}

impl PrivateFileError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Reads a key or token file into `buf` (which the caller zeroizes), at
/// most `limit` bytes; refuses a file its group or others may access in
/// any way.
pub fn read_private(
    path: &Path,
    what: &'static str,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Result<(), PrivateFileError> {
    let (file, meta) = open(path, what)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::Exposed {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    read_capped(file, path, what, limit, buf)
}

/// Reads a file this user trusts (pins, trust anchors), at most `limit`
/// bytes; refuses one owned by another user or writable by its group or
/// others. Reading by others is allowed: the content is public.
pub fn read_trusted(
    path: &Path,
    what: &'static str,
    limit: u64,
) -> Result<Vec<u8>, PrivateFileError> {
    let (file, meta) = open(path, what)?;
    let uid = current_uid();
    if meta.uid() != uid {
        return Err(PrivateFileError::NotOwned {
            what,
            path: path.to_owned(),
            owner: meta.uid(),
            uid,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(PrivateFileError::Writable {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    let mut buf = Vec::new();
    read_capped(file, path, what, limit, &mut buf)?;
    Ok(buf)
}

/// The effective uid of this process: whom a trusted file must belong to.
pub fn current_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn open(path: &Path, what: &'static str) -> Result<(File, Metadata), PrivateFileError> {
    let io = |source| PrivateFileError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // fstat of the handle about to be read, not a second stat of the path.
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(PrivateFileError::NotRegular {
            what,
            path: path.to_owned(),
        });
    }
    Ok((file, meta))
}

fn read_capped(
    file: File,
    path: &Path,
    what: &'static str,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Result<(), PrivateFileError> {
    // Room for all of it up front, so the buffer (which may hold a key)
    // is never reallocated, leaving a copy behind; one byte more than the
    // limit tells "too large" from "exactly the limit".
    buf.reserve(
        usize::try_from(limit)
            .unwrap_or(usize::MAX / 2)
            .saturating_add(64),
    );
    let n = file
        .take(limit + 1)
        .read_to_end(buf)
        .map_err(|source| PrivateFileError::Io {
            what,
            path: path.to_owned(),
            source,
        })?;
    if n as u64 > limit {
        return Err(PrivateFileError::TooLarge {
            what,
            path: path.to_owned(),
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::{self, Permissions};

    use super::*;

    #[test]
    fn a_private_file_is_read_and_an_exposed_one_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        fs::write(&path, b"s3cret\n").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let mut buf = Vec::new();
        read_private(&path, "token file", 100, &mut buf).unwrap();
        assert_eq!(buf, b"s3cret\n");
        for mode in [0o640, 0o604, 0o610] {
            fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
            let e = read_private(&path, "token file", 100, &mut Vec::new()).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, PrivateFileError::Exposed { .. }), "{text}");
            assert!(
                text.starts_with(&format!("token file {}", path.display())),
                "{text}"
            );
            assert!(
                text.contains(&format!("chmod 600 {}", path.display())),
                "{text}"
            );
            assert!(!text.contains("s3cret"), "{text}");
        }
    }

    #[test]
    fn the_mode_checked_is_the_target_of_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        fs::write(&target, b"k").unwrap();
        fs::set_permissions(&target, Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = read_private(&link, "key file", 100, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(e, PrivateFileError::Exposed { mode: 0o644, .. }),
            "{e}"
        );
    }

    #[test]
    fn size_kind_and_absence_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        fs::write(&path, [b'a'; 11]).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let e = read_private(&path, "key file", 10, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, PrivateFileError::TooLarge { .. }), "{e}");
        let e = read_private(dir.path(), "key file", 10, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, PrivateFileError::NotRegular { .. }), "{e}");
        let e =
            read_private(&dir.path().join("none"), "key file", 10, &mut Vec::new()).unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }

    #[test]
    fn a_trusted_file_may_be_world_readable_but_not_writable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_reactors");
        fs::write(&path, b"pins").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_trusted(&path, "pins file", 100).unwrap(), b"pins");
        for mode in [0o664, 0o646, 0o666] {
            fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
            let e = read_trusted(&path, "pins file", 100).unwrap_err();
            assert!(matches!(e, PrivateFileError::Writable { .. }), "{e}");
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
    }

    #[test]
    fn a_trusted_file_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let uid = rustix::process::geteuid().as_raw();
        // Root can give a file away; anyone else tries a file root owns.
        let (path, owner) = if uid == 0 {
            let path = dir.path().join("known_reactors");
            fs::write(&path, b"pins").unwrap();
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            (path, 65534)
        } else {
            (PathBuf::from("/etc/passwd"), 0)
        };
        let e = read_trusted(&path, "pins file", 1 << 20).unwrap_err();
        assert!(
            matches!(e, PrivateFileError::NotOwned { owner: o, .. } if o == owner),
            "{e}"
        );
        assert!(
            e.to_string().contains(&format!("owned by uid {owner}")),
            "{e}"
        );
    }
}
