//! The command grammar: `sealctl [global flags] <verb> <noun> [args]`,
//! like kubectl (`get secrets`, `describe store prod`, `put secret URI`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use sealplane_proto::names::StoreKind;

use crate::output::OutputFormat;

const ABOUT: &str =
    "sealctl: put secrets into Sealplane without the control plane ever seeing them";

const LONG_ABOUT: &str = "\
sealctl: put secrets into Sealplane without the control plane ever seeing them.

Values are sealed on this machine to a one-time key that the reactor of the
target store signed with its identity; sealctl checks that signature against
the identity it pinned on first use (the known_reactors file, like SSH
known_hosts) before anything is sent.";

const AFTER_HELP: &str = "\
Exit status: 0 success; 1 `verify secret` found no match; 2 error;
3 refused to trust the control plane's answer (a changed or unsigned reactor
identity; nothing was sent).

Start with `sealplane dev` and paste the `export` lines it prints; for
scripts and several deployments, name each once with `sealctl config
set-context` (see `sealctl config --help`).";

const PUT_AFTER_HELP: &str = "\
Examples:
  # prompt for the value (hidden), stored under the key `value`
  sealctl put secret local://payments/db

  # several keys; `-` prompts for that key with echo off
  sealctl put secret vault-prod://payments/db user=app password=-

  # `-` reads standard input when it is not a terminal (one key at most;
  # one trailing newline is dropped)
  vault-read-password | sealctl put secret vault-prod://payments/db user=app password=-

  # from files and env files (KEY=VALUE lines, # comments, quotes, `export `)
  sealctl put secret vault-prod://tls/api --from-file tls.crt=./cert.pem --from-file tls.key=./key.pem
  sealctl put secret payments/env --from-env-file .env

  # first put after an admin replaced the store's reactor
  sealctl put secret vault-prod://payments/db password=- --reactor-key BASE64KEY

  # check it all and print uri, keys and sizes; nothing is sealed or sent
  sealctl put secret payments/env --from-env-file .env --dry-run

Values given as key=value show in shell history and `ps`; prefer key=- or
--from-file for real secrets. The total of all values is limited to 256 KiB.";

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "sealctl",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub verb: Verb,
}

