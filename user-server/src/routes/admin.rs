//! The admin API: accounts, their sessions, the outbox and the audit trail.
//! Every route needs an admin's access token of a live session ([`Admin`]);
//! every change is audited with that admin's id as the actor.

use user_core::api::{
    AccountPatch, AdminAccountResponse, AuditEventInfo, AuditListResponse, CreateAccountRequest, MainResponse,
    RevokedResponse, SessionInfo, SessionListResponse, TaskInfo, TaskListResponse, TaskState, UserListResponse,
    UserSummary,
};
use user_core::domain::{Email, Locale, Password, Role, UserId, Username, ValidationError};
use user_core::page::Page;
use user_core::service::{ClientInfo, Registration};
use user_core::store::{AuditFilter, GuestFilter, TaskStatus};
use warp::http::StatusCode;
use warp::reply::Response;

use super::call::PageParams;
use super::guard::Admin;
use super::{Call, success};
use crate::error::ApiError;
use crate::http::json;

impl Call<Admin> {
    /// The request's client, acting as this admin (the audit trail's actor).
    fn operator(&self) -> ClientInfo {
        ClientInfo { actor: Some(self.caller.id()), ..self.ctx.client() }
    }

    /// The account id in the path.
    fn target(&self) -> Result<UserId, ApiError> {
        Ok(self.path_param.as_deref().unwrap_or_default().parse::<UserId>()?)
    }
}

fn account(user: &user_core::store::User) -> Response {
    json(&AdminAccountResponse::from(user))
}

/// A page of accounts; `guest` marks each for `/admin/users`.
fn users(page: Page<user_core::store::User>, mark_guests: bool) -> Response {
    let summary =
        |u: &user_core::store::User| UserSummary { guest: mark_guests.then(|| u.is_guest()), ..UserSummary::from(u) };
    json(&UserListResponse {
        response: MainResponse::success(),
        users: page.items.iter().map(summary).collect(),
        next_cursor: page.next_cursor,
    })
}

/// Every account, oldest first (admin only).
#[utoipa::path(get, path = "/user/all", params(
    PageParams,
), responses(
    (status = 200, description = "One page", body = UserListResponse),
    (status = 400, description = "Bad limit or cursor", body = MainResponse),
))]
pub(super) async fn all_users(call: Call<Admin>) -> Result<Response, ApiError> {
    // Guests have no name or address to list: `/user/all` is v1's list of accounts.
    Ok(users(call.state.service.list_users(&call.page()?, GuestFilter::Exclude).await?, false))
}

/// Accounts whose username or email starts with `query` (any case), oldest first.
#[utoipa::path(get, path = "/admin/users", tag = "admin", params(
    ("query" = Option<String>, Query, description = "A username or email prefix, compared case-insensitively; empty or absent lists every account", max_length = 254, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"),
    ("guest" = Option<bool>, Query, description = "(v1.2) `true`: guests only; `false`: no guests; absent: both"),
    PageParams,
), responses(
    (status = 200, description = "One page", body = UserListResponse),
    (status = 400, description = "Bad query, limit or cursor", body = MainResponse),
))]
pub(super) async fn search_users(call: Call<Admin>) -> Result<Response, ApiError> {
    let query = call.query.single("query")?.unwrap_or_default();
    let guests = match call.query.single("guest")? {
        None => GuestFilter::Include,
        Some("true") => GuestFilter::Only,
        Some("false") => GuestFilter::Exclude,
        Some(_) => return Err(ApiError::BadRequest("guest: must be true or false".into())),
    };
    Ok(users(call.state.service.search_users(query, &call.page()?, guests).await?, true))
}

