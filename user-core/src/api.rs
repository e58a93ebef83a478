//! The wire types of the REST contract (`shared/API.md`), defined once and
//! used by both the server (to render) and the client (to parse), so the two
//! cannot drift. Field names and shapes are the contract's, to the letter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::domain::{Locale, Role};

/// An optional field that, when given, holds a value: absent is `None`, an
/// explicit `null` is a type error (400), as for any mistyped field.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The envelope of every error and of several successes: `{"message", "status"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MainResponse {
    /// Human-readable outcome; for errors, what went wrong.
    pub message: String,
    /// The HTTP status code, as an integer.
    pub status: u16,
    /// (v1.2) A stable code for errors a client branches on
    /// (`reauth_required`, …); absent on v1's errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl MainResponse {
    /// `{"message": "success", "status": 200}`.
    pub fn success() -> Self {
        Self::new("success", 200)
    }

    /// Any message and status.
    pub fn new(message: impl Into<String>, status: u16) -> Self {
        Self { message: message.into(), status, code: None }
    }
}

/// `POST /user/register` request.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// 3–32 characters of `A-Z a-z 0-9 _ . -`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::username))]
    pub username: String,
    /// 8–128 characters.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::new_password))]
    pub password: String,
    /// A valid email address.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::email))]
    pub email: String,
    /// (v1.1) The language of the account's mails; from `Accept-Language`
    /// when absent, else `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
}

/// `POST /user/register` success, and `PUT /user/update` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// The username.
    pub username: String,
    /// The email, lower-cased; `null` for an account a provider created
    /// without an address it vouched for.
    pub email: Option<String>,
    /// The user id.
    pub id: Uuid,
}

/// `POST /auth/{provider}/token` request (v1.2): a native app's ID token
/// from the platform's sign-in SDK, and the nonce the app gave that SDK.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderTokenRequest {
    /// The provider's ID token (a JWT).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 8192))]
    pub id_token: String,
    /// The nonce the app passed to the provider's SDK; the token must carry it.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 512))]
    pub nonce: String,
}

/// `POST /user/login` request.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// The username, or (extension) the email.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 3,
            max_length = 254,
            pattern = "^([A-Za-z0-9_.-]{3,32}|[A-Za-z0-9_%+-]{1,64}@[A-Za-z0-9]{1,63}(\\.[A-Za-z0-9]{1,63})+)$"
        )
    )]
    pub username: String,
    /// The password.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub password: String,
    /// (v1.1) A name for the new session, shown in `GET /user/sessions`:
    /// 1–64 printable characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::device_name))]
    pub device_name: Option<String>,
    /// (v1.2) With the request's live guest session (its access token):
    /// the guest's favorites move to this account and the guest is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_guest: Option<bool>,
}

/// `POST /user/login` success.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// `{"message": "success login", "status": 200}`.
    pub response: MainResponse,
    /// The access JWT (also set in the `access_token` cookie).
    pub token: String,
    /// The user id.
    pub id: Uuid,
}

/// `POST /user/login` when the account has a second factor (v1.2): the
/// password was right, no session exists yet; complete it with
/// `POST /user/login/mfa`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MfaRequiredResponse {
    /// `{"message": "second factor required", "status": 200}`.
    pub response: MainResponse,
    /// Always `true`: tells this answer from a signed-in one.
    pub mfa_required: bool,
    /// Single use, for `POST /user/login/mfa`, within 5 minutes.
    pub mfa_token: String,
    /// What the account can answer with: `totp`, `recovery_code`.
    pub methods: Vec<String>,
}

/// `POST /user/login`'s 200 answer: signed in, or (v1.2) a second factor
/// is required first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LoginAnswer {
    /// Signed in.
    SignedIn(LoginResponse),
    /// The password was right; a second factor is required.
    SecondFactorRequired(MfaRequiredResponse),
}

/// `POST /user/login/mfa` request (v1.2): the second step of a sign-in.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginMfaRequest {
    /// The `mfa_token` of the login answer (with `code`; a passkey's
    /// ceremony is bound to it already).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub mfa_token: Option<String>,
    /// A code from the authenticator app (6 digits, spaces ignored) or a
    /// recovery code (`XXXXX-XXXXX`, case and dashes ignored).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub code: Option<String>,
    /// (passkey) The `ceremony` of `POST /user/passkeys/login/start` with `{"mfa_token"}`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub ceremony: Option<String>,
    /// (passkey) The authenticator's answer: `AuthenticationResponseJSON`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub credential: Option<serde_json::Value>,
    /// (v1.2) `true`: once signed in (with a recovery code, say), every other session of the
    /// account ends (a lost or stolen device signed out with it).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub revoke_other_sessions: Option<bool>,
}

