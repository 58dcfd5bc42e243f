//! The workspace's binaries as tests run them: where they are, and a
//! running process whose output goes to a log file a test can wait on and
//! a plaintext scan can read.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where [`bin`] looks instead of the running test's target directory: a
/// benchmark can run another build's binaries with it.
pub const BIN_DIR_ENV: &str = "SEALPLANE_BIN_DIR";

/// How long [`Process::wait_for_line`] waits before it fails the test.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`Process::terminate`] gives a process to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Multiplies both timeouts above when set (a whole number): benchmarks
/// on logs of millions of events start and stop for longer.
pub const TIMEOUT_FACTOR_ENV: &str = "SEALPLANE_TEST_TIMEOUT_FACTOR";

fn scaled(timeout: Duration) -> Duration {
    let factor = std::env::var(TIMEOUT_FACTOR_ENV)
        .ok()
        .and_then(|f| f.parse::<u32>().ok())
        .unwrap_or(1);
    timeout * factor.max(1)
}

/// How often a log file is re-read while waiting.
const POLL: Duration = Duration::from_millis(10);

/// The path of the workspace binary `name`: in `$SEALPLANE_BIN_DIR` when
/// set, otherwise next to the running test's target directory
/// (`target/debug/deps/<test>` → `target/debug/<name>`; `target/release`
/// for benches). Panics, saying how to build it, when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("the test executable's path");
            exe.parent()
                .and_then(Path::parent)
                .expect("a target directory")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`; scripts/test does){}",
        path.display(),
        if std::env::var_os(BIN_DIR_ENV).is_some() {
            format!(", or fix {BIN_DIR_ENV}")
        } else {
            String::new()
        }
    );
    path
}

/// A running process whose stdout and stderr go to log files (one file
/// for both, or one each). Logs are appended to, so a restarted process
/// keeps its predecessor's lines; everything a `Process` reads is what
/// *this* run printed. Killed on drop.
pub struct Process {
    child: Child,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
    /// Lengths of the logs when this run started.
    stdout_start: usize,
    stderr_start: usize,
}

impl Process {
    /// Starts `command` (stdin closed) with stdout and stderr appended to `log`.
    pub fn spawn(command: Command, log: impl Into<PathBuf>) -> Process {
        let log = log.into();
        Process::spawn_split(command, log.clone(), log)
    }

    /// Starts `command` (stdin closed) with stdout appended to
    /// `stdout_log` and stderr to `stderr_log` (which may be the same file).
    pub fn spawn_split(
        mut command: Command,
        stdout_log: impl Into<PathBuf>,
        stderr_log: impl Into<PathBuf>,
    ) -> Process {
        let (stdout_log, stderr_log) = (stdout_log.into(), stderr_log.into());
        let open = |path: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("cannot open log {}: {e}", path.display()))
        };
        let stdout = open(&stdout_log);
        let stderr = if stderr_log == stdout_log {
            stdout.try_clone().unwrap()
        } else {
            open(&stderr_log)
        };
        let stdout_start = log_len(&stdout_log);
        let stderr_start = log_len(&stderr_log);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Process {
            child,
            stdout_log,
            stderr_log,
            stdout_start,
            stderr_start,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The log file stdout goes to.
    pub fn log_path(&self) -> &Path {
        &self.stdout_log
    }

    /// What this run printed on stdout (and stderr, when they share a log).
    pub fn stdout(&self) -> String {
        read_from(&self.stdout_log, self.stdout_start)
    }

    /// What this run printed on stderr (and stdout, when they share a log).
    pub fn stderr(&self) -> String {
        read_from(&self.stderr_log, self.stderr_start)
    }

    /// Everything this run printed: its log, or stdout then stderr when split.
    pub fn output(&self) -> String {
        if self.stdout_log == self.stderr_log {
            self.stdout()
        } else {
            self.stdout() + &self.stderr()
        }
    }

    /// Waits until this run printed a line containing `marker` and returns
    /// that line; fails the test if the process exits first or after 60 s
    /// (times `$SEALPLANE_TEST_TIMEOUT_FACTOR`).
    pub fn wait_for_line(&mut self, marker: &str) -> String {
        let timeout = scaled(READY_TIMEOUT);
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.output();
            if let Some(line) = text.lines().find(|l| l.contains(marker)) {
                return line.to_owned();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // It may have printed the line just before exiting.
                let text = self.output();
                if let Some(line) = text.lines().find(|l| l.contains(marker)) {
                    return line.to_owned();
                }
                panic!("process exited ({status}) before `{marker}`:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "no `{marker}` within {timeout:?}:\n{text}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Sends `signal` (as `kill` names it: `-TERM`, `-INT`, ...).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {} failed", self.id());
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }

    /// SIGTERM, then waits up to 30 s; returns whether it exited 0 (it is
    /// killed if it has not exited by then).
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status();
        let deadline = Instant::now() + scaled(STOP_TIMEOUT);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                self.kill();
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL: no chance to clean up (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's environment, as the kernel has it (`/proc/PID/environ`).
    pub fn environment(&self) -> Vec<(String, String)> {
        let raw = fs::read(format!("/proc/{}/environ", self.id())).unwrap();
        raw.split(|b| *b == 0)
            .filter_map(|entry| {
                let entry = String::from_utf8_lossy(entry);
                let (name, value) = entry.split_once('=')?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log_len(path: &Path) -> usize {
    fs::metadata(path).map_or(0, |m| m.len() as usize)
}

fn read_from(path: &Path, start: usize) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(bytes.get(start..).unwrap_or_default()).into_owned()
}
