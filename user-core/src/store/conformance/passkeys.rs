//! Passkeys: a permanent user handle, credential ids unique across accounts,
//! a counter moved by compare-and-set, ceremonies taken once.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{at_once, t0, user};
use crate::domain::{SessionId, UserId};
use crate::store::{Ceremony, CeremonyPurpose, MailPayload, NewMail, PasskeyRecord, Store, TaskKind};

fn passkey(user: UserId, credential: u8) -> PasskeyRecord {
    PasskeyRecord {
        id: Uuid::now_v7(),
        user_id: user,
        rp_id: "music.example".into(),
        credential_id: vec![credential; 16],
        public_key: vec![0xa5, 1, 2],
        sign_count: 1,
        backup_eligible: false,
        backed_up: false,
        transports: vec!["internal".into(), "hybrid".into()],
        name: "Phone".into(),
        created_at: t0(),
        last_used_at: None,
    }
}

fn notice() -> NewMail {
    NewMail { kind: TaskKind::EmailSecurityChanged, payload: MailPayload::default(), token: None }
}

pub(crate) async fn a_passkey_is_one_account_s_and_its_counter_moves_once(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    assert_eq!(store.webauthn_handle(UserId::new(), &[1; 32]).await.unwrap(), None);
    let handle = store.webauthn_handle(alice, &[1; 32]).await.unwrap().unwrap();
    assert_eq!(handle, [1; 32]);
    assert_eq!(store.webauthn_handle(alice, &[2; 32]).await.unwrap().unwrap(), [1; 32], "never changes");

    let phone = passkey(alice, 7);
    assert!(store.insert_passkey(&phone, &[notice()]).await.unwrap());
    assert!(!store.insert_passkey(&passkey(bob, 7), &[]).await.unwrap(), "a credential id is one account's");
    assert!(!store.insert_passkey(&passkey(UserId::new(), 9), &[]).await.unwrap(), "no such account");
    let laptop = PasskeyRecord { created_at: t0() + Duration::from_secs(1), ..passkey(alice, 8) };
    assert!(store.insert_passkey(&laptop, &[]).await.unwrap());
    assert_eq!(store.passkeys(alice).await.unwrap(), [phone.clone(), laptop.clone()]);
    assert!(store.passkeys(bob).await.unwrap().is_empty());
    assert_eq!(store.passkey_rp_ids().await.unwrap(), ["music.example"]);
    let (found, found_handle) = store.passkey_by_credential(&[7; 16]).await.unwrap().unwrap();
    assert_eq!((found, found_handle), (phone.clone(), vec![1; 32]));
    assert!(store.passkey_by_credential(&[9; 16]).await.unwrap().is_none());
    let tasks = store.list_tasks(None, None, 10).await.unwrap();
    assert_eq!(tasks.iter().filter(|t| t.kind == TaskKind::EmailSecurityChanged).count(), 1, "mailed with the insert");

    // Twelve sign-ins with counter 1 → 2 at once: one wins.
    let later = t0() + Duration::from_secs(60);
    let won = at_once(|| {
        let store = store.clone();
        async move { store.use_passkey(phone.id, 1, 2, true, later).await.unwrap() }
    })
    .await;
    assert_eq!(won, 1);
    let used = store.passkeys(alice).await.unwrap().remove(0);
    assert_eq!((used.sign_count, used.backed_up, used.last_used_at), (2, true, Some(later)));

    assert!(!store.rename_passkey(bob, phone.id, "mine").await.unwrap(), "not bob's");
    assert!(store.rename_passkey(alice, phone.id, "Old phone").await.unwrap());
    assert!(!store.remove_passkey(bob, phone.id, &[], later).await.unwrap());
    assert!(store.remove_passkey(alice, phone.id, &[notice()], later).await.unwrap());
    assert!(!store.remove_passkey(alice, phone.id, &[], later).await.unwrap(), "once");
    assert_eq!(store.passkeys(alice).await.unwrap().len(), 1);

    // Every factor goes at once, for a lost device.
    assert!(store.remove_second_factors(alice, &[notice()], later).await.unwrap());
    assert!(store.passkeys(alice).await.unwrap().is_empty());
    assert!(!store.remove_second_factors(alice, &[notice()], later).await.unwrap(), "nothing left");
    assert!(store.insert_passkey(&passkey(bob, 7), &[]).await.unwrap(), "the id is free again");
    store.delete_user(bob, later).await.unwrap();
    assert!(store.passkey_by_credential(&[7; 16]).await.unwrap().is_none(), "they go with the account");
}

pub(crate) async fn a_ceremony_is_taken_once_for_its_purpose_before_it_expires(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let ceremony = Ceremony {
        digest: [3; 32],
        purpose: CeremonyPurpose::Register,
        challenge: vec![4; 32],
        user: Some(alice),
        session: Some(SessionId::new()),
        mfa_digest: Some([5; 32]),
        created_at: t0(),
        expires_at: t0() + Duration::from_secs(300),
    };
    store.insert_ceremony(&ceremony).await.unwrap();
    let now = t0() + Duration::from_secs(10);
    assert_eq!(store.take_ceremony(&[3; 32], CeremonyPurpose::Login, now).await.unwrap(), None, "another purpose");
    let taken = at_once(|| {
        let store = store.clone();
        async move { store.take_ceremony(&[3; 32], CeremonyPurpose::Register, now).await.unwrap().is_some() }
    })
    .await;
    assert_eq!(taken, 1, "single use");

    store.insert_ceremony(&ceremony).await.unwrap();
    let whole = store.take_ceremony(&[3; 32], CeremonyPurpose::Register, now).await.unwrap().unwrap();
    assert_eq!(whole, ceremony, "read back as written");
    let discoverable = Ceremony {
        digest: [6; 32],
        purpose: CeremonyPurpose::Login,
        user: None,
        session: None,
        mfa_digest: None,
        ..ceremony.clone()
    };
    store.insert_ceremony(&discoverable).await.unwrap();
    let late = t0() + Duration::from_secs(300);
    assert_eq!(store.take_ceremony(&[6; 32], CeremonyPurpose::Login, late).await.unwrap(), None, "expired");
    assert_eq!(store.purge_expired_tokens(late, 100).await.unwrap(), 1, "and purged");
}
