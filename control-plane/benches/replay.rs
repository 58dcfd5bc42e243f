//! How long an audit replay takes over a long log, beside reading the same
//! log without projecting it, in one run (ADR 0017).
//!
//! `cargo bench -p sealplane-control-plane --bench replay [-- --events N]`
//! (release profile; default 100,000 events; `--append-to EVENTS_DB` writes
//! them into an existing log instead, e.g. a stopped `sealplane dev`'s, to
//! time `sealctl audit replay` end to end). It writes a log into an
//! embedded store in a temporary directory: 1,000 users, 100 groups of 10
//! members, then secrets of five events each (created, three versions, a
//! grant) up to N events. Then, each timed:
//! - `read_all` in pages of the replay's size, nothing applied (reference);
//! - `replay::fold` at the head with the live projection and `state_of`
//!   (what `sealctl audit replay --at HEAD` costs the server);
//! - `replay::fold` at N/2 and the head in one pass (`--diff`).
//!
//! It prints the events/s of each and the process's peak resident memory.

use std::time::Instant;

use chrono::Utc;
use sealplane_control_plane::api::audit::state_of;
use sealplane_control_plane::application::audit::filter::LogPoint;
use sealplane_control_plane::application::audit::replay::{PAGE, fold};
use sealplane_control_plane::domain::DomainEvent;
use sealplane_control_plane::domain::Role;
use sealplane_control_plane::domain::names::{SecretUri, Slug};
use sealplane_control_plane::domain::principal::PrincipalEvent;
use sealplane_control_plane::domain::secret::SecretEvent;
use sealplane_control_plane::streams;
use sealplane_event_store::{
    EmbeddedStore, EventMetadata, EventStore, EventType, ExpectedVersion, NewEvent, Position,
    StreamId,
};
use serde_json::json;
use uuid::Uuid;

const USERS: usize = 1_000;
const GROUPS: usize = 100;
const CONCURRENT: usize = 64;

fn new_event<E: DomainEvent>(event: &E) -> NewEvent {
    let metadata = EventMetadata {
        timestamp: Utc::now(),
        ..EventMetadata::new("admin")
    };
    NewEvent::new(
        EventType::parse(event.event_type()).unwrap(),
        1,
        event,
        &metadata,
    )
    .unwrap()
}

fn slug(s: String) -> Slug {
    Slug::parse(s).unwrap()
}

/// The events of secret `n`: created by its owner, three versions, a grant.
fn secret(n: usize) -> (StreamId, Vec<NewEvent>) {
    let owner = format!("u{}", n % USERS);
    let uri = SecretUri::parse(&format!("local://{owner}/s{n}")).unwrap();
    let created: SecretEvent = serde_json::from_value(json!({
        "type": "SecretCreated", "uri": uri.to_string(), "creator": owner,
        "acl": { "readers": [owner], "writers": [owner], "deleters": [owner] }
    }))
    .unwrap();
    let mut events = vec![new_event(&created)];
    for version in 1..=3u64 {
        events.push(new_event(&SecretEvent::SecretVersionAdded {
            uri: uri.clone(),
            request_id: Uuid::new_v4(),
            version,
            hash: format!("hmac-sha256-v2:k1:{:064x}", n as u64 * 4 + version),
            key_hashes: Default::default(),
            by: slug(owner.clone()),
            at: Utc::now(),
        }));
    }
    let grant: SecretEvent = serde_json::from_value(json!({
        "type": "AccessGranted", "list": "readers", "slug": format!("g{}", n % GROUPS)
    }))
    .unwrap();
    events.push(new_event(&grant));
    (streams::secret(&uri), events)
}

async fn write_log(store: &EmbeddedStore, events: usize) -> Position {
    let mut batches: Vec<(StreamId, Vec<NewEvent>)> = vec![];
    for u in 0..USERS {
        let user = PrincipalEvent::UserCreated {
            slug: slug(format!("u{u}")),
            role: Role::User,
            stores: vec![],
        };
        batches.push((
            streams::principal(&slug(format!("u{u}"))),
            vec![new_event(&user)],
        ));
    }
    for g in 0..GROUPS {
        let group = slug(format!("g{g}"));
        let mut events = vec![new_event(&PrincipalEvent::GroupCreated {
            slug: group.clone(),
        })];
        for m in 0..USERS / GROUPS {
            events.push(new_event(&PrincipalEvent::MemberAdded {
                group: group.clone(),
                user: slug(format!("u{}", g * (USERS / GROUPS) + m)),
            }));
        }
        batches.push((streams::principal(&group), events));
    }
    let written: usize = batches.iter().map(|(_, e)| e.len()).sum();
    batches.extend((0..events.saturating_sub(written) / 5).map(secret));
    for chunk in batches.chunks(CONCURRENT) {
        let appends = chunk.iter().cloned().map(|(stream, events)| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(&stream, ExpectedVersion::Any, events)
                    .await
                    .unwrap()
            })
        });
        for append in appends.collect::<Vec<_>>() {
            append.await.unwrap();
        }
    }
    store.head().await.unwrap()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn rate(events: u64, seconds: f64) -> String {
    format!("{:>10.0} events/s", events as f64 / seconds)
}

fn main() {
    let events: usize = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .map(|n| n.parse().expect("--events takes a number"))
        .unwrap_or(100_000);
    let append_to: Option<std::path::PathBuf> = std::env::args()
        .skip_while(|a| a != "--append-to")
        .nth(1)
        .map(Into::into);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = append_to.unwrap_or_else(|| dir.path().join("events.db"));
        let store = EmbeddedStore::open(path).unwrap();
        let started = Instant::now();
        let before = store.head().await.unwrap().0 as usize;
        let head = write_log(&store, events.saturating_sub(before)).await;
        println!(
            "log: {} events written in {:.1} s",
            head.0,
            started.elapsed().as_secs_f64()
        );
        let rss_before = peak_rss_kib();

        let started = Instant::now();
        let mut next = Position::START;
        let mut read = 0u64;
        loop {
            let page = store.read_all(next, PAGE).await.unwrap();
            let Some(last) = page.last() else { break };
            next = last.position.next();
            read += page.len() as u64;
        }
        let raw = started.elapsed().as_secs_f64();
        println!(
            "read_all, nothing applied:     {:>7.3} s {}",
            raw,
            rate(read, raw)
        );

        let started = Instant::now();
        let state = fold(&store, &[LogPoint::Position(head.0)], head, state_of)
            .await
            .unwrap()
            .remove(0);
        let one = started.elapsed().as_secs_f64();
        println!(
            "replay --at head:              {:>7.3} s {} ({} stores, {} secrets, {} principals; reply {:.1} MB)",
            one,
            rate(head.0, one),
            state.stores.len(),
            state.secrets.len(),
            state.principals.len(),
            prost::Message::encoded_len(&state) as f64 / 1e6
        );

        let started = Instant::now();
        let points = [LogPoint::Position(head.0), LogPoint::Position(head.0 / 2)];
        let states = fold(&store, &points, head, state_of).await.unwrap();
        let two = started.elapsed().as_secs_f64();
        println!(
            "replay --diff half head:       {:>7.3} s {} (states of {} and {} secrets)",
            two,
            rate(head.0, two),
            states[1].secrets.len(),
            states[0].secrets.len()
        );
        println!(
            "peak resident memory: {} MiB after writing, {} MiB after the replays",
            rss_before / 1024,
            peak_rss_kib() / 1024
        );
        store.close().await;
    });
}
