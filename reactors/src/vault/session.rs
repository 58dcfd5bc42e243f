//! The store's Vault token: obtained at start, renewed at 2/3 of its TTL,
//! replaced by a fresh AppRole login when renewal no longer extends it.
//!
//! Renewal is checked before each operation rather than by a background
//! task: a reactor that is idle past its token's TTL logs in again (AppRole)
//! on its next operation. A token given directly (`token_file`/`token_env`)
//! is renewed while renewal extends it and then used until it expires; the
//! reactor cannot get a new one by itself.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use vaultrs::client::{VaultClient, VaultClientSettings, VaultClientSettingsBuilder};
use zeroize::Zeroizing;

use super::config::{AppRoleConfig, AuthMethod, VaultConfig};
use super::errors::Call;
use crate::upstream::UpstreamError;

/// The current token and when to look after it.
struct TokenState {
    /// A client that sends the current token.
    client: Arc<VaultClient>,
    /// The token's accessor (not a secret: it cannot be used to authenticate).
    accessor: String,
    /// The TTL the token was granted at login (zero: never expires).
    granted: Duration,
    /// Whether Vault lets the token be renewed.
    renewable: bool,
    /// When to renew or replace it; `None`: never.
    due: Option<Instant>,
}

/// The store's login session.
pub struct Session {
    endpoint: String,
    auth: AuthMethod,
    /// Settings without a token, cloned for every client.
    settings: VaultClientSettings,
    state: Mutex<TokenState>,
    logins: AtomicU64,
    renewals: AtomicU64,
}

/// 2/3 of `ttl` from now, or never for a token without expiry.
fn due_after(ttl: Duration) -> Option<Instant> {
    (!ttl.is_zero()).then(|| Instant::now() + ttl * 2 / 3)
}

impl Session {
    /// Logs in (AppRole) or checks the token (token lookup-self, which works on Vault and OpenBao).
    pub async fn start(config: &VaultConfig) -> Result<Session, UpstreamError> {
        let endpoint = config.endpoint().to_owned();
        let settings = base_settings(config)?;
        let auth = config.auth();
        let token = match &auth {
            AuthMethod::TokenFile(path) => Some(read_token(path, "token_file")?),
            AuthMethod::TokenEnv(var) => Some(Zeroizing::new(
                std::env::var(var)
                    .map_err(|_| UpstreamError::Config {
                        field: "token_env",
                        problem: format!(
                            "names the environment variable {var:?}, which is not set (or not UTF-8): export the Vault token in it"
                        ),
                    })?
                    .trim()
                    .to_owned(),
            )),
            AuthMethod::AppRole(_) => None,
        };
        if let (AuthMethod::TokenEnv(_), Some(token)) = (&auth, &token) {
            check_token_text(token, "token_env")?;
        }
        let placeholder = Arc::new(client_with(&settings, "")?);
        let session = Session {
            endpoint,
            auth,
            settings,
            state: Mutex::new(TokenState {
                client: placeholder,
                accessor: String::new(),
                granted: Duration::ZERO,
                renewable: false,
                due: None,
            }),
            logins: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
        };
        {
            let mut state = session.state.lock().await;
            match (&session.auth, token) {
                (AuthMethod::AppRole(approle), _) => session.login(approle, &mut state).await?,
                (_, Some(token)) => session.adopt_token(&token, &mut state).await?,
                (_, None) => unreachable!("token auth read a token above"),
            }
        }
        Ok(session)
    }

    /// A client with a current token, renewing or replacing the token when due.
    pub async fn client(&self) -> Result<Arc<VaultClient>, UpstreamError> {
        let mut state = self.state.lock().await;
        if state.due.is_some_and(|due| Instant::now() >= due) {
            self.refresh(&mut state).await?;
        }
        Ok(Arc::clone(&state.client))
    }

