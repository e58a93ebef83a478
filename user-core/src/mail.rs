//! Mails to users: rendered from templates when their outbox task is
//! delivered, and handed to a [`MailTransport`].
//!
//! Templates (plain text, HTML and subject for each kind, in English and
//! Russian) are built in; an operator may override any of them from a
//! directory. Every template is rendered once with sample values when the
//! [`Mailer`] is built, so a missing or broken one stops the start, never
//! a mail.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use minijinja::{AutoEscape, Environment, context};

use crate::domain::{Email, Locale};
use crate::error::DeliveryError;
use crate::store::{DeferredTask, MailPayload, TaskKind, User};

/// The mail kinds and their template names (`{name}.{locale}.{subject,txt,html}`).
const KINDS: [(TaskKind, &str); 5] = [
    (TaskKind::EmailVerify, "verify"),
    (TaskKind::EmailPasswordReset, "password_reset"),
    (TaskKind::EmailPasswordChanged, "password_changed"),
    (TaskKind::EmailChanged, "email_changed"),
    (TaskKind::EmailSecurityChanged, "security_changed"),
];

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/mail/", $name)))),*]
    };
}

/// The built-in templates.
const BUILTIN: &[(&str, &str)] = builtin![
    "verify.en.subject",
    "verify.en.txt",
    "verify.en.html",
    "verify.ru.subject",
    "verify.ru.txt",
    "verify.ru.html",
    "password_reset.en.subject",
    "password_reset.en.txt",
    "password_reset.en.html",
    "password_reset.ru.subject",
    "password_reset.ru.txt",
    "password_reset.ru.html",
    "password_changed.en.subject",
    "password_changed.en.txt",
    "password_changed.en.html",
    "password_changed.ru.subject",
    "password_changed.ru.txt",
    "password_changed.ru.html",
    "email_changed.en.subject",
    "email_changed.en.txt",
    "email_changed.en.html",
    "email_changed.ru.subject",
    "email_changed.ru.txt",
    "email_changed.ru.html",
    "security_changed.en.subject",
    "security_changed.en.txt",
    "security_changed.en.html",
    "security_changed.ru.subject",
    "security_changed.ru.txt",
    "security_changed.ru.html",
];

/// A mail ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient.
    pub to: Email,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
    /// The task kind it came from, e.g. `email.verify`.
    pub kind: &'static str,
    /// The language it is written in.
    pub locale: Locale,
    /// The outbox task id: the same on every delivery attempt, for a
    /// receiver to deduplicate.
    pub task_id: i64,
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bodies hold single-use links.
        f.debug_struct("Mail").field("to", &self.to).field("kind", &self.kind).field("task_id", &self.task_id).finish()
    }
}

/// Where mails go: SMTP, a provider's API, or the log.
#[async_trait]
pub trait MailTransport: Send + Sync + fmt::Debug {
    /// Sends one mail; `Ok` means the next hop accepted it.
    async fn send(&self, mail: &Mail) -> Result<(), DeliveryError>;
}

/// Writes each mail, link included, to the log (target `mail`, level info):
/// for development, where no mail server is at hand. Never fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogTransport;

#[async_trait]
impl MailTransport for LogTransport {
    async fn send(&self, mail: &Mail) -> Result<(), DeliveryError> {
        tracing::info!(
            target: "mail",
            task_id = mail.task_id,
            kind = mail.kind,
            to = %mail.to,
            locale = %mail.locale,
            subject = %mail.subject,
            text = %mail.text,
            "mail (USER_MAIL_DEV_LOG: logged, not sent)"
        );
        Ok(())
    }
}

#[cfg(feature = "smtp")]
pub use smtp::SmtpTransport;

#[cfg(feature = "smtp")]
mod smtp {
    use std::time::Duration;

    use async_trait::async_trait;
    use lettre::message::{Mailbox, MultiPart};
    use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

    use super::{Mail, MailTransport};
    use crate::error::DeliveryError;

