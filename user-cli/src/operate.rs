//! Operator commands (`user`, `tasks`, `audit`), written once over
//! [`Operations`]: local mode implements it on the database through
//! `UserService`, remote mode through the admin API. Both print through the
//! same printers from the same wire types, so output and exit codes match.

use std::future::Future;

use serde_json::json;
use user_client::api::{
    AccountPatch, AdminAccountResponse, AuditEventInfo, CreateAccountRequest, IdentityInfo, Role, TaskInfo, TaskState,
    TotpEnrollResponse, UserSummary,
};
use uuid::Uuid;

use crate::cli::{AuditCommand, MfaCommand, Page, PasswordSource, RoleArg, StatusArg, TasksCommand, UserCommand};
use crate::failure::Failure;
use crate::input::{confirm, line, secrets};
use crate::output::{
    Output, account_json, print_account, print_audit, print_enrollment, print_identities, print_tasks, print_users,
};

/// One page of a listing and the cursor of the next.
pub type Paged<T> = (Vec<T>, Option<String>);

/// What operator commands need, locally or remotely.
pub trait Operations {
    /// The account named by id, username or email; [`Failure::Refused`] "no user …" if none.
    fn account(&self, who: &str) -> impl Future<Output = Result<AdminAccountResponse, Failure>>;
    fn users(
        &self,
        query: Option<&str>,
        limit: u32,
        cursor: Option<String>,
    ) -> impl Future<Output = Result<Paged<UserSummary>, Failure>>;
    fn create(&self, account: CreateAccountRequest) -> impl Future<Output = Result<AdminAccountResponse, Failure>>;
    fn change(&self, id: Uuid, patch: AccountPatch) -> impl Future<Output = Result<AdminAccountResponse, Failure>>;
    fn revoke_sessions(&self, id: Uuid) -> impl Future<Output = Result<u64, Failure>>;
    fn reset_mfa(&self, id: Uuid) -> impl Future<Output = Result<(), Failure>>;
    /// The account's identities at other providers, and whether it has a password.
    fn identities(&self, id: Uuid) -> impl Future<Output = Result<(Vec<IdentityInfo>, bool), Failure>>;
    /// Begins TOTP for the account: its secret and `otpauth://` URI.
    fn start_totp(&self, id: Uuid) -> impl Future<Output = Result<TotpEnrollResponse, Failure>>;
    /// Turns the pending TOTP on with the app's first code: the recovery codes.
    fn confirm_totp(&self, id: Uuid, code: &str) -> impl Future<Output = Result<Vec<String>, Failure>>;
    fn delete(&self, id: Uuid) -> impl Future<Output = Result<(), Failure>>;
    fn tasks(
        &self,
        status: Option<TaskState>,
        limit: u32,
        cursor: Option<String>,
    ) -> impl Future<Output = Result<Paged<TaskInfo>, Failure>>;
    fn retry_task(&self, id: i64) -> impl Future<Output = Result<(), Failure>>;
    fn retry_dead_tasks(&self) -> impl Future<Output = Result<u64, Failure>>;
    fn audit(
        &self,
        user: Option<Uuid>,
        event: Option<String>,
        limit: u32,
        cursor: Option<String>,
    ) -> impl Future<Output = Result<Paged<AuditEventInfo>, Failure>>;
}

/// No user named `who`, in the words both modes use.
pub fn no_user(who: &str) -> Failure {
    Failure::Refused(format!("no user {who:?}"))
}

/// One page, or with `--all` every page, of a listing.
async fn pages<T, F, Fut>(page: Page, mut fetch: F) -> Result<Paged<T>, Failure>
where
    F: FnMut(u32, Option<String>) -> Fut,
    Fut: Future<Output = Result<Paged<T>, Failure>>,
{
    let (mut items, mut next) = fetch(page.limit, page.cursor).await?;
    if !page.all {
        return Ok((items, next));
    }
    while let Some(cursor) = next.take() {
        let (more, after) = fetch(page.limit, Some(cursor)).await?;
        items.extend(more);
        next = after;
    }
    Ok((items, next))
}

