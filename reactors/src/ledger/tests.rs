use super::*;
use chrono::TimeZone as _;
use sealplane_proto::feed::UploadOutcome;

fn rid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn info(n: u128) -> RequestInfo {
    RequestInfo {
        request_id: rid(n),
        uri: SecretUri::parse(&format!("local://app/s{n}")).unwrap(),
        purpose: Purpose::Put { adopt: false },
        expires_at: Utc.with_ymd_and_hms(2030, 1, 1, 0, 5, 0).unwrap(),
    }
}

fn requested(n: u128) -> FeedEvent {
    let i = info(n);
    FeedEvent::KeyRequested {
        request_id: i.request_id,
        uri: i.uri,
        purpose: i.purpose,
        expires_at: i.expires_at,
    }
}

fn provided(n: u128) -> FeedEvent {
    FeedEvent::KeyProvided { request_id: rid(n) }
}

fn uploaded_ct(n: u128) -> FeedEvent {
    FeedEvent::UploadRequested {
        request_id: rid(n),
        ciphertext: format!("ct{n}").into_bytes(),
    }
}

fn ended(outcome: UploadOutcome, request_id: Uuid) -> FeedEvent {
    FeedEvent::Ended {
        request_id,
        outcome,
    }
}

fn open(n: u128) -> Action {
    Action::Open {
        request: info(n),
        ciphertext: format!("ct{n}").into_bytes(),
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
    assert_eq!(live(&mut l, ended(UploadOutcome::Uploaded, rid(1))), None);
    assert_eq!(l.open_requests(), 0);
}

#[test]
fn requests_that_ended_in_the_backlog_are_never_acted_on() {
    let mut l = given(vec![
        requested(1),
        provided(1),
        uploaded_ct(1),
        ended(UploadOutcome::Uploaded, rid(1)),
        requested(2),
        ended(UploadOutcome::Expired, rid(2)),
        requested(3),
        ended(UploadOutcome::Failed, rid(3)),
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
    l.apply(4, ended(UploadOutcome::Failed, rid(1)));
    assert_eq!(l.checkpoint(), 2);
    l.apply(5, ended(UploadOutcome::Expired, rid(2)));
    assert_eq!(l.checkpoint(), 6);
    // Restarting from a checkpoint resumes there.
    assert_eq!(Ledger::new(6).resume_from(), 6);
    assert_eq!(Ledger::new(0).resume_from(), 1);
}

#[test]
fn deletions_are_carried_out_once_and_closed_by_secret_deleted() {
    let uri = SecretUri::parse("local://app/db").unwrap();
    let asked = |destroy| FeedEvent::DeletionRequested {
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
    assert_eq!(live(&mut l, FeedEvent::Deleted { uri: uri.clone() }), None);
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
fn events_of_unknown_requests_are_ignored() {
    let mut l = given(vec![]);
    l.caught_up();
    assert_eq!(live(&mut l, uploaded_ct(9)), None);
    assert_eq!(live(&mut l, provided(9)), None);
    assert_eq!(live(&mut l, ended(UploadOutcome::Failed, rid(9))), None);
    assert_eq!(l.open_requests(), 0);
}

#[test]
fn a_feed_checkpoint_moves_a_quiet_reactor_on_but_not_past_open_requests() {
    // Given nothing open, when the feed says positions up to 500 held
    // nothing for this reactor, then a restart resumes after them.
    let mut l = given(vec![]);
    l.covered(500);
    assert_eq!(l.checkpoint(), 501);
    assert_eq!(l.resume_from(), 501);
    // An older checkpoint never moves it back.
    l.covered(10);
    assert_eq!(l.resume_from(), 501);
    // With a request open since 501, the low-water mark stays there.
    assert_eq!(l.apply(501, requested(1)), None);
    l.covered(900);
    assert_eq!(l.resume_from(), 901);
    assert_eq!(l.checkpoint(), 501);
}

fn sealed(n: u128) -> SealedSubmission {
    let i = info(n);
    SealedSubmission {
        request_id: i.request_id,
        uri: i.uri,
        key_id: "sk-0000000000000001".into(),
        ciphertext: format!("ct{n}").into_bytes(),
        reseal: false,
        current: Some((1, "hmac-sha256-v2:k:00".into())),
        expires_at: i.expires_at,
    }
}

fn open_sealed(n: u128) -> Action {
    Action::OpenSealed {
        request: info(n),
        file: sealed(n),
    }
}

#[test]
fn a_live_sealed_file_is_opened_once_and_its_report_ends_it() {
    let mut l = given(vec![]);
    assert_eq!(l.caught_up(), vec![]);
    assert_eq!(
        live(&mut l, FeedEvent::SealedSubmitted(sealed(1))),
        Some(open_sealed(1))
    );
    assert_eq!(l.open_requests(), 1);
    assert_eq!(live(&mut l, ended(UploadOutcome::Unchanged, rid(1))), None);
    assert_eq!(l.open_requests(), 0);
}

#[test]
fn a_sealed_file_left_open_by_an_earlier_run_is_opened_not_reported_lost() {
    // Sealing keys outlive the process: unlike a one-time key, a restart
    // does not lose what opens the file.
    let mut l = given(vec![
        FeedEvent::SealedSubmitted(sealed(1)),
        FeedEvent::SealedSubmitted(sealed(2)),
        ended(UploadOutcome::Uploaded, rid(2)),
    ]);
    assert_eq!(l.caught_up(), vec![open_sealed(1)]);
    assert_eq!(l.checkpoint(), 1, "the open file holds the checkpoint");
}

#[test]
fn sealing_key_work_in_the_backlog_comes_first_at_caught_up_and_live_at_once() {
    let mut l = given(vec![
        FeedEvent::SealedSubmitted(sealed(1)),
        FeedEvent::KeyRetired {
            store: "local".into(),
            key_id: "sk-0000000000000009".into(),
        },
        FeedEvent::RotationRequested {
            store: "local".into(),
        },
    ]);
    assert_eq!(
        l.caught_up(),
        vec![
            Action::RetireSealingKey {
                store: "local".into(),
                key_id: "sk-0000000000000009".into(),
            },
            Action::RotateSealingKey {
                store: "local".into(),
                position: 3,
            },
            open_sealed(1),
        ]
    );
    assert_eq!(l.caught_up(), vec![], "handed out once");
    assert_eq!(
        live(
            &mut l,
            FeedEvent::RotationRequested {
                store: "local".into()
            }
        ),
        Some(Action::RotateSealingKey {
            store: "local".into(),
            position: 4,
        })
    );
}