/// Flags every command takes.
///
/// `--addr`, `--token`, `--ca-file` and `--context` fall back to their
/// environment variables and the contexts file in
/// [`crate::connection_settings`], not here: a flag given must be told
/// apart from a value found elsewhere (precedence, and `config
/// set-context --addr` takes only the flag).
#[derive(Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The control plane (`https://` uses TLS) [env: SEALPLANE_ADDR]
    /// [default: the context's, else http://127.0.0.1:7700].
    #[arg(long, global = true, value_name = "URL")]
    pub addr: Option<String>,
    /// Bearer token (`sealplane dev` and `sealctl issue token` print one)
    /// [env: SEALPLANE_TOKEN] [default: the context's token file].
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// PEM CA bundle to trust for an https control plane [env:
    /// SEALPLANE_CA_FILE] [default: the context's].
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The context (`sealctl config get-contexts`) for this command [env:
    /// SEALPLANE_CONTEXT] [default: the current context].
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Where sealctl keeps its known_reactors and contexts files [default: <config dir>/sealplane].
    #[arg(long, env = "SEALPLANE_CONFIG_DIR", global = true)]
    pub config_dir: Option<PathBuf>,
    /// Output format (`name`: one uri, store, slug or context a line).
    #[arg(short, long, value_enum, default_value_t, global = true)]
    pub output: OutputFormat,
    /// An admin's trust anchor key file: `create store` and `certify store`
    /// sign store certificates with it (ADR 0010) [default: <config
    /// dir>/anchor.key if it exists].
    #[arg(long, env = "SEALPLANE_ANCHOR_KEY_FILE", global = true)]
    pub anchor_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for GlobalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalArgs")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("context", &self.context)
            .field("config_dir", &self.config_dir)
            .field("output", &self.output)
            .field("anchor_key_file", &self.anchor_key_file)
            .finish()
    }
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Store a new version of a secret (sealed on this machine).
    Put {
        #[command(subcommand)]
        noun: PutNoun,
    },
    /// Check whether a local value equals the stored one.
    Verify {
        #[command(subcommand)]
        noun: VerifyNoun,
    },
    /// List secrets, stores or principals.
    Get {
        #[command(subcommand)]
        noun: GetNoun,
    },
    /// Show one secret or store in detail.
    Describe {
        #[command(subcommand)]
        noun: DescribeNoun,
    },
    /// Delete a secret upstream.
    Delete {
        #[command(subcommand)]
        noun: DeleteNoun,
    },
    /// Add a user or group to a secret's access list.
    Grant {
        #[command(subcommand)]
        noun: AccessNoun,
    },
    /// Remove a user or group from a secret's access list, or revoke a token.
    Revoke {
        #[command(subcommand)]
        noun: RevokeNoun,
    },
    /// Create a store, user or group (admins).
    Create {
        #[command(subcommand)]
        noun: CreateNoun,
    },
    /// Let a store accept uploads again (admins).
    Enable {
        #[command(subcommand)]
        noun: StoreNoun,
    },
    /// Make a store refuse new uploads (admins).
    Disable {
        #[command(subcommand)]
        noun: StoreNoun,
    },
    /// Set the default store (admins).
    Set {
        #[command(subcommand)]
        noun: SetNoun,
    },
    /// Remove a store, or a user from a group (admins).
    Remove {
        #[command(subcommand)]
        noun: RemoveNoun,
    },
    /// Add a user to a group (admins).
    Add {
        #[command(subcommand)]
        noun: AddNoun,
    },
    /// Issue a bearer token (admins).
    Issue {
        #[command(subcommand)]
        noun: IssueNoun,
    },
    /// Show who the token belongs to.
    Whoami,
    /// Print a shell completion script: `source <(sealctl completion bash)`.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Manage the trust anchors whose store certificates you accept.
    Trust {
        #[command(subcommand)]
        noun: TrustNoun,
    },
    /// Read the event log (admins, auditors).
    Audit {
        #[command(subcommand)]
        noun: AuditNoun,
    },
    /// Sign a store certificate for a store's reactor identity (admins
    /// holding a trust anchor).
    Certify {
        #[command(subcommand)]
        noun: CertifyNoun,
    },
    /// Named contexts: which control plane, token file and CA file to use.
    #[command(after_help = CONFIG_AFTER_HELP)]
    Config {
        #[command(subcommand)]
        noun: ConfigNoun,
    },
    /// Seal a value to a store's sealing key, into a file for git (with
    /// --cert, offline: no control plane is asked).
    #[command(after_help = SEAL_AFTER_HELP)]
    Seal(SealArgs),
    /// Submit sealed files: each new value becomes a version, an unchanged
    /// one changes nothing.
    #[command(after_help = APPLY_AFTER_HELP)]
    Apply(ApplyArgs),
    /// Rewrite sealed files onto their store's newest sealing key, without
    /// the value leaving the reactor.
    Reseal(ResealArgs),
    /// Ask a store's reactor for a new sealing key now (admins).
    Rotate {
        #[command(subcommand)]
        noun: RotateNoun,
    },
    /// Retire an old sealing key: its reactor destroys it (admins).
    Retire {
        #[command(subcommand)]
        noun: RetireNoun,
    },
}

const SEAL_AFTER_HELP: &str = "\
The output is a sealed file (YAML; -o json for JSON): uri, store, sealing
key id, the sealed box (uri and key id bound inside) and its checksum. Only
ciphertext is written. The key file is checked before sealing: a store
certificate from a trust anchor you hold (or your pin) must vouch for the
reactor identity that signed the key.

Examples:
  sealctl get sealing-key prod > prod.pub
  sealctl seal prod://payments/db user=app password=- --cert prod.pub > db.sealed.yaml
  vault-read | sealctl seal prod://payments/db password=- --cert prod.pub > db.sealed.yaml";

