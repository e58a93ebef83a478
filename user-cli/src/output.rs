//! Aligned tables for people, JSON for scripts; every printer both modes share.

use serde_json::{Value, json};
use user_client::api::{AdminAccountResponse, AuditEventInfo, IdentityInfo, SessionInfo, TaskInfo, UserSummary};

/// How to print results.
pub struct Output {
    /// JSON instead of tables.
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or `rows` under `headers` as an aligned table.
    pub fn table(&self, value: &Value, headers: &[&str], rows: Vec<Vec<String>>) {
        if self.json {
            println!("{value}");
            return;
        }
        let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}", w = *w)).collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(headers.to_vec());
        for row in &rows {
            line(row.iter().map(String::as_str).collect());
        }
    }

    /// Prints a one-line outcome, or `value` as JSON.
    pub fn done(&self, value: &Value, message: &str) {
        if self.json {
            println!("{value}");
        } else {
            println!("{message}");
        }
    }
}

/// `text` as a QR code of Unicode half blocks, light on dark (as most
/// terminals are), with its quiet zone; `None` if it does not fit one.
pub fn qr_code(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(code.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).quiet_zone(true).build())
}

/// Prints a TOTP enrollment for a person to scan or type, or as JSON
/// (`{"secret", "otpauth_uri"}` and `extra`).
pub fn print_enrollment(out: &Output, secret: &str, uri: &str, extra: Value) {
    if out.json {
        let mut value = json!({"secret": secret, "otpauth_uri": uri});
        if let (Some(map), Some(more)) = (value.as_object_mut(), extra.as_object()) {
            map.extend(more.clone());
        }
        println!("{value}");
        return;
    }
    if let Some(qr) = qr_code(uri) {
        println!("{qr}");
    }
    println!("Scan the code with an authenticator app, or type the secret:");
    println!("  secret: {secret}");
    println!("  URI:    {uri}");
}

/// Prints accounts as a table or JSON (`{"users", "next_cursor"}`).
pub fn print_users(out: &Output, users: &[UserSummary], next: Option<&str>) {
    let rows = users
        .iter()
        .map(|u| {
            vec![
                u.id.to_string(),
                u.username.clone().unwrap_or_default(),
                u.email.clone().unwrap_or_default(),
                u.role.to_string(),
                u.created_at.to_rfc3339(),
            ]
        })
        .collect();
    out.table(&json!({"users": users, "next_cursor": next}), &["id", "username", "email", "role", "created_at"], rows);
    print_next(out, next);
}

/// Tells a person how to get the next page.
pub fn print_next(out: &Output, next: Option<&str>) {
    if let (false, Some(cursor)) = (out.json, next) {
        eprintln!("more: --cursor {cursor}  (or --all)");
    }
}

/// An account as JSON, without the HTTP envelope.
pub fn account_json(account: &AdminAccountResponse) -> Value {
    let mut value = json!(account);
    if let Some(map) = value.as_object_mut() {
        map.remove("response");
    }
    value
}

/// Prints one account as a table or JSON.
pub fn print_account(out: &Output, a: &AdminAccountResponse) {
    let row = vec![
        a.id.to_string(),
        a.username.clone().unwrap_or_default(),
        a.email.clone().unwrap_or_default(),
        a.role.to_string(),
        a.email_verified.to_string(),
        a.disabled.to_string(),
        a.created_at.to_rfc3339(),
        a.last_login_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
    ];
    let headers = ["id", "username", "email", "role", "verified", "disabled", "created_at", "last_login_at"];
    out.table(&account_json(a), &headers, vec![row]);
}

/// Prints outbox tasks as a table or JSON (`{"tasks", "next_cursor"}`); a
/// pending task whose lease has not run out shows as `in flight`.
pub fn print_tasks(out: &Output, tasks: &[TaskInfo], next: Option<&str>) {
    let now = chrono::Utc::now();
    let rows = tasks
        .iter()
        .map(|t| {
            let in_flight = t.leased_until.is_some_and(|until| until > now);
            vec![
                t.id.to_string(),
                t.kind.clone(),
                t.user_id.to_string(),
                t.track_id.clone().unwrap_or_default(),
                if in_flight { "in flight".to_owned() } else { t.status.as_str().to_owned() },
                t.attempts.to_string(),
                t.next_attempt_at.to_rfc3339(),
                t.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let headers = ["id", "kind", "user_id", "track_id", "status", "attempts", "next_attempt_at", "last_error"];
    out.table(&json!({"tasks": tasks, "next_cursor": next}), &headers, rows);
    print_next(out, next);
}

/// Prints audit events as a table or JSON (`{"events", "next_cursor"}`).
pub fn print_audit(out: &Output, events: &[AuditEventInfo], next: Option<&str>) {
    let id = |u: Option<uuid::Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    let rows = events
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                e.at.to_rfc3339(),
                e.event.clone(),
                id(e.user_id),
                id(e.actor_id),
                e.ip.clone().unwrap_or_default(),
                e.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let headers = ["id", "time", "event", "user_id", "actor_id", "ip", "detail"];
    out.table(&json!({"events": events, "next_cursor": next}), &headers, rows);
    print_next(out, next);
}

/// Prints sessions as a table or JSON (`{"sessions"}`); `*` marks this one.
/// Prints identities at other providers as a table or JSON
/// (`{"identities", "has_password"}`, the latter when known).
pub fn print_identities(out: &Output, identities: &[IdentityInfo], has_password: Option<bool>) {
    let rows = identities
        .iter()
        .map(|i| {
            vec![i.provider.clone(), i.subject.clone(), i.email.clone().unwrap_or_default(), i.linked_at.to_rfc3339()]
        })
        .collect();
    let mut value = json!({ "identities": identities });
    if let Some(has_password) = has_password {
        value["has_password"] = json!(has_password);
    }
    out.table(&value, &["provider", "subject", "email", "linked_at"], rows);
    if let (false, Some(has_password)) = (out.json, has_password) {
        println!("password: {}", if has_password { "set" } else { "none" });
    }
}

/// Prints sessions as a table or JSON.
pub fn print_sessions(out: &Output, sessions: &[SessionInfo]) {
    let rows = sessions
        .iter()
        .map(|s| {
            vec![
                if s.current { "*".to_owned() } else { String::new() },
                s.id.to_string(),
                s.device_name.clone().unwrap_or_default(),
                s.last_used_at.to_rfc3339(),
                s.ip.clone().unwrap_or_default(),
                s.user_agent.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.table(&json!({ "sessions": sessions }), &["", "id", "device", "last_used_at", "ip", "user_agent"], rows);
}
