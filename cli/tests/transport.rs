//! `sealctl` never sends a token in clear off the machine: plain `http://`
//! to anything but a loopback address is refused with a sentence and a
//! non-zero exit before anything is resolved or sent (the rule itself is
//! unit-tested in `sealplane_proto::transport`). No test here sends a
//! byte off the machine: `db.example` is never resolved (`.example`
//! names never resolve anyway), and the loopback addresses have nothing
//! listening on port 1.

use std::process::Command;
use std::time::{Duration, Instant};

use sealplane_test_kit::Run;

const SEALCTL: &str = env!("CARGO_BIN_EXE_sealctl");

/// `sealctl whoami` with `SEALPLANE_ADDR=addr` and a token, in an empty
/// config directory.
fn whoami_at(addr: &str) -> Run {
    let config = tempfile::tempdir().unwrap();
    Run::from_output(
        Command::new(SEALCTL)
            .arg("whoami")
            .env("SEALPLANE_ADDR", addr)
            .env("SEALPLANE_TOKEN", "spt_not-sent-anywhere")
            .env("SEALPLANE_CONFIG_DIR", config.path())
            .env_remove("SEALPLANE_CA_FILE")
            .output()
            .unwrap(),
    )
}

#[test]
fn plain_http_off_the_machine_is_refused_without_connecting() {
    let started = Instant::now();
    let out = whoami_at("http://db.example:7700");
    let stderr = out.fails(
        2,
        "refusing to send a token in clear to http://db.example:7700: use https:// (plain http is only allowed to loopback addresses)",
    );
    // The refusal, not a failed connection or lookup: nothing was tried.
    assert!(!stderr.contains("cannot reach"), "{stderr}");
    assert!(
        !stderr.contains("spt_"),
        "the token is never printed: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not after a connect timeout"
    );
    // The same through --addr, and for addresses as well as names.
    for addr in [
        "http://10.0.0.1:7700",
        "http://0.0.0.0:7700",
        "http://[::]:7700",
    ] {
        let out = Run::from_output(
            Command::new(SEALCTL)
                .args(["--addr", addr, "--token", "x", "whoami"])
                .output()
                .unwrap(),
        );
        out.fails(2, &format!("refusing to send a token in clear to {addr}"));
    }
}

#[test]
fn plain_http_to_loopback_still_connects() {
    // Nothing listens on port 1: getting as far as "cannot reach" shows
    // the address was allowed. (`localhost` is allowed too, by the unit
    // tests: resolving it here could ask a DNS server on a machine whose
    // hosts file lacks it.)
    for addr in ["http://127.0.0.1:1", "http://127.1.2.3:1", "http://[::1]:1"] {
        whoami_at(addr).fails(2, &format!("cannot reach the control plane at {addr}"));
    }
}