const APPLY_AFTER_HELP: &str = "\
Each file is checked first (format, checksum, uri, a sealing key its store
knows and has not retired), then submitted; the reactor opens it, refuses a
uri or key that differs from the one sealed inside, and writes upstream
only if the value changed. One line per file and a summary; exit 0 only if
every file applied (new version or unchanged). The same rules as `put`:
you must be allowed to write each secret.

Examples:
  sealctl apply -f secrets/ --recursive
  sealctl apply -f db.sealed.yaml --dry-run";

/// `seal` arguments.
#[derive(Debug, Args)]
pub struct SealArgs {
    /// The secret: `store://path` (a bare path is in the key file's store).
    pub uri: String,
    /// The value's data.
    #[command(flatten)]
    pub data: DataArgs,
    /// The store's key file (`sealctl get sealing-key STORE > FILE`): seal
    /// offline. Without it, the current key is fetched and checked.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
}

/// `apply` arguments.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A sealed file or a folder of them (repeatable).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub files: Vec<PathBuf>,
    /// Also the files in subfolders.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Check every file and submit nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `reseal` arguments.
#[derive(Debug, Args)]
pub struct ResealArgs {
    /// A sealed file or a folder of them.
    #[arg(value_name = "FILE|DIR", required = true)]
    pub files: Vec<PathBuf>,
    /// Also the files in subfolders.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// `rotate ...`
#[derive(Debug, Subcommand)]
pub enum RotateNoun {
    /// A store's sealing key.
    SealingKey {
        /// The store.
        store: String,
    },
}

/// `retire ...`
#[derive(Debug, Subcommand)]
pub enum RetireNoun {
    /// A store's old sealing key; refused while applied files still use
    /// it (the uris are named) unless --force.
    SealingKey {
        /// The store.
        store: String,
        /// The key (`sk-...`).
        key_id: String,
        /// Retire even though files are still sealed to it: they become
        /// unreadable for good.
        #[arg(long)]
        force: bool,
    },
}

const CONFIG_AFTER_HELP: &str = "\
Contexts live in <config dir>/contexts.yaml (0600; refused if group or
others may read or write it, or another user owns it). A context names a
token file, never a token; the file is read at each use and refused if
group or others may read it.

For each of address, token and CA file the first found wins: the flag,
its variable (SEALPLANE_ADDR, SEALPLANE_TOKEN, SEALPLANE_CA_FILE), the
context selected with --context or SEALPLANE_CONTEXT, the current
context, the default (http://127.0.0.1:7700, no token, system roots).
The current context is not used when an address is given, and a
context's token file is only sent to the context's own address.

Examples:
  sealctl config set-context prod --addr https://sealplane.internal:7443 \\
      --token-file ~/.config/sealplane/prod.token --ca-file ./prod-ca.pem
  sealctl config use-context prod
  sealctl config get-contexts
  sealctl --context dev get secrets
  SEALPLANE_CONTEXT=dev sealctl get secrets";

/// `config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigNoun {
    /// Make a context, or change the fields given.
    ///
    /// Its address is the global --addr flag and its CA file the global
    /// --ca-file flag (not SEALPLANE_ADDR or SEALPLANE_CA_FILE); --addr is
    /// required for a new context.
    #[command(
        after_help = "Example:\n  sealctl config set-context prod --addr https://sealplane.internal:7443 --token-file ~/.config/sealplane/prod.token"
    )]
    SetContext {
        /// The context's name (letters, digits, `.`, `_`, `-`).
        name: String,
        /// A file holding the bearer token (mode 0600); the token itself
        /// is never written to the contexts file.
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
    },
    /// Make a context the current one.
    UseContext {
        /// The context.
        name: String,
    },
    /// List the contexts; the current one is marked `*`.
    #[command(alias = "get-context")]
    GetContexts,
    /// Print the current context's name.
    CurrentContext,
    /// Delete a context (and unset it if it is the current one).
    DeleteContext {
        /// The context.
        name: String,
    },
}

