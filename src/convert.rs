//! DTOs that cross to JavaScript, and their conversions from and to the core;
//! and the names JavaScript shares with the core (string enums: `lib/` reads
//! the lists from them, `index.d.ts` its types).

use keygate_core::{
    AuditEntry, AuditReport, Error, Explanation, Issued, KeyCounts, KeyFilter, KeyPage, KeyPageQuery, KeyStore, KeyView, RoleView, UserView,
};
use napi_derive::napi;

/// Why a call was allowed or denied; declared in the order of the reason codes
/// of `check`'s packed verdict (a build-time check), so the values in order are the codes' names.
#[napi(string_enum = "snake_case")]
pub enum Reason {
    Allowed,
    MalformedKey,
    UnknownKey,
    InvalidRequest,
    Suspended,
    Revoked,
    Expired,
    UserInactive,
    UserLacksRight,
    NoMatchingRule,
    IpNotAllowed,
    /// A store shared with other processes that cannot vouch it is current (it could not
    /// read or apply another process's change, or its background thread failed): checked
    /// right after `malformed_key`, it denies every well-formed secret until the store has
    /// caught up again. Never given by an in-memory store.
    StoreUnavailable,
}

impl Reason {
    const fn of(reason: keygate_core::Reason) -> Reason {
        use keygate_core::Reason as R;
        match reason {
            R::Allowed => Reason::Allowed,
            R::MalformedKey => Reason::MalformedKey,
            R::UnknownKey => Reason::UnknownKey,
            R::InvalidRequest => Reason::InvalidRequest,
            R::Suspended => Reason::Suspended,
            R::Revoked => Reason::Revoked,
            R::Expired => Reason::Expired,
            R::UserInactive => Reason::UserInactive,
            R::UserLacksRight => Reason::UserLacksRight,
            R::NoMatchingRule => Reason::NoMatchingRule,
            R::IpNotAllowed => Reason::IpNotAllowed,
            R::StoreUnavailable => Reason::StoreUnavailable,
        }
    }
}

// Each name stands at its code's position.
const _: () = {
    let mut i = 0;
    while i < keygate_core::Reason::ALL.len() {
        let reason = keygate_core::Reason::ALL[i];
        assert!(Reason::of(reason) as u32 == reason as u32 && i == reason as usize);
        i += 1;
    }
};

/// The stable, documented error codes, in its order: a `KeygateError`'s `code`.
#[napi(string_enum = "UPPER_SNAKE")]
pub enum ErrorCode {
    InvalidArgument,
    InvalidRule,
    ExpiryRequired,
    ExpiryInPast,
    ExpiryTooFar,
    UnknownUser,
    UnknownRole,
    UnknownKey,
    InvalidState,
    RevokedIsFinal,
    Conflict,
    StoreIo,
    StoreCorrupt,
    StoreLocked,
    /// A shared store (PostgreSQL) that cannot be reached within its timeout.
    StoreUnavailable,
    /// A defect inside keygate, reported instead of a crash: the process never aborts.
    Internal,
}

/// Every core code has its name here (an exhaustive match: a new code fails to build until named).
pub const fn error_code_of(code: keygate_core::ErrorCode) -> ErrorCode {
    use keygate_core::ErrorCode as C;
    match code {
        C::InvalidArgument => ErrorCode::InvalidArgument,
        C::InvalidRule => ErrorCode::InvalidRule,
        C::ExpiryRequired => ErrorCode::ExpiryRequired,
        C::ExpiryInPast => ErrorCode::ExpiryInPast,
        C::ExpiryTooFar => ErrorCode::ExpiryTooFar,
        C::UnknownUser => ErrorCode::UnknownUser,
        C::UnknownRole => ErrorCode::UnknownRole,
        C::UnknownKey => ErrorCode::UnknownKey,
        C::InvalidState => ErrorCode::InvalidState,
        C::RevokedIsFinal => ErrorCode::RevokedIsFinal,
        C::Conflict => ErrorCode::Conflict,
        C::StoreIo => ErrorCode::StoreIo,
        C::StoreCorrupt => ErrorCode::StoreCorrupt,
        C::StoreLocked => ErrorCode::StoreLocked,
        C::StoreUnavailable => ErrorCode::StoreUnavailable,
        C::Internal => ErrorCode::Internal,
    }
}

