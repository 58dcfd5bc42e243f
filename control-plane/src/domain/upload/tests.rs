//! Given/when/then for the upload request's rules (ADR 0002, SPEC §3).

use super::*;
use crate::domain::testing::{Given, actor, admin, given, reactor, t0, user};
use crate::domain::{Actor, Role};
use UploadCommand as C;
use UploadEvent as E;
use UploadRefusal as R;
use UploadStatus as S;

const PUT: Purpose = Purpose::Put { adopt: false };
const RID: Uuid = Uuid::from_u128(7);

fn uri() -> SecretUri {
    SecretUri::parse("vault-prod://alice/db").unwrap()
}
fn alice() -> Actor {
    user("alice", &["payments"])
}
fn bot() -> Actor {
    reactor("bot", &["local", "vault-prod"])
}
fn exp() -> DateTime<Utc> {
    t0() + Duration::minutes(5)
}
fn b64(n: usize) -> String {
    STANDARD.encode(vec![7u8; n])
}
fn hash(c: &str) -> String {
    format!("hmac-sha256:k1:{}", c.repeat(64))
}
fn key_hashes() -> KeyHashes {
    [("password".to_owned(), hash("b"))].into()
}

/// The events of a request of `purpose` that reached `status`.
fn history(status: S, purpose: Purpose) -> Vec<E> {
    let mut events = vec![requested(purpose, exp())];
    if matches!(
        status,
        S::KeyProvided | S::UploadRequested | S::Uploaded | S::Verified
    ) {
        events.push(E::SecretUploadKeyProvided {
            request_id: RID,
            public_key: b64(32),
            signature: b64(64),
            expires_at: exp(),
        });
    }
    if matches!(status, S::UploadRequested | S::Uploaded | S::Verified) {
        events.push(upload_requested(100));
    }
    match status {
        S::Absent => events.clear(),
        S::Uploaded => events.push(uploaded("a")),
        S::Verified => events.push(verified(true)),
        S::Failed => events.push(failed_event("restarted")),
        S::Expired => events.push(E::SecretUploadKeyExpired { request_id: RID }),
        _ => {}
    }
    events
}
fn at(status: S, purpose: Purpose) -> Given<UploadRequest> {
    given(history(status, purpose))
}
fn put_at(status: S) -> Given<UploadRequest> {
    at(status, PUT)
}

fn request_key(purpose: Purpose, ttl: Duration, [store, write, read]: [bool; 3]) -> C {
    C::RequestKey {
        request_id: RID,
        uri: uri(),
        purpose,
        ttl,
        store_accepts_uploads: store,
        may_write: write,
        may_read: read,
        may_verify_now: true,
    }
}
fn ok_request(purpose: Purpose) -> C {
    request_key(purpose, Duration::minutes(5), [true; 3])
}
fn requested(purpose: Purpose, expires_at: DateTime<Utc>) -> E {
    E::SecretUploadKeyRequested {
        request_id: RID,
        uri: uri(),
        store: uri().store,
        requester: alice().slug,
        purpose,
        expires_at,
    }
}
fn provide(public_key: String, signature: String, expires_at: DateTime<Utc>) -> C {
    C::ProvideKey {
        public_key,
        signature,
        expires_at,
    }
}
fn upload(ciphertext: String) -> C {
    C::Upload {
        ciphertext,
        max_ciphertext_bytes: 1000,
    }
}
fn upload_requested(bytes: usize) -> E {
    E::SecretUploadRequested {
        request_id: RID,
        ciphertext: b64(bytes),
    }
}
fn report_uploaded(h: &str, key_hashes: KeyHashes) -> C {
    C::ReportUploaded {
        version: 3,
        hash: h.to_owned(),
        key_hashes,
        upstream_ref: "secret/data/alice/db".to_owned(),
    }
}
fn uploaded(h: &str) -> E {
    E::SecretUploaded {
        request_id: RID,
        uri: uri(),
        version: 3,
        hash: hash(h),
        key_hashes: key_hashes(),
        upstream_ref: "secret/data/alice/db".to_owned(),
    }
}
fn verified(matches: bool) -> E {
    E::SecretVerified {
        request_id: RID,
        uri: uri(),
        matches,
    }
}
fn failed(reason: &str) -> C {
    C::ReportFailed {
        reason: reason.to_owned(),
        kind: FailureKind::Upstream,
    }
}
fn failed_event(reason: &str) -> E {
    E::SecretUploadFailed {
        request_id: RID,
        reason: reason.to_owned(),
        kind: Some(FailureKind::Upstream),
    }
}

