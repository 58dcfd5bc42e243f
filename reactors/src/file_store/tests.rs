//! The file store against real files in a temporary directory.
use std::future::Future;

use super::*;
use std::os::unix::fs::PermissionsExt as _;

use crate::master_key::{Insecurity, MasterKeyError, security_report};

const MARKER: &str = "Zq9-MARKER-hunter2-7xK";

/// Drives a future to completion on a current-thread runtime (the store
/// runs its file-system calls on tokio's blocking pool).
fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
        .block_on(fut)
}

fn value(password: &str) -> SecretValue {
    let mut v = SecretValue::new();
    v.insert("password", password.as_bytes().to_vec()).unwrap();
    v.insert("user", b"app".to_vec()).unwrap();
    v
}

fn meta(adopt: bool) -> WriteMeta {
    WriteMeta {
        uri: "file-dev://payments/db".into(),
        request_id: Uuid::new_v4(),
        adopt,
    }
}

fn store() -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("store"), MasterKey::generate()).unwrap();
    (dir, store)
}

fn put(s: &FileStore, path: &str, v: &SecretValue) -> Result<Written, UpstreamError> {
    block_on(s.put(path, v, &meta(false)))
}

fn get(s: &FileStore, path: &str) -> Result<Option<SecretValue>, UpstreamError> {
    block_on(s.get(path))
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn assert_tampered(r: Result<Option<SecretValue>, UpstreamError>) {
    match r {
        Err(e @ UpstreamError::Tampered { .. }) => {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(MARKER), "{text}");
        }
        other => panic!("expected Tampered, got {other:?}"),
    }
}

#[test]
fn round_trip() {
    let (_t, s) = store();
    let w = put(&s, "payments/db", &value(MARKER)).unwrap();
    assert_eq!(
        w,
        Written {
            version: 1,
            upstream_ref: "payments/db/v1.json".into(),
            changed: true
        }
    );
    let got = get(&s, "payments/db").unwrap().unwrap();
    assert_eq!(got.get("password"), Some(MARKER.as_bytes()));
    assert_eq!(got.get("user"), Some(&b"app"[..]));
    assert_eq!(got.len(), 2);
    assert!(get(&s, "payments/other").unwrap().is_none());
}

#[test]
fn unchanged_value_writes_nothing_and_changed_value_is_a_new_version() {
    let (_t, s) = store();
    let dir = s.root().join("a");
    put(&s, "a", &value(MARKER)).unwrap();
    let again = put(&s, "a", &value(MARKER)).unwrap();
    assert_eq!((again.version, again.changed), (1, false));
    // A first version stands alone, with no head yet.
    assert_eq!(files(&dir), ["v1.json"]);
    let next = put(&s, "a", &value("other")).unwrap();
    assert_eq!((next.version, next.changed), (2, true));
    assert_eq!(files(&dir), ["+head", "v1.json", "v2.json"]);
    let got = get(&s, "a").unwrap().unwrap();
    assert_eq!(got.get("password"), Some(&b"other"[..]));
    // A key added is a change too.
    let mut more = value("other");
    more.insert("extra", Vec::new()).unwrap();
    assert_eq!(put(&s, "a", &more).unwrap().version, 3);
}

#[test]
fn files_hold_neither_plaintext_nor_its_base64() {
    let (_t, s) = store();
    put(&s, "a", &value(MARKER)).unwrap();
    put(&s, "a", &value(&format!("{MARKER}!"))).unwrap();
    let b64 = STANDARD.encode(MARKER);
    for name in ["v1.json", "v2.json"] {
        let bytes = fs::read(s.root().join("a").join(name)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(MARKER) && !text.contains(&b64[..20]),
            "{name}"
        );
        assert!(text.contains("\"managed_by\": \"sealplane\""), "{text}");
    }
}

