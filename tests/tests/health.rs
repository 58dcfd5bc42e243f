//! Health end to end (issue 16), with the real binaries: `sealplane serve`
//! with an `[admin]` section answers `/healthz` and `/readyz` and the gRPC
//! health service, and says not ready while it drains on SIGTERM; a reactor
//! with one says ready once it has caught up on its feed and its store
//! answers, and names what is wrong when its store or the control plane
//! goes away. (The read model held behind is `control-plane/tests/health.rs`.)

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use sealplane_proto::v1;
use sealplane_test_kit::{Cluster, ControlPlane, Settings};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const ADMIN_LINE: &str = "admin listener on http://";

/// `GET path` on `addr`: the status and body.
fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((status, body))
}

/// Polls `/readyz` on `addr` until `want` holds, for at most 10 s.
fn readyz_until(addr: &str, what: &str, want: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok((status, body)) = get(addr, "/readyz") {
            if want(status, &body) {
                return body;
            }
            last = format!("{status} {body}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("/readyz never {what}; last answer: {last}");
}

/// The admin address a process printed in `log`.
fn admin_addr(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains(ADMIN_LINE))
        .unwrap_or_else(|| panic!("no admin line in:\n{log}"));
    let rest = &line[line.find(ADMIN_LINE).unwrap() + ADMIN_LINE.len()..];
    rest.split_whitespace().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_plane_is_ready_when_serving_and_not_ready_while_draining() {
    let mut cp = ControlPlane::configure(None, Settings::default());
    let config = std::fs::read_to_string(cp.config_path()).unwrap();
    std::fs::write(
        cp.config_path(),
        format!("{config}\n[admin]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let token = cp.init();
    cp.start();
    let admin = admin_addr(&cp.process().output());
    assert!(
        cp.process()
            .output()
            .contains("read model rebuilt from the log"),
        "start-up logs the rebuild:\n{}",
        cp.process().output()
    );
    assert_eq!(get(&admin, "/healthz").unwrap(), (200, "ok\n".into()));
    readyz_until(&admin, "ready", |s, _| s == 200);

    let channel = cp.channel().await;
    let mut health = tonic_health_client(channel.clone());
    assert_eq!(health_status(&mut health).await, 1, "SERVING");

    // A query in flight keeps the server draining after SIGTERM: it waits
    // for a position nobody wrote.
    let mut stores = v1::stores_client::StoresClient::new(channel.clone());
    let mut slow = tonic::Request::new(v1::ListStoresRequest {
        options: Some(v1::QueryOptions {
            min_position: 1_000_000,
        }),
    });
    slow.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let in_flight = tokio::spawn(async move { stores.list_stores(slow).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cp.process().signal("-TERM");
    let body = tokio::task::spawn_blocking({
        let admin = admin.clone();
        move || readyz_until(&admin, "not ready while draining", |s, _| s == 503)
    })
    .await
    .unwrap();
    assert!(body.contains("draining"), "{body}");
    let late = in_flight.await.unwrap().unwrap_err();
    assert_eq!(late.code(), Code::Unavailable, "{late:?}");
    assert!(cp.process_mut().wait().success(), "a clean stop");
    assert!(
        get(&admin, "/readyz").is_err(),
        "the admin listener is gone"
    );
}

fn tonic_health_client(
    channel: tonic::transport::Channel,
) -> HealthClient<tonic::transport::Channel> {
    HealthClient::new(channel)
}

async fn health_status(client: &mut HealthClient<tonic::transport::Channel>) -> i32 {
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reactor_is_ready_once_caught_up_and_says_which_part_is_missing() {
    let mut c = Cluster::start();
    let index = c.add_reactor_for("local", None);
    let config = c.reactor_config(index).to_owned();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[admin]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let key = c.reactor_key(index);
    c.sealctl(
        &c.admin,
        &[
            "create",
            "store",
            "local",
            "--kind",
            "file",
            "--reactor-key",
            &key,
        ],
    )
    .ok();
    c.start_reactor(index);
    let admin = admin_addr(&c.reactor_log(index));
    assert_eq!(get(&admin, "/healthz").unwrap().0, 200);
    readyz_until(&admin, "ready", |s, _| s == 200);

    // Its store's root goes away: not ready, naming the store.
    let root = config.with_file_name("files");
    let moved = config.with_file_name("files.moved");
    std::fs::rename(&root, &moved).unwrap();
    let body = readyz_until(&admin, "not ready without its store", |s, _| s == 503);
    assert!(body.contains("store unreachable: `local`"), "{body}");
    std::fs::rename(&moved, &root).unwrap();
    readyz_until(&admin, "ready again", |s, _| s == 200);

    // The control plane goes away: not connected.
    c.control_plane().process().signal("-TERM");
    let body = readyz_until(&admin, "not ready without the control plane", |s, _| {
        s == 503
    });
    assert!(body.contains("control plane"), "{body}");
}
