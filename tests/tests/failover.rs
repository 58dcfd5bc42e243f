//! Reactor active/standby (ADR 0021), with the real binaries: two
//! `sealplane-reactor` processes of one store (same configuration,
//! identity and token); one holds the feed, the other waits. Killing the
//! active one with SIGKILL in the middle of a stream of puts loses
//! nothing: every put `sealctl` acknowledged is stored, requests whose
//! one-time keys died with it fail as "key lost" and `sealctl` retries them
//! onto the new active one, and puts resume within seconds.

use std::process::Command;
use std::time::{Duration, Instant};

use sealplane_test_kit::{Cluster, marker};

const TOOK_OVER: &str = "took over the feed";

#[test]
fn killing_the_active_reactor_mid_flow_loses_no_put_and_the_standby_takes_over() {
    let mut c = Cluster::start();
    let active = c.add_file_store("local");
    let standby = c.add_twin(active);
    assert!(!c.reactor_log(standby).contains(TOOK_OVER));
    let alice = c.add_user("alice", "user", &[]);

    // Three writers put in a loop while the active reactor is killed.
    const WRITERS: usize = 3;
    const PUTS: u64 = 8;
    let started = Instant::now();
    let active_pid = c.reactor_process(active).id();
    let (takeover, runs) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (c, alice) = (&c, &alice);
                s.spawn(move || {
                    let uri = format!("local://alice/w{w}");
                    (1..=PUTS)
                        .map(|_| {
                            let value = marker("pw-failover");
                            let args = ["put", "secret", &uri, &format!("password={value}")];
                            let run = c.sealctl(alice, &[&args[..], &["-o", "json"]].concat());
                            (uri.clone(), run, value)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // Let a few puts through, then crash the active reactor mid-flow
        // (by the pid of the process this test started).
        while c.reactor_log(active).matches("stored local://").count() < 4 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no puts went through"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let killed = Command::new("kill")
            .args(["-KILL", &active_pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let killed_at = Instant::now();
        while !c.reactor_log(standby).contains(TOOK_OVER)
            && killed_at.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let takeover = killed_at.elapsed();
        let runs: Vec<_> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        (takeover, runs)
    });
    c.kill_reactor(active); // reaps it

    // Every put was acknowledged, each secret has every version.
    for (uri, run, _) in &runs {
        assert_eq!(run.code, 0, "{uri}: {run:?}");
    }
    for w in 0..WRITERS {
        let uri = format!("local://alice/w{w}");
        let described = c
            .sealctl(&alice, &["describe", "secret", &uri, "-o", "json"])
            .json();
        let versions: Vec<u64> = described["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        assert_eq!(versions, (1..=PUTS).collect::<Vec<_>>(), "{uri}");
    }
    // The standby took over, and did so within seconds of the kill.
    let twin_log = c.reactor_log(standby);
    assert!(twin_log.contains(TOOK_OVER), "{twin_log}");
    let after = twin_log.matches("stored local://").count();
    assert!(after >= 1, "the new active one stored the later puts");
    assert!(
        takeover < Duration::from_secs(10),
        "the standby took over {takeover:?} after the kill"
    );
    let retried = runs
        .iter()
        .filter(|(_, run, _)| run.stderr.contains("retrying with a new one-time key"))
        .count();
    println!(
        "takeover after SIGKILL of the active reactor: {takeover:?}; puts retried onto the new one: {retried}"
    );

    // A put now is served by the new active one at once.
    let put_started = Instant::now();
    c.sealctl(
        &alice,
        &["put", "secret", "local://alice/after", "password=x"],
    )
    .ok();
    assert!(put_started.elapsed() < Duration::from_secs(10));
    // No value put, through either reactor, reached the event store, a
    // log (both reactors' included) or sealctl's output.
    for (_, run, value) in &runs {
        assert!(!run.stdout.contains(value.as_str()), "no value printed");
        assert_eq!(c.scan_for(value.as_bytes()), Vec::<String>::new());
    }
}
