//! The `aws-secrets-manager` store (SPEC §5): AWS Secrets Manager through
//! the official AWS SDK for Rust, or an emulator (moto, LocalStack) at a
//! configured endpoint. HTTPS is rustls with ring (the tree's one TLS
//! provider); credentials are static, from the store's config.
//!
//! Names: a secret's name is the store's `name_prefix` followed by the
//! Sealplane path. Sealplane paths (`/`-separated `[A-Za-z0-9._-]` segments)
//! use only characters AWS allows in names (`[A-Za-z0-9/_+=.@-]`); a name
//! over AWS's 512 characters is refused as [`UpstreamError::InvalidPath`].
//!
//! Values: the `SecretString` is a JSON object of key → string; bytes that
//! are not UTF-8 are base64, their keys listed under the reserved JSON key
//! `sealplane:base64-keys` (see `secret_string`).
//!
//! Management: tags `managed-by=sealplane`, `sealplane-uri`,
//! `sealplane-request-id` (of the last upload that wrote a version) and
//! `sealplane-version`. A secret without `managed-by=sealplane` is refused
//! ([`UpstreamError::NotManaged`]) unless the write says `adopt`; then it is
//! tagged first and a new version is written. A new secret gets its tags in
//! the same `CreateSecret` request as its first version. The uri tag is left
//! out when the uri is longer than AWS's 256-character tag values.
//!
//! Versions: AWS names versions by id, Sealplane numbers them. Each version
//! Sealplane writes has the id (client request token)
//! `sealplane-<n>-<request id>`, so its number is stored atomically with it;
//! the next number is one more than the highest of the `sealplane-version`
//! tag and the numbers in the version ids AWS lists for the secret (the tag
//! carries the count over versions written by others, which get no number).
//! A request retried after its write succeeded finds its own version
//! current and reports it as written (`changed: true`) without writing again.
//! AWS has no check-and-set: two writers of one path at the same time both
//! succeed, and the later version is current.
//!
//! Unchanged writes: when the current version is one Sealplane wrote and
//! holds the same value (compared in memory by SHA-256 digest, in constant
//! time, never logged), nothing is written and its number is returned. When
//! the current version was written by someone else (adoption, an edit in the
//! console), a new version is written even for an equal value, so that the
//! number Sealplane reports names a version it wrote.
//!
//! Delete: soft delete schedules deletion after `recovery_window_days`
//! (`DeleteSecret` with a recovery window); destroy deletes at once without
//! recovery. Both refuse a secret Sealplane does not manage. A secret
//! scheduled for deletion reads as absent (`get` → `None`); a `put` to it
//! restores it (`RestoreSecret`, its history kept) and writes a new version,
//! like a write after a soft delete in Vault KV v2. A plain `CreateSecret`
//! could not take the name anyway: AWS keeps it until the deletion is done.
//!
//! Retries: the SDK's own retries are off; the reactor's
//! [`crate::upstream::retry`] is the one retry policy.
//!
//! Plaintext: no error carries value bytes (see `errors`). Sealplane zeroizes
//! its own copies of a value; the SDK (request and response strings, HTTP
//! buffers) frees its copies without zeroizing them. The SDK marks
//! `SecretString` as sensitive, so its `Debug` output and logs redact it.

mod config;
mod errors;
mod secret_string;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::types::Tag;
use aws_smithy_http_client::tls;
use sealplane_proto::sealed::SecretValue;
use zeroize::Zeroizing;

pub use self::config::{AwsSecretsManagerConfig, MAX_NAME_LEN};
use self::errors::Call;
pub use self::secret_string::{BASE64_KEYS, parse_version_id, version_id};
use crate::upstream::{UpstreamError, UpstreamStore, WriteMeta, Written};
use crate::vault::validate_path;

