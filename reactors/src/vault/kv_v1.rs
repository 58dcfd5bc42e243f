//! The store's operations on a KV v1 engine: marks as reserved keys in the
//! data map, Sealplane's own version counter, no check-and-set.

use std::sync::Arc;

use sealplane_proto::sealed::SecretValue;
use serde_json::Value;
use vaultrs::client::VaultClient;
use vaultrs::kv1;

use super::errors::Call;
use super::kv_data::{self, V1_MANAGED_BY, V1_REQUEST_ID, V1_URI, V1_VERSION};
use super::{MANAGED_BY, VaultStore};
use crate::upstream::{UpstreamError, WriteMeta, Written};

impl VaultStore {
    /// The secret's data map, `None` when absent.
    async fn v1_read(
        &self,
        client: &VaultClient,
        path: &str,
        call: &Call<'_>,
    ) -> Result<Option<Value>, UpstreamError> {
        match kv1::get_raw(client, &self.mount, path).await {
            Ok(read) => Ok(Some(read.data)),
            Err(e) => match call.error(e) {
                UpstreamError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    pub(super) async fn v1_put(
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
        let mut version = 0;
        if let Some(data) = self.v1_read(&client, path, &call).await? {
            let reserved = kv_data::reserved_of(&data);
            let managed = reserved.get(V1_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY);
            if !managed && !meta.adopt {
                return Err(UpstreamError::NotManaged {
                    path: path.to_owned(),
                });
            }
            if managed {
                version = reserved
                    .get(V1_VERSION)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if kv_data::decode(path, &data).is_ok_and(|d| kv_data::same_value(&d.value, value))
                {
                    return Ok(Written {
                        version,
                        upstream_ref: self.upstream_ref(path, version),
                        changed: false,
                    });
                }
            }
        }
        let version = version + 1;
        let data = kv_data::encode(
            value,
            &[
                (V1_MANAGED_BY, MANAGED_BY.to_owned()),
                (V1_URI, meta.uri.clone()),
                (V1_REQUEST_ID, meta.request_id.to_string()),
                (V1_VERSION, version.to_string()),
            ],
        );
        kv1::set(&*client, &self.mount, path, &data.as_str_map())
            .await
            .map_err(|e| call.error(e))?;
        Ok(Written {
            version,
            upstream_ref: self.upstream_ref(path, version),
            changed: true,
        })
    }

    pub(super) async fn v1_get(
        &self,
        client: Arc<VaultClient>,
        path: &str,
    ) -> Result<Option<SecretValue>, UpstreamError> {
        let needs = self.needs(path);
        let call = self.call(path, "read", &needs, &[]);
        let Some(data) = self.v1_read(&client, path, &call).await? else {
            return Ok(None);
        };
        if kv_data::reserved_of(&data)
            .get(V1_MANAGED_BY)
            .map(String::as_str)
            != Some(MANAGED_BY)
        {
            return Err(UpstreamError::NotManaged {
                path: path.to_owned(),
            });
        }
        Ok(Some(kv_data::decode(path, &data)?.value))
    }

    pub(super) async fn v1_delete(
        &self,
        client: Arc<VaultClient>,
        path: &str,
        destroy: bool,
    ) -> Result<(), UpstreamError> {
        let needs = self.needs(path);
        let operation = if destroy { "destroy" } else { "delete" };
        let call = self.call(path, operation, &needs, &[]);
        let data =
            self.v1_read(&client, path, &call)
                .await?
                .ok_or_else(|| UpstreamError::NotFound {
                    path: path.to_owned(),
                })?;
        if kv_data::reserved_of(&data)
            .get(V1_MANAGED_BY)
            .map(String::as_str)
            != Some(MANAGED_BY)
        {
            return Err(UpstreamError::NotManaged {
                path: path.to_owned(),
            });
        }
        kv1::delete(&*client, &self.mount, path)
            .await
            .map_err(|e| call.error(e))
    }
}