/// `GET /user/security` (v1.2): the caller's ways to sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecurityResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// Registered passkeys, oldest first.
    pub passkeys: Vec<PasskeyInfo>,
    /// Whether TOTP (an authenticator app) is on.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
    /// Linked sign-in providers (none until provider sign-in is supported).
    pub identities: Vec<IdentityInfo>,
    /// Whether the account can sign in with a password.
    pub has_password: bool,
}

/// One passkey in `GET /user/security`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyInfo {
    /// The passkey's id.
    pub id: Uuid,
    /// Its name, as its owner gave it.
    pub name: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last signed in, if ever.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// `POST /user/passkeys/register/start` and `/login/start` success (v1.2):
/// the ceremony to finish, and the options for `navigator.credentials`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyOptionsResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// Send back with the authenticator's answer: single use, 5 minutes.
    pub ceremony: String,
    /// `PublicKeyCredentialCreationOptionsJSON` (register) or
    /// `PublicKeyCredentialRequestOptionsJSON` (sign in), for
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` / `…RequestOptions…`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub options: serde_json::Value,
}

/// `POST /user/passkeys/register/finish` request (v1.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyRegisterRequest {
    /// The `ceremony` of `register/start`, from the same session.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub ceremony: String,
    /// A name for it (1–64 characters; default `Passkey`).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: Option<String>,
    /// The authenticator's answer: `RegistrationResponseJSON` (`credential.toJSON()`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
    /// (v1.2) `true`: once the change is made, every other session of the
    /// account ends (a lost or stolen device signed out with it).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub revoke_other_sessions: Option<bool>,
}

/// `POST /user/passkeys/register/finish` success (v1.2, 201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyCreatedResponse {
    /// `{"message": "success", "status": 201}`.
    pub response: MainResponse,
    /// The new passkey's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

/// `PATCH /user/passkeys/{id}` request (v1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyRenameRequest {
    /// The new name (1–64 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub name: String,
}

/// `POST /user/passkeys/login/start` request (v1.2), optional: no body
/// signs in with a passkey alone; `{"mfa_token"}` is the second step of a
/// sign-in; `{"reauth": true}` (with an access token) steps the session up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyLoginStartRequest {
    /// The `mfa_token` of a login answer.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub mfa_token: Option<String>,
    /// `true`: a step-up of the caller's session.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub reauth: Option<bool>,
}

/// `POST /user/passkeys/login/finish` request (v1.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyLoginRequest {
    /// The `ceremony` of `login/start`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub ceremony: String,
    /// The authenticator's answer: `AuthenticationResponseJSON` (`credential.toJSON()`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
}

/// One linked provider account in `GET /user/security`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityInfo {
    /// The provider (`google`, `apple`, …).
    pub provider: String,
    /// The account's id at the provider.
    pub subject: String,
    /// The address the provider gave, if any.
    pub email: Option<String>,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
}

#[cfg(feature = "service")]
impl From<&crate::store::IdentityRecord> for IdentityInfo {
    fn from(i: &crate::store::IdentityRecord) -> Self {
        Self {
            provider: i.provider.clone(),
            subject: i.subject.clone(),
            email: i.email.as_ref().map(ToString::to_string),
            linked_at: i.linked_at,
        }
    }
}

/// `POST /user/identities/link` success (v1.2): the account's identities now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentitiesResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// The linked identities, oldest first.
    pub identities: Vec<IdentityInfo>,
}

/// `POST /user/totp/enroll` success (v1.2): the new secret, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpEnrollResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// The secret in base32, for typing into an authenticator app.
    pub secret: String,
    /// The `otpauth://totp/…` URI, for a QR code.
    pub otpauth_uri: String,
}

/// `POST /user/totp/confirm` request (v1.2): the app's first code.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpConfirmRequest {
    /// Six digits from the authenticator app (spaces ignored).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub code: String,
    /// (v1.2) `true`: once the change is made, every other session of the
    /// account ends (a lost or stolen device signed out with it).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub revoke_other_sessions: Option<bool>,
}

