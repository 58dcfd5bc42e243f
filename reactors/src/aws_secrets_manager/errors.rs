//! AWS SDK errors turned into [`UpstreamError`]s a user can act on.
//!
//! An `SdkError` is never formatted into the result: its `Debug` holds the
//! raw HTTP response. What survives is the HTTP status, the AWS error code,
//! AWS's error message and the transport's error chain; the message and the
//! chain are withheld when they contain any of the call's sensitive strings
//! (the value being written, raw and as stored in the JSON). AWS does not
//! echo `SecretString` in its messages, nor does moto; the check is a net.

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use zeroize::Zeroizing;

use crate::upstream::{UpstreamError, no_answer, store_message};

/// AWS error codes that mean the request's credentials were refused.
const CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "MissingAuthenticationToken",
];

/// AWS error codes that ask the caller to slow down.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// What a failed call was doing, to name it in the error.
pub struct Call<'a> {
    /// The endpoint requests go to.
    pub endpoint: &'a str,
    /// The AWS secret name (prefix + path).
    pub name: &'a str,
    /// What was being done: `read`, `write`, `delete`, `destroy`, …
    pub operation: &'static str,
    /// The IAM permissions the store needs, for a permission error.
    pub needs: &'a str,
    /// Strings no error text may contain.
    pub sensitive: &'a [Zeroizing<String>],
}

