//! Folding the control plane's feed (`Reactor.Subscribe`) into the
//! [`Ledger`]: each message becomes the [`Action`]s now due.
//!
//! The feed's events arrive as JSON; one that does not parse is skipped
//! (its position still counts) and logged by its error category only,
//! because an upload event holds ciphertext.

use sealplane_proto::v1;

use crate::ledger::{Action, FeedEvent, Ledger};

/// Folds one feed message into `ledger`; returns the actions now due.
pub(super) fn fold(ledger: &mut Ledger, message: v1::SubscribeResponse) -> Vec<Action> {
    use v1::subscribe_response::Message;
    match message.message {
        Some(Message::Event(event)) => match serde_json::from_str::<FeedEvent>(&event.data_json) {
            Ok(feed_event) => ledger
                .apply(event.position, feed_event)
                .into_iter()
                .collect(),
            Err(e) => {
                // Never the JSON itself: an upload event holds ciphertext.
                let error = json_error_kind(&e);
                tracing::warn!(
                    position = event.position,
                    event_type = %event.event_type,
                    error,
                    "skipped event {} ({}) that does not parse: {error}",
                    event.position,
                    event.event_type,
                );
                ledger.apply(event.position, FeedEvent::Other);
                vec![]
            }
        },
        Some(Message::CaughtUp(at)) => {
            let actions = ledger.caught_up();
            let (open_requests, actions_due) = (ledger.open_requests(), actions.len());
            tracing::info!(
                position = at,
                open_requests,
                actions_due,
                "caught up at position {at}; {open_requests} open request(s), {actions_due} action(s) due",
            );
            actions
        }
        None => vec![],
    }
}

/// A JSON error's kind only: its text can quote the input.
fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected fields",
        serde_json::error::Category::Eof => "truncated",
    }
}
