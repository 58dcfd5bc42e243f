//! Several control planes on one PostgreSQL database (ADR 0020), as real
//! `sealplane serve` processes: commands through any of them, each one's
//! read model converges, read your writes across replicas, conflicting
//! commands through two at once have exactly one winner, and the once-only
//! work moves to another replica within seconds when its holder is killed
//! with SIGKILL — and is still done once.
//!
//! `scripts/test` starts the PostgreSQL server and exports
//! `SEALPLANE_TEST_POSTGRES_URL`; without it this test fails.

use std::time::{Duration, Instant};

use sealplane_event_store::{EventStore, Position, PostgresStore};
use sealplane_proto::upload::Purpose;
use sealplane_proto::v1;
use sealplane_proto::v1::secrets_client::SecretsClient;
use sealplane_test_kit::postgres::Database;
use sealplane_test_kit::{Cluster, ControlPlane, Settings, User, authorized, marker};
use tonic::transport::Channel;
use uuid::Uuid;

/// The log line of a control plane that takes the once-only lease.
const TOOK_LEASE: &str = "took the once-only lease";
/// The log line of the sweep ending an unanswered upload request.
const SWEPT: &str = "upload request expired unanswered";

fn settings(db: &Database, dir: &std::path::Path) -> Settings {
    Settings {
        event_store: format!(
            "[event_store]\nbackend = \"postgres\"\nurl = \"{}\"",
            db.url
        ),
        sections: format!(
            "[audit]\nlog_key_file = \"{}\"",
            dir.join("log-signing.key").display()
        ),
        // Short keys, so an unanswered request is swept within the test.
        limits: "upload_key_ttl_seconds = 2".to_owned(),
        ..Settings::default()
    }
}

fn log_of(cp: &ControlPlane) -> String {
    std::fs::read_to_string(cp.log_path()).unwrap_or_default()
}

