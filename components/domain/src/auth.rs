//! Who is calling: per-user API keys and the admin token.
//!
//! An API key is issued by billing when a user is created (and again on rotation) and is shown to
//! the user once. It reads `olk_<user>.<nonce>.<mac>` (each part base64url): the user it belongs to,
//! 16 random bytes, and an HMAC-SHA256 over both under the lattice's key secret. Any service that
//! holds the secret can therefore tell a real key from a forged one, and whose it is, without
//! asking another service: order stays stateless and no service calls another synchronously.
//!
//! A valid MAC proves the key was issued, not that it is still current: billing keeps the SHA-256
//! of each user's current key ([`KeyHash`], the only form in which a key is ever stored) and
//! refuses replaced keys for deposits, balances and payments (an order carries the hash of the key
//! it was placed with, and billing checks it when it settles). billing also announces each key it
//! issues on the broker ([`CurrentKeys`], `keys.<user digest>`), and order and notify accept a
//! user's key only if it is the one the newest announcement names ([`Caller::require_current`]):
//! a replaced key reads nothing, anywhere, from the moment its rotation answered.
//!
//! The admin token is a random string the operator keeps; services know only its SHA-256.
//!
//! Status mapping of [`AuthError`]: missing, malformed, forged or replaced credentials are 401
//! `unauthorized`; a valid credential for something it may not do is 403 `forbidden`; a service
//! without its key configuration, or that cannot read the current keys, is 503 `auth_unavailable`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::api::ApiError;
use crate::domain::UserName;
use crate::ports::StoreError;
use orders_wire::proto::CurrentApiKey;

/// The named-config keys a service reads its key configuration from (`wasi:config`).
pub mod config_keys {
    /// 32 random bytes as 64 hex digits: the HMAC key of API keys.
    pub const API_KEY_SECRET: &str = "api_key_secret";
    /// The SHA-256 of the admin token, as 64 hex digits.
    pub const ADMIN_TOKEN_SHA256: &str = "admin_token_sha256";
}

const KEY_PREFIX: &str = "olk_";
/// Domain separation: this MAC is over an API key and nothing else.
const MAC_CONTEXT: &[u8] = b"orders-lattice api key v1\0";
/// Far above any key we issue (a 64-character name in 4-byte characters is 342 base64 bytes), so
/// an absurd header is refused before any decoding.
const MAX_CREDENTIAL_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this request needs an `Authorization: Bearer <api key>` header")]
    MissingCredentials,
    #[error("the Authorization header must be `Bearer <api key>`")]
    MalformedCredentials,
    #[error("the API key is not valid")]
    InvalidKey,
    #[error("the API key was replaced by a newer one (POST /RotateKey)")]
    ReplacedKey,
    #[error("the API key belongs to another user")]
    AnotherUsersKey,
    #[error("only the admin token may do this")]
    AdminOnly,
    #[error("the admin token cannot act for a user; use the user's API key")]
    AdminActingAsUser,
    #[error("this service has no key configuration: {0}")]
    NotConfigured(String),
    #[error("the current API keys cannot be read: {0}")]
    CurrentKeysUnavailable(String),
}

impl ApiError for AuthError {
    fn status(&self) -> u16 {
        match self {
            Self::MissingCredentials
            | Self::MalformedCredentials
            | Self::InvalidKey
            | Self::ReplacedKey => 401,
            Self::AnotherUsersKey | Self::AdminOnly | Self::AdminActingAsUser => 403,
            Self::NotConfigured(_) | Self::CurrentKeysUnavailable(_) => 503,
        }
    }

    fn code(&self) -> &'static str {
        match self.status() {
            401 => "unauthorized",
            403 => "forbidden",
            _ => "auth_unavailable",
        }
    }
}

/// Each user's current API key, as billing announces it on the broker.
pub trait CurrentKeys {
    /// The hash of the key the newest announcement for `user` names; `None` when there is none.
    fn current_key(&self, user: &UserName) -> Result<Option<KeyHash>, StoreError>;
}

