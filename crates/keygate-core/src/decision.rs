//! The access decision (README, "The decision"), step by step, with the reason of the first
//! step that fails.

use crate::clock::Clock;
use crate::glob::is_valid_name;
use crate::ip::parse_caller_ip;
use crate::model::{Key, KeyState, User, UserStatus};
use crate::registry::Registry;
use crate::rule::{ApiRule, CallNames};
use crate::secret::{digest, is_well_formed, Prefix};

/// Why a call was allowed or denied; the numeric values cross to JavaScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    Allowed = 0,
    MalformedKey = 1,
    UnknownKey = 2,
    InvalidRequest = 3,
    Suspended = 4,
    Revoked = 5,
    Expired = 6,
    UserInactive = 7,
    UserLacksRight = 8,
    NoMatchingRule = 9,
    IpNotAllowed = 10,
    /// A store shared with other processes that cannot vouch it is current
    /// (between steps 1 and 2: it fails closed rather than answer from stale state).
    StoreUnavailable = 11,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::Allowed,
        Reason::MalformedKey,
        Reason::UnknownKey,
        Reason::InvalidRequest,
        Reason::Suspended,
        Reason::Revoked,
        Reason::Expired,
        Reason::UserInactive,
        Reason::UserLacksRight,
        Reason::NoMatchingRule,
        Reason::IpNotAllowed,
        Reason::StoreUnavailable,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::MalformedKey => "malformed_key",
            Reason::UnknownKey => "unknown_key",
            Reason::InvalidRequest => "invalid_request",
            Reason::Suspended => "suspended",
            Reason::Revoked => "revoked",
            Reason::Expired => "expired",
            Reason::UserInactive => "user_inactive",
            Reason::UserLacksRight => "user_lacks_right",
            Reason::NoMatchingRule => "no_matching_rule",
            Reason::IpNotAllowed => "ip_not_allowed",
            Reason::StoreUnavailable => "store_unavailable",
        }
    }
}

/// The decision plus what it was about.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'r> {
    pub reason: Reason,
    pub key: Option<&'r Key>,
    pub matched_rule: Option<&'r ApiRule>,
    /// The instant the decision used (read once, at step 5; `None` if not reached).
    pub now: Option<i64>,
}

impl Outcome<'_> {
    pub fn allowed(&self) -> bool {
        self.reason == Reason::Allowed
    }
}

/// A call to decide: the raw bytes the caller gave (any bytes at all).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub secret: &'a [u8],
    pub service: &'a [u8],
    pub api: &'a [u8],
    pub ip: Option<&'a [u8]>,
}

/// Decides a call in the documented order: [`authenticate`] (steps 1–2, with the
/// store's availability asked between them), then [`authorize`] (steps 3–9). The
/// clock is read only if step 5 is reached. `available` says whether the store can
/// vouch that `registry` is current.
pub fn decide<'r>(registry: &'r Registry, prefix: &Prefix, clock: &Clock, available: impl FnOnce() -> bool, call: Call<'_>) -> Outcome<'r> {
    match authenticate(registry, prefix, available, call.secret) {
        Ok(key) => authorize(registry, key, clock, call),
        Err(reason) => Outcome { reason, key: None, matched_rule: None, now: None },
    }
}

/// Steps 1–2 of the decision: the key `secret` names, or why there is none —
/// `malformed_key` (step 1), `store_unavailable` (the store cannot vouch that
/// `registry` is current: asked only for a well-formed secret, before the lookup)
/// or `unknown_key` (step 2).
#[inline]
pub fn authenticate<'r>(
    registry: &'r Registry,
    prefix: &Prefix,
    available: impl FnOnce() -> bool,
    secret: &[u8],
) -> Result<&'r Key, Reason> {
    if !is_well_formed(secret, prefix) {
        return Err(Reason::MalformedKey);
    }
    if !available() {
        return Err(Reason::StoreUnavailable);
    }
    registry.key_by_digest(&digest(secret)).ok_or(Reason::UnknownKey)
}

/// Steps 3–9 of the decision for a known key: what `decide` answers once the secret
/// has named `key`, and what an admin holding only the key id is told.
pub fn authorize<'r>(registry: &'r Registry, k: &'r Key, clock: &Clock, call: Call<'_>) -> Outcome<'r> {
    let deny = |reason, now| Outcome { reason, key: Some(k), matched_rule: None, now };
    if !is_valid_name(call.service) || !is_valid_name(call.api) {
        return deny(Reason::InvalidRequest, None);
    }
    match k.state {
        KeyState::Active => {}
        KeyState::Suspended => return deny(Reason::Suspended, None),
        KeyState::Revoked => return deny(Reason::Revoked, None),
    }
    let now = clock.now();
    if now >= k.expires_at {
        return deny(Reason::Expired, Some(now));
    }
    let now = Some(now);
    let Some(user) = registry.user(&k.user_id).filter(|u| u.status == UserStatus::Active) else {
        return deny(Reason::UserInactive, now);
    };
    let names = CallNames::new(call.service, call.api);
    if !has_right(registry, user, &names) {
        return deny(Reason::UserLacksRight, now);
    }
    let matched_rule = k.rules.first_api_match(&names);
    if matched_rule.is_none() && k.rules.has_api_rules() {
        return deny(Reason::NoMatchingRule, now);
    }
    let reason = if k.rules.ip_allows(call.ip.and_then(parse_caller_ip)) { Reason::Allowed } else { Reason::IpNotAllowed };
    Outcome { reason, key: Some(k), matched_rule, now }
}