/// `POST /user/reauth` request (v1.2): exactly one proof. An account with
/// a second factor steps up with a `code`; one without, with its `password`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReauthRequest {
    /// The account's password.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub password: Option<String>,
    /// A code from the authenticator app, or a recovery code.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub code: Option<String>,
    /// (passkey) The `ceremony` of `POST /user/passkeys/login/start` with `{"reauth": true}`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub ceremony: Option<String>,
    /// (passkey) The authenticator's answer: `AuthenticationResponseJSON`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub credential: Option<serde_json::Value>,
}

/// `POST /user/reauth` success (v1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReauthResponse {
    /// `"success"`.
    pub message: String,
    /// 200.
    pub status: u16,
    /// Until when this session counts as recently authenticated.
    pub reauth_until: DateTime<Utc>,
}

/// `POST /user/totp/confirm` and `POST /user/recovery-codes` success
/// (v1.2): ten recovery codes, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryCodesResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// Each works once in place of an app code (`XXXXX-XXXXX`).
    pub recovery_codes: Vec<String>,
}

/// `POST /user/refresh` success.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshResponse {
    /// `"success"`.
    pub message: String,
    /// 200.
    pub status: u16,
    /// (extension) The new access JWT (also set in the cookie).
    pub token: String,
    /// (v1.2) When the session ends however often it is refreshed
    /// (`USER_SESSION_MAX_LIFETIME` after its sign-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<DateTime<Utc>>,
}

/// `GET /user/get` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// The username; `null` for a guest.
    pub username: Option<String>,
    /// The user id.
    pub id: Uuid,
    /// (extension) The email; `null` for a guest, or an account a provider
    /// created without an address it vouched for.
    pub email: Option<String>,
    /// (extension) The role.
    pub role: Role,
    /// (extension) When the account was created, RFC 3339 UTC.
    pub created_at: DateTime<Utc>,
    /// (v1.1) Whether the address is verified.
    pub email_verified: bool,
    /// (v1.1) The language of the account's mails.
    pub locale: Locale,
    /// (v1.2) `true` for a guest account (`POST /user/guest`); absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
}

/// `PUT /user/update` request: any non-empty subset of the first three fields.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateRequest {
    /// A new username.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::username))]
    pub username: Option<String>,
    /// A new email.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::email))]
    pub email: Option<String>,
    /// A new password; other sessions are revoked.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::new_password))]
    pub password: Option<String>,
    /// (extension) The current password, verified when present.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub current_password: Option<String>,
    /// (v1.1) A new mail language.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
}

/// One account in `GET /user/all`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserSummary {
    /// The user id.
    pub id: Uuid,
    /// The username; `null` only for a guest (`/admin/users`; `/user/all`
    /// never lists guests).
    pub username: Option<String>,
    /// The email; `null` for a guest or a provider account without one.
    pub email: Option<String>,
    /// The role.
    pub role: Role,
    /// When the account was created, RFC 3339 UTC.
    pub created_at: DateTime<Utc>,
    /// (v1.1) Whether the address is verified.
    pub email_verified: bool,
    /// (v1.1) The language of the account's mails.
    pub locale: Locale,
    /// (v1.2, `/admin/users` only) Whether this is a guest account;
    /// `/user/all` keeps v1's fields (it never lists guests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<bool>,
}

/// `GET /user/all` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserListResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// Oldest account first.
    pub users: Vec<UserSummary>,
    /// The cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// One favorite in `GET /user/track/favorite`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FavoriteTrack {
    /// The track id.
    pub track_id: String,
    /// When it was added, RFC 3339 UTC.
    pub added_at: DateTime<Utc>,
}

/// `GET /user/track/favorite` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FavoriteListResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// Newest first.
    pub tracks: Vec<FavoriteTrack>,
    /// The cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// `GET /user/track/favorite/contains` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainsResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// Whether each requested track is a favorite, in request order.
    pub contains: Vec<bool>,
}

#[cfg(feature = "service")]
impl From<&crate::store::User> for UserSummary {
    fn from(u: &crate::store::User) -> Self {
        Self {
            id: u.id.as_uuid(),
            username: u.username.as_ref().map(ToString::to_string),
            email: u.email.as_ref().map(ToString::to_string),
            role: u.role,
            created_at: u.created_at,
            email_verified: u.email_verified,
            locale: u.locale,
            guest: None,
        }
    }
}

