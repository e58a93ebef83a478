//! Device sign-in requests: polling and `slow_down`, decisions taken once,
//! wrong user codes, the single exchange for a session, and retention.

use std::sync::Arc;

use chrono::TimeDelta;

use super::{login, session_template, set_disabled, t0, user};
use crate::domain::{UserCode, UserId};
use crate::error::{Error, UnauthorizedReason};
use crate::store::{DEVICE_GRANT_KEPT, DeviceDecision, NewDeviceGrant, Store, UserChanges, UserCodeAction};

const LEEWAY: TimeDelta = TimeDelta::milliseconds(500);

fn grant(byte: u8, code: &str) -> NewDeviceGrant {
    NewDeviceGrant {
        digest: [byte; 32],
        user_code: UserCode::parse(code).unwrap(),
        client_id: "tv-app".into(),
        device_name: Some("Living-room TV".into()),
        created_at: t0(),
        expires_at: t0() + TimeDelta::minutes(10),
        interval_secs: 5,
        request_ip: Some("192.0.2.7".into()),
    }
}

/// An approval by `user` from a new session of theirs (stored, an hour long).
async fn approve(store: &Arc<dyn Store>, user: UserId) -> UserCodeAction {
    let session = session_template(user);
    assert!(store.open_session(&login(store, &session).await).await.unwrap());
    UserCodeAction::Approve { user, session: session.id }
}

fn secs(n: i64) -> chrono::DateTime<chrono::Utc> {
    t0() + TimeDelta::seconds(n)
}

pub(crate) async fn device_polls_faster_than_the_interval_slow_down(store: Arc<dyn Store>) {
    assert!(store.insert_device_grant(&grant(1, "BCDF-GHJK")).await.unwrap());
    assert!(!store.insert_device_grant(&grant(2, "BCDF-GHJK")).await.unwrap(), "a user code is stored once");
    assert!(store.poll_device_grant(&[9; 32], secs(1), LEEWAY, 5).await.unwrap().is_none(), "unknown code");

    let first = store.poll_device_grant(&[1; 32], secs(1), LEEWAY, 5).await.unwrap().unwrap();
    assert!(!first.too_fast, "the first poll has nothing to be too close to");
    assert_eq!(first.grant.decision, DeviceDecision::Pending);
    assert_eq!(first.grant.device_name.as_deref(), Some("Living-room TV"));
    let early = store.poll_device_grant(&[1; 32], secs(3), LEEWAY, 5).await.unwrap().unwrap();
    assert!(early.too_fast);
    assert_eq!(early.grant.interval_secs, 10, "slow_down adds the step");
    let jittered = t0() + TimeDelta::milliseconds(12_700);
    let on_time = store.poll_device_grant(&[1; 32], jittered, LEEWAY, 5).await.unwrap().unwrap();
    assert!(!on_time.too_fast, "the new interval, less the leeway, is enough");
    assert_eq!(on_time.grant.interval_secs, 10, "and the interval stays grown");
}

pub(crate) async fn a_user_code_is_decided_once_and_redeemed_once(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    store.insert_device_grant(&grant(1, "BCDF-GHJK")).await.unwrap();
    let code = UserCode::parse("bcdfghjk").unwrap();

    let seen = store.resolve_user_code(&code, UserCodeAction::Look, 5, secs(1)).await.unwrap().unwrap();
    assert_eq!((seen.decision, seen.client_id.as_str()), (DeviceDecision::Pending, "tv-app"));
    let approved = store.resolve_user_code(&code, approve(&store, alice).await, 5, secs(2)).await.unwrap().unwrap();
    assert_eq!(approved.decision, DeviceDecision::Approved(alice));
    assert_eq!(approved.approval.map(|a| a.credential_version), Some(0), "bound to the credentials as they are");
    assert_eq!((approved.request_ip.as_deref(), approved.created_at), (Some("192.0.2.7"), t0()));
    let again = store.resolve_user_code(&code, UserCodeAction::Deny(bob), 5, secs(3)).await.unwrap();
    assert!(again.is_none(), "a decision is taken once");
    let polled = store.poll_device_grant(&[1; 32], secs(4), LEEWAY, 5).await.unwrap().unwrap();
    assert_eq!(polled.grant.decision, DeviceDecision::Approved(alice));

    let mut for_bob = session_template(bob);
    for_bob.created_at = secs(5);
    assert!(!store.redeem_device_grant(&[1; 32], &login(&store, &for_bob).await).await.unwrap(), "alice's, not bob's");
    let mut device = session_template(alice);
    device.created_at = secs(5);
    device.device_name = Some("Living-room TV".into());
    let new = login(&store, &device).await;
    assert!(store.redeem_device_grant(&[1; 32], &new).await.unwrap());
    let live = store.list_sessions(alice, secs(6)).await.unwrap();
    let named: Vec<_> = live.iter().filter_map(|s| s.device_name.as_deref()).collect();
    assert_eq!(named, ["Living-room TV"], "the approver's session and the device's");
    let mut second = session_template(alice);
    second.created_at = secs(6);
    assert!(!store.redeem_device_grant(&[1; 32], &login(&store, &second).await).await.unwrap(), "exactly once");
    assert!(store.poll_device_grant(&[1; 32], secs(7), LEEWAY, 5).await.unwrap().is_none(), "and then gone");
}