#[test]
fn each_version_has_a_fresh_data_key() {
    let (_t, s) = store();
    put(&s, "a", &value(MARKER)).unwrap();
    put(&s, "a", &value("x")).unwrap();
    put(&s, "a", &value(MARKER)).unwrap();
    let read = |n| -> VersionFile {
        serde_json::from_slice(&fs::read(s.root().join(format!("a/v{n}.json"))).unwrap()).unwrap()
    };
    let (v1, v3) = (read(1), read(3));
    assert_ne!(v1.wrapped_key, v3.wrapped_key);
    assert_ne!(v1.value, v3.value);
    assert_ne!(v1.value_nonce, v3.value_nonce);
    // Unwrapped, the data keys themselves differ.
    let dk = |vf: &VersionFile| {
        open(
            &s.files.key.0,
            &STANDARD.decode(&vf.key_nonce).unwrap(),
            &aad(AAD_KEY_TAG, "a", vf.meta.version, &vf.meta),
            &STANDARD.decode(&vf.wrapped_key).unwrap(),
        )
        .unwrap()
    };
    assert_ne!(*dk(&v1), *dk(&v3));
}

/// Rewrites a version file's JSON through `edit`.
fn edit(file: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(file).unwrap()).unwrap();
    edit(&mut json);
    fs::write(file, serde_json::to_vec(&json).unwrap()).unwrap();
}

fn flip_b64(s: &str) -> String {
    let mut bytes = STANDARD.decode(s).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    STANDARD.encode(bytes)
}

#[test]
fn tampering_is_detected() {
    for field in ["value", "wrapped_key", "value_nonce", "key_nonce"] {
        let (_t, s) = store();
        put(&s, "a", &value(MARKER)).unwrap();
        edit(&s.root().join("a/v1.json"), |j| {
            j[field] = flip_b64(j[field].as_str().unwrap()).into();
        });
        assert_tampered(get(&s, "a"));
        // A put does not silently write over what it cannot verify.
        assert!(matches!(
            put(&s, "a", &value(MARKER)),
            Err(UpstreamError::Tampered { .. })
        ));
    }
    for (field, new) in [
        ("uri", serde_json::json!("file-dev://other")),
        ("request_id", serde_json::json!(Uuid::new_v4())),
        ("created_at", serde_json::json!("2000-01-01T00:00:00.000Z")),
        ("adopted", serde_json::json!(true)),
        ("version", serde_json::json!(2)),
        ("path", serde_json::json!("b")),
    ] {
        let (_t, s) = store();
        put(&s, "a", &value(MARKER)).unwrap();
        edit(&s.root().join("a/v1.json"), |j| j["meta"][field] = new);
        assert_tampered(get(&s, "a"));
    }
    // A raw byte flipped inside the sealed value's base64.
    let (_t, s) = store();
    put(&s, "a", &value(MARKER)).unwrap();
    let file = s.root().join("a/v1.json");
    let mut bytes = fs::read(&file).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let at = text.find("\"value\": \"").unwrap() + 20;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    fs::write(&file, bytes).unwrap();
    assert_tampered(get(&s, "a"));
}

#[test]
fn a_file_moved_to_another_path_or_version_does_not_open() {
    let (_t, s) = store();
    put(&s, "a", &value(MARKER)).unwrap();
    put(&s, "b", &value("b-value")).unwrap();
    fs::copy(s.root().join("a/v1.json"), s.root().join("b/v1.json")).unwrap();
    assert_tampered(get(&s, "b"));
    // Copied as the second version of `a`, which has no head yet: a second
    // version is written after a head, so no crash leaves that.
    fs::copy(s.root().join("a/v1.json"), s.root().join("a/v2.json")).unwrap();
    assert_rolled_back(get(&s, "a"), "a");
    fs::remove_file(s.root().join("a/v2.json")).unwrap();
    // Copied as the next version of `a` with a head: read as a put that
    // crashed before its head moved, and it does not open there.
    put(&s, "a", &value("a-two")).unwrap();
    fs::copy(s.root().join("a/v1.json"), s.root().join("a/v3.json")).unwrap();
    assert_tampered(get(&s, "a"));
    // Two beyond the head: no crash leaves that.
    fs::rename(s.root().join("a/v3.json"), s.root().join("a/v4.json")).unwrap();
    assert_rolled_back(get(&s, "a"), "a");
    // Even with the clear metadata rewritten to match its new place.
    fs::copy(s.root().join("a/v1.json"), s.root().join("c-v1.json")).unwrap();
    fs::create_dir(s.root().join("c")).unwrap();
    fs::rename(s.root().join("c-v1.json"), s.root().join("c/v1.json")).unwrap();
    edit(&s.root().join("c/v1.json"), |j| {
        j["meta"]["path"] = "c".into()
    });
    assert_rolled_back(get(&s, "c"), "c");
    // With a head of its own (that verifies), the file itself is refused.
    fs::write(
        s.root().join("c/+head"),
        head::encode(
            &s.files.key,
            "c",
            Head {
                version: 1,
                deleted: false,
            },
        ),
    )
    .unwrap();
    assert_tampered(get(&s, "c"));
}

