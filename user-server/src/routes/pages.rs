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
use super::guard::{AnySession, MaybeSession, Open, Visitor};
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
        env.add_template("security.html", include_str!("../../pages/security.html")).expect("the security page parses");
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
                minutes => age, username => visitor.user().display_name(),
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

/// The words of the security page, as the template reads them (`w.title`, …).
fn security_words(locale: Locale) -> minijinja::Value {
    let words: &[(&str, &str)] = match locale {
        Locale::En => &[
            ("title", "Sign-in and security"),
            ("failed", "That did not work"),
            ("reauth", "sign in again first: this needs a recent sign-in"),
            ("sign_in_intro", "Sign in to see and change how you sign in."),
            ("login_label", "Username or email"),
            ("password_label", "Password"),
            ("sign_in", "Sign in"),
            ("passkey_sign_in", "Sign in with a passkey"),
            ("second_step_intro", "Your account has two-factor authentication: one more step."),
            ("code_label", "Code from your authenticator app, or a recovery code"),
            ("confirm", "Continue"),
            ("passkey_second_step", "Use a passkey"),
            ("signed_in_as", "Signed in as"),
            ("sign_out", "Sign out"),
            ("restricted", "This account must use a second factor: add a passkey or an authenticator app to continue."),
            ("passkeys", "Passkeys"),
            ("added", "added"),
            ("last_used", "last used"),
            ("rename", "Rename"),
            ("remove", "Remove"),
            ("no_passkeys", "No passkeys yet. A passkey signs you in with your fingerprint, face or screen lock."),
            ("passkey_name", "Name"),
            ("default_name", "Passkey"),
            ("add_passkey", "Add a passkey"),
            ("totp", "Authenticator app"),
            ("scan", "Scan this code with your authenticator app, or type the secret. Then enter the code it shows."),
            ("qr_label", "QR code of the authenticator app's secret"),
            ("secret", "Secret:"),
            ("first_code", "Code from the app"),
            ("turn_on", "Turn on"),
            ("codes_once", "Your recovery codes, each good once. Keep them somewhere safe: they are shown only now."),
            ("totp_on", "On."),
            ("codes_left", "recovery codes left."),
            ("new_codes", "New recovery codes"),
            ("turn_off", "Turn off"),
            ("totp_off", "Off."),
            ("set_up", "Set up an authenticator app"),
            ("identities", "Linked accounts"),
            ("no_identities", "None."),
            ("sessions", "Where you are signed in"),
            ("since", "since"),
            ("this_one", "this browser"),
            ("noscript", "This page needs JavaScript."),
        ],
        Locale::Ru => &[
            ("title", "Вход и безопасность"),
            ("failed", "Не получилось"),
            ("reauth", "сначала войдите заново: нужен недавний вход"),
            ("sign_in_intro", "Войдите, чтобы увидеть и изменить способы входа."),
            ("login_label", "Имя пользователя или email"),
            ("password_label", "Пароль"),
            ("sign_in", "Войти"),
            ("passkey_sign_in", "Войти с ключом доступа"),
            ("second_step_intro", "В аккаунте включена двухфакторная аутентификация: ещё один шаг."),
            ("code_label", "Код из приложения-аутентификатора или резервный код"),
            ("confirm", "Продолжить"),
            ("passkey_second_step", "Использовать ключ доступа"),
            ("signed_in_as", "Вы вошли как"),
            ("sign_out", "Выйти"),
            ("restricted", "Этому аккаунту нужен второй фактор: добавьте ключ доступа или приложение-аутентификатор."),
            ("passkeys", "Ключи доступа"),
            ("added", "добавлен"),
            ("last_used", "последний вход"),
            ("rename", "Переименовать"),
            ("remove", "Удалить"),
            (
                "no_passkeys",
                "Ключей доступа пока нет. Ключ доступа — это вход по отпечатку, лицу или блокировке экрана.",
            ),
            ("passkey_name", "Название"),
            ("default_name", "Ключ доступа"),
            ("add_passkey", "Добавить ключ доступа"),
            ("totp", "Приложение-аутентификатор"),
            ("scan", "Отсканируйте код приложением-аутентификатором или введите секрет, затем введите показанный код."),
            ("qr_label", "QR-код секрета для приложения-аутентификатора"),
            ("secret", "Секрет:"),
            ("first_code", "Код из приложения"),
            ("turn_on", "Включить"),
            ("codes_once", "Резервные коды, каждый действует один раз. Сохраните их: они показываются только сейчас."),
            ("totp_on", "Включено."),
            ("codes_left", "резервных кодов осталось."),
            ("new_codes", "Новые резервные коды"),
            ("turn_off", "Выключить"),
            ("totp_off", "Выключено."),
            ("set_up", "Подключить приложение-аутентификатор"),
            ("identities", "Связанные аккаунты"),
            ("no_identities", "Нет."),
            ("sessions", "Где выполнен вход"),
            ("since", "с"),
            ("this_one", "этот браузер"),
            ("noscript", "Для этой страницы нужен JavaScript."),
        ],
    };
    minijinja::Value::from_pairs(words.iter().copied())
}

