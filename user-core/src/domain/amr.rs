//! How a session signed in: the authentication methods of RFC 8176 (`amr`).

use std::fmt;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// One authentication method reference (RFC 8176 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A password (`pwd`).
    Pwd,
    /// Another provider vouched for the person (`fed`).
    Fed,
    /// Proof of possession of a key: a passkey (`pop`).
    Pop,
    /// The authenticator verified the person: PIN or biometrics (`user`).
    User,
    /// A one-time code: TOTP or a recovery code (`otp`).
    Otp,
    /// More than one factor (`mfa`).
    Mfa,
}

impl AuthMethod {
    /// Every method, in the order [`Amr`] lists them.
    pub const ALL: [AuthMethod; 6] =
        [AuthMethod::Pwd, AuthMethod::Fed, AuthMethod::Pop, AuthMethod::User, AuthMethod::Otp, AuthMethod::Mfa];

    /// The RFC 8176 name.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::Pwd => "pwd",
            AuthMethod::Fed => "fed",
            AuthMethod::Pop => "pop",
            AuthMethod::User => "user",
            AuthMethod::Otp => "otp",
            AuthMethod::Mfa => "mfa",
        }
    }

    fn bit(self) -> u8 {
        match self {
            AuthMethod::Pwd => 1,
            AuthMethod::Fed => 2,
            AuthMethod::Pop => 4,
            AuthMethod::User => 8,
            AuthMethod::Otp => 16,
            AuthMethod::Mfa => 32,
        }
    }
}

/// The methods a session proved, as a set. `mfa` is never added by hand:
/// it holds exactly when something the person has (`otp`, `pop`) came
/// with something else (`pwd`, `fed`, or a verified passkey's `user`).
///
/// Serialized as RFC 8176's array of names in a fixed order, e.g.
/// `["pwd","otp","mfa"]`; stored as a small bit set, so that adding
/// methods to a session is one atomic `amr | bits` in SQL.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Amr(u8);

impl Amr {
    /// A guest's: nothing proved.
    pub const NONE: Amr = Amr(0);
    /// A password alone.
    pub const PASSWORD: Amr = Amr(1);

    /// The set of `methods`, with `mfa` derived.
    pub fn of(methods: &[AuthMethod]) -> Amr {
        methods.iter().fold(Amr::NONE, |amr, m| amr.with(*m))
    }

    /// This set and `method`, with `mfa` derived.
    #[must_use]
    pub fn with(self, method: AuthMethod) -> Amr {
        Amr(self.0 | method.bit()).derive_mfa()
    }

    /// Both sets, with `mfa` derived.
    #[must_use]
    pub fn union(self, other: Amr) -> Amr {
        Amr(self.0 | other.0).derive_mfa()
    }

    fn derive_mfa(self) -> Amr {
        let has = self.contains(AuthMethod::Otp) || self.contains(AuthMethod::Pop);
        let other = self.contains(AuthMethod::Pwd) || self.contains(AuthMethod::Fed) || self.contains(AuthMethod::User);
        if has && other { Amr(self.0 | AuthMethod::Mfa.bit()) } else { self }
    }

    /// Whether `method` is in the set.
    pub fn contains(self, method: AuthMethod) -> bool {
        self.0 & method.bit() != 0
    }

    /// Whether the session proved more than one factor.
    pub fn is_multi_factor(self) -> bool {
        self.contains(AuthMethod::Mfa)
    }

    /// The methods, in RFC 8176's names and a fixed order.
    pub fn methods(self) -> impl Iterator<Item = AuthMethod> {
        AuthMethod::ALL.into_iter().filter(move |m| self.contains(*m))
    }

    /// The bits as stored.
    pub fn bits(self) -> i64 {
        i64::from(self.0)
    }

    /// The set stored as `bits`, with `mfa` derived (a store adds
    /// methods with a bitwise or, which cannot derive it); bits no method
    /// uses are dropped.
    pub fn from_bits(bits: i64) -> Amr {
        let known = AuthMethod::ALL.iter().fold(0u8, |all, m| all | m.bit());
        Amr(u8::try_from(bits & i64::from(known)).unwrap_or_default()).derive_mfa()
    }
}

impl fmt::Debug for Amr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.methods().map(|m| m.as_str())).finish()
    }
}

impl Serialize for Amr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for method in self.methods() {
            seq.serialize_element(method.as_str())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Amr {
    /// Names this service does not use are ignored (RFC 8176 allows others).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = Amr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of authentication method names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Amr, A::Error> {
                let mut bits = 0u8;
                while let Some(name) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    if let Some(m) = AuthMethod::ALL.iter().find(|m| m.as_str() == name) {
                        bits |= m.bit();
                    }
                }
                Ok(Amr(bits))
            }
        }
        deserializer.deserialize_seq(Names)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Amr {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
        let name = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(AuthMethod::ALL.iter().map(AuthMethod::as_str)));
        ArrayBuilder::new()
            .items(name)
            .description(Some("How the session signed in (RFC 8176), e.g. [\"pwd\",\"otp\",\"mfa\"]"))
            .build()
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Amr {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_s_sets_serialize_in_its_order() {
        let cases: [(&[AuthMethod], &str); 6] = [
            (&[AuthMethod::Pwd], r#"["pwd"]"#),
            (&[AuthMethod::Otp, AuthMethod::Pwd], r#"["pwd","otp","mfa"]"#),
            (&[AuthMethod::User, AuthMethod::Pop], r#"["pop","user","mfa"]"#),
            (&[AuthMethod::Fed], r#"["fed"]"#),
            (&[AuthMethod::Fed, AuthMethod::Otp], r#"["fed","otp","mfa"]"#),
            (&[], "[]"),
        ];
        for (methods, json) in cases {
            let amr = Amr::of(methods);
            assert_eq!(serde_json::to_string(&amr).unwrap(), json);
            assert_eq!(serde_json::from_str::<Amr>(json).unwrap(), amr);
            assert_eq!(Amr::from_bits(amr.bits()), amr);
        }
    }

    #[test]
    fn one_factor_is_never_mfa() {
        for method in [AuthMethod::Pwd, AuthMethod::Fed, AuthMethod::Pop, AuthMethod::Otp, AuthMethod::User] {
            assert!(!Amr::of(&[method]).is_multi_factor(), "{method:?}");
        }
        assert!(!Amr::of(&[AuthMethod::Pwd, AuthMethod::Fed]).is_multi_factor(), "two first factors");
        assert!(Amr::PASSWORD.union(Amr::of(&[AuthMethod::Otp])).is_multi_factor());
    }

    #[test]
    fn unknown_names_and_bits_are_dropped() {
        assert_eq!(serde_json::from_str::<Amr>(r#"["pwd","hwk","sms"]"#).unwrap(), Amr::PASSWORD);
        assert_eq!(Amr::from_bits(1 | 128 | 4096), Amr::PASSWORD);
        let or_in_sql = Amr::PASSWORD.bits() | Amr::of(&[AuthMethod::Otp]).bits();
        assert!(Amr::from_bits(or_in_sql).is_multi_factor(), "derived when read back");
        assert!(serde_json::from_str::<Amr>(r#""pwd""#).is_err());
    }
}
