//! Folding the control plane's feed (`Reactor.Subscribe`) into the
//! [`Ledger`]: each message becomes the [`Action`]s now due.
//!
//! The feed's messages are typed (`sealplane_proto::feed`); one that does
//! not convert is skipped and logged by its position and field only,
//! never its content (an upload holds ciphertext).

use sealplane_proto::feed::FeedMessage;
use sealplane_proto::v1;

use crate::ledger::{Action, Ledger};

/// Folds one feed message into `ledger`; returns the actions now due.
pub(super) fn fold(ledger: &mut Ledger, message: v1::FeedMessage) -> Vec<Action> {
    match FeedMessage::try_from(message) {
        Ok(FeedMessage::Event { position, event }) => {
            ledger.apply(position, event).into_iter().collect()
        }
        Ok(FeedMessage::Checkpoint { position }) => {
            ledger.covered(position);
            vec![]
        }
        Ok(FeedMessage::CaughtUp { position }) => {
            ledger.covered(position);
            let actions = ledger.caught_up();
            let (open_requests, actions_due) = (ledger.open_requests(), actions.len());
            tracing::info!(
                position,
                open_requests,
                actions_due,
                "caught up at position {position}; {open_requests} open request(s), {actions_due} action(s) due",
            );
            actions
        }
        Err(e) => {
            tracing::warn!(position = e.position, error = %e, "skipped a feed message that does not convert");
            vec![]
        }
    }
}