const AUDIT_LOG_AFTER_HELP: &str = "\
Every filter given must hold. --since and --until are inclusive; each is a
log position (a number) or an RFC 3339 time compared with each event's
recorded time. Without --until, the log is read up to this read's own
`AuditLogRead` event (every read is recorded); --follow then keeps printing
new events until interrupted.

Output: -o table (fixed columns), -o json (one object per line: position,
time, actor, event, target, secret, store, principal, request_id, details),
-o csv (the same columns, with a header).

Examples:
  sealctl audit log --secret local://alice/db
  sealctl audit log --since 2026-12-01T00:00:00Z --type AccessDenied
  sealctl audit log --follow -o json >> siem.jsonl";

/// `audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditNoun {
    /// Print the event log as who did what, when, to what (never a value).
    #[command(after_help = AUDIT_LOG_AFTER_HELP)]
    Log(AuditLogArgs),
    /// Export the latest checkpoint signed by the control plane's log key
    /// (`-o json > cp.json` writes a checkpoint file).
    Checkpoint(AuditCheckpointArgs),
    /// Stream the whole log and check every link, the checkpoints recorded
    /// in it and each checkpoint file given; exit 1 naming the first
    /// broken place.
    #[command(after_help = AUDIT_VERIFY_AFTER_HELP)]
    Verify(AuditVerifyArgs),
    /// Show the state (stores, secrets, principals) as it was at a point
    /// of the log, or what changed between two points.
    #[command(after_help = AUDIT_REPLAY_AFTER_HELP)]
    Replay(AuditReplayArgs),
}

const AUDIT_VERIFY_AFTER_HELP: &str = "\
The log key is pinned per deployment in the config dir (known_log_keys) the
first time `audit checkpoint` or `audit verify` sees it, unless --log-key
names a file holding it; a key that differs from the pin is refused (exit 3).
Exit 0: verified (a summary is printed); 1: the log is not what was signed
(the first broken place is printed); 2: an error.

Examples:
  sealctl audit checkpoint -o json > cp-2026-12-01.json
  sealctl audit verify --checkpoint cp-2026-12-01.json
  sealctl audit verify --checkpoint cp-2026-12-01.json --from 120000";

/// `audit checkpoint` arguments.
#[derive(Debug, Args)]
pub struct AuditCheckpointArgs {
    /// A file holding the log key (base64), instead of the pinned one.
    #[arg(long, value_name = "FILE")]
    pub log_key: Option<PathBuf>,
}

/// `audit verify` arguments.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// A checkpoint file (`audit checkpoint -o json`); repeatable.
    #[arg(long = "checkpoint", value_name = "FILE")]
    pub checkpoints: Vec<PathBuf>,
    /// Check only the events after this position, starting from the
    /// checkpoint file given for it.
    #[arg(long, value_name = "POSITION")]
    pub from: Option<u64>,
    /// A file holding the log key (base64), instead of the pinned one.
    #[arg(long, value_name = "FILE")]
    pub log_key: Option<PathBuf>,
}

const AUDIT_REPLAY_AFTER_HELP: &str = "\
A point is a log position (a number; `sealctl audit log` prints them) or an
RFC 3339 time, meaning the last event at or before it. The server folds the
log up to there with the same projection as its live read model; every
replay is recorded as an `AuditReplayed` event. Never a value, token or
signature.

Output: -o table (sections STORES, SECRETS, PRINCIPALS), -o json / -o yaml
(position, time, stores, secrets, principals; with --diff: from, to,
changes with section, subject, change, field, before, after, version, hash).

Examples:
  sealctl audit replay --at 120
  sealctl audit replay --at 2026-12-01T10:00:00Z -o json
  sealctl audit replay --diff 100 140";