#[test]
fn another_master_key_does_not_open() {
    let t = tempfile::tempdir().unwrap();
    let s = FileStore::open(t.path(), MasterKey::generate()).unwrap();
    put(&s, "a", &value(MARKER)).unwrap();
    let other = FileStore::open(t.path(), MasterKey::generate()).unwrap();
    assert_tampered(get(&other, "a"));
    let dev = FileStore::open(t.path(), MasterKey::dev()).unwrap();
    assert_tampered(get(&dev, "a"));
}

#[test]
fn soft_delete_hides_and_destroy_removes() {
    let (_t, s) = store();
    put(&s, "a/b", &value(MARKER)).unwrap();
    put(&s, "a/b", &value("two")).unwrap();
    block_on(s.delete("a/b", false)).unwrap();
    assert!(get(&s, "a/b").unwrap().is_none());
    assert_eq!(
        files(&s.root().join("a/b")),
        ["+head", "v1.json", "v2.json"]
    );
    // Deleting again is harmless; writing after a delete makes a new version.
    block_on(s.delete("a/b", false)).unwrap();
    let w = put(&s, "a/b", &value("two")).unwrap();
    assert_eq!((w.version, w.changed), (3, true));
    assert_eq!(
        get(&s, "a/b").unwrap().unwrap().get("password"),
        Some(&b"two"[..])
    );
    assert_eq!(
        files(&s.root().join("a/b")),
        ["+head", "v1.json", "v2.json", "v3.json"]
    );
    block_on(s.delete("a/b", true)).unwrap();
    assert!(!s.root().join("a/b").exists());
    assert!(get(&s, "a/b").unwrap().is_none());
    assert!(matches!(
        block_on(s.delete("a/b", true)),
        Err(UpstreamError::NotFound { .. })
    ));
}

#[test]
fn destroy_keeps_nested_secrets() {
    let (_t, s) = store();
    put(&s, "a", &value("outer")).unwrap();
    put(&s, "a/b", &value(MARKER)).unwrap();
    block_on(s.delete("a", true)).unwrap();
    assert!(get(&s, "a").unwrap().is_none());
    assert_eq!(files(&s.root().join("a")), ["b"]);
    assert_eq!(
        get(&s, "a/b").unwrap().unwrap().get("password"),
        Some(MARKER.as_bytes())
    );
}

#[test]
fn bad_paths_are_refused() {
    let (t, s) = store();
    let long = "a".repeat(513);
    for bad in [
        "../x",
        "a/../../x",
        "a//b",
        "",
        "/a",
        "a/",
        ".",
        "a/./b",
        "a b",
        "a\\b",
        "é",
        "a/deleted",
        "v1.json",
        "a/v12.json",
        ".sealplane-tmp-x",
        long.as_str(),
    ] {
        let e = put(&s, bad, &value(MARKER)).unwrap_err();
        assert!(
            matches!(e, UpstreamError::InvalidPath { .. }),
            "{bad}: {e:?}"
        );
        assert!(matches!(
            get(&s, bad),
            Err(UpstreamError::InvalidPath { .. })
        ));
    }
    assert!(!t.path().join("x").exists());
    let seg = "s".repeat(256);
    assert!(matches!(
        put(&s, &seg, &value(MARKER)),
        Err(UpstreamError::InvalidPath { .. })
    ));
    let ok = format!("{}/{}/c", "a".repeat(255), "b".repeat(254));
    assert_eq!(ok.len(), 512);
    for good in [
        "a",
        "A.b_c-9/x",
        "..a/b..",
        "v1/v0.json",
        "deleted-x",
        ok.as_str(),
    ] {
        put(&s, good, &value(MARKER)).unwrap();
    }
}

