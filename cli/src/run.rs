//! Runs one parsed command line: connects, calls the command's module,
//! prints the result in the chosen format, and says which exit status the
//! outcome means.

use std::io::Write as _;
use std::path::PathBuf;

use sealplane_proto::v1;
use serde::Serialize;

use crate::admin::{self, AdminError, StoreAction};
use crate::client::{ClientError, Connection, ConnectionSettings};
use crate::command_line::{
    AccessNoun, AddNoun, Cli, CreateNoun, DataArgs, DeleteNoun, DescribeNoun, GetNoun, GlobalArgs,
    IssueNoun, PutNoun, RemoveNoun, RevokeNoun, SetNoun, StoreNoun, Verb, VerifyNoun,
};
use crate::known_reactors::{KnownReactors, PinError};
use crate::output::{OutputError, OutputFormat, Tabular, render};
use crate::progress::Progress;
use crate::sealed_upload::{Outcome, UploadError, UploadTarget, upload};
use crate::secrets::{self, SecretsError};
use crate::value_input::{
    DEFAULT_MAX_SECRET_BYTES, InputError, TerminalPrompt, ValueSources, read_value,
};

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
    /// The sealed upload failed.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// A secret command failed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// An admin command failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The result could not be printed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Writing to stdout failed.
    #[error("cannot write the result: {0}")]
    Stdout(std::io::Error),
    /// No configuration directory.
    #[error("cannot find a configuration directory for known_reactors; set SEALPLANE_CONFIG_DIR")]
    NoConfigDir,
}

impl CommandError {
    /// The exit status this error means.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Upload(e) if e.is_trust_refusal() => EXIT_UNTRUSTED,
            CommandError::Pin(PinError::Changed { .. }) => EXIT_UNTRUSTED,
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

/// Runs `cli` and returns the exit status of a completed command.
pub async fn run(cli: Cli) -> Result<u8, CommandError> {
    let global = cli.global;
    let format = global.output;
    let settings = ConnectionSettings {
        addr: global.addr.clone(),
        token: global.token.clone(),
        ca_file: global.ca_file.clone(),
    };
    match cli.verb {
        Verb::Put {
            noun: PutNoun::Secret(args),
        } => {
            let target = UploadTarget {
                uri: args.uri,
                purpose: v1::Purpose::Put,
                adopt: args.adopt,
                reactor_key: args.reactor_key,
            };
            sealed(&global, &settings, target, sources(args.data)).await
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
            sealed(&global, &settings, target, sources(args.data)).await
        }
        verb => {
            let conn = Connection::open(&settings).await?;
            plain(&conn, format, verb).await?;
            Ok(EXIT_OK)
        }
    }
}

/// `put secret` and `verify secret`.
async fn sealed(
    global: &GlobalArgs,
    settings: &ConnectionSettings,
    target: UploadTarget,
    sources: ValueSources,
) -> Result<u8, CommandError> {
    let mut pins = KnownReactors::load(&KnownReactors::path_in(&config_dir(global)?))?;
    let conn = Connection::open(settings).await?;
    let value = read_value(&sources, &mut TerminalPrompt, DEFAULT_MAX_SECRET_BYTES)?;
    let progress = Progress::start(format!("requesting a one-time key for {}", target.uri));
    let outcome = upload(&conn, &mut pins, &target, &value, &progress).await;
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

/// Every command other than the sealed ones.
async fn plain(conn: &Connection, format: OutputFormat, verb: Verb) -> Result<(), CommandError> {
    match verb {
        Verb::Put { .. } | Verb::Verify { .. } => unreachable!("handled by `sealed`"),
        Verb::Get { noun } => match noun {
            GetNoun::Secrets { store } => print(format, &secrets::list(conn, store).await?),
            GetNoun::Stores => print(format, &admin::list_stores(conn).await?),
            GetNoun::Principals => print(format, &admin::list_principals(conn).await?),
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
            } => print(
                format,
                &admin::create_store(conn, &name, kind.as_str(), &reactor_key).await?,
            ),
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
    }
}

async fn store_action(
    conn: &Connection,
    format: OutputFormat,
    action: StoreAction,
    name: &str,
) -> Result<(), CommandError> {
    print(format, &admin::store_action(conn, action, name).await?)
}
