//! One principal flooding the control plane does not hold others back
//! (issue 11 item 3): while mallory sends hundreds of refused calls at
//! once, alice's put goes through, and the log holds only as many of
//! mallory's refusals as the limit allows.

use std::time::{Duration, Instant};

use sealplane_proto::v1;
use sealplane_proto::v1::principals_client::PrincipalsClient;
use sealplane_test_kit::{Cluster, Settings};
use tonic::Request;

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_refused_calls_leaves_others_served_and_the_log_bounded() {
    let mut c = Cluster::start_with(Settings {
        limits: "max_denials_per_minute = 20".into(),
        ..Settings::default()
    });
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let mallory = c.add_user("mallory", "user", &[]);
    let channel = c.channel().await;
    let flood: Vec<_> = (0..400)
        .map(|_| {
            let mut client = PrincipalsClient::new(channel.clone());
            let token = mallory.token.clone();
            tokio::spawn(async move {
                let mut r = Request::new(v1::ListPrincipalsRequest::default());
                r.metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
                client
                    .list_principals(r)
                    .await
                    .map(drop)
                    .unwrap_err()
                    .code()
            })
        })
        .collect();
    let started = Instant::now();
    let put = c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            "local://alice/db",
            "password=x",
            "-o",
            "json",
        ],
    );
    assert_eq!(put.json()["version"], 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let mut codes = std::collections::BTreeMap::new();
    for call in flood {
        *codes
            .entry(format!("{:?}", call.await.unwrap()))
            .or_insert(0) += 1;
    }
    // Refused every time: by role while within the limit, then exhausted.
    assert_eq!(codes.values().sum::<i32>(), 400, "{codes:?}");
    assert_eq!(codes.get("PermissionDenied"), Some(&20), "{codes:?}");
    let log = c.event_log().await;
    let recorded = log
        .iter()
        .filter(|(t, d)| t == "AccessDenied" && d.contains("\"actor\":\"mallory\""))
        .count();
    assert_eq!(recorded, 20, "only up to the limit is recorded");
}