/// A key's state: `active ⇄ suspended`, either → `revoked` (final).
#[napi(string_enum = "lowercase")]
pub enum KeyState {
    Active,
    Suspended,
    Revoked,
}

// Exhaustive: a new core state fails to build until named here.
const _: fn(keygate_core::KeyState) -> KeyState = key_state_of;
const fn key_state_of(state: keygate_core::KeyState) -> KeyState {
    match state {
        keygate_core::KeyState::Active => KeyState::Active,
        keygate_core::KeyState::Suspended => KeyState::Suspended,
        keygate_core::KeyState::Revoked => KeyState::Revoked,
    }
}

/// A user's status; only `active` users' keys can be allowed.
#[napi(string_enum = "lowercase")]
pub enum UserStatus {
    Active,
    Suspended,
    Archived,
}

// Exhaustive: a new core status fails to build until named here.
const _: fn(keygate_core::UserStatus) -> UserStatus = user_status_of;
const fn user_status_of(status: keygate_core::UserStatus) -> UserStatus {
    match status {
        keygate_core::UserStatus::Active => UserStatus::Active,
        keygate_core::UserStatus::Suspended => UserStatus::Suspended,
        keygate_core::UserStatus::Archived => UserStatus::Archived,
    }
}

/// The admin calls the audit trail names (an entry's `action`), in the core's order.
#[napi(string_enum = "camelCase")]
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
    PurgeExpired,
}

const fn audit_action_of(action: keygate_core::AuditAction) -> AuditAction {
    use keygate_core::AuditAction as A;
    match action {
        A::PutRole => AuditAction::PutRole,
        A::DeleteRole => AuditAction::DeleteRole,
        A::PutUser => AuditAction::PutUser,
        A::DeleteUser => AuditAction::DeleteUser,
        A::CreateKey => AuditAction::CreateKey,
        A::UpdateKey => AuditAction::UpdateKey,
        A::SetState => AuditAction::SetState,
        A::RotateKey => AuditAction::RotateKey,
        A::DeleteKey => AuditAction::DeleteKey,
        A::PurgeExpired => AuditAction::PurgeExpired,
    }
}

// Declared in the core's order.
const _: () = {
    let mut i = 0;
    while i < keygate_core::AuditAction::ALL.len() {
        assert!(audit_action_of(keygate_core::AuditAction::ALL[i]) as usize == i);
        i += 1;
    }
};

/// Every core error becomes a JS error whose `code` is the stable keygate code;
/// `lib/errors.js` (`fromNative`) turns it into a `KeygateError`.
pub fn js_error(error: Error) -> napi::Error<String> {
    napi::Error::new(error.code.as_str().to_string(), error.message)
}

/// [`js_error`] for the errors of calls on `store` (`.map_err(js_store_error(store))`): a message
/// withheld if it would quote (part of) one of the store's secrets (see `KeyStore::scrub_error`).
pub fn js_store_error(store: &KeyStore) -> impl Fn(Error) -> napi::Error<String> + '_ {
    move |error| js_error(store.scrub_error(error))
}

#[napi(object)]
pub struct StoreOptionsDto {
    pub key_prefix: Option<String>,
    pub max_lifetime_days: Option<f64>,
    pub now: Option<f64>,
    pub purge_expired_after_days: Option<f64>,
    pub fail_closed_after_ms: Option<f64>,
    pub connect_timeout_ms: Option<f64>,
    pub statement_timeout_ms: Option<f64>,
    pub create: Option<bool>,
}

#[napi(object)]
pub struct UserDto {
    pub id: String,
    pub status: String,
    pub rights: Vec<String>,
    pub roles: Vec<String>,
}

impl From<UserView> for UserDto {
    fn from(user: UserView) -> Self {
        UserDto { id: user.id, status: user.status.to_string(), rights: user.rights, roles: user.roles }
    }
}

