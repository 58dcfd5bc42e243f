//! Runs one parsed command line: connects, calls the command's module,
//! prints the result in the chosen format, and says which exit status the
//! outcome means.

use std::io::Write as _;
use std::path::PathBuf;

use sealplane_proto::v1;
use serde::Serialize;

use crate::admin::{self, AdminError, StoreAction};
use crate::audit::{self, AuditError};
use crate::audit_verify::{self, VerifyError};
use crate::client::{ClientError, Connection, ConnectionSettings};
use crate::command_line::{
    AccessNoun, AddNoun, AuditNoun, AuditReplayArgs, CertifyNoun, Cli, ConfigNoun, CreateNoun,
    DataArgs, DeleteNoun, DescribeNoun, GetNoun, GlobalArgs, IssueNoun, PutNoun, PutSecretArgs,
    RemoveNoun, RetireNoun, RevokeNoun, RotateNoun, SetNoun, StoreNoun, TrustNoun, Verb,
    VerifyNoun,
};
use crate::connection_settings::{self, Flags, SettingsError};
use crate::contexts::{
    ContextChange, ContextError, ContextList, ContextOutcome, Contexts, CurrentContext,
};
use crate::dry_run::{self, DryRunError, PutPlan};
use crate::known_reactors::{KnownReactors, PinError};
use crate::output::Message;
use crate::output::{OutputError, OutputFormat, Tabular, render};
use crate::progress::Progress;
use crate::replay::{self, ReplayError};
use crate::sealed_files::{self, SealedFileError};
use crate::sealed_upload::{Outcome, Trusting, UploadError, UploadTarget, upload};
use crate::secrets::{self, SecretsError};
use crate::trust::{TRUST_ENV, Trust, TrustEntry, TrustError, generate_anchor, load_anchor};
use crate::value_input::{
    DEFAULT_MAX_SECRET_BYTES, InputError, TerminalPrompt, ValueSources, read_value,
};
use sealplane_proto::certificate::TrustAnchor;

/// Exit status: success (and `verify`: match).
pub const EXIT_OK: u8 = 0;
/// Exit status: `verify secret` found no match.
pub const EXIT_NO_MATCH: u8 = 1;
/// Exit status: an error.
pub const EXIT_ERROR: u8 = 2;
/// Exit status: refused to trust the control plane's answer; nothing was sent.
pub const EXIT_UNTRUSTED: u8 = 3;

/// Why a command failed; each message is a sentence for the user.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Talking to the control plane failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The value could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The pins could not be used.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// Trust could not be read or changed.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The sealed upload failed.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// A secret command failed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// An admin command failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The audit log could not be read or printed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A checkpoint could not be exported or the log verified.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The state could not be replayed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// A sealed-file command failed.
    #[error(transparent)]
    Sealed(#[from] SealedFileError),
    /// The contexts file could not be used or changed.
    #[error(transparent)]
    Contexts(#[from] ContextError),
    /// The control plane, token or CA file could not be decided.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// `put secret --dry-run` found that the put would fail.
    #[error(transparent)]
    DryRun(#[from] DryRunError),
    /// `config set-context` was given a token, which contexts never hold.
    #[error(
        "a context holds no token, only the name of a file holding one: write the token to a file (mode 0600) and pass --token-file FILE"
    )]
    TokenInContext,
    /// The result could not be printed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Writing to stdout failed.
    #[error("cannot write the result: {0}")]
    Stdout(std::io::Error),
    /// No configuration directory.
    #[error(
        "cannot find a configuration directory for known_reactors and contexts; set SEALPLANE_CONFIG_DIR"
    )]
    NoConfigDir,
}

impl CommandError {
    /// The exit status this error means.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Upload(e) if e.is_trust_refusal() => EXIT_UNTRUSTED,
            CommandError::Pin(PinError::Changed { .. }) => EXIT_UNTRUSTED,
            CommandError::Verify(e) if e.is_trust_refusal() => EXIT_UNTRUSTED,
            CommandError::Sealed(e) if e.is_trust_refusal() => EXIT_UNTRUSTED,
            _ => EXIT_ERROR,
        }
    }
}

fn print<T: Serialize + Tabular>(format: OutputFormat, view: &T) -> Result<(), CommandError> {
    let text = render(format, view)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CommandError::Stdout)
}

