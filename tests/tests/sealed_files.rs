//! Sealed files for GitOps (SPEC §11, ADR 0025), with the real binaries:
//! a reactor's sealing key exported and checked, values sealed offline
//! (`--cert`, no control plane reachable), a folder applied and applied
//! again, one file changed, damaged and misplaced files refused with
//! nothing written, then rotate, reseal, retire and apply the resealed
//! folder; plaintext is nowhere but upstream.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sealplane_test_kit::{Cluster, User, marker};

/// An address nothing listens on: a `sealctl` that tried to talk would fail.
const NOBODY: &str = "http://127.0.0.1:9";

/// Waits until `store`'s reactor published a sealing key, then writes the
/// key file `sealctl get sealing-key` exports to `path`.
fn key_file(cluster: &Cluster, user: &User, store: &str, path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = cluster.sealctl(user, &["get", "sealing-key", store]);
        if run.code == 0 {
            std::fs::write(path, &run.stdout).unwrap();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no sealing key for {store}: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `sealctl seal URI KEY=VALUE --cert KEY_FILE` with no control plane
/// reachable; the sealed file goes to `out`.
fn seal_offline(cluster: &Cluster, user: &User, uri: &str, pair: &str, cert: &Path, out: &Path) {
    let run = cluster.sealctl_at(
        NOBODY,
        user,
        &["seal", uri, pair, "--cert", cert.to_str().unwrap()],
    );
    std::fs::write(out, run.ok()).unwrap();
}

fn apply(cluster: &Cluster, user: &User, target: &Path) -> sealplane_test_kit::Run {
    cluster.sealctl(
        user,
        &["apply", "-f", target.to_str().unwrap(), "-o", "json"],
    )
}

/// `(uri, result, version)` of each file an `apply -o json` reported.
fn results(run: &sealplane_test_kit::Run) -> Vec<(String, String, Option<u64>)> {
    let report: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["uri"].as_str().unwrap().to_owned(),
                f["result"].as_str().unwrap().to_owned(),
                f["version"].as_u64(),
            )
        })
        .collect()
}

fn versions(cluster: &Cluster, user: &User, uri: &str) -> usize {
    let run = cluster.sealctl(user, &["describe", "secret", uri, "-o", "json"]);
    if run.code != 0 {
        return 0;
    }
    run.json()["versions"].as_array().map_or(0, Vec::len)
}

fn sealing_key_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("sealingKey: "))
        .unwrap_or_else(|| panic!("no sealingKey in {text}"))
        .trim()
        .to_owned()
}

