//! A finished `sealctl` run and the checks tests make on it.

use std::process::Output;

/// A finished `sealctl` run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code (-1 if killed by a signal).
    pub code: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Run {
    /// The run `output` describes; sealctl prints UTF-8 only.
    pub fn from_output(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).expect("sealctl's stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("sealctl's stderr is UTF-8"),
        }
    }

    /// Panics unless it exited 0; returns stdout.
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code, 0,
            "sealctl failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout.clone()
    }

    /// Parses stdout as JSON (for `-o json`), panicking unless it exited 0
    /// with JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// Panics unless it failed with `code`; returns stderr.
    pub fn failed_with(&self, code: i32) -> String {
        assert_eq!(
            self.code, code,
            "expected exit {code}:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stderr.clone()
    }

    /// Panics unless it failed with `code` and a one-line `error: `
    /// containing `text`; returns stderr.
    pub fn fails(&self, code: i32, text: &str) -> String {
        let err = self.failed_with(code);
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(text), "expected {text:?} in {err}");
        err
    }
}
