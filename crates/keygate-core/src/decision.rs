//! The access decision (README, "The decision"), step by step, with the reason of the first
//! step that fails. An API call and a WebDAV request share every step but what they ask
//! about ([`Request`]): step 3 checks its names, steps 7 and 8 match it against rules of
//! its own kind only, so API rules never decide a WebDAV request nor WebDAV rules an API call.

use crate::clock::Clock;
use crate::dav::{is_valid_request, DavNames, DavRule};
use crate::ip::parse_caller_ip;
use crate::model::{Key, KeyState, User, UserStatus};
use crate::registry::Registry;
use crate::rule::{ApiRule, CallNames, RuleList};
use crate::secret::{checksum_matches, has_secret_shape, is_well_formed, Prefix};

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

/// The decision plus what it was about; `M` is the kind of rule that matched
/// (`ApiRule` for an API call, `DavRule` for a WebDAV request).
#[derive(Debug)]
pub struct Outcome<'r, M = ApiRule> {
    pub reason: Reason,
    pub key: Option<&'r Key>,
    /// The first of the key's rules of the request's kind that matched (step 8).
    pub matched_rule: Option<&'r M>,
    /// The instant the decision used (read once, at step 5; `None` if not reached).
    pub now: Option<i64>,
}

// Copy whatever `M` is: the outcome holds references only.
impl<M> Clone for Outcome<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Outcome<'_, M> {}

impl<M> Outcome<'_, M> {
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

/// A WebDAV request to decide: the raw bytes the caller gave (any bytes at all).
#[derive(Debug, Clone, Copy)]
pub struct DavCall<'a> {
    pub secret: &'a [u8],
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub ip: Option<&'a [u8]>,
}

/// What the decision asks about a request of one kind: steps 3, 7 and 8 differ by kind.
pub(crate) trait Request: Copy {
    /// The kind of rule that decides it.
    type Rule: RuleText;
    /// The request prepared once for matching against every rule list.
    type Names;
    fn secret(&self) -> &[u8];
    fn ip(&self) -> Option<&[u8]>;
    /// Step 3: the request's names are valid (`names` are this request's, prepared).
    fn is_valid(&self, names: &Self::Names) -> bool;
    fn names(&self) -> Self::Names;
    /// The first rule of this kind in `rules` (list order) that matches.
    fn first_match<'r>(rules: &'r RuleList, names: &Self::Names) -> Option<&'r Self::Rule>;
    /// Whether `rules` holds any rule of this kind (none = unrestricted at step 8).
    fn has_rules(rules: &RuleList) -> bool;
}

impl Request for Call<'_> {
    type Rule = ApiRule;
    type Names = CallNames;

    fn secret(&self) -> &[u8] {
        self.secret
    }

    fn ip(&self) -> Option<&[u8]> {
        self.ip
    }

    #[inline]
    fn is_valid(&self, names: &CallNames) -> bool {
        names.are_valid()
    }

    #[inline]
    fn names(&self) -> CallNames {
        CallNames::new(self.service, self.api)
    }

    #[inline]
    fn first_match<'r>(rules: &'r RuleList, names: &CallNames) -> Option<&'r ApiRule> {
        rules.first_api_match(names)
    }

    #[inline]
    fn has_rules(rules: &RuleList) -> bool {
        rules.has_api_rules()
    }
}

impl Request for DavCall<'_> {
    type Rule = DavRule;
    type Names = DavNames;

    fn secret(&self) -> &[u8] {
        self.secret
    }

    fn ip(&self) -> Option<&[u8]> {
        self.ip
    }

    fn is_valid(&self, _names: &DavNames) -> bool {
        is_valid_request(self.method, self.path)
    }

    fn names(&self) -> DavNames {
        DavNames::new(self.method, self.path)
    }

    fn first_match<'r>(rules: &'r RuleList, names: &DavNames) -> Option<&'r DavRule> {
        rules.first_dav_match(names)
    }

    fn has_rules(rules: &RuleList) -> bool {
        rules.has_dav_rules()
    }
}

/// The normalised text of a rule that matched (what `explain` reports).
pub(crate) trait RuleText {
    fn text(&self) -> &str;
}

impl RuleText for ApiRule {
    fn text(&self) -> &str {
        &self.text
    }
}

impl RuleText for DavRule {
    fn text(&self) -> &str {
        &self.text
    }
}

/// Decides a call in the documented order: [`authenticate`] (steps 1–2, with the
/// store's availability asked between them), then [`authorize`] (steps 3–9). The
/// clock is read only if step 5 is reached. `available` says whether the store can
/// vouch that `registry` is current.
pub fn decide<'r>(registry: &'r Registry, prefix: &Prefix, clock: &Clock, available: impl FnOnce() -> bool, call: Call<'_>) -> Outcome<'r> {
    decide_request(registry, prefix, || clock.now(), available, call)
}

/// [`decide`] for a WebDAV request.
pub fn decide_dav<'r>(
    registry: &'r Registry,
    prefix: &Prefix,
    clock: &Clock,
    available: impl FnOnce() -> bool,
    call: DavCall<'_>,
) -> Outcome<'r, DavRule> {
    decide_request(registry, prefix, || clock.now(), available, call)
}

/// [`decide`] for a request of either kind; `now` gives the decision's instant (called
/// only if step 5 is reached).
#[inline]
pub(crate) fn decide_request<'r, Q: Request>(
    registry: &'r Registry,
    prefix: &Prefix,
    now: impl FnOnce() -> i64,
    available: impl FnOnce() -> bool,
    request: Q,
) -> Outcome<'r, Q::Rule> {
    // Folded first: meanwhile the key table's entry arrives from memory (the check
    // began loading it when the secret was read, see `KeyStore::begin_check`).
    let names = request.names();
    match authenticate(registry, prefix, available, request.secret()) {
        Ok(key) => authorize_named(registry, key, now, request, &names),
        Err(reason) => Outcome { reason, key: None, matched_rule: None, now: None },
    }
}

