//! The decision calls: `check` (the hot path, which records the use of the key),
//! `is_allowed`, and the diagnoses `explain` and `explain_key`.

use super::{Explanation, KeyStore};
use crate::decision::{authorize, decide, decide_unavailable, Call, Reason};
use crate::memo::{Verdict, MEMO_HORIZON_MS};
use crate::model::KeyId;

impl KeyStore {
    /// The hot path: decides a call and records the use of the key when allowed.
    pub fn check(&self, call: Call<'_>) -> Verdict {
        // A store that cannot vouch it is current answers at once, without waiting
        // for the registry (a reload may hold it).
        if !self.is_current() {
            let reason = decide_unavailable(&self.inner.prefix, call);
            return Verdict { reason, known_key: false, depends_on_ip: false, transient: true };
        }
        let registry = self.inner.registry.read();
        let outcome = decide(&registry, &self.inner.prefix, &self.inner.clock, || self.is_current(), call);
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

    /// The decision with its reason, the key and user it concerns and the first
    /// matching API rule. A diagnosis, not a use: `lastUsedAt` is left alone.
    pub fn explain(&self, call: Call<'_>) -> Explanation {
        if !self.is_current() {
            let reason = decide_unavailable(&self.inner.prefix, call);
            return Explanation { reason, key_id: None, user_id: None, matched_rule: None };
        }
        let registry = self.inner.registry.read();
        let outcome = decide(&registry, &self.inner.prefix, &self.inner.clock, || self.is_current(), call);
        Explanation {
            reason: outcome.reason,
            key_id: outcome.key.map(|k| k.id.to_string()),
            user_id: outcome.key.map(|k| k.user_id.to_string()),
            matched_rule: outcome.matched_rule.map(|r| r.text.to_string()),
        }
    }

    /// `explain` for an admin who holds the key id but not the secret: steps 3–9 of
    /// the decision for that key, `unknown_key` when no key has this id.
    pub fn explain_key(&self, key_id: &str, call: Call<'_>) -> Explanation {
        let unexplained = |reason| Explanation { reason, key_id: None, user_id: None, matched_rule: None };
        if !self.is_current() {
            return unexplained(Reason::StoreUnavailable);
        }
        let registry = self.inner.registry.read();
        let Some(key) = key_id.parse::<KeyId>().ok().and_then(|id| registry.key_by_id(&id)) else {
            return unexplained(Reason::UnknownKey);
        };
        let outcome = authorize(&registry, key, &self.inner.clock, call);
        Explanation {
            reason: outcome.reason,
            key_id: Some(key.id.to_string()),
            user_id: Some(key.user_id.to_string()),
            matched_rule: outcome.matched_rule.map(|r| r.text.to_string()),
        }
    }
}
