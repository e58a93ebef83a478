//! Every clap type of the command line; doc comments are the `--help` text.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The user service from the shell: users work against a server (`--server`),
/// operators also directly against its database (`--database`).
#[derive(Debug, Parser)]
#[command(name = "user-cli", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,

    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Local mode builds the service from the server's own settings, so an
    /// account made here hashes and signs exactly as the server would.
    #[command(flatten, next_help_heading = "Local mode: the server's settings (same flags and USER_* variables)")]
    pub service: user_settings::ServiceSettings,

    #[command(subcommand)]
    pub command: Command,
}

/// Where commands go: exactly one of the two.
#[derive(Debug, Args)]
pub struct Target {
    /// Remote mode: the server's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "USER_SERVER", global = true)]
    pub server: Option<String>,

    /// Remote mode: also trust the CA certificate(s) in this PEM file (a server whose certificate a private CA issued).
    #[arg(long, env = "USER_CA_CERT", global = true, value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// Local mode: the database URL (sqlite://path.db or postgres://…).
    #[arg(long, env = "USER_DATABASE_URL", global = true, hide_env_values = true)]
    pub database: Option<String>,

    /// Local mode: read `database` and the service settings from the server's TOML config file.
    #[arg(long, env = "USER_CONFIG_FILE", global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

/// Where a password comes from: a prompt with no echo, or one line of stdin.
#[derive(Debug, Args)]
pub struct PasswordSource {
    /// Read the password from the first line of standard input (for scripts).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a shell completion script, e.g. `user-cli completions bash > /etc/bash_completion.d/user-cli`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `user-cli man | man -l -`.
    Man,
    /// Create an account on the server (remote).
    Register {
        /// 3–32 characters of A-Z a-z 0-9 _ . -
        username: String,
        /// The account's email address.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Log in and keep the session in the credentials file (remote). With
    /// --device, sign in by code instead: it prints a code and a URL, and
    /// waits while you approve it from a browser where you are signed in.
    Login {
        /// Username or email (not with --device).
        #[arg(required_unless_present = "device", conflicts_with = "device")]
        username: Option<String>,
        #[command(flatten)]
        password: PasswordSource,
        /// Sign in by code from another device (RFC 8628): no password typed here.
        #[arg(long)]
        device: bool,
        /// The public client id to sign in as with --device (one of the server's USER_OAUTH_CLIENTS).
        #[arg(long, env = "USER_OAUTH_CLIENT_ID", default_value = "user-cli", requires = "device")]
        client_id: String,
        /// The name the session gets with --device, shown where it is approved and in `sessions`.
        #[arg(long, default_value = "user-cli", requires = "device")]
        device_name: String,
    },
    /// End the session on the server and remove the credentials file (remote).
    Logout,
    /// Show the logged-in account (remote).
    Whoami,
    /// Change the logged-in account's username, email or password (remote).
    Update {
        /// A new username.
        #[arg(long)]
        username: Option<String>,
        /// A new email.
        #[arg(long)]
        email: Option<String>,
        /// Change the password (asked for; with --password-stdin, the last line of stdin).
        #[arg(long)]
        new_password: bool,
        /// Confirm with the current password (asked for; with --password-stdin, the first line).
        #[arg(long)]
        current_password: bool,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Verify an email address with the token from its mail (remote; no login needed).
    VerifyEmail {
        /// The token (the `token=` part of the link); it may start with `-`.
        #[arg(allow_hyphen_values = true)]
        token: String,
    },
    /// Forgotten passwords: ask for a reset mail, or set a new password with its token (remote).
    #[command(subcommand)]
    Password(PasswordCommand),
    /// Delete the logged-in account (remote); asks first unless --yes.
    DeleteAccount {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Confirm with the current password (asked for; with --password-stdin, the first line):
        /// needed when the login is older than the server's re-authentication window (10 min).
        #[arg(long)]
        current_password: bool,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Two-factor authentication of the logged-in account with an authenticator app (remote).
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Favorite tracks of the logged-in account (remote).
    #[command(subcommand)]
    Favorite(FavoriteCommand),
    /// The logged-in account's identities at other providers (Google, Apple, …); `unlink` removes one (remote).
    Identities {
        #[command(subcommand)]
        command: Option<IdentitiesCommand>,
    },
    /// The logged-in account's sessions, newest first; `revoke` signs devices out (remote).
    Sessions {
        #[command(subcommand)]
        command: Option<SessionsCommand>,
    },
    /// Accounts (operators: local, or remote logged in as an admin).
    #[command(subcommand)]
    User(UserCommand),
    /// The deferred-task outbox (operators: local, or remote as an admin; `purge` local only).
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// The audit trail of security events (operators: local, or remote as an admin).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Apply database migrations (local).
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum PasswordCommand {
    /// Ask for a reset mail; the answer is the same whether or not an account has the address.
    Forgot {
        /// The account's email address.
        email: String,
    },
    /// Set a new password with the token from a reset mail; every session of the account ends.
    Reset {
        /// The token (the `token=` part of the link); it may start with `-`.
        #[arg(long, allow_hyphen_values = true)]
        token: String,
        #[command(flatten)]
        password: PasswordSource,
    },
}

#[derive(Debug, Subcommand)]
pub enum IdentitiesCommand {
    /// Remove the identity at a provider (a recent sign-in; never the last way to sign in).
    Unlink {
        /// The provider, as `user-cli identities` lists it.
        provider: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Sign out one session (its id from `user-cli sessions`), or every other one.
    Revoke {
        /// The session to end.
        #[arg(required_unless_present = "others", conflicts_with = "others")]
        id: Option<uuid::Uuid>,
        /// End every session but this one.
        #[arg(long)]
        others: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum FavoriteCommand {
    /// Add up to 50 tracks.
    Add {
        /// Track ids.
        #[arg(required = true)]
        track_ids: Vec<String>,
    },
    /// Remove up to 50 tracks.
    Remove {
        /// Track ids.
        #[arg(required = true)]
        track_ids: Vec<String>,
    },
    /// List favorites, newest first.
    List {
        #[command(flatten)]
        page: Page,
    },
}

/// Paging flags.
#[derive(Debug, Args)]
pub struct Page {
    /// Items per page (1–100).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: u32,
    /// Continue after this cursor (from the previous page).
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow cursors to the end.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List accounts, oldest first.
    List {
        /// Only accounts whose username or email starts with this (any case).
        #[arg(long)]
        query: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Show one account.
    Show {
        /// Username, email or id.
        user: String,
    },
    /// Create an account (the way to bootstrap the first admin).
    Create {
        /// The username.
        username: String,
        /// The email.
        #[arg(long)]
        email: String,
        /// Give it the admin role.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Change an account's role.
    SetRole {
        /// Username, email or id.
        user: String,
        /// The new role.
        role: RoleArg,
    },
    /// Disable an account: it cannot log in, and its sessions end now.
    Disable {
        /// Username, email or id.
        user: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Username, email or id.
        user: String,
    },
    /// Mark an account's email address verified (as its verification link would).
    Verify {
        /// Username, email or id.
        user: String,
    },
    /// End every session of an account.
    RevokeSessions {
        /// Username, email or id.
        user: String,
    },
    /// Second factors: enroll an authenticator app for an account from
    /// this terminal, or remove an account's factors.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// An account's identities at other providers, and whether it has a password (local).
    Identities {
        /// Id, username or email.
        user: String,
    },
    /// Same as `user mfa reset`.
    #[command(hide = true)]
    MfaReset {
        /// Username, email or id.
        user: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Delete an account with its sessions and favorites; asks first unless --yes.
    Delete {
        /// Username, email or id.
        user: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Turn TOTP on: prints a QR code, the secret and the otpauth:// URI for
    /// the authenticator app, reads the app's first code (the next line of
    /// stdin), and prints ten recovery codes once.
    Enroll {
        #[command(flatten)]
        proof: CurrentPassword,
    },
    /// Turn TOTP off (the recovery codes stop working too).
    Disable {
        #[command(flatten)]
        proof: CurrentPassword,
    },
    /// Ten new recovery codes in place of the old ones.
    RecoveryCodes {
        #[command(flatten)]
        proof: CurrentPassword,
    },
}

/// Proof of a recent sign-in for a change of sign-in methods.
#[derive(Debug, Args)]
pub struct CurrentPassword {
    /// Confirm with the current password (asked for; with --password-stdin, the first line):
    /// needed when the login is older than the server's re-authentication window (10 min).
    #[arg(long)]
    pub current_password: bool,
    #[command(flatten)]
    pub password: PasswordSource,
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Turn TOTP on for an account (an admin the second-factor policy
    /// covers, say): prints the secret and its `otpauth://` URI for the
    /// authenticator app, reads the app's first code from stdin, and prints
    /// the ten recovery codes once. On the database host only (--database):
    /// over the API nobody sets another person's authenticator.
    Enroll {
        /// Username, email or id.
        user: String,
    },
    /// Remove an account's second factors (TOTP, recovery codes) for someone
    /// who lost them; ends their sessions and tells them by mail. Asks first
    /// unless --yes.
    Reset {
        /// Username, email or id.
        user: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// Roles as command-line values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// An ordinary account.
    User,
    /// May list every account.
    Admin,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List tasks in id order.
    List {
        /// Only tasks in this state.
        #[arg(long)]
        status: Option<StatusArg>,
        #[command(flatten)]
        page: Page,
    },
    /// Put dead tasks back in the queue.
    Retry {
        /// The dead task to retry.
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<i64>,
        /// Retry every dead task.
        #[arg(long)]
        all_dead: bool,
    },
    /// Delete delivered tasks (the server's relay does this itself after
    /// `USER_TASKS_RETENTION`). Pending and dead tasks are never deleted.
    Purge {
        /// Only tasks delivered longer ago than this (e.g. `7d`, `12h`, `0s` for all).
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
    },
}

/// Task states as command-line values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    /// Waiting, in flight or backing off.
    Pending,
    /// Delivered.
    Done,
    /// Given up on.
    Dead,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List security events, newest first.
    List {
        /// Only events of this account (username, email or id).
        #[arg(long)]
        user: Option<String>,
        /// Only events of this kind, e.g. `login.failure`, `role.change`.
        #[arg(long)]
        event: Option<String>,
        #[command(flatten)]
        page: Page,
    },
}
