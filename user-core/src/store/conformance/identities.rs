//! Identities at other providers: keyed by (issuer, subject), one per
//! provider per account, the last way to sign in kept, pre-account takeover.

use super::*;
use crate::store::{IdentityRecord, Unlinked};

fn identity(user: UserId, provider: &str, subject: &str) -> IdentityRecord {
    IdentityRecord {
        issuer: format!("https://{provider}.example"),
        subject: subject.into(),
        provider: provider.into(),
        user,
        email: Some(Email::parse("person@example.com").unwrap()),
        email_verified: true,
        linked_at: t0(),
    }
}

/// An account with no password (it signs in only with its identities).
async fn passwordless(store: &Arc<dyn Store>, name: &str) -> UserId {
    let mut r = record(name);
    r.password_hash = None;
    store.insert_user(&r, &[]).await.unwrap();
    r.user.id
}

pub(crate) async fn an_identity_is_one_account_s_and_one_per_provider(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    assert!(store.link_identity(&identity(alice, "google", "1"), &[]).await.unwrap());
    assert!(!store.link_identity(&identity(bob, "google", "1"), &[]).await.unwrap(), "another account's");
    assert!(!store.link_identity(&identity(alice, "google", "2"), &[]).await.unwrap(), "one per provider");
    assert!(store.link_identity(&identity(alice, "apple", "1"), &[]).await.unwrap(), "the key is the issuer's");
    let found = store.identity("https://google.example", "1").await.unwrap().unwrap();
    assert_eq!((found.user, found.email_verified), (alice, true));
    assert_eq!(found.email.unwrap().as_str(), "person@example.com");
    let providers: Vec<_> = store.identities(alice).await.unwrap().into_iter().map(|i| i.provider).collect();
    assert_eq!(providers.len(), 2);
    assert!(store.identities(bob).await.unwrap().is_empty());
    // Twelve accounts link one identity at once: one wins.
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut racers = Vec::new();
    for i in 0..12 {
        racers.push(user(&store, &format!("racer{i}")).await);
    }
    let racers = Arc::new(racers);
    let won = at_once(|| {
        let (store, racers) = (store.clone(), racers.clone());
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move { store.link_identity(&identity(racers[i], "github", "7"), &[]).await.unwrap() }
    })
    .await;
    assert_eq!(won, 1);
}

pub(crate) async fn a_provider_account_is_created_with_its_identity_or_not_at_all(store: Arc<dyn Store>) {
    let mut r = record("fromgoogle");
    r.password_hash = None;
    let id = r.user.id;
    store.insert_provider_account(&r, &identity(id, "google", "1")).await.unwrap();
    assert_eq!(store.identities(id).await.unwrap().len(), 1);
    let mut second = record("second");
    second.password_hash = None;
    let taken = store.insert_provider_account(&second, &identity(second.user.id, "google", "1")).await;
    assert!(matches!(taken, Err(Error::IdentityInUse)), "{taken:?}");
    assert!(store.find_user(UserKey::Id(second.user.id)).await.unwrap().is_none(), "no account without it");
    let mut same_name = record("FROMGOOGLE");
    same_name.user.email = None;
    let conflict = store.insert_provider_account(&same_name, &identity(same_name.user.id, "google", "2")).await;
    assert!(matches!(conflict, Err(Error::Conflict(ConflictField::Username))), "{conflict:?}");
    assert!(store.identity("https://google.example", "2").await.unwrap().is_none());
}

