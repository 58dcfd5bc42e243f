//! A whole deployment on one machine: a control plane, any number of
//! reactors (`sealplane-reactor run`) and users with their own tokens and
//! `sealctl` config directories, all in one temporary directory so that
//! [`Cluster::scan_for`] covers every byte they wrote.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sealplane_event_store::{EmbeddedStore, EventStore, Position, RecordedEvent};
use tonic::transport::Channel;

use crate::control_plane::{ControlPlane, Settings};
use crate::process::{Process, bin};
use crate::scan::scan_dir;
use crate::sealctl::Run;

/// A user of the cluster: a principal, its token and its own `sealctl`
/// config directory (so pins are per user, like a real laptop).
#[derive(Debug, Clone)]
pub struct User {
    /// The principal's slug.
    pub slug: String,
    /// Its bearer token.
    pub token: String,
    /// Its `SEALPLANE_CONFIG_DIR`.
    pub config_dir: PathBuf,
}

/// The `[stores.NAME]` body of a reactor's file store (beside its config).
const FILE_STORE_TABLE: &str = "root = \"files\"\nmaster_key_file = \"master.key\"";

/// The line a reactor prints once it has caught up with the log.
const CAUGHT_UP: &str = "caught up at position";

/// A reactor of the cluster and how to (re)start it.
struct ReactorSlot {
    config: PathBuf,
    token: String,
    process: Option<Process>,
    public_key: String,
    /// The file its stdout and stderr go to.
    log: PathBuf,
}

impl ReactorSlot {
    fn log(&self) -> PathBuf {
        self.log.clone()
    }
}

/// `message` as a gRPC request carrying `user`'s bearer token, for a test
/// playing a client by hand.
pub fn authorized<T>(message: T, user: &User) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", user.token)
            .parse()
            .expect("a token is ASCII"),
    );
    request
}

/// One control plane, its reactors and users, in a temporary directory.
/// Every process writes its stdout and stderr to a log file inside it,
/// and every `sealctl` run is recorded in `sealctl.log` there.
pub struct Cluster {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The admin user.
    pub admin: User,
    // Reactors first: fields drop in order, so they are killed before the
    // control plane's directory goes.
    reactors: Vec<ReactorSlot>,
    control_plane: ControlPlane,
    sealctl_log: PathBuf,
}

impl Cluster {
    /// A control plane with default settings and no store.
    pub fn start() -> Cluster {
        Self::start_with(Settings::default())
    }

    /// A control plane with `settings` (whose `env` every reactor gets
    /// too) and no store.
    pub fn start_with(settings: Settings) -> Cluster {
        let control_plane = ControlPlane::serve(settings);
        let dir = control_plane.dir().to_owned();
        let cluster = Cluster {
            addr: control_plane.addr.clone(),
            admin: User {
                slug: "admin".into(),
                token: control_plane.admin_token().to_owned(),
                config_dir: dir.join("sealctl-admin"),
            },
            control_plane,
            reactors: Vec::new(),
            sealctl_log: dir.join("sealctl.log"),
        };
        cluster.trust_anchor_in(&cluster.admin.config_dir);
        cluster
    }

    /// Writes the deployment's trust anchor into a `sealctl` config dir's
    /// `trust` file, as a user who ran `sealctl trust add` would have.
    pub fn trust_anchor_in(&self, config_dir: &Path) {
        let (deployment, anchor) = self
            .control_plane
            .trust_entry()
            .split_once('=')
            .expect("deployment=anchor");
        fs::create_dir_all(config_dir).unwrap();
        fs::write(config_dir.join("trust"), format!("{deployment} {anchor}\n")).unwrap();
    }

    /// The cluster's directory (event store, file stores, logs).
    pub fn dir(&self) -> &Path {
        self.control_plane.dir()
    }

