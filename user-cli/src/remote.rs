//! Remote mode: every command through `user-client` against a running server.

use std::path::Path;

use futures_util::TryStreamExt;
use serde_json::json;
use user_client::api::{
    AccountPatch, AdminAccountResponse, AuditEventInfo, CreateAccountRequest, IdentityInfo, TaskInfo, TaskState,
    TotpEnrollResponse, UpdateRequest, UserSummary,
};
use user_client::{AuditQuery, Client};
use uuid::Uuid;

use crate::cli::{
    Command, CurrentPassword, FavoriteCommand, IdentitiesCommand, PasswordCommand, SessionsCommand, TotpCommand,
};
use crate::credentials;
use crate::failure::Failure;
use crate::input::{confirm, line, secrets};
use crate::operate::{self, Operations, Paged, no_user};
use crate::output::{Output, print_enrollment, print_identities, print_next, print_sessions};

pub async fn run(server: &str, ca_cert: Option<&Path>, command: Command, out: &Output) -> Result<(), Failure> {
    let mut builder = Client::builder(server);
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|e| Failure::Usage(format!("--ca-cert {}: {e}", path.display())))?;
        builder = builder
            .add_root_certificate(&pem)
            .map_err(|e| Failure::Usage(format!("--ca-cert {}: {e}", path.display())))?;
    }
    if let Command::Login { device: true, device_name, .. } = &command {
        builder = builder.device_name(device_name);
    }
    let client = builder.build()?;
    if let Some(saved) = credentials::load(server) {
        client.restore_session(&saved).await;
    }
    let result = execute(&client, command, out).await;
    // Tokens may have been refreshed on the way: keep the newest.
    if client.access_token().await.is_some() {
        credentials::save(server, client.save_session().await)?;
    }
    result
}

/// Signs this shell in by code: prints the code and where to type it (on
/// stderr, or as a first JSON line on stdout with --json), then waits for
/// the approval; the session is kept like a password login's.
async fn device_login(client: &Client, client_id: &str, out: &Output) -> Result<(), Failure> {
    let login = client.start_device_login(client_id).await?;
    if out.json {
        let started = json!({
            "user_code": login.user_code(),
            "verification_uri": login.verification_uri(),
            "verification_uri_complete": login.verification_uri_complete(),
            "expires_in": login.expires_in().as_secs(),
        });
        println!("{started}");
    } else {
        eprintln!(
            "To sign in, open {} and type the code {}\n(or open {})\nWaiting for approval…",
            login.verification_uri(),
            login.user_code(),
            login.verification_uri_complete()
        );
    }
    let signed_in = login.wait().await?;
    client.restore_session(&signed_in.save_session().await).await;
    let me = client.me().await?;
    out.done(&json!({"id": me.id, "status": "logged in"}), &format!("logged in as {}", me.display_name()));
    Ok(())
}

