//! Operator actions: listing accounts, roles, disabling, ending sessions.

use super::{AuditEvent, ClientInfo, UserService};
use crate::domain::{Role, UserId};
use crate::error::{Error, Result};
use crate::page::{self, Page, PageRequest};
use crate::store::User;

impl UserService {
    /// Every account, oldest first, one page at a time. Callers decide who may
    /// list (the server requires [`AccessClaims::require_admin`](crate::auth::AccessClaims::require_admin)).
    ///
    /// # Errors
    /// [`Error::Validation`] on `cursor` for a cursor of another listing.
    pub async fn list_users(&self, page: &PageRequest) -> Result<Page<User>> {
        let rows = self.store.list_users(page.user_cursor()?, page.limit() + 1).await?;
        Ok(Page::from_overfetch(rows, page.limit(), |u| page::user_cursor(u.id)))
    }

    /// Changes an account's role. A change ends every session of the account
    /// at once (the role travels in access tokens, which must not outlive
    /// it); the new role shows from the next login on.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn set_role(&self, id: UserId, role: Role) -> Result<User> {
        if !self.store.set_role(id, role, self.clock.now()).await? {
            return Err(Error::UserNotFound);
        }
        let detail = Some(format!("to {role}; sessions revoked"));
        self.audit(AuditEvent::RoleChanged, Some(id), &ClientInfo::default(), detail).await;
        self.get(id).await
    }

    /// Disables an account: it can no longer log in or refresh, and every
    /// session ends now.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn disable(&self, id: UserId) -> Result<()> {
        self.set_disabled(id, true).await
    }

    /// Enables a disabled account again.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn enable(&self, id: UserId) -> Result<()> {
        self.set_disabled(id, false).await
    }

    pub(super) async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<()> {
        if !self.store.set_disabled(id, disabled, self.clock.now()).await? {
            return Err(Error::UserNotFound);
        }
        let event = if disabled { AuditEvent::AccountDisabled } else { AuditEvent::AccountEnabled };
        self.audit(event, Some(id), &ClientInfo::default(), None).await;
        Ok(())
    }

    /// Ends every session of an account; returns how many were active.
    ///
    /// # Errors
    /// [`Error::UserNotFound`].
    pub async fn revoke_sessions(&self, id: UserId) -> Result<u64> {
        self.get(id).await?;
        let n = self.store.revoke_user_sessions(id, None, self.clock.now()).await?;
        self.audit(AuditEvent::SessionsRevoked, Some(id), &ClientInfo::default(), Some(format!("{n} ended"))).await;
        Ok(n)
    }
}
