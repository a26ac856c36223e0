//! The public input and view types of the store API: what admin calls take
//! (`Options`, `UserInput`, `NewKey`, `KeyPatch`, `KeyFilter`, `AuditAction`) and
//! what they answer (`UserView`, `RoleView`, `KeyView`, `Issued`, `Explanation`,
//! `EffectiveRights`), and how a stored entity becomes a view.

use crate::decision::Reason;
use crate::error::{quote, Error, ErrorCode, Result};
use crate::incident::OnError;
use crate::model::{Key, Role, User};

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
    /// PostgreSQL store: answer `store_unavailable` after this long without word
    /// from the database (default 5000 ms).
    pub fail_closed_after_ms: Option<f64>,
    /// PostgreSQL store: the longest wait for a connection (default 5000 ms).
    pub connect_timeout_ms: Option<f64>,
    /// PostgreSQL store: the longest wait for one statement's answer (default 5000 ms).
    pub statement_timeout_ms: Option<f64>,
    /// Durable store: `Some(false)` opens only a store that exists: a missing or empty file, an
    /// SQLite file without tables, or a database without keygate's tables is `STORE_IO`, and
    /// nothing is created. Default: such a store is created.
    pub create: Option<bool>,
}

/// How a store follows its backend (`KeyStore::health`).
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Whether the store is in contact with its backend (always true for memory and SQLite
    /// unless it fails closed).
    pub connected: bool,
    /// The backend's version of the state this process's checks answer from (0 for
    /// memory): it moves once a change is applied, not when the backend reads it.
    pub applied_version: i64,
    /// How long ago the process last confirmed it was current, in ms.
    pub lag_ms: f64,
    /// When it last heard from its backend (ms since the epoch), if ever.
    pub last_contact_at: Option<i64>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("key_prefix", &self.key_prefix)
            .field("max_lifetime_days", &self.max_lifetime_days)
            .field("now", &self.now)
            .field("purge_expired_after_days", &self.purge_expired_after_days)
            .field("on_error", &self.on_error.as_ref().map(|_| "<handler>"))
            .field("fail_closed_after_ms", &self.fail_closed_after_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
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

    /// The action named `name`; `INVALID_ARGUMENT` for any other text, naming the actions there are.
    pub fn parse(name: &str) -> Result<AuditAction> {
        AuditAction::ALL.into_iter().find(|action| action.as_str() == name).ok_or_else(|| {
            let actions: Vec<&str> = AuditAction::ALL.iter().map(|action| action.as_str()).collect();
            Error::new(ErrorCode::InvalidArgument, format!("unknown audit action {}: the actions are {}", quote(name), actions.join(", ")))
        })
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

/// What `put_user`/`put_role` expect to find under the id or name (the admin option
/// `expect`), checked inside the write: no other host's change can come between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Expect {
    /// Create or replace.
    #[default]
    Any,
    /// Create only: one that exists is `CONFLICT`.
    New,
    /// Replace only: none is `UNKNOWN_USER` / `UNKNOWN_ROLE`.
    Existing,
}

impl Expect {
    /// `'new'`, `'existing'`, or none given (create or replace).
    pub fn parse(text: Option<&str>) -> crate::error::Result<Expect> {
        match text {
            None => Ok(Expect::Any),
            Some("new") => Ok(Expect::New),
            Some("existing") => Ok(Expect::Existing),
            Some(other) => Err(crate::error::Error::new(
                crate::error::ErrorCode::InvalidArgument,
                format!("options.expect must be 'new' or 'existing', not {}", crate::error::quote(other)),
            )),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub user_id: Option<String>,
    pub state: Option<String>,
    /// Keys whose id, description or hint holds this text, in any letter case (see
    /// `key_match.rs` for the folding); empty or none: every key.
    pub search: Option<String>,
}

/// How many keys a user holds in each state ([`KeyStore::key_counts`](super::KeyStore::key_counts)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCounts {
    pub user_id: String,
    pub active: u32,
    pub suspended: u32,
    pub revoked: u32,
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

pub(super) fn view_key(key: &Key) -> KeyView {
    KeyView {
        id: key.id.to_string(),
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

pub(super) fn view_user(user: &User) -> UserView {
    UserView {
        id: user.id.to_string(),
        status: user.status.as_str(),
        rights: user.rights.texts(),
        roles: user.roles.iter().map(|r| r.to_string()).collect(),
    }
}

pub(super) fn view_role(role: &Role) -> RoleView {
    RoleView { name: role.name.to_string(), rights: role.rights.texts() }
}
