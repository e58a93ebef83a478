//! Mail tokens and mail tasks: single use, expiry, invalidation, and the
//! raw token leaving the outbox once its mail is out.

use std::sync::Arc;
use std::time::Duration;

use super::{record, session, t0, user};
use crate::domain::{Email, Locale, TrackBatch, UserId};
use crate::store::{
    EmailRevert, MailPayload, NewEmailRevert, NewMail, NewToken, Store, TaskChannel, TaskKind, TaskStatus, TokenMail,
    TokenOwner, TokenPurpose, UserChanges, UserKey,
};

fn token_mail(kind: TaskKind, purpose: TokenPurpose, email: &str, byte: u8) -> NewMail {
    NewMail {
        kind,
        payload: MailPayload { to: None, token: Some(format!("raw-{byte}")), change: None },
        token: Some(NewToken {
            digest: [byte; 32],
            purpose,
            email: Email::parse(email).unwrap(),
            expires_at: t0() + Duration::from_secs(3600),
        }),
    }
}

pub(super) fn verify(email: &str, byte: u8) -> NewMail {
    token_mail(TaskKind::EmailVerify, TokenPurpose::Verify, email, byte)
}

pub(super) fn reset(email: &str, byte: u8) -> NewMail {
    token_mail(TaskKind::EmailPasswordReset, TokenPurpose::Reset, email, byte)
}

async fn mail_tasks(store: &Arc<dyn Store>) -> Vec<crate::store::DeferredTask> {
    let tasks = store.list_tasks(None, None, 100).await.unwrap();
    tasks.into_iter().filter(|t| t.kind.channel() == TaskChannel::Mail).collect()
}

pub(crate) async fn a_verification_token_verifies_its_address_once(store: Arc<dyn Store>) {
    let mut r = record("alice");
    r.user.locale = Locale::Ru;
    store.insert_user(&r, &[verify("alice@example.com", 1)]).await.unwrap();
    let alice = r.user.id;
    let stored = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().user;
    assert_eq!((stored.locale, stored.email_verified), (Locale::Ru, false));
    let tasks = mail_tasks(&store).await;
    assert_eq!(tasks.len(), 1, "the mail is enqueued with the account");
    assert_eq!(tasks[0].kind, TaskKind::EmailVerify);
    assert_eq!(tasks[0].payload.as_ref().and_then(|p| p.token.clone()).as_deref(), Some("raw-1"));

    assert_eq!(store.verify_email(&[9; 32], t0()).await.unwrap(), None, "unknown token");
    let later = t0() + Duration::from_secs(3600);
    assert_eq!(store.verify_email(&[1; 32], later).await.unwrap(), None, "expired at its expiry");
    // An expired token is not consumed by the failed try; a live one is, once.
    let ok = store.send_token_mail(TokenOwner::Id(alice), &verify("alice@example.com", 2), None, t0()).await;
    assert_eq!(ok.unwrap(), TokenMail::Sent(alice));
    assert_eq!(store.verify_email(&[1; 32], t0()).await.unwrap(), None, "a newer token voids the older one");
    assert_eq!(store.verify_email(&[2; 32], t0()).await.unwrap(), Some(alice));
    assert!(store.find_user(UserKey::Id(alice)).await.unwrap().unwrap().user.email_verified);
    assert_eq!(store.verify_email(&[2; 32], t0()).await.unwrap(), None, "single use");
}

pub(crate) async fn a_new_address_is_unverified_and_voids_tokens_sent_to_the_old_one(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let sent = store.send_token_mail(TokenOwner::Id(alice), &verify("alice@example.com", 1), None, t0()).await;
    assert_eq!(sent.unwrap(), TokenMail::Sent(alice));
    assert_eq!(store.verify_email(&[1; 32], t0()).await.unwrap(), Some(alice));
    store.send_token_mail(TokenOwner::Id(alice), &verify("alice@example.com", 2), None, t0()).await.unwrap();
    let changes = UserChanges {
        email: Some(Email::parse("alice@new.example").unwrap()),
        locale: Some(Locale::Ru),
        ..UserChanges::default()
    };
    let updated = store.update_user(alice, &changes, t0()).await.unwrap().unwrap().user;
    assert_eq!((updated.email_verified, updated.locale), (false, Locale::Ru), "a new address starts unverified");
    assert_eq!(store.verify_email(&[2; 32], t0()).await.unwrap(), None, "sent to the old address");

    // The same address again keeps the verification and its pending token.
    let same = UserChanges { email: Some(Email::parse("alice@new.example").unwrap()), ..UserChanges::default() };
    store.send_token_mail(TokenOwner::Id(alice), &verify("alice@new.example", 3), None, t0()).await.unwrap();
    store.update_user(alice, &same, t0()).await.unwrap().unwrap();
    assert_eq!(store.verify_email(&[3; 32], t0()).await.unwrap(), Some(alice));
    let unchanged = store.update_user(alice, &same, t0()).await.unwrap().unwrap().user;
    assert!(unchanged.email_verified, "setting the same address keeps it verified");
}

