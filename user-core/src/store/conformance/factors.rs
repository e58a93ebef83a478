//! Second factors: a TOTP enrollment confirmed once, each time step and each
//! recovery code accepted once, however many use it at the same moment.

use std::sync::Arc;
use std::time::Duration;

use super::{login, session_template, t0, user};
use crate::domain::{Role, UserId};
use crate::store::{
    AccountChanges, MailPayload, NewMail, NewMfaChallenge, NewSession, Store, TaskChannel, TaskKind, UserChanges,
};

fn notice() -> NewMail {
    NewMail { kind: TaskKind::EmailPasswordChanged, payload: MailPayload::default(), token: None }
}

async fn notices(store: &Arc<dyn Store>) -> usize {
    let tasks = store.list_tasks(None, None, 100).await.unwrap();
    tasks.iter().filter(|t| t.kind.channel() == TaskChannel::Mail).count()
}

fn codes(byte: u8) -> Vec<[u8; 32]> {
    (0..10).map(|n| [byte.wrapping_add(n); 32]).collect()
}

pub(crate) async fn a_totp_enrollment_is_pending_until_confirmed_once(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    assert!(!store.start_totp(UserId::new(), "sealed-x", t0()).await.unwrap(), "no such account");
    assert_eq!(store.totp(alice).await.unwrap(), None);

    let later = t0() + Duration::from_secs(60);
    assert!(store.start_totp(alice, "sealed-1", t0()).await.unwrap());
    assert!(store.start_totp(alice, "sealed-2", later).await.unwrap(), "a pending one is replaced");
    let pending = store.totp(alice).await.unwrap().unwrap();
    assert_eq!((pending.sealed_secret.as_str(), pending.started_at, pending.confirmed_at), ("sealed-2", later, None));
    assert!(!format!("{pending:?}").contains("sealed-2"), "Debug hides the secret");

    let cutoff = t0() - Duration::from_secs(600);
    let now = later + Duration::from_secs(5);
    // The first enrollment was replaced; an expired one cannot be confirmed.
    assert!(!store.confirm_totp(alice, t0(), cutoff, 7, &codes(1), &[notice()], now).await.unwrap());
    assert!(!store.confirm_totp(alice, later, later, 7, &codes(1), &[notice()], now).await.unwrap());
    assert_eq!(notices(&store).await, 0);
    assert!(store.confirm_totp(alice, later, cutoff, 7, &codes(1), &[notice()], now).await.unwrap());
    assert!(!store.confirm_totp(alice, later, cutoff, 8, &codes(2), &[notice()], now).await.unwrap(), "once");
    let confirmed = store.totp(alice).await.unwrap().unwrap();
    assert_eq!((confirmed.confirmed_at, confirmed.last_step), (Some(now), Some(7)));
    assert_eq!(store.recovery_codes_left(alice).await.unwrap(), 10);
    assert_eq!(notices(&store).await, 1, "the notice is written with the confirmation");
    assert!(!store.start_totp(alice, "sealed-3", now).await.unwrap(), "a confirmed TOTP stays");
    assert_eq!(store.totp(alice).await.unwrap().unwrap().sealed_secret, "sealed-2");

    assert!(store.remove_totp(alice, &[notice()], now).await.unwrap());
    assert!(!store.remove_totp(alice, &[notice()], now).await.unwrap());
    assert_eq!(store.totp(alice).await.unwrap(), None);
    assert_eq!(store.recovery_codes_left(alice).await.unwrap(), 0, "removing TOTP voids the codes");
    assert_eq!(notices(&store).await, 2);
}

pub(crate) async fn a_totp_step_is_accepted_once_and_never_an_older_one(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.start_totp(alice, "sealed-1", t0()).await.unwrap();
    assert!(!store.accept_totp_step(alice, 100, None).await.unwrap(), "not while pending");
    store.confirm_totp(alice, t0(), t0() - Duration::from_secs(600), 99, &[], &[], t0()).await.unwrap();

    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.accept_totp_step(alice, 100, None).await.unwrap()
            })
        })
        .collect();
    let mut accepted = 0;
    for attempt in attempts {
        accepted += usize::from(attempt.await.unwrap());
    }
    assert_eq!(accepted, 1, "one code, one use");
    assert!(!store.accept_totp_step(alice, 99, None).await.unwrap(), "an older step");
    assert!(!store.accept_totp_step(alice, 100, None).await.unwrap(), "the same step again");
    assert!(store.accept_totp_step(alice, 101, Some("resealed")).await.unwrap());
    let factor = store.totp(alice).await.unwrap().unwrap();
    assert_eq!((factor.last_step, factor.sealed_secret.as_str()), (Some(101), "resealed"));
    let bob = user(&store, "bob").await;
    assert!(!store.accept_totp_step(bob, 102, None).await.unwrap(), "no TOTP");
}