#[test]
fn a_user_who_may_write_requests_a_put_key_valid_for_the_ttl() {
    let put = Purpose::Put { adopt: true };
    let state = put_at(S::Absent)
        .as_actor(alice())
        .when(ok_request(put))
        .then_events(vec![requested(put, exp())]);
    assert_eq!(state.status(), S::Requested);
    assert_eq!((state.request_id(), state.uri()), (Some(RID), Some(&uri())));
    assert_eq!(state.store().map(StoreName::as_str), Some("vault-prod"));
    assert_eq!(state.requester(), Some(&alice().slug));
    assert_eq!(
        (state.purpose(), state.expires_at()),
        (Some(put), Some(exp()))
    );
    assert_eq!((state.public_key(), state.outcome()), (None, None));
}

#[test]
fn the_expiry_is_whole_seconds_because_the_reactor_signs_it_at_that_precision() {
    put_at(S::Absent)
        .as_actor(alice())
        .at(t0() + Duration::milliseconds(999))
        .when(ok_request(PUT))
        .then_events(vec![requested(PUT, exp())]);
}

#[test]
fn a_put_needs_write_access_and_a_verify_needs_read_access() {
    let ttl = Duration::minutes(5);
    for (purpose, facts, outcome) in [
        (PUT, [true, false, true], Err(R::MayNotWrite(uri()))),
        (
            Purpose::Verify,
            [true, true, false],
            Err(R::MayNotRead(uri())),
        ),
        (PUT, [true, true, false], Ok(vec![requested(PUT, exp())])),
        (
            Purpose::Verify,
            [true, false, true],
            Ok(vec![requested(Purpose::Verify, exp())]),
        ),
    ] {
        let then = put_at(S::Absent)
            .as_actor(alice())
            .when(request_key(purpose, ttl, facts));
        match outcome {
            Ok(events) => _ = then.then_events(events),
            Err(refusal) => then.then_refused(refusal),
        }
    }
}

#[test]
fn auditors_and_reactors_may_never_request_keys() {
    for who in [actor("audit", Role::Auditor), bot()] {
        put_at(S::Absent)
            .as_actor(who)
            .when(ok_request(PUT))
            .then_refused(R::RoleMayNotUpload);
    }
}

#[test]
fn a_store_that_is_unknown_or_disabled_refuses_new_requests() {
    let refusal = R::StoreNotAccepting(uri().store);
    assert!(
        refusal
            .to_string()
            .contains("sealctl enable store vault-prod")
    );
    let cmd = request_key(PUT, Duration::minutes(5), [false, true, true]);
    put_at(S::Absent)
        .as_actor(alice())
        .when(cmd)
        .then_refused(refusal);
}

#[test]
fn the_key_lifetime_must_be_positive_and_at_most_an_hour() {
    for (seconds, refused) in [
        (0, true),
        (-5, true),
        (3601, true),
        (1, false),
        (3600, false),
    ] {
        let ttl = Duration::seconds(seconds);
        let then = put_at(S::Absent)
            .as_actor(alice())
            .when(request_key(PUT, ttl, [true; 3]));
        if refused {
            then.then_refused(R::TtlOutOfRange(seconds));
        } else {
            then.then_events(vec![requested(PUT, t0() + ttl)]);
        }
    }
}

#[test]
fn a_request_id_is_used_once() {
    let refusal = R::AlreadyExists(RID);
    put_at(S::Failed)
        .as_actor(alice())
        .when(ok_request(PUT))
        .then_refused(refusal);
}

#[test]
fn commands_on_an_unknown_request_are_not_found() {
    let h = hash("a");
    for cmd in [
        provide(b64(32), b64(64), exp()),
        upload(b64(100)),
        report_uploaded(&h, key_hashes()),
        C::ReportVerified { matches: true },
        failed("x"),
        C::ExpireKey,
    ] {
        put_at(S::Absent)
            .as_actor(bot())
            .when(cmd)
            .then_refused(R::NotFound);
    }
}

#[test]
fn the_serving_reactor_provides_a_valid_key_before_expiry() {
    let before = exp() - Duration::seconds(1);
    let provided = E::SecretUploadKeyProvided {
        request_id: RID,
        public_key: b64(32),
        signature: b64(64),
        expires_at: exp(),
    };
    let state = put_at(S::Requested)
        .as_actor(bot())
        .at(before)
        .when(provide(b64(32), b64(64), exp()))
        .then_events(vec![provided]);
    assert_eq!(state.status(), S::KeyProvided);
    assert_eq!(state.public_key(), Some(b64(32).as_str()));
    assert_eq!(state.signature(), Some(b64(64).as_str()));
}

