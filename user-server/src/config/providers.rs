//! Providers to sign in with, from `USER_OIDC_PROVIDERS` and each one's
//! `USER_OIDC_<NAME>_*` variables (names chosen by the operator, so not
//! flags clap could know).

/// One provider's settings from `USER_OIDC_<NAME>_*` (read through `var`).
///
/// # Errors
/// A message naming the variable that is missing or wrong.
pub(crate) fn provider_from_env(
    name: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Result<user_core::auth::oidc::ProviderConfig, String> {
    use user_core::auth::oidc::{ClientAuth, ProviderConfig};
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(format!("USER_OIDC_PROVIDERS: {name:?} must be lower-case letters, digits and -"));
    }
    let prefix = format!("USER_OIDC_{}_", name.to_ascii_uppercase().replace('-', "_"));
    let get = |key: &str| var(&format!("{prefix}{key}")).filter(|v| !v.trim().is_empty());
    let read_file = |key: &str| -> Result<Option<String>, String> {
        get(key)
            .map(|path| std::fs::read_to_string(&path).map_err(|e| format!("{prefix}{key} ({path}): {e}")))
            .transpose()
    };
    let mut config = ProviderConfig::preset(name);
    if let Some(issuer) = get("ISSUER") {
        config.issuer = issuer.trim_end_matches('/').to_owned();
    }
    if config.issuer.is_empty() {
        return Err(format!("{prefix}ISSUER is required for {name}"));
    }
    config.client_id = get("CLIENT_ID").ok_or_else(|| format!("{prefix}CLIENT_ID is required"))?;
    let secret = match (get("CLIENT_SECRET"), read_file("CLIENT_SECRET_FILE")?) {
        (Some(_), Some(_)) => {
            return Err(format!("give {prefix}CLIENT_SECRET or {prefix}CLIENT_SECRET_FILE, not both"));
        }
        (one, other) => one.or(other.map(|s| s.trim().to_owned())),
    };
    config.client_auth = match (get("TEAM_ID"), get("KEY_ID"), read_file("PRIVATE_KEY_FILE")?) {
        (Some(team_id), Some(key_id), Some(private_key_pem)) => {
            ClientAuth::AppleKey { team_id, key_id, private_key_pem }
        }
        (None, None, None) => secret.map_or(ClientAuth::None, ClientAuth::Secret),
        _ => return Err(format!("{prefix}TEAM_ID, {prefix}KEY_ID and {prefix}PRIVATE_KEY_FILE go together")),
    };
    if let Some(scopes) = get("SCOPES") {
        config.scopes = scopes.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    }
    config.allowed_redirects = get("ALLOWED_REDIRECTS")
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if config.allowed_redirects.is_empty() {
        return Err(format!("{prefix}ALLOWED_REDIRECTS: list where a sign-in may return (exact URLs)"));
    }
    if let Some(trust) = get("TRUST_EMAIL") {
        config.trust_email = trust.parse().map_err(|_| format!("{prefix}TRUST_EMAIL: true or false"))?;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use user_core::auth::oidc::{ClientAuth, ProviderKind};

    fn from(name: &str, vars: &[(&str, &str)]) -> Result<user_core::auth::oidc::ProviderConfig, String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        provider_from_env(name, |k| vars.get(k).cloned())
    }

    #[test]
    fn presets_fill_in_what_a_known_provider_needs() {
        let google = from(
            "google",
            &[
                ("USER_OIDC_GOOGLE_CLIENT_ID", "id"),
                ("USER_OIDC_GOOGLE_CLIENT_SECRET", "s"),
                ("USER_OIDC_GOOGLE_ALLOWED_REDIRECTS", "https://a.example/x, https://b.example/y"),
            ],
        )
        .unwrap();
        assert_eq!(google.issuer, "https://accounts.google.com");
        assert!(google.trust_email);
        assert!(matches!(google.client_auth, ClientAuth::Secret(ref s) if s == "s"));
        assert_eq!(google.allowed_redirects, ["https://a.example/x", "https://b.example/y"]);
        let github = from(
            "github",
            &[("USER_OIDC_GITHUB_CLIENT_ID", "id"), ("USER_OIDC_GITHUB_ALLOWED_REDIRECTS", "https://a.example/")],
        )
        .unwrap();
        assert_eq!((github.kind, github.issuer.as_str()), (ProviderKind::GitHub, "https://github.com"));
        let other = from(
            "my-idp",
            &[
                ("USER_OIDC_MY_IDP_ISSUER", "https://id.example/"),
                ("USER_OIDC_MY_IDP_CLIENT_ID", "id"),
                ("USER_OIDC_MY_IDP_ALLOWED_REDIRECTS", "https://a.example/"),
                ("USER_OIDC_MY_IDP_SCOPES", "openid email"),
            ],
        )
        .unwrap();
        assert_eq!(
            (other.issuer.as_str(), other.trust_email),
            ("https://id.example", false),
            "not trusted unless said"
        );
        assert_eq!(other.scopes, ["openid", "email"]);
    }

    #[test]
    fn each_missing_or_wrong_setting_is_named() {
        type Vars<'a> = &'a [(&'a str, &'a str)];
        let cases: [(&str, Vars, &str); 6] = [
            ("Bad Name", &[], "USER_OIDC_PROVIDERS"),
            ("example", &[("USER_OIDC_EXAMPLE_CLIENT_ID", "id")], "USER_OIDC_EXAMPLE_ISSUER"),
            ("google", &[], "USER_OIDC_GOOGLE_CLIENT_ID"),
            ("google", &[("USER_OIDC_GOOGLE_CLIENT_ID", "id")], "USER_OIDC_GOOGLE_ALLOWED_REDIRECTS"),
            (
                "apple",
                &[
                    ("USER_OIDC_APPLE_CLIENT_ID", "id"),
                    ("USER_OIDC_APPLE_TEAM_ID", "T"),
                    ("USER_OIDC_APPLE_ALLOWED_REDIRECTS", "https://a.example/"),
                ],
                "USER_OIDC_APPLE_KEY_ID",
            ),
            (
                "google",
                &[
                    ("USER_OIDC_GOOGLE_CLIENT_ID", "id"),
                    ("USER_OIDC_GOOGLE_ALLOWED_REDIRECTS", "https://a.example/"),
                    ("USER_OIDC_GOOGLE_TRUST_EMAIL", "yes"),
                ],
                "USER_OIDC_GOOGLE_TRUST_EMAIL",
            ),
        ];
        for (name, vars, named) in cases {
            let error = from(name, vars).unwrap_err();
            assert!(error.contains(named), "{name}: {error}");
        }
    }
}
