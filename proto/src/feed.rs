//! The reactor feed (`Reactor.Subscribe`), typed: what the log asks of a
//! reactor's stores. The control plane builds these from its own events,
//! the reactor folds them; both use these types, so a change to one side
//! that the other does not follow fails to compile instead of making the
//! reactor skip work.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::names::SecretUri;
use crate::upload::Purpose;
use crate::v1;
use crate::v1::feed_message::Message;

/// How an upload request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Stored upstream.
    Uploaded,
    /// Compared.
    Verified,
    /// The reactor gave up.
    Failed,
    /// The key expired unused.
    Expired,
    /// A sealed file held the current value.
    Unchanged,
    /// A sealed file was resealed.
    Resealed,
}

/// What the feed tells a reactor about one of its stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEvent {
    /// Step 1: a user asked for a one-time key.
    KeyRequested {
        /// The request.
        request_id: Uuid,
        /// The target; its store is the reactor's.
        uri: SecretUri,
        /// Put (with adopt) or verify.
        purpose: Purpose,
        /// When the key stops being usable.
        expires_at: DateTime<Utc>,
    },
    /// Step 2 done, by this run of the reactor or an earlier one.
    KeyProvided {
        /// The request.
        request_id: Uuid,
    },
    /// Step 4: the sealed box.
    UploadRequested {
        /// The request.
        request_id: Uuid,
        /// The sealed box's bytes.
        ciphertext: Vec<u8>,
    },
    /// The request ended.
    Ended {
        /// The request.
        request_id: Uuid,
        /// How.
        outcome: UploadOutcome,
    },
    /// A deleter asked for the secret to be deleted upstream.
    DeletionRequested {
        /// The secret.
        uri: SecretUri,
        /// Destroy every version rather than soft-delete.
        destroy: bool,
    },
    /// The deletion was carried out.
    Deleted {
        /// The secret.
        uri: SecretUri,
    },
    /// A sealed file to open with a sealing key (SPEC §11).
    SealedSubmitted(SealedSubmission),
    /// An admin asked for a new sealing key for `store`.
    RotationRequested {
        /// The store.
        store: String,
    },
    /// An admin retired a sealing key.
    KeyRetired {
        /// The store.
        store: String,
        /// The key.
        key_id: String,
    },
}

/// A sealed file submitted for a store of the reactor's (SPEC §11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSubmission {
    /// The request (its outcome is reported against it).
    pub request_id: Uuid,
    /// The target.
    pub uri: SecretUri,
    /// The sealing key the file names.
    pub key_id: String,
    /// The sealed box's bytes.
    pub ciphertext: Vec<u8>,
    /// Reseal to the newest sealing key rather than apply.
    pub reseal: bool,
    /// The secret's latest version and keyed hash when submitted.
    pub current: Option<(u64, String)>,
    /// When the control plane stops waiting for the outcome.
    pub expires_at: DateTime<Utc>,
}

/// One message of the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedMessage {
    /// An event of the reactor's stores at `position`.
    Event {
        /// Its log position.
        position: u64,
        /// What it says.
        event: FeedEvent,
    },
    /// Nothing more for this reactor up to `position`.
    Checkpoint {
        /// The last position covered.
        position: u64,
    },
    /// The backlog up to `position` is sent; live messages follow.
    CaughtUp {
        /// The last position covered.
        position: u64,
    },
}

/// A feed message that does not say what the feed promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("feed message at position {position}: {problem}")]
pub struct FeedError {
    /// The message's position.
    pub position: u64,
    /// What is wrong (names fields, never quotes ciphertext).
    pub problem: String,
}

fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl From<UploadOutcome> for v1::UploadOutcome {
    fn from(outcome: UploadOutcome) -> Self {
        match outcome {
            UploadOutcome::Uploaded => v1::UploadOutcome::Uploaded,
            UploadOutcome::Verified => v1::UploadOutcome::Verified,
            UploadOutcome::Failed => v1::UploadOutcome::Failed,
            UploadOutcome::Expired => v1::UploadOutcome::Expired,
            UploadOutcome::Unchanged => v1::UploadOutcome::Unchanged,
            UploadOutcome::Resealed => v1::UploadOutcome::Resealed,
        }
    }
}

