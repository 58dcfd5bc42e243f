//! End to end with AWS Secrets Manager as a user would test it locally:
//! the moto server `scripts/test` starts. `sealctl put secret aws-dev://...`
//! lands in Secrets Manager (read back with the AWS SDK, not through
//! Sealplane), and the event store and every log stay free of the value.

use sealplane_test_kit::moto::{Moto, current_json, describe, unique_prefix};
use sealplane_test_kit::{Cluster, marker};

#[tokio::test(flavor = "multi_thread")]
async fn a_put_lands_in_secrets_manager_and_the_log_holds_no_value() {
    let moto = Moto::shared();
    let aws = moto.client();
    let prefix = unique_prefix();
    let mut c = Cluster::start();
    let r = c.add_store(
        "aws-dev",
        "aws-secrets-manager",
        &format!(
            "region = {:?}\nendpoint = {:?}\naccess_key_id = {:?}\n\
             secret_access_key_env = \"SEALPLANE_TEST_AWS_SECRET_ACCESS_KEY\"\n\
             name_prefix = {prefix:?}\nrecovery_window_days = 7",
            moto.region, moto.endpoint, moto.access_key_id
        ),
    );
    let alice = c.add_user("alice", "user", &[]);
    let p1 = marker("aws-pw");
    let uri = "aws-dev://alice/db";
    let name = format!("{prefix}alice/db");

    let put = c
        .sealctl(
            &alice,
            &[
                "put",
                "secret",
                uri,
                "user=app",
                &format!("password={p1}"),
                "-o",
                "json",
            ],
        )
        .json();
    assert_eq!(put["version"], 1);
    let stored = current_json(&aws, &name).await;
    assert_eq!(stored["password"], p1.as_str());
    assert_eq!(stored["user"], "app");
    let described = describe(&aws, &name).await.expect("the secret exists");
    assert_eq!(described.tags["managed-by"], "sealplane");
    assert_eq!(described.tags["sealplane-uri"], uri);

    let same = c.sealctl(
        &alice,
        &[
            "verify",
            "secret",
            uri,
            "user=app",
            &format!("password={p1}"),
        ],
    );
    assert!(same.ok().starts_with("match"), "{}", same.stdout);

    c.sealctl(&alice, &["delete", "secret", uri]).ok();
    let gone = describe(&aws, &name).await.expect("scheduled, not gone");
    assert!(gone.deleted, "soft-deleted with a recovery window");
    assert!(
        c.reactor_log(r)
            .contains("deleted aws-dev://alice/db upstream")
    );

    c.assert_nowhere(p1.as_bytes());
    let events = c.events().await;
    assert!(
        events
            .iter()
            .any(|e| e.event_type.as_str() == "SecretDeleted")
    );
    c.assert_nowhere(p1.as_bytes());
}
