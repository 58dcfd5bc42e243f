//! Command throughput and latency through the real gRPC API, beside the raw
//! event store append rate, in one run.
//!
//! `cargo bench -p sealplane-control-plane --bench commands` (release
//! profile). The whole control plane runs in-process on loopback over an
//! embedded store in a temporary directory; clients are tasks on the same
//! two-worker runtime, sharing one tonic `Channel` (one HTTP/2 connection).
//! Each command row is printed beside `EmbeddedStore::append` doing the
//! same durable single-event appends with the same number of concurrent
//! appenders, so the ratio is what the command pipeline (gRPC, auth, load,
//! decide, encode, read model) costs on top of the store.
//!
//! Two commands:
//! - `Principals.CreateGroup` with a fresh slug per call: every call is a new
//!   stream, so concurrent clients never conflict. Reference: appends to
//!   fresh streams with `NoStream`.
//! - `Principals.AddMember` of distinct pre-created users to ONE group: every
//!   client hits the same stream, so concurrent commands lose optimistic
//!   concurrency races and are decided again; a command that loses more
//!   than the handler's retry bound comes back `Aborted` and the client
//!   resends it with the same command id (counted, and included in its
//!   latency). Reference: appends to one stream with `Any`.
//!
//! `-- --commands N` sets the commands of the 1-client rows (default 2,000);
//! the 32-client rows run 32 × N/10 (uncontended) and 32 × N/40
//! (contended: each AddMember reloads the whole, growing, group stream).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Duration as TimeDelta;
use sealplane_control_plane::bootstrap;
use sealplane_control_plane::config::{EventStoreConfig, Limits};
use sealplane_control_plane::domain::names::Slug;
use sealplane_control_plane::server::{self, ServerError};
use sealplane_event_store::{
    EmbeddedStore, EventMetadata, EventStore, EventType, ExpectedVersion, NewEvent, StreamId,
};
use sealplane_proto::v1;
use sealplane_proto::v1::principals_client::PrincipalsClient;
use serde_json::json;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request};
use uuid::Uuid;

const CLIENTS: usize = 32;
const WARMUP: usize = 100;

fn main() {
    let commands: usize = std::env::args()
        .skip_while(|a| a != "--commands")
        .nth(1)
        .map(|n| n.parse().expect("--commands takes a number"))
        .unwrap_or(2_000);
    let each = (commands / 10).max(1);
    let each_contended = (commands / 40).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "command benchmark: gRPC commands on loopback (embedded store) vs raw event store appends, same run"
    );
    println!("| measurement | sealplane | reference | ratio |");
    println!("|---|---|---|---|");

    let server = rt.block_on(Server::start());
    rt.block_on(server.warm_up());

    let ours = rt.block_on(server.create_groups("a", 1, commands));
    let raw = rt.block_on(appends(1, commands, false));
    rows("CreateGroup", 1, &ours, &raw);
    let ours = rt.block_on(server.create_groups("b", CLIENTS, each));
    let raw = rt.block_on(appends(CLIENTS, each, false));
    rows("CreateGroup", CLIENTS, &ours, &raw);

    let setup = Instant::now();
    rt.block_on(server.create_users(commands.max(CLIENTS * each_contended)));
    eprintln!(
        "created {} users in {:.1?} (not timed)",
        commands.max(CLIENTS * each_contended),
        setup.elapsed()
    );
    let ours = rt.block_on(server.add_members("team-1", 1, commands));
    let raw = rt.block_on(appends(1, commands, true));
    rows("AddMember to one group", 1, &ours, &raw);
    let ours = rt.block_on(server.add_members("team-32", CLIENTS, each_contended));
    let raw = rt.block_on(appends(CLIENTS, each_contended, true));
    rows("AddMember to one group", CLIENTS, &ours, &raw);

    rt.block_on(server.stop());
}

/// What one measurement saw.
struct Measured {
    calls: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// `Aborted` replies the clients resent.
    resent: usize,
}

