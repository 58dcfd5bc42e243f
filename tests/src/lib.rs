//! End-to-end tests across real processes: the `sealplane` and
//! `sealplane-reactor` binaries, driven by the real `sealctl`, against real
//! upstream stores started by `scripts/test` (OpenBao, PostgreSQL, an AWS
//! emulator). After each flow the tests scan the event store and captured
//! logs for the plaintext (SPEC §1.1).
//!
//! This crate is the harness: a [`Cluster`] is one control plane (`sealplane
//! init` + `sealplane serve`) in a temporary directory, any number of
//! reactors (`sealplane-reactor run`), users with their own tokens and
//! `sealctl` config directories. Every process writes its stdout and
//! stderr to a log file inside the cluster directory, so
//! [`Cluster::scan_for`] covers the event store, the file store, every log
//! and every `sealctl` output at once.
//!
//! The binaries are the workspace's own debug builds (`cargo build
//! --workspace --bins`, which `scripts/test` runs before the tests).

#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealplane_event_store::{EmbeddedStore, EventStore, Position, RecordedEvent};
use tonic::transport::Channel;

/// The path of a workspace binary next to the running test's target directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/debug/deps/<test> → target/debug/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; scripts/test does)",
        path.display()
    );
    path
}

/// A finished `sealctl` run.
#[derive(Debug)]
pub struct Run {
    /// The exit code (-1 if killed by a signal).
    pub code: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Run {
    /// Panics unless it exited 0; returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "sealctl failed:\n{}{}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Parses stdout as JSON (for `-o json`), panicking on failure.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// Panics unless it failed with `code`; returns stderr.
    pub fn failed_with(&self, code: i32) -> &str {
        assert_eq!(
            self.code, code,
            "expected exit {code}:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stderr
    }
}

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

/// A process whose output goes to a log file.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut command: Command, log: PathBuf) -> Proc {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Proc { child, log }
    }