/// `audit replay` arguments.
#[derive(Debug, Args)]
pub struct AuditReplayArgs {
    /// The state at this log position or RFC 3339 time.
    #[arg(long, value_name = "TIME|POSITION", value_parser = crate::audit::log_point, required_unless_present = "diff", conflicts_with = "diff")]
    pub at: Option<sealplane_proto::v1::LogPoint>,
    /// What changed from point A to point B.
    #[arg(long, num_args = 2, value_names = ["A", "B"], value_parser = crate::audit::log_point)]
    pub diff: Vec<sealplane_proto::v1::LogPoint>,
}

/// `audit log` arguments.
#[derive(Debug, Args)]
pub struct AuditLogArgs {
    /// From this log position or RFC 3339 time on (inclusive).
    #[arg(long, value_name = "TIME|POSITION", value_parser = crate::audit::log_point)]
    pub since: Option<sealplane_proto::v1::LogPoint>,
    /// Up to this log position or RFC 3339 time (inclusive).
    #[arg(long, value_name = "TIME|POSITION", value_parser = crate::audit::log_point, conflicts_with = "follow")]
    pub until: Option<sealplane_proto::v1::LogPoint>,
    /// Only what this principal did, or what was done on its behalf.
    #[arg(long, value_name = "SLUG")]
    pub actor: Option<String>,
    /// Only events about this secret (a bare path means the default store).
    #[arg(long, value_name = "URI")]
    pub secret: Option<String>,
    /// Only events about this store and its secrets.
    #[arg(long, value_name = "NAME")]
    pub store: Option<String>,
    /// Only events of this type (repeatable, or comma-separated).
    #[arg(long = "type", value_name = "EVENT", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Keep printing new events as they are recorded.
    #[arg(long)]
    pub follow: bool,
}

/// `put ...`
#[derive(Debug, Subcommand)]
pub enum PutNoun {
    /// Seal a value and store it as the secret's next version.
    #[command(after_help = PUT_AFTER_HELP)]
    Secret(PutSecretArgs),
}

/// `put secret` arguments.
#[derive(Debug, Args)]
pub struct PutSecretArgs {
    /// The secret: `store://path`, or a path in the default store.
    pub uri: String,
    /// The value's data.
    #[command(flatten)]
    pub data: DataArgs,
    /// Overwrite an upstream secret that Sealplane does not manage yet.
    #[arg(long)]
    pub adopt: bool,
    /// Expect this reactor identity (base64 Ed25519) instead of the pinned
    /// one, and pin it once the one-time key verifies.
    #[arg(long, value_name = "KEY")]
    pub reactor_key: Option<String>,
    /// Check everything and print what would be put (uri, keys, sizes;
    /// never a value), but seal and send nothing; the store is checked
    /// read-only with the control plane.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where a value's data comes from.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// `key=value`, or `key=-` to be prompted with echo off; with no data
    /// at all, one hidden prompt stores the key `value`.
    #[arg(value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
    /// A key whose value is a file's bytes (repeatable).
    #[arg(long, value_name = "KEY=PATH")]
    pub from_file: Vec<String>,
    /// Keys and values from an env file (repeatable).
    #[arg(long, value_name = "PATH")]
    pub from_env_file: Vec<PathBuf>,
}

/// `verify ...`
#[derive(Debug, Subcommand)]
pub enum VerifyNoun {
    /// Compare a local value with the stored one (through the same sealed path).
    #[command(after_help = "\
Prints `match` or `no match`. Exit status: 0 match, 1 no match, 2 error.

Example:
  sealctl verify secret vault-prod://payments/db user=app password=-")]
    Secret(VerifySecretArgs),
}

/// `verify secret` arguments.
#[derive(Debug, Args)]
pub struct VerifySecretArgs {
    /// The secret: `store://path`, or a path in the default store.
    pub uri: String,
    /// The value to compare.
    #[command(flatten)]
    pub data: DataArgs,
    /// Expect this reactor identity instead of the pinned one.
    #[arg(long, value_name = "KEY")]
    pub reactor_key: Option<String>,
}

