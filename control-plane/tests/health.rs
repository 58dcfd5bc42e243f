//! Health (issue 16): the standard gRPC health service on the API port and
//! the admin listener's `/readyz` say NOT_SERVING while the read model is
//! behind the log and SERVING once it has caught up, and not ready again
//! while the server drains on shutdown. The read model is held behind by
//! a store wrapper in this test (no hook in the product): its
//! subscriptions start only when the test releases them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as TimeDelta;
use futures_util::StreamExt;
use sealplane_control_plane::bootstrap;
use sealplane_control_plane::config::Limits;
use sealplane_control_plane::domain::names::Slug;
use sealplane_control_plane::server;
use sealplane_event_store::{Decorator, EventStore, MemoryStore, Position, Subscription};
use sealplane_proto::v1;
use tokio::sync::watch;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A store whose subscriptions wait for `release`: the read model built
/// over it stays behind the log until the test says so.
struct Held {
    inner: Arc<dyn EventStore>,
    release: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl Decorator for Held {
    fn inner(&self) -> &dyn EventStore {
        &*self.inner
    }
    fn subscribe_all(&self, from: Position) -> Subscription {
        let inner = self.inner.clone();
        let mut release = self.release.clone();
        Box::pin(
            futures_util::stream::once(async move {
                let _ = release.wait_for(|r| *r).await;
                inner.subscribe_all(from)
            })
            .flatten(),
        )
    }
}

async fn readyz(addr: SocketAddr) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = "GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

async fn check(client: &mut HealthClient<tonic::transport::Channel>) -> ServingStatus {
    let reply = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    reply.into_inner().status()
}

/// Polls `probe` until it returns true, for at most five seconds.
async fn eventually<F: AsyncFnMut() -> bool>(mut probe: F, what: &str) {
    for _ in 0..100 {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 5 s: {what}");
}

#[tokio::test]
async fn health_is_not_serving_while_the_read_model_is_behind_serving_after_and_not_ready_while_draining()
 {
    // A log with an admin in it, written by a first server.
    let inner: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let first = server::app(inner.clone(), Limits::default()).await.unwrap();
    let token = bootstrap::init(
        &first.app,
        &Slug::parse("admin").unwrap(),
        TimeDelta::hours(1),
    )
    .await
    .unwrap()
    .expose()
    .to_owned();
    drop(first);

    // A second server over the same log, its read model held back.
    let (release, held) = watch::channel(false);
    let store = Arc::new(Held {
        inner,
        release: held,
    });
    let admin = sealplane_host::admin::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let assembled = server::app_rebuilding(store, Limits::default()).with_admin(admin);
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(assembled, listener, None, async {
        let _ = stopped.await;
    }));

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());

    // Given the read model behind the log:
    assert_eq!(check(&mut health).await, ServingStatus::NotServing);
    let (status, body) = readyz(admin_addr).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("rebuilding"), "{body}");
    // and calls are refused rather than answered from a partial model.
    let mut stores = v1::stores_client::StoresClient::new(channel.clone());
    let mut list = tonic::Request::new(v1::ListStoresRequest { options: None });
    list.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let refused = stores.list_stores(list).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("rebuilding"), "{refused:?}");

    // When it catches up: SERVING, and /readyz agrees.
    release.send_replace(true);
    eventually(
        async || check(&mut health).await == ServingStatus::Serving,
        "SERVING after the rebuild",
    )
    .await;
    assert_eq!(readyz(admin_addr).await.0, 200);
    for service in ["sealplane.v1.Secrets", "sealplane.v1.Reactor"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
        assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
    }

    // A query in flight keeps the server draining: it waits for a
    // position nobody wrote (up to the read-your-writes wait).
    let mut slow = tonic::Request::new(v1::ListStoresRequest {
        options: Some(v1::QueryOptions {
            min_position: 1_000_000,
        }),
    });
    slow.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut waiting = stores.clone();
    let in_flight = tokio::spawn(async move { waiting.list_stores(slow).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // And a watcher of the health status.
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    // When the server starts shutting down: not ready while it drains.
    let _ = stop.send(());
    eventually(
        async || {
            let (status, body) = readyz(admin_addr).await;
            status == 503 && body.contains("draining")
        },
        "/readyz not ready while draining",
    )
    .await;
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the watcher hears of the drain");
    if let Ok(Some(update)) = next {
        assert_eq!(update.status(), ServingStatus::NotServing);
    }
    let late = in_flight.await.unwrap().unwrap_err();
    assert_eq!(late.code(), Code::Unavailable, "{late:?}");
    drop(watch);
    drop(health);
    drop(stores);
    drop(channel);
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(admin_addr).await.is_err(),
        "the admin listener stops with the server"
    );
}