/// The `managed-by` tag's value.
pub const MANAGED_BY: &str = "sealplane";
/// The tag marking a secret as Sealplane's.
pub const TAG_MANAGED_BY: &str = "managed-by";
/// The tag holding the uri of the last upload that wrote a version.
pub const TAG_URI: &str = "sealplane-uri";
/// The tag holding the request id of the last upload that wrote a version.
pub const TAG_REQUEST_ID: &str = "sealplane-request-id";
/// The tag holding Sealplane's highest version number for the secret.
pub const TAG_VERSION: &str = "sealplane-version";

/// The longest tag value AWS accepts, in characters.
const MAX_TAG_VALUE_LEN: usize = 256;

/// The staging label of a secret's current version.
const AWSCURRENT: &str = "AWSCURRENT";

/// An AWS Secrets Manager store.
pub struct AwsSecretsManagerStore {
    client: Client,
    endpoint: String,
    region: String,
    name_prefix: String,
    recovery_window_days: i64,
}

impl std::fmt::Debug for AwsSecretsManagerStore {
    // Not derived: the SDK client's config holds the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSecretsManagerStore")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("name_prefix", &self.name_prefix)
            .finish_non_exhaustive()
    }
}

/// What `DescribeSecret` says about a secret.
struct Existing {
    arn: String,
    managed: bool,
    /// Scheduled for deletion.
    deleted: bool,
    /// The id of the version labelled `AWSCURRENT`.
    current: Option<String>,
    /// Sealplane's highest version number for the secret (0: none yet).
    counter: u64,
}

