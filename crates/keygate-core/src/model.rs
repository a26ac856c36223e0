//! Entities: user accounts, roles and API keys, and their states.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use crate::error::{describe_char, quote, Error, ErrorCode, Result};
use crate::rule::RuleList;
use crate::secret::{decode_id, encode_id, find_secret, SecretDigest, ID_CHARS};

/// Prefix of public key identifiers.
const KEY_ID_PREFIX: &str = "key_";
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
            _ => Err(Error::new(ErrorCode::InvalidState, format!("key state {} must be 'active', 'suspended' or 'revoked'", quote(text)))),
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

/// Longest actor accepted, in characters.
pub const MAX_ACTOR_CHARS: usize = 256;

/// Bidirectional controls (embeddings, overrides, isolates and marks): in an
/// id or actor they could make one name display as another.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Refuses a bidirectional control character, named by code point only.
fn check_no_bidi(what: &str, value: &str) -> Result<()> {
    match value.chars().enumerate().find(|&(_, c)| is_bidi_control(c)) {
        Some((at, c)) => Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "{what} contains the bidirectional control character {} at position {}, which can make text display as something else",
                describe_char(c),
                at + 1
            ),
        )),
        None => Ok(()),
    }
}

/// Refuses a value holding a well-formed secret (of any prefix): ids, role
/// names, actors and descriptions go to the audit trail, whose hash chain
/// makes a secret written there impossible to remove. The message names
/// where, never the value.
pub fn check_no_secret(what: &str, value: &str, code: ErrorCode) -> Result<()> {
    match find_secret(value.as_bytes()) {
        Some(at) => {
            let position = value.get(..at).map_or(0, |before| before.chars().count()) + 1;
            Err(Error::new(
                code,
                format!(
                    "{what} contains what looks like a keygate secret (at position {position}); a secret must never be \
                     written where the audit trail would keep it"
                ),
            ))
        }
        None => Ok(()),
    }
}

/// Most roles one user may list (as many as the rules one key, user or role may hold).
pub const MAX_USER_ROLES: usize = 1000;

/// Checks a user id or role name: 1–128 of letters, digits and `_ - . @`,
/// not `.` or `..`, holding no secret.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    check_name_shape(what, name)?;
    // As a URL path segment either is a step (this directory, its parent), even percent-encoded:
    // no admin API (the admin page's, or a user's own `/users/:id`) could address it.
    if name == "." || name == ".." {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} {} is not allowed: in a URL path it means a directory step, so no URL could address it", quote(name)),
        ));
    }
    check_no_secret(what, name, ErrorCode::InvalidArgument)
}

/// The shape every stored user id and role name has had in every version (a
/// store row without it was not written by keygate): 1–128 of letters, digits
/// and `_ - . @`. Names holding a secret were accepted once, so loading does not refuse them.
pub fn check_name_shape(what: &str, name: &str) -> Result<()> {
    check_no_bidi(what, name)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@');
    let bad = name.chars().enumerate().find(|&(_, c)| !allowed(c));
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || bad.is_some() {
        let found = bad.map_or(String::new(), |(at, c)| format!(" ({} at position {} is not)", describe_char(c), at + 1));
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} {} must be 1-128 characters of letters, digits and _ - . @{found}", quote(name)),
        ));
    }
    Ok(())
}

/// Checks who made a change, as the audit trail records it: 1–256 characters,
/// no control or bidirectional control characters, no line or paragraph separator
/// (U+2028, U+2029: they end a line in logs and editors, as a newline does), no secret.
pub fn check_actor(actor: &str) -> Result<()> {
    check_no_bidi("actor", actor)?;
    let breaks_lines = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if actor.is_empty() || actor.chars().count() > MAX_ACTOR_CHARS || actor.chars().any(breaks_lines) {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("actor {} must be 1-{MAX_ACTOR_CHARS} characters without control characters or line separators", quote(actor)),
        ));
    }
    check_no_secret("actor", actor, ErrorCode::InvalidArgument)
}