    /// Sends mails over SMTP. The URL says how:
    /// `smtp://user:pass@host:587` (STARTTLS, required),
    /// `smtps://user:pass@host:465` (TLS from the start), or
    /// `smtp://host:1025?tls=none` (no encryption: a local catcher only).
    /// 4xx answers and connection failures are retried; 5xx answers are final.
    #[derive(Clone)]
    pub struct SmtpTransport {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        /// The URL without credentials, for errors and logs.
        shown: String,
    }

    impl std::fmt::Debug for SmtpTransport {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SmtpTransport").field("server", &self.shown).field("from", &self.from).finish()
        }
    }

    impl SmtpTransport {
        /// A transport to the server at `url`, sending as `from`
        /// (`Music <no-reply@music.example>` or a bare address). Call it
        /// inside a Tokio runtime: its connection pool runs a task there.
        ///
        /// # Errors
        /// A message naming what is wrong with the URL or the sender.
        pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, String> {
            let (base, query) = url.split_once('?').unwrap_or((url, ""));
            let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
            let tls = params.iter().find_map(|p| p.strip_prefix("tls=")).map(str::to_owned);
            // lettre's smtp:// without `tls` sends in the clear; ours
            // requires STARTTLS unless told `tls=none`.
            match (base.split("://").next(), tls.as_deref()) {
                (Some("smtp"), None) => params.push("tls=required"),
                (Some("smtp"), Some("none")) => params.retain(|p| *p != "tls=none"),
                (Some("smtp"), Some("required" | "opportunistic")) | (Some("smtps"), None) => {}
                (Some("smtp" | "smtps"), Some(other)) => {
                    return Err(format!("USER_MAIL_SMTP_URL: tls={other} is not one of required, opportunistic, none"));
                }
                _ => return Err("USER_MAIL_SMTP_URL must start with smtp:// or smtps://".into()),
            }
            let rebuilt = if params.is_empty() { base.to_owned() } else { format!("{base}?{}", params.join("&")) };
            let shown = match base.split_once("://").and_then(|(scheme, rest)| Some((scheme, rest.rsplit_once('@')?))) {
                Some((scheme, (_, host))) => format!("{scheme}://{host}"),
                None => base.to_owned(),
            };
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&rebuilt)
                .map_err(|e| format!("USER_MAIL_SMTP_URL {shown}: {e}"))?
                .timeout(Some(timeout))
                .build();
            let from = from.parse::<Mailbox>().map_err(|e| format!("USER_MAIL_FROM {from:?}: {e}"))?;
            Ok(Self { transport, from, shown })
        }
    }

    #[async_trait]
    impl MailTransport for SmtpTransport {
        async fn send(&self, mail: &Mail) -> Result<(), DeliveryError> {
            let to = mail.to.as_str().parse::<Mailbox>().map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(mail.subject.clone())
                .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
                .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            match self.transport.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(DeliveryError::Permanent(format!("{}: {e}", self.shown))),
                Err(e) => Err(DeliveryError::Transient(format!("{}: {e}", self.shown))),
            }
        }
    }
}

/// What the mails say about the service and where their links point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// The product's name in subjects and bodies.
    pub product: String,
    /// The service's public base URL (`https://music.example`): links go to
    /// its `/account/verify` and `/account/reset` pages.
    pub public_url: String,
    /// An app's own verification page instead, with `{token}` in it.
    pub verify_url: Option<String>,
    /// An app's own reset page instead, with `{token}` in it.
    pub reset_url: Option<String>,
    /// An app's own page for undoing an address change instead of
    /// `/account/revert`, with `{token}` in it.
    pub revert_url: Option<String>,
    /// How long verification links work (said in the mail).
    pub verify_token_ttl: Duration,
    /// How long reset links work (said in the mail).
    pub reset_token_ttl: Duration,
    /// How long the undo link of an address change works (said in the mail).
    pub revert_token_ttl: Duration,
}

/// Why a [`Mailer`] could not be built.
#[derive(Debug, thiserror::Error)]
#[error("mail template {name}: {reason}")]
pub struct TemplateError {
    name: String,
    reason: String,
}

