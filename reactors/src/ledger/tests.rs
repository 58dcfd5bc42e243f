use super::*;
use chrono::TimeZone as _;

fn rid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn info(n: u128) -> RequestInfo {
    RequestInfo {
        request_id: rid(n),
        uri: format!("local://app/s{n}"),
        store: "local".into(),
        purpose: Purpose::Put { adopt: false },
        expires_at: Utc.with_ymd_and_hms(2030, 1, 1, 0, 5, 0).unwrap(),
    }
}

fn requested(n: u128) -> FeedEvent {
    let i = info(n);
    FeedEvent::SecretUploadKeyRequested {
        request_id: i.request_id,
        uri: i.uri,
        store: i.store,
        purpose: i.purpose,
        expires_at: i.expires_at,
    }
}

fn provided(n: u128) -> FeedEvent {
    FeedEvent::SecretUploadKeyProvided { request_id: rid(n) }
}

fn uploaded_ct(n: u128) -> FeedEvent {
    FeedEvent::SecretUploadRequested {
        request_id: rid(n),
        ciphertext: format!("ct{n}"),
    }
}

fn open(n: u128) -> Action {
    Action::Open {
        request: info(n),
        ciphertext: format!("ct{n}"),
    }
}

/// Given `events` at positions 1.., folded while catching up.
fn given(events: Vec<FeedEvent>) -> Ledger {
    let mut ledger = Ledger::new(1);
    for (i, e) in events.into_iter().enumerate() {
        assert_eq!(
            ledger.apply(i as u64 + 1, e),
            None,
            "no action while catching up"
        );
    }
    ledger
}

fn live(ledger: &mut Ledger, event: FeedEvent) -> Option<Action> {
    let position = ledger.resume_from();
    ledger.apply(position, event)
}

#[test]
fn a_live_request_gets_a_key_then_its_payload_is_opened_once() {
    let mut l = given(vec![]);
    assert_eq!(l.caught_up(), vec![]);
    assert_eq!(
        live(&mut l, requested(1)),
        Some(Action::ProvideKey(info(1)))
    );
    assert_eq!(live(&mut l, provided(1)), None);
    assert_eq!(live(&mut l, uploaded_ct(1)), Some(open(1)));
    // Our own report ends it.
    assert_eq!(
        live(&mut l, FeedEvent::SecretUploaded { request_id: rid(1) }),
        None
    );
    assert_eq!(l.open_requests(), 0);
}

#[test]
fn requests_that_ended_in_the_backlog_are_never_acted_on() {
    let mut l = given(vec![
        requested(1),
        provided(1),
        uploaded_ct(1),
        FeedEvent::SecretUploaded { request_id: rid(1) },
        requested(2),
        FeedEvent::SecretUploadKeyExpired { request_id: rid(2) },
        requested(3),
        FeedEvent::SecretUploadFailed { request_id: rid(3) },
    ]);
    assert_eq!(l.caught_up(), vec![]);
    assert_eq!(l.checkpoint(), 9);
}

#[test]
fn after_a_restart_a_request_still_waiting_for_its_key_gets_one() {
    let mut l = given(vec![requested(1), requested(2), provided(2)]);
    assert_eq!(
        l.caught_up(),
        vec![Action::ProvideKey(info(1)), Action::KeyLost(info(2))]
    );
}

#[test]
fn after_a_restart_keys_issued_by_the_earlier_run_are_reported_lost_once() {
    // Uploaded before the restart: the payload can never be opened.
    let mut l = given(vec![requested(1), provided(1), uploaded_ct(1)]);
    assert_eq!(l.caught_up(), vec![Action::KeyLost(info(1))]);
    // Key provided by the earlier run, reported lost; the upload that
    // races the report must not be reported a second time.
    let mut l = given(vec![requested(2), provided(2)]);
    assert_eq!(l.caught_up(), vec![Action::KeyLost(info(2))]);
    assert_eq!(live(&mut l, uploaded_ct(2)), None);
}

#[test]
fn a_key_requested_while_catching_up_is_provided_by_this_run_and_used() {
    let mut l = given(vec![requested(1)]);
    assert_eq!(l.caught_up(), vec![Action::ProvideKey(info(1))]);
    assert_eq!(live(&mut l, provided(1)), None);
    assert_eq!(live(&mut l, uploaded_ct(1)), Some(open(1)));
}