impl AwsSecretsManagerStore {
    /// Builds the SDK client from the config and checks that the store
    /// answers with these credentials (`ListSecrets`, one result).
    pub async fn connect(
        config: &AwsSecretsManagerConfig,
    ) -> Result<AwsSecretsManagerStore, UpstreamError> {
        config.check()?;
        let secret_key = config.secret_access_key()?;
        let credentials = Credentials::new(
            config.access_key_id.trim(),
            secret_key.as_str(),
            None,
            None,
            "sealplane-reactor-config",
        );
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.timeout())
            .operation_attempt_timeout(config.timeout())
            .build();
        let mut sdk = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .http_client(http)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::disabled());
        if let Some(endpoint) = &config.endpoint {
            sdk = sdk.endpoint_url(endpoint.trim_end_matches('/'));
        }
        let store = AwsSecretsManagerStore {
            client: Client::from_conf(sdk.build()),
            endpoint: config.endpoint_for_messages(),
            region: config.region.clone(),
            name_prefix: config.name_prefix.clone(),
            recovery_window_days: i64::from(config.recovery_window_days),
        };
        let needs = store.needs("");
        let call = store.call("(any secret)", "list secrets in", &needs, &[]);
        store
            .client
            .list_secrets()
            .max_results(1)
            .send()
            .await
            .map_err(|e| call.error(e))?;
        Ok(store)
    }

    /// The AWS secret name of a Sealplane path.
    pub fn secret_name(&self, path: &str) -> Result<String, UpstreamError> {
        // Sealplane's path characters are a subset of AWS's name characters.
        validate_path(path)?;
        let name = format!("{}{path}", self.name_prefix);
        if name.len() > MAX_NAME_LEN {
            return Err(UpstreamError::InvalidPath {
                path: path.to_owned(),
                reason: "with the store's name_prefix it is longer than the 512 characters AWS allows in a secret name",
            });
        }
        Ok(name)
    }

    /// The IAM permissions the store needs on `name` (every secret for ""), for permission errors.
    fn needs(&self, name: &str) -> String {
        format!(
            "IAM actions secretsmanager:DescribeSecret, GetSecretValue, CreateSecret, PutSecretValue, TagResource, RestoreSecret and DeleteSecret on arn:aws:secretsmanager:{}:<account>:secret:{name}*, and secretsmanager:ListSecrets",
            self.region
        )
    }

    fn call<'a>(
        &'a self,
        name: &'a str,
        operation: &'static str,
        needs: &'a str,
        sensitive: &'a [Zeroizing<String>],
    ) -> Call<'a> {
        Call {
            endpoint: &self.endpoint,
            name,
            operation,
            needs,
            sensitive,
        }
    }

    /// The secret's state, `None` when there is no secret of that name.
    async fn describe(&self, call: &Call<'_>) -> Result<Option<Existing>, UpstreamError> {
        let out = match self
            .client
            .describe_secret()
            .secret_id(call.name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match call.error(e) {
                    UpstreamError::NotFound { .. } => Ok(None),
                    other => Err(other),
                };
            }
        };
        let tag = |key: &str| {
            out.tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
        };
        let managed = tag(TAG_MANAGED_BY) == Some(MANAGED_BY);
        let tagged = tag(TAG_VERSION)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let stages = out.version_ids_to_stages();
        let current = stages.and_then(|map| {
            map.iter()
                .find(|(_, labels)| labels.iter().any(|l| l == AWSCURRENT))
                .map(|(id, _)| id.clone())
        });
        let listed = stages
            .into_iter()
            .flat_map(|map| map.keys())
            .filter_map(|id| parse_version_id(id).map(|(n, _)| n))
            .max()
            .unwrap_or(0);
        Ok(Some(Existing {
            arn: out.arn().unwrap_or(call.name).to_owned(),
            managed,
            deleted: out.deleted_date().is_some(),
            current,
            counter: tagged.max(listed),
        }))
    }

    /// The value of version `version_id`; `None` when it holds no `SecretString`
    /// Sealplane can read (so a write replaces it).
    async fn value_of(
        &self,
        version_id: &str,
        call: &Call<'_>,
    ) -> Result<Option<SecretValue>, UpstreamError> {
        let mut out = self
            .client
            .get_secret_value()
            .secret_id(call.name)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| call.error(e))?;
        let Some(text) = out.secret_string.take().map(Zeroizing::new) else {
            return Ok(None);
        };
        Ok(secret_string::decode(call.name, &text).ok())
    }

    /// The tags Sealplane keeps on a secret it manages.
    fn tags(meta: &WriteMeta, version: u64) -> Vec<Tag> {
        let mut pairs = vec![
            (TAG_MANAGED_BY, MANAGED_BY.to_owned()),
            (TAG_REQUEST_ID, meta.request_id.to_string()),
            (TAG_VERSION, version.to_string()),
        ];
        if meta.uri.chars().count() <= MAX_TAG_VALUE_LEN {
            pairs.push((TAG_URI, meta.uri.clone()));
        }
        pairs
            .into_iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect()
    }

    async fn mark(
        &self,
        meta: &WriteMeta,
        version: u64,
        call: &Call<'_>,
    ) -> Result<(), UpstreamError> {
        self.client
            .tag_resource()
            .secret_id(call.name)
            .set_tags(Some(Self::tags(meta, version)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| call.error(e))
    }

    fn upstream_ref(arn: &str, version_id: &str) -> String {
        format!("{arn}?versionId={version_id}")
    }

    async fn create(
        &self,
        value: &str,
        meta: &WriteMeta,
        call: &Call<'_>,
    ) -> Result<Written, UpstreamError> {
        let token = version_id(1, meta.request_id);
        let out = self
            .client
            .create_secret()
            .name(call.name)
            .secret_string(value)
            .client_request_token(&token)
            .set_tags(Some(Self::tags(meta, 1)))
            .send()
            .await
            .map_err(|e| call.error(e))?;
        Ok(Written {
            version: 1,
            upstream_ref: Self::upstream_ref(
                out.arn().unwrap_or(call.name),
                out.version_id().unwrap_or(&token),
            ),
            changed: true,
        })
    }
}

#[async_trait::async_trait]
impl UpstreamStore for AwsSecretsManagerStore {
    async fn probe(&self) -> Result<(), UpstreamError> {
        let needs = self.needs("");
        let call = self.call("(any secret)", "list secrets in", &needs, &[]);
        self.client
            .list_secrets()
            .max_results(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| call.error(e))
    }