/// Renders mail tasks and sends them through a transport.
#[derive(Clone)]
pub struct Mailer {
    templates: Arc<Environment<'static>>,
    settings: MailSettings,
    transport: Arc<dyn MailTransport>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer").field("settings", &self.settings).field("transport", &self.transport).finish()
    }
}

impl Mailer {
    /// A mailer with the built-in templates, each overridden by a file of
    /// the same name in `templates_dir` when there is one (e.g.
    /// `verify.ru.html`).
    ///
    /// # Errors
    /// A template that cannot be read, parsed or rendered with sample values,
    /// or a link template without `{token}`.
    pub fn new(
        settings: MailSettings,
        transport: Arc<dyn MailTransport>,
        templates_dir: Option<&Path>,
    ) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
        for (name, builtin) in BUILTIN {
            let source = match templates_dir.map(|dir| dir.join(name)).filter(|path| path.exists()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| TemplateError { name: path.display().to_string(), reason: e.to_string() })?,
                None => (*builtin).to_owned(),
            };
            env.add_template_owned(*name, source)
                .map_err(|e| TemplateError { name: (*name).to_owned(), reason: e.to_string() })?;
        }
        for (setting, value) in [
            ("USER_MAIL_VERIFY_URL", &settings.verify_url),
            ("USER_MAIL_RESET_URL", &settings.reset_url),
            ("USER_MAIL_REVERT_URL", &settings.revert_url),
        ] {
            if value.as_ref().is_some_and(|url| !url.contains("{token}")) {
                return Err(TemplateError { name: setting.to_owned(), reason: "must contain {token}".to_owned() });
            }
        }
        let mailer = Self { templates: Arc::new(env), settings, transport };
        let sample = Email::parse("someone@example.com")
            .map_err(|e| TemplateError { name: "sample".to_owned(), reason: e.to_string() })?;
        for (kind, _) in KINDS {
            for locale in Locale::ALL {
                let payload = MailPayload {
                    token: Some("sample-token".into()),
                    change: Some("totp.enable".into()),
                    ..MailPayload::default()
                };
                mailer.render(kind, locale, &sample, "someone", &payload, 0)?;
            }
        }
        Ok(mailer)
    }

    /// Renders and sends a mail task for `user` (the account as it is now).
    ///
    /// # Errors
    /// [`DeliveryError::Permanent`] for a task that is not a mail, or a link
    /// mail whose token is gone (it was cleared when the task died; a
    /// retried dead task cannot be sent, the user asks for a new mail);
    /// otherwise what the transport says.
    pub async fn deliver(&self, task: &DeferredTask, user: &User) -> Result<(), DeliveryError> {
        let payload = task.payload.clone().unwrap_or_default();
        let Some(to) = payload.to.clone().or_else(|| user.email.clone()) else {
            return Err(DeliveryError::Permanent("the account has no address".into()));
        };
        let needs_link = matches!(task.kind, TaskKind::EmailVerify | TaskKind::EmailPasswordReset);
        if needs_link && payload.token.is_none() {
            return Err(DeliveryError::Permanent("the mail's token is gone; the user must ask for a new mail".into()));
        }
        let mail = self
            .render(task.kind, user.locale, &to, user.display_name(), &payload, task.id)
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        self.transport.send(&mail).await
    }

    fn render(
        &self,
        kind: TaskKind,
        locale: Locale,
        to: &Email,
        username: &str,
        payload: &MailPayload,
        task_id: i64,
    ) -> Result<Mail, TemplateError> {
        let token = payload.token.as_deref();
        let name = KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, name)| *name)
            .ok_or_else(|| TemplateError { name: kind.as_str().to_owned(), reason: "not a mail".to_owned() })?;
        let link = token.map(|token| self.link(kind, token));
        let ttl = match kind {
            TaskKind::EmailPasswordReset => self.settings.reset_token_ttl,
            TaskKind::EmailChanged => self.settings.revert_token_ttl,
            _ => self.settings.verify_token_ttl,
        };
        let ctx = context! {
            product => &self.settings.product,
            username => username,
            to => to.as_str(),
            link => link,
            valid_for => valid_for(ttl, locale),
            change => payload.change.as_deref(),
        };
        let part = |part: &str| {
            let template = format!("{name}.{}.{part}", locale.as_str());
            self.templates
                .get_template(&template)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| TemplateError { name: template.clone(), reason: e.to_string() })
        };
        let (subject, text, html) = (part("subject")?, part("txt")?, part("html")?);
        Ok(Mail {
            to: to.clone(),
            subject: subject.trim().to_owned(),
            text,
            html,
            kind: kind.as_str(),
            locale,
            task_id,
        })
    }

    fn link(&self, kind: TaskKind, token: &str) -> String {
        let (custom, page) = match kind {
            TaskKind::EmailPasswordReset => (&self.settings.reset_url, "/account/reset"),
            TaskKind::EmailChanged => (&self.settings.revert_url, "/account/revert"),
            _ => (&self.settings.verify_url, "/account/verify"),
        };
        match custom {
            Some(template) => template.replace("{token}", token),
            None => format!("{}{page}?token={token}", self.settings.public_url.trim_end_matches('/')),
        }
    }
}