/// The optional body of a sensitive change (v1.2: `DELETE /user/delete`,
/// the TOTP and recovery-code routes): the current password, which stands
/// for a recent sign-in.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrentPasswordRequest {
    /// The current password; without it the session must have signed in
    /// within `USER_REAUTH_WINDOW`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub current_password: Option<String>,
    /// (v1.2) `true`: once the change is made, every other session of the
    /// account ends (a lost or stolen device signed out with it).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub revoke_other_sessions: Option<bool>,
}

/// `POST /user/email/verify` request: the token from a verification mail.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    /// The token (43 characters of URL-safe base64).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub token: String,
}

/// The device-code grant type of RFC 8628, as `grant_type` names it.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `POST /oauth/device/code` request (a form or JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceCodeRequest {
    /// A public client id from `USER_OAUTH_CLIENTS`.
    pub client_id: String,
    /// Accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The name the new session will carry, shown to the person approving
    /// as the device's own claim (1–64 characters; no control,
    /// bidirectional-control or invisible characters: `invalid_request`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::device_name))]
    pub device_name: Option<String>,
}

/// `POST /oauth/device/code` response (RFC 8628 §3.2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceCodeResponse {
    /// The secret the device polls `/oauth/token` with.
    pub device_code: String,
    /// The code to show the person, `XXXX-XXXX`.
    pub user_code: String,
    /// Where the person goes to type the code.
    pub verification_uri: String,
    /// The same page with the code filled in (for a QR code).
    pub verification_uri_complete: String,
    /// Seconds until both codes stop working.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

/// `POST /oauth/token` request (a form or JSON): the device-code grant
/// (`device_code`, `client_id`) or the refresh-token grant (`refresh_token`).
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthTokenRequest {
    /// `urn:ietf:params:oauth:grant-type:device_code` or `refresh_token`.
    pub grant_type: String,
    /// The device code (device-code grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_code: Option<String>,
    /// The public client id (device-code grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The refresh token (refresh-token grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `POST /oauth/token` response (RFC 6749 §5.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthTokenResponse {
    /// The access JWT.
    pub access_token: String,
    /// The refresh JWT; rotated on each use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for OAuthTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthTokenResponse").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// The errors of `/oauth/*`: RFC 6749's `error` and `error_description`,
/// with the contract's `message` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthErrorResponse {
    /// The RFC's code, e.g. `authorization_pending`.
    pub error: String,
    /// What went wrong, for people.
    pub error_description: String,
    /// The same text.
    pub message: String,
    /// The HTTP status code.
    pub status: u16,
}

/// `POST /user/device/approve` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceApproveRequest {
    /// The code the device shows; case and dashes are ignored.
    #[cfg_attr(feature = "openapi", schema(example = "BCDF-GHJK", max_length = 32))]
    pub user_code: String,
    /// `true` approves the device, `false` declines it.
    pub approve: bool,
}

/// `POST /user/password/forgot` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgotPasswordRequest {
    /// The account's address.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::email))]
    pub email: String,
}

/// `POST /user/password/reset` request.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResetPasswordRequest {
    /// The token from the reset mail.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub token: String,
    /// The new password, 8–128 characters.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::new_password))]
    pub password: String,
}

/// The answer of `POST /user/password/forgot`, whether or not the address
/// belongs to an account.
pub const FORGOT_PASSWORD_MESSAGE: &str = "if an account has this address, a message is on its way";

/// One live session in `GET /user/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// The session id (`DELETE /user/sessions/{id}` ends it).
    pub id: Uuid,
    /// When it was opened (the login).
    pub created_at: DateTime<Utc>,
    /// The last login or refresh.
    pub last_used_at: DateTime<Utc>,
    /// The client's address at login.
    pub ip: Option<String>,
    /// The client's `User-Agent` at login.
    pub user_agent: Option<String>,
    /// The name the client gave the session at login.
    pub device_name: Option<String>,
    /// Whether this is the session of the token that asked.
    pub current: bool,
    /// (v1.2) When it ends however often it is refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<DateTime<Utc>>,
    /// (v1.2) How it signed in (RFC 8176), with what it proved since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<crate::domain::Amr>,
}

