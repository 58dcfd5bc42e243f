//! One control plane as an operator runs it: `sealplane init` and
//! `sealplane serve` (or `sealplane dev`) on a loopback port, with the
//! address and the admin token read from what it prints.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tonic::transport::Channel;

use crate::process::{Process, bin};

/// The line `sealplane serve` prints once it accepts connections.
const SERVING: &str = "sealplane serving on ";
/// The last line `sealplane dev` prints once it is ready.
const DEV_READY: &str = "Press Ctrl-C to stop";
/// Where `start_in` keeps the trust entry `init` printed, for restarts.
const TRUST_FILE: &str = "trust.entry";
/// The file [`ControlPlane::start_in`] keeps the admin token in.
const ADMIN_TOKEN_FILE: &str = "admin.token";

/// How a control plane (and, in a [`crate::Cluster`], its reactors) is set up.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Extra `[limits]` lines for `sealplane.toml`.
    pub limits: String,
    /// A `[tls]` section for `sealplane.toml` (empty: plaintext on loopback).
    pub tls: String,
    /// Extra environment of every `sealplane` (and reactor) process, e.g.
    /// `SEALPLANE_LOG_FORMAT=json`.
    pub env: Vec<(String, String)>,
    /// Extra sections for the end of `sealplane.toml`, e.g. `[audit]`.
    pub sections: String,
    /// An `[admin]` listener on a free loopback port (see
    /// [`ControlPlane::admin_addr`]), and in a [`crate::Cluster`] one for
    /// each reactor too ([`crate::Cluster::reactor_admin_addr`]).
    pub admin: bool,
    /// An `[event_store]` section replacing the embedded store in
    /// `events.db` (e.g. `backend = "postgres"`); empty for the default.
    pub event_store: String,
}

impl Settings {
    /// These settings with `name=value` added to the processes' environment.
    pub fn with_env(mut self, name: &str, value: &str) -> Settings {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Where a control plane keeps its files.
enum Dir {
    /// A temporary directory, removed on drop.
    Owned(tempfile::TempDir),
    /// A directory the test owns.
    At(PathBuf),
}

impl Dir {
    /// `dir`, or a new temporary directory.
    fn new(dir: Option<&Path>) -> Dir {
        match dir {
            Some(dir) => Dir::At(dir.to_owned()),
            None => Dir::Owned(
                tempfile::Builder::new()
                    .prefix("sealplane-test-")
                    .tempdir()
                    .unwrap(),
            ),
        }
    }
}

/// Which command runs the control plane.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve,
    Dev,
}

/// A control plane in a directory: its `sealplane.toml`, `events.db`,
/// `sealplane.log` (stdout and stderr of every run; `sealplane-dev.*.log`
/// for `dev`) and, once initialised, its admin token. Killed on drop; its
/// log is printed if the test fails.
pub struct ControlPlane {
    dir: Dir,
    settings: Settings,
    mode: Mode,
    /// `http://127.0.0.1:PORT` (`https://` with TLS) while serving.
    pub addr: String,
    admin_token: Option<String>,
    /// `<deployment id>=<anchor>`, as `init` or `dev` printed it.
    trust: Option<String>,
    process: Option<Process>,
    /// The log file's name when not the default (replicas).
    log_name: Option<String>,
}

impl ControlPlane {
    /// `sealplane init` and `sealplane serve` in a new temporary directory.
    pub fn serve(settings: Settings) -> ControlPlane {
        let mut control_plane = ControlPlane::configure(None, settings);
        control_plane.init();
        control_plane.start();
        control_plane
    }

    /// `sealplane serve` in `dir`; on first use there, writes the config
    /// and runs `init` (keeping the admin token in `dir/admin.token`), so a
    /// second `start_in` on the same directory is a restart.
    pub fn start_in(dir: &Path, settings: Settings) -> ControlPlane {
        let token_file = dir.join(ADMIN_TOKEN_FILE);
        let mut control_plane = if dir.join("sealplane.toml").exists() {
            let mut reopened = ControlPlane::at(Dir::At(dir.to_owned()), settings, Mode::Serve);
            reopened.admin_token = Some(fs::read_to_string(&token_file).unwrap());
            reopened.trust = fs::read_to_string(dir.join(TRUST_FILE)).ok();
            reopened
        } else {
            let mut fresh = ControlPlane::configure(Some(dir), settings);
            fs::write(&token_file, fresh.init()).unwrap();
            fs::write(dir.join(TRUST_FILE), fresh.trust_entry()).unwrap();
            fresh
        };
        control_plane.start();
        control_plane
    }