    async fn put(
        &self,
        path: &str,
        value: &SecretValue,
        meta: &WriteMeta,
    ) -> Result<Written, UpstreamError> {
        let name = self.secret_name(path)?;
        let (text, sensitive) = secret_string::encode(value);
        let needs = self.needs(&name);
        let call = self.call(&name, "write", &needs, &sensitive);
        let Some(existing) = self.describe(&call).await? else {
            return self.create(&text, meta, &call).await;
        };
        if !existing.managed && !meta.adopt {
            return Err(UpstreamError::NotManaged { path: name });
        }
        if existing.deleted {
            self.client
                .restore_secret()
                .secret_id(&name)
                .send()
                .await
                .map_err(|e| call.error(e))?;
        } else if existing.managed
            && let Some(current) = &existing.current
            && let Some((n, request_id)) = parse_version_id(current)
            && let Some(stored) = self.value_of(current, &call).await?
            && secret_string::same_value(&stored, value)
        {
            let retried = request_id == meta.request_id;
            if retried {
                // This request wrote it before; its tags may not have followed.
                self.mark(meta, existing.counter, &call).await?;
            }
            return Ok(Written {
                version: n,
                upstream_ref: Self::upstream_ref(&existing.arn, current),
                changed: retried,
            });
        }
        // Marked before the data when adopted, so Sealplane's own version is
        // never left on an unmarked secret by a crash in between.
        if !existing.managed {
            self.mark(meta, existing.counter, &call).await?;
        }
        let n = existing.counter + 1;
        let token = version_id(n, meta.request_id);
        let out = self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(text.as_str())
            .client_request_token(&token)
            .send()
            .await
            .map_err(|e| call.error(e))?;
        drop(text);
        self.mark(meta, n, &call).await?;
        Ok(Written {
            version: n,
            upstream_ref: Self::upstream_ref(
                out.arn().unwrap_or(&existing.arn),
                out.version_id().unwrap_or(&token),
            ),
            changed: true,
        })
    }

    async fn get(&self, path: &str) -> Result<Option<SecretValue>, UpstreamError> {
        let name = self.secret_name(path)?;
        let needs = self.needs(&name);
        let call = self.call(&name, "read", &needs, &[]);
        let Some(existing) = self.describe(&call).await? else {
            return Ok(None);
        };
        if !existing.managed {
            return Err(UpstreamError::NotManaged { path: name });
        }
        let Some(current) = existing.current.filter(|_| !existing.deleted) else {
            return Ok(None);
        };
        let mut out = match self
            .client
            .get_secret_value()
            .secret_id(&name)
            .version_id(&current)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match call.error(e) {
                    UpstreamError::NotFound { .. } => Ok(None),
                    other => Err(other),
                };
            }
        };
        let Some(text) = out.secret_string.take().map(Zeroizing::new) else {
            return Err(UpstreamError::Unreadable {
                path: name,
                reason: "its current version holds SecretBinary, not a SecretString".to_owned(),
            });
        };
        secret_string::decode(&name, &text).map(Some)
    }

    async fn delete(&self, path: &str, destroy: bool) -> Result<(), UpstreamError> {
        let name = self.secret_name(path)?;
        let needs = self.needs(&name);
        let operation = if destroy { "destroy" } else { "delete" };
        let call = self.call(&name, operation, &needs, &[]);
        let existing = self
            .describe(&call)
            .await?
            .ok_or_else(|| UpstreamError::NotFound { path: name.clone() })?;
        if !existing.managed {
            return Err(UpstreamError::NotManaged { path: name });
        }
        if existing.deleted && !destroy {
            return Ok(());
        }
        let request = self.client.delete_secret().secret_id(&name);
        let request = if destroy {
            request.force_delete_without_recovery(true)
        } else {
            request.recovery_window_in_days(self.recovery_window_days)
        };
        request.send().await.map(|_| ()).map_err(|e| call.error(e))
    }
}
