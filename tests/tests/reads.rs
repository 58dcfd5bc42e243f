//! Read your writes across processes (issue 11 item 2): right after a
//! `sealctl put` process exits 0, a new `sealctl get secrets` or `describe
//! secret` process sees the new version. A put used to be reported
//! stored when the upload request ended (`SecretUploaded`), before the
//! secret's own `SecretVersionAdded`, a second append.

use sealplane_test_kit::Cluster;

#[tokio::test(flavor = "multi_thread")]
async fn a_put_is_read_back_by_the_next_process_every_time() {
    let mut c = Cluster::start();
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let mut misses = vec![];
    for i in 1..=40 {
        let uri = format!("local://alice/s{}", i % 4);
        let put = c
            .sealctl(
                &alice,
                &["put", "secret", &uri, &format!("n={i}"), "-o", "json"],
            )
            .json();
        let version = put["version"].clone();
        let listed = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
        let seen = listed["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["uri"] == uri.as_str())
            .map(|s| s["version"].clone());
        if seen != Some(version.clone()) {
            misses.push(format!("get after put {i}: {seen:?} != {version}"));
        }
        let described = c
            .sealctl(&alice, &["describe", "secret", &uri, "-o", "json"])
            .json();
        let last = described["versions"]
            .as_array()
            .and_then(|v| v.last())
            .map(|v| v["version"].clone());
        if last != Some(version.clone()) {
            misses.push(format!("describe after put {i}: {last:?} != {version}"));
        }
    }
    assert!(misses.is_empty(), "{misses:#?}");
    // Fetched in pages of one, the listing is the same, each secret once.
    let whole = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
    let paged = c
        .sealctl(
            &alice,
            &["get", "secrets", "--page-size", "1", "-o", "json"],
        )
        .json();
    assert_eq!(paged, whole);
    assert_eq!(paged["secrets"].as_array().unwrap().len(), 4, "{paged}");
    let refused = c.sealctl(&alice, &["get", "secrets", "--page-size", "0"]);
    assert_eq!(refused.code, 2, "{refused:?}");
}