#[test]
fn only_a_reactor_bound_to_the_store_provides_keys_and_reports() {
    let strangers = [
        reactor("other", &["local"]),
        admin(),
        alice(),
        actor("audit", Role::Auditor),
    ];
    for who in strangers {
        for cmd in [
            provide(b64(32), b64(64), exp()),
            report_uploaded(&hash("a"), key_hashes()),
            C::ReportVerified { matches: true },
            failed("x"),
            C::ExpireKey,
        ] {
            let then = put_at(S::UploadRequested)
                .as_actor(who.clone())
                .at(exp())
                .when(cmd);
            then.then_refused(R::NotServed(uri().store));
        }
    }
}

#[test]
fn the_same_key_again_is_a_no_op_and_a_different_key_is_refused() {
    for status in [S::KeyProvided, S::UploadRequested, S::Uploaded] {
        let same = provide(b64(32), b64(64), exp());
        put_at(status)
            .as_actor(bot())
            .at(exp())
            .when(same)
            .then_events(vec![]);
        let other = provide(STANDARD.encode([1u8; 32]), b64(64), exp());
        put_at(status)
            .as_actor(bot())
            .when(other)
            .then_refused(R::KeyAlreadyProvided);
    }
}

#[test]
fn no_key_is_provided_at_expiry_or_after_the_request_ended() {
    let cmd = || provide(b64(32), b64(64), exp());
    put_at(S::Requested)
        .as_actor(bot())
        .at(exp())
        .when(cmd())
        .then_refused(R::Expired(exp()));
    for status in [S::Failed, S::Expired] {
        put_at(status)
            .as_actor(bot())
            .when(cmd())
            .then_refused(R::Ended(status));
    }
}

#[test]
fn keys_and_signatures_must_be_base64_of_the_right_length() {
    let (public_key, signature) = (
        R::MalformedKey("public_key", 32),
        R::MalformedKey("signature", 64),
    );
    for (pk, sig, refusal) in [
        ("not base64!".to_owned(), b64(64), public_key.clone()),
        (b64(31), b64(64), public_key.clone()),
        (b64(33), b64(64), public_key),
        (b64(32), b64(63), signature.clone()),
        (b64(32), "%%%%".to_owned(), signature),
    ] {
        let then = put_at(S::Requested)
            .as_actor(bot())
            .when(provide(pk, sig, exp()));
        then.then_refused(refusal);
    }
}

#[test]
fn the_key_must_carry_the_expiry_of_the_request() {
    let later = exp() + Duration::minutes(55);
    let refusal = R::ExpiryMismatch {
        requested: exp(),
        provided: later,
    };
    let cmd = provide(b64(32), b64(64), later);
    put_at(S::Requested)
        .as_actor(bot())
        .when(cmd)
        .then_refused(refusal);
}

#[test]
fn the_requester_uploads_once_while_the_key_is_valid() {
    let state = put_at(S::KeyProvided)
        .as_actor(alice())
        .at(exp() - Duration::seconds(1))
        .when(upload(b64(100)))
        .then_events(vec![upload_requested(100)]);
    assert_eq!(state.status(), S::UploadRequested);
    for now in [exp(), exp() + Duration::hours(1)] {
        let then = put_at(S::KeyProvided)
            .as_actor(alice())
            .at(now)
            .when(upload(b64(100)));
        then.then_refused(R::Expired(exp()));
    }
}

#[test]
fn only_the_requester_uploads_not_even_an_admin() {
    for who in [admin(), user("bob", &["payments"]), bot()] {
        let then = put_at(S::KeyProvided).as_actor(who).when(upload(b64(100)));
        then.then_refused(R::NotRequester(alice().slug));
    }
}

#[test]
fn uploading_before_the_key_or_once_used_or_ended_is_refused() {
    put_at(S::Requested)
        .as_actor(alice())
        .when(upload(b64(100)))
        .then_refused(R::KeyNotProvided);
    for status in [S::UploadRequested, S::Uploaded, S::Failed, S::Expired] {
        let then = put_at(status).as_actor(alice()).when(upload(b64(100)));
        then.then_refused(R::AlreadyUsed(status));
    }
    let then = at(S::Verified, Purpose::Verify)
        .as_actor(alice())
        .when(upload(b64(100)));
    then.then_refused(R::AlreadyUsed(S::Verified));
    assert!(
        R::AlreadyUsed(S::Uploaded)
            .to_string()
            .starts_with("request already used")
    );
}