#[test]
fn symlinked_directories_are_refused() {
    let (t, s) = store();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, s.root().join("link")).unwrap();
    assert!(matches!(
        put(&s, "link/x", &value(MARKER)),
        Err(UpstreamError::Io { .. })
    ));
    assert!(files(&outside).is_empty());
}

#[test]
fn foreign_secrets_are_refused_unless_adopted() {
    let (_t, s) = store();
    let dir = s.root().join("legacy");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("v1.json"), br#"{"password": "plain"}"#).unwrap();
    let e = put(&s, "legacy", &value(MARKER)).unwrap_err();
    assert!(matches!(e, UpstreamError::NotManaged { .. }), "{e:?}");
    assert!(matches!(
        get(&s, "legacy"),
        Err(UpstreamError::NotManaged { .. })
    ));
    assert!(matches!(
        block_on(s.delete("legacy", true)),
        Err(UpstreamError::NotManaged { .. })
    ));
    assert_eq!(files(&dir), ["v1.json"]);

    let w = block_on(s.put("legacy", &value(MARKER), &meta(true))).unwrap();
    assert_eq!((w.version, w.changed), (2, true));
    assert_eq!(
        get(&s, "legacy").unwrap().unwrap().get("password"),
        Some(MARKER.as_bytes())
    );
    // Adopted once, managed afterwards; the foreign file is left as it was.
    assert_eq!(put(&s, "legacy", &value("next")).unwrap().version, 3);
    assert_eq!(
        fs::read(dir.join("v1.json")).unwrap(),
        br#"{"password": "plain"}"#
    );

    // Any other foreign file, and a version claiming another owner.
    let (_t, s) = store();
    put(&s, "x", &value(MARKER)).unwrap();
    fs::write(s.root().join("x/notes.txt"), b"hi").unwrap();
    assert!(matches!(
        put(&s, "x", &value("y")),
        Err(UpstreamError::NotManaged { .. })
    ));
    let dir = s.root().join("y");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("v1.json"),
        br#"{"format":"sealplane-file-v1","meta":{"managed_by":"someone"}}"#,
    )
    .unwrap();
    assert!(matches!(
        put(&s, "y", &value("y")),
        Err(UpstreamError::NotManaged { .. })
    ));
}

#[test]
fn modes_are_0600_and_0700() {
    let (_t, s) = store();
    put(&s, "a/b", &value(MARKER)).unwrap();
    block_on(s.delete("a/b", false)).unwrap();
    assert_eq!(mode(s.root()), 0o700);
    assert_eq!(mode(&s.root().join("a")), 0o700);
    assert_eq!(mode(&s.root().join("a/b")), 0o700);
    assert_eq!(mode(&s.root().join("a/b/v1.json")), 0o600);
    assert_eq!(mode(&s.root().join("a/b/+head")), 0o600);
    // No temporary file (or directory) is left behind.
    assert_eq!(files(&s.root().join("a/b")), ["+head", "v1.json"]);
    assert_eq!(files(&s.root().join("a")), ["b"]);
}

