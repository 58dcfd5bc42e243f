//! Metrics (issue 16), with the real binaries: `/metrics` on the admin
//! listeners of the control plane and of the reactor, scraped while puts
//! run, parses with a real Prometheus text-format parser
//! (`prometheus_client.parser` in the test venv, `SEALPLANE_TEST_PYTHON`,
//! set by `scripts/test`); the put counters and histograms of both move by
//! exactly the puts made, no line holds a value put, and a refused token
//! moves the authentication failure counter by exactly one.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sealplane_test_kit::{Cluster, Settings, marker};

const PUTS: usize = 6;

fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// Parses `text` with `prometheus_client.parser`; returns every sample as
/// `(name, labels as k=v sorted and joined by ',', value)`.
fn parse(text: &str) -> Vec<(String, String, f64)> {
    let python = std::env::var("SEALPLANE_TEST_PYTHON").expect(
        "SEALPLANE_TEST_PYTHON names a python with prometheus_client: run through scripts/test",
    );
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}\t{labels}\t{s.value}")
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.split('\t');
            let (n, labels, v) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            (n.to_owned(), labels.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn value(samples: &[(String, String, f64)], name: &str, labels: &str) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l == labels)
        .map_or(0.0, |s| s.2)
}

#[test]
fn metrics_scraped_during_puts_parse_and_move_by_exactly_the_puts_made() {
    let mut c = Cluster::start_with(Settings {
        admin: true,
        ..Settings::default()
    });
    let reactor = c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let admin = c.control_plane().admin_addr();
    let reactor_admin = c.reactor_admin_addr(reactor);
    let before = parse(&scrape(&admin));
    let reactor_before = parse(&scrape(&reactor_admin));

    let values = Mutex::new(Vec::new());
    let scrapes = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                scrapes.lock().unwrap().push(scrape(&admin));
                scrapes.lock().unwrap().push(scrape(&reactor_admin));
                std::thread::sleep(Duration::from_millis(30));
            }
        });
        for i in 0..PUTS {
            let value = marker(&format!("metric-value-{i}"));
            c.sealctl(
                &alice,
                &[
                    "put",
                    "secret",
                    &format!("local://alice/m{i}"),
                    &format!("v={value}"),
                ],
            )
            .ok();
            values.lock().unwrap().push(value);
        }
        done.store(true, Ordering::Relaxed);
    });
    let last = scrape(&admin);
    let after = parse(&last);
    let reactor_last = scrape(&reactor_admin);
    let reactor_after = parse(&reactor_last);

    let moved =
        |name: &str, labels: &str| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(moved("sealplane_puts_total", "store=local"), PUTS as f64);
    assert_eq!(
        moved("sealplane_put_duration_seconds_count", "store=local"),
        PUTS as f64
    );
    assert_eq!(
        moved("sealplane_commands_total", "command=RecordVersion"),
        PUTS as f64
    );
    assert!(moved("sealplane_event_store_append_duration_seconds_count", "") >= PUTS as f64);
    assert_eq!(value(&after, "sealplane_open_upload_requests", ""), 0.0);
    for gauge in [
        "sealplane_projection_lag_events",
        "sealplane_projection_lag_seconds",
    ] {
        let at = after.iter().find(|(n, _, _)| n == gauge);
        assert_eq!(at.map(|s| s.2), Some(0.0), "{gauge} once quiet:\n{last}");
    }
    assert!(
        moved("sealplane_token_authentications_total", "outcome=ok") >= PUTS as f64,
        "every put authenticates"
    );

    // The reactor: one upstream write per put, each timed, none failed.
    let moved = |name: &str, labels: &str| {
        value(&reactor_after, name, labels) - value(&reactor_before, name, labels)
    };
    let write = "kind=write,store=local";
    assert_eq!(
        moved(
            "sealplane_reactor_upstream_call_duration_seconds_count",
            write
        ),
        PUTS as f64
    );
    assert!(
        moved(
            "sealplane_reactor_upstream_call_duration_seconds_sum",
            write
        ) > 0.0
    );
    assert_eq!(
        moved(
            "sealplane_reactor_upstream_call_duration_seconds_bucket",
            "kind=write,le=+Inf,store=local"
        ),
        PUTS as f64
    );
    assert_eq!(
        moved("sealplane_reactor_uploads_opened_total", "store=local"),
        PUTS as f64
    );
    assert_eq!(
        moved("sealplane_reactor_uploads_completed_total", "store=local"),
        PUTS as f64
    );
    assert!(
        reactor_after
            .iter()
            .all(|(n, _, _)| n != "sealplane_reactor_upstream_errors_total"
                && n != "sealplane_reactor_uploads_failed_total"),
        "nothing failed:\n{reactor_last}"
    );
    assert_eq!(
        value(&reactor_after, "sealplane_reactor_feed_connected", ""),
        1.0
    );
    // Once the log is quiet the feed's checkpoint (after 1 s) reaches the head.
    let quiet = std::time::Instant::now();
    loop {
        let text = scrape(&reactor_admin);
        let now = parse(&text);
        let lag = |g| value(&now, g, "");
        if lag("sealplane_reactor_feed_lag_events") == 0.0
            && lag("sealplane_reactor_feed_lag_seconds") == 0.0
        {
            break;
        }
        assert!(
            quiet.elapsed() < Duration::from_secs(10),
            "the reactor's feed lag stays above 0 on a quiet log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let scrapes = scrapes.into_inner().unwrap();
    assert!(!scrapes.is_empty());
    for text in scrapes.iter().chain([&last, &reactor_last]) {
        parse(text);
        for value in values.lock().unwrap().iter() {
            assert!(!text.contains(value.as_str()), "a value put is in /metrics");
        }
        assert!(
            !text.contains("alice"),
            "no principal or uri as a label:\n{text}"
        );
    }
}

#[test]
fn a_refused_token_moves_the_failure_counter_by_exactly_one() {
    let c = Cluster::start_with(Settings {
        admin: true,
        ..Settings::default()
    });
    let alice = c.add_user("alice", "user", &[]);
    let admin = c.control_plane().admin_addr();
    let before = parse(&scrape(&admin));

    // Alice's token with one character changed: well formed, unknown.
    let mut forged = alice.clone();
    let mut chars: Vec<char> = alice.token.chars().collect();
    chars[4] = if chars[4] == 'A' { 'B' } else { 'A' };
    forged.token = chars.into_iter().collect();
    let run = c.sealctl(&forged, &["get", "secrets"]);
    assert_ne!(run.code, 0, "a forged token is refused");
    assert!(run.stderr.contains("unknown token"), "{}", run.stderr);

    let text = scrape(&admin);
    let after = parse(&text);
    let moved = |labels: &str| {
        value(&after, "sealplane_token_authentications_total", labels)
            - value(&before, "sealplane_token_authentications_total", labels)
    };
    assert_eq!(moved("outcome=unknown"), 1.0, "{text}");
    for other in ["missing", "malformed", "revoked", "expired"] {
        assert_eq!(moved(&format!("outcome={other}")), 0.0, "{other}");
    }
    assert!(!text.contains(&alice.token) && !text.contains(&forged.token));
    assert!(!text.contains("alice"), "no principal as a label");
}