/// The SHA-256 of an API key: what billing stores and what an order carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// A stored or transported hash; anything but 32 bytes is no hash of ours.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The hash billing's announcement on `subject` names ([`CurrentKeys`]).
    pub fn announced(subject: &str, announced: &CurrentApiKey) -> Result<Self, StoreError> {
        Self::from_bytes(&announced.key_sha256).ok_or_else(|| StoreError::Corrupt {
            key: subject.to_string(),
            why: "the announced key is no SHA-256".into(),
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `stored` is this hash, in constant time.
    pub fn matches(&self, stored: &[u8]) -> bool {
        stored.len() == 32 && bool::from(self.0.ct_eq(stored))
    }
}

/// A key issued to a user: the text shown to them once, and its hash to store.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: String,
    pub hash: KeyHash,
}

/// The HMAC key under which API keys are issued and checked.
#[derive(Clone)]
pub struct KeySecret(Hmac<Sha256>);

impl KeySecret {
    pub fn from_hex(hex_digits: &str) -> Result<Self, AuthError> {
        let bytes = decode_hex_32(hex_digits, config_keys::API_KEY_SECRET)?;
        Ok(Self(
            Hmac::new_from_slice(&bytes).expect("HMAC takes keys of any length"),
        ))
    }

    fn mac(&self, user: &UserName, nonce: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(MAC_CONTEXT);
        mac.update(user.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(nonce);
        mac
    }

    /// A new key for `user`; `nonce` must come from a cryptographic random source.
    pub fn issue(&self, user: &UserName, nonce: [u8; 16]) -> IssuedKey {
        let tag = self.mac(user, &nonce).finalize().into_bytes();
        let key = format!(
            "{KEY_PREFIX}{}.{}.{}",
            BASE64.encode(user.as_str()),
            BASE64.encode(nonce),
            BASE64.encode(tag)
        );
        IssuedKey {
            hash: KeyHash::of(&key),
            key,
        }
    }

    /// The user a presented key was issued to, if its MAC is ours.
    fn verify(&self, key: &str) -> Result<UserName, AuthError> {
        let parts = key
            .strip_prefix(KEY_PREFIX)
            .map(|rest| rest.split('.').collect::<Vec<_>>())
            .ok_or(AuthError::InvalidKey)?;
        let [user, nonce, tag] = parts[..] else {
            return Err(AuthError::InvalidKey);
        };
        let decode = |part: &str| BASE64.decode(part).map_err(|_| AuthError::InvalidKey);
        let (user, nonce, tag) = (decode(user)?, decode(nonce)?, decode(tag)?);
        let user = std::str::from_utf8(&user).map_err(|_| AuthError::InvalidKey)?;
        // Only the canonical (already trimmed) form was ever issued.
        let user = UserName::parse(user)
            .ok()
            .filter(|parsed| parsed.as_str() == user)
            .ok_or(AuthError::InvalidKey)?;
        self.mac(&user, &nonce)
            .verify_slice(&tag)
            .map_err(|_| AuthError::InvalidKey)?;
        Ok(user)
    }
}

/// The SHA-256 of the admin token.
#[derive(Clone)]
pub struct AdminTokenHash([u8; 32]);

impl AdminTokenHash {
    pub fn from_hex(hex_digits: &str) -> Result<Self, AuthError> {
        decode_hex_32(hex_digits, config_keys::ADMIN_TOKEN_SHA256).map(Self)
    }

    fn matches(&self, token: &str) -> bool {
        KeyHash::of(token).matches(&self.0)
    }
}

fn decode_hex_32(hex_digits: &str, name: &str) -> Result<[u8; 32], AuthError> {
    hex::decode(hex_digits.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| AuthError::NotConfigured(format!("`{name}` must be 64 hex digits")))
}

/// What a service needs to authenticate callers: the key secret, and the admin token's hash.
#[derive(Clone)]
pub struct Authenticator {
    pub keys: KeySecret,
    admin: AdminTokenHash,
}

impl Authenticator {
    /// From a service's configuration (`lookup` returns a named-config value).
    pub fn from_config(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AuthError> {
        let value = |name: &str| {
            lookup(name).ok_or_else(|| AuthError::NotConfigured(format!("`{name}` is not set")))
        };
        Ok(Self {
            keys: KeySecret::from_hex(&value(config_keys::API_KEY_SECRET)?)?,
            admin: AdminTokenHash::from_hex(&value(config_keys::ADMIN_TOKEN_SHA256)?)?,
        })
    }

    /// Who sent a request with this `Authorization` header value.
    pub fn caller(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let header = authorization.ok_or(AuthError::MissingCredentials)?;
        let token = bearer_token(header)?;
        if token.starts_with(KEY_PREFIX) {
            let user = self.keys.verify(token)?;
            Ok(Caller::User(VerifiedKey {
                user,
                hash: KeyHash::of(token),
            }))
        } else if self.admin.matches(token) {
            Ok(Caller::Admin)
        } else {
            Err(AuthError::InvalidKey)
        }
    }
}

/// `Bearer <token>` (scheme case-insensitive, RFC 9110) with a token of printable ASCII.
fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or(AuthError::MalformedCredentials)?;
    let token = token.trim_start();
    let printable = token.bytes().all(|b| b.is_ascii_graphic());
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.len() > MAX_CREDENTIAL_LEN
        || !printable
    {
        return Err(AuthError::MalformedCredentials);
    }
    Ok(token)
}

/// A key whose MAC checked out: whose it is, and its hash (for billing's "still current?" check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub user: UserName,
    pub hash: KeyHash,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    User(VerifiedKey),
}

impl Caller {
    /// For acts only the user may do (deposit, order): the user's own key.
    pub fn require_user(&self, user: &UserName) -> Result<&VerifiedKey, AuthError> {
        match self {
            Self::Admin => Err(AuthError::AdminActingAsUser),
            Self::User(key) if key.user == *user => Ok(key),
            Self::User(_) => Err(AuthError::AnotherUsersKey),
        }
    }

    /// For views of one user (balance, notifications) and key recovery: the user's own key, or
    /// the admin token (`None`).
    pub fn require_user_or_admin(
        &self,
        user: &UserName,
    ) -> Result<Option<&VerifiedKey>, AuthError> {
        match self {
            Self::Admin => Ok(None),
            user_key => user_key.require_user(user).map(Some),
        }
    }

    /// Refuses a user key that is no longer its user's current one (or that billing never
    /// announced: announcements come before the key is handed out, so that is a key whose
    /// issuing failed). The admin token passes as it is.
    pub fn require_current(&self, keys: &(impl CurrentKeys + ?Sized)) -> Result<(), AuthError> {
        let Self::User(key) = self else {
            return Ok(());
        };
        let current = keys
            .current_key(&key.user)
            .map_err(|e| AuthError::CurrentKeysUnavailable(e.to_string()))?;
        match current {
            Some(current) if key.hash.matches(current.as_bytes()) => Ok(()),
            _ => Err(AuthError::ReplacedKey),
        }
    }

    /// For views across users.
    pub fn require_admin(&self) -> Result<(), AuthError> {
        match self {
            Self::Admin => Ok(()),
            Self::User(_) => Err(AuthError::AdminOnly),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{authenticator, ADMIN_TOKEN};

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    /// A key issued to `name`, and the caller who presents it.
    fn presenting_a_key_of(name: &str) -> (IssuedKey, Caller) {
        let auth = authenticator();
        let issued = auth.keys.issue(&user(name), [7; 16]);
        let caller = auth.caller(Some(&bearer(&issued.key))).unwrap();
        (issued, caller)
    }

    #[test]
    fn an_issued_key_authenticates_its_user_and_hashes_to_what_is_stored() {
        let (issued, caller) = presenting_a_key_of("Павел");
        let key = caller.require_user(&user("Павел")).unwrap();
        assert_eq!(key.hash, issued.hash);
        assert!(key.hash.matches(issued.hash.as_bytes()));
    }

    #[test]
    fn keys_issued_with_different_nonces_differ() {
        let keys = authenticator().keys;
        let (a, b) = (
            keys.issue(&user("Pavel"), [1; 16]),
            keys.issue(&user("Pavel"), [2; 16]),
        );
        assert_ne!(a.key, b.key);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn another_users_key_is_forbidden() {
        let (_, caller) = presenting_a_key_of("Anna");
        let refused = caller.require_user(&user("Pavel")).unwrap_err();
        assert_eq!((refused.status(), refused.code()), (403, "forbidden"));
    }

    #[test]
    fn a_key_with_a_forged_user_or_mac_is_unauthorized() {
        let auth = authenticator();
        let issued = auth.keys.issue(&user("Anna"), [7; 16]);
        let parts: Vec<&str> = issued
            .key
            .trim_start_matches(KEY_PREFIX)
            .split('.')
            .collect();
        let other_user = format!(
            "{KEY_PREFIX}{}.{}.{}",
            BASE64.encode("Pavel"),
            parts[1],
            parts[2]
        );
        let flipped_mac = format!("{}A", &issued.key[..issued.key.len() - 1]);
        let from_other_secret = KeySecret::from_hex(&"ab".repeat(32))
            .unwrap()
            .issue(&user("Anna"), [7; 16]);
        for forged in [other_user, flipped_mac, from_other_secret.key] {
            let refused = auth.caller(Some(&bearer(&forged))).unwrap_err();
            assert_eq!(refused, AuthError::InvalidKey, "{forged}");
            assert_eq!((refused.status(), refused.code()), (401, "unauthorized"));
        }
    }

    #[test]
    fn missing_or_malformed_credentials_are_unauthorized() {
        let auth = authenticator();
        assert_eq!(auth.caller(None), Err(AuthError::MissingCredentials));
        let long = bearer(&"x".repeat(MAX_CREDENTIAL_LEN + 1));
        for header in [
            "",
            "Bearer",
            "Bearer ",
            "Basic dXNlcjpwdw==",
            "olk_x.y.z",
            &long,
        ] {
            assert_eq!(
                auth.caller(Some(header)),
                Err(AuthError::MalformedCredentials),
                "{header:?}"
            );
        }
        for token in ["olk_", "olk_a.b", "olk_!!.AA.AA", "not-the-admin-token"] {
            assert_eq!(
                auth.caller(Some(&bearer(token))),
                Err(AuthError::InvalidKey),
                "{token}"
            );
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let auth = authenticator();
        assert_eq!(
            auth.caller(Some(&format!("bearer {ADMIN_TOKEN}"))),
            Ok(Caller::Admin)
        );
        assert_eq!(
            auth.caller(Some(&format!("BEARER  {ADMIN_TOKEN} "))),
            Ok(Caller::Admin)
        );
    }

    #[test]
    fn the_admin_token_may_view_any_user_but_not_act_for_one() {
        let admin = authenticator().caller(Some(&bearer(ADMIN_TOKEN))).unwrap();
        assert_eq!(admin.require_admin(), Ok(()));
        assert_eq!(admin.require_user_or_admin(&user("Pavel")), Ok(None));
        assert_eq!(
            admin.require_user(&user("Pavel")),
            Err(AuthError::AdminActingAsUser)
        );
    }

    #[test]
    fn a_user_key_is_not_the_admin_token() {
        let (_, caller) = presenting_a_key_of("Pavel");
        assert_eq!(caller.require_admin(), Err(AuthError::AdminOnly));
        assert!(caller
            .require_user_or_admin(&user("Pavel"))
            .unwrap()
            .is_some());
    }

    /// The announcements of a broker, newest last.
    struct Announced(Vec<(UserName, KeyHash)>, bool);

    impl CurrentKeys for Announced {
        fn current_key(&self, user: &UserName) -> Result<Option<KeyHash>, StoreError> {
            if self.1 {
                return Err(StoreError::BrokerUnavailable("broker down".into()));
            }
            Ok(self
                .0
                .iter()
                .rev()
                .find(|(u, _)| u == user)
                .map(|(_, h)| *h))
        }
    }

    #[test]
    fn only_the_newest_announced_key_of_a_user_is_current() {
        let auth = authenticator();
        let (first, second) = (
            auth.keys.issue(&user("Pavel"), [1; 16]),
            auth.keys.issue(&user("Pavel"), [2; 16]),
        );
        let anna = auth.keys.issue(&user("Anna"), [3; 16]);
        let announced = Announced(
            vec![
                (user("Pavel"), first.hash),
                (user("Anna"), anna.hash),
                (user("Pavel"), second.hash),
            ],
            false,
        );
        let caller = |key: &str| auth.caller(Some(&bearer(key))).unwrap();
        assert_eq!(caller(&second.key).require_current(&announced), Ok(()));
        assert_eq!(caller(&anna.key).require_current(&announced), Ok(()));
        let replaced = caller(&first.key).require_current(&announced).unwrap_err();
        assert_eq!(replaced, AuthError::ReplacedKey);
        assert_eq!((replaced.status(), replaced.code()), (401, "unauthorized"));
    }

    #[test]
    fn a_key_never_announced_is_refused_and_the_admin_needs_no_announcement() {
        let auth = authenticator();
        let unannounced = auth.keys.issue(&user("Pavel"), [1; 16]);
        let nothing = Announced(Vec::new(), false);
        let caller = auth.caller(Some(&bearer(&unannounced.key))).unwrap();
        assert_eq!(
            caller.require_current(&nothing),
            Err(AuthError::ReplacedKey)
        );
        let admin = auth.caller(Some(&bearer(ADMIN_TOKEN))).unwrap();
        assert_eq!(admin.require_current(&Announced(Vec::new(), true)), Ok(()));
    }

    #[test]
    fn unreadable_announcements_make_a_user_key_unavailable_not_accepted() {
        let (issued, caller) = presenting_a_key_of("Pavel");
        let refused = caller
            .require_current(&Announced(vec![(user("Pavel"), issued.hash)], true))
            .unwrap_err();
        assert_eq!(
            (refused.status(), refused.code()),
            (503, "auth_unavailable")
        );
    }

    #[test]
    fn a_service_without_key_configuration_is_unavailable_not_open() {
        let missing = Authenticator::from_config(|_| None).err().unwrap();
        assert_eq!(
            (missing.status(), missing.code()),
            (503, "auth_unavailable")
        );
        let short = Authenticator::from_config(|_| Some("abcd".into()))
            .err()
            .unwrap();
        assert_eq!(short.status(), 503);
    }
}
