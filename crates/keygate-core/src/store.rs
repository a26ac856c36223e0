//! `KeyStore`: the public API of the core. Every admin call validates first,
//! then commits its changes to the backend, then applies them in memory — so a
//! call that fails changes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

use crate::audit::{describe, AuditEntry, AuditQuery, AuditReport};
use crate::backend::{Backend, Catchup, MemoryBackend};
use crate::clock::Clock;
use crate::decision::{authorize, decide, decide_unavailable, Call, Reason};
use crate::error::{quote, Error, ErrorCode, Result};
use crate::incident::Reporter;
pub use crate::incident::{Incident, OnError, Task};
use crate::memo::{ExpiryWatch, HintFilter, Signals, Verdict, MEMO_HORIZON_MS};
use crate::model::{check_actor, check_description, check_name, parse_key_id, Key, KeyState, Role, User, UserStatus};
use crate::registry::{record_of, Change, KeyRecord, Registry, RoleRecord, UserRecord};
use crate::rule::{normalise_list, RuleUse};
use crate::secret::{self, Prefix};

const DAY_MS: i64 = 86_400_000;
pub const DEFAULT_MAX_LIFETIME_DAYS: u32 = 730;
const MAX_LIFETIME_DAYS_LIMIT: u32 = 36_500;

#[derive(Clone, Default)]
pub struct Options {
    pub key_prefix: Option<String>,
    pub max_lifetime_days: Option<f64>,
    /// Freeze the clock at this instant (ms since the epoch).
    pub now: Option<i64>,
    /// Durable store: delete keys expired for longer than this (default 7 days).
    pub purge_expired_after_days: Option<f64>,
    /// Where background failures and recoveries go (default: standard error).
    pub on_error: Option<OnError>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("key_prefix", &self.key_prefix)
            .field("max_lifetime_days", &self.max_lifetime_days)
            .field("now", &self.now)
            .field("purge_expired_after_days", &self.purge_expired_after_days)
            .field("on_error", &self.on_error.as_ref().map(|_| "<handler>"))
            .finish()
    }
}

/// Who made an admin call, for the audit trail.
pub type Actor<'a> = Option<&'a str>;

/// The admin calls the audit trail names (an entry's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    PutRole,
    DeleteRole,
    PutUser,
    DeleteUser,
    CreateKey,
    UpdateKey,
    SetState,
    RotateKey,
    DeleteKey,
    /// The durable store deleting keys expired for longer than `purgeExpiredAfterDays`.
    PurgeExpired,
}

impl AuditAction {
    pub const ALL: [AuditAction; 10] = [
        AuditAction::PutRole,
        AuditAction::DeleteRole,
        AuditAction::PutUser,
        AuditAction::DeleteUser,
        AuditAction::CreateKey,
        AuditAction::UpdateKey,
        AuditAction::SetState,
        AuditAction::RotateKey,
        AuditAction::DeleteKey,
        AuditAction::PurgeExpired,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::PutRole => "putRole",
            AuditAction::DeleteRole => "deleteRole",
            AuditAction::PutUser => "putUser",
            AuditAction::DeleteUser => "deleteUser",
            AuditAction::CreateKey => "createKey",
            AuditAction::UpdateKey => "updateKey",
            AuditAction::SetState => "setState",
            AuditAction::RotateKey => "rotateKey",
            AuditAction::DeleteKey => "deleteKey",
            AuditAction::PurgeExpired => "purgeExpired",
        }
    }

    /// The action named `name`; `INVALID_ARGUMENT` for any other text.
    pub fn parse(name: &str) -> Result<AuditAction> {
        AuditAction::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
            .ok_or_else(|| Error::new(ErrorCode::InvalidArgument, format!("unknown audit action {}", quote(name))))
    }
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
    /// Precondition: the key's `updatedAt` must still be this, else `CONFLICT`.
    pub expected_updated_at: Option<i64>,
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

/// What a user may call: its own rights, those each of its roles gives, and their union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRights {
    pub own: Vec<String>,
    /// The user's roles that exist, in the user's order (a missing role gives nothing).
    pub by_role: Vec<RoleView>,
    /// Own rights then each role's, each text once, in order of first appearance.
    pub all: Vec<String>,
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

/// A store of users, roles and keys. Cheap to clone: clones share the store.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

