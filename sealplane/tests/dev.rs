//! `sealplane dev` as a user runs it: the real binary, stopped by a signal.

use std::path::Path;
use std::process::Command;

use sealplane_event_store::{EmbeddedStore, EventStore, Position};
use sealplane_test_kit::{ControlPlane, Settings, bin};

/// Starts `sealplane dev`, waits for its ready line, stops it with `signal`
/// and returns its exit status and everything it printed on stdout.
fn run_dev_until_ready_then(signal: &str, data_dir: &Path) -> (bool, String) {
    let mut dev = ControlPlane::dev(Some(data_dir), Settings::default());
    let process = dev.process_mut();
    process.signal(signal);
    let ok = process.wait().success();
    // Shown with the test's output if it fails.
    eprintln!("sealplane dev stderr:\n{}", process.stderr());
    (ok, process.stdout())
}

#[tokio::test]
async fn dev_serves_a_fresh_admin_token_and_stops_cleanly_on_sigterm_and_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = vec![];
    for (run, signal) in ["-TERM", "-INT"].into_iter().enumerate() {
        let (ok, printed) = run_dev_until_ready_then(signal, dir.path());
        assert!(ok, "exit status after {signal}: {printed}");
        if run == 0 {
            assert!(
                printed.contains("events.db (0 events, hash chain verified)"),
                "{printed}"
            );
        } else {
            // The first run created the admin; the second verified its events.
            assert!(!printed.contains("(0 events"), "{printed}");
        }
        assert!(
            printed.contains("export SEALPLANE_ADDR=http://127.0.0.1:"),
            "{printed}"
        );
        let token = printed
            .lines()
            .find_map(|l| l.strip_prefix("export SEALPLANE_TOKEN="))
            .expect("an admin token")
            .to_owned();
        assert!(token.starts_with("spt_"));
        tokens.push(token);
        assert!(printed.contains("stopped"), "{printed}");
    }
    assert_ne!(tokens[0], tokens[1], "each session gets a fresh token");
    // The store was closed properly: another process can open it at once.
    let store = EmbeddedStore::open(dir.path().join("events.db")).unwrap();
    assert!(store.head().await.unwrap() > Position(0));
    store.close().await;
}

#[test]
fn dev_refuses_a_tampered_log() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sealplane_event_store::{
            EventMetadata, EventType, ExpectedVersion, NewEvent, StreamId,
        };
        let store = EmbeddedStore::open(dir.path().join("events.db")).unwrap();
        for i in 0..3 {
            let e = NewEvent::from_json_text(
                EventType::parse("StoreCreated").unwrap(),
                1,
                &format!(r#"{{"n":{i}}}"#),
                &EventMetadata::new("admin"),
            )
            .unwrap();
            store
                .append(
                    &StreamId::parse("s").unwrap(),
                    ExpectedVersion::Any,
                    vec![e],
                )
                .await
                .unwrap();
        }
        store.close().await;
    });
    rusqlite::Connection::open(dir.path().join("events.db"))
        .unwrap()
        .execute(
            "UPDATE events SET data = '{\"n\":42}' WHERE position = 2",
            [],
        )
        .unwrap();
    let out = Command::new(bin("sealplane"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed verification"), "{stderr}");
    assert!(stderr.contains("position 2"), "{stderr}");
}

fn is_secure(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin("sealplane"))
        .arg("is-secure")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn dev_brings_a_file_store_reactor_whose_setup_is_secure_until_a_key_is_exposed() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (ok, printed) = run_dev_until_ready_then("-TERM", dir.path());
    assert!(ok, "{printed}");
    assert!(
        printed.contains("store:       local (file store"),
        "{printed}"
    );
    for file in ["master.key", "fingerprint.key", "reactor-identity"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let data_dir = dir.path().to_str().unwrap();
    let (code, out) = is_secure(&["--data-dir", data_dir]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("secure:"), "{out}");

    let master = dir.path().join("master.key");
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = is_secure(&["--data-dir", data_dir]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("INSECURE") && out.contains("chmod 600"),
        "{out}"
    );
    // The dev reactor refuses to start on the exposed key, naming the fix.
    let out = Command::new(bin("sealplane"))
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod 600 {}", master.display())),
        "{stderr}"
    );
    // The log-signing key too: whoever reads it can sign checkpoints.
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log_key = dir.path().join("log-signing.key");
    std::fs::set_permissions(&log_key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, out) = is_secure(&["--data-dir", data_dir]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("log-signing key")
            && out.contains(&format!("chmod 600 {}", log_key.display())),
        "{out}"
    );
}

#[test]
fn is_secure_flags_the_public_dev_master_key_and_an_api_without_tls() {
    use sealplane_reactors::master_key::MasterKey;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    MasterKey::create_file(&p.join("fp.key")).unwrap();
    sealplane_reactors::identity::ReactorIdentity::load_or_generate(p.join("reactor-identity"))
        .unwrap();
    let dev_key = MasterKey::dev().to_base64();
    std::fs::write(p.join("dev.key"), dev_key.as_bytes()).unwrap();
    std::fs::set_permissions(
        p.join("dev.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(
        p.join("reactor.toml"),
        "[control_plane]\naddress = \"http://127.0.0.1:1\"\n\
         [fingerprint]\nkey_id = \"k\"\nkey_file = \"fp.key\"\n\
         [stores.local]\nkind = \"file\"\nroot = \"files\"\nmaster_key_file = \"dev.key\"\n",
    )
    .unwrap();
    std::fs::write(
        p.join("sealplane.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\n[event_store]\nbackend = \"embedded\"\npath = \"{}\"\n",
            p.join("events.db").display()
        ),
    )
    .unwrap();
    let (code, out) = is_secure(&[
        "--reactor-config",
        p.join("reactor.toml").to_str().unwrap(),
        "--config",
        p.join("sealplane.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("public development master key"), "{out}");
    assert!(out.contains("no [tls] section"), "{out}");
}
