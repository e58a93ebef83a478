//! What a route needs of its caller, as types: a handler that takes
//! `Call<Authenticated>` runs only after the access token was checked, and
//! nothing else can make an [`Authenticated`].

use std::future::Future;

use user_core::auth::AccessClaims;
use user_core::domain::{SessionId, UserId};
use user_core::store::User;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

use crate::AppState;
use crate::error::ApiError;
use crate::http::{Credentials, RequestCtx};

/// A route's requirement on its caller, checked before its handler runs.
pub(crate) trait Guard: Sized + Send + 'static {
    /// Whether the guard reads the request's tokens (else they are not parsed).
    const READS_CREDENTIALS: bool = true;

    /// Establishes the caller from the request's credentials.
    ///
    /// # Errors
    /// 400 for a duplicated token cookie, 401/403 for a caller the route refuses.
    fn check(state: &AppState, creds: &Credentials) -> impl Future<Output = Result<Self, ApiError>> + Send;

    /// The same-site rule for a write (any method but GET and HEAD), once the
    /// caller is known: a credential that came in a cookie must come from
    /// this site.
    ///
    /// # Errors
    /// 403 for a cross-site request.
    fn check_origin(ctx: &RequestCtx, creds: &Credentials) -> Result<(), ApiError> {
        ctx.check_same_site(creds)
    }

    /// Adds to a route's OpenAPI operation what this guard means for it:
    /// the credentials it takes, and the refusals it can answer with (401,
    /// 403) unless the handler documents them more precisely itself.
    /// `writes`: the route is not GET, so the same-site rule applies.
    fn document(operation: &mut Operation, writes: bool) {
        let _ = (operation, writes);
    }

    /// The account the caller acts as, once checked: `user.id` on the
    /// request's exported span.
    fn user_id(&self) -> Option<UserId> {
        None
    }
}

/// The security schemes of `/openapi.json` a guard accepts credentials by.
const ACCESS_TOKEN: &[&str] = &["bearer", "access_cookie"];

/// Documents that a route takes credentials by `schemes` and may refuse
/// with each of `refusals` (status, description) in the contract's shape.
fn document_guard(operation: &mut Operation, schemes: &[&str], refusals: &[(u16, &str)]) {
    operation.security = Some(schemes.iter().map(|s| SecurityRequirement::new(*s, Vec::<String>::new())).collect());
    for (status, description) in refusals {
        operation.responses.responses.entry(status.to_string()).or_insert_with(|| {
            let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("MainResponse"))).build();
            ResponseBuilder::new().description(*description).content("application/json", body).build().into()
        });
    }
}

/// The 401 every guard with credentials may answer, and the same-site 403 of a write.
fn refusals(writes: bool) -> &'static [(u16, &'static str)] {
    if writes { &[(401, "Unauthorized"), (403, CROSS_SITE)] } else { &[(401, "Unauthorized")] }
}

/// What a refused same-site check says in the OpenAPI document.
const CROSS_SITE: &str = "Cross-site request refused";

/// Anyone: no credentials read.
pub(crate) struct Open;

impl Guard for Open {
    const READS_CREDENTIALS: bool = false;

    async fn check(_: &AppState, _: &Credentials) -> Result<Self, ApiError> {
        Ok(Open)
    }

    fn check_origin(_: &RequestCtx, _: &Credentials) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Anyone, signing in: no credentials read, but the answer sets session
/// cookies, so a request from another site's page is refused (login CSRF:
/// a foreign page must not sign a browser into someone else's account).
/// Requests with neither `Origin` nor `Referer` (native apps, curl) pass.
pub(crate) struct SigningIn;

impl Guard for SigningIn {
    const READS_CREDENTIALS: bool = false;

    async fn check(_: &AppState, _: &Credentials) -> Result<Self, ApiError> {
        Ok(SigningIn)
    }

    fn check_origin(ctx: &RequestCtx, _: &Credentials) -> Result<(), ApiError> {
        ctx.policy.check_same_site(&ctx.headers)
    }

    fn document(operation: &mut Operation, _: bool) {
        operation.responses.responses.entry("403".into()).or_insert_with(|| {
            let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("MainResponse"))).build();
            ResponseBuilder::new().description(CROSS_SITE).content("application/json", body).build().into()
        });
    }
}

/// A caller with a valid access token (bearer or cookie) of a live
/// session of an account (403 `registration_required` for a guest: see
/// [`Listener`]) that the second-factor policy does not restrict (403
/// `mfa_enrollment_required` for one it does: see [`AnySession`]).
pub(crate) struct Authenticated {
    claims: AccessClaims,
    user: User,
}

impl Authenticated {
    /// The token's claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }

    /// The account, as read with the session.
    pub fn user(&self) -> &User {
        &self.user
    }

    pub fn id(&self) -> UserId {
        self.claims.sub
    }
}