#[test]
fn master_key_loading_and_redaction() {
    let t = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let file = t.path().join("master.key");
    fs::write(&file, format!("{}\n", key.to_base64().as_str())).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let loaded = MasterKey::from_file(&file).unwrap();
    assert_eq!(*loaded.0, *key.0);
    assert!(!loaded.is_default() && MasterKey::dev().is_default());
    assert_eq!(format!("{loaded:?}"), "MasterKey([redacted])");
    let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ=";
    for bad in ["", "not base64!", secret, &STANDARD.encode([1u8; 33])] {
        let e = MasterKey::from_base64(bad).unwrap_err();
        assert!(matches!(e, MasterKeyError::Malformed));
        assert!(!format!("{e} {e:?}").contains("c2Vj"));
    }
    assert!(matches!(
        MasterKey::from_env("SEALPLANE_TEST_SURELY_UNSET_VAR"),
        Err(MasterKeyError::MissingEnv(_))
    ));
    assert!(matches!(
        MasterKey::from_file(&t.path().join("missing")),
        Err(MasterKeyError::File(e)) if e.is_not_found()
    ));
    let s = FileStore::open(t.path().join("s"), MasterKey::generate()).unwrap();
    assert!(!format!("{s:?}").contains(key.to_base64().as_str()));
}

#[test]
fn security_report_flags_dev_key_and_open_key_file() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("master.key");
    let key = MasterKey::generate();
    fs::write(&file, key.to_base64().as_bytes()).unwrap();

    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        security_report(Some(&file), &key),
        [Insecurity::KeyFileReadableByOthers {
            path: file.clone(),
            mode: 0o644
        }]
    );
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    assert!(security_report(Some(&file), &key).is_empty());
    assert!(security_report(None, &key).is_empty());

    let report = security_report(Some(&file), &MasterKey::dev());
    assert_eq!(report, [Insecurity::DefaultDevKey]);
    assert!(report[0].to_string().contains("development master key"));
    assert!(matches!(
        security_report(Some(&t.path().join("missing")), &key)[..],
        [Insecurity::KeyFileUnchecked { .. }]
    ));
}

/// The error a rolled-back secret gives: it names the path, never the value.
fn assert_rolled_back(r: Result<Option<SecretValue>, UpstreamError>, path: &str) {
    match r {
        Err(e) => {
            let text = format!("{e} {e:?}");
            assert!(text.contains(path), "{text}");
            assert!(!text.contains(MARKER), "{text}");
        }
        Ok(v) => panic!("expected an error, got Ok (a value: {})", v.is_some()),
    }
}

#[test]
fn a_deleted_newest_version_is_an_error_not_the_older_version() {
    let (_t, s) = store();
    put(&s, "a/b", &value(MARKER)).unwrap();
    put(&s, "a/b", &value("newest")).unwrap();
    fs::remove_file(s.root().join("a/b/v2.json")).unwrap();
    assert_rolled_back(get(&s, "a/b"), "a/b");
    // A write does not paper over it either.
    assert!(put(&s, "a/b", &value("three")).is_err());
    // Every version gone but the directory kept: not "no secret" either.
    fs::remove_file(s.root().join("a/b/v1.json")).unwrap();
    assert_rolled_back(get(&s, "a/b"), "a/b");
}

#[test]
fn an_edited_or_removed_deleted_marker_does_not_bring_a_version_back() {
    let (_t, s) = store();
    put(&s, "a/b", &value(MARKER)).unwrap();
    put(&s, "a/b", &value("two")).unwrap();
    block_on(s.delete("a/b", false)).unwrap();
    let marker = s.root().join("a/b/deleted");
    // The head records the delete; no marker is written.
    assert!(!marker.exists());
    // One planted naming an older version: the secret stays deleted.
    fs::write(&marker, "1\n").unwrap();
    assert!(get(&s, "a/b").unwrap().is_none());
    // One naming a version beyond the record is not believed.
    fs::write(&marker, "3\n").unwrap();
    assert_rolled_back(get(&s, "a/b"), "a/b");
    // A marker planted on a live secret is not believed either.
    put(&s, "c", &value("live")).unwrap();
    fs::write(s.root().join("c/deleted"), "1\n").unwrap();
    assert_rolled_back(get(&s, "c"), "c");
}

/// Writes `values` as versions 1, 2... in the layout from before heads.
fn legacy_secret(s: &FileStore, path: &str, values: &[&str]) -> PathBuf {
    let (dir, _) = s.files.secret_dir(path, Create::Parents).unwrap();
    fs::create_dir(&dir).unwrap();
    for (i, v) in values.iter().enumerate() {
        let version = i as u64 + 1;
        let bytes = s
            .files
            .version_file(
                path,
                version,
                &value(v),
                &meta(false),
                false,
                Layout::BeforeHeads,
            )
            .unwrap();
        write_atomic(&dir, &version_file_name(version), &bytes).unwrap();
    }
    dir
}