#[test]
fn a_resubscription_replays_nothing_already_handed_out() {
    let mut l = given(vec![]);
    l.caught_up();
    assert_eq!(
        live(&mut l, requested(1)),
        Some(Action::ProvideKey(info(1)))
    );
    // The stream broke; the feed resumes after the last event seen.
    l.resubscribed();
    assert_eq!(l.resume_from(), 2);
    assert_eq!(l.apply(2, provided(1)), None);
    assert_eq!(l.caught_up(), vec![]);
    // A duplicate delivery of an old position is ignored.
    assert_eq!(l.apply(1, requested(1)), None);
    assert_eq!(live(&mut l, uploaded_ct(1)), Some(open(1)));
}

#[test]
fn the_checkpoint_is_the_oldest_open_event() {
    let mut l = given(vec![requested(1), requested(2), provided(2)]);
    assert_eq!(l.checkpoint(), 1);
    l.apply(4, FeedEvent::SecretUploadFailed { request_id: rid(1) });
    assert_eq!(l.checkpoint(), 2);
    l.apply(5, FeedEvent::SecretUploadKeyExpired { request_id: rid(2) });
    assert_eq!(l.checkpoint(), 6);
    // Restarting from a checkpoint resumes there.
    assert_eq!(Ledger::new(6).resume_from(), 6);
    assert_eq!(Ledger::new(0).resume_from(), 1);
}

#[test]
fn deletions_are_carried_out_once_and_closed_by_secret_deleted() {
    let uri = "local://app/db".to_owned();
    let asked = |destroy| FeedEvent::SecretDeletionRequested {
        uri: uri.clone(),
        destroy,
    };
    let mut l = given(vec![asked(false), asked(true)]);
    assert_eq!(l.checkpoint(), 1);
    assert_eq!(
        l.caught_up(),
        vec![Action::Delete {
            uri: uri.clone(),
            destroy: true
        }]
    );
    assert_eq!(
        live(&mut l, FeedEvent::SecretDeleted { uri: uri.clone() }),
        None
    );
    assert_eq!(l.checkpoint(), 4);
    assert_eq!(
        live(&mut l, asked(false)),
        Some(Action::Delete {
            uri: uri.clone(),
            destroy: false
        })
    );
}

#[test]
fn events_of_unknown_requests_and_other_types_are_ignored() {
    let mut l = given(vec![]);
    l.caught_up();
    assert_eq!(live(&mut l, uploaded_ct(9)), None);
    assert_eq!(live(&mut l, FeedEvent::Other), None);
    assert_eq!(l.open_requests(), 0);
}

#[test]
fn feed_events_parse_from_the_control_planes_json_and_ignore_the_rest() {
    let json = r#"{"type":"SecretUploadKeyRequested","request_id":"00000000-0000-0000-0000-000000000001",
        "uri":"local://app/s1","store":"local","requester":"alice",
        "purpose":{"kind":"put","adopt":true},"expires_at":"2030-01-01T00:05:00Z","future":1}"#;
    let e: FeedEvent = serde_json::from_str(json).unwrap();
    assert_eq!(
        e,
        FeedEvent::SecretUploadKeyRequested {
            request_id: rid(1),
            uri: "local://app/s1".into(),
            store: "local".into(),
            purpose: Purpose::Put { adopt: true },
            expires_at: info(1).expires_at,
        }
    );
    let verify: FeedEvent = serde_json::from_str(
        r#"{"type":"SecretUploadKeyRequested","request_id":"00000000-0000-0000-0000-000000000001",
        "uri":"u","store":"s","purpose":{"kind":"verify"},"expires_at":"2030-01-01T00:05:00Z"}"#,
    )
    .unwrap();
    assert!(matches!(
        verify,
        FeedEvent::SecretUploadKeyRequested {
            purpose: Purpose::Verify,
            ..
        }
    ));
    let other: FeedEvent =
        serde_json::from_str(r#"{"type":"AccessGranted","list":"readers","slug":"bob"}"#).unwrap();
    assert_eq!(other, FeedEvent::Other);
}