impl Guard for Authenticated {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        let caller = Listener::check(state, creds).await?.0;
        refuse_guest(&caller.user)?;
        Ok(caller)
    }

    fn user_id(&self) -> Option<UserId> {
        Some(self.id())
    }

    fn document(operation: &mut Operation, writes: bool) {
        let forbidden = if writes { RESTRICTED_OR_CROSS_SITE } else { RESTRICTED };
        document_guard(operation, ACCESS_TOKEN, &[(401, "Unauthorized"), (403, forbidden)]);
    }
}

/// 403 `registration_required` for a guest account.
fn refuse_guest(user: &User) -> Result<(), ApiError> {
    if user.is_guest() {
        return Err(user_core::Error::Forbidden(user_core::ForbiddenReason::GuestNotAllowed).into());
    }
    Ok(())
}

/// An account or a guest (v1.2): what [`Authenticated`] lets in, and
/// guests too, for what a guest may do (favorites, its sessions, deleting
/// itself).
pub(crate) struct Listener(Authenticated);

impl std::ops::Deref for Listener {
    type Target = Authenticated;

    fn deref(&self) -> &Authenticated {
        &self.0
    }
}

impl Guard for Listener {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        let (claims, user) = state.service.me(creds.access()?).await?;
        Ok(Listener(Authenticated { claims, user }))
    }

    fn user_id(&self) -> Option<UserId> {
        Some(self.id())
    }

    fn document(operation: &mut Operation, writes: bool) {
        Authenticated::document(operation, writes);
    }
}

/// A guest (v1.2), for upgrading itself: 403 `not_a_guest` for an account.
pub(crate) struct Guest(Authenticated);

impl std::ops::Deref for Guest {
    type Target = Authenticated;

    fn deref(&self) -> &Authenticated {
        &self.0
    }
}

impl Guard for Guest {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        let caller = state.service.caller(creds.access()?).await?;
        if !caller.user.is_guest() {
            return Err(user_core::Error::Forbidden(user_core::ForbiddenReason::NotAGuest).into());
        }
        Ok(Guest(Authenticated { claims: caller.claims, user: caller.user }))
    }

    fn user_id(&self) -> Option<UserId> {
        Some(self.id())
    }

    fn document(operation: &mut Operation, writes: bool) {
        let forbidden = if writes { "`code: not_a_guest`; or a cross-site request" } else { "`code: not_a_guest`" };
        document_guard(operation, ACCESS_TOKEN, &[(401, "Unauthorized"), (403, forbidden)]);
    }
}

/// Anyone asking for a guest account (v1.2): like [`SigningIn`] (the
/// answer sets session cookies, so another site's page is refused), and
/// whether the request already carries a live session (an access token, or
/// a refresh cookie, of any account or guest).
pub(crate) struct NewGuest {
    pub signed_in: bool,
}

impl Guard for NewGuest {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        let by_access = match creds.access_opt()? {
            Some(token) => state.service.caller(token).await.is_ok(),
            None => false,
        };
        let signed_in = by_access
            || match creds.refresh_opt()? {
                Some(refresh) => state.service.authenticate_refresh(refresh).await.is_ok(),
                None => false,
            };
        Ok(NewGuest { signed_in })
    }

    fn check_origin(ctx: &RequestCtx, _: &Credentials) -> Result<(), ApiError> {
        ctx.policy.check_same_site(&ctx.headers)
    }

    fn document(operation: &mut Operation, _: bool) {
        SigningIn::document(operation, true);
    }
}

/// What a session the second-factor policy restricts hears in the OpenAPI document.
const RESTRICTED: &str = "`code: mfa_enrollment_required`: this account must add a second factor first; \
    `code: registration_required`: a guest account must register first";
const RESTRICTED_OR_CROSS_SITE: &str = "`code: mfa_enrollment_required`: this account must add a second factor first; \
    `code: registration_required`: a guest account must register first; or a cross-site request";

/// Any caller with a valid access token of a live session, including one
/// the second-factor policy restricts: for the few routes such a session
/// may use (see the account, enroll a factor, step up, sign out).
pub(crate) struct AnySession {
    caller: Authenticated,
    restricted: bool,
}

impl AnySession {
    /// Whether the second-factor policy restricts this session.
    pub fn restricted(&self) -> bool {
        self.restricted
    }
}

impl std::ops::Deref for AnySession {
    type Target = Authenticated;

    fn deref(&self) -> &Authenticated {
        &self.caller
    }
}

impl Guard for AnySession {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        let session = SessionHolder::check(state, creds).await?.0;
        refuse_guest(session.user())?;
        Ok(session)
    }

    fn user_id(&self) -> Option<UserId> {
        Some(self.id())
    }

    fn document(operation: &mut Operation, writes: bool) {
        let forbidden = if writes {
            "`code: registration_required`: a guest account must register first; or a cross-site request"
        } else {
            "`code: registration_required`: a guest account must register first"
        };
        document_guard(operation, ACCESS_TOKEN, &[(401, "Unauthorized"), (403, forbidden)]);
    }
}

/// Any live session at all: an account's (restricted or not) or a
/// guest's. For `/user/get`, which every session may read.
pub(crate) struct SessionHolder(AnySession);

impl std::ops::Deref for SessionHolder {
    type Target = AnySession;