pub(crate) async fn declined_expired_and_disabled_requests_give_no_session(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.insert_device_grant(&grant(1, "BCDF-GHJK")).await.unwrap();
    store.insert_device_grant(&grant(2, "CDFG-HJKL")).await.unwrap();
    store.insert_device_grant(&grant(3, "DFGH-JKLM")).await.unwrap();
    let code = |s| UserCode::parse(s).unwrap();

    let denied = store.resolve_user_code(&code("BCDFGHJK"), UserCodeAction::Deny(alice), 5, secs(1)).await.unwrap();
    assert_eq!(denied.unwrap().decision, DeviceDecision::Denied(alice));
    let mut s = session_template(alice);
    s.created_at = secs(2);
    assert!(!store.redeem_device_grant(&[1; 32], &login(&store, &s).await).await.unwrap(), "declined");

    let late = secs(600);
    let expired = store.resolve_user_code(&code("CDFGHJKL"), approve(&store, alice).await, 5, late).await.unwrap();
    assert!(expired.is_none(), "expired at its expiry");

    store.resolve_user_code(&code("DFGHJKLM"), approve(&store, alice).await, 5, secs(1)).await.unwrap().unwrap();
    assert!(set_disabled(&store, alice, true).await.unwrap());
    let mut s = session_template(alice);
    s.created_at = secs(2);
    let login = login(&store, &s).await;
    assert!(!store.redeem_device_grant(&[3; 32], &login).await.unwrap(), "no session for a disabled account");
    let void = store.poll_device_grant(&[3; 32], secs(3), LEEWAY, 5).await.unwrap().unwrap();
    assert_eq!(void.grant.decision, DeviceDecision::Denied(alice), "disabling ended the approving session");
}

pub(crate) async fn wrong_codes_sharing_a_half_void_a_code_at_the_limit(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.insert_device_grant(&grant(1, "BCDF-GHJK")).await.unwrap();
    store.insert_device_grant(&grant(2, "XZXZ-XZXZ")).await.unwrap();
    let code = |s| UserCode::parse(s).unwrap();
    let look = UserCodeAction::Look;
    // Two wrong codes with the right first half, three with the right last half.
    for wrong in ["BCDF-BBBB", "BCDF-CCCC", "DDDD-GHJK", "FFFF-GHJK"] {
        assert!(store.resolve_user_code(&code(wrong), look, 5, secs(1)).await.unwrap().is_none(), "{wrong}");
    }
    let after_four = store.resolve_user_code(&code("BCDF-GHJK"), look, 5, secs(1)).await.unwrap().unwrap();
    assert_eq!(after_four.wrong_tries, 4, "each counted once against the code they share a half with");
    let other = store.resolve_user_code(&code("XZXZ-XZXZ"), look, 5, secs(1)).await.unwrap().unwrap();
    assert_eq!(other.wrong_tries, 0, "codes sharing no half are not touched");
    assert!(store.resolve_user_code(&code("GGGG-GHJK"), look, 5, secs(1)).await.unwrap().is_none());
    let voided = store.resolve_user_code(&code("BCDF-GHJK"), approve(&store, alice).await, 5, secs(2)).await;
    assert!(voided.unwrap().is_none(), "five wrong tries void the code, even typed right");
    let poll = store.poll_device_grant(&[1; 32], secs(3), LEEWAY, 5).await.unwrap().unwrap();
    assert_eq!(poll.grant.wrong_tries, 5, "the device sees why");
}

pub(crate) async fn one_of_many_concurrent_decisions_wins(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.insert_device_grant(&grant(1, "BCDF-GHJK")).await.unwrap();
    let code = UserCode::parse("BCDF-GHJK").unwrap();
    let approval = approve(&store, alice).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let calls = (0..16).map(|n| {
        let (store, barrier, code) = (store.clone(), barrier.clone(), code.clone());
        tokio::spawn(async move {
            let action = if n % 2 == 0 { approval } else { UserCodeAction::Deny(alice) };
            barrier.wait().await;
            store.resolve_user_code(&code, action, 5, secs(1)).await.unwrap()
        })
    });
    let outcomes = futures_util::future::join_all(calls).await;
    let won: Vec<_> = outcomes.into_iter().filter_map(|o| o.unwrap()).collect();
    assert_eq!(won.len(), 1, "exactly one decision: {won:?}");
    let polled = store.poll_device_grant(&[1; 32], secs(2), LEEWAY, 5).await.unwrap().unwrap();
    assert_eq!(polled.grant.decision, won[0].decision);
}

