//! The store's operations on a KV v2 engine: marks in `custom_metadata`,
//! check-and-set writes, soft delete and destroy.

use std::collections::HashMap;
use std::sync::Arc;

use sealplane_proto::sealed::SecretValue;
use serde_json::Value;
use vaultrs::api::kv2::requests::{
    ReadSecretRequest, SetSecretMetadataRequestBuilder, SetSecretRequestOptions,
};
use vaultrs::api::kv2::responses::ReadSecretMetadataResponse;
use vaultrs::client::VaultClient;
use vaultrs::kv2;

use super::errors::Call;
use super::{MANAGED_BY, META_MANAGED_BY, META_REQUEST_ID, META_URI, VaultStore, kv_data};
use crate::upstream::{UpstreamError, WriteMeta, Written};

/// What the KV v2 metadata says about a secret.
struct Existing {
    managed: bool,
    current: u64,
    /// Whether the current version holds data (not deleted nor destroyed).
    live: bool,
    custom: HashMap<String, String>,
}

impl Existing {
    fn of(md: ReadSecretMetadataResponse) -> Existing {
        let custom = md.custom_metadata.unwrap_or_default();
        let live = md.current_version > 0
            && md
                .versions
                .get(&md.current_version.to_string())
                .is_some_and(|v| v.deletion_time.is_empty() && !v.destroyed);
        Existing {
            managed: custom.get(META_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY),
            current: md.current_version,
            live,
            custom,
        }
    }
}

impl VaultStore {
    /// The secret's metadata, `None` when there is none.
    async fn v2_existing(
        &self,
        client: &VaultClient,
        path: &str,
        call: &Call<'_>,
    ) -> Result<Option<Existing>, UpstreamError> {
        match kv2::read_metadata(client, &self.mount, path).await {
            Ok(md) => Ok(Some(Existing::of(md))),
            Err(e) => match call.error(e) {
                UpstreamError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The data of `version`, `None` when it is deleted or destroyed.
    async fn v2_data(
        &self,
        client: &VaultClient,
        path: &str,
        version: u64,
        call: &Call<'_>,
    ) -> Result<Option<Value>, UpstreamError> {
        let endpoint = ReadSecretRequest::builder()
            .mount(self.mount.as_str())
            .path(path)
            .version(Some(version))
            .build()
            .map_err(|_| UpstreamError::Protocol {
                path: path.to_owned(),
                operation: call.operation,
                what: "a read request vaultrs would not build",
            })?;
        match vaultrs::api::exec_with_result(client, endpoint).await {
            Ok(read) if read.data.is_null() => Ok(None),
            Ok(read) => Ok(Some(read.data)),
            Err(e) => match call.error(e) {
                UpstreamError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Writes the custom metadata: the existing entries plus Sealplane's marks.
    async fn v2_mark(
        &self,
        client: &VaultClient,
        path: &str,
        mut custom: HashMap<String, String>,
        meta: &WriteMeta,
        call: &Call<'_>,
    ) -> Result<(), UpstreamError> {
        custom.insert(META_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
        custom.insert(META_URI.to_owned(), meta.uri.clone());
        custom.insert(META_REQUEST_ID.to_owned(), meta.request_id.to_string());
        kv2::set_metadata(
            client,
            &self.mount,
            path,
            Some(SetSecretMetadataRequestBuilder::default().custom_metadata(custom)),
        )
        .await
        .map_err(|e| call.error(e))
    }

    pub(super) async fn v2_put(
        &self,
        client: Arc<VaultClient>,
        path: &str,
        value: &SecretValue,
        meta: &WriteMeta,
    ) -> Result<Written, UpstreamError> {
        let needs = self.needs(path);
        // The value raw, base64 and JSON-escaped: a message may quote any.
        let forms = crate::value_map::sensitive_forms(value);
        let sensitive: Vec<&[u8]> = forms.iter().map(|f| f.as_slice()).collect();
        let call = self.call(path, "write", &needs, &sensitive);
        let existing = self.v2_existing(&client, path, &call).await?;
        let (current, managed, custom) = match existing {
            Some(e) if !e.managed && !meta.adopt => {
                return Err(UpstreamError::NotManaged {
                    path: path.to_owned(),
                });
            }
            Some(e) => {
                if e.live
                    && let Some(data) = self.v2_data(&client, path, e.current, &call).await?
                    && kv_data::decode(path, &data)
                        .is_ok_and(|d| kv_data::same_value(&d.value, value))
                {
                    if !e.managed {
                        self.v2_mark(&client, path, e.custom, meta, &call).await?;
                    }
                    return Ok(Written {
                        version: e.current,
                        upstream_ref: self.upstream_ref(path, e.current),
                        changed: false,
                    });
                }
                (e.current, e.managed, e.custom)
            }
            None => (0, false, HashMap::new()),
        };
        // Marked before the data when not yet marked, so Sealplane's own
        // version is never left unmarked by a crash in between.
        if !managed {
            self.v2_mark(&client, path, custom.clone(), meta, &call)
                .await?;
        }
        let cas = u32::try_from(current).map_err(|_| UpstreamError::Protocol {
            path: path.to_owned(),
            operation: "write",
            what: "a version number beyond check-and-set's range",
        })?;
        let data = kv_data::encode(value, &[]);
        let written = kv2::set_with_options(
            &*client,
            &self.mount,
            path,
            &data.0,
            SetSecretRequestOptions { cas },
        )
        .await
        .map_err(|e| call.error(e))?;
        drop(data);
        if managed {
            self.v2_mark(&client, path, custom, meta, &call).await?;
        }
        Ok(Written {
            version: written.version,
            upstream_ref: self.upstream_ref(path, written.version),
            changed: true,
        })
    }

    pub(super) async fn v2_get(
        &self,
        client: Arc<VaultClient>,
        path: &str,
    ) -> Result<Option<SecretValue>, UpstreamError> {
        let needs = self.needs(path);
        let call = self.call(path, "read", &needs, &[]);
        let Some(existing) = self.v2_existing(&client, path, &call).await? else {
            return Ok(None);
        };
        if !existing.managed {
            return Err(UpstreamError::NotManaged {
                path: path.to_owned(),
            });
        }
        if !existing.live {
            return Ok(None);
        }
        match self.v2_data(&client, path, existing.current, &call).await? {
            Some(data) => Ok(Some(kv_data::decode(path, &data)?.value)),
            None => Ok(None),
        }
    }

    pub(super) async fn v2_delete(
        &self,
        client: Arc<VaultClient>,
        path: &str,
        destroy: bool,
    ) -> Result<(), UpstreamError> {
        let needs = self.needs(path);
        let operation = if destroy { "destroy" } else { "delete" };
        let call = self.call(path, operation, &needs, &[]);
        let existing = self
            .v2_existing(&client, path, &call)
            .await?
            .ok_or_else(|| UpstreamError::NotFound {
                path: path.to_owned(),
            })?;
        if !existing.managed {
            return Err(UpstreamError::NotManaged {
                path: path.to_owned(),
            });
        }
        let result = if destroy {
            kv2::delete_metadata(&*client, &self.mount, path).await
        } else if existing.live {
            kv2::delete_latest(&*client, &self.mount, path).await
        } else {
            Ok(())
        };
        result.map_err(|e| call.error(e))
    }
}