#[napi(object)]
pub struct UserInputDto {
    pub id: String,
    pub status: Option<String>,
    pub rights: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
}

/// A user's effective rights (`KeyStore::effective_rights`).
#[napi(object)]
pub struct EffectiveRightsDto {
    pub own: Vec<String>,
    pub by_role: Vec<RoleRightsDto>,
    pub all: Vec<String>,
}

#[napi(object)]
pub struct RoleRightsDto {
    pub role: String,
    pub rights: Vec<String>,
}

impl From<keygate_core::EffectiveRights> for EffectiveRightsDto {
    fn from(e: keygate_core::EffectiveRights) -> Self {
        let by_role = e.by_role.into_iter().map(|r| RoleRightsDto { role: r.name, rights: r.rights }).collect();
        EffectiveRightsDto { own: e.own, by_role, all: e.all }
    }
}

#[napi(object)]
pub struct RoleDto {
    pub name: String,
    pub rights: Vec<String>,
}

impl From<RoleView> for RoleDto {
    fn from(role: RoleView) -> Self {
        RoleDto { name: role.name, rights: role.rights }
    }
}

/// `listKeysPage`'s query; `lib/store.js` has checked the types.
#[napi(object)]
pub struct KeyPageQueryDto {
    pub user_id: Option<String>,
    pub state: Option<String>,
    pub search: Option<String>,
    pub limit: Option<u32>,
    pub after: Option<String>,
}

impl From<KeyPageQueryDto> for KeyPageQuery {
    fn from(query: KeyPageQueryDto) -> Self {
        KeyPageQuery {
            filter: KeyFilter { user_id: query.user_id, state: query.state, search: query.search },
            limit: query.limit,
            after: query.after,
        }
    }
}

#[napi(object)]
pub struct KeyPageDto {
    pub keys: Vec<KeyDto>,
    pub next: Option<String>,
}

impl From<KeyPage> for KeyPageDto {
    fn from(page: KeyPage) -> Self {
        KeyPageDto { keys: page.keys.into_iter().map(KeyDto::from).collect(), next: page.next }
    }
}

/// How many keys a user holds in each state (the admin page's list of users).
#[napi(object)]
pub struct KeyCountsDto {
    pub user_id: String,
    pub active: u32,
    pub suspended: u32,
    pub revoked: u32,
}

impl From<KeyCounts> for KeyCountsDto {
    fn from(counts: KeyCounts) -> Self {
        KeyCountsDto { user_id: counts.user_id, active: counts.active, suspended: counts.suspended, revoked: counts.revoked }
    }
}

/// Instants cross as milliseconds since the epoch; `lib/store.js` makes them `Date`s.
#[napi(object)]
pub struct KeyDto {
    pub id: String,
    pub user_id: String,
    pub description: String,
    pub state: String,
    pub expires_at: f64,
    pub rules: Vec<String>,
    pub created_at: f64,
    pub updated_at: f64,
    pub last_used_at: Option<f64>,
    pub hint: String,
}

impl From<KeyView> for KeyDto {
    fn from(key: KeyView) -> Self {
        KeyDto {
            id: key.id,
            user_id: key.user_id,
            description: key.description,
            state: key.state.to_string(),
            expires_at: key.expires_at as f64,
            rules: key.rules,
            created_at: key.created_at as f64,
            updated_at: key.updated_at as f64,
            last_used_at: key.last_used_at.map(|t| t as f64),
            hint: key.hint,
        }
    }
}

#[napi(object)]
pub struct IssuedDto {
    pub key: KeyDto,
    pub secret: String,
}

impl From<Issued> for IssuedDto {
    fn from(issued: Issued) -> Self {
        IssuedDto { key: issued.key.into(), secret: issued.secret }
    }
}

#[napi(object)]
pub struct NewKeyDto {
    pub user_id: String,
    pub description: String,
    pub expires_at: Option<f64>,
    pub rules: Option<Vec<String>>,
    pub state: Option<String>,
}

#[napi(object)]
pub struct KeyPatchDto {
    pub description: Option<String>,
    pub rules: Option<Vec<String>>,
    /// True when the caller passed `expiresAt` at all (even `null`, which is refused).
    pub expires_at_given: bool,
    pub expires_at: Option<f64>,
    pub expected_updated_at: Option<f64>,
}