#[test]
fn a_store_written_before_heads_is_read_and_gets_a_head_on_its_next_write() {
    let (_t, s) = store();
    let dir = legacy_secret(&s, "old", &["one", "two"]);
    assert_eq!(files(&dir), ["v1.json", "v2.json"]);
    assert_eq!(
        get(&s, "old").unwrap().unwrap().get("password"),
        Some(&b"two"[..])
    );
    // The old marker still hides its version.
    fs::write(dir.join("deleted"), "2\n").unwrap();
    assert!(get(&s, "old").unwrap().is_none());
    let w = put(&s, "old", &value("three")).unwrap();
    assert_eq!(w.version, 3);
    assert_eq!(files(&dir), ["+head", "v1.json", "v2.json", "v3.json"]);
    // From now on the head guards it.
    fs::remove_file(dir.join("v3.json")).unwrap();
    assert_rolled_back(get(&s, "old"), "old");

    // A delete of an old secret writes a head too, which alone says deleted.
    let dir = legacy_secret(&s, "old2", &["one"]);
    block_on(s.delete("old2", false)).unwrap();
    assert_eq!(files(&dir), ["+head", "v1.json"]);
    assert!(get(&s, "old2").unwrap().is_none());
    // An old secret soft-deleted before heads keeps its marker, harmless now.
    let dir = legacy_secret(&s, "old3", &["one", "two"]);
    fs::write(dir.join("deleted"), "2\n").unwrap();
    assert_eq!(put(&s, "old3", &value("three")).unwrap().version, 3);
    assert_eq!(files(&dir), ["+head", "v1.json", "v2.json", "v3.json"]);
}

#[test]
fn a_removed_or_forged_head_is_an_error() {
    let (_t, s) = store();
    put(&s, "a", &value("one")).unwrap();
    put(&s, "a", &value("two")).unwrap();
    let dir = s.root().join("a");
    let head = fs::read(dir.join("+head")).unwrap();
    // Removing the head with the newest version does not fall back to the
    // old layout: the versions say a head was written.
    fs::remove_file(dir.join("+head")).unwrap();
    fs::remove_file(dir.join("v2.json")).unwrap();
    assert_rolled_back(get(&s, "a"), "a");
    // A head edited to name an older version does not verify.
    let edited = String::from_utf8(head)
        .unwrap()
        .replace("\"version\":2", "\"version\":1");
    fs::write(dir.join("+head"), edited).unwrap();
    assert_tampered(get(&s, "a"));
    // Nor does a head moved from another secret.
    put(&s, "b", &value("b")).unwrap();
    put(&s, "b", &value("b-two")).unwrap();
    fs::copy(s.root().join("b/+head"), dir.join("+head")).unwrap();
    assert_tampered(get(&s, "a"));
}

#[test]
fn a_crash_between_a_version_and_its_head_leaves_the_new_version() {
    let (_t, s) = store();
    put(&s, "a", &value("one")).unwrap();
    let dir = s.root().join("a");
    let head_at = |version| {
        head::encode(
            &s.files.key,
            "a",
            Head {
                version,
                deleted: false,
            },
        )
    };
    put(&s, "a", &value("two")).unwrap();
    // Crashed after v2.json, before the head's rename reached the disk.
    fs::write(dir.join("+head"), head_at(1)).unwrap();
    assert_eq!(
        get(&s, "a").unwrap().unwrap().get("password"),
        Some(&b"two"[..])
    );
    // The next put goes on from there.
    assert_eq!(put(&s, "a", &value("three")).unwrap().version, 3);
    assert_eq!(
        get(&s, "a").unwrap().unwrap().get("password"),
        Some(&b"three"[..])
    );
    // But a record two versions behind is not believed.
    fs::write(dir.join("+head"), head_at(1)).unwrap();
    assert_rolled_back(get(&s, "a"), "a");
}