pub(crate) async fn the_last_way_to_sign_in_is_never_unlinked(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    store.link_identity(&identity(alice, "google", "a"), &[]).await.unwrap();
    assert_eq!(store.unlink_identity(alice, "apple", &[], t0()).await.unwrap(), Unlinked::NotFound);
    assert_eq!(store.unlink_identity(alice, "google", &[], t0()).await.unwrap(), Unlinked::Removed, "a password stays");
    let bob = passwordless(&store, "bob").await;
    store.link_identity(&identity(bob, "google", "b"), &[]).await.unwrap();
    assert_eq!(store.unlink_identity(bob, "google", &[], t0()).await.unwrap(), Unlinked::LastSignInMethod);
    // Two identities, both unlinked at once: one goes, one stays.
    store.link_identity(&identity(bob, "apple", "b"), &[]).await.unwrap();
    let provider = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let removed = at_once(|| {
        let store = store.clone();
        let which = ["google", "apple"][provider.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2];
        async move { store.unlink_identity(bob, which, &[], t0()).await.unwrap() == Unlinked::Removed }
    })
    .await;
    assert_eq!(removed, 1, "one of the two goes");
    assert_eq!(store.identities(bob).await.unwrap().len(), 1, "the last stays");
}

pub(crate) async fn an_unverified_account_claimed_by_a_provider_loses_what_its_registrant_set(store: Arc<dyn Store>) {
    let squatter = user(&store, "victim").await;
    let s = session(&store, squatter).await;
    store.link_identity(&identity(squatter, "apple", "squatter"), &[]).await.unwrap();
    let email = Email::parse("victim@example.com").unwrap();
    let claim = identity(squatter, "google", "victim");
    assert!(store.claim_unverified_account(&claim, &email, t0()).await.unwrap());
    let after = store.find_user(UserKey::Id(squatter)).await.unwrap().unwrap();
    assert_eq!((after.password_hash, after.user.email_verified), (None, true), "the squatter's password is gone");
    assert_eq!(after.credential_version, 1);
    let left: Vec<_> = store.identities(squatter).await.unwrap().into_iter().map(|i| i.subject).collect();
    assert_eq!(left, ["victim"], "only the claiming identity");
    assert!(store.session(s.id).await.unwrap().unwrap().revoked_at.is_some(), "sessions ended");
    // Once verified, it cannot be claimed again; nor an address it does not have.
    assert!(!store.claim_unverified_account(&identity(squatter, "github", "x"), &email, t0()).await.unwrap());
    let other = user(&store, "other").await;
    let wrong = Email::parse("nobody@example.com").unwrap();
    assert!(!store.claim_unverified_account(&identity(other, "github", "y"), &wrong, t0()).await.unwrap());
    assert!(store.identity("https://github.example", "y").await.unwrap().is_none(), "nothing written");
}

pub(crate) async fn proving_the_mailbox_removes_identities_that_did_not_verify_it(store: Arc<dyn Store>) {
    use super::tokens::{reset, verify};
    use crate::store::{MailPayload, NewMail, TaskKind, TokenOwner};
    // person@example.com registered; someone linked identities meanwhile.
    let mut r = record("person");
    r.user.email = Some(Email::parse("person@example.com").unwrap());
    store.insert_user(&r, &[verify("person@example.com", 1)]).await.unwrap();
    let id = r.user.id;
    let same = identity(id, "google", "owner");
    let unverified = IdentityRecord { email_verified: false, ..identity(id, "apple", "squatter") };
    let other =
        IdentityRecord { email: Some(Email::parse("else@example.com").unwrap()), ..identity(id, "github", "x") };
    for i in [&same, &unverified, &other] {
        assert!(store.link_identity(i, &[]).await.unwrap());
    }
    assert_eq!(store.verify_email(&[1; 32], t0()).await.unwrap(), Some(id));
    let left: Vec<_> = store.identities(id).await.unwrap().into_iter().map(|i| i.provider).collect();
    assert_eq!(left, ["google"], "only the one whose provider verified this address");
    // A reset link proves the mailbox too.
    assert!(store.link_identity(&other, &[]).await.unwrap());
    store.send_token_mail(TokenOwner::Id(id), &reset("person@example.com", 2), None, t0()).await.unwrap();
    let notice = NewMail { kind: TaskKind::EmailPasswordChanged, payload: MailPayload::default(), token: None };
    assert_eq!(store.reset_password(&[2; 32], "new-hash", &notice, t0()).await.unwrap(), Some(id));
    let left: Vec<_> = store.identities(id).await.unwrap().into_iter().map(|i| i.provider).collect();
    assert_eq!(left, ["google"]);
}