/// The state every clone of a [`KeyStore`] shares, and the machinery behind its
/// API: writes, catch-up with other processes, recorded uses. Background threads
/// hold it weakly (`KeyStore::downgrade`), so that dropping the last handle ends them.
pub(crate) struct Inner {
    registry: RwLock<Registry>,
    prefix: Prefix,
    max_lifetime_ms: i64,
    clock: Arc<Clock>,
    signals: Arc<Signals>,
    hints: Arc<HintFilter>,
    expiry: ExpiryWatch,
    reporter: Arc<Reporter>,
    backend: Box<dyn Backend>,
    /// Keys used since the last flush of `lastUsedAt` (durable stores only).
    used: Mutex<Vec<[u8; 16]>>,
    durable: bool,
    closed: AtomicBool,
    /// The durable store's background thread, joined by `close`.
    maintenance: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// One admin call's write: holds the registry and the backend's write lock
/// from planning to commit; dropped uncommitted, it rolls back.
struct Tx<'s> {
    store: &'s Inner,
    registry: RwLockWriteGuard<'s, Registry>,
    action: AuditAction,
    actor: Actor<'s>,
    finished: bool,
}

impl Tx<'_> {
    /// Persists and applies the changes; the write ends either way.
    fn commit(&mut self, changes: Vec<Change>) -> Result<()> {
        let now = self.store.clock.now();
        let audit = changes.iter().flat_map(|c| describe(&self.registry, c, self.action.as_str(), self.actor, now)).collect();
        // Marked finished only once the backend has answered: a panic inside it
        // leaves `finished` false, so dropping the Tx rolls back and frees the write lock.
        let committed = self.store.backend.commit(&changes, audit);
        self.finished = true;
        committed?;
        self.store.apply(&mut self.registry, changes)
    }
}

impl Tx<'_> {
    /// Refuses texts holding the random part of a secret of this store, however
    /// mangled (see `secret::holds_known_secret`): they would go to the audit trail.
    fn refuse_known_secrets<'t>(&self, what: &str, texts: impl IntoIterator<Item = &'t str>, code: ErrorCode) -> Result<()> {
        let registry = &self.registry;
        for text in texts {
            if secret::holds_known_secret(text.as_bytes(), &self.store.prefix, |d| registry.key_by_digest(d).is_some()) {
                return Err(Error::new(
                    code,
                    format!("{what} contains (part of) a secret of this store; a secret must never be written where the audit trail would keep it"),
                ));
            }
        }
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.store.backend.rollback();
        }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.registry
    }
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

fn iso(ms: i64) -> String {
    crate::time::iso8601(ms)
}

/// A defect inside keygate, reported instead of a crash.
fn internal(what: &str) -> Error {
    Error::new(ErrorCode::Internal, format!("internal error: {what}"))
}

/// A row another process wrote that this one cannot apply.
fn unloadable(error: Error) -> Error {
    Error::new(ErrorCode::StoreCorrupt, format!("a change written by another process cannot be applied: {}", error.message))
}

impl KeyStore {
    /// A store with no durable backend.
    pub fn in_memory(options: Options) -> Result<KeyStore> {
        let prefix = match &options.key_prefix {
            Some(p) => Prefix::new(p)?,
            None => Prefix::default(),
        };
        KeyStore::with_backend(&options, prefix, Registry::default(), Box::new(MemoryBackend::default()))
    }

