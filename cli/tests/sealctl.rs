//! `sealctl` as users run it: the real binary against the real `sealplane`
//! binary on a loopback port. These tests need no reactor: they cover the
//! admin commands, the refusals, and the sealed upload's refusal paths
//! (a changed reactor identity, a key request no reactor answers).
//!
//! `sealplane` must be built first (`cargo build --workspace --bins`, which
//! `scripts/test` does); the test kit runs it from the target directory.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealplane_test_kit::tls::{Ca, ServerTls};
use sealplane_test_kit::{ControlPlane, Run, Settings};

const SEALCTL: &str = env!("CARGO_BIN_EXE_sealctl");

/// A made-up Ed25519-shaped public key (the control plane checks only its shape).
fn made_up_key(n: u8) -> String {
    STANDARD.encode([n; 32])
}

/// A running control plane and a private sealctl configuration.
struct Server {
    control_plane: ControlPlane,
}

impl Server {
    /// `sealplane dev` on a free loopback port.
    fn dev() -> Server {
        Server {
            control_plane: ControlPlane::dev(None, Settings::default()),
        }
    }

    /// `sealplane init` then `serve` with one-time keys living
    /// `key_ttl_seconds`, and no reactor at all.
    fn serve(key_ttl_seconds: u64) -> Server {
        Server::serve_with(key_ttl_seconds, String::new())
    }

    /// `init` and `serve` with `tls` (a `[tls]` section or nothing).
    fn serve_with(key_ttl_seconds: u64, tls: String) -> Server {
        Server {
            control_plane: ControlPlane::serve(Settings {
                limits: format!("upload_key_ttl_seconds = {key_ttl_seconds}"),
                tls,
                ..Settings::default()
            }),
        }
    }

    fn addr(&self) -> &str {
        &self.control_plane.addr
    }

    fn config_dir(&self) -> PathBuf {
        self.control_plane.dir().join("sealctl")
    }

    fn known_reactors(&self) -> PathBuf {
        self.config_dir().join("known_reactors")
    }

    /// Runs sealctl with `token` (none: no token at all).
    fn sealctl_as(&self, token: Option<&str>, args: &[&str]) -> Run {
        let mut cmd = Command::new(SEALCTL);
        cmd.args(args)
            .env("SEALPLANE_ADDR", self.addr())
            .env("SEALPLANE_CONFIG_DIR", self.config_dir())
            .env_remove("SEALPLANE_TOKEN")
            .env_remove("SEALPLANE_CA_FILE")
            .stdin(Stdio::null());
        if let Some(token) = token {
            cmd.env("SEALPLANE_TOKEN", token);
        }
        Run::from_output(cmd.output().unwrap())
    }

    /// Runs sealctl as the admin.
    fn sealctl(&self, args: &[&str]) -> Run {
        self.sealctl_as(Some(self.control_plane.admin_token()), args)
    }