pub(crate) async fn a_recovery_code_works_once_even_when_used_by_many_at_once(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    assert!(!store.replace_recovery_codes(UserId::new(), &codes(1), &[], t0()).await.unwrap());
    assert!(store.replace_recovery_codes(alice, &codes(1), &[notice()], t0()).await.unwrap());
    assert!(store.replace_recovery_codes(bob, &codes(1), &[], t0()).await.unwrap(), "digests are per account");
    assert_eq!(notices(&store).await, 1);

    let code = codes(1)[3];
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.use_recovery_code(alice, &code, &[notice()], t0()).await.unwrap()
            })
        })
        .collect();
    let mut used = 0;
    for attempt in attempts {
        used += usize::from(attempt.await.unwrap());
    }
    assert_eq!(used, 1, "one code, one use");
    assert_eq!(notices(&store).await, 2, "one notice with the one use");
    assert_eq!(store.recovery_codes_left(alice).await.unwrap(), 9);
    assert_eq!(store.recovery_codes_left(bob).await.unwrap(), 10, "bob's copy is his own");
    assert!(!store.use_recovery_code(alice, &[0xee; 32], &[notice()], t0()).await.unwrap(), "not a code of hers");

    // A new set voids the old one, used or not.
    assert!(store.replace_recovery_codes(alice, &codes(100), &[], t0()).await.unwrap());
    assert!(!store.use_recovery_code(alice, &codes(1)[4], &[], t0()).await.unwrap());
    assert!(store.use_recovery_code(alice, &codes(100)[4], &[], t0()).await.unwrap());
    assert_eq!(store.recovery_codes_left(alice).await.unwrap(), 9);

    // Two replacements at once leave one set of ten, never a mix.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let both: Vec<_> = [150u8, 200]
        .into_iter()
        .map(|byte| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.replace_recovery_codes(alice, &codes(byte), &[], t0()).await.unwrap()
            })
        })
        .collect();
    for replaced in both {
        assert!(replaced.await.unwrap());
    }
    assert_eq!(store.recovery_codes_left(alice).await.unwrap(), 10);
    let first_set = store.use_recovery_code(alice, &codes(150)[0], &[], t0()).await.unwrap();
    let second_set = store.use_recovery_code(alice, &codes(200)[0], &[], t0()).await.unwrap();
    assert!(first_set != second_set, "exactly one of the sets is in force");

    store.delete_user(alice, t0()).await.unwrap();
    assert_eq!(store.recovery_codes_left(alice).await.unwrap(), 0, "they go with the account");
}

fn challenge(user: UserId, byte: u8, credential_version: i64) -> NewMfaChallenge {
    NewMfaChallenge {
        digest: [byte; 32],
        user,
        credential_version,
        first_factor: crate::domain::Amr::of(&[crate::domain::AuthMethod::Fed]),
        created_at: t0(),
        expires_at: t0() + Duration::from_secs(300),
    }
}