pub(crate) async fn token_mails_find_the_account_by_address_and_respect_the_interval(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let email = Email::parse("alice@example.com").unwrap();
    let nobody = Email::parse("nobody@example.com").unwrap();
    let mail = reset("alice@example.com", 1);
    let sent = store.send_token_mail(TokenOwner::Email(&nobody), &mail, None, t0()).await.unwrap();
    assert_eq!(sent, TokenMail::NoAccount);
    // The same work as for an account: a task, for an id no account has.
    let stand_in = mail_tasks(&store).await;
    assert_eq!(stand_in.len(), 1);
    assert!(store.find_user(UserKey::Id(stand_in[0].user_id)).await.unwrap().is_none());
    assert_eq!(store.reset_password(&[1; 32], "hash", &mail, t0()).await.unwrap(), None, "and no token");
    let missing = store.send_token_mail(TokenOwner::Id(UserId::new()), &mail, None, t0()).await.unwrap();
    assert_eq!(missing, TokenMail::NoAccount);

    let since = t0() - Duration::from_secs(60);
    let first = store.send_token_mail(TokenOwner::Email(&email), &mail, Some(since), t0()).await.unwrap();
    assert_eq!(first, TokenMail::Sent(alice));
    let (second, other, fourth) =
        (reset("alice@example.com", 2), verify("alice@example.com", 3), reset("alice@example.com", 4));
    let again = store.send_token_mail(TokenOwner::Email(&email), &second, Some(since), t0()).await.unwrap();
    assert_eq!(again, TokenMail::TooSoon);
    // Another purpose has its own interval.
    let verify_sent = store.send_token_mail(TokenOwner::Id(alice), &other, Some(since), t0()).await.unwrap();
    assert_eq!(verify_sent, TokenMail::Sent(alice));
    let a_minute_on = t0() + Duration::from_secs(61);
    let later = store.send_token_mail(TokenOwner::Id(alice), &fourth, Some(t0()), a_minute_on).await.unwrap();
    assert_eq!(later, TokenMail::Sent(alice));
    assert_eq!(mail_tasks(&store).await.len(), 4);
}

pub(crate) async fn a_reset_token_sets_the_password_once_and_ends_every_session(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let s1 = session(&store, alice).await;
    let s2 = session(&store, alice).await;
    for _ in 0..3 {
        let rule: crate::store::LockRule = Box::new(|_| Some(t0() + Duration::from_secs(600)));
        assert!(store.reserve_login_attempt(alice, None, t0(), rule).await.is_ok());
    }
    store.send_token_mail(TokenOwner::Id(alice), &reset("alice@example.com", 1), None, t0()).await.unwrap();
    // Her second factor stays: a reset link proves the mailbox, not the authenticator.
    store.start_totp(alice, "sealed", t0()).await.unwrap();
    store.confirm_totp(alice, t0(), t0() - Duration::from_secs(600), 1, &[], &[], t0()).await.unwrap();
    let before = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    let notice = NewMail { kind: TaskKind::EmailPasswordChanged, payload: MailPayload::default(), token: None };

    assert_eq!(store.reset_password(&[7; 32], "new-hash", &notice, t0()).await.unwrap(), None, "unknown token");
    assert_eq!(store.reset_password(&[1; 32], "new-hash", &notice, t0()).await.unwrap(), Some(alice));
    let after = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!(after.password_hash.as_deref(), Some("new-hash"));
    assert_eq!(after.credential_version, before.credential_version + 1);
    assert_eq!((after.failed_logins, after.locked_until), (0, None), "login throttling cleared");
    assert!(store.totp(alice).await.unwrap().is_some_and(|t| t.confirmed_at.is_some()), "TOTP stays on");
    for s in [s1, s2] {
        assert!(store.session(s.id).await.unwrap().unwrap().revoked_at.is_some(), "every session ends");
    }
    assert_eq!(store.reset_password(&[1; 32], "again", &notice, t0()).await.unwrap(), None, "single use");
    let kinds: Vec<TaskKind> = mail_tasks(&store).await.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [TaskKind::EmailPasswordReset, TaskKind::EmailPasswordChanged]);

    // A password change voids reset tokens sent before it.
    store.send_token_mail(TokenOwner::Id(alice), &reset("alice@example.com", 2), None, t0()).await.unwrap();
    let change = UserChanges { password_hash: Some("changed".into()), ..UserChanges::default() };
    store.update_user(alice, &change, t0()).await.unwrap().unwrap();
    assert_eq!(store.reset_password(&[2; 32], "stale", &notice, t0()).await.unwrap(), None);
}