    /// The event types in the log, in order.
    fn event_types(&self) -> Vec<String> {
        let db = rusqlite::Connection::open_with_flags(
            self.control_plane.events_db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut q = db
            .prepare("SELECT event_type FROM events ORDER BY position")
            .unwrap();
        q.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

fn names(stores: &serde_json::Value) -> Vec<String> {
    stores["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn admins_manage_stores() {
    let s = Server::dev();
    let key = made_up_key(1);
    let out = s.sealctl(&[
        "create",
        "store",
        "vault-prod",
        "--kind",
        "vault",
        "--reactor-key",
        &key,
    ]);
    assert_eq!(
        out.ok(),
        "store `vault-prod` created (vault) without a certificate: users must confirm its reactor identity; certify it with `sealctl certify store vault-prod` and a trust anchor\n"
    );
    let stores = s.sealctl(&["get", "stores", "-o", "json"]).json();
    assert!(
        names(&stores).contains(&"vault-prod".to_owned()),
        "{stores}"
    );

    let store = s
        .sealctl(&["describe", "store", "vault-prod", "-o", "json"])
        .json();
    assert_eq!(store["kind"], "vault");
    assert_eq!(store["reactor_key"], key.as_str());
    assert_eq!(store["enabled"], true);

    s.sealctl(&["disable", "store", "vault-prod"]).ok();
    let store = s
        .sealctl(&["describe", "store", "vault-prod", "-o", "yaml"])
        .ok();
    assert!(store.contains("enabled: false"), "{store}");
    s.sealctl(&["enable", "store", "vault-prod"]).ok();

    s.sealctl(&["set", "default-store", "vault-prod"]).ok();
    let stores = s.sealctl(&["get", "stores", "-o", "json"]).json();
    for store in stores["stores"].as_array().unwrap() {
        assert_eq!(store["default"], store["name"] == "vault-prod", "{stores}");
    }
    let table = s.sealctl(&["get", "stores"]).ok();
    assert!(table.starts_with("NAME "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("vault-prod ") && l.contains(" * ")),
        "{table}"
    );

    // The server's own sentences come through.
    s.sealctl(&[
        "create",
        "store",
        "vault-prod",
        "--kind",
        "file",
        "--reactor-key",
        &key,
    ])
    .fails(2, "store `vault-prod` already exists");
    s.sealctl(&[
        "create",
        "store",
        "bad",
        "--kind",
        "file",
        "--reactor-key",
        "AAAA",
    ])
    .fails(2, "an Ed25519 public key is 32 bytes");
    s.sealctl(&["describe", "store", "nope"])
        .fails(2, "there is no store `nope`");

    s.sealctl(&[
        "create",
        "store",
        "old",
        "--kind",
        "file",
        "--reactor-key",
        &made_up_key(2),
    ])
    .ok();
    s.sealctl(&["remove", "store", "old"])
        .fails(2, "disable it first with `sealctl disable store old`");
    s.sealctl(&["disable", "store", "old"]).ok();
    assert_eq!(
        s.sealctl(&["remove", "store", "old"]).ok(),
        "store `old` removed\n"
    );
    let stores = s.sealctl(&["get", "stores", "-o", "json"]).json();
    assert!(!names(&stores).contains(&"old".to_owned()), "{stores}");
}

#[test]
fn admins_manage_principals_and_tokens() {
    let s = Server::dev();
    s.sealctl(&["create", "user", "alice", "--role", "user"])
        .ok();
    s.sealctl(&["create", "group", "payments"]).ok();
    assert_eq!(
        s.sealctl(&["add", "member", "payments", "alice"]).ok(),
        "`alice` added to group `payments`\n"
    );
    let principals = s.sealctl(&["get", "principals", "-o", "json"]).json();
    let find = |slug: &str| {
        principals["principals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["slug"] == slug)
            .cloned()
            .unwrap_or_else(|| panic!("{slug} missing in {principals}"))
    };
    assert_eq!(find("alice")["role"], "user");
    assert_eq!(find("alice")["related"][0], "payments");
    assert_eq!(find("payments")["kind"], "group");

    let issued = s
        .sealctl(&["issue", "token", "alice", "--ttl", "1h", "-o", "json"])
        .json();
    let token = issued["token"].as_str().unwrap().to_owned();
    let token_id = issued["token_id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("spt_"), "{issued}");
    assert!(
        issued["expires_at"].as_str().unwrap().len() >= 20,
        "{issued}"
    );

    let me = s.sealctl_as(Some(&token), &["whoami", "-o", "json"]).json();
    assert_eq!(me["slug"], "alice");
    assert_eq!(me["role"], "user");
    assert_eq!(me["groups"][0], "payments");
    assert_eq!(me["token_id"], token_id.as_str());
    let table = s.sealctl_as(Some(&token), &["whoami"]).ok();
    assert!(
        table.starts_with("slug:") && table.contains("alice"),
        "{table}"
    );

    // A user is refused admin commands with the server's reason.
    s.sealctl_as(
        Some(&token),
        &[
            "create",
            "store",
            "x",
            "--kind",
            "file",
            "--reactor-key",
            &made_up_key(3),
        ],
    )
    .fails(2, "`alice` may not");
    s.sealctl_as(Some(&token), &["get", "principals"])
        .fails(2, "needs admin or auditor");

    s.sealctl(&["remove", "member", "payments", "alice"]).ok();
    s.sealctl(&["revoke", "token", "alice", &token_id]).ok();
    s.sealctl_as(Some(&token), &["whoami"])
        .fails(2, "this token was revoked");

    s.sealctl(&["issue", "token", "alice", "--ttl", "soon"])
        .fails(2, "--ttl \"soon\" is not a duration");
    s.sealctl(&["create", "user", "Bad Slug", "--role", "user"])
        .fails(2, "");
}

#[test]
fn authentication_and_transport_failures_are_sentences() {
    let s = Server::dev();
    s.sealctl_as(None, &["whoami"]).fails(2, "SEALPLANE_TOKEN");
    s.sealctl_as(Some("spt_not-a-real-token"), &["get", "stores"])
        .fails(2, "SEALPLANE_TOKEN");
    let forged = format!("spt_{}", "A".repeat(43));
    s.sealctl_as(Some(&forged), &["get", "stores"])
        .fails(2, "unknown token");

    let out = Run::from_output(
        Command::new(SEALCTL)
            .args(["--addr", "http://127.0.0.1:1", "--token", "x", "whoami"])
            .output()
            .unwrap(),
    );
    out.fails(
        2,
        "cannot reach the control plane at http://127.0.0.1:1 (is `sealplane dev` running? set SEALPLANE_ADDR)",
    );
    let out = Run::from_output(
        Command::new(SEALCTL)
            .args(["--addr", "127.0.0.1:7700", "whoami"])
            .output()
            .unwrap(),
    );
    out.fails(
        2,
        "\"127.0.0.1:7700\" is not a control-plane address: use https://HOST:PORT",
    );
}

#[test]
fn bad_input_is_refused_before_or_by_the_server() {
    let s = Server::dev();
    s.sealctl(&[
        "create",
        "store",
        "shut",
        "--kind",
        "file",
        "--reactor-key",
        &made_up_key(4),
    ])
    .ok();
    // Malformed uris and unknown stores: the server's sentence.
    s.sealctl(&["put", "secret", "shut://a//b", "k=v"])
        .fails(2, "is not allowed");
    s.sealctl(&["put", "secret", "nope://admin/a", "k=v"])
        .fails(2, "there is no store `nope`");
    s.sealctl(&["describe", "secret", "shut://admin/none"])
        .fails(2, "there is no secret shut://admin/none");
    // A disabled store refuses uploads.
    s.sealctl(&["disable", "store", "shut"]).ok();
    s.sealctl(&["put", "secret", "shut://admin/a", "k=v"])
        .fails(2, "store `shut` is disabled; an admin can enable it");

    // Local input errors never echo a value.
    let e = s
        .sealctl(&[
            "put",
            "secret",
            "shut://admin/a",
            "password=hunter2",
            "password=hunter3",
        ])
        .fails(2, "data argument 2: its key is given more than once");
    assert!(!e.contains("hunter"), "{e}");
    let e = s
        .sealctl(&["put", "secret", "shut://admin/a", "bad key=hunter2"])
        .fails(2, "is not allowed");
    assert!(!e.contains("hunter"), "{e}");
    // A pasted base64 value: its text before the padding is not echoed as a key.
    let e = s
        .sealctl(&["put", "secret", "shut://admin/a", "aHVudGVy/c2VjcmV0="])
        .fails(2, "data argument 1: its key");
    assert!(!e.contains("aHVudGVy"), "{e}");
    let e = s
        .sealctl(&["put", "secret", "shut://admin/a", "hunter2"])
        .fails(2, "data argument 1 is not `key=value`");
    assert!(!e.contains("hunter"), "{e}");
    // Over the size limit (split over a file and an argument).
    let big = s.control_plane.dir().join("big");
    std::fs::write(&big, vec![b'x'; 256 * 1024]).unwrap();
    let from_file = format!("k={}", big.display());
    s.sealctl(&[
        "put",
        "secret",
        "shut://admin/a",
        "--from-file",
        &from_file,
        "j=x",
    ])
    .fails(
        2,
        "the secret is 262145 bytes, over the limit of 262144 bytes (256 KiB)",
    );
    // Standard input is not a terminal, so `password=-` reads it; here it
    // is empty.
    s.sealctl(&["put", "secret", "shut://admin/a", "password=-"])
        .fails(2, "standard input held no value for `password`");
    assert!(
        !s.event_types()
            .iter()
            .any(|t| t == "SecretUploadKeyRequested"),
        "{:?}",
        s.event_types()
    );
}

#[test]
fn a_changed_reactor_identity_is_refused_before_anything_is_sent() {
    let s = Server::dev();
    let registered = made_up_key(5);
    let pinned = made_up_key(6);
    s.sealctl(&[
        "create",
        "store",
        "pinned",
        "--kind",
        "file",
        "--reactor-key",
        &registered,
    ])
    .ok();
    std::fs::create_dir_all(s.config_dir()).unwrap();
    let pins = format!("# mine\n{} pinned {pinned}\n", s.addr());
    std::fs::write(s.known_reactors(), &pins).unwrap();

    let marker = "Zq9-MARKER-hunter2";
    let out = s.sealctl(&[
        "put",
        "secret",
        "pinned://admin/db",
        &format!("password={marker}"),
    ]);
    let err = out.fails(3, "the reactor identity for store `pinned` changed");
    assert!(err.contains(&format!("pinned {pinned}")), "{err}");
    assert!(err.contains(&format!("now says {registered}")), "{err}");
    assert!(err.contains("compromised"), "{err}");
    assert!(
        err.contains(&format!("--reactor-key {registered}")),
        "{err}"
    );
    assert!(!err.contains(marker) && out.stdout.is_empty());
    // Nothing was sealed or uploaded, and the pin is untouched.
    let types = s.event_types();
    assert!(
        types.iter().any(|t| t == "SecretUploadKeyRequested"),
        "{types:?}"
    );
    assert!(
        !types.iter().any(|t| t == "SecretUploadRequested"),
        "{types:?}"
    );
    assert_eq!(std::fs::read_to_string(s.known_reactors()).unwrap(), pins);

    // verify goes through the same check.
    s.sealctl(&["verify", "secret", "pinned://admin/db", "password=x"])
        .fails(3, "changed");

    // A malformed pin file is refused with its line number.
    std::fs::write(s.known_reactors(), format!("{} pinned\n", s.addr())).unwrap();
    s.sealctl(&["put", "secret", "pinned://admin/db", "password=x"])
        .fails(2, "known_reactors, line 1: expected three or four fields");
}

#[test]
fn a_key_request_no_reactor_answers_expires() {
    let s = Server::serve(1);
    s.sealctl(&[
        "create",
        "store",
        "lonely",
        "--kind",
        "file",
        "--reactor-key",
        &made_up_key(7),
    ])
    .ok();
    // Nothing vouches for the store's identity (no certificate, no pin, no
    // terminal to ask on): refused before anything is sealed (exit 3).
    let out = s.sealctl(&["put", "secret", "lonely://admin/db", "password=x"]);
    let err = out.fails(3, "nothing you trust vouches for it");
    assert!(err.contains("sealctl trust add"), "{err}");
    assert!(
        err.contains(&format!("--reactor-key {}", made_up_key(7))),
        "{err}"
    );
    // Named with --reactor-key, the put waits for a reactor that never comes.
    let started = Instant::now();
    let out = s.sealctl(&[
        "put",
        "secret",
        "lonely://admin/db",
        "password=x",
        "--reactor-key",
        &made_up_key(7),
    ]);
    out.fails(
        2,
        "no reactor answered for store `lonely` before the key request expired; is the reactor for `lonely` running?",
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // Nothing verified, so nothing was pinned, and nothing was uploaded.
    assert!(!s.known_reactors().exists());
    assert!(!s.event_types().iter().any(|t| t == "SecretUploadRequested"));
    // The first store is the default: a bare path resolves to it, and the
    // control plane may not pick a store nothing vouches for (exit 3).
    s.sealctl(&["put", "secret", "admin/db2", "password=x", "-o", "json"])
        .fails(
            3,
            "the bare path was resolved by the control plane to store `lonely`",
        );

    // The secret exists (its creation came with the key request), with no
    // version: describe, access lists and deletion need no reactor.
    let uri = "lonely://admin/db";
    let d = s.sealctl(&["describe", "secret", uri, "-o", "json"]).json();
    assert_eq!(d["creator"], "admin");
    assert_eq!(d["deletion"], "none");
    assert_eq!(d["versions"].as_array().unwrap().len(), 0, "{d}");
    s.sealctl(&["create", "user", "bob", "--role", "user"]).ok();
    assert_eq!(
        s.sealctl(&["grant", "secret", uri, "--list", "readers", "bob"])
            .ok(),
        format!("`bob` added to the readers of {uri}\n")
    );
    let d = s.sealctl(&["describe", "secret", uri, "-o", "json"]).json();
    assert!(
        d["access"]["readers"]
            .as_array()
            .unwrap()
            .contains(&"bob".into()),
        "{d}"
    );
    s.sealctl(&["revoke", "secret", uri, "--list", "readers", "bob"])
        .ok();
    let d = s.sealctl(&["describe", "secret", uri, "-o", "json"]).json();
    assert!(
        !d["access"]["readers"]
            .as_array()
            .unwrap()
            .contains(&"bob".into()),
        "{d}"
    );
    s.sealctl(&["grant", "secret", uri, "--list", "owners", "bob"])
        .fails(2, "invalid value 'owners'");

    let out = s.sealctl(&["delete", "secret", uri, "--no-wait"]).ok();
    assert!(
        out.contains("deletion of lonely://admin/db requested"),
        "{out}"
    );
    let d = s
        .sealctl(&["describe", "secret", uri, "--history", "-o", "json"])
        .json();
    assert_eq!(d["deletion"], "requested");
    let types: Vec<&str> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"SecretCreated"), "{d}");
    assert!(types.contains(&"SecretDeletionRequested"), "{d}");
    let table = s.sealctl(&["describe", "secret", uri, "--history"]).ok();
    assert!(
        table.contains("versions:") && table.contains("none stored yet"),
        "{table}"
    );
}

#[test]
fn secrets_can_be_listed_and_filtered() {
    let s = Server::dev();
    let list = s.sealctl(&["get", "secrets", "-o", "json"]).json();
    assert!(list["secrets"].is_array(), "{list}");
    s.sealctl(&["get", "secrets", "--store", "Not_A_Store"])
        .fails(2, "store name");
    let table = s.sealctl(&["get", "secrets"]).ok();
    assert!(table.starts_with("URI ") || table.is_empty(), "{table}");
}

#[test]
fn help_reads_well() {
    let run = |args: &[&str]| Run::from_output(Command::new(SEALCTL).args(args).output().unwrap());
    let top = run(&["--help"]).ok();
    for verb in [
        "put", "verify", "get", "describe", "delete", "grant", "revoke", "create", "whoami",
    ] {
        assert!(
            top.contains(&format!("  {verb} ")),
            "{verb} missing in {top}"
        );
    }
    assert!(top.contains("Exit status"), "{top}");
    let put = run(&["put", "secret", "--help"]).ok();
    assert!(
        put.contains("Examples:") && put.contains("password=-"),
        "{put}"
    );
    assert!(put.contains("--reactor-key"), "{put}");
    let bad = run(&["put", "secrets", "x"]);
    assert_eq!(bad.code, 2);
}

#[test]
fn https_trusts_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let tls = ServerTls::write_to(dir.path());
    let s = Server::serve_with(300, tls.section(false));
    let port = s.addr().rsplit(':').next().unwrap().to_owned();
    assert!(s.addr().starts_with("https://"), "{}", s.addr());
    let https = format!("https://localhost:{port}");

    let me = s
        .sealctl(&[
            "--addr",
            &https,
            "--ca-file",
            tls.ca_file.to_str().unwrap(),
            "whoami",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(me["slug"], "admin");
    // Without the CA the certificate is not trusted, and sealctl says so.
    let other_ca = write_other_ca();
    s.sealctl(&[
        "--addr",
        &https,
        "--ca-file",
        other_ca.path().to_str().unwrap(),
        "whoami",
    ])
    .fails(
        2,
        "the TLS handshake with the control plane at https://localhost:",
    );
    s.sealctl(&[
        "--addr",
        &https,
        "--ca-file",
        "/nonexistent/ca.pem",
        "whoami",
    ])
    .fails(2, "cannot read the CA file /nonexistent/ca.pem");
}

/// A CA file of an unrelated CA.
fn write_other_ca() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), Ca::new().pem()).unwrap();
    file
}

#[test]
fn an_admin_generates_an_anchor_and_certifies_stores_with_it() {
    let s = Server::serve(1);
    let made = s.sealctl(&["trust", "generate"]).ok().to_owned();
    assert!(
        made.contains("anchor.key") && made.contains("public key"),
        "{made}"
    );
    let anchor = std::fs::read_to_string(s.config_dir().join("anchor.key")).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.config_dir().join("anchor.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // The anchor file is found in the config dir: the store is certified.
    s.sealctl(&[
        "create",
        "store",
        "c1",
        "--kind",
        "file",
        "--reactor-key",
        &made_up_key(3),
    ])
    .ok();
    let store = s.sealctl(&["describe", "store", "c1", "-o", "json"]).json();
    assert_eq!(store["certificate_serial"], 1, "{store}");
    assert!(
        !made.contains(anchor.trim()),
        "the private key is never printed"
    );
    // A replacement identity gets the next serial; its key is the store's.
    s.sealctl(&["certify", "store", "c1", "--reactor-key", &made_up_key(4)])
        .ok();
    let store = s.sealctl(&["describe", "store", "c1", "-o", "json"]).json();
    assert_eq!(store["certificate_serial"], 2, "{store}");
    assert_eq!(store["reactor_key"], made_up_key(4));
    // A second generate never replaces the anchor.
    s.sealctl(&["trust", "generate"]).fails(2, "anchor.key");
    assert_eq!(
        std::fs::read_to_string(s.config_dir().join("anchor.key")).unwrap(),
        anchor
    );
}

#[test]
fn completion_scripts_cover_every_verb_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _sealctl"),
        ("zsh", "#compdef sealctl"),
        ("fish", "complete -c sealctl"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = Command::new(SEALCTL)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        for verb in ["put", "verify", "audit", "describe", "completion"] {
            assert!(script.contains(verb), "{shell}: `{verb}` not completed");
        }
    }
    let out = Command::new(SEALCTL)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}