impl Call<'_> {
    /// `text` cut short, or a note that it was withheld because it might quote the value.
    fn safe(&self, text: &str) -> String {
        store_message(text, self.sensitive.iter().map(|s| s.as_bytes()))
            .unwrap_or_else(|| "(withheld: it might quote the value)".to_owned())
    }

    /// Maps an SDK error; it is dropped here, unformatted.
    pub fn error<E>(&self, e: SdkError<E, HttpResponse>) -> UpstreamError
    where
        E: ProvideErrorMetadata,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        match &e {
            SdkError::ServiceError(_) => self.answer(status.unwrap_or(400), e.code(), e.message()),
            SdkError::ResponseError(_) => match status {
                Some(s) if s == 429 || s >= 500 || s == 403 => self.answer(s, None, None),
                _ => UpstreamError::Protocol {
                    path: self.name.to_owned(),
                    operation: self.operation,
                    what: "a response the AWS SDK could not parse",
                },
            },
            SdkError::TimeoutError(_) => self.transport(true, &[]),
            SdkError::DispatchFailure(failure) => {
                let mut chain = Vec::new();
                let mut next = failure
                    .as_connector_error()
                    .map(|c| c as &dyn std::error::Error);
                while let Some(err) = next {
                    chain.push(err.to_string());
                    next = err.source();
                }
                self.transport(failure.is_timeout(), &chain)
            }
            SdkError::ConstructionFailure(_) => UpstreamError::Config {
                field: "region",
                problem: format!(
                    "and the other store settings (endpoint, access_key_id) did not let the AWS SDK build a request to {} {:?}",
                    self.operation, self.name
                ),
            },
            _ => UpstreamError::Protocol {
                path: self.name.to_owned(),
                operation: self.operation,
                what: "an AWS SDK error of an unknown kind",
            },
        }
    }

    /// The error for an answer with an HTTP status and, when AWS sent one, an error code.
    pub fn answer(&self, status: u16, code: Option<&str>, message: Option<&str>) -> UpstreamError {
        let code = code.unwrap_or("");
        match code {
            "ResourceNotFoundException" => UpstreamError::NotFound {
                path: self.name.to_owned(),
            },
            "ResourceExistsException" => UpstreamError::Conflict {
                path: self.name.to_owned(),
            },
            "AccessDeniedException" | "AccessDenied" => self.denied(),
            c if CREDENTIAL_CODES.contains(&c) => UpstreamError::Login {
                endpoint: self.endpoint.to_owned(),
                reason: format!(
                    "AWS refused the credentials ({c}); check `access_key_id` and the secret access key in `secret_access_key_file`/`secret_access_key_env`, and that the key is active"
                ),
            },
            c if THROTTLING_CODES.contains(&c) => UpstreamError::Unavailable {
                endpoint: self.endpoint.to_owned(),
                reason: format!("AWS is throttling the reactor's requests ({c})"),
            },
            "" if status == 403 => self.denied(),
            _ => {
                let mut text = String::new();
                if !code.is_empty() {
                    text = format!(": {code}");
                }
                if let Some(message) = message.filter(|m| !m.is_empty()) {
                    text.push_str(": ");
                    text.push_str(&self.safe(message));
                }
                // AWS answers some server-side failures with a 4xx status and a code.
                let status = match code {
                    "InternalServiceError" | "InternalFailure" | "ServiceUnavailable" => {
                        status.max(500)
                    }
                    _ => status,
                };
                UpstreamError::Rejected {
                    path: self.name.to_owned(),
                    operation: self.operation,
                    status,
                    message: text,
                }
            }
        }
    }

    fn denied(&self) -> UpstreamError {
        UpstreamError::PermissionDenied {
            path: self.name.to_owned(),
            operation: self.operation,
            hint: self.needs.to_owned(),
        }
    }

    /// A request that got no answer: unreachable, timed out, or a failed TLS handshake.
    fn transport(&self, timeout: bool, chain: &[String]) -> UpstreamError {
        let reason = match chain.last() {
            _ if timeout => "no answer within `request_timeout_seconds`".to_owned(),
            Some(innermost) => self.safe(innermost),
            None => "no answer".to_owned(),
        };
        no_answer(self.endpoint, reason, chain)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_secretsmanager::error::ConnectorError;
    use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretError;

    use super::*;

    const MARKER: &str = "s3cr3t-MARKER-0f9e8d7c";

    fn call(sensitive: &[Zeroizing<String>]) -> Call<'_> {
        Call {
            endpoint: "http://127.0.0.1:5000",
            name: "app/db",
            operation: "write",
            needs: "secretsmanager:PutSecretValue",
            sensitive,
        }
    }

    /// Both renderings of `e`, checked for the marker.
    fn shown(e: &UpstreamError) -> String {
        let text = format!("{e} | {e:?}");
        assert!(!text.contains(MARKER), "leaks the value: {text}");
        text
    }

    #[test]
    fn codes_map_to_actionable_errors() {
        let c = call(&[]);
        // (status, code, the variant's name in `Debug`, transient)
        let cases = [
            (400, "ResourceNotFoundException", "NotFound", false),
            (400, "ResourceExistsException", "Conflict", false),
            (400, "AccessDeniedException", "PermissionDenied", false),
            (400, "UnrecognizedClientException", "Login", false),
            (400, "InvalidSignatureException", "Login", false),
            (400, "ThrottlingException", "Unavailable", true),
            (
                500,
                "InternalServiceError",
                "Rejected { path: \"app/db\", operation: \"write\", status: 500",
                true,
            ),
            (400, "InternalServiceError", "status: 500", true),
            (400, "InvalidRequestException", "status: 400", false),
        ];
        for (status, code, variant, transient) in cases {
            let e = c.answer(status, Some(code), Some("words"));
            let text = shown(&e);
            assert!(text.contains(variant), "{code}: {text}");
            assert_eq!(e.is_transient(), transient, "{code}: {text}");
        }
        let e = c.answer(400, Some("InvalidParameterException"), Some("bad name"));
        assert!(
            e.to_string()
                .contains("HTTP 400: InvalidParameterException: bad name"),
            "{e}"
        );
        // No code (an HTML error page): the status decides.
        assert!(matches!(
            c.answer(403, None, None),
            UpstreamError::PermissionDenied { .. }
        ));
        assert!(c.answer(502, None, None).is_transient());
    }

    #[test]
    fn a_message_quoting_the_value_is_withheld() {
        let sensitive = [Zeroizing::new(MARKER.to_owned())];
        let c = call(&sensitive);
        let e = c.answer(
            400,
            Some("InvalidParameterException"),
            Some(&format!("value {{\"password\":\"{MARKER}\"}} is bad")),
        );
        assert!(shown(&e).contains("withheld"));
        let e = c.transport(false, &[format!("connection reset near {MARKER}")]);
        assert!(shown(&e).contains("withheld"));
    }

    #[test]
    fn sdk_errors_are_mapped_without_being_formatted() {
        let sensitive = [Zeroizing::new(MARKER.to_owned())];
        let c = call(&sensitive);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = c.error(
            SdkError::<DescribeSecretError, HttpResponse>::dispatch_failure(ConnectorError::io(
                io.into(),
            )),
        );
        assert!(matches!(e, UpstreamError::Unavailable { .. }), "{e}");
        assert!(shown(&e).contains("connection refused"));
        let e = c.error(
            SdkError::<DescribeSecretError, HttpResponse>::timeout_error(format!(
                "timed out writing {MARKER}"
            )),
        );
        assert!(matches!(e, UpstreamError::Unavailable { .. }), "{e}");
        assert!(shown(&e).contains("request_timeout_seconds"));
        let e = c.error(
            SdkError::<DescribeSecretError, HttpResponse>::dispatch_failure(ConnectorError::other(
                format!("invalid peer certificate: UnknownIssuer {MARKER}").into(),
                None,
            )),
        );
        assert!(matches!(e, UpstreamError::Tls { .. }), "{e}");
        shown(&e);
        let e = c.error(
            SdkError::<DescribeSecretError, HttpResponse>::construction_failure(format!(
                "no credentials {MARKER}"
            )),
        );
        assert!(matches!(e, UpstreamError::Config { .. }), "{e}");
        shown(&e);
    }
}