#[test]
fn a_crash_before_a_new_secret_appears_leaves_no_secret() {
    let (_t, s) = store();
    put(&s, "a/x", &value("x")).unwrap();
    // A first put that crashed before its directory was renamed into place.
    let leftover = s.root().join(format!("a/{TMP_PREFIX}crashed"));
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join("v1.json"), b"partial").unwrap();
    assert!(get(&s, "a/y").unwrap().is_none());
    assert_eq!(put(&s, "a/y", &value("y")).unwrap().version, 1);
    assert_eq!(
        get(&s, "a/y").unwrap().unwrap().get("password"),
        Some(&b"y"[..])
    );
    // The first version alone, nothing of the leftover.
    assert_eq!(files(&s.root().join("a/y")), ["v1.json"]);
}

/// Whether `v1.json` of the secret at `dir` claims to stand alone.
fn solo(dir: &Path) -> bool {
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("v1.json")).unwrap()).unwrap();
    json["meta"]["solo"] == serde_json::Value::Bool(true)
}

#[test]
fn given_a_new_secret_when_it_gets_a_second_version_then_its_first_no_longer_stands_alone() {
    let (_t, s) = store();
    let dir = s.root().join("a");
    put(&s, "a", &value(MARKER)).unwrap();
    assert_eq!(files(&dir), ["v1.json"]);
    assert!(solo(&dir));
    put(&s, "a", &value("two")).unwrap();
    assert_eq!(files(&dir), ["+head", "v1.json", "v2.json"]);
    assert!(!solo(&dir));
    // Rewritten, it still opens as version 1 with its value and origin.
    let (v1, meta) = s.files.open_version("a", &dir, 1).unwrap();
    assert_eq!(v1.get("password"), Some(MARKER.as_bytes()));
    assert_eq!(
        (meta.version, meta.uri.as_str()),
        (1, "file-dev://payments/db")
    );
    assert_no_way_back(&s, &dir, 2);
}

/// Removes `a`'s head and version `newest`, and finds that this is no way
/// back to an older version.
fn assert_no_way_back(s: &FileStore, dir: &Path, newest: u64) {
    fs::remove_file(dir.join("+head")).unwrap();
    fs::remove_file(dir.join(version_file_name(newest))).unwrap();
    assert_rolled_back(get(s, "a"), "a");
}

/// Soft-deletes `a` and finds that its first version no longer stands
/// alone: removing the head does not bring the secret back.
fn assert_deleted_for_good(s: &FileStore, dir: &Path) {
    block_on(s.delete("a", false)).unwrap();
    assert!(get(s, "a").unwrap().is_none());
    assert!(!solo(dir));
    fs::remove_file(dir.join("+head")).unwrap();
    assert_rolled_back(get(s, "a"), "a");
}

/// `a` after a second put that wrote v2 and the head and crashed before
/// v1's rewrite reached the disk.
fn crashed_before_the_rewrite(s: &FileStore) -> PathBuf {
    let dir = s.root().join("a");
    put(s, "a", &value(MARKER)).unwrap();
    let solo_v1 = fs::read(dir.join("v1.json")).unwrap();
    put(s, "a", &value("two")).unwrap();
    fs::write(dir.join("v1.json"), solo_v1).unwrap();
    assert!(solo(&dir));
    dir
}

#[test]
fn given_a_new_secret_soft_deleted_when_its_head_is_removed_then_it_does_not_come_back() {
    let (_t, s) = store();
    let dir = s.root().join("a");
    put(&s, "a", &value(MARKER)).unwrap();
    assert_deleted_for_good(&s, &dir);
}

#[test]
fn given_an_older_first_version_when_it_is_edited_to_stand_alone_then_it_does_not_open() {
    let (_t, s) = store();
    let dir = s.root().join("a");
    put(&s, "a", &value(MARKER)).unwrap();
    put(&s, "a", &value("two")).unwrap();
    assert_no_way_back(&s, &dir, 2);
    // The flag is bound into the associated data: set in clear, it breaks the file.
    edit(&dir.join("v1.json"), |j| j["meta"]["solo"] = true.into());
    assert_tampered(get(&s, "a"));
}