pub(crate) async fn an_mfa_sign_in_completes_once_and_dies_after_too_many_wrong_codes(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.insert_mfa_challenge(&challenge(alice, 1, 0)).await.unwrap();
    let live = store.mfa_challenge(&[1; 32], 5, t0()).await.unwrap().unwrap();
    assert_eq!(live.first_factor, crate::domain::Amr::of(&[crate::domain::AuthMethod::Fed]), "the first step is kept");
    assert_eq!((live.user, live.credential_version, live.failures), (alice, 0, 0));
    assert_eq!(store.mfa_challenge(&[9; 32], 5, t0()).await.unwrap(), None, "unknown token");
    let late = t0() + Duration::from_secs(300);
    assert_eq!(store.mfa_challenge(&[1; 32], 5, late).await.unwrap(), None, "expired");
    assert!(!store.reserve_mfa_guess(&[1; 32], 5, late).await.unwrap(), "expired");

    // Twelve guesses at once: five are let through to be checked.
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let guesses: Vec<_> = (0..12)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.reserve_mfa_guess(&[1; 32], 5, t0()).await.unwrap()
            })
        })
        .collect();
    let mut checked = 0;
    for guess in guesses {
        checked += usize::from(guess.await.unwrap());
    }
    assert_eq!(checked, 5, "never more guesses than the limit");
    assert_eq!(store.mfa_challenge(&[1; 32], 5, t0()).await.unwrap(), None, "none left");
    assert!(!store.reserve_mfa_guess(&[1; 32], 5, t0()).await.unwrap());
    // The fifth guess may be the right code.
    let s = session_template(alice);
    assert!(store.complete_mfa_challenge(&[1; 32], 5, &login(&store, &s).await).await.unwrap());
    let s = session_template(alice);
    assert!(!store.complete_mfa_challenge(&[1; 32], 5, &login(&store, &s).await).await.unwrap(), "used");
    assert!(!store.reserve_mfa_guess(&[1; 32], 5, t0()).await.unwrap(), "gone");
    assert!(!store.reserve_mfa_guess(&[9; 32], 5, t0()).await.unwrap(), "unknown");

    // Twelve completions at once: one session.
    store.insert_mfa_challenge(&challenge(alice, 2, 0)).await.unwrap();
    assert!(store.reserve_mfa_guess(&[2; 32], 5, t0()).await.unwrap());
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let done: Vec<_> = (0..12)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                let s = session_template(alice);
                let login = login(&store, &s).await;
                barrier.wait().await;
                store.complete_mfa_challenge(&[2; 32], 5, &login).await.unwrap()
            })
        })
        .collect();
    let mut opened = 0;
    for attempt in done {
        opened += usize::from(attempt.await.unwrap());
    }
    assert_eq!(opened, 1, "one token, one session");
    assert_eq!(store.list_sessions(alice, t0()).await.unwrap().len(), 2, "this one and the fifth guess's");
    assert_eq!(store.mfa_challenge(&[2; 32], 5, t0()).await.unwrap(), None, "used up");

    // A password change in between voids the sign-in the old password began.
    store.insert_mfa_challenge(&challenge(alice, 3, 0)).await.unwrap();
    let changed = UserChanges { password_hash: Some("another hash".into()), ..UserChanges::default() };
    store.update_user(alice, &changed, t0()).await.unwrap().unwrap();
    let s = session_template(alice);
    let stale = NewSession { session: s, credential_version: 0, rehash: None };
    assert!(!store.complete_mfa_challenge(&[3; 32], 5, &stale).await.unwrap());
    let bob = user(&store, "bob").await;
    store.insert_mfa_challenge(&challenge(bob, 4, 0)).await.unwrap();
    let s = session_template(alice);
    let alices = login(&store, &s).await;
    assert!(
        !store.complete_mfa_challenge(&[4; 32], 5, &alices).await.unwrap(),
        "bob's token opens no session of alice"
    );

    // Expired challenges go with the retention sweep.
    let purged = store.purge_expired_tokens(late, 100).await.unwrap();
    assert!(purged >= 1, "{purged}");
    assert!(store.mfa_challenge(&[4; 32], 5, t0()).await.unwrap().is_none());
}

pub(crate) async fn admins_without_a_second_factor_are_listed_by_name(store: Arc<dyn Store>) {
    let promote = AccountChanges { role: Some(Role::Admin), ..AccountChanges::default() };
    let mut admins = Vec::new();
    for name in ["zed", "amy", "bob", "cat"] {
        let id = user(&store, name).await;
        store.change_account(id, &promote, t0()).await.unwrap();
        admins.push(id);
    }
    user(&store, "plain").await;
    let names = |list: Vec<crate::domain::Username>| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(names(store.admins_without_second_factor(10).await.unwrap()), ["amy", "bob", "cat", "zed"]);
    assert_eq!(names(store.admins_without_second_factor(2).await.unwrap()), ["amy", "bob"]);
    // A confirmed TOTP counts; a pending one does not; a disabled admin is not named.
    let (zed, amy, bob) = (admins[0], admins[1], admins[2]);
    assert!(store.start_totp(amy, "sealed", t0()).await.unwrap());
    let cutoff = t0() - Duration::from_secs(600);
    assert!(store.confirm_totp(amy, t0(), cutoff, 1, &codes(1), &[], t0()).await.unwrap());
    assert!(store.start_totp(bob, "sealed", t0()).await.unwrap());
    let disable = AccountChanges { disabled: Some(true), ..AccountChanges::default() };
    store.change_account(zed, &disable, t0()).await.unwrap();
    assert_eq!(names(store.admins_without_second_factor(10).await.unwrap()), ["bob", "cat"]);
}
