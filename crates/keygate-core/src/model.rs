//! Entities: user accounts, roles and API keys, and their states.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use crate::error::{quote, Error, ErrorCode, Result};
use crate::rule::RuleList;
use crate::secret::SecretDigest;

/// Prefix of public key identifiers.
pub const KEY_ID_PREFIX: &str = "key_";
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Longest user id or role name.
pub const MAX_NAME_CHARS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Suspended,
    Archived,
}

impl UserStatus {
    pub fn parse(text: &str) -> Result<UserStatus> {
        match text {
            "active" => Ok(UserStatus::Active),
            "suspended" => Ok(UserStatus::Suspended),
            "archived" => Ok(UserStatus::Archived),
            _ => Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("user status {} must be 'active', 'suspended' or 'archived'", quote(text)),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
            UserStatus::Archived => "archived",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Suspended,
    Revoked,
}

impl KeyState {
    pub fn parse(text: &str) -> Result<KeyState> {
        match text {
            "active" => Ok(KeyState::Active),
            "suspended" => Ok(KeyState::Suspended),
            "revoked" => Ok(KeyState::Revoked),
            _ => Err(Error::new(
                ErrorCode::InvalidState,
                format!("key state {} must be 'active', 'suspended' or 'revoked'", quote(text)),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Suspended => "suspended",
            KeyState::Revoked => "revoked",
        }
    }
}

/// Checks a user id or role name: 1–128 of letters, digits and `_ - . @`.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} {} must be 1-128 characters of letters, digits and _ - . @", quote(name)),
        ))
    }
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: Arc<str>,
    pub rights: RuleList,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: Arc<str>,
    pub status: UserStatus,
    pub rights: RuleList,
    pub roles: Vec<Arc<str>>,
}

/// Sentinel for "never used" in [`Key::last_used_at`].
const NEVER: i64 = i64::MIN;

/// An API key as the core keeps it: everything but the secret, which is known
/// only by its digest.
#[derive(Debug)]
pub struct Key {
    pub id: [u8; 16],
    /// Creation order, for "newest first" listings when clocks tie.
    pub seq: u64,
    pub user_id: Arc<str>,
    pub description: Box<str>,
    pub state: KeyState,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Written by checks, which hold only a read lock.
    last_used_at: AtomicI64,
    /// Used since `lastUsedAt` was last flushed to disk.
    dirty: AtomicBool,
    pub hint: [u8; 4],
    pub digest: SecretDigest,
    pub rules: RuleList,
}

impl Key {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: [u8; 16],
        seq: u64,
        user_id: Arc<str>,
        description: Box<str>,
        state: KeyState,
        expires_at: i64,
        created_at: i64,
        hint: [u8; 4],
        digest: SecretDigest,
        rules: RuleList,
    ) -> Key {
        Key {
            id,
            seq,
            user_id,
            description,
            state,
            expires_at,
            created_at,
            updated_at: created_at,
            last_used_at: AtomicI64::new(NEVER),
            dirty: AtomicBool::new(false),
            hint,
            digest,
            rules,
        }
    }

    pub fn id_string(&self) -> String {
        crate::secret::encode_id(KEY_ID_PREFIX, &self.id)
    }

    pub fn last_used_at(&self) -> Option<i64> {
        match self.last_used_at.load(Ordering::Relaxed) {
            NEVER => None,
            at => Some(at),
        }
    }

    /// Records a use at `at`, keeping the latest instant if uses race.
    /// True when the key was not yet marked used since the last flush.
    pub fn touch(&self, at: i64) -> bool {
        self.last_used_at.fetch_max(at, Ordering::Relaxed);
        !self.dirty.load(Ordering::Relaxed) && !self.dirty.swap(true, Ordering::Relaxed)
    }

    pub fn clear_dirty(&self) {
        self.dirty.store(false, Ordering::Relaxed);
    }

    pub fn set_last_used_at(&self, at: Option<i64>) {
        self.last_used_at.store(at.unwrap_or(NEVER), Ordering::Relaxed);
    }
}

/// Parses a public key id (`key_…`); `None` when it cannot be one of ours.
pub fn parse_key_id(text: &str) -> Option<[u8; 16]> {
    crate::secret::decode_id(KEY_ID_PREFIX, text)
}
