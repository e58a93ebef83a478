//! Operator actions: finding accounts, changing them, ending their sessions.
//! Each takes the caller's [`ClientInfo`], whose `actor` the audit trail keeps.

use super::{AuditEvent, ClientInfo, UserService};
use crate::domain::{Role, UserId, ValidationError};
use crate::error::{Error, Result};
use crate::page::{self, Page, PageRequest};
use crate::store::{AccountChanges, GuestFilter, User};

/// The longest search prefix: the longest email.
const MAX_QUERY_CHARS: usize = 254;

impl UserService {
    /// Every account (guests as `guests` says), oldest first, one page at a time. Callers decide who may
    /// list (the server requires [`AccessClaims::require_admin`](crate::auth::AccessClaims::require_admin)).
    ///
    /// # Errors
    /// [`Error::Validation`] on `cursor` for a cursor of another listing.
    pub async fn list_users(&self, page: &PageRequest, guests: GuestFilter) -> Result<Page<User>> {
        let rows = self.store.list_users(page.user_cursor()?, page.limit() + 1, guests).await?;
        Ok(Page::from_overfetch(rows, page.limit(), |u| page::user_cursor(u.id)))
    }

    /// The accounts whose username or email starts with `query`, compared
    /// case-insensitively, oldest first, one page at a time; an empty query
    /// lists every account.
    ///
    /// # Errors
    /// [`Error::Validation`] on `query` longer than 254 characters or with
    /// a control character, or on
    /// `cursor` for a cursor of another listing.
    pub async fn search_users(&self, query: &str, page: &PageRequest, guests: GuestFilter) -> Result<Page<User>> {
        if query.chars().count() > MAX_QUERY_CHARS || query.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "query",
                "must be at most 254 characters, none of them control characters",
            )
            .into());
        }
        if query.is_empty() {
            return self.list_users(page, guests).await;
        }
        if guests == GuestFilter::Only {
            // A guest has neither a name nor an address to match.
            return Ok(Page::from_overfetch(Vec::new(), page.limit(), |u: &User| page::user_cursor(u.id)));
        }
        let prefix = query.to_lowercase();
        let rows = self.store.search_users(&prefix, page.user_cursor()?, page.limit() + 1).await?;
        Ok(Page::from_overfetch(rows, page.limit(), |u| page::user_cursor(u.id)))
    }

    /// Changes an account's role, disabled state or email verification in
    /// one step and returns it as it is now. A new role or a disable ends
    /// every session of the account at once (the role travels in access
    /// tokens, which must not outlive it).
    ///
    /// # Errors
    /// [`Error::Validation`] for an empty change; [`Error::UserNotFound`];
    /// [`Error::LastAdmin`] (nothing changed) when the account is the last
    /// active admin and would stop being one.
    pub async fn change_account(&self, id: UserId, changes: AccountChanges, client: &ClientInfo) -> Result<User> {
        if changes.is_empty() {
            return Err(ValidationError::new("body", "give at least one of role, disabled, email_verified").into());
        }
        let before = self.get(id).await?;
        if let Some(role) = changes.role
            && (role == Role::Guest || before.is_guest())
            && role != before.role
        {
            // A guest has no name, address or password: it becomes an
            // account only by upgrading itself, and no account becomes one.
            return Err(
                ValidationError::new("role", "must be user or admin; a guest becomes a user by upgrading").into()
            );
        }
        let after = self.store.change_account(id, &changes, self.clock.now()).await?.ok_or(Error::UserNotFound)?;
        if after.role != before.role {
            let detail = Some(format!("{} to {}; sessions revoked", before.role, after.role));
            self.audit(AuditEvent::RoleChanged, Some(id), client, detail).await;
        }
        match (before.disabled_at.is_some(), after.disabled_at.is_some()) {
            (false, true) => self.audit(AuditEvent::AccountDisabled, Some(id), client, None).await,
            (true, false) => self.audit(AuditEvent::AccountEnabled, Some(id), client, None).await,
            _ => {}
        }
        if after.email_verified != before.email_verified {
            let detail = Some(if after.email_verified { "verified" } else { "unverified" }.to_owned());
            self.audit(AuditEvent::EmailVerificationSet, Some(id), client, detail).await;
        }
        Ok(after)
    }

    /// Ends every session of an account; returns how many were active.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn revoke_sessions(&self, id: UserId, client: &ClientInfo) -> Result<u64> {
        self.get(id).await?;
        let n = self.store.revoke_user_sessions(id, None, self.clock.now()).await?;
        self.audit(AuditEvent::SessionsRevoked, Some(id), client, Some(format!("{n} ended"))).await;
        Ok(n)
    }
}
