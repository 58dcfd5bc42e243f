//! `put` through Sealplane to OpenBao (SPEC §9, issue 5): the real release
//! binaries and a KV v2 store on a private `bao server -dev`, driven by
//! sealctl's own upload code; reference, in the same run: a direct
//! `vaultrs` KV v2 write of the same values to the same OpenBao.
//!
//! Run (after `scripts/test` installed OpenBao into `.test-env/venv`):
//! `cargo build --release --workspace --bins && SEALPLANE_TEST_BAO_BIN=$PWD/.test-env/venv/bin/bao
//! cargo bench -p sealplane-tests --bench put_vault` (`PUT_BENCH_PUTS=N`
//! scales the run; `SEALPLANE_BENCH_JSON=FILE` also writes the figures as
//! JSON).

mod common;

use std::collections::HashMap;

use common::{drive, row, sealed_put, value, write_json};
use sealplane_cli::client::{Connection, ConnectionSettings};
use sealplane_cli::known_reactors::KnownReactors;
use sealplane_reactors::vault::KvVersion;
use sealplane_test_kit::Cluster;
use sealplane_test_kit::openbao::{Api, DEV_ROOT_TOKEN, DevServer, free_port_pair, token_file};
use uuid::Uuid;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("PUT_BENCH_PUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(640);
    let bao = DevServer::start(free_port_pair()).await;
    let api = Api::new(&bao.address(), DEV_ROOT_TOKEN);
    let sealplane_mount = api.new_kv_mount(KvVersion::V2).await;
    let direct_mount = api.new_kv_mount(KvVersion::V2).await;

    let mut cluster = Cluster::start();
    let token = token_file(cluster.dir(), DEV_ROOT_TOKEN);
    cluster.add_store(
        "vault",
        "vault",
        &format!(
            "address = {:?}\nmount = {sealplane_mount:?}\ntoken_file = {:?}",
            bao.address(),
            token.display().to_string()
        ),
    );
    let user = cluster.add_user("bench", "user", &[]);
    cluster
        .sealctl(&user, &["put", "secret", "vault://bench/warm", "k=v"])
        .ok();
    let pins_path = KnownReactors::path_in(&user.config_dir);
    let conn = Connection::open(&ConnectionSettings {
        addr: cluster.addr.clone(),
        token: Some(user.token.clone()),
        ca_file: None,
    })
    .await
    .unwrap();
    let vault = std::sync::Arc::new(
        VaultClient::new(
            VaultClientSettingsBuilder::default()
                .address(bao.address())
                .token(DEV_ROOT_TOKEN)
                .build()
                .unwrap(),
        )
        .unwrap(),
    );

    println!(
        "| clients | puts | sealplane put/s | p50 ms | p99 ms | direct vaultrs writes/s | p50 ms | p99 ms | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for clients in [1usize, 16] {
        let per_client = (total / clients / if clients == 1 { 2 } else { 1 }).max(5);
        let (conn2, pins2) = (conn.clone(), pins_path.clone());
        let round = Uuid::new_v4().simple().to_string();
        let put = drive(clients, per_client, move |c, i| {
            let (conn, pins_path, round) = (conn2.clone(), pins2.clone(), round.clone());
            async move {
                sealed_put(
                    &conn,
                    &pins_path,
                    format!("vault://bench/{round}/c{c}/s{i}"),
                    i,
                )
                .await;
            }
        })
        .await;
        let (vault2, mount) = (vault.clone(), direct_mount.clone());
        let round = Uuid::new_v4().simple().to_string();
        let direct = drive(clients, per_client, move |c, i| {
            let (vault, mount, round) = (vault2.clone(), mount.clone(), round.clone());
            async move {
                let data: HashMap<String, String> = value(i)
                    .iter()
                    .map(|(k, v)| (k.to_owned(), String::from_utf8(v.to_vec()).unwrap()))
                    .collect();
                vaultrs::kv2::set(&*vault, &mount, &format!("bench/{round}/c{c}/s{i}"), &data)
                    .await
                    .unwrap();
            }
        })
        .await;
        rows.push(row(clients, &put, &direct));
    }
    cluster.stop();
    drop(bao);
    write_json(serde_json::json!({ "rows": rows }));
}
