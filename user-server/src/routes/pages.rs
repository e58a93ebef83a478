//! The built-in account pages that links in mails open: `/account/verify`
//! and `/account/reset`. Server-rendered in the reader's language, with no
//! external assets: their one script and one style sheet are served here,
//! and their CSP allows nothing else. A GET only shows the form; the token
//! is used when the reader submits it (mail scanners prefetch links).

use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, context};
use user_core::domain::Locale;
use warp::http::{HeaderValue, header};
use warp::reply::{Reply as _, Response};

use super::Call;
use super::account::preferred_locale;
use super::guard::Open;
use crate::error::ApiError;

/// What the pages may load and where they may send: their own script and
/// style, and the API on this origin.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                        form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Longer than any token we make (43); a longer one is refused, not shown.
const MAX_TOKEN_CHARS: usize = 128;

/// The words of one page in one language.
struct Words {
    title: &'static str,
    intro: &'static str,
    button: &'static str,
    done: &'static str,
    failed: &'static str,
}

/// Words every page shares, in one language.
struct Common {
    token_label: &'static str,
    password_label: &'static str,
    repeat_label: &'static str,
    mismatch: &'static str,
    noscript: &'static str,
}

fn common(locale: Locale) -> Common {
    match locale {
        Locale::En => Common {
            token_label: "Code from the mail",
            password_label: "New password (8 characters or more)",
            repeat_label: "The new password again",
            mismatch: "The two passwords differ.",
            noscript: "This page needs JavaScript to send the form.",
        },
        Locale::Ru => Common {
            token_label: "Код из письма",
            password_label: "Новый пароль (не короче 8 символов)",
            repeat_label: "Новый пароль ещё раз",
            mismatch: "Пароли не совпадают.",
            noscript: "Чтобы отправить форму, включите JavaScript.",
        },
    }
}

fn verify_words(locale: Locale) -> Words {
    match locale {
        Locale::En => Words {
            title: "Confirm your address",
            intro: "Press the button to confirm that this address is yours.",
            button: "Confirm my address",
            done: "Your address is confirmed. You can close this page.",
            failed: "The link did not work: it may be used or expired. Ask for a new one in the app.",
        },
        Locale::Ru => Words {
            title: "Подтверждение адреса",
            intro: "Нажмите кнопку, чтобы подтвердить, что это ваш адрес.",
            button: "Подтвердить адрес",
            done: "Адрес подтверждён. Эту страницу можно закрыть.",
            failed: "Ссылка не сработала: возможно, она уже использована или устарела. Запросите новую в приложении.",
        },
    }
}

fn reset_words(locale: Locale) -> Words {
    match locale {
        Locale::En => Words {
            title: "Choose a new password",
            intro: "Every device signed in to the account will be signed out.",
            button: "Set the new password",
            done: "Your password is changed. Sign in with it on your devices.",
            failed: "The password was not changed",
        },
        Locale::Ru => Words {
            title: "Новый пароль",
            intro: "Все устройства, на которых выполнен вход, будут отключены.",
            button: "Сохранить пароль",
            done: "Пароль изменён. Войдите с ним на своих устройствах.",
            failed: "Пароль не изменён",
        },
    }
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_template("page.html", include_str!("../../pages/page.html")).expect("the built-in page parses");
        env
    })
}

fn page(call: &Call<Open>, words: fn(Locale) -> Words, endpoint: &str, password: bool) -> Result<Response, ApiError> {
    let locale = preferred_locale(&call.ctx.headers).unwrap_or_default();
    let (words, common) = (words(locale), common(locale));
    let token = call.query.single("token")?.unwrap_or_default();
    if token.chars().count() > MAX_TOKEN_CHARS {
        let invalid = user_core::domain::ValidationError::new("token", "must be at most 128 characters");
        return Err(ApiError::Core(invalid.into()));
    }
    let html = templates()
        .get_template("page.html")
        .and_then(|t| {
            t.render(context! {
                lang => locale.as_str(), title => words.title, intro => words.intro, button => words.button,
                done => words.done, failed => words.failed, endpoint => endpoint, token => token,
                password => password, token_label => common.token_label, password_label => common.password_label,
                repeat_label => common.repeat_label, mismatch => common.mismatch, noscript => common.noscript,
            })
        })
        .map_err(|e| ApiError::Core(user_core::Error::internal(e)))?;
    let mut response = with_type(html.into_response(), "text/html; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(locale.as_str()));
    Ok(response)
}

fn with_type(mut response: Response, content_type: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    response
}

/// The page a verification link opens: a button that verifies the address.
#[utoipa::path(get, path = "/account/verify", tag = "pages", params(
    ("token" = Option<String>, Query, description = "The token from the mail; the page asks for it when absent", max_length = 128),
), responses(
    (status = 200, description = "An HTML page in the reader's language (Accept-Language)", content_type = "text/html"),
    (status = 400, description = "The token given more than once or longer than 128 characters", body = user_core::api::MainResponse),
))]
pub(super) async fn verify_page(call: Call<Open>) -> Result<Response, ApiError> {
    page(&call, verify_words, "/user/email/verify", false)
}

/// The page a reset link opens: a form for the new password.
#[utoipa::path(get, path = "/account/reset", tag = "pages", params(
    ("token" = Option<String>, Query, description = "The token from the mail; the page asks for it when absent", max_length = 128),
), responses(
    (status = 200, description = "An HTML page in the reader's language (Accept-Language)", content_type = "text/html"),
    (status = 400, description = "The token given more than once or longer than 128 characters", body = user_core::api::MainResponse),
))]
pub(super) async fn reset_page(call: Call<Open>) -> Result<Response, ApiError> {
    page(&call, reset_words, "/user/password/reset", true)
}

/// The pages' script.
#[utoipa::path(get, path = "/account/assets/pages.js", tag = "pages", responses(
    (status = 200, description = "JavaScript", content_type = "text/javascript"),
))]
pub(super) async fn page_script(_: Call<Open>) -> Result<Response, ApiError> {
    Ok(with_type(include_str!("../../pages/pages.js").into_response(), "text/javascript; charset=utf-8"))
}

/// The pages' style sheet.
#[utoipa::path(get, path = "/account/assets/pages.css", tag = "pages", responses(
    (status = 200, description = "CSS", content_type = "text/css"),
))]
pub(super) async fn page_style(_: Call<Open>) -> Result<Response, ApiError> {
    Ok(with_type(include_str!("../../pages/pages.css").into_response(), "text/css; charset=utf-8"))
}