/// The decision of a store that cannot vouch it is current: step 1, then `store_unavailable`.
pub fn decide_unavailable(prefix: &Prefix, call: Call<'_>) -> Reason {
    if is_well_formed(call.secret, prefix) {
        Reason::StoreUnavailable
    } else {
        Reason::MalformedKey
    }
}

/// Effective rights = the user's own rights ∪ the rights of each of its roles.
fn has_right(registry: &Registry, user: &User, call: &CallNames) -> bool {
    user.rights.first_api_match(call).is_some()
        || user.roles.iter().filter_map(|name| registry.role(name)).any(|role| role.rights.first_api_match(call).is_some())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::model::{KeyId, UserStatus};
    use crate::registry::{Change, KeyRecord, UserRecord};
    use crate::secret::generate;

    /// A registry holding one key of user `svc` (whatever its state: authentication
    /// does not look at it); returns the registry, the key's id and its secret.
    fn one_key(prefix: &Prefix, state: KeyState) -> (Registry, KeyId, String) {
        let mut registry = Registry::default();
        let user = UserRecord { id: "svc".into(), status: UserStatus::Suspended, rights: Vec::new(), roles: Vec::new() };
        registry.apply(Change::PutUser(user)).unwrap();
        let issued = generate(prefix).unwrap();
        let record = KeyRecord {
            id: KeyId::from_bytes([7; 16]),
            seq: 1,
            user_id: "svc".into(),
            description: String::new(),
            state,
            expires_at: 1,
            created_at: 0,
            updated_at: 0,
            last_used_at: None,
            hint: issued.hint,
            digest: issued.digest,
            rules: Vec::new(),
        };
        registry.apply(Change::PutKey(record)).unwrap();
        (registry, KeyId::from_bytes([7; 16]), issued.text)
    }

    #[test]
    fn a_known_secret_names_its_key_whatever_the_key_state_expiry_or_user() {
        let prefix = Prefix::default();
        for state in [KeyState::Active, KeyState::Suspended, KeyState::Revoked] {
            let (registry, id, secret) = one_key(&prefix, state);
            let key = authenticate(&registry, &prefix, || true, secret.as_bytes()).unwrap();
            assert_eq!(key.id, id);
        }
    }

    #[test]
    fn a_malformed_secret_is_refused_before_the_store_is_asked() {
        let prefix = Prefix::default();
        let (registry, _, secret) = one_key(&prefix, KeyState::Active);
        let other = Prefix::new("acme").unwrap();
        let mut bad_checksum = secret.clone().into_bytes();
        if let Some(last) = bad_checksum.last_mut() {
            *last = if *last == b'A' { b'B' } else { b'A' };
        }
        let renamed = secret.replacen("kg_", "acme_", 1);
        let cases: [(&Prefix, &[u8]); 5] =
            [(&prefix, b""), (&prefix, b"kg_short"), (&prefix, &bad_checksum), (&other, renamed.as_bytes()), (&other, secret.as_bytes())];
        for (prefix, secret) in cases {
            let asked = Cell::new(false);
            let answer = authenticate(
                &registry,
                prefix,
                || {
                    asked.set(true);
                    true
                },
                secret,
            );
            assert_eq!(answer.err(), Some(Reason::MalformedKey), "{:?}", String::from_utf8_lossy(secret));
            assert!(!asked.get(), "the store is not asked about a malformed secret");
        }
    }

    #[test]
    fn a_store_that_cannot_vouch_answers_store_unavailable_even_for_a_known_key() {
        let prefix = Prefix::default();
        let (registry, _, secret) = one_key(&prefix, KeyState::Active);
        assert_eq!(authenticate(&registry, &prefix, || false, secret.as_bytes()).err(), Some(Reason::StoreUnavailable));
        let stranger = generate(&prefix).unwrap().text;
        assert_eq!(authenticate(&registry, &prefix, || false, stranger.as_bytes()).err(), Some(Reason::StoreUnavailable));
    }

    #[test]
    fn a_well_formed_secret_of_no_key_is_unknown() {
        let prefix = Prefix::default();
        let (registry, _, _) = one_key(&prefix, KeyState::Active);
        let stranger = generate(&prefix).unwrap().text;
        assert_eq!(authenticate(&registry, &prefix, || true, stranger.as_bytes()).err(), Some(Reason::UnknownKey));
        assert_eq!(authenticate(&Registry::default(), &prefix, || true, stranger.as_bytes()).err(), Some(Reason::UnknownKey));
    }
}