    /// A store over `registry` (already loaded) whose changes go to `backend`.
    pub(crate) fn with_backend(options: &Options, prefix: Prefix, registry: Registry, backend: Box<dyn Backend>) -> Result<KeyStore> {
        let days = options.max_lifetime_days.unwrap_or(DEFAULT_MAX_LIFETIME_DAYS as f64);
        check_lifetime_days(days)?;
        let clock = Arc::new(Clock::new(options.now));
        let signals = Arc::new(Signals::default());
        let reporter = Arc::new(Reporter::new(options.on_error.clone()));
        let expiry = ExpiryWatch::new(signals.clone(), clock.clone(), reporter.clone());
        for key in registry.keys() {
            expiry.schedule(key.expires_at);
        }
        let durable = backend.is_durable();
        let hints = Arc::new(HintFilter::default());
        let mut registry = registry;
        registry.attach_hints(hints.clone());
        Ok(KeyStore {
            inner: Arc::new(Inner {
                registry: RwLock::new(registry),
                prefix,
                max_lifetime_ms: days as i64 * DAY_MS,
                clock,
                signals,
                hints,
                expiry,
                reporter,
                backend,
                used: Mutex::new(Vec::new()),
                durable,
                closed: AtomicBool::new(false),
                maintenance: Mutex::new(None),
            }),
        })
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn set_maintenance(&self, handle: std::thread::JoinHandle<()>) {
        *self.inner.maintenance.lock() = Some(handle);
    }

    /// Deletes keys expired for longer than `after_ms` (see `Inner::purge_expired`).
    pub(crate) fn purge_expired(&self, after_ms: i64) -> Result<usize> {
        self.inner.purge_expired(after_ms)
    }
}

impl Inner {
    pub(crate) fn is_current(&self) -> bool {
        !self.signals.is_raised(Signals::STORE_UNAVAILABLE)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorCode::StoreIo, "the store is closed"));
        }
        Ok(())
    }

    /// Starts an admin call's write, up to date with other processes' changes.
    fn write<'s>(&'s self, action: AuditAction, actor: Actor<'s>) -> Result<Tx<'s>> {
        self.check_open()?;
        if let Some(actor) = actor {
            check_actor(actor)?;
        }
        let mut registry = self.registry.write();
        self.backend.begin()?;
        match self.sync(&mut registry, || self.backend.changes()) {
            Ok(recovered) => {
                if recovered {
                    self.reporter.recover(Task::Sync);
                }
                let tx = Tx { store: self, registry, action, actor, finished: false };
                tx.refuse_known_secrets("actor", actor, ErrorCode::InvalidArgument)?;
                Ok(tx)
            }
            Err(error) => {
                self.backend.rollback();
                drop(registry);
                self.reporter.fail(Task::Sync, error.clone());
                Err(error)
            }
        }
    }

    /// Applies changes already made durable, and tells the memo.
    fn apply(&self, registry: &mut Registry, changes: Vec<Change>) -> Result<()> {
        for change in &changes {
            if let Change::PutKey(record) = change {
                self.expiry.schedule(record.expires_at);
            }
        }
        let mut applied = Ok(());
        for change in changes {
            if let Err(error) = registry.apply(change) {
                applied = Err(error);
                break;
            }
        }
        self.signals.bump();
        applied.map_err(|error| {
            // Validated changes always apply: memory no longer matches what was stored.
            let error = internal(&format!("a stored change could not be applied in memory ({})", error.message));
            if self.durable {
                self.lose_sync();
                self.reporter.fail(Task::Sync, error.clone());
            }
            error
        })
    }

    /// Fails closed: checks answer `store_unavailable` (the memo is off) and the
    /// next catch-up reads the whole state afresh.
    fn lose_sync(&self) {
        self.backend.resync();
        self.signals.raise(Signals::STORE_UNAVAILABLE);
    }

    /// Brings `registry` (held for writing) up to what other processes changed,
    /// as `fetch` reports it. A change that cannot be read or applied makes it read
    /// everything afresh at once; if that fails too, the store fails closed until
    /// a later catch-up succeeds. Returns true when this ends such a failure.
    fn sync(&self, registry: &mut Registry, fetch: impl Fn() -> Result<Catchup>) -> Result<bool> {
        let mut result = fetch().and_then(|catchup| self.catch_up(registry, catchup));
        // A first failure: read everything afresh at once (while failing already, the
        // attempt above was such a reading).
        if result.is_err() && self.is_current() {
            self.backend.resync();
            result = fetch().and_then(|catchup| self.catch_up(registry, catchup));
        }
        match result {
            Ok(()) => Ok(self.signals.lower(Signals::STORE_UNAVAILABLE)),
            Err(error) => {
                self.lose_sync();
                Err(error)
            }
        }
    }

    /// Applies what other processes changed. Rows another process wrote were
    /// validated there; the only one that may legitimately not apply is a key
    /// whose user a later change in the same batch deletes. Anything else is a
    /// row this process cannot load: an error (the caller fails closed).
    fn catch_up(&self, registry: &mut Registry, catchup: Catchup) -> Result<()> {
        match catchup {
            Catchup::Nothing => Ok(()),
            Catchup::Changes(changes) => {
                let mut deleted_at: HashMap<String, usize> = HashMap::new();
                for (i, change) in changes.iter().enumerate() {
                    if let Change::DeleteUser(id) = change {
                        deleted_at.insert(id.clone(), i);
                    }
                }
                let mut result = Ok(());
                for (i, change) in changes.into_iter().enumerate() {
                    let orphan = match &change {
                        Change::PutKey(record) => {
                            self.expiry.schedule(record.expires_at);
                            registry.user(&record.user_id).is_none().then(|| record.user_id.clone())
                        }
                        _ => None,
                    };
                    if let Err(error) = registry.apply(change) {
                        let deleted_later = orphan.and_then(|user| deleted_at.get(&user).copied()).is_some_and(|at| at > i);
                        if !deleted_later {
                            result = Err(unloadable(error));
                            break;
                        }
                    }
                }
                self.signals.bump();
                result
            }
            Catchup::Reload(mut fresh) => {
                fresh.attach_hints(self.hints.clone());
                *registry = *fresh;
                for key in registry.keys() {
                    self.expiry.schedule(key.expires_at);
                }
                self.signals.bump();
                Ok(())
            }
        }
    }

    /// Watcher: picks up other processes' changes, if any; reports a failure
    /// (once per episode) and the recovery that ends it.
    pub(crate) fn poll(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut registry = self.registry.write();
        let result = self.sync(&mut registry, || self.backend.poll());
        drop(registry);
        match result {
            Ok(recovered) => {
                if recovered {
                    self.reporter.recover(Task::Sync);
                }
                Ok(())
            }
            Err(error) => {
                self.reporter.fail(Task::Sync, error.clone());
                Err(error)
            }
        }
    }

    /// The watcher cannot tell whether other processes changed the store (it
    /// cannot read it, or it failed): fail closed until a later `poll` succeeds.
    pub(crate) fn sync_failed(&self, error: Error) {
        {
            let _registry = self.registry.write();
            self.lose_sync();
        }
        self.reporter.fail(Task::Sync, error);
    }

    /// Reports the outcome of a background task other than sync: once per failure episode.
    pub(crate) fn report(&self, task: Task, outcome: &Result<()>) {
        match outcome {
            Ok(()) => self.reporter.recover(task),
            Err(error) => self.reporter.fail(task, error.clone()),
        }
    }

    /// Writes `lastUsedAt` of keys used since the last flush (durable stores).
    /// Uses that could not be written are kept for the next flush.
    pub(crate) fn flush_uses(&self) -> Result<()> {
        let ids = std::mem::take(&mut *self.used.lock());
        if ids.is_empty() {
            return Ok(());
        }
        let uses: Vec<([u8; 16], i64)> = {
            let registry = self.registry.read();
            ids.iter()
                .filter_map(|id| registry.key_by_id(id))
                .filter_map(|k| {
                    k.clear_dirty();
                    k.last_used_at().map(|at| (k.id, at))
                })
                .collect()
        };
        // Written without holding the keys: checks never wait on this I/O.
        let written = self.backend.flush_uses(&uses);
        if written.is_err() {
            let registry = self.registry.read();
            let mut used = self.used.lock();
            for (id, at) in &uses {
                if let Some(key) = registry.key_by_id(id) {
                    if key.touch(*at) {
                        used.push(key.id);
                    }
                }
            }
        }
        written
    }

    /// Brings `lastUsedAt` in memory up to what other processes flushed.
    fn refresh_uses(&self, id: Option<&[u8; 16]>) {
        if !self.durable {
            return;
        }
        let registry = self.registry.read();
        if let Ok(stored) = self.backend.stored_uses(id) {
            for (id, at) in stored {
                if let Some(key) = registry.key_by_id(&id) {
                    key.touch(at);
                }
            }
        }
    }

    fn record_use(&self, key: &Key, at: i64) {
        if key.touch(at) && self.durable {
            self.used.lock().push(key.id);
        }
    }

    /// Deletes keys expired for longer than `after_ms` (audited as `purgeExpired`).
    pub(crate) fn purge_expired(&self, after_ms: i64) -> Result<usize> {
        let mut tx = self.write(AuditAction::PurgeExpired, None)?;
        let cutoff = self.clock.now().saturating_sub(after_ms);
        let doomed: Vec<Change> = tx.keys().filter(|k| k.expires_at < cutoff).map(|k| Change::DeleteKey(k.id)).collect();
        let count = doomed.len();
        if count > 0 {
            tx.commit(doomed)?;
        }
        Ok(count)
    }

    // ---- keys --------------------------------------------------------------

    fn check_expiry(&self, expires_at: Option<i64>, now: i64) -> Result<i64> {
        let Some(at) = expires_at else {
            return Err(Error::new(ErrorCode::ExpiryRequired, "expiresAt is required: every key must expire"));
        };
        if at <= now {
            return Err(Error::new(ErrorCode::ExpiryInPast, format!("expiresAt {} is not in the future (now is {})", iso(at), iso(now))));
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
}

impl KeyStore {
    pub fn signals(&self) -> Arc<Signals> {
        self.inner.signals.clone()
    }

    /// The bitset of all keys' hints (see `memo::hints`).
    pub fn hints(&self) -> Arc<HintFilter> {
        self.inner.hints.clone()
    }

    pub fn key_prefix(&self) -> &str {
        self.inner.prefix.as_str()
    }

    /// The longest lifetime a key may be given, in days.
    pub fn max_lifetime_days(&self) -> u32 {
        (self.inner.max_lifetime_ms / DAY_MS) as u32
    }

    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Freezes the clock at `at`, or returns to the system clock.
    pub fn set_now(&self, at: Option<i64>) {
        self.inner.clock.set(at);
        self.inner.signals.bump();
        self.inner.expiry.clock_changed();
    }

    /// Whether the store can vouch that its state is current. Only a store
    /// shared with other processes can lose that (see `Inner::sync`).
    pub fn is_current(&self) -> bool {
        self.inner.is_current()
    }

    /// Flushes and releases the store; later calls fail with `STORE_IO`.
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let flushed = self.inner.flush_uses();
        self.inner.closed.store(true, Ordering::Release);
        self.inner.expiry.stop();
        // The background thread stops (closing its own connection) before the
        // last connection closes, so SQLite can fold the WAL into the file.
        let maintenance = self.inner.maintenance.lock().take();
        if let Some(handle) = maintenance {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        let _registry = self.inner.registry.write();
        self.inner.backend.close();
        flushed
    }

    /// Writes a consistent copy of the durable store to a new file.
    pub fn backup(&self, to: &str) -> Result<()> {
        self.inner.check_open()?;
        self.inner.backend.backup(std::path::Path::new(to))
    }

    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The audit trail, newest first.
    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.inner.check_open()?;
        self.inner.backend.audit(query)
    }

    /// Checks the audit trail's hash chain; reports the first altered or missing entry.
    pub fn verify_audit(&self) -> Result<AuditReport> {
        self.inner.check_open()?;
        self.inner.backend.verify_audit()
    }

    // ---- roles -------------------------------------------------------------

    pub fn put_role(&self, name: &str, rights: &[String], actor: Actor) -> Result<RoleView> {
        check_name("role name", name)?;
        let rights = normalise_list(rights, RuleUse::Rights)?;
        let mut tx = self.inner.write(AuditAction::PutRole, actor)?;
        tx.refuse_known_secrets("role name", [name], ErrorCode::InvalidArgument)?;
        tx.refuse_known_secrets("a right", rights.iter().map(String::as_str), ErrorCode::InvalidRule)?;
        tx.commit(vec![Change::PutRole(RoleRecord { name: name.to_string(), rights })])?;
        Ok(view_role(tx.role(name).ok_or_else(|| internal("the role just stored is missing"))?))
    }

    /// Deletes a role and takes it away from every user holding it.
    pub fn delete_role(&self, name: &str, actor: Actor) -> Result<bool> {
        let mut tx = self.inner.write(AuditAction::DeleteRole, actor)?;
        if tx.role(name).is_none() {
            return Ok(false);
        }
        tx.commit(vec![Change::DeleteRole(name.to_string())])?;
        Ok(true)
    }

    pub fn get_role(&self, name: &str) -> Result<Option<RoleView>> {
        self.inner.check_open()?;
        Ok(self.inner.registry.read().role(name).map(view_role))
    }

    /// All roles, by name.
    pub fn list_roles(&self) -> Result<Vec<RoleView>> {
        self.inner.check_open()?;
        let mut roles: Vec<RoleView> = self.inner.registry.read().roles().map(view_role).collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(roles)
    }

    // ---- users -------------------------------------------------------------

    pub fn put_user(&self, input: &UserInput, actor: Actor) -> Result<UserView> {
        check_name("user id", &input.id)?;
        let status = UserStatus::parse(input.status.as_deref().unwrap_or("active"))?;
        let rights = normalise_list(&input.rights, RuleUse::Rights)?;
        let mut tx = self.inner.write(AuditAction::PutUser, actor)?;
        tx.refuse_known_secrets("user id", [input.id.as_str()], ErrorCode::InvalidArgument)?;
        tx.refuse_known_secrets("a right", rights.iter().map(String::as_str), ErrorCode::InvalidRule)?;
        let mut seen = HashSet::new();
        let mut roles = Vec::new();
        for role in &input.roles {
            if tx.role(role).is_none() {
                return Err(Error::new(ErrorCode::UnknownRole, format!("no role named {}", quote(role))));
            }
            if seen.insert(role.as_str()) {
                roles.push(role.clone());
            }
        }
        let record = UserRecord { id: input.id.clone(), status, rights, roles };
        tx.commit(vec![Change::PutUser(record)])?;
        Ok(view_user(tx.user(&input.id).ok_or_else(|| internal("the user just stored is missing"))?))
    }

    pub fn get_user(&self, id: &str) -> Result<Option<UserView>> {
        self.inner.check_open()?;
        Ok(self.inner.registry.read().user(id).map(view_user))
    }

    /// The rights the decision grants the user (step 7), or `None` when there is no such user.
    pub fn effective_rights(&self, user_id: &str) -> Result<Option<EffectiveRights>> {
        self.inner.check_open()?;
        let registry = self.inner.registry.read();
        let Some(user) = registry.user(user_id) else { return Ok(None) };
        let own = user.rights.texts();
        let by_role: Vec<RoleView> = user.roles.iter().filter_map(|name| registry.role(name)).map(view_role).collect();
        let mut seen = HashSet::new();
        let all = own.iter().chain(by_role.iter().flat_map(|role| &role.rights)).filter(|right| seen.insert(*right)).cloned().collect();
        Ok(Some(EffectiveRights { own, by_role, all }))
    }

    /// All users, by id.
    pub fn list_users(&self) -> Result<Vec<UserView>> {
        self.inner.check_open()?;
        let mut users: Vec<UserView> = self.inner.registry.read().users().map(view_user).collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(users)
    }

    /// Deletes a user and all its keys; false when there was no such user.
    pub fn delete_user(&self, id: &str, actor: Actor) -> Result<bool> {
        let mut tx = self.inner.write(AuditAction::DeleteUser, actor)?;
        if tx.user(id).is_none() {
            return Ok(false);
        }
        tx.commit(vec![Change::DeleteUser(id.to_string())])?;
        Ok(true)
    }

    /// Creates a key; the secret in the answer is never available again.
    pub fn create_key(&self, input: &NewKey, actor: Actor) -> Result<Issued> {
        check_description(&input.description)?;
        let rules = normalise_list(&input.rules, RuleUse::KeyRules)?;
        let state = KeyState::parse(input.state.as_deref().unwrap_or("active"))?;
        if state == KeyState::Revoked {
            return Err(Error::new(ErrorCode::InvalidState, "a key cannot be created revoked"));
        }
        let mut tx = self.inner.write(AuditAction::CreateKey, actor)?;
        tx.refuse_known_secrets("description", [input.description.as_str()], ErrorCode::InvalidArgument)?;
        tx.refuse_known_secrets("a rule", rules.iter().map(String::as_str), ErrorCode::InvalidRule)?;
        if tx.user(&input.user_id).is_none() {
            return Err(Error::new(ErrorCode::UnknownUser, format!("no user with id {}", quote(&input.user_id))));
        }
        let now = self.inner.clock.now();
        let expires_at = self.inner.check_expiry(input.expires_at, now)?;
        let issued = secret::generate(&self.inner.prefix)?;
        let id = new_key_id(&tx)?;
        let record = KeyRecord {
            id,
            seq: tx.next_seq(),
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
        tx.commit(vec![Change::PutKey(record)])?;
        let key = view_key(tx.key_by_id(&id).ok_or_else(|| internal("the key just stored is missing"))?);
        Ok(Issued { key, secret: issued.text })
    }

    pub fn get_key(&self, id: &str) -> Result<Option<KeyView>> {
        self.inner.check_open()?;
        let Some(id) = parse_key_id(id) else { return Ok(None) };
        self.inner.refresh_uses(Some(&id));
        Ok(self.inner.registry.read().key_by_id(&id).map(view_key))
    }

    /// Keys matching the filter, newest first.
    pub fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyView>> {
        self.inner.check_open()?;
        let state = filter.state.as_deref().map(KeyState::parse).transpose()?;
        self.inner.refresh_uses(None);
        let registry = self.inner.registry.read();
        let mut keys: Vec<&Key> = registry
            .keys()
            .filter(|k| filter.user_id.as_deref().is_none_or(|u| *k.user_id == *u))
            .filter(|k| state.is_none_or(|s| k.state == s))
            .collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.seq.cmp(&a.seq)));
        Ok(keys.into_iter().map(view_key).collect())
    }

    pub fn update_key(&self, id: &str, patch: &KeyPatch, actor: Actor) -> Result<KeyView> {
        let mut tx = self.inner.write(AuditAction::UpdateKey, actor)?;
        let mut record = existing_record(&tx, id)?;
        check_unchanged(&record, id, patch.expected_updated_at)?;
        if record.state == KeyState::Revoked {
            return Err(Error::new(ErrorCode::RevokedIsFinal, format!("key {id} is revoked and cannot be changed")));
        }
        let now = self.inner.clock.now();
        if let Some(description) = &patch.description {
            check_description(description)?;
            tx.refuse_known_secrets("description", [description.as_str()], ErrorCode::InvalidArgument)?;
            record.description = description.clone();
        }
        if let Some(rules) = &patch.rules {
            let rules = normalise_list(rules, RuleUse::KeyRules)?;
            tx.refuse_known_secrets("a rule", rules.iter().map(String::as_str), ErrorCode::InvalidRule)?;
            record.rules = rules;
        }
        if let Some(expires_at) = patch.expires_at {
            record.expires_at = self.inner.check_expiry(expires_at, now)?;
        }
        if patch.description.is_some() || patch.rules.is_some() || patch.expires_at.is_some() {
            record.updated_at = now;
            tx.commit(vec![Change::PutKey(record.clone())])?;
        }
        Ok(view_key(tx.key_by_id(&record.id).ok_or_else(|| internal("the key just changed is missing"))?))
    }

    /// Moves a key between states: `active ⇄ suspended`, either → `revoked`, never back.
    pub fn set_state(&self, id: &str, state: &str, actor: Actor) -> Result<KeyView> {
        self.set_state_if(id, state, None, actor)
    }

    /// `set_state` when the key's `updated_at` is still `expected_updated_at` (if given), else `CONFLICT`.
    pub fn set_state_if(&self, id: &str, state: &str, expected_updated_at: Option<i64>, actor: Actor) -> Result<KeyView> {
        let state = KeyState::parse(state)?;
        let mut tx = self.inner.write(AuditAction::SetState, actor)?;
        let mut record = existing_record(&tx, id)?;
        check_unchanged(&record, id, expected_updated_at)?;
        if record.state == KeyState::Revoked && state != KeyState::Revoked {
            return Err(Error::new(
                ErrorCode::RevokedIsFinal,
                format!("key {id} is revoked; revoked is final, it cannot become {}", state.as_str()),
            ));
        }
        if record.state != state {
            record.state = state;
            record.updated_at = self.inner.clock.now();
            tx.commit(vec![Change::PutKey(record.clone())])?;
        }
        Ok(view_key(tx.key_by_id(&record.id).ok_or_else(|| internal("the key just changed is missing"))?))
    }

    /// Issues a new key like `id` (same user, description, rules, expiry and
    /// state); the old key stays usable for `overlap_seconds`, or is revoked at once with 0.
    pub fn rotate_key(&self, id: &str, overlap_seconds: f64, actor: Actor) -> Result<Issued> {
        self.rotate_key_if(id, overlap_seconds, None, actor)
    }

    /// `rotate_key` when the key's `updated_at` is still `expected_updated_at` (if given), else `CONFLICT`.
    pub fn rotate_key_if(&self, id: &str, overlap_seconds: f64, expected_updated_at: Option<i64>, actor: Actor) -> Result<Issued> {
        if !(overlap_seconds.is_finite() && overlap_seconds >= 0.0 && overlap_seconds.fract() == 0.0) {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("overlapSeconds {overlap_seconds} must be a whole number of seconds, 0 or more"),
            ));
        }
        let mut tx = self.inner.write(AuditAction::RotateKey, actor)?;
        let mut old = existing_record(&tx, id)?;
        check_unchanged(&old, id, expected_updated_at)?;
        let now = self.inner.clock.now();
        if old.state == KeyState::Revoked {
            return Err(Error::new(ErrorCode::RevokedIsFinal, format!("key {id} is revoked and cannot be rotated")));
        }
        if now >= old.expires_at {
            return Err(Error::new(
                ErrorCode::ExpiryInPast,
                format!("key {id} expired at {}; create a new key instead", iso(old.expires_at)),
            ));
        }
        let issued = secret::generate(&self.inner.prefix)?;
        let new_id = new_key_id(&tx)?;
        let new = KeyRecord {
            id: new_id,
            seq: tx.next_seq(),
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
        tx.commit(vec![Change::PutKey(new), Change::PutKey(old)])?;
        let key = view_key(tx.key_by_id(&new_id).ok_or_else(|| internal("the key just stored is missing"))?);
        Ok(Issued { key, secret: issued.text })
    }

    /// Deletes a key; false when there was no such key.
    pub fn delete_key(&self, id: &str, actor: Actor) -> Result<bool> {
        let mut tx = self.inner.write(AuditAction::DeleteKey, actor)?;
        let Some(raw) = parse_key_id(id).filter(|raw| tx.key_by_id(raw).is_some()) else {
            return Ok(false);
        };
        tx.commit(vec![Change::DeleteKey(raw)])?;
        Ok(true)
    }

    // ---- the decision --------------------------------------------------------

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
            key_id: outcome.key.map(Key::id_string),
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
        let Some(key) = parse_key_id(key_id).and_then(|raw| registry.key_by_id(&raw)) else {
            return unexplained(Reason::UnknownKey);
        };
        let outcome = authorize(&registry, key, &self.inner.clock, call);
        Explanation {
            reason: outcome.reason,
            key_id: Some(key.id_string()),
            user_id: Some(key.user_id.to_string()),
            matched_rule: outcome.matched_rule.map(|r| r.text.to_string()),
        }
    }

    /// Records uses of keys answered by the JavaScript memo: `at` for each secret that still names a key.
    pub fn touch(&self, secrets: &[(&[u8], i64)]) {
        let registry = self.inner.registry.read();
        for (secret, at) in secrets {
            if let Some(key) = registry.key_by_digest(&secret::digest(secret)) {
                if key.touch(*at) && self.inner.durable {
                    self.inner.used.lock().push(key.id);
                }
            }
        }
    }

    /// Number of keys held.
    pub fn key_count(&self) -> usize {
        self.inner.registry.read().key_count()
    }
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