/// `get ...`
#[derive(Debug, Subcommand)]
pub enum GetNoun {
    /// List the secrets you may read.
    #[command(alias = "secret")]
    Secrets {
        /// Only this store's secrets.
        #[arg(long)]
        store: Option<String>,
        /// Secrets fetched per request (all are listed; at most 5000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=5000))]
        page_size: u32,
    },
    /// List the stores.
    #[command(alias = "store")]
    Stores,
    /// List users and groups (admins, auditors).
    #[command(alias = "principal")]
    Principals {
        /// Principals fetched per request (all are listed; at most 5000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=5000))]
        page_size: u32,
    },
    /// A store's current sealing key as a key file for `sealctl seal
    /// --cert` (`> prod.pub`), checked against your trust anchors.
    SealingKey {
        /// The store.
        store: String,
    },
    /// Every sealing key of a store, newest first, and how many applied
    /// files each still seals.
    SealingKeys {
        /// The store.
        store: String,
    },
    /// The control plane at a glance: version, event store, log head,
    /// read model, readiness, connected reactors and their lag (admins,
    /// auditors).
    Status,
}

/// `describe ...`
#[derive(Debug, Subcommand)]
pub enum DescribeNoun {
    /// A secret's versions, hashes, access lists and deletion state.
    Secret {
        /// The secret.
        uri: String,
        /// Also list every event of the secret.
        #[arg(long)]
        history: bool,
    },
    /// A store.
    Store {
        /// The store's name.
        name: String,
    },
}

/// `delete ...`
#[derive(Debug, Subcommand)]
pub enum DeleteNoun {
    /// Delete a secret upstream (soft delete, or --destroy every version).
    Secret {
        /// The secret.
        uri: String,
        /// Destroy every version and the metadata upstream.
        #[arg(long)]
        destroy: bool,
        /// Return once the deletion is recorded, without waiting for the reactor.
        #[arg(long)]
        no_wait: bool,
    },
}

/// The access lists of a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessListName {
    /// See metadata, hashes, history.
    #[value(name = "readers")]
    Readers,
    /// Put new versions.
    #[value(name = "writers")]
    Writers,
    /// Delete.
    #[value(name = "deleters")]
    Deleters,
    /// Change the readers list.
    #[value(name = "canChangeReaders")]
    CanChangeReaders,
    /// Change the writers list.
    #[value(name = "canChangeWriters")]
    CanChangeWriters,
    /// Change the deleters list.
    #[value(name = "canChangeDeleters")]
    CanChangeDeleters,
}

impl AccessListName {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessListName::Readers => "readers",
            AccessListName::Writers => "writers",
            AccessListName::Deleters => "deleters",
            AccessListName::CanChangeReaders => "canChangeReaders",
            AccessListName::CanChangeWriters => "canChangeWriters",
            AccessListName::CanChangeDeleters => "canChangeDeleters",
        }
    }
}

/// `grant secret` / `revoke secret` arguments.
#[derive(Debug, Args)]
pub struct AccessArgs {
    /// The secret.
    pub uri: String,
    /// The access list.
    #[arg(long, value_enum)]
    pub list: AccessListName,
    /// The user or group.
    pub slug: String,
}

/// `grant ...`
#[derive(Debug, Subcommand)]
pub enum AccessNoun {
    /// Change a secret's access list.
    #[command(
        after_help = "Example:\n  sealctl grant secret vault-prod://payments/db --list readers payments-team"
    )]
    Secret(AccessArgs),
}

/// `revoke ...`
#[derive(Debug, Subcommand)]
pub enum RevokeNoun {
    /// Remove a user or group from a secret's access list.
    #[command(
        after_help = "Example:\n  sealctl revoke secret vault-prod://payments/db --list readers bob"
    )]
    Secret(AccessArgs),
    /// Revoke a token (its id is in `issue token` and `whoami` output).
    Token {
        /// The token's owner.
        slug: String,
        /// The token's id.
        token_id: String,
    },
}

/// Roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleName {
    /// Puts and reads secrets within its access lists.
    User,
    /// Manages stores and principals, bypasses access lists.
    Admin,
    /// Reads everything but values, writes nothing.
    Auditor,
    /// A reactor process serving the given stores.
    Reactor,
}

impl RoleName {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::User => "user",
            RoleName::Admin => "admin",
            RoleName::Auditor => "auditor",
            RoleName::Reactor => "reactor",
        }
    }
}

/// `create ...`
#[derive(Debug, Subcommand)]
pub enum CreateNoun {
    /// Register a store and the identity of the reactor serving it.
    #[command(after_help = "\
The reactor prints its identity with `sealplane-reactor identity`.

Example:
  sealctl create store vault-prod --kind vault --reactor-key BASE64KEY")]
    Store {
        /// The store's name (a DNS label).
        name: String,
        /// The upstream kind: vault, aws-secrets-manager or file.
        #[arg(long, value_parser = store_kind)]
        kind: StoreKind,
        /// The reactor's Ed25519 public key, base64.
        #[arg(long, value_name = "KEY")]
        reactor_key: String,
    },
    /// Create a user (or a reactor principal).
    #[command(after_help = "\
Examples:
  sealctl create user alice --role user
  sealctl create user reactor-prod --role reactor --store vault-prod")]
    User {
        /// The user's slug.
        slug: String,
        /// The role.
        #[arg(long, value_enum)]
        role: RoleName,
        /// For reactors: a store it serves (repeatable).
        #[arg(long = "store", value_name = "STORE")]
        stores: Vec<String>,
    },
    /// Create a group.
    Group {
        /// The group's slug.
        slug: String,
    },
}

/// A store name.
#[derive(Debug, Subcommand)]
pub enum StoreNoun {
    /// A store.
    Store {
        /// The store's name.
        name: String,
    },
}

/// `set ...`
#[derive(Debug, Subcommand)]
pub enum SetNoun {
    /// Make a store the default for bare paths.
    DefaultStore {
        /// The store's name.
        name: String,
    },
}

/// `remove ...`
#[derive(Debug, Subcommand)]
pub enum RemoveNoun {
    /// Remove a store.
    Store {
        /// The store's name.
        name: String,
    },
    /// Remove a user from a group.
    Member {
        /// The group.
        group: String,
        /// The user.
        user: String,
    },
    /// Remove a user: out of its groups, every token revoked; its slug is
    /// never reused.
    User {
        /// The user.
        slug: String,
    },
}

/// `add ...`
#[derive(Debug, Subcommand)]
pub enum AddNoun {
    /// Add a user to a group.
    Member {
        /// The group.
        group: String,
        /// The user.
        user: String,
    },
}

/// `issue ...`
#[derive(Debug, Subcommand)]
pub enum IssueNoun {
    /// Issue a token for a principal; it is printed once.
    #[command(after_help = "Example:\n  sealctl issue token alice --ttl 30d")]
    Token {
        /// The principal.
        slug: String,
        /// Lifetime, e.g. `90s`, `30m`, `24h`, `30d` [default: the server's].
        #[arg(long)]
        ttl: Option<String>,
    },
}

