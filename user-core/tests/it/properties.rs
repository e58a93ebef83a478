//! Property tests: every parser at the edge takes any input without
//! panicking, and valid values round-trip.

use chrono::DateTime;
use proptest::prelude::*;
use user_core::auth::{KeySet, TokenConfig, Tokens};
use user_core::domain::{Amr, Email, Login, Password, Role, SessionId, TrackBatch, TrackId, UserId, Username};
use user_core::page::PageRequest;

fn tokens() -> Tokens {
    Tokens::new(KeySet::hs256(&[[5u8; 32]]).unwrap(), TokenConfig::default())
}

proptest! {
    #[test]
    fn parsers_never_panic_on_arbitrary_text(s in any::<String>()) {
        let _ = Username::parse(&s);
        let _ = Email::parse(&s);
        let _ = Password::parse(&s);
        let _ = Password::presented("password", &s);
        let _ = TrackId::parse(&s);
        let _ = TrackBatch::parse(&s);
        let _ = Login::parse(&s);
        let _ = s.parse::<Role>();
        let _ = s.parse::<UserId>();
        let _ = PageRequest::parse(Some(&s), Some(&s)).map(|p| p.limit());
    }

    #[test]
    fn valid_usernames_round_trip(s in "[A-Za-z0-9_.-]{3,32}") {
        let name = Username::parse(&s).unwrap();
        prop_assert_eq!(name.as_str(), s.as_str());
        prop_assert_eq!(name.folded(), s.to_ascii_lowercase());
    }

    #[test]
    fn valid_emails_round_trip_lower_cased(local in "[A-Za-z0-9]{1,20}", domain in "[A-Za-z]{1,10}", tld in "[a-z]{2,5}") {
        let raw = format!("{local}@{domain}.{tld}");
        let email = Email::parse(&raw).unwrap();
        prop_assert_eq!(email.as_str(), raw.to_lowercase());
        prop_assert_eq!(Email::parse(email.as_str()).unwrap(), email);
    }

    #[test]
    fn passwords_of_8_to_128_characters_are_accepted(s in "\\PC{8,128}") {
        let password = Password::parse(&s).unwrap();
        prop_assert_eq!(password.expose(), s.as_str());
        let shown = format!("{:?}", password);
        prop_assert_eq!(shown, "Password(***)");
    }

    #[test]
    fn valid_track_batches_round_trip(ids in proptest::collection::vec("[A-Za-z0-9_:.-]{1,64}", 1..=50)) {
        let joined = ids.join(",");
        let parsed = TrackBatch::parse(&joined).unwrap();
        let mut unique = ids.clone();
        let mut seen = std::collections::HashSet::new();
        unique.retain(|id| seen.insert(id.clone()));
        prop_assert_eq!(parsed.iter().map(TrackId::as_str).collect::<Vec<_>>(), unique);
    }

    #[test]
    fn token_verification_never_panics_and_refuses_garbage(s in any::<String>()) {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        prop_assert!(tokens().verify_access(&s, now).is_err());
        prop_assert!(tokens().verify_refresh(&s, now).is_err());
    }

    #[test]
    fn tampering_with_any_byte_of_a_token_is_detected(index in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (jwt, _) = tokens().issue_access(UserId::new(), SessionId::new(), Role::User, Amr::PASSWORD, now).unwrap();
        let mut bytes = jwt.clone().into_bytes();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        // A change in the signature's padding bits can decode to the same signature;
        // anything else must fail.
        if let Ok(claims) = tokens().verify_access(&tampered, now) {
            prop_assert_eq!(claims, tokens().verify_access(&jwt, now).unwrap());
        }
    }

    #[test]
    fn issued_tokens_round_trip_for_any_ids_and_role(admin in any::<bool>(), secs in 1_000_000_000i64..4_000_000_000) {
        let now = DateTime::from_timestamp(secs, 0).unwrap();
        let (user, sid) = (UserId::new(), SessionId::new());
        let role = if admin { Role::Admin } else { Role::User };
        let (jwt, _) = tokens().issue_access(user, sid, role, Amr::PASSWORD, now).unwrap();
        let claims = tokens().verify_access(&jwt, now).unwrap();
        prop_assert_eq!((claims.sub, claims.sid, claims.role), (user, sid, role));
    }
}
