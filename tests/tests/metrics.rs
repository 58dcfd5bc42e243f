//! Metrics (issue 16), with the real binaries: `/metrics` on the control
//! plane's admin listener, scraped while puts run, parses with a real
//! Prometheus text-format parser (`prometheus_client.parser` in the test
//! venv, `SEALPLANE_TEST_PYTHON`, set by `scripts/test`); the put counter
//! and histogram move by exactly the puts made, and no line holds a value
//! put.

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
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let admin = c.control_plane().admin_addr();
    let before = parse(&scrape(&admin));

    let values = Mutex::new(Vec::new());
    let scrapes = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                scrapes.lock().unwrap().push(scrape(&admin));
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

    let scrapes = scrapes.into_inner().unwrap();
    assert!(!scrapes.is_empty());
    for text in scrapes.iter().chain([&last]) {
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