pub async fn user(ops: &impl Operations, command: UserCommand, out: &Output) -> Result<(), Failure> {
    match command {
        UserCommand::List { query, page } => {
            let (users, next) = pages(page, |limit, cursor| ops.users(query.as_deref(), limit, cursor)).await?;
            print_users(out, &users, next.as_deref());
        }
        UserCommand::Show { user } => print_account(out, &ops.account(&user).await?),
        UserCommand::Create { username, email, admin, password } => {
            let role = if admin { Role::Admin } else { Role::User };
            let password = new_password(&password)?;
            let account = ops.create(CreateAccountRequest { username, email, password, role: Some(role) }).await?;
            let message = format!("created {} ({}) as {role}", account.display_name(), account.id);
            out.done(&account_json(&account), &message);
        }
        UserCommand::SetRole { user, role } => {
            let target = ops.account(&user).await?;
            let role = match role {
                RoleArg::User => Role::User,
                RoleArg::Admin => Role::Admin,
            };
            let account = ops.change(target.id, AccountPatch { role: Some(role), ..AccountPatch::default() }).await?;
            let message = if target.role == role {
                format!("{} is already {role}", account.display_name())
            } else {
                format!("{} is now {role}; their sessions have ended", account.display_name())
            };
            out.done(&account_json(&account), &message);
        }
        UserCommand::Disable { user } => {
            let target = ops.account(&user).await?;
            ops.change(target.id, AccountPatch { disabled: Some(true), ..AccountPatch::default() }).await?;
            let message = format!("disabled {}; their sessions have ended", target.display_name());
            out.done(&json!({"id": target.id, "status": "disabled"}), &message);
        }
        UserCommand::Enable { user } => {
            let target = ops.account(&user).await?;
            ops.change(target.id, AccountPatch { disabled: Some(false), ..AccountPatch::default() }).await?;
            out.done(&json!({"id": target.id, "status": "enabled"}), &format!("enabled {}", target.display_name()));
        }
        UserCommand::Verify { user } => {
            let target = ops.account(&user).await?;
            ops.change(target.id, AccountPatch { email_verified: Some(true), ..AccountPatch::default() }).await?;
            let message = format!(
                "{} ({}) is verified",
                target.email.as_deref().unwrap_or("(no address)"),
                target.display_name()
            );
            out.done(&json!({"id": target.id, "status": "email verified"}), &message);
        }
        UserCommand::RevokeSessions { user } => {
            let target = ops.account(&user).await?;
            let n = ops.revoke_sessions(target.id).await?;
            out.done(
                &json!({"id": target.id, "revoked": n}),
                &format!("ended {n} session(s) of {}", target.display_name()),
            );
        }
        UserCommand::Identities { user } => {
            let target = ops.account(&user).await?;
            let (identities, has_password) = ops.identities(target.id).await?;
            print_identities(out, &identities, Some(has_password));
        }
        UserCommand::Mfa(MfaCommand::Enroll { user }) => {
            let target = ops.account(&user).await?;
            let enrollment = ops.start_totp(target.id).await?;
            if !out.json {
                println!("Add this account to the authenticator app of {}:", target.display_name());
            }
            print_enrollment(out, &enrollment.secret, &enrollment.otpauth_uri, json!({"id": target.id}));
            let code = line("Code from the app")?;
            let codes = ops.confirm_totp(target.id, &code).await?;
            let message = format!(
                "two-factor authentication is on for {}. Recovery codes (each works once; shown only now):\n  {}",
                target.display_name(),
                codes.join("\n  ")
            );
            out.done(&json!({"id": target.id, "recovery_codes": codes}), &message);
        }
        UserCommand::Mfa(MfaCommand::Reset { user, yes }) | UserCommand::MfaReset { user, yes } => {
            let target = ops.account(&user).await?;
            let question =
                format!("Remove the two-factor authentication of {} and end their sessions?", target.display_name());
            confirm(&question, yes)?;
            ops.reset_mfa(target.id).await?;
            let message = format!("removed the second factors of {}; their sessions have ended", target.display_name());
            out.done(&json!({"id": target.id, "status": "second factors removed"}), &message);
        }
        UserCommand::Delete { user, yes } => {
            let target = ops.account(&user).await?;
            confirm(&format!("Delete the account {} and all its favorites?", target.display_name()), yes)?;
            ops.delete(target.id).await?;
            out.done(&json!({"id": target.id, "status": "deleted"}), &format!("deleted {}", target.display_name()));
        }
    }
    Ok(())
}

/// The new account's password, checked before anything is sent or stored.
fn new_password(source: &PasswordSource) -> Result<String, Failure> {
    let password = secrets(source, &["Password"])?.remove(0);
    user_core::domain::Password::parse(&password)?;
    Ok(password)
}

pub async fn tasks(ops: &impl Operations, command: TasksCommand, out: &Output) -> Result<(), Failure> {
    match command {
        TasksCommand::List { status, page } => {
            let status = status.map(|s| match s {
                StatusArg::Pending => TaskState::Pending,
                StatusArg::Done => TaskState::Done,
                StatusArg::Dead => TaskState::Dead,
            });
            let (tasks, next) = pages(page, |limit, cursor| ops.tasks(status, limit, cursor)).await?;
            print_tasks(out, &tasks, next.as_deref());
        }
        TasksCommand::Retry { id: Some(id), .. } => {
            ops.retry_task(id).await?;
            out.done(&json!({"retried": 1}), "1 dead task(s) back in the queue");
        }
        TasksCommand::Retry { id: None, .. } => {
            let n = ops.retry_dead_tasks().await?;
            out.done(&json!({"retried": n}), &format!("{n} dead task(s) back in the queue"));
        }
        // Needs the database: answered by local mode before it gets here.
        TasksCommand::Purge { .. } => {
            return Err(Failure::Usage("`tasks purge` works on the database: use --database".into()));
        }
    }
    Ok(())
}

pub async fn audit(ops: &impl Operations, command: AuditCommand, out: &Output) -> Result<(), Failure> {
    let AuditCommand::List { user, event, page } = command;
    let user = match user {
        Some(who) => Some(ops.account(&who).await?.id),
        None => None,
    };
    let (events, next) = pages(page, |limit, cursor| ops.audit(user, event.clone(), limit, cursor)).await?;
    print_audit(out, &events, next.as_deref());
    Ok(())
}