/// "24 hours" / "в течение 24 ч": how long a link works, in the mail's language.
fn valid_for(ttl: Duration, locale: Locale) -> String {
    let minutes = ttl.as_secs().div_ceil(60).max(1);
    if minutes.is_multiple_of(24 * 60) && minutes > 24 * 60 {
        let days = minutes / (24 * 60);
        return match locale {
            Locale::En => format!("{days} days"),
            Locale::Ru => format!("в течение {days} дн."),
        };
    }
    match (locale, minutes.is_multiple_of(60)) {
        (Locale::En, true) if minutes == 60 => "1 hour".to_owned(),
        (Locale::En, true) => format!("{} hours", minutes / 60),
        (Locale::En, false) if minutes == 1 => "1 minute".to_owned(),
        (Locale::En, false) => format!("{minutes} minutes"),
        (Locale::Ru, true) => format!("в течение {} ч", minutes / 60),
        (Locale::Ru, false) => format!("в течение {minutes} мин"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::Utc;

    use super::*;
    use crate::domain::{UserId, Username};
    use crate::store::{MailPayload, TaskStatus};

    /// Keeps what it is given.
    #[derive(Debug, Default)]
    struct Outbox(Mutex<Vec<Mail>>);

    #[async_trait]
    impl MailTransport for Outbox {
        async fn send(&self, mail: &Mail) -> Result<(), DeliveryError> {
            self.0.lock().unwrap().push(mail.clone());
            Ok(())
        }
    }

    fn settings() -> MailSettings {
        MailSettings {
            product: "Tunes & Co".into(),
            public_url: "https://music.example/".into(),
            verify_url: None,
            reset_url: None,
            revert_url: None,
            verify_token_ttl: Duration::from_secs(24 * 3600),
            reset_token_ttl: Duration::from_secs(3600),
            revert_token_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }

    fn user(locale: Locale) -> User {
        User {
            id: UserId::new(),
            username: Some(Username::parse("alice").unwrap()),
            email: Some(Email::parse("alice@example.com").unwrap()),
            role: crate::domain::Role::User,
            disabled_at: None,
            email_verified: false,
            locale,
            last_login_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn task(kind: TaskKind, payload: Option<MailPayload>) -> DeferredTask {
        DeferredTask {
            traceparent: None,
            id: 42,
            kind,
            user_id: UserId::new(),
            track_id: None,
            payload,
            occurred_at: Utc::now(),
            status: TaskStatus::Pending,
            attempts: 0,
            available_at: Utc::now(),
            last_error: None,
            leased_until: None,
            updated_at: Utc::now(),
        }
    }

    fn with_token(token: &str) -> Option<MailPayload> {
        Some(MailPayload { to: None, token: Some(token.into()), change: None })
    }

    #[tokio::test]
    async fn every_kind_renders_in_both_languages_with_its_link_and_escaped_html() {
        let outbox = Arc::new(Outbox::default());
        let mailer = Mailer::new(settings(), outbox.clone(), None).unwrap();
        for locale in Locale::ALL {
            mailer.deliver(&task(TaskKind::EmailVerify, with_token("tok1")), &user(locale)).await.unwrap();
            mailer.deliver(&task(TaskKind::EmailPasswordReset, with_token("tok2")), &user(locale)).await.unwrap();
            mailer.deliver(&task(TaskKind::EmailPasswordChanged, None), &user(locale)).await.unwrap();
            let old =
                Some(MailPayload { to: Some(Email::parse("old@example.com").unwrap()), token: None, change: None });
            mailer.deliver(&task(TaskKind::EmailChanged, old), &user(locale)).await.unwrap();
        }
        let undo = Some(MailPayload {
            to: Some(Email::parse("old@example.com").unwrap()),
            token: Some("tok3".into()),
            change: None,
        });
        mailer.deliver(&task(TaskKind::EmailChanged, undo), &user(Locale::En)).await.unwrap();
        let sent = outbox.0.lock().unwrap();
        assert_eq!(sent.len(), 9);
        let undo = &sent[8];
        assert!(undo.text.contains("https://music.example/account/revert?token=tok3"), "{}", undo.text);
        assert!(undo.text.contains("7 days") && undo.html.contains("revert?token=tok3"), "{}", undo.text);
        let [verify, reset, changed, moved] = [&sent[0], &sent[1], &sent[2], &sent[3]];
        assert!(!moved.text.contains("/account/revert"), "without a token, no link");
        assert!(verify.text.contains("https://music.example/account/verify?token=tok1"), "{}", verify.text);
        assert!(verify.text.contains("24 hours"));
        assert!(reset.text.contains("https://music.example/account/reset?token=tok2"));
        assert!(reset.text.contains("1 hour"));
        assert_eq!(verify.subject, "Confirm your address for Tunes & Co");
        assert!(verify.html.contains("Tunes &amp; Co") && !verify.html.contains("Tunes & Co"), "HTML is escaped");
        assert!(!changed.text.contains("token"));
        assert_eq!(moved.to.as_str(), "old@example.com", "the notice goes to the old address");
        assert_eq!(verify.to.as_str(), "alice@example.com");
        let ru = &sent[4];
        assert_eq!(ru.locale, Locale::Ru);
        assert!(ru.subject.starts_with("Подтвердите"), "{}", ru.subject);
        assert!(ru.text.contains("в течение 24 ч"));
        assert!(sent.iter().all(|m| m.task_id == 42 && !m.subject.contains('\n')));
    }

    #[tokio::test]
    async fn a_security_notice_says_what_changed_in_the_owners_language() {
        let outbox = Arc::new(Outbox::default());
        let mailer = Mailer::new(settings(), outbox.clone(), None).unwrap();
        let changes = ["totp.enable", "totp.disable", "recovery_codes.new", "recovery_code.used", "mfa.reset"];
        for locale in Locale::ALL {
            for change in changes {
                let payload = MailPayload { change: Some(change.into()), ..MailPayload::default() };
                mailer.deliver(&task(TaskKind::EmailSecurityChanged, Some(payload)), &user(locale)).await.unwrap();
            }
        }
        let sent = outbox.0.lock().unwrap();
        let en: Vec<&str> = sent[..5].iter().map(|m| m.text.as_str()).collect();
        assert!(en[0].contains("turned on") && en[1].contains("turned off"), "{en:?}");
        assert!(en[2].contains("new recovery codes") && en[3].contains("recovery code was just used"), "{en:?}");
        assert_eq!(sent[3].subject, "A recovery code was used to sign in to Tunes & Co");
        assert_eq!(sent[0].subject, "The sign-in methods of your Tunes & Co account changed");
        assert!(sent[4].text.contains("administrator just removed"), "{}", sent[4].text);
        assert!(sent[5].text.contains("включена") && sent[6].text.contains("выключена"), "{}", sent[5].text);
        assert!(sent.iter().all(|m| m.text.contains("If this was not you") || m.text.contains("Если это были не вы")));
        assert!(sent.iter().all(|m| m.html.contains("<p>") && !m.subject.contains('\n')));
    }

    #[tokio::test]
    async fn an_apps_own_pages_get_the_links_and_need_the_token_placeholder() {
        let outbox = Arc::new(Outbox::default());
        let own = MailSettings { reset_url: Some("myapp://reset/{token}".into()), ..settings() };
        let mailer = Mailer::new(own, outbox.clone(), None).unwrap();
        mailer.deliver(&task(TaskKind::EmailPasswordReset, with_token("abc")), &user(Locale::En)).await.unwrap();
        assert!(outbox.0.lock().unwrap()[0].text.contains("myapp://reset/abc"));
        let broken = MailSettings { verify_url: Some("https://app.example/verify".into()), ..settings() };
        let err = Mailer::new(broken, outbox, None).unwrap_err().to_string();
        assert!(err.contains("USER_MAIL_VERIFY_URL") && err.contains("{token}"), "{err}");
    }

    #[tokio::test]
    async fn a_templates_directory_overrides_file_by_file_and_a_broken_one_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("verify.en.subject"), "Welcome to {{ product }}, {{ username }}").unwrap();
        let outbox = Arc::new(Outbox::default());
        let mailer = Mailer::new(settings(), outbox.clone(), Some(dir.path())).unwrap();
        mailer.deliver(&task(TaskKind::EmailVerify, with_token("t")), &user(Locale::En)).await.unwrap();
        let sent = outbox.0.lock().unwrap()[0].clone();
        assert_eq!(sent.subject, "Welcome to Tunes & Co, alice");
        assert!(sent.text.contains("/account/verify?token=t"), "the other parts stay built in");

        std::fs::write(dir.path().join("password_reset.ru.html"), "{{ link ").unwrap();
        let err = Mailer::new(settings(), outbox, Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("password_reset.ru.html"), "{err}");
    }

    #[tokio::test]
    async fn a_link_mail_whose_token_is_gone_is_dead_not_sent_without_a_link() {
        let outbox = Arc::new(Outbox::default());
        let mailer = Mailer::new(settings(), outbox.clone(), None).unwrap();
        let result = mailer.deliver(&task(TaskKind::EmailVerify, None), &user(Locale::En)).await;
        assert!(matches!(result, Err(DeliveryError::Permanent(_))), "{result:?}");
        let not_mail = mailer.deliver(&task(TaskKind::FavoriteAdded, None), &user(Locale::En)).await;
        assert!(matches!(not_mail, Err(DeliveryError::Permanent(_))));
        assert!(outbox.0.lock().unwrap().is_empty());
    }

    #[cfg(feature = "smtp")]
    #[tokio::test]
    async fn smtp_urls_say_how_to_encrypt_and_never_show_their_credentials() {
        let timeout = Duration::from_secs(5);
        for url in [
            "smtp://user:secret@mail.example:587",
            "smtps://user:secret@mail.example:465",
            "smtp://127.0.0.1:1025?tls=none",
        ] {
            let transport = SmtpTransport::new(url, "Music <no-reply@music.example>", timeout).unwrap();
            assert!(!format!("{transport:?}").contains("secret"), "{transport:?}");
        }
        let bad = |url: &str, from: &str| SmtpTransport::new(url, from, timeout).unwrap_err();
        assert!(bad("http://mail.example", "a@b.example").contains("smtp://"));
        assert!(bad("smtp://mail.example?tls=maybe", "a@b.example").contains("tls=maybe"));
        assert!(bad("smtp://mail.example", "not an address").contains("USER_MAIL_FROM"));
    }

    #[test]
    fn link_lifetimes_read_naturally() {
        assert_eq!(valid_for(Duration::from_secs(3600), Locale::En), "1 hour");
        assert_eq!(valid_for(Duration::from_secs(7200), Locale::En), "2 hours");
        assert_eq!(valid_for(Duration::from_secs(90), Locale::En), "2 minutes");
        assert_eq!(valid_for(Duration::from_secs(30), Locale::En), "1 minute");
        assert_eq!(valid_for(Duration::from_secs(1800), Locale::Ru), "в течение 30 мин");
    }
}