fn config_dir(global: &GlobalArgs) -> Result<PathBuf, CommandError> {
    global
        .config_dir
        .clone()
        .or_else(|| dirs::config_dir().map(|d| d.join("sealplane")))
        .ok_or(CommandError::NoConfigDir)
}

fn sources(data: DataArgs) -> ValueSources {
    ValueSources {
        pairs: data.pairs,
        files: data.from_file,
        env_files: data.from_env_file,
    }
}

/// The connection settings of a command that talks to the control plane:
/// flags, then environment, then contexts ([`connection_settings`]).
fn settings(global: &GlobalArgs) -> Result<ConnectionSettings, CommandError> {
    let flags = Flags {
        addr: global.addr.as_deref(),
        token: global.token.as_deref(),
        ca_file: global.ca_file.as_deref(),
        context: global.context.as_deref(),
    };
    let dir = config_dir(global);
    let contexts = || match &dir {
        Ok(dir) => Contexts::load(&Contexts::path_in(dir)),
        Err(_) => Err(ContextError::NoConfigDir),
    };
    Ok(connection_settings::resolve(
        flags,
        &|name| std::env::var(name).ok(),
        &contexts,
    )?)
}

/// Whether the command's result names something for `-o name`. Checked
/// before anything is sent, so a command that changes state never runs
/// only to fail at printing.
fn names_something(verb: &Verb) -> bool {
    matches!(
        verb,
        Verb::Put { .. }
            | Verb::Verify { .. }
            | Verb::Get {
                noun: GetNoun::Secrets { .. } | GetNoun::Stores | GetNoun::Principals { .. }
            }
            | Verb::Describe { .. }
            | Verb::Whoami
            | Verb::Config { .. }
    )
}

/// Runs `cli` and returns the exit status of a completed command.
pub async fn run(cli: Cli) -> Result<u8, CommandError> {
    let global = cli.global;
    if global.output == OutputFormat::Name && !names_something(&cli.verb) {
        return Err(OutputError::NoName.into());
    }
    match cli.verb {
        Verb::Put {
            noun: PutNoun::Secret(args),
        } if args.dry_run => dry_run(&global, args).await,
        Verb::Put {
            noun: PutNoun::Secret(args),
        } => {
            let target = UploadTarget {
                uri: args.uri,
                purpose: v1::Purpose::Put,
                adopt: args.adopt,
                reactor_key: args.reactor_key,
            };
            sealed(&global, &settings(&global)?, target, sources(args.data)).await
        }
        Verb::Verify {
            noun: VerifyNoun::Secret(args),
        } => {
            let target = UploadTarget {
                uri: args.uri,
                purpose: v1::Purpose::Verify,
                adopt: false,
                reactor_key: args.reactor_key,
            };
            sealed(&global, &settings(&global)?, target, sources(args.data)).await
        }
        Verb::Trust { noun } => {
            trust_command(&global, noun)?;
            Ok(EXIT_OK)
        }
        Verb::Config { noun } => {
            config_command(&global, noun)?;
            Ok(EXIT_OK)
        }
        Verb::Seal(args) => seal_command(&global, args).await,
        Verb::Apply(args) => {
            let conn = Connection::open(&settings(&global)?).await?;
            let files = sealed_files::collect(&args.files, args.recursive)?;
            let report = sealed_files::apply(&conn, &files, args.dry_run).await?;
            finish_report(&global, &report)
        }
        Verb::Reseal(args) => {
            let dir = config_dir(&global)?;
            let pins = KnownReactors::load(&KnownReactors::path_in(&dir))?;
            let trust = load_trust(&dir)?;
            let conn = Connection::open(&settings(&global)?).await?;
            let files = sealed_files::collect(&args.files, args.recursive)?;
            let report = sealed_files::reseal(&conn, &files, &trust, &pins).await?;
            finish_report(&global, &report)
        }
        Verb::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "sealctl", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
        Verb::Audit {
            noun: AuditNoun::Verify(a),
        } => {
            let conn = Connection::open(&settings(&global)?).await?;
            audit_verify_command(&global, &conn, a).await
        }
        verb => {
            let conn = Connection::open(&settings(&global)?).await?;
            plain(&conn, &global, verb).await?;
            Ok(EXIT_OK)
        }
    }
}

