//! `KeyStore`: the public API of the core. Every admin call validates first,
//! then commits its changes to the backend, then applies them in memory — so a
//! call that fails changes nothing.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::clock::Clock;
use crate::expiry::ExpiryWatch;
use crate::decision::{decide, Call, Reason};
use crate::error::{quote, Error, ErrorCode, Result};
use crate::model::{check_name, parse_key_id, Key, KeyState, Role, User, UserStatus, MAX_DESCRIPTION_CHARS};
use crate::registry::{record_of, Change, KeyRecord, Registry, RoleRecord, UserRecord};
use crate::rule::{normalise_list, RuleUse};
use crate::secret::{self, Prefix};

const DAY_MS: i64 = 86_400_000;
pub const DEFAULT_MAX_LIFETIME_DAYS: u32 = 730;
const MAX_LIFETIME_DAYS_LIMIT: u32 = 36_500;

/// Where committed changes go. The in-memory store keeps nothing; a durable
/// backend writes them in one transaction before they are applied in memory.
pub trait Backend: Send + Sync {
    fn commit(&self, changes: &[Change]) -> Result<()>;
}

/// The backend of `KeyStore.inMemory()`.
pub struct NoBackend;

impl Backend for NoBackend {
    fn commit(&self, _changes: &[Change]) -> Result<()> {
        Ok(())
    }
}

/// Words shared with the JavaScript side (as an ArrayBuffer over this struct):
/// `generation` changes whenever any decision may have changed; while `bypass`
/// is non-zero no remembered decision may be used.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Signals {
    pub generation: AtomicU32,
    pub bypass: AtomicU32,
}

impl Signals {
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub key_prefix: Option<String>,
    pub max_lifetime_days: Option<f64>,
    /// Freeze the clock at this instant (ms since the epoch).
    pub now: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct UserInput {
    pub id: String,
    pub status: Option<String>,
    pub rights: Vec<String>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub user_id: String,
    pub description: String,
    pub expires_at: Option<i64>,
    pub rules: Vec<String>,
    pub state: Option<String>,
}

/// Fields to change; `None` leaves a field as it is. `expires_at: Some(None)`
/// is an explicit attempt to remove the expiry, which is refused.
#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub description: Option<String>,
    pub rules: Option<Vec<String>>,
    pub expires_at: Option<Option<i64>>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub user_id: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: String,
    pub status: &'static str,
    pub rights: Vec<String>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleView {
    pub name: String,
    pub rights: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    pub id: String,
    pub user_id: String,
    pub description: String,
    pub state: &'static str,
    pub expires_at: i64,
    pub rules: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
    pub hint: String,
}

/// A key with its secret, returned once by `create_key` and `rotate_key`.
pub struct Issued {
    pub key: KeyView,
    pub secret: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("key", &self.key).field("secret", &"<redacted>").finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub reason: Reason,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub matched_rule: Option<String>,
}

/// The hot-path answer: the reason, and what a cache of decisions must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub reason: Reason,
    /// A key with this secret exists (the decision is about a known key).
    pub known_key: bool,
    /// The key has IP rules, so the decision depends on the caller's address.
    pub ip_dependent: bool,
}

pub struct KeyStore {
    registry: RwLock<Registry>,
    prefix: Prefix,
    max_lifetime_ms: i64,
    clock: Arc<Clock>,
    signals: Arc<Signals>,
    expiry: ExpiryWatch,
    backend: Box<dyn Backend>,
}

fn view_key(key: &Key) -> KeyView {
    KeyView {
        id: key.id_string(),
        user_id: key.user_id.to_string(),
        description: key.description.to_string(),
        state: key.state.as_str(),
        expires_at: key.expires_at,
        rules: key.rules.texts(),
        created_at: key.created_at,
        updated_at: key.updated_at,
        last_used_at: key.last_used_at(),
        hint: String::from_utf8_lossy(&key.hint).into_owned(),
    }
}

