//! From domain outcomes to gRPC: precise status codes and a sentence a
//! person can act on, and from wire options to command envelopes.

use sealplane_proto::v1;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::application::UseCaseError;
use crate::command::{CommandEnvelope, CommandError, Executed};
use crate::domain::{Refusal, RefusalKind};

/// The gRPC code of a refusal.
pub fn code_of(kind: RefusalKind) -> Code {
    match kind {
        RefusalKind::Denied => Code::PermissionDenied,
        RefusalKind::NotFound => Code::NotFound,
        RefusalKind::AlreadyExists => Code::AlreadyExists,
        RefusalKind::FailedPrecondition => Code::FailedPrecondition,
        RefusalKind::Invalid => Code::InvalidArgument,
        RefusalKind::Exhausted => Code::ResourceExhausted,
    }
}

impl From<UseCaseError> for Status {
    fn from(error: UseCaseError) -> Status {
        let message = error.to_string();
        match error {
            UseCaseError::Refused { kind, .. } => Status::new(code_of(kind), message),
            UseCaseError::Aborted(_) => Status::aborted(message),
            UseCaseError::Unavailable => Status::unavailable(message),
            UseCaseError::Internal => Status::internal(message),
        }
    }
}

/// The status for a failed command. Store failures are reported without
/// their internals (paths, SQL), which go to the server log instead.
pub fn status_of<R: Refusal>(error: CommandError<R>) -> Status {
    UseCaseError::from(error).into()
}

/// The reply for a command that took effect (or already had).
pub fn reply_of(done: &Executed) -> v1::CommandReply {
    v1::CommandReply {
        events: done.events as u32,
        position: done.position.map(|p| p.0).unwrap_or(0),
    }
}

/// Builds the envelope of a command from its wire options.
pub fn envelope_of(
    options: Option<&v1::CommandOptions>,
    name: &'static str,
) -> Result<CommandEnvelope, Status> {
    let mut envelope = CommandEnvelope::new(name);
    if let Some(o) = options {
        if !o.command_id.is_empty() {
            envelope.command_id = parse_uuid(&o.command_id, "options.command_id")?;
        }
        if !o.correlation_id.is_empty() {
            envelope.correlation_id = parse_uuid(&o.correlation_id, "options.correlation_id")?;
        }
    }
    Ok(envelope)
}

/// The status for input that failed to parse; the parse error already says
/// what is allowed.
pub fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

/// Parses a UUID field, naming it in the error.
pub fn parse_uuid(text: &str, field: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(text)
        .map_err(|_| Status::invalid_argument(format!("{field} `{text}` is not a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, thiserror::Error)]
    #[error("store `x` is disabled; an admin can enable it with `sealctl enable store x`")]
    struct Disabled;

    impl Refusal for Disabled {
        fn kind(&self) -> RefusalKind {
            RefusalKind::FailedPrecondition
        }
    }

    #[test]
    fn refusals_map_to_precise_codes_with_their_sentence() {
        let s = status_of(CommandError::Refused(Disabled));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(s.message().contains("sealctl enable store x"));
        assert_eq!(code_of(RefusalKind::Denied), Code::PermissionDenied);
        assert_eq!(code_of(RefusalKind::Invalid), Code::InvalidArgument);
        assert_eq!(code_of(RefusalKind::NotFound), Code::NotFound);
        assert_eq!(code_of(RefusalKind::AlreadyExists), Code::AlreadyExists);
    }

    #[test]
    fn store_failures_do_not_leak_internals() {
        let e = CommandError::<Disabled>::Store(sealplane_event_store::StoreError::InUse {
            path: "/secret/place/events.db".into(),
        });
        let s = status_of(e);
        assert_eq!(s.code(), Code::Unavailable);
        assert!(!s.message().contains("/secret/place"), "{}", s.message());
    }

    #[test]
    fn command_options_become_envelopes() {
        let id = Uuid::new_v4();
        let o = v1::CommandOptions {
            command_id: id.to_string(),
            correlation_id: String::new(),
        };
        assert_eq!(envelope_of(Some(&o), "X").unwrap().command_id, id);
        let bad = v1::CommandOptions {
            command_id: "nope".into(),
            correlation_id: String::new(),
        };
        let err = envelope_of(Some(&bad), "X").unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message()
                .contains("options.command_id `nope` is not a UUID")
        );
        assert_ne!(envelope_of(None, "X").unwrap().command_id, Uuid::nil());
    }
}