/// `put secret --dry-run`: the checks of a put, the store read-only,
/// nothing sealed or sent ([`dry_run`]).
async fn dry_run(global: &GlobalArgs, args: PutSecretArgs) -> Result<u8, CommandError> {
    let secret = dry_run::check_arguments(&args.uri, args.reactor_key.as_deref())?;
    // The files a put would need must be usable too.
    let dir = config_dir(global)?;
    KnownReactors::load(&KnownReactors::path_in(&dir))?;
    load_trust(&dir)?;
    let conn = Connection::open(&settings(global)?).await?;
    let store = dry_run::check_store(&conn, &secret).await?;
    let value = read_value(
        &sources(args.data),
        &mut TerminalPrompt,
        DEFAULT_MAX_SECRET_BYTES,
    )?;
    let plan = PutPlan::of(secret, &store, &value, DEFAULT_MAX_SECRET_BYTES, args.adopt);
    drop(value);
    print(global.output, &plan)?;
    Ok(EXIT_OK)
}

/// `config ...`: the contexts file only, no control plane.
fn config_command(global: &GlobalArgs, noun: ConfigNoun) -> Result<(), CommandError> {
    let mut contexts = Contexts::load(&Contexts::path_in(&config_dir(global)?))?;
    let format = global.output;
    let outcome = |context: &str, message: String| ContextOutcome {
        context: context.to_owned(),
        message,
    };
    match noun {
        ConfigNoun::SetContext { name, token_file } => {
            if global.token.is_some() {
                return Err(CommandError::TokenInContext);
            }
            let existed = contexts.get(&name).is_ok();
            let context = contexts.set(
                &name,
                ContextChange {
                    addr: global.addr.clone(),
                    token_file,
                    ca_file: global.ca_file.clone(),
                },
            )?;
            let message = format!(
                "context `{name}` {} ({}); `sealctl config use-context {name}` makes it current",
                if existed { "changed" } else { "created" },
                context.addr
            );
            print(format, &outcome(&name, message))
        }
        ConfigNoun::UseContext { name } => {
            contexts.use_context(&name)?;
            let addr = contexts.get(&name)?.addr.clone();
            print(
                format,
                &outcome(&name, format!("switched to context `{name}` ({addr})")),
            )
        }
        ConfigNoun::GetContexts => print(format, &ContextList::from(&contexts)),
        ConfigNoun::CurrentContext => {
            let name = contexts
                .current()
                .ok_or_else(|| ContextError::NoCurrent(contexts.path().to_owned()))?;
            print(
                format,
                &CurrentContext {
                    current_context: name.to_owned(),
                },
            )
        }
        ConfigNoun::DeleteContext { name } => {
            let was_current = contexts.delete(&name)?;
            let message = if was_current {
                format!("context `{name}` deleted; it was the current one, so none is current now")
            } else {
                format!("context `{name}` deleted")
            };
            print(format, &outcome(&name, message))
        }
    }
}

/// Prints an apply or reseal report; exit 0 only if no file failed.
fn finish_report(global: &GlobalArgs, report: &sealed_files::Report) -> Result<u8, CommandError> {
    print(global.output, report)?;
    match report.failed() {
        0 => Ok(EXIT_OK),
        failed => Err(SealedFileError::SomeFailed {
            failed,
            total: report.files.len(),
        }
        .into()),
    }
}

/// `seal URI ... [--cert FILE]`: the sealed file on stdout.
async fn seal_command(
    global: &GlobalArgs,
    args: crate::command_line::SealArgs,
) -> Result<u8, CommandError> {
    let dir = config_dir(global)?;
    let pins = KnownReactors::load(&KnownReactors::path_in(&dir))?;
    let trust = load_trust(&dir)?;
    let key = match &args.cert {
        Some(path) => sealed_files::read_key_file(path)?,
        None => {
            let conn = Connection::open(&settings(global)?).await?;
            let store = match args.uri.split_once("://") {
                Some((store, _)) => store.to_owned(),
                None => {
                    return Err(SealedFileError::Uri(
                        "a bare path needs --cert (its store is the key file's); otherwise give `store://path`".into(),
                    )
                    .into());
                }
            };
            sealed_files::fetch_key_file(&conn, &store, &trust, &pins).await?
        }
    };
    let public = sealed_files::check_key_file(&key, &trust, &pins, chrono::Utc::now())?;
    let value = read_value(
        &sources(args.data),
        &mut TerminalPrompt,
        DEFAULT_MAX_SECRET_BYTES,
    )?;
    let sealed = sealed_files::seal(&args.uri, &key, &public, &value);
    drop(value);
    let sealed = sealed?;
    let format = match global.output {
        OutputFormat::Json => sealed_files::FileFormat::Json,
        _ => sealed_files::FileFormat::Yaml,
    };
    let mut out = std::io::stdout().lock();
    out.write_all(format.render(&sealed).as_bytes())
        .and_then(|()| out.flush())
        .map_err(CommandError::Stdout)?;
    Ok(EXIT_OK)
}

