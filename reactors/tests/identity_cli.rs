//! `sealplane-reactor identity` as an admin runs it.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

fn identity(file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sealplane-reactor"))
        .args(["identity", "--file"])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn identity_is_created_once_owner_only_and_printed_stably() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys").join("identity");
    let first = identity(&file);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("created a new reactor identity"));
    let key = String::from_utf8(first.stdout).unwrap();
    assert_eq!(STANDARD.decode(key.trim()).unwrap().len(), 32, "{key}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let second = identity(&file);
    assert!(second.status.success());
    assert!(second.stderr.is_empty(), "no second creation");
    assert_eq!(
        String::from_utf8(second.stdout).unwrap(),
        key,
        "the same key every time"
    );
}

#[test]
fn an_identity_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("identity");
    assert!(identity(&file).status.success());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = identity(&file);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(out.stdout.is_empty(), "no key printed from an exposed file");
}