    /// Writes `sealplane.toml` (listen on a free loopback port, the embedded
    /// event store in `events.db`, `settings`) into `dir`, or a new temporary
    /// directory; neither initialises nor starts anything.
    pub fn configure(dir: Option<&Path>, settings: Settings) -> ControlPlane {
        let control_plane = ControlPlane::at(Dir::new(dir), settings, Mode::Serve);
        fs::write(
            control_plane.config_path(),
            format!(
                "listen = \"127.0.0.1:0\"\n{}\n{}\n[limits]\n{}\n{}\n{}\n",
                control_plane.settings.tls,
                if control_plane.settings.event_store.is_empty() {
                    format!(
                        "[event_store]\nbackend = \"embedded\"\npath = \"{}\"",
                        control_plane.events_db().display()
                    )
                } else {
                    control_plane.settings.event_store.clone()
                },
                control_plane.settings.limits,
                control_plane.settings.sections,
                if control_plane.settings.admin {
                    "[admin]\nlisten = \"127.0.0.1:0\"\n"
                } else {
                    ""
                }
            ),
        )
        .unwrap();
        control_plane
    }

    /// `sealplane dev` with its data in `data_dir` (or a new temporary
    /// directory), on a free loopback port; stdout goes to
    /// `sealplane-dev.stdout.log` there, stderr to `sealplane-dev.stderr.log`.
    /// Returns once it printed its ready lines. Of `settings`, only `env`
    /// applies: dev mode has its own configuration.
    pub fn dev(data_dir: Option<&Path>, settings: Settings) -> ControlPlane {
        let mut control_plane = ControlPlane::at(Dir::new(data_dir), settings, Mode::Dev);
        let data_dir = control_plane.dir().to_owned();
        let mut command = control_plane.command();
        command
            .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir);
        let mut process = Process::spawn_split(
            command,
            data_dir.join("sealplane-dev.stdout.log"),
            data_dir.join("sealplane-dev.stderr.log"),
        );
        process.wait_for_line(DEV_READY);
        let printed = process.stdout();
        control_plane.addr = export(&printed, "SEALPLANE_ADDR");
        control_plane.admin_token = Some(export(&printed, "SEALPLANE_TOKEN"));
        control_plane.trust = Some(export(&printed, "SEALPLANE_TRUST"));
        control_plane.process = Some(process);
        control_plane
    }