pub(crate) async fn expired_device_requests_are_purged_after_a_while(store: Arc<dyn Store>) {
    store.insert_device_grant(&grant(1, "BCDF-GHJK")).await.unwrap();
    let expiry = t0() + TimeDelta::minutes(10);
    assert_eq!(store.purge_expired_tokens(expiry, 100).await.unwrap(), 0, "kept for late polls");
    assert!(store.poll_device_grant(&[1; 32], expiry, LEEWAY, 5).await.unwrap().is_some());
    assert_eq!(store.purge_expired_tokens(expiry + DEVICE_GRANT_KEPT, 100).await.unwrap(), 1);
    assert!(store.poll_device_grant(&[1; 32], expiry, LEEWAY, 5).await.unwrap().is_none());
}

pub(crate) async fn an_approved_request_redeemed_by_many_at_once_opens_one_session(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.insert_device_grant(&grant(1, "BCDF-GHJK")).await.unwrap();
    let code = UserCode::parse("BCDF-GHJK").unwrap();
    store.resolve_user_code(&code, approve(&store, alice).await, 5, secs(1)).await.unwrap().unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut logins = Vec::new();
    for _ in 0..8 {
        let mut session = session_template(alice);
        session.created_at = secs(2);
        logins.push(login(&store, &session).await);
    }
    let redeems = logins.into_iter().map(|login| {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            store.redeem_device_grant(&[1; 32], &login).await.unwrap()
        })
    });
    let won = futures_util::future::join_all(redeems).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(won, 1, "one exchange, whoever asks at the same moment");
    assert_eq!(store.list_sessions(alice, secs(3)).await.unwrap().len(), 2, "the approver's and the device's");
}

pub(crate) async fn an_approval_ends_with_its_session_and_with_a_credential_change(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let code = |s| UserCode::parse(s).unwrap();
    let device_login = |at| {
        let mut s = session_template(alice);
        s.created_at = secs(at);
        s
    };

    // Approved from a session that then ends (logout): gone with it.
    store.insert_device_grant(&grant(1, "BCDF-GHJK")).await.unwrap();
    let from = approve(&store, alice).await;
    store.resolve_user_code(&code("BCDFGHJK"), from, 5, secs(1)).await.unwrap().unwrap();
    let UserCodeAction::Approve { session, .. } = from else { unreachable!() };
    assert!(store.revoke_session(session, secs(2)).await.unwrap());
    let voided = store.poll_device_grant(&[1; 32], secs(3), LEEWAY, 5).await.unwrap().unwrap();
    assert_eq!(voided.grant.decision, DeviceDecision::Denied(alice), "voided with it");
    assert!(!store.redeem_device_grant(&[1; 32], &login(&store, &device_login(3)).await).await.unwrap());

    // Approving from an ended session is refused, and decides nothing.
    store.insert_device_grant(&grant(2, "CDFG-HJKL")).await.unwrap();
    let refused = store.resolve_user_code(&code("CDFGHJKL"), from, 5, secs(4)).await;
    assert!(matches!(refused, Err(Error::Unauthorized(UnauthorizedReason::SessionRevoked))), "{refused:?}");
    let still = store.resolve_user_code(&code("CDFGHJKL"), UserCodeAction::Look, 5, secs(4)).await.unwrap().unwrap();
    assert_eq!((still.decision, still.wrong_tries), (DeviceDecision::Pending, 0));

    // Approved, then the password changes (the approver's session kept):
    // the credentials it was approved under are gone, so is the approval.
    let from = approve(&store, alice).await;
    let UserCodeAction::Approve { session, .. } = from else { unreachable!() };
    store.resolve_user_code(&code("CDFGHJKL"), from, 5, secs(5)).await.unwrap().unwrap();
    let change =
        UserChanges { password_hash: Some("new-hash".into()), keep_session: Some(session), ..UserChanges::default() };
    store.update_user(alice, &change, secs(6)).await.unwrap().unwrap();
    let device = login(&store, &device_login(7)).await;
    assert!(!store.redeem_device_grant(&[2; 32], &device).await.unwrap(), "the credentials changed");

    // Approved, then every session ends (revoke-all, reset, disable): voided.
    store.insert_device_grant(&grant(3, "DFGH-JKLM")).await.unwrap();
    store.resolve_user_code(&code("DFGHJKLM"), approve(&store, alice).await, 5, secs(8)).await.unwrap().unwrap();
    store.revoke_user_sessions(alice, None, secs(9)).await.unwrap();
    let voided = store.poll_device_grant(&[3; 32], secs(10), LEEWAY, 5).await.unwrap().unwrap();
    assert_eq!(voided.grant.decision, DeviceDecision::Denied(alice), "voided with them");
}
