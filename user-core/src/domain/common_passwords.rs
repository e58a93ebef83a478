//! The bundled list of common passwords (`data/common-passwords.txt`: the
//! 100,000 most common of 8–128 characters), which no new password may be.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The list as shipped, one password per line, most common first.
const LIST: &str = include_str!("../../data/common-passwords.txt");

/// The list as a set, built on first use (about 100,000 borrowed slices).
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| LIST.lines().collect());

/// Whether `password`, as typed or lower-cased, is on the list: `Password1`
/// is as guessable as `password1`.
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password) || COMMON.contains(password.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_holds_at_least_100000_passwords_a_new_password_may_have() {
        assert!(COMMON.len() >= 100_000, "{}", COMMON.len());
        assert!(LIST.lines().all(|p| (8..=128).contains(&p.chars().count())), "only lengths a password may have");
        for common in ["password", "12345678", "iloveyou", "Password", "QWERTYUIOP", "trustno1"] {
            assert!(is_common(common), "{common}");
        }
        for rare in ["correct horse battery staple", "kJ8#qv!2Lw", "correct horse"] {
            assert!(!is_common(rare), "{rare}");
        }
    }
}
