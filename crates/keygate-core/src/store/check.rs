//! The decision calls: `check` (the hot path, which records the use of the key),
//! `is_allowed`, and the diagnoses `explain` and `explain_key` — each for an API
//! call and, with the `_dav` suffix, for a WebDAV request.

use super::{Explanation, KeyStore};
use crate::decision::{authorize_request, decide_request, unavailable, Call, DavCall, Reason, Request, RuleText};
use crate::memo::{Verdict, MEMO_HORIZON_MS};
use crate::model::KeyId;

impl KeyStore {
    /// The hot path: decides a call and records the use of the key when allowed.
    pub fn check(&self, call: Call<'_>) -> Verdict {
        self.check_request(call)
    }

    /// [`KeyStore::check`] for a WebDAV request.
    pub fn check_dav(&self, call: DavCall<'_>) -> Verdict {
        self.check_request(call)
    }

    #[inline]
    fn check_request(&self, request: impl Request) -> Verdict {
        // A store that cannot vouch it is current answers at once, without waiting
        // for the registry (a reload may hold it).
        if !self.is_current() {
            let reason = unavailable(&self.inner.prefix, request);
            return Verdict { reason, known_key: false, depends_on_ip: false, transient: true };
        }
        let registry = self.inner.registry.read();
        let outcome = decide_request(&registry, &self.inner.prefix, &self.inner.clock, || self.is_current(), request);
        if let (Some(key), Some(now), true) = (outcome.key, outcome.now, outcome.allowed()) {
            self.inner.record_use(key, now);
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
        }
    }

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
        let outcome = decide_request(&registry, &self.inner.prefix, &self.inner.clock, || self.is_current(), request);
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
        let outcome = authorize_request(&registry, key, &self.inner.clock, request);
        Explanation {
            reason: outcome.reason,
            key_id: Some(key.id.to_string()),
            user_id: Some(key.user_id.to_string()),
            matched_rule: outcome.matched_rule.map(|r| r.text().to_string()),
        }
    }
}