#[test]
fn ciphertext_must_be_base64_of_a_sealed_box_within_the_limit() {
    for (ciphertext, refusal) in [
        ("a sealed box?".to_owned(), R::CiphertextNotBase64),
        (String::new(), R::CiphertextTooShort(0)),
        (b64(47), R::CiphertextTooShort(47)),
        (
            b64(1001),
            R::CiphertextTooLarge {
                bytes: 1001,
                limit: 1000,
            },
        ),
    ] {
        put_at(S::KeyProvided)
            .as_actor(alice())
            .when(upload(ciphertext))
            .then_refused(refusal);
    }
    for bytes in [SEALED_BOX_OVERHEAD, 1000] {
        let then = put_at(S::KeyProvided)
            .as_actor(alice())
            .when(upload(b64(bytes)));
        then.then_events(vec![upload_requested(bytes)]);
    }
    let message = R::CiphertextTooLarge {
        bytes: 1001,
        limit: 1000,
    }
    .to_string();
    assert!(message.contains("the limit is 1000 bytes"), "{message}");
}

#[test]
fn refusals_of_an_upload_never_repeat_the_ciphertext() {
    let ciphertext = STANDARD.encode(b"sealed-box-bytes".repeat(4));
    for (status, who, max) in [
        (S::KeyProvided, alice(), 10),
        (S::Requested, alice(), 1000),
        (S::KeyProvided, admin(), 1000),
        (S::UploadRequested, alice(), 1000),
    ] {
        let mut state = UploadRequest::default();
        history(status, PUT).iter().for_each(|e| state.apply(e));
        let ctx = Context {
            actor: who,
            now: t0(),
        };
        let cmd = C::Upload {
            ciphertext: ciphertext.clone(),
            max_ciphertext_bytes: max,
        };
        let message = state.decide(&cmd, &ctx).unwrap_err().to_string();
        assert!(!message.contains(&ciphertext[..16]), "{message}");
    }
}

#[test]
fn the_reactor_reports_an_upload_with_its_keyed_hashes_even_after_expiry() {
    let state = put_at(S::UploadRequested)
        .as_actor(bot())
        .at(exp() + Duration::hours(2))
        .when(report_uploaded(&hash("a"), key_hashes()))
        .then_events(vec![uploaded("a")]);
    assert_eq!(state.status(), S::Uploaded);
    assert_eq!(state.outcome(), Some(&uploaded("a")));
}

#[test]
fn the_reactor_reports_whether_a_verified_value_matches() {
    for matches in [true, false] {
        let then = at(S::UploadRequested, Purpose::Verify).as_actor(bot());
        let state = then
            .when(C::ReportVerified { matches })
            .then_events(vec![verified(matches)]);
        assert_eq!(
            (state.status(), state.outcome()),
            (S::Verified, Some(&verified(matches)))
        );
    }
}

#[test]
fn outcomes_are_reported_only_after_the_ciphertext_and_for_the_purpose() {
    let put = || report_uploaded(&hash("a"), key_hashes());
    for status in [S::Requested, S::KeyProvided] {
        put_at(status)
            .as_actor(bot())
            .when(put())
            .then_refused(R::NothingUploaded(status));
    }
    let then = at(S::UploadRequested, Purpose::Verify)
        .as_actor(bot())
        .when(put());
    then.then_refused(R::WrongPurpose("ReportVerified"));
    let then = put_at(S::UploadRequested)
        .as_actor(bot())
        .when(C::ReportVerified { matches: true });
    then.then_refused(R::WrongPurpose("ReportUploaded"));
}