    fn at(dir: Dir, settings: Settings, mode: Mode) -> ControlPlane {
        ControlPlane {
            dir,
            settings,
            mode,
            addr: String::new(),
            admin_token: None,
            trust: None,
            process: None,
            log_name: None,
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A `sealplane` command with the settings' environment.
    pub fn command(&self) -> Command {
        let mut command = Command::new(bin("sealplane"));
        command.envs(self.settings.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `sealplane init` (admin `admin`); panics unless it succeeds;
    /// returns the admin token it printed, which [`ControlPlane::admin_token`]
    /// returns from then on.
    pub fn init(&mut self) -> String {
        let out = self
            .command()
            .args(["init", "--admin", "admin", "--config"])
            .arg(self.config_path())
            .arg("--anchor-out")
            .arg(self.anchor_file())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sealplane init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8(out.stdout).unwrap();
        let token = export(&printed, "SEALPLANE_TOKEN");
        self.admin_token = Some(token.clone());
        self.trust = Some(export(&printed, "SEALPLANE_TRUST"));
        token
    }

    /// The admin's trust anchor key file (`init --anchor-out`, or dev
    /// mode's own).
    pub fn anchor_file(&self) -> PathBuf {
        match self.mode {
            Mode::Serve => self.dir().join("admin-anchor.key"),
            Mode::Dev => self.dir().join("trust-anchor.key"),
        }
    }

    /// `<deployment id>=<anchor public key>`, as `init` or `dev` printed
    /// it: what users put in `SEALPLANE_TRUST` (panics before `init`).
    pub fn trust_entry(&self) -> &str {
        self.trust
            .as_deref()
            .expect("the control plane is initialised")
    }

    /// The deployment id (panics before `init`).
    pub fn deployment_id(&self) -> &str {
        self.trust_entry()
            .split_once('=')
            .map(|(d, _)| d)
            .expect("a trust entry names its deployment")
    }

    /// Starts `sealplane serve` and waits until it serves; sets [`ControlPlane::addr`].
    pub fn start(&mut self) {
        assert!(
            self.mode == Mode::Serve,
            "a dev control plane cannot restart"
        );
        assert!(self.process.is_none(), "the control plane is running");
        let mut command = self.command();
        command.args(["serve", "--config"]).arg(self.config_path());
        let mut process = Process::spawn(command, self.log_path());
        let line = process.wait_for_line(SERVING);
        self.addr = address_after(&line, SERVING);
        self.process = Some(process);
    }

    /// Starts another `sealplane serve` with this one's configuration: its
    /// own loopback port, the same event store (a database several control
    /// planes share), log key and admin token. It logs to
    /// `sealplane-NAME.log` in the same directory, which it does not own.
    pub fn replica(&self, name: &str) -> ControlPlane {
        let mut replica = ControlPlane::at(
            Dir::At(self.dir().to_owned()),
            self.settings.clone(),
            Mode::Serve,
        );
        replica.admin_token = self.admin_token.clone();
        replica.trust = self.trust.clone();
        replica.log_name = Some(format!("sealplane-{name}.log"));
        replica.start();
        replica
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Stops it with SIGTERM and checks it exits cleanly.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            assert!(
                process.terminate(),
                "sealplane did not stop cleanly:\n{}",
                process.output()
            );
        }
    }

    /// The directory its files are in.
    pub fn dir(&self) -> &Path {
        match &self.dir {
            Dir::Owned(temp) => temp.path(),
            Dir::At(path) => path,
        }
    }

    /// Its `sealplane.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("sealplane.toml")
    }

    /// Its embedded event store file.
    pub fn events_db(&self) -> PathBuf {
        self.dir().join("events.db")
    }

    /// The log `sealplane serve` writes stdout and stderr to (for `dev`,
    /// its stdout log).
    pub fn log_path(&self) -> PathBuf {
        match self.mode {
            Mode::Serve => self
                .dir()
                .join(self.log_name.as_deref().unwrap_or("sealplane.log")),
            Mode::Dev => self.dir().join("sealplane-dev.stdout.log"),
        }
    }

    /// `HOST:PORT` of the admin listener, as the running process logged it
    /// (panics without [`Settings::admin`]).
    pub fn admin_addr(&self) -> String {
        admin_addr_in(&self.process().output())
    }

    /// The admin's bearer token (panics before `init`).
    pub fn admin_token(&self) -> &str {
        self.admin_token
            .as_deref()
            .expect("the control plane is initialised")
    }

    /// The running process (panics when stopped).
    pub fn process(&self) -> &Process {
        self.process.as_ref().expect("the control plane is running")
    }

    /// The running process, to signal or wait on (panics when stopped).
    pub fn process_mut(&mut self) -> &mut Process {
        self.process.as_mut().expect("the control plane is running")
    }

    /// A gRPC channel to the API (plaintext).
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let process = self.process.take();
        if std::thread::panicking() {
            // Leave the evidence: every run's output.
            let text = match (&process, self.mode) {
                (Some(process), Mode::Dev) => process.output(),
                _ => fs::read_to_string(self.log_path()).unwrap_or_default(),
            };
            eprintln!("----- {} -----\n{text}", self.log_path().display());
        }
        drop(process);
    }
}

/// The value of the `export NAME=...` line of `printed`.
fn export(printed: &str, name: &str) -> String {
    let prefix = format!("export {name}=");
    printed
        .lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in:\n{printed}"))
        .to_owned()
}

/// The address after `marker` in `line`: up to the first character no
/// address holds, so a log line in any format (text or JSON) parses.
fn address_after(line: &str, marker: &str) -> String {
    let rest = line
        .split_once(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in {line}"))
        .1;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-.:/[]".contains(*c))
        .collect();
    assert!(
        addr.contains("://"),
        "no address after `{marker}` in {line}"
    );
    addr
}

/// The admin address a process printed in `log` (its last run's).
pub(crate) fn admin_addr_in(log: &str) -> String {
    const LINE: &str = "admin listener on http://";
    let line = log
        .lines()
        .rfind(|l| l.contains(LINE))
        .unwrap_or_else(|| panic!("no admin listener in:\n{log}"));
    let rest = &line[line.find(LINE).unwrap() + LINE.len()..];
    rest.split_whitespace().next().unwrap().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_text_and_json_lines() {
        for line in [
            "sealplane serving on http://127.0.0.1:4242 (event store x, 3 events)",
            r#"{"level":"INFO","fields":{"message":"sealplane serving on http://127.0.0.1:4242"}}"#,
            "sealplane serving on http://127.0.0.1:4242",
        ] {
            assert_eq!(
                address_after(line, SERVING),
                "http://127.0.0.1:4242",
                "{line}"
            );
        }
        assert_eq!(
            address_after("sealplane serving on https://[::1]:7 (x)", SERVING),
            "https://[::1]:7"
        );
    }

    #[test]
    fn exports_are_read_from_printed_lines() {
        let printed = "Created admin.\n\nexport SEALPLANE_TOKEN=spt_abc\n";
        assert_eq!(export(printed, "SEALPLANE_TOKEN"), "spt_abc");
    }
}