/// Create an account with a role.
#[utoipa::path(post, path = "/admin/users", tag = "admin", request_body = CreateAccountRequest, responses(
    (status = 201, description = "Created", body = AdminAccountResponse),
    (status = 400, description = "Invalid body", body = MainResponse),
    (status = 409, description = "Username or email taken", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
    (status = 503, description = "Overloaded", body = MainResponse),
))]
pub(super) async fn create_account(mut call: Call<Admin>) -> Result<Response, ApiError> {
    let req: CreateAccountRequest = call.json()?;
    let registration = Registration {
        username: Username::parse(&req.username)?,
        email: Email::parse(&req.email)?,
        password: Password::parse(&req.password)?,
        locale: Locale::default(),
    };
    let role = req.role.unwrap_or(Role::User);
    let user = call.state.service.create_user(registration, role, &call.operator()).await?;
    let mut body = AdminAccountResponse::from(&user);
    body.response = MainResponse::new("created", 201);
    let mut response = json(&body);
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

/// One account, with its last login.
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin", params(
    ("id" = String, Path, description = "The user id", format = Uuid),
), responses(
    (status = 200, description = "The account", body = AdminAccountResponse),
    (status = 400, description = "Not a user id", body = MainResponse),
    (status = 404, description = "No such user", body = MainResponse),
))]
pub(super) async fn get_account(call: Call<Admin>) -> Result<Response, ApiError> {
    Ok(account(&call.state.service.get(call.target()?).await?))
}

/// Change an account's role, disabled state or email verification. A new
/// role or a disable ends the account's sessions at once.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", request_body = AccountPatch, params(
    ("id" = String, Path, description = "The user id", format = Uuid),
), responses(
    (status = 200, description = "The account as it is now", body = AdminAccountResponse),
    (status = 400, description = "Not a user id, or an empty or invalid body", body = MainResponse),
    (status = 404, description = "No such user", body = MainResponse),
    (status = 409, description = "The last active admin cannot be demoted or disabled", body = MainResponse),
    (status = 413, description = "Body too large", body = MainResponse),
    (status = 415, description = "Not JSON", body = MainResponse),
))]
pub(super) async fn patch_account(mut call: Call<Admin>) -> Result<Response, ApiError> {
    let id = call.target()?;
    let patch: AccountPatch = call.json()?;
    let user = call.state.service.change_account(id, patch.into(), &call.operator()).await?;
    Ok(account(&user))
}

/// Delete an account, as `DELETE /user/delete` does for one's own.
#[utoipa::path(delete, path = "/admin/users/{id}", tag = "admin", params(
    ("id" = String, Path, description = "The user id", format = Uuid),
), responses(
    (status = 200, description = "Deleted", body = MainResponse),
    (status = 400, description = "Not a user id", body = MainResponse),
    (status = 404, description = "No such user", body = MainResponse),
    (status = 409, description = "The last active admin cannot be deleted", body = MainResponse),
))]
pub(super) async fn delete_account(call: Call<Admin>) -> Result<Response, ApiError> {
    call.state.service.delete(call.target()?, &call.operator()).await?;
    Ok(success())
}

/// An account's live sessions, newest first.
#[utoipa::path(get, path = "/admin/users/{id}/sessions", tag = "admin", params(
    ("id" = String, Path, description = "The user id", format = Uuid),
), responses(
    (status = 200, description = "Live sessions, newest first; `current` marks the asking admin's own", body = SessionListResponse),
    (status = 400, description = "Not a user id", body = MainResponse),
    (status = 404, description = "No such user", body = MainResponse),
))]
pub(super) async fn account_sessions(call: Call<Admin>) -> Result<Response, ApiError> {
    let id = call.target()?;
    call.state.service.get(id).await?;
    let current = call.caller.claims().sid;
    let sessions = call.state.service.sessions(id).await?;
    Ok(json(&SessionListResponse {
        response: MainResponse::success(),
        sessions: sessions.into_iter().map(|s| SessionInfo::of(s, current, call.state.service.tokens())).collect(),
    }))
}

/// End every session of an account.
#[utoipa::path(post, path = "/admin/users/{id}/revoke-sessions", tag = "admin", params(
    ("id" = String, Path, description = "The user id", format = Uuid),
), responses(
    (status = 200, description = "Ended; how many", body = RevokedResponse),
    (status = 400, description = "Not a user id", body = MainResponse),
    (status = 404, description = "No such user", body = MainResponse),
))]
pub(super) async fn revoke_account_sessions(call: Call<Admin>) -> Result<Response, ApiError> {
    let revoked = call.state.service.revoke_sessions(call.target()?, &call.operator()).await?;
    Ok(json(&RevokedResponse { message: "success".into(), status: 200, revoked }))
}