fn view_user(user: &User) -> UserView {
    UserView {
        id: user.id.to_string(),
        status: user.status.as_str(),
        rights: user.rights.texts(),
        roles: user.roles.iter().map(|r| r.to_string()).collect(),
    }
}

fn view_role(role: &Role) -> RoleView {
    RoleView { name: role.name.to_string(), rights: role.rights.texts() }
}

fn unknown_key(id: &str) -> Error {
    Error::new(ErrorCode::UnknownKey, format!("no key with id {}", quote(id)))
}

fn check_description(description: &str) -> Result<()> {
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("description is {chars} characters long; at most {MAX_DESCRIPTION_CHARS} are allowed"),
        ));
    }
    Ok(())
}

fn iso(ms: i64) -> String {
    crate::time::iso8601(ms)
}

impl KeyStore {
    /// A store with no durable backend.
    pub fn in_memory(options: Options) -> Result<KeyStore> {
        KeyStore::with_backend(options, Registry::default(), Box::new(NoBackend))
    }

    /// A store over `registry` (already loaded) whose changes go to `backend`.
    pub fn with_backend(options: Options, registry: Registry, backend: Box<dyn Backend>) -> Result<KeyStore> {
        let prefix = match &options.key_prefix {
            Some(p) => Prefix::new(p)?,
            None => Prefix::default(),
        };
        let days = options.max_lifetime_days.unwrap_or(DEFAULT_MAX_LIFETIME_DAYS as f64);
        if !(days.is_finite() && days.fract() == 0.0 && days >= 1.0 && days <= MAX_LIFETIME_DAYS_LIMIT as f64) {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("maxLifetimeDays {days} must be a whole number from 1 to {MAX_LIFETIME_DAYS_LIMIT}"),
            ));
        }
        let clock = Arc::new(Clock::new(options.now));
        let signals = Arc::new(Signals::default());
        let expiry = ExpiryWatch::new(signals.clone(), clock.clone());
        for key in registry.keys() {
            expiry.schedule(key.expires_at);
        }
        Ok(KeyStore {
            registry: RwLock::new(registry),
            prefix,
            max_lifetime_ms: days as i64 * DAY_MS,
            clock,
            signals,
            expiry,
            backend,
        })
    }

    pub fn signals(&self) -> Arc<Signals> {
        self.signals.clone()
    }

    pub fn key_prefix(&self) -> &str {
        self.prefix.as_str()
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Freezes the clock at `at`, or returns to the system clock.
    pub fn set_now(&self, at: Option<i64>) {
        self.clock.set(at);
        self.signals.bump();
        self.expiry.clock_changed();
    }

    pub fn frozen_now(&self) -> Option<i64> {
        self.clock.frozen_at()
    }

    fn commit(&self, registry: &mut Registry, changes: Vec<Change>) -> Result<()> {
        self.backend.commit(&changes)?;
        for change in &changes {
            if let Change::PutKey(record) = change {
                self.expiry.schedule(record.expires_at);
            }
        }
        for change in changes {
            registry.apply(change).expect("validated changes apply cleanly");
        }
        self.signals.bump();
        Ok(())
    }

    // ---- roles -------------------------------------------------------------

    pub fn put_role(&self, name: &str, rights: &[String]) -> Result<RoleView> {
        check_name("role name", name)?;
        let rights = normalise_list(rights, RuleUse::Rights)?;
        let mut registry = self.registry.write();
        self.commit(&mut registry, vec![Change::PutRole(RoleRecord { name: name.to_string(), rights })])?;
        Ok(view_role(registry.role(name).expect("role just stored")))
    }

    /// Deletes a role and takes it away from every user holding it.
    pub fn delete_role(&self, name: &str) -> Result<bool> {
        let mut registry = self.registry.write();
        if registry.role(name).is_none() {
            return Ok(false);
        }
        self.commit(&mut registry, vec![Change::DeleteRole(name.to_string())])?;
        Ok(true)
    }

    pub fn get_role(&self, name: &str) -> Option<RoleView> {
        self.registry.read().role(name).map(view_role)
    }

    /// All roles, by name.
    pub fn list_roles(&self) -> Vec<RoleView> {
        let mut roles: Vec<RoleView> = self.registry.read().roles().map(view_role).collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        roles
    }

    // ---- users -------------------------------------------------------------

    pub fn put_user(&self, input: &UserInput) -> Result<UserView> {
        check_name("user id", &input.id)?;
        let status = UserStatus::parse(input.status.as_deref().unwrap_or("active"))?;
        let rights = normalise_list(&input.rights, RuleUse::Rights)?;
        let mut registry = self.registry.write();
        let mut seen = HashSet::new();
        let mut roles = Vec::new();
        for role in &input.roles {
            if registry.role(role).is_none() {
                return Err(Error::new(ErrorCode::UnknownRole, format!("no role named {}", quote(role))));
            }
            if seen.insert(role.as_str()) {
                roles.push(role.clone());
            }
        }
        let record = UserRecord { id: input.id.clone(), status, rights, roles };
        self.commit(&mut registry, vec![Change::PutUser(record)])?;
        Ok(view_user(registry.user(&input.id).expect("user just stored")))
    }

    pub fn get_user(&self, id: &str) -> Option<UserView> {
        self.registry.read().user(id).map(view_user)
    }

    /// All users, by id.
    pub fn list_users(&self) -> Vec<UserView> {
        let mut users: Vec<UserView> = self.registry.read().users().map(view_user).collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        users
    }

    /// Deletes a user and all its keys; false when there was no such user.
    pub fn delete_user(&self, id: &str) -> Result<bool> {
        let mut registry = self.registry.write();
        if registry.user(id).is_none() {
            return Ok(false);
        }
        self.commit(&mut registry, vec![Change::DeleteUser(id.to_string())])?;
        Ok(true)
    }

    // ---- keys --------------------------------------------------------------

    fn check_expiry(&self, expires_at: Option<i64>, now: i64) -> Result<i64> {
        let Some(at) = expires_at else {
            return Err(Error::new(ErrorCode::ExpiryRequired, "expiresAt is required: every key must expire"));
        };
        if at <= now {
            return Err(Error::new(
                ErrorCode::ExpiryInPast,
                format!("expiresAt {} is not in the future (now is {})", iso(at), iso(now)),
            ));
        }
        if at - now > self.max_lifetime_ms {
            return Err(Error::new(
                ErrorCode::ExpiryTooFar,
                format!(
                    "expiresAt {} is more than {} days ahead (latest allowed: {})",
                    iso(at),
                    self.max_lifetime_ms / DAY_MS,
                    iso(now + self.max_lifetime_ms)
                ),
            ));
        }
        Ok(at)
    }

    fn new_key_id(registry: &Registry) -> Result<[u8; 16]> {
        loop {
            let mut id = [0u8; 16];
            secret::random_bytes(&mut id)?;
            if registry.key_by_id(&id).is_none() {
                return Ok(id);
            }
        }
    }

    /// Creates a key; the secret in the answer is never available again.
    pub fn create_key(&self, input: &NewKey) -> Result<Issued> {
        check_description(&input.description)?;
        let rules = normalise_list(&input.rules, RuleUse::KeyRules)?;
        let state = KeyState::parse(input.state.as_deref().unwrap_or("active"))?;
        if state == KeyState::Revoked {
            return Err(Error::new(ErrorCode::InvalidState, "a key cannot be created revoked"));
        }
        let mut registry = self.registry.write();
        if registry.user(&input.user_id).is_none() {
            return Err(Error::new(ErrorCode::UnknownUser, format!("no user with id {}", quote(&input.user_id))));
        }
        let now = self.clock.now();
        let expires_at = self.check_expiry(input.expires_at, now)?;
        let issued = secret::generate(&self.prefix)?;
        let id = Self::new_key_id(&registry)?;
        let record = KeyRecord {
            id,
            seq: registry.next_seq(),
            user_id: input.user_id.clone(),
            description: input.description.clone(),
            state,
            expires_at,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            hint: issued.hint,
            digest: issued.digest,
            rules,
        };
        self.commit(&mut registry, vec![Change::PutKey(record)])?;
        let key = view_key(registry.key_by_id(&id).expect("key just stored"));
        Ok(Issued { key, secret: issued.text })
    }

    pub fn get_key(&self, id: &str) -> Option<KeyView> {
        let id = parse_key_id(id)?;
        self.registry.read().key_by_id(&id).map(view_key)
    }

    /// Keys matching the filter, newest first.
    pub fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyView>> {
        let state = filter.state.as_deref().map(KeyState::parse).transpose()?;
        let registry = self.registry.read();
        let mut keys: Vec<&Key> = registry
            .keys()
            .filter(|k| filter.user_id.as_deref().is_none_or(|u| *k.user_id == *u))
            .filter(|k| state.is_none_or(|s| k.state == s))
            .collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.seq.cmp(&a.seq)));
        Ok(keys.into_iter().map(view_key).collect())
    }

    fn existing_record(registry: &Registry, id: &str) -> Result<KeyRecord> {
        let key = parse_key_id(id).and_then(|raw| registry.key_by_id(&raw)).ok_or_else(|| unknown_key(id))?;
        Ok(record_of(key))
    }

    pub fn update_key(&self, id: &str, patch: &KeyPatch) -> Result<KeyView> {
        let mut registry = self.registry.write();
        let mut record = Self::existing_record(&registry, id)?;
        if record.state == KeyState::Revoked {
            return Err(Error::new(ErrorCode::RevokedIsFinal, format!("key {id} is revoked and cannot be changed")));
        }
        let now = self.clock.now();
        if let Some(description) = &patch.description {
            check_description(description)?;
            record.description = description.clone();
        }
        if let Some(rules) = &patch.rules {
            record.rules = normalise_list(rules, RuleUse::KeyRules)?;
        }
        if let Some(expires_at) = patch.expires_at {
            record.expires_at = self.check_expiry(expires_at, now)?;
        }
        if patch.description.is_some() || patch.rules.is_some() || patch.expires_at.is_some() {
            record.updated_at = now;
            self.commit(&mut registry, vec![Change::PutKey(record.clone())])?;
        }
        Ok(view_key(registry.key_by_id(&record.id).expect("key exists")))
    }

    /// Moves a key between states: `active ⇄ suspended`, either → `revoked`, never back.
    pub fn set_state(&self, id: &str, state: &str) -> Result<KeyView> {
        let state = KeyState::parse(state)?;
        let mut registry = self.registry.write();
        let mut record = Self::existing_record(&registry, id)?;
        if record.state == KeyState::Revoked && state != KeyState::Revoked {
            return Err(Error::new(
                ErrorCode::RevokedIsFinal,
                format!("key {id} is revoked; revoked is final, it cannot become {}", state.as_str()),
            ));
        }
        if record.state != state {
            record.state = state;
            record.updated_at = self.clock.now();
            self.commit(&mut registry, vec![Change::PutKey(record.clone())])?;
        }
        Ok(view_key(registry.key_by_id(&record.id).expect("key exists")))
    }

    /// Issues a new key like `id` (same user, description, rules, expiry and
    /// state); the old key stays usable for `overlap_seconds`, or is revoked at once with 0.
    pub fn rotate_key(&self, id: &str, overlap_seconds: f64) -> Result<Issued> {
        if !(overlap_seconds.is_finite() && overlap_seconds >= 0.0 && overlap_seconds.fract() == 0.0) {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("overlapSeconds {overlap_seconds} must be a whole number of seconds, 0 or more"),
            ));
        }
        let mut registry = self.registry.write();
        let mut old = Self::existing_record(&registry, id)?;
        let now = self.clock.now();
        if old.state == KeyState::Revoked {
            return Err(Error::new(ErrorCode::RevokedIsFinal, format!("key {id} is revoked and cannot be rotated")));
        }
        if now >= old.expires_at {
            return Err(Error::new(
                ErrorCode::ExpiryInPast,
                format!("key {id} expired at {}; create a new key instead", iso(old.expires_at)),
            ));
        }
        let issued = secret::generate(&self.prefix)?;
        let new_id = Self::new_key_id(&registry)?;
        let new = KeyRecord {
            id: new_id,
            seq: registry.next_seq(),
            user_id: old.user_id.clone(),
            description: old.description.clone(),
            state: old.state,
            expires_at: old.expires_at,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            hint: issued.hint,
            digest: issued.digest,
            rules: old.rules.clone(),
        };
        if overlap_seconds == 0.0 {
            old.state = KeyState::Revoked;
        } else {
            let overlap_ms = (overlap_seconds * 1000.0).min(i64::MAX as f64 / 2.0) as i64;
            old.expires_at = old.expires_at.min(now.saturating_add(overlap_ms));
        }
        old.updated_at = now;
        self.commit(&mut registry, vec![Change::PutKey(new), Change::PutKey(old)])?;
        let key = view_key(registry.key_by_id(&new_id).expect("key just stored"));
        Ok(Issued { key, secret: issued.text })
    }

    /// Deletes a key; false when there was no such key.
    pub fn delete_key(&self, id: &str) -> Result<bool> {
        let mut registry = self.registry.write();
        let Some(raw) = parse_key_id(id).filter(|raw| registry.key_by_id(raw).is_some()) else {
            return Ok(false);
        };
        self.commit(&mut registry, vec![Change::DeleteKey(raw)])?;
        Ok(true)
    }

    // ---- the decision --------------------------------------------------------

    /// The hot path: decides a call and records the use of the key when allowed.
    pub fn check(&self, call: Call<'_>) -> Verdict {
        let registry = self.registry.read();
        let outcome = decide(&registry, &self.prefix, &self.clock, call);
        if let Some(key) = outcome.key {
            if outcome.allowed() {
                key.touch(self.clock.now());
            }
        }
        Verdict {
            reason: outcome.reason,
            known_key: outcome.key.is_some(),
            ip_dependent: outcome.key.is_some_and(|k| k.rules.has_ip_rules()),
        }
    }

    pub fn is_allowed(&self, call: Call<'_>) -> bool {
        self.check(call).reason == Reason::Allowed
    }

    /// The decision with its reason, the key and user it concerns and the first matching API rule.
    pub fn explain(&self, call: Call<'_>) -> Explanation {
        let registry = self.registry.read();
        let outcome = decide(&registry, &self.prefix, &self.clock, call);
        if let Some(key) = outcome.key {
            if outcome.allowed() {
                key.touch(self.clock.now());
            }
        }
        Explanation {
            reason: outcome.reason,
            key_id: outcome.key.map(Key::id_string),
            user_id: outcome.key.map(|k| k.user_id.to_string()),
            matched_rule: outcome.matched_rule.map(|r| r.text.to_string()),
        }
    }

    /// Records uses of keys seen by a cache of decisions: `at` for each secret that still names a key.
    pub fn touch(&self, secrets: &[(&[u8], i64)]) {
        let registry = self.registry.read();
        for (secret, at) in secrets {
            if let Some(key) = registry.key_by_digest(&secret::digest(secret)) {
                key.touch(*at);
            }
        }
    }

    /// Number of keys held.
    pub fn key_count(&self) -> usize {
        self.registry.read().key_count()
    }
}

/// Validates one rule: its normalised text, or `INVALID_RULE` naming what is wrong.
pub fn validate_rule(rule: &str) -> Result<String> {
    crate::rule::parse_rule(rule).map(|r| r.text())
}