fn version_of(c: &Cluster, addr: &str, user: &User, uri: &str) -> u64 {
    let described = c
        .sealctl_at(addr, user, &["describe", "secret", uri, "-o", "json"])
        .json();
    described["versions"]
        .as_array()
        .and_then(|v| v.last())
        .and_then(|v| v["version"].as_u64())
        .unwrap_or_else(|| panic!("no version in {described}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_control_planes_on_one_database_agree_and_hand_over_once_only_work() {
    let db = Database::create().await;
    let keys = tempfile::tempdir().unwrap();
    let mut c = Cluster::start_with(settings(&db, keys.path()));
    let mut b = c.control_plane().replica("b");
    let cp_c = c.control_plane().replica("c");
    let a = c.addr.clone();
    let replicas = [a.clone(), b.addr.clone(), cp_c.addr.clone()];
    assert!(
        log_of(c.control_plane()).contains(TOOK_LEASE),
        "the first control plane holds the lease"
    );
    for other in [&b, &cp_c] {
        assert!(!log_of(other).contains(TOOK_LEASE), "only one holds it");
    }

    c.add_file_store("local");
    // A token issued through A works through B and C at once.
    let alice = c.add_user("alice", "user", &[]);
    for addr in &replicas {
        c.sealctl_at(addr, &alice, &["get", "secrets", "-o", "json"])
            .ok();
    }

    // Read your writes across replicas: a put through one, then at once a
    // describe and a list through the next, in new processes; no misses.
    let uri = "local://alice/db";
    let mut values = vec![];
    for round in 0..9usize {
        let (writer, reader) = (&replicas[round % 3], &replicas[(round + 1) % 3]);
        let value = marker("pw-replicas");
        let put = c
            .sealctl_at(
                writer,
                &alice,
                &[
                    "put",
                    "secret",
                    uri,
                    &format!("password={value}"),
                    "-o",
                    "json",
                ],
            )
            .json();
        values.push(value);
        let version = put["version"].as_u64().unwrap();
        assert_eq!(version, round as u64 + 1, "{put}");
        assert_eq!(
            version_of(&c, reader, &alice, uri),
            version,
            "round {round}: a describe through another replica right after the put"
        );
        let listed = c
            .sealctl_at(reader, &alice, &["get", "secrets", "-o", "json"])
            .json();
        assert!(
            listed
                .to_string()
                .contains(&format!("\"version\":{version}")),
            "round {round}: {listed}"
        );
    }

    // Conflicting commands on one aggregate through two replicas at once:
    // exactly one winner each time.
    for round in 0..4 {
        let name = format!("bob{round}");
        let runs = std::thread::scope(|s| {
            let handles: Vec<_> = [&replicas[1], &replicas[2]]
                .into_iter()
                .map(|addr| {
                    let (c, name) = (&c, name.clone());
                    s.spawn(move || {
                        c.sealctl_at(addr, &c.admin, &["create", "user", &name, "--role", "user"])
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        let winners = runs.iter().filter(|r| r.code == 0).count();
        assert_eq!(winners, 1, "round {round}: {runs:?}");
        let loser = runs.iter().find(|r| r.code != 0).unwrap();
        assert!(loser.stderr.contains("is already a user"), "{loser:?}");
    }

    // Every read model converged on the same state.
    let states: Vec<String> = replicas
        .iter()
        .map(|addr| {
            let secrets = c.sealctl_at(addr, &c.admin, &["get", "secrets", "-o", "json"]);
            let users = c.sealctl_at(addr, &c.admin, &["get", "principals", "-o", "json"]);
            format!("{}{}", secrets.ok(), users.ok())
        })
        .collect();
    assert_eq!(states[0], states[1]);
    assert_eq!(states[1], states[2]);

    // SIGKILL the lease holder (A); its reactor is left without a control
    // plane, so a request made through B now goes unanswered.
    c.kill_control_plane();
    let killed = Instant::now();
    let moved = wait_until(Duration::from_secs(20), || {
        log_of(&b).contains(TOOK_LEASE) || log_of(&cp_c).contains(TOOK_LEASE)
    });
    assert!(
        moved,
        "no replica took the lease after its holder was killed"
    );
    let took_over = killed.elapsed();
    println!("the once-only lease moved {took_over:?} after SIGKILL of its holder");
    assert!(
        took_over < Duration::from_secs(10),
        "the lease moved after {took_over:?}"
    );
    let holders = [&b, &cp_c]
        .iter()
        .filter(|cp| log_of(cp).contains(TOOK_LEASE))
        .count();
    assert_eq!(holders, 1, "one new holder");

    let request = unanswered_request(&b.addr, &alice, "local://alice/waiting").await;
    // The sweep (SWEEP_GRACE, 10 s, after the 2 s key expiry) ends it, as
    // the new holder; a watch through C sees it end.
    let state = watch_until_end(&cp_c.addr, &alice, request).await;
    assert_eq!(state, v1::UploadState::Expired);
    let swept = [&b, &cp_c]
        .iter()
        .map(|cp| log_of(cp).matches(SWEPT).count())
        .sum::<usize>();
    assert_eq!(swept, 1, "the request was swept exactly once");
    b.stop();
    // No value reached the shared log, a replica's log, sealctl's output or
    // the files.
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let events = store.read_all(Position::START, 100_000).await.unwrap();
    store.close().await;
    assert!(events.len() > 50, "{} events", events.len());
    for value in &values {
        for e in &events {
            assert!(
                !e.data.as_str().contains(value.as_str()),
                "plaintext at {}",
                e.position
            );
            assert!(!e.metadata.as_str().contains(value.as_str()));
        }
        assert_eq!(c.scan_for(value.as_bytes()), Vec::<String>::new());
    }
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

async fn client(addr: &str) -> SecretsClient<Channel> {
    SecretsClient::new(
        Channel::from_shared(addr.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

/// Asks for an upload key through `addr` and never uploads.
async fn unanswered_request(addr: &str, user: &User, uri: &str) -> Uuid {
    let (purpose, adopt) = Purpose::Put { adopt: false }.to_proto();
    let reply = client(addr)
        .await
        .request_upload_key(authorized(
            v1::RequestUploadKeyRequest {
                options: Some(v1::CommandOptions {
                    command_id: Uuid::new_v4().to_string(),
                    correlation_id: String::new(),
                }),
                uri: uri.into(),
                purpose: purpose as i32,
                adopt,
            },
            user,
        ))
        .await
        .unwrap()
        .into_inner();
    reply.request_id.parse().unwrap()
}

/// Follows request `id` through `addr` until it ends (within 60 s).
async fn watch_until_end(addr: &str, user: &User, id: Uuid) -> v1::UploadState {
    let mut stream = client(addr)
        .await
        .watch_upload(authorized(
            v1::WatchUploadRequest {
                request_id: id.to_string(),
            },
            user,
        ))
        .await
        .unwrap()
        .into_inner();
    let ends = [
        v1::UploadState::Uploaded,
        v1::UploadState::Verified,
        v1::UploadState::Failed,
        v1::UploadState::Expired,
    ];
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let status = stream.message().await.unwrap().expect("the watch ended");
            if ends.contains(&status.state()) {
                return status.state();
            }
        }
    })
    .await
    .expect("the request did not end within 60 s")
}