    /// Waits until the log holds a line containing `marker`, returning that line.
    fn wait_for_line(&mut self, marker: &str, skip: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = text.lines().skip(skip).find(|l| l.contains(marker)) {
                return line.to_owned();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("process exited ({status}) before `{marker}`:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "no `{marker}` within 60 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines(&self) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// SIGTERM, then waits; returns whether it exited 0.
    fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to clean up (a crash).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reactor of the cluster and how to (re)start it.
struct ReactorSlot {
    config: PathBuf,
    token: String,
    proc: Option<Proc>,
    public_key: String,
}

/// Settings of a cluster's control plane.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Extra `[limits]` lines for `sealplane.toml`.
    pub limits: String,
}

/// One control plane, its reactors and users, in a temporary directory.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The admin user.
    pub admin: User,
    control_plane: Option<Proc>,
    reactors: Vec<ReactorSlot>,
    sealctl_log: PathBuf,
}

impl Cluster {
    /// A control plane with default settings and no store.
    pub fn start() -> Cluster {
        Self::start_with(Settings::default())
    }

    /// A control plane with `settings` and no store.
    pub fn start_with(settings: Settings) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("sealplane-e2e-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("sealplane.toml");
        fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\n[event_store]\nbackend = \"embedded\"\npath = \"{}\"\n[limits]\n{}\n",
                dir.path().join("events.db").display(),
                settings.limits
            ),
        )
        .unwrap();
        let out = Command::new(bin("sealplane"))
            .args(["init", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sealplane init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("export SEALPLANE_TOKEN=").map(str::to_owned))
            .expect("init prints the admin token");
        let mut cluster = Cluster {
            admin: User {
                slug: "admin".into(),
                token,
                config_dir: dir.path().join("sealctl-admin"),
            },
            addr: String::new(),
            control_plane: None,
            reactors: Vec::new(),
            sealctl_log: dir.path().join("sealctl.log"),
            dir,
        };
        cluster.start_control_plane();
        cluster
    }

    /// The cluster's directory (event store, file stores, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn start_control_plane(&mut self) {
        let mut command = Command::new(bin("sealplane"));
        command
            .args(["serve", "--config"])
            .arg(self.dir().join("sealplane.toml"));
        let mut proc = Proc::spawn(command, self.dir().join("sealplane.log"));
        let skip = proc.lines();
        let line = proc.wait_for_line("sealplane serving on ", skip);
        self.addr = line
            .split("serving on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .to_owned();
        self.control_plane = Some(proc);
    }

    /// Runs `sealctl` as `user` with `args` (and `stdin`, if any).
    pub fn sealctl_with_stdin(&self, user: &User, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut command = Command::new(bin("sealctl"));
        command
            .args(args)
            .env("SEALPLANE_ADDR", &self.addr)
            .env("SEALPLANE_TOKEN", &user.token)
            .env("SEALPLANE_CONFIG_DIR", &user.config_dir)
            .env_remove("SEALPLANE_CA_FILE")
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
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
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
        User {
            slug: slug.into(),
            token: issued["token"]
                .as_str()
                .expect("issue token -o json has `token`")
                .to_owned(),
            config_dir: self.dir().join(format!("sealctl-{slug}")),
        }
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
        let out = Command::new(bin("sealplane-reactor"))
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
                generate_key(&path);
                path
            }
        };
        generate_key(&rdir.join("master.key"));
        let slug = format!("reactor-{index}");
        let user = self.add_user(&slug, "reactor", &[store]);
        let config = rdir.join("reactor.toml");
        fs::write(
            &config,
            format!(
                "identity_file = \"identity\"\n\
                 checkpoint_file = \"checkpoint\"\n\
                 [control_plane]\naddress = \"{}\"\n\
                 [fingerprint]\nkey_id = \"e2e\"\nkey_file = \"{}\"\n\
                 [stores.{store}]\nkind = \"{kind}\"\n{table}\n",
                self.addr,
                fingerprint.display()
            ),
        )
        .unwrap();
        self.reactors.push(ReactorSlot {
            config,
            token: user.token,
            proc: None,
            public_key,
        });
        index
    }

    /// The base64 identity of reactor `index`.
    pub fn reactor_key(&self, index: usize) -> String {
        self.reactors[index].public_key.clone()
    }

    /// Starts reactor `index` and waits until it has caught up.
    pub fn start_reactor(&mut self, index: usize) {
        let slot = &self.reactors[index];
        let mut command = Command::new(bin("sealplane-reactor"));
        command
            .args(["run", "--config"])
            .arg(&slot.config)
            .env("SEALPLANE_REACTOR_TOKEN", &slot.token);
        let log = slot.config.with_file_name("reactor.log");
        let mut proc = Proc::spawn(command, log);
        let skip = proc.lines();
        proc.wait_for_line("caught up at position", skip);
        self.reactors[index].proc = Some(proc);
    }

    /// Kills reactor `index` with SIGKILL (a crash: keys in memory are gone).
    pub fn kill_reactor(&mut self, index: usize) {
        if let Some(mut proc) = self.reactors[index].proc.take() {
            proc.kill();
        }
    }

    /// The log of reactor `index` so far.
    pub fn reactor_log(&self, index: usize) -> String {
        fs::read_to_string(self.reactors[index].config.with_file_name("reactor.log"))
            .unwrap_or_default()
    }

    /// A gRPC channel to the control plane.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Stops every process with SIGTERM and checks each exits cleanly.
    pub fn stop(&mut self) {
        for (i, slot) in self.reactors.iter_mut().enumerate() {
            if let Some(mut proc) = slot.proc.take() {
                assert!(proc.terminate(), "reactor {i} did not stop cleanly");
            }
        }
        if let Some(mut proc) = self.control_plane.take() {
            assert!(proc.terminate(), "sealplane did not stop cleanly");
        }
    }

    /// Every event of the log (stops the cluster first: the embedded store
    /// is single-process).
    pub async fn events(&mut self) -> Vec<RecordedEvent> {
        self.stop();
        let store = EmbeddedStore::open(self.dir().join("events.db")).unwrap();
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
        let needles: Vec<(&str, Vec<u8>)> = vec![
            ("raw", plaintext.to_vec()),
            ("base64", STANDARD.encode(plaintext).into_bytes()),
            ("hex", hex::encode(plaintext).into_bytes()),
        ];
        let mut found = Vec::new();
        let mut stack = vec![self.dir().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(bytes) = fs::read(&path) else { continue };
                for (form, needle) in &needles {
                    if contains(&bytes, needle) {
                        found.push(format!("{} ({form})", path.display()));
                    }
                }
            }
        }
        found
    }

    /// Asserts `plaintext` is nowhere under the cluster directory, and
    /// that the scan looked at the event store and at least one log.
    pub fn assert_nowhere(&self, plaintext: &[u8]) {
        assert!(self.dir().join("events.db").exists());
        assert!(self.dir().join("sealplane.log").exists());
        let found = self.scan_for(plaintext);
        assert!(found.is_empty(), "plaintext found in: {found:?}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Leave the evidence: print the logs of the failed test.
            for name in ["sealplane.log", "sealctl.log"] {
                if let Ok(text) = fs::read_to_string(self.dir().join(name)) {
                    eprintln!("----- {name} -----\n{text}");
                }
            }
            for i in 0..self.reactors.len() {
                eprintln!("----- reactor {i} -----\n{}", self.reactor_log(i));
            }
        }
    }
}

fn generate_key(path: &Path) {
    let out = Command::new(bin("sealplane-reactor"))
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A distinctive secret value for one test, so a scan can only match it.
pub fn marker(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// Writes `content` to a new file outside every cluster directory (input
/// files hold plaintext by design, so they must not be scanned).
pub fn input_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let mut f = File::create(&path).unwrap();
    f.write_all(content).unwrap();
    path
}