    fn deref(&self) -> &AnySession {
        &self.0
    }
}

impl Guard for SessionHolder {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        let caller = state.service.caller(creds.access()?).await?;
        let restricted = caller.restricted;
        Ok(SessionHolder(AnySession { caller: Authenticated { claims: caller.claims, user: caller.user }, restricted }))
    }

    fn user_id(&self) -> Option<UserId> {
        Some(self.id())
    }

    fn document(operation: &mut Operation, writes: bool) {
        document_guard(operation, ACCESS_TOKEN, refusals(writes));
    }
}

/// A page's visitor: signed in (a valid access token of a live session) or
/// not. Never refuses; a duplicated or invalid token is "not signed in".
pub(crate) struct Visitor(pub Option<Authenticated>);

impl Guard for Visitor {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        Ok(Visitor(Authenticated::check(state, creds).await.ok()))
    }

    fn user_id(&self) -> Option<UserId> {
        self.0.as_ref().map(Authenticated::id)
    }
}

/// An authenticated caller whose token carries the admin role.
pub(crate) struct Admin(Authenticated);

impl Admin {
    /// The admin's token claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.0.claims
    }

    /// The admin's id: the actor of what they do.
    pub fn id(&self) -> UserId {
        self.0.claims.sub
    }
}

impl Guard for Admin {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        let caller = Authenticated::check(state, creds).await?;
        caller.claims.require_admin()?;
        Ok(Admin(caller))
    }

    fn user_id(&self) -> Option<UserId> {
        Some(self.id())
    }

    fn document(operation: &mut Operation, writes: bool) {
        let forbidden = if writes {
            "Not an admin; `code: mfa_enrollment_required`; or a cross-site request"
        } else {
            "Not an admin, or `code: mfa_enrollment_required`: add a second factor first"
        };
        document_guard(operation, ACCESS_TOKEN, &[(401, "Unauthorized"), (403, forbidden)]);
    }
}

/// A caller who may or may not have a session (any, restricted and
/// guests' included): never refuses; a duplicated or invalid token is "no
/// session".
pub(crate) struct MaybeSession(pub Option<AnySession>);

impl Guard for MaybeSession {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        Ok(MaybeSession(SessionHolder::check(state, creds).await.ok().map(|s| s.0)))
    }

    fn user_id(&self) -> Option<UserId> {
        self.0.as_ref().map(|s| s.id())
    }
}

/// A session stepping up (`POST /user/reauth`): any session (see
/// [`AnySession`]), and a browser's refresh cookie, rotated once the
/// session proved more.
pub(crate) struct SteppingUp {
    pub session: AnySession,
    pub refresh_cookie: Option<String>,
}

impl Guard for SteppingUp {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        let session = AnySession::check(state, creds).await?;
        Ok(SteppingUp { session, refresh_cookie: creds.refresh_opt()?.map(ToOwned::to_owned) })
    }

    fn user_id(&self) -> Option<UserId> {
        Some(self.session.id())
    }

    fn document(operation: &mut Operation, writes: bool) {
        AnySession::document(operation, writes);
    }
}

/// A session to end: named by a live access token or, without one (say, it
/// expired), by the session's refresh cookie.
pub(crate) struct SessionToEnd {
    pub user: UserId,
    pub session: SessionId,
}

impl Guard for SessionToEnd {
    async fn check(state: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        let access = match creds.access_opt()? {
            // A restricted session may sign out too.
            Some(token) => state.service.caller(token).await.map(|c| (c.claims.sub, c.claims.sid)),
            None => Err(user_core::Error::Unauthorized(user_core::UnauthorizedReason::Missing)),
        };
        let (user, session) = match (access, creds.refresh_opt()?) {
            (Ok(ids), _) => ids,
            (Err(_), Some(refresh)) => {
                let claims = state.service.authenticate_refresh(refresh).await?;
                (claims.sub, claims.sid)
            }
            (Err(e), None) => return Err(e.into()),
        };
        Ok(SessionToEnd { user, session })
    }

    fn user_id(&self) -> Option<UserId> {
        Some(self.user)
    }

    fn document(operation: &mut Operation, writes: bool) {
        document_guard(operation, &["bearer", "access_cookie", "refresh_cookie"], refusals(writes));
    }
}

/// The refresh token, which only ever comes in its cookie (checked by the
/// service when it rotates).
pub(crate) struct RefreshCookie(String);

impl RefreshCookie {
    pub fn token(&self) -> &str {
        &self.0
    }
}

impl Guard for RefreshCookie {
    async fn check(_: &AppState, creds: &Credentials) -> Result<Self, ApiError> {
        Ok(RefreshCookie(creds.refresh()?.to_owned()))
    }

    /// Always a cookie, so always checked.
    fn check_origin(ctx: &RequestCtx, _: &Credentials) -> Result<(), ApiError> {
        ctx.policy.check_same_site(&ctx.headers)
    }

    fn document(operation: &mut Operation, writes: bool) {
        document_guard(operation, &["refresh_cookie"], refusals(writes));
    }
}
