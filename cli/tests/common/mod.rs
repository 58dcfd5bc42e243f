//! What the `sealctl audit` end-to-end tests share: `sealplane dev` with a
//! `sealctl` config dir of its own that trusts dev mode's anchor.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use sealplane_test_kit::{ControlPlane, Run, Settings};

const SEALCTL: &str = env!("CARGO_BIN_EXE_sealctl");

pub struct Dev {
    pub control_plane: ControlPlane,
}

impl Dev {
    /// `sealplane dev`, with sealctl trusting its anchor as `sealctl trust
    /// add` would.
    pub fn start() -> Dev {
        let dev = Dev {
            control_plane: ControlPlane::dev(None, Settings::default()),
        };
        let (deployment, anchor) = dev.control_plane.trust_entry().split_once('=').unwrap();
        std::fs::create_dir_all(dev.config_dir()).unwrap();
        std::fs::write(
            dev.config_dir().join("trust"),
            format!("{deployment} {anchor}\n"),
        )
        .unwrap();
        dev
    }

    pub fn config_dir(&self) -> PathBuf {
        self.control_plane.dir().join("sealctl")
    }

    /// `sealctl args` as the holder of `token`, not yet run.
    pub fn command(&self, token: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(SEALCTL);
        cmd.args(args)
            .env("SEALPLANE_ADDR", &self.control_plane.addr)
            .env("SEALPLANE_CONFIG_DIR", self.config_dir())
            .env("SEALPLANE_TOKEN", token)
            .env_remove("SEALPLANE_CA_FILE")
            .env_remove("SEALPLANE_TRUST")
            .stdin(Stdio::null());
        cmd
    }

    pub fn sealctl(&self, token: &str, args: &[&str]) -> Run {
        Run::from_output(self.command(token, args).output().unwrap())
    }

    pub fn admin(&self, args: &[&str]) -> Run {
        self.sealctl(self.control_plane.admin_token(), args)
    }

    /// Creates `slug` with `role` and returns its token.
    pub fn user(&self, slug: &str, role: &str) -> String {
        self.admin(&["create", "user", slug, "--role", role]).ok();
        self.admin(&["issue", "token", slug, "-o", "json"]).json()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}