impl From<FeedMessage> for v1::FeedMessage {
    fn from(message: FeedMessage) -> Self {
        let (position, message) = match message {
            FeedMessage::Checkpoint { position } => {
                (position, Message::Checkpoint(v1::FeedCheckpoint {}))
            }
            FeedMessage::CaughtUp { position } => {
                (position, Message::CaughtUp(v1::FeedCaughtUp {}))
            }
            FeedMessage::Event { position, event } => (position, event_to_proto(event)),
        };
        v1::FeedMessage {
            position,
            message: Some(message),
            // Set by the sender, who knows them (`head`, `recorded_at_ms`).
            ..Default::default()
        }
    }
}

fn event_to_proto(event: FeedEvent) -> Message {
    match event {
        FeedEvent::KeyRequested {
            request_id,
            uri,
            purpose,
            expires_at,
        } => {
            let (purpose, adopt) = purpose.to_proto();
            Message::KeyRequested(v1::UploadKeyRequested {
                request_id: request_id.to_string(),
                uri: uri.to_string(),
                purpose: purpose as i32,
                adopt,
                expires_at: time_text(&expires_at),
            })
        }
        FeedEvent::KeyProvided { request_id } => Message::KeyProvided(v1::UploadKeyProvided {
            request_id: request_id.to_string(),
        }),
        FeedEvent::UploadRequested {
            request_id,
            ciphertext,
        } => Message::UploadRequested(v1::UploadRequested {
            request_id: request_id.to_string(),
            ciphertext,
        }),
        FeedEvent::Ended {
            request_id,
            outcome,
        } => Message::UploadEnded(v1::UploadEnded {
            request_id: request_id.to_string(),
            outcome: v1::UploadOutcome::from(outcome) as i32,
        }),
        FeedEvent::DeletionRequested { uri, destroy } => {
            Message::DeletionRequested(v1::SecretDeletionRequested {
                uri: uri.to_string(),
                destroy,
            })
        }
        FeedEvent::Deleted { uri } => Message::SecretDeleted(v1::SecretDeleted {
            uri: uri.to_string(),
        }),
        FeedEvent::SealedSubmitted(s) => {
            let (current_version, current_hash) = s.current.unwrap_or_default();
            Message::SealedSubmitted(v1::SealedFileSubmitted {
                request_id: s.request_id.to_string(),
                uri: s.uri.to_string(),
                key_id: s.key_id,
                ciphertext: s.ciphertext,
                reseal: s.reseal,
                current_version,
                current_hash,
                expires_at: time_text(&s.expires_at),
            })
        }
        FeedEvent::RotationRequested { store } => {
            Message::RotationRequested(v1::SealingKeyRotationRequested { store })
        }
        FeedEvent::KeyRetired { store, key_id } => {
            Message::KeyRetired(v1::SealingKeyRetired { store, key_id })
        }
    }
}

impl TryFrom<v1::FeedMessage> for FeedMessage {
    type Error = FeedError;