/// `GET /user/sessions` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionListResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// The caller's live sessions, newest first.
    pub sessions: Vec<SessionInfo>,
}

/// `POST /user/sessions/revoke-others` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedResponse {
    /// `"success"`.
    pub message: String,
    /// 200.
    pub status: u16,
    /// How many sessions were ended.
    pub revoked: u64,
}

/// `POST /admin/users` request.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateAccountRequest {
    /// 3–32 characters of `A-Z a-z 0-9 _ . -`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::username))]
    pub username: String,
    /// A valid email address.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::email))]
    pub email: String,
    /// 8–128 characters.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::openapi::new_password))]
    pub password: String,
    /// The role; `user` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// `PATCH /admin/users/{id}` request: any non-empty subset of the fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountPatch {
    /// A new role; a different one ends every session of the account.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Disable (ending every session) or enable the account.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Mark the address verified or not.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// An account as an admin sees it: `POST /admin/users` (201),
/// `GET` and `PATCH /admin/users/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminAccountResponse {
    /// `{"message": "success", "status": 200}` (201 on creation).
    pub response: MainResponse,
    /// The user id.
    pub id: Uuid,
    /// The username; `null` for a guest.
    pub username: Option<String>,
    /// The email, lower-cased; `null` for a guest or a provider account without one.
    pub email: Option<String>,
    /// The role.
    pub role: Role,
    /// (v1.2) Whether this is a guest account.
    #[serde(default)]
    pub guest: bool,
    /// Whether the address is verified.
    pub email_verified: bool,
    /// Whether an operator disabled the account.
    pub disabled: bool,
    /// When the account was created, RFC 3339 UTC.
    pub created_at: DateTime<Utc>,
    /// The last successful login; `null` if none.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl AdminAccountResponse {
    /// What to call the account to a person: its username, else its
    /// address, else `guest <id>`.
    pub fn display_name(&self) -> String {
        display_name(self.username.as_deref(), self.email.as_deref(), self.id)
    }
}

impl UserResponse {
    /// What to call the account to a person: its username, else its
    /// address, else `guest <id>`.
    pub fn display_name(&self) -> String {
        display_name(self.username.as_deref(), self.email.as_deref(), self.id)
    }
}

fn display_name(username: Option<&str>, email: Option<&str>, id: Uuid) -> String {
    username.or(email).map_or_else(|| format!("guest {id}"), ToOwned::to_owned)
}

/// Where an outbox task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for delivery (or a retry), or being delivered.
    Pending,
    /// Delivered.
    Done,
    /// Given up on after the last attempt; an admin may retry it.
    Dead,
}

impl TaskState {
    /// `pending`, `done` or `dead`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Done => "done",
            TaskState::Dead => "dead",
        }
    }
}

/// One task of the outbox in `GET /admin/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskInfo {
    /// The task id (ids only grow).
    pub id: i64,
    /// What happened, e.g. `favorite.added`.
    pub kind: String,
    /// Whose change it was.
    pub user_id: Uuid,
    /// Where it is in its life.
    pub status: TaskState,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// When the change happened.
    pub created_at: DateTime<Utc>,
    /// Not to be tried before this time.
    pub next_attempt_at: DateTime<Utc>,
    /// (extension) The track, for favorite tasks.
    pub track_id: Option<String>,
    /// (extension) While in the future, a relay is delivering it.
    pub leased_until: Option<DateTime<Utc>>,
}

/// `GET /admin/tasks` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskListResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// In id order.
    pub tasks: Vec<TaskInfo>,
    /// The cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// One entry of the audit trail in `GET /admin/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEventInfo {
    /// The entry id (ids only grow).
    pub id: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened, e.g. `login.failure`, `role.change`.
    pub event: String,
    /// Whose account.
    pub user_id: Option<Uuid>,
    /// The admin who acted; `null` when the user acted, or an operator on the database host.
    pub actor_id: Option<Uuid>,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// A short detail (a reason, a new role); never a secret.
    pub detail: Option<String>,
}

/// `GET /admin/audit` success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditListResponse {
    /// `{"message": "success", "status": 200}`.
    pub response: MainResponse,
    /// Newest first.
    pub events: Vec<AuditEventInfo>,
    /// The cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