/// A moment as the page shows it: date and minute, UTC.
fn shown_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Renders the security page for `visitor` (signed out: the sign-in forms),
/// with a TOTP enrollment to scan when one was just started.
async fn security_page_for(
    state: &crate::AppState,
    headers: &warp::http::HeaderMap,
    visitor: Option<&super::guard::Authenticated>,
    restricted: bool,
    enrollment: Option<user_core::service::TotpEnrollment>,
) -> Result<Response, ApiError> {
    let locale = preferred_locale(headers).unwrap_or_default();
    let words = security_words(locale);
    let Some(visitor) = visitor else {
        return render("security.html", locale, context! { lang => locale.as_str(), w => words, signed_in => false });
    };
    let service = &state.service;
    let id = visitor.id();
    let passkeys: Vec<minijinja::Value> = service
        .passkeys(id)
        .await?
        .into_iter()
        .map(|p| {
            context! {
                id => p.id.to_string(), name => p.name, created_at => shown_time(p.created_at),
                last_used_at => p.last_used_at.map(shown_time),
            }
        })
        .collect();
    let factors = service.second_factors(id).await?;
    let (identities, _) = service.identities(id).await?;
    let identities: Vec<minijinja::Value> = identities
        .into_iter()
        .map(|i| {
            context! {
                provider => i.provider, email => i.email.map(|e| e.to_string()), linked_at => shown_time(i.linked_at),
            }
        })
        .collect();
    let current = visitor.claims().sid;
    let sessions: Vec<minijinja::Value> = service
        .sessions(id)
        .await?
        .into_iter()
        .map(|s| {
            let device = s.device_name.clone().or(s.user_agent.clone()).unwrap_or_else(|| "?".into());
            context! {
                device => device, ip => s.ip.unwrap_or_default(), created_at => shown_time(s.created_at),
                current => s.id == current,
            }
        })
        .collect();
    let enrollment = enrollment.map(|e| {
        let svg = qrcode::QrCode::new(e.otpauth_uri.as_bytes())
            .map(|code| code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build())
            .unwrap_or_default();
        // The renderer's XML declaration has no place inside HTML.
        let svg = svg.find("<svg").map_or(String::new(), |at| svg[at..].to_owned());
        context! { qr_svg => svg, secret => e.secret }
    });
    render(
        "security.html",
        locale,
        context! {
            lang => locale.as_str(), w => words, signed_in => true, username => visitor.user().display_name(),
            restricted => restricted, passkeys => passkeys, totp => factors.totp,
            codes_left => factors.recovery_codes_left, sessions => sessions, enrollment => enrollment,
            identities => identities,
        },
    )
}

/// The account's sign-in methods, for the person: sign in (password,
/// second factor, passkey); add, rename and remove passkeys; turn TOTP on
/// (a QR code drawn here) and off; new recovery codes; linked accounts;
/// where they are signed in.
#[utoipa::path(get, path = "/account/security", tag = "pages", responses(
    (status = 200, description = "An HTML page in the reader's language (Accept-Language): the sign-in forms, or the account's sign-in methods", content_type = "text/html"),
))]
pub(super) async fn security_page(call: Call<MaybeSession>) -> Result<Response, ApiError> {
    // A guest has no sign-in methods to manage: it sees the sign-in forms.
    let session = call.caller.0.as_ref().filter(|s| !s.user().is_guest());
    let restricted = session.is_some_and(AnySession::restricted);
    security_page_for(&call.state, &call.ctx.headers, session.map(|s| &**s), restricted, None).await
}

/// Starts turning TOTP on from the security page: the same page with the
/// new secret as a QR code to scan (a form post of the page, so the
/// secret never sits in a URL).
#[utoipa::path(post, path = "/account/security/totp", tag = "pages", responses(
    (status = 200, description = "The security page with the new secret to scan or type", content_type = "text/html"),
    (status = 401, description = "Unauthorized; or `code: reauth_required`: sign in again", body = user_core::api::MainResponse),
    (status = 409, description = "`code: factor_active`: TOTP is on already", body = user_core::api::MainResponse),
))]
pub(super) async fn security_totp(call: Call<AnySession>) -> Result<Response, ApiError> {
    let claims = call.caller.claims();
    let client = call.ctx.client();
    let enrollment = call.state.service.start_totp_enrollment(claims.sub, Some(claims.sid), None, &client).await?;
    let restricted = call.caller.restricted();
    security_page_for(&call.state, &call.ctx.headers, Some(&*call.caller), restricted, Some(enrollment)).await
}

/// The security page's script.
#[utoipa::path(get, path = "/account/assets/security.js", tag = "pages", responses(
    (status = 200, description = "JavaScript", content_type = "text/javascript"),
))]
pub(super) async fn security_script(_: Call<Open>) -> Result<Response, ApiError> {
    Ok(with_type(include_str!("../../pages/security.js").into_response(), "text/javascript; charset=utf-8"))
}