fn existing_record(registry: &Registry, id: &str) -> Result<KeyRecord> {
    let key = parse_key_id(id).and_then(|raw| registry.key_by_id(&raw)).ok_or_else(|| unknown_key(id))?;
    Ok(record_of(key))
}

/// Refuses with `CONFLICT` a change made from a view of the key older than its
/// current `updated_at`; checked inside the write transaction, so no other change
/// can come between the check and the write.
fn check_unchanged(record: &KeyRecord, id: &str, expected_updated_at: Option<i64>) -> Result<()> {
    match expected_updated_at {
        Some(expected) if expected != record.updated_at => Err(Error::new(
            ErrorCode::Conflict,
            format!(
                "key {id} was changed elsewhere at {}, after the updatedAt given ({}); read it again and retry",
                iso(record.updated_at),
                iso(expected)
            ),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn check_lifetime_days(days: f64) -> Result<()> {
    if !(days.is_finite() && days.fract() == 0.0 && days >= 1.0 && days <= MAX_LIFETIME_DAYS_LIMIT as f64) {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("maxLifetimeDays {days} must be a whole number from 1 to {MAX_LIFETIME_DAYS_LIMIT}"),
        ));
    }
    Ok(())
}

/// Validates one rule: its normalised text, or `INVALID_RULE` naming what is wrong.
pub fn validate_rule(rule: &str) -> Result<String> {
    crate::rule::validate_rule(rule)
}