    /// The control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// A `sealplane-reactor` command with the settings' environment.
    fn reactor_command(&self) -> Command {
        let mut command = Command::new(bin("sealplane-reactor"));
        let env = &self.control_plane.settings().env;
        command.envs(env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `sealctl` as `user` with `args` (and `stdin`, if any).
    pub fn sealctl_with_stdin(&self, user: &User, args: &[&str], stdin: Option<&[u8]>) -> Run {
        self.sealctl_to(&self.addr, user, args, stdin)
    }

    /// Runs `sealctl` as `user` with `args` against the control plane at
    /// `addr` (a replica sharing the cluster's event store).
    pub fn sealctl_at(&self, addr: &str, user: &User, args: &[&str]) -> Run {
        self.sealctl_to(addr, user, args, None)
    }

    fn sealctl_to(&self, addr: &str, user: &User, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut command = Command::new(bin("sealctl"));
        command
            .args(args)
            .env("SEALPLANE_ADDR", addr)
            .env("SEALPLANE_TOKEN", &user.token)
            .env("SEALPLANE_CONFIG_DIR", &user.config_dir)
            .env_remove("SEALPLANE_CA_FILE")
            .env_remove("SEALPLANE_TRUST")
            .env_remove("SEALPLANE_ANCHOR_KEY_FILE");
        if user.slug == "admin" && user.config_dir == self.admin.config_dir {
            // The admin holds the deployment's trust anchor: the stores it
            // creates are certified.
            command.env(
                "SEALPLANE_ANCHOR_KEY_FILE",
                self.control_plane.anchor_file(),
            );
        }
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let output: Output = child.wait_with_output().unwrap();
        let run = Run::from_output(output);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.sealctl_log)
            .unwrap();
        // The command line is the user's input, which holds values by
        // design: record only the key of each `key=value`.
        let shown: Vec<&str> = args
            .iter()
            .map(|a| a.split_once('=').map_or(*a, |(k, _)| k))
            .collect();
        writeln!(
            log,
            "$ sealctl {} (as {}; values elided)\n{}{}[exit {}]",
            shown.join(" "),
            user.slug,
            run.stdout,
            run.stderr,
            run.code
        )
        .unwrap();
        run
    }

    /// Runs `sealctl` as `user` with `args`.
    pub fn sealctl(&self, user: &User, args: &[&str]) -> Run {
        self.sealctl_with_stdin(user, args, None)
    }

    /// Creates a principal (`role`: user, admin, auditor, reactor) and a token for it.
    pub fn add_user(&self, slug: &str, role: &str, stores: &[&str]) -> User {
        let mut args = vec!["create", "user", slug, "--role", role];
        for s in stores {
            args.extend(["--store", s]);
        }
        self.sealctl(&self.admin, &args).ok();
        let issued = self
            .sealctl(&self.admin, &["issue", "token", slug, "-o", "json"])
            .json();
        let user = User {
            slug: slug.into(),
            token: issued["token"]
                .as_str()
                .expect("issue token -o json has `token`")
                .to_owned(),
            config_dir: self.dir().join(format!("sealctl-{slug}")),
        };
        self.trust_anchor_in(&user.config_dir);
        user
    }

    /// Creates a file store `store` served by a new reactor process and
    /// waits until the reactor has caught up; returns the reactor's index.
    pub fn add_file_store(&mut self, store: &str) -> usize {
        self.add_store(store, "file", FILE_STORE_TABLE)
    }

    /// Creates store `store` of `kind` served by a new reactor process
    /// whose `[stores.STORE]` table is `kind = KIND` plus `table`; returns
    /// the reactor's index once it has caught up.
    pub fn add_store(&mut self, store: &str, kind: &str, table: &str) -> usize {
        let index = self.add_reactor_with(store, kind, table, None);
        let key = self.reactors[index].public_key.clone();
        self.sealctl(
            &self.admin,
            &[
                "create",
                "store",
                store,
                "--kind",
                kind,
                "--reactor-key",
                &key,
            ],
        )
        .ok();
        self.start_reactor(index);
        index
    }

    /// Prepares a reactor serving file store `store` (identity, keys,
    /// config, reactor principal bound to the store, token) without
    /// creating the store or starting the process; `fingerprint_from`
    /// shares reactor i's fingerprint key, as reactors of one deployment do.
    pub fn add_reactor_for(&mut self, store: &str, fingerprint_from: Option<usize>) -> usize {
        self.add_reactor_with(store, "file", FILE_STORE_TABLE, fingerprint_from)
    }

    fn add_reactor_with(
        &mut self,
        store: &str,
        kind: &str,
        table: &str,
        fingerprint_from: Option<usize>,
    ) -> usize {
        let index = self.reactors.len();
        let rdir = self.dir().join(format!("reactor-{index}"));
        fs::create_dir_all(&rdir).unwrap();
        let identity = rdir.join("identity");
        let out = self
            .reactor_command()
            .args(["identity", "--file"])
            .arg(&identity)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public_key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        // One fingerprint key per deployment: reuse reactor i's if asked.
        let fingerprint = match fingerprint_from {
            Some(i) => self.dir().join(format!("reactor-{i}/fingerprint.key")),
            None => {
                let path = rdir.join("fingerprint.key");
                self.generate_key(&path);
                path
            }
        };
        self.generate_key(&rdir.join("master.key"));
        let slug = format!("reactor-{index}");
        let user = self.add_user(&slug, "reactor", &[store]);
        let config = rdir.join("reactor.toml");
        let admin = if self.control_plane.settings().admin {
            "[admin]\nlisten = \"127.0.0.1:0\"\n"
        } else {
            ""
        };
        fs::write(
            &config,
            format!(
                "identity_file = \"identity\"\n\
                 checkpoint_file = \"checkpoint\"\n\
                 [control_plane]\naddress = \"{}\"\n\
                 [fingerprint]\nkey_id = \"e2e\"\nkey_file = \"{}\"\n\
                 {admin}\
                 [stores.{store}]\nkind = \"{kind}\"\n{table}\n",
                self.addr,
                fingerprint.display()
            ),
        )
        .unwrap();
        self.reactors.push(ReactorSlot {
            log: config.with_file_name("reactor.log"),
            config,
            token: user.token,
            process: None,
            public_key,
        });
        index
    }

    /// Starts a second process of reactor `index` — the same configuration,
    /// identity, token and stores, as an active/standby pair runs — and
    /// waits until it says it is a standby; returns its index. It logs to
    /// `reactor-twin.log` beside the first one's.
    pub fn add_twin(&mut self, index: usize) -> usize {
        let first = &self.reactors[index];
        let twin = ReactorSlot {
            config: first.config.clone(),
            token: first.token.clone(),
            process: None,
            public_key: first.public_key.clone(),
            log: first.config.with_file_name("reactor-twin.log"),
        };
        self.reactors.push(twin);
        let twin = self.reactors.len() - 1;
        self.run_reactor(twin, "standby:");
        twin
    }

    /// Runs reactor `index` and waits until its log has `ready`.
    fn run_reactor(&mut self, index: usize, ready: &str) {
        let mut command = self.reactor_command();
        let slot = &self.reactors[index];
        command
            .args(["run", "--config"])
            .arg(&slot.config)
            .env("SEALPLANE_REACTOR_TOKEN", &slot.token);
        let mut process = Process::spawn(command, slot.log());
        process.wait_for_line(ready);
        self.reactors[index].process = Some(process);
    }

    fn generate_key(&self, path: &Path) {
        let out = self
            .reactor_command()
            .args(["generate-key", "--file"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The configuration file of reactor `index` (to add a section before
    /// it starts).
    pub fn reactor_config(&self, index: usize) -> &Path {
        &self.reactors[index].config
    }

    /// The base64 identity of reactor `index`.
    pub fn reactor_key(&self, index: usize) -> String {
        self.reactors[index].public_key.clone()
    }

    /// Starts reactor `index` and waits until it has caught up.
    pub fn start_reactor(&mut self, index: usize) {
        self.run_reactor(index, CAUGHT_UP);
    }

    /// Kills reactor `index` with SIGKILL (a crash: keys in memory are gone).
    pub fn kill_reactor(&mut self, index: usize) {
        if let Some(mut process) = self.reactors[index].process.take() {
            process.kill();
        }
    }

    /// The log of reactor `index` so far (every run of it).
    pub fn reactor_log(&self, index: usize) -> String {
        fs::read_to_string(self.reactors[index].log()).unwrap_or_default()
    }

    /// The admin listener address (`host:port`) of reactor `index`'s last
    /// run; the cluster's [`Settings::admin`] gives every reactor one.
    pub fn reactor_admin_addr(&self, index: usize) -> String {
        crate::control_plane::admin_addr_in(&self.reactor_log(index))
    }

    /// The running process of reactor `index` (panics when it is not running).
    pub fn reactor_process(&self, index: usize) -> &Process {
        self.reactors[index]
            .process
            .as_ref()
            .expect("the reactor is running")
    }

    /// A gRPC channel to the control plane.
    pub async fn channel(&self) -> Channel {
        self.control_plane.channel().await
    }

    /// Stops every process with SIGTERM and checks each exits cleanly.
    pub fn stop(&mut self) {
        for (i, slot) in self.reactors.iter_mut().enumerate() {
            if let Some(mut process) = slot.process.take() {
                assert!(process.terminate(), "reactor {i} did not stop cleanly");
            }
        }
        self.control_plane.stop();
    }

    /// Kills the control plane with SIGKILL (reactors keep running, with
    /// no control plane to reach).
    pub fn kill_control_plane(&mut self) {
        self.control_plane.kill();
    }

    /// Starts the control plane again after [`Cluster::stop`] (on a new
    /// port: reactors started before do not follow it).
    pub fn restart_control_plane(&mut self) {
        self.control_plane.start();
        self.addr = self.control_plane.addr.clone();
    }

    /// Points every stopped reactor at the control plane's address (after
    /// [`Cluster::restart_control_plane`]) and starts it, waiting until it
    /// has caught up.
    pub fn restart_reactors(&mut self) {
        for index in 0..self.reactors.len() {
            if self.reactors[index].process.is_some() {
                continue;
            }
            let config = &self.reactors[index].config;
            let text = fs::read_to_string(config).unwrap();
            let mut section = "";
            let text: String = text
                .lines()
                .map(|line| {
                    if line.starts_with('[') {
                        section = line;
                    }
                    if section == "[control_plane]" && line.starts_with("address = ") {
                        format!("address = \"{}\"\n", self.addr)
                    } else {
                        format!("{line}\n")
                    }
                })
                .collect();
            fs::write(config, text).unwrap();
            self.start_reactor(index);
        }
    }

    /// Every event of the log (stops the cluster first: the embedded store
    /// is single-process).
    pub async fn events(&mut self) -> Vec<RecordedEvent> {
        self.stop();
        let store = EmbeddedStore::open(self.control_plane.events_db()).unwrap();
        let events = store.read_all(Position(1), 1_000_000).await.unwrap();
        store.close().await;
        events
    }

    /// (event type, data JSON) of every event of the log, after a clean
    /// stop: what the event-count assertions of the flows read.
    pub async fn event_log(&mut self) -> Vec<(String, String)> {
        self.events()
            .await
            .into_iter()
            .map(|e| (e.event_type.as_str().to_owned(), e.data.as_str().to_owned()))
            .collect()
    }

    /// Every place under the cluster directory (event store and its WAL,
    /// file stores, all process logs, all sealctl output) holding
    /// `plaintext` raw, as base64 or as hex; empty when it is nowhere.
    pub fn scan_for(&self, plaintext: &[u8]) -> Vec<String> {
        scan_dir(self.dir(), plaintext)
    }

    /// Asserts `plaintext` is nowhere under the cluster directory, and
    /// that the scan looked at the event store and every process's log.
    pub fn assert_nowhere(&self, plaintext: &[u8]) {
        let mut scanned = vec![
            self.control_plane.events_db(),
            self.control_plane.log_path(),
        ];
        scanned.extend(
            self.reactors
                .iter()
                .filter(|slot| slot.process.is_some())
                .map(ReactorSlot::log),
        );
        for path in &scanned {
            assert!(
                path.starts_with(self.dir()) && path.exists(),
                "{} is not scanned",
                path.display()
            );
        }
        let found = self.scan_for(plaintext);
        assert!(found.is_empty(), "plaintext found in: {found:?}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Leave the evidence: print the logs of the failed test (the
            // control plane prints its own).
            if let Ok(text) = fs::read_to_string(&self.sealctl_log) {
                eprintln!("----- sealctl.log -----\n{text}");
            }
            for i in 0..self.reactors.len() {
                eprintln!("----- reactor {i} -----\n{}", self.reactor_log(i));
            }
        }
    }
}