fn rows(command: &str, clients: usize, ours: &Measured, raw: &Measured) {
    let who = if clients == 1 {
        "1 client".to_owned()
    } else {
        format!("{clients} clients")
    };
    println!(
        "| {command}, {who}, {} calls (commands/s vs appends/s) | {} | {} | {} |",
        thousands(ours.calls as f64),
        thousands(ours.rate),
        thousands(raw.rate),
        ratio(ours.rate / raw.rate)
    );
    println!(
        "| {command} latency, {who} | p50 {:.2} ms, p99 {:.2} ms | p50 {:.2} ms, p99 {:.2} ms | |",
        ms(ours.p50),
        ms(ours.p99),
        ms(raw.p50),
        ms(raw.p99)
    );
    if ours.resent > 0 {
        println!(
            "| {command}, {who}: `Aborted` replies resent by clients | {} | | |",
            thousands(ours.resent as f64)
        );
    }
}

fn thousands(rate: f64) -> String {
    let n = rate.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Two decimals, or two significant digits below 0.1 so a tiny ratio does
/// not print as 0.00.
fn ratio(r: f64) -> String {
    if r >= 0.1 || r <= 0.0 {
        format!("{r:.2}")
    } else {
        let digits = (1.0 - r.log10().floor()) as usize;
        format!("{r:.digits$}")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `clients` concurrent tasks of `each` sequential calls of `call`
/// (client, index) → resends, timing every call.
async fn run<F, Fut>(clients: usize, each: usize, call: F) -> Measured
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = usize> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(each);
                let mut resent = 0;
                for i in 0..each {
                    let t = Instant::now();
                    resent += call(c, i).await;
                    latencies.push(t.elapsed());
                }
                (latencies, resent)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(clients * each);
    let mut resent = 0;
    for task in tasks {
        let (l, r) = task.await.unwrap();
        latencies.extend(l);
        resent += r;
    }
    let rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Measured {
        calls: latencies.len(),
        rate,
        p50: pct(0.50),
        p99: pct(0.99),
        resent,
    }
}

/// The reference: durable single-event appends straight to a fresh
/// embedded store, events shaped like the ones the commands write. With
/// `one_stream` every append goes to one stream (`Any`, like AddMember to
/// one group but without conflicts); otherwise each to a new stream
/// (`NoStream`, like CreateGroup).
async fn appends(clients: usize, each: usize, one_stream: bool) -> Measured {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path().join("reference.db")).unwrap());
    let measured = run(clients, each, {
        let store = store.clone();
        move |c, i| {
            let store = store.clone();
            async move {
                let (stream, expected, event) = if one_stream {
                    let data = json!({"type": "MemberAdded", "group": "team", "user": format!("u-{c}-{i}")});
                    ("principal-team".to_owned(), ExpectedVersion::Any, ("MemberAdded", data))
                } else {
                    let data = json!({"type": "GroupCreated", "slug": format!("g-{c}-{i}")});
                    (format!("principal-g-{c}-{i}"), ExpectedVersion::NoStream, ("GroupCreated", data))
                };
                let metadata = EventMetadata {
                    causation_id: Some(Uuid::new_v4()),
                    ..EventMetadata::new("admin")
                };
                let event =
                    NewEvent::new(EventType::parse(event.0).unwrap(), 1, &event.1, &metadata)
                        .unwrap();
                store
                    .append(&StreamId::parse(stream).unwrap(), expected, vec![event])
                    .await
                    .unwrap();
                0
            }
        }
    })
    .await;
    store.close().await;
    measured
}