async fn execute(client: &Client, command: Command, out: &Output) -> Result<(), Failure> {
    match command {
        Command::Register { username, email, password } => {
            let pw = secrets(&password, &["Password"])?.remove(0);
            let account = client.register(&username, &email, &pw).await?;
            out.done(&json!(account), &format!("registered {} ({})", account.username, account.id));
        }
        Command::Login { device: true, client_id, .. } => device_login(client, &client_id, out).await?,
        Command::Login { username, password, .. } => {
            let username = username.unwrap_or_default();
            let pw = secrets(&password, &["Password"])?.remove(0);
            let login = match client.login(&username, &pw).await {
                // The account has a second factor: its code is the next
                // prompt (or the next line of --password-stdin).
                Err(user_client::Error::MfaRequired(pending)) => {
                    // A passkey needs a browser or the platform's authenticator.
                    if !pending.methods.iter().any(|m| m == "totp" || m == "recovery_code") {
                        return Err(Failure::Refused(
                            "this account's second factor is a passkey, which a shell cannot use: sign in with \
                             `user-cli login --device` and approve it in a browser"
                                .into(),
                        ));
                    }
                    let prompt = "Code from the authenticator app, or a recovery code";
                    let code = secrets(&password, &[prompt])?.remove(0);
                    client.login_mfa(&pending.mfa_token, &code).await?
                }
                other => other?,
            };
            out.done(&json!({"id": login.id, "status": "logged in"}), &format!("logged in as {username}"));
        }
        Command::Logout => {
            let result = client.logout().await;
            credentials::remove()?;
            match result {
                Ok(_) => out.done(&json!({"status": "logged out"}), "logged out"),
                // The session was already gone on the server: locally it is now too.
                Err(e) if e.is_unauthorized() => out.done(&json!({"status": "logged out"}), "logged out"),
                Err(e) => return Err(e.into()),
            }
        }
        Command::Identities { command: None } => {
            let security = client.security().await?;
            print_identities(out, &security.identities, Some(security.has_password));
        }
        Command::Identities { command: Some(IdentitiesCommand::Unlink { provider }) } => {
            client.unlink_identity(&provider).await?;
            out.done(&json!({"provider": provider, "status": "unlinked"}), &format!("removed the {provider} identity"));
        }
        Command::Sessions { command: None } => print_sessions(out, &client.sessions().await?),
        Command::Sessions { command: Some(SessionsCommand::Revoke { id: Some(id), .. }) } => {
            client.revoke_session(id).await?;
            out.done(&json!({"id": id, "status": "revoked"}), &format!("session {id} signed out"));
        }
        Command::Sessions { command: Some(SessionsCommand::Revoke { id: None, .. }) } => {
            let revoked = client.revoke_other_sessions().await?;
            out.done(&json!({"revoked": revoked}), &format!("{revoked} other session(s) signed out"));
        }
        Command::VerifyEmail { token } => {
            client.verify_email(&token).await?;
            out.done(&json!({"status": "email verified"}), "email verified");
        }
        Command::Password(PasswordCommand::Forgot { email }) => {
            let reply = client.forgot_password(&email).await?;
            out.done(&json!({"status": "requested"}), &reply.message);
        }
        Command::Password(PasswordCommand::Reset { token, password }) => {
            let pw = secrets(&password, &["New password"])?.remove(0);
            client.reset_password(&token, &pw).await?;
            let message = "password reset; every session of the account has ended, log in again";
            out.done(&json!({"status": "password reset"}), message);
        }
        Command::Whoami => {
            let me = client.me().await?;
            out.table(
                &json!(me),
                &["id", "username", "email", "verified", "locale", "role", "created_at"],
                vec![vec![
                    me.id.to_string(),
                    me.username.clone().unwrap_or_default(),
                    me.email.clone().unwrap_or_default(),
                    if me.email_verified { "yes" } else { "no" }.to_owned(),
                    me.locale.to_string(),
                    me.role.to_string(),
                    me.created_at.to_rfc3339(),
                ]],
            );
        }
        Command::Update { username, email, new_password, current_password, password } => {
            let mut prompts = Vec::new();
            if current_password {
                prompts.push("Current password");
            }
            if new_password {
                prompts.push("New password");
            }
            let mut given = if prompts.is_empty() { Vec::new() } else { secrets(&password, &prompts)? }.into_iter();
            let update = UpdateRequest {
                username,
                email,
                current_password: if current_password { given.next() } else { None },
                password: if new_password { given.next() } else { None },
                locale: None,
            };
            let account = client.update(&update).await?;
            out.done(&json!(account), &format!("updated {} ({})", account.username, account.id));
        }
        Command::DeleteAccount { yes, current_password, password } => {
            let me = client.me().await?;
            confirm(&format!("Delete the account {} and all its favorites?", me.display_name()), yes)?;
            let current = if current_password { secrets(&password, &["Current password"])?.pop() } else { None };
            client.delete_account(current.as_deref()).await?;
            credentials::remove()?;
            out.done(&json!({"status": "deleted", "id": me.id}), &format!("deleted {}", me.display_name()));
        }
        Command::Totp(TotpCommand::Enroll { proof }) => {
            let current = current_password(&proof)?;
            let enrollment = client.totp_enroll(current.as_deref()).await.map_err(reauth_hint)?;
            print_enrollment(out, &enrollment.secret, &enrollment.otpauth_uri, json!({}));
            let code = line("Code from the app")?;
            let codes = client.totp_confirm(&code).await?.recovery_codes;
            let message = format!(
                "two-factor authentication is on. Recovery codes (each works once; shown only now):\n  {}",
                codes.join("\n  ")
            );
            out.done(&json!({"recovery_codes": codes}), &message);
        }
        Command::Totp(TotpCommand::Disable { proof }) => {
            let current = current_password(&proof)?;
            client.totp_disable(current.as_deref()).await.map_err(reauth_hint)?;
            out.done(&json!({"status": "totp off"}), "two-factor authentication is off; the recovery codes are void");
        }
        Command::Totp(TotpCommand::RecoveryCodes { proof }) => {
            let current = current_password(&proof)?;
            let codes = client.new_recovery_codes(current.as_deref()).await.map_err(reauth_hint)?.recovery_codes;
            let message =
                format!("new recovery codes (the old ones are void; shown only now):\n  {}", codes.join("\n  "));
            out.done(&json!({"recovery_codes": codes}), &message);
        }
        Command::Favorite(FavoriteCommand::Add { track_ids }) => {
            client.add_favorites(&track_ids).await?;
            out.done(&json!({"status": "added", "track_ids": track_ids}), &format!("added {}", track_ids.join(", ")));
        }
        Command::Favorite(FavoriteCommand::Remove { track_ids }) => {
            client.remove_favorites(&track_ids).await?;
            let message = format!("removed {}", track_ids.join(", "));
            out.done(&json!({"status": "removed", "track_ids": track_ids}), &message);
        }
        Command::Favorite(FavoriteCommand::List { page }) => {
            let (tracks, next) = if page.all {
                (client.favorites(page.limit).try_collect::<Vec<_>>().await?, None)
            } else {
                let p = client.list_favorites(Some(page.limit), page.cursor.as_deref()).await?;
                (p.tracks, p.next_cursor)
            };
            let rows = tracks.iter().map(|t| vec![t.track_id.clone(), t.added_at.to_rfc3339()]).collect();
            out.table(&json!({"tracks": tracks, "next_cursor": next}), &["track_id", "added_at"], rows);
            print_next(out, next.as_deref());
        }
        Command::User(command) => operate::user(&Remote(client), command, out).await?,
        Command::Tasks(command) => operate::tasks(&Remote(client), command, out).await?,
        Command::Audit(command) => operate::audit(&Remote(client), command, out).await?,
        // Answered by `main` before any server or database is needed.
        Command::Completions { .. } | Command::Man => {}
        Command::Migrate => {
            return Err(Failure::Usage("`migrate` works on the database: use --database".into()));
        }
    }
    Ok(())
}

