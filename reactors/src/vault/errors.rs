//! vaultrs errors turned into [`UpstreamError`]s a user can act on.
//!
//! vaultrs errors are never formatted into the result: some of them carry a
//! response body (a read response holds values). Only the HTTP status,
//! Vault's own `errors` strings and the transport's error chain survive, and
//! those are withheld too when they contain any of the call's sensitive byte
//! strings (the value being written, raw, base64 and JSON-escaped as
//! [`crate::value_map::sensitive_forms`] gives them; a secret id).

use vaultrs::error::ClientError;
use zeroize::Zeroizing;

use crate::upstream::{UpstreamError, no_answer, store_message};

/// What a failed call was doing, to name it in the error.
pub struct Call<'a> {
    /// The server's address.
    pub endpoint: &'a str,
    /// The KV mount.
    pub mount: &'a str,
    /// The secret path (or an API path for token and login calls).
    pub path: &'a str,
    /// What was being done: `read`, `write`, `delete`, `destroy`, …
    pub operation: &'static str,
    /// The policy capabilities the call needs, for a permission error.
    pub needs: &'a str,
    /// Byte strings no error text may contain.
    pub sensitive: &'a [&'a [u8]],
}

impl Call<'_> {
    /// The store's messages, or nothing when they might quote a sensitive string.
    fn message(&self, errors: &[String]) -> String {
        let text = errors.join("; ");
        if text.is_empty() {
            return String::new();
        }
        match store_message(&text, self.sensitive.iter().copied()) {
            Some(short) => format!(": {short}"),
            None => ": (the store's message is withheld: it might quote the value)".to_owned(),
        }
    }

    /// The error for an HTTP error status with Vault's `errors` strings.
    pub fn status(&self, status: u16, errors: &[String]) -> UpstreamError {
        let lower = errors.join("; ").to_lowercase();
        match status {
            503 if lower.contains("sealed") => UpstreamError::Sealed {
                endpoint: self.endpoint.to_owned(),
            },
            403 => UpstreamError::PermissionDenied {
                path: self.path.to_owned(),
                operation: self.operation,
                hint: self.needs.to_owned(),
            },
            404 if lower.contains("no handler for route") => UpstreamError::MountMissing {
                mount: self.mount.to_owned(),
            },
            400 if lower.contains("check-and-set") => UpstreamError::Conflict {
                path: self.path.to_owned(),
            },
            404 => UpstreamError::NotFound {
                path: self.path.to_owned(),
            },
            _ => UpstreamError::Rejected {
                path: self.path.to_owned(),
                operation: self.operation,
                status,
                message: self.message(errors),
            },
        }
    }

    /// Maps a vaultrs error; it is dropped here, unformatted.
    pub fn error(&self, e: ClientError) -> UpstreamError {
        let protocol = |what| UpstreamError::Protocol {
            path: self.path.to_owned(),
            operation: self.operation,
            what,
        };
        match e {
            ClientError::APIError { code, errors } => self.status(code, &errors),
            ClientError::RestClientError { source } => {
                match source.to_string().as_str() {
                    // An error status whose body is not Vault's `{"errors": [...]}`
                    // (a proxy's page, or a 404 that carries data): the status is
                    // only in the variant's fields, which this crate cannot name.
                    "Server returned error" => {
                        let debug = Zeroizing::new(format!("{source:?}"));
                        match debug
                            .strip_prefix("ServerResponseError { code: ")
                            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                            .and_then(|digits| digits.parse().ok())
                        {
                            Some(status) => self.status(status, &[]),
                            None => protocol("an error status without a readable code"),
                        }
                    }
                    "Error sending HTTP request" | "Error retrieving HTTP response" => {
                        self.transport(&source)
                    }
                    _ => protocol("a body that is not the expected JSON"),
                }
            }
            ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => {
                protocol("an empty response")
            }
            ClientError::JsonParseError { .. } => protocol("JSON of an unexpected shape"),
            _ => protocol("an unexpected client error"),
        }
    }

    /// A request that got no answer: unreachable, timed out, or a failed TLS handshake.
    fn transport(&self, top: &dyn std::error::Error) -> UpstreamError {
        let mut chain = Vec::new();
        let mut next = top.source();
        while let Some(e) = next {
            chain.push(e.to_string());
            next = e.source();
        }
        let innermost = chain
            .last()
            .cloned()
            .unwrap_or_else(|| "no answer".to_owned());
        let reason = self.message(std::slice::from_ref(&innermost));
        let reason = reason.strip_prefix(": ").unwrap_or(&reason).to_owned();
        no_answer(self.endpoint, reason, &chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(sensitive: &'a [&'a [u8]]) -> Call<'a> {
        Call {
            endpoint: "http://vault:8200",
            mount: "kv",
            path: "app/db",
            operation: "write",
            needs: "create on kv/data/app/db",
            sensitive,
        }
    }

    fn errors(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn statuses_map_to_actionable_errors() {
        let c = call(&[]);
        assert!(matches!(
            c.status(503, &errors(&["Vault is sealed"])),
            UpstreamError::Sealed { .. }
        ));
        assert!(matches!(
            c.status(403, &errors(&["permission denied"])),
            UpstreamError::PermissionDenied { .. }
        ));
        assert!(matches!(
            c.status(
                404,
                &errors(&["no handler for route \"kv/data/x\". route entry not found."])
            ),
            UpstreamError::MountMissing { .. }
        ));
        assert!(matches!(
            c.status(
                400,
                &errors(&["check-and-set parameter did not match the current version"])
            ),
            UpstreamError::Conflict { .. }
        ));
        assert!(matches!(c.status(404, &[]), UpstreamError::NotFound { .. }));
        let e = c.status(500, &errors(&["internal error"]));
        assert!(e.is_transient());
        assert!(e.to_string().contains("HTTP 500: internal error"), "{e}");
        assert!(!c.status(400, &errors(&["bad request"])).is_transient());
    }

    #[test]
    fn a_message_quoting_a_sensitive_string_is_withheld() {
        let secret: &[u8] = b"hunter2-marker";
        let sensitive = [secret];
        let e = call(&sensitive).status(400, &errors(&["invalid value \"hunter2-marker\""]));
        let text = format!("{e} {e:?}");
        assert!(!text.contains("hunter2-marker"), "{text}");
        assert!(text.contains("withheld"), "{text}");
    }

    #[test]
    fn a_message_quoting_the_value_in_base64_or_json_escaped_is_withheld() {
        use base64::Engine as _;
        let mut value = sealplane_proto::sealed::SecretValue::new();
        value
            .insert("bin", vec![0xff, 0xfe, b'h', b'u', b'n', b't', b'e', b'r'])
            .unwrap();
        value
            .insert("text", b"say \"hunter2\"\nnow".to_vec())
            .unwrap();
        // What kv_v1 and kv_v2 pass as the call's sensitive strings.
        let forms = crate::value_map::sensitive_forms(&value);
        let sensitive: Vec<&[u8]> = forms.iter().map(|f| f.as_slice()).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(value.get("bin").unwrap());
        for message in [
            format!("invalid data: {{\"bin\":\"{b64}\"}}"),
            r#"cannot parse {"text":"say \"hunter2\"\nnow"}"#.to_owned(),
        ] {
            let e = call(&sensitive).status(400, std::slice::from_ref(&message));
            let text = format!("{e} {e:?}");
            assert!(text.contains("withheld"), "{message} -> {text}");
            assert!(!text.contains(&b64) && !text.contains("hunter2"), "{text}");
        }
        // A message quoting none of them is shown.
        let e = call(&sensitive).status(400, &errors(&["bad request"]));
        assert!(e.to_string().contains("bad request"), "{e}");
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(1000);
        let e = call(&[]).status(400, &[long]);
        assert!(e.to_string().len() < 500);
        assert!(e.to_string().ends_with('…'));
    }
}