    fn try_from(wire: v1::FeedMessage) -> Result<Self, FeedError> {
        let position = wire.position;
        let bad = |problem: String| FeedError { position, problem };
        let id = |text: &str| {
            Uuid::parse_str(text).map_err(|_| bad(format!("request_id `{text}` is not a UUID")))
        };
        let uri = |text: &str| SecretUri::parse(text).map_err(|e| bad(e.to_string()));
        let event = match wire.message {
            None => return Err(bad("it carries nothing".into())),
            Some(Message::Checkpoint(_)) => return Ok(FeedMessage::Checkpoint { position }),
            Some(Message::CaughtUp(_)) => return Ok(FeedMessage::CaughtUp { position }),
            Some(Message::KeyRequested(k)) => FeedEvent::KeyRequested {
                request_id: id(&k.request_id)?,
                uri: uri(&k.uri)?,
                purpose: Purpose::from_proto(k.purpose, k.adopt)
                    .ok_or_else(|| bad(format!("purpose {} is not put or verify", k.purpose)))?,
                expires_at: DateTime::parse_from_rfc3339(&k.expires_at)
                    .map_err(|_| bad(format!("expires_at `{}` is not RFC 3339", k.expires_at)))?
                    .with_timezone(&Utc),
            },
            Some(Message::KeyProvided(k)) => FeedEvent::KeyProvided {
                request_id: id(&k.request_id)?,
            },
            Some(Message::UploadRequested(u)) => FeedEvent::UploadRequested {
                request_id: id(&u.request_id)?,
                ciphertext: u.ciphertext,
            },
            Some(Message::UploadEnded(e)) => FeedEvent::Ended {
                request_id: id(&e.request_id)?,
                outcome: match v1::UploadOutcome::try_from(e.outcome) {
                    Ok(v1::UploadOutcome::Uploaded) => UploadOutcome::Uploaded,
                    Ok(v1::UploadOutcome::Verified) => UploadOutcome::Verified,
                    Ok(v1::UploadOutcome::Failed) => UploadOutcome::Failed,
                    Ok(v1::UploadOutcome::Expired) => UploadOutcome::Expired,
                    Ok(v1::UploadOutcome::Unchanged) => UploadOutcome::Unchanged,
                    Ok(v1::UploadOutcome::Resealed) => UploadOutcome::Resealed,
                    _ => return Err(bad(format!("outcome {} is unknown", e.outcome))),
                },
            },
            Some(Message::DeletionRequested(d)) => FeedEvent::DeletionRequested {
                uri: uri(&d.uri)?,
                destroy: d.destroy,
            },
            Some(Message::SecretDeleted(d)) => FeedEvent::Deleted { uri: uri(&d.uri)? },
            Some(Message::SealedSubmitted(s)) => FeedEvent::SealedSubmitted(SealedSubmission {
                request_id: id(&s.request_id)?,
                uri: uri(&s.uri)?,
                key_id: s.key_id,
                ciphertext: s.ciphertext,
                reseal: s.reseal,
                current: (s.current_version > 0).then_some((s.current_version, s.current_hash)),
                expires_at: DateTime::parse_from_rfc3339(&s.expires_at)
                    .map_err(|_| bad(format!("expires_at `{}` is not RFC 3339", s.expires_at)))?
                    .with_timezone(&Utc),
            }),
            Some(Message::RotationRequested(r)) => FeedEvent::RotationRequested { store: r.store },
            Some(Message::KeyRetired(r)) => FeedEvent::KeyRetired {
                store: r.store,
                key_id: r.key_id,
            },
        };
        Ok(FeedMessage::Event { position, event })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Uuid {
        Uuid::parse_str("4b97c4f7-4897-4263-9088-8fcb2bc11b06").unwrap()
    }

    fn uri() -> SecretUri {
        SecretUri::parse("local://alice/db").unwrap()
    }

    #[test]
    fn every_message_survives_the_wire() {
        let expires = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let events = [
            FeedEvent::KeyRequested {
                request_id: id(),
                uri: uri(),
                purpose: Purpose::Put { adopt: true },
                expires_at: expires,
            },
            FeedEvent::KeyRequested {
                request_id: id(),
                uri: uri(),
                purpose: Purpose::Verify,
                expires_at: expires,
            },
            FeedEvent::KeyProvided { request_id: id() },
            FeedEvent::UploadRequested {
                request_id: id(),
                ciphertext: vec![1, 2, 3],
            },
            FeedEvent::Ended {
                request_id: id(),
                outcome: UploadOutcome::Failed,
            },
            FeedEvent::DeletionRequested {
                uri: uri(),
                destroy: true,
            },
            FeedEvent::Deleted { uri: uri() },
        ];
        let mut messages: Vec<FeedMessage> = events
            .into_iter()
            .enumerate()
            .map(|(i, event)| FeedMessage::Event {
                position: i as u64 + 1,
                event,
            })
            .collect();
        messages.push(FeedMessage::Checkpoint { position: 40 });
        messages.push(FeedMessage::CaughtUp { position: 41 });
        for message in messages {
            let wire = v1::FeedMessage::from(message.clone());
            assert_eq!(FeedMessage::try_from(wire).unwrap(), message);
        }
    }

    #[test]
    fn a_malformed_message_is_refused_with_its_position() {
        let wire = v1::FeedMessage {
            position: 7,
            message: Some(Message::KeyRequested(v1::UploadKeyRequested {
                request_id: id().to_string(),
                uri: "local://../etc".into(),
                purpose: v1::Purpose::Put as i32,
                adopt: false,
                expires_at: "2026-12-01T08:00:00Z".into(),
            })),
            ..Default::default()
        };
        let err = FeedMessage::try_from(wire).unwrap_err();
        assert_eq!(err.position, 7);
        assert!(err.to_string().contains("segment"), "{err}");

        let empty = v1::FeedMessage {
            position: 8,
            message: None,
            ..Default::default()
        };
        assert!(FeedMessage::try_from(empty).is_err());
    }
}