#[napi(object)]
pub struct ExplanationDto {
    pub allowed: bool,
    pub reason: Reason,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub matched_rule: Option<String>,
}

impl From<Explanation> for ExplanationDto {
    fn from(e: Explanation) -> Self {
        ExplanationDto {
            allowed: e.reason == keygate_core::Reason::Allowed,
            reason: Reason::of(e.reason),
            key_id: e.key_id,
            user_id: e.user_id,
            matched_rule: e.matched_rule,
        }
    }
}

/// JS milliseconds (already checked finite by `lib/args.js`) to the core's instants.
pub fn ms(value: f64) -> i64 {
    value as i64
}

#[napi(object)]
pub struct AuditQueryDto {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub since: Option<f64>,
    pub until: Option<f64>,
    pub before_seq: Option<f64>,
    pub limit: Option<u32>,
}

/// `detail` crosses as JSON text; `lib/store.js` parses it.
#[napi(object)]
pub struct AuditEntryDto {
    pub seq: f64,
    pub at: f64,
    pub actor: Option<String>,
    pub action: String,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub detail: String,
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryDto {
    fn from(e: AuditEntry) -> Self {
        let hash = e.hash_hex();
        AuditEntryDto {
            seq: e.seq as f64,
            at: e.at as f64,
            actor: e.actor,
            action: e.action,
            key_id: e.key_id,
            user_id: e.user_id,
            detail: e.detail.to_string(),
            hash,
        }
    }
}

#[napi(object)]
pub struct AuditReportDto {
    pub ok: bool,
    pub entries: f64,
    pub first_bad_seq: Option<f64>,
    pub problem: Option<String>,
}

/// `store.health()`: how the store follows its backend.
#[napi(object)]
pub struct HealthDto {
    pub connected: bool,
    pub applied_version: f64,
    pub lag_ms: f64,
    /// ms since the epoch.
    pub last_contact_at: Option<f64>,
}

impl From<keygate_core::Health> for HealthDto {
    fn from(h: keygate_core::Health) -> Self {
        HealthDto {
            connected: h.connected,
            applied_version: h.applied_version as f64,
            lag_ms: h.lag_ms,
            last_contact_at: h.last_contact_at.map(|at| at as f64),
        }
    }
}

impl From<AuditReport> for AuditReportDto {
    fn from(r: AuditReport) -> Self {
        AuditReportDto { ok: r.ok, entries: r.entries as f64, first_bad_seq: r.first_bad_seq.map(|s| s as f64), problem: r.problem }
    }
}

/// What `KeyStore.copy` wrote.
#[napi(object)]
pub struct CopyReportDto {
    pub roles: f64,
    pub users: f64,
    pub keys: f64,
    pub audit_entries: f64,
}

impl From<keygate_core::CopyReport> for CopyReportDto {
    fn from(r: keygate_core::CopyReport) -> Self {
        CopyReportDto { roles: r.roles as f64, users: r.users as f64, keys: r.keys as f64, audit_entries: r.audit_entries as f64 }
    }
}

/// A store's background work, as an incident reported to `onError` names it.
#[napi(string_enum = "camelCase")]
pub enum Task {
    Sync,
    Expiry,
    LastUsedAt,
    Purge,
}

impl From<keygate_core::Task> for Task {
    fn from(task: keygate_core::Task) -> Task {
        match task {
            keygate_core::Task::Sync => Task::Sync,
            keygate_core::Task::Expiry => Task::Expiry,
            keygate_core::Task::LastUsed => Task::LastUsedAt,
            keygate_core::Task::Purge => Task::Purge,
        }
    }
}

/// What a store handle (`ExternalObject<KeyStore>`) holds: opaque to JavaScript,
/// which only hands it back. Declared so that the generated typings name a type
/// that exists.
#[napi(object, js_name = "KeyStore")]
#[allow(dead_code)] // never built: it only gives the handle's type a name in the typings
pub struct OpaqueKeyStore {}