/// `trust ...`
#[derive(Debug, Subcommand)]
pub enum TrustNoun {
    /// Trust an anchor for a deployment, as `sealplane init` or `sealplane
    /// dev` prints it.
    #[command(after_help = "Example:\n  sealctl trust add 6f1c2a8e-...=Vb4n...Q=")]
    Add {
        /// `<deployment id>=<anchor public key>`.
        entry: String,
    },
    /// List the anchors you trust (the file's and SEALPLANE_TRUST's).
    List,
    /// Stop trusting an anchor.
    Remove {
        /// The anchor's public key, or `<deployment id>=<key>`.
        entry: String,
    },
    /// Make a new trust anchor key file for an admin (0600).
    Generate {
        /// Where to write it; it must not exist [default: <config
        /// dir>/anchor.key, which `create store` and `certify store` then
        /// use when no --anchor-key-file is given].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `certify ...`
#[derive(Debug, Subcommand)]
pub enum CertifyNoun {
    /// Certify a store's reactor identity: its current one (an existing
    /// store, once) or, with --reactor-key, a replacement.
    Store {
        /// The store.
        name: String,
        /// The replacement reactor identity (base64 Ed25519).
        #[arg(long)]
        reactor_key: Option<String>,
    },
}

/// Parses `--kind` with the contract's own spelling of store kinds.
fn store_kind(text: &str) -> Result<StoreKind, String> {
    text.parse()
        .map_err(|e: sealplane_proto::names::InvalidStoreKind| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn put_takes_pairs_files_and_flags_anywhere() {
        let cli = Cli::try_parse_from([
            "sealctl",
            "put",
            "secret",
            "local://a",
            "user=app",
            "--from-file",
            "c=./c.pem",
            "password=-",
            "-o",
            "json",
            "--adopt",
        ])
        .unwrap();
        assert_eq!(cli.global.output, OutputFormat::Json);
        let Verb::Put {
            noun: PutNoun::Secret(args),
        } = cli.verb
        else {
            panic!("not put secret");
        };
        assert_eq!(args.data.pairs, ["user=app", "password=-"]);
        assert_eq!(args.data.from_file, ["c=./c.pem"]);
        assert!(args.adopt);
    }

    #[test]
    fn connection_flags_not_given_are_none_so_contexts_and_defaults_apply_later() {
        let cli = Cli::try_parse_from(["sealctl", "get", "secrets"]).unwrap();
        assert_eq!(cli.global.addr, None);
        assert_eq!(cli.global.token, None);
        assert_eq!(cli.global.ca_file, None);
        assert_eq!(cli.global.context, None);
        let cli = Cli::try_parse_from([
            "sealctl",
            "get",
            "secrets",
            "--context",
            "dev",
            "-o",
            "name",
            "--token",
            "spt_x",
        ])
        .unwrap();
        assert_eq!(cli.global.context.as_deref(), Some("dev"));
        assert_eq!(cli.global.output, OutputFormat::Name);
        assert!(!format!("{cli:?}").contains("spt_x"));
    }

    #[test]
    fn set_context_takes_the_global_addr_and_ca_file_flags() {
        let cli = Cli::try_parse_from([
            "sealctl",
            "config",
            "set-context",
            "prod",
            "--addr",
            "https://p:7443",
            "--token-file",
            "t",
            "--ca-file",
            "ca.pem",
        ])
        .unwrap();
        assert_eq!(cli.global.addr.as_deref(), Some("https://p:7443"));
        assert_eq!(cli.global.ca_file, Some(PathBuf::from("ca.pem")));
        let Verb::Config {
            noun: ConfigNoun::SetContext { name, token_file },
        } = cli.verb
        else {
            panic!("not set-context");
        };
        assert_eq!(name, "prod");
        assert_eq!(token_file, Some(PathBuf::from("t")));
    }

    #[test]
    fn put_takes_dry_run() {
        let cli =
            Cli::try_parse_from(["sealctl", "put", "secret", "local://a", "k=v", "--dry-run"])
                .unwrap();
        let Verb::Put {
            noun: PutNoun::Secret(args),
        } = cli.verb
        else {
            panic!("not put secret");
        };
        assert!(args.dry_run);
    }

    #[test]
    fn access_lists_use_the_api_spelling() {
        let cli = Cli::try_parse_from([
            "sealctl",
            "grant",
            "secret",
            "local://a",
            "--list",
            "canChangeReaders",
            "bob",
        ])
        .unwrap();
        let Verb::Grant {
            noun: AccessNoun::Secret(args),
        } = cli.verb
        else {
            panic!("not grant");
        };
        assert_eq!(args.list.as_str(), "canChangeReaders");
        assert!(
            Cli::try_parse_from(["sealctl", "grant", "secret", "u", "--list", "owners", "b"])
                .is_err()
        );
    }
}
