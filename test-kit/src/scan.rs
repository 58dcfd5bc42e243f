//! The plaintext scan (SPEC §1.1): every byte of every file under a
//! directory searched for a value raw, in base64 and in hex; and the
//! values and input files a scan is run for.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Every file under `dir` (recursively) holding `plaintext` raw, as base64
/// or as hex, each as `PATH (form)`; empty when it is nowhere.
pub fn scan_dir(dir: &Path, plaintext: &[u8]) -> Vec<String> {
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("raw", plaintext.to_vec()),
        ("base64", STANDARD.encode(plaintext).into_bytes()),
        ("hex", hex::encode(plaintext).into_bytes()),
    ];
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(bytes) = fs::read(&path) else { continue };
            for (form, needle) in &needles {
                if contains(&bytes, needle) {
                    found.push(format!("{} ({form})", path.display()));
                }
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A distinctive secret value for one test, so a scan can only match it.
pub fn marker(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// Writes `content` to a new file `name` in `dir`, which must be outside
/// every scanned directory (input files hold plaintext by design).
pub fn input_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let mut f = File::create(&path).unwrap();
    f.write_all(content).unwrap();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_value_raw_in_base64_and_in_hex_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let value = marker("v");
        std::fs::create_dir(dir.path().join("deep")).unwrap();
        std::fs::write(dir.path().join("raw"), format!("x{value}y")).unwrap();
        std::fs::write(dir.path().join("deep/b64"), STANDARD.encode(&value)).unwrap();
        std::fs::write(dir.path().join("hex"), hex::encode(&value)).unwrap();
        std::fs::write(dir.path().join("clean"), "nothing here").unwrap();
        let mut found = scan_dir(dir.path(), value.as_bytes());
        found.sort();
        let shown =
            |name: &str, form: &str| format!("{} ({form})", dir.path().join(name).display());
        assert_eq!(
            found,
            vec![
                shown("deep/b64", "base64"),
                shown("hex", "hex"),
                shown("raw", "raw")
            ]
        );
        assert!(scan_dir(dir.path(), marker("absent").as_bytes()).is_empty());
    }
}