pub(crate) async fn a_mail_token_leaves_the_outbox_once_delivered_or_dead(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    store.send_token_mail(TokenOwner::Id(alice), &verify("alice@example.com", 1), None, t0()).await.unwrap();
    store.send_token_mail(TokenOwner::Id(bob), &verify("bob@example.com", 2), None, t0()).await.unwrap();
    let claim = store.claim_tasks(t0(), t0() + Duration::from_secs(60), 10).await.unwrap();
    assert_eq!(claim.tasks.len(), 2);
    assert!(claim.tasks.iter().all(|t| t.payload.as_ref().is_some_and(|p| p.token.is_some())));
    let (a, b) = (claim.tasks[0].id, claim.tasks[1].id);
    store.complete_tasks(claim.lease_id, &[a], t0()).await.unwrap();
    assert!(store.fail_task(claim.lease_id, b, "mailbox unavailable", None, t0()).await.unwrap());
    let tasks = mail_tasks(&store).await;
    assert_eq!(tasks.iter().map(|t| t.status).collect::<Vec<_>>(), [TaskStatus::Done, TaskStatus::Dead]);
    assert!(tasks.iter().all(|t| t.payload.is_none()), "no raw token stays in the database");
    // The tokens themselves are still usable (only their digests are kept).
    assert_eq!(store.verify_email(&[1; 32], t0()).await.unwrap(), Some(alice));
}

pub(crate) async fn mail_does_not_wait_behind_a_users_held_events(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.add_favorites(alice, &TrackBatch::parse("t1").unwrap(), t0()).await.unwrap();
    let first = store.claim_tasks(t0(), t0() + Duration::from_secs(60), 10).await.unwrap();
    assert_eq!(first.tasks.len(), 1, "the event is leased (in flight)");
    store.send_token_mail(TokenOwner::Id(alice), &verify("alice@example.com", 1), None, t0()).await.unwrap();
    store.add_favorites(alice, &TrackBatch::parse("t2").unwrap(), t0()).await.unwrap();
    let second = store.claim_tasks(t0(), t0() + Duration::from_secs(60), 10).await.unwrap();
    let kinds: Vec<TaskKind> = second.tasks.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [TaskKind::EmailVerify], "the mail flows; the second event waits behind the first");
}

pub(crate) async fn expired_tokens_are_purged(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.send_token_mail(TokenOwner::Id(alice), &verify("alice@example.com", 1), None, t0()).await.unwrap();
    store.send_token_mail(TokenOwner::Id(alice), &reset("alice@example.com", 2), None, t0()).await.unwrap();
    assert_eq!(store.purge_expired_tokens(t0(), 10).await.unwrap(), 0);
    let expiry = t0() + Duration::from_secs(3600);
    assert_eq!(store.purge_expired_tokens(expiry, 1).await.unwrap(), 1, "bounded by the limit");
    assert_eq!(store.purge_expired_tokens(expiry, 10).await.unwrap(), 1);
    store.delete_user(alice, t0()).await.unwrap();
}

pub(crate) async fn a_token_used_by_many_at_once_works_exactly_once(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.send_token_mail(TokenOwner::Id(alice), &reset("alice@example.com", 1), None, t0()).await.unwrap();
    store.send_token_mail(TokenOwner::Id(alice), &verify("alice@example.com", 2), None, t0()).await.unwrap();
    let notice = NewMail { kind: TaskKind::EmailPasswordChanged, payload: MailPayload::default(), token: None };
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let attempts: Vec<_> = (0..16)
        .map(|n| {
            let (store, barrier, notice) = (store.clone(), barrier.clone(), notice.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                if n % 2 == 0 {
                    store.reset_password(&[1; 32], &format!("hash-{n}"), &notice, t0()).await.unwrap()
                } else {
                    store.verify_email(&[2; 32], t0()).await.unwrap()
                }
            })
        })
        .collect();
    let mut resets = 0;
    let mut verifies = 0;
    for (n, attempt) in attempts.into_iter().enumerate() {
        if attempt.await.unwrap().is_some() {
            if n % 2 == 0 { resets += 1 } else { verifies += 1 }
        }
    }
    assert_eq!((resets, verifies), (1, 1), "each token works once");
    let changed = mail_tasks(&store).await.iter().filter(|t| t.kind == TaskKind::EmailPasswordChanged).count();
    assert_eq!(changed, 1, "one reset, one notice");
}