#[cfg(feature = "service")]
impl From<&crate::store::User> for AdminAccountResponse {
    fn from(u: &crate::store::User) -> Self {
        Self {
            response: MainResponse::success(),
            id: u.id.as_uuid(),
            username: u.username.as_ref().map(ToString::to_string),
            email: u.email.as_ref().map(ToString::to_string),
            role: u.role,
            guest: u.is_guest(),
            email_verified: u.email_verified,
            disabled: u.disabled_at.is_some(),
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

#[cfg(feature = "service")]
impl From<&crate::store::DeferredTask> for TaskInfo {
    fn from(t: &crate::store::DeferredTask) -> Self {
        Self {
            id: t.id,
            kind: t.kind.as_str().to_owned(),
            user_id: t.user_id.as_uuid(),
            status: match t.status {
                crate::store::TaskStatus::Pending => TaskState::Pending,
                crate::store::TaskStatus::Done => TaskState::Done,
                crate::store::TaskStatus::Dead => TaskState::Dead,
            },
            attempts: t.attempts,
            last_error: t.last_error.clone(),
            created_at: t.occurred_at,
            next_attempt_at: t.available_at,
            track_id: t.track_id.as_ref().map(ToString::to_string),
            leased_until: t.leased_until,
        }
    }
}

#[cfg(feature = "service")]
impl From<&crate::store::AuditRecord> for AuditEventInfo {
    fn from(e: &crate::store::AuditRecord) -> Self {
        Self {
            id: e.id,
            at: e.created_at,
            event: e.event.clone(),
            user_id: e.user_id.map(|u| u.as_uuid()),
            actor_id: e.actor_id.map(|u| u.as_uuid()),
            ip: e.ip.clone(),
            user_agent: e.user_agent.clone(),
            detail: e.detail.clone(),
        }
    }
}

#[cfg(feature = "service")]
impl From<AccountPatch> for crate::store::AccountChanges {
    fn from(p: AccountPatch) -> Self {
        Self { role: p.role, disabled: p.disabled, email_verified: p.email_verified }
    }
}

#[cfg(feature = "service")]
impl SessionInfo {
    /// A stored session as listed; `current` when it is the asking token's;
    /// `tokens` tells when it ends.
    pub fn of(s: crate::store::SessionRecord, current: crate::domain::SessionId, tokens: &crate::auth::Tokens) -> Self {
        Self {
            session_expires_at: Some(tokens.session_end(s.created_at)),
            id: s.id.as_uuid(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            ip: s.ip,
            user_agent: s.user_agent,
            device_name: s.device_name,
            current: s.id == current,
            amr: Some(s.amr),
        }
    }
}

#[cfg(feature = "service")]
impl From<TaskState> for crate::store::TaskStatus {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Pending => Self::Pending,
            TaskState::Done => Self::Done,
            TaskState::Dead => Self::Dead,
        }
    }
}

/// Implements `Debug` showing `shown` fields as they are and `secret` fields
/// as `[redacted]` (or `None`), so that no password, token or code reaches a
/// log through `{:?}`.
macro_rules! debug_redacting {
    ($($ty:ident { $($shown:ident),* ; $($secret:ident),* })*) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($shown), &self.$shown))*
                    $(.field(stringify!($secret), &Redacted::of(&self.$secret)))*
                    .finish()
            }
        }
    )*};
}

/// What `Debug` shows in place of a secret.
struct Redacted(bool);

impl Redacted {
    fn of(secret: &dyn Secretive) -> Self {
        Redacted(secret.is_present())
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0 { "[redacted]" } else { "None" })
    }
}

/// A field that may hold a secret.
trait Secretive {
    fn is_present(&self) -> bool;
}

impl Secretive for String {
    fn is_present(&self) -> bool {
        true
    }
}

impl Secretive for Option<String> {
    fn is_present(&self) -> bool {
        self.is_some()
    }
}

impl Secretive for Vec<String> {
    fn is_present(&self) -> bool {
        !self.is_empty()
    }
}