/// (v1.2) Remove an account's second factors (TOTP and its recovery codes)
/// for someone who lost them: every session of the account ends and its
/// owner is told by mail. Needs the acting admin's recent sign-in.
#[utoipa::path(delete, path = "/admin/users/{id}/mfa", tag = "admin", params(
    ("id" = String, Path, description = "The user id", format = Uuid),
), responses(
    (status = 200, description = "Removed; the account's sessions ended", body = MainResponse),
    (status = 400, description = "Not a user id", body = MainResponse),
    (status = 401, description = "`code: reauth_required`: the acting admin must sign in again", body = MainResponse),
    (status = 404, description = "No such user", body = MainResponse),
    (status = 409, description = "`code: own_account` (another admin must do it) or `no_second_factor`", body = MainResponse),
))]
pub(super) async fn reset_account_mfa(call: Call<Admin>) -> Result<Response, ApiError> {
    let session = call.caller.claims().sid;
    call.state.service.reset_second_factors(call.target()?, Some(session), &call.operator()).await?;
    Ok(success())
}

/// Outbox tasks in id order, optionally of one status.
#[utoipa::path(get, path = "/admin/tasks", tag = "admin", params(
    ("status" = Option<TaskState>, Query, description = "Only tasks in this state; absent lists every task"),
    PageParams,
), responses(
    (status = 200, description = "One page", body = TaskListResponse),
    (status = 400, description = "Bad status, limit or cursor", body = MainResponse),
))]
pub(super) async fn list_tasks(call: Call<Admin>) -> Result<Response, ApiError> {
    let status = match call.query.single("status")? {
        None => None,
        Some(s) => Some(TaskStatus::from(
            [TaskState::Pending, TaskState::Dead, TaskState::Done]
                .into_iter()
                .find(|state| state.as_str() == s)
                .ok_or_else(|| ValidationError::new("status", "must be pending, dead or done"))?,
        )),
    };
    let tasks = call.state.service.list_tasks(status, &call.page()?).await?;
    Ok(json(&TaskListResponse {
        response: MainResponse::success(),
        tasks: tasks.items.iter().map(TaskInfo::from).collect(),
        next_cursor: tasks.next_cursor,
    }))
}

/// Put a dead task back in the queue, its attempts reset.
#[utoipa::path(post, path = "/admin/tasks/{id}/retry", tag = "admin", params(
    ("id" = i64, Path, description = "The task id", minimum = 1),
), responses(
    (status = 200, description = "Back in the queue", body = MainResponse),
    (status = 400, description = "Not a task id", body = MainResponse),
    (status = 404, description = "No such task", body = MainResponse),
    (status = 409, description = "The task is not dead", body = MainResponse),
))]
pub(super) async fn retry_task(call: Call<Admin>) -> Result<Response, ApiError> {
    let id = call
        .path_param
        .as_deref()
        .unwrap_or_default()
        .parse::<i64>()
        .map_err(|_| ValidationError::new("id", "must be a task id (an integer)"))?;
    call.state.service.retry_task(id, &call.operator()).await?;
    Ok(success())
}

/// The audit trail, newest first, optionally of one account or event.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", params(
    ("user" = Option<String>, Query, description = "Only entries about this user id (a UUID)", pattern = "^[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}$"),
    ("event" = Option<String>, Query, description = "Only entries of this event, e.g. login.failure", max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"),
    PageParams,
), responses(
    (status = 200, description = "One page", body = AuditListResponse),
    (status = 400, description = "Bad user, event, limit or cursor", body = MainResponse),
))]
pub(super) async fn audit(call: Call<Admin>) -> Result<Response, ApiError> {
    let user = match call.query.single("user")? {
        Some(id) => Some(id.parse::<UserId>().map_err(|_| ValidationError::new("user", "must be a user id"))?),
        None => None,
    };
    let event = match call.query.single("event")? {
        Some(e) if e.is_empty() || e.chars().count() > 64 || e.chars().any(char::is_control) => {
            return Err(
                ValidationError::new("event", "must be 1–64 characters, none of them control characters").into()
            );
        }
        other => other.map(str::to_owned),
    };
    let events = call.state.service.audit_trail(&AuditFilter { user, event }, &call.page()?).await?;
    Ok(json(&AuditListResponse {
        response: MainResponse::success(),
        events: events.items.iter().map(AuditEventInfo::from).collect(),
        next_cursor: events.next_cursor,
    }))
}
