//! The built-in account pages that links in mails open: `/account/verify`,
//! `/account/reset` and `/account/revert`. Server-rendered in the reader's language, with no
//! external assets: their one script and one style sheet are served here,
//! and their CSP allows nothing else. A GET only shows the form; the token
//! is used when the reader submits it (mail scanners prefetch links).

use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, context};
use user_core::domain::{Locale, UserCode};
use warp::http::{HeaderValue, header};
use warp::reply::{Reply as _, Response};

use super::Call;
use super::account::preferred_locale;
use super::guard::{Open, Visitor};
use crate::error::ApiError;
use crate::http::Query;

/// What the pages may load and where they may send: their own script and
/// style, and the API on this origin.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                        form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Longer than any token we make (43); a longer one is refused, not shown.
const MAX_TOKEN_CHARS: usize = 128;

/// Room for a user code typed with spaces and dashes; a longer one is refused.
const MAX_USER_CODE_CHARS: usize = 32;

/// A page's query parameter, given at most once and at most `max` characters long.
fn bounded_param<'q>(query: &'q Query, name: &'static str, max: usize) -> Result<Option<&'q str>, ApiError> {
    let value = query.single(name)?;
    if value.is_some_and(|v| v.chars().count() > max) {
        let invalid = user_core::domain::ValidationError::new(name, format!("must be at most {max} characters"));
        return Err(ApiError::Core(invalid.into()));
    }
    Ok(value)
}

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

fn revert_words(locale: Locale) -> Words {
    match locale {
        Locale::En => Words {
            title: "Undo the address change",
            intro: "This puts your old address back, signs everyone out of the account (whoever changed it too), \
                    and sends your old address a link to choose a new password.",
            button: "Undo the change",
            done: "Done: the address is back and everyone is signed out. Check this mailbox for a link to set a new password.",
            failed: "The link did not work: it may be used or expired (it works for 7 days).",
        },
        Locale::Ru => Words {
            title: "Отмена смены адреса",
            intro: "Старый адрес вернётся, все сеансы учётной записи (и того, кто её изменил) завершатся, \
                    а на старый адрес придёт ссылка для нового пароля.",
            button: "Отменить изменение",
            done: "Готово: адрес возвращён, все сеансы завершены. Ссылка для нового пароля — в этом почтовом ящике.",
            failed: "Ссылка не сработала: возможно, она уже использована или устарела (она действует 7 дней).",
        },
    }
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_template("layout.html", include_str!("../../pages/layout.html")).expect("the layout parses");
        env.add_template("page.html", include_str!("../../pages/page.html")).expect("the built-in page parses");
        env.add_template("device.html", include_str!("../../pages/device.html")).expect("the device page parses");
        env
    })
}

/// Renders a built-in template as the page's answer, in `locale`.
fn render(template: &str, locale: Locale, ctx: minijinja::Value) -> Result<Response, ApiError> {
    let html = templates()
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|e| ApiError::Core(user_core::Error::internal(e)))?;
    let mut response = with_type(html.into_response(), "text/html; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(locale.as_str()));
    Ok(response)
}