debug_redacting! {
    RegisterRequest { username, email, locale; password }
    LoginRequest { username, device_name, merge_guest; password }
    ProviderTokenRequest { nonce; id_token }
    LoginResponse { response, id; token }
    RefreshResponse { message, status, session_expires_at; token }
    UpdateRequest { username, email, locale; password, current_password }
    CurrentPasswordRequest { revoke_other_sessions; current_password }
    TokenRequest { ; token }
    DeviceCodeResponse { user_code, verification_uri, verification_uri_complete, expires_in, interval; device_code }
    OAuthTokenRequest { grant_type, client_id; device_code, refresh_token }
    ResetPasswordRequest { ; token, password }
    CreateAccountRequest { username, email, role; password }
    MfaRequiredResponse { response, mfa_required, methods; mfa_token }
    LoginMfaRequest { ceremony, credential, revoke_other_sessions; mfa_token, code }
    TotpEnrollResponse { response; secret, otpauth_uri }
    TotpConfirmRequest { revoke_other_sessions; code }
    ReauthRequest { ceremony, credential; password, code }
    PasskeyOptionsResponse { response, options; ceremony }
    RecoveryCodesResponse { response; recovery_codes }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-value";

    fn assert_redacted(printed: String) {
        assert!(!printed.contains(SECRET), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }

    #[test]
    fn debug_never_prints_a_password_token_or_code() {
        let s = || SECRET.to_owned();
        assert_redacted(format!(
            "{:?}",
            RegisterRequest { username: "a".into(), password: s(), email: "e".into(), locale: None }
        ));
        assert_redacted(format!(
            "{:?}",
            LoginRequest { username: "alice".into(), password: s(), device_name: None, merge_guest: None }
        ));
        let ok = MainResponse::new("success login", 200);
        assert_redacted(format!("{:?}", LoginResponse { response: ok, token: s(), id: Uuid::nil() }));
        let refresh = RefreshResponse { message: "success".into(), status: 200, token: s(), session_expires_at: None };
        assert_redacted(format!("{refresh:?}"));
        let update = UpdateRequest { password: Some(s()), current_password: Some(s()), ..Default::default() };
        assert_redacted(format!("{update:?}"));
        assert_redacted(format!(
            "{:?}",
            CurrentPasswordRequest { current_password: Some(s()), revoke_other_sessions: None }
        ));
        let ok = || MainResponse::new("success", 200);
        let mfa =
            MfaRequiredResponse { response: ok(), mfa_required: true, mfa_token: s(), methods: vec!["totp".into()] };
        assert_redacted(format!("{mfa:?}"));
        let mfa = LoginMfaRequest {
            mfa_token: Some(s()),
            code: Some(s()),
            ceremony: None,
            credential: None,
            revoke_other_sessions: None,
        };
        assert_redacted(format!("{mfa:?}"));
        assert_redacted(format!("{:?}", TotpEnrollResponse { response: ok(), secret: s(), otpauth_uri: s() }));
        assert_redacted(format!("{:?}", TotpConfirmRequest { code: s(), revoke_other_sessions: None }));
        let reauth = ReauthRequest { password: Some(s()), code: Some(s()), ceremony: None, credential: None };
        assert_redacted(format!("{reauth:?}"));
        let options = PasskeyOptionsResponse { response: ok(), ceremony: s(), options: serde_json::json!({}) };
        assert_redacted(format!("{options:?}"));
        assert_redacted(format!("{:?}", RecoveryCodesResponse { response: ok(), recovery_codes: vec![s()] }));
        assert_redacted(format!("{:?}", TokenRequest { token: s() }));
        assert_redacted(format!("{:?}", ResetPasswordRequest { token: s(), password: s() }));
        assert_redacted(format!(
            "{:?}",
            CreateAccountRequest { username: "a".into(), email: "e".into(), password: s(), role: None }
        ));
        let device = DeviceCodeResponse {
            device_code: s(),
            user_code: "BCDF-GHJK".into(),
            verification_uri: "https://music.example/device".into(),
            verification_uri_complete: "https://music.example/device?user_code=BCDF-GHJK".into(),
            expires_in: 600,
            interval: 5,
        };
        let printed = format!("{device:?}");
        assert!(printed.contains("BCDF-GHJK"), "the code a person reads is no secret: {printed}");
        assert_redacted(printed);
        let poll = OAuthTokenRequest {
            grant_type: "x".into(),
            device_code: Some(s()),
            client_id: None,
            refresh_token: Some(s()),
        };
        assert_redacted(format!("{poll:?}"));
        let tokens =
            OAuthTokenResponse { access_token: s(), refresh_token: s(), token_type: "Bearer".into(), expires_in: 900 };
        assert!(!format!("{tokens:?}").contains(SECRET));
        let absent = format!("{:?}", UpdateRequest::default());
        assert!(absent.contains("password: None") && !absent.contains("[redacted]"), "{absent}");
    }
}