/// Steps 1–2 of the decision: the key `secret` names, or why there is none —
/// `malformed_key` (step 1), `store_unavailable` (the store cannot vouch that
/// `registry` is current: asked only for a well-formed secret) or `unknown_key`
/// (step 2). The in-memory lookup comes first and the checksum (the rest of step 1)
/// is checked only when it finds no key: a secret whose digest is a key's is that
/// key's secret, issued well formed. The reasons are those of the documented order.
#[inline]
pub fn authenticate<'r>(
    registry: &'r Registry,
    prefix: &Prefix,
    available: impl FnOnce() -> bool,
    secret: &[u8],
) -> Result<&'r Key, Reason> {
    if !has_secret_shape(secret, prefix) {
        return Err(Reason::MalformedKey);
    }
    let found = registry.key_by_secret(secret);
    if found.is_none() && !checksum_matches(secret) {
        return Err(Reason::MalformedKey);
    }
    if !available() {
        return Err(Reason::StoreUnavailable);
    }
    found.ok_or(Reason::UnknownKey)
}

/// Steps 3–9 of the decision for a known key: what `decide` answers once the secret
/// has named `key`, and what an admin holding only the key id is told.
pub fn authorize<'r>(registry: &'r Registry, k: &'r Key, clock: &Clock, call: Call<'_>) -> Outcome<'r> {
    authorize_request(registry, k, || clock.now(), call)
}

/// [`authorize`] for a WebDAV request.
pub fn authorize_dav<'r>(registry: &'r Registry, k: &'r Key, clock: &Clock, call: DavCall<'_>) -> Outcome<'r, DavRule> {
    authorize_request(registry, k, || clock.now(), call)
}

/// [`authorize`] for a request of either kind; `now` as for [`decide_request`].
#[inline]
pub(crate) fn authorize_request<'r, Q: Request>(
    registry: &'r Registry,
    k: &'r Key,
    now: impl FnOnce() -> i64,
    request: Q,
) -> Outcome<'r, Q::Rule> {
    authorize_named(registry, k, now, request, &request.names())
}

/// [`authorize_request`] with the request's names already folded.
#[inline]
fn authorize_named<'r, Q: Request>(
    registry: &'r Registry,
    k: &'r Key,
    now: impl FnOnce() -> i64,
    request: Q,
    names: &Q::Names,
) -> Outcome<'r, Q::Rule> {
    let deny = |reason, now| Outcome { reason, key: Some(k), matched_rule: None, now };
    // Read at step 8, after the user's rights: loading them meanwhile hides a cache miss.
    k.rules.prefetch();
    if !request.is_valid(names) {
        return deny(Reason::InvalidRequest, None);
    }
    match k.state {
        KeyState::Active => {}
        KeyState::Suspended => return deny(Reason::Suspended, None),
        KeyState::Revoked => return deny(Reason::Revoked, None),
    }
    let now = now();
    if now >= k.expires_at {
        return deny(Reason::Expired, Some(now));
    }
    let now = Some(now);
    let Some(user) = registry.user(&k.user_id).filter(|u| u.status == UserStatus::Active) else {
        return deny(Reason::UserInactive, now);
    };
    if !has_right::<Q>(registry, user, names) {
        return deny(Reason::UserLacksRight, now);
    }
    let matched_rule = Q::first_match(&k.rules, names);
    if matched_rule.is_none() && Q::has_rules(&k.rules) {
        return deny(Reason::NoMatchingRule, now);
    }
    let reason = if k.rules.ip_allows(request.ip().and_then(parse_caller_ip)) { Reason::Allowed } else { Reason::IpNotAllowed };
    Outcome { reason, key: Some(k), matched_rule, now }
}

/// The decision of a store that cannot vouch it is current: step 1, then `store_unavailable`.
pub fn decide_unavailable(prefix: &Prefix, call: Call<'_>) -> Reason {
    unavailable(prefix, call)
}

/// [`decide_unavailable`] for a WebDAV request.
pub fn decide_dav_unavailable(prefix: &Prefix, call: DavCall<'_>) -> Reason {
    unavailable(prefix, call)
}

/// [`decide_unavailable`] for a request of either kind.
pub(crate) fn unavailable(prefix: &Prefix, request: impl Request) -> Reason {
    if is_well_formed(request.secret(), prefix) {
        Reason::StoreUnavailable
    } else {
        Reason::MalformedKey
    }
}

/// Effective rights = the user's own rights ∪ the rights of each of its roles.
/// Rights of the request's kind only: an API right never grants a WebDAV request, nor the reverse.
fn has_right<Q: Request>(registry: &Registry, user: &User, names: &Q::Names) -> bool {
    Q::first_match(&user.rights, names).is_some()
        || user.roles.iter().filter_map(|name| registry.role(name)).any(|role| Q::first_match(&role.rights, names).is_some())
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

    /// The names README ("The decision") gives the reasons, in the order of their codes.
    #[test]
    fn each_reason_has_its_documented_name() {
        let names = Reason::ALL.map(Reason::as_str);
        assert_eq!(
            names,
            [
                "allowed",
                "malformed_key",
                "unknown_key",
                "invalid_request",
                "suspended",
                "revoked",
                "expired",
                "user_inactive",
                "user_lacks_right",
                "no_matching_rule",
                "ip_not_allowed",
                "store_unavailable",
            ]
        );
        for (code, reason) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, code, "{}", reason.as_str());
        }
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
