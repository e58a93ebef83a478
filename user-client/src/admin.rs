//! The admin API (`/admin/*`): accounts, their sessions, the outbox and the
//! audit trail, for a client logged in as an admin.

use futures_util::Stream;
use reqwest::Method;
use user_core::api::{
    AccountPatch, AdminAccountResponse, AuditListResponse, CreateAccountRequest, MainResponse, RevokedResponse,
    SessionInfo, SessionListResponse, TaskListResponse, TaskState, UserListResponse, UserSummary,
};
use user_core::domain::{Email, Password, Username};
use uuid::Uuid;

use crate::{Client, Result, page_query};

/// The admin API through a [`Client`] logged in as an admin; from [`Client::admin`].
///
/// ```no_run
/// # async fn run(client: user_client::Client) -> Result<(), user_client::Error> {
/// use user_client::api::{AccountPatch, Role};
///
/// let admin = client.admin();
/// let found = admin.search_users(Some("ali"), None, None).await?;
/// let alice = &found.users[0];
/// // Demote and disable in one step; alice's sessions end at once.
/// let patch = AccountPatch { role: Some(Role::User), disabled: Some(true), ..AccountPatch::default() };
/// admin.update_user(alice.id, &patch).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a> {
    client: &'a Client,
}

/// Which audit entries to list; `Default` lists every entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries about this account.
    pub user: Option<Uuid>,
    /// Only entries of this event, e.g. `login.failure`.
    pub event: Option<String>,
}

impl Client {
    /// The admin API, for a client logged in as an admin (every call is 403 otherwise).
    pub fn admin(&self) -> Admin<'_> {
        Admin { client: self }
    }
}

impl<'a> Admin<'a> {
    /// `GET /admin/users`: one page of the accounts whose username or email
    /// starts with `query` (any case; `None` lists all), oldest first.
    ///
    /// # Errors
    /// 403 for a non-admin; 400 for a bad query, limit or cursor.
    pub async fn search_users(
        &self,
        query: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<UserListResponse> {
        let mut params = page_query(limit, cursor);
        if let Some(q) = query {
            params.push(("query", q.to_owned()));
        }
        self.client.authed(Method::GET, "/admin/users", move |r| r.query(&params)).await
    }

    /// Every account matching `query`, following cursors page by page.
    pub fn users(&self, query: Option<&'a str>, page_size: u32) -> impl Stream<Item = Result<UserSummary>> + 'a {
        self.client.paged(page_size, move |client, limit, cursor| async move {
            let page = client.admin().search_users(query, Some(limit), cursor.as_deref()).await?;
            Ok((page.users, page.next_cursor))
        })
    }

    /// `POST /admin/users`: creates an account with a role (201). The fields
    /// are checked against the contract's rules before anything is sent.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) or 400 naming the field; 409
    /// when the username or email is taken.
    pub async fn create_user(&self, account: &CreateAccountRequest) -> Result<AdminAccountResponse> {
        Username::parse(&account.username)?;
        Email::parse(&account.email)?;
        Password::parse(&account.password)?;
        self.client.authed(Method::POST, "/admin/users", |r| r.json(account)).await
    }

    /// `GET /admin/users/{id}`: the account with its last login.
    ///
    /// # Errors
    /// 404 for an unknown id.
    pub async fn user(&self, id: Uuid) -> Result<AdminAccountResponse> {
        self.client.authed(Method::GET, &format!("/admin/users/{id}"), |r| r).await
    }

    /// `PATCH /admin/users/{id}`: changes the role, disabled state or email
    /// verification at once; a new role or a disable ends the account's sessions.
    ///
    /// # Errors
    /// 400 for an empty patch; 404; 409 when it would leave no active admin.
    pub async fn update_user(&self, id: Uuid, patch: &AccountPatch) -> Result<AdminAccountResponse> {
        self.client.authed(Method::PATCH, &format!("/admin/users/{id}"), |r| r.json(patch)).await
    }

    /// `DELETE /admin/users/{id}`: deletes the account with its sessions and favorites.
    ///
    /// # Errors
    /// 404; 409 for the last active admin.
    pub async fn delete_user(&self, id: Uuid) -> Result<MainResponse> {
        self.client.authed(Method::DELETE, &format!("/admin/users/{id}"), |r| r).await
    }

    /// `GET /admin/users/{id}/sessions`: the account's live sessions, newest first.
    ///
    /// # Errors
    /// 404 for an unknown id.
    pub async fn user_sessions(&self, id: Uuid) -> Result<Vec<SessionInfo>> {
        let reply: SessionListResponse =
            self.client.authed(Method::GET, &format!("/admin/users/{id}/sessions"), |r| r).await?;
        Ok(reply.sessions)
    }

    /// `POST /admin/users/{id}/revoke-sessions`: ends every session of the
    /// account; how many were live.
    ///
    /// # Errors
    /// 404 for an unknown id.
    pub async fn revoke_user_sessions(&self, id: Uuid) -> Result<u64> {
        let path = format!("/admin/users/{id}/revoke-sessions");
        let reply: RevokedResponse = self.client.authed(Method::POST, &path, |r| r).await?;
        Ok(reply.revoked)
    }

    /// `DELETE /admin/users/{id}/mfa` (v1.2): removes the account's second
    /// factors and ends its sessions; needs this admin's recent sign-in.
    ///
    /// # Errors
    /// 404 for an unknown id; 409 `own_account` or `no_second_factor`;
    /// [`crate::Error::is_reauth_required`].
    pub async fn reset_mfa(&self, id: Uuid) -> Result<()> {
        let path = format!("/admin/users/{id}/mfa");
        let _: MainResponse = self.client.authed(Method::DELETE, &path, |r| r).await?;
        Ok(())
    }

    /// `GET /admin/tasks`: one page of outbox tasks in id order, optionally
    /// in one state.
    ///
    /// # Errors
    /// 400 for a bad limit or cursor.
    pub async fn tasks(
        &self,
        status: Option<TaskState>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<TaskListResponse> {
        let mut params = page_query(limit, cursor);
        if let Some(status) = status {
            params.push(("status", status.as_str().to_owned()));
        }
        self.client.authed(Method::GET, "/admin/tasks", move |r| r.query(&params)).await
    }

    /// `POST /admin/tasks/{id}/retry`: puts a dead task back in the queue.
    ///
    /// # Errors
    /// 404 for an unknown task; 409 for a task that is not dead.
    pub async fn retry_task(&self, id: i64) -> Result<MainResponse> {
        self.client.authed(Method::POST, &format!("/admin/tasks/{id}/retry"), |r| r).await
    }

    /// `GET /admin/audit`: one page of the audit trail, newest first.
    ///
    /// # Errors
    /// 400 for a bad event, limit or cursor.
    pub async fn audit(
        &self,
        filter: &AuditQuery,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<AuditListResponse> {
        let mut params = page_query(limit, cursor);
        if let Some(user) = filter.user {
            params.push(("user", user.to_string()));
        }
        if let Some(event) = &filter.event {
            params.push(("event", event.clone()));
        }
        self.client.authed(Method::GET, "/admin/audit", move |r| r.query(&params)).await
    }
}