/// The admin API, as the logged-in admin (the audit trail's actor).
struct Remote<'a>(&'a Client);

impl Operations for Remote<'_> {
    async fn account(&self, who: &str) -> Result<AdminAccountResponse, Failure> {
        let admin = self.0.admin();
        let id = match who.parse::<Uuid>() {
            Ok(id) => id,
            // By name or email: the prefix search, narrowed to the one exact match.
            Err(_) => {
                let matches = |u: &UserSummary| {
                    [&u.username, &u.email].iter().any(|v| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(who)))
                };
                let mut users = std::pin::pin!(admin.users(Some(who), 100));
                loop {
                    match users.try_next().await? {
                        Some(user) if matches(&user) => break user.id,
                        Some(_) => {}
                        None => return Err(no_user(who)),
                    }
                }
            }
        };
        admin.user(id).await.map_err(|e| if e.status() == Some(404) { no_user(who) } else { e.into() })
    }

    async fn users(
        &self,
        query: Option<&str>,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<Paged<UserSummary>, Failure> {
        let page = self.0.admin().search_users(query, Some(limit), cursor.as_deref()).await?;
        Ok((page.users, page.next_cursor))
    }

    async fn create(&self, account: CreateAccountRequest) -> Result<AdminAccountResponse, Failure> {
        Ok(self.0.admin().create_user(&account).await?)
    }

    async fn change(&self, id: Uuid, patch: AccountPatch) -> Result<AdminAccountResponse, Failure> {
        Ok(self.0.admin().update_user(id, &patch).await?)
    }

    async fn revoke_sessions(&self, id: Uuid) -> Result<u64, Failure> {
        Ok(self.0.admin().revoke_user_sessions(id).await?)
    }

    async fn reset_mfa(&self, id: Uuid) -> Result<(), Failure> {
        Ok(self.0.admin().reset_mfa(id).await?)
    }

    async fn identities(&self, _: Uuid) -> Result<(Vec<IdentityInfo>, bool), Failure> {
        Err(Failure::Usage(
            "user identities works on the database host only (--database); a person sees their own with \
             `user-cli identities`"
                .into(),
        ))
    }

    async fn start_totp(&self, _: Uuid) -> Result<TotpEnrollResponse, Failure> {
        Err(Failure::Usage(
            "user mfa enroll works on the database host only (--database): over the API nobody sets another \
             person's authenticator; the person runs `user-cli totp enroll` signed in as themselves"
                .into(),
        ))
    }

    async fn confirm_totp(&self, _: Uuid, _: &str) -> Result<Vec<String>, Failure> {
        Err(Failure::Usage("user mfa enroll works on the database host only (--database)".into()))
    }

    async fn delete(&self, id: Uuid) -> Result<(), Failure> {
        self.0.admin().delete_user(id).await?;
        Ok(())
    }

    async fn tasks(
        &self,
        status: Option<TaskState>,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<Paged<TaskInfo>, Failure> {
        let page = self.0.admin().tasks(status, Some(limit), cursor.as_deref()).await?;
        Ok((page.tasks, page.next_cursor))
    }

    async fn retry_task(&self, id: i64) -> Result<(), Failure> {
        self.0.admin().retry_task(id).await?;
        Ok(())
    }

    /// One retry per dead task: the API retries one at a time. A task
    /// retried meanwhile by someone else (409) is no failure.
    async fn retry_dead_tasks(&self) -> Result<u64, Failure> {
        let admin = self.0.admin();
        let mut retried = 0;
        let mut cursor = None;
        loop {
            let page = admin.tasks(Some(TaskState::Dead), Some(100), cursor.as_deref()).await?;
            for task in &page.tasks {
                match admin.retry_task(task.id).await {
                    Ok(_) => retried += 1,
                    Err(e) if e.status() == Some(409) || e.status() == Some(404) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(retried),
            }
        }
    }

    async fn audit(
        &self,
        user: Option<Uuid>,
        event: Option<String>,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<Paged<AuditEventInfo>, Failure> {
        let page = self.0.admin().audit(&AuditQuery { user, event }, Some(limit), cursor.as_deref()).await?;
        Ok((page.events, page.next_cursor))
    }
}

/// The current password, when `--current-password` asks for it.
fn current_password(proof: &CurrentPassword) -> Result<Option<String>, Failure> {
    Ok(if proof.current_password { secrets(&proof.password, &["Current password"])?.pop() } else { None })
}

/// A `reauth_required` refusal, with what to do about it.
fn reauth_hint(e: user_client::Error) -> Failure {
    if e.is_reauth_required() {
        return Failure::Refused(
            "this needs a recent sign-in: run `user-cli login` again, or add --current-password (an account with \
             two-factor authentication on must sign in again)"
                .into(),
        );
    }
    e.into()
}