#[test]
fn a_folder_sealed_offline_applies_once_reapplies_as_unchanged_and_survives_rotation() {
    let mut cluster = Cluster::start();
    cluster.add_file_store("prod");
    cluster.add_file_store("dev");
    let alice = cluster.add_user("alice", "user", &[]);
    let work = cluster.dir().join("gitops");
    let git = work.join("secrets");
    let bad = work.join("bad");
    std::fs::create_dir_all(&git).unwrap();
    std::fs::create_dir_all(&bad).unwrap();

    // The key files: exported once, checked against alice's trust anchor.
    let prod_pub = work.join("prod.pub");
    key_file(&cluster, &alice, "prod", &prod_pub);
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&prod_pub).unwrap()).unwrap();
    assert_eq!(exported["store"], "prod");
    assert!(exported["certificate"].is_object(), "{exported}");

    // Sealed offline: nobody listens at the address sealctl is given.
    let (db, api, tls) = (marker("db"), marker("api"), marker("tls"));
    seal_offline(
        &cluster,
        &alice,
        "prod://alice/db",
        &format!("password={db}"),
        &prod_pub,
        &git.join("db.sealed.yaml"),
    );
    seal_offline(
        &cluster,
        &alice,
        "prod://alice/api",
        &format!("token={api}"),
        &prod_pub,
        &git.join("api.sealed.yaml"),
    );
    seal_offline(
        &cluster,
        &alice,
        "alice/tls",
        &format!("key={tls}"),
        &prod_pub,
        &git.join("tls.sealed.yaml"),
    );
    for name in ["db", "api", "tls"] {
        let text = std::fs::read_to_string(git.join(format!("{name}.sealed.yaml"))).unwrap();
        assert!(
            text.contains("kind: SealedSecret") && text.contains("checksum: sha256:"),
            "{text}"
        );
    }
    let key_before = sealing_key_of(&git.join("db.sealed.yaml"));

    // Apply the folder: three new versions; again: all unchanged.
    let first = apply(&cluster, &alice, &git);
    first.ok();
    assert_eq!(
        results(&first),
        [
            ("prod://alice/api".into(), "applied".into(), Some(1)),
            ("prod://alice/db".into(), "applied".into(), Some(1)),
            ("prod://alice/tls".into(), "applied".into(), Some(1)),
        ]
    );
    let again = apply(&cluster, &alice, &git);
    again.ok();
    assert!(
        results(&again)
            .iter()
            .all(|(_, r, v)| r == "unchanged" && *v == Some(1)),
        "{}",
        again.stdout
    );
    assert_eq!(
        versions(&cluster, &alice, "prod://alice/db"),
        1,
        "re-applying makes no version"
    );

    // One file changed: one new version, the others unchanged.
    let db2 = marker("db2");
    seal_offline(
        &cluster,
        &alice,
        "prod://alice/db",
        &format!("password={db2}"),
        &prod_pub,
        &git.join("db.sealed.yaml"),
    );
    let changed = apply(&cluster, &alice, &git);
    changed.ok();
    let changed = results(&changed);
    assert!(
        changed.contains(&("prod://alice/db".into(), "applied".into(), Some(2))),
        "{changed:?}"
    );
    assert_eq!(
        changed.iter().filter(|(_, r, _)| r == "unchanged").count(),
        2
    );

    // Damaged or misplaced files: each refused with a sentence, nothing written.
    let good = std::fs::read_to_string(git.join("db.sealed.yaml")).unwrap();
    std::fs::write(
        bad.join("moved.yaml"),
        good.replace("prod://alice/db", "prod://alice/moved"),
    )
    .unwrap();
    std::fs::write(
        bad.join("other-store.yaml"),
        good.replace("prod://alice/db", "dev://alice/db")
            .replace("store: prod", "store: dev"),
    )
    .unwrap();
    let at = good.find("ciphertext: ").unwrap() + "ciphertext: ".len() + 10;
    let mut flipped = good.clone().into_bytes();
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(bad.join("flipped.yaml"), flipped).unwrap();
    std::fs::write(bad.join("truncated.yaml"), &good[..good.len() / 2]).unwrap();
    let refused = apply(&cluster, &alice, &bad);
    assert_eq!(refused.code, 2, "{}\n{}", refused.stdout, refused.stderr);
    let report: serde_json::Value = serde_json::from_str(&refused.stdout).unwrap();
    let errors: Vec<(String, String)> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["result"], "failed", "{f}");
            (
                f["file"].as_str().unwrap().to_owned(),
                f["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let error_of = |name: &str| {
        errors
            .iter()
            .find(|(file, _)| file.ends_with(name))
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("{name} not reported: {errors:?}"))
    };
    assert!(
        error_of("moved.yaml").contains("not \"prod://alice/moved\""),
        "{errors:?}"
    );
    assert!(
        error_of("other-store.yaml").contains("store `dev` has no sealing key"),
        "{errors:?}"
    );
    assert!(
        error_of("flipped.yaml").contains("checksum does not match"),
        "{errors:?}"
    );
    assert!(
        error_of("truncated.yaml").contains("not a sealed file"),
        "{errors:?}"
    );
    assert_eq!(versions(&cluster, &alice, "prod://alice/db"), 2);
    assert_eq!(versions(&cluster, &alice, "prod://alice/moved"), 0);
    assert_eq!(versions(&cluster, &alice, "dev://alice/db"), 0);

    // Rotate: retiring the old key is refused while files use it, naming them.
    let before_reseal: PathBuf = work.join("kept-old.yaml");
    std::fs::copy(git.join("api.sealed.yaml"), &before_reseal).unwrap();
    cluster
        .sealctl(&cluster.admin, &["rotate", "sealing-key", "prod"])
        .ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster
        .sealctl(&alice, &["get", "sealing-keys", "prod", "-o", "json"])
        .json()["keys"]
        .as_array()
        .unwrap()
        .len()
        < 2
    {
        assert!(Instant::now() < deadline, "no new sealing key");
        std::thread::sleep(Duration::from_millis(200));
    }
    let retire = ["retire", "sealing-key", "prod", key_before.as_str()];
    let in_use = cluster.sealctl(&cluster.admin, &retire);
    let text = in_use.fails(2, "still seals the last applied file of 3 secret(s)");
    assert!(
        text.contains("prod://alice/db") && text.contains("prod://alice/tls"),
        "{text}"
    );

    // Reseal: every file onto the new key, in place; then retiring works.
    let resealed = cluster.sealctl(&alice, &["reseal", git.to_str().unwrap(), "-o", "json"]);
    resealed.ok();
    assert!(
        results(&resealed).iter().all(|(_, r, _)| r == "resealed"),
        "{}",
        resealed.stdout
    );
    let key_after = sealing_key_of(&git.join("db.sealed.yaml"));
    assert_ne!(key_after, key_before);
    cluster.sealctl(&cluster.admin, &retire).ok();
    let listed = cluster
        .sealctl(&alice, &["get", "sealing-keys", "prod", "-o", "json"])
        .json();
    let old = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_before.as_str())
        .unwrap()
        .clone();
    assert_eq!(old["retired"], true);

    // The resealed folder applies as unchanged; a file kept on the retired
    // key is refused before anything is sent.
    let after = apply(&cluster, &alice, &git);
    after.ok();
    assert!(
        results(&after).iter().all(|(_, r, _)| r == "unchanged"),
        "{}",
        after.stdout
    );
    let stale = apply(&cluster, &alice, &before_reseal);
    assert_eq!(stale.code, 2);
    assert!(stale.stdout.contains("is retired"), "{}", stale.stdout);
    assert_eq!(versions(&cluster, &alice, "prod://alice/api"), 1);

    // The reactor destroyed the retired key's file.
    let keys_dir = cluster
        .reactor_config(0)
        .parent()
        .unwrap()
        .join("sealing-keys")
        .join("prod");
    let names: Vec<String> = std::fs::read_dir(&keys_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.contains(&format!("{key_before}.key")), "{names:?}");
    assert!(names.contains(&format!("{key_after}.key")), "{names:?}");

    for value in [&db, &db2, &api, &tls] {
        cluster.assert_nowhere(value.as_bytes());
    }
}