fn page(call: &Call<Open>, words: fn(Locale) -> Words, endpoint: &str, password: bool) -> Result<Response, ApiError> {
    let locale = preferred_locale(&call.ctx.headers).unwrap_or_default();
    let (words, common) = (words(locale), common(locale));
    let token = bounded_param(&call.query, "token", MAX_TOKEN_CHARS)?.unwrap_or_default();
    render(
        "page.html",
        locale,
        context! {
            lang => locale.as_str(), title => words.title, intro => words.intro, button => words.button,
            done => words.done, failed => words.failed, endpoint => endpoint, token => token,
            password => password, token_label => common.token_label, password_label => common.password_label,
            repeat_label => common.repeat_label, mismatch => common.mismatch, noscript => common.noscript,
        },
    )
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

/// The page an address change's undo link opens (in the notice to the old
/// address): a button that undoes the change.
#[utoipa::path(get, path = "/account/revert", tag = "pages", params(
    ("token" = Option<String>, Query, description = "The token from the mail; the page asks for it when absent", max_length = 128),
), responses(
    (status = 200, description = "An HTML page in the reader's language (Accept-Language)", content_type = "text/html"),
    (status = 400, description = "The token given more than once or longer than 128 characters", body = user_core::api::MainResponse),
))]
pub(super) async fn revert_page(call: Call<Open>) -> Result<Response, ApiError> {
    page(&call, revert_words, "/user/email/revert", false)
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

/// The words of the device page in one language.
struct DeviceWords {
    title: &'static str,
    sign_in_intro: &'static str,
    login_label: &'static str,
    password_label: &'static str,
    sign_in: &'static str,
    sign_in_failed: &'static str,
    code_intro: &'static str,
    code_label: &'static str,
    next: &'static str,
    wrong_code: &'static str,
    too_many: &'static str,
    confirm_intro: &'static str,
    code_shown: &'static str,
    check_code: &'static str,
    calls_itself: &'static str,
    asked_from: &'static str,
    minutes_ago: &'static str,
    approve: &'static str,
    decline: &'static str,
    approved: &'static str,
    declined: &'static str,
    decide_failed: &'static str,
    noscript: &'static str,
}

impl DeviceWords {
    /// The words as the template reads them (`w.title`, …).
    fn to_value(&self) -> minijinja::Value {
        minijinja::Value::from_pairs([
            ("title", self.title),
            ("sign_in_intro", self.sign_in_intro),
            ("login_label", self.login_label),
            ("password_label", self.password_label),
            ("sign_in", self.sign_in),
            ("sign_in_failed", self.sign_in_failed),
            ("code_intro", self.code_intro),
            ("code_label", self.code_label),
            ("next", self.next),
            ("wrong_code", self.wrong_code),
            ("too_many", self.too_many),
            ("confirm_intro", self.confirm_intro),
            ("code_shown", self.code_shown),
            ("check_code", self.check_code),
            ("calls_itself", self.calls_itself),
            ("asked_from", self.asked_from),
            ("minutes_ago", self.minutes_ago),
            ("approve", self.approve),
            ("decline", self.decline),
            ("approved", self.approved),
            ("declined", self.declined),
            ("decide_failed", self.decide_failed),
            ("noscript", self.noscript),
        ])
    }
}

fn device_words(locale: Locale) -> DeviceWords {
    match locale {
        Locale::En => DeviceWords {
            title: "Sign in a device",
            sign_in_intro: "Sign in first; then you can let the device in.",
            login_label: "Username or email",
            password_label: "Password",
            sign_in: "Sign in",
            sign_in_failed: "Could not sign in",
            code_intro: "Type the code your TV, car or speaker shows.",
            code_label: "Code",
            next: "Continue",
            wrong_code: "That code is not valid, or it expired. Check the code on the device's screen.",
            too_many: "Too many wrong codes. Wait a few minutes and try again.",
            confirm_intro: "This device asks to sign in to the account",
            code_shown: "Code:",
            check_code: "Approve only if the device you are holding or looking at shows this code.",
            calls_itself: "The device calls itself",
            asked_from: "Asked from",
            minutes_ago: "min ago",
            approve: "Approve",
            decline: "Decline",
            approved: "Done: the device is signed in. You can close this page.",
            declined: "Declined: the device was not signed in.",
            decide_failed: "That did not work",
            noscript: "This page needs JavaScript to sign in and to approve.",
        },
        Locale::Ru => DeviceWords {
            title: "Вход на устройстве",
            sign_in_intro: "Сначала войдите, затем подтвердите вход устройства.",
            login_label: "Имя пользователя или email",
            password_label: "Пароль",
            sign_in: "Войти",
            sign_in_failed: "Не удалось войти",
            code_intro: "Введите код, который показывает телевизор, автомобиль или колонка.",
            code_label: "Код",
            next: "Продолжить",
            wrong_code: "Код неверен или устарел. Проверьте код на экране устройства.",
            too_many: "Слишком много неверных кодов. Подождите несколько минут и попробуйте снова.",
            confirm_intro: "Это устройство просит войти в аккаунт",
            code_shown: "Код:",
            check_code: "Подтверждайте, только если этот код показывает устройство перед вами.",
            calls_itself: "Устройство называет себя",
            asked_from: "Запрос с адреса",
            minutes_ago: "мин назад",
            approve: "Разрешить",
            decline: "Отклонить",
            approved: "Готово: вход на устройстве выполнен. Эту страницу можно закрыть.",
            declined: "Отклонено: вход на устройстве не выполнен.",
            decide_failed: "Не получилось",
            noscript: "Чтобы войти и подтвердить вход, включите JavaScript.",
        },
    }
}

/// Where people let a device in: sign in (when not signed in), type the
/// device's code, see which device asks, approve or decline it.
#[utoipa::path(get, path = "/device", tag = "pages", params(
    ("user_code" = Option<String>, Query, description = "The device's code, to fill in (from `verification_uri_complete`)", max_length = 32),
), responses(
    (status = 200, description = "An HTML page in the reader's language (Accept-Language): a sign-in form, the code form, or the device to approve", content_type = "text/html"),
    (status = 400, description = "`user_code` given more than once or longer than 32 characters", body = user_core::api::MainResponse),
))]
pub(super) async fn device_page(call: Call<Visitor>) -> Result<Response, ApiError> {
    let locale = preferred_locale(&call.ctx.headers).unwrap_or_default();
    let words = device_words(locale);
    let given = bounded_param(&call.query, "user_code", MAX_USER_CODE_CHARS)?.map(str::to_owned);
    let code = given.as_deref().and_then(|c| UserCode::parse(c).ok());
    let shown = code.as_ref().map_or_else(|| given.clone().unwrap_or_default(), ToString::to_string);
    let page = |view: &str, problem: Option<&str>, asking: Option<minijinja::Value>| {
        render(
            "device.html",
            locale,
            context! {
                lang => locale.as_str(), w => words.to_value(), view => view,
                code => shown, problem => problem, asking => asking,
            },
        )
    };
    let Some(visitor) = &call.caller.0 else { return page("sign-in", None, None) };
    let Some(raw) = given.as_deref() else { return page("enter-code", None, None) };
    // A code that cannot be one names no device; it is not counted as a guess.
    let Some(code) = code else { return page("enter-code", Some(words.wrong_code), None) };
    match call.state.service.device_login_request(visitor.id(), &code, &call.ctx.client()).await {
        Ok(grant) => {
            // The registered client first: the device's own name is its
            // claim, shown as one, never in its place.
            let age = (chrono::Utc::now() - grant.created_at).num_minutes().max(0);
            let asking = context! {
                client => grant.client_id, device_name => grant.device_name, ip => grant.request_ip,
                minutes => age, username => visitor.user().username.as_str(),
            };
            page("confirm", None, Some(asking))
        }
        Err(user_core::Error::InvalidUserCode) => page("enter-code", Some(words.wrong_code), None),
        Err(user_core::Error::Throttled { .. }) => {
            tracing::debug!(code = raw, "device page: too many wrong codes");
            page("enter-code", Some(words.too_many), None)
        }
        Err(e) => Err(e.into()),
    }
}