/// The control plane serving on loopback, with an admin token.
struct Server {
    channel: Channel,
    auth: MetadataValue<Ascii>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
    _dir: TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = TempDir::new().unwrap();
        let store = server::open_store(&EventStoreConfig::Embedded {
            path: dir.path().join("events.db"),
        })
        .await
        .unwrap();
        let assembled = server::app(store, Limits::default()).await.unwrap();
        let token = bootstrap::init(
            &assembled.app,
            &Slug::parse("admin").unwrap(),
            TimeDelta::hours(1),
        )
        .await
        .unwrap();
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(assembled, listener, None, async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Server {
            channel,
            auth: format!("Bearer {}", token.expose()).parse().unwrap(),
            stop,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        drop(self.channel);
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }

    /// A few untimed commands, so connection set-up and first-call costs
    /// stay out of the figures.
    async fn warm_up(&self) {
        self.create_groups("w", 1, WARMUP).await;
    }

    /// Creates groups `g-{prefix}{client}-{i}`.
    async fn create_groups(&self, prefix: &'static str, clients: usize, each: usize) -> Measured {
        let (channel, auth) = (self.channel.clone(), self.auth.clone());
        run(clients, each, move |c, i| {
            let mut client = PrincipalsClient::new(channel.clone());
            let request = authed(
                &auth,
                v1::CreateGroupRequest {
                    options: Some(options(Uuid::new_v4())),
                    slug: format!("g-{prefix}{c}-{i}"),
                },
            );
            async move {
                let reply = client.create_group(request).await.unwrap().into_inner();
                assert_eq!(reply.events, 1);
                0
            }
        })
        .await
    }

    /// Creates users `u-0` … (32 clients, untimed), groups `team-1` and
    /// `team-32`, and waits until the read model has them all.
    async fn create_users(&self, users: usize) {
        let (channel, auth) = (self.channel.clone(), self.auth.clone());
        let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = last.clone();
        run(CLIENTS, users.div_ceil(CLIENTS), move |c, i| {
            let mut client = PrincipalsClient::new(channel.clone());
            let n = c * users.div_ceil(CLIENTS) + i;
            let request = (n < users).then(|| {
                authed(
                    &auth,
                    v1::CreateUserRequest {
                        options: Some(options(Uuid::new_v4())),
                        slug: format!("u-{n}"),
                        role: "user".into(),
                        stores: vec![],
                    },
                )
            });
            let seen = seen.clone();
            async move {
                if let Some(request) = request {
                    let reply = client.create_user(request).await.unwrap().into_inner();
                    seen.fetch_max(reply.position, std::sync::atomic::Ordering::Relaxed);
                }
                0
            }
        })
        .await;
        let mut client = PrincipalsClient::new(self.channel.clone());
        for team in ["team-1", "team-32"] {
            let request = authed(
                &self.auth,
                v1::CreateGroupRequest {
                    options: Some(options(Uuid::new_v4())),
                    slug: team.into(),
                },
            );
            let reply = client.create_group(request).await.unwrap().into_inner();
            last.fetch_max(reply.position, std::sync::atomic::Ordering::Relaxed);
        }
        // Every page: more users than one page holds may have been made.
        let (mut listed, mut page_token) = (0, String::new());
        loop {
            let request = authed(
                &self.auth,
                v1::ListPrincipalsRequest {
                    options: Some(v1::QueryOptions {
                        min_position: last.load(std::sync::atomic::Ordering::Relaxed),
                    }),
                    page_size: 5000,
                    page_token,
                },
            );
            let page = client.list_principals(request).await.unwrap().into_inner();
            listed += page.principals.len();
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert!(
            listed > users,
            "{listed} principals listed for {users} users made"
        );
    }

    /// Adds users `u-{client * each + i}` to `group`, resending `Aborted`
    /// commands with the same command id.
    async fn add_members(&self, group: &'static str, clients: usize, each: usize) -> Measured {
        let (channel, auth) = (self.channel.clone(), self.auth.clone());
        run(clients, each, move |c, i| {
            let mut client = PrincipalsClient::new(channel.clone());
            let auth = auth.clone();
            let message = v1::MembershipRequest {
                options: Some(options(Uuid::new_v4())),
                group: group.into(),
                user: format!("u-{}", c * each + i),
            };
            async move {
                let mut resent = 0;
                loop {
                    match client.add_member(authed(&auth, message.clone())).await {
                        Ok(reply) => {
                            assert_eq!(reply.into_inner().events, 1);
                            return resent;
                        }
                        Err(status) if status.code() == Code::Aborted => resent += 1,
                        Err(status) => panic!("AddMember failed: {status}"),
                    }
                }
            }
        })
        .await
    }
}

fn options(command_id: Uuid) -> v1::CommandOptions {
    v1::CommandOptions {
        command_id: command_id.to_string(),
        correlation_id: String::new(),
    }
}

fn authed<T>(auth: &MetadataValue<Ascii>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}