#[test]
fn given_a_second_put_crashed_before_its_head_or_rewrite_when_read_and_written_then_it_goes_on() {
    let (_t, s) = store();
    let dir = crashed_before_the_rewrite(&s);
    let two = |s: &FileStore| {
        get(s, "a")
            .unwrap()
            .unwrap()
            .get("password")
            .map(<[u8]>::to_vec)
    };
    assert_eq!(two(&s), Some(b"two".to_vec()));
    // Crashed after v2, before the head and the rewrite.
    fs::remove_file(dir.join("+head")).unwrap();
    assert_eq!(two(&s), Some(b"two".to_vec()));
    // But no crash leaves a third version after a `solo` v1 without a head.
    fs::copy(dir.join("v2.json"), dir.join("v3.json")).unwrap();
    assert_rolled_back(get(&s, "a"), "a");
    fs::remove_file(dir.join("v3.json")).unwrap();
    // The next put goes on from v2, and ends `solo` first.
    assert_eq!(put(&s, "a", &value("three")).unwrap().version, 3);
    assert!(!solo(&dir));
    assert_eq!(files(&dir), ["+head", "v1.json", "v2.json", "v3.json"]);
    assert_no_way_back(&s, &dir, 3);
}

#[test]
fn given_a_second_put_crashed_after_its_head_when_soft_deleted_then_the_head_alone_says_so() {
    let (_t, s) = store();
    let dir = crashed_before_the_rewrite(&s);
    assert_deleted_for_good(&s, &dir);
}

#[test]
fn a_secret_nested_under_another_gets_a_head_before_its_first_version() {
    let (_t, s) = store();
    put(&s, "a/b", &value("inner")).unwrap();
    // `a` exists (it holds `a/b`) but is no secret yet.
    assert!(get(&s, "a").unwrap().is_none());
    assert_eq!(put(&s, "a", &value("outer")).unwrap().version, 1);
    assert_eq!(files(&s.root().join("a")), ["+head", "b", "v1.json"]);
    assert_eq!(
        get(&s, "a").unwrap().unwrap().get("password"),
        Some(&b"outer"[..])
    );
    fs::remove_file(s.root().join("a/+head")).unwrap();
    assert_rolled_back(get(&s, "a"), "a");
}

#[test]
fn given_many_writers_when_they_put_different_secrets_at_once_then_every_one_lands() {
    // Writes to different secrets run at once (one lock per path), also
    // when they create the same parent directories, or one secret is the
    // parent directory of another (`team/a` and `team/a/b`).
    let (_dir, s) = store();
    let paths: Vec<String> = (0..8)
        .flat_map(|t| (0..6).flat_map(move |i| [format!("team/p{i}"), format!("team/p{i}/t{t}")]))
        .collect();
    std::thread::scope(|scope| {
        for chunk in paths.chunks(6) {
            let s = s.clone();
            scope.spawn(move || {
                for path in chunk {
                    put(&s, path, &value(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
                }
            });
        }
    });
    for path in &paths {
        let got = get(&s, path)
            .unwrap()
            .unwrap_or_else(|| panic!("{path} is missing"));
        assert_eq!(got.get("password"), Some(path.as_bytes()), "{path}");
    }
}

#[test]
fn given_many_writers_of_one_secret_when_they_put_at_once_then_versions_are_one_to_n() {
    let (_dir, s) = store();
    let written = std::sync::Mutex::new(vec![]);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (s, written) = (s.clone(), &written);
            scope.spawn(move || {
                for i in 0..4 {
                    let w = put(&s, "team/shared", &value(&format!("{t}-{i}"))).unwrap();
                    written.lock().unwrap().push(w.version);
                }
            });
        }
    });
    let mut versions = written.into_inner().unwrap();
    versions.sort_unstable();
    assert_eq!(versions, (1..=32).collect::<Vec<u64>>());
}