#[test]
fn hashes_must_be_keyed_hmacs_of_64_lower_case_hex_digits_of_either_version() {
    let v2 = |c: &str| format!("hmac-sha256-v2:k1:{}", c.repeat(64));
    assert!(
        is_keyed_hash(&hash("a"))
            && is_keyed_hash(&v2("a"))
            && is_keyed_hash(&format!("hmac-sha256:k-2.x_y:{}", "0f".repeat(32)))
            && is_keyed_hash(&format!("hmac-sha256-v2:k-2.x_y:{}", "0f".repeat(32)))
    );
    let hex = "a".repeat(64);
    for bad in [
        hex.clone(),
        format!("sha256:k1:{hex}"),
        format!("hmac-sha256-v3:k1:{hex}"),
        format!("hmac-sha256-v1:k1:{hex}"),
        format!("hmac-sha256::{hex}"),
        format!("hmac-sha256-v2::{hex}"),
        format!("hmac-sha256:k/1:{hex}"),
        format!("hmac-sha256:k1:{}", "A".repeat(64)),
        format!("hmac-sha256-v2:k1:{}", "A".repeat(64)),
        format!("hmac-sha256:k1:{}", "a".repeat(63)),
        format!("hmac-sha256:k1:{hex}0"),
        format!("hmac-sha256:k1:{}", "g".repeat(64)),
    ] {
        assert!(!is_keyed_hash(&bad), "{bad}");
    }
    let bad_key: KeyHashes = [("password".to_owned(), "deadbeef".to_owned())].into();
    let v2_keys: KeyHashes = [("password".to_owned(), v2("b"))].into();
    for (h, keys, refusal) in [
        (hex, key_hashes(), R::BadHash("hash".to_owned())),
        (
            hash("a"),
            bad_key,
            R::BadHash("key_hashes[password]".to_owned()),
        ),
        // One report, one version: a mix is a faulty reactor.
        (
            v2("a"),
            key_hashes(),
            R::BadHash("key_hashes[password]".to_owned()),
        ),
        (
            hash("a"),
            v2_keys.clone(),
            R::BadHash("key_hashes[password]".to_owned()),
        ),
    ] {
        let then = put_at(S::UploadRequested)
            .as_actor(bot())
            .when(report_uploaded(&h, keys));
        then.then_refused(refusal);
    }
    // Both versions are accepted: v2 from reactors of now, v1 from older.
    for (h, keys) in [(v2("a"), v2_keys), (hash("a"), key_hashes())] {
        let expected = E::SecretUploaded {
            request_id: RID,
            uri: uri(),
            version: 3,
            hash: h.clone(),
            key_hashes: keys.clone(),
            upstream_ref: "secret/data/alice/db".to_owned(),
        };
        put_at(S::UploadRequested)
            .as_actor(bot())
            .when(report_uploaded(&h, keys))
            .then_events(vec![expected]);
    }
}

#[test]
fn a_failure_can_be_reported_at_any_step_before_the_end() {
    for status in [S::Requested, S::KeyProvided, S::UploadRequested] {
        let then = put_at(status)
            .as_actor(bot())
            .at(exp())
            .when(failed("restarted"));
        let state = then.then_events(vec![failed_event("restarted")]);
        assert_eq!(state.status(), S::Failed);
    }
}

#[test]
fn failure_reasons_are_one_to_1024_bytes() {
    let max = "x".repeat(MAX_REASON_BYTES);
    let then = put_at(S::UploadRequested)
        .as_actor(bot())
        .when(failed(&max));
    then.then_events(vec![failed_event(&max)]);
    let too_long = format!("{max}x");
    for (reason, refusal) in [
        ("", R::EmptyReason),
        (too_long.as_str(), R::ReasonTooLong(1025)),
    ] {
        put_at(S::UploadRequested)
            .as_actor(bot())
            .when(failed(reason))
            .then_refused(refusal);
    }
}

#[test]
fn an_unused_key_expires_once_its_time_has_come() {
    let expired = E::SecretUploadKeyExpired { request_id: RID };
    for status in [S::Requested, S::KeyProvided] {
        let then = put_at(status)
            .as_actor(bot())
            .at(exp() - Duration::seconds(1));
        then.when(C::ExpireKey)
            .then_refused(R::NotYetExpired(exp()));
        let state = put_at(status).as_actor(bot()).at(exp()).when(C::ExpireKey);
        assert_eq!(
            state.then_events(vec![expired.clone()]).status(),
            S::Expired
        );
    }
    let then = put_at(S::UploadRequested)
        .as_actor(bot())
        .at(exp())
        .when(C::ExpireKey);
    then.then_refused(R::AlreadyUsed(S::UploadRequested));
}

#[test]
fn a_repeated_report_is_a_no_op_and_a_different_one_is_refused() {
    let put = |c| report_uploaded(&hash(c), key_hashes());
    for (purpose, status, same) in [
        (PUT, S::Uploaded, put("a")),
        (
            Purpose::Verify,
            S::Verified,
            C::ReportVerified { matches: true },
        ),
        (PUT, S::Failed, failed("restarted")),
        (PUT, S::Expired, C::ExpireKey),
    ] {
        let others = [
            put("c"),
            C::ReportVerified { matches: false },
            failed("other"),
            C::ExpireKey,
        ];
        for different in others.into_iter().filter(|c| *c != same) {
            let then = at(status, purpose)
                .as_actor(bot())
                .at(exp())
                .when(different);
            then.then_refused(R::Ended(status));
        }
        at(status, purpose)
            .as_actor(bot())
            .at(exp())
            .when(same)
            .then_events(vec![]);
    }
}

