//! The decision calls: `check` (the hot path, which records the use of the key),
//! `is_allowed`, and the diagnoses `explain` and `explain_key` — each for an API
//! call and, with the `_dav` suffix, for a WebDAV request.

use parking_lot::RwLockReadGuard;

use super::{Explanation, KeyStore};
use crate::decision::{authenticate, authorize_request, decide_request, unavailable, Call, DavCall, Reason, Request, RuleText};
use crate::memo::{Verdict, MEMO_HORIZON_MS};
use crate::model::KeyId;
use crate::registry::Registry;

/// A check begun with [`KeyStore::begin_check`]: the secret is known, the memory its
/// lookup reads is loading, and the call's names are still to come.
pub struct PendingCheck<'s> {
    store: &'s KeyStore,
    /// `None` when the store could not vouch it was current at the start: the check then
    /// answers without waiting for the registry (a reload may hold it).
    registry: Option<RwLockReadGuard<'s, Registry>>,
    /// The decision's instant, read as the check begins rather than at step 5: there
    /// its cost (an ordered read of the CPU's time-stamp counter, some 25 ns) overlaps
    /// the key's load from memory instead of following it.
    now: i64,
}

impl KeyStore {
    /// The hot path: decides a call and records the use of the key when allowed.
    pub fn check(&self, call: Call<'_>) -> Verdict {
        self.begin_check(call.secret).check(call)
    }

    /// [`KeyStore::check`] for a WebDAV request.
    pub fn check_dav(&self, call: DavCall<'_>) -> Verdict {
        self.begin_check(call.secret).check_dav(call)
    }

    /// Begins a check of a call with `secret` (the same bytes the call will carry): the
    /// key table's entry starts loading from memory, so that whatever the caller does
    /// before [`PendingCheck::check`] (reading the call's names) overlaps that load.
    /// Holds the registry's read lock until the check is done, and reads the clock here:
    /// the check decides as of this instant, even if the clock moves before it ends
    /// (what it decides about is the registry as of this instant too).
    #[inline]
    pub fn begin_check(&self, secret: &[u8]) -> PendingCheck<'_> {
        let registry = self.is_current().then(|| self.inner.registry.read());
        // The clock is read after the loads start (and only when there is a registry to decide with).
        let now = match &registry {
            Some(registry) => {
                registry.prefetch_secret(secret);
                self.inner.clock.now()
            }
            None => 0,
        };
        PendingCheck { store: self, registry, now }
    }
}

impl PendingCheck<'_> {
    /// Decides `call` (whose secret is the one the check began with).
    pub fn check(self, call: Call<'_>) -> Verdict {
        self.decide(call)
    }

    /// [`PendingCheck::check`] for a WebDAV request.
    pub fn check_dav(self, call: DavCall<'_>) -> Verdict {
        self.decide(call)
    }

    /// Steps 1–2 only: whether `secret` (the one the check began with) names a key,
    /// nothing decided or recorded. What every check spends before deciding anything:
    /// the benchmark measures it as the floor under the wide check (`bench/miss.mjs`).
    pub fn finds_key(self, secret: &[u8]) -> bool {
        let Some(registry) = self.registry else {
            return false;
        };
        authenticate(&registry, &self.store.inner.prefix, || true, secret).is_ok()
    }

    #[inline]
    fn decide(self, request: impl Request) -> Verdict {
        let store = self.store;
        let inner = &store.inner;
        // A store that cannot vouch it is current answers at once.
        let Some(registry) = self.registry else {
            let reason = unavailable(&inner.prefix, request);
            return Verdict { reason, known_key: false, depends_on_ip: false, transient: true, first_check: false };
        };
        let now = self.now;
        let outcome = decide_request(&registry, &inner.prefix, || now, || store.is_current(), request);
        if let (Some(key), Some(now), true) = (outcome.key, outcome.now, outcome.allowed()) {
            inner.record_use(key, now);
        }
        // Expired stays expired (a clock set back bumps the generation); a key about to
        // expire is decided afresh each time, so no remembered answer outlives it.
        let transient = match (outcome.key, outcome.now) {
            (Some(key), Some(now)) => now < key.expires_at && key.expires_at.saturating_sub(now) <= MEMO_HORIZON_MS,
            _ => false,
        };
        Verdict {
            reason: outcome.reason,
            known_key: outcome.key.is_some(),
            depends_on_ip: outcome.key.is_some_and(|k| k.rules.has_ip_rules()),
            transient,
            first_check: outcome.key.is_some_and(|k| k.first_check()),
        }
    }
}

impl KeyStore {
    pub fn is_allowed(&self, call: Call<'_>) -> bool {
        self.check(call).reason == Reason::Allowed
    }

    /// [`KeyStore::is_allowed`] for a WebDAV request.
    pub fn is_allowed_dav(&self, call: DavCall<'_>) -> bool {
        self.check_dav(call).reason == Reason::Allowed
    }

    /// The decision with its reason, the key and user it concerns and the first
    /// matching API rule. A diagnosis, not a use: `lastUsedAt` is left alone.
    pub fn explain(&self, call: Call<'_>) -> Explanation {
        self.explain_request(call)
    }

    /// [`KeyStore::explain`] for a WebDAV request: `matched_rule` is the first
    /// matching WebDAV rule.
    pub fn explain_dav(&self, call: DavCall<'_>) -> Explanation {
        self.explain_request(call)
    }

    fn explain_request(&self, request: impl Request) -> Explanation {
        if !self.is_current() {
            let reason = unavailable(&self.inner.prefix, request);
            return Explanation { reason, key_id: None, user_id: None, matched_rule: None };
        }
        let registry = self.inner.registry.read();
        let outcome = decide_request(&registry, &self.inner.prefix, || self.inner.clock.now(), || self.is_current(), request);
        Explanation {
            reason: outcome.reason,
            key_id: outcome.key.map(|k| k.id.to_string()),
            user_id: outcome.key.map(|k| k.user_id.to_string()),
            matched_rule: outcome.matched_rule.map(|r| r.text().to_string()),
        }
    }

    /// `explain` for an admin who holds the key id but not the secret: steps 3–9 of
    /// the decision for that key, `unknown_key` when no key has this id.
    pub fn explain_key(&self, key_id: &str, call: Call<'_>) -> Explanation {
        self.explain_key_request(key_id, call)
    }

    /// [`KeyStore::explain_key`] for a WebDAV request (the call's secret is not read).
    pub fn explain_key_dav(&self, key_id: &str, call: DavCall<'_>) -> Explanation {
        self.explain_key_request(key_id, call)
    }

    fn explain_key_request(&self, key_id: &str, request: impl Request) -> Explanation {
        let unexplained = |reason| Explanation { reason, key_id: None, user_id: None, matched_rule: None };
        if !self.is_current() {
            return unexplained(Reason::StoreUnavailable);
        }
        let registry = self.inner.registry.read();
        let Some(key) = key_id.parse::<KeyId>().ok().and_then(|id| registry.key_by_id(&id)) else {
            return unexplained(Reason::UnknownKey);
        };
        let outcome = authorize_request(&registry, key, || self.inner.clock.now(), request);
        Explanation {
            reason: outcome.reason,
            key_id: Some(key.id.to_string()),
            user_id: Some(key.user_id.to_string()),
            matched_rule: outcome.matched_rule.map(|r| r.text().to_string()),
        }
    }
}