/// `put secret` and `verify secret`.
async fn sealed(
    global: &GlobalArgs,
    settings: &ConnectionSettings,
    target: UploadTarget,
    sources: ValueSources,
) -> Result<u8, CommandError> {
    let dir = config_dir(global)?;
    let mut pins = KnownReactors::load(&KnownReactors::path_in(&dir))?;
    let trust = load_trust(&dir)?;
    let conn = Connection::open(settings).await?;
    let value = read_value(&sources, &mut TerminalPrompt, DEFAULT_MAX_SECRET_BYTES)?;
    let progress = Progress::start(format!("requesting a one-time key for {}", target.uri));
    let mut trusting = Trusting {
        pins: &mut pins,
        trust: &trust,
        confirm: &confirm_on_terminal,
    };
    let outcome = upload(&conn, &mut trusting, &target, &value, &progress).await;
    drop(value);
    drop(progress);
    match outcome? {
        Outcome::Uploaded(done) => {
            print(global.output, &done)?;
            Ok(EXIT_OK)
        }
        Outcome::Verified(done) => {
            print(global.output, &done)?;
            Ok(if done.matches { EXIT_OK } else { EXIT_NO_MATCH })
        }
    }
}

fn load_trust(dir: &std::path::Path) -> Result<Trust, CommandError> {
    Ok(Trust::load(
        &Trust::path_in(dir),
        std::env::var(TRUST_ENV).ok().as_deref(),
    )?)
}

/// Asks on the terminal whether to accept a reactor identity nothing
/// vouches for (default no); without a terminal the answer is no.
fn confirm_on_terminal(store: &str, deployment: &str, key: &str) -> bool {
    use std::io::IsTerminal as _;
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return false;
    }
    eprintln!(
        "Store `{store}` (deployment {deployment}) is served by reactor identity\n  {key}\nand no certificate from a trust anchor you hold vouches for it."
    );
    eprint!("Check this key with an admin. Seal the value to it and remember it? [y/N] ");
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

/// `trust ...`: local only, no control plane.
fn trust_command(global: &GlobalArgs, noun: TrustNoun) -> Result<(), CommandError> {
    let dir = config_dir(global)?;
    let format = global.output;
    let bad = |entry: &str| TrustError::Malformed {
        source_name: "the command line".into(),
        entry: entry.to_owned(),
    };
    match noun {
        TrustNoun::Add { entry } => {
            let parsed = TrustEntry::parse(&entry).ok_or_else(|| bad(&entry))?;
            let mut trust = Trust::load(&Trust::path_in(&dir), None)?;
            let added = trust.add(parsed.clone())?;
            print(
                format,
                &Message {
                    message: if added {
                        format!(
                            "trusting anchor {} for deployment {}",
                            parsed.anchor_key, parsed.deployment_id
                        )
                    } else {
                        format!("anchor {} was already trusted", parsed.anchor_key)
                    },
                },
            )
        }
        TrustNoun::List => {
            let trust = load_trust(&dir)?;
            let lines: Vec<String> = trust
                .entries()
                .map(|(e, from)| format!("{e} ({from})"))
                .collect();
            print(
                format,
                &Message {
                    message: if lines.is_empty() {
                        "no trust anchors: `sealctl trust add DEPLOYMENT=KEY` adds one".into()
                    } else {
                        lines.join("\n")
                    },
                },
            )
        }
        TrustNoun::Remove { entry } => {
            let (deployment, key) = match TrustEntry::parse(&entry) {
                Some(e) => (Some(e.deployment_id), e.anchor_key),
                None => (None, entry.trim().to_owned()),
            };
            let mut trust = Trust::load(&Trust::path_in(&dir), None)?;
            let removed = trust.remove(deployment, &key)?;
            print(
                format,
                &Message {
                    message: format!(
                        "removed {removed} trust entr{}",
                        if removed == 1 { "y" } else { "ies" }
                    ),
                },
            )
        }
        TrustNoun::Generate { out } => {
            let out = out.unwrap_or_else(|| dir.join(ANCHOR_FILE));
            let anchor = generate_anchor(&out)?;
            print(
                format,
                &Message {
                    message: format!(
                        "trust anchor written to {} (0600; keep it safe). Its public key: {}\nSign with it: export SEALPLANE_ANCHOR_KEY_FILE={}",
                        out.display(),
                        anchor.public_key_base64(),
                        out.display()
                    ),
                },
            )
        }
    }
}