    /// After a permission error with `used`: logs in again if the token may
    /// have expired (AppRole); whether there is a new token to try.
    pub async fn relogin_after_denial(
        &self,
        used: &Arc<VaultClient>,
    ) -> Result<bool, UpstreamError> {
        let mut state = self.state.lock().await;
        if !Arc::ptr_eq(&state.client, used) {
            return Ok(true);
        }
        match &self.auth {
            AuthMethod::AppRole(approle) => {
                self.login(approle, &mut state).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Logins so far (1 after start with AppRole; 0 with a token).
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Successful token renewals so far.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }

    /// The current token's accessor.
    pub async fn accessor(&self) -> String {
        self.state.lock().await.accessor.clone()
    }

    fn call<'a>(&'a self, path: &'a str, operation: &'static str, needs: &'a str) -> Call<'a> {
        Call {
            endpoint: &self.endpoint,
            mount: "auth",
            path,
            operation,
            needs,
            sensitive: &[],
        }
    }

    /// Renews the token, or logs in again when renewal fails or stops extending it.
    async fn refresh(&self, state: &mut TokenState) -> Result<(), UpstreamError> {
        let approle = match &self.auth {
            AuthMethod::AppRole(approle) => Some(approle),
            _ => None,
        };
        if state.renewable {
            match vaultrs::token::renew_self(&*state.client, None).await {
                Ok(auth) => {
                    let lease = Duration::from_secs(auth.lease_duration);
                    if lease >= state.granted {
                        self.renewals.fetch_add(1, Ordering::Relaxed);
                        state.due = due_after(lease);
                        return Ok(());
                    }
                    // Capped by the token's max TTL: it is near its end.
                    if approle.is_none() {
                        self.renewals.fetch_add(1, Ordering::Relaxed);
                        state.due = None;
                        return Ok(());
                    }
                }
                Err(e) => {
                    let e = self
                        .call(
                            "auth/token/renew-self",
                            "renew",
                            "`update` on auth/token/renew-self (the `default` policy)",
                        )
                        .error(e);
                    if e.is_transient() {
                        return Err(e);
                    }
                    if approle.is_none() {
                        // Expired or revoked: operations will say so.
                        state.due = None;
                        return Ok(());
                    }
                }
            }
        }
        match approle {
            Some(approle) => self.login(approle, state).await,
            None => {
                state.due = None;
                Ok(())
            }
        }
    }

    /// An AppRole login; the secret id is read from its file each time, so it can be rotated.
    async fn login(
        &self,
        approle: &AppRoleConfig,
        state: &mut TokenState,
    ) -> Result<(), UpstreamError> {
        let secret_id = read_token(&approle.secret_id_file, "approle.secret_id_file")?;
        let mount = approle.mount.trim_matches('/');
        let login_path = format!("auth/{mount}/login");
        let unauthenticated = client_with(&self.settings, "")?;
        let auth = vaultrs::auth::approle::login(
            &unauthenticated,
            mount,
            approle.role_id.trim(),
            &secret_id,
        )
        .await
        .map_err(|e| {
            let sensitive: [&[u8]; 1] = [secret_id.as_bytes()];
            let call = Call {
                sensitive: &sensitive,
                ..self.call(&login_path, "log in at", "")
            };
            match call.error(e) {
                e if e.is_transient() => e,
                UpstreamError::MountMissing { .. } => UpstreamError::Login {
                    endpoint: self.endpoint.clone(),
                    reason: format!(
                        "no AppRole auth method is enabled at `auth/{mount}`: enable it (`bao auth enable approle`) or fix `approle.mount`"
                    ),
                },
                UpstreamError::Rejected { status, message, .. } => UpstreamError::Login {
                    endpoint: self.endpoint.clone(),
                    reason: format!(
                        "AppRole login at `{login_path}` was refused (HTTP {status}{message}): check `approle.role_id` and the secret id in `approle.secret_id_file` (it may have expired or used up its uses)"
                    ),
                },
                UpstreamError::PermissionDenied { .. } | UpstreamError::NotFound { .. } => {
                    UpstreamError::Login {
                        endpoint: self.endpoint.clone(),
                        reason: format!(
                            "AppRole login at `{login_path}` was refused: check `approle.role_id`, the secret id in `approle.secret_id_file` and `approle.mount`"
                        ),
                    }
                }
                other => other,
            }
        })?;
        check_token_text(&auth.client_token, "the login's token")?;
        state.client = Arc::new(client_with(&self.settings, &auth.client_token)?);
        state.accessor = auth.accessor;
        state.granted = Duration::from_secs(auth.lease_duration);
        state.renewable = auth.renewable;
        state.due = due_after(state.granted);
        self.logins.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Checks a given token with lookup-self and learns its TTL.
    async fn adopt_token(&self, token: &str, state: &mut TokenState) -> Result<(), UpstreamError> {
        let client = client_with(&self.settings, token)?;
        let info = vaultrs::token::lookup_self(&client).await.map_err(|e| {
            match self
                .call("auth/token/lookup-self", "look up", "")
                .error(e)
            {
                e if e.is_transient() => e,
                UpstreamError::PermissionDenied { .. } => UpstreamError::Login {
                    endpoint: self.endpoint.clone(),
                    reason: "the token was refused (permission denied): it is invalid, expired or revoked, or lacks the `default` policy (which allows auth/token/lookup-self); give a valid token in `token_file` or `token_env`".to_owned(),
                },
                other => other,
            }
        })?;
        state.client = Arc::new(client);
        state.accessor = info.accessor;
        state.granted = Duration::from_secs(info.ttl);
        state.renewable = info.renewable.unwrap_or(false);
        state.due = if state.renewable {
            due_after(state.granted)
        } else {
            None
        };
        Ok(())
    }
}

/// Client settings from the config, with every field set so no `VAULT_*`
/// environment variable changes them behind the config's back.
fn base_settings(config: &VaultConfig) -> Result<VaultClientSettings, UpstreamError> {
    let mut ca_certs = Vec::new();
    if let Some(ca) = &config.ca_file {
        let pem = std::fs::read(ca).map_err(|e| UpstreamError::Config {
            field: "ca_file",
            problem: format!("cannot be read ({}): {e}", ca.display()),
        })?;
        if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(UpstreamError::Config {
                field: "ca_file",
                problem: format!(
                    "({}) holds no PEM certificate: give the CA certificate(s) in PEM form",
                    ca.display()
                ),
            });
        }
        ca_certs.push(ca.display().to_string());
    }
    VaultClientSettingsBuilder::default()
        .address(config.endpoint())
        .ca_certs(ca_certs)
        .identity(None)
        .timeout(Some(config.timeout()))
        .token("")
        .verify(true)
        .namespace(
            config
                .namespace
                .as_ref()
                .map(|ns| ns.trim_matches('/').to_owned()),
        )
        .build()
        .map_err(|e| UpstreamError::Config {
            field: "address",
            problem: format!("is not usable: {e}"),
        })
}

/// A client sending `token` (none when empty).
fn client_with(settings: &VaultClientSettings, token: &str) -> Result<VaultClient, UpstreamError> {
    let mut settings = settings.clone();
    settings.token = token.to_owned();
    // Only the CA file can fail here, and base_settings read it already.
    VaultClient::new(settings).map_err(|_| UpstreamError::Config {
        field: "ca_file",
        problem:
            "holds no certificate the TLS library accepts: give the CA certificate(s) in PEM form"
                .to_owned(),
    })
}

/// Reads a token or secret id from a file, trimmed.
fn read_token(path: &Path, field: &'static str) -> Result<Zeroizing<String>, UpstreamError> {
    let text = crate::security::read_private_text(path, "token file").map_err(|e| {
        UpstreamError::Config {
            field,
            problem: format!("cannot be used: {e}"),
        }
    })?;
    let trimmed = Zeroizing::new(text.trim().to_owned());
    check_token_text(&trimmed, field)?;
    Ok(trimmed)
}

/// A token goes into an HTTP header: it must be non-empty visible ASCII.
fn check_token_text(token: &str, what: &'static str) -> Result<(), UpstreamError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UpstreamError::Config {
            field: what,
            problem: "is empty or holds characters a token cannot have (it must be one line of visible ASCII)".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_token_file_open_to_group_or_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.token");
        std::fs::write(&path, "hvs.secret-token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_token(&path, "token_file").unwrap().as_str(),
            "hvs.secret-token"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token(&path, "token_file").unwrap_err().to_string();
        assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        assert!(!e.contains("hvs.secret"), "{e}");
    }
}