#[test]
fn events_carry_their_type_and_old_events_without_key_hashes_still_read() {
    for event in history(S::Uploaded, PUT) {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], event.event_type());
        assert_eq!(serde_json::from_value::<E>(json).unwrap(), event);
    }
    let json = serde_json::to_value(requested(PUT, exp())).unwrap();
    assert_eq!(
        json["purpose"],
        serde_json::json!({ "kind": "put", "adopt": false })
    );
    let mut old = serde_json::to_value(uploaded("a")).unwrap();
    old.as_object_mut().unwrap().remove("key_hashes");
    match serde_json::from_value::<E>(old).unwrap() {
        E::SecretUploaded { key_hashes, .. } => assert!(key_hashes.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refusals_map_to_the_status_the_api_reports() {
    use RefusalKind as K;
    for (refusal, kind) in [
        (R::RoleMayNotUpload, K::Denied),
        (R::NotRequester(alice().slug), K::Denied),
        (R::NotServed(uri().store), K::Denied),
        (R::AlreadyExists(RID), K::AlreadyExists),
        (R::NotFound, K::NotFound),
        (R::StoreNotAccepting(uri().store), K::FailedPrecondition),
        (R::Expired(exp()), K::FailedPrecondition),
        (R::Ended(S::Failed), K::FailedPrecondition),
        (R::TtlOutOfRange(0), K::Invalid),
        (R::CiphertextTooShort(1), K::Invalid),
        (R::BadHash(String::new()), K::Invalid),
    ] {
        assert_eq!(refusal.kind(), kind, "{refusal:?}");
    }
}

#[test]
fn reuse_and_late_use_of_a_request_are_security_events_like_denials() {
    use crate::domain::Refusal as _;
    for recorded in [
        R::AlreadyUsed(S::Uploaded),
        R::Expired(exp()),
        R::NotRequester(alice().slug),
        R::MayNotWrite(uri()),
    ] {
        assert!(recorded.is_security_event(), "{recorded:?}");
    }
    for plain in [R::KeyNotProvided, R::CiphertextNotBase64, R::NotFound] {
        assert!(!plain.is_security_event(), "{plain:?}");
    }
}

#[test]
fn the_control_plane_ends_a_request_no_reactor_answered_after_the_grace() {
    let due = exp() + SWEEP_GRACE;
    for status in [S::Requested, S::KeyProvided] {
        put_at(status)
            .as_actor(admin())
            .at(due)
            .when(C::ExpireUnanswered)
            .then_events(vec![E::SecretUploadKeyExpired { request_id: RID }]);
        // The reactor gets the grace to report first.
        put_at(status)
            .as_actor(admin())
            .at(due - Duration::seconds(1))
            .when(C::ExpireUnanswered)
            .then_refused(R::NotYetExpired(due));
    }
}

#[test]
fn the_sweep_leaves_uploaded_and_ended_requests_to_their_reactor() {
    for status in [S::UploadRequested, S::Uploaded, S::Failed, S::Expired] {
        put_at(status)
            .as_actor(admin())
            .at(exp() + Duration::hours(1))
            .when(C::ExpireUnanswered)
            .then_events(vec![]);
    }
    // Only the control plane's own authority may sweep.
    put_at(S::Requested)
        .as_actor(alice())
        .at(exp() + Duration::hours(1))
        .when(C::ExpireUnanswered)
        .then_refused(R::NotServed(uri().store));
}

#[test]
fn a_verification_past_the_rate_limit_is_refused_and_recorded() {
    use crate::domain::Refusal as _;
    let mut command = ok_request(Purpose::Verify);
    if let C::RequestKey { may_verify_now, .. } = &mut command {
        *may_verify_now = false;
    }
    put_at(S::Absent)
        .as_actor(alice())
        .when(command)
        .then_refused(R::TooManyVerifications(uri()));
    assert!(R::TooManyVerifications(uri()).is_security_event());
    // Puts are not verifications.
    let mut put = ok_request(PUT);
    if let C::RequestKey { may_verify_now, .. } = &mut put {
        *may_verify_now = false;
    }
    put_at(S::Absent)
        .as_actor(alice())
        .when(put)
        .then_events(vec![requested(PUT, exp())]);
}

#[test]
fn a_failure_records_its_kind_and_one_recorded_without_reads_its_reason() {
    put_at(S::UploadRequested)
        .as_actor(bot())
        .when(C::ReportFailed {
            reason: "one-time key lost: the reactor restarted".into(),
            kind: FailureKind::KeyLost,
        })
        .then_events(vec![E::SecretUploadFailed {
            request_id: RID,
            reason: "one-time key lost: the reactor restarted".into(),
            kind: Some(FailureKind::KeyLost),
        }]);
    // As logs written before failures had a kind hold them.
    let legacy: E = serde_json::from_str(&format!(
        r#"{{"type":"SecretUploadFailed","request_id":"{RID}","reason":"one-time key lost: the reactor restarted after issuing the key"}}"#
    ))
    .unwrap();
    assert_eq!(legacy.failure_kind(), Some(FailureKind::KeyLost));
    let other: E = serde_json::from_str(&format!(
        r#"{{"type":"SecretUploadFailed","request_id":"{RID}","reason":"the upstream store refused"}}"#
    ))
    .unwrap();
    assert_eq!(other.failure_kind(), Some(FailureKind::Other));
    assert_eq!(
        failed_event("x").failure_kind(),
        Some(FailureKind::Upstream)
    );
}

#[test]
fn a_key_requests_arguments_are_the_callers_not_the_facts_gathered() {
    let args = |c: &C| crate::domain::CommandArguments::arguments(c);
    let first = ok_request(PUT);
    // A retry decided later: other permissions, rate window and limits.
    let mut later = request_key(PUT, Duration::minutes(9), [true, false, false]);
    if let C::RequestKey { may_verify_now, .. } = &mut later {
        *may_verify_now = false;
    }
    assert_eq!(args(&first), args(&later));
    assert_ne!(args(&first), args(&ok_request(Purpose::Verify)));
    assert_ne!(args(&first), args(&C::ExpireKey));
    let upload = |ciphertext: &str, max_ciphertext_bytes| C::Upload {
        ciphertext: ciphertext.into(),
        max_ciphertext_bytes,
    };
    assert_eq!(args(&upload("AAAA", 10)), args(&upload("AAAA", 20)));
    assert_ne!(args(&upload("AAAA", 10)), args(&upload("AAAB", 10)));
    assert!(
        !args(&upload("AAAA", 10)).to_string().contains("AAAA"),
        "the ciphertext is digested"
    );
}

// Sealed files (SPEC §11, ADR 0025).

const OLD_KEY: &str = "sk-0000000000000001";
const NEW_KEY: &str = "sk-0000000000000002";

fn submit(reseal: bool, key: SealingKeyStanding, may_write: bool) -> C {
    C::SubmitSealed {
        request_id: RID,
        uri: uri(),
        key_id: OLD_KEY.into(),
        ciphertext: b64(100),
        reseal,
        ttl: Duration::minutes(5),
        max_ciphertext_bytes: 1000,
        store_accepts_uploads: true,
        may_write,
        key,
        current: Some((3, hash("c"))),
    }
}

fn submitted(reseal: bool) -> E {
    E::SealedFileSubmitted {
        request_id: RID,
        uri: uri(),
        store: uri().store,
        requester: alice().slug,
        key_id: OLD_KEY.into(),
        reseal,
        ciphertext: b64(100),
        current_version: Some(3),
        current_hash: Some(hash("c")),
        expires_at: exp(),
    }
}

#[test]
fn given_no_request_when_a_writer_submits_a_file_sealed_to_a_known_key_then_it_waits_for_the_reactor()
 {
    let state = given::<UploadRequest>([])
        .as_actor(alice())
        .when(submit(false, SealingKeyStanding::Older, true))
        .then_events(vec![submitted(false)]);
    assert_eq!(state.status(), S::UploadRequested);
    assert_eq!(state.sealed().map(|f| f.key_id.as_str()), Some(OLD_KEY));
}

#[test]
fn given_a_file_whose_key_or_submitter_does_not_qualify_when_submitted_then_refused() {
    let cases = [
        (submit(false, SealingKeyStanding::Unknown, true), alice()),
        (submit(false, SealingKeyStanding::Retired, true), alice()),
        (submit(true, SealingKeyStanding::Newest, true), alice()),
        (submit(false, SealingKeyStanding::Older, false), alice()),
        (submit(false, SealingKeyStanding::Older, true), bot()),
    ];
    let expected = [
        R::UnknownSealingKey {
            store: uri().store,
            key_id: OLD_KEY.into(),
        },
        R::RetiredSealingKey(OLD_KEY.into()),
        R::AlreadyNewest(OLD_KEY.into()),
        R::MayNotWrite(uri()),
        R::RoleMayNotUpload,
    ];
    for ((command, who), refusal) in cases.into_iter().zip(expected) {
        given::<UploadRequest>([])
            .as_actor(who)
            .when(command)
            .then_refused(refusal);
    }
}

#[test]
fn given_an_applied_file_when_the_reactor_reports_the_latest_version_unchanged_then_it_ends_with_no_version()
 {
    let state = given::<UploadRequest>([submitted(false)])
        .as_actor(bot())
        .when(C::ReportUnchanged { version: 3 })
        .then_events(vec![E::SealedFileUnchanged {
            request_id: RID,
            uri: uri(),
            version: 3,
        }]);
    assert_eq!(state.status(), S::Unchanged);
    given::<UploadRequest>([submitted(false)])
        .as_actor(bot())
        .when(C::ReportUnchanged { version: 2 })
        .then_refused(R::NotLatest {
            reported: 2,
            latest: Some(3),
        });
}

#[test]
fn given_a_file_to_reseal_when_the_reactor_reports_then_only_a_new_box_for_another_key_ends_it() {
    let state = given::<UploadRequest>([submitted(true)])
        .as_actor(bot())
        .when(C::ReportResealed {
            key_id: NEW_KEY.into(),
            ciphertext: b64(120),
        })
        .then_events(vec![E::SealedFileResealed {
            request_id: RID,
            uri: uri(),
            key_id: NEW_KEY.into(),
            ciphertext: b64(120),
        }]);
    assert_eq!(state.status(), S::Resealed);
    given::<UploadRequest>([submitted(true)])
        .as_actor(bot())
        .when(C::ReportResealed {
            key_id: OLD_KEY.into(),
            ciphertext: b64(120),
        })
        .then_refused(R::AlreadyNewest(OLD_KEY.into()));
    let stored = C::ReportUploaded {
        version: 4,
        hash: hash("d"),
        key_hashes: key_hashes(),
        upstream_ref: "ref".into(),
    };
    given::<UploadRequest>([submitted(true)])
        .as_actor(bot())
        .when(stored)
        .then_refused(R::WrongPurpose("ReportResealed"));
    given::<UploadRequest>([submitted(false)])
        .as_actor(bot())
        .when(C::ReportResealed {
            key_id: NEW_KEY.into(),
            ciphertext: b64(120),
        })
        .then_refused(R::NotThatKind("sealed file of that kind"));
}

#[test]
fn given_a_sealed_file_when_a_one_time_key_expiry_or_another_stores_reactor_reports_then_refused() {
    given::<UploadRequest>([submitted(false)])
        .as_actor(bot())
        .when(C::ExpireKey)
        .then_refused(R::NotThatKind("one-time key request"));
    given::<UploadRequest>([submitted(false)])
        .as_actor(reactor("other", &["dev"]))
        .when(C::ReportUnchanged { version: 3 })
        .then_refused(R::NotServed(uri().store));
}

/// The state after `status`'s history, folded.
fn folded(status: S) -> UploadRequest {
    let mut state = UploadRequest::default();
    history(status, PUT).iter().for_each(|e| state.apply(e));
    state
}

#[test]
fn given_a_stored_request_when_compacted_with_the_version_its_secret_recorded_then_only_the_version_stays()
 {
    let mut state = folded(S::Uploaded);
    state.compact(Some((3, &hash("a"))));
    assert_eq!(state.status(), S::Uploaded);
    assert_eq!(state.recorded_version(), Some(3));
    assert_eq!(state.outcome(), None, "the hashes are the secret's now");
    assert_eq!((state.public_key(), state.signature()), (None, None));
    assert_eq!(state.uri(), Some(&uri()), "the request itself stays");
    assert_eq!(
        state.version_to_record(t0()),
        None,
        "nothing left to record"
    );
}

#[test]
fn given_a_stored_request_when_compacted_with_another_version_or_hash_then_its_outcome_stays_whole()
{
    for (version, h) in [(4, hash("a")), (3, hash("c"))] {
        let mut state = folded(S::Uploaded);
        state.compact(Some((version, &h)));
        assert_eq!(state.outcome(), Some(&uploaded("a")), "{version} {h}");
        assert_eq!(state.recorded_version(), None);
        assert_eq!(state.public_key(), None, "an ended request's key goes");
    }
}

#[test]
fn given_an_open_request_when_compacted_then_nothing_changes() {
    for status in [S::Requested, S::KeyProvided, S::UploadRequested] {
        let mut state = folded(status);
        let before = state.clone();
        state.compact(Some((3, &hash("a"))));
        assert_eq!(state, before, "{status}");
    }
}

#[test]
fn given_any_ended_request_when_compacted_then_its_status_and_outcome_stay_and_its_key_goes() {
    for status in [S::Verified, S::Failed, S::Expired] {
        let mut state = folded(status);
        let outcome = state.outcome().cloned();
        state.compact(None);
        assert_eq!(
            (state.status(), state.outcome().cloned()),
            (status, outcome)
        );
        assert_eq!(state.public_key(), None);
    }
}

#[test]
fn a_requests_state_holds_its_key_and_sealed_file_out_of_line() {
    // The read model holds every request of the last hour: the parts most
    // requests lack or lose (a sealed file; the key, once compacted) cost
    // a pointer each, not their size (ADR 0033). Was 248 bytes.
    assert!(std::mem::size_of::<UploadRequest>() <= 168);
    assert_eq!(std::mem::size_of::<Option<Box<SealedFile>>>(), 8);
}
