//! Local mode: operator commands straight on the database through
//! `UserService`, built from the server's own settings.

use serde_json::json;
use user_client::api::UserSummary;
use user_core::UserService;
use user_core::domain::{Email, Password, Role, UserId, Username};
use user_core::page::PageRequest;
use user_core::service::Registration;
use user_core::store::{self, TaskStatus, User, UserKey};
use user_server::config::ServiceSettings;

use crate::cli::{AuditCommand, Command, Page, RoleArg, StatusArg, TasksCommand, UserCommand};
use crate::failure::Failure;
use crate::input::{confirm, secrets};
use crate::output::{Output, print_audit, print_tasks, print_users};

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
    let service = UserService::new(store, config).await?;
    match command {
        Command::User(user) => run_user(&service, user, out).await,
        Command::Tasks(tasks) => run_tasks(&service, tasks, out).await,
        Command::Audit(AuditCommand::List { limit, user, before }) => {
            let user = match user {
                Some(who) => Some(resolve(&service, &who).await?.id),
                None => None,
            };
            print_audit(out, &service.audit_trail(user, before, limit).await?);
            Ok(())
        }
        _ => Err(Failure::Usage(
            "this is a user command: it works against a server, use --server URL (remote mode)".into(),
        )),
    }
}

/// An account named by username, email or id.
async fn resolve(service: &UserService, who: &str) -> Result<User, Failure> {
    let user = if let Ok(id) = who.parse::<UserId>() {
        service.get(id).await
    } else if who.contains('@') {
        service.find(UserKey::Email(&Email::parse(who)?)).await
    } else {
        service.find(UserKey::Username(&Username::parse(who)?)).await
    };
    user.map_err(|e| match e {
        user_core::Error::UserNotFound => Failure::Refused(format!("no user {who:?}")),
        other => other.into(),
    })
}

async fn run_user(service: &UserService, command: UserCommand, out: &Output) -> Result<(), Failure> {
    match command {
        UserCommand::List { page } => list_users(service, page, out).await?,
        UserCommand::Show { user } => {
            let user = resolve(service, &user).await?;
            print_users(out, &[UserSummary::from(&user)], None);
        }
        UserCommand::Create { username, email, admin, password } => {
            let registration = Registration {
                username: Username::parse(&username)?,
                email: Email::parse(&email)?,
                password: Password::parse(&secrets(&password, &["Password"])?.remove(0))?,
            };
            let role = if admin { Role::Admin } else { Role::User };
            let user = service.create_user(registration, role).await?;
            out.done(&json!(UserSummary::from(&user)), &format!("created {} ({}) as {role}", user.username, user.id));
        }
        UserCommand::SetRole { user, role } => {
            let target = resolve(service, &user).await?;
            let role = match role {
                RoleArg::User => Role::User,
                RoleArg::Admin => Role::Admin,
            };
            let updated = service.set_role(target.id, role).await?;
            let message = format!("{} is now {role} (from their next login or refresh)", updated.username);
            out.done(&json!(UserSummary::from(&updated)), &message);
        }
        UserCommand::Disable { user } => {
            let target = resolve(service, &user).await?;
            service.disable(target.id).await?;
            let message = format!("disabled {}; their sessions have ended", target.username);
            out.done(&json!({"id": target.id, "status": "disabled"}), &message);
        }
        UserCommand::Enable { user } => {
            let target = resolve(service, &user).await?;
            service.enable(target.id).await?;
            out.done(&json!({"id": target.id, "status": "enabled"}), &format!("enabled {}", target.username));
        }
        UserCommand::RevokeSessions { user } => {
            let target = resolve(service, &user).await?;
            let n = service.revoke_sessions(target.id).await?;
            let message = format!("ended {n} session(s) of {}", target.username);
            out.done(&json!({"id": target.id, "revoked": n}), &message);
        }
        UserCommand::Delete { user, yes } => {
            let target = resolve(service, &user).await?;
            confirm(&format!("Delete the account {} and all its favorites?", target.username), yes)?;
            service.delete(target.id, &Default::default()).await?;
            out.done(&json!({"id": target.id, "status": "deleted"}), &format!("deleted {}", target.username));
        }
    }
    Ok(())
}

async fn list_users(service: &UserService, page: Page, out: &Output) -> Result<(), Failure> {
    let mut request = PageRequest::first(page.limit)?;
    if let Some(cursor) = page.cursor {
        request = request.after(cursor);
    }
    let mut users = Vec::new();
    loop {
        let result = service.list_users(&request).await?;
        users.extend(result.items.iter().map(UserSummary::from));
        match (page.all, result.next_cursor) {
            (true, Some(next)) => request = PageRequest::first(page.limit)?.after(next),
            (_, next) => {
                print_users(out, &users, next.as_deref());
                return Ok(());
            }
        }
    }
}

async fn run_tasks(service: &UserService, command: TasksCommand, out: &Output) -> Result<(), Failure> {
    match command {
        TasksCommand::List { status, limit, after } => {
            let status = status.map(|s| match s {
                StatusArg::Pending => TaskStatus::Pending,
                StatusArg::Done => TaskStatus::Done,
                StatusArg::Dead => TaskStatus::Dead,
            });
            print_tasks(out, &service.list_tasks(status, after, limit).await?);
        }
        TasksCommand::Retry { id, all_dead } => {
            let n = service.retry_dead_tasks(if all_dead { None } else { id }).await?;
            if n == 0 && !all_dead {
                return Err(Failure::Refused(format!("no dead task {}", id.unwrap_or_default())));
            }
            out.done(&json!({"retried": n}), &format!("{n} dead task(s) back in the queue"));
        }
        TasksCommand::Purge { older_than } => {
            let purged = service.purge_delivered_tasks(older_than).await?;
            out.done(&json!({"purged": purged}), &format!("{purged} delivered task(s) deleted"));
        }
    }
    Ok(())
}
