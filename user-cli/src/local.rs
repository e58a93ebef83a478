//! Local mode: operator commands straight on the database through
//! `UserService`, built from the server's own settings.

use serde_json::json;
use user_client::api::{
    AccountPatch, AdminAccountResponse, AuditEventInfo, CreateAccountRequest, IdentityInfo, Role, TaskInfo, TaskState,
    TotpEnrollResponse, UserSummary,
};
use user_core::UserService;
use user_core::domain::{Email, Password, UserId, Username};
use user_core::page::PageRequest;
use user_core::service::{ClientInfo, Registration};
use user_core::store::{self, AuditFilter, GuestFilter, User, UserKey};
use user_settings::ServiceSettings;
use uuid::Uuid;

use crate::cli::{Command, TasksCommand};
use crate::failure::Failure;
use crate::operate::{self, Operations, Paged, no_user};
use crate::output::Output;

pub async fn run(database: &str, settings: &ServiceSettings, command: Command, out: &Output) -> Result<(), Failure> {
    let store = store::open(database).await.map_err(|e| match e {
        user_core::Error::Internal(cause) => Failure::Unreachable(format!("cannot open the database: {cause}")),
        other => other.into(),
    })?;
    if let Command::Migrate = command {
        store.migrate().await?;
        out.done(&json!({"status": "migrated"}), "migrations applied");
        return Ok(());
    }
    let config = settings.service_config().map_err(Failure::Usage)?;
    let local = Local { service: UserService::new(store, config).await? };
    match command {
        Command::User(user) => operate::user(&local, user, out).await,
        Command::Tasks(TasksCommand::Purge { older_than }) => {
            let purged = local.service.purge_delivered_tasks(older_than).await?;
            out.done(&json!({"purged": purged}), &format!("{purged} delivered task(s) deleted"));
            Ok(())
        }
        Command::Tasks(tasks) => operate::tasks(&local, tasks, out).await,
        Command::Audit(audit) => operate::audit(&local, audit, out).await,
        _ => Err(Failure::Usage(
            "this is a user command: it works against a server, use --server URL (remote mode)".into(),
        )),
    }
}

/// The database, through the service; an operator on this host acts as no one
/// in particular (the audit trail's actor is empty).
struct Local {
    service: UserService,
}

fn page(limit: u32, cursor: Option<String>) -> Result<PageRequest, Failure> {
    let page = PageRequest::first(limit)?;
    Ok(match cursor {
        Some(c) => page.after(c),
        None => page,
    })
}

impl Local {
    async fn find(&self, who: &str) -> Result<User, Failure> {
        let user = if let Ok(id) = who.parse::<UserId>() {
            self.service.get(id).await
        } else if who.contains('@') {
            self.service.find(UserKey::Email(&Email::parse(who)?)).await
        } else {
            self.service.find(UserKey::Username(&Username::parse(who)?)).await
        };
        user.map_err(|e| match e {
            user_core::Error::UserNotFound => no_user(who),
            other => other.into(),
        })
    }
}

impl Operations for Local {
    async fn account(&self, who: &str) -> Result<AdminAccountResponse, Failure> {
        Ok(AdminAccountResponse::from(&self.find(who).await?))
    }

    async fn users(
        &self,
        query: Option<&str>,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<Paged<UserSummary>, Failure> {
        let query = query.unwrap_or_default();
        let found = self.service.search_users(query, &page(limit, cursor)?, GuestFilter::Include).await?;
        let summary = |u: &User| UserSummary { guest: Some(u.is_guest()), ..UserSummary::from(u) };
        Ok((found.items.iter().map(summary).collect(), found.next_cursor))
    }

    async fn create(&self, account: CreateAccountRequest) -> Result<AdminAccountResponse, Failure> {
        let registration = Registration {
            username: Username::parse(&account.username)?,
            email: Email::parse(&account.email)?,
            password: Password::parse(&account.password)?,
            locale: Default::default(),
        };
        let role = account.role.unwrap_or(Role::User);
        let user = self.service.create_user(registration, role, &ClientInfo::default()).await?;
        Ok(AdminAccountResponse::from(&user))
    }

    async fn change(&self, id: Uuid, patch: AccountPatch) -> Result<AdminAccountResponse, Failure> {
        let user = self.service.change_account(UserId::from_uuid(id), patch.into(), &ClientInfo::default()).await?;
        Ok(AdminAccountResponse::from(&user))
    }

    async fn revoke_sessions(&self, id: Uuid) -> Result<u64, Failure> {
        Ok(self.service.revoke_sessions(UserId::from_uuid(id), &ClientInfo::default()).await?)
    }

    async fn reset_mfa(&self, id: Uuid) -> Result<(), Failure> {
        Ok(self.service.reset_second_factors(UserId::from_uuid(id), None, &ClientInfo::default()).await?)
    }

    async fn identities(&self, id: Uuid) -> Result<(Vec<IdentityInfo>, bool), Failure> {
        let (identities, has_password) = self.service.identities(UserId::from_uuid(id)).await?;
        Ok((identities.iter().map(IdentityInfo::from).collect(), has_password))
    }

    async fn start_totp(&self, id: Uuid) -> Result<TotpEnrollResponse, Failure> {
        let enrollment =
            self.service.start_totp_enrollment(UserId::from_uuid(id), None, None, &ClientInfo::default()).await?;
        Ok(TotpEnrollResponse {
            response: user_client::api::MainResponse::success(),
            secret: enrollment.secret,
            otpauth_uri: enrollment.otpauth_uri,
        })
    }

    async fn confirm_totp(&self, id: Uuid, code: &str) -> Result<Vec<String>, Failure> {
        let codes = self.service.confirm_totp(UserId::from_uuid(id), None, code, &ClientInfo::default()).await?;
        Ok(codes.iter().map(|c| c.display()).collect())
    }

    async fn delete(&self, id: Uuid) -> Result<(), Failure> {
        Ok(self.service.delete(UserId::from_uuid(id), &ClientInfo::default()).await?)
    }

    async fn tasks(
        &self,
        status: Option<TaskState>,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<Paged<TaskInfo>, Failure> {
        let tasks = self.service.list_tasks(status.map(Into::into), &page(limit, cursor)?).await?;
        Ok((tasks.items.iter().map(TaskInfo::from).collect(), tasks.next_cursor))
    }

    async fn retry_task(&self, id: i64) -> Result<(), Failure> {
        Ok(self.service.retry_task(id, &ClientInfo::default()).await?)
    }

    async fn retry_dead_tasks(&self) -> Result<u64, Failure> {
        Ok(self.service.retry_dead_tasks(&ClientInfo::default()).await?)
    }

    async fn audit(
        &self,
        user: Option<Uuid>,
        event: Option<String>,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<Paged<AuditEventInfo>, Failure> {
        let filter = AuditFilter { user: user.map(UserId::from_uuid), event };
        let events = self.service.audit_trail(&filter, &page(limit, cursor)?).await?;
        Ok((events.items.iter().map(AuditEventInfo::from).collect(), events.next_cursor))
    }
}
