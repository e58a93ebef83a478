//! Signing keys kept in the store, configured secrets, and the service over each store.

use super::*;

#[tokio::test]
async fn configured_secrets_sign_and_a_foreign_secret_is_refused() {
    let mine = app_with(ServiceConfig { signing: SigningConfig::Hs256(vec![vec![1; 32]]), ..config() }).await;
    mine.register("alice").await;
    let tokens = mine.login("alice").await;
    let other = UserService::with_clock(
        mine.store.clone(),
        ServiceConfig { signing: SigningConfig::Hs256(vec![vec![2; 32]]), ..config() },
        mine.clock.clone(),
    )
    .await
    .unwrap();
    assert_eq!(unauthorized(other.authenticate(&tokens.access).await), UnauthorizedReason::Malformed);
    let short = UserService::new(
        mine.store.clone(),
        ServiceConfig { signing: SigningConfig::Hs256(vec![vec![1; 8]]), ..config() },
    );
    assert!(matches!(short.await, Err(Error::Validation(_))));
}

#[tokio::test]
async fn the_service_works_the_same_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("u.db").display())).await.unwrap();
    store.migrate().await.unwrap();
    let service = UserService::new(store, config()).await.unwrap();
    service.register(registration("alice"), &ClientInfo::default()).await.unwrap();
    let tokens =
        service.login(&login_name("alice"), &pw("correct horse"), &ClientInfo::default()).await.unwrap().tokens;
    let rotated = service.refresh(&tokens.refresh, &ClientInfo::default()).await.unwrap();
    let claims = service.authenticate(&rotated.access).await.unwrap();
    service.add_favorites(claims.sub, &TrackBatch::parse("1,2").unwrap()).await.unwrap();
    assert_eq!(service.contains(claims.sub, &TrackBatch::parse("2,3").unwrap()).await.unwrap(), [true, false]);
}

#[tokio::test]
async fn an_unknown_database_scheme_is_a_validation_error_naming_the_database() {
    match store::open("mysql://localhost/x").await {
        Err(Error::Validation(e)) => assert_eq!(e.field, "database"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_user_costs_one_verification_like_a_wrong_password() {
    let app = app().await;
    app.register("alice").await;
    let hasher = app.service.password_hasher();
    let attempt = |name: &'static str| {
        let service = app.service.clone();
        async move { service.login(&login_name(name), &pw("wrong horse"), &ClientInfo::default()).await }
    };
    attempt("nobody").await.unwrap_err(); // the first one also makes the dummy hash
    let before = hasher.completed();
    attempt("nobody").await.unwrap_err();
    let unknown_cost = hasher.completed() - before;
    let before = hasher.completed();
    attempt("alice").await.unwrap_err();
    assert_eq!((unknown_cost, hasher.completed() - before), (1, 1));
}
