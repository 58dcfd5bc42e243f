//! `sealctl` for automation, end to end against `sealplane dev`: named
//! contexts instead of SEALPLANE_ADDR/SEALPLANE_TOKEN, `-o name`, and
//! `put secret --dry-run` (ADR 0024).
//!
//! Every run here starts from an environment without any `SEALPLANE_*`
//! variable but the config dir, so a context is what names the control
//! plane and the token. `sealplane` must be built first (`cargo build
//! --workspace --bins`).

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Dev;
use sealplane_test_kit::{Run, input_file, marker};

const SEALCTL: &str = env!("CARGO_BIN_EXE_sealctl");

/// `sealctl args` with no `SEALPLANE_*` variable but the config dir and
/// those in `env`.
fn bare(dev: &Dev, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(SEALCTL);
    for (name, _) in std::env::vars() {
        if name.starts_with("SEALPLANE_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .env("SEALPLANE_CONFIG_DIR", dev.config_dir())
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    Run::from_output(cmd.output().unwrap())
}

/// Writes `token` to a 0600 file in the test's directory.
fn token_file(dev: &Dev, name: &str, token: &str) -> PathBuf {
    let path = dev.control_plane.dir().join(name);
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn set_context(dev: &Dev, name: &str, token_file: &Path) -> Run {
    bare(
        dev,
        &[],
        &[
            "config",
            "set-context",
            name,
            "--addr",
            &dev.control_plane.addr,
            "--token-file",
            token_file.to_str().unwrap(),
        ],
    )
}

fn lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

fn put(dev: &Dev, token: &str, uri: &str, value: &str) {
    dev.sealctl(token, &["put", "secret", uri, &format!("password={value}")])
        .ok();
}

#[test]
fn a_current_context_replaces_the_address_and_token_variables() {
    let dev = Dev::start();
    let alice = dev.user("alice", "user");
    let uris = ["local://alice/db", "local://alice/api/key"];
    for uri in uris {
        put(&dev, &alice, uri, &marker("v"));
    }
    // Without a context nothing answers at the default address with a token.
    let unset = bare(&dev, &[], &["get", "secrets"]);
    assert_eq!(unset.code, 2, "{unset:?}");

    let alice_file = token_file(&dev, "alice.token", &alice);
    let created = set_context(&dev, "dev-alice", &alice_file).ok();
    assert!(created.contains("context `dev-alice` created"), "{created}");
    bare(&dev, &[], &["config", "current-context"]).fails(2, "no current context is set");
    assert_eq!(
        bare(
            &dev,
            &[],
            &["config", "use-context", "dev-alice", "-o", "name"]
        )
        .ok(),
        "dev-alice\n"
    );
    assert_eq!(
        bare(&dev, &[], &["config", "current-context"]).ok(),
        "dev-alice\n"
    );

    // `-o name` lists exactly the uris put, one a line.
    let names = bare(&dev, &[], &["get", "secrets", "-o", "name"]).ok();
    let mut expected = uris.to_vec();
    expected.sort_unstable();
    assert_eq!(lines(&names), expected, "{names}");
    assert_eq!(bare(&dev, &[], &["whoami", "-o", "name"]).ok(), "alice\n");
    assert_eq!(
        bare(&dev, &[], &["describe", "secret", uris[0], "-o", "name"]).ok(),
        format!("{}\n", uris[0])
    );

    // The file names the token file and never holds the token, 0600.
    let file = dev.config_dir().join("contexts.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&alice), "{text}");
    assert!(text.contains(alice_file.to_str().unwrap()), "{text}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let table = bare(&dev, &[], &["config", "get-contexts"]).ok();
    let row = table.lines().nth(1).unwrap();
    assert!(row.starts_with("*") && row.contains("dev-alice"), "{table}");
    assert!(!table.contains(&alice), "{table}");
    let json = bare(&dev, &[], &["config", "get-contexts", "-o", "json"]).json();
    assert_eq!(json["current_context"], "dev-alice");
    assert_eq!(json["contexts"][0]["addr"], dev.control_plane.addr.as_str());

    // A file others may read is refused, naming it and the fix.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = bare(&dev, &[], &["get", "secrets"]).fails(2, "contexts file");
    assert!(e.contains(&format!("chmod 600 {}", file.display())), "{e}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // So is a token file others may read, and a missing one names its path.
    std::fs::set_permissions(&alice_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = bare(&dev, &[], &["get", "secrets"]).fails(2, "context `dev-alice`: token file");
    assert!(!e.contains(&alice), "{e}");
    std::fs::remove_file(&alice_file).unwrap();
    bare(&dev, &[], &["get", "secrets"]).fails(2, alice_file.to_str().unwrap());

    let deleted = bare(&dev, &[], &["config", "delete-context", "dev-alice"]).ok();
    assert!(deleted.contains("none is current now"), "{deleted}");
    bare(&dev, &[], &["config", "use-context", "dev-alice"])
        .fails(2, "there is no context `dev-alice`");
}

#[test]
fn sealplane_context_and_context_select_another_context_for_one_command() {
    let dev = Dev::start();
    let alice = dev.user("alice", "user");
    let bob = dev.user("bob", "user");
    put(&dev, &alice, "local://alice/db", &marker("a"));
    put(&dev, &bob, "local://bob/db", &marker("b"));
    set_context(&dev, "alice", &token_file(&dev, "alice.token", &alice)).ok();
    set_context(&dev, "bob", &token_file(&dev, "bob.token", &bob)).ok();
    set_context(
        &dev,
        "admin",
        &token_file(&dev, "admin.token", dev.control_plane.admin_token()),
    )
    .ok();
    bare(&dev, &[], &["config", "use-context", "alice"]).ok();

    let whoami = |env: &[(&str, &str)], args: &[&str]| {
        let mut all = vec!["whoami", "-o", "name"];
        all.extend_from_slice(args);
        bare(&dev, env, &all).ok()
    };
    assert_eq!(whoami(&[], &[]), "alice\n");
    assert_eq!(whoami(&[("SEALPLANE_CONTEXT", "bob")], &[]), "bob\n");
    // The flag beats the variable.
    assert_eq!(
        whoami(&[("SEALPLANE_CONTEXT", "bob")], &["--context", "alice"]),
        "alice\n"
    );
    // A token variable beats the context's token file.
    assert_eq!(whoami(&[("SEALPLANE_TOKEN", &bob)], &[]), "bob\n");
    assert_eq!(
        bare(
            &dev,
            &[("SEALPLANE_CONTEXT", "bob")],
            &["get", "secrets", "-o", "name"]
        )
        .ok(),
        "local://bob/db\n"
    );

    // Lists by name for the admin.
    let admin = [("SEALPLANE_CONTEXT", "admin")];
    let principals = bare(&dev, &admin, &["get", "principals", "-o", "name"]).ok();
    for slug in ["alice", "bob"] {
        assert!(principals.lines().any(|l| l == slug), "{principals}");
    }
    assert!(principals.lines().all(|l| !l.contains(' ')), "{principals}");
    assert_eq!(
        bare(&dev, &admin, &["get", "stores", "-o", "name"]).ok(),
        "local\n"
    );
    let contexts = bare(&dev, &[], &["config", "get-contexts", "-o", "name"]).ok();
    assert_eq!(contexts, "alice\nbob\nadmin\n");

    // `-o name` where nothing is named is refused before anything is sent.
    bare(
        &dev,
        &admin,
        &["create", "user", "carol", "--role", "user", "-o", "name"],
    )
    .fails(2, "-o name is for commands that print");
    let principals = bare(&dev, &admin, &["get", "principals", "-o", "name"]).ok();
    assert!(!principals.lines().any(|l| l == "carol"), "{principals}");

    // An unknown context names the known ones.
    let e = bare(&dev, &[("SEALPLANE_CONTEXT", "bobb")], &["whoami"])
        .fails(2, "there is no context `bobb`");
    assert!(e.contains("known contexts: alice, bob, admin"), "{e}");

    // Another address is not the context's: its token is not sent there.
    let e = bare(
        &dev,
        &[],
        &["--context", "bob", "--addr", "http://127.0.0.1:9", "whoami"],
    )
    .fails(2, "is not the address");
    assert!(!e.contains(&bob), "{e}");
}

#[test]
fn put_dry_run_checks_everything_changes_nothing_and_prints_no_value() {
    let dev = Dev::start();
    let alice = dev.user("alice", "user");
    let existing = marker("existing");
    put(&dev, &alice, "local://alice/db", &existing);
    set_context(&dev, "alice", &token_file(&dev, "alice.token", &alice)).ok();
    bare(&dev, &[], &["config", "use-context", "alice"]).ok();

    let secrets = || bare(&dev, &[], &["get", "secrets", "-o", "json"]).json();
    let events = || event_count(&dev);
    let (secrets_before, events_before) = (secrets(), events());

    let value = marker("dry");
    let file_value = marker("file");
    let file = input_file(dev.control_plane.dir(), "cert.pem", file_value.as_bytes());
    let from_file = format!("tls.crt={}", file.display());
    let mut runs = vec![];
    for uri in ["local://alice/db", "alice/new", "local://alice/other"] {
        for format in ["table", "json", "yaml", "name"] {
            let run = bare(
                &dev,
                &[],
                &[
                    "put",
                    "secret",
                    uri,
                    &format!("password={value}"),
                    "--from-file",
                    &from_file,
                    "--dry-run",
                    "-o",
                    format,
                ],
            );
            run.ok();
            runs.push(run);
        }
    }
    let plan = &runs[1];
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["uri"], "local://alice/db");
    assert_eq!(json["store"], "local");
    assert_eq!(json["keys"][0]["key"], "password");
    assert_eq!(json["keys"][0]["bytes"], value.len());
    assert_eq!(json["keys"][1]["key"], "tls.crt");
    assert_eq!(json["total_bytes"], value.len() + file_value.len());
    // A bare path goes to the default store.
    assert_eq!(runs[7].stdout, "local://alice/new\n");
    assert!(
        runs[0].stdout.contains("nothing was sealed or sent"),
        "{:?}",
        runs[0]
    );

    // Refusals of a real put are found, with exit 2.
    let mut dry = |args: &[&str]| {
        let mut all = vec!["put", "secret"];
        all.extend_from_slice(args);
        all.push("--dry-run");
        let run = bare(&dev, &[], &all);
        runs.push(run.clone());
        run
    };
    dry(&["nope://alice/x", &format!("k={value}")]).fails(2, "there is no store `nope`");
    dry(&["local://a//b", &format!("k={value}")]).fails(2, "is not a secret uri");
    dry(&[
        "local://alice/x",
        &format!("k={value}"),
        &format!("k={value}"),
    ])
    .fails(2, "given more than once");
    dry(&["local://alice/x", &format!("bad key={value}")]).fails(2, "is not allowed");
    let big = input_file(dev.control_plane.dir(), "big", &vec![b'x'; 300 * 1024]);
    dry(&[
        "local://alice/x",
        "--from-file",
        &format!("k={}", big.display()),
    ])
    .fails(2, "over the limit");
    dry(&["local://alice/x", "--from-file", "k=/nonexistent/file"]).fails(2, "/nonexistent/file");

    // Nothing changed: no secret, no version, no event (not even a key request).
    assert_eq!(secrets(), secrets_before);
    assert_eq!(events(), events_before);
    let described = bare(
        &dev,
        &[],
        &["describe", "secret", "local://alice/db", "-o", "json"],
    )
    .json();
    assert_eq!(described["versions"].as_array().unwrap().len(), 1);

    // No value in any output.
    for run in &runs {
        for secret in [&value, &file_value, &existing, &alice] {
            assert!(!run.stdout.contains(secret.as_str()), "{run:?}");
            assert!(!run.stderr.contains(secret.as_str()), "{run:?}");
        }
    }
}

/// The number of events in the running dev server's log.
fn event_count(dev: &Dev) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        dev.control_plane.events_db(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap()
}