#[test]
fn a_key_file_nothing_vouches_for_is_refused_before_sealing() {
    let mut cluster = Cluster::start();
    cluster.add_file_store("prod");
    let alice = cluster.add_user("alice", "user", &[]);
    let work = cluster.dir().join("gitops");
    std::fs::create_dir_all(&work).unwrap();
    let prod_pub = work.join("prod.pub");
    key_file(&cluster, &alice, "prod", &prod_pub);
    // Another user who holds no trust anchor for this deployment.
    let mallory = User {
        slug: "mallory".into(),
        token: String::new(),
        config_dir: cluster.dir().join("sealctl-mallory"),
    };
    std::fs::create_dir_all(&mallory.config_dir).unwrap();
    let value = marker("v");
    let run = cluster.sealctl_at(
        NOBODY,
        &mallory,
        &[
            "seal",
            "prod://alice/x",
            &format!("k={value}"),
            "--cert",
            prod_pub.to_str().unwrap(),
        ],
    );
    run.fails(3, "nothing vouches for reactor identity");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // A key swapped in the file (another store's signature does not hold).
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&prod_pub).unwrap()).unwrap();
    file["publicKey"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    std::fs::write(&prod_pub, file.to_string()).unwrap();
    let swapped = cluster.sealctl_at(
        NOBODY,
        &alice,
        &[
            "seal",
            "prod://alice/x",
            &format!("k={value}"),
            "--cert",
            prod_pub.to_str().unwrap(),
        ],
    );
    swapped.fails(3, "not signed by the store's reactor identity");
    assert!(swapped.stdout.is_empty());
    cluster.assert_nowhere(value.as_bytes());
}