/// The admin's anchor: `--anchor-key-file`, else `<config dir>/anchor.key`
/// if there is one.
fn anchor_of(global: &GlobalArgs) -> Result<Option<TrustAnchor>, CommandError> {
    let path = match &global.anchor_key_file {
        Some(path) => path.clone(),
        None => {
            let default = config_dir(global)?.join(ANCHOR_FILE);
            if !default.exists() {
                return Ok(None);
            }
            default
        }
    };
    Ok(Some(load_anchor(&path)?))
}

/// An admin's anchor key file in the config directory.
const ANCHOR_FILE: &str = "anchor.key";

/// Every command other than the sealed ones.
async fn plain(conn: &Connection, global: &GlobalArgs, verb: Verb) -> Result<(), CommandError> {
    let format = global.output;
    match verb {
        Verb::Put { .. }
        | Verb::Verify { .. }
        | Verb::Trust { .. }
        | Verb::Config { .. }
        | Verb::Completion { .. }
        | Verb::Seal(_)
        | Verb::Apply(_)
        | Verb::Reseal(_)
        | Verb::Audit {
            noun: AuditNoun::Verify(_),
        } => {
            unreachable!("handled before connecting")
        }
        Verb::Certify {
            noun: CertifyNoun::Store { name, reactor_key },
        } => {
            let anchor = anchor_of(global)?.ok_or_else(|| AdminError::Certify {
                store: name.clone(),
                problem: "no trust anchor: pass --anchor-key-file or set SEALPLANE_ANCHOR_KEY_FILE"
                    .into(),
            })?;
            print(
                format,
                &admin::certify_store(conn, &name, reactor_key.as_deref(), &anchor).await?,
            )
        }
        Verb::Get { noun } => match noun {
            GetNoun::Secrets { store, page_size } => {
                print(format, &secrets::list(conn, store, page_size).await?)
            }
            GetNoun::Stores => print(format, &admin::list_stores(conn).await?),
            GetNoun::Principals { page_size } => {
                print(format, &admin::list_principals(conn, page_size).await?)
            }
            GetNoun::Status => print(format, &admin::status(conn).await?),
            GetNoun::SealingKey { store } => {
                let dir = config_dir(global)?;
                let pins = KnownReactors::load(&KnownReactors::path_in(&dir))?;
                let trust = load_trust(&dir)?;
                let key = sealed_files::fetch_key_file(conn, &store, &trust, &pins).await?;
                // A key file is a file: JSON unless YAML is asked for.
                let format = match format {
                    OutputFormat::Yaml => OutputFormat::Yaml,
                    _ => OutputFormat::Json,
                };
                print(format, &key)
            }
            GetNoun::SealingKeys { store } => {
                print(format, &sealed_files::list(conn, &store).await?)
            }
        },
        Verb::Describe { noun } => match noun {
            DescribeNoun::Secret { uri, history } => {
                print(format, &secrets::describe(conn, &uri, history).await?)
            }
            DescribeNoun::Store { name } => {
                print(format, &admin::describe_store(conn, &name).await?)
            }
        },
        Verb::Delete {
            noun:
                DeleteNoun::Secret {
                    uri,
                    destroy,
                    no_wait,
                },
        } => print(
            format,
            &secrets::delete(conn, &uri, destroy, no_wait).await?,
        ),
        Verb::Grant {
            noun: AccessNoun::Secret(a),
        } => print(
            format,
            &secrets::change_access(conn, &a.uri, a.list.as_str(), &a.slug, true).await?,
        ),
        Verb::Revoke { noun } => match noun {
            RevokeNoun::Secret(a) => print(
                format,
                &secrets::change_access(conn, &a.uri, a.list.as_str(), &a.slug, false).await?,
            ),
            RevokeNoun::Token { slug, token_id } => {
                print(format, &admin::revoke_token(conn, &slug, &token_id).await?)
            }
        },
        Verb::Create { noun } => match noun {
            CreateNoun::Store {
                name,
                kind,
                reactor_key,
            } => {
                let anchor = anchor_of(global)?;
                print(
                    format,
                    &admin::create_store(conn, &name, kind.as_str(), &reactor_key, anchor.as_ref())
                        .await?,
                )
            }
            CreateNoun::User { slug, role, stores } => print(
                format,
                &admin::create_user(conn, &slug, role.as_str(), &stores).await?,
            ),
            CreateNoun::Group { slug } => print(format, &admin::create_group(conn, &slug).await?),
        },
        Verb::Enable {
            noun: StoreNoun::Store { name },
        } => store_action(conn, format, StoreAction::Enable, &name).await,
        Verb::Disable {
            noun: StoreNoun::Store { name },
        } => store_action(conn, format, StoreAction::Disable, &name).await,
        Verb::Set {
            noun: SetNoun::DefaultStore { name },
        } => store_action(conn, format, StoreAction::SetDefault, &name).await,
        Verb::Remove { noun } => match noun {
            RemoveNoun::Store { name } => {
                store_action(conn, format, StoreAction::Remove, &name).await
            }
            RemoveNoun::Member { group, user } => print(
                format,
                &admin::membership(conn, &group, &user, false).await?,
            ),
            RemoveNoun::User { slug } => print(format, &admin::remove_user(conn, &slug).await?),
        },
        Verb::Add {
            noun: AddNoun::Member { group, user },
        } => print(format, &admin::membership(conn, &group, &user, true).await?),
        Verb::Issue {
            noun: IssueNoun::Token { slug, ttl },
        } => print(
            format,
            &admin::issue_token(conn, &slug, ttl.as_deref()).await?,
        ),
        Verb::Whoami => print(format, &admin::whoami(conn).await?),
        Verb::Rotate {
            noun: RotateNoun::SealingKey { store },
        } => print(format, &sealed_files::rotate(conn, &store).await?),
        Verb::Retire {
            noun:
                RetireNoun::SealingKey {
                    store,
                    key_id,
                    force,
                },
        } => print(
            format,
            &sealed_files::retire(conn, &store, &key_id, force).await?,
        ),

        Verb::Audit {
            noun: AuditNoun::Log(a),
        } => {
            let request = v1::AuditLogRequest {
                since: a.since,
                until: a.until,
                actor: a.actor.unwrap_or_default(),
                secret: a.secret.unwrap_or_default(),
                store: a.store.unwrap_or_default(),
                event_types: a.types,
                follow: a.follow,
            };
            Ok(audit::log(conn, request, format).await?)
        }
        Verb::Audit {
            noun: AuditNoun::Checkpoint(a),
        } => {
            let dir = config_dir(global)?;
            Ok(audit_verify::checkpoint(conn, &dir, a.log_key.as_deref(), format).await?)
        }
        Verb::Audit {
            noun: AuditNoun::Replay(a),
        } => replay(conn, format, a).await,
    }
}

/// `audit replay --at POINT` or `--diff A B`.
async fn replay(
    conn: &Connection,
    format: OutputFormat,
    args: AuditReplayArgs,
) -> Result<(), CommandError> {
    match (args.at, <[_; 2]>::try_from(args.diff)) {
        (Some(point), _) => print(format, &replay::at(conn, point).await?),
        (None, Ok([a, b])) => print(format, &replay::between(conn, a, b).await?),
        (None, Err(_)) => Err(ReplayError::Points.into()),
    }
}

/// `audit verify`: its exit status says whether the log held.
async fn audit_verify_command(
    global: &GlobalArgs,
    conn: &Connection,
    a: crate::command_line::AuditVerifyArgs,
) -> Result<u8, CommandError> {
    let dir = config_dir(global)?;
    let request = audit_verify::VerifyRequest {
        checkpoints: a.checkpoints,
        from: a.from,
        log_key: a.log_key,
    };
    Ok(audit_verify::verify(conn, &dir, request, global.output).await?)
}

async fn store_action(
    conn: &Connection,
    format: OutputFormat,
    action: StoreAction,
    name: &str,
) -> Result<(), CommandError> {
    print(format, &admin::store_action(conn, action, name).await?)
}
