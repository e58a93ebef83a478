//! Credentials under concurrency: logins and password changes racing each other.

use super::*;

/// Logins racing password changes, many rounds through a barrier. The login
/// service hashes with other parameters than the one changing the password,
/// so every login also rehashes: the old password's hash must never be
/// written back, and no session minted from an old password may survive.
async fn logins_racing_password_changes(store: Arc<dyn Store>) {
    let changer = UserService::new(store.clone(), config()).await.unwrap();
    let mut login_config = config();
    login_config.hashing.memory_kib = 16;
    let logins = UserService::new(store.clone(), login_config).await.unwrap();
    let user = changer.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    let password = |round: usize| if round == 0 { pw("correct horse") } else { pw(&format!("password {round}")) };
    let (mut sessions_minted, mut logins_refused) = (0, 0);
    for round in 0..60 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let login = {
            let (logins, barrier, old) = (logins.clone(), barrier.clone(), password(round));
            tokio::spawn(async move {
                barrier.wait().await;
                logins.login(&login_name("alice"), &old, &ClientInfo::default()).await
            })
        };
        let change = {
            let (changer, barrier, new) = (changer.clone(), barrier.clone(), password(round + 1));
            tokio::spawn(async move {
                barrier.wait().await;
                let update = ProfileUpdate { password: Some(new), ..Default::default() };
                changer.update(user.id, None, update, &ClientInfo::default()).await
            })
        };
        change.await.unwrap().unwrap();
        match login.await.unwrap() {
            Ok(outcome) => {
                sessions_minted += 1;
                let access = logins.authenticate(&outcome.tokens.access).await;
                assert_eq!(unauthorized(access), UnauthorizedReason::SessionRevoked, "round {round}");
            }
            Err(Error::InvalidCredentials) => logins_refused += 1,
            Err(e) => panic!("round {round}: {e:?}"),
        }
        // The stored hash is the new password's, whichever finished last.
        let now = logins.login(&login_name("alice"), &password(round + 1), &ClientInfo::default()).await;
        assert!(now.is_ok(), "round {round}: the new password works: {now:?}");
        let old = logins.login(&login_name("alice"), &password(round), &ClientInfo::default()).await;
        assert!(matches!(old, Err(Error::InvalidCredentials)), "round {round}: the old one does not: {old:?}");
        store.reset_login_failures(user.id).await.unwrap();
    }
    println!("{sessions_minted} logins won the race (and were revoked), {logins_refused} were refused");
}

/// Two password changes checked against the same `current_password`, released
/// together, many rounds: exactly one applies; the other is refused, never
/// written over the winner on the strength of a password that is no longer current.
async fn password_changes_racing_each_other(store: Arc<dyn Store>) {
    let service = UserService::new(store, config()).await.unwrap();
    let user = service.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    let mut current = "correct horse".to_owned();
    for round in 0..40 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let changes: Vec<_> = (0..2)
            .map(|n| {
                let (service, barrier, current) = (service.clone(), barrier.clone(), current.clone());
                tokio::spawn(async move {
                    let update = ProfileUpdate {
                        password: Some(pw(&format!("round {round} writer {n}"))),
                        current_password: Some(pw(&current)),
                        ..Default::default()
                    };
                    barrier.wait().await;
                    service.update(user.id, None, update, &ClientInfo::default()).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (n, change) in changes.into_iter().enumerate() {
            match change.await.unwrap() {
                Ok(_) => winners.push(n),
                Err(Error::Unauthorized(UnauthorizedReason::WrongCurrentPassword)) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one change applies");
        current = format!("round {round} writer {}", winners[0]);
        let login = service.login(&login_name("alice"), &pw(&current), &ClientInfo::default()).await;
        assert!(login.is_ok(), "round {round}: the winner's password is the one stored: {login:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_password_changes_with_one_current_password_apply_exactly_once() {
    password_changes_racing_each_other(user_core::testing::memory_store().await).await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = store::open(&format!("sqlite://{}", dir.path().join("u.db").display())).await.unwrap();
    sqlite.migrate().await.unwrap();
    password_changes_racing_each_other(sqlite).await;
    if let Some(url) = user_core::testing::postgres_schema_url().await {
        let postgres = store::open(&url).await.unwrap();
        postgres.migrate().await.unwrap();
        password_changes_racing_each_other(postgres).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_a_password_change_never_keeps_a_session_or_restores_the_old_hash() {
    logins_racing_password_changes(user_core::testing::memory_store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_a_password_change_on_sqlite_never_keeps_a_session_or_restores_the_old_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("u.db").display())).await.unwrap();
    store.migrate().await.unwrap();
    logins_racing_password_changes(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_a_password_change_on_postgres_never_keeps_a_session_or_restores_the_old_hash() {
    let Some(url) = user_core::testing::postgres_schema_url().await else { return };
    let store = store::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    logins_racing_password_changes(store).await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.db");
    let store = store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    store.migrate().await.unwrap();
    let service = UserService::new(store, config()).await.unwrap();
    service.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
}