pub(crate) async fn an_undo_link_restores_the_old_address_once_and_reserves_it_meanwhile(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let s = session(&store, alice).await;
    let week = t0() + Duration::from_secs(7 * 86_400);
    let link = |byte: u8, old: &str| NewEmailRevert {
        digest: [byte; 32],
        old_email: Email::parse(old).unwrap(),
        expires_at: week,
    };
    let moved = UserChanges {
        email: Some(Email::parse("thief@example.com").unwrap()),
        revert: Some(link(1, "alice@example.com")),
        ..UserChanges::default()
    };
    store.update_user(alice, &moved, t0()).await.unwrap().unwrap();
    let moved_again = UserChanges {
        email: Some(Email::parse("thief2@example.com").unwrap()),
        revert: Some(link(2, "thief@example.com")),
        ..UserChanges::default()
    };
    store.update_user(alice, &moved_again, t0()).await.unwrap().unwrap();

    // Nobody else may take the old address while the link lives.
    let mut squatter = record("mallory");
    squatter.user.email = Some(Email::parse("alice@example.com").unwrap());
    let refused = store.insert_user(&squatter, &[]).await;
    assert!(matches!(refused, Err(crate::Error::Conflict(crate::ConflictField::Email))), "{refused:?}");
    let bob = user(&store, "bob").await;
    let to_old = UserChanges { email: Some(Email::parse("alice@example.com").unwrap()), ..UserChanges::default() };
    assert!(matches!(store.update_user(bob, &to_old, t0()).await, Err(crate::Error::Conflict(_))));

    let revert = |byte: u8| EmailRevert {
        digest: [byte; 32],
        unusable_password_hash: "unusable".into(),
        reset_mail: reset("placeholder@example.com", 9),
    };
    // The taker turned TOTP on, to keep the account after the owner resets the password.
    store.start_totp(alice, "sealed-by-the-taker", t0()).await.unwrap();
    let cutoff = t0() - Duration::from_secs(600);
    let codes: Vec<[u8; 32]> = (0..10u8).map(|n| [n; 32]).collect();
    assert!(store.confirm_totp(alice, t0(), cutoff, 1, &codes, &[], t0()).await.unwrap());
    let before = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!(store.revert_email(&revert(1), t0()).await.unwrap(), Some(alice));
    assert_eq!(store.totp(alice).await.unwrap(), None, "the taker's factor is gone");
    assert_eq!(store.recovery_codes_left(alice).await.unwrap(), 0);
    let after = store.find_user(UserKey::Id(alice)).await.unwrap().unwrap();
    assert_eq!((after.user.email.as_ref().unwrap().as_str(), after.user.email_verified), ("alice@example.com", true));
    assert_eq!(after.password_hash.as_deref(), Some("unusable"));
    assert!(after.credential_version > before.credential_version);
    assert!(store.session(s.id).await.unwrap().unwrap().revoked_at.is_some(), "every session ended");
    assert_eq!(store.revert_email(&revert(1), t0()).await.unwrap(), None, "single use");
    assert_eq!(store.revert_email(&revert(2), t0()).await.unwrap(), None, "the account's other links are void");
    let resets: Vec<_> =
        mail_tasks(&store).await.into_iter().filter(|t| t.kind == TaskKind::EmailPasswordReset).collect();
    assert_eq!(resets.len(), 1, "a reset link to the restored address");
    assert!(store.reset_password(&[9; 32], "new-hash", &reset("x@example.com", 10), t0()).await.unwrap().is_some());

    // A link expires, and the reservation with it.
    let carol = user(&store, "carol").await;
    let away = UserChanges {
        email: Some(Email::parse("carol2@example.com").unwrap()),
        revert: Some(NewEmailRevert {
            digest: [3; 32],
            old_email: Email::parse("carol@example.com").unwrap(),
            expires_at: t0() + Duration::from_secs(60),
        }),
        ..UserChanges::default()
    };
    store.update_user(carol, &away, t0()).await.unwrap().unwrap();
    let later = t0() + Duration::from_secs(61);
    assert_eq!(store.revert_email(&revert(3), later).await.unwrap(), None, "expired");
    let to_carols = UserChanges { email: Some(Email::parse("carol@example.com").unwrap()), ..UserChanges::default() };
    assert!(store.update_user(bob, &to_carols, later).await.unwrap().is_some(), "free again");
    assert!(store.purge_expired_tokens(later, 100).await.unwrap() >= 1);
}