/// Checks a key's description: at most 1024 characters, no NUL, no secret. Bidi
/// characters are allowed (descriptions are prose); showing them so that they
/// cannot reorder what surrounds them is the display's job.
pub fn check_description(description: &str) -> Result<()> {
    // Refused on every store alike: PostgreSQL text cannot hold a NUL (it failed as STORE_IO there).
    if let Some(at) = description.chars().position(|c| c == '\0') {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!(
                "description holds a NUL character (U+0000) at position {}, which a PostgreSQL store cannot keep, so no store takes one",
                at + 1
            ),
        ));
    }
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("description is {chars} characters long; at most {MAX_DESCRIPTION_CHARS} are allowed"),
        ));
    }
    check_no_secret("description", description, ErrorCode::InvalidArgument)
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

/// A key's public identifier: 16 random bytes, written `key_` and 22 base62
/// characters. Its text is what the API, the audit trail and the store's change
/// log show; parsing refuses anything [`Display`](std::fmt::Display) cannot have written.
/// Ordered as its bytes, which is also the order of its text (fixed-width base62, digits in ASCII order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 16]);

impl KeyId {
    pub const fn from_bytes(bytes: [u8; 16]) -> KeyId {
        KeyId(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The id's text (`key_` and base62 digits, all ASCII), without allocating: a search of
    /// the listing reads every key's.
    pub fn text(&self) -> [u8; KEY_ID_PREFIX.len() + ID_CHARS] {
        let mut text = [0u8; KEY_ID_PREFIX.len() + ID_CHARS];
        let (prefix, digits) = text.split_at_mut(KEY_ID_PREFIX.len());
        prefix.copy_from_slice(KEY_ID_PREFIX.as_bytes());
        digits.copy_from_slice(&encode_id(&self.0));
        text
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // One write of the whole text: `to_string` then allocates once, exactly
        // (listings show every key's id).
        let text = self.text();
        // Base62 digits are ASCII.
        f.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?)
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl std::str::FromStr for KeyId {
    /// `UNKNOWN_KEY`: no key can have this id.
    type Err = Error;

    fn from_str(text: &str) -> Result<KeyId> {
        text.strip_prefix(KEY_ID_PREFIX).and_then(|digits| decode_id(digits.as_bytes())).map(KeyId).ok_or_else(|| unknown_key(text))
    }
}

/// `UNKNOWN_KEY`: no key has the id `text` (or could have it).
pub(crate) fn unknown_key(text: &str) -> Error {
    Error::new(ErrorCode::UnknownKey, format!("no key with id {}", quote(text)))
}

/// Sentinel for "never used" in [`Key::last_used_at`].
const NEVER: i64 = i64::MIN;

/// An API key as the core keeps it: everything but the secret, which is known
/// only by its digest.
#[derive(Debug)]
pub struct Key {
    pub id: KeyId,
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
    /// Decided by a check before (see [`Key::first_check`]).
    checked: AtomicBool,
    pub hint: [u8; 4],
    pub digest: SecretDigest,
    pub rules: RuleList,
}

impl Key {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: KeyId,
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
            checked: AtomicBool::new(false),
            hint,
            digest,
            rules,
        }
    }

    /// Whether a listing filtered by user and state (`listKeys`, `listKeysPage`) shows this key.
    pub fn matches(&self, user_id: Option<&str>, state: Option<KeyState>) -> bool {
        user_id.is_none_or(|u| *self.user_id == *u) && state.is_none_or(|s| self.state == s)
    }

    /// The order of "newest first" (`listKeys`, the keys a user's deletion records):
    /// by creation time, then creation order where clocks tie.
    pub fn newest_first(a: &Key, b: &Key) -> std::cmp::Ordering {
        b.created_at.cmp(&a.created_at).then(b.seq.cmp(&a.seq))
    }

    pub fn last_used_at(&self) -> Option<i64> {
        // SeqCst, with the mark's operations: see `touch`.
        match self.last_used_at.load(Ordering::SeqCst) {
            NEVER => None,
            at => Some(at),
        }
    }

    /// Records a use at `at`, keeping the latest instant if uses race.
    /// True when the key was not yet marked used since the last flush.
    ///
    /// The flush clears the mark ([`Key::clear_dirty`]), then reads `lastUsedAt`; this raises
    /// `lastUsedAt`, then reads the mark. One of the two must see the other's write (the
    /// flush reads the use, or this queues the key again), which takes sequentially consistent
    /// operations on both sides: with relaxed ones (a store-then-load the CPU may reorder, x86
    /// included) both could miss, and the use was written by no flush. On x86 this costs the
    /// checks nothing (a locked read-modify-write and a plain load either way).
    pub fn touch(&self, at: i64) -> bool {
        self.last_used_at.fetch_max(at, Ordering::SeqCst);
        !self.dirty.load(Ordering::SeqCst) && !self.dirty.swap(true, Ordering::SeqCst)
    }

    /// True for the first check of this record of the key (and notes that it has been
    /// checked): since the process created or loaded the key, or since a change replaced
    /// its record. The memo leaves such a check out (see `VERDICT_FIRST_CHECK`). A plain
    /// load first, so that later checks write nothing.
    pub fn first_check(&self) -> bool {
        !self.checked.load(Ordering::Relaxed) && !self.checked.swap(true, Ordering::Relaxed)
    }

    /// Raises `lastUsedAt` to a use another process (or this one, earlier) has already
    /// stored: nothing to write back, so the key is not marked for the next flush.
    /// (Marking it without queueing it, as [`Key::touch`] would, leaves every later use
    /// of the key in this process unflushed: `touch` queues a key only when it was clean.)
    pub fn note_stored_use(&self, at: i64) {
        self.last_used_at.fetch_max(at, Ordering::Relaxed);
    }

    /// Before the flush reads `lastUsedAt`: see [`Key::touch`].
    pub fn clear_dirty(&self) {
        self.dirty.store(false, Ordering::SeqCst);
    }

    pub fn set_last_used_at(&self, at: Option<i64>) {
        self.last_used_at.store(at.unwrap_or(NEVER), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{generate, Prefix};

    const BIDI: [char; 12] = [
        '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}',
        '\u{061C}',
    ];

    fn refused(result: Result<()>) -> Error {
        let err = result.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        err
    }

    /// The flush (the maintenance thread) clears a key's mark, then reads its `lastUsedAt`; a
    /// check raises `lastUsedAt`, then queues the key only if it was not marked. One of the two
    /// must see the other: the flush reads the use, or the check queues the key for the next
    /// flush. With relaxed orderings both could miss (the flush's store to the mark still
    /// buffered when its load ran, as x86 allows): the use was written by no flush, not even
    /// at close, until a later use of the key.
    #[test]
    fn a_use_racing_a_flush_is_read_by_it_or_queued_for_the_next() {
        use std::sync::atomic::AtomicI64;
        let issued = generate(&Prefix::default()).unwrap();
        let key = Key::new(
            KeyId::from_bytes([7; 16]),
            1,
            std::sync::Arc::from("u"),
            "".into(),
            KeyState::Active,
            1,
            0,
            issued.hint,
            issued.digest,
            crate::rule::RuleList::default(),
        );
        const ROUNDS: i64 = 200_000;
        let (go, done, read) = (AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(NEVER));
        let lost = std::thread::scope(|scope| {
            scope.spawn(|| {
                for round in 1..=ROUNDS {
                    while go.load(Ordering::Acquire) < round {
                        std::hint::spin_loop();
                    }
                    // As `Inner::flush_uses` does for each key it took from the queue.
                    key.clear_dirty();
                    read.store(key.last_used_at().unwrap_or(NEVER), Ordering::Relaxed);
                    done.store(round, Ordering::Release);
                }
            });
            let mut lost = 0;
            for round in 1..=ROUNDS {
                // Marked and queued by an earlier use; the flush and a new use start together.
                key.dirty.store(true, Ordering::Relaxed);
                go.store(round, Ordering::Release);
                let queued = key.touch(round);
                while done.load(Ordering::Acquire) < round {
                    std::hint::spin_loop();
                }
                if !queued && read.load(Ordering::Relaxed) < round {
                    lost += 1;
                }
            }
            lost
        });
        assert_eq!(lost, 0, "{lost} of {ROUNDS} uses neither read by the flush they raced nor queued for the next");
    }

    #[test]
    fn bidi_controls_are_refused_in_names_and_actors_and_named_by_code_point() {
        for c in BIDI {
            let value = format!("admin{c}gpj.exe");
            let code = format!("U+{:04X}", c as u32);
            for err in [refused(check_name("user id", &value)), refused(check_name("role name", &value)), refused(check_actor(&value))] {
                assert!(err.message.contains(&code) && err.message.contains("position 6"), "{}", err.message);
                assert!(!err.message.contains(c), "never echoed raw: {}", err.message);
            }
        }
        assert!(check_actor("Ada Lovelace (ops) — via CLI").is_ok());
        assert!(check_actor("Zoë").is_ok());
        assert!(check_description("quarterly import \u{202E}(reversed)").is_ok(), "descriptions are prose");
    }

    #[test]
    fn secrets_are_refused_in_names_actors_and_descriptions_without_showing_them() {
        for prefix in ["kg", "acme"] {
            let secret = generate(&Prefix::new(prefix).unwrap()).unwrap().text;
            let body = secret.split_once('_').unwrap().1;
            let cases = [
                refused(check_name("user id", &secret)),
                refused(check_name("role name", &format!("ops.{secret}"))),
                refused(check_actor(&format!("ci {secret}"))),
                refused(check_description(&format!("the key is {secret}, keep it safe"))),
            ];
            for err in cases {
                assert!(err.message.contains("looks like a keygate secret"), "{}", err.message);
                assert!(!err.message.contains(&body[..12]), "{}", err.message);
            }
        }
        assert!(check_name("user id", &format!("kg_{}", "a".repeat(49))).is_ok(), "wrong checksum: not a secret");
    }

    #[test]
    fn key_ids_read_back_what_they_write_and_nothing_else() {
        for bytes in [[0u8; 16], [0xff; 16], *b"0123456789abcdef"] {
            let id = KeyId::from_bytes(bytes);
            let text = id.to_string();
            assert!(text.starts_with("key_") && text.len() == 26 && text.bytes().skip(4).all(|b| b.is_ascii_alphanumeric()), "{text}");
            assert_eq!(text.parse::<KeyId>().unwrap(), id);
            assert_eq!(format!("{id:?}"), format!("KeyId({text})"));
        }
        assert_eq!(KeyId::from_bytes([0; 16]).to_string(), format!("key_{}", "0".repeat(22)));
        let id = KeyId::from_bytes([7; 16]).to_string();
        for bad in [
            "",
            "key_",
            &id[4..],
            &id.replace("key_", "kex_"),
            &id.replace("key_", "KEY_"),
            &format!("{id}0"),
            &id[..25],
            &format!("{}-", &id[..25]),
            &format!("key_{}", "z".repeat(22)),
        ] {
            let err = bad.parse::<KeyId>().unwrap_err();
            assert_eq!(err.code, ErrorCode::UnknownKey, "{bad:?}");
            assert_eq!(err.message, format!("no key with id {}", quote(bad)));
        }
    }

    #[test]
    fn names_say_which_character_is_not_allowed() {
        let err = refused(check_name("user id", "svc éa"));
        assert!(err.message.contains("U+0020 at position 4"), "{}", err.message);
        assert!(refused(check_name("user id", "")).message.contains("1-128"));
        for dots in [".", ".."] {
            assert!(refused(check_name("role name", dots)).message.contains("no URL could address it"));
            assert!(check_name_shape("role name", dots).is_ok(), "loaded as before");
        }
        for dotted in ["...", ".a", "a..b", "svc.prod"] {
            assert!(check_name("user id", dotted).is_ok(), "{dotted}");
        }
        assert!(check_name("user id", &"a".repeat(128)).is_ok());
        refused(check_name("user id", &"a".repeat(129)));
        refused(check_actor(""));
        refused(check_actor("a\u{0}b"));
        refused(check_actor("a\u{2028}b"));
        refused(check_actor("a\u{2029}b"));
        refused(check_actor(&"a".repeat(257)));
        refused(check_description(&"d".repeat(1025)));
        assert!(refused(check_description("a\u{0}b")).message.contains("NUL character (U+0000) at position 2"));
    }
}
